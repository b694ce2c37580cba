/* fdwatch.h: foreign file descriptors (child pipes, probe sockets) read on the event loop.
 *
 * Each watched descriptor is adopted by libwebsockets as a RAW file on the "fdwatch"
 * protocol, so it is polled with everything else and nothing blocks. lws owns the
 * descriptor from then on and closes it. The owner is told when it may read, and once
 * when the descriptor has closed (end of file, hang-up, or the loop going away); after
 * that, or after fdwatch_free(), the watch is gone and must not be used.
 */
#ifndef FXB_FDWATCH_H
#define FXB_FDWATCH_H

#include <libwebsockets.h>

struct broker;
struct fdwatch;

enum fdwatch_event {
	FDWATCH_READ,   /* readable: read until EAGAIN; return -1 from fn to close */
	FDWATCH_CLOSED, /* closed: drop the pointer, the watch is freed after fn returns */
};

/* Returns 0 to go on watching, -1 to close the descriptor (then FDWATCH_CLOSED follows). */
typedef int (*fdwatch_fn)(void *arg, int fd, enum fdwatch_event ev);

/* Watches fd (taken: closed on every path, on error too). Returns the watch, or NULL
 * when the loop could not adopt it. */
struct fdwatch *fdwatch_new(struct broker *b, int fd, fdwatch_fn fn, void *arg);
/* The owner is done: fn is never called again and the descriptor closes soon.
 * fdwatch_free(NULL) does nothing. */
void fdwatch_free(struct fdwatch *w);
/* The descriptor, until the watch is freed. */
int fdwatch_fd(const struct fdwatch *w);

/* The "fdwatch" protocol's callback, for loop.c's protocol table. */
int fdwatch_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
    size_t len);

#endif
