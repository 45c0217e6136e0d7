/* Tests for the fast path of vmdisk/vd_cmd.c: requests started on the
 * reader thread through a backend's aio_pread/aio_pwrite and answered by
 * whichever thread completes them.
 *
 * The backend is the mem backend with a fake fast path in front: its aio
 * operations are queued to a thread of their own, which holds each one
 * for a moment (so they are in flight together, and at NBD_CMD_DISC),
 * then runs it on the mem image and completes it.  The fake can refuse
 * (-EAGAIN: the request goes to the workers at once) or fail after the
 * start (-EIO: the request must be run again by the workers, and the
 * client must never see that error).
 */
#include "test_vd_util.h"

struct aio_job {
    struct aio_job *next;
    struct vd_image *img;
    bool write, fua;
    void *buf;
    uint32_t len;
    uint64_t off;
    vd_done_cb done;
    void *arg;
    int seq; /* order of the start, from 0 */
};

static struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct aio_job *head, *tail;
    bool stop;
    pthread_t thread;
    const struct vd_backend_ops *mem; /* the real operations */
    struct vd_backend_ops ops;        /* mem's plus the fake aio */
    int refuse_every, fail_every;     /* 0: never */
    int calls, started, failed, done;
} fk;

static void *fake_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&fk.mu);
    for (;;) {
        while (!fk.head && !fk.stop)
            pthread_cond_wait(&fk.cv, &fk.mu);
        struct aio_job *j = fk.head;
        if (!j)
            break;
        fk.head = j->next;
        if (!fk.head)
            fk.tail = NULL;
        bool fail = fk.fail_every && j->seq % fk.fail_every == 0;
        pthread_mutex_unlock(&fk.mu);

        usleep(1000); /* keep the others in flight meanwhile */
        int rc = -EIO;
        if (!fail)
            rc = j->write ? fk.mem->pwrite(j->img, j->buf, j->len, j->off,
                                           j->fua)
                          : fk.mem->pread(j->img, j->buf, j->len, j->off);
        /* Counted before the completion runs: once it has, the client
         * may see its reply and the test read the counts. */
        pthread_mutex_lock(&fk.mu);
        if (fail)
            fk.failed++;
        else
            fk.done++;
        pthread_mutex_unlock(&fk.mu);
        j->done(j->arg, rc);
        free(j);

        pthread_mutex_lock(&fk.mu);
    }
    pthread_mutex_unlock(&fk.mu);
    return NULL;
}

static int fake_start(struct vd_image *img, bool write, void *buf,
                      uint32_t len, uint64_t off, bool fua, vd_done_cb done,
                      void *arg)
{
    pthread_mutex_lock(&fk.mu);
    fk.calls++;
    if (fk.refuse_every && fk.calls % fk.refuse_every == 0) {
        pthread_mutex_unlock(&fk.mu);
        return -EAGAIN;
    }
    struct aio_job *j = calloc(1, sizeof(*j));
    assert_non_null(j);
    *j = (struct aio_job){.img = img, .write = write, .fua = fua, .buf = buf,
                          .len = len, .off = off, .done = done, .arg = arg,
                          .seq = fk.started};
    if (fk.tail)
        fk.tail->next = j;
    else
        fk.head = j;
    fk.tail = j;
    fk.started++;
    pthread_cond_signal(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
    return 0;
}

static int fake_aio_pread(struct vd_image *img, void *buf, uint32_t len,
                          uint64_t off, vd_done_cb done, void *arg)
{
    return fake_start(img, false, buf, len, off, false, done, arg);
}

static int fake_aio_pwrite(struct vd_image *img, const void *buf, uint32_t len,
                           uint64_t off, bool fua, vd_done_cb done, void *arg)
{
    return fake_start(img, true, (void *)buf, len, off, fua, done, arg);
}

/* A harness whose backend has the fake fast path. */
static struct harness *fast_harness(int refuse_every, int fail_every)
{
    struct harness *h = harness_start(false, NULL);

    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.mu, NULL);
    pthread_cond_init(&fk.cv, NULL);
    fk.mem = h->be->ops;
    fk.ops = *fk.mem;
    fk.ops.aio_pread = fake_aio_pread;
    fk.ops.aio_pwrite = fake_aio_pwrite;
    fk.refuse_every = refuse_every;
    fk.fail_every = fail_every;
    h->be->ops = &fk.ops; /* before the client says anything */
    assert_int_equal(pthread_create(&fk.thread, NULL, fake_main, NULL), 0);
    return h;
}

static void fast_harness_stop(struct harness *h)
{
    harness_stop(h); /* every request was answered: nothing is queued */
    pthread_mutex_lock(&fk.mu);
    assert_null(fk.head);
    fk.stop = true;
    pthread_cond_signal(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
    pthread_join(fk.thread, NULL);
    pthread_mutex_destroy(&fk.mu);
    pthread_cond_destroy(&fk.cv);
}

static uint8_t *pattern(uint32_t len, uint8_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 13);
    return p;
}

/* Write N blocks pipelined, read them back pipelined, then a burst of
 * reads cut short by NBD_CMD_DISC: every reply right, each cookie once,
 * the burst answered before EOF. */
static void run_workload(struct harness *h)
{
    enum { N = 48, LEN = 8192 };
    uint8_t *buf = malloc(LEN), *data[N];
    bool seen[3 * N] = {false};

    c_connect(h, false, false);
    for (uint64_t i = 0; i < N; i++) {
        data[i] = pattern(LEN, (uint8_t)i);
        c_req(h, i % 3 ? 0 : NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, i, i * LEN, LEN,
              data[i]);
    }
    for (int i = 0; i < N; i++) {
        uint8_t r[NBD_SIMPLE_REPLY_SIZE];
        c_read(h, r, sizeof(r));
        assert_int_equal(vd_get32(r + 4), 0);
        uint64_t cookie = vd_get64(r + 8);
        assert_true(cookie < N && !seen[cookie]);
        seen[cookie] = true;
    }
    for (int pass = 1; pass <= 2; pass++) {
        for (uint64_t i = 0; i < N; i++)
            c_req(h, 0, NBD_CMD_READ, pass * N + i, i * LEN, LEN, NULL);
        if (pass == 2)
            c_req(h, 0, NBD_CMD_DISC, 999, 0, 0, NULL);
        for (int i = 0; i < N; i++) {
            uint8_t r[NBD_SIMPLE_REPLY_SIZE];
            c_read(h, r, sizeof(r));
            assert_int_equal(vd_get32(r + 4), 0);
            uint64_t cookie = vd_get64(r + 8);
            assert_true(cookie >= (uint64_t)pass * N &&
                        cookie < (uint64_t)(pass + 1) * N && !seen[cookie]);
            seen[cookie] = true;
            c_read(h, buf, LEN);
            assert_memory_equal(buf, data[cookie - pass * N], LEN);
        }
    }
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    for (int i = 0; i < N; i++)
        free(data[i]);
    free(buf);
}

static void test_vd_cmd_fast_path_answers_everything(void **state)
{
    struct harness *h = fast_harness(0, 0);

    (void)state;
    run_workload(h);
    /* Every write and read took the fast path. */
    assert_int_equal(fk.started, 3 * 48);
    assert_int_equal(fk.done, 3 * 48);
    fast_harness_stop(h);
}

static void test_vd_cmd_fast_path_refused_goes_to_workers(void **state)
{
    struct harness *h = fast_harness(2, 0);

    (void)state;
    run_workload(h); /* half of them were refused, and served anyway */
    assert_int_equal(fk.calls, 3 * 48);
    assert_int_equal(fk.started, 3 * 48 / 2);
    fast_harness_stop(h);
}

static void test_vd_cmd_fast_path_failure_is_retried(void **state)
{
    struct harness *h = fast_harness(0, 3);

    (void)state;
    run_workload(h); /* no client saw an error */
    assert_int_equal(fk.failed, 3 * 48 / 3);
    assert_int_equal(fk.done + fk.failed, 3 * 48);
    fast_harness_stop(h);
}

static void test_vd_cmd_fast_path_not_for_other_commands(void **state)
{
    struct harness *h = fast_harness(0, 0);

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_FLUSH, 1, 0, 0, NULL);
    assert_int_equal(c_simple(h, 1), 0);
    c_req(h, 0, NBD_CMD_TRIM, 2, 0, 4096, NULL);
    assert_int_equal(c_simple(h, 2), 0);
    /* A bad request is answered by a worker with its error, never
     * started. */
    c_req(h, 0, NBD_CMD_READ, 3, T_DISK_SIZE, 4096, NULL);
    assert_int_equal(c_simple(h, 3), NBD_EINVAL);
    c_req(h, 0, NBD_CMD_DISC, 4, 0, 0, NULL);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    assert_int_equal(fk.calls, 0);
    fast_harness_stop(h);
}

int test_vd_fast(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_cmd_fast_path_answers_everything),
        cmocka_unit_test(test_vd_cmd_fast_path_refused_goes_to_workers),
        cmocka_unit_test(test_vd_cmd_fast_path_failure_is_retried),
        cmocka_unit_test(test_vd_cmd_fast_path_not_for_other_commands),
    };
    return cmocka_run_group_tests_name("vd_fast", tests, NULL, NULL);
}
