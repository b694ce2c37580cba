/* ports.h: the pool of TCP/UDP ports the broker leases out.
 *
 * A fixed range outside the kernel's ephemeral range. Free ports are handed out least
 * recently used first; released ports sit in quarantine for quarantine_ms before they are
 * free again. Before every grant the port is checked with real binds (TCP and UDP, IPv4
 * and IPv6) and skipped while something else holds it. Ownership is by lease id.
 */
#ifndef FXB_PORTS_H
#define FXB_PORTS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct ports;

struct ports_counts {
	size_t size, free, leased, quarantined;
	uint64_t skipped_busy;  /* grants that passed over a port something else had bound */
	uint64_t skipped_other; /* grants that passed over a port another broker holds */
};

/* Reads the kernel's ephemeral range from path (normally
 * /proc/sys/net/ipv4/ip_local_port_range). Returns 0, or -1 with err set. */
int ports_ephemeral_range(const char *path, int *lo, int *hi, struct fxb_error *err);

/* Returns a pool over [first, last], or NULL with err set when the range is empty, out of
 * 1..65535, or overlaps [eph_lo, eph_hi]. */
struct ports *ports_new(int first, int last, int eph_lo, int eph_hi, int quarantine_ms,
    struct fxb_error *err);
void ports_free(struct ports *p);

/* Makes the pool share the host with other brokers: a port this pool takes is locked in
 * lock_path (an open-file-description byte lock at offset port) until it is free again,
 * and a port another broker has locked is passed over like a bound one. The kernel drops
 * the locks of a broker that dies. Returns 0, or -1 with err set when the file cannot be
 * opened (the caller may go on without sharing). */
int ports_share_host(struct ports *p, const char *lock_path, struct fxb_error *err);

/* Takes n ports for owner and writes them to out. Returns 0, or -1 when fewer than n
 * usable ports are free now; on -1 nothing is taken. now_ms is a monotonic clock. */
int ports_take(struct ports *p, uint64_t owner, size_t n, uint16_t *out, uint64_t now_ms);

/* Puts owner's ports into quarantine; ports that owner does not hold are ignored.
 * Returns how many were released. */
size_t ports_release(struct ports *p, uint64_t owner, const uint16_t *list, size_t n,
    uint64_t now_ms);

/* When the next quarantined port becomes free (monotonic ms), or 0 if none is waiting. */
uint64_t ports_next_free_ms(const struct ports *p);

void ports_counts(struct ports *p, uint64_t now_ms, struct ports_counts *out);

/* 1 if nothing on this host holds port (TCP and UDP, IPv4 and IPv6), else 0. */
int ports_is_bindable(uint16_t port);

#endif
