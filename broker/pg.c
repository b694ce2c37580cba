/* pg.c: the PostgreSQL module's life: start, the pg.* methods, session hooks, status, stop.
 *
 * pg_new() only parses the configuration. PostgreSQL starts in the background (pg_kick):
 * the embedded cluster's port is taken from the broker's pool, the worker threads start,
 * and the init job starts the cluster or connects to the admin URL, takes the instance's
 * advisory lock, sweeps what an earlier run of this instance left, and finds the finished
 * templates. Until it is done, fixtures and pg.* calls wait for it (a failure fails them
 * with PG_UNAVAILABLE, and the next request after a pause tries again). On a session's
 * end its parked calls fail and the builds it owned pass to the next waiter. pg_free()
 * waits for the work under way (releases' drops), sweeps again so that only finished
 * templates stay, and stops the threads and the cluster.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pg_int.h"
#include "pgembed.h"
#include "ports.h"
#include "rpc.h"
#include "session.h"

#define RETRY_START_MS 2000
#define PORT_OWNER UINT64_MAX /* the embedded cluster's port, held for the broker's life */
#define PORT_TRIES 8

int
pg_new(struct broker *b, struct fxb_error *err)
{
	struct pg *pg = calloc(1, sizeof *pg);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (!pg) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (pg_conf_parse(b->cfg.postgres, ncpu > 0 ? (int)ncpu : 1, &pg->conf, err) == -1) {
		free(pg);
		return -1;
	}
	if (!(pg->current = calloc(pg->conf.ntemplates + 1, sizeof *pg->current))) {
		pg_conf_clear(&pg->conf);
		free(pg);
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	pg->b = b;
	pg->embedded = !b->cfg.pg_url[0];
	pthread_mutex_init(&pg->mu, NULL);
	pthread_cond_init(&pg->cond, NULL);
	pthread_cond_init(&pg->progress, NULL);
	pthread_mutex_init(&pg->lock_mu, NULL);
	b->pg = pg;
	return 0;
}

void
pg_start(struct pg *pg)
{
	if (pg->b->cfg.pg_url[0] || pg->b->cfg.postgres)
		pg_kick(pg);
}

void
pg_set_unavailable(struct fxb_error *err, const struct pg *pg)
{
	error_set(err, ERR_PG_UNAVAILABLE, "%s", pg->init_err.text[0] ? pg->init_err.text
	    : "PostgreSQL is not started");
}

static json_t *run_method(struct pg *pg, int method, struct session *s, struct rpc_call *call,
    const char *key, int64_t wait_ms, struct fxb_error *err);

/* Fails, or runs again, everything that waited for the start. */
static void
release_waiters(struct pg *pg, const struct fxb_error *err)
{
	struct pg_deferred *d;
	struct pg_fx *fx;

	while ((fx = pg->init_waiting.head)) {
		fxlist_del(fx);
		pool_resume(pg, fx, err);
	}
	while ((d = pg->deferred)) {
		struct fxb_error e2 = { 0 };
		json_t *result = NULL;

		pg->deferred = d->next;
		if (err)
			rpc_call_fail(d->call, err);
		else if ((result = run_method(pg, d->method, d->s, d->call, d->key, d->wait_ms, &e2)) !=
		    RPC_PENDING) {
			if (result)
				rpc_call_finish(d->call, result);
			else
				rpc_call_fail(d->call, &e2);
		}
		error_clear(&e2);
		free(d);
	}
}

static void
gc_tick(lws_sorted_usec_list_t *sul)
{
	struct pg *pg = lws_container_of(sul, struct pg, gc_timer);

	tpl_gc(pg);
	lws_sul_schedule(pg->b->ctx, 0, &pg->gc_timer, gc_tick, 10LL * 60 * LWS_US_PER_SEC);
}

/* The init job's outcome: PostgreSQL is ready (templates known, waiters resumed), or
 * it failed (the embedded port is tried again if another program took it; else every
 * waiter fails, and a later request starts again). */
static void
init_done(struct pg *pg, struct pg_job *j)
{
	json_t *inputs, *errors, *v;
	const char *name;

	if (j->err.code && j->n && pg->port_tries < PORT_TRIES && !pg->closing) {
		/* The port went to someone else between the pool's check and postgres's bind. */
		uint16_t next;
		if (ports_take(pg->b->ports, PORT_OWNER, 1, &next, now_ms()) == 0) {
			struct pg_job *again = pg_job_new(PG_J_FG, "starting PostgreSQL", sql_init,
			    init_done, NULL);
			if (again) {
				log_warnx("port %u was taken by another program; trying %u", pg->port, next);
				ports_release(pg->b->ports, PORT_OWNER, &pg->port, 1, now_ms());
				pg->port = next;
				pg->port_tries++;
				again->init = 1;
				pg_submit(pg, again);
				return;
			}
			ports_release(pg->b->ports, PORT_OWNER, &next, 1, now_ms());
		}
	}
	if (j->err.code) {
		pg->state = PG_FAILED;
		pg->failed_ms = now_ms();
		error_clear(&pg->init_err);
		error_set(&pg->init_err, ERR_PG_UNAVAILABLE, "%s", j->err.text);
		log_error("PostgreSQL: %s", j->err.text);
		/* Nothing half-started stays behind; the next request starts afresh. */
		pthread_mutex_lock(&pg->mu);
		pg->gate = 0;
		pthread_mutex_unlock(&pg->mu);
		if (pg->embed) {
			pgembed_stop(pg->embed);
			pg->embed = NULL;
		}
		release_waiters(pg, &pg->init_err);
		return;
	}
	pg->state = PG_READY;
	pthread_mutex_lock(&pg->mu);
	pg->gate = 1;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->mu);
	tpl_load(pg, json_object_get(j->result, "templates"));
	inputs = json_object_get(j->result, "inputs");
	errors = json_object_get(j->result, "errors");
	json_object_foreach(inputs, name, v)
		tpl_set_current(pg, pg_conf_template(&pg->conf, name), json_string_value(v));
	json_object_foreach(errors, name, v)
		log_warnx("template %s: %s", name, json_string_value(v));
	log_info("PostgreSQL %d.%d ready (%s, instance %s, objects named %s*), %zu template(s) kept",
	    pg->server_version / 10000, pg->server_version % 10000, pg->embedded ? "embedded"
	    : "postgres.url", pg->inst, pg->prefix, json_array_size(json_object_get(j->result,
	    "templates")));
	pg->gc_armed = 1;
	lws_sul_schedule(pg->b->ctx, 0, &pg->gc_timer, gc_tick, 10LL * 60 * LWS_US_PER_SEC);
	release_waiters(pg, NULL);
	tpl_gc(pg);
}

void
pg_kick(struct pg *pg)
{
	struct broker *b = pg->b;
	struct fxb_error err = { 0 };
	struct pg_job *j;

	if (pg->closing || pg->state == PG_STARTING || pg->state == PG_READY ||
	    (pg->state == PG_FAILED && now_ms() - pg->failed_ms < RETRY_START_MS))
		return;
	snprintf(pg->inst, sizeof pg->inst, "%s", b->instance);
	snprintf(pg->prefix, sizeof pg->prefix, "fxb_%s_", pg->inst);
	if (pg->embedded && !pg_instance_valid(pg->inst))
		error_set(&err, ERR_PG_UNAVAILABLE, "the broker's instance id %s cannot name PostgreSQL "
		    "objects", pg->inst);
	if (!err.code && pg->embedded && !pg->port_taken) {
		if (ports_take(b->ports, PORT_OWNER, 1, &pg->port, now_ms()) == -1)
			error_set(&err, ERR_PG_UNAVAILABLE, "no free port in the pool (%d-%d) for the "
			    "embedded PostgreSQL", b->cfg.ports_first, b->cfg.ports_last);
		else
			pg->port_taken = 1;
	}
	if (!err.code)
		pg_workers_start(pg, &err);
	if (!err.code && !(j = pg_job_new(PG_J_FG, "starting PostgreSQL", sql_init, init_done, NULL)))
		error_set(&err, ERR_INTERNAL, "out of memory");
	if (err.code) {
		pg->state = PG_FAILED;
		pg->failed_ms = now_ms();
		error_clear(&pg->init_err);
		error_set(&pg->init_err, err.code, "%s", err.text);
		log_error("PostgreSQL: %s", err.text);
		error_clear(&err);
		release_waiters(pg, &pg->init_err);
		return;
	}
	pg->state = PG_STARTING;
	j->init = 1;
	log_info("starting PostgreSQL in the background (%s)", pg->embedded ? "embedded cluster"
	    : "postgres.url");
	pg_submit(pg, j);
}

void
pg_wake(struct pg *pg)
{
	if (pg)
		pg_drain(pg);
}

static void
sweep_done(struct pg *pg, struct pg_job *j)
{
	(void)pg;
	if (j->err.code)
		log_warnx("the closing sweep failed: %s", j->err.text);
}

void
pg_free(struct pg *pg)
{
	struct pg_entry *e;

	if (!pg)
		return;
	pg->closing = 1;
	if (pg->workers) {
		struct pg_job *j;
		pg_wait_idle(pg);
		/* Ready clones, builds and shared databases go; finished templates stay. */
		if (pg->state == PG_READY &&
		    (j = pg_job_new(PG_J_FG, "the closing sweep", sql_sweep, sweep_done, NULL))) {
			pg_submit(pg, j);
			pg_wait_idle(pg);
		}
		pg_workers_stop(pg);
	}
	pgembed_stop(pg->embed);
	if (pg->port_taken)
		ports_release(pg->b->ports, PORT_OWNER, &pg->port, 1, now_ms());
	if (pg->gc_armed)
		lws_sul_cancel(&pg->gc_timer);
	if (pg->drop_retry_armed)
		lws_sul_cancel(&pg->drop_retry);
	while (pg->deferred) {
		struct pg_deferred *d = pg->deferred;
		pg->deferred = d->next;
		free(d);
	}
	while ((e = pg->dropping_lost.head)) {
		pg->dropping_lost.head = e->next;
		free(e);
	}
	tpl_free_all(pg);
	error_clear(&pg->init_err);
	free(pg->current);
	pg_conf_clear(&pg->conf);
	pthread_mutex_destroy(&pg->mu);
	pthread_cond_destroy(&pg->cond);
	pthread_cond_destroy(&pg->progress);
	pthread_mutex_destroy(&pg->lock_mu);
	pg->b->pg = NULL;
	free(pg);
}

void
pg_cancel_waits(struct pg *pg, struct session *s)
{
	struct pg_deferred **pp = &pg->deferred, *d;
	struct fxb_error err = { 0 };

	if (!pg)
		return;
	error_set(&err, ERR_ACQUIRE_CANCELLED, "the session's connection closed while the call waited");
	while ((d = *pp)) {
		if (d->s != s) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		rpc_call_fail(d->call, &err);
		free(d);
	}
	error_clear(&err);
	tpl_cancel_session(pg, s);
}

void
pg_release_owner(struct pg *pg, struct session *s)
{
	if (!pg)
		return;
	pg_cancel_waits(pg, s);
	tpl_session_ended(pg, s);
}

static json_t *status_json(struct pg *pg);

static json_t *
run_method(struct pg *pg, int method, struct session *s, struct rpc_call *call, const char *key,
    int64_t wait_ms, struct fxb_error *err)
{
	switch (method) {
	case PG_M_ENSURE:
		return tpl_ensure(pg, s, call, key, wait_ms, err);
	case PG_M_FINISH:
		return tpl_finish(pg, s, call, key, err);
	case PG_M_DISCARD:
		return tpl_discard(pg, s, call, key, err);
	default:
		return status_json(pg);
	}
}

/* Runs a method now, or once PostgreSQL has started. */
static json_t *
when_ready(struct pg *pg, int method, struct session *s, struct rpc_call *call, const char *key,
    int64_t wait_ms, struct fxb_error *err)
{
	struct pg_deferred *d, **tail;

	if (pg->state == PG_READY)
		return run_method(pg, method, s, call, key, wait_ms, err);
	if (pg->b->shutting_down) {
		error_set(err, ERR_SHUTTING_DOWN, "the broker is shutting down");
		return NULL;
	}
	pg_kick(pg);
	if (pg->state == PG_FAILED) {
		if (method == PG_M_STATUS)
			return status_json(pg);
		pg_set_unavailable(err, pg);
		return NULL;
	}
	if (!(d = calloc(1, sizeof *d))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	d->method = method;
	snprintf(d->key, sizeof d->key, "%s", key ? key : "");
	d->wait_ms = wait_ms;
	d->call = call;
	d->s = s;
	for (tail = &pg->deferred; *tail; tail = &(*tail)->next)
		;
	*tail = d;
	return RPC_PENDING;
}

json_t *
pg_template_ensure(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, int64_t wait_ms, struct fxb_error *err)
{
	if (!pg_hash_valid(hash) && !pg_conf_template(&b->pg->conf, hash)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: hash: expected a configured "
		    "template's name or 1 to 128 of A-Z a-z 0-9 . _ : -");
		return NULL;
	}
	return when_ready(b->pg, PG_M_ENSURE, s, call, hash, wait_ms, err);
}

json_t *
pg_template_finish(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, struct fxb_error *err)
{
	if (!pg_hash_valid(hash)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: hash: expected 1 to 128 of A-Z a-z "
		    "0-9 . _ : -");
		return NULL;
	}
	return when_ready(b->pg, PG_M_FINISH, s, call, hash, -1, err);
}

json_t *
pg_template_discard(struct broker *b, struct session *s, struct rpc_call *call,
    const char *hash, struct fxb_error *err)
{
	if (!pg_hash_valid(hash)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: hash: expected 1 to 128 of A-Z a-z "
		    "0-9 . _ : -");
		return NULL;
	}
	return when_ready(b->pg, PG_M_DISCARD, s, call, hash, -1, err);
}

json_t *
pg_status(struct broker *b, struct session *s, struct rpc_call *call, struct fxb_error *err)
{
	return when_ready(b->pg, PG_M_STATUS, s, call, NULL, -1, err);
}

/* The pg.status result; the caller owns it. */
static json_t *
status_json(struct pg *pg)
{
	static const char *const states[] = { "off", "starting", "ready", "failed" };
	json_t *templates = json_array();

	for (struct pg_template *t = pg->templates; templates && t; t = t->next)
		json_array_append_new(templates, tpl_status_json(t));
	return json_pack("{s:s, s:o, s:s, s:s, s:s, s:i, s:s, s:i, s:o, s:s, s:{s:i, s:i, s:i, s:i, "
	    "s:i}, s:I, s:I, s:o}",
	    "state", states[pg->state],
	    "error", pg->state == PG_FAILED ? json_string(pg->init_err.text) : json_null(),
	    "mode", pg->embedded ? "embedded" : "url", "instance", pg->inst, "prefix", pg->prefix,
	    "server_version", pg->server_version, "host", pg->client_host, "port", pg->client_port,
	    "embedded", pg->embed && pg->state == PG_READY ? pgembed_status_json(pg->embed)
	    : json_null(),
	    "clone_strategy", pg->conf.strategy == PG_STRATEGY_WAL_LOG ? "wal_log" : "file_copy",
	    "pool", "min_ready", pg->conf.min_ready, "max", pg->conf.max, "global_max",
	    pg->conf.global_max, "refill_parallelism", pg->conf.refill_parallelism,
	    "idle_timeout_ms", pg->conf.idle_ms,
	    "clones", (json_int_t)pg->nclones, "jobs", (json_int_t)pg->njobs,
	    "templates", templates ? templates : json_array());
}

static void
histogram_lines(FILE *f, const char *name, const char *labels, const struct histogram *h)
{
	uint64_t cumulative = 0;

	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cumulative += h->counts[i];
		fprintf(f, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, metrics_buckets[i],
		    (unsigned long long)cumulative);
	}
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name,
	    labels, (unsigned long long)h->count, name, labels, h->sum_seconds, name, labels,
	    (unsigned long long)h->count);
}

void
pg_metrics(struct pg *pg, FILE *f)
{
	static const char *const isos[] = { "database", "schema" };
	struct pg_template *t;
	char labels[256];

	if (!pg)
		return;
	fprintf(f, "# HELP fxb_pg_up 1 once PostgreSQL is started and ready.\n# TYPE fxb_pg_up gauge\n"
	    "fxb_pg_up %d\n", pg->state == PG_READY);
	fprintf(f, "# HELP fxb_pg_clones Clones in existence or being made, all templates.\n"
	    "# TYPE fxb_pg_clones gauge\nfxb_pg_clones %zu\n", pg->nclones);
	fprintf(f, "# HELP fxb_pg_pool Clones of a template by state (ready, leased, cloning, "
	    "dropping) and acquires waiting.\n# TYPE fxb_pg_pool gauge\n");
	for (t = pg->templates; t; t = t->next)
		for (int i = 0; i < 2; i++) {
			const struct pg_pool *p = &t->pools[i];
			fprintf(f, "fxb_pg_pool{template=\"%s\",isolation=\"%s\",state=\"ready\"} %zu\n"
			    "fxb_pg_pool{template=\"%s\",isolation=\"%s\",state=\"leased\"} %zu\n"
			    "fxb_pg_pool{template=\"%s\",isolation=\"%s\",state=\"cloning\"} %zu\n"
			    "fxb_pg_pool{template=\"%s\",isolation=\"%s\",state=\"dropping\"} %zu\n"
			    "fxb_pg_pool{template=\"%s\",isolation=\"%s\",state=\"waiting\"} %zu\n",
			    tpl_label(t), isos[i], p->ready.n, tpl_label(t), isos[i], p->leased,
			    tpl_label(t), isos[i], p->cloning, tpl_label(t), isos[i], p->dropping,
			    tpl_label(t), isos[i], p->waiting.n);
		}
	fprintf(f, "# HELP fxb_pg_template_building 1 while a template is being built.\n"
	    "# TYPE fxb_pg_template_building gauge\n");
	for (t = pg->templates; t; t = t->next)
		fprintf(f, "fxb_pg_template_building{template=\"%s\"} %d\n", tpl_label(t),
		    t->state == T_BUILDING);
	fprintf(f, "# HELP fxb_pg_clone_seconds How long CREATE DATABASE (or a schema's DDL) took "
	    "per clone.\n# TYPE fxb_pg_clone_seconds histogram\n");
	for (t = pg->templates; t; t = t->next)
		for (int i = 0; i < 2; i++) {
			snprintf(labels, sizeof labels, "template=\"%s\",isolation=\"%s\"", tpl_label(t),
			    isos[i]);
			histogram_lines(f, "fxb_pg_clone_seconds", labels, &t->pools[i].clone_seconds);
		}
	fprintf(f, "# HELP fxb_pg_acquire_wait_seconds How long a fixture waited for a clone "
	    "(0 when one was ready).\n# TYPE fxb_pg_acquire_wait_seconds histogram\n");
	for (t = pg->templates; t; t = t->next)
		for (int i = 0; i < 2; i++) {
			snprintf(labels, sizeof labels, "template=\"%s\",isolation=\"%s\"", tpl_label(t),
			    isos[i]);
			histogram_lines(f, "fxb_pg_acquire_wait_seconds", labels,
			    &t->pools[i].wait_seconds);
		}
}
