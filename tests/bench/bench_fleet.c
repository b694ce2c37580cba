/* bench_fleet.c: several brokers on one PostgreSQL server: what postgres.fleet_max costs a
 * cold clone, and how soon the living sweep a dead broker's clones.
 *
 * Broker A runs the embedded cluster; the others reach it with --pg-url. In one run:
 *   1. cold clones (no pool: the acquire waits for its clone) through broker X, without
 *      fleet_max, and broker Y, with it, taking turns: the medians and Y / X (fleet_max
 *      adds one round trip under the fleet's lock before each clone's role);
 *   2. broker Z leases K databases and releases them (the baseline: Z dropping its own
 *      K clones), leases K again and is killed with SIGKILL; A (orphan_after_ms 1000)
 *      sweeps them: from the kill to the last one gone, beside orphan_after_ms plus the
 *      baseline;
 *   3. warm acquires (a clone ready) of a tenant whose databases quota counts across the
 *      fleet, beside a tenant without quotas on the same broker, taking turns: the p50s
 *      and their ratio (the check costs a few round trips before the clone is handed out).
 * Figures are printed, never asserted: the machine is shared and noisy. The state
 * directories (and their memory data) are removed at the end.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define COLD_COUNT 15
#define SWEEP_LEASES 20
#define ORPHAN_AFTER_MS 1000
#define WAIT_MS 60000

struct fb {
	struct test_broker tb;
	struct fxb_client *c;
	char state[512];
	char prefix[64];
	char socket_dir[1024];
	int port;
};

static double
ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

static const char *tokens_path; /* fb_start's --token-file, and its client's token */
static const char *client_token;

/* Starts a broker named name with postgres settings (the inside of "postgres") on a fresh
 * state directory, on A's cluster when a is not NULL. */
static int
fb_start(struct fb *b, const char *name, const char *postgres, const struct fb *a)
{
	char cfg[1024], text[1024], err[512], url[1400];
	const char *args[16] = { "--log-level", "warn", "--grace-ms", "0", "--state-dir", b->state,
		"--config", cfg };
	size_t n = 8;
	char *res = NULL;
	json_t *st, *emb;

	memset(b, 0, sizeof *b);
	snprintf(b->state, sizeof b->state, "/tmp/fxb-bench-fleet-%s-%d", name, (int)getpid());
	test_rm_pg_state(b->state);
	mkdir(b->state, 0755);
	snprintf(text, sizeof text, "{\"postgres\": {%s}}", postgres);
	if (temp_file(cfg, sizeof cfg, "bench-fleet.json", text) == -1)
		return -1;
	if (a) {
		snprintf(url, sizeof url, "host=%s port=%d user=postgres dbname=postgres", a->socket_dir,
		    a->port);
		args[n++] = "--pg-url";
		args[n++] = url;
	}
	if (tokens_path) {
		args[n++] = "--token-file";
		args[n++] = tokens_path;
	}
	args[n] = NULL;
	if (test_broker_start(&b->tb, args, err, sizeof err) == -1 ||
	    !(b->c = test_client(&b->tb, client_token, NULL, err, sizeof err))) {
		fprintf(stderr, "bench_fleet: %s\n", err);
		return -1;
	}
	if (fxb_call(b->c, "pg.status", NULL, &res) != 0 || !(st = json_loads(res, 0, NULL))) {
		fprintf(stderr, "bench_fleet: pg.status: %s\n", fxb_client_errmsg(b->c));
		free(res);
		return -1;
	}
	free(res);
	snprintf(b->prefix, sizeof b->prefix, "%s", json_string_value(json_object_get(st, "prefix")));
	if ((emb = json_object_get(st, "embedded")) && json_is_object(emb)) {
		snprintf(b->socket_dir, sizeof b->socket_dir, "%s",
		    json_string_value(json_object_get(emb, "socket_dir")));
		b->port = (int)json_integer_value(json_object_get(emb, "port"));
	}
	json_decref(st);
	return 0;
}

static void
fb_stop(struct fb *b, int kill_it)
{
	fxb_client_free(b->c);
	b->c = NULL;
	if (b->tb.pid) {
		if (kill_it)
			test_broker_kill(&b->tb);
		else
			test_broker_stop(&b->tb);
	}
	test_rm_pg_state(b->state);
}

static int
acquire(struct fxb_client *c, struct fxb_lease **l)
{
	struct fxb_fixture_spec spec = { "db", "postgres", NULL };
	struct fxb_acquire_options o = { .wait_ms = 0 };

	*l = NULL;
	return fxb_lease_acquire(c, &spec, 1, &o, l);
}

/* The clones (databases) of prefix on the server. */
static long
clones(PGconn *admin, const char *prefix)
{
	char pat[80];
	const char *p[1] = { pat };
	PGresult *r;
	long n;

	snprintf(pat, sizeof pat, "%sd_", prefix);
	r = PQexecParams(admin, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", 1,
	    NULL, p, NULL, NULL, 0);
	n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return n;
}

/* Waits until prefix has no clone left; the ms it took from t0, or -1. */
static double
wait_no_clones(PGconn *admin, const char *prefix, uint64_t t0)
{
	while (clones(admin, prefix) > 0) {
		if (ms_since(t0) > WAIT_MS)
			return -1;
		sleep_ms(5);
	}
	return ms_since(t0);
}

static int
bench_cold(const struct fb *a, PGconn *admin)
{
	static const char pool[] = "\"orphan_after_ms\": 0, \"pool\": {\"min_ready\": 0, "
	    "\"follow_demand\": false}";
	double plain[COLD_COUNT], capped[COLD_COUNT];
	struct fb x, y;
	char cfg[256];
	size_t n = 0;
	int rc = 0;

	snprintf(cfg, sizeof cfg, "%s, \"fleet_max\": 100000", pool);
	if (fb_start(&x, "x", pool, a) == -1 || fb_start(&y, "y", cfg, a) == -1)
		return -1;
	for (int i = 0; i < COLD_COUNT && !rc; i++) {
		struct fb *turn[2] = { &x, &y };
		double *out[2] = { plain, capped };
		for (int k = 0; k < 2; k++) {
			struct fxb_lease *l;
			uint64_t t0 = now_ns();
			if (acquire(turn[k]->c, &l) != 0) {
				fprintf(stderr, "bench_fleet: cold acquire: %s\n", fxb_client_errmsg(turn[k]->c));
				rc = -1;
				break;
			}
			out[k][n] = ms_since(t0);
			fxb_lease_release(turn[k]->c, l);
			/* Both clone on an idle server. */
			if (wait_no_clones(admin, turn[k]->prefix, now_ns()) < 0)
				rc = -1;
		}
		n += !rc;
	}
	fb_stop(&x, 0);
	fb_stop(&y, 0);
	if (rc)
		return -1;
	printf("cold clone through a broker (no pool), %d each, taking turns\n", COLD_COUNT);
	printf("  %-44s %9s\n", "", "p50 ms");
	printf("  %-44s %9.2f\n", "without fleet_max", median(plain, n));
	printf("  %-44s %9.2f\n", "with fleet_max (one more round trip)", median(capped, n));
	printf("  with / without: %.2fx\n", median(capped, n) / median(plain, n));
	return 0;
}

static int
bench_sweep(const struct fb *a, PGconn *admin)
{
	struct fxb_lease *l[SWEEP_LEASES];
	struct fb z;
	double release_ms, sweep_ms;
	uint64_t t0;

	if (fb_start(&z, "z", "\"orphan_after_ms\": 0, \"pool\": {\"min_ready\": 0, "
	    "\"max\": 64, \"follow_demand\": false}", a) == -1)
		return -1;
	for (int i = 0; i < SWEEP_LEASES; i++)
		if (acquire(z.c, &l[i]) != 0) {
			fprintf(stderr, "bench_fleet: acquire %d: %s\n", i, fxb_client_errmsg(z.c));
			fb_stop(&z, 1);
			return -1;
		}
	t0 = now_ns();
	for (int i = 0; i < SWEEP_LEASES; i++)
		fxb_lease_release(z.c, l[i]);
	release_ms = wait_no_clones(admin, z.prefix, t0);
	for (int i = 0; i < SWEEP_LEASES; i++)
		if (acquire(z.c, &l[i]) != 0) {
			fprintf(stderr, "bench_fleet: acquire %d: %s\n", i, fxb_client_errmsg(z.c));
			fb_stop(&z, 1);
			return -1;
		}
	t0 = now_ns();
	test_broker_kill(&z.tb);
	for (int i = 0; i < SWEEP_LEASES; i++)
		fxb_lease_free(l[i]);
	sweep_ms = wait_no_clones(admin, z.prefix, t0);
	fb_stop(&z, 1);
	if (release_ms < 0 || sweep_ms < 0) {
		fprintf(stderr, "bench_fleet: the clones were not dropped within %d ms\n", WAIT_MS);
		return -1;
	}
	printf("\na dead broker's %d clones swept by another (orphan_after_ms %d)\n", SWEEP_LEASES,
	    ORPHAN_AFTER_MS);
	printf("  %-44s %9.1f ms\n", "its own release of them (baseline)", release_ms);
	printf("  %-44s %9.1f ms\n", "SIGKILL to the last one swept", sweep_ms);
	printf("  swept / (orphan_after_ms + baseline): %.2fx (the survey runs every %d ms)\n",
	    sweep_ms / (ORPHAN_AFTER_MS + release_ms), ORPHAN_AFTER_MS / 4);
	return 0;
}

#define QUOTA_COUNT_ 200

static int
bench_quota(const struct fb *a)
{
	uint64_t free_ns[QUOTA_COUNT_], capped_ns[QUOTA_COUNT_];
	struct fxb_client *c[2] = { NULL, NULL };
	char tokens[1024], err[512];
	struct fb q;
	size_t n = 0;
	int rc = 0;

	if (temp_file(tokens, sizeof tokens, "bench-fleet-tokens", "tok-op ops admin=true\n"
	    "tok-free free\ntok-capped capped databases=100000\n") == -1)
		return -1;
	tokens_path = tokens;
	client_token = "tok-op";
	rc = fb_start(&q, "q", "\"orphan_after_ms\": 0, \"pool\": {\"min_ready\": 4}", a);
	tokens_path = client_token = NULL;
	if (rc == -1 || !(c[0] = test_client(&q.tb, "tok-free", NULL, err, sizeof err)) ||
	    !(c[1] = test_client(&q.tb, "tok-capped", NULL, err, sizeof err))) {
		fprintf(stderr, "bench_fleet: %s\n", rc == -1 ? "the quota broker did not start" : err);
		rc = -1;
		goto out;
	}
	for (int i = 0; i < QUOTA_COUNT_ && !rc; i++) {
		uint64_t *out[2] = { free_ns, capped_ns };
		for (int k = 0; k < 2; k++) {
			struct fxb_lease *l;
			uint64_t t0 = now_ns();
			if (acquire(c[k], &l) != 0) {
				fprintf(stderr, "bench_fleet: acquire: %s\n", fxb_client_errmsg(c[k]));
				rc = -1;
				break;
			}
			out[k][n] = now_ns() - t0;
			fxb_lease_release(c[k], l);
			/* The pool refills between turns, so that both are served warm. */
			sleep_ms(20);
		}
		n += !rc;
	}
	if (!rc) {
		double f = percentile_us(free_ns, n, 50), cp = percentile_us(capped_ns, n, 50);
		printf("\nacquire from a warm pool, %zu each, taking turns\n", n);
		printf("  %-44s %9s %9s\n", "", "p50 us", "p99 us");
		printf("  %-44s %9.1f %9.1f\n", "a tenant without quotas", f,
		    percentile_us(free_ns, n, 99));
		printf("  %-44s %9.1f %9.1f\n", "a tenant whose databases count fleet-wide", cp,
		    percentile_us(capped_ns, n, 99));
		printf("  fleet-wide / none: %.2fx\n", cp / f);
	}
out:
	fxb_client_free(c[0]);
	fxb_client_free(c[1]);
	fb_stop(&q, 0);
	return rc;
}

int
main(void)
{
	char cfg[64];
	struct fb a;
	PGconn *admin;
	int failed = 0;

	if (!getenv("FXB_BROKER")) {
		fprintf(stderr, "bench_fleet: FXB_BROKER is not set\n");
		return 1;
	}
	printf("== bench_fleet: brokers sharing one PostgreSQL server\n");
	snprintf(cfg, sizeof cfg, "\"orphan_after_ms\": %d", ORPHAN_AFTER_MS);
	if (fb_start(&a, "a", cfg, NULL) == -1) {
		fb_stop(&a, 1);
		return 1;
	}
	{
		char ci[1400];
		snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=postgres", a.socket_dir,
		    a.port);
		admin = PQconnectdb(ci);
	}
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "bench_fleet: %s", PQerrorMessage(admin));
		failed = 1;
	}
	if (!failed && bench_cold(&a, admin) == -1)
		failed = 1;
	if (!failed && bench_sweep(&a, admin) == -1)
		failed = 1;
	if (!failed && bench_quota(&a) == -1)
		failed = 1;
	PQfinish(admin);
	fb_stop(&a, 0);
	return failed;
}
