/* Tests for protocol/proto_ns.c: the namespace bodies (docs/protocol.md
 * §6) other than READDIR.
 */
#include "proto_test.h"

/* A sample credential (3 groups) is 24 bytes: offsets below start there. */
#define CRED_LEN 24

static void test_proto_ino_req_decode_roundtrip(void **state)
{
    struct proto_ino_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(ino_req, PROTO_MSG_GETATTR_REQ, &in, &out, &w, &s);
    assert_int_equal(out.ino, in.ino);
    assert_short_long(PROTO_MSG_READLINK_REQ, w.p, w.len);
    assert_short_long(PROTO_MSG_LISTXATTR_REQ, w.p, w.len);
    FREE_BUFS(&w, &s);
}

static void test_proto_attr_rep_decode_roundtrip(void **state)
{
    struct proto_attr_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(attr_rep, PROTO_MSG_GETATTR_REP, &in, &out, &w, &s);
    assert_int_equal(w.len, PROTO_ATTR_SIZE);
    assert_attr_equal(&out.attr, &in.attr);
    FREE_BUFS(&w, &s);
}

/* Version 1: the entry alone; version 2: the entry, then its directory.
 * Every other length is malformed. */
static void test_proto_entry_rep_decode_roundtrip(void **state)
{
    struct proto_entry_rep in, out;
    struct proto_wbuf w;

    (void)state;
    memset(&in, 0, sizeof(in));
    sample_attr(&in.attr, 77);
    proto_wbuf_init(&w);
    proto_entry_rep_encode(&w, &in);
    assert_int_equal(w.len, PROTO_ATTR_SIZE);
    assert_int_equal(proto_entry_rep_decode(w.p, w.len, &out), 0);
    assert_false(out.has_dir);
    assert_attr_equal(&out.attr, &in.attr);
    assert_short_long(PROTO_MSG_MKNOD_REP, w.p, w.len);

    proto_wbuf_reset(&w);
    in.has_dir = true;
    sample_attr(&in.dir, 5);
    in.dir.mode = 040755;
    proto_entry_rep_encode(&w, &in);
    assert_int_equal(w.len, 2 * PROTO_ATTR_SIZE);
    assert_int_equal(proto_entry_rep_decode(w.p, w.len, &out), 0);
    assert_true(out.has_dir);
    assert_attr_equal(&out.attr, &in.attr);
    assert_attr_equal(&out.dir, &in.dir);
    for (size_t k = 0; k < w.len; k++)
        if (k != PROTO_ATTR_SIZE)
            assert_int_equal(proto_entry_rep_decode(w.p, k, &out), -EPROTO);
    proto_put_u8(&w, 0);
    assert_int_equal(proto_entry_rep_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

/* No directory (version 1), one (UNLINK, RMDIR) or two (RENAME). */
static void test_proto_dirs_rep_decode_roundtrip(void **state)
{
    struct proto_dirs_rep in, out;
    struct proto_wbuf w;

    (void)state;
    memset(&in, 0, sizeof(in));
    sample_attr(&in.dir[0], 5);
    sample_attr(&in.dir[1], 6);
    for (uint32_t n = 0; n <= PROTO_DIRS_MAX; n++) {
        in.ndirs = n;
        proto_wbuf_init(&w);
        proto_dirs_rep_encode(&w, &in);
        assert_int_equal(w.err, 0);
        assert_int_equal(w.len, n * PROTO_ATTR_SIZE);
        assert_int_equal(proto_dirs_rep_decode(w.p, w.len, &out), 0);
        assert_int_equal(out.ndirs, n);
        for (uint32_t i = 0; i < n; i++)
            assert_attr_equal(&out.dir[i], &in.dir[i]);
        proto_wbuf_free(&w);
    }
    uint8_t buf[3 * PROTO_ATTR_SIZE + 1] = {0};
    for (size_t k = 0; k < sizeof(buf); k++)
        if (k % PROTO_ATTR_SIZE != 0 || k > 2 * PROTO_ATTR_SIZE)
            assert_int_equal(proto_dirs_rep_decode(buf, k, &out), -EPROTO);
    in.ndirs = PROTO_DIRS_MAX + 1;
    proto_wbuf_init(&w);
    proto_dirs_rep_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
}

/* A version 1 peer gets the version 1 layout of each reply. */
static void test_proto_rep_len_for_version_trims_for_version_1(void **state)
{
    (void)state;
    size_t two = 2 * PROTO_ATTR_SIZE;
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_MKNOD_REP, 1, two),
                     PROTO_ATTR_SIZE);
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_LINK_REP, 1, two),
                     PROTO_ATTR_SIZE);
    assert_int_equal(
        proto_rep_len_for_version(PROTO_MSG_UNLINK_REP, 1, PROTO_ATTR_SIZE), 0);
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_RENAME_REP, 1, two),
                     0);
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_MKNOD_REP, 2, two),
                     two);
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_RENAME_REP,
                                               PROTO_VERSION_DIR_ATTRS, two),
                     two);
    assert_int_equal(
        proto_rep_len_for_version(PROTO_MSG_GETATTR_REP, 1, PROTO_ATTR_SIZE),
        PROTO_ATTR_SIZE);
    assert_int_equal(proto_rep_len_for_version(PROTO_MSG_READDIR_REP, 1, 999),
                     999);
}

static void test_proto_lookup_req_decode_roundtrip(void **state)
{
    struct proto_lookup_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(lookup_req, PROTO_MSG_LOOKUP_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.parent, in.parent);
    assert_pstr_equal(out.name, in.name);
    assert_short_long(PROTO_MSG_UNLINK_REQ, w.p, w.len);
    assert_short_long(PROTO_MSG_RMDIR_REQ, w.p, w.len);
    FREE_BUFS(&w, &s);
}

/* UNLINK's optional time (§6.12): sent only when set, read only when the
 * body goes on past the name; anything but 8 more bytes is malformed. */
static void test_proto_lookup_req_optional_time(void **state)
{
    struct proto_lookup_req in, out;
    struct proto_wbuf w, s;
    uint8_t longer[256];

    (void)state;
    ENCODE_SAMPLE(lookup_req, &in, &w, &s);
    size_t plain = w.len;
    assert_int_equal(proto_lookup_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.time, 0);
    proto_wbuf_reset(&w);
    in.time = 1765000000123456789ll;
    proto_lookup_req_encode(&w, &in);
    assert_int_equal(w.len, plain + 8);
    assert_int_equal(proto_lookup_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.time, in.time);
    assert_pstr_equal(out.name, in.name);
    assert_true(w.len + 8 <= sizeof(longer));
    memcpy(longer, w.p, w.len);
    memset(longer + w.len, 0, 8);
    assert_int_equal(proto_lookup_req_decode(longer, plain + 4, &out), -EPROTO);
    assert_int_equal(proto_lookup_req_decode(longer, w.len + 8, &out), -EPROTO);
    /* A time of 0 is never sent: present, it is malformed. */
    memset(longer + plain, 0, 8);
    assert_int_equal(proto_lookup_req_decode(longer, plain + 8, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_lookup_req_decode_too_many_groups(void **state)
{
    struct proto_lookup_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(lookup_req, &in, &w, &s);
    patch_be(w.p, 8, PROTO_MAX_GROUPS + 1, 4);
    assert_int_equal(proto_lookup_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 8, 0xffffffffu, 4);
    assert_int_equal(proto_lookup_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.cred.ngroups = PROTO_MAX_GROUPS + 1;
    proto_lookup_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_setattr_req_decode_roundtrip(void **state)
{
    struct proto_setattr_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(setattr_req, PROTO_MSG_SETATTR_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.valid, in.valid);
    assert_int_equal(out.mode, in.mode);
    assert_int_equal(out.uid, in.uid);
    assert_int_equal(out.gid, in.gid);
    assert_int_equal(out.size, in.size);
    assert_true(out.atime == in.atime);
    assert_true(out.mtime == in.mtime);
    assert_true(out.ctime == in.ctime);
    FREE_BUFS(&w, &s);
}

static void test_proto_setattr_req_decode_unknown_flag(void **state)
{
    struct proto_setattr_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(setattr_req, &in, &w, &s);
    patch_be(w.p, CRED_LEN + 8, PROTO_SETATTR_MASK, 4);
    assert_int_equal(proto_setattr_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, CRED_LEN + 8, PROTO_SETATTR_MASK + 1, 4);
    assert_int_equal(proto_setattr_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.valid = 0x800;
    proto_setattr_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_mknod_req_decode_roundtrip(void **state)
{
    struct proto_mknod_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(mknod_req, PROTO_MSG_MKNOD_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.parent, in.parent);
    assert_int_equal(out.mode, in.mode);
    assert_int_equal(out.rdev, in.rdev);
    assert_int_equal(out.umask, in.umask);
    assert_int_equal(out.flags, in.flags);
    assert_pstr_equal(out.name, in.name);
    FREE_BUFS(&w, &s);
}

static void test_proto_mknod_req_decode_unknown_flag(void **state)
{
    struct proto_mknod_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(mknod_req, &in, &w, &s);
    patch_be(w.p, CRED_LEN + 20, 0x8, 4);
    assert_int_equal(proto_mknod_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.flags = 0x8;
    proto_mknod_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

/* §6.8: with INO, ino and time follow the name; every shorter body is
 * malformed, the longer one too. */
static void test_proto_mknod_req_decode_ino_roundtrip(void **state)
{
    struct proto_mknod_req in, out;
    struct proto_wbuf w, s;
    size_t plain;

    (void)state;
    ENCODE_SAMPLE(mknod_req, &in, &w, &s);
    plain = w.len;
    proto_wbuf_reset(&w);
    in.flags = PROTO_MKNOD_EXCL | PROTO_MKNOD_HOLD | PROTO_MKNOD_INO;
    in.ino = 0x1122334455667788ull;
    in.time = -1234567890123ll;
    proto_mknod_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, plain + 16);
    assert_int_equal(proto_mknod_req_decode(w.p, w.len, &out), 0);
    assert_short_long(PROTO_MSG_MKNOD_REQ, w.p, w.len);
    assert_int_equal(out.flags, in.flags);
    assert_pstr_equal(out.name, in.name);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.time, in.time);
    /* The tail is the last 16 bytes: ino, then time. */
    assert_int_equal(w.p[plain], 0x11);
    assert_int_equal(w.p[plain + 7], 0x88);
    FREE_BUFS(&w, &s);
}

/* A body without INO (an operation record made before the flag) keeps
 * its layout: the fields are not sent, and decode as 0; ino and time
 * after such a body are trailing bytes. */
static void test_proto_mknod_req_decode_without_ino(void **state)
{
    struct proto_mknod_req in, out;
    struct proto_wbuf w, s;
    uint8_t before[512], longer[512];
    size_t n;

    (void)state;
    ENCODE_SAMPLE(mknod_req, &in, &w, &s);
    n = w.len;
    assert_true(n + 16 <= sizeof(before));
    memcpy(before, w.p, n);
    in.ino = 99;
    in.time = 98;
    proto_wbuf_reset(&w);
    proto_mknod_req_encode(&w, &in);
    assert_int_equal(w.len, n);
    assert_memory_equal(w.p, before, n);
    assert_int_equal(proto_mknod_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.ino, 0);
    assert_int_equal(out.time, 0);
    memcpy(longer, w.p, w.len);
    memset(longer + w.len, 0, 16);
    assert_int_equal(proto_mknod_req_decode(longer, w.len + 16, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_ino_reserve_req_decode_roundtrip(void **state)
{
    struct proto_ino_reserve_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(ino_reserve_req, PROTO_MSG_INO_RESERVE_REQ, &in, &out, &w, &s);
    assert_int_equal(w.len, 4);
    assert_int_equal(out.count, in.count);
    FREE_BUFS(&w, &s);
}

/* The count's bounds are metad's to answer (EINVAL), not the decoder's. */
static void test_proto_ino_reserve_req_decode_any_count(void **state)
{
    struct proto_ino_reserve_req in = {.count = 0}, out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_ino_reserve_req_encode(&w, &in);
    assert_int_equal(proto_ino_reserve_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.count, 0);
    patch_be(w.p, 0, 0xFFFFFFFFu, 4);
    assert_int_equal(proto_ino_reserve_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.count, 0xFFFFFFFFu);
    proto_wbuf_free(&w);
}

static void test_proto_ino_reserve_rep_decode_roundtrip(void **state)
{
    struct proto_ino_reserve_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(ino_reserve_rep, PROTO_MSG_INO_RESERVE_REP, &in, &out, &w, &s);
    assert_int_equal(w.len, 12);
    /* first, then count, big-endian. */
    assert_int_equal(w.p[0], 0x01);
    assert_int_equal(w.p[7], 0x08);
    assert_int_equal(w.p[9], 0x01);
    assert_int_equal(out.first, in.first);
    assert_int_equal(out.count, in.count);
    FREE_BUFS(&w, &s);
}

static void test_proto_mkdir_req_decode_roundtrip(void **state)
{
    struct proto_mkdir_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(mkdir_req, PROTO_MSG_MKDIR_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.parent, in.parent);
    assert_int_equal(out.mode, in.mode);
    assert_int_equal(out.umask, in.umask);
    assert_pstr_equal(out.name, in.name);
    FREE_BUFS(&w, &s);
}

static void test_proto_symlink_req_decode_roundtrip(void **state)
{
    struct proto_symlink_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(symlink_req, PROTO_MSG_SYMLINK_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.parent, in.parent);
    assert_pstr_equal(out.name, in.name);
    assert_pstr_equal(out.target, in.target);
    FREE_BUFS(&w, &s);
}

static void test_proto_link_req_decode_roundtrip(void **state)
{
    struct proto_link_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(link_req, PROTO_MSG_LINK_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.newparent, in.newparent);
    assert_pstr_equal(out.newname, in.newname);
    FREE_BUFS(&w, &s);
}

static void test_proto_rename_req_decode_roundtrip(void **state)
{
    struct proto_rename_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(rename_req, PROTO_MSG_RENAME_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.parent, in.parent);
    assert_pstr_equal(out.name, in.name);
    assert_int_equal(out.newparent, in.newparent);
    assert_pstr_equal(out.newname, in.newname);
    assert_int_equal(out.flags, in.flags);
    FREE_BUFS(&w, &s);
}

static void test_proto_rename_req_decode_unknown_flag(void **state)
{
    struct proto_rename_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(rename_req, &in, &w, &s);
    /* Both known bits together are well formed (metad answers EINVAL). */
    patch_be(w.p, w.len - 4, PROTO_RENAME_MASK, 4);
    assert_int_equal(proto_rename_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, w.len - 4, 0x4, 4);
    assert_int_equal(proto_rename_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_readlink_rep_decode_roundtrip(void **state)
{
    struct proto_readlink_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(readlink_rep, PROTO_MSG_READLINK_REP, &in, &out, &w, &s);
    assert_pstr_equal(out.target, in.target);
    FREE_BUFS(&w, &s);
}

static void test_proto_statfs_rep_decode_roundtrip(void **state)
{
    struct proto_statfs_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(statfs_rep, PROTO_MSG_STATFS_REP, &in, &out, &w, &s);
    assert_int_equal(out.blocks, in.blocks);
    assert_int_equal(out.bfree, in.bfree);
    assert_int_equal(out.bavail, in.bavail);
    assert_int_equal(out.files, in.files);
    assert_int_equal(out.ffree, in.ffree);
    assert_int_equal(out.bsize, in.bsize);
    assert_int_equal(out.namemax, in.namemax);
    FREE_BUFS(&w, &s);
}

static void test_proto_setxattr_req_decode_roundtrip(void **state)
{
    struct proto_setxattr_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(setxattr_req, PROTO_MSG_SETXATTR_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.flags, in.flags);
    assert_pstr_equal(out.name, in.name);
    assert_pstr_equal(out.value, in.value);
    FREE_BUFS(&w, &s);
}

static void test_proto_setxattr_req_decode_unknown_flag(void **state)
{
    struct proto_setxattr_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(setxattr_req, &in, &w, &s);
    patch_be(w.p, CRED_LEN + 8, 0x4, 4);
    assert_int_equal(proto_setxattr_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_setxattr_req_decode_value_too_long(void **state)
{
    struct proto_setxattr_req in, out;
    struct proto_wbuf w, s;
    char *big = calloc(1, PROTO_MAX_XATTR + 1);

    (void)state;
    assert_non_null(big);
    ENCODE_SAMPLE(setxattr_req, &in, &w, &s);
    in.value = (struct proto_str){big, PROTO_MAX_XATTR};
    proto_wbuf_reset(&w);
    proto_setxattr_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_setxattr_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.value.len, PROTO_MAX_XATTR);
    /* One byte more, built by hand since the encoder refuses it. */
    proto_wbuf_reset(&w);
    proto_cred_put(&w, &in.cred);
    proto_put_u64(&w, in.ino);
    proto_put_u32(&w, in.flags);
    proto_put_str(&w, in.name.p, in.name.len);
    proto_put_bytes(&w, big, PROTO_MAX_XATTR + 1);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_setxattr_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.value.len = PROTO_MAX_XATTR + 1;
    proto_setxattr_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    free(big);
    FREE_BUFS(&w, &s);
}

static void test_proto_xattr_name_req_decode_roundtrip(void **state)
{
    struct proto_xattr_name_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(xattr_name_req, PROTO_MSG_GETXATTR_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_pstr_equal(out.name, in.name);
    assert_short_long(PROTO_MSG_REMOVEXATTR_REQ, w.p, w.len);
    FREE_BUFS(&w, &s);
}

static void test_proto_bytes_rep_decode_roundtrip(void **state)
{
    struct proto_bytes_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(bytes_rep, PROTO_MSG_GETXATTR_REP, &in, &out, &w, &s);
    assert_int_equal(w.len, 4 + in.data.len);
    assert_pstr_equal(out.data, in.data);
    assert_short_long(PROTO_MSG_LISTXATTR_REP, w.p, w.len);
    assert_short_long(PROTO_MSG_CHUNK_READ_REP, w.p, w.len);
    FREE_BUFS(&w, &s);
}

static void test_proto_access_req_decode_roundtrip(void **state)
{
    struct proto_access_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(access_req, PROTO_MSG_ACCESS_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.mask, in.mask);
    assert_short_long(PROTO_MSG_OPEN_REQ, w.p, w.len);
    FREE_BUFS(&w, &s);
}

int test_proto_ns(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_ino_req_decode_roundtrip),
        cmocka_unit_test(test_proto_attr_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_entry_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_dirs_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_rep_len_for_version_trims_for_version_1),
        cmocka_unit_test(test_proto_lookup_req_decode_roundtrip),
        cmocka_unit_test(test_proto_lookup_req_optional_time),
        cmocka_unit_test(test_proto_lookup_req_decode_too_many_groups),
        cmocka_unit_test(test_proto_setattr_req_decode_roundtrip),
        cmocka_unit_test(test_proto_setattr_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_mknod_req_decode_roundtrip),
        cmocka_unit_test(test_proto_mknod_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_mknod_req_decode_ino_roundtrip),
        cmocka_unit_test(test_proto_mknod_req_decode_without_ino),
        cmocka_unit_test(test_proto_ino_reserve_req_decode_roundtrip),
        cmocka_unit_test(test_proto_ino_reserve_req_decode_any_count),
        cmocka_unit_test(test_proto_ino_reserve_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_mkdir_req_decode_roundtrip),
        cmocka_unit_test(test_proto_symlink_req_decode_roundtrip),
        cmocka_unit_test(test_proto_link_req_decode_roundtrip),
        cmocka_unit_test(test_proto_rename_req_decode_roundtrip),
        cmocka_unit_test(test_proto_rename_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_readlink_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_statfs_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_setxattr_req_decode_roundtrip),
        cmocka_unit_test(test_proto_setxattr_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_setxattr_req_decode_value_too_long),
        cmocka_unit_test(test_proto_xattr_name_req_decode_roundtrip),
        cmocka_unit_test(test_proto_bytes_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_access_req_decode_roundtrip),
    };
    return cmocka_run_group_tests_name("proto_ns", tests, NULL, NULL);
}
