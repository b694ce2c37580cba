/* portserver.h: portpicker's portserver protocol: a PID in, a port from the pool out.
 *
 * Google's portpicker (Python; absl and Bazel-built tests) asks a portserver for a port
 * when PORTSERVER_ADDRESS names its Unix socket: it connects, writes its PID as text and a
 * newline, and reads the port back ("15003\n"). A request the server will not serve is
 * answered by closing the connection, and portpicker then picks a port on its own.
 *
 * Here each requesting process becomes a session of its own, holding one port lease per
 * request, so the ports are the broker's, unique across every client of every protocol.
 * A process is known by its PID and its start time (/proc/PID/stat), as the portserver
 * knows it; its leases are released once that process is gone (checked every second) or
 * when a lease's TTL (portserver.lease_ttl_ms) runs out.
 */
#ifndef FXB_PORTSERVER_H
#define FXB_PORTSERVER_H

#include "core/errors.h"

struct broker;
struct portserver;

/* Listens on cfg.portserver_socket ("@name": the abstract namespace, as portpicker
 * writes it; otherwise a path, replacing a stale socket there). Returns the server, or
 * NULL with err set. */
struct portserver *portserver_new(struct broker *b, struct fxb_error *err);
/* Stops listening and drops requests under way; the sessions of its processes must be
 * closed first (broker_free closes every session). portserver_free(NULL) does nothing. */
void portserver_free(struct portserver *ps);

#endif
