/* journal.h: the process groups this broker instance has started, on disk.
 *
 * One append-only text file per instance id in the state directory: a line when a
 * supervised tree starts (its leader's pid, which is also its process group and session,
 * the leader's start time, and its cgroup), a line when it is gone. When a broker is
 * killed outright, the file still lists what it left running, and the next run of the same
 * instance replays it at start-up and kills those trees. proc.c is the only user.
 */
#ifndef FXB_JOURNAL_H
#define FXB_JOURNAL_H

#include <sys/types.h>

#include "core/errors.h"

struct journal;

/* An entry an earlier run left open; cgroup is "" when the tree had none. */
typedef void (*journal_left_fn)(pid_t pid, unsigned long long start_ticks, const char *cgroup,
    void *arg);

/* Opens (creating) path, calls left for every entry an earlier run left open, then
 * empties the file. Returns the journal, or NULL with err set. */
struct journal *journal_open(const char *path, journal_left_fn left, void *arg,
    struct fxb_error *err);
/* Closes the file; journal_free(NULL) does nothing. */
void journal_free(struct journal *j);
/* Records a started tree. Returns 0 or -1 (logged; supervision goes on without it). */
int journal_add(struct journal *j, pid_t pid, unsigned long long start_ticks, const char *cgroup);
/* Records that the tree of pid is gone. */
void journal_remove(struct journal *j, pid_t pid);
/* How many trees are recorded as running. */
size_t journal_live(const struct journal *j);

#endif
