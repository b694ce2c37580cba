/* test_loop.c: a listening broker's event loop (libuv, epoll) and the descriptors it adopts.
 *
 * epoll registers a file description, not a descriptor number: a dup() closed while the
 * original stays open (a library's socket, adopted as a dup as net/fdwatch.h asks) keeps
 * its registration unless the loop removed it before the close, and the loop then wakes
 * for it forever. These tests let go of dups whose original has unread data and check
 * that the loop sleeps, and that the same description can be adopted again and again, as
 * a reconnecting library's socket would be.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "core/clock.h"
#include "net/fdwatch.h"
#include "net/loop.h"

#define IDLE_MS 500
#define IDLE_CPU_MS 100 /* a spinning loop burns most of IDLE_MS */
#define ROUNDS 200

static char state_dir[] = "/tmp/fxb-unit-loop-XXXXXX";

/* A broker listening on 127.0.0.1, port picked by the kernel: its loop is the event library. */
static struct broker *
listening_broker(void)
{
	static const char eph[] = "/tmp/fxb-unit-loop-ephemeral";
	struct fxb_error err = { 0 };
	struct config cfg;
	struct broker *b;
	FILE *f = fopen(eph, "w");

	cr_assert_not_null(f);
	fputs("60000 60999\n", f);
	fclose(f);
	cr_assert_not_null(mkdtemp(state_dir));
	config_defaults(&cfg);
	snprintf(cfg.listen_host, sizeof cfg.listen_host, "127.0.0.1");
	cfg.listen_port = 0;
	cfg.ports_first = 16400;
	cfg.ports_last = 16401;
	cfg.log_level = LOG_LEVEL_ERROR;
	snprintf(cfg.ephemeral_path, sizeof cfg.ephemeral_path, "%s", eph);
	snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s", state_dir);
	snprintf(cfg.port_lock_file, sizeof cfg.port_lock_file, "none");
	log_set_level(LOG_LEVEL_ERROR);
	b = broker_new(&cfg, &err);
	cr_assert_not_null(b, "broker_new: %s", err.text);
	cr_assert_gt(loop_listen_port(b->loop), 0);
	return b;
}

static void
free_broker(struct broker *b)
{
	char cmd[128];

	broker_free(b);
	snprintf(cmd, sizeof cmd, "rm -rf %s", state_dir);
	cr_expect_eq(system(cmd), 0);
}

struct tick {
	lws_sorted_usec_list_t sul;
	int fired;
};

static void
tick_fired(lws_sorted_usec_list_t *sul)
{
	lws_container_of(sul, struct tick, sul)->fired = 1;
}

/* Turns the loop until a timer of ms fires. Returns the number of turns. lws on libuv looks
 * at its timers again only after one of its callbacks, and this one is scheduled from
 * outside them (the broker schedules from callbacks): the wake-up makes one. */
static int
run_for(struct broker *b, int ms)
{
	struct tick t = { .fired = 0 };
	int turns = 0;

	lws_sul_schedule(b->ctx, 0, &t.sul, tick_fired, (lws_usec_t)ms * LWS_US_PER_MS);
	lws_cancel_service(b->ctx);
	while (!t.fired) {
		loop_turn(b);
		turns++;
	}
	return turns;
}

/* Turns the loop until *count reaches want, for 2 s at most. */
static void
run_until(struct broker *b, const int *count, int want)
{
	uint64_t end = now_ms() + 2000;

	while (*count < want && now_ms() < end)
		run_for(b, 5);
}

/* This thread's CPU time in ms. */
static long
cpu_ms(void)
{
	struct rusage ru;

	cr_assert_eq(getrusage(RUSAGE_THREAD, &ru), 0);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct reads {
	int reads, closed;
};

static int
on_readable(void *arg, int fd, enum fdwatch_event ev)
{
	struct reads *r = arg;
	char buf[64];
	ssize_t n;

	if (ev == FDWATCH_CLOSED) {
		r->closed++;
		return 0;
	}
	r->reads++;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		;
	return n == 0 ? -1 : 0; /* end of file: close, as fdwatch.h asks */
}

/* Lets the loop sit IDLE_MS with data waiting on sp0, which no watch holds any more; fails
 * if the loop ran a callback or spun meanwhile. */
static void
expect_quiet(struct broker *b, int peer, const struct reads *r)
{
	int before = r->reads, turns;
	long cpu;

	cr_assert_eq(write(peer, "y", 1), 1);
	cpu = cpu_ms();
	turns = run_for(b, IDLE_MS);
	cpu = cpu_ms() - cpu;
	cr_assert_eq(r->reads, before, "a watch let go of was called back");
	cr_assert_lt(cpu, IDLE_CPU_MS, "the loop used %ld ms of CPU in %d ms (%d turns): a closed "
	    "dup is still registered with epoll", cpu, IDLE_MS, turns);
}

static void
never(lws_sorted_usec_list_t *sul)
{
	(void)sul;
}

/* lws re-arms its one libev timer for the earliest lws_sul after each callback; a timer
 * armed for a later deadline must not hold back an earlier one scheduled since. */
Test(loop, an_earlier_timer_is_not_held_back_by_a_later_one)
{
	struct broker *b = listening_broker();
	lws_sorted_usec_list_t later;
	uint64_t t0;

	memset(&later, 0, sizeof later);
	lws_sul_schedule(b->ctx, 0, &later, never, 600 * LWS_US_PER_SEC);
	run_for(b, 20); /* the loop's timer is now armed for `later`, or sooner */
	for (int i = 0; i < 5; i++) {
		t0 = now_ms();
		run_for(b, 50);
		cr_assert_lt(now_ms() - t0, 1000, "a 50 ms timer fired after %llu ms",
		    (unsigned long long)(now_ms() - t0));
	}
	lws_sul_cancel(&later);
	free_broker(b);
}

Test(loop, a_closed_dup_leaves_the_loop_asleep)
{
	struct broker *b = listening_broker();
	struct reads r = { 0, 0 };
	struct fdwatch *w;
	int sp[2], fds;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	fds = open_fds();
	w = fdwatch_new(b, fcntl(sp[0], F_DUPFD_CLOEXEC, 0), on_readable, &r);
	cr_assert_not_null(w);
	cr_assert_eq(write(sp[1], "x", 1), 1);
	run_until(b, &r.reads, 1);
	cr_assert_eq(r.reads, 1, "the adopted dup was never readable");

	fdwatch_free(w);
	run_for(b, 50);
	cr_assert_eq(open_fds(), fds, "the dup is still open after fdwatch_free");
	cr_assert_eq(r.closed, 0, "FDWATCH_CLOSED after fdwatch_free");
	expect_quiet(b, sp[1], &r);

	close(sp[0]);
	close(sp[1]);
	free_broker(b);
}

Test(loop, one_description_adopted_again_and_again)
{
	struct broker *b = listening_broker();
	struct reads r = { 0, 0 };
	int sp[2], fds;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	fds = open_fds();
	/* Each round: a new dup (often the number the last one had), one read, let go. */
	for (int i = 0; i < ROUNDS; i++) {
		struct fdwatch *w = fdwatch_new(b, fcntl(sp[0], F_DUPFD_CLOEXEC, 0), on_readable, &r);

		cr_assert_not_null(w, "round %d: cannot adopt", i);
		cr_assert_eq(write(sp[1], "x", 1), 1);
		run_until(b, &r.reads, i + 1);
		cr_assert_eq(r.reads, i + 1, "round %d: the new dup was never readable", i);
		fdwatch_free(w);
		if (i % 2)
			run_for(b, 2); /* every other one closes before the next is adopted */
	}
	run_for(b, 50);
	cr_assert_eq(open_fds(), fds, "%d dup(s) still open", open_fds() - fds);
	expect_quiet(b, sp[1], &r);

	close(sp[0]);
	close(sp[1]);
	free_broker(b);
}

Test(loop, a_hang_up_closes_the_watch)
{
	struct broker *b = listening_broker();
	struct reads r = { 0, 0 };
	int sp[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
	cr_assert_not_null(fdwatch_new(b, sp[0], on_readable, &r));
	close(sp[1]);
	run_until(b, &r.closed, 1);
	cr_assert_eq(r.closed, 1, "no FDWATCH_CLOSED after the peer hung up");
	free_broker(b);
}
