/* ws.c: WebSocket connections: bytes in and out, one session each.
 *
 * The lws protocol fixture-broker.v1 (loop.c puts it on the vhost, also as the default
 * for clients that name none). A connection's per-session data is struct conn: the
 * reassembly buffer, the reply queue, and the session it carries. Whole text messages go
 * to rpc_handle(); replies go out one lws_write per writeable callback, and a client that
 * does not read is throttled. On close the session is detached (grace period), never
 * freed here.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/loop.h"
#include "net/ws.h"
#include "rpc/rpc.h"
#include "util/addr.h"

#define TX_CHUNK (64 * 1024)
/* The longest Authorization header read; a longer one is answered 431, not ignored. */
#define BEARER_MAX 4096

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
	size_t queued_bytes; /* over max_reply_queue_bytes: the client is not read */
	int throttled;
	/* Close c when it is still not authenticated after auth_timeout_ms, or when it has
	 * been throttled for reply_stall_ms. */
	lws_sorted_usec_list_t auth_timer, stall_timer;
	int closing, close_code;
	char close_reason[64];
	/* Liveness: a ping every heartbeat_ms; anything received (a pong included) is a sign
	 * of life, and none for dead_after_ms closes the connection. */
	lws_sorted_usec_list_t beat;
	uint64_t seen_ms;
	int ping_due;
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

/* c's client has read none of its replies for reply_stall_ms while they passed
 * max_reply_queue_bytes: it is dropped, without a close handshake it would not read. */
static void
stalled(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, stall_timer);

	if (!c->throttled)
		return;
	log_info("session %s: %zu bytes of replies unread for %d ms (max_reply_queue_bytes %zu): "
	    "dropping the connection", c->s ? c->s->sid : "-", c->queued_bytes,
	    c->b->cfg.reply_stall_ms, c->b->cfg.max_reply_queue_bytes);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* auth_timeout_ms after the upgrade: a session that has not authenticated is closed. */
static void
auth_deadline(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, auth_timer);

	if (!c->s || c->s->peer.authenticated)
		return;
	log_info("session %s: not authenticated after auth_timeout_ms (%d): closing it",
	    c->s->sid, c->b->cfg.auth_timeout_ms);
	conn_close_later(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "authentication timeout");
}

static void
conn_send(void *conn, char *text, size_t len)
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
	c->queued_bytes += len;
	if (c->queued_bytes > c->b->cfg.max_reply_queue_bytes && !c->throttled) {
		c->throttled = 1;
		lws_rx_flow_control(c->wsi, 0);
		lws_sul_schedule(lws_get_context(c->wsi), 0, &c->stall_timer, stalled,
		    (lws_usec_t)c->b->cfg.reply_stall_ms * LWS_US_PER_MS);
	}
	lws_callback_on_writable(c->wsi);
}

static void
conn_disown(void *conn, int code, const char *reason)
{
	struct conn *c = conn;

	c->s = NULL;
	conn_close_later(c, code, reason);
}

static const struct session_io conn_io = { conn_send, conn_disown };

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
		conn_send(c, reply, strlen(reply));
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

/* The heartbeat: drops c when its peer has been silent for dead_after_ms, else asks for a
 * ping at the next writeable callback and comes back in heartbeat_ms. The pong goes
 * unanswered by a peer that has vanished (link down, host gone, frozen) whatever TCP
 * thinks, so a dead worker's fixtures come back within dead_after_ms plus the grace
 * period. */
static void
heartbeat(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, beat);
	const struct config *cfg = &c->b->cfg;
	uint64_t silent = now_ms() - c->seen_ms;

	if (silent >= (uint64_t)cfg->dead_after_ms) {
		log_info("session %s: nothing from its client for %llu ms (dead_after_ms %d): "
		    "dropping the connection", c->s ? c->s->sid : "-", (unsigned long long)silent,
		    cfg->dead_after_ms);
		/* No close handshake: the peer would not answer it. */
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	c->ping_due = 1;
	lws_callback_on_writable(c->wsi);
	lws_sul_schedule(lws_get_context(c->wsi), 0, &c->beat, heartbeat,
	    (lws_usec_t)cfg->heartbeat_ms * LWS_US_PER_MS);
}

/* Starts c's heartbeat and makes the kernel give up on unacknowledged data as soon: a
 * send to a vanished peer fails within dead_after_ms too (TCP_USER_TIMEOUT). */
static void
heartbeat_start(struct conn *c)
{
	const struct config *cfg = &c->b->cfg;
	unsigned int timeout = (unsigned int)cfg->dead_after_ms;
	int fd = lws_get_socket_fd(c->wsi);

	c->seen_ms = now_ms();
	if (cfg->heartbeat_ms <= 0)
		return;
	if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof timeout) == -1)
		log_warn("setsockopt TCP_USER_TIMEOUT");
	lws_sul_schedule(lws_get_context(c->wsi), 0, &c->beat, heartbeat,
	    (lws_usec_t)cfg->heartbeat_ms * LWS_US_PER_MS);
}

/* Sends the ping the heartbeat asked for. Only between messages: a fragmented reply is
 * finished first. Returns 1 when it wrote (this callback may write nothing more). */
static int
ping(struct conn *c)
{
	/* lws 4.1 hands an empty pong to no callback: the ping carries a few bytes. */
	unsigned char buf[LWS_PRE + 4] = { [LWS_PRE] = 'f', 'x', 'b', '?' };

	if (!c->ping_due || (c->head && c->head->off))
		return 0;
	c->ping_due = 0;
	if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 4)
		return -1;
	if (c->head || c->closing)
		lws_callback_on_writable(c->wsi);
	return 1;
}

static int
on_writeable(struct conn *c)
{
	struct msg *m;
	size_t chunk;
	int flags, rc;

	if (!c->closing && (rc = ping(c)) != 0)
		return rc < 0 ? -1 : 0;
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
		c->queued_bytes -= m->len;
		free(m); /* no permessage-deflate, so lws needs nothing of it after the write */
		if (c->throttled && c->queued_bytes <= c->b->cfg.max_reply_queue_bytes / 2) {
			c->throttled = 0;
			lws_sul_cancel(&c->stall_timer);
			lws_rx_flow_control(c->wsi, 1);
		}
	}
	if (c->head || c->closing)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* Reads the bearer token of the upgrade request; 1 if present and valid (ref filled when
 * not NULL), 0 if absent, -1 if present and wrong, -2 if longer than BEARER_MAX (never
 * taken for absent). */
static int
bearer(struct broker *b, struct lws *wsi, struct token_ref *ref)
{
	char hdr[BEARER_MAX + 1];
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION), n, ok;

	if (total > BEARER_MAX)
		return -2;
	if (total <= 0)
		return 0;
	if ((n = lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION)) < 0)
		return -2;
	if (n == 0)
		return 0;
	if (strncasecmp(hdr, "Bearer ", 7) != 0)
		return -1;
	ok = tenants_check(b->tenants, hdr + 7, ref);
	explicit_bzero(hdr, sizeof hdr);
	return ok ? 1 : -1;
}

/* Answers a refused upgrade request. lws_return_http_status() says "HTTP/1.0" at this
 * point (the request's version is not known to it yet), which WebSocket clients such as
 * Python's websockets refuse to parse; the status line here is HTTP/1.1's, as the
 * client asked. The caller then returns 1 and lws closes the connection. */
static void
refuse_upgrade(struct lws *wsi, int status, const char *phrase, const char *body)
{
	unsigned char buf[LWS_PRE + 512];
	char *p = (char *)buf + LWS_PRE;
	int n = snprintf(p, sizeof buf - LWS_PRE, "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
	    "content-length: %zu\r\nconnection: close\r\n\r\n%s\n", status, phrase,
	    strlen(body) + 1, body);

	if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP_HEADERS) < n)
		log_warnx("could not answer a refused upgrade with %d", status);
}

/* 1 when a draining (not shutting down) broker lets this upgrade in: its WS_RESUME_HEADER
 * names a session held here. session.hello checks the rest (the token, the tenant). */
static int
resume_held(struct broker *b, struct lws *wsi)
{
	char tok[64];
	int n = lws_hdr_custom_length(wsi, WS_RESUME_HEADER, (int)strlen(WS_RESUME_HEADER)), ok;

	if (leases_draining(b->leases) || n <= 0 || n >= (int)sizeof tok)
		return 0;
	if (lws_hdr_custom_copy(wsi, tok, sizeof tok, WS_RESUME_HEADER,
	    (int)strlen(WS_RESUME_HEADER)) <= 0)
		return 0;
	ok = session_by_resume(b, NULL, tok) != NULL;
	explicit_bzero(tok, sizeof tok);
	return ok;
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
		if (loop_draining(b, NULL) && !resume_held(b, wsi)) {
			loop_count_refused(b);
			refuse_upgrade(wsi, 503, "Service Unavailable", leases_draining(b->leases)
			    ? "shutting down" : "draining: connect to another broker");
			return 1;
		}
		switch (b->need_token ? bearer(b, wsi, NULL) : 0) {
		case -1: {
			char peer[64] = "";

			lws_get_peer_simple(wsi, peer, sizeof peer);
			log_warnx("refused a connection: wrong bearer token");
			audit_event(b->audit, "auth.fail", json_pack("{s:s, s:s}", "peer", peer, "via", "bearer"));
			refuse_upgrade(wsi, 401, "Unauthorized", "wrong bearer token");
			return 1;
		}
		case -2:
			log_warnx("refused a connection: Authorization header over %d bytes", BEARER_MAX);
			refuse_upgrade(wsi, 431, "Request Header Fields Too Large",
			    "Authorization header too long");
			return 1;
		}
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* cb_http has answered a refused upgrade already; this is the backstop. */
		if ((loop_draining(b, NULL) && !resume_held(b, wsi)) ||
		    (b->need_token && bearer(b, wsi, NULL) < 0))
			return 1;
		break;
	case LWS_CALLBACK_ESTABLISHED: {
		struct token_ref ref;
		struct fxb_error err = { 0 };

		c->b = b;
		c->wsi = wsi;
		if (!(c->s = session_new(b, c, &conn_io))) {
			log_warnx("out of memory: refused a connection");
			return -1;
		}
		lws_get_peer_simple(wsi, c->s->peer_addr, sizeof c->s->peer_addr);
		/* Let in during a drain: it came back to resume (resume_held()). */
		c->s->resume_only = loop_draining(b, NULL);
		audit_event(b->audit, "session.open", json_pack("{s:s, s:s, s:s}", "session", c->s->sid,
		    "tenant", b->need_token ? "" : c->s->token.tenant->name, "peer", c->s->peer_addr));
		if (b->need_token && bearer(b, wsi, &ref) == 1 &&
		    session_authenticate(b, c->s, &ref, NULL, &err) == -1) {
			/* Over the tenant's session quota: the session stays unauthenticated and
			 * its session.hello says why. */
			c->s->bearer = ref;
			error_clear(&err);
		}
		(void)addr_local_host(lws_get_socket_fd(wsi), c->s->host, sizeof c->s->host);
		heartbeat_start(c);
		if (!c->s->peer.authenticated && b->cfg.auth_timeout_ms > 0)
			lws_sul_schedule(lws_get_context(wsi), 0, &c->auth_timer, auth_deadline,
			    (lws_usec_t)b->cfg.auth_timeout_ms * LWS_US_PER_MS);
		break;
	}
	case LWS_CALLBACK_RECEIVE:
		c->seen_ms = now_ms();
		return on_receive(c, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		c->seen_ms = now_ms();
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return on_writeable(c);
	case LWS_CALLBACK_CLOSED:
		lws_sul_cancel(&c->beat);
		lws_sul_cancel(&c->auth_timer);
		lws_sul_cancel(&c->stall_timer);
		conn_free_buffers(c);
		if (c->s) {
			struct session *s = c->s;
			c->s = NULL;
			session_detach(b, s);
		}
		if (leases_draining(b->leases) && sessions_count(b->sessions) == 0)
			lws_cancel_service(b->ctx);
		break;
	default:
		break;
	}
	return 0;
}

void
ws_close_all(struct broker *b, const char *reason)
{
	struct session *s, *next;

	for (s = sessions_first(b->sessions); s; s = next) {
		next = s->next;
		if (s->conn && s->io == &conn_io) {
			lease_release_session(b, s, reason);
			conn_close_later(s->conn, LWS_CLOSE_STATUS_GOINGAWAY, reason);
		} else {
			session_close(b, s, reason);
		}
	}
}

void
ws_drain_sessions(struct broker *b, const char *reason)
{
	struct session *s, *next;

	uint64_t now = now_ms();

	for (s = sessions_first(b->sessions); s; s = next) {
		next = s->next;
		if (s->io != &conn_io)
			continue; /* a module's own session (IntegreSQL's) drains with its leases */
		if (!s->conn)
			/* In its grace period: its client may come back to resume (resume_held()),
			 * and the grace period ends it otherwise. */
			continue;
		if (s->resume_only && now - s->created_ms < WS_DRAIN_RESUME_MS)
			continue; /* let in to resume: its session.hello decides */
		if (s->lease_count == 0 && s->peer.open_calls == 0 && !lease_session_busy(b, s))
			/* The session ends when the connection has closed, as on any disconnect;
			 * till then the loop counts it and does not stop. */
			conn_close_later(s->conn, LWS_CLOSE_STATUS_GOINGAWAY, reason);
	}
}

/* lws keeps an rx buffer of 1024 bytes per connection: small, so that thousands of idle
 * sessions stay cheap; larger messages arrive in several callbacks. */
const struct lws_protocols ws_protocol = {
	WS_SUBPROTOCOL, cb_ws, sizeof(struct conn), 1024, 0, NULL, TX_CHUNK,
};
