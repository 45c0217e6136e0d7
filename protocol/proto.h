/* proto.h: the Tessera wire protocol, the one header shared by every part.
 *
 * docs/protocol.md is the normative description; this header is its C
 * image.  Structs here are host-order values, never wire images: encoders
 * write them big-endian into a struct proto_wbuf, decoders check the exact
 * length of a payload and fill them in.
 *
 * Decoded strings, byte ranges and arrays are borrowed: they point into the
 * payload that was decoded and are valid only while it is.  Arrays are
 * validated whole by the decoder and then walked with an iterator that
 * cannot fail, so no decoder allocates.
 *
 * Everything here uses only libc: no sockets, no event loop, no logging.
 */
#ifndef TESSERA_PROTO_H
#define TESSERA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Frame header (docs/protocol.md §2) -------------------------------- */

#define PROTO_MAGIC 0x54535241u /* "TSRA" */
#define PROTO_FRAME_VERSION 1   /* layout of the frame header itself */
#define PROTO_HDR_SIZE 24
#define PROTO_MAX_DATA (4u << 20)                  /* data bytes per message */
#define PROTO_MAX_PAYLOAD (PROTO_MAX_DATA + 65536u) /* whole payload */

/* Protocol versions negotiated by HELLO (§3). */
#define PROTO_VERSION_MIN 1
#define PROTO_VERSION_MAX 2
/* The first version whose namespace mutation replies carry the changed
 * directories' attributes (§3.4, §6.8-6.13). */
#define PROTO_VERSION_DIR_ATTRS 2
/* The first version that may ask for a directory's delegation (§14.3). */
#define PROTO_VERSION_DIR_DELEGATE 2

/* Header flags. */
#define PROTO_FLAG_REPLY 0x01u
#define PROTO_FLAG_MASK 0x01u

struct proto_hdr {
    uint8_t version; /* PROTO_FRAME_VERSION */
    uint8_t flags;   /* PROTO_FLAG_* */
    uint16_t opcode; /* PROTO_MSG_* */
    uint64_t req_id; /* chosen by the requester, echoed in the reply */
    int32_t status;  /* replies: 0 or a PROTO_E* value; requests: 0 */
    uint32_t length; /* payload bytes following the header */
};

/* Write @h as PROTO_HDR_SIZE bytes at @out. */
void proto_hdr_encode(const struct proto_hdr *h, uint8_t *out);
/* Parse PROTO_HDR_SIZE bytes at @in.  Returns 0, -EPROTO for a bad magic,
 * frame version, flag or status, -EMSGSIZE when length exceeds
 * PROTO_MAX_PAYLOAD. */
int proto_hdr_decode(const uint8_t *in, struct proto_hdr *h);

/* ---- Message ids (§4) -------------------------------------------------- */

enum proto_msg {
#define X(name, id, body) PROTO_MSG_##name = id,
#include "proto_msgs.def"
#undef X
};

/* Name of @opcode ("LOOKUP_REQ"), or NULL for an unknown id. */
const char *proto_msg_name(uint16_t opcode);
/* True when @opcode is a known request id. */
bool proto_msg_is_request(uint16_t opcode);

/* ---- Wire errors (§5) ------------------------------------------------- */

/* The closed list of error values carried in the status field.  They are
 * numbered as Linux numbers the errno of the same name, but are converted
 * explicitly: host errno never goes on the wire. */
enum proto_err {
    PROTO_OK = 0,
    PROTO_EPERM = 1,
    PROTO_ENOENT = 2,
    PROTO_EIO = 5,
    PROTO_EBADF = 9,
    PROTO_EAGAIN = 11,
    PROTO_ENOMEM = 12,
    PROTO_EACCES = 13,
    PROTO_EBUSY = 16,
    PROTO_EEXIST = 17,
    PROTO_EXDEV = 18,
    PROTO_ENOTDIR = 20,
    PROTO_EISDIR = 21,
    PROTO_EINVAL = 22,
    PROTO_EFBIG = 27,
    PROTO_ENOSPC = 28,
    PROTO_EROFS = 30,
    PROTO_EMLINK = 31,
    PROTO_ERANGE = 34,
    PROTO_ENAMETOOLONG = 36,
    PROTO_ENOSYS = 38,
    PROTO_ENOTEMPTY = 39,
    PROTO_ELOOP = 40,
    PROTO_ENODATA = 61,
    PROTO_EPROTO = 71,
    PROTO_EOVERFLOW = 75,
    PROTO_EOPNOTSUPP = 95,
    PROTO_ETIMEDOUT = 110,
    PROTO_ESTALE = 116,
    PROTO_EDQUOT = 122,
    /* Tessera's own. */
    PROTO_EVERSION = 1001,   /* no common protocol version */
    PROTO_ENOSESSION = 1002, /* request needs an open session */
    PROTO_EOLDVER = 1003,    /* chunk version older than required */
    PROTO_ECHECKSUM = 1004,  /* stored data failed its checksum */
    PROTO_EHANDSHAKE = 1005, /* request before HELLO, or HELLO twice */
    PROTO_EAUTH = 1006,      /* authentication failed or required (§3.2) */
    PROTO_ELIMIT = 1007,     /* too many connections or sessions (§3.1) */
    PROTO_ESECURE = 1008,    /* a secure link required, not offered (§3.7) */
    PROTO_ENOTLEADER = 1009, /* a metad replica that does not lead (§5.3) */
};

/* Map a negative errno to a wire value; unknown values become PROTO_EIO. */
int32_t proto_err_to_wire(int neg_errno);
/* Map a wire value to a negative errno (0 stays 0); unknown values and
 * Tessera's own map to the nearest errno (documented in §5). */
int proto_err_from_wire(int32_t wire);
/* True when @wire is one of enum proto_err. */
bool proto_err_valid(int32_t wire);
/* Short name of a wire error, "EIO"; "E?" when unknown. */
const char *proto_err_name(int32_t wire);

/* ---- Buffers ---------------------------------------------------------- */

/* A growable output buffer.  Encoders append; the first failure (out of
 * memory, or growing past PROTO_MAX_PAYLOAD) is latched in @err and later
 * appends do nothing.  Owns @p; release with proto_wbuf_free(). */
struct proto_wbuf {
    uint8_t *p;
    size_t len, cap;
    int err; /* 0 or -ENOMEM / -EMSGSIZE */
};

void proto_wbuf_init(struct proto_wbuf *w);
void proto_wbuf_free(struct proto_wbuf *w);
void proto_wbuf_reset(struct proto_wbuf *w); /* len = 0, err = 0 */
void proto_put_u8(struct proto_wbuf *w, uint8_t v);
void proto_put_u16(struct proto_wbuf *w, uint16_t v);
void proto_put_u32(struct proto_wbuf *w, uint32_t v);
void proto_put_u64(struct proto_wbuf *w, uint64_t v);
void proto_put_i64(struct proto_wbuf *w, int64_t v);
void proto_put_raw(struct proto_wbuf *w, const void *p, size_t n);
/* u16 length then bytes; latches -EINVAL when n > PROTO_MAX_STR. */
void proto_put_str(struct proto_wbuf *w, const char *p, size_t n);
/* u32 length then bytes; latches -EINVAL when n > PROTO_MAX_DATA. */
void proto_put_bytes(struct proto_wbuf *w, const void *p, size_t n);

/* A bounded reader over borrowed bytes.  The first short read latches
 * -EPROTO in @err; later reads return zeros. */
struct proto_rbuf {
    const uint8_t *p;
    size_t len, off;
    int err;
};

void proto_rbuf_init(struct proto_rbuf *r, const void *p, size_t len);
uint8_t proto_get_u8(struct proto_rbuf *r);
uint16_t proto_get_u16(struct proto_rbuf *r);
uint32_t proto_get_u32(struct proto_rbuf *r);
uint64_t proto_get_u64(struct proto_rbuf *r);
int64_t proto_get_i64(struct proto_rbuf *r);
/* Borrow @n bytes; NULL (and err latched) when fewer remain. */
const uint8_t *proto_get_raw(struct proto_rbuf *r, size_t n);
/* 0 when the whole input was consumed without error, else -EPROTO. */
int proto_rbuf_done(const struct proto_rbuf *r);

/* ---- Common field types (§4.1) ----------------------------------------- */

#define PROTO_MAX_STR 4096     /* any string on the wire */
#define PROTO_MAX_GROUPS 32    /* supplementary groups in a credential */
#define PROTO_MAX_XATTR 65536  /* extended attribute value */
#define PROTO_MAX_REPLICAS 16  /* replicas of one chunk */
#define PROTO_NAME_MAX 255     /* a directory entry name (ENAMETOOLONG) */
#define PROTO_CHUNK_SIZE (64u << 20)

/* Borrowed string or byte range: not NUL-terminated. */
struct proto_str {
    const char *p;
    uint32_t len;
};

/* Who is asking: checked by metad as a local file system would. */
struct proto_cred {
    uint32_t uid, gid;
    uint32_t ngroups; /* <= PROTO_MAX_GROUPS */
    uint32_t groups[PROTO_MAX_GROUPS];
};

/* Attributes of an inode (§4.2).  Times are nanoseconds since the epoch. */
struct proto_attr {
    uint64_t ino;
    uint32_t mode; /* S_IFMT type bits and permission bits */
    uint32_t nlink;
    uint32_t uid, gid;
    uint32_t rdev;
    uint32_t goal;    /* replication goal */
    uint64_t size;
    uint64_t blocks;  /* 512-byte units allocated */
    int64_t atime, mtime, ctime;
    uint64_t version; /* bumped on every data or attribute change */
};
/* Wire size of an attr block, fields in the order above: ino 8, six u32
 * 24, size and blocks 16, three times 24, version 8. */
#define PROTO_ATTR_SIZE 80

void proto_cred_put(struct proto_wbuf *w, const struct proto_cred *c);
int proto_cred_get(struct proto_rbuf *r, struct proto_cred *c);
void proto_attr_put(struct proto_wbuf *w, const struct proto_attr *a);
void proto_attr_get(struct proto_rbuf *r, struct proto_attr *a);
/* Borrow a u16-length string; -EPROTO when truncated or > PROTO_MAX_STR. */
int proto_str_get(struct proto_rbuf *r, struct proto_str *s);
/* Borrow a u32-length byte range; -EPROTO when truncated or too long. */
int proto_bytes_get(struct proto_rbuf *r, struct proto_str *s);

/* ---- Message bodies (§6 onwards) --------------------------------------- */

struct proto_empty {
    char unused;
};

/* Roles a peer announces in HELLO. */
enum proto_role {
    PROTO_ROLE_CLIENT = 1, /* a mount */
    PROTO_ROLE_CHUNKD = 2, /* a storage server */
    PROTO_ROLE_ADMIN = 3,  /* the admin CLI */
    PROTO_ROLE_NBD = 4,    /* the NBD export */
    PROTO_ROLE_METAD = 5,  /* the metadata service, calling a chunkd */
};

/* Authentication methods (§3.2).  HELLO_REQ offers a set of them as bits
 * (PROTO_AUTH_BIT(m)); HELLO_REP names the one chosen. */
#define PROTO_AUTH_NONE 0u
#define PROTO_AUTH_KEY 1u    /* HMAC with the identity's own key (metad) */
#define PROTO_AUTH_TICKET 2u /* HMAC with a ticket's session key (chunkd) */
#define PROTO_AUTH_BIT(m) (1u << ((m)-1))
#define PROTO_AUTH_NONCE_SIZE 32u
#define PROTO_AUTH_PROOF_SIZE 32u /* HMAC-SHA-256 */
#define PROTO_AUTH_NAME_MAX 64u   /* identity names */
#define PROTO_AUTH_TICKET_MAX 2048u
#define PROTO_AUTH_CAPS_MAX 1024u
#define PROTO_AUTH_SEALED_MAX 256u /* a sealed key: nonce, key, tag */
#define PROTO_AUTH_SERVICE_MAX 4u  /* service keys in one AUTH_SERVICE_REP */

/* HELLO feature bits (§3.1).  SECURE: the connection continues with a
 * TLS session keyed from AUTH (§3.7); only with an authentication method. */
#define PROTO_FEATURE_SECURE 0x1u
#define PROTO_FEATURES_KNOWN PROTO_FEATURE_SECURE

struct proto_hello_req {
    uint16_t min_version, max_version;
    uint8_t role;          /* enum proto_role */
    uint32_t features;     /* PROTO_FEATURE_* asked for */
    uint32_t auth_methods; /* methods the client supports: bit mask, 0 */
    struct proto_str name; /* free text, e.g. "tessera-mount host" */
};

struct proto_hello_rep {
    uint16_t version;      /* chosen, within the client's range */
    uint32_t features;     /* PROTO_FEATURE_* granted (of those asked) */
    uint32_t auth_method;  /* PROTO_AUTH_NONE: no AUTH exchange follows */
    uint64_t instance_id;  /* random per server start */
    struct proto_str name; /* free text */
    /* Present when auth_method is not NONE: the responder's challenge. */
    uint8_t nonce[PROTO_AUTH_NONCE_SIZE];
};

/* §3.2 AUTH: the initiator's answer to the challenge in HELLO_REP. */
struct proto_auth_req {
    uint8_t method;          /* the one HELLO_REP chose */
    struct proto_str name;   /* identity, 1..PROTO_AUTH_NAME_MAX bytes */
    struct proto_str ticket; /* TICKET: the sealed ticket; KEY: empty */
    uint8_t nonce[PROTO_AUTH_NONCE_SIZE];
    uint8_t proof[PROTO_AUTH_PROOF_SIZE];
};

struct proto_auth_rep {
    uint8_t proof[PROTO_AUTH_PROOF_SIZE];
};

/* §3.5 AUTH_TICKET_REP: a ticket for the chunk servers. */
struct proto_auth_ticket_rep {
    uint64_t expires_ms;         /* ms since the epoch */
    struct proto_str ticket;     /* opaque to the client */
    struct proto_str sealed_key; /* the session key, sealed with its key */
};

/* §3.6 AUTH_SERVICE_REP: the service keys tickets are sealed with. */
struct proto_auth_service_key {
    uint32_t id;
    struct proto_str sealed; /* the key, sealed with the chunkd's key */
};
struct proto_auth_service_rep {
    uint32_t count; /* 1..PROTO_AUTH_SERVICE_MAX */
    struct proto_auth_service_key keys[PROTO_AUTH_SERVICE_MAX];
};

/* §10.2 AUTH_ADD, AUTH_CAPS: an identity and its capabilities. */
#define PROTO_AUTH_ADD_GET 0x1u /* AUTH_ADD: an existing one is returned */
struct proto_auth_set_req {
    struct proto_str name;
    struct proto_str caps;
    uint32_t flags; /* AUTH_ADD: PROTO_AUTH_ADD_GET; AUTH_CAPS: 0 */
};

/* AUTH_RM, AUTH_LIST: one identity ("" lists every one). */
struct proto_auth_name_req {
    struct proto_str name;
};

/* The body of an ENOTLEADER reply (docs/protocol.md §5.3), the one error
 * reply with a body: the leader's client address, empty when the replica
 * knows of none.  Host errno: EREMCHG. */
struct proto_not_leader {
    struct proto_str leader; /* borrowed from the payload when decoded */
};
void proto_not_leader_encode(struct proto_wbuf *w,
                             const struct proto_not_leader *m);
int proto_not_leader_decode(const uint8_t *p, size_t n,
                            struct proto_not_leader *m);

struct proto_ping {
    uint64_t cookie;
};

struct proto_session_open_req {
    uint32_t lease_ms; /* wanted; server may shorten */
    uint32_t flags;    /* must be 0 */
    struct proto_str client_name;
    struct proto_str host;
};

struct proto_session_open_rep {
    uint64_t session_id;
    uint32_t lease_ms; /* granted */
};

struct proto_session_id {
    uint64_t session_id;
};

struct proto_session_renew_rep {
    uint32_t lease_ms;
};

struct proto_ino_req {
    uint64_t ino;
};

struct proto_attr_rep {
    struct proto_attr attr;
};

/* MKNOD, MKDIR, SYMLINK and LINK replies (§6.8-6.11): the entry and, from
 * protocol version 2, its directory after the change. */
struct proto_entry_rep {
    struct proto_attr attr;
    bool has_dir;
    struct proto_attr dir;
};

/* UNLINK, RMDIR and RENAME replies (§6.12, §6.13): empty in version 1;
 * from version 2 the directory (UNLINK, RMDIR) or both directories
 * (RENAME: old, then new) after the change. */
#define PROTO_DIRS_MAX 2
struct proto_dirs_rep {
    uint32_t ndirs;
    struct proto_attr dir[PROTO_DIRS_MAX];
};

/* How many bytes of a successful reply @rep_opcode of @len bytes a peer
 * that negotiated @version receives: a version 1 peer gets the version 1
 * layout, which every longer namespace reply begins with (§3.4). */
size_t proto_rep_len_for_version(uint16_t rep_opcode, uint16_t version,
                                 size_t len);

struct proto_lookup_req { /* also UNLINK, RMDIR */
    struct proto_cred cred;
    uint64_t parent;
    struct proto_str name;
    /* UNLINK only, optional (docs/protocol.md §6.12): the client's time of
     * the change (ns), sent when not 0; 0 when absent. */
    int64_t time;
};

/* SETATTR valid bits. */
#define PROTO_SETATTR_MODE 0x001u
#define PROTO_SETATTR_UID 0x002u
#define PROTO_SETATTR_GID 0x004u
#define PROTO_SETATTR_SIZE 0x008u
#define PROTO_SETATTR_ATIME 0x010u
#define PROTO_SETATTR_MTIME 0x020u
#define PROTO_SETATTR_ATIME_NOW 0x040u
#define PROTO_SETATTR_MTIME_NOW 0x080u
#define PROTO_SETATTR_CTIME 0x100u
/* The caller has the file open for writing (ftruncate(2)), §6.7. */
#define PROTO_SETATTR_FILE 0x200u
/* Clear set-user-ID and set-group-ID as a write by the caller does. */
#define PROTO_SETATTR_KILL_PRIV 0x400u
#define PROTO_SETATTR_MASK 0x7FFu

struct proto_setattr_req {
    struct proto_cred cred;
    uint64_t ino;
    uint32_t valid; /* PROTO_SETATTR_* */
    uint32_t mode, uid, gid;
    uint64_t size;
    int64_t atime, mtime, ctime;
};

#define PROTO_MKNOD_EXCL 0x1u /* fail with EEXIST if the name exists */
#define PROTO_MKNOD_HOLD 0x2u /* the session holds the file open (§6.22) */
/* The client names the new inode and gives its times (§6.8, §6.23). */
#define PROTO_MKNOD_INO 0x4u
#define PROTO_MKNOD_MASK 0x7u

struct proto_mknod_req {
    struct proto_cred cred;
    uint64_t parent;
    uint32_t mode, rdev, umask, flags;
    struct proto_str name;
    /* On the wire only with PROTO_MKNOD_INO; 0 otherwise. */
    uint64_t ino; /* a number INO_RESERVE gave the session */
    int64_t time; /* atime, mtime and ctime of the new inode (ns) */
};

/* INO_RESERVE (§6.23): @count inode numbers for the session to give new
 * files itself, [first, first + count). */
#define PROTO_INO_RESERVE_MAX 65536u

struct proto_ino_reserve_req {
    uint32_t count; /* 1..PROTO_INO_RESERVE_MAX (metad checks it) */
};

struct proto_ino_reserve_rep {
    uint64_t first;
    uint32_t count;
};

struct proto_mkdir_req {
    struct proto_cred cred;
    uint64_t parent;
    uint32_t mode, umask;
    struct proto_str name;
};

struct proto_symlink_req {
    struct proto_cred cred;
    uint64_t parent;
    struct proto_str name;
    struct proto_str target;
};

struct proto_link_req {
    struct proto_cred cred;
    uint64_t ino;
    uint64_t newparent;
    struct proto_str newname;
};

#define PROTO_RENAME_NOREPLACE 0x1u
#define PROTO_RENAME_EXCHANGE 0x2u
#define PROTO_RENAME_MASK 0x3u

struct proto_rename_req {
    struct proto_cred cred;
    uint64_t parent;
    struct proto_str name;
    uint64_t newparent;
    struct proto_str newname;
    uint32_t flags; /* PROTO_RENAME_*; both bits together is EINVAL */
};

struct proto_readlink_rep {
    struct proto_str target;
};

#define PROTO_READDIR_PLUS 0x1u
#define PROTO_READDIR_MASK 0x1u
#define PROTO_READDIR_MAX 1024 /* entries per reply */

struct proto_readdir_req {
    struct proto_cred cred;
    uint64_t ino;
    uint64_t cookie; /* 0 = from the start; else a cookie from an entry */
    uint32_t max_entries; /* 1..PROTO_READDIR_MAX */
    uint32_t flags;       /* PROTO_READDIR_* */
};

/* One directory entry.  With PLUS, @attr is filled; otherwise only
 * attr.ino and attr.mode are meaningful. */
struct proto_dirent {
    uint64_t cookie; /* resume after this entry */
    struct proto_str name;
    struct proto_attr attr;
};

struct proto_readdir_rep {
    uint32_t flags; /* PROTO_READDIR_PLUS when entries carry attributes */
    uint8_t eof;    /* 1 when no entries follow the last one */
    uint32_t count;
    struct proto_str raw; /* validated entries, walk with the iterator */
};

/* Append one entry, laid out for @flags (attributes only with PLUS), to a
 * separate wbuf whose bytes then become readdir_rep.raw. */
void proto_dirent_put(struct proto_wbuf *w, uint32_t flags,
                      const struct proto_dirent *d);

struct proto_dirent_iter {
    struct proto_rbuf r;
    uint32_t flags, left;
};
void proto_dirent_iter_init(struct proto_dirent_iter *it,
                            const struct proto_readdir_rep *rep);
/* Fill @d with the next entry; false at the end. */
bool proto_dirent_next(struct proto_dirent_iter *it, struct proto_dirent *d);

struct proto_statfs_rep {
    uint64_t blocks, bfree, bavail; /* in units of @bsize */
    uint64_t files, ffree;
    uint32_t bsize, namemax;
};

#define PROTO_XATTR_CREATE 0x1u
#define PROTO_XATTR_REPLACE 0x2u
#define PROTO_XATTR_MASK 0x3u

struct proto_setxattr_req {
    struct proto_cred cred;
    uint64_t ino;
    uint32_t flags; /* PROTO_XATTR_* */
    struct proto_str name;
    struct proto_str value; /* <= PROTO_MAX_XATTR */
};

struct proto_xattr_name_req { /* GETXATTR, REMOVEXATTR */
    struct proto_cred cred;
    uint64_t ino;
    struct proto_str name;
};

struct proto_bytes_rep { /* GETXATTR, LISTXATTR, CHUNK_READ */
    struct proto_str data;
};

/* OPEN: beside the open(2) flags, the session holds the file open until
 * RELEASE (docs/protocol.md §6.22).  No open(2) flag uses this bit. */
#define PROTO_OPEN_HOLD 0x80000000u

struct proto_access_req { /* ACCESS (mask R_OK..), OPEN (O_* flags) */
    struct proto_cred cred;
    uint64_t ino;
    uint32_t mask;
};

/* ---- Chunks (§7, §8) --------------------------------------------------- */

struct proto_replica {
    uint32_t server_id;
    struct proto_str addr; /* "host:port" of the chunk server */
};

struct proto_chunk_ref {
    uint64_t chunk_id;
    uint64_t version;
};

#define PROTO_CHUNK_READ_MASK 0x0u

struct proto_chunk_read_req {
    uint64_t chunk_id;
    uint64_t version; /* the replica must hold exactly this version */
    uint32_t offset, length; /* within the chunk; length <= PROTO_MAX_DATA */
    uint32_t flags;
};

#define PROTO_CHUNK_WRITE_SYNC 0x1u /* durable on every replica before reply */
#define PROTO_CHUNK_WRITE_MASK 0x1u

struct proto_chunk_write_req {
    uint64_t chunk_id;
    uint64_t version;
    uint32_t offset;
    uint32_t flags; /* PROTO_CHUNK_WRITE_* */
    /* Replicas still to forward to, in chain order (not the receiver). */
    uint32_t nchain;
    struct proto_replica chain[PROTO_MAX_REPLICAS];
    struct proto_str data; /* <= PROTO_MAX_DATA, offset+len <= chunk */
};

struct proto_chunk_sync_req {
    uint64_t chunk_id;
    uint64_t version;
    uint32_t nchain;
    struct proto_replica chain[PROTO_MAX_REPLICAS];
};

struct proto_chunk_setversion_req {
    uint64_t chunk_id;
    uint64_t old_version; /* 0: create the chunk empty at new_version */
    uint64_t new_version;
};

struct proto_chunk_truncate_req {
    uint64_t chunk_id;
    uint64_t version;
    uint32_t length;
};

struct proto_chunk_locate_req {
    uint64_t ino;
    uint64_t first;  /* chunk index: file offset / PROTO_CHUNK_SIZE */
    uint32_t count;  /* 1..PROTO_LOCATE_MAX */
};
#define PROTO_LOCATE_MAX 256

/* One chunk of a file.  chunk_id 0 is a hole (nreplicas 0). */
struct proto_chunk_loc {
    uint64_t index;
    uint64_t chunk_id;
    uint64_t version;
    uint32_t nreplicas;
    struct proto_replica replicas[PROTO_MAX_REPLICAS];
};

struct proto_chunk_locate_rep {
    uint64_t file_size;
    uint32_t count;
    struct proto_str raw; /* validated entries, walk with the iterator */
};

void proto_chunk_loc_put(struct proto_wbuf *w, const struct proto_chunk_loc *c);
struct proto_chunk_loc_iter {
    struct proto_rbuf r;
    uint32_t left;
};
void proto_chunk_loc_iter_init(struct proto_chunk_loc_iter *it,
                               const struct proto_chunk_locate_rep *rep);
bool proto_chunk_loc_next(struct proto_chunk_loc_iter *it,
                          struct proto_chunk_loc *c);

struct proto_chunk_write_begin_req {
    uint64_t ino;
    uint64_t index;
    uint32_t flags; /* must be 0 */
};

struct proto_chunk_write_end_req {
    uint64_t ino;
    uint64_t index;
    uint64_t chunk_id;
    uint64_t size;  /* file size after the write, if it grew; else 0 */
    int64_t mtime;
};

/* ---- Storage servers (§9) ---------------------------------------------- */

struct proto_server_register_req {
    uint8_t uuid[16];      /* kept in the server's data directory */
    struct proto_str addr; /* "host:port" clients reach it on */
    uint64_t capacity, free; /* bytes */
};

struct proto_server_register_rep {
    uint32_t server_id;
};

struct proto_server_heartbeat_req {
    uint32_t server_id;
    uint64_t capacity, free;
    uint32_t chunks;
    uint64_t used; /* bytes its chunk files take on disk */
};

/* One inventory entry. */
struct proto_inv_entry {
    uint64_t chunk_id, version, length;
};
#define PROTO_INV_ENTRY_SIZE 24
#define PROTO_INV_MAX 65536 /* entries per message */

struct proto_server_inventory_req {
    uint32_t server_id;
    uint8_t last; /* 1 on the final message of an inventory */
    uint32_t count;
    struct proto_str raw; /* count * PROTO_INV_ENTRY_SIZE bytes */
};
void proto_inv_entry_get(const struct proto_server_inventory_req *req,
                         uint32_t i, struct proto_inv_entry *e);

/* CHUNK_USAGE (§9.5): the bytes some chunks take on the server's disk. */
struct proto_usage_entry {
    uint64_t chunk_id, bytes;
};
#define PROTO_USAGE_ENTRY_SIZE 16
#define PROTO_USAGE_MAX 1024 /* entries per message */

struct proto_chunk_usage_req {
    uint32_t server_id;
    uint32_t count;
    struct proto_str raw; /* count * PROTO_USAGE_ENTRY_SIZE bytes */
};
void proto_usage_entry_get(const struct proto_chunk_usage_req *req, uint32_t i,
                           struct proto_usage_entry *e);

/* ---- Admin (§10) ------------------------------------------------------- */

/* STATUS_REP: key/value text pairs, keys dotted ("meta.uptime_s"). */
struct proto_status_rep {
    uint32_t count;
    struct proto_str raw;
};
void proto_kv_put(struct proto_wbuf *w, const char *key, const char *value);
struct proto_kv_iter {
    struct proto_rbuf r;
    uint32_t left;
};
void proto_kv_iter_init(struct proto_kv_iter *it,
                        const struct proto_status_rep *rep);
bool proto_kv_next(struct proto_kv_iter *it, struct proto_str *key,
                   struct proto_str *value);

/* ---- Replication management (§11) --------------------------------------- */

#define PROTO_GOAL_RECURSIVE 0x1u
#define PROTO_GOAL_MASK 0x1u
#define PROTO_GOAL_MAX 9

/* GOAL_SET: set the replication goal of @ino (and with RECURSIVE of
 * everything below it).  Owner or root.  Reply: how many inodes changed. */
struct proto_goal_set_req {
    struct proto_cred cred;
    uint64_t ino;
    uint32_t goal;  /* 1..PROTO_GOAL_MAX */
    uint32_t flags; /* PROTO_GOAL_* */
};

struct proto_goal_set_rep {
    uint64_t changed;
};

/* CHUNK_REPLICATE (metad -> chunkd): copy chunk @chunk_id at @version from
 * @source and keep it at that version; reply once it is durable. */
struct proto_chunk_replicate_req {
    uint64_t chunk_id;
    uint64_t version;
    struct proto_replica source;
};

/* SCRUB_START (metad -> chunkd): verify every block of every chunk in the
 * background at no more than @rate_mb MiB/s (0: the server's default). */
struct proto_scrub_start_req {
    uint32_t rate_mb;
};

/* CHUNK_REPORT (chunkd or client -> metad): replica of @chunk_id on
 * @server_id is bad. */
enum proto_report_reason {
    PROTO_REPORT_CHECKSUM = 1, /* a block failed its checksum */
    PROTO_REPORT_MISSING = 2,  /* the server does not have it */
    PROTO_REPORT_IOERROR = 3,  /* the disk failed the I/O */
    PROTO_REPORT_WRITE = 4,    /* a write to it failed (client) */
};

struct proto_chunk_report_req {
    uint32_t server_id;
    uint64_t chunk_id;
    uint64_t version;
    uint32_t reason; /* enum proto_report_reason */
};

/* SCRUB_STATUS (chunkd -> metad): the state of the server's scrubber, its
 * current pass or else its last one (docs/protocol.md §9.4). */
struct proto_scrub_status_req {
    uint32_t server_id;
    uint8_t running; /* 1 while a pass runs, else 0 */
    uint64_t passes; /* passes finished since the server started */
    uint64_t chunks; /* chunks the pass verified */
    uint64_t total;  /* chunks the pass lists (0 while listing) */
    uint64_t bytes;  /* bytes it verified */
    uint64_t errors; /* damaged or unreadable chunks it found */
    int64_t start_s; /* wall clock of its start, 0: never */
    int64_t end_s;   /* of its end, 0: running or never */
};
#define PROTO_SCRUB_STATUS_SIZE 61

/* SERVER_CTL (admin -> metad). */
enum proto_server_action {
    PROTO_SERVER_DRAIN = 1,   /* move every chunk off, then stay empty */
    PROTO_SERVER_UNDRAIN = 2, /* take chunks again */
    PROTO_SERVER_REMOVE = 3,  /* forget a down or drained, empty server */
};

struct proto_server_ctl_req {
    uint32_t server_id;
    uint32_t action; /* enum proto_server_action */
};

/* ADMIN_ACTION (admin -> metad): start or query a cluster-wide action; the
 * reply is key/value text like STATUS. */
enum proto_admin_action {
    PROTO_ADMIN_SCRUB = 1,     /* @arg: server id, 0 = all */
    PROTO_ADMIN_REBALANCE = 2, /* @arg: 0 */
    PROTO_ADMIN_FSCK = 3,      /* @arg: 1 = repair, 0 = report only */
    PROTO_ADMIN_PROGRESS = 4,  /* @arg: 0; repair/rebalance/scrub progress */
};

struct proto_admin_action_req {
    uint32_t action; /* enum proto_admin_action */
    uint32_t arg;
};

/* META_MEMBER (admin -> metad, docs/protocol.md §10.3): grow or shrink
 * the metad group. */
enum proto_meta_member_op {
    PROTO_META_MEMBER_ADD = 1,    /* @raft_addr, @client_addr required */
    PROTO_META_MEMBER_REMOVE = 2, /* both addresses empty */
};

struct proto_meta_member_req {
    uint32_t op; /* enum proto_meta_member_op */
    uint64_t id; /* > 0 */
    struct proto_str raft_addr, client_addr;
};

/* SERVER_STATE (metad -> every client session): a storage server changed
 * state; clients drop a server that is not up from their caches. */
enum proto_server_state {
    PROTO_SERVER_UP = 1,
    PROTO_SERVER_SUSPECT = 2,
    PROTO_SERVER_DOWN = 3,
    PROTO_SERVER_DRAINING = 4,
    PROTO_SERVER_REMOVED = 5,
};

struct proto_server_state_req {
    uint32_t server_id;
    uint32_t state; /* enum proto_server_state */
    struct proto_str addr;
};

/* ---- Images: snapshots and clones (§12) -------------------------------- */

/* SNAPSHOT and CLONE (client or admin -> metad): a new regular file @name
 * in directory @parent whose chunk slots share the chunks of file @ino
 * (reference counted, copied on the first write to either side).  A
 * snapshot is read-only, a clone writable.  Reply: the new file's attr. */
struct proto_snapshot_req {
    struct proto_cred cred;
    uint64_t ino;
    uint64_t parent;
    struct proto_str name;
};

/* CHUNK_CLONE (metad -> chunkd): make chunk @new_id at @new_version a
 * local copy of chunk @src_id at @src_version (copy-on-write of a shared
 * chunk); reply once the copy is durable. */
struct proto_chunk_clone_req {
    uint64_t src_id;
    uint64_t src_version;
    uint64_t new_id;
    uint64_t new_version;
};
#define PROTO_CHUNK_CLONE_SIZE 32

/* IMAGE_ROLLBACK (admin -> metad): image @ino takes the content and size
 * of snapshot @src.  IMAGE_FLATTEN: file @ino forgets its origin once it
 * shares no chunk (@src must be 0).  Reply: the file's attributes. */
struct proto_image_pair_req {
    struct proto_cred cred;
    uint64_t ino;
    uint64_t src;
};

/* IMAGE_CHANGES (client -> metad): what may differ between file @from and
 * file @to in chunk slots [@first, @first + @count), from the chunk maps
 * and the copy-on-write lineage of chunks (docs/protocol.md §12.7). */
struct proto_image_changes_req {
    uint64_t from, to;
    uint64_t first;
    uint32_t count; /* 1..PROTO_LOCATE_MAX */
};

enum proto_changes_kind {
    /* The blocks written into the @chain chunks since each was created or
     * copied (CHUNK_WMAP), together, are all that changed. */
    PROTO_CHANGES_BLOCKS = 1,
    PROTO_CHANGES_WHOLE = 2, /* anything in the slot may have changed */
    PROTO_CHANGES_ZERO = 3,  /* @to has a hole there: it reads as zeros */
};
#define PROTO_CHANGES_CHAIN_MAX 16

/* One slot that changed; slots not listed did not. */
struct proto_changes_entry {
    uint64_t index;
    uint32_t kind; /* enum proto_changes_kind */
    uint32_t nchain;
    struct proto_chunk_loc chain[PROTO_CHANGES_CHAIN_MAX];
};

struct proto_image_changes_rep {
    uint64_t from_size, to_size;
    uint32_t count;
    struct proto_str raw; /* validated entries, walk with the iterator */
};
void proto_changes_entry_put(struct proto_wbuf *w,
                             const struct proto_changes_entry *e);
struct proto_changes_iter {
    struct proto_rbuf r;
    uint32_t left;
};
void proto_changes_iter_init(struct proto_changes_iter *it,
                             const struct proto_image_changes_rep *rep);
bool proto_changes_next(struct proto_changes_iter *it,
                        struct proto_changes_entry *e);

/* CHUNK_WMAP (client -> chunkd): which blocks of chunk @chunk_id at
 * @version were written since it was created or copied.  Reply
 * (bytes_rep): PROTO_WMAP_BYTES bytes, bit b (byte b / 8, bit b % 8) for
 * block b; ENODATA when this replica does not know. */
#define PROTO_WMAP_BLOCK 4096u
#define PROTO_WMAP_BITS (PROTO_CHUNK_SIZE / PROTO_WMAP_BLOCK)
#define PROTO_WMAP_BYTES (PROTO_WMAP_BITS / 8)

/* CHUNK_CRCS (client -> chunkd): the CRC32C of every 4 KiB block of chunk
 * @chunk_id at @version, as its checksums record it.  Reply (bytes_rep):
 * PROTO_CRCS_BYTES bytes, a big-endian u32 per block, block 0 first. */
#define PROTO_CRCS_BYTES (PROTO_WMAP_BITS * 4)

/* ---- Image diff streams (docs/vmdisk.md, "Incremental diffs") --------- */

/* Not a message: the file `tessera image diff` writes and `apply-diff`
 * reads, big-endian like the wire.  Header, then records in ascending,
 * non-overlapping order, then one END record:
 *
 *   header  "TSRADIFF", u32 format (2), u32 block (4096), u64 base_size,
 *           u64 target_size, u64 base_ino, u64 target_ino, 32 bytes base
 *           content digest, str base_path, str target_path
 *   record  u8 type, 7 zero bytes, u64 offset, u64 length; a DATA record
 *           is followed by its @length bytes
 *   END     u8 0xFF, 7 zero bytes, u64 records, u64 data bytes, 32 bytes
 *           base digest, 32 bytes stream digest
 *
 * The codec checks layout and order; the digests (SHA-256) are the
 * caller's. */
#define PROTO_DIFF_MAGIC "TSRADIFF"
#define PROTO_DIFF_FORMAT 2u
#define PROTO_DIFF_BLOCK 4096u
#define PROTO_DIFF_HDR_FIXED 80u /* header bytes before the two paths */
#define PROTO_DIFF_REC_SIZE 24u  /* a record's head */
#define PROTO_DIFF_DIGEST 32u
#define PROTO_DIFF_DATA_MAX (4u << 20) /* bytes of one DATA record */

enum proto_diff_type {
    PROTO_DIFF_DATA = 1, /* these bytes */
    PROTO_DIFF_ZERO = 2, /* zeros */
    PROTO_DIFF_END = 0xFF,
};

struct proto_diff_hdr {
    uint64_t base_size, target_size;
    uint64_t base_ino, target_ino;
    /* The base's content digest (docs/vmdisk.md): SHA-256 of the CRC32C
     * of each of its whole 4 KiB blocks. */
    uint8_t base_content[32];
    struct proto_str base_path, target_path;
};

/* DATA or ZERO: [offset, offset + length).  END: @offset counts the
 * records before it, @length their DATA bytes. */
struct proto_diff_rec {
    uint32_t type; /* enum proto_diff_type */
    uint64_t offset, length;
};

/* Where a reader is in a stream: what the next record may be. */
struct proto_diff_cursor {
    uint64_t target_size;
    uint64_t next;    /* the next record starts at or after this */
    uint64_t records; /* DATA and ZERO records so far */
    uint64_t data;    /* DATA bytes so far */
    bool ended;
};

void proto_diff_hdr_encode(struct proto_wbuf *w,
                           const struct proto_diff_hdr *h);
/* Decode the header at the start of @p (@n bytes available, maybe more
 * than the header): its length in *@used, or -EAGAIN when @n is too short
 * to tell, -EPROTO when it is no diff of this format.  Paths borrow @p. */
int proto_diff_hdr_decode(const uint8_t *p, size_t n, struct proto_diff_hdr *h,
                          size_t *used);
void proto_diff_rec_encode(struct proto_wbuf *w,
                           const struct proto_diff_rec *r);
/* Decode a record head (exactly PROTO_DIFF_REC_SIZE bytes). */
int proto_diff_rec_decode(const uint8_t *p, size_t n, struct proto_diff_rec *r);
void proto_diff_cursor_init(struct proto_diff_cursor *c,
                            const struct proto_diff_hdr *h);
/* Accept @r as the next record of the stream: -EPROTO when it is out of
 * order, out of the target, misaligned, too long, after END, or an END
 * whose counts disagree. */
int proto_diff_cursor_next(struct proto_diff_cursor *c,
                           const struct proto_diff_rec *r);

/* ---- Image writer leases (§15) ----------------------------------------- */

/* IMAGE_LEASE (nbd or admin -> metad): the one-writer lease of image @ino,
 * held by a session, in metad's memory only.  See docs/vmdisk.md,
 * "Live-migration hand-over". */
enum proto_lease_op {
    PROTO_LEASE_ACQUIRE = 1, /* take it if free; standby when armed */
    PROTO_LEASE_TAKE = 2,    /* hand-over: recall it from the holder */
    PROTO_LEASE_RELEASE = 3, /* give up the lease or the standby place */
    PROTO_LEASE_ARM = 4,     /* admin: allow one hand-over for @arg s */
    PROTO_LEASE_QUERY = 5,   /* who holds it */
};
#define PROTO_LEASE_OP_MAX 5

enum proto_lease_result {
    PROTO_LEASE_FREE = 1,    /* nobody holds it */
    PROTO_LEASE_GRANTED = 2, /* the caller holds it */
    PROTO_LEASE_STANDBY = 3, /* the caller is the armed hand-over target */
    PROTO_LEASE_BUSY = 4,    /* another session holds it */
};
#define PROTO_LEASE_RESULT_MAX 4

#define PROTO_LEASE_F_ARMED 0x1u     /* a hand-over is armed */
#define PROTO_LEASE_F_RECALLING 0x2u /* the holder is being recalled */
#define PROTO_LEASE_F_MASK 0x3u

struct proto_image_lease_req {
    uint32_t op;  /* enum proto_lease_op */
    uint32_t arg; /* ARM: seconds the hand-over stays armed; else 0 */
    uint64_t ino;
};
#define PROTO_IMAGE_LEASE_REQ_SIZE 16

/* The lease as it stands after the request; @holder_* describe the holder
 * (session 0 and empty strings when there is none). */
struct proto_image_lease_rep {
    uint32_t result; /* enum proto_lease_result */
    uint32_t flags;  /* PROTO_LEASE_F_* */
    uint64_t holder_session;
    struct proto_str holder_name;
    struct proto_str holder_host;
};

/* IMAGE_LEASE_WAIT (nbd -> metad, long poll): request entries name the
 * images the session believes it holds (HELD); metad answers within
 * @timeout_ms, at once when there is news, with entries RECALL (flush,
 * then RELEASE) or LOST (the lease went elsewhere).  @raw holds @count
 * entries of (u64 ino, u32 state). */
enum proto_lease_state {
    PROTO_LEASE_HELD = 1,
    PROTO_LEASE_RECALL = 2,
    PROTO_LEASE_LOST = 3,
};
#define PROTO_LEASE_WAIT_MAX 1024
#define PROTO_LEASE_WAIT_TIMEOUT_MAX 60000u
#define PROTO_LEASE_ENTRY_SIZE 12

struct proto_image_lease_wait {
    uint32_t timeout_ms; /* request: at most PROTO_LEASE_WAIT_TIMEOUT_MAX */
    uint32_t count;      /* <= PROTO_LEASE_WAIT_MAX */
    struct proto_str raw;
};
/* Append one entry to @w (the @raw being built). */
void proto_lease_entry_put(struct proto_wbuf *w, uint64_t ino, uint32_t state);
/* Entry @i (< count) of a decoded or well-formed @m. */
void proto_lease_entry_get(const struct proto_image_lease_wait *m, uint32_t i,
                           uint64_t *ino, uint32_t *state);

/* ---- Client caching: callbacks (§14) ----------------------------------- */

/* CALLBACK_BREAK (metad -> a client session holding a callback promise on
 * @ino): what changed.  ENTRY names the entry @name of directory @ino;
 * RECALL asks the holder of delayed writes to @ino to write them back
 * (data and size) before answering.  ALL says metad dropped every promise
 * of the session; it comes alone, with @ino 0 and no name. */
#define PROTO_CB_ATTR 0x1u   /* attributes changed */
#define PROTO_CB_DATA 0x2u   /* file data or chunk locations changed */
#define PROTO_CB_ENTRY 0x4u  /* entry @name of directory @ino changed */
#define PROTO_CB_RECALL 0x8u /* write back delayed writes first */
#define PROTO_CB_ALL 0x10u   /* every promise is gone: alone, @ino 0 */
#define PROTO_CB_MASK 0x1Fu

struct proto_callback_break_req {
    uint64_t ino;
    uint32_t flags;        /* PROTO_CB_*, at least one */
    struct proto_str name; /* ENTRY: the entry's name; else empty */
};

/* CALLBACK_REGISTER (client -> metad, on a session): the session caches
 * under callbacks (flag ON) or not (0).  Reply: the promise lease. */
#define PROTO_CALLBACK_ON 0x1u
#define PROTO_CALLBACK_MASK 0x1u

struct proto_callback_register_req {
    uint32_t flags; /* PROTO_CALLBACK_* */
};

struct proto_callback_register_rep {
    uint32_t lease_ms; /* how long a promise lasts without further access */
};

/* DIR_DELEGATE (client -> metad, on a session registered for callbacks):
 * the session asks for a writer's promise on directory @ino, under which
 * it may answer creates and unlinks there before metad has them (§14.3).
 * No flag is defined: @flags MUST be 0.  Reply: callback_register_rep,
 * the promise lease. */
#define PROTO_DIR_DELEGATE_MASK 0x0u

struct proto_dir_delegate_req {
    uint64_t ino;
    uint32_t flags; /* 0 */
};

/* ---- Typed encode/decode ----------------------------------------------- */

/* For every body B in proto_msgs.def:
 *   void proto_B_encode(struct proto_wbuf *w, const struct proto_B *m);
 *   int  proto_B_decode(const uint8_t *p, size_t n, struct proto_B *m);
 * decode returns 0, or -EPROTO for truncated, trailing, oversized, unknown
 * flag or otherwise inconsistent input.  Borrowed fields point into @p.
 * encode appends the body to @w; a body its decoder would reject (unknown
 * flag, count out of range) latches -EINVAL in w->err and appends nothing.
 * Bodies that carry arrays (readdir_rep, chunk_locate_rep, status_rep):
 * build the entries with the *_put helpers above into a separate wbuf,
 * point @raw at its bytes and set @count; encode then checks them as the
 * decoder would and writes the fixed fields followed by @raw verbatim.
 * server_inventory_req likewise takes count * PROTO_INV_ENTRY_SIZE bytes
 * of entries (u64 chunk_id, u64 version, u64 length each) in @raw, and
 * chunk_usage_req count * PROTO_USAGE_ENTRY_SIZE (u64 chunk_id, u64
 * bytes each). */
#define PROTO_BODY(b)                                                          \
    void proto_##b##_encode(struct proto_wbuf *w, const struct proto_##b *m); \
    int proto_##b##_decode(const uint8_t *p, size_t n, struct proto_##b *m);
PROTO_BODY(empty)
PROTO_BODY(hello_req)
PROTO_BODY(hello_rep)
PROTO_BODY(auth_req)
PROTO_BODY(auth_rep)
PROTO_BODY(auth_ticket_rep)
PROTO_BODY(auth_service_rep)
PROTO_BODY(auth_set_req)
PROTO_BODY(auth_name_req)
PROTO_BODY(ping)
PROTO_BODY(session_open_req)
PROTO_BODY(session_open_rep)
PROTO_BODY(session_id)
PROTO_BODY(session_renew_rep)
PROTO_BODY(ino_req)
PROTO_BODY(attr_rep)
PROTO_BODY(entry_rep)
PROTO_BODY(dirs_rep)
PROTO_BODY(lookup_req)
PROTO_BODY(setattr_req)
PROTO_BODY(mknod_req)
PROTO_BODY(ino_reserve_req)
PROTO_BODY(ino_reserve_rep)
PROTO_BODY(mkdir_req)
PROTO_BODY(symlink_req)
PROTO_BODY(link_req)
PROTO_BODY(rename_req)
PROTO_BODY(readlink_rep)
PROTO_BODY(readdir_req)
PROTO_BODY(readdir_rep)
PROTO_BODY(statfs_rep)
PROTO_BODY(setxattr_req)
PROTO_BODY(xattr_name_req)
PROTO_BODY(bytes_rep)
PROTO_BODY(access_req)
PROTO_BODY(chunk_ref)
PROTO_BODY(chunk_read_req)
PROTO_BODY(chunk_write_req)
PROTO_BODY(chunk_sync_req)
PROTO_BODY(chunk_setversion_req)
PROTO_BODY(chunk_truncate_req)
PROTO_BODY(chunk_locate_req)
PROTO_BODY(chunk_locate_rep)
PROTO_BODY(chunk_write_begin_req)
PROTO_BODY(chunk_write_end_req)
PROTO_BODY(server_register_req)
PROTO_BODY(server_register_rep)
PROTO_BODY(server_heartbeat_req)
PROTO_BODY(server_inventory_req)
PROTO_BODY(chunk_usage_req)
PROTO_BODY(status_rep)
PROTO_BODY(goal_set_req)
PROTO_BODY(goal_set_rep)
PROTO_BODY(chunk_replicate_req)
PROTO_BODY(scrub_start_req)
PROTO_BODY(chunk_report_req)
PROTO_BODY(scrub_status_req)
PROTO_BODY(server_ctl_req)
PROTO_BODY(admin_action_req)
PROTO_BODY(meta_member_req)
PROTO_BODY(server_state_req)
PROTO_BODY(snapshot_req)
PROTO_BODY(chunk_clone_req)
PROTO_BODY(image_pair_req)
PROTO_BODY(image_changes_req)
PROTO_BODY(image_changes_rep)
PROTO_BODY(callback_break_req)
PROTO_BODY(callback_register_req)
PROTO_BODY(callback_register_rep)
PROTO_BODY(dir_delegate_req)
PROTO_BODY(image_lease_req)
PROTO_BODY(image_lease_rep)
PROTO_BODY(image_lease_wait)
#undef PROTO_BODY

/* Decode the payload of @opcode into @msg, which must point to the body
 * struct proto_msgs.def names for it.  -EPROTO for an unknown opcode. */
int proto_msg_decode(uint16_t opcode, const uint8_t *p, size_t n, void *msg);
/* Size of the body struct for @opcode, 0 when unknown. */
size_t proto_msg_body_size(uint16_t opcode);

/* ---- Frames ------------------------------------------------------------ */

/* Build a whole frame (header + payload) into @w, replacing its contents.
 * @payload may be NULL when @len is 0.  Returns 0 or the latched error. */
int proto_frame_build(struct proto_wbuf *w, const struct proto_hdr *h,
                      const void *payload, size_t len);

/* Incremental frame reader for a byte stream.  Feed bytes in any pieces;
 * take frames out whole.  Owns its buffer; never grows it past one
 * header + PROTO_MAX_PAYLOAD. */
struct proto_reader {
    uint8_t *buf;
    size_t len, cap;
    size_t taken; /* bytes of the frame last returned, dropped next call */
    int err;      /* latched decode error: the connection must close */
};

void proto_reader_init(struct proto_reader *rd);
void proto_reader_free(struct proto_reader *rd);
/* Append @n bytes.  Returns 0, -ENOMEM, or a latched header error. */
int proto_reader_feed(struct proto_reader *rd, const void *p, size_t n);
/* Where to read into directly: makes room for at least @want bytes and
 * returns a pointer to the free space and its size in *avail.  After
 * reading k bytes there, call proto_reader_commit(rd, k). */
uint8_t *proto_reader_space(struct proto_reader *rd, size_t want,
                            size_t *avail);
int proto_reader_commit(struct proto_reader *rd, size_t n);
/* If a whole frame is buffered, fill *h, point *payload at its payload
 * (valid until the next proto_reader_* call) and return 1; return 0 when
 * more bytes are needed, or the latched negative error. */
int proto_reader_next(struct proto_reader *rd, struct proto_hdr *h,
                      const uint8_t **payload);

#endif
