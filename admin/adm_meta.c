/* adm_meta.c: `tessera meta status|add|remove`: the replicas of the metad
 * group (docs/operations.md, "Metadata replicas"; docs/protocol.md
 * §10.3).
 *
 *   tessera meta status [--json]
 *   tessera meta add ID RAFT_ADDR CLIENT_ADDR
 *   tessera meta remove ID
 *
 * status asks whichever replica --meta reaches first (every replica
 * answers META_STATUS), fills in the client addresses it does not know
 * from the other replicas of --meta (clients_fill()), and prints the members,
 * their ids, client and raft addresses, which one leads, and the term, commit
 * and applied indexes as that replica sees them; the JSON has the leader's id
 * under "leader". add and remove go to the leader (the client follows
 * ENOTLEADER there) and return once raft committed the change.
 *
 * Exit status: 0; 1 when no leader is known (status) or the change was
 * refused; 2 when no replica can be reached.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* One "member.<id>" pair: "<client> <raft> voter|spare". */
struct member_row {
    uint64_t id;
    char client[256], raft[256], role[16];
};

static int member_parse(const struct status_kv *kv, struct member_row *m)
{
    char *end;

    if (strncmp(kv->key, "member.", 7) != 0)
        return -EINVAL;
    m->id = strtoull(kv->key + 7, &end, 10);
    if (*end != '\0' ||
        sscanf(kv->value, "%255s %255s %15s", m->client, m->raft, m->role) != 3)
        return -EINVAL;
    return 0;
}

static uint64_t kv_u64(const struct status_report *st, const char *key)
{
    uint64_t v = 0;

    for (size_t i = 0; i < st->nkv; i++)
        if (!strcmp(st->kv[i].key, key) &&
            status_parse_u64(st->kv[i].value, &v))
            return v;
    return 0;
}

static void print_json(const struct status_report *st)
{
    static const char *const keys[] = {"term", "commit", "applied",
                                       "last_index"};
    struct member_row m;
    bool first = true;

    printf("{\"id\": %" PRIu64 ", \"leader\": %" PRIu64, kv_u64(st, "meta.id"),
           kv_u64(st, "leader"));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        printf(", \"%s\": %" PRIu64, keys[i], kv_u64(st, keys[i]));
    printf(", \"members\": [");
    for (size_t i = 0; i < st->nkv; i++) {
        if (member_parse(&st->kv[i], &m) < 0)
            continue;
        printf("%s\n  {\"id\": %" PRIu64 ", \"client\": ", first ? "" : ",",
               m.id);
        adm_json_str(stdout, m.client, strlen(m.client));
        printf(", \"raft\": ");
        adm_json_str(stdout, m.raft, strlen(m.raft));
        printf(", \"voter\": %s, \"leader\": %s}",
               strcmp(m.role, "voter") ? "false" : "true",
               m.id == kv_u64(st, "leader") ? "true" : "false");
        first = false;
    }
    printf("%s]}\n", first ? "" : "\n");
}

static void print_table(const struct status_report *st)
{
    uint64_t leader = kv_u64(st, "leader");
    struct member_row m;

    printf("%-4s %-8s %-24s %-24s\n", "ID", "ROLE", "CLIENT", "RAFT");
    for (size_t i = 0; i < st->nkv; i++) {
        if (member_parse(&st->kv[i], &m) < 0)
            continue;
        printf("%-4" PRIu64 " %-8s %-24s %-24s\n", m.id,
               m.id == leader ? "leader" : m.role, m.client, m.raft);
    }
    printf("leader %" PRIu64 "  term %" PRIu64 "  commit %" PRIu64
           "  applied %" PRIu64 "  (as replica %" PRIu64 " sees it)\n",
           leader, kv_u64(st, "term"), kv_u64(st, "commit"),
           kv_u64(st, "applied"), kv_u64(st, "meta.id"));
}

/* The client address replica @id gives for itself in @st ("-" when
 * none): every replica knows its own. */
static const char *self_client(const struct status_report *st, uint64_t *id)
{
    struct member_row m;

    *id = kv_u64(st, "meta.id");
    for (size_t i = 0; i < st->nkv; i++)
        if (member_parse(&st->kv[i], &m) == 0 && m.id == *id)
            return strcmp(m.client, "-") ? st->kv[i].value : "-";
    return "-";
}

/* Set member @id's client address in @st to the first word of @from
 * (a "client raft role" value). */
static void client_fill(struct status_report *st, uint64_t id, const char *from)
{
    struct member_row m;

    for (size_t i = 0; i < st->nkv; i++) {
        char *v;

        if (member_parse(&st->kv[i], &m) < 0 || m.id != id ||
            strcmp(m.client, "-"))
            continue;
        if (asprintf(&v, "%.*s %s %s", (int)strcspn(from, " "), from, m.raft,
                     m.role) < 0)
            return;
        free(st->kv[i].value);
        st->kv[i].value = v;
    }
}

/* A replica's client address is in the group's members table once it has
 * led or was added with `meta add`; until then the replica answering
 * shows "-" for it.  Every replica knows its own, so the other addresses
 * of --meta are asked for theirs (an address that does not answer is
 * skipped). */
static void clients_fill(struct adm *a, struct status_report *st)
{
    const char *p = a->meta;
    struct member_row m;
    bool missing = false;

    for (size_t i = 0; i < st->nkv; i++)
        missing |= member_parse(&st->kv[i], &m) == 0 && !strcmp(m.client, "-");
    if (!missing)
        return;

    while (p && *p) {
        size_t len = strcspn(p, ",");
        char addr[256];
        struct rpc_client *rpc;
        struct status_report other;
        struct rpc_reply rep;
        uint64_t id;

        snprintf(addr, sizeof(addr), "%.*s", (int)len, p);
        p = p[len] ? p + len + 1 : NULL;
        if (adm_rpc_open(a, addr, &rpc) < 0)
            continue;
        if (rpc_call(rpc, PROTO_MSG_META_STATUS_REQ, NULL, 0, &rep) == 0) {
            if (status_report_parse(rep.payload, rep.len, &other) == 0) {
                const char *self = self_client(&other, &id);

                if (strcmp(self, "-"))
                    client_fill(st, id, self);
            }
            status_report_free(&other); /* ours also on error */
            rpc_reply_free(&rep);
        }
        rpc_client_close(rpc);
    }
}

static int meta_status(struct adm *a)
{
    struct status_report st;
    int rc = adm_status_call(a, PROTO_MSG_META_STATUS_REQ, NULL, &st);

    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "meta status", rc);
    }
    clients_fill(a, &st);
    if (a->json)
        print_json(&st);
    else
        print_table(&st);
    rc = kv_u64(&st, "leader") ? ADM_EXIT_OK : ADM_EXIT_FAIL;
    status_report_free(&st);
    return rc;
}

static int meta_member(struct adm *a, const struct proto_meta_member_req *req)
{
    struct rpc_reply rep;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_meta_member_req_encode(&w, req);
    rc = w.err ? w.err
               : rpc_call(a->rpc, PROTO_MSG_META_MEMBER_REQ, w.p, w.len, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return adm_fail(
            a, req->op == PROTO_META_MEMBER_ADD ? "meta add" : "meta remove",
            rc);
    rpc_reply_free(&rep);
    printf("replica %" PRIu64 " %s\n", req->id,
           req->op == PROTO_META_MEMBER_ADD ? "added" : "removed");
    return ADM_EXIT_OK;
}

int adm_cmd_meta(struct adm *a, int argc, char **argv)
{
    struct proto_meta_member_req req = {0};
    const char *verb = argc > 1 ? argv[1] : "";
    bool status = !strcmp(verb, "status") && argc == 2;
    bool add = !strcmp(verb, "add") && argc == 5;
    bool remove = !strcmp(verb, "remove") && argc == 3;
    int rc;

    if ((add || remove) && (!status_parse_u64(argv[2], &req.id) || req.id == 0))
        add = remove = false;
    if (!status && !add && !remove) {
        fprintf(stderr, "usage: tessera meta status [--json]\n"
                        "       tessera meta add ID RAFT_ADDR CLIENT_ADDR\n"
                        "       tessera meta remove ID\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    if (status)
        return meta_status(a);
    req.op = add ? PROTO_META_MEMBER_ADD : PROTO_META_MEMBER_REMOVE;
    if (add) {
        req.raft_addr = (struct proto_str){argv[3], (uint32_t)strlen(argv[3])};
        req.client_addr =
            (struct proto_str){argv[4], (uint32_t)strlen(argv[4])};
    }
    return meta_member(a, &req);
}
