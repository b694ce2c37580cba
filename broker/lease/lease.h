/* lease.h: atomic bundles of named fixtures, the kinds of fixture, and the wait queue.
 *
 * A lease belongs to one session and holds every fixture it names or none. Acquiring
 * goes in two steps: first every port the lease's fixtures need is taken from the pool in
 * one all-or-nothing step (waiting in one FIFO queue across all sessions when the pool is
 * short); then each fixture is started by its kind, which may finish at once (a port) or
 * later (a server passing its probes, a database being cloned). The lease is granted when
 * every fixture is ready and fails whole when one fails. Releasing stops fixtures in
 * reverse order; a fixture's ports go back to the pool only once its kind says it is
 * stopped (a server's whole process tree is gone). The methods in methods.c parse params;
 * this module does the work.
 */
#ifndef FXB_LEASE_H
#define FXB_LEASE_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

#include "core/errors.h"
#include "tenant/tenant.h"

struct broker;
struct session;
struct rpc_call;
struct leases;
struct lease;
struct fixture;
struct histogram;

/* What a kind of fixture does. Every callback runs on the loop and must not block. */
struct fixture_kind {
	const char *name;
	/* Checks spec (the request's object for this fixture, "kind" included) and sets
	 * f->nports and f->data, and f->needs for fixtures leased with it (a server's
	 * database): an object {"<sub>": spec}, each becoming fixture "<name>.<sub>" of the
	 * same lease, started before f and stopped after it. Returns 0, or -1 with err set
	 * (then free is called). */
	int (*parse)(struct broker *b, struct fixture *f, json_t *spec, struct fxb_error *err);
	/* Starts f, whose ports are taken and whose needs are ready (f->deps). Returns 0
	 * when f is ready now (f->fields set), 1 when it will call fixture_ready() or
	 * fixture_failed() later (never from within start), or -1 with err. */
	int (*start)(struct broker *b, struct fixture *f, struct fxb_error *err);
	/* Stops f, ready or still starting, and calls fixture_stopped() once its resources
	 * are released, possibly before returning. reason is for the log. */
	void (*stop)(struct broker *b, struct fixture *f, const char *reason);
	/* Frees f->data; called last, also for a fixture that was never started. */
	void (*free)(struct fixture *f);
	/* Optional: replaces f with a fresh instance (lease.reset), updating f->fields.
	 * Returns lease_reset_result(f), RPC_PENDING (finishing call later with
	 * lease_reset_result or an error), or NULL with err set. */
	json_t *(*reset)(struct broker *b, struct fixture *f, struct rpc_call *call,
	    struct fxb_error *err);
	/* Optional: s lost its connection (or gave it to the session it resumed). Fails the
	 * calls s has waiting on this kind outside any lease, as the lease core does
	 * for acquires. */
	void (*session_detached)(struct broker *b, struct session *s);
	/* Optional: s has ended and its leases are released. Gives up what else the kind
	 * keeps on s's behalf (a template build it owns passes to the next waiter). */
	void (*session_ended)(struct broker *b, struct session *s);
	/* Optional: whether s holds something of this kind outside its leases and calls (it
	 * is building a template): a drain keeps such a session's connection. */
	int (*session_busy)(struct broker *b, const struct session *s);
};

enum fixture_state {
	FIXTURE_PARSED,   /* not started (its needs are not ready yet) */
	FIXTURE_STARTING,
	FIXTURE_READY,
	FIXTURE_STOPPING,
	FIXTURE_STOPPED,
};

struct fixture {
	char *name;
	const struct fixture_kind *kind;
	enum fixture_state state;
	struct lease *lease;
	uint16_t *ports; /* taken for it, in order */
	size_t nports;
	json_t *fields;  /* the result once ready: {"kind": ..., ...} */
	void *data;      /* the kind's own */
	json_t *needs;   /* from parse, see struct fixture_kind */
	size_t *deps;    /* indices in the lease of the fixtures it needs */
	size_t ndeps;
	size_t dependents; /* live fixtures that need this one */
	int stop_wanted;   /* released, waiting for its dependents to stop */
	int connections;   /* PostgreSQL connections it may open (set by parse), for quotas */
};

enum lease_state { LEASE_ACQUIRING, LEASE_HELD, LEASE_ENDING };

struct lease {
	struct broker *broker;
	uint64_t id;
	char lid[40]; /* "l-<id>-<12 random hex>": not guessable from another lease's */
	enum lease_state state;
	struct session *session; /* NULL once ending */
	struct lease *session_next, *session_prev;
	struct fixture *fixtures;
	size_t nfixtures;
	size_t starting; /* fixtures not ready yet, while acquiring */
	size_t live;     /* fixtures not stopped yet */
	struct rpc_call *call; /* the acquire, while acquiring */
	json_t *labels;
	struct tenant *tenant;          /* its session's, for good */
	int64_t charge[QUOTA_COUNT];    /* what it counts against its tenant's quotas */
	int64_t ttl_ms; /* -1: none */
	int64_t wait_ms; /* the acquire's: how long a kind that waits elsewhere (an upstream) may */
	uint64_t created_ms, expires_ms;
	lws_sorted_usec_list_t ttl_timer;
};

/* A parsed lease.acquire request; lease_acquire() takes ownership. */
struct lease_request {
	struct fixture *fixtures;
	size_t nfixtures;
	size_t nports;
	json_t *labels;
	int64_t wait_ms;
	int64_t ttl_ms;
	/* Once lease_acquire() has charged the tenant: the tenant and the charge, which
	 * lease_request_clear() gives back unless a lease took it over. */
	struct tenant *tenant;
	int64_t charge[QUOTA_COUNT];
	int waiting; /* counted in the tenant's waiting quota */
};

/* The lease table for the kinds in kinds (borrowed, ending with NULL, kept for the
 * table's lifetime): the composition root (broker.c) says which kinds a broker serves. */
struct leases *leases_new(struct broker *b, const struct fixture_kind *const *kinds);
/* Frees the table; every lease must have been released and stopped first. */
void leases_free(struct leases *ls);

/* Parses lease.acquire params into req. Returns 0, or -1 with err set (nothing to free). */
int lease_request_parse(struct broker *b, json_t *params, struct lease_request *req,
    struct fxb_error *err);
void lease_request_clear(struct lease_request *req);
/* Checks that labels is an object of strings. Returns 0, or -1 with err set. */
int lease_labels_check(json_t *labels, struct fxb_error *err);

/* Serves req (taken) for s now, or queues it. Returns the result, RPC_PENDING (the call
 * finishes later), or NULL with err set. */
json_t *lease_acquire(struct broker *b, struct session *s, struct rpc_call *call,
    struct lease_request *req, struct fxb_error *err);

/* A kind reports that f, which its start() left pending, is ready (f->fields set), or
 * that it failed (err is copied; the whole lease fails and is released). */
void fixture_ready(struct broker *b, struct fixture *f);
void fixture_failed(struct broker *b, struct fixture *f, const struct fxb_error *err);
/* A kind reports that f, after stop(), holds nothing any more: its ports go back. */
void fixture_stopped(struct broker *b, struct fixture *f);
/* The fixture of l named name, or NULL. */
struct fixture *lease_fixture(struct lease *l, const char *name);
/* The fixture f needs under sub ("db" for "api.db"), or NULL. */
struct fixture *fixture_dep(struct fixture *f, const char *sub);
/* The lease.reset result for f: {"lease", "fixtures": {name: fields}}. */
json_t *lease_reset_result(struct fixture *f);
/* lease.reset: swaps the named fixture of s's lease for a fresh one. As a method. */
json_t *lease_reset(struct broker *b, struct session *s, struct rpc_call *call,
    const char *lid, const char *fixture, struct fxb_error *err);

/* Looks a held lease up by its wire id; NULL if the broker does not hold it. */
struct lease *lease_find(struct broker *b, const char *lid);
/* Looks a held lease up by its number alone (l->id): for the broker's own sessions (the
 * IntegreSQL API's test database ids), never for an id a client sent. */
struct lease *lease_by_number(struct broker *b, uint64_t id);
/* s's lease with wire id lid, or NULL with err set: LEASE_NOT_FOUND when the broker holds
 * no such lease, LEASE_NOT_OWNED when another session holds it. */
struct lease *lease_owned(struct broker *b, struct session *s, const char *lid,
    struct fxb_error *err);
/* The fixture name of s's lease lid, or NULL with err set as lease_owned() does, or
 * INVALID_PARAMS when the lease has no such fixture. */
struct fixture *lease_owned_fixture(struct broker *b, struct session *s, const char *lid,
    const char *name, struct fxb_error *err);
/* Releases l (held or acquiring; an acquire in progress fails with err_code): it leaves
 * its session at once, and its fixtures stop in reverse order. reason is for the log. */
void lease_release(struct broker *b, struct lease *l, const char *reason);
/* lease_release(), for a lease its session did not release (its TTL, an admin): the session
 * is first told with lease.ended {"lease", "reason", "error": {"code", "name"}, "fixtures"}
 * (every fixture of the lease; code is what it stands for, e.g. LEASE_NOT_FOUND). */
void lease_end(struct broker *b, struct lease *l, int code, const char *reason);
/* s's connection is gone: fails its waiting acquires (ACQUIRE_CANCELLED) and runs each
 * kind's session_detached hook. */
void lease_session_detached(struct broker *b, struct session *s);
/* s is ending: releases its leases (lease_release_session), then runs each kind's
 * session_ended hook. */
void lease_session_ended(struct broker *b, struct session *s, const char *reason);
/* Whether some kind's session_busy hook says s holds something outside its leases. */
int lease_session_busy(struct broker *b, const struct session *s);
/* The sessions that are busy so (a drain waits for them as for leases). */
size_t lease_busy_sessions(struct broker *b);
/* Releases every lease of s and fails its waiting acquires with ACQUIRE_CANCELLED. */
void lease_release_session(struct broker *b, struct session *s, const char *reason);
/* Extends l's TTL; ttl_ms < 0 keeps the lease's own. */
void lease_renew(struct broker *b, struct lease *l, int64_t ttl_ms);
/* The lease as lease.list and lease.acquire show it. */
json_t *lease_fixtures_json(const struct lease *l);
/* The host l's fixtures report: the broker's advertise setting, else the address l's
 * client dialled, else the broker's listen address (loopback for a wildcard). */
const char *lease_host(const struct lease *l);
json_t *lease_json(const struct lease *l, uint64_t now_ms);

/* The broker is shutting down: from now on acquires fail with SHUTTING_DOWN, and so do
 * the acquires waiting when their session is cancelled. */
void leases_drain(struct leases *ls);
int leases_draining(const struct leases *ls);

/* Counters since start, for /metrics; acquire_seconds is borrowed from ls. */
struct leases_stats {
	uint64_t granted;   /* leases granted */
	uint64_t reclaimed; /* leases released because their session ended */
	const struct histogram *acquire_seconds; /* an acquire's arrival to its grant */
};
void leases_stats(const struct leases *ls, struct leases_stats *st);

size_t leases_active(const struct leases *ls);
/* Caps the total of quota q over every tenant (the PostgreSQL connections of all leases
 * below the server's max_connections); -1: no cap. */
void leases_cap_total(struct leases *ls, enum quota q, int64_t max);
/* The totals over every tenant and their caps, as tenant_json() shows a tenant. */
json_t *leases_totals_json(const struct leases *ls);
size_t leases_waiting(const struct leases *ls);
/* Fixtures of released leases still stopping (servers in their stop grace period). */
size_t leases_stopping(const struct leases *ls);

#endif
