/* pgproc.c: running a program under a keeper process from a worker thread (see pgproc.h).
 *
 * Between fork and exec the keeper and the program call async-signal-safe functions only:
 * the broker is threaded. Neither keeps any of the broker's descriptors (listening and
 * client sockets, lock files): only the status pipe and the output descriptor survive
 * into the keeper, and only 0, 1 and 2 into the program.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgproc.h"

extern char **environ;

/* Closes every descriptor from 3 up except a and b. */
static void
close_all_but(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo < 3)
		lo = hi, hi = -1;
	if (lo < 3) {
		close_range(3, ~0U, 0);
		return;
	}
	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo) {
		if (hi > lo + 1)
			close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
		close_range((unsigned)hi + 1, ~0U, 0);
	} else {
		close_range((unsigned)lo + 1, ~0U, 0);
	}
}

static void
say(const char *a, const char *b)
{
	if (write(2, a, strlen(a)) < 0 || write(2, b, strlen(b)) < 0 || write(2, "\n", 1) < 0)
		return;
}

/* The program, in the keeper's child: never returns. */
static void
exec_program(const struct pgproc_spec *s, int out, pid_t keeper)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (null >= 0)
		dup2(null, 0);
	dup2(out, 1);
	dup2(out, 2);
	close_range(3, ~0U, 0);
	if (s->new_session)
		setsid();
	if (s->cwd && chdir(s->cwd) == -1) {
		say("cannot change to the directory ", s->cwd);
		_exit(127);
	}
	if (s->as_other && (setgroups(0, NULL) == -1 || setgid(s->gid) == -1 ||
	    setuid(s->uid) == -1)) {
		say("cannot drop privileges to run ", s->argv[0]);
		_exit(126);
	}
	/* Changing the uid clears the death signal, so ask for it after. */
	prctl(PR_SET_PDEATHSIG, s->deathsig ? s->deathsig : SIGKILL);
	if (getppid() != keeper)
		_exit(125);
	execve(s->argv[0], s->argv, s->envp ? s->envp : environ);
	say("cannot run ", s->argv[0]);
	_exit(127);
}

int
pgproc_start(const struct pgproc_spec *spec, struct pgproc *p, struct fxb_error *err)
{
	int sp[2], op[2] = { -1, -1 }, out;
	pid_t parent = getpid();
	ssize_t n;

	memset(p, 0, sizeof *p);
	p->status_fd = p->out_fd = -1;
	if (pipe2(sp, O_CLOEXEC) == -1 || (spec->out_fd < 0 && pipe2(op, O_CLOEXEC) == -1)) {
		error_set(err, ERR_INTERNAL, "pipe: %s", strerror(errno));
		return -1;
	}
	out = spec->out_fd >= 0 ? spec->out_fd : op[1];
	p->keeper = fork();
	if (p->keeper == 0) {
		pid_t self = getpid(), pid;
		int ws = -1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		/* An ignored SIGCHLD would reap the program before the keeper could wait. */
		signal(SIGCHLD, SIG_DFL);
		close_all_but(sp[1], out);
		pid = fork();
		if (pid == 0)
			exec_program(spec, out, self);
		if (write(sp[1], &pid, sizeof pid) != sizeof pid || pid == -1)
			_exit(1);
		while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
			;
		if (write(sp[1], &ws, sizeof ws) != sizeof ws)
			_exit(1);
		_exit(0);
	}
	close(sp[1]);
	if (op[1] >= 0)
		close(op[1]);
	if (p->keeper == -1) {
		error_set(err, ERR_INTERNAL, "fork: %s", strerror(errno));
		close(sp[0]);
		if (op[0] >= 0)
			close(op[0]);
		return -1;
	}
	while ((n = read(sp[0], &p->pid, sizeof p->pid)) == -1 && errno == EINTR)
		;
	if (n != sizeof p->pid || p->pid <= 0) {
		error_set(err, ERR_INTERNAL, "cannot start %s", spec->argv[0]);
		close(sp[0]);
		if (op[0] >= 0)
			close(op[0]);
		waitpid(p->keeper, NULL, 0);
		return -1;
	}
	p->status_fd = sp[0];
	p->out_fd = op[0];
	if (p->out_fd >= 0)
		fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

static long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends n bytes to the tail buffer, keeping the last cap - 1. */
static void
keep_tail(char *tail, size_t cap, const char *buf, size_t n)
{
	size_t have, keep;

	if (!tail || cap < 2)
		return;
	have = strlen(tail);
	if (n >= cap - 1) {
		memcpy(tail, buf + n - (cap - 1), cap - 1);
		tail[cap - 1] = '\0';
		return;
	}
	keep = have + n > cap - 1 ? cap - 1 - n : have;
	memmove(tail, tail + have - keep, keep);
	memcpy(tail + keep, buf, n);
	tail[keep + n] = '\0';
}

static void
drain(struct pgproc *p, char *tail, size_t cap)
{
	char buf[4096];
	ssize_t n;

	while (p->out_fd >= 0 && (n = read(p->out_fd, buf, sizeof buf)) > 0)
		keep_tail(tail, cap, buf, (size_t)n);
}

int
pgproc_wait(struct pgproc *p, int timeout_ms, char *tail, size_t tail_cap, int *timed_out)
{
	long long deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	int ws = -1, killed = 0;
	size_t got = 0;

	if (tail && tail_cap)
		tail[0] = '\0';
	if (timed_out)
		*timed_out = 0;
	while (got < sizeof ws) {
		struct pollfd pfd[2] = { { p->status_fd, POLLIN, 0 }, { p->out_fd, POLLIN, 0 } };
		long long left = deadline < 0 || killed ? -1 : deadline - mono_ms();
		ssize_t n;

		if (deadline >= 0 && !killed && left <= 0) {
			kill(p->pid, SIGKILL);
			kill(-p->pid, SIGKILL);
			killed = 1;
			if (timed_out)
				*timed_out = 1;
			continue;
		}
		if (poll(pfd, p->out_fd >= 0 ? 2 : 1, left < 0 ? -1 : (int)(left > 1000 ? 1000 : left)) <= 0)
			continue;
		if (p->out_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			char buf[4096];
			n = read(p->out_fd, buf, sizeof buf);
			if (n > 0)
				keep_tail(tail, tail_cap, buf, (size_t)n);
			else if (n == 0) {
				close(p->out_fd);
				p->out_fd = -1;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP)) {
			n = read(p->status_fd, (char *)&ws + got, sizeof ws - got);
			if (n > 0)
				got += (size_t)n;
			else if (n == 0 || errno != EINTR) {
				ws = -1; /* the keeper died without reporting */
				break;
			}
		}
	}
	drain(p, tail, tail_cap);
	close(p->status_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->status_fd = p->out_fd = -1;
	/* The loop may have reaped the keeper already (ECHILD): its status says nothing. */
	while (waitpid(p->keeper, NULL, 0) == -1 && errno == EINTR)
		;
	return got == sizeof ws ? ws : -1;
}

void
pgproc_describe(int ws, char *buf, size_t n)
{
	if (ws == -1)
		snprintf(buf, n, "ended (status unknown)");
	else if (WIFEXITED(ws))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(ws));
	else if (WIFSIGNALED(ws))
		snprintf(buf, n, "was killed by signal %d", WTERMSIG(ws));
	else
		snprintf(buf, n, "stopped");
}
