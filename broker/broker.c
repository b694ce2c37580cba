/* broker.c: the composition root: building and freeing struct broker.
 *
 * broker_new() assembles every module from the configuration; main() then runs the loop.
 * Unit tests build their own broker with listen_port -1 (no socket) and drive it through
 * rpc_handle().
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/integresql.h"
#include "api/methods.h"
#include "broker.h"
#include "core/audit.h"
#include "core/clock.h"
#include "core/instance.h"
#include "core/log.h"
#include "fixtures/forward/forward.h"
#include "fixtures/pg/pg.h"
#include "fixtures/port/port.h"
#include "fixtures/server/servers.h"
#include "lease/lease.h"
#include "lease/session.h"
#include "net/loop.h"
#include "net/portserver.h"
#include "ports/ports.h"
#include "proc/proc.h"
#include "api/metrics.h"
#include "rpc/rpc.h"
#include "tenant/tenant.h"

/* The fixture kinds this broker serves, by name. A new kind is a folder under fixtures/
 * and one line here. */
static const struct fixture_kind *const kinds[] = {
	&port_kind,
	&server_kind,
	&pg_kind,
	NULL,
};

/* With an upstream broker: PostgreSQL, and the server templates not defined here, are
 * leased from it (the embedded cluster is not started). */
static const struct fixture_kind *const forwarding_kinds[] = {
	&port_kind,
	&forward_server_kind,
	&forward_pg_kind,
	NULL,
};

/* The loop's wake hook: each module with worker threads drains its finished jobs. */
static void
wake(struct broker *b)
{
	pg_wake(b->pg);
}

/* SIGHUP: reads the token file again. Sessions whose token is gone (or now names another
 * tenant) are closed; every other session, and every lease, is untouched. A file that does
 * not parse changes nothing. */
static void
reload(struct broker *b)
{
	struct fxb_error err = { 0 };
	size_t closed;

	if (!b->need_token) {
		log_info("SIGHUP: no token file to read again");
		return;
	}
	if (tenants_reload(b->tenants, b->cfg.token_file, &err) == -1) {
		log_warnx("SIGHUP: the token file is kept as it was: %s", err.text);
		audit_event(b->audit, "tokens.reload", json_pack("{s:b, s:s}", "ok", 0, "error", err.text));
		error_clear(&err);
		return;
	}
	closed = sessions_revoke(b, "its token was removed from the token file");
	log_info("SIGHUP: token file read again; %zu session(s) closed", closed);
	audit_event(b->audit, "tokens.reload", json_pack("{s:b, s:I}", "ok", 1, "sessions_closed",
	    (json_int_t)closed));
}

struct broker *
broker_new(const struct config *cfg, struct fxb_error *err)
{
	struct broker *b = calloc(1, sizeof *b);
	struct fxb_error ierr = { 0 };
	char journal[PATH_MAX + 64] = "";
	int eph_lo, eph_hi, reused = 0;

	if (!b) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	b->cfg = *cfg;
	b->started_ms = now_ms();
	b->instance_lock = -1;
	/* A serving broker keeps its instance id in the state dir, so that its next run can
	 * sweep what a crash left behind; unit tests' brokers get a fresh one. */
	if (cfg->listen_port >= 0 && instance_claim(cfg->state_dir, b->instance, &b->instance_lock,
	    &reused, &ierr) == -1) {
		log_warnx("%s: the instance id is new on every run, and what a crashed run left "
		    "behind is not swept", ierr.text);
		error_clear(&ierr);
	}
	if (b->instance_lock == -1 && random_hex(b->instance, 8) == -1) {
		error_set(err, ERR_INTERNAL, "getrandom failed");
		goto fail;
	}
	if (b->instance_lock != -1) {
		snprintf(journal, sizeof journal, "%s/instances/%s.journal", cfg->state_dir,
		    b->instance);
		log_debug("instance %s (%s) in %s", b->instance, reused ? "an earlier run's" : "new",
		    cfg->state_dir);
	}
	if (ports_ephemeral_range(cfg->ephemeral_path, &eph_lo, &eph_hi, err) == -1 ||
	    !(b->ports = ports_new(cfg->ports_first, cfg->ports_last, eph_lo, eph_hi,
	    cfg->quarantine_ms, err)))
		goto fail;
	if (strcmp(cfg->port_lock_file, "none") != 0 &&
	    ports_share_host(b->ports, cfg->port_lock_file, err) == -1) {
		log_warnx("%s; ports are not shared with other brokers on this host", err->text);
		error_clear(err);
	}
	b->need_token = cfg->token_file[0] != '\0';
	if (!(b->tenants = tenants_load(b->need_token ? cfg->token_file : NULL, err)))
		goto fail;
	if (!(b->leases = leases_new(b, cfg->upstream[0] ? forwarding_kinds : kinds)) || !(b->sessions = sessions_new()) ||
	    !(b->rpc = rpc_new(methods_table))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		goto fail;
	}
	if (!(b->procs = procs_new(b, journal[0] ? journal : NULL, err)) ||
	    !(b->servers = servers_new(b, cfg->servers, err)))
		goto fail;
	if (pg_new(b, err) == -1)
		goto fail;
	if (methods_load(err) == -1)
		goto fail;
	if (cfg->audit_log[0] && !(b->audit = audit_open(cfg->audit_log, err)))
		goto fail;
	if (loop_start(b, wake, metrics_routes, err) == -1)
		goto fail;
	if (b->loop)
		loop_on_reload(b->loop, reload);
	if (cfg->integresql_enabled && cfg->listen_port >= 0) {
		if (!(b->integresql = integresql_new(b, err)))
			goto fail;
		loop_set_handlers(b->loop, integresql_handlers);
	}
	if (cfg->portserver_socket[0] && cfg->listen_port >= 0 &&
	    !(b->portserver = portserver_new(b, err)))
		goto fail;
	if (cfg->upstream[0] && forward_new(b, err) == -1)
		goto fail;
	if (!cfg->upstream[0])
		pg_start(b->pg);
	else if (cfg->postgres || cfg->pg_url[0])
		log_warnx("upstream is set: PostgreSQL fixtures are leased from %s; of the "
		    "\"postgres\" settings here only the templates are used (built there)",
		    cfg->upstream);
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
	while (b->sessions && sessions_first(b->sessions))
		session_close(b, sessions_first(b->sessions), "broker stopped");
	portserver_free(b->portserver);
	forward_free(b); /* before the loop: its connection and timers are the loop's */
	pg_free(b->pg); /* its threads call lws_cancel_service(): before the context goes */
	loop_stop(b);
	integresql_free(b->integresql); /* after the loop: its open requests are gone then */
	procs_free(b->procs); /* kills the trees a forced stop left running */
	leases_free(b->leases);
	servers_free(b->servers);
	if (b->instance_lock != -1)
		close(b->instance_lock);
	ports_free(b->ports);
	tenants_free(b->tenants);
	audit_free(b->audit);
	sessions_free(b->sessions);
	rpc_free(b->rpc);
	free(b);
}

