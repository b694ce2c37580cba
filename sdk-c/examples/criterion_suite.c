/* criterion_suite.c: an example criterion suite whose tests run on ports leased from the broker.
 *
 * Criterion runs each test in its own process: .init connects to the broker named by
 * $FIXTURE_BROKER_URL and leases the ports "http" and "grpc", .fini releases them and
 * closes the client. The tests bind the leased ports as the server under test would, so
 * parallel test processes (and parallel CI jobs on one host) never fight over a port.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fxb.h"

static struct fxb_client *broker;
static struct fxb_lease *ports;

static void
lease_ports(void)
{
	struct fxb_fixture_spec spec[] = {{"http", "port", NULL}, {"grpc", "port", NULL}};
	struct fxb_acquire_options opts = {
	    .wait_ms = 5000,
	    .labels_json = "{\"suite\": \"criterion_suite\"}",
	};
	char err[256];

	cr_assert_eq(fxb_client_new(&broker, NULL, err, sizeof err), 0, "connect: %s", err);
	cr_assert_eq(fxb_lease_acquire(broker, spec, 2, &opts, &ports), 0, "lease: %s",
	    fxb_client_errmsg(broker));
}

static void
release_ports(void)
{
	if (ports)
		cr_expect_eq(
		    fxb_lease_release(broker, ports), 0, "release: %s", fxb_client_errmsg(broker));
	ports = NULL;
	fxb_client_free(broker);
	broker = NULL;
}

/* A TCP socket bound to host:port and listening, or -1 with errno set. */
static int
listen_on(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int s, e;

	if (!host || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	if ((s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) || listen(s, 4)) {
		e = errno;
		close(s);
		errno = e;
		return -1;
	}
	return s;
}

TestSuite(leased_ports, .init = lease_ports, .fini = release_ports);

Test(leased_ports, the_http_port_can_be_bound_and_answers)
{
	const char *host = fxb_lease_host(ports, "http");
	int port = fxb_lease_port(ports, "http");
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int srv, cli, conn;

	srv = listen_on(host, port);
	cr_assert_geq(srv, 0, "bind %s:%d: %s", host, port, strerror(errno));
	inet_pton(AF_INET, host, &sa.sin_addr);
	cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(cli, 0);
	cr_assert_eq(
	    connect(cli, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s", strerror(errno));
	conn = accept(srv, NULL, NULL);
	cr_assert_geq(conn, 0, "accept: %s", strerror(errno));
	cr_assert_eq(write(cli, "ping", 4), 4);
	{
		char buf[4];
		cr_assert_eq(read(conn, buf, sizeof buf), 4);
		cr_assert_arr_eq(buf, "ping", 4);
	}
	close(conn);
	close(cli);
	close(srv);
}

Test(leased_ports, the_grpc_port_can_be_bound)
{
	const char *host = fxb_lease_host(ports, "grpc");
	int port = fxb_lease_port(ports, "grpc");
	int s = listen_on(host, port);

	cr_assert_geq(s, 0, "bind %s:%d: %s", host, port, strerror(errno));
	close(s);
}

Test(leased_ports, the_two_ports_are_different)
{
	cr_assert_gt(fxb_lease_port(ports, "http"), 0);
	cr_assert_gt(fxb_lease_port(ports, "grpc"), 0);
	cr_assert_neq(fxb_lease_port(ports, "http"), fxb_lease_port(ports, "grpc"));
}
