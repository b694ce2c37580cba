/* harness.c: the integration suites' broker process, raw WebSocket client, HTTP GET,
 * JSON-RPC helper and child processes (see harness.h).
 *
 * Every process started here gets PR_SET_PDEATHSIG, so when a test process dies on a
 * failed assertion its broker and children die with it. Every wait has a deadline; a
 * missing reply becomes an error the test asserts on, never a hang.
 */
#include "harness.h"

#include "fxb.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The accept value RFC 6455 gives for its sample key, which every upgrade here sends. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

extern char **environ;

uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = clock_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

static void errf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

json_t *test_call_json(struct fxb_client *c, const char *method, const char *params)
{
	char *res = NULL;
	json_t *j;

	if (fxb_call(c, method, params, &res) != 0)
		return NULL;
	j = json_loads(res, 0, NULL);
	free(res);
	return j;
}

char *test_read_log(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 1 << 20);

	if (f && text)
		text[fread(text, 1, (1 << 20) - 1, f)] = '\0';
	if (f)
		fclose(f);
	return text;
}

const char *test_log_dir(void)
{
	const char *d = getenv("FXB_TEST_LOG_DIR");

	if (d == NULL || *d == '\0')
		d = "/tmp";
	mkdir(d, 0755);
	return d;
}

/* A name for this test's files: "suite.test" when criterion runs one, else "harness". */
static void test_name(char *buf, size_t len)
{
	if (criterion_current_test != NULL && criterion_current_suite != NULL)
		snprintf(buf, len, "%s.%s", criterion_current_suite->name,
		    criterion_current_test->name);
	else
		snprintf(buf, len, "harness");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void test_rm_pg_state(const char *state)
{
	char real[1024];
	DIR *d = opendir("/dev/shm");
	struct dirent *de;

	if (!realpath(state, real))
		snprintf(real, sizeof real, "%s", state);
	while (d && (de = readdir(d))) {
		char path[1100], owner[1100] = "";
		FILE *f;
		if (strncmp(de->d_name, "fxb-pg-", 7) != 0)
			continue;
		snprintf(path, sizeof path, "/dev/shm/%s/owner", de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (!fgets(owner, sizeof owner, f))
			owner[0] = '\0';
		fclose(f);
		if (!strncmp(owner, real, strlen(real)) && owner[strlen(real)] == '/') {
			snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
			nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		}
	}
	if (d)
		closedir(d);
	nftw(state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int temp_file(char *path, size_t pathlen, const char *name, const char *text)
{
	static int seq;
	char tn[160];
	FILE *f;

	test_name(tn, sizeof(tn));
	snprintf(path, pathlen, "%s/fxb-%s-%s-%d-%d", test_log_dir(), tn, name, (int)getpid(), ++seq);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

int ephemeral_range(int *lo, int *hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%d %d", lo, hi);
	fclose(f);
	return n == 2 ? 0 : -1;
}

/* ---- Processes ---- */

/* In a freshly forked child: die with the parent, even if it died before this call. */
static void die_with_parent(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
}

static int exit_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

/* Waits for pid up to timeout_ms. Returns its status as exit_status() does, or -2 when it
 * is still running. */
static int wait_pid(pid_t pid, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	int ws;

	for (;;) {
		pid_t r = waitpid(pid, &ws, WNOHANG);

		if (r == pid)
			return exit_status(ws);
		if (r == -1 && errno != EINTR)
			return -1;
		if (remaining_ms(deadline) == 0)
			return -2;
		sleep_ms(10);
	}
}

/* The argv of a broker run: $FXB_BROKER, then prefix (NULL-terminated, may be NULL),
 * then args. Returns a malloc'd array (the strings are borrowed) or NULL. */
static char **broker_argv(const char *const *prefix, const char *const *args)
{
	const char *bin = getenv("FXB_BROKER");
	size_t n = 1, i = 0;
	char **argv;

	if (bin == NULL || *bin == '\0')
		return NULL;
	for (const char *const *p = prefix; p != NULL && *p != NULL; p++)
		n++;
	for (const char *const *p = args; p != NULL && *p != NULL; p++)
		n++;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		return NULL;
	argv[i++] = (char *)bin;
	for (const char *const *p = prefix; p != NULL && *p != NULL; p++)
		argv[i++] = (char *)*p;
	for (const char *const *p = args; p != NULL && *p != NULL; p++)
		argv[i++] = (char *)*p;
	return argv;
}

int test_broker_start(struct test_broker *tb, const char *const *args, char *errbuf,
    size_t errlen)
{
	/* Brokers of a test stop at once on SIGTERM, as an SDK's do; test_drain.c asks for a
	 * drain with a later --drain-timeout-ms, which wins. */
	static const char *const prefix[] = { "--listen", "127.0.0.1:0", "--log-level", "debug",
		"--drain-timeout-ms", "0", NULL };
	static int seq;
	char tn[160], line[256];
	size_t linelen = 0;
	uint64_t deadline;
	int out[2], logfd, tls;
	pid_t parent = getpid();
	char **argv;

	memset(tb, 0, sizeof(*tb));
	tb->out_fd = -1;
	if ((argv = broker_argv(prefix, args)) == NULL) {
		errf(errbuf, errlen, "FXB_BROKER is not set");
		return -1;
	}
	test_name(tn, sizeof(tn));
	snprintf(tb->log, sizeof(tb->log), "%s/fxb-%s-%d-%d.log", test_log_dir(), tn, (int)parent, ++seq);
	if ((logfd = open(tb->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1) {
		errf(errbuf, errlen, "%s: %s", tb->log, strerror(errno));
		free(argv);
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) == -1) {
		errf(errbuf, errlen, "pipe: %s", strerror(errno));
		close(logfd);
		free(argv);
		return -1;
	}
	tb->pid = fork();
	if (tb->pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		die_with_parent(parent);
		dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(logfd, 2);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	free(argv);
	close(out[1]);
	close(logfd);
	if (tb->pid == -1) {
		errf(errbuf, errlen, "fork: %s", strerror(errno));
		close(out[0]);
		tb->pid = 0;
		return -1;
	}

	/* Read stdout up to the first newline: the listening line. */
	deadline = clock_ms() + HARNESS_START_TIMEOUT_MS;
	while (linelen < sizeof(line) - 1 && memchr(line, '\n', linelen) == NULL) {
		struct pollfd pfd = { out[0], POLLIN, 0 };
		int r = poll(&pfd, 1, remaining_ms(deadline));
		ssize_t n;

		if (r == 0)
			break;
		if (r == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		n = read(out[0], line + linelen, sizeof(line) - 1 - linelen);
		if (n <= 0)
			break;
		linelen += (size_t)n;
	}
	tb->out_fd = out[0];
	line[linelen] = '\0';
	{
		char *nl = strchr(line, '\n');

		tb->stdout_extra = nl != NULL ? strlen(nl + 1) : 0;
	}
	{
		char host[128];
		int port = 0;

		tls = !strncmp(line, "listening wss://", 16);
		if (sscanf(line, tls ? "listening wss://%127[^\n]" : "listening ws://%127[^\n]",
		        host) == 1) {
			char *colon = strrchr(host, ':');

			if (colon != NULL)
				port = atoi(colon + 1);
		}
		if (port <= 0 || port > 65535) {
			test_broker_kill(tb);
			errf(errbuf, errlen, "no listening line from the broker (stdout: \"%.100s\"); see %s",
			    line, tb->log);
			return -1;
		}
		tb->port = port;
	}
	snprintf(tb->url, sizeof(tb->url), "%s://127.0.0.1:%d", tls ? "wss" : "ws", tb->port);
	return 0;
}

/* Once the broker has exited: counts what it wrote to stdout after the listening line,
 * copies it to the log, and closes the pipe. */
static void drain_stdout(struct test_broker *tb)
{
	char chunk[4096];
	ssize_t n;
	int logfd;

	if (tb->out_fd < 0)
		return;
	logfd = open(tb->log, O_WRONLY | O_APPEND | O_CLOEXEC);
	fcntl(tb->out_fd, F_SETFL, O_NONBLOCK);
	while ((n = read(tb->out_fd, chunk, sizeof(chunk))) > 0) {
		if (logfd != -1) {
			dprintf(logfd, "[harness] the broker wrote this to stdout:\n");
			if (write(logfd, chunk, (size_t)n) != n)
				break;
		}
		tb->stdout_extra += (size_t)n;
	}
	if (logfd != -1)
		close(logfd);
	close(tb->out_fd);
	tb->out_fd = -1;
}

int test_broker_wait(struct test_broker *tb, int timeout_ms)
{
	int st;

	if (tb->pid <= 0)
		return -1;
	st = wait_pid(tb->pid, timeout_ms);
	if (st != -2) {
		tb->pid = 0;
		drain_stdout(tb);
	}
	return st;
}

int test_broker_stop(struct test_broker *tb)
{
	int st;

	if (tb->pid <= 0)
		return -1;
	kill(tb->pid, SIGTERM);
	if ((st = test_broker_wait(tb, 15000)) == -2) {
		test_broker_kill(tb);
		return -1;
	}
	return st;
}

void test_broker_kill(struct test_broker *tb)
{
	if (tb->pid <= 0)
		return;
	kill(tb->pid, SIGKILL);
	test_broker_wait(tb, 15000);
}

json_t *test_broker_status(const struct test_broker *tb)
{
	char *body = NULL;
	json_t *j = NULL;

	if (http_get(tb->port, "/status", &body) == 200)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

long test_broker_ports(const struct test_broker *tb, const char *member)
{
	json_t *st = test_broker_status(tb);
	json_t *v = json_object_get(json_object_get(st, "ports"), member);
	long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;

	json_decref(st);
	return n;
}

int run_program(const char *path, const char *const *argv, const char *const *env, char *out,
    size_t outlen, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	pid_t parent = getpid(), pid;
	size_t used = 0;
	int p[2], st = -2;

	if (outlen > 0)
		out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		die_with_parent(parent);
		dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		/* Criterion marks its workers with BXFI_MAP; a criterion program started from
		 * one would take itself for a worker and abort. */
		unsetenv("BXFI_MAP");
		for (const char *const *e = env; e != NULL && *e != NULL; e++)
			putenv((char *)*e);
		execve(path, (char *const *)argv, environ);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	if (pid == -1) {
		close(p[0]);
		return -1;
	}
	/* Read until EOF, or until the program has exited and its pipe is drained (a
	 * grandchild may hold the pipe open), or the deadline. */
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		int r, wait = remaining_ms(deadline);
		char chunk[4096];
		ssize_t n;

		if (wait == 0)
			break;
		r = poll(&pfd, 1, st == -2 ? (wait < 50 ? wait : 50) : 0);
		if (r > 0) {
			n = read(p[0], chunk, sizeof(chunk));
			if (n <= 0)
				break;
			if (outlen > 0 && used < outlen - 1) {
				size_t k = (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;

				memcpy(out + used, chunk, k);
				used += k;
				out[used] = '\0';
			}
			continue;
		}
		if (st != -2)
			break;
		st = wait_pid(pid, 0);
	}
	close(p[0]);
	if (st == -2)
		st = wait_pid(pid, remaining_ms(deadline));
	if (st == -2) {
		kill(pid, SIGKILL);
		wait_pid(pid, 15000);
		return -1;
	}
	return st;
}

int test_broker_run(const char *const *args, char *out, size_t outlen, int timeout_ms)
{
	char **argv = broker_argv(NULL, args);
	int st;

	if (argv == NULL) {
		if (outlen > 0)
			snprintf(out, outlen, "FXB_BROKER is not set");
		return -1;
	}
	st = run_program(argv[0], (const char *const *)argv, NULL, out, outlen, timeout_ms);
	free(argv);
	return st;
}

pid_t child_spawn(int (*fn)(int index, void *arg), int index, void *arg)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		die_with_parent(parent);
		_exit(fn(index, arg));
	}
	return pid;
}

int child_wait(pid_t pid, int timeout_ms)
{
	return wait_pid(pid, timeout_ms);
}

int children_run(int n, int (*fn)(int index, void *arg), void *arg, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	int failed = 0;

	if (pids == NULL)
		return n;
	for (int i = 0; i < n; i++)
		pids[i] = child_spawn(fn, i, arg);
	for (int i = 0; i < n; i++) {
		int st = pids[i] == -1 ? -1 : wait_pid(pids[i], remaining_ms(deadline));

		if (st == -2) {
			kill(pids[i], SIGKILL);
			wait_pid(pids[i], 15000);
		}
		if (st != 0)
			failed++;
	}
	free(pids);
	return failed;
}

/* ---- libfxb clients ---- */

struct fxb_client *test_client(const struct test_broker *tb, const char *token,
    const char *resume, char *errbuf, size_t errlen)
{
	struct fxb_options opts = { .url = tb->url, .token = token, .resume = resume,
		.client = "integration-tests" };
	struct fxb_client *c = NULL;
	char msg[256] = "";
	int rc = fxb_client_new(&c, &opts, msg, sizeof(msg));

	if (rc != 0)
		errf(errbuf, errlen, "fxb_client_new: %d: %s", rc, msg);
	return rc == 0 ? c : NULL;
}

int test_acquire_ports(struct fxb_client *c, size_t n, int wait_ms, struct fxb_lease **out)
{
	struct fxb_acquire_options opts = { .wait_ms = wait_ms };
	struct fxb_fixture_spec specs[64];
	char names[64][8];

	if (n > 64)
		return FXB_EINVAL;
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "p%zu", i);
		specs[i] = (struct fxb_fixture_spec){ names[i], "port", NULL };
	}
	return fxb_lease_acquire(c, specs, n, &opts, out);
}

int test_lease_port(const struct fxb_lease *l, size_t i)
{
	char name[16];
	int port;

	snprintf(name, sizeof(name), "p%zu", i);
	port = fxb_lease_port(l, name);
	return port > 0 ? port : -1;
}

/* ---- Sockets ---- */

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd == -1)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads what is available into w->buf, waiting until deadline. Returns 0, RAW_WS_EOF or
 * RAW_WS_TIMEOUT. */
static int fill(struct raw_ws *w, uint64_t deadline)
{
	struct pollfd pfd = { w->fd, POLLIN, 0 };
	ssize_t n;
	int r;

	if (w->fd < 0)
		return RAW_WS_EOF;
	if (w->bufcap - w->buflen < 16384) {
		size_t cap = w->bufcap ? w->bufcap * 2 : 65536;
		unsigned char *nb = realloc(w->buf, cap);

		if (nb == NULL)
			return RAW_WS_EOF;
		w->buf = nb;
		w->bufcap = cap;
	}
	do
		r = poll(&pfd, 1, remaining_ms(deadline));
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return RAW_WS_TIMEOUT;
	if (r == -1)
		return RAW_WS_EOF;
	n = recv(w->fd, w->buf + w->buflen, w->bufcap - w->buflen, 0);
	if (n <= 0)
		return RAW_WS_EOF;
	w->buflen += (size_t)n;
	return 0;
}

static void consume(struct raw_ws *w, size_t n)
{
	memmove(w->buf, w->buf + n, w->buflen - n);
	w->buflen -= n;
}

int raw_ws_connect(struct raw_ws *w, int port, const char *subprotocol, const char *bearer)
{
	return raw_ws_connect_with(w, port, subprotocol, bearer, NULL);
}

int raw_ws_connect_with(struct raw_ws *w, int port, const char *subprotocol, const char *bearer,
    const char *headers)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	char req[16384], proto[256] = "", auth[12288] = "";
	unsigned char *end;

	memset(w, 0, sizeof(*w));
	w->fd = tcp_connect(port);
	if (w->fd == -1)
		return -1;
	if (subprotocol != NULL)
		snprintf(proto, sizeof(proto), "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
	if (bearer != NULL)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", bearer);
	snprintf(req, sizeof(req),
	    "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
	    port, proto, auth, headers ? headers : "");
	if (write_all(w->fd, req, strlen(req)) == -1)
		return -1;
	while (w->buflen < 4 || (end = memmem(w->buf, w->buflen, "\r\n\r\n", 4)) == NULL)
		if (fill(w, deadline) != 0)
			return -1;
	{
		size_t head = (size_t)(end - w->buf) + 4;
		size_t keep = head < sizeof(w->headers) - 1 ? head : sizeof(w->headers) - 1;
		char *eol;

		memcpy(w->headers, w->buf, keep);
		w->headers[keep] = '\0';
		consume(w, head);
		eol = strstr(w->headers, "\r\n");
		keep = eol != NULL ? (size_t)(eol - w->headers) : strlen(w->headers);
		if (keep > sizeof(w->status_line) - 1)
			keep = sizeof(w->status_line) - 1;
		memcpy(w->status_line, w->headers, keep);
		w->status_line[keep] = '\0';
		if (sscanf(w->status_line, "HTTP/1.%*d %d", &w->http_status) != 1)
			w->http_status = 0;
	}
	if (w->http_status == 101 && strstr(w->headers, WS_ACCEPT) == NULL)
		return -1;
	return w->http_status ? w->http_status : -1;
}

int raw_ws_send_frame(struct raw_ws *w, int opcode, int fin, const void *data, size_t len)
{
	unsigned char *f = malloc(len + 14), mask[4];
	size_t h = 0;
	int r;

	if (f == NULL || w->fd < 0) {
		free(f);
		return -1;
	}
	for (int i = 0; i < 4; i++)
		mask[i] = (unsigned char)(rand() & 0xff);
	f[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		f[h++] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		f[h++] = 0x80 | 126;
		f[h++] = (unsigned char)(len >> 8);
		f[h++] = (unsigned char)len;
	} else {
		f[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
	r = write_all(w->fd, f, h + len);
	free(f);
	return r;
}

int raw_ws_send(struct raw_ws *w, int opcode, const void *data, size_t len, size_t fragment)
{
	const char *p = data;
	size_t off = 0;

	if (fragment == 0 || fragment >= len)
		return raw_ws_send_frame(w, opcode, 1, data, len);
	while (off < len) {
		size_t n = len - off < fragment ? len - off : fragment;

		if (raw_ws_send_frame(w, off == 0 ? opcode : WS_CONT, off + n == len, p + off, n) ==
		    -1)
			return -1;
		off += n;
	}
	return 0;
}

/* The length of a frame's head (2 bytes, the extended length, the mask) from its first
 * two bytes. */
static size_t frame_head_len(const unsigned char *b)
{
	size_t len7 = b[1] & 0x7f;

	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b[1] & 0x80) ? 4 : 0);
}

int raw_ws_read(struct raw_ws *w, struct ws_msg *m, int timeout_ms)
{
	uint64_t deadline = clock_ms() + (uint64_t)timeout_ms;
	char *acc = NULL;
	size_t acclen = 0;
	int accop = 0, r;

	memset(m, 0, sizeof(*m));
	for (;;) {
		size_t h, len;
		int op, fin, masked;
		unsigned char *payload;

		while (w->buflen < 2)
			if ((r = fill(w, deadline)) != 0)
				goto fail_r;
		h = frame_head_len(w->buf);
		while (w->buflen < h)
			if ((r = fill(w, deadline)) != 0)
				goto fail_r;
		fin = w->buf[0] & 0x80;
		op = w->buf[0] & 0x0f;
		masked = w->buf[1] & 0x80;
		len = w->buf[1] & 0x7f;
		if (len == 126) {
			len = (size_t)w->buf[2] << 8 | w->buf[3];
		} else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | w->buf[2 + i];
		}
		if (len > (size_t)1 << 30) {
			r = RAW_WS_EOF;
			goto fail_r;
		}
		while (w->buflen < h + len)
			if ((r = fill(w, deadline)) != 0)
				goto fail_r;
		payload = w->buf + h;
		if (masked)
			for (size_t i = 0; i < len; i++)
				payload[i] ^= w->buf[h - 4 + i % 4];

		if (op == WS_PING) {
			raw_ws_send_frame(w, WS_PONG, 1, payload, len);
			consume(w, h + len);
			continue;
		}
		if (op == WS_PONG) {
			consume(w, h + len);
			continue;
		}
		if (op == WS_CLOSE) {
			free(acc);
			m->opcode = WS_CLOSE;
			m->close_code = len >= 2 ? payload[0] << 8 | payload[1] : 1005;
			m->len = len >= 2 ? len - 2 : 0;
			m->payload = malloc(m->len + 1);
			if (m->payload != NULL) {
				memcpy(m->payload, payload + (len >= 2 ? 2 : 0), m->len);
				m->payload[m->len] = '\0';
			}
			consume(w, h + len);
			return 0;
		}
		if (op != WS_CONT)
			accop = op;
		{
			char *na = realloc(acc, acclen + len + 1);

			if (na == NULL) {
				r = RAW_WS_EOF;
				goto fail_r;
			}
			acc = na;
			memcpy(acc + acclen, payload, len);
			acclen += len;
			acc[acclen] = '\0';
		}
		consume(w, h + len);
		if (fin) {
			m->opcode = accop;
			m->payload = acc;
			m->len = acclen;
			return 0;
		}
	}
fail_r:
	free(acc);
	return r;
}

void raw_ws_msg_clear(struct ws_msg *m)
{
	free(m->payload);
	memset(m, 0, sizeof(*m));
}

void raw_ws_close(struct raw_ws *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->buf);
	w->buf = NULL;
	w->buflen = w->bufcap = 0;
}

/* ---- HTTP ---- */

int http_get(int port, const char *path, char **body)
{
	return http_get_auth(port, path, NULL, body);
}

int http_get_auth(int port, const char *path, const char *authorization, char **body)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	struct raw_ws w = { .fd = -1 };
	char req[1024], *head_end = NULL, *cl;
	size_t head, want = (size_t)-1;
	int status = -1, r = 0;

	if (body != NULL)
		*body = NULL;
	if ((w.fd = tcp_connect(port)) == -1)
		return -1;
	snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s%s\r\n", path,
	    port, authorization ? "Authorization: " : "", authorization ? authorization : "",
	    authorization ? "\r\n" : "");
	if (write_all(w.fd, req, strlen(req)) == -1)
		goto out;
	while (w.buflen == 0 || (head_end = memmem(w.buf, w.buflen, "\r\n\r\n", 4)) == NULL)
		if (fill(&w, deadline) != 0)
			goto out;
	head = (size_t)(head_end - (char *)w.buf) + 4;
	head_end[2] = '\0'; /* the head is now a string, its last CRLF kept */
	if (sscanf((char *)w.buf, "HTTP/1.%*d %d", &status) != 1)
		goto out;
	/* The body: Content-Length bytes, or everything up to EOF without one (chunked
	 * encoding is not decoded; the broker does not use it). */
	if ((cl = strcasestr((char *)w.buf, "\r\ncontent-length:")) != NULL)
		want = strtoul(cl + 17, NULL, 10);
	while (w.buflen - head < want && (r = fill(&w, deadline)) == 0)
		;
	if (r == RAW_WS_TIMEOUT || (r == RAW_WS_EOF && want != (size_t)-1)) {
		status = -1;
		goto out;
	}
	if (body != NULL && (*body = strndup((char *)w.buf + head, w.buflen - head)) == NULL)
		status = -1;
out:
	raw_ws_close(&w);
	return status;
}

/* ---- JSON-RPC ---- */

int raw_rpc_send(struct raw_ws *w, json_int_t id, const char *method, json_t *params)
{
	json_t *req = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
	char *text;
	int r;

	if (req == NULL) {
		json_decref(params);
		return -1;
	}
	if (params != NULL)
		json_object_set_new(req, "params", params);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (text == NULL)
		return -1;
	r = raw_ws_send(w, WS_TEXT, text, strlen(text), 0);
	free(text);
	return r;
}

json_t *raw_rpc_read(struct raw_ws *w, int timeout_ms)
{
	struct ws_msg m;
	json_t *j = NULL;

	if (raw_ws_read(w, &m, timeout_ms) != 0)
		return NULL;
	if (m.opcode == WS_TEXT)
		j = json_loadb(m.payload, m.len, 0, NULL);
	raw_ws_msg_clear(&m);
	return j;
}

json_t *raw_rpc_call(struct raw_ws *w, const char *method, json_t *params)
{
	uint64_t deadline = clock_ms() + HARNESS_IO_TIMEOUT_MS;
	json_int_t id = ++w->next_id;

	if (raw_rpc_send(w, id, method, params) == -1)
		return NULL;
	while (remaining_ms(deadline) > 0) {
		json_t *reply = raw_rpc_read(w, remaining_ms(deadline));
		json_t *rid = json_object_get(reply, "id");

		if (reply == NULL)
			return NULL;
		if (json_is_integer(rid) && json_integer_value(rid) == id)
			return reply;
		json_decref(reply);
	}
	return NULL;
}

int raw_rpc_error_code(const json_t *reply)
{
	json_t *code = json_object_get(json_object_get(reply, "error"), "code");

	return json_is_integer(code) ? (int)json_integer_value(code) : 0;
}

const char *raw_rpc_error_name(const json_t *reply)
{
	json_t *data = json_object_get(json_object_get(reply, "error"), "data");
	const char *name = json_string_value(json_object_get(data, "name"));

	return name != NULL ? name : "";
}

json_t *raw_rpc_result(const json_t *reply)
{
	return json_object_get(reply, "result");
}
