/* instance.c: claiming a stable instance id in the state directory (see instance.h).
 *
 * Runs once, in broker_new(), before the loop: plain blocking file calls are fine here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fsutil.h"
#include "core/instance.h"

static int
is_id(const char *name)
{
	size_t i;

	for (i = 0; i < 16; i++)
		if (!name[i] || !strchr("0123456789abcdef", name[i]))
			return 0;
	return !strcmp(name + 16, ".lock");
}

/* Opens and locks <dir>/<id>.lock without waiting. Returns the fd, or -1. */
static int
lock_id(const char *dir, const char *id, int create)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof path, "%s/%s.lock", dir, id);
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
	if (fd == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
instance_claim(const char *state_dir, char id[17], int *lock_fd, int *reused,
    struct fxb_error *err)
{
	char dir[PATH_MAX], fresh[17];
	struct dirent *de;
	long long newest = 0;
	DIR *d;
	int fd = -1;

	if ((size_t)snprintf(dir, sizeof dir, "%s/instances", state_dir) >= sizeof dir ||
	    mkdir_p(dir) == -1 || !(d = opendir(dir))) {
		error_set(err, ERR_INTERNAL, "state_dir: %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Of the ids no live broker holds, take the one claimed last: after a crash that is
	 * the crashed broker's, whose leftovers the restart must sweep. */
	while ((de = readdir(d))) {
		char path[PATH_MAX + 32], cid[17];
		struct stat st;
		long long t;
		int cand;

		if (!is_id(de->d_name))
			continue;
		snprintf(cid, sizeof cid, "%.16s", de->d_name);
		snprintf(path, sizeof path, "%s/%s.lock", dir, cid);
		if (stat(path, &st) == -1)
			continue;
		t = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		if ((fd != -1 && t < newest) || (cand = lock_id(dir, cid, 0)) == -1)
			continue;
		if (fd != -1)
			close(fd); /* an older one: leave it for another broker */
		fd = cand;
		newest = t;
		memcpy(fresh, cid, sizeof fresh);
	}
	closedir(d);
	if (fd != -1) {
		memcpy(id, fresh, 17);
		*reused = 1;
		futimens(fd, NULL); /* claimed now: the newest */
	} else {
		for (int tries = 0; fd == -1 && tries < 8; tries++) {
			if (random_hex(fresh, 8) == -1)
				break;
			fd = lock_id(dir, fresh, 1);
		}
		if (fd == -1) {
			error_set(err, ERR_INTERNAL, "state_dir: cannot create an instance file in %s: %s",
			    dir, strerror(errno));
			return -1;
		}
		memcpy(id, fresh, 17);
		*reused = 0;
	}
	*lock_fd = fd;
	return 0;
}
