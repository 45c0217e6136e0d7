/* test_meta_optab.c: the operation table (meta_ops.def, meta_optab.c)
 * against the protocol's list of messages and against the engine.
 */
#include "test_meta_util.h"

#include "meta_optab.h"

/* Requests of protocol/proto_msgs.def that tessera-metad does not serve:
 * the handshake (the peer layer answers it), the storage servers' own
 * requests, and the ones metad sends to its clients. */
static bool served_elsewhere(uint16_t id)
{
    switch (id) {
    case PROTO_MSG_HELLO_REQ:
    case PROTO_MSG_CHUNK_READ_REQ:
    case PROTO_MSG_CHUNK_WRITE_REQ:
    case PROTO_MSG_CHUNK_SYNC_REQ:
    case PROTO_MSG_CHUNK_SETVERSION_REQ:
    case PROTO_MSG_CHUNK_DELETE_REQ:
    case PROTO_MSG_CHUNK_TRUNCATE_REQ:
    case PROTO_MSG_CHUNK_REPLICATE_REQ:
    case PROTO_MSG_SCRUB_START_REQ:
    case PROTO_MSG_CHUNK_CLONE_REQ:
    case PROTO_MSG_CHUNK_WMAP_REQ:
    case PROTO_MSG_CHUNK_DATAMAP_REQ:
    case PROTO_MSG_CHUNK_CRCS_REQ:
    case PROTO_MSG_SERVER_STATE_REQ:
    case PROTO_MSG_CALLBACK_BREAK_REQ:
    case PROTO_MSG_AUTH_REQ: /* the handshake, common/peer.c */
        return true;
    default:
        return false;
    }
}

static size_t rows_of(uint16_t opcode)
{
    size_t n = 0;
    for (size_t i = 0; i < meta_optab_count; i++)
        n += meta_optab[i].opcode == opcode;
    return n;
}

static void test_meta_optab_every_request_once(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint16_t id;
    } msgs[] = {
#define X(name, id, body) {#name, id},
#include "proto_msgs.def"
#undef X
    };
    size_t served = 0;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t len = strlen(msgs[i].name);
        if (len < 4 || strcmp(msgs[i].name + len - 4, "_REQ") != 0)
            continue;
        size_t want = served_elsewhere(msgs[i].id) ? 0 : 1;
        if (rows_of(msgs[i].id) != want)
            fail_msg("%s: %zu rows in meta_ops.def, want %zu", msgs[i].name,
                     rows_of(msgs[i].id), want);
        served += want;
    }
    /* The rest of the table: the internal records, once each. */
    size_t internal = 0;
    for (size_t i = 0; i < meta_optab_count; i++) {
        assert_int_equal(rows_of(meta_optab[i].opcode), 1);
        internal += meta_optab[i].opcode >= META_OP_SESSION_EXPIRE;
    }
    assert_int_equal(served + internal, meta_optab_count);
    assert_int_equal(internal, 11);
}

static void test_meta_optab_index_finds_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < meta_optab_count; i++)
        assert_int_equal(meta_optab_index(meta_optab[i].opcode), (int)i);
    assert_int_equal(meta_optab_index(PROTO_MSG_CHUNK_READ_REQ), -1);
    assert_int_equal(meta_optab_index(PROTO_MSG_LOOKUP_REP), -1);
    assert_int_equal(meta_optab_index(0xFFFF), -1);
}

/* Every row's kind is what the engine does with it: a QUERY has a query
 * handler and no record handler, a MUTATION a record handler, a DAEMON
 * row neither.  An empty payload decodes for few requests: the handlers
 * answer -EPROTO (or succeed), never -ENOSYS. */
static void test_meta_optab_kinds_match_engine(void **state)
{
    struct fx *f = *state;
    for (size_t i = 0; i < meta_optab_count; i++) {
        const struct meta_optab_row *row = &meta_optab[i];
        struct proto_wbuf reply;
        struct meta_op op = {
            .format = META_OP_FORMAT, .opcode = row->opcode, .now = T0};
        proto_wbuf_init(&reply);
        int applied = meta_apply(f->db, &op, &reply);
        int queried = meta_query(f->db, row->opcode, NULL, 0, &reply);
        proto_wbuf_free(&reply);
        const char *name = proto_msg_name(row->opcode);
        switch (row->kind) {
        case META_OPKIND_QUERY:
            if (applied != -ENOSYS || queried == -ENOSYS)
                fail_msg("%s: QUERY but apply=%d query=%d", name, applied,
                         queried);
            assert_false(meta_op_is_mutation(row->opcode));
            break;
        case META_OPKIND_MUTATION:
            if (applied == -ENOSYS)
                fail_msg("%04x: MUTATION without a record handler",
                         row->opcode);
            assert_true(meta_op_is_mutation(row->opcode));
            break;
        case META_OPKIND_DAEMON:
            if (applied != -ENOSYS || queried != -ENOSYS)
                fail_msg("%s: DAEMON but apply=%d query=%d", name, applied,
                         queried);
            assert_false(meta_op_is_mutation(row->opcode));
            break;
        default:
            fail_msg("%04x: kind %u", row->opcode, row->kind);
        }
    }
}

/* Internal records never come off the wire; every request has callers
 * and a session rule.  Only the storage servers' own requests are theirs
 * alone (the EPERM metad always answered the others). */
static void test_meta_optab_callers_and_sessions(void **state)
{
    (void)state;
    size_t chunkd_only = 0;
    for (size_t i = 0; i < meta_optab_count; i++) {
        const struct meta_optab_row *row = &meta_optab[i];
        bool internal = row->opcode >= META_OP_SESSION_EXPIRE;
        assert_int_equal(row->callers == 0, internal);
        if (internal)
            assert_int_equal(row->kind, META_OPKIND_MUTATION);
        assert_true(row->session == META_SESSION_ANY ||
                    row->session == META_SESSION_NEEDED);
        chunkd_only += row->callers == META_CALLER_CHUNKD;
    }
    int i = meta_optab_index(PROTO_MSG_SERVER_REGISTER_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    i = meta_optab_index(PROTO_MSG_SERVER_HEARTBEAT_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    i = meta_optab_index(PROTO_MSG_SERVER_INVENTORY_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    i = meta_optab_index(PROTO_MSG_SCRUB_STATUS_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    i = meta_optab_index(PROTO_MSG_AUTH_SERVICE_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    i = meta_optab_index(PROTO_MSG_CHUNK_USAGE_REQ);
    assert_int_equal(meta_optab[i].callers, META_CALLER_CHUNKD);
    assert_int_equal(chunkd_only, 6);
    /* Identities and who may see the cluster: admins only. */
    static const uint16_t admin_only[] = {
        PROTO_MSG_AUTH_ADD_REQ,   PROTO_MSG_AUTH_RM_REQ,
        PROTO_MSG_AUTH_CAPS_REQ,  PROTO_MSG_STATUS_REQ,
        PROTO_MSG_SERVER_CTL_REQ, PROTO_MSG_ADMIN_ACTION_REQ,
    };
    for (size_t k = 0; k < sizeof(admin_only) / sizeof(admin_only[0]); k++) {
        i = meta_optab_index(admin_only[k]);
        assert_true(i >= 0);
        assert_int_equal(meta_optab[i].callers, META_CALLER_ADMIN);
    }
    i = meta_optab_index(PROTO_MSG_CALLBACK_REGISTER_REQ);
    assert_int_equal(meta_optab[i].session, META_SESSION_NEEDED);
    /* Reserved inode numbers belong to a session (§6.23). */
    i = meta_optab_index(PROTO_MSG_INO_RESERVE_REQ);
    assert_int_equal(meta_optab[i].session, META_SESSION_NEEDED);
    assert_int_equal(meta_optab[i].kind, META_OPKIND_MUTATION);
    assert_int_equal(meta_optab_caller_of_role(PROTO_ROLE_NBD),
                     META_CALLER_CLIENT);
    assert_int_equal(meta_optab_caller_of_role(PROTO_ROLE_METAD), 0);
}

/* Only a record may wait for the next (the commit column), and only ones
 * nobody waits on: RELEASE from a client, and the chunks' usage figures
 * (internal). */
static void test_meta_optab_later_rows(void **state)
{
    (void)state;
    size_t later = 0;
    for (size_t i = 0; i < meta_optab_count; i++) {
        const struct meta_optab_row *row = &meta_optab[i];
        assert_true(row->commit == META_COMMIT_NOW ||
                    row->commit == META_COMMIT_LATER);
        if (row->commit == META_COMMIT_LATER) {
            assert_int_equal(row->kind, META_OPKIND_MUTATION);
            assert_true((row->callers & META_CALLER_CLIENT) ||
                        row->opcode == META_OP_CHUNK_USAGE);
            later++;
        }
    }
    assert_int_equal(later, 2);
    int i = meta_optab_index(PROTO_MSG_RELEASE_REQ);
    assert_int_equal(meta_optab[i].commit, META_COMMIT_LATER);
    i = meta_optab_index(META_OP_CHUNK_USAGE);
    assert_int_equal(meta_optab[i].commit, META_COMMIT_LATER);
}

/* meta_op_records(): a MUTATION is a record, a QUERY is not, and OPEN is
 * one only when it takes a hold its session lacks. */
static void test_meta_op_records_follows_table(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w;
    struct proto_ino_req q = {.ino = ROOT};
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &q);
    assert_int_equal(
        meta_op_records(f->db, 0, PROTO_MSG_GETATTR_REQ, w.p, w.len), 0);
    assert_int_equal(
        meta_op_records(f->db, 0, PROTO_MSG_RELEASE_REQ, w.p, w.len), 1);
    assert_int_equal(
        meta_op_records(f->db, 0, PROTO_MSG_STATUS_REQ, w.p, w.len), 0);
    proto_wbuf_free(&w);
    struct proto_access_req o = {
        .cred = cred_root(), .ino = ROOT, .mask = PROTO_OPEN_HOLD};
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &o);
    /* No session: nothing to hold, so a query. */
    assert_int_equal(meta_op_records(f->db, 0, PROTO_MSG_OPEN_REQ, w.p, w.len),
                     0);
    /* In a session that does not hold it yet: a record. */
    uint64_t session = fx_session_open(f);
    assert_int_equal(
        meta_op_records(f->db, session, PROTO_MSG_OPEN_REQ, w.p, w.len), 1);
    proto_wbuf_free(&w);
}

int test_meta_optab(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_optab_every_request_once),
        T(test_meta_optab_index_finds_rows),
        T(test_meta_optab_kinds_match_engine),
        T(test_meta_optab_callers_and_sessions),
        T(test_meta_optab_later_rows),
        T(test_meta_op_records_follows_table),
#undef T
    };
    return cmocka_run_group_tests_name("meta_optab", tests, NULL, NULL);
}
