/* clock.h: the monotonic clock and random identifiers every module uses.
 *
 * Leaf functions with no state: any module, on the loop or on a worker thread, may call
 * them.
 */
#ifndef FXB_CLOCK_H
#define FXB_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds. */
uint64_t now_ms(void);
/* Fills buf (2*n+1 bytes) with n random bytes in hex (n at most 64). Returns 0 or -1. */
int random_hex(char *buf, size_t n);

#endif
