/* test_servers.c: server fixtures against the real broker and real child processes.
 *
 * The servers are tests/servers/httpd (built by the Makefile, found through
 * $FXB_TEST_SERVERS) and tests/servers/server.mjs ($FXB_NODE_SERVER, run with node). Every
 * broker here gets its own configuration file with the templates below and its own state
 * directory, and leases from its own ten ports in 28000-28999. After each test no process
 * carrying the broker instance's marker may be left, and the pids a test saw must be gone
 * (a zombie counts as gone: this container's init may not reap what is reparented to it).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

/* The templates every broker here is configured with; @HTTPD@ and @NODE_SERVER@ are
 * replaced by the servers' paths. */
static const char templates[] =
    "{\"servers\": {\n"
    "  \"api\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\"],\n"
    "          \"env\": {\"SEEN\": \"lease={lease} fixture={fixture} port={ports.main}\"},\n"
    "          \"client_env\": [\"GREETING\"],\n"
    "          \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},\n"
    "  \"crash\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--crash-on-start\", \"3\"],\n"
    "            \"start_timeout_ms\": 60000,\n"
    "            \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},\n"
    "  \"missing\": {\"command\": [\"/nonexistent/fixture-broker-test/server\", \"{port}\"],\n"
    "              \"start_timeout_ms\": 60000},\n"
    "  \"not_in_path\": {\"command\": [\"fixture-broker-no-such-program\"], \"start_timeout_ms\": 60000},\n"
    "  \"not_executable\": {\"command\": [\"@NODE_SERVER@\"], \"start_timeout_ms\": 60000},\n"
    "  \"daemon\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--daemon-child\"],\n"
    "             \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},\n"
    "  \"daemon_no_cgroup\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--daemon-child\"],\n"
    "             \"cgroup\": false, \"ready\": [{\"type\": \"tcp\"}]},\n"
    "  \"stubborn\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--ignore-sigterm\"],\n"
    "               \"stop_grace_ms\": 1500},\n"
    "  \"ready_twice\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--ready-twice\", \"400\"],\n"
    "                  \"ready\": [{\"type\": \"log\", \"stream\": \"stdout\", \"count\": 2,\n"
    "                               \"regex\": \"ready to accept connections$\"}]},\n"
    "  \"handoff\": {\"command\": [\"@HTTPD@\"], \"socket_handoff\": true, \"ports\": [\"web\"],\n"
    "              \"ready\": [{\"type\": \"http\", \"port\": \"web\", \"path\": \"/healthz\"}]},\n"
    "  \"node\": {\"command\": [\"node\", \"@NODE_SERVER@\"], \"env\": {\"PORT\": \"{port}\"},\n"
    "           \"ready\": [{\"type\": \"log\", \"regex\": \"^listening on\"},\n"
    "                     {\"type\": \"http\", \"path\": \"/healthz\"}]},\n"
    "  \"node_handoff\": {\"command\": [\"node\", \"@NODE_SERVER@\"], \"socket_handoff\": true,\n"
    "                   \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"}]},\n"
    "  \"unhealthy\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--unhealthy\"],\n"
    "                \"start_timeout_ms\": 700,\n"
    "                \"ready\": [{\"type\": \"http\", \"path\": \"/healthz\"},\n"
    "                          {\"type\": \"exec\", \"command\": [\"/bin/false\"]}]},\n"
    "  \"exec_probe\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\"],\n"
    "                 \"ready\": [{\"type\": \"exec\", \"command\": [\"/bin/sh\", \"-c\",\n"
    "                             \"test \\\"$SEEN\\\" = \\\"port {port}\\\"\"]}],\n"
    "                 \"env\": {\"SEEN\": \"port {port}\"}},\n"
    "  \"with_needs\": {\"command\": [\"@HTTPD@\", \"--port\", \"{ports.http}\"],\n"
    "                 \"ports\": [\"http\", \"admin\"],\n"
    "                 \"needs\": {\"aux\": {\"kind\": \"port\"}},\n"
    "                 \"env\": {\"AUX\": \"{fixtures.aux.port}\", \"ADMIN\": \"{ports.admin}\"},\n"
    "                 \"ready\": [{\"type\": \"tcp\", \"port\": \"http\"}]},\n"
    "  \"chatty\": {\"command\": [\"@HTTPD@\", \"--port\", \"{port}\", \"--print\", \"200\"],\n"
    "             \"log_buffer_bytes\": 1024, \"log_file\": true}\n"
    "}}\n";

struct env {
	struct test_broker tb;
	char config[512];
	char state[600];
	char instance[64];
	int first_port;
};

static char *replace_all(const char *text, const char *what, const char *with)
{
	size_t n = 0, wl = strlen(what), tl = strlen(with);
	const char *p;
	char *out, *o;

	for (p = text; (p = strstr(p, what)) != NULL; p += wl)
		n++;
	out = malloc(strlen(text) + n * tl + 1);
	cr_assert_not_null(out);
	for (o = out, p = text; *p;) {
		if (strncmp(p, what, wl) == 0) {
			memcpy(o, with, tl);
			o += tl;
			p += wl;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static const char *httpd_path(void)
{
	static char path[512];
	const char *dir = getenv("FXB_TEST_SERVERS");

	cr_assert(dir != NULL && *dir, "FXB_TEST_SERVERS is not set (run through make integration)");
	snprintf(path, sizeof(path), "%s/httpd", dir);
	return path;
}

static const char *node_server_path(void)
{
	const char *p = getenv("FXB_NODE_SERVER");

	cr_assert(p != NULL && *p, "FXB_NODE_SERVER is not set (run through make integration)");
	return p;
}

/* Writes the configuration, makes a state directory (or reuses e->state when set) and
 * starts a broker leasing ports first..first+9. */
static void env_start(struct env *e, int first, const char *const *extra)
{
	char ports[32], *a, *b;
	const char *args[16];
	size_t n = 0;
	json_t *st;

	a = replace_all(templates, "@HTTPD@", httpd_path());
	b = replace_all(a, "@NODE_SERVER@", node_server_path());
	free(a);
	if (e->config[0] == '\0')
		cr_assert_eq(temp_file(e->config, sizeof(e->config), "servers.json", b), 0);
	free(b);
	if (e->state[0] == '\0') {
		snprintf(e->state, sizeof(e->state), "%s.state", e->config);
		cr_assert(mkdir(e->state, 0700) == 0 || errno == EEXIST, "%s: %s", e->state,
		    strerror(errno));
	}
	e->first_port = first;
	snprintf(ports, sizeof(ports), "%d-%d", first, first + 9);
	args[n++] = "--ports";
	args[n++] = ports;
	args[n++] = "--config";
	args[n++] = e->config;
	args[n++] = "--state-dir";
	args[n++] = e->state;
	args[n++] = "--port-quarantine-ms";
	args[n++] = "0";
	for (const char *const *x = extra; x != NULL && *x != NULL; x++)
		args[n++] = *x;
	args[n] = NULL;
	{
		char err[512];
		cr_assert_eq(test_broker_start(&e->tb, args, err, sizeof(err)), 0, "%s", err);
	}
	st = test_broker_status(&e->tb);
	cr_assert_not_null(st);
	snprintf(e->instance, sizeof(e->instance), "%s",
	    json_string_value(json_object_get(st, "instance")));
	json_decref(st);
}

/* 1 while pid exists and is not a zombie. */
static int pid_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Live (not zombie) processes whose process group or session is id. */
static int group_members(pid_t id)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[512], state, *p;
		long pgrp, sid;
		ssize_t r;
		int fd;

		if (atol(de->d_name) <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		if ((p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 1, " %c %*d %ld %ld", &state, &pgrp, &sid) != 3)
			continue;
		if (state != 'Z' && state != 'X' && (pgrp == id || sid == id))
			n++;
	}
	closedir(d);
	return n;
}

/* Live processes carrying the marker of instance (any of its servers). */
static int marked_processes(const char *instance)
{
	char marker[128];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	snprintf(marker, sizeof(marker), "FIXTURE_BROKER_PROCESS=%s:", instance);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[300], env[65536];
		long pid = atol(de->d_name);
		ssize_t len;
		int fd;

		if (pid <= 0 || !pid_alive((pid_t)pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/environ", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		len = read(fd, env, sizeof(env) - 1);
		close(fd);
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(env + i) + 1) {
			env[len] = '\0';
			if (strncmp(env + i, marker, strlen(marker)) == 0) {
				n++;
				break;
			}
		}
	}
	closedir(d);
	return n;
}

/* Waits up to timeout_ms for pid (and its process group) to be gone. Returns 1 if gone. */
static int wait_gone(pid_t pid, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;

	while ((pid_alive(pid) || group_members(pid) > 0) && clock_ms() < deadline)
		sleep_ms(20);
	return !pid_alive(pid) && group_members(pid) == 0;
}

static int wait_no_marked(const char *instance, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;

	while (marked_processes(instance) > 0 && clock_ms() < deadline)
		sleep_ms(20);
	return marked_processes(instance);
}

/* Stops the broker (exit 0) and checks that nothing of its servers is left. */
static void env_stop(struct env *e)
{
	BROKER_STOP(&e->tb);
	cr_assert_eq(wait_no_marked(e->instance, 10000), 0,
	    "processes of the broker's servers are left after it stopped");
}

static void raw_connect(struct env *e, struct raw_ws *w)
{
	cr_assert_eq(raw_ws_connect(w, e->tb.port, "fixture-broker.v1", NULL), 101);
}

/* lease.acquire of one server fixture named name; returns the reply (caller owns). */
static json_t *acquire_server(struct raw_ws *w, const char *name, const char *tmpl, json_t *env)
{
	json_t *spec = json_pack("{s:s, s:s}", "kind", "server", "template", tmpl);

	if (env != NULL)
		json_object_set_new(spec, "env", env);
	return raw_rpc_call(w, "lease.acquire", json_pack("{s:{s:o}}", "fixtures", name, spec));
}

/* The result of a successful server acquire: the fixture's fields. */
static json_t *granted(json_t *reply, const char *name)
{
	json_t *f = json_object_get(json_object_get(raw_rpc_result(reply), "fixtures"), name);

	cr_assert_not_null(f, "lease.acquire failed: %s", json_dumps(reply, 0));
	return f;
}

static int field_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	cr_assert(json_is_integer(v), "no integer \"%s\" in %s", key, json_dumps(o, 0));
	return (int)json_integer_value(v);
}

static void release(struct raw_ws *w, json_t *reply)
{
	const char *lid = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
	json_t *r = raw_rpc_call(w, "lease.release", json_pack("{s:s}", "lease", lid));

	cr_assert(json_is_true(json_object_get(raw_rpc_result(r), "released")), "%s",
	    json_dumps(r, 0));
	json_decref(r);
}

/* server.logs for a fixture of the lease in reply; the stream's text (caller frees). */
static char *logs(struct raw_ws *w, json_t *reply, const char *fixture, const char *stream,
    int tail)
{
	const char *lid = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
	json_t *params = json_pack("{s:s, s:s}", "lease", lid, "fixture", fixture), *r;
	char *text;

	if (tail > 0)
		json_object_set_new(params, "tail", json_integer(tail));
	r = raw_rpc_call(w, "server.logs", params);
	cr_assert(json_is_string(json_object_get(raw_rpc_result(r), stream)), "server.logs: %s",
	    json_dumps(r, 0));
	text = strdup(json_string_value(json_object_get(raw_rpc_result(r), stream)));
	json_decref(r);
	return text;
}

/* GET path on port; the body (caller frees), or fails the test unless status matches. */
static char *get(int port, const char *path, int want)
{
	char *body = NULL;
	int st = http_get(port, path, &body);

	cr_assert_eq(st, want, "GET :%d%s: %d (%s)", port, path, st, body ? body : "");
	return body;
}

/* The pid in "daemon pid N" of a server's output, polled through server.logs. */
static pid_t daemon_pid(struct raw_ws *w, json_t *reply, const char *fixture)
{
	uint64_t deadline = clock_ms() + 10000;
	long pid = 0;

	while (pid == 0 && clock_ms() < deadline) {
		char *out = logs(w, reply, fixture, "stdout", 0), *p = strstr(out, "daemon pid ");

		if (p != NULL)
			pid = atol(p + 11);
		free(out);
		if (pid == 0)
			sleep_ms(20);
	}
	cr_assert_gt(pid, 0, "the server never printed its daemon's pid");
	return (pid_t)pid;
}

Test(servers, each_lease_gets_its_own_process_on_its_own_port_ready_by_http, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *r1, *r2, *f1, *f2;
	char *body, expect[128];
	int p1, p2;
	pid_t pid1, pid2;

	env_start(&e, 28000, NULL);
	raw_connect(&e, &w);
	r1 = acquire_server(&w, "api", "api", NULL);
	r2 = acquire_server(&w, "api", "api", NULL);
	f1 = granted(r1, "api");
	f2 = granted(r2, "api");
	cr_assert_str_eq(json_string_value(json_object_get(f1, "kind")), "server");
	cr_assert_str_eq(json_string_value(json_object_get(f1, "host")), "127.0.0.1");
	p1 = field_int(f1, "port");
	p2 = field_int(f2, "port");
	pid1 = field_int(f1, "pid");
	pid2 = field_int(f2, "pid");
	cr_assert_neq(p1, p2, "two leases got the same port");
	cr_assert_neq(pid1, pid2, "two leases got the same process");
	cr_assert_eq(field_int(json_object_get(f1, "ports"), "main"), p1);

	/* Ready means answering: each port is served by its own lease's process. */
	body = get(p1, "/healthz", 200);
	free(body);
	body = get(p1, "/pid", 200);
	cr_assert_eq(atol(body), (long)pid1, "port %d is served by pid %s, not %ld", p1, body,
	    (long)pid1);
	free(body);
	body = get(p2, "/pid", 200);
	cr_assert_eq(atol(body), (long)pid2);
	free(body);
	/* Placeholders in the template's environment. */
	body = get(p2, "/env/SEEN", 200);
	snprintf(expect, sizeof(expect), "lease=%s fixture=api port=%d\n",
	    json_string_value(json_object_get(raw_rpc_result(r2), "lease")), p2);
	cr_assert_str_eq(body, expect);
	free(body);
	/* Each server in its own session and process group. */
	cr_assert_eq(getpgid(pid1), pid1);
	cr_assert_eq(getsid(pid1), pid1);

	release(&w, r1);
	cr_assert(wait_gone(pid1, 10000), "the released lease's server is still running");
	cr_assert(pid_alive(pid2), "releasing one lease stopped the other lease's server");
	release(&w, r2);
	cr_assert(wait_gone(pid2, 10000), "the released lease's server is still running");
	json_decref(r1);
	json_decref(r2);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, the_c_sdk_leases_a_server_and_reads_its_logs, .timeout = 60)
{
	struct env e = { 0 };
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	struct fxb_fixture_spec spec = { "web", "server", "{\"template\":\"api\"}" };
	char params[256], *result = NULL, *body;
	json_t *j;
	int port;
	pid_t pid;

	env_start(&e, 28010, NULL);
	CLIENT_NEW(c, &e.tb, NULL, NULL);
	cr_assert_eq(fxb_lease_acquire(c, &spec, 1, NULL, &l), 0, "%s", fxb_client_errmsg(c));
	port = fxb_lease_port(l, "web");
	pid = (pid_t)atol(fxb_lease_field(l, "web", "pid"));
	cr_assert_gt(port, 0);
	body = get(port, "/healthz", 200);
	free(body);
	snprintf(params, sizeof(params), "{\"lease\":\"%s\",\"fixture\":\"web\",\"tail\":1}",
	    fxb_lease_id(l));
	cr_assert_eq(fxb_call(c, "server.logs", params, &result), 0, "%s", fxb_client_errmsg(c));
	j = json_loads(result, 0, NULL);
	cr_assert_not_null(j, "%s", result);
	snprintf(params, sizeof(params), "listening on 127.0.0.1:%d\n", port);
	cr_assert_str_eq(json_string_value(json_object_get(j, "stdout")), params,
	    "the last line of stdout: %s", result);
	cr_assert_str_eq(json_string_value(json_object_get(j, "stderr")), "");
	json_decref(j);
	free(result);
	cr_assert_eq(fxb_lease_release(c, l), 0);
	cr_assert(wait_gone(pid, 10000));
	fxb_client_free(c);
	env_stop(&e);
}

Test(servers, a_server_that_crashes_during_start_up_fails_the_lease_with_its_status_and_log_tail,
    .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *data, *probes;
	const char *tail, *msg;

	env_start(&e, 28020, NULL);
	raw_connect(&e, &w);
	/* The template's deadline is 60 s and the call's own timeout 10 s: only an answer
	 * given when the process exits gets here. */
	reply = acquire_server(&w, "api", "crash", NULL);
	cr_assert_not_null(reply, "no answer: the broker waited instead of failing at the exit");
	cr_assert_eq(raw_rpc_error_code(reply), 1304, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "SERVER_EXITED");
	data = json_object_get(json_object_get(reply, "error"), "data");
	cr_assert_eq(field_int(data, "status"), 3);
	tail = json_string_value(json_object_get(data, "log_tail"));
	cr_assert(tail && strstr(tail, "configuration missing") && strstr(tail, "giving up"),
	    "log_tail: %s", tail ? tail : "(none)");
	probes = json_object_get(data, "probes");
	cr_assert_eq(json_array_size(probes), 1, "%s", json_dumps(data, 0));
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(probes, 0), "type")), "http");
	cr_assert(json_is_false(json_object_get(json_array_get(probes, 0), "passed")));
	msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
	cr_assert(strstr(msg, "exited with status 3") && strstr(msg, "giving up with status 3"),
	    "message: %s", msg);
	/* Its port went back (to a quarantine of 0 ms). */
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 0);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_server_killed_after_it_was_ready_is_reported_with_server_exited, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *msg = NULL, *params;
	const char *lid;
	uint64_t deadline;
	pid_t pid;

	env_start(&e, 28030, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "svc", "api", NULL);
	pid = field_int(granted(reply, "svc"), "pid");
	lid = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
	cr_assert_eq(kill(pid, SIGKILL), 0);
	deadline = clock_ms() + 10000;
	while (clock_ms() < deadline) {
		msg = raw_rpc_read(&w, 1000);
		if (msg && json_is_string(json_object_get(msg, "method")))
			break;
		json_decref(msg);
		msg = NULL;
	}
	cr_assert_not_null(msg, "no server.exited notification");
	cr_assert_str_eq(json_string_value(json_object_get(msg, "method")), "server.exited");
	cr_assert_null(json_object_get(msg, "id"), "a notification has no id");
	params = json_object_get(msg, "params");
	cr_assert_str_eq(json_string_value(json_object_get(params, "lease")), lid);
	cr_assert_str_eq(json_string_value(json_object_get(params, "fixture")), "svc");
	cr_assert_eq(field_int(params, "signal"), SIGKILL);
	cr_assert_str_eq(json_string_value(json_object_get(params, "signal_name")), "SIGKILL");
	cr_assert_null(json_object_get(params, "status"));
	cr_assert(strstr(json_string_value(json_object_get(params, "log_tail")), "listening on"),
	    "%s", json_dumps(params, 0));
	json_decref(msg);
	/* The lease still holds the fixture (and its port) until it is released. */
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 1);
	release(&w, reply);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

/* Leases template (whose server forks a daemonising grandchild), releases it, and checks
 * that the server and the grandchild are both gone. */
static void daemon_is_gone_after_release(int first, const char *tmpl)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply;
	pid_t pid, grandchild;

	env_start(&e, first, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "d", tmpl, NULL);
	pid = field_int(granted(reply, "d"), "pid");
	grandchild = daemon_pid(&w, reply, "d");
	cr_assert(pid_alive(grandchild), "the daemon is not running");
	cr_assert_neq(getpgid(grandchild), pid, "the daemon did not leave the server's group");
	cr_assert_neq(getsid(grandchild), pid, "the daemon did not leave the server's session");
	release(&w, reply);
	cr_assert(wait_gone(pid, 10000), "the server is still running after release");
	cr_assert(wait_gone(grandchild, 10000), "the daemonised grandchild survived the release");
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_daemonising_grandchild_is_gone_after_release, .timeout = 60)
{
	daemon_is_gone_after_release(28040, "daemon");
}

Test(servers, a_daemonising_grandchild_is_gone_after_release_without_a_cgroup, .timeout = 60)
{
	daemon_is_gone_after_release(28050, "daemon_no_cgroup");
}

Test(servers, a_server_that_ignores_sigterm_is_killed_after_the_grace_period, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply;
	pid_t pid;

	env_start(&e, 28060, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "s", "stubborn", NULL);
	pid = field_int(granted(reply, "s"), "pid");
	release(&w, reply);
	/* SIGTERM went out at once and is ignored; the grace period is 1500 ms. */
	sleep_ms(300);
	cr_assert(pid_alive(pid), "the server died before its grace period ended");
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 1,
	    "the port went back while its server was still running");
	cr_assert(wait_gone(pid, 10000), "the server survived SIGKILL");
	/* Once it is gone, and only then, its port goes back. */
	{
		uint64_t deadline = clock_ms() + 5000;
		while (test_broker_ports(&e.tb, "leased") != 0 && clock_ms() < deadline)
			sleep_ms(20);
	}
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 0);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_missing_binary_is_a_clear_error_at_once, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *data;
	const char *msg;
	static const struct {
		const char *tmpl, *errno_name, *words;
	} cases[] = {
		{ "missing", "ENOENT", "/nonexistent/fixture-broker-test/server" },
		{ "not_in_path", "ENOENT", "not found in PATH" },
		{ "not_executable", "EACCES", "Permission denied" },
	};

	env_start(&e, 28070, NULL);
	raw_connect(&e, &w);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* 60 s deadlines: an answer within the call's 10 s comes from the exec failure. */
		reply = acquire_server(&w, "x", cases[i].tmpl, NULL);
		cr_assert_not_null(reply, "%s: no answer", cases[i].tmpl);
		cr_assert_eq(raw_rpc_error_code(reply), 1303, "%s: %s", cases[i].tmpl, json_dumps(reply, 0));
		cr_assert_str_eq(raw_rpc_error_name(reply), "SERVER_START_FAILED");
		data = json_object_get(json_object_get(reply, "error"), "data");
		cr_assert_str_eq(json_string_value(json_object_get(data, "errno")), cases[i].errno_name,
		    "%s: %s", cases[i].tmpl, json_dumps(data, 0));
		cr_assert_str_eq(json_string_value(json_object_get(data, "stage")), "exec");
		msg = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
		cr_assert(strstr(msg, cases[i].words), "%s: message: %s", cases[i].tmpl, msg);
		json_decref(reply);
	}
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 0);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_log_probe_waits_for_the_ready_line_twice, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply;
	char *out, *first, *second;

	env_start(&e, 28080, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "db", "ready_twice", NULL);
	granted(reply, "db");
	/* The server prints the line, waits 400 ms and prints it again: a grant after the
	 * first line would find one line in the log. */
	out = logs(&w, reply, "db", "stdout", 0);
	first = strstr(out, "ready to accept connections");
	cr_assert_not_null(first, "%s", out);
	second = strstr(first + 1, "ready to accept connections");
	cr_assert_not_null(second, "granted after the first ready line:\n%s", out);
	free(out);
	release(&w, reply);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

/* Leases a socket-handoff template and checks the child serves the socket it was given. */
static void handoff(int first, const char *tmpl, const char *fixture, const char *port_name)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *f;
	char *body, expect[32];
	int port;
	pid_t pid;

	env_start(&e, first, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, fixture, tmpl, NULL);
	f = granted(reply, fixture);
	port = field_int(f, "port");
	pid = field_int(f, "pid");
	cr_assert_eq(field_int(json_object_get(f, "ports"), port_name), port);
	body = get(port, "/pid", 200);
	cr_assert_eq(atol(body), (long)pid, "the port is not served by the leased process");
	free(body);
	body = get(port, "/env/LISTEN_FDS", 200);
	cr_assert_str_eq(body, "1\n");
	free(body);
	body = get(port, "/env/LISTEN_PID", 200);
	snprintf(expect, sizeof(expect), "%ld\n", (long)pid);
	cr_assert_str_eq(body, expect, "LISTEN_PID is not the child's own pid");
	free(body);
	body = get(port, "/env/LISTEN_FDNAMES", 200);
	snprintf(expect, sizeof(expect), "%s\n", port_name);
	cr_assert_str_eq(body, expect);
	free(body);
	release(&w, reply);
	cr_assert(wait_gone(pid, 10000));
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, socket_handoff_gives_the_child_the_listening_socket, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply;
	char *out, *body;
	int port;

	handoff(28090, "handoff", "h", "web");
	/* The C server says where its socket came from, and holds no other descriptor. */
	env_start(&e, 28100, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "h", "handoff", NULL);
	port = field_int(granted(reply, "h"), "port");
	out = logs(&w, reply, "h", "stdout", 0);
	cr_assert(strstr(out, "socket activation: serving fd 3 (web)"), "%s", out);
	free(out);
	body = get(port, "/fds", 200);
	/* fd 3 (the listener) plus the accepted connection answering this request. */
	cr_assert_str_eq(body, "2\n", "descriptors open in the child besides 0-2: %s", body);
	free(body);
	release(&w, reply);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_node_server_is_leased_with_its_port_or_the_handed_over_socket, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply;
	char *body;
	int port;
	pid_t pid;

	env_start(&e, 28110, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "n", "node", NULL);
	port = field_int(granted(reply, "n"), "port");
	pid = field_int(granted(reply, "n"), "pid");
	body = get(port, "/", 200);
	cr_assert_str_eq(body, "hello from node\n");
	free(body);
	release(&w, reply);
	cr_assert(wait_gone(pid, 10000));
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
	handoff(28120, "node_handoff", "n", "main");
}

struct client_job {
	const struct test_broker *tb;
	int fd;
};

/* The doomed client of the test below: leases a server, reports its pid, and waits to be
 * killed. */
static int client_run(int index, void *arg)
{
	struct client_job *job = arg;
	struct fxb_fixture_spec spec = { "api", "server", "{\"template\":\"api\"}" };
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	char err[256];

	(void)index;
	if ((c = test_client(job->tb, NULL, NULL, err, sizeof(err))) == NULL) {
		dprintf(job->fd, "error %s\n", err);
		return 1;
	}
	if (fxb_lease_acquire(c, &spec, 1, NULL, &l) != 0) {
		dprintf(job->fd, "error %s\n", fxb_client_errmsg(c));
		return 1;
	}
	dprintf(job->fd, "%s\n", fxb_lease_field(l, "api", "pid"));
	for (;;)
		pause();
}

Test(servers, a_client_killed_with_sigkill_loses_its_servers_after_the_grace_period,
    .timeout = 60)
{
	struct env e = { 0 };
	const char *const extra[] = { "--grace-ms", "300", NULL };
	int p[2];
	char line[64] = "";
	ssize_t n;
	pid_t client, server;
	struct pollfd pfd;
	struct client_job job;

	env_start(&e, 28130, extra);
	cr_assert_eq(pipe(p), 0);
	job = (struct client_job){ &e.tb, p[1] };
	client = child_spawn(client_run, 0, &job);
	close(p[1]);
	pfd = (struct pollfd){ p[0], POLLIN, 0 };
	cr_assert_eq(poll(&pfd, 1, 15000), 1, "the client never reported");
	n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	cr_assert_gt(n, 0);
	line[n] = '\0';
	server = (pid_t)atol(line);
	cr_assert_gt(server, 0, "the client failed: %s", line);
	cr_assert(pid_alive(server));
	kill(client, SIGKILL);
	cr_assert_eq(child_wait(client, 15000), 128 + SIGKILL);
	cr_assert(wait_gone(server, 15000), "the dead client's server is still running");
	env_stop(&e);
}

Test(servers, a_broker_killed_with_sigkill_leaves_nothing_once_restarted, .timeout = 90)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *r1, *r2;
	pid_t s1, s2, d1, d2;
	char instance[64];

	env_start(&e, 28140, NULL);
	raw_connect(&e, &w);
	r1 = acquire_server(&w, "a", "daemon", NULL);
	r2 = acquire_server(&w, "b", "daemon_no_cgroup", NULL);
	s1 = field_int(granted(r1, "a"), "pid");
	s2 = field_int(granted(r2, "b"), "pid");
	d1 = daemon_pid(&w, r1, "a");
	d2 = daemon_pid(&w, r2, "b");
	raw_ws_close(&w);
	json_decref(r1);
	json_decref(r2);
	snprintf(instance, sizeof(instance), "%s", e.instance);

	test_broker_kill(&e.tb);
	/* The servers die with the broker (PDEATHSIG); their daemons do not. */
	cr_assert(wait_gone(s1, 10000) && wait_gone(s2, 10000));
	sleep_ms(300);
	cr_assert(pid_alive(d1) && pid_alive(d2), "a daemon died with the broker; nothing to sweep");

	/* The same state directory is the same instance, which sweeps what it left. */
	env_start(&e, 28140, NULL);
	cr_assert_str_eq(e.instance, instance, "the restarted broker is another instance");
	cr_assert(wait_gone(d1, 10000), "the daemon in a cgroup survived the restart");
	cr_assert(wait_gone(d2, 10000), "the daemon without a cgroup survived the restart");
	cr_assert_eq(wait_no_marked(instance, 10000), 0);
	env_stop(&e);
}

Test(servers, a_variable_not_in_client_env_is_refused, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *data;
	char *body;

	env_start(&e, 28150, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "api", "api", json_pack("{s:s}", "PATH", "/tmp/evil"));
	cr_assert_eq(raw_rpc_error_code(reply), 1302, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "SERVER_ENV_NOT_ALLOWED");
	data = json_object_get(json_object_get(reply, "error"), "data");
	cr_assert_str_eq(json_string_value(json_object_get(data, "variable")), "PATH");
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(data, "allowed"), 0)),
	    "GREETING");
	json_decref(reply);
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 0);
	cr_assert_eq(marked_processes(e.instance), 0, "a refused lease started a process");

	/* The allowed one reaches the server. */
	reply = acquire_server(&w, "api", "api", json_pack("{s:s}", "GREETING", "hi there"));
	body = get(field_int(granted(reply, "api"), "port"), "/env/GREETING", 200);
	cr_assert_str_eq(body, "hi there\n");
	free(body);
	release(&w, reply);
	json_decref(reply);

	/* An unknown template is refused too, naming the ones there are. */
	reply = acquire_server(&w, "api", "no_such_template", NULL);
	cr_assert_eq(raw_rpc_error_code(reply), 1301, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "SERVER_TEMPLATE_UNKNOWN");
	json_decref(reply);
	/* So is a command in the request. */
	reply = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s, s:s, s:[s]}}}", "fixtures",
	    "x", "kind", "server", "template", "api", "command", "/bin/sh"));
	cr_assert_eq(raw_rpc_error_code(reply), -32602, "%s", json_dumps(reply, 0));
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_server_that_never_gets_ready_fails_at_its_deadline_with_the_probe_history,
    .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *probes, *http, *exec;

	env_start(&e, 28160, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "u", "unhealthy", NULL);
	cr_assert_eq(raw_rpc_error_code(reply), 1305, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "SERVER_START_TIMEOUT");
	probes = json_object_get(json_object_get(json_object_get(reply, "error"), "data"), "probes");
	http = json_array_get(probes, 0);
	exec = json_array_get(probes, 1);
	cr_assert(strstr(json_string_value(json_object_get(http, "last")), "503, expected 200"), "%s",
	    json_dumps(http, 0));
	cr_assert_geq(field_int(http, "attempts"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(exec, "last")), "exited 1", "%s",
	    json_dumps(exec, 0));
	json_decref(reply);
	cr_assert_eq(wait_no_marked(e.instance, 10000), 0, "the failed server is still running");

	/* An exec probe that exits 0 (with the server's environment) passes. */
	reply = acquire_server(&w, "x", "exec_probe", NULL);
	granted(reply, "x");
	release(&w, reply);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_server_gets_the_fixtures_it_needs_and_named_ports, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *f, *aux, *fixtures;
	char *body, expect[32];
	int admin;

	env_start(&e, 28170, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "app", "with_needs", NULL);
	f = granted(reply, "app");
	fixtures = json_object_get(raw_rpc_result(reply), "fixtures");
	aux = json_object_get(fixtures, "app.aux");
	cr_assert_not_null(aux, "the needed port is not in the lease: %s", json_dumps(fixtures, 0));
	cr_assert_eq(field_int(json_object_get(json_object_get(f, "fixtures"), "aux"), "port"),
	    field_int(aux, "port"));
	admin = field_int(json_object_get(f, "ports"), "admin");
	cr_assert_eq(field_int(f, "port"), field_int(json_object_get(f, "ports"), "http"));
	body = get(field_int(f, "port"), "/env/AUX", 200);
	snprintf(expect, sizeof(expect), "%d\n", field_int(aux, "port"));
	cr_assert_str_eq(body, expect);
	free(body);
	body = get(field_int(f, "port"), "/env/ADMIN", 200);
	snprintf(expect, sizeof(expect), "%d\n", admin);
	cr_assert_str_eq(body, expect);
	free(body);
	cr_assert_eq(test_broker_ports(&e.tb, "leased"), 3);
	release(&w, reply);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, server_logs_keeps_the_last_bytes_and_lines_and_a_log_file, .timeout = 60)
{
	struct env e = { 0 };
	struct raw_ws w;
	json_t *reply, *r;
	char *out, *file_text;
	const char *path, *lid;
	FILE *fp;
	long size;

	env_start(&e, 28180, NULL);
	raw_connect(&e, &w);
	reply = acquire_server(&w, "c", "chatty", NULL);
	path = json_string_value(json_object_get(granted(reply, "c"), "log_file"));
	cr_assert_not_null(path, "no log_file in %s", json_dumps(reply, 0));
	out = logs(&w, reply, "c", "stdout", 0);
	/* 200 numbered lines and more, through a 1024-byte ring: the start is gone. */
	cr_assert_leq(strlen(out), 1024);
	cr_assert_null(strstr(out, "starting"), "the ring kept its first line: %s", out);
	cr_assert(strstr(out, "line 200\n"), "%s", out);
	free(out);
	out = logs(&w, reply, "c", "stdout", 2);
	cr_assert(strncmp(out, "line 200\nlistening on", 21) == 0, "the last 2 lines: %s", out);
	free(out);
	/* The log file has all of it. */
	fp = fopen(path, "r");
	cr_assert_not_null(fp, "%s", path);
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	rewind(fp);
	file_text = calloc(1, (size_t)size + 1);
	cr_assert_eq(fread(file_text, 1, (size_t)size, fp), (size_t)size);
	fclose(fp);
	cr_assert(strstr(file_text, "starting\nline 1\n"), "%s", file_text);
	free(file_text);
	/* A port fixture has no logs. */
	lid = json_string_value(json_object_get(raw_rpc_result(reply), "lease"));
	r = raw_rpc_call(&w, "server.logs", json_pack("{s:s, s:s}", "lease", lid, "fixture", "nope"));
	cr_assert_eq(raw_rpc_error_code(r), -32602, "%s", json_dumps(r, 0));
	json_decref(r);
	release(&w, reply);
	r = raw_rpc_call(&w, "server.logs", json_pack("{s:s, s:s}", "lease", lid, "fixture", "c"));
	cr_assert_eq(raw_rpc_error_code(r), 1003, "%s", json_dumps(r, 0));
	json_decref(r);
	json_decref(reply);
	raw_ws_close(&w);
	env_stop(&e);
}

Test(servers, a_bad_template_stops_the_broker_with_the_key_at_fault, .timeout = 60)
{
	static const struct {
		const char *config, *message;
	} cases[] = {
		{ "{\"servers\": {\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"http\", \"path\": 5}]}}}",
		  "servers.api.ready[0].path: expected a string" },
		{ "{\"servers\": {\"api\": {\"command\": [\"x\", \"{prot}\"]}}}",
		  "servers.api.command[1]: unknown placeholder {prot}" },
		{ "{\"servers\": {\"api\": {\"command\": [\"x\"], \"env\": {\"U\": \"{fixtures.db.url}\"}}}}",
		  "servers.api.env.U: {fixtures.db.url}: the template needs no fixture \"db\"" },
		{ "{\"servers\": {\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"log\", \"regex\": \"(\"}]}}}",
		  "servers.api.ready[0].regex: " },
		{ "{\"servers\": {\"api\": {\"cmd\": [\"x\"]}}}", "servers.api.cmd: unknown setting" },
		{ "{\"servers\": {\"api\": {\"command\": [\"x\"], \"client_env\": [\"LISTEN_FDS\"]}}}",
		  "servers.api.client_env[0]: LISTEN_FDS is set by the broker" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512], out[2048];
		const char *args[] = { "--listen", "127.0.0.1:0", "--config", path, NULL };
		int st;

		cr_assert_eq(temp_file(path, sizeof(path), "bad.json", cases[i].config), 0);
		st = test_broker_run(args, out, sizeof(out), 10000);
		cr_assert_neq(st, 0, "case %zu: the broker started with a bad template", i);
		cr_assert(strstr(out, cases[i].message), "case %zu: expected \"%s\" in:\n%s", i,
		    cases[i].message, out);
	}
}
