/* test_run.c: `fixture-broker run -- COMMAND`: a private broker for one command. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

Test(run, gives_the_command_a_broker_url_and_exits_with_its_status, .timeout = 60)
{
	const char *args[] = { "run", "--", "sh", "-c", "echo url=$FIXTURE_BROKER_URL; exit 3", NULL };
	char out[4096];
	int port = 0;

	cr_assert_eq(test_broker_run(args, out, sizeof out, 20000), 3, "output: %s", out);
	cr_assert_eq(sscanf(strstr(out, "url=") ? strstr(out, "url=") : "", "url=ws://127.0.0.1:%d",
	    &port), 1, "no loopback broker URL in: %s", out);
	cr_assert_gt(port, 0);
}

Test(run, lets_the_command_lease_from_the_private_broker, .timeout = 60)
{
	char path[4096], out[4096];
	const char *args[] = { "run", "--ports", "26480-26489", "--", path, NULL };
	int http = 0, grpc = 0;

	snprintf(path, sizeof path, "%s/first_lease", getenv("FXB_EXAMPLES"));
	cr_assert_eq(test_broker_run(args, out, sizeof out, 20000), 0, "output: %s", out);
	cr_assert_eq(sscanf(out, "http=%d grpc=%d", &http, &grpc), 2, "output: %s", out);
	cr_assert(http >= 26480 && http <= 26489 && grpc >= 26480 && grpc <= 26489 && http != grpc);
}

Test(run, reports_a_command_killed_by_a_signal_as_128_plus_its_number, .timeout = 60)
{
	const char *args[] = { "run", "--", "sh", "-c", "kill -TERM $$", NULL };
	char out[4096];

	cr_assert_eq(test_broker_run(args, out, sizeof out, 20000), 128 + SIGTERM, "output: %s", out);
}

Test(run, says_so_when_the_command_cannot_be_found, .timeout = 60)
{
	const char *args[] = { "run", "--", "/nonexistent/fxb-command", NULL };
	char out[4096];

	cr_assert_eq(test_broker_run(args, out, sizeof out, 20000), 127, "output: %s", out);
	cr_assert_not_null(strstr(out, "/nonexistent/fxb-command"), "output: %s", out);
}

Test(run, needs_a_command)
{
	const char *args[] = { "run", "--ports", "26480-26489", NULL };
	char out[4096];

	cr_assert_eq(test_broker_run(args, out, sizeof out, 20000), 2, "output: %s", out);
	cr_assert_not_null(strstr(out, "usage"), "output: %s", out);
}

Test(run, passes_sigterm_to_the_command_and_stops_after_it, .timeout = 60)
{
	char broker[4096], marker[64];
	pid_t pid;

	/* The command records that it got SIGTERM, then exits 42; the broker must wait for
	 * it and leave with 42. */
	snprintf(broker, sizeof broker, "%s", getenv("FXB_BROKER"));
	snprintf(marker, sizeof marker, "/tmp/fxb-run-term-%d", (int)getpid());
	unlink(marker);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char script[256];
		snprintf(script, sizeof script,
		    "trap 'touch %s; exit 42' TERM; while :; do sleep 0.05; done", marker);
		execl(broker, broker, "run", "--", "sh", "-c", script, (char *)NULL);
		_exit(99);
	}
	sleep_ms(700); /* the command is running its loop */
	cr_assert_eq(kill(pid, SIGTERM), 0);
	cr_assert_eq(child_wait(pid, 15000), 42, "the broker's exit status is the command's");
	cr_assert_eq(access(marker, F_OK), 0, "the command got SIGTERM");
	unlink(marker);
}
