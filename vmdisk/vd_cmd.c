/* vd_cmd.c: the NBD transmission phase: requests in, replies out.
 *
 * Happy path (proto.md "Transmission phase"):
 *
 *   C: magic32 flags16 type16 cookie64 offset64 length32 [data for WRITE]
 *   S: a simple reply (magic32 error32 cookie64 [data]) or, after
 *      NBD_OPT_STRUCTURED_REPLY, one structured chunk with DONE set.
 *
 * The calling thread is the reader: it decodes each request and reads a
 * WRITE's payload.  A READ or WRITE the backend can start without blocking
 * (its aio_pread/aio_pwrite fast path: for Tessera, a one-chunk I/O whose
 * location or lease is at hand) is started right there, and its reply is
 * sent by whichever thread completes it, in practice the one that read the
 * chunk server's answer: no hand-off to a worker on the way in or out.
 * Everything else, and a fast operation that failed (it is run again the
 * slow way, which fails over and recovers), is queued for a small pool of
 * worker threads (vd_config.workers) that check requests, run them against
 * the image and send the reply whole (vd_reply.c).  So many requests are
 * in flight and replies go out in whatever order they finish; clients
 * match them by cookie.  The reader stops taking requests
 * while the queued and running ones hold more than INFLIGHT_BYTES of
 * buffers, or number INFLIGHT_MAX, which bounds a connection's memory.
 *
 * Commands: READ, WRITE (FUA), FLUSH, TRIM (FUA), WRITE_ZEROES (FUA,
 * NO_HOLE, FAST_ZERO), BLOCK_STATUS (base:allocation and
 * tessera:changes-since:SNAP, REQ_ONE), CACHE (a
 * bounds-checked no-op: the backends have no cache to fill) and DISC.
 * READ and BLOCK_STATUS get structured replies once negotiated; the other
 * commands always get simple replies, which proto.md allows.
 *
 * Failure modes:
 * - Requests the server can answer stay on the connection with an error
 *   reply: unknown command or flag, a flag the command does not take,
 *   a range past the end of the export (EINVAL; ENOSPC for WRITE and
 *   WRITE_ZEROES, as proto.md recommends), writes to a read-only export
 *   (EPERM), READ or WRITE longer than VD_BLOCK_MAX (EOVERFLOW: a WRITE's
 *   payload is read and thrown away first), BLOCK_STATUS without
 *   base:allocation selected (EINVAL), backend errors (vd_err_to_nbd()).
 * - A bad request magic drops the connection: the stream can no longer be
 *   framed.  So do EOF and socket errors.
 * - NBD_CMD_DISC: no more requests are read; the ones in flight are
 *   answered, then the connection closes.
 * - A reply that cannot be sent shuts the socket down (vd_send()), which
 *   ends the reader; workers drop the remaining replies.
 */
#include "vd_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lat.h"
#include "log.h"

#define INFLIGHT_BYTES (128ull << 20)
#define INFLIGHT_MAX 256
#define MAX_EXTENTS 1024 /* descriptors in one BLOCK_STATUS reply */
#define DISCARD_BUF (64u << 10)

#define KNOWN_FLAGS                                                            \
    (NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF |               \
     NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO)

struct vd_req {
    struct vd_req *next;
    struct vd_conn *c; /* for the fast path's completion */
    uint64_t t0;       /* lat_now_ns() when its header was read */
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
    uint32_t early_err; /* NBD_E* decided by the reader, or 0 */
    uint64_t cost;      /* bytes counted in c->inflight_bytes */
    uint8_t data[];     /* WRITE payload, or the READ buffer */
};

/* ---- Latency budget ------------------------------------------------------ */

/* From the request's header read to its reply sent (docs/performance.md,
 * "Latency budget"); dumped with SIGUSR1. */
static struct lat_stage st_fast_read = {.name = "nbd.read.fast"};
static struct lat_stage st_fast_write = {.name = "nbd.write.fast"};
static struct lat_stage st_queue = {.name = "nbd.slow.queued"};
static struct lat_stage st_slow = {.name = "nbd.slow"};

void vd_cmd_stats_register(void)
{
    lat_stage_register(&st_fast_read);
    lat_stage_register(&st_fast_write);
    lat_stage_register(&st_queue);
    lat_stage_register(&st_slow);
}

/* ---- Running one request ----------------------------------------------- */

/* Flags each command accepts; FUA is accepted (and ignored) everywhere,
 * as proto.md asks of servers. */
static uint16_t flags_allowed(uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_DF;
    case NBD_CMD_WRITE_ZEROES:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
    case NBD_CMD_BLOCK_STATUS:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
    default:
        return NBD_CMD_FLAG_FUA;
    }
}

static bool is_write(uint16_t type)
{
    return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
           type == NBD_CMD_WRITE_ZEROES;
}

/* The NBD error for a request that must not run, or 0. */
static uint32_t req_check(struct vd_conn *c, const struct vd_req *r)
{
    if (r->early_err)
        return r->early_err;
    if (r->type > NBD_CMD_BLOCK_STATUS || r->type == NBD_CMD_DISC)
        return NBD_EINVAL;
    if (r->flags & ~flags_allowed(r->type))
        return NBD_EINVAL;
    if ((r->flags & NBD_CMD_FLAG_DF) && !c->structured)
        return NBD_EINVAL;
    if (r->type == NBD_CMD_FLUSH)
        return 0;
    if (is_write(r->type) && c->img->readonly)
        return NBD_EPERM;
    if (r->offset > c->size || r->len > c->size - r->offset)
        return r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES
                   ? NBD_ENOSPC
                   : NBD_EINVAL;
    if (r->type == NBD_CMD_BLOCK_STATUS &&
        ((!c->meta_alloc && !c->meta_changes) || r->len == 0))
        return NBD_EINVAL;
    return 0;
}

/* An error reply of the kind @r needs. */
static void reply_err(struct vd_conn *c, const struct vd_req *r, uint32_t err,
                      const char *msg)
{
    if (c->structured &&
        (r->type == NBD_CMD_READ || r->type == NBD_CMD_BLOCK_STATUS))
        vd_reply_error(c, r->cookie, err, msg);
    else
        vd_reply_simple(c, r->cookie, err, NULL, 0);
}

/* Send the data of a READ that succeeded, from r->data. */
static void reply_read(struct vd_conn *c, struct vd_req *r)
{
    if (c->structured)
        vd_reply_data(c, r->cookie, r->offset, r->data, r->len);
    else
        vd_reply_simple(c, r->cookie, 0, r->data, r->len);
}

static int do_read(struct vd_conn *c, struct vd_req *r)
{
    const struct vd_backend_ops *ops = c->cfg->be->ops;
    int rc = r->len ? ops->pread(c->img, r->data, r->len, r->offset) : 0;

    if (rc == 0)
        reply_read(c, r);
    return rc;
}

struct extents {
    uint32_t desc[2 * MAX_EXTENTS]; /* (length, flags) pairs */
    size_t n;
    uint64_t covered, want;
    bool one;
};

static int extent_add(void *arg, uint64_t length, uint32_t vflags)
{
    struct extents *e = arg;
    uint32_t flags = 0;

    if (vflags & VD_EXTENT_HOLE)
        flags |= NBD_STATE_HOLE;
    if (vflags & VD_EXTENT_ZERO)
        flags |= NBD_STATE_ZERO;
    if (vflags & VD_EXTENT_CHANGED)
        flags |= VD_STATE_CHANGED;
    if (length > e->want - e->covered)
        length = e->want - e->covered;
    if (length == 0)
        return e->covered == e->want ? 1 : 0;
    if (e->n && e->desc[2 * e->n - 1] == flags) {
        e->desc[2 * e->n - 2] += (uint32_t)length; /* sum <= want < 4 GiB */
    } else if (e->n == MAX_EXTENTS || (e->one && e->n == 1)) {
        return 1;
    } else {
        e->desc[2 * e->n] = (uint32_t)length;
        e->desc[2 * e->n + 1] = flags;
        e->n++;
    }
    e->covered += length;
    return e->covered == e->want ? 1 : 0;
}

/* proto.md: one BLOCK_STATUS chunk per selected context, the last one
 * with DONE.  Both are gathered before either is sent, so that an error
 * is the whole reply. */
static int do_block_status(struct vd_conn *c, const struct vd_req *r)
{
    const struct vd_backend_ops *ops = c->cfg->be->ops;
    struct extents *e = calloc(2, sizeof(*e));
    int rc = 0;

    if (!e)
        return -ENOMEM;
    for (int i = 0; i < 2; i++) {
        e[i].want = r->len;
        e[i].one = r->flags & NBD_CMD_FLAG_REQ_ONE;
    }
    if (c->meta_alloc)
        rc = ops->block_status(c->img, r->len, r->offset, extent_add, &e[0]);
    if (rc == 0 && c->meta_changes)
        rc = ops->changes ? ops->changes(c->img, c->meta_changes, r->len,
                                         r->offset, extent_add, &e[1])
                          : -ENOTSUP;
    if (rc == 0 &&
        ((c->meta_alloc && e[0].n == 0) || (c->meta_changes && e[1].n == 0)))
        rc = -EIO; /* vd_backend.h: at least one extent */
    if (rc == 0 && c->meta_alloc)
        vd_reply_block_status(c, r->cookie, !c->meta_changes, VD_META_ALLOC_ID,
                              e[0].desc, e[0].n);
    if (rc == 0 && c->meta_changes)
        vd_reply_block_status(c, r->cookie, true, VD_META_CHANGES_ID, e[1].desc,
                              e[1].n);
    free(e);
    return rc;
}

/* Run @r against the image; replies to everything but a successful READ
 * or BLOCK_STATUS (which reply themselves) are left to the caller. */
static int req_run(struct vd_conn *c, struct vd_req *r)
{
    const struct vd_backend_ops *ops = c->cfg->be->ops;
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    int rc;

    switch (r->type) {
    case NBD_CMD_READ:
        return do_read(c, r);
    case NBD_CMD_WRITE:
        return r->len ? ops->pwrite(c->img, r->data, r->len, r->offset, fua)
                      : 0;
    case NBD_CMD_FLUSH:
        return ops->flush(c->img);
    case NBD_CMD_TRIM:
        return r->len ? ops->trim(c->img, r->len, r->offset, fua) : 0;
    case NBD_CMD_WRITE_ZEROES:
        if (r->len == 0)
            return 0;
        rc = ops->zero(c->img, r->len, r->offset,
                       !(r->flags & NBD_CMD_FLAG_NO_HOLE),
                       r->flags & NBD_CMD_FLAG_FAST_ZERO);
        /* The backend's zero() has no FUA of its own. */
        if (rc == 0 && fua)
            rc = ops->flush(c->img);
        return rc;
    case NBD_CMD_BLOCK_STATUS:
        return do_block_status(c, r);
    default: /* NBD_CMD_CACHE */
        return 0;
    }
}

static void req_handle(struct vd_conn *c, struct vd_req *r)
{
    uint32_t err = req_check(c, r);
    int rc = 0;

    if (err == 0) {
        rc = req_run(c, r);
        err = vd_err_to_nbd(rc);
        if (rc < 0 && !(rc == -ENOTSUP && r->type == NBD_CMD_WRITE_ZEROES))
            log_warn("nbd request: failed: type=%u offset=%llu length=%u: "
                     "%s: peer=%s export=%s",
                     r->type, (unsigned long long)r->offset, r->len,
                     strerror(-rc), c->peer, c->export_name);
    }
    log_debug("vd.cmd", "type=%u flags=0x%x offset=%llu length=%u err=%u",
              r->type, r->flags, (unsigned long long)r->offset, r->len, err);
    vd_metrics_count(r->type, r->len, err);
    if (err)
        reply_err(c, r, err, rc < 0 ? strerror(-rc) : NULL);
    else if (r->type != NBD_CMD_READ && r->type != NBD_CMD_BLOCK_STATUS)
        vd_reply_simple(c, r->cookie, 0, NULL, 0);
}

/* ---- The worker pool --------------------------------------------------- */

/* @r is answered: give its budget back, under c->lock, waking the reader
 * if it waits for room. */
static void budget_return(struct vd_conn *c, const struct vd_req *r)
{
    c->inflight--;
    c->inflight_bytes -= r->cost;
    if (c->reader_waits)
        pthread_cond_signal(&c->room);
}

static void req_done(struct vd_conn *c, struct vd_req *r)
{
    pthread_mutex_lock(&c->lock);
    budget_return(c, r);
    pthread_mutex_unlock(&c->lock);
    free(r);
}

static void *worker_main(void *arg)
{
    struct vd_conn *c = arg;

    for (;;) {
        pthread_mutex_lock(&c->lock);
        /* A fast operation that fails comes back to the queue, so the
         * workers stay until none is in flight. */
        while (!c->head && !(c->draining && c->nfast == 0))
            pthread_cond_wait(&c->cond, &c->lock);
        struct vd_req *r = c->head;
        if (!r) {
            pthread_mutex_unlock(&c->lock);
            return NULL;
        }
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        pthread_mutex_unlock(&c->lock);

        lat_hist_record_since(&st_queue.h, r->t0);
        req_handle(c, r); /* replies are dropped once sending failed */
        lat_hist_record_since(&st_slow.h, r->t0);

        req_done(c, r);
    }
}

/* Wait until @cost more bytes fit in the connection's budget.  A single
 * request is always let through when nothing else is in flight. */
static void budget_wait(struct vd_conn *c, uint64_t cost)
{
    pthread_mutex_lock(&c->lock);
    c->reader_waits = true;
    while (c->inflight > 0 && (c->inflight >= INFLIGHT_MAX ||
                               c->inflight_bytes + cost > INFLIGHT_BYTES))
        pthread_cond_wait(&c->room, &c->lock);
    c->reader_waits = false;
    c->inflight++;
    c->inflight_bytes += cost;
    pthread_mutex_unlock(&c->lock);
}

static void enqueue(struct vd_conn *c, struct vd_req *r)
{
    pthread_mutex_lock(&c->lock);
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void unbudget(struct vd_conn *c, uint64_t cost)
{
    pthread_mutex_lock(&c->lock);
    c->inflight--;
    c->inflight_bytes -= cost;
    pthread_mutex_unlock(&c->lock);
}

/* ---- The fast path ----------------------------------------------------- */

static void fast_done(void *arg, int status)
{
    struct vd_req *r = arg;
    struct vd_conn *c = r->c;

    if (status < 0) {
        /* Run it again the slow way, which fails over and recovers. */
        log_debug("vd.cmd", "fast path failed, queued: type=%u offset=%llu: %s",
                  r->type, (unsigned long long)r->offset, strerror(-status));
        pthread_mutex_lock(&c->lock);
        c->nfast--;
        r->next = NULL;
        if (c->tail)
            c->tail->next = r;
        else
            c->head = r;
        c->tail = r;
        if (c->draining && c->nfast == 0)
            pthread_cond_broadcast(&c->cond); /* the others may go after */
        else
            pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (r->type == NBD_CMD_READ) {
        reply_read(c, r);
        lat_hist_record_since(&st_fast_read.h, r->t0);
    } else {
        vd_reply_simple(c, r->cookie, 0, NULL, 0);
        lat_hist_record_since(&st_fast_write.h, r->t0);
    }
    log_debug("vd.cmd", "type=%u flags=0x%x offset=%llu length=%u err=0 fast",
              r->type, r->flags, (unsigned long long)r->offset, r->len);
    vd_metrics_count(r->type, r->len, 0);
    pthread_mutex_lock(&c->lock);
    if (--c->nfast == 0 && c->draining)
        pthread_cond_broadcast(&c->cond); /* the workers may go now */
    budget_return(c, r);
    pthread_mutex_unlock(&c->lock);
    free(r);
}

/* Start @r on the backend's fast path when it can take it: true when
 * started (fast_done() answers it, and owns it), false to queue it. */
static bool fast_start(struct vd_conn *c, struct vd_req *r)
{
    const struct vd_backend_ops *ops = c->cfg->be->ops;
    bool fua = r->flags & NBD_CMD_FLAG_FUA;
    bool read = r->type == NBD_CMD_READ;
    int rc;

    bool can = read ? ops->aio_pread != NULL
                    : r->type == NBD_CMD_WRITE && ops->aio_pwrite != NULL;

    if (!can || r->len == 0 || req_check(c, r) != 0)
        return false;
    r->c = c;
    pthread_mutex_lock(&c->lock);
    c->nfast++;
    pthread_mutex_unlock(&c->lock);
    /* From here @r may be answered and freed on another thread. */
    rc = read ? ops->aio_pread(c->img, r->data, r->len, r->offset, fast_done, r)
              : ops->aio_pwrite(c->img, r->data, r->len, r->offset, fua,
                                fast_done, r);
    if (rc == 0)
        return true;
    pthread_mutex_lock(&c->lock); /* -EAGAIN: never started */
    c->nfast--;
    pthread_mutex_unlock(&c->lock);
    return false;
}

/* Read and drop @len bytes of a payload we will not use. */
static int discard(struct vd_conn *c, uint64_t len)
{
    uint8_t *buf = malloc(DISCARD_BUF);
    int rc = buf ? 0 : -ENOMEM;

    while (rc == 0 && len) {
        size_t n = len < DISCARD_BUF ? (size_t)len : DISCARD_BUF;
        rc = vd_recv(c, buf, n);
        len -= n;
    }
    free(buf);
    return rc;
}

/* Read one request and queue it.  1 to go on, 0 after NBD_CMD_DISC,
 * -errno to drop the connection. */
static int read_one(struct vd_conn *c)
{
    uint8_t h[NBD_REQUEST_SIZE];
    int rc = vd_recv(c, h, sizeof(h));
    uint64_t t0 = lat_now_ns();

    if (rc < 0)
        return rc;
    if (vd_get32(h) != NBD_REQUEST_MAGIC) {
        log_warn("nbd request: bad magic 0x%08x: peer=%s export=%s",
                 vd_get32(h), c->peer, c->export_name);
        return -EPROTO;
    }
    uint16_t type = vd_get16(h + 6);
    uint32_t len = vd_get32(h + 24);
    if (type == NBD_CMD_DISC)
        return 0;

    bool too_big =
        (type == NBD_CMD_READ || type == NBD_CMD_WRITE) && len > VD_BLOCK_MAX;
    uint32_t payload = type == NBD_CMD_WRITE && !too_big ? len : 0;
    uint64_t cost = too_big                ? 0
                    : payload              ? payload
                    : type == NBD_CMD_READ ? len
                                           : 0;
    if (too_big && type == NBD_CMD_WRITE) {
        rc = discard(c, len);
        if (rc < 0)
            return rc;
    }
    budget_wait(c, cost);
    size_t room = payload                            ? payload
                  : type == NBD_CMD_READ && !too_big ? len
                                                     : 0;
    struct vd_req *r = malloc(sizeof(*r) + room);
    if (!r) {
        unbudget(c, cost);
        return -ENOMEM;
    }
    r->next = NULL;
    r->t0 = t0;
    r->flags = vd_get16(h + 4);
    r->type = type;
    r->cookie = vd_get64(h + 8);
    r->offset = vd_get64(h + 16);
    r->len = len;
    r->early_err = too_big ? NBD_EOVERFLOW : 0;
    r->cost = cost;
    if ((r->flags & ~KNOWN_FLAGS) && !r->early_err)
        r->early_err = NBD_EINVAL;
    rc = payload ? vd_recv(c, r->data, payload) : 0;
    if (rc < 0) {
        unbudget(c, cost);
        free(r);
        return rc;
    }
    if (!fast_start(c, r))
        enqueue(c, r);
    return 1;
}

int vd_cmd_run(struct vd_conn *c)
{
    unsigned n = c->cfg->workers ? c->cfg->workers : VD_WORKERS_DEFAULT;
    pthread_t tids[VD_WORKERS_MAX];
    unsigned started = 0;
    int rc = 1;

    if (n > VD_WORKERS_MAX)
        n = VD_WORKERS_MAX;
    for (; started < n; started++)
        if (pthread_create(&tids[started], NULL, worker_main, c) != 0)
            break;
    if (started == 0)
        return -EAGAIN;

    while (rc > 0)
        rc = read_one(c);

    pthread_mutex_lock(&c->lock);
    c->draining = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    if (c->send_failed && rc == -ECONNRESET)
        rc = -EPIPE;
    return rc;
}
