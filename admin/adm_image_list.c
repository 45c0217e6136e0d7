/* adm_image_list.c: `tessera image list [--tree] [PATH]`, every image,
 * snapshot and clone under PATH (default /) with its parent and space
 * (docs/vmdisk.md, "Lineage and space").
 *
 * One IMAGE_LIST_REQ (docs/protocol.md §12.5) brings a pair per regular
 * file; common/image_list.c parses them and orders them as a tree of
 * origins; this file prints a table, the same table indented with
 * --tree, or the JSON metad also serves at /api/images.  A parent outside PATH
 * is shown by inode number; one that was removed as such.  Exit status as
 * everywhere.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The parent column: its path when listed, else its inode number. */
static void parent_of(const struct image_ent *all, size_t n,
                      const struct image_ent *e, char *buf, size_t size)
{
    long k = e->origin_live ? image_ent_find(all, n, e->origin) : -1;

    if (!e->origin)
        snprintf(buf, size, "-");
    else if (k >= 0)
        snprintf(buf, size, "%s", all[k].path);
    else if (e->origin_live)
        snprintf(buf, size, "ino %" PRIu64, e->origin);
    else
        snprintf(buf, size, "(removed, ino %" PRIu64 ")", e->origin);
}

static void print_table(const struct image_ent *e, size_t n,
                        const struct image_tree *t, bool tree)
{
    char name[PROTO_MAX_STR + 64], parent[PROTO_MAX_STR + 64];
    char sz[32], al[32], sh[32], ex[32];

    printf("%-32s %-8s %-24s %10s %10s %10s %10s\n", "PATH", "KIND", "PARENT",
           "SIZE", "ALLOCATED", "SHARED", "EXCLUSIVE");
    for (size_t j = 0; j < t->n; j++) {
        const struct image_ent *x = &e[t->order[j]];
        int ind = tree ? (int)t->depth[j] * 2 : 0;

        snprintf(name, sizeof(name), "%*s%s%s", ind, "",
                 tree && t->depth[j] ? "`- " : "", x->path);
        parent_of(e, n, x, parent, sizeof(parent));
        adm_fmt_bytes(x->size, sz, sizeof(sz));
        adm_fmt_bytes(x->allocated, al, sizeof(al));
        adm_fmt_bytes(x->shared, sh, sizeof(sh));
        adm_fmt_bytes(x->allocated - x->shared, ex, sizeof(ex));
        printf("%-32s %-8s %-24s %10s %10s %10s %10s\n", name,
               image_ent_kind(x), parent, sz, al, sh, ex);
    }
}

int adm_image_list(struct adm *a, int argc, char **argv)
{
    const char *path = NULL;
    struct image_ent *ents = NULL;
    struct image_tree t = {0};
    struct status_report st = {0};
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
        return adm_verb_usage("image", "list");
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, path ? path : "/", &at);
    if (rc < 0)
        return adm_fail(a, "image list", rc);
    rc = adm_status_ino(a, PROTO_MSG_IMAGE_LIST_REQ, at.ino, &st);
    if (rc == 0)
        rc = image_list_ents(&st, &ents, &n);
    if (rc == 0)
        rc = image_tree(ents, n, &t);
    if (rc == 0) {
        bool truncated = status_report_get(&st, "truncated") != NULL;
        if (a->json) {
            struct metrics_buf b;

            metrics_buf_init(&b);
            image_list_json(&b, ents, n, &t, truncated);
            rc = adm_print_buf(&b);
        } else
            print_table(ents, n, &t, tree);
        if (truncated && !a->json)
            printf("... (more files than one answer holds: list a folder)\n");
    }
    image_tree_free(&t);
    free(ents);
    status_report_free(&st);
    return rc < 0 ? adm_fail(a, "image list", rc) : ADM_EXIT_OK;
}
