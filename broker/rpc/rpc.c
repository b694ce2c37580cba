/* rpc.c: JSON-RPC 2.0: parse, validate, batch, dispatch, encode.
 *
 * Knows nothing of sockets: rpc_handle() takes the text of one message and returns the
 * text to send now. A call whose method keeps it open (RPC_PENDING) is finished later
 * with rpc_call_finish()/rpc_call_fail(), and its reply (or its batch's, once every call
 * of the batch is done) goes out through the peer's send. Replies in a batch keep the
 * order of the calls. This is the only place that turns struct fxb_error into JSON-RPC
 * error objects, and it counts calls and errors per method for /metrics.
 */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core/clock.h"
#include "core/log.h"
#include "rpc/rpc.h"

json_t rpc_pending_marker;

struct rpc {
	const struct rpc_method *methods;
	size_t nmethods;
	uint64_t *calls, *errors; /* nmethods + 1: the last counts unknown methods */
};

struct batch {
	json_t *replies;  /* one slot per call (not per notification), in order */
	size_t open;      /* calls still open */
	struct rpc_peer *p;
};

struct rpc_call {
	struct rpc *r;
	struct rpc_peer *p; /* NULL once orphaned */
	struct rpc_call *peer_next, *peer_prev; /* p's open calls, while open */
	json_t *id;        /* NULL for a notification */
	struct batch *batch;
	size_t slot;
	size_t method;     /* index in r->methods, for the counters */
	uint64_t started_ms;
};

static const char *
type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "a whole number";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

int
rpc_params_check(json_t *params, const struct rpc_param *table, struct fxb_error *err)
{
	const struct rpc_param *p;
	const char *k;
	json_t *v;

	json_object_foreach(params, k, v) {
		for (p = table; p->key && strcmp(p->key, k) != 0; p++)
			;
		if (!p->key) {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: %.64s: unknown member", k);
			return -1;
		}
		if (json_is_null(v) && p->nullable)
			continue;
		if (json_typeof(v) != p->type) {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: %s: expected %s, got %s", k,
			    type_name(p->type), type_name(json_typeof(v)));
			return -1;
		}
	}
	for (p = table; p->key; p++) {
		if (p->required && !json_object_get(params, p->key)) {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: %s: missing", p->key);
			return -1;
		}
	}
	return 0;
}

char *
rpc_notification(const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
	    params);
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

	json_decref(msg);
	return text;
}

struct rpc *
rpc_new(const struct rpc_method *methods)
{
	struct rpc *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->methods = methods;
	while (methods[r->nmethods].name)
		r->nmethods++;
	r->calls = calloc(r->nmethods + 1, sizeof *r->calls);
	r->errors = calloc(r->nmethods + 1, sizeof *r->errors);
	if (!r->calls || !r->errors) {
		rpc_free(r);
		return NULL;
	}
	return r;
}

void
rpc_free(struct rpc *r)
{
	if (!r)
		return;
	free(r->calls);
	free(r->errors);
	free(r);
}

size_t
rpc_method_count(const struct rpc *r)
{
	return r->nmethods;
}

const char *
rpc_method_name(const struct rpc *r, size_t i)
{
	return i < r->nmethods ? r->methods[i].name : "(unknown)";
}

void
rpc_method_stats(const struct rpc *r, size_t i, uint64_t *calls, uint64_t *errors)
{
	if (i > r->nmethods)
		i = r->nmethods;
	*calls = r->calls[i];
	*errors = r->errors[i];
}

json_t *
rpc_error_object(const struct fxb_error *err)
{
	json_t *data = err->data ? json_deep_copy(err->data) : json_object();
	int code = err->code ? err->code : ERR_INTERNAL;

	if (!data)
		return NULL;
	json_object_set_new(data, "name", json_string(error_name(code)));
	if (code == ERR_INVALID_PARAMS && !json_object_get(data, "detail")) {
		const char *detail = err->text;
		if (!strncmp(detail, "invalid params: ", 16))
			detail += 16; /* "lease: expected a string, got a whole number" */
		json_object_set_new(data, "detail", json_string(detail));
	}
	return json_pack("{s:i, s:s, s:o}", "code", code, "message",
	    err->text[0] ? err->text : error_name(code), "data", data);
}

/* A reply object; takes result (or uses err when result is NULL). id is borrowed. */
static json_t *
reply_new(json_t *id, json_t *result, const struct fxb_error *err)
{
	json_t *body = result ? result : rpc_error_object(err);

	if (!body)
		return NULL;
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
	    result ? "result" : "error", body);
}

static char *
dump(json_t *reply)
{
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	json_decref(reply);
	return text;
}

static void
count(struct rpc *r, size_t method, int failed)
{
	r->calls[method]++;
	if (failed)
		r->errors[method]++;
}

static void
batch_done(struct batch *bt)
{
	size_t n = json_array_size(bt->replies);
	char *text = n ? json_dumps(bt->replies, JSON_COMPACT) : NULL;

	if (text && bt->p)
		bt->p->send(bt->p, text, strlen(text));
	else
		free(text);
	json_decref(bt->replies);
	free(bt);
}

static void
peer_unlink(struct rpc_peer *p, struct rpc_call *call)
{
	if (call->peer_prev)
		call->peer_prev->peer_next = call->peer_next;
	else
		p->calls = call->peer_next;
	if (call->peer_next)
		call->peer_next->peer_prev = call->peer_prev;
	call->peer_next = call->peer_prev = NULL;
}

void
rpc_peer_orphan(struct rpc_peer *p)
{
	struct rpc_call *call, *next;

	for (call = p->calls; call; call = next) {
		next = call->peer_next;
		call->p = NULL;
		call->peer_next = call->peer_prev = NULL;
		if (call->batch)
			call->batch->p = NULL;
	}
	p->calls = NULL;
	p->open_calls = 0;
}

/* Delivers the reply of a call that was kept open (or drops it when its peer is gone),
 * and frees the call. */
static void
call_close(struct rpc_call *call, json_t *result, const struct fxb_error *err)
{
	struct rpc_peer *p = call->p;
	json_t *reply = NULL;

	count(call->r, call->method, result == NULL);
	if (call->id && p)
		reply = reply_new(call->id, result, err);
	else
		json_decref(result);
	if (p) {
		peer_unlink(p, call);
		p->open_calls--;
	}
	if (call->batch) {
		if (reply)
			json_array_set_new(call->batch->replies, call->slot, reply);
		if (--call->batch->open == 0)
			batch_done(call->batch);
	} else if (reply) {
		char *text = dump(reply);
		if (text)
			p->send(p, text, strlen(text));
	}
	json_decref(call->id);
	free(call);
}

void
rpc_call_finish(struct rpc_call *call, json_t *result)
{
	struct fxb_error err = { 0 };

	if (!result)
		error_set(&err, ERR_INTERNAL, "out of memory");
	call_close(call, result, &err);
	error_clear(&err);
}

void
rpc_call_fail(struct rpc_call *call, const struct fxb_error *err)
{
	call_close(call, NULL, err);
}

struct session *
rpc_call_session(const struct rpc_call *call)
{
	return call->p ? call->p->session : NULL;
}

uint64_t
rpc_call_started_ms(const struct rpc_call *call)
{
	return call->started_ms;
}

/* 1 if req has a member JSON-RPC 2.0 does not define: a misspelt "parms" must not
 * pass silently as a call without params. */
static int
extra_members(json_t *req)
{
	const char *k;
	json_t *v;

	json_object_foreach(req, k, v)
		if (strcmp(k, "jsonrpc") && strcmp(k, "id") && strcmp(k, "method") && strcmp(k, "params"))
			return 1;
	return 0;
}

static int
valid_id(json_t *id)
{
	return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/* Handles one request object. Returns its reply now, or NULL for a notification or a
 * call kept open (then *open is set). */
static json_t *
handle_one(struct broker *b, struct rpc_peer *p, json_t *req, struct batch *bt, size_t slot,
    int *open)
{
	struct rpc *r = b->rpc;
	struct fxb_error err = { 0 };
	json_t *id = NULL, *params, *result, *reply;
	const char *method, *version;
	struct rpc_call *call;
	int bad_id = 0;
	size_t m;

	*open = 0;
	if (json_is_object(req)) {
		id = json_object_get(req, "id");
		if (id && !valid_id(id)) {
			bad_id = 1;
			id = json_null();
		}
	}
	if (!json_is_object(req) || bad_id ||
	    !(version = json_string_value(json_object_get(req, "jsonrpc"))) ||
	    strcmp(version, "2.0") != 0 ||
	    !(method = json_string_value(json_object_get(req, "method")))) {
		error_set(&err, ERR_INVALID_REQUEST, "invalid request: expected an object with "
		    "\"jsonrpc\": \"2.0\", a string \"method\" and an optional string or number \"id\"");
		reply = reply_new(id ? id : json_null(), NULL, &err);
		error_clear(&err);
		return reply;
	}
	params = json_object_get(req, "params");
	if ((params && !json_is_object(params) && !json_is_array(params)) || extra_members(req)) {
		error_set(&err, ERR_INVALID_REQUEST, "invalid request: only \"jsonrpc\", \"id\", "
		    "\"method\" and \"params\" (an object) may appear");
		reply = reply_new(id ? id : json_null(), NULL, &err);
		error_clear(&err);
		return reply;
	}
	for (m = 0; m < r->nmethods; m++)
		if (!strcmp(r->methods[m].name, method))
			break;
	if (m == r->nmethods) {
		count(r, m, 1);
		error_set(&err, ERR_METHOD_NOT_FOUND, "method not found: %s", method);
		goto fail;
	}
	if (params && !json_is_object(params)) {
		count(r, m, 1);
		error_set(&err, ERR_INVALID_PARAMS, "params: expected an object (by-name parameters)");
		goto fail;
	}
	if (r->methods[m].needs_auth && !p->authenticated) {
		count(r, m, 1);
		error_set(&err, ERR_UNAUTHENTICATED,
		    "unauthenticated: present a token (Authorization: Bearer, or session.hello)");
		goto fail;
	}
	if (!(call = calloc(1, sizeof *call))) {
		count(r, m, 1);
		error_set(&err, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	call->r = r;
	call->p = p;
	call->id = id ? json_incref(id) : NULL;
	call->batch = bt;
	call->slot = slot;
	call->method = m;
	call->started_ms = now_ms();

	params = params ? json_incref(params) : json_object();
	result = params ? r->methods[m].fn(b, p->session, call, params, &err) : NULL;
	json_decref(params);
	if (result == RPC_PENDING) {
		call->peer_next = p->calls;
		if (p->calls)
			p->calls->peer_prev = call;
		p->calls = call;
		p->open_calls++;
		*open = 1;
		return NULL;
	}
	if (!result && !err.code)
		error_set(&err, ERR_INTERNAL, "out of memory");
	count(r, m, result == NULL);
	json_decref(call->id);
	free(call);
	if (!id) {
		json_decref(result);
		error_clear(&err);
		return NULL;
	}
	reply = reply_new(id, result, &err);
	error_clear(&err);
	return reply;
fail:
	reply = id ? reply_new(id, NULL, &err) : NULL;
	error_clear(&err);
	return reply;
}

/* The reply to call i of a batch that was not run because the replies before it reached
 * max_batch_reply_bytes. */
static json_t *
refuse_over_reply_cap(struct broker *b, json_t *id, size_t i)
{
	struct fxb_error err = { 0 };
	json_t *reply;

	if (!valid_id(id))
		id = json_null();
	error_set_data(&err, ERR_BATCH_REPLY_TOO_LARGE, json_pack("{s:I, s:I}", "limit",
	    (json_int_t)b->cfg.max_batch_reply_bytes, "index", (json_int_t)i),
	    "batch reply too large: the replies before this call reached max_batch_reply_bytes "
	    "(%zu); it was not run", b->cfg.max_batch_reply_bytes);
	reply = reply_new(id, NULL, &err);
	error_clear(&err);
	return reply;
}

static char *
handle_batch(struct broker *b, struct rpc_peer *p, json_t *reqs)
{
	struct batch *bt;
	size_t i, slot = 0, bytes = 0;
	json_t *req;
	int open;

	if (json_array_size(reqs) > (size_t)b->cfg.max_batch_calls) {
		struct fxb_error err = { 0 };
		char *out;
		error_set_data(&err, ERR_BATCH_TOO_LARGE, json_pack("{s:i, s:I}", "limit",
		    b->cfg.max_batch_calls, "calls", (json_int_t)json_array_size(reqs)),
		    "batch too large: %zu requests, max_batch_calls is %d; none was run",
		    json_array_size(reqs), b->cfg.max_batch_calls);
		out = dump(reply_new(NULL, NULL, &err));
		error_clear(&err);
		return out;
	}
	if (!(bt = calloc(1, sizeof *bt)) || !(bt->replies = json_array())) {
		free(bt);
		return NULL;
	}
	bt->p = p;
	bt->open = 1; /* held by this function until every call has been started */
	json_array_foreach(reqs, i, req) {
		json_t *reply;
		if (bytes >= b->cfg.max_batch_reply_bytes) {
			/* Past the cap the calls are not run; those with an id say so. */
			if (!json_is_object(req) || !json_object_get(req, "id"))
				continue;
			reply = refuse_over_reply_cap(b, json_object_get(req, "id"), i);
		} else {
			reply = handle_one(b, p, req, bt, slot, &open);
		}
		if (reply) {
			bytes += json_dumpb(reply, NULL, 0, JSON_COMPACT);
			json_array_append_new(bt->replies, reply);
			slot++;
		} else if (open) {
			bt->open++;
			/* A call kept open has an id unless it is a notification; keep its slot. */
			if (json_object_get(req, "id")) {
				json_array_append_new(bt->replies, json_null());
				slot++;
			}
		}
	}
	if (--bt->open > 0)
		return NULL;
	{
		char *text = json_array_size(bt->replies) ? json_dumps(bt->replies, JSON_COMPACT) : NULL;
		json_decref(bt->replies);
		free(bt);
		return text;
	}
}

char *
rpc_handle(struct broker *b, struct rpc_peer *p, const char *text, size_t len)
{
	struct fxb_error err = { 0 };
	json_error_t jerr;
	json_t *msg = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	char *out;
	int open;

	if (!msg) {
		error_set(&err, ERR_PARSE, "parse error: %s at line %d, column %d", jerr.text,
		    jerr.line, jerr.column);
		out = dump(reply_new(NULL, NULL, &err));
		error_clear(&err);
		return out;
	}
	if (json_is_array(msg) && json_array_size(msg) == 0) {
		error_set(&err, ERR_INVALID_REQUEST, "invalid request: an empty batch");
		out = dump(reply_new(NULL, NULL, &err));
		error_clear(&err);
	} else if (json_is_array(msg)) {
		out = handle_batch(b, p, msg);
	} else {
		out = dump(handle_one(b, p, msg, NULL, 0, &open));
	}
	json_decref(msg);
	return out;
}
