/* vd_tls.h: TLS for tessera-nbd (GnuTLS): the server's credentials and one
 * connection's session.  The NBD side (vd_handshake.c) decides when a
 * session starts; vd_io.c moves the connection's bytes through it.
 */
#ifndef TESSERA_VD_TLS_H
#define TESSERA_VD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* --tls: proto.md "TLS support" calls these NOTLS, SELECTIVETLS (every
 * export available both ways) and FORCEDTLS. */
enum vd_tls_mode { VD_TLS_OFF, VD_TLS_ON, VD_TLS_REQUIRE };

/* How the peer of a TLS session proved who it is. */
enum vd_tls_auth {
    VD_TLS_AUTH_NONE, /* no TLS, or X.509 without --tls-verify-peer */
    VD_TLS_AUTH_PSK,  /* a pre-shared key: the name is its identity */
    VD_TLS_AUTH_X509, /* a client certificate the CA signed: its DN */
};

/* The command line's TLS options, borrowed strings. */
struct vd_tls_opts {
    const char *psk_file; /* --tls-psk: "identity:hexkey" lines */
    const char *cert_dir; /* --tls-certificates: ca-cert.pem, ... */
    bool verify_peer;     /* --tls-verify-peer: ask for a client cert */
};

/* Server credentials, loaded once; sessions only read them, which GnuTLS
 * allows from any number of threads. */
struct vd_tls;
/* One connection's TLS session. */
struct vd_tls_session;

/* Load the credentials @o names (exactly one of psk_file and cert_dir).
 * Caller owns *out: vd_tls_free().  On failure @why (@whylen bytes) says
 * what is wrong with which file; -EINVAL, -ENOENT, -EACCES, -ENOMEM. */
int vd_tls_new(const struct vd_tls_opts *o, struct vd_tls **out, char *why,
               size_t whylen);
void vd_tls_free(struct vd_tls *t);

/* Run the server side of a TLS handshake on the connected socket @fd
 * (borrowed).  Caller owns *out: vd_tls_session_close().  On failure @why
 * holds GnuTLS's reason and the caller must drop the connection: -EPROTO
 * (the handshake failed, e.g. an unknown PSK identity or a wrong key),
 * -ENOMEM. */
int vd_tls_session_start(const struct vd_tls *t, int fd,
                         struct vd_tls_session **out, char *why, size_t whylen);
/* The peer's name (PSK identity, or the DN of a verified client
 * certificate), or NULL; owned by @s.  And how it was proved. */
const char *vd_tls_session_user(const struct vd_tls_session *s);
enum vd_tls_auth vd_tls_session_auth(const struct vd_tls_session *s);
/* "TLS1.3 ECDHE-PSK AES-256-GCM"-like summary into @buf, for the log. */
void vd_tls_session_desc(const struct vd_tls_session *s, char *buf,
                         size_t size);
/* Read exactly @n bytes of plaintext.  -ECONNRESET on EOF or a dropped
 * socket, -EPROTO for a TLS error (bad record, renegotiation attempt). */
int vd_tls_session_recv(struct vd_tls_session *s, void *buf, size_t n);
/* Send @iov whole; small messages go out as one record.  -errno. */
int vd_tls_session_sendv(struct vd_tls_session *s, const struct iovec *iov,
                         int iovcnt);
/* Free @s (NULL is fine), after sending close_notify when @notify (the
 * connection ends cleanly: proto.md asks the server to close the TLS
 * session on NBD_CMD_DISC).  No other thread may use @s any more. */
void vd_tls_session_close(struct vd_tls_session *s, bool notify);

/* "off", "on", "require", for logs. */
/* The common name of distinguished name @dn ("CN=hv3,O=Example") into
 * @out (@size bytes): 0, or -ENOENT when it has none, -ENAMETOOLONG. */
int vd_tls_dn_cn(const char *dn, char *out, size_t size);
const char *vd_tls_mode_name(enum vd_tls_mode m);
const char *vd_tls_auth_name(enum vd_tls_auth a);

#endif
