/* conn_limit.c: counts of connections per address and sessions per
 * identity (see conn_limit.h).
 *
 * Entries live in one array, searched linearly: a daemon sees at most a
 * few thousand distinct addresses and identities at once, and a take or a
 * put happens once per connection, never per request.  An entry whose
 * count falls to zero is removed (the last entry moves into its slot), so
 * the table holds only keys with live connections.
 */
#include "conn_limit.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    unsigned kind;
    unsigned count;
};

struct conn_limit {
    pthread_mutex_t lock;
    unsigned max[2]; /* by enum conn_limit_kind; 0: none */
    struct entry *v;
    size_t n, cap;
};

int conn_limit_new(unsigned per_addr, unsigned per_identity,
                   struct conn_limit **out)
{
    struct conn_limit *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    t->max[CONN_LIMIT_ADDR] = per_addr;
    t->max[CONN_LIMIT_IDENTITY] = per_identity;
    *out = t;
    return 0;
}

void conn_limit_free(struct conn_limit *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].key);
    free(t->v);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct entry *find(struct conn_limit *t, enum conn_limit_kind kind,
                          const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].kind == (unsigned)kind && strcmp(t->v[i].key, key) == 0)
            return &t->v[i];
    return NULL;
}

static struct entry *add(struct conn_limit *t, enum conn_limit_kind kind,
                         const char *key)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct entry *v = realloc(t->v, cap * sizeof(*v));
        if (!v)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    t->v[t->n] = (struct entry){.key = k, .kind = (unsigned)kind};
    return &t->v[t->n++];
}

int conn_limit_take(struct conn_limit *t, enum conn_limit_kind kind,
                    const char *key)
{
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    struct entry *e = find(t, kind, key);
    if (e && t->max[kind] && e->count >= t->max[kind])
        rc = -EUSERS;
    else if (!e && !(e = add(t, kind, key)))
        rc = -ENOMEM;
    else
        e->count++;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void conn_limit_put(struct conn_limit *t, enum conn_limit_kind kind,
                    const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct entry *e = find(t, kind, key);
    if (e && --e->count == 0) {
        free(e->key);
        *e = t->v[--t->n];
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned conn_limit_max(const struct conn_limit *t, enum conn_limit_kind kind)
{
    return t->max[kind];
}

unsigned conn_limit_count(struct conn_limit *t, enum conn_limit_kind kind,
                          const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct entry *e = find(t, kind, key);
    unsigned n = e ? e->count : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

int conn_limit_parse(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > UINT_MAX)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

void conn_limit_addr_key(const char *name, char *buf, size_t size)
{
    const char *colon = strrchr(name, ':');
    size_t n = colon ? (size_t)(colon - name) : strlen(name);

    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        name++;
        n -= 2;
    }
    if (size == 0)
        return;
    if (n >= size)
        n = size - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
}
