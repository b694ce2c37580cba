/* servers.h: the "server" fixture kind: supervised processes started from templates.
 *
 * A client leases {"kind": "server", "template": "<name>", "env": {...}} and gets its own
 * instance of the template's program, started on the lease's ports, past its readiness
 * probes. The process tree lives in its own session, process group and (where available)
 * cgroup; on release it gets SIGTERM, then SIGKILL after the template's grace period, and
 * the ports go to quarantine only once every process of the tree is gone. A server that
 * dies after it was ready is reported to its session (server.exited). Templates come from
 * the configuration (template.h); clients never send commands.
 */
#ifndef FXB_SERVERS_H
#define FXB_SERVERS_H

#include <jansson.h>

#include "errors.h"

struct broker;
struct session;
struct servers;

extern const struct fixture_kind server_kind;

/* Parses the configuration's "servers" section (NULL: none). Returns NULL with err
 * naming the key at fault. */
struct servers *servers_new(struct broker *b, json_t *section, struct fxb_error *err);
/* Every server must have stopped (their leases are released first). NULL does nothing. */
void servers_free(struct servers *sv);

/* server.logs: the captured output of fixture of s's lease lid, the last tail lines of
 * each stream (0: all it holds): {"stdout", "stderr"}. NULL with err set. */
json_t *servers_logs(struct broker *b, struct session *s, const char *lid,
    const char *fixture, json_int_t tail, struct fxb_error *err);

#endif
