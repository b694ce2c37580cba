/* pg_build.c: building templates on worker threads: the build database, finishing, the
 * broker's own builds (a configured template's migrate command) and their inputs' hash.
 *
 * A build happens in a private database owned by the template's owner role (a login role
 * only while the build runs). Finishing renames it to the template's name and marks it in
 * PostgreSQL: datistemplate, no connections, owned by the broker, and a JSON comment with
 * the template's key and times, which the next start reads back. A configured template's
 * migrate command runs under a keeper (pgproc.h) with the build database's URL; a failure
 * drops the build database and keeps the command's last output. Like pg_sql.c, nothing
 * here touches loop state.
 */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pg_int.h"
#include "pgproc.h"

#define Q (2 * PG_NAME + 3)

extern char **environ;

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The owner role of a build: created once per template id, given a login for the build. */
static int
owner_login(struct pg_worker *w, PGconn *c, struct pg_job *j, int login)
{
	struct pg *pg = w_pg(w);
	char q[Q], sql[512], *enc = NULL, *lit = NULL;
	int n = sql_exists(w, c, j, "SELECT 1 FROM pg_roles WHERE rolname = $1", j->owner_role), rc = -1;

	if (n < 0 || sql_ident(c, j, j->owner_role, q) == -1)
		return -1;
	if (n == 0 && (sql_fmt(sql, sizeof sql, j, "CREATE ROLE %s NOLOGIN NOSUPERUSER NOCREATEDB "
	    "NOCREATEROLE NOREPLICATION NOBYPASSRLS", q) == -1 ||
	    w_cmd(w, c, j, "creating a template's owner role", sql) == -1))
		return -1;
	if (!pg->superuser && n == 0 && (sql_fmt(sql, sizeof sql, j, "GRANT %s TO CURRENT_USER", q) == -1 ||
	    w_cmd(w, c, j, "granting the owner role to the broker", sql) == -1))
		return -1;
	if (!login) {
		if (sql_fmt(sql, sizeof sql, j, "ALTER ROLE %s NOLOGIN", q) == -1)
			return -1;
		return w_cmd(w, c, j, "disabling a template's owner role", sql);
	}
	if (!(enc = PQencryptPasswordConn(c, j->password, j->owner_role, NULL)) ||
	    !(lit = PQescapeLiteral(c, enc, strlen(enc)))) {
		error_set(&j->err, ERR_INTERNAL, "cannot encrypt a password: %s", PQerrorMessage(c));
		goto out;
	}
	if (sql_fmt(sql, sizeof sql, j, "ALTER ROLE %s LOGIN PASSWORD %s CONNECTION LIMIT -1", q, lit) == 0)
		rc = w_cmd(w, c, j, "enabling a template's owner role", sql);
out:
	PQfreemem(enc);
	PQfreemem(lit);
	return rc;
}

void
sql_build_prepare(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);
	char qd[Q], qo[Q], sql[512];

	if (!c || owner_login(w, c, j, 1) == -1 || sql_drop_database(w, c, j, j->db) == -1 ||
	    sql_ident(c, j, j->db, qd) == -1 || sql_ident(c, j, j->owner_role, qo) == -1 ||
	    sql_fmt(sql, sizeof sql, j, "CREATE DATABASE %s OWNER %s TEMPLATE template0", qd, qo) == -1)
		return;
	w_cmd(w, c, j, "creating the build database", sql);
}

/* The comment that marks a finished template: its metadata as JSON. */
static char *
template_comment(struct pg_job *j, int64_t created, int64_t used)
{
	json_t *m = json_pack("{s:i, s:s, s:b, s:s, s:I, s:I, s:s, s:s}", "fxb", 1, "key", j->key,
	    "configured", j->conf != NULL, "inputs", j->inputs, "created_at", (json_int_t)created,
	    "used_at", (json_int_t)used, "owner", j->owner_role, "broker", FXB_VERSION_STR);
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;

	json_decref(m);
	return text;
}

void
sql_build_finish(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j), *bc;
	char qb[Q], qt[Q], qo[Q], sql[4096], *meta = NULL, *lit = NULL;
	const char *p[1] = { j->db };
	int64_t now = (int64_t)time(NULL);
	PGresult *r;
	int tries;

	if (!c || sql_ident(c, j, j->db, qb) == -1 || sql_ident(c, j, j->tpl, qt) == -1 ||
	    sql_ident(c, j, j->owner_role, qo) == -1)
		return;
	/* Clones belong to the broker, so public must belong to the owner role for the
	 * leases' roles (its members) to create tables in it. */
	if (!(bc = w_db(w, j, j->db)))
		return;
	if (sql_exists(w, bc, j, "SELECT 1 FROM pg_namespace WHERE nspname = $1", "public") > 0 &&
	    sql_fmt(sql, sizeof sql, j, "ALTER SCHEMA public OWNER TO %s", qo) == 0)
		w_cmd(w, bc, j, "giving the public schema to the owner role", sql);
	w_forget_db(w, j->db);
	if (j->err.code || owner_login(w, c, j, 0) == -1 || sql_drop_database(w, c, j, j->tpl) == -1)
		return;
	if (!(meta = template_comment(j, now, now)) || !(lit = PQescapeLiteral(c, meta, strlen(meta)))) {
		error_set(&j->err, ERR_INTERNAL, "out of memory");
		goto out;
	}
	if (sql_fmt(sql, sizeof sql, j, "BEGIN; ALTER DATABASE %s RENAME TO %s; ALTER DATABASE %s OWNER "
	    "TO CURRENT_USER; ALTER DATABASE %s WITH IS_TEMPLATE true ALLOW_CONNECTIONS false; "
	    "COMMENT ON DATABASE %s IS %s; COMMIT", qb, qt, qt, qt, qt, lit) == -1)
		goto out;
	/* The builder's sessions are ended first; a backend takes a moment to go. */
	for (tries = 0; tries < 100; tries++) {
		r = w_query(w, c, j, "ending the build's sessions", "SELECT pg_terminate_backend(pid) "
		    "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", 1, p);
		PQclear(r);
		if (!r)
			goto out;
		r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			goto out;
		}
		sql_try(c, "ROLLBACK");
		if (PQstatus(c) != CONNECTION_OK ||
		    !strstr(PQresultErrorMessage(r), "being accessed by other users")) {
			char msg[200];
			snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
			msg[strcspn(msg, "\n")] = '\0';
			error_set(&j->err, PQstatus(c) == CONNECTION_OK ? ERR_PG_ERROR : ERR_PG_UNAVAILABLE,
			    "marking the template failed: %s", msg);
			PQclear(r);
			goto out;
		}
		PQclear(r);
		sleep_ms(50);
	}
	error_set(&j->err, ERR_PG_ERROR, "marking the template failed: the build database stayed "
	    "in use");
out:
	free(meta);
	PQfreemem(lit);
}

void
sql_build_discard(struct pg_worker *w, struct pg_job *j)
{
	PGconn *c = w_admin(w, j);

	if (c && sql_drop_database(w, c, j, j->db) == 0)
		owner_login(w, c, j, 0);
}

/* The environment of a migrate command: the broker's, the template's, and PG*. */
static char **
migrate_env(const struct pg_tpl_conf *conf, const char *const vals[6])
{
	static const char *const names[] = { "DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE",
		"PGUSER", "PGPASSWORD" };
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	if (!(env = calloc(n + conf->nenv + 7, sizeof *env)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t l;
		int ours = 0;
		for (size_t m = 0; m < 6; m++) {
			l = strlen(names[m]);
			ours |= !strncmp(environ[i], names[m], l) && environ[i][l] == '=';
		}
		if (!ours && !(env[k++] = strdup(environ[i])))
			goto oom;
	}
	for (size_t i = 0; i < conf->nenv; i++)
		if (!(env[k++] = strdup(conf->env[i])))
			goto oom;
	for (size_t m = 0; m < 6; m++)
		if (asprintf(&env[k++], "%s=%s", names[m], vals[m]) < 0) {
			env[k - 1] = NULL;
			goto oom;
		}
	return env;
oom:
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
	return NULL;
}

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* The line of a command's output that says most: the last one naming an error, else the
 * last one. */
static void
telling_line(const char *text, char *out, size_t cap)
{
	const char *best = NULL, *last = text, *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		if (n) {
			char line[512];
			size_t k = n < sizeof line - 1 ? n : sizeof line - 1;
			memcpy(line, p, k);
			line[k] = '\0';
			last = p;
			if (strstr(line, "ERROR") || strstr(line, "FATAL") || strstr(line, "rror"))
				best = p;
		}
		p += n + (eol != NULL);
	}
	p = best ? best : last;
	snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
}

/* Runs the template's migrate command against the build database. */
static int
run_migrate(struct pg_worker *w, struct pg_job *j)
{
	struct pg *pg = w_pg(w);
	const struct pg_tpl_conf *conf = j->conf;
	char url[1024], port[16], tail[2048], how[64];
	const char *vals[6];
	char **argv = NULL, **envp = NULL;
	struct pgproc_spec spec = { 0 };
	struct pgproc p;
	int ws, timed_out, rc = -1;

	snprintf(port, sizeof port, "%d", pg->client_port);
	if (pg_url(url, sizeof url, pg->client_host, pg->client_port, j->owner_role, j->password,
	    j->db, "fxb:migrate") == -1) {
		error_set(&j->err, ERR_INTERNAL, "the build URL is too long");
		return -1;
	}
	vals[0] = url;
	vals[1] = pg->client_host;
	vals[2] = port;
	vals[3] = j->db;
	vals[4] = j->owner_role;
	vals[5] = j->password;
	if (!(argv = calloc(conf->nmigrate + 1, sizeof *argv)) || !(envp = migrate_env(conf, vals)))
		goto oom;
	for (size_t i = 0; i < conf->nmigrate; i++)
		if (!(argv[i] = pg_placeholders(conf->migrate[i], vals)))
			goto oom;
	/* A bare name is looked up in PATH, as a shell would. */
	if (!strchr(argv[0], '/')) {
		char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL, *save = NULL, *found = NULL;
		for (char *d = path ? strtok_r(path, ":", &save) : NULL; d && !found;
		    d = strtok_r(NULL, ":", &save)) {
			char cand[PATH_MAX];
			snprintf(cand, sizeof cand, "%s/%s", d, argv[0]);
			if (access(cand, X_OK) == 0)
				found = strdup(cand);
		}
		free(path);
		if (!found) {
			error_set(&j->err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: migrate: %s is not "
			    "found in PATH", conf->name, argv[0]);
			goto out;
		}
		free(argv[0]);
		argv[0] = found;
	}
	spec.argv = argv;
	spec.envp = envp;
	spec.cwd = conf->cwd;
	spec.out_fd = -1;
	spec.new_session = 1;
	spec.deathsig = SIGKILL;
	if (pgproc_start(&spec, &p, &j->err) == -1)
		goto out;
	log_info("template %s: running its migrate command (%s)", conf->name, conf->migrate[0]);
	ws = pgproc_wait(&p, conf->timeout_ms, tail, sizeof tail, &timed_out);
	if (ws == 0) {
		rc = 0;
		goto out;
	}
	pgproc_describe(ws, how, sizeof how);
	{
		size_t n = strlen(tail);
		char line[200];
		while (n && (tail[n - 1] == '\n' || tail[n - 1] == '\r'))
			tail[--n] = '\0';
		j->text = strdup(tail);
		telling_line(tail, line, sizeof line);
		error_set(&j->err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: migrate %s%s: %s",
		    conf->name, timed_out ? "timed out and " : "", how, line);
	}
	goto out;
oom:
	error_set(&j->err, ERR_INTERNAL, "out of memory");
out:
	strv_free(argv);
	strv_free(envp);
	return rc;
}

void
sql_migrate(struct pg_worker *w, struct pg_job *j)
{
	struct fxb_error keep = { 0 };
	PGconn *c;

	sql_build_prepare(w, j);
	if (j->err.code)
		return;
	if (!j->empty && run_migrate(w, j) == -1) {
		/* Keep the migrate error; the cleanup's own errors matter less. */
		keep = j->err;
		memset(&j->err, 0, sizeof j->err);
		if ((c = w_admin(w, j)))
			sql_drop_database(w, c, j, j->db);
		error_clear(&j->err);
		j->err = keep;
		return;
	}
	sql_build_finish(w, j);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hashes a file's path and contents into h. */
static int
hash_file(const char *path, uint64_t *h)
{
	char buf[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return -1;
	*h = pg_fnv(*h, path, strlen(path) + 1);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		*h = pg_fnv(*h, buf, n);
	fclose(f);
	return 0;
}

void
sql_resolve(struct pg_worker *w, struct pg_job *j)
{
	const struct pg_tpl_conf *conf = j->conf;
	uint64_t h = PG_FNV_SEED;

	(void)w;
	for (size_t i = 0; i < conf->nmigrate; i++)
		h = pg_fnv(h, conf->migrate[i], strlen(conf->migrate[i]) + 1);
	h = pg_fnv(h, conf->cwd ? conf->cwd : "", conf->cwd ? strlen(conf->cwd) + 1 : 1);
	for (size_t i = 0; i < conf->nenv; i++)
		h = pg_fnv(h, conf->env[i], strlen(conf->env[i]) + 1);
	for (size_t i = 0; i < conf->ninputs; i++) {
		char pat[PATH_MAX];
		glob_t g;
		int rc;

		if (conf->inputs[i][0] != '/' && conf->cwd)
			snprintf(pat, sizeof pat, "%s/%s", conf->cwd, conf->inputs[i]);
		else
			snprintf(pat, sizeof pat, "%s", conf->inputs[i]);
		rc = glob(pat, 0, NULL, &g);
		if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
			error_set(&j->err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: inputs: %s matches "
			    "no file", conf->name, pat);
			globfree(&g);
			return;
		}
		if (rc != 0) {
			error_set(&j->err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: inputs: cannot read %s",
			    conf->name, pat);
			return;
		}
		qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
		for (size_t k = 0; k < g.gl_pathc; k++) {
			struct stat st;
			if (stat(g.gl_pathv[k], &st) == 0 && S_ISDIR(st.st_mode))
				continue;
			if (hash_file(g.gl_pathv[k], &h) == -1) {
				error_set(&j->err, ERR_PG_TEMPLATE_BUILD_FAILED, "template %s: inputs: cannot read "
				    "%s: %s", conf->name, g.gl_pathv[k], strerror(errno));
				globfree(&g);
				return;
			}
		}
		globfree(&g);
	}
	snprintf(j->inputs, sizeof j->inputs, "%016llx", (unsigned long long)h);
}
