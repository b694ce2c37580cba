/* test_sdk_malformed.c: libfxb against a peer that sends a message that is not JSON.
 *
 * The real broker never sends one, so a stand-in plays the broker here: a thread with a
 * listening socket on 127.0.0.1 that does just enough of RFC 6455 to accept the client
 * (the upgrade, unmasking its frames, unmasked text frames back) and answers session.hello
 * as the broker would. Then it sends text that is not JSON, or not UTF-8, and records the
 * close frame the client answers with. The client must fail the connection with 1007 and
 * the call at once with FXB_EPROTO, instead of letting it time out, and then reconnect and
 * resume its session as after any lost connection. The stand-in never asserts (it runs on
 * its own thread): it writes what went wrong into its report for the test to assert on.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

/* Calls wait up to this long; the failure must come long before it. */
#define CLIENT_TIMEOUT_MS 20000
#define QUICK_MS 10000

enum bad_message {
	NOT_JSON,      /* instead of the reply to the first call */
	NOT_UTF8,      /* a reply to the first call with an invalid UTF-8 sequence in a string */
	HELLO_NOT_JSON /* instead of the reply to session.hello */
};

struct peer {
	enum bad_message bad;
	int lfd;
	int port;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Under mu. */
	int close_code;  /* of the client's close frame after the bad message; 0: none yet */
	int resumed;     /* the second connection's hello carried the resume token */
	int served;      /* the second connection's call was answered */
	int finished;    /* the thread is done */
	char error[256]; /* the first thing that went wrong, "" if nothing */
};

static void peer_error(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void peer_error(struct peer *p, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&p->mu);
	if (!p->error[0]) {
		va_start(ap, fmt);
		vsnprintf(p->error, sizeof(p->error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Reads exactly len bytes within HARNESS_IO_TIMEOUT_MS. Returns 0, or -1 on EOF, error or
 * timeout. */
static int read_full(int fd, void *buf, size_t len)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	struct pollfd pfd = { fd, POLLIN, 0 };
	char *b = buf;
	uint64_t now;
	ssize_t n;

	while (len) {
		if ((now = clock_ms()) >= deadline)
			return -1;
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		n = recv(fd, b, len, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_all(int fd, const void *data, size_t len)
{
	const char *b = data;
	ssize_t n;

	while (len) {
		n = send(fd, b, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Accepts one connection within HARNESS_IO_TIMEOUT_MS and answers its upgrade with the
 * subprotocol libfxb asks for. The accept value is computed with libwebsockets (which the
 * suites link anyway), not with libfxb's own SHA-1. Returns the socket, or -1. */
static int peer_accept(struct peer *p)
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	struct pollfd pfd = { p->lfd, POLLIN, 0 };
	char head[4096], text[128], accept_value[64], answer[512];
	unsigned char digest[20];
	const char *key, *end;
	size_t len = 0, klen;
	ssize_t n;
	int fd;

	if (poll(&pfd, 1, HARNESS_IO_TIMEOUT_MS) != 1 || (fd = accept(p->lfd, NULL, NULL)) < 0) {
		peer_error(p, "the client did not connect");
		return -1;
	}
	/* The client sends nothing after its request before the answer: read to its end. */
	while (len < 4 || !memmem(head, len, "\r\n\r\n", 4)) {
		if (len == sizeof(head) - 1 || read_full(fd, head + len, 1)) {
			peer_error(p, "no whole upgrade request");
			close(fd);
			return -1;
		}
		len++;
	}
	head[len] = '\0';
	if (!(key = strcasestr(head, "\r\nSec-WebSocket-Key:"))) {
		peer_error(p, "no Sec-WebSocket-Key in %s", head);
		close(fd);
		return -1;
	}
	key += strlen("\r\nSec-WebSocket-Key:");
	key += strspn(key, " \t");
	end = strstr(key, "\r\n");
	klen = (size_t)(end - key);
	if (klen + sizeof(guid) > sizeof(text)) {
		peer_error(p, "a Sec-WebSocket-Key of %zu bytes", klen);
		close(fd);
		return -1;
	}
	memcpy(text, key, klen);
	memcpy(text + klen, guid, sizeof(guid) - 1);
	lws_SHA1((const unsigned char *)text, klen + sizeof(guid) - 1, digest);
	lws_b64_encode_string((const char *)digest, sizeof(digest), accept_value, sizeof(accept_value));
	n = snprintf(answer, sizeof(answer),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: fixture-broker.v1\r\n\r\n",
	    accept_value);
	if (send_all(fd, answer, (size_t)n)) {
		peer_error(p, "cannot answer the upgrade");
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one frame from the client and unmasks it into buf (NUL-terminated). Returns its
 * opcode, or -1 on EOF, timeout or a frame this stand-in does not expect. */
static int peer_read(int fd, char *buf, size_t cap, size_t *len)
{
	unsigned char h[2], ext[8], key[4];
	uint64_t n = 0;
	size_t i;

	if (read_full(fd, h, 2) || !(h[1] & 0x80))
		return -1;
	n = h[1] & 0x7f;
	if (n == 126) {
		if (read_full(fd, ext, 2))
			return -1;
		n = (uint64_t)ext[0] << 8 | ext[1];
	} else if (n == 127) {
		if (read_full(fd, ext, 8))
			return -1;
		for (i = 0, n = 0; i < 8; i++)
			n = n << 8 | ext[i];
	}
	if (n >= cap || read_full(fd, key, 4) || read_full(fd, buf, (size_t)n))
		return -1;
	for (i = 0; i < n; i++)
		buf[i] ^= (char)key[i % 4];
	buf[n] = '\0';
	*len = (size_t)n;
	return h[0] & 0x0f;
}

/* Sends one final, unmasked frame of opcode with len (< 65536) bytes. Returns 0 or -1. */
static int peer_send(int fd, int opcode, const void *data, size_t len)
{
	unsigned char h[4] = { (unsigned char)(0x80 | opcode) };
	size_t hlen = 2;

	if (len < 126) {
		h[1] = (unsigned char)len;
	} else {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hlen = 4;
	}
	return send_all(fd, h, hlen) || send_all(fd, data, len) ? -1 : 0;
}

/* Reads one text message and parses it as a JSON-RPC call. Returns it, or NULL. */
static json_t *peer_read_call(struct peer *p, int fd, const char *what)
{
	char buf[4096];
	size_t len;
	json_t *call;
	int op = peer_read(fd, buf, sizeof(buf), &len);

	if (op != WS_TEXT) {
		peer_error(p, "%s: a frame with opcode %d instead of a text message", what, op);
		return NULL;
	}
	if (!(call = json_loadb(buf, len, 0, NULL)) || !json_is_integer(json_object_get(call, "id"))) {
		peer_error(p, "%s: not a JSON-RPC call: %s", what, buf);
		json_decref(call);
		return NULL;
	}
	return call;
}

/* Sends the reply {"jsonrpc":"2.0","id":<call's id>,"result":result (stolen)}. */
static int peer_reply(int fd, const json_t *call, json_t *result)
{
	json_t *reply = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id",
	    json_object_get(call, "id"), "result", result);
	char *text = json_dumps(reply, JSON_COMPACT);
	int rc = text ? peer_send(fd, WS_TEXT, text, strlen(text)) : -1;

	free(text);
	json_decref(reply);
	return rc;
}

static json_t *hello_result(void)
{
	return json_pack("{s:s,s:s,s:{s:i}}", "session", "s-1", "resume", "r-1", "limits",
	    "max_message_bytes", 1 << 20);
}

/* After the bad message: the client's close frame, then the end of the stream. */
static void peer_expect_close(struct peer *p, int fd)
{
	char buf[256];
	size_t len;
	int op = peer_read(fd, buf, sizeof(buf), &len), code;

	if (op != WS_CLOSE || len < 2) {
		peer_error(p, "after the bad message: opcode %d with %zu bytes, not a close frame with a code",
		    op, op < 0 ? 0 : len);
		code = -1;
	} else {
		code = (unsigned char)buf[0] << 8 | (unsigned char)buf[1];
	}
	if (op >= 0 && peer_read(fd, buf, sizeof(buf), &len) != -1)
		peer_error(p, "the client went on after its close frame");
	pthread_mutex_lock(&p->mu);
	p->close_code = code;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* The first connection: hello, then the bad message in its place or the first call's. */
static int peer_first(struct peer *p)
{
	/* \xc3 starts a two-byte sequence that "(" does not continue. */
	static const char not_utf8_fmt[] = "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":\"\xc3(\"}";
	static const char not_json[] = "this is not JSON";
	char bad[128];
	json_t *hello, *call = NULL;
	int fd = peer_accept(p), rc = -1;

	if (fd < 0)
		return -1;
	if (!(hello = peer_read_call(p, fd, "the first hello")))
		goto out;
	if (p->bad == HELLO_NOT_JSON) {
		if (peer_send(fd, WS_TEXT, not_json, strlen(not_json)))
			goto out;
		peer_expect_close(p, fd);
		rc = 0;
		goto out;
	}
	if (peer_reply(fd, hello, hello_result()) || !(call = peer_read_call(p, fd, "the first call")))
		goto out;
	if (p->bad == NOT_JSON) {
		snprintf(bad, sizeof(bad), "%s", not_json);
	} else {
		snprintf(bad, sizeof(bad), not_utf8_fmt,
		    (long long)json_integer_value(json_object_get(call, "id")));
	}
	if (peer_send(fd, WS_TEXT, bad, strlen(bad)))
		goto out;
	peer_expect_close(p, fd);
	rc = 0;
out:
	json_decref(hello);
	json_decref(call);
	close(fd);
	return rc;
}

/* The second connection: a hello that must resume, a call answered as the broker would,
 * then the client's closing handshake. */
static void peer_second(struct peer *p)
{
	json_t *hello, *call = NULL;
	const char *resume;
	char buf[256];
	size_t len;
	int fd = peer_accept(p);

	if (fd < 0)
		return;
	if (!(hello = peer_read_call(p, fd, "the second hello")))
		goto out;
	resume = json_string_value(json_object_get(json_object_get(hello, "params"), "resume"));
	pthread_mutex_lock(&p->mu);
	p->resumed = resume && !strcmp(resume, "r-1");
	pthread_mutex_unlock(&p->mu);
	if (peer_reply(fd, hello, hello_result()) || !(call = peer_read_call(p, fd, "the second call")))
		goto out;
	if (peer_reply(fd, call, json_pack("{s:b}", "served", 1)))
		goto out;
	pthread_mutex_lock(&p->mu);
	p->served = 1;
	pthread_mutex_unlock(&p->mu);
	if (peer_read(fd, buf, sizeof(buf), &len) == WS_CLOSE)
		peer_send(fd, WS_CLOSE, buf, len >= 2 ? 2 : 0);
out:
	json_decref(hello);
	json_decref(call);
	close(fd);
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	if (!peer_first(p) && p->bad != HELLO_NOT_JSON)
		peer_second(p);
	pthread_mutex_lock(&p->mu);
	p->finished = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void peer_start(struct peer *p, enum bad_message bad)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);

	memset(p, 0, sizeof(*p));
	p->bad = bad;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(p->lfd, 0);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p->lfd, 4), 0);
	cr_assert_eq(getsockname(p->lfd, (struct sockaddr *)&sa, &salen), 0);
	p->port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* Waits for the stand-in to finish (it gives up on its own within its I/O timeouts). */
static void peer_join(struct peer *p)
{
	pthread_join(p->thread, NULL);
	close(p->lfd);
}

/* The close code the client sent after the bad message, waiting for it up to
 * HARNESS_IO_TIMEOUT_MS; 0 when none came. */
static int peer_close_code(struct peer *p)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	int code;

	pthread_mutex_lock(&p->mu);
	while (!p->close_code && !p->finished && clock_ms() < deadline) {
		pthread_mutex_unlock(&p->mu);
		sleep_ms(10);
		pthread_mutex_lock(&p->mu);
	}
	code = p->close_code;
	pthread_mutex_unlock(&p->mu);
	return code;
}

static struct fxb_client *client_of(const struct peer *p, char *err, size_t errlen, int *rc)
{
	char url[64];
	struct fxb_options opts = { .url = url, .token = "", .client = "malformed-tests",
		.timeout_ms = CLIENT_TIMEOUT_MS };
	struct fxb_client *c = NULL;

	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", p->port);
	*rc = fxb_client_new(&c, &opts, err, errlen);
	return c;
}

/* The first call meets the bad message: it must fail at once with FXB_EPROTO and say
 * why; the connection must close with 1007; the next call must go through a resumed
 * session on a new connection. */
static void check_bad_reply(enum bad_message bad, const char *cause)
{
	struct peer p;
	struct fxb_client *c;
	char err[512], *result = NULL;
	uint64_t start, took;
	int rc;

	peer_start(&p, bad);
	c = client_of(&p, err, sizeof(err), &rc);
	cr_assert_eq(rc, 0, "fxb_client_new: %d: %s", rc, err);

	start = clock_ms();
	rc = fxb_call(c, "broker.status", NULL, &result);
	took = clock_ms() - start;
	cr_expect_eq(rc, FXB_EPROTO, "fxb_call returned %d after %llu ms: %s", rc,
	    (unsigned long long)took, fxb_client_errmsg(c));
	cr_expect_lt(took, QUICK_MS, "the call failed only after %llu ms",
	    (unsigned long long)took);
	cr_expect_null(result);
	cr_expect(strstr(fxb_client_errmsg(c), cause) != NULL, "the message does not say \"%s\": %s",
	    cause, fxb_client_errmsg(c));
	cr_expect(strstr(fxb_client_errmsg(c), "broker.status: ") == fxb_client_errmsg(c),
	    "the message does not name the call: %s", fxb_client_errmsg(c));
	cr_expect_eq(peer_close_code(&p), 1007, "the client closed with %d",
	    peer_close_code(&p));

	rc = fxb_call(c, "broker.status", NULL, &result);
	cr_expect_eq(rc, 0, "the call after the bad message: %d: %s", rc, fxb_client_errmsg(c));
	cr_expect_str_eq(result ? result : "(none)", "{\"served\":true}");
	free(result);
	fxb_client_free(c);
	peer_join(&p);
	cr_expect(p.resumed, "the new connection's hello did not resume the session");
	cr_expect(p.served, "the stand-in did not answer the second call");
	cr_expect_str_empty(p.error, "the stand-in: %s", p.error);
}

Test(sdk_malformed, fails_a_call_at_once_when_its_reply_is_not_json)
{
	check_bad_reply(NOT_JSON, "the broker sent a message that is not valid JSON: ");
}

Test(sdk_malformed, fails_a_call_at_once_when_its_reply_is_not_utf8)
{
	check_bad_reply(NOT_UTF8, "the broker sent a message that is not valid UTF-8: ");
}

Test(sdk_malformed, fails_the_new_client_when_the_hello_reply_is_not_json)
{
	struct peer p;
	struct fxb_client *c;
	char err[512] = "";
	uint64_t start, took;
	int rc;

	peer_start(&p, HELLO_NOT_JSON);
	start = clock_ms();
	c = client_of(&p, err, sizeof(err), &rc);
	took = clock_ms() - start;
	cr_expect_null(c);
	fxb_client_free(c);
	cr_expect_eq(rc, FXB_EPROTO, "fxb_client_new returned %d after %llu ms: %s", rc,
	    (unsigned long long)took, err);
	cr_expect_lt(took, QUICK_MS, "fxb_client_new failed only after %llu ms",
	    (unsigned long long)took);
	cr_expect(strstr(err, "the broker sent a message that is not valid JSON: ") != NULL,
	    "%s", err);
	cr_expect_eq(peer_close_code(&p), 1007, "the client closed with %d",
	    peer_close_code(&p));
	peer_join(&p);
	cr_expect_str_empty(p.error, "the stand-in: %s", p.error);
}
