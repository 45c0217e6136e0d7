/* test_meta_image.c: snapshots and clones in the engine: shared chunks
 * and their reference counts, META_OP_CHUNK_COW, the gc list only at the
 * last reference, read-only snapshots, IMAGE_INFO, IMAGE_LIST (lineage and
 * space), op-log replay, IMAGE_ROLLBACK, IMAGE_FLATTEN and IMAGE_CHANGES. */
#include "meta_internal.h"
#include "test_meta_util.h"

#define R cred_root()
#define CHUNK ((uint64_t)PROTO_CHUNK_SIZE)

static const struct proto_cred U1 = {.uid = 1000, .gid = 1000};
static const struct proto_cred U2 = {.uid = 2000, .gid = 2000};

static int do_cow(struct fx *f, uint64_t ino, uint64_t index, uint64_t src,
                  uint64_t src_v, uint64_t new_id, uint32_t server)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u64(&w, ino);
    proto_put_u64(&w, index);
    proto_put_u64(&w, src);
    proto_put_u64(&w, src_v);
    proto_put_u64(&w, new_id);
    proto_put_u64(&w, 1);
    proto_put_u32(&w, 1);
    proto_put_u32(&w, server);
    return fx_apply(f, META_OP_CHUNK_COW, &w, NULL);
}

/* META_OP_CHUNK_COW with the bump trailer: the copy on @server, the
 * source moved to src_v + 1 on the @nb servers in @bumped.  Returns the
 * record's result; *moved gets the reply byte. */
static int do_cow_bump(struct fx *f, uint64_t ino, uint64_t index, uint64_t src,
                       uint64_t src_v, uint64_t new_id, uint32_t server,
                       const uint32_t *bumped, uint32_t nb, int *moved)
{
    struct proto_wbuf w, reply;
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_put_u64(&w, ino);
    proto_put_u64(&w, index);
    proto_put_u64(&w, src);
    proto_put_u64(&w, src_v);
    proto_put_u64(&w, new_id);
    proto_put_u64(&w, 1);
    proto_put_u32(&w, 1);
    proto_put_u32(&w, server);
    proto_put_u64(&w, src_v + 1);
    proto_put_u32(&w, nb);
    for (uint32_t i = 0; i < nb; i++)
        proto_put_u32(&w, bumped[i]);
    int r = fx_apply(f, META_OP_CHUNK_COW, &w, &reply);
    *moved = -1;
    if (r == 0) {
        assert_int_equal(reply.len, 1);
        *moved = reply.p[0];
    }
    proto_wbuf_free(&reply);
    return r;
}

static int do_snap(struct fx *f, uint16_t opcode, struct proto_cred c,
                   uint64_t ino, uint64_t parent, const char *name,
                   struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_snapshot_req q = {
        .cred = c, .ino = ino, .parent = parent, .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_snapshot_req_encode(&w, &q);
    return fx_attr_op(f, opcode, true, &w, a);
}

static int do_write_end(struct fx *f, uint64_t ino, uint64_t index,
                        uint64_t chunk_id, uint64_t size)
{
    struct proto_wbuf w;
    struct proto_chunk_write_end_req q = {
        .ino = ino, .index = index, .chunk_id = chunk_id, .size = size};
    proto_wbuf_init(&w);
    proto_chunk_write_end_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_CHUNK_WRITE_END_REQ, &w, NULL);
}

static int do_truncate(struct fx *f, uint64_t ino, uint64_t size)
{
    struct proto_setattr_req q = {
        .cred = R, .ino = ino, .valid = PROTO_SETATTR_SIZE, .size = size};
    return do_setattr(f, &q, NULL);
}

static uint32_t refs(struct fx *f, uint64_t chunk_id)
{
    struct meta_chunk c;
    assert_int_equal(meta_chunk_get(f->db, chunk_id, &c), 0);
    return c.refs;
}

static uint64_t chunk_of(struct fx *f, uint64_t ino, uint64_t index)
{
    struct meta_chunk c;
    int r = meta_chunk_at(f->db, ino, index, &c);
    if (r == -ENOENT)
        return 0;
    assert_int_equal(r, 0);
    return c.chunk_id;
}

/* /img (3 chunks: ids 1, 2, 3 at index 0, 1, 3; a hole at 2), size 3.5
 * chunks, on server *sid. */
static uint64_t make_image(struct fx *f, uint32_t *sid)
{
    struct proto_attr a;
    *sid = fx_server_add(f, 1);
    assert_int_equal(do_create(f, R, ROOT, "img", 0644, &a), 0);
    assert_int_equal(fx_chunk_set1(f, a.ino, 0, 1, 0, 1, *sid), 0);
    assert_int_equal(fx_chunk_set1(f, a.ino, 1, 2, 0, 1, *sid), 0);
    assert_int_equal(fx_chunk_set1(f, a.ino, 3, 3, 0, 1, *sid), 0);
    assert_int_equal(do_write_end(f, a.ino, 3, 3, 3 * CHUNK + CHUNK / 2), 0);
    return a.ino;
}

static void test_meta_image_snapshot_shares_chunks(void **state)
{
    struct fx *f = *state;
    struct proto_attr src, s;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    src = attr_of(f, img);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_true(s.ino != img);
    assert_int_equal(s.size, src.size);
    assert_int_equal(s.mode, src.mode);
    assert_int_equal(s.nlink, 1);
    assert_int_equal(ino_of(f, ROOT, "snap"), s.ino);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(chunk_of(f, s.ino, i), chunk_of(f, img, i));
    assert_int_equal(chunk_of(f, s.ino, 2), 0);
    assert_int_equal(refs(f, 1), 2);
    assert_int_equal(refs(f, 3), 2);
    struct meta_stats st;
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.chunks, 3); /* shared, not copied */
    assert_int_equal(fx_gc_count(f), 0);
}

static void test_meta_image_clone_of_snapshot_counts(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "clone", &c), 0);
    assert_int_equal(refs(f, 2), 3);
    uint32_t flags = 9;
    assert_int_equal(meta_inode_flags(f->db, s.ino, &flags), 0);
    assert_int_equal(flags, META_INODE_READONLY);
    assert_int_equal(meta_inode_flags(f->db, c.ino, &flags), 0);
    assert_int_equal(flags, 0);
}

static void test_meta_image_cow_moves_slot(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 10, sid), 0);
    assert_int_equal(chunk_of(f, c.ino, 1), 10);
    assert_int_equal(chunk_of(f, img, 1), 2);
    assert_int_equal(refs(f, 2), 1);
    assert_int_equal(refs(f, 10), 1);
    assert_int_equal(meta_chunk_max_id(f->db), 10);
    assert_int_equal(fx_gc_count(f), 0);
    /* Now private: a plain version bump is allowed again. */
    assert_int_equal(fx_chunk_set1(f, img, 1, 2, 1, 2, sid), 0);
}

static void test_meta_image_cow_stale(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 7, 10, sid), -ESTALE);
    assert_int_equal(do_cow(f, c.ino, 1, 1, 1, 10, sid), -ESTALE);
    assert_int_equal(do_cow(f, c.ino, 2, 2, 1, 10, sid), -ESTALE);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 3, sid), -ESTALE);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 10, sid + 5), -EINVAL);
    assert_int_equal(refs(f, 2), 2);
}

static uint64_t version_of(struct fx *f, uint64_t chunk_id)
{
    struct meta_chunk c;
    assert_int_equal(meta_chunk_get(f->db, chunk_id, &c), 0);
    return c.version;
}

static int gc_find_fn(uint64_t chunk_id, uint64_t version, uint32_t server,
                      void *arg)
{
    uint64_t *want = arg; /* chunk, version, server; [3] counts hits */
    if (chunk_id == want[0] && version == want[1] && server == want[2])
        want[3]++;
    return 0;
}

static bool gc_has_at(struct fx *f, uint64_t chunk_id, uint64_t version,
                      uint32_t server)
{
    uint64_t want[4] = {chunk_id, version, server, 0};
    assert_int_equal(meta_gc_foreach(f->db, 0, 1000, gc_find_fn, want), 0);
    return want[3] == 1;
}

static void test_meta_image_cow_bumps_source(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    int moved;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_cow_bump(f, img, 1, 2, 1, 10, sid, &sid, 1, &moved), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(chunk_of(f, img, 1), 10);
    assert_int_equal(chunk_of(f, c.ino, 1), 2);
    /* The clone's slot now names chunk 2 at the bumped version: a client
     * holding (2, 1) is refused and locates again. */
    assert_int_equal(version_of(f, 2), 2);
    assert_int_equal(version_of(f, 10), 1);
    assert_int_equal(refs(f, 2), 1);
    assert_int_equal(fx_gc_count(f), 0);
    /* Copying from the old version again is stale. */
    assert_int_equal(do_cow_bump(f, img, 0, 1, 2, 11, sid, &sid, 1, &moved),
                     -ESTALE);
    assert_int_equal(do_cow_bump(f, c.ino, 1, 2, 1, 11, sid, &sid, 1, &moved),
                     -ESTALE);
    assert_int_equal(version_of(f, 1), 1);
    /* Bad trailers. */
    assert_int_equal(do_cow_bump(f, img, 0, 1, 1, 11, sid, &sid, 0, &moved),
                     -EINVAL);
}

static void test_meta_image_cow_bump_drops_missed_replica(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, c;
    struct proto_wbuf w;
    struct meta_chunk ch;
    int moved;
    uint32_t s1 = fx_server_add(f, 1), s2 = fx_server_add(f, 2);
    assert_int_equal(do_create(f, R, ROOT, "img", 0644, &a), 0);
    proto_wbuf_init(&w);
    proto_put_u64(&w, a.ino);
    proto_put_u64(&w, 0);
    proto_put_u64(&w, 1);
    proto_put_u64(&w, 0);
    proto_put_u64(&w, 1);
    proto_put_u32(&w, 2);
    proto_put_u32(&w, s1);
    proto_put_u32(&w, s2);
    assert_int_equal(fx_apply(f, META_OP_CHUNK_SET, &w, NULL), 0);
    assert_int_equal(do_write_end(f, a.ino, 0, 1, CHUNK), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, a.ino, ROOT, "snap", &c), 0);
    /* s1 made the copy but missed the bump; a server that is no replica
     * of the source is ignored. */
    uint32_t bumped[] = {s2, 99};
    assert_int_equal(do_cow_bump(f, a.ino, 0, 1, 1, 10, s1, bumped, 2, &moved),
                     0);
    assert_int_equal(moved, 1);
    assert_int_equal(meta_chunk_get(f->db, 1, &ch), 0);
    assert_int_equal(ch.version, 2);
    assert_int_equal(ch.nreplicas, 1);
    assert_int_equal(ch.servers[0], s2);
    assert_true(gc_has_at(f, 1, 1, s1));
    assert_int_equal(fx_gc_count(f), 1);
    assert_int_equal(chunk_of(f, c.ino, 0), 1);
}

static void test_meta_image_cow_bump_recorded_when_slot_moved(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    int moved;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    /* A hole write took a higher id while the copy was made. */
    assert_int_equal(fx_chunk_set1(f, img, 2, 12, 0, 1, sid), 0);
    assert_int_equal(do_cow_bump(f, img, 1, 2, 1, 10, sid, &sid, 1, &moved), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(chunk_of(f, img, 1), 2);
    assert_int_equal(version_of(f, 2), 2);
    assert_int_equal(refs(f, 2), 2);
    assert_int_equal(meta_chunk_max_id(f->db), 12);
    /* The slot went (truncate) while the copy was made. */
    assert_int_equal(do_truncate(f, c.ino, 0), 0);
    assert_int_equal(do_cow_bump(f, c.ino, 3, 3, 1, 13, sid, &sid, 1, &moved),
                     0);
    assert_int_equal(moved, 0);
    assert_int_equal(version_of(f, 3), 2);
    /* The file went. */
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", NULL), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "clone"), 0);
    assert_int_equal(do_cow_bump(f, c.ino, 0, 1, 1, 14, sid, &sid, 1, &moved),
                     0);
    assert_int_equal(moved, 0);
    assert_int_equal(version_of(f, 1), 2);
    assert_int_equal(meta_chunk_max_id(f->db), 12);
}

static void test_meta_image_cow_bump_last_sharer_gc_version(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    int moved;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);
    assert_int_equal(do_cow_bump(f, c.ino, 0, 1, 1, 10, sid, &sid, 1, &moved),
                     0);
    assert_int_equal(moved, 1);
    /* Listed at the version the server now has. */
    assert_true(gc_has_at(f, 1, 2, sid));
    assert_int_equal(fx_gc_count(f), 1);
}

static void test_meta_image_bump_of_shared_chunk_stale(void **state)
{
    struct fx *f = *state;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", NULL), 0);
    assert_int_equal(fx_chunk_set1(f, img, 0, 1, 1, 2, sid), -ESTALE);
}

static void test_meta_image_unlink_origin_keeps_snapshot(void **state)
{
    struct fx *f = *state;
    struct proto_attr s;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);
    assert_int_equal(fx_gc_count(f), 0);
    assert_int_equal(chunk_of(f, s.ino, 0), 1);
    assert_int_equal(chunk_of(f, s.ino, 3), 3);
    assert_int_equal(refs(f, 1), 1);
    /* The last reference lists every replica for deletion. */
    assert_int_equal(do_unlink(f, R, ROOT, "snap"), 0);
    assert_int_equal(fx_gc_count(f), 3);
    struct meta_chunk c;
    assert_int_equal(meta_chunk_get(f->db, 1, &c), -ENOENT);
}

static void test_meta_image_truncate_drops_only_last_ref(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 3, 3, 1, 10, sid), 0);
    assert_int_equal(do_truncate(f, c.ino, CHUNK), 0);
    /* Chunk 2 is still the origin's, chunk 10 was the clone's alone. */
    assert_int_equal(fx_gc_count(f), 1);
    assert_int_equal(refs(f, 2), 1);
    assert_int_equal(refs(f, 1), 2);
    assert_int_equal(do_truncate(f, img, 0), 0);
    assert_int_equal(fx_gc_count(f), 3); /* 10, 2, 3 */
    assert_int_equal(refs(f, 1), 1);
}

static void test_meta_image_cow_after_other_sharer_gone(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    /* The copy was planned while shared; the origin went meanwhile. */
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);
    assert_int_equal(do_cow(f, c.ino, 0, 1, 1, 10, sid), 0);
    assert_int_equal(fx_gc_count(f), 1);
    struct meta_chunk ch;
    assert_int_equal(meta_chunk_get(f->db, 1, &ch), -ENOENT);
}

static void test_meta_image_snapshot_is_readonly(void **state)
{
    struct fx *f = *state;
    struct proto_attr s;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, R, s.ino, O_RDWR),
                     -EROFS);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, R, s.ino, O_WRONLY),
                     -EROFS);
    assert_int_equal(
        do_access(f, PROTO_MSG_OPEN_REQ, R, s.ino, O_RDONLY | O_TRUNC), -EROFS);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, R, s.ino, O_RDONLY), 0);
    assert_int_equal(do_truncate(f, s.ino, 0), -EROFS);
    assert_int_equal(do_setxattr(f, R, s.ino, "user.a", "1", 0), -EROFS);
    assert_int_equal(fx_chunk_set1(f, s.ino, 2, 20, 0, 1, sid), -EROFS);
    assert_int_equal(do_cow(f, s.ino, 0, 1, 1, 20, sid), -EROFS);
    assert_int_equal(do_write_end(f, s.ino, 0, 1, 5 * CHUNK), -EROFS);
    assert_int_equal(do_chmod(f, R, s.ino, 0600, NULL), 0);
    assert_int_equal(do_rename(f, R, ROOT, "snap", ROOT, "snap2", 0), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "snap2"), 0);
    assert_int_equal(fx_gc_count(f), 0);
}

static void test_meta_image_snapshot_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, p;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0777, &d), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, d.ino, ROOT, "x", NULL), -EISDIR);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, 999, ROOT, "x", NULL), -ENOENT);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "img", NULL), -EEXIST);
    assert_int_equal(do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, img, "x", NULL),
                     -ENOTDIR);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "a/b", NULL), -EINVAL);
    /* U1 may not write the root, and U2 may not read U1's private file. */
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, U1, img, ROOT, "x", NULL),
                     -EACCES);
    assert_int_equal(do_create(f, U1, d.ino, "priv", 0600, &p), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, U2, p.ino, d.ino, "x", NULL), -EACCES);
    struct proto_attr c;
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, U1, p.ino, d.ino, "mine", &c), 0);
    assert_int_equal(c.uid, U1.uid);
}

static void test_meta_image_info_lists_sharers(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_mkdir(f, R, ROOT, "snaps", 0755, &d), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, d.ino, "s1", &s), 0);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "c1", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 0, 1, 1, 10, sid), 0);

    struct proto_wbuf w, reply;
    struct proto_ino_req q = {.ino = img};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_ino_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_IMAGE_INFO_REQ, &w, &reply), 0);
    struct proto_status_rep rep;
    assert_int_equal(proto_status_rep_decode(reply.p, reply.len, &rep), 0);
    struct proto_kv_iter it;
    struct proto_str k, v;
    char got[1024] = "";
    proto_kv_iter_init(&it, &rep);
    while (proto_kv_next(&it, &k, &v)) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof(got) - len, "%.*s=%.*s;", (int)k.len, k.p,
                 (int)v.len, v.p);
    }
    char want[1024];
    snprintf(want, sizeof(want),
             "ino=%llu;size=%llu;allocated=%llu;chunks=3;shared=3;goal=3;"
             "readonly=0;sharer=%llu 3 /snaps/s1;sharer=%llu 2 /c1;",
             (unsigned long long)img,
             (unsigned long long)(3 * CHUNK + CHUNK / 2),
             (unsigned long long)(2 * CHUNK + CHUNK / 2),
             (unsigned long long)s.ino, (unsigned long long)c.ino);
    assert_string_equal(got, want);
    proto_wbuf_free(&reply);
}

/* IMAGE_LIST of @ino as "key=value;" pairs into @got. */
static int image_list(struct fx *f, uint64_t ino, char *got, size_t size)
{
    struct proto_wbuf w, reply;
    struct proto_ino_req q = {.ino = ino};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_ino_req_encode(&w, &q);
    int r = fx_query(f, PROTO_MSG_IMAGE_LIST_REQ, &w, &reply);
    got[0] = '\0';
    if (r == 0) {
        struct proto_status_rep rep;
        struct proto_kv_iter it;
        struct proto_str k, v;
        assert_int_equal(proto_status_rep_decode(reply.p, reply.len, &rep), 0);
        proto_kv_iter_init(&it, &rep);
        while (proto_kv_next(&it, &k, &v)) {
            size_t len = strlen(got);
            snprintf(got + len, size - len, "%.*s=%.*s;", (int)k.len, k.p,
                     (int)v.len, v.p);
        }
    }
    proto_wbuf_free(&reply);
    return r;
}

/* /img -> snapshot /snaps/s1 -> clone /c1 (its chunk 0 copied): each with
 * its origin, mapped bytes and the part of them in shared chunks. */
static void test_meta_image_list_lineage_and_bytes(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, s, c, e;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    unsigned long long sz = 3 * CHUNK + CHUNK / 2,
                       mapped = 2 * CHUNK + CHUNK / 2;
    assert_int_equal(do_mkdir(f, R, ROOT, "snaps", 0755, &d), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, d.ino, "s1", &s), 0);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "c1", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 0, 1, 1, 10, sid), 0);
    assert_int_equal(do_create(f, R, ROOT, "empty", 0644, &e), 0);

    char got[2048], want[2048];
    assert_int_equal(image_list(f, ROOT, got, sizeof(got)), 0);
    snprintf(want, sizeof(want),
             "image=%llu 0 0 0 %llu %llu %llu /img;"
             "image=%llu %llu 1 1 %llu %llu %llu /snaps/s1;"
             "image=%llu %llu 1 0 %llu %llu %llu /c1;"
             "image=%llu 0 0 0 0 0 0 /empty;",
             (unsigned long long)img, sz, mapped, mapped,
             (unsigned long long)s.ino, (unsigned long long)img, sz, mapped,
             mapped, (unsigned long long)c.ino, (unsigned long long)s.ino, sz,
             mapped, mapped - CHUNK, (unsigned long long)e.ino);
    assert_string_equal(got, want);

    /* A directory lists its subtree only; a file lists itself. */
    assert_int_equal(image_list(f, d.ino, got, sizeof(got)), 0);
    snprintf(
        want, sizeof(want), "image=%llu %llu 1 1 %llu %llu %llu /snaps/s1;",
        (unsigned long long)s.ino, (unsigned long long)img, sz, mapped, mapped);
    assert_string_equal(got, want);
    assert_int_equal(image_list(f, c.ino, got, sizeof(got)), 0);
    assert_non_null(strstr(got, " /c1;"));
    assert_null(strchr(strchr(got, ';') + 1, '='));
}

/* Removing the origin: the snapshot says its origin is gone, and the
 * chunk only it names now counts as its own. */
static void test_meta_image_list_origin_removed(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    unsigned long long sz = 3 * CHUNK + CHUNK / 2,
                       mapped = 2 * CHUNK + CHUNK / 2;
    assert_int_equal(do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s1", &s),
                     0);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "c1", &c),
                     0);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 10, sid), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);

    char got[2048], want[2048];
    assert_int_equal(image_list(f, ROOT, got, sizeof(got)), 0);
    snprintf(want, sizeof(want),
             "image=%llu %llu 0 1 %llu %llu %llu /s1;"
             "image=%llu %llu 1 0 %llu %llu %llu /c1;",
             (unsigned long long)s.ino, (unsigned long long)img, sz, mapped,
             mapped - CHUNK, (unsigned long long)c.ino,
             (unsigned long long)s.ino, sz, mapped, mapped - CHUNK);
    assert_string_equal(got, want);
}

static void test_meta_image_list_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr l;
    char got[64];
    assert_int_equal(image_list(f, 999, got, sizeof(got)), -ENOENT);
    assert_int_equal(do_symlink(f, R, ROOT, "ln", "/x", &l), 0);
    assert_int_equal(image_list(f, l.ino, got, sizeof(got)), -EINVAL);
    assert_int_equal(image_list(f, ROOT, got, sizeof(got)), 0);
    assert_string_equal(got, "");
}

/* IMAGE_INFO of @ino as "key=value;" pairs, from "readonly" on. */
static void info_from_readonly(struct fx *f, uint64_t ino, char *got,
                               size_t size)
{
    struct proto_wbuf w, reply;
    struct proto_ino_req q = {.ino = ino};
    struct proto_status_rep rep;
    struct proto_kv_iter it;
    struct proto_str k, v;
    bool on = false;

    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_ino_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_IMAGE_INFO_REQ, &w, &reply), 0);
    assert_int_equal(proto_status_rep_decode(reply.p, reply.len, &rep), 0);
    got[0] = '\0';
    proto_kv_iter_init(&it, &rep);
    while (proto_kv_next(&it, &k, &v)) {
        size_t len = strlen(got);
        on |= k.len == 8 && !memcmp(k.p, "readonly", 8);
        if (on)
            snprintf(got + len, size - len, "%.*s=%.*s;", (int)k.len, k.p,
                     (int)v.len, v.p);
    }
    proto_wbuf_free(&reply);
}

/* A snapshot's and a clone's origin, by inode and path; the path empty
 * once the origin is removed. */
static void test_meta_image_info_origin(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    char got[512], want[512];
    assert_int_equal(do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s1", &s),
                     0);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "c1", &c),
                     0);
    info_from_readonly(f, c.ino, got, sizeof(got));
    snprintf(want, sizeof(want),
             "readonly=0;origin=%llu;origin_path=/s1;sharer=%llu 3 /img;"
             "sharer=%llu 3 /s1;",
             (unsigned long long)s.ino, (unsigned long long)img,
             (unsigned long long)s.ino);
    assert_string_equal(got, want);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);
    info_from_readonly(f, s.ino, got, sizeof(got));
    snprintf(want, sizeof(want),
             "readonly=1;origin=%llu;origin_path=;sharer=%llu 3 /c1;",
             (unsigned long long)img, (unsigned long long)c.ino);
    assert_string_equal(got, want);
}

static int walk_one(const struct meta_chunk_info *ci, void *arg)
{
    int *seen = arg;
    seen[ci->c.chunk_id]++;
    if (ci->c.chunk_id == 3)
        assert_int_equal(ci->length, CHUNK / 2);
    if (ci->c.chunk_id == 1)
        assert_int_equal(ci->goal, 5);
    return 0;
}

static void test_meta_image_chunk_walk_once_highest_goal(void **state)
{
    struct fx *f = *state;
    struct proto_attr c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "c", &c), 0);
    struct proto_wbuf w;
    struct proto_goal_set_req g = {.cred = R, .ino = c.ino, .goal = 5};
    proto_wbuf_init(&w);
    proto_goal_set_req_encode(&w, &g);
    assert_int_equal(fx_apply(f, PROTO_MSG_GOAL_SET_REQ, &w, NULL), 0);
    int seen[8] = {0};
    assert_int_equal(meta_chunk_foreach(f->db, 0, 100, walk_one, seen), 0);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 1);
    assert_int_equal(seen[3], 1);
    uint32_t goal = 0;
    assert_int_equal(meta_chunk_goal(f->db, 2, &goal), 0);
    assert_int_equal(goal, 5);
}

static void test_meta_image_replay_gives_same_state(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "clone", &c), 0);
    assert_int_equal(do_cow(f, img, 0, 1, 1, 10, sid), 0);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 11, sid), 0);
    int moved;
    assert_int_equal(do_cow_bump(f, img, 3, 3, 1, 12, sid, &sid, 1, &moved), 0);
    assert_int_equal(moved, 1);
    assert_int_equal(fx_chunk_set1(f, c.ino, 2, 14, 0, 1, sid), 0);
    assert_int_equal(do_cow_bump(f, c.ino, 3, 3, 2, 13, sid, &sid, 1, &moved),
                     0);
    assert_int_equal(moved, 0); /* 13 is below 14: only the bump */
    assert_int_equal(do_truncate(f, c.ino, CHUNK), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);

    struct meta_db *to;
    assert_int_equal(meta_db_open(":memory:", &to), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, fx_replay_op, to), 0);
    uint64_t inos[] = {s.ino, c.ino};
    for (size_t k = 0; k < 2; k++)
        for (uint64_t i = 0; i < 4; i++) {
            struct meta_chunk a, b;
            int ra = meta_chunk_at(f->db, inos[k], i, &a);
            int rb = meta_chunk_at(to, inos[k], i, &b);
            assert_int_equal(ra, rb);
            if (ra == 0)
                assert_memory_equal(&a, &b, sizeof(a));
        }
    int na = 0, nb = 0;
    assert_int_equal(meta_gc_foreach(f->db, 0, 100, fx_gc_count_fn, &na), 0);
    assert_int_equal(meta_gc_foreach(to, 0, 100, fx_gc_count_fn, &nb), 0);
    assert_int_equal(na, nb);
    assert_int_equal(na, 4); /* 10, 12 (the origin's copies), 11, 14 */
    for (uint64_t id = 1; id <= 14; id++) {
        struct meta_chunk a, b;
        int ra = meta_chunk_get(f->db, id, &a);
        int rb = meta_chunk_get(to, id, &b);
        assert_int_equal(ra, rb);
        if (ra == 0)
            assert_memory_equal(&a, &b, sizeof(a));
    }
    struct meta_chunk c3;
    assert_int_equal(meta_chunk_get(to, 3, &c3), 0);
    assert_int_equal(c3.version, 3);
    uint32_t flags = 0;
    assert_int_equal(meta_inode_flags(to, s.ino, &flags), 0);
    assert_int_equal(flags, META_INODE_READONLY);
    meta_db_close(to);
}

/* ---- Rollback, flatten, changes ----------------------------------------- */

static int do_pair(struct fx *f, uint16_t opcode, struct proto_cred c,
                   uint64_t ino, uint64_t src, struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_image_pair_req q = {.cred = c, .ino = ino, .src = src};
    proto_wbuf_init(&w);
    proto_image_pair_req_encode(&w, &q);
    return fx_attr_op(f, opcode, true, &w, a);
}

static void test_meta_image_rollback_takes_snapshot_chunks(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, a;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    /* The image moves on: slot 1 copied and written, the file grown, a new
     * chunk in the hole at 2. */
    assert_int_equal(do_cow(f, img, 1, 2, 1, 10, sid), 0);
    assert_int_equal(fx_chunk_set1(f, img, 2, 11, 0, 1, sid), 0);
    assert_int_equal(do_write_end(f, img, 1, 10, 5 * CHUNK), 0);
    int gc0 = fx_gc_count(f);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, img, s.ino, &a), 0);
    assert_int_equal(a.size, s.size);
    assert_int_equal(attr_of(f, img).size, s.size);
    for (uint64_t i = 0; i < 5; i++)
        assert_int_equal(chunk_of(f, img, i), chunk_of(f, s.ino, i));
    assert_int_equal(refs(f, 2), 2);
    /* The image's own chunks 10 and 11 went to the gc list. */
    assert_int_equal(fx_gc_count(f), gc0 + 2);
    struct meta_chunk c;
    assert_int_equal(meta_chunk_get(f->db, 10, &c), -ENOENT);
}

static void test_meta_image_rollback_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c, d;
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(do_snap(f, PROTO_MSG_CLONE_REQ, R, img, ROOT, "clone", &c),
                     0);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    /* To a clone (it may have moved on), of a snapshot, onto itself. */
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, img, c.ino, NULL), -EINVAL);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, img, img, NULL), -EINVAL);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap2", &c), 0);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, s.ino, c.ino, NULL),
        -EROFS);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, img, d.ino, NULL), -EISDIR);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, R, img, 999, NULL), -ENOENT);
    /* Someone who may not write the image (mode 0644, owner root). */
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_ROLLBACK_REQ, U2, img, s.ino, NULL),
        -EACCES);
    assert_int_equal(chunk_of(f, img, 0), 1);
}

static void test_meta_image_flatten_needs_own_chunks(void **state)
{
    struct fx *f = *state;
    struct proto_attr s, c;
    uint32_t sid;
    uint64_t img = make_image(f, &sid), origin = 9;
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "snap", &s), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_CLONE_REQ, R, s.ino, ROOT, "clone", &c), 0);
    assert_int_equal(do_pair(f, PROTO_MSG_IMAGE_FLATTEN_REQ, R, c.ino, 0, NULL),
                     -EBUSY);
    assert_int_equal(do_cow(f, c.ino, 0, 1, 1, 20, sid), 0);
    assert_int_equal(do_cow(f, c.ino, 1, 2, 1, 21, sid), 0);
    assert_int_equal(do_pair(f, PROTO_MSG_IMAGE_FLATTEN_REQ, R, c.ino, 0, NULL),
                     -EBUSY);
    assert_int_equal(do_cow(f, c.ino, 3, 3, 1, 22, sid), 0);
    assert_int_equal(
        do_pair(f, PROTO_MSG_IMAGE_FLATTEN_REQ, R, c.ino, s.ino, NULL),
        -EINVAL);
    assert_int_equal(do_pair(f, PROTO_MSG_IMAGE_FLATTEN_REQ, R, c.ino, 0, NULL),
                     0);
    assert_int_equal(meta_inode_origin(f->db, c.ino, &origin), 0);
    assert_int_equal(origin, 0);
    /* The template can go; the clone keeps its own chunks. */
    assert_int_equal(do_unlink(f, R, ROOT, "snap"), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "img"), 0);
    assert_int_equal(chunk_of(f, c.ino, 3), 22);
    assert_int_equal(refs(f, 22), 1);
}

/* IMAGE_CHANGES of @from -> @to over every slot into @e (up to @max);
 * returns the count. */
static uint32_t changes(struct fx *f, uint64_t from, uint64_t to,
                        struct proto_changes_entry *e, uint32_t max)
{
    struct proto_wbuf w, reply;
    struct proto_image_changes_req q = {
        .from = from, .to = to, .first = 0, .count = PROTO_LOCATE_MAX};
    struct proto_image_changes_rep rep;
    struct proto_changes_iter it;
    uint32_t n = 0;

    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_image_changes_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_IMAGE_CHANGES_REQ, &w, &reply), 0);
    assert_int_equal(proto_image_changes_rep_decode(reply.p, reply.len, &rep),
                     0);
    proto_changes_iter_init(&it, &rep);
    while (n < max && proto_changes_next(&it, &e[n]))
        n++;
    assert_int_equal(n, rep.count);
    proto_wbuf_free(&reply);
    return n;
}

static void test_meta_image_changes_follow_cow_lineage(void **state)
{
    struct fx *f = *state;
    struct proto_attr s1, s2, s3;
    struct proto_changes_entry e[8];
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s1", &s1), 0);
    assert_int_equal(do_cow(f, img, 1, 2, 1, 10, sid), 0);
    assert_int_equal(fx_chunk_set1(f, img, 2, 11, 0, 1, sid), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s2", &s2), 0);
    assert_int_equal(do_cow(f, img, 1, 10, 1, 12, sid), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s3", &s3), 0);

    assert_int_equal(changes(f, s1.ino, s2.ino, e, 8), 2);
    assert_int_equal(e[0].index, 1);
    assert_int_equal(e[0].kind, PROTO_CHANGES_BLOCKS);
    assert_int_equal(e[0].nchain, 1);
    assert_int_equal(e[0].chain[0].chunk_id, 10);
    assert_int_equal(e[0].chain[0].nreplicas, 1);
    assert_int_equal(e[0].chain[0].replicas[0].server_id, sid);
    /* A hole in FROM: every block written into the new chunk. */
    assert_int_equal(e[1].index, 2);
    assert_int_equal(e[1].kind, PROTO_CHANGES_BLOCKS);
    assert_int_equal(e[1].chain[0].chunk_id, 11);

    assert_int_equal(changes(f, s1.ino, s3.ino, e, 8), 2);
    assert_int_equal(e[0].nchain, 2);
    assert_int_equal(e[0].chain[0].chunk_id, 12);
    assert_int_equal(e[0].chain[1].chunk_id, 10);

    /* Backwards there is no lineage: the slot may differ anywhere; and
     * s1 has a hole where s3 has a chunk. */
    assert_int_equal(changes(f, s3.ino, s1.ino, e, 8), 2);
    assert_int_equal(e[0].index, 1);
    assert_int_equal(e[0].kind, PROTO_CHANGES_WHOLE);
    assert_int_equal(e[0].nchain, 0);
    assert_int_equal(e[1].index, 2);
    assert_int_equal(e[1].kind, PROTO_CHANGES_ZERO);

    /* Removing s2 drops chunk 10, a link of s1 -> s3's lineage. */
    assert_int_equal(do_unlink(f, R, ROOT, "s2"), 0);
    assert_int_equal(changes(f, s1.ino, s3.ino, e, 8), 2);
    assert_int_equal(e[0].kind, PROTO_CHANGES_WHOLE);
    assert_int_equal(changes(f, s1.ino, s1.ino, e, 8), 0);
}

static void test_meta_image_changes_hole_in_target_is_zero(void **state)
{
    struct fx *f = *state;
    struct proto_attr s1, s2;
    struct proto_changes_entry e[8];
    uint32_t sid;
    uint64_t img = make_image(f, &sid);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s1", &s1), 0);
    assert_int_equal(do_truncate(f, img, CHUNK), 0);
    assert_int_equal(do_truncate(f, img, 3 * CHUNK + CHUNK / 2), 0);
    assert_int_equal(
        do_snap(f, PROTO_MSG_SNAPSHOT_REQ, R, img, ROOT, "s2", &s2), 0);
    assert_int_equal(changes(f, s1.ino, s2.ino, e, 8), 2);
    assert_int_equal(e[0].index, 1);
    assert_int_equal(e[0].kind, PROTO_CHANGES_ZERO);
    assert_int_equal(e[1].index, 3);
    assert_int_equal(e[1].kind, PROTO_CHANGES_ZERO);
    /* Only TO's slots are described. */
    assert_int_equal(do_truncate(f, img, CHUNK), 0);
    assert_int_equal(changes(f, s1.ino, img, e, 8), 0);
}

int test_meta_image(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_meta_image_snapshot_shares_chunks),
        T(test_meta_image_clone_of_snapshot_counts),
        T(test_meta_image_cow_moves_slot),
        T(test_meta_image_cow_stale),
        T(test_meta_image_cow_bumps_source),
        T(test_meta_image_cow_bump_drops_missed_replica),
        T(test_meta_image_cow_bump_recorded_when_slot_moved),
        T(test_meta_image_cow_bump_last_sharer_gc_version),
        T(test_meta_image_bump_of_shared_chunk_stale),
        T(test_meta_image_unlink_origin_keeps_snapshot),
        T(test_meta_image_truncate_drops_only_last_ref),
        T(test_meta_image_cow_after_other_sharer_gone),
        T(test_meta_image_snapshot_is_readonly),
        T(test_meta_image_snapshot_errors),
        T(test_meta_image_info_lists_sharers),
        T(test_meta_image_info_origin),
        T(test_meta_image_list_lineage_and_bytes),
        T(test_meta_image_list_origin_removed),
        T(test_meta_image_list_errors),
        T(test_meta_image_chunk_walk_once_highest_goal),
        T(test_meta_image_replay_gives_same_state),
        T(test_meta_image_rollback_takes_snapshot_chunks),
        T(test_meta_image_rollback_errors),
        T(test_meta_image_flatten_needs_own_chunks),
        T(test_meta_image_changes_follow_cow_lineage),
        T(test_meta_image_changes_hole_in_target_is_zero),
    };
#undef T
    return cmocka_run_group_tests_name("meta_image", tests, NULL, NULL);
}
