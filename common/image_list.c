/* image_list.c: the files of an IMAGE_LIST reply (docs/protocol.md
 * §12.5) taken apart, ordered as a tree of origins (each file under the
 * one it was made from, roots first, by inode number), and written as the
 * JSON document `tessera image list --json` prints and metad serves at
 * /api/images.  No I/O.
 */
#include "image_list.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

int image_ent_parse(const char *value, struct image_ent *e)
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

long image_ent_find(const struct image_ent *e, size_t n, uint64_t ino)
{
    for (size_t i = 0; i < n; i++)
        if (e[i].ino == ino)
            return (long)i;
    return -1;
}

/* Put @i and, depth first, everything made from it into @order. */
static void tree_add(const struct image_ent *e, size_t n, size_t i,
                     unsigned depth, struct image_tree *t)
{
    t->order[t->n] = i;
    t->depth[t->n] = depth;
    t->n++;
    for (size_t k = 0; k < n; k++)
        if (k != i && e[k].origin == e[i].ino && e[k].origin_live)
            tree_add(e, n, k, depth + 1, t);
}

int image_tree(const struct image_ent *e, size_t n, struct image_tree *t)
{
    t->order = calloc(n + 1, sizeof(*t->order));
    t->depth = calloc(n + 1, sizeof(*t->depth));
    t->n = 0;
    if (!t->order || !t->depth) {
        image_tree_free(t);
        return -ENOMEM;
    }
    /* An origin is older than what is made from it (parse checks it), so
     * the origins form a forest and every file is reached once, from its
     * root. */
    for (size_t i = 0; i < n; i++)
        if (!e[i].origin_live || image_ent_find(e, n, e[i].origin) < 0)
            tree_add(e, n, i, 0, t);
    return 0;
}

void image_tree_free(struct image_tree *t)
{
    free(t->order);
    free(t->depth);
    t->order = NULL;
    t->depth = NULL;
    t->n = 0;
}

int image_list_ents(const struct status_report *st, struct image_ent **out,
                    size_t *n)
{
    struct image_ent *e = calloc(st->nkv + 1, sizeof(*e));
    int rc = 0;

    *n = 0;
    if (!e)
        return -ENOMEM;
    for (size_t i = 0; rc == 0 && i < st->nkv; i++)
        if (!strcmp(st->kv[i].key, "image"))
            rc = image_ent_parse(st->kv[i].value, &e[(*n)++]);
    *out = e;
    return rc;
}

const char *image_ent_kind(const struct image_ent *e)
{
    if (e->readonly)
        return "snapshot";
    return e->origin ? "clone" : "image";
}

void image_list_json(struct metrics_buf *out, const struct image_ent *e,
                     size_t n, const struct image_tree *t, bool truncated)
{
    metrics_buf_printf(out, "{\"images\": [");
    for (size_t j = 0; j < t->n; j++) {
        const struct image_ent *x = &e[t->order[j]];
        long k = x->origin_live ? image_ent_find(e, n, x->origin) : -1;

        metrics_buf_printf(out, "%s{\"path\": ", j ? ", " : "");
        status_json_str(out, x->path, strlen(x->path));
        metrics_buf_printf(out,
                           ", \"ino\": %" PRIu64
                           ", \"kind\": \"%s\", \"readonly\": %s"
                           ", \"depth\": %u, \"parent\": ",
                           x->ino, image_ent_kind(x),
                           x->readonly ? "true" : "false", t->depth[j]);
        if (!x->origin) {
            metrics_buf_printf(out, "null");
        } else {
            metrics_buf_printf(
                out,
                "{\"ino\": %" PRIu64 ", \"exists\": %s, \"path\": ", x->origin,
                x->origin_live ? "true" : "false");
            if (k >= 0)
                status_json_str(out, e[k].path, strlen(e[k].path));
            else
                metrics_buf_printf(out, "null");
            metrics_buf_printf(out, "}");
        }
        metrics_buf_printf(
            out,
            ", \"size\": %" PRIu64 ", \"allocated\": %" PRIu64
            ", \"shared\": %" PRIu64 ", \"exclusive\": %" PRIu64 "}",
            x->size, x->allocated, x->shared, x->allocated - x->shared);
    }
    metrics_buf_printf(out, "], \"truncated\": %s}\n",
                       truncated ? "true" : "false");
}
