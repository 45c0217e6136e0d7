/* Tests for common/net.c: address parsing and formatting, and the
 * blocking socket helpers over a socketpair and loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

static void test_net_addr_parse_ipv4(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    socklen_t len;

    (void)state;
    assert_int_equal(net_addr_parse("127.0.0.1:9420", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(in->sin_port), 9420);
    assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
}

static void test_net_addr_parse_ipv6_brackets(void **state)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;

    (void)state;
    assert_int_equal(net_addr_parse("[::1]:9421", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(in6->sin6_port), 9421);
    assert_memory_equal(&in6->sin6_addr, &in6addr_loopback,
                        sizeof(in6addr_loopback));
}

static void test_net_addr_parse_hostname(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    assert_int_equal(net_addr_parse("localhost:1", &ss, &len), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

static void test_net_addr_parse_port_bounds(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    assert_int_equal(net_addr_parse("127.0.0.1:0", &ss, &len), 0);
    assert_int_equal(net_addr_parse("127.0.0.1:65535", &ss, &len), 0);
    assert_int_equal(net_addr_parse("127.0.0.1:65536", &ss, &len), -EINVAL);
    assert_int_equal(net_addr_parse("127.0.0.1:-1", &ss, &len), -EINVAL);
    assert_int_equal(net_addr_parse("127.0.0.1:80x", &ss, &len), -EINVAL);
}

static void test_net_addr_parse_malformed(void **state)
{
    static const char *bad[] = {
        "127.0.0.1", "127.0.0.1:", ":9420",  "",
        "[::1]9420", "[::1",       "[::1]:", "[]:80",
    };
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(net_addr_parse(bad[i], &ss, &len), -EINVAL);
}

static void test_net_addr_parse_host_too_long(void **state)
{
    char addr[400];
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    memset(addr, 'a', 300);
    strcpy(addr + 300, ":80");
    assert_int_equal(net_addr_parse(addr, &ss, &len), -EINVAL);
}

static void test_net_addr_format_roundtrip(void **state)
{
    static const char *addrs[] = {"127.0.0.1:9420", "[::1]:80",
                                  "10.1.2.3:65535"};
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];

    (void)state;
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        assert_int_equal(net_addr_parse(addrs[i], &ss, &len), 0);
        net_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
        assert_string_equal(buf, addrs[i]);
    }
}

static void test_net_read_all_whole_and_eof(void **state)
{
    int sv[2];
    char buf[8];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(net_write_all(sv[0], "abcdefgh", 8), 0);
    assert_int_equal(net_read_all(sv[1], buf, 8), 0);
    assert_memory_equal(buf, "abcdefgh", 8);
    assert_int_equal(net_write_all(sv[0], "xyz", 3), 0);
    close(sv[0]);
    /* Three bytes, then EOF before the fourth. */
    assert_int_equal(net_read_all(sv[1], buf, 4), -ECONNRESET);
    assert_int_equal(net_write_all(sv[1], "q", 1), -EPIPE);
    close(sv[1]);
}

static void test_net_connect_refused(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    char addr[64];
    int fd;

    (void)state;
    /* Bind a port without listening: connecting to it is refused. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(net_connect(addr, 1000), -ECONNREFUSED);
    assert_int_equal(net_connect("nonsense", 1000), -EINVAL);
    close(fd);
}

static void test_net_connect_loopback(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    char addr[64], c = 0;
    int lfd, fd, afd;

    (void)state;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    fd = net_connect(addr, 1000);
    assert_true(fd >= 0);
    afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    assert_int_equal(net_write_all(afd, "!", 1), 0);
    assert_int_equal(net_read_all(fd, &c, 1), 0); /* blocking again */
    assert_int_equal(c, '!');
    close(afd);
    close(fd);
    close(lfd);
}

int test_net(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_addr_parse_ipv4),
        cmocka_unit_test(test_net_addr_parse_ipv6_brackets),
        cmocka_unit_test(test_net_addr_parse_hostname),
        cmocka_unit_test(test_net_addr_parse_port_bounds),
        cmocka_unit_test(test_net_addr_parse_malformed),
        cmocka_unit_test(test_net_addr_parse_host_too_long),
        cmocka_unit_test(test_net_addr_format_roundtrip),
        cmocka_unit_test(test_net_read_all_whole_and_eof),
        cmocka_unit_test(test_net_connect_refused),
        cmocka_unit_test(test_net_connect_loopback),
    };
    return cmocka_run_group_tests_name("common/net", tests, NULL, NULL);
}
