/* test_startup.c: the broker's command line: --version, --help, and the settings it refuses.
 *
 * A refused setting must stop the broker before it listens, with a non-zero exit and a
 * message naming the offending key, so every case here passes --listen 127.0.0.1:0: a
 * broker that wrongly starts is then caught by the run's timeout instead of taking the
 * default port.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

#define RUN_TIMEOUT_MS 10000

static char out[16384];

Test(startup, prints_its_version_and_exits_0)
{
	const char *const args[] = { "--version", NULL };

	cr_assert_eq(test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS), 0, "output: %s", out);
	cr_assert_not_null(strstr(out, FXB_VERSION), "no version in: %s", out);
}

Test(startup, prints_its_usage_and_exits_0)
{
	const char *const args[] = { "--help", NULL };

	cr_assert_eq(test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS), 0, "output: %s", out);
	cr_assert_not_null(strstr(out, "--listen"), "usage does not mention --listen: %s", out);
	cr_assert_not_null(strstr(out, "--ports"), "usage does not mention --ports: %s", out);
}

Test(startup, refuses_a_port_range_that_overlaps_the_ephemeral_range)
{
	/* Inside, straddling the low end and straddling the high end of a fake 26000-26999. */
	static const char *const ranges[] = { "26100-26199", "25990-26000", "26999-27010" };
	char eph[512];

	cr_assert_eq(temp_file(eph, sizeof(eph), "ephemeral", "26000\t26999\n"), 0);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		const char *const args[] = { "--listen", "127.0.0.1:0", "--ephemeral-range-file", eph,
			"--ports", ranges[i], NULL };
		int st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);

		cr_assert(st > 0, "--ports %s: exit status %d, output: %s", ranges[i], st, out);
		cr_assert_not_null(strstr(out, "ports.range"),
		    "--ports %s: the message does not name ports.range: %s", ranges[i], out);
	}
}

Test(startup, takes_the_ephemeral_range_from_the_file_it_is_given)
{
	/* A pool inside the kernel's real range, outside the fake one: the broker starts only
	 * if it reads the file instead of /proc. */
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	char eph[512], fake[64], range[32];
	int lo, hi, first, port;

	cr_assert_eq(ephemeral_range(&lo, &hi), 0);
	first = lo + 200;
	cr_assert(first + 9 < hi, "the kernel's ephemeral range %d-%d is too small", lo, hi);
	snprintf(fake, sizeof(fake), "%d %d\n", first + 10, 65535);
	snprintf(range, sizeof(range), "%d-%d", first, first + 9);
	cr_assert_eq(temp_file(eph, sizeof(eph), "ephemeral", fake), 0);
	BROKER_START(&tb, "--ephemeral-range-file", eph, "--ports", range);
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	port = test_lease_port(l, 0);
	cr_assert(port >= first && port <= first + 9, "port %d is outside %s", port, range);
	fxb_lease_release(c, l);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(startup, refuses_an_unreadable_ephemeral_range_file)
{
	const char *const args[] = { "--listen", "127.0.0.1:0", "--ephemeral-range-file",
		"/nonexistent/ip_local_port_range", "--ports", "30010-30019", NULL };
	int st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);

	cr_assert(st > 0, "exit status %d, output: %s", st, out);
	cr_assert_not_null(strstr(out, "ephemeral_range_file"), "the message does not name the key: %s",
	    out);
}

Test(startup, refuses_an_invalid_value_in_the_config_file_and_names_its_key)
{
	static const struct {
		const char *json, *key;
	} cases[] = {
		{ "{\"ports\": {\"quarantine_ms\": -5}}", "ports.quarantine_ms" },
		{ "{\"grace_ms\": \"soon\"}", "grace_ms" },
		{ "{\"max_message_bytes\": 10}", "max_message_bytes" },
		{ "{\"ports\": {\"range\": \"30100-30000\"}}", "ports.range" },
		{ "{\"no_such_setting\": 1}", "no_such_setting" },
	};
	char cfg[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const args[] = { "--listen", "127.0.0.1:0", "--config", cfg, NULL };
		int st;

		cr_assert_eq(temp_file(cfg, sizeof(cfg), "config.json", cases[i].json), 0);
		st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);
		cr_assert(st > 0, "config %s: exit status %d, output: %s", cases[i].json, st, out);
		cr_assert_not_null(strstr(out, cases[i].key), "config %s: the message does not name %s: %s",
		    cases[i].json, cases[i].key, out);
	}
}

Test(startup, refuses_a_config_file_that_is_not_json)
{
	char cfg[512];
	const char *const args[] = { "--listen", "127.0.0.1:0", "--config", cfg, NULL };
	int st;

	cr_assert_eq(temp_file(cfg, sizeof(cfg), "config.json", "{\"grace_ms\": 5,"), 0);
	st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);
	cr_assert(st > 0, "exit status %d, output: %s", st, out);
	cr_assert_not_null(strstr(out, cfg), "the message does not name the file: %s", out);
}

Test(startup, refuses_an_invalid_flag_value_and_names_its_key)
{
	static const char *const cases[][3] = {
		{ "--grace-ms", "abc", "grace_ms" },
		{ "--port-quarantine-ms", "-1", "ports.quarantine_ms" },
		{ "--ports", "30200", "ports.range" },
		{ "--log-level", "loud", "log_level" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const args[] = { "--listen", "127.0.0.1:0", cases[i][0], cases[i][1], NULL };
		int st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);

		cr_assert(st > 0, "%s %s: exit status %d, output: %s", cases[i][0], cases[i][1], st, out);
		cr_assert_not_null(strstr(out, cases[i][2]), "%s %s: the message does not name %s: %s",
		    cases[i][0], cases[i][1], cases[i][2], out);
	}
}

Test(startup, serves_on_the_port_its_listening_line_announces_and_prints_nothing_else)
{
	struct test_broker tb;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;

	BROKER_START(&tb, "--ports", "30020-30029");
	cr_assert(tb.port > 0 && tb.port <= 65535);
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200, "the announced port does not serve");
	/* Some work that logs, then a shutdown: all of it goes to stderr. */
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	fxb_lease_free(l);
	fxb_client_free(c);
	BROKER_STOP(&tb);
	cr_assert_eq(tb.stdout_extra, 0, "the broker wrote %zu more bytes to stdout; see %s",
	    tb.stdout_extra, tb.log);
}

/* The local address the listening socket on port is bound to, from /proc/net/tcp and
 * tcp6 ("0100007F" is 127.0.0.1, 32 zeros in tcp6 every address), into addr. Returns 0, or
 * -1 when no socket listens there. */
static int
listen_address(int port, char *addr, size_t len)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512], local[64];
	unsigned lport, state;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*s %x", local, &lport, &state) == 3 &&
			    (int)lport == port && state == 0x0A) {
				snprintf(addr, len, "%s", local);
				fclose(f);
				return 0;
			}
		fclose(f);
	}
	return -1;
}

Test(startup, a_loopback_address_listens_on_loopback_only)
{
	/* "localhost" too: an address lws cannot bind must not quietly widen to every one. */
	static const char *const hosts[] = { "127.0.0.1:0", "localhost:0" };
	struct test_broker tb;
	char addr[64];

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		BROKER_START(&tb, "--listen", hosts[i], "--ports", "30030-30039");
		cr_assert_eq(listen_address(tb.port, addr, sizeof(addr)), 0, "%s: no listener on %d",
		    hosts[i], tb.port);
		cr_assert_str_eq(addr, "0100007F", "--listen %s listens on %s, not 127.0.0.1 alone",
		    hosts[i], addr);
		BROKER_STOP(&tb);
	}
}

Test(startup, refuses_an_address_it_cannot_listen_on)
{
	/* 192.0.2.1 (TEST-NET-1) is no address of this host. */
	const char *const args[] = { "--listen", "192.0.2.1:0", NULL };
	int st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);

	cr_assert(st > 0, "exit status %d, output: %s", st, out);
	cr_assert_not_null(strstr(out, "cannot listen on 192.0.2.1"), "output: %s", out);
	cr_assert_null(strstr(out, "listening ws://"), "it said it listens: %s", out);
}

Test(startup, refuses_an_advertise_that_is_not_a_host)
{
	const char *const args[] = { "--listen", "127.0.0.1:0", "--advertise", "ci fixtures", NULL };
	int st = test_broker_run(args, out, sizeof(out), RUN_TIMEOUT_MS);

	cr_assert(st > 0, "exit status %d, output: %s", st, out);
	cr_assert_not_null(strstr(out, "advertise"), "the message does not name advertise: %s", out);
}
