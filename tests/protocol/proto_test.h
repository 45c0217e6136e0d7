/* proto_test.h: shared fixtures for the protocol unit tests: one sample
 * value for every message body, field comparison helpers, and the generic
 * short-frame / long-frame check.
 *
 * Samples use distinct non-zero values in every field (and a negative
 * time) so a swapped, dropped or sign-mangled field shows up in a round
 * trip.
 */
#ifndef TESSERA_PROTO_TEST_H
#define TESSERA_PROTO_TEST_H

/* cmocka.h needs these first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static inline struct proto_str pstr(const char *s)
{
    return (struct proto_str){s, (uint32_t)strlen(s)};
}

static inline void assert_pstr_equal(struct proto_str a, struct proto_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len)
        assert_memory_equal(a.p, b.p, a.len);
}

static inline void assert_pstr_is(struct proto_str a, const char *s)
{
    assert_pstr_equal(a, pstr(s));
}

/* Decode from an exact-size heap copy so that any read past the end of
 * the payload is caught by AddressSanitizer.  Borrowed fields of @msg are
 * not valid after the call. */
static inline int decode_copy(uint16_t opcode, const uint8_t *p, size_t n,
                              void *msg)
{
    uint8_t *c = malloc(n ? n : 1);
    int rc;

    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    rc = proto_msg_decode(opcode, c, n, msg);
    free(c);
    return rc;
}

/* The valid payload @p decodes as @opcode; every proper prefix of it
 * fails with -EPROTO, and so does it with one trailing byte. */
static inline void assert_short_long(uint16_t opcode, const uint8_t *p,
                                     size_t n)
{
    size_t size = proto_msg_body_size(opcode);
    void *m = malloc(size);
    uint8_t *longer = malloc(n + 1);

    assert_true(size > 0);
    assert_non_null(m);
    assert_non_null(longer);
    assert_int_equal(decode_copy(opcode, p, n, m), 0);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(decode_copy(opcode, p, k, m), -EPROTO);
    if (n)
        memcpy(longer, p, n);
    longer[n] = 0;
    assert_int_equal(decode_copy(opcode, longer, n + 1, m), -EPROTO);
    free(longer);
    free(m);
}

/* Overwrite 1, 2, 4 or 8 bytes at @off with @v, big-endian: used to turn a
 * valid payload into an invalid one field by field. */
static inline void patch_be(uint8_t *p, size_t off, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        p[off + (size_t)i] = (uint8_t)(v >> (8 * (width - 1 - i)));
}

/* ---- Sample values ----------------------------------------------------- */

static inline void sample_cred(struct proto_cred *c)
{
    memset(c, 0, sizeof(*c));
    c->uid = 1000;
    c->gid = 100;
    c->ngroups = 3;
    c->groups[0] = 4;
    c->groups[1] = 24;
    c->groups[2] = 27;
}

static inline void assert_cred_equal(const struct proto_cred *a,
                                     const struct proto_cred *b)
{
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_int_equal(a->ngroups, b->ngroups);
    for (uint32_t i = 0; i < a->ngroups; i++)
        assert_int_equal(a->groups[i], b->groups[i]);
}

static inline void sample_attr(struct proto_attr *a, uint64_t ino)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->mode = 0100644;
    a->nlink = 2;
    a->uid = 1000;
    a->gid = 100;
    a->rdev = 0x0801;
    a->goal = 3;
    a->size = 0x100000005ull;
    a->blocks = 0x208;
    a->atime = -5;
    a->mtime = 1700000000123456789ll;
    a->ctime = 1700000001000000000ll;
    a->version = 42;
}

static inline void assert_attr_equal(const struct proto_attr *a,
                                     const struct proto_attr *b)
{
    assert_int_equal(a->ino, b->ino);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->nlink, b->nlink);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_int_equal(a->rdev, b->rdev);
    assert_int_equal(a->goal, b->goal);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->blocks, b->blocks);
    assert_true(a->atime == b->atime);
    assert_true(a->mtime == b->mtime);
    assert_true(a->ctime == b->ctime);
    assert_int_equal(a->version, b->version);
}

static inline void sample_chain(struct proto_replica *v, uint32_t n)
{
    static const char *addrs[] = {"10.0.0.1:9422", "10.0.0.2:9422",
                                  "[fd00::3]:9422", "chunk4.example:9422"};
    for (uint32_t i = 0; i < n; i++) {
        v[i].server_id = 100 + i;
        v[i].addr = pstr(addrs[i % 4]);
    }
}

static inline void assert_chain_equal(const struct proto_replica *a,
                                      const struct proto_replica *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(a[i].server_id, b[i].server_id);
        assert_pstr_equal(a[i].addr, b[i].addr);
    }
}

static inline void sample_empty(struct proto_empty *m, struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
}

static inline void sample_hello_req(struct proto_hello_req *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->min_version = 1;
    m->max_version = 3;
    m->role = PROTO_ROLE_CLIENT;
    m->features = 0;
    m->auth_methods = 0x6;
    m->name = pstr("tessera-mount host1");
}

static inline void sample_hello_rep(struct proto_hello_rep *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->version = 1;
    m->auth_method = PROTO_AUTH_NONE;
    m->instance_id = 0xfeedfacecafebeefull;
    m->name = pstr("tessera-metad");
}

static inline void sample_ping(struct proto_ping *m, struct proto_wbuf *s)
{
    (void)s;
    m->cookie = 0x0102030405060708ull;
}

static inline void sample_session_open_req(struct proto_session_open_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->lease_ms = 30000;
    m->client_name = pstr("tessera-mount");
    m->host = pstr("host1.example");
}

static inline void sample_session_open_rep(struct proto_session_open_rep *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->session_id = 0x8000000000000001ull;
    m->lease_ms = 20000;
}

static inline void sample_session_id(struct proto_session_id *m,
                                     struct proto_wbuf *s)
{
    (void)s;
    m->session_id = 0x1234567890abcdefull;
}

static inline void sample_session_renew_rep(struct proto_session_renew_rep *m,
                                            struct proto_wbuf *s)
{
    (void)s;
    m->lease_ms = 15000;
}

static inline void sample_ino_req(struct proto_ino_req *m, struct proto_wbuf *s)
{
    (void)s;
    m->ino = 0xabcdef0123ull;
}

static inline void sample_attr_rep(struct proto_attr_rep *m,
                                   struct proto_wbuf *s)
{
    (void)s;
    sample_attr(&m->attr, 77);
}

/* The version 1 forms, of which every shorter prefix is malformed; the
 * version 2 forms are tested in test_proto_ns.c. */
static inline void sample_entry_rep(struct proto_entry_rep *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_attr(&m->attr, 78);
}

static inline void sample_dirs_rep(struct proto_dirs_rep *m,
                                   struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
}

static inline void sample_lookup_req(struct proto_lookup_req *m,
                                     struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->parent = 1;
    m->name = pstr("disk.qcow2");
}

static inline void sample_setattr_req(struct proto_setattr_req *m,
                                      struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 99;
    m->valid = PROTO_SETATTR_MODE | PROTO_SETATTR_SIZE | PROTO_SETATTR_CTIME;
    m->mode = 0600;
    m->uid = 7;
    m->gid = 8;
    m->size = 1ull << 40;
    m->atime = -1;
    m->mtime = 11;
    m->ctime = 12;
}

static inline void sample_mknod_req(struct proto_mknod_req *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->parent = 5;
    m->mode = 0100640;
    m->rdev = 0x0103;
    m->umask = 022;
    m->flags = PROTO_MKNOD_EXCL;
    m->name = pstr("new.raw");
}

static inline void sample_ino_reserve_req(struct proto_ino_reserve_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->count = 4096;
}

static inline void sample_ino_reserve_rep(struct proto_ino_reserve_rep *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->first = 0x0102030405060708ull;
    m->count = 65536;
}

static inline void sample_mkdir_req(struct proto_mkdir_req *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->parent = 6;
    m->mode = 0755;
    m->umask = 077;
    m->name = pstr("images");
}

static inline void sample_symlink_req(struct proto_symlink_req *m,
                                      struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->parent = 7;
    m->name = pstr("latest");
    m->target = pstr("../images/vm1.qcow2");
}

static inline void sample_link_req(struct proto_link_req *m,
                                   struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 8;
    m->newparent = 9;
    m->newname = pstr("hard");
}

static inline void sample_rename_req(struct proto_rename_req *m,
                                     struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->parent = 10;
    m->name = pstr("a");
    m->newparent = 11;
    m->newname = pstr("bb");
    m->flags = PROTO_RENAME_NOREPLACE;
}

static inline void sample_readlink_rep(struct proto_readlink_rep *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    m->target = pstr("/srv/images/base.raw");
}

static inline void sample_readdir_req(struct proto_readdir_req *m,
                                      struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 12;
    m->cookie = 3;
    m->max_entries = 128;
    m->flags = PROTO_READDIR_PLUS;
}

/* Three entries built into @s: ".", ".." and "vm1.qcow2". */
static inline void sample_readdir_rep(struct proto_readdir_rep *m,
                                      struct proto_wbuf *s)
{
    static const char *names[] = {".", "..", "vm1.qcow2"};
    struct proto_dirent d;

    memset(m, 0, sizeof(*m));
    m->flags = PROTO_READDIR_PLUS;
    m->eof = 1;
    m->count = 3;
    for (int i = 0; i < 3; i++) {
        memset(&d, 0, sizeof(d));
        d.cookie = (uint64_t)i + 1;
        d.name = pstr(names[i]);
        sample_attr(&d.attr, 200 + (uint64_t)i);
        proto_dirent_put(s, m->flags, &d);
    }
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

static inline void sample_statfs_rep(struct proto_statfs_rep *m,
                                     struct proto_wbuf *s)
{
    (void)s;
    m->blocks = 1000000;
    m->bfree = 500000;
    m->bavail = 400000;
    m->files = 300000;
    m->ffree = 200000;
    m->bsize = 65536;
    m->namemax = 255;
}

static inline void sample_setxattr_req(struct proto_setxattr_req *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 13;
    m->flags = PROTO_XATTR_CREATE;
    m->name = pstr("user.tessera.goal");
    m->value = (struct proto_str){"3\0x", 3};
}

static inline void sample_xattr_name_req(struct proto_xattr_name_req *m,
                                         struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 14;
    m->name = pstr("user.comment");
}

static inline void sample_bytes_rep(struct proto_bytes_rep *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    m->data = (struct proto_str){"\x00\x01\x02\xff data", 9};
}

static inline void sample_access_req(struct proto_access_req *m,
                                     struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 15;
    m->mask = 06;
}

static inline void sample_chunk_ref(struct proto_chunk_ref *m,
                                    struct proto_wbuf *s)
{
    (void)s;
    m->chunk_id = 0xa01f3;
    m->version = 17;
}

static inline void sample_chunk_read_req(struct proto_chunk_read_req *m,
                                         struct proto_wbuf *s)
{
    (void)s;
    m->chunk_id = 0xa01f4;
    m->version = 18;
    m->offset = 65536;
    m->length = 131072;
    m->flags = 0;
}

static inline void sample_chunk_write_req(struct proto_chunk_write_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->chunk_id = 0xa01f5;
    m->version = 19;
    m->offset = 4096;
    m->flags = PROTO_CHUNK_WRITE_SYNC;
    m->nchain = 2;
    sample_chain(m->chain, 2);
    m->data = (struct proto_str){"0123456789abcdef", 16};
}

static inline void sample_chunk_sync_req(struct proto_chunk_sync_req *m,
                                         struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->chunk_id = 0xa01f6;
    m->version = 20;
    m->nchain = 3;
    sample_chain(m->chain, 3);
}

static inline void
sample_chunk_setversion_req(struct proto_chunk_setversion_req *m,
                            struct proto_wbuf *s)
{
    (void)s;
    m->chunk_id = 0xa01f7;
    m->old_version = 21;
    m->new_version = 22;
}

static inline void sample_chunk_truncate_req(struct proto_chunk_truncate_req *m,
                                             struct proto_wbuf *s)
{
    (void)s;
    m->chunk_id = 0xa01f8;
    m->version = 23;
    m->length = 12345;
}

static inline void sample_chunk_locate_req(struct proto_chunk_locate_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->ino = 16;
    m->first = 4;
    m->count = 8;
}

/* Two entries built into @s: chunk index 4 with two replicas, and a hole
 * at index 5. */
static inline void sample_chunk_locate_rep(struct proto_chunk_locate_rep *m,
                                           struct proto_wbuf *s)
{
    struct proto_chunk_loc c;

    memset(m, 0, sizeof(*m));
    m->file_size = 5ull * PROTO_CHUNK_SIZE + 100;
    m->count = 2;
    memset(&c, 0, sizeof(c));
    c.index = 4;
    c.chunk_id = 0xb001;
    c.version = 3;
    c.nreplicas = 2;
    sample_chain(c.replicas, 2);
    proto_chunk_loc_put(s, &c);
    memset(&c, 0, sizeof(c));
    c.index = 5;
    proto_chunk_loc_put(s, &c);
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

static inline void
sample_chunk_write_begin_req(struct proto_chunk_write_begin_req *m,
                             struct proto_wbuf *s)
{
    (void)s;
    m->ino = 17;
    m->index = 3;
    m->flags = 0;
}

static inline void
sample_chunk_write_end_req(struct proto_chunk_write_end_req *m,
                           struct proto_wbuf *s)
{
    (void)s;
    m->ino = 18;
    m->index = 4;
    m->chunk_id = 0xb002;
    m->size = 1ull << 33;
    m->mtime = -1700000000000000000ll;
}

static inline void
sample_server_register_req(struct proto_server_register_req *m,
                           struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    for (int i = 0; i < 16; i++)
        m->uuid[i] = (uint8_t)(0xf0 + i);
    m->addr = pstr("10.0.0.7:9422");
    m->capacity = 4ull << 40;
    m->free = 3ull << 40;
}

static inline void
sample_server_register_rep(struct proto_server_register_rep *m,
                           struct proto_wbuf *s)
{
    (void)s;
    m->server_id = 7;
}

static inline void
sample_server_heartbeat_req(struct proto_server_heartbeat_req *m,
                            struct proto_wbuf *s)
{
    (void)s;
    m->server_id = 8;
    m->capacity = 5ull << 40;
    m->free = 1ull << 40;
    m->chunks = 123456;
    m->used = (3ull << 30) + 4096;
}

/* Three entries built into @s. */
static inline void
sample_server_inventory_req(struct proto_server_inventory_req *m,
                            struct proto_wbuf *s)
{
    memset(m, 0, sizeof(*m));
    m->server_id = 9;
    m->last = 1;
    m->count = 3;
    for (uint64_t i = 0; i < 3; i++) {
        proto_put_u64(s, 0xc000 + i);
        proto_put_u64(s, 10 + i);
        proto_put_u64(s, PROTO_CHUNK_SIZE - i);
    }
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

/* Two entries built into @s. */
static inline void sample_chunk_usage_req(struct proto_chunk_usage_req *m,
                                          struct proto_wbuf *s)
{
    memset(m, 0, sizeof(*m));
    m->server_id = 10;
    m->count = 2;
    for (uint64_t i = 0; i < 2; i++) {
        proto_put_u64(s, 0xd000 + i);
        proto_put_u64(s, (1ull << 20) + 8192 * i);
    }
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

/* Two pairs built into @s. */
static inline void sample_status_rep(struct proto_status_rep *m,
                                     struct proto_wbuf *s)
{
    memset(m, 0, sizeof(*m));
    m->count = 2;
    proto_kv_put(s, "meta.uptime_s", "3600");
    proto_kv_put(s, "meta.sessions", "");
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

static inline void sample_goal_set_req(struct proto_goal_set_req *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 19;
    m->goal = 3;
    m->flags = PROTO_GOAL_RECURSIVE;
}

static inline void sample_goal_set_rep(struct proto_goal_set_rep *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    m->changed = 12345;
}

static inline void
sample_chunk_replicate_req(struct proto_chunk_replicate_req *m,
                           struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->chunk_id = 0xa01f9;
    m->version = 24;
    sample_chain(&m->source, 1);
}

static inline void sample_scrub_start_req(struct proto_scrub_start_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->rate_mb = 50;
}

static inline void sample_chunk_report_req(struct proto_chunk_report_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->server_id = 10;
    m->chunk_id = 0xa01fa;
    m->version = 25;
    m->reason = PROTO_REPORT_CHECKSUM;
}

static inline void sample_scrub_status_req(struct proto_scrub_status_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->server_id = 12;
    m->running = 1;
    m->passes = 3;
    m->chunks = 40;
    m->total = 90;
    m->bytes = 40ull << 20;
    m->errors = 2;
    m->start_s = 1764950000;
    m->end_s = 0;
}

static inline void sample_server_ctl_req(struct proto_server_ctl_req *m,
                                         struct proto_wbuf *s)
{
    (void)s;
    m->server_id = 11;
    m->action = PROTO_SERVER_DRAIN;
}

static inline void sample_admin_action_req(struct proto_admin_action_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->action = PROTO_ADMIN_FSCK;
    m->arg = 1;
}

static inline void sample_meta_member_req(struct proto_meta_member_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->op = PROTO_META_MEMBER_ADD;
    m->id = 4;
    m->raft_addr = (struct proto_str){"10.0.0.4:9430", 13};
    m->client_addr = (struct proto_str){"10.0.0.4:9420", 13};
}

static inline void sample_server_state_req(struct proto_server_state_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->server_id = 12;
    m->state = PROTO_SERVER_DOWN;
    m->addr = pstr("10.0.0.12:9422");
}

static inline void sample_snapshot_req(struct proto_snapshot_req *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 0x1234567;
    m->parent = 77;
    m->name = pstr("vm1-snap.img");
}

static inline void sample_chunk_clone_req(struct proto_chunk_clone_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->src_id = 0xa01fb;
    m->src_version = 26;
    m->new_id = 0xa0200;
    m->new_version = 1;
}

static inline void sample_image_pair_req(struct proto_image_pair_req *m,
                                         struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    sample_cred(&m->cred);
    m->ino = 0x1234569;
    m->src = 0x123456a;
}

static inline void sample_image_changes_req(struct proto_image_changes_req *m,
                                            struct proto_wbuf *s)
{
    (void)s;
    m->from = 0x1234500;
    m->to = 0x1234501;
    m->first = 3;
    m->count = 200;
}

/* Three entries: blocks over a chain of two, whole, zero. */
static inline void sample_image_changes_rep(struct proto_image_changes_rep *m,
                                            struct proto_wbuf *s)
{
    struct proto_changes_entry e;

    memset(m, 0, sizeof(*m));
    memset(&e, 0, sizeof(e));
    e.index = 3;
    e.kind = PROTO_CHANGES_BLOCKS;
    e.nchain = 2;
    e.chain[0] = (struct proto_chunk_loc){
        .index = 3, .chunk_id = 0xa0300, .version = 4, .nreplicas = 2};
    e.chain[0].replicas[0] = (struct proto_replica){7, pstr("10.0.0.7:9422")};
    e.chain[0].replicas[1] = (struct proto_replica){8, pstr("10.0.0.8:9422")};
    e.chain[1] = (struct proto_chunk_loc){
        .index = 3, .chunk_id = 0xa02ff, .version = 2, .nreplicas = 1};
    e.chain[1].replicas[0] = (struct proto_replica){9, pstr("10.0.0.9:9422")};
    proto_changes_entry_put(s, &e);
    memset(&e, 0, sizeof(e));
    e.index = 5;
    e.kind = PROTO_CHANGES_WHOLE;
    proto_changes_entry_put(s, &e);
    e.index = 6;
    e.kind = PROTO_CHANGES_ZERO;
    proto_changes_entry_put(s, &e);
    assert_int_equal(s->err, 0);
    m->from_size = 1ull << 30;
    m->to_size = (1ull << 30) + 4096;
    m->count = 3;
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

static inline void sample_image_lease_req(struct proto_image_lease_req *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->op = PROTO_LEASE_ARM;
    m->arg = 600;
    m->ino = 0x1234567890ull;
}

static inline void sample_image_lease_rep(struct proto_image_lease_rep *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->result = PROTO_LEASE_BUSY;
    m->flags = PROTO_LEASE_F_ARMED | PROTO_LEASE_F_RECALLING;
    m->holder_session = 0x77;
    m->holder_name = pstr("tessera-nbd host1 pid 42");
    m->holder_host = pstr("host1");
}

static inline void sample_image_lease_wait(struct proto_image_lease_wait *m,
                                           struct proto_wbuf *s)
{
    memset(m, 0, sizeof(*m));
    m->timeout_ms = 10000;
    m->count = 2;
    proto_lease_entry_put(s, 0xabcdef01ull, PROTO_LEASE_RECALL);
    proto_lease_entry_put(s, 12, PROTO_LEASE_LOST);
    assert_int_equal(s->err, 0);
    m->raw = (struct proto_str){(const char *)s->p, (uint32_t)s->len};
}

static inline void sample_callback_break_req(struct proto_callback_break_req *m,
                                             struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->ino = 0x1234568;
    m->flags = PROTO_CB_ENTRY | PROTO_CB_ATTR;
    m->name = pstr("report.txt");
}

static inline void
sample_callback_register_req(struct proto_callback_register_req *m,
                             struct proto_wbuf *s)
{
    (void)s;
    m->flags = PROTO_CALLBACK_ON;
}

static inline void
sample_callback_register_rep(struct proto_callback_register_rep *m,
                             struct proto_wbuf *s)
{
    (void)s;
    m->lease_ms = 60000;
}

static inline void sample_dir_delegate_req(struct proto_dir_delegate_req *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    m->ino = 0x123456789abcdefull;
    m->flags = 0;
}

static inline void sample_auth_req(struct proto_auth_req *m,
                                   struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->method = PROTO_AUTH_TICKET;
    m->name = pstr("client.host7");
    m->ticket = (struct proto_str){"\x00\x00\x00\x01sealed ticket", 17};
    for (int i = 0; i < 32; i++) {
        m->nonce[i] = (uint8_t)(i + 1);
        m->proof[i] = (uint8_t)(0xa0 + i);
    }
}

static inline void sample_auth_rep(struct proto_auth_rep *m,
                                   struct proto_wbuf *s)
{
    (void)s;
    for (int i = 0; i < 32; i++)
        m->proof[i] = (uint8_t)(0x40 + i);
}

static inline void sample_auth_ticket_rep(struct proto_auth_ticket_rep *m,
                                          struct proto_wbuf *s)
{
    (void)s;
    m->expires_ms = 1780000000123ull;
    m->ticket = pstr("opaque ticket bytes");
    m->sealed_key = pstr("nonce, sealed key and tag");
}

static inline void sample_auth_service_rep(struct proto_auth_service_rep *m,
                                           struct proto_wbuf *s)
{
    (void)s;
    memset(m, 0, sizeof(*m));
    m->count = 2;
    m->keys[0].id = 7;
    m->keys[0].sealed = pstr("sealed seven");
    m->keys[1].id = 6;
    m->keys[1].sealed = pstr("sealed six");
}

static inline void sample_auth_set_req(struct proto_auth_set_req *m,
                                       struct proto_wbuf *s)
{
    (void)s;
    m->name = pstr("nbd.hv3");
    m->caps = pstr("ro path=/vm/a,/vm/b");
    m->flags = PROTO_AUTH_ADD_GET;
}

static inline void sample_auth_name_req(struct proto_auth_name_req *m,
                                        struct proto_wbuf *s)
{
    (void)s;
    m->name = pstr("client.host7");
}

/* Encode the sample of @body into @w (fresh) and assert success; @s is the
 * scratch buffer array bodies build their entries in. */
#define ENCODE_SAMPLE(body, m, w, s)                                           \
    do {                                                                       \
        proto_wbuf_init(w);                                                    \
        proto_wbuf_init(s);                                                    \
        sample_##body(m, s);                                                   \
        proto_##body##_encode(w, m);                                           \
        assert_int_equal((w)->err, 0);                                         \
    } while (0)

/* Encode the sample of @body, decode it into @out, and check every short
 * and the long frame of it as @opcode. */
#define ROUNDTRIP(body, opcode, in, out, w, s)                                 \
    do {                                                                       \
        ENCODE_SAMPLE(body, in, w, s);                                         \
        assert_int_equal(proto_##body##_decode((w)->p, (w)->len, out), 0);     \
        assert_short_long(opcode, (w)->p, (w)->len);                           \
    } while (0)

/* Release the two buffers ENCODE_SAMPLE initialised. */
#define FREE_BUFS(w, s)                                                        \
    do {                                                                       \
        proto_wbuf_free(w);                                                    \
        proto_wbuf_free(s);                                                    \
    } while (0)

#endif
