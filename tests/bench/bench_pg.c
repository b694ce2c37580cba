/* bench_pg.c: PostgreSQL fixtures: embedded start-up, warm acquires, cold clones, builds, churn.
 *
 * Starts the real broker (the integration harness's test_broker_start) with the embedded
 * cluster in a fresh state directory and measures, in one run:
 *   1. embedded cluster start-up: the first run (initdb) and three later runs, as the
 *      client sees it (broker start to pg.status "ready") and as the broker timed it;
 *   2. acquire from a warm pool: p50 and p99 of lease.acquire when a clone is ready,
 *      through libfxb and over the raw WebSocket client;
 *   3. a cold clone through the broker (no pool: the acquire waits for CREATE DATABASE and
 *      the lease's role) against CREATE DATABASE ... TEMPLATE issued directly, as a ratio
 *      (a template of 20,000 rows; the warm and churn figures use a small one), and the
 *      two clone strategies against each other, taking turns, clone and drop;
 *   4. eight workers ensuring one template at once against one run of its migration;
 *   5. the statements around each clone, one by one, before and after batching;
 *   6. lease churn with 4 and 16 clients on a memory cluster and on a disk one, against the
 *      raw CREATE DATABASE ... TEMPLATE + DROP DATABASE rate on the same cluster, as ratios;
 *   7. a soak window: 16 clients each leasing a database per "test file" and holding it
 *      (FXB_BENCH_HOLD_MS, default 250 ms): the share of leases served from a ready clone,
 *      and acquire p50/p99, on memory and on disk.
 * Figures are printed, never asserted: the machine is shared and noisy. FXB_BENCH_SECS
 * sets the churn and raw durations (default 5 s), FXB_BENCH_SOAK_SECS the soak window's
 * (default 20 s); the state directories (and their memory data) are removed at the end.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define WARM_COUNT 200
#define COLD_COUNT 15
#define LATER_RUNS 3
#define BUILDERS 8
#define GOAL_WARM_P50_US 1000.0
#define GOAL_COLD_RATIO 1.1

/* The template's migration: a few tables, indexes and 20,000 rows, like a small app's. */
static const char migration_sql[] =
    "CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text);"
    "CREATE TABLE products (id serial PRIMARY KEY, sku text UNIQUE, price_cents int);"
    "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, "
    "  product_id int REFERENCES products, qty int, created timestamptz DEFAULT now());"
    "CREATE INDEX ON orders (customer_id);"
    "INSERT INTO customers (email, name) SELECT 'c' || g || '@x.test', 'C ' || g "
    "  FROM generate_series(1, 5000) g;"
    "INSERT INTO products (sku, price_cents) SELECT 'SKU-' || g, g * 10 "
    "  FROM generate_series(1, 5000) g;"
    "INSERT INTO orders (customer_id, product_id, qty) SELECT 1 + g % 5000, 1 + g % 5000, 1 "
    "  FROM generate_series(1, 10000) g;";

/* A small app's schema with a handful of seed rows, for warm acquires and churn. */
static const char small_sql[] =
    "CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text);"
    "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, qty int);"
    "INSERT INTO customers (email, name) SELECT 'c' || g || '@x.test', 'C ' || g "
    "  FROM generate_series(1, 50) g;";

static char state_dir[512];
static const char *bench_dir = state_dir; /* where bstart() starts the next broker */

static void
quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static double
ms_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e6;
}

struct bbroker {
	struct test_broker tb;
	struct fxb_client *c;
	char conninfo[1400];
	double start_ms;     /* broker start to PostgreSQL ready, client side */
	double cluster_ms;   /* the embedded cluster's own start */
	int initialised;
};

static int
bstart(struct bbroker *b, const char *config_text)
{
	char cfg[1024] = "", err[512];
	const char *args[] = { "--state-dir", bench_dir, "--log-level", "warn", "--grace-ms", "0",
		cfg[0] ? "--config" : NULL, cfg, NULL };
	uint64_t t0 = now_ns();
	json_t *st, *emb;

	memset(b, 0, sizeof *b);
	if (config_text) {
		if (temp_file(cfg, sizeof cfg, "bench-pg.json", config_text) == -1)
			return -1;
		args[6] = "--config";
	}
	if (test_broker_start(&b->tb, args, err, sizeof err) == -1) {
		fprintf(stderr, "bench_pg: %s\n", err);
		return -1;
	}
	if (!(b->c = test_client(&b->tb, NULL, NULL, err, sizeof err))) {
		fprintf(stderr, "bench_pg: %s\n", err);
		test_broker_kill(&b->tb);
		return -1;
	}
	st = test_call_json(b->c, "pg.status", NULL);
	b->start_ms = ms_since(t0);
	emb = json_object_get(st, "embedded");
	if (!st || !json_string_value(json_object_get(st, "state")) ||
	    strcmp(json_string_value(json_object_get(st, "state")), "ready") != 0 ||
	    !json_is_object(emb)) {
		fprintf(stderr, "bench_pg: PostgreSQL did not start: %s; see %s\n",
		    st ? json_string_value(json_object_get(st, "error")) : fxb_client_errmsg(b->c),
		    b->tb.log);
		json_decref(st);
		fxb_client_free(b->c);
		test_broker_kill(&b->tb);
		return -1;
	}
	b->cluster_ms = json_real_value(json_object_get(emb, "start_ms"));
	b->initialised = json_is_true(json_object_get(emb, "initialised"));
	snprintf(b->conninfo, sizeof b->conninfo, "host=%s port=%d user=postgres dbname=postgres",
	    json_string_value(json_object_get(emb, "socket_dir")),
	    (int)json_integer_value(json_object_get(emb, "port")));
	json_decref(st);
	return 0;
}

static void
bstop(struct bbroker *b)
{
	fxb_client_free(b->c);
	if (test_broker_stop(&b->tb) != 0)
		fprintf(stderr, "bench_pg: the broker did not stop cleanly; see %s\n", b->tb.log);
}

/* Builds template hash through pg.template.ensure/finish with sql. */
static int
build(struct fxb_client *c, const char *hash, const char *sql)
{
	char params[256];
	PGconn *db;
	PGresult *r;
	json_t *j;
	int ok;

	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	if (!(j = test_call_json(c, "pg.template.ensure", params)))
		return -1;
	if (!json_string_value(json_object_get(j, "state")) ||
	    strcmp(json_string_value(json_object_get(j, "state")), "build") != 0) {
		json_decref(j);
		return 0;
	}
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	json_decref(j);
	r = PQexec(db, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "bench_pg: migration: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(db);
	if (!ok)
		return -1;
	return fxb_call(c, "pg.template.finish", params, NULL) == 0 ? 0 : -1;
}

static long
pool_member(struct fxb_client *c, const char *hash, const char *member)
{
	json_t *st = test_call_json(c, "pg.status", NULL), *t;
	size_t i;
	long v = -1;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), hash))
			v = (long)json_integer_value(json_object_get(json_object_get(t, "database_pool"),
			    member));
	json_decref(st);
	return v;
}

static int
acquire(struct fxb_client *c, const char *hash, struct fxb_lease **l)
{
	char opts[256];
	struct fxb_fixture_spec spec = { "db", "postgres", opts };

	snprintf(opts, sizeof opts, "{\"template\": \"%s\"}", hash);
	return fxb_lease_acquire(c, &spec, 1, NULL, l);
}

/* ---- 1. Start-up ---- */

static int
bench_startup(void)
{
	struct bbroker b;
	double later[LATER_RUNS], later_cluster[LATER_RUNS];

	if (bstart(&b, NULL) == -1)
		return -1;
	printf("\nembedded cluster start-up (broker start to pg.status ready, as a client sees it; "
	    "the cluster's own start in brackets):\n");
	printf("  first run, empty state directory (initdb%s): %8.0f ms  (%.0f ms)\n",
	    b.initialised ? "" : " NOT run", b.start_ms, b.cluster_ms);
	bstop(&b);
	for (int i = 0; i < LATER_RUNS; i++) {
		if (bstart(&b, NULL) == -1)
			return -1;
		later[i] = b.start_ms;
		later_cluster[i] = b.cluster_ms;
		bstop(&b);
	}
	printf("  later runs, same state directory:");
	for (int i = 0; i < LATER_RUNS; i++)
		printf("%s %.0f ms (%.0f)", i ? "," : "", later[i], later_cluster[i]);
	printf("\n");
	return 0;
}

/* ---- 2. Warm acquires ---- */

/* Waits until hash's pool has a clone ready and nothing being made or dropped. */
static void
quiesce(struct fxb_client *c, const char *hash)
{
	uint64_t end = clock_ms() + 30000;

	while ((pool_member(c, hash, "ready") < 1 || pool_member(c, hash, "cloning") > 0 ||
	    pool_member(c, hash, "dropping") > 0) && clock_ms() < end)
		sleep_ms(2);
}

static int
bench_warm(struct bbroker *b, const char *hash)
{
	uint64_t sdk[WARM_COUNT], raw[WARM_COUNT];
	size_t nsdk = 0, nraw = 0;
	struct raw_ws w;
	char opts[256];

	/* Each sample waits for a warm, quiet pool: a clone ready, and the previous release's
	 * drop and refill done (on 2 CPUs they would compete with the acquire). */
	for (int i = 0; i < WARM_COUNT; i++) {
		struct fxb_lease *l;
		uint64_t t0;
		quiesce(b->c, hash);
		t0 = now_ns();
		if (acquire(b->c, hash, &l) != 0) {
			fprintf(stderr, "bench_pg: warm acquire: %s\n", fxb_client_errmsg(b->c));
			continue;
		}
		sdk[nsdk++] = now_ns() - t0;
		fxb_lease_release(b->c, l);
	}
	snprintf(opts, sizeof opts, "{\"template\": \"%s\"}", hash);
	if (raw_ws_connect(&w, b->tb.port, "fixture-broker.v1", NULL) == 101) {
		for (int i = 0; i < WARM_COUNT; i++) {
			uint64_t t0;
			json_t *rep, *res;
			quiesce(b->c, hash);
			t0 = now_ns();
			rep = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures",
			    "db", "kind", "postgres", "template", hash));
			if ((res = raw_rpc_result(rep))) {
				raw[nraw++] = now_ns() - t0;
				json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:O}", "lease",
				    json_object_get(res, "lease"))));
			}
			json_decref(rep);
		}
		raw_ws_close(&w);
	}
	printf("\nacquire from a warm pool (%d samples each, a clone ready and the pool quiet before "
	    "each; template: 2 tables, 50 rows):\n", WARM_COUNT);
	printf("  %-40s %9s %9s\n", "", "p50 us", "p99 us");
	printf("  %-40s %9.1f %9.1f\n", "fxb_lease_acquire (libfxb)", percentile_us(sdk, nsdk, 50),
	    percentile_us(sdk, nsdk, 99));
	if (nraw)
		printf("  %-40s %9.1f %9.1f\n", "lease.acquire over raw WebSocket",
		    percentile_us(raw, nraw, 50), percentile_us(raw, nraw, 99));
	printf("  p50 goal under %.0f us: %s\n", GOAL_WARM_P50_US,
	    percentile_us(sdk, nsdk, 50) < GOAL_WARM_P50_US ? "met" : "MISSED");
	return nsdk ? 0 : -1;
}

/* ---- 3. Cold clones ---- */

/* The template's database name, from pg.status. */
static int
template_db(struct fxb_client *c, const char *hash, char *out, size_t n)
{
	json_t *st = test_call_json(c, "pg.status", NULL), *t;
	size_t i;

	out[0] = '\0';
	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), hash))
			snprintf(out, n, "%s", json_string_value(json_object_get(t, "database")));
	json_decref(st);
	return out[0] ? 0 : -1;
}

/* Creates (and drops) a database from tpl directly; the time of the create, or of both
 * when with_drop. */
static double
direct_clone_ms(PGconn *admin, const char *tpl, const char *strategy, int i, int with_drop)
{
	char sql[512];
	uint64_t t0;
	PGresult *r;
	double ms;

	snprintf(sql, sizeof sql, "CREATE DATABASE bench_direct_%d TEMPLATE \"%s\" STRATEGY %s", i,
	    tpl, strategy);
	t0 = now_ns();
	r = PQexec(admin, sql);
	ms = ms_since(t0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "bench_pg: %s: %s", sql, PQresultErrorMessage(r));
		ms = -1;
	}
	PQclear(r);
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS bench_direct_%d", i);
	PQclear(PQexec(admin, sql));
	if (with_drop && ms >= 0)
		ms = ms_since(t0);
	return ms;
}

/* Cold clones through a broker with no pool (min_ready 0) against direct ones, taking
 * turns. Returns 0 and fills the medians. */
static int
cold(const char *strategy, const char *hash, double *broker_p50, double *direct_p50)
{
	char cfg[256], tpl[128];
	double through[COLD_COUNT], direct[COLD_COUNT];
	struct bbroker b;
	PGconn *admin;
	size_t n = 0;

	snprintf(cfg, sizeof cfg, "{\"postgres\": {\"clone_strategy\": \"%s\", \"pool\": "
	    "{\"min_ready\": 0, \"follow_demand\": false}}}", strategy);
	if (bstart(&b, cfg) == -1)
		return -1;
	if (build(b.c, hash, migration_sql) == -1 || template_db(b.c, hash, tpl, sizeof tpl) == -1) {
		bstop(&b);
		return -1;
	}
	admin = PQconnectdb(b.conninfo);
	for (int i = 0; i < COLD_COUNT; i++) {
		struct fxb_lease *l;
		uint64_t t0 = now_ns();
		if (acquire(b.c, hash, &l) != 0) {
			fprintf(stderr, "bench_pg: cold acquire: %s\n", fxb_client_errmsg(b.c));
			break;
		}
		through[n] = ms_since(t0);
		fxb_lease_release(b.c, l);
		/* Let the drop finish so that both sides clone on an idle server. */
		while (pool_member(b.c, hash, "dropping") > 0)
			sleep_ms(5);
		direct[n] = direct_clone_ms(admin, tpl, strategy, i, 0);
		n++;
	}
	PQfinish(admin);
	bstop(&b);
	*broker_p50 = median(through, n);
	*direct_p50 = median(direct, n);
	return n ? 0 : -1;
}

static int
bench_cold(void)
{
	double bf, df;

	if (cold("file_copy", "bench-cold", &bf, &df) == -1)
		return -1;
	printf("\ncold clone (no pool: the acquire waits for its clone and its role), the default "
	    "strategy FILE_COPY, median of %d taking turns with a direct one; the template holds "
	    "20,000 rows:\n", COLD_COUNT);
	printf("  through the broker %.1f ms, CREATE DATABASE ... TEMPLATE directly %.1f ms: "
	    "%.2fx (goal within %.1fx: %s)\n", bf, df, bf / df, GOAL_COLD_RATIO,
	    bf / df <= GOAL_COLD_RATIO ? "met" : "MISSED");
	return 0;
}

/* FILE_COPY against WAL_LOG: a clone and its drop (what the pool pays per lease), issued
 * directly, the two strategies taking turns so that both see the same machine. */
static int
bench_strategies(struct bbroker *b)
{
	static const char *const hashes[] = { "bench-small", "bench-cold" };
	static const char *const what[] = { "2 tables, 50 rows", "20,000 rows" };
	PGconn *admin = PQconnectdb(b->conninfo);
	int rc = 0;

	PQsetNoticeProcessor(admin, quiet, NULL);
	printf("\nclone strategies, directly, taking turns (%d clone + drop cycles each):\n",
	    COLD_COUNT);
	printf("  %-20s %14s %14s %10s\n", "template", "FILE_COPY ms", "WAL_LOG ms", "faster");
	for (size_t t = 0; t < 2; t++) {
		double fc[COLD_COUNT], wl[COLD_COUNT], f, w;
		char tpl[128];
		if (build(b->c, hashes[t], t ? migration_sql : small_sql) == -1 ||
		    template_db(b->c, hashes[t], tpl, sizeof tpl) == -1) {
			rc = -1;
			break;
		}
		for (int i = 0; i < COLD_COUNT; i++) {
			fc[i] = direct_clone_ms(admin, tpl, "FILE_COPY", i, 1);
			wl[i] = direct_clone_ms(admin, tpl, "WAL_LOG", i, 1);
		}
		f = median(fc, COLD_COUNT);
		w = median(wl, COLD_COUNT);
		printf("  %-20s %14.1f %14.1f %10s\n", what[t], f, w, f <= w ? "FILE_COPY" : "WAL_LOG");
	}
	PQfinish(admin);
	return rc;
}

/* ---- 4. Eight workers, one template ---- */

struct builder {
	const char *url;
	const char *hash;
	int built;
	int ok;
	double ms;
	char err[256];
};

static void *
ensure_thread(void *arg)
{
	struct builder *w = arg;
	struct fxb_options o = { .url = w->url, .timeout_ms = 120000 };
	struct fxb_client *c = NULL;
	char params[256], finish[256], *res = NULL;
	uint64_t t0 = now_ns();

	snprintf(finish, sizeof finish, "{\"hash\": \"%s\"}", w->hash);
	if (fxb_client_new(&c, &o, w->err, sizeof w->err) != 0)
		return NULL;
	snprintf(params, sizeof params, "{\"hash\": \"%s\", \"wait_ms\": 120000}", w->hash);
	if (fxb_call(c, "pg.template.ensure", params, &res) == 0) {
		json_t *j = json_loads(res, 0, NULL);
		const char *state = json_string_value(json_object_get(j, "state"));
		if (state && !strcmp(state, "build")) {
			PGconn *db = PQconnectdb(json_string_value(json_object_get(j, "url")));
			PGresult *r = PQexec(db, migration_sql);
			w->built = 1;
			w->ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			if (!w->ok)
				snprintf(w->err, sizeof w->err, "migration: %s", PQresultErrorMessage(r));
			else if (fxb_call(c, "pg.template.finish", finish, NULL) != 0)
				snprintf(w->err, sizeof w->err, "finish: %s", fxb_client_errmsg(c));
			w->ok = w->ok && !w->err[0];
			PQclear(r);
			PQfinish(db);
		} else {
			w->ok = state && !strcmp(state, "ready");
		}
		json_decref(j);
		free(res);
	} else {
		snprintf(w->err, sizeof w->err, "ensure: %s", fxb_client_errmsg(c));
	}
	w->ms = ms_since(t0);
	fxb_client_free(c);
	return NULL;
}

static int
bench_builders(struct bbroker *b)
{
	struct builder w[BUILDERS];
	pthread_t th[BUILDERS];
	char hash[64];
	double one = 0, total;
	int built = 0, ok = 0;
	uint64_t t0;
	PGconn *admin = PQconnectdb(b->conninfo);
	PGresult *r;

	PQsetNoticeProcessor(admin, quiet, NULL);
	/* One migration run on its own, on a fresh database. */
	PQclear(PQexec(admin, "DROP DATABASE IF EXISTS bench_one_run"));
	PQclear(PQexec(admin, "CREATE DATABASE bench_one_run"));
	{
		char ci[1500];
		PGconn *db;
		snprintf(ci, sizeof ci, "%s", b->conninfo);
		strcpy(strstr(ci, "dbname=postgres"), "dbname=bench_one_run");
		db = PQconnectdb(ci);
		t0 = now_ns();
		r = PQexec(db, migration_sql);
		one = ms_since(t0);
		PQclear(r);
		PQfinish(db);
	}
	PQclear(PQexec(admin, "DROP DATABASE IF EXISTS bench_one_run"));
	PQfinish(admin);

	snprintf(hash, sizeof hash, "bench-eight-%d", (int)getpid());
	t0 = now_ns();
	for (int i = 0; i < BUILDERS; i++) {
		w[i] = (struct builder){ .url = b->tb.url, .hash = hash };
		pthread_create(&th[i], NULL, ensure_thread, &w[i]);
	}
	for (int i = 0; i < BUILDERS; i++) {
		pthread_join(th[i], NULL);
		built += w[i].built;
		ok += w[i].ok;
		if (w[i].err[0])
			fprintf(stderr, "bench_pg: worker %d: %s\n", i, w[i].err);
	}
	total = ms_since(t0);
	printf("\n%d workers ensure one template at once (each connects, calls pg.template.ensure; "
	    "the builder migrates and finishes):\n", BUILDERS);
	printf("  one migration run alone:      %8.1f ms\n", one);
	printf("  all %d workers ready after:    %8.1f ms (%.2fx one run); builders: %d, "
	    "succeeded: %d of %d\n", BUILDERS, total, total / one, built, ok, BUILDERS);
	return ok == BUILDERS && built == 1 ? 0 : -1;
}

/* ---- 5. Churn and the soak window ---- */

struct churner {
	const char *url;
	const char *hash;
	double secs;
	int hold_ms; /* how long each lease is held (a test file's work); 0: released at once */
	long leases, errors;
	uint64_t *lat;
	size_t nlat, cap;
};

static void *
churn_thread(void *arg)
{
	struct churner *w = arg;
	struct fxb_options o = { .url = w->url, .timeout_ms = 60000 };
	struct fxb_client *c = NULL;
	uint64_t end;

	if (fxb_client_new(&c, &o, NULL, 0) != 0)
		return NULL;
	end = now_ns() + (uint64_t)(w->secs * 1e9);
	while (now_ns() < end) {
		struct fxb_lease *l;
		uint64_t t0 = now_ns();
		if (acquire(c, w->hash, &l) != 0) {
			w->errors++;
			sleep_ms(10);
			continue;
		}
		if (w->nlat < w->cap)
			w->lat[w->nlat++] = now_ns() - t0;
		if (w->hold_ms)
			sleep_ms(w->hold_ms);
		fxb_lease_release(c, l);
		w->leases++;
	}
	fxb_client_free(c);
	return NULL;
}

/* Waits until hash's pool holds n ready clones and is quiet. */
static void
warm_up(struct fxb_client *c, const char *hash, long n)
{
	uint64_t end = clock_ms() + 60000;

	while ((pool_member(c, hash, "ready") < n || pool_member(c, hash, "cloning") > 0 ||
	    pool_member(c, hash, "dropping") > 0) && clock_ms() < end)
		sleep_ms(10);
}

struct churn_result {
	double per_s, p50_ms, p99_ms, warm_pct;
	long leases, errors;
};

#define LAT_CAP 100000

/* n clients acquire and release hash's database for secs, holding each lease hold_ms. */
static int
churn(struct bbroker *b, const char *hash, int n, double secs, int hold_ms,
    struct churn_result *r)
{
	struct churner *w = calloc((size_t)n, sizeof *w);
	pthread_t *th = calloc((size_t)n, sizeof *th);
	uint64_t *all = calloc((size_t)n * LAT_CAP, sizeof *all);
	long ready0, waited0, ready, waited;
	size_t nall = 0;

	if (!w || !th || !all) {
		free(w);
		free(th);
		free(all);
		return -1;
	}
	memset(r, 0, sizeof *r);
	warm_up(b->c, hash, 4);
	ready0 = pool_member(b->c, hash, "served_ready");
	waited0 = pool_member(b->c, hash, "served_waited");
	for (int i = 0; i < n; i++) {
		w[i] = (struct churner){ .url = b->tb.url, .hash = hash, .secs = secs,
			.hold_ms = hold_ms, .lat = all + (size_t)i * LAT_CAP, .cap = LAT_CAP };
		pthread_create(&th[i], NULL, churn_thread, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		r->leases += w[i].leases;
		r->errors += w[i].errors;
	}
	for (int i = 0; i < n; i++) {
		memmove(all + nall, w[i].lat, w[i].nlat * sizeof *all);
		nall += w[i].nlat;
	}
	ready = pool_member(b->c, hash, "served_ready") - ready0;
	waited = pool_member(b->c, hash, "served_waited") - waited0;
	r->per_s = (double)r->leases / secs;
	r->p50_ms = percentile_us(all, nall, 50) / 1000.0;
	r->p99_ms = percentile_us(all, nall, 99) / 1000.0;
	r->warm_pct = ready + waited ? 100.0 * (double)ready / (double)(ready + waited) : 0;
	free(w);
	free(th);
	free(all);
	return 0;
}

/* ---- 6. Raw clone + drop on the same cluster ---- */

struct raw_worker {
	const char *conninfo, *tpl;
	int id;
	double secs;
	long pairs, errors;
};

static void *
raw_thread(void *arg)
{
	struct raw_worker *w = arg;
	PGconn *c = PQconnectdb(w->conninfo);
	uint64_t end = now_ns() + (uint64_t)(w->secs * 1e9);
	char sql[512];

	PQsetNoticeProcessor(c, quiet, NULL);
	for (long i = 0; now_ns() < end; i++) {
		PGresult *r;
		snprintf(sql, sizeof sql, "CREATE DATABASE bench_raw_%d_%ld TEMPLATE \"%s\" "
		    "STRATEGY FILE_COPY", w->id, i, w->tpl);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			w->errors++;
			PQclear(r);
			continue;
		}
		PQclear(r);
		snprintf(sql, sizeof sql, "DROP DATABASE bench_raw_%d_%ld", w->id, i);
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			w->pairs++;
		else
			w->errors++;
		PQclear(r);
	}
	PQfinish(c);
	return NULL;
}

/* Clone + drop pairs per second, n connections at once, issued directly. */
static double
raw_rate(struct bbroker *b, const char *hash, int n, double secs)
{
	struct raw_worker w[16];
	pthread_t th[16];
	char tpl[128];
	long pairs = 0;

	if (template_db(b->c, hash, tpl, sizeof tpl) == -1)
		return -1;
	for (int i = 0; i < n; i++) {
		w[i] = (struct raw_worker){ .conninfo = b->conninfo, .tpl = tpl, .id = i, .secs = secs };
		pthread_create(&th[i], NULL, raw_thread, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		pairs += w[i].pairs;
	}
	return (double)pairs / secs;
}

/* ---- 7. What each statement around a clone costs, before and after batching ---- */

#define STMT_ROUNDS 30

struct stmt {
	const char *what;
	double ms[STMT_ROUNDS];
};

/* Runs sql (any number of statements) on c, timing it into st[k]; 0 or -1. */
static int
timed(PGconn *c, struct stmt *st, int k, int round, const char *sql)
{
	uint64_t t0 = now_ns();
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	st[k].ms[round] = ms_since(t0);
	if (!ok)
		fprintf(stderr, "bench_pg: %.60s...: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

static void
print_stmts(const char *title, struct stmt *st, int n)
{
	double total = 0;

	printf("  %s\n", title);
	for (int k = 0; k < n; k++) {
		double m = median(st[k].ms, STMT_ROUNDS);
		total += m;
		printf("    %-58s %8.2f ms\n", st[k].what, m);
	}
	printf("    %-58s %8.2f ms\n", "sum of medians", total);
}

/* The broker's clone and drop, statement by statement, as they were (one round trip per
 * statement, the existence checks, libpq asking for password_encryption) and as they are
 * (pg_sql.c: two round trips to clone, three to drop). */
static int
bench_statements(struct bbroker *b, const char *hash)
{
	struct stmt before[] = { { .what = "password verifier (libpq asks the server)" },
		{ .what = "CREATE ROLE ... IN ROLE owner" }, { .what = "CREATE DATABASE ... TEMPLATE" },
		{ .what = "BEGIN; REVOKE; GRANT; ALTER DATABASE ...; COMMIT" },
		{ .what = "drop: SELECT 1 FROM pg_roles (exists?)" }, { .what = "drop: ALTER ROLE NOLOGIN" },
		{ .what = "drop: pg_terminate_backend(role's sessions)" },
		{ .what = "drop: SELECT 1 FROM pg_database (a template?)" },
		{ .what = "drop: DROP DATABASE WITH (FORCE)" }, { .what = "drop: DROP ROLE" } };
	struct stmt after[] = { { .what = "password verifier (scram-sha-256 named, no query)" },
		{ .what = "CREATE DATABASE ... TEMPLATE" },
		{ .what = "BEGIN; CREATE ROLE; REVOKE; GRANT; ALTER DATABASE; COMMIT" },
		{ .what = "drop: ALTER ROLE NOLOGIN" }, { .what = "drop: DROP DATABASE WITH (FORCE)" },
		{ .what = "drop: terminate the role's sessions; DROP ROLE" } };
	char tpl[128], owner[128], sql[2048], role[64], db[64];
	PGconn *c = PQconnectdb(b->conninfo);
	int rc = 0;

	PQsetNoticeProcessor(c, quiet, NULL);
	if (template_db(b->c, hash, tpl, sizeof tpl) == -1)
		return -1;
	/* The template's owner role: its name with _o_ for _t_ (pg_conf.h's naming). */
	snprintf(owner, sizeof owner, "%s", tpl);
	if (strstr(owner, "_t_"))
		strstr(owner, "_t_")[1] = 'o';
	for (int i = 0; i < STMT_ROUNDS && !rc; i++) {
		for (int v = 0; v < 2 && !rc; v++) {
			struct stmt *st = v ? after : before;
			char *enc, *lit;
			uint64_t t0;
			int k = 0;
			snprintf(role, sizeof role, "bench_stmt_u_%d_%d", v, i);
			snprintf(db, sizeof db, "bench_stmt_d_%d_%d", v, i);
			t0 = now_ns();
			enc = PQencryptPasswordConn(c, "0123456789abcdef0123456789abcdef", role,
			    v ? "scram-sha-256" : NULL);
			st[k++].ms[i] = ms_since(t0);
			lit = enc ? PQescapeLiteral(c, enc, strlen(enc)) : NULL;
			if (!lit) {
				rc = -1;
				PQfreemem(enc);
				break;
			}
			if (!v) {
				snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN PASSWORD %s CONNECTION LIMIT 10 "
				    "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT IN ROLE "
				    "\"%s\"", role, lit, owner);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE \"%s\" STRATEGY FILE_COPY "
				    "ALLOW_CONNECTIONS false", db, tpl);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "BEGIN; SET LOCAL synchronous_commit = on; REVOKE ALL ON "
				    "DATABASE %s FROM PUBLIC; GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %s TO %s; "
				    "ALTER DATABASE %s ALLOW_CONNECTIONS true; COMMIT", db, db, role, db);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "SELECT 1 FROM pg_roles WHERE rolname = '%s'", role);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "ALTER ROLE %s NOLOGIN", role);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				    "WHERE usename = '%s'", role);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "SELECT 1 FROM pg_database WHERE datname = '%s' AND "
				    "datistemplate", db);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", role);
				rc |= timed(c, st, k++, i, sql);
			} else {
				snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE \"%s\" STRATEGY FILE_COPY "
				    "ALLOW_CONNECTIONS false", db, tpl);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "BEGIN; SET LOCAL synchronous_commit = on; CREATE ROLE %s "
				    "LOGIN PASSWORD %s CONNECTION LIMIT 10 NOSUPERUSER NOCREATEDB NOCREATEROLE "
				    "NOREPLICATION NOBYPASSRLS INHERIT IN ROLE \"%s\"; REVOKE ALL ON DATABASE %s FROM "
				    "PUBLIC; GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %s TO %s; ALTER DATABASE %s "
				    "ALLOW_CONNECTIONS true; COMMIT", role, lit, owner, db, db, role, db);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "ALTER ROLE %s NOLOGIN", role);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
				rc |= timed(c, st, k++, i, sql);
				snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				    "WHERE usename = '%s'; DROP ROLE IF EXISTS %s", role, role);
				rc |= timed(c, st, k++, i, sql);
			}
			PQfreemem(enc);
			PQfreemem(lit);
		}
	}
	PQfinish(c);
	if (rc)
		return -1;
	printf("\nstatements around each clone on the memory cluster, median of %d rounds, before and "
	    "after batching (the two taking turns):\n", STMT_ROUNDS);
	print_stmts("before: 3 round trips to clone and the verifier's query, 6 to drop",
	    before, (int)(sizeof before / sizeof before[0]));
	print_stmts("after: 2 round trips to clone, 3 to drop", after,
	    (int)(sizeof after / sizeof after[0]));
	return 0;
}

/* ---- 8. Storage: memory against disk, against the raw rate ---- */

#define GOAL_CHURN_PER_S 100.0
#define GOAL_RAW_RATIO 1.5
#define GOAL_WARM_PCT 90.0

static const char *const pool_cfg[] = {
	"{\"postgres\": {\"embedded\": {\"storage\": \"memory\"}, \"pool\": {\"min_ready\": 4, "
	"\"max\": 48}}}",
	"{\"postgres\": {\"embedded\": {\"storage\": \"disk\"}, \"pool\": {\"min_ready\": 4, "
	"\"max\": 48}}}",
};

static int
bench_storage(double secs, double soak_secs, int hold_ms)
{
	static const char *const names[] = { "memory", "disk" };
	static const int clients[] = { 4, 16 };
	struct churn_result r[2][2], soak[2];
	double raw[2] = { 0, 0 };
	char dirs[2][600];
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), ok[2] = { 0, 0 };

	if (ncpu < 1)
		ncpu = 1;
	for (int s = 0; s < 2; s++) {
		struct bbroker b;
		snprintf(dirs[s], sizeof dirs[s], "%s-%s", state_dir, names[s]);
		mkdir(dirs[s], 0755);
		bench_dir = dirs[s];
		if (bstart(&b, pool_cfg[s]) == -1)
			continue;
		if (build(b.c, "bench-small", small_sql) == -1) {
			bstop(&b);
			continue;
		}
		if (s == 0 && bench_statements(&b, "bench-small") == -1)
			fprintf(stderr, "bench_pg: the statement costs could not be measured\n");
		raw[s] = raw_rate(&b, "bench-small", ncpu, secs);
		ok[s] = 1;
		for (int c = 0; c < 2 && ok[s]; c++)
			ok[s] = churn(&b, "bench-small", clients[c], secs, 0, &r[s][c]) == 0;
		if (ok[s])
			ok[s] = churn(&b, "bench-small", 16, soak_secs, hold_ms, &soak[s]) == 0;
		bstop(&b);
	}
	bench_dir = state_dir;
	printf("\nlease churn by storage: clients acquire a database and release it at once for %.0f s "
	    "(template: 2 tables, 50 rows; pool min_ready 4, max 48, paced by demand); raw: %d "
	    "connections issuing CREATE DATABASE ... TEMPLATE + DROP DATABASE directly on the same "
	    "cluster:\n", secs, ncpu);
	printf("  %-7s %7s %10s %12s %11s %10s %10s %8s %6s\n", "storage", "clients", "leases/s",
	    "raw pairs/s", "raw/leases", "p50 ms", "p99 ms", "warm", "errors");
	for (int s = 0; s < 2; s++) {
		if (!ok[s]) {
			printf("  %-7s (could not run)\n", names[s]);
			continue;
		}
		for (int c = 0; c < 2; c++)
			printf("  %-7s %7d %10.1f %12.1f %10.2fx %10.1f %10.1f %7.0f%% %6ld\n", names[s],
			    clients[c], r[s][c].per_s, raw[s], r[s][c].per_s > 0 ? raw[s] / r[s][c].per_s : 0,
			    r[s][c].p50_ms, r[s][c].p99_ms, r[s][c].warm_pct, r[s][c].errors);
	}
	if (ok[0] && ok[1])
		printf("  memory against disk: %.2fx leases/s with 4 clients, %.2fx with 16; raw %.2fx\n",
		    r[0][0].per_s / r[1][0].per_s, r[0][1].per_s / r[1][1].per_s, raw[0] / raw[1]);
	if (ok[0])
		printf("  goal: >= %.0f leases/s with 4 clients on memory, within %.1fx of raw: %.1f/s, "
		    "%.2fx: %s\n", GOAL_CHURN_PER_S, GOAL_RAW_RATIO, r[0][0].per_s, raw[0] / r[0][0].per_s,
		    r[0][0].per_s >= GOAL_CHURN_PER_S && raw[0] / r[0][0].per_s <= GOAL_RAW_RATIO ? "met"
		    : "MISSED");
	printf("\nsoak window: 16 clients, each leasing a database per test file and holding it %d ms, "
	    "for %.0f s:\n", hold_ms, soak_secs);
	printf("  %-7s %10s %10s %16s %12s %12s %6s\n", "storage", "leases", "leases/s",
	    "served warm", "acquire p50", "p99 (ms)", "errors");
	for (int s = 0; s < 2; s++)
		if (ok[s])
			printf("  %-7s %10ld %10.1f %15.1f%% %12.2f %12.2f %6ld\n", names[s], soak[s].leases,
			    soak[s].per_s, soak[s].warm_pct, soak[s].p50_ms, soak[s].p99_ms, soak[s].errors);
	if (ok[0])
		printf("  goal: >= %.0f%% served warm at 16 clients on memory: %.1f%%: %s\n",
		    GOAL_WARM_PCT, soak[0].warm_pct, soak[0].warm_pct >= GOAL_WARM_PCT ? "met" : "MISSED");
	for (int s = 0; s < 2; s++)
		test_rm_pg_state(dirs[s]);
	return ok[0] && ok[1] ? 0 : -1;
}

int
main(void)
{
	const char *env = getenv("FXB_BENCH_SECS");
	double secs = env && atof(env) > 0 ? atof(env) : 5;
	const char *soak_env = getenv("FXB_BENCH_SOAK_SECS"), *hold_env = getenv("FXB_BENCH_HOLD_MS");
	double soak_secs = soak_env && atof(soak_env) > 0 ? atof(soak_env) : 20;
	int hold_ms = hold_env && atoi(hold_env) > 0 ? atoi(hold_env) : 250;
	const char *d = getenv("FXB_TEST_LOG_DIR");
	struct bbroker b;
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(state_dir, sizeof state_dir, "%s/fxb-bench-pg-%d", d && *d ? d : "/tmp",
	    (int)getpid());
	if (mkdir(state_dir, 0755) == -1 && errno != EEXIST) {
		fprintf(stderr, "bench_pg: %s: %s\n", state_dir, strerror(errno));
		return 1;
	}
	printf("== PostgreSQL fixtures (bench_pg) ==\n");
	printf("embedded cluster in %s; fsync, synchronous_commit and full_page_writes off\n",
	    state_dir);
	if (bench_startup() == -1) {
		failed = 1;
		goto out;
	}
	if (bstart(&b, "{\"postgres\": {\"pool\": {\"min_ready\": 4, \"max\": 16}}}") == -1) {
		failed = 1;
		goto out;
	}
	if (bench_builders(&b) == -1)
		failed = 1;
	if (!failed && (build(b.c, "bench-small", small_sql) == -1 ||
	    bench_warm(&b, "bench-small") == -1))
		failed = 1;
	bstop(&b);
	if (!failed && bench_storage(secs, soak_secs, hold_ms) == -1)
		failed = 1;
	if (!failed && bench_cold() == -1)
		failed = 1;
	/* Without a pool, so that no refill runs beside the measurement. */
	if (!failed) {
		if (bstart(&b, "{\"postgres\": {\"pool\": {\"min_ready\": 0, \"follow_demand\": false}}}")
		    == -1)
			failed = 1;
		else {
			failed = bench_strategies(&b) == -1;
			bstop(&b);
		}
	}
out:
	if (!getenv("FXB_KEEP_PG_STATE"))
		test_rm_pg_state(state_dir);
	return failed;
}
