/* test_sdk_liveness.c: libfxb and a broker that goes silent, and a session lost for good.
 *
 * A stopped broker (SIGSTOP) keeps its TCP connections open, the kernel acknowledging what
 * the client sends, so only the silence tells the client that nothing answers any more:
 * with --dead-after-ms 1000 the client must give the connection up on its own, reconnect
 * once the broker runs again and resume the session with its lease. A session lost for
 * good (here: another connection took it over with its resume token) must be loud: the
 * counter, the callback, and FXB_ELOST from every call on the leases of the lost session.
 * Ports 26950-26959.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

/* Polls fxb_client_state(c) until it is state, up to timeout_ms. Returns 1 if it was. */
static int wait_state(struct fxb_client *c, int state, int timeout_ms)
{
	uint64_t end = clock_ms() + (uint64_t)timeout_ms;

	while (fxb_client_state(c) != state) {
		if (clock_ms() >= end)
			return 0;
		sleep_ms(20);
	}
	return 1;
}

Test(sdk_liveness, a_silent_broker_is_left_after_dead_after_ms_and_the_session_resumes,
    .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	char session[128];
	int port, left;

	BROKER_START(&tb, "--ports", "26950-26951", "--heartbeat-ms", "200", "--dead-after-ms",
	    "1000", "--grace-ms", "10000");
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(fxb_client_state(c), FXB_STATE_OPEN);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	port = test_lease_port(l, 0);
	snprintf(session, sizeof session, "%s", fxb_client_session(c));

	cr_assert_eq(kill(tb.pid, SIGSTOP), 0);
	/* Without a watch on silence the client would wait on TCP, which sees nothing wrong. */
	left = wait_state(c, FXB_STATE_CONNECTING, 10000);
	kill(tb.pid, SIGCONT);
	cr_assert(left, "the client still takes a stopped broker for alive after 10 s");
	cr_assert(wait_state(c, FXB_STATE_OPEN, 20000), "the client did not reconnect");

	cr_assert_str_eq(fxb_client_session(c), session, "the session was not resumed");
	cr_assert_eq(fxb_client_sessions_lost(c), 0);
	cr_assert_eq(fxb_lease_state(l), FXB_OK);
	cr_assert_eq(test_lease_port(l, 0), port);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);
	cr_assert_eq(fxb_lease_release(c, l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

struct lost_calls {
	pthread_mutex_t mu;
	int n;
	char old[128], fresh[128], current[128];
	int state;
};

static void on_lost(struct fxb_client *c, const char *old, const char *fresh, void *arg)
{
	struct lost_calls *lc = arg;

	pthread_mutex_lock(&lc->mu);
	lc->n++;
	snprintf(lc->old, sizeof lc->old, "%s", old);
	snprintf(lc->fresh, sizeof lc->fresh, "%s", fresh);
	snprintf(lc->current, sizeof lc->current, "%s", fxb_client_session(c));
	lc->state = fxb_client_state(c);
	pthread_mutex_unlock(&lc->mu);
}

Test(sdk_liveness, a_lost_session_is_counted_called_back_and_its_leases_answer_elost,
    .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *c, *thief;
	struct fxb_lease *l = NULL, *again = NULL;
	struct lost_calls lc = { .mu = PTHREAD_MUTEX_INITIALIZER };
	char session[128], lease[128];
	uint64_t end;
	int n;

	BROKER_START(&tb, "--ports", "26952-26955", "--port-quarantine-ms", "0");
	CLIENT_NEW(c, &tb, NULL, NULL);
	fxb_client_on_session_lost(c, on_lost, &lc);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	snprintf(session, sizeof session, "%s", fxb_client_session(c));
	snprintf(lease, sizeof lease, "%s", fxb_lease_id(l));

	/* The holder of the resume token takes the session and its lease: c's is gone. */
	CLIENT_NEW(thief, &tb, NULL, fxb_client_resume_token(c));
	cr_assert_str_eq(fxb_client_session(thief), session);
	for (end = clock_ms() + 10000; fxb_client_sessions_lost(c) == 0 && clock_ms() < end;)
		sleep_ms(20);
	cr_assert_eq(fxb_client_sessions_lost(c), 1, "the loss went unnoticed");
	cr_assert(wait_state(c, FXB_STATE_OPEN, 10000));
	cr_assert_str_neq(fxb_client_session(c), session, "the client took the session back");
	for (end = clock_ms() + 10000; clock_ms() < end; sleep_ms(20)) {
		pthread_mutex_lock(&lc.mu);
		n = lc.n;
		pthread_mutex_unlock(&lc.mu);
		if (n)
			break;
	}
	pthread_mutex_lock(&lc.mu);
	cr_assert_eq(lc.n, 1, "the callback was called %d times", lc.n);
	cr_assert_str_eq(lc.old, session);
	cr_assert_str_eq(lc.fresh, fxb_client_session(c));
	cr_assert_str_eq(lc.current, fxb_client_session(c), "called before the new session");
	cr_assert_eq(lc.state, FXB_STATE_OPEN);
	pthread_mutex_unlock(&lc.mu);

	/* Every call on the lost lease says so; the ones that name it still answer. */
	cr_assert_eq(fxb_lease_state(l), FXB_ELOST);
	cr_assert_eq(fxb_lease_port(l, "p0"), FXB_ELOST);
	cr_assert_null(fxb_lease_host(l, "p0"));
	cr_assert_null(fxb_lease_field(l, "p0", "port"));
	cr_assert_str_eq(fxb_lease_id(l), lease);
	cr_assert_eq(fxb_lease_count(l), 1);
	cr_assert_eq(fxb_lease_release(c, l), FXB_ELOST);
	cr_assert(strstr(fxb_client_errmsg(c), "lost with its session"), "%s",
	    fxb_client_errmsg(c));
	/* Refused without a call: the thief still holds it. */
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);

	/* The client goes on in its new session, whose leases are good. */
	cr_assert_eq(test_acquire_ports(c, 1, 0, &again), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_lease_state(again), FXB_OK);
	cr_assert_gt(test_lease_port(again, 0), 0);
	cr_assert_eq(fxb_lease_release(c, again), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_client_state(NULL), FXB_EINVAL);
	cr_assert_eq(fxb_lease_state(NULL), FXB_EINVAL);
	fxb_client_free(thief);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}
