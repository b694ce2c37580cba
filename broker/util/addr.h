/* addr.h: IP addresses as text, the way fixtures report and servers bind them.
 *
 * Hosts are numeric IPv4 ("10.0.0.5") or IPv6 ("fd00::5") text without brackets; an
 * IPv4-mapped IPv6 address ("::ffff:10.0.0.5", what a dual-stack socket reports for an
 * IPv4 peer) is given as its IPv4 form. URLs bracket IPv6 hosts (addr_url_host).
 */
#ifndef FXB_ADDR_H
#define FXB_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The size that holds any host this module writes, '\0' included. */
#define ADDR_HOST_MAX 64

/* The local address of the connected socket fd (what its peer dialled) into host.
 * Returns 0, or -1 (not an IP socket, or getsockname failed) with host "". */
int addr_local_host(int fd, char *host, size_t len);
/* 127.0.0.0/8, ::1, ::ffff:127.x and the name "localhost". */
int addr_is_loopback(const char *host);
/* 0.0.0.0 and :: (every address of the host). */
int addr_is_wildcard(const char *host);
/* Fills sa with host (numeric IPv4 or IPv6; "localhost" is 127.0.0.1) and port. Returns
 * the length to pass to bind/connect, or 0 when host is not a numeric address. */
socklen_t addr_sockaddr(const char *host, uint16_t port, struct sockaddr_storage *sa);
/* Where to dial a server that listens on host: host itself, or the loopback address of
 * its family when host is a wildcard. Returns a static string or host. */
const char *addr_dial_host(const char *host);
/* host as it goes in a URL or a Host header: "[fd00::5]" for IPv6, host otherwise. */
void addr_url_host(const char *host, char *out, size_t len);

#endif
