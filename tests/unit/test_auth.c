/* test_auth.c: bearer tokens from a file. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "net/auth.h"

static const char *
write_file(const char *text)
{
	static const char path[] = "/tmp/fxb-test-tokens";
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

Test(auth, accepts_each_token_of_the_file_and_nothing_else)
{
	struct fxb_error err = { 0 };
	struct auth *a = auth_load(write_file("# ci tokens\n\nalpha-1\n  beta-2  \r\n"), &err);

	cr_assert_not_null(a, "%s", err.text);
	cr_assert(auth_check(a, "alpha-1"));
	cr_assert(auth_check(a, "beta-2"));
	cr_assert_not(auth_check(a, "alpha-"), "a prefix is not the token");
	cr_assert_not(auth_check(a, "alpha-12"), "nor is a longer string");
	cr_assert_not(auth_check(a, ""));
	cr_assert_not(auth_check(a, "# ci tokens"), "comments are not tokens");
	cr_assert_not(auth_check(a, NULL));
	auth_free(a);
}

Test(auth, refuses_a_file_without_tokens)
{
	struct fxb_error err = { 0 };

	cr_assert_null(auth_load(write_file("# nothing here\n\n"), &err));
	cr_assert(strstr(err.text, "token_file") != NULL, "%s", err.text);
	error_clear(&err);
	cr_assert_null(auth_load("/nonexistent/tokens", &err));
	error_clear(&err);
}
