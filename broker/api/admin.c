/* admin.c: who holds what, across tenants, for admin tokens. */
#include <string.h>
#include <strings.h>

#include "api/admin.h"
#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "fixtures/pg/pg.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/loop.h"
#include "tenant/tenant.h"

int
admin_http_access(struct broker *b, const char *authorization, int *admin)
{
	struct token_ref ref;
	const char *tok = authorization;

	*admin = 0;
	if (!b->need_token) {
		*admin = 1;
		return 0;
	}
	if (strncasecmp(tok, "Bearer ", 7) == 0) {
		tok += 7;
		while (*tok == ' ')
			tok++;
		if (tenants_check(b->tenants, tok, &ref)) {
			*admin = ref.admin;
			return 0;
		}
	}
	return b->cfg.status_require_token ? -1 : 0;
}

static json_t *
lease_admin_json(const struct lease *l, uint64_t now)
{
	json_t *kinds = json_object();
	const struct session *s = l->session;

	for (size_t i = 0; i < l->nfixtures; i++)
		json_object_set_new(kinds, l->fixtures[i].name, json_string(l->fixtures[i].kind->name));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I}", "lease", l->lid,
	    "state", l->state == LEASE_HELD ? "held" : "acquiring", "tenant", l->tenant->name,
	    "session", s ? s->sid : "", "client", s ? s->client : "",
	    "labels", l->labels ? json_incref(l->labels) : json_object(), "fixtures", kinds,
	    "age_ms", (json_int_t)(now - l->created_ms));
}

static json_t *
all_leases(struct broker *b, uint64_t now)
{
	json_t *a = json_array();

	for (struct session *s = sessions_first(b->sessions); s; s = s->next)
		for (struct lease *l = s->leases; l; l = l->session_next)
			json_array_append_new(a, lease_admin_json(l, now));
	return a;
}

json_t *
admin_view_json(struct broker *b)
{
	json_t *tenants = json_array(), *sessions = json_array();
	uint64_t now = now_ms();

	for (struct tenant *t = tenants_first(b->tenants); t; t = t->next) {
		/* The default tenant of a broker with tokens that names no such tenant holds
		 * nothing and is left out. */
		if (!t->listed && t->used[QUOTA_SESSIONS] == 0 && b->need_token)
			continue;
		json_array_append_new(tenants, tenant_json(t));
	}
	for (struct session *s = sessions_first(b->sessions); s; s = s->next) {
		if (!s->peer.authenticated)
			continue;
		json_array_append_new(sessions, json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:I}",
		    "session", s->sid, "tenant", s->token.tenant->name, "client", s->client,
		    "peer", s->peer_addr, "labels", s->labels ? json_incref(s->labels) : json_object(),
		    "connected", s->conn != NULL, "admin", s->token.admin,
		    "leases", (json_int_t)s->lease_count, "age_ms", (json_int_t)(now - s->created_ms)));
	}
	return json_pack("{s:o, s:o, s:o, s:o, s:o*}", "tenants", tenants, "totals",
	    leases_totals_json(b->leases), "sessions_list", sessions, "leases_list",
	    all_leases(b, now), "postgres", pg_status_all(b->pg));
}

static int
need_admin(const struct session *s, struct fxb_error *err)
{
	if (s->token.admin)
		return 0;
	error_set(err, ERR_NOT_ADMIN, "not an admin: this method needs a token marked admin=true "
	    "in the token file");
	return -1;
}

json_t *
admin_leases(struct broker *b, struct session *s, struct fxb_error *err)
{
	if (need_admin(s, err) == -1)
		return NULL;
	return json_pack("{s:o}", "leases", all_leases(b, now_ms()));
}

json_t *
admin_release(struct broker *b, struct session *s, const char *lid, struct fxb_error *err)
{
	struct lease *l;

	if (need_admin(s, err) == -1)
		return NULL;
	if (!(l = lease_find(b, lid)))
		return json_pack("{s:s, s:b}", "lease", lid, "released", 0);
	audit_event(b->audit, "admin.release", json_pack("{s:s, s:s, s:s, s:s}", "session", s->sid,
	    "tenant", s->token.tenant->name, "lease", l->lid, "owner_tenant", l->tenant->name));
	lease_end(b, l, ERR_LEASE_NOT_FOUND, "released by an admin");
	loop_drain_soon(b);
	return json_pack("{s:s, s:b}", "lease", lid, "released", 1);
}

json_t *
admin_drain(struct broker *b, struct session *s, int timeout_ms, struct fxb_error *err)
{
	uint64_t left;

	if (need_admin(s, err) == -1)
		return NULL;
	if (timeout_ms < 0)
		timeout_ms = b->cfg.drain_timeout_ms;
	audit_event(b->audit, "admin.drain", json_pack("{s:s, s:s, s:i}", "session", s->sid,
	    "tenant", s->token.tenant->name, "timeout_ms", timeout_ms));
	loop_drain(b, "admin.drain", timeout_ms);
	(void)loop_draining(b, &left);
	return json_pack("{s:b, s:b, s:I, s:I}", "draining", 1, "shutting_down",
	    leases_draining(b->leases), "remaining_ms", (json_int_t)left,
	    "leases", (json_int_t)leases_active(b->leases));
}
