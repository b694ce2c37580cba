/* histogram.h: latency histograms in seconds, with fixed buckets, for GET /metrics.
 *
 * Plain counters: the module that observes owns the histogram, on the loop.
 */
#ifndef FXB_HISTOGRAM_H
#define FXB_HISTOGRAM_H

#include <stdint.h>
#include <stdio.h>

#define HISTOGRAM_BUCKETS 16

struct histogram {
	uint64_t counts[HISTOGRAM_BUCKETS + 1]; /* the last one is +Inf */
	uint64_t count;
	double sum_seconds;
};

/* The upper bounds of the buckets, in seconds. */
extern const double histogram_buckets[HISTOGRAM_BUCKETS];

void histogram_observe(struct histogram *h, double seconds);
/* Writes h as the Prometheus lines <name>_bucket, _sum and _count; labels ("a=\"b\"")
 * may be "" for none. */
void histogram_write(FILE *f, const char *name, const char *labels, const struct histogram *h);

#endif
