/* bench_memory.c: the broker's resident memory idle and with 10,000 open idle sessions.
 *
 * Starts the real broker (the integration harness's test_broker_start), reads its VmRSS
 * from /proc/<pid>/status, then opens 10,000 WebSocket connections from this one process
 * over plain sockets: a minimal upgrade request, then one session.hello each, and nothing
 * more. Connections are made in batches: a batch's upgrades are all sent before their
 * replies are read, then its hellos likewise, so no more than a batch ever waits on the
 * broker's listen socket and the broker sees many requests per wake-up. (The harness's
 * raw_ws_connect waits for each reply in turn: 10,000 lone round trips against a broker
 * whose poll() walks every descriptor on each wake-up take over 40 s.) At each step
 * GET /status must count the sessions before VmRSS is read. Kernel socket buffers
 * are not part of VmRSS. The same run times a lease round trip beside no other session
 * and beside the 10,000 idle ones: the broker's loop is epoll (libev), so the second
 * should cost about what the first does (FXB_EVENT_LOOP=poll in the environment runs the
 * broker on lws's poll() instead, for a comparison). Figures are printed, never asserted.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define SESSIONS 10000
#define STEP 2500 /* VmRSS is read every STEP sessions */
#define BATCH 250 /* connections in flight at once, well under the listen backlog */
#define GOAL_MB 150.0
#define COUNT_TIMEOUT_MS 15000
#define SETTLE_MS 300
#define PROBE_WARMUP 20
#define PROBE_COUNT 500      /* with no other session */
#define PROBE_COUNT_BUSY 500 /* beside SESSIONS idle ones */
#define GOAL_IDLE_RATIO 1.5  /* beside SESSIONS idle sessions / beside none, p50 */

/* The broker's VmRSS (or another "Vm" field) in kB, or -1. */
static long
vm_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* The "sessions" member of GET /status (connected sessions), or -1. */
static long
status_sessions(const struct test_broker *tb)
{
	json_t *st = test_broker_status(tb);
	json_t *v = json_object_get(st, "sessions");
	long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;

	json_decref(st);
	return n;
}

/* Waits until GET /status counts want sessions. Returns the last count seen. */
static long
wait_sessions(const struct test_broker *tb, long want)
{
	uint64_t deadline = clock_ms() + COUNT_TIMEOUT_MS;
	long n;

	while ((n = status_sessions(tb)) != want && clock_ms() < deadline)
		sleep_ms(50);
	return n;
}

/* Every upgrade sends RFC 6455's sample key and must get its sample accept value back;
 * every session then sends this hello. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define HELLO                                                                                      \
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session.hello\","                              \
	"\"params\":{\"client\":\"bench-memory\"}}"

static int
send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes within the harness's I/O timeout. Returns 0 or -1. */
static int
recv_exact(int fd, void *buf, size_t len)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = {fd, POLLIN, 0};
		uint64_t now = clock_ms();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) <= 0)
			return -1;
		if ((n = recv(fd, (char *)buf + got, len - got, 0)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* Reads the upgrade reply (the broker sends nothing after it until asked). Returns 0 when
 * it is a 101 with the right accept value, else -1. */
static int
read_upgrade(int fd)
{
	char head[2048];
	size_t len = 0;

	while (len < sizeof(head) - 1) {
		if (recv_exact(fd, head + len, 1) == -1)
			return -1;
		len++;
		if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	head[len] = '\0';
	return strncmp(head, "HTTP/1.1 101", 12) == 0 && strstr(head, WS_ACCEPT) ? 0 : -1;
}

/* Reads one unfragmented text frame and returns 0 if it is a JSON-RPC result, else -1. */
static int
read_result(int fd)
{
	unsigned char h[4];
	char payload[4096];
	size_t len;

	if (recv_exact(fd, h, 2) == -1 || (h[0] & 0x0f) != 0x1 || (h[1] & 0x80))
		return -1;
	len = h[1] & 0x7f;
	if (len == 126) {
		if (recv_exact(fd, h + 2, 2) == -1)
			return -1;
		len = (size_t)h[2] << 8 | h[3];
	}
	if (len >= sizeof(payload) || recv_exact(fd, payload, len) == -1)
		return -1;
	payload[len] = '\0';
	return strstr(payload, "\"result\"") ? 0 : -1;
}

/* Closes fds[i] and keeps the first reason in why. */
static void
fail(int *fds, int i, const char *what, char *why, size_t whylen)
{
	if (!why[0])
		snprintf(why, whylen, "connection %d: %s", i + 1, what);
	if (fds[i] != -1)
		close(fds[i]);
	fds[i] = -1;
}

/* The hello as a client frame: text, final, masked (RFC 6455 requires it of clients). */
static size_t
hello_frame(unsigned char *f, size_t cap)
{
	static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t len = strlen(HELLO), h = 0;

	if (len >= 126 || len + 6 > cap)
		return 0;
	f[h++] = 0x81;
	f[h++] = (unsigned char)(0x80 | len);
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = (unsigned char)(HELLO[i] ^ mask[i % 4]);
	return h + len;
}

/* Opens fds[from..to): every upgrade of the batch is sent before any reply is read, then
 * every hello. Returns how many got both answers; the failures are closed and set to -1.
 * The first failure is described in why. */
static int
open_batch(int *fds, int port, int from, int to, const unsigned char *hello, size_t hello_len,
    char *why, size_t whylen)
{
	char req[512];
	int ok = 0;

	snprintf(req, sizeof(req),
	    "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
	    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fixture-broker.v1\r\n\r\n",
	    port);
	for (int i = from; i < to; i++)
		if ((fds[i] = tcp_connect_port(port)) == -1 ||
		    send_all(fds[i], req, strlen(req)) == -1)
			fail(fds, i, "connect or send the upgrade", why, whylen);
	for (int i = from; i < to; i++)
		if (fds[i] != -1 &&
		    (read_upgrade(fds[i]) == -1 || send_all(fds[i], hello, hello_len) == -1))
			fail(fds, i, "no 101 upgrade", why, whylen);
	for (int i = from; i < to; i++) {
		if (fds[i] == -1)
			continue;
		if (read_result(fds[i]) == -1)
			fail(fds, i, "no session.hello result", why, whylen);
		else
			ok++;
	}
	return ok;
}

/* Times lease.acquire + lease.release of one port over one more raw WebSocket session,
 * count (at most PROBE_COUNT) times after a warm-up, and stores p50 and p99 in us. A loop
 * that polls every connection on each wake-up makes idle sessions slow a busy one; an
 * epoll loop does not. Returns 0 or -1; the probe's connection is closed either way. */
static int
probe_round_trip(int port, int count, double *p50, double *p99)
{
	uint64_t s[PROBE_COUNT];
	struct raw_ws w;
	json_t *reply;
	int n = 0;

	if (raw_ws_connect(&w, port, NULL, NULL) != 101) {
		raw_ws_close(&w);
		return -1;
	}
	for (int i = 0; i < PROBE_WARMUP + count && i < PROBE_WARMUP + PROBE_COUNT; i++) {
		uint64_t t0 = now_ns();
		const char *lid;
		json_t *rel;

		reply = raw_rpc_call(&w, "lease.acquire",
		    json_pack("{s:{s:{s:s}}}", "fixtures", "http", "kind", "port"));
		lid = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
		if (lid == NULL) {
			json_decref(reply);
			break;
		}
		rel = raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid));
		json_decref(reply);
		if (rel == NULL || raw_rpc_error_code(rel) != 0) {
			json_decref(rel);
			break;
		}
		json_decref(rel);
		if (i >= PROBE_WARMUP)
			s[n++] = now_ns() - t0;
	}
	raw_ws_close(&w);
	if (n < count)
		return -1;
	*p50 = percentile_us(s, (size_t)n, 50);
	*p99 = percentile_us(s, (size_t)n, 99);
	return 0;
}

/* The broker's exit status if it has exited, else -2 while it runs. */
static int
broker_exited(struct test_broker *tb)
{
	return tb->pid > 0 ? test_broker_wait(tb, 0) : -1;
}

/* One line of the table; took_ms is how long the step's connections took to open. */
static void
print_row(long sessions, long counted, long rss_kb, long idle_kb, uint64_t took_ms)
{
	printf("  %8ld %8ld %10.1f", sessions, counted, (double)rss_kb / 1024.0);
	if (sessions > 0)
		printf(" %14.0f %10.2f\n", (double)(rss_kb - idle_kb) * 1024.0 / (double)sessions,
		    (double)took_ms / 1000.0);
	else
		printf(" %14s %10s\n", "-", "-");
}

int
main(void)
{
	/* The idle sessions never read, so they never answer the broker's pings: without
	 * --heartbeat-ms 0 the broker would drop them dead_after_ms after they open. */
	const char *const args[] = {"--log-level", "error", "--grace-ms", "0", "--heartbeat-ms", "0",
	    NULL};
	int *fds = malloc(SESSIONS * sizeof(*fds));
	unsigned char hello[256];
	size_t hello_len = hello_frame(hello, sizeof(hello));
	struct test_broker tb;
	struct rlimit rl;
	long idle_kb, rss_kb = -1, hwm_kb, counted, open = 0;
	double idle_p50 = 0, idle_p99 = 0, busy_p50 = 0, busy_p99 = 0;
	int idle_probe, busy_probe = -1, st = -2;
	uint64_t step0, took = 0;
	char err[512] = "";
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fds == NULL || hello_len == 0) {
		fprintf(stderr, "bench_memory: out of memory\n");
		free(fds);
		return 1;
	}
	for (int i = 0; i < SESSIONS; i++)
		fds[i] = -1;
	/* This process holds one descriptor per session; the broker, which inherits the limit,
	 * raises its own as well. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < SESSIONS + 64) {
		fprintf(stderr, "bench_memory: RLIMIT_NOFILE is %llu; %d sessions need more\n",
		    (unsigned long long)rl.rlim_cur, SESSIONS);
		free(fds);
		return 1;
	}
	if (test_broker_start(&tb, args, err, sizeof(err)) == -1) {
		fprintf(stderr, "bench_memory: %s\n", err);
		free(fds);
		return 1;
	}
	err[0] = '\0';

	printf("== broker memory (bench_memory) ==\n");
	printf(
	    "broker: --grace-ms 0 --heartbeat-ms 0 --log-level error, other settings default, "
	    "event loop %s; "
	    "RLIMIT_NOFILE %llu; each session: WebSocket upgrade + one session.hello over a raw "
	    "socket, %d per batch\n",
	    getenv("FXB_EVENT_LOOP") && !strcmp(getenv("FXB_EVENT_LOOP"), "poll")
	        ? "poll() (FXB_EVENT_LOOP=poll)" : "epoll (libev)",
	    (unsigned long long)rl.rlim_cur, BATCH);
	counted = wait_sessions(&tb, 0);
	sleep_ms(SETTLE_MS);
	idle_kb = vm_kb(tb.pid, "VmRSS");
	printf("  %8s %8s %10s %14s %10s\n", "sessions", "counted", "VmRSS MB", "bytes/session",
	    "step s");
	print_row(0, counted, idle_kb, idle_kb, 0);
	idle_probe = probe_round_trip(tb.port, PROBE_COUNT, &idle_p50, &idle_p99);
	wait_sessions(&tb, 0);

	for (int from = 0; from < SESSIONS; from += BATCH) {
		int to = from + BATCH < SESSIONS ? from + BATCH : SESSIONS;

		step0 = clock_ms();
		open += open_batch(fds, tb.port, from, to, hello, hello_len, err, sizeof(err));
		took += clock_ms() - step0;
		if ((st = broker_exited(&tb)) != -2)
			break;
		if (to % STEP == 0 || to == SESSIONS) {
			counted = wait_sessions(&tb, open);
			sleep_ms(SETTLE_MS);
			rss_kb = vm_kb(tb.pid, "VmRSS");
			print_row(open, counted, rss_kb, idle_kb, took);
			took = 0;
		}
	}
	if (st != -2 || (st = broker_exited(&tb)) != -2) {
		printf("  the broker exited during the run (status %d) with %ld sessions open; "
		       "first failure: %s; log: %s\n",
		    st, open, err[0] ? err : "none", tb.log);
		for (int i = 0; i < SESSIONS; i++)
			if (fds[i] != -1)
				close(fds[i]);
		free(fds);
		return 1;
	}
	hwm_kb = vm_kb(tb.pid, "VmHWM");
	if (counted == open)
		busy_probe = probe_round_trip(tb.port, PROBE_COUNT_BUSY, &busy_p50, &busy_p99);
	if (err[0])
		printf("  first failure: %s\n", err);
	printf("  broker peak VmHWM %.1f MB; bytes/session is (VmRSS - idle VmRSS) / sessions; "
	       "step s: time to open the step's connections\n",
	    (double)hwm_kb / 1024.0);
	printf("broker memory: idle %.1f MB; %ld sessions (GET /status counts %ld) %.1f MB, "
	       "%.0f bytes per session\n",
	    (double)idle_kb / 1024.0, open, counted, (double)rss_kb / 1024.0,
	    open ? (double)(rss_kb - idle_kb) * 1024.0 / (double)open : 0.0);
	printf("  %d sessions under %.0f MB: %s\n", SESSIONS, GOAL_MB,
	    counted == SESSIONS ? ((double)rss_kb / 1024.0 < GOAL_MB ? "met" : "MISSED")
	                        : "not measured (the broker does not count them all)");
	if (counted != SESSIONS)
		failed = 1;
	printf("lease round trip (acquire + release over one more raw WebSocket session):\n");
	if (idle_probe == 0)
		printf("  no other session:           p50 %8.1f us, p99 %8.1f us (%d pairs)\n",
		    idle_p50, idle_p99, PROBE_COUNT);
	else
		printf("  no other session:           failed\n");
	if (busy_probe == 0)
		printf("  beside %5ld idle sessions: p50 %8.1f us, p99 %8.1f us (%d pairs)\n", open,
		    busy_p50, busy_p99, PROBE_COUNT_BUSY);
	else
		printf("  beside %5ld idle sessions: failed\n", open);
	if (idle_probe == 0 && busy_probe == 0)
		printf("beside %ld idle sessions / beside none (p50): %.2fx (goal <= %.1fx: %s)\n",
		    open, busy_p50 / idle_p50, GOAL_IDLE_RATIO,
		    open == SESSIONS && busy_p50 / idle_p50 <= GOAL_IDLE_RATIO ? "met" : "MISSED");

	for (int i = 0; i < SESSIONS; i++)
		if (fds[i] != -1)
			close(fds[i]);
	counted = wait_sessions(&tb, 0);
	sleep_ms(SETTLE_MS);
	printf("broker memory after closing them all: %ld sessions counted, VmRSS %.1f MB\n",
	    counted, (double)vm_kb(tb.pid, "VmRSS") / 1024.0);

	if (test_broker_stop(&tb) != 0) {
		fprintf(
		    stderr, "bench_memory: the broker did not exit 0 on SIGTERM; see %s\n", tb.log);
		failed = 1;
	}
	free(fds);
	return failed;
}
