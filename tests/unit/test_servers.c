/* test_servers.c: server templates (configuration), output rings, and error_prefix().
 *
 * Drives template.h, ring.h and errors.h directly (error_prefix() is how the server kind
 * names the fixture in a spawn failure); the placeholder grammar has its own suite in
 * test_template.c, and the server kind itself, which needs real child processes and the
 * event loop, is tested in tests/integration/test_servers.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "fixtures/server/template.h"
#include "util/ring.h"

/* Parses text as a "servers" section; returns the templates or NULL with err. */
static struct templates *
parse(const char *text, struct fxb_error *err)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	struct templates *ts;

	cr_assert_not_null(j, "test JSON: %s", jerr.text);
	ts = templates_new(j, err);
	json_decref(j);
	return ts;
}

/* Asserts that text is refused with a message starting with want. */
static void
refused(const char *text, const char *want)
{
	struct fxb_error err = { 0 };
	struct templates *ts = parse(text, &err);

	cr_assert_null(ts, "accepted: %s", text);
	cr_assert_eq(err.code, ERR_INVALID_PARAMS);
	cr_assert(strncmp(err.text, want, strlen(want)) == 0, "expected \"%s\", got \"%s\"", want,
	    err.text);
	error_clear(&err);
}

Test(templates, a_minimal_template_gets_the_documented_defaults)
{
	struct fxb_error err = { 0 };
	struct templates *ts = parse("{\"api\": {\"command\": [\"srv\", \"{port}\"]}}", &err);
	const struct server_template *t;

	cr_assert_not_null(ts, "%s", err.text);
	t = templates_get(ts, "api");
	cr_assert_not_null(t);
	cr_assert_str_eq(t->argv[0], "srv");
	cr_assert_str_eq(t->argv[1], "{port}");
	cr_assert_null(t->argv[2]);
	cr_assert_eq(t->nports, 1);
	cr_assert_str_eq(t->ports[0], "main");
	cr_assert_eq(t->start_timeout_ms, 30000);
	cr_assert_eq(t->stop_grace_ms, 5000);
	cr_assert_eq(t->log_bytes, 65536);
	cr_assert_eq(t->socket_handoff, 0);
	cr_assert_eq(t->inherit_env, 0);
	cr_assert_eq(t->cgroup, 1);
	cr_assert_null(t->client_env[0]);
	/* No "ready": one tcp probe on the first port. */
	cr_assert_eq(t->nprobes, 1);
	cr_assert_eq(t->probes[0].type, PROBE_TCP);
	cr_assert_eq(t->probes[0].port, 0);
	cr_assert_null(templates_get(ts, "other"));
	templates_free(ts);
}

Test(templates, probes_are_parsed_with_their_settings)
{
	struct fxb_error err = { 0 };
	struct templates *ts = parse("{\"db\": {\"command\": [\"pg\"], \"ports\": [\"sql\", \"http\"],"
	    "\"ready\": [{\"type\": \"log\", \"regex\": \"ready$\", \"count\": 2, \"stream\": \"stderr\"},"
	    "{\"type\": \"http\", \"port\": \"http\", \"method\": \"HEAD\", \"path\": \"/up\", \"status\": 204},"
	    "{\"type\": \"exec\", \"command\": [\"pg_isready\", \"-p\", \"{ports.sql}\"], \"timeout_ms\": 900},"
	    "{\"type\": \"tcp\", \"port\": \"sql\"}]}}", &err);
	const struct server_template *t;

	cr_assert_not_null(ts, "%s", err.text);
	t = templates_get(ts, "db");
	cr_assert_eq(t->nprobes, 4);
	cr_assert_eq(t->probes[0].type, PROBE_LOG);
	cr_assert_eq(t->probes[0].count, 2);
	cr_assert_eq(t->probes[0].streams, STREAM_STDERR);
	cr_assert_eq(regexec(&t->probes[0].re, "database system is ready", 0, NULL, 0), 0);
	cr_assert_neq(regexec(&t->probes[0].re, "ready? not yet", 0, NULL, 0), 0);
	cr_assert_eq(t->probes[1].type, PROBE_HTTP);
	cr_assert_eq(t->probes[1].port, 1);
	cr_assert_str_eq(t->probes[1].method, "HEAD");
	cr_assert_str_eq(t->probes[1].path, "/up");
	cr_assert_eq(t->probes[1].status, 204);
	cr_assert_eq(t->probes[2].type, PROBE_EXEC);
	cr_assert_str_eq(t->probes[2].argv[2], "{ports.sql}");
	cr_assert_eq(t->probes[2].timeout_ms, 900);
	cr_assert_eq(t->probes[3].port, 0);
	templates_free(ts);
}

Test(templates, an_empty_ready_list_means_ready_once_started)
{
	struct fxb_error err = { 0 };
	struct templates *ts = parse("{\"w\": {\"command\": [\"worker\"], \"ports\": [], \"ready\": []}}",
	    &err);

	cr_assert_not_null(ts, "%s", err.text);
	cr_assert_eq(templates_get(ts, "w")->nprobes, 0);
	cr_assert_eq(templates_get(ts, "w")->nports, 0);
	templates_free(ts);
}

Test(templates, errors_name_the_key_at_fault)
{
	refused("[]", "servers: expected an object");
	refused("{\"api\": 1}", "servers.api: expected an object");
	refused("{\"a b\": {\"command\": [\"x\"]}}", "servers.a b: a template name is");
	refused("{\"api\": {}}", "servers.api.command: expected a non-empty array of strings");
	refused("{\"api\": {\"command\": []}}", "servers.api.command: expected a non-empty array");
	refused("{\"api\": {\"command\": [\"x\", 2]}}", "servers.api.command[1]: expected a string");
	refused("{\"api\": {\"command\": [\"x\"], \"comand\": 1}}", "servers.api.comand: unknown setting");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"http\", \"path\": 5}]}}",
	    "servers.api.ready[0].path: expected a string");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"http\", \"path\": \"up\"}]}}",
	    "servers.api.ready[0].path: expected a path starting with \"/\"");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"smtp\"}]}}",
	    "servers.api.ready[0].type: expected \"tcp\", \"http\", \"log\" or \"exec\"");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"tcp\", \"regex\": \"x\"}]}}",
	    "servers.api.ready[0].regex: unknown setting for a tcp probe");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"tcp\", \"port\": \"admin\"}]}}",
	    "servers.api.ready[0].port: expected the name of one of the template's ports");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"log\", \"regex\": \"(\"}]}}",
	    "servers.api.ready[0].regex: ");
	refused("{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"log\", \"regex\": \"r\", \"count\": 0}]}}",
	    "servers.api.ready[0].count: expected a whole number from 1 to 1000000");
	refused("{\"api\": {\"command\": [\"x\"], \"stop_grace_ms\": -1}}",
	    "servers.api.stop_grace_ms: expected a whole number from 0 to 600000");
	refused("{\"api\": {\"command\": [\"x\"], \"socket_handoff\": \"yes\"}}",
	    "servers.api.socket_handoff: expected true or false");
	refused("{\"api\": {\"command\": [\"x\"], \"ports\": [\"a\", \"a\"]}}",
	    "servers.api.ports[1]: \"a\" is listed twice");
	refused("{\"api\": {\"command\": [\"x\"], \"env\": {\"1X\": \"y\"}}}",
	    "servers.api.env.1X: not an environment variable name");
	refused("{\"api\": {\"command\": [\"x\"], \"env\": {\"LISTEN_PID\": \"1\"}}}",
	    "servers.api.env.LISTEN_PID: LISTEN_PID is set by the broker");
	refused("{\"api\": {\"command\": [\"x\"], \"client_env\": [\"FIXTURE_BROKER_PROCESS\"]}}",
	    "servers.api.client_env[0]: FIXTURE_BROKER_PROCESS is set by the broker");
	refused("{\"api\": {\"command\": [\"x\"], \"needs\": {\"db\": {\"template\": \"app\"}}}}",
	    "servers.api.needs.db: expected a fixture request with a \"kind\"");
	refused("{\"api\": {\"command\": [\"x\"], \"ports\": [], \"socket_handoff\": true}}",
	    "servers.api.socket_handoff: socket_handoff needs at least one port");
	refused("{\"api\": {\"command\": [\"x\"], \"socket_handoff\": true, \"ports\": [\"a\", \"b\","
	    " \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\", \"k\", \"l\", \"m\", \"n\", \"o\","
	    " \"p\", \"q\"]}}", "servers.api.socket_handoff: socket_handoff hands over at most 16 ports");
}

Test(ring, keeps_everything_until_full_then_the_last_bytes)
{
	struct ring r;
	size_t len;
	char *text;

	cr_assert_eq(ring_init(&r, 8), 0);
	ring_write(&r, "abc", 3);
	text = ring_tail(&r, 0, &len);
	cr_assert_str_eq(text, "abc");
	free(text);
	ring_write(&r, "defghij", 7); /* wraps: 10 bytes into 8 */
	text = ring_tail(&r, 0, &len);
	cr_assert_eq(len, 8);
	cr_assert_str_eq(text, "cdefghij");
	free(text);
	ring_write(&r, "0123456789xyz", 13); /* longer than the ring */
	text = ring_tail(&r, 0, &len);
	cr_assert_str_eq(text, "56789xyz");
	free(text);
	cr_assert_eq(r.total, 23);
	ring_close(&r);
}

Test(ring, tails_whole_lines)
{
	struct ring r;
	size_t len;
	char *text;

	cr_assert_eq(ring_init(&r, 64), 0);
	ring_write(&r, "one\ntwo\nthree\n", 14);
	text = ring_tail(&r, 1, &len);
	cr_assert_str_eq(text, "three\n");
	free(text);
	text = ring_tail(&r, 2, &len);
	cr_assert_str_eq(text, "two\nthree\n");
	free(text);
	text = ring_tail(&r, 10, &len);
	cr_assert_str_eq(text, "one\ntwo\nthree\n");
	free(text);
	ring_write(&r, "four", 4); /* an unfinished last line counts */
	text = ring_tail(&r, 2, &len);
	cr_assert_str_eq(text, "three\nfour");
	free(text);
	ring_close(&r);
}

Test(ring, output_becomes_valid_json_text)
{
	/* A cut multi-byte character, a stray byte, an overlong NUL and a surrogate. */
	static const char bad[] = "ok \xc3\xa9 \xa9 x\xc0\x80 \xed\xa0\x80 \xe2\x82";
	json_t *j = text_json(bad, sizeof bad - 1);
	char *dumped;

	cr_assert_not_null(j);
	dumped = json_dumps(j, JSON_ENCODE_ANY);
	cr_assert_not_null(dumped);
	cr_assert(strncmp(json_string_value(j), "ok \xc3\xa9 \xef\xbf\xbd x", 11) == 0, "%s", dumped);
	cr_assert_null(strstr(json_string_value(j), "\xc0"));
	cr_assert_null(strstr(json_string_value(j), "\xed\xa0"));
	free(dumped);
	json_decref(j);
}

Test(error_prefix, says_where_an_error_happened_and_keeps_its_code_and_data)
{
	struct fxb_error err = { 0 };
	json_t *data = json_pack("{s:s}", "stage", "exec");

	error_set_data(&err, ERR_SERVER_START_FAILED, data, "cannot start \"%s\": %s", "srv", "boom");
	error_prefix(&err, "fixtures.%s: ", "api");
	cr_assert_str_eq(err.text, "fixtures.api: cannot start \"srv\": boom");
	cr_assert_eq(err.code, ERR_SERVER_START_FAILED);
	cr_assert_eq(err.data, data);
	cr_assert_str_eq(json_string_value(json_object_get(err.data, "stage")), "exec");
	/* The arguments may be the error's own text. */
	error_prefix(&err, "[%.5s] ", err.text);
	cr_assert_str_eq(err.text, "[fixtu] fixtures.api: cannot start \"srv\": boom");
	error_clear(&err);
}

Test(error_prefix, cuts_a_result_that_does_not_fit_and_marks_the_cut)
{
	struct fxb_error err = { 0 };
	char want[sizeof err.text];

	/* 14 + 225 = 239 bytes fit exactly: nothing is marked. */
	error_set(&err, ERR_INTERNAL, "%0225d", 7);
	error_prefix(&err, "fixtures.%s: ", "api");
	cr_assert_eq(strlen(err.text), sizeof err.text - 1);
	snprintf(want, sizeof want, "fixtures.api: %0225d", 7);
	cr_assert_str_eq(err.text, want);
	error_clear(&err);

	/* One more byte: the last one kept becomes '.'. */
	error_set(&err, ERR_INTERNAL, "%0226d", 7);
	error_prefix(&err, "fixtures.%s: ", "api");
	cr_assert_eq(strlen(err.text), sizeof err.text - 1);
	cr_assert(strncmp(err.text, "fixtures.api: 0000", 18) == 0, "%s", err.text);
	cr_assert_eq(err.text[sizeof err.text - 2], '.');
	error_clear(&err);

	/* A prefix longer than the room leaves none of the old text. */
	error_set(&err, ERR_INTERNAL, "old");
	error_prefix(&err, "%0300d", 1);
	cr_assert_eq(strlen(err.text), sizeof err.text - 1);
	cr_assert_null(strstr(err.text, "old"));
	cr_assert_eq(err.text[sizeof err.text - 2], '.');
	error_clear(&err);
}

Test(error_prefix, leaves_a_struct_without_an_error_alone)
{
	struct fxb_error err = { 0 };

	error_prefix(&err, "fixtures.%s: ", "api");
	cr_assert_eq(err.code, ERR_NONE);
	cr_assert_str_eq(err.text, "");
	/* So the first error set afterwards is still kept whole. */
	error_set(&err, ERR_INTERNAL, "out of memory");
	cr_assert_str_eq(err.text, "out of memory");
}
