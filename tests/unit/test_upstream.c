/* test_upstream.c: the upstream session's reading of the upstream's hello limits, and its
 * open calls' callbacks when they fail. */
#include <criterion/criterion.h>
#include <jansson.h>

#include "net/upstream.h"
#include "unit.h"

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

/* ---- failing open calls: a callback may cancel another call still to fail ---- */

static struct upstream *under_test;
static int64_t second_id;
static int first_ran, second_ran;

static void
second_done(struct broker *b, void *arg, json_t *result, const struct fxb_error *err)
{
	(void)b, (void)arg, (void)result, (void)err;
	second_ran++;
}

static void
first_done(struct broker *b, void *arg, json_t *result, const struct fxb_error *err)
{
	(void)b, (void)arg, (void)result;
	cr_assert_eq(err->code, ERR_SHUTTING_DOWN);
	first_ran++;
	upstream_cancel(under_test, second_id);
}

Test(upstream, a_call_cancelled_by_the_failure_callback_of_another_is_not_called_back)
{
	struct broker *b = unit_broker(16400, 16401, 0, 0);
	struct fxb_error err = { 0 };

	/* Never connected (the loop does not run): both calls wait for the session, and
	 * upstream_free() fails them in order. */
	snprintf(b->cfg.upstream, sizeof b->cfg.upstream, "ws://127.0.0.1:1");
	under_test = upstream_new(b, NULL, NULL, NULL, &err);
	cr_assert_not_null(under_test, "upstream_new: %s", err.text);
	cr_assert_gt(upstream_call(under_test, "lease.reset", NULL, first_done, NULL, &err), 0);
	second_id = upstream_call(under_test, "lease.release", NULL, second_done, NULL, &err);
	cr_assert_gt(second_id, 0);
	upstream_free(under_test);
	cr_assert_eq(first_ran, 1);
	cr_assert_eq(second_ran, 0, "the cancelled call's callback ran");
	unit_free(b);
}
