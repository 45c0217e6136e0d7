/* adm_fileinfo.c: `tessera fileinfo PATH`: where a file's data lives.
 *
 * Resolves PATH (a namespace path, or a path inside a mount on this host,
 * adm_path.c) one component at a time from the root (inode 1) with
 * LOOKUP as uid 0, then walks the file's chunk slots with CHUNK_LOCATE
 * (PROTO_LOCATE_MAX slots per request) and prints every allocated chunk:
 * index, id (16 hex digits), version and replicas ("server <id> <addr>")
 * in chain order, each with its server's state from STATUS.  Holes are not
 * listed.  `tessera checkfile PATH` walks the same way and prints, per
 * chunk, the copies that count (on servers up or draining) against the
 * file's goal, then a summary; it exits 1 when a chunk is under its goal
 * or missing.  Nothing is changed: LOOKUP, CHUNK_LOCATE and STATUS are
 * reads.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Look @name up under @parent as root.  Fills *attr. */
static int lookup(struct adm *a, uint64_t parent, const char *name,
                  struct proto_attr *attr)
{
    struct proto_lookup_req req;
    struct proto_attr_rep rep;
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    memset(&req, 0, sizeof(req));
    req.parent = parent;
    req.name.p = name;
    req.name.len = (uint32_t)strlen(name);
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &req);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_LOOKUP_REQ, &w, &r, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *attr = rep.attr;
    rpc_reply_free(&r);
    return 0;
}

static int getattr(struct adm *a, uint64_t ino, struct proto_attr *attr)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_attr_rep rep;
    struct rpc_reply r;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &req);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_GETATTR_REQ, &w, &r, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *attr = rep.attr;
    rpc_reply_free(&r);
    return 0;
}

/* Resolve namespace path @path from the root.  Components "" and "." are
 * skipped. */
static int resolve_ns(struct adm *a, const char *path, struct proto_attr *attr)
{
    char *copy = strdup(path), *save = NULL, *name;
    int rc;

    if (!copy)
        return -ENOMEM;
    rc = getattr(a, 1, attr);
    for (name = strtok_r(copy, "/", &save); rc == 0 && name;
         name = strtok_r(NULL, "/", &save)) {
        if (!strcmp(name, "."))
            continue;
        if (!S_ISDIR(attr->mode)) {
            rc = -ENOTDIR;
            break;
        }
        rc = lookup(a, attr->ino, name, attr);
    }
    free(copy);
    return rc;
}

int adm_resolve(struct adm *a, const char *path, struct proto_attr *attr)
{
    char ns[4096];
    uint64_t ino = 0;
    int rc = adm_path_local(path, ns, sizeof(ns), &ino);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return resolve_ns(a, path, attr);
    rc = resolve_ns(a, ns, attr);
    if (rc == 0 && attr->ino != ino) {
        fprintf(stderr,
                "tessera: %s is on a Tessera mount of another metadata "
                "server than %s (use --meta)\n",
                path, a->meta);
        return -EXDEV;
    }
    return rc;
}

/* What one walk over a file's chunks prints and counts. */
struct walk {
    bool check;                     /* checkfile, else fileinfo */
    const struct status_report *st; /* server states, may be empty */
    uint32_t goal;
    uint64_t found, ok, under, over, missing;
};

static const char *state_of(const struct walk *wk, uint32_t id)
{
    const struct status_server *s = status_report_server(wk->st, id);

    return s && s->state[0] ? s->state : "unknown";
}

/* Copies that count: on servers up or draining (CHUNK_LOCATE leaves down
 * ones out). */
static uint32_t live_copies(const struct walk *wk,
                            const struct proto_chunk_loc *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->nreplicas; i++) {
        const struct status_server *s =
            status_report_server(wk->st, c->replicas[i].server_id);

        n += s && s->up;
    }
    return n;
}

static void count(struct walk *wk, const struct proto_chunk_loc *c)
{
    uint32_t n = live_copies(wk, c);

    if (n == 0)
        wk->missing++;
    else if (n < wk->goal)
        wk->under++;
    else if (n > wk->goal)
        wk->over++;
    else
        wk->ok++;
}

static void print_chunk_text(const struct walk *wk,
                             const struct proto_chunk_loc *c)
{
    uint32_t n = live_copies(wk, c);

    printf("  %-8" PRIu64 " %016" PRIx64 "  %-8" PRIu64 " ", c->index,
           c->chunk_id, c->version);
    if (wk->check) {
        printf("%u/%u %s\n", n, wk->goal,
               n == 0         ? "MISSING"
               : n < wk->goal ? "UNDER GOAL"
               : n > wk->goal ? "over goal"
                              : "ok");
        return;
    }
    if (c->nreplicas == 0)
        printf("(no live replicas)");
    for (uint32_t i = 0; i < c->nreplicas; i++)
        printf("%sserver %u %.*s (%s)", i ? ", " : "", c->replicas[i].server_id,
               (int)c->replicas[i].addr.len, c->replicas[i].addr.p,
               state_of(wk, c->replicas[i].server_id));
    printf("\n");
}

static void print_chunk_json(const struct walk *wk,
                             const struct proto_chunk_loc *c, bool first)
{
    printf("%s\n    {\"index\": %" PRIu64 ", \"id\": \"%016" PRIx64
           "\", \"version\": %" PRIu64 ", \"copies\": %u, \"replicas\": [",
           first ? "" : ",", c->index, c->chunk_id, c->version,
           live_copies(wk, c));
    for (uint32_t i = 0; i < c->nreplicas; i++) {
        printf("%s{\"server\": %u, \"addr\": ", i ? ", " : "",
               c->replicas[i].server_id);
        adm_json_str(stdout, c->replicas[i].addr.p, c->replicas[i].addr.len);
        printf(", \"state\": \"%s\"}", state_of(wk, c->replicas[i].server_id));
    }
    printf("]}");
}

/* Print every allocated chunk in the slots the file's size spans (metad
 * answers CHUNK_LOCATE only within the size).  Returns 0 or -errno. */
static int print_chunks(struct adm *a, const struct proto_attr *attr,
                        struct walk *wk)
{
    uint64_t nslots =
        attr->size / PROTO_CHUNK_SIZE + (attr->size % PROTO_CHUNK_SIZE != 0);
    uint64_t first = 0;
    int rc = 0;

    if (!a->json && nslots)
        printf("  %-8s %-16s  %-8s %s\n", "INDEX", "CHUNK", "VERSION",
               wk->check ? "COPIES/GOAL" : "REPLICAS");
    while (first < nslots) {
        struct proto_chunk_locate_req req = {.ino = attr->ino, .first = first};
        struct proto_chunk_locate_rep rep;
        struct proto_chunk_loc_iter it;
        struct proto_chunk_loc loc;
        struct proto_wbuf w;
        struct rpc_reply r;

        req.count = nslots - first > PROTO_LOCATE_MAX
                        ? PROTO_LOCATE_MAX
                        : (uint32_t)(nslots - first);
        proto_wbuf_init(&w);
        proto_chunk_locate_req_encode(&w, &req);
        rc = rpc_call_msg(a->rpc, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &r, &rep);
        proto_wbuf_free(&w);
        if (rc < 0)
            break;
        proto_chunk_loc_iter_init(&it, &rep);
        while (proto_chunk_loc_next(&it, &loc)) {
            if (loc.chunk_id == 0)
                continue;
            count(wk, &loc);
            if (a->json)
                print_chunk_json(wk, &loc, wk->found == 0);
            else
                print_chunk_text(wk, &loc);
            wk->found++;
        }
        rpc_reply_free(&r);
        if (rep.count == 0) /* the file shrank meanwhile */
            break;
        first += rep.count;
    }
    if (!a->json)
        printf("  %" PRIu64 " of %" PRIu64 " chunk slots allocated\n",
               wk->found, nslots);
    return rc;
}

/* fileinfo and checkfile: the same walk, printed two ways. */
static int file_cmd(struct adm *a, int argc, char **argv, bool check)
{
    struct proto_attr attr;
    struct status_report st;
    struct walk wk;
    char what[4200], size[32];
    int rc;

    if (argc != 2) {
        return adm_verb_usage(argv[0], NULL);
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    snprintf(what, sizeof(what), "%s: %s", argv[0], argv[1]);
    rc = adm_resolve(a, argv[1], &attr);
    if (rc < 0)
        return adm_fail(a, what, rc);
    rc = adm_status_fetch(a, &st);
    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, what, rc);
    }
    memset(&wk, 0, sizeof(wk));
    wk.check = check;
    wk.st = &st;
    wk.goal = attr.goal;

    adm_fmt_bytes(attr.size, size, sizeof(size));
    if (a->json) {
        printf("{\n  \"path\": ");
        adm_json_str(stdout, argv[1], strlen(argv[1]));
        printf(",\n  \"ino\": %" PRIu64 ",\n  \"mode\": \"%06o\",\n"
               "  \"uid\": %u,\n  \"gid\": %u,\n  \"size\": %" PRIu64
               ",\n  \"goal\": %u,\n  \"version\": %" PRIu64
               ",\n  \"chunks\": [",
               attr.ino, attr.mode, attr.uid, attr.gid, attr.size, attr.goal,
               attr.version);
    } else {
        printf("%s\n", argv[1]);
        printf("  inode %" PRIu64 "  mode %06o  uid %u  gid %u  size %" PRIu64
               " (%s)  goal %u\n",
               attr.ino, attr.mode, attr.uid, attr.gid, attr.size, size,
               attr.goal);
    }
    rc = 0;
    if (S_ISREG(attr.mode))
        rc = print_chunks(a, &attr, &wk);
    else if (!a->json)
        printf("  not a regular file: no chunks\n");
    if (a->json)
        printf("\n  ],\n  \"summary\": {\"chunks\": %" PRIu64
               ", \"ok\": %" PRIu64 ", \"under_goal\": %" PRIu64
               ", \"over_goal\": %" PRIu64 ", \"missing\": %" PRIu64 "}\n}\n",
               wk.found, wk.ok, wk.under, wk.over, wk.missing);
    else if (check)
        printf("  summary: %" PRIu64 " chunks: %" PRIu64 " at goal %u, %" PRIu64
               " under goal, %" PRIu64 " over goal, %" PRIu64 " missing\n",
               wk.found, wk.ok, attr.goal, wk.under, wk.over, wk.missing);
    status_report_free(&st);
    if (rc < 0)
        return adm_fail(a, what, rc);
    if (check && (wk.under || wk.missing))
        return ADM_EXIT_FAIL;
    return ADM_EXIT_OK;
}

int adm_cmd_checkfile(struct adm *a, int argc, char **argv)
{
    return file_cmd(a, argc, argv, true);
}

int adm_cmd_fileinfo(struct adm *a, int argc, char **argv)
{
    return file_cmd(a, argc, argv, false);
}
