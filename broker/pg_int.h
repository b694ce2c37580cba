/* pg_int.h: what the PostgreSQL modules (pg.c, pg_worker.c, pg_sql.c, pg_build.c,
 * pg_template.c, pg_pool.c) share, and nothing outside them includes.
 *
 * Threads: struct pg and everything hanging from it belong to the event loop, except the
 * job queue (pg->mu) and what a job carries while a worker runs it. A job is filled on the
 * loop (its inputs are copies), run on a worker thread with that worker's own
 * connections (pg_sql.c and pg_build.c, which touch nothing else), and handed back to the
 * loop, where its done function updates the state (pg_template.c, pg_pool.c). A job's
 * owner and call pointers are only ever read or written on the loop.
 */
#ifndef FXB_PG_INT_H
#define FXB_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

#include "broker.h"
#include "lease.h"
#include "pg.h"
#include "pg_conf.h"

#define PG_NAME 64
#define PG_PASSWORD 33 /* 32 hex digits */

enum pg_iso { PG_ISO_DATABASE, PG_ISO_SCHEMA };
enum pg_state { PG_OFF, PG_STARTING, PG_READY, PG_FAILED };
enum pg_tstate { T_ABSENT, T_BUILDING, T_READY, T_DROPPING };
enum pg_jclass { PG_J_FG, PG_J_CLONE, PG_J_BG, PG_J_NCLASS };

struct pg_template;
struct pg_fx;
struct pg_worker;
struct pg_job;

/* One clone: a database (or a schema in its template's shared database) and its role. */
struct pg_entry {
	struct pg_entry *next, *prev;
	struct pg_template *t;
	enum pg_iso iso;
	char db[PG_NAME], role[PG_NAME], schema[PG_NAME], password[PG_PASSWORD];
	char shared[PG_NAME]; /* schema isolation: the database holding the schema */
	int conn_limit;
	struct pg_fx *fx; /* the fixture it serves, while leased */
};

struct pg_list {
	struct pg_entry *head, *tail;
	size_t n;
};

struct pg_fxlist {
	struct pg_fx *head, *tail;
	size_t n;
};

/* The clones of one template and one isolation. */
struct pg_pool {
	enum pg_iso iso;
	struct pg_list ready;
	size_t leased, cloning, dropping;
	struct pg_fxlist waiting; /* fixtures (acquires and resets) waiting for a clone */
	uint64_t served_ready, served_waited, clone_failures;
	struct histogram clone_seconds, wait_seconds;
	lws_sorted_usec_list_t retry; /* refill again after a failed clone */
	int retry_armed;
	int retry_ms;
};

/* A parked pg.template.ensure call. */
struct pg_ensure {
	struct pg_ensure *next, *prev;
	struct pg_template *t;
	struct pg *pg;
	struct rpc_call *call;
	struct session *s;
	lws_sorted_usec_list_t deadline;
};

struct pg_template {
	struct pg_template *next;
	struct pg *pg;
	char key[129];   /* the client's hash, the configured name, or "" for no template */
	const struct pg_tpl_conf *conf; /* broker-built from the configuration, or NULL */
	char inputs[17]; /* for a configured one: the hash of what it was built from */
	char tid[17];
	char db[PG_NAME], owner[PG_NAME], build[PG_NAME], shared[PG_NAME];
	char group[PG_NAME]; /* schema isolation: the role its leases' roles join to connect */
	enum pg_tstate state;
	int empty;       /* the broker's empty template, for leases that name none */
	int64_t created_s, used_s; /* from its comment, wall clock */

	/* While building. */
	uint64_t builder;           /* the building session's id; 0: the broker builds */
	struct rpc_call *builder_call; /* the builder's ensure, until its database exists */
	int build_job;              /* a job of the build is running */
	int build_ready;            /* the build database exists */
	int handover;               /* the builder's session ended during a job */
	char build_password[PG_PASSWORD];
	struct pg_ensure *ehead, *etail; /* parked ensure calls */
	struct pg_fxlist fx_waiting;     /* acquires waiting for it to be ready */

	struct pg_pool pools[2];
	int in_use;     /* asked for in this run: its pools are kept warm */
	int touched;    /* its comment's used_at was updated in this run */
	uint64_t last_use_ms;
	lws_sorted_usec_list_t idle;
	int idle_armed;

	/* Schema isolation: the shared database and the template's DDL. */
	enum { SH_NONE, SH_PREPARING, SH_READY } shared_state;
	char *ddl;
};

/* The postgres fixture's data (f->data). */
struct pg_fx {
	struct pg *pg;
	struct fixture *f;
	char key[129];
	enum pg_iso iso;
	int connections;
	struct pg_template *t;
	struct pg_entry *e;
	struct pg_entry *old;        /* the entry a reset replaces */
	struct pg_fx *wnext, *wprev;
	struct pg_fxlist *in;        /* the list it waits in, or NULL */
	uint64_t wait_since_ms;
	struct rpc_call *reset_call; /* lease.reset waiting for its clone */
	int job;                     /* a job on its entry is running */
	int stopping;                /* stop() came while that job ran */
	lws_sorted_usec_list_t deadline;
	int deadline_armed;
};

/* A call made before PostgreSQL was ready, run again once it is. */
struct pg_deferred {
	struct pg_deferred *next;
	int method; /* PG_M_* */
	char key[129];
	int64_t wait_ms;
	struct rpc_call *call;
	struct session *s;
};
enum { PG_M_ENSURE, PG_M_FINISH, PG_M_DISCARD, PG_M_STATUS };

typedef void (*pg_run_fn)(struct pg_worker *w, struct pg_job *j);
typedef void (*pg_done_fn)(struct pg *pg, struct pg_job *j);

struct pg_job {
	struct pg_job *next, *prev; /* in the loop's list of jobs under way */
	struct pg_job *qnext;       /* in the worker queue, or the done list */
	enum pg_jclass cls;
	int init;                   /* may run before the gate opens */
	pg_run_fn run;
	pg_done_fn done;
	const char *what;           /* for logs */

	/* Loop side only. */
	void *owner;
	struct rpc_call *call;
	struct session *call_s;

	/* Inputs (copies) and outputs. */
	char db[PG_NAME], role[PG_NAME], schema[PG_NAME], tpl[PG_NAME], owner_role[PG_NAME];
	char shared[PG_NAME];
	char password[PG_PASSWORD];
	char key[129];
	char inputs[17];
	char tid[17];
	int n;
	int iso;
	int empty;
	const struct pg_tpl_conf *conf;
	char *text;      /* DDL in or out, a migrate command's output */
	json_t *result;
	double ms;       /* how long the main statement took */
	struct fxb_error err;
};

struct pg {
	struct broker *b;
	struct pg_conf conf;
	enum pg_state state;
	struct fxb_error init_err;
	uint64_t failed_ms;
	int closing;
	char inst[17];
	char prefix[32];
	int embedded;
	int port_taken;  /* the embedded cluster's port, from the pool */
	uint16_t port;
	int port_tries;

	/* Set by the init job, read-only afterwards. */
	char conninfo[2048];     /* the admin connection */
	char client_host[256];   /* what lease URLs name */
	int client_port;
	int server_version;
	int superuser;
	struct pgembed *embed;
	char bindir[1024];       /* for pg_dump */

	struct pg_template *templates;
	struct pg_template **current; /* per configured template: the one built last */
	size_t nclones;               /* every clone, ready or leased or being made */
	struct pg_fxlist init_waiting;
	struct pg_deferred *deferred;
	struct pg_job *under_way;     /* jobs submitted and not done */
	size_t njobs;
	struct pg_list dropping_lost; /* drops that failed, retried later */
	lws_sorted_usec_list_t gc_timer;
	int gc_armed;
	lws_sorted_usec_list_t drop_retry;
	int drop_retry_armed;

	/* Worker threads and the queue, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;      /* work queued, or a slot freed */
	pthread_cond_t progress;  /* a job finished */
	struct pg_worker *workers;
	int nworkers;
	int stop;
	int gate;                 /* open once the init job is done */
	struct pg_job *qhead, *qtail;
	struct pg_job *dhead, *dtail;
	int running[PG_J_NCLASS];
	size_t queued;

	/* The session holding this instance's advisory lock, under lock_mu. */
	pthread_mutex_t lock_mu;
	PGconn *lockconn;
};

/* ---- pg_worker.c: threads, the queue, connections ---- */
int pg_workers_start(struct pg *pg, struct fxb_error *err);
void pg_workers_stop(struct pg *pg);
/* Queues j (taken); its done function runs on the loop. */
void pg_submit(struct pg *pg, struct pg_job *j);
/* Runs the done functions of finished jobs, on the loop. */
void pg_drain(struct pg *pg);
/* Waits (on the loop thread, outside lws_service) until no job is queued or running. */
void pg_wait_idle(struct pg *pg);
struct pg_job *pg_job_new(enum pg_jclass cls, const char *what, pg_run_fn run,
    pg_done_fn done, void *owner);
void pg_job_free(struct pg_job *j);
/* Forgets the calls of session s that jobs under way would answer. */
void pg_jobs_forget_session(struct pg *pg, struct session *s);

/* Worker side. The admin connection (NULL with j->err set); a connection to db. */
PGconn *w_admin(struct pg_worker *w, struct pg_job *j);
PGconn *w_db(struct pg_worker *w, struct pg_job *j, const char *db);
/* Forgets the cached connection to db (before dropping it). */
void w_forget_db(struct pg_worker *w, const char *db);
/* Runs sql; on failure fills j->err (PG_UNAVAILABLE when the connection is lost,
 * PG_ERROR otherwise), saying what failed. Returns 0 or -1; w_query returns the result
 * (PQclear it) or NULL. */
int w_cmd(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *what, const char *sql);
PGresult *w_query(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *what,
    const char *sql, int nparams, const char *const *params);
/* Quotes name with PQescapeIdentifier into out (at least 2 * PG_NAME + 3). Returns 0/-1. */
int w_ident(PGconn *c, const char *name, char *out, size_t cap);
/* The broker's pg (for the job bodies' settings). */
struct pg *w_pg(struct pg_worker *w);
/* Builds conninfo (keyword='value') from the admin's with dbname replaced. Returns a
 * malloc'd string or NULL. */
char *pg_conninfo_db(const char *admin, const char *db);

/* ---- pg_sql.c and pg_build.c: the job bodies, on worker threads ---- */
void sql_init(struct pg_worker *w, struct pg_job *j);
void sql_sweep(struct pg_worker *w, struct pg_job *j);
void sql_build_prepare(struct pg_worker *w, struct pg_job *j);
void sql_build_finish(struct pg_worker *w, struct pg_job *j);
void sql_build_discard(struct pg_worker *w, struct pg_job *j);
void sql_migrate(struct pg_worker *w, struct pg_job *j);
void sql_resolve(struct pg_worker *w, struct pg_job *j);
void sql_clone(struct pg_worker *w, struct pg_job *j);
void sql_drop(struct pg_worker *w, struct pg_job *j);
void sql_conn_limit(struct pg_worker *w, struct pg_job *j);
void sql_schema_setup(struct pg_worker *w, struct pg_job *j);
void sql_template_drop(struct pg_worker *w, struct pg_job *j);
void sql_touch(struct pg_worker *w, struct pg_job *j);
/* A random password (32 hex digits). Returns 0 or -1. */
int pg_password(char out[PG_PASSWORD]);
/* Helpers the job bodies share (pg_sql.c). Each returns 0 or -1 with j->err set (sql_exists:
 * the number of rows, or -1). sql_ident's out holds at least 2 * PG_NAME + 3 bytes. */
int sql_fmt(char *buf, size_t cap, struct pg_job *j, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
int sql_ident(PGconn *c, struct pg_job *j, const char *name, char *out);
int sql_exists(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *sql,
    const char *name);
int sql_drop_database(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *db);
/* Runs sql and ignores its outcome (cleanup after a failure). */
void sql_try(PGconn *c, const char *sql);

/* ---- pg_template.c: templates, builds, ensure/finish/discard, GC ---- */
struct pg_template *tpl_find_tid(struct pg *pg, const char *tid);
/* The template for a client hash (created absent if unknown). NULL when out of memory. */
struct pg_template *tpl_for_hash(struct pg *pg, const char *key);
struct pg_template *tpl_empty(struct pg *pg);
/* Adds the templates found by the init job. */
void tpl_load(struct pg *pg, json_t *list);
/* Makes the version of conf built from inputs its current one. */
void tpl_set_current(struct pg *pg, const struct pg_tpl_conf *conf, const char *inputs);
/* Makes t ready for fx: 0 when fx waits for it (parked), -1 with err. Broker-built and
 * empty templates are built on demand. */
int tpl_want(struct pg *pg, struct pg_template *t, struct pg_fx *fx, struct fxb_error *err);
/* A configured template's current version, resolving it first when needed: returns the
 * template, or NULL when fx was parked (resolution under way) or on error (err set). */
struct pg_template *tpl_configured(struct pg *pg, const struct pg_tpl_conf *conf,
    struct pg_fx *fx, struct fxb_error *err);
void tpl_mark_used(struct pg *pg, struct pg_template *t);
json_t *tpl_ensure(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    int64_t wait_ms, struct fxb_error *err);
json_t *tpl_finish(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    struct fxb_error *err);
json_t *tpl_discard(struct pg *pg, struct session *s, struct rpc_call *call, const char *key,
    struct fxb_error *err);
void tpl_cancel_session(struct pg *pg, struct session *s);
void tpl_session_ended(struct pg *pg, struct session *s);
void tpl_gc(struct pg *pg);
void tpl_free_all(struct pg *pg);
const char *tpl_label(const struct pg_template *t);
json_t *tpl_status_json(struct pg_template *t);

/* ---- pg_pool.c: pools, the fixture kind, reset ---- */
/* Serves fx from t's pool: 0 when fx is ready now (f->fields set), 1 when it will be
 * (parked or a job runs), -1 with err. */
int pool_take(struct pg *pg, struct pg_template *t, struct pg_fx *fx, struct fxb_error *err);
/* Starts the clones t's pools need. */
void pool_fill(struct pg *pg, struct pg_template *t);
/* t became ready, or failed (err): serves or fails the fixtures waiting for it. */
void pool_template_ready(struct pg *pg, struct pg_template *t, const struct fxb_error *err);
/* Resumes a fixture that waited for PostgreSQL to start (err: it failed). */
void pool_resume(struct pg *pg, struct pg_fx *fx, const struct fxb_error *err);
/* Drops every ready clone of t (idle shrink, GC, shutdown). */
void pool_shrink(struct pg *pg, struct pg_template *t);
void pool_free_template(struct pg_template *t);
size_t pool_total(const struct pg_template *t);
void fxlist_add(struct pg_fxlist *l, struct pg_fx *fx);
void fxlist_del(struct pg_fx *fx);

/* ---- pg.c ---- */
/* Starts PostgreSQL (the embedded cluster or the admin connection) in the background if
 * it is not started yet. */
void pg_kick(struct pg *pg);
/* Fails every call and fixture waiting for the start; for the modules above. */
void pg_set_unavailable(struct fxb_error *err, const struct pg *pg);

#endif
