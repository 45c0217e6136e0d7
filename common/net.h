/* net.h: addresses ("host:port", "[v6]:port") and blocking sockets. */
#ifndef TESSERA_NET_H
#define TESSERA_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Parse @addr ("127.0.0.1:9420", "[::1]:9420", "localhost:9420") into
 * @ss/@len, resolving names.  -EINVAL for a malformed address,
 * -EADDRNOTAVAIL when the name does not resolve. */
int net_addr_parse(const char *addr, struct sockaddr_storage *ss,
                   socklen_t *len);
/* Format @sa as "host:port" into @buf. */
void net_addr_format(const struct sockaddr *sa, char *buf, size_t size);
/* Connect to @addr with TCP_NODELAY, waiting at most @timeout_ms.  Returns
 * a blocking socket fd (caller owns it) or -errno. */
int net_connect(const char *addr, int timeout_ms);
/* Write or read exactly @n bytes; -errno, or -ECONNRESET on EOF. */
int net_write_all(int fd, const void *p, size_t n);
int net_read_all(int fd, void *p, size_t n);

/* A list of addresses "a,b,c" (--meta of a metad group, docs/protocol.md
 * §5.3): how many it names, and item @i (modulo that count) copied into
 * @out (truncated to @size - 1 bytes). */
size_t net_addr_list_count(const char *list);
void net_addr_list_item(const char *list, size_t i, char *out, size_t size);

#endif
