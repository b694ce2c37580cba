/* ws.h: WebSocket connections: bytes in and out.
 *
 * It reassembles fragments, enforces the message size cap, hands whole messages to
 * rpc_handle() and queues replies, one lws_write per writeable callback. It knows nothing
 * of JSON-RPC; each connection carries one session (session.h).
 */
#ifndef FXB_WS_H
#define FXB_WS_H

#include <libwebsockets.h>
#include <stddef.h>

struct broker;

#define WS_SUBPROTOCOL "fixture-broker.v1"
/* The upgrade request header (lws's form of its name: lower case, with the colon) in which
 * a client that comes back to resume names its resume token: a draining broker lets such a
 * connection in when it holds that session, and refuses every other upgrade with 503. */
#define WS_RESUME_HEADER "x-fxb-resume:"
/* How long a connection let in that way has for its session.hello during a drain. */
#define WS_DRAIN_RESUME_MS 10000

/* The lws protocol, for loop.c. */
extern const struct lws_protocols ws_protocol;

/* For the shutdown: releases every connected session's leases and closes its connection
 * with 1001 once its replies are flushed (the session then ends as on any disconnect);
 * closes every other session (in its grace period, or of another front end such as the
 * portserver) at once. */
void ws_close_all(struct broker *b, const char *reason);
/* For the drain: closes the connected sessions that hold no lease and wait for nothing with
 * 1001 and reason, so their clients connect to another broker (one let in to resume gets
 * WS_DRAIN_RESUME_MS for its session.hello first). Sessions holding leases, and those in
 * their grace period (their client may come back to resume, WS_RESUME_HEADER), are left
 * alone: the grace period ends the latter as usual. */
void ws_drain_sessions(struct broker *b, const char *reason);

#endif
