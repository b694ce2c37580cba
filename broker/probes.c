/* probes.c: readiness probes driven by the owner's timer and by output (see probes.h).
 *
 * tcp: a non-blocking connect to 127.0.0.1:port; on loopback it completes (or is refused)
 * by the time poll() with a zero timeout looks, else the next tick looks again.
 * http: the same connect, then "METHOD path HTTP/1.0" is sent (it fits in the socket
 * buffer) and the socket is handed to the loop (fdwatch) until the status line arrives.
 * log: every line of the chosen streams is matched with regexec() and counted from the
 * process's start. exec: a command run through proc.c, passing when it exits 0, at most
 * one run at a time and one start every EXEC_SPACING_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "fdwatch.h"
#include "log.h"
#include "probes.h"
#include "proc.h"
#include "template.h"

#define EXEC_SPACING_MS 100

enum attempt { IDLE, CONNECTING, READING, RUNNING };

struct probe {
	struct probes *set;
	const struct probe_def *def;
	int passed;
	unsigned attempts;
	int matches;       /* log */
	char last[160];    /* the last attempt's outcome */
	enum attempt state;
	uint64_t began_ms; /* of the attempt in flight */
	int fd;            /* CONNECTING */
	struct fdwatch *w; /* READING */
	char reply[256];
	size_t reply_len;
	pid_t pid;         /* exec: RUNNING */
	char **argv;       /* exec */
};

struct probes {
	struct broker *b;
	struct probe *p;
	size_t n;
	const uint16_t *ports;
	char *const *envp;
	probes_changed_fn changed;
	void *arg;
};

static void
note(struct probe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(struct probe *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last, sizeof p->last, fmt, ap);
	va_end(ap);
}

static void
pass(struct probe *p)
{
	p->passed = 1;
	p->state = IDLE;
}

struct probes *
probes_new(struct broker *b, const struct server_template *t, const uint16_t *ports,
    char ***exec_argv, char *const *envp, probes_changed_fn changed, void *arg)
{
	struct probes *ps = calloc(1, sizeof *ps);

	if (!ps || (t->nprobes && !(ps->p = calloc(t->nprobes, sizeof *ps->p)))) {
		free(ps);
		return NULL;
	}
	ps->b = b;
	ps->n = t->nprobes;
	ps->ports = ports;
	ps->envp = envp;
	ps->changed = changed;
	ps->arg = arg;
	for (size_t i = 0; i < ps->n; i++) {
		ps->p[i].set = ps;
		ps->p[i].def = &t->probes[i];
		ps->p[i].fd = -1;
		ps->p[i].argv = exec_argv ? exec_argv[i] : NULL;
		if (exec_argv)
			exec_argv[i] = NULL;
		snprintf(ps->p[i].last, sizeof ps->p[i].last, "not tried yet");
	}
	return ps;
}

/* Ends whatever attempt p has in flight. */
static void
abort_attempt(struct probe *p)
{
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
	fdwatch_free(p->w);
	p->w = NULL;
	if (p->state == RUNNING && p->pid > 0) {
		proc_unwatch(p->set->b->procs, p->pid);
		kill(-p->pid, SIGKILL);
		p->pid = 0;
	}
	p->state = IDLE;
}

void
probes_free(struct probes *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++) {
		abort_attempt(&ps->p[i]);
		for (size_t k = 0; ps->p[i].argv && ps->p[i].argv[k]; k++)
			free(ps->p[i].argv[k]);
		free(ps->p[i].argv);
	}
	free(ps->p);
	free(ps);
}

int
probes_passed(const struct probes *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!ps->p[i].passed)
			return 0;
	return 1;
}

json_t *
probes_json(const struct probes *ps)
{
	static const char *const types[] = { "tcp", "http", "log", "exec" };
	json_t *a = json_array();

	for (size_t i = 0; a && i < ps->n; i++) {
		const struct probe *p = &ps->p[i];
		json_t *o = json_pack("{s:s, s:b, s:I, s:s}", "type", types[p->def->type],
		    "passed", p->passed, "attempts", (json_int_t)p->attempts, "last", p->last);

		if (o && p->def->type == PROBE_LOG)
			json_object_set_new(o, "matches", json_pack("{s:i, s:i}", "seen", p->matches,
			    "needed", p->def->count));
		if (o && p->def->type == PROBE_HTTP)
			json_object_set_new(o, "path", json_string(p->def->path));
		if (o && (p->def->type == PROBE_HTTP || p->def->type == PROBE_TCP))
			json_object_set_new(o, "port", json_integer(ps->ports[p->def->port]));
		json_array_append_new(a, o);
	}
	return a;
}

/* ---- tcp and http ---- */

/* Starts a connect to the probe's port. Returns 0 (connecting or connected, p->fd set) or
 * -1 (refused at once; noted). */
static int
connect_start(struct probe *p)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd == -1) {
		note(p, "socket: %s", strerror(errno));
		return -1;
	}
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(p->set->ports[p->def->port]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1 && errno != EINPROGRESS) {
		note(p, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	p->fd = fd;
	p->state = CONNECTING;
	p->began_ms = now_ms();
	return 0;
}

/* Looks at a connect in flight. Returns 1 when connected, 0 while pending, -1 when it
 * failed (noted, socket closed). */
static int
connect_check(struct probe *p)
{
	struct pollfd pfd = { p->fd, POLLOUT, 0 };
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (poll(&pfd, 1, 0) == 0) {
		if (now_ms() - p->began_ms < (uint64_t)(p->def->timeout_ms ? p->def->timeout_ms : 2000))
			return 0;
		note(p, "connect: no answer in %d ms", p->def->timeout_ms ? p->def->timeout_ms : 2000);
	} else if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
		return 1;
	} else {
		note(p, "connect: %s", strerror(soerr ? soerr : errno));
	}
	close(p->fd);
	p->fd = -1;
	p->state = IDLE;
	return -1;
}

/* Parses what an http probe has received. Returns 1 when it decided (passed or noted). */
static int
http_verdict(struct probe *p, int eof)
{
	int minor, status;
	char *eol;

	p->reply[p->reply_len] = '\0';
	eol = strstr(p->reply, "\r\n");
	if (!eol && !eof && p->reply_len < sizeof p->reply - 1)
		return 0;
	if (sscanf(p->reply, "HTTP/1.%d %d", &minor, &status) != 2) {
		note(p, p->reply_len ? "not an HTTP reply: \"%.40s\"" : "the connection closed without a reply",
		    p->reply);
		return 1;
	}
	if (status == p->def->status) {
		note(p, "%s %s: %d", p->def->method, p->def->path, status);
		pass(p);
	} else {
		note(p, "%s %s: %d, expected %d", p->def->method, p->def->path, status, p->def->status);
	}
	return 1;
}

static int
http_readable(void *arg, int fd, enum fdwatch_event ev)
{
	struct probe *p = arg;
	int decided = 0;
	ssize_t n;

	if (ev == FDWATCH_CLOSED) {
		p->w = NULL;
		if (p->state == READING) {
			http_verdict(p, 1);
			p->state = IDLE;
		}
		return 0;
	}
	while (!decided && (n = read(fd, p->reply + p->reply_len, sizeof p->reply - 1 - p->reply_len)) > 0) {
		p->reply_len += (size_t)n;
		decided = http_verdict(p, 0);
	}
	if (!decided && n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (!decided)
		http_verdict(p, 1);
	fdwatch_free(p->w);
	p->w = NULL;
	if (p->state == READING)
		p->state = IDLE;
	if (p->passed && p->set->changed)
		p->set->changed(p->set->arg);
	return -1;
}

/* Sends the request on the connected socket and hands it to the loop. */
static void
http_send(struct probe *p)
{
	char req[512];
	int len = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n"
	    "User-Agent: fixture-broker-probe\r\nConnection: close\r\n\r\n", p->def->method,
	    p->def->path, (unsigned)p->set->ports[p->def->port]);
	int fd = p->fd;

	p->fd = -1;
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
		note(p, "send: %s", strerror(errno));
		close(fd);
		p->state = IDLE;
		return;
	}
	p->reply_len = 0;
	p->state = READING;
	if (!(p->w = fdwatch_new(p->set->b, fd, http_readable, p))) {
		note(p, "cannot watch the probe's socket");
		p->state = IDLE;
	}
}

static void
tick_socket(struct probe *p)
{
	int rc;

	if (p->state == READING) {
		if (now_ms() - p->began_ms >= (uint64_t)p->def->timeout_ms) {
			note(p, "%s %s: no reply in %d ms", p->def->method, p->def->path, p->def->timeout_ms);
			abort_attempt(p);
		}
		return;
	}
	if (p->state == IDLE) {
		p->attempts++;
		if (connect_start(p) == -1)
			return;
	}
	if ((rc = connect_check(p)) != 1)
		return;
	if (p->def->type == PROBE_TCP) {
		close(p->fd);
		p->fd = -1;
		note(p, "connected to 127.0.0.1:%u", (unsigned)p->set->ports[p->def->port]);
		pass(p);
		return;
	}
	http_send(p);
}

/* ---- exec ---- */

static void
exec_exited(void *arg, pid_t pid, int st)
{
	struct probe *p = arg;

	(void)pid;
	p->pid = 0;
	p->state = IDLE;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		note(p, "exited 0");
		pass(p);
		if (p->set->changed)
			p->set->changed(p->set->arg);
	} else if (WIFEXITED(st)) {
		note(p, "exited %d", WEXITSTATUS(st));
	} else if (WIFSIGNALED(st)) {
		note(p, "killed by %s%s", proc_signal_name(WTERMSIG(st)),
		    WTERMSIG(st) == SIGKILL ? " (timeout?)" : "");
	}
}

static void
tick_exec(struct probe *p)
{
	struct proc_spec spec;
	struct proc_child c;
	struct fxb_error err = { 0 };

	if (p->state == RUNNING) {
		if (now_ms() - p->began_ms >= (uint64_t)p->def->timeout_ms) {
			note(p, "still running after %d ms: killed", p->def->timeout_ms);
			kill(-p->pid, SIGKILL);
		}
		return;
	}
	if (p->attempts && now_ms() - p->began_ms < EXEC_SPACING_MS)
		return;
	memset(&spec, 0, sizeof spec);
	spec.file = p->argv[0];
	spec.argv = p->argv;
	spec.envp = p->set->envp;
	spec.err_code = ERR_INTERNAL;
	p->attempts++;
	p->began_ms = now_ms();
	if (proc_spawn(p->set->b->procs, &spec, &c, &err) == -1) {
		note(p, "%s", err.text);
		error_clear(&err);
		return;
	}
	if (proc_watch(p->set->b->procs, c.pid, exec_exited, p) == -1) {
		kill(-c.pid, SIGKILL);
		note(p, "out of memory");
		return;
	}
	p->pid = c.pid;
	p->state = RUNNING;
}

void
probes_tick(struct probes *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct probe *p = &ps->p[i];

		if (p->passed)
			continue;
		switch (p->def->type) {
		case PROBE_TCP:
		case PROBE_HTTP:
			tick_socket(p);
			break;
		case PROBE_EXEC:
			tick_exec(p);
			break;
		case PROBE_LOG:
			break;
		}
	}
}

void
probes_log_line(struct probes *ps, int stream, const char *line, size_t len)
{
	(void)len;
	for (size_t i = 0; i < ps->n; i++) {
		struct probe *p = &ps->p[i];

		if (p->def->type != PROBE_LOG || p->passed || !(p->def->streams & stream))
			continue;
		if (regexec(&p->def->re, line, 0, NULL, 0) != 0)
			continue;
		p->matches++;
		p->attempts = (unsigned)p->matches;
		note(p, "matched %d of %d: \"%.100s\"", p->matches, p->def->count, line);
		if (p->matches >= p->def->count)
			pass(p);
	}
}
