/* pg_worker.c: the PostgreSQL worker threads, their queue, and their connections.
 *
 * The loop submits jobs; each worker thread takes one at a time, runs it with its own
 * admin connection (and a few cached connections to other databases), puts it on the done
 * list and calls lws_cancel_service(), the one lws call allowed off the loop; the loop
 * then runs the job's done function from broker_wake(). Until the init job has run (the
 * gate), nothing else is taken. Foreground jobs (someone waits for them) go first; pool
 * refills run at most postgres.pool.refill_parallelism at a time, other background work
 * one at a time. A connection the server closed while it sat idle (a restart) is noticed
 * before the next statement and opened again, so a job fails only when PostgreSQL fails
 * while the job runs.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg_int.h"
#include "rpc.h"

#define SIDE_CONNS 4

struct pg_worker {
	struct pg *pg;
	pthread_t thread;
	PGconn *admin;
	struct {
		char db[PG_NAME];
		PGconn *c;
	} side[SIDE_CONNS];
	unsigned next_side;
};

struct pg *
w_pg(struct pg_worker *w)
{
	return w->pg;
}

struct pg_job *
pg_job_new(enum pg_jclass cls, const char *what, pg_run_fn run, pg_done_fn done, void *owner)
{
	struct pg_job *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	j->cls = cls;
	j->what = what;
	j->run = run;
	j->done = done;
	j->owner = owner;
	return j;
}

void
pg_job_free(struct pg_job *j)
{
	if (!j)
		return;
	error_clear(&j->err);
	json_decref(j->result);
	free(j->text);
	free(j);
}

/* 1 if the server closed c while it was idle. A server that shuts down sends a FATAL
 * message and then closes: one read takes the message and leaves the connection looking
 * fine, so keep reading while the idle socket is readable, until the end of file shows. */
static int
went_away(PGconn *c)
{
	struct pollfd p = { PQsocket(c), POLLIN, 0 };

	if (PQstatus(c) != CONNECTION_OK || p.fd < 0)
		return 1;
	for (int reads = 0; reads < 8 && poll(&p, 1, 0) > 0; reads++) {
		if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)
			return 1;
		if (p.revents & (POLLHUP | POLLERR))
			return 1;
	}
	return 0;
}

static void
quiet_notices(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *
connect_to(const char *conninfo, struct pg_job *j)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK) {
		char msg[200];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		error_set(&j->err, ERR_PG_UNAVAILABLE, "PostgreSQL is unavailable: %s", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet_notices, NULL);
	return c;
}

/* Keeps this instance's advisory lock held (again, after a server restart). Returns 0, or
 * -1 with j->err set. */
static int
hold_lock(struct pg *pg, struct pg_job *j)
{
	char sql[128];
	PGresult *r;
	int ok;

	pthread_mutex_lock(&pg->lock_mu);
	if (pg->lockconn && !went_away(pg->lockconn)) {
		pthread_mutex_unlock(&pg->lock_mu);
		return 0;
	}
	PQfinish(pg->lockconn);
	if (!(pg->lockconn = connect_to(pg->conninfo, j))) {
		pthread_mutex_unlock(&pg->lock_mu);
		return -1;
	}
	/* One key per instance: 'fxb' and the instance id's low 32 bits. */
	snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(6715490, x'%.8s'::int)",
	    pg->inst + strlen(pg->inst) - 8);
	r = PQexec(pg->lockconn, sql);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!ok) {
		error_set(&j->err, ERR_PG_UNAVAILABLE, "another broker holds instance %s's advisory lock "
		    "on this PostgreSQL server: two brokers share one state directory's instance",
		    pg->inst);
		PQfinish(pg->lockconn);
		pg->lockconn = NULL;
	}
	pthread_mutex_unlock(&pg->lock_mu);
	return ok ? 0 : -1;
}

PGconn *
w_admin(struct pg_worker *w, struct pg_job *j)
{
	if (w->admin && went_away(w->admin)) {
		PQfinish(w->admin);
		w->admin = NULL;
	}
	if (!w->admin && !(w->admin = connect_to(w->pg->conninfo, j)))
		return NULL;
	if (hold_lock(w->pg, j) == -1)
		return NULL;
	return w->admin;
}

char *
pg_conninfo_db(const char *admin, const char *db)
{
	PQconninfoOption *opts = PQconninfoParse(admin, NULL), *o;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (!opts || !(f = open_memstream(&out, &len))) {
		PQconninfoFree(opts);
		return NULL;
	}
	for (o = opts; o->keyword; o++) {
		const char *v = !strcmp(o->keyword, "dbname") ? db : o->val;
		if (!v)
			continue;
		fprintf(f, "%s='", o->keyword);
		for (; *v; v++)
			fprintf(f, "%s%c", *v == '\'' || *v == '\\' ? "\\" : "", *v);
		fputs("' ", f);
	}
	PQconninfoFree(opts);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

PGconn *
w_db(struct pg_worker *w, struct pg_job *j, const char *db)
{
	char *ci;
	unsigned i;

	for (i = 0; i < SIDE_CONNS; i++) {
		if (!w->side[i].c || strcmp(w->side[i].db, db) != 0)
			continue;
		if (!went_away(w->side[i].c))
			return w->side[i].c;
		PQfinish(w->side[i].c);
		w->side[i].c = NULL;
		break;
	}
	if (i == SIDE_CONNS)
		i = w->next_side++ % SIDE_CONNS;
	PQfinish(w->side[i].c);
	w->side[i].c = NULL;
	if (!(ci = pg_conninfo_db(w->pg->conninfo, db))) {
		error_set(&j->err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	w->side[i].c = connect_to(ci, j);
	free(ci);
	snprintf(w->side[i].db, sizeof w->side[i].db, "%s", db);
	return w->side[i].c;
}

void
w_forget_db(struct pg_worker *w, const char *db)
{
	for (unsigned i = 0; i < SIDE_CONNS; i++) {
		if (w->side[i].c && !strcmp(w->side[i].db, db)) {
			PQfinish(w->side[i].c);
			w->side[i].c = NULL;
		}
	}
}

/* Fills j->err from a failed statement. */
static void
failed(struct pg_worker *w, PGconn *c, PGresult *r, struct pg_job *j, const char *what)
{
	char msg[200];
	const char *m = r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : PQerrorMessage(c);

	snprintf(msg, sizeof msg, "%s", m);
	msg[strcspn(msg, "\n")] = '\0';
	if (!strncmp(msg, "ERROR:  ", 8))
		memmove(msg, msg + 8, strlen(msg + 8) + 1);
	if (PQstatus(c) != CONNECTION_OK) {
		error_set(&j->err, ERR_PG_UNAVAILABLE, "PostgreSQL went away during %s: %s", what, msg);
		if (c == w->admin) {
			PQfinish(w->admin);
			w->admin = NULL;
		}
		return;
	}
	error_set(&j->err, ERR_PG_ERROR, "%s failed: %s", what, msg);
}

PGresult *
w_query(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *what, const char *sql,
    int nparams, const char *const *params)
{
	PGresult *r = nparams ? PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
	    : PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	failed(w, c, r, j, what);
	PQclear(r);
	return NULL;
}

int
w_cmd(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *what, const char *sql)
{
	PGresult *r = w_query(w, c, j, what, sql, 0, NULL);

	PQclear(r);
	return r ? 0 : -1;
}

int
w_ident(PGconn *c, const char *name, char *out, size_t cap)
{
	char *q = PQescapeIdentifier(c, name, strlen(name));
	int rc = -1;

	if (q && strlen(q) < cap) {
		strcpy(out, q);
		rc = 0;
	}
	PQfreemem(q);
	return rc;
}

/* The next job this worker may take, under pg->mu. */
static struct pg_job *
pick(struct pg *pg)
{
	struct pg_job *j, *prev = NULL, *best = NULL, *best_prev = NULL;

	for (j = pg->qhead; j; prev = j, j = j->qnext) {
		if (!pg->gate && !j->init)
			continue;
		if (j->cls == PG_J_FG || j->init) {
			best = j;
			best_prev = prev;
			break;
		}
		if (best)
			continue;
		if ((j->cls == PG_J_CLONE && pg->running[PG_J_CLONE] < pg->conf.refill_parallelism) ||
		    (j->cls == PG_J_BG && pg->running[PG_J_BG] < 1)) {
			best = j;
			best_prev = prev;
		}
	}
	if (!best)
		return NULL;
	if (best_prev)
		best_prev->qnext = best->qnext;
	else
		pg->qhead = best->qnext;
	if (pg->qtail == best)
		pg->qtail = best_prev;
	best->qnext = NULL;
	pg->queued--;
	return best;
}

/* A worker thread: takes jobs until told to stop, runs each, hands it to the loop. */
static void *
work(void *arg)
{
	struct pg_worker *w = arg;
	struct pg *pg = w->pg;

	pthread_mutex_lock(&pg->mu);
	while (!pg->stop) {
		struct pg_job *j = pick(pg);
		struct timespec t0, t1;

		if (!j) {
			pthread_cond_wait(&pg->cond, &pg->mu);
			continue;
		}
		pg->running[j->cls]++;
		pthread_mutex_unlock(&pg->mu);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		j->run(w, j);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (j->ms == 0)
			j->ms = (double)(t1.tv_sec - t0.tv_sec) * 1000.0 +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		pthread_mutex_lock(&pg->mu);
		pg->running[j->cls]--;
		if (pg->dtail)
			pg->dtail->qnext = j;
		else
			pg->dhead = j;
		pg->dtail = j;
		pthread_cond_broadcast(&pg->cond);
		pthread_cond_broadcast(&pg->progress);
		pthread_mutex_unlock(&pg->mu);
		lws_cancel_service(pg->b->ctx);
		pthread_mutex_lock(&pg->mu);
	}
	pthread_mutex_unlock(&pg->mu);
	PQfinish(w->admin);
	for (unsigned i = 0; i < SIDE_CONNS; i++)
		PQfinish(w->side[i].c);
	return NULL;
}

int
pg_workers_start(struct pg *pg, struct fxb_error *err)
{
	if (pg->workers)
		return 0;
	if (!(pg->workers = calloc((size_t)pg->conf.workers, sizeof *pg->workers))) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return -1;
	}
	for (int i = 0; i < pg->conf.workers; i++) {
		pg->workers[i].pg = pg;
		if (pthread_create(&pg->workers[i].thread, NULL, work, &pg->workers[i]) != 0) {
			error_set(err, ERR_INTERNAL, "cannot start a PostgreSQL worker thread");
			break;
		}
		pg->nworkers++;
	}
	return pg->nworkers ? 0 : -1;
}

void
pg_workers_stop(struct pg *pg)
{
	pthread_mutex_lock(&pg->mu);
	pg->stop = 1;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->mu);
	for (int i = 0; i < pg->nworkers; i++)
		pthread_join(pg->workers[i].thread, NULL);
	free(pg->workers);
	pg->workers = NULL;
	pg->nworkers = 0;
	pthread_mutex_lock(&pg->lock_mu);
	PQfinish(pg->lockconn);
	pg->lockconn = NULL;
	pthread_mutex_unlock(&pg->lock_mu);
}

void
pg_submit(struct pg *pg, struct pg_job *j)
{
	j->next = pg->under_way;
	j->prev = NULL;
	if (pg->under_way)
		pg->under_way->prev = j;
	pg->under_way = j;
	pg->njobs++;
	pthread_mutex_lock(&pg->mu);
	if (pg->qtail)
		pg->qtail->qnext = j;
	else
		pg->qhead = j;
	pg->qtail = j;
	pg->queued++;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->mu);
}

void
pg_drain(struct pg *pg)
{
	struct pg_job *list, *j;

	pthread_mutex_lock(&pg->mu);
	list = pg->dhead;
	pg->dhead = pg->dtail = NULL;
	pthread_mutex_unlock(&pg->mu);
	while ((j = list)) {
		list = j->qnext;
		if (j->prev)
			j->prev->next = j->next;
		else
			pg->under_way = j->next;
		if (j->next)
			j->next->prev = j->prev;
		pg->njobs--;
		if (j->err.code)
			log_debug("%s: %s", j->what, j->err.text);
		j->done(pg, j);
		pg_job_free(j);
	}
}

void
pg_wait_idle(struct pg *pg)
{
	for (;;) {
		struct timespec until;

		pg_drain(pg);
		pthread_mutex_lock(&pg->mu);
		if (!pg->njobs || !pg->workers) {
			pthread_mutex_unlock(&pg->mu);
			return;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (!pg->dhead)
			pthread_cond_timedwait(&pg->progress, &pg->mu, &until);
		pthread_mutex_unlock(&pg->mu);
	}
}

void
pg_jobs_forget_session(struct pg *pg, struct session *s)
{
	struct fxb_error err = { 0 };

	for (struct pg_job *j = pg->under_way; j; j = j->next) {
		if (!j->call || j->call_s != s)
			continue;
		error_set(&err, ERR_ACQUIRE_CANCELLED, "the session ended while %s was under way",
		    j->what);
		rpc_call_fail(j->call, &err);
		error_clear(&err);
		j->call = NULL;
		j->call_s = NULL;
	}
}
