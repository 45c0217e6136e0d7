/* vd_bcache.h: tessera-nbd's block cache of one image (vd_bcache.c).
 *
 * A bounded set of clean 4 KiB pages of an image, shared by every
 * connection of the process that has the image open, with least recently
 * used eviction.  It only remembers bytes; vd_tessera.c decides when it
 * may be used (docs/vmdisk.md, "Block cache"):
 *
 *   read    vd_bcache_read() serves a range whose pages are all cached;
 *           otherwise the bytes come from the servers and
 *           vd_bcache_fill() keeps the whole pages among them, but only
 *           when no write to the image began or ended while they were
 *           read (the ticket from vd_bcache_read_begin() says so), so a
 *           fill never brings back bytes a write replaced;
 *   write   vd_bcache_write_begin() drops the pages of the range before
 *           the write is sent; vd_bcache_write_end() keeps the whole
 *           pages of the new bytes once every replica has them;
 *   drop    vd_bcache_drop_all() forgets everything and voids the tickets
 *           of reads in flight (another process may write the image now).
 *
 * Thread-safe: one mutex.  A page costs 4 KiB plus about 48 bytes.
 */
#ifndef TESSERA_VD_BCACHE_H
#define TESSERA_VD_BCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VD_BCACHE_PAGE 4096u

struct vd_bcache;

/* A cache of at most @max_bytes of pages (rounded down to whole pages).
 * Caller owns *out: vd_bcache_free().  -ENOMEM; -EINVAL for less than
 * one page. */
int vd_bcache_new(uint64_t max_bytes, struct vd_bcache **out);
void vd_bcache_free(struct vd_bcache *b);

/* Copy [@off, @off + @len) into @buf when every page it touches is
 * cached: true (a hit), else false and @buf is untouched. */
bool vd_bcache_read(struct vd_bcache *b, uint64_t off, uint32_t len,
                    void *buf);
/* Before a read goes to the servers: the ticket to give vd_bcache_fill(),
 * 0 when writes are in flight (then nothing will be kept). */
uint64_t vd_bcache_read_begin(struct vd_bcache *b);
/* Keep the whole pages of [@off, @off + @len) from @data (borrowed),
 * unless a write began or ended since @ticket was taken. */
void vd_bcache_fill(struct vd_bcache *b, uint64_t ticket, uint64_t off,
                    uint32_t len, const void *data);

/* Around every change of [@off, @off + @len): write, trim, zero.  Each
 * begin is matched by one end.  @data (borrowed) holds the bytes written
 * when @ok and they are known (a write), else NULL (trim, zero, failure):
 * then the range simply stays uncached. */
void vd_bcache_write_begin(struct vd_bcache *b, uint64_t off, uint64_t len);
void vd_bcache_write_end(struct vd_bcache *b, uint64_t off, uint64_t len,
                         const void *data, bool ok);

/* Forget every page and void every ticket handed out. */
void vd_bcache_drop_all(struct vd_bcache *b);

/* Counters since the cache was made. */
struct vd_bcache_stats {
    uint64_t hits, misses, fills_skipped;
    uint64_t pages, max_pages;
};
void vd_bcache_get_stats(struct vd_bcache *b, struct vd_bcache_stats *out);
/* The same summed over every cache of the process, since start (pages:
 * held now; max_pages: 0).  Any thread, no lock. */
void vd_bcache_get_totals(struct vd_bcache_stats *out);

#endif
