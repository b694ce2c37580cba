/* http.c: the HTTP side of the listener: GET routes and prefix handlers handed in by the
 * composition root.
 *
 * Requests that are not WebSocket upgrades land on protocols[0], this one. A route
 * answers a GET at once; a handler (http.h) gets every method under its prefix once the
 * body is read, and may answer later: the connection then waits with no timeout while the
 * loop runs on, and a connection that closes first is reported to the handler. A reply is
 * sent in chunks of TX_CHUNK, one lws_write per writeable callback, like a WebSocket
 * reply; a route's path with another method is 405, an unknown path 404.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"
#include "net/http.h"
#include "net/loop.h"

#define TX_CHUNK (64 * 1024)
#define AUTH_MAX 512
/* How often a request a handler holds is checked for a client that went away: lws reads
 * nothing from a connection whose request is unanswered, so it would not notice. */
#define ALIVE_CHECK_MS 250

/* The per-connection state lws keeps for us (its user data); a handler's request. */
struct http_request {
	struct broker *b;
	struct lws *wsi;
	/* The reply: LWS_PRE + len bytes, headers first when hdr_pending. */
	unsigned char *body;
	size_t len, off;
	int status;
	const char *type;
	int hdr_pending;
	/* A request for a handler, while it is read and until it is answered. */
	const struct http_handler *handler;
	int waiting; /* the handler holds it */
	lws_sorted_usec_list_t alive;
	char method[8];
	char path[512];
	char auth[AUTH_MAX + 1];
	char *in;
	size_t in_len, in_cap;
	int too_big;
};

static int
http_reply(struct lws *wsi, struct http_request *h, int status, const char *type, char *body,
    size_t len)
{
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
	    *end = hdr + sizeof hdr;

	if (!body)
		return lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL) ? -1
		    : (lws_http_transaction_completed(wsi) ? -1 : 0);
	h->body = malloc(LWS_PRE + len);
	if (!h->body) {
		free(body);
		return -1;
	}
	memcpy(h->body + LWS_PRE, body, len);
	free(body);
	h->len = len;
	h->off = 0;
	if (lws_add_http_common_headers(wsi, (unsigned int)status, type, (lws_filepos_t)len, &p, end) ||
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
	    (const unsigned char *)"no-store", 8, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return 1;
	lws_callback_on_writable(wsi);
	return 0;
}

int
http_alive(const struct http_request *r)
{
	char c;
	ssize_t n = recv(lws_get_socket_fd(r->wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT);

	/* More bytes (a pipelined request) mean the client is still there. */
	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

/* The client of a request its handler holds went away: the handler forgets it, and the
 * connection closes. */
static void
alive_check(lws_sorted_usec_list_t *sul)
{
	struct http_request *h = lws_container_of(sul, struct http_request, alive);

	if (!h->waiting)
		return;
	if (http_alive(h)) {
		lws_sul_schedule(lws_get_context(h->wsi), 0, &h->alive, alive_check,
		    (lws_usec_t)ALIVE_CHECK_MS * LWS_US_PER_MS);
		return;
	}
	h->waiting = 0;
	if (h->handler && h->handler->gone)
		h->handler->gone(h->b, h);
	h->handler = NULL;
	lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void
http_respond(struct http_request *r, int status, const char *content_type, char *body,
    size_t len)
{
	lws_sul_cancel(&r->alive);
	r->waiting = 0;
	r->handler = NULL;
	free(r->in);
	r->in = NULL;
	r->in_len = r->in_cap = 0;
	free(r->body);
	r->body = malloc(LWS_PRE + len + 1);
	if (r->body && len)
		memcpy(r->body + LWS_PRE, body, len);
	free(body);
	if (!r->body) {
		/* Out of memory: the connection closes unanswered. */
		lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return;
	}
	r->len = len;
	r->off = 0;
	r->status = status;
	r->type = content_type;
	r->hdr_pending = 1;
	lws_callback_on_writable(r->wsi);
}

const char *
http_authorization(const struct http_request *r)
{
	return r->auth;
}

/* The request's method by the header lws filled in, or "" when it is none of these. */
static const char *
method_of(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes tok;
		const char *name;
	} methods[] = {
		{ WSI_TOKEN_GET_URI, "GET" }, { WSI_TOKEN_POST_URI, "POST" },
		{ WSI_TOKEN_PUT_URI, "PUT" }, { WSI_TOKEN_DELETE_URI, "DELETE" },
		{ WSI_TOKEN_PATCH_URI, "PATCH" }, { WSI_TOKEN_OPTIONS_URI, "OPTIONS" },
		{ WSI_TOKEN_HEAD_URI, "HEAD" },
	};

	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (lws_hdr_total_length(wsi, methods[i].tok))
			return methods[i].name;
	return "";
}

static int
plain_status(struct lws *wsi, unsigned int status)
{
	if (lws_return_http_status(wsi, status, NULL))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Hands a whole request to its handler. */
static void
serve(struct http_request *h)
{
	const struct http_handler *hd = h->handler;

	if (h->too_big) {
		char *msg = strdup("{\"message\":\"request body too large\"}\n");
		http_respond(h, 413, "application/json", msg, msg ? strlen(msg) : 0);
		return;
	}
	h->waiting = 1;
	/* The handler may take its time: no lws timeout closes the connection meanwhile. */
	lws_set_timeout(h->wsi, NO_PENDING_TIMEOUT, 0);
	hd->serve(h->b, h, h->method, h->path, h->in ? h->in : "", h->in_len);
	if (h->waiting)
		lws_sul_schedule(lws_get_context(h->wsi), 0, &h->alive, alive_check,
		    (lws_usec_t)ALIVE_CHECK_MS * LWS_US_PER_MS);
}

static int
on_http(struct broker *b, struct lws *wsi, struct http_request *h, const char *path)
{
	const struct http_handler *hd;
	const struct http_route *r;
	const char *method = method_of(wsi);
	char *body, clen[32];
	int status = 200;
	size_t len = 0;

	h->b = b;
	h->wsi = wsi;
	h->auth[0] = '\0';
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) <= AUTH_MAX &&
	    lws_hdr_copy(wsi, h->auth, sizeof h->auth, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
		h->auth[0] = '\0';
	for (hd = loop_handlers(b->loop); hd && hd->prefix; hd++) {
		if (strncmp(path, hd->prefix, strlen(hd->prefix)) != 0)
			continue;
		if (strlen(path) >= sizeof h->path)
			return plain_status(wsi, HTTP_STATUS_REQ_URI_TOO_LONG);
		h->handler = hd;
		h->too_big = 0;
		h->in_len = 0;
		snprintf(h->method, sizeof h->method, "%s", method);
		snprintf(h->path, sizeof h->path, "%s", path);
		/* With a body, lws calls back with it (HTTP_BODY) and then BODY_COMPLETION. */
		if (lws_hdr_copy(wsi, clen, sizeof clen, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
		    strtoull(clen, NULL, 10) > 0)
			return 0;
		serve(h);
		return 0;
	}
	if (strcmp(method, "GET") != 0)
		return plain_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED);
	for (r = loop_routes(b->loop); r && r->path; r++) {
		if (strcmp(path, r->path) != 0)
			continue;
		body = r->get(b, h->auth, &status, &len);
		explicit_bzero(h->auth, sizeof h->auth);
		return http_reply(wsi, h, status, r->content_type, body, body ? len : 0);
	}
	return plain_status(wsi, HTTP_STATUS_NOT_FOUND);
}

/* Keeps a chunk of a handler's request body, or marks it too big. */
static int
on_body(struct http_request *h, const void *in, size_t len)
{
	char *p;

	if (!h->handler || h->too_big)
		return 0;
	if (h->in_len + len > h->handler->max_body) {
		h->too_big = 1;
		return 0;
	}
	if (h->in_len + len + 1 > h->in_cap) {
		size_t cap = h->in_cap ? h->in_cap * 2 : 1024;
		while (cap < h->in_len + len + 1)
			cap *= 2;
		if (!(p = realloc(h->in, cap)))
			return -1;
		h->in = p;
		h->in_cap = cap;
	}
	memcpy(h->in + h->in_len, in, len);
	h->in_len += len;
	h->in[h->in_len] = '\0';
	return 0;
}

/* Writes the handler's answer: headers first, then the body in chunks. */
static int
on_writeable(struct lws *wsi, struct http_request *h)
{
	size_t chunk;
	int final;

	if (!h->body)
		return 0;
	if (h->hdr_pending) {
		unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start,
		    *end = hdr + sizeof hdr;

		h->hdr_pending = 0;
		if (lws_add_http_common_headers(wsi, (unsigned int)h->status, h->type,
		    (lws_filepos_t)h->len, &p, end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
		    (const unsigned char *)"no-store", 8, &p, end) ||
		    lws_finalize_write_http_header(wsi, start, &p, end))
			return -1;
		if (h->len) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		free(h->body);
		h->body = NULL;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	chunk = h->len - h->off < TX_CHUNK ? h->len - h->off : TX_CHUNK;
	final = h->off + chunk == h->len;
	if (lws_write(wsi, h->body + LWS_PRE + h->off, chunk,
	    final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
		return -1;
	h->off += chunk;
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	free(h->body);
	h->body = NULL;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct http_request *h = user;

	/* lws 4.1 asks the context's first protocol, this one, whether to accept a client's
	 * certificate, and takes 0 for yes whatever OpenSSL found: without this answer, a
	 * certificate from any CA passed mutual TLS. len is OpenSSL's verdict (1: valid). */
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION)
		return len ? 0 : 1;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(b, wsi, h, in);
	case LWS_CALLBACK_HTTP_BODY:
		if (h && on_body(h, in, len) == -1)
			return -1;
		break;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* lws also says this for a POST with an empty body, served already. */
		if (h && h->handler && !h->waiting && !h->body)
			serve(h);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (h)
			return on_writeable(wsi, h);
		break;
	case LWS_CALLBACK_CLOSED_HTTP:
		if (h) {
			lws_sul_cancel(&h->alive);
			if (h->waiting && h->handler && h->handler->gone)
				h->handler->gone(b, h);
			h->waiting = 0;
			h->handler = NULL;
			free(h->body);
			h->body = NULL;
			free(h->in);
			h->in = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols http_protocol = {
	"http", cb_http, sizeof(struct http_request), 0, 0, NULL, 0,
};
