/* upstream.c: the broker's one session with an upstream broker, as a JSON-RPC client.
 *
 * One lws client connection on the broker's context, bound to a vhost of its own
 * ("upstream", no listener) whose client TLS context holds upstream_ca and the client
 * certificate, and to the protocol here. Calls are kept in one FIFO list: each is written
 * once the session is up (session.hello first, always), and taken off the list when its
 * reply comes, the connection is cut before it did, or the session is lost. Messages go out
 * one lws_write per writeable callback, as ws.c sends them; replies and notifications are
 * reassembled the same way.
 *
 * States: CONNECTING (no session yet; calls wait), HELLO (connected, session.hello sent;
 * calls wait), UP, RESUMING (the connection was cut; calls wait, new connections are tried
 * with backoff until the upstream's grace_ms has passed since the cut), DOWN (no session:
 * calls fail at once; a fresh session is tried with backoff). A call that was written when
 * the connection was cut fails with UPSTREAM_UNAVAILABLE: its reply is gone, and the
 * upstream cancels what it was waiting for (a lease granted just then is its session's, and
 * is released with it if the session is lost). The lost hook runs once per lost session.
 * A resume that is refused, whatever the reason, or answered with a fresh session, is a
 * lost session too.
 *
 * A host name in the URL is resolved at each connection on a thread of its own (struct
 * resolve): lws 4.1.6 here has no asynchronous DNS and would call getaddrinfo() on the
 * loop. lws then dials a numeric address, with the name as Host and as the TLS name.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "broker.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/upstream.h"
#include "net/ws.h"

#define TX_CHUNK (64 * 1024)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 2000
/* Until the first hello says otherwise. */
#define DEFAULT_DEAD_AFTER_MS 15000
#define DEFAULT_GRACE_MS 5000

/* The most addresses of a name kept from one resolution. */
#define RESOLVE_MAX 8

enum up_state { UP_CONNECTING, UP_HELLO, UP_UP, UP_RESUMING, UP_DOWN };

static const char *const state_names[] = { "connecting", "connecting", "up", "resuming", "down" };

struct up_call {
	struct up_call *next;
	int64_t id;
	char *text; /* the request */
	size_t len, off; /* off: bytes written so far */
	int sent;   /* written whole */
	int hello;  /* the session.hello of this connection */
	upstream_reply_fn fn; /* NULL: cancelled */
	void *arg;
};

/* A resolution of the upstream's host name on a thread of its own: lws 4.1.6 as built
 * here has no asynchronous DNS, and its connect calls getaddrinfo() on the loop. The
 * thread wakes the loop with lws_cancel_service() when it is done; the loop then connects
 * to a numeric address. upstream_free() abandons a resolution under way (the thread frees
 * it then); lock guards done, abandoned and the results. */
struct resolve {
	pthread_mutex_t lock;
	struct lws_context *ctx;
	char name[256];
	int done, abandoned;
	int rc; /* getaddrinfo()'s */
	int naddr;
	char addr[RESOLVE_MAX][INET6_ADDRSTRLEN];
};

struct upstream {
	struct broker *b;
	struct lws_vhost *vhost;
	struct upstream **slot; /* the vhost's protocol data: u, NULL once freed */
	struct lws *wsi;
	int connecting; /* a connect is under way and has not reported */
	int freeing;    /* upstream_free() is failing the open calls */
	int numeric;    /* address is an IP address: no resolution */
	struct resolve *resolving; /* the name's resolution under way */
	unsigned addr_turn; /* which of the name's addresses to dial: the next after a failure */
	char dialled[INET6_ADDRSTRLEN]; /* the address of the connection under way */
	char url[1024];
	char address[256];
	char path[512];
	int port;
	int tls;
	char token[512];
	char host[256]; /* this broker's host name, for the upstream's labels */

	enum up_state state;
	char session[32];
	char resume[64];
	int dead_after_ms, grace_ms;
	uint64_t cut_ms;
	int backoff_ms;
	char last_error[320];
	/* Why the last connection ended, when this side knows better than lws (a refused
	 * session.hello, a silent link); cleared by a successful hello. */
	char cause[200];
	uint64_t connects, resumes, lost;

	struct up_call *calls, *tail;
	int64_t next_id;
	size_t open_calls;
	char *rx;
	size_t rx_len, rx_cap;
	uint64_t seen_ms;
	int ping_due;

	lws_sorted_usec_list_t retry_timer, beat_timer;
	upstream_notify_fn on_notify;
	upstream_lost_fn on_lost;
	upstream_resumed_fn on_resumed;
};

static void connect_now(lws_sorted_usec_list_t *sul);
static void send_hello(struct upstream *u);
static void heartbeat(lws_sorted_usec_list_t *sul);

static void
call_free(struct up_call *c)
{
	free(c->text);
	free(c);
}

static void
call_append(struct upstream *u, struct up_call *c)
{
	c->next = NULL;
	if (u->tail)
		u->tail->next = c;
	else
		u->calls = c;
	u->tail = c;
	u->open_calls++;
}

static void
call_unlink(struct upstream *u, struct up_call *c)
{
	struct up_call **pp = &u->calls, *prev = NULL;

	for (; *pp && *pp != c; pp = &(*pp)->next)
		prev = *pp;
	if (!*pp)
		return;
	*pp = c->next;
	if (u->tail == c)
		u->tail = prev;
	u->open_calls--;
}

/* Fails every call that matches: all of them (sent_only 0) or those written (1). Each call
 * is taken off the list just before its callback runs, one at a time from the list itself:
 * a callback may make new calls (they are not failed here) or cancel calls still on the
 * list (upstream_cancel() finds them there, and their callbacks do not run). */
static void
fail_calls(struct upstream *u, int sent_only, int code, const char *text)
{
	struct fxb_error err = { 0 };
	int64_t last = u->next_id; /* calls made by the callbacks come after it */

	for (;;) {
		struct up_call *c;

		for (c = u->calls; c; c = c->next)
			if (c->id <= last && (!sent_only || c->sent || c->off))
				break;
		if (!c)
			return;
		call_unlink(u, c);
		if (c->fn) {
			error_set(&err, code, "%s", text);
			c->fn(u->b, c->arg, NULL, &err);
			error_clear(&err);
		}
		call_free(c);
	}
}

static void
schedule_retry(struct upstream *u)
{
	int ms = u->backoff_ms ? u->backoff_ms : BACKOFF_FIRST_MS;

	u->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
	lws_sul_schedule(u->b->ctx, 0, &u->retry_timer, connect_now, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* The session is gone for good: open calls fail with UPSTREAM_LOST, the hook runs, and
 * from now on calls fail at once until a fresh session is had. */
static void
session_lost(struct upstream *u, const char *why)
{
	struct fxb_error err = { 0 };

	log_warnx("upstream %s: session %s lost: %s", u->url, u->session, why);
	snprintf(u->last_error, sizeof u->last_error, "session lost: %s", why);
	u->session[0] = u->resume[0] = '\0';
	u->lost++;
	if (u->state == UP_RESUMING)
		u->state = UP_DOWN;
	error_set(&err, ERR_UPSTREAM_LOST, "the session with the upstream broker %s was lost: %s",
	    u->url, why);
	fail_calls(u, 0, err.code, err.text);
	if (u->on_lost)
		u->on_lost(u->b, &err);
	error_clear(&err);
}

/* The connection is gone (or never came): decides what comes next. */
static void
connection_gone(struct upstream *u, const char *why)
{
	enum up_state was = u->state;
	char text[1600], cause[sizeof u->cause];

	/* Said once: a later connection that fails has its own reason. */
	if (u->cause[0]) {
		snprintf(cause, sizeof cause, "%s", u->cause);
		u->cause[0] = '\0';
		why = cause;
	}
	u->wsi = NULL;
	u->ping_due = 0;
	free(u->rx);
	u->rx = NULL;
	u->rx_len = u->rx_cap = 0;
	lws_sul_cancel(&u->beat_timer);
	snprintf(u->last_error, sizeof u->last_error, "%s", why);
	snprintf(text, sizeof text, "the connection to the upstream broker %s was cut before "
	    "the reply came (%s)", u->url, why);
	/* A hello in flight is written again on the next connection. */
	for (struct up_call *c = u->calls, *next; c; c = next) {
		next = c->next;
		if (c->hello) {
			call_unlink(u, c);
			call_free(c);
		}
	}
	fail_calls(u, 1, ERR_UPSTREAM_UNAVAILABLE, text);
	for (struct up_call *c = u->calls; c; c = c->next)
		c->off = 0;
	if (u->resume[0]) {
		if (was != UP_RESUMING) {
			log_warnx("upstream %s: connection lost (%s); resuming session %s", u->url, why,
			    u->session);
			u->cut_ms = now_ms();
		}
		u->state = UP_RESUMING;
		if (now_ms() - u->cut_ms >= (uint64_t)u->grace_ms) {
			char lost[96];
			snprintf(lost, sizeof lost, "not back within the upstream's grace period (%d ms)",
			    u->grace_ms);
			session_lost(u, lost);
		}
	} else {
		if (was != UP_DOWN)
			log_warnx("upstream %s: %s; retrying", u->url, why);
		u->state = UP_DOWN;
		snprintf(text, sizeof text, "the upstream broker %s cannot be reached: %s", u->url, why);
		fail_calls(u, 0, ERR_UPSTREAM_UNAVAILABLE, text);
	}
	schedule_retry(u);
}

static void *
resolve_run(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints, *res = NULL, *ai;
	int rc, n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(r->name, NULL, &hints, &res);
	pthread_mutex_lock(&r->lock);
	r->rc = rc;
	for (ai = rc == 0 ? res : NULL; ai && n < RESOLVE_MAX; ai = ai->ai_next)
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, r->addr[n], sizeof r->addr[n], NULL, 0,
		    NI_NUMERICHOST) == 0)
			n++;
	r->naddr = n;
	r->done = 1;
	if (r->abandoned) {
		pthread_mutex_unlock(&r->lock);
		pthread_mutex_destroy(&r->lock);
		free(r);
	} else {
		lws_cancel_service(r->ctx); /* under the lock: the context outlives it then */
		pthread_mutex_unlock(&r->lock);
	}
	if (res)
		freeaddrinfo(res);
	return NULL;
}

/* Starts the resolution of u->address on a thread. Returns 0, or -1 (no thread). */
static int
resolve_start(struct upstream *u)
{
	struct resolve *r = calloc(1, sizeof *r);
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (!r)
		return -1;
	pthread_mutex_init(&r->lock, NULL);
	r->ctx = u->b->ctx;
	snprintf(r->name, sizeof r->name, "%s", u->address);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, resolve_run, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_destroy(&r->lock);
		free(r);
		return -1;
	}
	u->resolving = r;
	return 0;
}

/* Frees u's resolution, or leaves it to its thread when that is still running. */
static void
resolve_drop(struct upstream *u)
{
	struct resolve *r = u->resolving;
	int done;

	if (!r)
		return;
	u->resolving = NULL;
	pthread_mutex_lock(&r->lock);
	done = r->done;
	r->abandoned = 1;
	pthread_mutex_unlock(&r->lock);
	if (done) {
		pthread_mutex_destroy(&r->lock);
		free(r);
	}
}

/* Dials the upstream at ads (a numeric address); the URL's host name stays the Host
 * header and, for wss://, the name TLS sends (SNI) and checks the certificate against. */
static void
connect_to(struct upstream *u, const char *ads)
{
	struct lws_client_connect_info i;
	struct lws *wsi;

	memset(&i, 0, sizeof i);
	i.context = u->b->ctx;
	i.vhost = u->vhost;
	i.address = ads;
	i.port = u->port;
	i.path = u->path;
	i.host = u->address;
	i.origin = u->address;
	i.protocol = WS_SUBPROTOCOL;
	i.local_protocol_name = "fxb-upstream";
	i.ssl_connection = u->tls ? LCCSCF_USE_SSL : 0;
	i.opaque_user_data = u;
	snprintf(u->dialled, sizeof u->dialled, "%s", ads);
	u->connecting = 1;
	u->connects++;
	wsi = lws_client_connect_via_info(&i);
	if (!wsi && u->connecting) {
		u->connecting = 0;
		connection_gone(u, "cannot start a connection");
		return;
	}
	if (wsi && u->connecting) {
		/* Watched from now: an upgrade or a hello that never comes is a dead link too. */
		u->wsi = wsi;
		u->seen_ms = now_ms();
		lws_sul_schedule(u->b->ctx, 0, &u->beat_timer, heartbeat,
		    (lws_usec_t)(u->dead_after_ms / 4 + 1) * LWS_US_PER_MS);
	}
}

/* The loop was woken: when u's resolution is done, dials one of its addresses. */
static void
resolve_check(struct upstream *u)
{
	struct resolve *r = u->resolving;
	char ads[INET6_ADDRSTRLEN], why[400];
	int done, rc = 0, n = 0;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	if ((done = r->done)) {
		rc = r->rc;
		n = r->naddr;
		if (n)
			snprintf(ads, sizeof ads, "%s", r->addr[u->addr_turn % (unsigned)n]);
	}
	pthread_mutex_unlock(&r->lock);
	if (!done)
		return;
	resolve_drop(u);
	if (rc != 0 || n == 0) {
		snprintf(why, sizeof why, "cannot resolve %.200s: %s", u->address,
		    rc ? gai_strerror(rc) : "no address");
		connection_gone(u, why);
		return;
	}
	connect_to(u, ads);
}

static void
connect_now(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, retry_timer);

	if (u->wsi || u->connecting || u->resolving)
		return;
	if (u->state == UP_RESUMING && now_ms() - u->cut_ms >= (uint64_t)u->grace_ms) {
		char lost[96];
		snprintf(lost, sizeof lost, "not back within the upstream's grace period (%d ms)",
		    u->grace_ms);
		session_lost(u, lost);
	}
	if (u->numeric) {
		connect_to(u, u->address);
		return;
	}
	/* A name is resolved again at each connection, off the loop. */
	if (resolve_start(u) == -1)
		connection_gone(u, "cannot start a thread to resolve the upstream's host name");
}

/* Writes one chunk of the first call that may go now; 1 when something was written. */
static int
write_next(struct upstream *u)
{
	unsigned char *buf;
	struct up_call *c;
	size_t chunk;
	int flags, n;

	if (u->ping_due) {
		unsigned char ping[LWS_PRE + 4] = { [LWS_PRE] = 'f', 'x', 'b', '?' };
		u->ping_due = 0;
		if (lws_write(u->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 4)
			return -1;
		return 1;
	}
	for (c = u->calls; c; c = c->next)
		if (!c->sent && (c->hello || u->state == UP_UP))
			break;
	if (!c)
		return 0;
	chunk = c->len - c->off < TX_CHUNK ? c->len - c->off : TX_CHUNK;
	if (!(buf = malloc(LWS_PRE + chunk)))
		return -1;
	memcpy(buf + LWS_PRE, c->text + c->off, chunk);
	flags = lws_write_ws_flags(LWS_WRITE_TEXT, c->off == 0, c->off + chunk == c->len);
	n = lws_write(u->wsi, buf + LWS_PRE, chunk, (enum lws_write_protocol)flags);
	free(buf);
	if (n < (int)chunk)
		return -1;
	c->off += chunk;
	if (c->off == c->len)
		c->sent = 1;
	return 1;
}

static int
more_to_write(const struct upstream *u)
{
	if (u->ping_due)
		return 1;
	for (const struct up_call *c = u->calls; c; c = c->next)
		if (!c->sent && (c->hello || u->state == UP_UP))
			return 1;
	return 0;
}

/* Queues a call; the text is built here so that its id is in it. A hello goes first on
 * the list, a call with first before every call not yet sent. Returns the call. */
static struct up_call *
enqueue(struct upstream *u, const char *method, json_t *params, upstream_reply_fn fn, void *arg,
    int hello, int first)
{
	struct up_call *c = calloc(1, sizeof *c);
	json_t *msg;

	if (!c) {
		json_decref(params);
		return NULL;
	}
	c->id = ++u->next_id;
	msg = params ? json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)c->id,
	    "method", method, "params", params) : json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0",
	    "id", (json_int_t)c->id, "method", method);
	if (!msg || !(c->text = json_dumps(msg, JSON_COMPACT))) {
		json_decref(msg);
		free(c);
		return NULL;
	}
	json_decref(msg);
	c->len = strlen(c->text);
	c->fn = fn;
	c->arg = arg;
	c->hello = hello;
	if (hello || first) {
		/* Before every call that waited for the session (a first after the hello). */
		struct up_call **pp = &u->calls, *prev = NULL;

		while (*pp && ((*pp)->sent || (*pp)->off || (first && (*pp)->hello))) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		c->next = *pp;
		*pp = c;
		if (u->tail == prev)
			u->tail = c;
		u->open_calls++;
	} else {
		call_append(u, c);
	}
	if (u->wsi && (hello || u->state == UP_UP))
		lws_callback_on_writable(u->wsi);
	return c;
}

static void
heartbeat(lws_sorted_usec_list_t *sul)
{
	struct upstream *u = lws_container_of(sul, struct upstream, beat_timer);
	uint64_t silent = now_ms() - u->seen_ms;

	if (!u->wsi)
		return;
	if (silent >= (uint64_t)u->dead_after_ms) {
		log_warnx("upstream %s: nothing for %llu ms (dead_after_ms %d): dropping the "
		    "connection", u->url, (unsigned long long)silent, u->dead_after_ms);
		snprintf(u->cause, sizeof u->cause, "nothing from it for %llu ms",
		    (unsigned long long)silent);
		lws_set_timeout(u->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	if (silent >= (uint64_t)u->dead_after_ms / 2 && !u->connecting) {
		u->ping_due = 1;
		lws_callback_on_writable(u->wsi);
	}
	lws_sul_schedule(u->b->ctx, 0, &u->beat_timer, heartbeat,
	    (lws_usec_t)(u->dead_after_ms / 4 + 1) * LWS_US_PER_MS);
}

/* One limit of the upstream's hello: an integer, clamped to [lo, hi]; *v is left alone when
 * the member is absent or not an integer. Said in the log when it had to be changed. */
static void
limit_read(json_t *limits, const char *name, int lo, int hi, int *v, const char *url)
{
	json_t *j = json_object_get(limits, name);
	json_int_t n;

	if (!j)
		return;
	if (!json_is_integer(j)) {
		log_warnx("upstream %s: limits.%s is not an integer; keeping %d ms", url, name, *v);
		return;
	}
	n = json_integer_value(j);
	if (n < lo || n > hi) {
		log_warnx("upstream %s: limits.%s %lld is out of range; using %d ms", url, name,
		    (long long)n, n < lo ? lo : hi);
		n = n < lo ? lo : hi;
	}
	*v = (int)n;
}

void
upstream_limits_read(json_t *limits, int *dead_after_ms, int *grace_ms, const char *url)
{
	int heartbeat_ms = 0;

	limit_read(limits, "dead_after_ms", UPSTREAM_DEAD_AFTER_MIN_MS, UPSTREAM_DEAD_AFTER_MAX_MS,
	    dead_after_ms, url);
	limit_read(limits, "grace_ms", 0, UPSTREAM_GRACE_MAX_MS, grace_ms, url);
	/* Not used here (this side pings at half dead_after_ms), checked all the same. */
	limit_read(limits, "heartbeat_ms", 0, UPSTREAM_GRACE_MAX_MS, &heartbeat_ms, url);
}

static void
hello_done(struct broker *b, void *arg, json_t *result, const struct fxb_error *err)
{
	struct upstream *u = arg;
	json_t *limits;
	const char *sid = NULL, *resume = NULL;
	int resumed = 0;

	(void)b;
	if (!result) {
		if (err->code == ERR_RESUME_UNKNOWN && u->resume[0]) {
			session_lost(u, "the upstream broker no longer knows the session (its grace "
			    "period passed, or it restarted)");
			u->state = UP_HELLO;
			send_hello(u);
			return;
		}
		if (u->freeing)
			return; /* failed here by upstream_free(), not answered */
		char cause[sizeof u->cause];

		snprintf(cause, sizeof cause, "session.hello refused: %.170s", err->text);
		if (strcmp(cause, u->last_error) != 0) /* once, not on every retry */
			log_warnx("upstream %s: %s", u->url, cause);
		/* A refused resume is a lost session whatever the reason (a revoked token, a
		 * quota, a draining upstream that does not know it): its leases end here too. */
		if (u->resume[0])
			session_lost(u, cause);
		snprintf(u->cause, sizeof u->cause, "%s", cause);
		if (u->wsi)
			lws_set_timeout(u->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	json_unpack(result, "{s:s, s:s, s?b}", "session", &sid, "resume", &resume, "resumed",
	    &resumed);
	if (!sid || !resume) {
		log_warnx("upstream %s: session.hello answered without a session", u->url);
		if (u->wsi)
			lws_set_timeout(u->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	/* A fresh session where the old one was asked back: the old one is gone. */
	if (u->resume[0] && !resumed)
		session_lost(u, "the upstream broker answered the resume with a fresh session");
	if ((limits = json_object_get(result, "limits")))
		upstream_limits_read(limits, &u->dead_after_ms, &u->grace_ms, u->url);
	if (resumed) {
		u->resumes++;
		log_info("upstream %s: session %s resumed", u->url, sid);
	} else {
		log_info("upstream %s: session %s", u->url, sid);
	}
	snprintf(u->session, sizeof u->session, "%s", sid);
	snprintf(u->resume, sizeof u->resume, "%s", resume);
	u->state = UP_UP;
	u->backoff_ms = 0;
	u->last_error[0] = u->cause[0] = '\0';
	if (resumed && u->on_resumed)
		u->on_resumed(u->b);
	if (u->wsi && more_to_write(u))
		lws_callback_on_writable(u->wsi);
}

static void
send_hello(struct upstream *u)
{
	json_t *params = json_pack("{s:s, s:{s:s}}", "client", "fixture-broker " FXB_VERSION_STR
	    " (forwarding)", "labels", "runner_host", u->host);

	if (params && u->token[0])
		json_object_set_new(params, "token", json_string(u->token));
	if (params && u->resume[0])
		json_object_set_new(params, "resume", json_string(u->resume));
	if (!enqueue(u, "session.hello", params, hello_done, u, 1, 0) && u->wsi)
		lws_set_timeout(u->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Turns a JSON-RPC error object into err. */
static void
error_from_json(json_t *e, struct fxb_error *err)
{
	json_t *data = json_object_get(e, "data");
	const char *msg = json_string_value(json_object_get(e, "message"));
	int code = (int)json_integer_value(json_object_get(e, "code"));

	error_set_data(err, code ? code : ERR_INTERNAL, json_is_object(data) ? json_deep_copy(data)
	    : NULL, "%s", msg ? msg : "the upstream broker answered an error without a message");
}

static void
on_message(struct upstream *u, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *msg = json_loadb(text, len, 0, &jerr), *id, *method;
	struct up_call *c;

	if (!msg || !json_is_object(msg)) {
		log_warnx("upstream %s: a message that is not a JSON object: %s", u->url, jerr.text);
		json_decref(msg);
		return;
	}
	if ((method = json_object_get(msg, "method")) && json_is_string(method) &&
	    !json_object_get(msg, "id")) {
		if (u->on_notify)
			u->on_notify(u->b, json_string_value(method), json_object_get(msg, "params"));
		json_decref(msg);
		return;
	}
	id = json_object_get(msg, "id");
	for (c = u->calls; c && !(c->sent && json_is_integer(id) && c->id == json_integer_value(id));
	    c = c->next)
		;
	if (!c) {
		log_debug("upstream %s: a reply to no open call", u->url);
		json_decref(msg);
		return;
	}
	call_unlink(u, c);
	if (c->fn) {
		json_t *result = json_object_get(msg, "result");
		struct fxb_error err = { 0 };

		if (!result)
			error_from_json(json_object_get(msg, "error"), &err);
		c->fn(u->b, c->arg, result, result ? NULL : &err);
		error_clear(&err);
	}
	call_free(c);
	json_decref(msg);
}

static int
on_receive(struct upstream *u, struct lws *wsi, const void *in, size_t len)
{
	size_t cap = u->b->cfg.max_message_bytes * 4;

	u->seen_ms = now_ms();
	if (lws_frame_is_binary(wsi))
		return -1;
	if (u->rx_len + len > cap) {
		log_warnx("upstream %s: a message over %zu bytes; dropping the connection", u->url, cap);
		return -1;
	}
	if (u->rx_len + len + 1 > u->rx_cap) {
		size_t ncap = (u->rx_len + len + 1) * 2;
		char *grown = realloc(u->rx, ncap);
		if (!grown)
			return -1;
		u->rx = grown;
		u->rx_cap = ncap;
	}
	memcpy(u->rx + u->rx_len, in, len);
	u->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	on_message(u, u->rx, u->rx_len);
	u->rx_len = 0;
	return 0;
}

static int
cb_upstream(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct upstream *u;
	int rc;

	(void)user;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		/* Broadcast to every vhost's protocols; this vhost's slot names u. */
		struct upstream **slot = lws_protocol_vh_priv_get(lws_get_vhost(wsi),
		    lws_get_protocol(wsi));

		if (slot && *slot)
			resolve_check(*slot);
		return 0;
	}
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_CLIENT_CLOSED:
		break;
	default:
		return 0;
	}
	if (!(u = lws_get_opaque_user_data(wsi)))
		return reason == LWS_CALLBACK_CLIENT_WRITEABLE ? -1 : 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		/* A resume says so in the upgrade request too: a draining upstream refuses
		 * every other new connection with 503. */
		unsigned char **p = in, *end = *p + len;

		if (u->resume[0] && lws_add_http_header_by_name(wsi,
		    (const unsigned char *)WS_RESUME_HEADER, (const unsigned char *)u->resume,
		    (int)strlen(u->resume), p, end))
			return -1;
		break;
	}
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		char why[320];
		snprintf(why, sizeof why, "cannot connect: %.120s%s", in ? (const char *)in
		    : "connection refused or closed", u->tls && in && strstr(in, "SSL") ? " (TLS: "
		    "does upstream_ca name the CA that signed its certificate, for this host name?)" : "");
		u->connecting = 0;
		u->addr_turn++; /* a name's next address, next time */
		if (u->wsi == wsi || !u->wsi)
			connection_gone(u, why);
		break;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		u->connecting = 0;
		u->wsi = wsi;
		u->seen_ms = now_ms();
		if (u->state != UP_RESUMING)
			u->state = UP_HELLO;
		log_debug("upstream %s: connected (%s)", u->url, u->dialled);
		send_hello(u);
		lws_sul_schedule(u->b->ctx, 0, &u->beat_timer, heartbeat,
		    (lws_usec_t)(u->dead_after_ms / 4 + 1) * LWS_US_PER_MS);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return on_receive(u, wsi, in, len);
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		u->seen_ms = now_ms();
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if ((rc = write_next(u)) < 0)
			return -1;
		if (more_to_write(u))
			lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		u->connecting = 0;
		if (u->wsi == wsi)
			connection_gone(u, "the connection closed");
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols upstream_protocols[] = {
	{ "fxb-upstream", cb_upstream, 0, 4096, 0, NULL, TX_CHUNK },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* Reads the first line of the token file into u->token. Returns 0 or -1 with err. */
static int
read_token(struct upstream *u, const char *path, struct fxb_error *err)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		error_set(err, ERR_INVALID_PARAMS, "upstream_token_file: cannot read %s", path);
		return -1;
	}
	if (!fgets(u->token, sizeof u->token, f))
		u->token[0] = '\0';
	fclose(f);
	n = strcspn(u->token, "\r\n");
	u->token[n] = '\0';
	while (n && (u->token[n - 1] == ' ' || u->token[n - 1] == '\t'))
		u->token[--n] = '\0';
	if (!u->token[0]) {
		error_set(err, ERR_INVALID_PARAMS, "upstream_token_file: %s is empty", path);
		return -1;
	}
	return 0;
}

struct upstream *
upstream_new(struct broker *b, upstream_notify_fn on_notify, upstream_lost_fn on_lost,
    upstream_resumed_fn on_resumed, struct fxb_error *err)
{
	const struct config *cfg = &b->cfg;
	struct upstream *u = calloc(1, sizeof *u);
	struct lws_context_creation_info info;
	const char *prot, *ads, *path;
	char copy[sizeof cfg->upstream];
	struct upstream **slot;

	if (!u) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	u->b = b;
	u->dead_after_ms = DEFAULT_DEAD_AFTER_MS;
	u->grace_ms = DEFAULT_GRACE_MS;
	u->on_notify = on_notify;
	u->on_lost = on_lost;
	u->on_resumed = on_resumed;
	snprintf(u->url, sizeof u->url, "%s", cfg->upstream);
	snprintf(copy, sizeof copy, "%s", cfg->upstream);
	if (lws_parse_uri(copy, &prot, &ads, &u->port, &path) || !ads[0] ||
	    (strcmp(prot, "ws") && strcmp(prot, "wss"))) {
		error_set(err, ERR_INVALID_PARAMS, "upstream: \"%s\" is not a ws:// or wss:// URL", u->url);
		goto fail;
	}
	u->tls = !strcmp(prot, "wss");
	snprintf(u->address, sizeof u->address, "%s", ads);
	{
		unsigned char bin[sizeof(struct in6_addr)];
		u->numeric = inet_pton(AF_INET, u->address, bin) == 1 ||
		    inet_pton(AF_INET6, u->address, bin) == 1;
	}
	snprintf(u->path, sizeof u->path, "/%s", path);
	if (cfg->upstream_token_file[0] ? read_token(u, cfg->upstream_token_file, err) == -1 : 0)
		goto fail;
	if (!cfg->upstream_token_file[0])
		snprintf(u->token, sizeof u->token, "%s", cfg->upstream_token);
	if (gethostname(u->host, sizeof u->host - 1) == -1 || !u->host[0])
		snprintf(u->host, sizeof u->host, "unknown");

	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = upstream_protocols;
	info.vhost_name = "upstream";
	if (u->tls) {
		info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = cfg->upstream_ca[0] ? cfg->upstream_ca : NULL;
		info.client_ssl_cert_filepath = cfg->upstream_cert[0] ? cfg->upstream_cert : NULL;
		info.client_ssl_private_key_filepath = cfg->upstream_key[0] ? cfg->upstream_key : NULL;
	}
	if (!(u->vhost = lws_create_vhost(b->ctx, &info))) {
		error_set(err, ERR_INVALID_PARAMS, "upstream: libwebsockets cannot make the client "
		    "(for wss://: upstream_ca, upstream_cert and upstream_key must be PEM files it can read)");
		goto fail;
	}
	/* The vhost's slot for u, where the loop's wake-ups find it (resolve_check()). */
	if (!(slot = lws_protocol_vh_priv_zalloc(u->vhost, lws_vhost_name_to_protocol(u->vhost,
	    "fxb-upstream"), sizeof *slot))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	*slot = u;
	u->slot = slot;
	u->state = UP_CONNECTING;
	log_info("upstream %s: forwarding postgres fixtures and unknown server templates there",
	    u->url);
	lws_sul_schedule(b->ctx, 0, &u->retry_timer, connect_now, 1);
	lws_cancel_service(b->ctx); /* scheduled from outside the loop's callbacks */
	return u;
fail:
	free(u);
	return NULL;
}

void
upstream_free(struct upstream *u)
{
	if (!u)
		return;
	lws_sul_cancel(&u->retry_timer);
	lws_sul_cancel(&u->beat_timer);
	if (u->slot)
		*u->slot = NULL;
	resolve_drop(u);
	if (u->wsi) {
		lws_set_opaque_user_data(u->wsi, NULL);
		lws_set_timeout(u->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
	}
	u->state = UP_DOWN;
	u->resume[0] = '\0';
	u->freeing = 1;
	fail_calls(u, 0, ERR_SHUTTING_DOWN, "the broker is shutting down");
	free(u->rx);
	explicit_bzero(u->token, sizeof u->token);
	free(u);
}

int64_t
upstream_call(struct upstream *u, const char *method, json_t *params, upstream_reply_fn fn,
    void *arg, struct fxb_error *err)
{
	struct up_call *c;

	if (u->state == UP_DOWN) {
		json_decref(params);
		error_set(err, ERR_UPSTREAM_UNAVAILABLE, "the upstream broker %s is unavailable%s%s",
		    u->url, u->last_error[0] ? ": " : "", u->last_error);
		return -1;
	}
	if (!(c = enqueue(u, method, params, fn, arg, 0, 0))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return c->id;
}

int64_t
upstream_call_first(struct upstream *u, const char *method, json_t *params,
    upstream_reply_fn fn, void *arg, struct fxb_error *err)
{
	struct up_call *c;

	if (u->state == UP_DOWN) {
		json_decref(params);
		error_set(err, ERR_UPSTREAM_UNAVAILABLE, "the upstream broker %s is unavailable", u->url);
		return -1;
	}
	if (!(c = enqueue(u, method, params, fn, arg, 0, 1))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	return c->id;
}

void
upstream_cancel(struct upstream *u, int64_t id)
{
	for (struct up_call *c = u->calls; c; c = c->next) {
		if (c->id != id)
			continue;
		c->fn = NULL;
		if (!c->sent && !c->off) {
			call_unlink(u, c);
			call_free(c);
		}
		return;
	}
}

const char *
upstream_state(const struct upstream *u)
{
	return state_names[u->state];
}

json_t *
upstream_json(const struct upstream *u)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:I, s:I, s:I, s:I}", "url", u->url,
	    "state", upstream_state(u), "session", u->session[0] ? u->session : NULL,
	    "last_error", u->last_error[0] ? u->last_error : NULL,
	    "open_calls", (json_int_t)u->open_calls, "connects", (json_int_t)u->connects,
	    "resumes", (json_int_t)u->resumes, "lost", (json_int_t)u->lost);
}
