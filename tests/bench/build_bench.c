/* build_bench.c: make build-bench: a template build asked for by 2 brokers x 8 workers at
 * once against one worker alone building it, in the same run.
 *
 * A host broker runs the embedded cluster; brokers A and B share its server with --pg-url,
 * so their templates are fleet templates (broker/fixtures/pg/pg_fleet.c). Each round has two
 * templates never built before (their migrate script is new): "solo" is acquired by one
 * worker on A (the build, then its clone), "fleet" by 8 workers on A and 8 on B at once,
 * timed until the last of them holds its lease. Workers are processes with libfxb clients,
 * spawned the same way in both cases. The migration makes 200 tables and 40000 rows with
 * psql. Printed: each round's times, the median ratio fleet/solo (goal <= 1.3) and the
 * builds the brokers counted (one per template when the election works).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "fxb.h"
#include "harness.h"

#define ROUNDS 5
#define PER_BROKER 8
#define GOAL 1.3

static const char migration[] =
    "DO \\$\\$ BEGIN FOR i IN 1..200 LOOP EXECUTE format("
    "'CREATE TABLE t%s (id int PRIMARY KEY, name text, at timestamptz DEFAULT now())', i); "
    "EXECUTE format('INSERT INTO t%s (id, name) SELECT g, md5(g::text) FROM "
    "generate_series(1, 200) g', i); END LOOP; END \\$\\$";

struct bb {
	struct test_broker tb;
	struct fxb_client *c;
};

static char dir[512];

static int
bstart(struct bb *b, const char *state, const char *cfg, const char *url)
{
	const char *args[12] = { "--state-dir", state, "--log-level", "info", "--grace-ms", "0" };
	size_t n = 6;
	char err[512];
	json_t *st;
	int ok;

	if (cfg) {
		args[n++] = "--config";
		args[n++] = cfg;
	}
	if (url) {
		args[n++] = "--pg-url";
		args[n++] = url;
	}
	args[n] = NULL;
	mkdir(state, 0755);
	if (test_broker_start(&b->tb, args, err, sizeof err) == -1) {
		fprintf(stderr, "build_bench: %s\n", err);
		return -1;
	}
	if (!(b->c = test_client(&b->tb, NULL, NULL, err, sizeof err))) {
		fprintf(stderr, "build_bench: %s\n", err);
		test_broker_kill(&b->tb);
		return -1;
	}
	st = test_call_json(b->c, "pg.status", NULL);
	ok = st && !strcmp(json_string_value(json_object_get(st, "state")) ?
	    json_string_value(json_object_get(st, "state")) : "", "ready");
	json_decref(st);
	if (!ok) {
		fprintf(stderr, "build_bench: PostgreSQL did not start; see %s\n", b->tb.log);
		fxb_client_free(b->c);
		test_broker_kill(&b->tb);
		return -1;
	}
	return 0;
}

static void
bstop(struct bb *b)
{
	fxb_client_free(b->c);
	if (b->tb.pid > 0 && test_broker_stop(&b->tb) != 0)
		fprintf(stderr, "build_bench: a broker did not stop cleanly; see %s\n", b->tb.log);
}

static long
builds(struct bb *b)
{
	json_t *st = test_call_json(b->c, "pg.status", NULL);
	long n = st ? (long)json_integer_value(json_object_get(st, "template_builds")) : -1;

	json_decref(st);
	return n;
}

struct wa {
	const char *urls[2];
	const char *tpl;
	uint64_t *ready_ns; /* shared with the workers: when pg.template.ensure said ready... */
	uint64_t *done_ns;  /* ...and when each got its lease */
	int *ensured;       /* shared: workers past their ensure */
	int n;              /* workers in this run */
};

/* A worker, on broker index % 2: pg.template.ensure (it answers once the template is
 * built, or found built), then one lease of a clone. */
static int
worker(int index, void *argp)
{
	struct wa *a = argp;
	struct fxb_options o = { .url = a->urls[index % 2], .client = "build-bench",
		.timeout_ms = 300000 };
	char options[128];
	struct fxb_fixture_spec spec = { "db", "postgres", options };
	struct fxb_client *c = NULL;
	struct fxb_lease *l = NULL;

	snprintf(options, sizeof options, "{\"template\": \"%s\"}", a->tpl);
	if (fxb_client_new(&c, &o, NULL, 0) != 0)
		return 1;
	{
		char params[128];
		snprintf(params, sizeof params, "{\"hash\": \"%s\", \"wait_ms\": 300000}", a->tpl);
		if (fxb_call(c, "pg.template.ensure", params, NULL) != 0) {
			fprintf(stderr, "build_bench: %s: %s\n", a->tpl, fxb_client_errmsg(c));
			fxb_client_free(c);
			return 3;
		}
		a->ready_ns[index] = now_ns();
	}
	/* The leases after every worker's ensure: clones made for early workers do not slow
	 * the answers to later ones. */
	__atomic_add_fetch(a->ensured, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(a->ensured, __ATOMIC_SEQ_CST) < a->n)
		sleep_ms(1);
	if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0) {
		fprintf(stderr, "build_bench: %s: %s\n", a->tpl, fxb_client_errmsg(c));
		fxb_client_free(c);
		return 2;
	}
	a->done_ns[index] = now_ns();
	fxb_lease_release(c, l);
	fxb_client_free(c);
	return 0;
}

/* Runs n workers at once: the time until every one was told the template is ready (ms),
 * and in *all until every one held a lease; -1 when a worker failed. */
static double
timed(int n, struct wa *a, double *all)
{
	uint64_t t0 = now_ns(), ready = 0, done = 0;

	memset(a->ready_ns, 0, sizeof *a->ready_ns * 2 * PER_BROKER);
	*a->ensured = 0;
	a->n = n;
	memset(a->done_ns, 0, sizeof *a->done_ns * 2 * PER_BROKER);
	if (children_run(n, worker, a, 600000) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		ready = a->ready_ns[i] > ready ? a->ready_ns[i] : ready;
		done = a->done_ns[i] > done ? a->done_ns[i] : done;
	}
	*all = (double)(done - t0) / 1e6;
	return (double)(ready - t0) / 1e6;
}

static int
cmp_d(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

int
main(void)
{
	const char *d = getenv("FXB_TEST_LOG_DIR");
	char host_state[600], a_state[600], b_state[600], script[1024], text[8192], cfg[1024];
	char url[1400], tpls[4096];
	double solo[ROUNDS], fleet[ROUNDS], ratio[ROUNDS], lease_ratio[ROUNDS], solo_all, fleet_all;
	struct bb host, a, b;
	struct wa wa;
	size_t off = 0;
	long before;
	int failed = 0, ok = 0;
	json_t *st, *emb;

	wa.ready_ns = mmap(NULL, sizeof *wa.ready_ns * (4 * PER_BROKER + 1), PROT_READ |
	    PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	wa.done_ns = wa.ready_ns + 2 * PER_BROKER;
	wa.ensured = (int *)(wa.done_ns + 2 * PER_BROKER);
	if (wa.ready_ns == MAP_FAILED) {
		perror("build_bench: mmap");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(dir, sizeof dir, "%s/fxb-build-bench-%d", d && *d ? d : "/tmp", (int)getpid());
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "build_bench: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(host_state, sizeof host_state, "%s/host", dir);
	snprintf(a_state, sizeof a_state, "%s/a", dir);
	snprintf(b_state, sizeof b_state, "%s/b", dir);
	/* The migrate script is new in every run (its path is the inputs' hash), so every
	 * template here is built for the first time. */
	snprintf(script, sizeof script, "%s/migrate.sh", dir);
	snprintf(text, sizeof text, "#!/bin/sh\nset -e\npsql -X -q -v ON_ERROR_STOP=1 \"$1\" -c \"%s\"\n",
	    migration);
	{
		FILE *f = fopen(script, "w");
		if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "build_bench: %s: %s\n", script, strerror(errno));
			return 1;
		}
		chmod(script, 0755);
	}
	for (int r = 0; r < ROUNDS; r++)
		for (int k = 0; k < 2; k++)
			off += (size_t)snprintf(tpls + off, sizeof tpls - off, "%s\"%s%d\": {\"migrate\": "
			    "[\"%s\", \"{url}\"], \"inputs\": [\"%s\"]}", off ? ", " : "",
			    k ? "fleet" : "solo", r, script, script);
	snprintf(text, sizeof text, "{\"postgres\": {\"pool\": {\"min_ready\": 0}, "
	    "\"acquire_timeout_ms\": 300000, \"templates\": {%s}}}", tpls);
	snprintf(cfg, sizeof cfg, "%s/config.json", dir);
	{
		FILE *f = fopen(cfg, "w");
		if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "build_bench: %s: %s\n", cfg, strerror(errno));
			return 1;
		}
	}

	printf("== A template build asked for by 2 brokers x %d workers at once, against one "
	    "worker alone (build_bench) ==\n", PER_BROKER);
	if (bstart(&host, host_state, NULL, NULL) == -1)
		return 1;
	st = test_call_json(host.c, "pg.status", NULL);
	emb = json_object_get(st, "embedded");
	snprintf(url, sizeof url, "host=%s port=%d user=postgres dbname=postgres",
	    json_string_value(json_object_get(emb, "socket_dir")),
	    (int)json_integer_value(json_object_get(emb, "port")));
	json_decref(st);
	if (bstart(&a, a_state, cfg, url) == -1) {
		failed = 1;
		goto out_host;
	}
	if (bstart(&b, b_state, cfg, url) == -1) {
		failed = 1;
		goto out_a;
	}
	wa.urls[0] = a.tb.url;
	wa.urls[1] = b.tb.url;
	printf("brokers A and B on the embedded cluster of a third (--pg-url); migration: 200 "
	    "tables, 40000 rows (psql)\n");
	printf("  Times from the workers' start: 'built' until every worker's pg.template.ensure "
	    "answered ready\n  (the build, elected once, waited for by the others), 'leased' until "
	    "every worker then held a\n  clone (16 clones for 2 x 8, made by the two brokers side "
	    "by side, against 1).\n");
	printf("  %-6s %14s %14s %7s %14s %14s %7s %7s\n", "round", "1: built ms", "2x8: built ms",
	    "ratio", "1: leased ms", "2x8: leased ms", "ratio", "builds");
	for (int r = 0; r < ROUNDS; r++) {
		char name[32];
		before = builds(&a) + builds(&b);
		snprintf(name, sizeof name, "solo%d", r);
		wa.urls[1] = a.tb.url;
		wa.tpl = name;
		solo[r] = timed(1, &wa, &solo_all);
		snprintf(name, sizeof name, "fleet%d", r);
		wa.urls[1] = b.tb.url;
		fleet[r] = timed(2 * PER_BROKER, &wa, &fleet_all);
		if (solo[r] < 0 || fleet[r] < 0) {
			fprintf(stderr, "build_bench: round %d: a worker failed; see %s and %s\n", r,
			    a.tb.log, b.tb.log);
			failed = 1;
			break;
		}
		ratio[r] = fleet[r] / solo[r];
		lease_ratio[r] = fleet_all / solo_all;
		printf("  %-6d %14.0f %14.0f %7.2f %14.0f %14.0f %7.2f %7ld\n", r + 1, solo[r], fleet[r],
		    ratio[r], solo_all, fleet_all, lease_ratio[r], builds(&a) + builds(&b) - before);
		ok++;
	}
	if (ok == ROUNDS) {
		qsort(ratio, ROUNDS, sizeof *ratio, cmp_d);
		qsort(lease_ratio, ROUNDS, sizeof *lease_ratio, cmp_d);
		printf("  median ratio, template built (2 x %d workers / 1 worker): %.2f, goal <= %.1f: "
		    "%s\n", PER_BROKER, ratio[ROUNDS / 2], GOAL, ratio[ROUNDS / 2] <= GOAL ? "met" :
		    "NOT met");
		printf("  median ratio, every worker leased: %.2f (15 clones more than alone; no goal)\n",
		    lease_ratio[ROUNDS / 2]);
		printf("  builds per round: 2 when each template is built once (solo, fleet)\n");
	}
	bstop(&b);
out_a:
	bstop(&a);
out_host:
	bstop(&host);
	test_rm_pg_state(a_state);
	test_rm_pg_state(b_state);
	test_rm_pg_state(host_state);
	unlink(script);
	unlink(cfg);
	rmdir(dir);
	return failed;
}
