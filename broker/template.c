/* template.c: parsing and checking server templates, and filling placeholders.
 *
 * Runs at start-up (broker_new) and, for template_expand(), when a server starts. Every
 * template is checked whole before the broker listens, placeholders included, so that a
 * typo in the configuration stops the broker with a message naming the key instead of
 * failing a lease later.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

struct templates {
	struct server_template *t;
	size_t n;
};

static const char *const reserved_env[] = { "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
	"FIXTURE_BROKER_PROCESS", NULL };

static int
name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return 0;
	return 1;
}

static int
env_name_ok(const char *s)
{
	return name_ok(s, 128, "_") && !isdigit((unsigned char)s[0]);
}

static int
reserved(const char *name)
{
	for (size_t i = 0; reserved_env[i]; i++)
		if (!strcmp(name, reserved_env[i]))
			return 1;
	return 0;
}

static void
free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void
template_clear(struct server_template *t)
{
	free(t->name);
	free_strv(t->argv);
	json_decref(t->env);
	free(t->cwd);
	free_strv(t->ports);
	json_decref(t->needs);
	free_strv(t->client_env);
	for (size_t i = 0; i < t->nprobes; i++) {
		struct probe_def *p = &t->probes[i];
		free(p->path);
		if (p->regex)
			regfree(&p->re);
		free(p->regex);
		free_strv(p->argv);
	}
	free(t->probes);
	memset(t, 0, sizeof *t);
}

void
templates_free(struct templates *ts)
{
	if (!ts)
		return;
	for (size_t i = 0; i < ts->n; i++)
		template_clear(&ts->t[i]);
	free(ts->t);
	free(ts);
}

const struct server_template *
templates_get(const struct templates *ts, const char *name)
{
	for (size_t i = 0; ts && i < ts->n; i++)
		if (!strcmp(ts->t[i].name, name))
			return &ts->t[i];
	return NULL;
}

void
templates_names(const struct templates *ts, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; ts && i < ts->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", ts->t[i].name);
	if (!ts || ts->n == 0)
		snprintf(buf, len, "none");
}

/* The index of port name in t, or -1. */
static long
port_index(const struct server_template *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->nports; i++)
		if (strlen(t->ports[i]) == len && !strncmp(t->ports[i], name, len))
			return (long)i;
	return -1;
}

/* Walks text's placeholders. With v NULL it only checks them against t (at start-up);
 * otherwise it appends the expansion to *out. Returns 0, or -1 with err set. */
static int
walk(const struct server_template *t, const char *text, const char *key,
    const struct expand_vars *v, char **out, size_t *outlen, struct fxb_error *err)
{
	size_t cap = 0;

	if (out) {
		cap = strlen(text) + 64;
		if (!(*out = malloc(cap))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		*outlen = 0;
	}
	for (const char *p = text; *p;) {
		char num[24], name[160];
		const char *val = NULL, *close;
		size_t vlen = 0, nlen;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			val = p;
			vlen = 1;
			p += 2;
		} else if (p[0] != '{') {
			val = p;
			vlen = strcspn(p, "{}");
			if (vlen == 0)
				vlen = 1; /* a lone '}' is itself */
			p += vlen;
		} else {
			if (!(close = strchr(p, '}'))) {
				error_set(err, ERR_INVALID_PARAMS, "%s: \"{\" without \"}\" (write \"{{\" for a brace)",
				    key);
				goto fail;
			}
			nlen = (size_t)(close - p - 1);
			snprintf(name, sizeof name, "%.*s", (int)(nlen < sizeof name ? nlen : sizeof name - 1),
			    p + 1);
			p = close + 1;
			if (!strcmp(name, "port")) {
				if (t->nports == 0) {
					error_set(err, ERR_INVALID_PARAMS, "%s: {port}: the template has no ports", key);
					goto fail;
				}
				if (v)
					snprintf(num, sizeof num, "%u", (unsigned)v->ports[0]);
				val = num;
			} else if (!strncmp(name, "ports.", 6)) {
				long i = port_index(t, name + 6, strlen(name + 6));
				if (i < 0) {
					error_set(err, ERR_INVALID_PARAMS, "%s: {%s}: the template has no port \"%s\"",
					    key, name, name + 6);
					goto fail;
				}
				if (v)
					snprintf(num, sizeof num, "%u", (unsigned)v->ports[i]);
				val = num;
			} else if (!strcmp(name, "lease")) {
				val = v ? v->lease : "";
			} else if (!strcmp(name, "fixture")) {
				val = v ? v->fixture : "";
			} else if (!strncmp(name, "fixtures.", 9)) {
				char *dot = strchr(name + 9, '.');
				json_t *field;
				if (!dot || dot == name + 9 || !dot[1]) {
					error_set(err, ERR_INVALID_PARAMS, "%s: {%s}: expected {fixtures.<need>.<field>}",
					    key, name);
					goto fail;
				}
				*dot = '\0';
				if (!json_object_get(t->needs, name + 9)) {
					error_set(err, ERR_INVALID_PARAMS, "%s: {fixtures.%s.%s}: the template needs no "
					    "fixture \"%s\"", key, name + 9, dot + 1, name + 9);
					goto fail;
				}
				if (v) {
					field = json_object_get(json_object_get(v->fixtures, name + 9), dot + 1);
					if (json_is_string(field)) {
						val = json_string_value(field);
					} else if (json_is_integer(field)) {
						snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
						    json_integer_value(field));
						val = num;
					} else {
						error_set(err, ERR_INVALID_PARAMS, "%s: {fixtures.%s.%s}: the fixture has "
						    "no such text or number field", key, name + 9, dot + 1);
						goto fail;
					}
				}
			} else {
				error_set(err, ERR_INVALID_PARAMS, "%s: unknown placeholder {%s} (known: {port}, "
				    "{ports.<name>}, {fixtures.<need>.<field>}, {lease}, {fixture})", key, name);
				goto fail;
			}
			vlen = val ? strlen(val) : 0;
		}
		if (!out)
			continue;
		if (*outlen + vlen + 1 > cap) {
			char *grown;
			while (*outlen + vlen + 1 > cap)
				cap *= 2;
			if (!(grown = realloc(*out, cap))) {
				error_set(err, ERR_INTERNAL, "out of memory");
				goto fail;
			}
			*out = grown;
		}
		memcpy(*out + *outlen, val, vlen);
		*outlen += vlen;
	}
	if (out)
		(*out)[*outlen] = '\0';
	return 0;
fail:
	if (out) {
		free(*out);
		*out = NULL;
	}
	return -1;
}

char *
template_expand(const struct server_template *t, const char *text,
    const struct expand_vars *v, struct fxb_error *err)
{
	char *out = NULL;
	size_t len;
	char key[96];

	snprintf(key, sizeof key, "servers.%s", t->name);
	if (walk(t, text, key, v, &out, &len, err) == -1)
		return NULL;
	return out;
}

/* ---- parsing ---- */

/* Formats a configuration key for messages; names are short, so nothing is cut. */
static void keyf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
keyf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int
get_int(json_t *v, const char *key, long lo, long hi, int *out, struct fxb_error *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected a whole number from %ld to %ld", key, lo, hi);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

static int
get_bool(json_t *v, const char *key, int *out, struct fxb_error *err)
{
	if (!json_is_boolean(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* A non-empty array of strings (placeholders checked) into a NULL-terminated vector. */
static int
get_argv(const struct server_template *t, json_t *v, const char *key, char ***out,
    struct fxb_error *err)
{
	char sub[160];
	size_t i;
	json_t *s;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected a non-empty array of strings", key);
		return -1;
	}
	if (!(*out = calloc(json_array_size(v) + 1, sizeof **out))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	json_array_foreach(v, i, s) {
		keyf(sub, sizeof sub, "%s[%zu]", key, i);
		if (!json_is_string(s)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a string", sub);
			return -1;
		}
		if (walk(t, json_string_value(s), sub, NULL, NULL, NULL, err) == -1)
			return -1;
		if (!((*out)[i] = strdup(json_string_value(s)))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int
get_names(json_t *v, const char *key, int env, char ***out, size_t *n, struct fxb_error *err)
{
	char sub[160];
	size_t i;
	json_t *s;

	if (!json_is_array(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an array of names", key);
		return -1;
	}
	if (!(*out = calloc(json_array_size(v) + 1, sizeof **out))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	json_array_foreach(v, i, s) {
		const char *name = json_string_value(s);
		keyf(sub, sizeof sub, "%s[%zu]", key, i);
		if (!name || !(env ? env_name_ok(name) : name_ok(name, 32, "_-"))) {
			error_set(err, ERR_INVALID_PARAMS, env ? "%s: expected an environment variable name"
			    : "%s: expected a name of 1 to 32 of A-Z a-z 0-9 _ -", sub);
			return -1;
		}
		if (env && reserved(name)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: %s is set by the broker", sub, name);
			return -1;
		}
		for (size_t k = 0; k < i; k++) {
			if (!strcmp((*out)[k], name)) {
				error_set(err, ERR_INVALID_PARAMS, "%s: \"%s\" is listed twice", sub, name);
				return -1;
			}
		}
		if (!((*out)[i] = strdup(name))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	if (n)
		*n = json_array_size(v);
	return 0;
}

static int
probe_port(const struct server_template *t, json_t *v, const char *key, size_t *out,
    struct fxb_error *err)
{
	long i;

	if (!v) {
		if (t->nports == 0) {
			error_set(err, ERR_INVALID_PARAMS, "%s: the template has no ports to probe", key);
			return -1;
		}
		*out = 0;
		return 0;
	}
	if (!json_is_string(v) ||
	    (i = port_index(t, json_string_value(v), strlen(json_string_value(v)))) < 0) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected the name of one of the template's ports",
		    key);
		return -1;
	}
	*out = (size_t)i;
	return 0;
}

static int
parse_probe(const struct server_template *t, json_t *o, const char *key, struct probe_def *p,
    struct fxb_error *err)
{
	static const char *const allowed[] = {
		[PROBE_TCP] = " type port ",
		[PROBE_HTTP] = " type port method path status timeout_ms ",
		[PROBE_LOG] = " type regex count stream ",
		[PROBE_EXEC] = " type command timeout_ms ",
	};
	const char *type = json_string_value(json_object_get(o, "type")), *k;
	char sub[200];
	json_t *v;
	int rc;

	if (!json_is_object(o)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an object with a \"type\"", key);
		return -1;
	}
	if (!type) {
		error_set(err, ERR_INVALID_PARAMS, "%s.type: expected \"tcp\", \"http\", \"log\" or \"exec\"",
		    key);
		return -1;
	}
	if (!strcmp(type, "tcp"))
		p->type = PROBE_TCP;
	else if (!strcmp(type, "http"))
		p->type = PROBE_HTTP;
	else if (!strcmp(type, "log"))
		p->type = PROBE_LOG;
	else if (!strcmp(type, "exec"))
		p->type = PROBE_EXEC;
	else {
		error_set(err, ERR_INVALID_PARAMS, "%s.type: expected \"tcp\", \"http\", \"log\" or \"exec\", "
		    "got \"%.32s\"", key, type);
		return -1;
	}
	json_object_foreach(o, k, v) {
		char word[80];
		snprintf(word, sizeof word, " %.64s ", k);
		if (!strstr(allowed[p->type], word)) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%s: unknown setting for a %s probe", key, k, type);
			return -1;
		}
	}
	p->status = 200;
	p->count = 1;
	p->streams = STREAM_STDOUT | STREAM_STDERR;
	p->timeout_ms = p->type == PROBE_EXEC ? 5000 : 2000;
	strcpy(p->method, "GET");
	keyf(sub, sizeof sub, "%s.port", key);
	if ((p->type == PROBE_TCP || p->type == PROBE_HTTP) &&
	    probe_port(t, json_object_get(o, "port"), sub, &p->port, err) == -1)
		return -1;
	if ((v = json_object_get(o, "method"))) {
		if (!json_is_string(v) || !name_ok(json_string_value(v), 15, "")) {
			error_set(err, ERR_INVALID_PARAMS, "%s.method: expected an HTTP method (\"GET\")", key);
			return -1;
		}
		snprintf(p->method, sizeof p->method, "%s", json_string_value(v));
	}
	if (p->type == PROBE_HTTP) {
		v = json_object_get(o, "path");
		if (v && (!json_is_string(v) || json_string_value(v)[0] != '/' ||
		    strpbrk(json_string_value(v), " \r\n"))) {
			error_set(err, ERR_INVALID_PARAMS, v && json_is_string(v)
			    ? "%s.path: expected a path starting with \"/\", without spaces"
			    : "%s.path: expected a string", key);
			return -1;
		}
		if (!(p->path = strdup(v ? json_string_value(v) : "/"))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	keyf(sub, sizeof sub, "%s.status", key);
	if ((v = json_object_get(o, "status")) && get_int(v, sub, 100, 599, &p->status, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.timeout_ms", key);
	if ((v = json_object_get(o, "timeout_ms")) &&
	    get_int(v, sub, 1, 600000, &p->timeout_ms, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.count", key);
	if ((v = json_object_get(o, "count")) && get_int(v, sub, 1, 1000000, &p->count, err) == -1)
		return -1;
	if (p->type == PROBE_LOG) {
		const char *stream;
		char msg[128];
		if (!(v = json_object_get(o, "regex")) || !json_is_string(v)) {
			error_set(err, ERR_INVALID_PARAMS, "%s.regex: expected a string", key);
			return -1;
		}
		if ((rc = regcomp(&p->re, json_string_value(v), REG_EXTENDED | REG_NOSUB)) != 0) {
			regerror(rc, &p->re, msg, sizeof msg);
			error_set(err, ERR_INVALID_PARAMS, "%s.regex: %s", key, msg);
			return -1;
		}
		if (!(p->regex = strdup(json_string_value(v)))) {
			regfree(&p->re);
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		if ((v = json_object_get(o, "stream"))) {
			stream = json_string_value(v);
			if (stream && !strcmp(stream, "stdout"))
				p->streams = STREAM_STDOUT;
			else if (stream && !strcmp(stream, "stderr"))
				p->streams = STREAM_STDERR;
			else if (!stream || strcmp(stream, "both") != 0) {
				error_set(err, ERR_INVALID_PARAMS, "%s.stream: expected \"stdout\", \"stderr\" or "
				    "\"both\"", key);
				return -1;
			}
		}
	}
	if (p->type == PROBE_EXEC) {
		keyf(sub, sizeof sub, "%s.command", key);
		if (get_argv(t, json_object_get(o, "command"), sub, &p->argv, err) == -1)
			return -1;
	}
	return 0;
}

static int
parse_env(const struct server_template *t, json_t *v, const char *key, json_t **out,
    struct fxb_error *err)
{
	char sub[200];
	const char *name;
	json_t *val;

	if (!json_is_object(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an object of strings", key);
		return -1;
	}
	json_object_foreach(v, name, val) {
		keyf(sub, sizeof sub, "%s.%s", key, name);
		if (!env_name_ok(name)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: not an environment variable name", sub);
			return -1;
		}
		if (reserved(name)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: %s is set by the broker", sub, name);
			return -1;
		}
		if (!json_is_string(val)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a string", sub);
			return -1;
		}
		if (walk(t, json_string_value(val), sub, NULL, NULL, NULL, err) == -1)
			return -1;
	}
	*out = json_deep_copy(v);
	return 0;
}

static int
parse_needs(json_t *v, const char *key, json_t **out, struct fxb_error *err)
{
	const char *sub;
	json_t *spec;

	if (!json_is_object(v)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an object of fixture requests", key);
		return -1;
	}
	json_object_foreach(v, sub, spec) {
		if (!name_ok(sub, 32, "_-")) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected a name of 1 to 32 of A-Z a-z 0-9 _ -",
			    key, sub);
			return -1;
		}
		if (!json_is_object(spec) || !json_is_string(json_object_get(spec, "kind"))) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%s: expected a fixture request with a \"kind\"",
			    key, sub);
			return -1;
		}
	}
	*out = json_object_size(v) ? json_deep_copy(v) : NULL;
	return 0;
}

static int
parse_template(const char *name, json_t *o, struct server_template *t, struct fxb_error *err)
{
	static const char *const known = " command env cwd ports needs client_env ready "
	    "start_timeout_ms stop_grace_ms socket_handoff inherit_env cgroup log_file "
	    "log_buffer_bytes ";
	char key[160], sub[200];
	const char *k;
	json_t *v, *ready;
	int bytes = 65536;
	size_t i;

	keyf(key, sizeof key, "servers.%s", name);
	if (!name_ok(name, 64, "_.-")) {
		error_set(err, ERR_INVALID_PARAMS, "%s: a template name is 1 to 64 of A-Z a-z 0-9 _ . -", key);
		return -1;
	}
	if (!json_is_object(o)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an object", key);
		return -1;
	}
	json_object_foreach(o, k, v) {
		char word[80];
		snprintf(word, sizeof word, " %.64s ", k);
		if (!strstr(known, word)) {
			error_set(err, ERR_INVALID_PARAMS, "%s.%s: unknown setting", key, k);
			return -1;
		}
	}
	if (!(t->name = strdup(name))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	t->start_timeout_ms = 30000;
	t->stop_grace_ms = 5000;
	t->inherit_env = 1;
	t->cgroup = 1;
	/* Ports and needs first: the placeholders elsewhere refer to them. */
	keyf(sub, sizeof sub, "%s.ports", key);
	if ((v = json_object_get(o, "ports"))) {
		if (get_names(v, sub, 0, &t->ports, &t->nports, err) == -1)
			return -1;
	} else {
		if (!(t->ports = calloc(2, sizeof *t->ports)) || !(t->ports[0] = strdup("main"))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		t->nports = 1;
	}
	keyf(sub, sizeof sub, "%s.needs", key);
	if ((v = json_object_get(o, "needs")) && parse_needs(v, sub, &t->needs, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.command", key);
	if (get_argv(t, json_object_get(o, "command"), sub, &t->argv, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.env", key);
	if ((v = json_object_get(o, "env")) ? parse_env(t, v, sub, &t->env, err) == -1
	    : !(t->env = json_object())) {
		if (!err->code)
			error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if ((v = json_object_get(o, "cwd"))) {
		keyf(sub, sizeof sub, "%s.cwd", key);
		if (!json_is_string(v) || !json_string_length(v)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a directory", sub);
			return -1;
		}
		if (walk(t, json_string_value(v), sub, NULL, NULL, NULL, err) == -1)
			return -1;
		if (!(t->cwd = strdup(json_string_value(v)))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	keyf(sub, sizeof sub, "%s.client_env", key);
	if ((v = json_object_get(o, "client_env")) ? get_names(v, sub, 1, &t->client_env, NULL, err) == -1
	    : !(t->client_env = calloc(1, sizeof *t->client_env))) {
		if (!err->code)
			error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	keyf(sub, sizeof sub, "%s.start_timeout_ms", key);
	if ((v = json_object_get(o, "start_timeout_ms")) &&
	    get_int(v, sub, 1, 3600000, &t->start_timeout_ms, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.stop_grace_ms", key);
	if ((v = json_object_get(o, "stop_grace_ms")) &&
	    get_int(v, sub, 0, 600000, &t->stop_grace_ms, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.log_buffer_bytes", key);
	if ((v = json_object_get(o, "log_buffer_bytes")) &&
	    get_int(v, sub, 1024, 64 * 1024 * 1024, &bytes, err) == -1)
		return -1;
	t->log_bytes = (size_t)bytes;
	keyf(sub, sizeof sub, "%s.socket_handoff", key);
	if ((v = json_object_get(o, "socket_handoff")) && get_bool(v, sub, &t->socket_handoff, err) == -1)
		return -1;
	if (t->socket_handoff && t->nports == 0) {
		error_set(err, ERR_INVALID_PARAMS, "%s: socket_handoff needs at least one port", sub);
		return -1;
	}
	keyf(sub, sizeof sub, "%s.inherit_env", key);
	if ((v = json_object_get(o, "inherit_env")) && get_bool(v, sub, &t->inherit_env, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.cgroup", key);
	if ((v = json_object_get(o, "cgroup")) && get_bool(v, sub, &t->cgroup, err) == -1)
		return -1;
	keyf(sub, sizeof sub, "%s.log_file", key);
	if ((v = json_object_get(o, "log_file")) && get_bool(v, sub, &t->log_file, err) == -1)
		return -1;

	/* Without "ready", a server with ports is ready once its first port accepts. */
	ready = json_object_get(o, "ready");
	keyf(sub, sizeof sub, "%s.ready", key);
	if (ready && !json_is_array(ready)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected an array of probes", sub);
		return -1;
	}
	t->nprobes = ready ? json_array_size(ready) : t->nports > 0;
	if (t->nprobes && !(t->probes = calloc(t->nprobes, sizeof *t->probes))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (!ready && t->nprobes) {
		t->probes[0].type = PROBE_TCP;
		return 0;
	}
	json_array_foreach(ready, i, v) {
		keyf(sub, sizeof sub, "%s.ready[%zu]", key, i);
		if (parse_probe(t, v, sub, &t->probes[i], err) == -1)
			return -1;
	}
	return 0;
}

struct templates *
templates_new(json_t *section, struct fxb_error *err)
{
	struct templates *ts = calloc(1, sizeof *ts);
	const char *name;
	json_t *o;

	if (!ts) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (!section)
		return ts;
	if (!json_is_object(section)) {
		error_set(err, ERR_INVALID_PARAMS, "servers: expected an object of templates by name");
		free(ts);
		return NULL;
	}
	if (json_object_size(section) &&
	    !(ts->t = calloc(json_object_size(section), sizeof *ts->t))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		free(ts);
		return NULL;
	}
	json_object_foreach(section, name, o) {
		if (parse_template(name, o, &ts->t[ts->n++], err) == -1) {
			templates_free(ts);
			return NULL;
		}
	}
	return ts;
}
