/* conn.c: a client's service thread and the life of its connection.
 *
 * The service thread connects (TCP, the TLS handshake for wss:// (tls.c), then the
 * WebSocket upgrade with the subprotocol fixture-broker.v1 and the bearer token), says
 * session.hello (with the resume token once it has one), and reads the socket while no call
 * is in flight, so that pings, a close or a drop are seen while the caller is idle. The
 * broker pings every heartbeat_ms: a connection that has brought nothing for the
 * dead_after_ms of the broker's hello (15 s when it does not say) is dead whatever TCP
 * thinks, and is dropped; halfway there the thread sends a ping of its own, which any
 * broker answers. The calls themselves write and read on their own threads (wire.c). When
 * the connection drops, whichever thread notices calls conn_drop(): the socket is shut down
 * at once (ending any read on it), the calls in flight fail with FXB_ECONNECT (FXB_EPROTO
 * through conn_fail() when the broker broke the protocol), and the service thread closes
 * the socket once nobody reads it and reconnects with backoff; the hello on the new
 * connection resumes the session (or starts afresh after a 4001 takeover close), so leases
 * survive a drop shorter than the broker's grace period. fxb_client_free ends the thread
 * after a closing handshake.
 */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define SUBPROTOCOL "fixture-broker.v1"
#define UPGRADE_MAX_BYTES 16384 /* the head of the broker's upgrade answer */
#define CLOSE_WAIT_MS 2000
/* How long after the last call the service thread reads the socket again; meanwhile the
 * callers read it, and the thread looks in at this pace. */
#define IDLE_MS 100
#define CLOSE_NORMAL 1000

/* The broker keeps a dropped session for 5 s by default: the first attempts come fast. */
static const unsigned backoff_ms[] = {100, 250, 500, 1000, 2000};

/* ---- Helpers ---- */

void
conn_debug(const struct fxb_client *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->debug)
		return;
	flockfile(stderr);
	fprintf(stderr, "fxb %s: ", c->url);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

/* A seed for rng_next(), never 0. */
static uint64_t
seed(void)
{
	struct timespec ts;
	uint64_t s = 0;

	if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s || !s) {
		clock_gettime(CLOCK_REALTIME, &ts);
		s = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)&ts;
	}
	return s ? s : 1;
}

/* Wakes the service thread out of poll(). */
void
conn_wake(struct fxb_client *c)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is full: a wake-up is pending anyway. */
	ssize_t n = write(c->wake_fd, &one, sizeof one);

	(void)n;
}

static void
drain_wake(struct fxb_client *c)
{
	uint64_t v;
	ssize_t n = read(c->wake_fd, &v, sizeof v);

	(void)n;
}

void
conn_set_failure(
    struct fxb_client *c, int code, int broker_code, const char *broker_name, const char *fmt, ...)
{
	va_list ap;

	c->fail_code = code;
	c->fail_broker_code = broker_code;
	snprintf(c->fail_name, sizeof c->fail_name, "%s", broker_name ? broker_name : "");
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
	va_end(ap);
}

/* ---- Drops ---- */

/* Sets when the next connection attempt may start: the backoff for the number of failed
 * attempts so far, with jitter (under mu). */
static void
schedule_retry(struct fxb_client *c, long long now)
{
	unsigned n = sizeof backoff_ms / sizeof backoff_ms[0];
	long long ms = backoff_ms[c->retries < n ? c->retries : n - 1];

	/* 20% of jitter, so that clients dropped together do not come back together. */
	ms = ms * (long long)(80 + rng_next(&c->rng) % 41) / 100;
	c->reconnect_ms = now + ms;
	if (c->retries < UINT_MAX)
		c->retries++;
}

/* Connection gen is gone, or must go: shuts it down, which wakes any thread reading it,
 * fails the calls in flight with code and lets the service thread close it and reconnect.
 * failure (a whole sentence) becomes the client's failure; detail, which may be NULL, is
 * for the trace. Only the first report counts. */
static void
drop_locked(struct fxb_client *c, unsigned gen, int code, const char *failure,
    const char *detail)
{
	if (gen != c->gen || c->sock < 0 || c->dead)
		return;
	c->dead = 1;
	shutdown(c->sock, SHUT_RDWR);
	c->hello_id = 0;
	wire_fail_calls(c, c->stop ? FXB_ECLOSED : code);
	if (c->stop) {
		c->state = CONN_CLOSED;
	} else if (c->state == CONN_FAILED) {
		/* Keep the first reason: a hello error says more than the close after it. */
	} else {
		c->state = c->ever_open ? CONN_CONNECTING : CONN_FAILED;
		conn_set_failure(c, code, 0, NULL, "%s", failure);
	}
	conn_debug(c, "connection %s%s%s", c->stop ? "closed" : "lost", detail ? ": " : "",
	    detail ? detail : "");
	pthread_cond_broadcast(&c->cv);
	conn_wake(c);
}

void
conn_drop_locked(struct fxb_client *c, unsigned gen, const char *what, const char *detail)
{
	char failure[sizeof c->fail_msg];

	snprintf(failure, sizeof failure, "%s %s%s%s", what, c->url, detail ? ": " : "",
	    detail ? detail : "");
	drop_locked(c, gen, FXB_ECONNECT, failure, detail);
}

void
conn_drop(struct fxb_client *c, unsigned gen, const char *what, const char *detail)
{
	pthread_mutex_lock(&c->mu);
	conn_drop_locked(c, gen, what, detail);
	pthread_mutex_unlock(&c->mu);
}

void
conn_fail(struct fxb_client *c, unsigned gen, int code, const char *why)
{
	pthread_mutex_lock(&c->mu);
	drop_locked(c, gen, code, why, why);
	pthread_mutex_unlock(&c->mu);
}

/* Closes the dead socket once nobody reads it (service thread, reading clear) and
 * schedules the next attempt when the client reconnects. */
static void
close_locked(struct fxb_client *c, long long now)
{
	wire_close(c);
	tls_free(c->ssl);
	c->ssl = NULL;
	close(c->sock);
	c->sock = -1;
	c->dead = 0;
	if (c->state == CONN_CONNECTING && !c->stop)
		schedule_retry(c, now);
}

/* ---- Connecting ---- */

/* Waits until fd is ready for events or deadline_ms passes, watching for the client
 * closing. Returns 1 when ready, 0 on the deadline, -1 when the client is closing. */
static int
wait_fd(struct fxb_client *c, int fd, short events, long long deadline_ms)
{
	struct pollfd p[2] = {{fd, events, 0}, {c->wake_fd, POLLIN, 0}};
	long long left;
	int n, stop;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		stop = c->stop;
		pthread_mutex_unlock(&c->mu);
		if (stop)
			return -1;
		if ((left = deadline_ms - clock_now_ms()) <= 0)
			return 0;
		n = poll(p, 2, left > INT_MAX ? INT_MAX : (int)left);
		if (n == -1 && errno != EINTR)
			return 0;
		if (n > 0 && p[1].revents)
			drain_wake(c);
		if (n > 0 && p[0].revents)
			return 1;
	}
}

/* Connects, makes the TLS handshake for wss:// and upgrades to WebSocket within the
 * connect timeout (1 to 10 s, within the client's timeout). Returns the socket
 * (non-blocking, Nagle off) and its TLS in *sslp (NULL for ws://), with any bytes that
 * followed the upgrade answer handed to wire_reset(); or -1 with the reason in why and the
 * HTTP status of a refused upgrade, if any, in *status. */
static int
ws_connect(struct fxb_client *c, SSL **sslp, int *status, char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16], key[25], accept[29], *buf = NULL, ebuf[128], *nbuf;
	long long limit = c->timeout_ms, deadline;
	size_t cap, len, off = 0, head_len;
	char *end;
	socklen_t elen;
	ssize_t n;
	SSL *ssl = NULL;
	int fd = -1, one = 1, err = ECONNREFUSED, rc, more = 0;

	*status = 0;
	*sslp = NULL;
	if (limit < 1000)
		limit = 1000;
	if (limit > 10000)
		limit = 10000;
	deadline = clock_now_ms() + limit;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof port, "%d", c->port);
	if ((rc = getaddrinfo(c->address, port, &hints, &res))) {
		snprintf(why, whylen, "%s",
		    rc == EAI_SYSTEM ? strerror_r(errno, ebuf, sizeof ebuf) : gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(
		    ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		err = errno;
		if (err == EINPROGRESS) {
			if ((rc = wait_fd(c, fd, POLLOUT, deadline)) < 0) {
				err = ECANCELED;
			} else if (!rc) {
				err = ETIMEDOUT;
			} else {
				elen = sizeof err;
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen))
					err = errno;
				if (!err)
					break;
			}
		}
		close(fd);
		fd = -1;
		if (err == ECANCELED || err == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == ECANCELED)
			snprintf(why, whylen, "the client is closing");
		else if (err == ETIMEDOUT)
			snprintf(why, whylen, "no connection within %lld ms", limit);
		else
			snprintf(why, whylen, "%s", strerror_r(err, ebuf, sizeof ebuf));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	if (c->tls_ctx) {
		if (!(ssl = tls_start(c->tls_ctx, fd, c->address, why, whylen)))
			goto fail;
		while ((rc = tls_handshake(ssl, c->tls_ca_name, why, whylen))) {
			if (rc < 0)
				goto fail;
			if ((rc = wait_fd(c, fd, (short)rc, deadline)) <= 0) {
				snprintf(why, whylen, "%s",
				    rc ? "the client is closing"
				       : "the TLS handshake did not finish in time");
				goto fail;
			}
		}
	}

	/* One buffer for the request, then for the answer. */
	ws_key_new(key, accept);
	cap = strlen(c->host_header) + strlen(c->path) + (c->token ? strlen(c->token) : 0) + 512;
	if (cap < UPGRADE_MAX_BYTES)
		cap = UPGRADE_MAX_BYTES;
	if (!(buf = malloc(cap)) || !(len = ws_upgrade_request(buf, cap, c->host_header, c->path,
	                                  key, SUBPROTOCOL, c->token))) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	while (off < len) {
		n = io_send(&c->tls_mu, ssl, fd, buf + off, len - off, why, whylen);
		if (n > 0) {
			off += (size_t)n;
		} else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((rc = wait_fd(c, fd, POLLOUT, deadline)) <= 0) {
				snprintf(why, whylen, "%s",
				    rc ? "the client is closing"
				       : "the WebSocket upgrade timed out");
				goto fail;
			}
		} else {
			goto fail;
		}
	}

	len = 0;
	while (len < 4 || !(end = memmem(buf, len, "\r\n\r\n", 4))) {
		if (len == UPGRADE_MAX_BYTES) {
			snprintf(why, whylen, "the answer to the WebSocket upgrade is too long");
			goto fail;
		}
		n = io_recv(&c->tls_mu, ssl, fd, buf + len, UPGRADE_MAX_BYTES - len, &more, why,
		    whylen);
		if (n > 0) {
			len += (size_t)n;
		} else if (n == 0) {
			snprintf(
			    why, whylen, "the broker closed the connection during the upgrade");
			goto fail;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((rc = wait_fd(c, fd, POLLIN, deadline)) <= 0) {
				if (rc)
					snprintf(why, whylen, "the client is closing");
				else
					snprintf(why, whylen,
					    "no answer to the WebSocket upgrade within %lld ms",
					    limit);
				goto fail;
			}
		} else {
			/* A broker that wants a client certificate (TLS 1.3) checks it only
			 * after the handshake, and then drops the connection. */
			if (ssl && !SSL_CTX_get0_certificate(c->tls_ctx))
				snprintf(why + strlen(why), whylen - strlen(why),
				    " (if the broker asks for a client certificate, give one with "
				    "tls.cert and tls.key)");
			goto fail;
		}
	}
	/* What TLS holds beyond the answer would not wake poll(): take it now. */
	head_len = (size_t)(end - buf) + 4;
	while (more) {
		if (!(nbuf = realloc(buf, len + UPGRADE_MAX_BYTES))) {
			snprintf(why, whylen, "out of memory");
			goto fail;
		}
		buf = nbuf;
		n = io_recv(&c->tls_mu, ssl, fd, buf + len, UPGRADE_MAX_BYTES, &more, why, whylen);
		if (n <= 0)
			break; /* the next read on the connection sees it again */
		len += (size_t)n;
	}
	if (ws_upgrade_check(buf, head_len, accept, SUBPROTOCOL, status, why, whylen))
		goto fail;
	if (wire_reset(c, (unsigned char *)buf + head_len, len - head_len)) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	free(buf);
	*sslp = ssl;
	return fd;
fail:
	free(buf);
	tls_free(ssl);
	close(fd);
	return -1;
}

/* One connection attempt and its hello (service thread, without mu). */
static void
connect_once(struct fxb_client *c)
{
	char why[384];
	unsigned gen;
	SSL *ssl;
	int fd, status, with_resume, hint;

	conn_debug(c, "connecting");
	fd = ws_connect(c, &ssl, &status, why, sizeof why);
	pthread_mutex_lock(&c->mu);
	if (fd >= 0 && c->stop) {
		tls_free(ssl);
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		if (!c->stop) {
			/* The broker refuses a wrong bearer token with 401. */
			hint = c->token && (status == 401 || status == 403);
			if (c->ever_open)
				schedule_retry(c, clock_now_ms());
			else
				c->state = CONN_FAILED;
			conn_set_failure(c, FXB_ECONNECT, 0, NULL, "cannot connect to %s: %s%s",
			    c->url, why, hint ? " (is the bearer token right?)" : "");
			conn_debug(c, "cannot connect: %s", why);
			pthread_cond_broadcast(&c->cv);
		}
		pthread_mutex_unlock(&c->mu);
		return;
	}
	c->sock = fd;
	c->ssl = ssl;
	gen = ++c->gen;
	c->dead = 0;
	c->close_sent = 0;
	c->last_rx_ms = clock_now_ms();
	c->ping_ms = 0;
	c->state = CONN_HELLO;
	c->connects++;
	with_resume = !c->taken_over;
	c->taken_over = 0;
	wire_open(c, fd, ssl, gen);
	pthread_mutex_unlock(&c->mu);
	conn_debug(c, "connected");
	wire_hello(c, gen, with_resume);
}

/* ---- The service thread ---- */

/* The closing handshake when the client is freed (service thread, under mu): our close
 * frame, then the broker's answer or its end of the connection, within a bounded wait. */
static void
close_gracefully(struct fxb_client *c)
{
	struct pollfd p;
	long long deadline, left;
	unsigned gen = c->gen;
	int fd, n, send_close;

	if (c->sock >= 0 && !c->dead) {
		send_close = !c->close_sent;
		c->close_sent = 1;
		deadline = clock_now_ms() +
		           (c->timeout_ms < CLOSE_WAIT_MS ? c->timeout_ms : CLOSE_WAIT_MS);
		pthread_mutex_unlock(&c->mu);
		if (send_close)
			wire_send_close(c, gen, CLOSE_NORMAL);
		pthread_mutex_lock(&c->mu);
		fd = wire_take(c, gen);
		pthread_mutex_unlock(&c->mu);
		while (fd >= 0 && (left = deadline - clock_now_ms()) > 0) {
			p = (struct pollfd){fd, POLLIN, 0};
			if (wire_backlog(c))
				p.events |= POLLOUT;
			n = poll(&p, 1, (int)left);
			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (p.revents & POLLOUT)
				wire_flush(c, gen);
			if ((p.revents & ~POLLOUT) && wire_read(c, fd, gen) < 0)
				break;
		}
		pthread_mutex_lock(&c->mu);
		if (fd >= 0)
			wire_give_back(c);
	}
	if (c->sock >= 0) {
		conn_drop_locked(c, gen, "closed the connection to", NULL);
		/* The shutdown ends any read in progress, whose holder gives the role back. */
		while (c->reading)
			pthread_cond_wait(&c->cv, &c->mu);
		close_locked(c, clock_now_ms());
	}
	c->state = CONN_CLOSED;
}

/* Connects, reconnects after a backoff, keeps the connection alive and reads it while no
 * call does, until the client is freed. */
static void *
service_main(void *arg)
{
	struct fxb_client *c = arg;
	struct pollfd p[2];
	struct timespec ts;
	long long now, next, wait, silent, probe;
	char why[128], old[sizeof c->lost_old], fresh[sizeof c->lost_new];
	fxb_session_lost_fn lost_fn;
	void *lost_arg;
	unsigned gen = 0;
	int nfds, watch, fd;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		now = clock_now_ms();
		/* A lost session is told of here, off every lock and off the callers' threads. */
		if (c->lost_notify) {
			c->lost_notify = 0;
			lost_fn = c->lost_fn;
			lost_arg = c->lost_arg;
			memcpy(old, c->lost_old, sizeof old);
			memcpy(fresh, c->lost_new, sizeof fresh);
			if (lost_fn) {
				pthread_mutex_unlock(&c->mu);
				lost_fn(c, old, fresh, lost_arg);
				pthread_mutex_lock(&c->mu);
			}
			continue;
		}
		if (c->sock >= 0 && c->dead) {
			if (c->reading) {
				/* The holder sees the shutdown at once and gives the role back. */
				deadline_ts(&ts, now + 100);
				pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			} else {
				close_locked(c, now);
			}
			continue;
		}
		p[0] = (struct pollfd){c->wake_fd, POLLIN, 0};
		nfds = 1;
		watch = 0;
		next = -1;
		if (c->sock < 0) {
			if (c->state == CONN_CONNECTING && now >= c->reconnect_ms) {
				pthread_mutex_unlock(&c->mu);
				connect_once(c);
				pthread_mutex_lock(&c->mu);
				continue;
			}
			if (c->state == CONN_CONNECTING)
				next = c->reconnect_ms;
		} else {
			gen = c->gen;
			silent = now - c->last_rx_ms;
			probe = c->dead_after_ms > 1 ? c->dead_after_ms / 2 : 1;
			if (silent >= c->dead_after_ms) {
				snprintf(why, sizeof why,
				    "nothing from the broker for %lld ms (dead_after_ms %lld)", silent,
				    c->dead_after_ms);
				conn_drop_locked(c, gen, "lost the connection to", why);
				continue;
			}
			if (silent >= probe && c->ping_ms <= c->last_rx_ms) {
				c->ping_ms = now;
				pthread_mutex_unlock(&c->mu);
				wire_send_control(c, gen, WS_OP_PING, NULL, 0);
				pthread_mutex_lock(&c->mu);
				continue;
			}
			next = c->last_rx_ms + (silent >= probe ? c->dead_after_ms : probe);
			/* While calls are in flight their threads read the socket; reading it
			 * here too would only wake this thread for every reply. */
			watch =
			    !c->reading && (c->state != CONN_OPEN ||
			                       (!c->npending && now - c->last_call_ms >= IDLE_MS));
			if (!watch) {
				if (next > now + IDLE_MS)
					next = now + IDLE_MS;
				if (!c->reading)
					wire_promote(c);
			}
			p[1] = (struct pollfd){c->sock, watch ? POLLIN : 0, 0};
			if (wire_backlog(c))
				p[1].events |= POLLOUT;
			if (p[1].events)
				nfds = 2;
		}
		pthread_mutex_unlock(&c->mu);

		wait = next < 0 ? -1 : next > now ? next - now : 0;
		if (poll(p, (nfds_t)nfds, wait > INT_MAX ? INT_MAX : (int)wait) > 0) {
			if (p[0].revents)
				drain_wake(c);
			if (nfds == 2 && (p[1].events & POLLOUT) && p[1].revents)
				wire_flush(c, gen);
			if (nfds == 2 && watch && p[1].revents) {
				pthread_mutex_lock(&c->mu);
				fd = wire_take(c, gen);
				pthread_mutex_unlock(&c->mu);
				if (fd >= 0) {
					wire_read(c, fd, gen);
					pthread_mutex_lock(&c->mu);
					wire_give_back(c);
					pthread_mutex_unlock(&c->mu);
				}
			}
		}
		pthread_mutex_lock(&c->mu);
	}
	close_gracefully(c);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int
conn_start(struct fxb_client *c)
{
	const char *d = getenv("FXB_DEBUG");
	sigset_t all, old;
	char buf[128];
	int rc;

	c->debug = d && *d && strcmp(d, "0");
	c->rng = seed();
	c->mask_rng = seed() ^ 0x9e3779b97f4a7c15u;
	if ((c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = errno;
		conn_set_failure(c, rc == ENOMEM ? FXB_ENOMEM : FXB_ECONNECT, 0, NULL,
		    "cannot create an eventfd: %s", strerror_r(rc, buf, sizeof buf));
		return c->fail_code;
	}

	/* The service thread takes no signals: they belong to the host's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, service_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		conn_set_failure(c, FXB_ENOMEM, 0, NULL, "cannot start the service thread: %s",
		    strerror_r(rc, buf, sizeof buf));
		return FXB_ENOMEM;
	}
	c->thread_started = 1;
	return 0;
}

void
conn_stop(struct fxb_client *c)
{
	if (c->thread_started) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		wire_fail_calls(c, FXB_ECLOSED);
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		conn_wake(c);
		pthread_join(c->thread, NULL);
		c->thread_started = 0;
	}
	if (c->wake_fd >= 0) {
		close(c->wake_fd);
		c->wake_fd = -1;
	}
	wire_free(c);
}
