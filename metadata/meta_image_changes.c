/* meta_image_changes.c: IMAGE_CHANGES, what may differ between two files
 * slot by slot, from the chunk maps alone (docs/protocol.md §12.7,
 * docs/vmdisk.md "Incremental diffs").
 *
 * Both files are usually snapshots of one image, FROM older than TO.  For
 * a slot where both name the same chunk nothing changed.  Otherwise TO's
 * chunk is followed back through chunks.origin, the chunk each
 * copy-on-write copy was made from (meta_chunk.c records it):
 *
 *     FROM slot: c1          TO slot: c3
 *                 ^                   |
 *                 +-- origin -- c2 <--+ origin
 *
 * If the walk meets c1 (or, for a hole in FROM, ends at a chunk created
 * empty), every block that differs was written into one of the chunks
 * walked (c3, c2) after it was made: BLOCKS, with their locations, and the
 * client asks their servers for their written-block maps (CHUNK_WMAP).
 * A walk that meets a chunk no longer recorded (a snapshot in between was
 * removed with its chunks), a chain longer than PROTO_CHANGES_CHAIN_MAX,
 * or no link at all (another file's chunk, a rollback) gives WHOLE: the
 * slot may differ anywhere.  A hole in TO where FROM has a chunk is ZERO.
 * Slots the reply leaves out did not change.
 *
 * Read-only: the answer describes the state of the one transaction it was
 * read in.  Nothing is checked against the chunk servers here.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Chunk ids of @ino's slots [first, end) into @ids (end - first of them;
 * 0 for a hole). */
static int slot_chunks(struct meta_db *db, uint64_t ino, uint64_t first,
                       uint64_t end, uint64_t *ids)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SLOT_CHUNK_RANGE);
    int rc;

    memset(ids, 0, (size_t)(end - first) * sizeof(*ids));
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)end);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(s, 0);
        if (idx >= first && idx < end)
            ids[idx - first] = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : meta_sql_err(db, rc, "slot chunks");
}

/* Version and origin of chunk @id: -ENOENT when it is gone, and
 * *known false for a chunk from before origins were recorded. */
static int chunk_origin(struct meta_db *db, uint64_t id, uint64_t *version,
                        uint64_t *origin, bool *known)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_ORIGIN_GET);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = (uint64_t)sqlite3_column_int64(s, 0);
        *origin = (uint64_t)sqlite3_column_int64(s, 1);
        *known = sqlite3_column_type(s, 1) != SQLITE_NULL;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : meta_sql_err(db, rc, "chunk origin");
}

/* The entry for a slot naming @c1 in FROM and @c2 (not 0, not @c1) in TO;
 * @e->index is set.  The chain's addresses go to @addrs. */
static int walk(struct meta_db *db, uint64_t c1, uint64_t c2,
                struct proto_changes_entry *e,
                char (*addrs)[PROTO_MAX_REPLICAS][64])
{
    uint64_t cur = c2;

    e->nchain = 0;
    while (e->nchain < PROTO_CHANGES_CHAIN_MAX) {
        uint64_t version = 0, origin = 0;
        bool known = false;
        int r = chunk_origin(db, cur, &version, &origin, &known);
        if (r == -ENOENT || (r == 0 && !known))
            break;
        if (r < 0)
            return r;
        struct proto_chunk_loc *loc = &e->chain[e->nchain];
        memset(loc, 0, sizeof(*loc));
        loc->index = e->index;
        loc->chunk_id = cur;
        loc->version = version;
        if ((r = meta_chunk_replicas_fill(db, loc, addrs[e->nchain])) < 0)
            return r;
        e->nchain++;
        if (origin == c1) {
            e->kind = PROTO_CHANGES_BLOCKS;
            return 0;
        }
        if (origin == 0)
            break; /* created empty, or unknown: FROM's chunk is no ancestor */
        cur = origin;
    }
    e->kind = PROTO_CHANGES_WHOLE;
    e->nchain = 0;
    return 0;
}

static int changes_put(struct meta_db *db, const uint64_t *from_ids,
                       const uint64_t *to_ids, uint64_t first, uint64_t end,
                       struct proto_wbuf *w, uint32_t *count)
{
    struct proto_changes_entry *e = malloc(sizeof(*e));
    char(*addrs)[PROTO_MAX_REPLICAS][64] =
        malloc(PROTO_CHANGES_CHAIN_MAX * sizeof(*addrs));
    int r = 0;

    if (!e || !addrs) {
        free(e);
        free(addrs);
        return -ENOMEM;
    }
    for (uint64_t i = first; r == 0 && i < end; i++) {
        uint64_t c1 = from_ids[i - first], c2 = to_ids[i - first];
        if (c1 == c2)
            continue;
        memset(e, 0, sizeof(*e));
        e->index = i;
        if (c2 == 0)
            e->kind = PROTO_CHANGES_ZERO;
        else if ((r = walk(db, c1, c2, e, addrs)) < 0)
            break;
        proto_changes_entry_put(w, e);
        (*count)++;
        r = w->err;
    }
    free(e);
    free(addrs);
    return r;
}

int meta_image_changes(struct meta_db *db, const uint8_t *p, size_t n,
                       struct proto_wbuf *reply)
{
    struct proto_image_changes_req q;
    struct proto_attr from, to;
    int r = proto_image_changes_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.first > INT64_MAX / PROTO_CHUNK_SIZE)
        return -EINVAL;
    if ((r = meta_inode_get(db, q.from, &from)) < 0 ||
        (r = meta_inode_get(db, q.to, &to)) < 0)
        return r;
    if (S_ISDIR(from.mode) || S_ISDIR(to.mode))
        return -EISDIR;
    if (!S_ISREG(from.mode) || !S_ISREG(to.mode))
        return -EINVAL;
    /* Only TO's slots: past its end nothing is left to describe. */
    uint64_t nslots =
        to.size / PROTO_CHUNK_SIZE + (to.size % PROTO_CHUNK_SIZE ? 1 : 0);
    uint64_t first = q.first < nslots ? q.first : nslots;
    uint64_t end = nslots - first > q.count ? first + q.count : nslots;
    uint64_t *ids = calloc(2 * (size_t)q.count, sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    struct proto_wbuf entries;
    proto_wbuf_init(&entries);
    struct proto_image_changes_rep rep = {.from_size = from.size,
                                          .to_size = to.size};
    if ((r = slot_chunks(db, q.from, first, end, ids)) == 0 &&
        (r = slot_chunks(db, q.to, first, end, ids + q.count)) == 0)
        r = changes_put(db, ids, ids + q.count, first, end, &entries,
                        &rep.count);
    if (r == 0) {
        rep.raw.p = (const char *)entries.p;
        rep.raw.len = (uint32_t)entries.len;
        proto_image_changes_rep_encode(reply, &rep);
        r = reply->err;
    }
    proto_wbuf_free(&entries);
    free(ids);
    return r;
}
