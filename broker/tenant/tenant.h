/* tenant.h: tenants, their tokens and quotas, read from --token-file.
 *
 * A tenant is a team sharing the broker. Every token belongs to one tenant; a session
 * belongs to the tenant of the token it authenticated with. Each tenant has limits
 * (quotas) on what its sessions hold at once, and this module keeps what each uses.
 *
 * The token file, one token a line (blank lines and lines starting with # are ignored):
 *
 *     TOKEN [TENANT [key=value ...]]
 *
 * A line with only a token belongs to tenant "default", so a file of bare tokens is one
 * tenant with no limits. Keys: admin=true (this token may call admin.* and read /status
 * in full), and the tenant's limits ports=, servers=, databases=, pg_connections=,
 * builds=, waiting=, sessions= (a count; absent means no limit). A limit may be given on
 * any line of its tenant, but two lines may not give it different values.
 *
 * Tenants outlive a reload (tenants_reload): they are matched by name and keep their
 * usage; a tenant no longer named keeps its usage until its sessions are gone.
 */
#ifndef FXB_TENANT_H
#define FXB_TENANT_H

#include <jansson.h>
#include <stdint.h>

#include "core/errors.h"

enum quota {
	QUOTA_PORTS,
	QUOTA_SERVERS,
	QUOTA_DATABASES,
	QUOTA_PG_CONNECTIONS,
	QUOTA_BUILDS,
	QUOTA_WAITING,
	QUOTA_SESSIONS,
	QUOTA_COUNT
};

struct tenant {
	char name[64];
	int64_t limit[QUOTA_COUNT]; /* -1: no limit */
	int64_t used[QUOTA_COUNT];
	int listed;               /* named by the token file as last read */
	uint64_t served;          /* the wait queue's turn counter (lease.c) */
	uint64_t pg_served;       /* the PostgreSQL pools' turn counter (fixtures/pg/pg_pool.c) */
	struct tenant *next;
};

/* Which token a session authenticated with: its tenant, whether it is an admin token, and
 * an id that stays the same across reloads for as long as the token is in the file. */
struct token_ref {
	struct tenant *tenant;
	uint64_t id;
	int admin;
};

struct tenants;

/* With path NULL: one tenant "default" without limits and no tokens (a broker without a
 * token file). Else reads path. Returns the table, or NULL with err set (unreadable, a
 * malformed line, or no token in it). */
struct tenants *tenants_load(const char *path, struct fxb_error *err);
void tenants_free(struct tenants *t);
/* Reads path again. On success the tokens and limits are the file's, tenants keep their
 * usage, and tokens still present keep their ids; returns 0. On failure nothing changes
 * and err says why. */
int tenants_reload(struct tenants *t, const char *path, struct fxb_error *err);
/* 1 and *out filled if token is one of the table's, else 0. The time taken does not
 * depend on where the first differing byte is. */
int tenants_check(const struct tenants *t, const char *token, struct token_ref *out);
/* 1 if a token with this id is still in the table (same tenant), else 0. */
int tenants_token_live(const struct tenants *t, uint64_t id, const struct tenant *tenant);
/* The default tenant (the one of a broker without tokens), never NULL. */
struct tenant *tenants_default(const struct tenants *t);
struct tenant *tenants_first(const struct tenants *t);
/* The quota's name in the token file and in QUOTA_EXCEEDED ("ports"). */
const char *quota_name(enum quota q);

/* Adds want[] to t's usage if every limit allows it; else changes nothing and sets err
 * to QUOTA_EXCEEDED naming the first limit it would pass, its value, the use now and
 * what was asked. Returns 0 or -1. */
int tenant_charge(struct tenant *t, const int64_t want[QUOTA_COUNT], struct fxb_error *err);
/* The same for one quota. */
int tenant_charge1(struct tenant *t, enum quota q, int64_t n, struct fxb_error *err);
/* Gives back what tenant_charge() took. */
void tenant_refund(struct tenant *t, const int64_t amount[QUOTA_COUNT]);
void tenant_refund1(struct tenant *t, enum quota q, int64_t n);
/* {"name", "limits": {...}, "used": {...}} */
json_t *tenant_json(const struct tenant *t);

/* Compares two NUL-terminated secrets in time that depends only on b's length. */
int secret_equal(const char *a, const char *b);

#endif
