/* test_proc.c: spawning children (exec failures, descriptors, environment) and the journal.
 *
 * proc_spawn() runs real programs here (/bin/sh), reaped by the test itself with
 * waitpid(); the registry is made without a journal, as unit tests' brokers are.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "proc/journal.h"
#include "proc/proc.h"

/* Reads fd to its end (the child has exited), at most cap - 1 bytes. */
static void
read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	fcntl(fd, F_SETFL, 0);
	for (ssize_t n; len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0;)
		len += (size_t)n;
	buf[len] = '\0';
}

/* Runs argv through proc_spawn with pass_fds and envp; returns its stdout. */
static void
run(char *const *argv, char *const *envp, const int *pass, size_t npass, int listen_pid,
    char *out, size_t cap)
{
	struct broker b = { 0 };
	struct fxb_error err = { 0 };
	struct procs *p;
	struct proc_spec spec = { 0 };
	struct proc_child c;
	int st;

	strcpy(b.instance, "0123456789abcdef");
	p = procs_new(&b, NULL, &err);
	cr_assert_not_null(p, "%s", err.text);
	spec.file = argv[0];
	spec.argv = argv;
	spec.envp = envp;
	spec.pass_fds = pass;
	spec.npass = npass;
	spec.listen_pid = listen_pid;
	spec.capture = 1;
	spec.err_code = 4242;
	cr_assert_eq(proc_spawn(p, &spec, &c, &err), 0, "%s", err.text);
	read_all(c.out_fd, out, cap);
	cr_assert_eq(waitpid(c.pid, &st, 0), c.pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed: 0x%x (%s)", st, out);
	close(c.out_fd);
	close(c.err_fd);
	procs_free(p);
}

/* proc_spawn's error for spec, which must fail. */
static void
spawn_fails(const char *file, const char *cwd, const char *stage, const char *errno_name)
{
	struct broker b = { 0 };
	struct fxb_error err = { 0 };
	char *const argv[] = { (char *)file, NULL };
	struct proc_spec spec = { .file = file, .argv = argv, .cwd = cwd, .err_code = 4242 };
	struct proc_child c;
	struct procs *p = procs_new(&b, NULL, &err);

	cr_assert_eq(proc_spawn(p, &spec, &c, &err), -1, "%s started", file);
	cr_assert_eq(err.code, 4242);
	cr_assert_eq(c.pid, -1);
	cr_assert_str_eq(json_string_value(json_object_get(err.data, "stage")), stage, "%s", err.text);
	cr_assert_str_eq(json_string_value(json_object_get(err.data, "errno")), errno_name, "%s",
	    err.text);
	error_clear(&err);
	procs_free(p);
}

Test(proc, an_exec_failure_is_reported_at_once_with_its_stage_and_errno)
{
	spawn_fails("/nonexistent/program", NULL, "exec", "ENOENT");
	spawn_fails("no-such-program-in-path-anywhere", NULL, "exec", "ENOENT");
	spawn_fails("/etc/passwd", NULL, "exec", "EACCES");
	spawn_fails("/bin/true", "/nonexistent/dir", "cwd", "ENOENT");
}

Test(proc, the_child_keeps_only_its_standard_and_handed_over_descriptors)
{
	char *const argv[] = { "/bin/sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '", NULL };
	char out[256];
	int leak = open("/dev/null", O_RDONLY), p[2];

	/* Descriptors without close-on-exec do not leak either. */
	cr_assert_geq(leak, 0);
	cr_assert_eq(pipe(p), 0);
	run(argv, NULL, (int[]){ p[0] }, 1, 0, out, sizeof out);
	/* 0-2, the handed-over one as 3, and ls's own directory descriptor. */
	cr_assert(!strncmp(out, "0 1 2 3 4 ", 10) && strlen(out) == 10, "open in the child: %s", out);
	close(leak);
	close(p[0]);
	close(p[1]);
}

Test(proc, the_environment_is_the_given_one_with_the_childs_own_listen_pid)
{
	char *const argv[] = { "/bin/sh", "-c", "echo \"$A|$LISTEN_PID|$$|$HOME\"", NULL };
	char *const envp[] = { "A=1", "LISTEN_PID=999999", NULL };
	char out[128], expect[128];
	long pid;

	run(argv, envp, NULL, 0, 1, out, sizeof out);
	cr_assert_eq(sscanf(out, "1|%ld|", &pid), 1, "%s", out);
	snprintf(expect, sizeof expect, "1|%ld|%ld|\n", pid, pid);
	cr_assert_str_eq(out, expect, "LISTEN_PID is not the child's own pid");
}

struct left {
	int n;
	long pids[8];
	char cgroups[8][64];
};

static void
collect(pid_t pid, unsigned long long start, const char *cgroup, void *arg)
{
	struct left *l = arg;

	(void)start;
	l->pids[l->n] = (long)pid;
	snprintf(l->cgroups[l->n], sizeof l->cgroups[0], "%s", cgroup);
	l->n++;
}

Test(journal, replays_what_an_earlier_run_left_open_and_only_that)
{
	char path[] = "/tmp/fxb-unit-journal-XXXXXX";
	struct fxb_error err = { 0 };
	struct left l = { 0 };
	struct journal *j;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	j = journal_open(path, collect, &l, &err);
	cr_assert_not_null(j, "%s", err.text);
	cr_assert_eq(l.n, 0);
	journal_add(j, 100, 1, "/sys/fs/cgroup/x/a");
	journal_add(j, 200, 2, NULL);
	journal_add(j, 300, 3, NULL);
	journal_remove(j, 200);
	cr_assert_eq(journal_live(j), 2);
	journal_free(j); /* as a killed broker would leave it */

	j = journal_open(path, collect, &l, &err);
	cr_assert_not_null(j, "%s", err.text);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(l.pids[0] + l.pids[1], 400, "replayed %ld and %ld", l.pids[0], l.pids[1]);
	cr_assert_str_eq(l.pids[0] == 100 ? l.cgroups[0] : l.cgroups[1], "/sys/fs/cgroup/x/a");
	cr_assert_str_eq(l.pids[0] == 300 ? l.cgroups[0] : l.cgroups[1], "");
	journal_free(j);

	/* Replayed entries are swept: a third run finds nothing. */
	l.n = 0;
	j = journal_open(path, collect, &l, &err);
	cr_assert_eq(l.n, 0);
	journal_free(j);
	unlink(path);
}
