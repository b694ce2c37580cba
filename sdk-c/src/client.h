/* client.h: the private side of struct fxb_client, shared by client.c, conn.c and lease.c.
 *
 * client.c owns the public calls, the per-thread error slots and the wait for replies;
 * conn.c owns the service thread and everything it does with libwebsockets (connect,
 * hello, writes, reassembly, reconnect); lease.c builds lease objects on top of
 * client_call(). Fields are grouped by who may touch them: read-only after
 * fxb_client_new, under mu, or service thread only.
 */
#ifndef FXB_CLIENT_H
#define FXB_CLIENT_H

#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "fxb.h"

#define INTERNAL __attribute__((visibility("hidden")))

enum conn_state {
	CONN_CONNECTING, /* no connection yet, or reconnecting after a drop */
	CONN_HELLO,      /* connected, session.hello sent, its reply awaited */
	CONN_OPEN,       /* hello answered: calls may go */
	CONN_FAILED,     /* the first connection or its hello failed; final */
	CONN_CLOSED      /* fxb_client_free closed the connection; final */
};

/* One call on its way: owned by the thread waiting for it, which always unlinks it (or
 * sees the service thread unlink it) before returning. */
struct request {
	struct request *next;
	json_int_t id;
	unsigned char *buf; /* LWS_PRE bytes, then len bytes of JSON text */
	size_t len;
	int done;
	int status;    /* once done: FXB_OK, FXB_ECONNECT or FXB_ECLOSED */
	json_t *reply; /* once done with FXB_OK: the whole reply object, owned */
};

/* A string that was handed out (session id, resume token) and then replaced: it stays
 * allocated until the client is freed, so borrowed pointers stay valid. */
struct retired {
	struct retired *next;
	char *s;
};

/* The last error of one thread on one client. */
struct errslot {
	struct errslot *next;
	pthread_t thread;
	int code;
	int broker_code;
	char name[64];
	char msg[512];
};

struct fxb_client {
	/* Read-only once fxb_client_new has started the service thread. */
	char *url;
	char *address;     /* host without IPv6 brackets, for connecting */
	char *host_header; /* host[:port], for Host: */
	char *path;
	char *token; /* NULL: none */
	char *name;
	int port;
	int tls;
	int timeout_ms;
	struct lws_context *ctx;
	pthread_t thread;
	int thread_started;

	pthread_mutex_t mu;
	pthread_cond_t cv; /* state changes and finished requests */

	/* Under mu. */
	enum conn_state state;
	int ever_open;   /* a hello has succeeded once: drops now mean reconnecting */
	int established; /* a WebSocket connection is up (whatever the hello says) */
	int want_close;  /* fxb_client_free is closing the connection */
	int stop;        /* the service thread must return */
	struct request *txq, **txq_tail; /* not yet written, oldest first */
	struct request *sent;            /* written, reply awaited */
	json_int_t next_id;
	json_int_t hello_id;
	unsigned char *hello_buf; /* the hello to write next, if any */
	size_t hello_len;
	char *session;
	char *resume;
	struct retired *retired;
	size_t max_message; /* the broker's message cap, 0: unknown */
	unsigned connects;  /* successful connections so far */
	int fail_code;      /* why CONN_FAILED (and why the last drop) */
	int fail_broker_code;
	char fail_name[64];
	char fail_msg[384];

	/* Error slots, under err_mu (never taken together with mu). */
	pthread_mutex_t err_mu;
	struct errslot *errs;

	/* Service thread only (and fxb_client_free once the thread has been joined). */
	struct lws *wsi;
	int linked;          /* an attempt or connection that has not been reported gone */
	char close_why[128]; /* the broker's close code and reason, if it sent one */
	int taken_over;      /* the session was resumed elsewhere: do not take it back */
	lws_sorted_usec_list_t sul_connect;
	uint16_t retry_count;
	unsigned char *rx;
	size_t rx_len, rx_cap;
};

/* Sets *ts to ms milliseconds from now on CLOCK_MONOTONIC, the clock of cv. */
static inline void
deadline_after(struct timespec *ts, long long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* conn.c */

/* Creates the lws context and starts the service thread, which connects and says hello
 * by itself. Returns 0, or a negative FXB_E* code with c->fail_msg set. */
INTERNAL int conn_start(struct fxb_client *c);
/* Closes the connection gracefully (bounded wait), stops and joins the service thread and
 * destroys the context. Safe after a failed conn_start. */
INTERNAL void conn_stop(struct fxb_client *c);
/* Wakes the service thread: the one lws call other threads may make. */
INTERNAL void conn_wake(struct fxb_client *c);
/* Encodes a JSON-RPC request into a new buffer with LWS_PRE bytes of headroom; params
 * (stolen) NULL means {}. Returns 0, or FXB_ENOMEM with *buf NULL. */
INTERNAL int conn_encode(
    json_int_t id, const char *method, json_t *params, unsigned char **buf, size_t *len);

/* client.c */

/* Calls method with params (stolen; NULL means {}) and waits up to the client's timeout
 * plus extra_ms. On success returns 0 and, if result is not NULL, stores the result
 * (a new reference) there. On failure returns a negative FXB_E* code, with the error set
 * on the calling thread's slot, and *result is untouched. */
INTERNAL int client_call(
    struct fxb_client *c, const char *method, json_t *params, int extra_ms, json_t **result);
/* Sets the calling thread's error and returns code. */
INTERNAL int client_fail(struct fxb_client *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears the calling thread's error at the start of a public call. */
INTERNAL void client_clear(struct fxb_client *c);

#endif
