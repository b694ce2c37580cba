/* errors.c: setting and naming struct fxb_error, the error every module reports into.
 *
 * The names here are part of the wire contract and must match protocol/openrpc.json.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/errors.h"

static const struct {
	int code;
	const char *name;
} names[] = {
	{ ERR_PARSE, "PARSE_ERROR" },
	{ ERR_INVALID_REQUEST, "INVALID_REQUEST" },
	{ ERR_METHOD_NOT_FOUND, "METHOD_NOT_FOUND" },
	{ ERR_INVALID_PARAMS, "INVALID_PARAMS" },
	{ ERR_INTERNAL, "INTERNAL_ERROR" },
	{ ERR_UNAUTHENTICATED, "UNAUTHENTICATED" },
	{ ERR_RESUME_UNKNOWN, "RESUME_UNKNOWN" },
	{ ERR_LEASE_NOT_FOUND, "LEASE_NOT_FOUND" },
	{ ERR_LEASE_NOT_OWNED, "LEASE_NOT_OWNED" },
	{ ERR_UNKNOWN_FIXTURE_KIND, "UNKNOWN_FIXTURE_KIND" },
	{ ERR_TOO_MANY_FIXTURES, "TOO_MANY_FIXTURES" },
	{ ERR_SHUTTING_DOWN, "SHUTTING_DOWN" },
	{ ERR_ACQUIRE_CANCELLED, "ACQUIRE_CANCELLED" },
	{ ERR_FIXTURE_NOT_RESETTABLE, "FIXTURE_NOT_RESETTABLE" },
	{ ERR_QUOTA_EXCEEDED, "QUOTA_EXCEEDED" },
	{ ERR_NOT_ADMIN, "NOT_ADMIN" },
	{ ERR_BATCH_TOO_LARGE, "BATCH_TOO_LARGE" },
	{ ERR_BATCH_REPLY_TOO_LARGE, "BATCH_REPLY_TOO_LARGE" },
	{ ERR_PORTS_EXHAUSTED, "PORTS_EXHAUSTED" },
	{ ERR_PG_UNAVAILABLE, "PG_UNAVAILABLE" },
	{ ERR_PG_TEMPLATE_NOT_FOUND, "PG_TEMPLATE_NOT_FOUND" },
	{ ERR_PG_TEMPLATE_BUILD_FAILED, "PG_TEMPLATE_BUILD_FAILED" },
	{ ERR_PG_TEMPLATE_WAIT_TIMEOUT, "PG_TEMPLATE_WAIT_TIMEOUT" },
	{ ERR_PG_NOT_BUILDER, "PG_NOT_BUILDER" },
	{ ERR_PG_POOL_EXHAUSTED, "PG_POOL_EXHAUSTED" },
	{ ERR_PG_ERROR, "PG_ERROR" },
	{ ERR_PG_STORAGE_FULL, "PG_STORAGE_FULL" },
	{ ERR_SERVER_TEMPLATE_UNKNOWN, "SERVER_TEMPLATE_UNKNOWN" },
	{ ERR_SERVER_ENV_NOT_ALLOWED, "SERVER_ENV_NOT_ALLOWED" },
	{ ERR_SERVER_START_FAILED, "SERVER_START_FAILED" },
	{ ERR_SERVER_EXITED, "SERVER_EXITED" },
	{ ERR_SERVER_START_TIMEOUT, "SERVER_START_TIMEOUT" },
	{ ERR_UPSTREAM_UNAVAILABLE, "UPSTREAM_UNAVAILABLE" },
	{ ERR_UPSTREAM_LOST, "UPSTREAM_LOST" },
};

const char *
error_name(int code)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].code == code)
			return names[i].name;
	return "UNKNOWN_ERROR";
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0 when the bytes there are not one. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xE0)
		lo = 0xA0;
	else if (p[0] == 0xED)
		hi = 0x9F;
	else if (p[0] == 0xF0)
		lo = 0x90;
	else if (p[0] == 0xF4)
		hi = 0x8F;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return n;
}

/* A message goes to clients as a JSON string, which must be UTF-8, but "%.64s" of a
 * client's text or a cut at the end of e->text can split a character: each byte that does
 * not start a valid sequence becomes '?', so the error always reaches the client. */
static void
utf8_mend(char *text)
{
	unsigned char *p = (unsigned char *)text;
	size_t n;

	while (*p) {
		if ((n = utf8_len(p)) == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

static void
verror_set(struct fxb_error *e, int code, json_t *data, const char *fmt, va_list ap)
{
	if (e->code != ERR_NONE) {
		json_decref(data);
		return;
	}
	e->code = code;
	vsnprintf(e->text, sizeof e->text, fmt, ap);
	utf8_mend(e->text);
	e->data = data;
}

void
error_set(struct fxb_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror_set(e, code, NULL, fmt, ap);
	va_end(ap);
}

void
error_set_data(struct fxb_error *e, int code, json_t *data, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror_set(e, code, data, fmt, ap);
	va_end(ap);
}

void
error_prefix(struct fxb_error *e, const char *fmt, ...)
{
	char prefix[sizeof e->text], text[sizeof e->text];
	va_list ap;
	int n;

	if (e->code == ERR_NONE)
		return;
	va_start(ap, fmt);
	n = vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Formatted apart first: the arguments may point into e->text. */
	if ((size_t)snprintf(text, sizeof text, "%s%s", prefix, e->text) >= sizeof text ||
	    (size_t)n >= sizeof prefix)
		text[sizeof text - 2] = '.'; /* cut short */
	utf8_mend(text);
	memcpy(e->text, text, sizeof text);
}

void
error_clear(struct fxb_error *e)
{
	json_decref(e->data);
	memset(e, 0, sizeof *e);
}
