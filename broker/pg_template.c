/* pg_template.c: templates: lookup by hash or name, client builds, broker builds, GC.
 *
 * A template is keyed by the client's hash (salted into a template id by pg_tid()), by a
 * configured name and the hash of its inputs, or is the broker's empty template for leases
 * that name none. Its state lives here, on the loop; PostgreSQL itself holds the truth that
 * survives a restart: a finished template is a database marked datistemplate with a JSON
 * comment (pg_sql.c), found again by the init job.
 *
 * A client build: the first pg.template.ensure of an unknown hash makes its session the
 * builder and answers with a private build database once it exists; later callers are
 * parked (no polling) until pg.template.finish makes the template ready, or their wait_ms
 * passes. When the builder discards the build, or its session ends, the next parked caller
 * becomes the builder. A configured template is built by the broker itself (its migrate
 * command, on a worker thread) the first time anyone needs it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pg_int.h"
#include "rpc.h"
#include "session.h"

#define GC_EVERY_MS (10 * 60 * 1000)
#define DEFAULT_WAIT_MS 600000

static void start_client_build(struct pg *pg, struct pg_template *t, struct session *s,
    struct rpc_call *call);
static void next_builder(struct pg *pg, struct pg_template *t);

const char *
tpl_label(const struct pg_template *t)
{
	return t->empty ? "(none)" : t->key;
}

struct pg_template *
tpl_find_tid(struct pg *pg, const char *tid)
{
	for (struct pg_template *t = pg->templates; t; t = t->next)
		if (!strcmp(t->tid, tid))
			return t;
	return NULL;
}

static void
names(struct pg *pg, struct pg_template *t)
{
	/* The names fit: "fxb_" + 16 + "_x_" + 16 is 39 bytes. */
	(void)!pg_object_name(t->db, sizeof t->db, pg->inst, 't', t->tid, NULL);
	(void)!pg_object_name(t->owner, sizeof t->owner, pg->inst, 'o', t->tid, NULL);
	(void)!pg_object_name(t->build, sizeof t->build, pg->inst, 'b', t->tid, NULL);
	(void)!pg_object_name(t->shared, sizeof t->shared, pg->inst, 's', t->tid, NULL);
	(void)!pg_object_name(t->group, sizeof t->group, pg->inst, 'g', t->tid, NULL);
}

/* The template id of a configured template's version, and of the empty template. */
static void
conf_tid(struct pg *pg, const char *name, const char *inputs, char tid[17])
{
	char key[256];

	snprintf(key, sizeof key, "configured\x01%s\x01%s", name, inputs);
	pg_tid(key, pg->server_version, tid);
}

static struct pg_template *
tpl_new(struct pg *pg, const char *key, const char *tid)
{
	struct pg_template *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->pg = pg;
	snprintf(t->key, sizeof t->key, "%s", key);
	snprintf(t->tid, sizeof t->tid, "%s", tid);
	names(pg, t);
	t->pools[0].iso = PG_ISO_DATABASE;
	t->pools[1].iso = PG_ISO_SCHEMA;
	t->next = pg->templates;
	pg->templates = t;
	return t;
}

struct pg_template *
tpl_for_hash(struct pg *pg, const char *key)
{
	char tid[17];
	struct pg_template *t;

	pg_tid(key, pg->server_version, tid);
	if ((t = tpl_find_tid(pg, tid)))
		return t;
	return tpl_new(pg, key, tid);
}

struct pg_template *
tpl_empty(struct pg *pg)
{
	char tid[17];
	struct pg_template *t;

	pg_tid("\x01(empty)", pg->server_version, tid);
	if ((t = tpl_find_tid(pg, tid)))
		return t;
	if ((t = tpl_new(pg, "", tid)))
		t->empty = 1;
	return t;
}

/* The record of a configured template's version (created absent when new). */
static struct pg_template *
tpl_version(struct pg *pg, const struct pg_tpl_conf *conf, const char *inputs)
{
	char tid[17];
	struct pg_template *t;

	conf_tid(pg, conf->name, inputs, tid);
	if (!(t = tpl_find_tid(pg, tid)) && (t = tpl_new(pg, conf->name, tid)))
		snprintf(t->inputs, sizeof t->inputs, "%s", inputs);
	if (t)
		t->conf = conf;
	return t;
}

void
tpl_load(struct pg *pg, json_t *list)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		json_t *meta = json_loads(json_string_value(json_object_get(e, "comment")), 0, NULL);
		const char *key = json_string_value(json_object_get(meta, "key"));
		const char *tid = json_string_value(json_object_get(e, "tid"));
		struct pg_template *t;

		if (!key || !tid || tpl_find_tid(pg, tid) || !(t = tpl_new(pg, key, tid))) {
			json_decref(meta);
			continue;
		}
		t->state = T_READY;
		t->empty = !key[0];
		if (json_is_true(json_object_get(meta, "configured"))) {
			t->conf = pg_conf_template(&pg->conf, key);
			snprintf(t->inputs, sizeof t->inputs, "%s",
			    json_string_value(json_object_get(meta, "inputs")) ?
			    json_string_value(json_object_get(meta, "inputs")) : "");
		}
		t->created_s = json_integer_value(json_object_get(meta, "created_at"));
		t->used_s = json_integer_value(json_object_get(meta, "used_at"));
		json_decref(meta);
	}
}

void
tpl_set_current(struct pg *pg, const struct pg_tpl_conf *conf, const char *inputs)
{
	struct pg_template *t = tpl_version(pg, conf, inputs);

	if (t)
		pg->current[conf - pg->conf.templates] = t;
}

static json_t *
build_info(struct pg *pg, struct pg_template *t)
{
	char url[1024];

	if (pg_url(url, sizeof url, pg->client_host, pg->client_port, t->owner, t->build_password,
	    t->build, "fxb:build") == -1)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "state", "build", "url", url, "host",
	    pg->client_host, "port", pg->client_port, "database", t->build, "user", t->owner,
	    "password", t->build_password);
}

static json_t *
ready_result(void)
{
	return json_pack("{s:s}", "state", "ready");
}

/* The comment marking t, with used_at now. */
static char *
comment_now(struct pg_template *t)
{
	json_t *m = json_pack("{s:i, s:s, s:b, s:s, s:I, s:I, s:s, s:s}", "fxb", 1, "key", t->key,
	    "configured", t->conf != NULL, "inputs", t->inputs, "created_at",
	    (json_int_t)t->created_s, "used_at", (json_int_t)t->used_s, "owner", t->owner, "broker",
	    FXB_VERSION_STR);
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;

	json_decref(m);
	return text;
}

static void
touch_done(struct pg *pg, struct pg_job *j)
{
	(void)pg;
	if (j->err.code)
		log_warnx("%s", j->err.text);
}

/* t was not used for idle_timeout_ms: its pools shrink to nothing ready. */
static void
idle_expired(lws_sorted_usec_list_t *sul)
{
	struct pg_template *t = lws_container_of(sul, struct pg_template, idle);
	struct pg *pg = t->pg;
	uint64_t idle = (uint64_t)pg->conf.idle_ms, since = now_ms() - t->last_use_ms;

	t->idle_armed = 0;
	if (since < idle) {
		t->idle_armed = 1;
		lws_sul_schedule(pg->b->ctx, 0, &t->idle, idle_expired,
		    (lws_usec_t)(idle - since) * LWS_US_PER_MS);
		return;
	}
	log_debug("template %s: unused for %d ms; its pools shrink", tpl_label(t), pg->conf.idle_ms);
	t->in_use = 0;
	pool_shrink(pg, t);
}

void
tpl_mark_used(struct pg *pg, struct pg_template *t)
{
	struct pg_job *j;

	t->in_use = 1;
	t->last_use_ms = now_ms();
	t->used_s = (int64_t)time(NULL);
	if (!t->idle_armed) {
		t->idle_armed = 1;
		lws_sul_schedule(pg->b->ctx, 0, &t->idle, idle_expired,
		    (lws_usec_t)pg->conf.idle_ms * LWS_US_PER_MS);
	}
	/* Once a run, the comment records the use, for GC by age across restarts. */
	if (t->state != T_READY || t->touched)
		return;
	t->touched = 1;
	if (!(j = pg_job_new(PG_J_BG, "updating a template's comment", sql_touch, touch_done, t)))
		return;
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	j->text = comment_now(t);
	pg_submit(pg, j);
}

/* ---- Parked ensure calls ---- */

static void
ensure_unlink(struct pg_template *t, struct pg_ensure *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->ehead = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->etail = e->prev;
	lws_sul_cancel(&e->deadline);
}

static void
ensure_deadline(lws_sorted_usec_list_t *sul)
{
	struct pg_ensure *e = lws_container_of(sul, struct pg_ensure, deadline);
	struct pg_template *t = e->t;
	struct fxb_error err = { 0 };

	ensure_unlink(t, e);
	error_set(&err, ERR_PG_TEMPLATE_WAIT_TIMEOUT, "template %s is not ready after %llu ms "
	    "(it is %s)", tpl_label(t), (unsigned long long)(now_ms() - rpc_call_started_ms(e->call)),
	    t->state == T_BUILDING ? "being built" : "not built");
	rpc_call_fail(e->call, &err);
	error_clear(&err);
	free(e);
}

static json_t *
park(struct pg *pg, struct pg_template *t, struct session *s, struct rpc_call *call,
    int64_t wait_ms, struct fxb_error *err)
{
	struct pg_ensure *e;

	if (wait_ms == 0) {
		error_set(err, ERR_PG_TEMPLATE_WAIT_TIMEOUT, "template %s is not ready (it is being "
		    "built) and wait_ms is 0", tpl_label(t));
		return NULL;
	}
	if (!(e = calloc(1, sizeof *e))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	e->t = t;
	e->pg = pg;
	e->call = call;
	e->s = s;
	e->prev = t->etail;
	if (t->etail)
		t->etail->next = e;
	else
		t->ehead = e;
	t->etail = e;
	lws_sul_schedule(pg->b->ctx, 0, &e->deadline, ensure_deadline,
	    (lws_usec_t)wait_ms * LWS_US_PER_MS);
	return RPC_PENDING;
}

/* Answers every parked ensure of t: ready (err NULL) or failed. */
static void
answer_parked(struct pg_template *t, const struct fxb_error *err)
{
	struct pg_ensure *e;

	while ((e = t->ehead)) {
		ensure_unlink(t, e);
		if (err)
			rpc_call_fail(e->call, err);
		else
			rpc_call_finish(e->call, ready_result());
		free(e);
	}
}

/* t is ready: every waiter gets it, its pools fill. */
static void
became_ready(struct pg *pg, struct pg_template *t)
{
	t->state = T_READY;
	t->builder = 0;
	t->build_ready = 0;
	t->handover = 0;
	t->created_s = t->used_s = (int64_t)time(NULL);
	t->touched = 1;
	log_info("template %s is ready (%s)", tpl_label(t), t->db);
	answer_parked(t, NULL);
	pool_template_ready(pg, t, NULL);
	pool_fill(pg, t);
	tpl_gc(pg);
}

/* ---- Broker builds (configured templates and the empty one) ---- */

static void
migrate_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner;

	t->build_job = 0;
	if (!j->err.code) {
		became_ready(pg, t);
		return;
	}
	log_warnx("%s", j->err.text);
	if (j->text && j->text[0])
		log_info("template %s: the migrate command's output ended with:\n%s", tpl_label(t),
		    j->text);
	t->state = T_ABSENT;
	answer_parked(t, &j->err);
	pool_template_ready(pg, t, &j->err);
}

/* Builds t on a worker: the empty template, or a configured one's migrate command. */
static void
start_migrate(struct pg *pg, struct pg_template *t)
{
	struct pg_job *j = pg_job_new(PG_J_FG, "building a template", sql_migrate, migrate_done, t);

	if (!j || pg_password(t->build_password) == -1) {
		struct fxb_error err = { 0 };
		pg_job_free(j);
		error_set(&err, ERR_INTERNAL, "out of memory");
		answer_parked(t, &err);
		pool_template_ready(pg, t, &err);
		error_clear(&err);
		return;
	}
	t->state = T_BUILDING;
	t->builder = 0;
	t->build_job = 1;
	j->conf = t->conf;
	j->empty = t->empty;
	snprintf(j->key, sizeof j->key, "%s", t->key);
	snprintf(j->inputs, sizeof j->inputs, "%s", t->inputs);
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->owner);
	snprintf(j->db, sizeof j->db, "%s", t->build);
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	snprintf(j->password, sizeof j->password, "%s", t->build_password);
	log_info("template %s: building it (%s)", tpl_label(t), t->empty ? "an empty database"
	    : "its migrate command");
	pg_submit(pg, j);
}

int
tpl_want(struct pg *pg, struct pg_template *t, struct pg_fx *fx, struct fxb_error *err)
{
	switch (t->state) {
	case T_READY:
		return 1;
	case T_ABSENT:
		if (!t->conf && !t->empty) {
			error_set_data(err, ERR_PG_TEMPLATE_NOT_FOUND, json_pack("{s:s}", "template", t->key),
			    "fixture %s: template \"%s\" is not configured and no build of that hash "
			    "exists (call pg.template.ensure first)", fx->f->name, t->key);
			return -1;
		}
		start_migrate(pg, t);
		break;
	case T_BUILDING:
	case T_DROPPING:
		break;
	}
	fxlist_add(&t->fx_waiting, fx);
	return 0;
}

struct pg_template *
tpl_configured(struct pg *pg, const struct pg_tpl_conf *conf, struct pg_fx *fx,
    struct fxb_error *err)
{
	size_t i = (size_t)(conf - pg->conf.templates);

	(void)fx;
	if (pg->current[i])
		return pg->current[i];
	error_set(err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: its inputs could not be read at "
	    "start-up; call pg.template.ensure {\"hash\": \"%s\"} to try again", conf->name,
	    conf->name);
	return NULL;
}

/* ---- Client builds ---- */

static void
discard_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner;

	t->build_job = 0;
	t->handover = 0;
	if (j->err.code)
		log_warnx("template %s: %s", tpl_label(t), j->err.text);
	if (j->call)
		rpc_call_finish(j->call, json_pack("{s:s}", "state", "discarded"));
	t->state = T_ABSENT;
	t->builder = 0;
	t->build_ready = 0;
	next_builder(pg, t);
}

/* Drops t's build database; call (may be NULL) is answered "discarded" and the next
 * parked caller becomes the builder. */
static void
start_discard(struct pg *pg, struct pg_template *t, struct session *s, struct rpc_call *call)
{
	struct pg_job *j = pg_job_new(PG_J_FG, "discarding a build", sql_build_discard,
	    discard_done, t);

	if (!j) {
		struct fxb_error err = { 0 };
		error_set(&err, ERR_INTERNAL, "out of memory");
		if (call)
			rpc_call_fail(call, &err);
		error_clear(&err);
		return;
	}
	t->build_job = 1;
	j->call = call;
	j->call_s = s;
	snprintf(j->db, sizeof j->db, "%s", t->build);
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->owner);
	pg_submit(pg, j);
}

/* The build database exists (or could not be made): the builder gets its credentials;
 * if its session ended meanwhile, or it failed, the build passes on. */
static void
prepare_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner;
	struct rpc_call *call = t->builder_call;

	t->build_job = 0;
	t->builder_call = NULL;
	if (j->err.code) {
		log_warnx("template %s: %s", tpl_label(t), j->err.text);
		if (call)
			rpc_call_fail(call, &j->err);
		t->state = T_ABSENT;
		t->builder = 0;
		t->handover = 0;
		next_builder(pg, t);
		return;
	}
	t->build_ready = 1;
	if (t->handover) {
		t->handover = 0;
		log_info("template %s: the builder's session ended; the build goes to the next waiter",
		    tpl_label(t));
		start_discard(pg, t, NULL, NULL);
		return;
	}
	log_info("template %s: session s-%llu builds it in %s", tpl_label(t),
	    (unsigned long long)t->builder, t->build);
	if (call)
		rpc_call_finish(call, build_info(pg, t));
}

/* Makes session s the builder of t and prepares the build database; call is
 * answered when it exists. */
static void
start_client_build(struct pg *pg, struct pg_template *t, struct session *s,
    struct rpc_call *call)
{
	struct pg_job *j = pg_job_new(PG_J_FG, "preparing a build", sql_build_prepare,
	    prepare_done, t);
	struct fxb_error err = { 0 };

	if (!j || pg_password(t->build_password) == -1) {
		pg_job_free(j);
		error_set(&err, ERR_INTERNAL, "out of memory");
		rpc_call_fail(call, &err);
		error_clear(&err);
		return;
	}
	t->state = T_BUILDING;
	t->builder = s->id;
	t->builder_call = call;
	t->build_ready = 0;
	t->build_job = 1;
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->owner);
	snprintf(j->db, sizeof j->db, "%s", t->build);
	snprintf(j->password, sizeof j->password, "%s", t->build_password);
	pg_submit(pg, j);
}

/* The build of t was given up: the first parked caller builds it next. */
static void
next_builder(struct pg *pg, struct pg_template *t)
{
	struct pg_ensure *e = t->ehead;
	struct fxb_error err = { 0 };

	if (t->state != T_ABSENT)
		return;
	if (t->conf || t->empty) {
		if (t->ehead || t->fx_waiting.n)
			start_migrate(pg, t);
		return;
	}
	if (e) {
		ensure_unlink(t, e);
		log_info("template %s: the build passes to session %s", tpl_label(t), e->s->sid);
		start_client_build(pg, t, e->s, e->call);
		free(e);
		return;
	}
	if (t->fx_waiting.n) {
		error_set(&err, ERR_PG_TEMPLATE_NOT_FOUND, "template %s: its build was given up and "
		    "nobody else is building it", tpl_label(t));
		pool_template_ready(pg, t, &err);
		error_clear(&err);
	}
}

/* Resolving a configured template's inputs, for pg.template.ensure. */
static json_t *ensure_on(struct pg *pg, struct pg_template *t, struct session *s,
    struct rpc_call *call, int64_t wait_ms, struct fxb_error *err);

/* A configured template's inputs are hashed: ensure goes on with that version. */
static void
resolve_done(struct pg *pg, struct pg_job *j)
{
	const struct pg_tpl_conf *conf = j->conf;
	struct fxb_error err = { 0 };
	struct pg_template *t;
	json_t *result;

	if (!j->call)
		return;
	if (j->err.code) {
		rpc_call_fail(j->call, &j->err);
		return;
	}
	if (!(t = tpl_version(pg, conf, j->inputs))) {
		error_set(&err, ERR_INTERNAL, "out of memory");
		rpc_call_fail(j->call, &err);
		error_clear(&err);
		return;
	}
	if (pg->current[conf - pg->conf.templates] != t) {
		if (pg->current[conf - pg->conf.templates])
			log_info("template %s: its inputs changed (%s)", conf->name, j->inputs);
		pg->current[conf - pg->conf.templates] = t;
	}
	result = ensure_on(pg, t, j->call_s, j->call, j->n, &err);
	if (result != RPC_PENDING) {
		if (result)
			rpc_call_finish(j->call, result);
		else
			rpc_call_fail(j->call, &err);
	}
	error_clear(&err);
}

/* pg.template.ensure for template t: "ready", "build" (s becomes the builder), or
 * RPC_PENDING (parked), or NULL with err. */
static json_t *
ensure_on(struct pg *pg, struct pg_template *t, struct session *s, struct rpc_call *call,
    int64_t wait_ms, struct fxb_error *err)
{
	tpl_mark_used(pg, t);
	switch (t->state) {
	case T_READY:
		pool_fill(pg, t);
		return ready_result();
	case T_ABSENT:
		if (t->conf || t->empty) {
			start_migrate(pg, t);
			return park(pg, t, s, call, wait_ms, err);
		}
		start_client_build(pg, t, s, call);
		return RPC_PENDING;
	case T_BUILDING:
		if (!t->conf && t->builder == s->id) {
			if (t->build_ready && !t->build_job)
				return build_info(pg, t);
			error_set(err, ERR_PG_NOT_BUILDER, "template %s: this session's build is being "
			    "prepared or finished; wait for that call's answer", tpl_label(t));
			return NULL;
		}
		return park(pg, t, s, call, wait_ms, err);
	case T_DROPPING:
		return park(pg, t, s, call, wait_ms, err);
	}
	return NULL;
}

json_t *
tpl_ensure(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    int64_t wait_ms, struct fxb_error *err)
{
	const struct pg_tpl_conf *conf = pg_conf_template(&pg->conf, key);
	struct pg_template *t;
	struct pg_job *j;

	if (wait_ms < 0)
		wait_ms = DEFAULT_WAIT_MS;
	if (conf) {
		/* Hash its inputs again: an edited migration makes a new template. */
		if (!(j = pg_job_new(PG_J_FG, "hashing a template's inputs", sql_resolve, resolve_done,
		    NULL))) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return NULL;
		}
		j->conf = conf;
		j->call = call;
		j->call_s = s;
		j->n = (int)wait_ms;
		pg_submit(pg, j);
		return RPC_PENDING;
	}
	if (!pg_hash_valid(key)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: hash: expected 1 to 128 of A-Z a-z "
		    "0-9 . _ : - (or a configured template's name)");
		return NULL;
	}
	if (!(t = tpl_for_hash(pg, key))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	return ensure_on(pg, t, s, call, wait_ms, err);
}

/* The client-built template of key that s builds, or NULL with err set. */
static struct pg_template *
own_build(struct pg *pg, struct session *s, const char *key, int *ready, struct fxb_error *err)
{
	struct pg_template *t;
	char tid[17];

	*ready = 0;
	if (pg_conf_template(&pg->conf, key)) {
		error_set(err, ERR_PG_NOT_BUILDER, "template %s is configured: the broker builds it", key);
		return NULL;
	}
	if (!pg_hash_valid(key)) {
		error_set(err, ERR_INVALID_PARAMS, "invalid params: hash: expected 1 to 128 of A-Z a-z "
		    "0-9 . _ : -");
		return NULL;
	}
	pg_tid(key, pg->server_version, tid);
	t = tpl_find_tid(pg, tid);
	if (t && t->state == T_READY) {
		*ready = 1;
		return t;
	}
	if (!t || t->state != T_BUILDING) {
		error_set(err, ERR_PG_NOT_BUILDER, "template %s: no build is under way (call "
		    "pg.template.ensure first)", key);
		return NULL;
	}
	if (t->builder != s->id) {
		error_set(err, ERR_PG_NOT_BUILDER, "template %s: session s-%llu builds it, not this one",
		    key, (unsigned long long)t->builder);
		return NULL;
	}
	if (t->build_job || !t->build_ready) {
		error_set(err, ERR_PG_NOT_BUILDER, "template %s: the build is still being prepared, "
		    "finished or discarded", key);
		return NULL;
	}
	return t;
}

/* A build is finished: t is ready for everyone (or the builder hears why not). */
static void
finish_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner;

	t->build_job = 0;
	if (j->err.code) {
		log_warnx("template %s: %s", tpl_label(t), j->err.text);
		if (j->call)
			rpc_call_fail(j->call, &j->err);
		if (t->handover) {
			t->handover = 0;
			start_discard(pg, t, NULL, NULL);
		}
		return;
	}
	if (j->call)
		rpc_call_finish(j->call, ready_result());
	became_ready(pg, t);
}

json_t *
tpl_finish(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    struct fxb_error *err)
{
	int ready;
	struct pg_template *t = own_build(pg, s, key, &ready, err);
	struct pg_job *j;

	if (!t)
		return NULL;
	if (ready)
		return ready_result();
	if (!(j = pg_job_new(PG_J_FG, "finishing a build", sql_build_finish, finish_done, t))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	t->build_job = 1;
	j->call = call;
	j->call_s = s;
	snprintf(j->key, sizeof j->key, "%s", t->key);
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->owner);
	snprintf(j->db, sizeof j->db, "%s", t->build);
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	pg_submit(pg, j);
	return RPC_PENDING;
}

json_t *
tpl_discard(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    struct fxb_error *err)
{
	int ready;
	struct pg_template *t = own_build(pg, s, key, &ready, err);

	if (!t)
		return NULL;
	if (ready) {
		error_set(err, ERR_PG_NOT_BUILDER, "template %s is finished: there is no build to discard",
		    key);
		return NULL;
	}
	log_info("template %s: session %s discards its build", tpl_label(t), s->sid);
	start_discard(pg, t, s, call);
	return RPC_PENDING;
}

void
tpl_cancel_session(struct pg *pg, struct session *s)
{
	struct fxb_error err = { 0 };

	error_set(&err, ERR_ACQUIRE_CANCELLED, "the session's connection closed while the call waited");
	for (struct pg_template *t = pg->templates; t; t = t->next) {
		struct pg_ensure *e, *next;
		for (e = t->ehead; e; e = next) {
			next = e->next;
			if (e->s != s)
				continue;
			ensure_unlink(t, e);
			rpc_call_fail(e->call, &err);
			free(e);
		}
		if (t->builder_call && rpc_call_session(t->builder_call) == s) {
			rpc_call_fail(t->builder_call, &err);
			t->builder_call = NULL;
		}
	}
	error_clear(&err);
	pg_jobs_forget_session(pg, s);
}

void
tpl_session_ended(struct pg *pg, struct session *s)
{
	tpl_cancel_session(pg, s);
	for (struct pg_template *t = pg->templates; t; t = t->next) {
		if (t->state != T_BUILDING || t->conf || t->empty || t->builder != s->id)
			continue;
		if (t->build_job) {
			t->handover = 1;
			continue;
		}
		log_info("template %s: builder session %s ended; the build goes to the next waiter",
		    tpl_label(t), s->sid);
		start_discard(pg, t, NULL, NULL);
	}
}

/* ---- Garbage collection ---- */

static void
drop_done(struct pg *pg, struct pg_job *j)
{
	struct pg_template *t = j->owner, **pp;

	if (j->err.code) {
		log_warnx("template %s: dropping it: %s", tpl_label(t), j->err.text);
		t->state = T_READY;
		return;
	}
	log_info("template %s dropped (%s)", tpl_label(t), t->db);
	t->state = T_ABSENT;
	t->touched = 0;
	if (t->ehead || t->fx_waiting.n) {
		next_builder(pg, t);
		return;
	}
	for (pp = &pg->templates; *pp != t; pp = &(*pp)->next)
		;
	*pp = t->next;
	for (size_t i = 0; i < pg->conf.ntemplates; i++)
		if (pg->current[i] == t)
			pg->current[i] = NULL;
	pool_free_template(t);
	free(t->ddl);
	free(t);
}

/* 1 if GC may drop t: ready, unused in this run, holding no clone, wanted by no one. */
static int
droppable(struct pg *pg, struct pg_template *t)
{
	if (t->state != T_READY || t->empty || t->in_use || pool_total(t) || t->ehead ||
	    t->fx_waiting.n || t->shared_state == SH_PREPARING)
		return 0;
	for (size_t i = 0; i < pg->conf.ntemplates; i++)
		if (pg->current[i] == t)
			return 0;
	return 1;
}

static void
drop_template(struct pg *pg, struct pg_template *t, const char *why)
{
	struct pg_job *j = pg_job_new(PG_J_BG, "dropping a template", sql_template_drop, drop_done, t);

	if (!j)
		return;
	log_info("template %s: dropping it (%s)", tpl_label(t), why);
	t->state = T_DROPPING;
	snprintf(j->tpl, sizeof j->tpl, "%s", t->db);
	snprintf(j->shared, sizeof j->shared, "%s", t->shared);
	snprintf(j->owner_role, sizeof j->owner_role, "%s", t->owner);
	snprintf(j->role, sizeof j->role, "%s", t->group);
	pg_submit(pg, j);
}

static int
by_use(const void *a, const void *b)
{
	const struct pg_template *x = *(struct pg_template *const *)a;
	const struct pg_template *y = *(struct pg_template *const *)b;

	/* Most recent first: by the recorded second, then by this run's finer clock. */
	if (x->used_s != y->used_s)
		return x->used_s < y->used_s ? 1 : -1;
	return x->last_use_ms < y->last_use_ms ? 1 : x->last_use_ms > y->last_use_ms ? -1 : 0;
}

void
tpl_gc(struct pg *pg)
{
	struct pg_template *t, **v;
	int64_t now = (int64_t)time(NULL);
	size_t n = 0, k = 0;

	if (pg->closing || pg->state != PG_READY)
		return;
	for (t = pg->templates; t; t = t->next)
		n++;
	if (!(v = calloc(n + 1, sizeof *v)))
		return;
	for (t = pg->templates; t; t = t->next) {
		/* An outdated version of a configured template goes once nothing uses it. */
		if (t->conf || (!t->empty && t->key[0] && pg_conf_template(&pg->conf, t->key) == NULL &&
		    t->inputs[0])) {
			if (droppable(pg, t))
				drop_template(pg, t, "a newer version of it is configured");
			continue;
		}
		if (t->state == T_READY && !t->empty)
			v[k++] = t;
	}
	qsort(v, k, sizeof *v, by_use);
	for (size_t i = 0; i < k; i++) {
		int old = now - v[i]->used_s > pg->conf.gc_max_age_ms / 1000;
		if ((i >= (size_t)pg->conf.gc_keep || old) && droppable(pg, v[i]))
			drop_template(pg, v[i], old ? "unused for longer than postgres.gc.max_age_ms"
			    : "more templates than postgres.gc.keep");
	}
	free(v);
}

void
tpl_free_all(struct pg *pg)
{
	struct pg_template *t;

	while ((t = pg->templates)) {
		pg->templates = t->next;
		if (t->idle_armed)
			lws_sul_cancel(&t->idle);
		while (t->ehead) {
			struct pg_ensure *e = t->ehead;
			ensure_unlink(t, e);
			free(e);
		}
		pool_free_template(t);
		free(t->ddl);
		free(t);
	}
}

static json_t *
pool_json(const struct pg_pool *p)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "ready", (json_int_t)p->ready.n,
	    "leased", (json_int_t)p->leased, "cloning", (json_int_t)p->cloning,
	    "dropping", (json_int_t)p->dropping, "waiting", (json_int_t)p->waiting.n,
	    "served_ready", (json_int_t)p->served_ready, "served_waited",
	    (json_int_t)p->served_waited, "clone_failures", (json_int_t)p->clone_failures);
}

json_t *
tpl_status_json(struct pg_template *t)
{
	static const char *const states[] = { "absent", "building", "ready", "dropping" };
	size_t parked = 0;
	char builder[32] = "";

	for (struct pg_ensure *e = t->ehead; e; e = e->next)
		parked++;
	if (t->state == T_BUILDING && t->builder)
		snprintf(builder, sizeof builder, "s-%llu", (unsigned long long)t->builder);
	return json_pack("{s:s, s:b, s:b, s:s, s:s, s:b, s:o, s:I, s:I, s:o, s:o}", "template",
	    tpl_label(t), "configured", t->conf != NULL, "empty", t->empty, "state",
	    states[t->state], "database", t->db, "in_use", t->in_use,
	    "builder", builder[0] ? json_string(builder) : json_null(),
	    "waiting_ensures", (json_int_t)parked, "waiting_acquires", (json_int_t)t->fx_waiting.n,
	    "database_pool", pool_json(&t->pools[0]), "schema_pool", pool_json(&t->pools[1]));
}
