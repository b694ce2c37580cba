/* histogram.c: latency histograms (see histogram.h). */
#include "util/histogram.h"

const double histogram_buckets[HISTOGRAM_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void
histogram_observe(struct histogram *h, double seconds)
{
	size_t i = 0;

	while (i < HISTOGRAM_BUCKETS && seconds > histogram_buckets[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_seconds += seconds;
}

void
histogram_write(FILE *f, const char *name, const char *labels, const struct histogram *h)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cumulative = 0;

	for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cumulative += h->counts[i];
		fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, histogram_buckets[i],
		    (unsigned long long)cumulative);
	}
	if (labels[0])
		fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_sum{%s} %.6f\n%s_count{%s} %llu\n",
		    name, labels, (unsigned long long)h->count, name, labels, h->sum_seconds, name,
		    labels, (unsigned long long)h->count);
	else
		fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
		    (unsigned long long)h->count, name, h->sum_seconds, name,
		    (unsigned long long)h->count);
}
