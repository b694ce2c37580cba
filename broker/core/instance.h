/* instance.h: the broker's instance id, kept in the state directory from run to run.
 *
 * What a broker creates (server processes, their cgroups, later PostgreSQL objects) is
 * named by its instance id, so that the next run of the same instance can sweep what a
 * crashed run left behind. An id lives in <state_dir>/instances/<id>.lock and belongs to
 * the broker holding an flock on that file; a broker starting next to a running one on the
 * same state directory takes another id and never touches the running one's things.
 */
#ifndef FXB_INSTANCE_H
#define FXB_INSTANCE_H

#include "core/errors.h"

/* Claims an id for this run: the first one in state_dir whose lock is free (a previous
 * run that has ended), else a new random one. Fills id (16 hex digits) and *lock_fd (kept
 * open, close-on-exec, for the broker's lifetime; closing it gives the id up). Sets
 * *reused to 1 when the id comes from an earlier run. Returns 0, or -1 with err set when
 * the state directory cannot be used (id and *lock_fd are then untouched). */
int instance_claim(const char *state_dir, char id[17], int *lock_fd, int *reused,
    struct fxb_error *err);

#endif
