/* bench_tenants.c: port lease throughput and latency with tenants and quotas on, against the
 * same broker binary with them off, in the same run.
 *
 * "off": no token file (one default tenant, no limits). "on": a token file of 8 tenants,
 * each with limits on every quota (high enough never to refuse). "on+audit": the same and
 * the audit log written to a file. The brokers use the same pool and flags. For each: the latency of one
 * acquire + release at a time over a raw WebSocket connection, then the lease rate of 8
 * processes (one tenant each when on) acquiring and releasing as fast as they can for
 * FXB_BENCH_SECS (default 3) seconds. Nothing is asserted; the ratios say what tenants cost.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"
#include "harness.h"

#define WORKERS 8
#define LATENCY_N 2000

struct shared {
	int port;
	int on;
	double secs;
	uint64_t leases[WORKERS];
};

static char *token_for(int i, char *buf, size_t len)
{
	snprintf(buf, len, "bench-token-%d", i);
	return buf;
}

static int hello(struct raw_ws *w, int port, const char *token)
{
	json_t *r;
	int ok;

	if (raw_ws_connect(w, port, NULL, NULL) != 101)
		return -1;
	r = raw_rpc_call(w, "session.hello", token ? json_pack("{s:s}", "token", token) : json_object());
	ok = raw_rpc_result(r) != NULL;
	json_decref(r);
	return ok ? 0 : -1;
}

/* One acquire + release; 0 or -1. */
static int cycle(struct raw_ws *w)
{
	json_t *r = raw_rpc_call(w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}, s:{s:s}}", "fixtures", "p", "kind", "port", "labels", "b", "1"));
	const char *lid = json_string_value(json_object_get(raw_rpc_result(r), "lease"));
	json_t *rel;
	int ok;

	if (!lid) {
		json_decref(r);
		return -1;
	}
	rel = raw_rpc_call(w, "lease.release", json_pack("{s:s}", "lease", lid));
	ok = json_is_true(json_object_get(raw_rpc_result(rel), "released"));
	json_decref(rel);
	json_decref(r);
	return ok ? 0 : -1;
}

static int worker(int i, void *arg)
{
	struct shared *sh = arg;
	struct raw_ws w;
	char tok[64];
	uint64_t end, n = 0;

	if (hello(&w, sh->port, sh->on ? token_for(i, tok, sizeof(tok)) : NULL) == -1)
		return 1;
	end = now_ns() + (uint64_t)(sh->secs * 1e9);
	while (now_ns() < end) {
		if (cycle(&w) == -1)
			return 1;
		n++;
	}
	sh->leases[i] = n;
	raw_ws_close(&w);
	return 0;
}

struct figures {
	double p50, p99, rate;
	int failed;
};

static int measure(int on, const char *tokens, const char *audit, double secs, struct figures *f)
{
	const char *args_off[] = { "--log-level", "error", "--port-quarantine-ms", "0", "--grace-ms",
		"0", NULL };
	const char *args_on[] = { "--log-level", "error", "--port-quarantine-ms", "0", "--grace-ms",
		"0", "--token-file", tokens, on == 2 ? "--audit-log" : NULL, audit, NULL };
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	static uint64_t lat[LATENCY_N];
	struct test_broker tb;
	struct raw_ws w;
	char err[512], tok[64];
	uint64_t total = 0;

	memset(f, 0, sizeof(*f));
	if (sh == MAP_FAILED)
		return -1;
	if (test_broker_start(&tb, on ? args_on : args_off, err, sizeof(err)) == -1) {
		fprintf(stderr, "bench_tenants: %s\n", err);
		return -1;
	}
	if (hello(&w, tb.port, on ? token_for(0, tok, sizeof(tok)) : NULL) == -1) {
		test_broker_kill(&tb);
		return -1;
	}
	for (int i = 0; i < 200; i++) /* warm-up */
		f->failed |= cycle(&w) == -1;
	for (int i = 0; i < LATENCY_N; i++) {
		uint64_t t0 = now_ns();
		f->failed |= cycle(&w) == -1;
		lat[i] = now_ns() - t0;
	}
	raw_ws_close(&w);
	f->p50 = percentile_us(lat, LATENCY_N, 50);
	f->p99 = percentile_us(lat, LATENCY_N, 99);
	sh->port = tb.port;
	sh->on = on;
	sh->secs = secs;
	if (children_run(WORKERS, worker, sh, (int)(secs * 1000) + 30000) != 0)
		f->failed = 1;
	for (int i = 0; i < WORKERS; i++)
		total += sh->leases[i];
	f->rate = (double)total / secs;
	if (test_broker_stop(&tb) != 0)
		f->failed = 1;
	munmap(sh, sizeof(*sh));
	return 0;
}

int main(void)
{
	const char *env = getenv("FXB_BENCH_SECS");
	double secs = env && atof(env) > 0 ? atof(env) : 3;
	char tokens[512], audit[512], text[4096] = "";
	struct figures off, on, aud;
	size_t n = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < WORKERS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "bench-token-%d team-%d ports=1000 "
		    "servers=100 databases=100 pg_connections=1000 builds=10 waiting=100 sessions=100\n",
		    i, i);
	if (temp_file(tokens, sizeof(tokens), "bench-tokens", text) == -1 ||
	    temp_file(audit, sizeof(audit), "bench-audit", "") == -1) {
		fprintf(stderr, "bench_tenants: cannot write its files\n");
		return 1;
	}
	printf("== tenants and quotas on against off (bench_tenants) ==\n");
	printf("off: no token file; on: %d tenants, every quota set; on+audit: and the audit log to a file; "
	    "port leases (acquire + release over a raw WebSocket)\n", WORKERS);
	if (measure(0, tokens, audit, secs, &off) == -1 || measure(1, tokens, audit, secs, &on) == -1 ||
	    measure(2, tokens, audit, secs, &aud) == -1)
		return 1;
	printf("%-9s %12s %12s %24s\n", "", "p50 (us)", "p99 (us)", "leases/s, 8 processes");
	printf("%-9s %12.1f %12.1f %24.0f\n", "off", off.p50, off.p99, off.rate);
	printf("%-9s %12.1f %12.1f %24.0f\n", "on", on.p50, on.p99, on.rate);
	printf("%-9s %12.1f %12.1f %24.0f\n", "on+audit", aud.p50, aud.p99, aud.rate);
	printf("on/off:       p50 x%.2f, p99 x%.2f, rate x%.2f\n", on.p50 / off.p50,
	    on.p99 / off.p99, on.rate / off.rate);
	printf("on+audit/off: p50 x%.2f, p99 x%.2f, rate x%.2f\n", aud.p50 / off.p50,
	    aud.p99 / off.p99, aud.rate / off.rate);
	unlink(tokens);
	unlink(audit);
	return off.failed || on.failed || aud.failed ? 1 : 0;
}
