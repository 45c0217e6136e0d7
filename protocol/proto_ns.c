/* proto_ns.c: codecs for the namespace messages (docs/protocol.md §6)
 * except READDIR, which has its own file (proto_readdir.c).
 *
 * Requests that act for a user start with a credential.  The decoders
 * check only the shape of a payload: exact length, group count, flag
 * masks and the xattr value limit.  Whether a name is too long, a mode
 * valid or a caller allowed is for metad to answer with an error reply,
 * not for the decoder, which would close the connection.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_ino_req_encode(struct proto_wbuf *w, const struct proto_ino_req *m)
{
    proto_put_u64(w, m->ino);
}

int proto_ino_req_decode(const uint8_t *p, size_t n, struct proto_ino_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_attr_rep_encode(struct proto_wbuf *w, const struct proto_attr_rep *m)
{
    proto_attr_put(w, &m->attr);
}

int proto_attr_rep_decode(const uint8_t *p, size_t n, struct proto_attr_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_attr_get(&r, &m->attr);
    return proto_rbuf_done(&r);
}

/* §6.8-6.11: the entry, then (version 2) the directory. */
void proto_entry_rep_encode(struct proto_wbuf *w,
                            const struct proto_entry_rep *m)
{
    proto_attr_put(w, &m->attr);
    if (m->has_dir)
        proto_attr_put(w, &m->dir);
}

int proto_entry_rep_decode(const uint8_t *p, size_t n,
                           struct proto_entry_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    if (n != PROTO_ATTR_SIZE && n != 2 * PROTO_ATTR_SIZE)
        return -EPROTO;
    proto_rbuf_init(&r, p, n);
    proto_attr_get(&r, &m->attr);
    m->has_dir = n == 2 * PROTO_ATTR_SIZE;
    if (m->has_dir)
        proto_attr_get(&r, &m->dir);
    return proto_rbuf_done(&r);
}

/* §6.12, §6.13: no count on the wire; the length gives it. */
void proto_dirs_rep_encode(struct proto_wbuf *w, const struct proto_dirs_rep *m)
{
    if (m->ndirs > PROTO_DIRS_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    for (uint32_t i = 0; i < m->ndirs; i++)
        proto_attr_put(w, &m->dir[i]);
}

int proto_dirs_rep_decode(const uint8_t *p, size_t n, struct proto_dirs_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    if (n % PROTO_ATTR_SIZE != 0 || n / PROTO_ATTR_SIZE > PROTO_DIRS_MAX)
        return -EPROTO;
    m->ndirs = (uint32_t)(n / PROTO_ATTR_SIZE);
    proto_rbuf_init(&r, p, n);
    for (uint32_t i = 0; i < m->ndirs; i++)
        proto_attr_get(&r, &m->dir[i]);
    return proto_rbuf_done(&r);
}

/* §3.4: what version 2 added to a reply is a tail a version 1 peer never
 * sees. */
size_t proto_rep_len_for_version(uint16_t rep_opcode, uint16_t version,
                                 size_t len)
{
    if (version >= PROTO_VERSION_DIR_ATTRS)
        return len;
    switch (rep_opcode) {
    case PROTO_MSG_MKNOD_REP:
    case PROTO_MSG_MKDIR_REP:
    case PROTO_MSG_SYMLINK_REP:
    case PROTO_MSG_LINK_REP:
        return len < PROTO_ATTR_SIZE ? len : PROTO_ATTR_SIZE;
    case PROTO_MSG_UNLINK_REP:
    case PROTO_MSG_RMDIR_REP:
    case PROTO_MSG_RENAME_REP:
        return 0;
    default:
        return len;
    }
}

void proto_lookup_req_encode(struct proto_wbuf *w,
                             const struct proto_lookup_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->parent);
    proto_put_str(w, m->name.p, m->name.len);
    if (m->time)
        proto_put_i64(w, m->time);
}

int proto_lookup_req_decode(const uint8_t *p, size_t n,
                            struct proto_lookup_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->parent = proto_get_u64(&r);
    proto_str_get(&r, &m->name);
    /* The optional time: present when bytes are left, and then never 0
     * (0 is its absence: one encoding per body). */
    if (!r.err && r.off < r.len) {
        m->time = proto_get_i64(&r);
        if (!r.err && m->time == 0)
            return -EPROTO;
    }
    return proto_rbuf_done(&r);
}

void proto_setattr_req_encode(struct proto_wbuf *w,
                              const struct proto_setattr_req *m)
{
    if (!proto_wbuf_check(w, m->valid & ~PROTO_SETATTR_MASK ? -EINVAL : 0))
        return;
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->valid);
    proto_put_u32(w, m->mode);
    proto_put_u32(w, m->uid);
    proto_put_u32(w, m->gid);
    proto_put_u64(w, m->size);
    proto_put_i64(w, m->atime);
    proto_put_i64(w, m->mtime);
    proto_put_i64(w, m->ctime);
}

int proto_setattr_req_decode(const uint8_t *p, size_t n,
                             struct proto_setattr_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->valid = proto_get_u32(&r);
    m->mode = proto_get_u32(&r);
    m->uid = proto_get_u32(&r);
    m->gid = proto_get_u32(&r);
    m->size = proto_get_u64(&r);
    m->atime = proto_get_i64(&r);
    m->mtime = proto_get_i64(&r);
    m->ctime = proto_get_i64(&r);
    return proto_rbuf_finish(&r, m->valid & ~PROTO_SETATTR_MASK ? -EPROTO : 0);
}

void proto_mknod_req_encode(struct proto_wbuf *w,
                            const struct proto_mknod_req *m)
{
    if (!proto_wbuf_check(w, m->flags & ~PROTO_MKNOD_MASK ? -EINVAL : 0))
        return;
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->parent);
    proto_put_u32(w, m->mode);
    proto_put_u32(w, m->rdev);
    proto_put_u32(w, m->umask);
    proto_put_u32(w, m->flags);
    proto_put_str(w, m->name.p, m->name.len);
    if (m->flags & PROTO_MKNOD_INO) {
        proto_put_u64(w, m->ino);
        proto_put_i64(w, m->time);
    }
}

/* §6.8: ino and time follow the name only with PROTO_MKNOD_INO, so a
 * body without the flag (every operation record made before it) keeps
 * its layout. */
int proto_mknod_req_decode(const uint8_t *p, size_t n,
                           struct proto_mknod_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->parent = proto_get_u64(&r);
    m->mode = proto_get_u32(&r);
    m->rdev = proto_get_u32(&r);
    m->umask = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    proto_str_get(&r, &m->name);
    if (m->flags & PROTO_MKNOD_INO) {
        m->ino = proto_get_u64(&r);
        m->time = proto_get_i64(&r);
    }
    return proto_rbuf_finish(&r, m->flags & ~PROTO_MKNOD_MASK ? -EPROTO : 0);
}

void proto_ino_reserve_req_encode(struct proto_wbuf *w,
                                  const struct proto_ino_reserve_req *m)
{
    proto_put_u32(w, m->count);
}

int proto_ino_reserve_req_decode(const uint8_t *p, size_t n,
                                 struct proto_ino_reserve_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->count = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_ino_reserve_rep_encode(struct proto_wbuf *w,
                                  const struct proto_ino_reserve_rep *m)
{
    proto_put_u64(w, m->first);
    proto_put_u32(w, m->count);
}

int proto_ino_reserve_rep_decode(const uint8_t *p, size_t n,
                                 struct proto_ino_reserve_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->first = proto_get_u64(&r);
    m->count = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_mkdir_req_encode(struct proto_wbuf *w,
                            const struct proto_mkdir_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->parent);
    proto_put_u32(w, m->mode);
    proto_put_u32(w, m->umask);
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_mkdir_req_decode(const uint8_t *p, size_t n,
                           struct proto_mkdir_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->parent = proto_get_u64(&r);
    m->mode = proto_get_u32(&r);
    m->umask = proto_get_u32(&r);
    proto_str_get(&r, &m->name);
    return proto_rbuf_done(&r);
}

void proto_symlink_req_encode(struct proto_wbuf *w,
                              const struct proto_symlink_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->parent);
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_str(w, m->target.p, m->target.len);
}

int proto_symlink_req_decode(const uint8_t *p, size_t n,
                             struct proto_symlink_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->parent = proto_get_u64(&r);
    proto_str_get(&r, &m->name);
    proto_str_get(&r, &m->target);
    return proto_rbuf_done(&r);
}

void proto_link_req_encode(struct proto_wbuf *w, const struct proto_link_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->newparent);
    proto_put_str(w, m->newname.p, m->newname.len);
}

int proto_link_req_decode(const uint8_t *p, size_t n, struct proto_link_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->newparent = proto_get_u64(&r);
    proto_str_get(&r, &m->newname);
    return proto_rbuf_done(&r);
}

void proto_rename_req_encode(struct proto_wbuf *w,
                             const struct proto_rename_req *m)
{
    if (!proto_wbuf_check(w, m->flags & ~PROTO_RENAME_MASK ? -EINVAL : 0))
        return;
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->parent);
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_u64(w, m->newparent);
    proto_put_str(w, m->newname.p, m->newname.len);
    proto_put_u32(w, m->flags);
}

/* Both RENAME bits together are well formed on the wire; metad answers
 * them with EINVAL (§6.13), as renameat2(2) does. */
int proto_rename_req_decode(const uint8_t *p, size_t n,
                            struct proto_rename_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->parent = proto_get_u64(&r);
    proto_str_get(&r, &m->name);
    m->newparent = proto_get_u64(&r);
    proto_str_get(&r, &m->newname);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r, m->flags & ~PROTO_RENAME_MASK ? -EPROTO : 0);
}

void proto_readlink_rep_encode(struct proto_wbuf *w,
                               const struct proto_readlink_rep *m)
{
    proto_put_str(w, m->target.p, m->target.len);
}

int proto_readlink_rep_decode(const uint8_t *p, size_t n,
                              struct proto_readlink_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_str_get(&r, &m->target);
    return proto_rbuf_done(&r);
}

void proto_statfs_rep_encode(struct proto_wbuf *w,
                             const struct proto_statfs_rep *m)
{
    proto_put_u64(w, m->blocks);
    proto_put_u64(w, m->bfree);
    proto_put_u64(w, m->bavail);
    proto_put_u64(w, m->files);
    proto_put_u64(w, m->ffree);
    proto_put_u32(w, m->bsize);
    proto_put_u32(w, m->namemax);
}

int proto_statfs_rep_decode(const uint8_t *p, size_t n,
                            struct proto_statfs_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->blocks = proto_get_u64(&r);
    m->bfree = proto_get_u64(&r);
    m->bavail = proto_get_u64(&r);
    m->files = proto_get_u64(&r);
    m->ffree = proto_get_u64(&r);
    m->bsize = proto_get_u32(&r);
    m->namemax = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

static int setxattr_check(const struct proto_setxattr_req *m)
{
    if (m->flags & ~PROTO_XATTR_MASK)
        return -EPROTO;
    if (m->value.len > PROTO_MAX_XATTR)
        return -EPROTO;
    return 0;
}

void proto_setxattr_req_encode(struct proto_wbuf *w,
                               const struct proto_setxattr_req *m)
{
    if (!proto_wbuf_check(w, setxattr_check(m)))
        return;
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->flags);
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_bytes(w, m->value.p, m->value.len);
}

int proto_setxattr_req_decode(const uint8_t *p, size_t n,
                              struct proto_setxattr_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->flags = proto_get_u32(&r);
    proto_str_get(&r, &m->name);
    proto_bytes_get(&r, &m->value);
    return proto_rbuf_finish(&r, setxattr_check(m));
}

void proto_xattr_name_req_encode(struct proto_wbuf *w,
                                 const struct proto_xattr_name_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_xattr_name_req_decode(const uint8_t *p, size_t n,
                                struct proto_xattr_name_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    proto_str_get(&r, &m->name);
    return proto_rbuf_done(&r);
}

void proto_bytes_rep_encode(struct proto_wbuf *w,
                            const struct proto_bytes_rep *m)
{
    proto_put_bytes(w, m->data.p, m->data.len);
}

int proto_bytes_rep_decode(const uint8_t *p, size_t n,
                           struct proto_bytes_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_bytes_get(&r, &m->data);
    return proto_rbuf_done(&r);
}

void proto_access_req_encode(struct proto_wbuf *w,
                             const struct proto_access_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->mask);
}

int proto_access_req_decode(const uint8_t *p, size_t n,
                            struct proto_access_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->mask = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}
