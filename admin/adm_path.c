/* adm_path.c: paths inside a Tessera mount given to the admin CLI.
 *
 * `tessera fileinfo /mnt/tessera/images/vm.img` names the same file as
 * `tessera fileinfo /images/vm.img`: the root of a mount is metad's root.
 * A path that exists on this host and lies on a mount of type
 * fuse.tessera (per /proc/self/mountinfo, the deepest mount point that
 * contains it) is turned into the namespace path below that mount point;
 * any other path is a namespace path as given.  Which metad the mount
 * talks to is not recorded anywhere the CLI can read, so the caller checks
 * that the inode it resolved is the one stat(2) saw (adm_resolve()).
 *
 * adm_mount_ns_path() is the plain function of the mount table and a path
 * that the unit tests drive; adm_path_local() adds the system calls.
 */
#include "adm_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TESSERA_FSTYPE "fuse.tessera"

/* Decode mountinfo's octal escapes (\040 for a space) of @s in place. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Mount point and file system type of one mountinfo @line (modified):
 * "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE ...".
 * False when the line does not parse. */
static bool parse_line(char *line, char **mnt, char **fstype)
{
    char *save = NULL, *tok;
    int field = 0;
    bool dash = false;

    *mnt = *fstype = NULL;
    for (tok = strtok_r(line, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save)) {
        if (dash) {
            *fstype = tok;
            break;
        }
        if (++field == 5)
            *mnt = tok;
        else if (field > 6 && !strcmp(tok, "-"))
            dash = true;
    }
    if (!*mnt || !*fstype)
        return false;
    unescape(*mnt);
    return true;
}

/* True when @mnt is @path or one of its parent directories. */
static bool contains(const char *mnt, const char *path)
{
    size_t n = strlen(mnt);
    if (n == 1 && mnt[0] == '/')
        return true;
    return !strncmp(mnt, path, n) && (path[n] == '/' || path[n] == '\0');
}

int adm_mount_ns_path(const char *mountinfo, const char *real, char *out,
                      size_t size)
{
    char *copy = strdup(mountinfo), *save = NULL, *line;
    size_t best = 0;
    bool tessera = false;

    if (!copy)
        return -ENOMEM;
    for (line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *mnt, *fstype;
        if (!parse_line(line, &mnt, &fstype) || !contains(mnt, real))
            continue;
        /* The deepest mount point wins: a later mount over a deeper
         * folder hides what lies below it. */
        size_t n = strlen(mnt);
        if (n >= best) {
            best = n;
            tessera = !strcmp(fstype, TESSERA_FSTYPE);
        }
    }
    free(copy);
    if (!tessera)
        return 0;
    const char *rest = best == 1 ? real : real + best;
    if (snprintf(out, size, "%s", *rest ? rest : "/") >= (int)size)
        return -ENAMETOOLONG;
    return 1;
}

/* The whole of /proc/self/mountinfo; caller owns *out (free()). */
static int read_mountinfo(char **out)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return -errno;
    size_t cap = 0, len = 0;
    char *buf = NULL;
    int rc = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 16384);
            if (!nb) {
                rc = -ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

int adm_path_local(const char *path, char *out, size_t size, uint64_t *ino)
{
    struct stat st;
    char real[PATH_MAX], *info = NULL;

    if (stat(path, &st) < 0 || !realpath(path, real))
        return 0; /* not here: a namespace path */
    int rc = read_mountinfo(&info);
    if (rc < 0)
        return 0; /* no mount table: take it as a namespace path */
    rc = adm_mount_ns_path(info, real, out, size);
    free(info);
    if (rc == 1)
        *ino = st.st_ino;
    return rc;
}
