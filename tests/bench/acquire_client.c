/* acquire_client.c: libfxb's acquire round trip: N fxb_lease_acquire + fxb_lease_release of a port.
 *
 * The same measurement as sdk-py/bench/acquire.py, sdk-js/bench/acquire.mjs and
 * sdk-go/bench/acquire, for tests/bench/clients.sh to compare in one run: one connection
 * to $FIXTURE_BROKER_URL, WARMUP round trips not counted, then N timed ones. Prints one
 * JSON line: {"client": "c", "n": N, "p50_us": ..., "p99_us": ..., "mean_us": ...}.
 * usage: acquire_client [N [WARMUP]] (default 2000 and 200). Percentiles are nearest-rank.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "fxb.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
rank(const double *v, size_t n, double p)
{
	size_t r = (size_t)ceil(p / 100.0 * (double)n);

	return v[(r < 1 ? 1 : r) - 1];
}

int
main(int argc, char **argv)
{
	const struct fxb_fixture_spec spec = { "p", "port", NULL };
	long n = argc > 1 ? atol(argv[1]) : 2000, warmup = argc > 2 ? atol(argv[2]) : 200;
	struct fxb_options opts = { .client = "acquire-bench" };
	struct fxb_client *c;
	char err[256];
	double *us, sum = 0;

	if (n < 1 || warmup < 0 || !(us = calloc((size_t)n, sizeof *us))) {
		fprintf(stderr, "usage: acquire_client [N [WARMUP]]\n");
		return 2;
	}
	if (fxb_client_new(&c, &opts, err, sizeof err) != 0) {
		fprintf(stderr, "acquire_client: %s\n", err);
		return 1;
	}
	for (long i = 0; i < warmup + n; i++) {
		struct fxb_lease *l;
		uint64_t t0 = now_ns();

		if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0 || fxb_lease_release(c, l) != 0) {
			fprintf(stderr, "acquire_client: %s\n", fxb_client_errmsg(c));
			return 1;
		}
		if (i >= warmup)
			sum += us[i - warmup] = (double)(now_ns() - t0) / 1000.0;
	}
	fxb_client_free(c);
	qsort(us, (size_t)n, sizeof *us, cmp);
	printf("{\"client\": \"c\", \"n\": %ld, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f}\n",
	    n, rank(us, (size_t)n, 50), rank(us, (size_t)n, 99), sum / (double)n);
	free(us);
	return 0;
}
