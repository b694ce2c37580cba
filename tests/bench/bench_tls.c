/* bench_tls.c: a lease round trip over wss:// against the same over ws://, one client.
 *
 * Makes a throwaway certificate for 127.0.0.1 with the openssl CLI, starts two real
 * brokers (one with --tls-cert/--tls-key, one without: with TLS the port speaks TLS only),
 * and times lease.acquire + lease.release of one port from one client over each. The
 * client is this file's own: a blocking WebSocket client over a socket, or over OpenSSL on
 * that socket, with everything else the same, so the ratio is TLS's cost alone (libfxb
 * speaks ws:// only). It verifies the broker's certificate against the one it made. The
 * two are measured in alternating blocks so that a noisy neighbour hits both alike.
 * Figures are printed, never asserted.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fxb.h"
#include "harness.h"

#include "bench.h"

#define BLOCKS 4
#define PAIRS_PER_BLOCK 1000
#define WARMUP 100
#define GOAL_RATIO 1.3
#define IO_TIMEOUT_MS 10000

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct conn {
	int fd;
	SSL *ssl; /* NULL: plain ws:// */
	char buf[8192];
	size_t len;
};

static int
conn_write(struct conn *c, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = c->ssl ? SSL_write(c->ssl, p, (int)len) : send(c->fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Appends what arrives next to c->buf. Returns 0 or -1. */
static int
conn_fill(struct conn *c)
{
	struct pollfd pfd = {c->fd, POLLIN, 0};
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return -1;
	if (!(c->ssl && SSL_pending(c->ssl) > 0) && poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
		return -1;
	n = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len))
	           : recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

static void
conn_consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Sends text as one masked text frame. */
static int
ws_send(struct conn *c, const char *text)
{
	static const unsigned char mask[4] = {0x1f, 0x2e, 0x3d, 0x4c};
	unsigned char f[4096];
	size_t len = strlen(text), h = 0;

	if (len + 8 > sizeof(f))
		return -1;
	f[h++] = 0x81;
	if (len < 126) {
		f[h++] = (unsigned char)(0x80 | len);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (unsigned char)(len >> 8);
		f[h++] = (unsigned char)len;
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = (unsigned char)(text[i] ^ mask[i % 4]);
	return conn_write(c, f, h + len);
}

/* Reads one unfragmented text frame into out (NUL-terminated). Returns 0 or -1. */
static int
ws_read(struct conn *c, char *out, size_t outlen)
{
	size_t h, len;

	for (;;) {
		const unsigned char *b = (const unsigned char *)c->buf;

		if (c->len >= 2) {
			h = 2;
			len = b[1] & 0x7f;
			if (len == 126 && c->len >= 4) {
				len = (size_t)b[2] << 8 | b[3];
				h = 4;
			}
			if ((b[0] & 0x0f) != 0x1 || len == 127 || len >= outlen)
				return -1;
			if ((len < 126 || h == 4) && c->len >= h + len) {
				memcpy(out, c->buf + h, len);
				out[len] = '\0';
				conn_consume(c, h + len);
				return 0;
			}
		}
		if (conn_fill(c) == -1)
			return -1;
	}
}

/* Sends a request and reads its reply into out; 0 if it is a result. */
static int
ws_call(struct conn *c, const char *req, char *out, size_t outlen)
{
	if (ws_send(c, req) == -1 || ws_read(c, out, outlen) == -1)
		return -1;
	return strstr(out, "\"result\"") ? 0 : -1;
}

/* Connects to 127.0.0.1:port, over TLS when ctx is set, upgrades and says hello. */
static int
conn_open(struct conn *c, int port, SSL_CTX *ctx)
{
	char req[512], reply[1024];
	char *end;

	memset(c, 0, sizeof(*c));
	if ((c->fd = tcp_connect_port(port)) == -1)
		return -1;
	if (ctx) {
		if (!(c->ssl = SSL_new(ctx)) || !SSL_set1_host(c->ssl, "127.0.0.1") ||
		    !SSL_set_fd(c->ssl, c->fd) || SSL_connect(c->ssl) != 1) {
			ERR_print_errors_fp(stderr);
			return -1;
		}
	}
	snprintf(req, sizeof(req),
	    "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
	    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fixture-broker.v1\r\n\r\n",
	    port);
	if (conn_write(c, req, strlen(req)) == -1)
		return -1;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (conn_fill(c) == -1)
			return -1;
	if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0 || !memmem(c->buf, c->len, WS_ACCEPT, 28))
		return -1;
	conn_consume(c, (size_t)(end + 4 - c->buf));
	return ws_call(c,
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session.hello\","
	    "\"params\":{\"client\":\"bench-tls\"}}",
	    reply, sizeof(reply));
}

static void
conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
}

/* One acquire + release; stores its duration in ns. Returns 0 or -1. */
static int
lease_pair(struct conn *c, int *id, uint64_t *ns)
{
	char req[256], reply[2048], lid[64];
	uint64_t t0 = now_ns();
	const char *p;

	snprintf(req, sizeof(req),
	    "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"lease.acquire\","
	    "\"params\":{\"fixtures\":{\"http\":{\"kind\":\"port\"}}}}",
	    ++*id);
	if (ws_call(c, req, reply, sizeof(reply)) == -1 || !(p = strstr(reply, "\"lease\":\"")) ||
	    sscanf(p + 9, "%63[^\"]", lid) != 1)
		return -1;
	snprintf(req, sizeof(req),
	    "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"lease.release\",\"params\":{\"lease\":\"%s\"}}",
	    ++*id, lid);
	if (ws_call(c, req, reply, sizeof(reply)) == -1)
		return -1;
	*ns = now_ns() - t0;
	return 0;
}

/* Runs count pairs (after warm pairs not kept) into s from *n on. Returns 0 or -1. */
static int
block(struct conn *c, int *id, int warm, int count, uint64_t *s, size_t *n)
{
	uint64_t ns;

	for (int i = 0; i < warm + count; i++) {
		if (lease_pair(c, id, &ns) == -1)
			return -1;
		if (i >= warm)
			s[(*n)++] = ns;
	}
	return 0;
}

/* Makes a self-signed certificate for 127.0.0.1 in dir with the openssl CLI. */
static int
make_cert(const char *dir, char *cert, char *key, size_t len)
{
	char cmd[1024];

	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(key, len, "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
	    "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
	    ">/dev/null 2>&1",
	    key, cert);
	if (system(cmd) != 0)
		return -1;
	return chmod(key, 0600);
}

int
main(void)
{
	static uint64_t ws_s[BLOCKS * PAIRS_PER_BLOCK], wss_s[BLOCKS * PAIRS_PER_BLOCK];
	char dir[] = "/tmp/fxb-bench-tls-XXXXXX", cert[256], key[256], err[512], cmd[300];
	struct test_broker plain, tls;
	struct conn cw = {.fd = -1}, cs = {.fd = -1};
	size_t nws = 0, nwss = 0;
	int id = 1, failed = 0, tls_up = 0, plain_up = 0;
	SSL_CTX *ctx = NULL;
	const char *tls_version = "?";

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("== wss against ws (bench_tls) ==\n");
	if (!mkdtemp(dir) || make_cert(dir, cert, key, sizeof(cert)) == -1) {
		fprintf(stderr, "bench_tls: cannot make a certificate with the openssl CLI\n");
		return 1;
	}
	{
		const char *const pa[] = {"--log-level", "error", "--port-quarantine-ms", "0", NULL};
		const char *const ta[] = {"--log-level", "error", "--port-quarantine-ms", "0",
		    "--tls-cert", cert, "--tls-key", key, NULL};

		if (test_broker_start(&plain, pa, err, sizeof(err)) == -1) {
			fprintf(stderr, "bench_tls: %s\n", err);
			failed = 1;
			goto out;
		}
		plain_up = 1;
		if (test_broker_start(&tls, ta, err, sizeof(err)) == -1) {
			fprintf(stderr, "bench_tls: %s\n", err);
			failed = 1;
			goto out;
		}
		tls_up = 1;
	}
	if (!(ctx = SSL_CTX_new(TLS_client_method())) ||
	    SSL_CTX_load_verify_locations(ctx, cert, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		failed = 1;
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (conn_open(&cw, plain.port, NULL) == -1 || conn_open(&cs, tls.port, ctx) == -1) {
		fprintf(stderr, "bench_tls: cannot open the ws or the wss session\n");
		failed = 1;
		goto out;
	}
	tls_version = SSL_get_version(cs.ssl);
	for (int b = 0; b < BLOCKS; b++)
		if (block(&cw, &id, b ? 0 : WARMUP, PAIRS_PER_BLOCK, ws_s, &nws) == -1 ||
		    block(&cs, &id, b ? 0 : WARMUP, PAIRS_PER_BLOCK, wss_s, &nwss) == -1) {
			fprintf(stderr, "bench_tls: a lease round trip failed\n");
			failed = 1;
			goto out;
		}
	{
		double w50 = percentile_us(ws_s, nws, 50), w99 = percentile_us(ws_s, nws, 99);
		double s50 = percentile_us(wss_s, nwss, 50), s99 = percentile_us(wss_s, nwss, 99);

		printf("one client (this bench's own WebSocket client, blocking, on a socket or on "
		       "OpenSSL %s over it); two brokers, --port-quarantine-ms 0; %d blocks of %d "
		       "pairs each, alternating\n",
		    tls_version, BLOCKS, PAIRS_PER_BLOCK);
		printf("  %-44s %9s %9s\n", "", "p50 us", "p99 us");
		printf("  %-44s %9.1f %9.1f\n", "ws://  lease round trip (acquire + release)", w50, w99);
		printf("  %-44s %9.1f %9.1f\n", "wss:// lease round trip (acquire + release)", s50, s99);
		printf("wss / ws (p50): %.2fx (goal <= %.1fx: %s)\n", s50 / w50, GOAL_RATIO,
		    s50 / w50 <= GOAL_RATIO ? "met" : "MISSED");
	}
out:
	conn_close(&cw);
	conn_close(&cs);
	SSL_CTX_free(ctx);
	if (plain_up && test_broker_stop(&plain) != 0)
		failed = 1;
	if (tls_up && test_broker_stop(&tls) != 0)
		failed = 1;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		failed = 1;
	return failed;
}
