/* test_sessions.c: a client that dies: its leases through the grace period, and resume.
 *
 * The dying client is a child process holding a two-port lease on a two-port pool (in
 * 26400-26499); it sends its resume token, session id and lease id to the parent through
 * a pipe and waits to be killed with SIGKILL, which closes its connection the way a
 * crashed test worker's would.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

struct victim {
	const struct test_broker *tb;
	int pipe_w;
};

struct victim_report {
	char resume[128], session[128], lease[128];
};

static int victim_run(int index, void *arg)
{
	struct victim *v = arg;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	char err[512];

	(void)index;
	if ((c = test_client(v->tb, NULL, NULL, err, sizeof(err))) == NULL) {
		dprintf(v->pipe_w, "error %s\n", err);
		return 1;
	}
	if (test_acquire_ports(c, 2, 0, &l) != 0) {
		dprintf(v->pipe_w, "error %s\n", fxb_client_errmsg(c));
		return 1;
	}
	dprintf(v->pipe_w, "%s %s %s\n", fxb_client_resume_token(c), fxb_client_session(c),
	    fxb_lease_id(l));
	for (;;)
		pause();
}

/* Starts the victim and reads its report. Returns its pid. */
static pid_t victim_start(const struct test_broker *tb, struct victim_report *r)
{
	int p[2];
	char line[512] = "";
	size_t n = 0;
	struct pollfd pfd;
	struct victim v;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	v = (struct victim){ tb, p[1] };
	pid = child_spawn(victim_run, 0, &v);
	cr_assert_neq(pid, -1);
	close(p[1]);
	pfd = (struct pollfd){ p[0], POLLIN, 0 };
	while (n < sizeof(line) - 1 && strchr(line, '\n') == NULL && poll(&pfd, 1, 15000) == 1) {
		ssize_t k = read(p[0], line + n, sizeof(line) - 1 - n);

		if (k <= 0)
			break;
		n += (size_t)k;
		line[n] = '\0';
	}
	close(p[0]);
	cr_assert_eq(sscanf(line, "%127s %127s %127s", r->resume, r->session, r->lease), 3,
	    "the client did not report its lease: \"%s\"", line);
	cr_assert_neq(strcmp(r->resume, "error"), 0, "the client failed: %s", line);
	return pid;
}

static void victim_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	cr_assert_eq(child_wait(pid, 15000), 128 + SIGKILL);
}

/* Polls GET /status until ports.leased is n or timeout_ms passes; returns the last value. */
static long wait_for_leased(const struct test_broker *tb, long n, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	long v;

	while ((v = test_broker_ports(tb, "leased")) != n && clock_ms() < deadline)
		sleep_ms(20);
	return v;
}

Test(sessions, a_killed_clients_ports_stay_leased_during_the_grace_period_and_are_freed_after_it,
    .timeout = 90)
{
	struct test_broker tb;
	struct victim_report r;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	struct raw_ws w;
	json_t *reply;
	pid_t pid;

	BROKER_START(&tb, "--ports", "26400-26401", "--port-quarantine-ms", "0", "--grace-ms",
	    "4000");
	pid = victim_start(&tb, &r);
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2);
	victim_kill(pid);

	/* The broker sees the connection close at once; the grace period has just begun. */
	sleep_ms(500);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2,
	    "the killed client's ports were released within its grace period");
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), FXB_EBROKER,
	    "a port of the killed client was granted within its grace period");
	cr_assert_str_eq(fxb_client_errname(c), "PORTS_EXHAUSTED");

	/* After it, both are free and can be leased again. */
	cr_assert_eq(wait_for_leased(&tb, 0, 30000), 0, "the ports were never freed");
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_lease_release(c, l), 0);

	/* The session is gone for good: its resume token is unknown now. */
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	reply = raw_rpc_call(&w, "session.hello", json_pack("{s:s}", "resume", r.resume));
	cr_assert_eq(raw_rpc_error_code(reply), 1002, "reply: %s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "RESUME_UNKNOWN");
	json_decref(reply);
	raw_ws_close(&w);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(sessions, a_client_that_resumes_within_the_grace_period_keeps_its_leases, .timeout = 90)
{
	struct test_broker tb;
	struct victim_report r;
	struct fxb_client *c;
	char *result = NULL, params[256];
	json_t *list, *leases, *lease;
	pid_t pid;

	BROKER_START(&tb, "--ports", "26410-26411", "--port-quarantine-ms", "0", "--grace-ms",
	    "3000");
	pid = victim_start(&tb, &r);
	victim_kill(pid);
	sleep_ms(200);

	CLIENT_NEW(c, &tb, NULL, r.resume);
	cr_assert_str_eq(fxb_client_session(c), r.session, "resumed into another session");
	cr_assert_eq(fxb_call(c, "lease.list", NULL, &result), 0, "%s", fxb_client_errmsg(c));
	list = json_loads(result, 0, NULL);
	leases = json_object_get(list, "leases");
	cr_assert_eq(json_array_size(leases), 1, "lease.list: %s", result);
	lease = json_array_get(leases, 0);
	cr_assert_str_eq(json_string_value(json_object_get(lease, "lease")), r.lease);
	cr_assert_eq(json_object_size(json_object_get(lease, "fixtures")), 2, "lease.list: %s", result);
	json_decref(list);
	free(result);

	/* Well past the grace period, the resumed session still holds them. */
	sleep_ms(4500);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2, "the resumed session lost its ports");
	snprintf(params, sizeof(params), "{\"lease\": \"%s\"}", r.lease);
	cr_assert_eq(fxb_call(c, "lease.release", params, &result), 0, "%s", fxb_client_errmsg(c));
	list = json_loads(result, 0, NULL);
	cr_assert(json_is_true(json_object_get(list, "released")), "lease.release: %s", result);
	json_decref(list);
	free(result);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(sessions, with_grace_ms_0_a_killed_clients_ports_are_freed_at_once, .timeout = 60)
{
	struct test_broker tb;
	struct victim_report r;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	pid_t pid;

	BROKER_START(&tb, "--ports", "26420-26421", "--port-quarantine-ms", "0", "--grace-ms", "0");
	pid = victim_start(&tb, &r);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2);
	victim_kill(pid);
	/* "At once" on a busy machine: well under the default grace of 5 s. */
	cr_assert_eq(wait_for_leased(&tb, 0, 3000), 0, "the ports are still leased 3 s after the kill");
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	fxb_lease_free(l);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(sessions, a_connection_holding_leases_of_its_own_cannot_resume_another_session,
    .timeout = 60)
{
	struct test_broker tb;
	struct victim_report r;
	struct raw_ws w;
	json_t *reply;
	pid_t pid;

	BROKER_START(&tb, "--ports", "26430-26439", "--port-quarantine-ms", "0", "--grace-ms",
	    "30000");
	pid = victim_start(&tb, &r);
	victim_kill(pid);
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", "mine", "kind", "port"));
	cr_assert_not_null(raw_rpc_result(reply), "lease.acquire: %s", json_dumps(reply, 0));
	json_decref(reply);
	reply = raw_rpc_call(&w, "session.hello", json_pack("{s:s}", "resume", r.resume));
	cr_assert_eq(raw_rpc_error_code(reply), 1002, "session.hello: %s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "RESUME_UNKNOWN");
	json_decref(reply);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 3, "a refused resume changed the leases");
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(sessions, a_resume_takes_a_live_session_over_and_closes_the_old_connection, .timeout = 60)
{
	/* protocol/README.md: the holder of the resume token wins; the old connection is
	 * closed with 4001 and the session, leases included, moves to the new one. */
	struct test_broker tb;
	struct fxb_client *live;
	struct fxb_lease *l = NULL;
	struct raw_ws w;
	json_t *reply, *leases;

	BROKER_START(&tb, "--ports", "26440-26449", "--port-quarantine-ms", "0");
	CLIENT_NEW(live, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(live, 1, 0, &l), 0, "%s", fxb_client_errmsg(live));
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	reply = raw_rpc_call(&w, "session.hello",
	    json_pack("{s:s}", "resume", fxb_client_resume_token(live)));
	cr_assert(json_is_true(json_object_get(json_object_get(reply, "result"), "resumed")),
	    "the resume was refused: %s", json_dumps(reply, 0));
	json_decref(reply);
	reply = raw_rpc_call(&w, "lease.list", json_object());
	leases = json_object_get(json_object_get(reply, "result"), "leases");
	cr_assert_eq(json_array_size(leases), 1, "the lease moved with the session: %s",
	    json_dumps(reply, 0));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(leases, 0), "lease")),
	    fxb_lease_id(l));
	json_decref(reply);
	raw_ws_close(&w);
	fxb_lease_free(l);
	fxb_client_free(live);
	BROKER_STOP(&tb);
}
