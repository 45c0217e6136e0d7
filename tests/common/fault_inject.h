/* fault_inject.h: failures injected into local I/O and allocation, for
 * unit tests only.  The unit-test binaries are linked with
 * -Wl,--wrap=<call> for each call below (Makefile, FAULT_WRAP), so every
 * call the code under test makes to one of them goes through
 * fault_inject.c first; with no rule armed it passes straight through.
 *
 * A rule fails the @nth call matching it from the moment it is armed, and
 * the @count - 1 matching calls after that, setting errno to @err (the
 * call returns -1, or NULL for an allocation).  A call matches when it is
 * the rule's call and works on a descriptor whose file's path (found
 * through /proc/self/fd) contains @path and ends with @path_end, those
 * that are set: so that one store in a process with several, or one file
 * of a chunk, can be made to fail.  Calls that take a path instead (open,
 * openat, mkdir, rename, link) match on the path they are given (for
 * openat, the name relative to its folder; for rename and link, either of
 * the two).  A pwritev2 rule with
 * @short_len > 0 does not fail: it writes at most @short_len bytes and
 * returns that count (a short write), or 0 for @short_len < 0 (a write
 * that makes no progress).  Calls from other threads count like any
 * other, unless @this_thread: then only the calls of the thread that
 * armed the rule match (a fake peer's allocations on its own thread do
 * not take the failure meant for the code under test). */
#ifndef TESSERA_TEST_FAULT_INJECT_H
#define TESSERA_TEST_FAULT_INJECT_H

#include <stdbool.h>
#include <sys/types.h>

enum fault_call {
    FAULT_PWRITEV2,
    FAULT_FDATASYNC,
    FAULT_FSYNC,
    FAULT_FALLOCATE,
    FAULT_FTRUNCATE,
    FAULT_MALLOC,
    FAULT_CALLOC,
    FAULT_OPEN,   /* open() and openat(): the path as given */
    FAULT_MKDIR,  /* the path as given */
    FAULT_RENAME, /* either path as given */
    FAULT_LINK,   /* either path as given */
    FAULT_FCNTL,  /* the descriptor's file */
    FAULT_NCALLS
};

struct fault_rule {
    enum fault_call call;
    const char *path;     /* borrowed until fault_inject_clear(); NULL: any */
    const char *path_end; /* the same */
    int nth;              /* 1: the next matching call */
    int count;         /* calls failed from the nth on; 0 counts as 1, -1 all */
    int err;           /* errno of a failed call */
    ssize_t short_len; /* FAULT_PWRITEV2 only, see above */
    bool this_thread;
};

/* Arm @r, replacing any rule for the same call. */
void fault_inject_set(const struct fault_rule *r);

/* Disarm every rule and reset the counts. */
void fault_inject_clear(void);

/* How many calls of @c the armed rule has failed (or shortened). */
int fault_inject_hits(enum fault_call c);

#endif
