/* conf.c: config files turned into command-line arguments (see conf.h). */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int conf_read(const char *path, conf_line_cb cb, void *arg, char *msg)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;

    if (!f) {
        rc = -errno;
        snprintf(msg, CONF_MSG_MAX, "%s: %s", path, strerror(-rc));
        return rc;
    }
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(msg, CONF_MSG_MAX, "%s:%u: expected KEY = VALUE", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value[vn - 1] = '\0';
            value++;
        }
        if (*key == '\0') {
            snprintf(msg, CONF_MSG_MAX, "%s:%u: a line with no key", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        char why[CONF_MSG_MAX] = "";
        struct conf_line l = {path, lineno, key, value};
        rc = cb(&l, arg, why);
        if (rc < 0)
            snprintf(msg, CONF_MSG_MAX, "%s:%u: %.160s", path, lineno, why);
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        snprintf(msg, CONF_MSG_MAX, "%s: read error", path);
    }
    free(line);
    fclose(f);
    return rc;
}

static char fold(char c)
{
    return c == '_' ? '-' : (char)tolower((unsigned char)c);
}

int conf_key_is(const char *key, const char *name)
{
    for (; *key && *name; key++, name++)
        if (fold(*key) != fold(*name))
            return 0;
    return *key == '\0' && *name == '\0';
}

int conf_flag(const char *v)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]))
            return 1;
        if (!strcasecmp(v, no[i]))
            return 0;
    }
    return -EINVAL;
}

/* ---- Argument vectors -------------------------------------------------- */

int conf_argv_push(struct conf_argv *a, char *s)
{
    if (!s)
        return -ENOMEM;
    if (a->n + 1 >= a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        char **v = realloc(a->v, (size_t)cap * sizeof(*v));
        if (!v) {
            free(s);
            return -ENOMEM;
        }
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
    return 0;
}

/* Find --config FILE / --config=FILE before "--": its path (NULL when
 * absent) and where it sits (*@at, *@skip arguments); -1 when --config
 * lacks its file (printed). */
static int conf_find(const char *prog, int argc, char **argv,
                     const char **path, int *at, int *skip)
{
    *path = NULL;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --config needs a file\n", prog);
                return -1;
            }
            *path = argv[i + 1];
            *at = i, *skip = 2;
            return 0;
        }
        if (!strncmp(argv[i], "--config=", 9)) {
            *path = argv[i] + 9;
            *at = i, *skip = 1;
            return 0;
        }
    }
    return 0;
}

/* ---- getopt programs --------------------------------------------------- */

struct getopt_conf {
    const struct option *opts;
    struct conf_argv *out;
};

static int option_line(const struct conf_line *l, void *arg, char *msg)
{
    struct getopt_conf *g = arg;
    const struct option *o;

    for (o = g->opts; o->name; o++)
        if (conf_key_is(l->key, o->name))
            break;
    if (!o->name || !strcmp(o->name, "help") || !strcmp(o->name, "config")) {
        snprintf(msg, CONF_MSG_MAX, "unknown key '%s'", l->key);
        return -EINVAL;
    }
    char *s = NULL;
    if (o->has_arg == no_argument) {
        int yes = conf_flag(l->value);
        if (yes < 0) {
            snprintf(msg, CONF_MSG_MAX, "%s takes yes or no, not '%s'",
                     o->name, l->value);
            return -EINVAL;
        }
        if (!yes)
            return 0;
        if (asprintf(&s, "--%s", o->name) < 0)
            return -ENOMEM;
    } else {
        if (*l->value == '\0' && o->has_arg == required_argument) {
            snprintf(msg, CONF_MSG_MAX, "%s needs a value", o->name);
            return -EINVAL;
        }
        if (asprintf(&s, *l->value ? "--%s=%s" : "--%s", o->name, l->value) <
            0)
            return -ENOMEM;
    }
    int rc = conf_argv_push(g->out, s);
    if (rc < 0)
        snprintf(msg, CONF_MSG_MAX, "%s", strerror(-rc));
    return rc;
}

int conf_expand(const char *prog, int argc, char **argv,
                struct conf_argv *a, conf_line_cb cb, void *arg,
                int *out_argc, char ***out_argv)
{
    const char *path;
    int at = 0, skip = 0;

    *out_argc = argc;
    *out_argv = argv;
    if (conf_find(prog, argc, argv, &path, &at, &skip) < 0)
        return -1;
    if (!path)
        return 0;

    char msg[CONF_MSG_MAX];
    int rc = conf_argv_push(a, strdup(argv[0]));
    if (rc == 0)
        rc = conf_read(path, cb, arg, msg);
    for (int i = 1; rc == 0 && i < argc; i++)
        if (i < at || i >= at + skip)
            rc = conf_argv_push(a, strdup(argv[i]));
    if (rc < 0) {
        if (rc == -ENOMEM)
            fprintf(stderr, "%s: --config %s: out of memory\n", prog, path);
        else
            fprintf(stderr, "%s: %s (see %s --help)\n", prog, msg, prog);
        for (int i = 0; i < a->n; i++)
            free(a->v[i]);
        free(a->v);
        *a = (struct conf_argv){0};
        return -1;
    }
    *out_argc = a->n;
    *out_argv = a->v;
    return 0;
}

int conf_args(const char *prog, const struct option *opts, int argc,
              char **argv, int *out_argc, char ***out_argv)
{
    struct conf_argv a = {0};
    struct getopt_conf g = {opts, &a};

    return conf_expand(prog, argc, argv, &a, option_line, &g, out_argc,
                       out_argv);
}
