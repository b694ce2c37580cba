/* test_limits.c: what one connection may cost the broker, authenticated or not.
 *
 * Attacks against the real broker binary with a token file: rpc.discover in batches
 * before authentication, batches past their caps, a client that sends and never reads,
 * 2,000 connections that never authenticate, over-long Authorization headers. The
 * broker's memory is read from /proc/<pid>/status (VmRSS now, VmHWM the peak) and held
 * against the caps; the margins are generous (a shared machine), yet far below what the
 * attacks cost without the caps (hundreds of MB).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define TOKEN "limits-token"
#define MIB (1024L * 1024)

static struct test_broker tb;

/* Starts tb with a token file and a config file holding extra (JSON members, may be ""). */
static void start(const char *extra)
{
	char tokens[512], config[512], text[1024];

	cr_assert_eq(temp_file(tokens, sizeof(tokens), "limits-tokens", TOKEN "\n"), 0);
	snprintf(text, sizeof(text), "{\"token_file\": \"%s\"%s%s}", tokens, *extra ? ", " : "",
	    extra);
	cr_assert_eq(temp_file(config, sizeof(config), "limits-config.json", text), 0);
	BROKER_START(&tb, "--config", config, "--ports", "26600-26609");
}

/* A field of /proc/<pid>/status in kB ("VmRSS", "VmHWM"), or -1. */
static long proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return kb;
}

/* A batch of n calls of method with ids first.., as text (malloc'd). */
static char *batch_text(const char *method, int n, int first)
{
	json_t *b = json_array();
	char *text;

	for (int i = 0; i < n; i++)
		json_array_append_new(b, json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id",
		    first + i, "method", method));
	text = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	return text;
}

static void authenticate(struct raw_ws *w)
{
	json_t *r = raw_rpc_call(w, "session.hello", json_pack("{s:s}", "token", TOKEN));

	cr_assert_not_null(raw_rpc_result(r), "session.hello: %s", r ? json_dumps(r, 0) : "none");
	json_decref(r);
}

Test(limits, nothing_but_session_hello_before_authentication_even_in_batches)
{
	struct raw_ws w;
	char *text = batch_text("rpc.discover", 100, 1);
	long base_kb, peak_kb;
	json_t *r;
	size_t i;
	json_t *v;

	start("");
	base_kb = proc_kb(tb.pid, "VmRSS");
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	r = raw_rpc_call(&w, "rpc.discover", json_object());
	cr_assert_eq(raw_rpc_error_code(r), 1001, "rpc.discover before hello: %s", json_dumps(r, 0));
	json_decref(r);
	/* The attack of the issue: batches of rpc.discover, many times, never authenticated. */
	for (int k = 0; k < 50; k++) {
		cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, strlen(text), 0), 0);
		r = raw_rpc_read(&w, HARNESS_IO_TIMEOUT_MS);
		cr_assert(json_is_array(r), "batch %d: %s", k, r ? json_dumps(r, 0) : "no reply");
		cr_assert_eq(json_array_size(r), 100);
		json_array_foreach(r, i, v)
			cr_assert_eq(raw_rpc_error_code(v), 1001, "%s", json_dumps(v, 0));
		json_decref(r);
	}
	peak_kb = proc_kb(tb.pid, "VmHWM");
	printf("limits: 50 batches of 100 rpc.discover before auth: RSS %ld kB before, peak %ld kB\n",
	    base_kb, peak_kb);
	cr_assert_lt(peak_kb - base_kb, 32 * 1024, "the broker grew from %ld to %ld kB", base_kb,
	    peak_kb);
	free(text);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(limits, a_batch_over_max_batch_calls_is_refused_whole)
{
	struct raw_ws w;
	char *text = batch_text("session.hello", 101, 1);
	json_t *r;

	start("\"max_batch_calls\": 100");
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, strlen(text), 0), 0);
	r = raw_rpc_read(&w, HARNESS_IO_TIMEOUT_MS);
	cr_assert(json_is_object(r), "%s", r ? json_dumps(r, 0) : "no reply");
	cr_assert_eq(raw_rpc_error_code(r), 1020, "%s", json_dumps(r, 0));
	cr_assert_str_eq(raw_rpc_error_name(r), "BATCH_TOO_LARGE");
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(r, "error"),
	    "data"), "limit")), 100);
	json_decref(r);
	free(text);
	/* 100 is allowed. */
	text = batch_text("session.hello", 100, 1);
	cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, strlen(text), 0), 0);
	r = raw_rpc_read(&w, HARNESS_IO_TIMEOUT_MS);
	cr_assert(json_is_array(r) && json_array_size(r) == 100, "%s", r ? json_dumps(r, 0) : "none");
	json_decref(r);
	free(text);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(limits, a_batch_stops_running_calls_once_its_replies_pass_max_batch_reply_bytes)
{
	struct raw_ws w;
	char *text = batch_text("rpc.discover", 100, 1), *out;
	size_t i, ran = 0, refused = 0, len;
	json_t *r, *v;

	start("\"max_batch_reply_bytes\": 262144");
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	authenticate(&w);
	cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, strlen(text), 0), 0);
	r = raw_rpc_read(&w, HARNESS_IO_TIMEOUT_MS);
	cr_assert(json_is_array(r) && json_array_size(r) == 100, "%s", r ? "not 100 replies" : "none");
	json_array_foreach(r, i, v) {
		if (raw_rpc_result(v)) {
			cr_assert_eq(refused, 0, "call %zu ran after a refused one", i);
			ran++;
		} else {
			cr_assert_eq(raw_rpc_error_code(v), 1021, "%s", json_dumps(v, 0));
			cr_assert_str_eq(raw_rpc_error_name(v), "BATCH_REPLY_TOO_LARGE");
			refused++;
		}
	}
	out = json_dumps(r, JSON_COMPACT);
	len = strlen(out);
	printf("limits: 100 rpc.discover in one batch, cap 256 KiB: %zu ran, %zu refused, "
	    "%zu bytes\n", ran, refused, len);
	cr_assert_gt(ran, 0);
	cr_assert_gt(refused, 0);
	/* At most one reply past the cap, plus the refusals. */
	cr_assert_lt(len, 262144 + 80 * 1024 + refused * 400);
	free(out);
	json_decref(r);
	free(text);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

/* 1 if the peer of fd has closed or reset the connection within timeout_ms; reads
 * nothing. */
static int peer_closed(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

Test(limits, a_client_that_never_reads_is_not_read_past_the_reply_cap_then_dropped)
{
	struct raw_ws w;
	char *text;
	struct timeval tv = { .tv_sec = 2 };
	int small = 4096, sent = 0;
	long base_kb, peak_kb;

	start("\"max_reply_queue_bytes\": 4194304, \"reply_stall_ms\": 3000");
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101);
	authenticate(&w);
	base_kb = proc_kb(tb.pid, "VmRSS");
	setsockopt(w.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(w.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Each message asks for about 1 MiB of replies; 300 of them would be 300 MiB. Padded
	 * with blanks to 256 KiB, they are more than the sockets' buffers hold, so the sends
	 * block (and time out) once the broker stops reading. */
	{
		char *calls = batch_text("rpc.discover", 15, 1);
		size_t n = strlen(calls), pad = 256 * 1024;
		text = malloc(pad + 1);
		memset(text, ' ', pad);
		memcpy(text, calls, n);
		text[pad] = '\0';
		free(calls);
	}
	for (; sent < 300; sent++)
		if (raw_ws_send(&w, WS_TEXT, text, strlen(text), 0) != 0)
			break;
	sleep_ms(500);
	peak_kb = proc_kb(tb.pid, "VmHWM");
	printf("limits: a client that never reads sent %d of 300 messages (1 MiB of replies "
	    "each): RSS %ld kB before, peak %ld kB\n", sent, base_kb, peak_kb);
	cr_assert_lt(sent, 300, "the broker read every message of a client that reads nothing");
	cr_assert_lt(peak_kb - base_kb, 48 * 1024, "the broker grew from %ld to %ld kB", base_kb,
	    peak_kb);
	/* reply_stall_ms later it is dropped. */
	cr_assert(peer_closed(w.fd, 15000), "the broker kept a stalled connection");
	free(text);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(limits, connections_that_never_authenticate_are_closed_after_auth_timeout_ms)
{
	enum { N = 2000 };
	static struct raw_ws w[N];
	struct rlimit rl;
	struct raw_ws ok;
	struct ws_msg m;
	long base_kb, peak_kb;
	int closed = 0, policy = 0;
	json_t *r;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < N + 200) {
		rl.rlim_cur = rl.rlim_max < N + 200 ? rl.rlim_max : N + 200;
		cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	cr_assert_geq(rl.rlim_cur, (rlim_t)N + 100, "RLIMIT_NOFILE %lu is too low",
	    (unsigned long)rl.rlim_cur);
	start("\"auth_timeout_ms\": 4000");
	base_kb = proc_kb(tb.pid, "VmRSS");
	/* One that authenticates stays past the deadline. */
	cr_assert_eq(raw_ws_connect(&ok, tb.port, "fixture-broker.v1", NULL), 101);
	authenticate(&ok);
	for (int i = 0; i < N; i++)
		cr_assert_eq(raw_ws_connect(&w[i], tb.port, "fixture-broker.v1", NULL), 101,
		    "connection %d: %s", i, w[i].status_line);
	peak_kb = proc_kb(tb.pid, "VmRSS");
	for (int i = 0; i < N; i++) {
		int rc = raw_ws_read(&w[i], &m, 15000);
		if (rc == 0 && m.opcode == WS_CLOSE) {
			closed++;
			policy += m.close_code == 1008;
		} else if (rc == RAW_WS_EOF) {
			closed++;
		}
		if (rc == 0)
			raw_ws_msg_clear(&m);
		raw_ws_close(&w[i]);
	}
	printf("limits: %d silent unauthenticated connections: RSS %ld kB before, %ld kB with "
	    "them; %d closed (%d with 1008)\n", N, base_kb, peak_kb, closed, policy);
	cr_assert_eq(closed, N, "only %d of %d silent connections were closed", closed, N);
	cr_assert_eq(policy, N);
	r = raw_rpc_call(&ok, "lease.list", json_object());
	cr_assert_not_null(raw_rpc_result(r), "the authenticated session: %s",
	    r ? json_dumps(r, 0) : "closed");
	json_decref(r);
	raw_ws_close(&ok);
	BROKER_STOP(&tb);
}

Test(limits, an_over_long_bearer_header_is_refused_never_taken_for_absent)
{
	/* Up to what lws parses (max_http_header_data, 16 KiB); a longer head is dropped by
	 * lws before any callback, which is no downgrade either. */
	static const size_t lens[] = { 400, 600, 4000, 5000, 10000 };
	struct raw_ws w;

	start("");
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *tok = malloc(lens[i] + 1);
		int status;
		memset(tok, 'a', lens[i]);
		tok[lens[i]] = '\0';
		status = raw_ws_connect(&w, tb.port, "fixture-broker.v1", tok);
		printf("limits: a %zu-byte bearer token: HTTP %d\n", lens[i], w.http_status);
		cr_assert(w.http_status == 401 || w.http_status == 431,
		    "a %zu-byte bearer token: %d (%s)", lens[i], status, w.status_line);
		raw_ws_close(&w);
		free(tok);
	}
	BROKER_STOP(&tb);
}
