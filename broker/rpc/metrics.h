/* metrics.h: counters and histograms for GET /metrics (Prometheus text format).
 *
 * Only the event loop updates them, so they are plain integers.
 */
#ifndef FXB_METRICS_H
#define FXB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_METHODS 32
#define METRICS_BUCKETS 16

struct histogram {
	uint64_t counts[METRICS_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	double sum_seconds;
};

struct metrics {
	uint64_t calls[METRICS_MAX_METHODS + 1]; /* by rpc_methods index; the last: unknown */
	uint64_t errors[METRICS_MAX_METHODS + 1];
	uint64_t sessions_total, leases_total, reclaimed_total;
	struct histogram acquire_seconds;
};

/* The upper bounds of the histogram's buckets, in seconds. */
extern const double metrics_buckets[METRICS_BUCKETS];

void histogram_observe(struct histogram *h, double seconds);

struct broker;
/* Renders every metric; the caller frees the string. NULL when out of memory. */
char *metrics_render(struct broker *b, size_t *len);

#endif
