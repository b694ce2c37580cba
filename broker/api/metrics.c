/* metrics.c: what the broker reports of itself: GET /metrics in Prometheus text format
 * (version 0.0.4), and the broker.status result, also served as GET /status.
 *
 * A reader only: gauges are read from the live state at scrape time, and counters and
 * histograms from the modules that see the events (sessions, leases, rpc, pg).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/admin.h"
#include "api/metrics.h"
#include "broker.h"
#include "core/clock.h"
#include "fixtures/pg/pg.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/upstream.h"
#include "ports/ports.h"
#include "rpc/rpc.h"
#include "tenant/tenant.h"
#include "util/histogram.h"

char *
metrics_render(struct broker *b, size_t *len)
{
	struct ports_counts pc;
	struct leases_stats ls;
	size_t connected = sessions_connected(b->sessions), nm = rpc_method_count(b->rpc);
	size_t in_grace = sessions_count(b->sessions) - connected;
	uint64_t calls, errors, left;
	int draining = loop_draining(b, &left);
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	ports_counts(b->ports, now_ms(), &pc);
	leases_stats(b->leases, &ls);

	fprintf(f, "# HELP fxb_info The broker's version and instance.\n# TYPE fxb_info gauge\n"
	    "fxb_info{version=\"%s\",instance=\"%s\"} 1\n", FXB_VERSION_STR, b->instance);
	fprintf(f, "# HELP fxb_uptime_seconds Seconds since the broker started.\n"
	    "# TYPE fxb_uptime_seconds gauge\nfxb_uptime_seconds %.3f\n",
	    (double)(now_ms() - b->started_ms) / 1000.0);
	fprintf(f, "# HELP fxb_draining 1 while the broker drains or shuts down: it takes no new "
	    "sessions.\n# TYPE fxb_draining gauge\nfxb_draining %d\n", draining);
	fprintf(f, "# HELP fxb_drain_remaining_seconds Time left before a drain releases the leases "
	    "still held (0 when not draining).\n# TYPE fxb_drain_remaining_seconds gauge\n"
	    "fxb_drain_remaining_seconds %.3f\n", (double)left / 1000.0);
	fprintf(f, "# HELP fxb_connections_refused_draining_total WebSocket connections refused "
	    "with 503 because the broker drains or shuts down.\n"
	    "# TYPE fxb_connections_refused_draining_total counter\n"
	    "fxb_connections_refused_draining_total %llu\n", (unsigned long long)loop_refused(b));
	fprintf(f, "# HELP fxb_sessions_active Sessions with a live connection.\n"
	    "# TYPE fxb_sessions_active gauge\nfxb_sessions_active %zu\n", connected);
	fprintf(f, "# HELP fxb_sessions_in_grace Disconnected sessions that may still resume.\n"
	    "# TYPE fxb_sessions_in_grace gauge\nfxb_sessions_in_grace %zu\n", in_grace);
	fprintf(f, "# HELP fxb_sessions_total Sessions opened.\n# TYPE fxb_sessions_total counter\n"
	    "fxb_sessions_total %llu\n", (unsigned long long)sessions_opened(b->sessions));
	fprintf(f, "# HELP fxb_leases_active Leases held.\n# TYPE fxb_leases_active gauge\n"
	    "fxb_leases_active %zu\n", leases_active(b->leases));
	fprintf(f, "# HELP fxb_leases_waiting Acquires queued for room.\n"
	    "# TYPE fxb_leases_waiting gauge\nfxb_leases_waiting %zu\n", leases_waiting(b->leases));
	fprintf(f, "# HELP fxb_leases_total Leases granted.\n# TYPE fxb_leases_total counter\n"
	    "fxb_leases_total %llu\n", (unsigned long long)ls.granted);
	fprintf(f, "# HELP fxb_leases_reclaimed_total Leases released because their session ended.\n"
	    "# TYPE fxb_leases_reclaimed_total counter\nfxb_leases_reclaimed_total %llu\n",
	    (unsigned long long)ls.reclaimed);
	if (b->upstream)
		fprintf(f, "# HELP fxb_upstream_up 1 while the session with the upstream broker is up.\n"
		    "# TYPE fxb_upstream_up gauge\nfxb_upstream_up{state=\"%s\"} %d\n",
		    upstream_state(b->upstream), !strcmp(upstream_state(b->upstream), "up"));
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
	for (size_t i = 0; i <= nm; i++) {
		rpc_method_stats(b->rpc, i, &calls, &errors);
		fprintf(f, "fxb_rpc_calls_total{method=\"%s\"} %llu\n", rpc_method_name(b->rpc, i),
		    (unsigned long long)calls);
	}
	fprintf(f, "# HELP fxb_rpc_errors_total JSON-RPC calls answered with an error, by method.\n"
	    "# TYPE fxb_rpc_errors_total counter\n");
	for (size_t i = 0; i <= nm; i++) {
		rpc_method_stats(b->rpc, i, &calls, &errors);
		fprintf(f, "fxb_rpc_errors_total{method=\"%s\"} %llu\n", rpc_method_name(b->rpc, i),
		    (unsigned long long)errors);
	}

	fprintf(f, "# HELP fxb_lease_acquire_seconds Time from an acquire's arrival to its grant, "
	    "waiting included.\n# TYPE fxb_lease_acquire_seconds histogram\n");
	histogram_write(f, "fxb_lease_acquire_seconds", "", ls.acquire_seconds);
	pg_metrics(b->pg, f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

json_t *
metrics_status_json(struct broker *b)
{
	struct ports_counts pc;
	size_t connected = sessions_connected(b->sessions);
	uint64_t now = now_ms(), left;
	int draining = loop_draining(b, &left);

	ports_counts(b->ports, now, &pc);
	return json_pack("{s:s, s:s, s:I, s:b, s:b, s:o, s:I, s:I, s:I, s:I, "
	    "s:{s:i, s:i, s:I, s:I, s:I, s:I}, s:o*}",
	    "version", FXB_VERSION_STR, "instance", b->instance,
	    "uptime_ms", (json_int_t)(now - b->started_ms), "shutting_down", leases_draining(b->leases),
	    "draining", draining,
	    "drain_remaining_ms", draining ? json_integer((json_int_t)left) : json_null(),
	    "sessions", (json_int_t)connected,
	    "sessions_in_grace", (json_int_t)(sessions_count(b->sessions) - connected),
	    "leases", (json_int_t)leases_active(b->leases),
	    "waiting", (json_int_t)leases_waiting(b->leases),
	    "ports", "first", b->cfg.ports_first, "last", b->cfg.ports_last,
	    "size", (json_int_t)pc.size, "free", (json_int_t)pc.free,
	    "leased", (json_int_t)pc.leased, "quarantined", (json_int_t)pc.quarantined,
	    "upstream", b->upstream ? upstream_json(b->upstream) : NULL);
}

/* A 401 body for a request without a valid token on a broker that requires one. */
static char *
refused(int *status, size_t *len)
{
	char *body = strdup("{\"message\":\"unauthenticated: send Authorization: Bearer <token>\"}\n");

	*status = 401;
	*len = body ? strlen(body) : 0;
	return body;
}

/* Per-tenant gauges, for admin tokens. */
static void
tenant_metrics(struct broker *b, FILE *f)
{
	fprintf(f, "# HELP fxb_tenant_used What a tenant holds, by quota.\n"
	    "# TYPE fxb_tenant_used gauge\n");
	for (const struct tenant *t = tenants_first(b->tenants); t; t = t->next)
		for (int q = 0; q < QUOTA_COUNT; q++)
			fprintf(f, "fxb_tenant_used{tenant=\"%s\",quota=\"%s\"} %lld\n", t->name,
			    quota_name((enum quota)q), (long long)t->used[q]);
	fprintf(f, "# HELP fxb_tenant_limit A tenant's quota (absent: none).\n"
	    "# TYPE fxb_tenant_limit gauge\n");
	for (const struct tenant *t = tenants_first(b->tenants); t; t = t->next)
		for (int q = 0; q < QUOTA_COUNT; q++)
			if (t->limit[q] >= 0)
				fprintf(f, "fxb_tenant_limit{tenant=\"%s\",quota=\"%s\"} %lld\n", t->name,
				    quota_name((enum quota)q), (long long)t->limit[q]);
}

/* Readiness: 503 from the drain's first moment, so a load balancer sends no new worker. */
/* Readiness: 503 from the moment a drain starts, so a load balancer sends new workers
 * elsewhere. With an upstream, its state too; the broker serves ports and its own servers
 * either way, so it stays ready (200) while the upstream is away. */
static char *
get_healthz(struct broker *b, const char *auth, int *status, size_t *len)
{
	uint64_t left;
	int draining = loop_draining(b, &left);
	char remaining[48] = "", up[64] = "";
	char *body = NULL;

	(void)auth;
	if (draining)
		snprintf(remaining, sizeof remaining, ",\"remaining_ms\":%llu", (unsigned long long)left);
	if (b->upstream)
		snprintf(up, sizeof up, ",\"upstream\":\"%s\"", upstream_state(b->upstream));
	if (asprintf(&body, "{\"status\":\"%s\"%s%s}\n", draining ? "draining" : "ok", remaining,
	    up) == -1)
		body = NULL;
	*status = draining ? 503 : 200;
	*len = body ? strlen(body) : 0;
	return body;
}

/* Liveness: 200 while the process serves HTTP at all, draining included, so an
 * orchestrator does not kill a broker that is letting its jobs finish. */
static char *
get_livez(struct broker *b, const char *auth, int *status, size_t *len)
{
	uint64_t left;
	int draining = loop_draining(b, &left);
	char *body = strdup(draining ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ok\"}\n");

	(void)auth;
	*status = 200;
	*len = body ? strlen(body) : 0;
	return body;
}

static char *
get_metrics(struct broker *b, const char *auth, int *status, size_t *len)
{
	char *text, *more = NULL, *joined;
	size_t tlen, mlen = 0;
	FILE *f;
	int admin;

	if (admin_http_access(b, auth, &admin) == -1)
		return refused(status, len);
	*status = 200;
	if (!(text = metrics_render(b, &tlen)) || !admin || !b->need_token) {
		*len = tlen;
		return text;
	}
	if (!(f = open_memstream(&more, &mlen))) {
		*len = tlen;
		return text;
	}
	tenant_metrics(b, f);
	fclose(f);
	if ((joined = realloc(text, tlen + mlen + 1))) {
		memcpy(joined + tlen, more, mlen + 1);
		text = joined;
		tlen += mlen;
	}
	free(more);
	*len = tlen;
	return text;
}

static char *
get_status(struct broker *b, const char *auth, int *status, size_t *len)
{
	json_t *st;
	char *body, *nl;
	int admin;

	if (admin_http_access(b, auth, &admin) == -1)
		return refused(status, len);
	st = metrics_status_json(b);
	if (st && admin)
		json_object_update_new(st, admin_view_json(b));
	body = st ? json_dumps(st, JSON_INDENT(2)) : NULL;

	json_decref(st);
	if (body && (nl = realloc(body, strlen(body) + 2)))
		body = strcat(nl, "\n");
	*status = 200;
	*len = body ? strlen(body) : 0;
	return body;
}

extern const char status_page_html[], status_page_js[], status_page_css[];

/* The status page's files: static, they hold no data (the script reads /status). */
static char *
page_file(const char *text, int *status, size_t *len)
{
	char *body = strdup(text);

	*status = 200;
	*len = body ? strlen(body) : 0;
	return body;
}

static char *
get_page(struct broker *b, const char *auth, int *status, size_t *len)
{
	(void)b;
	(void)auth;
	return page_file(status_page_html, status, len);
}

static char *
get_page_js(struct broker *b, const char *auth, int *status, size_t *len)
{
	(void)b;
	(void)auth;
	return page_file(status_page_js, status, len);
}

static char *
get_page_css(struct broker *b, const char *auth, int *status, size_t *len)
{
	(void)b;
	(void)auth;
	return page_file(status_page_css, status, len);
}

const struct http_route metrics_routes[] = {
	{ "/healthz", "application/json", get_healthz },
	{ "/livez", "application/json", get_livez },
	{ "/metrics", "text/plain; version=0.0.4; charset=utf-8", get_metrics },
	{ "/status", "application/json", get_status },
	{ "/", "text/html; charset=utf-8", get_page },
	{ "/status.js", "text/javascript; charset=utf-8", get_page_js },
	{ "/status.css", "text/css; charset=utf-8", get_page_css },
	{ NULL, NULL, NULL },
};
