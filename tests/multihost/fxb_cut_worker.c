/* fxb_cut_worker.c: a libfxb worker for the link-cut tests of test_cuts.py.
 *
 * Connects to $FIXTURE_BROKER_URL, leases one port fixture "p" and prints
 * {"session", "lease", "port"} on a line. Then it watches the client's state while it
 * waits for a line on stdin, which the test sends once the link is back up, and then for
 * the client to be open again after the drop it must have noticed. It prints what the
 * client says afterwards: {"dropped_while_down", "session", "sessions_lost", "callbacks",
 * "lost_session", "lease_state", "port", "host", "release", "errmsg"}, where port and
 * release are what fxb_lease_port and fxb_lease_release returned (FXB_ELOST is -9), and
 * exits 0; or exits 1 with a message on stderr.
 */
#include <fxb.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_OPEN_MS 30000

struct lost {
	pthread_mutex_t mu;
	int calls;
	char old[128];
};

static void
on_lost(struct fxb_client *c, const char *old, const char *fresh, void *arg)
{
	struct lost *l = arg;

	(void)c;
	(void)fresh;
	pthread_mutex_lock(&l->mu);
	l->calls++;
	snprintf(l->old, sizeof l->old, "%s", old);
	pthread_mutex_unlock(&l->mu);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
print_json(json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);

	if (!text) {
		fprintf(stderr, "fxb_cut_worker: out of memory\n");
		exit(1);
	}
	printf("%s\n", text);
	fflush(stdout);
	free(text);
	json_decref(o);
}

int
main(void)
{
	struct fxb_fixture_spec want[] = {{"p", "port", NULL}};
	struct lost lost = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct fxb_client *c;
	struct fxb_lease *l;
	struct pollfd in = {STDIN_FILENO, POLLIN, 0};
	json_t *out;
	char err[512], line[64], session[128];
	const char *host;
	long long deadline;
	int dropped = 0, port, rc, calls;

	if (fxb_client_new(&c, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "fxb_cut_worker: %s\n", err);
		return 1;
	}
	fxb_client_on_session_lost(c, on_lost, &lost);
	if (fxb_lease_acquire(c, want, 1, NULL, &l) < 0) {
		fprintf(stderr, "fxb_cut_worker: %s\n", fxb_client_errmsg(c));
		return 1;
	}
	snprintf(session, sizeof session, "%s", fxb_client_session(c));
	print_json(json_pack("{s:s, s:s, s:i}", "session", session, "lease", fxb_lease_id(l),
	    "port", fxb_lease_port(l, "p")));

	/* Until the test says the link is back, note whether the client gave the connection
	 * up: with the link down nothing (no RST, no close) can tell it so, only the silence.
	 * Then wait for it to be open again. */
	for (;;) {
		if (fxb_client_state(c) == FXB_STATE_CONNECTING)
			dropped = 1;
		if (poll(&in, 1, 10) > 0)
			break;
	}
	if (!fgets(line, sizeof line, stdin)) {
		fprintf(stderr, "fxb_cut_worker: stdin closed\n");
		return 1;
	}
	deadline = now_ms() + WAIT_OPEN_MS;
	while (dropped && fxb_client_state(c) != FXB_STATE_OPEN && now_ms() < deadline)
		usleep(10000);
	pthread_mutex_lock(&lost.mu);
	calls = lost.calls;
	pthread_mutex_unlock(&lost.mu);
	port = fxb_lease_port(l, "p");
	host = fxb_lease_host(l, "p");
	rc = fxb_lease_state(l);
	out = json_pack("{s:b, s:s, s:i, s:i, s:s, s:i, s:i, s:o}", "dropped_while_down", dropped,
	    "session", fxb_client_session(c), "sessions_lost", (int)fxb_client_sessions_lost(c),
	    "callbacks", calls, "lost_session", lost.old, "lease_state", rc, "port", port, "host",
	    host ? json_string(host) : json_null());
	rc = fxb_lease_release(c, l);
	json_object_set_new(out, "release", json_integer(rc));
	json_object_set_new(out, "errmsg", json_string(fxb_client_errmsg(c)));
	print_json(out);
	fxb_client_free(c);
	return 0;
}
