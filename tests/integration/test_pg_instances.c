/* test_pg_instances.c: several brokers on one PostgreSQL server: dead instances swept by the
 * living, `fixture-broker sweep`, and postgres.fleet_max.
 *
 * Broker A runs the embedded cluster in a state directory of its own; brokers B, B' reach
 * the same cluster with --pg-url over its Unix socket, each with a state directory of its
 * own (so each is another instance). What is left in PostgreSQL is checked as the
 * cluster's superuser, and the leases' credentials are tried over TCP as a client would.
 * Waits poll with generous deadlines and no test asserts a duration. Every test stops its
 * brokers (A last: its cluster goes with it) and removes its state directories.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#define WAIT_MS 30000

struct pgb {
	struct test_broker tb;
	struct fxb_client *c;
	char state[512];
	char instance[32];
	char prefix[64];
	char socket_dir[1024];
	int port;
	int postmaster;
};

static char scratch[8192];
static const char *client_token; /* pgb_start's client's token; NULL: none */



/* A config file with postgres settings (the inside of "postgres"); its path. */
static const char *
config(const char *name, const char *postgres)
{
	static char paths[4][1024];
	static int next;
	char text[2048], *path = paths[next++ % 4];

	snprintf(text, sizeof text, "{\"postgres\": {%s}}", postgres);
	cr_assert_eq(temp_file(path, 1024, name, text), 0);
	return path;
}

/* Starts a broker on a fresh state directory named name, with config cfg and extra flags
 * (NULL-terminated, may be NULL), connects a client and waits for PostgreSQL. */
static void
pgb_start(struct pgb *p, const char *name, const char *cfg, const char *const *extra)
{
	const char *args[32] = { "--grace-ms", "300", "--state-dir", p->state, "--config", cfg };
	size_t n = 6;
	char err[512];
	json_t *st, *emb;

	memset(p, 0, sizeof *p);
	snprintf(p->state, sizeof p->state, "%s/fleet-%s-%d", test_log_dir(), name, (int)getpid());
	test_rm_pg_state(p->state);
	mkdir(p->state, 0755);
	for (size_t i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert_eq(test_broker_start(&p->tb, args, err, sizeof err), 0, "%s", err);
	CLIENT_NEW(p->c, &p->tb, client_token, NULL);
	st = test_call_json(p->c, "pg.status", NULL);
	cr_assert_not_null(st, "pg.status: %s", fxb_client_errmsg(p->c));
	cr_assert_str_eq(json_string_value(json_object_get(st, "state")), "ready",
	    "PostgreSQL did not start: %s; see %s", json_string_value(json_object_get(st, "error")),
	    p->tb.log);
	snprintf(p->instance, sizeof p->instance, "%s",
	    json_string_value(json_object_get(st, "instance")));
	snprintf(p->prefix, sizeof p->prefix, "%s", json_string_value(json_object_get(st, "prefix")));
	if ((emb = json_object_get(st, "embedded")) && json_is_object(emb)) {
		snprintf(p->socket_dir, sizeof p->socket_dir, "%s",
		    json_string_value(json_object_get(emb, "socket_dir")));
		p->port = (int)json_integer_value(json_object_get(emb, "port"));
		p->postmaster = (int)json_integer_value(json_object_get(emb, "pid"));
	}
	json_decref(st);
}

/* The admin conninfo of A's embedded cluster, for --pg-url. */
static const char *
admin_url(const struct pgb *a)
{
	static char url[1400];

	snprintf(url, sizeof url, "host=%s port=%d user=postgres dbname=postgres", a->socket_dir,
	    a->port);
	return url;
}

/* Starts a broker on A's cluster, with one more flag and its value (may be NULL). */
static void
pgb_start_on_with(struct pgb *p, const struct pgb *a, const char *name, const char *cfg,
    const char *flag, const char *value)
{
	const char *extra[] = { "--pg-url", admin_url(a), flag, value, NULL };

	pgb_start(p, name, cfg, extra);
}

static void
pgb_start_on(struct pgb *p, const struct pgb *a, const char *name, const char *cfg)
{
	pgb_start_on_with(p, a, name, cfg, NULL, NULL);
}

static void
pgb_stop(struct pgb *p)
{
	uint64_t end = clock_ms() + WAIT_MS;

	fxb_client_free(p->c);
	p->c = NULL;
	BROKER_STOP(&p->tb);
	while (p->postmaster > 0 && kill(p->postmaster, 0) == 0 && clock_ms() < end)
		sleep_ms(20);
	cr_assert(p->postmaster <= 0 || kill(p->postmaster, 0) == -1, "postgres outlived its broker");
	test_rm_pg_state(p->state);
}

static PGconn *
connect_admin(const struct pgb *a)
{
	PGconn *c = PQconnectdb(admin_url(a));

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
	return c;
}

/* Objects of prefix that are not finished templates or their owner roles; their names go
 * to scratch. */
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

/* Waits until prefix has no leftovers; 0 when it has none. */
static int
wait_swept(PGconn *c, const char *prefix)
{
	uint64_t end = clock_ms() + WAIT_MS;

	while (leftovers(c, prefix) && clock_ms() < end)
		sleep_ms(100);
	return leftovers(c, prefix) ? -1 : 0;
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

/* A lease's credentials, kept after its broker is gone. */
struct cred {
	char url[1024];
	char conninfo[1024];
	char user[128], database[128];
};

static void
cred_of(const struct fxb_lease *l, struct cred *cr)
{
	snprintf(cr->url, sizeof cr->url, "%s", field(l, "url"));
	snprintf(cr->conninfo, sizeof cr->conninfo, "host=%s port=%s user=%s password=%s dbname=%s "
	    "connect_timeout=10", field(l, "host"), field(l, "port"), field(l, "user"),
	    field(l, "password"), field(l, "database"));
	snprintf(cr->user, sizeof cr->user, "%s", field(l, "user"));
	snprintf(cr->database, sizeof cr->database, "%s", field(l, "database"));
}

/* 1 when the credentials connect and run a statement (as the URL and as its parts). */
static int
cred_works(const struct cred *cr)
{
	const char *const ways[] = { cr->url, cr->conninfo };
	int ok = 0;

	for (int i = 0; i < 2; i++) {
		PGconn *c = PQconnectdb(ways[i]);
		PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "SELECT 1") : NULL;
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			ok++;
		else
			snprintf(scratch, sizeof scratch, "%s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
	}
	return ok == 2;
}

/* A counter or gauge from GET /metrics (the first line starting with name), or -1. */
static long
metric(const struct pgb *p, const char *name)
{
	char *body = NULL, *line;
	long v = -1;

	if (http_get(p->tb.port, "/metrics", &body) != 200) {
		free(body);
		return -1;
	}
	for (line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ' ') {
			v = atol(line + strlen(name) + 1);
			break;
		}
	free(body);
	return v;
}

/* ---- Dead instances swept by the living ---- */

Test(pg_fleet, a_killed_brokers_clones_and_roles_are_swept_by_another_and_its_credentials_fail)
{
	char audit[1024], line[4096];
	struct pgb a, b, b2;
	struct fxb_lease *l1, *l2, *mine;
	struct cred c1, c2, cm;
	char dead[32], dead_prefix[64];
	PGconn *admin, *held, *elsewhere;
	char public_db[64], sql[1400];
	FILE *f;
	int found = 0;

	snprintf(audit, sizeof audit, "%s/fleet-audit-%d.log", test_log_dir(), (int)getpid());
	unlink(audit);
	{
		const char *extra[] = { "--audit-log", audit, NULL };
		pgb_start(&a, "a", config("a.json", "\"orphan_after_ms\": 1500"), extra);
	}
	/* B and B' never sweep anyone: A must be the one that does. */
	pgb_start_on(&b, &a, "b", config("b.json", "\"orphan_after_ms\": 0"));
	ACQUIRE(b.c, "{\"isolation\": \"database\"}", &l1);
	ACQUIRE(b.c, "{\"isolation\": \"schema\"}", &l2);
	cred_of(l1, &c1);
	cred_of(l2, &c2);
	cr_assert(cred_works(&c1), "B's database lease does not work: %s", scratch);
	cr_assert(cred_works(&c2), "B's schema lease does not work: %s", scratch);
	/* Sessions that stay open through the crash: one in the lease's database, one in a
	 * database of someone else's that lets everyone connect, which no sweep drops. */
	held = PQconnectdb(c1.url);
	cr_assert_eq(PQstatus(held), CONNECTION_OK, "%s", PQerrorMessage(held));
	snprintf(dead, sizeof dead, "%s", b.instance);
	snprintf(dead_prefix, sizeof dead_prefix, "%s", b.prefix);
	admin = connect_admin(&a);
	snprintf(public_db, sizeof public_db, "fleet_public_%d", (int)getpid());
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", public_db);
	{
		PGresult *r = PQexec(admin, sql);
		cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	snprintf(sql, sizeof sql, "host=%s port=%d user=%s password=%s dbname=%s",
	    fxb_lease_field(l2, "db", "host"), atoi(fxb_lease_field(l2, "db", "port")), c2.user,
	    fxb_lease_field(l2, "db", "password"), public_db);
	elsewhere = PQconnectdb(sql);
	cr_assert_eq(PQstatus(elsewhere), CONNECTION_OK, "%s", PQerrorMessage(elsewhere));
	cr_assert_gt(leftovers(admin, dead_prefix), 0, "B made nothing: the test proves nothing");

	/* B dies without a word, and comes back from an empty state directory: another
	 * instance, which sweeps only its own objects at its start. */
	test_broker_kill(&b.tb);
	fxb_lease_free(l1);
	fxb_lease_free(l2);
	fxb_client_free(b.c);
	b.c = NULL;
	test_rm_pg_state(b.state);
	pgb_start_on(&b2, &a, "b2", config("b2.json", "\"orphan_after_ms\": 0"));
	cr_assert_str_neq(b2.instance, dead, "B' reused B's instance: it would sweep its own");
	ACQUIRE(b2.c, NULL, &mine);
	cred_of(mine, &cm);

	cr_assert_eq(wait_swept(admin, dead_prefix), 0, "A did not sweep dead instance %s:%s", dead,
	    scratch);
	cr_assert_eq(qnum(admin, "SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, $1)",
	    dead_prefix), 0, "a session of the dead instance's roles is still open");
	{
		PGresult *r1 = PQexec(held, "SELECT 1"), *r2 = PQexec(elsewhere, "SELECT 1");
		cr_assert_neq(PQresultStatus(r1), PGRES_TUPLES_OK, "the session opened in the lease's "
		    "database before the crash still runs statements");
		cr_assert_neq(PQresultStatus(r2), PGRES_TUPLES_OK, "the session opened in another "
		    "database before the crash still runs statements");
		PQclear(r1);
		PQclear(r2);
	}
	PQfinish(held);
	PQfinish(elsewhere);
	snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", public_db);
	PQclear(PQexec(admin, sql));
	cr_assert_not(cred_works(&c1), "a dead lease's database credentials still work");
	cr_assert_not(cred_works(&c2), "a dead lease's schema credentials still work");
	/* The finished templates stay, as in a broker's own sweep: on a shared server they are
	 * fleet templates, every broker's, named by no instance. */
	cr_assert_gt(qnum(admin, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1) "
	    "AND datistemplate", "fxb_fleet_"), 0, "the fleet's finished template went too");
	/* The living are untouched. */
	cr_assert(cred_works(&cm), "B''s own lease was swept: %s", scratch);
	cr_assert_geq(metric(&a, "fxb_pg_fleet_sweeps_total"), 1);
	cr_assert_geq(metric(&a, "fxb_pg_fleet_swept_total{kind=\"database\"}"), 2,
	    "a database clone and a shared database");
	cr_assert_geq(metric(&a, "fxb_pg_fleet_swept_total{kind=\"role\"}"), 2);
	cr_assert_eq(metric(&b2, "fxb_pg_fleet_sweeps_total"), 0,
	    "B' swept with orphan_after_ms 0");
	cr_assert_not_null(f = fopen(audit, "r"), "no audit log at %s", audit);
	while (fgets(line, sizeof line, f)) {
		json_t *ev = json_loads(line, 0, NULL);
		const char *event = json_string_value(json_object_get(ev, "event"));
		const char *inst = json_string_value(json_object_get(ev, "instance"));
		if (event && inst && !strcmp(event, "pg.sweep") && !strcmp(inst, dead) &&
		    json_array_size(json_object_get(ev, "roles")) >= 2)
			found = 1;
		json_decref(ev);
	}
	fclose(f);
	cr_assert(found, "no pg.sweep event for %s in %s", dead, audit);
	unlink(audit);
	PQfinish(admin);

	fxb_lease_release(b2.c, mine);
	pgb_stop(&b2);
	pgb_stop(&a);
}

/* 1 when the advisory lock of instance inst is held. */
static int
lock_held(PGconn *admin, const char *inst)
{
	char key[16];

	snprintf(key, sizeof key, "%lu", strtoul(inst + strlen(inst) - 8, NULL, 16));
	return qnum(admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = "
	    "6715490 AND objsubid = 2 AND granted AND objid::bigint = $1::bigint", key) > 0;
}

Test(pg_fleet, an_idle_broker_that_lost_its_lock_connection_takes_it_again_and_is_not_swept)
{
	struct pgb a, b;
	struct fxb_lease *l;
	struct cred c;
	PGconn *admin;
	char key[16];
	long before;
	uint64_t end;

	pgb_start(&a, "a", config("a.json", "\"orphan_after_ms\": 1000"), NULL);
	pgb_start_on(&b, &a, "b", config("b.json", "\"orphan_after_ms\": 0"));
	ACQUIRE(b.c, NULL, &l);
	cred_of(l, &c);
	admin = connect_admin(&a);
	before = leftovers(admin, b.prefix);
	cr_assert(lock_held(admin, b.instance), "B does not hold its lock");
	/* The session holding B's lock goes (as in a server restart or a network cut); B does
	 * nothing meanwhile. */
	snprintf(key, sizeof key, "%lu", strtoul(b.instance + strlen(b.instance) - 8, NULL, 16));
	cr_assert_eq(qnum(admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE "
	    "locktype = 'advisory' AND classid = 6715490 AND objsubid = 2 AND objid::bigint = "
	    "$1::bigint", key), 1);
	end = clock_ms() + WAIT_MS;
	while (!lock_held(admin, b.instance) && clock_ms() < end)
		sleep_ms(50);
	cr_assert(lock_held(admin, b.instance), "idle B did not take its lock again");
	/* Several of A's surveys later, nothing of B's was swept. */
	sleep_ms(3000);
	/* (B's pool may have grown meanwhile: it refills after the acquire.) */
	cr_assert_geq(leftovers(admin, b.prefix), before, "A swept a live broker's objects");
	cr_assert(cred_works(&c), "B's lease was swept: %s", scratch);
	cr_assert_eq(metric(&a, "fxb_pg_fleet_sweeps_total"), 0);
	PQfinish(admin);
	fxb_lease_release(b.c, l);
	pgb_stop(&b);
	pgb_stop(&a);
}

/* ---- fixture-broker sweep ---- */

/* Runs `fixture-broker sweep` with args (NULL-terminated); its exit status, its output in
 * scratch. */
static int
sweep_cmd(const char *const *args)
{
	const char *argv[16] = { "sweep" };
	size_t n = 1;

	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return test_broker_run(argv, scratch, sizeof scratch, 60000);
}

Test(pg_fleet, the_sweep_command_lists_on_a_dry_run_drops_without_and_refuses_a_live_instance)
{
	struct pgb a, b;
	struct fxb_lease *la, *lb;
	struct cred ca, cb;
	char dead[32], dead_prefix[64], url[1400], line[256];
	PGconn *admin;
	long before;
	int rc;

	/* No broker sweeps by itself here: what goes, the command drops. */
	pgb_start(&a, "a", config("a.json", "\"orphan_after_ms\": 0"), NULL);
	snprintf(url, sizeof url, "%s", admin_url(&a));
	pgb_start_on(&b, &a, "b", config("b.json", "\"orphan_after_ms\": 0"));
	ACQUIRE(a.c, NULL, &la);
	ACQUIRE(b.c, NULL, &lb);
	cred_of(la, &ca);
	cred_of(lb, &cb);
	snprintf(dead, sizeof dead, "%s", b.instance);
	snprintf(dead_prefix, sizeof dead_prefix, "%s", b.prefix);
	admin = connect_admin(&a);

	/* A live instance is refused, by name, and skipped without one. */
	{
		const char *args[] = { "--instance", dead, "--pg-url", url, NULL };
		rc = sweep_cmd(args);
		cr_assert_eq(rc, 3, "sweeping a live instance exited %d: %s", rc, scratch);
		cr_assert_not_null(strstr(scratch, "live"), "%s", scratch);
		cr_assert(cred_works(&cb), "the refused sweep dropped B's lease: %s", scratch);
	}
	test_broker_kill(&b.tb);
	fxb_lease_free(lb);
	fxb_client_free(b.c);
	b.c = NULL;
	before = leftovers(admin, dead_prefix);
	cr_assert_gt(before, 0);
	{
		const char *args[] = { "--instance", a.instance, "--pg-url", url, NULL };
		rc = sweep_cmd(args);
		cr_assert_eq(rc, 3, "sweeping a live instance exited %d: %s", rc, scratch);
		cr_assert_not_null(strstr(scratch, "refused"), "%s", scratch);
	}

	/* A dry run lists B's clone and its role, and drops nothing. */
	{
		const char *args[] = { "--dry-run", "--pg-url", url, NULL };
		rc = sweep_cmd(args);
		cr_assert_eq(rc, 0, "the dry run exited %d: %s", rc, scratch);
		snprintf(line, sizeof line, "would drop database %s", cb.database);
		cr_assert_not_null(strstr(scratch, line), "no \"%s\" in:\n%s", line, scratch);
		snprintf(line, sizeof line, "would drop role %s", cb.user);
		cr_assert_not_null(strstr(scratch, line), "no \"%s\" in:\n%s", line, scratch);
		snprintf(line, sizeof line, "instance %s: live", a.instance);
		cr_assert_not_null(strstr(scratch, line), "A not reported live:\n%s", scratch);
		cr_assert_eq(leftovers(admin, dead_prefix), before, "the dry run dropped:%s", scratch);
		cr_assert(cred_works(&cb), "the dry run broke B's credentials: %s", scratch);
	}

	/* Without it, B's objects go and its credentials with them; A's stay. */
	{
		const char *args[] = { "--instance", dead, "--pg-url", url, NULL };
		rc = sweep_cmd(args);
		cr_assert_eq(rc, 0, "the sweep exited %d: %s", rc, scratch);
		snprintf(line, sizeof line, "dropped database %s", cb.database);
		cr_assert_not_null(strstr(scratch, line), "no \"%s\" in:\n%s", line, scratch);
		snprintf(line, sizeof line, "dropped role %s", cb.user);
		cr_assert_not_null(strstr(scratch, line), "no \"%s\" in:\n%s", line, scratch);
		cr_assert_eq(leftovers(admin, dead_prefix), 0, "left behind:%s", scratch);
		cr_assert_not(cred_works(&cb), "a swept lease's credentials still work");
		cr_assert(cred_works(&ca), "the live broker's lease was swept: %s", scratch);
	}

	/* Once more, from a configuration file: nothing left to do. */
	{
		char cfg[1024], text[1600];
		const char *args[] = { "--config", cfg, NULL };
		snprintf(text, sizeof text, "{\"postgres\": {\"url\": \"%s\"}}", url);
		cr_assert_eq(temp_file(cfg, sizeof cfg, "sweep.json", text), 0);
		rc = sweep_cmd(args);
		cr_assert_eq(rc, 0, "exited %d: %s", rc, scratch);
		cr_assert_not_null(strstr(scratch, "dropped 0 database(s) and 0 role(s)"), "%s", scratch);
	}

	/* Bad usage: exit 2 and a clear word. */
	{
		const char *bad_id[] = { "--instance", "NOT-HEX", "--pg-url", url, NULL };
		const char *no_url[] = { "--dry-run", NULL };
		const char *bad_flag[] = { "--pg-url", url, "--nope", NULL };
		cr_assert_eq(sweep_cmd(bad_id), 2, "%s", scratch);
		cr_assert_not_null(strstr(scratch, "hex digits"), "%s", scratch);
		cr_assert_eq(sweep_cmd(no_url), 2, "%s", scratch);
		cr_assert_not_null(strstr(scratch, "--pg-url"), "%s", scratch);
		cr_assert_eq(sweep_cmd(bad_flag), 2, "%s", scratch);
	}
	PQfinish(admin);
	test_rm_pg_state(b.state);
	fxb_lease_release(a.c, la);
	pgb_stop(&a);
}

/* ---- postgres.fleet_max ---- */

Test(pg_fleet, fleet_max_caps_the_clones_of_two_brokers_on_one_server)
{
	static const char settings[] = "\"fleet_max\": 2, \"orphan_after_ms\": 0, "
	    "\"acquire_timeout_ms\": 1500, \"pool\": {\"min_ready\": 0, \"follow_demand\": false}";
	struct pgb a, b;
	struct fxb_lease *la, *lb, *extra = NULL;
	PGconn *admin;
	int rc;

	pgb_start(&a, "a", config("a.json", settings), NULL);
	pgb_start_on(&b, &a, "b", config("b.json", settings));
	ACQUIRE(a.c, NULL, &la);
	ACQUIRE(b.c, NULL, &lb);
	/* Two clones on the server: a third waits, on either broker, and fails in time. */
	cr_assert_neq(acquire(a.c, NULL, &extra), 0, "A made a third clone past fleet_max 2");
	cr_assert_str_eq(fxb_client_errname(a.c), "PG_POOL_EXHAUSTED", "%s", fxb_client_errmsg(a.c));
	cr_assert_not_null(strstr(fxb_client_errmsg(a.c), "fleet_max"), "%s", fxb_client_errmsg(a.c));
	cr_assert_neq(acquire(b.c, NULL, &extra), 0, "B made a third clone past fleet_max 2");
	cr_assert_str_eq(fxb_client_errname(b.c), "PG_POOL_EXHAUSTED", "%s", fxb_client_errmsg(b.c));
	admin = connect_admin(&a);
	cr_assert_eq(qnum(admin, "SELECT count(*) FROM pg_roles WHERE rolname ~ "
	    "'^fxb_[0-9a-f]+_u_'", NULL), 2, "the server holds other than two clones");
	cr_assert_geq(metric(&a, "fxb_pg_fleet_clones_refused_total"), 1);
	/* A's release makes room for B. */
	fxb_lease_release(a.c, la);
	{
		uint64_t end = clock_ms() + WAIT_MS;
		while ((rc = acquire(b.c, NULL, &extra)) != 0 && clock_ms() < end)
			sleep_ms(50);
		cr_assert_eq(rc, 0, "B got no clone after A released one: %s", fxb_client_errmsg(b.c));
	}
	cr_assert_eq(qnum(admin, "SELECT count(*) FROM pg_roles WHERE rolname ~ "
	    "'^fxb_[0-9a-f]+_u_'", NULL), 2);
	PQfinish(admin);
	fxb_lease_release(b.c, extra);
	fxb_lease_release(b.c, lb);
	pgb_stop(&b);
	pgb_stop(&a);
}

/* ---- Tenant quotas across the fleet ---- */

/* Acquires on c until it succeeds (another broker's release is recorded within a second
 * or so); 0 when it did. */
static int
acquire_soon(struct fxb_client *c, struct fxb_lease **l)
{
	uint64_t end = clock_ms() + WAIT_MS;
	int rc;

	while ((rc = acquire(c, NULL, l)) != 0 && clock_ms() < end)
		sleep_ms(100);
	return rc;
}

Test(pg_fleet, a_tenants_database_quota_counts_across_the_brokers_on_one_server)
{
	struct pgb a, b;
	struct fxb_client *ta, *tb;
	struct fxb_lease *la, *lb1, *lb2 = NULL, *extra = NULL;
	char tokens[1024];

	cr_assert_eq(temp_file(tokens, sizeof tokens, "tokens", "tok-admin ops admin=true\n"
	    "tok-team team databases=2\n"), 0);
	client_token = "tok-admin";
	{
		const char *flags[] = { "--token-file", tokens, NULL };
		pgb_start(&a, "a", config("a.json", "\"orphan_after_ms\": 1000"), flags);
	}
	pgb_start_on_with(&b, &a, "b", config("b.json", "\"orphan_after_ms\": 0"), "--token-file",
	    tokens);
	client_token = NULL;
	CLIENT_NEW(ta, &a.tb, "tok-team", NULL);
	CLIENT_NEW(tb, &b.tb, "tok-team", NULL);

	/* One database on each broker: the tenant's two. */
	ACQUIRE(ta, NULL, &la);
	ACQUIRE(tb, NULL, &lb1);
	cr_assert_neq(acquire(tb, NULL, &extra), 0, "B granted a third database of a tenant "
	    "limited to 2 across the fleet");
	cr_assert_str_eq(fxb_client_errname(tb), "QUOTA_EXCEEDED", "%s", fxb_client_errmsg(tb));
	cr_assert_not_null(strstr(fxb_client_errmsg(tb), "across the brokers"), "%s",
	    fxb_client_errmsg(tb));
	cr_assert_neq(acquire(ta, NULL, &extra), 0, "A granted a third database");
	cr_assert_str_eq(fxb_client_errname(ta), "QUOTA_EXCEEDED", "%s", fxb_client_errmsg(ta));

	/* A's release is B's room. */
	fxb_lease_release(ta, la);
	cr_assert_eq(acquire_soon(tb, &lb2), 0, "B got no database after A released one: %s",
	    fxb_client_errmsg(tb));
	cr_assert_neq(acquire(ta, NULL, &extra), 0, "A granted a database while B holds two");

	/* B dies holding both; once A sweeps it, they are the tenant's again. */
	test_broker_kill(&b.tb);
	fxb_lease_free(lb1);
	fxb_lease_free(lb2);
	fxb_client_free(tb);
	fxb_client_free(b.c);
	b.c = NULL;
	test_rm_pg_state(b.state);
	cr_assert_eq(acquire_soon(ta, &la), 0, "A gives no database after B's sweep: %s",
	    fxb_client_errmsg(ta));
	cr_assert_eq(acquire_soon(ta, &extra), 0, "%s", fxb_client_errmsg(ta));
	fxb_lease_release(ta, la);
	fxb_lease_release(ta, extra);
	fxb_client_free(ta);
	pgb_stop(&a);
}
