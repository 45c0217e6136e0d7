/* adm_auth.c: `tessera auth add|list|rm|caps`: the cluster's identities
 * and their capabilities (docs/security.md, docs/protocol.md §10.2).
 *
 *   tessera auth add [--get] [-o FILE] NAME [CAPS...]
 *   tessera auth list [NAME]
 *   tessera auth caps NAME CAPS...
 *   tessera auth rm NAME
 *
 * add asks metad to create the identity (metad draws the secret) and gets
 * the key back sealed with the caller's own key, so no secret crosses the
 * network in the clear; it then writes the key file (-o FILE, created
 * 0600, never overwritten) or prints it.  --get returns the key of an
 * identity that exists already instead of failing, like
 * `ceph auth get-or-create`.  CAPS are the words of common/auth_caps.h,
 * checked here first so that a typo is reported with its reason.
 */
#include "adm_internal.h"

#include <errno.h>
#include <string.h>

#include "auth_caps.h"

/* Join argv[from..argc) with blanks and put their canonical form into
 * @buf; -EINVAL when they do not parse as capabilities (the reason
 * printed). */
static int caps_arg(int argc, char **argv, int from, char *buf, size_t size)
{
    struct auth_caps parsed;
    const char *why;
    size_t n = 0;

    buf[0] = '\0';
    for (int i = from; i < argc; i++) {
        int k = snprintf(buf + n, size - n, "%s%s", n ? " " : "", argv[i]);
        if (k < 0 || (size_t)k >= size - n) {
            fprintf(stderr, "tessera: capabilities too long\n");
            return -EINVAL;
        }
        n += (size_t)k;
    }
    if (auth_caps_parse(buf, &parsed, &why) < 0) {
        fprintf(stderr, "tessera: bad capabilities \"%s\": %s\n", buf, why);
        return -EINVAL;
    }
    return auth_caps_format(&parsed, buf, size) < 0 ? -EINVAL : 0;
}

static int set_call(struct adm *a, uint16_t opcode, const char *name,
                    const char *caps, uint32_t flags, struct rpc_reply *rep)
{
    struct proto_auth_set_req q = {
        .name = {name, (uint32_t)strlen(name)},
        .caps = {caps, (uint32_t)strlen(caps)},
        .flags = flags,
    };
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_auth_set_req_encode(&w, &q);
    rc = w.err ? w.err : rpc_call(a->rpc, opcode, w.p, w.len, rep);
    proto_wbuf_free(&w);
    return rc;
}

static int name_call(struct adm *a, uint16_t opcode, const char *name,
                     struct rpc_reply *rep)
{
    struct proto_auth_name_req q = {.name = {name, (uint32_t)strlen(name)}};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_auth_name_req_encode(&w, &q);
    rc = w.err ? w.err : rpc_call(a->rpc, opcode, w.p, w.len, rep);
    proto_wbuf_free(&w);
    return rc;
}

/* Write or print the key of @name sealed in @rep. */
static int key_out(struct adm *a, const char *name, const char *file,
                   const struct rpc_reply *rep)
{
    struct proto_bytes_rep m;
    struct auth_key k = {0};
    char text[512];
    int rc = proto_bytes_rep_decode(rep->payload, rep->len, &m);

    if (rc == 0) {
        int n = cl_auth_unseal(a->auth, AUTH_LABEL_KEY_EXPORT,
                               (const uint8_t *)m.data.p, m.data.len, k.secret,
                               sizeof(k.secret));
        rc = n == AUTH_KEY_SIZE ? 0 : n < 0 ? n : -EBADMSG;
    }
    if (rc < 0) {
        fprintf(stderr,
                "tessera: auth add: cannot open the key metad sent: "
                "%s\n",
                strerror(-rc));
        return ADM_EXIT_FAIL;
    }
    snprintf(k.name, sizeof(k.name), "%s", name);
    if (file) {
        rc = auth_key_save(file, &k);
        memset(&k, 0, sizeof(k));
        if (rc < 0) {
            fprintf(stderr, "tessera: auth add: cannot write %s: %s\n", file,
                    strerror(-rc));
            return ADM_EXIT_FAIL;
        }
        if (!a->json)
            printf("%s: key written to %s\n", name, file);
        return ADM_EXIT_OK;
    }
    rc = auth_key_format(&k, text, sizeof(text));
    memset(&k, 0, sizeof(k));
    if (rc > 0)
        fputs(text, stdout);
    memset(text, 0, sizeof(text));
    return ADM_EXIT_OK;
}

static int cmd_add(struct adm *a, int argc, char **argv)
{
    char caps[PROTO_AUTH_CAPS_MAX + 1];
    const char *file = NULL;
    uint32_t flags = 0;
    struct rpc_reply rep;
    int i = 1, rc;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--get"))
            flags |= PROTO_AUTH_ADD_GET;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            file = argv[++i];
        else
            break;
    }
    if (i >= argc || auth_name_check(argv[i]) < 0) {
        return adm_verb_usage("auth", "add");
    }
    if (caps_arg(argc, argv, i + 1, caps, sizeof(caps)) < 0)
        return ADM_EXIT_USAGE;
    if ((rc = adm_connect(a)) != ADM_EXIT_OK)
        return rc;
    if (!a->auth) {
        fprintf(stderr, "tessera: auth add: needs a key of our own to receive "
                        "the new one (--key or $TESSERA_KEY)\n");
        return ADM_EXIT_FAIL;
    }
    rc = set_call(a, PROTO_MSG_AUTH_ADD_REQ, argv[i], caps, flags, &rep);
    if (rc == -EEXIST) {
        fprintf(stderr,
                "tessera: auth add: %s exists (--get returns its "
                "key)\n",
                argv[i]);
        return ADM_EXIT_FAIL;
    }
    if (rc < 0)
        return adm_fail(a, "auth add", rc);
    rc = key_out(a, argv[i], file, &rep);
    rpc_reply_free(&rep);
    return rc;
}

/* One identity, through cl_auth_rights(): what an NBD export serving
 * several identities asks too. */
static int cmd_show(struct adm *a, const char *name)
{
    char text[PROTO_AUTH_CAPS_MAX + 1];
    struct auth_caps caps;
    int rc;

    if ((rc = adm_connect(a)) != ADM_EXIT_OK)
        return rc;
    rc = cl_auth_rights(a->rpc, name, &caps);
    if (rc == -ENOENT) {
        fprintf(stderr, "tessera: auth list: no identity %s\n", name);
        return ADM_EXIT_FAIL;
    }
    if (rc == 0 && auth_caps_format(&caps, text, sizeof(text)) < 0)
        rc = -EOVERFLOW;
    if (rc < 0)
        return adm_fail(a, "auth list", rc);
    if (a->json) {
        printf("{");
        adm_json_str(stdout, name, strlen(name));
        printf(": ");
        adm_json_str(stdout, text, strlen(text));
        printf("}\n");
    } else {
        printf("%-24s %s\n%-24s %s\n", "NAME", "CAPS", name, text);
    }
    return ADM_EXIT_OK;
}

static int cmd_list(struct adm *a, int argc, char **argv)
{
    struct proto_status_rep m;
    struct proto_kv_iter it;
    struct proto_str k, v;
    struct rpc_reply rep;
    bool first = true;
    int rc;

    if (argc > 2) {
        return adm_verb_usage("auth", "list");
    }
    if (argc == 2)
        return cmd_show(a, argv[1]);
    if ((rc = adm_connect(a)) != ADM_EXIT_OK)
        return rc;
    rc = name_call(a, PROTO_MSG_AUTH_LIST_REQ, "", &rep);
    if (rc < 0)
        return adm_fail(a, "auth list", rc);
    rc = proto_status_rep_decode(rep.payload, rep.len, &m);
    if (rc < 0) {
        rpc_reply_free(&rep);
        return adm_fail(a, "auth list", rc);
    }
    proto_kv_iter_init(&it, &m);
    if (a->json)
        printf("{");
    else
        printf("%-24s %s\n", "NAME", "CAPS");
    while (proto_kv_next(&it, &k, &v)) {
        if (a->json) {
            printf("%s", first ? "" : ", ");
            adm_json_str(stdout, k.p, k.len);
            printf(": ");
            adm_json_str(stdout, v.p, v.len);
        } else {
            printf("%-24.*s %.*s\n", (int)k.len, k.p, (int)v.len, v.p);
        }
        first = false;
    }
    if (a->json)
        printf("}\n");
    rpc_reply_free(&rep);
    return ADM_EXIT_OK;
}

static int cmd_change(struct adm *a, int argc, char **argv, bool rm)
{
    char caps[PROTO_AUTH_CAPS_MAX + 1] = "";
    struct rpc_reply rep;
    int rc;

    if (argc < 2 || (rm && argc != 2) || auth_name_check(argv[1]) < 0) {
        return adm_verb_usage("auth", rm ? "rm" : "caps");
    }
    if (!rm && caps_arg(argc, argv, 2, caps, sizeof(caps)) < 0)
        return ADM_EXIT_USAGE;
    if ((rc = adm_connect(a)) != ADM_EXIT_OK)
        return rc;
    rc = rm ? name_call(a, PROTO_MSG_AUTH_RM_REQ, argv[1], &rep)
            : set_call(a, PROTO_MSG_AUTH_CAPS_REQ, argv[1], caps, 0, &rep);
    if (rc == -ENOENT) {
        fprintf(stderr, "tessera: auth %s: no identity %s\n",
                rm ? "rm" : "caps", argv[1]);
        return ADM_EXIT_FAIL;
    }
    if (rc == -EBUSY) {
        fprintf(stderr,
                "tessera: auth rm: %s is the identity running this "
                "command\n",
                argv[1]);
        return ADM_EXIT_FAIL;
    }
    if (rc < 0)
        return adm_fail(a, rm ? "auth rm" : "auth caps", rc);
    rpc_reply_free(&rep);
    if (!a->json)
        printf("%s: %s\n", argv[1], rm ? "removed" : "capabilities set");
    return ADM_EXIT_OK;
}

int adm_cmd_auth(struct adm *a, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "add"))
        return cmd_add(a, argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return cmd_list(a, argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "rm"))
        return cmd_change(a, argc - 1, argv + 1, true);
    if (argc >= 2 && !strcmp(argv[1], "caps"))
        return cmd_change(a, argc - 1, argv + 1, false);
    return adm_verb_usage("auth", NULL);
}
