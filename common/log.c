/* log.c: timestamped, levelled log lines on stderr.
 *
 * Each call formats the whole line first and writes it with one write(2),
 * so lines from several threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MODULES 32

static const char *prog_name = "tessera";
static enum log_level min_level = LOG_LVL_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[48];
    bool on;
} modules[MAX_MODULES];
static int nmodules;

void log_init(const char *prog)
{
    const char *slash = strrchr(prog, '/');
    prog_name = slash ? slash + 1 : prog;
}

void log_set_level(enum log_level lvl)
{
    min_level = lvl;
}

int log_debug_enable(const char *spec)
{
    const char *eq = strchr(spec, '=');
    size_t n = eq ? (size_t)(eq - spec) : strlen(spec);
    bool on = !eq || strcmp(eq + 1, "0") != 0;

    if (n == 0 || n >= sizeof(modules[0].name))
        return -EINVAL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nmodules; i++) {
        if (strlen(modules[i].name) == n && !strncmp(modules[i].name, spec, n)) {
            modules[i].on = on;
            pthread_mutex_unlock(&lock);
            return 0;
        }
    }
    if (nmodules == MAX_MODULES) {
        pthread_mutex_unlock(&lock);
        return -ENOSPC;
    }
    memcpy(modules[nmodules].name, spec, n);
    modules[nmodules].name[n] = '\0';
    modules[nmodules++].on = on;
    pthread_mutex_unlock(&lock);
    return 0;
}

bool log_debug_on(const char *module)
{
    bool on = false;
    if (nmodules == 0) /* the common case: no lock, no search */
        return false;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nmodules; i++) {
        size_t n = strlen(modules[i].name);
        /* "chunk" enables "chunk" and "chunk.store". */
        if (!strncmp(modules[i].name, module, n) &&
            (module[n] == '\0' || module[n] == '.'))
            on = modules[i].on;
    }
    pthread_mutex_unlock(&lock);
    return on;
}

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    if (lvl > min_level && lvl != LOG_LVL_DEBUG)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %-5s ",
                  ts.tv_nsec / 1000000, prog_name, names[lvl]);
    if (module && n < sizeof(line))
        n += snprintf(line + n, sizeof(line) - n, "[%s] ", module);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc; /* nowhere left to report a failed log write */
}
