/* test_sdk_tls.c: libfxb over wss:// against the real broker serving TLS.
 *
 * The certificates are made per test with the openssl command line: a CA, a certificate
 * for 127.0.0.1 signed by it (the broker's), and a second CA that signed nothing. The
 * client verifies the broker with tls.ca (fxb_client_new_ex) and leases; a wrong CA fails
 * with FXB_ECONNECT saying why. Then the TLS transport under load: threads sharing one
 * client write requests of several MiB (which the socket takes in parts, so OpenSSL's
 * writes are retried from the client's queue) while others read large replies, all on one
 * SSL under its lock.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

#define THREADS 4
#define ROUNDS 20
#define BIG_BYTES (6 * 1024 * 1024)

static struct test_broker tb;
static char dir[] = "/tmp/fxb-tls-XXXXXX";
static char ca[64], other_ca[64];

static void
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Makes the certificates and starts a broker serving wss:// with them. */
static void
start_tls_broker(void)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char cert[64], key[64];

	cr_assert_not_null(mkdtemp(dir));
	sh("cd %s && openssl req -x509 %s -days 2 -subj /CN=ca -keyout ca.key -out ca.pem "
	   "2>/dev/null && openssl req -x509 %s -days 2 -subj /CN=other -keyout other.key "
	   "-out other.pem 2>/dev/null && openssl req %s -subj /CN=broker -keyout server.key "
	   "-out server.csr 2>/dev/null && echo subjectAltName=IP:127.0.0.1 > server.ext && "
	   "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
	   "-extfile server.ext -out server.pem 2>/dev/null && chmod 600 server.key",
	    dir, ec, ec, ec);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(other_ca, sizeof other_ca, "%s/other.pem", dir);
	snprintf(cert, sizeof cert, "%s/server.pem", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
	BROKER_START(&tb, "--ports", "26560-26569", "--port-quarantine-ms", "0",
	    "--max-message-bytes", "16777216", "--tls-cert", cert, "--tls-key", key);
	cr_assert_eq(strncmp(tb.url, "wss://", 6), 0, "not a wss:// broker: %s", tb.url);
}

static void
stop_tls_broker(void)
{
	BROKER_STOP(&tb);
	sh("rm -rf %s", dir);
}

static struct fxb_client *
tls_client(const char *ca_file, int *rc, char *err, size_t errlen)
{
	const char *settings[] = {"tls.ca", ca_file, NULL};
	struct fxb_options o = {.url = tb.url, .timeout_ms = 20000};
	struct fxb_client *c = NULL;

	*rc = fxb_client_new_ex(&c, &o, settings, err, errlen);
	return c;
}

TestSuite(sdk_tls, .init = start_tls_broker, .fini = stop_tls_broker);

Test(sdk_tls, the_client_verifies_the_broker_with_tls_ca_and_leases)
{
	struct fxb_client *c;
	struct fxb_lease *l;
	char err[512];
	int rc;

	c = tls_client(ca, &rc, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(fxb_client_state(c), FXB_STATE_OPEN);
	cr_assert_eq(test_acquire_ports(c, 2, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_geq(test_lease_port(l, 0), 26560);
	cr_assert_eq(fxb_lease_release(c, l), 0, "%s", fxb_client_errmsg(c));
	fxb_client_free(c);
}

Test(sdk_tls, a_broker_another_ca_signed_is_refused_with_FXB_ECONNECT_saying_why)
{
	char err[512];
	int rc;

	cr_assert_null(tls_client(other_ca, &rc, err, sizeof err));
	cr_assert_eq(rc, FXB_ECONNECT, "%d: %s", rc, err);
	cr_assert_not_null(strstr(err, "the broker's TLS certificate was not accepted"), "%s", err);
	cr_assert_not_null(strstr(err, other_ca), "the message does not say which CAs: %s", err);
}

struct load {
	struct fxb_client *c;
	int big; /* sends large requests rather than asking for large replies */
	int failures;
	char first[512];
};

static void *
load_main(void *arg)
{
	struct load *ld = arg;
	char *params = NULL, *result;
	int i, rc;

	if (ld->big) {
		/* A call the broker refuses by name, after reading all of it. */
		params = malloc(BIG_BYTES + 32);
		strcpy(params, "{\"pad\":\"");
		memset(params + 8, 'x', BIG_BYTES);
		strcpy(params + 8 + BIG_BYTES, "\"}");
	}
	for (i = 0; i < ROUNDS; i++) {
		result = NULL;
		rc = ld->big ? fxb_call(ld->c, "no.such.method", params, &result)
		             : fxb_call(ld->c, "rpc.discover", NULL, &result);
		if (ld->big ? rc != FXB_EBROKER || strcmp(fxb_client_errname(ld->c), "METHOD_NOT_FOUND")
		            : rc != 0 || !result || strlen(result) < 10000) {
			if (!ld->failures++)
				snprintf(ld->first, sizeof ld->first, "round %d: %d %s", i, rc,
				    fxb_client_errmsg(ld->c));
		}
		free(result);
	}
	free(params);
	return NULL;
}

Test(sdk_tls, threads_sharing_a_client_write_and_read_large_messages_over_one_ssl)
{
	struct load ld[THREADS];
	pthread_t th[THREADS];
	struct fxb_client *c;
	char err[512];
	int i, rc;

	c = tls_client(ca, &rc, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	for (i = 0; i < THREADS; i++) {
		ld[i] = (struct load){.c = c, .big = i % 2};
		cr_assert_eq(pthread_create(&th[i], NULL, load_main, &ld[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++)
		cr_assert_eq(ld[i].failures, 0, "thread %d: %d failures, the first %s", i,
		    ld[i].failures, ld[i].first);
	cr_assert_eq(fxb_client_state(c), FXB_STATE_OPEN);
	cr_assert_eq(fxb_client_sessions_lost(c), 0);
	fxb_client_free(c);
}
