/* cl_chunk.c: one chunk's I/O against its replicas: reads that fail over,
 * writes, syncs and truncates that recover from a failed replica.
 *
 * Read (docs/protocol.md §7.2, §8.2): find the chunk in the location cache
 * (one CHUNK_LOCATE fills it for many chunks); a hole reads as zeros;
 * otherwise CHUNK_READ from the first replica not known to be down.  On any
 * error (connection, EOLDVER, ECHECKSUM, a timeout) try the next one; a
 * checksum failure is also reported to metad (CHUNK_REPORT CHECKSUM), which
 * replaces that replica; once, however many readers meet it together
 * (cl_reported.c).  A read that needed another replica shortens the
 * cached location's life to a second, so a later read asks metad, which
 * no longer lists a replica it dropped.  When every replica failed, locate
 * again once and go round again, then give up; except when a replica said
 * its version moved on (EOLDVER) even after the new locate: metad is then
 * about to record the new version (a copy-on-write bumps the shared chunk
 * on its servers before its record commits), so locate and go round again
 * for up to CL_STALE_WAIT_MS.
 *
 * Write, sync and truncate run under a write lease (CHUNK_WRITE_BEGIN).  A
 * write goes to chain[0] carrying chain[1..]; its success means the data
 * is on every replica of that chain (§7.3), and nothing else is ever
 * acknowledged.  When the chain fails, recover() decides what happened:
 *
 *   EOLDVER or ENOENT    the version moved on (metad bumped it after a
 *                        server went down, or another writer): ask for
 *                        the lease again, report nothing the first time
 *   anything else        a replica failed: find it (a server announced as
 *                        down, else for a sync or truncate the replica
 *                        that answered the error, else the first that
 *                        does not answer a handshake, else the head of
 *                        the chain), send
 *                        CHUNK_REPORT WRITE and wait for the answer; metad
 *                        drops it, bumps the survivors and ends the lease
 *                        (§11.8), so the next WRITE_BEGIN gives a new
 *                        version and a chain without it
 *
 * then CHUNK_WRITE_BEGIN again and the same request on the new chain.  At
 * most CL_RECOVER_TRIES rounds within CL_RECOVER_MS; after that the error
 * goes to the caller.  Errors a new chain cannot fix (ENOSPC, EFBIG, ...)
 * return at once.  Data acknowledged earlier on the old chain is on every
 * survivor, which carries it to the new version, and the lease keeps its
 * dirty flag, so the next sync reaches it on the new chain.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

/* ---- Plumbing ---------------------------------------------------------- */

void cl_chunk_chain_fill(const struct cl_chunk *ch, uint32_t from,
                         struct proto_replica *chain, uint32_t *n)
{
    *n = 0;
    for (uint32_t i = from; i < ch->nreplicas; i++) {
        chain[*n].server_id = ch->server_id[i];
        chain[*n].addr.p = ch->addr[i];
        chain[*n].addr.len = (uint32_t)strlen(ch->addr[i]);
        (*n)++;
    }
}

/* Send a request already encoded in @w to the chunk server @addr; the reply
 * body is decoded into @out when not NULL, and the reply is kept in @rep
 * (caller frees) only then. */
static int chunk_call(struct cl_client *c, const char *addr, uint16_t opcode,
                      struct proto_wbuf *w, struct rpc_reply *rep, void *out)
{
    struct rpc_client *rpc;
    if (w->err)
        return w->err;
    int rc = cl_pool_get(c->pool, addr, &rpc);
    if (rc < 0)
        return rc;
    struct proto_empty empty;
    struct rpc_reply tmp;
    rc = rpc_call_msg(rpc, opcode, w, out ? rep : &tmp, out ? out : &empty);
    if (rc == 0 && !out)
        rpc_reply_free(&tmp);
    return rc;
}

/* Calls in flight, waited for together (all_call(), cl_chunk_sync_many()).
 * Each call belongs to a group, one chunk's replicas, whose status is the
 * first error any of them answered. */
struct all_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned left; /* calls not answered, +1 while sending */
};

struct all_group {
    int status;   /* the first error */
    uint32_t bad; /* the replica that answered it, UINT32_MAX: none */
};

/* One call: the answer of replica @r of group @g. */
struct all_one {
    struct all_wait *a;
    struct all_group *g;
    uint32_t r;
};

static void all_init(struct all_wait *a)
{
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->left = 1;
}

static void all_done(void *arg, int status, struct rpc_reply *rep)
{
    struct all_one *one = arg;
    struct all_wait *a = one->a;

    rpc_reply_free(rep);
    pthread_mutex_lock(&a->mu);
    if (status < 0 && one->g->status == 0) {
        one->g->status = status;
        one->g->bad = one->r;
    }
    if (--a->left == 0)
        pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* Send request @opcode with the body in @w to every replica of @ch, as
 * group @g of @a, answers into @one[0..nreplicas).  When a replica has no
 * connection, nothing is sent and @g holds the error. */
static void all_send(struct cl_client *c, struct all_wait *a,
                     struct all_group *g, struct all_one *one,
                     const struct cl_chunk *ch, uint16_t opcode,
                     const struct proto_wbuf *w)
{
    struct rpc_client *rpc[PROTO_MAX_REPLICAS];
    int rc = w->err;

    *g = (struct all_group){.status = rc, .bad = UINT32_MAX}; /* none */
    for (uint32_t r = 0; r < ch->nreplicas && rc == 0; r++) {
        rc = cl_pool_get(c->pool, ch->addr[r], &rpc[r]);
        if (rc < 0)
            *g = (struct all_group){.status = rc, .bad = r};
    }
    for (uint32_t r = 0; r < ch->nreplicas && rc == 0; r++) {
        pthread_mutex_lock(&a->mu);
        a->left++;
        pthread_mutex_unlock(&a->mu);
        one[r] = (struct all_one){a, g, r};
        rc = rpc_call_async(rpc[r], opcode, w->p, w->len, all_done, &one[r]);
        if (rc < 0)
            all_done(&one[r], rc, NULL);
    }
}

/* Wait until every call sent under @a has answered, and free @a. */
static void all_wait(struct all_wait *a)
{
    pthread_mutex_lock(&a->mu);
    a->left--; /* the count held while sending */
    while (a->left > 0)
        blocking_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
}

/* Send request @opcode with the body in @w to every replica of @ch at
 * once and wait for all the answers: 0 when all succeeded, else the first
 * error, and *@bad the replica that answered it.  One round trip whatever
 * the number of replicas. */
static int all_call(struct cl_client *c, const struct cl_chunk *ch,
                    uint16_t opcode, const struct proto_wbuf *w, uint32_t *bad)
{
    struct all_one one[PROTO_MAX_REPLICAS];
    struct all_wait a;
    struct all_group g;

    all_init(&a);
    all_send(c, &a, &g, one, ch, opcode, w);
    all_wait(&a);
    if (g.status < 0)
        *bad = g.bad;
    return g.status;
}

bool cl_chunk_error_final(int err)
{
    return err == -ENOSPC || err == -EDQUOT || err == -EFBIG || err == -EROFS ||
           err == -EACCES || err == -EPERM || err == -EISDIR ||
           err == -ENOMEM || err == -EINVAL;
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

/* ---- Read -------------------------------------------------------------- */

/* The location of chunk @index of @ino: from the cache unless @force, else
 * from metad with @count chunks prefetched. */
static int get_loc(struct cl_client *c, uint64_t ino, uint64_t index,
                   uint64_t count, bool force, struct cl_chunk *out)
{
    if (!force && cl_loc_get(c->loc, ino, index, cl_now_ms(), out) == 0)
        return 0;
    if (count == 0)
        count = 1;
    if (count > PROTO_LOCATE_MAX)
        count = PROTO_LOCATE_MAX;
    int rc = cl_meta_locate(c, ino, index, (uint32_t)count);
    if (rc < 0)
        return rc;
    /* Evicted between put and get by a full cache, or not kept because
     * the slot changed while the reply was out (cl_loc.c): ask for this
     * one again. */
    for (int tries = 0; tries < 8; tries++) {
        if (cl_loc_get(c->loc, ino, index, cl_now_ms(), out) == 0)
            return 0;
        rc = cl_meta_locate(c, ino, index, 1);
        if (rc < 0)
            return rc;
    }
    return cl_loc_get(c->loc, ino, index, cl_now_ms(), out) == 0 ? 0 : -EIO;
}

int cl_file_locate(struct cl_client *c, uint64_t ino, uint64_t index,
                   uint64_t prefetch, struct cl_chunk *out)
{
    return get_loc(c, ino, index, prefetch, false, out);
}

static int read_replica(struct cl_client *c, const struct cl_chunk *ch,
                        uint32_t r, const struct cl_piece *p, uint8_t *buf)
{
    struct proto_chunk_read_req req = {
        .chunk_id = ch->chunk_id,
        .version = ch->version,
        .offset = p->off,
        .length = p->len,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_read_req_encode(&w, &req);
    struct rpc_reply rep;
    struct proto_bytes_rep out;
    int rc =
        chunk_call(c, ch->addr[r], PROTO_MSG_CHUNK_READ_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    if (out.data.len > p->len) {
        rpc_reply_free(&rep);
        return -EPROTO;
    }
    memcpy(buf, out.data.p, out.data.len);
    memset(buf + out.data.len, 0, p->len - out.data.len);
    rpc_reply_free(&rep);
    return 0;
}

/* Replica indexes of @ch in the order to try them: those not known to be
 * down first, in chain order, then the others.  Returns the count. */
static uint32_t read_order(struct cl_client *c, const struct cl_chunk *ch,
                           uint32_t *order)
{
    uint32_t k = 0;
    bool down[PROTO_MAX_REPLICAS];
    for (uint32_t r = 0; r < ch->nreplicas; r++) {
        down[r] = cl_downset_has(&c->down, ch->server_id[r]);
        if (!down[r])
            order[k++] = r;
    }
    for (uint32_t r = 0; r < ch->nreplicas; r++)
        if (down[r])
            order[k++] = r;
    return k;
}

int cl_chunk_read(struct cl_client *c, uint64_t ino, const struct cl_piece *p,
                  uint64_t prefetch, uint8_t *buf)
{
    struct cl_chunk ch;
    uint64_t stale_until = 0;
    unsigned backoff = 1;
    int rc = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        rc = get_loc(c, ino, p->index, prefetch, attempt > 0, &ch);
        if (rc < 0)
            return rc;
        if (ch.chunk_id == 0) {
            memset(buf, 0, p->len);
            return 0;
        }
        uint32_t order[PROTO_MAX_REPLICAS];
        uint32_t n = read_order(c, &ch, order);
        bool stale = false;
        rc = -EIO;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t r = order[i];
            rc = read_replica(c, &ch, r, p, buf);
            if (rc == 0) {
                /* A replica failed before this one answered: metad may
                 * have dropped it from the chunk (a failed write, a
                 * repair, a drain), so the location is asked for again
                 * within CL_LOC_SUSPECT_TTL_MS rather than the replica
                 * tried first until the cache expires; not at once, so
                 * that a replica metad still lists costs at most one
                 * CHUNK_LOCATE a second. */
                if (i > 0)
                    cl_loc_suspect(c->loc, ino, p->index, cl_now_ms());
                return 0;
            }
            log_debug(
                "cl.chunk", "read: replica failed: %s chunk=%016llx addr=%s",
                strerror(-rc), (unsigned long long)ch.chunk_id, ch.addr[r]);
            stale |= rc == -ESTALE;
            /* ECHECKSUM: that copy is damaged.  One report for all the
             * readers that meet it (cl_reported.c). */
            if (rc == -EBADMSG &&
                cl_reported_claim(&c->reported, ch.server_id[r], ch.chunk_id,
                                  ch.version, cl_now_ms()) &&
                cl_meta_report(c, ch.server_id[r], ch.chunk_id, ch.version,
                               PROTO_REPORT_CHECKSUM) < 0)
                cl_reported_drop(&c->reported, ch.server_id[r], ch.chunk_id,
                                 ch.version);
        }
        cl_loc_invalidate(c->loc, ino, p->index);
        /* A replica past the version metad gave, again after locating
         * anew: metad is recording the change (a copy-on-write's bump of
         * a shared chunk is on the servers a moment before its record),
         * so its answer catches up; ask again, for CL_STALE_WAIT_MS. */
        if (stale && attempt == 1) {
            uint64_t now = cl_now_ms();
            if (!stale_until)
                stale_until = now + CL_STALE_WAIT_MS;
            if (now < stale_until) {
                sleep_ms(backoff);
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                       : backoff * 2;
                attempt = 0; /* the next round locates anew */
            }
        }
    }
    log_error("read: every replica failed: %s ino=%llu index=%llu",
              strerror(-rc), (unsigned long long)ino,
              (unsigned long long)p->index);
    return rc;
}

/* ---- Recovery ---------------------------------------------------------- */

/* One attempt of an operation on the chain of @ch.  When the operation
 * knows which replica failed it (it sent to each replica itself), it sets
 * *@bad to its index; else *@bad stays UINT32_MAX. */
typedef int (*chain_op_cb)(struct cl_client *c, const struct cl_chunk *ch,
                           void *arg, uint32_t *bad);

/* Which replica of @ch made a request fail: one announced as not up,
 * else the one that answered the error (@bad, when known), else the first
 * that does not answer a handshake, else the head. */
static uint32_t find_culprit(struct cl_client *c, const struct cl_chunk *ch,
                             uint32_t bad)
{
    for (uint32_t r = 0; r < ch->nreplicas; r++)
        if (cl_downset_has(&c->down, ch->server_id[r]))
            return r;
    if (bad < ch->nreplicas)
        return bad;
    for (uint32_t r = 0; r < ch->nreplicas; r++)
        if (cl_pool_probe(c->pool, ch->addr[r]) < 0)
            return r;
    return 0;
}

/* A lease on (@ino, @index): the one @n holds unless @renew, else a new
 * one from metad, recorded in @n when not NULL. */
static int lease_get(struct cl_client *c, uint64_t ino, struct cl_inode *n,
                     uint64_t index, bool renew, struct cl_chunk *out)
{
    uint64_t now = cl_now_ms();
    if (!renew && n && cl_inode_lease_get(n, index, now, out) == 0)
        return 0;
    int rc = cl_meta_write_begin(c, ino, index, out);
    if (rc < 0)
        return rc;
    return n ? cl_inode_lease_put(n, out, now) : 0;
}

/* An attempt already made, outside recover(): @op's result @rc on @ch,
 * and the replica @bad that answered it. */
struct attempt {
    struct cl_chunk ch;
    int rc;
    uint32_t bad;
};

/* Run @op on chunk @index of @ino under a write lease until it succeeds,
 * fails for good, or the recovery budget is spent (see the top).  A
 * @first attempt made elsewhere counts as the first round. */
static int recover_from(struct cl_client *c, uint64_t ino, struct cl_inode *n,
                        uint64_t index, chain_op_cb op, void *arg,
                        const char *what, struct cl_chunk *used,
                        const struct attempt *first)
{
    uint64_t deadline = cl_now_ms() + CL_RECOVER_MS;
    uint64_t stale_version = 0;
    unsigned backoff = 0;
    bool renew = n == NULL;
    struct cl_chunk ch;
    int rc = 0;

    for (int attempt = 0; attempt < CL_RECOVER_TRIES; attempt++) {
        if (attempt > 0) {
            if (cl_now_ms() >= deadline)
                break;
            if (backoff) {
                sleep_ms(backoff);
                backoff =
                    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            }
        }
        uint32_t bad = UINT32_MAX;
        if (attempt == 0 && first) {
            ch = first->ch;
            rc = first->rc;
            bad = first->bad;
        } else {
            rc = lease_get(c, ino, n, index, renew, &ch);
            if (rc < 0) {
                if (cl_chunk_error_final(rc) || rc == -ENOENT ||
                    rc == -ENOTCONN)
                    return rc;
                backoff = backoff ? backoff : BACKOFF_MIN_MS;
                renew = true;
                continue; /* EIO, EAGAIN: metad could not bump; try again */
            }
            if (ch.nreplicas == 0)
                return -EIO;
            rc = op(c, &ch, arg, &bad);
        }
        if (rc == 0) {
            if (used)
                *used = ch;
            return 0;
        }
        log_debug("cl.chunk", "%s: chain failed: %s chunk=%016llx v=%llu", what,
                  strerror(-rc), (unsigned long long)ch.chunk_id,
                  (unsigned long long)ch.version);
        if (cl_chunk_error_final(rc))
            return rc;
        if (n)
            cl_inode_lease_stale(n, index);
        cl_loc_invalidate(c->loc, ino, index);
        renew = true;
        if ((rc == -ESTALE || rc == -ENOENT) && ch.version != stale_version) {
            /* A new version or a dropped replica: the lease was out of
             * date.  Ask again before blaming anyone. */
            stale_version = ch.version;
            continue;
        }
        bad = find_culprit(c, &ch, bad);
        log_warn("%s: replica failed, reporting it: %s chunk=%016llx "
                 "version=%llu server=%u addr=%s",
                 what, strerror(-rc), (unsigned long long)ch.chunk_id,
                 (unsigned long long)ch.version, ch.server_id[bad],
                 ch.addr[bad]);
        int erc = cl_meta_report(c, ch.server_id[bad], ch.chunk_id, ch.version,
                                 PROTO_REPORT_WRITE);
        if (erc < 0)
            backoff = backoff ? backoff : BACKOFF_MIN_MS;
    }
    log_error("%s: giving up: %s ino=%llu index=%llu", what, strerror(-rc),
              (unsigned long long)ino, (unsigned long long)index);
    return rc < 0 ? rc : -EIO;
}

static int recover(struct cl_client *c, uint64_t ino, struct cl_inode *n,
                   uint64_t index, chain_op_cb op, void *arg, const char *what,
                   struct cl_chunk *used)
{
    return recover_from(c, ino, n, index, op, arg, what, used, NULL);
}

/* ---- Write, sync, truncate --------------------------------------------- */

struct write_arg {
    const struct cl_piece *p;
    const uint8_t *data;
    bool sync;
};

static int write_chain(struct cl_client *c, const struct cl_chunk *ch,
                       void *arg, uint32_t *bad)
{
    (void)bad; /* the chain's head answers for all of it */
    struct write_arg *a = arg;
    struct proto_chunk_write_req req = {
        .chunk_id = ch->chunk_id,
        .version = ch->version,
        .offset = a->p->off,
        .flags = a->sync ? PROTO_CHUNK_WRITE_SYNC : 0,
        .data = {(const char *)a->data, a->p->len},
    };
    cl_chunk_chain_fill(ch, 1, req.chain, &req.nchain);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &req);
    int rc =
        chunk_call(c, ch->addr[0], PROTO_MSG_CHUNK_WRITE_REQ, &w, NULL, NULL);
    proto_wbuf_free(&w);
    return rc;
}

int cl_chunk_write(struct cl_client *c, struct cl_inode *n,
                   const struct cl_piece *p, const uint8_t *data, bool sync,
                   struct cl_chunk *used)
{
    struct write_arg a = {.p = p, .data = data, .sync = sync};
    uint64_t off = p->index * PROTO_CHUNK_SIZE + p->off;
    struct cl_wrange wr;
    struct cl_chunk ch;

    cl_wrange_wait(n, &wr, off, off + p->len);
    int rc = recover(c, n->ino, n, p->index, write_chain, &a, "write", &ch);
    cl_wrange_end(n, &wr);
    if (rc < 0)
        return rc;
    cl_inode_lease_dirty(n, p->index);
    /* With direct writes the next writes of the chunk go straight to
     * every replica (cl_fast.c), which needs a connection to each: the
     * chain just answered, so they are up. */
    for (uint32_t r = 1; c->direct_write_max && r < ch.nreplicas; r++) {
        struct rpc_client *rpc;
        if (!cl_downset_has(&c->down, ch.server_id[r]))
            (void)cl_pool_get(c->pool, ch.addr[r], &rpc);
    }
    if (used)
        *used = ch;
    return 0;
}

/* CHUNK_SYNC goes to every replica at once, each with an empty chain
 * (one round trip, as direct writes do). */
static int sync_all(struct cl_client *c, const struct cl_chunk *ch, void *arg,
                    uint32_t *bad)
{
    (void)arg;
    struct proto_chunk_sync_req req = {
        .chunk_id = ch->chunk_id,
        .version = ch->version,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &req);
    int rc = all_call(c, ch, PROTO_MSG_CHUNK_SYNC_REQ, &w, bad);
    proto_wbuf_free(&w);
    return rc;
}

int cl_chunk_sync(struct cl_client *c, struct cl_inode *n, uint64_t index)
{
    return recover(c, n->ino, n, index, sync_all, NULL, "sync", NULL);
}

int cl_chunk_sync_many(struct cl_client *c, struct cl_inode *n,
                       const uint64_t *index, size_t k, int *rc,
                       void (*during)(void *arg), void *arg)
{
    struct all_group *g = calloc(k, sizeof(*g));
    struct all_one *one = calloc(k * PROTO_MAX_REPLICAS, sizeof(*one));
    struct cl_chunk *ch = calloc(k, sizeof(*ch));
    uint64_t now = cl_now_ms();
    struct all_wait a;
    int err = 0;

    if (!g || !one || !ch) {
        free(g);
        free(one);
        free(ch);
        for (size_t i = 0; i < k; i++)
            rc[i] = -ENOMEM;
        if (during)
            during(arg);
        return -ENOMEM;
    }
    all_init(&a);
    for (size_t i = 0; i < k; i++) {
        struct proto_wbuf w;

        ch[i].nreplicas = 0; /* no lease at hand: the one-chunk path */
        if (cl_inode_lease_get(n, index[i], now, &ch[i]) < 0 ||
            !ch[i].nreplicas)
            continue;
        proto_wbuf_init(&w);
        proto_chunk_sync_req_encode(
            &w, &(struct proto_chunk_sync_req){.chunk_id = ch[i].chunk_id,
                                               .version = ch[i].version});
        all_send(c, &a, &g[i], &one[i * PROTO_MAX_REPLICAS], &ch[i],
                 PROTO_MSG_CHUNK_SYNC_REQ, &w);
        proto_wbuf_free(&w);
    }
    if (during)
        during(arg);
    all_wait(&a);
    /* What failed goes on as recover()'s first round had failed, so a
     * replica that failed its sync is reported, never just asked again
     * (a failed fsync may have dropped the data it was to make durable). */
    for (size_t i = 0; i < k; i++) {
        struct attempt first = {ch[i], g[i].status, g[i].bad};

        rc[i] = 0;
        if (!ch[i].nreplicas)
            rc[i] = cl_chunk_sync(c, n, index[i]);
        else if (g[i].status < 0)
            rc[i] = recover_from(c, n->ino, n, index[i], sync_all, NULL,
                                 "sync", NULL, &first);
        if (rc[i] < 0 && err == 0)
            err = rc[i];
    }
    free(ch);
    free(one);
    free(g);
    return err;
}

/* CHUNK_TRUNCATE is not forwarded: the client sends it to every replica
 * (§7.7), all at once. */
static int truncate_all(struct cl_client *c, const struct cl_chunk *ch,
                        void *arg, uint32_t *bad)
{
    struct proto_chunk_truncate_req req = {
        .chunk_id = ch->chunk_id,
        .version = ch->version,
        .length = *(const uint32_t *)arg,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_truncate_req_encode(&w, &req);
    int rc = all_call(c, ch, PROTO_MSG_CHUNK_TRUNCATE_REQ, &w, bad);
    proto_wbuf_free(&w);
    return rc;
}

int cl_chunk_truncate(struct cl_client *c, uint64_t ino, struct cl_inode *n,
                      uint64_t index, uint32_t length)
{
    uint64_t base = index * PROTO_CHUNK_SIZE;
    struct cl_wrange wr;

    if (!n)
        return recover(c, ino, n, index, truncate_all, &length, "truncate",
                       NULL);
    /* It may cut the chunk or extend it: the whole chunk, then. */
    cl_wrange_wait(n, &wr, base, base + PROTO_CHUNK_SIZE);
    int rc = recover(c, ino, n, index, truncate_all, &length, "truncate", NULL);
    cl_wrange_end(n, &wr);
    return rc;
}
