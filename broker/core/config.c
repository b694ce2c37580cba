/* config.c: defaults, the JSON configuration file and the command-line flags.
 *
 * The file is read first (wherever --config stands on the command line), then every flag
 * is applied over it, so flags win. Unknown keys and flags are errors, so a typo never
 * silently falls back to a default.
 */
#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	strcpy(cfg->listen_host, "127.0.0.1");
	cfg->listen_port = 7357;
	cfg->ports_first = 15000;
	cfg->ports_last = 24999;
	cfg->quarantine_ms = 1000;
	strcpy(cfg->ephemeral_path, "/proc/sys/net/ipv4/ip_local_port_range");
	/* One directory per user: brokers of one user share ports, no other user can lock. */
	snprintf(cfg->port_lock_file, sizeof cfg->port_lock_file,
	    "/tmp/fixture-broker-%d/ports.lock", (int)getuid());
	cfg->grace_ms = 5000;
	cfg->drain_timeout_ms = 300000;
	cfg->max_message_bytes = 1024 * 1024;
	cfg->max_fixtures = 64;
	cfg->heartbeat_ms = 5000;
	cfg->dead_after_ms = 15000;
	cfg->auth_timeout_ms = 5000;
	cfg->max_reply_queue_bytes = 4 * 1024 * 1024;
	cfg->reply_stall_ms = 30000;
	cfg->max_batch_calls = 100;
	cfg->max_batch_reply_bytes = 1024 * 1024;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->integresql_ttl_ms = 600000;
	cfg->integresql_wait_ms = 60000; /* IntegreSQL's INTEGRESQL_TEST_DB_GET_TIMEOUT_MS */
	if (getenv("XDG_CACHE_HOME") && getenv("XDG_CACHE_HOME")[0])
		snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s/fixture-broker",
		    getenv("XDG_CACHE_HOME"));
	else if (getenv("HOME") && getenv("HOME")[0])
		snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s/.cache/fixture-broker",
		    getenv("HOME"));
	else
		snprintf(cfg->state_dir, sizeof cfg->state_dir, "/tmp/fixture-broker-%d", (int)getuid());
}

void
config_clear(struct config *cfg)
{
	json_decref(cfg->servers);
	json_decref(cfg->postgres);
	cfg->servers = cfg->postgres = NULL;
}

/* Parses a whole decimal integer within [lo, hi]. */
static int
parse_int(const char *key, const char *s, long lo, long hi, long *out, struct fxb_error *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < lo || v > hi) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected a whole number from %ld to %ld, got \"%s\"",
		    key, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

int
config_parse_listen(struct config *cfg, const char *key, const char *value,
    struct fxb_error *err)
{
	const char *colon, *host = value;
	size_t hostlen;
	long port;

	if (value[0] == '[') {
		const char *close = strchr(value, ']');
		if (!close || close[1] != ':')
			goto bad;
		host = value + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(value, ':');
		if (!colon)
			goto bad;
		hostlen = (size_t)(colon - value);
	}
	if (hostlen == 0 || hostlen >= sizeof cfg->listen_host)
		goto bad;
	if (parse_int(key, colon + 1, 0, 65535, &port, err) == -1)
		return -1;
	memcpy(cfg->listen_host, host, hostlen);
	cfg->listen_host[hostlen] = '\0';
	cfg->listen_port = (int)port;
	cfg->listen_set = 1;
	return 0;
bad:
	error_set(err, ERR_INVALID_PARAMS, "%s: expected HOST:PORT (\"127.0.0.1:7357\", \"[::1]:7357\"), got \"%s\"",
	    key, value);
	return -1;
}

static int
parse_range(const char *key, const char *s, int *first, int *last, struct fxb_error *err)
{
	char buf[64], *dash;
	long a, b;

	if (strlen(s) >= sizeof buf || !(dash = strchr(strcpy(buf, s), '-')))
		goto bad;
	*dash = '\0';
	if (parse_int(key, buf, 1, 65535, &a, err) == -1 ||
	    parse_int(key, dash + 1, 1, 65535, &b, err) == -1)
		return -1;
	if (a > b)
		goto bad;
	*first = (int)a;
	*last = (int)b;
	return 0;
bad:
	error_set(err, ERR_INVALID_PARAMS, "%s: expected FIRST-LAST with FIRST <= LAST, got \"%s\"",
	    key, s);
	return -1;
}

/* A DNS name or an IP address (IPv6 without brackets), as a client will dial it. */
static int
parse_host(const char *key, const char *value, char *dst, size_t cap, struct fxb_error *err)
{
	size_t len = strlen(value);

	if (value[0] == '[' && len > 2 && value[len - 1] == ']') {
		value++;
		len -= 2;
	}
	if (len == 0 || len >= cap || strspn(value, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:%_") < len) {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected a host name or an IP address "
		    "(\"ci-fixtures.example\", \"10.0.0.5\", \"fd00::5\"), got \"%s\"", key, value);
		return -1;
	}
	memcpy(dst, value, len);
	dst[len] = '\0';
	return 0;
}

static int
set_path(char *dst, size_t cap, const char *key, const char *value, struct fxb_error *err)
{
	if (strlen(value) >= cap || value[0] == '\0') {
		error_set(err, ERR_INVALID_PARAMS, "%s: expected a path", key);
		return -1;
	}
	strcpy(dst, value);
	return 0;
}

/* Settings that are a whole number in a range, or a path, by key. */
static const struct {
	const char *key;
	size_t off;
	long lo, hi;
	int is_size; /* a size_t field rather than an int */
} int_settings[] = {
	{ "ports.quarantine_ms", offsetof(struct config, quarantine_ms), 0, 3600000, 0 },
	{ "grace_ms", offsetof(struct config, grace_ms), 0, 3600000, 0 },
	{ "drain_timeout_ms", offsetof(struct config, drain_timeout_ms), 0, 86400000, 0 },
	{ "max_message_bytes", offsetof(struct config, max_message_bytes), 1024, 64L * 1024 * 1024, 1 },
	{ "max_fixtures_per_lease", offsetof(struct config, max_fixtures), 1, 4096, 0 },
	{ "heartbeat_ms", offsetof(struct config, heartbeat_ms), 0, 3600000, 0 },
	{ "dead_after_ms", offsetof(struct config, dead_after_ms), 100, 86400000, 0 },
	{ "auth_timeout_ms", offsetof(struct config, auth_timeout_ms), 0, 3600000, 0 },
	{ "max_reply_queue_bytes", offsetof(struct config, max_reply_queue_bytes), 65536,
	    1024L * 1024 * 1024, 1 },
	{ "reply_stall_ms", offsetof(struct config, reply_stall_ms), 100, 3600000, 0 },
	{ "max_batch_calls", offsetof(struct config, max_batch_calls), 1, 100000, 0 },
	{ "max_batch_reply_bytes", offsetof(struct config, max_batch_reply_bytes), 1024,
	    1024L * 1024 * 1024, 1 },
	{ "portserver.lease_ttl_ms", offsetof(struct config, portserver_ttl_ms), 0, 604800000, 0 },
	{ "integresql.enabled", offsetof(struct config, integresql_enabled), 0, 1, 0 },
	{ "status.require_token", offsetof(struct config, status_require_token), 0, 1, 0 },
	{ "integresql.lease_ttl_ms", offsetof(struct config, integresql_ttl_ms), 0, 604800000, 0 },
	{ "integresql.wait_ms", offsetof(struct config, integresql_wait_ms), 0, 3600000, 0 },
};

static const struct {
	const char *key;
	size_t off;
} path_settings[] = {
	{ "token_file", offsetof(struct config, token_file) },
	{ "audit_log", offsetof(struct config, audit_log) },
	{ "tls.cert", offsetof(struct config, tls_cert) },
	{ "tls.key", offsetof(struct config, tls_key) },
	{ "tls.client_ca", offsetof(struct config, tls_client_ca) },
	{ "state_dir", offsetof(struct config, state_dir) },
	{ "ports.lock_file", offsetof(struct config, port_lock_file) },
	{ "ports.ephemeral_range_file", offsetof(struct config, ephemeral_path) },
	{ "portserver.socket", offsetof(struct config, portserver_socket) },
	{ "upstream_token_file", offsetof(struct config, upstream_token_file) },
	{ "upstream_ca", offsetof(struct config, upstream_ca) },
	{ "upstream_cert", offsetof(struct config, upstream_cert) },
	{ "upstream_key", offsetof(struct config, upstream_key) },
};

/* Applies one setting given as text, the common path of flags and file values. */
static int
apply(struct config *cfg, const char *key, const char *value, struct fxb_error *err)
{
	char *base = (char *)cfg;
	long v;

	for (size_t i = 0; i < sizeof int_settings / sizeof int_settings[0]; i++) {
		if (strcmp(key, int_settings[i].key) != 0)
			continue;
		if (parse_int(key, value, int_settings[i].lo, int_settings[i].hi, &v, err) == -1)
			return -1;
		if (int_settings[i].is_size)
			*(size_t *)(base + int_settings[i].off) = (size_t)v;
		else
			*(int *)(base + int_settings[i].off) = (int)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof path_settings / sizeof path_settings[0]; i++)
		if (!strcmp(key, path_settings[i].key))
			return set_path(base + path_settings[i].off, PATH_MAX, key, value, err);
	if (!strcmp(key, "listen"))
		return config_parse_listen(cfg, key, value, err);
	if (!strcmp(key, "advertise"))
		return parse_host(key, value, cfg->advertise, sizeof cfg->advertise, err);
	if (!strcmp(key, "ports.range"))
		return parse_range(key, value, &cfg->ports_first, &cfg->ports_last, err);
	if (!strcmp(key, "postgres.url")) {
		if (strlen(value) >= sizeof cfg->pg_url) {
			error_set(err, ERR_INVALID_PARAMS, "%s: too long", key);
			return -1;
		}
		strcpy(cfg->pg_url, value);
		return 0;
	}
	if (!strcmp(key, "upstream")) {
		if (value[0] && strncmp(value, "ws://", 5) != 0 && strncmp(value, "wss://", 6) != 0) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a ws:// or wss:// URL "
			    "(\"wss://fixtures.ci.example:7357\"), got \"%.200s\"", key, value);
			return -1;
		}
		if (strlen(value) >= sizeof cfg->upstream || strlen(value) < (value[2] == 's' ? 7u : 6u)) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a ws:// or wss:// URL with a host",
			    key);
			return -1;
		}
		strcpy(cfg->upstream, value);
		return 0;
	}
	if (!strcmp(key, "log_level")) {
		if (log_level_parse(value, &cfg->log_level) == -1) {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected error, warn, info or debug, got \"%s\"",
			    key, value);
			return -1;
		}
		return 0;
	}
	error_set(err, ERR_INVALID_PARAMS, "%s: unknown setting", key);
	return -1;
}

/* Walks a JSON object, applying scalars as "prefix.key" and descending into objects. */
static int
apply_object(struct config *cfg, const char *prefix, json_t *obj, struct fxb_error *err)
{
	const char *k;
	json_t *v;
	char key[128], text[PATH_MAX];

	json_object_foreach(obj, k, v) {
		snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
		/* Sections the resource modules parse (and check) themselves. */
		if (!strcmp(key, "servers") || !strcmp(key, "postgres")) {
			json_t **slot = !strcmp(key, "servers") ? &cfg->servers : &cfg->postgres;
			json_t *copy;
			if (!json_is_object(v)) {
				error_set(err, ERR_INVALID_PARAMS, "%s: expected an object", key);
				return -1;
			}
			copy = json_deep_copy(v);
			if (!strcmp(key, "postgres") && json_is_string(json_object_get(v, "url"))) {
				if (apply(cfg, "postgres.url", json_string_value(json_object_get(v, "url")),
				    err) == -1) {
					json_decref(copy);
					return -1;
				}
				json_object_del(copy, "url");
			}
			json_decref(*slot);
			*slot = copy;
			continue;
		}
		if (json_is_object(v)) {
			if (apply_object(cfg, key, v, err) == -1)
				return -1;
			continue;
		}
		if (json_is_string(v))
			snprintf(text, sizeof text, "%s", json_string_value(v));
		else if (json_is_boolean(v))
			snprintf(text, sizeof text, "%d", json_is_true(v));
		else if (json_is_integer(v))
			snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else {
			error_set(err, ERR_INVALID_PARAMS, "%s: expected a string, a whole number or a "
			    "boolean", key);
			return -1;
		}
		if (apply(cfg, key, text, err) == -1)
			return -1;
	}
	return 0;
}

/* Gives every template in section (an object of templates) a cwd anchored at dir: the
 * configuration file's directory when it has none, dir/cwd when its cwd is relative. So
 * "command": ["node", "app/server.js"] means the same wherever the broker was started. */
static int
anchor_cwds(json_t *section, const char *dir, struct fxb_error *err)
{
	const char *name;
	json_t *t, *cwd;
	char buf[PATH_MAX * 2];

	json_object_foreach(section, name, t) {
		if (!json_is_object(t))
			continue; /* the module reports it, naming the key */
		cwd = json_object_get(t, "cwd");
		if (cwd && (!json_is_string(cwd) || json_string_value(cwd)[0] == '/'))
			continue;
		if (cwd)
			snprintf(buf, sizeof buf, "%s/%s", dir, json_string_value(cwd));
		else
			snprintf(buf, sizeof buf, "%s", dir);
		if (json_object_set_new(t, "cwd", json_string(buf)) == -1) {
			error_set(err, ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	return 0;
}

int
config_load_file(struct config *cfg, const char *path, struct fxb_error *err)
{
	json_error_t jerr;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	int rc;

	if (!root) {
		error_set(err, ERR_INVALID_PARAMS, "config: %s:%d:%d: %s", path, jerr.line,
		    jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		error_set(err, ERR_INVALID_PARAMS, "config: %s: expected a JSON object", path);
		return -1;
	}
	rc = apply_object(cfg, "", root, err);
	json_decref(root);
	if (rc == 0 && (cfg->servers || cfg->postgres)) {
		char *real = realpath(path, NULL), *slash;
		if (!real) {
			error_set(err, ERR_INVALID_PARAMS, "config: %s: %s", path, strerror(errno));
			return -1;
		}
		if ((slash = strrchr(real, '/')))
			*(slash == real ? slash + 1 : slash) = '\0';
		if ((cfg->servers && anchor_cwds(cfg->servers, real, err) == -1) ||
		    (json_is_object(json_object_get(cfg->postgres, "templates")) &&
		    anchor_cwds(json_object_get(cfg->postgres, "templates"), real, err) == -1))
			rc = -1;
		free(real);
	}
	return rc;
}

int
config_check_tls(const struct config *cfg, struct fxb_error *err)
{
	struct stat st;

	if (!cfg->tls_cert[0] && !cfg->tls_key[0]) {
		if (cfg->tls_client_ca[0]) {
			error_set(err, ERR_INVALID_PARAMS, "tls.client_ca: needs tls.cert and tls.key");
			return -1;
		}
		return 0;
	}
	if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
		error_set(err, ERR_INVALID_PARAMS, "%s: TLS needs both tls.cert and tls.key",
		    cfg->tls_cert[0] ? "tls.key" : "tls.cert");
		return -1;
	}
	if (access(cfg->tls_cert, R_OK) == -1 ||
	    (cfg->tls_client_ca[0] && access(cfg->tls_client_ca, R_OK) == -1)) {
		const char *which = access(cfg->tls_cert, R_OK) == -1 ? "tls.cert" : "tls.client_ca";
		error_set(err, ERR_INVALID_PARAMS, "%s: cannot read %s: %s", which,
		    !strcmp(which, "tls.cert") ? cfg->tls_cert : cfg->tls_client_ca, strerror(errno));
		return -1;
	}
	if (stat(cfg->tls_key, &st) == -1 || access(cfg->tls_key, R_OK) == -1) {
		error_set(err, ERR_INVALID_PARAMS, "tls.key: cannot read %s: %s", cfg->tls_key,
		    strerror(errno));
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		error_set(err, ERR_INVALID_PARAMS, "tls.key: %s is open to others (mode %03o): a private "
		    "key must be readable by its owner only (chmod 600 %s)", cfg->tls_key,
		    (unsigned)(st.st_mode & 0777), cfg->tls_key);
		return -1;
	}
	return 0;
}

int
config_apply_env(struct config *cfg, struct fxb_error *err)
{
	static const struct {
		const char *var, *fallback, *key;
	} vars[] = {
		{ "FIXTURE_BROKER_UPSTREAM", NULL, "upstream" },
		{ "FIXTURE_BROKER_UPSTREAM_CA", "FIXTURE_BROKER_CA", "upstream_ca" },
		{ "FIXTURE_BROKER_UPSTREAM_CERT", "FIXTURE_BROKER_CERT", "upstream_cert" },
		{ "FIXTURE_BROKER_UPSTREAM_KEY", "FIXTURE_BROKER_KEY", "upstream_key" },
	};
	const char *v;

	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
		const char *name = vars[i].var;

		if ((!(v = getenv(name)) || !*v) && vars[i].fallback)
			v = getenv(name = vars[i].fallback);
		if (!v || !*v)
			continue;
		if (apply(cfg, vars[i].key, v, err) == -1) {
			error_prefix(err, "%s: ", name);
			return -1;
		}
	}
	if ((v = getenv("FIXTURE_BROKER_UPSTREAM_TOKEN")) && *v) {
		if (strlen(v) >= sizeof cfg->upstream_token) {
			error_set(err, ERR_INVALID_PARAMS, "FIXTURE_BROKER_UPSTREAM_TOKEN: longer than %zu "
			    "bytes", sizeof cfg->upstream_token - 1);
			return -1;
		}
		strcpy(cfg->upstream_token, v);
	}
	return 0;
}

static const char usage[] =
    "usage: fixture-broker [options]\n"
    "       fixture-broker run [options] -- COMMAND [ARG...]\n"
    "       fixture-broker sweep [--instance ID] [--dry-run] [--pg-url URL | --config FILE]\n"
    "\n"
    "Leases isolated test fixtures (ports, ...) to test workers over WebSocket/JSON-RPC.\n"
    "\n"
    "  --listen HOST:PORT          where to listen (default 127.0.0.1:7357; port 0: any)\n"
    "  --advertise HOST            the host fixtures report to clients (default: the\n"
    "                              address each client connected to)\n"
    "  --config FILE               a JSON configuration file (flags win over it)\n"
    "  --token-file FILE           require one of the file's bearer tokens (one a line,\n"
    "                              optionally: TOKEN TENANT key=value...; SIGHUP re-reads it)\n"
    "  --audit-log FILE            write the audit log (JSON lines) to FILE, - for stderr\n"
    "  --status-require-token      /, /status and /metrics need a token too\n"
    "  --tls-cert FILE             serve wss:// and https:// with this certificate (PEM,\n"
    "                              the chain after it); needs --tls-key\n"
    "  --tls-key FILE              its private key (PEM, readable by its owner only)\n"
    "  --tls-client-ca FILE        require client certificates signed by this CA\n"
    "  --ports FIRST-LAST          the port pool (default 15000-24999)\n"
    "  --port-quarantine-ms N      how long a released port rests (default 1000)\n"
    "  --port-lock-file FILE       where the brokers of this host lock the ports they hold\n"
    "                              (default /tmp/fixture-broker-UID/ports.lock; none: do not)\n"
    "  --ephemeral-range-file FILE the kernel's ephemeral range (default\n"
    "                              /proc/sys/net/ipv4/ip_local_port_range)\n"
    "  --grace-ms N                how long a dropped session keeps its leases (default 5000)\n"
    "  --drain-timeout-ms N        on SIGTERM, serve the sessions holding leases this long\n"
    "                              before releasing them; 0: shut down at once (default\n"
    "                              300000; 0 for run)\n"
    "  --max-message-bytes N       the WebSocket message cap (default 1048576)\n"
    "  --max-fixtures N            fixtures per lease at most (default 64)\n"
    "  --heartbeat-ms N            ping every client this often, 0: never (default 5000)\n"
    "  --dead-after-ms N           drop a client silent this long, pongs included\n"
    "                              (default 15000)\n"
    "  --state-dir DIR             where the broker keeps its state (default\n"
    "                              $XDG_CACHE_HOME/fixture-broker or ~/.cache/fixture-broker)\n"
    "  --pg-url URL                PostgreSQL admin URL (default: an embedded cluster)\n"
    "  --portserver SOCKET         also serve portpicker's portserver protocol on this\n"
    "                              Unix socket (@name: the abstract namespace)\n"
"  --integresql               also serve the IntegreSQL-compatible REST API under\n"
    "                              /api/v1/ (integresql.enabled)\n"
    "  --upstream URL              forward postgres fixtures and server templates this\n"
    "                              broker does not define to the broker at URL (ws://,\n"
    "                              wss://; FIXTURE_BROKER_UPSTREAM)\n"
    "  --upstream-token-file FILE  its token (else FIXTURE_BROKER_UPSTREAM_TOKEN)\n"
    "  --upstream-ca FILE          the CA that signed its certificate (default: the system's)\n"
    "  --upstream-cert FILE        a client certificate for it (PEM), with --upstream-key\n"
    "  --upstream-key FILE         that certificate's private key\n"
    "  --log-level LEVEL           error, warn, info or debug (default info)\n"
    "  --help, --version\n"
    "\n"
    "run: start a private broker on a free loopback port, run COMMAND with\n"
    "FIXTURE_BROKER_URL set, stop when it exits, and exit with its status.\n"
    "sweep: drop what dead broker instances left on a PostgreSQL server (sweep --help).\n";

int
config_parse_args(struct config *cfg, int argc, char **argv, struct fxb_error *err)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "advertise", required_argument, NULL, 'A' },
		{ "config", required_argument, NULL, 'c' },
		{ "token-file", required_argument, NULL, 't' },
		{ "audit-log", required_argument, NULL, 'Y' },
		{ "status-require-token", no_argument, NULL, 'Z' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "tls-client-ca", required_argument, NULL, 'a' },
		{ "ports", required_argument, NULL, 'p' },
		{ "port-quarantine-ms", required_argument, NULL, 'q' },
		{ "ephemeral-range-file", required_argument, NULL, 'e' },
		{ "port-lock-file", required_argument, NULL, 'K' },
		{ "grace-ms", required_argument, NULL, 'g' },
		{ "drain-timeout-ms", required_argument, NULL, 'W' },
		{ "max-message-bytes", required_argument, NULL, 'm' },
		{ "max-fixtures", required_argument, NULL, 'f' },
		{ "heartbeat-ms", required_argument, NULL, 'P' },
		{ "dead-after-ms", required_argument, NULL, 'D' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "pg-url", required_argument, NULL, 'U' },
		{ "portserver", required_argument, NULL, 'R' },
		{ "integresql", no_argument, NULL, 'I' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "upstream-token-file", required_argument, NULL, 'T' },
		{ "upstream-ca", required_argument, NULL, 'x' },
		{ "upstream-cert", required_argument, NULL, 'X' },
		{ "upstream-key", required_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct {
		int opt;
		const char *key;
	} keys[] = {
		{ 'l', "listen" }, { 'A', "advertise" }, { 't', "token_file" }, { 'Y', "audit_log" },
		{ 'C', "tls.cert" }, { 'k', "tls.key" }, { 'a', "tls.client_ca" }, { 'p', "ports.range" },
		{ 'q', "ports.quarantine_ms" }, { 'e', "ports.ephemeral_range_file" },
		{ 'K', "ports.lock_file" },
		{ 'g', "grace_ms" }, { 'W', "drain_timeout_ms" }, { 'm', "max_message_bytes" },
		{ 'f', "max_fixtures_per_lease" }, { 'P', "heartbeat_ms" },
		{ 'D', "dead_after_ms" }, { 'L', "log_level" },
		{ 'S', "state_dir" }, { 'U', "postgres.url" }, { 'R', "portserver.socket" },
		{ 'u', "upstream" }, { 'T', "upstream_token_file" }, { 'x', "upstream_ca" },
		{ 'X', "upstream_cert" }, { 'y', "upstream_key" },
	};
	int c, pass;

	/* Two passes: the file first, then the flags over it. */
	for (pass = 0; pass < 2; pass++) {
		optind = 1;
		opterr = 0;
		while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
			if (c == 'h' || c == 'V') {
				if (pass == 0)
					continue;
				if (c == 'h')
					fputs(usage, stdout);
				else
					printf("fixture-broker %s\n", FXB_VERSION_STR);
				return 1;
			}
			if (c == '?') {
				error_set(err, ERR_INVALID_PARAMS, "%s: unknown option or missing value (see --help)",
				    argv[optind - 1]);
				return -1;
			}
			if (c == 'c') {
				if (pass == 0 && config_load_file(cfg, optarg, err) == -1)
					return -1;
				continue;
			}
			if (pass == 0)
				continue;
			if (c == 'I') {
				cfg->integresql_enabled = 1;
				continue;
			}
			if (c == 'Z') {
				cfg->status_require_token = 1;
				continue;
			}
			for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
				if (keys[i].opt == c && apply(cfg, keys[i].key, optarg, err) == -1)
					return -1;
		}
		if (optind < argc) {
			error_set(err, ERR_INVALID_PARAMS, "%s: unexpected argument (see --help)", argv[optind]);
			return -1;
		}
		/* The environment goes over the file, the flags over both. */
		if (pass == 0 && config_apply_env(cfg, err) == -1)
			return -1;
	}
	if (config_check_tls(cfg, err) == -1)
		return -1;
	if ((cfg->upstream_cert[0] != 0) != (cfg->upstream_key[0] != 0)) {
		error_set(err, ERR_INVALID_PARAMS, "%s: a client certificate needs both upstream_cert "
		    "and upstream_key", cfg->upstream_cert[0] ? "upstream_key" : "upstream_cert");
		return -1;
	}
	if (cfg->heartbeat_ms > 0 && cfg->dead_after_ms <= cfg->heartbeat_ms) {
		error_set(err, ERR_INVALID_PARAMS, "dead_after_ms: %d must be more than heartbeat_ms "
		    "(%d): a session needs time to answer a ping", cfg->dead_after_ms, cfg->heartbeat_ms);
		return -1;
	}
	return 0;
}
