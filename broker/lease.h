/* lease.h: atomic bundles of named fixtures, and the queue of acquires that wait.
 *
 * A lease belongs to one session and holds every fixture it names or none. Acquires that
 * cannot be served now wait in one FIFO queue across all sessions until the pool has
 * room or their wait_ms runs out. Release is idempotent and goes in reverse order of
 * acquisition. The methods in methods.c parse params; this module does the work.
 */
#ifndef FXB_LEASE_H
#define FXB_LEASE_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

#include "errors.h"

struct broker;
struct session;
struct rpc_call;
struct leases;

enum fixture_kind { FIXTURE_PORT };

struct fixture {
	char *name;
	enum fixture_kind kind;
	uint16_t port;
};

struct lease {
	struct broker *broker;
	uint64_t id;
	char lid[24]; /* "l-<id>" */
	struct session *session;
	struct lease *session_next, *session_prev;
	struct fixture *fixtures;
	size_t nfixtures;
	json_t *labels;
	int64_t ttl_ms; /* -1: none */
	uint64_t created_ms, expires_ms;
	lws_sorted_usec_list_t ttl_timer;
};

/* A parsed lease.acquire request; lease_acquire() takes ownership. */
struct lease_request {
	struct fixture *fixtures;
	size_t nfixtures;
	json_t *labels;
	int64_t wait_ms;
	int64_t ttl_ms;
};

struct leases *leases_new(struct broker *b);
/* Frees the table; every lease must have been released first. */
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

/* Looks a lease up by its wire id; NULL if the broker does not hold it. */
struct lease *lease_find(struct broker *b, const char *lid);
/* Releases l: its fixtures go back in reverse order, it leaves its session, it is freed.
 * reason is for the log. */
void lease_release(struct broker *b, struct lease *l, const char *reason);
/* Releases every lease of s and fails its waiting acquires with ACQUIRE_CANCELLED. */
void lease_release_session(struct broker *b, struct session *s, const char *reason);
/* Fails the waiting acquires of s with ACQUIRE_CANCELLED. */
void lease_cancel_waits(struct broker *b, struct session *s);
/* Extends l's TTL; ttl_ms < 0 keeps the lease's own. */
void lease_renew(struct broker *b, struct lease *l, int64_t ttl_ms);
/* The lease as lease.list and lease.acquire show it. */
json_t *lease_fixtures_json(const struct lease *l);
json_t *lease_json(const struct lease *l, uint64_t now_ms);

size_t leases_active(const struct leases *ls);
size_t leases_waiting(const struct leases *ls);

#endif
