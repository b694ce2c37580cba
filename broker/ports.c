/* ports.c: the port pool: free LRU queue, quarantine queue, bind checks.
 *
 * Every port of the range is in exactly one state. Free ports form a FIFO queue: ports
 * are taken from its head and come back to its tail, so the least recently used port is
 * always next. Released ports enter a second FIFO, the quarantine, ordered by release
 * time; its head moves to the free tail once its quarantine has passed. Both queues are
 * intrusive singly linked lists over one array, so nothing is allocated after start-up.
 *
 * Several brokers on one host (two test runs, each with a private broker) would hand out
 * the same ports from the same range. With ports_share_host() they do not: a port is
 * locked in a host-wide file from the moment it is taken until it is free again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ports.h"

enum port_state { PORT_FREE, PORT_LEASED, PORT_QUARANTINED };

struct port {
	uint8_t state;
	int32_t next; /* index in the queue the port is in, -1 at the tail */
	uint64_t owner;
	uint64_t released_ms;
};

struct queue {
	int32_t head, tail;
	size_t len;
};

struct ports {
	int first, last;
	int quarantine_ms;
	struct port *ports;
	struct queue free_q, quarantine_q;
	size_t leased;
	uint64_t skipped_busy, skipped_other;
	int lock_fd; /* the host-wide lock file, or -1 */
};

static void
push(struct ports *p, struct queue *q, int32_t i)
{
	p->ports[i].next = -1;
	if (q->tail == -1)
		q->head = i;
	else
		p->ports[q->tail].next = i;
	q->tail = i;
	q->len++;
}

static int32_t
pop(struct ports *p, struct queue *q)
{
	int32_t i = q->head;

	if (i == -1)
		return -1;
	q->head = p->ports[i].next;
	if (q->head == -1)
		q->tail = -1;
	q->len--;
	return i;
}

int
ports_ephemeral_range(const char *path, int *lo, int *hi, struct fxb_error *err)
{
	FILE *f = fopen(path, "r");
	int n;

	if (!f) {
		error_set(err, ERR_INTERNAL, "ports.ephemeral_range_file: cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = fscanf(f, "%d %d", lo, hi);
	fclose(f);
	if (n != 2 || *lo < 1 || *hi > 65535 || *lo > *hi) {
		error_set(err, ERR_INTERNAL, "ports.ephemeral_range_file: %s does not hold a port range",
		    path);
		return -1;
	}
	return 0;
}

struct ports *
ports_new(int first, int last, int eph_lo, int eph_hi, int quarantine_ms, struct fxb_error *err)
{
	struct ports *p;

	if (first < 1 || last > 65535 || first > last) {
		error_set(err, ERR_INVALID_PARAMS, "ports.range: %d-%d is not a range within 1-65535",
		    first, last);
		return NULL;
	}
	if (first <= eph_hi && eph_lo <= last) {
		error_set(err, ERR_INVALID_PARAMS,
		    "ports.range: %d-%d overlaps the kernel's ephemeral range %d-%d; pick a range outside it",
		    first, last, eph_lo, eph_hi);
		return NULL;
	}
	if (!(p = calloc(1, sizeof *p)) ||
	    !(p->ports = calloc((size_t)(last - first + 1), sizeof *p->ports))) {
		free(p);
		error_set(err, ERR_INTERNAL, "ports: out of memory");
		return NULL;
	}
	p->first = first;
	p->last = last;
	p->quarantine_ms = quarantine_ms;
	p->lock_fd = -1;
	p->free_q.head = p->free_q.tail = -1;
	p->quarantine_q.head = p->quarantine_q.tail = -1;
	for (int32_t i = 0; i <= last - first; i++)
		push(p, &p->free_q, i);
	return p;
}

void
ports_free(struct ports *p)
{
	if (!p)
		return;
	if (p->lock_fd != -1)
		close(p->lock_fd); /* drops every lock this pool holds */
	free(p->ports);
	free(p);
}

int
ports_share_host(struct ports *p, const char *lock_path, struct fxb_error *err)
{
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);

	if (fd == -1) {
		error_set(err, ERR_INTERNAL, "ports.lock_file: cannot open %s: %s", lock_path,
		    strerror(errno));
		return -1;
	}
	/* Brokers of other users share the same file: keep it writable for all, whatever
	 * the umask was. Only the owner can change it; others' fchmod fails harmlessly. */
	(void)fchmod(fd, 0666);
	p->lock_fd = fd;
	return 0;
}

/* Takes (F_WRLCK) or drops (F_UNLCK) the host-wide lock of port; 0 on success. */
static int
host_lock(struct ports *p, uint16_t port, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = port, .l_len = 1 };

	if (p->lock_fd == -1)
		return 0;
	return fcntl(p->lock_fd, F_OFD_SETLK, &fl);
}

/* Moves every port whose quarantine has passed to the free queue. */
static void
reclaim(struct ports *p, uint64_t now)
{
	while (p->quarantine_q.head != -1) {
		struct port *pt = &p->ports[p->quarantine_q.head];
		if (pt->released_ms + (uint64_t)p->quarantine_ms > now)
			break;
		pt->state = PORT_FREE;
		host_lock(p, (uint16_t)(p->first + p->quarantine_q.head), F_UNLCK);
		push(p, &p->free_q, pop(p, &p->quarantine_q));
	}
}

/* Tries to bind one socket on the wildcard address; 1 if the bind succeeded. An AF_INET6
 * socket is dual-stack (IPV6_V6ONLY off), so one bind covers IPv4 and IPv6: it fails
 * when anything holds the port on 0.0.0.0, 127.0.0.1, [::] or [::1]. */
static int
try_bind(int family, int type, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, zero = 0, ok;

	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_any;
		len = sizeof *sin6;
	}
	fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	/* SO_REUSEADDR lets the check pass over TIME_WAIT leftovers, which do not stop a
	 * server from listening, while any live bound or listening socket still fails it. */
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
	if (ok && type == SOCK_STREAM)
		ok = listen(fd, 1) == 0;
	close(fd);
	return ok;
}

int
ports_is_bindable(uint16_t port)
{
	int tcp = try_bind(AF_INET6, SOCK_STREAM, port), udp;

	if (tcp == -1) /* no IPv6 on this host: check IPv4 alone */
		return try_bind(AF_INET, SOCK_STREAM, port) == 1 &&
		    try_bind(AF_INET, SOCK_DGRAM, port) == 1;
	udp = try_bind(AF_INET6, SOCK_DGRAM, port);
	return tcp == 1 && udp == 1;
}

int
ports_take(struct ports *p, uint64_t owner, size_t n, uint16_t *out, uint64_t now_ms)
{
	size_t got = 0, tries;

	reclaim(p, now_ms);
	if (p->free_q.len < n)
		return -1;
	/* Each free port is looked at once at most; busy ones go to the tail. */
	for (tries = p->free_q.len; got < n && tries > 0 && p->free_q.len >= n - got; tries--) {
		int32_t i = pop(p, &p->free_q);
		uint16_t port = (uint16_t)(p->first + i);

		if (host_lock(p, port, F_WRLCK) == -1) {
			p->skipped_other++;
			log_debug("port %u is held by another broker on this host; skipped", port);
			push(p, &p->free_q, i);
			continue;
		}
		if (!ports_is_bindable(port)) {
			host_lock(p, port, F_UNLCK);
			p->skipped_busy++;
			log_debug("port %u is bound by something else; skipped", port);
			push(p, &p->free_q, i);
			continue;
		}
		p->ports[i].state = PORT_LEASED;
		p->ports[i].owner = owner;
		out[got++] = port;
	}
	if (got == n) {
		p->leased += n;
		return 0;
	}
	/* Not enough: put back what was taken, at the head, in the order it was taken. */
	while (got > 0) {
		int32_t i = out[--got] - p->first;
		host_lock(p, out[got], F_UNLCK);
		p->ports[i].state = PORT_FREE;
		p->ports[i].owner = 0;
		p->ports[i].next = p->free_q.head;
		p->free_q.head = i;
		if (p->free_q.tail == -1)
			p->free_q.tail = i;
		p->free_q.len++;
	}
	return -1;
}

size_t
ports_release(struct ports *p, uint64_t owner, const uint16_t *list, size_t n, uint64_t now_ms)
{
	size_t released = 0;

	for (size_t k = 0; k < n; k++) {
		struct port *pt;
		int32_t i;

		if (list[k] < p->first || list[k] > p->last)
			continue;
		i = list[k] - p->first;
		pt = &p->ports[i];
		if (pt->state != PORT_LEASED || pt->owner != owner)
			continue;
		pt->owner = 0;
		pt->state = PORT_QUARANTINED;
		pt->released_ms = now_ms;
		push(p, &p->quarantine_q, i);
		p->leased--;
		released++;
	}
	reclaim(p, now_ms);
	return released;
}

uint64_t
ports_next_free_ms(const struct ports *p)
{
	if (p->quarantine_q.head == -1)
		return 0;
	return p->ports[p->quarantine_q.head].released_ms + (uint64_t)p->quarantine_ms;
}

void
ports_counts(struct ports *p, uint64_t now_ms, struct ports_counts *out)
{
	reclaim(p, now_ms);
	out->size = (size_t)(p->last - p->first + 1);
	out->free = p->free_q.len;
	out->quarantined = p->quarantine_q.len;
	out->leased = p->leased;
	out->skipped_busy = p->skipped_busy;
	out->skipped_other = p->skipped_other;
}
