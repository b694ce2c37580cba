/* auth.c: the bearer tokens a broker accepts, read once from --token-file at start-up.
 *
 * Tokens are compared in constant time against every entry, so neither the position of
 * the first wrong byte nor which entry matched shows in the timing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/auth.h"

struct auth {
	char **tokens;
	size_t count;
};

void
auth_free(struct auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->count; i++) {
		explicit_bzero(a->tokens[i], strlen(a->tokens[i]));
		free(a->tokens[i]);
	}
	free(a->tokens);
	free(a);
}

struct auth *
auth_load(const char *path, struct fxb_error *err)
{
	struct auth *a = calloc(1, sizeof *a);
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!a || !f) {
		error_set(err, ERR_INTERNAL, "token_file: cannot read %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		char *s = line, **grown;

		while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
			s[--n] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		grown = realloc(a->tokens, (a->count + 1) * sizeof *grown);
		if (!grown || !(grown[a->count] = strdup(s))) {
			if (grown)
				a->tokens = grown;
			error_set(err, ERR_INTERNAL, "token_file: out of memory");
			goto fail;
		}
		a->tokens = grown;
		a->count++;
	}
	if (a->count == 0) {
		error_set(err, ERR_INTERNAL, "token_file: %s holds no token", path);
		goto fail;
	}
	free(line);
	fclose(f);
	return a;
fail:
	free(line);
	if (f)
		fclose(f);
	auth_free(a);
	return NULL;
}

static int
equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < lb; i++)
		diff |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]) | (unsigned char)(la == 0);
	return diff == 0;
}

int
auth_check(const struct auth *a, const char *token)
{
	int ok = 0;

	if (!token)
		return 0;
	for (size_t i = 0; i < a->count; i++)
		ok |= equal_ct(a->tokens[i], token);
	return ok;
}
