/* test_meta_chunk.c: chunk slots (META_OP_CHUNK_SET, CHUNK_WRITE_END,
 * CHUNK_LOCATE), storage servers, the gc list and st_blocks from the chunks'
 * reported usage (META_OP_CHUNK_USAGE). */
#include "test_meta_util.h"

#include "meta_internal.h"

#define R cred_root()
#define CHUNK ((uint64_t)PROTO_CHUNK_SIZE)

static int do_register(struct fx *f, uint8_t tag, const char *addr,
                       uint32_t *id)
{
    struct proto_wbuf w, reply;
    struct proto_server_register_req q = {
        .addr = str_of(addr), .capacity = 1ull << 40, .free = 1ull << 39};
    memset(q.uuid, tag, sizeof(q.uuid));
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_server_register_req_encode(&w, &q);
    int r = fx_apply(f, PROTO_MSG_SERVER_REGISTER_REQ, &w, &reply);
    if (r == 0) {
        struct proto_server_register_rep rep;
        assert_int_equal(
            proto_server_register_rep_decode(reply.p, reply.len, &rep), 0);
        *id = rep.server_id;
    }
    proto_wbuf_free(&reply);
    return r;
}

static int do_write_end_at(struct fx *f, uint64_t ino, uint64_t index,
                           uint64_t chunk_id, uint64_t size, int64_t mtime,
                           struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_chunk_write_end_req q = {.ino = ino,
                                          .index = index,
                                          .chunk_id = chunk_id,
                                          .size = size,
                                          .mtime = mtime};
    proto_wbuf_init(&w);
    proto_chunk_write_end_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_CHUNK_WRITE_END_REQ, true, &w, a);
}

static int do_write_end(struct fx *f, uint64_t ino, uint64_t index,
                        uint64_t chunk_id, uint64_t size, struct proto_attr *a)
{
    return do_write_end_at(f, ino, index, chunk_id, size, 4242, a);
}

static int do_gc_done(struct fx *f, uint64_t chunk_id, uint32_t server)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u64(&w, chunk_id);
    proto_put_u32(&w, server);
    return fx_apply(f, META_OP_GC_DONE, &w, NULL);
}

struct gc_list {
    int n;
    uint64_t chunk[16], version[16];
    uint32_t server[16];
};

static int gc_collect(uint64_t chunk_id, uint64_t version, uint32_t server,
                      void *arg)
{
    struct gc_list *l = arg;
    l->chunk[l->n] = chunk_id;
    l->version[l->n] = version;
    l->server[l->n] = server;
    l->n++;
    return 0;
}

static int server_count(const struct meta_server *s, void *arg)
{
    int *n = arg;
    assert_true(s->id > 0);
    assert_true(s->addr[0] != 0);
    (*n)++;
    return 0;
}

static void test_meta_chunk_server_register_same_uuid(void **state)
{
    struct fx *f = *state;
    uint32_t a, b, c;
    assert_int_equal(do_register(f, 1, "10.0.0.1:9422", &a), 0);
    assert_int_equal(do_register(f, 2, "10.0.0.2:9422", &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(do_register(f, 1, "10.0.0.9:9422", &c), 0);
    assert_int_equal(c, a);
    int n = 0;
    assert_int_equal(meta_server_foreach(f->db, server_count, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(do_register(f, 3, "", &c), -EINVAL);
}

static void test_meta_chunk_set_new_and_bump(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    struct meta_chunk c;
    uint32_t s[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(do_register(f, (uint8_t)(i + 1), "h:1", &s[i]), 0);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(meta_chunk_max_id(f->db), 0);
    assert_int_equal(meta_chunk_at(f->db, a.ino, 0, &c), -ENOENT);
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 1, 0, 1, 3, s), 0);
    assert_int_equal(meta_chunk_max_id(f->db), 1);
    assert_int_equal(meta_chunk_at(f->db, a.ino, 0, &c), 0);
    assert_int_equal(c.chunk_id, 1);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.nreplicas, 3);
    assert_int_equal(c.servers[0], s[0]);
    assert_int_equal(c.servers[2], s[2]);
    /* A second "new chunk" for the same slot lost a race. */
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 2, 0, 1, 1, s), -ESTALE);
    /* Bump with the wrong old version, then the right one, losing s[1]. */
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 1, 7, 8, 2, s), -ESTALE);
    uint32_t keep[2] = {s[2], s[0]};
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 1, 1, 2, 2, keep), 0);
    assert_int_equal(meta_chunk_get(f->db, 1, &c), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.nreplicas, 2);
    assert_int_equal(c.servers[0], s[2]);
    assert_int_equal(c.ino, a.ino);
    struct gc_list l = {0};
    assert_int_equal(meta_gc_foreach(f->db, 0, 10, gc_collect, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.chunk[0], 1);
    assert_int_equal(l.version[0], 1);
    assert_int_equal(l.server[0], s[1]);
    /* Errors: unknown server, inode, directory; chunk ids never reused. */
    uint32_t bad = 99;
    assert_int_equal(fx_chunk_set(f, a.ino, 1, 5, 0, 1, 1, &bad), -EINVAL);
    assert_int_equal(fx_chunk_set(f, 999, 1, 5, 0, 1, 1, s), -ENOENT);
    assert_int_equal(fx_chunk_set(f, ROOT, 1, 5, 0, 1, 1, s), -EISDIR);
    assert_int_equal(fx_chunk_set(f, a.ino, 1, 1, 0, 1, 1, s), -ESTALE);
    assert_int_equal(meta_chunk_get(f->db, 5, &c), -ENOENT);
    uint32_t goal;
    assert_int_equal(meta_goal_get(f->db, a.ino, &goal), 0);
    assert_int_equal(goal, 3);
    assert_int_equal(meta_goal_get(f->db, 999, &goal), -ENOENT);
}

static void test_meta_chunk_write_end_grows_size(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    uint32_t s;
    assert_int_equal(do_register(f, 1, "h:1", &s), 0);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 10, 0, 1, 1, &s), 0);
    assert_int_equal(do_write_end(f, a.ino, 0, 10, 5000, &b), 0);
    assert_int_equal(b.size, 5000);
    /* The times are the write's: mtime as reported, ctime never back
     * (the create's is later than 4242). */
    assert_int_equal(b.mtime, 4242);
    assert_int_equal(b.ctime, a.ctime);
    assert_true(b.version > a.version);
    int64_t later = a.ctime + 500;
    assert_int_equal(do_write_end_at(f, a.ino, 0, 10, 0, later, &b), 0);
    assert_int_equal(b.mtime, later);
    assert_int_equal(b.ctime, later);
    /* No time reported: metad's clock, for both. */
    assert_int_equal(do_write_end_at(f, a.ino, 0, 10, 0, 0, &b), 0);
    assert_int_equal(b.mtime, f->now);
    assert_int_equal(b.ctime, f->now);
    assert_int_equal(do_write_end(f, a.ino, 0, 10, 100, &b), 0);
    assert_int_equal(b.size, 5000);
    assert_int_equal(do_write_end(f, a.ino, 0, 10, 0, &b), 0);
    assert_int_equal(b.size, 5000);
    assert_int_equal(do_write_end(f, a.ino, 0, 11, 9000, NULL), -ESTALE);
    assert_int_equal(do_write_end(f, a.ino, 1, 10, 9000, NULL), -ESTALE);
    assert_int_equal(do_write_end(f, 999, 0, 10, 9000, NULL), -ENOENT);
    assert_int_equal(attr_of(f, a.ino).size, 5000);
}

static void test_meta_chunk_locate_slots(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    uint32_t s[2];
    assert_int_equal(do_register(f, 1, "10.0.0.1:9422", &s[0]), 0);
    assert_int_equal(do_register(f, 2, "10.0.0.2:9422", &s[1]), 0);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 2, 7, 0, 3, 2, s), 0);
    assert_int_equal(do_write_end(f, a.ino, 2, 7, 3 * CHUNK + 1, NULL), 0);
    struct proto_wbuf w, reply;
    struct proto_chunk_locate_req q = {.ino = a.ino, .first = 1, .count = 10};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_chunk_locate_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &reply), 0);
    struct proto_chunk_locate_rep rep;
    assert_int_equal(proto_chunk_locate_rep_decode(reply.p, reply.len, &rep),
                     0);
    assert_int_equal(rep.file_size, 3 * CHUNK + 1);
    assert_int_equal(rep.count, 3); /* slots 1, 2, 3 */
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    proto_chunk_loc_iter_init(&it, &rep);
    assert_true(proto_chunk_loc_next(&it, &loc));
    assert_int_equal(loc.index, 1);
    assert_int_equal(loc.chunk_id, 0);
    assert_int_equal(loc.nreplicas, 0);
    assert_true(proto_chunk_loc_next(&it, &loc));
    assert_int_equal(loc.index, 2);
    assert_int_equal(loc.chunk_id, 7);
    assert_int_equal(loc.version, 3);
    assert_int_equal(loc.nreplicas, 2);
    assert_int_equal(loc.replicas[1].server_id, s[1]);
    assert_int_equal(loc.replicas[1].addr.len, strlen("10.0.0.2:9422"));
    assert_memory_equal(loc.replicas[1].addr.p, "10.0.0.2:9422",
                        loc.replicas[1].addr.len);
    assert_true(proto_chunk_loc_next(&it, &loc));
    assert_int_equal(loc.index, 3);
    assert_int_equal(loc.chunk_id, 0);
    assert_false(proto_chunk_loc_next(&it, &loc));
    proto_wbuf_free(&reply);
    q.ino = ROOT;
    proto_chunk_locate_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_CHUNK_LOCATE_REQ, &w, NULL),
                     -EISDIR);
}

static int do_usage(struct fx *f, uint32_t n, const uint64_t *ids,
                    const uint64_t *bytes)
{
    struct meta_op_chunk_usage *m = calloc(1, sizeof(*m));
    struct proto_wbuf w;
    int r;

    assert_non_null(m);
    m->n = n;
    for (uint32_t i = 0; i < n; i++)
        m->v[i] = (struct proto_usage_entry){ids[i], bytes[i]};
    proto_wbuf_init(&w);
    meta_op_chunk_usage_encode(&w, m);
    free(m);
    assert_int_equal(w.err, 0);
    r = fx_apply(f, META_OP_CHUNK_USAGE, &w, NULL);
    return r;
}

/* st_blocks sums what each chunk the file holds takes on disk, as its
 * servers reported it (META_OP_CHUNK_USAGE), not the chunks' size: a
 * 100 GiB file with 1 MiB written at 50 GiB takes about 1 MiB
 * (docs/protocol.md §4.2). */
static void test_meta_chunk_blocks_sum_reported_usage(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    uint32_t srv = fx_server_add(f, 1);
    struct proto_setattr_req q = {
        .cred = cred_root(), .valid = PROTO_SETATTR_SIZE, .size = 100ull << 30};
    const uint64_t chunk = PROTO_CHUNK_SIZE, idx = (50ull << 30) / chunk;
    uint64_t id = 77, mib = 1u << 20, big = 3 * mib, gone = 999;
    int64_t usage;

    assert_int_equal(do_create(f, cred_root(), ROOT, "sparse", 0644, &a), 0);
    q.ino = a.ino;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.blocks, 0);
    /* A new chunk counts whole in the file until its server says how
     * much it takes: st_blocks never says 0 for a file with data, which
     * tar --sparse would take for a file of holes alone. */
    assert_int_equal(fx_chunk_set1(f, a.ino, idx, id, 0, 1, srv), 0);
    assert_int_equal(meta_chunk_usage(f->db, id, &usage), 0);
    assert_int_equal(usage, -1);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, chunk / 512);
    /* 1 MiB and a bit: rounded up to whole 512-byte units. */
    uint64_t v = mib + 100;
    assert_int_equal(do_usage(f, 1, &id, &v), 0);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, (mib + 512) / 512);
    /* It grows and shrinks with the reports; unknown chunks are skipped. */
    uint64_t ids[2] = {id, gone}, bytes[2] = {big, mib};
    assert_int_equal(do_usage(f, 2, ids, bytes), 0);
    assert_int_equal(meta_chunk_usage(f->db, gone, &usage), -ENOENT);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, big / 512);
    v = 4096;
    assert_int_equal(do_usage(f, 1, &id, &v), 0);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, 4096 / 512);
    /* Cutting the file below the chunk takes the chunk and its blocks. */
    q.size = idx * chunk;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.blocks, 0);
    assert_int_equal(meta_chunk_usage(f->db, id, &usage), -ENOENT);
}

/* A chunk made before metad kept the figure (NULL) counts up to the file's
 * size, as st_blocks did then, until its server reports it. */
static void test_meta_chunk_blocks_unreported_chunk(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    uint32_t srv = fx_server_add(f, 1);
    uint64_t id = 5, v = 8192;
    int64_t usage;

    assert_int_equal(do_create(f, cred_root(), ROOT, "old", 0644, &a), 0);
    assert_int_equal(fx_chunk_set1(f, a.ino, 0, id, 0, 1, srv), 0);
    assert_int_equal(do_write_end(f, a.ino, 0, id, 10000, NULL), 0);
    assert_int_equal(sqlite3_exec(f->db->sql, "UPDATE chunks SET alloc = NULL",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(meta_chunk_usage(f->db, id, &usage), 0);
    assert_int_equal(usage, -1);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, (10000 + 511) / 512);
    assert_int_equal(do_usage(f, 1, &id, &v), 0);
    assert_int_equal(do_getattr(f, a.ino, &b), 0);
    assert_int_equal(b.blocks, 8192 / 512);
}

/* A record with no figure or a broken one is refused, and changes nothing. */
static void test_meta_chunk_usage_bad_record(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_put_u32(&w, 0);
    assert_int_equal(fx_apply(f, META_OP_CHUNK_USAGE, &w, NULL), -EPROTO);
    proto_wbuf_init(&w);
    proto_put_u32(&w, 1);
    proto_put_u64(&w, 1);
    assert_int_equal(fx_apply(f, META_OP_CHUNK_USAGE, &w, NULL), -EPROTO);
}

static void test_meta_chunk_truncate_and_unlink_feed_gc(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    uint32_t s[2];
    assert_int_equal(do_register(f, 1, "h:1", &s[0]), 0);
    assert_int_equal(do_register(f, 2, "h:2", &s[1]), 0);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(fx_chunk_set(f, a.ino, i, 100 + i, 0, 1, 2, s), 0);
    assert_int_equal(do_write_end(f, a.ino, 2, 102, 3 * CHUNK, NULL), 0);
    /* Shrink into slot 1: slot 2 goes, slot 1 stays (partly kept). */
    struct proto_setattr_req q = {.cred = R,
                                  .ino = a.ino,
                                  .valid = PROTO_SETATTR_SIZE,
                                  .size = CHUNK + 10};
    assert_int_equal(do_setattr(f, &q, NULL), 0);
    struct meta_chunk c;
    assert_int_equal(meta_chunk_at(f->db, a.ino, 1, &c), 0);
    assert_int_equal(meta_chunk_at(f->db, a.ino, 2, &c), -ENOENT);
    assert_int_equal(meta_chunk_get(f->db, 102, &c), -ENOENT);
    struct gc_list l = {0};
    assert_int_equal(meta_gc_foreach(f->db, 0, 10, gc_collect, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.chunk[0], 102);
    assert_int_equal(l.chunk[1], 102);
    /* The last unlink lists every replica of every chunk. */
    assert_int_equal(do_unlink(f, R, ROOT, "f"), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(meta_gc_foreach(f->db, 0, 16, gc_collect, &l), 0);
    assert_int_equal(l.n, 6);
    memset(&l, 0, sizeof(l));
    assert_int_equal(meta_gc_foreach(f->db, 0, 4, gc_collect, &l), 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(do_gc_done(f, 100, s[0]), 0);
    assert_int_equal(do_gc_done(f, 100, s[0]), -ENOENT);
    memset(&l, 0, sizeof(l));
    assert_int_equal(meta_gc_foreach(f->db, 0, 16, gc_collect, &l), 0);
    assert_int_equal(l.n, 5);
    assert_int_equal(meta_chunk_max_id(f->db), 102);
}

int test_meta_chunk(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_chunk_server_register_same_uuid),
        T(test_meta_chunk_set_new_and_bump),
        T(test_meta_chunk_write_end_grows_size),
        T(test_meta_chunk_locate_slots),
        T(test_meta_chunk_truncate_and_unlink_feed_gc),
        T(test_meta_chunk_blocks_sum_reported_usage),
        T(test_meta_chunk_blocks_unreported_chunk),
        T(test_meta_chunk_usage_bad_record),
#undef T
    };
    return cmocka_run_group_tests_name("meta_chunk", tests, NULL, NULL);
}
