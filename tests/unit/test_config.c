/* test_config.c: defaults, the JSON file, flags over the file, errors naming their key. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

static const char *
write_file(const char *text)
{
	static const char path[] = "/tmp/fxb-test-config.json";
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

static int
parse(struct config *cfg, struct fxb_error *err, int argc, char **argv)
{
	config_defaults(cfg);
	return config_parse_args(cfg, argc, argv, err);
}

Test(config, works_with_no_file_and_no_flags)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	char *argv[] = { "fixture-broker", NULL };

	cr_assert_eq(parse(&cfg, &err, 1, argv), 0);
	cr_assert_str_eq(cfg.listen_host, "127.0.0.1");
	cr_assert_eq(cfg.listen_port, 7357);
	cr_assert_eq(cfg.ports_first, 15000);
	cr_assert_eq(cfg.ports_last, 24999);
	cr_assert_eq(cfg.grace_ms, 5000);
	cr_assert_eq(cfg.max_message_bytes, 1024 * 1024);
}

Test(config, lets_flags_win_over_the_file_wherever_config_stands)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	const char *path = write_file("{\"listen\": \"127.0.0.1:9000\", \"grace_ms\": 100,"
	    " \"ports\": {\"range\": \"16000-16099\", \"quarantine_ms\": 50}}");
	char *argv[] = { "fixture-broker", "--grace-ms", "7", "--config", (char *)path, NULL };

	cr_assert_eq(parse(&cfg, &err, 5, argv), 0, "%s", err.text);
	cr_assert_eq(cfg.grace_ms, 7, "the flag wins");
	cr_assert_eq(cfg.listen_port, 9000, "the file sets what no flag does");
	cr_assert_eq(cfg.ports_first, 16000);
	cr_assert_eq(cfg.ports_last, 16099);
	cr_assert_eq(cfg.quarantine_ms, 50);
}

Test(config, reads_the_portserver_socket_from_a_flag_and_its_ttl_from_the_file)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	const char *path = write_file("{\"portserver\": {\"socket\": \"/tmp/x.sock\","
	    " \"lease_ttl_ms\": 2500}}");
	char *argv[] = { "fixture-broker", "--config", (char *)path, "--portserver", "@ps", NULL };
	char *bad[] = { "fixture-broker", "--config", NULL, NULL };

	cr_assert_eq(parse(&cfg, &err, 5, argv), 0, "%s", err.text);
	cr_assert_str_eq(cfg.portserver_socket, "@ps", "the flag wins");
	cr_assert_eq(cfg.portserver_ttl_ms, 2500);
	bad[2] = (char *)write_file("{\"portserver\": {\"lease_ttl_ms\": -1}}");
	cr_assert_eq(parse(&cfg, &err, 3, bad), -1);
	cr_assert(strstr(err.text, "portserver.lease_ttl_ms") != NULL, "%s", err.text);
	error_clear(&err);
}

Test(config, reads_the_integresql_section_with_a_boolean_and_the_flag_enables_it)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	char *none[] = { "fixture-broker", NULL };
	char *flag[] = { "fixture-broker", "--integresql", NULL };
	char *file[] = { "fixture-broker", "--config", NULL, NULL };

	cr_assert_eq(parse(&cfg, &err, 1, none), 0, "%s", err.text);
	cr_assert_eq(cfg.integresql_enabled, 0, "off unless asked for");
	cr_assert_eq(cfg.integresql_ttl_ms, 600000);
	cr_assert_eq(cfg.integresql_wait_ms, 60000);
	cr_assert_eq(parse(&cfg, &err, 2, flag), 0, "%s", err.text);
	cr_assert_eq(cfg.integresql_enabled, 1);
	file[2] = (char *)write_file("{\"integresql\": {\"enabled\": true, \"lease_ttl_ms\": 0,"
	    " \"wait_ms\": 250}}");
	cr_assert_eq(parse(&cfg, &err, 3, file), 0, "%s", err.text);
	cr_assert_eq(cfg.integresql_enabled, 1);
	cr_assert_eq(cfg.integresql_ttl_ms, 0, "0: no TTL");
	cr_assert_eq(cfg.integresql_wait_ms, 250);
	file[2] = (char *)write_file("{\"integresql\": {\"enabled\": false}}");
	cr_assert_eq(parse(&cfg, &err, 3, file), 0, "%s", err.text);
	cr_assert_eq(cfg.integresql_enabled, 0);
	file[2] = (char *)write_file("{\"integresql\": {\"enabled\": \"yes\"}}");
	cr_assert_eq(parse(&cfg, &err, 3, file), -1);
	cr_assert(strstr(err.text, "integresql.enabled") != NULL, "%s", err.text);
	error_clear(&err);
	file[2] = (char *)write_file("{\"integresql\": {\"lease_ttl_ms\": -1}}");
	cr_assert_eq(parse(&cfg, &err, 3, file), -1);
	cr_assert(strstr(err.text, "integresql.lease_ttl_ms") != NULL, "%s", err.text);
	error_clear(&err);
}

Test(config, names_the_key_of_an_invalid_value)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	const char *path = write_file("{\"ports\": {\"quarantine_ms\": \"soon\"}}");
	char *file[] = { "fixture-broker", "--config", (char *)path, NULL };
	char *flag[] = { "fixture-broker", "--grace-ms", "-5", NULL };
	char *unknown[] = { "fixture-broker", "--config", NULL, NULL };

	cr_assert_eq(parse(&cfg, &err, 3, file), -1);
	cr_assert(strstr(err.text, "ports.quarantine_ms") != NULL, "%s", err.text);
	error_clear(&err);
	cr_assert_eq(parse(&cfg, &err, 3, flag), -1);
	cr_assert(strstr(err.text, "grace_ms") != NULL, "%s", err.text);
	error_clear(&err);
	unknown[2] = (char *)write_file("{\"ports\": {\"rnage\": \"1-2\"}}");
	cr_assert_eq(parse(&cfg, &err, 3, unknown), -1);
	cr_assert(strstr(err.text, "ports.rnage") != NULL, "a typo is an error: %s", err.text);
	error_clear(&err);
	unknown[2] = (char *)write_file("{\"listen\": ");
	cr_assert_eq(parse(&cfg, &err, 3, unknown), -1, "a file that is not JSON");
	error_clear(&err);
}

Test(config, drains_for_five_minutes_unless_told_otherwise_and_a_later_flag_wins)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	const char *path = write_file("{\"drain_timeout_ms\": 60000}");
	char *none[] = { "fixture-broker", NULL };
	char *file[] = { "fixture-broker", "--config", (char *)path, NULL };
	/* The SDKs start their brokers with --drain-timeout-ms 0 first; a caller's own flag
	 * after it wins. */
	char *twice[] = { "fixture-broker", "--drain-timeout-ms", "0", "--drain-timeout-ms", "2500",
		NULL };
	char *bad[] = { "fixture-broker", "--drain-timeout-ms", "86400001", NULL };

	cr_assert_eq(parse(&cfg, &err, 1, none), 0, "%s", err.text);
	cr_assert_eq(cfg.drain_timeout_ms, 300000);
	cr_assert_eq(parse(&cfg, &err, 3, file), 0, "%s", err.text);
	cr_assert_eq(cfg.drain_timeout_ms, 60000);
	cr_assert_eq(parse(&cfg, &err, 5, twice), 0, "%s", err.text);
	cr_assert_eq(cfg.drain_timeout_ms, 2500);
	cr_assert_eq(parse(&cfg, &err, 3, bad), -1);
	cr_assert(strstr(err.text, "drain_timeout_ms") != NULL, "%s", err.text);
	error_clear(&err);
}

Test(config, parses_listen_addresses)
{
	struct fxb_error err = { 0 };
	struct config cfg;

	config_defaults(&cfg);
	cr_assert_eq(config_parse_listen(&cfg, "listen", "[::1]:0", &err), 0);
	cr_assert_str_eq(cfg.listen_host, "::1");
	cr_assert_eq(cfg.listen_port, 0);
	cr_assert_eq(config_parse_listen(&cfg, "listen", "0.0.0.0:7357", &err), 0);
	cr_assert_str_eq(cfg.listen_host, "0.0.0.0");
	cr_assert_eq(config_parse_listen(&cfg, "listen", "7357", &err), -1);
	cr_assert(strstr(err.text, "listen") != NULL);
	error_clear(&err);
	cr_assert_eq(config_parse_listen(&cfg, "listen", "h:70000", &err), -1);
	error_clear(&err);
}

Test(config, anchors_template_directories_at_the_configuration_file)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	char *argv[] = { "fixture-broker", "--config", "/tmp/fxb-test-anchor/conf/broker.json", NULL };
	FILE *f;

	(void)!system("mkdir -p /tmp/fxb-test-anchor/conf");
	f = fopen(argv[2], "w");
	cr_assert_not_null(f);
	fputs("{\"servers\": {\"api\": {\"command\": [\"node\", \"app.js\"]},"
	    " \"abs\": {\"command\": [\"x\"], \"cwd\": \"/srv\"}},"
	    " \"postgres\": {\"templates\": {\"app\": {\"migrate\": [\"m\"], \"cwd\": \"db\"}}}}", f);
	fclose(f);
	cr_assert_eq(parse(&cfg, &err, 3, argv), 0, "%s", err.text);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg.servers, "api"), "cwd")),
	    "/tmp/fxb-test-anchor/conf", "no cwd: the file's directory");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg.servers, "abs"), "cwd")),
	    "/srv", "an absolute cwd stays");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
	    cfg.postgres, "templates"), "app"), "cwd")), "/tmp/fxb-test-anchor/conf/db",
	    "a relative cwd: below the file's directory");
	config_clear(&cfg);
}

Test(config, takes_the_upstream_from_the_file_the_environment_and_flags_in_that_order)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	const char *path = write_file("{\"upstream\": \"ws://file.example:7357\", "
	    "\"upstream_ca\": \"/etc/ca.pem\"}");
	char *file_only[] = { "fixture-broker", "--config", (char *)path, NULL };
	char *with_flag[] = { "fixture-broker", "--upstream", "wss://flag.example:7357", "--config",
		(char *)path, NULL };

	unsetenv("FIXTURE_BROKER_UPSTREAM");
	unsetenv("FIXTURE_BROKER_UPSTREAM_CA");
	unsetenv("FIXTURE_BROKER_CA");
	cr_assert_eq(parse(&cfg, &err, 3, file_only), 0, "%s", err.text);
	cr_assert_str_eq(cfg.upstream, "ws://file.example:7357");
	cr_assert_str_eq(cfg.upstream_ca, "/etc/ca.pem");
	setenv("FIXTURE_BROKER_UPSTREAM", "wss://env.example:7357", 1);
	setenv("FIXTURE_BROKER_UPSTREAM_TOKEN", "tok-env", 1);
	setenv("FIXTURE_BROKER_CA", "/etc/sdk-ca.pem", 1);
	cr_assert_eq(parse(&cfg, &err, 3, file_only), 0, "%s", err.text);
	cr_assert_str_eq(cfg.upstream, "wss://env.example:7357");
	cr_assert_str_eq(cfg.upstream_token, "tok-env");
	cr_assert_str_eq(cfg.upstream_ca, "/etc/sdk-ca.pem");
	cr_assert_eq(parse(&cfg, &err, 5, with_flag), 0, "%s", err.text);
	cr_assert_str_eq(cfg.upstream, "wss://flag.example:7357");
	unsetenv("FIXTURE_BROKER_UPSTREAM");
	unsetenv("FIXTURE_BROKER_UPSTREAM_TOKEN");
	unsetenv("FIXTURE_BROKER_CA");
}

Test(config, refuses_an_upstream_that_is_not_a_websocket_url)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	char *http[] = { "fixture-broker", "--upstream", "http://x.example", NULL };
	char *bare[] = { "fixture-broker", "--upstream", "wss://", NULL };
	char *half_cert[] = { "fixture-broker", "--upstream-cert", "/etc/c.pem", NULL };

	cr_assert_eq(parse(&cfg, &err, 3, http), -1);
	cr_assert(strstr(err.text, "upstream: expected a ws:// or wss:// URL"), "%s", err.text);
	error_clear(&err);
	cr_assert_eq(parse(&cfg, &err, 3, bare), -1);
	cr_assert(strstr(err.text, "upstream:"), "%s", err.text);
	error_clear(&err);
	setenv("FIXTURE_BROKER_UPSTREAM", "tcp://env.example", 1);
	cr_assert_eq(parse(&cfg, &err, 1, http), -1);
	cr_assert(strstr(err.text, "FIXTURE_BROKER_UPSTREAM: upstream:"), "%s", err.text);
	unsetenv("FIXTURE_BROKER_UPSTREAM");
	error_clear(&err);
	cr_assert_eq(parse(&cfg, &err, 3, half_cert), -1);
	cr_assert(strstr(err.text, "upstream_key"), "%s", err.text);
}
