/* loop.h: the event loop's life: the lws context, signals, and the graceful shutdown.
 *
 * A listening broker's lws runs on a libev loop (epoll), one without a listener (the unit
 * suites) on lws's own poll() loop. One lws context with one vhost carries the listener (http.c and ws.c), the signalfd,
 * and the descriptors fdwatch.c adopts. What the loop must call in the layers above it
 * (draining worker threads' results, a signal meant for `fixture-broker run`'s command)
 * comes in as hooks, so nothing here names those layers. b->ctx and b->vhost are the
 * handles every module schedules timers and adopts descriptors on.
 */
#ifndef FXB_LOOP_H
#define FXB_LOOP_H

#include <stdint.h>

#include "core/errors.h"

struct broker;
struct http_handler;
struct http_route;
struct loop;
struct signalfd_siginfo;

/* Runs on the loop when another thread called lws_cancel_service(): each module with
 * worker threads drains its finished jobs. */
typedef void (*loop_wake_fn)(struct broker *b);
/* A SIGINT or SIGTERM arrived; returns 1 when the hook took it (the loop then does
 * nothing), 0 to let the loop shut the broker down. */
typedef int (*loop_signal_fn)(void *arg, const struct signalfd_siginfo *si);

/* Creates b->loop and the lws context (b->ctx, b->vhost): listening on cfg.listen_host
 * and cfg.listen_port, with routes (borrowed, for the broker's lifetime) served over HTTP
 * and signals read from a signalfd; or, with cfg.listen_port -1 (unit tests), neither.
 * Returns 0, or -1 with err set. */
int loop_start(struct broker *b, loop_wake_fn wake, const struct http_route *routes,
    struct fxb_error *err);
/* Sends SIGINT and SIGTERM to fn (one hook; a later call replaces it). */
void loop_on_signal(struct loop *l, loop_signal_fn fn, void *arg);
/* Calls fn on the loop when SIGHUP arrives (a later call replaces it). */
void loop_on_reload(struct loop *l, loop_wake_fn fn);
/* Runs the loop until the broker has shut down. Returns the exit status. */
int loop_run(struct broker *b);
/* Runs one turn of the loop: waits for the next descriptor event, timer or wake-up and
 * runs its callbacks. */
void loop_turn(struct broker *b);
/* Destroys the context and frees b->loop. loop_stop on a broker without one does nothing. */
void loop_stop(struct broker *b);

/* Starts the graceful shutdown: the lease table drains (leases_drain), every session
 * is closed with 1001, and the loop stops once every released fixture has stopped, or
 * after a deadline. A second call does nothing. */
void loop_shutdown(struct broker *b, const char *why);

/* Starts the drain (SIGTERM and admin.drain): new connections are refused with 503 and
 * /healthz answers 503; sessions holding leases go on working, the others are closed with
 * 1001; once no lease is held, or timeout_ms from now, loop_shutdown() releases the rest.
 * With timeout_ms 0 it is loop_shutdown() at once. During a drain it only moves the
 * deadline to timeout_ms from now; during the shutdown it does nothing. */
void loop_drain(struct broker *b, const char *why, int timeout_ms);
/* During a drain, runs its next turn (closing sessions that hold nothing, ending the drain
 * once no lease is held) as soon as the caller has returned to the loop, rather than on
 * its next tick: after a release. Otherwise does nothing. */
void loop_drain_soon(struct broker *b);
/* 1 while the broker drains or shuts down, else 0. remaining_ms (if not NULL) gets the
 * drain's time left, 0 once the shutdown has begun. */
int loop_draining(const struct broker *b, uint64_t *remaining_ms);

/* Counts a connection refused because the broker drains or shuts down (ws.c), and reads
 * the count (for /metrics: clients that retry too fast show here). */
void loop_count_refused(struct broker *b);
uint64_t loop_refused(const struct broker *b);

/* The port the listener got (the kernel's pick for port 0); 0 when not listening. */
int loop_listen_port(const struct loop *l);
/* The routes loop_start() was given. */
const struct http_route *loop_routes(const struct loop *l);
/* Serves handlers (borrowed, for the broker's lifetime; ending with a NULL prefix) over
 * HTTP besides the routes; a later call replaces them. */
void loop_set_handlers(struct loop *l, const struct http_handler *handlers);
/* The handlers loop_set_handlers() was given, or NULL. */
const struct http_handler *loop_handlers(const struct loop *l);

#endif
