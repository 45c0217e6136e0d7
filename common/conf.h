/* conf.h: config files for the daemons (docs/operations.md, "Config
 * files").
 *
 * A config file holds `KEY = VALUE` lines, one option each; KEY is one of
 * the program's long options, so the command line's own table is the one
 * list of what a file may say.  Keys may be written in any case and with
 * '_' for '-' (DATA_DIR, repair_mbps), as MooseFS's files are.  Blank
 * lines and lines whose first non-blank character is '#' are comments; a
 * VALUE in double quotes keeps its spaces.  A flag takes yes/no (true,
 * false, on, off, 1, 0).
 *
 * The file becomes command-line arguments placed before the real ones, so
 * one parser reads both and a flag on the command line overrides the file
 * (the later value wins).
 */
#ifndef TESSERA_CONF_H
#define TESSERA_CONF_H

#include <getopt.h>
#include <stddef.h>

/* One line of a config file, as conf_read() hands it over. */
struct conf_line {
    const char *path;
    unsigned lineno;
    const char *key;   /* trimmed, as written */
    const char *value; /* trimmed, quotes removed */
};

/* Called for each line; a negative return stops the reading and is
 * returned.  @msg (at least CONF_MSG_MAX bytes) takes the reason. */
#define CONF_MSG_MAX 256
typedef int (*conf_line_cb)(const struct conf_line *l, void *arg, char *msg);

/* Read @path line by line.  0, a callback's error, or -errno (the file
 * cannot be read) or -EINVAL (a line that is not KEY = VALUE), with
 * "PATH:LINE: reason" in @msg. */
int conf_read(const char *path, conf_line_cb cb, void *arg, char *msg);

/* Does @key name @name, in any case, '_' and '-' alike? */
int conf_key_is(const char *key, const char *name);

/* Parse a flag's value: 1 yes, 0 no, -EINVAL neither. */
int conf_flag(const char *value);

/* For a getopt program: find `--config FILE` (or `--config=FILE`) in
 * @argv, and when there is one, set *@out_argv to a new argument vector:
 * argv[0], the file's options as "--KEY=VALUE" (or "--KEY" for a flag
 * set to yes), then the rest of @argv without --config.  Keys must be long
 * options of @opts other than "help" and "config".  Without --config,
 * *@out_argv is @argv.  The new vector and its strings live until the
 * process ends.  0, or -1 with the reason printed to stderr (prefixed
 * with @prog). */
int conf_args(const char *prog, const struct option *opts, int argc,
              char **argv, int *out_argc, char ***out_argv);

/* The argument vector a config file becomes.  conf_argv_push() appends
 * @s (owned; NULL means out of memory), keeping v[n] NULL: 0 or -ENOMEM. */
struct conf_argv {
    char **v;
    int n, cap;
};
int conf_argv_push(struct conf_argv *a, char *s);

/* conf_args() for programs whose options are not a getopt table: @cb
 * (with @arg) turns each line into arguments pushed onto @a, which starts
 * empty and becomes *@out_argv. */
int conf_expand(const char *prog, int argc, char **argv,
                struct conf_argv *a, conf_line_cb cb, void *arg,
                int *out_argc, char ***out_argv);

#endif
