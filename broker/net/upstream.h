/* upstream.h: one JSON-RPC session with an upstream broker, as its client.
 *
 * A broker started with --upstream keeps one WebSocket connection to another broker (an lws
 * client connection on its own loop and context, on a vhost of its own that carries the
 * client TLS settings) and one session on it: session.hello with the token, then calls with
 * ids whose replies come back to completion callbacks, and the upstream's notifications to
 * one hook. A cut connection is resumed with the session's resume token (also in the
 * upgrade request's X-Fxb-Resume header, which a draining upstream lets in), with backoff;
 * while it is being resumed, new calls wait. When the session cannot be had back (resume
 * refused for any reason, answered with a fresh session, or not back within the upstream's
 * grace period) it is lost: every open call fails with
 * UPSTREAM_LOST and the lost hook runs; then a fresh session is sought, and calls made
 * meanwhile fail at once with UPSTREAM_UNAVAILABLE. The connection is watched as the SDKs
 * watch theirs: a ping when it has been quiet for half of dead_after_ms, and closed (then
 * resumed) when nothing came for dead_after_ms. A host name in the URL is resolved on a
 * thread at each connection, never on the loop.
 *
 * It knows nothing of leases; fixtures/forward/ builds on it.
 */
#ifndef FXB_UPSTREAM_H
#define FXB_UPSTREAM_H

#include <jansson.h>
#include <stdint.h>

#include "core/errors.h"

struct broker;
struct upstream;

/* A call's outcome: result (borrowed, for the callback's duration) or err (result NULL). */
typedef void (*upstream_reply_fn)(struct broker *b, void *arg, json_t *result,
    const struct fxb_error *err);
/* A notification from upstream (params borrowed). */
typedef void (*upstream_notify_fn)(struct broker *b, const char *method, json_t *params);
/* The upstream session is lost for good (err says why); every call already failed. */
typedef void (*upstream_lost_fn)(struct broker *b, const struct fxb_error *err);
/* The session was resumed after a cut; calls made now with upstream_call_first() go before
 * the calls that waited for it. */
typedef void (*upstream_resumed_fn)(struct broker *b);

/* Starts the upstream session of b (b->cfg.upstream and its token and TLS settings) on b's
 * loop: the first connection is made from the loop, at once. Returns NULL with err set
 * (a bad URL, an unreadable token file, a TLS file lws cannot load). */
struct upstream *upstream_new(struct broker *b, upstream_notify_fn on_notify,
    upstream_lost_fn on_lost, upstream_resumed_fn on_resumed, struct fxb_error *err);
/* Fails the open calls (SHUTTING_DOWN) and frees u; before the loop stops. NULL: nothing. */
void upstream_free(struct upstream *u);

/* Sends method with params (taken; NULL: none) and calls fn with its outcome, later, never
 * from within this call. Returns the call's id (> 0), or -1 with err set (UPSTREAM_UNAVAILABLE
 * while no session is had; nothing is kept then). */
int64_t upstream_call(struct upstream *u, const char *method, json_t *params,
    upstream_reply_fn fn, void *arg, struct fxb_error *err);
/* upstream_call(), but the call goes before every call not yet sent. */
int64_t upstream_call_first(struct upstream *u, const char *method, json_t *params,
    upstream_reply_fn fn, void *arg, struct fxb_error *err);
/* fn of call id will not be called (its reply, if one comes, is dropped). */
void upstream_cancel(struct upstream *u, int64_t id);

/* The range the upstream's hello limits are clamped to (ms): dead_after_ms below the
 * minimum would drop a healthy link, a negative grace_ms would lose every cut at once. */
#define UPSTREAM_DEAD_AFTER_MIN_MS 100
#define UPSTREAM_DEAD_AFTER_MAX_MS 86400000
#define UPSTREAM_GRACE_MAX_MS 3600000

/* Reads dead_after_ms and grace_ms from the limits of an upstream's session.hello result
 * into *dead_after_ms and *grace_ms: each must be an integer (else it is left as it is) and
 * is clamped to its range (heartbeat_ms is checked the same way); url names the upstream
 * in the log. */
void upstream_limits_read(json_t *limits, int *dead_after_ms, int *grace_ms, const char *url);

/* "connecting", "up", "resuming" or "down". */
const char *upstream_state(const struct upstream *u);
/* {"url", "state", "session", "last_error", "open_calls", "connects", "resumes", "lost"}
 * for broker.status; NULL when out of memory. */
json_t *upstream_json(const struct upstream *u);

#endif
