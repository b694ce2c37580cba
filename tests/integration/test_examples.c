/* test_examples.c: the SDK's examples, built into $FXB_EXAMPLES, run against a real broker.
 *
 * They find the broker through FIXTURE_BROKER_URL, as a user's tests would. The brokers
 * here lease from 27000-27019.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char out[65536];

/* Runs $FXB_EXAMPLES/name against tb. Returns its exit status; its output is in out. */
static int run_example(const struct test_broker *tb, const char *name)
{
	const char *dir = getenv("FXB_EXAMPLES");
	char path[1024], env_url[128];
	const char *const argv[] = { name, NULL };
	const char *const env[] = { env_url, NULL };

	cr_assert(dir != NULL && *dir != '\0', "FXB_EXAMPLES is not set");
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(env_url, sizeof(env_url), "FIXTURE_BROKER_URL=%s", tb->url);
	return run_program(path, argv, env, out, sizeof(out), 120000);
}

Test(examples, first_lease_exits_0_and_prints_two_different_ports, .timeout = 150)
{
	struct test_broker tb;
	int seen[10] = { 0 }, distinct = 0, st;

	BROKER_START(&tb, "--ports", "27000-27009");
	st = run_example(&tb, "first_lease");
	cr_assert_eq(st, 0, "first_lease exited with %d:\n%s", st, out);
	/* Every number in the output that lies in the pool is a port it was given. */
	for (const char *p = out; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p) && (p == out || !isdigit((unsigned char)p[-1]))) {
			long n = strtol(p, NULL, 10);

			if (n >= 27000 && n <= 27009 && !seen[n - 27000]++)
				distinct++;
		}
	}
	cr_assert(distinct >= 2, "first_lease printed %d port(s) of the pool:\n%s", distinct, out);
	BROKER_STOP(&tb);
}

Test(examples, criterion_suite_passes_against_the_broker, .timeout = 150)
{
	struct test_broker tb;
	int st;

	BROKER_START(&tb, "--ports", "27010-27019");
	st = run_example(&tb, "criterion_suite");
	cr_assert_eq(st, 0, "criterion_suite exited with %d:\n%s", st, out);
	BROKER_STOP(&tb);
}
