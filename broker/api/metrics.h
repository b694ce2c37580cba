/* metrics.h: the broker's report on itself: GET /metrics and broker.status (GET /status). */
#ifndef FXB_METRICS_H
#define FXB_METRICS_H

#include <jansson.h>
#include <stddef.h>

#include "net/http.h"

struct broker;

/* Renders every metric in Prometheus text format; the caller frees the string. NULL when
 * out of memory. */
char *metrics_render(struct broker *b, size_t *len);
/* The broker.status result (a new reference), or NULL when out of memory. */
json_t *metrics_status_json(struct broker *b);

/* The HTTP routes: GET /healthz (503 while draining: readiness), /livez (200 while the
 * process serves: liveness), /metrics and /status. */
extern const struct http_route metrics_routes[];

#endif
