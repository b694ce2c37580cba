/* pgembed.h: a private PostgreSQL cluster that the broker starts, supervises and stops.
 *
 * The embedded default when no admin URL is configured. pgembed_start() blocks (initdb on
 * a fresh state directory takes a second or two, a start a few hundred milliseconds), so
 * the pg module calls it from a worker thread, never from the event loop. The cluster
 * lives in <state_dir>/pg (data/, run/ for the Unix socket, postgres.log); when the broker
 * runs as root, initdb and postgres run as an unprivileged user, and if that user cannot
 * reach the state directory the cluster lives in /var/lib/fixture-broker/pg-<id> with
 * <state_dir>/pg a symbolic link to it. A supervisor thread restarts postgres if it dies;
 * postgres gets SIGINT (fast shutdown) if the broker dies, even by SIGKILL, and the next
 * start copes with what a killed broker left (a stale postmaster.pid, a half-made data
 * directory). One broker at a time per state directory (a lock file).
 */
#ifndef FXB_PGEMBED_H
#define FXB_PGEMBED_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"

struct pgembed;

/* Starts (initialising if needed) instance's cluster in state_dir on 127.0.0.1:port and a
 * Unix socket, running it as user when the broker is root. Returns it once it accepts
 * connections, or NULL with err set (nothing left running) and *port_busy set when
 * something else had bound the port meanwhile (the caller may try another). Blocks; never
 * on the loop. */
struct pgembed *pgembed_start(const char *state_dir, const char *instance, const char *user,
    int port, int *port_busy, struct fxb_error *err);
/* Stops postgres (fast shutdown; immediate after 20 s) and frees pe. NULL does nothing. */
void pgembed_stop(struct pgembed *pe);

/* The superuser's libpq conninfo (over the Unix socket), and the directory of the server's
 * binaries; valid until pgembed_stop(). */
const char *pgembed_conninfo(const struct pgembed *pe);
const char *pgembed_bindir(const struct pgembed *pe);
/* {"cluster_dir", "data_dir", "socket_dir", "port", "pid", "restarts", "bindir",
 * "initialised" (this start ran initdb), "start_ms"}. */
json_t *pgembed_status_json(struct pgembed *pe);

/* Finds a directory holding initdb and postgres: on path (a PATH-like list, may be NULL),
 * else the newest /usr/lib/postgresql/<major>/bin under root (normally "/usr/lib/postgresql"),
 * preferring major when it is not 0. Returns 0 or -1 with err saying where it looked. */
int pgembed_find_bindir(const char *path, const char *root, int major, char *out, size_t cap,
    struct fxb_error *err);

#endif
