/* test_vectors.c: runs every case of the files in protocol/vectors/ through rpc_handle().
 *
 * The matching rules are protocol/vectors/README.md's: "*" matches any present value,
 * a "*": "*" member allows extra keys, otherwise objects must have exactly the expected
 * keys; arrays match element by element. Each file runs on one fresh session of a broker
 * with ports 15000-15009, quarantine 0 and no tokens.
 */
#include <glob.h>

#include "unit.h"

static int
matches(json_t *want, json_t *got, char *why, size_t n, const char *path)
{
	char sub[512];
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_string(want) && !strcmp(json_string_value(want), "*"))
		return got != NULL || (snprintf(why, n, "%s: missing", path), 0);
	if (!got)
		return snprintf(why, n, "%s: missing", path), 0;
	if (json_is_object(want)) {
		int open = json_object_get(want, "*") != NULL;
		if (!json_is_object(got))
			return snprintf(why, n, "%s: expected an object", path), 0;
		json_object_foreach(want, k, v) {
			if (!strcmp(k, "*"))
				continue;
			snprintf(sub, sizeof sub, "%s.%s", path, k);
			if (!matches(v, json_object_get(got, k), why, n, sub))
				return 0;
		}
		if (!open)
			json_object_foreach(got, k, v)
				if (!json_object_get(want, k))
					return snprintf(why, n, "%s: unexpected member \"%s\"", path, k), 0;
		return 1;
	}
	if (json_is_array(want)) {
		if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
			return snprintf(why, n, "%s: expected an array of %zu", path,
			    json_array_size(want)), 0;
		json_array_foreach(want, i, v) {
			snprintf(sub, sizeof sub, "%s[%zu]", path, i);
			if (!matches(v, json_array_get(got, i), why, n, sub))
				return 0;
		}
		return 1;
	}
	if (!json_equal(want, got))
		return snprintf(why, n, "%s: values differ", path), 0;
	return 1;
}

static int
run_file(const char *file)
{
	json_error_t jerr;
	json_t *doc = json_load_file(file, 0, &jerr), *c;
	struct broker *b;
	struct session *s;
	size_t i;
	int failed = 0;

	cr_assert_not_null(doc, "%s: %s", file, jerr.text);
	b = unit_broker(15000, 15009, 0, 5000);
	s = unit_session(b, 0);
	json_array_foreach(json_object_get(doc, "cases"), i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		json_t *req = json_object_get(c, "request"), *want = json_object_get(c, "response");
		char *text = json_is_string(json_object_get(c, "request_text"))
		    ? strdup(json_string_value(json_object_get(c, "request_text")))
		    : json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
		char *out = rpc_handle(b, &s->peer, text, strlen(text)), why[512] = "";
		json_t *got = out ? json_loads(out, 0, NULL) : NULL;

		if (json_is_null(want) ? out != NULL : !matches(want, got, why, sizeof why, "$")) {
			cr_log_error("%s: case \"%s\": %s\n  sent: %s\n  got:  %s", file, name,
			    out ? why : "no reply", text, out ? out : "(none)");
			failed++;
		}
		json_decref(got);
		free(out);
		free(text);
	}
	unit_free(b);
	json_decref(doc);
	return failed;
}

Test(vectors, every_case_gets_the_expected_reply)
{
	glob_t g;
	int failed = 0;

	cr_assert_eq(glob("protocol/vectors/*.json", 0, NULL, &g), 0, "no vector files found");
	cr_assert_geq(g.gl_pathc, 4);
	for (size_t i = 0; i < g.gl_pathc; i++)
		failed += run_file(g.gl_pathv[i]);
	globfree(&g);
	cr_assert_eq(failed, 0, "%d vector case(s) failed", failed);
}
