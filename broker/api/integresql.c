/* integresql.c: IntegreSQL v1.1's REST API, mapped onto the broker's templates and leases.
 *
 * IntegreSQL's routes (internal/api/templates, internal/api/admin of v1.1.0), with its
 * status codes and its JSON shapes; errors are Echo's {"message": "..."}:
 *   POST   /api/v1/templates {"hash"}           initialize: 200 and the build database,
 *                                               423 when it is built or being built
 *   PUT    /api/v1/templates/:hash              finalize: 204
 *   DELETE /api/v1/templates/:hash              discard: 204
 *   GET    /api/v1/templates/:hash/tests        a test database: 200 {"id", "database"},
 *                                               waiting up to integresql.wait_ms (then
 *                                               500, as IntegreSQL's timeout)
 *   POST   .../tests/:id/unlock,
 *   DELETE .../tests/:id                        give it back unchanged: 204; the next get
 *                                               may have it again, as IntegreSQL's does
 *   POST   .../tests/:id/recreate               give it back to be dropped: 204
 *   DELETE /api/v1/admin/templates              forget everything: 204
 *
 * Every request becomes a JSON-RPC call (pg.template.*, lease.acquire, lease.release)
 * on one session of this module's, the same code path as a WebSocket client's; the
 * replies come back through the session's io, matched by call id to the request waiting
 * for them. Nothing here blocks: a GET waiting for a clone is a pending call. A test
 * database is a lease of that session with TTL integresql.lease_ttl_ms, so a client that
 * never gives it back loses it then; its id is the lease's number. An unlocked one stays
 * leased, and its TTL runs on, until a get takes it again (at most MAX_UNLOCKED are kept
 * per template; one more is dropped); a recreated one is released, and the broker's warm
 * pool makes the next. The admin reset closes the session, which releases every lease and
 * discards the builds under way, as a disconnected WebSocket client's would be.
 *
 * IntegreSQL keeps its templates in memory; here they are remembered per hash while this
 * broker runs. A hash the broker has finished already, or that a WebSocket client is
 * building, answers 423, as IntegreSQL does for one that is initialized, and becomes known
 * here: its gets wait for that build.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/integresql.h"
#include "broker.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "tenant/tenant.h"
#include "net/http.h"
#include "rpc/rpc.h"

#define PREFIX "/api/v1"
#define MAX_BODY (16 * 1024)
#define HASH_MAX 128
/* Unlocked databases kept per template for the next gets; more are given back. */
#define MAX_UNLOCKED 32

enum tpl_state { TPL_INITIALIZING, TPL_BUILDING, TPL_FINALIZING, TPL_READY };

/* A template this API initialized or was told is initialized. */
struct isql_tpl {
	struct isql_tpl *next;
	char hash[HASH_MAX + 1];
	enum tpl_state state;
};

/* A test database: the lease l-<id>, handed out or unlocked (kept for the next get). */
struct isql_db {
	struct isql_db *next;
	unsigned long long id;
	char hash[HASH_MAX + 1];
	json_t *database; /* the answer's "database" */
	int unlocked;
};

enum call_kind { C_INIT, C_FINALIZE, C_DISCARD, C_GET, C_RETURN, C_IGNORE };

/* A JSON-RPC call under way, and the request waiting for its reply (NULL once gone). */
struct isql_call {
	struct isql_call *next, *prev;
	struct integresql *is;
	lws_sorted_usec_list_t deadline; /* a get's integresql.wait_ms */
	unsigned long long rpc_id;
	enum call_kind kind;
	struct http_request *r;
	char hash[HASH_MAX + 1];
};

struct integresql {
	struct broker *b;
	struct session *s; /* made on first use; NULL after a reset */
	unsigned long long next_rpc;
	struct isql_tpl *tpls;
	struct isql_db *dbs;
	struct isql_call *calls;
};

/* ---- Answers ---- */

static void
respond_json(struct http_request *r, int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	if (!text) {
		http_respond(r, 500, "application/json", NULL, 0);
		return;
	}
	http_respond(r, status, "application/json; charset=UTF-8", text, strlen(text));
}

/* Echo's error body, as IntegreSQL answers. */
static void
respond_error(struct http_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
respond_error(struct http_request *r, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	respond_json(r, status, json_pack("{s:s}", "message", msg));
}

static void
respond_empty(struct http_request *r, int status)
{
	http_respond(r, status, "application/json", NULL, 0);
}

/* ---- State ---- */

static struct isql_tpl *
tpl_get(struct integresql *is, const char *hash)
{
	for (struct isql_tpl *t = is->tpls; t; t = t->next)
		if (!strcmp(t->hash, hash))
			return t;
	return NULL;
}

static struct isql_tpl *
tpl_add(struct integresql *is, const char *hash, enum tpl_state state)
{
	struct isql_tpl *t = tpl_get(is, hash);

	if (!t) {
		if (!(t = calloc(1, sizeof *t)))
			return NULL;
		snprintf(t->hash, sizeof t->hash, "%s", hash);
		t->next = is->tpls;
		is->tpls = t;
	}
	t->state = state;
	return t;
}

static void
tpl_remove(struct integresql *is, const char *hash)
{
	for (struct isql_tpl **p = &is->tpls; *p; p = &(*p)->next) {
		if (strcmp((*p)->hash, hash) != 0)
			continue;
		struct isql_tpl *t = *p;
		*p = t->next;
		free(t);
		return;
	}
}

/* The lease of a test database, or NULL when it is gone (its TTL ran out). */
static struct lease *
db_lease(struct integresql *is, unsigned long long id)
{
	return lease_by_number(is->b, id);
}

/* The wire id of test database id's lease into lid (one the broker does not hold when
 * the lease is gone, which lease.release answers with released: false). */
static void
db_lid(struct integresql *is, unsigned long long id, char *lid, size_t len)
{
	struct lease *l = db_lease(is, id);

	if (l)
		snprintf(lid, len, "%s", l->lid);
	else
		snprintf(lid, len, "l-%llu", id);
}

static void
db_free(struct isql_db *d)
{
	json_decref(d->database);
	free(d);
}

/* Drops the entries whose lease is gone (its TTL ran out). */
static void
db_prune(struct integresql *is)
{
	struct isql_db **p = &is->dbs, *d;

	while ((d = *p)) {
		if (!db_lease(is, d->id)) {
			*p = d->next;
			db_free(d);
			continue;
		}
		p = &d->next;
	}
}

/* Test database id of template hash, handed out (unlocked 0) or not, or NULL. */
static struct isql_db *
db_get(struct integresql *is, const char *hash, unsigned long long id, int unlocked)
{
	db_prune(is);
	for (struct isql_db *d = is->dbs; d; d = d->next)
		if (d->id == id && !strcmp(d->hash, hash) && d->unlocked == unlocked)
			return d;
	return NULL;
}

/* An unlocked database of hash, oldest first, or NULL; counts them in *n. */
static struct isql_db *
db_unlocked(struct integresql *is, const char *hash, size_t *n)
{
	struct isql_db *found = NULL;

	db_prune(is);
	*n = 0;
	for (struct isql_db *d = is->dbs; d; d = d->next)
		if (d->unlocked && !strcmp(d->hash, hash)) {
			found = d; /* the list is newest first */
			++*n;
		}
	return found;
}

static void
db_remove(struct integresql *is, unsigned long long id)
{
	for (struct isql_db **p = &is->dbs; *p; p = &(*p)->next) {
		if ((*p)->id != id)
			continue;
		struct isql_db *d = *p;
		*p = d->next;
		db_free(d);
		return;
	}
}

static void
call_free(struct integresql *is, struct isql_call *c)
{
	lws_sul_cancel(&c->deadline);
	if (c->prev)
		c->prev->next = c->next;
	else
		is->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* Every call under way ends: their requests get status (after a reset, at shutdown). */
static void
calls_abandon(struct integresql *is, const char *why)
{
	while (is->calls) {
		if (is->calls->r)
			respond_error(is->calls->r, 503, "%s", why);
		call_free(is, is->calls);
	}
}

static void
state_clear(struct integresql *is)
{
	struct isql_tpl *t;
	struct isql_db *d;

	while ((t = is->tpls)) {
		is->tpls = t->next;
		free(t);
	}
	while ((d = is->dbs)) {
		is->dbs = d->next;
		db_free(d);
	}
}

/* ---- The session and its calls ---- */

static void on_reply(struct integresql *is, const char *text, size_t len);

static void
session_sent(void *conn, char *text, size_t len)
{
	on_reply(conn, text, len);
	free(text);
}

/* The session ends (a reset, or the broker stops): its leases and builds are gone. */
static void
session_gone(void *conn, int code, const char *reason)
{
	struct integresql *is = conn;

	(void)code;
	is->s = NULL;
	calls_abandon(is, reason);
	state_clear(is);
}

static const struct session_io isql_io = { session_sent, session_gone };

/* Calls method with params (taken) for request r (NULL: nobody waits). Returns the call
 * when its reply is still to come, else NULL (answered now, or on error answered 500 with
 * nothing kept). */
static struct isql_call *
call(struct integresql *is, struct http_request *r, enum call_kind kind, const char *hash,
    const char *method, json_t *params)
{
	struct isql_call *c = calloc(1, sizeof *c);
	json_t *msg;
	char *text = NULL, *reply;

	if (!is->s && (is->s = session_new(is->b, is, &isql_io))) {
		is->s->peer.authenticated = 1; /* the bearer token was checked per request */
		snprintf(is->s->client, sizeof is->s->client, "integresql");
	}
	if (c && is->s) {
		c->rpc_id = ++is->next_rpc;
		msg = json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id",
		    (json_int_t)c->rpc_id, "method", method, "params", params);
		text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
		json_decref(msg);
	}
	json_decref(params);
	if (!text) {
		free(c);
		if (r)
			respond_error(r, 500, "out of memory");
		return NULL;
	}
	c->is = is;
	c->kind = kind;
	c->r = r;
	snprintf(c->hash, sizeof c->hash, "%s", hash);
	c->next = is->calls;
	if (is->calls)
		is->calls->prev = c;
	is->calls = c;
	reply = rpc_handle(is->b, &is->s->peer, text, strlen(text));
	free(text);
	if (reply) {
		on_reply(is, reply, strlen(reply));
		free(reply);
		return NULL;
	}
	return c;
}

/* A get waited integresql.wait_ms: its request is answered as IntegreSQL's would be; the
 * database, if it comes, is given back at once. */
static void
get_deadline(lws_sorted_usec_list_t *sul)
{
	struct isql_call *c = lws_container_of(sul, struct isql_call, deadline);

	if (!c->r)
		return;
	respond_error(c->r, 500, "timeout when waiting for ready db (after integresql.wait_ms, "
	    "%d ms)", c->is->b->cfg.integresql_wait_ms);
	c->r = NULL;
}

/* The build database of an initialize's "build" result, as IntegreSQL's TemplateDatabase. */
static json_t *
database_json(const char *hash, json_t *f, const char *user_key)
{
	return json_pack("{s:s, s:{s:O, s:O, s:O, s:O, s:O}}", "templateHash", hash, "config",
	    "host", json_object_get(f, "host"), "port", json_object_get(f, "port"),
	    "username", json_object_get(f, user_key), "password", json_object_get(f, "password"),
	    "database", json_object_get(f, "database"));
}

static void
init_reply(struct integresql *is, struct isql_call *c, json_t *result, int code,
    const char *msg)
{
	struct http_request *r = c->r && http_alive(c->r) ? c->r : NULL;
	const char *state = json_string_value(json_object_get(result, "state"));

	if (result && state && !strcmp(state, "build")) {
		if (!r) {
			/* Its caller is gone: nobody will finish this build. */
			tpl_remove(is, c->hash);
			call(is, NULL, C_IGNORE, c->hash, "pg.template.discard",
			    json_pack("{s:s}", "hash", c->hash));
			return;
		}
		tpl_add(is, c->hash, TPL_BUILDING);
		respond_json(r, 200, json_pack("{s:o}", "database", database_json(c->hash, result,
		    "user")));
		return;
	}
	if (result) {
		/* Finished already (by this API, a WebSocket client or a broker before). */
		tpl_add(is, c->hash, TPL_READY);
		if (r)
			respond_error(r, 423, "template is already initialized");
		return;
	}
	if (code == ERR_PG_TEMPLATE_WAIT_TIMEOUT || code == ERR_PG_NOT_BUILDER) {
		/* Someone else (a WebSocket client) builds it: IntegreSQL's clients take 423 as
		 * "ready", and their gets wait for that build. */
		tpl_add(is, c->hash, TPL_READY);
		if (r)
			respond_error(r, 423, "template is already initialized");
		return;
	}
	tpl_remove(is, c->hash);
	if (!r)
		return;
	if (code == ERR_INVALID_PARAMS)
		respond_error(r, 400, "%s", msg);
	else if (code == ERR_PG_UNAVAILABLE || code == ERR_SHUTTING_DOWN)
		respond_error(r, 503, "%s", msg);
	else
		respond_error(r, 500, "%s", msg);
}

static void
get_reply(struct integresql *is, struct isql_call *c, json_t *result, int code,
    const char *msg)
{
	struct http_request *r = c->r && http_alive(c->r) ? c->r : NULL;
	const char *lid = json_string_value(json_object_get(result, "lease"));
	json_t *f = json_object_get(json_object_get(result, "fixtures"), "db");
	unsigned long long id = lid && !strncmp(lid, "l-", 2) ? strtoull(lid + 2, NULL, 10) : 0;
	struct isql_db *d;

	if (result) {
		if (!r || !f || !id || !(d = calloc(1, sizeof *d))) {
			if (r)
				respond_error(r, 500, "out of memory");
			if (lid)
				call(is, NULL, C_IGNORE, "", "lease.release", json_pack("{s:s}", "lease",
				    lid));
			return;
		}
		d->id = id;
		snprintf(d->hash, sizeof d->hash, "%s", c->hash);
		if (!(d->database = database_json(c->hash, f, "user"))) {
			free(d);
			respond_error(r, 500, "out of memory");
			call(is, NULL, C_IGNORE, "", "lease.release", json_pack("{s:s}", "lease", lid));
			return;
		}
		d->next = is->dbs;
		is->dbs = d;
		respond_json(r, 200, json_pack("{s:I, s:O}", "id", (json_int_t)id, "database",
		    d->database));
		return;
	}
	if (!r)
		return;
	if (code == ERR_PG_TEMPLATE_NOT_FOUND)
		respond_error(r, tpl_get(is, c->hash) ? 410 : 404, "%s", msg);
	else if (code == ERR_PG_UNAVAILABLE || code == ERR_SHUTTING_DOWN)
		respond_error(r, 503, "%s", msg);
	else
		respond_error(r, 500, "%s", msg); /* a wait timeout is 500 in IntegreSQL too */
}

/* A reply (a JSON-RPC response text) to one of this module's calls. */
static void
on_reply(struct integresql *is, const char *text, size_t len)
{
	json_t *msg = json_loadb(text, len, 0, NULL), *result, *error;
	unsigned long long id;
	struct isql_call *c;
	const char *emsg;
	struct http_request *r;
	int code;

	if (!msg)
		return;
	id = (unsigned long long)json_integer_value(json_object_get(msg, "id"));
	for (c = is->calls; c && c->rpc_id != id; c = c->next)
		;
	if (!c) {
		json_decref(msg);
		return;
	}
	/* Unlinked first: what is done next may call again. */
	if (c->prev)
		c->prev->next = c->next;
	else
		is->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	result = json_object_get(msg, "result");
	error = json_object_get(msg, "error");
	code = (int)json_integer_value(json_object_get(error, "code"));
	emsg = json_string_value(json_object_get(error, "message"));
	if (!emsg)
		emsg = "internal error";
	if (error)
		log_debug("integresql: %s: %s", c->hash, emsg);
	r = c->r;
	switch (c->kind) {
	case C_INIT:
		init_reply(is, c, error ? NULL : result, code, emsg);
		break;
	case C_GET:
		get_reply(is, c, error ? NULL : result, code, emsg);
		break;
	case C_FINALIZE:
		if (!error) {
			tpl_add(is, c->hash, TPL_READY);
			if (r)
				respond_empty(r, 204);
		} else {
			struct isql_tpl *t = tpl_get(is, c->hash);
			if (t && t->state == TPL_FINALIZING)
				t->state = TPL_BUILDING;
			if (r)
				respond_error(r, 500, "%s", emsg);
		}
		break;
	case C_DISCARD:
	case C_RETURN:
		if (r) {
			if (error)
				respond_error(r, 500, "%s", emsg);
			else
				respond_empty(r, 204);
		}
		break;
	case C_IGNORE:
		break;
	}
	lws_sul_cancel(&c->deadline);
	free(c);
	json_decref(msg);
}

/* ---- Requests ---- */

/* 1 when r may call: no tokens configured, or "Authorization: Bearer <a token>". */
static int
authorized(struct integresql *is, struct http_request *r)
{
	const char *h = http_authorization(r);

	if (!is->b->need_token)
		return 1;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return tenants_check(is->b->tenants, h, NULL);
}

/* Copies the path segment at *p (up to the next '/') into out; returns its length, or
 * -1 when it is longer than cap - 1. */
static int
segment(const char **p, char *out, size_t cap)
{
	size_t n = strcspn(*p, "/");

	if (n >= cap)
		return -1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	return (int)n;
}

static void
post_initialize(struct integresql *is, struct http_request *r, const char *body, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(body, len, 0, &jerr), *hash;
	const char *h;

	if (!req || !json_is_object(req)) {
		json_decref(req);
		respond_error(r, 400, "invalid JSON body: %s", req ? "expected an object" : jerr.text);
		return;
	}
	hash = json_object_get(req, "hash");
	if (hash && !json_is_string(hash)) {
		json_decref(req);
		respond_error(r, 400, "hash: expected a string");
		return;
	}
	h = hash ? json_string_value(hash) : "";
	if (!h[0] || strlen(h) > HASH_MAX) {
		respond_error(r, 400, h[0] ? "hash: at most 128 characters" : "hash is required");
		json_decref(req); /* h is its */
		return;
	}
	if (tpl_get(is, h)) {
		json_decref(req);
		respond_error(r, 423, "template is already initialized");
		return;
	}
	if (!tpl_add(is, h, TPL_INITIALIZING)) {
		json_decref(req);
		respond_error(r, 500, "out of memory");
		return;
	}
	/* wait_ms 0: a build under way elsewhere is 423 now, as IntegreSQL answers. */
	call(is, r, C_INIT, h, "pg.template.ensure", json_pack("{s:s, s:i}", "hash", h,
	    "wait_ms", 0));
	json_decref(req);
}

static void
template_route(struct integresql *is, struct http_request *r, const char *method,
    const char *hash)
{
	struct isql_tpl *t = tpl_get(is, hash);
	struct isql_db **p, *d;

	if (strcmp(method, "PUT") != 0 && strcmp(method, "DELETE") != 0) {
		respond_error(r, 405, "Method Not Allowed");
		return;
	}
	if (!t || t->state == TPL_INITIALIZING) {
		respond_error(r, 404, "template not found");
		return;
	}
	if (!strcmp(method, "PUT")) {
		if (t->state == TPL_READY) {
			respond_empty(r, 204);
			return;
		}
		if (t->state == TPL_FINALIZING) {
			respond_error(r, 423, "template is being finalized");
			return;
		}
		t->state = TPL_FINALIZING;
		call(is, r, C_FINALIZE, hash, "pg.template.finish", json_pack("{s:s}", "hash", hash));
		return;
	}
	/* DELETE: the test databases handed out from it go back, and it is forgotten here. */
	for (p = &is->dbs; (d = *p);) {
		if (strcmp(d->hash, hash) != 0) {
			p = &d->next;
			continue;
		}
		*p = d->next;
		if (db_lease(is, d->id)) {
			char lid[48];
			db_lid(is, d->id, lid, sizeof lid);
			call(is, NULL, C_IGNORE, hash, "lease.release", json_pack("{s:s}", "lease", lid));
		}
		db_free(d);
	}
	if (t->state == TPL_BUILDING) {
		tpl_remove(is, hash);
		call(is, r, C_DISCARD, hash, "pg.template.discard", json_pack("{s:s}", "hash", hash));
		return;
	}
	/* A finished template stays the broker's (its GC drops it once unused). */
	tpl_remove(is, hash);
	respond_empty(r, 204);
}

static void
tests_route(struct integresql *is, struct http_request *r, const char *method,
    const char *hash, const char *rest)
{
	const struct config *cfg = &is->b->cfg;
	char idtext[24], lid[48];
	unsigned long long id;
	struct isql_tpl *t = tpl_get(is, hash);
	struct isql_call *c;
	struct isql_db *d;
	json_t *params;
	size_t n;
	char *end;

	if (!*rest) {
		if (strcmp(method, "GET") != 0) {
			respond_error(r, 405, "Method Not Allowed");
			return;
		}
		if (!t) {
			respond_error(r, 404, "template not found");
			return;
		}
		if (t->state == TPL_READY && (d = db_unlocked(is, hash, &n))) {
			/* IntegreSQL's unlock: the caller said it left the database as it was. */
			d->unlocked = 0;
			lease_renew(is->b, db_lease(is, d->id), -1);
			respond_json(r, 200, json_pack("{s:I, s:O}", "id", (json_int_t)d->id, "database",
			    d->database));
			return;
		}
		params = json_pack("{s:{s:{s:s, s:s}}, s:i}", "fixtures", "db", "kind", "postgres",
		    "template", hash, "wait_ms", cfg->integresql_wait_ms);
		if (params && cfg->integresql_ttl_ms > 0)
			json_object_set_new(params, "ttl_ms", json_integer(cfg->integresql_ttl_ms));
		if ((c = call(is, r, C_GET, hash, "lease.acquire", params)))
			lws_sul_schedule(is->b->ctx, 0, &c->deadline, get_deadline,
			    (lws_usec_t)cfg->integresql_wait_ms * LWS_US_PER_MS);
		return;
	}
	/* "/:id", "/:id/unlock" or "/:id/recreate" */
	rest++;
	if (segment(&rest, idtext, sizeof idtext) < 1) {
		respond_error(r, 400, "invalid test database ID");
		return;
	}
	if (!(!*rest && !strcmp(method, "DELETE")) &&
	    !((!strcmp(rest, "/unlock") || !strcmp(rest, "/recreate")) && !strcmp(method, "POST"))) {
		if (!*rest || !strcmp(rest, "/unlock") || !strcmp(rest, "/recreate"))
			respond_error(r, 405, "Method Not Allowed");
		else
			respond_error(r, 404, "Not Found");
		return;
	}
	id = strtoull(idtext, &end, 10);
	if (!isdigit((unsigned char)idtext[0]) || *end || id == 0 || id > 0x7fffffff) {
		respond_error(r, 400, "invalid test database ID");
		return;
	}
	if (!t) {
		respond_error(r, 404, "template not found");
		return;
	}
	if (!(d = db_get(is, hash, id, 0))) {
		respond_error(r, 404, "test database not found");
		return;
	}
	/* Unlock (and IntegreSQL's deprecated DELETE): the caller left it as it was, so the
	 * next get may have it again, as IntegreSQL does. */
	if (strcmp(rest, "/recreate") != 0) {
		db_unlocked(is, hash, &n);
		if (n < MAX_UNLOCKED) {
			d->unlocked = 1;
			lease_renew(is->b, db_lease(is, id), -1);
			respond_empty(r, 204);
			return;
		}
	}
	/* Recreate: the broker drops the clone and its warm pool hands out fresh ones. */
	db_remove(is, id);
	db_lid(is, id, lid, sizeof lid);
	call(is, r, C_RETURN, hash, "lease.release", json_pack("{s:s}", "lease", lid));
}

static void
admin_reset(struct integresql *is, struct http_request *r, const char *method)
{
	if (strcmp(method, "DELETE") != 0) {
		respond_error(r, 405, "Method Not Allowed");
		return;
	}
	if (is->s)
		session_close(is->b, is->s, "integresql: all templates reset");
	calls_abandon(is, "all templates were reset");
	state_clear(is);
	respond_empty(r, 204);
}

static void
serve(struct broker *b, struct http_request *r, const char *method, const char *path,
    const char *body, size_t len)
{
	struct integresql *is = b->integresql;
	char hash[HASH_MAX + 1];
	const char *p = path + strlen(PREFIX);
	int n;

	if (!authorized(is, r)) {
		respond_error(r, 401, is->b->need_token && http_authorization(r)[0] ?
		    "unauthenticated: the token is not valid" :
		    "unauthenticated: send Authorization: Bearer <token>");
		return;
	}
	if (!strcmp(p, "/admin/templates")) {
		admin_reset(is, r, method);
		return;
	}
	if (strncmp(p, "/templates", 10) != 0 || (p[10] && p[10] != '/')) {
		respond_error(r, 404, "Not Found");
		return;
	}
	p += 10;
	if (!*p || !strcmp(p, "/")) {
		if (strcmp(method, "POST") != 0)
			respond_error(r, 405, "Method Not Allowed");
		else
			post_initialize(is, r, body, len);
		return;
	}
	p++;
	if ((n = segment(&p, hash, sizeof hash)) == -1) {
		respond_error(r, 400, "hash: at most 128 characters");
		return;
	}
	if (n == 0) {
		respond_error(r, 404, "Not Found");
		return;
	}
	if (!*p) {
		template_route(is, r, method, hash);
		return;
	}
	if (!strncmp(p, "/tests", 6) && (!p[6] || p[6] == '/')) {
		tests_route(is, r, method, hash, p + 6);
		return;
	}
	respond_error(r, 404, "Not Found");
}

static void
gone(struct broker *b, struct http_request *r)
{
	struct integresql *is = b->integresql;

	if (!is)
		return;
	for (struct isql_call *c = is->calls; c; c = c->next)
		if (c->r == r) {
			log_debug("integresql: the client of a call for %s went away", c->hash);
			c->r = NULL;
		}
}

const struct http_handler integresql_handlers[] = {
	{ PREFIX "/", MAX_BODY, serve, gone },
	{ NULL, 0, NULL, NULL },
};

struct integresql *
integresql_new(struct broker *b, struct fxb_error *err)
{
	struct integresql *is = calloc(1, sizeof *is);

	if (!is) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	is->b = b;
	return is;
}

void
integresql_free(struct integresql *is)
{
	struct isql_call *c;

	if (!is)
		return;
	/* None is left once the session has closed; the lws context (and the deadlines'
	 * list) is gone by now, so nothing is cancelled here. */
	while ((c = is->calls)) {
		is->calls = c->next;
		free(c);
	}
	state_clear(is);
	free(is);
}
