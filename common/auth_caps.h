/* auth_caps.h: an identity's capabilities, their text form and the path
 * rule (docs/security.md, "Capabilities").
 *
 * The text form is what `tessera auth caps` takes, metad stores and a
 * ticket carries: blank-separated words, in any order:
 *
 *   admin               admin verbs, identities, everything in the namespace
 *   chunkd              a storage server (register, heartbeats, service keys)
 *   rw | ro             may change files and chunks, or only read (rw)
 *   path=/a[,/b...]     what the identity reaches: each path and what is
 *                       under it; a file path names that file only (/)
 *   squash[=UID[:GID]]  uid 0 acts as UID, gid 0 as GID (65534:65534)
 *   proxy               may read other identities' capabilities (an NBD
 *                       export that serves several identities)
 *
 * "" is a client that may do anything in the namespace as the user it
 * says it is, the same as "rw path=/".
 */
#ifndef TESSERA_AUTH_CAPS_H
#define TESSERA_AUTH_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_CAP_ADMIN 0x1u
#define AUTH_CAP_CHUNKD 0x2u
#define AUTH_CAP_RO 0x4u
#define AUTH_CAP_SQUASH 0x8u
#define AUTH_CAP_PROXY 0x10u

#define AUTH_CAPS_PATHS 8
#define AUTH_CAPS_PATH_MAX 256
#define AUTH_SQUASH_ID 65534u

struct auth_caps {
    uint32_t flags; /* AUTH_CAP_* */
    uint32_t squash_uid, squash_gid;
    uint32_t npaths; /* 0: the whole namespace */
    char paths[AUTH_CAPS_PATHS][AUTH_CAPS_PATH_MAX];
};

/* Parse the text form.  0, or -EINVAL with a one-line reason in @why
 * (may be NULL). */
int auth_caps_parse(const char *text, struct auth_caps *out, const char **why);
/* The canonical text form into @buf: its length, or -ENOSPC. */
int auth_caps_format(const struct auth_caps *c, char *buf, size_t size);
/* Everything: what an unauthenticated daemon grants (--no-auth). */
void auth_caps_all(struct auth_caps *out);

enum auth_reach {
    AUTH_REACH_OUTSIDE, /* not reachable */
    AUTH_REACH_ABOVE,   /* a directory on the way to a reachable path */
    AUTH_REACH_INSIDE,  /* a reachable path or under one */
};
/* Where namespace path @path ("/a/b", normalised) stands for @c. */
enum auth_reach auth_caps_reach(const struct auth_caps *c, const char *path);

#endif
