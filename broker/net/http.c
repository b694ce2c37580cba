/* http.c: the HTTP side of the listener: GET routes handed in by the composition root.
 *
 * Requests that are not WebSocket upgrades land on protocols[0], this one. A reply is
 * sent in chunks of TX_CHUNK, one lws_write per writeable callback, like a WebSocket
 * reply; anything but GET is 405, an unknown path 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "net/http.h"
#include "net/loop.h"

#define TX_CHUNK (64 * 1024)

struct http_req {
	unsigned char *body; /* LWS_PRE + len */
	size_t len, off;
};

static int
http_reply(struct lws *wsi, struct http_req *h, int status, const char *type, char *body,
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

static int
on_http(struct broker *b, struct lws *wsi, struct http_req *h, const char *path)
{
	const struct http_route *r;
	char *body, method[16] = "";
	const char *uri;
	int ulen, status = 200;
	size_t len = 0;

	if (lws_http_get_uri_and_method(wsi, (char **)&uri, &ulen) >= 0)
		snprintf(method, sizeof method, "%s",
		    lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) ? "GET" : "OTHER");
	if (strcmp(method, "GET") != 0) {
		if (lws_return_http_status(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL))
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	for (r = loop_routes(b->loop); r && r->path; r++) {
		if (strcmp(path, r->path) != 0)
			continue;
		body = r->get(b, &status, &len);
		return http_reply(wsi, h, status, r->content_type, body, body ? len : 0);
	}
	if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
cb_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct http_req *h = user;

	/* lws 4.1 asks the context's first protocol, this one, whether to accept a client's
	 * certificate, and takes 0 for yes whatever OpenSSL found: without this answer, a
	 * certificate from any CA passed mutual TLS. len is OpenSSL's verdict (1: valid). */
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION)
		return len ? 0 : 1;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(b, wsi, h, in);
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		size_t chunk;
		int final;

		if (!h || !h->body)
			break;
		chunk = h->len - h->off < TX_CHUNK ? h->len - h->off : TX_CHUNK;
		final = h->off + chunk == h->len;
		if (lws_write(wsi, h->body + LWS_PRE + h->off, chunk,
		    final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)chunk)
			return -1;
		h->off += chunk;
		if (!final) {
			lws_callback_on_writable(wsi);
			break;
		}
		free(h->body);
		h->body = NULL;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
		if (h) {
			free(h->body);
			h->body = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

const struct lws_protocols http_protocol = {
	"http", cb_http, sizeof(struct http_req), 0, 0, NULL, 0,
};
