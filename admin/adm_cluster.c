/* adm_cluster.c: the cluster-wide verbs: `tessera servers`, `tessera
 * server drain|undrain|remove ID`, `tessera scrub [--server ID]`,
 * `tessera rebalance` and `tessera fsck [--repair]`.
 *
 * Server control goes through SERVER_CTL, the rest through ADMIN_ACTION,
 * whose reply is key/value text like STATUS (metadata/meta_srv_admin.c).
 * The long ones (drain, rebalance, fsck --repair) accept --wait: the CLI
 * then asks for progress once a second and prints one line each time
 * until the work is done.  Exit status: 0 done and healthy, 1 an error or
 * something left needing attention (fsck found problems), 2 metad cannot
 * be reached, 64 bad command line.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Send ADMIN_ACTION and parse the reply into *st (free with
 * status_report_free(), also on error). */
static int action(struct adm *a, uint32_t what, uint32_t arg,
                  struct status_report *st)
{
    struct proto_admin_action_req req = {.action = what, .arg = arg};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_admin_action_req_encode(&w, &req);
    rc = adm_status_call(a, PROTO_MSG_ADMIN_ACTION_REQ, &w, st);
    proto_wbuf_free(&w);
    return rc;
}

static void print_kv_json(const struct status_report *st)
{
    printf("{");
    for (size_t i = 0; i < st->nkv; i++) {
        uint64_t n;

        printf("%s\n  ", i ? "," : "");
        adm_json_str(stdout, st->kv[i].key, strlen(st->kv[i].key));
        printf(": ");
        if (status_parse_u64(st->kv[i].value, &n))
            printf("%" PRIu64, n);
        else
            adm_json_str(stdout, st->kv[i].value, strlen(st->kv[i].value));
    }
    printf("\n}\n");
}

static void progress_line(const struct status_report *st, const char *what)
{
    char b[32];

    adm_fmt_bytes(status_report_u64(st, "repair.bytes"), b, sizeof(b));
    printf("%s: under goal %" PRIu64 ", missing %" PRIu64 ", copies in flight "
           "%" PRIu64 ", copied %" PRIu64 " (%s), moved %" PRIu64 "\n",
           what, status_report_u64(st, "chunks.under_goal"),
           status_report_u64(st, "chunks.missing"),
           status_report_u64(st, "repair.inflight"),
           status_report_u64(st, "repair.copied"), b,
           status_report_u64(st, "rebalance.moved"));
    fflush(stdout);
}

/* Follow progress once a second until @done says so.  0, or -errno. */
static int wait_for(struct adm *a, const char *what,
                    bool (*done)(const struct status_report *st, void *arg),
                    void *arg)
{
    for (;;) {
        struct status_report st;
        int rc = action(a, PROTO_ADMIN_PROGRESS, 0, &st);
        bool fin;

        if (rc < 0) {
            status_report_free(&st);
            return rc;
        }
        fin = done(&st, arg);
        if (!a->json)
            progress_line(&st, what);
        status_report_free(&st);
        if (fin)
            return 0;
        sleep(1);
    }
}

/* ---- servers ------------------------------------------------------------ */

int adm_cmd_servers(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    size_t bad = 0;
    int rc;

    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "tessera: servers takes no arguments\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_status_fetch(a, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "servers", rc);
    }
    for (size_t i = 0; i < st.nservers; i++)
        bad += !st.servers[i].up;
    if (a->json) {
        printf("[");
        for (size_t i = 0; i < st.nservers; i++) {
            const struct status_server *s = &st.servers[i];

            printf(
                "%s\n  {\"id\": %u, \"state\": \"%s\", \"since_ns\": %" PRId64
                ", \"addr\": ",
                i ? "," : "", s->id, s->state, s->since_ns);
            adm_json_str(stdout, s->addr, strlen(s->addr));
            printf(", \"replicas\": %" PRIu64 ", \"used\": %" PRIu64
                   ", \"free\": %" PRIu64 ", \"capacity\": %" PRIu64
                   ", \"heartbeat_ms\": %" PRIu64 "}",
                   s->replicas, s->used, s->free, s->capacity, s->hb_ms);
        }
        printf("%s]\n", st.nservers ? "\n" : "");
    } else if (st.nservers == 0) {
        printf("no storage servers registered\n");
    } else {
        adm_print_servers(&st);
    }
    status_report_free(&st);
    return bad ? ADM_EXIT_FAIL : ADM_EXIT_OK;
}

/* ---- server drain|undrain|remove ---------------------------------------- */

bool adm_drain_step(struct drain_watch *d, const struct status_report *st)
{
    char key[32];
    uint64_t left;

    snprintf(key, sizeof(key), "drain.%u", d->id);
    /* The key goes away with the server (removed) or the drain. */
    if (status_report_get(st, key) == NULL)
        return true;
    left = status_report_u64(st, key);
    if (left == 0)
        return true;
    /* Stuck only when metad's repair found no server for a copy: a chunk
     * may also wait for its write lease to end (a minute), which is not
     * stuck. */
    uint64_t copied = status_report_u64(st, "repair.copied");
    d->unplaced = status_report_u64(st, "repair.unplaced");
    if (left != d->left || copied != d->copied || d->unplaced == 0 ||
        status_report_u64(st, "repair.inflight") > 0) {
        d->left = left;
        d->copied = copied;
        d->still = 0;
        return false;
    }
    d->stuck = ++d->still >= ADM_DRAIN_STALL_S;
    return d->stuck;
}

static bool drained(const struct status_report *st, void *arg)
{
    return adm_drain_step(arg, st);
}

int adm_cmd_server(struct adm *a, int argc, char **argv)
{
    static const struct {
        const char *name;
        uint32_t action;
    } verbs[] = {{"drain", PROTO_SERVER_DRAIN},
                 {"undrain", PROTO_SERVER_UNDRAIN},
                 {"remove", PROTO_SERVER_REMOVE}};
    struct proto_server_ctl_req req = {0};
    struct rpc_reply r;
    struct proto_wbuf w;
    bool wait = argc == 4 && !strcmp(argv[3], "--wait");
    uint64_t id;
    char what[64];
    int rc;

    if ((argc != 3 && !wait) || !status_parse_u64(argv[2], &id) || id == 0 ||
        id > UINT32_MAX)
        goto usage;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(argv[1], verbs[i].name))
            req.action = verbs[i].action;
    if (!req.action)
        goto usage;
    req.server_id = (uint32_t)id;
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    snprintf(what, sizeof(what), "server %s %u", argv[1], req.server_id);
    proto_wbuf_init(&w);
    proto_server_ctl_req_encode(&w, &req);
    rc = rpc_call(a->rpc, PROTO_MSG_SERVER_CTL_REQ, w.p, w.len, &r);
    proto_wbuf_free(&w);
    if (rc == -EBUSY) {
        fprintf(stderr,
                "tessera: %s: the server is up and still holds "
                "replicas (drain it first, or stop it)\n",
                what);
        return ADM_EXIT_FAIL;
    }
    if (rc == -ENOENT) {
        fprintf(stderr,
                "tessera: %s: no storage server has id %u "
                "(`tessera servers` lists them)\n",
                what, req.server_id);
        return ADM_EXIT_FAIL;
    }
    if (rc < 0)
        return adm_fail(a, what, rc);
    rpc_reply_free(&r);
    if (!a->json)
        printf("%s: ok\n", what);
    if (wait && req.action == PROTO_SERVER_DRAIN) {
        struct drain_watch d = {.id = req.server_id, .left = UINT64_MAX};

        rc = wait_for(a, what, drained, &d);
        if (rc < 0)
            return adm_fail(a, what, rc);
        if (d.stuck) {
            fprintf(stderr,
                    "tessera: %s: stuck: %" PRIu64 " replicas left and none "
                    "moved for %u s.\n  %" PRIu64 " chunks have no other "
                    "server up that could take a copy, so the goal cannot "
                    "be met: add a server, or lower the goal (tessera "
                    "setgoal).\n  The drain stays on; `tessera server "
                    "undrain %u` cancels it.\n",
                    what, d.left, ADM_DRAIN_STALL_S, d.unplaced,
                    req.server_id);
            return ADM_EXIT_FAIL;
        }
        if (!a->json)
            printf("%s: done, the server holds no replica; "
                   "`tessera server remove %u` forgets it\n",
                   what, req.server_id);
    }
    if (a->json)
        printf("{\"server\": %u, \"action\": \"%s\", \"ok\": true}\n",
               req.server_id, argv[1]);
    return ADM_EXIT_OK;
usage:
    return adm_verb_usage("server", argc >= 2 ? argv[1] : NULL);
}

/* ---- scrub, rebalance, fsck --------------------------------------------- */

int adm_cmd_scrub(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    uint64_t id = 0;
    int rc;

    if (argc == 3 && !strcmp(argv[1], "--server")) {
        if (!status_parse_u64(argv[2], &id) || id == 0 || id > UINT32_MAX)
            argc = 0;
    } else if (argc != 1) {
        argc = 0;
    }
    if (argc == 0) {
        return adm_verb_usage("scrub", NULL);
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = action(a, PROTO_ADMIN_SCRUB, (uint32_t)id, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "scrub", rc);
    }
    if (a->json)
        print_kv_json(&st);
    else
        printf("scrub started on %" PRIu64 " server%s; bad replicas are "
               "reported and replaced by repair (see tessera status)\n",
               status_report_u64(&st, "scrub.sent"),
               status_report_u64(&st, "scrub.sent") == 1 ? "" : "s");
    status_report_free(&st);
    return ADM_EXIT_OK;
}

static bool rebalanced(const struct status_report *st, void *arg)
{
    (void)arg;
    return status_report_u64(st, "rebalance.active") == 0;
}

int adm_cmd_rebalance(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    bool wait = argc == 2 && !strcmp(argv[1], "--wait");
    int rc;

    if (argc != 1 && !wait) {
        return adm_verb_usage("rebalance", NULL);
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = action(a, PROTO_ADMIN_REBALANCE, 0, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "rebalance", rc);
    }
    if (a->json && !wait)
        print_kv_json(&st);
    else if (!a->json)
        printf("rebalance %s\n", status_report_u64(&st, "rebalance.active")
                                     ? "running"
                                     : "done: usage is even");
    status_report_free(&st);
    if (wait) {
        rc = wait_for(a, "rebalance", rebalanced, NULL);
        if (rc < 0)
            return adm_fail(a, "rebalance", rc);
        if (a->json)
            printf("{\"rebalance\": \"done\"}\n");
    }
    return ADM_EXIT_OK;
}

static bool repaired(const struct status_report *st, void *arg)
{
    (void)arg;
    return status_report_u64(st, "chunks.under_goal") == 0 &&
           status_report_u64(st, "chunks.missing") == 0 &&
           status_report_u64(st, "repair.inflight") == 0;
}

int adm_cmd_fsck(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    bool repair = false, wait = false;
    uint64_t bad;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repair")) {
            repair = true;
        } else if (!strcmp(argv[i], "--wait")) {
            wait = true;
        } else {
            return adm_verb_usage("fsck", NULL);
        }
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = action(a, PROTO_ADMIN_FSCK, repair, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "fsck", rc);
    }
    bad = status_report_u64(&st, "fsck.under_goal") +
          status_report_u64(&st, "fsck.missing") +
          status_report_u64(&st, "fsck.orphans");
    if (a->json) {
        print_kv_json(&st);
    } else {
        printf("fsck: %" PRIu64 " chunks: %" PRIu64 " ok, %" PRIu64
               " under goal, %" PRIu64 " over goal, %" PRIu64 " missing\n",
               status_report_u64(&st, "fsck.chunks"),
               status_report_u64(&st, "fsck.ok"),
               status_report_u64(&st, "fsck.under_goal"),
               status_report_u64(&st, "fsck.over_goal"),
               status_report_u64(&st, "fsck.missing"));
        printf("fsck: %" PRIu64 " orphan replicas on servers, %" PRIu64
               " replicas waiting for deletion, %" PRIu64 " fixed\n",
               status_report_u64(&st, "fsck.orphans"),
               status_report_u64(&st, "fsck.gc_pending"),
               status_report_u64(&st, "fsck.repaired"));
        for (size_t i = 0; i < st.nkv; i++)
            if (!strncmp(st.kv[i].key, "fsck.missing.", 13))
                printf("  missing chunk %s: %s\n", st.kv[i].key + 13,
                       st.kv[i].value);
    }
    status_report_free(&st);
    if (repair && wait) {
        rc = wait_for(a, "fsck repair", repaired, NULL);
        if (rc < 0)
            return adm_fail(a, "fsck", rc);
        return ADM_EXIT_OK;
    }
    return bad ? ADM_EXIT_FAIL : ADM_EXIT_OK;
}
