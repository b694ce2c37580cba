/* unit.h: what the unit suites share: a broker without a socket and a session whose
 * replies land in a list the test can read.
 *
 * The broker is real (ports, leases, sessions, rpc); only the connection is replaced by
 * a sink, so rpc_handle() can be driven from a string and deferred replies observed.
 */
#ifndef FXB_UNIT_H
#define FXB_UNIT_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "core/clock.h"
#include "lease/session.h"
#include "rpc/rpc.h"

/* The replies a sink received, oldest first. */
struct sink {
	char *msgs[64];
	size_t count;
};

static struct sink unit_sinks[16];
static int unit_conns[16];  /* the fake connections; nonzero once disowned */

static void
unit_sink(void *conn, char *text, size_t len)
{
	struct sink *k = &unit_sinks[(int *)conn - unit_conns];

	(void)len;
	if (k->count >= 64)
		abort(); /* a runaway test; no criterion call from inside the loop */
	k->msgs[k->count++] = text;
}

static void
unit_disown(void *conn, int code, const char *reason)
{
	(void)reason;
	*(int *)conn = code;
}

static const struct session_io unit_io = { unit_sink, unit_disown };

/* A broker on a pool of [first, last] with a fake ephemeral range far away. */
static inline struct broker *
unit_broker(int first, int last, int quarantine_ms, int grace_ms)
{
	static const char eph[] = "/tmp/fxb-unit-ephemeral";
	struct fxb_error err = { 0 };
	struct config cfg;
	struct broker *b;
	FILE *f = fopen(eph, "w");

	cr_assert_not_null(f);
	fputs("60000 60999\n", f);
	fclose(f);
	config_defaults(&cfg);
	cfg.listen_port = -1;
	cfg.ports_first = first;
	cfg.ports_last = last;
	cfg.quarantine_ms = quarantine_ms;
	cfg.grace_ms = grace_ms;
	cfg.log_level = LOG_LEVEL_ERROR;
	snprintf(cfg.ephemeral_path, sizeof cfg.ephemeral_path, "%s", eph);
	log_set_level(LOG_LEVEL_ERROR);
	b = broker_new(&cfg, &err);
	cr_assert_not_null(b, "broker_new: %s", err.text);
	return b;
}

/* Session number i (0..15), with its own sink. */
static inline struct session *
unit_session(struct broker *b, int i)
{
	struct session *s = session_new(b, &unit_conns[i], &unit_io);
	unit_conns[i] = 0;

	cr_assert_not_null(s);
	return s;
}

/* Sends text, returns the parsed immediate reply (NULL if none). */
static inline json_t *
unit_call(struct broker *b, struct session *s, const char *text)
{
	char *out = rpc_handle(b, &s->peer, text, strlen(text));
	json_t *j;

	if (!out)
		return NULL;
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "reply is not JSON: %s", out);
	free(out);
	return j;
}

/* Takes the oldest deferred reply of sink i, parsed (NULL if none). */
static inline json_t *
unit_take(int i)
{
	struct sink *k = &unit_sinks[i];
	json_t *j;

	if (k->count == 0)
		return NULL;
	j = json_loads(k->msgs[0], 0, NULL);
	free(k->msgs[0]);
	memmove(k->msgs, k->msgs + 1, (k->count - 1) * sizeof k->msgs[0]);
	k->count--;
	return j;
}

/* Runs the broker's loop (its timers) for about ms milliseconds. lws_service() with a
 * negative timeout services whatever is due without waiting in poll, so the test sets
 * the pace itself. */
static inline void
unit_run(struct broker *b, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	do {
		lws_service(b->ctx, -1);
		usleep(1000);
	} while (now_ms() < end);
}

static inline void
unit_free(struct broker *b)
{
	for (int i = 0; i < 16; i++)
		while (unit_sinks[i].count)
			free(unit_sinks[i].msgs[--unit_sinks[i].count]);
	broker_free(b);
}

/* The error name of a reply, or NULL. */
static inline const char *
unit_error_name(json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(reply, "error"),
	    "data"), "name"));
}

#endif
