/* test_signals.c: a second SIGTERM or SIGINT during the graceful shutdown stops at once.
 *
 * The first signal starts the drain: every lease is released, and the broker waits for
 * what is stopping to stop (up to its shutdown deadline). A server that ignores SIGTERM,
 * with a stop grace period of 2.5 s, keeps the drain going; the second signal must end it
 * there, with exit status 1 and the reason in the log (the tree it leaves is killed on the
 * way out), where the drain alone ends with 0 (the control below).
 *
 * The brokers here lease from 26820-26829.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

/* Starts a broker where one session holds a server that ignores SIGTERM, sends first, then
 * (if second is nonzero) second, and returns the exit status. */
static int
drain_with(int first, int second, char **log)
{
	const char *dir = getenv("FXB_TEST_SERVERS");
	char config[512], text[1024];
	struct test_broker tb;
	struct raw_ws w;
	json_t *reply;
	int st;

	cr_assert(dir != NULL && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(text, sizeof(text),
	    "{\"servers\": {\"stubborn\": {\"command\": [\"%s/httpd\", \"--port\", \"{port}\", "
	    "\"--ignore-sigterm\"], \"stop_grace_ms\": 2500}}}\n", dir);
	cr_assert_eq(temp_file(config, sizeof(config), "signals.json", text), 0);
	BROKER_START(&tb, "--ports", "26820-26829", "--config", config);
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	reply = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures", "s",
	    "kind", "server", "template", "stubborn"));
	cr_assert_not_null(raw_rpc_result(reply), "lease.acquire: %s", json_dumps(reply, 0));
	json_decref(reply);

	cr_assert_eq(kill(tb.pid, first), 0);
	sleep_ms(300); /* the drain has begun; the server is in its stop grace period */
	cr_assert_eq(test_broker_wait(&tb, 0), -2, "the broker exited before the second signal");
	if (second) {
		/* At once: long before the drain's own end (its 3 s deadline, then the 2.5 s
		 * grace), with a wide margin for a loaded machine. */
		cr_assert_eq(kill(tb.pid, second), 0);
		st = test_broker_wait(&tb, 1500);
	} else {
		st = test_broker_wait(&tb, 15000);
	}
	if (st == -2)
		test_broker_kill(&tb);
	*log = test_read_log(tb.log);
	raw_ws_close(&w);
	return st;
}

Test(signals, a_second_sigterm_during_the_drain_stops_at_once_with_status_1, .timeout = 60)
{
	char *log = NULL;
	int st = drain_with(SIGTERM, SIGTERM, &log);

	cr_assert_eq(st, 1, "exit status %d (-2: still running 1.5 s after the second signal)", st);
	cr_assert(log && strstr(log, "second signal"), "the log does not say why: %s", log);
	free(log);
}

Test(signals, sigint_then_sigterm_stops_at_once_too, .timeout = 60)
{
	char *log = NULL;
	int st = drain_with(SIGINT, SIGTERM, &log);

	cr_assert_eq(st, 1, "exit status %d (-2: still running 1.5 s after the second signal)", st);
	cr_assert(log && strstr(log, "second signal"), "the log does not say why: %s", log);
	free(log);
}

Test(signals, without_a_second_signal_the_drain_ends_with_status_0, .timeout = 60)
{
	char *log = NULL;
	int st = drain_with(SIGTERM, 0, &log);

	cr_assert_eq(st, 0, "exit status %d (-2: still running)", st);
	cr_assert(log && !strstr(log, "second signal"), "%s", log);
	free(log);
}
