/* adm_image_list.c: `tessera image list [--tree] [PATH]`, every image,
 * snapshot and clone under PATH (default /) with its parent and space
 * (docs/vmdisk.md, "Lineage and space").
 *
 * One IMAGE_LIST_REQ (docs/protocol.md §12.5) brings a pair per regular
 * file; this file parses them (adm_image_ent_parse), orders them as a
 * tree of origins (adm_image_tree: each file under the one it was made
 * from, roots first, by inode number) and prints a table, the same table
 * indented with --tree, or JSON.  A parent outside PATH is shown by inode
 * number; one that was removed as such.  Exit status as everywhere.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int adm_image_ent_parse(const char *value, struct adm_image_ent *e)
{
    unsigned long long v[7];
    int live, ro, off = 0;

    if (sscanf(value, "%llu %llu %d %d %llu %llu %llu %n", &v[0], &v[1], &live,
               &ro, &v[4], &v[5], &v[6], &off) != 7 ||
        off == 0 || value[off] != '/' || (live != 0 && live != 1) ||
        (ro != 0 && ro != 1) || v[6] > v[5] || (v[1] && v[1] >= v[0]))
        return -EPROTO; /* an origin is always older than its copies */
    e->ino = v[0];
    e->origin = v[1];
    e->origin_live = live;
    e->readonly = ro;
    e->size = v[4];
    e->allocated = v[5];
    e->shared = v[6];
    e->path = value + off;
    return 0;
}

/* The index of the entry with inode @ino, or -1. */
static long find_ino(const struct adm_image_ent *e, size_t n, uint64_t ino)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].ino == ino)
            return (long)i;
    return -1;
}

/* Put @i and, depth first, everything made from it into @order. */
static void tree_add(const struct adm_image_ent *e, size_t n, size_t i,
                     unsigned depth, struct adm_image_tree *t)
{
    t->order[t->n] = i;
    t->depth[t->n] = depth;
    t->n++;
    for (size_t k = 0; k < n; k++)
        if (k != i && e[k].origin == e[i].ino && e[k].origin_live)
            tree_add(e, n, k, depth + 1, t);
}

int adm_image_tree(const struct adm_image_ent *e, size_t n,
                   struct adm_image_tree *t)
{
    t->order = calloc(n + 1, sizeof(*t->order));
    t->depth = calloc(n + 1, sizeof(*t->depth));
    t->n = 0;
    if (!t->order || !t->depth) {
        adm_image_tree_free(t);
        return -ENOMEM;
    }
    /* An origin is older than what is made from it (parse checks it), so
     * the origins form a forest and every file is reached once, from its
     * root. */
    for (size_t i = 0; i < n; i++)
        if (!e[i].origin_live || find_ino(e, n, e[i].origin) < 0)
            tree_add(e, n, i, 0, t);
    return 0;
}

void adm_image_tree_free(struct adm_image_tree *t)
{
    free(t->order);
    free(t->depth);
    t->order = NULL;
    t->depth = NULL;
    t->n = 0;
}

static const char *kind_of(const struct adm_image_ent *e)
{
    if (e->readonly)
        return "snapshot";
    return e->origin ? "clone" : "image";
}

/* The parent column: its path when listed, else its inode number. */
static void parent_of(const struct adm_image_ent *all, size_t n,
                      const struct adm_image_ent *e, char *buf, size_t size)
{
    long k = e->origin_live ? find_ino(all, n, e->origin) : -1;

    if (!e->origin)
        snprintf(buf, size, "-");
    else if (k >= 0)
        snprintf(buf, size, "%s", all[k].path);
    else if (e->origin_live)
        snprintf(buf, size, "ino %" PRIu64, e->origin);
    else
        snprintf(buf, size, "(removed, ino %" PRIu64 ")", e->origin);
}

static void print_json(const struct adm_image_ent *e, size_t n,
                       const struct adm_image_tree *t, bool truncated)
{
    printf("{\"images\": [");
    for (size_t j = 0; j < t->n; j++) {
        const struct adm_image_ent *x = &e[t->order[j]];
        long k = x->origin_live ? find_ino(e, n, x->origin) : -1;

        printf("%s{\"path\": ", j ? ", " : "");
        adm_json_str(stdout, x->path, strlen(x->path));
        printf(", \"ino\": %" PRIu64 ", \"kind\": \"%s\", \"readonly\": %s"
               ", \"depth\": %u, \"parent\": ",
               x->ino, kind_of(x), x->readonly ? "true" : "false",
               t->depth[j]);
        if (!x->origin) {
            printf("null");
        } else {
            printf("{\"ino\": %" PRIu64 ", \"exists\": %s, \"path\": ",
                   x->origin, x->origin_live ? "true" : "false");
            if (k >= 0)
                adm_json_str(stdout, e[k].path, strlen(e[k].path));
            else
                printf("null");
            printf("}");
        }
        printf(", \"size\": %" PRIu64 ", \"allocated\": %" PRIu64
               ", \"shared\": %" PRIu64 ", \"exclusive\": %" PRIu64 "}",
               x->size, x->allocated, x->shared, x->allocated - x->shared);
    }
    printf("], \"truncated\": %s}\n", truncated ? "true" : "false");
}

static void print_table(const struct adm_image_ent *e, size_t n,
                        const struct adm_image_tree *t, bool tree)
{
    char name[PROTO_MAX_STR + 64], parent[PROTO_MAX_STR + 64];
    char sz[32], al[32], sh[32], ex[32];

    printf("%-32s %-8s %-24s %10s %10s %10s %10s\n", "PATH", "KIND",
           "PARENT", "SIZE", "ALLOCATED", "SHARED", "EXCLUSIVE");
    for (size_t j = 0; j < t->n; j++) {
        const struct adm_image_ent *x = &e[t->order[j]];
        int ind = tree ? (int)t->depth[j] * 2 : 0;

        snprintf(name, sizeof(name), "%*s%s%s", ind, "",
                 tree && t->depth[j] ? "`- " : "", x->path);
        parent_of(e, n, x, parent, sizeof(parent));
        adm_fmt_bytes(x->size, sz, sizeof(sz));
        adm_fmt_bytes(x->allocated, al, sizeof(al));
        adm_fmt_bytes(x->shared, sh, sizeof(sh));
        adm_fmt_bytes(x->allocated - x->shared, ex, sizeof(ex));
        printf("%-32s %-8s %-24s %10s %10s %10s %10s\n", name, kind_of(x),
               parent, sz, al, sh, ex);
    }
}

int adm_image_list(struct adm *a, int argc, char **argv)
{
    const char *path = NULL;
    struct adm_image_ent *ents = NULL;
    struct adm_image_tree t = {0};
    struct adm_status st = {0};
    struct proto_attr at;
    bool tree = false, usage = false;
    size_t n = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tree"))
            tree = true;
        else if (!path && argv[i][0] != '-')
            path = argv[i];
        else
            usage = true;
    }
    if (usage) {
        fprintf(stderr, "tessera: usage: image list [--tree] [PATH]\n");
        return ADM_EXIT_USAGE;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, path ? path : "/", &at);
    if (rc < 0)
        return adm_fail(a, "image list", rc);
    rc = adm_status_ino(a, PROTO_MSG_IMAGE_LIST_REQ, at.ino, &st);
    if (rc == 0 && !(ents = calloc(st.nkv + 1, sizeof(*ents))))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < st.nkv; i++)
        if (!strcmp(st.kv[i].key, "image"))
            rc = adm_image_ent_parse(st.kv[i].value, &ents[n++]);
    if (rc == 0)
        rc = adm_image_tree(ents, n, &t);
    if (rc == 0) {
        bool truncated = adm_status_get(&st, "truncated") != NULL;
        if (a->json)
            print_json(ents, n, &t, truncated);
        else
            print_table(ents, n, &t, tree);
        if (truncated && !a->json)
            printf("... (more files than one answer holds: list a folder)\n");
    }
    adm_image_tree_free(&t);
    free(ents);
    adm_status_free(&st);
    return rc < 0 ? adm_fail(a, "image list", rc) : ADM_EXIT_OK;
}
