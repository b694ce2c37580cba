/* http.h: HTTP on the WebSocket port: GET routes (/healthz, /metrics, /status) and
 * handlers that own a path prefix (the IntegreSQL-compatible API under /api/v1/).
 *
 * Routes and handlers are handed in by the composition root (loop_start,
 * loop_set_handlers), so this layer serves bytes and knows nothing of what they report.
 * Requests that are not upgrades land here.
 */
#ifndef FXB_HTTP_H
#define FXB_HTTP_H

#include <libwebsockets.h>
#include <stddef.h>

struct broker;

/* One GET route. get returns the body (malloc'd, taken) and sets *status and *len, or
 * returns NULL when out of memory (the client gets 500). authorization is the request's
 * Authorization header ("" when absent or too long). A table ends with a NULL path. */
struct http_route {
	const char *path;
	const char *content_type;
	char *(*get)(struct broker *b, const char *authorization, int *status, size_t *len);
};

/* One request to a handler, from its arrival to its answer. Valid until the handler
 * answers it (http_respond) or is told it is gone. */
struct http_request;

/* Every method under a path prefix ("/api/v1/": the path starts with it). The request
 * line, the Authorization header and a body of at most max_body bytes are read first; a
 * larger body is answered 413 by this layer. serve answers with http_respond(), at once or
 * later (the loop runs on meanwhile); gone tells the handler that a request it has not
 * answered yet lost its connection, so it forgets r. A table ends with a NULL prefix. */
struct http_handler {
	const char *prefix;
	size_t max_body;
	void (*serve)(struct broker *b, struct http_request *r, const char *method,
	    const char *path, const char *body, size_t len);
	void (*gone)(struct broker *b, struct http_request *r);
};

/* Answers r with status and body (malloc'd, taken; NULL with len 0 for none), as
 * content_type (static). The handler must not touch r afterwards. */
void http_respond(struct http_request *r, int status, const char *content_type, char *body,
    size_t len);
/* 1 while r's client is still connected, 0 once it has closed (a handler holding r is
 * also told through gone, within a fraction of a second). */
int http_alive(const struct http_request *r);
/* The request's Authorization header ("" when absent or longer than 512 bytes). */
const char *http_authorization(const struct http_request *r);

/* The lws protocol "http" (protocols[0]), for loop.c. */
extern const struct lws_protocols http_protocol;

#endif
