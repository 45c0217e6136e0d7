/* Tests for admin/adm_image.c and adm_image_list.c: size and path parsing
 * of the image verbs, IMAGE_LIST entries and their tree order (the verbs
 * themselves run in tests/integration/test-snapshot.sh and
 * test-clone.sh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

static void test_adm_parse_size_units(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(adm_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(adm_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(adm_parse_size("10G", &v), 0);
    assert_int_equal(v, 10ull << 30);
    assert_int_equal(adm_parse_size("1TiB", &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(adm_parse_size("3k", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(adm_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
}

static void test_adm_parse_size_rejects(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(adm_parse_size("", &v), -EINVAL);
    assert_int_equal(adm_parse_size("-1G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("10X", &v), -EINVAL);
    assert_int_equal(adm_parse_size("10GG", &v), -EINVAL);
    assert_int_equal(adm_parse_size("1.5G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("99999999999P", &v), -EFBIG);
}

static void test_adm_split_path_cases(void **state)
{
    char dir[64], name[16];

    (void)state;
    assert_int_equal(
        adm_split_path("/images/vm1.img", dir, sizeof(dir), name, sizeof(name)),
        0);
    assert_string_equal(dir, "/images");
    assert_string_equal(name, "vm1.img");
    assert_int_equal(
        adm_split_path("vm1.img", dir, sizeof(dir), name, sizeof(name)), 0);
    assert_string_equal(dir, "/");
    assert_string_equal(name, "vm1.img");
    assert_int_equal(
        adm_split_path("/a/b/", dir, sizeof(dir), name, sizeof(name)), 0);
    assert_string_equal(dir, "/a");
    assert_string_equal(name, "b");
    assert_int_equal(adm_split_path("/", dir, sizeof(dir), name, sizeof(name)),
                     -EINVAL);
    assert_int_equal(
        adm_split_path("/a/..", dir, sizeof(dir), name, sizeof(name)), -EINVAL);
    assert_int_equal(adm_split_path("/a/much-too-long-name", dir, sizeof(dir),
                                    name, sizeof(name)),
                     -EINVAL);
}

static void test_adm_image_ent_parse_fields(void **state)
{
    struct adm_image_ent e;

    (void)state;
    assert_int_equal(
        adm_image_ent_parse("12 7 1 0 1048576 65536 4096 /vm one.img", &e), 0);
    assert_int_equal(e.ino, 12);
    assert_int_equal(e.origin, 7);
    assert_true(e.origin_live);
    assert_false(e.readonly);
    assert_int_equal(e.size, 1048576);
    assert_int_equal(e.allocated, 65536);
    assert_int_equal(e.shared, 4096);
    assert_string_equal(e.path, "/vm one.img");
}

static void test_adm_image_ent_parse_rejects(void **state)
{
    struct adm_image_ent e;

    (void)state;
    assert_int_equal(adm_image_ent_parse("", &e), -EPROTO);
    assert_int_equal(adm_image_ent_parse("12 7 1 0 1 2 0", &e), -EPROTO);
    assert_int_equal(adm_image_ent_parse("12 7 2 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(adm_image_ent_parse("12 7 1 0 1 2 3 /a", &e), -EPROTO);
    /* An origin younger than its copy would make the lineage a cycle. */
    assert_int_equal(adm_image_ent_parse("12 12 1 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(adm_image_ent_parse("12 13 1 0 1 2 0 /a", &e), -EPROTO);
    assert_int_equal(adm_image_ent_parse("12 7 1 0 1 2 0 a", &e), -EPROTO);
}

/* base(2) -> snap(4) -> clones 5 and 7, 7 -> snap 9; 6 was made from a
 * removed file; 8 from a live file outside the list. */
static void test_adm_image_tree_order(void **state)
{
    static const struct {
        uint64_t ino, origin;
        bool live;
    } in[] = {{2, 0, false}, {4, 2, true}, {5, 4, true}, {6, 3, false},
              {7, 4, true},  {8, 1, true}, {9, 7, true}};
    struct adm_image_ent e[7];
    struct adm_image_tree t;
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
    assert_int_equal(adm_image_tree(e, 7, &t), 0);
    assert_int_equal(t.n, 7);
    for (size_t j = 0; j < 7; j++) {
        assert_int_equal(t.order[j], want[j]);
        assert_int_equal(t.depth[j], depth[j]);
    }
    adm_image_tree_free(&t);
    adm_image_tree_free(&t); /* a second free is harmless */
}

int test_adm_image(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_parse_size_units),
        cmocka_unit_test(test_adm_parse_size_rejects),
        cmocka_unit_test(test_adm_split_path_cases),
        cmocka_unit_test(test_adm_image_ent_parse_fields),
        cmocka_unit_test(test_adm_image_ent_parse_rejects),
        cmocka_unit_test(test_adm_image_tree_order),
    };
    return cmocka_run_group_tests_name("adm_image", tests, NULL, NULL);
}
