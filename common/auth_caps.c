/* auth_caps.c: capabilities in text and the path rule (see auth_caps.h).
 *
 * Parsing is strict (an unknown word, a relative path, "." or ".."
 * components are refused) so that what an operator typed is exactly what
 * is enforced; formatting gives one canonical text for one set of rights.
 */
#include "auth_caps.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void auth_caps_all(struct auth_caps *out)
{
    memset(out, 0, sizeof(*out));
    out->flags = AUTH_CAP_ADMIN;
}

/* A namespace path: absolute, no empty, "." or ".." component, no
 * trailing slash (but "/" itself). */
static bool path_ok(const char *p, size_t n)
{
    if (n == 0 || n >= AUTH_CAPS_PATH_MAX || p[0] != '/')
        return false;
    if (n == 1)
        return true;
    if (p[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] <= ' ' || p[i] > '~')
            return false;
        if (p[i] != '/')
            continue;
        size_t j = i + 1;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i - 1;
        if (len == 0 || (len == 1 && p[i + 1] == '.') ||
            (len == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return false;
    }
    return true;
}

static int parse_paths(const char *v, size_t n, struct auth_caps *out)
{
    size_t at = 0;

    out->npaths = 0;
    while (at <= n) {
        const char *comma = memchr(v + at, ',', n - at);
        size_t len = comma ? (size_t)(comma - (v + at)) : n - at;
        if (out->npaths == AUTH_CAPS_PATHS || !path_ok(v + at, len))
            return -EINVAL;
        memcpy(out->paths[out->npaths], v + at, len);
        out->paths[out->npaths][len] = '\0';
        out->npaths++;
        at += len + 1;
        if (!comma)
            break;
    }
    /* "/" among them is the whole namespace. */
    for (uint32_t i = 0; i < out->npaths; i++)
        if (strcmp(out->paths[i], "/") == 0)
            out->npaths = 0;
    return 0;
}

static int parse_id(const char *v, size_t n, uint32_t *out)
{
    char buf[16], *end;
    unsigned long x;

    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    x = strtoul(buf, &end, 10);
    if (*end || x > UINT32_MAX - 1 || buf[0] == '-')
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

static int parse_squash(const char *v, size_t n, struct auth_caps *out)
{
    const char *colon = memchr(v, ':', n);

    out->flags |= AUTH_CAP_SQUASH;
    if (parse_id(v, colon ? (size_t)(colon - v) : n, &out->squash_uid) < 0)
        return -EINVAL;
    out->squash_gid = out->squash_uid;
    if (colon)
        return parse_id(colon + 1, n - (size_t)(colon - v) - 1,
                        &out->squash_gid);
    return 0;
}

static bool word_is(const char *w, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(w, name, n) == 0;
}

/* One word of the text form into @out; a reason in *why on failure. */
static int parse_word(const char *w, size_t n, struct auth_caps *out,
                      const char **why)
{
    static const struct {
        const char *name;
        uint32_t set, clear;
    } flags[] = {
        {"admin", AUTH_CAP_ADMIN, 0}, {"chunkd", AUTH_CAP_CHUNKD, 0},
        {"ro", AUTH_CAP_RO, 0},       {"rw", 0, AUTH_CAP_RO},
        {"proxy", AUTH_CAP_PROXY, 0},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (word_is(w, n, flags[i].name)) {
            out->flags = (out->flags | flags[i].set) & ~flags[i].clear;
            return 0;
        }
    }
    if (word_is(w, n, "squash")) {
        out->flags |= AUTH_CAP_SQUASH;
        out->squash_uid = out->squash_gid = AUTH_SQUASH_ID;
        return 0;
    }
    if (n > 7 && memcmp(w, "squash=", 7) == 0) {
        *why = "squash wants UID or UID:GID";
        return parse_squash(w + 7, n - 7, out);
    }
    if (n > 5 && memcmp(w, "path=", 5) == 0) {
        *why = "path wants up to 8 absolute paths separated by commas,"
               " without . or .. components";
        return parse_paths(w + 5, n - 5, out);
    }
    *why = "unknown word (admin, chunkd, rw, ro, path=, squash, proxy)";
    return -EINVAL;
}

int auth_caps_parse(const char *text, struct auth_caps *out, const char **why)
{
    const char *dummy;
    size_t at = 0, len = strlen(text);

    if (!why)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    *why = NULL;
    while (at < len) {
        while (at < len && (text[at] == ' ' || text[at] == '\t'))
            at++;
        size_t start = at;
        while (at < len && text[at] != ' ' && text[at] != '\t')
            at++;
        if (at > start && parse_word(text + start, at - start, out, why) < 0)
            return -EINVAL;
    }
    *why = NULL;
    return 0;
}

int auth_caps_format(const struct auth_caps *c, char *buf, size_t size)
{
    static const struct {
        uint32_t flag;
        const char *word;
    } words[] = {{AUTH_CAP_ADMIN, "admin"},
                 {AUTH_CAP_CHUNKD, "chunkd"},
                 {AUTH_CAP_PROXY, "proxy"}};
    size_t n = 0;
    int k;

#define APPEND(...)                                                            \
    do {                                                                       \
        k = snprintf(buf + n, size > n ? size - n : 0, __VA_ARGS__);           \
        if (k < 0)                                                             \
            return -ENOSPC;                                                    \
        n += (size_t)k;                                                        \
    } while (0)
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (c->flags & words[i].flag)
            APPEND("%s%s", n ? " " : "", words[i].word);
    /* rw is the default: said only where no role says more. */
    if ((c->flags & AUTH_CAP_RO) ||
        !(c->flags & (AUTH_CAP_ADMIN | AUTH_CAP_CHUNKD)))
        APPEND("%s%s", n ? " " : "", (c->flags & AUTH_CAP_RO) ? "ro" : "rw");
    for (uint32_t i = 0; i < c->npaths; i++)
        APPEND("%s%s", i ? "," : " path=", c->paths[i]);
    if (c->flags & AUTH_CAP_SQUASH)
        APPEND(" squash=%u:%u", c->squash_uid, c->squash_gid);
#undef APPEND
    return n < size ? (int)n : -ENOSPC;
}

/* True when @a is @b or a directory above it ("/a" of "/a/b"). */
static bool is_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);

    if (strcmp(a, "/") == 0)
        return true;
    return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/');
}

enum auth_reach auth_caps_reach(const struct auth_caps *c, const char *path)
{
    enum auth_reach best = AUTH_REACH_OUTSIDE;

    if (c->npaths == 0)
        return AUTH_REACH_INSIDE;
    for (uint32_t i = 0; i < c->npaths; i++) {
        if (is_prefix(c->paths[i], path))
            return AUTH_REACH_INSIDE;
        if (is_prefix(path, c->paths[i]))
            best = AUTH_REACH_ABOVE;
    }
    return best;
}
