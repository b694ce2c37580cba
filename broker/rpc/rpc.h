/* rpc.h: JSON-RPC 2.0 over text messages, without sockets or sessions.
 *
 * rpc_handle() takes one message (a call, a notification or a batch) from a peer and
 * returns the reply text to send now. A method may keep its call open (lease.acquire
 * waiting for ports) and finish it later with rpc_call_finish()/rpc_call_fail(); that
 * reply, and a batch waiting for it, then goes out through the peer's send. The method
 * table is handed in by the composition root (rpc_new); this layer counts calls and
 * errors per method.
 */
#ifndef FXB_RPC_H
#define FXB_RPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/errors.h"

struct broker;
struct session;
struct rpc;
struct rpc_call;

/* Who sent a message, as this layer sees it. Its owner (a session) embeds one, sets send
 * and session, and grants authenticated; this layer keeps the list of its open calls. */
struct rpc_peer {
	/* Delivers text (taken, malloc'd) to the peer, or drops it. */
	void (*send)(struct rpc_peer *p, char *text, size_t len);
	struct session *session; /* handed to methods */
	int authenticated;       /* may call methods that need authentication */
	size_t open_calls;       /* calls kept open (waiting acquires) */
	struct rpc_call *calls;  /* those calls; this layer's */
};

/* p is going away: its open calls stay open for the modules that hold them, but their
 * replies are dropped and rpc_call_session() returns NULL for them. Call it before p's
 * memory goes (session_close does). */
void rpc_peer_orphan(struct rpc_peer *p);

/* A method returns its result (the caller takes the reference), NULL with err set, or
 * RPC_PENDING after keeping call to finish it later. */
typedef json_t *(*rpc_method_fn)(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err);

extern json_t rpc_pending_marker;
#define RPC_PENDING (&rpc_pending_marker)

struct rpc_method {
	const char *name;
	rpc_method_fn fn;
	int needs_auth; /* 0 for the calls an unauthenticated session may make */
};

/* The dispatcher for methods (borrowed, ending with a NULL name), or NULL when out of
 * memory. rpc_free(NULL) does nothing. */
struct rpc *rpc_new(const struct rpc_method *methods);
void rpc_free(struct rpc *r);

/* Returns the reply to send now as a malloc'd string, or NULL when there is nothing to
 * send now (notifications, or calls still open). Never fails: out of memory becomes
 * -32603 or, at worst, no reply. Dispatches through b->rpc. */
char *rpc_handle(struct broker *b, struct rpc_peer *p, const char *text, size_t len);

/* Finish an open call with a result (stolen) or an error (copied; the caller clears err).
 * Either frees call. */
void rpc_call_finish(struct rpc_call *call, json_t *result);
void rpc_call_fail(struct rpc_call *call, const struct fxb_error *err);
/* The session that made call; NULL once its peer was orphaned. */
struct session *rpc_call_session(const struct rpc_call *call);
/* When the broker received the call (monotonic ms). */
uint64_t rpc_call_started_ms(const struct rpc_call *call);

/* One by-name parameter: its key, its JSON type, and whether it must be present and
 * whether null is allowed. A table ends with a NULL key. */
struct rpc_param {
	const char *key;
	json_type type;
	int required;
	int nullable;
};

/* Checks params against table: no unknown member, every required one present, every
 * type right. Returns 0, or -1 with an INVALID_PARAMS error naming the member. */
int rpc_params_check(json_t *params, const struct rpc_param *table, struct fxb_error *err);

/* The text of a notification (method, params taken), malloc'd, or NULL. */
char *rpc_notification(const char *method, json_t *params);

/* Builds a JSON-RPC error object for err (with data.name and, for INVALID_PARAMS,
 * data.detail). */
json_t *rpc_error_object(const struct fxb_error *err);

/* The methods' count and names, and the calls and errors counted for method i; i equal
 * to the count stands for calls to unknown methods (name "(unknown)"). */
size_t rpc_method_count(const struct rpc *r);
const char *rpc_method_name(const struct rpc *r, size_t i);
void rpc_method_stats(const struct rpc *r, size_t i, uint64_t *calls, uint64_t *errors);

#endif
