/* client.c: the public client calls: options, fxb_client_new/free, fxb_call and errors.
 *
 * It owns the wait for the session: while the service thread (conn.c) reconnects, new calls
 * wait for the session to be back, within their deadline, and then hand their request to
 * wire_call(), which writes it and waits for the reply (FXB_ECONNECT at once if the
 * connection drops under it, FXB_EPROTO at once if the broker sends a message that is not
 * JSON, FXB_ETIMEOUT when the deadline passes). Errors are kept per client and per calling
 * thread, so threads sharing a client each read their own last error; a thread's slot lives
 * until the client is freed. fxb_client_free must not run while another thread is still
 * inside a call on the same client.
 */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 10000

/* The calling thread's error slot, created if create is set (under err_mu). NULL when
 * there is none, or no memory for one. */
static struct errslot *
slot_find(struct fxb_client *c, int create)
{
	pthread_t self = pthread_self();
	struct errslot *e;

	for (e = c->errs; e; e = e->next)
		if (pthread_equal(e->thread, self))
			return e;
	if (!create || !(e = calloc(1, sizeof *e)))
		return NULL;
	e->thread = self;
	e->next = c->errs;
	c->errs = e;
	return e;
}

static int
fail_v(
    struct fxb_client *c, int code, int broker_code, const char *name, const char *fmt, va_list ap)
{
	struct errslot *e;

	pthread_mutex_lock(&c->err_mu);
	if ((e = slot_find(c, 1))) {
		e->code = code;
		e->broker_code = broker_code;
		snprintf(e->name, sizeof e->name, "%s", name ? name : "");
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	}
	pthread_mutex_unlock(&c->err_mu);
	return code;
}

int
client_fail(struct fxb_client *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(c, code, 0, NULL, fmt, ap);
	va_end(ap);
	return code;
}

static int fail_broker(struct fxb_client *c, int broker_code, const char *name, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
fail_broker(struct fxb_client *c, int broker_code, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_v(c, FXB_EBROKER, broker_code, name, fmt, ap);
	va_end(ap);
	return FXB_EBROKER;
}

void
client_clear(struct fxb_client *c)
{
	struct errslot *e;

	pthread_mutex_lock(&c->err_mu);
	if ((e = slot_find(c, 0))) {
		e->code = 0;
		e->broker_code = 0;
		e->name[0] = '\0';
		e->msg[0] = '\0';
	}
	pthread_mutex_unlock(&c->err_mu);
}

/* Copies the calling thread's slot out; the client is const to its callers, but err_mu
 * is not part of its value. */
static struct errslot *
slot_peek(const struct fxb_client *c)
{
	struct fxb_client *m = (struct fxb_client *)c;
	struct errslot *e;

	pthread_mutex_lock(&m->err_mu);
	e = slot_find(m, 0);
	pthread_mutex_unlock(&m->err_mu);
	return e;
}

const char *
fxb_client_errmsg(const struct fxb_client *c)
{
	struct errslot *e;

	if (!c)
		return "no client";
	return (e = slot_peek(c)) ? e->msg : "";
}

const char *
fxb_client_errname(const struct fxb_client *c)
{
	struct errslot *e;

	if (!c)
		return "";
	return (e = slot_peek(c)) && e->code == FXB_EBROKER ? e->name : "";
}

int
fxb_client_errcode(const struct fxb_client *c)
{
	struct errslot *e;

	if (!c)
		return 0;
	return (e = slot_peek(c)) && e->code == FXB_EBROKER ? e->broker_code : 0;
}

const char *
fxb_client_session(const struct fxb_client *c)
{
	struct fxb_client *m = (struct fxb_client *)c;
	const char *s;

	if (!c)
		return "";
	pthread_mutex_lock(&m->mu);
	s = m->session;
	pthread_mutex_unlock(&m->mu);
	return s ? s : "";
}

const char *
fxb_client_resume_token(const struct fxb_client *c)
{
	struct fxb_client *m = (struct fxb_client *)c;
	const char *s;

	if (!c)
		return "";
	pthread_mutex_lock(&m->mu);
	s = m->resume;
	pthread_mutex_unlock(&m->mu);
	return s ? s : "";
}

int
fxb_client_state(const struct fxb_client *c)
{
	struct fxb_client *m = (struct fxb_client *)c;
	int state;

	if (!c)
		return FXB_EINVAL;
	pthread_mutex_lock(&m->mu);
	if (m->stop || m->state == CONN_CLOSED || m->state == CONN_FAILED)
		state = FXB_STATE_CLOSED;
	else if (m->state == CONN_OPEN)
		state = FXB_STATE_OPEN;
	else
		state = FXB_STATE_CONNECTING;
	pthread_mutex_unlock(&m->mu);
	return state;
}

unsigned
fxb_client_sessions_lost(const struct fxb_client *c)
{
	struct fxb_client *m = (struct fxb_client *)c;
	unsigned n;

	if (!c)
		return 0;
	pthread_mutex_lock(&m->mu);
	n = m->sessions_lost;
	pthread_mutex_unlock(&m->mu);
	return n;
}

void
fxb_client_on_session_lost(struct fxb_client *c, fxb_session_lost_fn fn, void *arg)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->lost_fn = fn;
	c->lost_arg = arg;
	pthread_mutex_unlock(&c->mu);
}

struct session *
session_new(const char *id)
{
	size_t len = strlen(id);
	struct session *s = malloc(sizeof *s + len + 1);

	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	atomic_init(&s->lost, 0);
	memcpy(s->id, id, len + 1);
	return s;
}

struct session *
session_ref(struct session *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

void
session_unref(struct session *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1)
		free(s);
}

/* Splits ws://host[:port][/path] or wss://... (host may be [v6]) into the client's fields,
 * *tls set for wss://. Returns 0, or -1 with why set to a static reason. */
static int
parse_url(struct fxb_client *c, const char *url, int *tls, const char **why)
{
	const char *p, *host, *hend;
	char *end;
	long port;
	size_t hlen;
	int v6 = 0;

	*tls = 0;
	if (!strncmp(url, "ws://", 5)) {
		p = url + 5;
		c->port = 80;
	} else if (!strncmp(url, "wss://", 6)) {
		p = url + 6;
		c->port = 443;
		*tls = 1;
	} else {
		*why = "the scheme must be ws:// or wss://";
		return -1;
	}
	if (*p == '[') {
		host = p + 1;
		if (!(hend = strchr(host, ']'))) {
			*why = "an IPv6 address lacks its closing ]";
			return -1;
		}
		p = hend + 1;
		v6 = 1;
	} else {
		host = p;
		hend = p + strcspn(p, ":/?#@");
		p = hend;
	}
	if (hend == host) {
		*why = "the host is empty";
		return -1;
	}
	if (*p == '@') {
		*why = "user information is not supported";
		return -1;
	}
	if (*p == ':') {
		errno = 0;
		port = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno || port < 1 || port > 65535) {
			*why = "the port must be a number from 1 to 65535";
			return -1;
		}
		c->port = (int)port;
		p = end;
	}
	if (*p && *p != '/') {
		*why = "the host and port must be followed by / or nothing";
		return -1;
	}
	hlen = (size_t)(hend - host);
	c->address = strndup(host, hlen);
	c->path = strdup(*p ? p : "/");
	if (c->address &&
	    asprintf(&c->host_header, v6 ? "[%s]:%d" : "%s:%d", c->address, c->port) < 0)
		c->host_header = NULL;
	if (!c->address || !c->path || !c->host_header) {
		*why = NULL;
		return -1;
	}
	return 0;
}

/* A bearer token goes into an HTTP header: printable ASCII without spaces only. */
static int
token_ok(const char *t)
{
	for (; *t; t++)
		if (*t <= ' ' || *t > '~')
			return 0;
	return 1;
}

static void
client_destroy(struct fxb_client *c)
{
	struct errslot *e;
	struct retired *r;

	conn_stop(c);
	while ((e = c->errs)) {
		c->errs = e->next;
		free(e);
	}
	while ((r = c->retired)) {
		c->retired = r->next;
		free(r->s);
		free(r);
	}
	session_unref(c->sess);
	free(c->session);
	free(c->resume);
	free(c->url);
	free(c->address);
	free(c->host_header);
	free(c->path);
	free(c->token);
	free(c->name);
	free(c->tls_ca_name);
	SSL_CTX_free(c->tls_ctx);
	pthread_cond_destroy(&c->cv);
	pthread_condattr_destroy(&c->cattr);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wmu);
	pthread_mutex_destroy(&c->err_mu);
	pthread_mutex_destroy(&c->tls_mu);
	free(c);
}

static int report(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
report(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Allocates c with its locks; NULL when out of memory. */
static struct fxb_client *
client_alloc(void)
{
	struct fxb_client *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	if (pthread_condattr_init(&c->cattr)) {
		free(c);
		return NULL;
	}
	pthread_condattr_setclock(&c->cattr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&c->cv, &c->cattr))
		goto fail_cattr;
	if (pthread_mutex_init(&c->mu, NULL))
		goto fail_cv;
	if (pthread_mutex_init(&c->wmu, NULL))
		goto fail_mu;
	if (pthread_mutex_init(&c->err_mu, NULL))
		goto fail_wmu;
	if (pthread_mutex_init(&c->tls_mu, NULL))
		goto fail_err_mu;
	c->next_id = 1;
	c->dead_after_ms = DEAD_AFTER_MS;
	c->state = CONN_CONNECTING;
	c->sock = c->wsock = c->wake_fd = -1;
	return c;
fail_err_mu:
	pthread_mutex_destroy(&c->err_mu);
fail_wmu:
	pthread_mutex_destroy(&c->wmu);
fail_mu:
	pthread_mutex_destroy(&c->mu);
fail_cv:
	pthread_cond_destroy(&c->cv);
fail_cattr:
	pthread_condattr_destroy(&c->cattr);
	free(c);
	return NULL;
}

/* A setting's value: from settings (name/value pairs ended by a NULL name), else from the
 * environment variable env; NULL when neither gives a non-empty one. */
static const char *
setting(const char *const *settings, const char *name, const char *env)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; settings && settings[i]; i += 2)
		if (!strcmp(settings[i], name))
			v = settings[i + 1];
	if (!v)
		v = getenv(env);
	return v && *v ? v : NULL;
}

/* The setting names fxb_client_new_ex knows. */
static const char *const known_settings[] = {"tls.ca", "tls.cert", "tls.key", NULL};

int
fxb_client_new(struct fxb_client **out, const struct fxb_options *opts, char *errbuf, size_t errlen)
{
	return fxb_client_new_ex(out, opts, NULL, errbuf, errlen);
}

int
fxb_client_new_ex(struct fxb_client **out, const struct fxb_options *opts,
    const char *const *settings, char *errbuf, size_t errlen)
{
	static const struct fxb_options none;
	struct fxb_client *c;
	struct timespec deadline;
	const char *url, *token, *why = NULL, *ca, *cert, *key;
	char twhy[384];
	size_t i, k;
	int rc, tls;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!out)
		return report(errbuf, errlen, FXB_EINVAL, "fxb_client_new: out is NULL");
	*out = NULL;
	if (!opts)
		opts = &none;
	for (i = 0; settings && settings[i]; i += 2) {
		for (k = 0; known_settings[k] && strcmp(known_settings[k], settings[i]); k++)
			;
		if (!known_settings[k])
			return report(errbuf, errlen, FXB_EINVAL,
			    "fxb_client_new: unknown setting \"%s\" (known: tls.ca, tls.cert, tls.key)",
			    settings[i]);
		if (!settings[i + 1])
			return report(errbuf, errlen, FXB_EINVAL,
			    "fxb_client_new: the setting \"%s\" has no value", settings[i]);
	}
	if (opts->timeout_ms < 0)
		return report(errbuf, errlen, FXB_EINVAL, "fxb_client_new: timeout_ms is negative");
	url = opts->url ? opts->url : getenv("FIXTURE_BROKER_URL");
	if (!url || !*url)
		url = FXB_DEFAULT_URL;
	token = opts->token ? opts->token : getenv("FIXTURE_BROKER_TOKEN");
	if (token && !*token)
		token = NULL;
	if (token && !token_ok(token))
		return report(errbuf, errlen, FXB_EINVAL,
		    "fxb_client_new: the token has spaces or control characters");

	if (!(c = client_alloc()))
		return report(errbuf, errlen, FXB_ENOMEM, "fxb_client_new: out of memory");
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->url = strdup(url);
	c->name = strdup(opts->client ? opts->client : "fxb-c");
	c->token = token ? strdup(token) : NULL;
	c->resume = opts->resume && *opts->resume ? strdup(opts->resume) : NULL;
	if (!c->url || !c->name || (token && !c->token) ||
	    (opts->resume && *opts->resume && !c->resume)) {
		client_destroy(c);
		return report(errbuf, errlen, FXB_ENOMEM, "fxb_client_new: out of memory");
	}
	if (parse_url(c, url, &tls, &why)) {
		client_destroy(c);
		if (!why)
			return report(errbuf, errlen, FXB_ENOMEM, "fxb_client_new: out of memory");
		return report(
		    errbuf, errlen, FXB_EINVAL, "fxb_client_new: bad URL \"%s\": %s", url, why);
	}
	if (tls) {
		ca = setting(settings, "tls.ca", TLS_ENV_CA);
		cert = setting(settings, "tls.cert", TLS_ENV_CERT);
		key = setting(settings, "tls.key", TLS_ENV_KEY);
		if (!(c->tls_ctx = tls_context(ca, cert, key, twhy, sizeof twhy))) {
			client_destroy(c);
			return report(errbuf, errlen, FXB_EINVAL, "fxb_client_new: %s", twhy);
		}
		if (!(c->tls_ca_name = strdup(ca ? ca : "the system's trust store"))) {
			client_destroy(c);
			return report(errbuf, errlen, FXB_ENOMEM, "fxb_client_new: out of memory");
		}
	}

	if ((rc = conn_start(c))) {
		report(errbuf, errlen, rc, "fxb_client_new: %s", c->fail_msg);
		client_destroy(c);
		return rc;
	}

	deadline_ts(&deadline, clock_now_ms() + c->timeout_ms);
	pthread_mutex_lock(&c->mu);
	while (c->state != CONN_OPEN && c->state != CONN_FAILED)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT)
			break;
	if (c->state == CONN_OPEN) {
		rc = 0;
	} else if (c->state == CONN_FAILED) {
		rc = report(errbuf, errlen, c->fail_code, "%s", c->fail_msg);
	} else if (c->state == CONN_HELLO) {
		rc = report(errbuf, errlen, FXB_ETIMEOUT,
		    "session.hello: no reply from %s within %d ms", c->url, c->timeout_ms);
	} else {
		rc = report(errbuf, errlen, FXB_ECONNECT, "cannot connect to %s within %d ms",
		    c->url, c->timeout_ms);
	}
	pthread_mutex_unlock(&c->mu);
	if (rc) {
		client_destroy(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
fxb_client_free(struct fxb_client *c)
{
	if (c)
		client_destroy(c);
}

/* Turns a reply object into the call's outcome (see client_call). */
static int
take_reply(struct fxb_client *c, const char *method, json_t *reply, json_t **result)
{
	json_t *res = json_object_get(reply, "result");
	json_t *err = json_object_get(reply, "error");
	json_t *data;
	const char *name, *text, *detail;

	if (json_is_object(err)) {
		data = json_object_get(err, "data");
		name = json_string_value(json_object_get(data, "name"));
		text = json_string_value(json_object_get(err, "message"));
		detail = json_string_value(json_object_get(data, "detail"));
		if (detail && text && strstr(text, detail))
			detail = NULL; /* the message already says it */
		return fail_broker(c, (int)json_integer_value(json_object_get(err, "code")),
		    name ? name : "", "%s: %s%s%s (%s)", method, text ? text : "error",
		    detail ? ": " : "", detail ? detail : "", name ? name : "no name");
	}
	if (!res)
		return client_fail(
		    c, FXB_EPROTO, "%s: the reply has neither result nor error", method);
	if (result)
		*result = json_incref(res);
	return 0;
}

int
client_call(struct fxb_client *c, const char *method, json_t *params, int extra_ms, json_t **result)
{
	return client_call_in(c, method, params, extra_ms, result, NULL);
}

int
client_call_in(struct fxb_client *c, const char *method, json_t *params, int extra_ms,
    json_t **result, struct session **sess)
{
	struct request r;
	struct session *in = NULL;
	struct timespec deadline;
	long long budget = (long long)c->timeout_ms + (extra_ms > 0 ? extra_ms : 0);
	long long deadline_ms = clock_now_ms() + budget;
	unsigned char stack[4096], *text;
	char why[sizeof c->fail_msg];
	size_t len, cap;
	int rc, closing;

	memset(&r, 0, sizeof r);
	pthread_mutex_lock(&c->mu);
	r.id = c->next_id++;
	pthread_mutex_unlock(&c->mu);
	if ((rc = wire_encode(r.id, method, params, stack, sizeof stack, &text, &len)))
		return client_fail(c, rc, "%s: out of memory", method);

	/* While the service thread reconnects, wait for the session to be back. */
	deadline_ts(&deadline, deadline_ms);
	pthread_mutex_lock(&c->mu);
	while ((c->state == CONN_CONNECTING || c->state == CONN_HELLO) && !c->stop)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT)
			break;
	if (c->state != CONN_OPEN || c->stop) {
		closing = c->stop || c->state == CONN_CLOSED;
		snprintf(why, sizeof why, "%s", c->fail_msg);
		pthread_mutex_unlock(&c->mu);
		wire_encoded_free(text, stack);
		if (closing)
			return client_fail(c, FXB_ECLOSED, "%s: the client is closing", method);
		return client_fail(
		    c, FXB_ECONNECT, "%s: not connected within %lld ms (%s)", method, budget, why);
	}
	/* The broker would close the connection on a message over its cap, failing every
	 * other call in flight with it: refuse it here instead. */
	if (c->max_message && len > c->max_message) {
		cap = c->max_message;
		pthread_mutex_unlock(&c->mu);
		wire_encoded_free(text, stack);
		return client_fail(c, FXB_EINVAL,
		    "%s: the request is %zu bytes, over the broker's limit of %zu", method, len,
		    cap);
	}
	if (wire_register(c, &r)) {
		pthread_mutex_unlock(&c->mu);
		wire_encoded_free(text, stack);
		return client_fail(c, FXB_ENOMEM, "%s: out of memory", method);
	}
	/* A reply comes on the connection its call went out on, so in this session. */
	if (sess)
		in = session_ref(c->sess);
	pthread_mutex_unlock(&c->mu);

	rc = wire_call(c, &r, text, len, deadline_ms);
	wire_encoded_free(text, stack);
	if (rc || !r.done || r.status != FXB_OK) {
		session_unref(in);
		in = NULL;
	}
	if (rc)
		return client_fail(c, rc, "%s: out of memory", method);
	if (!r.done)
		return client_fail(
		    c, FXB_ETIMEOUT, "%s: no reply from %s within %lld ms", method, c->url, budget);
	if (r.status == FXB_ECLOSED)
		return client_fail(c, FXB_ECLOSED, "%s: the client is closing", method);
	if (r.status != FXB_OK) {
		pthread_mutex_lock(&c->mu);
		snprintf(why, sizeof why, "%s", c->fail_msg);
		pthread_mutex_unlock(&c->mu);
		if (r.status == FXB_EPROTO)
			return client_fail(c, FXB_EPROTO, "%s: %s; reconnecting", method, why);
		return client_fail(c, FXB_ECONNECT,
		    "%s: the connection dropped before the reply (%s); reconnecting", method, why);
	}
	rc = take_reply(c, method, r.reply, result);
	json_decref(r.reply);
	if (!rc && sess) {
		*sess = in;
		in = NULL;
	}
	session_unref(in);
	return rc;
}

int
fxb_call(struct fxb_client *c, const char *method, const char *params_json, char **result_json)
{
	json_t *params = NULL, *res = NULL, *m;
	json_error_t jerr;
	char *text;
	int rc;

	if (result_json)
		*result_json = NULL;
	if (!c)
		return FXB_EINVAL;
	client_clear(c);
	if (!method || !*method)
		return client_fail(c, FXB_EINVAL, "fxb_call: the method is NULL or empty");
	if (!(m = json_string(method)))
		return client_fail(c, FXB_EINVAL, "fxb_call: the method is not valid UTF-8");
	json_decref(m);
	if (params_json) {
		if (!(params = json_loads(params_json, 0, &jerr)))
			return client_fail(c, FXB_EINVAL,
			    "%s: params are not a JSON object or array: %s", method, jerr.text);
	}

	rc = client_call(c, method, params, 0, result_json ? &res : NULL);
	if (rc || !result_json)
		return rc;
	text = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(res);
	if (!text)
		return client_fail(c, FXB_ENOMEM, "%s: out of memory", method);
	*result_json = text;
	return 0;
}
