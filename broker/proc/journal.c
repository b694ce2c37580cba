/* journal.c: the instance's journal of started process trees (see journal.h).
 *
 * Lines are "+ PID START CGROUP" and "- PID" (CGROUP "-" for none). Appends are single
 * write(2) calls on an O_APPEND file: a broker killed between two of them leaves whole
 * lines behind, and a torn last line is ignored on replay. The file is emptied whenever no
 * tree is running, and rewritten from memory when it has grown far past what is live, so
 * it stays small. No fsync: a machine crash kills the trees along with the broker.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "proc/journal.h"

struct entry {
	pid_t pid;
	unsigned long long start;
	char *cgroup;
};

struct journal {
	int fd;
	char path[PATH_MAX];
	struct entry *live;
	size_t nlive, cap;
	size_t lines; /* in the file */
};

static void
replay(FILE *f, journal_left_fn left, void *arg)
{
	struct entry *open = NULL;
	size_t n = 0, cap = 0;
	char line[PATH_MAX + 64], cg[PATH_MAX];
	unsigned long long start;
	long pid;

	while (fgets(line, sizeof line, f)) {
		if (!strchr(line, '\n'))
			break; /* torn last line */
		if (sscanf(line, "+ %ld %llu %4095s", &pid, &start, cg) == 3 && pid > 0) {
			if (n == cap) {
				struct entry *grown = realloc(open, (cap ? cap * 2 : 16) * sizeof *grown);
				if (!grown)
					break;
				open = grown;
				cap = cap ? cap * 2 : 16;
			}
			open[n].pid = (pid_t)pid;
			open[n].start = start;
			open[n].cgroup = strdup(strcmp(cg, "-") ? cg : "");
			if (open[n].cgroup)
				n++;
		} else if (sscanf(line, "- %ld", &pid) == 1) {
			for (size_t i = 0; i < n; i++) {
				if (open[i].pid != (pid_t)pid)
					continue;
				free(open[i].cgroup);
				open[i] = open[--n];
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		left(open[i].pid, open[i].start, open[i].cgroup, arg);
		free(open[i].cgroup);
	}
	free(open);
}

struct journal *
journal_open(const char *path, journal_left_fn left, void *arg, struct fxb_error *err)
{
	struct journal *j = calloc(1, sizeof *j);
	FILE *f;
	int fd;

	if (!j) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	snprintf(j->path, sizeof j->path, "%s", path);
	if ((fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) == -1) {
		error_set(err, ERR_INTERNAL, "journal %s: %s", path, strerror(errno));
		free(j);
		return NULL;
	}
	if ((f = fdopen(dup(fd), "r"))) {
		replay(f, left, arg);
		fclose(f);
	}
	if (ftruncate(fd, 0) == -1)
		log_warn("truncate %s", path);
	j->fd = fd;
	return j;
}

void
journal_free(struct journal *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nlive; i++)
		free(j->live[i].cgroup);
	free(j->live);
	close(j->fd);
	free(j);
}

size_t
journal_live(const struct journal *j)
{
	return j ? j->nlive : 0;
}

static int
append(struct journal *j, const char *line)
{
	size_t n = strlen(line);

	if (write(j->fd, line, n) != (ssize_t)n) {
		log_warn("journal %s", j->path);
		return -1;
	}
	j->lines++;
	return 0;
}

/* Rewrites the file with the live entries only. */
static void
compact(struct journal *j)
{
	char line[PATH_MAX + 64];

	if (ftruncate(j->fd, 0) == -1) {
		log_warn("truncate %s", j->path);
		return;
	}
	j->lines = 0;
	for (size_t i = 0; i < j->nlive; i++) {
		snprintf(line, sizeof line, "+ %ld %llu %s\n", (long)j->live[i].pid, j->live[i].start,
		    j->live[i].cgroup[0] ? j->live[i].cgroup : "-");
		append(j, line);
	}
}

int
journal_add(struct journal *j, pid_t pid, unsigned long long start, const char *cgroup)
{
	char line[PATH_MAX + 64];
	struct entry *grown;

	if (!j)
		return -1;
	if (j->nlive == j->cap) {
		if (!(grown = realloc(j->live, (j->cap ? j->cap * 2 : 16) * sizeof *grown)))
			return -1;
		j->live = grown;
		j->cap = j->cap ? j->cap * 2 : 16;
	}
	if (!(j->live[j->nlive].cgroup = strdup(cgroup ? cgroup : "")))
		return -1;
	j->live[j->nlive].pid = pid;
	j->live[j->nlive].start = start;
	j->nlive++;
	snprintf(line, sizeof line, "+ %ld %llu %s\n", (long)pid, start,
	    cgroup && cgroup[0] ? cgroup : "-");
	return append(j, line);
}

void
journal_remove(struct journal *j, pid_t pid)
{
	char line[64];

	if (!j)
		return;
	for (size_t i = 0; i < j->nlive; i++) {
		if (j->live[i].pid != pid)
			continue;
		free(j->live[i].cgroup);
		j->live[i] = j->live[--j->nlive];
		if (j->nlive == 0) {
			if (ftruncate(j->fd, 0) == -1)
				log_warn("truncate %s", j->path);
			j->lines = 0;
		} else if (j->lines > 256 && j->lines > 4 * j->nlive) {
			compact(j);
		} else {
			snprintf(line, sizeof line, "- %ld\n", (long)pid);
			append(j, line);
		}
		return;
	}
}
