/* client.h: the private side of struct fxb_client, shared by client.c, conn.c, wire.c and lease.c.
 *
 * client.c owns the public calls, the per-thread error slots and the wait for the session;
 * conn.c owns the service thread and the connection's life (connect, hello, keepalive,
 * drop, reconnect); wire.c owns the frames on the socket: the writes callers make
 * themselves and the reader role that whichever thread waits for a reply takes to read
 * it; ws.c is the WebSocket protocol on buffers; lease.c builds lease objects on top of
 * client_call(). Fields are grouped by who may touch them: read-only after
 * fxb_client_new, under mu, under wmu, or by the reader role's holder.
 */
#ifndef FXB_CLIENT_H
#define FXB_CLIENT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "fxb.h"
#include "tls.h"
#include "ws.h"

/* The silence that means a dead connection when the broker's hello does not say. */
#define DEAD_AFTER_MS 15000

enum conn_state {
	CONN_CONNECTING, /* no connection yet, or reconnecting after a drop */
	CONN_HELLO,      /* connected, session.hello sent, its reply awaited */
	CONN_OPEN,       /* hello answered: calls may go */
	CONN_FAILED,     /* the first connection or its hello failed; final */
	CONN_CLOSED      /* fxb_client_free closed the connection; final */
};

/* One call on its way, on its caller's stack: linked on c->pending from before its frame
 * is written until its reply is in, the connection it went out on fails, or its caller
 * gives up; whoever unlinks it (under mu) sets done, except a caller giving up. */
struct request {
	struct request *next;
	json_int_t id;
	unsigned gen; /* the connection it was written on (c->gen then) */
	int waiting;  /* its caller sleeps on cv */
	int done;
	int status;        /* once done: FXB_OK, FXB_ECONNECT, FXB_EPROTO or FXB_ECLOSED */
	json_t *reply;     /* once done with FXB_OK: the whole reply object, owned */
	pthread_cond_t cv; /* done, or the reader role is free to take */
};

/* One broker session as the client and its leases see it: shared, counted, outliving the
 * client (a lease may). lost turns 1 once, when the client learns the session is gone. */
struct session {
	atomic_int refs;
	atomic_int lost;
	char id[]; /* the broker's session id */
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
	int timeout_ms;
	SSL_CTX *tls_ctx;  /* wss://: the TLS context of every connection; NULL: ws:// */
	char *tls_ca_name; /* which CAs it trusts, for errors: the file, or the system's */
	int wake_fd;              /* an eventfd that wakes the service thread */
	int debug;                /* FXB_DEBUG: trace the connection on stderr */
	pthread_condattr_t cattr; /* CLOCK_MONOTONIC, for every condition variable here */
	pthread_t thread;
	int thread_started;

	pthread_mutex_t mu;
	pthread_cond_t cv; /* state changes; the reader role freed on a dead connection */

	/* Under mu. */
	enum conn_state state;
	int ever_open; /* a hello has succeeded once: drops now mean reconnecting */
	int stop;      /* fxb_client_free is closing the client */
	int sock;      /* the connection's socket, -1: none; closed by the service thread only */
	SSL *ssl;      /* its TLS (wss://), or NULL; freed with sock; read by the reader role */
	unsigned gen;  /* counts connections */
	int dead;      /* sock failed or was shut down: nobody may read or write it any more */
	int reading;   /* a thread holds the reader role for sock */
	int close_sent;
	int taken_over;          /* the broker closed with 4001: the next hello starts afresh */
	struct request *pending; /* written or about to be, reply awaited */
	size_t npending;
	json_int_t next_id;
	json_int_t hello_id; /* the hello whose reply is awaited, 0: none */
	char *session;
	char *resume;
	struct retired *retired;
	size_t max_message;     /* the broker's message cap, 0: unknown */
	long long dead_after_ms; /* silence that means a dead connection (from the hello) */
	struct session *sess;    /* the current session, NULL before the first hello */
	unsigned sessions_lost;
	unsigned lost_notify;   /* losses the callback has not been told of */
	char lost_old[128], lost_new[128]; /* the ids for the callback */
	fxb_session_lost_fn lost_fn;
	void *lost_arg;
	unsigned connects;      /* successful connections so far */
	unsigned retries;       /* failed attempts since the last successful hello */
	long long last_rx_ms;   /* when the last frame came in */
	long long ping_ms;      /* when the last keepalive ping went out */
	long long last_call_ms; /* when the last call ended */
	long long reconnect_ms; /* when the next attempt may start */
	uint64_t rng;           /* backoff jitter */
	int fail_code;          /* why CONN_FAILED (and why the last drop) */
	int fail_broker_code;
	char fail_name[64];
	char fail_msg[384];

	/* Error slots, under err_mu (never taken together with mu). */
	pthread_mutex_t err_mu;
	struct errslot *errs;

	/* Under wmu, which may be taken while holding mu but not the other way round, and is
	 * never held across a call that blocks. */
	pthread_mutex_t wmu;
	int wsock;     /* sock, for writing */
	SSL *wssl;     /* ssl, for writing */
	unsigned wgen; /* gen, for writing */
	uint64_t mask_rng;
	unsigned char *wbuf; /* bytes the socket did not take yet, written before any other */
	size_t wbuf_len, wbuf_cap;

	/* Around every call into ssl (tls.h): innermost, taken under wmu or alone. */
	pthread_mutex_t tls_mu;

	/* The reader role's holder only (and the service thread while there is no socket). */
	unsigned char *rx; /* bytes read; frames are parsed from rx_off */
	size_t rx_len, rx_off, rx_cap;
	unsigned char *msg; /* a fragmented message being put together */
	size_t msg_len, msg_cap;
	int in_msg;
};

/* The time on CLOCK_MONOTONIC, the clock of every wait here, in milliseconds. */
static inline long long
clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sets *ts to the time ms on CLOCK_MONOTONIC, for pthread_cond_timedwait. */
static inline void
deadline_ts(struct timespec *ts, long long ms)
{
	ts->tv_sec = (time_t)(ms / 1000);
	ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

/* The next number of the xorshift generator whose state is *s (not 0). */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* conn.c */

/* Starts the service thread, which connects and says hello by itself. Returns 0, or a
 * negative FXB_E* code with c->fail_msg set. */
INTERNAL int conn_start(struct fxb_client *c);
/* Closes the connection gracefully (bounded wait), stops and joins the service thread and
 * frees what the connection used. Safe after a failed conn_start. */
INTERNAL void conn_stop(struct fxb_client *c);
/* Drops connection gen (what and detail, which may be NULL, say why, as in "lost the
 * connection to" URL: detail): shuts its socket down, which ends any read on it, fails the
 * calls in flight and wakes the service thread to close it and reconnect. Only the first
 * report for a connection counts. conn_drop takes mu; conn_drop_locked is for holders. */
INTERNAL void conn_drop(struct fxb_client *c, unsigned gen, const char *what, const char *detail);
INTERNAL void conn_drop_locked(
    struct fxb_client *c, unsigned gen, const char *what, const char *detail);
/* Drops connection gen as conn_drop does, for a broker that broke the protocol: the calls
 * in flight fail with code (FXB_EPROTO) rather than FXB_ECONNECT, and why, a whole
 * sentence, becomes the client's failure, which their callers report. The caller sends the
 * close frame first. Takes mu. */
INTERNAL void conn_fail(struct fxb_client *c, unsigned gen, int code, const char *why);
/* Sets why the client failed or dropped (under mu); broker_name may be NULL. */
INTERNAL void conn_set_failure(struct fxb_client *c, int code, int broker_code,
    const char *broker_name, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Wakes the service thread out of poll(). */
INTERNAL void conn_wake(struct fxb_client *c);
/* Traces the connection's life on stderr when FXB_DEBUG is set. */
INTERNAL void conn_debug(const struct fxb_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* wire.c: calls */

/* Encodes a JSON-RPC request; params (stolen) NULL means {}. The text goes into stack
 * (cap bytes) when it fits, else into a new buffer; either way *text points at it, with
 * WS_HEAD_MAX bytes of room before it for the frame head. Returns 0, or FXB_ENOMEM with
 * *text NULL. */
INTERNAL int wire_encode(json_int_t id, const char *method, json_t *params, unsigned char *stack,
    size_t cap, unsigned char **text, size_t *len);
/* Frees what wire_encode allocated, if anything. */
INTERNAL void wire_encoded_free(unsigned char *text, unsigned char *stack);
/* Links r (zeroed but for its id) on the current connection, whose state is CONN_OPEN
 * (under mu). Returns 0, or FXB_ENOMEM with nothing changed. */
INTERNAL int wire_register(struct fxb_client *c, struct request *r);
/* Writes r's request, the len bytes at text (masked in place), then waits for its reply
 * until deadline_ms (on clock_now_ms), reading the socket itself when no other thread does.
 * Returns 0 with r unlinked and done, or not done if the deadline passed; or FXB_ENOMEM
 * when the request could not be written for want of memory (r is unlinked, not done). */
INTERNAL int wire_call(struct fxb_client *c, struct request *r, unsigned char *text, size_t len,
    long long deadline_ms);
/* Finishes every pending call with status and wakes its caller (under mu). */
INTERNAL void wire_fail_calls(struct fxb_client *c, int status);
/* Wakes one caller waiting for its reply, to take the reader role (under mu). */
INTERNAL void wire_promote(struct fxb_client *c);

/* wire.c: the socket, for the service thread */

/* Makes fd (with ssl, NULL for ws://), connection gen, the one writes go to (under mu). */
INTERNAL void wire_open(struct fxb_client *c, int fd, SSL *ssl, unsigned gen);
/* Stops writes to the socket about to be closed and forgets what was queued or read for
 * it (under mu, nobody holding the reader role). */
INTERNAL void wire_close(struct fxb_client *c);
/* Starts what is read on the next connection with the len bytes at p, which followed the
 * upgrade answer (no socket open). Returns 0, or -1 when out of memory. */
INTERNAL int wire_reset(struct fxb_client *c, const unsigned char *p, size_t len);
/* Frees the buffers (when the client is freed). */
INTERNAL void wire_free(struct fxb_client *c);
/* Whether written bytes wait for the socket to take them, to be flushed on POLLOUT. */
INTERNAL int wire_backlog(struct fxb_client *c);
/* Writes what waits, as far as the socket takes it. */
INTERNAL void wire_flush(struct fxb_client *c, unsigned gen);
/* Sends a control frame with up to 125 bytes of payload on connection gen, or a close
 * frame with code. Never block. Return 0, or a negative FXB_E* code when the frame could
 * not go (the connection is then dropped unless it was out of memory). */
INTERNAL int wire_send_control(
    struct fxb_client *c, unsigned gen, int opcode, const void *data, size_t len);
INTERNAL int wire_send_close(struct fxb_client *c, unsigned gen, unsigned code);
/* Sends a session.hello on connection gen: with the resume token when the client has one
 * and with_resume is set. Returns 0, or -1 when the connection was dropped. */
INTERNAL int wire_hello(struct fxb_client *c, unsigned gen, int with_resume);
/* Takes the reader role for connection gen if nobody holds it (under mu). Returns the
 * socket to read, or -1. */
INTERNAL int wire_take(struct fxb_client *c, unsigned gen);
/* Gives the reader role back and passes it on to a waiting caller, if any (under mu). */
INTERNAL void wire_give_back(struct fxb_client *c);
/* Reads what the socket has (one recv, the role held) and acts on the frames it
 * completes. Returns 0, or -1 when the connection was dropped. */
INTERNAL int wire_read(struct fxb_client *c, int fd, unsigned gen);

/* client.c */

/* A new session with id, one reference; NULL when out of memory. */
INTERNAL struct session *session_new(const char *id);
/* Takes or drops a reference; session_unref(NULL) does nothing. */
INTERNAL struct session *session_ref(struct session *s);
INTERNAL void session_unref(struct session *s);
/* Like client_call; on success *sess (unless sess is NULL) holds a reference to the session
 * the call was answered in. */
INTERNAL int client_call_in(struct fxb_client *c, const char *method, json_t *params,
    int extra_ms, json_t **result, struct session **sess);

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
