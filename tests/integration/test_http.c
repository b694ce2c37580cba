/* test_http.c: the HTTP routes on the broker's port: /healthz, /metrics, /status, 404.
 *
 * The brokers here lease from 26700-26709 and keep released ports in quarantine for a
 * minute, so the quarantined count can be seen.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

static struct test_broker tb;

static void setup(void)
{
	BROKER_START(&tb, "--ports", "26700-26709", "--port-quarantine-ms", "60000");
}

static void teardown(void)
{
	test_broker_kill(&tb);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 60);

/* The value of the sample named exactly series ("name" or "name{labels}") in Prometheus
 * text, or -1 when there is none. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *eol = strchr(line, '\n');

		if (line[0] != '#' && strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = eol != NULL ? eol + 1 : NULL;
	}
	return -1;
}

static char *get_metrics(void)
{
	char *body = NULL;

	cr_assert_eq(http_get(tb.port, "/metrics", &body), 200);
	cr_assert_not_null(body);
	return body;
}

Test(http, healthz_answers_200_ok)
{
	char *body = NULL;

	cr_assert_eq(http_get(tb.port, "/healthz", &body), 200);
	cr_assert_not_null(strstr(body, "ok"), "body: %s", body);
	free(body);
}

Test(http, an_unknown_path_is_404)
{
	cr_assert_eq(http_get(tb.port, "/no/such/page", NULL), 404);
	cr_assert_eq(http_get(tb.port, "/statusx", NULL), 404);
	/* The broker goes on. */
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200);
}

Test(http, metrics_name_every_metric)
{
	static const char *const names[] = {
		"fxb_sessions_active", "fxb_leases_active", "fxb_ports{state=\"free\"}",
		"fxb_ports{state=\"leased\"}", "fxb_ports{state=\"quarantined\"}",
		"fxb_lease_acquire_seconds_bucket", "fxb_lease_acquire_seconds_sum",
		"fxb_lease_acquire_seconds_count", "fxb_rpc_calls_total{method=",
		"fxb_rpc_errors_total{method=",
	};
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	char *body;

	/* One call and one error, so the labelled counters have a sample each. */
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_call(c, "lease.renew", "{\"lease\": \"l-none\"}", NULL), FXB_EBROKER);
	body = get_metrics();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		cr_assert_not_null(strstr(body, names[i]), "/metrics lacks %s:\n%s", names[i], body);
	cr_assert_eq(metric(body, "fxb_sessions_active"), 1, "\n%s", body);
	cr_assert_eq(metric(body, "fxb_leases_active"), 1, "\n%s", body);
	cr_assert_eq(metric(body, "fxb_ports{state=\"leased\"}"), 1, "\n%s", body);
	cr_assert_eq(metric(body, "fxb_ports{state=\"free\"}"), 9, "\n%s", body);
	cr_assert(metric(body, "fxb_lease_acquire_seconds_count") >= 1, "\n%s", body);
	free(body);
	fxb_lease_free(l);
	fxb_client_free(c);
}

Test(http, metrics_count_the_calls_and_errors_a_client_makes)
{
	const char *calls = "fxb_rpc_calls_total{method=\"lease.list\"}";
	const char *errors = "fxb_rpc_errors_total{method=\"lease.renew\"}";
	struct raw_ws w;
	double calls0, errors0;
	char *body;

	body = get_metrics();
	calls0 = metric(body, calls);
	errors0 = metric(body, errors);
	free(body);
	calls0 = calls0 < 0 ? 0 : calls0;
	errors0 = errors0 < 0 ? 0 : errors0;

	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	for (int i = 0; i < 3; i++)
		json_decref(raw_rpc_call(&w, "lease.list", json_object()));
	json_decref(raw_rpc_call(&w, "lease.renew", json_pack("{s:s}", "lease", "l-none")));
	raw_ws_close(&w);

	body = get_metrics();
	cr_assert_eq(metric(body, calls), calls0 + 3, "three lease.list calls were not counted:\n%s",
	    body);
	cr_assert_eq(metric(body, errors), errors0 + 1, "a lease.renew error was not counted:\n%s",
	    body);
	free(body);
}

Test(http, status_is_json_with_the_port_counts)
{
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	json_t *st, *ports;

	st = test_broker_status(&tb);
	cr_assert_not_null(st, "/status is not JSON");
	ports = json_object_get(st, "ports");
	cr_assert_eq(json_integer_value(json_object_get(ports, "first")), 26700, "%s", json_dumps(st, 0));
	cr_assert_eq(json_integer_value(json_object_get(ports, "last")), 26709);
	cr_assert_eq(json_integer_value(json_object_get(ports, "size")), 10);
	cr_assert_eq(json_integer_value(json_object_get(ports, "free")), 10);
	cr_assert_eq(json_integer_value(json_object_get(ports, "leased")), 0);
	cr_assert_eq(json_integer_value(json_object_get(ports, "quarantined")), 0);
	cr_assert_str_eq(json_string_value(json_object_get(st, "version")), FXB_VERSION);
	json_decref(st);

	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(test_broker_ports(&tb, "leased"), 2);
	cr_assert_eq(test_broker_ports(&tb, "free"), 8);
	st = test_broker_status(&tb);
	cr_assert_eq(json_integer_value(json_object_get(st, "leases")), 1, "%s", json_dumps(st, 0));
	cr_assert_eq(json_integer_value(json_object_get(st, "sessions")), 1, "%s", json_dumps(st, 0));
	json_decref(st);

	cr_assert_eq(fxb_lease_release(c, l), 0);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	cr_assert_eq(test_broker_ports(&tb, "quarantined"), 2);
	cr_assert_eq(test_broker_ports(&tb, "free"), 8);
	fxb_client_free(c);
}

Test(http, status_matches_broker_status_over_json_rpc)
{
	struct raw_ws w;
	json_t *reply, *st;

	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	reply = raw_rpc_call(&w, "broker.status", json_object());
	st = test_broker_status(&tb);
	cr_assert_not_null(st);
	cr_assert(json_equal(json_object_get(raw_rpc_result(reply), "ports"),
		      json_object_get(st, "ports")),
	    "rpc: %s\nhttp: %s", json_dumps(reply, 0), json_dumps(st, 0));
	cr_assert_str_eq(json_string_value(json_object_get(raw_rpc_result(reply), "instance")),
	    json_string_value(json_object_get(st, "instance")));
	json_decref(st);
	json_decref(reply);
	raw_ws_close(&w);
}
