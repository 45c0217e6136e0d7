/* adm_image_diff.c: incremental diffs between snapshots (docs/vmdisk.md,
 * "Incremental diffs"):
 *
 *   tessera image diff [--progress] --from SNAP1 SNAP2 > FILE
 *   tessera image apply-diff [--progress] IMAGE FILE
 *
 * diff asks which 4 KiB blocks of SNAP2 may differ from SNAP1
 * (cl_changes_get(): chunk maps, copy-on-write lineage and the servers'
 * written-block maps; no data is compared), reads only those blocks of
 * SNAP2 and writes them as a stream (protocol/proto_diff.c): a header
 * with SNAP1's content digest (content_digest(): SHA-256 of the CRC32C of
 * every 4 KiB block, from the servers' checksums, reading no data), DATA
 * records for blocks with data, ZERO records for runs of zeros, then END
 * with two SHA-256 digests.  The base digest covers SNAP1's bytes in the
 * ranges the records rewrite, read from SNAP1 as the records are made;
 * the stream digest covers every byte before it.
 *
 * apply-diff checks first that the image is the base as a whole: its
 * size, and its content digest against the header's.  Then it reads the
 * file twice.  The first pass checks everything before a byte is
 * written: the layout and order of every record, the stream digest (a
 * damaged or cut file is refused), and the image's own bytes in the
 * ranges the records rewrite against the base digest.  The second pass grows the image if the target is larger,
 * writes DATA, zeroes ZERO ranges (cl_file_zero(), which frees whole
 * chunks' tails), shrinks it if the target is smaller, and syncs.  A
 * failure in the second pass leaves the image part-way; applying the same
 * diff again is then refused (its base no longer matches), and the image
 * should be restored from the base.
 *
 * What the base checks cannot see: an image that differs from the base
 * only where the diff does not rewrite and only by blocks of the same
 * CRC32C (a collision, 1 in 2^32 for a block changed by chance); and the
 * bytes of a last partial 4 KiB block that the diff does not rewrite.
 */
#include "adm_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "cl.h"

#define BLK PROTO_DIFF_BLOCK
#define PIECE PROTO_DIFF_DATA_MAX /* bytes read or written at once */

/* ---- The base's content digest ------------------------------------------ */

/* SHA-256 of the big-endian CRC32C of each whole 4 KiB block of the first
 * @size bytes of @ino, in order, as the servers' checksums give them
 * (cl_file_crcs(): no data is read).  The diff carries its base's; an
 * image takes the diff only with the same (docs/vmdisk.md). */
static int content_digest(struct cl_client *cl, uint64_t ino, uint64_t size,
                          uint8_t *out)
{
    uint64_t nblocks = size / BLK;
    uint8_t *crcs = malloc(PROTO_CRCS_BYTES);
    struct sha256_ctx h;
    int rc = crcs ? 0 : -ENOMEM;

    sha256_init(&h);
    for (uint64_t slot = 0; rc == 0 && slot * PROTO_WMAP_BITS < nblocks;
         slot++) {
        uint64_t n = nblocks - slot * PROTO_WMAP_BITS;
        if (n > PROTO_WMAP_BITS)
            n = PROTO_WMAP_BITS;
        rc = cl_file_crcs(cl, ino, slot, crcs);
        if (rc == 0)
            sha256_update(&h, (size_t)n * 4, crcs);
    }
    sha256_digest(&h, SHA256_DIGEST_SIZE, out);
    free(crcs);
    return rc;
}

/* ---- diff ---------------------------------------------------------------- */

struct diff_out {
    int fd;
    struct sha256_ctx stream, base;
    struct cl_client *cl;
    struct cl_inode *from, *to;
    uint64_t base_size;
    uint64_t bytes, records, data;
    uint64_t zoff, zlen; /* a ZERO run not written yet (zlen 0: none) */
    uint8_t *buf;        /* PIECE bytes */
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int emit(struct diff_out *d, const void *p, size_t n)
{
    sha256_update(&d->stream, n, p);
    d->bytes += n;
    return write_all(d->fd, p, n);
}

/* Hash the base's bytes of [off, off + len) below its size. */
static int base_hash(struct cl_client *cl, struct cl_inode *base,
                     uint64_t base_size, struct sha256_ctx *h, uint64_t off,
                     uint64_t len, uint8_t *buf)
{
    uint64_t end = off + len < base_size ? off + len : base_size;
    while (off < end) {
        size_t n = end - off > PIECE ? PIECE : (size_t)(end - off);
        int rc = cl_file_read(cl, base, off, n, buf);
        if (rc < 0)
            return rc;
        if ((size_t)rc < n)
            memset(buf + rc, 0, n - (size_t)rc);
        sha256_update(h, n, buf);
        off += n;
    }
    return 0;
}

static int emit_rec(struct diff_out *d, uint32_t type, uint64_t off,
                    uint64_t len, const uint8_t *data, uint8_t *scratch)
{
    struct proto_diff_rec r = {.type = type, .offset = off, .length = len};
    struct proto_wbuf w;
    int rc;

    if (type != PROTO_DIFF_END) {
        rc = base_hash(d->cl, d->from, d->base_size, &d->base, off, len,
                       scratch);
        if (rc < 0)
            return rc;
        d->records++;
        if (type == PROTO_DIFF_DATA)
            d->data += len;
    }
    proto_wbuf_init(&w);
    proto_diff_rec_encode(&w, &r);
    rc = w.err ? w.err : emit(d, w.p, w.len);
    proto_wbuf_free(&w);
    if (rc == 0 && data)
        rc = emit(d, data, (size_t)len);
    return rc;
}

static int zero_flush(struct diff_out *d, uint8_t *scratch)
{
    int rc = 0;
    if (d->zlen)
        rc = emit_rec(d, PROTO_DIFF_ZERO, d->zoff, d->zlen, NULL, scratch);
    d->zlen = 0;
    return rc;
}

static bool block_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Records for the changed range [off, end) of the target. */
static int diff_range(struct diff_out *d, uint64_t off, uint64_t end,
                      uint8_t *scratch)
{
    while (off < end) {
        size_t n = end - off > PIECE ? PIECE : (size_t)(end - off);
        int rc = cl_file_read(d->cl, d->to, off, n, d->buf);
        if (rc < 0)
            return rc;
        if ((size_t)rc < n)
            memset(d->buf + rc, 0, n - (size_t)rc);
        size_t i = 0;
        while (i < n) {
            size_t j = i, step;
            bool zero = block_zero(d->buf + i, n - i < BLK ? n - i : BLK);
            /* The run of blocks like block i. */
            for (; j < n; j += step) {
                step = n - j < BLK ? n - j : BLK;
                if (block_zero(d->buf + j, step) != zero)
                    break;
            }
            uint64_t at = off + i;
            if (zero) {
                if (d->zlen && d->zoff + d->zlen != at &&
                    (rc = zero_flush(d, scratch)) < 0)
                    return rc;
                if (!d->zlen)
                    d->zoff = at;
                d->zlen += j - i;
            } else if ((rc = zero_flush(d, scratch)) < 0 ||
                       (rc = emit_rec(d, PROTO_DIFF_DATA, at, j - i, d->buf + i,
                                      scratch)) < 0) {
                return rc;
            }
            i = j;
        }
        off += n;
    }
    return 0;
}

/* Every changed block of the target, in runs. */
static int diff_walk(struct diff_out *d, uint64_t from_ino, uint64_t to_ino,
                     uint64_t size, struct adm_progress *pg, uint8_t *scratch)
{
    uint64_t nslots = size / PROTO_CHUNK_SIZE + !!(size % PROTO_CHUNK_SIZE);
    uint64_t nblocks = size / BLK + !!(size % BLK);

    for (uint64_t first = 0; first < nslots; first += PROTO_LOCATE_MAX) {
        struct cl_changes ch;
        uint32_t count = nslots - first > PROTO_LOCATE_MAX
                             ? PROTO_LOCATE_MAX
                             : (uint32_t)(nslots - first);
        int rc = cl_changes_get(d->cl, from_ino, to_ino, first, count, &ch);
        if (rc < 0)
            return rc;
        uint64_t b = first * PROTO_WMAP_BITS;
        uint64_t bend = (first + count) * PROTO_WMAP_BITS;
        if (bend > nblocks)
            bend = nblocks;
        while (rc == 0 && b < bend) {
            if (!cl_changes_block(&ch, b)) {
                b++;
                continue;
            }
            uint64_t e = b;
            while (e < bend && cl_changes_block(&ch, e))
                e++;
            uint64_t end = e * BLK < size ? e * BLK : size;
            rc = diff_range(d, b * BLK, end, scratch);
            adm_progress_show(pg, end, false);
            b = e;
        }
        cl_changes_free(&ch);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int diff_write(struct diff_out *d, const struct proto_diff_hdr *h,
                      struct adm_progress *pg, uint8_t *scratch)
{
    uint8_t base_digest[SHA256_DIGEST_SIZE], digest[SHA256_DIGEST_SIZE];
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_diff_hdr_encode(&w, h);
    rc = w.err ? w.err : emit(d, w.p, w.len);
    proto_wbuf_free(&w);
    if (rc == 0)
        rc = diff_walk(d, h->base_ino, h->target_ino, h->target_size, pg,
                       scratch);
    if (rc == 0)
        rc = zero_flush(d, scratch);
    if (rc < 0)
        return rc;
    rc = emit_rec(d, PROTO_DIFF_END, d->records, d->data, NULL, scratch);
    sha256_digest(&d->base, sizeof(base_digest), base_digest);
    if (rc == 0)
        rc = emit(d, base_digest, sizeof(base_digest));
    sha256_digest(&d->stream, sizeof(digest), digest);
    if (rc == 0)
        rc = write_all(d->fd, digest, sizeof(digest));
    d->bytes += sizeof(digest);
    return rc;
}

static void diff_report(struct adm *a, const char *from, const char *to,
                        const struct diff_out *d)
{
    char s1[32], s2[32];

    /* stdout carries the diff: the summary goes to stderr. */
    if (a->json) {
        fprintf(stderr, "{\"from\": ");
        adm_json_str(stderr, from, strlen(from));
        fprintf(stderr, ", \"to\": ");
        adm_json_str(stderr, to, strlen(to));
        fprintf(stderr,
                ", \"records\": %" PRIu64 ", \"data\": %" PRIu64
                ", \"bytes\": %" PRIu64 "}\n",
                d->records, d->data, d->bytes);
        return;
    }
    adm_fmt_bytes(d->data, s1, sizeof(s1));
    adm_fmt_bytes(d->bytes, s2, sizeof(s2));
    fprintf(stderr, "diff %s -> %s: %" PRIu64 " records, %s of data, %s\n",
            from, to, d->records, s1, s2);
}

int adm_image_diff(struct adm *a, int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    struct proto_attr fa, ta;
    struct adm_progress pg;
    struct diff_out d;
    bool forced = false;
    uint8_t *scratch;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--progress") || !strcmp(argv[i], "-p"))
            forced = true;
        else if (!strcmp(argv[i], "--from") && i + 1 < argc)
            from = argv[++i];
        else if (!to)
            to = argv[i];
        else
            to = NULL, i = argc;
    }
    if (!from || !to) {
        return adm_verb_usage("image", "diff");
    }
    if (isatty(STDOUT_FILENO)) {
        fprintf(stderr, "tessera: image diff: the diff is binary: send it "
                        "to a file or a pipe\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, from, &fa);
    if (rc == 0)
        rc = adm_resolve(a, to, &ta);
    if (rc == 0 && (!S_ISREG(fa.mode) || !S_ISREG(ta.mode)))
        rc = -EINVAL;
    if (rc < 0)
        return adm_fail(a, "image diff", rc);

    memset(&d, 0, sizeof(d));
    d.fd = STDOUT_FILENO;
    d.base_size = fa.size;
    sha256_init(&d.stream);
    sha256_init(&d.base);
    d.buf = malloc(PIECE);
    scratch = malloc(PIECE);
    rc = d.buf && scratch ? adm_client_open(a, "diff", &d.cl) : -ENOMEM;
    if (rc == 0)
        rc = cl_inode_open(d.cl, fa.ino, fa.size, &d.from);
    if (rc == 0)
        rc = cl_inode_open(d.cl, ta.ino, ta.size, &d.to);
    if (rc == 0) {
        struct proto_diff_hdr h = {
            .base_size = fa.size,
            .target_size = ta.size,
            .base_ino = fa.ino,
            .target_ino = ta.ino,
            .base_path = {from, (uint32_t)strlen(from)},
            .target_path = {to, (uint32_t)strlen(to)},
        };
        static_assert(sizeof(h.base_content) == SHA256_DIGEST_SIZE,
                      "the base content digest is a SHA-256");
        rc = content_digest(d.cl, fa.ino, fa.size, h.base_content);
        adm_progress_start(&pg, "diff", forced, ta.size);
        if (rc == 0)
            rc = diff_write(&d, &h, &pg, scratch);
        adm_progress_show(&pg, rc == 0 ? ta.size : 0, true);
    }
    if (d.cl) {
        cl_inode_put(d.cl, d.from);
        cl_inode_put(d.cl, d.to);
        cl_client_close(d.cl);
    }
    free(d.buf);
    free(scratch);
    if (rc < 0)
        return adm_fail(a, "image diff", rc);
    diff_report(a, from, to, &d);
    return ADM_EXIT_OK;
}

/* ---- apply-diff ---------------------------------------------------------- */

struct diff_in {
    int fd;
    uint64_t off, size; /* where in the file, its size */
    struct proto_diff_hdr h;
    size_t hdr_len;
    uint8_t hdr[PROTO_DIFF_HDR_FIXED + 2 * (2 + PROTO_MAX_STR)];
    uint8_t base_digest[SHA256_DIGEST_SIZE], digest[SHA256_DIGEST_SIZE];
};

static int read_exact(struct diff_in *in, void *p, size_t n)
{
    uint8_t *q = p;
    while (n) {
        ssize_t r = pread(in->fd, q, n, (off_t)in->off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EPROTO; /* cut short */
        q += r;
        n -= (size_t)r;
        in->off += (uint64_t)r;
    }
    return 0;
}

static int hdr_read(struct diff_in *in)
{
    ssize_t n = pread(in->fd, in->hdr, sizeof(in->hdr), 0);
    if (n < 0)
        return -errno;
    int rc = proto_diff_hdr_decode(in->hdr, (size_t)n, &in->h, &in->hdr_len);
    if (rc == -EAGAIN)
        rc = -EPROTO; /* the file ends inside the header */
    in->off = in->hdr_len;
    return rc;
}

/* The next record head, checked against the cursor. */
static int rec_next(struct diff_in *in, struct proto_diff_cursor *cur,
                    struct proto_diff_rec *r, struct sha256_ctx *stream)
{
    uint8_t head[PROTO_DIFF_REC_SIZE];
    int rc = read_exact(in, head, sizeof(head));
    if (rc == 0)
        rc = proto_diff_rec_decode(head, sizeof(head), r);
    if (rc == 0)
        rc = proto_diff_cursor_next(cur, r);
    if (rc == 0 && stream)
        sha256_update(stream, sizeof(head), head);
    return rc;
}

enum check_result { CHECK_OK, CHECK_DAMAGED, CHECK_BASE };

/* Pass one: everything checked, nothing written. */
static int apply_check(struct diff_in *in, struct cl_client *cl,
                       struct cl_inode *img, uint8_t *buf,
                       enum check_result *res, struct adm_progress *pg)
{
    struct sha256_ctx stream, base;
    struct proto_diff_cursor cur;
    struct proto_diff_rec r;
    uint8_t digest[SHA256_DIGEST_SIZE];
    int rc = 0;

    *res = CHECK_DAMAGED;
    sha256_init(&stream);
    sha256_init(&base);
    sha256_update(&stream, in->hdr_len, in->hdr);
    proto_diff_cursor_init(&cur, &in->h);
    while (!cur.ended) {
        if ((rc = rec_next(in, &cur, &r, &stream)) < 0)
            return rc == -EPROTO ? 0 : rc;
        if (r.type == PROTO_DIFF_END)
            break;
        if (r.type == PROTO_DIFF_DATA) {
            if ((rc = read_exact(in, buf, (size_t)r.length)) < 0)
                return rc == -EPROTO ? 0 : rc;
            sha256_update(&stream, (size_t)r.length, buf);
        }
        rc =
            base_hash(cl, img, in->h.base_size, &base, r.offset, r.length, buf);
        if (rc < 0)
            return rc;
        adm_progress_show(pg, in->off, false);
    }
    if ((rc = read_exact(in, in->base_digest, sizeof(in->base_digest))) < 0 ||
        (rc = read_exact(in, in->digest, sizeof(in->digest))) < 0)
        return rc == -EPROTO ? 0 : rc;
    sha256_update(&stream, sizeof(in->base_digest), in->base_digest);
    sha256_digest(&stream, sizeof(digest), digest);
    if (in->off != in->size || memcmp(digest, in->digest, sizeof(digest)))
        return 0;
    sha256_digest(&base, sizeof(digest), digest);
    *res =
        memcmp(digest, in->base_digest, sizeof(digest)) ? CHECK_BASE : CHECK_OK;
    return 0;
}

/* Pass two: the records into the image, then its new size. */
static int apply_write(struct adm *a, struct diff_in *in, struct cl_client *cl,
                       struct cl_inode *img, uint64_t ino, uint8_t *buf,
                       struct adm_progress *pg)
{
    const struct proto_diff_hdr *h = &in->h;
    struct proto_diff_cursor cur;
    struct proto_diff_rec r;
    struct proto_attr out;
    int rc = 0;

    if (h->target_size > h->base_size) {
        if ((rc = adm_image_set_size(a, ino, h->target_size, &out)) < 0)
            return rc;
        cl_inode_set_size(img, h->target_size);
    }
    in->off = in->hdr_len;
    proto_diff_cursor_init(&cur, h);
    while (rc == 0 && (rc = rec_next(in, &cur, &r, NULL)) == 0 &&
           r.type != PROTO_DIFF_END) {
        if (r.type == PROTO_DIFF_DATA) {
            rc = read_exact(in, buf, (size_t)r.length);
            int w = rc == 0 ? cl_file_write(cl, img, r.offset, buf,
                                            (size_t)r.length, false)
                            : rc;
            rc = w < 0 ? w : (uint64_t)w != r.length ? -EIO : 0;
        } else {
            rc = cl_file_zero(cl, img, r.offset, r.length);
        }
        adm_progress_show(pg, in->size + in->off, false);
    }
    if (rc == 0 && h->target_size < h->base_size) {
        rc = cl_file_truncate_prepare(cl, ino, img, h->base_size,
                                      h->target_size);
        if (rc == 0)
            rc = adm_image_set_size(a, ino, h->target_size, &out);
        if (rc == 0)
            cl_file_truncate_done(cl, ino, img, h->target_size);
    }
    if (rc == 0)
        rc = cl_file_sync(cl, img);
    return rc;
}

static int apply_refuse(const char *image, const char *file,
                        const struct diff_in *in, enum check_result res)
{
    if (res == CHECK_BASE)
        fprintf(stderr,
                "tessera: image apply-diff: %s does not hold the diff's base "
                "(%.*s, ino %" PRIu64 "): refused, nothing written\n",
                image, (int)in->h.base_path.len, in->h.base_path.p,
                in->h.base_ino);
    else
        fprintf(stderr,
                "tessera: image apply-diff: %s is damaged or cut short "
                "(checksum mismatch): refused, nothing written\n",
                file);
    return ADM_EXIT_FAIL;
}

int adm_image_apply_diff(struct adm *a, int argc, char **argv)
{
    const char *image = NULL, *file = NULL;
    enum check_result res = CHECK_DAMAGED;
    struct cl_client *cl = NULL;
    struct cl_inode *img = NULL;
    struct adm_progress pg;
    struct proto_attr at;
    struct diff_in in;
    struct stat st;
    bool forced = false;
    uint8_t *buf;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--progress") || !strcmp(argv[i], "-p"))
            forced = true;
        else if (!image)
            image = argv[i];
        else if (!file)
            file = argv[i];
        else
            file = NULL, i = argc;
    }
    if (!image || !file) {
        return adm_verb_usage("image", "apply-diff");
    }
    memset(&in, 0, sizeof(in));
    in.fd = open(file, O_RDONLY | O_CLOEXEC);
    int err = in.fd < 0 || fstat(in.fd, &st) < 0 ? errno : 0;
    if (err || !S_ISREG(st.st_mode)) {
        /* Read twice (checked, then applied): a pipe will not do. */
        fprintf(stderr, "tessera: image apply-diff: %s: %s\n", file,
                err ? strerror(err) : "not a regular file");
        if (in.fd >= 0)
            close(in.fd);
        return ADM_EXIT_FAIL;
    }
    in.size = (uint64_t)st.st_size;
    if (hdr_read(&in) < 0) {
        fprintf(stderr,
                "tessera: image apply-diff: %s is not a Tessera "
                "image diff of a format this version reads\n",
                file);
        close(in.fd);
        return ADM_EXIT_FAIL;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK) {
        close(in.fd);
        return rc;
    }
    buf = malloc(PIECE);
    rc = buf ? adm_resolve(a, image, &at) : -ENOMEM;
    if (rc == 0 && !S_ISREG(at.mode))
        rc = S_ISDIR(at.mode) ? -EISDIR : -EINVAL;
    char who[2 * PROTO_MAX_STR + 8];
    if (rc == 0 && (rc = adm_image_writer(a, at.ino, who, sizeof(who))) > 0) {
        fprintf(stderr,
                "tessera: image apply-diff: %s is open for writing by %s: "
                "refused, nothing written\n",
                image, who);
        free(buf);
        close(in.fd);
        return ADM_EXIT_FAIL;
    }
    uint8_t content[SHA256_DIGEST_SIZE];
    if (rc == 0 && at.size != in.h.base_size)
        res = CHECK_BASE;
    else if (rc == 0 && (rc = adm_client_open(a, "apply-diff", &cl)) == 0 &&
             (rc = content_digest(cl, at.ino, at.size, content)) == 0 &&
             memcmp(content, in.h.base_content, sizeof(content)) != 0)
        res = CHECK_BASE; /* the image is not the base as a whole */
    else if (rc == 0 && (rc = cl_inode_open(cl, at.ino, at.size, &img)) == 0) {
        adm_progress_start(&pg, "apply-diff", forced, 2 * in.size);
        rc = apply_check(&in, cl, img, buf, &res, &pg);
        if (rc == 0 && res == CHECK_OK)
            rc = apply_write(a, &in, cl, img, at.ino, buf, &pg);
        adm_progress_show(&pg, rc == 0 ? 2 * in.size : 0, true);
    }
    if (cl) {
        cl_inode_put(cl, img);
        cl_client_close(cl);
    }
    free(buf);
    close(in.fd);
    if (rc < 0)
        return adm_fail(a, "image apply-diff", rc);
    if (res != CHECK_OK)
        return apply_refuse(image, file, &in, res);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, image, strlen(image));
        printf(", \"ino\": %" PRIu64 ", \"size\": %" PRIu64 ", \"base\": ",
               at.ino, in.h.target_size);
        adm_json_str(stdout, in.h.base_path.p, in.h.base_path.len);
        printf(", \"target\": ");
        adm_json_str(stdout, in.h.target_path.p, in.h.target_path.len);
        printf("}\n");
    } else {
        printf("%s: diff applied: now %.*s (was %.*s)\n", image,
               (int)in.h.target_path.len, in.h.target_path.p,
               (int)in.h.base_path.len, in.h.base_path.p);
    }
    return ADM_EXIT_OK;
}
