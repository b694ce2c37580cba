/* cgroup.c: per-tree cgroups v2 with cgroup.kill, when the host allows (see cgroup.h).
 *
 * The broker's own cgroup comes from /proc/self/cgroup ("0::<path>") and the v2 mount from
 * /proc/self/mountinfo; on a hybrid host (v1 controllers plus a "unified" v2 mount) that
 * mount still gives us cgroup.kill. A tree's cgroup is made empty before it is removed;
 * the instance's directory goes when the broker stops, or on the next run of the instance,
 * which first kills whatever a crashed run left in it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "proc/cgroup.h"

struct cgroups {
	int available;
	char dir[PATH_MAX]; /* <mount><own cgroup>/fixture-broker-<instance> */
	char why[256];
};

/* The mount point of the cgroup2 filesystem, from mountinfo. Returns 0 or -1. */
static int
v2_mount(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int found = -1;

	if (!f)
		return -1;
	while (found == -1 && fgets(line, sizeof line, f)) {
		char *dash = strstr(line, " - "), mnt[PATH_MAX], fstype[64];

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s", fstype) != 1)
			continue;
		if (!strcmp(fstype, "cgroup2") && strlen(mnt) < len) {
			strcpy(out, mnt);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/* The broker's own v2 cgroup path ("/..."). Returns 0 or -1. */
static int
own_cgroup(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX + 8];
	int found = -1;

	if (!f)
		return -1;
	while (found == -1 && fgets(line, sizeof line, f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line + 3) < len) {
			strcpy(out, line + 3);
			found = 0;
		}
	}
	fclose(f);
	return found;
}

static int
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

struct cgroups *
cgroups_new(const char *instance)
{
	struct cgroups *cg = calloc(1, sizeof *cg);
	char mnt[PATH_MAX], own[PATH_MAX], path[PATH_MAX + 32];

	if (!cg)
		return NULL;
	if (v2_mount(mnt, sizeof mnt) == -1) {
		snprintf(cg->why, sizeof cg->why, "no cgroup2 filesystem is mounted");
		goto unavailable;
	}
	if (own_cgroup(own, sizeof own) == -1) {
		snprintf(cg->why, sizeof cg->why, "/proc/self/cgroup has no cgroup v2 line");
		goto unavailable;
	}
	if ((size_t)snprintf(cg->dir, sizeof cg->dir, "%s%s%sfixture-broker-%s", mnt,
	    !strcmp(own, "/") ? "" : own, "/", instance) >= sizeof cg->dir) {
		snprintf(cg->why, sizeof cg->why, "the cgroup path is too long");
		goto unavailable;
	}
	/* We hold the instance's lock: a directory already there is an earlier run's, and
	 * whatever still runs in it was left behind by a crash. */
	if (access(cg->dir, F_OK) == 0) {
		log_info("killing what an earlier run of this instance left in %s", cg->dir);
		cgroup_destroy_tree(cg->dir, 2000);
	}
	if (mkdir(cg->dir, 0755) == -1 && errno != EEXIST) {
		snprintf(cg->why, sizeof cg->why, "cannot create %.160s: %s", cg->dir, strerror(errno));
		goto unavailable;
	}
	snprintf(path, sizeof path, "%s/cgroup.kill", cg->dir);
	if (access(path, W_OK) == -1) {
		snprintf(cg->why, sizeof cg->why, "no writable cgroup.kill (Linux 5.14 or later needed)");
		rmdir(cg->dir);
		goto unavailable;
	}
	snprintf(path, sizeof path, "%s/cgroup.procs", cg->dir);
	if (access(path, W_OK) == -1) {
		snprintf(cg->why, sizeof cg->why, "cannot move processes into %.160s", cg->dir);
		rmdir(cg->dir);
		goto unavailable;
	}
	cg->available = 1;
	log_info("servers get a cgroup each under %s", cg->dir);
	return cg;
unavailable:
	cg->dir[0] = '\0';
	log_info("cgroup v2 not available (%s): server trees are contained by process group, "
	    "subreaper and environment marker", cg->why);
	return cg;
}

void
cgroups_free(struct cgroups *cg)
{
	if (!cg)
		return;
	if (cg->available && rmdir(cg->dir) == -1 && errno != ENOENT)
		log_warn("rmdir %s", cg->dir);
	free(cg);
}

int
cgroups_available(const struct cgroups *cg)
{
	return cg && cg->available;
}

int
cgroup_create(struct cgroups *cg, const char *name, char *path, size_t pathlen)
{
	if (!cgroups_available(cg)) {
		errno = ENOTSUP;
		return -1;
	}
	if ((size_t)snprintf(path, pathlen, "%s/%s", cg->dir, name) >= pathlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
cgroup_procs_fd(const char *path)
{
	char file[PATH_MAX + 16];

	snprintf(file, sizeof file, "%s/cgroup.procs", path);
	return open(file, O_WRONLY | O_CLOEXEC);
}

int
cgroup_kill(const char *path)
{
	char file[PATH_MAX + 16];

	snprintf(file, sizeof file, "%s/cgroup.kill", path);
	return write_file(file, "1");
}

int
cgroup_signal(const char *path, int sig)
{
	char file[PATH_MAX + 16];
	FILE *f;
	long pid;
	int sent = 0;

	snprintf(file, sizeof file, "%s/cgroup.procs", path);
	if (!(f = fopen(file, "re")))
		return 0;
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid > 0 && kill((pid_t)pid, sig) == 0)
			sent++;
	fclose(f);
	return sent;
}

int
cgroup_populated(const char *path)
{
	char file[PATH_MAX + 16], line[64];
	FILE *f;
	int populated = 0;

	snprintf(file, sizeof file, "%s/cgroup.events", path);
	if (!(f = fopen(file, "re")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "populated ", 10))
			populated = atoi(line + 10) != 0;
	fclose(f);
	return populated;
}

int
cgroup_remove(const char *path)
{
	return rmdir(path) == -1 && errno != ENOENT ? -1 : 0;
}

/* Removes the cgroups below path, deepest first, then path. */
static int
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char sub[PATH_MAX];

	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) < sizeof sub)
			remove_tree(sub);
	}
	closedir(d);
	return cgroup_remove(path);
}

int
cgroup_destroy_tree(const char *path, int wait_ms)
{
	struct timespec ts = { 0, 10 * 1000000 };
	int waited = 0;

	if (cgroup_populated(path) == -1)
		return remove_tree(path);
	cgroup_kill(path);
	while (cgroup_populated(path) == 1 && waited < wait_ms) {
		nanosleep(&ts, NULL);
		waited += 10;
	}
	return remove_tree(path);
}
