/* test_hardening.c: the hardening list of the shared-service issue, against the real
 * broker binary: the port lock file, and the names and environments of fixtures.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

/* 1 if pid has path open. */
static int has_open(pid_t pid, const char *path)
{
	char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
	struct dirent *e;
	int found = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (e = readdir(d)) != NULL) {
		ssize_t n;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		if ((n = readlink(link, target, sizeof(target) - 1)) > 0) {
			target[n] = '\0';
			found = !strcmp(target, path);
		}
	}
	closedir(d);
	return found;
}

/* Reads the broker's log into buf. */
static void read_log(const struct test_broker *tb, char *buf, size_t len)
{
	FILE *f = fopen(tb->log, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

Test(hardening, the_port_lock_file_is_mode_0600_in_a_0700_directory_and_a_foreign_one_is_not_used)
{
	char dir[128], lock[160], cmd[256], log[65536];
	struct test_broker tb;
	struct stat st;

	snprintf(dir, sizeof(dir), "/tmp/fxb-itest-lockdir-%d", (int)getpid());
	snprintf(lock, sizeof(lock), "%s/ports.lock", dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	BROKER_START(&tb, "--ports", "26620-26623", "--port-lock-file", lock);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "directory mode %o", st.st_mode & 07777);
	cr_assert_eq(stat(lock, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600, "lock file mode %o", st.st_mode & 07777);
	cr_assert(has_open(tb.pid, lock), "the broker does not hold %s", lock);
	BROKER_STOP(&tb);
	if (geteuid() == 0) {
		/* Planted by another user: refused, with a warning, never used. */
		cr_assert_eq(chmod(lock, 0666), 0);
		cr_assert_eq(chown(lock, 65534, 65534), 0);
		BROKER_START(&tb, "--ports", "26620-26623", "--port-lock-file", lock);
		cr_assert_not(has_open(tb.pid, lock), "the broker uses a lock file another user owns");
		read_log(&tb, log, sizeof(log));
		cr_assert(strstr(log, "is not a file of this user"), "no warning in %s", tb.log);
		BROKER_STOP(&tb);
	}
	cr_assert_eq(system(cmd), 0);
}

/* A server template "withdb" whose need "db" becomes fixture "<name>.db". */
static void start_with_servers(struct test_broker *tb)
{
	char config[512];

	cr_assert_eq(temp_file(config, sizeof(config), "hardening-servers.json",
	    "{\"servers\": {\"withdb\": {\"command\": [\"/bin/sleep\", \"60\"], \"ports\": [\"http\"], "
	    "\"client_env\": [\"MODE\"], \"needs\": {\"db\": {\"kind\": \"port\"}}}}}"), 0);
	BROKER_START(tb, "--config", config, "--ports", "26630-26639");
}

Test(hardening, two_fixtures_of_one_name_are_refused)
{
	struct test_broker tb;
	struct raw_ws w;
	json_t *r;

	start_with_servers(&tb);
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	/* Both orders: the client's fixture before and after the need. */
	for (int order = 0; order < 2; order++) {
		json_t *fx = order ?
		    json_pack("{s:{s:s}, s:{s:s, s:s}}", "s.db", "kind", "port", "s", "kind", "server",
			"template", "withdb") :
		    json_pack("{s:{s:s, s:s}, s:{s:s}}", "s", "kind", "server", "template", "withdb",
			"s.db", "kind", "port");
		r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:o}", "fixtures", fx));
		cr_assert_eq(raw_rpc_error_code(r), -32602, "order %d: %s", order,
		    r ? json_dumps(r, 0) : "none");
		cr_assert(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
		    "message")), "\"s.db\" is named twice"), "%s", json_dumps(r, 0));
		json_decref(r);
	}
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(hardening, a_NUL_in_a_name_an_environment_name_or_value_or_a_label_is_refused)
{
	static const char *const msgs[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"lease.acquire\",\"params\":{\"fixtures\":"
		"{\"p\\u0000x\":{\"kind\":\"port\"}}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"lease.acquire\",\"params\":{\"fixtures\":"
		"{\"s\":{\"kind\":\"server\",\"template\":\"withdb\",\"env\":{\"MODE\\u0000LD_PRELOAD\":\"x\"}}}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"lease.acquire\",\"params\":{\"fixtures\":"
		"{\"s\":{\"kind\":\"server\",\"template\":\"withdb\",\"env\":{\"MODE\":\"a\\u0000b\"}}}}}",
		"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"lease.acquire\",\"params\":{\"fixtures\":"
		"{\"p\":{\"kind\":\"port\"}},\"labels\":{\"who\":\"a\\u0000b\"}}}",
	};
	struct test_broker tb;
	struct raw_ws w;
	json_t *r;

	start_with_servers(&tb);
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		cr_assert_eq(raw_ws_send(&w, WS_TEXT, msgs[i], strlen(msgs[i]), 0), 0);
		r = raw_rpc_read(&w, HARNESS_IO_TIMEOUT_MS);
		cr_assert_eq(raw_rpc_error_code(r), -32700, "message %zu: %s", i,
		    r ? json_dumps(r, 0) : "none");
		cr_assert(strstr(json_dumps(r, 0), "NUL") || strstr(json_dumps(r, 0), "u0000"),
		    "message %zu: %s", i, json_dumps(r, 0));
		json_decref(r);
	}
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

/* The HTTP status of GET path on port, and its body into buf. */
static int get_env(int port, const char *name, char *buf, size_t len)
{
	char path[128], *body = NULL;
	int st;

	snprintf(path, sizeof(path), "/env/%s", name);
	st = http_get(port, path, &body);
	snprintf(buf, len, "%s", body ? body : "");
	free(body);
	return st;
}

Test(hardening, a_server_starts_from_PATH_HOME_and_LANG_unless_its_template_inherits_the_environment)
{
	const char *dir = getenv("FXB_TEST_SERVERS");
	char config[512], text[2048], body[4096];
	struct test_broker tb;
	struct raw_ws w;
	json_t *r;
	int port[2];

	cr_assert(dir != NULL && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(text, sizeof(text),
	    "{\"servers\": {"
	    "\"plain\": {\"command\": [\"%s/httpd\", \"--port\", \"{port}\"], \"env\": {\"OWN\": \"1\"},"
	    " \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},"
	    "\"inherit\": {\"command\": [\"%s/httpd\", \"--port\", \"{port}\"], \"inherit_env\": true,"
	    " \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]}}}", dir, dir);
	cr_assert_eq(temp_file(config, sizeof(config), "hardening-env.json", text), 0);
	/* The broker inherits these from this process. */
	setenv("FXB_TEST_SECRET", "not-for-servers", 1);
	setenv("LANG", "C.UTF-8", 1);
	if (!getenv("HOME"))
		setenv("HOME", "/root", 1);
	BROKER_START(&tb, "--config", config, "--ports", "26640-26649");
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	for (int i = 0; i < 2; i++) {
		r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s}}}", "fixtures", "s",
		    "kind", "server", "template", i ? "inherit" : "plain"));
		cr_assert_not_null(raw_rpc_result(r), "%s", r ? json_dumps(r, 0) : "none");
		port[i] = (int)json_integer_value(json_object_get(json_object_get(json_object_get(
		    raw_rpc_result(r), "fixtures"), "s"), "port"));
		json_decref(r);
	}
	cr_assert_eq(get_env(port[0], "FXB_TEST_SECRET", body, sizeof(body)), 404,
	    "a server without inherit_env sees the broker's FXB_TEST_SECRET: %s", body);
	cr_assert_eq(get_env(port[0], "PATH", body, sizeof(body)), 200);
	cr_assert_str_eq(body, getenv("PATH") ? strcat(strcpy(text, getenv("PATH")), "\n") : "");
	cr_assert_eq(get_env(port[0], "HOME", body, sizeof(body)), 200);
	cr_assert_eq(get_env(port[0], "LANG", body, sizeof(body)), 200);
	cr_assert_str_eq(body, "C.UTF-8\n");
	cr_assert_eq(get_env(port[0], "OWN", body, sizeof(body)), 200, "the template's env is set");
	cr_assert_eq(get_env(port[1], "FXB_TEST_SECRET", body, sizeof(body)), 200,
	    "inherit_env true passes the broker's environment");
	cr_assert_str_eq(body, "not-for-servers\n");
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}
