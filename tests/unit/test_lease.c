/* test_lease.c: atomic grants, the FIFO wait queue, deadlines, TTLs, release rules. */
#include "lease/lease.h"
#include "unit.h"

#define ACQ(id, fixtures, extra)                                                            \
	"{\"jsonrpc\":\"2.0\",\"id\":" #id ",\"method\":\"lease.acquire\",\"params\":{\"fixtures\":" \
	fixtures extra "}}"
#define ONE "{\"p\":{\"kind\":\"port\"}}"
#define TWO "{\"p\":{\"kind\":\"port\"},\"q\":{\"kind\":\"port\"}}"

static const char *
lease_id(json_t *reply)
{
	const char *lid = json_string_value(json_object_get(json_object_get(reply, "result"), "lease"));

	cr_assert_not_null(lid, "not a grant: %s", json_dumps(reply, 0));
	return lid;
}

static void
release(struct broker *b, struct session *s, const char *lid)
{
	char text[256];
	json_t *r;

	snprintf(text, sizeof text,
	    "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"lease.release\",\"params\":{\"lease\":\"%s\"}}", lid);
	r = unit_call(b, s, text);
	cr_assert(json_is_true(json_object_get(json_object_get(r, "result"), "released")));
	json_decref(r);
}

Test(lease, grants_every_fixture_or_none)
{
	struct broker *b = unit_broker(16200, 16202, 0, 0);
	struct session *s = unit_session(b, 0);
	json_t *r = unit_call(b, s, ACQ(1, TWO, ""));
	json_t *fx = json_object_get(json_object_get(r, "result"), "fixtures");
	json_t *r2;

	cr_assert_neq(json_integer_value(json_object_get(json_object_get(fx, "p"), "port")),
	    json_integer_value(json_object_get(json_object_get(fx, "q"), "port")));
	r2 = unit_call(b, s, ACQ(2, TWO, ""));
	cr_assert_str_eq(unit_error_name(r2), "PORTS_EXHAUSTED");
	cr_assert_eq(leases_active(b->leases), 1, "the short request took nothing");
	json_decref(r);
	json_decref(r2);
	unit_free(b);
}

Test(lease, serves_a_waiting_acquire_when_a_lease_is_released)
{
	struct broker *b = unit_broker(16210, 16210, 0, 0);
	struct session *a = unit_session(b, 0), *w = unit_session(b, 1);
	json_t *held = unit_call(b, a, ACQ(1, ONE, ""));
	json_t *r;

	cr_assert_null(unit_call(b, w, ACQ(2, ONE, ",\"wait_ms\":10000")), "the acquire waits");
	cr_assert_eq(leases_waiting(b->leases), 1);
	cr_assert_null(unit_take(1));
	release(b, a, lease_id(held));
	r = unit_take(1);
	cr_assert_not_null(r, "the waiter got its reply");
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 2);
	lease_id(r);
	cr_assert_eq(leases_waiting(b->leases), 0);
	json_decref(held);
	json_decref(r);
	unit_free(b);
}

Test(lease, serves_waiters_in_arrival_order)
{
	struct broker *b = unit_broker(16220, 16220, 0, 0);
	struct session *a = unit_session(b, 0), *w1 = unit_session(b, 1), *w2 = unit_session(b, 2);
	json_t *held = unit_call(b, a, ACQ(1, ONE, "")), *r;

	cr_assert_null(unit_call(b, w1, ACQ(2, ONE, ",\"wait_ms\":10000")));
	cr_assert_null(unit_call(b, w2, ACQ(3, ONE, ",\"wait_ms\":10000")));
	r = unit_call(b, a, ACQ(4, ONE, ""));
	cr_assert_str_eq(unit_error_name(r), "PORTS_EXHAUSTED", "no one jumps the queue");
	json_decref(r);
	release(b, a, lease_id(held));
	cr_assert_null(unit_take(2), "the second waiter is still waiting");
	r = unit_take(1);
	cr_assert_not_null(r, "the first waiter is served first");
	release(b, w1, lease_id(r));
	json_decref(r);
	r = unit_take(2);
	cr_assert_not_null(r, "then the second");
	json_decref(r);
	json_decref(held);
	unit_free(b);
}

Test(lease, fails_a_waiter_with_the_pool_state_when_its_wait_runs_out)
{
	struct broker *b = unit_broker(16230, 16230, 0, 0);
	struct session *a = unit_session(b, 0), *w = unit_session(b, 1);
	json_t *held = unit_call(b, a, ACQ(1, ONE, "")), *r = NULL, *data;

	cr_assert_null(unit_call(b, w, ACQ(2, ONE, ",\"wait_ms\":150")));
	for (int i = 0; i < 100 && !(r = unit_take(1)); i++)
		unit_run(b, 20);
	cr_assert_not_null(r, "the deadline fired");
	cr_assert_str_eq(unit_error_name(r), "PORTS_EXHAUSTED");
	data = json_object_get(json_object_get(r, "error"), "data");
	cr_assert_str_eq(json_string_value(json_object_get(data, "fixture")), "p");
	cr_assert_eq(json_integer_value(json_object_get(data, "leased")), 1);
	cr_assert_geq(json_integer_value(json_object_get(data, "waited_ms")), 150);
	cr_assert_eq(leases_waiting(b->leases), 0);
	json_decref(r);
	json_decref(held);
	unit_free(b);
}

Test(lease, wakes_a_waiter_when_a_quarantined_port_comes_free)
{
	struct broker *b = unit_broker(16240, 16240, 200, 0);
	struct session *a = unit_session(b, 0), *w = unit_session(b, 1);
	json_t *held = unit_call(b, a, ACQ(1, ONE, "")), *r = NULL;

	release(b, a, lease_id(held));
	cr_assert_null(unit_call(b, w, ACQ(2, ONE, ",\"wait_ms\":5000")), "quarantined: it waits");
	for (int i = 0; i < 100 && !(r = unit_take(1)); i++)
		unit_run(b, 20);
	cr_assert_not_null(r);
	lease_id(r);
	json_decref(r);
	json_decref(held);
	unit_free(b);
}

Test(lease, answers_a_batch_once_its_waiting_call_is_served)
{
	struct broker *b = unit_broker(16250, 16250, 0, 0);
	struct session *a = unit_session(b, 0), *w = unit_session(b, 1);
	json_t *held = unit_call(b, a, ACQ(1, ONE, "")), *r;
	const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"broker.status\"},"
	    "{\"jsonrpc\":\"2.0\",\"id\":\"y\",\"method\":\"lease.acquire\","
	    "\"params\":{\"fixtures\":" ONE ",\"wait_ms\":10000}},"
	    "{\"jsonrpc\":\"2.0\",\"id\":\"z\",\"method\":\"nope\"}]";

	cr_assert_null(unit_call(b, w, batch), "the batch waits for its slowest call");
	release(b, a, lease_id(held));
	r = unit_take(1);
	cr_assert(json_is_array(r));
	cr_assert_eq(json_array_size(r), 3);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 0), "id")), "x");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 1), "id")), "y");
	lease_id(json_array_get(r, 1));
	cr_assert_str_eq(unit_error_name(json_array_get(r, 2)), "METHOD_NOT_FOUND");
	json_decref(r);
	json_decref(held);
	unit_free(b);
}

Test(lease, releases_a_lease_when_its_ttl_passes_unless_renewed)
{
	struct broker *b = unit_broker(16260, 16261, 0, 0);
	struct session *s = unit_session(b, 0);
	json_t *kept = unit_call(b, s, ACQ(1, ONE, ",\"ttl_ms\":300"));
	json_t *lost = unit_call(b, s, ACQ(2, ONE, ",\"ttl_ms\":300")), *r;
	char text[256];

	for (int i = 0; i < 4; i++) {
		unit_run(b, 100);
		snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"lease.renew\","
		    "\"params\":{\"lease\":\"%s\"}}", lease_id(kept));
		r = unit_call(b, s, text);
		cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "result"), "ttl_ms")), 300);
		json_decref(r);
	}
	cr_assert_null(lease_find(b, lease_id(lost)), "the lease that was not renewed is gone");
	cr_assert_not_null(lease_find(b, lease_id(kept)), "the renewed one is held");
	json_decref(kept);
	json_decref(lost);
	unit_free(b);
}

Test(lease, refuses_to_release_another_sessions_lease)
{
	struct broker *b = unit_broker(16270, 16271, 0, 0);
	struct session *a = unit_session(b, 0), *c = unit_session(b, 1);
	json_t *held = unit_call(b, a, ACQ(1, ONE, "")), *r;
	char text[256];

	snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"lease.release\","
	    "\"params\":{\"lease\":\"%s\"}}", lease_id(held));
	r = unit_call(b, c, text);
	cr_assert_str_eq(unit_error_name(r), "LEASE_NOT_OWNED");
	cr_assert_not_null(lease_find(b, lease_id(held)), "nothing changed");
	json_decref(r);
	release(b, a, lease_id(held));
	r = unit_call(b, a, text);
	cr_assert(json_is_false(json_object_get(json_object_get(r, "result"), "released")),
	    "a second release is harmless");
	json_decref(r);
	json_decref(held);
	unit_free(b);
}

/* 33 two-byte characters (é): after one ASCII byte, %.64s cuts inside the 32nd. */
#define WIDE "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"   \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"

Test(lease, answers_a_request_whose_quoted_text_is_cut_inside_a_character)
{
	struct broker *b = unit_broker(16205, 16205, 0, 0);
	struct session *s = unit_session(b, 0);
	json_t *r = unit_call(b, s, ACQ(1, "{\"p\":{\"kind\":\"x" WIDE "\"}}", ""));
	json_t *e = json_object_get(r, "error");

	cr_assert_not_null(e, "an error reply, not silence");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "data"), "name")),
	    "UNKNOWN_FIXTURE_KIND");
	cr_assert(strstr(json_string_value(json_object_get(e, "message")), "unknown fixture kind") != NULL);
	json_decref(r);
	unit_free(b);
}
