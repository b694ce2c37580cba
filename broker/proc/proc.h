/* proc.h: the broker's child processes: spawning, exit callbacks, reaping, whole trees.
 *
 * Every module that starts a process goes through here (servers, readiness probes, later
 * a `run` subcommand), because SIGCHLD reaches the loop through the signalfd and
 * proc_reap() collects every child with waitpid(-1): a module that forked on its own and
 * waited for its child would race with it. Such a module registers its pid with
 * proc_watch() instead. The broker is a child subreaper, so orphans of a server tree
 * (daemonising grandchildren) come back to it; they are reaped silently here.
 *
 * A tree is a leader in its own session and process group, in its own cgroup where the
 * host allows, and carrying an environment marker (PROC_MARKER=<instance>:<tag>) that its
 * descendants inherit. Trees are journaled in the state directory, so the next run of the
 * same instance kills what a crashed run left behind.
 */
#ifndef FXB_PROC_H
#define FXB_PROC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/errors.h"

#define PROC_MARKER "FIXTURE_BROKER_PROCESS"
#define PROC_MAX_PASS 16

struct broker;
struct procs;
struct cgroups;

struct proc_spec {
	const char *file;         /* a path, or a name looked up in PATH (envp's, else ours) */
	char *const *argv;        /* argv[0] included, NULL-terminated */
	char *const *envp;        /* the whole environment, NULL-terminated; NULL: the broker's */
	const char *cwd;          /* NULL: the broker's */
	const int *pass_fds;      /* handed over as fds 3, 4, ... (at most PROC_MAX_PASS) */
	size_t npass;
	int listen_pid;           /* add LISTEN_PID=<the child's pid> (socket activation) */
	const char *cgroup;       /* a cgroup directory to join before exec, or NULL */
	int capture;              /* stdout and stderr into pipes; otherwise /dev/null */
	int err_code;             /* the code failures are reported with */
};

struct proc_child {
	pid_t pid;
	int out_fd, err_fd; /* read ends (non-blocking, close-on-exec, the caller's), or -1 */
};

/* Called from proc_reap() with waitpid's status. */
typedef void (*proc_exit_fn)(void *arg, pid_t pid, int wstatus);

struct proc_tree {
	pid_t leader;          /* also the tree's process group and session id */
	int leader_alive;      /* the owner clears it when the leader's exit is reaped */
	char cgroup[PATH_MAX]; /* "" when the tree has none */
	char marker[192];      /* PROC_MARKER "=<instance>:<tag>", in the tree's environment */
	struct proc_tree *next, *prev;
};

/* The registry; kills what an earlier run of b's instance left (journal_path names its
 * journal, NULL for none: unit tests). Returns NULL with err set. */
struct procs *procs_new(struct broker *b, const char *journal_path, struct fxb_error *err);
/* Kills every tree still running (SIGKILL, the broker is exiting) and frees the registry.
 * procs_free(NULL) does nothing. */
void procs_free(struct procs *p);
struct cgroups *procs_cgroups(struct procs *p);

/* Starts spec's program: its own session, dies with the broker (PDEATHSIG), signal mask
 * and dispositions reset, only fds 0-2 and pass_fds open. Failing to exec (missing
 * binary, permission, cwd) is reported here, at once. Returns 0 with child filled (the
 * caller owns its fds and must watch or reap the pid), or -1 with err set. */
int proc_spawn(struct procs *p, const struct proc_spec *spec, struct proc_child *child,
    struct fxb_error *err);
/* Calls fn(arg, pid, status) once pid has exited and is reaped. Returns 0 or -1 (ENOMEM). */
int proc_watch(struct procs *p, pid_t pid, proc_exit_fn fn, void *arg);
/* Forgets pid's callback; the exit is then reaped silently. */
void proc_unwatch(struct procs *p, pid_t pid);
/* Reaps every child that has exited (SIGCHLD arrived), calling their callbacks. */
void proc_reap(struct procs *p);

/* Registers t (leader, cgroup and marker set; t must stay put until proc_tree_end) and
 * journals it. */
void proc_tree_begin(struct procs *p, struct proc_tree *t);
/* Sends sig to the whole tree: its process group, its cgroup, and its marked orphans. */
void proc_tree_signal(struct procs *p, struct proc_tree *t, int sig);
/* 1 while any process of the tree is left (the leader, its group, its cgroup, a marked
 * orphan), else 0. */
int proc_tree_alive(struct procs *p, const struct proc_tree *t);
/* The tree is gone: unregisters it, removes its cgroup and journal entry. */
void proc_tree_end(struct procs *p, struct proc_tree *t);

/* The start time of pid (clock ticks since boot, /proc/PID/stat), or 0. */
unsigned long long proc_start_ticks(pid_t pid);
/* Reads /proc/PID/stat into buf and returns where its fields after the command name begin
 * (the state letter first), or NULL when pid is gone. */
const char *proc_stat_fields(pid_t pid, char *buf, size_t len);
/* The short name of signal sig ("SIGTERM"), or "SIG<n>". */
const char *proc_signal_name(int sig);

#endif
