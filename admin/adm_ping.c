/* adm_ping.c: `tessera ping`: one PING round trip to metad, with the
 * cookie checked and the round-trip time printed.
 */
#include "adm_internal.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int adm_cmd_ping(struct adm *a, int argc, char **argv)
{
    struct proto_ping req, rep;
    struct proto_wbuf w;
    struct rpc_reply r;
    double t0, ms;
    int rc;

    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "tessera: ping takes no arguments\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    req.cookie = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    proto_wbuf_init(&w);
    proto_ping_encode(&w, &req);
    t0 = now_ms();
    rc = rpc_call_msg(a->rpc, PROTO_MSG_PING_REQ, &w, &r, &rep);
    ms = now_ms() - t0;
    proto_wbuf_free(&w);
    if (rc < 0)
        return adm_fail(a, "ping", rc);
    rpc_reply_free(&r);
    if (rep.cookie != req.cookie) {
        fprintf(stderr, "tessera: ping: reply carries the wrong cookie\n");
        return ADM_EXIT_FAIL;
    }
    if (a->json) {
        printf("{\"address\": ");
        adm_json_str(stdout, a->meta, strlen(a->meta));
        printf(", \"instance\": \"%016" PRIx64 "\", \"rtt_ms\": %.3f}\n",
               rpc_server_instance(a->rpc), ms);
    } else {
        printf("pong from %s: instance %016" PRIx64 ", %.3f ms\n", a->meta,
               rpc_server_instance(a->rpc), ms);
    }
    return ADM_EXIT_OK;
}
