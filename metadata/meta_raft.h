/* meta_raft.h: the replicated log of a metad group: a struct meta_log_ops
 * over libraft (Debian's libraft-dev, canonical/raft on libuv), and the
 * leadership metad's daemon follows (docs/architecture.md, "The
 * replicated log").
 */
#ifndef TESSERA_META_RAFT_H
#define TESSERA_META_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meta.h"
#include "meta_propose.h"

#define META_RAFT_ADDR_MAX 256
#define META_RAFT_MEMBERS_MAX 16
#define META_RAFT_ELECTION_MS 1000 /* raft: randomized to 1-2x */
#define META_RAFT_HEARTBEAT_MS 100
#define META_RAFT_POLL_MS 50 /* how often leadership is looked at */
/* A follower applies the records the leader committed this long after the
 * first of them, or once this many wait (meta_raft.c, fsm_apply()). */
#define META_RAFT_DEFER_MS 50
#define META_RAFT_DEFER_MAX 1024
/* The leader commits the records it applied this long after the first of
 * them (meta_raft.c, turn_end()). */
#define META_RAFT_COMMIT_MS 50
/* Records between snapshots, unless --snapshot-every fixes it: at least
 * META_RAFT_SNAPSHOT_MIN, and one for every META_RAFT_SNAPSHOT_BYTES bytes
 * of the last snapshot, so that copying the database costs each record a
 * bounded share however large the namespace grows (meta_raft.c). */
#define META_RAFT_SNAPSHOT_MIN 4096
#define META_RAFT_SNAPSHOT_BYTES 256
#define META_RAFT_SNAPSHOT_MAX (1u << 22)
#define META_RAFT_SNAPSHOT_TRAILING 128
/* An InstallSnapshot not answered within this is sent again (raft's
 * default, 30 s, leaves a re-joining replica behind that long). */
#define META_RAFT_INSTALL_SNAPSHOT_MS 5000

struct meta_raft;

/* The replica now leads (@leading, and every record committed before it
 * became leader is applied to its database) or no longer does. */
typedef void (*meta_raft_role_cb)(void *arg, bool leading);

struct meta_raft_opts {
    const char *dir;         /* raft's own files (created if missing) */
    uint64_t id;             /* this replica, > 0 */
    const char *addr;        /* raft host:port, listened on */
    const char *bootstrap;   /* "1=host:port,2=..." for a new group, or NULL */
    unsigned snapshot_every; /* 0: follows the database's size */
    unsigned snapshot_trailing; /* 0: META_RAFT_SNAPSHOT_TRAILING */
};

/* One member of the group as the current configuration lists it. */
struct meta_raft_member {
    uint64_t id;
    char raft_addr[META_RAFT_ADDR_MAX];
    bool voter;
};

struct meta_raft_info {
    uint64_t id;        /* this replica */
    uint64_t leader_id; /* 0: none known */
    uint64_t term, commit, applied, last_index;
    bool leading;
    size_t nmembers;
    struct meta_raft_member members[META_RAFT_MEMBERS_MAX];
};

/* Parse --bootstrap "1=host:port,2=host:port" into @members (at most
 * @max): their count, or -EINVAL (a bad id, a missing address, a
 * duplicate id or address, or too many). */
int meta_raft_members_parse(const char *spec, struct meta_raft_member *members,
                            size_t max);

/* Records between snapshots after one of @bytes, unless --snapshot-every
 * fixes them: META_RAFT_SNAPSHOT_MIN to META_RAFT_SNAPSHOT_MAX, one per
 * META_RAFT_SNAPSHOT_BYTES. */
unsigned meta_raft_snapshot_threshold(size_t bytes);

/* Open raft's files under opts->dir (bootstrapping a new group with
 * opts->bootstrap when they are empty; on a restart the membership comes
 * from them), listen on opts->addr and start.  Records committed by the
 * group are applied to @db (borrowed until meta_raft_free()).  Caller owns
 * *out: meta_raft_close(), then once uv_run() returned meta_raft_free().
 * 0, or -errno (logged); on an error *out is NULL, or, when raft had
 * started to open, closing already and still to be freed once uv_run()
 * returned. */
int meta_raft_open(uv_loop_t *loop, struct meta_db *db,
                   const struct meta_raft_opts *opts, struct meta_raft **out);
/* Make @log the log that proposes to @r (meta_propose.h): records are
 * raft_apply()'d and commit once a majority has them; only a leading
 * replica takes them (-EREMCHG otherwise). */
void meta_raft_log_init(struct meta_raft *r, struct meta_log *log);
/* Add the log's latency stages (meta.raft.commit, meta.raft.apply) to
 * the ones lat_dump() and the metrics show.  Once, at startup. */
void meta_raft_stats_register(void);
/* Tell @cb about every change of leadership from now on. */
void meta_raft_on_role(struct meta_raft *r, meta_raft_role_cb cb, void *arg);
/* What the group looks like from here. */
void meta_raft_info(struct meta_raft *r, struct meta_raft_info *out);
/* Change the membership (leader only): add @id at @raft_addr as a voter,
 * or remove @id.  @cb(@arg, status) once it is committed (0) or failed
 * (-errno); on an error return @cb is never called. */
int meta_raft_member_add(struct meta_raft *r, uint64_t id,
                         const char *raft_addr, void (*cb)(void *, int),
                         void *arg);
int meta_raft_member_remove(struct meta_raft *r, uint64_t id,
                            void (*cb)(void *, int), void *arg);
/* Stop: pending proposals fail, the handles close as the loop runs. */
void meta_raft_close(struct meta_raft *r);
void meta_raft_free(struct meta_raft *r);

#endif
