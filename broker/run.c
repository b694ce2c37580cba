/* run.c: the `run` subcommand: one command, one private broker, the command's status.
 *
 * The command is the broker's child but not a supervised server: it keeps the terminal,
 * its stdio and the broker's process group (so Ctrl-C reaches it directly), and it gets
 * SIGTERM if the broker dies (PR_SET_PDEATHSIG). The broker drains when it exits; the
 * broker's own shutdown signals are passed on to it instead, so a command cleaning up
 * after Ctrl-C still has its broker until it is done.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "core/log.h"
#include "net/loop.h"
#include "proc/proc.h"
#include "run.h"

int
run_split(int argc, char **argv, int *nflags, char ***command)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			if (i + 1 >= argc)
				return -1;
			*nflags = i;
			*command = argv + i + 1;
			return 0;
		}
	}
	return -1;
}

struct run {
	struct broker *b;
	pid_t pid;   /* the command, while it runs; 0 after */
	int wstatus; /* its wait status once it has exited */
};

static void
command_exited(void *arg, pid_t pid, int wstatus)
{
	struct run *r = arg;

	(void)pid;
	r->pid = 0;
	r->wstatus = wstatus;
	if (WIFSIGNALED(wstatus))
		log_info("the command was killed by %s", proc_signal_name(WTERMSIG(wstatus)));
	else
		log_debug("the command exited with status %d", WEXITSTATUS(wstatus));
	loop_shutdown(r->b, "the command exited");
}

/* The loop's signal hook while the command runs. */
static int
run_signal(void *arg, const struct signalfd_siginfo *si)
{
	struct run *r = arg;

	if (r->pid <= 0)
		return 0;
	/* A terminal's Ctrl-C reached the command already (same process group); a signal
	 * sent to the broker alone is passed on. */
	if (si->ssi_signo == SIGTERM || si->ssi_code == SI_USER)
		kill(r->pid, (int)si->ssi_signo);
	return 1;
}

struct run *
run_start(struct broker *b, char **command, struct fxb_error *err)
{
	struct run *r;
	char url[320];
	sigset_t none;
	pid_t parent = getpid(), pid;

	snprintf(url, sizeof url, "%s://%s%s%s:%d", b->cfg.tls_cert[0] ? "wss" : "ws",
	    strchr(b->cfg.listen_host, ':') ? "[" : "",
	    b->cfg.listen_host, strchr(b->cfg.listen_host, ':') ? "]" : "",
	    loop_listen_port(b->loop));
	if (!(r = calloc(1, sizeof *r))) {
		error_set(err, ERR_INTERNAL, "run: out of memory");
		return NULL;
	}
	r->b = b;
	fflush(NULL);
	if ((pid = fork()) == -1) {
		error_set(err, ERR_INTERNAL, "run: fork: %s", strerror(errno));
		free(r);
		return NULL;
	}
	if (pid == 0) {
		/* The broker blocks the signals it reads from its signalfd; the command must
		 * get them as usual. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		close_range(3, ~0U, 0);
		setenv("FIXTURE_BROKER_URL", url, 1);
		execvp(command[0], command);
		fprintf(stderr, "fixture-broker run: %s: %s\n", command[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	r->pid = pid;
	if (proc_watch(b->procs, pid, command_exited, r) == -1) {
		kill(pid, SIGKILL);
		free(r);
		error_set(err, ERR_INTERNAL, "run: out of memory");
		return NULL;
	}
	loop_on_signal(b->loop, run_signal, r);
	log_info("running %s with FIXTURE_BROKER_URL=%s", command[0], url);
	return r;
}

int
run_exit_status(const struct run *r)
{
	if (WIFSIGNALED(r->wstatus))
		return 128 + WTERMSIG(r->wstatus);
	return WEXITSTATUS(r->wstatus);
}

void
run_free(struct run *r)
{
	free(r);
}
