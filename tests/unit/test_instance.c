/* test_instance.c: instance ids kept in the state directory, one live broker per id. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/instance.h"

static const char dir[] = "/tmp/fxb-test-instance";

static void
fresh_dir(void)
{
	(void)!system("rm -rf /tmp/fxb-test-instance");
}

static void
claim(char id[17], int *fd, int *reused)
{
	struct fxb_error err = { 0 };

	cr_assert_eq(instance_claim(dir, id, fd, reused, &err), 0, "%s", err.text);
}

Test(instance, keeps_the_id_of_a_broker_that_is_gone)
{
	char a[17], b[17];
	int fa, fb, reused;

	fresh_dir();
	claim(a, &fa, &reused);
	cr_assert_eq(reused, 0);
	close(fa); /* the broker exits or dies */
	claim(b, &fb, &reused);
	cr_assert_eq(reused, 1);
	cr_assert_str_eq(b, a, "the restart is the same instance");
	close(fb);
}

Test(instance, never_shares_an_id_with_a_live_broker)
{
	char a[17], b[17];
	int fa, fb, reused;

	fresh_dir();
	claim(a, &fa, &reused);
	claim(b, &fb, &reused);
	cr_assert_str_neq(a, b);
	close(fa);
	close(fb);
}

Test(instance, takes_the_id_claimed_last_when_several_are_free)
{
	char old[17], last[17], again[17];
	int fo, fl, fa, reused;
	struct timespec past[2] = { { 1000, 0 }, { 1000, 0 } };
	char path[256];

	fresh_dir();
	claim(old, &fo, &reused);
	claim(last, &fl, &reused);
	snprintf(path, sizeof path, "%s/instances/%s.lock", dir, old);
	cr_assert_eq(utimensat(AT_FDCWD, path, past, 0), 0); /* an instance from long ago */
	close(fo);
	close(fl); /* the newer one crashed */
	claim(again, &fa, &reused);
	cr_assert_str_eq(again, last, "the restart took an older instance's id");
	close(fa);
}
