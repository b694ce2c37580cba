/* session.h: who is connected, and which leases each holds.
 *
 * A session is born with its connection and outlives it by the grace period, so that a
 * client can resume it. session_close() is the one way a session ends; it releases every
 * lease and takes a reason for the log.
 */
#ifndef FXB_SESSION_H
#define FXB_SESSION_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/rpc.h"
#include "tenant/tenant.h"

struct broker;
struct lease;
struct sessions;

/* The connection under a session: the ws layer's, or a test's. send takes ownership of
 * text (malloc'd); disown tells the connection the session has left it (resumed
 * elsewhere, or closed by the broker) and that it should close with code. */
struct session_io {
	void (*send)(void *conn, char *text, size_t len);
	void (*disown)(void *conn, int code, const char *reason);
};

struct session {
	struct broker *broker;
	uint64_t id;
	char sid[24];     /* "s-<id>" */
	char resume[40];  /* "r-<32 hex>", a secret */
	char client[64];
	/* The broker's address as this client dialled it (its connection's local address),
	 * which fixtures report when no advertise is set; "" when unknown. */
	char host[64];
	json_t *labels;
	/* Who it is: its tenant and token (the default tenant and no token while
	 * unauthenticated, or on a broker without tokens), and the client's address. */
	struct token_ref token;
	struct token_ref bearer; /* a valid bearer token the session quota refused; tenant NULL: none */
	char peer_addr[64];
	int counted; /* counted in its tenant's sessions quota */
	struct rpc_peer peer; /* how the rpc layer sees it: sends, authenticated, open calls */
	void *conn;       /* NULL while detached (in the grace period) */
	const struct session_io *io;
	struct lease *leases; /* list through lease->session_next */
	size_t lease_count;
	uint64_t created_ms;
	lws_sorted_usec_list_t grace;
	int in_grace;
	/* Let in during a drain to resume a session held here (ws.c): its session.hello must
	 * resume one, else it is refused with SHUTTING_DOWN and the drain closes it. */
	int resume_only;
	struct session *next, *prev; /* all sessions */
};

/* The table of sessions, owned by this module. sessions_free: every session must be
 * closed first; sessions_free(NULL) does nothing. */
struct sessions *sessions_new(void);
void sessions_free(struct sessions *ss);
/* Sessions connected or in their grace period; those connected; those opened since start. */
size_t sessions_count(const struct sessions *ss);
size_t sessions_connected(const struct sessions *ss);
uint64_t sessions_opened(const struct sessions *ss);
/* The first session, or NULL; the others follow through s->next. */
struct session *sessions_first(const struct sessions *ss);

/* A new session attached to conn (may be NULL in tests), or NULL when out of memory. */
struct session *session_new(struct broker *b, void *conn, const struct session_io *io);
/* The connection went away: cancel waiting calls, then close at once (grace 0) or after
 * the grace period. */
void session_detach(struct broker *b, struct session *s);
/* Ends s: releases every lease, frees s. reason is for the log. */
void session_close(struct broker *b, struct session *s, const char *reason);
/* The session with this id, or NULL. */
struct session *session_by_id(struct broker *b, uint64_t id);
/* The host fixtures report to s: the broker's advertise setting, else the address s's
 * client dialled, else the broker's listen address (loopback for a wildcard). s may be
 * NULL. */
const char *session_host(const struct broker *b, const struct session *s);
/* Finds the session of tenant t with this resume token, or NULL. Every session's token
 * is compared in constant time, and a session of another tenant is never found; t NULL
 * finds one of any tenant (a draining broker's upgrade check, before the token is known:
 * session.hello checks the tenant). */
struct session *session_by_resume(struct broker *b, const struct tenant *t, const char *token);
/* Marks s authenticated with ref's token: it joins ref's tenant, which must have room for
 * one more session. resume (NULL: none) is the resume token of s's session.hello: when it
 * names a session of ref's tenant, s is not charged, for it takes that session's place
 * (session_resume() moves the charge). Returns 0, or -1 with err set (QUOTA_EXCEEDED). */
int session_authenticate(struct broker *b, struct session *s, const struct token_ref *ref,
    const char *resume, struct fxb_error *err);
/* Closes, with reason, every session whose token is no longer in the token file (after a
 * reload). Returns how many were closed. */
size_t sessions_revoke(struct broker *b, const char *reason);
/* Moves conn from fresh (which must hold nothing and is closed) to old, which leaves its
 * grace period (or its previous connection, which the ws layer then closes). Returns old. */
struct session *session_resume(struct broker *b, struct session *fresh, struct session *old);
/* Sends the notification method (params taken) to s, if it is connected. */
void session_notify(struct session *s, const char *method, json_t *params);

#endif
