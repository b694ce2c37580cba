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
 *   5. lease churn with 4 clients: leases per second, and how often a clone was ready.
 * Figures are printed, never asserted: the machine is shared and noisy. FXB_BENCH_SECS
 * sets the churn duration (default 5 s); the state directory is removed at the end.
 */
#include <errno.h>
#include <ftw.h>
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
#define CHURN_CLIENTS 4
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

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

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

static json_t *
call(struct fxb_client *c, const char *method, const char *params)
{
	char *res = NULL;
	json_t *j;

	if (fxb_call(c, method, params, &res) != 0)
		return NULL;
	j = json_loads(res, 0, NULL);
	free(res);
	return j;
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
	const char *args[] = { "--state-dir", state_dir, "--log-level", "warn", "--grace-ms", "0",
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
	st = call(b->c, "pg.status", NULL);
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
	if (!(j = call(c, "pg.template.ensure", params)))
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
	json_t *st = call(c, "pg.status", NULL), *t;
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
	json_t *st = call(c, "pg.status", NULL), *t;
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

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n ? v[n / 2] : 0;
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
	    "{\"min_ready\": 0}}}", strategy);
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

/* ---- 5. Churn ---- */

struct churner {
	const char *url;
	const char *hash;
	double secs;
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
			continue;
		}
		if (w->nlat < w->cap)
			w->lat[w->nlat++] = now_ns() - t0;
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

static int
bench_churn(struct bbroker *b, const char *hash, double secs, const char *strategy)
{
	struct churner w[CHURN_CLIENTS];
	pthread_t th[CHURN_CLIENTS];
	long leases = 0, errors = 0, ready0 = pool_member(b->c, hash, "served_ready"),
	    waited0 = pool_member(b->c, hash, "served_waited"), ready, waited;
	uint64_t *all = calloc(CHURN_CLIENTS * 100000, sizeof *all);
	size_t nall = 0;

	if (!all)
		return -1;
	warm_up(b->c, hash, 4);
	ready0 = pool_member(b->c, hash, "served_ready");
	waited0 = pool_member(b->c, hash, "served_waited");
	for (int i = 0; i < CHURN_CLIENTS; i++) {
		w[i] = (struct churner){ .url = b->tb.url, .hash = hash, .secs = secs,
			.lat = all + (size_t)i * 100000, .cap = 100000 };
		pthread_create(&th[i], NULL, churn_thread, &w[i]);
	}
	for (int i = 0; i < CHURN_CLIENTS; i++) {
		pthread_join(th[i], NULL);
		leases += w[i].leases;
		errors += w[i].errors;
	}
	for (int i = 0; i < CHURN_CLIENTS; i++) {
		memmove(all + nall, w[i].lat, w[i].nlat * sizeof *all);
		nall += w[i].nlat;
	}
	ready = pool_member(b->c, hash, "served_ready") - ready0;
	waited = pool_member(b->c, hash, "served_waited") - waited0;
	printf("  %-9s %9.1f %12.1f %12.1f %14.0f%% %8ld\n", strategy, (double)leases / secs,
	    percentile_us(all, nall, 50) / 1000.0, percentile_us(all, nall, 99) / 1000.0,
	    ready + waited ? 100.0 * (double)ready / (double)(ready + waited) : 0, errors);
	free(all);
	return 0;
}

int
main(void)
{
	const char *env = getenv("FXB_BENCH_SECS");
	double secs = env && atof(env) > 0 ? atof(env) : 5;
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
	if (!failed) {
		printf("\nlease churn, %d clients acquiring and releasing for %.0f s (template: 2 tables, "
		    "50 rows; pool min_ready 4 and warm at the start, refill parallelism 2; every "
		    "release drops a database, which forces a checkpoint):\n", CHURN_CLIENTS, secs);
		printf("  %-9s %9s %12s %12s %15s %8s\n", "strategy", "leases/s", "acquire p50",
		    "p99 (ms)", "served ready", "errors");
		if (bench_churn(&b, "bench-small", secs, "FILE_COPY") == -1)
			failed = 1;
	}
	bstop(&b);
	if (!failed && bench_cold() == -1)
		failed = 1;
	/* Without a pool, so that no refill runs beside the measurement. */
	if (!failed) {
		if (bstart(&b, "{\"postgres\": {\"pool\": {\"min_ready\": 0}}}") == -1)
			failed = 1;
		else {
			failed = bench_strategies(&b) == -1;
			bstop(&b);
		}
	}
out:
	if (!getenv("FXB_KEEP_PG_STATE"))
		nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed;
}
