/* adm_status.c: `tessera status`: ask metad for STATUS and print it as
 * tables (the metadata server, its sessions, the storage servers) or, with
 * --json, as one JSON object.
 *
 * The reply is text key/value pairs (see metadata/meta_srv_status.c).
 * "session.<id>" = "<name> <host> <idle_ms>ms" and "server.<id>" =
 * "<addr> up|down free=<bytes> chunks=<n>" become rows, and
 * "cache.<id>" = "promises=<n> sent=<n> answered=<n> timedout=<n>
 * recalls=<n>" (callback promises and breaks, docs/caching.md) joins its
 * session's row; every other pair is printed as it comes, so new counters
 * show up without a CLI change.
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

/* ---- Parsing ------------------------------------------------------------ */

static char *dup_str(const struct proto_str *s)
{
    char *p = malloc((size_t)s->len + 1);

    if (p) {
        memcpy(p, s->p, s->len);
        p[s->len] = '\0';
    }
    return p;
}

/* "<name> <host> <idle>ms", the name possibly with spaces: split from the
 * right.  Takes ownership of @value. */
static int parse_session(struct adm_session *s, uint64_t id, char *value)
{
    char *sp, *host = NULL;
    size_t n;

    memset(s, 0, sizeof(*s));
    s->id = id;
    sp = strrchr(value, ' ');
    if (sp) {
        char num[32];

        n = strlen(sp + 1);
        if (n > 2 && n - 2 < sizeof(num) && !strcmp(sp + 1 + n - 2, "ms")) {
            memcpy(num, sp + 1, n - 2);
            num[n - 2] = '\0';
            if (adm_parse_u64(num, &s->idle_ms))
                *sp = '\0';
        }
    }
    sp = strrchr(value, ' ');
    if (sp) {
        *sp = '\0';
        host = strdup(sp + 1);
    } else {
        host = strdup("");
    }
    s->name = value;
    s->host = host;
    return host ? 0 : -ENOMEM;
}

/* "<addr> <state> free=<n> chunks=<n> [capacity=<n> used=<n>
 * replicas=<n> since=<ns> hb_ms=<n> draining=1]".  Takes ownership of
 * @value. */
static int parse_server(struct adm_server *s, uint64_t id, char *value)
{
    char *save = NULL, *tok;
    int i = 0;

    memset(s, 0, sizeof(*s));
    s->id = (uint32_t)id;
    for (tok = strtok_r(value, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save), i++) {
        if (i == 0)
            s->addr = strdup(tok);
        else if (i == 1) {
            snprintf(s->state, sizeof(s->state), "%s", tok);
            s->up = !strcmp(tok, "up") || !strcmp(tok, "draining");
            s->draining = !strcmp(tok, "draining");
        } else if (!strncmp(tok, "free=", 5))
            adm_parse_u64(tok + 5, &s->free);
        else if (!strncmp(tok, "chunks=", 7))
            adm_parse_u64(tok + 7, &s->chunks);
        else if (!strncmp(tok, "capacity=", 9))
            adm_parse_u64(tok + 9, &s->capacity);
        else if (!strncmp(tok, "used=", 5))
            adm_parse_u64(tok + 5, &s->used);
        else if (!strncmp(tok, "replicas=", 9))
            adm_parse_u64(tok + 9, &s->replicas);
        else if (!strncmp(tok, "hb_ms=", 6))
            adm_parse_u64(tok + 6, &s->hb_ms);
        else if (!strncmp(tok, "since=", 6)) {
            uint64_t v = 0;

            adm_parse_u64(tok + 6, &v);
            s->since_ns = (int64_t)v;
        } else if (!strcmp(tok, "draining=1"))
            s->draining = true;
    }
    free(value);
    if (!s->addr)
        s->addr = strdup("");
    return s->addr ? 0 : -ENOMEM;
}

static int grow(void **p, size_t n, size_t size)
{
    void *np = realloc(*p, (n + 1) * size);

    if (!np)
        return -ENOMEM;
    *p = np;
    return 0;
}

/* File one pair.  Takes ownership of @key and @value. */
static int add_pair(struct adm_status *st, char *key, char *value)
{
    uint64_t id;
    int rc;

    if (!strncmp(key, "session.", 8) && adm_parse_u64(key + 8, &id)) {
        free(key);
        rc = grow((void **)&st->sessions, st->nsessions, sizeof(*st->sessions));
        if (rc < 0) {
            free(value);
            return rc;
        }
        rc = parse_session(&st->sessions[st->nsessions++], id, value);
        return rc;
    }
    if (!strncmp(key, "server.", 7) && adm_parse_u64(key + 7, &id) &&
        id <= UINT32_MAX) {
        free(key);
        rc = grow((void **)&st->servers, st->nservers, sizeof(*st->servers));
        if (rc < 0) {
            free(value);
            return rc;
        }
        return parse_server(&st->servers[st->nservers++], id, value);
    }
    rc = grow((void **)&st->kv, st->nkv, sizeof(*st->kv));
    if (rc < 0) {
        free(key);
        free(value);
        return rc;
    }
    st->kv[st->nkv].key = key;
    st->kv[st->nkv].value = value;
    st->nkv++;
    return 0;
}

int adm_status_parse(const uint8_t *p, size_t n, struct adm_status *st)
{
    struct proto_status_rep rep;
    struct proto_kv_iter it;
    struct proto_str k, v;
    int rc;

    memset(st, 0, sizeof(*st));
    rc = proto_status_rep_decode(p, n, &rep);
    if (rc < 0)
        return rc;
    proto_kv_iter_init(&it, &rep);
    while (proto_kv_next(&it, &k, &v)) {
        char *key = dup_str(&k), *value = dup_str(&v);

        if (!key || !value) {
            free(key);
            free(value);
            return -ENOMEM;
        }
        rc = add_pair(st, key, value);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void adm_status_free(struct adm_status *st)
{
    for (size_t i = 0; i < st->nkv; i++) {
        free(st->kv[i].key);
        free(st->kv[i].value);
    }
    for (size_t i = 0; i < st->nsessions; i++) {
        free(st->sessions[i].name);
        free(st->sessions[i].host);
    }
    for (size_t i = 0; i < st->nservers; i++)
        free(st->servers[i].addr);
    free(st->kv);
    free(st->sessions);
    free(st->servers);
    memset(st, 0, sizeof(*st));
}

const char *adm_status_get(const struct adm_status *st, const char *key)
{
    for (size_t i = 0; i < st->nkv; i++)
        if (!strcmp(st->kv[i].key, key))
            return st->kv[i].value;
    return NULL;
}

bool adm_status_healthy(const struct adm_status *st)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (!st->servers[i].up)
            return false;
    return adm_status_u64(st, "chunks.under_goal") == 0 &&
           adm_status_u64(st, "chunks.missing") == 0;
}

uint64_t adm_status_u64(const struct adm_status *st, const char *key)
{
    const char *v = adm_status_get(st, key);
    uint64_t n = 0;

    if (v)
        adm_parse_u64(v, &n);
    return n;
}

const struct adm_server *adm_status_server(const struct adm_status *st,
                                           uint32_t id)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (st->servers[i].id == id)
            return &st->servers[i];
    return NULL;
}

int adm_status_call(struct adm *a, uint16_t opcode,
                    const struct proto_wbuf *body, struct adm_status *st)
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
    rc = adm_status_parse(rep.payload, rep.len, st);
    rpc_reply_free(&rep);
    return rc;
}

int adm_status_fetch(struct adm *a, struct adm_status *st)
{
    return adm_status_call(a, PROTO_MSG_STATUS_REQ, NULL, st);
}

int adm_status_ino(struct adm *a, uint16_t opcode, uint64_t ino,
                   struct adm_status *st)
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

static const char *get_or(const struct adm_status *st, const char *key,
                          const char *dflt)
{
    const char *v = adm_status_get(st, key);

    return v ? v : dflt;
}

#define get_u64 adm_status_u64

/* The cache.<id> line of session @id, or NULL for a session without
 * callbacks. */
static const char *cache_of(const struct adm_status *st, uint64_t id)
{
    char key[48];

    snprintf(key, sizeof(key), "cache.%" PRIu64, id);
    return adm_status_get(st, key);
}

/* Counter @name ("sent") in a cache line, 0 when absent. */
static uint64_t cache_u64(const char *line, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = line; p && *p; p = strchr(p, ' ')) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, name, n) && p[n] == '=')
            return strtoull(p + n + 1, NULL, 10);
    }
    return 0;
}

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
    if (is_session_cache_key(key) ||!strncmp(key, "chunks.", 7) || !strncmp(key, "repair.", 7) ||
        !strncmp(key, "rebalance.", 10) || !strncmp(key, "servers.", 8) ||
        !strncmp(key, "capacity", 8) || !strncmp(key, "drain.", 6) ||
        !strncmp(key, "scrub.", 6))
        return true;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(key, known[i]))
            return true;
    return false;
}

static void print_tables(const struct adm *a, const struct adm_status *st)
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
    if (st->nsessions)
        printf("  %-20s %-24s %-24s %-10s %s\n", "ID", "NAME", "HOST", "IDLE",
               "CACHE (promises, breaks sent/answered/timed out, recalls)");
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct adm_session *s = &st->sessions[i];
        const char *cl = cache_of(st, s->id);
        char cache[128] = "no callbacks";

        if (cl)
            snprintf(cache, sizeof(cache),
                     "%" PRIu64 " cached, breaks %" PRIu64 "/%" PRIu64
                     "/%" PRIu64 ", %" PRIu64 " recalls",
                     cache_u64(cl, "promises"), cache_u64(cl, "sent"),
                     cache_u64(cl, "answered"), cache_u64(cl, "timedout"),
                     cache_u64(cl, "recalls"));
        printf("  %-20" PRIu64 " %-24s %-24s %-10" PRIu64 " %s\n", s->id,
               s->name, s->host, s->idle_ms, cache);
    }

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
    printf("%s free\n", b1);
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
    else if (!adm_status_healthy(st))
        printf("\nHealth: chunks below their goal\n");
    else
        printf("\nHealth: ok\n");
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

void adm_print_servers(const struct adm_status *st)
{
    char b1[32], b2[32], b3[32], hb[32];

    if (!st->nservers)
        return;
    printf("  %-5s %-9s %-9s %-22s %8s %11s %11s %9s\n", "ID", "STATE",
           "SINCE", "ADDRESS", "CHUNKS", "USED", "FREE", "HEARTBEAT");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct adm_server *s = &st->servers[i];

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

/* A number when the whole value is decimal digits, else a string. */
static void json_value(const char *v)
{
    uint64_t n;

    if (adm_parse_u64(v, &n))
        printf("%" PRIu64, n);
    else
        adm_json_str(stdout, v, strlen(v));
}

static void print_json(const struct adm *a, const struct adm_status *st)
{
    bool first;

    printf("{\n  \"address\": ");
    adm_json_str(stdout, a->meta, strlen(a->meta));
    printf(",\n  \"healthy\": %s,\n  \"meta\": {",
           adm_status_healthy(st) ? "true" : "false");
    first = true;
    for (size_t i = 0; i < st->nkv; i++) {
        const char *k = st->kv[i].key;

        if (strncmp(k, "meta.", 5) != 0)
            continue;
        printf("%s\n    ", first ? "" : ",");
        adm_json_str(stdout, k + 5, strlen(k + 5));
        printf(": ");
        json_value(st->kv[i].value);
        first = false;
    }
    printf("\n  }");
    for (size_t i = 0; i < st->nkv; i++) {
        const char *k = st->kv[i].key;

        if (!strncmp(k, "meta.", 5))
            continue;
        printf(",\n  ");
        adm_json_str(stdout, k, strlen(k));
        printf(": ");
        json_value(st->kv[i].value);
    }
    printf(",\n  \"session_list\": [");
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct adm_session *s = &st->sessions[i];

        printf("%s\n    {\"id\": %" PRIu64 ", \"name\": ", i ? "," : "", s->id);
        adm_json_str(stdout, s->name, strlen(s->name));
        printf(", \"host\": ");
        adm_json_str(stdout, s->host, strlen(s->host));
        printf(", \"idle_ms\": %" PRIu64, s->idle_ms);
        const char *cl = cache_of(st, s->id);
        if (cl)
            printf(", \"callbacks\": true, \"cached_files\": %" PRIu64
                   ", \"breaks_sent\": %" PRIu64
                   ", \"breaks_answered\": %" PRIu64
                   ", \"breaks_timedout\": %" PRIu64
                   ", \"recalls\": %" PRIu64,
                   cache_u64(cl, "promises"), cache_u64(cl, "sent"),
                   cache_u64(cl, "answered"), cache_u64(cl, "timedout"),
                   cache_u64(cl, "recalls"));
        else
            printf(", \"callbacks\": false");
        printf("}");
    }
    printf("%s],\n  \"server_list\": [", st->nsessions ? "\n  " : "");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct adm_server *s = &st->servers[i];

        printf("%s\n    {\"id\": %u, \"addr\": ", i ? "," : "", s->id);
        adm_json_str(stdout, s->addr, strlen(s->addr));
        printf(", \"up\": %s, \"state\": \"%s\", \"since_ns\": %" PRId64
               ", \"heartbeat_ms\": %" PRIu64 ", \"free\": %" PRIu64
               ", \"capacity\": %" PRIu64 ", \"used\": %" PRIu64
               ", \"replicas\": %" PRIu64 ", \"chunks\": %" PRIu64 "}",
               s->up ? "true" : "false", s->state, s->since_ns, s->hb_ms,
               s->free, s->capacity, s->used, s->replicas, s->chunks);
    }
    printf("%s]\n}\n", st->nservers ? "\n  " : "");
}

int adm_cmd_status(struct adm *a, int argc, char **argv)
{
    struct adm_status st;
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
    rc = adm_status_parse(rep.payload, rep.len, &st);
    rpc_reply_free(&rep);
    if (rc < 0) {
        adm_status_free(&st);
        return adm_fail(a, "status: bad reply", rc);
    }
    if (a->json)
        print_json(a, &st);
    else
        print_tables(a, &st);
    rc = adm_status_healthy(&st) ? ADM_EXIT_OK : ADM_EXIT_FAIL;
    if (rc != ADM_EXIT_OK)
        fprintf(stderr, "tessera: status: needs attention (servers not up "
                        "or chunks below their goal)\n");
    adm_status_free(&st);
    return rc;
}
