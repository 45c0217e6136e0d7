/* adm_meta.c: `tessera meta status|add|remove`: the replicas of the metad
 * group (docs/operations.md, "Metadata replicas"; docs/protocol.md
 * §10.3).
 *
 *   tessera meta status [--json]
 *   tessera meta add ID RAFT_ADDR CLIENT_ADDR
 *   tessera meta remove ID
 *
 * status asks whichever replica --meta reaches first (every replica
 * answers META_STATUS) and prints the members, their ids, client and raft
 * addresses, which one leads, and the term, commit and applied indexes as
 * that replica sees them; the JSON has the leader's id under "leader".
 * add and remove go to the leader (the client follows ENOTLEADER there)
 * and return once raft committed the change.
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

static int meta_status(struct adm *a)
{
    struct status_report st;
    int rc = adm_status_call(a, PROTO_MSG_META_STATUS_REQ, NULL, &st);

    if (rc < 0) {
        status_report_free(&st);
        return adm_fail(a, "meta status", rc);
    }
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
