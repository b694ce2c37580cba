/* wire.c: frames in and out of a client's socket, and the calls waiting on them.
 *
 * A call's thread does its own I/O. It writes its request frame under wmu, which is never
 * held across a blocking call: what the socket does not take at once is queued in wbuf for
 * the service thread to flush. Then it waits for the reply, and if no other thread holds
 * the reader role it takes it and reads the socket itself, handing other callers their
 * replies by JSON-RPC id and passing the role on to one of them once its own reply is in.
 * So a lone caller's round trip is a send, a poll and a recv, with no thread hop. The
 * service thread (conn.c) takes the role only while no call is in flight. Whoever reads
 * answers pings, puts fragmented messages together, ignores notifications, and on a close
 * frame, a protocol error or the end of the stream drops the connection (conn_drop), which
 * fails the calls in flight with FXB_ECONNECT at once. A message that is not JSON (or not
 * UTF-8) cannot be matched to its call, so it fails the connection with 1007 and every call
 * in flight with FXB_EPROTO (conn_fail). session.hello is a call too, but its reply moves
 * the client's state instead of waking a caller.
 */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_MESSAGE_BYTES ((size_t)64 << 20)
#define RX_MIN_ROOM 4096
#define BUF_KEEP_BYTES (64 * 1024) /* buffers grown past this for one message shrink after */
#define CLOSE_NORMAL 1000
#define CLOSE_PROTOCOL_ERROR 1002
#define CLOSE_INVALID_DATA 1007
#define CLOSE_TOO_BIG 1009
/* The broker's close code for a connection whose session another client resumed. */
#define CLOSE_TAKEN_OVER 4001

/* ---- Requests ---- */

/* Writes s, valid UTF-8, as a JSON string with its quotes at out (if not NULL). Returns
 * its length. */
static size_t
json_quote(const char *s, unsigned char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char esc[6], ch;
	size_t n = 1, k;

	if (out)
		out[0] = '"';
	for (; (ch = (unsigned char)*s); s++) {
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = ch;
			k = 2;
		} else if (ch < 0x20) {
			memcpy(esc, "\\u00", 4);
			esc[4] = (unsigned char)hex[ch >> 4];
			esc[5] = (unsigned char)hex[ch & 15];
			k = 6;
		} else {
			esc[0] = ch;
			k = 1;
		}
		if (out)
			memcpy(out + n, esc, k);
		n += k;
	}
	if (out)
		out[n] = '"';
	return n + 1;
}

int
wire_encode(json_int_t id, const char *method, json_t *params, unsigned char *stack, size_t cap,
    unsigned char **text, size_t *len)
{
	char head[64];
	size_t hlen, mlen, plen, room, need;
	unsigned char *b = stack + WS_HEAD_MAX, *heap = NULL;

	/* The envelope is written here; jansson only renders the params. */
	*text = NULL;
	*len = 0;
	if (!params && !(params = json_object()))
		return FXB_ENOMEM;
	hlen = (size_t)snprintf(head, sizeof head,
	    "{\"jsonrpc\":\"2.0\",\"id\":%" JSON_INTEGER_FORMAT ",\"method\":", id);
	mlen = json_quote(method, NULL);
	need = hlen + mlen + sizeof ",\"params\":" - 1;
	room = cap > WS_HEAD_MAX + need + 1 ? cap - WS_HEAD_MAX - need - 1 : 0;
	plen = json_dumpb(
	    params, room ? (char *)b + need : NULL, room, JSON_COMPACT | JSON_ENCODE_ANY);
	if (plen && plen > room) {
		if (!(heap = malloc(WS_HEAD_MAX + need + plen + 1))) {
			json_decref(params);
			return FXB_ENOMEM;
		}
		b = heap + WS_HEAD_MAX;
		json_dumpb(params, (char *)b + need, plen, JSON_COMPACT | JSON_ENCODE_ANY);
	}
	json_decref(params);
	if (!plen) {
		free(heap);
		return FXB_ENOMEM;
	}
	memcpy(b, head, hlen);
	json_quote(method, b + hlen);
	memcpy(b + hlen + mlen, ",\"params\":", sizeof ",\"params\":" - 1);
	b[need + plen] = '}';
	*text = b;
	*len = need + plen + 1;
	return 0;
}

void
wire_encoded_free(unsigned char *text, unsigned char *stack)
{
	if (text && text != stack + WS_HEAD_MAX)
		free(text - WS_HEAD_MAX);
}

/* ---- Calls waiting for replies (under mu) ---- */

/* Finishes every pending request with status and wakes their callers. */
void
wire_fail_calls(struct fxb_client *c, int status)
{
	struct request *r;

	while ((r = c->pending)) {
		c->pending = r->next;
		r->next = NULL;
		r->done = 1;
		r->status = status;
		pthread_cond_signal(&r->cv);
	}
	c->npending = 0;
}

static void
unlink_request(struct fxb_client *c, struct request *r)
{
	struct request **pp;

	for (pp = &c->pending; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			r->next = NULL;
			c->npending--;
			return;
		}
	}
}

/* Wakes one caller waiting for its reply so that it takes the reader role. */
void
wire_promote(struct fxb_client *c)
{
	struct request *r;

	for (r = c->pending; r; r = r->next) {
		if (r->waiting) {
			pthread_cond_signal(&r->cv);
			return;
		}
	}
}

/* Takes the reader role for connection gen if nobody holds it. Returns the socket to
 * read, or -1. */
int
wire_take(struct fxb_client *c, unsigned gen)
{
	if (c->reading || c->dead || c->sock < 0 || c->gen != gen)
		return -1;
	c->reading = 1;
	return c->sock;
}

/* Gives the reader role back and passes it on to a waiting caller, if any. */
void
wire_give_back(struct fxb_client *c)
{
	c->reading = 0;
	if (c->dead)
		pthread_cond_broadcast(&c->cv); /* the service thread waits to close */
	else
		wire_promote(c);
}

/* ---- Writing ---- */

/* Appends len bytes to wbuf (under wmu). Returns 0 or -1 when out of memory. */
static int
wbuf_append(struct fxb_client *c, const unsigned char *p, size_t len)
{
	size_t cap = c->wbuf_cap ? c->wbuf_cap : 4096;
	unsigned char *b;

	while (cap - c->wbuf_len < len)
		cap *= 2;
	if (cap != c->wbuf_cap) {
		if (!(b = realloc(c->wbuf, cap)))
			return -1;
		c->wbuf = b;
		c->wbuf_cap = cap;
	}
	memcpy(c->wbuf + c->wbuf_len, p, len);
	c->wbuf_len += len;
	return 0;
}

/* Sends one final frame of opcode on connection gen: the len payload bytes at payload,
 * which has WS_HEAD_MAX writable bytes before it and is masked in place. Never blocks:
 * what the socket does not take now is queued for the service thread. Call it without mu.
 * Returns 0; FXB_ECONNECT when gen is not the live connection or it failed now (it is then
 * dropped); FXB_ENOMEM when the frame could not be queued (if part of it went out, the
 * connection is dropped too). */
static int
frame_send(struct fxb_client *c, unsigned gen, int opcode, unsigned char *payload, size_t len)
{
	unsigned char *f;
	size_t total, sent = 0;
	ssize_t n = 0;
	int err = 0, queued = 0;
	char why[256] = "";

	pthread_mutex_lock(&c->wmu);
	if (c->wgen != gen || c->wsock < 0) {
		pthread_mutex_unlock(&c->wmu);
		return FXB_ECONNECT;
	}
	total = ws_frame_encode(payload, opcode, len, (uint32_t)(rng_next(&c->mask_rng) >> 32));
	f = payload - total;
	total += len;
	if (!c->wbuf_len) {
		/* TLS takes a record at a time: go on until the socket is full. */
		while (sent < total &&
		       (n = io_send(&c->tls_mu, c->wssl, c->wsock, f + sent, total - sent, why,
		            sizeof why)) > 0)
			sent += (size_t)n;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			err = errno ? errno : EPIPE;
	}
	if (!err && sent < total) {
		if (!wbuf_append(c, f + sent, total - sent))
			queued = 1;
		else if (!sent)
			err = -1;
		else
			snprintf(why, sizeof why, "out of memory"), err = ENOMEM;
	}
	pthread_mutex_unlock(&c->wmu);
	if (queued)
		conn_wake(c);
	if (err == -1)
		return FXB_ENOMEM;
	if (err) {
		conn_drop(c, gen, "lost the connection to", why);
		return err == ENOMEM ? FXB_ENOMEM : FXB_ECONNECT;
	}
	return 0;
}

/* Sends a control frame with up to 125 bytes of payload. Returns what frame_send does. */
int
wire_send_control(struct fxb_client *c, unsigned gen, int opcode, const void *data, size_t len)
{
	unsigned char frame[WS_HEAD_MAX + 125];

	if (len > 125)
		len = 125;
	if (len)
		memcpy(frame + WS_HEAD_MAX, data, len);
	return frame_send(c, gen, opcode, frame + WS_HEAD_MAX, len);
}

int
wire_send_close(struct fxb_client *c, unsigned gen, unsigned code)
{
	unsigned char b[2] = {(unsigned char)(code >> 8), (unsigned char)code};

	return wire_send_control(c, gen, WS_OP_CLOSE, b, sizeof b);
}

void
wire_open(struct fxb_client *c, int fd, SSL *ssl, unsigned gen)
{
	pthread_mutex_lock(&c->wmu);
	c->wsock = fd;
	c->wssl = ssl;
	c->wgen = gen;
	c->wbuf_len = 0;
	pthread_mutex_unlock(&c->wmu);
}

void
wire_close(struct fxb_client *c)
{
	pthread_mutex_lock(&c->wmu);
	c->wsock = -1;
	c->wssl = NULL;
	c->wbuf_len = 0;
	if (c->wbuf_cap > BUF_KEEP_BYTES) {
		free(c->wbuf);
		c->wbuf = NULL;
		c->wbuf_cap = 0;
	}
	pthread_mutex_unlock(&c->wmu);
	wire_reset(c, NULL, 0);
}

int
wire_backlog(struct fxb_client *c)
{
	int n;

	pthread_mutex_lock(&c->wmu);
	n = c->wbuf_len > 0;
	pthread_mutex_unlock(&c->wmu);
	return n;
}

/* Writes what wbuf holds as far as the socket takes it (service thread, on POLLOUT). */
void
wire_flush(struct fxb_client *c, unsigned gen)
{
	ssize_t n = 0;
	size_t off = 0;
	int err = 0;
	char why[256] = "";

	pthread_mutex_lock(&c->wmu);
	if (c->wgen == gen && c->wsock >= 0 && c->wbuf_len) {
		/* With TLS this repeats the write that could not finish, as OpenSSL asks: the
		 * same bytes first, possibly more after them, possibly moved. TLS takes a
		 * record at a time: go on until the socket is full. */
		while (off < c->wbuf_len &&
		       (n = io_send(&c->tls_mu, c->wssl, c->wsock, c->wbuf + off, c->wbuf_len - off,
		            why, sizeof why)) > 0)
			off += (size_t)n;
		if (off < c->wbuf_len && n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			err = 1;
		memmove(c->wbuf, c->wbuf + off, c->wbuf_len - off);
		c->wbuf_len -= off;
	}
	pthread_mutex_unlock(&c->wmu);
	if (err)
		conn_drop(c, gen, "lost the connection to", why);
}

/* ---- session.hello ---- */

/* Replaces the string in *slot by a copy of s, keeping the old one alive for borrowed
 * pointers. Returns 0, or -1 when out of memory with nothing changed. */
static int
replace_string(struct fxb_client *c, char **slot, const char *s)
{
	struct retired *old;
	char *dup;

	if (*slot && !strcmp(*slot, s))
		return 0;
	if (!(dup = strdup(s)))
		return -1;
	if (*slot) {
		if (!(old = malloc(sizeof *old))) {
			free(dup);
			return -1;
		}
		old->s = *slot;
		old->next = c->retired;
		c->retired = old;
	}
	*slot = dup;
	return 0;
}

/* Sends a session.hello on connection gen: with the resume token when the client has one
 * and with_resume is set. Returns 0, or -1 when the connection was dropped. */
int
wire_hello(struct fxb_client *c, unsigned gen, int with_resume)
{
	unsigned char stack[1024], *text = NULL;
	json_t *params;
	json_int_t id;
	size_t len;
	int rc = FXB_ENOMEM;

	/* The bearer token went in the upgrade request's Authorization header, which the
	 * broker checks before it upgrades: it is not sent again here. */
	pthread_mutex_lock(&c->mu);
	params = json_pack("{s:s}", "client", c->name);
	if (params && with_resume && c->resume &&
	    json_object_set_new(params, "resume", json_string(c->resume))) {
		json_decref(params);
		params = NULL;
	}
	id = c->next_id++;
	c->hello_id = id;
	pthread_mutex_unlock(&c->mu);

	conn_debug(
	    c, "session.hello%s", params && json_object_get(params, "resume") ? " (resuming)" : "");
	if (params)
		rc = wire_encode(id, "session.hello", params, stack, sizeof stack, &text, &len);
	if (!rc)
		rc = frame_send(c, gen, WS_OP_TEXT, text, len);
	wire_encoded_free(text, stack);
	if (rc == FXB_ENOMEM) {
		pthread_mutex_lock(&c->mu);
		if (gen == c->gen && !c->ever_open && c->state == CONN_HELLO) {
			c->state = CONN_FAILED;
			conn_set_failure(c, FXB_ENOMEM, 0, NULL, "session.hello: out of memory");
		}
		conn_drop_locked(c, gen, "lost the connection to", "out of memory");
		pthread_mutex_unlock(&c->mu);
	}
	return rc ? -1 : 0;
}

/* Takes the reply to session.hello (under mu). Returns 0; 1 when a fresh hello must
 * follow; -1 when the connection must close, with the reason in why. */
static int
hello_answered(struct fxb_client *c, json_t *msg, char *why, size_t whylen)
{
	json_t *res = json_object_get(msg, "result");
	json_t *err = json_object_get(msg, "error");
	json_t *cap, *dead;
	struct session *fresh = NULL;
	const char *sid, *rt, *name, *text;
	int code;

	c->hello_id = 0;
	if (json_is_object(res)) {
		sid = json_string_value(json_object_get(res, "session"));
		rt = json_string_value(json_object_get(res, "resume"));
		if (!sid || !rt) {
			snprintf(
			    why, whylen, "session.hello: the reply has no session or resume token");
			if (!c->ever_open) {
				c->state = CONN_FAILED;
				conn_set_failure(c, FXB_EPROTO, 0, NULL, "%s", why);
			}
			return -1;
		}
		/* A resumed session keeps its id, and the broker says "resumed": another id, or
		 * a hello that did not resume (another broker, behind a load balancer, may hand
		 * out the same id), means the old one is gone, with its leases. */
		if ((!c->sess || strcmp(c->sess->id, sid) ||
		    json_is_false(json_object_get(res, "resumed"))) && !(fresh = session_new(sid))) {
			snprintf(why, whylen, "session.hello: out of memory");
			if (!c->ever_open) {
				c->state = CONN_FAILED;
				conn_set_failure(c, FXB_ENOMEM, 0, NULL, "%s", why);
			}
			return -1;
		}
		if (replace_string(c, &c->session, sid) || replace_string(c, &c->resume, rt)) {
			session_unref(fresh);
			snprintf(why, whylen, "session.hello: out of memory");
			if (!c->ever_open) {
				c->state = CONN_FAILED;
				conn_set_failure(c, FXB_ENOMEM, 0, NULL, "%s", why);
			}
			return -1;
		}
		cap = json_object_get(json_object_get(res, "limits"), "max_message_bytes");
		c->max_message = json_integer_value(cap) > 0 ? (size_t)json_integer_value(cap) : 0;
		dead = json_object_get(json_object_get(res, "limits"), "dead_after_ms");
		c->dead_after_ms =
		    json_integer_value(dead) > 0 ? json_integer_value(dead) : DEAD_AFTER_MS;
		if (fresh) {
			if (c->sess) {
				atomic_store(&c->sess->lost, 1);
				snprintf(c->lost_old, sizeof c->lost_old, "%s", c->sess->id);
				snprintf(c->lost_new, sizeof c->lost_new, "%s", sid);
				c->sessions_lost++;
				c->lost_notify++;
				conn_debug(c, "session %s lost", c->sess->id);
				conn_wake(c);
			}
			session_unref(c->sess);
			c->sess = fresh;
		}
		c->state = CONN_OPEN;
		c->ever_open = 1;
		c->retries = 0;
		conn_debug(c, "session %s open", sid);
		pthread_cond_broadcast(&c->cv);
		return 0;
	}

	code = (int)json_integer_value(json_object_get(err, "code"));
	name = json_string_value(json_object_get(json_object_get(err, "data"), "name"));
	text = json_string_value(json_object_get(err, "message"));
	if (c->ever_open && name && !strcmp(name, "RESUME_UNKNOWN")) {
		/* The grace period ran out, or another client took the session over: its
		 * leases are gone. A fresh session keeps this client usable. */
		return 1;
	}
	if (json_is_object(err))
		snprintf(why, whylen, "session.hello: %s (%s)", text ? text : "error",
		    name ? name : "no name");
	else
		snprintf(why, whylen, "session.hello: the reply has neither result nor error");
	if (!c->ever_open) {
		c->state = CONN_FAILED;
		if (json_is_object(err))
			conn_set_failure(c, FXB_EBROKER, code, name ? name : "", "%s", why);
		else
			conn_set_failure(c, FXB_EPROTO, 0, NULL, "%s", why);
	}
	return -1;
}

/* ---- Reading (the reader role's holder) ---- */

/* Makes room for need more bytes after rx_len, moving unparsed bytes to the front first.
 * Returns 0, or -1 when out of memory. */
static int
rx_room(struct fxb_client *c, size_t need)
{
	size_t cap;
	unsigned char *p;

	if (c->rx_off) {
		memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
		c->rx_len -= c->rx_off;
		c->rx_off = 0;
	}
	if (c->rx_cap - c->rx_len >= need)
		return 0;
	cap = c->rx_cap ? c->rx_cap : 16384;
	while (cap - c->rx_len < need)
		cap *= 2;
	if (!(p = realloc(c->rx, cap)))
		return -1;
	c->rx = p;
	c->rx_cap = cap;
	return 0;
}

/* Fails connection gen for a message that jansson could not load (jerr), as RFC 6455
 * section 8.1 asks of invalid text: a close frame with 1007, then the drop, which fails
 * every call in flight at once with FXB_EPROTO and the reason. Any of them may have been
 * the one the message answered, so none is left to time out. Out of memory is a plain
 * drop. Returns -1. */
static int
not_json(struct fxb_client *c, unsigned gen, const json_error_t *jerr)
{
	char why[sizeof c->fail_msg];

	if (json_error_code(jerr) == json_error_out_of_memory) {
		conn_drop(c, gen, "lost the connection to", "out of memory");
		return -1;
	}
	snprintf(why, sizeof why,
	    "the broker sent a message that is not valid %s: %s (closed the connection to %s "
	    "with %d)",
	    json_error_code(jerr) == json_error_invalid_utf8 ? "UTF-8" : "JSON", jerr->text,
	    c->url, CLOSE_INVALID_DATA);
	pthread_mutex_lock(&c->mu);
	c->close_sent = 1;
	pthread_mutex_unlock(&c->mu);
	wire_send_close(c, gen, CLOSE_INVALID_DATA);
	conn_fail(c, gen, FXB_EPROTO, why);
	return -1;
}

/* Hands one whole message to the caller waiting for it. Returns 0, or -1 when the
 * connection was dropped (a failed hello, a message that is not JSON). */
static int
deliver(struct fxb_client *c, unsigned gen, const unsigned char *p, size_t len)
{
	struct request **pp, *r;
	json_t *msg, *idv;
	json_int_t id;
	json_error_t jerr;
	char why[256];
	int act = 0;

	if (!(msg = json_loadb((const char *)p, len, 0, &jerr)))
		return not_json(c, gen, &jerr);
	/* JSON without an integer id, or with a method (a notification or a call from the
	 * broker), is not the reply to a call: it is ignored. */
	idv = json_object_get(msg, "id");
	if (!json_is_integer(idv) || json_object_get(msg, "method")) {
		json_decref(msg);
		return 0;
	}
	id = json_integer_value(idv);

	pthread_mutex_lock(&c->mu);
	if (gen != c->gen || c->dead) {
		/* The connection is being dropped: its calls have failed already. */
	} else if (c->hello_id && id == c->hello_id) {
		act = hello_answered(c, msg, why, sizeof why);
	} else {
		for (pp = &c->pending; (r = *pp); pp = &r->next) {
			if (r->id != id)
				continue;
			*pp = r->next;
			r->next = NULL;
			c->npending--;
			r->reply = msg;
			msg = NULL;
			r->status = FXB_OK;
			r->done = 1;
			if (r->waiting)
				pthread_cond_signal(&r->cv);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	json_decref(msg);
	if (act > 0)
		return wire_hello(c, gen, 0);
	if (act < 0) {
		pthread_mutex_lock(&c->mu);
		c->close_sent = 1;
		pthread_mutex_unlock(&c->mu);
		wire_send_close(c, gen, CLOSE_NORMAL);
		conn_drop(c, gen, "lost the connection to", why);
		return -1;
	}
	return 0;
}

/* Closes connection gen for a frame that breaks the protocol. Returns -1. */
static int
protocol_error(struct fxb_client *c, unsigned gen, unsigned code, const char *why)
{
	pthread_mutex_lock(&c->mu);
	c->close_sent = 1;
	pthread_mutex_unlock(&c->mu);
	wire_send_close(c, gen, code);
	conn_drop(c, gen, "lost the connection to", why);
	return -1;
}

static int
msg_append(struct fxb_client *c, unsigned gen, const unsigned char *p, size_t len)
{
	size_t cap;
	unsigned char *b;

	if (len > MAX_MESSAGE_BYTES - c->msg_len)
		return protocol_error(
		    c, gen, CLOSE_TOO_BIG, "a message from the broker is over 64 MiB");
	if (c->msg_cap - c->msg_len < len) {
		cap = c->msg_cap ? c->msg_cap : 4096;
		while (cap - c->msg_len < len)
			cap *= 2;
		if (!(b = realloc(c->msg, cap))) {
			conn_drop(c, gen, "lost the connection to", "out of memory");
			return -1;
		}
		c->msg = b;
		c->msg_cap = cap;
	}
	memcpy(c->msg + c->msg_len, p, len);
	c->msg_len += len;
	return 0;
}

/* The broker's close frame: echoes it and drops the connection. Returns -1. */
static int
on_close(struct fxb_client *c, unsigned gen, const unsigned char *p, size_t len)
{
	unsigned code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 0;
	char detail[160];
	int echo;

	if (len >= 2)
		snprintf(detail, sizeof detail, "closed by the broker (%u%s%.*s)", code,
		    len > 2 ? " " : "", (int)(len - 2 > 80 ? 80 : len - 2), (const char *)p + 2);
	else
		snprintf(detail, sizeof detail, "closed by the broker");
	pthread_mutex_lock(&c->mu);
	echo = gen == c->gen && !c->close_sent;
	if (gen == c->gen) {
		c->close_sent = 1;
		/* Resuming would take the session back from its new owner, which would take
		 * it back in turn: start afresh instead. */
		if (code == CLOSE_TAKEN_OVER)
			c->taken_over = 1;
	}
	pthread_mutex_unlock(&c->mu);
	if (echo)
		wire_send_control(c, gen, WS_OP_CLOSE, p, len >= 2 ? 2 : 0);
	conn_drop(c, gen, "lost the connection to", detail);
	return -1;
}

/* Acts on one whole frame. Returns 0, or -1 when the connection was dropped. */
static int
on_frame(struct fxb_client *c, unsigned gen, const struct ws_frame *f, const unsigned char *p)
{
	size_t len = (size_t)f->len;
	int rc;

	switch (f->opcode) {
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (c->in_msg)
			return protocol_error(c, gen, CLOSE_PROTOCOL_ERROR,
			    "the broker began a message inside a fragmented one");
		if (f->fin)
			return deliver(c, gen, p, len);
		c->in_msg = 1;
		c->msg_len = 0;
		return msg_append(c, gen, p, len);
	case WS_OP_CONT:
		if (!c->in_msg)
			return protocol_error(c, gen, CLOSE_PROTOCOL_ERROR,
			    "the broker continued a message it had not begun");
		if (msg_append(c, gen, p, len))
			return -1;
		if (!f->fin)
			return 0;
		c->in_msg = 0;
		rc = deliver(c, gen, c->msg, c->msg_len);
		c->msg_len = 0;
		if (c->msg_cap > BUF_KEEP_BYTES) {
			free(c->msg);
			c->msg = NULL;
			c->msg_cap = 0;
		}
		return rc;
	case WS_OP_PING:
		wire_send_control(c, gen, WS_OP_PONG, p, len);
		return 0;
	case WS_OP_PONG:
		return 0;
	default: /* WS_OP_CLOSE: ws_frame_parse lets no other opcode through */
		return on_close(c, gen, p, len);
	}
}

/* Acts on every whole frame in rx. Returns 1 when it finished me (NULL: none), 0, or -1
 * when the connection was dropped. */
static int
rx_frames(struct fxb_client *c, unsigned gen, struct request *me)
{
	struct ws_frame f;
	size_t have, need;
	int rc, any = 0, done;

	for (;;) {
		have = c->rx_len - c->rx_off;
		if ((rc = ws_frame_parse(c->rx + c->rx_off, have, &f)) < 0)
			return protocol_error(c, gen, CLOSE_PROTOCOL_ERROR,
			    "the broker sent a frame a server may not send");
		if (!rc)
			break;
		if (f.len > MAX_MESSAGE_BYTES)
			return protocol_error(
			    c, gen, CLOSE_TOO_BIG, "a message from the broker is over 64 MiB");
		need = f.head_len + (size_t)f.len;
		if (have < need) {
			if (rx_room(c, need - have)) {
				conn_drop(c, gen, "lost the connection to", "out of memory");
				return -1;
			}
			break;
		}
		c->rx_off += need;
		any = 1;
		if (on_frame(c, gen, &f, c->rx + c->rx_off - f.len) < 0)
			return -1;
	}
	if (c->rx_off == c->rx_len) {
		c->rx_off = c->rx_len = 0;
		if (c->rx_cap > BUF_KEEP_BYTES) {
			free(c->rx);
			c->rx = NULL;
			c->rx_cap = 0;
		}
	}
	if (!any)
		return 0;
	pthread_mutex_lock(&c->mu);
	if (gen == c->gen)
		c->last_rx_ms = clock_now_ms();
	done = me && me->done;
	pthread_mutex_unlock(&c->mu);
	return done;
}

/* Reads what the socket has (one recv) and acts on the frames it completes. Returns what
 * rx_frames does. */
static int
rx_pump(struct fxb_client *c, int fd, unsigned gen, struct request *me)
{
	char why[256];
	ssize_t n;
	int more;

	/* TLS may hold more than one read takes, which poll() would not report: read on
	 * until it holds nothing. */
	do {
		if (rx_room(c, RX_MIN_ROOM)) {
			conn_drop(c, gen, "lost the connection to", "out of memory");
			return -1;
		}
		n = io_recv(&c->tls_mu, c->ssl, fd, c->rx + c->rx_len, c->rx_cap - c->rx_len,
		    &more, why, sizeof why);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			conn_drop(c, gen, "lost the connection to", n ? why : "the broker closed it");
			return -1;
		}
		c->rx_len += (size_t)n;
	} while (more);
	return rx_frames(c, gen, me);
}

int
wire_reset(struct fxb_client *c, const unsigned char *p, size_t len)
{
	c->rx_len = c->rx_off = 0;
	c->msg_len = 0;
	c->in_msg = 0;
	if (!len)
		return 0;
	if (rx_room(c, len))
		return -1;
	memcpy(c->rx, p, len);
	c->rx_len = len;
	return 0;
}

int
wire_read(struct fxb_client *c, int fd, unsigned gen)
{
	return rx_pump(c, fd, gen, NULL) < 0 ? -1 : 0;
}

/* Reads the socket (the caller holds the reader role) until r is done or deadline_ms. */
static void
read_until(struct fxb_client *c, struct request *r, int fd, long long deadline_ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	long long left;
	int n;

	for (;;) {
		if ((left = deadline_ms - clock_now_ms()) <= 0)
			return;
		n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (rx_pump(c, fd, r->gen, r))
			return;
	}
}

/* ---- Calls ---- */

int
wire_register(struct fxb_client *c, struct request *r)
{
	if (pthread_cond_init(&r->cv, &c->cattr))
		return FXB_ENOMEM;
	r->gen = c->gen;
	r->next = c->pending;
	c->pending = r;
	c->npending++;
	return 0;
}

int
wire_call(
    struct fxb_client *c, struct request *r, unsigned char *text, size_t len, long long deadline_ms)
{
	struct timespec ts;
	int fd, rc, timed_out;

	rc = frame_send(c, r->gen, WS_OP_TEXT, text, len);
	deadline_ts(&ts, deadline_ms);
	pthread_mutex_lock(&c->mu);
	if (rc == FXB_ENOMEM && !r->done) {
		unlink_request(c, r);
	} else {
		rc = 0;
		while (!r->done) {
			if ((fd = wire_take(c, r->gen)) >= 0) {
				pthread_mutex_unlock(&c->mu);
				read_until(c, r, fd, deadline_ms);
				pthread_mutex_lock(&c->mu);
				wire_give_back(c);
				if (!r->done && clock_now_ms() >= deadline_ms)
					break;
				continue;
			}
			r->waiting = 1;
			timed_out = pthread_cond_timedwait(&r->cv, &c->mu, &ts) == ETIMEDOUT;
			r->waiting = 0;
			if (timed_out)
				break;
		}
		if (!r->done)
			unlink_request(c, r);
	}
	c->last_call_ms = clock_now_ms();
	/* A caller that was handed the role may be leaving without it: pass it on. */
	if (!c->reading)
		wire_promote(c);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&r->cv);
	return rc;
}

void
wire_free(struct fxb_client *c)
{
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_off = c->rx_cap = 0;
	free(c->msg);
	c->msg = NULL;
	c->msg_len = c->msg_cap = 0;
	free(c->wbuf);
	c->wbuf = NULL;
	c->wbuf_len = c->wbuf_cap = 0;
}
