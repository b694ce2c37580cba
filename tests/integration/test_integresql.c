/* test_integresql.c: the IntegreSQL-compatible API at the HTTP level, next to a WebSocket
 * client of the same broker. The clients' own suites (tests/integresql/, make
 * integresql-test) cover the API through IntegreSQL's Node and Go clients; this suite
 * covers what they cannot: a hash a WebSocket client is building, a get that waits on it
 * while the loop serves others, and the API being off unless enabled. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

static const char *
state_dir(void)
{
	static char dir[512];
	const char *d = getenv("FXB_TEST_LOG_DIR");

	if (!dir[0])
		snprintf(dir, sizeof dir, "%s/isql-state-%d", d && *d ? d : "/tmp", (int)getpid());
	return dir;
}

static void
remove_state(void)
{
	const char *argv[] = { "rm", "-rf", state_dir(), NULL };
	char out[256];

	run_program("/bin/rm", argv, NULL, out, sizeof out, 30000);
}

/* Sends one request (body may be NULL) and returns the connected socket, or -1. */
static int
http_send(int port, const char *method, const char *path, const char *body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char req[4096];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n"
	    "Content-Type: application/json\r\n\r\n%s", method, path, body ? strlen(body) : 0,
	    body ? body : "");
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads the response on fd within timeout_ms: its status (or -1, or 0 when nothing came
 * in time) and its body in *out (malloc'd) when out is not NULL. Closes fd unless nothing
 * came. */
static int
http_read(int fd, int timeout_ms, char **out)
{
	char buf[16384], *hdr_end, *cl;
	size_t len = 0, want = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int status = -1;
	ssize_t n;

	for (;;) {
		if (poll(&p, 1, timeout_ms) != 1) {
			if (len == 0)
				return 0;
			break;
		}
		if ((n = read(fd, buf + len, sizeof buf - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (!(hdr_end = strstr(buf, "\r\n\r\n")))
			continue;
		cl = strcasestr(buf, "content-length:");
		want = (size_t)(hdr_end + 4 - buf) + (cl && cl < hdr_end ? strtoul(cl + 15, NULL, 10) : 0);
		if (len >= want)
			break;
	}
	close(fd);
	if (len < 12 || sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		return -1;
	if (out) {
		hdr_end = strstr(buf, "\r\n\r\n");
		*out = strdup(hdr_end ? hdr_end + 4 : "");
	}
	return status;
}

static int
http_call(int port, const char *method, const char *path, const char *body, char **out)
{
	int fd = http_send(port, method, path, body);

	return fd == -1 ? -1 : http_read(fd, HARNESS_IO_TIMEOUT_MS, out);
}

static const char *
message(const char *body, char *buf, size_t cap)
{
	json_t *j = json_loads(body, 0, NULL);

	snprintf(buf, cap, "%s", j ? json_string_value(json_object_get(j, "message")) ?: "" : "");
	json_decref(j);
	return buf;
}

Test(integresql, a_hash_a_websocket_client_builds_is_423_and_a_get_waits_for_its_finish)
{
	struct test_broker tb;
	struct fxb_client *c;
	char hash[64], params[128], path[256], msg[256], *out = NULL;
	char *res = NULL;
	json_t *j;
	int fd, status;
	json_int_t id;

	snprintf(hash, sizeof hash, "c-ws-%d", (int)getpid());
	snprintf(params, sizeof params, "{\"hash\": \"%s\"}", hash);
	BROKER_START(&tb, "--integresql", "--state-dir", state_dir());
	CLIENT_NEW(c, &tb, NULL, NULL);
	cr_assert_eq(fxb_call(c, "pg.template.ensure", params, &res), 0, "%s", fxb_client_errmsg(c));
	j = json_loads(res, 0, NULL);
	free(res);
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "build");
	json_decref(j);

	/* Over REST the hash is taken: 423 at once, as IntegreSQL answers. */
	status = http_call(tb.port, "POST", "/api/v1/templates", params, &out);
	cr_assert_eq(status, 423, "%d %s", status, out);
	cr_assert_str_eq(message(out, msg, sizeof msg), "template is already initialized");
	free(out);

	/* A get waits for the WebSocket client's build; the loop serves others meanwhile. */
	snprintf(path, sizeof path, "/api/v1/templates/%s/tests", hash);
	fd = http_send(tb.port, "GET", path, NULL);
	cr_assert_neq(fd, -1);
	cr_assert_eq(http_read(fd, 300, NULL), 0, "the get was answered before the finish");
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200);
	cr_assert_eq(fxb_call(c, "pg.template.finish", params, NULL), 0, "%s", fxb_client_errmsg(c));
	status = http_read(fd, HARNESS_IO_TIMEOUT_MS, &out);
	cr_assert_eq(status, 200, "%d %s", status, out);
	j = json_loads(out, 0, NULL);
	free(out);
	cr_assert_not_null(j);
	id = json_integer_value(json_object_get(j, "id"));
	cr_assert_gt(id, 0);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "database"),
	    "templateHash")), hash);
	cr_assert_gt(strlen(json_string_value(json_object_get(json_object_get(json_object_get(j,
	    "database"), "config"), "database")) ?: ""), 0);
	json_decref(j);

	/* Given back, then the admin reset leaves the broker holding nothing. */
	snprintf(path, sizeof path, "/api/v1/templates/%s/tests/%lld/recreate", hash, (long long)id);
	cr_assert_eq(http_call(tb.port, "POST", path, NULL, NULL), 204);
	cr_assert_eq(http_call(tb.port, "POST", path, NULL, &out), 404);
	cr_assert_str_eq(message(out, msg, sizeof msg), "test database not found");
	free(out);
	cr_assert_eq(http_call(tb.port, "DELETE", "/api/v1/admin/templates", NULL, NULL), 204);
	j = test_broker_status(&tb);
	cr_assert_eq(json_integer_value(json_object_get(j, "leases")), 0);
	json_decref(j);
	fxb_client_free(c);
	BROKER_STOP(&tb);
	remove_state();
}

Test(integresql, is_not_served_unless_enabled)
{
	struct test_broker tb;
	char *out = NULL;

	BROKER_START(&tb, "--state-dir", state_dir());
	cr_assert_eq(http_call(tb.port, "GET", "/api/v1/templates/x/tests", NULL, NULL), 404);
	cr_assert_eq(http_call(tb.port, "POST", "/api/v1/templates", "{\"hash\": \"x\"}", &out), 405);
	free(out);
	cr_assert_eq(http_get(tb.port, "/healthz", NULL), 200);
	BROKER_STOP(&tb);
	remove_state();
}
