/* test_pg.c: PostgreSQL fixtures through the real broker and its embedded PostgreSQL cluster.
 *
 * Every test starts the broker binary with one state directory shared by the whole suite
 * (so initdb runs once and each later start reuses the cluster), talks to it through
 * libfxb, and checks what happened inside PostgreSQL through libpq: as the cluster's
 * superuser over its Unix socket (paths from pg.status), and as the leases' own roles over
 * TCP with the URLs the broker hands out. A configured template ("app") is built by a small
 * shell script that counts its runs in a marker file. Waits poll with generous deadlines and
 * no test asserts a duration. Every test stops its brokers and checks that their postmaster
 * is gone; the suite's state directory is removed at the end.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#define WAIT_MS 30000
#define SEED_ROWS 3
#define TMPFS_MAGIC_ 0x01021994 /* linux/magic.h's TMPFS_MAGIC */

/* The migration every build here runs: a table, seed rows, and a row per run. */
static const char migration_sql[] =
    "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);"
    "INSERT INTO items (name) VALUES ('apple'), ('pear'), ('plum');"
    "CREATE TABLE runs (at timestamptz DEFAULT now());"
    "INSERT INTO runs DEFAULT VALUES;";

struct pgb {
	struct test_broker tb;
	struct fxb_client *c;
	char socket_dir[1024];
	char instance[32];
	char prefix[64];
	char data_dir[1024];
	char storage[16];
	char memory_dir[1024];
	int port;
	int postmaster;
	int initialised;
};

static char scratch[4096];


/* The suite's state directory: one per run of this binary (criterion's runner is every
 * test's parent), readable by the cluster's unprivileged user. */
static const char *
shared_state(void)
{
	static char dir[512];

	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/pg-state-%d", test_log_dir(), (int)getppid());
		mkdir(dir, 0755);
	}
	return dir;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A state directory and the memory data of its clusters (harness.c). */
static void
rm_state(const char *state)
{
	test_rm_pg_state(state);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	char dir[512];

	(void)stats;
	/* In the runner: getpid() is what the tests saw as their parent. */
	snprintf(dir, sizeof dir, "%s/pg-state-%d", test_log_dir(), (int)getpid());
	if (!getenv("FXB_KEEP_PG_STATE"))
		rm_state(dir);
}

/* Writes the migrate script and a config naming template "app" (migrate counts its runs
 * in marker), with pool as "postgres.pool" and extra added to the "postgres" object (may
 * be ""). Returns the config's path in a static buffer. */
static const char *
config_pool(const char *marker, const char *pool, const char *extra)
{
	static char path[1024];
	char script[1024], text[4096];

	snprintf(text, sizeof text,
	    "#!/bin/sh\n# A template build for the tests: migrate, seed, count the run.\nset -e\n"
	    "psql -X -q -v ON_ERROR_STOP=1 \"$1\" -c \"%s\"\necho run >> \"$2\"\n", migration_sql);
	cr_assert_eq(temp_file(script, sizeof script, "migrate.sh", text), 0);
	chmod(script, 0755);
	snprintf(text, sizeof text,
	    "{\"postgres\": {\"pool\": %s, \"acquire_timeout_ms\": 20000,%s"
	    " \"templates\": {\"app\": {\"migrate\": [\"%s\", \"{url}\", \"%s\"], \"inputs\": [\"%s\"]}}}}",
	    pool, extra, script, marker, script);
	cr_assert_eq(temp_file(path, sizeof path, "config.json", text), 0);
	return path;
}

static const char *
config(const char *marker, const char *extra)
{
	return config_pool(marker, "{\"min_ready\": 1}", extra);
}

/* A fresh marker file's path (the test process keeps it until it exits). */
static const char *
marker_path(const char *name)
{
	char *path = NULL;

	cr_assert_geq(asprintf(&path, "%s/pg-marker-%s-%d", test_log_dir(), name, (int)getpid()), 0);
	unlink(path);
	return path;
}

static int
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;

	if (!f)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}


static void
read_status(struct pgb *p)
{
	json_t *st = test_call_json(p->c, "pg.status", NULL), *emb;

	cr_assert_not_null(st, "pg.status: %s", fxb_client_errmsg(p->c));
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "ready",
	    "PostgreSQL did not start: %s; see %s",
	    json_string_value(json_object_get(st, "error")), p->tb.log);
	snprintf(p->instance, sizeof p->instance, "%s",
	    json_string_value(json_object_get(st, "instance")));
	snprintf(p->prefix, sizeof p->prefix, "%s", json_string_value(json_object_get(st, "prefix")));
	if ((emb = json_object_get(st, "embedded")) && json_is_object(emb)) {
		snprintf(p->socket_dir, sizeof p->socket_dir, "%s",
		    json_string_value(json_object_get(emb, "socket_dir")));
		snprintf(p->data_dir, sizeof p->data_dir, "%s",
		    json_string_value(json_object_get(emb, "data_dir")));
		p->port = (int)json_integer_value(json_object_get(emb, "port"));
		p->postmaster = (int)json_integer_value(json_object_get(emb, "pid"));
		p->initialised = json_is_true(json_object_get(emb, "initialised"));
		snprintf(p->storage, sizeof p->storage, "%s",
		    json_string_value(json_object_get(emb, "storage")));
		snprintf(p->memory_dir, sizeof p->memory_dir, "%s",
		    json_is_object(json_object_get(emb, "memory")) ? json_string_value(
		    json_object_get(json_object_get(emb, "memory"), "dir")) : "");
	}
	json_decref(st);
}

/* Starts a broker on state with config (may be NULL) and extra flags (NULL-terminated, may
 * be NULL), connects a client and waits for PostgreSQL. */
static void
pgb_start(struct pgb *p, const char *state, const char *cfg, const char *const *extra)
{
	const char *args[32] = { "--state-dir", state, "--grace-ms", "300" };
	size_t n = 4;
	char err[512];

	memset(p, 0, sizeof *p);
	if (cfg) {
		args[n++] = "--config";
		args[n++] = cfg;
	}
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert_eq(test_broker_start(&p->tb, args, err, sizeof err), 0, "%s", err);
	CLIENT_NEW(p->c, &p->tb, NULL, NULL);
	read_status(p);
}

static int
alive(int pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

/* Waits until pid is gone; 0 when it is. */
static int
wait_gone(int pid)
{
	uint64_t end = clock_ms() + WAIT_MS;

	while (alive(pid) && clock_ms() < end)
		sleep_ms(20);
	return alive(pid) ? -1 : 0;
}

static void
pgb_stop(struct pgb *p)
{
	fxb_client_free(p->c);
	p->c = NULL;
	BROKER_STOP(&p->tb);
	if (p->postmaster)
		cr_assert_eq(wait_gone(p->postmaster), 0, "postgres (pid %d) outlived its broker",
		    p->postmaster);
}

static PGconn *
connect_admin(const struct pgb *p)
{
	char ci[1400];
	PGconn *c;

	snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=postgres", p->socket_dir,
	    p->port);
	c = PQconnectdb(ci);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
	return c;
}

/* Runs sql with one text parameter (NULL: none); returns the first value as a number. */
static long
qnum(PGconn *c, const char *sql, const char *param)
{
	const char *params[1] = { param };
	PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
	long v;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static int
exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	snprintf(scratch, sizeof scratch, "%s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

static int
db_exists(PGconn *c, const char *name)
{
	return qnum(c, "SELECT count(*) FROM pg_database WHERE datname = $1", name) > 0;
}

static int
role_exists(PGconn *c, const char *name)
{
	return qnum(c, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name) > 0;
}

/* Waits until the database and the role are both gone; 0 when they are. */
static int
wait_dropped(PGconn *c, const char *db, const char *role)
{
	uint64_t end = clock_ms() + WAIT_MS;

	while ((db_exists(c, db) || role_exists(c, role)) && clock_ms() < end)
		sleep_ms(20);
	return db_exists(c, db) || role_exists(c, role) ? -1 : 0;
}

/* Objects of prefix that are not finished templates or their owner roles; their names go
 * to scratch for the failure message. */
static long
leftovers(PGconn *c, const char *prefix)
{
	const char *params[1] = { prefix };
	PGresult *r = PQexecParams(c, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) "
	    "AND NOT (datistemplate AND substr(datname, length($1) + 1, 2) = 't_') UNION ALL "
	    "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) "
	    "AND substr(rolname, length($1) + 1, 2) <> 'o_'", 1, NULL, params, NULL, NULL, 0);
	long n;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	n = PQntuples(r);
	scratch[0] = '\0';
	for (long i = 0; i < n; i++)
		snprintf(scratch + strlen(scratch), sizeof scratch - strlen(scratch), " %s",
		    PQgetvalue(r, (int)i, 0));
	PQclear(r);
	return n;
}

static long
objects(PGconn *c, const char *prefix)
{
	return qnum(c, "SELECT (SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)) + "
	    "(SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1))", prefix);
}

static int
acquire(struct fxb_client *c, const char *options, struct fxb_lease **l)
{
	struct fxb_fixture_spec spec = { "db", "postgres", options };
	struct fxb_acquire_options o = { .wait_ms = 0 };

	*l = NULL;
	return fxb_lease_acquire(c, &spec, 1, &o, l);
}

#define ACQUIRE(c, options, l)                                                           \
	cr_assert_eq(acquire((c), (options), (l)), 0, "acquire %s: %s", (options) ? (options) : "{}", \
	    fxb_client_errmsg(c))

static const char *
field(const struct fxb_lease *l, const char *name)
{
	const char *v = fxb_lease_field(l, "db", name);

	cr_assert_not_null(v, "the lease has no %s", name);
	return v;
}

static PGconn *
connect_url(const char *url)
{
	return PQconnectdb(url);
}

/* A conninfo for user and password of lease l to database db (over TCP). */
static PGconn *
connect_as(const struct fxb_lease *l, const char *db)
{
	char ci[1024];

	snprintf(ci, sizeof ci, "host=%s port=%s user=%s password=%s dbname=%s connect_timeout=10",
	    field(l, "host"), field(l, "port"), field(l, "user"), field(l, "password"), db);
	return PQconnectdb(ci);
}

static long pool_member(struct fxb_client *c, const char *hash, const char *member);

/* ---- Isolation and credentials ---- */

/* A lease's role cannot list the cluster's databases, roles or their comments. */
static void
assert_catalogs_hidden(PGconn *c, const char *who)
{
	static const char *const queries[] = {
		"SELECT count(*) FROM pg_database", "SELECT count(*) FROM pg_roles",
		"SELECT count(*) FROM pg_user", "SELECT count(*) FROM pg_auth_members",
		"SELECT count(*) FROM pg_shdescription", "SELECT count(*) FROM pg_stat_database",
	};

	for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
		cr_assert_not(exec_ok(c, queries[i]), "%s: %s succeeded", who, queries[i]);
		cr_assert(strstr(scratch, "permission denied") != NULL, "%s: %s: %s", who, queries[i],
		    scratch);
	}
	/* What its own session needs still works. */
	cr_assert(exec_ok(c, "SELECT current_database(), current_user"), "%s: %s", who, scratch);
}

/* What a lease's role may change of its template's owner role (its password, as a
 * member that can SET ROLE to it) lets no one log in as it: builds log in as a login role
 * of their own, gone once the build is. */
static void
assert_owner_role_is_no_use(const struct pgb *p, const struct fxb_lease *l, PGconn *c)
{
	PGconn *admin = connect_admin(p), *x;
	const char *params[1] = { field(l, "user") };
	char owner[128], login[128], *mark, sql[512], ci[1024];
	PGresult *r;

	r = PQexecParams(admin, "SELECT o.rolname FROM pg_auth_members m JOIN pg_roles o ON o.oid = "
	    "m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 AND "
	    "o.rolname LIKE '%\\_o\\_%'", 1, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
	cr_assert_eq(PQntuples(r), 1, "the lease's role is a member of %d owner roles", PQntuples(r));
	snprintf(owner, sizeof owner, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	snprintf(login, sizeof login, "%s", owner);
	cr_assert_not_null(mark = strstr(login, "_o_"));
	mark[1] = 'l';
	cr_assert_eq(qnum(admin, "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND NOT rolcanlogin",
	    owner), 1, "the owner role %s can log in", owner);
	/* As a member it may set the owner's password: no use, the owner cannot log in. */
	snprintf(sql, sizeof sql, "SET ROLE \"%s\"; ALTER ROLE \"%s\" PASSWORD 'stolen'; RESET ROLE",
	    owner, owner);
	(void)exec_ok(c, sql);
	(void)exec_ok(c, "RESET ROLE");
	snprintf(ci, sizeof ci, "host=%s port=%s user=%s password=stolen dbname=%s connect_timeout=10",
	    field(l, "host"), field(l, "port"), owner, field(l, "database"));
	x = PQconnectdb(ci);
	cr_assert_neq(PQstatus(x), CONNECTION_OK, "logged in as the owner role with a password a "
	    "lease set");
	PQfinish(x);
	/* The builds log in as another role, which lives for a build only. */
	cr_assert_eq(qnum(admin, "SELECT count(*) FROM pg_roles WHERE rolname = $1", login), 0,
	    "the build's login role %s outlived the build", login);
	PQfinish(admin);
}

Test(pg, a_leased_role_cannot_reach_another_lease_or_create_databases_or_roles)
{
	const char *marker = marker_path("isolation");
	struct fxb_lease *a, *b, *sa, *sb;
	struct pgb p;
	PGconn *ca, *x;
	char sql[512];

	pgb_start(&p, shared_state(), config(marker, ""), NULL);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &a);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &b);
	cr_assert_str_neq(field(a, "database"), field(b, "database"));
	cr_assert_str_neq(field(a, "user"), field(b, "user"));

	ca = connect_url(field(a, "url"));
	cr_assert_eq(PQstatus(ca), CONNECTION_OK, "%s", PQerrorMessage(ca));
	cr_assert_eq(qnum(ca, "SELECT count(*) FROM items", NULL), SEED_ROWS);
	cr_assert(exec_ok(ca, "CREATE TABLE mine (x int)"), "its own database is writable: %s",
	    scratch);
	cr_assert_not(exec_ok(ca, "CREATE DATABASE sneaky"), "a lease's role created a database");
	cr_assert_not(exec_ok(ca, "CREATE ROLE sneaky"), "a lease's role created a role");
	assert_catalogs_hidden(ca, "a lease of template app");
	/* The template's tables belong to its owner role, which the lease's role is a member
	 * of: it may alter them in its copy. */
	cr_assert(exec_ok(ca, "ALTER TABLE items ADD COLUMN extra int"), "%s", scratch);
	assert_owner_role_is_no_use(&p, a, ca);
	PQfinish(ca);
	{
		/* The empty template's clones too. */
		struct fxb_lease *e;
		ACQUIRE(p.c, NULL, &e);
		x = connect_url(field(e, "url"));
		cr_assert_eq(PQstatus(x), CONNECTION_OK, "%s", PQerrorMessage(x));
		assert_catalogs_hidden(x, "a lease of the empty template");
		PQfinish(x);
		fxb_lease_release(p.c, e);
	}

	/* Another lease's database, the template, the maintenance database: all refused. */
	x = connect_as(a, field(b, "database"));
	cr_assert_neq(PQstatus(x), CONNECTION_OK, "lease a's role connected to lease b's database");
	cr_assert(strstr(PQerrorMessage(x), "permission denied") != NULL, "%s", PQerrorMessage(x));
	PQfinish(x);
	snprintf(sql, sizeof sql, "%st_", p.prefix);
	x = connect_as(a, "postgres");
	cr_assert_neq(PQstatus(x), CONNECTION_OK, "lease a's role connected to database postgres");
	PQfinish(x);

	/* Schema isolation: one database, a schema each, no way into the other. */
	ACQUIRE(p.c, "{\"template\": \"app\", \"isolation\": \"schema\"}", &sa);
	ACQUIRE(p.c, "{\"template\": \"app\", \"isolation\": \"schema\"}", &sb);
	cr_assert_str_eq(field(sa, "database"), field(sb, "database"));
	cr_assert_str_neq(field(sa, "schema"), field(sb, "schema"));
	ca = connect_url(field(sa, "url"));
	cr_assert_eq(PQstatus(ca), CONNECTION_OK, "%s", PQerrorMessage(ca));
	cr_assert_eq(qnum(ca, "SELECT count(*) FROM items", NULL), SEED_ROWS,
	    "the schema holds the template's tables and seed rows");
	cr_assert(exec_ok(ca, "INSERT INTO items (name) VALUES ('fig')"), "%s", scratch);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".items", field(sb, "schema"));
	cr_assert_not(exec_ok(ca, sql), "lease a's role read lease b's schema");
	cr_assert(strstr(scratch, "permission denied") != NULL, "%s", scratch);
	cr_assert_not(exec_ok(ca, "CREATE TABLE public.shared (x int)"),
	    "lease a's role wrote into schema public of the shared database");
	assert_catalogs_hidden(ca, "a lease in schema isolation");
	PQfinish(ca);
	ca = connect_url(field(sb, "url"));
	cr_assert_eq(qnum(ca, "SELECT count(*) FROM items", NULL), SEED_ROWS,
	    "lease b does not see lease a's row");
	PQfinish(ca);

	fxb_lease_release(p.c, a);
	fxb_lease_release(p.c, b);
	fxb_lease_release(p.c, sa);
	fxb_lease_release(p.c, sb);
	pgb_stop(&p);
}

Test(pg, connections_carry_the_lease_id_and_its_connection_limit)
{
	struct fxb_lease *l;
	struct pgb p;
	PGconn *c[3];
	char app[64];
	PGresult *r;

	pgb_start(&p, shared_state(), config(marker_path("limit"), ""), NULL);
	ACQUIRE(p.c, "{\"connections\": 2}", &l);
	c[0] = connect_url(field(l, "url"));
	c[1] = connect_url(field(l, "url"));
	c[2] = connect_url(field(l, "url"));
	cr_assert_eq(PQstatus(c[0]), CONNECTION_OK, "%s", PQerrorMessage(c[0]));
	cr_assert_eq(PQstatus(c[1]), CONNECTION_OK, "%s", PQerrorMessage(c[1]));
	cr_assert_neq(PQstatus(c[2]), CONNECTION_OK, "a third connection passed a limit of 2");
	cr_assert(strstr(PQerrorMessage(c[2]), "too many connections") != NULL, "%s",
	    PQerrorMessage(c[2]));
	r = PQexec(c[0], "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()");
	snprintf(app, sizeof app, "fxb:%s", fxb_lease_id(l));
	cr_assert_str_eq(PQgetvalue(r, 0, 0), app);
	PQclear(r);
	for (int i = 0; i < 3; i++)
		PQfinish(c[i]);
	fxb_lease_release(p.c, l);
	pgb_stop(&p);
}

/* ---- Client-built templates ---- */

struct ensure_arg {
	const char *url;
	const char *hash;
	const char *marker;
	int hold;      /* the builder creates a table, says so, then hangs (to be killed) */
	int want_build; /* 1: must build; -1: must not; 0: either */
};

/* In a child: pg.template.ensure; build when told to; then lease a clone and check it.
 * Returns 0 when all went as expected. */
static int
ensure_child(int index, void *argp)
{
	struct ensure_arg *a = argp;
	struct fxb_options o = { .url = a->url, .client = "ensure-child", .timeout_ms = 60000 };
	struct fxb_fixture_spec spec = { "db", "postgres", NULL };
	struct fxb_client *c = NULL;
	struct fxb_lease *l = NULL;
	char params[256], options[256], *res = NULL;
	const char *state;
	json_t *j;
	PGconn *db;
	int built;

	(void)index;
	if (fxb_client_new(&c, &o, NULL, 0) != 0)
		return 10;
	snprintf(params, sizeof params, "{\"hash\": \"%s\", \"wait_ms\": 60000}", a->hash);
	if (fxb_call(c, "pg.template.ensure", params, &res) != 0)
		return 11;
	j = json_loads(res, 0, NULL);
	free(res);
	state = json_string_value(json_object_get(j, "state"));
	built = state && !strcmp(state, "build");
	if (!state || (a->want_build == 1 && !built) || (a->want_build == -1 && built))
		return 12;
	if (built) {
		db = PQconnectdb(json_string_value(json_object_get(j, "url")));
		if (PQstatus(db) != CONNECTION_OK)
			return 13;
		if (a->hold) {
			/* Half a migration, then nothing: the test kills this process. */
			PQclear(PQexec(db, "CREATE TABLE items (id int)"));
			int fd = open(a->marker, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd < 0 || write(fd, "holding\n", 8) != 8)
				return 14;
			close(fd);
			sleep(60);
			return 15;
		}
		PQclear(PQexec(db, "SELECT pg_sleep(0.3)")); /* others arrive meanwhile */
		if (PQresultStatus(PQexec(db, migration_sql)) != PGRES_COMMAND_OK)
			return 16;
		PQfinish(db);
		{
			int fd = open(a->marker, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd < 0 || write(fd, "built\n", 6) != 6)
				return 17;
			close(fd);
		}
		snprintf(params, sizeof params, "{\"hash\": \"%s\"}", a->hash);
		if (fxb_call(c, "pg.template.finish", params, NULL) != 0)
			return 18;
	}
	json_decref(j);
	snprintf(options, sizeof options, "{\"template\": \"%s\"}", a->hash);
	spec.options_json = options;
	if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0)
		return 19;
	db = PQconnectdb(fxb_lease_field(l, "db", "url"));
	if (PQstatus(db) != CONNECTION_OK)
		return 20;
	{
		PGresult *r = PQexec(db, "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM runs)");
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == SEED_ROWS &&
		    atoi(PQgetvalue(r, 0, 1)) == 1;
		PQclear(r);
		if (!ok)
			return 21;
	}
	PQfinish(db);
	fxb_lease_release(c, l);
	fxb_client_free(c);
	return 0;
}

static void
unique_hash(char *buf, size_t n, const char *what)
{
	snprintf(buf, n, "test-%s-%d-%llu", what, (int)getpid(), (unsigned long long)clock_ms());
}

Test(pg, eight_concurrent_ensures_migrate_once_and_all_get_the_seeded_schema)
{
	char hash[128];
	struct ensure_arg a = { .marker = marker_path("eight"), .want_build = 0 };
	struct pgb p;
	int failed;

	unique_hash(hash, sizeof hash, "eight");
	pgb_start(&p, shared_state(), config(marker_path("eight-app"), ""), NULL);
	a.url = p.tb.url;
	a.hash = hash;
	failed = children_run(8, ensure_child, &a, 120000);
	cr_assert_eq(failed, 0, "%d of 8 callers failed; see %s", failed, p.tb.log);
	cr_assert_eq(count_lines(a.marker), 1, "the migration ran %d times", count_lines(a.marker));
	pgb_stop(&p);
}

static long
template_member(struct fxb_client *c, const char *hash, const char *member)
{
	json_t *st = test_call_json(c, "pg.status", NULL), *t;
	size_t i;
	long v = -1;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), hash))
			v = (long)json_integer_value(json_object_get(t, member));
	json_decref(st);
	return v;
}

Test(pg, the_next_waiter_builds_when_the_builder_is_killed_mid_build)
{
	char hash[128];
	struct ensure_arg holder = { .marker = marker_path("holder"), .hold = 1, .want_build = 1 };
	struct ensure_arg next = { .marker = marker_path("next"), .want_build = 1 };
	struct pgb p;
	json_t *j;
	uint64_t end;
	pid_t a, b;

	unique_hash(hash, sizeof hash, "killed");
	pgb_start(&p, shared_state(), config(marker_path("killed-app"), ""), NULL);
	holder.url = next.url = p.tb.url;
	holder.hash = next.hash = hash;
	a = child_spawn(ensure_child, 0, &holder);
	end = clock_ms() + WAIT_MS;
	while (count_lines(holder.marker) < 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(count_lines(holder.marker), 1, "the first caller never became the builder");
	b = child_spawn(ensure_child, 1, &next);
	end = clock_ms() + WAIT_MS;
	while (template_member(p.c, hash, "waiting_ensures") != 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(template_member(p.c, hash, "waiting_ensures"), 1, "the second caller is not parked");
	kill(a, SIGKILL);
	child_wait(a, WAIT_MS);
	cr_assert_eq(child_wait(b, 60000), 0, "the next waiter did not build and lease the template");
	cr_assert_eq(count_lines(next.marker), 1);
	/* A caller after that gets it at once. */
	snprintf(scratch, sizeof scratch, "{\"hash\": \"%s\", \"wait_ms\": 0}", hash);
	j = test_call_json(p.c, "pg.template.ensure", scratch);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(p.c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "ready");
	json_decref(j);
	pgb_stop(&p);
}

Test(pg, a_builder_that_discards_hands_the_build_on_and_others_may_not_finish_it)
{
	char hash[128], params[256];
	struct fxb_client *other;
	struct pgb p;
	json_t *j;

	unique_hash(hash, sizeof hash, "discard");
	pgb_start(&p, shared_state(), config(marker_path("discard-app"), ""), NULL);
	CLIENT_NEW(other, &p.tb, NULL, NULL);
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(p.c, "pg.template.ensure", params);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	json_decref(j);
	cr_assert_neq(fxb_call(other, "pg.template.finish", params, NULL), 0);
	cr_assert_str_eq(fxb_client_errname(other), "PG_NOT_BUILDER");
	cr_assert_eq(fxb_call(p.c, "pg.template.discard", params, NULL), 0, "%s",
	    fxb_client_errmsg(p.c));
	/* Nobody is building now, so the other client becomes the builder at once. */
	j = test_call_json(other, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(other));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	json_decref(j);
	cr_assert_eq(fxb_call(other, "pg.template.finish", params, NULL), 0, "%s",
	    fxb_client_errmsg(other));
	fxb_client_free(other);
	pgb_stop(&p);
}

/* ---- Release and reclaim ---- */

static int
lease_and_vanish(int index, void *arg)
{
	const char *url = arg;
	struct fxb_options o = { .url = url };
	struct fxb_fixture_spec spec = { "db", "postgres", NULL };
	struct fxb_client *c = NULL;
	struct fxb_lease *l = NULL;
	char path[512];
	FILE *f;

	(void)index;
	if (fxb_client_new(&c, &o, NULL, 0) != 0 || fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0)
		return 1;
	snprintf(path, sizeof path, "%s/pg-vanished-%d", test_log_dir(), (int)getppid());
	if (!(f = fopen(path, "w")))
		return 2;
	fprintf(f, "%s %s\n", fxb_lease_field(l, "db", "database"), fxb_lease_field(l, "db", "user"));
	fclose(f);
	_exit(0); /* no release, no goodbye: the broker must reclaim it */
}

Test(pg, release_and_a_vanished_client_both_drop_the_database_and_the_role)
{
	char db[128], role[128], path[512];
	struct fxb_lease *l;
	struct pgb p;
	PGconn *admin;
	FILE *f;

	pgb_start(&p, shared_state(), config_pool(marker_path("release"), "{\"min_ready\": 2}", ""),
	    NULL);
	admin = connect_admin(&p);
	ACQUIRE(p.c, NULL, &l);
	snprintf(db, sizeof db, "%s", field(l, "database"));
	snprintf(role, sizeof role, "%s", field(l, "user"));
	cr_assert(db_exists(admin, db) && role_exists(admin, role));
	/* Meanwhile the pool fills to min_ready in the background. */
	{
		uint64_t end = clock_ms() + WAIT_MS;
		while (pool_member(p.c, "(none)", "ready") < 2 && clock_ms() < end)
			sleep_ms(20);
		cr_assert_eq(pool_member(p.c, "(none)", "ready"), 2, "the pool did not fill to min_ready");
	}
	cr_assert_eq(fxb_lease_release(p.c, l), 0);
	cr_assert_eq(wait_dropped(admin, db, role), 0, "release left %s or %s behind", db, role);

	cr_assert_eq(child_wait(child_spawn(lease_and_vanish, 0, (void *)p.tb.url), WAIT_MS), 0);
	snprintf(path, sizeof path, "%s/pg-vanished-%d", test_log_dir(), (int)getpid());
	cr_assert_not_null(f = fopen(path, "r"));
	cr_assert_eq(fscanf(f, "%127s %127s", db, role), 2);
	fclose(f);
	unlink(path);
	cr_assert_eq(wait_dropped(admin, db, role), 0, "a vanished client's %s or %s stayed", db,
	    role);
	PQfinish(admin);
	pgb_stop(&p);
}

Test(pg, lease_reset_swaps_in_a_fresh_clone)
{
	struct fxb_lease *l;
	struct pgb p;
	PGconn *admin, *c;
	char old[128], olduser[128], params[256];
	json_t *r, *db;

	pgb_start(&p, shared_state(), config(marker_path("reset"), ""), NULL);
	admin = connect_admin(&p);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l);
	snprintf(old, sizeof old, "%s", field(l, "database"));
	snprintf(olduser, sizeof olduser, "%s", field(l, "user"));
	c = connect_url(field(l, "url"));
	cr_assert(exec_ok(c, "INSERT INTO items (name) VALUES ('dirty')"), "%s", scratch);
	PQfinish(c);
	snprintf(params, sizeof params, "{\"lease\": \"%s\", \"fixture\": \"db\"}", fxb_lease_id(l));
	r = test_call_json(p.c, "lease.reset", params);
	cr_assert_not_null(r, "%s", fxb_client_errmsg(p.c));
	db = json_object_get(json_object_get(r, "fixtures"), "db");
	cr_assert_str_neq(json_string_value(json_object_get(db, "database")), old);
	c = connect_url(json_string_value(json_object_get(db, "url")));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	cr_assert_eq(qnum(c, "SELECT count(*) FROM items", NULL), SEED_ROWS, "the fresh clone is dirty");
	PQfinish(c);
	json_decref(r);
	cr_assert_eq(wait_dropped(admin, old, olduser), 0, "the replaced clone stayed");
	fxb_lease_release(p.c, l);
	PQfinish(admin);
	pgb_stop(&p);
}

/* ---- Configured templates ---- */

Test(pg, a_configured_template_is_built_once_by_the_broker_and_survives_a_restart)
{
	const char *marker = marker_path("configured");
	/* No template GC: the suite's other templates share this state directory and must not
	 * decide whether this one survives the restart. */
	const char *cfg = config(marker, " \"gc\": {\"keep\": 10000},");
	struct fxb_lease *l1, *l2;
	struct pgb p;
	char *body = NULL;
	PGconn *c;

	pgb_start(&p, shared_state(), cfg, NULL);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l1);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l2);
	cr_assert_eq(count_lines(marker), 1, "migrate ran %d times", count_lines(marker));
	c = connect_url(field(l2, "url"));
	cr_assert_eq(qnum(c, "SELECT count(*) FROM items", NULL), SEED_ROWS);
	PQfinish(c);
	cr_assert_eq(http_get(p.tb.port, "/metrics", &body), 200);
	cr_assert_not_null(strstr(body, "fxb_pg_pool{template=\"app\",isolation=\"database\","
	    "state=\"leased\"} 2"), "no per-template pool gauge in /metrics");
	cr_assert_not_null(strstr(body, "fxb_pg_clone_seconds_count{template=\"app\""));
	cr_assert_not_null(strstr(body, "fxb_pg_acquire_wait_seconds_count{template=\"app\""));
	free(body);
	fxb_lease_release(p.c, l1);
	fxb_lease_release(p.c, l2);
	pgb_stop(&p);

	pgb_start(&p, shared_state(), cfg, NULL);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l1);
	cr_assert_eq(count_lines(marker), 1, "the template was built again after a restart");
	fxb_lease_release(p.c, l1);
	pgb_stop(&p);
}

Test(pg, a_failing_migration_fails_the_acquire_with_its_output)
{
	char cfg[1024];
	struct fxb_lease *l;
	struct pgb p;

	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", "{\"postgres\": {\"templates\": "
	    "{\"broken\": {\"migrate\": [\"sh\", \"-c\", \"echo 'ERROR: no such table: widgets' >&2; "
	    "exit 3\"]}}}}"), 0);
	pgb_start(&p, shared_state(), cfg, NULL);
	cr_assert_neq(acquire(p.c, "{\"template\": \"broken\"}", &l), 0);
	cr_assert_str_eq(fxb_client_errname(p.c), "PG_TEMPLATE_BUILD_FAILED");
	cr_assert_not_null(strstr(fxb_client_errmsg(p.c), "no such table: widgets"), "%s",
	    fxb_client_errmsg(p.c));
	pgb_stop(&p);
}

/* ---- Bad input ---- */

Test(pg, bad_input_gets_clear_errors_and_creates_nothing)
{
	static const struct {
		const char *options, *name;
	} bad[] = {
		{ "{\"template\": \"never-built-0000\"}", "PG_TEMPLATE_NOT_FOUND" },
		{ "{\"isolation\": \"table\"}", "INVALID_PARAMS" },
		{ "{\"template\": \"x'; DROP DATABASE postgres; --\"}", "INVALID_PARAMS" },
		{ "{\"template\": \"a\\\"b\"}", "INVALID_PARAMS" },
		{ "{\"connections\": 0}", "INVALID_PARAMS" },
		{ "{\"colour\": \"blue\"}", "INVALID_PARAMS" },
	};
	static const struct {
		const char *method, *params, *name;
	} calls[] = {
		{ "pg.template.ensure", "{\"hash\": \"x'); DROP ROLE postgres; --\"}", "INVALID_PARAMS" },
		{ "pg.template.ensure", "{\"hash\": \"\"}", "INVALID_PARAMS" },
		{ "pg.template.finish", "{\"hash\": \"nobody-builds-this\"}", "PG_NOT_BUILDER" },
		{ "pg.template.discard", "{\"hash\": \"a b\"}", "INVALID_PARAMS" },
	};
	struct fxb_lease *l;
	struct pgb p;
	PGconn *admin;
	long before;

	pgb_start(&p, shared_state(), NULL, NULL);
	admin = connect_admin(&p);
	/* Let the warm pool settle first: its refills are not what this test counts. */
	{
		uint64_t end = clock_ms() + WAIT_MS;
		while ((pool_member(p.c, "(none)", "ready") < 1 ||
		    pool_member(p.c, "(none)", "cloning") != 0 ||
		    pool_member(p.c, "(none)", "dropping") != 0) && clock_ms() < end)
			sleep_ms(50);
	}
	before = objects(admin, p.prefix) + qnum(admin, "SELECT count(*) FROM pg_database", NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_neq(acquire(p.c, bad[i].options, &l), 0, "%s was accepted", bad[i].options);
		cr_assert_str_eq(fxb_client_errname(p.c), bad[i].name, "%s: %s", bad[i].options,
		    fxb_client_errmsg(p.c));
		cr_assert(strlen(fxb_client_errmsg(p.c)) > 10, "no clear message for %s", bad[i].options);
	}
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
		cr_assert_neq(fxb_call(p.c, calls[i].method, calls[i].params, NULL), 0);
		cr_assert_str_eq(fxb_client_errname(p.c), calls[i].name, "%s %s: %s", calls[i].method,
		    calls[i].params, fxb_client_errmsg(p.c));
	}
	cr_assert_eq(objects(admin, p.prefix) + qnum(admin, "SELECT count(*) FROM pg_database", NULL),
	    before, "bad input created something");
	PQfinish(admin);
	pgb_stop(&p);
}

/* ---- Crashes and restarts ---- */

Test(pg, a_broker_killed_with_sigkill_leaves_only_finished_templates_after_a_restart)
{
	static const char other_db[] = "fxb_00000000deadbeef_d_0000000000000000_00000000";
	static const char other_role[] = "fxb_00000000deadbeef_u_0000000000000000_00000000";
	char hash[128], params[256], instance[32];
	struct fxb_lease *l1, *l2;
	struct pgb p;
	PGconn *admin;
	json_t *j;
	int postmaster;

	/* No template GC during the test: what is left must be what the sweep kept. */
	const char *cfg = config(marker_path("sigkill"), " \"gc\": {\"keep\": 10000},");

	unique_hash(hash, sizeof hash, "sigkill");
	pgb_start(&p, shared_state(), cfg, NULL);
	admin = connect_admin(&p);
	/* Another broker instance's objects on the same server. */
	exec_ok(admin, "CREATE DATABASE fxb_00000000deadbeef_d_0000000000000000_00000000");
	exec_ok(admin, "CREATE ROLE fxb_00000000deadbeef_u_0000000000000000_00000000");
	PQfinish(admin);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l1);
	ACQUIRE(p.c, "{\"isolation\": \"schema\"}", &l2);
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(p.c, "pg.template.ensure", params); /* a build left unfinished */
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	json_decref(j);
	admin = connect_admin(&p);
	cr_assert_gt(leftovers(admin, p.prefix), 0, "nothing to sweep: the test proves nothing");
	PQfinish(admin);
	postmaster = p.postmaster;
	snprintf(instance, sizeof instance, "%s", p.instance);
	/* Killed while the session is live: nothing gets the chance to release. */
	test_broker_kill(&p.tb);
	fxb_lease_free(l1);
	fxb_lease_free(l2);
	fxb_client_free(p.c);
	cr_assert_eq(wait_gone(postmaster), 0, "postgres outlived a broker killed with SIGKILL");

	pgb_start(&p, shared_state(), cfg, NULL);
	cr_assert_str_eq(p.instance, instance, "the restarted broker is another instance");
	admin = connect_admin(&p);
	cr_assert_eq(leftovers(admin, p.prefix), 0, "the restart left clones, builds or roles:%s",
	    scratch);
	cr_assert_gt(qnum(admin, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1) "
	    "AND datistemplate", p.prefix), 0, "the finished templates went too");
	cr_assert(db_exists(admin, other_db), "another instance's database was dropped");
	cr_assert(role_exists(admin, other_role), "another instance's role was dropped");
	exec_ok(admin, "DROP DATABASE fxb_00000000deadbeef_d_0000000000000000_00000000");
	exec_ok(admin, "DROP ROLE fxb_00000000deadbeef_u_0000000000000000_00000000");
	PQfinish(admin);
	pgb_stop(&p);
}

struct inflight {
	struct fxb_client *c;
	int rc;
	char name[64];
	char msg[256];
};

static void *
acquire_in_thread(void *arg)
{
	struct inflight *f = arg;
	struct fxb_lease *l = NULL;

	f->rc = acquire(f->c, "{\"connections\": 3}", &l);
	snprintf(f->name, sizeof f->name, "%s", fxb_client_errname(f->c));
	snprintf(f->msg, sizeof f->msg, "%s", fxb_client_errmsg(f->c));
	fxb_lease_free(l);
	return NULL;
}

Test(pg, a_postgresql_restart_fails_leases_in_flight_clearly_and_new_ones_succeed_after)
{
	struct inflight f = { 0 };
	struct fxb_lease *held, *after;
	struct pgb p;
	PGconn *admin, *locker, *c;
	pthread_t th;
	uint64_t end;
	char ci[1400];
	int old;

	pgb_start(&p, shared_state(), NULL, NULL);
	ACQUIRE(p.c, NULL, &held);
	/* A ready clone, so the acquire below goes straight to its ALTER ROLE; with an empty
	 * pool it would wait for a refill (whose CREATE ROLE the lock below also blocks). */
	end = clock_ms() + WAIT_MS;
	while (pool_member(p.c, "(none)", "ready") < 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_geq(pool_member(p.c, "(none)", "ready"), 1, "the pool did not refill");
	/* Hold the role catalog so that the next acquire's ALTER ROLE waits in PostgreSQL. */
	locker = connect_admin(&p);
	cr_assert(exec_ok(locker, "BEGIN; LOCK TABLE pg_authid IN EXCLUSIVE MODE"), "%s", scratch);
	CLIENT_NEW(f.c, &p.tb, NULL, NULL);
	cr_assert_eq(pthread_create(&th, NULL, acquire_in_thread, &f), 0);
	admin = connect_admin(&p);
	end = clock_ms() + WAIT_MS;
	while (qnum(admin, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
	    "AND query LIKE 'ALTER ROLE%CONNECTION LIMIT%'", NULL) == 0 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_lt(clock_ms(), end, "the acquire never reached its ALTER ROLE");
	PQfinish(admin);
	/* An immediate shutdown (a crash, to PostgreSQL): every backend ends at once, so the
	 * waiting ALTER ROLE cannot slip through as the lock holder goes first, as it can in a
	 * fast shutdown. The broker's supervisor starts PostgreSQL again. */
	old = p.postmaster;
	cr_assert_eq(kill(old, SIGQUIT), 0);
	pthread_join(th, NULL);
	PQfinish(locker);
	cr_assert_neq(f.rc, 0, "the acquire in flight succeeded");
	cr_assert_str_eq(f.name, "PG_UNAVAILABLE", "%s", f.msg);
	fxb_client_free(f.c);

	cr_assert_eq(wait_gone(old), 0);
	snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=postgres", p.socket_dir, p.port);
	end = clock_ms() + WAIT_MS;
	while (PQping(ci) != PQPING_OK && clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(PQping(ci), PQPING_OK, "PostgreSQL did not come back");
	ACQUIRE(p.c, "{\"connections\": 3}", &after);
	c = connect_url(field(after, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	/* The lease held across the restart still works, and its release drops it. */
	c = connect_url(field(held, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	snprintf(scratch, sizeof scratch, "%s", field(held, "database"));
	{
		char db[128], role[128];
		snprintf(db, sizeof db, "%s", field(held, "database"));
		snprintf(role, sizeof role, "%s", field(held, "user"));
		fxb_lease_release(p.c, held);
		read_status(&p);
		admin = connect_admin(&p);
		cr_assert_eq(wait_dropped(admin, db, role), 0);
		PQfinish(admin);
	}
	fxb_lease_release(p.c, after);
	pgb_stop(&p);
}

/* Binds 127.0.0.1:port, so that a postgres started on it fails; -1 when taken. */
static int
hold_port(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 || listen(fd, 1) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

Test(pg, no_clone_is_granted_while_the_embedded_postgresql_is_down)
{
	struct fxb_lease *held, *l = NULL, *after = NULL;
	struct pgb p;
	uint64_t end;
	PGconn *c;
	int old, fd = -1, rc;

	pgb_start(&p, shared_state(), NULL, NULL);
	ACQUIRE(p.c, NULL, &held);
	end = clock_ms() + WAIT_MS;
	while (pool_member(p.c, "(none)", "ready") < 1 && clock_ms() < end)
		sleep_ms(20);
	cr_assert_geq(pool_member(p.c, "(none)", "ready"), 1, "the pool did not refill");
	/* A crash of the postmaster; its port held here so that the supervisor's restarts
	 * fail until it is let go: the cluster stays down as long as the test needs. */
	old = p.postmaster;
	cr_assert_eq(kill(old, SIGKILL), 0);
	cr_assert_eq(wait_gone(old), 0);
	end = clock_ms() + WAIT_MS;
	while ((fd = hold_port(p.port)) == -1 && clock_ms() < end)
		sleep_ms(5);
	cr_assert_neq(fd, -1, "port %d stayed taken", p.port);
	rc = acquire(p.c, NULL, &l);
	cr_assert_neq(rc, 0, "a clone was granted while PostgreSQL was down: %s",
	    l ? fxb_lease_field(l, "db", "url") : "");
	cr_assert_str_eq(fxb_client_errname(p.c), "PG_UNAVAILABLE", "%s", fxb_client_errmsg(p.c));
	/* Let it come back: acquires succeed again, and the lease held across works. */
	close(fd);
	end = clock_ms() + WAIT_MS;
	while ((rc = acquire(p.c, NULL, &after)) != 0 && clock_ms() < end)
		sleep_ms(100);
	cr_assert_eq(rc, 0, "no acquire after the restart: %s", fxb_client_errmsg(p.c));
	c = connect_url(field(after, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	c = connect_url(field(held, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	fxb_lease_release(p.c, after);
	fxb_lease_release(p.c, held);
	read_status(&p);
	pgb_stop(&p);
}

/* ---- Embedded mode and a shared server ---- */

Test(pg, embedded_mode_starts_from_an_empty_state_directory_and_again_from_a_used_one)
{
	char dir[512], data[1024];
	struct fxb_lease *l;
	struct pgb p;
	PGconn *c;

	snprintf(dir, sizeof dir, "%s/pg-fresh-%d", test_log_dir(), (int)getpid());
	rm_state(dir);
	cr_assert_eq(mkdir(dir, 0755), 0);
	for (int run = 0; run < 2; run++) {
		pgb_start(&p, dir, NULL, NULL);
		cr_assert_eq(p.initialised, run == 0, "run %d: initdb %s", run,
		    p.initialised ? "ran again" : "did not run");
		if (run == 0)
			snprintf(data, sizeof data, "%s", p.data_dir);
		else
			cr_assert_str_eq(p.data_dir, data, "the second run used another data directory");
		ACQUIRE(p.c, NULL, &l);
		c = connect_url(field(l, "url"));
		cr_assert_eq(PQstatus(c), CONNECTION_OK, "run %d: %s", run, PQerrorMessage(c));
		cr_assert(exec_ok(c, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"), "%s", scratch);
		PQfinish(c);
		fxb_lease_release(p.c, l);
		pgb_stop(&p);
	}
	rm_state(dir);
}

Test(pg, a_broker_on_pg_url_shares_a_server_and_its_clean_stop_leaves_only_templates)
{
	char dir[512], url[1400];
	struct fxb_lease *mine, *theirs;
	struct pgb a, b;
	PGconn *admin, *c;
	json_t *st;

	pgb_start(&a, shared_state(), NULL, NULL);
	ACQUIRE(a.c, NULL, &mine);
	snprintf(dir, sizeof dir, "%s/pg-url-%d", test_log_dir(), (int)getpid());
	rm_state(dir);
	mkdir(dir, 0755);
	snprintf(url, sizeof url, "host=%s port=%d user=postgres dbname=postgres", a.socket_dir, a.port);
	{
		const char *extra[] = { "--pg-url", url, NULL };
		pgb_start(&b, dir, NULL, extra);
	}
	st = test_call_json(b.c, "pg.status", NULL);
	cr_assert_str_eq(json_string_value(json_object_get(st, "mode")), "url");
	json_decref(st);
	cr_assert_str_neq(a.prefix, b.prefix);
	ACQUIRE(b.c, "{\"isolation\": \"database\"}", &theirs);
	c = connect_url(field(theirs, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	fxb_lease_free(theirs);
	fxb_client_free(b.c);
	b.c = NULL;
	BROKER_STOP(&b.tb);

	admin = connect_admin(&a);
	cr_assert_eq(leftovers(admin, b.prefix), 0, "a clean stop left clones or roles:%s", scratch);
	cr_assert(db_exists(admin, field(mine, "database")), "the other broker touched this one's lease");
	c = connect_url(field(mine, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQfinish(c);
	PQfinish(admin);
	fxb_lease_release(a.c, mine);
	pgb_stop(&a);
	rm_state(dir);
}

/* ---- Pools and GC ---- */

static void
build_template(struct fxb_client *c, const char *hash)
{
	char params[256];
	PGconn *db;
	json_t *j;

	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	j = test_call_json(c, "pg.template.ensure", params);
	cr_assert_not_null(j, "%s", fxb_client_errmsg(c));
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = connect_url(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	cr_assert(exec_ok(db, migration_sql), "%s", scratch);
	PQfinish(db);
	json_decref(j);
	cr_assert_eq(fxb_call(c, "pg.template.finish", params, NULL), 0, "%s", fxb_client_errmsg(c));
}

/* A member of a template's database pool in pg.status, or -1 when the template is gone. */
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

Test(pg, idle_pools_shrink_and_templates_beyond_gc_keep_are_dropped)
{
	char old[128], fresh[128], olddb[128];
	struct fxb_lease *l;
	struct pgb p;
	PGconn *admin;
	uint64_t end;

	pgb_start(&p, shared_state(), config_pool(marker_path("gc"),
	    "{\"min_ready\": 1, \"idle_timeout_ms\": 1000}", " \"gc\": {\"keep\": 1},"), NULL);
	admin = connect_admin(&p);
	unique_hash(old, sizeof old, "gc-old");
	build_template(p.c, old);
	{
		char opts[256];
		snprintf(opts, sizeof opts, "{\"template\": \"%s\"}", old);
		cr_assert_eq(acquire(p.c, opts, &l), 0, "%s", fxb_client_errmsg(p.c));
	}
	snprintf(olddb, sizeof olddb, "%s", field(l, "database"));
	fxb_lease_release(p.c, l);
	sleep_ms(10); /* a later use time for the next one */
	unique_hash(fresh, sizeof fresh, "gc-new");
	build_template(p.c, fresh);
	/* Unused for idle_timeout_ms, the old pool empties, and with keep 1 the old template
	 * goes; the new one stays. */
	end = clock_ms() + WAIT_MS;
	while (pool_member(p.c, old, "state") != -1 && clock_ms() < end)
		sleep_ms(50);
	cr_assert_eq(pool_member(p.c, old, "ready"), -1, "the old template was not dropped");
	cr_assert_geq(pool_member(p.c, fresh, "ready"), 0, "the newest template was dropped");
	{
		/* Client-built templates left: the newest only (the empty one is the broker's). */
		json_t *st = test_call_json(p.c, "pg.status", NULL), *t;
		size_t i, n = 0;
		json_array_foreach(json_object_get(st, "templates"), i, t)
			n += !json_is_true(json_object_get(t, "configured")) &&
			    !json_is_true(json_object_get(t, "empty"));
		json_decref(st);
		cr_assert_eq(n, 1, "%zu client-built templates kept with gc.keep 1", n);
	}
	cr_assert_not(db_exists(admin, olddb));
	PQfinish(admin);
	pgb_stop(&p);
}

Test(pg, the_global_cap_holds_acquires_back_with_a_clear_error)
{
	struct fxb_lease *a, *b;
	struct pgb p;
	char cfg[1024];

	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", "{\"postgres\": {\"pool\": "
	    "{\"min_ready\": 0, \"global_max\": 1}, \"acquire_timeout_ms\": 3000}}"), 0);
	pgb_start(&p, shared_state(), cfg, NULL);
	ACQUIRE(p.c, NULL, &a);
	cr_assert_neq(acquire(p.c, NULL, &b), 0, "a second clone passed a global cap of 1");
	cr_assert_str_eq(fxb_client_errname(p.c), "PG_POOL_EXHAUSTED", "%s", fxb_client_errmsg(p.c));
	cr_assert_not_null(strstr(fxb_client_errmsg(p.c), "1 of 1 clones"), "%s",
	    fxb_client_errmsg(p.c));
	fxb_lease_release(p.c, a);
	/* The released clone is dropped first; then there is room again. */
	{
		uint64_t end = clock_ms() + WAIT_MS;
		int rc;
		while ((rc = acquire(p.c, NULL, &b)) != 0 && clock_ms() < end)
			sleep_ms(50);
		cr_assert_eq(rc, 0, "%s", fxb_client_errmsg(p.c));
	}
	fxb_lease_release(p.c, b);
	pgb_stop(&p);
}

Test(pg, a_bad_postgres_setting_stops_the_broker_with_the_key_named)
{
	static const struct {
		const char *text, *key;
	} bad[] = {
		{ "{\"postgres\": {\"templates\": {\"app\": {\"migrate\": \"make migrate\"}}}}",
		    "postgres.templates.app.migrate: expected an array of strings" },
		{ "{\"postgres\": {\"pool\": {\"refill_parallelism\": 0}}}", "postgres.pool.refill_parallelism" },
		{ "{\"postgres\": {\"clone_strategy\": \"copy\"}}", "postgres.clone_strategy" },
	};
	char cfg[1024], out[4096];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *const args[] = { "--listen", "127.0.0.1:0", "--config", cfg, NULL };
		int st;
		cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", bad[i].text), 0);
		st = test_broker_run(args, out, sizeof out, 10000);
		cr_assert(st > 0, "%s: exit status %d: %s", bad[i].text, st, out);
		cr_assert_not_null(strstr(out, bad[i].key), "%s: the message does not say %s: %s",
		    bad[i].text, bad[i].key, out);
	}
}

/* ---- Storage: the data directory in memory or on disk ---- */

/* A fresh state directory of this test's own, named after what. */
static void
own_state(char *dir, size_t n, const char *what)
{
	snprintf(dir, n, "%s/pg-%s-%d", test_log_dir(), what, (int)getpid());
	rm_state(dir);
	cr_assert_eq(mkdir(dir, 0755), 0, "%s: %s", dir, strerror(errno));
}

static long
fs_type(const char *path)
{
	struct statfs sf;

	cr_assert_eq(statfs(path, &sf), 0, "statfs %s: %s", path, strerror(errno));
	return (long)sf.f_type;
}

/* A lease of the empty template that connects, writes and reads. */
static void
lease_works(struct pgb *p)
{
	struct fxb_lease *l;
	PGconn *c;

	ACQUIRE(p->c, NULL, &l);
	c = connect_url(field(l, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	cr_assert(exec_ok(c, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"), "%s", scratch);
	cr_assert_eq(qnum(c, "SELECT count(*) FROM t", NULL), 1);
	PQfinish(c);
	fxb_lease_release(p->c, l);
}

/* Waits until p's pools are quiet (nothing leased, made or dropped) and checks that the
 * clones and roles of p's instance are exactly its ready clones (a database and a role
 * each; templates and their owners aside). */
static void
no_leftovers(struct pgb *p)
{
	PGconn *admin = connect_admin(p);
	uint64_t end = clock_ms() + WAIT_MS;
	long busy, ready, left;

	do {
		json_t *st = test_call_json(p->c, "pg.status", NULL), *t;
		size_t i;
		busy = ready = 0;
		json_array_foreach(json_object_get(st, "templates"), i, t) {
			json_t *dp = json_object_get(t, "database_pool");
			json_t *sp = json_object_get(t, "schema_pool");
			ready += 2 * json_integer_value(json_object_get(dp, "ready")) +
			    json_integer_value(json_object_get(sp, "ready"));
			busy += json_integer_value(json_object_get(dp, "leased")) +
			    json_integer_value(json_object_get(dp, "cloning")) +
			    json_integer_value(json_object_get(dp, "dropping"));
		}
		json_decref(st);
		left = leftovers(admin, p->prefix);
		if (!busy && left == ready)
			break;
		sleep_ms(50);
	} while (clock_ms() < end);
	cr_assert_eq(busy, 0, "clones still leased, made or dropped");
	cr_assert_eq(left, ready, "%ld objects besides templates for %ld of ready clones:%s", left,
	    ready, scratch);
	PQfinish(admin);
}

Test(pg, storage_memory_puts_the_data_on_tmpfs_and_storage_disk_keeps_it_on_disk)
{
	char dir[512], cfg[1024], memdir[1024];
	struct pgb p;

	cr_assert_eq(fs_type("/dev/shm"), TMPFS_MAGIC_, "this machine's /dev/shm is not a tmpfs");
	own_state(dir, sizeof dir, "storage");
	/* The default: memory, since /dev/shm is there. */
	pgb_start(&p, dir, NULL, NULL);
	cr_assert_str_eq(p.storage, "memory");
	cr_assert_eq(fs_type(p.data_dir), TMPFS_MAGIC_, "%s is not on tmpfs", p.data_dir);
	cr_assert(p.memory_dir[0] && !strncmp(p.data_dir, p.memory_dir, strlen(p.memory_dir)),
	    "data %s is not in the memory directory %s", p.data_dir, p.memory_dir);
	snprintf(memdir, sizeof memdir, "%s", p.memory_dir);
	lease_works(&p);
	no_leftovers(&p);
	pgb_stop(&p);

	/* Disk: a data directory under the state directory, and the memory copy gone. */
	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json",
	    "{\"postgres\": {\"embedded\": {\"storage\": \"disk\"}}}"), 0);
	pgb_start(&p, dir, cfg, NULL);
	cr_assert_str_eq(p.storage, "disk");
	cr_assert_neq(fs_type(p.data_dir), TMPFS_MAGIC_, "storage disk put %s on tmpfs", p.data_dir);
	cr_assert(!strncmp(p.data_dir, dir, strlen(dir)), "%s is not under %s", p.data_dir, dir);
	cr_assert_eq(access(memdir, F_OK), -1, "%s is still there with storage disk", memdir);
	cr_assert(p.initialised, "the disk cluster was not a new one");
	lease_works(&p);
	no_leftovers(&p);
	pgb_stop(&p);

	/* Explicit memory again: a new memory cluster. */
	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json",
	    "{\"postgres\": {\"embedded\": {\"storage\": \"memory\"}}}"), 0);
	pgb_start(&p, dir, cfg, NULL);
	cr_assert_str_eq(p.storage, "memory");
	cr_assert_eq(fs_type(p.data_dir), TMPFS_MAGIC_);
	pgb_stop(&p);
	rm_state(dir);
	cr_assert_eq(access(memdir, F_OK), -1, "%s outlived its state directory", memdir);
}

Test(pg, with_no_room_in_memory_for_a_new_cluster_unset_storage_is_disk_and_memory_says_why)
{
	char dir[512], cfg[1024], errbuf[512];
	const char *args[] = { "--state-dir", dir, "--grace-ms", "300", "--config", cfg, NULL };
	struct pgb p;
	json_t *st;

	/* A reserve larger than /dev/shm: no new cluster fits beside it. */
	own_state(dir, sizeof dir, "noroom");
	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json",
	    "{\"postgres\": {\"embedded\": {\"memory_reserve_mb\": 1048576}}}"), 0);
	pgb_start(&p, dir, cfg, NULL);
	cr_assert_str_eq(p.storage, "disk", "a new cluster went to a tmpfs without room");
	cr_assert_neq(fs_type(p.data_dir), TMPFS_MAGIC_);
	lease_works(&p);
	pgb_stop(&p);
	rm_state(dir);

	own_state(dir, sizeof dir, "noroom");
	cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", "{\"postgres\": {\"embedded\": "
	    "{\"storage\": \"memory\", \"memory_reserve_mb\": 1048576}}}"), 0);
	memset(&p, 0, sizeof p);
	cr_assert_eq(test_broker_start(&p.tb, args, errbuf, sizeof errbuf), 0, "%s", errbuf);
	CLIENT_NEW(p.c, &p.tb, NULL, NULL);
	/* pg.status waits for the start and fails with it; or, when the start has failed
	 * already, it answers the state "failed" and why. */
	st = test_call_json(p.c, "pg.status", NULL);
	if (st) {
		const char *why = json_string_value(json_object_get(st, "error"));
		cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "failed",
		    "PostgreSQL started with no room for its memory cluster");
		cr_assert(why && strstr(why, "storage is \"memory\""), "%s", why ? why : "no error");
		json_decref(st);
	} else {
		cr_assert_str_eq(fxb_client_errname(p.c), "PG_UNAVAILABLE", "%s",
		    fxb_client_errmsg(p.c));
		cr_assert_not_null(strstr(fxb_client_errmsg(p.c), "storage is \"memory\""), "%s",
		    fxb_client_errmsg(p.c));
	}
	/* The broker goes on serving what does not need PostgreSQL. */
	{
		struct fxb_lease *l;
		cr_assert_eq(test_acquire_ports(p.c, 1, 0, &l), 0, "%s", fxb_client_errmsg(p.c));
		fxb_lease_release(p.c, l);
	}
	pgb_stop(&p);
	rm_state(dir);
}

Test(pg, a_full_memory_cap_fails_clones_clearly_and_the_broker_keeps_serving)
{
	static const char *const full[] = {
		/* The cluster alone holds more than 16 MB: no clone fits under the cap. */
		"{\"postgres\": {\"embedded\": {\"memory_max_mb\": 16}, \"pool\": {\"min_ready\": 1}}}",
		/* A reserve larger than any tmpfs here: no clone leaves it free. */
		"{\"postgres\": {\"embedded\": {\"memory_reserve_mb\": 1048576}, \"pool\": "
		"{\"min_ready\": 1}}}",
	};
	char dir[512], cfg[1024];
	struct fxb_lease *l;
	struct pgb p;

	own_state(dir, sizeof dir, "cap");
	for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
		cr_assert_eq(temp_file(cfg, sizeof cfg, "config.json", full[i]), 0);
		pgb_start(&p, dir, cfg, NULL);
		cr_assert_str_eq(p.storage, "memory");
		cr_assert_neq(acquire(p.c, NULL, &l), 0, "%s: a clone passed the cap", full[i]);
		cr_assert_str_eq(fxb_client_errname(p.c), "PG_STORAGE_FULL", "%s: %s", full[i],
		    fxb_client_errmsg(p.c));
		cr_assert_eq(fxb_client_errcode(p.c), 1208);
		cr_assert_not_null(strstr(fxb_client_errmsg(p.c), "memory_max_mb"), "%s",
		    fxb_client_errmsg(p.c));
		/* The broker keeps serving: ports, pg.status, and the same error again. */
		cr_assert_eq(test_acquire_ports(p.c, 1, 0, &l), 0, "%s", fxb_client_errmsg(p.c));
		fxb_lease_release(p.c, l);
		read_status(&p);
		cr_assert_neq(acquire(p.c, NULL, &l), 0);
		cr_assert_str_eq(fxb_client_errname(p.c), "PG_STORAGE_FULL");
		no_leftovers(&p);
		pgb_stop(&p);
	}
	/* Nothing was damaged: with room, the same cluster serves at once. */
	pgb_start(&p, dir, NULL, NULL);
	cr_assert(!p.initialised, "the cluster was made again");
	lease_works(&p);
	no_leftovers(&p);
	pgb_stop(&p);
	rm_state(dir);
}

Test(pg, templates_on_a_memory_cluster_are_rebuilt_after_a_reboot)
{
	const char *marker = marker_path("reboot");
	const char *cfg = config(marker, "");
	char dir[512], memdir[1024];
	struct fxb_lease *l;
	struct pgb p;
	PGconn *c;

	own_state(dir, sizeof dir, "reboot");
	pgb_start(&p, dir, cfg, NULL);
	cr_assert_str_eq(p.storage, "memory");
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l);
	fxb_lease_release(p.c, l);
	cr_assert_eq(count_lines(marker), 1);
	pgb_stop(&p);

	/* A restart keeps the memory cluster and its template. */
	pgb_start(&p, dir, cfg, NULL);
	cr_assert(!p.initialised);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l);
	fxb_lease_release(p.c, l);
	cr_assert_eq(count_lines(marker), 1, "the template was built again after a restart");
	snprintf(memdir, sizeof memdir, "%s", p.memory_dir);
	pgb_stop(&p);

	/* A reboot empties /dev/shm while the broker is down. */
	rm_tree(memdir);
	cr_assert_eq(access(memdir, F_OK), -1);
	pgb_start(&p, dir, cfg, NULL);
	cr_assert(p.initialised, "no new cluster after the memory was lost");
	cr_assert_str_eq(p.memory_dir, memdir, "the cluster moved to another memory directory");
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l);
	cr_assert_eq(count_lines(marker), 2, "migrate ran %d times in all", count_lines(marker));
	c = connect_url(field(l, "url"));
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	cr_assert_eq(qnum(c, "SELECT count(*) FROM items", NULL), SEED_ROWS);
	PQfinish(c);
	fxb_lease_release(p.c, l);
	no_leftovers(&p);
	pgb_stop(&p);
	rm_state(dir);
}

/* ---- Pacing: the pool follows demand ---- */

struct churn {
	const char *url;
	int secs;
	int hold_ms; /* how long each lease is held, as a test file would */
};

static int
churn_child(int index, void *arg)
{
	struct churn *ch = arg;
	struct fxb_options o = { .url = ch->url, .timeout_ms = 60000 };
	struct fxb_client *c = NULL;
	uint64_t end = clock_ms() + (uint64_t)ch->secs * 1000;
	int leases = 0;

	(void)index;
	if (fxb_client_new(&c, &o, NULL, 0) != 0)
		return 2;
	while (clock_ms() < end) {
		struct fxb_lease *l;
		if (acquire(c, "{\"template\": \"app\"}", &l) != 0) {
			fxb_client_free(c);
			return 3;
		}
		if (ch->hold_ms)
			sleep_ms(ch->hold_ms);
		fxb_lease_release(c, l);
		leases++;
	}
	fxb_client_free(c);
	return leases > 0 ? 0 : 4;
}

static json_t *
app_pool(struct fxb_client *c)
{
	json_t *st = test_call_json(c, "pg.status", NULL), *t, *out = NULL;
	size_t i;

	json_array_foreach(json_object_get(st, "templates"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "template")), "app"))
			out = json_incref(json_object_get(t, "database_pool"));
	json_decref(st);
	return out;
}

static long
member(json_t *pool, const char *name)
{
	return (long)json_integer_value(json_object_get(pool, name));
}

/* Runs four clients for ch's time, sampling the pool; widens the maxima in seen. */
struct seen {
	long total, target, refill_lo, refill_hi;
};

static void
churn_phase(struct pgb *p, struct churn *ch, struct seen *seen)
{
	pid_t kids[4];
	json_t *pool, *st;

	ch->url = p->tb.url;
	for (int i = 0; i < 4; i++)
		cr_assert_gt(kids[i] = child_spawn(churn_child, i, ch), 0);
	for (uint64_t end = clock_ms() + (uint64_t)ch->secs * 1000; clock_ms() < end;) {
		long total, r;
		cr_assert_not_null(pool = app_pool(p->c));
		total = member(pool, "ready") + member(pool, "leased") + member(pool, "cloning") +
		    member(pool, "dropping");
		seen->total = total > seen->total ? total : seen->total;
		seen->target = member(pool, "target") > seen->target ? member(pool, "target")
		    : seen->target;
		json_decref(pool);
		st = test_call_json(p->c, "pg.status", NULL);
		r = (long)json_integer_value(json_object_get(json_object_get(st, "pool"), "refill_now"));
		json_decref(st);
		seen->refill_hi = r > seen->refill_hi ? r : seen->refill_hi;
		seen->refill_lo = r < seen->refill_lo ? r : seen->refill_lo;
		sleep_ms(50);
	}
	for (int i = 0; i < 4; i++)
		cr_assert_eq(child_wait(kids[i], WAIT_MS), 0, "client %d failed", i);
}

Test(pg, a_pool_serving_cold_grows_with_demand_within_its_caps)
{
	const char *marker = marker_path("pace");
	/* No pool to begin with: every acquire waits for its clone. */
	const char *cfg = config_pool(marker, "{\"min_ready\": 0, \"max\": 8, "
	    "\"refill_parallelism\": 1, \"max_refill_parallelism\": 2}", "");
	struct churn flood = { .secs = 3 }, files = { .secs = 5, .hold_ms = 100 };
	struct seen seen = { .refill_lo = 1000 };
	long waited0, ready0;
	struct fxb_lease *l;
	struct pgb p;
	json_t *pool;

	pgb_start(&p, shared_state(), cfg, NULL);
	ACQUIRE(p.c, "{\"template\": \"app\"}", &l);
	fxb_lease_release(p.c, l);
	pool = app_pool(p.c);
	cr_assert_not_null(pool);
	cr_assert_eq(member(pool, "served_ready"), 0, "min_ready 0 served a ready clone");
	json_decref(pool);

	/* Four clients taking leases back to back: more than the refills can keep up with, so
	 * more refills run at once, up to their cap. */
	churn_phase(&p, &flood, &seen);
	cr_log_info("flood: target up to %ld, pool up to %ld of 8, refills at once %ld..%ld",
	    seen.target, seen.total, seen.refill_lo, seen.refill_hi);
	cr_assert_eq(seen.refill_hi, 2, "refills at once did not rise to max_refill_parallelism");

	/* Four clients holding each lease 100 ms, as test files do: the pool, served cold at
	 * first, keeps clones ready for them. */
	cr_assert_not_null(pool = app_pool(p.c));
	waited0 = member(pool, "served_waited");
	ready0 = member(pool, "served_ready");
	json_decref(pool);
	churn_phase(&p, &files, &seen);
	cr_assert_not_null(pool = app_pool(p.c));
	cr_log_info("files: target up to %ld, pool up to %ld of 8, served ready %ld, waited %ld",
	    seen.target, seen.total, member(pool, "served_ready") - ready0,
	    member(pool, "served_waited") - waited0);
	cr_assert_geq(seen.target, 1, "the pool's target never rose above min_ready 0");
	cr_assert_gt(member(pool, "served_ready") - ready0, member(pool, "served_waited") - waited0,
	    "most leases still waited for their clone");
	json_decref(pool);
	cr_assert_leq(seen.target, 8, "the target passed the pool's max");
	cr_assert_leq(seen.total, 8, "the pool held %ld clones, past its max of 8", seen.total);
	cr_assert_geq(seen.refill_lo, 1);
	cr_assert_leq(seen.refill_hi, 2, "refills at once passed max_refill_parallelism");
	no_leftovers(&p);
	pgb_stop(&p);
}
