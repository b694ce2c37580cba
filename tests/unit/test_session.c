/* test_session.c: grace periods, resume, takeover, auth, shutdown of the session table. */
#include <stdio.h>

#include "lease/lease.h"
#include "tenant/tenant.h"
#include "unit.h"

#define HELLO(extra) "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session.hello\",\"params\":{" extra "}}"
#define ACQ "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"lease.acquire\",\"params\":{\"fixtures\":{\"p\":{\"kind\":\"port\"}}}}"

static char resume_token[64];

static void
hello(struct broker *b, struct session *s)
{
	json_t *r = unit_call(b, s, HELLO(""));

	snprintf(resume_token, sizeof resume_token, "%s",
	    json_string_value(json_object_get(json_object_get(r, "result"), "resume")));
	cr_assert_eq(strncmp(resume_token, "r-", 2), 0);
	json_decref(r);
}

Test(session, reclaims_leases_when_the_grace_period_passes)
{
	struct broker *b = unit_broker(16300, 16301, 0, 200);
	struct session *s = unit_session(b, 0);

	json_decref(unit_call(b, s, ACQ));
	session_detach(b, s);
	cr_assert_eq(leases_active(b->leases), 1, "held during the grace period");
	for (int i = 0; i < 100 && leases_active(b->leases); i++)
		unit_run(b, 20);
	cr_assert_eq(leases_active(b->leases), 0, "reclaimed after it");
	cr_assert_eq(sessions_count(b->sessions), 0);
	unit_free(b);
}

Test(session, reclaims_at_once_with_a_zero_grace_period)
{
	struct broker *b = unit_broker(16305, 16305, 0, 0);
	struct session *s = unit_session(b, 0);

	json_decref(unit_call(b, s, ACQ));
	session_detach(b, s);
	cr_assert_eq(leases_active(b->leases), 0);
	unit_free(b);
}

Test(session, keeps_its_leases_when_resumed_in_time)
{
	struct broker *b = unit_broker(16310, 16311, 0, 5000);
	struct session *s = unit_session(b, 0), *again;
	char text[256];
	json_t *r;

	hello(b, s);
	json_decref(unit_call(b, s, ACQ));
	session_detach(b, s);
	again = unit_session(b, 1);
	snprintf(text, sizeof text, HELLO("\"resume\":\"%s\""), resume_token);
	r = unit_call(b, again, text);
	cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "resumed")));
	json_decref(r);
	cr_assert_eq(again->lease_count, 1, "the lease moved to the new connection");
	cr_assert_eq(sessions_count(b->sessions), 1);
	unit_run(b, 50);
	cr_assert_eq(leases_active(b->leases), 1);
	unit_free(b);
}

Test(session, takes_over_a_session_whose_old_connection_lingers)
{
	struct broker *b = unit_broker(16315, 16315, 0, 5000);
	struct session *s = unit_session(b, 0), *again;
	char text[256];
	json_t *r;

	hello(b, s);
	json_decref(unit_call(b, s, ACQ));
	again = unit_session(b, 1);
	snprintf(text, sizeof text, HELLO("\"resume\":\"%s\""), resume_token);
	r = unit_call(b, again, text);
	cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "resumed")));
	cr_assert_eq(unit_conns[0], 4001, "the old connection was told to close");
	cr_assert_eq(again->lease_count, 1);
	json_decref(r);
	unit_free(b);
}

Test(session, refuses_an_unknown_resume_token)
{
	struct broker *b = unit_broker(16320, 16320, 0, 5000);
	struct session *s = unit_session(b, 0);
	json_t *r = unit_call(b, s, HELLO("\"resume\":\"r-00000000000000000000000000000000\""));

	cr_assert_str_eq(unit_error_name(r), "RESUME_UNKNOWN");
	json_decref(r);
	unit_free(b);
}

Test(session, refuses_a_resume_after_the_grace_period)
{
	struct broker *b = unit_broker(16325, 16325, 0, 100);
	struct session *s = unit_session(b, 0), *again;
	char text[256];
	json_t *r;

	hello(b, s);
	session_detach(b, s);
	unit_run(b, 300);
	again = unit_session(b, 1);
	snprintf(text, sizeof text, HELLO("\"resume\":\"%s\""), resume_token);
	r = unit_call(b, again, text);
	cr_assert_str_eq(unit_error_name(r), "RESUME_UNKNOWN");
	json_decref(r);
	unit_free(b);
}

Test(session, answers_an_unauthenticated_call_with_an_error_and_nothing_else)
{
	struct broker *b;
	struct session *s;
	json_t *r;
	FILE *f = fopen("/tmp/fxb-unit-tokens", "w");

	fputs("sesame\n", f);
	fclose(f);
	b = unit_broker(16330, 16330, 0, 0);
	tenants_free(b->tenants);
	b->tenants = tenants_load("/tmp/fxb-unit-tokens", &(struct fxb_error){ 0 });
	cr_assert_not_null(b->tenants);
	b->need_token = 1;
	s = unit_session(b, 0);
	s->peer.authenticated = 0;
	r = unit_call(b, s, ACQ);
	cr_assert_str_eq(unit_error_name(r), "UNAUTHENTICATED");
	cr_assert_eq(leases_active(b->leases), 0);
	json_decref(r);
	r = unit_call(b, s, HELLO("\"token\":\"open\""));
	cr_assert_str_eq(unit_error_name(r), "UNAUTHENTICATED");
	json_decref(r);
	r = unit_call(b, s, HELLO("\"token\":\"sesame\""));
	cr_assert_not_null(json_object_get(r, "result"));
	json_decref(r);
	r = unit_call(b, s, ACQ);
	cr_assert_not_null(json_object_get(r, "result"), "authenticated now");
	json_decref(r);
	unit_free(b);
}

/* A broker with one server template that never gets ready: its acquire stays open until
 * the start deadline fails it. */
static struct broker *
slow_server_broker(void)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	struct broker *b;

	config_defaults(&cfg);
	cfg.listen_port = -1;
	cfg.ports_first = 16330;
	cfg.ports_last = 16339;
	cfg.quarantine_ms = 0;
	cfg.grace_ms = 5000;
	cfg.log_level = LOG_LEVEL_ERROR;
	snprintf(cfg.ephemeral_path, sizeof cfg.ephemeral_path, "/proc/sys/net/ipv4/ip_local_port_range");
	cfg.servers = json_pack("{s:{s:[s,s], s:i}}", "slow", "command", "sleep", "30",
	    "start_timeout_ms", 300);
	log_set_level(LOG_LEVEL_ERROR);
	b = broker_new(&cfg, &err);
	cr_assert_not_null(b, "broker_new: %s", err.text);
	json_decref(cfg.servers);
	return b;
}

Test(session, drops_the_reply_of_an_acquire_left_open_on_the_connection_it_resumed_from)
{
	struct broker *b = slow_server_broker();
	struct session *s = unit_session(b, 0), *again;
	char text[256];
	json_t *r;

	hello(b, s);
	r = unit_call(b, s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"lease.acquire\","
	    "\"params\":{\"fixtures\":{\"api\":{\"kind\":\"server\",\"template\":\"slow\"}}}}");
	cr_assert_null(r, "the acquire waits for the server");
	cr_assert_eq(s->peer.open_calls, 1);
	session_detach(b, s);
	again = unit_session(b, 1);
	snprintf(text, sizeof text, HELLO("\"resume\":\"%s\""), resume_token);
	r = unit_call(b, again, text);
	cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "resumed")));
	json_decref(r);
	cr_assert_eq(again->lease_count, 1, "the acquiring lease moved with the session");
	/* The start deadline fails the acquire, whose session (and connection) is gone:
	 * the lease is released, and no reply reaches either connection. */
	unit_run(b, 800);
	cr_assert_eq(leases_active(b->leases), 0);
	cr_assert_eq(again->lease_count, 0);
	cr_assert_null(unit_take(1), "the new connection never sent call 7");
	cr_assert_null(unit_take(0), "the old connection is gone");
	cr_assert_eq(again->peer.open_calls, 0);
	unit_free(b);
}

/* A kind that only records the teardown hooks, to check when session.c runs them. */
static struct {
	int detached, ended;
	size_t leases_when_ended;
	struct session *who;
} hooks_seen;

static void
stub_detached(struct broker *b, struct session *s)
{
	(void)b;
	hooks_seen.detached++;
	hooks_seen.who = s;
}

static void
stub_ended(struct broker *b, struct session *s)
{
	(void)b;
	hooks_seen.ended++;
	hooks_seen.leases_when_ended = s->lease_count;
	hooks_seen.who = s;
}

Test(session, runs_each_kinds_teardown_hooks_on_detach_and_after_the_leases_are_released)
{
	extern const struct fixture_kind port_kind;
	static struct fixture_kind stub = {
		.name = "stub",
		.session_detached = stub_detached,
		.session_ended = stub_ended,
	};
	static const struct fixture_kind *const kinds[] = { &port_kind, &stub, NULL };
	struct broker *b = unit_broker(16340, 16341, 0, 0);
	struct session *s;

	leases_free(b->leases); /* the same table, serving the stub kind as well */
	b->leases = leases_new(b, kinds);
	cr_assert_not_null(b->leases);
	s = unit_session(b, 0);
	hello(b, s);
	json_decref(unit_call(b, s, ACQ));
	cr_assert_eq(s->lease_count, 1);
	memset(&hooks_seen, 0, sizeof hooks_seen);
	session_detach(b, s); /* grace 0: detached, then closed at once */
	cr_assert_eq(hooks_seen.detached, 1, "session_detached ran once");
	cr_assert_eq(hooks_seen.ended, 1, "session_ended ran once");
	cr_assert_eq(hooks_seen.leases_when_ended, 0, "after the session's leases were released");
	cr_assert_eq(sessions_count(b->sessions), 0);
	unit_free(b);
}
