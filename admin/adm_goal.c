/* adm_goal.c: `tessera setgoal [-r] N PATH` and `tessera getgoal [-r]
 * PATH`: a file's or a tree's replication goal.
 *
 * setgoal resolves PATH and sends GOAL_SET_REQ as root (with RECURSIVE for
 * -r), then prints how many inodes changed; metad records it as one
 * operation and repair then adds or removes copies.  getgoal prints the
 * goal from the inode's attributes; with -r it walks the tree below PATH
 * with READDIR (PLUS: attributes included) and prints how many files and
 * directories have each goal.  Exit status 1 when PATH does not resolve.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int adm_cmd_setgoal(struct adm *a, int argc, char **argv)
{
    struct proto_goal_set_req req;
    struct proto_goal_set_rep rep;
    struct proto_attr attr;
    struct rpc_reply r;
    struct proto_wbuf w;
    bool recursive = false;
    uint64_t goal;
    int i = 1, rc;

    if (i < argc && !strcmp(argv[i], "-r")) {
        recursive = true;
        i++;
    }
    if (argc - i != 2 || !status_parse_u64(argv[i], &goal) || goal < 1 ||
        goal > PROTO_GOAL_MAX) {
        return adm_verb_usage("setgoal", NULL);
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[i + 1], &attr);
    if (rc < 0)
        return adm_fail(a, "setgoal", rc);
    memset(&req, 0, sizeof(req));
    req.ino = attr.ino;
    req.goal = (uint32_t)goal;
    req.flags = recursive ? PROTO_GOAL_RECURSIVE : 0;
    proto_wbuf_init(&w);
    proto_goal_set_req_encode(&w, &req);
    rc = rpc_call_msg(a->rpc, PROTO_MSG_GOAL_SET_REQ, &w, &r, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return adm_fail(a, "setgoal", rc);
    rpc_reply_free(&r);
    if (a->json)
        printf("{\"path\": \"%s\", \"goal\": %" PRIu64 ", \"changed\": %" PRIu64
               "}\n",
               argv[i + 1], goal, rep.changed);
    else
        printf("%s: goal %" PRIu64 "%s, %" PRIu64 " inode%s changed\n",
               argv[i + 1], goal, recursive ? " (recursive)" : "", rep.changed,
               rep.changed == 1 ? "" : "s");
    return ADM_EXIT_OK;
}

struct goal_sum {
    uint64_t files[PROTO_GOAL_MAX + 1], dirs[PROTO_GOAL_MAX + 1];
};

static void tally(struct goal_sum *g, const struct proto_attr *at)
{
    uint32_t k = at->goal <= PROTO_GOAL_MAX ? at->goal : 0;

    if (S_ISDIR(at->mode))
        g->dirs[k]++;
    else
        g->files[k]++;
}

/* Tally every inode below directory @ino, depth first. */
static int walk(struct adm *a, uint64_t ino, struct goal_sum *g, int depth)
{
    uint64_t cookie = 0;
    bool eof = false;
    int rc = 0;

    if (depth > 256)
        return -ELOOP;
    while (!eof && rc == 0) {
        struct proto_readdir_req req;
        struct proto_readdir_rep rep;
        struct proto_dirent_iter it;
        struct proto_dirent d;
        struct rpc_reply r;
        struct proto_wbuf w;
        uint64_t subdirs[PROTO_READDIR_MAX];
        size_t nsub = 0;

        memset(&req, 0, sizeof(req));
        req.ino = ino;
        req.cookie = cookie;
        req.max_entries = PROTO_READDIR_MAX;
        req.flags = PROTO_READDIR_PLUS;
        proto_wbuf_init(&w);
        proto_readdir_req_encode(&w, &req);
        rc = rpc_call_msg(a->rpc, PROTO_MSG_READDIR_REQ, &w, &r, &rep);
        proto_wbuf_free(&w);
        if (rc < 0)
            return rc;
        proto_dirent_iter_init(&it, &rep);
        while (proto_dirent_next(&it, &d)) {
            cookie = d.cookie;
            if ((d.name.len == 1 && d.name.p[0] == '.') ||
                (d.name.len == 2 && !memcmp(d.name.p, "..", 2)))
                continue;
            tally(g, &d.attr);
            if (S_ISDIR(d.attr.mode))
                subdirs[nsub++] = d.attr.ino;
        }
        eof = rep.eof || rep.count == 0;
        rpc_reply_free(&r);
        for (size_t i = 0; rc == 0 && i < nsub; i++)
            rc = walk(a, subdirs[i], g, depth + 1);
    }
    return rc;
}

int adm_cmd_getgoal(struct adm *a, int argc, char **argv)
{
    struct proto_attr attr;
    struct goal_sum *g;
    bool recursive = false, first = true;
    int i = 1, rc;

    if (i < argc && !strcmp(argv[i], "-r")) {
        recursive = true;
        i++;
    }
    if (argc - i != 1) {
        return adm_verb_usage("getgoal", NULL);
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, argv[i], &attr);
    if (rc < 0)
        return adm_fail(a, "getgoal", rc);
    if (!recursive || !S_ISDIR(attr.mode)) {
        if (a->json)
            printf("{\"path\": \"%s\", \"goal\": %u}\n", argv[i], attr.goal);
        else
            printf("%s: %u\n", argv[i], attr.goal);
        return ADM_EXIT_OK;
    }
    g = calloc(1, sizeof(*g));
    if (!g)
        return adm_fail(a, "getgoal", -ENOMEM);
    tally(g, &attr);
    rc = walk(a, attr.ino, g, 0);
    if (rc < 0) {
        free(g);
        return adm_fail(a, "getgoal", rc);
    }
    if (a->json)
        printf("{\"path\": \"%s\", \"goals\": [", argv[i]);
    else
        printf("%s:\n  %-6s %12s %12s\n", argv[i], "GOAL", "FILES",
               "DIRECTORIES");
    for (uint32_t k = 0; k <= PROTO_GOAL_MAX; k++) {
        if (!g->files[k] && !g->dirs[k])
            continue;
        if (a->json)
            printf("%s{\"goal\": %u, \"files\": %" PRIu64
                   ", \"directories\": %" PRIu64 "}",
                   first ? "" : ", ", k, g->files[k], g->dirs[k]);
        else
            printf("  %-6u %12" PRIu64 " %12" PRIu64 "\n", k, g->files[k],
                   g->dirs[k]);
        first = false;
    }
    if (a->json)
        printf("]}\n");
    free(g);
    return ADM_EXIT_OK;
}
