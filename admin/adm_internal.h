/* adm_internal.h: shared inside admin/ only: the CLI's state, exit codes,
 * the commands and small output helpers.
 */
#ifndef TESSERA_ADM_INTERNAL_H
#define TESSERA_ADM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cl.h"
#include "image_list.h"
#include "metrics.h"
#include "proto.h"
#include "rpc.h"
#include "status.h"

/* Exit codes, documented in `tessera --help`. */
#define ADM_EXIT_OK 0
#define ADM_EXIT_FAIL 1        /* an error, or something unhealthy */
#define ADM_EXIT_UNREACHABLE 2 /* metad cannot be reached */
#define ADM_EXIT_USAGE 64      /* bad command line */

#define ADM_DEFAULT_META "127.0.0.1:9420"

struct adm {
    const char *meta;       /* "host:port" of metad */
    const char *key;        /* --key FILE, else $TESSERA_KEY; NULL: none */
    bool secure;            /* --secure, else $TESSERA_SECURE */
    bool json;              /* --json: machine-readable output */
    struct rpc_client *rpc; /* after adm_connect() */
    struct cl_auth *auth;   /* after adm_connect(), with a key */
};

/* adm_verbs.c: the verbs, each with its synopsis, summary and help. */
struct adm_verb {
    const char *name;
    int (*fn)(struct adm *a, int argc, char **argv); /* argv[0]: the verb */
    const char *usage;   /* synopsis lines, '\n' between, without "tessera " */
    const char *summary; /* one line: the list in --help, the man page's NAME */
    const char *help;    /* what it does, then its commands and options */
};
/* The verb called @name, or NULL. */
const struct adm_verb *adm_verb_find(const char *name);
/* `tessera VERB --help` of @v. */
void adm_verb_help(FILE *f, const struct adm_verb *v);
/* The synopsis lines of @verb (those of subcommand @sub only, when it has
 * some) on stderr, for a bad command line.  Returns ADM_EXIT_USAGE. */
int adm_verb_usage(const char *verb, const char *sub);
/* Every verb's synopsis lines with its summary: `tessera --help`'s list. */
void adm_verbs_list(FILE *f);

/* adm_conn.c */

/* Connect to a->meta as an admin client.  Returns ADM_EXIT_OK, or
 * ADM_EXIT_UNREACHABLE after printing why on stderr. */
int adm_connect(struct adm *a);
/* A connection of a's identity to metad at @addr (one address or a
 * list), printing nothing: 0 or -errno.  Caller owns *out
 * (rpc_client_close()). */
int adm_rpc_open(struct adm *a, const char *addr, struct rpc_client **out);
/* Report a failed call @what (a negative errno @rc) on stderr and return
 * the exit code for it: ADM_EXIT_UNREACHABLE when the connection failed,
 * ADM_EXIT_FAIL otherwise. */
int adm_fail(struct adm *a, const char *what, int rc);
/* Load a->auth from the key file once (--secure applied): 0, or -errno
 * after printing why. */
int adm_auth_open(struct adm *a);
/* A ticket for the chunk servers on a->auth (after adm_connect()). */
int adm_ticket(struct adm *a);
/* adm_fail() for an error about @path: "tessera: WHAT: PATH: cause" with
 * the cause in words (no such file or folder, already exists, ...). */
int adm_fail_path(struct adm *a, const char *what, const char *path, int rc);
/* The path a new file @path is to have, into @out: @path when absolute
 * (a namespace path, or one in a mount: adm_resolve() of its folder tells),
 * the namespace path when relative to a working folder inside a Tessera
 * mount.  Empty, or relative elsewhere: prints why and returns -EINVAL. */
int adm_path_arg(const char *what, const char *path, char *out, size_t size);

/* Commands (adm_status.c, adm_fileinfo.c, adm_ping.c): argv[0] is the
 * command name.  Return an exit code. */
int adm_cmd_status(struct adm *a, int argc, char **argv);
int adm_cmd_fileinfo(struct adm *a, int argc, char **argv);
int adm_cmd_ping(struct adm *a, int argc, char **argv);

/* adm_status.c: a STATUS_REP taken apart, kept apart from the printing so
 * it is tested without a server. */

/* status_report_healthy() and the rest: common/status.h. */

/* Ask metad for STATUS into *st (caller frees with status_report_free()).
 * 0 or -errno. */
int adm_status_fetch(struct adm *a, struct status_report *st);
/* Send request @opcode with @body (borrowed; NULL for none) and parse its
 * key/value reply into *st (caller frees it with status_report_free(), also
 * on error).  0 or -errno. */
int adm_status_call(struct adm *a, uint16_t opcode,
                    const struct proto_wbuf *body, struct status_report *st);
/* The same for a request whose body is one inode (IMAGE_INFO_REQ,
 * IMAGE_LIST_REQ). */
int adm_status_ino(struct adm *a, uint16_t opcode, uint64_t ino,
                   struct status_report *st);
/* Print the sessions table to @f, its columns as wide as their longest
 * value (up to 60 characters). */
void adm_print_sessions(FILE *f, const struct status_report *st);
/* Print the storage server table (tessera servers). */
void adm_print_servers(const struct status_report *st);

/* adm_goal.c */
int adm_cmd_setgoal(struct adm *a, int argc, char **argv);
int adm_cmd_getgoal(struct adm *a, int argc, char **argv);

/* adm_cluster.c: server control, scrub, rebalance, fsck, servers. */
int adm_cmd_servers(struct adm *a, int argc, char **argv);
int adm_cmd_server(struct adm *a, int argc, char **argv);
int adm_cmd_scrub(struct adm *a, int argc, char **argv);
int adm_cmd_rebalance(struct adm *a, int argc, char **argv);
int adm_cmd_fsck(struct adm *a, int argc, char **argv);
/* Seconds without progress after which a drain is said to be stuck. */
#define ADM_DRAIN_STALL_S 10
/* A drain being followed (`server drain ID --wait`): done when its server
 * holds no replica; stuck when for ADM_DRAIN_STALL_S polls the count
 * stayed put, no copy was in flight or finished, and metad's repair found
 * chunks no server can take a copy of (repair.unplaced): the other
 * servers cannot hold every chunk at its goal. */
struct drain_watch {
    uint32_t id;
    uint64_t left;     /* replicas at the last change; start at UINT64_MAX */
    uint64_t copied;   /* repair.copied at the last change */
    unsigned still;    /* polls since */
    bool stuck;
    uint64_t unplaced; /* repair.unplaced at the last poll */
};
/* Take one progress report: true when the drain is over, done or stuck
 * (then d->stuck). */
bool adm_drain_step(struct drain_watch *d, const struct status_report *st);

/* adm_fileinfo.c */
int adm_cmd_checkfile(struct adm *a, int argc, char **argv);
/* Resolve @path from the root with LOOKUP as uid 0.  Fills *attr.  A path
 * inside a Tessera mount on this host is first made the namespace path it
 * names (adm_path_local()); -EXDEV when the file found is not the one the
 * mount shows (the mount belongs to another metad). */
int adm_resolve(struct adm *a, const char *path, struct proto_attr *attr);

/* adm_path.c */
/* The namespace path of real (absolute, symlink-free) path @real, given the
 * text of /proc/self/mountinfo: 1 with the path below the mount point in
 * @out ("/" for the mount point) when the deepest mount holding @real is
 * of type fuse.tessera, 0 when it is not, or -errno. */
int adm_mount_ns_path(const char *mountinfo, const char *real, char *out,
                      size_t size);
/* The same for @path as given on the command line: 1 with the namespace
 * path in @out and the inode stat(2) shows in *ino when @path exists here
 * inside a Tessera mount, 0 when it is a namespace path, or -errno. */
int adm_path_local(const char *path, char *out, size_t size, uint64_t *ino);

/* adm_progress.c */
struct adm_progress {
    const char *what;
    bool on;
    uint64_t total; /* bytes */
    double start, last;
};
/* Begin showing progress of @what over @total bytes on stderr: when
 * @forced (--progress) or stderr is a terminal. */
void adm_progress_start(struct adm_progress *p, const char *what, bool forced,
                        uint64_t total);
/* @done bytes so far; @final ends the line. */
void adm_progress_show(struct adm_progress *p, uint64_t done, bool final);

/* adm_image_lease.c: 1 when a session holds the writer lease of @ino
 * ("NAME on HOST" in @who), 0 when none does, or -errno. */
int adm_image_writer(struct adm *a, uint64_t ino, char *who, size_t size);

/* adm_image_diff.c: image diff, image apply-diff. */
int adm_image_diff(struct adm *a, int argc, char **argv);
int adm_image_apply_diff(struct adm *a, int argc, char **argv);
/* adm_image_lineage.c: image rollback, image flatten. */
int adm_image_rollback(struct adm *a, int argc, char **argv);
int adm_image_flatten(struct adm *a, int argc, char **argv);
/* One line of JSON for file @path: path, ino, size, then @extra (", ..."
 * or NULL). */
void adm_attr_json(const char *path, const struct proto_attr *at,
                   const char *extra);
struct cl_client;
/* A client library session of its own for image data ("tessera image
 * @what pid N").  Caller owns *cl: cl_client_close(). */
int adm_client_open(struct adm *a, const char *what, struct cl_client **cl);
/* Call @opcode with the request in @w (released here) and an attr_rep
 * reply into *@out (may be NULL).  0 or -errno. */
int adm_attr_call(struct adm *a, uint16_t opcode, struct proto_wbuf *w,
                  struct proto_attr *out);
/* SETATTR @ino to @size (no zeroing of a shrunk tail); fills *out. */
int adm_image_set_size(struct adm *a, uint64_t ino, uint64_t size,
                       struct proto_attr *out);

/* adm_image.c: snapshot, clone, image create|info|resize|rm. */
int adm_cmd_snapshot(struct adm *a, int argc, char **argv);
int adm_cmd_clone(struct adm *a, int argc, char **argv);
int adm_cmd_image(struct adm *a, int argc, char **argv);
/* adm_auth.c */
int adm_cmd_auth(struct adm *a, int argc, char **argv);

/* adm_meta.c */
int adm_cmd_meta(struct adm *a, int argc, char **argv);
/* MKNOD @path (its directory must exist; -EEXIST when it does) and set
 * its size to @bytes; fills *out with the new attributes. */
int adm_image_make(struct adm *a, const char *path, uint64_t bytes,
                   struct proto_attr *out);
/* adm_image_list.c: image list [--tree] [PATH]. */
int adm_image_list(struct adm *a, int argc, char **argv);
/* adm_image_io.c: image import SRC DST, image export SRC DST. */
int adm_image_import(struct adm *a, int argc, char **argv);
int adm_image_export(struct adm *a, int argc, char **argv);
/* adm_image_lease.c: image handover PATH (arm a live-migration hand-over
 * and show who writes the image). */
int adm_image_handover(struct adm *a, int argc, char **argv);
/* Parse "10G", "512M", "4096", "1TiB" (binary units K to E, B or iB
 * after them optional) into bytes: 0, -EINVAL or -EFBIG, with *why (when
 * @why is not NULL) set to a static phrase saying what is wrong. */
int adm_parse_size(const char *s, uint64_t *out, const char **why);
/* adm_parse_size() for command @verb: on error print which part of @s is
 * wrong and every unit accepted, and return -EINVAL. */
int adm_size_arg(const char *verb, const char *s, uint64_t *out);
/* Split @path into its directory ("/" when none) and last component;
 * -EINVAL for an empty, ".", ".." or too long name. */
int adm_split_path(const char *path, char *dir, size_t dsize, char *name,
                   size_t nsize);

/* adm_fmt.c */

/* Write @n bytes at @s as a JSON string literal (quotes included). */
void adm_json_str(FILE *f, const char *s, size_t n);
/* "1.5 GiB" style size into @buf. */
void adm_fmt_bytes(uint64_t bytes, char *buf, size_t size);
/* "1h02m03s" style duration into @buf. */
void adm_fmt_secs(uint64_t secs, char *buf, size_t size);
/* A duration in milliseconds with its unit: "250ms", "4.5s", "3m05s". */
void adm_fmt_ms(uint64_t ms, char *buf, size_t size);
/* Print @b on stdout and free it: 0, or -ENOMEM when it could not be
 * built. */
int adm_print_buf(struct metrics_buf *b);

#endif
