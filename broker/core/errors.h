/* errors.h: the broker's error codes, the error struct every module fills, and their names.
 *
 * The codes and names are the wire contract: protocol/openrpc.json lists the same ones,
 * and only the rpc layer turns a struct fxb_error into a JSON-RPC error object.
 */
#ifndef FXB_ERRORS_H
#define FXB_ERRORS_H

#include <jansson.h>

enum fxb_code {
	ERR_NONE = 0,
	ERR_PARSE = -32700,
	ERR_INVALID_REQUEST = -32600,
	ERR_METHOD_NOT_FOUND = -32601,
	ERR_INVALID_PARAMS = -32602,
	ERR_INTERNAL = -32603,

	ERR_UNAUTHENTICATED = 1001,
	ERR_RESUME_UNKNOWN = 1002,
	ERR_LEASE_NOT_FOUND = 1003,
	ERR_LEASE_NOT_OWNED = 1004,
	ERR_UNKNOWN_FIXTURE_KIND = 1005,
	ERR_TOO_MANY_FIXTURES = 1006,
	ERR_SHUTTING_DOWN = 1007,
	ERR_ACQUIRE_CANCELLED = 1008,
	ERR_FIXTURE_NOT_RESETTABLE = 1009,
	ERR_QUOTA_EXCEEDED = 1010,
	ERR_NOT_ADMIN = 1011,
	/* 102x: limits on what one connection may cost (rpc.c). */
	ERR_BATCH_TOO_LARGE = 1020,
	ERR_BATCH_REPLY_TOO_LARGE = 1021,

	ERR_PORTS_EXHAUSTED = 1101,
	/* 12xx: PostgreSQL fixtures (pg.c); 13xx: server fixtures (servers.c). */
	ERR_PG_UNAVAILABLE = 1201,
	ERR_PG_TEMPLATE_NOT_FOUND = 1202,
	ERR_PG_TEMPLATE_BUILD_FAILED = 1203,
	ERR_PG_TEMPLATE_WAIT_TIMEOUT = 1204,
	ERR_PG_NOT_BUILDER = 1205,
	ERR_PG_POOL_EXHAUSTED = 1206,
	ERR_PG_ERROR = 1207,
	ERR_PG_STORAGE_FULL = 1208,

	ERR_SERVER_TEMPLATE_UNKNOWN = 1301,
	ERR_SERVER_ENV_NOT_ALLOWED = 1302,
	ERR_SERVER_START_FAILED = 1303,
	ERR_SERVER_EXITED = 1304,
	ERR_SERVER_START_TIMEOUT = 1305,

	/* 14xx: forwarding to an upstream broker (upstream.c, forward.c). */
	ERR_UPSTREAM_UNAVAILABLE = 1401,
	ERR_UPSTREAM_LOST = 1402,
};

/* A caller-provided error: the first error set is kept, later ones are ignored, as with
 * jansson's json_error_t. data, if set, is an object of details the rpc layer merges into
 * the JSON-RPC error's data; the struct owns it. */
struct fxb_error {
	int code;
	char text[240];
	json_t *data;
};

void error_set(struct fxb_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like error_set, and takes ownership of data (an object, or NULL). */
void error_set_data(struct fxb_error *e, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Puts the text fmt makes in front of e's text, keeping its code and data, to say where an
 * error a lower layer set happened ("fixtures.api: "). A result longer than the text's
 * room is cut, and its last byte becomes '.' to show it. Does nothing when e holds no
 * error. The arguments may point into e->text. */
void error_prefix(struct fxb_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees the data and clears the error so it can be reused. */
void error_clear(struct fxb_error *e);
/* The stable name of a code ("PORTS_EXHAUSTED"), or "UNKNOWN_ERROR". */
const char *error_name(int code);

#endif
