/* ws.c: the libwebsockets side: WebSocket sessions, the HTTP routes, signals, the loop.
 *
 * One lws context, one vhost, three protocols: "http" (GET /healthz, /metrics, /status;
 * protocols[0], where requests that are not upgrades land), the WebSocket protocol
 * fixture-broker.v1 (also the default for clients that name none), and "ctl" for the
 * signalfd adopted as a raw file. A connection's per-session data is struct conn: the
 * reassembly buffer, the reply queue, and the session it carries. Replies go out one
 * lws_write per writeable callback. On close the session is detached (grace period),
 * never freed here.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "api/metrics.h"
#include "broker.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/auth.h"
#include "net/fdwatch.h"
#include "net/ws.h"
#include "proc/proc.h"
#include "rpc/rpc.h"
#include "run.h"

#define TX_CHUNK (64 * 1024)
#define TX_HIGH_WATER 64 /* queued replies before we stop reading from the client */
#define SHUTDOWN_DEADLINE_S 3

struct msg {
	struct msg *next;
	size_t len, off;
	unsigned char buf[]; /* LWS_PRE + len */
};

struct conn {
	struct broker *b;
	struct lws *wsi;
	struct session *s;
	char *rx;
	size_t rx_len, rx_cap;
	struct msg *head, *tail;
	size_t queued;
	int throttled;
	int closing, close_code;
	char close_reason[64];
};

struct http_req {
	unsigned char *body; /* LWS_PRE + len */
	size_t len, off;
};

static int
conn_close_from_callback(struct conn *c, int code, const char *reason)
{
	lws_close_reason(c->wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
	return -1;
}

/* Closes c later, from its own writeable callback, after flushing what is queued. */
static void
conn_close_later(struct conn *c, int code, const char *reason)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	lws_callback_on_writable(c->wsi);
}

void
ws_conn_send(void *conn, char *text, size_t len)
{
	struct conn *c = conn;
	struct msg *m = malloc(sizeof *m + LWS_PRE + len);

	if (!m) {
		log_warnx("out of memory: a reply to session %s is lost", c->s ? c->s->sid : "-");
		free(text);
		return;
	}
	m->next = NULL;
	m->len = len;
	m->off = 0;
	memcpy(m->buf + LWS_PRE, text, len);
	free(text);
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
	if (++c->queued > TX_HIGH_WATER && !c->throttled) {
		c->throttled = 1;
		lws_rx_flow_control(c->wsi, 0);
	}
	lws_callback_on_writable(c->wsi);
}

void
ws_conn_disown(void *conn, int code, const char *reason)
{
	struct conn *c = conn;

	c->s = NULL;
	conn_close_later(c, code, reason);
}

static const struct session_io conn_io = { ws_conn_send, ws_conn_disown };

static void
conn_free_buffers(struct conn *c)
{
	struct msg *m, *next;

	for (m = c->head; m; m = next) {
		next = m->next;
		free(m);
	}
	free(c->rx);
	c->head = c->tail = NULL;
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
}

static void
dispatch(struct conn *c, const char *text, size_t len)
{
	char *reply;

	if (!c->s || c->closing)
		return;
	reply = rpc_handle(c->b, &c->s->peer, text, len);
	if (reply)
		ws_conn_send(c, reply, strlen(reply));
}

static int
on_receive(struct conn *c, const char *in, size_t len)
{
	size_t cap = c->b->cfg.max_message_bytes;
	int whole = lws_is_final_fragment(c->wsi) && !lws_remaining_packet_payload(c->wsi);

	if (lws_frame_is_binary(c->wsi))
		return conn_close_from_callback(c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
		    "text frames only");
	if (c->rx_len + len > cap)
		return conn_close_from_callback(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
		    "message too large");
	/* The common case, a whole message in one callback, needs no copy. */
	if (whole && c->rx_len == 0) {
		dispatch(c, in, len);
		return 0;
	}
	if (c->rx_len + len > c->rx_cap) {
		size_t ncap = c->rx_cap ? c->rx_cap : 4096;
		char *grown;
		while (ncap < c->rx_len + len)
			ncap *= 2;
		if (!(grown = realloc(c->rx, ncap)))
			return conn_close_from_callback(c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
			    "out of memory");
		c->rx = grown;
		c->rx_cap = ncap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!whole)
		return 0;
	dispatch(c, c->rx, c->rx_len);
	/* Idle sessions keep no buffer: 10,000 of them must stay small. */
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
	return 0;
}

static int
on_writeable(struct conn *c)
{
	struct msg *m;
	size_t chunk;
	int flags;

	if (!(m = c->head)) {
		if (c->closing)
			return conn_close_from_callback(c, c->close_code, c->close_reason);
		return 0;
	}
	chunk = m->len - m->off < TX_CHUNK ? m->len - m->off : TX_CHUNK;
	flags = lws_write_ws_flags(LWS_WRITE_TEXT, m->off == 0, m->off + chunk == m->len);
	if (lws_write(c->wsi, m->buf + LWS_PRE + m->off, chunk, (enum lws_write_protocol)flags) <
	    (int)chunk)
		return -1;
	m->off += chunk;
	if (m->off == m->len) {
		c->head = m->next;
		if (!c->head)
			c->tail = NULL;
		free(m); /* no permessage-deflate, so lws needs nothing of it after the write */
		if (--c->queued <= TX_HIGH_WATER / 2 && c->throttled) {
			c->throttled = 0;
			lws_rx_flow_control(c->wsi, 1);
		}
	}
	if (c->head || c->closing)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Reads the bearer token of the upgrade request; 1 if present and valid, 0 if absent,
 * -1 if present and wrong. */
static int
bearer(struct broker *b, struct lws *wsi)
{
	char hdr[512];
	int n = lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n <= 0)
		return 0;
	if (strncasecmp(hdr, "Bearer ", 7) != 0)
		return -1;
	return auth_check(b->auth, hdr + 7) ? 1 : -1;
}

static int
cb_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		/* Refuse here, while an HTTP status can still be sent; later lws can only drop
		 * the TCP connection. */
		if (b->shutting_down) {
			lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down");
			return 1;
		}
		if (b->auth && bearer(b, wsi) == -1) {
			log_warnx("refused a connection: wrong bearer token");
			lws_return_http_status(wsi, HTTP_STATUS_UNAUTHORIZED, "wrong bearer token");
			return 1;
		}
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* cb_http has answered a refused upgrade already; this is the backstop. */
		if (b->shutting_down || (b->auth && bearer(b, wsi) == -1))
			return 1;
		break;
	case LWS_CALLBACK_ESTABLISHED:
		c->b = b;
		c->wsi = wsi;
		if (!(c->s = session_new(b, c, &conn_io))) {
			log_warnx("out of memory: refused a connection");
			return -1;
		}
		if (b->auth && bearer(b, wsi) == 1)
			c->s->peer.authenticated = 1;
		break;
	case LWS_CALLBACK_RECEIVE:
		return on_receive(c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(c);
	case LWS_CALLBACK_CLOSED:
		conn_free_buffers(c);
		if (c->s) {
			struct session *s = c->s;
			c->s = NULL;
			session_detach(b, s);
		}
		if (b->shutting_down && sessions_count(b->sessions) == 0)
			lws_cancel_service(b->ctx);
		break;
	default:
		break;
	}
	return 0;
}

static int
http_reply(struct lws *wsi, struct http_req *h, int status, const char *type, char *body,
    size_t len)
{
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
	    *end = hdr + sizeof hdr;

	if (!body)
		return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL) ? -1
		    : (lws_http_transaction_completed(wsi) ? -1 : 0);
	h->body = malloc(LWS_PRE + len);
	if (!h->body) {
		free(body);
		return -1;
	}
	memcpy(h->body + LWS_PRE, body, len);
	free(body);
	h->len = len;
	h->off = 0;
	if (lws_add_http_common_headers(wsi, (unsigned int)status, type, (lws_filepos_t)len, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
	    (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int
on_http(struct broker *b, struct lws *wsi, struct http_req *h, const char *path)
{
	char *body, method[16] = "";
	const char *uri;
	int ulen;
	size_t len;

	if (lws_http_get_uri_and_method(wsi, (char **)&uri, &ulen) >= 0)
		snprintf(method, sizeof method, "%s",
		    lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) ? "GET" : "OTHER");
	if (strcmp(method, "GET") != 0) {
		if (lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL))
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	if (!strcmp(path, "/healthz")) {
		int draining = b->shutting_down;
		body = strdup(draining ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ok\"}\n");
		return http_reply(wsi, h, draining ? 503 : 200, "application/json", body,
		    body ? strlen(body) : 0);
	}
	if (!strcmp(path, "/metrics")) {
		body = metrics_render(b, &len);
		return http_reply(wsi, h, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
	}
	if (!strcmp(path, "/status")) {
		json_t *st = metrics_status_json(b);
		body = st ? json_dumps(st, JSON_INDENT(2)) : NULL;
		json_decref(st);
		if (body) {
			char *nl = realloc(body, strlen(body) + 2);
			if (nl) {
				body = strcat(nl, "\n");
			}
		}
		return http_reply(wsi, h, 200, "application/json", body, body ? strlen(body) : 0);
	}
	if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct http_req *h = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(b, wsi, h, in);
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		size_t chunk;
		int final;

		if (!h || !h->body)
			break;
		chunk = h->len - h->off < TX_CHUNK ? h->len - h->off : TX_CHUNK;
		final = h->off + chunk == h->len;
		if (lws_write(wsi, h->body + LWS_PRE + h->off, chunk,
		    final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
			return -1;
		h->off += chunk;
		if (!final) {
			lws_callback_on_writable(wsi);
			break;
		}
		free(h->body);
		h->body = NULL;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
		if (h) {
			free(h->body);
			h->body = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int
cb_ctl(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct signalfd_siginfo si;

	(void)user;
	(void)in;
	(void)len;
	/* Broadcast to every protocol; this one is where worker threads' results land. */
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		if (b)
			broker_wake(b);
		return 0;
	}
	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	while (read(lws_get_socket_fd(wsi), &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD) {
			proc_reap(b->procs);
			continue;
		}
		if (run_signal(b, &si))
			continue; /* the command's; the broker stops once the command exits */
		if (b->shutting_down) {
			log_warnx("second signal (%s): stopping now", strsignal((int)si.ssi_signo));
			b->exit_status = 1;
			b->stopped = 1;
			lws_cancel_service(b->ctx);
			continue;
		}
		ws_shutdown(b, strsignal((int)si.ssi_signo));
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "http", cb_http, sizeof(struct http_req), 0, 0, NULL, 0 },
	/* lws keeps an rx buffer of this size per connection: small, so that thousands of idle
	 * sessions stay cheap; larger messages arrive in several callbacks. */
	{ WS_SUBPROTOCOL, cb_ws, sizeof(struct conn), 1024, 0, NULL, TX_CHUNK },
	{ "ctl", cb_ctl, 0, 0, 0, NULL, 0 },
	{ "fdwatch", fdwatch_callback, 0, 0, 0, NULL, 0 }, /* child pipes, probe sockets */
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

static const struct lws_protocol_vhost_options pvo_default = { NULL, NULL, "default", "1" };
static const struct lws_protocol_vhost_options pvo = { NULL, &pvo_default, WS_SUBPROTOCOL, "" };

static void
lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	log_at(level & LLL_ERR ? LOG_LEVEL_ERROR : level & LLL_WARN ? LOG_LEVEL_WARN
	    : LOG_LEVEL_DEBUG, 0, "lws", "%.*s", (int)n, line);
}

/* Raises the descriptor limit so thousands of sessions fit; returns the new limit. */
static int
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
}

static int
adopt_signals(struct broker *b, struct fxb_error *err)
{
	lws_sock_file_fd_type u;
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	if ((fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		error_set(err, ERR_INTERNAL, "signalfd failed");
		return -1;
	}
	u.filefd = fd;
	if (!lws_adopt_descriptor_vhost(b->vhost, LWS_ADOPT_RAW_FILE_DESC, u, "ctl", NULL)) {
		close(fd);
		error_set(err, ERR_INTERNAL, "cannot adopt the signalfd");
		return -1;
	}
	return 0;
}

int
ws_start(struct broker *b, struct fxb_error *err)
{
	static lws_retry_bo_t idle;
	struct lws_context_creation_info info;

	lws_set_log_level(b->cfg.log_level >= LOG_LEVEL_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE
	    : LLL_ERR | LLL_WARN, lws_log);
	memset(&info, 0, sizeof info);
	info.port = b->cfg.listen_port < 0 ? CONTEXT_PORT_NO_LISTEN : b->cfg.listen_port;
	info.iface = b->cfg.listen_port < 0 ? NULL : b->cfg.listen_host;
	info.protocols = protocols;
	info.pvo = &pvo;
	info.user = b;
	info.fd_limit_per_thread = (unsigned int)raise_fd_limit();
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
	    LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	/* A test paused in a debugger keeps its TCP connection and must keep its leases, so
	 * unanswered pings never hang up on their own (a day); the kernel's keepalive finds
	 * peers that have really vanished. */
	if (b->cfg.ping_secs > 0) {
		idle.secs_since_valid_ping = (uint16_t)b->cfg.ping_secs;
		idle.secs_since_valid_hangup = 65535;
		info.retry_and_idle_policy = &idle;
	}
	info.ka_time = 30;
	info.ka_probes = 4;
	info.ka_interval = 10;
	info.timeout_secs = 10;
	if (!(b->ctx = lws_create_context(&info))) {
		error_set(err, ERR_INTERNAL, "listen: cannot listen on %s:%d", b->cfg.listen_host,
		    b->cfg.listen_port);
		return -1;
	}
	b->vhost = lws_get_vhost_by_name(b->ctx, "default");
	if (b->cfg.listen_port >= 0) {
		b->listen_port = lws_get_vhost_listen_port(b->vhost);
		if (adopt_signals(b, err) == -1)
			return -1;
	}
	return 0;
}

int
ws_run(struct broker *b)
{
	/* Draining ends when every session is closed and every released fixture (a server
	 * in its stop grace period) has stopped, or at the shutdown deadline. */
	while (!b->stopped &&
	    !(b->shutting_down && sessions_count(b->sessions) == 0 && leases_stopping(b->leases) == 0))
		if (lws_service(b->ctx, 0) < 0)
			break;
	return b->exit_status;
}

void
ws_stop(struct broker *b)
{
	if (b->ctx) {
		lws_context_destroy(b->ctx);
		b->ctx = NULL;
	}
}

static void
shutdown_deadline(lws_sorted_usec_list_t *sul)
{
	struct broker *b = lws_container_of(sul, struct broker, shutdown_timer);

	log_warnx("%zu session(s) did not close in %d s; stopping anyway", sessions_count(b->sessions),
	    SHUTDOWN_DEADLINE_S);
	b->stopped = 1;
}

void
ws_shutdown(struct broker *b, const char *why)
{
	struct session *s, *next;

	if (b->shutting_down)
		return;
	b->shutting_down = 1;
	log_info("shutting down (%s): releasing every lease, closing %zu session(s)", why,
	    sessions_count(b->sessions));
	for (s = sessions_first(b->sessions); s; s = next) {
		next = s->next;
		if (s->conn) {
			lease_release_session(b, s, "broker shutting down");
			conn_close_later(s->conn, LWS_CLOSE_STATUS_GOINGAWAY, "broker shutting down");
		} else {
			session_close(b, s, "broker shutting down");
		}
	}
	lws_sul_schedule(b->ctx, 0, &b->shutdown_timer, shutdown_deadline,
	    SHUTDOWN_DEADLINE_S * LWS_US_PER_SEC);
}
