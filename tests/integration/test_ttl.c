/* test_ttl.c: leases with ttl_ms end on their own unless lease.renew pushes them on.
 *
 * TTLs here are short (300 ms, 1 s) but every check allows seconds of slack: the tests
 * ask whether a lease ends, never how promptly. The brokers lease from 26900-26909.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static struct test_broker tb;
static struct raw_ws w;

static void setup(void)
{
	BROKER_START(&tb, "--ports", "26900-26909", "--port-quarantine-ms", "0");
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
}

static void teardown(void)
{
	raw_ws_close(&w);
	test_broker_kill(&tb);
}

TestSuite(ttl, .init = setup, .fini = teardown, .timeout = 60);

/* Acquires one port with ttl_ms and returns the lease id (static storage, per slot). */
static const char *acquire_with_ttl(int slot, int ttl_ms)
{
	static char ids[4][64];
	json_t *reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}, s:i}", "fixtures", "p", "kind", "port", "ttl_ms", ttl_ms));
	json_t *res = raw_rpc_result(reply);

	cr_assert_not_null(res, "lease.acquire: %s", json_dumps(reply, 0));
	cr_assert_eq(json_integer_value(json_object_get(res, "ttl_ms")), ttl_ms, "%s",
	    json_dumps(reply, 0));
	snprintf(ids[slot], sizeof(ids[slot]), "%s", json_string_value(json_object_get(res, "lease")));
	json_decref(reply);
	return ids[slot];
}

/* 1 if lease.list shows id, else 0. */
static int listed(const char *id)
{
	json_t *reply = raw_rpc_call(&w, "lease.list", json_object());
	json_t *leases = json_object_get(raw_rpc_result(reply), "leases"), *l;
	size_t i;
	int found = 0;

	cr_assert(json_is_array(leases), "lease.list: %s", json_dumps(reply, 0));
	json_array_foreach(leases, i, l)
		if (strcmp(json_string_value(json_object_get(l, "lease")), id) == 0)
			found = 1;
	json_decref(reply);
	return found;
}

/* Polls until id is no longer listed; returns 1 if it went within timeout_ms. */
static int gone_within(const char *id, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;

	while (listed(id)) {
		if (clock_ms() >= deadline)
			return 0;
		sleep_ms(50);
	}
	return 1;
}

/* lease.renew; returns the reply. */
static json_t *renew(const char *id, int ttl_ms)
{
	json_t *params = json_pack("{s:s}", "lease", id);

	if (ttl_ms > 0)
		json_object_set_new(params, "ttl_ms", json_integer(ttl_ms));
	return raw_rpc_call(&w, "lease.renew", params);
}

Test(ttl, a_lease_with_ttl_ms_300_is_gone_after_about_a_second)
{
	const char *id = acquire_with_ttl(0, 300);
	json_t *reply;

	cr_assert(listed(id), "the lease is not listed right after it was granted");
	cr_assert(gone_within(id, 5000), "the lease is still there 5 s after its 300 ms TTL");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0, "the expired lease kept its port");

	reply = renew(id, 0);
	cr_assert_eq(raw_rpc_error_code(reply), 1003, "renewing an expired lease: %s",
	    json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "LEASE_NOT_FOUND");
	json_decref(reply);
	reply = raw_rpc_call(&w, "lease.release", json_pack("{s:s}", "lease", id));
	cr_assert(json_is_false(json_object_get(raw_rpc_result(reply), "released")),
	    "releasing an expired lease: %s", json_dumps(reply, 0));
	json_decref(reply);
}

Test(ttl, lease_renew_with_a_longer_ttl_keeps_the_lease)
{
	const char *expiring = acquire_with_ttl(0, 300), *kept = acquire_with_ttl(1, 300);
	json_t *reply = renew(kept, 10000), *res = raw_rpc_result(reply);

	cr_assert_not_null(res, "lease.renew: %s", json_dumps(reply, 0));
	cr_assert_str_eq(json_string_value(json_object_get(res, "lease")), kept);
	cr_assert(json_integer_value(json_object_get(res, "expires_in_ms")) > 5000,
	    "lease.renew with ttl_ms 10000: %s", json_dumps(reply, 0));
	json_decref(reply);

	cr_assert(gone_within(expiring, 5000), "the unrenewed lease outlived its TTL");
	cr_assert(listed(kept), "the renewed lease ended with the other one");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);
}

Test(ttl, lease_renew_without_ttl_ms_uses_the_leases_own)
{
	/* 700 ms into a 1 s TTL at most 300 ms are left; a renewal puts it back near 1 s. */
	const char *id = acquire_with_ttl(0, 1000);
	json_t *reply, *res;
	json_int_t left;

	sleep_ms(700);
	reply = renew(id, 0);
	res = raw_rpc_result(reply);
	cr_assert_not_null(res, "lease.renew: %s", json_dumps(reply, 0));
	left = json_integer_value(json_object_get(res, "expires_in_ms"));
	cr_assert_eq(json_integer_value(json_object_get(res, "ttl_ms")), 1000);
	cr_assert(left > 600 && left <= 1000, "expires_in_ms %lld after renewing a 1000 ms lease",
	    (long long)left);
	json_decref(reply);
	cr_assert(gone_within(id, 6000), "the lease outlived its renewed TTL");
}

Test(ttl, a_lease_renewed_in_time_outlives_its_ttl_several_times)
{
	/* A 1 s TTL renewed every 100 ms for 3 s: 900 ms of slack per renewal. */
	const char *id = acquire_with_ttl(0, 1000);
	uint64_t end = clock_ms() + 3000;

	while (clock_ms() < end) {
		json_t *reply = renew(id, 0);

		cr_assert_not_null(raw_rpc_result(reply), "renewal failed: %s", json_dumps(reply, 0));
		json_decref(reply);
		sleep_ms(100);
	}
	cr_assert(listed(id), "the lease ended although it was renewed");
	cr_assert(gone_within(id, 6000), "the lease outlived its TTL once the renewals stopped");
}

Test(ttl, a_lease_without_ttl_does_not_expire_and_renewing_it_changes_nothing)
{
	json_t *reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", "p", "kind", "port"));
	const char *id = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
	char lid[64];
	json_t *r;

	cr_assert_not_null(id, "lease.acquire: %s", json_dumps(reply, 0));
	cr_assert(json_is_null(json_object_get(raw_rpc_result(reply), "ttl_ms")), "%s",
	    json_dumps(reply, 0));
	snprintf(lid, sizeof(lid), "%s", id);
	json_decref(reply);
	r = renew(lid, 0);
	cr_assert(json_is_null(json_object_get(raw_rpc_result(r), "ttl_ms")), "%s", json_dumps(r, 0));
	json_decref(r);
	sleep_ms(1500);
	cr_assert(listed(lid), "a lease without a TTL ended by itself");
}

Test(ttl, an_expired_lease_is_announced_to_its_session_with_lease_ended)
{
	const char *id = acquire_with_ttl(0, 300);
	json_t *n = NULL, *params;

	for (uint64_t end = clock_ms() + 10000; !n && clock_ms() < end;) {
		json_t *m = raw_rpc_read(&w, 1000);
		const char *method = json_string_value(json_object_get(m, "method"));

		if (method && !strcmp(method, "lease.ended"))
			n = m;
		else
			json_decref(m);
	}
	cr_assert_not_null(n, "no lease.ended came for the expired lease");
	params = json_object_get(n, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), id);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(params, "error"),
	    "name")), "LEASE_NOT_FOUND", "%s", json_dumps(n, 0));
	cr_assert_not_null(strstr(json_string_value(json_object_get(params, "reason")), "TTL"),
	    "%s", json_dumps(n, 0));
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(params, "fixtures"), 0)),
	    "p");
	json_decref(n);
	cr_assert(!listed(id));
}
