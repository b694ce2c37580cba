/* fwd_acquire.c: a forwarded PostgreSQL acquire against a direct one, in the same run.
 *
 * Starts two real brokers on loopback: a shared one with its embedded cluster (a fresh
 * state directory, a warm pool of empty databases) and a local one with --upstream pointing
 * at it. One raw WebSocket client of each leases {"db": postgres} and releases it, taking
 * turns (direct, forwarded, direct, ...) so that both meet the same pool and machine load,
 * with a pause between rounds for the pool to refill. Prints p50, p99 and the mean of the
 * acquire and of acquire+release for each, and the forwarded/direct ratio of the acquire
 * p50 against the goal (at most 1.5x). FXB_BENCH_ROUNDS sets the rounds (default 200).
 * Figures are printed, never asserted; the state directory is removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#include "bench.h"

#define GOAL_RATIO 1.5
#define WARMUP 20
#define PAUSE_MS 30

struct side {
	const char *name;
	struct raw_ws w;
	uint64_t *acquire, *round;
	size_t n;
};

/* One acquire and release; 0, or -1 with the reply printed. */
static int
one_round(struct side *s)
{
	uint64_t t0 = now_ns(), t1;
	json_t *r = raw_rpc_call(&s->w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db",
	    "kind", "postgres"));
	const char *lid = json_string_value(json_object_get(raw_rpc_result(r), "lease"));
	json_t *rel;

	t1 = now_ns();
	if (!lid) {
		char *text = r ? json_dumps(r, 0) : NULL;
		fprintf(stderr, "fwd_acquire: %s acquire failed: %s\n", s->name, text ? text : "(no reply)");
		free(text);
		json_decref(r);
		return -1;
	}
	rel = raw_rpc_call(&s->w, "lease.release", json_pack("{s:s}", "lease", lid));
	s->acquire[s->n] = t1 - t0;
	s->round[s->n] = now_ns() - t0;
	s->n++;
	json_decref(rel);
	json_decref(r);
	return 0;
}

static double
mean_us(const uint64_t *v, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	return n ? sum / (double)n / 1000.0 : 0;
}

static void
print_side(struct side *s)
{
	double ma = mean_us(s->acquire, s->n), mr = mean_us(s->round, s->n);
	double a50 = percentile_us(s->acquire, s->n, 50), a99 = percentile_us(s->acquire, s->n, 99);
	double r50 = percentile_us(s->round, s->n, 50), r99 = percentile_us(s->round, s->n, 99);

	printf("  %-10s %6zu  %9.0f %9.0f %9.0f   %9.0f %9.0f %9.0f\n", s->name, s->n, a50, a99,
	    ma, r50, r99, mr);
}

int
main(void)
{
	const char *env = getenv("FXB_BENCH_ROUNDS");
	size_t rounds = env && atoi(env) > 0 ? (size_t)atoi(env) : 200;
	char state[256], local_state[256], cfg[512], err[512];
	struct test_broker shared, local;
	struct side direct = { .name = "direct" }, fwd = { .name = "forwarded" };
	double d50, f50;
	int rc = 1;

	snprintf(state, sizeof state, "/tmp/fxb-fwd-bench-%d", (int)getpid());
	snprintf(local_state, sizeof local_state, "/tmp/fxb-fwd-bench-%d-local", (int)getpid());
	mkdir(state, 0755);
	mkdir(local_state, 0700);
	if (temp_file(cfg, sizeof cfg, "fwd-bench.json",
	    "{\"postgres\": {\"pool\": {\"min_ready\": 4}}}") == -1) {
		fprintf(stderr, "fwd_acquire: cannot write the configuration\n");
		return 1;
	}
	{
		const char *args[] = { "--state-dir", state, "--config", cfg, "--ports", "28900-28949",
			"--log-level", "info", NULL };
		if (test_broker_start(&shared, args, err, sizeof err) == -1) {
			fprintf(stderr, "fwd_acquire: shared broker: %s\n", err);
			goto out;
		}
	}
	{
		const char *args[] = { "--upstream", shared.url, "--state-dir", local_state,
			"--ports", "28950-28999", "--log-level", "info", NULL };
		if (test_broker_start(&local, args, err, sizeof err) == -1) {
			fprintf(stderr, "fwd_acquire: local broker: %s\n", err);
			test_broker_stop(&shared);
			goto out;
		}
	}
	direct.acquire = calloc(rounds + WARMUP, sizeof(uint64_t));
	direct.round = calloc(rounds + WARMUP, sizeof(uint64_t));
	fwd.acquire = calloc(rounds + WARMUP, sizeof(uint64_t));
	fwd.round = calloc(rounds + WARMUP, sizeof(uint64_t));
	if (raw_ws_connect(&direct.w, shared.port, "fixture-broker.v1", NULL) != 101 ||
	    raw_ws_connect(&fwd.w, local.port, "fixture-broker.v1", NULL) != 101) {
		fprintf(stderr, "fwd_acquire: cannot connect\n");
		goto stop;
	}
	/* The first acquire waits for the embedded cluster and the pool; then a warm-up. */
	for (size_t i = 0; i < WARMUP; i++) {
		if (one_round(&direct) == -1 || one_round(&fwd) == -1)
			goto stop;
		sleep_ms(PAUSE_MS);
	}
	direct.n = fwd.n = 0;
	for (size_t i = 0; i < rounds; i++) {
		/* Alternate which goes first, so neither always meets the fuller pool. */
		struct side *a = i % 2 ? &fwd : &direct, *b = i % 2 ? &direct : &fwd;
		if (one_round(a) == -1 || one_round(b) == -1)
			goto stop;
		sleep_ms(PAUSE_MS);
	}
	printf("Forwarded PostgreSQL acquire (local broker -> shared broker -> warm pool) against a "
	    "direct one\n");
	printf("  %d ms between rounds; pool min_ready 4; times in us\n", PAUSE_MS);
	printf("  %-10s %6s  %9s %9s %9s   %9s %9s %9s\n", "", "rounds", "acq p50", "acq p99",
	    "acq mean", "a+r p50", "a+r p99", "a+r mean");
	print_side(&direct);
	print_side(&fwd);
	d50 = percentile_us(direct.acquire, direct.n, 50);
	f50 = percentile_us(fwd.acquire, fwd.n, 50);
	printf("  forwarded/direct acquire p50: %.2fx (goal <= %.1fx): %s\n", d50 > 0 ? f50 / d50 : 0,
	    GOAL_RATIO, d50 > 0 && f50 / d50 <= GOAL_RATIO ? "met" : "NOT met");
	rc = 0;
stop:
	raw_ws_close(&direct.w);
	raw_ws_close(&fwd.w);
	if (test_broker_stop(&local) != 0 || test_broker_stop(&shared) != 0) {
		fprintf(stderr, "fwd_acquire: a broker did not exit 0; see %s and %s\n", local.log,
		    shared.log);
		rc = 1;
	} else if (rc == 0) {
		unlink(local.log);
		unlink(shared.log);
	}
	free(direct.acquire);
	free(direct.round);
	free(fwd.acquire);
	free(fwd.round);
out:
	unlink(cfg);
	test_rm_pg_state(state);
	test_rm_pg_state(local_state);
	return rc;
}
