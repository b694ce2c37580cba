/* servers.c: the server fixture kind: start, probe, capture, notify, stop (see servers.h).
 *
 * One struct server per server fixture (f->data), made in parse and freed when lease.c
 * frees the fixture. Its life:
 *   start:  placeholders filled, environment built, ports bound (socket handoff), cgroup
 *           made, the program spawned (an exec failure fails the lease at once), its
 *           stdout and stderr adopted by the loop, probes polled from ~10 ms backing off
 *           to POLL_MAX_MS, and again soon after each burst of output;
 *   ready:  every probe passed: fixture_ready();
 *   early exit or deadline: fixture_failed() with the exit status or signal, the probe
 *           history and the log tail;
 *   late exit: server.exited to the session; the rest of the tree is put down, the
 *           ports stay with the lease until it is released;
 *   stop:   SIGTERM to the tree, SIGKILL after stop_grace_ms, then polling until no
 *           process of the tree is left (leader reaped, group empty, cgroup empty, no
 *           marked orphan), then fixture_stopped() and the ports go to quarantine.
 * fixture_ready(), fixture_failed() and fixture_stopped() may free the server (a lease
 * released in their wake), so each is the last thing done with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "cgroup.h"
#include "fdwatch.h"
#include "instance.h"
#include "lease.h"
#include "log.h"
#include "probes.h"
#include "proc.h"
#include "ring.h"
#include "rpc.h"
#include "servers.h"
#include "session.h"
#include "template.h"

#define POLL_FIRST_MS 10
#define POLL_MAX_MS 100
#define OUTPUT_SPACING_MS 1 /* output brings the next probe round forward, at most this often */
#define LINE_MAX_BYTES 4096
#define TAIL_BYTES 8192
#define TAIL_LINES 20

extern char **environ;

struct servers {
	struct broker *b;
	struct templates *templates;
};

struct server;

struct stream {
	struct server *s;
	int which; /* STREAM_STDOUT or STREAM_STDERR */
	struct fdwatch *w;
	struct ring ring;
	char line[LINE_MAX_BYTES];
	size_t line_len;
};

struct server {
	struct broker *b;
	struct fixture *f;
	const struct server_template *t;
	json_t *client_env;
	int ready;       /* fixture_ready() called */
	int stop_wanted; /* stop() called */
	int spawned;
	int exited;      /* the leader is reaped: wstatus holds how */
	int wstatus;
	int terminating; /* SIGTERM sent to the tree */
	int killed;      /* SIGKILL sent */
	struct proc_tree tree;
	struct stream out, err;
	struct ring tail; /* both streams, in arrival order */
	int log_fd;
	char log_path[PATH_MAX];
	struct probes *probes;
	char **envp, **probe_envp;
	lws_sorted_usec_list_t tick;     /* probe rounds; tree polls while stopping */
	lws_sorted_usec_list_t deadline; /* start deadline; stop grace */
	uint64_t started_ms, last_tick_ms, next_tick_ms;
	int interval_ms;
};

static struct server *
server_of(struct fixture *f)
{
	return f->data;
}

/* ---- parse ---- */

static int
server_parse(struct broker *b, struct fixture *f, json_t *spec, struct fxb_error *err)
{
	const char *kind, *tname, *name;
	json_t *env = NULL, *v;
	json_error_t jerr;
	const struct server_template *t;
	struct server *s;
	char names[512];

	if (json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s, s:s, s?o}", "kind", &kind, "template",
	    &tname, "env", &env) == -1) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s: %s", f->name, jerr.text);
		return -1;
	}
	if (!(t = templates_get(b->servers->templates, tname))) {
		json_t *known = json_array();
		templates_names(b->servers->templates, names, sizeof names);
		for (char *tok = strtok(names, ", "); known && tok; tok = strtok(NULL, ", "))
			json_array_append_new(known, json_string(tok));
		templates_names(b->servers->templates, names, sizeof names);
		error_set_data(err, ERR_SERVER_TEMPLATE_UNKNOWN, json_pack("{s:s, s:s, s:o}", "fixture",
		    f->name, "template", tname, "templates", known ? known : json_array()),
		    "fixtures.%s: no server template \"%.64s\" in the broker's configuration (it has: %.120s)",
		    f->name, tname, names);
		return -1;
	}
	if (env && !json_is_object(env)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s.env: expected an object of strings",
		    f->name);
		return -1;
	}
	json_object_foreach(env, name, v) {
		size_t i;

		for (i = 0; t->client_env[i] && strcmp(t->client_env[i], name) != 0; i++)
			;
		if (!t->client_env[i]) {
			json_t *allowed = json_array();
			size_t used = 0;
			names[0] = '\0';
			for (size_t k = 0; allowed && t->client_env[k]; k++) {
				json_array_append_new(allowed, json_string(t->client_env[k]));
				if (used < sizeof names)
					used += (size_t)snprintf(names + used, sizeof names - used, "%s%s",
					    k ? ", " : "", t->client_env[k]);
			}
			error_set_data(err, ERR_SERVER_ENV_NOT_ALLOWED, json_pack("{s:s, s:s, s:s, s:o}",
			    "fixture", f->name, "template", t->name, "variable", name, "allowed",
			    allowed ? allowed : json_array()),
			    "fixtures.%s.env.%.64s: template \"%s\" does not let clients set %.64s (allowed: %.80s)",
			    f->name, name, t->name, name, t->client_env[0] ? names : "none");
			return -1;
		}
		if (!json_is_string(v)) {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s.env.%.64s: expected a string",
			    f->name, name);
			return -1;
		}
	}
	if (!(s = calloc(1, sizeof *s))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	s->b = b;
	s->t = t;
	s->log_fd = -1;
	s->client_env = env ? json_incref(env) : NULL;
	f->data = s;
	f->nports = t->nports;
	if (t->needs && !(f->needs = json_deep_copy(t->needs))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- output ---- */

static void schedule_tick(struct server *s, int ms);

/* Appends data to the rings and the log file, and hands complete lines to the probes. */
static void
stream_data(struct stream *st, const char *data, size_t n)
{
	struct server *s = st->s;

	ring_write(&st->ring, data, n);
	ring_write(&s->tail, data, n);
	if (s->log_fd != -1 && write(s->log_fd, data, n) != (ssize_t)n) {
		log_warn("server %s: log file %s: writing stopped", s->f->name, s->log_path);
		close(s->log_fd);
		s->log_fd = -1;
	}
	if (!s->probes)
		return;
	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n' && st->line_len < sizeof st->line - 1) {
			st->line[st->line_len++] = data[i];
			continue;
		}
		if (st->line_len && st->line[st->line_len - 1] == '\r')
			st->line_len--;
		st->line[st->line_len] = '\0';
		probes_log_line(s->probes, st->which, st->line, st->line_len);
		st->line_len = 0;
		if (data[i] != '\n') /* a cut line: this byte starts the next piece */
			st->line[st->line_len++] = data[i];
	}
	/* Output often means the server got somewhere: probe again soon. */
	if (!s->ready && !s->stop_wanted) {
		uint64_t now = now_ms(), due = s->last_tick_ms + OUTPUT_SPACING_MS;
		if (due < now)
			due = now;
		if (due + 1 < s->next_tick_ms)
			schedule_tick(s, (int)(due - now));
	}
}

/* Reads st until EAGAIN. Returns -1 at end of file or on error, else 0. */
static int
stream_drain(struct stream *st, int fd)
{
	char buf[16384];
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) > 0)
		stream_data(st, buf, (size_t)n);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

static int
stream_event(void *arg, int fd, enum fdwatch_event ev)
{
	struct stream *st = arg;

	if (ev == FDWATCH_CLOSED) {
		st->w = NULL;
		if (st->line_len && st->s->probes) {
			st->line[st->line_len] = '\0';
			probes_log_line(st->s->probes, st->which, st->line, st->line_len);
			st->line_len = 0;
		}
		return 0;
	}
	return stream_drain(st, fd);
}

/* Reads whatever the pipes hold now (the leader has exited; what it wrote is there). */
static void
streams_drain(struct server *s)
{
	struct stream *sts[2] = { &s->out, &s->err };

	for (int i = 0; i < 2; i++)
		if (sts[i]->w && stream_drain(sts[i], fdwatch_fd(sts[i]->w)) == -1) {
			fdwatch_free(sts[i]->w);
			sts[i]->w = NULL;
		}
}

/* The last lines of both streams as a JSON string. */
static json_t *
tail_json(struct server *s, size_t lines)
{
	size_t len = 0;
	char *text = ring_tail(&s->tail, lines, &len);
	json_t *j = text ? text_json(text, len) : NULL;

	free(text);
	return j ? j : json_string("");
}

/* The last non-empty line, for error messages. */
static void
last_line(struct server *s, char *buf, size_t len)
{
	size_t n = 0;
	char *text = ring_tail(&s->tail, 2, &n), *p;

	buf[0] = '\0';
	if (!text)
		return;
	while (n && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	p = strrchr(text, '\n');
	snprintf(buf, len, "%s", p ? p + 1 : text);
	for (p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	free(text);
}

/* {"status": N} or {"signal": N, "signal_name": "SIGKILL"} merged into o. */
static void
exit_fields(json_t *o, int st)
{
	if (WIFEXITED(st)) {
		json_object_set_new(o, "status", json_integer(WEXITSTATUS(st)));
	} else if (WIFSIGNALED(st)) {
		json_object_set_new(o, "signal", json_integer(WTERMSIG(st)));
		json_object_set_new(o, "signal_name", json_string(proc_signal_name(WTERMSIG(st))));
	}
}

static void
exit_text(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by %s", proc_signal_name(WTERMSIG(st)));
	else
		snprintf(buf, len, "stopped (status 0x%x)", (unsigned)st);
}

/* ---- stopping ---- */

static void poll_tree(lws_sorted_usec_list_t *sul);

/* The tree is gone and the lease let go: releases everything, then the ports. */
static void
finish(struct server *s)
{
	struct fixture *f = s->f;
	char how[64] = "never started";

	lws_sul_cancel(&s->tick);
	lws_sul_cancel(&s->deadline);
	if (s->spawned) {
		proc_tree_end(s->b->procs, &s->tree);
		s->spawned = 0;
		exit_text(s->wstatus, how, sizeof how);
	}
	log_info("server %s of lease %s stopped: it %s%s", f->name, f->lease->lid, how,
	    s->killed ? " (after SIGKILL)" : s->terminating ? " (after SIGTERM)" : "");
	fixture_stopped(s->b, f); /* frees s */
}

/* Polls the tree until it is empty; then finishes if the lease let go. */
static void
check_tree(struct server *s)
{
	if (proc_tree_alive(s->b->procs, &s->tree)) {
		s->interval_ms = s->interval_ms ? s->interval_ms * 2 : 5;
		if (s->interval_ms > POLL_MAX_MS)
			s->interval_ms = POLL_MAX_MS;
		lws_sul_schedule(s->b->ctx, 0, &s->tick, poll_tree,
		    (lws_usec_t)s->interval_ms * LWS_US_PER_MS);
		return;
	}
	lws_sul_cancel(&s->tick);
	lws_sul_cancel(&s->deadline);
	if (s->stop_wanted)
		finish(s);
}

static void
poll_tree(lws_sorted_usec_list_t *sul)
{
	check_tree(lws_container_of(sul, struct server, tick));
}

static void
grace_over(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, deadline);

	if (!proc_tree_alive(s->b->procs, &s->tree))
		return;
	log_info("server %s of lease %s: still running %d ms after SIGTERM: SIGKILL", s->f->name,
	    s->f->lease->lid, s->t->stop_grace_ms);
	s->killed = 1;
	proc_tree_signal(s->b->procs, &s->tree, SIGKILL);
	s->interval_ms = 0;
	check_tree(s);
}

/* SIGTERM to the whole tree, SIGKILL after the grace period, polling until it is gone. */
static void
terminate(struct server *s)
{
	if (s->terminating) {
		check_tree(s);
		return;
	}
	s->terminating = 1;
	lws_sul_cancel(&s->tick);
	lws_sul_cancel(&s->deadline);
	if (s->t->stop_grace_ms == 0) {
		s->killed = 1;
		proc_tree_signal(s->b->procs, &s->tree, SIGKILL);
	} else {
		proc_tree_signal(s->b->procs, &s->tree, SIGTERM);
		lws_sul_schedule(s->b->ctx, 0, &s->deadline, grace_over,
		    (lws_usec_t)s->t->stop_grace_ms * LWS_US_PER_MS);
	}
	s->interval_ms = 0;
	check_tree(s);
}

static void
server_stop(struct broker *b, struct fixture *f, const char *reason)
{
	struct server *s = server_of(f);

	(void)b;
	log_debug("stopping server %s of lease %s: %s", f->name, f->lease->lid, reason);
	s->stop_wanted = 1;
	probes_free(s->probes);
	s->probes = NULL;
	lws_sul_cancel(&s->tick);
	if (!s->terminating)
		lws_sul_cancel(&s->deadline);
	if (!s->spawned) {
		finish(s);
		return;
	}
	terminate(s);
}

/* ---- starting ---- */

static void
fail_start(struct server *s, int code, const char *what)
{
	struct fixture *f = s->f;
	struct fxb_error err = { 0 };
	json_t *data = json_pack("{s:s, s:s, s:I, s:o, s:o}", "fixture", f->name, "template",
	    s->t->name, "pid", (json_int_t)s->tree.leader, "log_tail", tail_json(s, TAIL_LINES),
	    "probes", s->probes ? probes_json(s->probes) : json_array());
	char last[120];

	if (data)
		json_object_set_new(data, "elapsed_ms", json_integer((json_int_t)(now_ms() - s->started_ms)));
	if (data && s->exited)
		exit_fields(data, s->wstatus);
	last_line(s, last, sizeof last);
	error_set_data(&err, code, data, "fixtures.%s: server \"%s\" %s%s%s%s", f->name, s->t->name,
	    what, last[0] ? "; last line: \"" : "", last, last[0] ? "\"" : "");
	log_info("server %s of lease %s failed to start: %s", f->name, f->lease->lid, err.text);
	lws_sul_cancel(&s->tick);
	lws_sul_cancel(&s->deadline);
	fixture_failed(s->b, f, &err); /* may free s */
	error_clear(&err);
}

static json_t *
fields(struct server *s)
{
	struct fixture *f = s->f;
	json_t *o = json_pack("{s:s, s:s, s:o, s:I}", "kind", "server", "host", "127.0.0.1", "ports",
	    json_object(), "pid", (json_int_t)s->tree.leader), *deps;
	const char *sub;
	json_t *spec;

	if (!o)
		return NULL;
	if (f->nports)
		json_object_set_new(o, "port", json_integer(f->ports[0]));
	for (size_t i = 0; i < f->nports; i++)
		json_object_set_new(json_object_get(o, "ports"), s->t->ports[i], json_integer(f->ports[i]));
	if (s->t->needs && (deps = json_object())) {
		json_object_foreach(s->t->needs, sub, spec) {
			struct fixture *d = fixture_dep(f, sub);
			if (d && d->fields)
				json_object_set(deps, sub, d->fields);
		}
		json_object_set_new(o, "fixtures", deps);
	}
	if (s->log_fd != -1)
		json_object_set_new(o, "log_file", json_string(s->log_path));
	return o;
}

static void
become_ready(struct server *s)
{
	struct fixture *f = s->f;

	lws_sul_cancel(&s->tick);
	lws_sul_cancel(&s->deadline);
	probes_free(s->probes);
	s->probes = NULL;
	if (!(f->fields = fields(s))) {
		struct fxb_error err = { 0 };
		error_set(&err, ERR_INTERNAL, "out of memory");
		fixture_failed(s->b, f, &err);
		error_clear(&err);
		return;
	}
	s->ready = 1;
	log_info("server %s of lease %s ready in %llu ms (pid %ld)", f->name, f->lease->lid,
	    (unsigned long long)(now_ms() - s->started_ms), (long)s->tree.leader);
	fixture_ready(s->b, f); /* may free s */
}

static void probe_round(lws_sorted_usec_list_t *sul);

static void
schedule_tick(struct server *s, int ms)
{
	lws_sul_cancel(&s->tick);
	s->next_tick_ms = now_ms() + (uint64_t)ms;
	lws_sul_schedule(s->b->ctx, 0, &s->tick, probe_round, (lws_usec_t)ms * LWS_US_PER_MS + 1);
}

static void
probe_round(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, tick);

	if (s->ready || s->stop_wanted || !s->probes)
		return;
	s->last_tick_ms = now_ms();
	probes_tick(s->probes);
	if (probes_passed(s->probes)) {
		become_ready(s);
		return;
	}
	s->interval_ms = s->interval_ms * 3 / 2;
	if (s->interval_ms > POLL_MAX_MS)
		s->interval_ms = POLL_MAX_MS;
	schedule_tick(s, s->interval_ms);
}

/* An http reply or an exec probe passed: check at once. */
static void
probe_changed(void *arg)
{
	struct server *s = arg;

	if (!s->ready && !s->stop_wanted)
		schedule_tick(s, 0);
}

static void
start_timed_out(lws_sorted_usec_list_t *sul)
{
	struct server *s = lws_container_of(sul, struct server, deadline);
	char what[96];

	snprintf(what, sizeof what, "did not pass its readiness probes within %d ms",
	    s->t->start_timeout_ms);
	fail_start(s, ERR_SERVER_START_TIMEOUT, what);
}

static void
leader_exited(void *arg, pid_t pid, int st)
{
	struct server *s = arg;
	struct fixture *f = s->f;
	char how[64];
	json_t *params;

	s->exited = 1;
	s->wstatus = st;
	s->tree.leader_alive = 0;
	streams_drain(s);
	exit_text(st, how, sizeof how);
	if (s->stop_wanted) {
		check_tree(s);
		return;
	}
	if (!s->ready) {
		char what[96];
		snprintf(what, sizeof what, "%s before it was ready", how);
		fail_start(s, ERR_SERVER_EXITED, what);
		return;
	}
	log_info("server %s of lease %s (pid %ld) %s after it was ready", f->name, f->lease->lid,
	    (long)pid, how);
	if (f->lease->session && (params = json_pack("{s:s, s:s, s:I, s:o}", "lease", f->lease->lid,
	    "fixture", f->name, "pid", (json_int_t)pid, "log_tail", tail_json(s, TAIL_LINES)))) {
		exit_fields(params, st);
		rpc_notify(f->lease->session, "server.exited", params);
	}
	/* What the leader left behind goes now; the lease keeps the ports until released. */
	terminate(s);
}

/* Adds or replaces NAME=value in a NULL-terminated vector of n entries (room for one more
 * is made). Returns 0 or -1. */
static int
env_set(char ***envp, size_t *n, const char *name, const char *value)
{
	size_t nl = strlen(name);
	char *entry = malloc(nl + strlen(value) + 2), **grown;

	if (!entry)
		return -1;
	sprintf(entry, "%s=%s", name, value);
	for (size_t i = 0; i < *n; i++) {
		if (!strncmp((*envp)[i], name, nl) && (*envp)[i][nl] == '=') {
			free((*envp)[i]);
			(*envp)[i] = entry;
			return 0;
		}
	}
	if (!(grown = realloc(*envp, (*n + 2) * sizeof *grown))) {
		free(entry);
		return -1;
	}
	*envp = grown;
	(*envp)[(*n)++] = entry;
	(*envp)[*n] = NULL;
	return 0;
}

/* The server's environment: the broker's (unless inherit_env is false), the template's,
 * the client's, then what the broker sets. Also the probes' (without LISTEN_*). */
static int
build_env(struct server *s, const struct expand_vars *v, struct fxb_error *err)
{
	const char *name;
	json_t *val;
	size_t n = 0, k = 0;
	char *text, value[512];

	if (!(s->envp = calloc(1, sizeof *s->envp)))
		goto oom;
	for (char **e = environ; s->t->inherit_env && e && *e; e++) {
		char *eq = strchr(*e, '=');
		char nm[128];
		if (!eq || (size_t)(eq - *e) >= sizeof nm)
			continue;
		snprintf(nm, sizeof nm, "%.*s", (int)(eq - *e), *e);
		if (!strncmp(nm, "LISTEN_", 7) || !strcmp(nm, PROC_MARKER) || !strcmp(nm, "NOTIFY_SOCKET"))
			continue;
		if (env_set(&s->envp, &n, nm, eq + 1) == -1)
			goto oom;
	}
	json_object_foreach(s->t->env, name, val) {
		if (!(text = template_expand(s->t, json_string_value(val), v, err)))
			return -1;
		if (env_set(&s->envp, &n, name, text) == -1) {
			free(text);
			goto oom;
		}
		free(text);
	}
	json_object_foreach(s->client_env, name, val)
		if (env_set(&s->envp, &n, name, json_string_value(val)) == -1)
			goto oom;
	snprintf(value, sizeof value, "%s", s->tree.marker + strlen(PROC_MARKER) + 1);
	if (env_set(&s->envp, &n, PROC_MARKER, value) == -1)
		goto oom;
	if (!(s->probe_envp = calloc(n + 1, sizeof *s->probe_envp)))
		goto oom;
	for (size_t i = 0; i < n; i++)
		s->probe_envp[k++] = s->envp[i];
	if (s->t->socket_handoff) {
		size_t used = 0;
		snprintf(value, sizeof value, "%zu", s->t->nports);
		if (env_set(&s->envp, &n, "LISTEN_FDS", value) == -1)
			goto oom;
		value[0] = '\0';
		for (size_t i = 0; i < s->t->nports && used < sizeof value; i++)
			used += (size_t)snprintf(value + used, sizeof value - used, "%s%s", i ? ":" : "",
			    s->t->ports[i]);
		if (env_set(&s->envp, &n, "LISTEN_FDNAMES", value) == -1)
			goto oom;
	}
	return 0;
oom:
	error_set(err, ERR_INTERNAL, "out of memory");
	return -1;
}

static void
free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Binds and listens on 127.0.0.1:port for socket handoff. Returns the fd or -1. */
static int
listener(struct server *s, uint16_t port, struct fxb_error *err)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, (struct sockaddr *)&a, sizeof a) == -1 || listen(fd, SOMAXCONN) == -1) {
		error_set_data(err, ERR_SERVER_START_FAILED, json_pack("{s:s, s:s, s:i}", "fixture",
		    s->f->name, "stage", "socket_handoff", "port", port),
		    "fixtures.%s: socket handoff: cannot listen on 127.0.0.1:%u: %s", s->f->name,
		    (unsigned)port, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

/* Expands every command of t for v: the server's argv, cwd and the exec probes'. */
static int
expand_all(struct server *s, const struct expand_vars *v, char ***argv, char **cwd,
    char ****exec_argv, struct fxb_error *err)
{
	const struct server_template *t = s->t;
	size_t n = 0;

	while (t->argv[n])
		n++;
	if (!(*argv = calloc(n + 1, sizeof **argv)) ||
	    (t->nprobes && !(*exec_argv = calloc(t->nprobes, sizeof **exec_argv)))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (!((*argv)[i] = template_expand(t, t->argv[i], v, err)))
			return -1;
	if (t->cwd && !(*cwd = template_expand(t, t->cwd, v, err)))
		return -1;
	for (size_t p = 0; p < t->nprobes; p++) {
		char **src = t->probes[p].argv;
		size_t m = 0;
		if (!src)
			continue;
		while (src[m])
			m++;
		if (!((*exec_argv)[p] = calloc(m + 1, sizeof ***exec_argv))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < m; i++)
			if (!((*exec_argv)[p][i] = template_expand(t, src[i], v, err)))
				return -1;
	}
	return 0;
}

static int
open_log_file(struct server *s)
{
	char dir[PATH_MAX + 8];

	snprintf(dir, sizeof dir, "%s/logs", s->b->cfg.state_dir);
	if ((size_t)snprintf(s->log_path, sizeof s->log_path, "%s/%s-%s-%s.log", dir, s->b->instance,
	    s->f->lease->lid, s->f->name) >= sizeof s->log_path || mkdir_p(dir) == -1 ||
	    (s->log_fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("server %s: cannot open a log file in %s", s->f->name, dir);
		return -1;
	}
	return 0;
}

static int
server_start(struct broker *b, struct fixture *f, struct fxb_error *err)
{
	struct server *s = server_of(f);
	const struct server_template *t = s->t;
	struct expand_vars v = { f->lease->lid, f->name, f->ports, NULL };
	int listen_fds[PROC_MAX_PASS], rc = -1;
	char **argv = NULL, *cwd = NULL, ***exec_argv = NULL, cgname[128];
	size_t nlisten = 0;
	struct proc_spec spec;
	struct proc_child c = { -1, -1, -1 };
	const char *sub;
	json_t *need;

	s->f = f;
	s->started_ms = now_ms();
	if (!(v.fixtures = json_object()))
		goto oom;
	json_object_foreach(t->needs, sub, need) {
		struct fixture *d = fixture_dep(f, sub);
		if (d && d->fields)
			json_object_set(v.fixtures, sub, d->fields);
	}
	snprintf(s->tree.marker, sizeof s->tree.marker, PROC_MARKER "=%s:%s:%s", b->instance,
	    f->lease->lid, f->name);
	if (expand_all(s, &v, &argv, &cwd, &exec_argv, err) == -1 || build_env(s, &v, err) == -1)
		goto done;
	if (ring_init(&s->out.ring, t->log_bytes) == -1 || ring_init(&s->err.ring, t->log_bytes) == -1 ||
	    ring_init(&s->tail, TAIL_BYTES) == -1)
		goto oom;
	s->out.s = s->err.s = s;
	s->out.which = STREAM_STDOUT;
	s->err.which = STREAM_STDERR;
	if (t->log_file)
		open_log_file(s);
	if (t->cgroup && cgroups_available(procs_cgroups(b->procs))) {
		snprintf(cgname, sizeof cgname, "%s-%s", f->lease->lid, f->name);
		if (cgroup_create(procs_cgroups(b->procs), cgname, s->tree.cgroup,
		    sizeof s->tree.cgroup) == -1) {
			log_warn("server %s: no cgroup of its own", f->name);
			s->tree.cgroup[0] = '\0';
		}
	}
	for (size_t i = 0; t->socket_handoff && i < t->nports; i++) {
		if ((listen_fds[nlisten] = listener(s, f->ports[i], err)) == -1)
			goto done;
		nlisten++;
	}
	memset(&spec, 0, sizeof spec);
	spec.file = argv[0];
	spec.argv = argv;
	spec.envp = s->envp;
	spec.cwd = cwd;
	spec.pass_fds = listen_fds;
	spec.npass = nlisten;
	spec.listen_pid = t->socket_handoff;
	spec.cgroup = s->tree.cgroup[0] ? s->tree.cgroup : NULL;
	spec.capture = 1;
	spec.err_code = ERR_SERVER_START_FAILED;
	if (proc_spawn(b->procs, &spec, &c, err) == -1) {
		char text[sizeof err->text];
		if ((size_t)snprintf(text, sizeof text, "fixtures.%s: %s", f->name, err->text) >= sizeof text)
			text[sizeof text - 2] = '.'; /* cut short */
		memcpy(err->text, text, sizeof text);
		if (err->data) {
			json_object_set_new(err->data, "fixture", json_string(f->name));
			json_object_set_new(err->data, "template", json_string(t->name));
		}
		if (s->tree.cgroup[0])
			cgroup_remove(s->tree.cgroup);
		s->tree.cgroup[0] = '\0';
		log_info("server %s of lease %s: %s", f->name, f->lease->lid, text);
		goto done;
	}
	s->spawned = 1;
	s->tree.leader = c.pid;
	s->tree.leader_alive = 1;
	proc_tree_begin(b->procs, &s->tree);
	if (proc_watch(b->procs, c.pid, leader_exited, s) == -1)
		goto oom;
	s->out.w = fdwatch_new(b, c.out_fd, stream_event, &s->out);
	s->err.w = fdwatch_new(b, c.err_fd, stream_event, &s->err);
	c.out_fd = c.err_fd = -1;
	if (!s->out.w || !s->err.w)
		goto oom;
	log_info("server %s of lease %s: started %s (pid %ld%s%s), ports %u%s", f->name,
	    f->lease->lid, argv[0], (long)c.pid, s->tree.cgroup[0] ? ", cgroup " : "",
	    s->tree.cgroup[0] ? s->tree.cgroup : "", f->nports ? (unsigned)f->ports[0] : 0,
	    f->nports > 1 ? "..." : "");
	if (!(s->probes = probes_new(b, t, f->ports, exec_argv, s->probe_envp, probe_changed, s)))
		goto oom;
	if (t->nprobes == 0) {
		probes_free(s->probes);
		s->probes = NULL;
		s->ready = 1;
		if (!(f->fields = fields(s)))
			goto oom;
		rc = 0;
		goto done;
	}
	s->interval_ms = POLL_FIRST_MS;
	schedule_tick(s, 0);
	lws_sul_schedule(b->ctx, 0, &s->deadline, start_timed_out,
	    (lws_usec_t)t->start_timeout_ms * LWS_US_PER_MS);
	rc = 1;
	goto done;
oom:
	error_set(err, ERR_INTERNAL, "out of memory");
done:
	for (size_t i = 0; i < nlisten; i++)
		close(listen_fds[i]); /* the child has them now */
	if (c.out_fd != -1)
		close(c.out_fd);
	if (c.err_fd != -1)
		close(c.err_fd);
	free_strv(argv);
	free(cwd);
	for (size_t p = 0; exec_argv && p < t->nprobes; p++)
		free_strv(exec_argv[p]);
	free(exec_argv);
	json_decref(v.fixtures);
	return rc;
}

static void
server_free(struct fixture *f)
{
	struct server *s = server_of(f);

	if (!s)
		return;
	if (s->b && s->b->ctx) {
		lws_sul_cancel(&s->tick);
		lws_sul_cancel(&s->deadline);
	}
	if (s->spawned) {
		/* Only when the broker gives up on a tree at exit: procs_free() kills it. */
		proc_unwatch(s->b->procs, s->tree.leader);
		proc_tree_end(s->b->procs, &s->tree);
	}
	probes_free(s->probes);
	fdwatch_free(s->out.w);
	fdwatch_free(s->err.w);
	ring_close(&s->out.ring);
	ring_close(&s->err.ring);
	ring_close(&s->tail);
	if (s->log_fd != -1)
		close(s->log_fd);
	free(s->probe_envp);
	free_strv(s->envp);
	json_decref(s->client_env);
	free(s);
	f->data = NULL;
}

const struct fixture_kind server_kind = {
	.name = "server",
	.parse = server_parse,
	.start = server_start,
	.stop = server_stop,
	.free = server_free,
};

/* ---- the module ---- */

struct servers *
servers_new(struct broker *b, json_t *section, struct fxb_error *err)
{
	struct servers *sv = calloc(1, sizeof *sv);

	if (!sv) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	sv->b = b;
	if (!(sv->templates = templates_new(section, err))) {
		free(sv);
		return NULL;
	}
	return sv;
}

void
servers_free(struct servers *sv)
{
	if (!sv)
		return;
	templates_free(sv->templates);
	free(sv);
}

json_t *
servers_logs(struct broker *b, struct session *s, const char *lid, const char *fixture,
    json_int_t tail, struct fxb_error *err)
{
	struct lease *l = lease_find(b, lid);
	struct fixture *f;
	struct server *srv;
	char *out, *errtext;
	size_t olen = 0, elen = 0;
	json_t *result;

	if (!l) {
		error_set(err, ERR_LEASE_NOT_FOUND, "lease %s: the broker holds no such lease", lid);
		return NULL;
	}
	if (l->session != s) {
		error_set(err, ERR_LEASE_NOT_OWNED, "lease %s belongs to another session", lid);
		return NULL;
	}
	if (!(f = lease_fixture(l, fixture))) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: fixture: lease %s has no fixture \"%.64s\"",
		    lid, fixture);
		return NULL;
	}
	if (f->kind != &server_kind) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: fixture: %s is a %s fixture, not a server",
		    f->name, f->kind->name);
		return NULL;
	}
	if (tail < 0) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: tail: expected 0 or more lines");
		return NULL;
	}
	srv = server_of(f);
	out = ring_tail(&srv->out.ring, (size_t)tail, &olen);
	errtext = ring_tail(&srv->err.ring, (size_t)tail, &elen);
	result = out && errtext ? json_pack("{s:o, s:o}", "stdout", text_json(out, olen), "stderr",
	    text_json(errtext, elen)) : NULL;
	free(out);
	free(errtext);
	if (!result)
		error_set(err, ERR_INTERNAL, "out of memory");
	return result;
}
