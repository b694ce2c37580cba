/* bench_servers.c: server fixtures: lease-to-ready time, the broker's overhead, leases/s.
 *
 * Starts the real broker with one template, tests/servers/httpd with an http probe on
 * /healthz, and measures in one run:
 *   - the server's own time to listen: httpd started directly, from fork to its
 *     "listening on" line on stdout;
 *   - what wait-on-style tools get: httpd started directly and GET /healthz polled every
 *     100 ms until it answers 200;
 *   - lease-to-ready through the broker: one libfxb lease.acquire of the template (the call
 *     returns once the probe has passed), released after each run;
 *   - the broker's overhead: lease-to-ready minus the time to listen (medians);
 *   - leases per second with 4 concurrent clients (threads with their own fxb_client), each
 *     acquiring and releasing in a loop for FXB_BENCH_SECS seconds (default 3).
 * Figures are printed, never asserted: the machine is shared and noisy.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define RUNS 30
#define POLL_MS 100
#define CLIENTS 4
#define GOAL_OVERHEAD_MS 5.0
#define DIRECT_PORT 29900 /* direct runs listen on 29900.. (outside the broker's pool) */

static char httpd[512];

static double
bench_secs(void)
{
	const char *s = getenv("FXB_BENCH_SECS");
	double v = s ? atof(s) : 0;

	return v > 0 ? v : 3.0;
}

/* Starts httpd --port port directly, its stdout into a pipe. Returns the pid, or -1. */
static pid_t
start_direct(int port, int *out)
{
	char p[16];
	int fds[2];
	pid_t pid;

	snprintf(p, sizeof(p), "%d", port);
	if (pipe2(fds, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fds[1], 1);
		execl(httpd, httpd, "--port", p, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	*out = fds[0];
	return pid;
}

static void
stop_direct(pid_t pid, int out)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(out);
}

/* ns from fork to the "listening on" line. */
static int
time_to_listen(int port, uint64_t *ns)
{
	char buf[4096];
	size_t len = 0;
	uint64_t t0 = now_ns();
	int out;
	pid_t pid = start_direct(port, &out);

	if (pid == -1)
		return -1;
	buf[0] = '\0';
	while (!strstr(buf, "listening on") && len < sizeof(buf) - 1) {
		struct pollfd pfd = { out, POLLIN, 0 };
		ssize_t n;

		if (poll(&pfd, 1, 5000) != 1 || (n = read(out, buf + len, sizeof(buf) - 1 - len)) <= 0) {
			stop_direct(pid, out);
			return -1;
		}
		len += (size_t)n;
		buf[len] = '\0';
	}
	*ns = now_ns() - t0;
	stop_direct(pid, out);
	return 0;
}

/* ns from fork to the first 200 from /healthz, polling every POLL_MS. */
static int
time_polled(int port, uint64_t *ns)
{
	uint64_t t0 = now_ns();
	int out, tries = 0;
	pid_t pid = start_direct(port, &out);

	if (pid == -1)
		return -1;
	for (;;) {
		if (http_get(port, "/healthz", NULL) == 200)
			break;
		if (++tries > 50) {
			stop_direct(pid, out);
			return -1;
		}
		sleep_ms(POLL_MS);
	}
	*ns = now_ns() - t0;
	stop_direct(pid, out);
	return 0;
}

static const struct fxb_fixture_spec spec = { "api", "server", "{\"template\":\"bench\"}" };

struct load {
	const struct test_broker *tb;
	double secs;
	long ops, errors;
	char err[256];
};

static void *
load_run(void *arg)
{
	struct load *ld = arg;
	struct fxb_acquire_options opts = { .wait_ms = 10000 };
	struct fxb_client *c = test_client(ld->tb, NULL, NULL, ld->err, sizeof(ld->err));
	uint64_t end = now_ns() + (uint64_t)(ld->secs * 1e9);

	if (!c) {
		ld->errors++;
		return NULL;
	}
	while (now_ns() < end) {
		struct fxb_lease *l = NULL;

		if (fxb_lease_acquire(c, &spec, 1, &opts, &l) != 0) {
			snprintf(ld->err, sizeof(ld->err), "%s", fxb_client_errmsg(c));
			if (++ld->errors > 10)
				break;
			continue;
		}
		fxb_lease_release(c, l);
		ld->ops++;
	}
	fxb_client_free(c);
	return NULL;
}

static void
row(const char *what, uint64_t *v, size_t n)
{
	double p50 = percentile_us(v, n, 50), p90 = percentile_us(v, n, 90), min = percentile_us(v, n, 0);

	printf("  %-46s %9.2f %9.2f %9.2f ms  (%zu runs)\n", what, min / 1000, p50 / 1000, p90 / 1000, n);
}

int
main(void)
{
	uint64_t listen_ns[RUNS], polled_ns[RUNS], lease_ns[RUNS];
	size_t nl = 0, np = 0, nq = 0;
	struct test_broker tb;
	struct fxb_client *c;
	struct load loads[CLIENTS];
	pthread_t th[CLIENTS];
	char cfg[1024], path[512], state[600], err[512];
	const char *dir = getenv("FXB_TEST_SERVERS");
	double secs = bench_secs(), overhead;
	long ops = 0, errors = 0;
	int failed = 0, rc;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!dir) {
		fprintf(stderr, "bench_servers: FXB_TEST_SERVERS is not set (run through make bench)\n");
		return 1;
	}
	snprintf(httpd, sizeof(httpd), "%s/httpd", dir);
	snprintf(cfg, sizeof(cfg), "{\"servers\": {\"bench\": {\"command\": [\"%s\", \"--port\", "
	    "\"{port}\"], \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]}}}", httpd);
	if (temp_file(path, sizeof(path), "bench-servers.json", cfg) == -1) {
		fprintf(stderr, "bench_servers: cannot write the configuration\n");
		return 1;
	}
	snprintf(state, sizeof(state), "%s.state", path);
	mkdir(state, 0700);
	{
		const char *const args[] = { "--log-level", "warn", "--ports", "29000-29199",
			"--port-quarantine-ms", "0", "--grace-ms", "0", "--config", path, "--state-dir",
			state, NULL };
		if (test_broker_start(&tb, args, err, sizeof(err)) == -1) {
			fprintf(stderr, "bench_servers: %s\n", err);
			return 1;
		}
	}
	printf("== server fixtures (bench_servers) ==\n");
	printf("server: tests/servers/httpd, ready when GET /healthz answers 200; broker: "
	       "--port-quarantine-ms 0 --log-level warn\n");

	for (int i = 0; i < RUNS; i++) {
		if (time_to_listen(DIRECT_PORT + i % 50, &listen_ns[nl]) == 0)
			nl++;
		if (time_polled(DIRECT_PORT + 50 + i % 50, &polled_ns[np]) == 0)
			np++;
	}
	if (!(c = test_client(&tb, NULL, NULL, err, sizeof(err)))) {
		fprintf(stderr, "bench_servers: %s\n", err);
		test_broker_kill(&tb);
		return 1;
	}
	for (int i = 0; i < RUNS + 3; i++) {
		struct fxb_lease *l = NULL;
		uint64_t t0 = now_ns();

		if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0) {
			fprintf(stderr, "bench_servers: lease.acquire: %s\n", fxb_client_errmsg(c));
			failed = 1;
			break;
		}
		if (i >= 3) /* the first few warm the page cache and the broker */
			lease_ns[nq++] = now_ns() - t0;
		fxb_lease_release(c, l);
		sleep_ms(20); /* let the released server stop, as between tests */
	}
	fxb_client_free(c);

	printf("\n  %-46s %9s %9s %9s\n", "start to ready", "min", "median", "p90");
	row("httpd's own time to listen (direct)", listen_ns, nl);
	row("direct start, GET /healthz every 100 ms", polled_ns, np);
	row("lease.acquire through the broker (libfxb)", lease_ns, nq);
	overhead = (percentile_us(lease_ns, nq, 50) - percentile_us(listen_ns, nl, 50)) / 1000;
	printf("\n  broker overhead (median lease-to-ready minus median time to listen): %.2f ms "
	       "(goal: under %.0f ms: %s)\n", overhead, GOAL_OVERHEAD_MS,
	    overhead < GOAL_OVERHEAD_MS ? "met" : "MISSED");
	printf("  polling every 100 ms costs %.2f ms more than the broker (medians)\n",
	    (percentile_us(polled_ns, np, 50) - percentile_us(lease_ns, nq, 50)) / 1000);

	for (int i = 0; i < CLIENTS; i++) {
		loads[i] = (struct load){ &tb, secs, 0, 0, "" };
		pthread_create(&th[i], NULL, load_run, &loads[i]);
	}
	for (int i = 0; i < CLIENTS; i++) {
		pthread_join(th[i], NULL);
		ops += loads[i].ops;
		errors += loads[i].errors;
		if (loads[i].errors)
			fprintf(stderr, "bench_servers: client %d: %s\n", i, loads[i].err);
	}
	printf("\n  leases/s, %d clients each acquiring and releasing a server in a loop for %.0f s: "
	       "%.0f (%ld leases, %ld errors)\n", CLIENTS, secs, (double)ops / secs, ops, errors);
	if (errors)
		failed = 1;
	if ((rc = test_broker_stop(&tb)) != 0) {
		fprintf(stderr, "bench_servers: the broker exited with %d, not 0; see %s\n", rc, tb.log);
		failed = 1;
	}
	return failed;
}
