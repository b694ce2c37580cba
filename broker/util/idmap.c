/* idmap.c: an open-addressing hash map from 64-bit ids to pointers.
 *
 * Linear probing with backward-shift deletion, so there are no tombstones and lookups
 * stay short under churn. The table doubles at 50% load.
 */
#include <stdlib.h>

#include "util/idmap.h"

struct slot {
	uint64_t id;
	void *value;
};

struct idmap {
	struct slot *slots;
	size_t cap, count; /* cap is a power of two */
};

static size_t
hash(uint64_t id, size_t cap)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id & (cap - 1);
}

struct idmap *
idmap_new(void)
{
	struct idmap *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	m->cap = 64;
	m->slots = calloc(m->cap, sizeof *m->slots);
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void
idmap_free(struct idmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m);
}

static void
insert(struct slot *slots, size_t cap, uint64_t id, void *value)
{
	size_t i = hash(id, cap);

	while (slots[i].id && slots[i].id != id)
		i = (i + 1) & (cap - 1);
	slots[i].id = id;
	slots[i].value = value;
}

static int
grow(struct idmap *m)
{
	size_t cap = m->cap * 2;
	struct slot *slots = calloc(cap, sizeof *slots);

	if (!slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].id)
			insert(slots, cap, m->slots[i].id, m->slots[i].value);
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int
idmap_put(struct idmap *m, uint64_t id, void *value)
{
	if (id == 0)
		return -1;
	if ((m->count + 1) * 2 > m->cap && grow(m) == -1)
		return -1;
	if (!idmap_get(m, id))
		m->count++;
	insert(m->slots, m->cap, id, value);
	return 0;
}

static size_t
find(const struct idmap *m, uint64_t id)
{
	size_t i = hash(id, m->cap);

	while (m->slots[i].id) {
		if (m->slots[i].id == id)
			return i;
		i = (i + 1) & (m->cap - 1);
	}
	return m->cap;
}

void *
idmap_get(const struct idmap *m, uint64_t id)
{
	size_t i;

	if (id == 0)
		return NULL;
	i = find(m, id);
	return i == m->cap ? NULL : m->slots[i].value;
}

void *
idmap_del(struct idmap *m, uint64_t id)
{
	size_t i, j, home;
	void *value;

	if (id == 0 || (i = find(m, id)) == m->cap)
		return NULL;
	value = m->slots[i].value;
	m->slots[i].id = 0;
	m->slots[i].value = NULL;
	m->count--;
	/* Shift later members of the probe run back so no lookup stops early. */
	j = i;
	for (;;) {
		j = (j + 1) & (m->cap - 1);
		if (!m->slots[j].id)
			break;
		home = hash(m->slots[j].id, m->cap);
		/* Leave j where it is if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->slots[i] = m->slots[j];
		m->slots[j].id = 0;
		m->slots[j].value = NULL;
		i = j;
	}
	return value;
}

size_t
idmap_count(const struct idmap *m)
{
	return m->count;
}

void
idmap_each(const struct idmap *m, void (*fn)(void *value, void *arg), void *arg)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].id)
			fn(m->slots[i].value, arg);
}
