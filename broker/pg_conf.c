/* pg_conf.c: parsing the "postgres" configuration section, object names and identifier checks.
 *
 * Called once from pg_new() at start-up (parsing) and from the pg modules on the loop and on
 * worker threads (names, checks): nothing here keeps state, so any thread may call it.
 * Every unknown key is an error, so a typo never silently falls back to a default.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_conf.h"

/* Bumped whenever what a template holds or how it is marked changes. */
#define TEMPLATE_FORMAT "1"

static int
known(json_t *obj, const char *where, const char *const *keys, struct fxb_error *err)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		size_t i;
		for (i = 0; keys[i] && strcmp(keys[i], k) != 0; i++)
			;
		if (!keys[i]) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%.64s: unknown setting", where, k);
			return -1;
		}
	}
	return 0;
}

static int
get_int(json_t *obj, const char *where, const char *key, long lo, long hi, int *out,
    struct fxb_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected a whole number from %ld to %ld",
		    where, key, lo, hi);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

static int
get_object(json_t *obj, const char *where, const char *key, json_t **out,
    struct fxb_error *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_object(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected an object", where, key);
		return -1;
	}
	*out = v;
	return 0;
}

/* Copies an array of strings (at least min of them) into a NULL-terminated argv. */
static int
get_strings(json_t *obj, const char *where, const char *key, size_t min, char ***out,
    size_t *n, struct fxb_error *err)
{
	json_t *v = json_object_get(obj, key), *s;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) < min) {
		error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected an array of strings%s", where, key,
		    min ? " (not empty)" : "");
		return -1;
	}
	json_array_foreach(v, i, s) {
		if (!json_is_string(s) || !json_string_length(s)) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected an array of strings", where, key);
			return -1;
		}
	}
	if (!(*out = calloc(json_array_size(v) + 1, sizeof **out)))
		goto oom;
	json_array_foreach(v, i, s) {
		if (!((*out)[i] = strdup(json_string_value(s))))
			goto oom;
		(*n)++;
	}
	return 0;
oom:
	error_set(err, ERR_INTERNAL, "out of memory");
	return -1;
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void
tpl_clear(struct pg_tpl_conf *t)
{
	free(t->name);
	strv_free(t->migrate, t->nmigrate);
	strv_free(t->inputs, t->ninputs);
	free(t->cwd);
	strv_free(t->env, t->nenv);
	memset(t, 0, sizeof *t);
}

/* Parses postgres.templates.<name> into t. Returns 0, or -1 with err naming the key
 * (t then holds nothing). */
static int
parse_template(const char *name, json_t *v, struct pg_tpl_conf *t, struct fxb_error *err)
{
	static const char *const keys[] = { "migrate", "inputs", "cwd", "env", "timeout_ms",
		"min_ready", "max", NULL };
	char where[128];
	json_t *env, *e;
	const char *k;

	memset(t, 0, sizeof *t);
	t->min_ready = t->max = -1;
	t->timeout_ms = 600000;
	snprintf(where, sizeof where, "postgres.templates.%.64s", name);
	if (!pg_tpl_name_valid(name)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: a template name is 1 to 64 of A-Z a-z 0-9 _ -, "
		    "starting with a letter", where);
		return -1;
	}
	if (!json_is_object(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an object", where);
		return -1;
	}
	if (!(t->name = strdup(name))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (known(v, where, keys, err) == -1 ||
	    get_strings(v, where, "migrate", 1, &t->migrate, &t->nmigrate, err) == -1 ||
	    get_strings(v, where, "inputs", 0, &t->inputs, &t->ninputs, err) == -1 ||
	    get_int(v, where, "timeout_ms", 1000, 86400000, &t->timeout_ms, err) == -1 ||
	    get_int(v, where, "min_ready", 0, 1000, &t->min_ready, err) == -1 ||
	    get_int(v, where, "max", 1, 10000, &t->max, err) == -1 ||
	    get_object(v, where, "env", &env, err) == -1)
		goto fail;
	if (!t->migrate) {
		error_set(err, ERR_INVALID_PARAMS, "%s.migrate: missing (an array of strings: the "
		    "command that migrates and seeds {url})", where);
		goto fail;
	}
	if (json_object_get(v, "cwd")) {
		if (!json_is_string(json_object_get(v, "cwd")) ||
		    !json_string_length(json_object_get(v, "cwd"))) {
			error_set(err, ERR_INVALID_PARAMS, "%s.cwd: expected a path", where);
			goto fail;
		}
		if (!(t->cwd = strdup(json_string_value(json_object_get(v, "cwd")))))
			goto oom;
	}
	if (env) {
		size_t i = 0;
		if (!(t->env = calloc(json_object_size(env) + 1, sizeof *t->env)))
			goto oom;
		json_object_foreach(env, k, e) {
			if (!json_is_string(e) || !*k || strchr(k, '=')) {
				error_set(err, ERR_INVALID_PARAMS, "%s.env.%.64s: expected a string", where, k);
				goto fail;
			}
			if (asprintf(&t->env[i], "%s=%s", k, json_string_value(e)) < 0) {
				t->env[i] = NULL;
				goto oom;
			}
			t->nenv = ++i;
		}
	}
	if (t->max >= 0 && t->min_ready > t->max) {
		error_set(err, ERR_INVALID_PARAMS, "%s.min_ready: more than its max (%d)", where, t->max);
		goto fail;
	}
	return 0;
oom:
	error_set(err, ERR_INTERNAL, "out of memory");
fail:
	tpl_clear(t);
	return -1;
}

int
pg_conf_parse(json_t *section, int ncpu, struct pg_conf *c, struct fxb_error *err)
{
	static const char *const keys[] = { "embedded", "workers", "clone_strategy", "connections",
		"acquire_timeout_ms", "pool", "gc", "templates", NULL };
	static const char *const pool_keys[] = { "min_ready", "max", "global_max",
		"refill_parallelism", "idle_timeout_ms", NULL };
	static const char *const gc_keys[] = { "keep", "max_age_ms", NULL };
	static const char *const embedded_keys[] = { "user", NULL };
	json_t *pool, *gc, *embedded, *templates, *v;
	const char *k;

	memset(c, 0, sizeof *c);
	if (ncpu < 1)
		ncpu = 1;
	strcpy(c->embedded_user, "postgres");
	c->strategy = PG_STRATEGY_FILE_COPY;
	c->connections = 10;
	c->acquire_timeout_ms = 60000;
	c->min_ready = ncpu;
	c->max = 4 * ncpu < 16 ? 16 : 4 * ncpu;
	c->global_max = 16 * ncpu < 64 ? 64 : 16 * ncpu;
	c->refill_parallelism = 2;
	c->idle_ms = 600000;
	c->gc_keep = 8;
	c->gc_max_age_ms = 24LL * 3600 * 1000;
	c->workers = -1;
	if (!section)
		goto done;
	if (!json_is_object(section)) {
		error_set(err, ERR_INVALID_PARAMS, "postgres: expected an object");
		return -1;
	}
	if (known(section, "postgres", keys, err) == -1 ||
	    get_int(section, "postgres", "workers", 1, 64, &c->workers, err) == -1 ||
	    get_int(section, "postgres", "connections", 1, 10000, &c->connections, err) == -1 ||
	    get_int(section, "postgres", "acquire_timeout_ms", 0, 3600000, &c->acquire_timeout_ms,
	    err) == -1 ||
	    get_object(section, "postgres", "pool", &pool, err) == -1 ||
	    get_object(section, "postgres", "gc", &gc, err) == -1 ||
	    get_object(section, "postgres", "embedded", &embedded, err) == -1 ||
	    get_object(section, "postgres", "templates", &templates, err) == -1)
		return -1;
	if ((v = json_object_get(section, "clone_strategy"))) {
		const char *s = json_string_value(v);
		if (s && !strcasecmp(s, "file_copy"))
			c->strategy = PG_STRATEGY_FILE_COPY;
		else if (s && !strcasecmp(s, "wal_log"))
			c->strategy = PG_STRATEGY_WAL_LOG;
		else {
			error_set(err, ERR_INVALID_PARAMS,
			    "postgres.clone_strategy: expected \"file_copy\" or \"wal_log\"");
			return -1;
		}
	}
	if (pool && (known(pool, "postgres.pool", pool_keys, err) == -1 ||
	    get_int(pool, "postgres.pool", "min_ready", 0, 1000, &c->min_ready, err) == -1 ||
	    get_int(pool, "postgres.pool", "max", 1, 10000, &c->max, err) == -1 ||
	    get_int(pool, "postgres.pool", "global_max", 1, 100000, &c->global_max, err) == -1 ||
	    get_int(pool, "postgres.pool", "refill_parallelism", 1, 64, &c->refill_parallelism,
	    err) == -1 ||
	    get_int(pool, "postgres.pool", "idle_timeout_ms", 1000, 7 * 86400000, &c->idle_ms,
	    err) == -1))
		return -1;
	if (c->min_ready > c->max) {
		error_set(err, ERR_INVALID_PARAMS, "postgres.pool.min_ready: more than pool.max (%d)",
		    c->max);
		return -1;
	}
	if (gc && (known(gc, "postgres.gc", gc_keys, err) == -1 ||
	    get_int(gc, "postgres.gc", "keep", 1, 10000, &c->gc_keep, err) == -1))
		return -1;
	if (gc && (v = json_object_get(gc, "max_age_ms"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 1000) {
			error_set(err, ERR_INVALID_PARAMS, "postgres.gc.max_age_ms: expected a whole number "
			    "of at least 1000");
			return -1;
		}
		c->gc_max_age_ms = json_integer_value(v);
	}
	if (embedded && known(embedded, "postgres.embedded", embedded_keys, err) == -1)
		return -1;
	if (embedded && (v = json_object_get(embedded, "user"))) {
		if (!json_is_string(v) || !json_string_length(v) ||
		    json_string_length(v) >= sizeof c->embedded_user) {
			error_set(err, ERR_INVALID_PARAMS, "postgres.embedded.user: expected a user name");
			return -1;
		}
		strcpy(c->embedded_user, json_string_value(v));
	}
	if (templates) {
		if (!(c->templates = calloc(json_object_size(templates) + 1, sizeof *c->templates))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		json_object_foreach(templates, k, v) {
			if (parse_template(k, v, &c->templates[c->ntemplates], err) == -1) {
				pg_conf_clear(c);
				return -1;
			}
			c->ntemplates++;
		}
	}
done:
	if (c->workers < 0)
		c->workers = c->refill_parallelism + 2;
	return 0;
}

void
pg_conf_clear(struct pg_conf *c)
{
	for (size_t i = 0; i < c->ntemplates; i++)
		tpl_clear(&c->templates[i]);
	free(c->templates);
	c->templates = NULL;
	c->ntemplates = 0;
}

const struct pg_tpl_conf *
pg_conf_template(const struct pg_conf *c, const char *name)
{
	for (size_t i = 0; i < c->ntemplates; i++)
		if (!strcmp(c->templates[i].name, name))
			return &c->templates[i];
	return NULL;
}

int
pg_hash_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 128)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
			return 0;
	return 1;
}

int
pg_tpl_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64 || !isalpha((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

int
pg_instance_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 8 || n > 16)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return 0;
	return 1;
}

uint64_t
pg_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void
pg_tid(const char *key, int server_version, char out[17])
{
	char salt[64];
	uint64_t h;

	/* The major version only: a minor upgrade keeps the on-disk format. */
	snprintf(salt, sizeof salt, "fxb-template-" TEMPLATE_FORMAT "/pg%d", server_version / 10000);
	h = pg_fnv(PG_FNV_SEED, salt, strlen(salt) + 1);
	h = pg_fnv(h, key, strlen(key));
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int
pg_object_name(char *out, size_t cap, const char *inst, char kind, const char *tid,
    const char *suffix)
{
	int n = snprintf(out, cap, "fxb_%s_%c_%s%s%s", inst, kind, tid, suffix ? "_" : "",
	    suffix ? suffix : "");

	return n < 0 || (size_t)n >= cap || n > 63 ? -1 : 0;
}

char
pg_object_parse(const char *name, const char *inst, char tid[17])
{
	size_t il = strlen(inst);
	const char *p;

	if (strncmp(name, "fxb_", 4) != 0 || strncmp(name + 4, inst, il) != 0 || name[4 + il] != '_')
		return 0;
	p = name + 5 + il;
	if (!islower((unsigned char)p[0]) || p[1] != '_')
		return 0;
	for (size_t i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)p[2 + i]))
			return 0;
	if (p[18] != '\0' && p[18] != '_')
		return 0;
	memcpy(tid, p + 2, 16);
	tid[16] = '\0';
	return p[0];
}

/* Appends s percent-encoded (everything but RFC 3986's unreserved characters). */
static int
encode(char **o, char *end, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || strchr("-._~", ch)) {
			if (*o + 1 >= end)
				return -1;
			*(*o)++ = (char)ch;
		} else {
			if (*o + 3 >= end)
				return -1;
			*(*o)++ = '%';
			*(*o)++ = hex[ch >> 4];
			*(*o)++ = hex[ch & 15];
		}
	}
	**o = '\0';
	return 0;
}

static int
put(char **o, char *end, const char *s)
{
	size_t n = strlen(s);

	if (*o + n >= end)
		return -1;
	memcpy(*o, s, n + 1);
	*o += n;
	return 0;
}

int
pg_url(char *out, size_t cap, const char *host, int port, const char *user,
    const char *password, const char *dbname, const char *application_name)
{
	char *o = out, *end = out + cap, portbuf[16];
	int unix_socket = host[0] == '/';

	if (cap == 0)
		return -1;
	out[0] = '\0';
	snprintf(portbuf, sizeof portbuf, "%d", port);
	if (put(&o, end, "postgresql://") == -1 || encode(&o, end, user) == -1 ||
	    put(&o, end, ":") == -1 || encode(&o, end, password) == -1 || put(&o, end, "@") == -1)
		return -1;
	/* A socket directory goes in the query (host=/run/...), as libpq and node-postgres
	 * both read it there; a name or address goes in the authority. */
	if (!unix_socket && (put(&o, end, strchr(host, ':') ? "[" : "") == -1 ||
	    put(&o, end, host) == -1 || put(&o, end, strchr(host, ':') ? "]" : "") == -1))
		return -1;
	if (put(&o, end, ":") == -1 || put(&o, end, portbuf) == -1 || put(&o, end, "/") == -1 ||
	    encode(&o, end, dbname) == -1)
		return -1;
	if (unix_socket && (put(&o, end, "?host=") == -1 || encode(&o, end, host) == -1))
		return -1;
	if (application_name && (put(&o, end, unix_socket ? "&" : "?") == -1 ||
	    put(&o, end, "application_name=") == -1 || encode(&o, end, application_name) == -1))
		return -1;
	return 0;
}

char *
pg_placeholders(const char *arg, const char *const vals[6])
{
	static const char *const names[6] = { "{url}", "{host}", "{port}", "{database}", "{user}",
		"{password}" };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	while (*arg) {
		size_t i;
		for (i = 0; i < 6 && strncmp(arg, names[i], strlen(names[i])) != 0; i++)
			;
		if (i < 6) {
			fputs(vals[i], f);
			arg += strlen(names[i]);
		} else {
			fputc(*arg++, f);
		}
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
