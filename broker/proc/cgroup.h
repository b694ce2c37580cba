/* cgroup.h: a cgroup v2 per supervised process tree, where the host lets us write one.
 *
 * At start-up the broker looks for a writable cgroup v2 hierarchy (a pure v2 host, or the
 * "unified" mount of a hybrid one) with cgroup.kill (Linux 5.14 and later) and makes
 * <its own cgroup>/fixture-broker-<instance>/ there. When there is none, it says so once in
 * the log and servers are contained by process group, subreaper and marker instead. Every
 * call here is a few small file operations in cgroupfs and does not block.
 */
#ifndef FXB_CGROUP_H
#define FXB_CGROUP_H

#include <stddef.h>

struct cgroups;

/* Probes the host and prepares the instance's directory. Never fails: returns a
 * struct that may say "not available" (NULL only when out of memory). */
struct cgroups *cgroups_new(const char *instance);
/* Removes the instance's directory if it is empty. cgroups_free(NULL) does nothing. */
void cgroups_free(struct cgroups *cg);
/* 1 when cgroups can be used. */
int cgroups_available(const struct cgroups *cg);

/* Creates the cgroup name under the instance's directory; its path goes to path. Returns
 * 0, or -1 with errno set. */
int cgroup_create(struct cgroups *cg, const char *name, char *path, size_t pathlen);
/* Opens path's cgroup.procs for writing (close-on-exec): a child writes "0" into it to
 * join. Returns the fd or -1. */
int cgroup_procs_fd(const char *path);
/* Kills every process in path and its descendants (cgroup.kill). Returns 0 or -1. */
int cgroup_kill(const char *path);
/* Sends sig to every process listed in path's cgroup.procs. Returns how many it sent. */
int cgroup_signal(const char *path, int sig);
/* 1 while a process is left in path or below, 0 when empty, -1 when path is gone. */
int cgroup_populated(const char *path);
/* Removes path (which must be empty). Returns 0 or -1. */
int cgroup_remove(const char *path);
/* Kills and removes path and every cgroup below it, waiting up to wait_ms for them to
 * empty (start-up only). Returns 0 when it is gone. */
int cgroup_destroy_tree(const char *path, int wait_ms);

#endif
