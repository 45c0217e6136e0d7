/* adm_image.c: VM disk images from the command line (docs/vmdisk.md):
 *
 *   tessera snapshot SRC DST         read-only copy sharing SRC's chunks
 *   tessera clone SRC DST            writable copy sharing SRC's chunks
 *   tessera image create PATH SIZE   a sparse file of SIZE (10G, 512M, ...)
 *   tessera image info PATH          size, allocation, sharing, read-only
 *   tessera image list [--tree] [PATH]   lineage and space (adm_image_list.c)
 *   tessera image resize [--shrink] PATH SIZE
 *   tessera image rm PATH
 *   tessera image import|export|handover ...   (adm_image_io.c,
 *                                                 adm_image_lease.c)
 *
 * Everything goes to metad as root without a session, like the other
 * verbs: SNAPSHOT_REQ / CLONE_REQ (metadata only, instant), MKNOD then
 * SETATTR for create and resize, IMAGE_INFO_REQ, UNLINK.  Shrinking to a
 * size inside a chunk first zeroes the rest of that chunk on each replica
 * (CHUNK_WRITE_BEGIN, then CHUNK_TRUNCATE to every server of the chain),
 * as the mount does, so growing the image again reads zeros there.
 * Growing needs no data: the new range is a hole.
 *
 * Exit status as everywhere: 0 done, 1 refused or failed, 2 metad cannot
 * be reached, 64 bad command line.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int adm_parse_size(const char *s, uint64_t *out, const char **why)
{
    static const char units[] = "KMGTPE";
    const char *dummy;
    char *end;
    uint64_t v, mul = 1;

    if (!why)
        why = &dummy;
    *why = NULL;
    if (!s || !*s) {
        *why = "it is empty";
        return -EINVAL;
    }
    if (*s == '-') {
        *why = "a size cannot be negative";
        return -EINVAL;
    }
    if (*s < '0' || *s > '9') {
        *why = "it does not start with a number";
        return -EINVAL;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno) {
        *why = "the number is too large";
        return -EFBIG;
    }
    if (*end == '.' || *end == ',') {
        *why = "the number must be whole (write 1536M for 1.5G)";
        return -EINVAL;
    }
    if (*end) {
        const char *u = strchr(units, end[0] & ~0x20);
        if (!u) {
            *why = "the unit after the number is not one of K, M, G, T, P, E";
            return -EINVAL;
        }
        for (const char *k = units; k <= u; k++)
            mul *= 1024;
        end++;
        if (!strcmp(end, "iB") || !strcmp(end, "B"))
            end += strlen(end);
        if (*end) {
            *why = "something follows the unit (K, KB or KiB, ...)";
            return -EINVAL;
        }
    }
    if (v > INT64_MAX / mul) {
        *why = "it is larger than 8 EiB, the largest file";
        return -EFBIG;
    }
    *out = v * mul;
    return 0;
}

int adm_size_arg(const char *verb, const char *s, uint64_t *out)
{
    const char *why;

    if (adm_parse_size(s, out, &why) == 0)
        return 0;
    fprintf(stderr,
            "tessera: %s: bad size '%s': %s.\n"
            "  A size is a whole number of bytes, or one followed by a unit:\n"
            "  K, M, G, T, P or E (powers of 1024; KB and KiB, MB and MiB, ..."
            "\n  mean the same, in either case): 4096, 512M, 10G, 1TiB.\n",
            verb, s, why);
    return -EINVAL;
}

int adm_split_path(const char *path, char *dir, size_t dsize, char *name,
                   size_t nsize)
{
    size_t len = strlen(path);
    const char *slash;

    while (len > 1 && path[len - 1] == '/')
        len--;
    slash = memrchr(path, '/', len);
    const char *base = slash ? slash + 1 : path;
    size_t blen = len - (size_t)(base - path);
    size_t dlen = slash ? (size_t)(slash - path) : 0;

    if (blen == 0 || blen >= nsize || dlen + 2 > dsize ||
        (blen == 1 && base[0] == '.') ||
        (blen == 2 && base[0] == '.' && base[1] == '.'))
        return -EINVAL;
    memcpy(name, base, blen);
    name[blen] = '\0';
    if (dlen == 0) {
        strcpy(dir, "/");
    } else {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
    return 0;
}

/* Resolve the directory part of @path into *dir and copy the last
 * component into @name. */
static int resolve_parent(struct adm *a, const char *path,
                          struct proto_attr *dir, char *name, size_t nsize)
{
    char dpath[PROTO_MAX_STR + 1];
    int rc = adm_split_path(path, dpath, sizeof(dpath), name, nsize);

    if (rc == 0)
        rc = adm_resolve(a, dpath, dir);
    if (rc == 0 && !S_ISDIR(dir->mode))
        rc = -ENOTDIR;
    return rc;
}

/* The namespace path of folder @dir, which may not exist yet: when its
 * deepest existing ancestor on this host is inside a Tessera mount, that
 * ancestor's namespace path followed by the rest; else @dir itself. */
static int ns_folder(const char *dir, char *out, size_t size)
{
    char up[PROTO_MAX_STR + 1], ns[PROTO_MAX_STR + 1];
    struct stat sb;
    uint64_t ino;
    size_t len = strlen(dir);
    int n;

    if (len >= sizeof(up))
        return -ENAMETOOLONG;
    memcpy(up, dir, len + 1);
    while (len > 1 && stat(up, &sb) != 0) {
        char *slash = strrchr(up, '/');
        len = slash == up ? 1 : (size_t)(slash - up);
        up[len] = '\0';
    }
    if (adm_path_local(up, ns, sizeof(ns), &ino) != 1)
        n = snprintf(out, size, "%s", dir);
    else
        n = snprintf(out, size, "%s%s", strcmp(ns, "/") ? ns : "",
                     dir + (len > 1 ? len : 0));
    if (n == 0)
        n = snprintf(out, size, "/");
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* MKDIR each folder of @dir ("/a/b", or a folder in a mount) that is
 * missing, as `mkdir -p` does.  0 or -errno. */
static int make_folders(struct adm *a, const char *path)
{
    char dir[PROTO_MAX_STR + 1];
    int err = ns_folder(path, dir, sizeof(dir));

    if (err < 0)
        return err;
    char prefix[PROTO_MAX_STR + 1];
    struct proto_attr at = {.ino = 1, .mode = S_IFDIR};
    size_t len = strlen(dir);
    int rc = 0;

    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (i < len && dir[i] != '/')
            continue;
        const char *name = memrchr(dir, '/', i);
        size_t nlen = i - (size_t)(name + 1 - dir);
        uint64_t parent = at.ino;

        if (nlen == 0)
            continue;
        memcpy(prefix, dir, i);
        prefix[i] = '\0';
        rc = adm_resolve(a, prefix, &at);
        if (rc == -ENOENT) {
            struct proto_mkdir_req req = {.parent = parent, .mode = 0755};
            struct proto_entry_rep rep;
            struct rpc_reply r;
            struct proto_wbuf w;

            req.name.p = name + 1;
            req.name.len = (uint32_t)nlen;
            proto_wbuf_init(&w);
            proto_mkdir_req_encode(&w, &req);
            rc = rpc_call_msg(a->rpc, PROTO_MSG_MKDIR_REQ, &w, &r, &rep);
            proto_wbuf_free(&w);
            if (rc == 0) {
                at = rep.attr;
                rpc_reply_free(&r);
            } else if (rc == -EEXIST) {
                rc = adm_resolve(a, prefix, &at);
            }
        }
        if (rc == 0 && !S_ISDIR(at.mode))
            rc = -ENOTDIR;
    }
    return rc;
}

/* Warn when @bytes is more than the cluster's raw capacity: an image is
 * sparse, so it is allowed, but writing it all would fail. */
static void warn_capacity(struct adm *a, const char *what, uint64_t bytes)
{
    struct status_report st;
    char b1[32], b2[32];

    if (adm_status_fetch(a, &st) == 0) {
        uint64_t cap = status_report_u64(&st, "capacity");

        if (cap && bytes > cap) {
            adm_fmt_bytes(bytes, b1, sizeof(b1));
            adm_fmt_bytes(cap, b2, sizeof(b2));
            fprintf(stderr,
                    "tessera: %s: warning: %s is more than the cluster's "
                    "capacity (%s on the servers up):\n  the image is sparse, "
                    "but writes will fail once the servers are full\n",
                    what, b1, b2);
        }
    }
    status_report_free(&st);
}

void adm_attr_json(const char *path, const struct proto_attr *at,
                   const char *extra)
{
    printf("{\"path\": ");
    adm_json_str(stdout, path, strlen(path));
    printf(", \"ino\": %" PRIu64 ", \"size\": %" PRIu64 "%s}\n", at->ino,
           at->size, extra ? extra : "");
}

/* ---- snapshot, clone ----------------------------------------------------- */

static int snap_cmd(struct adm *a, int argc, char **argv, uint16_t opcode)
{
    const char *what = opcode == PROTO_MSG_SNAPSHOT_REQ ? "snapshot" : "clone";
    char dst[PROTO_MAX_STR + 1];
    struct proto_snapshot_req req;
    struct proto_attr_rep rep;
    struct proto_attr src, dir;
    char name[PROTO_NAME_MAX + 1], size[32];
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    if (argc != 3) {
        return adm_verb_usage(what, NULL);
    }
    if (adm_path_arg(what, argv[2], dst, sizeof(dst)) < 0)
        return ADM_EXIT_USAGE;
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[1], &src);
    if (rc < 0)
        return adm_fail_path(a, what, argv[1], rc);
    rc = resolve_parent(a, dst, &dir, name, sizeof(name));
    if (rc < 0)
        return adm_fail_path(a, what, argv[2], rc);
    memset(&req, 0, sizeof(req));
    req.ino = src.ino;
    req.parent = dir.ino;
    req.name.p = name;
    req.name.len = (uint32_t)strlen(name);
    proto_wbuf_init(&w);
    proto_snapshot_req_encode(&w, &req);
    rc = rpc_call_msg(a->rpc, opcode, &w, &r, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return adm_fail(a, what, rc);
    rpc_reply_free(&r);
    if (a->json) {
        char extra[64];
        snprintf(extra, sizeof(extra), ", \"readonly\": %s",
                 opcode == PROTO_MSG_SNAPSHOT_REQ ? "true" : "false");
        adm_attr_json(argv[2], &rep.attr, extra);
    } else {
        adm_fmt_bytes(rep.attr.size, size, sizeof(size));
        printf("%s: %s of %s (%s, ino %" PRIu64 ")\n", argv[2],
               opcode == PROTO_MSG_SNAPSHOT_REQ ? "read-only snapshot"
                                                : "writable clone",
               argv[1], size, rep.attr.ino);
    }
    return ADM_EXIT_OK;
}

int adm_cmd_snapshot(struct adm *a, int argc, char **argv)
{
    return snap_cmd(a, argc, argv, PROTO_MSG_SNAPSHOT_REQ);
}

int adm_cmd_clone(struct adm *a, int argc, char **argv)
{
    return snap_cmd(a, argc, argv, PROTO_MSG_CLONE_REQ);
}

/* ---- image create, resize, rm ---------------------------------------------
 */

int adm_attr_call(struct adm *a, uint16_t opcode, struct proto_wbuf *w,
                  struct proto_attr *out)
{
    /* An attr reply, or an entry reply (MKNOD), which begins with one. */
    union {
        struct proto_attr_rep attr;
        struct proto_entry_rep entry;
    } rep;
    struct rpc_reply r;
    int rc = w->err ? w->err : rpc_call_msg(a->rpc, opcode, w, &r, &rep);

    proto_wbuf_free(w);
    if (rc < 0)
        return rc;
    if (out)
        *out = rep.attr.attr;
    rpc_reply_free(&r);
    return 0;
}

int adm_image_set_size(struct adm *a, uint64_t ino, uint64_t size,
                       struct proto_attr *out)
{
    struct proto_setattr_req req;
    struct proto_wbuf w;

    memset(&req, 0, sizeof(req));
    req.ino = ino;
    req.valid = PROTO_SETATTR_SIZE;
    req.size = size;
    proto_wbuf_init(&w);
    proto_setattr_req_encode(&w, &req);
    return adm_attr_call(a, PROTO_MSG_SETATTR_REQ, &w, out);
}

int adm_image_make(struct adm *a, const char *path, uint64_t bytes,
                   struct proto_attr *out)
{
    struct proto_mknod_req req;
    struct proto_attr dir, made;
    char name[PROTO_NAME_MAX + 1];
    struct proto_wbuf w;
    int rc;

    rc = resolve_parent(a, path, &dir, name, sizeof(name));
    if (rc < 0)
        return rc;
    memset(&req, 0, sizeof(req));
    req.parent = dir.ino;
    req.mode = S_IFREG | 0644;
    req.flags = PROTO_MKNOD_EXCL;
    req.name.p = name;
    req.name.len = (uint32_t)strlen(name);
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &req);
    rc = adm_attr_call(a, PROTO_MSG_MKNOD_REQ, &w, &made);
    if (rc < 0)
        return rc;
    return adm_image_set_size(a, made.ino, bytes, out);
}

static int image_create(struct adm *a, int argc, char **argv)
{
    const char *arg = NULL, *sz = NULL;
    char path[PROTO_MAX_STR + 1], dir[PROTO_MAX_STR + 1];
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr at;
    char size[32];
    bool parents = false;
    uint64_t bytes;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p"))
            parents = true;
        else if (!arg)
            arg = argv[i];
        else if (!sz)
            sz = argv[i];
        else
            sz = NULL, i = argc;
    }
    if (!arg || !sz) {
        return adm_verb_usage("image", "create");
    }
    if (adm_path_arg("image create", arg, path, sizeof(path)) < 0 ||
        adm_size_arg("image create", sz, &bytes) < 0)
        return ADM_EXIT_USAGE;
    if (adm_split_path(path, dir, sizeof(dir), name, sizeof(name)) < 0) {
        fprintf(stderr, "tessera: image create: %s: not a file name\n", path);
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    warn_capacity(a, "image create", bytes);
    rc = parents ? make_folders(a, dir) : 0;
    if (rc == 0)
        rc = adm_image_make(a, path, bytes, &at);
    if (rc == -ENOENT && !parents) {
        struct proto_attr d;

        if (adm_resolve(a, dir, &d) == -ENOENT) {
            fprintf(stderr,
                    "tessera: image create: %s: the folder %s does not "
                    "exist\n  (make it through a mount, or add -p: "
                    "tessera image create -p %s %s)\n",
                    path, dir, path, sz);
            return ADM_EXIT_FAIL;
        }
    }
    if (rc < 0)
        return adm_fail_path(a, "image create", path, rc);
    if (a->json) {
        adm_attr_json(path, &at, NULL);
    } else {
        adm_fmt_bytes(at.size, size, sizeof(size));
        printf("%s: created, %s (%" PRIu64 " bytes), sparse\n", path, size,
               at.size);
    }
    return ADM_EXIT_OK;
}

/* Zero chunk @index of @ino from @length on: a write lease, then
 * CHUNK_TRUNCATE on every replica of the chain it names. */
static int zero_tail(struct adm *a, uint64_t ino, uint64_t index,
                     uint32_t length)
{
    struct proto_chunk_write_begin_req req = {.ino = ino, .index = index};
    struct proto_chunk_locate_rep rep;
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_chunk_write_begin_req_encode(&w, &req);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, &w, &r, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    if (rc == 0)
        rc = adm_ticket(a);
    proto_chunk_loc_iter_init(&it, &rep);
    if (!proto_chunk_loc_next(&it, &loc) || loc.nreplicas == 0)
        rc = -EIO;
    for (uint32_t i = 0; rc == 0 && i < loc.nreplicas; i++) {
        struct rpc_opts opts = {.role = PROTO_ROLE_ADMIN,
                                .name = "tessera admin",
                                .connect_timeout_ms = 5000,
                                .call_timeout_ms = 30000,
                                .get_cred =
                                    a->auth ? cl_auth_ticket_cred : NULL,
                                .cred_arg = a->auth};
        struct proto_chunk_truncate_req tq = {
            .chunk_id = loc.chunk_id, .version = loc.version, .length = length};
        struct rpc_client *c;
        struct rpc_reply tr;
        char addr[256];

        snprintf(addr, sizeof(addr), "%.*s", (int)loc.replicas[i].addr.len,
                 loc.replicas[i].addr.p);
        rc = rpc_client_open(addr, &opts, &c);
        if (rc < 0)
            break;
        proto_wbuf_init(&w);
        proto_chunk_truncate_req_encode(&w, &tq);
        rc = w.err ? w.err
                   : rpc_call(c, PROTO_MSG_CHUNK_TRUNCATE_REQ, w.p, w.len, &tr);
        if (rc == 0)
            rpc_reply_free(&tr);
        proto_wbuf_free(&w);
        rpc_client_close(c);
    }
    rpc_reply_free(&r);
    return rc;
}

static int image_resize(struct adm *a, int argc, char **argv)
{
    struct proto_attr at, out;
    const char *path = NULL, *sz = NULL;
    char b1[32], b2[32];
    bool shrink = false;
    uint64_t bytes;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shrink"))
            shrink = true;
        else if (!path)
            path = argv[i];
        else if (!sz)
            sz = argv[i];
        else
            path = NULL, sz = NULL, i = argc;
    }
    if (!path || !sz) {
        return adm_verb_usage("image", "resize");
    }
    if (adm_size_arg("image resize", sz, &bytes) < 0)
        return ADM_EXIT_USAGE;
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, path, &at);
    if (rc == 0 && !S_ISREG(at.mode))
        rc = S_ISDIR(at.mode) ? -EISDIR : -EINVAL;
    if (rc < 0)
        return adm_fail_path(a, "image resize", path, rc);
    if (bytes > at.size)
        warn_capacity(a, "image resize", bytes);
    if (bytes < at.size && !shrink) {
        adm_fmt_bytes(at.size, b1, sizeof(b1));
        adm_fmt_bytes(bytes, b2, sizeof(b2));
        fprintf(stderr,
                "tessera: image resize: %s is %s; shrinking to %s loses "
                "data: add --shrink\n",
                path, b1, b2);
        return ADM_EXIT_FAIL;
    }
    if (bytes < at.size && bytes % PROTO_CHUNK_SIZE) {
        struct proto_chunk_locate_req lq = {
            .ino = at.ino, .first = bytes / PROTO_CHUNK_SIZE, .count = 1};
        struct proto_chunk_locate_rep lr;
        struct proto_chunk_loc_iter it;
        struct proto_chunk_loc loc;
        struct rpc_reply r;
        struct proto_wbuf w;

        proto_wbuf_init(&w);
        proto_chunk_locate_req_encode(&w, &lq);
        rc = rpc_call_msg(a->rpc, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &r, &lr);
        proto_wbuf_free(&w);
        if (rc == 0) {
            proto_chunk_loc_iter_init(&it, &lr);
            bool allocated = proto_chunk_loc_next(&it, &loc) && loc.chunk_id;
            rpc_reply_free(&r);
            if (allocated)
                rc = zero_tail(a, at.ino, bytes / PROTO_CHUNK_SIZE,
                               (uint32_t)(bytes % PROTO_CHUNK_SIZE));
        }
        if (rc < 0)
            return adm_fail(a, "image resize: zeroing the tail", rc);
    }
    rc = adm_image_set_size(a, at.ino, bytes, &out);
    if (rc < 0)
        return adm_fail(a, "image resize", rc);
    if (a->json) {
        adm_attr_json(path, &out, NULL);
    } else {
        adm_fmt_bytes(at.size, b1, sizeof(b1));
        adm_fmt_bytes(out.size, b2, sizeof(b2));
        printf("%s: %s -> %s\n", path, b1, b2);
    }
    return ADM_EXIT_OK;
}

/* Each "sharer" pair of @st: its inode, chunks shared and path (borrowed
 * from @st).  Returns false for other pairs. */
static bool sharer_of(const struct status_kv *kv, unsigned long long *ino,
                      unsigned long long *n, const char **path)
{
    int off = 0;

    if (strcmp(kv->key, "sharer") ||
        sscanf(kv->value, "%llu %llu %n", ino, n, &off) < 2 || off == 0)
        return false;
    *path = kv->value + off;
    return true;
}

/* The "sharer" pairs of @st as a JSON array. */
static void print_sharers_json(const struct status_report *st)
{
    unsigned long long ino, n;
    const char *p;
    bool first = true;

    printf("[");
    for (size_t i = 0; i < st->nkv; i++) {
        if (!sharer_of(&st->kv[i], &ino, &n, &p))
            continue;
        printf("%s{\"ino\": %llu, \"chunks\": %llu, \"path\": ",
               first ? "" : ", ", ino, n);
        adm_json_str(stdout, p, strlen(p));
        printf("}");
        first = false;
    }
    printf("]");
}

/* What removing the file of @st keeps: the chunks it shares stay for the
 * files that share them, the others are freed. */
static void print_rm(struct adm *a, const char *path,
                     const struct status_report *st)
{
    uint64_t chunks = status_report_u64(st, "chunks");
    uint64_t kept = status_report_u64(st, "shared");
    unsigned long long ino, n;
    const char *p;
    bool first = true;

    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, path, strlen(path));
        printf(", \"removed\": true, \"chunks_freed\": %" PRIu64
               ", \"chunks_kept\": %" PRIu64 ", \"kept_for\": ",
               chunks - kept, kept);
        print_sharers_json(st);
        printf("}\n");
        return;
    }
    printf("%s: removed; %" PRIu64 " chunk%s freed", path, chunks - kept,
           chunks - kept == 1 ? "" : "s");
    if (kept)
        printf(", %" PRIu64 " kept: still used by", kept);
    for (size_t i = 0; kept && i < st->nkv; i++) {
        if (!sharer_of(&st->kv[i], &ino, &n, &p))
            continue;
        printf("%s %s (%llu chunk%s)", first ? "" : ",", p, n,
               n == 1 ? "" : "s");
        first = false;
    }
    if (status_report_get(st, "sharers_truncated"))
        printf(", ...");
    printf("\n");
}

static int image_rm(struct adm *a, int argc, char **argv)
{
    struct status_report st = {0};
    struct proto_lookup_req req;
    struct proto_attr dir, at;
    char name[PROTO_NAME_MAX + 1];
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    if (argc != 2) {
        return adm_verb_usage("image", "rm");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[1], &at);
    if (rc == 0 && !S_ISREG(at.mode))
        rc = S_ISDIR(at.mode) ? -EISDIR : -EINVAL;
    if (rc < 0)
        return adm_fail_path(a, "image rm", argv[1], rc);
    rc = resolve_parent(a, argv[1], &dir, name, sizeof(name));
    /* What it shares, read just before: the answer says what stays. */
    if (rc == 0)
        rc = adm_status_ino(a, PROTO_MSG_IMAGE_INFO_REQ, at.ino, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "image rm", rc);
    }
    memset(&req, 0, sizeof(req));
    req.parent = dir.ino;
    req.name.p = name;
    req.name.len = (uint32_t)strlen(name);
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &req);
    rc = w.err ? w.err : rpc_call(a->rpc, PROTO_MSG_UNLINK_REQ, w.p, w.len, &r);
    proto_wbuf_free(&w);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "image rm", rc);
    }
    rpc_reply_free(&r);
    print_rm(a, argv[1], &st);
    status_report_free(&st);
    return ADM_EXIT_OK;
}

/* ---- image info ------------------------------------------------------------
 */

static int image_info(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    struct proto_attr at;
    char b1[32], b2[32];
    int rc;

    if (argc != 2) {
        return adm_verb_usage("image", "info");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[1], &at);
    if (rc < 0)
        return adm_fail_path(a, "image info", argv[1], rc);
    rc = adm_status_ino(a, PROTO_MSG_IMAGE_INFO_REQ, at.ino, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "image info", rc);
    }
    bool ro = status_report_u64(&st, "readonly") != 0;
    /* A snapshot or clone names its origin; an empty path: removed. */
    const char *opath = status_report_get(&st, "origin_path");
    bool origin = status_report_get(&st, "origin") != NULL;
    if (!opath)
        opath = "";
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, argv[1], strlen(argv[1]));
        printf(", \"ino\": %" PRIu64 ", \"size\": %" PRIu64
               ", \"allocated\": %" PRIu64 ", \"chunks\": %" PRIu64
               ", \"shared_chunks\": %" PRIu64 ", \"goal\": %" PRIu64
               ", \"readonly\": %s, \"shares_with\": ",
               status_report_u64(&st, "ino"), status_report_u64(&st, "size"),
               status_report_u64(&st, "allocated"),
               status_report_u64(&st, "chunks"),
               status_report_u64(&st, "shared"), status_report_u64(&st, "goal"),
               ro ? "true" : "false");
        print_sharers_json(&st);
        printf(", \"parent\": ");
        if (origin) {
            printf("{\"ino\": %" PRIu64 ", \"exists\": %s, \"path\": ",
                   status_report_u64(&st, "origin"),
                   opath[0] ? "true" : "false");
            if (opath[0])
                adm_json_str(stdout, opath, strlen(opath));
            else
                printf("null");
            printf("}");
        } else {
            printf("null");
        }
        printf("}\n");
    } else {
        adm_fmt_bytes(status_report_u64(&st, "size"), b1, sizeof(b1));
        adm_fmt_bytes(status_report_u64(&st, "allocated"), b2, sizeof(b2));
        printf("%-14s %s\n", "path", argv[1]);
        printf("%-14s %s (%" PRIu64 " bytes)\n", "size", b1,
               status_report_u64(&st, "size"));
        printf("%-14s %s\n", "allocated", b2);
        printf("%-14s %" PRIu64 " of 64 MiB\n", "chunks",
               status_report_u64(&st, "chunks"));
        printf("%-14s %" PRIu64 "\n", "shared chunks",
               status_report_u64(&st, "shared"));
        printf("%-14s %" PRIu64 "\n", "goal", status_report_u64(&st, "goal"));
        printf("%-14s %s\n", "read-only", ro ? "yes (snapshot)" : "no");
        if (origin && opath[0])
            printf("%-14s %s (ino %" PRIu64 ")\n", "parent", opath,
                   status_report_u64(&st, "origin"));
        else if (origin)
            printf("%-14s (removed, ino %" PRIu64 ")\n", "parent",
                   status_report_u64(&st, "origin"));
        for (size_t i = 0; i < st.nkv; i++) {
            unsigned long long ino, n;
            const char *p;
            if (!sharer_of(&st.kv[i], &ino, &n, &p))
                continue;
            printf("%-14s %s (%llu chunk%s, ino %llu)\n", "shares with", p, n,
                   n == 1 ? "" : "s", ino);
        }
        if (status_report_get(&st, "sharers_truncated"))
            printf("%-14s ...\n", "");
    }
    status_report_free(&st);
    return ADM_EXIT_OK;
}

int adm_cmd_image(struct adm *a, int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(struct adm *a, int argc, char **argv);
    } sub[] = {
        {"create", image_create},         {"info", image_info},
        {"resize", image_resize},         {"rm", image_rm},
        {"import", adm_image_import},     {"export", adm_image_export},
        {"handover", adm_image_handover}, {"list", adm_image_list},
        {"rollback", adm_image_rollback}, {"flatten", adm_image_flatten},
        {"diff", adm_image_diff},         {"apply-diff", adm_image_apply_diff},
    };

    for (size_t i = 0; argc >= 2 && i < sizeof(sub) / sizeof(sub[0]); i++)
        if (!strcmp(argv[1], sub[i].name))
            return sub[i].fn(a, argc - 1, argv + 1);
    return adm_verb_usage("image", NULL);
}
