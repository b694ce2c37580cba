/* test_hardening.c: the hardening list of the shared-service issue, against the real
 * broker binary: the port lock file, and the names and environments of fixtures.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

/* 1 if pid has path open. */
static int has_open(pid_t pid, const char *path)
{
	char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		ssize_t n;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		if ((n = readlink(link, target, sizeof(target) - 1)) > 0) {
			target[n] = '\0';
			found = !strcmp(target, path);
		}
	}
	closedir(d);
	return found;
}

/* Reads the broker's log into buf. */
static void read_log(const struct test_broker *tb, char *buf, size_t len)
{
	FILE *f = fopen(tb->log, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

Test(hardening, the_port_lock_file_is_mode_0600_in_a_0700_directory_and_a_foreign_one_is_not_used)
{
	char dir[128], lock[160], cmd[256], log[65536];
	struct test_broker tb;
	struct stat st;

	snprintf(dir, sizeof(dir), "/tmp/fxb-itest-lockdir-%d", (int)getpid());
	snprintf(lock, sizeof(lock), "%s/ports.lock", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	BROKER_START(&tb, "--ports", "26620-26623", "--port-lock-file", lock);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "directory mode %o", st.st_mode & 07777);
	cr_assert_eq(stat(lock, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "lock file mode %o", st.st_mode & 07777);
	cr_assert(has_open(tb.pid, lock), "the broker does not hold %s", lock);
	BROKER_STOP(&tb);
	if (geteuid() == 0) {
		/* Planted by another user: refused, with a warning, never used. */
		cr_assert_eq(chmod(lock, 0666), 0);
		cr_assert_eq(chown(lock, 65534, 65534), 0);
		BROKER_START(&tb, "--ports", "26620-26623", "--port-lock-file", lock);
		cr_assert_not(has_open(tb.pid, lock), "the broker uses a lock file another user owns");
		read_log(&tb, log, sizeof(log));
		cr_assert(strstr(log, "is not a file of this user"), "no warning in %s", tb.log);
		BROKER_STOP(&tb);
	}
	cr_assert_eq(system(cmd), 0);
}
