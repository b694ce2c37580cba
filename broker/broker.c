/* broker.c: building and freeing struct broker, the clock, and broker.status.
 *
 * broker_new() assembles every module from the configuration; main() then runs the loop.
 * Unit tests build their own broker with listen_port -1 (no socket) and drive it through
 * rpc_handle().
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "auth.h"
#include "broker.h"
#include "idmap.h"
#include "lease.h"
#include "log.h"
#include "ports.h"
#include "session.h"
#include "ws.h"

extern const char openrpc_document[];

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
random_hex(char *buf, size_t n)
{
	unsigned char raw[64];
	static const char hex[] = "0123456789abcdef";

	if (n > sizeof raw || getrandom(raw, n, 0) != (ssize_t)n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 15];
	}
	buf[2 * n] = '\0';
	return 0;
}

struct broker *
broker_new(const struct config *cfg, struct fxb_error *err)
{
	struct broker *b = calloc(1, sizeof *b);
	json_error_t jerr;
	int eph_lo, eph_hi;

	if (!b) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	b->cfg = *cfg;
	b->started_ms = now_ms();
	if (random_hex(b->instance, 8) == -1) {
		error_set(err, ERR_INTERNAL, "getrandom failed");
		goto fail;
	}
	if (ports_ephemeral_range(cfg->ephemeral_path, &eph_lo, &eph_hi, err) == -1 ||
	    !(b->ports = ports_new(cfg->ports_first, cfg->ports_last, eph_lo, eph_hi,
	    cfg->quarantine_ms, err)))
		goto fail;
	if (cfg->token_file[0] && !(b->auth = auth_load(cfg->token_file, err)))
		goto fail;
	if (!(b->leases = leases_new(b)) || !(b->sessions_by_id = idmap_new())) {
		error_set(err, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	if (!(b->openrpc = json_loads(openrpc_document, 0, &jerr))) {
		error_set(err, ERR_INTERNAL, "the built-in OpenRPC document does not parse: %s", jerr.text);
		goto fail;
	}
	if (ws_start(b, err) == -1)
		goto fail;
	return b;
fail:
	broker_free(b);
	return NULL;
}

void
broker_free(struct broker *b)
{
	if (!b)
		return;
	while (b->sessions)
		session_close(b, b->sessions, "broker stopped");
	ws_stop(b);
	leases_free(b->leases);
	ports_free(b->ports);
	auth_free(b->auth);
	idmap_free(b->sessions_by_id);
	json_decref(b->openrpc);
	free(b);
}

void
broker_wake(struct broker *b)
{
	(void)b;
}

json_t *
broker_status_json(struct broker *b)
{
	struct ports_counts pc;
	size_t connected = 0;
	uint64_t now = now_ms();

	for (struct session *s = b->sessions; s; s = s->next)
		connected += s->conn != NULL;
	ports_counts(b->ports, now, &pc);
	return json_pack("{s:s, s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:{s:i, s:i, s:I, s:I, s:I, s:I}}",
	    "version", FXB_VERSION_STR, "instance", b->instance,
	    "uptime_ms", (json_int_t)(now - b->started_ms), "shutting_down", b->shutting_down,
	    "sessions", (json_int_t)connected,
	    "sessions_in_grace", (json_int_t)(b->session_count - connected),
	    "leases", (json_int_t)leases_active(b->leases),
	    "waiting", (json_int_t)leases_waiting(b->leases),
	    "ports", "first", b->cfg.ports_first, "last", b->cfg.ports_last,
	    "size", (json_int_t)pc.size, "free", (json_int_t)pc.free,
	    "leased", (json_int_t)pc.leased, "quarantined", (json_int_t)pc.quarantined);
}
