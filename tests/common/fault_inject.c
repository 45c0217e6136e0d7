/* fault_inject.c: the --wrap targets of fault_inject.h.  Each
 * __wrap_<call>() asks rule_fire() whether this call is to fail; if not
 * it calls __real_<call>(), the libc function (or the sanitizer's
 * interceptor of it).  With _FILE_OFFSET_BITS=64 (the Makefile's) glibc's
 * headers name pwritev2, fallocate and ftruncate pwritev64v2, fallocate64
 * and ftruncate64, and open, openat and fcntl open64, openat64 and
 * fcntl64: those are the symbols the objects reference (nm).  The state is
 * one rule per call under a mutex; an atomic count of armed rules keeps the
 * unarmed path, taken by every malloc of the tests, free of the lock.  Nothing
 * here allocates. */
#include "fault_inject.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct rule_state {
    bool armed;
    struct fault_rule r;
    pthread_t owner; /* the thread that armed it */
    int seen;        /* matching calls so far */
    int hits;        /* calls failed */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule_state rules[FAULT_NCALLS];
static int narmed; /* atomic */

ssize_t __real_pwritev64v2(int fd, const struct iovec *iov, int iovcnt,
                           off_t off, int flags);
int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __real_ftruncate64(int fd, off_t len);
int __real_open64(const char *path, int flags, ...);
int __real_openat64(int dirfd, const char *path, int flags, ...);
int __real_mkdir(const char *path, mode_t mode);
int __real_rename(const char *from, const char *to);
int __real_link(const char *from, const char *to);
int __real_fcntl64(int fd, int cmd, ...);
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);

void fault_inject_set(const struct fault_rule *r)
{
    pthread_mutex_lock(&lock);
    if (!rules[r->call].armed)
        __atomic_add_fetch(&narmed, 1, __ATOMIC_SEQ_CST);
    rules[r->call] =
        (struct rule_state){.armed = true, .r = *r, .owner = pthread_self()};
    pthread_mutex_unlock(&lock);
}

void fault_inject_clear(void)
{
    pthread_mutex_lock(&lock);
    memset(rules, 0, sizeof(rules));
    __atomic_store_n(&narmed, 0, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&lock);
}

int fault_inject_hits(enum fault_call c)
{
    pthread_mutex_lock(&lock);
    int n = rules[c].hits;
    pthread_mutex_unlock(&lock);
    return n;
}

static bool fd_matches(int fd, const char *path, const char *path_end)
{
    char link[64], target[PATH_MAX];
    ssize_t n;
    size_t e = path_end ? strlen(path_end) : 0;

    if (!path && !path_end)
        return true;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    if (path && !strstr(target, path))
        return false;
    return (size_t)n >= e &&
           strcmp(target + n - e, path_end ? path_end : "") == 0;
}

static bool path_matches(const char *p, const char *path, const char *path_end)
{
    size_t n = strlen(p), e = path_end ? strlen(path_end) : 0;

    if (path && !strstr(p, path))
        return false;
    return n >= e && strcmp(p + n - e, path_end ? path_end : "") == 0;
}

/* Does a call on @fd, or on @p1 or @p2 (paths, NULL when not given),
 * match @r?  An allocation gives neither and always matches. */
static bool call_matches(const struct fault_rule *r, int fd, const char *p1,
                         const char *p2)
{
    if (p1 || p2)
        return (p1 && path_matches(p1, r->path, r->path_end)) ||
               (p2 && path_matches(p2, r->path, r->path_end));
    return fd < 0 || fd_matches(fd, r->path, r->path_end);
}

/* Whether this call of @c (on @fd or paths @p1/@p2, or none of them for an
 * allocation) is to fail; if so, *@rule is a copy of its rule. */
static bool rule_fire_at(enum fault_call c, int fd, const char *p1,
                         const char *p2, struct fault_rule *rule)
{
    bool fire = false;

    if (__atomic_load_n(&narmed, __ATOMIC_SEQ_CST) == 0)
        return false;
    pthread_mutex_lock(&lock);
    struct rule_state *st = &rules[c];
    if (st->armed &&
        (!st->r.this_thread || pthread_equal(st->owner, pthread_self())) &&
        call_matches(&st->r, fd, p1, p2)) {
        int count = st->r.count ? st->r.count : 1;
        st->seen++;
        fire = st->seen >= st->r.nth &&
               (count < 0 || st->seen < st->r.nth + count);
        if (fire) {
            st->hits++;
            *rule = st->r;
        }
    }
    pthread_mutex_unlock(&lock);
    return fire;
}

static bool rule_fire(enum fault_call c, int fd, struct fault_rule *rule)
{
    return rule_fire_at(c, fd, NULL, NULL, rule);
}

ssize_t __wrap_pwritev64v2(int fd, const struct iovec *iov, int iovcnt,
                           off_t off, int flags)
{
    struct fault_rule r;

    if (!rule_fire(FAULT_PWRITEV2, fd, &r))
        return __real_pwritev64v2(fd, iov, iovcnt, off, flags);
    if (r.short_len < 0)
        return 0;
    if (r.short_len > 0) {
        size_t want = iovcnt > 0 ? iov[0].iov_len : 0;
        struct iovec one = {iov[0].iov_base, (size_t)r.short_len};
        if (iovcnt < 1 || want <= (size_t)r.short_len)
            return __real_pwritev64v2(fd, iov, iovcnt, off, flags);
        return __real_pwritev64v2(fd, &one, 1, off, flags);
    }
    errno = r.err;
    return -1;
}

#define WRAP_FD_CALL(name, CALL, params, args)                                 \
    int __wrap_##name params                                                   \
    {                                                                          \
        struct fault_rule r;                                                   \
        if (!rule_fire(CALL, fd, &r))                                          \
            return __real_##name args;                                         \
        errno = r.err;                                                         \
        return -1;                                                             \
    }

WRAP_FD_CALL(fdatasync, FAULT_FDATASYNC, (int fd), (fd))
WRAP_FD_CALL(fsync, FAULT_FSYNC, (int fd), (fd))
WRAP_FD_CALL(fallocate64, FAULT_FALLOCATE,
             (int fd, int mode, off_t off, off_t len), (fd, mode, off, len))
WRAP_FD_CALL(ftruncate64, FAULT_FTRUNCATE, (int fd, off_t len), (fd, len))

void *__wrap_malloc(size_t n)
{
    struct fault_rule r;

    if (!rule_fire(FAULT_MALLOC, -1, &r))
        return __real_malloc(n);
    errno = ENOMEM;
    return NULL;
}

void *__wrap_calloc(size_t n, size_t size)
{
    struct fault_rule r;

    if (!rule_fire(FAULT_CALLOC, -1, &r))
        return __real_calloc(n, size);
    errno = ENOMEM;
    return NULL;
}

/* open and openat take a mode only with O_CREAT or O_TMPFILE. */
static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE
               ? (mode_t)va_arg(ap, unsigned)
               : 0;
}

int __wrap_open64(const char *path, int flags, ...)
{
    struct fault_rule r;
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    if (!rule_fire_at(FAULT_OPEN, -1, path, NULL, &r))
        return __real_open64(path, flags, mode);
    errno = r.err;
    return -1;
}

int __wrap_openat64(int dirfd, const char *path, int flags, ...)
{
    struct fault_rule r;
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_arg(flags, ap);
    va_end(ap);
    if (!rule_fire_at(FAULT_OPEN, -1, path, NULL, &r))
        return __real_openat64(dirfd, path, flags, mode);
    errno = r.err;
    return -1;
}

#define WRAP_PATH_CALL(name, CALL, params, p1, p2, args)                       \
    int __wrap_##name params                                                   \
    {                                                                          \
        struct fault_rule r;                                                   \
        if (!rule_fire_at(CALL, -1, p1, p2, &r))                               \
            return __real_##name args;                                         \
        errno = r.err;                                                         \
        return -1;                                                             \
    }

WRAP_PATH_CALL(mkdir, FAULT_MKDIR, (const char *path, mode_t mode), path, NULL,
               (path, mode))
WRAP_PATH_CALL(rename, FAULT_RENAME, (const char *from, const char *to), from,
               to, (from, to))
WRAP_PATH_CALL(link, FAULT_LINK, (const char *from, const char *to), from, to,
               (from, to))

/* The third argument, when there is one, is an int or a pointer: passed on
 * as a pointer-sized value, as the calling convention passes either. */
int __wrap_fcntl64(int fd, int cmd, ...)
{
    struct fault_rule r;
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (!rule_fire(FAULT_FCNTL, fd, &r))
        return __real_fcntl64(fd, cmd, arg);
    errno = r.err;
    return -1;
}
