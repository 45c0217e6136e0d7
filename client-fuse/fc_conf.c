/* fc_conf.c: tessera-mount's --config FILE (docs/operations.md, "Config
 * files").
 *
 * The mount's options live in its fuse_opt table (fc_main.c's cli_spec),
 * so that table is the list of keys a file may hold: "--meta=%s" makes
 * the key meta (given as --meta=VALUE), "cache=%s" the key cache (given
 * as -o cache=VALUE), "allow_other" a flag (given as -o allow_other).
 * Besides those, `debug = MODULE=1` is -D and `foreground = yes` is -f.
 * The file's options go before the command line's, which override them.
 */
#define FUSE_USE_VERSION 312

#include "fc_internal.h"

#include <errno.h>
#include <fuse_opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

struct mount_conf {
    const struct fuse_opt *spec;
    struct conf_argv *out;
};

/* The key a template names ("--meta=%s" -> "meta", "cache=%s" -> "cache"),
 * into @name; false for templates that name none (short options, the
 * "--x %s" spelling of a "--x=%s" one). */
static bool spec_key(const char *t, char *name, size_t size, bool *value,
                     bool *dashes)
{
    *dashes = !strncmp(t, "--", 2);
    if (t[0] == '-' && !*dashes)
        return false;
    const char *s = *dashes ? t + 2 : t;
    size_t n = strcspn(s, "= ");
    if (s[n] == ' ' || n == 0 || n >= size)
        return false;
    memcpy(name, s, n);
    name[n] = '\0';
    *value = s[n] == '=';
    return true;
}

static int push2(struct conf_argv *a, const char *x, char *y)
{
    int rc = conf_argv_push(a, strdup(x));
    return rc < 0 ? (free(y), rc) : conf_argv_push(a, y);
}

static int mount_line(const struct conf_line *l, void *arg, char *msg)
{
    struct mount_conf *m = arg;
    char name[64], *s = NULL;
    bool value, dashes;
    int yes;

    if (conf_key_is(l->key, "debug"))
        return push2(m->out, "-D", strdup(l->value));
    if (conf_key_is(l->key, "foreground")) {
        if ((yes = conf_flag(l->value)) < 0)
            goto not_flag;
        return yes ? conf_argv_push(m->out, strdup("-f")) : 0;
    }
    for (const struct fuse_opt *o = m->spec; o->templ; o++) {
        if (!spec_key(o->templ, name, sizeof(name), &value, &dashes) ||
            !conf_key_is(l->key, name))
            continue;
        if (!value) {
            if ((yes = conf_flag(l->value)) < 0)
                goto not_flag;
            return yes ? push2(m->out, "-o", strdup(name)) : 0;
        }
        if (*l->value == '\0') {
            snprintf(msg, CONF_MSG_MAX, "%s needs a value", name);
            return -EINVAL;
        }
        if (asprintf(&s, dashes ? "--%s=%s" : "%s=%s", name, l->value) < 0)
            return -ENOMEM;
        return dashes ? conf_argv_push(m->out, s) : push2(m->out, "-o", s);
    }
    snprintf(msg, CONF_MSG_MAX, "unknown key '%s'", l->key);
    return -EINVAL;
not_flag:
    snprintf(msg, CONF_MSG_MAX, "%s takes yes or no, not '%s'", l->key,
             l->value);
    return -EINVAL;
}

int fc_conf_args(const struct fuse_opt *spec, int argc, char **argv,
                 int *out_argc, char ***out_argv)
{
    struct conf_argv a = {0};
    struct mount_conf m = {spec, &a};

    return conf_expand("tessera-mount", argc, argv, &a, mount_line, &m,
                       out_argc, out_argv);
}
