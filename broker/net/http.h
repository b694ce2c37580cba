/* http.h: GET routes on the WebSocket port (/healthz, /metrics, /status).
 *
 * The routes are handed in by the composition root (loop_start), so this layer serves
 * bytes and knows nothing of what they report. Requests that are not upgrades land here.
 */
#ifndef FXB_HTTP_H
#define FXB_HTTP_H

#include <libwebsockets.h>
#include <stddef.h>

struct broker;

/* One GET route. get returns the body (malloc'd, taken) and sets *status and *len, or
 * returns NULL when out of memory (the client gets 500). A table ends with a NULL path. */
struct http_route {
	const char *path;
	const char *content_type;
	char *(*get)(struct broker *b, int *status, size_t *len);
};

/* The lws protocol "http" (protocols[0]), for loop.c. */
extern const struct lws_protocols http_protocol;

#endif
