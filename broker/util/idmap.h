/* idmap.h: a hash map from 64-bit ids to pointers, for sessions and leases.
 *
 * Ids are the broker's own counters, so the map needs no string keys. The map never
 * owns the values.
 */
#ifndef FXB_IDMAP_H
#define FXB_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap;

struct idmap *idmap_new(void);
void idmap_free(struct idmap *m);
/* Returns 0, or -1 when out of memory (nothing changed). id 0 is not allowed. */
int idmap_put(struct idmap *m, uint64_t id, void *value) __attribute__((warn_unused_result));
void *idmap_get(const struct idmap *m, uint64_t id);
/* Removes id if present; returns the value it had, or NULL. */
void *idmap_del(struct idmap *m, uint64_t id);
size_t idmap_count(const struct idmap *m);
/* Calls fn for every value; fn must not change the map. */
void idmap_each(const struct idmap *m, void (*fn)(void *value, void *arg), void *arg);

#endif
