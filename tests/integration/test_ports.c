/* test_ports.c: port fixtures: where ports come from, and that no two holders ever share one.
 *
 * The pool ranges used here (26000-26299) lie below the usual ephemeral range and away
 * from the default pool, so a broker someone runs by hand on this host does not compete.
 * No two tests share a range: tests that bind their ports would otherwise collide with
 * another test's broker checking the same ports when criterion runs them in parallel.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

/* A listening TCP socket on 127.0.0.1:port without SO_REUSEADDR, or -1 with errno set. */
static int listen_tcp4(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), e;

	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (fd == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 1) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

Test(ports, two_fixtures_in_one_lease_get_different_ports_inside_the_range_and_outside_the_ephemeral_range)
{
	struct fxb_fixture_spec specs[] = { { "http", "port", NULL }, { "grpc", "port", NULL } };
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	int lo, hi, http, grpc;

	cr_assert_eq(ephemeral_range(&lo, &hi), 0);
	cr_assert(26009 < lo || 26000 > hi, "this host's ephemeral range %d-%d covers the test pool",
	    lo, hi);
	BROKER_START(&tb, "--ports", "26000-26009");
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(fxb_lease_acquire(c, specs, 2, NULL, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_lease_count(l), 2);
	http = fxb_lease_port(l, "http");
	grpc = fxb_lease_port(l, "grpc");
	cr_assert_neq(http, grpc, "both fixtures got port %d", http);
	cr_assert(http >= 26000 && http <= 26009, "http port %d is outside 26000-26009", http);
	cr_assert(grpc >= 26000 && grpc <= 26009, "grpc port %d is outside 26000-26009", grpc);
	cr_assert(http < lo || http > hi, "http port %d is in the ephemeral range", http);
	cr_assert(grpc < lo || grpc > hi, "grpc port %d is in the ephemeral range", grpc);
	cr_assert_str_eq(fxb_lease_host(l, "http"), "127.0.0.1");
	cr_assert_eq(fxb_lease_port(l, "nope"), FXB_ENOENT);
	cr_assert_eq(fxb_lease_release(c, l), 0, "%s", fxb_client_errmsg(c));
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

/* ---- Eight processes leasing and releasing at once ---- */

#define HAMMER_CLIENTS 8
#define HAMMER_ROUNDS 200
#define HAMMER_FIRST 26200
#define HAMMER_LAST 26219

struct hammer {
	const struct test_broker *tb;
	int *holder; /* shared: per port of the range, 0 or the holding child's index + 1 */
};

/* One client: lease two ports, claim them in the shared table, bind them, let go, release.
 * Exits non-zero at the first sign of a port held twice. */
static int hammer_child(int index, void *arg)
{
	struct hammer *h = arg;
	char err[512];
	struct fxb_client *c = test_client(h->tb, NULL, NULL, err, sizeof(err));

	if (c == NULL) {
		fprintf(stderr, "client %d: %s\n", index, err);
		return 1;
	}
	for (int round = 0; round < HAMMER_ROUNDS; round++) {
		struct fxb_lease *l = NULL;
		int port[2], fd[2];

		if (test_acquire_ports(c, 2, 20000, &l) != 0) {
			fprintf(stderr, "client %d round %d: acquire: %s\n", index, round,
			    fxb_client_errmsg(c));
			return 2;
		}
		for (int i = 0; i < 2; i++) {
			int expected = 0;

			port[i] = test_lease_port(l, (size_t)i);
			if (port[i] < HAMMER_FIRST || port[i] > HAMMER_LAST) {
				fprintf(stderr, "client %d round %d: port %d outside the range\n", index,
				    round, port[i]);
				return 3;
			}
			if (!__atomic_compare_exchange_n(&h->holder[port[i] - HAMMER_FIRST], &expected,
			    index + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
				fprintf(stderr, "client %d round %d: port %d is held by client %d\n", index,
				    round, port[i], expected - 1);
				return 4;
			}
			if ((fd[i] = listen_tcp4("127.0.0.1", port[i])) == -1) {
				fprintf(stderr, "client %d round %d: bind %d: %s\n", index, round, port[i],
				    strerror(errno));
				return 5;
			}
		}
		for (int i = 0; i < 2; i++) {
			close(fd[i]);
			__atomic_store_n(&h->holder[port[i] - HAMMER_FIRST], 0, __ATOMIC_SEQ_CST);
		}
		if (fxb_lease_release(c, l) != 0) {
			fprintf(stderr, "client %d round %d: release: %s\n", index, round,
			    fxb_client_errmsg(c));
			return 6;
		}
	}
	fxb_client_free(c);
	return 0;
}

Test(ports, eight_clients_leasing_and_releasing_at_once_never_hold_the_same_port, .timeout = 240)
{
	size_t size = (HAMMER_LAST - HAMMER_FIRST + 1) * sizeof(int);
	struct test_broker tb;
	struct hammer h = { &tb, NULL };
	json_t *st;

	h.holder = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(h.holder, MAP_FAILED);
	BROKER_START(&tb, "--ports", "26200-26219", "--port-quarantine-ms", "0", "--log-level",
	    "info");
	cr_assert_eq(children_run(HAMMER_CLIENTS, hammer_child, &h, 200000), 0,
	    "a client failed (its message is above); broker log: %s", tb.log);
	st = test_broker_status(&tb);
	cr_assert_not_null(st);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "ports"), "leased")), 0,
	    "ports are still leased after every client released them");
	json_decref(st);
	BROKER_STOP(&tb);
	munmap(h.holder, size);
}

/* ---- Threads sharing one client ---- */

#define SHARED_FIRST 26230
#define SHARED_LAST 26249

struct sharer {
	struct fxb_client *c;
	int *holder; /* per port of the range: 0 or the holding thread's index + 1 */
	int index;
	int failed;
};

static void *sharer_run(void *arg)
{
	struct sharer *t = arg;

	for (int round = 0; round < 100 && !t->failed; round++) {
		struct fxb_lease *l = NULL;
		int port, expected = 0;

		if (test_acquire_ports(t->c, 1, 20000, &l) != 0) {
			t->failed = 1;
			break;
		}
		port = test_lease_port(l, 0);
		if (port < SHARED_FIRST || port > SHARED_LAST ||
		    !__atomic_compare_exchange_n(&t->holder[port - SHARED_FIRST], &expected,
			t->index + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			t->failed = 2;
		else
			__atomic_store_n(&t->holder[port - SHARED_FIRST], 0, __ATOMIC_SEQ_CST);
		if (fxb_lease_release(t->c, l) != 0)
			t->failed = 3;
	}
	return NULL;
}

Test(ports, four_threads_sharing_one_client_never_hold_the_same_port, .timeout = 120)
{
	struct test_broker tb;
	struct fxb_client *c;
	int holder[SHARED_LAST - SHARED_FIRST + 1] = { 0 };
	struct sharer t[4];
	pthread_t th[4];

	BROKER_START(&tb, "--ports", "26230-26249", "--port-quarantine-ms", "0", "--log-level",
	    "info");
	CLIENT_NEW(c, &tb, NULL, NULL);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct sharer){ c, holder, i, 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, sharer_run, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(t[i].failed, 0, "thread %d failed (1: acquire, 2: port held twice or "
		    "outside the range, 3: release)", i);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

/* ---- Ports that something else holds ---- */

/* Binds a socket of the given kind to port. Returns the fd or -1. */
static int bind_kind(int kind, int port)
{
	int fd = -1, one = 1;

	switch (kind) {
	case 0: /* TCP, IPv4, loopback, listening */
		return listen_tcp4("127.0.0.1", port);
	case 1: /* TCP, IPv4, wildcard, listening */
		return listen_tcp4("0.0.0.0", port);
	case 2: /* TCP, IPv6 only, wildcard, listening */
	case 3: { /* UDP, IPv6 only, wildcard */
		struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
			.sin6_addr = IN6ADDR_ANY_INIT };

		fd = socket(AF_INET6, (kind == 2 ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
		if (fd == -1 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1 ||
		    bind(fd, (struct sockaddr *)&sa6, sizeof(sa6)) == -1 ||
		    (kind == 2 && listen(fd, 1) == -1))
			break;
		return fd;
	}
	case 4: { /* UDP, IPv4, wildcard */
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
			break;
		return fd;
	}
	}
	if (fd != -1)
		close(fd);
	return -1;
}

static const char *const kind_names[] = { "TCP v4 loopback", "TCP v4 wildcard",
	"TCP v6-only wildcard", "UDP v6-only wildcard", "UDP v4 wildcard" };

Test(ports, never_grants_a_port_that_something_else_has_bound, .timeout = 120)
{
	enum { FIRST = 26100, SIZE = 10, BUSY = 5 };
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	int fds[BUSY];

	/* Ports FIRST+0 .. FIRST+4, one of each kind; the other five are free. */
	for (int k = 0; k < BUSY; k++) {
		fds[k] = bind_kind(k, FIRST + k);
		cr_assert_neq(fds[k], -1, "cannot bind %s on %d: %s", kind_names[k], FIRST + k,
		    strerror(errno));
	}
	BROKER_START(&tb, "--ports", "26100-26109", "--port-quarantine-ms", "0");
	CLIENT_NEW(c, &tb, NULL, NULL);
	for (int round = 0; round < 20; round++) {
		cr_assert_eq(test_acquire_ports(c, SIZE - BUSY, 0, &l), 0,
		    "round %d: the %d free ports were not granted: %s", round, SIZE - BUSY,
		    fxb_client_errmsg(c));
		for (size_t i = 0; i < SIZE - BUSY; i++) {
			int port = test_lease_port(l, i);

			cr_assert(port >= FIRST + BUSY && port < FIRST + SIZE,
			    "round %d: granted port %d (%s)", round, port,
			    port >= FIRST && port < FIRST + BUSY ? kind_names[port - FIRST]
								 : "outside the range");
		}
		cr_assert_eq(fxb_lease_release(c, l), 0, "%s", fxb_client_errmsg(c));
	}
	/* Six would need a bound port: refused, and nothing is taken. */
	cr_assert_eq(test_acquire_ports(c, SIZE - BUSY + 1, 0, &l), FXB_EBROKER);
	cr_assert_str_eq(fxb_client_errname(c), "PORTS_EXHAUSTED");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	/* Once they are let go, they are granted again. */
	for (int k = 0; k < BUSY; k++)
		close(fds[k]);
	cr_assert_eq(test_acquire_ports(c, SIZE, 0, &l), 0, "%s", fxb_client_errmsg(c));
	fxb_lease_free(l);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(ports, released_ports_come_back_least_recently_used_first)
{
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	int got[6];

	BROKER_START(&tb, "--ports", "26010-26012", "--port-quarantine-ms", "0");
	CLIENT_NEW(c, &tb, NULL, NULL);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
		got[i] = test_lease_port(l, 0);
		cr_assert_eq(fxb_lease_release(c, l), 0);
	}
	cr_assert(got[0] != got[1] && got[1] != got[2] && got[0] != got[2],
	    "a just-released port came back while others rested: %d %d %d", got[0], got[1], got[2]);
	for (int i = 3; i < 6; i++)
		cr_assert_eq(got[i], got[i - 3], "grant %d: %d, not the least recently used %d", i,
		    got[i], got[i - 3]);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(ports, a_released_port_rests_in_quarantine_before_it_is_granted_again)
{
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL, *other = NULL;
	int first;

	BROKER_START(&tb, "--ports", "26020-26021", "--port-quarantine-ms", "60000");
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	first = test_lease_port(l, 0);
	cr_assert_eq(fxb_lease_release(c, l), 0);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &other), 0, "%s", fxb_client_errmsg(c));
	cr_assert_neq(test_lease_port(other, 0), first, "a quarantined port was granted");
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), FXB_EBROKER,
	    "port %d was granted again within its quarantine", first);
	cr_assert_str_eq(fxb_client_errname(c), "PORTS_EXHAUSTED");
	cr_assert_eq(test_broker_ports(&tb, "quarantined"), 1);
	fxb_lease_free(other);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(ports, two_brokers_with_overlapping_ranges_never_grant_the_same_port, .timeout = 60)
{
	/* Two test runs, each with a private broker on the same (default-like) range. */
	const char *lock = "/tmp/fxb-itest-ports-overlap.lock";
	struct test_broker one, two;
	struct fxb_client *a, *b;
	struct fxb_lease *la = NULL, *lb = NULL;
	int held[3];

	unlink(lock);
	BROKER_START(&one, "--ports", "26460-26463", "--port-quarantine-ms", "0",
	    "--port-lock-file", lock);
	BROKER_START(&two, "--ports", "26462-26465", "--port-quarantine-ms", "0",
	    "--port-lock-file", lock);
	CLIENT_NEW(a, &one, NULL, NULL);
	CLIENT_NEW(b, &two, NULL, NULL);
	cr_assert_eq(test_acquire_ports(a, 3, 0, &la), 0, "%s", fxb_client_errmsg(a));
	for (size_t i = 0; i < 3; i++)
		held[i] = test_lease_port(la, i);
	/* The second broker may grant only what the first does not hold. */
	cr_assert_eq(test_acquire_ports(b, 3, 0, &lb), 0, "%s", fxb_client_errmsg(b));
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++)
			cr_assert_neq(test_lease_port(lb, i), held[j], "port %d granted by both brokers",
			    held[j]);
	fxb_lease_release(b, lb);
	fxb_lease_release(a, la);
	fxb_client_free(a);
	fxb_client_free(b);
	BROKER_STOP(&one);
	BROKER_STOP(&two);
	unlink(lock);
}
