/* fdwatch.c: foreign descriptors adopted as RAW files on the loop (see fdwatch.h).
 *
 * A watch outlives its owner's interest: fdwatch_free() only clears the callback and asks
 * lws to close the wsi; the struct itself is freed from LWS_CALLBACK_RAW_CLOSE_FILE, the
 * one place lws guarantees the wsi is going away. When the lws context is destroyed with
 * watches still open, their owners get FDWATCH_CLOSED from there as well.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "core/log.h"
#include "net/fdwatch.h"

struct fdwatch {
	struct lws *wsi;
	int fd;
	fdwatch_fn fn; /* NULL once the owner let go */
	void *arg;
	int in_callback;
};

struct fdwatch *
fdwatch_new(struct broker *b, int fd, fdwatch_fn fn, void *arg)
{
	struct fdwatch *w = calloc(1, sizeof *w);
	lws_adopt_desc_t desc;

	if (!w || !b->vhost) {
		close(fd);
		free(w);
		return NULL;
	}
	w->fd = fd;
	w->fn = fn;
	w->arg = arg;
	memset(&desc, 0, sizeof desc);
	desc.vh = b->vhost;
	desc.type = LWS_ADOPT_RAW_FILE_DESC;
	desc.fd.filefd = fd;
	desc.vh_prot_name = "fdwatch";
	desc.opaque = w;
	/* On failure lws has closed fd already. */
	if (!(w->wsi = lws_adopt_descriptor_vhost_via_info(&desc))) {
		log_warnx("cannot adopt descriptor %d", fd);
		free(w);
		return NULL;
	}
	return w;
}

void
fdwatch_free(struct fdwatch *w)
{
	if (!w || !w->fn)
		return;
	w->fn = NULL;
	w->arg = NULL;
	/* From inside its own callback the return value closes it; elsewhere lws closes it
	 * on its next turn. */
	if (!w->in_callback)
		lws_set_timeout(w->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

int
fdwatch_fd(const struct fdwatch *w)
{
	return w->fd;
}

int
fdwatch_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
    size_t len)
{
	struct fdwatch *w = lws_get_opaque_user_data(wsi);
	int rc = 0;

	(void)user;
	(void)in;
	(void)len;
	if (!w)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (!w->fn)
			return -1;
		w->in_callback = 1;
		rc = w->fn(w->arg, w->fd, FDWATCH_READ);
		w->in_callback = 0;
		return rc == -1 || !w->fn ? -1 : 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		lws_set_opaque_user_data(wsi, NULL);
		if (w->fn)
			w->fn(w->arg, w->fd, FDWATCH_CLOSED);
		free(w);
		return 0;
	default:
		return 0;
	}
}
