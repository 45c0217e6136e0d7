/* adm_verbs.c: the `tessera` CLI's verbs, one table: each verb's handler,
 * synopsis, one-line summary and help.  The same entries make the list in
 * `tessera --help`, each verb's `tessera VERB --help`, its usage line on
 * a bad command line, and, through help2man on `tessera VERB --help`
 * (scripts/man-verbs.sh), its man page tessera-VERB(1); the bash
 * completion reads the verbs back from `tessera --help`.  So a verb, an
 * option or a sentence is written once, here.
 *
 * The help text is laid out for help2man: paragraphs, then headings that
 * end in a colon ("Options:") with indented "TERM  meaning" lines.
 */
#include "adm_internal.h"

#include <ctype.h>
#include <string.h>

/* What every verb's help ends with: the global options and exit codes. */
static const char help_common[] =
    "Global options (before or after the verb):\n"
    "  --meta ADDR:PORT\n"
    "                        the metadata server (default $TESSERA_META, else\n"
    "                        " ADM_DEFAULT_META ")\n"
    "  --key FILE            the identity's key file (default $TESSERA_KEY)\n"
    "  --json                print JSON instead of tables\n"
    "  -h, --help            show this help\n"
    "\n"
    "A PATH is a path in Tessera's namespace (/images/vm.img) or a path\n"
    "inside a Tessera mount on this host.\n"
    "\n"
    "Exit status:\n"
    "  0                     done, and all is well\n"
    "  1                     an error, or something unhealthy\n"
    "  2                     the metadata server cannot be reached\n"
    "  64                    bad command line\n";

static const struct adm_verb verbs[] = {
    {"status", adm_cmd_status, "status",
     "show the cluster's health at a glance",
     "Show the metadata server, the client sessions with their cache\n"
     "callbacks, the storage servers by state with capacity and used space\n"
     "(the bytes their chunk files take on disk), the chunks that are ok,\n"
     "under goal, over goal or missing, repair progress, and the progress\n"
     "and findings of checksum scrubs.  Exits 1 unless every server is up\n"
     "and no chunk is under goal or missing.\n"},
    {"servers", adm_cmd_servers, "servers", "list the storage servers",
     "List the storage servers: id, state and since when, address, chunks\n"
     "held, used space (the bytes their chunk files take on disk), free\n"
     "space and the age of the last heartbeat.\n"},
    {"server", adm_cmd_server,
     "server drain ID [--wait]\nserver undrain ID\nserver remove ID",
     "drain, undrain or forget a storage server",
     "Commands:\n"
     "  drain ID              move every chunk off server ID; new chunks\n"
     "                        go elsewhere\n"
     "  undrain ID            cancel a drain\n"
     "  remove ID             forget a server that is down, or drained\n"
     "                        and empty\n"
     "\n"
     "Options:\n"
     "  --wait                print progress once a second until the drain is\n"
     "                        done; stop, and say so, when the goal of\n"
     "                        some chunks cannot be met without it\n"},
    {"setgoal", adm_cmd_setgoal, "setgoal [-r] N PATH",
     "set the replication goal of a file or folder",
     "Set the number of copies (N, 1 to 9) kept of the chunks of PATH.\n"
     "Repair adds or removes copies to match.\n"
     "\n"
     "Options:\n"
     "  -r                    the whole tree below PATH\n"},
    {"getgoal", adm_cmd_getgoal, "getgoal [-r] PATH",
     "show the replication goal of a file or folder",
     "Show the goal of PATH.\n"
     "\n"
     "Options:\n"
     "  -r                    count the files and folders per goal below\n"
     "                        PATH\n"},
    {"fileinfo", adm_cmd_fileinfo, "fileinfo PATH", "show a file's chunks",
     "Show a file's chunks: id, version and replicas, with the state of\n"
     "each replica's server.\n"},
    {"checkfile", adm_cmd_checkfile, "checkfile PATH",
     "count the copies of a file's chunks",
     "Count the good copies of each chunk of PATH against its goal, with a\n"
     "summary.  Exits 1 when a chunk is under its goal.\n"},
    {"scrub", adm_cmd_scrub, "scrub [--server ID]",
     "verify checksums on the storage servers",
     "Start a checksum verification pass on every storage server, or on\n"
     "one.  It returns at once: `tessera status` and the status page show\n"
     "the pass's progress and the damaged copies it found, which repair\n"
     "replaces.\n"
     "\n"
     "Options:\n"
     "  --server ID           only server ID\n"},
    {"rebalance", adm_cmd_rebalance, "rebalance [--wait]",
     "even out usage across the storage servers",
     "Move chunks from the fullest to the emptiest storage servers.\n"
     "\n"
     "Options:\n"
     "  --wait                print progress once a second until done\n"},
    {"fsck", adm_cmd_fsck, "fsck [--repair] [--wait]",
     "compare the metadata with the storage servers",
     "Compare the metadata with the storage servers' inventories: chunks\n"
     "without a copy, copies no file refers to, stale versions.\n"
     "\n"
     "Options:\n"
     "  --repair              fix what can be fixed\n"
     "  --wait                print progress once a second until done\n"},
    {"snapshot", adm_cmd_snapshot, "snapshot SRC DST",
     "make an instant read-only copy of a file",
     "Make DST an instant, read-only, copy-on-write copy of SRC: it shares\n"
     "SRC's chunks until SRC is written.\n"},
    {"clone", adm_cmd_clone, "clone SRC DST",
     "make an instant writable copy of a file",
     "Make DST an instant, writable, copy-on-write copy of SRC: both share\n"
     "their chunks until either is written.\n"},
    {"image", adm_cmd_image,
     "image create [-p] PATH SIZE\n"
     "image info PATH\n"
     "image list [--tree] [PATH]\n"
     "image resize [--shrink] PATH SIZE\n"
     "image rm PATH\n"
     "image import [--progress] [-f raw|qcow2] SRC DST\n"
     "image export [--progress] [-O raw|qcow2] SRC DST\n"
     "image rollback IMAGE SNAPSHOT\n"
     "image flatten [--progress] CLONE\n"
     "image diff [--progress] --from SNAP1 SNAP2\n"
     "image apply-diff [--progress] IMAGE FILE\n"
     "image handover [--for SECONDS] PATH",
     "create, inspect, copy and change VM disk images",
     "Commands:\n"
     "  create PATH SIZE\n"
     "                        a sparse image; SIZE in bytes or a whole\n"
     "                        number with K, M, G, T, P or E (binary\n"
     "                        units); a SIZE beyond the servers' capacity\n"
     "                        is warned about\n"
     "  info PATH             size, allocated, chunks, shared chunks, goal,\n"
     "                        read-only, parent, the files it shares\n"
     "                        chunks with\n"
     "  list [PATH]           images, snapshots and clones under PATH\n"
     "                        (default /): kind, parent, size, allocated,\n"
     "                        shared and exclusive bytes\n"
     "  resize PATH SIZE\n"
     "                        grow an image, or shrink it with --shrink\n"
     "  rm PATH               remove an image; says how many chunks are\n"
     "                        freed and which files keep the others\n"
     "  import SRC DST        copy a local raw file, block device or\n"
     "                        qcow2 image into a new image, sparsely\n"
     "  export SRC DST        copy an image out to a local raw or qcow2 file,\n"
     "                        sparsely\n"
     "  rollback IMAGE SNAPSHOT\n"
     "                        IMAGE takes SNAPSHOT's content and size\n"
     "  flatten CLONE         copy what CLONE shares with its parent; drop "
     "the\n"
     "                        parent\n"
     "  diff --from SNAP1 SNAP2\n"
     "                        write the blocks changed since SNAP1 to stdout\n"
     "  apply-diff IMAGE FILE\n"
     "                        apply a diff to a copy of its base\n"
     "  handover PATH         allow one live-migration hand-over of the image\n"
     "\n"
     "Options:\n"
     "  -p                    (create) make missing folders\n"
     "  --tree                (list) snapshots and clones under what they "
     "were\n"
     "                        made from\n"
     "  --shrink              (resize) allow a smaller size\n"
     "  --progress            (import, export, flatten, diff, apply-diff) "
     "show\n"
     "                        progress on stderr\n"
     "  -f raw|qcow2          (import) the source's format (default: probed)\n"
     "  -O raw|qcow2          (export) the format to write (default raw)\n"
     "  --from SNAP1          (diff) the snapshot the diff starts from\n"
     "  --for SECONDS         (handover) how long the hand-over stays armed,\n"
     "                        1 to 86400 (default 600)\n"},
    {"ping", adm_cmd_ping, "ping", "check that the metadata server answers",
     "Check that the metadata server answers, and show the round-trip\n"
     "time.\n"},
    {"auth", adm_cmd_auth,
     "auth add [--get] [-o FILE] NAME [CAPS...]\n"
     "auth list [NAME]\n"
     "auth caps NAME CAPS...\n"
     "auth rm NAME",
     "manage identities and their capabilities",
     "Commands:\n"
     "  add NAME [CAPS...]\n"
     "                        create an identity (NAME: 1 to 64\n"
     "                        printable characters) with capabilities\n"
     "                        CAPS and print its key file, or write it\n"
     "                        with -o\n"
     "  list [NAME]           identities and their capabilities\n"
     "  caps NAME CAPS...\n"
     "                        replace an identity's capabilities\n"
     "  rm NAME               remove an identity; its connections to the\n"
     "                        metadata server close\n"
     "\n"
     "Options:\n"
     "  --get                 (add) give the key of an identity that exists\n"
     "                        already instead of failing\n"
     "  -o FILE               (add) write the key file to FILE (mode\n"
     "                        0600, never overwritten)\n"},
};

const struct adm_verb *adm_verb_find(const char *name)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verbs[i].name, name))
            return &verbs[i];
    return NULL;
}

/* The synopsis lines of @v (those of subcommand @sub only, when not
 * NULL), each after @first on the first line and @more on the others. */
static void synopsis_print(FILE *f, const struct adm_verb *v, const char *sub,
                           const char *first, const char *more)
{
    const char *p = v->usage;
    size_t vlen = strlen(v->name), slen = sub ? strlen(sub) : 0;
    bool any = false;

    while (*p) {
        size_t n = strcspn(p, "\n");
        /* "VERB SUB ..." or "VERB SUB" */
        bool match =
            !sub ||
            (n >= vlen + 1 + slen && !strncmp(p + vlen + 1, sub, slen) &&
             (p[vlen + 1 + slen] == ' ' || vlen + 1 + slen == n));
        if (match) {
            fprintf(f, "%stessera %.*s\n", any ? more : first, (int)n, p);
            any = true;
        }
        p += n + (p[n] == '\n');
    }
    if (!any && sub)
        synopsis_print(f, v, NULL, first, more);
}

void adm_verb_help(FILE *f, const struct adm_verb *v)
{
    synopsis_print(f, v, NULL, "Usage: ", "  or:  ");
    fprintf(f, "\n%c%s.\n\n%s\n%s", toupper((unsigned char)v->summary[0]),
            v->summary + 1, v->help, help_common);
}

int adm_verb_usage(const char *verb, const char *sub)
{
    const struct adm_verb *v = adm_verb_find(verb);

    if (v) {
        synopsis_print(stderr, v, sub, "usage: ", "       ");
        fprintf(stderr, "(see tessera %s --help)\n", verb);
    }
    return ADM_EXIT_USAGE;
}

/* The term @v has in the list: its synopsis when it has one form, else
 * "VERB SUB1|SUB2|... ..." (the bash completion reads the subcommands from
 * there), into @buf. */
static void list_term(const struct adm_verb *v, char *buf, size_t size)
{
    const char *p = v->usage;
    size_t len, vlen = strlen(v->name);

    if (!strchr(p, '\n')) {
        snprintf(buf, size, "%s", p);
        return;
    }
    len = (size_t)snprintf(buf, size, "%s ", v->name);
    while (*p && len < size) {
        const char *sub = p + vlen + 1;
        size_t n = strcspn(p, "\n"), sn = strcspn(sub, " \n");

        len += (size_t)snprintf(buf + len, size - len, "%s%.*s",
                                p == v->usage ? "" : "|", (int)sn, sub);
        p += n + (p[n] == '\n');
    }
    if (len < size)
        snprintf(buf + len, size - len, " ...");
}

void adm_verbs_list(FILE *f)
{
    char term[256];

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        list_term(&verbs[i], term, sizeof(term));
        if (strlen(term) <= 22)
            fprintf(f, "  %-22s  %s\n", term, verbs[i].summary);
        else
            fprintf(f, "  %s\n  %-22s  %s\n", term, "", verbs[i].summary);
    }
}
