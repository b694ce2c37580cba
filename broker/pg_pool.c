/* pg_pool.c: warm pools of clones, the "postgres" fixture kind, and lease.reset.
 *
 * A clone is a database cloned from a template (or, for schema isolation, a schema in the
 * template's shared database) together with a login role that may use it and nothing
 * else. Clones are made ahead of demand, on worker threads, so that an acquire usually
 * costs no PostgreSQL round trip at all: the fixture takes a ready clone and answers at
 * once. A fixture that finds the pool empty waits in it (FIFO) while a clone is made for
 * it; a released fixture's clone is dropped (role disabled, its sessions ended, database
 * dropped WITH (FORCE), role dropped) and the fixture reports itself stopped only then,
 * so a broker that drains waits for the drops. Pools refill in the background within
 * their sizes (postgres.pool.*) and shrink to nothing when unused for idle_timeout_ms.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_int.h"
#include "rpc.h"

#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000
#define DROP_RETRY_MS 2000

static void fx_finished(struct pg *pg, struct pg_fx *fx);
static void release_entry(struct pg *pg, struct pg_entry *e, struct pg_fx *fx);
static void submit_drop(struct pg *pg, struct pg_entry *e);

/* ---- Lists ---- */

void
fxlist_add(struct pg_fxlist *l, struct pg_fx *fx)
{
	fx->in = l;
	fx->wnext = NULL;
	fx->wprev = l->tail;
	if (l->tail)
		l->tail->wnext = fx;
	else
		l->head = fx;
	l->tail = fx;
	l->n++;
	fx->wait_since_ms = now_ms();
}

void
fxlist_del(struct pg_fx *fx)
{
	struct pg_fxlist *l = fx->in;

	if (!l)
		return;
	if (fx->wprev)
		fx->wprev->wnext = fx->wnext;
	else
		l->head = fx->wnext;
	if (fx->wnext)
		fx->wnext->wprev = fx->wprev;
	else
		l->tail = fx->wprev;
	l->n--;
	fx->in = NULL;
	fx->wnext = fx->wprev = NULL;
	if (fx->deadline_armed) {
		lws_sul_cancel(&fx->deadline);
		fx->deadline_armed = 0;
	}
}

static void
list_push(struct pg_list *l, struct pg_entry *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->n++;
}

static struct pg_entry *
list_pop(struct pg_list *l)
{
	struct pg_entry *e = l->head;

	if (!e)
		return NULL;
	l->head = e->next;
	if (l->head)
		l->head->prev = NULL;
	else
		l->tail = NULL;
	l->n--;
	e->next = e->prev = NULL;
	return e;
}

size_t
pool_total(const struct pg_template *t)
{
	size_t n = 0;

	for (int i = 0; i < 2; i++)
		n += t->pools[i].ready.n + t->pools[i].leased + t->pools[i].cloning +
		    t->pools[i].dropping;
	return n;
}

static int
min_ready(struct pg *pg, struct pg_template *t)
{
	return t->conf && t->conf->min_ready >= 0 ? t->conf->min_ready : pg->conf.min_ready;
}

static int
max_total(struct pg *pg, struct pg_template *t)
{
	return t->conf && t->conf->max >= 0 ? t->conf->max : pg->conf.max;
}

/* ---- Results and outcomes of a fixture ---- */

static int
set_fields(struct pg *pg, struct pg_fx *fx)
{
	struct pg_entry *e = fx->e;
	struct pg_template *t = fx->t;
	const char *db = e->iso == PG_ISO_DATABASE ? e->db : t->shared;
	char url[1024], app[64];
	json_t *fields;

	snprintf(app, sizeof app, "fxb:%s", fx->f->lease->lid);
	if (pg_url(url, sizeof url, pg->client_host, pg->client_port, e->role, e->password, db,
	    app) == -1)
		return -1;
	fields = json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:s, s:s, s:o, s:s}", "kind", "postgres",
	    "url", url, "host", pg->client_host, "port", pg->client_port, "database", db,
	    "schema", e->iso == PG_ISO_SCHEMA ? json_string(e->schema) : json_null(),
	    "user", e->role, "password", e->password,
	    "template", t->empty ? json_null() : json_string(t->key),
	    "isolation", e->iso == PG_ISO_DATABASE ? "database" : "schema");
	if (!fields)
		return -1;
	json_decref(fx->f->fields);
	fx->f->fields = fields;
	return 0;
}

/* fx's entry is ready for it: its fields are set and a replaced entry goes. */
static int
fx_complete(struct pg *pg, struct pg_fx *fx, struct fxb_error *err)
{
	if (set_fields(pg, fx) == -1) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	if (fx->old) {
		release_entry(pg, fx->old, NULL);
		fx->old = NULL;
	}
	return 0;
}

/* An acquire or reset that was answered later failed. */
static void
fx_fail(struct pg *pg, struct pg_fx *fx, const struct fxb_error *err)
{
	struct rpc_call *call = fx->reset_call;

	if (call) {
		fx->reset_call = NULL;
		rpc_call_fail(call, err);
		return;
	}
	fixture_failed(pg->b, fx->f, err);
}

static void
fx_finished(struct pg *pg, struct pg_fx *fx)
{
	struct rpc_call *call = fx->reset_call;

	if (call) {
		fx->reset_call = NULL;
		rpc_call_finish(call, lease_reset_result(fx->f));
		return;
	}
	fixture_ready(pg->b, fx->f);
}

/* A lease's connection limit is set: fx completes, or fails (a reset keeps its old
 * clone), or, released meanwhile, stops. */
static void
conn_limit_done(struct pg *pg, struct pg_job *j)
{
	struct pg_fx *fx = j->owner;
	struct fxb_error err = { 0 };

	fx->job = 0;
	if (fx->stopping) {
		if (fx->old) {
			release_entry(pg, fx->old, NULL);
			fx->old = NULL;
		}
		release_entry(pg, fx->e, fx);
		fx->e = NULL;
		return;
	}
	if (j->err.code) {
		if (fx->reset_call) {
			release_entry(pg, fx->e, NULL);
			fx->e = fx->old;
			fx->old = NULL;
		}
		fx_fail(pg, fx, &j->err);
		return;
	}
	fx->e->conn_limit = j->n;
	if (fx_complete(pg, fx, &err) == -1)
		fx_fail(pg, fx, &err);
	else
		fx_finished(pg, fx);
	error_clear(&err);
}

/* Gives e to fx. Returns 0 when fx is complete now, 1 when a job finishes it, -1 with
 * err. */
static int
give(struct pg *pg, struct pg_fx *fx, struct pg_entry *e, int waited, struct fxb_error *err)
{
	struct pg_pool *p = &e->t->pools[e->iso];
	uint64_t since = waited ? now_ms() - fx->wait_since_ms : 0;
	struct pg_job *j;

	p->leased++;
	e->fx = fx;
	if (waited)
		p->served_waited++;
	else
		p->served_ready++;
	histogram_observe(&p->wait_seconds, (double)since / 1000.0);
	if (fx->reset_call)
		fx->old = fx->e;
	fx->e = e;
	if (e->conn_limit == fx->connections)
		return fx_complete(pg, fx, err);
	if (!(j = pg_job_new(PG_J_FG, "setting a connection limit", sql_conn_limit,
	    conn_limit_done, fx))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	fx->job = 1;
	j->n = fx->connections;
	snprintf(j->role, sizeof j->role, "%s", e->role);
	pg_submit(pg, j);
	return 1;
}

/* ---- Clones ---- */

static void
retry_fill(lws_sorted_usec_list_t *sul)
{
	struct pg_pool *p = lws_container_of(sul, struct pg_pool, retry);
	struct pg_template *t = lws_container_of(p - p->iso, struct pg_template, pools[0]);

	p->retry_armed = 0;
	pool_fill(t->pg, t);
}

/* A clone is made (or failed): it goes to the first waiting fixture, else to the ready
 * list, else (the template went idle) away. A failure fails the first waiter, or backs the
 * refill off when no one waits. */
static void
clone_done(struct pg *pg, struct pg_job *j)
{
	struct pg_entry *e = j->owner;
	struct pg_template *t = e->t;
	struct pg_pool *p = &t->pools[e->iso];
	struct fxb_error err = { 0 };
	struct pg_fx *fx;

	p->cloning--;
	if (pg->closing) {
		/* The shutdown sweep drops it. */
		pg->nclones--;
		free(e);
		return;
	}
	if (j->err.code) {
		pg->nclones--;
		p->clone_failures++;
		free(e);
		log_warnx("template %s: a clone failed: %s", tpl_label(t), j->err.text);
		if ((fx = p->waiting.head)) {
			fxlist_del(fx);
			fx_fail(pg, fx, &j->err);
		} else if (!p->retry_armed) {
			p->retry_ms = p->retry_ms ? p->retry_ms * 2 : RETRY_FIRST_MS;
			if (p->retry_ms > RETRY_MAX_MS)
				p->retry_ms = RETRY_MAX_MS;
			p->retry_armed = 1;
			lws_sul_schedule(pg->b->ctx, 0, &p->retry, retry_fill,
			    (lws_usec_t)p->retry_ms * LWS_US_PER_MS);
		}
		pool_fill(pg, t);
		return;
	}
	p->retry_ms = 0;
	histogram_observe(&p->clone_seconds, j->ms / 1000.0);
	if (!p->waiting.head && !t->in_use) {
		/* The template went idle while this refill ran: its pool keeps nothing ready. */
		p->dropping++;
		submit_drop(pg, e);
		return;
	}
	if ((fx = p->waiting.head)) {
		int rc;
		fxlist_del(fx);
		rc = give(pg, fx, e, 1, &err);
		if (rc == 0)
			fx_finished(pg, fx);
		else if (rc == -1)
			fx_fail(pg, fx, &err);
		error_clear(&err);
	} else {
		list_push(&p->ready, e);
	}
	pool_fill(pg, t);
}

/* Starts one clone for pool p of t; foreground when a fixture waits for it. */
static void
start_clone(struct pg *pg, struct pg_template *t, struct pg_pool *p, int foreground)
{
	struct pg_entry *e = calloc(1, sizeof *e);
	struct pg_job *j;
	char rnd[9];

	if (!e || random_hex(rnd, 4) == -1 || pg_password(e->password) == -1 ||
	    !(j = pg_job_new(foreground ? PG_J_FG : PG_J_CLONE, "cloning a template", sql_clone,
	    clone_done, e))) {
		free(e);
		return;
	}
	e->t = t;
	e->iso = p->iso;
	e->conn_limit = pg->conf.connections;
	(void)!pg_object_name(e->db, sizeof e->db, pg->inst, 'd', t->tid, rnd);
	(void)!pg_object_name(e->role, sizeof e->role, pg->inst, 'u', t->tid, rnd);
	(void)!pg_object_name(e->schema, sizeof e->schema, pg->inst, 'x', t->tid, rnd);
	snprintf(e->shared, sizeof e->shared, "%s", t->shared);
	p->cloning++;
	pg->nclones++;
	j->iso = e->iso;
	j->n = e->conn_limit;
	snprintf(j->db, sizeof j->db, "%s", e->db);
	snprintf(j->role, sizeof j->role, "%s", e->role);
	snprintf(j->schema, sizeof j->schema, "%s", e->schema);
	snprintf(j->password, sizeof j->password, "%s", e->password);
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	/* A database clone's role joins the template's owner role (its tables' owner); a schema
	 * clone's role joins the group that may connect to the shared database. */
	snprintf(j->owner_role, sizeof j->owner_role, "%s",
	    e->iso == PG_ISO_DATABASE ? t->owner : t->group);
	snprintf(j->shared, sizeof j->shared, "%s", t->shared);
	if (e->iso == PG_ISO_SCHEMA && t->ddl)
		j->text = strdup(t->ddl);
	pg_submit(pg, j);
}

/* The shared database and the template's DDL are ready (or schema isolation failed
 * for t: its waiters fail). */
static void
schema_setup_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner;
	struct pg_pool *p = &t->pools[PG_ISO_SCHEMA];
	struct pg_fx *fx;

	if (j->err.code) {
		log_warnx("template %s: schema isolation: %s", tpl_label(t), j->err.text);
		t->shared_state = SH_NONE;
		while ((fx = p->waiting.head)) {
			fxlist_del(fx);
			fx_fail(pg, fx, &j->err);
		}
		return;
	}
	free(t->ddl);
	t->ddl = j->text ? j->text : strdup("");
	j->text = NULL;
	t->shared_state = SH_READY;
	pool_fill(pg, t);
}

static void
start_schema_setup(struct pg *pg, struct pg_template *t)
{
	struct pg_job *j = pg_job_new(PG_J_FG, "preparing schema isolation", sql_schema_setup,
	    schema_setup_done, t);

	if (!j)
		return;
	t->shared_state = SH_PREPARING;
	j->empty = t->empty;
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	snprintf(j->shared, sizeof j->shared, "%s", t->shared);
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->group);
	snprintf(j->tid, sizeof j->tid, "%s", t->tid);
	pg_submit(pg, j);
}

void
pool_fill(struct pg *pg, struct pg_template *t)
{
	if (pg->closing || pg->state != PG_READY || t->state != T_READY)
		return;
	for (int iso = 0; iso < 2; iso++) {
		struct pg_pool *p = &t->pools[iso];
		size_t want = p->waiting.n;

		/* Schema pools stay warm once schema isolation has been asked for. */
		if (t->in_use && (iso == PG_ISO_DATABASE || t->shared_state == SH_READY))
			want += (size_t)min_ready(pg, t);
		if (iso == PG_ISO_SCHEMA && t->shared_state != SH_READY) {
			if (p->waiting.n && t->shared_state == SH_NONE)
				start_schema_setup(pg, t);
			continue;
		}
		while (p->ready.n + p->cloning < want) {
			if (p->ready.n + p->leased + p->cloning + p->dropping >= (size_t)max_total(pg, t) ||
			    pg->nclones >= (size_t)pg->conf.global_max ||
			    (p->retry_armed && p->cloning >= p->waiting.n))
				break;
			start_clone(pg, t, p, p->cloning < p->waiting.n);
		}
	}
}

/* ---- Drops ---- */

static void drop_retry(lws_sorted_usec_list_t *sul);

/* A clone is gone (or the drop failed and is tried again later): its fixture, if any,
 * is told it has stopped. */
static void
drop_done(struct pg *pg, struct pg_job *j)
{
	struct pg_entry *e = j->owner;
	struct pg_template *t = e->t;
	struct pg_fx *fx = e->fx;

	if (t)
		t->pools[e->iso].dropping--;
	if (j->err.code && !pg->closing) {
		/* Tried again later (outside the pools); the next start's sweep is the last resort. */
		log_warnx("dropping %s: %s", e->iso == PG_ISO_DATABASE ? e->db : e->schema, j->err.text);
		e->t = NULL;
		e->fx = NULL;
		list_push(&pg->dropping_lost, e);
		if (!pg->drop_retry_armed) {
			pg->drop_retry_armed = 1;
			lws_sul_schedule(pg->b->ctx, 0, &pg->drop_retry, drop_retry,
			    (lws_usec_t)DROP_RETRY_MS * LWS_US_PER_MS);
		}
	} else {
		pg->nclones--;
		free(e);
	}
	if (fx)
		fixture_stopped(pg->b, fx->f);
	if (t)
		pool_fill(pg, t);
	/* An idle template whose clones are all gone may now be old enough to drop. */
	if (t && !t->in_use && pool_total(t) == 0)
		tpl_gc(pg);
}

/* Drops e in the background; e->fx, if set, is told it has stopped once e is gone. */
static void
submit_drop(struct pg *pg, struct pg_entry *e)
{
	struct pg_job *j = pg_job_new(PG_J_FG, "dropping a clone", sql_drop, drop_done, e);

	if (!j) {
		log_warnx("out of memory: %s is left for the next start's sweep", e->db);
		if (e->fx)
			fixture_stopped(pg->b, e->fx->f);
		if (e->t)
			e->t->pools[e->iso].dropping--;
		pg->nclones--;
		free(e);
		return;
	}
	j->iso = e->iso;
	snprintf(j->db, sizeof j->db, "%s", e->db);
	snprintf(j->role, sizeof j->role, "%s", e->role);
	snprintf(j->schema, sizeof j->schema, "%s", e->schema);
	snprintf(j->shared, sizeof j->shared, "%s", e->shared);
	pg_submit(pg, j);
}

static void
drop_retry(lws_sorted_usec_list_t *sul)
{
	struct pg *pg = lws_container_of(sul, struct pg, drop_retry);
	struct pg_entry *e;

	pg->drop_retry_armed = 0;
	while ((e = list_pop(&pg->dropping_lost)))
		submit_drop(pg, e);
}

/* Drops e; fx (may be NULL) is told it has stopped once e is gone. */
static void
release_entry(struct pg *pg, struct pg_entry *e, struct pg_fx *fx)
{
	struct pg_pool *p = &e->t->pools[e->iso];

	if (e->fx)
		p->leased--;
	e->fx = fx;
	p->dropping++;
	submit_drop(pg, e);
}

void
pool_shrink(struct pg *pg, struct pg_template *t)
{
	for (int iso = 0; iso < 2; iso++) {
		struct pg_pool *p = &t->pools[iso];
		struct pg_entry *e;

		while ((e = list_pop(&p->ready))) {
			e->fx = NULL;
			p->dropping++;
			submit_drop(pg, e);
		}
	}
}

void
pool_free_template(struct pg_template *t)
{
	for (int iso = 0; iso < 2; iso++) {
		struct pg_pool *p = &t->pools[iso];
		struct pg_entry *e;

		if (p->retry_armed)
			lws_sul_cancel(&p->retry);
		p->retry_armed = 0;
		while ((e = list_pop(&p->ready)))
			free(e);
	}
}

/* ---- Taking clones ---- */

static void
fx_deadline(lws_sorted_usec_list_t *sul)
{
	struct pg_fx *fx = lws_container_of(sul, struct pg_fx, deadline);
	struct pg *pg = fx->pg;
	struct pg_template *t = fx->t;
	struct pg_pool *p = &t->pools[fx->iso];
	struct fxb_error err = { 0 };

	fx->deadline_armed = 0;
	fxlist_del(fx);
	error_set_data(&err, ERR_PG_POOL_EXHAUSTED, json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:I, s:i}",
	    "fixture", fx->f->name, "template", tpl_label(t), "ready", (json_int_t)p->ready.n,
	    "leased", (json_int_t)p->leased, "cloning", (json_int_t)p->cloning,
	    "max", max_total(pg, t), "clones", (json_int_t)pg->nclones, "global_max",
	    pg->conf.global_max),
	    "fixture %s: no clone of template %s within %d ms (%zu leased, %zu being made, pool max "
	    "%d, %zu of %d clones in all)", fx->f->name, tpl_label(t), pg->conf.acquire_timeout_ms,
	    p->leased, p->cloning, max_total(pg, t), pg->nclones, pg->conf.global_max);
	fx_fail(pg, fx, &err);
	error_clear(&err);
}

int
pool_take(struct pg *pg, struct pg_template *t, struct pg_fx *fx, struct fxb_error *err)
{
	struct pg_pool *p = &t->pools[fx->iso];
	struct pg_entry *e;
	int rc;

	fx->t = t;
	tpl_mark_used(pg, t);
	if (fx->iso == PG_ISO_DATABASE || t->shared_state == SH_READY) {
		if ((e = list_pop(&p->ready))) {
			rc = give(pg, fx, e, 0, err);
			pool_fill(pg, t);
			return rc;
		}
	}
	fxlist_add(&p->waiting, fx);
	if (pg->conf.acquire_timeout_ms > 0) {
		fx->deadline_armed = 1;
		lws_sul_schedule(pg->b->ctx, 0, &fx->deadline, fx_deadline,
		    (lws_usec_t)pg->conf.acquire_timeout_ms * LWS_US_PER_MS);
	}
	pool_fill(pg, t);
	return 1;
}

/* Finds fx's template and serves fx from it: as pool_take(). */
static int
fx_start_now(struct pg *pg, struct pg_fx *fx, struct fxb_error *err)
{
	const struct pg_tpl_conf *conf;
	struct pg_template *t;
	char tid[17];
	int rc;

	if (!fx->key[0]) {
		t = tpl_empty(pg);
	} else if ((conf = pg_conf_template(&pg->conf, fx->key))) {
		if (!(t = tpl_configured(pg, conf, fx, err)))
			return -1;
	} else {
		pg_tid(fx->key, pg->server_version, tid);
		if (!(t = tpl_find_tid(pg, tid)) || (t->state == T_ABSENT && !t->ehead &&
		    !t->fx_waiting.n)) {
			error_set_data(err, ERR_PG_TEMPLATE_NOT_FOUND, json_pack("{s:s, s:s}", "fixture",
			    fx->f->name, "template", fx->key), "fixture %s: template \"%s\" is neither "
			    "configured nor built (call pg.template.ensure with that hash first)",
			    fx->f->name, fx->key);
			return -1;
		}
	}
	if (!t) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	fx->t = t;
	if ((rc = tpl_want(pg, t, fx, err)) != 1)
		return rc == 0 ? 1 : -1;
	return pool_take(pg, t, fx, err);
}

void
pool_template_ready(struct pg *pg, struct pg_template *t, const struct fxb_error *err)
{
	struct pg_fx *fx;

	while ((fx = t->fx_waiting.head)) {
		struct fxb_error e2 = { 0 };
		int rc;

		fxlist_del(fx);
		if (err) {
			fx_fail(pg, fx, err);
			continue;
		}
		rc = pool_take(pg, t, fx, &e2);
		if (rc == 0)
			fx_finished(pg, fx);
		else if (rc == -1)
			fx_fail(pg, fx, &e2);
		error_clear(&e2);
	}
}

void
pool_resume(struct pg *pg, struct pg_fx *fx, const struct fxb_error *err)
{
	struct fxb_error e2 = { 0 };
	int rc;

	if (err) {
		fx_fail(pg, fx, err);
		return;
	}
	rc = fx_start_now(pg, fx, &e2);
	if (rc == 0)
		fx_finished(pg, fx);
	else if (rc == -1)
		fx_fail(pg, fx, &e2);
	error_clear(&e2);
}

/* ---- The fixture kind ---- */

static int
pg_parse(struct broker *b, struct fixture *f, json_t *spec, struct fxb_error *err)
{
	const char *k, *tpl = NULL;
	struct pg_fx *fx;
	json_t *v;

	if (!(fx = calloc(1, sizeof *fx))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	/* fx->f is set by start: the request's fixture array moves while it is parsed. */
	f->data = fx;
	fx->pg = b->pg;
	fx->iso = PG_ISO_DATABASE;
	fx->connections = b->pg ? b->pg->conf.connections : 10;
	json_object_foreach(spec, k, v) {
		if (!strcmp(k, "kind"))
			continue;
		if (!strcmp(k, "template")) {
			if (!json_is_string(v) || !(tpl = json_string_value(v)) ||
			    (!pg_hash_valid(tpl) && !pg_conf_template(&b->pg->conf, tpl))) {
				error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s.template: expected "
				    "a configured template's name or a hash of 1 to 128 of A-Z a-z 0-9 . _ : -",
				    f->name);
				return -1;
			}
			snprintf(fx->key, sizeof fx->key, "%s", tpl);
		} else if (!strcmp(k, "isolation")) {
			if (json_is_string(v) && !strcmp(json_string_value(v), "database"))
				fx->iso = PG_ISO_DATABASE;
			else if (json_is_string(v) && !strcmp(json_string_value(v), "schema"))
				fx->iso = PG_ISO_SCHEMA;
			else {
				error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s.isolation: "
				    "expected \"database\" or \"schema\"", f->name);
				return -1;
			}
		} else if (!strcmp(k, "connections")) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 1000) {
				error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s.connections: "
				    "expected 1 to 1000", f->name);
				return -1;
			}
			fx->connections = (int)json_integer_value(v);
		} else {
			error_set(err, ERR_INVALID_PARAMS, "invalid params: fixtures.%s: %.64s: unknown member "
			    "(a postgres fixture takes template, isolation and connections)", f->name, k);
			return -1;
		}
	}
	f->nports = 0;
	return 0;
}

/* Serves f from a ready clone (0), or parks it until PostgreSQL, its template or a clone
 * is ready (1), or fails (-1 with err). */
static int
pg_fx_start(struct broker *b, struct fixture *f, struct fxb_error *err)
{
	struct pg *pg = b->pg;
	struct pg_fx *fx = f->data;

	fx->f = f;
	if (pg->state != PG_READY) {
		pg_kick(pg);
		if (pg->state == PG_FAILED) {
			pg_set_unavailable(err, pg);
			return -1;
		}
		fxlist_add(&pg->init_waiting, fx);
		return 1;
	}
	return fx_start_now(pg, fx, err);
}

/* Stops f: out of any wait, its clone dropped; fixture_stopped() once that is done. */
static void
pg_fx_stop(struct broker *b, struct fixture *f, const char *reason)
{
	struct pg *pg = b->pg;
	struct pg_fx *fx = f->data;
	struct fxb_error err = { 0 };

	(void)reason;
	fxlist_del(fx);
	if (fx->reset_call) {
		error_set(&err, ERR_ACQUIRE_CANCELLED, "fixture %s was released during its reset",
		    f->name);
		fx_fail(pg, fx, &err);
		error_clear(&err);
	}
	if (fx->job) {
		fx->stopping = 1;
		return;
	}
	if (fx->old) {
		release_entry(pg, fx->old, NULL);
		fx->old = NULL;
	}
	if (fx->e) {
		struct pg_entry *e = fx->e;
		fx->e = NULL;
		release_entry(pg, e, fx);
		return;
	}
	fixture_stopped(b, f);
}

static void
pg_fx_free(struct fixture *f)
{
	free(f->data);
	f->data = NULL;
}

/* lease.reset: gives f a fresh clone and drops the old one. Returns the result at once
 * when a clone is ready, else RPC_PENDING; on error f keeps its clone. */
static json_t *
pg_fx_reset(struct broker *b, struct fixture *f, struct rpc_call *call, struct fxb_error *err)
{
	struct pg *pg = b->pg;
	struct pg_fx *fx = f->data;
	struct pg_template *t = fx->t;
	struct pg_pool *p = &t->pools[fx->iso];
	struct pg_entry *e;
	int rc;

	if (fx->job || fx->reset_call) {
		error_set(err, ERR_FIXTURE_NOT_RESETTABLE, "fixture %s is being reset already", f->name);
		return NULL;
	}
	fx->reset_call = call;
	tpl_mark_used(pg, t);
	if ((e = list_pop(&p->ready))) {
		rc = give(pg, fx, e, 0, err);
		pool_fill(pg, t);
		if (rc == 1)
			return RPC_PENDING;
		fx->reset_call = NULL;
		return rc == 0 ? lease_reset_result(f) : NULL;
	}
	fxlist_add(&p->waiting, fx);
	if (pg->conf.acquire_timeout_ms > 0) {
		fx->deadline_armed = 1;
		lws_sul_schedule(pg->b->ctx, 0, &fx->deadline, fx_deadline,
		    (lws_usec_t)pg->conf.acquire_timeout_ms * LWS_US_PER_MS);
	}
	pool_fill(pg, t);
	return RPC_PENDING;
}

const struct fixture_kind pg_kind = {
	.name = "postgres",
	.parse = pg_parse,
	.start = pg_fx_start,
	.stop = pg_fx_stop,
	.free = pg_fx_free,
	.reset = pg_fx_reset,
};
