/* lease.c: lease objects: fxb_lease_acquire/release/free and the accessors.
 *
 * A struct fxb_lease is a local copy of one lease.acquire result: its id, the fixtures
 * object as the broker sent it, and each fixture's fields rendered as strings once, so
 * that the accessors are read-only and may be called from several threads. It does not
 * point back to its client: fxb_client_free does not touch leases, and a lease outlives
 * its connection (the broker keeps it while the session lives, or until released). It
 * holds its session instead (shared with the client, counted), whose lost flag the client
 * raises when it learns that the session is gone: from then on the lease answers
 * FXB_ELOST.
 */
#include "client.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fxb_lease {
	char *id;
	struct session *sess; /* the session it was granted in */
	json_t *fixtures; /* {name: {field: value}} as the broker sent it */
	json_t *text;     /* {name: {field: "value as text"}} for fxb_lease_field */
	size_t n;
	const char **names; /* keys of fixtures, in the broker's order */
};

/* Renders a fixture's fields as strings: numbers in decimal, true/false, objects and
 * arrays as compact JSON; null fields are left out. Returns a new object or NULL. */
static json_t *
render_fields(json_t *fixture)
{
	json_t *out = json_object(), *v, *s;
	const char *key;
	char num[64], *dump;

	if (!out)
		return NULL;
	json_object_foreach(fixture, key, v)
	{
		switch (json_typeof(v)) {
		case JSON_STRING:
			s = json_incref(v);
			break;
		case JSON_INTEGER:
			snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			s = json_string(num);
			break;
		case JSON_REAL:
			snprintf(num, sizeof num, "%.17g", json_real_value(v));
			s = json_string(num);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			s = json_string(json_is_true(v) ? "true" : "false");
			break;
		case JSON_NULL:
			continue;
		default:
			if (!(dump = json_dumps(v, JSON_COMPACT)))
				goto fail;
			s = json_string(dump);
			free(dump);
			break;
		}
		if (!s || json_object_set_new(out, key, s))
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

/* Builds a lease from a lease.acquire result (borrowed). Returns the lease, or NULL with
 * *code set to FXB_EPROTO (the result is malformed) or FXB_ENOMEM. */
static struct fxb_lease *
lease_from_result(json_t *result, int *code)
{
	struct fxb_lease *l;
	json_t *fixtures = json_object_get(result, "fixtures"), *v, *t;
	const char *id = json_string_value(json_object_get(result, "lease"));
	const char *key;
	size_t i = 0;

	*code = FXB_EPROTO;
	if (!id || !json_is_object(fixtures))
		return NULL;
	json_object_foreach(fixtures, key, v) if (!json_is_object(v)) return NULL;

	*code = FXB_ENOMEM;
	if (!(l = calloc(1, sizeof *l)))
		return NULL;
	l->n = json_object_size(fixtures);
	l->id = strdup(id);
	l->fixtures = json_incref(fixtures);
	l->text = json_object();
	l->names = calloc(l->n ? l->n : 1, sizeof *l->names);
	if (!l->id || !l->text || !l->names)
		goto fail;
	json_object_foreach(fixtures, key, v)
	{
		if (!(t = render_fields(v)) || json_object_set_new(l->text, key, t))
			goto fail;
		l->names[i++] = key;
	}
	return l;
fail:
	fxb_lease_free(l);
	return NULL;
}

/* Parses text as a JSON object for field what. Returns a new reference, or NULL with the
 * client's error set. */
static json_t *
parse_object(struct fxb_client *c, const char *what, const char *text)
{
	json_error_t jerr;
	json_t *o = json_loads(text, 0, &jerr);

	if (!o) {
		client_fail(c, FXB_EINVAL, "lease.acquire: %s is not JSON: %s", what, jerr.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		client_fail(c, FXB_EINVAL, "lease.acquire: %s is not a JSON object", what);
		return NULL;
	}
	return o;
}

/* Builds the lease.acquire params into *out (a new object). Returns 0, or FXB_EINVAL or
 * FXB_ENOMEM with the error set and *out NULL. */
static int
acquire_params(struct fxb_client *c, const struct fxb_fixture_spec *fixtures, size_t n,
    const struct fxb_acquire_options *opts, json_t **out)
{
	json_t *params = NULL, *specs, *spec, *extra;
	size_t i;

	*out = NULL;

	if (!(specs = json_object()))
		goto oom;
	for (i = 0; i < n; i++) {
		if (!fixtures[i].name || !fixtures[i].kind) {
			client_fail(
			    c, FXB_EINVAL, "lease.acquire: fixture %zu has no name or kind", i);
			goto fail;
		}
		if (json_object_get(specs, fixtures[i].name)) {
			client_fail(c, FXB_EINVAL, "lease.acquire: fixture \"%s\" is named twice",
			    fixtures[i].name);
			goto fail;
		}
		if (!(spec = json_object()))
			goto oom;
		if (json_object_set_new(specs, fixtures[i].name, spec)) {
			json_decref(spec);
			client_fail(c, FXB_EINVAL,
			    "lease.acquire: fixture %zu's name is not valid UTF-8", i);
			goto fail;
		}
		if (json_object_set_new(spec, "kind", json_string(fixtures[i].kind))) {
			client_fail(c, FXB_EINVAL,
			    "lease.acquire: the kind of \"%s\" is not valid "
			    "UTF-8",
			    fixtures[i].name);
			goto fail;
		}
		if (fixtures[i].options_json) {
			if (!(extra = parse_object(c, "options_json", fixtures[i].options_json)))
				goto fail;
			/* The kind given as a field wins over one in the options. */
			if (json_object_update_missing(spec, extra)) {
				json_decref(extra);
				goto oom;
			}
			json_decref(extra);
		}
	}
	params = json_pack("{s:o, s:i}", "fixtures", specs, "wait_ms", opts->wait_ms);
	specs = NULL;
	if (!params)
		goto oom;
	if (opts->ttl_ms && json_object_set_new(params, "ttl_ms", json_integer(opts->ttl_ms)))
		goto oom;
	if (opts->labels_json) {
		if (!(extra = parse_object(c, "labels_json", opts->labels_json)))
			goto fail;
		if (json_object_set_new(params, "labels", extra))
			goto oom;
	}
	*out = params;
	return 0;
oom:
	json_decref(specs);
	json_decref(params);
	return client_fail(c, FXB_ENOMEM, "lease.acquire: out of memory");
fail:
	json_decref(specs);
	json_decref(params);
	return FXB_EINVAL;
}

int
fxb_lease_acquire(struct fxb_client *c, const struct fxb_fixture_spec *fixtures, size_t n,
    const struct fxb_acquire_options *opts, struct fxb_lease **out)
{
	static const struct fxb_acquire_options none;
	json_t *params, *result;
	struct session *sess = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!c)
		return FXB_EINVAL;
	client_clear(c);
	if (!out || !fixtures || !n)
		return client_fail(c, FXB_EINVAL, "lease.acquire: no fixtures, or out is NULL");
	if (!opts)
		opts = &none;
	if (opts->wait_ms < 0 || opts->ttl_ms < 0)
		return client_fail(c, FXB_EINVAL, "lease.acquire: wait_ms or ttl_ms is negative");
	if ((rc = acquire_params(c, fixtures, n, opts, &params)))
		return rc;

	/* The broker may hold the call for wait_ms before it answers. */
	if ((rc = client_call_in(c, "lease.acquire", params, opts->wait_ms, &result, &sess)))
		return rc;
	*out = lease_from_result(result, &rc);
	json_decref(result);
	if (*out)
		(*out)->sess = sess;
	else
		session_unref(sess);
	if (!*out && rc == FXB_ENOMEM)
		return client_fail(c, rc, "lease.acquire: out of memory");
	if (!*out)
		return client_fail(c, rc, "lease.acquire: the result has no lease id or fixtures");
	return 0;
}

int
fxb_lease_release(struct fxb_client *c, struct fxb_lease *l)
{
	json_t *params;
	int rc;

	if (!c) {
		fxb_lease_free(l);
		return FXB_EINVAL;
	}
	client_clear(c);
	if (!l)
		return client_fail(c, FXB_EINVAL, "lease.release: the lease is NULL");
	if (fxb_lease_state(l) == FXB_ELOST) {
		rc = client_fail(c, FXB_ELOST,
		    "lease.release: lease %s was lost with its session %s (the broker released it)",
		    l->id, l->sess->id);
		fxb_lease_free(l);
		return rc;
	}
	if (!(params = json_pack("{s:s}", "lease", l->id)))
		rc = client_fail(c, FXB_ENOMEM, "lease.release: out of memory");
	else
		rc = client_call(c, "lease.release", params, 0, NULL);
	fxb_lease_free(l);
	return rc;
}

void
fxb_lease_free(struct fxb_lease *l)
{
	if (!l)
		return;
	session_unref(l->sess);
	free(l->names);
	json_decref(l->text);
	json_decref(l->fixtures);
	free(l->id);
	free(l);
}

int
fxb_lease_state(const struct fxb_lease *l)
{
	if (!l)
		return FXB_EINVAL;
	return l->sess && atomic_load(&l->sess->lost) ? FXB_ELOST : FXB_OK;
}

const char *
fxb_lease_id(const struct fxb_lease *l)
{
	return l ? l->id : NULL;
}

size_t
fxb_lease_count(const struct fxb_lease *l)
{
	return l ? l->n : 0;
}

const char *
fxb_lease_fixture_name(const struct fxb_lease *l, size_t i)
{
	return l && i < l->n ? l->names[i] : NULL;
}

int
fxb_lease_port(const struct fxb_lease *l, const char *fixture)
{
	json_t *v;
	json_int_t port;

	if (!l || !fixture)
		return FXB_ENOENT;
	if (fxb_lease_state(l) == FXB_ELOST)
		return FXB_ELOST;
	v = json_object_get(json_object_get(l->fixtures, fixture), "port");
	if (!json_is_integer(v))
		return FXB_ENOENT;
	port = json_integer_value(v);
	return port >= 0 && port <= INT_MAX ? (int)port : FXB_ENOENT;
}

const char *
fxb_lease_host(const struct fxb_lease *l, const char *fixture)
{
	return fxb_lease_field(l, fixture, "host");
}

const char *
fxb_lease_field(const struct fxb_lease *l, const char *fixture, const char *field)
{
	if (!l || !fixture || !field || fxb_lease_state(l) == FXB_ELOST)
		return NULL;
	return json_string_value(json_object_get(json_object_get(l->text, fixture), field));
}
