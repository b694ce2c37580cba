/* pgembed.c: the embedded PostgreSQL cluster: initdb, postgres under a supervisor thread, stop.
 *
 * pgembed_start() runs on a pg worker thread: it picks the cluster directory (one per
 * broker instance, so two brokers on one state directory never share a cluster) and takes
 * its lock, finds the binaries, runs initdb the first time, stops a postmaster that a
 * killed broker left behind, then starts a supervisor thread that runs postgres and waits
 * for it, restarting it (with a growing pause) when it dies on its own. Programs run
 * through pgproc.c: a keeper process reports their exit, they drop to the unprivileged
 * user when the broker is root, and postgres gets SIGINT (its fast shutdown) when its
 * keeper dies, which happens when the supervisor thread or the broker dies. The supervisor
 * thread lives until pgembed_stop(), so that signal means "the broker is gone".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg_conf.h"
#include "pgembed.h"
#include "pgproc.h"

#define READY_TIMEOUT_MS 60000
#define STOP_FAST_MS 20000
#define STOP_IMMEDIATE_MS 5000
#define SOCKET_DIR_MAX 90 /* sun_path is 108 bytes with "/.s.PGSQL.NNNNN" */
#define ROOT_CLUSTERS "/var/lib/fixture-broker"

/* Path sizes in tiers, so that each path built from another always fits. */
#define DIR_MAX 1024
#define CLUSTER_MAX 2048
#define FILE_MAX 2200

struct pgembed {
	char state_dir[DIR_MAX];
	char cluster[CLUSTER_MAX]; /* holds data/, run/, postgres.log */
	char data[FILE_MAX];
	char run[FILE_MAX];
	char log[FILE_MAX];
	char bindir[DIR_MAX];
	char conninfo[PATH_MAX + 128];
	int port;
	int lock_fd;
	int as_other; /* running initdb and postgres as uid/gid */
	uid_t uid;
	gid_t gid;
	int ran_initdb;
	double start_ms;

	pthread_t supervisor;
	int supervising;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pid_t pid;        /* the running postmaster, 0 when none */
	int stopping;
	int exited_early; /* the first postmaster exited before accepting connections */
	unsigned restarts;
};

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Quotes v as a libpq conninfo value. */
static void
conninfo_add(char *out, size_t cap, const char *key, const char *v)
{
	size_t n = strlen(out);

	n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s='", n ? " " : "", key);
	for (; *v && n + 3 < cap; v++) {
		if (*v == '\'' || *v == '\\')
			out[n++] = '\\';
		out[n++] = *v;
	}
	if (n + 2 < cap) {
		out[n++] = '\'';
		out[n] = '\0';
	}
}

/* Creates path and its missing parents (parents 0755, path mode). Returns 0 or -1. */
static int
make_dirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (strlen(path) >= sizeof buf)
		return -1;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, mode) == -1 && errno != EEXIST ? -1 : 0;
}

static int
is_exec(const char *dir, const char *name)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, X_OK) == 0;
}

int
pgembed_find_bindir(const char *path, const char *root, int major, char *out, size_t cap,
    struct fxb_error *err)
{
	char buf[4096], best[DIR_MAX] = "", want[DIR_MAX];
	int best_major = -1;
	struct dirent *de;
	DIR *d;

	if (major > 0) {
		snprintf(want, sizeof want, "%s/%d/bin", root, major);
		if (is_exec(want, "initdb") && is_exec(want, "postgres")) {
			snprintf(out, cap, "%s", want);
			return 0;
		}
	}
	if (path && strlen(path) < sizeof buf) {
		char *save = NULL;
		strcpy(buf, path);
		for (char *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
			if (*dir && is_exec(dir, "initdb") && is_exec(dir, "postgres")) {
				snprintf(out, cap, "%s", dir);
				return 0;
			}
		}
	}
	if ((d = opendir(root))) {
		while ((de = readdir(d))) {
			char *end;
			long v = strtol(de->d_name, &end, 10);
			if (end == de->d_name || *end != '\0' || v <= best_major)
				continue;
			snprintf(want, sizeof want, "%s/%s/bin", root, de->d_name);
			if (is_exec(want, "initdb") && is_exec(want, "postgres")) {
				best_major = (int)v;
				snprintf(best, sizeof best, "%s", want);
			}
		}
		closedir(d);
	}
	if (best[0]) {
		snprintf(out, cap, "%s", best);
		return 0;
	}
	error_set(err, ERR_PG_UNAVAILABLE, "the embedded PostgreSQL cannot start: no initdb and "
	    "postgres on PATH or in %s/*/bin (install the PostgreSQL server, e.g. apt-get install "
	    "postgresql, or configure postgres.url)", root);
	return -1;
}

/* Starts argv as the cluster's user through a keeper (see pgproc.h). */
static int
start_program(struct pgembed *pe, char *const argv[], int out_fd, int new_session,
    int deathsig, struct pgproc *p, struct fxb_error *err)
{
	struct pgproc_spec spec = { .argv = argv, .as_other = pe->as_other, .uid = pe->uid,
		.gid = pe->gid, .out_fd = out_fd, .new_session = new_session, .deathsig = deathsig };

	return pgproc_start(&spec, p, err);
}

/* The last line of a file that is not empty, for error messages. */
static void
tail_line(const char *path, char *out, size_t n)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	long size;
	size_t got;

	out[0] = '\0';
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
	got = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[got] = '\0';
	while (got && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		buf[--got] = '\0';
	{
		const char *last = strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf;
		size_t len = strlen(last) < n - 1 ? strlen(last) : n - 1;
		memcpy(out, last, len);
		out[len] = '\0';
	}
}

/* 1 if the last 4 kB of a log mention what. */
static int
log_mentions(const char *path, const char *what)
{
	char buf[4097];
	FILE *f = fopen(path, "r");
	long size;
	size_t got;

	if (!f)
		return 0;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
	got = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[got] = '\0';
	return strstr(buf, what) != NULL;
}

/* Runs argv to completion as the cluster's user with output appended to log. Returns the
 * wait status, -1 when unknown, or -2 when it could not start. */
static int
run(struct pgembed *pe, char *const argv[], const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	struct fxb_error err = { 0 };
	struct pgproc p;
	int rc;

	if (fd == -1)
		return -2;
	if (pe->as_other && fchown(fd, pe->uid, pe->gid) == -1)
		log_warn("chown %s", log);
	rc = start_program(pe, argv, fd, 0, SIGKILL, &p, &err);
	close(fd);
	if (rc == -1) {
		error_clear(&err);
		return -2;
	}
	return pgproc_wait(&p, -1, NULL, 0, NULL);
}

/* 1 if the cluster's user can reach dir (search every component), else 0. */
static int
user_can_reach(struct pgembed *pe, const char *dir)
{
	char *argv[] = { "/bin/sh", "-c", "cd \"$0\"", (char *)dir, NULL };
	int ws = run(pe, argv, "/dev/null");

	return ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* Picks and creates the cluster directory (see pgembed.h). */
static int
cluster_dir(struct pgembed *pe, const char *instance, struct fxb_error *err)
{
	char parent[DIR_MAX + 8], link[DIR_MAX + 32], real[PATH_MAX], target[CLUSTER_MAX];
	ssize_t n;

	snprintf(parent, sizeof parent, "%s/pg", pe->state_dir);
	/* As root, the cluster's user must be able to pass through (not list) this one. */
	if (make_dirs(parent, pe->as_other ? 0711 : 0700) == -1 ||
	    (pe->as_other && chmod(parent, 0711) == -1)) {
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: cannot create %s: %s", parent,
		    strerror(errno));
		return -1;
	}
	snprintf(link, sizeof link, "%s/%s", parent, instance);
	if ((n = readlink(link, target, sizeof target - 1)) > 0) {
		target[n] = '\0';
		snprintf(pe->cluster, sizeof pe->cluster, "%s", target);
	} else if (!pe->as_other || user_can_reach(pe, pe->state_dir)) {
		snprintf(pe->cluster, sizeof pe->cluster, "%s", link);
	} else {
		/* Root's home is closed to the postgres user: keep the cluster where that user
		 * can reach it, one per state directory and instance, and link to it. */
		if (!realpath(pe->state_dir, real))
			snprintf(real, sizeof real, "%s", pe->state_dir);
		snprintf(pe->cluster, sizeof pe->cluster, "%s/pg-%012llx-%s", ROOT_CLUSTERS,
		    (unsigned long long)(pg_fnv(PG_FNV_SEED, real, strlen(real)) >> 16), instance);
		if (make_dirs(ROOT_CLUSTERS, 0755) == -1 || (mkdir(pe->cluster, 0700) == -1 &&
		    errno != EEXIST) || symlink(pe->cluster, link) == -1) {
			error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: cannot create %s: %s",
			    pe->cluster, strerror(errno));
			return -1;
		}
		log_info("user %u cannot reach %s: the embedded cluster lives in %s (%s links to it)",
		    (unsigned)pe->uid, pe->state_dir, pe->cluster, link);
	}
	if (mkdir(pe->cluster, 0700) == -1 && errno != EEXIST) {
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: cannot create %s: %s",
		    pe->cluster, strerror(errno));
		return -1;
	}
	if (pe->as_other && chown(pe->cluster, pe->uid, pe->gid) == -1) {
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: cannot chown %s: %s",
		    pe->cluster, strerror(errno));
		return -1;
	}
	snprintf(pe->data, sizeof pe->data, "%s/data", pe->cluster);
	snprintf(pe->log, sizeof pe->log, "%s/postgres.log", pe->cluster);
	snprintf(pe->run, sizeof pe->run, "%s/run", pe->cluster);
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The major version in data/PG_VERSION, 0 when there is none. */
static int
data_version(const char *data)
{
	char p[PATH_MAX];
	FILE *f;
	int v = 0;

	snprintf(p, sizeof p, "%s/PG_VERSION", data);
	if (!(f = fopen(p, "r")))
		return 0;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

static int
bin_version(const char *bindir)
{
	const char *p = strstr(bindir, "/postgresql/");

	return p ? atoi(p + 12) : 0;
}

/* Runs initdb into pe->data (removing a half-made one first). Returns 0 or -1 with err. */
static int
initdb(struct pgembed *pe, struct fxb_error *err)
{
	char bin[PATH_MAX], log[PATH_MAX], last[256];
	char *argv[] = { bin, "-D", pe->data, "-U", "postgres", "--auth-local=trust",
		"--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--nosync", NULL };
	struct stat st;
	int ws;

	if (stat(pe->data, &st) == 0) {
		/* A data directory without PG_VERSION is what an interrupted initdb leaves. */
		log_warnx("%s is not a complete data directory: removing it", pe->data);
		nftw(pe->data, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	snprintf(bin, sizeof bin, "%s/initdb", pe->bindir);
	snprintf(log, sizeof log, "%s/initdb.log", pe->cluster);
	unlink(log);
	log_info("initialising a PostgreSQL cluster in %s", pe->data);
	ws = run(pe, argv, log);
	if (ws == -1 && data_version(pe->data))
		ws = 0;
	if (ws != 0) {
		tail_line(log, last, sizeof last);
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: initdb failed (%s): %s",
		    log, last);
		return -1;
	}
	pe->ran_initdb = 1;
	return 0;
}

/* Stops a postmaster that a killed broker left running on this data directory: we hold
 * the state directory's lock, so no live broker owns it. */
static void
stop_stale(struct pgembed *pe)
{
	char p[PATH_MAX], comm[64] = "";
	FILE *f;
	int pid = 0;
	static const struct { int sig, ms; } steps[] = { { SIGINT, STOP_FAST_MS },
		{ SIGQUIT, STOP_IMMEDIATE_MS }, { SIGKILL, STOP_IMMEDIATE_MS } };

	snprintf(p, sizeof p, "%s/postmaster.pid", pe->data);
	if (!(f = fopen(p, "r")))
		return;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid > 0) {
		char cp[64];
		snprintf(cp, sizeof cp, "/proc/%d/comm", pid);
		if ((f = fopen(cp, "r"))) {
			if (!fgets(comm, sizeof comm, f))
				comm[0] = '\0';
			fclose(f);
		}
	}
	if (pid <= 0 || kill(pid, 0) == -1 || strncmp(comm, "postgres", 8) != 0) {
		/* Dead, or the pid now belongs to something else: postgres would refuse to start
		 * over a pid file naming a live process, so remove it. */
		if (pid > 0 && kill(pid, 0) == 0)
			unlink(p);
		return;
	}
	log_warnx("a postmaster (pid %d) from an earlier run is still running on %s: stopping it",
	    pid, pe->data);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		kill(pid, steps[i].sig);
		for (int t = 0; t < steps[i].ms && kill(pid, 0) == 0; t += 50)
			sleep_ms(50);
		if (kill(pid, 0) == -1)
			return;
	}
}

/* Starts one postmaster under a keeper. Returns 0 or -1. */
static int
spawn_postgres(struct pgembed *pe, struct pgproc *p)
{
	char bin[PATH_MAX], port[16];
	char *argv[] = { bin, "-D", pe->data, "-k", pe->run, "-p", port,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "unix_socket_permissions=0700",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning", NULL };
	int fd = open(pe->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), rc;
	struct fxb_error err = { 0 };
	struct stat st;

	if (fd == -1)
		return -1;
	/* A long-lived state directory must not grow a log without bound. */
	if (fstat(fd, &st) == 0 && st.st_size > 16 * 1024 * 1024 && ftruncate(fd, 0) == -1)
		log_warn("truncate %s", pe->log);
	if (pe->as_other && fchown(fd, pe->uid, pe->gid) == -1)
		log_warn("chown %s", pe->log);
	snprintf(bin, sizeof bin, "%s/postgres", pe->bindir);
	snprintf(port, sizeof port, "%d", pe->port);
	/* Its own session: a Ctrl-C meant for the broker must not reach postgres. */
	rc = start_program(pe, argv, fd, 1, SIGINT, p, &err);
	if (rc == -1) {
		log_warnx("%s", err.text);
		error_clear(&err);
	}
	close(fd);
	return rc;
}

/* The supervisor thread: runs postgres until pgembed_stop(), restarting it when it dies
 * on its own. */
static void *
supervise(void *arg)
{
	struct pgembed *pe = arg;
	int backoff_ms = 250;

	pthread_mutex_lock(&pe->mu);
	while (!pe->stopping) {
		struct pgproc p;
		char how[64];
		int ws, rc;

		pthread_mutex_unlock(&pe->mu);
		rc = spawn_postgres(pe, &p);
		pthread_mutex_lock(&pe->mu);
		pe->pid = rc == 0 ? p.pid : 0;
		pthread_cond_broadcast(&pe->cond);
		if (rc == 0) {
			pthread_mutex_unlock(&pe->mu);
			ws = pgproc_wait(&p, -1, NULL, 0, NULL);
			pthread_mutex_lock(&pe->mu);
			pe->pid = 0;
			pthread_cond_broadcast(&pe->cond);
			if (pe->stopping)
				break;
			pgproc_describe(ws, how, sizeof how);
		} else {
			snprintf(how, sizeof how, "could not be started");
		}
		if (!pe->restarts && !pe->exited_early) {
			pe->exited_early = 1; /* pgembed_start reports it */
			pthread_cond_broadcast(&pe->cond);
		}
		pe->restarts++;
		log_warnx("postgres %s (see %s); restarting it in %d ms", how, pe->log, backoff_ms);
		{
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += backoff_ms / 1000;
			until.tv_nsec += (long)(backoff_ms % 1000) * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			while (!pe->stopping &&
			    pthread_cond_timedwait(&pe->cond, &pe->mu, &until) != ETIMEDOUT)
				;
		}
		backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
	}
	pthread_mutex_unlock(&pe->mu);
	return NULL;
}

/* Waits until the server answers, the first postmaster dies, or the deadline. */
static int
wait_ready(struct pgembed *pe, int *port_busy, struct fxb_error *err)
{
	double deadline = mono_ms() + READY_TIMEOUT_MS;
	char last[256];

	while (mono_ms() < deadline) {
		int early;
		if (PQping(pe->conninfo) == PQPING_OK)
			return 0;
		pthread_mutex_lock(&pe->mu);
		early = pe->exited_early;
		pthread_mutex_unlock(&pe->mu);
		if (early)
			break;
		sleep_ms(20);
	}
	/* Another program on this host (another broker's cluster) bound the port since the
	 * pool checked it. */
	*port_busy = log_mentions(pe->log, "could not create any TCP/IP sockets");
	tail_line(pe->log, last, sizeof last);
	error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL did not start (%s): %s", pe->log,
	    last);
	return -1;
}

static void
release(struct pgembed *pe)
{
	if (pe->lock_fd >= 0)
		close(pe->lock_fd);
	pthread_mutex_destroy(&pe->mu);
	pthread_cond_destroy(&pe->cond);
	free(pe);
}

struct pgembed *
pgembed_start(const char *state_dir, const char *instance, const char *user, int port,
    int *port_busy, struct fxb_error *err)
{
	struct pgembed *pe = calloc(1, sizeof *pe);
	double t0 = mono_ms();
	char lockpath[FILE_MAX];
	int have, want;

	*port_busy = 0;
	if (!pe) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	pe->lock_fd = -1;
	pe->port = port;
	pthread_mutex_init(&pe->mu, NULL);
	pthread_cond_init(&pe->cond, NULL);
	if (strlen(state_dir) >= sizeof pe->state_dir) {
		error_set(err, ERR_PG_UNAVAILABLE, "state directory: a path of at most %d bytes, please",
		    DIR_MAX - 1);
		goto fail;
	}
	snprintf(pe->state_dir, sizeof pe->state_dir, "%s", state_dir);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(user);
		if (!pw || pw->pw_uid == 0) {
			error_set(err, ERR_PG_UNAVAILABLE, "the broker runs as root and initdb and postgres "
			    "refuse to: there is no unprivileged user \"%s\" to run them as (create it, "
			    "set postgres.embedded.user, or run the broker as an ordinary user)", user);
			goto fail;
		}
		pe->as_other = 1;
		pe->uid = pw->pw_uid;
		pe->gid = pw->pw_gid;
	}
	if (make_dirs(state_dir, 0700) == -1) {
		error_set(err, ERR_PG_UNAVAILABLE, "state directory %s: %s", state_dir, strerror(errno));
		goto fail;
	}
	if (cluster_dir(pe, instance, err) == -1)
		goto fail;
	snprintf(lockpath, sizeof lockpath, "%s/lock", pe->cluster);
	if ((pe->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1 ||
	    flock(pe->lock_fd, LOCK_EX | LOCK_NB) == -1) {
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: %s is in use by another "
		    "broker (%s is locked)", pe->cluster, lockpath);
		goto fail;
	}
	have = data_version(pe->data);
	if (pgembed_find_bindir(getenv("PATH"), "/usr/lib/postgresql", have, pe->bindir,
	    sizeof pe->bindir, err) == -1)
		goto fail;
	want = bin_version(pe->bindir);
	if (have && want && have != want) {
		error_set(err, ERR_PG_UNAVAILABLE, "embedded PostgreSQL: %s was made by PostgreSQL %d "
		    "and the binaries in %s are %d: remove %s to start afresh", pe->data, have,
		    pe->bindir, want, pe->cluster);
		goto fail;
	}
	if (!have && initdb(pe, err) == -1)
		goto fail;
	stop_stale(pe);
	if (strlen(pe->run) > SOCKET_DIR_MAX) {
		/* Unix socket paths are short: fall back to a private directory in /tmp. */
		strcpy(pe->run, "/tmp/fxb-pg-XXXXXX");
		if (!mkdtemp(pe->run)) {
			error_set(err, ERR_PG_UNAVAILABLE, "mkdtemp %s: %s", pe->run, strerror(errno));
			goto fail;
		}
	} else if (mkdir(pe->run, 0700) == -1 && errno != EEXIST) {
		error_set(err, ERR_PG_UNAVAILABLE, "mkdir %s: %s", pe->run, strerror(errno));
		goto fail;
	}
	if (chmod(pe->run, 0700) == -1 || (pe->as_other && chown(pe->run, pe->uid, pe->gid) == -1)) {
		error_set(err, ERR_PG_UNAVAILABLE, "%s: %s", pe->run, strerror(errno));
		goto fail;
	}
	conninfo_add(pe->conninfo, sizeof pe->conninfo, "host", pe->run);
	snprintf(lockpath, sizeof lockpath, "%d", port);
	conninfo_add(pe->conninfo, sizeof pe->conninfo, "port", lockpath);
	conninfo_add(pe->conninfo, sizeof pe->conninfo, "user", "postgres");
	conninfo_add(pe->conninfo, sizeof pe->conninfo, "dbname", "postgres");
	conninfo_add(pe->conninfo, sizeof pe->conninfo, "connect_timeout", "10");
	if (pthread_create(&pe->supervisor, NULL, supervise, pe) != 0) {
		error_set(err, ERR_INTERNAL, "cannot start the postgres supervisor thread");
		goto fail;
	}
	pe->supervising = 1;
	if (wait_ready(pe, port_busy, err) == -1) {
		pgembed_stop(pe);
		return NULL;
	}
	pe->start_ms = mono_ms() - t0;
	log_info("embedded PostgreSQL %s on 127.0.0.1:%d and %s (data %s, %s) in %.0f ms",
	    pe->bindir, port, pe->run, pe->data, pe->ran_initdb ? "new" : "reused", pe->start_ms);
	return pe;
fail:
	release(pe);
	return NULL;
}

void
pgembed_stop(struct pgembed *pe)
{
	static const struct { int sig, ms; } steps[] = { { SIGINT, STOP_FAST_MS },
		{ SIGQUIT, STOP_IMMEDIATE_MS }, { SIGKILL, STOP_IMMEDIATE_MS } };

	if (!pe)
		return;
	if (pe->supervising) {
		pthread_mutex_lock(&pe->mu);
		pe->stopping = 1;
		pthread_cond_broadcast(&pe->cond);
		for (size_t i = 0; i < sizeof steps / sizeof steps[0] && pe->pid > 0; i++) {
			struct timespec until;
			kill(pe->pid, steps[i].sig);
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += steps[i].ms / 1000;
			while (pe->pid > 0 && pthread_cond_timedwait(&pe->cond, &pe->mu, &until) != ETIMEDOUT)
				;
			if (pe->pid > 0)
				log_warnx("postgres (pid %d) did not stop within %d ms of signal %d",
				    (int)pe->pid, steps[i].ms, steps[i].sig);
		}
		pthread_mutex_unlock(&pe->mu);
		pthread_join(pe->supervisor, NULL);
		log_info("embedded PostgreSQL stopped");
	}
	if (strncmp(pe->run, "/tmp/fxb-pg-", 12) == 0)
		rmdir(pe->run);
	release(pe);
}

const char *
pgembed_conninfo(const struct pgembed *pe)
{
	return pe->conninfo;
}

const char *
pgembed_bindir(const struct pgembed *pe)
{
	return pe->bindir;
}

json_t *
pgembed_status_json(struct pgembed *pe)
{
	json_t *j;

	pthread_mutex_lock(&pe->mu);
	j = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:b, s:f}", "cluster_dir", pe->cluster,
	    "data_dir", pe->data, "socket_dir", pe->run, "port", pe->port, "pid", (int)pe->pid,
	    "restarts", (int)pe->restarts, "bindir", pe->bindir, "initialised", pe->ran_initdb,
	    "start_ms", pe->start_ms);
	pthread_mutex_unlock(&pe->mu);
	return j;
}
