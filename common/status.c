/* status.c: metad's key/value reports taken apart (status.h), and the
 * STATUS report written as JSON, the one document `tessera status --json`
 * prints and metad serves at /api/status.
 *
 * "session.<id>" = "<name> <host> <idle_ms>ms" and "server.<id>" =
 * "<addr> up|down free=<bytes> chunks=<n> ..." become rows; every other
 * pair is kept as it comes, in order, so new counters reach the JSON
 * without a change here.  The layout of the pairs is metadata/
 * meta_srv_status.c's.
 */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

bool status_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

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
static int parse_session(struct status_session *s, uint64_t id, char *value)
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
            if (status_parse_u64(num, &s->idle_ms))
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
static int parse_server(struct status_server *s, uint64_t id, char *value)
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
            status_parse_u64(tok + 5, &s->free);
        else if (!strncmp(tok, "chunks=", 7))
            status_parse_u64(tok + 7, &s->chunks);
        else if (!strncmp(tok, "capacity=", 9))
            status_parse_u64(tok + 9, &s->capacity);
        else if (!strncmp(tok, "used=", 5))
            status_parse_u64(tok + 5, &s->used);
        else if (!strncmp(tok, "replicas=", 9))
            status_parse_u64(tok + 9, &s->replicas);
        else if (!strncmp(tok, "hb_ms=", 6))
            status_parse_u64(tok + 6, &s->hb_ms);
        else if (!strncmp(tok, "since=", 6)) {
            uint64_t v = 0;

            status_parse_u64(tok + 6, &v);
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
static int add_pair(struct status_report *st, char *key, char *value)
{
    uint64_t id;
    int rc;

    if (!strncmp(key, "session.", 8) && status_parse_u64(key + 8, &id)) {
        free(key);
        rc = grow((void **)&st->sessions, st->nsessions, sizeof(*st->sessions));
        if (rc < 0) {
            free(value);
            return rc;
        }
        rc = parse_session(&st->sessions[st->nsessions++], id, value);
        return rc;
    }
    if (!strncmp(key, "server.", 7) && status_parse_u64(key + 7, &id) &&
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

int status_report_parse(const uint8_t *p, size_t n, struct status_report *st)
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

void status_report_free(struct status_report *st)
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

const char *status_report_get(const struct status_report *st, const char *key)
{
    for (size_t i = 0; i < st->nkv; i++)
        if (!strcmp(st->kv[i].key, key))
            return st->kv[i].value;
    return NULL;
}

bool status_report_healthy(const struct status_report *st)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (!st->servers[i].up)
            return false;
    return status_report_u64(st, "chunks.under_goal") == 0 &&
           status_report_u64(st, "chunks.missing") == 0;
}

uint64_t status_report_u64(const struct status_report *st, const char *key)
{
    const char *v = status_report_get(st, key);
    uint64_t n = 0;

    if (v)
        status_parse_u64(v, &n);
    return n;
}

const struct status_server *status_report_server(const struct status_report *st,
                                                 uint32_t id)
{
    for (size_t i = 0; i < st->nservers; i++)
        if (st->servers[i].id == id)
            return &st->servers[i];
    return NULL;
}

/* ---- JSON ---------------------------------------------------------------- */

void status_json_str(struct metrics_buf *out, const char *s, size_t n)
{
    metrics_buf_printf(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        switch (ch) {
        case '"':
            metrics_buf_printf(out, "\\\"");
            break;
        case '\\':
            metrics_buf_printf(out, "\\\\");
            break;
        case '\n':
            metrics_buf_printf(out, "\\n");
            break;
        case '\r':
            metrics_buf_printf(out, "\\r");
            break;
        case '\t':
            metrics_buf_printf(out, "\\t");
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                metrics_buf_printf(out, "\\u%04x", ch);
            else
                metrics_buf_printf(out, "%c", ch);
        }
    }
    metrics_buf_printf(out, "\"");
}

static void json_cstr(struct metrics_buf *out, const char *s)
{
    status_json_str(out, s, strlen(s));
}

/* A number when the whole value is decimal digits, else a string. */
static void json_value(struct metrics_buf *out, const char *v)
{
    uint64_t n;

    if (status_parse_u64(v, &n))
        metrics_buf_printf(out, "%" PRIu64, n);
    else
        json_cstr(out, v);
}

uint64_t status_field_u64(const char *line, const char *name)
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

const char *status_report_cache(const struct status_report *st, uint64_t id,
                                struct status_cache *c)
{
    char key[48];
    const char *line;

    snprintf(key, sizeof(key), "cache.%" PRIu64, id);
    line = status_report_get(st, key);
    memset(c, 0, sizeof(*c));
    if (!line)
        return NULL;
    c->promises = status_field_u64(line, "promises");
    c->sent = status_field_u64(line, "sent");
    c->answered = status_field_u64(line, "answered");
    c->timedout = status_field_u64(line, "timedout");
    c->recalls = status_field_u64(line, "recalls");
    return line;
}

static void json_sessions(struct metrics_buf *out,
                          const struct status_report *st)
{
    metrics_buf_printf(out, ",\n  \"session_list\": [");
    for (size_t i = 0; i < st->nsessions; i++) {
        const struct status_session *s = &st->sessions[i];
        struct status_cache c;

        metrics_buf_printf(out, "%s\n    {\"id\": %" PRIu64 ", \"name\": ",
                           i ? "," : "", s->id);
        json_cstr(out, s->name);
        metrics_buf_printf(out, ", \"host\": ");
        json_cstr(out, s->host);
        metrics_buf_printf(out, ", \"idle_ms\": %" PRIu64, s->idle_ms);
        if (status_report_cache(st, s->id, &c))
            metrics_buf_printf(
                out,
                ", \"callbacks\": true, \"cached_files\": %" PRIu64
                ", \"breaks_sent\": %" PRIu64 ", \"breaks_answered\": %" PRIu64
                ", \"breaks_timedout\": %" PRIu64 ", \"recalls\": %" PRIu64,
                c.promises, c.sent, c.answered, c.timedout, c.recalls);
        else
            metrics_buf_printf(out, ", \"callbacks\": false");
        metrics_buf_printf(out, "}");
    }
    metrics_buf_printf(out, "%s]", st->nsessions ? "\n  " : "");
}

static void json_servers(struct metrics_buf *out,
                         const struct status_report *st)
{
    metrics_buf_printf(out, ",\n  \"server_list\": [");
    for (size_t i = 0; i < st->nservers; i++) {
        const struct status_server *s = &st->servers[i];

        metrics_buf_printf(out, "%s\n    {\"id\": %u, \"addr\": ", i ? "," : "",
                           s->id);
        json_cstr(out, s->addr);
        metrics_buf_printf(
            out, ", \"up\": %s, \"state\": ", s->up ? "true" : "false");
        json_cstr(out, s->state);
        metrics_buf_printf(out,
                           ", \"since_ns\": %" PRId64
                           ", \"heartbeat_ms\": %" PRIu64 ", \"free\": %" PRIu64
                           ", \"capacity\": %" PRIu64 ", \"used\": %" PRIu64
                           ", \"replicas\": %" PRIu64 ", \"chunks\": %" PRIu64
                           "}",
                           s->since_ns, s->hb_ms, s->free, s->capacity, s->used,
                           s->replicas, s->chunks);
    }
    metrics_buf_printf(out, "%s]", st->nservers ? "\n  " : "");
}

void status_report_json(struct metrics_buf *out, const char *address,
                        const struct status_report *st)
{
    bool first = true;

    metrics_buf_printf(out, "{\n  \"address\": ");
    json_cstr(out, address);
    metrics_buf_printf(out, ",\n  \"healthy\": %s,\n  \"meta\": {",
                       status_report_healthy(st) ? "true" : "false");
    for (size_t i = 0; i < st->nkv; i++) {
        const char *k = st->kv[i].key;

        if (strncmp(k, "meta.", 5) != 0)
            continue;
        metrics_buf_printf(out, "%s\n    ", first ? "" : ",");
        json_cstr(out, k + 5);
        metrics_buf_printf(out, ": ");
        json_value(out, st->kv[i].value);
        first = false;
    }
    metrics_buf_printf(out, "\n  }");
    for (size_t i = 0; i < st->nkv; i++) {
        const char *k = st->kv[i].key;

        if (!strncmp(k, "meta.", 5))
            continue;
        metrics_buf_printf(out, ",\n  ");
        json_cstr(out, k);
        metrics_buf_printf(out, ": ");
        json_value(out, st->kv[i].value);
    }
    json_sessions(out, st);
    json_servers(out, st);
    metrics_buf_printf(out, "\n}\n");
}
