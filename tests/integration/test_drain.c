/* test_drain.c: SIGTERM and admin.drain drain the broker for a rolling restart.
 *
 * With --drain-timeout-ms N (the harness passes 0, today's immediate shutdown, unless a
 * test asks otherwise): /healthz turns 503 at once and /livez stays 200, new connections
 * are refused with 503, sessions holding leases go on working (renew, acquire, release)
 * and the others are closed with 1001; the broker exits 0 as soon as no lease is held, or
 * releases what is left when N passes. A second signal shuts down at once. admin.drain
 * does the same for admin tokens only.
 *
 * The brokers here lease from 27200-27259.
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

/* 1 while pid exists and is not a zombie. */
static int
pid_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Acquires one port fixture named name on w; returns the lease id (malloc'd). */
static char *
acquire_port(struct raw_ws *w, const char *name)
{
	json_t *reply = raw_rpc_call(w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", name, "kind", "port"));
	json_t *res = raw_rpc_result(reply);
	char *lid;

	cr_assert_not_null(res, "lease.acquire: %s", json_dumps(reply, 0));
	lid = strdup(json_string_value(json_object_get(res, "lease")));
	json_decref(reply);
	return lid;
}

/* Reads w until its close frame; returns the close code (the reason in reason), or -1. */
static int
read_close(struct raw_ws *w, char *reason, size_t cap, int timeout_ms)
{
	struct ws_msg m;
	int code;

	for (;;) {
		if (raw_ws_read(w, &m, timeout_ms) != 0)
			return -1;
		if (m.opcode == WS_CLOSE)
			break;
		raw_ws_msg_clear(&m);
	}
	code = m.close_code;
	if (reason)
		snprintf(reason, cap, "%s", m.len > 2 ? m.payload + 2 : "");
	raw_ws_msg_clear(&m);
	return code;
}

/* A member of broker.status on w. */
static json_t *
status_member(struct raw_ws *w, const char *member)
{
	json_t *reply = raw_rpc_call(w, "broker.status", json_object());
	json_t *v = json_incref(json_object_get(raw_rpc_result(reply), member));

	cr_assert_not_null(v, "broker.status has no %s: %s", member, json_dumps(reply, 0));
	json_decref(reply);
	return v;
}

Test(drain, a_lease_held_through_sigterm_keeps_working_until_released_then_the_broker_exits_0,
    .timeout = 90)
{
	struct test_broker tb;
	struct raw_ws holder, idle, late;
	char *lid, *lid2, *body = NULL, reason[128];
	json_t *reply, *v;
	int code, st;

	BROKER_START(&tb, "--ports", "27200-27209", "--drain-timeout-ms", "60000");
	cr_assert_eq(raw_ws_connect(&holder, tb.port, "fixture-broker.v1", NULL), 101);
	cr_assert_eq(raw_ws_connect(&idle, tb.port, "fixture-broker.v1", NULL), 101);
	lid = acquire_port(&holder, "p");
	json_decref(raw_rpc_call(&idle, "broker.status", json_object()));
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200);

	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	/* The session holding nothing is told to go elsewhere. */
	code = read_close(&idle, reason, sizeof(reason), 15000);
	cr_assert_eq(code, 1001, "the idle session: close code %d", code);
	cr_assert(strstr(reason, "draining"), "close reason \"%s\"", reason);

	/* Readiness says draining, liveness does not fail, new sessions are refused. */
	cr_assert_eq(http_get(tb.port, "/healthz", &body), 503, "%s", body ? body : "");
	cr_assert(strstr(body, "draining"), "%s", body);
	free(body);
	body = NULL;
	cr_assert_eq(http_get(tb.port, "/livez", &body), 200);
	free(body);
	body = NULL;
	cr_assert_eq(raw_ws_connect(&late, tb.port, "fixture-broker.v1", NULL), 503,
	    "a new session during the drain: %s", late.status_line);
	raw_ws_close(&late);
	cr_assert_eq(http_get(tb.port, "/metrics", &body), 200);
	cr_assert(strstr(body, "\nfxb_draining 1\n"), "%s", body);
	cr_assert(strstr(body, "\nfxb_connections_refused_draining_total 1\n"), "%s", body);
	free(body);

	/* The holder's session works on, well past the drain's first turns. */
	sleep_ms(500);
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited while a lease was held");
	v = status_member(&holder, "draining");
	cr_assert(json_is_true(v), "broker.status draining is not true");
	json_decref(v);
	v = status_member(&holder, "drain_remaining_ms");
	cr_assert(json_integer_value(v) > 0 && json_integer_value(v) <= 60000, "drain_remaining_ms %lld",
	    (long long)json_integer_value(v));
	json_decref(v);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1, "the held port was given back");
	reply = raw_rpc_call(&holder, "lease.renew", json_pack("{s:s, s:i}", "lease", lid, "ttl_ms",
	    60000));
	cr_assert_not_null(raw_rpc_result(reply), "lease.renew during the drain: %s",
	    json_dumps(reply, 0));
	json_decref(reply);
	/* A job in the middle of a test file may need one more lease. */
	lid2 = acquire_port(&holder, "q");
	reply = raw_rpc_call(&holder, "lease.release", json_pack("{s:s}", "lease", lid2));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(reply), "released")), "%s",
	    json_dumps(reply, 0));
	json_decref(reply);
	cr_assert_eq(test_broker_wait(&tb, 300), -2, "the broker exited while a lease was held");

	/* The last release ends the drain. */
	reply = raw_rpc_call(&holder, "lease.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(reply), "released")), "%s",
	    json_dumps(reply, 0));
	json_decref(reply);
	code = read_close(&holder, NULL, 0, 15000);
	cr_assert_eq(code, 1001, "the holder after its release: close code %d", code);
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "the broker exited with %d (-2: still running 15 s later); see %s", st,
	    tb.log);
	raw_ws_close(&holder);
	raw_ws_close(&idle);
	free(lid);
	free(lid2);
}

Test(drain, a_broker_that_holds_nothing_exits_0_at_once_on_sigterm, .timeout = 60)
{
	struct test_broker tb;
	struct raw_ws idle;
	int st;

	/* The default drain_timeout_ms (300000) must not keep an idle broker up. */
	BROKER_START(&tb, "--ports", "27210-27211", "--drain-timeout-ms", "300000");
	cr_assert_eq(raw_ws_connect(&idle, tb.port, "fixture-broker.v1", NULL), 101);
	json_decref(raw_rpc_call(&idle, "broker.status", json_object()));
	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	cr_assert_eq(read_close(&idle, NULL, 0, 15000), 1001);
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running); see %s", st, tb.log);
	raw_ws_close(&idle);
}

/* A config with one server template, "web": tests/servers/httpd. */
static void
server_config(char *path, size_t cap)
{
	const char *dir = getenv("FXB_TEST_SERVERS");
	char text[1024];

	cr_assert(dir != NULL && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(text, sizeof(text),
	    "{\"servers\": {\"web\": {\"command\": [\"%s/httpd\", \"--port\", \"{port}\"]}}}\n", dir);
	cr_assert_eq(temp_file(path, cap, "drain.json", text), 0);
}

Test(drain, drain_timeout_ms_passing_releases_what_is_still_held, .timeout = 90)
{
	struct test_broker tb;
	struct raw_ws holder;
	char config[512], *log;
	json_t *reply, *f;
	pid_t server;
	int st, code;

	server_config(config, sizeof(config));
	BROKER_START(&tb, "--ports", "27220-27229", "--config", config, "--drain-timeout-ms", "1500");
	cr_assert_eq(raw_ws_connect(&holder, tb.port, "fixture-broker.v1", NULL), 101);
	reply = raw_rpc_call(&holder, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures",
	    "web", "kind", "server", "template", "web"));
	f = json_object_get(json_object_get(raw_rpc_result(reply), "fixtures"), "web");
	cr_assert_not_null(f, "lease.acquire: %s", json_dumps(reply, 0));
	server = (pid_t)json_integer_value(json_object_get(f, "pid"));
	json_decref(reply);
	cr_assert(pid_alive(server), "the server (pid %d) is not running", (int)server);

	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	sleep_ms(500);
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited before drain_timeout_ms");
	cr_assert(pid_alive(server), "the server stopped before drain_timeout_ms");
	code = read_close(&holder, NULL, 0, 15000);
	cr_assert_eq(code, 1001, "close code %d", code);
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running); see %s", st, tb.log);
	cr_assert(!pid_alive(server), "the server (pid %d) outlived the drain", (int)server);
	log = test_read_log(tb.log);
	cr_assert(log && strstr(log, "drain_timeout_ms passed with 1 lease(s) still held"),
	    "the log does not say why: see %s", tb.log);
	free(log);
	raw_ws_close(&holder);
}

Test(drain, a_second_sigterm_during_the_drain_shuts_down_at_once, .timeout = 60)
{
	struct test_broker tb;
	struct raw_ws holder;
	char *lid, *log, audit[512];
	int st, code;

	cr_assert_eq(temp_file(audit, sizeof(audit), "audit", ""), 0);
	BROKER_START(&tb, "--ports", "27230-27231", "--drain-timeout-ms", "600000", "--audit-log",
	    audit);
	cr_assert_eq(raw_ws_connect(&holder, tb.port, "fixture-broker.v1", NULL), 101);
	lid = acquire_port(&holder, "p");
	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	sleep_ms(300);
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited while a lease was held");
	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	code = read_close(&holder, NULL, 0, 10000);
	cr_assert_eq(code, 1001, "close code %d", code);
	/* Long before the drain's 10 minutes, with a wide margin for a loaded machine. */
	st = test_broker_wait(&tb, 10000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running 10 s after the second signal)", st);
	log = test_read_log(tb.log);
	cr_assert(log && strstr(log, "second signal (Terminated) during the drain"), "see %s", tb.log);
	free(log);
	log = test_read_log(audit);
	cr_assert(log && strstr(log, "\"event\":\"broker.drained\",\"outcome\":\"signal\",\"leases\":1"),
	    "the audit log: %s", log);
	free(log);
	raw_ws_close(&holder);
	free(lid);
}

static void
admin_hello(struct raw_ws *w, int port, const char *token)
{
	json_t *r;

	cr_assert_eq(raw_ws_connect(w, port, "fixture-broker.v1", NULL), 101);
	r = raw_rpc_call(w, "session.hello", json_pack("{s:s}", "token", token));
	cr_assert_not_null(raw_rpc_result(r), "hello: %s", json_dumps(r, 0));
	json_decref(r);
}

Test(drain, admin_drain_needs_an_admin_token_and_drains, .timeout = 60)
{
	struct test_broker tb;
	struct raw_ws tenant, op;
	char tokens[512], audit[512], *log, *lid;
	json_t *r, *res;
	int st;

	cr_assert_eq(temp_file(tokens, sizeof(tokens), "tokens",
	    "tok-a team-a\ntok-op ops admin=true\n"), 0);
	cr_assert_eq(temp_file(audit, sizeof(audit), "audit", ""), 0);
	BROKER_START(&tb, "--ports", "27240-27241", "--token-file", tokens, "--audit-log", audit,
	    "--drain-timeout-ms", "60000");
	admin_hello(&tenant, tb.port, "tok-a");
	admin_hello(&op, tb.port, "tok-op");
	lid = acquire_port(&tenant, "p");

	r = raw_rpc_call(&tenant, "admin.drain", json_object());
	cr_assert_str_eq(raw_rpc_error_name(r), "NOT_ADMIN", "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200, "a refused admin.drain drained");

	r = raw_rpc_call(&op, "admin.drain", json_pack("{s:i}", "timeout_ms", 30000));
	res = raw_rpc_result(r);
	cr_assert(json_is_true(json_object_get(res, "draining")), "%s", json_dumps(r, 0));
	cr_assert_eq(json_integer_value(json_object_get(res, "leases")), 1, "%s", json_dumps(r, 0));
	cr_assert(json_integer_value(json_object_get(res, "remaining_ms")) > 0, "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 503);
	/* The admin's session holds nothing: it is closed like any other. */
	cr_assert_eq(read_close(&op, NULL, 0, 15000), 1001);
	cr_assert_eq(test_broker_wait(&tb, 300), -2, "the broker exited while a lease was held");

	r = raw_rpc_call(&tenant, "lease.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "released")), "%s", json_dumps(r, 0));
	json_decref(r);
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running); see %s", st, tb.log);
	log = test_read_log(audit);
	cr_assert(log && strstr(log, "\"event\":\"admin.drain\"") && strstr(log,
	    "\"event\":\"broker.drain\"") && strstr(log, "\"outcome\":\"drained\""),
	    "the audit log: %s", log);
	free(log);
	raw_ws_close(&tenant);
	raw_ws_close(&op);
	free(lid);
}

Test(drain, a_libfxb_client_holding_a_lease_keeps_it_and_an_idle_one_is_lost_elsewhere,
    .timeout = 90)
{
	struct test_broker tb, next;
	struct fxb_client *c, *idle;
	struct fxb_lease *l = NULL, *more = NULL;
	char listen[64];
	uint64_t end;
	int st;

	/* --grace-ms 0: the clients, told so in session.hello, take RESUME_UNKNOWN from the
	 * next broker as final at once. The idle client connects first, so its session is
	 * s-1, the id the next broker gives the first session it opens: a lost session must be
	 * told by "resumed" in session.hello, not by its id alone. */
	BROKER_START(&tb, "--ports", "27245-27249", "--drain-timeout-ms", "60000", "--grace-ms", "0");
	CLIENT_NEW(idle, &tb, NULL, NULL);
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	sleep_ms(500);
	cr_assert_eq(fxb_client_state(c), FXB_STATE_OPEN, "the client lost its connection");
	cr_assert_eq(fxb_client_state(idle), FXB_STATE_CONNECTING,
	    "the idle client was not closed, or got in again");
	cr_assert_gt(test_lease_port(l, 0), 0);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &more), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_lease_release(c, more), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited while a lease was held");
	cr_assert_eq(fxb_lease_release(c, l), 0, "%s", fxb_client_errmsg(c));
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running); see %s", st, tb.log);
	cr_assert_eq(fxb_client_sessions_lost(c), 0, "the client lost its session");
	cr_assert_eq(fxb_client_sessions_lost(idle), 0);
	fxb_client_free(c); /* so that the idle client opens the next broker's first session */

	/* A new broker on the same address, as behind a load balancer: the idle client's
	 * session is not there, and it says so. */
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", tb.port);
	BROKER_START(&next, "--ports", "27245-27249", "--listen", listen);
	end = clock_ms() + 15000;
	while ((fxb_client_state(idle) != FXB_STATE_OPEN || fxb_client_sessions_lost(idle) != 1) &&
	    clock_ms() < end)
		sleep_ms(20);
	cr_assert_eq(fxb_client_sessions_lost(idle), 1, "the idle client did not report its session lost (state %d, session %s)", fxb_client_state(idle), fxb_client_session(idle));
	cr_assert_eq(fxb_client_state(idle), FXB_STATE_OPEN);
	fxb_client_free(idle);
	BROKER_STOP(&next);
}

/* The lease's postgres fixture "db" member name (borrowed from l). */
static const char *
db_field(const struct fxb_lease *l, const char *name)
{
	const char *v = fxb_lease_field(l, "db", name);

	cr_assert_not_null(v, "the lease has no %s", name);
	return v;
}

/* How many rows sql (one text parameter) returns on c. */
static int
rows(PGconn *c, const char *sql, const char *param)
{
	const char *params[1] = { param };
	PGresult *r = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
	int n;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	n = PQntuples(r);
	PQclear(r);
	return n;
}

/* Broker "a" runs the embedded PostgreSQL; broker "b" leases databases on it through
 * --pg-url and drains with a short drain_timeout_ms while a client holds one: b's
 * shutdown drops the database and its role, which a's cluster (still up) shows. */
Test(drain, drain_timeout_ms_passing_drops_a_held_database, .timeout = 180)
{
	struct fxb_fixture_spec spec = { "db", "postgres", NULL };
	char state_a[512], state_b[600], url[1024], *res = NULL, dbname[128], role[128];
	struct test_broker a, b;
	struct fxb_client *ca, *cb;
	struct fxb_lease *la, *lb;
	json_t *st, *emb;
	PGconn *admin;
	int status;

	snprintf(state_a, sizeof(state_a), "%s/drain-pg-a-%d", getenv("FXB_TEST_LOG_DIR") &&
	    *getenv("FXB_TEST_LOG_DIR") ? getenv("FXB_TEST_LOG_DIR") : "/tmp", (int)getpid());
	snprintf(state_b, sizeof(state_b), "%s-b", state_a);
	test_rm_pg_state(state_a);
	test_rm_pg_state(state_b);
	/* Readable by the cluster's own unprivileged user when the tests run as root. */
	cr_assert_eq(mkdir(state_a, 0755), 0);
	cr_assert_eq(mkdir(state_b, 0755), 0);
	BROKER_START(&a, "--ports", "27250-27254", "--state-dir", state_a);
	CLIENT_NEW(ca, &a, NULL, NULL);
	cr_assert_eq(fxb_lease_acquire(ca, &spec, 1, NULL, &la), 0, "%s", fxb_client_errmsg(ca));
	cr_assert_eq(fxb_call(ca, "pg.status", NULL, &res), 0, "%s", fxb_client_errmsg(ca));
	st = json_loads(res, 0, NULL);
	free(res);
	emb = json_object_get(st, "embedded");
	cr_assert(json_is_object(emb), "pg.status: no embedded cluster");
	snprintf(url, sizeof(url), "host=%s port=%d user=postgres dbname=postgres",
	    json_string_value(json_object_get(emb, "socket_dir")),
	    (int)json_integer_value(json_object_get(emb, "port")));
	json_decref(st);

	BROKER_START(&b, "--ports", "27255-27259", "--state-dir", state_b, "--pg-url", url,
	    "--drain-timeout-ms", "1500");
	CLIENT_NEW(cb, &b, NULL, NULL);
	cr_assert_eq(fxb_lease_acquire(cb, &spec, 1, NULL, &lb), 0, "%s", fxb_client_errmsg(cb));
	snprintf(dbname, sizeof(dbname), "%s", db_field(lb, "database"));
	snprintf(role, sizeof(role), "%s", db_field(lb, "user"));
	admin = PQconnectdb(url);
	cr_assert_eq(PQstatus(admin), CONNECTION_OK, "%s", PQerrorMessage(admin));
	cr_assert_eq(rows(admin, "SELECT 1 FROM pg_database WHERE datname = $1", dbname), 1);

	cr_assert_eq(kill(b.pid, SIGTERM), 0);
	sleep_ms(500);
	cr_assert_eq(test_broker_wait(&b, 0), -2, "b exited before drain_timeout_ms");
	cr_assert_eq(rows(admin, "SELECT 1 FROM pg_database WHERE datname = $1", dbname), 1,
	    "the database was dropped before drain_timeout_ms");
	status = test_broker_wait(&b, 30000);
	if (status == -2)
		test_broker_kill(&b);
	cr_assert_eq(status, 0, "b exited with %d (-2: still running); see %s", status, b.log);
	cr_assert_eq(rows(admin, "SELECT 1 FROM pg_database WHERE datname = $1", dbname), 0,
	    "database %s outlived the drain", dbname);
	cr_assert_eq(rows(admin, "SELECT 1 FROM pg_roles WHERE rolname = $1", role), 0,
	    "role %s outlived the drain", role);
	PQfinish(admin);
	fxb_lease_free(lb);
	fxb_client_free(cb);

	cr_assert_eq(fxb_lease_release(ca, la), 0, "%s", fxb_client_errmsg(ca));
	fxb_client_free(ca);
	BROKER_STOP(&a);
	test_rm_pg_state(state_a);
	test_rm_pg_state(state_b);
}

/* A hello on w (resume: NULL for none); the whole reply. */
static json_t *
hello_resume(struct raw_ws *w, const char *resume)
{
	return raw_rpc_call(w, "session.hello", resume ? json_pack("{s:s}", "resume", resume)
	    : json_object());
}

Test(drain, a_client_cut_off_during_the_drain_comes_back_to_resume_its_session, .timeout = 60)
{
	struct test_broker tb;
	struct raw_ws a, back, other;
	char *lid, resume[64], hdr[128], reason[128];
	json_t *r;
	int code, st;

	BROKER_START(&tb, "--ports", "27250-27254", "--drain-timeout-ms", "60000", "--grace-ms",
	    "20000");
	cr_assert_eq(raw_ws_connect(&a, tb.port, "fixture-broker.v1", NULL), 101);
	r = hello_resume(&a, NULL);
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	snprintf(resume, sizeof(resume), "%s", json_string_value(json_object_get(raw_rpc_result(r),
	    "resume")));
	json_decref(r);
	lid = acquire_port(&a, "p");
	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	sleep_ms(300); /* the drain's first turns */

	/* A network blip: the session goes into its grace period, and stays there. */
	raw_ws_close(&a);
	sleep_ms(500);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1, "the session in its grace period was ended");

	/* A new connection without a resume is refused as before; one naming a token the
	 * broker does not hold too. */
	cr_assert_eq(raw_ws_connect(&other, tb.port, "fixture-broker.v1", NULL), 503);
	raw_ws_close(&other);
	cr_assert_eq(raw_ws_connect_with(&other, tb.port, "fixture-broker.v1", NULL,
	    "X-Fxb-Resume: r-00000000000000000000000000000000\r\n"), 503);
	raw_ws_close(&other);

	/* Let in with its resume token, but a hello that resumes nothing: refused, and closed
	 * as any idle session of a draining broker. */
	snprintf(hdr, sizeof(hdr), "X-Fxb-Resume: %s\r\n", resume);
	cr_assert_eq(raw_ws_connect_with(&other, tb.port, "fixture-broker.v1", NULL, hdr), 101,
	    "%s", other.status_line);
	r = hello_resume(&other, NULL);
	cr_assert_str_eq(raw_rpc_error_name(r), "SHUTTING_DOWN", "%s", json_dumps(r, 0));
	json_decref(r);
	code = read_close(&other, reason, sizeof(reason), 15000);
	cr_assert_eq(code, 1001, "close code %d", code);
	cr_assert(strstr(reason, "draining"), "close reason \"%s\"", reason);
	raw_ws_close(&other);

	/* The client comes back with its token: the session and its lease are its again. */
	cr_assert_eq(raw_ws_connect_with(&back, tb.port, "fixture-broker.v1", NULL, hdr), 101,
	    "%s", back.status_line);
	r = hello_resume(&back, resume);
	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "resumed")), "%s",
	    json_dumps(r, 0));
	json_decref(r);
	sleep_ms(300); /* past the drain's next turns: the resumed session is not closed */
	r = raw_rpc_call(&back, "lease.renew", json_pack("{s:s, s:i}", "lease", lid, "ttl_ms", 60000));
	cr_assert_not_null(raw_rpc_result(r), "lease.renew after the resume: %s", json_dumps(r, 0));
	json_decref(r);

	/* Its release ends the drain. */
	r = raw_rpc_call(&back, "lease.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "released")), "%s",
	    json_dumps(r, 0));
	json_decref(r);
	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "exit status %d (-2: still running); see %s", st, tb.log);
	raw_ws_close(&back);
	free(lid);
}

/* A client building a template (pg.template.ensure answered "build", finish not called
 * yet) holds no lease and no open call, but is busy: SIGTERM's drain keeps its session,
 * its finish makes the template ready, and then the broker exits 0. */
Test(drain, a_client_building_a_template_finishes_its_build_then_the_broker_exits_0,
    .timeout = 180)
{
	char state[512], hash[128], params[256], *res = NULL;
	struct test_broker tb;
	struct fxb_client *c;
	json_t *j;
	PGconn *db;
	PGresult *r;
	int status;

	snprintf(state, sizeof(state), "%s/drain-build-%d", getenv("FXB_TEST_LOG_DIR") &&
	    *getenv("FXB_TEST_LOG_DIR") ? getenv("FXB_TEST_LOG_DIR") : "/tmp", (int)getpid());
	test_rm_pg_state(state);
	cr_assert_eq(mkdir(state, 0755), 0);
	BROKER_START(&tb, "--ports", "27232-27233", "--state-dir", state, "--drain-timeout-ms",
	    "60000");
	CLIENT_NEW(c, &tb, NULL, NULL);
	snprintf(hash, sizeof(hash), "drain-build-%d", (int)getpid());
	snprintf(params, sizeof(params), "{\"hash\": \"%s\"}", hash);
	cr_assert_eq(fxb_call(c, "pg.template.ensure", params, &res), 0, "%s", fxb_client_errmsg(c));
	j = json_loads(res, 0, NULL);
	free(res);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	db = PQconnectdb(json_string_value(json_object_get(j, "url")));
	cr_assert_eq(PQstatus(db), CONNECTION_OK, "%s", PQerrorMessage(db));
	json_decref(j);

	cr_assert_eq(kill(tb.pid, SIGTERM), 0);
	/* Several of the drain's ticks (100 ms) pass while the client builds. */
	r = PQexec(db, "SELECT pg_sleep(0.5); CREATE TABLE items (id int); "
	    "INSERT INTO items VALUES (1), (2), (3)");
	cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(db);
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited under a client's build; "
	    "see %s", tb.log);
	cr_assert_eq(fxb_call(c, "pg.template.finish", params, &res), 0,
	    "the builder's finish during the drain: %s; see %s", fxb_client_errmsg(c), tb.log);
	j = json_loads(res, 0, NULL);
	free(res);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "ready");
	json_decref(j);

	/* Built, it holds nothing: the drain closes it and ends. */
	status = test_broker_wait(&tb, 30000);
	if (status == -2)
		test_broker_kill(&tb);
	cr_assert_eq(status, 0, "the broker exited with %d (-2: still running); see %s", status,
	    tb.log);
	fxb_client_free(c);
	test_rm_pg_state(state);
}
