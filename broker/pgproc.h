/* pgproc.h: programs the PostgreSQL modules run from worker threads (initdb, postgres,
 * pg_dump, a template's migrate command).
 *
 * The loop reaps every child of the broker with waitpid(-1) (proc.c), so a worker thread
 * cannot wait for a child of its own. Each program therefore runs under a small keeper
 * process that waits for it and writes its pid and then its wait status into a pipe; the
 * worker reads the pipe, and whoever reaps the keeper loses nothing. The keeper dies with
 * the thread that started it (PR_SET_PDEATHSIG, SIGKILL), and the program gets deathsig
 * when the keeper dies, so a broker killed with SIGKILL takes its programs with it.
 */
#ifndef FXB_PGPROC_H
#define FXB_PGPROC_H

#include <stddef.h>
#include <sys/types.h>

#include "errors.h"

struct pgproc_spec {
	char *const *argv;  /* argv[0] is a path */
	char *const *envp;  /* NULL: the broker's environment */
	const char *cwd;    /* NULL: the broker's */
	int as_other;       /* drop to uid and gid first (the broker runs as root) */
	uid_t uid;
	gid_t gid;
	int out_fd;         /* stdout and stderr; -1: a pipe that pgproc_wait() reads */
	int new_session;    /* its own session and process group */
	int deathsig;       /* what it gets when its keeper dies */
};

struct pgproc {
	pid_t keeper, pid;
	int status_fd, out_fd;
};

/* Starts spec's program. Returns 0 with p filled, or -1 with err set. */
int pgproc_start(const struct pgproc_spec *spec, struct pgproc *p, struct fxb_error *err);
/* Waits up to timeout_ms (-1: no limit) for the program to exit, keeping the last
 * tail_cap - 1 bytes of its captured output in tail (NUL-terminated; may be NULL). On
 * timeout the program (its group, with new_session) gets SIGKILL and *timed_out is set.
 * Returns the wait status, or -1 when it is unknown. Frees p's descriptors. */
int pgproc_wait(struct pgproc *p, int timeout_ms, char *tail, size_t tail_cap,
    int *timed_out);
/* Describes a wait status from pgproc_wait() ("exited with status 1"). */
void pgproc_describe(int wstatus, char *buf, size_t n);

#endif
