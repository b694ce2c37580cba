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

/* The lws protocol, for loop.c. */
extern const struct lws_protocols ws_protocol;

/* For the shutdown: releases every connected session's leases and closes its connection
 * with 1001 once its replies are flushed (the session then ends as on any disconnect);
 * closes every other session (in its grace period, or of another front end such as the
 * portserver) at once. */
void ws_close_all(struct broker *b, const char *reason);
/* For the drain: closes the connected sessions that hold no lease and wait for nothing with
 * 1001 and reason, so their clients connect to another broker, and ends the sessions in
 * their grace period (releasing their leases: no connection may come back to resume).
 * Sessions holding leases are left alone. */
void ws_drain_sessions(struct broker *b, const char *reason);

#endif
