/* lease.c: leases, fixture kinds, and the FIFO queue of acquires that wait for ports.
 *
 * An acquire is served whole or not at all. Step one takes every port the request's
 * fixtures need in one ports_take() call (all or none). When the pool is short and the
 * request may wait, it joins one queue shared by every session; the queue is strictly
 * first come, first served, so a later request never overtakes an earlier one, and a
 * request with wait_ms 0 fails at once while anyone is queued. The queue is served again
 * whenever ports come back, a waiter gives up, or a quarantined port comes free.
 *
 * Step two starts each fixture through its kind. A lease whose fixtures all start at once
 * is answered at once; otherwise it stays LEASE_ACQUIRING, owned by its session, until
 * the last fixture_ready() (granted) or the first fixture_failed() (the lease is released
 * and the acquire fails with that error).
 *
 * Releasing unlinks the lease from its session and the id table at once, so the client
 * sees it gone; the lease then lives on in the stopping list until every fixture has
 * called fixture_stopped(), which is when its ports go to quarantine.
 *
 * On disconnect the session's waiting acquires are cancelled; its leases are released by
 * session_close() through lease_session_ended(), which then runs each kind's session_ended
 * hook.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "ports/ports.h"
#include "rpc/rpc.h"
#include "util/histogram.h"
#include "util/idmap.h"

struct waiter {
	struct broker *b;
	struct waiter *next, *prev;
	struct session *s;
	struct rpc_call *call;
	struct lease_request req;
	lws_sorted_usec_list_t deadline;
};

struct leases {
	struct broker *b;
	struct idmap *by_id; /* acquiring and held leases */
	uint64_t next_id;
	struct waiter *head, *tail;
	size_t waiting;
	struct lease *stopping; /* released leases whose fixtures are still stopping */
	size_t nstopping;
	lws_sorted_usec_list_t wake; /* when the next quarantined port comes free */
	int wake_armed;
	const struct fixture_kind *const *kinds; /* the kinds served, ending with NULL */
	int draining;                            /* the broker is shutting down */
	uint64_t granted, reclaimed;             /* counters since start, for /metrics */
	struct tenant total;                     /* what every tenant holds, and its caps */
	uint64_t turn;                           /* the fair queue's turns (serve_waiters) */
	struct histogram acquire_seconds;
};

static void serve_waiters(struct broker *b);

/* A lease is in one list at a time through its session links: its session's while it
 * is acquiring or held, then the stopping list. */
static void
list_push(struct lease **head, struct lease *l)
{
	l->session_prev = NULL;
	l->session_next = *head;
	if (*head)
		(*head)->session_prev = l;
	*head = l;
}

static void
list_unlink(struct lease **head, struct lease *l)
{
	if (l->session_prev)
		l->session_prev->session_next = l->session_next;
	else
		*head = l->session_next;
	if (l->session_next)
		l->session_next->session_prev = l->session_prev;
	l->session_next = l->session_prev = NULL;
}

struct leases *
leases_new(struct broker *b, const struct fixture_kind *const *kinds)
{
	struct leases *ls = calloc(1, sizeof *ls);

	if (!ls || !(ls->by_id = idmap_new())) {
		free(ls);
		return NULL;
	}
	ls->b = b;
	ls->kinds = kinds;
	snprintf(ls->total.name, sizeof ls->total.name, "(all tenants)");
	for (int q = 0; q < QUOTA_COUNT; q++)
		ls->total.limit[q] = -1;
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

void
leases_drain(struct leases *ls)
{
	ls->draining = 1;
}

int
leases_draining(const struct leases *ls)
{
	return ls->draining;
}

void
leases_stats(const struct leases *ls, struct leases_stats *st)
{
	st->granted = ls->granted;
	st->reclaimed = ls->reclaimed;
	st->acquire_seconds = &ls->acquire_seconds;
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

size_t
leases_stopping(const struct leases *ls)
{
	return ls->nstopping;
}

/* Frees what a fixture owns apart from its ports; the kind's data goes through free. */
static void
fixture_clear(struct fixture *f)
{
	if (f->kind)
		f->kind->free(f);
	free(f->name);
	free(f->ports);
	free(f->deps);
	json_decref(f->fields);
	json_decref(f->needs);
	memset(f, 0, sizeof *f);
	f->state = FIXTURE_STOPPED;
}

/* Gives back what req was charged. */
static void
request_refund(struct broker *b, struct lease_request *req)
{
	if (!req->tenant)
		return;
	tenant_refund(req->tenant, req->charge);
	tenant_refund(&b->leases->total, req->charge);
	if (req->waiting)
		tenant_refund1(req->tenant, QUOTA_WAITING, 1);
	req->tenant = NULL;
	req->waiting = 0;
}

void
lease_request_clear(struct lease_request *req)
{
	/* A request is charged only inside lease_acquire(), which refunds it before
	 * clearing; one cleared elsewhere was never charged. */
	for (size_t i = 0; i < req->nfixtures; i++)
		fixture_clear(&req->fixtures[i]);
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
	const struct fixture_kind *const *kinds = b->leases->kinds;
	const char *kind;
	size_t i;

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
	for (i = 0; kinds[i] && strcmp(kinds[i]->name, kind) != 0; i++)
		;
	if (!kinds[i]) {
		char served[128] = "";
		for (size_t k = 0; kinds[k]; k++)
			snprintf(served + strlen(served), sizeof served - strlen(served), "%s%s",
			    k ? ", " : "", kinds[k]->name);
		error_set_data(err, ERR_UNKNOWN_FIXTURE_KIND,
		    json_pack("{s:s, s:s}", "fixture", name, "kind", kind),
		    "fixtures.%s: unknown fixture kind \"%.64s\" (this broker serves: %s)", name, kind,
		    served);
		return -1;
	}
	if (!(f->name = strdup(name))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	f->kind = kinds[i];
	f->state = FIXTURE_PARSED;
	return f->kind->parse(b, f, spec, err);
}

/* Parses one fixture of a request, and the fixtures it needs after it. */
static int
add_fixture(struct broker *b, struct lease_request *req, const char *name, json_t *spec,
    struct fxb_error *err)
{
	struct fixture *grown, *f;
	size_t i = req->nfixtures;
	const char *sub;
	json_t *need;

	if (req->nfixtures >= (size_t)b->cfg.max_fixtures) {
		error_set(err, ERR_TOO_MANY_FIXTURES, "fixtures: more than %d per lease (with the "
		    "fixtures they need)", b->cfg.max_fixtures);
		return -1;
	}
	if (!(grown = realloc(req->fixtures, (i + 1) * sizeof *grown))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	req->fixtures = grown;
	memset(&req->fixtures[i], 0, sizeof *grown);
	req->nfixtures++;
	/* A need is named "<fixture>.<sub>", which a client may name a fixture too. */
	for (size_t k = 0; k < i; k++) {
		if (req->fixtures[k].name && !strcmp(req->fixtures[k].name, name)) {
			error_set_data(err, ERR_INVALID_PARAMS, json_pack("{s:s, s:s}", "fixture", name,
			    "detail", "a fixture name is used twice"),
			    "invalid params: fixtures: \"%s\" is named twice (a fixture's needs are "
			    "named <fixture>.<need>)", name);
			return -1;
		}
	}
	if (parse_fixture(b, name, spec, &req->fixtures[i], err) == -1)
		return -1;
	req->nports += req->fixtures[i].nports;
	if (!req->fixtures[i].needs)
		return 0;
	json_object_foreach(req->fixtures[i].needs, sub, need) {
		char full[160];
		size_t d = req->nfixtures, *deps;

		snprintf(full, sizeof full, "%s.%s", name, sub);
		if (add_fixture(b, req, full, need, err) == -1)
			return -1;
		f = &req->fixtures[i]; /* the array may have moved */
		if (req->fixtures[d].needs) {
			error_set(err, ERR_INVALID_PARAMS, "fixtures.%s: a fixture's needs cannot have needs",
			    full);
			return -1;
		}
		if (!(deps = realloc(f->deps, (f->ndeps + 1) * sizeof *deps))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
		f->deps = deps;
		f->deps[f->ndeps++] = d;
	}
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
	const char *name;
	size_t n;

	static const struct rpc_param table[] = {
		{ "fixtures", JSON_OBJECT, 1, 0 }, { "wait_ms", JSON_INTEGER, 0, 0 },
		{ "ttl_ms", JSON_INTEGER, 0, 1 }, { "labels", JSON_OBJECT, 0, 1 }, { NULL, 0, 0, 0 },
	};

	memset(req, 0, sizeof *req);
	if (rpc_params_check(params, table, err) == -1 ||
	    json_unpack(params, "{s:o, s?I, s?o, s?o}", "fixtures", &fixtures, "wait_ms", &wait,
	    "ttl_ms", &ttl, "labels", &labels) == -1)
		return -1;
	if ((n = json_object_size(fixtures)) == 0) {
		error_set(err, ERR_INVALID_PARAMS,
		    "invalid params: fixtures: expected an object naming at least one fixture");
		return -1;
	}
	if (n > (size_t)b->cfg.max_fixtures) {
		error_set(err, ERR_TOO_MANY_FIXTURES, "fixtures: %zu fixtures, at most %d per lease", n,
		    b->cfg.max_fixtures);
		return -1;
	}
	(void)name;
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
	json_object_foreach(fixtures, name, spec) {
		if (add_fixture(b, req, name, spec, err) == -1) {
			lease_request_clear(req);
			return -1;
		}
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

	for (size_t i = 0; fx && i < l->nfixtures; i++)
		if (l->fixtures[i].fields)
			json_object_set(fx, l->fixtures[i].name, l->fixtures[i].fields);
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
	    "fixtures", lease_fixtures_json(l),
	    "labels", l->labels ? json_incref(l->labels) : json_object(),
	    "ttl_ms", ttl_json(l),
	    "expires_in_ms", l->ttl_ms < 0 ? json_null()
	    : json_integer(l->expires_ms > now ? (json_int_t)(l->expires_ms - now) : 0),
	    "age_ms", (json_int_t)(now - l->created_ms));
}

struct fixture *
lease_fixture(struct lease *l, const char *name)
{
	for (size_t i = 0; i < l->nfixtures; i++)
		if (l->fixtures[i].name && !strcmp(l->fixtures[i].name, name))
			return &l->fixtures[i];
	return NULL;
}

struct fixture *
fixture_dep(struct fixture *f, const char *sub)
{
	size_t n = strlen(f->name);

	for (size_t i = 0; i < f->ndeps; i++) {
		struct fixture *d = &f->lease->fixtures[f->deps[i]];
		if (d->name && !strncmp(d->name, f->name, n) && d->name[n] == '.' &&
		    !strcmp(d->name + n + 1, sub))
			return d;
	}
	return NULL;
}

json_t *
lease_reset_result(struct fixture *f)
{
	return json_pack("{s:s, s:{s:O}}", "lease", f->lease->lid, "fixtures", f->name, f->fields);
}

json_t *
lease_reset(struct broker *b, struct session *s, struct rpc_call *call, const char *lid,
    const char *fixture, struct fxb_error *err)
{
	struct fixture *f = lease_owned_fixture(b, s, lid, fixture, err);

	if (!f)
		return NULL;
	if (!f->kind->reset || f->state != FIXTURE_READY) {
		error_set(err, ERR_FIXTURE_NOT_RESETTABLE, "fixture %s: a %s fixture cannot be reset",
		    f->name, f->kind->name);
		return NULL;
	}
	return f->kind->reset(b, f, call, err);
}

static void
ttl_expired(lws_sorted_usec_list_t *sul)
{
	struct lease *l = lws_container_of(sul, struct lease, ttl_timer);

	l->ttl_ms = -1; /* the timer has fired: nothing to cancel */
	lease_end(l->broker, l, ERR_LEASE_NOT_FOUND, "its TTL expired");
}

static size_t
session_ports(const struct session *s)
{
	size_t n = 0;

	for (const struct lease *l = s->leases; l; l = l->session_next)
		for (size_t i = 0; i < l->nfixtures; i++)
			n += l->fixtures[i].nports;
	return n;
}

/* Fills err with the pool's state for a request the pool could not serve. */
static void
exhausted(struct broker *b, struct session *s, const struct lease_request *req,
    uint64_t waited_ms, struct fxb_error *err)
{
	struct ports_counts pc;
	size_t i = 0, covered = 0;

	ports_counts(b->ports, now_ms(), &pc);
	/* The first fixture whose ports the free ones no longer cover. */
	for (i = 0; i + 1 < req->nfixtures; i++) {
		covered += req->fixtures[i].nports;
		if (covered > pc.free)
			break;
	}
	error_set_data(err, ERR_PORTS_EXHAUSTED,
	    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "fixture", req->fixtures[i].name, "kind", req->fixtures[i].kind->name,
	    "requested", (json_int_t)req->nports, "free", (json_int_t)pc.free,
	    "leased", (json_int_t)pc.leased, "quarantined", (json_int_t)pc.quarantined,
	    "size", (json_int_t)pc.size, "held_by_session", (json_int_t)session_ports(s),
	    "waiting", (json_int_t)b->leases->waiting, "waited_ms", (json_int_t)waited_ms),
	    "ports exhausted: fixture \"%s\" is short; the lease needs %zu port(s); %zu free, %zu leased (%zu by this session), %zu quarantined of %zu",
	    req->fixtures[i].name, req->nports, pc.free, pc.leased, session_ports(s),
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

static json_t *
grant_result(struct lease *l)
{
	return json_pack("{s:s, s:o, s:o}", "lease", l->lid, "fixtures", lease_fixtures_json(l),
	    "ttl_ms", ttl_json(l));
}

static void
observe(struct broker *b, uint64_t started_ms)
{
	histogram_observe(&b->leases->acquire_seconds, (double)(now_ms() - started_ms) / 1000.0);
}

/* Starts every fixture of l whose needs are ready, until none is left to start. Sets
 * err when a start fails. */
static void
start_startable(struct broker *b, struct lease *l, struct fxb_error *err)
{
	int progress = 1;

	while (progress && !err->code) {
		progress = 0;
		for (size_t i = 0; i < l->nfixtures && !err->code; i++) {
			struct fixture *f = &l->fixtures[i];
			size_t d;
			int rc;

			if (f->state != FIXTURE_PARSED)
				continue;
			for (d = 0; d < f->ndeps && l->fixtures[f->deps[d]].state == FIXTURE_READY; d++)
				;
			if (d < f->ndeps)
				continue;
			f->state = FIXTURE_STARTING;
			rc = f->kind->start(b, f, err);
			if (rc == 0) {
				f->state = FIXTURE_READY;
				l->starting--;
				progress = 1;
			} else if (rc != 1 && !err->code) {
				error_set(err, ERR_INTERNAL, "fixture %s failed to start", f->name);
			}
		}
	}
}

/* {"name": "kind", ...} for the audit log. */
static json_t *
fixtures_kinds(const struct fixture *fx, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, fx[i].name, json_string(fx[i].kind->name));
	return o;
}

static void
audit_acquire(const struct session *s, const struct lease_request *req)
{
	if (!audit_enabled(s->broker->audit))
		return;
	audit_event(s->broker->audit, "lease.acquire",
	    json_pack("{s:s, s:s, s:o, s:O?, s:I}", "session", s->sid,
	    "tenant", s->token.tenant->name, "fixtures", fixtures_kinds(req->fixtures,
	    req->nfixtures), "labels", req->labels, "wait_ms", (json_int_t)req->wait_ms));
}

static void
audit_grant(const struct lease *l)
{
	if (!audit_enabled(l->broker->audit))
		return;
	audit_event(l->broker->audit, "lease.grant",
	    json_pack("{s:s, s:s, s:s, s:o, s:O?, s:I}", "session",
	    l->session ? l->session->sid : "", "tenant", l->tenant->name, "lease", l->lid,
	    "fixtures", fixtures_kinds(l->fixtures, l->nfixtures), "labels", l->labels,
	    "ms", (json_int_t)(now_ms() - l->created_ms)));
}

static void
audit_quota(const struct session *s, const struct fxb_error *err)
{
	audit_event(s->broker->audit, "quota.refused",
	    json_pack("{s:s, s:s, s:s, s:O?}", "session", s->sid,
	    "tenant", s->token.tenant->name, "peer", s->peer_addr, "quota", err->data));
}

/* Charges req to s's tenant (and to the totals over every tenant): what it would hold
 * once granted. Returns 0, or -1 with err set to QUOTA_EXCEEDED. */
static int
charge(struct broker *b, struct session *s, struct lease_request *req, struct fxb_error *err)
{
	int64_t want[QUOTA_COUNT] = { 0 };

	want[QUOTA_PORTS] = (int64_t)req->nports;
	for (size_t i = 0; i < req->nfixtures; i++) {
		const char *kind = req->fixtures[i].kind->name;

		want[QUOTA_SERVERS] += !strcmp(kind, "server");
		want[QUOTA_DATABASES] += !strcmp(kind, "postgres");
		want[QUOTA_PG_CONNECTIONS] += req->fixtures[i].connections;
	}
	if (tenant_charge(s->token.tenant, want, err) == -1) {
		audit_quota(s, err);
		return -1;
	}
	if (tenant_charge(&b->leases->total, want, err) == -1) {
		tenant_refund(s->token.tenant, want);
		audit_quota(s, err);
		return -1;
	}
	req->tenant = s->token.tenant;
	memcpy(req->charge, want, sizeof want);
	return 0;
}

/* Takes req's ports, builds the lease and starts its fixtures. Returns the result,
 * RPC_PENDING (fixtures still starting; call is kept), or NULL: with err set when the
 * acquire failed, with *is_short set and nothing changed when the pool is short. */
static json_t *
grant(struct broker *b, struct session *s, struct rpc_call *call, struct lease_request *req,
    int *is_short, struct fxb_error *err)
{
	struct leases *ls = b->leases;
	uint16_t ports[req->nports + 1];
	uint64_t now = now_ms(), id = ls->next_id + 1;
	struct lease *l;
	size_t off = 0;
	char rnd[13];

	*is_short = 0;
	if (random_hex(rnd, 6) == -1) {
		error_set(err, ERR_INTERNAL, "no randomness for a lease id");
		return NULL;
	}
	if (ports_take(b->ports, id, req->nports, ports, now) == -1) {
		*is_short = 1;
		return NULL;
	}
	if (!(l = calloc(1, sizeof *l)) || idmap_put(ls->by_id, id, l) == -1) {
		free(l);
		ports_release(b->ports, id, ports, req->nports, now);
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	ls->next_id = id;
	l->broker = b;
	l->id = id;
	snprintf(l->lid, sizeof l->lid, "l-%llu-%s", (unsigned long long)id, rnd);
	l->state = LEASE_ACQUIRING;
	l->fixtures = req->fixtures;
	l->nfixtures = req->nfixtures;
	l->live = req->nfixtures;
	l->labels = req->labels;
	l->ttl_ms = -1;
	l->wait_ms = req->wait_ms;
	l->created_ms = now;
	l->session = s;
	l->tenant = req->tenant ? req->tenant : s->token.tenant;
	if (req->tenant) {
		memcpy(l->charge, req->charge, sizeof l->charge);
		if (req->waiting)
			tenant_refund1(req->tenant, QUOTA_WAITING, 1);
	}
	list_push(&s->leases, l);
	s->lease_count++;
	b->leases->granted++;
	start_ttl(b, l, req->ttl_ms);
	memset(req, 0, sizeof *req);

	/* Give every fixture its ports first, so a failure part-way releases them all. */
	for (size_t i = 0; i < l->nfixtures; i++) {
		struct fixture *f = &l->fixtures[i];
		f->lease = l;
		if (f->nports && !(f->ports = malloc(f->nports * sizeof *f->ports))) {
			ports_release(b->ports, id, ports + off, f->nports, now);
			f->nports = 0;
			error_set(err, ERR_INTERNAL, "out of memory");
		} else if (f->nports) {
			memcpy(f->ports, ports + off, f->nports * sizeof *f->ports);
		}
		off += f->nports ? f->nports : 0;
	}
	for (size_t i = 0; i < l->nfixtures; i++)
		for (size_t d = 0; d < l->fixtures[i].ndeps; d++)
			l->fixtures[l->fixtures[i].deps[d]].dependents++;
	l->starting = l->nfixtures;
	if (!err->code)
		start_startable(b, l, err);
	if (err->code) {
		lease_release(b, l, "a fixture failed to start");
		return NULL;
	}
	if (l->starting) {
		l->call = call;
		return RPC_PENDING;
	}
	l->state = LEASE_HELD;
	observe(b, rpc_call_started_ms(call));
	audit_grant(l);
	return grant_result(l);
}

/* Delivers grant()'s outcome for a call that already returned RPC_PENDING. */
static void
finish_call(struct rpc_call *call, json_t *result, struct fxb_error *err)
{
	if (result == RPC_PENDING)
		return;
	if (result)
		rpc_call_finish(call, result);
	else
		rpc_call_fail(call, err);
}

void
fixture_ready(struct broker *b, struct fixture *f)
{
	struct lease *l = f->lease;
	struct fxb_error err = { 0 };
	struct rpc_call *call;

	f->state = FIXTURE_READY;
	if (l->state != LEASE_ACQUIRING)
		return;
	l->starting--;
	start_startable(b, l, &err); /* the fixtures that needed f */
	if (err.code) {
		call = l->call;
		l->call = NULL;
		rpc_call_fail(call, &err);
		error_clear(&err);
		lease_release(b, l, "a fixture failed to start");
		return;
	}
	if (l->starting > 0)
		return;
	l->state = LEASE_HELD;
	call = l->call;
	l->call = NULL;
	observe(b, rpc_call_started_ms(call));
	audit_grant(l);
	rpc_call_finish(call, grant_result(l));
}

void
fixture_failed(struct broker *b, struct fixture *f, const struct fxb_error *err)
{
	struct lease *l = f->lease;
	struct rpc_call *call;

	if (l->state != LEASE_ACQUIRING) {
		log_warnx("fixture %s of lease %s failed after its acquire ended: %s", f->name, l->lid,
		    err->text);
		return;
	}
	call = l->call;
	l->call = NULL;
	audit_event(b->audit, "lease.fail", json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "session",
	    l->session->sid, "tenant", l->tenant->name, "lease", l->lid, "fixture", f->name,
	    "error", error_name(err->code), "code", err->code));
	rpc_call_fail(call, err);
	lease_release(b, l, "a fixture failed to start");
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
waiter_free(struct waiter *w)
{
	request_refund(w->b, &w->req);
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
	audit_event(b->audit, "lease.fail", json_pack("{s:s, s:s, s:s, s:i}", "session", w->s->sid,
	    "tenant", w->s->token.tenant->name, "error", error_name(err.code), "code", err.code));
	waiter_unlink(b->leases, w);
	rpc_call_fail(w->call, &err);
	waiter_free(w);
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

/* The waiter served next: the oldest of the tenant whose turn came longest ago, so that
 * tenants take turns however many acquires each has queued. */
static struct waiter *
next_waiter(struct leases *ls)
{
	struct waiter *best = ls->head;

	for (struct waiter *w = ls->head; w; w = w->next)
		if (w->req.tenant && best->req.tenant && w->req.tenant->served < best->req.tenant->served)
			best = w;
	return best;
}

/* Serves queued acquires, tenants taking turns, for as long as the pool has the ports of
 * the one whose turn it is (nobody overtakes it, so a large request is not starved). */
static void
serve_waiters(struct broker *b)
{
	struct leases *ls = b->leases;
	static int serving;

	/* grant() may release ports (a fixture failing at once), which calls back here. */
	if (serving)
		return;
	serving = 1;
	while (ls->head) {
		struct waiter *w = next_waiter(ls);
		struct tenant *t = w->req.tenant;
		struct fxb_error err = { 0 };
		int is_short;
		json_t *result = grant(b, w->s, w->call, &w->req, &is_short, &err);

		if (is_short)
			break;
		if (t)
			t->served = ++ls->turn;
		waiter_unlink(ls, w);
		finish_call(w->call, result, &err);
		error_clear(&err);
		waiter_free(w);
	}
	serving = 0;
	arm_wake(b);
}

json_t *
lease_acquire(struct broker *b, struct session *s, struct rpc_call *call,
    struct lease_request *req, struct fxb_error *err)
{
	struct leases *ls = b->leases;
	struct waiter *w;
	json_t *result;
	int is_short = 1;

	if (b->leases->draining) {
		error_set(err, ERR_SHUTTING_DOWN, "the broker is shutting down");
		lease_request_clear(req);
		return NULL;
	}
	audit_acquire(s, req);
	if (charge(b, s, req, err) == -1)
		goto fail;
	/* Nobody is served ahead of a request already waiting. */
	if (!ls->head) {
		result = grant(b, s, call, req, &is_short, err);
		if (!is_short) {
			request_refund(b, req); /* nothing left to refund if a lease took it */
			lease_request_clear(req);
			if (!result)
				goto audit_fail;
			return result;
		}
	}
	if (req->wait_ms == 0) {
		exhausted(b, s, req, 0, err);
		goto fail;
	}
	if (tenant_charge1(req->tenant, QUOTA_WAITING, 1, err) == -1) {
		audit_quota(s, err);
		goto fail;
	}
	req->waiting = 1;
	if (!(w = calloc(1, sizeof *w))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		goto fail;
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
fail:
	request_refund(b, req);
	lease_request_clear(req);
audit_fail:
	audit_event(b->audit, "lease.fail",
	    json_pack("{s:s, s:s, s:s, s:i}", "session", s->sid, "tenant",
	    s->token.tenant->name, "error", error_name(err->code), "code", err->code));
	return NULL;
}

struct lease *
lease_find(struct broker *b, const char *lid)
{
	char *end;
	unsigned long long id;
	struct lease *l;

	if (strncmp(lid, "l-", 2) != 0 || !isdigit((unsigned char)lid[2]))
		return NULL;
	id = strtoull(lid + 2, &end, 10);
	if (*end != '-')
		return NULL;
	l = idmap_get(b->leases->by_id, id);
	/* The number finds it; the whole id, random part included, must match. */
	return l && l->state == LEASE_HELD && secret_equal(l->lid, lid) ? l : NULL;
}

struct lease *
lease_by_number(struct broker *b, uint64_t id)
{
	struct lease *l = idmap_get(b->leases->by_id, id);

	return l && l->state == LEASE_HELD ? l : NULL;
}

struct lease *
lease_owned(struct broker *b, struct session *s, const char *lid, struct fxb_error *err)
{
	struct lease *l = lease_find(b, lid);

	/* Another tenant's lease is not there at all, as far as this session can tell. */
	if (!l || l->tenant != s->token.tenant) {
		error_set(err, ERR_LEASE_NOT_FOUND, "lease %s: the broker holds no such lease", lid);
		return NULL;
	}
	if (l->session != s) {
		error_set(err, ERR_LEASE_NOT_OWNED, "lease %s belongs to another session", lid);
		return NULL;
	}
	return l;
}

struct fixture *
lease_owned_fixture(struct broker *b, struct session *s, const char *lid, const char *name,
    struct fxb_error *err)
{
	struct lease *l = lease_owned(b, s, lid, err);
	struct fixture *f;

	if (!l)
		return NULL;
	if (!(f = lease_fixture(l, name)))
		error_set(err, ERR_INVALID_PARAMS,
		    "invalid params: fixture: lease %s has no fixture \"%.64s\"", lid, name);
	return f;
}

static void
lease_free(struct broker *b, struct lease *l)
{
	struct leases *ls = b->leases;

	list_unlink(&ls->stopping, l);
	ls->nstopping--;
	free(l->fixtures);
	json_decref(l->labels);
	free(l);
	if (b->leases->draining && ls->nstopping == 0)
		lws_cancel_service(b->ctx);
}

/* Stops f now, or once the fixtures that need it have stopped. */
static void
stop_fixture(struct broker *b, struct fixture *f, const char *reason)
{
	if (f->state == FIXTURE_STOPPING || f->state == FIXTURE_STOPPED)
		return;
	if (f->dependents > 0) {
		f->stop_wanted = 1;
		return;
	}
	if (f->state == FIXTURE_PARSED) {
		fixture_stopped(b, f);
		return;
	}
	f->state = FIXTURE_STOPPING;
	f->kind->stop(b, f, reason);
}

void
fixture_stopped(struct broker *b, struct fixture *f)
{
	struct lease *l = f->lease;
	size_t ndeps = f->ndeps, deps[ndeps + 1];

	ports_release(b->ports, l->id, f->ports, f->nports, now_ms());
	if (ndeps)
		memcpy(deps, f->deps, ndeps * sizeof *deps);
	fixture_clear(f);
	/* What f needed can stop now, if it was waiting for f. */
	for (size_t i = 0; i < ndeps; i++) {
		struct fixture *d = &l->fixtures[deps[i]];
		if (--d->dependents == 0 && d->stop_wanted)
			stop_fixture(b, d, "released after the fixtures that needed it");
	}
	if (--l->live == 0)
		lease_free(b, l);
	serve_waiters(b);
}

void
lease_release(struct broker *b, struct lease *l, const char *reason)
{
	struct leases *ls = b->leases;
	struct session *s = l->session;

	if (l->state == LEASE_ENDING)
		return;
	if (l->state == LEASE_ACQUIRING && l->call) {
		struct fxb_error err = { 0 };
		struct rpc_call *call = l->call;
		l->call = NULL;
		error_set(&err, b->leases->draining ? ERR_SHUTTING_DOWN : ERR_ACQUIRE_CANCELLED,
		    "the acquire was cancelled: %s", reason);
		rpc_call_fail(call, &err);
		error_clear(&err);
	}
	l->state = LEASE_ENDING;
	if (l->ttl_ms >= 0)
		lws_sul_cancel(&l->ttl_timer);
	/* Out of the session and the id table: to the client the lease is gone. */
	list_unlink(&s->leases, l);
	s->lease_count--;
	l->session = NULL;
	idmap_del(ls->by_id, l->id);
	/* The tenant's quotas count what it holds, and it holds the lease no more; the pools
	 * still hold its stopping fixtures back from everyone until they have stopped. */
	tenant_refund(l->tenant, l->charge);
	tenant_refund(&ls->total, l->charge);
	memset(l->charge, 0, sizeof l->charge);
	log_debug("lease %s of session %s released: %s", l->lid, s->sid, reason);
	audit_event(b->audit, "lease.release", json_pack("{s:s, s:s, s:s, s:s}", "session", s->sid,
	    "tenant", l->tenant->name, "lease", l->lid, "reason", reason));
	/* Into the stopping list until every fixture stops. */
	list_push(&ls->stopping, l);
	ls->nstopping++;
	l->live++; /* hold l while stop() calls may free fixtures synchronously */
	for (size_t i = l->nfixtures; i-- > 0;)
		stop_fixture(b, &l->fixtures[i], reason);
	if (--l->live == 0)
		lease_free(b, l);
}

/* Fails the waiting acquires of s with ACQUIRE_CANCELLED (or SHUTTING_DOWN). */
static void
cancel_waits(struct broker *b, struct session *s)
{
	struct fxb_error err = { 0 };
	struct waiter *w, *next;

	for (w = b->leases->head; w; w = next) {
		next = w->next;
		if (w->s != s)
			continue;
		error_set(&err, b->leases->draining ? ERR_SHUTTING_DOWN : ERR_ACQUIRE_CANCELLED,
		    b->leases->draining ? "the broker is shutting down"
		    : "the session's connection closed while the acquire was waiting");
		waiter_unlink(b->leases, w);
		rpc_call_fail(w->call, &err);
		waiter_free(w);
		error_clear(&err);
	}
	serve_waiters(b);
}

void
lease_session_detached(struct broker *b, struct session *s)
{
	cancel_waits(b, s);
	for (const struct fixture_kind *const *k = b->leases->kinds; *k; k++)
		if ((*k)->session_detached)
			(*k)->session_detached(b, s);
}

void
lease_session_ended(struct broker *b, struct session *s, const char *reason)
{
	lease_release_session(b, s, reason);
	for (const struct fixture_kind *const *k = b->leases->kinds; *k; k++)
		if ((*k)->session_ended)
			(*k)->session_ended(b, s);
}

int
lease_session_busy(struct broker *b, const struct session *s)
{
	for (const struct fixture_kind *const *k = b->leases->kinds; *k; k++)
		if ((*k)->session_busy && (*k)->session_busy(b, s))
			return 1;
	return 0;
}

size_t
lease_busy_sessions(struct broker *b)
{
	size_t n = 0;

	for (struct session *s = sessions_first(b->sessions); s; s = s->next)
		n += lease_session_busy(b, s) != 0;
	return n;
}

void
lease_end(struct broker *b, struct lease *l, int code, const char *reason)
{
	json_t *names = json_array(), *params;

	if (l->state == LEASE_ENDING)
		return;
	for (size_t i = 0; names && i < l->nfixtures; i++)
		json_array_append_new(names, json_string(l->fixtures[i].name));
	if (l->session && names && (params = json_pack("{s:s, s:s, s:{s:i, s:s}, s:O}", "lease",
	    l->lid, "reason", reason, "error", "code", code, "name", error_name(code), "fixtures",
	    names)))
		session_notify(l->session, "lease.ended", params);
	json_decref(names);
	lease_release(b, l, reason);
}

void
lease_release_session(struct broker *b, struct session *s, const char *reason)
{
	cancel_waits(b, s);
	if (s->lease_count)
		b->leases->reclaimed += s->lease_count;
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

const char *
lease_host(const struct lease *l)
{
	return session_host(l->broker, l->session);
}

void
leases_cap_total(struct leases *ls, enum quota q, int64_t max)
{
	ls->total.limit[q] = max;
}

json_t *
leases_totals_json(const struct leases *ls)
{
	return tenant_json(&ls->total);
}
