/* meta_db.c: the SQLite database behind the metadata state machine.
 *
 * It opens the database, sets the pragmas (WAL, synchronous=FULL, foreign
 * keys, temp_store=MEMORY: the journal of a record's savepoint in a batch
 * stays in memory), creates or migrates the schema (PRAGMA user_version
 * counts the migrations applied), creates the root directory, and prepares
 * every SQL statement once; the statements live in struct meta_db until
 * close.  It also holds the row helpers (inodes, directory entries,
 * counters) that the rest of metadata/ uses instead of SQL.  Deciding what
 * a request means is left to meta_ns.c, meta_chunk.c and meta_query.c;
 * transactions are driven by meta_apply.c.
 *
 * Schema (migration 1):
 *   inodes    one row per inode; ino AUTOINCREMENT so numbers are never
 *             reused; target holds a symlink's target.
 *   dirents   (parent, name) -> ino, with a monotonic id for READDIR
 *             cookies.  A directory has exactly one entry naming it.
 *   xattrs    (ino, name) -> value.
 *   chunks    chunk_id -> (ino, idx, version); replicas lists its servers
 *             in chain order.
 *   gc        replicas waiting for deletion on a chunk server.
 *   servers, sessions, oplog, counters.
 *
 * Migration 2 adds sessions.lease_ms, servers.state and servers.state_time
 * (replication management, docs/protocol.md §11).
 *
 * Migration 3 (snapshots and clones, docs/vmdisk.md) splits the chunk map
 * in two so that chunks can be shared: slots (ino, idx) -> chunk_id, and
 * chunks chunk_id -> version.  A chunk's reference count is the number of
 * slots naming it (counted through the slots_chunk index, never stored, so
 * it cannot drift); a chunk row lives exactly as long as some slot names
 * it.  inodes.flags gains META_INODE_READONLY (a snapshot).  Rebuilding
 * the chunks table needs foreign keys off, so they are switched on only
 * after the migrations ran.
 *
 * Migration 4 (open-unlinked files, docs/protocol.md §6.22) adds holds:
 * (session_id, ino) for each regular file a session holds open.  A file
 * whose last name goes while it is held stays as an orphan, an inode row
 * with nlink 0 and no entry (found through the inodes_orphan index), until
 * the last hold on it ends (meta_hold.c).
 *
 * Migration 5 adds inodes.origin, the inode a snapshot or clone was made
 * from (IMAGE_LIST).
 *
 * Migration 6 adds oplog.format, the record's format version (meta_op.h).
 *
 * Migration 7 adds chunks.origin, the chunk a copy-on-write copy was made
 * from: the lineage IMAGE_CHANGES follows (meta_image_changes.c).
 *
 * Migration 8 (authentication, docs/security.md) adds identities: name ->
 * (secret, capabilities text), and service_keys: id -> secret, the keys
 * tickets are sealed with.
 *
 * Migration 9 (replicated metadata, docs/architecture.md) adds members:
 * id -> (client address, raft address) of each replica of a metad group.
 *
 * Migration 10 adds chunks.alloc, the bytes the chunk takes on the disk
 * of the first replica of its chain (META_OP_CHUNK_USAGE): NULL (not
 * reported yet) for the chunks made before and for every new chunk,
 * until a server reports it.
 *
 * Migration 11 adds replies: (session_id, slot) -> (req_id, status, body),
 * the outcomes of a session's last requests, so that a request sent again
 * is answered as the first time (meta_once.c).
 *
 * Migration 12 adds ino_ranges: (session_id, first) -> end, the inode
 * numbers [first, end) reserved to a session (INO_RESERVE, meta_ino.c),
 * which the session's MKNOD may give a new file itself.  The allocator
 * is the inodes table's AUTOINCREMENT counter (sqlite_sequence): a
 * reservation moves it past the range, so no inode is ever numbered from
 * it but by that session.
 *
 * Timestamps of the root are 0 at creation: opening reads no clock, so two
 * databases built from the same op log are equal.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "lat.h"
#include "log.h"

static const char *const migrations[] = {
    /* 1: initial schema. */
    "CREATE TABLE inodes("
    " ino INTEGER PRIMARY KEY AUTOINCREMENT,"
    " mode INTEGER NOT NULL, nlink INTEGER NOT NULL,"
    " uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL,"
    " goal INTEGER NOT NULL, size INTEGER NOT NULL,"
    " atime INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL,"
    " version INTEGER NOT NULL, target BLOB);"
    "CREATE TABLE dirents("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " parent INTEGER NOT NULL REFERENCES inodes(ino),"
    " name BLOB NOT NULL,"
    " ino INTEGER NOT NULL REFERENCES inodes(ino),"
    " UNIQUE(parent, name));"
    "CREATE INDEX dirents_list ON dirents(parent, id);"
    "CREATE INDEX dirents_ino ON dirents(ino);"
    "CREATE TABLE xattrs("
    " ino INTEGER NOT NULL REFERENCES inodes(ino) ON DELETE CASCADE,"
    " name BLOB NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(ino, name));"
    "CREATE TABLE servers("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " uuid BLOB NOT NULL UNIQUE, addr TEXT NOT NULL,"
    " capacity INTEGER NOT NULL, free INTEGER NOT NULL);"
    "CREATE TABLE chunks("
    " chunk_id INTEGER PRIMARY KEY,"
    " ino INTEGER NOT NULL REFERENCES inodes(ino),"
    " idx INTEGER NOT NULL, version INTEGER NOT NULL,"
    " UNIQUE(ino, idx));"
    "CREATE TABLE replicas("
    " chunk_id INTEGER NOT NULL REFERENCES chunks(chunk_id) ON DELETE CASCADE,"
    " pos INTEGER NOT NULL,"
    " server_id INTEGER NOT NULL REFERENCES servers(id),"
    " PRIMARY KEY(chunk_id, pos));"
    "CREATE TABLE gc("
    " chunk_id INTEGER NOT NULL, version INTEGER NOT NULL,"
    " server_id INTEGER NOT NULL,"
    " PRIMARY KEY(chunk_id, server_id));"
    "CREATE TABLE sessions("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL, host TEXT NOT NULL, opened INTEGER NOT NULL);"
    "CREATE TABLE oplog("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " opcode INTEGER NOT NULL, now INTEGER NOT NULL,"
    " session_id INTEGER NOT NULL, payload BLOB NOT NULL);"
    "CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO inodes(ino, mode, nlink, uid, gid, rdev, goal, size,"
    " atime, mtime, ctime, version) VALUES(1, 16877, 2, 0, 0, 0, 3, 4096,"
    " 0, 0, 0, 1);",
    /* 2: replication management: each session's granted lease, each
     * server's administrative state (1 = draining) and the time of its last
     * change, and an index for per-server walks. */
    "ALTER TABLE sessions ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE servers ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE servers ADD COLUMN state_time INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX replicas_server ON replicas(server_id);"
    "CREATE INDEX gc_server ON gc(server_id, chunk_id);",
    /* 3: shared chunks.  The slot -> chunk reference is checked at commit
     * (DEFERRABLE), so a record may drop a chunk row and its last slot in
     * either order. */
    "CREATE TABLE chunks_new("
    " chunk_id INTEGER PRIMARY KEY, version INTEGER NOT NULL);"
    "INSERT INTO chunks_new SELECT chunk_id, version FROM chunks;"
    "CREATE TABLE slots("
    " ino INTEGER NOT NULL REFERENCES inodes(ino),"
    " idx INTEGER NOT NULL,"
    " chunk_id INTEGER NOT NULL REFERENCES chunks(chunk_id)"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " PRIMARY KEY(ino, idx)) WITHOUT ROWID;"
    "INSERT INTO slots SELECT ino, idx, chunk_id FROM chunks;"
    "DROP TABLE chunks;"
    "ALTER TABLE chunks_new RENAME TO chunks;"
    "CREATE INDEX slots_chunk ON slots(chunk_id);"
    "ALTER TABLE inodes ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;",
    /* 4: open handles that keep an unlinked file alive. */
    "CREATE TABLE holds("
    " session_id INTEGER NOT NULL,"
    " ino INTEGER NOT NULL REFERENCES inodes(ino),"
    " PRIMARY KEY(session_id, ino)) WITHOUT ROWID;"
    "CREATE INDEX holds_ino ON holds(ino);"
    "CREATE INDEX inodes_orphan ON inodes(ino) WHERE nlink = 0;",
    /* 5: lineage.  The file a snapshot or clone was made from (0: none);
     * inode numbers are never reused, so a removed origin stays told
     * apart from a live one. */
    "ALTER TABLE inodes ADD COLUMN origin INTEGER NOT NULL DEFAULT 0;",
    /* 6: each op log record's format version (meta_op.h); the records
     * written before it are all format 1. */
    "ALTER TABLE oplog ADD COLUMN format INTEGER NOT NULL DEFAULT 1;",
    /* 7: the chunk a copy-on-write copy was made from: 0 for a chunk
     * created empty, NULL (unknown) for the chunks made before. */
    "ALTER TABLE chunks ADD COLUMN origin INTEGER;",
    /* 8: identities and the service keys that seal tickets. */
    "CREATE TABLE identities("
    " name TEXT PRIMARY KEY, secret BLOB NOT NULL, caps TEXT NOT NULL);"
    "CREATE TABLE service_keys("
    " id INTEGER PRIMARY KEY, secret BLOB NOT NULL, created INTEGER NOT NULL);",
    /* 9: the replicas of a metad group (META_OP_MEMBER). */
    "CREATE TABLE members("
    " id INTEGER PRIMARY KEY, client_addr TEXT NOT NULL,"
    " raft_addr TEXT NOT NULL);",
    /* 10: each chunk's bytes on disk (st_blocks, docs/protocol.md §4.2). */
    "ALTER TABLE chunks ADD COLUMN alloc INTEGER;",
    /* 11: the outcomes of a session's last requests (meta_once.c). */
    "CREATE TABLE replies("
    " session_id INTEGER NOT NULL, slot INTEGER NOT NULL,"
    " req_id INTEGER NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY(session_id, slot)) WITHOUT ROWID;",
    /* 12: the inode numbers reserved to a session (meta_ino.c). */
    "CREATE TABLE ino_ranges("
    " session_id INTEGER NOT NULL, first INTEGER NOT NULL,"
    " end_ino INTEGER NOT NULL,"
    " PRIMARY KEY(session_id, first)) WITHOUT ROWID;",
};

#define NMIGRATIONS (int)(sizeof(migrations) / sizeof(migrations[0]))

/* The reference count of chunk row alias @t: slots naming its chunk. */
#define REFS(t)                                                                \
    "(SELECT count(*) FROM slots o WHERE o.chunk_id = " t ".chunk_id)"
/* Slot s of file ?1 at index >= ?2 names a chunk no other slot names. */
#define LAST_REF                                                               \
    "NOT EXISTS (SELECT 1 FROM slots o WHERE o.chunk_id = s.chunk_id"          \
    " AND NOT (o.ino = ?1 AND o.idx >= ?2))"

/* Bytes of file row i inside slot s (?2 the chunk size), and 1 when the
 * slot's chunk is shared, else 0. */
#define SLOT_LEN "max(0, min(?2, i.size - s.idx * ?2))"
#define SLOT_SHARED "(" REFS("s") " > 1)"

/* The bytes inode @T's file takes on disk: st_blocks (meta_attr_from_row(),
 * docs/protocol.md §4.2 "blocks").  Each chunk it holds counts what its
 * first replica reported (chunks.alloc); one not reported yet (NULL: a
 * new chunk, or one made before the figure was kept) counts up to the
 * file's size, the chunk's bytes in the file, so a file with data never
 * shows 0 blocks (tar --sparse takes a file of 0 blocks for holes alone
 * and archives none of its data).  Holes, the slots without a chunk, count nothing; a
 * shared chunk counts in every file holding it. */
#define CHUNK_SIZE_SQL "67108864"
_Static_assert(PROTO_CHUNK_SIZE == 67108864, "CHUNK_SIZE_SQL");
#define ALLOC_COL(T)                                                           \
    "(SELECT total(coalesce(ch.alloc, max(0, min(" CHUNK_SIZE_SQL ", " T       \
    ".size - sl.idx * " CHUNK_SIZE_SQL ")))) FROM slots sl"                    \
    " JOIN chunks ch ON ch.chunk_id = sl.chunk_id WHERE sl.ino = " T ".ino)"
#define INODE_COLS                                                             \
    "ino, mode, nlink, uid, gid, rdev, goal, size, atime, mtime, ctime, "      \
    "version, " ALLOC_COL("inodes")
#define INODE_COLS_OF_I                                                        \
    "i.ino, i.mode, i.nlink, i.uid, i.gid, i.rdev, i.goal, i.size, i.atime, "  \
    "i.mtime, i.ctime, i.version, " ALLOC_COL("i")

static const char *const sql[META_ST_COUNT] = {
    [META_ST_BEGIN] = "BEGIN IMMEDIATE",
    [META_ST_COMMIT] = "COMMIT",
    [META_ST_ROLLBACK] = "ROLLBACK",
    [META_ST_SAVEPOINT] = "SAVEPOINT meta_record",
    [META_ST_RELEASE] = "RELEASE meta_record",
    [META_ST_ROLLBACK_TO] = "ROLLBACK TO meta_record",
    [META_ST_INODE_GET] = "SELECT " INODE_COLS " FROM inodes WHERE ino = ?1",
    [META_ST_INODE_ALLOC] =
        "SELECT " ALLOC_COL("inodes") " FROM inodes WHERE ino = ?1",
    /* ?1 NULL: the next number of the AUTOINCREMENT counter. */
    [META_ST_INODE_INSERT] =
        "INSERT INTO inodes(ino, mode, nlink, uid, gid, rdev, goal, size,"
        " atime, mtime, ctime, version, target)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* The last inode number the allocator handed out or passed over. */
    [META_ST_INO_LAST] =
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence"
        " WHERE name = 'inodes'), 0), (SELECT coalesce(max(ino), 0)"
        " FROM inodes))",
    [META_ST_INO_SKIP] =
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'inodes'",
    [META_ST_INO_RANGE_ADD] =
        "INSERT INTO ino_ranges(session_id, first, end_ino) VALUES(?1, ?2, ?3)",
    /* Keep the session's ?2 newest ranges (the highest: the allocator
     * only grows). */
    [META_ST_INO_RANGE_TRIM] =
        "DELETE FROM ino_ranges WHERE session_id = ?1 AND first NOT IN"
        " (SELECT first FROM ino_ranges WHERE session_id = ?1"
        " ORDER BY first DESC LIMIT ?2)",
    [META_ST_INO_RANGE_HAS] =
        "SELECT 1 FROM ino_ranges WHERE session_id = ?1 AND first <= ?2"
        " AND ?2 < end_ino",
    [META_ST_INO_RANGE_DEL_SESSION] =
        "DELETE FROM ino_ranges WHERE session_id = ?1",
    [META_ST_INODE_UPDATE] =
        "UPDATE inodes SET mode = ?2, nlink = ?3, uid = ?4, gid = ?5,"
        " rdev = ?6, goal = ?7, size = ?8, atime = ?9, mtime = ?10,"
        " ctime = ?11, version = ?12 WHERE ino = ?1",
    [META_ST_INODE_DELETE] = "DELETE FROM inodes WHERE ino = ?1",
    [META_ST_INODE_STATS] = "SELECT count(*), total((mode & 61440) = 16384),"
                            " total((mode & 61440) = 32768), total(nlink = 0)"
                            " FROM inodes",
    [META_ST_SYMLINK_GET] = "SELECT mode, target FROM inodes WHERE ino = ?1",
    [META_ST_DIRENT_GET] =
        "SELECT id, ino FROM dirents WHERE parent = ?1 AND name = ?2",
    [META_ST_DIRENT_INSERT] =
        "INSERT INTO dirents(parent, name, ino) VALUES(?1, ?2, ?3)",
    [META_ST_DIRENT_DELETE] = "DELETE FROM dirents WHERE id = ?1",
    [META_ST_DIRENT_MOVE] =
        "UPDATE dirents SET parent = ?2, name = ?3 WHERE id = ?1",
    [META_ST_DIRENT_SET_INO] = "UPDATE dirents SET ino = ?2 WHERE id = ?1",
    [META_ST_DIRENT_PARENT] =
        "SELECT parent FROM dirents WHERE ino = ?1 ORDER BY id LIMIT 1",
    [META_ST_DIRENT_ANY] = "SELECT 1 FROM dirents WHERE parent = ?1 LIMIT 1",
    [META_ST_DIRENT_LIST] =
        "SELECT d.id, d.name, " INODE_COLS_OF_I
        " FROM dirents d JOIN inodes i ON i.ino = d.ino"
        " WHERE d.parent = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
    [META_ST_XATTR_GET] =
        "SELECT value FROM xattrs WHERE ino = ?1 AND name = ?2",
    [META_ST_XATTR_PUT] =
        "INSERT OR REPLACE INTO xattrs(ino, name, value) VALUES(?1, ?2, ?3)",
    [META_ST_XATTR_DELETE] = "DELETE FROM xattrs WHERE ino = ?1 AND name = ?2",
    [META_ST_XATTR_LIST] =
        "SELECT name FROM xattrs WHERE ino = ?1 ORDER BY name",
    /* Chunk rows: chunk_id, version, a slot holding it (the lowest), the
     * number of slots holding it. */
    [META_ST_CHUNK_GET] =
        "SELECT c.chunk_id, c.version, coalesce(s.ino, 0),"
        " coalesce(s.idx, 0), " REFS(
            "c") " FROM chunks c"
                 " LEFT JOIN slots s ON s.chunk_id = c.chunk_id"
                 " WHERE c.chunk_id = ?1 ORDER BY s.ino, s.idx LIMIT 1",
    [META_ST_CHUNK_AT] = "SELECT c.chunk_id, c.version, s.ino, s.idx, " REFS(
        "c") " FROM slots s JOIN chunks c ON c.chunk_id = s.chunk_id"
             " WHERE s.ino = ?1 AND s.idx = ?2",
    [META_ST_CHUNK_RANGE] = "SELECT c.chunk_id, c.version, s.ino, s.idx, " REFS(
        "c") " FROM slots s JOIN chunks c ON c.chunk_id = s.chunk_id"
             " WHERE s.ino = ?1 AND s.idx >= ?2 AND s.idx < ?3 ORDER BY s.idx",
    [META_ST_CHUNK_INSERT] =
        "INSERT INTO chunks(chunk_id, version, origin, alloc)"
        " VALUES(?1, ?2, 0, NULL)",
    [META_ST_CHUNK_SET_VERSION] =
        "UPDATE chunks SET version = ?2 WHERE chunk_id = ?1",
    /* Dropping slots [?2, end) of file ?1: only the chunks no slot
     * outside that range still names lose their last reference. */
    [META_ST_CHUNK_GC_FROM] =
        "INSERT OR IGNORE INTO gc(chunk_id, version, server_id)"
        " SELECT c.chunk_id, c.version, r.server_id FROM slots s"
        " JOIN chunks c ON c.chunk_id = s.chunk_id"
        " JOIN replicas r ON r.chunk_id = c.chunk_id"
        " WHERE s.ino = ?1 AND s.idx >= ?2 AND " LAST_REF,
    [META_ST_CHUNK_DROP_FROM] =
        "DELETE FROM chunks WHERE chunk_id IN (SELECT s.chunk_id FROM slots s"
        " WHERE s.ino = ?1 AND s.idx >= ?2 AND " LAST_REF ")",
    [META_ST_REPLICA_LIST] =
        "SELECT r.server_id, coalesce(s.addr, '') FROM replicas r"
        " LEFT JOIN servers s ON s.id = r.server_id"
        " WHERE r.chunk_id = ?1 ORDER BY r.pos",
    [META_ST_REPLICA_CLEAR] = "DELETE FROM replicas WHERE chunk_id = ?1",
    [META_ST_REPLICA_ADD] =
        "INSERT INTO replicas(chunk_id, pos, server_id) VALUES(?1, ?2, ?3)",
    [META_ST_GC_ADD] = "INSERT OR IGNORE INTO gc(chunk_id, version, server_id)"
                       " VALUES(?1, ?2, ?3)",
    [META_ST_GC_DONE] = "DELETE FROM gc WHERE chunk_id = ?1 AND server_id = ?2",
    [META_ST_GC_LIST] = "SELECT chunk_id, version, server_id FROM gc"
                        " ORDER BY chunk_id, server_id LIMIT ?1",
    [META_ST_SERVER_BY_UUID] = "SELECT id FROM servers WHERE uuid = ?1",
    [META_ST_SERVER_INSERT] = "INSERT INTO servers(uuid, addr, capacity, free)"
                              " VALUES(?1, ?2, ?3, ?4)",
    [META_ST_SERVER_UPDATE] =
        "UPDATE servers SET addr = ?2, capacity = ?3, free = ?4 WHERE id = ?1",
    [META_ST_SERVER_EXISTS] = "SELECT 1 FROM servers WHERE id = ?1",
    [META_ST_SERVER_LIST] =
        "SELECT id, uuid, addr, state, state_time FROM servers ORDER BY id",
    [META_ST_SERVER_SPACE] =
        "SELECT count(*), total(capacity), total(free) FROM servers",
    [META_ST_SESSION_INSERT] =
        "INSERT INTO sessions(name, host, opened, lease_ms)"
        " VALUES(?1, ?2, ?3, ?4)",
    [META_ST_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [META_ST_SESSION_LIST] =
        "SELECT id, name, host, lease_ms FROM sessions ORDER BY id",
    [META_ST_SESSION_COUNT] = "SELECT count(*) FROM sessions",
    [META_ST_OPLOG_APPEND] = "INSERT INTO oplog(opcode, now, session_id,"
                             " payload, format) VALUES(?1, ?2, ?3, ?4, ?5)",
    [META_ST_OPLOG_LIST] = "SELECT seq, opcode, now, session_id, payload,"
                           " format FROM oplog WHERE seq > ?1 ORDER BY seq",
    [META_ST_OPLOG_COUNT] = "SELECT count(*) FROM oplog",
    [META_ST_OPLOG_PRUNE] = "DELETE FROM oplog WHERE seq <= ?1",
    [META_ST_MEMBER_SET] = "INSERT OR REPLACE INTO members(id, client_addr,"
                           " raft_addr) VALUES(?1, ?2, ?3)",
    [META_ST_MEMBER_DEL] = "DELETE FROM members WHERE id = ?1",
    [META_ST_MEMBER_GET] =
        "SELECT client_addr, raft_addr FROM members WHERE id = ?1",
    [META_ST_ONCE_GET] = "SELECT req_id, status, body FROM replies"
                         " WHERE session_id = ?1 AND slot = ?2",
    [META_ST_ONCE_PUT] =
        "INSERT OR REPLACE INTO replies(session_id, slot, req_id, status, body)"
        " VALUES(?1, ?2, ?3, ?4, ?5)",
    [META_ST_ONCE_DEL_SESSION] = "DELETE FROM replies WHERE session_id = ?1",
    [META_ST_COUNTER_GET] = "SELECT value FROM counters WHERE name = ?1",
    [META_ST_COUNTER_SET] =
        "INSERT OR REPLACE INTO counters(name, value) VALUES(?1, ?2)",
    [META_ST_DB_BYTES] = "SELECT p.page_count * s.page_size"
                         " FROM pragma_page_count() p, pragma_page_size() s",
    [META_ST_CHUNK_COUNT] = "SELECT count(*) FROM chunks",
    /* One row per chunk however many files share it: the highest goal
     * and the longest length among them. */
    [META_ST_CHUNK_LIST] =
        "SELECT c.chunk_id, c.version, min(s.ino), min(s.idx), max(i.goal),"
        " max(max(0, min(?3, i.size - s.idx * ?3))), count(*)"
        " FROM chunks c JOIN slots s ON s.chunk_id = c.chunk_id"
        " JOIN inodes i ON i.ino = s.ino"
        " WHERE c.chunk_id > ?1 GROUP BY c.chunk_id ORDER BY c.chunk_id"
        " LIMIT ?2",
    [META_ST_REPLICA_DEL] =
        "DELETE FROM replicas WHERE chunk_id = ?1 AND server_id = ?2",
    [META_ST_REPLICA_DEL_SERVER] = "DELETE FROM replicas WHERE server_id = ?1",
    [META_ST_GC_HAS] =
        "SELECT 1 FROM gc WHERE chunk_id = ?1 AND server_id = ?2",
    [META_ST_GC_DEL_SERVER] = "DELETE FROM gc WHERE server_id = ?1",
    [META_ST_GC_LIST_SERVER] = "SELECT chunk_id, version, server_id FROM gc"
                               " WHERE server_id = ?2"
                               " ORDER BY chunk_id LIMIT ?1",
    [META_ST_SERVER_STATE] =
        "UPDATE servers SET state = ?2, state_time = ?3 WHERE id = ?1",
    [META_ST_SERVER_DELETE] = "DELETE FROM servers WHERE id = ?1",
    [META_ST_SERVER_USAGE] =
        "SELECT r.server_id, count(*), total(l.len) FROM replicas r JOIN"
        " (SELECT s.chunk_id AS chunk_id,"
        "  max(max(0, min(?1, i.size - s.idx * ?1))) AS len"
        "  FROM slots s JOIN inodes i ON i.ino = s.ino GROUP BY s.chunk_id) l"
        " ON l.chunk_id = r.chunk_id GROUP BY r.server_id",
    [META_ST_SUBTREE] =
        "WITH RECURSIVE t(ino) AS (SELECT ?1 UNION"
        " SELECT d.ino FROM dirents d JOIN t ON d.parent = t.ino)"
        " SELECT ino FROM t",
    [META_ST_SLOT_SET] =
        "INSERT OR REPLACE INTO slots(ino, idx, chunk_id) VALUES(?1, ?2, ?3)",
    [META_ST_SLOT_COPY] = "INSERT INTO slots(ino, idx, chunk_id)"
                          " SELECT ?2, idx, chunk_id FROM slots WHERE ino = ?1",
    [META_ST_SLOT_DROP_FROM] = "DELETE FROM slots WHERE ino = ?1 AND idx >= ?2",
    [META_ST_CHUNK_DELETE] = "DELETE FROM chunks WHERE chunk_id = ?1",
    [META_ST_CHUNK_GC_ALL] =
        "INSERT OR IGNORE INTO gc(chunk_id, version, server_id)"
        " SELECT c.chunk_id, c.version, r.server_id FROM chunks c"
        " JOIN replicas r ON r.chunk_id = c.chunk_id WHERE c.chunk_id = ?1",
    [META_ST_CHUNK_GOAL] =
        "SELECT max(i.goal) FROM slots s JOIN inodes i ON i.ino = s.ino"
        " WHERE s.chunk_id = ?1",
    [META_ST_INODE_FLAGS_GET] = "SELECT flags FROM inodes WHERE ino = ?1",
    [META_ST_INODE_FLAGS_SET] = "UPDATE inodes SET flags = ?2 WHERE ino = ?1",
    /* Image info: slots, slots whose chunk is shared, bytes mapped. */
    [META_ST_IMAGE_STATS] = "SELECT count(*), total(" REFS(
        "s") " > 1),"
             " total(max(0, min(?2, ?3 - s.idx * ?2)))"
             " FROM slots s WHERE s.ino = ?1",
    [META_ST_IMAGE_SHARERS] = "SELECT o.ino, count(*) FROM slots s JOIN slots o"
                              " ON o.chunk_id = s.chunk_id AND o.ino != s.ino"
                              " WHERE s.ino = ?1 GROUP BY o.ino ORDER BY o.ino",
    [META_ST_INODE_ORIGIN_GET] = "SELECT origin FROM inodes WHERE ino = ?1",
    [META_ST_INODE_ORIGIN_SET] = "UPDATE inodes SET origin = ?2 WHERE ino = ?1",
    [META_ST_CHUNK_ORIGIN_SET] =
        "UPDATE chunks SET origin = ?2 WHERE chunk_id = ?1",
    [META_ST_CHUNK_ORIGIN_GET] =
        "SELECT version, origin FROM chunks WHERE chunk_id = ?1",
    [META_ST_SLOT_SHARED_ANY] = "SELECT EXISTS (SELECT 1 FROM slots s"
                                " WHERE s.ino = ?1 AND " REFS("s") " > 1)",
    [META_ST_SLOT_CHUNK_RANGE] = "SELECT idx, chunk_id FROM slots"
                                 " WHERE ino = ?1 AND idx >= ?2 AND idx < ?3"
                                 " ORDER BY idx",
    /* Image list: every regular file in the subtree of ?1 with its
     * origin, whether that still exists, flags, size, bytes mapped and
     * bytes mapped in shared chunks; ?2 the chunk size, ?3 the most rows. */
    [META_ST_IMAGE_LIST] =
        "WITH RECURSIVE t(ino) AS (SELECT ?1 UNION"
        " SELECT d.ino FROM dirents d JOIN t ON d.parent = t.ino)"
        " SELECT i.ino, i.origin,"
        " EXISTS (SELECT 1 FROM inodes p WHERE p.ino = i.origin), i.flags,"
        " i.size, coalesce(sum(" SLOT_LEN "), 0),"
        " coalesce(sum(" SLOT_LEN " * " SLOT_SHARED "), 0)"
        " FROM t JOIN inodes i ON i.ino = t.ino"
        " LEFT JOIN slots s ON s.ino = i.ino"
        " WHERE (i.mode & 61440) = 32768 GROUP BY i.ino ORDER BY i.ino"
        " LIMIT ?3",
    [META_ST_DIRENT_NAME_OF] =
        "SELECT parent, name FROM dirents WHERE ino = ?1 ORDER BY id LIMIT 1",
    [META_ST_SESSION_EXISTS] = "SELECT 1 FROM sessions WHERE id = ?1",
    [META_ST_HOLD_ADD] =
        "INSERT OR IGNORE INTO holds(session_id, ino) VALUES(?1, ?2)",
    [META_ST_HOLD_DEL] = "DELETE FROM holds WHERE session_id = ?1 AND ino = ?2",
    [META_ST_HOLD_HAS] =
        "SELECT 1 FROM holds WHERE session_id = ?1 AND ino = ?2",
    [META_ST_HOLD_ANY] = "SELECT 1 FROM holds WHERE ino = ?1 LIMIT 1",
    [META_ST_HOLD_DEL_SESSION] = "DELETE FROM holds WHERE session_id = ?1",
    /* Orphans no session holds any more: the ones to reclaim. */
    [META_ST_ORPHAN_FREE] = "SELECT ino FROM inodes WHERE nlink = 0"
                            " AND ino NOT IN (SELECT ino FROM holds) LIMIT 1",
    [META_ST_IDENT_GET] = "SELECT secret, caps FROM identities WHERE name = ?1",
    [META_ST_IDENT_INSERT] =
        "INSERT INTO identities(name, secret, caps) VALUES(?1, ?2, ?3)",
    [META_ST_IDENT_CAPS] = "UPDATE identities SET caps = ?2 WHERE name = ?1",
    [META_ST_IDENT_DELETE] = "DELETE FROM identities WHERE name = ?1",
    [META_ST_IDENT_LIST] = "SELECT name, caps FROM identities ORDER BY name",
    [META_ST_SVCKEY_ADD] =
        "INSERT INTO service_keys(id, secret, created) VALUES(?1, ?2, ?3)",
    /* The newest first: the first seals, all of them open. */
    [META_ST_SVCKEY_LIST] =
        "SELECT id, secret FROM service_keys ORDER BY id DESC LIMIT ?1",
    [META_ST_SVCKEY_PRUNE] = "DELETE FROM service_keys WHERE id <= ?1",
    [META_ST_CHUNK_USAGE_GET] =
        "SELECT coalesce(alloc, -1) FROM chunks WHERE chunk_id = ?1",
    [META_ST_CHUNK_USAGE_SET] =
        "UPDATE chunks SET alloc = ?2 WHERE chunk_id = ?1",
};

int meta_sql_err(struct meta_db *db, int rc, const char *what)
{
    log_error("meta db: %s: %s (rc=%d)", what, sqlite3_errmsg(db->sql), rc);
    return meta_sqlite_errno(rc);
}

int meta_sqlite_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    default:
        return -EIO;
    }
}

sqlite3_stmt *meta_st(struct meta_db *db, enum meta_st id)
{
    sqlite3_stmt *s = db->st[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

int meta_st_exec(struct meta_db *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return meta_sql_err(db, rc, what);
    return 0;
}

int meta_st_row(struct meta_db *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return meta_sql_err(db, rc, what);
}

void meta_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n)
{
    if (n == 0)
        sqlite3_bind_zeroblob(s, i, 0);
    else
        sqlite3_bind_blob(s, i, p, (int)n, SQLITE_STATIC);
}

static int exec_script(struct meta_db *db, const char *script, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db->sql, script, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("meta db: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
    }
    return 0;
}

static int user_version(struct meta_db *db, int *v)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db->sql, "PRAGMA user_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return meta_sql_err(db, rc, "read schema version");
    rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : meta_sql_err(db, rc, "read schema version");
}

/* Apply the migrations not applied yet, each in its own transaction
 * together with the user_version bump, so a crash leaves a whole step. */
static int migrate(struct meta_db *db)
{
    int v, r = user_version(db, &v);
    if (r < 0)
        return r;
    if (v > NMIGRATIONS) {
        log_error("meta db: schema version %d is newer than this build (%d)", v,
                  NMIGRATIONS);
        return -EPROTO;
    }
    for (; v < NMIGRATIONS; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", v + 1);
        r = exec_script(db, "BEGIN IMMEDIATE;", "begin migration");
        if (r == 0)
            r = exec_script(db, migrations[v], "migrate");
        if (r == 0)
            r = exec_script(db, bump, "set schema version");
        if (r == 0)
            r = exec_script(db, "COMMIT;", "commit migration");
        if (r < 0) {
            sqlite3_exec(db->sql, "ROLLBACK;", NULL, NULL, NULL);
            return r;
        }
    }
    return 0;
}

void meta_db_close(struct meta_db *db)
{
    if (!db)
        return;
    if (db->batch && meta_db_batch_commit(db) < 0)
        log_error("meta db: the records of the last batch were not "
                  "committed; the log applies them again at the next start");
    for (int i = 0; i < META_ST_COUNT; i++)
        sqlite3_finalize(db->st[i]);
    sqlite3_close(db->sql);
    free(db);
}

int meta_db_open(const char *path, struct meta_db **out)
{
    struct meta_db *db = calloc(1, sizeof(*db));
    if (!db)
        return -ENOMEM;
    int rc = sqlite3_open_v2(
        path, &db->sql,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int r;
    if (rc != SQLITE_OK) {
        r = db->sql ? meta_sql_err(db, rc, "open") : -ENOMEM;
        goto fail;
    }
    sqlite3_extended_result_codes(db->sql, 1);
    sqlite3_busy_timeout(db->sql, 5000);
    r = exec_script(db,
                    "PRAGMA journal_mode = WAL;"
                    "PRAGMA synchronous = FULL;"
                    "PRAGMA temp_store = MEMORY;"
                    "PRAGMA foreign_keys = OFF;",
                    "set pragmas");
    if (r == 0)
        r = migrate(db);
    if (r == 0)
        r = exec_script(db, "PRAGMA foreign_keys = ON;", "set pragmas");
    if (r < 0)
        goto fail;
    for (int i = 0; i < META_ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(db->sql, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &db->st[i], NULL);
        if (rc != SQLITE_OK) {
            r = meta_sql_err(db, rc, sql[i]);
            goto fail;
        }
    }
    *out = db;
    return 0;
fail:
    meta_db_close(db);
    return r;
}

/* ---- Transactions ------------------------------------------------------ */

int meta_tx_begin(struct meta_db *db)
{
    /* A savepoint outside a transaction would start one of its own and
     * commit this record without those lost before it. */
    if (db->batch_lost)
        return -EIO;
    if (db->batch)
        return meta_st_exec(db, meta_st(db, META_ST_SAVEPOINT), "savepoint");
    return meta_st_exec(db, meta_st(db, META_ST_BEGIN), "begin");
}

/* How long COMMIT takes: with synchronous=FULL, mostly the fsync of the
 * WAL (docs/architecture.md, "Operation records"). */
static struct lat_stage st_commit = {.name = "meta.db.commit"};

void meta_db_stats_register(void)
{
    lat_stage_register(&st_commit);
}

static int commit(struct meta_db *db)
{
    uint64_t t0 = lat_now_ns();
    int rc = meta_st_exec(db, meta_st(db, META_ST_COMMIT), "commit");

    lat_hist_record_since(&st_commit.h, t0);
    return rc;
}

int meta_tx_commit(struct meta_db *db)
{
    int rc;

    if (!db->batch)
        return commit(db);
    rc = meta_st_exec(db, meta_st(db, META_ST_RELEASE), "release");
    if (rc == 0 && db->applied_pending)
        db->batch_applied = db->applied_pending;
    db->applied_pending = 0;
    return rc;
}

void meta_tx_rollback(struct meta_db *db)
{
    db->applied_pending = 0;
    /* Statements still stepping would make ROLLBACK fail in old SQLite;
     * every helper resets its statement, so none is. */
    if (sqlite3_get_autocommit(db->sql)) {
        /* Some errors (SQLITE_FULL, SQLITE_IOERR, ...) roll back the whole
         * transaction: with a batch open, the records applied in it
         * before this one are gone as well. */
        if (db->batch)
            db->batch_lost = true;
        return;
    }
    if (!db->batch) {
        meta_st_exec(db, meta_st(db, META_ST_ROLLBACK), "rollback");
        return;
    }
    /* ROLLBACK TO keeps the savepoint open; RELEASE ends it, keeping the
     * records before it in the batch. */
    if (meta_st_exec(db, meta_st(db, META_ST_ROLLBACK_TO), "rollback to") < 0 ||
        meta_st_exec(db, meta_st(db, META_ST_RELEASE), "release") < 0)
        db->batch_lost = true;
}

int meta_db_batch_begin(struct meta_db *db)
{
    int rc;

    if (db->batch)
        return 0;
    rc = meta_st_exec(db, meta_st(db, META_ST_BEGIN), "begin batch");
    if (rc == 0)
        db->batch = true;
    return rc;
}

bool meta_db_batch_open(const struct meta_db *db)
{
    return db->batch;
}

int meta_db_applied_set(struct meta_db *db, uint64_t index)
{
    if (db->batch) {
        db->applied_pending = index;
        return 0;
    }
    return meta_counter_set(db, META_COUNTER_APPLIED, index);
}

int meta_db_batch_commit(struct meta_db *db)
{
    bool lost = db->batch_lost;
    uint64_t applied = db->batch_applied;
    int rc = 0;

    if (!db->batch)
        return 0;
    db->batch = false;
    db->batch_lost = false;
    db->batch_applied = 0;
    db->applied_pending = 0;
    if (!sqlite3_get_autocommit(db->sql) && lost)
        rc = (meta_tx_rollback(db), -EIO);
    else if (!sqlite3_get_autocommit(db->sql))
        rc = applied ? meta_counter_set(db, META_COUNTER_APPLIED, applied) : 0;
    else
        rc = -EIO; /* rolled back whole by SQLite */
    if (rc == 0)
        rc = commit(db);
    if (rc < 0 && !sqlite3_get_autocommit(db->sql))
        meta_tx_rollback(db);
    return rc;
}

/* ---- Inodes ------------------------------------------------------------ */

static uint64_t col_u64(sqlite3_stmt *s, int i)
{
    return (uint64_t)sqlite3_column_int64(s, i);
}

void meta_attr_from_row(sqlite3_stmt *s, int i, struct proto_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = col_u64(s, i);
    a->mode = (uint32_t)col_u64(s, i + 1);
    a->nlink = (uint32_t)col_u64(s, i + 2);
    a->uid = (uint32_t)col_u64(s, i + 3);
    a->gid = (uint32_t)col_u64(s, i + 4);
    a->rdev = (uint32_t)col_u64(s, i + 5);
    a->goal = (uint32_t)col_u64(s, i + 6);
    a->size = col_u64(s, i + 7);
    a->atime = sqlite3_column_int64(s, i + 8);
    a->mtime = sqlite3_column_int64(s, i + 9);
    a->ctime = sqlite3_column_int64(s, i + 10);
    a->version = col_u64(s, i + 11);
    /* Files: the bytes in the chunks they hold (ALLOC_COL), one block for a
     * directory, none for the rest. */
    if (S_ISREG(a->mode))
        a->blocks = ((uint64_t)sqlite3_column_double(s, i + 12) + 511) / 512;
    else if (S_ISDIR(a->mode))
        a->blocks = META_DIR_SIZE / 512;
}

int meta_inode_get(struct meta_db *db, uint64_t ino, struct proto_attr *a)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_GET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        meta_attr_from_row(s, 0, a);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return meta_sql_err(db, rc, "get inode");
}

static void bind_attr(sqlite3_stmt *s, const struct proto_attr *a)
{
    sqlite3_bind_int64(s, 2, a->mode);
    sqlite3_bind_int64(s, 3, a->nlink);
    sqlite3_bind_int64(s, 4, a->uid);
    sqlite3_bind_int64(s, 5, a->gid);
    sqlite3_bind_int64(s, 6, a->rdev);
    sqlite3_bind_int64(s, 7, a->goal);
    sqlite3_bind_int64(s, 8, (int64_t)a->size);
    sqlite3_bind_int64(s, 9, a->atime);
    sqlite3_bind_int64(s, 10, a->mtime);
    sqlite3_bind_int64(s, 11, a->ctime);
    sqlite3_bind_int64(s, 12, (int64_t)a->version);
}

int meta_inode_insert(struct meta_db *db, struct proto_attr *a,
                      const struct meta_name *target)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_INSERT);
    a->version = 1;
    if (a->ino)
        sqlite3_bind_int64(s, 1, (int64_t)a->ino);
    bind_attr(s, a);
    if (target)
        meta_bind_blob(s, 13, target->p, target->len);
    int r = meta_st_exec(db, s, "insert inode");
    if (r < 0)
        return r;
    a->ino = (uint64_t)sqlite3_last_insert_rowid(db->sql);
    if (S_ISREG(a->mode))
        a->blocks = 0; /* no chunk yet */
    else if (S_ISDIR(a->mode))
        a->blocks = META_DIR_SIZE / 512;
    return 0;
}

int meta_row_int(struct meta_db *db, enum meta_st id, uint64_t key, int64_t *v,
                 const char *what)
{
    sqlite3_stmt *s = meta_st(db, id);
    sqlite3_bind_int64(s, 1, (int64_t)key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return meta_sql_err(db, rc, what);
}

int meta_inode_flags(struct meta_db *db, uint64_t ino, uint32_t *flags)
{
    int64_t v = 0;
    int r =
        meta_row_int(db, META_ST_INODE_FLAGS_GET, ino, &v, "get inode flags");
    if (r == 0)
        *flags = (uint32_t)v;
    return r;
}

int meta_inode_flags_set(struct meta_db *db, uint64_t ino, uint32_t flags)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_FLAGS_SET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, flags);
    return meta_st_exec(db, s, "set inode flags");
}

int meta_inode_origin(struct meta_db *db, uint64_t ino, uint64_t *origin)
{
    int64_t v = 0;
    int r =
        meta_row_int(db, META_ST_INODE_ORIGIN_GET, ino, &v, "get inode origin");
    if (r == 0)
        *origin = (uint64_t)v;
    return r;
}

int meta_inode_origin_set(struct meta_db *db, uint64_t ino, uint64_t origin)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_ORIGIN_SET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)origin);
    return meta_st_exec(db, s, "set inode origin");
}

int meta_inode_writable(struct meta_db *db, uint64_t ino)
{
    uint32_t flags = 0;
    int r = meta_inode_flags(db, ino, &flags);
    if (r < 0)
        return r;
    return (flags & META_INODE_READONLY) ? -EROFS : 0;
}

/* a->blocks of regular file @a from the chunks it holds (ALLOC_COL). */
static int inode_alloc_blocks(struct meta_db *db, struct proto_attr *a)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_ALLOC);
    int rc;

    sqlite3_bind_int64(s, 1, (int64_t)a->ino);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        a->blocks = ((uint64_t)sqlite3_column_double(s, 0) + 511) / 512;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return meta_sql_err(db, rc, "inode allocation");
    return 0;
}

int meta_inode_update(struct meta_db *db, struct proto_attr *a)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_UPDATE);
    a->version++;
    sqlite3_bind_int64(s, 1, (int64_t)a->ino);
    bind_attr(s, a);
    int r = meta_st_exec(db, s, "update inode");
    if (r < 0 || !S_ISREG(a->mode))
        return r;
    return inode_alloc_blocks(db, a);
}

int meta_inode_delete(struct meta_db *db, uint64_t ino)
{
    int r = meta_chunk_drop_from(db, ino, 0);
    if (r < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_INODE_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    return meta_st_exec(db, s, "delete inode");
}

int meta_symlink_get(struct meta_db *db, uint64_t ino, char *buf, size_t size,
                     size_t *len)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SYMLINK_GET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    int rc = sqlite3_step(s), r = 0;
    if (rc == SQLITE_ROW) {
        if (!S_ISLNK((uint32_t)sqlite3_column_int64(s, 0))) {
            r = -EINVAL;
        } else {
            const void *p = sqlite3_column_blob(s, 1);
            size_t n = (size_t)sqlite3_column_bytes(s, 1);
            if (n >= size)
                n = size - 1;
            if (n)
                memcpy(buf, p, n);
            buf[n] = '\0';
            *len = n;
        }
    } else if (rc == SQLITE_DONE) {
        r = -ENOENT;
    } else {
        r = meta_sql_err(db, rc, "get symlink");
    }
    sqlite3_reset(s);
    return r;
}

/* ---- Directory entries ------------------------------------------------- */

int meta_dirent_find(struct meta_db *db, uint64_t parent,
                     const struct meta_name *name, uint64_t *ino, uint64_t *id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_GET);
    sqlite3_bind_int64(s, 1, (int64_t)parent);
    meta_bind_blob(s, 2, name->p, name->len);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (id)
            *id = col_u64(s, 0);
        if (ino)
            *ino = col_u64(s, 1);
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return meta_sql_err(db, rc, "find entry");
}

int meta_dirent_insert(struct meta_db *db, uint64_t parent,
                       const struct meta_name *name, uint64_t ino)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)parent);
    meta_bind_blob(s, 2, name->p, name->len);
    sqlite3_bind_int64(s, 3, (int64_t)ino);
    return meta_st_exec(db, s, "insert entry");
}

int meta_dirent_delete(struct meta_db *db, uint64_t id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    return meta_st_exec(db, s, "delete entry");
}

int meta_dirent_move(struct meta_db *db, uint64_t id, uint64_t newparent,
                     const struct meta_name *name)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_MOVE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, (int64_t)newparent);
    meta_bind_blob(s, 3, name->p, name->len);
    return meta_st_exec(db, s, "move entry");
}

int meta_dirent_set_ino(struct meta_db *db, uint64_t id, uint64_t ino)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_SET_INO);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    sqlite3_bind_int64(s, 2, (int64_t)ino);
    return meta_st_exec(db, s, "repoint entry");
}

int meta_dir_parent(struct meta_db *db, uint64_t ino, uint64_t *parent)
{
    if (ino == META_ROOT_INO) {
        *parent = META_ROOT_INO;
        return 0;
    }
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_PARENT);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *parent = col_u64(s, 0);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return meta_sql_err(db, rc, "find parent");
}

int meta_dir_empty(struct meta_db *db, uint64_t ino)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_ANY);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return 1;
    return meta_sql_err(db, rc, "list entries");
}

/* ---- Counters ---------------------------------------------------------- */

int meta_counter_get(struct meta_db *db, const char *name, uint64_t *v)
{
    sqlite3_stmt *s = meta_st(db, META_ST_COUNTER_GET);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? col_u64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "get counter");
    return 0;
}

int meta_counter_set(struct meta_db *db, const char *name, uint64_t v)
{
    sqlite3_stmt *s = meta_st(db, META_ST_COUNTER_SET);
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (int64_t)v);
    return meta_st_exec(db, s, "set counter");
}
