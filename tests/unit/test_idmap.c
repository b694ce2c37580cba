/* test_idmap.c: the id map agrees with a plain array under random churn. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "util/idmap.h"

Test(idmap, finds_what_was_put_and_forgets_what_was_deleted)
{
	struct idmap *m = idmap_new();
	int a, b;

	cr_assert_eq(idmap_put(m, 5, &a), 0);
	cr_assert_eq(idmap_put(m, 7, &b), 0);
	cr_assert_eq(idmap_get(m, 5), &a);
	cr_assert_eq(idmap_put(m, 5, &b), 0, "put overwrites");
	cr_assert_eq(idmap_get(m, 5), &b);
	cr_assert_eq(idmap_count(m), 2);
	cr_assert_eq(idmap_del(m, 5), &b);
	cr_assert_null(idmap_get(m, 5));
	cr_assert_null(idmap_del(m, 5));
	cr_assert_eq(idmap_put(m, 0, &a), -1, "id 0 is not allowed");
	cr_assert_eq(idmap_count(m), 1);
	idmap_free(m);
}

Test(idmap, matches_a_reference_under_random_churn)
{
	enum { N = 5000 };
	static char slots[N];
	static int present[N];
	struct idmap *m = idmap_new();

	srand(42);
	for (int step = 0; step < 200000; step++) {
		int k = rand() % N + 1;
		if (rand() % 3) {
			cr_assert_eq(idmap_put(m, (uint64_t)k * 977, &slots[k - 1]), 0);
			present[k - 1] = 1;
		} else {
			void *v = idmap_del(m, (uint64_t)k * 977);
			cr_assert_eq(v, present[k - 1] ? &slots[k - 1] : NULL, "step %d", step);
			present[k - 1] = 0;
		}
	}
	size_t count = 0;
	for (int k = 1; k <= N; k++) {
		cr_assert_eq(idmap_get(m, (uint64_t)k * 977), present[k - 1] ? &slots[k - 1] : NULL);
		count += present[k - 1];
	}
	cr_assert_eq(idmap_count(m), count);
	idmap_free(m);
}
