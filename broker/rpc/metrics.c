/* metrics.c: GET /metrics in Prometheus text format (version 0.0.4).
 *
 * Gauges are read from the live state at scrape time; counters and the acquire latency
 * histogram are kept in struct metrics by the modules that see the events.
 */
#include <stdio.h>
#include <stdlib.h>

#include "broker.h"
#include "core/clock.h"
#include "fixtures/pg/pg.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "ports/ports.h"
#include "rpc/rpc.h"

const double metrics_buckets[METRICS_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void
histogram_observe(struct histogram *h, double seconds)
{
	size_t i = 0;

	while (i < METRICS_BUCKETS && seconds > metrics_buckets[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum_seconds += seconds;
}

char *
metrics_render(struct broker *b, size_t *len)
{
	struct ports_counts pc;
	size_t connected = 0, in_grace = 0, nm = rpc_method_count();
	uint64_t cumulative = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	for (struct session *s = b->sessions; s; s = s->next)
		s->conn ? connected++ : in_grace++;
	ports_counts(b->ports, now_ms(), &pc);

	fprintf(f, "# HELP fxb_info The broker's version and instance.\n# TYPE fxb_info gauge\n"
	    "fxb_info{version=\"%s\",instance=\"%s\"} 1\n", FXB_VERSION_STR, b->instance);
	fprintf(f, "# HELP fxb_uptime_seconds Seconds since the broker started.\n"
	    "# TYPE fxb_uptime_seconds gauge\nfxb_uptime_seconds %.3f\n",
	    (double)(now_ms() - b->started_ms) / 1000.0);
	fprintf(f, "# HELP fxb_sessions_active Sessions with a live connection.\n"
	    "# TYPE fxb_sessions_active gauge\nfxb_sessions_active %zu\n", connected);
	fprintf(f, "# HELP fxb_sessions_in_grace Disconnected sessions that may still resume.\n"
	    "# TYPE fxb_sessions_in_grace gauge\nfxb_sessions_in_grace %zu\n", in_grace);
	fprintf(f, "# HELP fxb_sessions_total Sessions opened.\n# TYPE fxb_sessions_total counter\n"
	    "fxb_sessions_total %llu\n", (unsigned long long)b->metrics.sessions_total);
	fprintf(f, "# HELP fxb_leases_active Leases held.\n# TYPE fxb_leases_active gauge\n"
	    "fxb_leases_active %zu\n", leases_active(b->leases));
	fprintf(f, "# HELP fxb_leases_waiting Acquires queued for room.\n"
	    "# TYPE fxb_leases_waiting gauge\nfxb_leases_waiting %zu\n", leases_waiting(b->leases));
	fprintf(f, "# HELP fxb_leases_total Leases granted.\n# TYPE fxb_leases_total counter\n"
	    "fxb_leases_total %llu\n", (unsigned long long)b->metrics.leases_total);
	fprintf(f, "# HELP fxb_leases_reclaimed_total Leases released because their session ended.\n"
	    "# TYPE fxb_leases_reclaimed_total counter\nfxb_leases_reclaimed_total %llu\n",
	    (unsigned long long)b->metrics.reclaimed_total);
	fprintf(f, "# HELP fxb_ports Ports of the pool by state.\n# TYPE fxb_ports gauge\n"
	    "fxb_ports{state=\"free\"} %zu\nfxb_ports{state=\"leased\"} %zu\n"
	    "fxb_ports{state=\"quarantined\"} %zu\n", pc.free, pc.leased, pc.quarantined);
	fprintf(f, "# HELP fxb_ports_skipped_busy_total Grants that passed over a port bound by "
	    "something else.\n# TYPE fxb_ports_skipped_busy_total counter\n"
	    "fxb_ports_skipped_busy_total %llu\n", (unsigned long long)pc.skipped_busy);
	fprintf(f, "# HELP fxb_ports_skipped_other_broker_total Grants that passed over a port "
	    "another broker on this host holds.\n# TYPE fxb_ports_skipped_other_broker_total counter\n"
	    "fxb_ports_skipped_other_broker_total %llu\n", (unsigned long long)pc.skipped_other);

	fprintf(f, "# HELP fxb_rpc_calls_total JSON-RPC calls by method.\n"
	    "# TYPE fxb_rpc_calls_total counter\n");
	for (size_t i = 0; i < nm && i < METRICS_MAX_METHODS; i++)
		fprintf(f, "fxb_rpc_calls_total{method=\"%s\"} %llu\n", rpc_methods[i].name,
		    (unsigned long long)b->metrics.calls[i]);
	fprintf(f, "fxb_rpc_calls_total{method=\"(unknown)\"} %llu\n",
	    (unsigned long long)b->metrics.calls[METRICS_MAX_METHODS]);
	fprintf(f, "# HELP fxb_rpc_errors_total JSON-RPC calls answered with an error, by method.\n"
	    "# TYPE fxb_rpc_errors_total counter\n");
	for (size_t i = 0; i < nm && i < METRICS_MAX_METHODS; i++)
		fprintf(f, "fxb_rpc_errors_total{method=\"%s\"} %llu\n", rpc_methods[i].name,
		    (unsigned long long)b->metrics.errors[i]);
	fprintf(f, "fxb_rpc_errors_total{method=\"(unknown)\"} %llu\n",
	    (unsigned long long)b->metrics.errors[METRICS_MAX_METHODS]);

	fprintf(f, "# HELP fxb_lease_acquire_seconds Time from an acquire's arrival to its grant, "
	    "waiting included.\n# TYPE fxb_lease_acquire_seconds histogram\n");
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cumulative += b->metrics.acquire_seconds.counts[i];
		fprintf(f, "fxb_lease_acquire_seconds_bucket{le=\"%g\"} %llu\n", metrics_buckets[i],
		    (unsigned long long)cumulative);
	}
	fprintf(f, "fxb_lease_acquire_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "fxb_lease_acquire_seconds_sum %.6f\nfxb_lease_acquire_seconds_count %llu\n",
	    (unsigned long long)b->metrics.acquire_seconds.count,
	    b->metrics.acquire_seconds.sum_seconds,
	    (unsigned long long)b->metrics.acquire_seconds.count);
	pg_metrics(b->pg, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
