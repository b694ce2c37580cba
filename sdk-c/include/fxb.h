/* fxb.h: the Fixture Broker C client, the only public header of libfxb.
 *
 * One struct fxb_client is one WebSocket connection (one broker session). Calls block
 * the calling thread, which sends its request and reads its reply itself; a background
 * service thread owned by the client looks after the connection, so keepalive and
 * disconnect detection go on while the test runs. Calls on one client may come from
 * several threads at once. When the connection drops the client reconnects by itself and
 * resumes its session (within the broker's grace period), so leases survive a short
 * network blip.
 *
 * Silence: the broker pings every connection every heartbeat_ms, so a connection on which
 * nothing (no reply, no ping) has arrived for the dead_after_ms the broker's session.hello
 * announced (15000 when it does not say) is taken for dead even if TCP has not noticed (a
 * link down, a host gone): the client shuts it down and reconnects as after any drop. It
 * pings the broker itself halfway there, so a broker that pings rarely still answers.
 *
 * Losing a session is never silent. If the client comes back too late (after the broker's
 * dead_after_ms + grace_ms the broker has released every lease of the session) or another
 * connection took the session over with its resume token, the client goes on with a new
 * session, and: fxb_client_sessions_lost() counts it; the callback set with
 * fxb_client_on_session_lost(), if any, is called; and every lease of the lost session
 * answers FXB_ELOST: fxb_lease_state() and fxb_lease_port() return it,
 * fxb_lease_host() and fxb_lease_field() return NULL and fxb_lease_release() frees the
 * lease and returns FXB_ELOST without asking the broker. fxb_lease_id(),
 * fxb_lease_count() and fxb_lease_fixture_name() keep answering, to say which lease it was.
 *
 * Errors: every int-returning call returns 0 (or a non-negative value) on success and a
 * negative FXB_E* code on failure; fxb_client_errmsg() then says what happened and, for
 * FXB_EBROKER, fxb_client_errname() gives the broker's stable error name
 * ("PORTS_EXHAUSTED") and fxb_client_errcode() its numeric code. The library never aborts
 * its host process: out of memory is FXB_ENOMEM.
 *
 * A message from the broker that is not valid JSON (or not valid UTF-8) cannot be matched
 * to its call, so the client does not wait for it: it closes the connection with code 1007
 * (RFC 6455, invalid payload data), every call in flight fails at once with FXB_EPROTO and
 * a message naming the cause ("the broker sent a message that is not valid JSON: ..."),
 * and the client then reconnects and resumes its session as after a lost connection.
 */
#ifndef FXB_H
#define FXB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FXB_VERSION "0.1.0"
#define FXB_DEFAULT_URL "ws://127.0.0.1:7357"

enum fxb_status {
	FXB_OK = 0,
	FXB_EINVAL = -1,   /* a bad argument (NULL, a malformed URL) */
	FXB_ENOMEM = -2,   /* out of memory */
	FXB_ECONNECT = -3, /* could not connect, or the connection was lost */
	FXB_ETIMEOUT = -4, /* no reply within the client's timeout */
	FXB_EBROKER = -5,  /* the broker answered with an error: see errname/errcode */
	FXB_EPROTO = -6,   /* the broker's reply did not make sense (or was not JSON) */
	FXB_ECLOSED = -7,  /* the client is closing */
	FXB_ENOENT = -8,   /* no such fixture or field in a lease */
	FXB_ELOST = -9     /* the lease's session was lost: the broker released the lease */
};

/* What fxb_client_state() returns. */
enum fxb_state {
	FXB_STATE_CONNECTING = 0, /* connecting, or reconnecting after a drop: calls wait */
	FXB_STATE_OPEN = 1,       /* the session is live: calls go at once */
	FXB_STATE_CLOSED = 2      /* fxb_client_free is closing the client */
};

struct fxb_client;
struct fxb_lease;

struct fxb_options {
	const char *url;    /* ws:// or wss://; NULL: $FIXTURE_BROKER_URL, else FXB_DEFAULT_URL */
	const char *token;  /* bearer token, sent once per connection in the upgrade request's
	                     * Authorization header; NULL: $FIXTURE_BROKER_TOKEN, else none */
	const char *client; /* a name for the broker's logs; NULL: "fxb-c" */
	const char *resume; /* a resume token from an earlier client (another process), or NULL */
	int timeout_ms;     /* per call, and for connecting; 0: 10000 */
};

/* One fixture of a lease request: name is the caller's, kind is "port" (and later
 * "server", "postgres"). options_json, if not NULL, is a JSON object text whose members
 * are merged into the fixture's spec (for example "{\"template\":\"api\"}"). */
struct fxb_fixture_spec {
	const char *name;
	const char *kind;
	const char *options_json;
};

struct fxb_acquire_options {
	int wait_ms;             /* how long the broker may queue the request; 0: fail at once */
	int ttl_ms;              /* 0: no TTL (the lease lives as long as the session) */
	const char *labels_json; /* a JSON object of string labels, or NULL */
};

/* fxb_client_new connects and says hello. opts may be NULL. On success *out holds the
 * client (free it with fxb_client_free) and 0 is returned. On failure *out is NULL, the
 * negative code is returned and, if errbuf is not NULL, a message is copied there. */
int fxb_client_new(struct fxb_client **out, const struct fxb_options *opts, char *errbuf,
    size_t errlen);

/* fxb_client_new_ex is fxb_client_new with settings beyond struct fxb_options: settings is
 * NULL or an array of name, value strings ended by a NULL name, for example
 *
 *     const char *tls[] = {"tls.ca", "/etc/fxb/ca.pem", NULL};
 *     fxb_client_new_ex(&c, &opts, tls, err, sizeof err);
 *
 * An unknown name (or a NULL value) is FXB_EINVAL. The names, each falling back to its
 * environment variable when not given (an empty value means none):
 *
 *   "tls.ca"    $FIXTURE_BROKER_CA    PEM file of the CAs that may sign the broker's
 *                                     certificate (a private CA); none: the system's
 *                                     trust store (OpenSSL's default paths)
 *   "tls.cert"  $FIXTURE_BROKER_CERT  PEM client certificate (chain) for a broker that
 *                                     asks for one (mutual TLS, its tls.client_ca)
 *   "tls.key"   $FIXTURE_BROKER_KEY   PEM private key of tls.cert (both or neither)
 *
 * They apply to wss:// URLs only. Over wss:// the broker's certificate must chain to a
 * trusted CA and name the URL's host (an IP address in an IP subjectAltName, a name in a
 * DNS one); TLS 1.2 at least. A file that cannot be read or a key that does not match is
 * FXB_EINVAL from here; a certificate that is not accepted is FXB_ECONNECT with OpenSSL's
 * reason ("cannot connect to wss://...: the broker's TLS certificate was not accepted:
 * unable to get local issuer certificate (trusting ca.pem)"). */
int fxb_client_new_ex(struct fxb_client **out, const struct fxb_options *opts,
    const char *const *settings, char *errbuf, size_t errlen);

/* fxb_client_free closes the connection (the broker releases every lease of the session
 * after its grace period; release them first for an immediate return), stops the service
 * thread and frees the client. Leases obtained from it must be freed before or after with
 * fxb_lease_free; they can no longer be released through it. fxb_client_free(NULL) does
 * nothing. */
void fxb_client_free(struct fxb_client *c);

/* The last error on this client, valid until the next call on it from the same thread. */
const char *fxb_client_errmsg(const struct fxb_client *c);
const char *fxb_client_errname(const struct fxb_client *c); /* "" unless FXB_EBROKER */
int fxb_client_errcode(const struct fxb_client *c);         /* 0 unless FXB_EBROKER */

/* The session id and resume token the broker gave this client; valid until the client is
 * freed. */
const char *fxb_client_session(const struct fxb_client *c);
const char *fxb_client_resume_token(const struct fxb_client *c);

/* The client's connection state, one of enum fxb_state (FXB_EINVAL for NULL). While it is
 * FXB_STATE_CONNECTING the client cannot know yet whether its session will resume. */
int fxb_client_state(const struct fxb_client *c);

/* How many sessions this client has lost so far (see "Losing a session" above); 0 for
 * NULL. */
unsigned fxb_client_sessions_lost(const struct fxb_client *c);

/* Called once the client knows its session was lost, with the lost session's id and the
 * new one's (both valid during the call only); arg is fxb_client_on_session_lost's. It runs
 * on the client's service thread, after the new session is open: it may read the client
 * (fxb_client_state, fxb_client_session, fxb_lease_state) but must not make calls on it
 * (the service thread is what they would wait for) nor free it. Two losses in quick
 * succession may come as one call, with the latest ids. */
typedef void (*fxb_session_lost_fn)(
    struct fxb_client *c, const char *lost_session, const char *new_session, void *arg);

/* Sets the callback for a lost session (NULL: none, the default); replaces the previous
 * one. */
void fxb_client_on_session_lost(struct fxb_client *c, fxb_session_lost_fn fn, void *arg);

/* fxb_call sends any method with params given as JSON text (NULL: {}), waits for the
 * reply and stores the result as JSON text in *result_json (free it with free()), which
 * may be NULL if the caller does not want it. */
int fxb_call(struct fxb_client *c, const char *method, const char *params_json,
    char **result_json);

/* fxb_lease_acquire leases n fixtures atomically. opts may be NULL. On success *out holds
 * the lease (release it with fxb_lease_release or free it with fxb_lease_free). */
int fxb_lease_acquire(struct fxb_client *c, const struct fxb_fixture_spec *fixtures, size_t n,
    const struct fxb_acquire_options *opts, struct fxb_lease **out);

/* fxb_lease_release releases the lease on the broker and frees it, whatever the broker
 * said (the return value says that). fxb_lease_release(c, NULL) returns FXB_EINVAL; a lease
 * of a lost session is freed and FXB_ELOST returned, without a call. */
int fxb_lease_release(struct fxb_client *c, struct fxb_lease *l);

/* fxb_lease_free frees the local lease object only; the broker keeps the lease until it
 * is released or its session ends. fxb_lease_free(NULL) does nothing. */
void fxb_lease_free(struct fxb_lease *l);

/* FXB_OK while the lease's session lives (or its client was freed), FXB_ELOST once the
 * session was lost, FXB_EINVAL for NULL. */
int fxb_lease_state(const struct fxb_lease *l);

/* Accessors; strings are valid until the lease is freed. On a lease of a lost session,
 * fxb_lease_port returns FXB_ELOST and fxb_lease_host and fxb_lease_field NULL. */
const char *fxb_lease_id(const struct fxb_lease *l);
size_t fxb_lease_count(const struct fxb_lease *l);
const char *fxb_lease_fixture_name(const struct fxb_lease *l, size_t i); /* NULL past the end */
/* The port of the named fixture, or FXB_ENOENT. */
int fxb_lease_port(const struct fxb_lease *l, const char *fixture);
/* The host of the named fixture, or NULL. */
const char *fxb_lease_host(const struct fxb_lease *l, const char *fixture);
/* Any field of the named fixture ("url", "user", ...) as a string (numbers in decimal),
 * or NULL. */
const char *fxb_lease_field(const struct fxb_lease *l, const char *fixture, const char *field);

#ifdef __cplusplus
}
#endif

#endif /* FXB_H */
