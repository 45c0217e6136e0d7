/* meta_raft.c: the replicated log of a metad group over libraft, behind
 * struct meta_log_ops (meta_propose.h), and the leadership the daemon
 * follows.
 *
 * Happy path of a record: the leading replica's meta_propose() ends in
 * log_append(), which wraps the record into a raft buffer (libraft keeps
 * entries in 8-byte units: meta_op_entry_wrap()) and
 * raft_apply()s it (with the records held back to go with it, as
 * consecutive entries of one raft_apply(): one disk write); raft stores it,
 * replicates it, and once a majority has it every replica's fsm_apply() gets
 * it, in log order, and applies it to its own database with meta_log_apply() at
 * its log index (stored in the same transaction: meta_apply_at()).  On the
 * leader fsm_apply() also keeps the outcome for the pending proposal of that
 * index, and raft's apply callback (on_applied()) hands it to the proposer.
 *
 * A follower's fsm_apply() only keeps the record (struct deferred): raft
 * applies what the leader committed before the follower acknowledges the
 * entries it has just stored, so applying there would put the follower's
 * database in the path of every commit.  It applies what it kept
 * META_RAFT_DEFER_MS later, or once META_RAFT_DEFER_MAX wait, in one
 * commit, and always before anything else reads the database here: a
 * snapshot, a restore, leading, closing (deferred_run()).
 *
 * Restart: raft loads its last snapshot (fsm_restore(): the database is
 * left alone when it has applied that far already) and replays the
 * records after it; fsm_apply() skips those whose index the database has
 * applied (r->applied), so each record changes the database once.
 *
 * Snapshots: every so many records raft asks for one; fsm_snapshot()
 * is the whole database through SQLite's backup API (meta_snap.c), which
 * raft stores, truncating its log, and sends to a replica too far behind
 * to be sent records (a new or wiped one).  Taking one copies the whole
 * database on the loop thread, so unless --snapshot-every fixes the
 * number, the records between two snapshots grow with the last one's
 * size (meta_raft_snapshot_threshold()): the copy then costs each record about
 * as much as copying META_RAFT_SNAPSHOT_BYTES bytes, and the log holds about
 * one database's worth of records, whatever the size of the namespace.
 *
 * Leadership: raft says who leads; a replica that raft made leader first
 * appends a barrier, and only once the barrier is applied (so is every
 * record committed under earlier leaders) does it tell the daemon it
 * leads (meta_raft_on_role()).  A replica that stops being leader, or
 * was deposed and elected again in a later term, tells it at once.
 * raft's leader steps down when it has not heard from a majority within an
 * election timeout, which bounds how long a deposed leader may believe it
 * leads (docs/protocol.md, "Leadership").
 *
 *   FOLLOWER --(raft: leader)--> BARRIER --(barrier applied)--> LEADING
 *      ^                            |                              |
 *      +-----(raft: not leader, or a new term)---------------------+
 *
 * Failure modes: a proposal on a replica that does not lead fails at once
 * with -EREMCHG (the caller redirects); one pending when leadership is
 * lost fails with -EREMCHG too, after the daemon was told it no longer
 * leads (and closed every connection): its record may still commit under
 * the next leader, so its client must see a lost connection, not a
 * refusal.  A record the engine refuses (-EEXIST, ...) is the same
 * refusal on every replica: the engine reads nothing but the record and
 * the database.
 */
#include "meta_raft.h"

#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lat.h"
#include "log.h"
#include "meta_op.h"

/* A record raft_apply()'d by this replica, until raft calls back.  The
 * records of one append go to raft_apply() together, as consecutive
 * entries (one disk write): the first one's @ra is the raft request, whose
 * callback raft calls once that first entry is applied; the others
 * (@head pointing to the first) are answered when fsm_apply() applies
 * them, or failed with the first when raft fails it. */
struct pending {
    struct raft_apply ra; /* ra.data is this; the first of an append only */
    struct pending *head; /* the first of its append (itself for it) */
    uint64_t index;       /* its entry's */
    struct meta_propose *req;
    struct meta_raft *r;
    uint64_t t0;              /* lat_now_ns() at raft_apply() */
    bool applied;             /* fsm_apply() ran it */
    int status;               /* the engine's outcome */
    struct proto_wbuf result; /* its reply body */
    struct pending *prev, *next;
};

/* A committed record a follower applies later (fsm_apply()): its index
 * and its body, copied out of raft's buffer. */
struct deferred {
    uint64_t index;
    size_t len;
    struct deferred *next;
    uint8_t rec[];
};

struct change {
    struct raft_change rc; /* rc.data is this */
    struct meta_raft *r;
    uint64_t id;
    bool promote; /* added as a spare: make it a voter next */
    void (*cb)(void *, int);
    void *arg;
};

struct meta_raft {
    uv_loop_t *loop;
    struct meta_db *db;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    uv_timer_t poll;
    uv_prepare_t before_poll; /* commit the batch before the loop waits */
    uv_check_t after_poll;    /* and after the I/O callbacks that applied */
    struct raft_barrier barrier;
    bool barrier_pending;
    bool leading;
    uint64_t lead_term;
    uint64_t applied; /* the database's last applied index */
    /* A follower's committed records not applied yet, in log order
     * (deferred_run() applies them): @applied < their indexes <=
     * @deferred_last. */
    struct deferred *dq_head, **dq_tail;
    unsigned dq_n;
    uint64_t deferred_last;
    uv_timer_t dq_timer; /* runs them META_RAFT_DEFER_MS after the first */
    bool dq_ready;       /* dq_timer and commit_timer initialized */
    /* The leader's batch commits META_RAFT_COMMIT_MS after it began
     * (batch_t0, loop time) at the latest (turn_end()). */
    uv_timer_t commit_timer;
    uint64_t batch_t0;
    struct pending *head, *tail;
    meta_raft_role_cb role_cb;
    void *role_arg;
    bool closing;
    bool fixed_threshold; /* --snapshot-every given */
    char dir[4096];
};

static int errno_of_raft(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return -ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return -EREMCHG;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return -ECANCELED;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_INVALID:
        return -EINVAL;
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
        return -EBUSY;
    case RAFT_NOSPACE:
        return -ENOSPC;
    case RAFT_NOTFOUND:
        return -ENOENT;
    default:
        return -EIO;
    }
}

/* ---- Membership text ---------------------------------------------------- */

int meta_raft_members_parse(const char *spec, struct meta_raft_member *members,
                            size_t max)
{
    size_t n = 0;
    const char *p = spec;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[META_RAFT_ADDR_MAX + 32], *eq, *idend;
        unsigned long long id;

        if (len == 0 || len >= sizeof(item) || n == max)
            return -EINVAL;
        memcpy(item, p, len);
        item[len] = '\0';
        eq = strchr(item, '=');
        if (!eq || eq == item || eq[1] == '\0' ||
            strlen(eq + 1) >= META_RAFT_ADDR_MAX || !strchr(eq + 1, ':'))
            return -EINVAL;
        *eq = '\0';
        errno = 0;
        id = strtoull(item, &idend, 10);
        if (errno || *idend != '\0' || id == 0 || item[0] == '-')
            return -EINVAL;
        for (size_t i = 0; i < n; i++)
            if (members[i].id == id || !strcmp(members[i].raft_addr, eq + 1))
                return -EINVAL;
        members[n].id = id;
        snprintf(members[n].raft_addr, sizeof(members[n].raft_addr), "%s",
                 eq + 1);
        members[n].voter = true;
        n++;
        p = end ? end + 1 : NULL;
        if (end && *p == '\0')
            return -EINVAL;
    }
    return n ? (int)n : -EINVAL;
}

/* ---- The state machine: the database ------------------------------------ */

/* How long a record waits from raft_apply() until raft hands it to
 * fsm_apply() (stored by a majority, the local disk write included), and
 * how long applying one record to the database takes (on every replica;
 * the SQLite commit alone is meta.db.commit). */
static struct lat_stage st_commit = {.name = "meta.raft.commit"};
static struct lat_stage st_apply = {.name = "meta.raft.apply"};

void meta_raft_stats_register(void)
{
    lat_stage_register(&st_commit);
    lat_stage_register(&st_apply);
}

static struct pending *pending_at(struct meta_raft *r, uint64_t index)
{
    for (struct pending *p = r->head; p; p = p->next)
        if (p->index == index)
            return p;
    return NULL;
}

static void pending_unlink(struct meta_raft *r, struct pending *p);

/* Answer the proposer of @p, which raft has no request for (not the
 * first of its append), and forget it. */
static void pending_finish(struct pending *p, int status,
                           const struct proto_wbuf *result)
{
    pending_unlink(p->r, p);
    if (result)
        meta_log_done(p->req, status, result);
    else
        meta_log_fail(p->req, status);
    free(p);
}

/* The records appended with @head (not @head itself) fail with @status:
 * raft failed @head's request, or this replica stopped leading (@head
 * NULL: every such record), and raft will not call back for them. */
static void pending_fail_followers(struct meta_raft *r, struct pending *head,
                                   int status)
{
    struct pending *p = r->head, *next;

    for (; p; p = next) {
        next = p->next;
        if (p->head != p && (!head || p->head == head))
            pending_finish(p, status, NULL);
    }
}

/* The records fsm_apply() applied since the last call go to the database
 * in one commit (meta_db_batch_begin()): the Raft log, fsynced on a
 * majority before raft hands an entry to fsm_apply(), is their durability
 * point, and a crash before this commit replays them from it.  A failed
 * commit leaves the database behind what raft believes applied; only a
 * restart, which replays the log from the database's applied index, mends
 * that, so the replica stops. */
static void batch_commit(struct meta_raft *r)
{
    int rc = meta_db_batch_commit(r->db);

    if (r->dq_ready && !r->closing)
        uv_timer_stop(&r->commit_timer);
    if (rc == 0)
        return;
    log_error("meta raft: cannot commit applied records: %s applied=%llu; "
              "stopping (a restart applies them again from the log)",
              strerror(-rc), (unsigned long long)r->applied);
    exit(EXIT_FAILURE);
}

static void on_commit_due(uv_timer_t *t)
{
    batch_commit(t->data);
}

/* A turn of the loop ends: a follower commits what it applied; the
 * leader lets its batch take the records of the next turns too, up to
 * META_RAFT_COMMIT_MS after its first (one commit's page writes for all
 * of them; nothing waits for the commit, the log being the durability
 * point). */
static void turn_end(struct meta_raft *r)
{
    uint64_t age;

    if (!meta_db_batch_open(r->db))
        return;
    if (r->leading && r->dq_ready && !r->closing) {
        age = uv_now(r->loop) - r->batch_t0;
        if (age < META_RAFT_COMMIT_MS) {
            if (!uv_is_active((uv_handle_t *)&r->commit_timer))
                uv_timer_start(&r->commit_timer, on_commit_due,
                               META_RAFT_COMMIT_MS - age, 0);
            return;
        }
    }
    batch_commit(r);
}

static void on_before_poll(uv_prepare_t *h)
{
    turn_end(h->data);
}

static void on_after_poll(uv_check_t *h)
{
    turn_end(h->data);
}

/* Apply record @rec of log index @index to the database (in the batch
 * of this loop turn): the engine's outcome, its reply body in @res. */
static int apply_one(struct meta_raft *r, uint64_t index, const uint8_t *rec,
                     size_t len, struct proto_wbuf *res)
{
    uint64_t t0 = lat_now_ns();
    int rc;

    /* Without a batch the record commits alone: slower, as safe. */
    if (!r->closing && !meta_db_batch_open(r->db) &&
        meta_db_batch_begin(r->db) == 0)
        r->batch_t0 = uv_now(r->loop);
    rc = meta_log_apply(r->db, index, rec, len, res);
    lat_hist_record_since(&st_apply.h, t0);
    r->applied = index;
    if (rc == -EPROTO)
        log_error("meta raft: undecodable record skipped: index=%llu",
                  (unsigned long long)index);
    return rc;
}

/* Apply the records a follower deferred, in order. */
static void deferred_run(struct meta_raft *r)
{
    struct deferred *d, *next;

    for (d = r->dq_head; d; d = next) {
        struct proto_wbuf res;

        next = d->next;
        proto_wbuf_init(&res);
        (void)apply_one(r, d->index, d->rec, d->len, &res);
        proto_wbuf_free(&res);
        free(d);
    }
    r->dq_head = NULL;
    r->dq_tail = &r->dq_head;
    r->dq_n = 0;
    if (r->dq_ready && !r->closing)
        uv_timer_stop(&r->dq_timer);
}

static void on_deferred_due(uv_timer_t *t)
{
    deferred_run(t->data);
}

/* A follower keeps committed record @rec of @index to apply later:
 * 0, or -errno (then the caller applies it now). */
static int deferred_add(struct meta_raft *r, uint64_t index, const uint8_t *rec,
                        size_t len)
{
    struct deferred *d;

    if (!r->dq_ready)
        return -EAGAIN; /* before meta_raft_open() is done */
    d = malloc(sizeof(*d) + len);
    if (!d)
        return -ENOMEM;
    d->index = index;
    d->len = len;
    d->next = NULL;
    memcpy(d->rec, rec, len);
    *r->dq_tail = d;
    r->dq_tail = &d->next;
    r->deferred_last = index;
    if (++r->dq_n >= META_RAFT_DEFER_MAX)
        deferred_run(r);
    else if (!uv_is_active((uv_handle_t *)&r->dq_timer))
        uv_timer_start(&r->dq_timer, on_deferred_due, META_RAFT_DEFER_MS, 0);
    return 0;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result)
{
    struct meta_raft *r = fsm->data;
    /* raft moves last_applied past an entry after fsm->apply returned. */
    uint64_t index = raft_last_applied(&r->raft) + 1;
    struct pending *p = pending_at(r, index);
    struct proto_wbuf res;
    const uint8_t *rec;
    size_t len;
    int rc;

    *result = NULL;
    if (index <= r->applied || (r->dq_head && index <= r->deferred_last))
        return 0; /* in the database already (a replay after a restart) */
    if (p)
        lat_hist_record(&st_commit.h, lat_now_ns() - p->t0);
    rc = meta_op_entry_unwrap(buf->base, buf->len, &rec, &len);
    /* A follower answers the leader only after this returns (raft
     * applies what the leader committed before it acknowledges the
     * entries it just stored): it keeps the record for later, so that the
     * leader's commits do not wait for its database. */
    if (rc == 0 && !p && !r->leading && !r->closing &&
        deferred_add(r, index, rec, len) == 0)
        return 0;
    deferred_run(r);
    proto_wbuf_init(&res);
    if (rc == 0) {
        rc = apply_one(r, index, rec, len, &res);
    } else {
        r->applied = index;
        log_error("meta raft: undecodable record skipped: index=%llu",
                  (unsigned long long)index);
    }
    if (p && p->head != p) {
        pending_finish(p, rc, &res);
        proto_wbuf_free(&res);
    } else if (p) {
        p->applied = true;
        p->status = rc;
        p->result = res; /* the pending proposal's now */
    } else {
        proto_wbuf_free(&res);
    }
    return 0;
}

unsigned meta_raft_snapshot_threshold(size_t bytes)
{
    size_t n = bytes / META_RAFT_SNAPSHOT_BYTES;

    if (n < META_RAFT_SNAPSHOT_MIN)
        return META_RAFT_SNAPSHOT_MIN;
    return n > META_RAFT_SNAPSHOT_MAX ? META_RAFT_SNAPSHOT_MAX : (unsigned)n;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n)
{
    struct meta_raft *r = fsm->data;
    struct raft_buffer *b = raft_malloc(sizeof(*b));
    void *p;
    size_t len;
    int rc;

    if (!b)
        return RAFT_NOMEM;
    deferred_run(r);
    batch_commit(r);
    rc = meta_db_snapshot(r->db, &p, &len);
    if (rc < 0) {
        raft_free(b);
        return rc == -ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    }
    b->base = p;
    b->len = len;
    *bufs = b;
    *n = 1;
    if (!r->fixed_threshold)
        raft_set_snapshot_threshold(&r->raft,
                                    meta_raft_snapshot_threshold(len));
    log_info("meta raft: snapshot taken: applied=%llu bytes=%zu next after "
             "%u records",
             (unsigned long long)r->applied, len, r->raft.snapshot.threshold);
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
                                 struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    if (*bufs) {
        for (unsigned i = 0; i < *n; i++)
            meta_db_snapshot_free((*bufs)[i].base);
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n = 0;
    return 0;
}

/* raft hands @buf over: it is freed here whatever happens. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct meta_raft *r = fsm->data;
    int rc;

    deferred_run(r);
    batch_commit(r);
    rc = meta_db_restore(r->db, buf->base, buf->len);

    raft_free(buf->base);
    if (rc == 0)
        rc = meta_db_applied(r->db, &r->applied);
    if (rc < 0) {
        log_error("meta raft: cannot restore a snapshot: %s", strerror(-rc));
        return RAFT_CORRUPT;
    }
    return 0;
}

/* ---- The log ------------------------------------------------------------ */

static void role_set(struct meta_raft *r, bool leading);

static void pending_unlink(struct meta_raft *r, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        r->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        r->tail = p->prev;
}

static void on_applied(struct raft_apply *ra, int status, void *result)
{
    struct pending *p = ra->data;

    (void)result;
    pending_unlink(p->r, p);
    /* Leadership lost with records pending: the daemon closes every
     * connection first, so that no client takes the failure below for a
     * refusal (the record may still commit under the next leader). */
    if (status != 0 && p->r->leading)
        role_set(p->r, false);
    if (status != 0)
        pending_fail_followers(p->r, p, errno_of_raft(status));
    if (status == 0 && p->applied)
        meta_log_done(p->req, p->status, &p->result);
    else
        meta_log_fail(p->req, status ? errno_of_raft(status) : -EIO);
    proto_wbuf_free(&p->result);
    free(p);
}

/* @req's record as a raft entry in @buf (raft_malloc()ed): 0 or -errno. */
static int entry_make(struct meta_propose *req, struct raft_buffer *buf)
{
    struct proto_wbuf entry;
    int rc;

    proto_wbuf_init(&entry);
    meta_op_entry_wrap(&entry, req->record.p, req->record.len);
    rc = entry.err;
    buf->len = entry.len;
    buf->base = rc ? NULL : raft_malloc(buf->len);
    if (rc == 0 && !buf->base)
        rc = -ENOMEM;
    if (rc == 0)
        memcpy(buf->base, entry.p, buf->len);
    proto_wbuf_free(&entry);
    return rc;
}

static void pending_link(struct meta_raft *r, struct pending *p)
{
    p->prev = r->tail;
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
}

/* The chain @req (meta_log_ops.append) as consecutive entries of one
 * raft_apply(): one disk write, one round of replication. */
static int log_append(struct meta_log *log, struct meta_propose *req)
{
    struct meta_raft *r = log->impl;
    struct raft_buffer *bufs;
    struct pending **ps;
    unsigned n = 0, i;
    int rc = 0, rv;

    if (!r->leading || r->closing)
        return -EREMCHG;
    for (struct meta_propose *q = req; q; q = q->next)
        n++;
    bufs = calloc(n, sizeof(*bufs));
    ps = calloc(n, sizeof(*ps));
    if (!bufs || !ps)
        rc = -ENOMEM;
    i = 0;
    for (struct meta_propose *q = req; rc == 0 && q; q = q->next, i++) {
        ps[i] = calloc(1, sizeof(*ps[i]));
        rc = ps[i] ? entry_make(q, &bufs[i]) : -ENOMEM;
        if (rc == 0) {
            ps[i]->req = q;
            ps[i]->r = r;
            ps[i]->head = ps[0];
            proto_wbuf_init(&ps[i]->result);
        }
    }
    if (rc == 0) {
        ps[0]->ra.data = ps[0];
        ps[0]->t0 = lat_now_ns();
        /* On success raft owns every bufs[i].base. */
        rv = raft_apply(&r->raft, &ps[0]->ra, bufs, n, on_applied);
        rc = errno_of_raft(rv);
    }
    for (i = 0; i < n && ps && bufs; i++) {
        if (rc < 0) {
            raft_free(bufs[i].base);
            free(ps[i]);
            continue;
        }
        ps[i]->index = ps[0]->ra.index + i;
        ps[i]->t0 = ps[0]->t0;
        pending_link(r, ps[i]);
    }
    /* The chain is the pendings' now: each request stands alone again. */
    for (struct meta_propose *q = req, *next; rc == 0 && q; q = next) {
        next = q->next;
        q->next = NULL;
    }
    free(bufs);
    free(ps);
    return rc;
}

static const struct meta_log_ops raft_log_ops = {.append = log_append};

void meta_raft_log_init(struct meta_raft *r, struct meta_log *log)
{
    meta_log_init(log, &raft_log_ops, r->db, r);
    /* One raft_apply() is one AppendEntries to each follower, which
     * answers it and commits its own transaction: records that come
     * together should go together. */
    log->gather = true;
}

/* ---- Leadership --------------------------------------------------------- */

static void role_set(struct meta_raft *r, bool leading)
{
    if (r->leading == leading)
        return;
    /* The daemon reads the database to lead: every record first. */
    deferred_run(r);
    r->leading = leading;
    log_info("meta raft: %s: id=%llu term=%llu applied=%llu",
             leading ? "leading" : "no longer leading",
             (unsigned long long)r->raft.id,
             (unsigned long long)r->raft.current_term,
             (unsigned long long)r->applied);
    if (r->role_cb)
        r->role_cb(r->role_arg, leading);
    /* Raft fails the requests it has (on_applied()); the records appended
     * behind one whose request already completed it never calls back for.
     * After the daemon closed its connections, as for those. */
    if (!leading)
        pending_fail_followers(r, NULL, -EREMCHG);
}

static void on_barrier(struct raft_barrier *b, int status)
{
    struct meta_raft *r = b->data;

    r->barrier_pending = false;
    if (status != 0 || r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return;
    r->lead_term = r->raft.current_term;
    role_set(r, true);
}

static void on_poll(uv_timer_t *t)
{
    struct meta_raft *r = t->data;
    bool leader = raft_state(&r->raft) == RAFT_LEADER;

    if (r->closing)
        return;
    if (r->leading && (!leader || r->raft.current_term != r->lead_term))
        role_set(r, false);
    if (leader && !r->leading && !r->barrier_pending) {
        r->barrier.data = r;
        if (raft_barrier(&r->raft, &r->barrier, on_barrier) == 0)
            r->barrier_pending = true;
    }
}

void meta_raft_on_role(struct meta_raft *r, meta_raft_role_cb cb, void *arg)
{
    r->role_cb = cb;
    r->role_arg = arg;
}

void meta_raft_info(struct meta_raft *r, struct meta_raft_info *out)
{
    const struct raft_configuration *c = &r->raft.configuration;
    raft_id leader = 0;
    const char *addr = NULL;

    memset(out, 0, sizeof(*out));
    raft_leader(&r->raft, &leader, &addr);
    out->id = r->raft.id;
    out->leader_id = leader;
    out->term = r->raft.current_term;
    out->commit = r->raft.commit_index;
    out->applied = r->applied;
    out->last_index = raft_last_index(&r->raft);
    out->leading = r->leading;
    for (unsigned i = 0; i < c->n && i < META_RAFT_MEMBERS_MAX; i++) {
        struct meta_raft_member *m = &out->members[out->nmembers++];

        m->id = c->servers[i].id;
        snprintf(m->raft_addr, sizeof(m->raft_addr), "%s",
                 c->servers[i].address);
        m->voter = c->servers[i].role == RAFT_VOTER;
    }
}

/* ---- Membership changes ------------------------------------------------- */

static void on_changed(struct raft_change *rc, int status)
{
    struct change *ch = rc->data;
    int rv;

    if (status == 0 && ch->promote) {
        /* Added as a spare: a voter once it has caught up (raft_assign
         * waits for that). */
        ch->promote = false;
        rv = raft_assign(&ch->r->raft, &ch->rc, ch->id, RAFT_VOTER, on_changed);
        if (rv == 0)
            return;
        status = rv;
    }
    ch->cb(ch->arg, errno_of_raft(status));
    free(ch);
}

static int change_start(struct meta_raft *r, uint64_t id, const char *addr,
                        void (*cb)(void *, int), void *arg)
{
    struct change *ch;
    int rv;

    if (!r->leading)
        return -EREMCHG;
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    ch->rc.data = ch;
    ch->r = r;
    ch->id = id;
    ch->cb = cb;
    ch->arg = arg;
    ch->promote = addr != NULL;
    rv = addr ? raft_add(&r->raft, &ch->rc, id, addr, on_changed)
              : raft_remove(&r->raft, &ch->rc, id, on_changed);
    if (rv != 0) {
        free(ch);
        return errno_of_raft(rv);
    }
    return 0;
}

int meta_raft_member_add(struct meta_raft *r, uint64_t id,
                         const char *raft_addr, void (*cb)(void *, int),
                         void *arg)
{
    return change_start(r, id, raft_addr, cb, arg);
}

int meta_raft_member_remove(struct meta_raft *r, uint64_t id,
                            void (*cb)(void *, int), void *arg)
{
    return change_start(r, id, NULL, cb, arg);
}

/* ---- Lifecycle ---------------------------------------------------------- */

static int bootstrap(struct meta_raft *r, const char *spec)
{
    struct meta_raft_member m[META_RAFT_MEMBERS_MAX];
    struct raft_configuration conf;
    int n = meta_raft_members_parse(spec, m, META_RAFT_MEMBERS_MAX);
    int rv = 0;

    if (n < 0) {
        log_error("meta raft: bad --bootstrap: %s", spec);
        return n;
    }
    raft_configuration_init(&conf);
    for (int i = 0; i < n && rv == 0; i++)
        rv = raft_configuration_add(&conf, m[i].id, m[i].raft_addr, RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        /* A restart: the membership is in the raft files already. */
        log_info("meta raft: already bootstrapped; --bootstrap ignored");
        return 0;
    }
    if (rv != 0) {
        log_error("meta raft: bootstrap: %s", raft_errmsg(&r->raft));
        return errno_of_raft(rv);
    }
    log_info("meta raft: bootstrapped a new group: members=%d", n);
    return 0;
}

/* raft_uv keeps its term and vote in metadata1/metadata2 (raft/uv.h). */
static bool raft_state_exists(const char *dir)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof(path), "%s/metadata1", dir);
    if (stat(path, &st) == 0)
        return true;
    snprintf(path, sizeof(path), "%s/metadata2", dir);
    return stat(path, &st) == 0;
}

int meta_raft_open(uv_loop_t *loop, struct meta_db *db,
                   const struct meta_raft_opts *opts, struct meta_raft **out)
{
    struct meta_raft *r = calloc(1, sizeof(*r));
    int rv, rc;

    if (!r)
        return -ENOMEM;
    r->loop = loop;
    r->db = db;
    r->dq_tail = &r->dq_head;
    snprintf(r->dir, sizeof(r->dir), "%s", opts->dir);
    if (mkdir(r->dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        log_error("meta raft: cannot create %s: %s", r->dir, strerror(-rc));
        free(r);
        return rc;
    }
    /* No raft state yet (a new group, a wiped or new replica): the log
     * starts afresh and the applied index the database may hold from
     * another log means nothing (docs/operations.md, "Majority loss"). */
    if (!raft_state_exists(r->dir)) {
        rc = meta_db_applied_reset(db);
        if (rc < 0) {
            free(r);
            return rc;
        }
    }
    rc = meta_db_applied(db, &r->applied);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->fsm.version = 2;
    r->fsm.data = r;
    r->fsm.apply = fsm_apply;
    r->fsm.snapshot = fsm_snapshot;
    r->fsm.snapshot_finalize = fsm_snapshot_finalize;
    r->fsm.restore = fsm_restore;
    rv = raft_uv_tcp_init(&r->transport, loop);
    if (rv != 0) {
        free(r);
        return -ENOMEM;
    }
    rv = raft_uv_init(&r->io, loop, r->dir, &r->transport);
    if (rv != 0) {
        log_error("meta raft: cannot open %s: %s", r->dir, r->io.errmsg);
        raft_uv_tcp_close(&r->transport);
        free(r);
        return errno_of_raft(rv);
    }
    rv = raft_init(&r->raft, &r->io, &r->fsm, opts->id, opts->addr);
    if (rv != 0) {
        log_error("meta raft: init: %s", raft_errmsg(&r->raft));
        raft_uv_close(&r->io);
        raft_uv_tcp_close(&r->transport);
        free(r);
        return errno_of_raft(rv);
    }
    r->raft.data = r;
    raft_set_election_timeout(&r->raft, META_RAFT_ELECTION_MS);
    raft_set_heartbeat_timeout(&r->raft, META_RAFT_HEARTBEAT_MS);
    raft_set_pre_vote(&r->raft, true);
    raft_set_install_snapshot_timeout(&r->raft, META_RAFT_INSTALL_SNAPSHOT_MS);
    r->fixed_threshold = opts->snapshot_every != 0;
    raft_set_snapshot_threshold(&r->raft, opts->snapshot_every
                                              ? opts->snapshot_every
                                              : META_RAFT_SNAPSHOT_MIN);
    raft_set_snapshot_trailing(&r->raft, opts->snapshot_trailing
                                             ? opts->snapshot_trailing
                                             : META_RAFT_SNAPSHOT_TRAILING);
    rc = opts->bootstrap ? bootstrap(r, opts->bootstrap) : 0;
    if (rc == 0) {
        rv = raft_start(&r->raft);
        if (rv != 0) {
            log_error("meta raft: start: %s", raft_errmsg(&r->raft));
            rc = errno_of_raft(rv);
        }
    }
    uv_timer_init(loop, &r->poll);
    r->poll.data = r;
    uv_timer_init(loop, &r->dq_timer);
    r->dq_timer.data = r;
    uv_unref((uv_handle_t *)&r->dq_timer);
    uv_timer_init(loop, &r->commit_timer);
    r->commit_timer.data = r;
    uv_unref((uv_handle_t *)&r->commit_timer);
    r->dq_ready = true;
    /* Unreferenced: they run on every turn of the loop but keep it alive
     * no more than the raft handles do. */
    uv_prepare_init(loop, &r->before_poll);
    r->before_poll.data = r;
    uv_prepare_start(&r->before_poll, on_before_poll);
    uv_unref((uv_handle_t *)&r->before_poll);
    uv_check_init(loop, &r->after_poll);
    r->after_poll.data = r;
    uv_check_start(&r->after_poll, on_after_poll);
    uv_unref((uv_handle_t *)&r->after_poll);
    if (rc < 0) {
        /* The handles close as the caller's loop runs down; *out is the
         * caller's to free then (meta_raft.h). */
        meta_raft_close(r);
        *out = r;
        return rc;
    }
    uv_timer_start(&r->poll, on_poll, META_RAFT_POLL_MS, META_RAFT_POLL_MS);
    log_info("meta raft: started: id=%llu raft=%s dir=%s applied=%llu",
             (unsigned long long)opts->id, opts->addr, r->dir,
             (unsigned long long)r->applied);
    *out = r;
    return 0;
}

static void on_raft_closed(struct raft *raft)
{
    struct meta_raft *r = raft->data;

    raft_uv_close(&r->io);
    raft_uv_tcp_close(&r->transport);
}

void meta_raft_close(struct meta_raft *r)
{
    if (!r || r->closing)
        return;
    deferred_run(r);
    r->closing = true;
    r->raft.data = r;
    batch_commit(r);
    uv_close((uv_handle_t *)&r->poll, NULL);
    if (r->dq_ready) {
        uv_close((uv_handle_t *)&r->dq_timer, NULL);
        uv_close((uv_handle_t *)&r->commit_timer, NULL);
    }
    uv_close((uv_handle_t *)&r->before_poll, NULL);
    uv_close((uv_handle_t *)&r->after_poll, NULL);
    raft_close(&r->raft, on_raft_closed);
}

void meta_raft_free(struct meta_raft *r)
{
    free(r);
}
