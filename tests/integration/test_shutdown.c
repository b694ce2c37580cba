/* test_shutdown.c: SIGTERM and SIGINT: sessions are closed with 1001, leases released, exit 0.
 *
 * The brokers here lease from 26800-26809.
 */
#include <criterion/criterion.h>
#include <signal.h>

#include "fxb.h"
#include "harness.h"

/* Sends sig to a broker where one raw session holds a lease and another is idle, and
 * checks what each sees and how the broker exits. */
static void shut_down_with(int sig)
{
	struct test_broker tb;
	struct raw_ws holder, idle;
	struct ws_msg m;
	json_t *reply;
	int st;

	BROKER_START(&tb, "--ports", "26800-26809");
	cr_assert_eq(raw_ws_connect(&holder, tb.port, "fixture-broker.v1", NULL), 101);
	cr_assert_eq(raw_ws_connect(&idle, tb.port, "fixture-broker.v1", NULL), 101);
	reply = raw_rpc_call(&holder, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", "p", "kind", "port"));
	cr_assert_not_null(raw_rpc_result(reply), "lease.acquire: %s", json_dumps(reply, 0));
	json_decref(reply);
	json_decref(raw_rpc_call(&idle, "broker.status", json_object()));

	cr_assert_eq(kill(tb.pid, sig), 0);
	cr_assert_eq(raw_ws_read(&holder, &m, 15000), 0, "the session holding a lease was not closed");
	cr_assert_eq(m.opcode, WS_CLOSE, "a message instead of a close frame: %s", m.payload);
	cr_assert_eq(m.close_code, 1001, "closed with %d", m.close_code);
	raw_ws_msg_clear(&m);
	cr_assert_eq(raw_ws_read(&idle, &m, 15000), 0, "the idle session was not closed");
	cr_assert_eq(m.opcode, WS_CLOSE);
	cr_assert_eq(m.close_code, 1001, "closed with %d", m.close_code);
	raw_ws_msg_clear(&m);

	st = test_broker_wait(&tb, 15000);
	if (st == -2)
		test_broker_kill(&tb);
	cr_assert_eq(st, 0, "the broker exited with %d (-2: still running 15 s later); see %s", st,
	    tb.log);
	raw_ws_close(&holder);
	raw_ws_close(&idle);
}

Test(shutdown, sigterm_closes_every_session_with_1001_and_exits_0, .timeout = 60)
{
	shut_down_with(SIGTERM);
}

Test(shutdown, sigint_closes_every_session_with_1001_and_exits_0, .timeout = 60)
{
	shut_down_with(SIGINT);
}

Test(shutdown, a_libfxb_client_holding_a_lease_does_not_keep_the_broker_up, .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;

	BROKER_START(&tb, "--ports", "26810-26819");
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	BROKER_STOP(&tb);
	fxb_lease_free(l);
	fxb_client_free(c);
}
