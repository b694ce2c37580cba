/* session.c: sessions: born with a connection, ended by session_close() alone.
 *
 * The invariant of this file: a dead worker leaks nothing. Every way a session can end
 * (its connection drops and the grace period passes, the broker shuts down, the session
 * is merged into one it resumed) goes through session_close(), which releases every lease
 * the session holds and cancels every acquire it has waiting. A detached session (in its
 * grace period) holds its leases but nothing can wait on its behalf. The same holds for
 * what a fixture kind keeps outside leases: its session_detached and session_ended hooks
 * run here too (a detached session's parked PostgreSQL calls fail; a template build whose
 * session ends passes to the next waiter).
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "util/addr.h"
#include "util/idmap.h"

struct sessions {
	struct idmap *by_id;
	struct session *head; /* connected or in grace */
	size_t count;
	uint64_t next_id;
	uint64_t opened; /* sessions opened since start, for /metrics */
};

struct sessions *
sessions_new(void)
{
	struct sessions *ss = calloc(1, sizeof *ss);

	if (!ss || !(ss->by_id = idmap_new())) {
		free(ss);
		return NULL;
	}
	return ss;
}

void
sessions_free(struct sessions *ss)
{
	if (!ss)
		return;
	idmap_free(ss->by_id);
	free(ss);
}

size_t
sessions_count(const struct sessions *ss)
{
	return ss->count;
}

size_t
sessions_connected(const struct sessions *ss)
{
	size_t n = 0;

	for (const struct session *s = ss->head; s; s = s->next)
		n += s->conn != NULL;
	return n;
}

uint64_t
sessions_opened(const struct sessions *ss)
{
	return ss->opened;
}

struct session *
sessions_first(const struct sessions *ss)
{
	return ss->head;
}

struct session *
session_by_id(struct broker *b, uint64_t id)
{
	return idmap_get(b->sessions->by_id, id);
}

const char *
session_host(const struct broker *b, const struct session *s)
{
	const struct config *cfg = &b->cfg;

	if (cfg->advertise[0])
		return cfg->advertise;
	if (s && s->host[0])
		return s->host;
	return addr_dial_host(cfg->listen_host);
}

/* Sends text (taken) to the session's connection, or drops it while detached. */
static void
session_send(struct session *s, char *text, size_t len)
{
	if (s->conn)
		s->io->send(s->conn, text, len);
	else
		free(text);
}

static void
peer_send(struct rpc_peer *p, char *text, size_t len)
{
	session_send(p->session, text, len);
}

struct session *
session_new(struct broker *b, void *conn, const struct session_io *io)
{
	struct sessions *ss = b->sessions;
	struct session *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	s->id = ++ss->next_id;
	snprintf(s->sid, sizeof s->sid, "s-%llu", (unsigned long long)s->id);
	memcpy(s->resume, "r-", 2);
	if (random_hex(s->resume + 2, 16) == -1 || idmap_put(ss->by_id, s->id, s) == -1) {
		free(s);
		return NULL;
	}
	s->broker = b;
	s->conn = conn;
	s->io = io;
	s->peer.send = peer_send;
	s->peer.session = s;
	s->token.tenant = tenants_default(b->tenants);
	if (!b->need_token) {
		/* No tokens: everyone is trusted, as the default tenant, with the admin view. */
		s->peer.authenticated = 1;
		s->token.admin = 1;
		s->counted = tenant_charge1(s->token.tenant, QUOTA_SESSIONS, 1, NULL) == 0;
	}
	s->created_ms = now_ms();
	s->next = ss->head;
	if (ss->head)
		ss->head->prev = s;
	ss->head = s;
	ss->count++;
	ss->opened++;
	log_debug("session %s opened", s->sid);
	return s;
}

static void
grace_expired(lws_sorted_usec_list_t *sul)
{
	struct session *s = lws_container_of(sul, struct session, grace);

	session_close(s->broker, s, "grace period expired");
}

void
session_detach(struct broker *b, struct session *s)
{
	s->conn = NULL;
	lease_session_detached(b, s);
	if (b->cfg.grace_ms == 0 || leases_draining(b->leases)) {
		session_close(b, s, "disconnected");
		return;
	}
	log_info("session %s%s%s disconnected holding %zu lease(s); reclaiming in %d ms unless resumed",
	    s->sid, s->client[0] ? " " : "", s->client, s->lease_count, b->cfg.grace_ms);
	s->in_grace = 1;
	lws_sul_schedule(b->ctx, 0, &s->grace, grace_expired,
	    (lws_usec_t)b->cfg.grace_ms * LWS_US_PER_MS);
}

void
session_close(struct broker *b, struct session *s, const char *reason)
{
	size_t held = s->lease_count;

	if (s->in_grace)
		lws_sul_cancel(&s->grace);
	if (s->conn)
		s->io->disown(s->conn, 1001, reason);
	lease_session_ended(b, s, reason);
	if (s->counted)
		tenant_refund1(s->token.tenant, QUOTA_SESSIONS, 1);
	if (s->peer.authenticated) {
		audit_event(b->audit, "session.close",
		    json_pack("{s:s, s:s, s:s, s:s, s:I}", "session", s->sid,
		    "tenant", s->token.tenant->name, "peer", s->peer_addr, "reason", reason,
		    "leases", (json_int_t)held));
	}
	if (held || s->client[0])
		log_info("session %s%s%s closed (%s): %zu lease(s) released", s->sid,
		    s->client[0] ? " " : "", s->client, reason, held);
	else
		log_debug("session %s closed (%s)", s->sid, reason);
	if (s->prev)
		s->prev->next = s->next;
	else
		b->sessions->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	idmap_del(b->sessions->by_id, s->id);
	b->sessions->count--;
	/* Calls still open belong to leases that moved to the session this one was
	 * resumed into, or to a kind (a template build): their replies go nowhere now. */
	rpc_peer_orphan(&s->peer);
	json_decref(s->labels);
	free(s);
}

struct session *
session_by_resume(struct broker *b, const struct tenant *t, const char *token)
{
	struct session *found = NULL;

	/* Resumes are rare (a dropped connection), so a scan is fine; every session's token
	 * is compared, so the time taken says nothing about which one matched. */
	for (struct session *s = b->sessions->head; s; s = s->next)
		if (secret_equal(s->resume, token) && s->peer.authenticated &&
		    (!t || s->token.tenant == t))
			found = s;
	return found;
}

int
session_authenticate(struct broker *b, struct session *s, const struct token_ref *ref,
    const char *resume, struct fxb_error *err)
{
	/* A resume of the tenant's own session (in its grace period, or still connected) is
	 * that session again, charged once already. */
	int charge = !(resume && session_by_resume(b, ref->tenant, resume));

	if (charge && tenant_charge1(ref->tenant, QUOTA_SESSIONS, 1, err) == -1) {
		audit_event(b->audit, "quota.refused",
		    json_pack("{s:s, s:s, s:s, s:O}", "session", s->sid,
		    "tenant", ref->tenant->name, "peer", s->peer_addr, "quota", err->data));
		return -1;
	}
	s->token = *ref;
	s->peer.authenticated = 1;
	s->counted = charge;
	audit_event(b->audit, "session.auth", json_pack("{s:s, s:s, s:s, s:b}", "session", s->sid,
	    "tenant", ref->tenant->name, "peer", s->peer_addr, "admin", ref->admin));
	return 0;
}

size_t
sessions_revoke(struct broker *b, const char *reason)
{
	struct session *s, *next;
	size_t n = 0;

	if (!b->need_token)
		return 0;
	for (s = b->sessions->head; s; s = next) {
		next = s->next;
		if (!s->peer.authenticated || tenants_token_live(b->tenants, s->token.id,
		    s->token.tenant))
			continue;
		log_info("session %s of tenant %s: %s", s->sid, s->token.tenant->name, reason);
		session_close(b, s, reason);
		n++;
	}
	return n;
}

struct session *
session_resume(struct broker *b, struct session *fresh, struct session *old)
{
	struct session tmp;

	if (old->in_grace) {
		lws_sul_cancel(&old->grace);
		old->in_grace = 0;
	}
	if (old->conn) {
		old->io->disown(old->conn, 4001, "session resumed on another connection");
		old->conn = NULL;
		lease_session_detached(b, old);
	}
	/* fresh keeps its connection and takes old's identity and leases; old, holding
	 * nothing, then ends under fresh's former identity. */
	memcpy(tmp.sid, fresh->sid, sizeof tmp.sid);
	memcpy(tmp.resume, fresh->resume, sizeof tmp.resume);
	tmp.id = fresh->id;

	fresh->id = old->id;
	memcpy(fresh->sid, old->sid, sizeof fresh->sid);
	memcpy(fresh->resume, old->resume, sizeof fresh->resume);
	fresh->leases = old->leases;
	fresh->lease_count = old->lease_count;
	fresh->created_ms = old->created_ms;
	if (!fresh->client[0])
		memcpy(fresh->client, old->client, sizeof fresh->client);
	for (struct lease *l = fresh->leases; l; l = l->session_next)
		l->session = fresh;

	old->id = tmp.id;
	memcpy(old->sid, tmp.sid, sizeof old->sid);
	memcpy(old->resume, tmp.resume, sizeof old->resume);
	old->leases = NULL;
	old->lease_count = 0;
	/* A fresh session authenticated by this resume was not charged: old's charge is its. */
	if (!fresh->counted && old->counted) {
		fresh->counted = 1;
		old->counted = 0;
	}
	/* Both ids are in the map already, so these puts only overwrite. */
	(void)!idmap_put(b->sessions->by_id, fresh->id, fresh);
	(void)!idmap_put(b->sessions->by_id, old->id, old);
	log_info("session %s resumed with %zu lease(s)", fresh->sid, fresh->lease_count);
	audit_event(b->audit, "session.resume",
	    json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "session",
	    fresh->sid, "tenant", fresh->token.tenant->name, "peer", fresh->peer_addr,
	    "previous_peer", old->peer_addr, "other_address",
	    strcmp(fresh->peer_addr, old->peer_addr) != 0, "leases",
	    (json_int_t)fresh->lease_count));
	session_close(b, old, "merged into the session it resumed");
	return fresh;
}


void
session_notify(struct session *s, const char *method, json_t *params)
{
	char *text = rpc_notification(method, params);

	if (text)
		session_send(s, text, strlen(text));
}
