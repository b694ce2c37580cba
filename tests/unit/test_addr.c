/* test_addr.c: addresses as text (util/addr.c), with real sockets for getsockname. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/addr.h"

/* A socket of family connected over loopback to a listener on the wildcard of that family
 * (dual-stack for AF_INET6); dials dial. Returns the accepted socket; *client is the other
 * end. */
static int
connected_pair(int family, const char *dial, int *client)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int l = socket(family, SOCK_STREAM, 0), a, zero = 0;

	cr_assert(l >= 0);
	if (family == AF_INET6)
		cr_assert_eq(setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)), 0);
	cr_assert_gt(addr_sockaddr(family == AF_INET6 ? "::" : "0.0.0.0", 0, &sa), 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	{
		uint16_t port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		socklen_t dlen = addr_sockaddr(dial, port, &sa);
		*client = socket(sa.ss_family, SOCK_STREAM, 0);
		cr_assert_eq(connect(*client, (struct sockaddr *)&sa, dlen), 0, "connect %s", dial);
	}
	a = accept(l, NULL, NULL);
	cr_assert(a >= 0);
	close(l);
	return a;
}

Test(addr, reports_what_the_peer_dialled_and_ipv4_mapped_as_ipv4)
{
	static const struct {
		int family;
		const char *dial, *want;
	} cases[] = {
		{ AF_INET, "127.0.0.1", "127.0.0.1" },
		{ AF_INET6, "::1", "::1" },
		{ AF_INET6, "127.0.0.1", "127.0.0.1" }, /* seen as ::ffff:127.0.0.1 */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char host[ADDR_HOST_MAX];
		int client, server = connected_pair(cases[i].family, cases[i].dial, &client);

		cr_assert_eq(addr_local_host(server, host, sizeof(host)), 0);
		cr_assert_str_eq(host, cases[i].want, "case %zu", i);
		close(server);
		close(client);
	}
}

Test(addr, reports_nothing_for_a_socket_that_is_not_ip)
{
	char host[ADDR_HOST_MAX] = "x";
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(addr_local_host(sv[0], host, sizeof(host)), -1);
	cr_assert_str_eq(host, "");
	cr_assert_eq(addr_local_host(-1, host, sizeof(host)), -1);
	close(sv[0]);
	close(sv[1]);
}

Test(addr, tells_loopback_and_wildcard_addresses)
{
	cr_assert(addr_is_loopback("127.0.0.1") && addr_is_loopback("127.1.2.3"));
	cr_assert(addr_is_loopback("::1") && addr_is_loopback("localhost"));
	cr_assert(!addr_is_loopback("10.0.0.5") && !addr_is_loopback("0.0.0.0"));
	cr_assert(addr_is_wildcard("0.0.0.0") && addr_is_wildcard("::"));
	cr_assert(!addr_is_wildcard("127.0.0.1") && !addr_is_wildcard("fd00::1"));
	cr_assert(!addr_is_wildcard("eth0"));
	cr_assert_str_eq(addr_dial_host("0.0.0.0"), "127.0.0.1");
	cr_assert_str_eq(addr_dial_host("::"), "::1");
	cr_assert_str_eq(addr_dial_host("10.0.0.5"), "10.0.0.5");
}

Test(addr, fills_socket_addresses_for_numeric_hosts_only)
{
	struct sockaddr_storage sa;

	cr_assert_eq(addr_sockaddr("10.0.0.5", 80, &sa), sizeof(struct sockaddr_in));
	cr_assert_eq(sa.ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&sa)->sin_port), 80);
	cr_assert_eq(addr_sockaddr("fd00::5", 80, &sa), sizeof(struct sockaddr_in6));
	cr_assert_eq(sa.ss_family, AF_INET6);
	cr_assert_eq(addr_sockaddr("localhost", 1, &sa), sizeof(struct sockaddr_in));
	cr_assert_eq(addr_sockaddr("ci.example", 80, &sa), 0);
	cr_assert_eq(addr_sockaddr("[::1]", 80, &sa), 0);
}

Test(addr, brackets_ipv6_for_urls)
{
	char out[ADDR_HOST_MAX + 2];

	addr_url_host("fd00::5", out, sizeof(out));
	cr_assert_str_eq(out, "[fd00::5]");
	addr_url_host("10.0.0.5", out, sizeof(out));
	cr_assert_str_eq(out, "10.0.0.5");
	addr_url_host("ci.example", out, sizeof(out));
	cr_assert_str_eq(out, "ci.example");
}
