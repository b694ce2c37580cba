/* test_upstream.c: the upstream session's reading of the upstream's hello limits. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "net/upstream.h"

/* Reads limits (JSON text) over dead_after_ms 15000 and grace_ms 5000. */
static void
read_limits(const char *text, int *dead, int *grace)
{
	json_t *limits = json_loads(text, 0, NULL);

	cr_assert_not_null(limits, "%s", text);
	*dead = 15000;
	*grace = 5000;
	upstream_limits_read(limits, dead, grace, "ws://upstream.test");
	json_decref(limits);
}

Test(upstream, limits_in_range_are_taken)
{
	int dead, grace;

	read_limits("{\"dead_after_ms\": 8000, \"grace_ms\": 0, \"heartbeat_ms\": 2000}", &dead,
	    &grace);
	cr_assert_eq(dead, 8000);
	cr_assert_eq(grace, 0);
}

Test(upstream, negative_limits_are_clamped_not_taken)
{
	int dead, grace;

	/* A negative dead_after_ms would reschedule the heartbeat at once, for ever, and a
	 * negative grace_ms would lose the session at every cut. */
	read_limits("{\"dead_after_ms\": -5, \"grace_ms\": -1000}", &dead, &grace);
	cr_assert_eq(dead, UPSTREAM_DEAD_AFTER_MIN_MS);
	cr_assert_eq(grace, 0);
	read_limits("{\"dead_after_ms\": 0}", &dead, &grace);
	cr_assert_eq(dead, UPSTREAM_DEAD_AFTER_MIN_MS);
}

Test(upstream, huge_limits_are_clamped)
{
	int dead, grace;

	/* Past INT_MAX: (int) of it would wrap. */
	read_limits("{\"dead_after_ms\": 99999999999, \"grace_ms\": 4294967296}", &dead, &grace);
	cr_assert_eq(dead, UPSTREAM_DEAD_AFTER_MAX_MS);
	cr_assert_eq(grace, UPSTREAM_GRACE_MAX_MS);
}

Test(upstream, limits_that_are_not_integers_or_absent_change_nothing)
{
	int dead, grace;

	read_limits("{\"dead_after_ms\": 1.5e3, \"grace_ms\": \"9000\"}", &dead, &grace);
	cr_assert_eq(dead, 15000);
	cr_assert_eq(grace, 5000);
	read_limits("{}", &dead, &grace);
	cr_assert_eq(dead, 15000);
	cr_assert_eq(grace, 5000);
}
