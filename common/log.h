/* log.h: one line per event on stderr, with a timestamp and a level.
 *
 * log_debug() is off unless its module was enabled with -D MODULE=1
 * (log_debug_enable("chunk.store=1")).
 */
#ifndef TESSERA_LOG_H
#define TESSERA_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* @prog is borrowed and must outlive logging (argv[0]'s basename is fine). */
void log_init(const char *prog);
/* Enable debug output for "module=1" (or disable with "=0").  -EINVAL for a
 * malformed spec, -ENOSPC past 32 modules. */
int log_debug_enable(const char *spec);
bool log_debug_on(const char *module);
/* Messages below @lvl are dropped (default LOG_LVL_INFO). */
void log_set_level(enum log_level lvl);

void log_msg(enum log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LVL_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_debug(module, ...)                                                 \
    do {                                                                       \
        if (log_debug_on(module))                                              \
            log_msg(LOG_LVL_DEBUG, module, __VA_ARGS__);                       \
    } while (0)

#endif
