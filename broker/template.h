/* template.h: server templates from the broker's configuration, and their placeholders.
 *
 * The "servers" section of the configuration file is an object of templates by name; it
 * is parsed and checked once at start-up (every error names its key, as in
 * "servers.api.ready[0].path: expected a string"), and is the only place commands come
 * from: clients name a template, never a command. Placeholders in command, env, cwd and
 * exec probes are checked then too, and filled per lease by template_expand().
 */
#ifndef FXB_TEMPLATE_H
#define FXB_TEMPLATE_H

#include <jansson.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

enum probe_type { PROBE_TCP, PROBE_HTTP, PROBE_LOG, PROBE_EXEC };

enum { STREAM_STDOUT = 1, STREAM_STDERR = 2 };

struct probe_def {
	enum probe_type type;
	size_t port;        /* tcp, http: index into the template's ports */
	char method[16];    /* http */
	char *path;         /* http */
	int status;         /* http: the status that passes */
	char *regex;        /* log: the pattern as written */
	regex_t re;         /* log: compiled (POSIX extended) */
	int count;          /* log: matching lines needed */
	int streams;        /* log: STREAM_* bits */
	char **argv;        /* exec: with placeholders */
	int timeout_ms;     /* exec: per run; http: per attempt */
};

struct server_template {
	char *name;
	char **argv;         /* command, with placeholders; NULL-terminated */
	json_t *env;         /* {"NAME": "value with placeholders"} */
	char *cwd;           /* NULL: the broker's */
	char **ports;        /* port names, in lease order */
	size_t nports;
	json_t *needs;       /* {"<sub>": fixture spec}, or NULL */
	char **client_env;   /* names a client may set; NULL-terminated */
	struct probe_def *probes;
	size_t nprobes;
	int start_timeout_ms;
	int stop_grace_ms;
	int socket_handoff;
	int inherit_env;
	int cgroup;
	int log_file;
	size_t log_bytes;    /* ring size per stream */
};

struct templates;

/* Parses the section (may be NULL: no templates). Returns the set, or NULL with err
 * naming the key at fault. section is only read. */
struct templates *templates_new(json_t *section, struct fxb_error *err);
void templates_free(struct templates *ts);
/* The template called name, or NULL. Valid until templates_free(). */
const struct server_template *templates_get(const struct templates *ts, const char *name);
/* The template names, comma-separated, into buf. */
void templates_names(const struct templates *ts, char *buf, size_t len);

/* What placeholders are filled from for one server. */
struct expand_vars {
	const char *lease;      /* {lease} */
	const char *fixture;    /* {fixture} */
	const uint16_t *ports;  /* {port}, {ports.<name>}: the template's ports, in order */
	json_t *fixtures;       /* {fixtures.<sub>.<field>}: {"<sub>": fields} */
};

/* Fills text's placeholders ({port}, {ports.<name>}, {fixtures.<sub>.<field>}, {lease},
 * {fixture}; "{{" and "}}" for literal braces). Returns a malloc'd string, or NULL with
 * err set (a field the needed fixture does not have). */
char *template_expand(const struct server_template *t, const char *text,
    const struct expand_vars *v, struct fxb_error *err);

#endif
