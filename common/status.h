/* status.h: the key/value reports of metad (STATUS_REP, the body of
 * STATUS, ADMIN_ACTION, IMAGE_INFO and IMAGE_LIST replies) taken apart,
 * and the STATUS report as the JSON document both `tessera status --json`
 * and metad's /api/status print.
 *
 * The pairs are built in metadata/meta_srv_status.c; their layout is
 * described there.  This module only parses and formats: no I/O.
 */
#ifndef TESSERA_STATUS_H
#define TESSERA_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct status_kv {
    char *key, *value;
};

struct status_session {
    uint64_t id;
    char *name, *host;
    uint64_t idle_ms;
};

struct status_server {
    uint32_t id;
    char *addr;
    char state[16]; /* up, suspect, down, draining */
    bool up;        /* up or draining: serving */
    bool draining;
    uint64_t free, chunks, capacity, used, replicas;
    int64_t since_ns; /* wall clock of the last state change, 0 unknown */
    uint64_t hb_ms;   /* heartbeat age */
};

struct status_report {
    struct status_kv *kv; /* every other pair, in reply order */
    size_t nkv;
    struct status_session *sessions;
    size_t nsessions;
    struct status_server *servers;
    size_t nservers;
};

/* Parse a STATUS_REP body.  Caller owns *st (also on error): release it
 * with status_report_free().  -EPROTO for a malformed body, -ENOMEM. */
int status_report_parse(const uint8_t *p, size_t n, struct status_report *st);
void status_report_free(struct status_report *st);
/* Value of @key, or NULL.  Returns a pointer owned by @st. */
const char *status_report_get(const struct status_report *st, const char *key);
/* A numeric value of @key, 0 when absent. */
uint64_t status_report_u64(const struct status_report *st, const char *key);
/* True when every registered storage server is up (or draining) and no
 * chunk is under its goal or missing. */
bool status_report_healthy(const struct status_report *st);
/* The server with id @id, or NULL.  Returns a pointer owned by @st. */
const struct status_server *status_report_server(const struct status_report *st,
                                                 uint32_t id);

/* The callback counters of session @id ("cache.<id>" = "promises=<n>
 * sent=<n> answered=<n> timedout=<n> recalls=<n>", docs/caching.md). */
struct status_cache {
    uint64_t promises, sent, answered, timedout, recalls;
};
/* Fill *c for session @id: its line (owned by @st), or NULL (and *c
 * zeroed) for a session without callbacks. */
const char *status_report_cache(const struct status_report *st, uint64_t id,
                                struct status_cache *c);

/* The STATUS report @st as one JSON object, @address (borrowed) being the
 * metadata server it came from: "address", "healthy", "meta" {...}, every
 * other pair by its key (decimal values as numbers), "session_list" and
 * "server_list".  Written at the end of @out. */
void status_report_json(struct metrics_buf *out, const char *address,
                        const struct status_report *st);

/* Field @name of a value made of "name=<n>" words ("sent" in a cache.<id>
 * line, "chunks" in a scrub.<id> line), 0 when absent. */
uint64_t status_field_u64(const char *line, const char *name);
/* Parse a whole decimal string; false when @s is not one. */
bool status_parse_u64(const char *s, uint64_t *out);
/* Write @n bytes at @s as a JSON string literal (quotes included). */
void status_json_str(struct metrics_buf *out, const char *s, size_t n);

#endif
