/* test_pgproc.c: programs run under a keeper: exit status, output tail, timeout, lookup of
 * PostgreSQL's binaries. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures/pg/pgembed.h"
#include "fixtures/pg/pgproc.h"

static int
run(char *const argv[], int timeout_ms, char *tail, size_t cap, int *timed_out)
{
	struct pgproc_spec spec = { .argv = argv, .out_fd = -1, .new_session = 1,
		.deathsig = SIGKILL };
	struct fxb_error err = { 0 };
	struct pgproc p;

	cr_assert_eq(pgproc_start(&spec, &p, &err), 0, "%s", err.text);
	cr_assert_gt(p.pid, 0);
	return pgproc_wait(&p, timeout_ms, tail, cap, timed_out);
}

Test(pgproc, reports_the_exit_status_even_when_someone_else_reaps_the_keeper)
{
	char *argv[] = { "/bin/sh", "-c", "exit 7", NULL };
	int ws, timed_out;

	/* Like the broker's loop, reap every child the moment it exits. */
	signal(SIGCHLD, SIG_IGN);
	ws = run(argv, 10000, NULL, 0, &timed_out);
	signal(SIGCHLD, SIG_DFL);
	cr_assert(WIFEXITED(ws), "status %d", ws);
	cr_assert_eq(WEXITSTATUS(ws), 7);
	cr_assert_not(timed_out);
}

Test(pgproc, keeps_the_tail_of_the_output)
{
	char *argv[] = { "/bin/sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); "
		"done; echo last >&2", NULL };
	char tail[64];
	int ws = run(argv, 10000, tail, sizeof tail, NULL);

	cr_assert_eq(ws, 0);
	cr_assert_lt(strlen(tail), sizeof tail);
	cr_assert_not_null(strstr(tail, "line 499\nlast\n"), "tail: %s", tail);
}

Test(pgproc, kills_a_program_past_its_timeout)
{
	char *argv[] = { "/bin/sh", "-c", "sleep 30", NULL };
	int timed_out = 0, ws = run(argv, 200, NULL, 0, &timed_out);

	cr_assert(timed_out);
	cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "status %d", ws);
}

Test(pgproc, says_so_when_a_program_cannot_run)
{
	char *argv[] = { "/nonexistent/program", NULL };
	char tail[256];
	int ws = run(argv, 10000, tail, sizeof tail, NULL);

	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 127, "status %d", ws);
	cr_assert_not_null(strstr(tail, "/nonexistent/program"), "%s", tail);
}

static void
fake_bin(const char *dir, const char *name)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	cr_assert_not_null(f = fopen(p, "w"));
	fputs("#!/bin/sh\n", f);
	fclose(f);
	chmod(p, 0755);
}

Test(pgproc, finds_postgresql_on_path_first_then_the_newest_version_and_names_what_is_missing)
{
	char root[128], d[256], pathdir[256], out[512];
	struct fxb_error err = { 0 };

	snprintf(root, sizeof root, "/tmp/fxb-unit-pgbin-%d", (int)getpid());
	snprintf(pathdir, sizeof pathdir, "%s/path", root);
	mkdir(root, 0755);
	mkdir(pathdir, 0755);
	cr_assert_eq(pgembed_find_bindir("/nonexistent", root, NULL, 0, out, sizeof out, &err), -1);
	cr_assert_not_null(strstr(err.text, "initdb"), "%s", err.text);
	error_clear(&err);
	for (int v = 13; v <= 16; v += 3) {
		snprintf(d, sizeof d, "%s/%d", root, v);
		mkdir(d, 0755);
		snprintf(d, sizeof d, "%s/%d/bin", root, v);
		mkdir(d, 0755);
		fake_bin(d, "initdb");
		fake_bin(d, "postgres");
	}
	cr_assert_eq(pgembed_find_bindir("/nonexistent", root, NULL, 0, out, sizeof out, &err), 0);
	snprintf(d, sizeof d, "%s/16/bin", root);
	cr_assert_str_eq(out, d, "the newest version");
	cr_assert_eq(pgembed_find_bindir("/nonexistent", root, NULL, 13, out, sizeof out, &err), 0);
	snprintf(d, sizeof d, "%s/13/bin", root);
	cr_assert_str_eq(out, d, "the version a data directory asks for");
	fake_bin(pathdir, "initdb");
	cr_assert_eq(pgembed_find_bindir(pathdir, root, NULL, 0, out, sizeof out, &err), 0);
	cr_assert_str_neq(out, pathdir, "initdb alone on PATH is not enough");
	fake_bin(pathdir, "postgres");
	cr_assert_eq(pgembed_find_bindir(pathdir, root, NULL, 0, out, sizeof out, &err), 0);
	cr_assert_str_eq(out, pathdir, "PATH first");
	snprintf(d, sizeof d, "rm -rf %s", root);
	cr_assert_eq(system(d), 0);
}

Test(pgproc, takes_the_fallback_directory_only_when_no_postgresql_is_installed)
{
	char root[64], fb[128], d[512], out[512];
	struct fxb_error err = { 0 };

	snprintf(root, sizeof root, "/tmp/fxb-unit-pgfb-%d", (int)getpid());
	snprintf(fb, sizeof fb, "%s/npm/native/bin", root);
	snprintf(d, sizeof d, "mkdir -p %s %s/lib", fb, root);
	cr_assert_eq(system(d), 0);
	snprintf(d, sizeof d, "%s/lib", root);
	fake_bin(fb, "initdb");
	cr_assert_eq(pgembed_find_bindir("/nonexistent", d, fb, 0, out, sizeof out, &err), -1,
	    "initdb alone is not enough");
	cr_assert_not_null(strstr(err.text, fb), "%s", err.text);
	cr_assert_not_null(strstr(err.text, PGEMBED_BINDIR_ENV), "%s", err.text);
	error_clear(&err);
	fake_bin(fb, "postgres");
	cr_assert_eq(pgembed_find_bindir("/nonexistent", d, fb, 0, out, sizeof out, &err), 0);
	cr_assert_str_eq(out, fb, "the fallback when nothing is installed");
	snprintf(d, sizeof d, "mkdir -p %s/lib/15/bin", root);
	cr_assert_eq(system(d), 0);
	snprintf(d, sizeof d, "%s/lib/15/bin", root);
	fake_bin(d, "initdb");
	fake_bin(d, "postgres");
	snprintf(d, sizeof d, "%s/lib", root);
	cr_assert_eq(pgembed_find_bindir("/nonexistent", d, fb, 0, out, sizeof out, &err), 0);
	snprintf(d, sizeof d, "%s/lib/15/bin", root);
	cr_assert_str_eq(out, d, "an installed PostgreSQL wins over the fallback");
	snprintf(d, sizeof d, "rm -rf %s", root);
	cr_assert_eq(system(d), 0);
}
