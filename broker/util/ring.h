/* ring.h: a bounded byte ring for a server's output, and log text as JSON.
 *
 * A ring keeps the last cap bytes written to it; older bytes are dropped (and counted).
 * Servers keep one per stream (stdout, stderr) and one for both, for log tails.
 */
#ifndef FXB_RING_H
#define FXB_RING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct ring {
	char *buf;
	size_t cap, start, len;
	uint64_t total; /* bytes ever written */
};

/* Returns 0, or -1 when out of memory. */
int ring_init(struct ring *r, size_t cap);
void ring_close(struct ring *r);
void ring_write(struct ring *r, const void *data, size_t n);
/* The last lines lines of what r holds (0: all of it), malloc'd and NUL-terminated; a
 * final newline does not start a line. Sets *len. NULL when out of memory. */
char *ring_tail(const struct ring *r, size_t lines, size_t *len);

/* A JSON string of n bytes of program output: invalid UTF-8 (binary output, a character
 * cut by the ring) becomes U+FFFD. NULL when out of memory. */
json_t *text_json(const char *s, size_t n);

#endif
