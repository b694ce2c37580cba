/* pg.h: PostgreSQL fixtures: the "postgres" fixture kind, templates, warm pools, pg.* methods.
 *
 * PostgreSQL is the admin URL's server (postgres.url, --pg-url) or, with none, the embedded
 * cluster (pgembed.h), started in the background at start-up when PostgreSQL is configured
 * and on first use otherwise. All PostgreSQL work runs on worker threads (see broker.h);
 * this module's functions run on the loop and never block. Session teardown calls
 * pg_cancel_waits() when a connection drops and pg_release_owner() when a session ends: a
 * template build owned by an ended session passes to the next waiter.
 */
#ifndef FXB_PG_H
#define FXB_PG_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "errors.h"

struct broker;
struct session;
struct rpc_call;
struct pg;

extern const struct fixture_kind pg_kind;

/* Parses cfg->postgres and sets up b->pg; nothing connects yet. Returns 0, or -1 with err
 * naming the configuration key. */
int pg_new(struct broker *b, struct fxb_error *err);
/* Once the loop exists: starts PostgreSQL in the background if it is configured. */
void pg_start(struct pg *pg);
/* Waits for PostgreSQL work under way, drops what this run created except finished
 * templates, stops the workers and the embedded cluster, frees pg. Call it before the lws
 * context goes. pg_free(NULL) does nothing. */
void pg_free(struct pg *pg);
/* Runs what worker threads finished; from broker_wake(). */
void pg_wake(struct pg *pg);

/* s's connection dropped: its parked pg calls fail. */
void pg_cancel_waits(struct pg *pg, struct session *s);
/* s ends: the builds it owns go to the next waiter, its open pg calls fail. */
void pg_release_owner(struct pg *pg, struct session *s);

/* The pg.template.* methods and pg.status; each returns a result, RPC_PENDING, or NULL
 * with err set. */
json_t *pg_template_ensure(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, int64_t wait_ms, struct fxb_error *err);
json_t *pg_template_finish(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, struct fxb_error *err);
json_t *pg_template_discard(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, struct fxb_error *err);
json_t *pg_status(struct broker *b, struct session *s, struct rpc_call *call,
    struct fxb_error *err);

/* Writes the per-template gauges and histograms for GET /metrics. */
void pg_metrics(struct pg *pg, FILE *f);

#endif
