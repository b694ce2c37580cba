/* lease.c: leases and the FIFO queue of acquires that wait for room.
 *
 * An acquire is served whole or not at all: the ports of every port fixture are taken in
 * one ports_take() call, which takes all or none. When the pool is short and the request
 * may wait, it joins one queue shared by every session; the queue is strictly first come,
 * first served, so a later request never overtakes an earlier one, and a request with
 * wait_ms 0 fails at once while anyone is queued. The queue is served again whenever a
 * lease is released, a waiter gives up, or a quarantined port comes free.
 *
 * On disconnect the session's waiting acquires are cancelled; its leases are released by
 * session_close() through lease_release_session().
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "idmap.h"
#include "lease.h"
#include "log.h"
#include "ports.h"
#include "rpc.h"
#include "session.h"

struct waiter {
	struct broker *b;
	struct waiter *next, *prev;
	struct session *s;
	struct rpc_call *call;
	struct lease_request req;
	lws_sorted_usec_list_t deadline;
};

struct leases {
	struct idmap *by_id;
	uint64_t next_id;
	struct waiter *head, *tail;
	size_t waiting;
	struct broker *b;
	lws_sorted_usec_list_t wake; /* when the next quarantined port comes free */
	int wake_armed;
};

static void serve_waiters(struct broker *b);

struct leases *
leases_new(struct broker *b)
{
	struct leases *ls = calloc(1, sizeof *ls);

	if (!ls || !(ls->by_id = idmap_new())) {
		free(ls);
		return NULL;
	}
	ls->b = b;
	return ls;
}

void
leases_free(struct leases *ls)
{
	if (!ls)
		return;
	if (ls->wake_armed)
		lws_sul_cancel(&ls->wake);
	idmap_free(ls->by_id);
	free(ls);
}

size_t
leases_active(const struct leases *ls)
{
	return idmap_count(ls->by_id);
}

size_t
leases_waiting(const struct leases *ls)
{
	return ls->waiting;
}

void
lease_request_clear(struct lease_request *req)
{
	for (size_t i = 0; i < req->nfixtures; i++)
		free(req->fixtures[i].name);
	free(req->fixtures);
	json_decref(req->labels);
	memset(req, 0, sizeof *req);
}

static int
valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
			return 0;
	return 1;
}

static int
parse_fixture(struct broker *b, const char *name, json_t *spec, struct fixture *f,
    struct fxb_error *err)
{
	json_error_t jerr;
	const char *kind;

	(void)b;
	if (!valid_name(name)) {
		error_set(err, ERR_INVALID_PARAMS,
		    "invalid params: fixtures: \"%.64s\" is not a fixture name (1 to 64 of A-Z a-z 0-9 _ . -)",
		    name);
		return -1;
	}
	if (!json_is_object(spec) || !(kind = json_string_value(json_object_get(spec, "kind")))) {
		error_set(err, ERR_INVALID_PARAMS,
		    "invalid params: fixtures.%s: expected an object with a string \"kind\"", name);
		return -1;
	}
	if (strcmp(kind, "port") != 0) {
		error_set_data(err, ERR_UNKNOWN_FIXTURE_KIND,
		    json_pack("{s:s, s:s}", "fixture", name, "kind", kind),
		    "fixtures.%s: unknown fixture kind \"%.64s\" (this broker serves: port)", name, kind);
		return -1;
	}
	if (json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s}", "kind", &kind) == -1) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s: %s", name, jerr.text);
		return -1;
	}
	if (!(f->name = strdup(name))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	f->kind = FIXTURE_PORT;
	return 0;
}

int
lease_labels_check(json_t *labels, struct fxb_error *err)
{
	const char *name;
	json_t *v;

	if (!json_is_object(labels)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: labels: expected an object of strings");
		return -1;
	}
	json_object_foreach(labels, name, v) {
		if (!json_is_string(v)) {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: labels.%.64s: expected a string",
			    name);
			return -1;
		}
	}
	return 0;
}

int
lease_request_parse(struct broker *b, json_t *params, struct lease_request *req,
    struct fxb_error *err)
{
	json_t *fixtures, *ttl = NULL, *labels = NULL, *spec;
	json_int_t wait = 0;
	json_error_t jerr;
	const char *name;
	size_t n;

	memset(req, 0, sizeof *req);
	if (json_unpack_ex(params, &jerr, JSON_STRICT, "{s:o, s?I, s?o, s?o}", "fixtures",
	    &fixtures, "wait_ms", &wait, "ttl_ms", &ttl, "labels", &labels) == -1) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: %s", jerr.text);
		return -1;
	}
	if (!json_is_object(fixtures) || (n = json_object_size(fixtures)) == 0) {
		error_set(err, ERR_INVALID_PARAMS,
		    "invalid params: fixtures: expected an object naming at least one fixture");
		return -1;
	}
	if (n > (size_t)b->cfg.max_fixtures) {
		error_set(err, ERR_TOO_MANY_FIXTURES, "fixtures: %zu fixtures, at most %d per lease", n,
		    b->cfg.max_fixtures);
		return -1;
	}
	if (wait < 0 || wait > 3600000) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: wait_ms: expected 0 to 3600000");
		return -1;
	}
	if (ttl && !json_is_null(ttl) &&
	    (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
	    json_integer_value(ttl) > 7LL * 24 * 3600 * 1000)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: ttl_ms: expected null or 1 to 604800000");
		return -1;
	}
	if (labels && !json_is_null(labels) && lease_labels_check(labels, err) == -1)
		return -1;
	if (!(req->fixtures = calloc(n, sizeof *req->fixtures))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	json_object_foreach(fixtures, name, spec) {
		if (parse_fixture(b, name, spec, &req->fixtures[req->nfixtures], err) == -1) {
			lease_request_clear(req);
			return -1;
		}
		req->nfixtures++;
	}
	req->wait_ms = wait;
	req->ttl_ms = ttl && json_is_integer(ttl) ? json_integer_value(ttl) : -1;
	req->labels = labels && json_is_object(labels) ? json_incref(labels) : NULL;
	return 0;
}

json_t *
lease_fixtures_json(const struct lease *l)
{
	json_t *fx = json_object();

	for (size_t i = 0; fx && i < l->nfixtures; i++) {
		const struct fixture *f = &l->fixtures[i];
		json_object_set_new(fx, f->name, json_pack("{s:s, s:s, s:i}", "kind", "port",
		    "host", "127.0.0.1", "port", f->port));
	}
	return fx;
}

static json_t *
ttl_json(const struct lease *l)
{
	return l->ttl_ms < 0 ? json_null() : json_integer(l->ttl_ms);
}

json_t *
lease_json(const struct lease *l, uint64_t now)
{
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:I}", "lease", l->lid,
	    "fixtures", lease_fixtures_json(l), "labels", l->labels ? json_incref(l->labels) : json_object(),
	    "ttl_ms", ttl_json(l),
	    "expires_in_ms", l->ttl_ms < 0 ? json_null()
	    : json_integer(l->expires_ms > now ? (json_int_t)(l->expires_ms - now) : 0),
	    "age_ms", (json_int_t)(now - l->created_ms));
}

static void
ttl_expired(lws_sorted_usec_list_t *sul)
{
	struct lease *l = lws_container_of(sul, struct lease, ttl_timer);

	lease_release(l->broker, l, "its TTL expired");
}

static size_t
session_ports(const struct session *s)
{
	size_t n = 0;

	for (const struct lease *l = s->leases; l; l = l->session_next)
		n += l->nfixtures;
	return n;
}

/* Fills err with the pool's state for a request that could not be served. */
static void
exhausted(struct broker *b, struct session *s, const struct lease_request *req,
    uint64_t waited_ms, struct fxb_error *err)
{
	struct ports_counts pc;
	size_t short_at;

	ports_counts(b->ports, now_ms(), &pc);
	short_at = pc.free < req->nfixtures ? pc.free : req->nfixtures - 1;
	error_set_data(err, ERR_PORTS_EXHAUSTED,
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "fixture", req->fixtures[short_at].name, "kind", "port",
	    "requested", (json_int_t)req->nfixtures, "free", (json_int_t)pc.free,
	    "leased", (json_int_t)pc.leased, "quarantined", (json_int_t)pc.quarantined,
	    "size", (json_int_t)pc.size, "held_by_session", (json_int_t)session_ports(s),
	    "waiting", (json_int_t)b->leases->waiting, "waited_ms", (json_int_t)waited_ms),
	    "ports exhausted: fixture \"%s\" needs %zu port(s); %zu free, %zu leased (%zu by this session), %zu quarantined of %zu",
	    req->fixtures[short_at].name, req->nfixtures, pc.free, pc.leased, session_ports(s),
	    pc.quarantined, pc.size);
}

static void
start_ttl(struct broker *b, struct lease *l, int64_t ttl_ms)
{
	if (ttl_ms < 0)
		return;
	l->ttl_ms = ttl_ms;
	l->expires_ms = now_ms() + (uint64_t)ttl_ms;
	lws_sul_schedule(b->ctx, 0, &l->ttl_timer, ttl_expired, (lws_usec_t)ttl_ms * LWS_US_PER_MS);
}

/* Grants req to s if the pool has room now. Returns the lease (req's fixtures and labels
 * move into it) or NULL when it is short; err is set only on out of memory. */
static struct lease *
try_grant(struct broker *b, struct session *s, struct lease_request *req, struct fxb_error *err)
{
	struct leases *ls = b->leases;
	uint16_t ports[req->nfixtures];
	uint64_t now = now_ms();
	struct lease *l;
	uint64_t id = ls->next_id + 1;

	if (ports_take(b->ports, id, req->nfixtures, ports, now) == -1)
		return NULL;
	if (!(l = calloc(1, sizeof *l)) || idmap_put(ls->by_id, id, l) == -1) {
		free(l);
		ports_release(b->ports, id, ports, req->nfixtures, now);
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	ls->next_id = id;
	l->broker = b;
	l->id = id;
	snprintf(l->lid, sizeof l->lid, "l-%llu", (unsigned long long)id);
	l->fixtures = req->fixtures;
	l->nfixtures = req->nfixtures;
	for (size_t i = 0; i < l->nfixtures; i++)
		l->fixtures[i].port = ports[i];
	l->labels = req->labels;
	l->ttl_ms = -1;
	l->created_ms = now;
	start_ttl(b, l, req->ttl_ms);
	memset(req, 0, sizeof *req);
	l->session = s;
	l->session_next = s->leases;
	if (s->leases)
		s->leases->session_prev = l;
	s->leases = l;
	s->lease_count++;
	b->metrics.leases_total++;
	return l;
}

static json_t *
grant_result(struct lease *l)
{
	return json_pack("{s:s, s:o, s:o}", "lease", l->lid, "fixtures", lease_fixtures_json(l),
	    "ttl_ms", ttl_json(l));
}

static void
observe(struct broker *b, uint64_t started_ms)
{
	histogram_observe(&b->metrics.acquire_seconds, (double)(now_ms() - started_ms) / 1000.0);
}

static void
waiter_unlink(struct leases *ls, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		ls->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		ls->tail = w->prev;
	ls->waiting--;
	lws_sul_cancel(&w->deadline);
}

static void
waiter_fail(struct broker *b, struct waiter *w, const struct fxb_error *err)
{
	waiter_unlink(b->leases, w);
	rpc_call_fail(w->call, err);
	lease_request_clear(&w->req);
	free(w);
}

static void
deadline_passed(lws_sorted_usec_list_t *sul)
{
	struct waiter *w = lws_container_of(sul, struct waiter, deadline);
	struct broker *b = w->b;
	struct fxb_error err = { 0 };

	exhausted(b, w->s, &w->req, now_ms() - rpc_call_started_ms(w->call), &err);
	waiter_fail(b, w, &err);
	error_clear(&err);
	/* The head may have been holding back smaller requests behind it. */
	serve_waiters(b);
}

static void
wake(lws_sorted_usec_list_t *sul)
{
	struct leases *ls = lws_container_of(sul, struct leases, wake);

	ls->wake_armed = 0;
	serve_waiters(ls->b);
}

/* While anyone waits, wakes the queue when the next quarantined port comes free. */
static void
arm_wake(struct broker *b)
{
	struct leases *ls = b->leases;
	uint64_t next, now;

	if (!ls->head || ls->wake_armed || (next = ports_next_free_ms(b->ports)) == 0)
		return;
	now = now_ms();
	ls->wake_armed = 1;
	lws_sul_schedule(b->ctx, 0, &ls->wake, wake,
	    (lws_usec_t)(next > now ? next - now : 0) * LWS_US_PER_MS + 1);
}

/* Serves queued acquires from the head for as long as they fit. */
static void
serve_waiters(struct broker *b)
{
	struct leases *ls = b->leases;
	struct fxb_error err = { 0 };

	while (ls->head) {
		struct waiter *w = ls->head;
		struct lease *l = try_grant(b, w->s, &w->req, &err);

		if (!l && !err.code)
			break;
		waiter_unlink(ls, w);
		if (l) {
			observe(b, rpc_call_started_ms(w->call));
			rpc_call_finish(w->call, grant_result(l));
		} else {
			rpc_call_fail(w->call, &err);
			error_clear(&err);
		}
		lease_request_clear(&w->req);
		free(w);
	}
	arm_wake(b);
}

json_t *
lease_acquire(struct broker *b, struct session *s, struct rpc_call *call,
    struct lease_request *req, struct fxb_error *err)
{
	struct leases *ls = b->leases;
	struct lease *l = NULL;
	struct waiter *w;

	if (b->shutting_down) {
		error_set(err, ERR_SHUTTING_DOWN, "the broker is shutting down");
		lease_request_clear(req);
		return NULL;
	}
	/* Strict FIFO: nobody is served ahead of a request already waiting. */
	if (!ls->head && (l = try_grant(b, s, req, err)) != NULL) {
		observe(b, rpc_call_started_ms(call));
		return grant_result(l);
	}
	if (err->code || req->wait_ms == 0) {
		if (!err->code)
			exhausted(b, s, req, 0, err);
		lease_request_clear(req);
		return NULL;
	}
	if (!(w = calloc(1, sizeof *w))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		lease_request_clear(req);
		return NULL;
	}
	w->b = b;
	w->s = s;
	w->call = call;
	w->req = *req;
	memset(req, 0, sizeof *req);
	w->prev = ls->tail;
	if (ls->tail)
		ls->tail->next = w;
	else
		ls->head = w;
	ls->tail = w;
	ls->waiting++;
	lws_sul_schedule(b->ctx, 0, &w->deadline, deadline_passed,
	    (lws_usec_t)w->req.wait_ms * LWS_US_PER_MS);
	arm_wake(b);
	return RPC_PENDING;
}

struct lease *
lease_find(struct broker *b, const char *lid)
{
	char *end;
	unsigned long long id;

	if (strncmp(lid, "l-", 2) != 0 || !isdigit((unsigned char)lid[2]))
		return NULL;
	id = strtoull(lid + 2, &end, 10);
	if (*end != '\0')
		return NULL;
	return idmap_get(b->leases->by_id, id);
}

void
lease_release(struct broker *b, struct lease *l, const char *reason)
{
	struct session *s = l->session;
	uint16_t ports[l->nfixtures];

	/* Reverse order of acquisition; every fixture is a port so far. */
	for (size_t i = 0; i < l->nfixtures; i++)
		ports[i] = l->fixtures[l->nfixtures - 1 - i].port;
	ports_release(b->ports, l->id, ports, l->nfixtures, now_ms());
	if (l->ttl_ms >= 0)
		lws_sul_cancel(&l->ttl_timer);
	if (l->session_prev)
		l->session_prev->session_next = l->session_next;
	else
		s->leases = l->session_next;
	if (l->session_next)
		l->session_next->session_prev = l->session_prev;
	s->lease_count--;
	idmap_del(b->leases->by_id, l->id);
	log_debug("lease %s of session %s released: %s", l->lid, s->sid, reason);
	for (size_t i = 0; i < l->nfixtures; i++)
		free(l->fixtures[i].name);
	free(l->fixtures);
	json_decref(l->labels);
	free(l);
	serve_waiters(b);
}

void
lease_cancel_waits(struct broker *b, struct session *s)
{
	struct fxb_error err = { 0 };
	struct waiter *w, *next;

	for (w = b->leases->head; w; w = next) {
		next = w->next;
		if (w->s != s)
			continue;
		error_set(&err, b->shutting_down ? ERR_SHUTTING_DOWN : ERR_ACQUIRE_CANCELLED,
		    b->shutting_down ? "the broker is shutting down"
		    : "the session's connection closed while the acquire was waiting");
		waiter_fail(b, w, &err);
		error_clear(&err);
	}
	serve_waiters(b);
}

void
lease_release_session(struct broker *b, struct session *s, const char *reason)
{
	lease_cancel_waits(b, s);
	if (s->lease_count)
		b->metrics.reclaimed_total += s->lease_count;
	while (s->leases)
		lease_release(b, s->leases, reason);
}

void
lease_renew(struct broker *b, struct lease *l, int64_t ttl_ms)
{
	if (ttl_ms < 0 && l->ttl_ms < 0)
		return;
	if (l->ttl_ms >= 0)
		lws_sul_cancel(&l->ttl_timer);
	start_ttl(b, l, ttl_ms >= 0 ? ttl_ms : l->ttl_ms);
}
