/* harness.h: what the integration suites share: a broker process, a raw WebSocket client,
 * HTTP GET, JSON-RPC over the raw client, and child processes.
 *
 * The suites start the real broker binary ($FXB_BROKER) on 127.0.0.1 with port 0 and talk
 * to it through libfxb or through the raw client here, which can also send what libfxb
 * never would (binary frames, fragments, broken JSON). The functions never assert (only
 * the upper-case macros do, for test bodies), so a forked child may call any of them.
 * Every process started here dies with the thread that started it (PR_SET_PDEATHSIG), so
 * a failed assertion never leaves a broker running. A broker's stderr goes to a log file
 * under $FXB_TEST_LOG_DIR (default /tmp) named after the test.
 */
#ifndef FXB_HARNESS_H
#define FXB_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Generous limits for a shared, noisy machine; no test asserts a duration against them. */
#define HARNESS_START_TIMEOUT_MS 10000
#define HARNESS_IO_TIMEOUT_MS 10000

/* ---- The broker process ---- */

struct test_broker {
	pid_t pid;     /* 0 once stopped or reaped */
	int port;      /* from its "listening ws[s]://HOST:PORT" line */
	char url[64];  /* "ws://127.0.0.1:PORT" (wss:// with --tls-cert) */
	char log[256]; /* its stderr */
	int out_fd;    /* its stdout, after the listening line; -1 once drained */
	size_t stdout_extra; /* bytes it wrote to stdout after that line (counted on exit) */
};

/* Starts $FXB_BROKER --listen 127.0.0.1:0 --log-level debug followed by args (a
 * NULL-terminated list, NULL for none) and waits for its listening line. Returns 0, or -1
 * with the reason in errbuf (the broker, if it started, is killed). */
int test_broker_start(struct test_broker *tb, const char *const *args, char *errbuf,
    size_t errlen);
/* Sends SIGTERM and waits up to 15 s. Returns the exit status, 128 + the signal if a
 * signal ended it, or -1 if it had to be killed after the wait (or was not running). */
int test_broker_stop(struct test_broker *tb);
/* Waits up to timeout_ms for the broker to exit by itself. Returns its status as
 * test_broker_stop() does, or -2 if it is still running. */
int test_broker_wait(struct test_broker *tb, int timeout_ms);
/* Sends SIGKILL and reaps it. */
void test_broker_kill(struct test_broker *tb);
/* Where the suites write logs and state: FXB_TEST_LOG_DIR, else /tmp (made if missing). */
const char *test_log_dir(void);
/* A log file's text (at most 1 MiB, malloc'd), or NULL. */
char *test_read_log(const char *path);
struct fxb_client;
/* Calls method with params (JSON text, or NULL) through libfxb and parses the result;
 * NULL on an error (fxb_client_errname() and errmsg() say which). The caller owns it. */
json_t *test_call_json(struct fxb_client *c, const char *method, const char *params);
/* GET /status, parsed; NULL on any failure. The caller owns the result. */
json_t *test_broker_status(const struct test_broker *tb);
/* A member of the "ports" object of GET /status ("free", "leased", ...), or -1. */
long test_broker_ports(const struct test_broker *tb, const char *member);

/* Runs $FXB_BROKER with args (NULL-terminated) to completion, at most timeout_ms, with
 * stdout and stderr both copied into out (NUL-terminated, truncated to outlen). Returns
 * the exit status as test_broker_stop() does. */
int test_broker_run(const char *const *args, char *out, size_t outlen, int timeout_ms);

/* Runs path with argv (argv[0] included, NULL-terminated) and extra environment entries
 * ("NAME=value", NULL-terminated, may be NULL) like test_broker_run(). */
int run_program(const char *path, const char *const *argv, const char *const *env, char *out,
    size_t outlen, int timeout_ms);

/* For criterion tests: start tb with the given flags, or fail the test. */
#define BROKER_START(tb, ...)                                                           \
	do {                                                                            \
		const char *const args_[] = { __VA_ARGS__, NULL };                      \
		char err_[512];                                                         \
		cr_assert_eq(test_broker_start((tb), args_, err_, sizeof(err_)), 0, "%s", \
		    err_);                                                              \
	} while (0)

/* For criterion tests: stop tb with SIGTERM and require exit status 0. */
#define BROKER_STOP(tb)                                                                 \
	cr_assert_eq(test_broker_stop(tb), 0, "the broker did not exit 0 on SIGTERM; see %s", \
	    (tb)->log)

/* ---- libfxb clients ---- */

struct fxb_client;
struct fxb_lease;

/* A libfxb client of tb with the given token and resume token (either may be NULL).
 * Returns it, or NULL with the reason in errbuf. */
struct fxb_client *test_client(const struct test_broker *tb, const char *token,
    const char *resume, char *errbuf, size_t errlen);
/* Leases n port fixtures named "p0", "p1", ... with wait_ms (0: fail at once). Returns
 * what fxb_lease_acquire() returns. */
int test_acquire_ports(struct fxb_client *c, size_t n, int wait_ms, struct fxb_lease **out);
/* The port of fixture "p<i>" of l, or -1. */
int test_lease_port(const struct fxb_lease *l, size_t i);

/* For criterion tests: a new client of tb, or fail the test. */
#define CLIENT_NEW(c, tb, token, resume)                                                \
	do {                                                                            \
		char err_[512];                                                         \
		(c) = test_client((tb), (token), (resume), err_, sizeof(err_));         \
		cr_assert_not_null((c), "%s", err_);                                    \
	} while (0)

/* ---- A raw WebSocket client over a plain TCP socket ---- */

enum {
	WS_CONT = 0x0,
	WS_TEXT = 0x1,
	WS_BINARY = 0x2,
	WS_CLOSE = 0x8,
	WS_PING = 0x9,
	WS_PONG = 0xa
};

/* What raw_ws_read() returns besides 0. */
enum { RAW_WS_EOF = -1, RAW_WS_TIMEOUT = -2 };

struct raw_ws {
	int fd;
	int http_status;      /* from the upgrade reply's status line; 0 if none came */
	char status_line[128];
	char headers[2048];   /* the whole upgrade reply head */
	unsigned char *buf;   /* bytes read but not yet consumed */
	size_t buflen, bufcap;
	int64_t next_id;      /* for raw_rpc_call() */
};

/* One message as raw_ws_read() returns it. Fragments are joined; payload is
 * NUL-terminated and owned by the message (raw_ws_msg_clear frees it). */
struct ws_msg {
	int opcode;     /* WS_TEXT, WS_BINARY or WS_CLOSE (pings are answered, not returned) */
	char *payload;
	size_t len;
	int close_code; /* for WS_CLOSE: the code, or 1005 when the frame had none */
};

/* Connects to 127.0.0.1:port and sends the upgrade request, offering subprotocol and
 * sending "Authorization: Bearer <bearer>" when they are not NULL. Returns the HTTP
 * status of the reply (101 when upgraded), or -1 when no reply came or a 101 lacked the
 * right Sec-WebSocket-Accept; w stays open either way until raw_ws_close(). */
int raw_ws_connect(struct raw_ws *w, int port, const char *subprotocol, const char *bearer);
/* raw_ws_connect(), with headers (NULL: none; else whole lines, each ending in "\r\n")
 * added to the upgrade request. */
int raw_ws_connect_with(struct raw_ws *w, int port, const char *subprotocol, const char *bearer,
    const char *headers);
/* Sends one frame, masked, with any opcode, length and FIN bit. Returns 0 or -1. */
int raw_ws_send_frame(struct raw_ws *w, int opcode, int fin, const void *data, size_t len);
/* Sends a message as one frame, or in frames of at most fragment bytes when fragment is
 * not 0 (continuation frames after the first). Returns 0 or -1. */
int raw_ws_send(struct raw_ws *w, int opcode, const void *data, size_t len, size_t fragment);
/* Reads one message within timeout_ms. Returns 0, RAW_WS_TIMEOUT or RAW_WS_EOF. */
int raw_ws_read(struct raw_ws *w, struct ws_msg *m, int timeout_ms);
void raw_ws_msg_clear(struct ws_msg *m);
/* Closes the socket without a closing handshake, as a crashed client would, and frees
 * the buffer. Closing twice does nothing. */
void raw_ws_close(struct raw_ws *w);

/* ---- HTTP ---- */

/* GET path from 127.0.0.1:port. Returns the status code and stores the body (malloc'd,
 * NUL-terminated) in *body if body is not NULL, or returns -1. */
int http_get(int port, const char *path, char **body);
/* The same with an Authorization header (its value; NULL: none). */
int http_get_auth(int port, const char *path, const char *authorization, char **body);

/* ---- JSON-RPC over the raw client ---- */

/* Sends a call with the given id; params (stolen, may be NULL) are omitted when NULL.
 * Returns 0 or -1. */
int raw_rpc_send(struct raw_ws *w, json_int_t id, const char *method, json_t *params);
/* Reads one text message within timeout_ms and parses it (an object or a batch array).
 * Returns it (the caller owns it), or NULL on timeout, close or a non-JSON message. */
json_t *raw_rpc_read(struct raw_ws *w, int timeout_ms);
/* Sends a call with the next id and returns the reply with that id (replies to other ids
 * that arrive meanwhile are dropped), or NULL. params are stolen. */
json_t *raw_rpc_call(struct raw_ws *w, const char *method, json_t *params);
/* A reply's error code, or 0 when it has none. */
int raw_rpc_error_code(const json_t *reply);
/* A reply's error data.name, or "" when it has none. */
const char *raw_rpc_error_name(const json_t *reply);
/* The reply's result, borrowed from reply, or NULL. */
json_t *raw_rpc_result(const json_t *reply);

/* ---- Processes, files, time ---- */

/* Forks a child that runs _exit(fn(index, arg)) and dies with its parent. Returns its
 * pid, or -1. The child must not use criterion. */
pid_t child_spawn(int (*fn)(int index, void *arg), int index, void *arg);
/* Waits up to timeout_ms for pid. Returns its exit status (128 + the signal if a signal
 * ended it), or -2 if it is still running. */
int child_wait(pid_t pid, int timeout_ms);
/* Spawns n children, child i running fn(i, arg), and waits for all of them (at most
 * timeout_ms in all; the late ones are killed). Returns how many did not exit with
 * status 0. */
int children_run(int n, int (*fn)(int index, void *arg), void *arg, int timeout_ms);

/* Writes text to a new file under the log directory, named after name, and stores its
 * path in path. Returns 0 or -1. */
int temp_file(char *path, size_t pathlen, const char *name, const char *text);

/* Removes state, a broker's state directory, and the memory data directories of its
 * embedded clusters (/dev/shm/fxb-pg-* whose owner file names a directory under state;
 * see broker/fixtures/pg/pgembed.h). */
void test_rm_pg_state(const char *state);

uint64_t clock_ms(void);
void sleep_ms(int ms);

/* Reads the kernel's ephemeral port range. Returns 0 or -1. */
int ephemeral_range(int *lo, int *hi);

#endif
