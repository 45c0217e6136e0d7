/* image_list.h: the files of an IMAGE_LIST reply (docs/protocol.md §12.5)
 * with their lineage and space, shared by `tessera image list` and
 * metad's /api/images so both print the same JSON.
 */
#ifndef TESSERA_IMAGE_LIST_H
#define TESSERA_IMAGE_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* One file of an IMAGE_LIST reply. */
struct image_ent {
    uint64_t ino, origin; /* origin 0: made from nothing */
    bool origin_live;     /* the origin still exists */
    bool readonly;        /* a snapshot */
    uint64_t size, allocated, shared;
    const char *path; /* borrowed from the parsed value */
};
/* Parse one "image" value into *e (e->path points into @value).
 * -EPROTO when malformed, or an origin not older than the file. */
int image_ent_parse(const char *value, struct image_ent *e);
struct status_report;
/* The "image" pairs of IMAGE_LIST reply @st as entries, pointing into @st.
 * Caller owns *out (free() it, also on error).  0, -ENOMEM or -EPROTO. */
int image_list_ents(const struct status_report *st, struct image_ent **out,
                    size_t *n);
/* "snapshot", "clone" or "image". */
const char *image_ent_kind(const struct image_ent *e);

/* Entries in tree order: order[j] indexes the entries, depth[j] how many
 * origins above it are listed too. */
struct image_tree {
    size_t *order;
    unsigned *depth;
    size_t n;
};
/* Order @n entries as a forest of origins: a root (no origin, or one not
 * listed) then, depth first, what was made from it, by inode number.
 * Caller owns *t; release it with image_tree_free().  0 or -ENOMEM. */
int image_tree(const struct image_ent *e, size_t n, struct image_tree *t);
void image_tree_free(struct image_tree *t);
/* The index of the entry with inode @ino, or -1. */
long image_ent_find(const struct image_ent *e, size_t n, uint64_t ino);

/* {"images": [...], "truncated": ...} of @n entries in the order of @t,
 * written at the end of @out. */
void image_list_json(struct metrics_buf *out, const struct image_ent *e,
                     size_t n, const struct image_tree *t, bool truncated);

#endif
