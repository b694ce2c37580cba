/* broker.h: the daemon's one state object: configuration and the modules' handles.
 *
 * struct broker holds the configuration, the instance id and one opaque handle per
 * module; a module reads b->x only to call module x. broker.c builds it (the composition
 * root); broker/README.md maps the folders.
 *
 * One process, one event loop (libwebsockets on libev's epoll loop, LWS_MAX_SMP 1; see
 * broker/README.md, "The event loop"). The loop owns
 * all of struct broker; nothing else touches it, and nothing on the loop blocks.
 *
 * PostgreSQL work (pg_worker.c) runs on worker threads that hand results back through
 * a mutex-protected queue and lws_cancel_service(): a slow CREATE DATABASE then never
 * delays another client's port lease, and libpq's blocking calls stay simple. Keep to it.
 * The embedded cluster's start (initdb, postgres) runs on one of those threads too.
 */
#ifndef FXB_BROKER_H
#define FXB_BROKER_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

#include "core/config.h"

struct loop;
struct ports;
struct leases;
struct tenants;
struct procs;
struct servers;
struct pg;
struct portserver;
struct integresql;
struct rpc;
struct sessions;
struct audit;
struct upstream;
struct forward;

struct broker {
	struct config cfg; /* its json sections are borrowed from the caller's config */
	char instance[17]; /* hex; kept in the state dir from run to run (instance.h) */
	uint64_t started_ms;

	struct loop *loop;         /* the loop's life: shutdown, exit status (loop.h) */
	struct lws_context *ctx;   /* the loop's handles, for timers and adopted descriptors */
	struct lws_vhost *vhost;

	struct tenants *tenants; /* tokens, tenants and quotas (tenant.h); never NULL */
	struct audit *audit;      /* the audit log (audit.h), or NULL */
	int need_token;           /* 0: no token file, every session is trusted (and admin) */
	struct ports *ports;
	struct leases *leases;
	struct procs *procs;     /* child processes (proc.h) */
	struct servers *servers; /* server templates (servers.h) */
	struct pg *pg;           /* PostgreSQL fixtures (pg.h) */
	struct portserver *portserver; /* portpicker's protocol, or NULL (portserver.h) */
	struct integresql *integresql; /* IntegreSQL's REST API, or NULL (integresql.h) */
	int instance_lock;       /* holds the instance id in the state dir; -1: none */
	struct upstream *upstream; /* the session with the upstream broker, or NULL (upstream.h) */
	struct forward *forward;   /* the fixtures forwarded there, or NULL (forward.h) */

	struct sessions *sessions; /* connected or in grace (session.h) */
	struct rpc *rpc;           /* the JSON-RPC dispatcher and its counters (rpc.h) */
};

/* Builds a broker from cfg: ports, leases, tokens, every kind, the rpc layer, and the lws
 * context (listening unless cfg->listen_port is -1). Returns NULL with err set. */
struct broker *broker_new(const struct config *cfg, struct fxb_error *err);
/* Frees everything; sessions still open are closed (loop_shutdown closes them first). */
void broker_free(struct broker *b);

#endif
