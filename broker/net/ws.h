/* ws.h: the network side: the libwebsockets context, WebSocket connections, HTTP routes.
 *
 * Bytes in and out only: it reassembles fragments, enforces the message size cap, hands
 * whole messages to rpc_handle() and queues replies, one lws_write per writeable callback.
 * It knows nothing of JSON-RPC. Signals arrive through a signalfd on the loop.
 */
#ifndef FXB_WS_H
#define FXB_WS_H

#include <stddef.h>

#include "core/errors.h"

struct broker;
struct conn;

#define WS_SUBPROTOCOL "fixture-broker.v1"

/* Creates the lws context: listening (cfg.listen_port >= 0) or not. Returns 0, or -1 with
 * err set. */
int ws_start(struct broker *b, struct fxb_error *err);
/* Runs the loop until the broker has shut down. Returns the exit status. */
int ws_run(struct broker *b);
void ws_stop(struct broker *b);

/* Queues text (taken) on conn: how replies reach a connected session. */
void ws_conn_send(void *conn, char *text, size_t len);
/* The session left conn (resumed elsewhere): close conn with code, quietly. */
void ws_conn_disown(void *conn, int code, const char *reason);

/* Starts the graceful shutdown: refuse new connections, release every lease, close every
 * session with 1001, then stop the loop. */
void ws_shutdown(struct broker *b, const char *why);

#endif
