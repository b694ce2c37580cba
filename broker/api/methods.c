/* methods.c: the JSON-RPC method table and the handlers that parse each method's params.
 *
 * Handlers check their params strictly (json_unpack_ex with JSON_STRICT, so an unknown
 * member is an error, not silently ignored), then call the module that does the work.
 * Every handler has the rpc_method_fn signature.
 */
#include <string.h>

#include "api/admin.h"
#include "api/methods.h"
#include "api/metrics.h"
#include "broker.h"
#include "core/clock.h"
#include "fixtures/forward/forward.h"
#include "fixtures/pg/pg.h"
#include "fixtures/server/servers.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "core/audit.h"
#include "net/loop.h"
#include "ports/ports.h"
#include "rpc/rpc.h"

/* Checks params against a table (naming the member at fault), then unpacks them. */
#define UNPACK(params, table, err, ...)                                          \
	do {                                                                     \
		if (rpc_params_check((params), (table), (err)) == -1)            \
			return NULL;                                             \
		if (json_unpack((params), __VA_ARGS__) == -1) {                  \
			error_set((err), ERR_INTERNAL, "params unpack failed");  \
			return NULL;                                             \
		}                                                                \
	} while (0)

static const struct rpc_param no_params[] = { { NULL, 0, 0, 0 } };

static json_t *
hello_result(struct broker *b, struct session *s, int resumed)
{
	return json_pack("{s:s, s:s, s:b, s:{s:s, s:s}, s:{s:I, s:i, s:i, s:i, s:i, s:{s:i, s:i}}}",
	    "session", s->sid, "resume", s->resume, "resumed", resumed,
	    "broker", "version", FXB_VERSION_STR, "instance", b->instance,
	    "limits", "max_message_bytes", (json_int_t)b->cfg.max_message_bytes,
	    "grace_ms", b->cfg.grace_ms, "max_fixtures_per_lease", b->cfg.max_fixtures,
	    "heartbeat_ms", b->cfg.heartbeat_ms, "dead_after_ms", b->cfg.dead_after_ms,
	    "ports", "first", b->cfg.ports_first, "last", b->cfg.ports_last);
}

static json_t *
method_session_hello(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	const char *client = NULL, *token = NULL, *resume = NULL;
	json_t *labels = NULL;
	struct session *old;

	(void)call;
	static const struct rpc_param table[] = {
		{ "client", JSON_STRING, 0, 0 }, { "token", JSON_STRING, 0, 0 },
		{ "resume", JSON_STRING, 0, 0 }, { "labels", JSON_OBJECT, 0, 0 }, { NULL, 0, 0, 0 },
	};

	UNPACK(params, table, err, "{s?s, s?s, s?s, s?o}", "client", &client, "token", &token,
	    "resume", &resume, "labels", &labels);
	if (labels && lease_labels_check(labels, err) == -1)
		return NULL;
	if (b->need_token && !s->peer.authenticated) {
		struct token_ref ref = s->bearer;

		if (token ? !tenants_check(b->tenants, token, &ref) : !ref.tenant) {
			error_set(err, ERR_UNAUTHENTICATED, token ? "unauthenticated: the token is not valid"
			    : "unauthenticated: this broker needs a token");
			audit_event(b->audit, "auth.fail", json_pack("{s:s, s:s, s:s}", "session", s->sid, "peer",
			    s->peer_addr, "via", token ? "session.hello" : "none"));
			return NULL;
		}
		if (session_authenticate(b, s, &ref, resume, err) == -1)
			return NULL;
	}
	if (client)
		snprintf(s->client, sizeof s->client, "%s", client);
	if (labels) {
		json_decref(s->labels);
		s->labels = json_incref(labels);
	}
	old = resume && strcmp(resume, s->resume) ? session_by_resume(b, s->token.tenant, resume)
	    : NULL;
	/* Let in during a drain to resume: anything but a resume is what the 503 said. */
	if (s->resume_only && !old) {
		s->resume_only = 0;
		loop_drain_soon(b); /* the drain closes it now: it holds nothing */
		error_set(err, ERR_SHUTTING_DOWN, "the broker is draining: only a session.hello that "
		    "resumes a session held here is served; connect to another broker");
		return NULL;
	}
	if (!resume || !strcmp(resume, s->resume))
		return hello_result(b, s, 0);
	if (!old) {
		error_set(err, ERR_RESUME_UNKNOWN, "resume: no session with that token (expired or never existed)");
		return NULL;
	}
	if (s->lease_count || s->peer.open_calls) {
		error_set(err, ERR_RESUME_UNKNOWN, "resume: this connection already holds leases of its own");
		return NULL;
	}
	s->resume_only = 0;
	s = session_resume(b, s, old);
	return hello_result(b, s, 1);
}

static json_t *
method_lease_acquire(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	struct lease_request req;

	/* During a drain, a session that holds leases is a job in the middle of its run
	 * (one more lease for its next test) and is served; one holding none is about to be
	 * closed (ws_drain_sessions) and belongs on another broker. */
	if (loop_draining(b, NULL) && !leases_draining(b->leases) && s->lease_count == 0) {
		error_set(err, ERR_SHUTTING_DOWN, "the broker is draining: only sessions that hold "
		    "leases may acquire; connect to another broker");
		return NULL;
	}
	if (lease_request_parse(b, params, &req, err) == -1)
		return NULL;
	return lease_acquire(b, s, call, &req, err);
}

static json_t *
method_lease_release(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	const char *lid;
	struct lease *l;

	static const struct rpc_param table[] = {
		{ "lease", JSON_STRING, 1, 0 }, { NULL, 0, 0, 0 },
	};

	(void)call;
	UNPACK(params, table, err, "{s:s}", "lease", &lid);
	/* Releasing is idempotent: a lease the broker does not hold is already released, and
	 * another tenant's is not there as far as this one can tell. */
	if (!(l = lease_find(b, lid)) || l->tenant != s->token.tenant)
		return json_pack("{s:s, s:b}", "lease", lid, "released", 0);
	if (!(l = lease_owned(b, s, lid, err)))
		return NULL;
	lease_release(b, l, "released by its session");
	loop_drain_soon(b); /* the last release ends a drain at once */
	return json_pack("{s:s, s:b}", "lease", lid, "released", 1);
}

static json_t *
method_lease_renew(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	json_int_t ttl = -1;
	const char *lid;
	struct lease *l;
	uint64_t now = now_ms();

	static const struct rpc_param table[] = {
		{ "lease", JSON_STRING, 1, 0 }, { "ttl_ms", JSON_INTEGER, 0, 0 }, { NULL, 0, 0, 0 },
	};

	(void)call;
	UNPACK(params, table, err, "{s:s, s?I}", "lease", &lid, "ttl_ms", &ttl);
	if (json_object_get(params, "ttl_ms") && (ttl < 1 || ttl > 7LL * 24 * 3600 * 1000)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: ttl_ms: expected 1 to 604800000");
		return NULL;
	}
	if (!(l = lease_owned(b, s, lid, err)))
		return NULL;
	lease_renew(b, l, ttl);
	if (l->ttl_ms < 0)
		return json_pack("{s:s, s:n, s:n}", "lease", lid, "ttl_ms", "expires_in_ms");
	return json_pack("{s:s, s:I, s:I}", "lease", lid, "ttl_ms", (json_int_t)l->ttl_ms,
	    "expires_in_ms", (json_int_t)(l->expires_ms > now ? l->expires_ms - now : 0));
}

static json_t *
method_lease_reset(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "lease", JSON_STRING, 1, 0 }, { "fixture", JSON_STRING, 1, 0 }, { NULL, 0, 0, 0 },
	};
	const char *lid, *fixture;

	UNPACK(params, table, err, "{s:s, s:s}", "lease", &lid, "fixture", &fixture);
	return lease_reset(b, s, call, lid, fixture, err);
}

static json_t *
method_lease_list(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	json_t *leases = json_array();
	uint64_t now = now_ms();

	(void)b;
	(void)call;
	if (!leases)
		return NULL;
	if (rpc_params_check(params, no_params, err) == -1) {
		json_decref(leases);
		return NULL;
	}
	for (struct lease *l = s->leases; l; l = l->session_next)
		json_array_insert_new(leases, 0, lease_json(l, now)); /* oldest first */
	return json_pack("{s:o}", "leases", leases);
}

static json_t *
method_server_logs(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "lease", JSON_STRING, 1, 0 }, { "fixture", JSON_STRING, 1, 0 },
		{ "tail", JSON_INTEGER, 0, 0 }, { NULL, 0, 0, 0 },
	};
	const char *lid, *fixture;
	json_int_t tail = 0;

	(void)call;
	UNPACK(params, table, err, "{s:s, s:s, s?I}", "lease", &lid, "fixture", &fixture, "tail",
	    &tail);
	if (b->forward)
		return forward_server_logs(b, s, call, lid, fixture, tail, err);
	return servers_logs(b, s, lid, fixture, tail, err);
}

static json_t *
method_pg_template_ensure(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "hash", JSON_STRING, 1, 0 }, { "wait_ms", JSON_INTEGER, 0, 0 }, { NULL, 0, 0, 0 },
	};
	const char *hash;
	json_int_t wait = -1;

	UNPACK(params, table, err, "{s:s, s?I}", "hash", &hash, "wait_ms", &wait);
	if (json_object_get(params, "wait_ms") && (wait < 0 || wait > 3600000)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: wait_ms: expected 0 to 3600000");
		return NULL;
	}
	if (b->forward)
		return forward_pg_call(b, s, call, "pg.template.ensure", params, err);
	return pg_template_ensure(b, s, call, hash, wait, err);
}

static json_t *
method_pg_template_finish(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err)
{
	static const struct rpc_param table[] = { { "hash", JSON_STRING, 1, 0 }, { NULL, 0, 0, 0 } };
	const char *hash;

	UNPACK(params, table, err, "{s:s}", "hash", &hash);
	if (b->forward)
		return forward_pg_call(b, s, call, "pg.template.finish", params, err);
	return pg_template_finish(b, s, call, hash, err);
}

static json_t *
method_pg_template_discard(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err)
{
	static const struct rpc_param table[] = { { "hash", JSON_STRING, 1, 0 }, { NULL, 0, 0, 0 } };
	const char *hash;

	UNPACK(params, table, err, "{s:s}", "hash", &hash);
	if (b->forward)
		return forward_pg_call(b, s, call, "pg.template.discard", params, err);
	return pg_template_discard(b, s, call, hash, err);
}

static json_t *
method_pg_status(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	UNPACK(params, no_params, err, "{}");
	if (b->forward)
		return forward_pg_call(b, s, call, "pg.status", params, err);
	return pg_status(b, s, call, err);
}

static json_t *
method_broker_status(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	(void)s;
	(void)call;
	UNPACK(params, no_params, err, "{}");
	return metrics_status_json(b);
}

static json_t *
method_admin_leases(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	(void)call;
	UNPACK(params, no_params, err, "{}");
	return admin_leases(b, s, err);
}

static json_t *
method_admin_release(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "lease", JSON_STRING, 1, 0 }, { NULL, 0, 0, 0 },
	};
	const char *lid;

	(void)call;
	UNPACK(params, table, err, "{s:s}", "lease", &lid);
	return admin_release(b, s, lid, err);
}

static json_t *
method_admin_drain(struct broker *b, struct session *s, struct rpc_call *call,
    json_t *params, struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "timeout_ms", JSON_INTEGER, 0, 0 }, { NULL, 0, 0, 0 },
	};
	json_int_t timeout = -1;

	(void)call;
	UNPACK(params, table, err, "{s?I}", "timeout_ms", &timeout);
	if (json_object_get(params, "timeout_ms") && (timeout < 0 || timeout > 86400000)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: timeout_ms: expected 0 to 86400000");
		return NULL;
	}
	return admin_drain(b, s, (int)timeout, err);
}

extern const char openrpc_document[];

/* protocol/openrpc.json, built into the binary and parsed once for the process: it never
 * changes, so every broker of the process shares it, and it lives as long as the process. */
static json_t *openrpc;

int
methods_load(struct fxb_error *err)
{
	json_error_t jerr;

	if (openrpc)
		return 0;
	if (!(openrpc = json_loads(openrpc_document, 0, &jerr))) {
		error_set(err, ERR_INTERNAL, "the built-in OpenRPC document does not parse: %s", jerr.text);
		return -1;
	}
	return 0;
}

static json_t *
method_rpc_discover(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	(void)b;
	(void)s;
	(void)call;
	UNPACK(params, no_params, err, "{}");
	return json_incref(openrpc);
}

const struct rpc_method methods_table[] = {
	{ "session.hello", method_session_hello, 0 },
	{ "lease.acquire", method_lease_acquire, 1 },
	{ "lease.release", method_lease_release, 1 },
	{ "lease.renew", method_lease_renew, 1 },
	{ "lease.reset", method_lease_reset, 1 },
	{ "lease.list", method_lease_list, 1 },
	{ "server.logs", method_server_logs, 1 },
	{ "pg.template.ensure", method_pg_template_ensure, 1 },
	{ "pg.template.finish", method_pg_template_finish, 1 },
	{ "pg.template.discard", method_pg_template_discard, 1 },
	{ "pg.status", method_pg_status, 1 },
	{ "broker.status", method_broker_status, 1 },
	{ "admin.leases", method_admin_leases, 1 },
	{ "admin.release", method_admin_release, 1 },
	{ "admin.drain", method_admin_drain, 1 },
	{ "rpc.discover", method_rpc_discover, 1 },
	{ NULL, NULL, 0 },
};
