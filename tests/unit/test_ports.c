/* test_ports.c: the port pool: ranges, LRU order, quarantine, all-or-nothing, bind checks. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ports/ports.h"

static struct ports *
pool(int first, int last, int quarantine_ms)
{
	struct fxb_error err = { 0 };
	struct ports *p = ports_new(first, last, 32768, 60999, quarantine_ms, &err);

	cr_assert_not_null(p, "ports_new: %s", err.text);
	return p;
}

Test(ports, refuses_a_range_that_overlaps_the_ephemeral_range)
{
	struct fxb_error err = { 0 };

	cr_assert_null(ports_new(30000, 40000, 32768, 60999, 0, &err));
	cr_assert_eq(err.code, ERR_INVALID_PARAMS);
	cr_assert(strstr(err.text, "ports.range") != NULL, "the error names the key: %s", err.text);
	cr_assert(strstr(err.text, "32768-60999") != NULL, "the error names the kernel range: %s", err.text);
	error_clear(&err);
	cr_assert_null(ports_new(60999, 61000, 32768, 60999, 0, &err), "touching the top edge overlaps");
	error_clear(&err);
	cr_assert_null(ports_new(200, 100, 32768, 60999, 0, &err), "an inverted range is refused");
	error_clear(&err);
}

Test(ports, reads_the_kernel_ephemeral_range)
{
	struct fxb_error err = { 0 };
	int lo, hi;
	FILE *f = fopen("/tmp/fxb-test-eph", "w");

	fputs("1000\t2000\n", f);
	fclose(f);
	cr_assert_eq(ports_ephemeral_range("/tmp/fxb-test-eph", &lo, &hi, &err), 0);
	cr_assert_eq(lo, 1000);
	cr_assert_eq(hi, 2000);
	cr_assert_eq(ports_ephemeral_range("/nonexistent/x", &lo, &hi, &err), -1);
	error_clear(&err);
}

Test(ports, hands_out_distinct_ports_inside_the_range)
{
	struct ports *p = pool(16100, 16109, 0);
	uint16_t got[10];

	cr_assert_eq(ports_take(p, 1, 10, got, 0), 0);
	for (int i = 0; i < 10; i++) {
		cr_assert(got[i] >= 16100 && got[i] <= 16109);
		for (int j = 0; j < i; j++)
			cr_assert_neq(got[i], got[j], "port %u handed out twice", got[i]);
	}
	ports_free(p);
}

Test(ports, takes_all_or_nothing)
{
	struct ports *p = pool(16110, 16113, 0);
	struct ports_counts pc;
	uint16_t got[5];

	cr_assert_eq(ports_take(p, 1, 3, got, 0), 0);
	cr_assert_eq(ports_take(p, 2, 2, got, 0), -1, "only one port is left");
	ports_counts(p, 0, &pc);
	cr_assert_eq(pc.free, 1, "a failed take leaves the pool as it was");
	cr_assert_eq(pc.leased, 3);
	ports_free(p);
}

Test(ports, gives_the_least_recently_used_port_next)
{
	struct ports *p = pool(16120, 16123, 0);
	uint16_t a, b, rest[2], next;

	cr_assert_eq(ports_take(p, 1, 1, &a, 0), 0);
	cr_assert_eq(ports_take(p, 2, 1, &b, 0), 0);
	cr_assert_eq(ports_release(p, 1, &a, 1, 0), 1);
	/* a was just used: the two never-used ports come first, then b... a comes last. */
	cr_assert_eq(ports_take(p, 3, 2, rest, 0), 0);
	cr_assert_neq(rest[0], a);
	cr_assert_neq(rest[1], a);
	cr_assert_eq(ports_take(p, 4, 1, &next, 0), 0);
	cr_assert_eq(next, a);
	ports_free(p);
}

Test(ports, keeps_a_released_port_in_quarantine)
{
	struct ports *p = pool(16130, 16130, 500);
	struct ports_counts pc;
	uint16_t a;

	cr_assert_eq(ports_take(p, 1, 1, &a, 1000), 0);
	ports_release(p, 1, &a, 1, 1000);
	ports_counts(p, 1000, &pc);
	cr_assert_eq(pc.quarantined, 1);
	cr_assert_eq(ports_next_free_ms(p), 1500);
	cr_assert_eq(ports_take(p, 2, 1, &a, 1499), -1, "still quarantined");
	cr_assert_eq(ports_take(p, 2, 1, &a, 1500), 0, "free once the quarantine has passed");
	ports_free(p);
}

Test(ports, ignores_a_release_by_someone_who_does_not_own_the_port)
{
	struct ports *p = pool(16140, 16141, 0);
	struct ports_counts pc;
	uint16_t a;

	cr_assert_eq(ports_take(p, 7, 1, &a, 0), 0);
	cr_assert_eq(ports_release(p, 8, &a, 1, 0), 0);
	ports_counts(p, 0, &pc);
	cr_assert_eq(pc.leased, 1);
	cr_assert_eq(ports_release(p, 7, &a, 1, 0), 1);
	cr_assert_eq(ports_release(p, 7, &a, 1, 0), 0, "a second release changes nothing");
	ports_free(p);
}

static int
bind_port(int family, int type, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	int fd = socket(family, type, 0), one = 1;

	cr_assert_geq(fd, 0);
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin6.sin6_addr = in6addr_loopback;
	cr_assert_eq(family == AF_INET ? bind(fd, (struct sockaddr *)&sin, sizeof sin)
	    : bind(fd, (struct sockaddr *)&sin6, sizeof sin6), 0, "test setup: bind %u", port);
	if (type == SOCK_STREAM)
		listen(fd, 1);
	return fd;
}

Test(ports, refuses_a_port_that_is_already_bound)
{
	struct ports *p = pool(16150, 16153, 0);
	int fds[3] = {
		bind_port(AF_INET, SOCK_STREAM, 16150),
		bind_port(AF_INET6, SOCK_STREAM, 16151),
		bind_port(AF_INET, SOCK_DGRAM, 16152),
	};
	struct ports_counts pc;
	uint16_t got;

	cr_assert_not(ports_is_bindable(16150), "TCP on 127.0.0.1");
	cr_assert_not(ports_is_bindable(16151), "TCP on ::1, v6 only");
	cr_assert_not(ports_is_bindable(16152), "UDP on 127.0.0.1");
	cr_assert(ports_is_bindable(16153));
	cr_assert_eq(ports_take(p, 1, 1, &got, 0), 0);
	cr_assert_eq(got, 16153, "the only port nothing holds");
	cr_assert_eq(ports_take(p, 2, 1, &got, 0), -1, "the bound ones are never granted");
	ports_counts(p, 0, &pc);
	cr_assert_geq(pc.skipped_busy, 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	cr_assert_eq(ports_take(p, 2, 3, (uint16_t[3]){ 0 }, 0), 0, "granted once they are free");
	ports_free(p);
}

Test(ports, never_grants_a_port_another_pool_on_the_host_holds)
{
	static const char lock[] = "/tmp/fxb-test-ports.lock";
	struct fxb_error err = { 0 };
	struct ports *a = pool(16160, 16163, 0), *b = pool(16160, 16163, 0);
	struct ports_counts pc;
	uint16_t mine[3], theirs[2];

	unlink(lock);
	cr_assert_eq(ports_share_host(a, lock, &err), 0, "%s", err.text);
	cr_assert_eq(ports_share_host(b, lock, &err), 0, "%s", err.text);
	cr_assert_eq(ports_take(a, 1, 3, mine, 0), 0);
	cr_assert_eq(ports_take(b, 1, 2, theirs, 0), -1, "one port is left for the second broker");
	cr_assert_eq(ports_take(b, 1, 1, theirs, 0), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_neq(theirs[0], mine[i], "port %u granted by both", theirs[0]);
	ports_counts(b, 0, &pc);
	cr_assert_geq(pc.skipped_other, 3);
	ports_release(a, 1, mine, 3, 0); /* quarantine 0: free, so unlocked, at once */
	cr_assert_eq(ports_take(b, 2, 3, mine, 0), 0, "free again once the first let go");
	ports_free(a);
	ports_free(b);
}

Test(ports, frees_the_host_locks_of_a_pool_that_goes_away)
{
	static const char lock[] = "/tmp/fxb-test-ports2.lock";
	struct fxb_error err = { 0 };
	struct ports *a = pool(16170, 16171, 60000), *b = pool(16170, 16171, 0);
	uint16_t got[2];

	unlink(lock);
	cr_assert_eq(ports_share_host(a, lock, &err), 0);
	cr_assert_eq(ports_share_host(b, lock, &err), 0);
	cr_assert_eq(ports_take(a, 1, 2, got, 0), 0);
	ports_release(a, 1, got, 2, 0); /* in quarantine for a minute: still locked */
	cr_assert_eq(ports_take(b, 1, 1, got, 0), -1);
	ports_free(a); /* a broker that exits or dies */
	cr_assert_eq(ports_take(b, 1, 2, got, 0), 0);
	ports_free(b);
}

/* A fresh directory path under /tmp for the lock file tests (not made). */
static void lock_dir(char *dir, size_t len, const char *name)
{
	char cmd[PATH_MAX + 16];

	snprintf(dir, len, "/tmp/fxb-test-lockdir-%s-%d", name, (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(ports, the_lock_file_is_the_users_alone_in_a_directory_no_one_else_writes)
{
	struct fxb_error err = { 0 };
	struct ports *a = pool(16180, 16181, 0);
	char dir[PATH_MAX], lock[PATH_MAX + 16];
	struct stat st;
	pid_t pid;
	int status;

	lock_dir(dir, sizeof(dir), "mode");
	snprintf(lock, sizeof(lock), "%s/ports.lock", dir);
	cr_assert_eq(ports_share_host(a, lock, &err), 0, "%s", err.text);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "the directory is made mode %o", st.st_mode & 07777);
	cr_assert_eq(stat(lock, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "the file is made mode %o", st.st_mode & 07777);
	ports_free(a);
	/* One left mode 0666 by an older broker is made 0600. */
	cr_assert_eq(chmod(lock, 0666), 0);
	a = pool(16180, 16181, 0);
	cr_assert_eq(ports_share_host(a, lock, &err), 0, "%s", err.text);
	cr_assert_eq(stat(lock, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "an old file stays mode %o", st.st_mode & 07777);
	ports_free(a);
	if (geteuid() == 0) {
		/* Another user cannot open it, so cannot lock a port byte. */
		cr_assert_eq(chmod(dir, 0755), 0);
		if ((pid = fork()) == 0) {
			int fd;
			if (setgid(65534) == -1 || setuid(65534) == -1)
				_exit(2);
			fd = open(lock, O_RDONLY);
			_exit(fd == -1 && errno == EACCES ? 0 : 1);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "another user opened the lock file (status %d)", status);
		/* A file another user owns is refused. */
		cr_assert_eq(chown(lock, 65534, 65534), 0);
		a = pool(16180, 16181, 0);
		cr_assert_eq(ports_share_host(a, lock, &err), -1, "a lock file of another user was used");
		cr_assert(strstr(err.text, "not a file of this user"), "%s", err.text);
		error_clear(&err);
		ports_free(a);
	}
	/* A directory others may write to (not sticky) is refused. */
	unlink(lock);
	cr_assert_eq(chmod(dir, 0777), 0);
	a = pool(16180, 16181, 0);
	cr_assert_eq(ports_share_host(a, lock, &err), -1, "a lock file in a directory all can write");
	cr_assert(strstr(err.text, "others cannot write"), "%s", err.text);
	error_clear(&err);
	ports_free(a);
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		cr_assert_eq(system(cmd), 0);
	}
}
