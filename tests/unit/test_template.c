/* test_template.c: the placeholder grammar of server templates, as cases in tables.
 *
 * A text is literal bytes and placeholders: {port}, {ports.<name>}, {host}, {bind}, {lease}, {fixture}
 * and {fixtures.<need>.<field>}; "{{" and "}}" are one brace each, a lone "}" is itself.
 * Each case goes through both callers of the grammar: templates_new(), which checks a
 * command at start-up, and template_expand(), which fills it for one server. Drives
 * template.h alone; the rest of the template configuration is in test_servers.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/server/template.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

/* The message every unknown placeholder gets after its name. */
#define KNOWN " (known: {port}, {ports.<name>}, {host}, {bind}, {fixtures.<need>.<field>}, " \
	"{lease}, {fixture})"
#define UNTERMINATED "\"{\" without \"}\" (write \"{{\" for a brace)"

struct expand_case {
	const char *text, *want;
};

struct refuse_case {
	const char *text, *want; /* want: the whole message */
};

/* A "servers" section with one template "api" whose command is ["x", text]: with ports
 * "http" and "grpc" and a need "db", or, when bare, with no ports and no needs. */
static json_t *
api_section(const char *text, int bare)
{
	json_t *j = bare ? json_pack("{s:{s:[s,s], s:[]}}", "api", "command", "x", text, "ports")
	    : json_pack("{s:{s:[s,s], s:[s,s], s:{s:{s:s}}}}", "api", "command", "x", text, "ports",
	    "http", "grpc", "needs", "db", "kind", "postgres");

	cr_assert_not_null(j);
	return j;
}

/* Loads api_section(text, bare). Returns the templates, or NULL with err. */
static struct templates *
load(const char *text, int bare, struct fxb_error *err)
{
	json_t *j = api_section(text, bare);
	struct templates *ts = templates_new(j, err);

	json_decref(j);
	return ts;
}

/* Expands text for lease "l-7", fixture "api" on ports 15001 (http) and 15002 (grpc),
 * bound to 0.0.0.0 and reached at 10.0.0.5, its need "db" having the fields in fx. Returns the expansion, or NULL with err. */
static char *
expand_with(const char *text, json_t *fx, struct fxb_error *err)
{
	static const uint16_t ports[] = { 15001, 15002 };
	struct fxb_error lerr = { 0 };
	struct templates *ts = load("x", 0, &lerr);
	struct expand_vars v = { .host = "10.0.0.5", .bind = "0.0.0.0", .lease = "l-7",
		.fixture = "api", .ports = ports, .fixtures = fx };
	char *out;

	cr_assert_not_null(ts, "%s", lerr.text);
	out = template_expand(templates_get(ts, "api"), text, &v, err);
	templates_free(ts);
	return out;
}

/* expand_with() with db's fields: a URL, a port number, a field whose name has a dot, a
 * boolean and a fraction. */
static char *
expand(const char *text, struct fxb_error *err)
{
	json_t *fx = json_pack("{s:{s:s, s:i, s:s, s:b, s:f}}", "db", "url", "postgres://u@h/db",
	    "port", 5432, "a.b", "dotted", "flag", 1, "ratio", 0.5);
	char *out;

	cr_assert_not_null(fx);
	out = expand_with(text, fx, err);
	json_decref(fx);
	return out;
}

/* Asserts that each case is accepted at start-up and expands to its want. */
static void
expands(const struct expand_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fxb_error err = { 0 };
		struct templates *ts = load(cases[i].text, 0, &err);
		char *out;

		cr_assert_not_null(ts, "refused \"%s\" at start-up: %s", cases[i].text, err.text);
		templates_free(ts);
		out = expand(cases[i].text, &err);
		cr_assert_not_null(out, "\"%s\": %s", cases[i].text, err.text);
		cr_assert_str_eq(out, cases[i].want, "\"%s\"", cases[i].text);
		free(out);
	}
}

/* Asserts that each case is refused at start-up with exactly its message, and that
 * expanding it fails with the same message under the template's own key. */
static void
refuses(const struct refuse_case *cases, size_t n, int bare)
{
	static const char at_start[] = "servers.api.command[1]: ";
	static const char at_expand[] = "servers.api: ";

	for (size_t i = 0; i < n; i++) {
		struct fxb_error err = { 0 };
		struct templates *ts = load(cases[i].text, bare, &err);
		char want[300];
		char *out;

		cr_assert_null(ts, "accepted \"%s\"", cases[i].text);
		cr_assert_eq(err.code, ERR_INVALID_PARAMS, "\"%s\": code %d", cases[i].text, err.code);
		snprintf(want, sizeof want, "%s%s", at_start, cases[i].want);
		cr_assert_str_eq(err.text, want, "\"%s\"", cases[i].text);
		error_clear(&err);
		if (bare)
			continue; /* expansion below is against the full template */
		out = expand(cases[i].text, &err);
		cr_assert_null(out, "expanded \"%s\" to \"%s\"", cases[i].text, out);
		snprintf(want, sizeof want, "%s%s", at_expand, cases[i].want);
		cr_assert_str_eq(err.text, want, "\"%s\"", cases[i].text);
		error_clear(&err);
	}
}

Test(template, fills_every_kind_of_placeholder)
{
	static const struct expand_case cases[] = {
		{ "{port}", "15001" },
		{ "{ports.http}", "15001" },
		{ "{ports.grpc}", "15002" },
		{ "{lease}", "l-7" },
		{ "{fixture}", "api" },
		{ "{host}", "10.0.0.5" },
		{ "{bind}", "0.0.0.0" },
		{ "--listen={bind}:{port} --public=http://{host}:{port}",
		  "--listen=0.0.0.0:15001 --public=http://10.0.0.5:15001" },
		{ "{fixtures.db.url}", "postgres://u@h/db" },
		{ "{fixtures.db.port}", "5432" },
		/* The field is everything after the need's dot. */
		{ "{fixtures.db.a.b}", "dotted" },
		{ "--listen=127.0.0.1:{port} --grpc={ports.grpc} --http={ports.http}",
		  "--listen=127.0.0.1:15001 --grpc=15002 --http=15001" },
		{ "{fixtures.db.url}?port={fixtures.db.port}&app={lease}/{fixture}",
		  "postgres://u@h/db?port=5432&app=l-7/api" },
	};

	expands(cases, NCASES(cases));
}

Test(template, copies_text_without_placeholders_as_it_is)
{
	static const struct expand_case cases[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "port", "port" },
		{ "a}b", "a}b" },        /* a lone "}" is itself */
		{ "}", "}" },
		{ "x}", "x}" },
		{ "caf\xc3\xa9 100%", "caf\xc3\xa9 100%" },
	};

	expands(cases, NCASES(cases));
}

Test(template, reads_doubled_braces_as_one_brace)
{
	static const struct expand_case cases[] = {
		{ "{{", "{" },
		{ "}}", "}" },
		{ "{{}}", "{}" },
		{ "{{port}}", "{port}" },
		{ "{{{port}}}", "{15001}" },
		{ "}}}", "}}" },
		{ "{{\"json\": {{}}, {port}} }", "{\"json\": {}, 15001} }" },
	};

	expands(cases, NCASES(cases));
}

Test(template, expands_adjacent_placeholders_with_nothing_between)
{
	static const struct expand_case cases[] = {
		{ "{port}{port}", "1500115001" },
		{ "{lease}{fixture}", "l-7api" },
		{ "{ports.grpc}{fixtures.db.port}{lease}", "150025432l-7" },
		{ "a{port}b{port}c", "a15001b15001c" },
	};

	expands(cases, NCASES(cases));
}

Test(template, grows_the_output_past_its_first_guess)
{
	char url[2000], text[64 * 20 + 1] = "", want[64 * 2000 + 1] = "";
	struct fxb_error err = { 0 };
	json_t *fx;
	char *out;

	memset(url, 'u', sizeof url - 1);
	url[sizeof url - 1] = '\0';
	fx = json_pack("{s:{s:s}}", "db", "url", url);
	for (int i = 0; i < 64; i++) {
		strcat(text, "{fixtures.db.url}");
		strcat(want, url);
	}
	out = expand_with(text, fx, &err);
	cr_assert_not_null(out, "%s", err.text);
	cr_assert_eq(strlen(out), strlen(want));
	cr_assert_str_eq(out, want);
	free(out);
	json_decref(fx);
}

Test(template, refuses_an_unterminated_placeholder)
{
	static const struct refuse_case cases[] = {
		{ "{", UNTERMINATED },
		{ "{port", UNTERMINATED },
		{ "x{", UNTERMINATED },
		{ "{port} {lease", UNTERMINATED },
		{ "{{{", UNTERMINATED },  /* "{{" then a "{" that opens nothing */
		{ "}}{", UNTERMINATED },
	};

	refuses(cases, NCASES(cases), 0);
}

Test(template, refuses_an_unknown_placeholder)
{
	static const struct refuse_case cases[] = {
		{ "{prot}", "unknown placeholder {prot}" KNOWN },
		{ "{}", "unknown placeholder {}" KNOWN },
		{ "{Port}", "unknown placeholder {Port}" KNOWN },
		{ "{ port}", "unknown placeholder { port}" KNOWN },
		{ "{ports}", "unknown placeholder {ports}" KNOWN },
		{ "{port.http}", "unknown placeholder {port.http}" KNOWN },
		{ "{fixtures}", "unknown placeholder {fixtures}" KNOWN },
		{ "{leases}", "unknown placeholder {leases}" KNOWN },
		/* The name runs to the first "}", braces included. */
		{ "{a{b}", "unknown placeholder {a{b}" KNOWN },
		{ "{port {lease}", "unknown placeholder {port {lease}" KNOWN },
	};

	refuses(cases, NCASES(cases), 0);
}

Test(template, refuses_a_port_the_template_does_not_have)
{
	static const struct refuse_case named[] = {
		{ "{ports.admin}", "{ports.admin}: the template has no port \"admin\"" },
		{ "{ports.}", "{ports.}: the template has no port \"\"" },
		{ "{ports.HTTP}", "{ports.HTTP}: the template has no port \"HTTP\"" },
	};
	static const struct refuse_case none[] = {
		{ "{port}", "{port}: the template has no ports" },
		{ "x {port}", "{port}: the template has no ports" },
		{ "{ports.main}", "{ports.main}: the template has no port \"main\"" },
	};

	refuses(named, NCASES(named), 0);
	refuses(none, NCASES(none), 1);
}

Test(template, refuses_a_need_the_template_does_not_have)
{
	static const struct refuse_case cases[] = {
		{ "{fixtures.cache.url}", "{fixtures.cache.url}: the template needs no fixture \"cache\"" },
		{ "{fixtures.DB.url}", "{fixtures.DB.url}: the template needs no fixture \"DB\"" },
	};
	static const struct refuse_case no_needs[] = {
		{ "{fixtures.db.url}", "{fixtures.db.url}: the template needs no fixture \"db\"" },
	};

	refuses(cases, NCASES(cases), 0);
	refuses(no_needs, NCASES(no_needs), 1);
}

Test(template, refuses_a_fixtures_placeholder_without_a_need_and_a_field)
{
	static const struct refuse_case cases[] = {
		{ "{fixtures.}", "{fixtures.}: expected {fixtures.<need>.<field>}" },
		{ "{fixtures.db}", "{fixtures.db}: expected {fixtures.<need>.<field>}" },
		{ "{fixtures.db.}", "{fixtures.db.}: expected {fixtures.<need>.<field>}" },
		{ "{fixtures..url}", "{fixtures..url}: expected {fixtures.<need>.<field>}" },
	};

	refuses(cases, NCASES(cases), 0);
}

Test(template, reports_the_first_error_in_the_text)
{
	static const struct refuse_case cases[] = {
		{ "{nope} {port", "unknown placeholder {nope}" KNOWN },
		{ "{ports.admin}{nope}", "{ports.admin}: the template has no port \"admin\"" },
		{ "{port}{fixtures.db}{", "{fixtures.db}: expected {fixtures.<need>.<field>}" },
	};

	refuses(cases, NCASES(cases), 0);
}

Test(template, refuses_a_field_the_needed_fixture_lacks_only_when_expanding)
{
	static const struct refuse_case cases[] = {
		{ "{fixtures.db.password}", "{fixtures.db.password}: the fixture has no such text or "
		  "number field" },
		{ "{fixtures.db.flag}", "{fixtures.db.flag}: the fixture has no such text or number field" },
		{ "{fixtures.db.ratio}", "{fixtures.db.ratio}: the fixture has no such text or number field" },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct fxb_error err = { 0 };
		struct templates *ts = load(cases[i].text, 0, &err);
		char want[300];

		/* At start-up the need's fields are not known yet. */
		cr_assert_not_null(ts, "\"%s\": %s", cases[i].text, err.text);
		templates_free(ts);
		cr_assert_null(expand(cases[i].text, &err), "\"%s\"", cases[i].text);
		cr_assert_eq(err.code, ERR_INVALID_PARAMS);
		snprintf(want, sizeof want, "servers.api: %s", cases[i].want);
		cr_assert_str_eq(err.text, want);
		error_clear(&err);
	}
}

Test(template, refuses_any_field_when_the_need_left_no_fields)
{
	struct fxb_error err = { 0 };
	json_t *fx = json_object();

	cr_assert_null(expand_with("{port} {fixtures.db.url}", fx, &err));
	cr_assert_str_eq(err.text, "servers.api: {fixtures.db.url}: the fixture has no such text or "
	    "number field");
	error_clear(&err);
	cr_assert_null(expand_with("{fixtures.db.url}", NULL, &err));
	cr_assert_str_eq(err.text, "servers.api: {fixtures.db.url}: the fixture has no such text or "
	    "number field");
	error_clear(&err);
	json_decref(fx);
}

Test(template, cuts_a_very_long_placeholder_name_in_its_message)
{
	char text[400], want[512];
	struct fxb_error err = { 0 };

	text[0] = '{';
	memset(text + 1, 'p', 300);
	strcpy(text + 301, "}");
	cr_assert_null(load(text, 0, &err));
	/* The name is cut to 159 bytes, then the message to the error's 239. */
	snprintf(want, sizeof want, "servers.api.command[1]: unknown placeholder {%.159s}" KNOWN,
	    text + 1);
	want[sizeof err.text - 1] = '\0';
	cr_assert_eq(strlen(err.text), sizeof err.text - 1);
	cr_assert_str_eq(err.text, want);
	error_clear(&err);
}

/* Placeholders are checked in every field that has them, each message naming its key. */
Test(template, checks_placeholders_wherever_the_template_has_them)
{
	static const struct {
		const char *section, *want;
	} cases[] = {
		{ "{\"api\": {\"command\": [\"x\", \"{prot}\"]}}",
		  "servers.api.command[1]: unknown placeholder {prot}" KNOWN },
		{ "{\"api\": {\"command\": [\"x\"], \"env\": {\"U\": \"{fixtures.db.url}\"}}}",
		  "servers.api.env.U: {fixtures.db.url}: the template needs no fixture \"db\"" },
		{ "{\"api\": {\"command\": [\"x\"], \"cwd\": \"{fixtures.db}\", "
		  "\"needs\": {\"db\": {\"kind\": \"port\"}}}}",
		  "servers.api.cwd: {fixtures.db}: expected {fixtures.<need>.<field>}" },
		{ "{\"api\": {\"command\": [\"x\"], \"cwd\": \"/tmp/{lease\"}}",
		  "servers.api.cwd: " UNTERMINATED },
		{ "{\"api\": {\"command\": [\"x\"], \"ready\": [{\"type\": \"exec\", \"command\": [\"{nope}\"]}]}}",
		  "servers.api.ready[0].command[0]: unknown placeholder {nope}" KNOWN },
		{ "{\"api\": {\"command\": [\"x\"], \"ports\": [\"a\"], "
		  "\"ready\": [{\"type\": \"exec\", \"command\": [\"t\", \"{ports.b}\"]}]}}",
		  "servers.api.ready[0].command[1]: {ports.b}: the template has no port \"b\"" },
		{ "{\"api\": {\"command\": [\"x\"], \"bind\": \"ci.example\"}}",
		  "servers.api.bind: expected an IP address (\"127.0.0.1\", \"0.0.0.0\", \"::\", "
		  "\"10.0.0.5\")" },
		{ "{\"api\": {\"command\": [\"x\"], \"bind\": 0}}",
		  "servers.api.bind: expected an IP address (\"127.0.0.1\", \"0.0.0.0\", \"::\", "
		  "\"10.0.0.5\")" },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct fxb_error err = { 0 };
		json_error_t jerr;
		json_t *j = json_loads(cases[i].section, 0, &jerr);

		cr_assert_not_null(j, "case %zu: %s", i, jerr.text);
		cr_assert_null(templates_new(j, &err), "case %zu accepted", i);
		cr_assert_eq(err.code, ERR_INVALID_PARAMS);
		cr_assert_str_eq(err.text, cases[i].want);
		error_clear(&err);
		json_decref(j);
	}
}
