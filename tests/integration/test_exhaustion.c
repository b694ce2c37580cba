/* test_exhaustion.c: an exhausted pool: failing at once, waiting, timing out, FIFO order.
 *
 * Every broker here has a pool of four ports (in 26300-26399) and no quarantine, so a
 * released port is free again at once and the tests never wait on a quarantine timer.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

/* Polls GET /status until its "waiting" member is n; returns the last value seen. */
static long wait_for_waiting(const struct test_broker *tb, long n)
{
	uint64_t deadline = clock_ms() + 10000;
	long w = -1;

	while (clock_ms() < deadline) {
		json_t *st = test_broker_status(tb);

		w = st ? (long)json_integer_value(json_object_get(st, "waiting")) : -1;
		json_decref(st);
		if (w == n)
			break;
		sleep_ms(20);
	}
	return w;
}

/* Holds the whole pool of four in four one-port leases. */
static void hold_all(struct fxb_client *c, struct fxb_lease *held[4])
{
	for (int i = 0; i < 4; i++)
		cr_assert_eq(test_acquire_ports(c, 1, 0, &held[i]), 0, "lease %d: %s", i,
		    fxb_client_errmsg(c));
}

Test(exhaustion, a_request_with_wait_ms_0_fails_at_once_with_PORTS_EXHAUSTED)
{
	struct test_broker tb;
	struct fxb_client *a, *b;
	struct fxb_lease *held[4], *l = NULL;

	BROKER_START(&tb, "--ports", "26300-26303", "--port-quarantine-ms", "0");
	CLIENT_NEW(a, &tb, NULL, NULL);
	CLIENT_NEW(b, &tb, NULL, NULL);
	hold_all(a, held);
	cr_assert_eq(test_acquire_ports(b, 1, 0, &l), FXB_EBROKER, "a fifth port was granted");
	cr_assert_null(l);
	cr_assert_str_eq(fxb_client_errname(b), "PORTS_EXHAUSTED");
	cr_assert_eq(fxb_client_errcode(b), 1101);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 4);
	cr_assert_eq(wait_for_waiting(&tb, 0), 0, "the refused request is still queued");
	for (int i = 0; i < 4; i++)
		fxb_lease_free(held[i]);
	fxb_client_free(b);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}

Test(exhaustion, a_lease_that_cannot_get_every_fixture_takes_none)
{
	struct test_broker tb;
	struct fxb_client *a, *b;
	struct fxb_lease *two = NULL, *l = NULL;

	BROKER_START(&tb, "--ports", "26310-26313", "--port-quarantine-ms", "0");
	CLIENT_NEW(a, &tb, NULL, NULL);
	CLIENT_NEW(b, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(a, 2, 0, &two), 0, "%s", fxb_client_errmsg(a));
	cr_assert_eq(test_acquire_ports(b, 3, 0, &l), FXB_EBROKER, "three of two free ports granted");
	cr_assert_str_eq(fxb_client_errname(b), "PORTS_EXHAUSTED");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2, "a refused lease kept some ports");
	cr_assert_eq(test_broker_ports(&tb, "free"), 2);
	cr_assert_eq(test_acquire_ports(b, 2, 0, &l), 0, "%s", fxb_client_errmsg(b));
	fxb_lease_free(l);
	fxb_lease_free(two);
	fxb_client_free(b);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}

struct waiter {
	struct fxb_client *c;
	int wait_ms;
	int rc;
	int port;
	int done; /* set atomically when the acquire has returned */
	char errname[64];
};

static void *waiter_run(void *arg)
{
	struct waiter *w = arg;
	struct fxb_lease *l = NULL;

	w->rc = test_acquire_ports(w->c, 1, w->wait_ms, &l);
	w->port = w->rc == 0 ? test_lease_port(l, 0) : -1;
	snprintf(w->errname, sizeof(w->errname), "%s", fxb_client_errname(w->c));
	fxb_lease_free(l);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

Test(exhaustion, a_waiting_request_succeeds_when_another_client_releases, .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *a;
	struct fxb_lease *held[4];
	struct waiter w = { .wait_ms = 20000 };
	pthread_t th;
	int freed;

	BROKER_START(&tb, "--ports", "26320-26323", "--port-quarantine-ms", "0");
	CLIENT_NEW(a, &tb, NULL, NULL);
	CLIENT_NEW(w.c, &tb, NULL, NULL);
	hold_all(a, held);
	cr_assert_eq(pthread_create(&th, NULL, waiter_run, &w), 0);
	cr_assert_eq(wait_for_waiting(&tb, 1), 1, "the fifth request is not waiting");
	cr_assert_eq(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST), 0,
	    "the fifth request returned while the pool was full (rc %d, %s)", w.rc, w.errname);
	freed = test_lease_port(held[2], 0);
	cr_assert_eq(fxb_lease_release(a, held[2]), 0, "%s", fxb_client_errmsg(a));
	pthread_join(th, NULL);
	cr_assert_eq(w.rc, 0, "the waiting request failed: %s", w.errname);
	cr_assert_eq(w.port, freed, "the waiter got port %d, not the released %d", w.port, freed);
	cr_assert_eq(wait_for_waiting(&tb, 0), 0);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			fxb_lease_free(held[i]);
	fxb_client_free(w.c);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}

Test(exhaustion, a_waiting_request_times_out_with_PORTS_EXHAUSTED_after_its_wait_ms, .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *a;
	struct fxb_lease *held[4];
	struct raw_ws w;
	json_t *reply, *data;
	uint64_t t0, elapsed;

	BROKER_START(&tb, "--ports", "26330-26333", "--port-quarantine-ms", "0");
	CLIENT_NEW(a, &tb, NULL, NULL);
	hold_all(a, held);
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101, "%s", w.status_line);
	t0 = clock_ms();
	reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}, s:i}", "fixtures", "web", "kind", "port", "wait_ms", 800));
	elapsed = clock_ms() - t0;
	cr_assert_not_null(reply, "no reply to the waiting acquire");
	cr_assert_eq(raw_rpc_error_code(reply), 1101, "reply: %s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "PORTS_EXHAUSTED");
	/* It waited (not a failure at once); how much longer is the machine's business. */
	cr_assert(elapsed >= 700, "the acquire failed after %llu ms of its 800",
	    (unsigned long long)elapsed);
	data = json_object_get(json_object_get(reply, "error"), "data");
	cr_assert_str_eq(json_string_value(json_object_get(data, "fixture")), "web");
	cr_assert_eq(json_integer_value(json_object_get(data, "requested")), 1);
	cr_assert_eq(json_integer_value(json_object_get(data, "free")), 0);
	cr_assert_eq(json_integer_value(json_object_get(data, "leased")), 4);
	cr_assert_eq(json_integer_value(json_object_get(data, "size")), 4);
	cr_assert(json_integer_value(json_object_get(data, "waited_ms")) >= 700,
	    "data.waited_ms: %s", json_dumps(data, 0));
	json_decref(reply);
	cr_assert_eq(wait_for_waiting(&tb, 0), 0, "the timed-out request is still queued");
	/* The timed-out request took nothing: a release now is free for anyone. */
	cr_assert_eq(fxb_lease_release(a, held[0]), 0);
	cr_assert_eq(test_broker_ports(&tb, "free"), 1);
	raw_ws_close(&w);
	for (int i = 1; i < 4; i++)
		fxb_lease_free(held[i]);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}

Test(exhaustion, two_waiters_are_served_in_arrival_order, .timeout = 60)
{
	struct test_broker tb;
	struct fxb_client *a;
	struct fxb_lease *held[4];
	struct raw_ws first, second;
	json_t *reply, *params;
	int port0, port1;

	BROKER_START(&tb, "--ports", "26340-26343", "--port-quarantine-ms", "0");
	CLIENT_NEW(a, &tb, NULL, NULL);
	hold_all(a, held);
	cr_assert_eq(raw_ws_connect(&first, tb.port, NULL, NULL), 101);
	cr_assert_eq(raw_ws_connect(&second, tb.port, NULL, NULL), 101);

	params = json_pack("{s:{s:{s:s}}, s:i}", "fixtures", "p", "kind", "port", "wait_ms", 30000);
	cr_assert_eq(raw_rpc_send(&first, 1, "lease.acquire", json_incref(params)), 0);
	cr_assert_eq(wait_for_waiting(&tb, 1), 1, "the first request is not waiting");
	cr_assert_eq(raw_rpc_send(&second, 1, "lease.acquire", params), 0);
	cr_assert_eq(wait_for_waiting(&tb, 2), 2, "the second request is not waiting");

	/* One port comes back: it goes to the first waiter, and the second keeps waiting. */
	port0 = test_lease_port(held[0], 0);
	cr_assert_eq(fxb_lease_release(a, held[0]), 0);
	reply = raw_rpc_read(&first, 10000);
	cr_assert_not_null(reply, "the first waiter got no reply after a release");
	cr_assert_eq(raw_rpc_error_code(reply), 0, "the first waiter failed: %s", json_dumps(reply, 0));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(
	    raw_rpc_result(reply), "fixtures"), "p"), "port")), port0);
	json_decref(reply);
	reply = raw_rpc_read(&second, 300);
	cr_assert_null(reply, "the second waiter was answered before the first was served: %s",
	    json_dumps(reply, 0));
	cr_assert_eq(wait_for_waiting(&tb, 1), 1);

	/* Another one: now the second waiter is served. */
	port1 = test_lease_port(held[1], 0);
	cr_assert_eq(fxb_lease_release(a, held[1]), 0);
	reply = raw_rpc_read(&second, 10000);
	cr_assert_not_null(reply, "the second waiter got no reply after a second release");
	cr_assert_eq(raw_rpc_error_code(reply), 0, "the second waiter failed: %s",
	    json_dumps(reply, 0));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(
	    raw_rpc_result(reply), "fixtures"), "p"), "port")), port1);
	json_decref(reply);

	raw_ws_close(&first);
	raw_ws_close(&second);
	for (int i = 2; i < 4; i++)
		fxb_lease_free(held[i]);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}

Test(exhaustion, a_waiting_request_is_cancelled_when_its_connection_drops, .timeout = 60)
{
	/* A waiter that goes away must not take the next free port with it. */
	struct test_broker tb;
	struct fxb_client *a, *b;
	struct fxb_lease *held[4], *l = NULL;
	struct raw_ws w;

	BROKER_START(&tb, "--ports", "26350-26353", "--port-quarantine-ms", "0", "--grace-ms",
	    "60000");
	CLIENT_NEW(a, &tb, NULL, NULL);
	CLIENT_NEW(b, &tb, NULL, NULL);
	hold_all(a, held);
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	cr_assert_eq(raw_rpc_send(&w, 1, "lease.acquire", json_pack("{s:{s:{s:s}}, s:i}", "fixtures",
	    "p", "kind", "port", "wait_ms", 30000)), 0);
	cr_assert_eq(wait_for_waiting(&tb, 1), 1);
	raw_ws_close(&w);
	cr_assert_eq(wait_for_waiting(&tb, 0), 0, "the dropped connection's request still waits");
	cr_assert_eq(fxb_lease_release(a, held[0]), 0);
	cr_assert_eq(test_acquire_ports(b, 1, 0, &l), 0, "the released port went elsewhere: %s",
	    fxb_client_errmsg(b));
	fxb_lease_free(l);
	for (int i = 1; i < 4; i++)
		fxb_lease_free(held[i]);
	fxb_client_free(b);
	fxb_client_free(a);
	BROKER_STOP(&tb);
}
