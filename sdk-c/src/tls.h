/* tls.h: the transport under libfxb's WebSocket: a plain socket, or TLS on it (OpenSSL).
 *
 * conn.c makes the TLS context once per client (tls_context) and one SSL per connection
 * (tls_start, tls_handshake); wire.c and conn.c move bytes through io_send and io_recv,
 * which work on either. An SSL object may not be used by two threads at once while
 * libfxb writes from the callers' threads and reads from whichever holds the reader role,
 * so every call into it is made under the client's tls_mu, innermost of its locks and
 * never held across a wait (the socket is non-blocking).
 */
#ifndef FXB_TLS_H
#define FXB_TLS_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "ws.h"

/* Where the settings come from when fxb_client_new_ex is not given them. */
#define TLS_ENV_CA "FIXTURE_BROKER_CA"
#define TLS_ENV_CERT "FIXTURE_BROKER_CERT"
#define TLS_ENV_KEY "FIXTURE_BROKER_KEY"

/* A client context that verifies the broker against the CAs of the PEM file ca (NULL: the
 * system's trust store) and presents the certificate chain cert with key (both PEM, both
 * NULL or neither) for mutual TLS. Returns it, or NULL with the reason in why. */
INTERNAL SSL_CTX *tls_context(
    const char *ca, const char *cert, const char *key, char *why, size_t whylen);

/* A new SSL on the connected socket fd that checks the broker's certificate names host
 * (an IP literal against the certificate's IP addresses, a name against its DNS names,
 * and sent as SNI). Returns it, or NULL with the reason in why. */
INTERNAL SSL *tls_start(SSL_CTX *ctx, int fd, const char *host, char *why, size_t whylen);

/* One step of the handshake. Returns 0 when it is done; POLLIN or POLLOUT when it waits
 * for the socket; -1 when it failed, with the reason in why (ca_name says which CAs were
 * trusted, for a certificate that was not accepted). */
INTERNAL int tls_handshake(SSL *ssl, const char *ca_name, char *why, size_t whylen);

/* Sends up to len bytes (without blocking, without SIGPIPE) on fd, or through ssl if not
 * NULL under mu. Returns how many went; -1 with errno EAGAIN when none could go now;
 * -1 with the reason in why when the connection failed. */
INTERNAL ssize_t io_send(pthread_mutex_t *mu, SSL *ssl, int fd, const void *p, size_t len,
    char *why, size_t whylen);

/* Receives up to len bytes likewise. Returns how many came (with TLS, *more set when
 * the SSL holds more than it returned, which poll() cannot see); 0 when the broker closed
 * the connection; -1 with errno EAGAIN when nothing is there now; -1 with the reason in
 * why when the connection failed. */
INTERNAL ssize_t io_recv(pthread_mutex_t *mu, SSL *ssl, int fd, void *p, size_t len, int *more,
    char *why, size_t whylen);

/* Frees an SSL (NULL: nothing), without a close_notify: the WebSocket close says it all. */
INTERNAL void tls_free(SSL *ssl);

#endif
