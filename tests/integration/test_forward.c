/* test_forward.c: a broker forwarding to an upstream broker (--upstream), end to end.
 *
 * Every test starts two real brokers on loopback: a "shared" one with its embedded
 * PostgreSQL cluster (one state directory for the suite, so initdb runs once) and server
 * templates of its own, and a "local" one with --upstream pointing at it, its own port
 * range and server templates of its own (one of which needs a database). Workers talk to
 * the local broker over the raw WebSocket client of harness.h, which also returns the
 * notifications; what the shared broker holds is read with admin.leases (a broker without
 * a token file treats every session as admin), and databases are checked with libpq.
 * Templates of the local configuration (postgres.templates) are built through the shared
 * broker: their migrate command, run by the local broker, adds a line to a file per run,
 * so the tests count the runs.
 * Waits poll with generous deadlines; no test asserts a duration. Every test stops both
 * brokers and checks that the shared broker's postmaster is gone.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 30000
#define LOCAL_FIRST 28700
#define LOCAL_LAST 28799

struct pair {
	struct test_broker shared, local;
	char local_state[600];
	int pg_port;     /* the shared cluster's */
	int postmaster;  /* its pid */
	char pg_socket[512]; /* its socket directory */
};


/* The shared broker's state directory: one per run of this binary. */
static const char *
shared_state(void)
{
	static char dir[512];

	if (!dir[0]) {
		snprintf(dir, sizeof dir, "%s/fwd-state-%d", test_log_dir(), (int)getppid());
		mkdir(dir, 0755);
	}
	return dir;
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	char dir[512];

	(void)stats;
	snprintf(dir, sizeof dir, "%s/fwd-state-%d", test_log_dir(), (int)getpid());
	test_rm_pg_state(dir);
}

static const char *
httpd(void)
{
	static char path[512];
	const char *dir = getenv("FXB_TEST_SERVERS");

	cr_assert(dir && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(path, sizeof path, "%s/httpd", dir);
	return path;
}

/* Writes a configuration file (fmt's %1$s is the httpd path) and returns its path. */
static const char *
config(char *path, size_t len, const char *name, const char *servers)
{
	char *text = NULL;

	cr_assert_geq(asprintf(&text, "{\"servers\": {%s}}", servers), 0);
	cr_assert_eq(temp_file(path, len, name, text), 0);
	free(text);
	return path;
}

static json_t *call_on(int port, const char *method, json_t *params);

/* The bearer token for the shared broker, when it has a token file (else NULL). */
static const char *shared_token;

static void
start_shared(struct pair *p, const char *const *extra)
{
	static char cfg[1024];
	char servers[2048];
	const char *args[24] = { "--state-dir", shared_state(), "--grace-ms", "1000",
		"--ports", "28800-28899", "--port-quarantine-ms", "0", "--config", NULL };
	size_t n = 9;
	json_t *st, *emb;
	char err[512];

	snprintf(servers, sizeof servers,
	    "\"api\": {\"command\": [\"%s\", \"--port\", \"{port}\"],"
	    " \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},"
	    "\"slow\": {\"command\": [\"%s\", \"--port\", \"{port}\", \"--slow-start\", \"1500\"],"
	    " \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]}", httpd(), httpd());
	args[n++] = config(cfg, sizeof cfg, "shared.json", servers);
	for (size_t i = 0; extra && extra[i]; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	cr_assert_eq(test_broker_start(&p->shared, args, err, sizeof err), 0, "%s", err);
	st = call_on(p->shared.port, "pg.status", NULL);
	cr_assert_not_null(st, "pg.status on the shared broker; see %s", p->shared.log);
	emb = json_object_get(raw_rpc_result(st), "embedded");
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(st), "state")), "ready",
	    "the shared broker's PostgreSQL did not start; see %s", p->shared.log);
	p->pg_port = (int)json_integer_value(json_object_get(emb, "port"));
	p->postmaster = (int)json_integer_value(json_object_get(emb, "pid"));
	snprintf(p->pg_socket, sizeof p->pg_socket, "%s",
	    json_string_value(json_object_get(emb, "socket_dir")));
	json_decref(st);
}

static void
start_local(struct pair *p, const char *const *extra)
{
	static char cfg[1024];
	char servers[2048], ports[32];
	const char *args[24] = { "--upstream", p->shared.url, "--state-dir", NULL,
		"--ports", NULL, "--port-quarantine-ms", "0", "--config", NULL, NULL };
	char err[512];

	snprintf(servers, sizeof servers,
	    "\"local_api\": {\"command\": [\"%s\", \"--port\", \"{port}\"],"
	    " \"needs\": {\"db\": {\"kind\": \"postgres\"}},"
	    " \"env\": {\"DB_URL\": \"{fixtures.db.url}\"},"
	    " \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},"
	    "\"local_crash\": {\"command\": [\"%s\", \"--port\", \"{port}\", \"--crash-on-start\", \"3\"],"
	    " \"needs\": {\"db\": {\"kind\": \"postgres\"}}}", httpd(), httpd());
	snprintf(p->local_state, sizeof p->local_state, "%s/fwd-local-%d", test_log_dir(), (int)getpid());
	mkdir(p->local_state, 0700);
	snprintf(ports, sizeof ports, "%d-%d", LOCAL_FIRST, LOCAL_LAST);
	args[3] = p->local_state;
	args[5] = ports;
	args[9] = config(cfg, sizeof cfg, "local.json", servers);
	for (size_t i = 0, n = 10; extra && extra[i]; i++)
		args[n++] = extra[i];
	cr_assert_eq(test_broker_start(&p->local, args, err, sizeof err), 0, "%s", err);
}

static void
pair_start(struct pair *p, const char *const *shared_extra)
{
	memset(p, 0, sizeof *p);
	start_shared(p, shared_extra);
	start_local(p, NULL);
}

static int
alive(int pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

static void
pair_stop(struct pair *p)
{
	if (p->local.pid)
		BROKER_STOP(&p->local);
	if (p->shared.pid)
		BROKER_STOP(&p->shared);
	for (uint64_t end = clock_ms() + WAIT_MS; alive(p->postmaster) && clock_ms() < end;)
		sleep_ms(20);
	cr_assert(!alive(p->postmaster), "postgres (pid %d) outlived the shared broker",
	    p->postmaster);
	test_rm_pg_state(p->local_state);
}

/* One call on a fresh connection to port; the whole reply (NULL on failure). */
static json_t *
call_on(int port, const char *method, json_t *params)
{
	struct raw_ws w;
	json_t *r;

	if (raw_ws_connect(&w, port, "fixture-broker.v1", shared_token) != 101) {
		json_decref(params);
		raw_ws_close(&w);
		return NULL;
	}
	r = raw_rpc_call(&w, method, params);
	raw_ws_close(&w);
	return r;
}

/* The shared broker's leases (admin.leases), or NULL. */
static json_t *
upstream_leases(const struct pair *p)
{
	json_t *r = call_on(p->shared.port, "admin.leases", NULL), *l;

	l = json_incref(json_object_get(raw_rpc_result(r), "leases"));
	json_decref(r);
	return l;
}

/* Waits until the shared broker holds n leases; returns how many it holds then. */
static size_t
wait_upstream_leases(const struct pair *p, size_t n)
{
	size_t have = (size_t)-1;

	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end; sleep_ms(50)) {
		json_t *l = upstream_leases(p);
		have = l ? json_array_size(l) : (size_t)-1;
		json_decref(l);
		if (have == n)
			break;
	}
	return have;
}

/* Waits until the local broker's pool has n ports leased; returns the count then. */
static long
wait_local_leased(const struct pair *p, long n)
{
	long have = -1;

	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end; sleep_ms(50))
		if ((have = test_broker_ports(&p->local, "leased")) == n)
			break;
	return have;
}

static void
ws_open(struct raw_ws *w, const struct test_broker *tb)
{
	cr_assert_eq(raw_ws_connect(w, tb->port, "fixture-broker.v1", NULL), 101);
}

/* Reads messages until a notification of method arrives (others are dropped); NULL if
 * none came within WAIT_MS. */
static json_t *
wait_notification(struct raw_ws *w, const char *method)
{
	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end;) {
		json_t *m = raw_rpc_read(w, 1000);
		const char *got = json_string_value(json_object_get(m, "method"));

		if (got && !strcmp(got, method))
			return m;
		json_decref(m);
	}
	return NULL;
}

static const char *
fixture_str(json_t *result, const char *fixture, const char *field)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(result,
	    "fixtures"), fixture), field));
}

static int
fixture_int(json_t *result, const char *fixture, const char *field)
{
	return (int)json_integer_value(json_object_get(json_object_get(json_object_get(result,
	    "fixtures"), fixture), field));
}

static char *
sql_value(const char *url, const char *sql)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	char *v = NULL;

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s: %s", url, PQerrorMessage(c));
	r = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

Test(forward, a_forwarded_database_is_on_the_shared_cluster_and_ports_stay_local,
    .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r, *res, *leases, *labels = NULL;
	const char *url, *lid;
	char *db;
	int http, found = 0;
	size_t i;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s}}, s:{s:s}}",
	    "fixtures", "db", "kind", "postgres", "http", "kind", "port", "labels", "worker", "w7"));
	res = raw_rpc_result(r);
	cr_assert_not_null(res, "acquire failed: %s; see %s", json_dumps(r, 0), p.local.log);
	lid = json_string_value(json_object_get(res, "lease"));
	url = fixture_str(res, "db", "url");
	cr_assert_not_null(url);
	cr_assert_eq(fixture_int(res, "db", "port"), p.pg_port,
	    "the database is not on the shared broker's cluster");
	db = sql_value(url, "SELECT current_database()");
	cr_assert_str_eq(db, fixture_str(res, "db", "database"));
	http = fixture_int(res, "http", "port");
	cr_assert(http >= LOCAL_FIRST && http <= LOCAL_LAST, "port %d is not the local broker's", http);

	/* The upstream holds it under the worker's labels and this runner's names. */
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1, "the shared broker holds %zu leases",
	    json_array_size(leases));
	json_array_foreach(leases, i, labels) {
		labels = json_object_get(labels, "labels");
		found = 1;
		break;
	}
	cr_assert(found);
	cr_assert_str_eq(json_string_value(json_object_get(labels, "worker")), "w7");
	cr_assert_str_eq(json_string_value(json_object_get(labels, "runner_lease")), lid);
	cr_assert_not_null(json_string_value(json_object_get(labels, "runner_host")));
	json_decref(leases);

	/* Released here, released there; the database is dropped. */
	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid)));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the upstream lease was not released");
	cr_assert_eq(wait_local_leased(&p, 0), 0);
	/* The lease is gone from both brokers at once; its database and role go with the drop
	 * job the release started, which may still be running. */
	{
		int refused = 0;
		for (uint64_t end = clock_ms() + WAIT_MS; !refused && clock_ms() < end; sleep_ms(50)) {
			PGconn *c = PQconnectdb(url);
			refused = PQstatus(c) != CONNECTION_OK;
			PQfinish(c);
		}
		cr_assert(refused, "the released database still takes logins");
	}
	free(db);
	json_decref(r);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, a_local_server_gets_the_forwarded_database_it_needs, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r, *res;
	char *body = NULL;
	const char *url;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures", "api",
	    "kind", "server", "template", "local_api"));
	res = raw_rpc_result(r);
	cr_assert_not_null(res, "acquire failed: %s; see %s", json_dumps(r, 0), p.local.log);
	url = fixture_str(res, "api.db", "url");
	cr_assert_not_null(url);
	cr_assert_eq(fixture_int(res, "api.db", "port"), p.pg_port);
	cr_assert_eq(http_get(fixture_int(res, "api", "port"), "/env/DB_URL", &body), 200);
	body[strcspn(body, "\n")] = '\0';
	cr_assert_str_eq(body, url, "the server's {fixtures.db.url} is not the forwarded database");
	free(body);
	cr_assert_eq(wait_upstream_leases(&p, 1), 1);
	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease",
	    json_string_value(json_object_get(res, "lease")))));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	json_decref(r);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, a_lease_whose_local_server_fails_releases_its_upstream_part, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	/* The server needs a database: it starts once the upstream has granted one, and then
	 * crashes, so the upstream part is held when the lease fails. */
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s}, s:{s:s}}}", "fixtures",
	    "api", "kind", "server", "template", "local_crash", "http", "kind", "port"));
	cr_assert_str_eq(raw_rpc_error_name(r), "SERVER_EXITED", "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the upstream still holds the database");
	cr_assert_eq(wait_local_leased(&p, 0), 0, "the local ports are still leased");
	r = raw_rpc_call(&w, "lease.list", NULL);
	cr_assert_eq(json_array_size(json_object_get(raw_rpc_result(r), "leases")), 0);
	json_decref(r);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, a_lease_whose_upstream_part_fails_releases_its_local_part, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s}, s:{s:s, s:s}}}",
	    "fixtures", "a", "kind", "port", "b", "kind", "port", "db", "kind", "postgres",
	    "template", "never-built-1234"));
	cr_assert_str_eq(raw_rpc_error_name(r), "PG_TEMPLATE_NOT_FOUND", "%s", json_dumps(r, 0));
	json_decref(r);
	/* An upstream-only server template that does not exist there either. */
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s, s:s}}}",
	    "fixtures", "a", "kind", "port", "web", "kind", "server", "template", "nowhere"));
	cr_assert_str_eq(raw_rpc_error_name(r), "SERVER_TEMPLATE_UNKNOWN", "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(wait_local_leased(&p, 0), 0, "the local ports are still leased");
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, reset_logs_and_server_exited_pass_through, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r, *res, *n, *params;
	const char *lid;
	char *db1, *body = NULL;
	int web;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s, s:s}}}", "fixtures",
	    "db", "kind", "postgres", "web", "kind", "server", "template", "api"));
	res = raw_rpc_result(r);
	cr_assert_not_null(res, "acquire failed: %s; see %s", json_dumps(r, 0), p.local.log);
	lid = json_string_value(json_object_get(res, "lease"));
	db1 = strdup(fixture_str(res, "db", "database"));

	/* lease.reset of the forwarded database: a fresh one, under the local lease. */
	n = raw_rpc_call(&w, "lease.reset", json_pack("{s:s, s:s}", "lease", lid, "fixture", "db"));
	cr_assert_not_null(raw_rpc_result(n), "%s", json_dumps(n, 0));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(n), "lease")), lid);
	cr_assert_str_neq(fixture_str(raw_rpc_result(n), "db", "database"), db1);
	json_decref(n);

	/* server.logs of the upstream's server. */
	n = raw_rpc_call(&w, "server.logs", json_pack("{s:s, s:s}", "lease", lid, "fixture", "web"));
	cr_assert_not_null(raw_rpc_result(n), "%s", json_dumps(n, 0));
	cr_assert_not_null(strstr(json_string_value(json_object_get(raw_rpc_result(n), "stdout")),
	    "listening on"), "%s", json_dumps(n, 0));
	json_decref(n);

	/* The upstream's server dies: the local session hears it under its own names. */
	web = fixture_int(res, "web", "port");
	cr_assert_eq(http_get(web, "/pid", &body), 200);
	cr_assert_eq(kill(atoi(body), SIGKILL), 0);
	free(body);
	n = wait_notification(&w, "server.exited");
	cr_assert_not_null(n, "no server.exited came");
	params = json_object_get(n, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), lid);
	cr_assert_str_eq(json_string_value(json_object_get(params, "fixture")), "web");
	cr_assert_str_eq(json_string_value(json_object_get(params, "signal_name")), "SIGKILL");
	json_decref(n);

	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid)));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	free(db1);
	json_decref(r);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, a_lost_upstream_ends_the_leases_that_depended_on_it, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *r, *n, *params, *st;
	const char *lid;
	char *body = NULL;

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s}}}", "fixtures",
	    "db", "kind", "postgres", "http", "kind", "port"));
	cr_assert_not_null(raw_rpc_result(r), "acquire failed: %s", json_dumps(r, 0));
	lid = json_string_value(json_object_get(raw_rpc_result(r), "lease"));
	cr_assert_eq(test_broker_ports(&p.local, "leased"), 1);

	test_broker_kill(&p.shared);
	n = wait_notification(&w, "lease.ended");
	cr_assert_not_null(n, "no lease.ended came; see %s", p.local.log);
	params = json_object_get(n, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), lid);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(params, "error"),
	    "name")), "UPSTREAM_LOST");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(params, "fixtures"), 0)),
	    "db");
	json_decref(n);
	cr_assert_eq(wait_local_leased(&p, 0), 0, "the lease's local port is still leased");
	json_decref(r);
	r = raw_rpc_call(&w, "lease.list", NULL);
	cr_assert_eq(json_array_size(json_object_get(raw_rpc_result(r), "leases")), 0);
	json_decref(r);

	/* New databases fail with a clear error; ports are still served. */
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_str_eq(raw_rpc_error_name(r), "UPSTREAM_UNAVAILABLE", "%s", json_dumps(r, 0));
	json_decref(r);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "p", "kind",
	    "port"));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(http_get(p.local.port, "/healthz", &body), 200);
	cr_assert_not_null(strstr(body, "\"upstream\":\"down\""), "%s", body);
	free(body);
	st = test_broker_status(&p.local);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "upstream"), "lost")), 1);
	json_decref(st);
	raw_ws_close(&w);

	/* The shared broker again on its state: it sweeps what the killed one left, and its
	 * postmaster goes with it. */
	start_shared(&p, NULL);
	pair_stop(&p);
}

Test(forward, the_upstream_token_is_sent_and_a_wrong_one_is_a_clear_error, .timeout = 120)
{
	char tokens[512], good[512], bad[512];
	const char *shared_extra[] = { "--token-file", tokens, NULL };
	const char *local_bad[] = { "--upstream-token-file", bad, NULL };
	const char *local_good[] = { "--upstream-token-file", good, NULL };
	struct pair p;
	struct raw_ws w;
	json_t *r, *st;
	const char *last;

	cr_assert_eq(temp_file(tokens, sizeof tokens, "tokens", "fwd-good-token ci admin=true\n"), 0);
	cr_assert_eq(temp_file(good, sizeof good, "good", "fwd-good-token\n"), 0);
	cr_assert_eq(temp_file(bad, sizeof bad, "bad", "fwd-wrong-token\n"), 0);
	shared_token = "fwd-good-token";
	memset(&p, 0, sizeof p);
	start_shared(&p, shared_extra);

	start_local(&p, local_bad);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_str_eq(raw_rpc_error_name(r), "UPSTREAM_UNAVAILABLE", "%s", json_dumps(r, 0));
	json_decref(r);
	st = test_broker_status(&p.local);
	last = json_string_value(json_object_get(json_object_get(st, "upstream"), "last_error"));
	cr_assert(last && strstr(last, "UNAUTHENTICATED") == NULL && strstr(last, "refused"),
	    "last_error: %s", last ? last : "(none)");
	json_decref(st);
	raw_ws_close(&w);
	BROKER_STOP(&p.local);

	start_local(&p, local_good);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.local.log);
	json_decref(r);
	cr_assert_eq(wait_upstream_leases(&p, 1), 1);
	raw_ws_close(&w);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the closed session's lease stayed upstream");
	pair_stop(&p);
	shared_token = NULL;
}

Test(forward, two_local_sessions_ensuring_one_hash_get_one_builder, .timeout = 120)
{
	struct pair p;
	struct raw_ws a, b;
	json_t *r, *rb;
	char hash[64];

	snprintf(hash, sizeof hash, "fwd-build-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	pair_start(&p, NULL);
	ws_open(&a, &p.local);
	ws_open(&b, &p.local);
	r = raw_rpc_call(&a, "pg.template.ensure", json_pack("{s:s}", "hash", hash));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(r), "state")), "build",
	    "%s", json_dumps(r, 0));
	cr_assert_eq((int)json_integer_value(json_object_get(raw_rpc_result(r), "port")), p.pg_port);
	json_decref(r);

	/* The upstream sees one session: b must wait here for a's build, not build too. */
	cr_assert_eq(raw_rpc_send(&b, 7, "pg.template.ensure", json_pack("{s:s}", "hash", hash)), 0);
	rb = raw_rpc_read(&b, 1000);
	cr_assert_null(rb, "the second session got an answer while the first builds: %s",
	    json_dumps(rb, 0));
	r = raw_rpc_call(&b, "pg.template.finish", json_pack("{s:s}", "hash", hash));
	cr_assert_str_eq(raw_rpc_error_name(r), "PG_NOT_BUILDER", "%s", json_dumps(r, 0));
	json_decref(r);

	r = raw_rpc_call(&a, "pg.template.finish", json_pack("{s:s}", "hash", hash));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	rb = raw_rpc_read(&b, WAIT_MS);
	cr_assert_not_null(rb, "the waiting ensure was never answered");
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(rb), "state")), "ready",
	    "%s", json_dumps(rb, 0));
	json_decref(rb);

	r = raw_rpc_call(&b, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures", "db",
	    "kind", "postgres", "template", hash));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	r = raw_rpc_call(&a, "pg.status", NULL);
	cr_assert_not_null(json_object_get(raw_rpc_result(r), "templates"), "%s", json_dumps(r, 0));
	json_decref(r);
	raw_ws_close(&a);
	raw_ws_close(&b);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
}

/* ---- a TCP relay between the local broker and the shared one, to cut the link ---- */

#define RELAY_MAX 8

struct relay {
	int lfd, port, target;
	int ctl[2];            /* commands: 'c' cut, 'r' refuse, 'a' accept, 'b' blackhole, 'q' */
	volatile int next_target; /* set by the test thread, then 'a': connect there from now on */
	int refuse, blackhole; /* the relay thread's */
	int fd[RELAY_MAX][2];  /* [i][0] the local broker's side, [i][1] the shared one's */
	pthread_t th;
};

static void
relay_close_all(struct relay *r)
{
	for (int i = 0; i < RELAY_MAX; i++) {
		if (r->fd[i][0] < 0)
			continue;
		close(r->fd[i][0]);
		close(r->fd[i][1]);
		r->fd[i][0] = r->fd[i][1] = -1;
	}
}

static void *
relay_run(void *arg)
{
	struct relay *r = arg;
	char buf[65536];

	for (;;) {
		struct pollfd p[2 + 2 * RELAY_MAX];
		int n = 0, map[2 + 2 * RELAY_MAX][2];

		p[n].fd = r->ctl[0];
		p[n++].events = POLLIN;
		p[n].fd = r->lfd;
		p[n++].events = POLLIN;
		for (int i = 0; i < RELAY_MAX; i++) {
			if (r->fd[i][0] < 0)
				continue;
			for (int side = 0; side < 2; side++) {
				map[n][0] = i;
				map[n][1] = side;
				p[n].fd = r->fd[i][side];
				p[n++].events = POLLIN;
			}
		}
		if (poll(p, (nfds_t)n, -1) < 0)
			continue;
		if (p[0].revents) {
			char c = 0;
			if (read(r->ctl[0], &c, 1) != 1 || c == 'q') {
				relay_close_all(r);
				return NULL;
			}
			if (c == 'c') {
				relay_close_all(r);
				r->blackhole = 0;
			}
			if (c == 'a' && r->next_target)
				r->target = r->next_target;
			r->refuse = c == 'r' ? 1 : c == 'a' ? 0 : r->refuse;
			r->blackhole = c == 'b' ? 1 : r->blackhole;
			continue;
		}
		if (p[1].revents) {
			int cfd = accept(r->lfd, NULL, NULL), ufd, slot;
			struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->target),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

			for (slot = 0; slot < RELAY_MAX && r->fd[slot][0] >= 0; slot++)
				;
			if (cfd < 0)
				continue;
			if (r->refuse || slot == RELAY_MAX || (ufd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
				close(cfd);
				continue;
			}
			if (connect(ufd, (struct sockaddr *)&sa, sizeof sa) < 0) {
				close(ufd);
				close(cfd);
				continue;
			}
			r->fd[slot][0] = cfd;
			r->fd[slot][1] = ufd;
			continue;
		}
		for (int k = 2; k < n; k++) {
			int i = map[k][0], side = map[k][1];
			ssize_t got;

			if (!p[k].revents || r->fd[i][0] < 0)
				continue;
			got = read(r->fd[i][side], buf, sizeof buf);
			if (got <= 0) {
				close(r->fd[i][0]);
				close(r->fd[i][1]);
				r->fd[i][0] = r->fd[i][1] = -1;
				continue;
			}
			if (side == 1 && r->blackhole)
				continue; /* what the shared broker says is lost on the way */
			if (write(r->fd[i][!side], buf, (size_t)got) != got) {
				close(r->fd[i][0]);
				close(r->fd[i][1]);
				r->fd[i][0] = r->fd[i][1] = -1;
			}
		}
	}
}

static void
relay_start(struct relay *r, int target)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;

	memset(r, 0, sizeof *r);
	memset(r->fd, -1, sizeof r->fd);
	r->target = target;
	cr_assert((r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(r->lfd, 8), 0);
	cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	cr_assert_eq(pipe(r->ctl), 0);
	cr_assert_eq(pthread_create(&r->th, NULL, relay_run, r), 0);
}

static void
relay_cmd(struct relay *r, char c)
{
	cr_assert_eq(write(r->ctl[1], &c, 1), 1);
	sleep_ms(50); /* the relay thread has read it by then */
}

static void
relay_stop(struct relay *r)
{
	relay_cmd(r, 'q');
	pthread_join(r->th, NULL);
	close(r->lfd);
	close(r->ctl[0]);
	close(r->ctl[1]);
}

/* Starts the shared broker (with shared_extra) and a local one (with local_extra) that
 * reaches it through relay r. */
static void
pair_start_relayed_with(struct pair *p, struct relay *r, const char *const *shared_extra,
    const char *const *local_extra)
{
	char url[64];

	memset(p, 0, sizeof *p);
	start_shared(p, shared_extra);
	relay_start(r, p->shared.port);
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", r->port);
	snprintf(p->shared.url, sizeof p->shared.url, "%s", url); /* what start_local dials */
	start_local(p, local_extra);
}

/* Starts the shared broker and a local one that reaches it through relay r. */
static void
pair_start_relayed(struct pair *p, struct relay *r, const char *grace_ms)
{
	const char *shared_extra[] = { "--grace-ms", grace_ms, NULL };

	pair_start_relayed_with(p, r, shared_extra, NULL);
}

/* Waits until the local broker's upstream session is up; 0 when it is. */
static int
wait_up(const struct pair *p)
{
	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end; sleep_ms(50)) {
		json_t *st = test_broker_status(&p->local);
		const char *state = json_string_value(json_object_get(json_object_get(st, "upstream"),
		    "state"));
		int up = state && !strcmp(state, "up");

		json_decref(st);
		if (up)
			return 0;
	}
	return -1;
}

/* The local broker's upstream counter name, or -1. */
static long
upstream_counter(const struct pair *p, const char *name)
{
	json_t *st = test_broker_status(&p->local);
	long v = st ? (long)json_integer_value(json_object_get(json_object_get(st, "upstream"),
	    name)) : -1;

	json_decref(st);
	return v;
}

static long
wait_counter(const struct pair *p, const char *name, long n)
{
	long v = -1;

	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end; sleep_ms(50))
		if ((v = upstream_counter(p, name)) == n)
			break;
	return v;
}

Test(forward, a_cut_link_is_resumed_and_the_forwarded_leases_stay, .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a, *leases;
	const char *url, *lid;
	char *one, ulid[64];

	pair_start_relayed(&p, &r, "5000");
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s", json_dumps(a, 0));
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));
	url = fixture_str(raw_rpc_result(a), "db", "url");
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1);
	snprintf(ulid, sizeof ulid, "%s", json_string_value(json_object_get(json_array_get(leases, 0),
	    "lease")));
	json_decref(leases);

	relay_cmd(&r, 'c');
	cr_assert_eq(wait_counter(&p, "resumes", 1), 1, "the session was not resumed; see %s",
	    p.local.log);
	cr_assert_eq(upstream_counter(&p, "lost"), 0);
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "lease")), ulid,
	    "the upstream lease changed over the resume");
	json_decref(leases);
	one = sql_value(url, "SELECT 1");
	cr_assert_str_eq(one, "1");
	free(one);

	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid)));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	json_decref(a);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
}

Test(forward, a_lease_granted_while_the_link_was_cut_is_released_after_the_resume,
    .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a;

	pair_start_relayed(&p, &r, "5000");
	ws_open(&w, &p.local);
	cr_assert_eq(wait_up(&p), 0, "the upstream session never came up; see %s", p.local.log);
	/* The shared broker's replies are lost from now on: it grants the database, and the
	 * local broker never hears of it. */
	relay_cmd(&r, 'b');
	cr_assert_eq(raw_rpc_send(&w, 1, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures",
	    "db", "kind", "postgres")), 0);
	cr_assert_eq(wait_upstream_leases(&p, 1), 1, "the shared broker granted nothing");
	relay_cmd(&r, 'c');
	a = raw_rpc_read(&w, WAIT_MS);
	cr_assert_str_eq(raw_rpc_error_name(a), "UPSTREAM_UNAVAILABLE", "%s", json_dumps(a, 0));
	json_decref(a);
	cr_assert_eq(wait_counter(&p, "resumes", 1), 1, "the session was not resumed; see %s",
	    p.local.log);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the orphaned upstream lease is still held");
	cr_assert_eq(upstream_counter(&p, "lost"), 0);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
}

Test(forward, a_lease_still_starting_upstream_when_the_link_was_cut_is_released_once_granted,
    .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a, *leases;

	pair_start_relayed(&p, &r, "5000");
	ws_open(&w, &p.local);
	cr_assert_eq(wait_up(&p), 0, "the upstream session never came up; see %s", p.local.log);
	relay_cmd(&r, 'b');
	cr_assert_eq(raw_rpc_send(&w, 1, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}",
	    "fixtures", "web", "kind", "server", "template", "slow")), 0);
	cr_assert_eq(wait_upstream_leases(&p, 1), 1, "the shared broker has no lease");
	leases = upstream_leases(&p);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "state")),
	    "acquiring", "the server started too soon for this test");
	json_decref(leases);
	relay_cmd(&r, 'c');
	a = raw_rpc_read(&w, WAIT_MS);
	cr_assert_str_eq(raw_rpc_error_name(a), "UPSTREAM_UNAVAILABLE", "%s", json_dumps(a, 0));
	json_decref(a);
	cr_assert_eq(wait_counter(&p, "resumes", 1), 1);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the orphan was not released once granted");
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
}

Test(forward, a_link_not_back_within_the_upstream_grace_period_loses_the_session,
    .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a, *n;
	const char *lid;

	pair_start_relayed(&p, &r, "1000");
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s", json_dumps(a, 0));
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));
	relay_cmd(&r, 'r');
	relay_cmd(&r, 'c');
	n = wait_notification(&w, "lease.ended");
	cr_assert_not_null(n, "no lease.ended came; see %s", p.local.log);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(n, "params"), "lease")),
	    lid);
	json_decref(n);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the shared broker kept the lost session's lease");

	/* The link comes back: a fresh session, and databases again. */
	relay_cmd(&r, 'a');
	cr_assert_eq(wait_counter(&p, "lost", 1), 1);
	cr_assert_eq(wait_up(&p), 0, "no fresh upstream session; see %s", p.local.log);
	json_decref(a);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "no database after the link came back: %s",
	    json_dumps(a, 0));
	json_decref(a);
	raw_ws_close(&w);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
	relay_stop(&r);
}

Test(forward, a_wss_upstream_is_verified_against_upstream_ca, .timeout = 120)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char dir[] = "/tmp/fxb-fwd-tls-XXXXXX", cmd[2048], ca[64], cert[64], key[64];
	struct pair p;
	struct raw_ws w;
	json_t *r, *st;
	const char *last, *url;
	char *one;

	memset(&p, 0, sizeof p);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cmd, sizeof cmd, "cd %s && openssl req -x509 %s -days 2 -subj /CN=ca -keyout ca.key "
	    "-out ca.pem 2>/dev/null && openssl req %s -subj /CN=shared -keyout server.key "
	    "-out server.csr 2>/dev/null && echo subjectAltName=IP:127.0.0.1 > server.ext && "
	    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-extfile server.ext -out server.pem 2>/dev/null && chmod 600 server.key", dir, ec, ec);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	{
		const char *args[] = { "--state-dir", shared_state(), "--ports", "28800-28899",
			"--tls-cert", cert, "--tls-key", key, NULL };
		char err[512];
		cr_assert_eq(test_broker_start(&p.shared, args, err, sizeof err), 0, "%s", err);
	}
	cr_assert_eq(strncmp(p.shared.url, "wss://", 6), 0, "%s", p.shared.url);

	/* Without the CA (the system's do not know it): refused, and said so. */
	start_local(&p, NULL);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_str_eq(raw_rpc_error_name(r), "UPSTREAM_UNAVAILABLE", "%s", json_dumps(r, 0));
	json_decref(r);
	st = test_broker_status(&p.local);
	last = json_string_value(json_object_get(json_object_get(st, "upstream"), "last_error"));
	cr_assert(last && strstr(last, "upstream_ca"), "last_error: %s", last ? last : "(none)");
	json_decref(st);
	raw_ws_close(&w);
	BROKER_STOP(&p.local);

	{
		const char *local_ca[] = { "--upstream-ca", ca, NULL };
		start_local(&p, local_ca);
	}
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.local.log);
	url = fixture_str(raw_rpc_result(r), "db", "url");
	one = sql_value(url, "SELECT 1");
	cr_assert_str_eq(one, "1");
	free(one);
	json_decref(r);
	raw_ws_close(&w);
	BROKER_STOP(&p.local);
	BROKER_STOP(&p.shared);
	test_rm_pg_state(p.local_state);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(forward, a_local_builder_that_goes_away_passes_the_build_to_the_next_session,
    .timeout = 120)
{
	const char *local_extra[] = { "--grace-ms", "200", NULL };
	struct pair p;
	struct raw_ws a, b;
	json_t *r, *rb;
	char hash[64];

	snprintf(hash, sizeof hash, "fwd-gone-%d-%llu", (int)getpid(),
	    (unsigned long long)clock_ms());
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);
	start_local(&p, local_extra);
	ws_open(&a, &p.local);
	ws_open(&b, &p.local);
	r = raw_rpc_call(&a, "pg.template.ensure", json_pack("{s:s}", "hash", hash));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(r), "state")), "build",
	    "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(raw_rpc_send(&b, 3, "pg.template.ensure", json_pack("{s:s}", "hash", hash)), 0);
	rb = raw_rpc_read(&b, 500);
	cr_assert_null(rb, "answered while another session builds: %s", json_dumps(rb, 0));

	/* The builder's worker dies: its build is discarded upstream, and b builds. */
	raw_ws_close(&a);
	rb = raw_rpc_read(&b, WAIT_MS);
	cr_assert_not_null(rb, "the waiting ensure was never answered; see %s", p.local.log);
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(rb), "state")), "build",
	    "%s", json_dumps(rb, 0));
	json_decref(rb);
	r = raw_rpc_call(&b, "pg.template.finish", json_pack("{s:s}", "hash", hash));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	raw_ws_close(&b);
	pair_stop(&p);
}

Test(forward, an_upstream_that_restarted_refuses_the_resume_and_its_leases_end,
    .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a, *n;
	const char *lid;

	pair_start_relayed(&p, &r, "15000");
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s", json_dumps(a, 0));
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));

	/* The shared broker dies and comes back (a new instance, on its state) before the
	 * session's grace period would have passed: it does not know the session. */
	relay_cmd(&r, 'r');
	test_broker_kill(&p.shared);
	start_shared(&p, NULL);
	r.next_target = p.shared.port;
	relay_cmd(&r, 'a');
	n = wait_notification(&w, "lease.ended");
	cr_assert_not_null(n, "no lease.ended came; see %s", p.local.log);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(n, "params"), "lease")),
	    lid);
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_object_get(n, "params"),
	    "reason")), "no longer knows"), "%s", json_dumps(n, 0));
	json_decref(n);
	cr_assert_eq(upstream_counter(&p, "resumes"), 0);
	cr_assert_eq(wait_up(&p), 0, "no fresh upstream session; see %s", p.local.log);
	json_decref(a);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s", json_dumps(a, 0));
	json_decref(a);
	raw_ws_close(&w);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
	relay_stop(&r);
}

/* ---- templates of the local configuration, built through the upstream ---- */

/* A directory for a configured template "app": schema.sql, its input, and runs, a line
 * per run of its migrate command (sh: a line to runs, then psql -f schema.sql on {url}). */
static void
tpl_dir(char *dir, size_t len, const char *tag, const char *schema)
{
	char path[700];
	FILE *f;

	snprintf(dir, len, "%s/fwd-tpl-%s-%d-%llu", test_log_dir(), tag, (int)getpid(),
	    (unsigned long long)clock_ms());
	cr_assert_eq(mkdir(dir, 0755), 0, "%s: %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/schema.sql", dir);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(schema, f);
	fclose(f);
}

static int
tpl_runs(const char *dir)
{
	char path[700], line[64];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/runs", dir);
	if (!(f = fopen(path, "r")))
		return 0;
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n;
}

static void
tpl_rm(const char *dir)
{
	char cmd[700];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

#define MIGRATE_SH "echo run >> runs && psql -X -q -v ON_ERROR_STOP=1 -d \\\"$1\\\" -f schema.sql"

/* Starts a local broker (into tb, state directory under state) on p's shared broker with
 * template "app" of dir in its configuration: its migrate command is sh -c script with
 * {url} as $1 (MIGRATE_SH, or script when not NULL), its timeout timeout_ms. */
static void
start_local_tpl_with(struct pair *p, struct test_broker *tb, char *state, size_t statelen,
    const char *dir, const char *script, int timeout_ms)
{
	static char cfg[2][1024];
	static int which;
	char text[2048], ports[32], err[512], name[32];
	const char *args[16] = { "--upstream", p->shared.url, "--state-dir", state, "--ports",
		ports, "--port-quarantine-ms", "0", "--config", NULL, NULL };

	snprintf(text, sizeof text, "{\"postgres\": {\"templates\": {\"app\": {"
	    "\"migrate\": [\"sh\", \"-c\", \"%s\", \"migrate\", \"{url}\"],"
	    " \"inputs\": [\"schema.sql\"], \"cwd\": \"%s\", \"timeout_ms\": %d}}}}",
	    script ? script : MIGRATE_SH, dir, timeout_ms);
	which = !which;
	snprintf(name, sizeof name, "local-tpl-%d.json", which);
	cr_assert_eq(temp_file(cfg[which], sizeof cfg[which], name, text), 0);
	args[9] = cfg[which];
	snprintf(state, statelen, "%s/fwd-local-%d-%d", test_log_dir(), (int)getpid(), which);
	mkdir(state, 0700);
	snprintf(ports, sizeof ports, "%d-%d", LOCAL_FIRST, LOCAL_LAST);
	cr_assert_eq(test_broker_start(tb, args, err, sizeof err), 0, "%s", err);
}

static void
start_local_tpl(struct pair *p, struct test_broker *tb, char *state, size_t statelen,
    const char *dir)
{
	start_local_tpl_with(p, tb, state, statelen, dir, NULL, 60000);
}

/* A number from the shared cluster, as its superuser. */
static long
shared_num(const struct pair *p, const char *sql)
{
	char ci[700];
	PGconn *c;
	PGresult *r;
	long v;

	snprintf(ci, sizeof ci, "host=%s port=%d user=postgres dbname=postgres", p->pg_socket,
	    p->pg_port);
	c = PQconnectdb(ci);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	r = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

static long
shared_builds(const struct pair *p)
{
	json_t *st = call_on(p->shared.port, "pg.status", NULL);
	long n = (long)json_integer_value(json_object_get(raw_rpc_result(st), "template_builds"));

	json_decref(st);
	return n;
}

#define APP_DB "{s:{s:{s:s, s:s}}}", "fixtures", "db", "kind", "postgres", "template", "app"

/* Sends an acquire of a database of "app" on each of n connections, then reads the
 * replies into out (all at once, so the acquires wait for one build together). */
static void
acquire_all(struct raw_ws *w, size_t n, json_t **out)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(raw_rpc_send(&w[i], 100 + (json_int_t)i, "lease.acquire",
		    json_pack(APP_DB)), 0);
	for (size_t i = 0; i < n; i++) {
		out[i] = raw_rpc_read(&w[i], 2 * WAIT_MS);
		cr_assert_not_null(out[i], "acquire %zu was not answered", i);
	}
}

#define WORKERS 6

Test(forward, a_configured_template_is_built_once_upstream_for_many_local_workers,
    .timeout = 180)
{
	struct pair p;
	struct raw_ws w[WORKERS];
	json_t *r[WORKERS], *e;
	char dir[600];
	char *v;

	tpl_dir(dir, sizeof dir, "once", "CREATE TABLE widgets (id int PRIMARY KEY, name text);\n"
	    "INSERT INTO widgets VALUES (1, 'sprocket');\n");
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);
	start_local_tpl(&p, &p.local, p.local_state, sizeof p.local_state, dir);
	for (size_t i = 0; i < WORKERS; i++)
		ws_open(&w[i], &p.local);
	acquire_all(w, WORKERS, r);
	for (size_t i = 0; i < WORKERS; i++) {
		json_t *res = raw_rpc_result(r[i]);
		cr_assert_not_null(res, "acquire %zu: %s; see %s", i, json_dumps(r[i], 0), p.local.log);
		cr_assert_eq(fixture_int(res, "db", "port"), p.pg_port);
		cr_assert_str_eq(fixture_str(res, "db", "template"), "app");
		v = sql_value(fixture_str(res, "db", "url"), "SELECT name FROM widgets WHERE id = 1");
		cr_assert_str_eq(v, "sprocket", "the clone does not hold what the migration made");
		free(v);
	}
	cr_assert_eq(tpl_runs(dir), 1, "the migrate command ran %d times", tpl_runs(dir));
	cr_assert_eq(shared_builds(&p), 1, "the shared broker built %ld templates",
	    shared_builds(&p));

	/* pg.template.ensure of the name: the same inputs, the same key, ready, no new run. */
	e = raw_rpc_call(&w[0], "pg.template.ensure", json_pack("{s:s}", "hash", "app"));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(e), "state")), "ready",
	    "%s", json_dumps(e, 0));
	cr_assert_eq(strncmp(json_string_value(json_object_get(raw_rpc_result(e), "key")),
	    "conf:app:", 9), 0, "%s", json_dumps(e, 0));
	json_decref(e);
	e = raw_rpc_call(&w[0], "pg.template.finish", json_pack("{s:s}", "hash", "app"));
	cr_assert_str_eq(raw_rpc_error_name(e), "PG_NOT_BUILDER", "%s", json_dumps(e, 0));
	json_decref(e);
	cr_assert_eq(tpl_runs(dir), 1);
	cr_assert_eq(shared_builds(&p), 1);

	for (size_t i = 0; i < WORKERS; i++) {
		json_decref(r[i]);
		raw_ws_close(&w[i]);
	}
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
	tpl_rm(dir);
}

Test(forward, two_local_brokers_with_the_same_inputs_build_the_template_once,
    .timeout = 180)
{
	struct pair p;
	struct test_broker second;
	char state2[600], dir[600];
	struct raw_ws w[2];
	json_t *r[2];

	tpl_dir(dir, sizeof dir, "two", "CREATE TABLE gears (teeth int);\n"
	    "INSERT INTO gears VALUES (12);\n");
	memset(&p, 0, sizeof p);
	memset(&second, 0, sizeof second);
	start_shared(&p, NULL);
	start_local_tpl(&p, &p.local, p.local_state, sizeof p.local_state, dir);
	start_local_tpl(&p, &second, state2, sizeof state2, dir);
	ws_open(&w[0], &p.local);
	ws_open(&w[1], &second);
	/* Both at once: one builds, the other's ensure waits upstream for it. */
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(raw_rpc_send(&w[i], 1, "lease.acquire", json_pack(APP_DB)), 0);
	for (size_t i = 0; i < 2; i++) {
		char *v;
		r[i] = raw_rpc_read(&w[i], 2 * WAIT_MS);
		cr_assert_not_null(raw_rpc_result(r[i]), "broker %zu: %s; see %s and %s", i,
		    json_dumps(r[i], 0), p.local.log, second.log);
		v = sql_value(fixture_str(raw_rpc_result(r[i]), "db", "url"), "SELECT teeth FROM gears");
		cr_assert_str_eq(v, "12");
		free(v);
		json_decref(r[i]);
		raw_ws_close(&w[i]);
	}
	cr_assert_eq(tpl_runs(dir), 1, "the migrate command ran %d times", tpl_runs(dir));
	cr_assert_eq(shared_builds(&p), 1);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	BROKER_STOP(&second);
	test_rm_pg_state(state2);
	pair_stop(&p);
	tpl_rm(dir);
}

Test(forward, changed_inputs_of_a_configured_template_build_a_new_version, .timeout = 180)
{
	struct pair p;
	struct raw_ws w;
	json_t *r, *e;
	char dir[600], path[700], *v, *key1;
	FILE *f;

	tpl_dir(dir, sizeof dir, "changed", "CREATE TABLE cogs (id int);\n");
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);
	start_local_tpl(&p, &p.local, p.local_state, sizeof p.local_state, dir);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack(APP_DB));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.local.log);
	json_decref(r);
	e = raw_rpc_call(&w, "pg.template.ensure", json_pack("{s:s}", "hash", "app"));
	cr_assert_not_null(raw_rpc_result(e), "%s", json_dumps(e, 0));
	key1 = strdup(json_string_value(json_object_get(raw_rpc_result(e), "key")));
	json_decref(e);
	cr_assert_eq(tpl_runs(dir), 1);

	/* A new migration: ensure hashes the inputs again, a new key is built once. */
	snprintf(path, sizeof path, "%s/schema.sql", dir);
	cr_assert_not_null(f = fopen(path, "a"));
	fputs("CREATE TABLE sprockets (id int);\n", f);
	fclose(f);
	e = raw_rpc_call(&w, "pg.template.ensure", json_pack("{s:s}", "hash", "app"));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(e), "state")), "ready",
	    "%s; see %s", json_dumps(e, 0), p.local.log);
	cr_assert_str_neq(json_string_value(json_object_get(raw_rpc_result(e), "key")), key1,
	    "changed inputs kept the key");
	json_decref(e);
	cr_assert_eq(tpl_runs(dir), 2, "the migrate command ran %d times", tpl_runs(dir));
	cr_assert_eq(shared_builds(&p), 2);
	r = raw_rpc_call(&w, "lease.acquire", json_pack(APP_DB));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	v = sql_value(fixture_str(raw_rpc_result(r), "db", "url"),
	    "SELECT count(*) FROM pg_tables WHERE tablename IN ('cogs', 'sprockets')");
	cr_assert_str_eq(v, "2", "the new clone is not of the new version");
	free(v);
	free(key1);
	json_decref(r);
	raw_ws_close(&w);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
	tpl_rm(dir);
}

#define BUILD_OBJECTS "SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_%') " \
	"+ (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'fxb\\_%' AND rolcanlogin)"

Test(forward, a_failing_migrate_fails_with_its_output_and_leaves_nothing, .timeout = 180)
{
	struct pair p;
	struct raw_ws w[2];
	json_t *r[2], *e;
	char dir[600];
	long before;

	tpl_dir(dir, sizeof dir, "fails", "CREATE TABLE broken (;\n");
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);
	start_local_tpl(&p, &p.local, p.local_state, sizeof p.local_state, dir);
	before = shared_num(&p, BUILD_OBJECTS);
	ws_open(&w[0], &p.local);
	ws_open(&w[1], &p.local);
	acquire_all(w, 2, r);
	for (size_t i = 0; i < 2; i++) {
		json_t *data = json_object_get(json_object_get(r[i], "error"), "data");
		cr_assert_str_eq(raw_rpc_error_name(r[i]), "PG_TEMPLATE_BUILD_FAILED", "%s",
		    json_dumps(r[i], 0));
		cr_assert_not_null(strstr(json_string_value(json_object_get(json_object_get(r[i],
		    "error"), "message")), "syntax error"), "%s", json_dumps(r[i], 0));
		cr_assert_not_null(strstr(json_string_value(json_object_get(data, "output")) ?
		    json_string_value(json_object_get(data, "output")) : "", "syntax error"), "%s",
		    json_dumps(r[i], 0));
		json_decref(r[i]);
	}
	cr_assert_eq(tpl_runs(dir), 1, "one build for both acquires, ran %d times", tpl_runs(dir));
	e = raw_rpc_call(&w[0], "pg.template.ensure", json_pack("{s:s}", "hash", "app"));
	cr_assert_str_eq(raw_rpc_error_name(e), "PG_TEMPLATE_BUILD_FAILED", "%s", json_dumps(e, 0));
	json_decref(e);
	cr_assert_eq(tpl_runs(dir), 2, "a failed build is tried again on the next ensure");
	cr_assert_eq(shared_num(&p, BUILD_OBJECTS), before,
	    "the failed builds left databases or login roles on the shared cluster");
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	cr_assert_eq(test_broker_ports(&p.local, "leased"), 0);
	raw_ws_close(&w[0]);
	raw_ws_close(&w[1]);
	pair_stop(&p);
	tpl_rm(dir);
}

Test(forward, a_migrate_that_outlives_its_timeout_is_killed_with_what_it_started,
    .timeout = 180)
{
	struct pair p;
	struct raw_ws w;
	json_t *r;
	char dir[600], path[700], line[32] = "";
	long before;
	int sleeper, gone = 0;
	FILE *f;

	tpl_dir(dir, sizeof dir, "slow", "CREATE TABLE never (id int);\n");
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);
	/* A child of the command that would outlive it: killed with it, as its group. */
	start_local_tpl_with(&p, &p.local, p.local_state, sizeof p.local_state, dir,
	    "echo run >> runs; echo started; sleep 60 & echo $! > sleeper; wait", 1000);
	before = shared_num(&p, BUILD_OBJECTS);
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack(APP_DB));
	cr_assert_str_eq(raw_rpc_error_name(r), "PG_TEMPLATE_BUILD_FAILED", "%s", json_dumps(r, 0));
	cr_assert_not_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
	    "message")), "timed out"), "%s", json_dumps(r, 0));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(r,
	    "error"), "data"), "output")), "started", "%s", json_dumps(r, 0));
	json_decref(r);
	snprintf(path, sizeof path, "%s/sleeper", dir);
	cr_assert_not_null(f = fopen(path, "r"));
	cr_assert_not_null(fgets(line, sizeof line, f));
	fclose(f);
	sleeper = atoi(line);
	cr_assert_gt(sleeper, 0);
	for (uint64_t end = clock_ms() + WAIT_MS; !gone && clock_ms() < end; sleep_ms(50)) {
		char stat[64], buf[256] = "";
		FILE *sf;
		snprintf(stat, sizeof stat, "/proc/%d/stat", sleeper);
		if (!(sf = fopen(stat, "r"))) {
			gone = 1;
			break;
		}
		if (fgets(buf, sizeof buf, sf) && strstr(buf, ") Z "))
			gone = 1; /* killed, not yet reaped */
		fclose(sf);
	}
	cr_assert(gone, "the migrate command's child (pid %d) outlived its timeout", sleeper);
	cr_assert_eq(shared_num(&p, BUILD_OBJECTS), before, "the timed-out build was left");
	raw_ws_close(&w);
	pair_stop(&p);
	tpl_rm(dir);
}

/* ---- a tenant with sessions=1 upstream: its resume is not a second session ---- */

#define QUOTA_TOKENS "fwd-q-token ci sessions=1\nfwd-admin ops admin=true\n"

/* A relayed pair whose local broker is tenant ci (sessions=1) upstream; tokens gets the
 * shared broker's token file, and the test reads the shared one as the ops admin. */
static void
pair_start_quota(struct pair *p, struct relay *r, char *tokens, size_t len)
{
	static char local_token[512];
	const char *shared_extra[] = { "--grace-ms", "15000", "--token-file", tokens, NULL };
	const char *local_extra[] = { "--upstream-token-file", local_token, NULL };

	cr_assert_eq(temp_file(tokens, len, "quota-tokens", QUOTA_TOKENS), 0);
	cr_assert_eq(temp_file(local_token, sizeof local_token, "quota-token", "fwd-q-token\n"), 0);
	shared_token = "fwd-admin";
	pair_start_relayed_with(p, r, shared_extra, local_extra);
	cr_assert_eq(wait_up(p), 0, "the upstream session never came up; see %s", p->local.log);
}

Test(forward, a_cut_link_of_a_tenant_with_one_session_is_resumed, .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	char tokens[512], ulid[64];
	json_t *a, *leases;

	pair_start_quota(&p, &r, tokens, sizeof tokens);
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s; see %s", json_dumps(a, 0), p.local.log);
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1);
	snprintf(ulid, sizeof ulid, "%s", json_string_value(json_object_get(json_array_get(leases, 0),
	    "lease")));
	json_decref(leases);

	/* The session in its grace period upstream is the tenant's one session: its resume
	 * takes its place, it is not a second one over the quota. */
	relay_cmd(&r, 'c');
	cr_assert_eq(wait_counter(&p, "resumes", 1), 1, "the session was not resumed; see %s and %s",
	    p.local.log, p.shared.log);
	cr_assert_eq(upstream_counter(&p, "lost"), 0);
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "lease")), ulid);
	json_decref(leases);
	/* And the tenant still counts one session, not none: a second one is refused. */
	{
		struct raw_ws x;
		json_t *h;

		cr_assert_eq(raw_ws_connect(&x, p.shared.port, "fixture-broker.v1", NULL), 101);
		h = raw_rpc_call(&x, "session.hello", json_pack("{s:s}", "token", "fwd-q-token"));
		cr_assert_str_eq(raw_rpc_error_name(h), "QUOTA_EXCEEDED", "%s", json_dumps(h, 0));
		json_decref(h);
		raw_ws_close(&x);
	}

	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease",
	    json_string_value(json_object_get(raw_rpc_result(a), "lease")))));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	json_decref(a);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
	shared_token = NULL;
}

Test(forward, a_refused_resume_ends_the_local_leases, .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	char tokens[512], tmp[600];
	const char *lid;
	json_t *a, *n, *params;
	FILE *f;

	pair_start_quota(&p, &r, tokens, sizeof tokens);
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s}}}", "fixtures", "db",
	    "kind", "postgres", "http", "kind", "port"));
	cr_assert_not_null(raw_rpc_result(a), "%s; see %s", json_dumps(a, 0), p.local.log);
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));
	cr_assert_eq(wait_local_leased(&p, 1), 1);

	/* The local broker's token is removed upstream: its session there is closed, and its
	 * resume is refused (UNAUTHENTICATED): the session is lost, and so are its leases. */
	snprintf(tmp, sizeof tmp, "%s.new", tokens);
	cr_assert_not_null(f = fopen(tmp, "w"));
	fputs("fwd-admin ops admin=true\n", f);
	fclose(f);
	cr_assert_eq(rename(tmp, tokens), 0);
	cr_assert_eq(kill(p.shared.pid, SIGHUP), 0);
	n = wait_notification(&w, "lease.ended");
	cr_assert_not_null(n, "no lease.ended came; see %s", p.local.log);
	params = json_object_get(n, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), lid);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(params, "error"),
	    "name")), "UPSTREAM_LOST", "%s", json_dumps(n, 0));
	cr_assert_not_null(strstr(json_string_value(json_object_get(params, "reason")),
	    "session.hello refused"), "not ended by the refusal: %s", json_dumps(n, 0));
	json_decref(n);
	cr_assert_eq(wait_counter(&p, "lost", 1), 1);
	cr_assert_eq(wait_local_leased(&p, 0), 0, "the lease's local port is still leased");
	json_decref(a);
	a = raw_rpc_call(&w, "lease.list", NULL);
	cr_assert_eq(json_array_size(json_object_get(raw_rpc_result(a), "leases")), 0, "%s",
	    json_dumps(a, 0));
	json_decref(a);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
	shared_token = NULL;
}

/* ---- the upstream's host name is resolved off the loop ---- */

static int
file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

Test(forward, a_broker_resolving_its_upstreams_name_keeps_serving, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	char gate[600], asked[640], shim[600], url[64];
	const char *servers = getenv("FXB_TEST_SERVERS");
	json_t *r, *st;
	const char *state;
	int status;
	FILE *f;

	cr_assert(servers && *servers, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(shim, sizeof shim, "%s/slow_getaddrinfo.so", servers);
	cr_assert(file_exists(shim), "%s is not built", shim);
	snprintf(gate, sizeof gate, "%s/fwd-dns-gate-%d", test_log_dir(), (int)getpid());
	snprintf(asked, sizeof asked, "%s.asked", gate);
	unlink(gate);
	unlink(asked);
	memset(&p, 0, sizeof p);
	start_shared(&p, NULL);

	/* The local broker dials the shared one by name, and its resolver holds that name
	 * until the gate opens. */
	snprintf(url, sizeof url, "ws://localhost:%d", p.shared.port);
	snprintf(p.shared.url, sizeof p.shared.url, "%s", url);
	setenv("FXB_SLOW_DNS_NAME", "localhost", 1);
	setenv("FXB_SLOW_DNS_GATE", gate, 1);
	setenv("LD_PRELOAD", shim, 1);
	start_local(&p, NULL);
	unsetenv("LD_PRELOAD");
	unsetenv("FXB_SLOW_DNS_GATE");
	unsetenv("FXB_SLOW_DNS_NAME");
	for (uint64_t end = clock_ms() + WAIT_MS; !file_exists(asked) && clock_ms() < end;)
		sleep_ms(20);
	cr_assert(file_exists(asked), "the local broker never resolved localhost; see %s",
	    p.local.log);

	/* While the resolution is held, the broker answers: HTTP, and a session that leases
	 * a port and sees the upstream still connecting. */
	status = http_get(p.local.port, "/healthz", NULL);
	cr_assert(status == 200 || status == 503, "/healthz while resolving: %d", status);
	cr_assert_eq(raw_ws_connect(&w, p.local.port, "fixture-broker.v1", NULL), 101,
	    "no WebSocket session while resolving");
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "p", "kind",
	    "port"));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	st = test_broker_status(&p.local);
	state = json_string_value(json_object_get(json_object_get(st, "upstream"), "state"));
	cr_assert(state && !strcmp(state, "connecting"), "upstream state %s", state ? state : "-");
	json_decref(st);

	/* The gate opens: the name resolves, the upstream session comes up, and a database
	 * comes from the shared cluster. */
	cr_assert_not_null(f = fopen(gate, "w"));
	fclose(f);
	cr_assert_eq(wait_up(&p), 0, "no upstream session after the resolution; see %s",
	    p.local.log);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.local.log);
	cr_assert_eq(fixture_int(raw_rpc_result(r), "db", "port"), p.pg_port);
	json_decref(r);
	raw_ws_close(&w);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	pair_stop(&p);
	unlink(gate);
	unlink(asked);
}

Test(forward, a_wss_upstream_dialled_by_name_is_verified_against_that_name, .timeout = 120)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char dir[] = "/tmp/fxb-fwd-name-XXXXXX", cmd[2048], ca[64], cert[64], key[64];
	struct pair p;
	struct raw_ws w;
	json_t *r;

	memset(&p, 0, sizeof p);
	cr_assert_not_null(mkdtemp(dir));
	/* The certificate names localhost only: no IP address. */
	snprintf(cmd, sizeof cmd, "cd %s && openssl req -x509 %s -days 2 -subj /CN=ca -keyout ca.key "
	    "-out ca.pem 2>/dev/null && openssl req %s -subj /CN=localhost -keyout server.key "
	    "-out server.csr 2>/dev/null && echo subjectAltName=DNS:localhost > server.ext && "
	    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	    "-extfile server.ext -out server.pem 2>/dev/null && chmod 600 server.key", dir, ec, ec);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	{
		const char *args[] = { "--state-dir", shared_state(), "--ports", "28800-28899",
			"--tls-cert", cert, "--tls-key", key, NULL };
		char err[512];
		cr_assert_eq(test_broker_start(&p.shared, args, err, sizeof err), 0, "%s", err);
	}
	/* Dialled at the name's address, verified against the name (and sent as SNI). */
	snprintf(p.shared.url, sizeof p.shared.url, "wss://localhost:%d", p.shared.port);
	{
		const char *local_ca[] = { "--upstream-ca", ca, NULL };
		start_local(&p, local_ca);
	}
	ws_open(&w, &p.local);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.local.log);
	json_decref(r);
	raw_ws_close(&w);
	BROKER_STOP(&p.local);
	BROKER_STOP(&p.shared);
	test_rm_pg_state(p.local_state);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

/* ---- a draining upstream lets the forwarding broker's session back in ---- */

Test(forward, a_cut_link_to_a_draining_upstream_is_resumed_and_its_leases_stay, .timeout = 120)
{
	const char *shared_extra[] = { "--grace-ms", "15000", "--drain-timeout-ms", "60000", NULL };
	struct pair p;
	struct relay r;
	struct raw_ws w, late;
	json_t *a;
	const char *url, *lid;
	char *one;
	int st;

	pair_start_relayed_with(&p, &r, shared_extra, NULL);
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s", json_dumps(a, 0));
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));
	url = fixture_str(raw_rpc_result(a), "db", "url");

	/* The shared broker drains (a rolling restart), and then the link blips: the
	 * forwarding broker's one session, holding every runner's leases, comes back. */
	cr_assert_eq(kill(p.shared.pid, SIGTERM), 0);
	for (uint64_t end = clock_ms() + WAIT_MS; clock_ms() < end; sleep_ms(50)) {
		int refused = raw_ws_connect(&late, p.shared.port, "fixture-broker.v1", NULL) == 503;
		raw_ws_close(&late);
		if (refused)
			break;
	}
	relay_cmd(&r, 'c');
	cr_assert_eq(wait_counter(&p, "resumes", 1), 1, "the session was not resumed; see %s and %s",
	    p.local.log, p.shared.log);
	cr_assert_eq(upstream_counter(&p, "lost"), 0);
	one = sql_value(url, "SELECT 1");
	cr_assert_str_eq(one, "1");
	free(one);

	/* Its release is the last one: the drain ends, and the shared broker exits 0. */
	json_decref(raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", lid)));
	st = test_broker_wait(&p.shared, WAIT_MS);
	if (st == -2)
		test_broker_kill(&p.shared);
	cr_assert_eq(st, 0, "the shared broker exited with %d (-2: still running); see %s", st,
	    p.shared.log);
	json_decref(a);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
}

/* ---- leases ending on either side ---- */

Test(forward, a_clean_shutdown_releases_the_upstream_leases_at_once, .timeout = 120)
{
	/* The upstream's grace period is far longer than the test waits: only a release sent
	 * by the stopping broker frees its leases in time. */
	const char *shared_extra[] = { "--grace-ms", "120000", NULL };
	struct pair p;
	struct raw_ws w;
	json_t *a;

	memset(&p, 0, sizeof p);
	start_shared(&p, shared_extra);
	start_local(&p, NULL);
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s, s:s}}}", "fixtures",
	    "db", "kind", "postgres", "web", "kind", "server", "template", "api"));
	cr_assert_not_null(raw_rpc_result(a), "%s; see %s", json_dumps(a, 0), p.local.log);
	json_decref(a);
	cr_assert_eq(wait_upstream_leases(&p, 2), 2);
	BROKER_STOP(&p.local);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the stopped broker's leases are still held "
	    "upstream; see %s", p.local.log);
	raw_ws_close(&w);
	pair_stop(&p);
}

Test(forward, releases_queued_while_the_link_is_cut_are_sent_before_the_broker_exits,
    .timeout = 120)
{
	struct pair p;
	struct relay r;
	struct raw_ws w;
	json_t *a;

	pair_start_relayed(&p, &r, "120000");
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db", "kind",
	    "postgres"));
	cr_assert_not_null(raw_rpc_result(a), "%s; see %s", json_dumps(a, 0), p.local.log);
	json_decref(a);
	/* The link is down when the local broker stops: its release waits for the resume,
	 * which comes while the broker shuts down. */
	relay_cmd(&r, 'r');
	relay_cmd(&r, 'c');
	cr_assert_eq(kill(p.local.pid, SIGTERM), 0);
	sleep_ms(300);
	relay_cmd(&r, 'a');
	cr_assert_eq(test_broker_wait(&p.local, WAIT_MS), 0, "see %s", p.local.log);
	cr_assert_eq(wait_upstream_leases(&p, 0), 0, "the stopped broker's lease is still held "
	    "upstream; see %s", p.local.log);
	raw_ws_close(&w);
	pair_stop(&p);
	relay_stop(&r);
}

Test(forward, an_upstream_admin_release_ends_the_local_lease, .timeout = 120)
{
	struct pair p;
	struct raw_ws w;
	json_t *a, *leases, *n, *params;
	const char *lid;
	char ulid[64];

	pair_start(&p, NULL);
	ws_open(&w, &p.local);
	a = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}, s:{s:s}}}", "fixtures", "db",
	    "kind", "postgres", "http", "kind", "port"));
	cr_assert_not_null(raw_rpc_result(a), "%s; see %s", json_dumps(a, 0), p.local.log);
	lid = json_string_value(json_object_get(raw_rpc_result(a), "lease"));
	leases = upstream_leases(&p);
	cr_assert_eq(json_array_size(leases), 1);
	snprintf(ulid, sizeof ulid, "%s", json_string_value(json_object_get(json_array_get(leases, 0),
	    "lease")));
	json_decref(leases);

	/* An operator of the shared broker takes the database back. */
	json_decref(call_on(p.shared.port, "admin.release", json_pack("{s:s}", "lease", ulid)));
	n = wait_notification(&w, "lease.ended");
	cr_assert_not_null(n, "no lease.ended came; see %s", p.local.log);
	params = json_object_get(n, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), lid);
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(params, "fixtures"), 0)),
	    "db", "%s", json_dumps(n, 0));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(params, "error"),
	    "name")), "LEASE_NOT_FOUND", "%s", json_dumps(n, 0));
	cr_assert_not_null(strstr(json_string_value(json_object_get(params, "reason")), "admin"),
	    "%s", json_dumps(n, 0));
	json_decref(n);
	cr_assert_eq(wait_local_leased(&p, 0), 0, "the lease's local port is still leased");
	json_decref(a);
	a = raw_rpc_call(&w, "lease.list", NULL);
	cr_assert_eq(json_array_size(json_object_get(raw_rpc_result(a), "leases")), 0, "%s",
	    json_dumps(a, 0));
	json_decref(a);
	cr_assert_eq(upstream_counter(&p, "lost"), 0);
	raw_ws_close(&w);
	pair_stop(&p);
}

/* ---- the worker's wait_ms reaches the upstream ---- */

#define API_WAIT "{s:{s:{s:s, s:s}}, s:i}", "fixtures", "s", "kind", "server", "template", \
	"api", "wait_ms"

/* The shared broker's embedded cluster takes one of its two ports, and a forwarded "api"
 * server the other: the next one's upstream acquire waits for it as long as the worker's
 * wait_ms says, and with wait_ms 0 not at all. */
Test(forward, an_upstream_acquire_waits_as_long_as_the_workers_wait_ms, .timeout = 120)
{
	const char *shared_extra[] = { "--ports", "28800-28801", NULL };
	struct pair p;
	struct raw_ws w1, w2;
	char lid[64];
	json_t *r;

	pair_start(&p, shared_extra);
	ws_open(&w1, &p.local);
	ws_open(&w2, &p.local);
	r = raw_rpc_call(&w1, "lease.acquire", json_pack(API_WAIT, 10000));
	cr_assert_not_null(raw_rpc_result(r), "%s; see %s", json_dumps(r, 0), p.shared.log);
	snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(raw_rpc_result(r),
	    "lease")));
	json_decref(r);

	/* wait_ms 0: refused while the port is held, not granted once it is free. */
	cr_assert_eq(raw_rpc_send(&w2, 2, "lease.acquire", json_pack(API_WAIT, 0)), 0);
	sleep_ms(1000);
	json_decref(raw_rpc_call(&w1, "lease.release", json_pack("{s:s}", "lease", lid)));
	r = raw_rpc_read(&w2, 60000);
	cr_assert_not_null(r);
	cr_assert_null(raw_rpc_result(r), "an acquire with wait_ms 0 waited upstream for a port: "
	    "%s", json_dumps(r, 0));
	json_decref(r);

	/* wait_ms 20000: granted once the holder releases. */
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	r = raw_rpc_call(&w1, "lease.acquire", json_pack(API_WAIT, 10000));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(raw_rpc_result(r),
	    "lease")));
	json_decref(r);
	cr_assert_eq(raw_rpc_send(&w2, 3, "lease.acquire", json_pack(API_WAIT, 20000)), 0);
	sleep_ms(1000);
	json_decref(raw_rpc_call(&w1, "lease.release", json_pack("{s:s}", "lease", lid)));
	r = raw_rpc_read(&w2, 60000);
	cr_assert_not_null(raw_rpc_result(r), "an acquire with wait_ms 20000 was not granted once "
	    "the port was free: %s", r ? json_dumps(r, 0) : "no reply");
	snprintf(lid, sizeof lid, "%s", json_string_value(json_object_get(raw_rpc_result(r),
	    "lease")));
	json_decref(r);
	json_decref(raw_rpc_call(&w2, "lease.release", json_pack("{s:s}", "lease", lid)));
	cr_assert_eq(wait_upstream_leases(&p, 0), 0);
	raw_ws_close(&w1);
	raw_ws_close(&w2);
	pair_stop(&p);
}
