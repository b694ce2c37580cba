/* slow_getaddrinfo.c: an LD_PRELOAD shim that holds getaddrinfo() of one host name, as a
 * resolver that does not answer would, until the test lets it go.
 *
 * FXB_SLOW_DNS_NAME: the name held (any other name, and numeric addresses, resolve as
 * usual). FXB_SLOW_DNS_GATE: a path; each held call first creates PATH.asked (so the test
 * knows a resolution is held now), then waits until PATH exists, then resolves.
 * test_forward uses it to show that a broker resolving its upstream's name keeps serving.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
	    (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
	    dlsym(RTLD_NEXT, "getaddrinfo");
	const char *name = getenv("FXB_SLOW_DNS_NAME"), *gate = getenv("FXB_SLOW_DNS_GATE");

	if (node && name && gate && !strcmp(node, name)) {
		char asked[4096];
		int fd;

		snprintf(asked, sizeof asked, "%s.asked", gate);
		if ((fd = open(asked, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) >= 0)
			close(fd);
		while (access(gate, F_OK) != 0)
			usleep(10000);
	}
	return real(node, service, hints, res);
}
