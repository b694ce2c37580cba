/* config.h: the broker's settings, from defaults, a JSON file and command-line flags.
 *
 * Flags win over the file, the file over the defaults. Every invalid value is an error
 * that names its key; main() exits non-zero on it.
 */
#ifndef FXB_CONFIG_H
#define FXB_CONFIG_H

#include <jansson.h>
#include <limits.h>
#include <stddef.h>

#include "core/errors.h"
#include "core/log.h"

struct config {
	char listen_host[256];
	int listen_port; /* 0: the kernel picks; -1: do not listen (unit tests) */
	int listen_set;  /* given by file or flag */
	/* The host fixtures report to clients; "": the address each client dialled. */
	char advertise[256];
	char token_file[PATH_MAX];
	char audit_log[PATH_MAX]; /* the audit log's file, "-" for stderr; "": none */
	int status_require_token; /* /status, /metrics and the page need a valid token */
	/* TLS (PEM files; "": plain ws:// and http://). With a client CA, every client must
	 * present a certificate it signed. */
	char tls_cert[PATH_MAX];
	char tls_key[PATH_MAX];
	char tls_client_ca[PATH_MAX];
	int ports_first, ports_last;
	int quarantine_ms;
	char ephemeral_path[PATH_MAX];
	char port_lock_file[PATH_MAX]; /* shared by the brokers of a host; "none": not shared */
	int grace_ms;
	/* SIGTERM and admin.drain: how long sessions holding leases are served before the
	 * rest is released (net/loop.c); 0: shut down at once. */
	int drain_timeout_ms;
	size_t max_message_bytes;
	int max_fixtures;
	int heartbeat_ms;  /* ping every session this often; 0: never */
	int dead_after_ms; /* close a session that has sent nothing (a pong included) this long */
	/* Limits on what one connection costs (ws.c, rpc.c). */
	int auth_timeout_ms;          /* close a connection not authenticated by then; 0: never */
	size_t max_reply_queue_bytes; /* replies queued to one connection before it is not read */
	int reply_stall_ms;           /* close a connection over that cap this long */
	int max_batch_calls;          /* requests in one batch */
	size_t max_batch_reply_bytes; /* a batch's replies; calls past it are not run */
	enum log_level log_level;
	char state_dir[PATH_MAX]; /* default: $XDG_CACHE_HOME or ~/.cache, /fixture-broker */
	char pg_url[1024];        /* admin URL; empty: the embedded cluster */
	char portserver_socket[PATH_MAX]; /* portpicker's protocol ("@name": abstract); "": off */
	int portserver_ttl_ms;            /* a portserver lease's TTL; 0: none */
	int integresql_enabled;           /* the IntegreSQL-compatible API under /api/v1/ */
	int integresql_ttl_ms;            /* a test database's TTL unless returned; 0: none */
	int integresql_wait_ms;           /* how long a GET .../tests waits for a database */
	/* Forwarding (upstream.h): the broker to forward postgres fixtures and unknown server
	 * templates to (ws:// or wss://; "": none), its token (from the file, else
	 * FIXTURE_BROKER_UPSTREAM_TOKEN), and for wss:// the CA to verify it with ("": the
	 * system's) and a client certificate and key ("": none). */
	char upstream[1024];
	char upstream_token_file[PATH_MAX];
	char upstream_token[512];
	char upstream_ca[PATH_MAX];
	char upstream_cert[PATH_MAX];
	char upstream_key[PATH_MAX];
	/* Sections the resource modules parse themselves (NULL when absent): "servers"
	 * (server templates) and "postgres" (without its "url", which is pg_url). */
	json_t *servers;
	json_t *postgres;
};

void config_defaults(struct config *cfg);
/* Frees the sections; cfg can then be reused. */
void config_clear(struct config *cfg);
/* Loads a JSON file over cfg. Returns 0, or -1 with err naming the key. */
int config_load_file(struct config *cfg, const char *path, struct fxb_error *err);
/* Applies argv over cfg (after --config's file, whatever the order). Returns 0, 1 when
 * --help or --version was printed (exit 0), or -1 with err. */
int config_parse_args(struct config *cfg, int argc, char **argv, struct fxb_error *err);
/* Checks the TLS files: both or neither of cert and key, all readable, the key by its
 * owner alone. Returns 0, or -1 with err naming the key. */
int config_check_tls(const struct config *cfg, struct fxb_error *err);
/* Takes the upstream settings the environment gives (FIXTURE_BROKER_UPSTREAM,
 * FIXTURE_BROKER_UPSTREAM_TOKEN, FIXTURE_BROKER_UPSTREAM_CA/_CERT/_KEY, else
 * FIXTURE_BROKER_CA/_CERT/_KEY) over cfg; config_parse_args() calls it between the file
 * and the flags. Returns 0, or -1 with err naming the variable. */
int config_apply_env(struct config *cfg, struct fxb_error *err);
/* Parses "host:port" ("[::1]:7357" for IPv6). Returns 0 or -1 with err naming key. */
int config_parse_listen(struct config *cfg, const char *key, const char *value,
    struct fxb_error *err);

#endif
