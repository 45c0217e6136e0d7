/* Tests for common/image_list.c: IMAGE_LIST entries, their tree of
 * origins, and the JSON of `tessera image list --json` and /api/images. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image_list.h"

static void test_image_ent_parse_fields(void **state)
{
    struct image_ent e;

    (void)state;
    assert_int_equal(
        image_ent_parse("12 7 1 0 1048576 65536 4096 /vm one.img", &e), 0);
    assert_int_equal(e.ino, 12);
    assert_int_equal(e.origin, 7);
    assert_true(e.origin_live);
    assert_false(e.readonly);
    assert_int_equal(e.size, 1048576);
    assert_int_equal(e.allocated, 65536);
    assert_int_equal(e.shared, 4096);
    assert_string_equal(e.path, "/vm one.img");
}

static void test_image_ent_parse_rejects(void **state)
{
    struct image_ent e;

    (void)state;
    assert_int_equal(image_ent_parse("", &e), -EPROTO);
    assert_int_equal(image_ent_parse("12 7 1 0 1 2 0", &e), -EPROTO);
    assert_int_equal(image_ent_parse("12 7 2 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(image_ent_parse("12 7 1 0 1 2 3 /a", &e), -EPROTO);
    /* An origin younger than its copy would make the lineage a cycle. */
    assert_int_equal(image_ent_parse("12 12 1 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(image_ent_parse("12 13 1 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(image_ent_parse("12 7 1 0 1 2 0 a", &e), -EPROTO);
}

/* base(2) -> snap(4) -> clones 5 and 7, 7 -> snap 9; 6 was made from a
 * removed file; 8 from a live file outside the list. */
static void test_image_tree_order(void **state)
{
    static const struct {
        uint64_t ino, origin;
        bool live;
    } in[] = {{2, 0, false}, {4, 2, true}, {5, 4, true}, {6, 3, false},
              {7, 4, true},  {8, 1, true}, {9, 7, true}};
    struct image_ent e[7];
    struct image_tree t;
    size_t want[] = {0, 1, 2, 4, 6, 3, 5};
    unsigned depth[] = {0, 1, 2, 2, 3, 0, 0};

    (void)state;
    memset(e, 0, sizeof(e));
    for (size_t i = 0; i < 7; i++) {
        e[i].ino = in[i].ino;
        e[i].origin = in[i].origin;
        e[i].origin_live = in[i].live;
        e[i].path = "/x";
    }
    assert_int_equal(image_tree(e, 7, &t), 0);
    assert_int_equal(t.n, 7);
    for (size_t j = 0; j < 7; j++) {
        assert_int_equal(t.order[j], want[j]);
        assert_int_equal(t.depth[j], depth[j]);
    }
    image_tree_free(&t);
    image_tree_free(&t); /* a second free is harmless */
}

/* A clone of a snapshot of an image, written as JSON: tree order, the
 * parent by path, exclusive = allocated - shared, a quote escaped. */
static void test_image_list_json_lineage(void **state)
{
    static const char *const vals[] = {
        "2 0 0 0 1048576 65536 0 /base\"1.img",
        "3 2 1 1 1048576 65536 65536 /base.snap",
        "5 3 1 0 1048576 98304 65536 /vm1.img",
    };
    struct image_ent e[3];
    struct image_tree t;
    struct metrics_buf b;

    (void)state;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(image_ent_parse(vals[i], &e[i]), 0);
    assert_int_equal(image_tree(e, 3, &t), 0);
    metrics_buf_init(&b);
    image_list_json(&b, e, 3, &t, false);
    assert_int_equal(b.err, 0);
    assert_non_null(strstr(b.p, "{\"images\": [{\"path\": \"/base\\\"1.img\", "
                                "\"ino\": 2, \"kind\": \"image\""));
    assert_non_null(strstr(b.p, "\"path\": \"/vm1.img\", \"ino\": 5, "
                                "\"kind\": \"clone\", \"readonly\": false, "
                                "\"depth\": 2, \"parent\": {\"ino\": 3, "
                                "\"exists\": true, \"path\": \"/base.snap\"}"));
    assert_non_null(strstr(b.p, "\"allocated\": 98304, \"shared\": 65536, "
                                "\"exclusive\": 32768}"));
    assert_non_null(strstr(b.p, "\"truncated\": false}\n"));
    metrics_buf_free(&b);
    image_tree_free(&t);
}

int test_image_list(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_ent_parse_fields),
        cmocka_unit_test(test_image_ent_parse_rejects),
        cmocka_unit_test(test_image_tree_order),
        cmocka_unit_test(test_image_list_json_lineage),
    };
    return cmocka_run_group_tests_name("image_list", tests, NULL, NULL);
}
