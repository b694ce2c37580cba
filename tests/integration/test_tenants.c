/* test_tenants.c: tenants sharing one broker: isolation, quotas, fair waiting, the audit
 * log, the admin view, and reloading the token file with SIGHUP.
 *
 * Every broker here leases from 27100-27119 (a suite's own range) and reads a token file
 * written for the test; clients are raw WebSocket connections (harness.h), so the suite
 * sees exactly what goes over the wire.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define TOKENS                                                   \
	"tok-a team-a ports=3 sessions=2 waiting=1\n"            \
	"tok-b team-b\n"                                         \
	"tok-op ops admin=true\n"

static struct test_broker tb;

static void start(const char *tokens, const char *extra1, const char *extra2, char *path,
    size_t pathlen)
{
	char local[512];
	const char *args[12];
	size_t n = 0;
	char err[512];

	if (!path) {
		path = local;
		pathlen = sizeof(local);
	}
	cr_assert_eq(temp_file(path, pathlen, "tokens", tokens), 0);
	args[n++] = "--token-file";
	args[n++] = path;
	args[n++] = "--ports";
	args[n++] = "27100-27119";
	args[n++] = "--port-quarantine-ms";
	args[n++] = "0";
	args[n++] = "--grace-ms";
	args[n++] = "0";
	if (extra1)
		args[n++] = extra1;
	if (extra2)
		args[n++] = extra2;
	args[n] = NULL;
	cr_assert_eq(test_broker_start(&tb, args, err, sizeof(err)), 0, "%s", err);
}

/* A raw connection authenticated with token through session.hello. */
static void connect_as(struct raw_ws *w, const char *token)
{
	json_t *r;

	cr_assert_eq(raw_ws_connect(w, tb.port, "fixture-broker.v1", NULL), 101, "%s", w->status_line);
	r = raw_rpc_call(w, "session.hello", json_pack("{s:s, s:s}", "token", token, "client", token));
	cr_assert_not_null(raw_rpc_result(r), "hello as %s: %s", token, json_dumps(r, 0));
	json_decref(r);
}

static json_t *ports_params(int n, int wait_ms)
{
	json_t *fx = json_object();

	for (int i = 0; i < n; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%d", i);
		json_object_set_new(fx, name, json_pack("{s:s}", "kind", "port"));
	}
	return json_pack("{s:o, s:i, s:{s:s}}", "fixtures", fx, "wait_ms", wait_ms, "labels",
	    "job", "unit-42");
}

/* Acquires n ports; returns the lease id (malloc'd). */
static char *acquire(struct raw_ws *w, int n)
{
	json_t *r = raw_rpc_call(w, "lease.acquire", ports_params(n, 0));
	const char *lid = json_string_value(json_object_get(raw_rpc_result(r), "lease"));
	char *out;

	cr_assert_not_null(lid, "%s", json_dumps(r, 0));
	out = strdup(lid);
	json_decref(r);
	return out;
}

/* Asserts that reply is error name; returns its data (borrowed from reply). */
static json_t *expect_error(json_t *reply, const char *name, const char *what)
{
	cr_assert_not_null(reply, "%s: no reply", what);
	cr_assert_str_eq(raw_rpc_error_name(reply), name, "%s: %s", what, json_dumps(reply, 0));
	return json_object_get(json_object_get(reply, "error"), "data");
}

static size_t list_count(struct raw_ws *w)
{
	json_t *r = raw_rpc_call(w, "lease.list", json_object());
	size_t n = json_array_size(json_object_get(raw_rpc_result(r), "leases"));

	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	return n;
}

Test(tenants, a_tenant_cannot_resume_list_release_renew_or_reset_another_tenants_things)
{
	struct raw_ws a, b, b2;
	json_t *r;
	char *lid, resume[64];

	start(TOKENS, NULL, NULL, NULL, 0);
	connect_as(&a, "tok-a");
	r = raw_rpc_call(&a, "session.hello", json_object());
	snprintf(resume, sizeof(resume), "%s",
	    json_string_value(json_object_get(raw_rpc_result(r), "resume")));
	json_decref(r);
	lid = acquire(&a, 1);
	cr_assert(strncmp(lid, "l-", 2) == 0 && strlen(lid) > 10, "an unguessable id: %s", lid);

	connect_as(&b, "tok-b");
	cr_assert_eq(list_count(&b), 0, "B lists none of A's leases");
	r = raw_rpc_call(&b, "lease.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_false(json_object_get(raw_rpc_result(r), "released")), "%s",
	    json_dumps(r, 0));
	json_decref(r);
	r = raw_rpc_call(&b, "lease.renew", json_pack("{s:s}", "lease", lid));
	expect_error(r, "LEASE_NOT_FOUND", "B renews A's lease");
	json_decref(r);
	r = raw_rpc_call(&b, "lease.reset", json_pack("{s:s, s:s}", "lease", lid, "fixture", "p0"));
	expect_error(r, "LEASE_NOT_FOUND", "B resets A's lease");
	json_decref(r);

	/* A's resume token, presented by B's tenant, finds nothing. */
	cr_assert_eq(raw_ws_connect(&b2, tb.port, NULL, NULL), 101);
	r = raw_rpc_call(&b2, "session.hello", json_pack("{s:s, s:s}", "token", "tok-b", "resume",
	    resume));
	expect_error(r, "RESUME_UNKNOWN", "B resumes A's session");
	json_decref(r);

	/* A's lease is untouched, and A's own release works. */
	cr_assert_eq(list_count(&a), 1);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);
	r = raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "released")));
	json_decref(r);
	free(lid);
	raw_ws_close(&a);
	raw_ws_close(&b);
	raw_ws_close(&b2);
	BROKER_STOP(&tb);
}

Test(tenants, each_quota_refuses_with_QUOTA_EXCEEDED_and_recovers_after_release)
{
	struct raw_ws a, a2, a3, b;
	json_t *r, *data;
	char *l1, *l2;

	start(TOKENS, NULL, NULL, NULL, 0);
	connect_as(&a, "tok-a");

	/* ports=3 */
	l1 = acquire(&a, 2);
	r = raw_rpc_call(&a, "lease.acquire", ports_params(2, 0));
	data = expect_error(r, "QUOTA_EXCEEDED", "4 ports of 3");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "ports");
	cr_assert_str_eq(json_string_value(json_object_get(data, "tenant")), "team-a");
	cr_assert_eq(json_integer_value(json_object_get(data, "max")), 3);
	cr_assert_eq(json_integer_value(json_object_get(data, "used")), 2);
	cr_assert_eq(json_integer_value(json_object_get(data, "requested")), 2);
	json_decref(r);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2, "the refused acquire took nothing");
	json_decref(raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", l1)));
	l2 = acquire(&a, 3);
	json_decref(raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", l2)));
	free(l1);
	free(l2);

	/* sessions=2 */
	connect_as(&a2, "tok-a");
	cr_assert_eq(raw_ws_connect(&a3, tb.port, NULL, NULL), 101);
	r = raw_rpc_call(&a3, "session.hello", json_pack("{s:s}", "token", "tok-a"));
	data = expect_error(r, "QUOTA_EXCEEDED", "a third session of 2");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "sessions");
	json_decref(r);
	r = raw_rpc_call(&a3, "lease.list", json_object());
	expect_error(r, "UNAUTHENTICATED", "the refused session is not in");
	json_decref(r);
	raw_ws_close(&a2);
	for (int i = 0; i < 100; i++) {
		r = raw_rpc_call(&a3, "session.hello", json_pack("{s:s}", "token", "tok-a"));
		if (raw_rpc_result(r))
			break;
		json_decref(r);
		r = NULL;
		sleep_ms(50);
	}
	cr_assert_not_null(r, "room for the session once another closed");
	json_decref(r);

	/* waiting=1: team-b holds the whole pool, team-a may queue one acquire, not two. */
	connect_as(&b, "tok-b");
	l1 = acquire(&b, 20);
	cr_assert_eq(raw_rpc_send(&a, 100, "lease.acquire", ports_params(1, 30000)), 0);
	sleep_ms(300);
	r = raw_rpc_call(&a3, "lease.acquire", ports_params(1, 30000));
	data = expect_error(r, "QUOTA_EXCEEDED", "a second waiting acquire of 1");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "waiting");
	json_decref(r);
	json_decref(raw_rpc_call(&b, "lease.release", json_pack("{s:s}", "lease", l1)));
	r = raw_rpc_read(&a, 10000);
	cr_assert_not_null(raw_rpc_result(r), "the waiting acquire is served: %s", json_dumps(r, 0));
	json_decref(r);
	r = raw_rpc_call(&a3, "lease.acquire", ports_params(1, 30000));
	cr_assert_not_null(raw_rpc_result(r), "waiting room again once served: %s", json_dumps(r, 0));
	json_decref(r);
	free(l1);
	raw_ws_close(&a);
	raw_ws_close(&a3);
	raw_ws_close(&b);
	BROKER_STOP(&tb);
}

Test(tenants, the_wait_queue_takes_tenants_in_turn)
{
	struct raw_ws holder, a, b;
	json_t *r;
	char *big, *s1, *s2;

	start("tok-a team-a\ntok-b team-b\ntok-h holder\n", NULL, NULL, NULL, 0);
	connect_as(&holder, "tok-h");
	connect_as(&a, "tok-a");
	connect_as(&b, "tok-b");
	big = acquire(&holder, 18);
	s1 = acquire(&holder, 1);
	s2 = acquire(&holder, 1);
	/* team-a queues five acquires, then team-b one. */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(raw_rpc_send(&a, 200 + i, "lease.acquire", ports_params(1, 30000)), 0);
	sleep_ms(300);
	cr_assert_eq(raw_rpc_send(&b, 300, "lease.acquire", ports_params(1, 30000)), 0);
	sleep_ms(300);
	/* Ports come back one at a time: the first goes to team-a's first waiter, the second
	 * to team-b's only one, not to team-a's second (strict arrival order would). */
	json_decref(raw_rpc_call(&holder, "lease.release", json_pack("{s:s}", "lease", s1)));
	r = raw_rpc_read(&a, 10000);
	cr_assert_not_null(raw_rpc_result(r), "team-a's first waiter first: %s", json_dumps(r, 0));
	json_decref(r);
	json_decref(raw_rpc_call(&holder, "lease.release", json_pack("{s:s}", "lease", s2)));
	r = raw_rpc_read(&b, 5000);
	cr_assert_not_null(raw_rpc_result(r), "team-b's one waiter is served before team-a's other "
	    "four: %s", r ? json_dumps(r, 0) : "no reply");
	json_decref(r);
	free(big);
	free(s1);
	free(s2);
	raw_ws_close(&holder);
	raw_ws_close(&a);
	raw_ws_close(&b);
	BROKER_STOP(&tb);
}

/* The audit log's lines, parsed. */
static json_t *audit_lines(const char *path)
{
	json_t *lines = json_array();
	FILE *f = fopen(path, "r");
	char buf[8192];

	cr_assert_not_null(f, "%s", path);
	while (fgets(buf, sizeof(buf), f)) {
		json_error_t e;
		json_t *j = json_loads(buf, 0, &e);
		cr_assert_not_null(j, "not JSON: %s", buf);
		json_array_append_new(lines, j);
	}
	fclose(f);
	return lines;
}

/* The first line from index *from on with this event (and tenant, when not NULL). */
static json_t *find_event(json_t *lines, size_t *from, const char *event, const char *tenant)
{
	for (size_t i = *from; i < json_array_size(lines); i++) {
		json_t *l = json_array_get(lines, i);
		if (strcmp(json_string_value(json_object_get(l, "event")), event))
			continue;
		if (tenant && strcmp(json_string_value(json_object_get(l, "tenant")), tenant))
			continue;
		*from = i + 1;
		return l;
	}
	cr_assert_fail("no %s event (tenant %s) after line %zu: %s", event, tenant ? tenant : "-",
	    *from, json_dumps(lines, JSON_INDENT(1)));
	return NULL;
}

Test(tenants, the_audit_log_records_a_scripted_session)
{
	struct raw_ws bad, a, a2;
	char audit[512], *lid;
	json_t *r, *lines, *l;
	size_t at = 0;
	char resume[64];

	cr_assert_eq(temp_file(audit, sizeof(audit), "audit", ""), 0);
	{
		char flag[600];
		snprintf(flag, sizeof(flag), "--audit-log=%s", audit);
		start(TOKENS, flag, NULL, NULL, 0);
	}
	cr_assert_eq(raw_ws_connect(&bad, tb.port, NULL, NULL), 101);
	json_decref(raw_rpc_call(&bad, "session.hello", json_pack("{s:s}", "token", "nope")));
	connect_as(&a, "tok-a");
	r = raw_rpc_call(&a, "session.hello", json_object());
	snprintf(resume, sizeof(resume), "%s",
	    json_string_value(json_object_get(raw_rpc_result(r), "resume")));
	json_decref(r);
	lid = acquire(&a, 2);
	json_decref(raw_rpc_call(&a, "lease.acquire", ports_params(2, 0))); /* over quota */
	json_decref(raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", lid)));
	cr_assert_eq(raw_ws_connect(&a2, tb.port, NULL, NULL), 101);
	r = raw_rpc_call(&a2, "session.hello", json_pack("{s:s, s:s}", "token", "tok-a", "resume",
	    resume));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	raw_ws_close(&a2);
	raw_ws_close(&a);
	raw_ws_close(&bad);
	BROKER_STOP(&tb);

	lines = audit_lines(audit);
	l = find_event(lines, &at, "auth.fail", NULL);
	cr_assert_str_eq(json_string_value(json_object_get(l, "peer")), "127.0.0.1");
	cr_assert_str_eq(json_string_value(json_object_get(l, "via")), "session.hello");
	l = find_event(lines, &at, "session.auth", "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(l, "peer")), "127.0.0.1");
	cr_assert_not_null(json_object_get(l, "ts"));
	l = find_event(lines, &at, "lease.acquire", "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "fixtures"), "p0")),
	    "port");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "labels"), "job")),
	    "unit-42");
	l = find_event(lines, &at, "lease.grant", "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(l, "lease")), lid);
	l = find_event(lines, &at, "quota.refused", "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "quota"), "limit")),
	    "ports");
	find_event(lines, &at, "lease.fail", "team-a");
	l = find_event(lines, &at, "lease.release", "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(l, "lease")), lid);
	l = find_event(lines, &at, "session.resume", "team-a");
	cr_assert(json_is_false(json_object_get(l, "other_address")), "same address: %s",
	    json_dumps(l, 0));
	find_event(lines, &at, "session.close", "team-a");
	json_decref(lines);
	free(lid);
}

Test(tenants, an_admin_sees_and_releases_every_tenants_leases_others_see_aggregates)
{
	struct raw_ws a, op;
	char *lid, *body = NULL;
	json_t *r, *leases, *st;

	start(TOKENS, NULL, NULL, NULL, 0);
	connect_as(&a, "tok-a");
	lid = acquire(&a, 1);
	r = raw_rpc_call(&a, "admin.leases", json_object());
	expect_error(r, "NOT_ADMIN", "a tenant's token calls admin.leases");
	json_decref(r);

	connect_as(&op, "tok-op");
	r = raw_rpc_call(&op, "admin.leases", json_object());
	leases = json_object_get(raw_rpc_result(r), "leases");
	cr_assert_eq(json_array_size(leases), 1, "%s", json_dumps(r, 0));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "lease")), lid);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "tenant")),
	    "team-a");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(leases, 0),
	    "labels"), "job")), "unit-42");
	cr_assert(json_is_integer(json_object_get(json_array_get(leases, 0), "age_ms")));
	json_decref(r);

	/* /status: aggregates without a token or with a tenant's, everything with an admin's. */
	cr_assert_eq(http_get_auth(tb.port, "/status", NULL, &body), 200);
	st = json_loads(body, 0, NULL);
	cr_assert_eq(json_integer_value(json_object_get(st, "leases")), 1);
	cr_assert_null(json_object_get(st, "leases_list"), "%s", body);
	json_decref(st);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/status", "Bearer tok-a", &body), 200);
	cr_assert_null(strstr(body, "leases_list"), "%s", body);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/status", "Bearer tok-op", &body), 200);
	st = json_loads(body, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(st,
	    "leases_list"), 0), "lease")), lid, "%s", body);
	cr_assert_not_null(strstr(body, "\"team-a\""));
	json_decref(st);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/metrics", "Bearer tok-op", &body), 200);
	cr_assert_not_null(strstr(body, "fxb_tenant_used{tenant=\"team-a\",quota=\"ports\"} 1"),
	    "%s", body);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/metrics", NULL, &body), 200);
	cr_assert_null(strstr(body, "fxb_tenant_used"), "no tenants without an admin token");
	free(body);

	r = raw_rpc_call(&op, "admin.release", json_pack("{s:s}", "lease", lid));
	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "released")), "%s", json_dumps(r, 0));
	json_decref(r);
	cr_assert_eq(list_count(&a), 0, "the admin released team-a's lease");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	free(lid);
	raw_ws_close(&a);
	raw_ws_close(&op);
	BROKER_STOP(&tb);
}

Test(tenants, the_operator_can_require_a_token_for_status_and_metrics)
{
	char *body = NULL;

	start(TOKENS, "--status-require-token", NULL, NULL, 0);
	cr_assert_eq(http_get_auth(tb.port, "/status", NULL, &body), 401, "%s", body);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/metrics", "Bearer wrong", &body), 401);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/status", "Bearer tok-b", &body), 200);
	free(body);
	cr_assert_eq(http_get_auth(tb.port, "/healthz", NULL, &body), 200, "health stays open");
	free(body);
	BROKER_STOP(&tb);
}

/* Rewrites path with text. */
static void rewrite(const char *path, const char *text)
{
	char tmp[600];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(rename(tmp, path), 0);
}

Test(tenants, SIGHUP_reloads_tokens_closing_only_the_sessions_of_removed_ones)
{
	struct raw_ws a, b, c;
	struct ws_msg m = { 0 };
	char path[512], *lid;
	json_t *r;
	int rc;

	start(TOKENS, NULL, NULL, path, sizeof(path));
	connect_as(&a, "tok-a");
	connect_as(&b, "tok-b");
	lid = acquire(&a, 1);

	/* A file that does not parse changes nothing. */
	rewrite(path, "tok-a team-a ports=oops\n");
	cr_assert_eq(kill(tb.pid, SIGHUP), 0);
	sleep_ms(300);
	cr_assert_eq(list_count(&b), 0, "team-b still connected after a bad reload");

	rewrite(path, "tok-a team-a ports=3 sessions=2 waiting=1\ntok-c team-c\n");
	cr_assert_eq(kill(tb.pid, SIGHUP), 0);
	do {
		raw_ws_msg_clear(&m);
		rc = raw_ws_read(&b, &m, 5000);
	} while (rc == 0 && m.opcode != WS_CLOSE);
	cr_assert(rc == RAW_WS_EOF || (rc == 0 && m.opcode == WS_CLOSE),
	    "team-b's session is closed (rc %d)", rc);
	if (rc == 0)
		cr_assert_not_null(strstr(m.payload + 2, "token"), "the reason says why: %s",
		    m.payload + 2);
	raw_ws_msg_clear(&m);

	/* team-a keeps its session and its lease; the new token works; the old one not. */
	cr_assert_eq(list_count(&a), 1);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);
	connect_as(&c, "tok-c");
	raw_ws_close(&c);
	cr_assert_eq(raw_ws_connect(&c, tb.port, NULL, NULL), 101);
	r = raw_rpc_call(&c, "session.hello", json_pack("{s:s}", "token", "tok-b"));
	expect_error(r, "UNAUTHENTICATED", "a removed token");
	json_decref(r);
	free(lid);
	raw_ws_close(&a);
	raw_ws_close(&b);
	raw_ws_close(&c);
	BROKER_STOP(&tb);
}

/* The number of templates pg.status lists to w's tenant under label. */
static int templates_named(struct raw_ws *w, const char *label)
{
	json_t *r = raw_rpc_call(w, "pg.status", json_object()), *t;
	size_t i;
	int n = 0;

	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_array_foreach(json_object_get(raw_rpc_result(r), "templates"), i, t)
		n += !strcmp(json_string_value(json_object_get(t, "template")), label);
	json_decref(r);
	return n;
}

static const char *ensure_state(json_t *r)
{
	const char *s = json_string_value(json_object_get(raw_rpc_result(r), "state"));

	cr_assert_not_null(s, "%s", json_dumps(r, 0));
	return s;
}

Test(tenants, postgres_quotas_and_client_templates_are_per_tenant, .timeout = 240)
{
	struct raw_ws a, a2, b;
	char state[512], flag[600], *lid;
	const char *log = getenv("FXB_TEST_LOG_DIR");
	json_t *r, *data;

	snprintf(state, sizeof(state), "%s/tenants-pg-%d", log && *log ? log : "/tmp", (int)getpid());
	snprintf(flag, sizeof(flag), "--state-dir=%s", state);
	start("tok-a team-a databases=1 pg_connections=15 builds=1\ntok-b team-b\n"
	    "tok-op ops admin=true\n", flag, NULL, NULL, 0);
	connect_as(&a, "tok-a");
	connect_as(&a2, "tok-a");
	connect_as(&b, "tok-b");

	/* databases=1, pg_connections=15 */
	r = raw_rpc_call(&a, "lease.acquire", json_pack("{s:{s:{s:s, s:i}}, s:i}", "fixtures", "db",
	    "kind", "postgres", "connections", 5, "wait_ms", 0));
	lid = strdup(json_string_value(json_object_get(raw_rpc_result(r), "lease")));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	json_decref(r);
	r = raw_rpc_call(&a, "lease.acquire", json_pack("{s:{s:{s:s}}}", "fixtures", "db2", "kind",
	    "postgres"));
	data = expect_error(r, "QUOTA_EXCEEDED", "a second database of 1");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "databases");
	json_decref(r);
	json_decref(raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", lid)));
	free(lid);
	r = raw_rpc_call(&a, "lease.acquire", json_pack("{s:{s:{s:s, s:i}}}", "fixtures", "db",
	    "kind", "postgres", "connections", 20));
	data = expect_error(r, "QUOTA_EXCEEDED", "20 connections of 15");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "pg_connections");
	cr_assert_eq(json_integer_value(json_object_get(data, "used")), 0);
	json_decref(r);
	/* team-b has no limits, but all tenants together stay below the embedded cluster's
	 * max_connections (300). */
	r = raw_rpc_call(&b, "lease.acquire", json_pack("{s:{s:{s:s, s:i}}}", "fixtures", "db",
	    "kind", "postgres", "connections", 1000));
	data = expect_error(r, "QUOTA_EXCEEDED", "1000 connections on a 300-connection cluster");
	cr_assert_str_eq(json_string_value(json_object_get(data, "tenant")), "(all tenants)");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "pg_connections");
	cr_assert_lt(json_integer_value(json_object_get(data, "max")), 300);
	json_decref(r);

	/* The same hash is each tenant's own template: team-b builds its own rather than
	 * waiting for team-a's build, and neither sees the other's. */
	r = raw_rpc_call(&a, "pg.template.ensure", json_pack("{s:s}", "hash", "tenant-hash-1"));
	cr_assert_str_eq(ensure_state(r), "build");
	json_decref(r);
	r = raw_rpc_call(&b, "pg.template.ensure", json_pack("{s:s, s:i}", "hash", "tenant-hash-1",
	    "wait_ms", 2000));
	cr_assert_str_eq(ensure_state(r), "build", "team-b is not parked behind team-a's build");
	json_decref(r);
	cr_assert_eq(templates_named(&a, "tenant-hash-1"), 1, "team-a sees its own only");
	cr_assert_eq(templates_named(&b, "tenant-hash-1"), 1, "team-b sees its own only");
	{
		char *body = NULL;
		json_t *st, *t;
		size_t i;
		int n = 0;

		cr_assert_eq(http_get_auth(tb.port, "/status", "Bearer tok-op", &body), 200);
		st = json_loads(body, 0, NULL);
		json_array_foreach(json_object_get(json_object_get(st, "postgres"), "templates"), i, t)
			n += !strcmp(json_string_value(json_object_get(t, "template")), "tenant-hash-1");
		cr_assert_eq(n, 2, "the admin view lists both tenants' builds: %s", body);
		json_decref(st);
		free(body);
	}
	r = raw_rpc_call(&b, "pg.template.finish", json_pack("{s:s}", "hash", "tenant-hash-1"));
	json_decref(r);

	/* builds=1: a second concurrent build of team-a is refused until the first ends. */
	r = raw_rpc_call(&a2, "pg.template.ensure", json_pack("{s:s}", "hash", "tenant-hash-2"));
	data = expect_error(r, "QUOTA_EXCEEDED", "a second build of 1");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "builds");
	json_decref(r);
	r = raw_rpc_call(&a, "pg.template.discard", json_pack("{s:s}", "hash", "tenant-hash-1"));
	cr_assert_str_eq(ensure_state(r), "discarded");
	json_decref(r);
	r = raw_rpc_call(&a2, "pg.template.ensure", json_pack("{s:s}", "hash", "tenant-hash-2"));
	cr_assert_str_eq(ensure_state(r), "build", "room for a build once the first was discarded");
	json_decref(r);
	r = raw_rpc_call(&a2, "pg.template.discard", json_pack("{s:s}", "hash", "tenant-hash-2"));
	json_decref(r);

	raw_ws_close(&a);
	raw_ws_close(&a2);
	raw_ws_close(&b);
	BROKER_STOP(&tb);
	test_rm_pg_state(state);
}

Test(tenants, the_servers_quota_refuses_and_recovers)
{
	struct raw_ws a;
	char config[512], text[1024], flag[600], *lid;
	const char *dir = getenv("FXB_TEST_SERVERS");
	json_t *r, *data, *one;

	cr_assert(dir && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(text, sizeof(text), "{\"servers\": {\"api\": {\"command\": [\"%s/httpd\", \"--port\","
	    " \"{port}\"], \"ready\": [{\"type\": \"tcp\"}]}}}", dir);
	cr_assert_eq(temp_file(config, sizeof(config), "config", text), 0);
	snprintf(flag, sizeof(flag), "--config=%s", config);
	start("tok-a team-a servers=1\n", flag, NULL, NULL, 0);
	connect_as(&a, "tok-a");
	one = json_pack("{s:{s:{s:s, s:s}}}", "fixtures", "web", "kind", "server", "template", "api");
	r = raw_rpc_call(&a, "lease.acquire", json_deep_copy(one));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	lid = strdup(json_string_value(json_object_get(raw_rpc_result(r), "lease")));
	json_decref(r);
	r = raw_rpc_call(&a, "lease.acquire", json_deep_copy(one));
	data = expect_error(r, "QUOTA_EXCEEDED", "a second server of 1");
	cr_assert_str_eq(json_string_value(json_object_get(data, "limit")), "servers");
	json_decref(r);
	json_decref(raw_rpc_call(&a, "lease.release", json_pack("{s:s}", "lease", lid)));
	r = raw_rpc_call(&a, "lease.acquire", json_deep_copy(one));
	cr_assert_not_null(raw_rpc_result(r), "room again after the release: %s", json_dumps(r, 0));
	json_decref(r);
	json_decref(one);
	free(lid);
	raw_ws_close(&a);
	BROKER_STOP(&tb);
}
