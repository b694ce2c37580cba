/* tenant.c: the token file, the tenants it names, and their quotas.
 *
 * Parsing builds a fresh token list and a list of tenant limits; only when the whole file
 * is good are they swapped in, so a bad reload changes nothing. Tenant objects are never
 * freed before the table: sessions and leases point at them, and a reload that drops a
 * tenant leaves its usage to be given back as its sessions end.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenant/tenant.h"

struct token {
	char *secret;
	struct tenant *tenant;
	uint64_t id;
	int admin;
};

struct tenants {
	struct tenant *head; /* every tenant ever named, the default one first */
	struct token *tokens;
	size_t ntokens;
	uint64_t next_id;
};

static const char *const quota_names[QUOTA_COUNT] = {
	"ports", "servers", "databases", "pg_connections", "builds", "waiting", "sessions",
};

const char *
quota_name(enum quota q)
{
	return q < QUOTA_COUNT ? quota_names[q] : "?";
}

int
secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);

	for (size_t i = 0; i < lb; i++)
		diff |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]) | (unsigned char)(la == 0);
	return diff == 0;
}

static struct tenant *
tenant_new(const char *name)
{
	struct tenant *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	snprintf(t->name, sizeof t->name, "%s", name);
	for (int q = 0; q < QUOTA_COUNT; q++)
		t->limit[q] = -1;
	return t;
}

static struct tenant *
tenant_find(const struct tenants *ts, const char *name)
{
	for (struct tenant *t = ts->head; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static void
tokens_free(struct token *tok, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		explicit_bzero(tok[i].secret, strlen(tok[i].secret));
		free(tok[i].secret);
	}
	free(tok);
}

void
tenants_free(struct tenants *ts)
{
	struct tenant *t, *next;

	if (!ts)
		return;
	tokens_free(ts->tokens, ts->ntokens);
	for (t = ts->head; t; t = next) {
		next = t->next;
		free(t);
	}
	free(ts);
}

/* A tenant's limits as the file being read gives them. */
struct spec {
	char name[64];
	int64_t limit[QUOTA_COUNT];
};

struct parsed {
	struct token *tokens; /* tenant points at a spec's index + 1 until committed */
	size_t ntokens;
	struct spec *specs;
	size_t nspecs;
};

static void
parsed_clear(struct parsed *p)
{
	tokens_free(p->tokens, p->ntokens);
	free(p->specs);
	memset(p, 0, sizeof *p);
}

static int
valid_tenant_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static size_t
spec_index(struct parsed *p, const char *name, struct fxb_error *err)
{
	struct spec *grown;

	for (size_t i = 0; i < p->nspecs; i++)
		if (!strcmp(p->specs[i].name, name))
			return i;
	if (!(grown = realloc(p->specs, (p->nspecs + 1) * sizeof *grown))) {
		error_set(err, ERR_INTERNAL, "token_file: out of memory");
		return (size_t)-1;
	}
	p->specs = grown;
	memset(&grown[p->nspecs], 0, sizeof *grown);
	snprintf(grown[p->nspecs].name, sizeof grown[p->nspecs].name, "%s", name);
	for (int q = 0; q < QUOTA_COUNT; q++)
		grown[p->nspecs].limit[q] = -1;
	return p->nspecs++;
}

/* One key=value word of line lineno for spec sp and token tok. */
static int
parse_setting(struct parsed *p, struct spec *sp, struct token *tok, char *word,
    const char *path, unsigned lineno, struct fxb_error *err)
{
	char *eq = strchr(word, '='), *end;
	long long v;

	*eq = '\0';
	if (!strcmp(word, "admin")) {
		if (strcmp(eq + 1, "true") && strcmp(eq + 1, "false")) {
			error_set(err, ERR_INVALID_PARAMS, "token_file: %s:%u: admin: expected true or false",
			    path, lineno);
			return -1;
		}
		tok->admin = !strcmp(eq + 1, "true");
		return 0;
	}
	for (int q = 0; q < QUOTA_COUNT; q++) {
		if (strcmp(word, quota_names[q]))
			continue;
		errno = 0;
		v = strtoll(eq + 1, &end, 10);
		if (errno || end == eq + 1 || *end || v < 0 || v > 1000000000) {
			error_set(err, ERR_INVALID_PARAMS,
			    "token_file: %s:%u: %s: expected a count from 0 to 1000000000", path, lineno,
			    word);
			return -1;
		}
		if (sp->limit[q] != -1 && sp->limit[q] != v) {
			error_set(err, ERR_INVALID_PARAMS,
			    "token_file: %s:%u: tenant %s: %s=%lld, but an earlier line says %" PRId64,
			    path, lineno, sp->name, word, v, sp->limit[q]);
			return -1;
		}
		sp->limit[q] = v;
		return 0;
	}
	(void)p;
	error_set(err, ERR_INVALID_PARAMS,
	    "token_file: %s:%u: unknown key \"%.32s\" (admin, ports, servers, databases, pg_connections, builds, waiting, sessions)",
	    path, lineno, word);
	return -1;
}

static int
parse_line(struct parsed *p, char *line, const char *path, unsigned lineno,
    struct fxb_error *err)
{
	char *save = NULL, *word, *secret = strtok_r(line, " \t", &save);
	const char *tenant = "default";
	struct token tok = { 0 }, *grown;
	size_t si;
	char *words[64];
	size_t nwords = 0;

	while ((word = strtok_r(NULL, " \t", &save))) {
		if (nwords == 64) {
			error_set(err, ERR_INVALID_PARAMS, "token_file: %s:%u: too many words", path, lineno);
			return -1;
		}
		words[nwords++] = word;
	}
	if (nwords && !strchr(words[0], '='))
		tenant = words[0];
	if (!valid_tenant_name(tenant)) {
		error_set(err, ERR_INVALID_PARAMS,
		    "token_file: %s:%u: \"%.64s\" is not a tenant name (1 to 63 of A-Z a-z 0-9 _ . -)",
		    path, lineno, tenant);
		return -1;
	}
	if ((si = spec_index(p, tenant, err)) == (size_t)-1)
		return -1;
	for (size_t i = tenant == words[0] && nwords ? 1 : 0; i < nwords; i++) {
		if (!strchr(words[i], '=')) {
			error_set(err, ERR_INVALID_PARAMS,
			    "token_file: %s:%u: \"%.64s\": expected key=value after the tenant", path,
			    lineno, words[i]);
			return -1;
		}
		if (parse_setting(p, &p->specs[si], &tok, words[i], path, lineno, err) == -1)
			return -1;
	}
	if (!(grown = realloc(p->tokens, (p->ntokens + 1) * sizeof *grown)) ||
	    !(tok.secret = strdup(secret))) {
		if (grown)
			p->tokens = grown;
		error_set(err, ERR_INTERNAL, "token_file: out of memory");
		return -1;
	}
	tok.tenant = (struct tenant *)(uintptr_t)(si + 1);
	p->tokens = grown;
	p->tokens[p->ntokens++] = tok;
	return 0;
}

static int
parse_file(const char *path, struct parsed *p, struct fxb_error *err)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int rc = -1;

	memset(p, 0, sizeof *p);
	if (!f) {
		error_set(err, ERR_INTERNAL, "token_file: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		char *s = line;

		lineno++;
		while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
		    s[n - 1] == '\t'))
			s[--n] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (parse_line(p, s, path, lineno, err) == -1)
			goto out;
	}
	if (p->ntokens == 0) {
		error_set(err, ERR_INTERNAL, "token_file: %s holds no token", path);
		goto out;
	}
	rc = 0;
out:
	if (line)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	if (rc == -1)
		parsed_clear(p);
	return rc;
}

/* Swaps p's tokens and limits into ts; tenants are matched by name. */
static int
commit(struct tenants *ts, struct parsed *p, struct fxb_error *err)
{
	struct tenant *resolved[p->nspecs + 1];

	for (size_t i = 0; i < p->nspecs; i++) {
		struct tenant *t = tenant_find(ts, p->specs[i].name);

		if (!t) {
			struct tenant **tail = &ts->head;

			if (!(t = tenant_new(p->specs[i].name))) {
				error_set(err, ERR_INTERNAL, "token_file: out of memory");
				return -1;
			}
			while (*tail)
				tail = &(*tail)->next;
			*tail = t;
		}
		resolved[i] = t;
	}
	for (struct tenant *t = ts->head; t; t = t->next)
		t->listed = 0;
	for (size_t i = 0; i < p->nspecs; i++) {
		memcpy(resolved[i]->limit, p->specs[i].limit, sizeof resolved[i]->limit);
		resolved[i]->listed = 1;
	}
	for (size_t i = 0; i < p->ntokens; i++) {
		struct token *tok = &p->tokens[i];

		tok->tenant = resolved[(uintptr_t)tok->tenant - 1];
		tok->id = 0;
		for (size_t j = 0; j < ts->ntokens && !tok->id; j++)
			if (ts->tokens[j].tenant == tok->tenant && ts->tokens[j].admin == tok->admin &&
			    secret_equal(ts->tokens[j].secret, tok->secret))
				tok->id = ts->tokens[j].id;
		if (!tok->id)
			tok->id = ++ts->next_id;
	}
	tokens_free(ts->tokens, ts->ntokens);
	ts->tokens = p->tokens;
	ts->ntokens = p->ntokens;
	p->tokens = NULL;
	p->ntokens = 0;
	parsed_clear(p);
	return 0;
}

struct tenants *
tenants_load(const char *path, struct fxb_error *err)
{
	struct tenants *ts = calloc(1, sizeof *ts);
	struct parsed p;

	if (!ts || !(ts->head = tenant_new("default"))) {
		free(ts);
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	ts->head->listed = 1;
	if (!path)
		return ts;
	ts->head->listed = 0;
	if (parse_file(path, &p, err) == -1 || commit(ts, &p, err) == -1) {
		parsed_clear(&p);
		tenants_free(ts);
		return NULL;
	}
	return ts;
}

int
tenants_reload(struct tenants *ts, const char *path, struct fxb_error *err)
{
	struct parsed p;

	if (parse_file(path, &p, err) == -1)
		return -1;
	if (commit(ts, &p, err) == -1) {
		parsed_clear(&p);
		return -1;
	}
	return 0;
}

int
tenants_check(const struct tenants *ts, const char *token, struct token_ref *out)
{
	size_t hit = (size_t)-1;

	if (!token)
		return 0;
	/* Every entry is compared, so which one matched does not show in the timing. */
	for (size_t i = 0; i < ts->ntokens; i++)
		if (secret_equal(ts->tokens[i].secret, token))
			hit = i;
	if (hit == (size_t)-1)
		return 0;
	if (out) {
		out->tenant = ts->tokens[hit].tenant;
		out->id = ts->tokens[hit].id;
		out->admin = ts->tokens[hit].admin;
	}
	return 1;
}

int
tenants_token_live(const struct tenants *ts, uint64_t id, const struct tenant *tenant)
{
	for (size_t i = 0; i < ts->ntokens; i++)
		if (ts->tokens[i].id == id)
			return ts->tokens[i].tenant == tenant;
	return 0;
}

struct tenant *
tenants_default(const struct tenants *ts)
{
	return ts->head;
}

struct tenant *
tenants_first(const struct tenants *ts)
{
	return ts->head;
}

int
tenant_charge(struct tenant *t, const int64_t want[QUOTA_COUNT], struct fxb_error *err)
{
	for (int q = 0; q < QUOTA_COUNT; q++) {
		if (want[q] <= 0 || t->limit[q] < 0 || t->used[q] + want[q] <= t->limit[q])
			continue;
		error_set_data(err, ERR_QUOTA_EXCEEDED,
		    json_pack("{s:s, s:s, s:I, s:I, s:I}", "tenant", t->name, "limit", quota_names[q],
		    "max", (json_int_t)t->limit[q], "used", (json_int_t)t->used[q],
		    "requested", (json_int_t)want[q]),
		    "quota exceeded: tenant %s may hold %" PRId64 " %s; it holds %" PRId64
		    " and asked for %" PRId64 " more", t->name, t->limit[q], quota_names[q],
		    t->used[q], want[q]);
		return -1;
	}
	for (int q = 0; q < QUOTA_COUNT; q++)
		t->used[q] += want[q];
	return 0;
}

int
tenant_charge1(struct tenant *t, enum quota q, int64_t n, struct fxb_error *err)
{
	int64_t want[QUOTA_COUNT] = { 0 };

	want[q] = n;
	return tenant_charge(t, want, err);
}

void
tenant_refund(struct tenant *t, const int64_t amount[QUOTA_COUNT])
{
	for (int q = 0; q < QUOTA_COUNT; q++)
		t->used[q] -= amount[q];
}

void
tenant_refund1(struct tenant *t, enum quota q, int64_t n)
{
	t->used[q] -= n;
}

json_t *
tenant_json(const struct tenant *t)
{
	json_t *limits = json_object(), *used = json_object();

	for (int q = 0; q < QUOTA_COUNT; q++) {
		json_object_set_new(limits, quota_names[q],
		    t->limit[q] < 0 ? json_null() : json_integer(t->limit[q]));
		json_object_set_new(used, quota_names[q], json_integer(t->used[q]));
	}
	return json_pack("{s:s, s:b, s:o, s:o}", "name", t->name, "listed", t->listed, "limits",
	    limits, "used", used);
}
