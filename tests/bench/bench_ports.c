/* bench_ports.c: port lease latency and throughput through libfxb, beside raw loopback TCP.
 *
 * Starts the real broker (the integration harness's test_broker_start) with a short port
 * quarantine, then measures in one run: a raw loopback TCP ping-pong against an echo
 * thread (the floor any request/response over loopback pays), the lease.acquire and
 * lease.release round trips of one libfxb client, the same calls over the harness's raw
 * WebSocket client (the broker without the SDK's thread hop), and aggregate lease
 * operations per second for 1, 8 and 64 clients, each a thread with its own fxb_client,
 * beside the same number of raw TCP ping-pong threads. Figures are printed, never
 * asserted: the machine is shared and noisy. Each measurement is bounded by a count or a
 * duration; FXB_BENCH_SECS sets the duration of each throughput step (default 3).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define QUARANTINE_MS "100"
#define PING_BYTES 100
#define LATENCY_WARMUP 500
#define LATENCY_COUNT 5000
#define TCP_COUNT 20000
#define TCP_PINNED_COUNT 10000
#define GOAL_RATIO 1.5
#define MAX_ERRORS 10 /* a latency loop gives up after this many failed calls */
#define GOAL_OPS_64 20000.0

static const int client_counts[] = {1, 8, 64};
#define NCOUNTS (sizeof(client_counts) / sizeof(client_counts[0]))

static const char *
verdict(int met)
{
	return met ? "met" : "MISSED";
}

/* ---- Raw TCP: a one-thread epoll echo server, and ping-pong clients ---- */

struct echo_server {
	int listen_fd, epoll_fd, stop_fd, port;
	pthread_t thread;
};

static void *
echo_main(void *arg)
{
	struct echo_server *es = arg;
	struct epoll_event evs[128];
	char buf[4096];

	for (;;) {
		int n = epoll_wait(es->epoll_fd, evs, 128, -1);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return NULL;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == es->stop_fd)
				return NULL;
			if (fd == es->listen_fd) {
				int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC), one = 1;
				struct epoll_event ev = {.events = EPOLLIN};

				if (cfd == -1)
					continue;
				setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				ev.data.fd = cfd;
				epoll_ctl(es->epoll_fd, EPOLL_CTL_ADD, cfd, &ev);
				continue;
			}
			{
				ssize_t r = recv(fd, buf, sizeof(buf), 0);

				if (r <= 0) {
					epoll_ctl(es->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
					close(fd);
					continue;
				}
				if (send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r) {
					epoll_ctl(es->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
					close(fd);
				}
			}
		}
	}
}

static int
echo_start(struct echo_server *es)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	struct epoll_event ev = {.events = EPOLLIN};

	es->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (es->listen_fd == -1 || bind(es->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(es->listen_fd, 256) == -1 ||
	    getsockname(es->listen_fd, (struct sockaddr *)&sa, &len) == -1)
		return -1;
	es->port = ntohs(sa.sin_port);
	if ((es->epoll_fd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (es->stop_fd = eventfd(0, EFD_CLOEXEC)) == -1)
		return -1;
	ev.data.fd = es->listen_fd;
	epoll_ctl(es->epoll_fd, EPOLL_CTL_ADD, es->listen_fd, &ev);
	ev.data.fd = es->stop_fd;
	epoll_ctl(es->epoll_fd, EPOLL_CTL_ADD, es->stop_fd, &ev);
	return pthread_create(&es->thread, NULL, echo_main, es) == 0 ? 0 : -1;
}

static void
echo_stop(struct echo_server *es)
{
	uint64_t one = 1;

	if (write(es->stop_fd, &one, sizeof(one)) != sizeof(one))
		perror("echo_stop");
	pthread_join(es->thread, NULL);
	close(es->listen_fd);
	close(es->epoll_fd);
	close(es->stop_fd);
}

/* One request/response of PING_BYTES each way. Returns 0 or -1. */
static int
tcp_ping(int fd)
{
	char buf[PING_BYTES];
	size_t got = 0;

	memset(buf, 'x', sizeof(buf));
	if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf))
		return -1;
	while (got < sizeof(buf)) {
		ssize_t r = recv(fd, buf + got, sizeof(buf) - got, 0);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* ---- CPU time ---- */

/* User plus system CPU seconds of process pid so far (from /proc/<pid>/stat), or -1. */
static double
proc_cpu_secs(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15 (utime, stime) follow the command name in parentheses. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* User plus system CPU seconds of this process (every thread) so far. */
static double
self_cpu_secs(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- Load: n threads looping until a deadline ---- */

enum load_kind { LOAD_LEASE, LOAD_TCP };

struct worker {
	enum load_kind kind;
	struct fxb_client *client;
	int fd;
	pthread_barrier_t *start;
	const uint64_t *deadline_ns;
	uint64_t ops; /* lease operations (acquire and release each one), or TCP pings */
	uint64_t errors;
	uint64_t end_ns;
	char first_error[200];
	pthread_t thread;
};

static void
worker_error(struct worker *w, const char *what)
{
	if (w->errors++ == 0)
		snprintf(w->first_error, sizeof(w->first_error), "%s: %s (%s)", what,
		    fxb_client_errmsg(w->client), fxb_client_errname(w->client));
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	static const struct fxb_fixture_spec spec = {"http", "port", NULL};

	pthread_barrier_wait(w->start);
	while (now_ns() < *w->deadline_ns) {
		if (w->kind == LOAD_TCP) {
			if (tcp_ping(w->fd) == -1) {
				w->errors++;
				break;
			}
			w->ops++;
			continue;
		}
		{
			struct fxb_lease *l = NULL;

			if (fxb_lease_acquire(w->client, &spec, 1, NULL, &l) != 0) {
				worker_error(w, "lease.acquire");
				continue;
			}
			w->ops++;
			if (fxb_lease_release(w->client, l) != 0)
				worker_error(w, "lease.release");
			else
				w->ops++;
		}
	}
	w->end_ns = now_ns();
	return NULL;
}

struct load_result {
	double per_sec, secs;
	double broker_cpu, self_cpu; /* CPU seconds used during the step */
	uint64_t ops, errors;
	char first_error[200];
};

/* Runs n workers of kind for secs seconds. clients or fds hold n entries for their kind.
 * Returns 0 and fills res, or -1 if a thread could not start. */
static int
run_load(enum load_kind kind, int n, struct fxb_client **clients, const int *fds, double secs,
    struct load_result *res)
{
	struct worker *ws = calloc((size_t)n, sizeof(*ws));
	pthread_barrier_t start;
	uint64_t deadline = UINT64_MAX, begin, end = 0;
	int started = 0;

	memset(res, 0, sizeof(*res));
	if (ws == NULL)
		return -1;
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		ws[i].kind = kind;
		ws[i].client = clients ? clients[i] : NULL;
		ws[i].fd = fds ? fds[i] : -1;
		ws[i].start = &start;
		ws[i].deadline_ns = &deadline;
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
			break;
		started++;
	}
	if (started < n) {
		/* Let the started ones through the barrier with a deadline already passed. */
		deadline = 0;
		for (int i = started; i < n; i++)
			pthread_barrier_wait(&start);
		pthread_barrier_wait(&start);
		for (int i = 0; i < started; i++)
			pthread_join(ws[i].thread, NULL);
		pthread_barrier_destroy(&start);
		free(ws);
		return -1;
	}
	begin = now_ns();
	deadline = begin + (uint64_t)(secs * 1e9);
	pthread_barrier_wait(&start);
	for (int i = 0; i < n; i++) {
		pthread_join(ws[i].thread, NULL);
		res->ops += ws[i].ops;
		res->errors += ws[i].errors;
		if (ws[i].end_ns > end)
			end = ws[i].end_ns;
		if (ws[i].errors && !res->first_error[0])
			snprintf(
			    res->first_error, sizeof(res->first_error), "%s", ws[i].first_error);
	}
	res->secs = (double)(end - begin) / 1e9;
	res->per_sec = (double)res->ops / res->secs;
	pthread_barrier_destroy(&start);
	free(ws);
	return 0;
}

/* ---- Measurements ---- */

struct latency {
	double p50, p99;
};

/* count round trips of PING_BYTES against the echo server, after a warm-up. */
static int
tcp_latency(int port, int count, struct latency *out)
{
	uint64_t *s = malloc((size_t)count * sizeof(*s));
	int fd = tcp_connect_port(port), rc = -1;

	if (s == NULL || fd == -1)
		goto done;
	for (int i = 0; i < LATENCY_WARMUP; i++)
		if (tcp_ping(fd) == -1)
			goto done;
	for (int i = 0; i < count; i++) {
		uint64_t t0 = now_ns();

		if (tcp_ping(fd) == -1)
			goto done;
		s[i] = now_ns() - t0;
	}
	out->p50 = percentile_us(s, (size_t)count, 50);
	out->p99 = percentile_us(s, (size_t)count, 99);
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	free(s);
	return rc;
}

/* The same round trips with the echo thread and this thread pinned to one CPU, then to two
 * different ones. On a virtual machine a wake-up that crosses CPUs can cost several times
 * one that does not, and the scheduler picks either, so the unpinned figure swings between
 * the two. Returns how many placements were measured (0 with fewer than two CPUs). */
static int
tcp_latency_pinned(struct echo_server *es, struct latency *same, struct latency *cross)
{
	cpu_set_t allowed, one, saved_echo;
	int cpus[2], n = 0, measured = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) == -1 ||
	    pthread_getaffinity_np(es->thread, sizeof(saved_echo), &saved_echo) != 0)
		return 0;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[n++] = c;
	if (n < 2)
		return 0;
	for (int k = 0; k < 2; k++) {
		CPU_ZERO(&one);
		CPU_SET(cpus[0], &one);
		pthread_setaffinity_np(es->thread, sizeof(one), &one);
		CPU_ZERO(&one);
		CPU_SET(cpus[k], &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0 &&
		    tcp_latency(es->port, TCP_PINNED_COUNT, k == 0 ? same : cross) == 0)
			measured++;
	}
	sched_setaffinity(0, sizeof(allowed), &allowed);
	pthread_setaffinity_np(es->thread, sizeof(saved_echo), &saved_echo);
	return measured;
}

struct lease_latency {
	struct latency acquire, release, pair;
	uint64_t errors;
};

/* acquire, release and their sum for one libfxb client, LATENCY_COUNT times after a
 * warm-up (fewer if MAX_ERRORS calls fail). Returns 0 if any pair was timed, else -1. */
static int
sdk_latency(struct fxb_client *c, struct lease_latency *out)
{
	static const struct fxb_fixture_spec spec = {"http", "port", NULL};
	uint64_t *acq = malloc(LATENCY_COUNT * sizeof(*acq));
	uint64_t *rel = malloc(LATENCY_COUNT * sizeof(*rel));
	uint64_t *pair = malloc(LATENCY_COUNT * sizeof(*pair));
	size_t n = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (acq == NULL || rel == NULL || pair == NULL)
		goto done;
	for (int i = 0; i < LATENCY_WARMUP + LATENCY_COUNT; i++) {
		struct fxb_lease *l = NULL;
		uint64_t t0 = now_ns(), t1, t2;

		if (out->errors >= MAX_ERRORS)
			break;
		if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0) {
			if (out->errors++ == 0)
				fprintf(stderr, "bench_ports: lease.acquire: %s\n",
				    fxb_client_errmsg(c));
			continue;
		}
		t1 = now_ns();
		if (fxb_lease_release(c, l) != 0) {
			if (out->errors++ == 0)
				fprintf(stderr, "bench_ports: lease.release: %s\n",
				    fxb_client_errmsg(c));
			continue;
		}
		t2 = now_ns();
		if (i < LATENCY_WARMUP)
			continue;
		acq[n] = t1 - t0;
		rel[n] = t2 - t1;
		pair[n] = t2 - t0;
		n++;
	}
	out->acquire.p50 = percentile_us(acq, n, 50);
	out->acquire.p99 = percentile_us(acq, n, 99);
	out->release.p50 = percentile_us(rel, n, 50);
	out->release.p99 = percentile_us(rel, n, 99);
	out->pair.p50 = percentile_us(pair, n, 50);
	out->pair.p99 = percentile_us(pair, n, 99);
	rc = n > 0 ? 0 : -1;
done:
	free(acq);
	free(rel);
	free(pair);
	return rc;
}

/* The lease id of a raw lease.acquire reply, copied into lid; 0 or -1. */
static int
raw_lease_id(json_t *reply, char *lid, size_t len)
{
	const char *s = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));

	if (s == NULL)
		return -1;
	snprintf(lid, len, "%s", s);
	return 0;
}

/* The same loop over the harness's raw WebSocket client: no SDK, no service thread. */
static int
raw_ws_latency(int port, struct lease_latency *out)
{
	uint64_t *acq = malloc(LATENCY_COUNT * sizeof(*acq));
	uint64_t *rel = malloc(LATENCY_COUNT * sizeof(*rel));
	uint64_t *pair = malloc(LATENCY_COUNT * sizeof(*pair));
	struct raw_ws w;
	json_t *reply;
	size_t n = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (acq == NULL || rel == NULL || pair == NULL ||
	    raw_ws_connect(&w, port, NULL, NULL) != 101)
		goto done;
	if ((reply = raw_rpc_call(
	         &w, "session.hello", json_pack("{s:s}", "client", "bench-raw"))) == NULL)
		goto close;
	json_decref(reply);
	for (int i = 0; i < LATENCY_WARMUP + LATENCY_COUNT; i++) {
		char lid[64];
		uint64_t t0 = now_ns(), t1, t2;

		if (out->errors >= MAX_ERRORS)
			break;
		reply = raw_rpc_call(&w, "lease.acquire",
		    json_pack("{s:{s:{s:s}}}", "fixtures", "http", "kind", "port"));
		if (reply == NULL || raw_lease_id(reply, lid, sizeof(lid)) == -1) {
			json_decref(reply);
			out->errors++;
			continue;
		}
		json_decref(reply);
		t1 = now_ns();
		reply = raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid));
		t2 = now_ns();
		if (reply == NULL || raw_rpc_error_code(reply) != 0) {
			json_decref(reply);
			out->errors++;
			continue;
		}
		json_decref(reply);
		if (i < LATENCY_WARMUP)
			continue;
		acq[n] = t1 - t0;
		rel[n] = t2 - t1;
		pair[n] = t2 - t0;
		n++;
	}
	out->acquire.p50 = percentile_us(acq, n, 50);
	out->acquire.p99 = percentile_us(acq, n, 99);
	out->release.p50 = percentile_us(rel, n, 50);
	out->release.p99 = percentile_us(rel, n, 99);
	out->pair.p50 = percentile_us(pair, n, 50);
	out->pair.p99 = percentile_us(pair, n, 99);
	rc = n > 0 ? 0 : -1;
close:
	raw_ws_close(&w);
done:
	free(acq);
	free(rel);
	free(pair);
	return rc;
}

static double
bench_secs(void)
{
	const char *s = getenv("FXB_BENCH_SECS");
	double v = s ? atof(s) : 0;

	return v > 0 ? v : 3.0;
}

int
main(void)
{
	const char *const args[] = {
	    "--log-level", "error", "--port-quarantine-ms", QUARANTINE_MS, "--grace-ms", "0", NULL};
	struct load_result lease_res[NCOUNTS], tcp_res[NCOUNTS];
	struct lease_latency sdk, raw;
	struct latency tcp, tcp_same = {0, 0}, tcp_cross = {0, 0};
	struct echo_server es;
	struct test_broker tb;
	struct fxb_client *one;
	double secs = bench_secs(), ratio;
	char err[512];
	int failed = 0, raw_failed = 0, pinned;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (test_broker_start(&tb, args, err, sizeof(err)) == -1) {
		fprintf(stderr, "bench_ports: %s\n", err);
		return 1;
	}
	if (echo_start(&es) == -1) {
		fprintf(stderr, "bench_ports: echo server: %s\n", strerror(errno));
		test_broker_kill(&tb);
		return 1;
	}
	printf("== port leases (bench_ports) ==\n");
	printf("broker: --port-quarantine-ms %s --grace-ms 0 --log-level error; pool %ld ports "
	       "(default 15000-24999); one port per lease; the SDK's default options\n",
	    QUARANTINE_MS, test_broker_ports(&tb, "size"));

	/* Latency, one caller at a time. */
	if (tcp_latency(es.port, TCP_COUNT, &tcp) == -1) {
		fprintf(stderr, "bench_ports: raw TCP ping-pong failed\n");
		failed = 1;
		goto out;
	}
	if ((one = test_client(&tb, NULL, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_ports: %s\n", err);
		failed = 1;
		goto out;
	}
	if (sdk_latency(one, &sdk) == -1) {
		fprintf(stderr, "bench_ports: no lease round trip succeeded\n");
		fxb_client_free(one);
		failed = 1;
		goto out;
	}
	fxb_client_free(one);
	pinned = tcp_latency_pinned(&es, &tcp_same, &tcp_cross);
	if (raw_ws_latency(tb.port, &raw) == -1) {
		fprintf(stderr, "bench_ports: the raw WebSocket client got no lease\n");
		raw_failed = 1;
	}

	printf("\nlatency, 1 client, %d acquire+release pairs after %d warm-up pairs "
	       "(TCP: %d round trips unpinned, %d per pinned placement):\n",
	    LATENCY_COUNT, LATENCY_WARMUP, TCP_COUNT, TCP_PINNED_COUNT);
	printf("  %-44s %9s %9s\n", "", "p50 us", "p99 us");
	printf("  %-44s %9.1f %9.1f\n", "port lease round trip (acquire + release)", sdk.pair.p50,
	    sdk.pair.p99);
	printf(
	    "  %-44s %9.1f %9.1f\n", "  fxb_lease_acquire alone", sdk.acquire.p50, sdk.acquire.p99);
	printf(
	    "  %-44s %9.1f %9.1f\n", "  fxb_lease_release alone", sdk.release.p50, sdk.release.p99);
	if (!raw_failed) {
		printf("  %-44s %9.1f %9.1f\n", "raw WebSocket, no SDK: acquire + release",
		    raw.pair.p50, raw.pair.p99);
		printf("  %-44s %9.1f %9.1f\n", "  lease.acquire alone", raw.acquire.p50,
		    raw.acquire.p99);
		printf("  %-44s %9.1f %9.1f\n", "  lease.release alone", raw.release.p50,
		    raw.release.p99);
	}
	printf(
	    "  %-44s %9.1f %9.1f\n", "raw TCP round trip (100-byte ping-pong)", tcp.p50, tcp.p99);
	if (pinned == 2) {
		printf("  %-44s %9.1f %9.1f\n", "  both threads pinned to one CPU", tcp_same.p50,
		    tcp_same.p99);
		printf("  %-44s %9.1f %9.1f\n", "  pinned to two different CPUs", tcp_cross.p50,
		    tcp_cross.p99);
	}
	if (sdk.errors || raw.errors)
		printf("  errors: %llu through libfxb, %llu over raw WebSocket\n",
		    (unsigned long long)sdk.errors, (unsigned long long)raw.errors);
	ratio = sdk.acquire.p50 / tcp.p50;
	printf(
	    "port lease round trip, 1 client: p50 %.0f us, p99 %.0f us; acquire alone p50 %.0f us;"
	    " raw TCP round trip p50 %.0f us\n",
	    sdk.pair.p50, sdk.pair.p99, sdk.acquire.p50, tcp.p50);
	printf("  acquire p50 / TCP p50 = %.1fx (goal <= %.1fx): %s\n", ratio, GOAL_RATIO,
	    verdict(ratio <= GOAL_RATIO));
	if (pinned == 2)
		printf("  the same against pinned TCP: %.1fx (one CPU), %.1fx (two CPUs)\n",
		    sdk.acquire.p50 / tcp_same.p50, sdk.acquire.p50 / tcp_cross.p50);
	printf("  round trip p50 / TCP p50 = %.1fx (two calls)\n", sdk.pair.p50 / tcp.p50);

	/* Throughput: n callers at once, each its own client (or TCP connection). */
	for (size_t k = 0; k < NCOUNTS; k++) {
		int n = client_counts[k];
		struct fxb_client **clients = calloc((size_t)n, sizeof(*clients));
		int *fds = calloc((size_t)n, sizeof(*fds)), made = 0, opened = 0;

		memset(&lease_res[k], 0, sizeof(lease_res[k]));
		memset(&tcp_res[k], 0, sizeof(tcp_res[k]));
		lease_res[k].per_sec = tcp_res[k].per_sec = -1;
		if (clients == NULL || fds == NULL) {
			free(clients);
			free(fds);
			continue;
		}
		for (; made < n; made++)
			if ((clients[made] = test_client(&tb, NULL, NULL, err, sizeof(err))) ==
			    NULL) {
				fprintf(
				    stderr, "bench_ports: client %d of %d: %s\n", made + 1, n, err);
				break;
			}
		if (made == n) {
			double b0 = proc_cpu_secs(tb.pid), s0 = self_cpu_secs();

			if (run_load(LOAD_LEASE, n, clients, NULL, secs, &lease_res[k]) == -1)
				lease_res[k].per_sec = -1;
			lease_res[k].broker_cpu = proc_cpu_secs(tb.pid) - b0;
			lease_res[k].self_cpu = self_cpu_secs() - s0;
		}
		for (int i = 0; i < made; i++)
			fxb_client_free(clients[i]);
		for (; opened < n; opened++)
			if ((fds[opened] = tcp_connect_port(es.port)) == -1)
				break;
		if (opened == n && run_load(LOAD_TCP, n, NULL, fds, secs, &tcp_res[k]) == -1)
			tcp_res[k].per_sec = -1;
		for (int i = 0; i < opened; i++)
			close(fds[i]);
		free(clients);
		free(fds);
	}

	printf("\nthroughput, %.0f s per step; acquire and release each count as one lease "
	       "operation; each client a thread with its own fxb_client (TCP: its own connection "
	       "to the one-thread echo server):\n",
	    secs);
	printf("  %7s %12s %12s %10s %7s %11s %13s %13s\n", "clients", "lease ops/s", "TCP rt/s",
	    "ops / TCP", "errors", "broker CPU", "broker us/op", "clients us/op");
	for (size_t k = 0; k < NCOUNTS; k++) {
		const struct load_result *r = &lease_res[k];
		double ops = r->ops ? (double)r->ops : 1;

		printf("  %7d %12.0f %12.0f %9.2fx %7llu %10.0f%% %13.1f %13.1f\n",
		    client_counts[k], r->per_sec, tcp_res[k].per_sec,
		    tcp_res[k].per_sec > 0 ? r->per_sec / tcp_res[k].per_sec : 0.0,
		    (unsigned long long)r->errors,
		    r->secs > 0 ? 100.0 * r->broker_cpu / r->secs : 0.0, 1e6 * r->broker_cpu / ops,
		    1e6 * r->self_cpu / ops);
	}
	printf("  (broker CPU: share of one core during the step; us/op: CPU time per lease "
	       "operation, user + system, broker process and this process's client threads)\n");
	for (size_t k = 0; k < NCOUNTS; k++)
		if (lease_res[k].errors)
			printf("  first error with %d clients: %s\n", client_counts[k],
			    lease_res[k].first_error);
	printf("  64 clients: %.0f lease ops/s (goal >= %.0f): %s\n",
	    lease_res[NCOUNTS - 1].per_sec, GOAL_OPS_64,
	    verdict(lease_res[NCOUNTS - 1].per_sec >= GOAL_OPS_64));
	printf("  ports after the run: %ld free, %ld leased, %ld quarantined\n",
	    test_broker_ports(&tb, "free"), test_broker_ports(&tb, "leased"),
	    test_broker_ports(&tb, "quarantined"));

out:
	echo_stop(&es);
	if (test_broker_stop(&tb) != 0) {
		fprintf(
		    stderr, "bench_ports: the broker did not exit 0 on SIGTERM; see %s\n", tb.log);
		failed = 1;
	}
	return failed;
}
