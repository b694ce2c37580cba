/* portserver.c: portpicker's portserver protocol on a Unix socket (see portserver.h).
 *
 * The listening socket and each request's connection are watched on the loop (fdwatch).
 * A request is at most 20 digits and a newline, read within REQUEST_TIMEOUT_MS; at most
 * MAX_REQUESTS are read at once (more are closed unanswered), so a client that says
 * nothing costs a slot for a few seconds and no more. A request is translated into a
 * JSON-RPC lease.acquire of one port, with wait_ms 0, on the session of its process:
 * the same code path as a WebSocket client's, so the pool, its checks and its counters
 * are shared. A process's session ends when the process is gone or holds no lease any
 * more (a sweep every SWEEP_MS), and when the broker shuts down (ws_close_all).
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "core/log.h"
#include "lease/session.h"
#include "net/fdwatch.h"
#include "net/portserver.h"
#include "rpc/rpc.h"

#define MAX_REQUESTS 64
#define REQUEST_TIMEOUT_MS 5000
#define SWEEP_MS 1000

/* One process that holds ports: a session of its own. */
struct ps_process {
	struct portserver *ps;
	struct ps_process *next, *prev;
	pid_t pid;
	unsigned long long start; /* /proc/PID/stat field 22: when the process started */
	struct session *s;
};

/* One request under way. */
struct ps_request {
	struct portserver *ps;
	struct ps_request *next, *prev;
	struct fdwatch *w;
	char buf[24];
	size_t len;
	lws_sorted_usec_list_t deadline;
};

struct portserver {
	struct broker *b;
	struct fdwatch *listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* to unlink; "" when abstract */
	struct ps_process *processes;
	struct ps_request *requests;
	size_t nrequests;
	lws_sorted_usec_list_t sweep;
	int sweep_armed;
};

/* The start time of pid, from /proc/PID/stat. Returns 0, or -1 when there is no such
 * process (or it cannot be read). */
static int
process_start(pid_t pid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;
	int field;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: count from its end. */
	if (!(p = strrchr(buf, ')')))
		return -1;
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || !isdigit((unsigned char)*p))
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static void
process_free(struct ps_process *pr)
{
	struct portserver *ps = pr->ps;

	if (pr->prev)
		pr->prev->next = pr->next;
	else
		ps->processes = pr->next;
	if (pr->next)
		pr->next->prev = pr->prev;
	free(pr);
}

/* The session's io: replies come back from rpc_handle() at once (a port lease never
 * waits here), so nothing is sent later; a closed session frees its process. */
static void
process_send(void *conn, char *text, size_t len)
{
	(void)conn;
	(void)len;
	free(text);
}

static void
process_disown(void *conn, int code, const char *reason)
{
	(void)code;
	(void)reason;
	process_free(conn);
}

static const struct session_io process_io = { process_send, process_disown };

static void sweep(lws_sorted_usec_list_t *sul);

static void
arm_sweep(struct portserver *ps)
{
	if (ps->sweep_armed || !ps->processes)
		return;
	ps->sweep_armed = 1;
	lws_sul_schedule(ps->b->ctx, 0, &ps->sweep, sweep, (lws_usec_t)SWEEP_MS * LWS_US_PER_MS);
}

/* Ends the sessions of processes that are gone (or were replaced under the same PID) or
 * hold no lease any more (their TTLs ran out). */
static void
sweep(lws_sorted_usec_list_t *sul)
{
	struct portserver *ps = lws_container_of(sul, struct portserver, sweep);
	struct ps_process *pr, *next;
	unsigned long long start;

	ps->sweep_armed = 0;
	for (pr = ps->processes; pr; pr = next) {
		next = pr->next;
		if (process_start(pr->pid, &start) == -1 || start != pr->start)
			session_close(ps->b, pr->s, "its process exited");
		else if (pr->s->lease_count == 0)
			session_close(ps->b, pr->s, "its process holds no port any more");
	}
	arm_sweep(ps);
}

/* The process pid started at start: known already, or a new session. NULL when out of
 * memory. A process of the same PID that started earlier is gone: its session ends. */
static struct ps_process *
process_get(struct portserver *ps, pid_t pid, unsigned long long start)
{
	struct ps_process *pr;

	for (pr = ps->processes; pr; pr = pr->next) {
		if (pr->pid != pid)
			continue;
		if (pr->start == start)
			return pr;
		session_close(ps->b, pr->s, "its PID now belongs to another process");
		break;
	}
	if (!(pr = calloc(1, sizeof *pr)))
		return NULL;
	if (!(pr->s = session_new(ps->b, pr, &process_io))) {
		free(pr);
		return NULL;
	}
	pr->ps = ps;
	pr->pid = pid;
	pr->start = start;
	pr->s->peer.authenticated = 1; /* the socket is the trust boundary (portserver.h) */
	snprintf(pr->s->client, sizeof pr->s->client, "portserver pid %d", (int)pid);
	pr->next = ps->processes;
	if (ps->processes)
		ps->processes->prev = pr;
	ps->processes = pr;
	arm_sweep(ps);
	return pr;
}

/* Leases one port to pr through the JSON-RPC layer. Returns the port, or 0 (logged). */
static int
lease_port(struct portserver *ps, struct ps_process *pr)
{
	const struct config *cfg = &ps->b->cfg;
	char text[320], ttl[32] = "";
	char *reply;
	json_t *msg, *port;
	int n = 0;

	if (cfg->portserver_ttl_ms > 0)
		snprintf(ttl, sizeof ttl, ",\"ttl_ms\":%d", cfg->portserver_ttl_ms);
	snprintf(text, sizeof text, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"lease.acquire\","
	    "\"params\":{\"fixtures\":{\"port\":{\"kind\":\"port\"}},\"wait_ms\":0%s,"
	    "\"labels\":{\"portserver_pid\":\"%d\"}}}", ttl, (int)pr->pid);
	if (!(reply = rpc_handle(ps->b, &pr->s->peer, text, strlen(text))))
		return 0;
	msg = json_loads(reply, 0, NULL);
	port = json_object_get(json_object_get(json_object_get(json_object_get(msg, "result"),
	    "fixtures"), "port"), "port");
	if (json_is_integer(port))
		n = (int)json_integer_value(port);
	else
		log_warnx("no port for pid %d: %s", (int)pr->pid, reply);
	json_decref(msg);
	free(reply);
	return n;
}

/* Serves a whole request (the text before its newline) on fd. Any refusal is answered,
 * as portserver does, by closing the connection without a word. */
static void
serve(struct portserver *ps, int fd, const char *text)
{
	struct ps_process *pr;
	unsigned long long start;
	char *end, out[16];
	long pid = strtol(text, &end, 10);
	int port, n;

	if (end == text || (*end && strcmp(end, "\r")) || pid <= 1 || pid > 0x7fffffffL) {
		log_info("portserver: refused a request for pid \"%.20s\"", text);
		return;
	}
	if (process_start((pid_t)pid, &start) == -1) {
		log_info("portserver: refused a request for pid %ld: no such process", pid);
		return;
	}
	if (!(pr = process_get(ps, (pid_t)pid, start))) {
		log_warnx("portserver: out of memory");
		return;
	}
	if (!(port = lease_port(ps, pr))) {
		if (pr->s->lease_count == 0)
			session_close(ps->b, pr->s, "its only request failed");
		return;
	}
	n = snprintf(out, sizeof out, "%d\n", port);
	if (write(fd, out, (size_t)n) != n)
		log_warn("portserver: the answer to pid %ld (port %d) was not sent", pid, port);
	log_debug("portserver: port %d to pid %ld", port, pid);
}

static void
request_free(struct ps_request *r)
{
	struct portserver *ps = r->ps;

	lws_sul_cancel(&r->deadline);
	if (r->prev)
		r->prev->next = r->next;
	else
		ps->requests = r->next;
	if (r->next)
		r->next->prev = r->prev;
	ps->nrequests--;
	free(r);
}

static void
request_expired(lws_sorted_usec_list_t *sul)
{
	struct ps_request *r = lws_container_of(sul, struct ps_request, deadline);

	fdwatch_free(r->w);
	request_free(r);
}

/* Reads a request; serves it once its newline arrives. Returns -1 to close. */
static int
on_request(void *arg, int fd, enum fdwatch_event ev)
{
	struct ps_request *r = arg;
	char *nl;
	ssize_t n;

	if (ev == FDWATCH_CLOSED) {
		request_free(r);
		return 0;
	}
	for (;;) {
		n = read(fd, r->buf + r->len, sizeof r->buf - 1 - r->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1; /* closed before a whole request, or an error */
		r->len += (size_t)n;
		r->buf[r->len] = '\0';
		if ((nl = memchr(r->buf, '\n', r->len))) {
			*nl = '\0';
			serve(r->ps, fd, r->buf);
			return -1;
		}
		if (r->len == sizeof r->buf - 1)
			return -1; /* more than a PID: portserver refuses over 20 characters too */
	}
}

static void
accept_requests(struct portserver *ps, int lfd)
{
	struct ps_request *r;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		if (ps->nrequests >= MAX_REQUESTS || !(r = calloc(1, sizeof *r))) {
			close(fd);
			continue;
		}
		r->ps = ps;
		if (!(r->w = fdwatch_new(ps->b, fd, on_request, r))) {
			free(r);
			continue;
		}
		r->next = ps->requests;
		if (ps->requests)
			ps->requests->prev = r;
		ps->requests = r;
		ps->nrequests++;
		lws_sul_schedule(ps->b->ctx, 0, &r->deadline, request_expired,
		    (lws_usec_t)REQUEST_TIMEOUT_MS * LWS_US_PER_MS);
	}
}

static int
on_listener(void *arg, int fd, enum fdwatch_event ev)
{
	struct portserver *ps = arg;

	if (ev == FDWATCH_CLOSED) {
		ps->listener = NULL;
		return 0;
	}
	accept_requests(ps, fd);
	return 0;
}

/* A listening socket for name ("@x": abstract). Returns it, or -1 with err set. */
static int
listen_on(struct portserver *ps, const char *name, struct fxb_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	socklen_t len;
	struct stat st;
	int fd;

	if (n < 2 || n >= sizeof sa.sun_path) {
		error_set(err, ERR_INVALID_PARAMS, "portserver.socket: expected a path or @name of "
		    "at most %zu bytes", sizeof sa.sun_path - 1);
		return -1;
	}
	if (name[0] == '@') {
		memcpy(sa.sun_path + 1, name + 1, n - 1); /* sun_path[0] = '\0': abstract */
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		memcpy(sa.sun_path, name, n);
		len = (socklen_t)sizeof sa;
		/* A socket left by an earlier run would make bind fail; nothing else is removed. */
		if (lstat(name, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(name);
		memcpy(ps->path, name, n + 1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)&sa, len) == -1 || listen(fd, MAX_REQUESTS) == -1) {
		error_set(err, ERR_INTERNAL, "portserver.socket: cannot listen on %s: %s", name,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		ps->path[0] = '\0';
		return -1;
	}
	return fd;
}

struct portserver *
portserver_new(struct broker *b, struct fxb_error *err)
{
	struct portserver *ps = calloc(1, sizeof *ps);
	int fd;

	if (!ps) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	ps->b = b;
	if ((fd = listen_on(ps, b->cfg.portserver_socket, err)) == -1) {
		free(ps);
		return NULL;
	}
	if (!(ps->listener = fdwatch_new(b, fd, on_listener, ps))) {
		error_set(err, ERR_INTERNAL, "portserver.socket: the loop cannot watch it");
		portserver_free(ps);
		return NULL;
	}
	if (b->need_token)
		log_warnx("portserver on %s: it takes no token; anyone who can reach the socket "
		    "may lease ports", b->cfg.portserver_socket);
	else
		log_info("portserver on %s", b->cfg.portserver_socket);
	return ps;
}

void
portserver_free(struct portserver *ps)
{
	if (!ps)
		return;
	if (ps->sweep_armed)
		lws_sul_cancel(&ps->sweep);
	while (ps->requests) {
		fdwatch_free(ps->requests->w);
		request_free(ps->requests);
	}
	fdwatch_free(ps->listener);
	if (ps->path[0])
		unlink(ps->path);
	free(ps);
}
