/* tls.c: OpenSSL under libfxb's WebSocket, and the socket calls both transports share.
 *
 * The broker is verified the way a browser would: its chain up to a trusted CA (the PEM
 * file the client was given, else the system's trust store), and its certificate naming
 * the host of the URL: an IP address in an IP SAN, a name in a DNS SAN. TLS 1.2 is the
 * oldest version spoken. OpenSSL writes through a socket BIO whose write is send() with
 * MSG_NOSIGNAL, so that a broker gone away never raises SIGPIPE in the host process (the
 * stock socket BIO uses write()).
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int
bio_write(BIO *b, const char *p, int len)
{
	ssize_t n;
	int fd = -1;

	BIO_get_fd(b, &fd);
	BIO_clear_retry_flags(b);
	while ((n = send(fd, p, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT)) == -1 && errno == EINTR)
		;
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

/* The stock socket BIO but for its write (once per process, kept until it ends). */
static void
bio_method_make(void)
{
	const BIO_METHOD *sock = BIO_s_socket();
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
	                                 BIO_TYPE_DESCRIPTOR, "fxb socket");

	if (!m)
		return;
	if (!BIO_meth_set_write(m, bio_write) ||
	    !BIO_meth_set_read(m, BIO_meth_get_read(sock)) ||
	    !BIO_meth_set_puts(m, BIO_meth_get_puts(sock)) ||
	    !BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(sock)) ||
	    !BIO_meth_set_create(m, BIO_meth_get_create(sock)) ||
	    !BIO_meth_set_destroy(m, BIO_meth_get_destroy(sock))) {
		BIO_meth_free(m);
		return;
	}
	bio_method = m;
}

/* strerror_r(err) into why. */
static void
sys_reason(char *why, size_t whylen, int err)
{
	char buf[128];

	snprintf(why, whylen, "%s", strerror_r(err, buf, sizeof buf));
}

/* OpenSSL's reason for the last failure on this thread, or fallback. */
static void
ssl_reason(char *why, size_t whylen, const char *what, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(why, whylen, "%s%s%s", what, r || fallback ? ": " : "", r ? r : fallback ? fallback : "");
	ERR_clear_error();
}

/* 0 if path can be read, else -1 with the reason in why. */
static int
readable(const char *path, const char *what, char *why, size_t whylen)
{
	char buf[128];

	if (!access(path, R_OK))
		return 0;
	snprintf(why, whylen, "cannot read the %s %s: %s", what, path,
	    strerror_r(errno, buf, sizeof buf));
	return -1;
}

SSL_CTX *
tls_context(const char *ca, const char *cert, const char *key, char *why, size_t whylen)
{
	SSL_CTX *ctx;
	char what[320];

	ERR_clear_error();
	/* OpenSSL says "system lib" for a file it cannot open: say which and why. */
	if ((ca && readable(ca, "CA file", why, whylen)) ||
	    (cert && readable(cert, "client certificate", why, whylen)) ||
	    (key && readable(key, "client key", why, whylen)))
		return NULL;
	if (!(ctx = SSL_CTX_new(TLS_client_method()))) {
		ssl_reason(why, whylen, "cannot make a TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* A broker that ends the stream without a close_notify closed it all the same. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* What one send did not take is sent again from the client's own buffer, which may
	 * have moved and grown since: OpenSSL must accept both. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
	       : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(what, sizeof what, "cannot load the CA file %s", ca ? ca : "(system)");
		ssl_reason(why, whylen, what, NULL);
		goto fail;
	}
	if (!cert != !key) {
		snprintf(why, whylen, "a client certificate needs its key and the other way round "
		                      "(tls.cert and tls.key)");
		goto fail;
	}
	if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(what, sizeof what, "cannot load the client certificate %s", cert);
		ssl_reason(why, whylen, what, NULL);
		goto fail;
	}
	if (key && (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	               SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(what, sizeof what, "cannot use the client key %s", key);
		ssl_reason(why, whylen, what, NULL);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *
tls_start(SSL_CTX *ctx, int fd, const char *host, char *why, size_t whylen)
{
	unsigned char addr[16];
	SSL *ssl;
	BIO *bio;
	int ip;

	ERR_clear_error();
	pthread_once(&bio_once, bio_method_make);
	if (!bio_method || !(ssl = SSL_new(ctx))) {
		ssl_reason(why, whylen, "cannot start TLS", "out of memory");
		return NULL;
	}
	if (!(bio = BIO_new(bio_method))) {
		SSL_free(ssl);
		ssl_reason(why, whylen, "cannot start TLS", "out of memory");
		return NULL;
	}
	BIO_set_fd(bio, fd, BIO_NOCLOSE);
	SSL_set_bio(ssl, bio, bio);
	ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
	       : SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) {
		SSL_free(ssl);
		ssl_reason(why, whylen, "cannot start TLS", "the host cannot be checked");
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

int
tls_handshake(SSL *ssl, const char *ca_name, char *why, size_t whylen)
{
	long verify;
	int rc, err;

	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_do_handshake(ssl)) == 1)
		return 0;
	err = SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (err == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	if ((verify = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(why, whylen, "the broker's TLS certificate was not accepted: %s (trusting %s)",
		    X509_verify_cert_error_string(verify), ca_name);
		ERR_clear_error();
	} else if (err == SSL_ERROR_SYSCALL && !ERR_peek_last_error()) {
		if (errno)
			sys_reason(why, whylen, errno);
		else
			snprintf(why, whylen, "the broker closed the connection during the TLS "
			                      "handshake (does it serve wss://?)");
	} else {
		ssl_reason(why, whylen, "the TLS handshake failed", NULL);
	}
	return -1;
}

ssize_t
io_send(pthread_mutex_t *mu, SSL *ssl, int fd, const void *p, size_t len, char *why,
    size_t whylen)
{
	ssize_t n;
	int rc, err;

	if (!ssl) {
		while ((n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)) == -1 && errno == EINTR)
			;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			sys_reason(why, whylen, errno);
		return n;
	}
	if (!len)
		return 0;
	pthread_mutex_lock(mu);
	ERR_clear_error();
	errno = 0;
	rc = SSL_write(ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	err = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
	if (err == SSL_ERROR_SSL)
		ssl_reason(why, whylen, "TLS", NULL);
	else if ((err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) && errno)
		sys_reason(why, whylen, errno);
	else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN)
		snprintf(why, whylen, "the broker closed it");
	pthread_mutex_unlock(mu);
	if (rc > 0)
		return rc;
	errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
	return -1;
}

ssize_t
io_recv(pthread_mutex_t *mu, SSL *ssl, int fd, void *p, size_t len, int *more, char *why,
    size_t whylen)
{
	ssize_t n;
	int rc, err;

	*more = 0;
	if (!ssl) {
		while ((n = recv(fd, p, len, 0)) == -1 && errno == EINTR)
			;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			sys_reason(why, whylen, errno);
		return n;
	}
	pthread_mutex_lock(mu);
	ERR_clear_error();
	errno = 0;
	rc = SSL_read(ssl, p, len > INT_MAX ? INT_MAX : (int)len);
	err = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, rc);
	if (rc > 0)
		*more = SSL_has_pending(ssl);
	else if (err == SSL_ERROR_SSL)
		ssl_reason(why, whylen, "TLS", NULL);
	else if (err == SSL_ERROR_SYSCALL && errno)
		sys_reason(why, whylen, errno);
	pthread_mutex_unlock(mu);
	if (rc > 0)
		return rc;
	/* A close_notify, or the end of the stream without one: the broker closed it. */
	if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !errno))
		return 0;
	errno = err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? EAGAIN : EPROTO;
	return -1;
}

void
tls_free(SSL *ssl)
{
	SSL_free(ssl);
}
