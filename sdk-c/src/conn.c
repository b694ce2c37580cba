/* conn.c: a client's service thread, its libwebsockets context and its one connection.
 *
 * Everything that touches lws runs here, on the service thread; other threads only call
 * conn_wake() (lws_cancel_service), and fxb_client_new/free create and destroy the
 * context around the thread's life. The thread connects from a sul, says session.hello
 * (with the resume token once it has one), writes queued requests one lws_write per
 * writeable callback, reassembles replies and hands each to its waiter by JSON-RPC id.
 * When the connection drops it fails the calls in flight with FXB_ECONNECT at once and
 * reconnects with backoff; the hello on the new connection resumes the session, so its
 * leases survive a drop shorter than the broker's grace period.
 */
#include "client.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBPROTOCOL "fixture-broker.v1"
#define MAX_REPLY_BYTES ((size_t)64 << 20)
#define CLOSE_WAIT_MS 2000
/* The broker's close code for a connection whose session another client resumed. */
#define CLOSE_TAKEN_OVER 4001

/* The broker keeps a dropped session for 5 s by default: the first attempts come fast. */
static const uint32_t backoff_ms[] = {100, 250, 500, 1000, 2000};

static const lws_retry_bo_t retry_policy = {
    .retry_ms_table = backoff_ms,
    .retry_ms_table_count = LWS_ARRAY_SIZE(backoff_ms),
    .conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
    .secs_since_valid_ping = 20,
    .secs_since_valid_hangup = 30,
    .jitter_percent = 20,
};

static int callback(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

static const struct lws_protocols protocols[] = {
    {"fxb", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* lws logs to stderr by default, which is noise in a test run: errors surface through our
 * return codes instead. FXB_DEBUG=1 shows lws's notices, FXB_DEBUG=2 its decisions too. */
static void
log_init(void)
{
	const char *d = getenv("FXB_DEBUG");
	int level = 0;

	if (d && !strcmp(d, "1"))
		level = LLL_ERR | LLL_WARN | LLL_NOTICE;
	else if (d && !strcmp(d, "2"))
		level = LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO;
	lws_set_log_level(level, NULL);
}

int
conn_encode(json_int_t id, const char *method, json_t *params, unsigned char **buf, size_t *len)
{
	json_t *req;
	size_t n;
	unsigned char *b;

	*buf = NULL;
	*len = 0;
	if (!params)
		params = json_object();
	req = json_pack(
	    "{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params", params);
	if (!req)
		return FXB_ENOMEM;
	n = json_dumpb(req, NULL, 0, JSON_COMPACT);
	b = n ? malloc(LWS_PRE + n + 1) : NULL;
	if (!b) {
		json_decref(req);
		return FXB_ENOMEM;
	}
	json_dumpb(req, (char *)b + LWS_PRE, n, JSON_COMPACT);
	b[LWS_PRE + n] = '\0';
	json_decref(req);
	*buf = b;
	*len = n;
	return 0;
}

/* Finishes every request of *list with status and wakes their waiters (under mu). */
static void
fail_requests(struct fxb_client *c, struct request **list, int status)
{
	struct request *r;

	while ((r = *list)) {
		*list = r->next;
		r->next = NULL;
		r->done = 1;
		r->status = status;
	}
	pthread_cond_broadcast(&c->cv);
}

/* Replaces the string in *slot by a copy of s, keeping the old one alive for borrowed
 * pointers (under mu). Returns 0, or -1 when out of memory with nothing changed. */
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

/* Sets why the client failed or dropped (under mu); broker_name may be NULL. */
static void set_failure(struct fxb_client *c, int code, int broker_code, const char *broker_name,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
set_failure(
    struct fxb_client *c, int code, int broker_code, const char *broker_name, const char *fmt, ...)
{
	va_list ap;

	c->fail_code = code;
	c->fail_broker_code = broker_code;
	snprintf(c->fail_name, sizeof c->fail_name, "%s", broker_name ? broker_name : "");
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
	va_end(ap);
}

/* Queues the session.hello for the new connection (under mu): with the resume token when
 * the client has one and with_resume is set. Returns 0, or -1 when out of memory. */
static int
hello_prepare(struct fxb_client *c, int with_resume)
{
	json_t *params = json_pack("{s:s}", "client", c->name);

	if (!params)
		return -1;
	if (c->token && json_object_set_new(params, "token", json_string(c->token)))
		goto fail;
	if (with_resume && c->resume &&
	    json_object_set_new(params, "resume", json_string(c->resume)))
		goto fail;
	free(c->hello_buf);
	c->hello_id = c->next_id++;
	if (conn_encode(c->hello_id, "session.hello", params, &c->hello_buf, &c->hello_len))
		return -1;
	return 0;
fail:
	json_decref(params);
	return -1;
}

/* Takes the reply to session.hello (under mu). Returns 1 when there is something to
 * write, 0 when not, and -1 when the connection must close. */
static int
hello_answered(struct fxb_client *c, json_t *msg)
{
	json_t *res = json_object_get(msg, "result");
	json_t *err = json_object_get(msg, "error");
	json_t *cap;
	const char *sid, *rt, *name, *text;
	int code;

	c->hello_id = 0;
	if (json_is_object(res)) {
		sid = json_string_value(json_object_get(res, "session"));
		rt = json_string_value(json_object_get(res, "resume"));
		if (!sid || !rt) {
			if (!c->ever_open) {
				c->state = CONN_FAILED;
				set_failure(c, FXB_EPROTO, 0, NULL,
				    "session.hello: the reply has no session or resume token");
			}
			pthread_cond_broadcast(&c->cv);
			return -1;
		}
		if (replace_string(c, &c->session, sid) || replace_string(c, &c->resume, rt)) {
			if (!c->ever_open) {
				c->state = CONN_FAILED;
				set_failure(c, FXB_ENOMEM, 0, NULL, "session.hello: out of memory");
			}
			pthread_cond_broadcast(&c->cv);
			return -1;
		}
		cap = json_object_get(json_object_get(res, "limits"), "max_message_bytes");
		c->max_message = json_integer_value(cap) > 0 ? (size_t)json_integer_value(cap) : 0;
		c->state = CONN_OPEN;
		c->ever_open = 1;
		c->retry_count = 0;
		pthread_cond_broadcast(&c->cv);
		return c->txq != NULL;
	}

	code = (int)json_integer_value(json_object_get(err, "code"));
	name = json_string_value(json_object_get(json_object_get(err, "data"), "name"));
	text = json_string_value(json_object_get(err, "message"));
	if (c->ever_open && name && !strcmp(name, "RESUME_UNKNOWN")) {
		/* The grace period ran out, or another client took the session over: its
		 * leases are gone. A fresh session keeps this client usable. */
		return hello_prepare(c, 0) ? -1 : 1;
	}
	if (!c->ever_open) {
		c->state = CONN_FAILED;
		if (json_is_object(err))
			set_failure(c, FXB_EBROKER, code, name ? name : "",
			    "session.hello: %s (%s)", text ? text : "error",
			    name ? name : "no name");
		else
			set_failure(c, FXB_EPROTO, 0, NULL,
			    "session.hello: the reply has neither result nor error");
		pthread_cond_broadcast(&c->cv);
	}
	return -1;
}

/* Hands one whole message to its waiter. Returns 0, or -1 to close the connection. */
static int
dispatch(struct fxb_client *c, struct lws *wsi)
{
	struct request **pp, *r;
	json_t *msg, *idv;
	json_int_t id;
	int rc = 0;

	/* A message that is not JSON, or has no integer id, cannot be matched to a call:
	 * its caller times out. */
	msg = json_loadb((const char *)c->rx, c->rx_len, 0, NULL);
	if (!msg)
		return 0;
	lws_validity_confirmed(wsi);
	idv = json_object_get(msg, "id");
	if (!json_is_integer(idv)) {
		json_decref(msg);
		return 0;
	}
	id = json_integer_value(idv);

	pthread_mutex_lock(&c->mu);
	if (c->hello_id && id == c->hello_id) {
		rc = hello_answered(c, msg);
	} else {
		for (pp = &c->sent; (r = *pp); pp = &r->next) {
			if (r->id != id)
				continue;
			*pp = r->next;
			r->next = NULL;
			r->reply = msg;
			msg = NULL;
			r->status = FXB_OK;
			r->done = 1;
			pthread_cond_broadcast(&c->cv);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	json_decref(msg);
	if (rc > 0)
		lws_callback_on_writable(wsi);
	return rc < 0 ? -1 : 0;
}

static int
on_receive(struct fxb_client *c, struct lws *wsi, const void *in, size_t len)
{
	size_t cap;
	unsigned char *p;

	if (c->rx_len + len > MAX_REPLY_BYTES) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
		return -1;
	}
	if (c->rx_len + len + 1 > c->rx_cap) {
		cap = c->rx_cap ? c->rx_cap : 4096;
		while (cap < c->rx_len + len + 1)
			cap *= 2;
		if (!(p = realloc(c->rx, cap)))
			return -1;
		c->rx = p;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (dispatch(c, wsi)) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	c->rx_len = 0;
	return 0;
}

/* One lws_write per call: the hello first, then the oldest queued request. The write
 * happens under mu because the buffer belongs to a waiter that may time out and free it
 * as soon as mu is released. */
static int
on_writeable(struct fxb_client *c, struct lws *wsi)
{
	unsigned char *hello = NULL;
	struct request *r = NULL;
	int more, failed = 0;

	pthread_mutex_lock(&c->mu);
	if (c->want_close) {
		pthread_mutex_unlock(&c->mu);
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (c->hello_buf) {
		hello = c->hello_buf;
		c->hello_buf = NULL;
		failed = lws_write(wsi, hello + LWS_PRE, c->hello_len, LWS_WRITE_TEXT) <
		         (int)c->hello_len;
	} else if (c->state == CONN_OPEN && (r = c->txq)) {
		if (!(c->txq = r->next))
			c->txq_tail = &c->txq;
		r->next = c->sent;
		c->sent = r;
		failed = lws_write(wsi, r->buf + LWS_PRE, r->len, LWS_WRITE_TEXT) < (int)r->len;
	}
	more = c->state == CONN_OPEN && c->txq;
	pthread_mutex_unlock(&c->mu);

	free(hello);
	if (failed)
		return -1;
	if (more)
		lws_callback_on_writable(wsi);
	return 0;
}

static void connect_cb(lws_sorted_usec_list_t *sul);

/* The connection is gone, or never came (service thread; detail may be NULL). Fails what
 * was in flight, then reconnects unless the client is closing or has never had a
 * session. Only the first report of an attempt counts. */
static void
on_dropped(struct fxb_client *c, const char *what, const char *detail)
{
	int reconnect = 0, was_up, hint;

	if (!c->linked)
		return;
	c->linked = 0;
	c->wsi = NULL;
	c->rx_len = 0;
	if (!detail && c->close_why[0])
		detail = c->close_why;
	pthread_mutex_lock(&c->mu);
	was_up = c->established;
	c->established = 0;
	free(c->hello_buf);
	c->hello_buf = NULL;
	c->hello_id = 0;
	fail_requests(c, &c->sent, c->want_close ? FXB_ECLOSED : FXB_ECONNECT);
	if (c->want_close || c->stop) {
		c->state = CONN_CLOSED;
	} else if (c->state == CONN_FAILED) {
		/* Keep the first reason: a hello error says more than the close after it. */
	} else {
		c->state = c->ever_open ? CONN_CONNECTING : CONN_FAILED;
		reconnect = c->ever_open;
		/* A broker drops a handshake with a wrong bearer token without an HTTP
		 * status, so lws can only say the read failed: say what it likely means. */
		hint = c->token && !c->ever_open && !was_up && detail &&
		       strcmp(detail, "Unable to connect");
		set_failure(c, FXB_ECONNECT, 0, NULL, "%s %s%s%s%s", what, c->url,
		    detail ? ": " : "", detail ? detail : "",
		    hint ? " (is the bearer token right?)" : "");
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);

	if (reconnect)
		lws_retry_sul_schedule(
		    c->ctx, 0, &c->sul_connect, &retry_policy, connect_cb, &c->retry_count);
}

static void
connect_cb(lws_sorted_usec_list_t *sul)
{
	struct fxb_client *c = lws_container_of(sul, struct fxb_client, sul_connect);
	struct lws_client_connect_info i;
	int closing;

	pthread_mutex_lock(&c->mu);
	closing = c->want_close || c->stop;
	pthread_mutex_unlock(&c->mu);
	if (closing || c->wsi)
		return;

	memset(&i, 0, sizeof i);
	i.context = c->ctx;
	i.address = c->address;
	i.port = c->port;
	i.path = c->path;
	i.host = c->host_header;
	i.origin = c->host_header;
	i.ssl_connection = c->tls ? LCCSCF_USE_SSL : 0;
	i.protocol = SUBPROTOCOL;
	i.local_protocol_name = protocols[0].name;
	i.retry_and_idle_policy = &retry_policy;
	i.pwsi = &c->wsi;
	c->linked = 1;
	c->close_why[0] = '\0';
	/* A NULL return may or may not have been reported through CONNECTION_ERROR
	 * already; c->linked says which. */
	if (!lws_client_connect_via_info(&i))
		on_dropped(c, "cannot connect to", "the connection could not be started");
}

static int
append_auth(struct fxb_client *c, struct lws *wsi, void *in, size_t len)
{
	unsigned char **p = (unsigned char **)in, *end = *p + len;
	char value[1024];
	int n;

	if (!c->token)
		return 0;
	n = snprintf(value, sizeof value, "Bearer %s", c->token);
	if (n < 0 || (size_t)n >= sizeof value)
		return -1;
	if (lws_add_http_header_by_token(
	        wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (const unsigned char *)value, n, p, end))
		return -1;
	return 0;
}

static int
on_established(struct fxb_client *c)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	c->established = 1;
	c->connects++;
	c->state = CONN_HELLO;
	rc = hello_prepare(c, !c->taken_over);
	c->taken_over = 0;
	if (rc && !c->ever_open) {
		c->state = CONN_FAILED;
		set_failure(c, FXB_ENOMEM, 0, NULL, "session.hello: out of memory");
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static void
on_wake(struct fxb_client *c)
{
	int want;

	pthread_mutex_lock(&c->mu);
	want =
	    c->established && (c->want_close || c->hello_buf || (c->state == CONN_OPEN && c->txq));
	pthread_mutex_unlock(&c->mu);
	if (want && c->wsi)
		lws_callback_on_writable(c->wsi);
}

static int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct fxb_client *c = lws_context_user(lws_get_context(wsi));
	char why[160];

	(void)user;
	if (!c)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return append_auth(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (on_established(c))
			return -1;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(c, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return on_writeable(c, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* in is the close code (2 bytes, big-endian) and a reason: kept for the
		 * message the waiters get when CLOSED follows. */
		if (len >= 2) {
			const unsigned char *b = in;
			unsigned code = (unsigned)b[0] << 8 | b[1];

			snprintf(c->close_why, sizeof c->close_why,
			    "closed by the broker (%u%s%.*s)", code, len > 2 ? " " : "",
			    (int)(len - 2 > 80 ? 80 : len - 2), (const char *)b + 2);
			/* Resuming would take the session back from its new owner, which would
			 * take it back in turn: start afresh instead. */
			if (code == CLOSE_TAKEN_OVER)
				c->taken_over = 1;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (in)
			snprintf(why, sizeof why, "%.*s", (int)strnlen(in, len ? len : 120),
			    (const char *)in);
		on_dropped(c, "cannot connect to", in ? why : NULL);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		on_dropped(c, "lost the connection to", NULL);
		break;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		/* A handshake that times out (a broker that accepts and never answers) ends
		 * here, with no CONNECTION_ERROR. */
		on_dropped(c, "cannot connect to", "no answer to the WebSocket handshake");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		/* The last word on any attempt, whatever lws reported before (or not). */
		if (wsi == c->wsi)
			on_dropped(c, "lost the connection to", NULL);
		break;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		on_wake(c);
		break;
	default:
		break;
	}
	return 0;
}

static void *
service_main(void *arg)
{
	struct fxb_client *c = arg;
	int stop = 0;

	lws_sul_schedule(c->ctx, 0, &c->sul_connect, connect_cb, 1);
	while (!stop) {
		if (lws_service(c->ctx, 0) < 0) {
			pthread_mutex_lock(&c->mu);
			c->state = CONN_FAILED;
			set_failure(
			    c, FXB_ECONNECT, 0, NULL, "the service loop of %s stopped", c->url);
			fail_requests(c, &c->sent, FXB_ECONNECT);
			pthread_mutex_unlock(&c->mu);
			break;
		}
		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
	}
	lws_sul_cancel(&c->sul_connect);
	return NULL;
}

int
conn_start(struct fxb_client *c)
{
	struct lws_context_creation_info info;
	sigset_t all, old;
	int rc, secs;

	pthread_once(&log_once, log_init);
	secs = c->timeout_ms / 1000;
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.user = c;
	/* The connection, the event pipe and spares: a small lookup table instead of one
	 * sized to the process's fd limit. */
	info.fd_limit_per_thread = 8;
	info.connect_timeout_secs = secs < 1 ? 1 : secs > 10 ? 10 : secs;
	info.timeout_secs = info.connect_timeout_secs;
	if (c->tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	c->ctx = lws_create_context(&info);
	if (!c->ctx) {
		set_failure(c, FXB_ENOMEM, 0, NULL, "cannot create the libwebsockets context");
		return FXB_ENOMEM;
	}

	/* The service thread takes no signals: they belong to the host's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, service_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		set_failure(
		    c, FXB_ENOMEM, 0, NULL, "cannot start the service thread: %s", strerror(rc));
		return FXB_ENOMEM;
	}
	c->thread_started = 1;
	return 0;
}

void
conn_wake(struct fxb_client *c)
{
	if (c->ctx)
		lws_cancel_service(c->ctx);
}

void
conn_stop(struct fxb_client *c)
{
	struct timespec deadline;
	int ms = c->timeout_ms < CLOSE_WAIT_MS ? c->timeout_ms : CLOSE_WAIT_MS;

	if (c->thread_started) {
		pthread_mutex_lock(&c->mu);
		c->want_close = 1;
		fail_requests(c, &c->txq, FXB_ECLOSED);
		c->txq_tail = &c->txq;
		pthread_mutex_unlock(&c->mu);
		conn_wake(c);

		/* The close handshake: our close frame, the broker's answer, CLOSED. */
		deadline_after(&deadline, ms);
		pthread_mutex_lock(&c->mu);
		while (c->established)
			if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT)
				break;
		c->stop = 1;
		pthread_mutex_unlock(&c->mu);
		conn_wake(c);
		pthread_join(c->thread, NULL);
		c->thread_started = 0;
	}
	if (c->ctx) {
		/* Closes what is left (a connection still being made) on this thread. */
		lws_context_destroy(c->ctx);
		c->ctx = NULL;
	}
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
	free(c->hello_buf);
	c->hello_buf = NULL;
}
