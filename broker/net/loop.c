/* loop.c: the event loop's life: the lws context, the signalfd, and the shutdown.
 *
 * A listening broker runs lws on a libev loop with the epoll backend, which this file owns
 * and hands to lws as a foreign loop, so a wake-up costs the same beside 10,000 idle
 * sessions as beside none (poll() walks every descriptor on each one). Why libev and not
 * libuv, and what epoll asks of adopted descriptors: broker/README.md, "The event loop".
 * A broker without a listener (the unit suites, which call lws_service() themselves) keeps
 * lws's own poll() loop.
 *
 * One lws context, one vhost, four protocols: "http" (http.c; protocols[0], where
 * requests that are not upgrades land), the WebSocket protocol fixture-broker.v1 (ws.c;
 * also the default for clients that name none), "ctl" here for the signalfd adopted as a
 * raw file and for lws_cancel_service() wake-ups, and "fdwatch" (fdwatch.c) for child
 * pipes and probe sockets. SIGCHLD reaps children (proc.h); SIGHUP calls the reload hook
 * (the token file, read again); SIGINT and SIGTERM go to the signal hook if one is set,
 * else start the drain (or, with drain_timeout_ms 0, the graceful shutdown); a second one
 * during the drain starts the shutdown, and one during the shutdown stops at once.
 *
 * The drain, for rolling restarts: /healthz answers 503 and new connections are refused
 * (ws.c; but for a client that names a session held here to resume it), sessions holding
 * leases (or busy: a kind's session_busy hook, a template being built) go on working
 * (those in their grace period too, until it ends), the others are closed with 1001 so
 * their clients connect elsewhere (ws_drain_sessions), and once no lease is held and no
 * session is busy, or after
 * drain_timeout_ms, the graceful shutdown releases what is left.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <ev.h>

#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "core/log.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/fdwatch.h"
#include "net/http.h"
#include "net/loop.h"
#include "net/ws.h"
#include "proc/proc.h"

#define SHUTDOWN_DEADLINE_S 3
/* How often the drain closes sessions that hold nothing and looks for its end. */
#define DRAIN_TICK_MS 100

struct loop {
	struct lws_protocols protocols[5]; /* read by lws for the context's lifetime */
	const struct http_route *routes;
	const struct http_handler *handlers;
	loop_wake_fn wake;
	loop_signal_fn on_signal;
	loop_wake_fn on_reload;
	void *signal_arg;
	int listen_port;
	int stopped;
	int exit_status;
	lws_sorted_usec_list_t shutdown_timer;
	int draining;               /* loop_drain() ran; the shutdown has not begun */
	uint64_t drain_deadline_ms; /* then the shutdown begins, whatever is held */
	lws_sorted_usec_list_t drain_tick;
	uint64_t refused; /* upgrades refused while draining or shutting down, for /metrics */
	struct broker *b;
	struct ev_loop *ev; /* lws runs on it; NULL: lws's own poll() loop */
};

/* Ends the drain: the audit log says how (outcome), and the shutdown releases what is
 * still held. */
static void
drain_end(struct broker *b, const char *outcome, const char *why)
{
	audit_event(b->audit, "broker.drained", json_pack("{s:s, s:I}", "outcome", outcome,
	    "leases", (json_int_t)leases_active(b->leases)));
	loop_shutdown(b, why);
}

static int
cb_ctl(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct broker *b = lws_context_user(lws_get_context(wsi));
	struct signalfd_siginfo si;

	(void)user;
	(void)in;
	(void)len;
	/* Broadcast to every protocol; this one is where worker threads' results land. */
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		if (b && b->loop && b->loop->wake)
			b->loop->wake(b);
		return 0;
	}
	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return 0;
	while (read(lws_get_socket_fd(wsi), &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD) {
			proc_reap(b->procs);
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			if (b->loop->on_reload)
				b->loop->on_reload(b);
			continue;
		}
		if (b->loop->on_signal && b->loop->on_signal(b->loop->signal_arg, &si))
			continue; /* the hook's (run's command); the broker stops when it says */
		if (leases_draining(b->leases)) {
			log_warnx("second signal (%s): stopping now", strsignal((int)si.ssi_signo));
			b->loop->exit_status = 1;
			b->loop->stopped = 1;
			lws_cancel_service(b->ctx);
			continue;
		}
		if (b->loop->draining) {
			log_warnx("second signal (%s) during the drain: shutting down now",
			    strsignal((int)si.ssi_signo));
			drain_end(b, "signal", "second signal during the drain");
			continue;
		}
		loop_drain(b, strsignal((int)si.ssi_signo), b->cfg.drain_timeout_ms);
	}
	return 0;
}

static const struct lws_protocols ctl_protocol = { "ctl", cb_ctl, 0, 0, 0, NULL, 0 };
static const struct lws_protocols fdwatch_protocol = {
	"fdwatch", fdwatch_callback, 0, 0, 0, NULL, 0,
};

static const struct lws_protocol_vhost_options pvo_default = { NULL, NULL, "default", "1" };
static const struct lws_protocol_vhost_options pvo = { NULL, &pvo_default, WS_SUBPROTOCOL, "" };

static void
lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	/* lws 4.1.6's libev glue logs a notice on every watcher change and adoption: noise
	 * at the rate of messages, with nothing in it a broker's log needs. */
	if (level == LLL_NOTICE && (!strncmp(line, "elops_io_ev:", 12) ||
	    !strncmp(line, "elops_accept_ev", 15)))
		return;

	while (n && line[n - 1] == '\n')
		n--;
	log_at(level & LLL_ERR ? LOG_LEVEL_ERROR : level & LLL_WARN ? LOG_LEVEL_WARN
	    : LOG_LEVEL_DEBUG, 0, "lws", "%.*s", (int)n, line);
}

/* Raises the descriptor limit so thousands of sessions fit; returns the new limit. */
static int
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
}

/* lws 4.1.6's libev glue (lib/event-libs/libev/libev.c) re-arms its one timer for the
 * earliest lws_sul with ev_timer_set() and ev_timer_start() after its callbacks, also when
 * that timer is still armed for a later deadline; libev ignores the start of an active
 * watcher, so the earlier lws_sul would wait for the later deadline (a heartbeat, a grace
 * period, minutes). This definition comes first in the process's symbol lookup (the link
 * exports it: -Wl,--export-dynamic-symbol in the Makefile), so the plugin calls it: a
 * start of an active watcher becomes a restart at the time just set, which ev_timer_set
 * left relative in w->at. Other starts go straight to libev's. */
#ifndef FXB_LOOP_POLL_ONLY
void
ev_timer_start(struct ev_loop *loop, ev_timer *w) EV_NOEXCEPT
{
	static void (*real)(struct ev_loop *, ev_timer *);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "ev_timer_start");
	if (ev_is_active(w)) {
		ev_tstamp after = w->at;

		ev_timer_stop(loop, w);
		w->at = after;
	}
	real(loop, w);
}
#endif

/* lws watches signals itself only on a loop of its own; a foreign loop gets none, and
 * signals come through the signalfd. Set anyway, so lws never stops the loop on its own. */
static void
evlib_signal(void *handle, int signum)
{
	(void)handle;
	(void)signum;
}

static int
adopt_signals(struct broker *b, struct fxb_error *err)
{
	lws_sock_file_fd_type u;
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	if ((fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		error_set(err, ERR_INTERNAL, "signalfd failed");
		return -1;
	}
	u.filefd = fd;
	if (!lws_adopt_descriptor_vhost(b->vhost, LWS_ADOPT_RAW_FILE_DESC, u, "ctl", NULL)) {
		close(fd);
		error_set(err, ERR_INTERNAL, "cannot adopt the signalfd");
		return -1;
	}
	return 0;
}

int
loop_start(struct broker *b, loop_wake_fn wake, const struct http_route *routes,
    struct fxb_error *err)
{
	struct lws_context_creation_info info;
	struct loop *l = calloc(1, sizeof *l);
	const char *evlib = getenv("FXB_EVENT_LOOP"); /* "poll": lws's own, to compare */
	void *foreign[1];

	if (!l) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	l->wake = wake;
	l->routes = routes;
	l->protocols[0] = http_protocol;
	l->protocols[1] = ws_protocol;
	l->protocols[2] = ctl_protocol;
	l->protocols[3] = fdwatch_protocol;
	l->b = b;
	b->loop = l;

	lws_set_log_level(b->cfg.log_level >= LOG_LEVEL_DEBUG ? LLL_ERR | LLL_WARN | LLL_NOTICE
	    : LLL_ERR | LLL_WARN, lws_log);
	memset(&info, 0, sizeof info);
	info.port = b->cfg.listen_port < 0 ? CONTEXT_PORT_NO_LISTEN : b->cfg.listen_port;
	/* lws takes an address or an interface name, not a host name. */
	info.iface = b->cfg.listen_port < 0 ? NULL : !strcmp(b->cfg.listen_host, "localhost")
	    ? "127.0.0.1" : b->cfg.listen_host;
	info.protocols = l->protocols;
	info.pvo = &pvo;
	info.user = b;
	info.fd_limit_per_thread = (unsigned int)raise_fd_limit();
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 |
	    LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	/* lws 4.1 opens an IPv6 socket and, given an IPv4 address it cannot apply to it, binds
	 * every address of the host: "127.0.0.1" listened on *. An IPv4 address gets an IPv4
	 * socket, which binds exactly that address. */
	if (!strchr(b->cfg.listen_host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	/* TLS on the one port, for WebSocket and HTTP alike; a plain connection then fails its
	 * handshake (no ALLOW_NON_SSL_ON_SSL_PORT), so nothing is served in clear text. */
	if (b->cfg.tls_cert[0] && b->cfg.listen_port >= 0) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = b->cfg.tls_cert;
		info.ssl_private_key_filepath = b->cfg.tls_key;
		if (b->cfg.tls_client_ca[0]) {
			info.ssl_ca_filepath = b->cfg.tls_client_ca;
			info.options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
		}
	}
	/* The event library: a libev loop of ours on epoll, as lws's foreign loop (lws does
	 * not export the loop it would make itself, and the broker turns the loop one step at
	 * a time). EVFLAG_NOSIGMASK: libev leaves the signal mask alone; signals stay blocked
	 * for the signalfd. */
#ifdef FXB_LOOP_POLL_ONLY
	/* The npm package's broker (mk/dist.mk) links libwebsockets statically: lws's libev
	 * plugin, a shared library linked to the shared lws, must never load into it. */
	evlib = "poll";
#endif
	if (b->cfg.listen_port >= 0 && !(evlib && !strcmp(evlib, "poll"))) {
		if (!(l->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK))) {
			error_set(err, ERR_INTERNAL, "cannot make the event loop (libev on epoll)");
			return -1;
		}
		foreign[0] = l->ev;
		info.foreign_loops = foreign;
		info.signal_cb = evlib_signal;
		info.options |= LWS_SERVER_OPTION_LIBEV;
	}
	info.ka_time = 30;
	info.ka_probes = 4;
	info.ka_interval = 10;
	info.timeout_secs = 10;
	/* Room for an Authorization header past ws.c's cap, so that one is answered 431. */
	info.max_http_header_data = 16384;
	if (!(b->ctx = lws_create_context(&info))) {
		error_set(err, ERR_INTERNAL, "listen: cannot listen on %s:%d%s", b->cfg.listen_host,
		    b->cfg.listen_port, l->ev ? ", or libwebsockets cannot load its libev plugin "
		    "(Debian: libwebsockets-evlib-ev)" : "");
		return -1;
	}
	b->vhost = lws_get_vhost_by_name(b->ctx, "default");
	if (b->cfg.listen_port >= 0) {
		l->listen_port = lws_get_vhost_listen_port(b->vhost);
		/* lws logs an address it cannot bind ("iface ... DOESN'T EXIST") and goes on. */
		if (l->listen_port <= 0) {
			error_set(err, ERR_INTERNAL, "listen: cannot listen on %s:%d (no such local "
			    "address or interface)", b->cfg.listen_host, b->cfg.listen_port);
			return -1;
		}
		if (adopt_signals(b, err) == -1)
			return -1;
	}
	if (l->ev) {
		/* lws defers PROTOCOL_INIT, where the vhost takes its default protocol from the
		 * pvo, to a timer of its start-up; lws_service() ran that timer before its first
		 * poll(), but on libev a client accepted in the first turn would come before it,
		 * and one that names no subprotocol would be bound to "http". Done now instead
		 * (lws_protocol_init() runs once per vhost). */
		if (lws_protocol_init(b->ctx)) {
			error_set(err, ERR_INTERNAL, "libwebsockets: protocol init failed");
			return -1;
		}
		/* lws on libev arms its timer for the next lws_sul from its callbacks only
		 * (after descriptor events and timers); one wake-up now covers the timers set
		 * while the broker was being built. Everything later is set from callbacks. */
		lws_cancel_service(b->ctx);
	}
	return 0;
}

void
loop_on_reload(struct loop *l, loop_wake_fn fn)
{
	l->on_reload = fn;
}

void
loop_on_signal(struct loop *l, loop_signal_fn fn, void *arg)
{
	l->on_signal = fn;
	l->signal_arg = arg;
}

int
loop_run(struct broker *b)
{
	struct loop *l = b->loop;

	/* Draining ends when every session is closed and every released fixture (a server
	 * in its stop grace period) has stopped, or at the shutdown deadline. */
	while (!l->stopped && !(leases_draining(b->leases) && sessions_count(b->sessions) == 0 &&
	    leases_stopping(b->leases) == 0)) {
		/* One turn each: ev_run() returns after the callbacks of one wake-up,
		 * lws_service() after one poll(). */
		if (l->ev)
			ev_run(l->ev, EVRUN_ONCE);
		else if (lws_service(b->ctx, 0) < 0)
			break;
	}
	return l->exit_status;
}

void
loop_turn(struct broker *b)
{
	if (b->loop->ev)
		ev_run(b->loop->ev, EVRUN_ONCE);
	else
		lws_service(b->ctx, 0);
}

void
loop_stop(struct broker *b)
{
	struct loop *l = b->loop;

	/* lws stops its watchers on the foreign loop and closes every wsi at once (libev
	 * closes nothing asynchronously); the loop goes after the context. */
	if (l && l->draining && b->ctx)
		lws_sul_cancel(&l->drain_tick);
	if (b->ctx)
		lws_context_destroy(b->ctx);
	b->ctx = NULL;
	b->vhost = NULL;
	if (l && l->ev)
		ev_loop_destroy(l->ev);
	free(l);
	b->loop = NULL;
}

static void
shutdown_deadline(lws_sorted_usec_list_t *sul)
{
	struct loop *l = lws_container_of(sul, struct loop, shutdown_timer);

	log_warnx("%zu session(s) did not close in %d s; stopping anyway",
	    sessions_count(l->b->sessions), SHUTDOWN_DEADLINE_S);
	l->stopped = 1;
}

void
loop_shutdown(struct broker *b, const char *why)
{
	struct loop *l = b->loop;

	if (leases_draining(b->leases))
		return;
	if (l->draining) {
		l->draining = 0;
		lws_sul_cancel(&l->drain_tick);
	}
	leases_drain(b->leases);
	log_info("shutting down (%s): releasing every lease, closing %zu session(s)", why,
	    sessions_count(b->sessions));
	ws_close_all(b, "broker shutting down");
	lws_sul_schedule(b->ctx, 0, &l->shutdown_timer, shutdown_deadline,
	    SHUTDOWN_DEADLINE_S * LWS_US_PER_SEC);
}

/* The drain's heartbeat: closes the sessions that hold nothing, then ends the drain when
 * no lease is held or waited for, or when its deadline has passed. */
static void
drain_tick(lws_sorted_usec_list_t *sul)
{
	struct loop *l = lws_container_of(sul, struct loop, drain_tick);
	struct broker *b = l->b;
	uint64_t now = now_ms();
	size_t held;

	ws_drain_sessions(b, "broker draining: connect to another broker");
	held = leases_active(b->leases);
	/* A client building a template holds no lease: its session counts until it is done. */
	if (held == 0 && leases_waiting(b->leases) == 0 && lease_busy_sessions(b) == 0) {
		log_info("drained: no lease is held any more");
		drain_end(b, "drained", "drained");
		return;
	}
	if (now >= l->drain_deadline_ms) {
		log_warnx("drain_timeout_ms passed with %zu lease(s) still held: releasing them", held);
		drain_end(b, "timeout", "drain_timeout_ms passed");
		return;
	}
	lws_sul_schedule(b->ctx, 0, &l->drain_tick, drain_tick,
	    (lws_usec_t)(l->drain_deadline_ms - now < DRAIN_TICK_MS ? l->drain_deadline_ms - now
	    : DRAIN_TICK_MS) * LWS_US_PER_MS);
}

void
loop_drain(struct broker *b, const char *why, int timeout_ms)
{
	struct loop *l = b->loop;

	if (leases_draining(b->leases))
		return;
	if (timeout_ms <= 0) {
		if (l->draining)
			drain_end(b, "cut short", why);
		else
			loop_shutdown(b, why);
		return;
	}
	l->drain_deadline_ms = now_ms() + (uint64_t)timeout_ms;
	if (l->draining) {
		log_info("drain (%s): %d ms left now", why, timeout_ms);
		return;
	}
	l->draining = 1;
	log_info("draining (%s): refusing new sessions; %zu lease(s) of %zu session(s) may run "
	    "for up to %d ms", why, leases_active(b->leases), sessions_count(b->sessions),
	    timeout_ms);
	audit_event(b->audit, "broker.drain", json_pack("{s:s, s:i, s:I, s:I}", "reason", why,
	    "timeout_ms", timeout_ms, "leases", (json_int_t)leases_active(b->leases),
	    "sessions", (json_int_t)sessions_count(b->sessions)));
	/* Not from here: the caller may be a call of a session the tick closes. */
	lws_sul_schedule(b->ctx, 0, &l->drain_tick, drain_tick, 1);
}

void
loop_drain_soon(struct broker *b)
{
	struct loop *l = b->loop;

	/* Not from here either: the caller is a call of a session the tick may close. */
	if (l && l->draining)
		lws_sul_schedule(b->ctx, 0, &l->drain_tick, drain_tick, 1);
}

int
loop_draining(const struct broker *b, uint64_t *remaining_ms)
{
	const struct loop *l = b->loop;
	uint64_t now = now_ms();

	if (remaining_ms)
		*remaining_ms = 0;
	if (!l || (!l->draining && !leases_draining(b->leases)))
		return 0;
	if (remaining_ms && l->draining && l->drain_deadline_ms > now)
		*remaining_ms = l->drain_deadline_ms - now;
	return 1;
}

void
loop_count_refused(struct broker *b)
{
	b->loop->refused++;
}

uint64_t
loop_refused(const struct broker *b)
{
	return b->loop ? b->loop->refused : 0;
}

int
loop_listen_port(const struct loop *l)
{
	return l->listen_port;
}

const struct http_route *
loop_routes(const struct loop *l)
{
	return l->routes;
}

void
loop_set_handlers(struct loop *l, const struct http_handler *handlers)
{
	l->handlers = handlers;
}

const struct http_handler *
loop_handlers(const struct loop *l)
{
	return l->handlers;
}
