/* rpc.h: JSON-RPC 2.0 over text messages, without sockets.
 *
 * rpc_handle() takes one message (a call, a notification or a batch) from a session and
 * returns the reply text to send now. A method may keep its call open (lease.acquire
 * waiting for ports) and finish it later with rpc_call_finish()/rpc_call_fail(); that
 * reply, and a batch waiting for it, then goes out through session_send(). The method
 * table lives in methods.c.
 */
#ifndef FXB_RPC_H
#define FXB_RPC_H

#include <jansson.h>
#include <stddef.h>

#include "core/errors.h"

struct broker;
struct session;
struct rpc_call;

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

/* The method table (methods.c), ending with a NULL name. */
extern const struct rpc_method rpc_methods[];
size_t rpc_method_count(void);

/* Returns the reply to send now as a malloc'd string, or NULL when there is nothing to
 * send now (notifications, or calls still open). Never fails: out of memory becomes
 * -32603 or, at worst, no reply. */
char *rpc_handle(struct broker *b, struct session *s, const char *text, size_t len);

/* Finish an open call with a result (stolen) or an error (copied; the caller clears err).
 * Either frees call. */
void rpc_call_finish(struct rpc_call *call, json_t *result);
void rpc_call_fail(struct rpc_call *call, const struct fxb_error *err);
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

/* Sends a notification (method, params taken) to s, if it is connected. */
void rpc_notify(struct session *s, const char *method, json_t *params);

/* Builds a JSON-RPC error object for err (with data.name); for the ws layer and tests. */
json_t *rpc_error_object(const struct fxb_error *err);

#endif
