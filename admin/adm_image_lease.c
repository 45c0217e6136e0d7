/* adm_image_lease.c: `tessera image handover [--for SECONDS] PATH`, and
 * who holds an image's writer lease (IMAGE_LEASE QUERY) for the verbs
 * that refuse to write an image someone else writes.
 *
 * Arms a live-migration hand-over of the image (IMAGE_LEASE ARM,
 * docs/vmdisk.md "Live-migration hand-over"): for SECONDS (default 600)
 * the next tessera-nbd that opens the image for writing while another one
 * holds its writer lease is accepted as the hand-over standby instead of
 * being refused, and takes the lease over at its first write or flush.
 * Prints who holds the lease now.  Run it on any host before starting the
 * migration (a libvirt "migrate" hook on the destination does it).
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ARM_DEFAULT_S 600

int adm_image_handover(struct adm *a, int argc, char **argv)
{
    struct proto_image_lease_req q = {.op = PROTO_LEASE_ARM};
    struct proto_image_lease_rep out;
    struct proto_attr at;
    struct rpc_reply r;
    struct proto_wbuf w;
    const char *path = NULL;
    uint64_t secs = ARM_DEFAULT_S;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--for") && i + 1 < argc &&
            status_parse_u64(argv[i + 1], &secs) && secs > 0 && secs <= 86400) {
            i++;
        } else if (!path && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (!path) {
        return adm_verb_usage("image", "handover");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, path, &at);
    if (rc == 0 && !S_ISREG(at.mode))
        rc = -EINVAL;
    if (rc < 0)
        return adm_fail(a, "image handover", rc);
    q.ino = at.ino;
    q.arg = (uint32_t)secs;
    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &q);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_IMAGE_LEASE_REQ, &w, &r, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return adm_fail(a, "image handover", rc);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, path, strlen(path));
        printf(", \"armed_s\": %" PRIu64 ", \"holder_session\": %" PRIu64
               ", \"holder_name\": ",
               secs, out.holder_session);
        adm_json_str(stdout, out.holder_name.p, out.holder_name.len);
        printf(", \"holder_host\": ");
        adm_json_str(stdout, out.holder_host.p, out.holder_host.len);
        printf("}\n");
    } else if (out.holder_session) {
        printf("%s: hand-over armed for %" PRIu64 " s; written now by %.*s "
               "on %.*s (session %" PRIu64 ")\n",
               path, secs, (int)out.holder_name.len, out.holder_name.p,
               (int)out.holder_host.len, out.holder_host.p, out.holder_session);
    } else {
        printf("%s: hand-over armed for %" PRIu64 " s; nobody writes it "
               "now\n",
               path, secs);
    }
    rpc_reply_free(&r);
    return ADM_EXIT_OK;
}

int adm_image_writer(struct adm *a, uint64_t ino, char *who, size_t size)
{
    struct proto_image_lease_req q = {.op = PROTO_LEASE_QUERY, .ino = ino};
    struct proto_image_lease_rep out;
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &q);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_IMAGE_LEASE_REQ, &w, &r, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    rc = out.holder_session != 0;
    if (rc)
        snprintf(who, size, "%.*s on %.*s", (int)out.holder_name.len,
                 out.holder_name.p, (int)out.holder_host.len,
                 out.holder_host.p);
    rpc_reply_free(&r);
    return rc;
}
