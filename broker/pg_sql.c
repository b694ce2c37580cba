/* pg_sql.c: the PostgreSQL work itself, one function per job, run on worker threads.
 *
 * The start (the embedded cluster, the admin connection), the sweep, clones and drops,
 * connection limits, schema isolation and template drops; template builds are in
 * pg_build.c. Each function reads its job's inputs, works through the worker's connections, and
 * writes its outputs and j->err; it touches no loop state (pg_int.h says which fields of
 * struct pg are read-only by then). Every identifier goes through PQescapeIdentifier and
 * every literal through PQescapeLiteral or a bound parameter, even the broker's own names.
 * A job that fails part-way undoes what it made when it can; what it cannot undo (the
 * server went away) carries the instance's prefix and is swept at the next start.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg_int.h"
#include "pgembed.h"
#include "pgproc.h"

#define Q (2 * PG_NAME + 3)
#define SCHEMA_MARK '\x01'

extern char **environ;

int
pg_password(char out[PG_PASSWORD])
{
	return random_hex(out, (PG_PASSWORD - 1) / 2);
}

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Formats a statement into buf; -1 with j->err when it does not fit. */
int
sql_fmt(char *buf, size_t cap, struct pg_job *j, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		error_set(&j->err, ERR_INTERNAL, "a statement is too long");
		return -1;
	}
	return 0;
}

/* Runs sql, ignoring failures (cleanup); a lost connection still shows in PQstatus. */
void
sql_try(PGconn *c, const char *sql)
{
	PQclear(PQexec(c, sql));
}

int
sql_ident(PGconn *c, struct pg_job *j, const char *name, char *out)
{
	if (w_ident(c, name, out, Q) == -1) {
		error_set(&j->err, ERR_INTERNAL, "cannot quote %s", name);
		return -1;
	}
	return 0;
}

int
sql_exists(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *sql, const char *name)
{
	const char *p[1] = { name };
	PGresult *r = w_query(w, c, j, "a catalog lookup", sql, 1, p);
	int n = r ? PQntuples(r) : -1;

	PQclear(r);
	return n;
}

/* Drops a database, first un-marking it as a template. */
int
sql_drop_database(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *db)
{
	char q[Q], sql[256];
	int n;

	w_forget_db(w, db);
	if (sql_ident(c, j, db, q) == -1)
		return -1;
	n = sql_exists(w, c, j, "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate", db);
	if (n < 0)
		return -1;
	if (n > 0 && (sql_fmt(sql, sizeof sql, j, "ALTER DATABASE %s IS_TEMPLATE false", q) == -1 ||
	    w_cmd(w, c, j, "un-marking a template", sql) == -1))
		return -1;
	if (sql_fmt(sql, sizeof sql, j, "DROP DATABASE IF EXISTS %s WITH (FORCE)", q) == -1)
		return -1;
	return w_cmd(w, c, j, "DROP DATABASE", sql);
}

/* Disables role and ends its sessions (it may be gone already). */
static int
disable_role(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *role)
{
	const char *p[1] = { role };
	char q[Q], sql[256];
	PGresult *r;
	int n = sql_exists(w, c, j, "SELECT 1 FROM pg_roles WHERE rolname = $1", role);

	if (n <= 0)
		return n;
	if (sql_ident(c, j, role, q) == -1 ||
	    sql_fmt(sql, sizeof sql, j, "ALTER ROLE %s NOLOGIN", q) == -1 ||
	    w_cmd(w, c, j, "disabling a role", sql) == -1)
		return -1;
	r = w_query(w, c, j, "ending a role's sessions", "SELECT pg_terminate_backend(pid) FROM "
	    "pg_stat_activity WHERE usename = $1", 1, p);
	PQclear(r);
	return r ? 0 : -1;
}

static int
drop_role(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *role)
{
	char q[Q], sql[256];

	if (sql_ident(c, j, role, q) == -1 || sql_fmt(sql, sizeof sql, j, "DROP ROLE IF EXISTS %s", q) == -1)
		return -1;
	return w_cmd(w, c, j, "DROP ROLE", sql);
}

/* Drops what a previous run of this instance left, keeping finished templates and their
 * owner roles; puts the kept templates in j->result as [{"db", "comment"}]. */
static void
sweep(struct pg_worker *w, PGconn *c, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	const char *p[1] = { pg->prefix };
	PGresult *dbs, *roles;
	json_t *kept = json_array();
	int dropped = 0;

	dbs = w_query(w, c, j, "listing databases", "SELECT datname, datistemplate, "
	    "coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
	    "WHERE starts_with(datname, $1) ORDER BY datname", 1, p);
	if (!dbs || !kept) {
		json_decref(kept);
		PQclear(dbs);
		return;
	}
	for (int i = 0; i < PQntuples(dbs) && !j->err.code; i++) {
		const char *name = PQgetvalue(dbs, i, 0), *comment = PQgetvalue(dbs, i, 2);
		char tid[17];
		char kind = pg_object_parse(name, pg->inst, tid);
		json_t *meta = json_loads(comment, 0, NULL);

		if (kind == 't' && !strcmp(PQgetvalue(dbs, i, 1), "t") && json_object_get(meta, "fxb")) {
			json_array_append_new(kept, json_pack("{s:s, s:s, s:s}", "db", name, "tid", tid,
			    "comment", comment));
		} else if (sql_drop_database(w, c, j, name) == 0) {
			dropped++;
		} else if (j->err.code == ERR_PG_ERROR) {
			log_warnx("sweeping %s: %s", name, j->err.text);
			error_clear(&j->err);
		}
		json_decref(meta);
	}
	PQclear(dbs);
	roles = j->err.code ? NULL : w_query(w, c, j, "listing roles",
	    "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname", 1, p);
	for (int i = 0; roles && i < PQntuples(roles) && !j->err.code; i++) {
		const char *name = PQgetvalue(roles, i, 0);
		char tid[17];
		char kind = pg_object_parse(name, pg->inst, tid);
		size_t k;
		json_t *t;
		int keep = 0;

		json_array_foreach(kept, k, t)
			keep |= kind == 'o' && !strcmp(json_string_value(json_object_get(t, "tid")), tid);
		if (keep)
			continue;
		if (disable_role(w, c, j, name) == 0 && drop_role(w, c, j, name) == 0)
			dropped++;
		else if (j->err.code == ERR_PG_ERROR) {
			log_warnx("sweeping role %s: %s", name, j->err.text);
			error_clear(&j->err);
		}
	}
	PQclear(roles);
	if (dropped)
		log_info("swept %d database(s) and role(s) of instance %s; kept %zu template(s)",
		    dropped, pg->inst, json_array_size(kept));
	if (j->err.code) {
		json_decref(kept);
		return;
	}
	j->result = kept;
}

void
sql_init(struct pg_worker *w, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	struct broker *b = pg->b;
	PGresult *r;
	PGconn *c;

	if (pg->embedded) {
		if (!(pg->embed = pgembed_start(b->cfg.state_dir, pg->inst, pg->conf.embedded_user,
		    pg->port, &j->n, &j->err)))
			return;
		snprintf(pg->conninfo, sizeof pg->conninfo, "%s", pgembed_conninfo(pg->embed));
		snprintf(pg->client_host, sizeof pg->client_host, "127.0.0.1");
		pg->client_port = pg->port;
	} else {
		snprintf(pg->conninfo, sizeof pg->conninfo, "%s", b->cfg.pg_url);
	}
	if (!(c = w_admin(w, j)))
		return;
	if (!(r = w_query(w, c, j, "reading the server's version", "SELECT "
	    "current_setting('server_version_num')::int, rolsuper, rolcreatedb, rolcreaterole, "
	    "current_user FROM pg_roles WHERE rolname = current_user", 0, NULL)))
		return;
	pg->server_version = atoi(PQgetvalue(r, 0, 0));
	pg->superuser = !strcmp(PQgetvalue(r, 0, 1), "t");
	if (!pg->superuser && (strcmp(PQgetvalue(r, 0, 2), "t") || strcmp(PQgetvalue(r, 0, 3), "t")))
		error_set(&j->err, ERR_PG_UNAVAILABLE, "the PostgreSQL role %s needs CREATEDB and "
		    "CREATEROLE to serve fixtures", PQgetvalue(r, 0, 4));
	else if (pg->server_version < 130000)
		error_set(&j->err, ERR_PG_UNAVAILABLE, "PostgreSQL %d is too old: fixtures need 13 or "
		    "newer", pg->server_version / 10000);
	PQclear(r);
	if (j->err.code)
		return;
	if (!pg->embedded) {
		const char *h = PQhost(c);
		snprintf(pg->client_host, sizeof pg->client_host, "%s", h && *h ? h : "localhost");
		pg->client_port = atoi(PQport(c)) > 0 ? atoi(PQport(c)) : 5432;
	} else {
		snprintf(pg->bindir, sizeof pg->bindir, "%s", pgembed_bindir(pg->embed));
		/* The broker's own cluster: a lease's role may connect to its database alone. */
		if (w_cmd(w, c, j, "closing the maintenance databases", "REVOKE CONNECT, TEMPORARY ON "
		    "DATABASE postgres, template1 FROM PUBLIC") == -1)
			return;
	}
	sweep(w, c, j);
	if (j->err.code)
		return;
	/* The configured templates' versions: the hashes of their inputs as they are now. */
	{
		json_t *kept = j->result, *inputs = json_object(), *errors = json_object();
		for (size_t i = 0; i < pg->conf.ntemplates; i++) {
			struct pg_job tmp;
			memset(&tmp, 0, sizeof tmp);
			tmp.conf = &pg->conf.templates[i];
			sql_resolve(w, &tmp);
			if (tmp.err.code)
				json_object_set_new(errors, tmp.conf->name, json_string(tmp.err.text));
			else
				json_object_set_new(inputs, tmp.conf->name, json_string(tmp.inputs));
			error_clear(&tmp.err);
		}
		j->result = json_pack("{s:o, s:o, s:o}", "templates", kept, "inputs", inputs, "errors",
		    errors);
	}
}

void
sql_sweep(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);

	if (c)
		sweep(w, c, j);
}

/* Replaces each SCHEMA_MARK in ddl with the quoted schema. Returns a malloc'd string. */
static char *
ddl_for(const char *ddl, const char *qschema)
{
	size_t n = 0, ql = strlen(qschema);
	char *out, *o;

	for (const char *p = ddl; *p; p++)
		n += *p == SCHEMA_MARK ? ql : 1;
	if (!(o = out = malloc(n + 1)))
		return NULL;
	for (const char *p = ddl; *p; p++) {
		if (*p == SCHEMA_MARK) {
			memcpy(o, qschema, ql);
			o += ql;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* A new role for a clone, with a scram verifier computed here rather than a password in
 * the statement. */
static int
create_role(struct pg_worker *w, PGconn *c, struct pg_job *j, const char *in_role)
{
	char qr[Q], qo[Q], sql[1024], *enc = NULL, *lit = NULL;
	int rc = -1;

	if (sql_ident(c, j, j->role, qr) == -1 || (in_role && sql_ident(c, j, in_role, qo) == -1))
		return -1;
	if (!(enc = PQencryptPasswordConn(c, j->password, j->role, NULL)) ||
	    !(lit = PQescapeLiteral(c, enc, strlen(enc)))) {
		error_set(&j->err, ERR_INTERNAL, "cannot encrypt a password: %s", PQerrorMessage(c));
		goto out;
	}
	if (sql_fmt(sql, sizeof sql, j, "CREATE ROLE %s LOGIN PASSWORD %s CONNECTION LIMIT %d "
	    "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT%s%s", qr, lit,
	    j->n, in_role ? " IN ROLE " : "", in_role ? qo : "") == 0)
		rc = w_cmd(w, c, j, "creating a lease's role", sql);
out:
	PQfreemem(enc);
	PQfreemem(lit);
	return rc;
}

/* A clone for database isolation: the role, the database from the template with
 * connections off, then only the role may connect. */
static void
clone_database(struct pg_worker *w, PGconn *c, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	char qd[Q], qt[Q], qr[Q], sql[1024];
	double t0;

	if (sql_ident(c, j, j->db, qd) == -1 || sql_ident(c, j, j->tpl, qt) == -1 ||
	    sql_ident(c, j, j->role, qr) == -1 || create_role(w, c, j, j->owner_role) == -1)
		return;
	/* No connections until only the lease's role may make them. */
	if (sql_fmt(sql, sizeof sql, j, "CREATE DATABASE %s TEMPLATE %s%s ALLOW_CONNECTIONS false", qd,
	    qt, pg->server_version < 150000 ? "" : pg->conf.strategy == PG_STRATEGY_WAL_LOG
	    ? " STRATEGY WAL_LOG" : " STRATEGY FILE_COPY") == -1)
		return;
	t0 = mono_ms();
	if (w_cmd(w, c, j, "CREATE DATABASE", sql) == -1)
		return;
	j->ms = mono_ms() - t0;
	/* The clone counts as ready once this commits, so the commit must survive a crash of
	 * PostgreSQL even where synchronous_commit is off (the embedded test settings): a lost
	 * commit would leave a "ready" database that refuses every connection. With fsync off
	 * this costs one WAL write into the OS cache. */
	if (sql_fmt(sql, sizeof sql, j, "BEGIN; SET LOCAL synchronous_commit = on; REVOKE ALL ON "
	    "DATABASE %s FROM PUBLIC; GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %s TO %s; "
	    "ALTER DATABASE %s ALLOW_CONNECTIONS true; COMMIT",
	    qd, qd, qr, qd) == 0 && w_cmd(w, c, j, "granting a clone to its role", sql) == -1)
		sql_try(c, "ROLLBACK");
}

/* A clone for schema isolation: the role, its schema in the shared database with the
 * template's DDL replayed as the role, and the role's search_path. */
static void
clone_schema(struct pg_worker *w, PGconn *c, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	char qs[Q], qx[Q], qr[Q], sql[1024], *ddl = NULL, *script = NULL;
	PGconn *sc;
	double t0;

	/* CONNECT on the shared database comes with the group (j->owner_role): GRANTs on one
	 * database from clones made side by side would collide on its catalog row. */
	if (sql_ident(c, j, j->shared, qs) == -1 || sql_ident(c, j, j->schema, qx) == -1 ||
	    sql_ident(c, j, j->role, qr) == -1 || create_role(w, c, j, j->owner_role) == -1)
		return;
	if (sql_fmt(sql, sizeof sql, j, "ALTER ROLE %s IN DATABASE %s SET search_path = %s", qr, qs,
	    qx) == -1 || w_cmd(w, c, j, "setting a lease's search_path", sql) == -1)
		return;
	if (!pg->superuser && (sql_fmt(sql, sizeof sql, j, "GRANT %s TO CURRENT_USER", qr) == -1 ||
	    w_cmd(w, c, j, "granting a lease's role to the broker", sql) == -1))
		return;
	if (!(sc = w_db(w, j, j->shared)))
		return;
	if (!(ddl = ddl_for(j->text ? j->text : "", qx)) ||
	    asprintf(&script, "BEGIN; SET LOCAL synchronous_commit = on; "
	    "CREATE SCHEMA %s AUTHORIZATION %s; SET LOCAL ROLE %s; "
	    "SET LOCAL search_path = %s; %s;\nCOMMIT", qx, qr, qr, qx, ddl) < 0) {
		script = NULL;
		error_set(&j->err, ERR_INTERNAL, "out of memory");
		goto out;
	}
	t0 = mono_ms();
	if (w_cmd(w, sc, j, "creating a lease's schema", script) == -1)
		sql_try(sc, "ROLLBACK");
	j->ms = mono_ms() - t0;
out:
	free(ddl);
	free(script);
}

void
sql_clone(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);
	struct fxb_error keep;

	if (!c)
		return;
	if (j->iso == PG_ISO_DATABASE)
		clone_database(w, c, j);
	else
		clone_schema(w, c, j);
	if (!j->err.code || !(c = w_admin(w, j)))
		return;
	/* Undo what was made, keeping the first error. */
	keep = j->err;
	memset(&j->err, 0, sizeof j->err);
	sql_drop(w, j);
	error_clear(&j->err);
	j->err = keep;
}

void
sql_drop(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j), *sc;
	char qx[Q], qr[Q], sql[512];

	if (!c || disable_role(w, c, j, j->role) == -1)
		return;
	if (j->iso == PG_ISO_DATABASE) {
		if (sql_drop_database(w, c, j, j->db) == -1)
			return;
	} else {
		if (!(sc = w_db(w, j, j->shared)) || sql_ident(sc, j, j->schema, qx) == -1 ||
		    sql_ident(sc, j, j->role, qr) == -1)
			return;
		/* DROP OWNED takes whatever else the role made in the shared database. */
		if (sql_exists(w, c, j, "SELECT 1 FROM pg_roles WHERE rolname = $1", j->role) > 0 &&
		    sql_fmt(sql, sizeof sql, j, "DROP SCHEMA IF EXISTS %s CASCADE; DROP OWNED BY %s", qx,
		    qr) == 0 && w_cmd(w, sc, j, "dropping a lease's schema", sql) == -1)
			return;
	}
	if (!j->err.code)
		drop_role(w, c, j, j->role);
}

void
sql_conn_limit(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);
	char q[Q], sql[256];

	if (c && sql_ident(c, j, j->role, q) == 0 &&
	    sql_fmt(sql, sizeof sql, j, "ALTER ROLE %s CONNECTION LIMIT %d", q, j->n) == 0)
		w_cmd(w, c, j, "setting a lease's connection limit", sql);
}

/* pg_dump, found beside the embedded cluster's binaries, on PATH, or in
 * /usr/lib/postgresql (the newest). */
static int
find_pg_dump(struct pg *pg, char *out, size_t cap)
{
	char path[8192], *save = NULL;
	glob_t g;
	int found = 0;

	snprintf(out, cap, "%s/pg_dump", pg->bindir);
	if (pg->bindir[0] && access(out, X_OK) == 0)
		return 0;
	snprintf(path, sizeof path, "%s", getenv("PATH") ? getenv("PATH") : "");
	for (char *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, cap, "%s/pg_dump", d);
		if (*d && access(out, X_OK) == 0)
			return 0;
	}
	if (glob("/usr/lib/postgresql/*/bin/pg_dump", 0, NULL, &g) == 0) {
		int best = -1;
		for (size_t i = 0; i < g.gl_pathc; i++) {
			int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
			if (v > best && access(g.gl_pathv[i], X_OK) == 0) {
				best = v;
				snprintf(out, cap, "%s", g.gl_pathv[i]);
				found = 1;
			}
		}
		globfree(&g);
	}
	return found ? 0 : -1;
}

/* Turns pg_dump's plain output for schema public into a script for any schema: settings,
 * psql meta-commands (\\restrict) and the schema's own statements go, and every "public."
 * becomes SCHEMA_MARK. */
static char *
ddl_from_dump(const char *dump)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *line = dump;

	if (!f)
		return NULL;
	while (*line) {
		const char *eol = strchr(line, '\n'), *p;
		size_t n = eol ? (size_t)(eol - line) : strlen(line);

		if (!n || !strncmp(line, "--", 2) || !strncmp(line, "SET ", 4) ||
		    !strncmp(line, "SELECT pg_catalog.set_config(", 29) ||
		    !strncmp(line, "CREATE SCHEMA public", 20) || !strncmp(line, "ALTER SCHEMA public", 19) ||
		    !strncmp(line, "COMMENT ON SCHEMA public", 24) || line[0] == '\\') {
			line += n + (eol != NULL);
			continue;
		}
		for (p = line; p < line + n; p++) {
			int start = p == line || !(p[-1] == '_' || p[-1] == '"' ||
			    (p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') ||
			    (p[-1] >= '0' && p[-1] <= '9'));
			if (start && (size_t)(line + n - p) >= 7 && !strncmp(p, "public.", 7)) {
				fputc(SCHEMA_MARK, f);
				fputc('.', f);
				p += 6;
			} else {
				fputc(*p, f);
			}
		}
		fputc('\n', f);
		line += n + (eol != NULL);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Dumps schema public of a temporary clone of the template (the template itself takes no
 * connections) into j->text. */
static void
dump_template(struct pg_worker *w, PGconn *c, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	char tmp[PG_NAME], qt[Q], qx[Q], sql[512], bin[PATH_MAX], file[] = "/tmp/fxb-ddl-XXXXXX";
	char tail[1024], how[64], *ci = NULL, *dbarg = NULL, *dump = NULL;
	struct pgproc_spec spec = { 0 };
	struct pgproc p;
	int fd, ws;
	FILE *f;
	long size;

	if (pg_object_name(tmp, sizeof tmp, pg->inst, 'd', j->tid, "ddl") == -1 ||
	    sql_ident(c, j, tmp, qx) == -1 || sql_ident(c, j, j->tpl, qt) == -1 ||
	    sql_drop_database(w, c, j, tmp) == -1 ||
	    sql_fmt(sql, sizeof sql, j, "CREATE DATABASE %s TEMPLATE %s", qx, qt) == -1 ||
	    w_cmd(w, c, j, "cloning the template to read its DDL", sql) == -1)
		return;
	if (find_pg_dump(pg, bin, sizeof bin) == -1) {
		error_set(&j->err, ERR_PG_ERROR, "schema isolation needs pg_dump: none on PATH or in "
		    "/usr/lib/postgresql/*/bin");
		goto out;
	}
	if ((fd = mkstemp(file)) == -1) {
		error_set(&j->err, ERR_INTERNAL, "mkstemp: %s", strerror(errno));
		goto out;
	}
	close(fd);
	if (!(ci = pg_conninfo_db(pg->conninfo, tmp)) || asprintf(&dbarg, "--dbname=%s", ci) < 0) {
		dbarg = NULL;
		error_set(&j->err, ERR_INTERNAL, "out of memory");
		goto out;
	}
	{
		char fileopt[64];
		char *argv[] = { bin, dbarg, fileopt, "--schema=public", "--no-owner", "--no-privileges",
			"--no-comments", "--no-publications", "--no-subscriptions", "--no-security-labels",
			"--no-tablespaces", "--inserts", NULL };
		snprintf(fileopt, sizeof fileopt, "--file=%s", file);
		spec.argv = argv;
		spec.out_fd = -1;
		spec.deathsig = SIGKILL;
		if (pgproc_start(&spec, &p, &j->err) == -1)
			goto out;
		ws = pgproc_wait(&p, 300000, tail, sizeof tail, NULL);
	}
	if (ws != 0) {
		pgproc_describe(ws, how, sizeof how);
		tail[strcspn(tail, "\n")] = '\0';
		error_set(&j->err, ERR_PG_ERROR, "pg_dump %s: %s", how, tail);
		goto out;
	}
	if (!(f = fopen(file, "r"))) {
		error_set(&j->err, ERR_INTERNAL, "%s: %s", file, strerror(errno));
		goto out;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	if (size < 0 || !(dump = calloc(1, (size_t)size + 1)) ||
	    fread(dump, 1, (size_t)size, f) != (size_t)size) {
		fclose(f);
		error_set(&j->err, ERR_INTERNAL, "cannot read %s", file);
		goto out;
	}
	fclose(f);
	if (!(j->text = ddl_from_dump(dump)))
		error_set(&j->err, ERR_INTERNAL, "out of memory");
out:
	unlink(file);
	free(ci);
	free(dbarg);
	free(dump);
	{
		struct fxb_error keep = j->err;
		memset(&j->err, 0, sizeof j->err);
		sql_drop_database(w, c, j, tmp);
		if (keep.code) {
			error_clear(&j->err);
			j->err = keep;
		}
	}
}

void
sql_schema_setup(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j), *sc;
	char qs[Q], qg[Q], sql[768];
	int n;

	if (!c || sql_ident(c, j, j->shared, qs) == -1 || sql_ident(c, j, j->owner_role, qg) == -1 ||
	    sql_drop_database(w, c, j, j->shared) == -1 ||
	    (n = sql_exists(w, c, j, "SELECT 1 FROM pg_roles WHERE rolname = $1", j->owner_role)) < 0)
		return;
	if (n == 0 && (sql_fmt(sql, sizeof sql, j, "CREATE ROLE %s NOLOGIN NOSUPERUSER NOCREATEDB "
	    "NOCREATEROLE NOREPLICATION NOBYPASSRLS", qg) == -1 ||
	    w_cmd(w, c, j, "creating the shared database's group", sql) == -1))
		return;
	if (sql_fmt(sql, sizeof sql, j, "CREATE DATABASE %s TEMPLATE template0", qs) == -1 ||
	    w_cmd(w, c, j, "creating the shared database", sql) == -1 ||
	    sql_fmt(sql, sizeof sql, j, "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, "
	    "TEMPORARY ON DATABASE %s TO %s", qs, qs, qg) == -1 ||
	    w_cmd(w, c, j, "closing the shared database", sql) == -1)
		return;
	/* Each lease's role sees its own schema only: nothing in public for anyone. */
	if (!(sc = w_db(w, j, j->shared)) ||
	    w_cmd(w, sc, j, "closing schema public", "REVOKE ALL ON SCHEMA public FROM PUBLIC") == -1)
		return;
	if (!j->empty)
		dump_template(w, c, j);
}

void
sql_template_drop(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);

	if (!c || sql_drop_database(w, c, j, j->tpl) == -1 || sql_drop_database(w, c, j, j->shared) == -1)
		return;
	/* The owner role, and the shared database's group (j->role). */
	for (int i = 0; i < 2; i++) {
		const char *role = i ? j->role : j->owner_role;
		if (role[0] && disable_role(w, c, j, role) == 0 && drop_role(w, c, j, role) == -1 &&
		    j->err.code == ERR_PG_ERROR) {
			log_warnx("%s", j->err.text);
			error_clear(&j->err);
		}
	}
}

void
sql_touch(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);
	char qt[Q], *lit, *sql = NULL;

	if (!c || sql_ident(c, j, j->tpl, qt) == -1 || !j->text)
		return;
	if (!(lit = PQescapeLiteral(c, j->text, strlen(j->text)))) {
		error_set(&j->err, ERR_INTERNAL, "out of memory");
		return;
	}
	if (asprintf(&sql, "COMMENT ON DATABASE %s IS %s", qt, lit) >= 0)
		w_cmd(w, c, j, "updating a template's comment", sql);
	else
		sql = NULL;
	free(sql);
	PQfreemem(lit);
}
