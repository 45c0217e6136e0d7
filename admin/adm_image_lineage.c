/* adm_image_lineage.c: moving an image along its lineage (docs/vmdisk.md,
 * "Rollback" and "Flatten"):
 *
 *   tessera image rollback IMAGE SNAPSHOT
 *   tessera image flatten [--progress] CLONE
 *
 * Rollback is one request (IMAGE_ROLLBACK): metad gives IMAGE the
 * snapshot's chunks and size in one record, and refuses (EBUSY) while a
 * session holds the image's writer lease, which is said here in words.
 *
 * Flatten runs the ordinary copy-on-write on every allocated slot of the
 * clone through a client session of its own (CHUNK_WRITE_BEGIN, which
 * copies a shared chunk on its servers and bumps an own one), then asks
 * metad to forget the clone's origin (IMAGE_FLATTEN), which it does only
 * when no slot is shared any more; a snapshot taken of the clone
 * meanwhile shares them again, so the walk is tried up to three times.
 * Afterwards the parent can be removed and frees what only it held.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cl.h"

#define FLATTEN_TRIES 3

static int pair_call(struct adm *a, uint16_t opcode, uint64_t ino, uint64_t src,
                     struct proto_attr *out)
{
    struct proto_image_pair_req req;
    struct proto_wbuf w;

    memset(&req, 0, sizeof(req)); /* as root, like every admin verb */
    req.ino = ino;
    req.src = src;
    proto_wbuf_init(&w);
    proto_image_pair_req_encode(&w, &req);
    return adm_attr_call(a, opcode, &w, out);
}

int adm_image_rollback(struct adm *a, int argc, char **argv)
{
    struct proto_attr img, snap, out;
    char size[32];
    int rc;

    if (argc != 3) {
        return adm_verb_usage("image", "rollback");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[1], &img);
    if (rc == 0)
        rc = adm_resolve(a, argv[2], &snap);
    if (rc == 0)
        rc =
            pair_call(a, PROTO_MSG_IMAGE_ROLLBACK_REQ, img.ino, snap.ino, &out);
    if (rc == -EBUSY) {
        fprintf(stderr,
                "tessera: image rollback: %s is open for writing (its "
                "writer lease is held): stop its VM or tessera-nbd first\n",
                argv[1]);
        return ADM_EXIT_FAIL;
    }
    if (rc == -EINVAL && !S_ISDIR(snap.mode)) {
        fprintf(stderr,
                "tessera: image rollback: %s is not a snapshot of another "
                "file (rollback takes a read-only snapshot)\n",
                argv[2]);
        return ADM_EXIT_FAIL;
    }
    if (rc < 0)
        return adm_fail(a, "image rollback", rc);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, argv[1], strlen(argv[1]));
        printf(", \"ino\": %" PRIu64 ", \"size\": %" PRIu64 ", \"snapshot\": ",
               out.ino, out.size);
        adm_json_str(stdout, argv[2], strlen(argv[2]));
        printf("}\n");
    } else {
        adm_fmt_bytes(out.size, size, sizeof(size));
        printf("%s: rolled back to %s (%s)\n", argv[1], argv[2], size);
    }
    return ADM_EXIT_OK;
}

/* Copy-on-write of every allocated slot of @at; *slots counts them. */
static int unshare_all(struct cl_client *cl, const struct proto_attr *at,
                       struct adm_progress *pg, uint64_t *slots)
{
    uint64_t n = at->size / PROTO_CHUNK_SIZE + !!(at->size % PROTO_CHUNK_SIZE);

    *slots = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct cl_chunk loc;
        int rc = cl_file_locate(cl, at->ino, i, PROTO_LOCATE_MAX, &loc);
        if (rc == 0 && loc.chunk_id != 0) {
            rc = cl_file_unshare(cl, at->ino, i);
            (*slots)++;
        }
        if (rc < 0)
            return rc;
        adm_progress_show(pg, (i + 1) * (uint64_t)PROTO_CHUNK_SIZE, false);
    }
    return 0;
}

int adm_image_flatten(struct adm *a, int argc, char **argv)
{
    struct adm_progress pg;
    struct status_report st;
    struct proto_attr at, out;
    struct cl_client *cl = NULL;
    const char *path = NULL;
    bool forced = false;
    uint64_t shared = 0, slots = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--progress") || !strcmp(argv[i], "-p"))
            forced = true;
        else if (!path)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path) {
        return adm_verb_usage("image", "flatten");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, path, &at);
    if (rc == 0 && !S_ISREG(at.mode))
        rc = S_ISDIR(at.mode) ? -EISDIR : -EINVAL;
    char who[2 * PROTO_MAX_STR + 8];
    if (rc == 0 && (rc = adm_image_writer(a, at.ino, who, sizeof(who))) > 0) {
        fprintf(stderr,
                "tessera: image flatten: %s is open for writing by %s: stop "
                "its writer first\n",
                path, who);
        return ADM_EXIT_FAIL;
    }
    if (rc == 0) {
        rc = adm_status_ino(a, PROTO_MSG_IMAGE_INFO_REQ, at.ino, &st);
        shared = rc == 0 ? status_report_u64(&st, "shared") : 0;
        status_report_free(&st);
    }
    if (rc == 0)
        rc = adm_client_open(a, "flatten", &cl);
    if (rc < 0)
        return adm_fail(a, "image flatten", rc);
    adm_progress_start(&pg, "flatten", forced, at.size);
    rc = -EBUSY;
    for (int t = 0; rc == -EBUSY && t < FLATTEN_TRIES; t++) {
        rc = unshare_all(cl, &at, &pg, &slots);
        if (rc == 0)
            rc = pair_call(a, PROTO_MSG_IMAGE_FLATTEN_REQ, at.ino, 0, &out);
    }
    adm_progress_show(&pg, rc == 0 ? at.size : 0, true);
    cl_client_close(cl);
    if (rc == -EROFS) {
        fprintf(stderr,
                "tessera: image flatten: %s is a snapshot, or open for "
                "writing elsewhere (its writer lease is held)\n",
                path);
        return ADM_EXIT_FAIL;
    }
    if (rc < 0)
        return adm_fail(a, "image flatten", rc);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, path, strlen(path));
        printf(", \"ino\": %" PRIu64 ", \"size\": %" PRIu64
               ", \"chunks\": %" PRIu64 ", \"copied\": %" PRIu64 "}\n",
               out.ino, out.size, slots, shared);
    } else {
        printf("%s: flattened: %" PRIu64 " shared chunks of %" PRIu64
               " copied; it no longer depends on its parent\n",
               path, shared, slots);
    }
    return ADM_EXIT_OK;
}
