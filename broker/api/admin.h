/* admin.h: the operator's view of a shared broker: every tenant, session and lease.
 *
 * Shown to admin tokens only (admin=true in the token file, or anyone on a broker without
 * tokens): the admin.* methods, the full GET /status, and the status page at GET /.
 */
#ifndef FXB_ADMIN_H
#define FXB_ADMIN_H

#include <jansson.h>

#include "core/errors.h"

struct broker;
struct session;

/* Who may read GET /, /status and /metrics: returns -1 when the request must be refused
 * (the broker requires a token for them and authorization holds no valid one), else 0
 * with *admin set when it may see everything. authorization is the header's value. */
int admin_http_access(struct broker *b, const char *authorization, int *admin);

/* {"tenants": [...], "totals": {...}, "sessions_list": [...], "leases_list": [...],
 * "postgres": {...}}: every tenant's limits and use, every session, every acquiring or held
 * lease with its labels and age, and pg.status with every tenant's templates and pools. */
json_t *admin_view_json(struct broker *b);
/* admin.leases: {"leases": [...]} as admin_view_json() lists them. */
json_t *admin_leases(struct broker *b, struct session *s, struct fxb_error *err);
/* admin.release: releases any tenant's held lease lid. */
json_t *admin_release(struct broker *b, struct session *s, const char *lid, struct fxb_error *err);

/* admin.drain: starts the drain (loop_drain) with timeout_ms, or drain_timeout_ms when
 * negative; during a drain, moves its deadline. Returns {draining, shutting_down,
 * remaining_ms, leases}, or NULL with err set (NOT_ADMIN). */
json_t *admin_drain(struct broker *b, struct session *s, int timeout_ms, struct fxb_error *err);

#endif
