/* addr.c: IP addresses as text; see addr.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util/addr.h"

int
addr_local_host(int fd, char *host, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof sa;
	const char *s = NULL;

	if (len)
		host[0] = '\0';
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &salen) == -1)
		return -1;
	if (sa.ss_family == AF_INET) {
		s = inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, host, (socklen_t)len);
	} else if (sa.ss_family == AF_INET6) {
		struct in6_addr *a6 = &((struct sockaddr_in6 *)&sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			s = inet_ntop(AF_INET, &a6->s6_addr[12], host, (socklen_t)len);
		else
			s = inet_ntop(AF_INET6, a6, host, (socklen_t)len);
	}
	if (!s) {
		if (len)
			host[0] = '\0';
		return -1;
	}
	return 0;
}

int
addr_is_loopback(const char *host)
{
	return !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	    !strncmp(host, "::ffff:127.", 11) || !strcmp(host, "localhost");
}

int
addr_is_wildcard(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return a4.s_addr == htonl(INADDR_ANY);
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

socklen_t
addr_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *sa)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof *sa);
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		return sizeof *in4;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return sizeof *in6;
	}
	return 0;
}

const char *
addr_dial_host(const char *host)
{
	if (!addr_is_wildcard(host))
		return host;
	return strchr(host, ':') ? "::1" : "127.0.0.1";
}

void
addr_url_host(const char *host, char *out, size_t len)
{
	snprintf(out, len, strchr(host, ':') ? "[%s]" : "%s", host);
}
