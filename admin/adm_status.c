/* adm_status.c: `tessera status`: ask metad for STATUS and print it as
 * tables (the metadata server, its sessions, the storage servers) or, with
 * --json, as one JSON object.
 *
 * The reply is text key/value pairs (see metadata/meta_srv_status.c).
 * "session.<id>" = "<name> <host> <idle_ms>ms" and "server.<id>" =
 * "<addr> up|down free=<bytes> chunks=<n>" become rows; every other pair
 * is printed as it comes, so new counters show up without a CLI change.
 *
 * Exit status: 0 when every registered storage server is up, 1 when one is
 * down, 2 when metad cannot be reached.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

/* "<addr> up|down free=<n> chunks=<n>".  Takes ownership of @value. */
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
        else if (i == 1)
            s->up = !strcmp(tok, "up");
        else if (!strncmp(tok, "free=", 5))
            adm_parse_u64(tok + 5, &s->free);
        else if (!strncmp(tok, "chunks=", 7))
            adm_parse_u64(tok + 7, &s->chunks);
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
    return true;
}

/* ---- Printing ----------------------------------------------------------- */

static const char *get_or(const struct adm_status *st, const char *key,
                          const char *dflt)
{
    const char *v = adm_status_get(st, key);

    return v ? v : dflt;
}

static uint64_t get_u64(const struct adm_status *st, const char *key)
{
    const char *v = adm_status_get(st, key);
    uint64_t n = 0;

    if (v)
        adm_parse_u64(v, &n);
    return n;
}

/* The pairs the metadata section prints by name. */
static bool is_known(const char *key)
{
    static const char *known[] = {
        "meta.version", "meta.uptime_s", "meta.instance", "meta.data_dir",
        "meta.listen",  "sessions",      "inodes",        "dirs",
        "files",        "oplog",         "db_bytes",      "servers",
        "servers.up",   "chunks",
    };

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
           " files)\n",
           get_u64(st, "inodes"), get_u64(st, "dirs"), get_u64(st, "files"));
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
        printf("  %-20s %-24s %-24s %s\n", "ID", "NAME", "HOST", "IDLE");
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct adm_session *s = &st->sessions[i];

        printf("  %-20" PRIu64 " %-24s %-24s %" PRIu64 " ms\n", s->id, s->name,
               s->host, s->idle_ms);
    }

    printf("\nStorage servers (%zu)\n", st->nservers);
    if (st->nservers)
        printf("  %-6s %-24s %-6s %-12s %s\n", "ID", "ADDRESS", "STATE", "FREE",
               "CHUNKS");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct adm_server *s = &st->servers[i];

        adm_fmt_bytes(s->free, b1, sizeof(b1));
        printf("  %-6u %-24s %-6s %-12s %" PRIu64 "\n", s->id, s->addr,
               s->up ? "up" : "DOWN", b1, s->chunks);
        down += !s->up;
    }
    if (down)
        printf("\nHealth: %zu of %zu storage servers down\n", down,
               st->nservers);
    else
        printf("\nHealth: ok\n");
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
        printf(", \"idle_ms\": %" PRIu64 "}", s->idle_ms);
    }
    printf("%s],\n  \"server_list\": [", st->nsessions ? "\n  " : "");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct adm_server *s = &st->servers[i];

        printf("%s\n    {\"id\": %u, \"addr\": ", i ? "," : "", s->id);
        adm_json_str(stdout, s->addr, strlen(s->addr));
        printf(", \"up\": %s, \"free\": %" PRIu64 ", \"chunks\": %" PRIu64 "}",
               s->up ? "true" : "false", s->free, s->chunks);
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
        fprintf(stderr, "tessera: status: storage servers down\n");
    adm_status_free(&st);
    return rc;
}
