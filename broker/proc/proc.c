/* proc.c: spawning, watching and reaping children, and killing whole trees (see proc.h).
 *
 * proc_spawn() forks; the child does only async-signal-safe calls (the broker may have
 * worker threads) and reports a failure before exec through a close-on-exec pipe, which
 * the parent reads until it closes: end of file means exec succeeded. That read lasts as
 * long as the child's few system calls before exec, which is why it is done inline.
 *
 * Trees are killed through their process group, their cgroup when they have one, and
 * otherwise through the marker: a daemonising grandchild that left the group with setsid
 * is reparented to the broker (a subreaper), and is recognised among the broker's
 * children by the marker in its environment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "core/log.h"
#include "proc/cgroup.h"
#include "proc/journal.h"
#include "proc/proc.h"
#include "util/idmap.h"

extern char **environ;

struct watch {
	proc_exit_fn fn;
	void *arg;
};

struct procs {
	struct broker *b;
	struct idmap *watches; /* pid -> struct watch */
	struct cgroups *cgroups;
	struct journal *journal;
	struct proc_tree *trees;
	char marker_prefix[64]; /* PROC_MARKER "=<instance>:" */
	int swept;              /* what an earlier run left was found at start-up */
};

enum stage { STAGE_CGROUP = 1, STAGE_STDIO, STAGE_FDS, STAGE_CWD, STAGE_EXEC };

static const char *const stage_names[] = { "", "cgroup", "stdio", "fds", "cwd", "exec" };

struct report {
	int stage;
	int err;
};

const char *
proc_signal_name(int sig)
{
	static char buf[16];
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, sizeof buf, "SIG%s", abbrev);
	else
		snprintf(buf, sizeof buf, "SIG%d", sig);
	return buf;
}

const char *
proc_stat_fields(pid_t pid, char *buf, size_t len)
{
	char path[64], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if (len < 2 || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields count from the last ')'. */
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return NULL;
	return p + 2;
}

unsigned long long
proc_start_ticks(pid_t pid)
{
	char buf[1024];
	const char *f = proc_stat_fields(pid, buf, sizeof buf);
	unsigned long long start = 0;

	/* state(3) ... starttime is field 22, the 20th after the name. */
	if (!f || sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
	    "%*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

/* Reads /proc/PID/environ (NUL-separated) into a malloc'd buffer. Returns its length, or
 * -1 (gone, or not ours to read). */
static ssize_t
read_environ(pid_t pid, char **out)
{
	char path[64];
	size_t len = 0, cap = 16384;
	char *buf = malloc(cap);
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
	if (!buf || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		free(buf);
		return -1;
	}
	while ((n = read(fd, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			char *grown = cap < (1 << 20) ? realloc(buf, cap * 2) : NULL;
			if (!grown)
				break;
			buf = grown;
			cap *= 2;
		}
	}
	close(fd);
	*out = buf;
	return (ssize_t)len;
}

/* 1 when an entry of pid's environment equals marker (prefix: starts with it). */
static int
has_marker(pid_t pid, const char *marker, int prefix)
{
	size_t mlen = strlen(marker);
	char *env = NULL;
	ssize_t len = read_environ(pid, &env);
	int found = 0;

	for (ssize_t i = 0; i < len && !found;) {
		size_t elen = strnlen(env + i, (size_t)(len - i));
		if (prefix ? elen >= mlen && !memcmp(env + i, marker, mlen)
		    : elen == mlen && !memcmp(env + i, marker, mlen))
			found = 1;
		i += (ssize_t)elen + 1;
	}
	free(env);
	return found;
}

/* Calls fn for each child of this process (every thread's), as listed by procfs. */
static void
each_child(void (*fn)(pid_t pid, void *arg), void *arg)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[96];
		FILE *f;
		long pid;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%.32s/children", de->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		while (fscanf(f, "%ld", &pid) == 1)
			fn((pid_t)pid, arg);
		fclose(f);
	}
	closedir(d);
}

/* Sends sig to every process on the host whose environment holds an entry starting with
 * prefix. Returns how many. */
static int
kill_marked(const char *prefix, int sig)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || (pid_t)pid == self)
			continue;
		if (has_marker((pid_t)pid, prefix, 1) && kill((pid_t)pid, sig) == 0) {
			log_info("killed pid %ld, left behind by an earlier run of this instance", pid);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* Journal replay: kills one tree an earlier run of this instance left running. */
static void
kill_left(pid_t pid, unsigned long long start, const char *cgroup, void *arg)
{
	struct procs *p = arg;

	p->swept = 1;
	if (cgroup[0]) {
		log_info("killing cgroup %s, left behind by an earlier run of this instance", cgroup);
		cgroup_destroy_tree(cgroup, 2000);
	}
	/* Only the very process we started: its pid may have been reused since. */
	if (start && proc_start_ticks(pid) == start) {
		log_info("killing process group %ld, left behind by an earlier run of this instance",
		    (long)pid);
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
}

struct procs *
procs_new(struct broker *b, const char *journal_path, struct fxb_error *err)
{
	struct procs *p = calloc(1, sizeof *p);

	if (!p || !(p->watches = idmap_new())) {
		free(p);
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	p->b = b;
	snprintf(p->marker_prefix, sizeof p->marker_prefix, PROC_MARKER "=%s:", b->instance);
	if (!journal_path)
		return p;
	if (!(p->cgroups = cgroups_new(b->instance)) ||
	    !(p->journal = journal_open(journal_path, kill_left, p, err))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		procs_free(p);
		return NULL;
	}
	/* Daemons that left their group and cgroup-less trees carry the marker. */
	if (p->swept)
		kill_marked(p->marker_prefix, SIGKILL);
	return p;
}

static void
free_watch(void *w, void *arg)
{
	(void)arg;
	free(w);
}

void
procs_free(struct procs *p)
{
	int left = 0;

	if (!p)
		return;
	for (struct proc_tree *t = p->trees; t; t = t->next) {
		log_warnx("killing process tree %ld on exit", (long)t->leader);
		proc_tree_signal(p, t, SIGKILL);
		left = 1;
	}
	if (left) {
		/* Give the cgroups a moment to empty so they can be removed. */
		for (int i = 0; i < 100; i++) {
			int busy = 0;
			for (struct proc_tree *t = p->trees; t; t = t->next)
				busy |= t->cgroup[0] && cgroup_populated(t->cgroup) == 1;
			if (!busy)
				break;
			usleep(10000);
		}
		while (p->trees)
			proc_tree_end(p, p->trees);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
	idmap_each(p->watches, free_watch, NULL);
	idmap_free(p->watches);
	journal_free(p->journal);
	cgroups_free(p->cgroups);
	free(p);
}

struct cgroups *
procs_cgroups(struct procs *p)
{
	return p->cgroups;
}

int
proc_watch(struct procs *p, pid_t pid, proc_exit_fn fn, void *arg)
{
	struct watch *w = malloc(sizeof *w);

	if (!w)
		return -1;
	w->fn = fn;
	w->arg = arg;
	free(idmap_del(p->watches, (uint64_t)pid));
	if (idmap_put(p->watches, (uint64_t)pid, w) == -1) {
		free(w);
		return -1;
	}
	return 0;
}

void
proc_unwatch(struct procs *p, pid_t pid)
{
	free(idmap_del(p->watches, (uint64_t)pid));
}

void
proc_reap(struct procs *p)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct watch *w = idmap_del(p->watches, (uint64_t)pid);

		if (!w) {
			log_debug("reaped pid %ld (an orphan of a process tree)", (long)pid);
			continue;
		}
		w->fn(w->arg, pid, st);
		free(w);
	}
}

/* Finds the program as execvp would, in the parent, so that "not found" is a plain
 * error. Returns 0 with path filled, or -1 with errno. */
static int
resolve(const struct proc_spec *spec, char *path, size_t len)
{
	const char *search = NULL, *dir, *end;
	struct stat st;

	if (strchr(spec->file, '/')) {
		if ((size_t)snprintf(path, len, "%s", spec->file) >= len) {
			errno = ENAMETOOLONG;
			return -1;
		}
		return 0;
	}
	for (char *const *e = spec->envp; e && *e && !search; e++)
		if (!strncmp(*e, "PATH=", 5))
			search = *e + 5;
	if (!search && !(search = getenv("PATH")))
		search = "/usr/local/bin:/usr/bin:/bin";
	for (dir = search; *dir; dir = *end ? end + 1 : end) {
		size_t dlen;

		end = strchrnul(dir, ':');
		dlen = (size_t)(end - dir);
		if ((size_t)snprintf(path, len, "%s%s%.*s/%s", dlen && dir[0] != '/' && spec->cwd
		    ? spec->cwd : "", dlen && dir[0] != '/' && spec->cwd ? "/" : "",
		    (int)(dlen ? dlen : 1), dlen ? dir : ".", spec->file) >= len)
			continue;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
			return 0;
	}
	errno = ENOENT;
	return -1;
}

/* Writes pid in decimal after the '=' of entry (which has room). Async-signal-safe. */
static void
fill_pid(char *entry, pid_t pid)
{
	char digits[16];
	int n = 0;
	char *p = strchr(entry, '=') + 1;

	do {
		digits[n++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid > 0);
	while (n > 0)
		*p++ = digits[--n];
	*p = '\0';
}

/* In the child: reports the stage and errno, and exits. */
static void __attribute__((noreturn))
child_fail(int fd, int stage)
{
	struct report r = { stage, errno };

	if (write(fd, &r, sizeof r) != (ssize_t)sizeof r)
		_exit(126);
	_exit(127);
}

/* The child's side of proc_spawn(): only async-signal-safe calls from here to exec. */
static void __attribute__((noreturn))
child(const struct proc_spec *spec, const char *path, char *const *envp, char *listen_pid,
    pid_t parent, int in, int out, int errw, int report, int cgfd)
{
	int base = 3 + (int)spec->npass, high[PROC_MAX_PASS + 4];
	struct sigaction dfl;
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127); /* the broker died before the line above */
	setsid();
	if (cgfd != -1 && write(cgfd, "0", 1) != 1)
		child_fail(report, STAGE_CGROUP);
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Move everything we keep above the target range, then into place: a source may
	 * sit on another's target. */
	if ((high[0] = fcntl(in, F_DUPFD_CLOEXEC, base + 1)) == -1 ||
	    (high[1] = fcntl(out, F_DUPFD_CLOEXEC, base + 1)) == -1 ||
	    (high[2] = fcntl(errw, F_DUPFD_CLOEXEC, base + 1)) == -1 ||
	    (high[3] = fcntl(report, F_DUPFD_CLOEXEC, base + 1)) == -1)
		child_fail(report, STAGE_FDS);
	for (size_t i = 0; i < spec->npass; i++)
		if ((high[4 + i] = fcntl(spec->pass_fds[i], F_DUPFD_CLOEXEC, base + 1)) == -1)
			child_fail(report, STAGE_FDS);
	if (dup3(high[3], base, O_CLOEXEC) == -1)
		child_fail(report, STAGE_FDS);
	report = base;
	if (dup2(high[0], 0) == -1 || dup2(high[1], 1) == -1 || dup2(high[2], 2) == -1)
		child_fail(report, STAGE_STDIO);
	for (size_t i = 0; i < spec->npass; i++)
		if (dup2(high[4 + i], 3 + (int)i) == -1)
			child_fail(report, STAGE_FDS);
	/* Everything else goes, whatever the broker forgot to mark close-on-exec. */
	if (close_range((unsigned)base + 1, ~0U, 0) == -1) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = base + 1; fd < (max > 0 ? max : 65536); fd++)
			close((int)fd);
	}
	if (spec->cwd && chdir(spec->cwd) == -1)
		child_fail(report, STAGE_CWD);
	if (listen_pid)
		fill_pid(listen_pid, getpid());
	execve(path, spec->argv, envp);
	child_fail(report, STAGE_EXEC);
}

/* Forks, straight into spec's cgroup where the kernel can (clone3 with CLONE_INTO_CGROUP,
 * Linux 5.7): joining it afterwards by writing cgroup.procs is a migration, which waits
 * for an RCU grace period and costs 5 to 15 ms per server. On older kernels the child
 * joins through *cgfd (kept open); otherwise *cgfd is closed. Returns what fork returns. */
static pid_t
spawn_fork(const struct proc_spec *spec, int *cgfd)
{
	struct clone_args args;
	int dirfd;
	long pid;

	if (!spec->cgroup || (dirfd = open(spec->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return fork();
	memset(&args, 0, sizeof args);
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)dirfd;
	pid = syscall(SYS_clone3, &args, sizeof args);
	close(dirfd);
	if (pid == -1 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL))
		return fork();
	if (pid >= 0) {
		if (pid > 0)
			close(*cgfd);
		*cgfd = -1; /* the child is in the cgroup already */
	}
	return (pid_t)pid;
}

/* envp plus a LISTEN_PID entry with room for the pid (any LISTEN_PID in envp dropped).
 * Returns the malloc'd array (entries borrowed but the last), or NULL. */
static char **
env_with_listen_pid(char *const *envp, char **slot)
{
	size_t n = 0, k = 0;
	char **out;

	while (envp[n])
		n++;
	if (!(out = calloc(n + 2, sizeof *out)) || !(*slot = malloc(40))) {
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], "LISTEN_PID=", 11) != 0)
			out[k++] = envp[i];
	strcpy(*slot, "LISTEN_PID=0");
	out[k++] = *slot;
	out[k] = NULL;
	return out;
}

int
proc_spawn(struct procs *p, const struct proc_spec *spec, struct proc_child *c,
    struct fxb_error *err)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, rep[2] = { -1, -1 }, devnull = -1, cgfd = -1;
	char path[PATH_MAX], *listen_slot = NULL, **env_copy = NULL;
	char *const *envp = spec->envp ? spec->envp : environ;
	struct report r = { 0, 0 };
	pid_t pid, parent = getpid();
	ssize_t n = 0, got;
	int rc = -1;

	(void)p;
	c->pid = -1;
	c->out_fd = c->err_fd = -1;
	if (spec->npass > PROC_MAX_PASS) {
		error_set(err, spec->err_code, "cannot hand over more than %d descriptors", PROC_MAX_PASS);
		return -1;
	}
	if (resolve(spec, path, sizeof path) == -1) {
		error_set_data(err, spec->err_code, json_pack("{s:s, s:s, s:s}", "stage", "exec",
		    "errno", strerrorname_np(errno) ? strerrorname_np(errno) : "?", "file", spec->file),
		    "cannot start \"%.100s\": not found in PATH", spec->file);
		return -1;
	}
	if (spec->listen_pid && !(envp = env_copy = env_with_listen_pid(envp, &listen_slot))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1 ||
	    pipe2(rep, O_CLOEXEC) == -1 ||
	    (spec->capture && (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1)) ||
	    (spec->cgroup && (cgfd = cgroup_procs_fd(spec->cgroup)) == -1)) {
		error_set(err, spec->err_code, "cannot start \"%.100s\": %s", spec->file, strerror(errno));
		goto done;
	}
	if ((pid = spawn_fork(spec, &cgfd)) == -1) {
		error_set(err, spec->err_code, "cannot start \"%.100s\": fork: %s", spec->file,
		    strerror(errno));
		goto done;
	}
	if (pid == 0)
		child(spec, path, envp, listen_slot, parent, devnull,
		    spec->capture ? outp[1] : devnull, spec->capture ? errp[1] : devnull, rep[1], cgfd);

	close(rep[1]);
	rep[1] = -1;
	/* End of file: the exec happened. A report: it failed, and the child has exited. */
	while (n < (ssize_t)sizeof r && ((got = read(rep[0], (char *)&r + n, sizeof r - (size_t)n)) > 0 ||
	    (got == -1 && errno == EINTR)))
		n += got > 0 ? got : 0;
	if (n == (ssize_t)sizeof r) {
		const char *stage = r.stage > 0 && r.stage <= STAGE_EXEC ? stage_names[r.stage] : "?";
		waitpid(pid, NULL, 0);
		error_set_data(err, spec->err_code, json_pack("{s:s, s:s, s:s}", "stage", stage,
		    "errno", strerrorname_np(r.err) ? strerrorname_np(r.err) : "?", "file", path),
		    "cannot start \"%.100s\": %s%s%s: %s", spec->file,
		    r.stage == STAGE_CWD ? "cwd " : "", r.stage == STAGE_CWD ? spec->cwd : stage,
		    r.stage == STAGE_EXEC ? " failed" : "", strerror(r.err));
		goto done;
	}
	c->pid = pid;
	if (spec->capture) {
		fcntl(outp[0], F_SETFL, O_NONBLOCK);
		fcntl(errp[0], F_SETFL, O_NONBLOCK);
		c->out_fd = outp[0];
		c->err_fd = errp[0];
		outp[0] = errp[0] = -1;
	}
	rc = 0;
done:
	{
		int fds[] = { outp[0], outp[1], errp[0], errp[1], rep[0], rep[1], devnull, cgfd };
		for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
			if (fds[i] != -1)
				close(fds[i]);
	}
	free(env_copy);
	free(listen_slot);
	return rc;
}

void
proc_tree_begin(struct procs *p, struct proc_tree *t)
{
	t->prev = NULL;
	t->next = p->trees;
	if (p->trees)
		p->trees->prev = t;
	p->trees = t;
	journal_add(p->journal, t->leader, proc_start_ticks(t->leader), t->cgroup);
}

struct orphans {
	struct procs *p;
	const struct proc_tree *t;
	int sig;   /* 0: only count */
	int found;
};

static void
orphan_visit(pid_t pid, void *arg)
{
	struct orphans *o = arg;

	/* The broker's own children it watches are leaders, not orphans. */
	if (idmap_get(o->p->watches, (uint64_t)pid) || !has_marker(pid, o->t->marker, 0))
		return;
	o->found++;
	if (o->sig) {
		kill(pid, o->sig);
		if (getpgid(pid) == pid)
			kill(-pid, o->sig);
	}
}

void
proc_tree_signal(struct procs *p, struct proc_tree *t, int sig)
{
	struct orphans o = { p, t, sig, 0 };

	if (kill(-t->leader, sig) == -1 && errno != ESRCH)
		log_warn("kill -%ld %s", (long)t->leader, proc_signal_name(sig));
	if (t->cgroup[0]) {
		if (sig == SIGKILL)
			cgroup_kill(t->cgroup);
		else
			cgroup_signal(t->cgroup, sig);
		return;
	}
	each_child(orphan_visit, &o);
}

int
proc_tree_alive(struct procs *p, const struct proc_tree *t)
{
	struct orphans o = { p, t, 0, 0 };

	if (t->leader_alive)
		return 1;
	if (t->cgroup[0])
		return cgroup_populated(t->cgroup) == 1;
	if (kill(-t->leader, 0) == 0)
		return 1;
	each_child(orphan_visit, &o);
	return o.found > 0;
}

void
proc_tree_end(struct procs *p, struct proc_tree *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else if (p->trees == t)
		p->trees = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	if (t->cgroup[0] && cgroup_remove(t->cgroup) == -1)
		log_warn("rmdir %s", t->cgroup);
	journal_remove(p->journal, t->leader);
}
