/* adm_status.c: `tessera status`: ask metad for STATUS and print it as
 * tables (the metadata server, its sessions, the storage servers) or, with
 * --json, as the JSON object metad also serves at /api/status (both from
 * common/status.c).
 *
 * The reply is text key/value pairs (see metadata/meta_srv_status.c),
 * taken apart by common/status.c: sessions and servers become rows, the
 * callback counters of a session (docs/caching.md) join its row; every
 * other pair is printed as it comes, so new counters show up without a
 * CLI change.
 *
 * Exit status: 0 when every registered storage server is up (or
 * draining) and no chunk is under its goal or missing, 1 otherwise, 2 when
 * metad cannot be reached.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Asking ------------------------------------------------------------ */

int adm_status_call(struct adm *a, uint16_t opcode,
                    const struct proto_wbuf *body, struct status_report *st)
{
    struct rpc_reply rep;
    int rc;

    memset(st, 0, sizeof(*st));
    if (body && body->err)
        return body->err;
    rc = rpc_call(a->rpc, opcode, body ? body->p : NULL, body ? body->len : 0,
                  &rep);
    if (rc < 0)
        return rc;
    rc = status_report_parse(rep.payload, rep.len, st);
    rpc_reply_free(&rep);
    return rc;
}

int adm_status_fetch(struct adm *a, struct status_report *st)
{
    return adm_status_call(a, PROTO_MSG_STATUS_REQ, NULL, st);
}

int adm_status_ino(struct adm *a, uint16_t opcode, uint64_t ino,
                   struct status_report *st)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &req);
    rc = adm_status_call(a, opcode, &w, st);
    proto_wbuf_free(&w);
    return rc;
}

/* ---- Printing ----------------------------------------------------------- */

static const char *get_or(const struct status_report *st, const char *key,
                          const char *dflt)
{
    const char *v = status_report_get(st, key);

    return v ? v : dflt;
}

#define get_u64 status_report_u64

static bool is_session_cache_key(const char *key)
{
    if (strncmp(key, "cache.", 6) || !key[6])
        return false;
    for (const char *p = key + 6; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* The pairs the metadata section prints by name. */
static bool is_known(const char *key)
{
    static const char *known[] = {
        "meta.version", "meta.uptime_s", "meta.instance", "meta.data_dir",
        "meta.listen",  "sessions",      "inodes",        "dirs",
        "files",        "oplog",         "db_bytes",      "servers",
        "servers.up",   "chunks",        "orphans",
    };

    /* Printed in their own sections. */
    if (is_session_cache_key(key) || !strncmp(key, "chunks.", 7) ||
        !strncmp(key, "repair.", 7) || !strncmp(key, "rebalance.", 10) ||
        !strncmp(key, "servers.", 8) || !strncmp(key, "capacity", 8) ||
        !strncmp(key, "drain.", 6) || !strncmp(key, "scrub.", 6))
        return true;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(key, known[i]))
            return true;
    return false;
}

/* The scrubbers as the servers report them (docs/protocol.md §9.4): a
 * summary, then one line per server. */
static void print_scrub(const struct status_report *st)
{
    char b[32], ago[32];
    uint64_t end = get_u64(st, "scrub.last_end_s");
    time_t now = time(NULL);

    if (!status_report_get(st, "scrub.servers")) {
        printf("Scrub: no storage server has reported a pass yet "
               "(tessera scrub starts one)\n");
        return;
    }
    printf("Scrub: %" PRIu64 " of %" PRIu64 " servers scrubbing; %" PRIu64
           " of %" PRIu64 " chunks verified, %" PRIu64
           " damaged or unreadable copies found (each server's current or "
           "last pass); %" PRIu64 " passes done",
           get_u64(st, "scrub.running"), get_u64(st, "scrub.servers"),
           get_u64(st, "scrub.chunks"), get_u64(st, "scrub.total"),
           get_u64(st, "scrub.errors"), get_u64(st, "scrub.passes"));
    if (end > 0 && (uint64_t)now >= end) {
        adm_fmt_secs((uint64_t)now - end, ago, sizeof(ago));
        printf(", the last ended %s ago", ago);
    }
    printf("\n");
    for (size_t i = 0; i < st->nkv; i++) {
        const char *k = st->kv[i].key, *v = st->kv[i].value;
        uint64_t id;

        if (strncmp(k, "scrub.", 6) || !status_parse_u64(k + 6, &id))
            continue;
        adm_fmt_bytes(status_field_u64(v, "bytes"), b, sizeof(b));
        printf("  server %-4" PRIu64 " %-7s %" PRIu64 " of %" PRIu64
               " chunks (%s), %" PRIu64 " found\n",
               id, strncmp(v, "running", 7) ? "idle" : "running",
               status_field_u64(v, "chunks"), status_field_u64(v, "total"), b,
               status_field_u64(v, "errors"));
    }
}

static void print_tables(const struct adm *a, const struct status_report *st)
{
    char b1[32], b2[32];
    size_t down = 0;

    adm_fmt_secs(get_u64(st, "meta.uptime_s"), b1, sizeof(b1));
    adm_fmt_bytes(get_u64(st, "db_bytes"), b2, sizeof(b2));
    printf("Metadata server %s\n", a->meta);
    printf("  version   %s\n", get_or(st, "meta.version", "?"));
    printf("  instance  %s\n", get_or(st, "meta.instance", "?"));
    printf("  uptime    %s\n", b1);
    printf("  listen    %s\n", get_or(st, "meta.listen", "?"));
    printf("  data      %s\n", get_or(st, "meta.data_dir", "?"));
    printf("  inodes    %" PRIu64 " (%" PRIu64 " directories, %" PRIu64
           " files, %" PRIu64 " unlinked but open)\n",
           get_u64(st, "inodes"), get_u64(st, "dirs"), get_u64(st, "files"),
           get_u64(st, "orphans"));
    printf("  database  %s, %" PRIu64 " operations logged\n", b2,
           get_u64(st, "oplog"));
    printf("  sessions  %" PRIu64 "\n", get_u64(st, "sessions"));
    printf("  servers   %" PRIu64 " registered, %" PRIu64 " up\n",
           get_u64(st, "servers"), get_u64(st, "servers.up"));
    printf("  chunks    %" PRIu64 "\n", get_u64(st, "chunks"));
    for (size_t i = 0; i < st->nkv; i++)
        if (!is_known(st->kv[i].key))
            printf("  %-9s %s\n", st->kv[i].key, st->kv[i].value);

    printf("\nSessions (%zu)\n", st->nsessions);
    adm_print_sessions(stdout, st);
    printf("\nStorage servers: %zu registered, %" PRIu64 " up, %" PRIu64
           " suspect, %" PRIu64 " down, %" PRIu64 " draining\n",
           st->nservers, get_u64(st, "servers.up"),
           get_u64(st, "servers.suspect"), get_u64(st, "servers.down"),
           get_u64(st, "servers.draining"));
    adm_fmt_bytes(get_u64(st, "capacity"), b1, sizeof(b1));
    adm_fmt_bytes(get_u64(st, "capacity") - get_u64(st, "capacity.free"), b2,
                  sizeof(b2));
    printf("  capacity  %s, %s used, ", b1, b2);
    adm_fmt_bytes(get_u64(st, "capacity.free"), b1, sizeof(b1));
    printf("%s free (%" PRIu64 " disk%s: servers of one host with the same "
           "size count once)\n",
           b1, get_u64(st, "capacity.disks"),
           get_u64(st, "capacity.disks") == 1 ? "" : "s");
    adm_print_servers(st);

    printf("\nChunks: %" PRIu64 " total, %" PRIu64 " ok, %" PRIu64
           " under goal, %" PRIu64 " over goal, %" PRIu64 " missing\n",
           get_u64(st, "chunks.total"), get_u64(st, "chunks.ok"),
           get_u64(st, "chunks.under_goal"), get_u64(st, "chunks.over_goal"),
           get_u64(st, "chunks.missing"));
    adm_fmt_bytes(get_u64(st, "repair.bytes"), b1, sizeof(b1));
    printf("Repair: %" PRIu64 " copies in flight, %" PRIu64 " queued, %" PRIu64
           " done (%s), %" PRIu64 " failed, %" PRIu64
           " surplus dropped; limit %" PRIu64 " at once, %" PRIu64 " MiB/s\n",
           get_u64(st, "repair.inflight"), get_u64(st, "repair.queued"),
           get_u64(st, "repair.copied"), b1, get_u64(st, "repair.failed"),
           get_u64(st, "repair.dropped"), get_u64(st, "repair.rate"),
           get_u64(st, "repair.mbps"));
    print_scrub(st);
    if (get_u64(st, "rebalance.active"))
        printf("Rebalance: running, %" PRIu64 " chunks moved\n",
               get_u64(st, "rebalance.moved"));
    for (size_t i = 0; i < st->nkv; i++)
        if (!strncmp(st->kv[i].key, "drain.", 6))
            printf("Drain: server %s: %s replicas left\n", st->kv[i].key + 6,
                   st->kv[i].value);
    for (size_t i = 0; i < st->nservers; i++)
        down += !st->servers[i].up;
    if (down)
        printf("\nHealth: %zu of %zu storage servers not up\n", down,
               st->nservers);
    else if (!status_report_healthy(st))
        printf("\nHealth: chunks below their goal\n");
    else
        printf("\nHealth: ok\n");
}

/* Widest of @title and the @n strings @pick gives; at most 60, so one
 * huge name does not push every row off the screen. */
static int width(const char *title, const struct status_report *st,
                 const char *(*pick)(const struct status_session *s))
{
    size_t w = strlen(title);

    for (size_t i = 0; i < st->nsessions; i++) {
        size_t n = strlen(pick(&st->sessions[i]));
        if (n > w)
            w = n;
    }
    return (int)(w > 60 ? 60 : w);
}

static const char *name_of(const struct status_session *s)
{
    return s->name;
}

static const char *host_of(const struct status_session *s)
{
    return s->host;
}

void adm_print_sessions(FILE *f, const struct status_report *st)
{
    int wid = 2, wname = width("NAME", st, name_of);
    int whost = width("HOST", st, host_of);
    char idle[32];

    if (!st->nsessions)
        return;
    for (size_t i = 0; i < st->nsessions; i++) {
        int n = snprintf(NULL, 0, "%" PRIu64, st->sessions[i].id);
        if (n > wid)
            wid = n;
    }
    fprintf(f, "  %-*s  %-*s  %-*s  %8s  %s\n", wid, "ID", wname, "NAME", whost,
            "HOST", "IDLE",
            "CACHE (promises, breaks sent/answered/timed out, recalls)");
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct status_session *s = &st->sessions[i];
        struct status_cache c;
        char cache[128] = "no callbacks";

        if (status_report_cache(st, s->id, &c))
            snprintf(cache, sizeof(cache),
                     "%" PRIu64 " cached, breaks %" PRIu64 "/%" PRIu64
                     "/%" PRIu64 ", %" PRIu64 " recalls",
                     c.promises, c.sent, c.answered, c.timedout, c.recalls);
        adm_fmt_ms(s->idle_ms, idle, sizeof(idle));
        /* A name past the width still gets its whole text, then the
         * columns resume after it: nothing is cut. */
        fprintf(f, "  %-*" PRIu64 "  %-*s  %-*s  %8s  %s\n", wid, s->id, wname,
                s->name, whost, s->host, idle, cache);
    }
}

static void fmt_since(int64_t ns, char *buf, size_t size)
{
    struct timespec now;
    int64_t age;

    if (ns <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    age = ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec - ns) / 1000000000;
    adm_fmt_secs(age > 0 ? (uint64_t)age : 0, buf, size);
}

void adm_print_servers(const struct status_report *st)
{
    char b1[32], b2[32], b3[32], hb[32];

    if (!st->nservers)
        return;
    printf("  %-5s %-9s %-9s %-22s %8s %11s %11s %9s\n", "ID", "STATE", "SINCE",
           "ADDRESS", "CHUNKS", "USED", "FREE", "HEARTBEAT");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct status_server *s = &st->servers[i];

        fmt_since(s->since_ns, b3, sizeof(b3));
        adm_fmt_bytes(s->used, b1, sizeof(b1));
        adm_fmt_bytes(s->free, b2, sizeof(b2));
        if (s->hb_ms > 100000000)
            snprintf(hb, sizeof(hb), "never");
        else
            snprintf(hb, sizeof(hb), "%.1fs ago", (double)s->hb_ms / 1000);
        printf("  %-5u %-9s %-9s %-22s %8" PRIu64 " %11s %11s %9s\n", s->id,
               s->state[0] ? s->state : "?", b3, s->addr, s->replicas, b1, b2,
               hb);
    }
}

int adm_cmd_status(struct adm *a, int argc, char **argv)
{
    struct status_report st;
    struct rpc_reply rep;
    int rc;

    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "tessera: status takes no arguments\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = rpc_call(a->rpc, PROTO_MSG_STATUS_REQ, NULL, 0, &rep);
    if (rc < 0)
        return adm_fail(a, "status", rc);
    rc = status_report_parse(rep.payload, rep.len, &st);
    rpc_reply_free(&rep);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "status: bad reply", rc);
    }
    if (a->json) {
        struct metrics_buf b;

        metrics_buf_init(&b);
        status_report_json(&b, a->meta, &st);
        if (adm_print_buf(&b) < 0) {
            status_report_free(&st);
            return adm_fail(a, "status", -ENOMEM);
        }
    } else
        print_tables(a, &st);
    rc = status_report_healthy(&st) ? ADM_EXIT_OK : ADM_EXIT_FAIL;
    if (rc != ADM_EXIT_OK)
        fprintf(stderr, "tessera: status: needs attention (servers not up "
                        "or chunks below their goal)\n");
    status_report_free(&st);
    return rc;
}
