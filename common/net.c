/* net.c: address parsing and blocking socket helpers for the clients
 * (the mount, the admin CLI, the NBD export).  Daemons use libuv instead.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_addr_parse(const char *addr, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    char host[256];
    const char *port;
    struct addrinfo hints, *res;
    size_t hl;

    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hl = (size_t)(end - addr - 1);
        if (hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr + 1, hl);
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - addr);
        if (hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr, hl);
        port = colon + 1;
    }
    host[hl] = '\0';
    char *endp;
    long p = strtol(port, &endp, 10);
    if (hl == 0 || *port == '\0' || *endp != '\0' || p < 0 || p > 65535)
        return -EINVAL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EADDRNOTAVAIL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void net_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, size, "?");
        return;
    }
    snprintf(buf, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
             serv);
}

int net_connect(const char *addr, int timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, rc, one = 1;

    rc = net_addr_parse(addr, &ss, &len);
    if (rc < 0)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            return rc;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        rc = poll(&pfd, 1, timeout_ms);
        if (rc <= 0) {
            close(fd);
            return rc == 0 ? -ETIMEDOUT : -errno;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            close(fd);
            return -err;
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int net_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

int net_read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = recv(fd, c, n, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (k == 0)
            return -ECONNRESET;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

size_t net_addr_list_count(const char *list)
{
    size_t n = 1;

    for (const char *p = list; (p = strchr(p, ',')); p++)
        n++;
    return n;
}

void net_addr_list_item(const char *list, size_t i, char *out, size_t size)
{
    const char *p = list;
    size_t n;

    for (i %= net_addr_list_count(list); i > 0; i--)
        p = strchr(p, ',') + 1;
    n = strcspn(p, ",");
    if (n >= size)
        n = size - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}
