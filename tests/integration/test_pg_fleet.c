/* test_pg_fleet.c: fleet templates: several real brokers on one PostgreSQL server build each
 * template once between them (broker/fixtures/pg/pg_fleet.c).
 *
 * A host broker runs the embedded cluster (its state directory is the suite's, so initdb
 * runs once) and serves nothing here; brokers A and B have state directories of their own
 * (so instances of their own) and reach the host's cluster over its Unix socket with
 * --pg-url, as brokers on a shared server would. Workers are child processes, each with
 * its own libfxb client, half on A and half on B, all asking at once. Configured templates
 * are built by a shell script that counts its runs in a marker file; the brokers' own count
 * of builds (pg.status template_builds, /metrics fxb_pg_template_builds_total) is summed
 * over the brokers. No test asserts a duration.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#define WAIT_MS 60000
#define WORKERS 8 /* per test: half on each broker */
#define FLEET_TEMPLATES "SELECT count(*) FROM pg_database WHERE datname LIKE " \
	"'fxb\\_fleet\\_t\\_%' AND datistemplate"

struct fb {
	struct test_broker tb;
	struct fxb_client *c;
	char state[512];
};

struct fleet {
	struct fb host, a, b;
	char url[1400];    /* the host cluster's admin conninfo */
	int postmaster;
};

static char scratch[4096];


static const char *
host_state(void)
{
	static char dir[512];

	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/pg-fleet-host-%d", test_log_dir(), (int)getppid());
		mkdir(dir, 0755);
	}
	return dir;
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	char dir[512];

	(void)stats;
	snprintf(dir, sizeof dir, "%s/pg-fleet-host-%d", test_log_dir(), (int)getpid());
	if (!getenv("FXB_KEEP_PG_STATE"))
		test_rm_pg_state(dir);
}


static void
fb_start(struct fb *b, const char *state, const char *cfg, const char *pg_url)
{
	const char *args[16] = { "--state-dir", state, "--grace-ms", "300" };
	size_t n = 4;
	char err[512];
	json_t *st;

	memset(b, 0, sizeof *b);
	snprintf(b->state, sizeof b->state, "%s", state);
	if (cfg) {
		args[n++] = "--config";
		args[n++] = cfg;
	}
	if (pg_url) {
		args[n++] = "--pg-url";
		args[n++] = pg_url;
	}
	args[n] = NULL;
	cr_assert_eq(test_broker_start(&b->tb, args, err, sizeof err), 0, "%s", err);
	CLIENT_NEW(b->c, &b->tb, NULL, NULL);
	st = test_call_json(b->c, "pg.status", NULL);
	cr_assert_not_null(st, "pg.status: %s", fxb_client_errmsg(b->c));
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "ready",
	    "PostgreSQL did not start: %s; see %s", json_string_value(json_object_get(st, "error")),
	    b->tb.log);
	json_decref(st);
}

static void
fb_stop(struct fb *b)
{
	fxb_client_free(b->c);
	b->c = NULL;
	if (b->tb.pid > 0)
		BROKER_STOP(&b->tb);
}

/* A fresh state directory for a broker on the shared server (its own instance). */
static void
own_state(char *dir, size_t n, const char *what)
{
	snprintf(dir, n, "%s/pg-fleet-%s-%d-%llu", test_log_dir(), what, (int)getpid(),
	    (unsigned long long)clock_ms());
	test_rm_pg_state(dir);
	cr_assert_eq(mkdir(dir, 0755), 0);
}

/* The host (embedded cluster), then A and B on its server, all with config cfg. */
static void
fleet_start(struct fleet *f, const char *cfg)
{
	char sa[512], sb[512];
	json_t *st, *emb;

	memset(f, 0, sizeof *f);
	fb_start(&f->host, host_state(), NULL, NULL);
	st = test_call_json(f->host.c, "pg.status", NULL);
	emb = json_object_get(st, "embedded");
	cr_assert(json_is_object(emb));
	cr_assert_not(json_is_true(json_object_get(st, "fleet_templates")),
	    "the embedded cluster's templates are its instance's");
	snprintf(f->url, sizeof f->url, "host=%s port=%d user=postgres dbname=postgres",
	    json_string_value(json_object_get(emb, "socket_dir")),
	    (int)json_integer_value(json_object_get(emb, "port")));
	f->postmaster = (int)json_integer_value(json_object_get(emb, "pid"));
	json_decref(st);
	own_state(sa, sizeof sa, "a");
	own_state(sb, sizeof sb, "b");
	fb_start(&f->a, sa, cfg, f->url);
	fb_start(&f->b, sb, cfg, f->url);
	st = test_call_json(f->a.c, "pg.status", NULL);
	cr_assert(json_is_true(json_object_get(st, "fleet_templates")), "a broker on postgres.url "
	    "does not build fleet templates");
	json_decref(st);
}

static void
fleet_stop(struct fleet *f)
{
	fb_stop(&f->a);
	fb_stop(&f->b);
	fb_stop(&f->host);
	test_rm_pg_state(f->a.state);
	test_rm_pg_state(f->b.state);
}

static PGconn *
admin(const struct fleet *f)
{
	PGconn *c = PQconnectdb(f->url);

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static long
qnum(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? atol(PQgetvalue(r, 0, 0)) : -1;

	PQclear(r);
	return v;
}

/* A member of b's pg.status (-1 when b is down). */
static long
status_num(struct fb *b, const char *member)
{
	json_t *st = b->c ? test_call_json(b->c, "pg.status", NULL) : NULL;
	long v = st ? (long)json_integer_value(json_object_get(st, member)) : -1;

	json_decref(st);
	return v;
}

/* fxb_pg_template_builds_total in b's /metrics. */
static long
metric_builds(struct fb *b)
{
	char *body = NULL, *p;
	long v = -1;

	cr_assert_eq(http_get(b->tb.port, "/metrics", &body), 200);
	if ((p = strstr(body, "\nfxb_pg_template_builds_total ")))
		v = atol(p + strlen("\nfxb_pg_template_builds_total "));
	free(body);
	return v;
}

/* Whether b sees template name being built by another broker. */
static int
building_elsewhere(struct fb *b, const char *name)
{
	json_t *st = test_call_json(b->c, "pg.status", NULL), *t;
	size_t i;
	int yes = 0;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), name))
			yes |= json_is_true(json_object_get(t, "building_elsewhere"));
	json_decref(st);
	return yes;
}

static int
count_lines(const char *path, const char *word)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		n += !word || !strncmp(line, word, strlen(word));
	fclose(f);
	return n;
}

static const char *
marker_path(const char *name)
{
	char *path = NULL;

	cr_assert_geq(asprintf(&path, "%s/pg-fleet-marker-%s-%d-%llu", test_log_dir(), name, (int)getpid(),
	    (unsigned long long)clock_ms()), 0);
	unlink(path);
	return path;
}

/* A config naming template "app": its migrate script says "start" in marker, sleeps
 * sleep_s (so that everyone asks while it builds), makes a table with three rows (or
 * fails, when fail is set) and says "done". Returns its path (static). */
static const char *
config(const char *marker, double sleep_s, int fail)
{
	static char path[1024];
	char script[1024], text[4096];

	snprintf(text, sizeof text,
	    "#!/bin/sh\nset -e\necho start >> \"$2\"\nsleep %.1f\n%s"
	    "psql -X -q -v ON_ERROR_STOP=1 \"$1\" -c \"CREATE TABLE items (id int); "
	    "INSERT INTO items VALUES (1), (2), (3)\"\necho done >> \"$2\"\n", sleep_s,
	    fail ? "echo 'ERROR: the migration broke on purpose' >&2; exit 3\n" : "");
	cr_assert_eq(temp_file(script, sizeof script, "migrate.sh", text), 0);
	chmod(script, 0755);
	snprintf(text, sizeof text,
	    "{\"postgres\": {\"pool\": {\"min_ready\": 0}, \"acquire_timeout_ms\": 60000,"
	    " \"templates\": {\"app\": {\"migrate\": [\"%s\", \"{url}\", \"%s\"], \"inputs\": [\"%s\"]}}}}",
	    script, marker, script);
	cr_assert_eq(temp_file(path, sizeof path, "config.json", text), 0);
	return path;
}

struct worker_arg {
	const char *urls[2];     /* A's and B's */
	const char *hash;        /* a client hash to ensure and build, or NULL: template "app" */
	const char *marker;      /* client builds: "built" per build */
	int expect_fail;         /* the acquire must fail with PG_TEMPLATE_BUILD_FAILED */
	int hold;                /* a builder says "holding" in marker and hangs (to be killed) */
};

/* In a child, on broker index % 2: for a client hash, pg.template.ensure (and build it when
 * told to); then lease a clone of the template and count its rows. 0 when all went as
 * expected. */
static int
worker(int index, void *argp)
{
	struct worker_arg *a = argp;
	struct fxb_options o = { .url = a->urls[index % 2], .client = "fleet-worker",
		.timeout_ms = 120000 };
	struct fxb_fixture_spec spec = { "db", "postgres", NULL };
	struct fxb_client *c = NULL;
	struct fxb_lease *l = NULL;
	char params[256], options[256], *res = NULL;
	PGconn *db;
	PGresult *r;
	int ok;

	if (fxb_client_new(&c, &o, NULL, 0) != 0)
		return 10;
	if (a->hash) {
		const char *state;
		json_t *j;
		snprintf(params, sizeof params, "{\"hash\": \"%s\", \"wait_ms\": 120000}", a->hash);
		if (fxb_call(c, "pg.template.ensure", params, &res) != 0)
			return 11;
		j = json_loads(res, 0, NULL);
		free(res);
		if (!(state = json_string_value(json_object_get(j, "state"))))
			return 12;
		if (!strcmp(state, "build")) {
			int fd;
			db = PQconnectdb(json_string_value(json_object_get(j, "url")));
			if (PQstatus(db) != CONNECTION_OK)
				return 13;
			if (a->hold) {
				PQclear(PQexec(db, "CREATE TABLE items (id int)"));
				if ((fd = open(a->marker, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0 ||
				    write(fd, "holding\n", 8) != 8)
					return 21;
				close(fd);
				sleep(120);
				return 22;
			}
			r = PQexec(db, "SELECT pg_sleep(1); CREATE TABLE items (id int); "
			    "INSERT INTO items VALUES (1), (2), (3)");
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
			PQfinish(db);
			if (!ok)
				return 14;
			if ((fd = open(a->marker, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0 ||
			    write(fd, "built\n", 6) != 6)
				return 15;
			close(fd);
			snprintf(params, sizeof params, "{\"hash\": \"%s\"}", a->hash);
			if (fxb_call(c, "pg.template.finish", params, NULL) != 0)
				return 16;
		}
		json_decref(j);
	}
	snprintf(options, sizeof options, "{\"template\": \"%s\"}", a->hash ? a->hash : "app");
	spec.options_json = options;
	if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0) {
		ok = a->expect_fail && !strcmp(fxb_client_errname(c), "PG_TEMPLATE_BUILD_FAILED") &&
		    strstr(fxb_client_errmsg(c), "broke on purpose");
		fxb_client_free(c);
		return ok ? 0 : 17;
	}
	if (a->expect_fail)
		return 18;
	db = PQconnectdb(fxb_lease_field(l, "db", "url"));
	if (PQstatus(db) != CONNECTION_OK)
		return 19;
	r = PQexec(db, "SELECT count(*) FROM items");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 3;
	PQclear(r);
	PQfinish(db);
	fxb_lease_release(c, l);
	fxb_client_free(c);
	return ok ? 0 : 20;
}

Test(fleet, workers_on_two_brokers_get_one_build_of_a_configured_and_of_a_client_template)
{
	const char *marker = marker_path("app"), *built = marker_path("client");
	struct worker_arg a = { .marker = built };
	struct fleet f;
	char hash[128];
	PGconn *c;
	long before;
	int failed;

	fleet_start(&f, config(marker, 1.0, 0));
	c = admin(&f);
	before = qnum(c, FLEET_TEMPLATES);
	a.urls[0] = f.a.tb.url;
	a.urls[1] = f.b.tb.url;
	failed = children_run(WORKERS, worker, &a, 180000);
	cr_assert_eq(failed, 0, "%d of %d workers failed; see %s and %s", failed, WORKERS,
	    f.a.tb.log, f.b.tb.log);
	cr_assert_eq(count_lines(marker, "done"), 1, "template app was built %d times",
	    count_lines(marker, "done"));
	cr_assert_eq(status_num(&f.a, "template_builds") + status_num(&f.b, "template_builds"), 1);
	cr_assert_eq(status_num(&f.a, "templates_adopted") + status_num(&f.b, "templates_adopted"), 1,
	    "the broker that did not build app did not take it from the other");

	snprintf(hash, sizeof hash, "fleet-%d-%llu", (int)getpid(), (unsigned long long)clock_ms());
	a.hash = hash;
	failed = children_run(WORKERS, worker, &a, 180000);
	cr_assert_eq(failed, 0, "%d of %d client-build workers failed; see %s and %s", failed,
	    WORKERS, f.a.tb.log, f.b.tb.log);
	cr_assert_eq(count_lines(built, "built"), 1, "the client template was built %d times",
	    count_lines(built, "built"));
	cr_assert_eq(metric_builds(&f.a) + metric_builds(&f.b), 2, "builds in /metrics: %ld + %ld",
	    metric_builds(&f.a), metric_builds(&f.b));

	/* One template database each on the server, named alike for every broker (the suite's
	 * other tests leave theirs); no build left over. */
	cr_assert_eq(qnum(c, FLEET_TEMPLATES), before + 2);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_fleet\\_b\\_%'"),
	    0);
	PQfinish(c);
	fleet_stop(&f);
}

Test(fleet, a_builder_killed_mid_build_passes_the_build_to_the_other_broker)
{
	const char *marker = marker_path("killed");
	struct worker_arg a = { 0 };
	struct fleet f;
	uint64_t end;
	pid_t first, waiter;
	PGconn *c;

	fleet_start(&f, config(marker, 4.0, 0));
	/* A starts building app... */
	a.urls[0] = a.urls[1] = f.a.tb.url;
	first = child_spawn(worker, 0, &a);
	end = clock_ms() + WAIT_MS;
	while (count_lines(marker, "start") < 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(count_lines(marker, "start"), 1, "A did not start building; see %s", f.a.tb.log);
	/* ...B's worker waits for A's build... */
	a.urls[0] = a.urls[1] = f.b.tb.url;
	waiter = child_spawn(worker, 1, &a);
	end = clock_ms() + WAIT_MS;
	while (!building_elsewhere(&f.b, "app") && clock_ms() < end)
		sleep_ms(20);
	cr_assert(building_elsewhere(&f.b, "app"), "B does not wait for A's build; see %s", f.b.tb.log);
	/* ...and A dies mid-build. */
	fxb_client_free(f.a.c);
	f.a.c = NULL;
	test_broker_kill(&f.a.tb);
	child_wait(first, WAIT_MS); /* its broker is gone: it fails */
	cr_assert_eq(child_wait(waiter, 120000), 0, "B's worker did not get the template; see %s",
	    f.b.tb.log);
	cr_assert_eq(count_lines(marker, "start"), 2, "the build did not pass to B");
	cr_assert_eq(count_lines(marker, "done"), 1);
	cr_assert_eq(status_num(&f.b, "template_builds"), 1);
	c = admin(&f);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_fleet\\_b\\_%'"),
	    0, "the dead build's database is left");
	PQfinish(c);
	fleet_stop(&f);
}

Test(fleet, a_failed_build_is_reported_to_the_callers_of_every_broker)
{
	const char *marker = marker_path("failing");
	struct worker_arg a = { .expect_fail = 1 };
	struct fleet f;
	int failed;

	fleet_start(&f, config(marker, 1.0, 1));
	a.urls[0] = f.a.tb.url;
	a.urls[1] = f.b.tb.url;
	failed = children_run(4, worker, &a, 180000);
	cr_assert_eq(failed, 0, "%d of 4 workers did not see the build's failure; see %s and %s",
	    failed, f.a.tb.log, f.b.tb.log);
	cr_assert_eq(count_lines(marker, "start"), 1, "the failing migration ran %d times",
	    count_lines(marker, "start"));
	cr_assert_eq(status_num(&f.a, "template_builds") + status_num(&f.b, "template_builds"), 1);
	snprintf(scratch, sizeof scratch, "%s", f.a.tb.log);
	fleet_stop(&f);
}

/* Builds client template hash on b (ensure, a table, finish). */
static void
build_on(struct fb *b, const char *hash)
{
	char params[256];
	PGconn *db;
	PGresult *r;
	json_t *j;

	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(b->c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(b->c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	r = PQexec(db, "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(db);
	json_decref(j);
	cr_assert_eq(fxb_call(b->c, "pg.template.finish", params, NULL), 0, "%s",
	    fxb_client_errmsg(b->c));
}

static int
knows(struct fb *b, const char *hash)
{
	json_t *st = test_call_json(b->c, "pg.status", NULL), *t;
	size_t i;
	int yes = 0;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		yes |= !strcmp(json_string_value(json_object_get(t, "template")), hash);
	json_decref(st);
	return yes;
}

static struct fxb_lease *
lease_of(struct fb *b, const char *hash)
{
	char options[256];
	struct fxb_fixture_spec spec = { "db", "postgres", options };
	struct fxb_lease *l = NULL;

	snprintf(options, sizeof options, "{\"template\": \"%s\"}", hash);
	cr_assert_eq(fxb_lease_acquire(b->c, &spec, 1, NULL, &l), 0, "%s", fxb_client_errmsg(b->c));
	return l;
}

static long
rows(const struct fxb_lease *l)
{
	PGconn *db = PQconnectdb(fxb_lease_field(l, "db", "url"));
	long n;

	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	n = qnum(db, "SELECT count(*) FROM items");
	PQfinish(db);
	return n;
}

Test(fleet, one_brokers_gc_keeps_a_template_another_broker_has_clones_of)
{
	char cfg[1024], old[128], fresh[128];
	struct fxb_lease *l1, *l2;
	struct fleet f;
	uint64_t end;
	PGconn *c;

	/* A keeps one client template and lets an unused one's pool go after a second. */
	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", "{\"postgres\": {\"pool\": "
	    "{\"min_ready\": 0, \"idle_timeout_ms\": 1000}, \"gc\": {\"keep\": 1}}}"), 0);
	fleet_start(&f, cfg);
	snprintf(old, sizeof old, "fleet-gc-old-%d-%llu", (int)getpid(), (unsigned long long)clock_ms());
	snprintf(fresh, sizeof fresh, "fleet-gc-new-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	build_on(&f.a, old);
	/* B never asked for it: its acquire finds it on the server. */
	l1 = lease_of(&f.b, old);
	cr_assert_eq(rows(l1), 3);
	cr_assert_eq(status_num(&f.b, "templates_adopted"), 1);
	sleep_ms(2000); /* unused on A for longer than its idle timeout */
	build_on(&f.a, fresh);
	/* A's GC lets the old one go (keep 1), but B holds a clone of it: it stays on the
	 * server, and A only forgets it. */
	end = clock_ms() + WAIT_MS;
	while (knows(&f.a, old) && clock_ms() < end)
		sleep_ms(50);
	cr_assert_not(knows(&f.a, old), "A's GC did not let the old template go; see %s", f.a.tb.log);
	c = admin(&f);
	snprintf(scratch, sizeof scratch, "SELECT count(*) FROM pg_database WHERE datname = "
	    "'fxb_fleet_t_' || (SELECT substr(datname, 13) FROM pg_database WHERE datname LIKE "
	    "'fxb\\_fleet\\_t\\_%%' AND shobj_description(oid, 'pg_database')::json->>'key' = '%s')",
	    old);
	cr_assert_eq(qnum(c, scratch), 1, "A's GC dropped a template B has a clone of; see %s",
	    f.a.tb.log);
	PQfinish(c);
	cr_assert_eq(rows(l1), 3);
	l2 = lease_of(&f.b, old);
	cr_assert_eq(rows(l2), 3);
	fxb_lease_release(f.b.c, l1);
	fxb_lease_release(f.b.c, l2);
	fleet_stop(&f);
}

/* Template ids are a 64-bit hash of the key, and a client chooses its key: a key whose id
 * is another template's (as if chosen to collide) is refused that template's data. The
 * collision is made here by giving A's finished template another key in its comment. */
Test(fleet, a_template_whose_id_is_another_keys_is_not_adopted)
{
	char hash[128], params[256];
	struct fleet f;
	PGresult *r;
	PGconn *c;
	json_t *j;

	fleet_start(&f, NULL);
	snprintf(hash, sizeof hash, "fleet-collide-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	build_on(&f.a, hash);
	c = admin(&f);
	snprintf(scratch, sizeof scratch, "SELECT format('COMMENT ON DATABASE %%I IS %%L', datname, "
	    "jsonb_set(shobj_description(oid, 'pg_database')::jsonb, '{key}', '\"someone-else\"')) "
	    "FROM pg_database WHERE datname LIKE 'fxb\\_fleet\\_t\\_%%' AND "
	    "shobj_description(oid, 'pg_database')::json->>'key' = '%s'", hash);
	r = PQexec(c, scratch);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "A's template of %s is not on the server", hash);
	snprintf(scratch, sizeof scratch, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	r = PQexec(c, scratch);
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);

	/* B has never seen the hash: it finds a finished template under its id, built for
	 * another key, and refuses it. */
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(f.b.c, "pg.template.ensure", params);
	cr_assert_null(j, "B adopted a template built for another key: %s",
	    j ? json_dumps(j, 0) : "");
	cr_assert_str_eq(fxb_client_errname(f.b.c), "PG_TEMPLATE_BUILD_FAILED", "%s",
	    fxb_client_errmsg(f.b.c));
	cr_assert_not_null(strstr(fxb_client_errmsg(f.b.c), "collision"), "%s",
	    fxb_client_errmsg(f.b.c));
	cr_assert_eq(status_num(&f.b, "templates_adopted"), 0);
	fleet_stop(&f);
}

Test(fleet, a_client_build_passes_on_when_its_broker_is_killed_and_wait_ms_0_does_not_wait)
{
	const char *marker = marker_path("client-killed");
	struct worker_arg holder = { .marker = marker, .hold = 1 }, next = { .marker = marker };
	struct fleet f;
	char hash[128];
	uint64_t end;
	pid_t first, waiter;
	json_t *j;

	fleet_start(&f, config(marker_path("unused"), 0, 0));
	snprintf(hash, sizeof hash, "fleet-killed-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	holder.hash = next.hash = hash;
	holder.urls[0] = holder.urls[1] = f.a.tb.url;
	next.urls[0] = next.urls[1] = f.b.tb.url;
	first = child_spawn(worker, 0, &holder);
	end = clock_ms() + WAIT_MS;
	while (count_lines(marker, "holding") < 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(count_lines(marker, "holding"), 1, "no client on A became the builder");
	/* On B, wait_ms 0 does not wait for A's build. */
	snprintf(scratch, sizeof scratch, "{\"hash\": \"%s\", \"wait_ms\": 0}", hash);
	cr_assert_null(test_call_json(f.b.c, "pg.template.ensure", scratch));
	cr_assert_str_eq(fxb_client_errname(f.b.c), "PG_TEMPLATE_WAIT_TIMEOUT", "%s",
	    fxb_client_errmsg(f.b.c));
	waiter = child_spawn(worker, 1, &next);
	end = clock_ms() + WAIT_MS;
	while (!building_elsewhere(&f.b, hash) && clock_ms() < end)
		sleep_ms(20);
	cr_assert(building_elsewhere(&f.b, hash), "B does not wait for A's build; see %s", f.b.tb.log);
	fxb_client_free(f.a.c);
	f.a.c = NULL;
	test_broker_kill(&f.a.tb);
	kill(first, SIGKILL);
	child_wait(first, WAIT_MS);
	cr_assert_eq(child_wait(waiter, 120000), 0, "B's client did not build and lease; see %s",
	    f.b.tb.log);
	cr_assert_eq(count_lines(marker, "built"), 1);
	cr_assert_eq(status_num(&f.b, "template_builds"), 1);
	/* Now it is ready for anyone at once. */
	j = test_call_json(f.b.c, "pg.template.ensure", scratch);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(f.b.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "ready");
	json_decref(j);
	fleet_stop(&f);
}

Test(fleet, a_broker_waiting_for_another_ones_build_stops_cleanly)
{
	const char *marker = marker_path("stop-waiting");
	struct worker_arg a = { 0 };
	struct fleet f;
	uint64_t end;
	pid_t builder, waiter;
	PGconn *c;

	fleet_start(&f, config(marker, 6.0, 0));
	a.urls[0] = a.urls[1] = f.a.tb.url;
	builder = child_spawn(worker, 0, &a);
	end = clock_ms() + WAIT_MS;
	while (count_lines(marker, "start") < 1 && clock_ms() < end)
		sleep_ms(20);
	a.urls[0] = a.urls[1] = f.b.tb.url;
	waiter = child_spawn(worker, 1, &a);
	end = clock_ms() + WAIT_MS;
	while (!building_elsewhere(&f.b, "app") && clock_ms() < end)
		sleep_ms(20);
	cr_assert(building_elsewhere(&f.b, "app"), "B does not wait for A's build; see %s", f.b.tb.log);
	/* B stops while it waits in the lock queue: at once, exit 0, its wait gone from the
	 * server; A's build goes on. */
	fb_stop(&f.b);
	cr_assert_eq(count_lines(marker, "done"), 0, "B's stop waited for A's build to finish");
	cr_assert_neq(child_wait(waiter, WAIT_MS), 0, "B's worker got a lease from a stopped broker");
	c = admin(&f);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
	    "'fxb: waiting for the build of %'"), 0, "B's wait is still on the server");
	PQfinish(c);
	cr_assert_eq(child_wait(builder, 120000), 0, "A's worker did not get its lease; see %s",
	    f.a.tb.log);
	cr_assert_eq(count_lines(marker, "done"), 1);
	fleet_stop(&f);
}

/* The state ("absent", "building", "ready") of template name on b, or "" when b does not
 * know it (static). */
static const char *
tpl_state(struct fb *b, const char *name)
{
	static char state[32];
	json_t *st = test_call_json(b->c, "pg.status", NULL), *t;
	size_t i;

	state[0] = '\0';
	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), name))
			snprintf(state, sizeof state, "%s", json_string_value(json_object_get(t, "state")));
	json_decref(st);
	return state;
}

/* The shared server restarts (an immediate shutdown of the host's postmaster, which its
 * broker starts again) while a client of A builds: A's build lock goes with it, so A gives
 * the build up (its builder hears PG_UNAVAILABLE) before B may be elected, and B's build
 * of the same hash is the only one and is not disturbed. */
Test(fleet, a_server_restart_during_a_client_build_gives_it_up_before_another_broker_builds)
{
	struct fleet f;
	char hash[128], params[256];
	struct fxb_lease *l;
	uint64_t end;
	PGconn *c, *db;
	json_t *j, *st;
	int old;

	fleet_start(&f, config(marker_path("unused"), 0, 0));
	snprintf(hash, sizeof hash, "fleet-restart-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(f.a.c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(f.a.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	PQclear(PQexec(db, "CREATE TABLE half_done (id int)"));
	json_decref(j);

	/* The restart: every backend ends at once, the election's and the builder's too. */
	old = f.postmaster;
	cr_assert_eq(kill(old, SIGQUIT), 0);
	end = clock_ms() + WAIT_MS;
	while ((kill(old, 0) == 0 || PQping(f.url) != PQPING_OK) && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(PQping(f.url), PQPING_OK, "PostgreSQL did not come back; see %s", f.host.tb.log);
	st = test_call_json(f.host.c, "pg.status", NULL);
	cr_assert_neq(json_integer_value(json_object_get(json_object_get(st, "embedded"), "pid")), old);
	json_decref(st);
	PQfinish(db);

	/* A gives its build up on its own: nobody asked it anything since. */
	end = clock_ms() + WAIT_MS;
	while (!strcmp(tpl_state(&f.a, hash), "building") && clock_ms() < end)
		sleep_ms(50);
	cr_assert_str_neq(tpl_state(&f.a, hash), "building", "A still builds a template whose "
	    "build lock it lost; see %s", f.a.tb.log);
	cr_assert_neq(fxb_call(f.a.c, "pg.template.finish", params, NULL), 0,
	    "A finished a build it gave up");
	cr_assert_str_eq(fxb_client_errname(f.a.c), "PG_UNAVAILABLE", "%s", fxb_client_errmsg(f.a.c));
	cr_assert(strstr(fxb_client_errmsg(f.a.c), "given up"), "%s", fxb_client_errmsg(f.a.c));

	/* B builds it now, once, undisturbed; A adopts B's build. */
	build_on(&f.b, hash);
	cr_assert_str_eq(tpl_state(&f.b, hash), "ready");
	l = lease_of(&f.a, hash);
	cr_assert_eq(rows(l), 3, "A's lease is not B's build");
	fxb_lease_release(f.a.c, l);
	cr_assert_eq(status_num(&f.a, "templates_adopted"), 1);
	c = admin(&f);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_fleet\\_b\\_%'"),
	    0, "a build database is left");
	PQfinish(c);
	fleet_stop(&f);
}

/* A broker that lost its build lock but has not noticed yet (stopped here with SIGSTOP,
 * its lock's backend ended on the server) keeps its build database: B, elected meanwhile,
 * refuses to drop a build whose comment names a living broker, and builds once A has
 * given it up. */
Test(fleet, a_build_database_is_not_dropped_under_a_living_brokers_builder)
{
	struct fleet f;
	char hash[128], params[256], build_db[128];
	uint64_t end;
	PGconn *c, *db;
	json_t *j;
	char *bdb;

	fleet_start(&f, config(marker_path("unused"), 0, 0));
	snprintf(hash, sizeof hash, "fleet-live-%d-%llu", (int)getpid(), (unsigned long long)clock_ms());
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(f.a.c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(f.a.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	snprintf(build_db, sizeof build_db, "%s", json_string_value(json_object_get(j, "database")));
	cr_assert(build_db[0], "ensure named no build database");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	PQclear(PQexec(db, "CREATE TABLE half_done (id int)"));
	PQfinish(db);
	json_decref(j);

	/* A freezes; its build lock's backend ends (as in a restart), its instance's lock
	 * stays: to the server, A is alive and no one holds the build lock. */
	c = admin(&f);
	cr_assert_eq(kill(f.a.tb.pid, SIGSTOP), 0);
	PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
	    "application_name LIKE 'fxb: building %'"));
	end = clock_ms() + WAIT_MS;
	while (qnum(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
	    "'fxb: building %'") != 0 && clock_ms() < end)
		sleep_ms(20);
	/* B is elected and refuses to drop A's build. */
	cr_assert_null(test_call_json(f.b.c, "pg.template.ensure", params), "B became the builder while A's "
	    "build database is its builder's");
	cr_assert_str_eq(fxb_client_errname(f.b.c), "PG_UNAVAILABLE", "%s", fxb_client_errmsg(f.b.c));
	bdb = PQescapeLiteral(c, build_db, strlen(build_db));
	snprintf(scratch, sizeof scratch, "SELECT count(*) FROM pg_database WHERE datname = %s", bdb);
	PQfreemem(bdb);
	cr_assert_eq(qnum(c, scratch), 1, "A's build database was dropped under its builder");
	cr_assert_eq(kill(f.a.tb.pid, SIGCONT), 0);

	/* A notices, gives its build up; then B builds it. */
	end = clock_ms() + WAIT_MS;
	while (!strcmp(tpl_state(&f.a, hash), "building") && clock_ms() < end)
		sleep_ms(50);
	cr_assert_str_neq(tpl_state(&f.a, hash), "building", "see %s", f.a.tb.log);
	end = clock_ms() + WAIT_MS;
	for (;;) {
		j = test_call_json(f.b.c, "pg.template.ensure", params);
		if (j || clock_ms() >= end)
			break;
		cr_assert_str_eq(fxb_client_errname(f.b.c), "PG_UNAVAILABLE", "%s",
		    fxb_client_errmsg(f.b.c));
		sleep_ms(100); /* A's abandon job may not have run yet */
	}
	cr_assert_not_null(j, "B never built it: %s; see %s", fxb_client_errmsg(f.b.c), f.b.tb.log);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	cr_assert_eq(qnum(db, "SELECT count(*) FROM pg_tables WHERE tablename = 'half_done'"), 0,
	    "B builds in A's half-done database");
	PQclear(PQexec(db, "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)"));
	PQfinish(db);
	json_decref(j);
	cr_assert_eq(fxb_call(f.b.c, "pg.template.finish", params, NULL), 0, "%s",
	    fxb_client_errmsg(f.b.c));
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_fleet\\_b\\_%'"),
	    0, "a build database is left");
	PQfinish(c);
	fleet_stop(&f);
}

/* B's only waiter for A's build gives up (its wait_ms passes): B's election leaves the
 * server's lock queue at once, not when A's build ends, and tells the fleet nothing: the
 * only news of the template is A's "ready". */
Test(fleet, an_election_no_one_waits_for_leaves_the_lock_queue_and_says_nothing)
{
	struct fleet f;
	char hash[128], params[256];
	struct fxb_lease *l;
	uint64_t end;
	PGconn *c, *db;
	PGnotify *n;
	json_t *j;
	int ready = 0, other = 0;

	fleet_start(&f, config(marker_path("unused"), 0, 0));
	c = admin(&f);
	PQclear(PQexec(c, "LISTEN fxb_templates"));
	snprintf(hash, sizeof hash, "fleet-unwait-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(f.a.c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(f.a.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	json_decref(j);

	/* B waits for A's build a moment, and gives up. */
	snprintf(scratch, sizeof scratch, "{\"hash\": \"%s\", \"wait_ms\": 1500}", hash);
	cr_assert_null(test_call_json(f.b.c, "pg.template.ensure", scratch));
	cr_assert_str_eq(fxb_client_errname(f.b.c), "PG_TEMPLATE_WAIT_TIMEOUT", "%s",
	    fxb_client_errmsg(f.b.c));
	end = clock_ms() + WAIT_MS;
	while (qnum(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
	    "'fxb: waiting for the build of %'") != 0 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
	    "'fxb: waiting for the build of %'"), 0, "B's election still waits for A's build, "
	    "which no one on B waits for; see %s", f.b.tb.log);
	cr_assert_str_eq(tpl_state(&f.a, hash), "building");

	/* A finishes; B, asked again, finds it built. */
	PQclear(PQexec(db, "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)"));
	PQfinish(db);
	cr_assert_eq(fxb_call(f.a.c, "pg.template.finish", params, NULL), 0, "%s",
	    fxb_client_errmsg(f.a.c));
	l = lease_of(&f.b, hash);
	cr_assert_eq(rows(l), 3);
	fxb_lease_release(f.b.c, l);
	PQclear(PQexec(c, "SELECT 1"));
	PQconsumeInput(c);
	while ((n = PQnotifies(c))) {
		const char *sp = strchr(n->extra, ' ');
		if (sp && !strcmp(sp + 1, "ready"))
			ready++;
		else
			other++;
		PQfreemem(n);
	}
	cr_assert_eq(ready, 1, "A's \"ready\" was heard %d times", ready);
	cr_assert_eq(other, 0, "%d other notifications (a released election spoke)", other);
	PQfinish(c);
	fleet_stop(&f);
}

/* waiting_ensures of template name on b (-1 when b does not know it). */
static long
tpl_waiting(struct fb *b, const char *name)
{
	json_t *st = test_call_json(b->c, "pg.status", NULL), *t;
	size_t i;
	long n = -1;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), name))
			n = (long)json_integer_value(json_object_get(t, "waiting_ensures"));
	json_decref(st);
	return n;
}

/* postgres.elections caps the elections with a connection of their own: with 1, a second
 * template's election waits (its ensure parked) until the first build ends, and no more
 * than one election connection is open. */
Test(fleet, postgres_elections_caps_the_election_connections_and_queues_the_rest)
{
	const char *built = marker_path("queued");
	struct worker_arg a = { .marker = built };
	struct fleet f;
	char cfg[1024], first[128], second[128], params[256];
	uint64_t end;
	pid_t child;
	PGconn *c, *db;
	json_t *j;

	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", "{\"postgres\": {\"pool\": "
	    "{\"min_ready\": 0}, \"elections\": 1}}"), 0);
	fleet_start(&f, cfg);
	snprintf(first, sizeof first, "fleet-cap1-%d-%llu", (int)getpid(), (unsigned long long)clock_ms());
	snprintf(second, sizeof second, "fleet-cap2-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", first);
	j = test_call_json(f.a.c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(f.a.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	json_decref(j);

	/* Another client of A asks for a second template: its election queues. */
	a.hash = second;
	a.urls[0] = a.urls[1] = f.a.tb.url;
	child = child_spawn(worker, 0, &a);
	end = clock_ms() + WAIT_MS;
	while (tpl_waiting(&f.a, second) != 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(tpl_waiting(&f.a, second), 1, "the second ensure is not parked; see %s",
	    f.a.tb.log);
	c = admin(&f);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
	    "'fxb: %'"), 1, "more election connections than postgres.elections; see %s", f.a.tb.log);
	cr_assert_eq(count_lines(built, "built"), 0);

	/* The first build ends: the second election starts, its client builds and leases. */
	PQclear(PQexec(db, "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2), (3)"));
	PQfinish(db);
	cr_assert_eq(fxb_call(f.a.c, "pg.template.finish", params, NULL), 0, "%s",
	    fxb_client_errmsg(f.a.c));
	cr_assert_eq(child_wait(child, 120000), 0, "the queued election's client did not build and "
	    "lease; see %s", f.a.tb.log);
	cr_assert_eq(count_lines(built, "built"), 1);
	PQfinish(c);
	fleet_stop(&f);
}

/* A --pg-url server that accepts TCP connections and never answers (a server gone
 * silent): the broker's connection gets connect_timeout although the URL sets none, so
 * its start fails (and says why) instead of waiting for ever; the broker stops at once. */
Test(fleet, a_pg_url_without_connect_timeout_gets_one)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	char state[512], url[256], err[512];
	const char *args[8] = { "--state-dir", state, "--pg-url", url, NULL };
	struct fb b;
	json_t *st;
	struct fxb_options o = { .client = "silent", .timeout_ms = 60000 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof url, "host=127.0.0.1 port=%d user=postgres dbname=postgres",
	    ntohs(sa.sin_port));
	own_state(state, sizeof state, "silent");
	memset(&b, 0, sizeof b);
	cr_assert_eq(test_broker_start(&b.tb, args, err, sizeof err), 0, "%s", err);
	/* pg.status answers once the start is over: after connect_timeout. */
	o.url = b.tb.url;
	cr_assert_eq(fxb_client_new(&b.c, &o, err, sizeof err), 0, "%s", err);
	/* pg.status waits for the start, which fails. */
	st = test_call_json(b.c, "pg.status", NULL);
	cr_assert_null(st, "PostgreSQL started on a silent server");
	cr_assert_str_eq(fxb_client_errname(b.c), "PG_UNAVAILABLE", "%s; see %s",
	    fxb_client_errmsg(b.c), b.tb.log);
	cr_assert(strstr(fxb_client_errmsg(b.c), "timeout expired"), "%s", fxb_client_errmsg(b.c));
	fb_stop(&b);
	close(fd);
	test_rm_pg_state(state);
}
