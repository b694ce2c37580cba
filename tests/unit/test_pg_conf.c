/* test_pg_conf.c: the "postgres" configuration section, object names, identifier checks, URLs. */
#include <criterion/criterion.h>
#include <string.h>

#include "fixtures/pg/pg_conf.h"

static int
parse(const char *text, struct pg_conf *c, struct fxb_error *err)
{
	json_error_t jerr;
	json_t *j = text ? json_loads(text, 0, &jerr) : NULL;
	int rc;

	cr_assert(!text || j, "bad test JSON: %s", jerr.text);
	rc = pg_conf_parse(j, 4, c, err);
	json_decref(j);
	return rc;
}

Test(pg_conf, takes_pool_defaults_from_the_cpu_count)
{
	struct fxb_error err = { 0 };
	struct pg_conf c;

	cr_assert_eq(parse(NULL, &c, &err), 0, "%s", err.text);
	cr_assert_eq(c.min_ready, 4);
	cr_assert_eq(c.max, 16);
	cr_assert_eq(c.refill_parallelism, 2);
	cr_assert_eq(c.max_refill_parallelism, 8, "two per CPU, at most 8");
	cr_assert_eq(c.workers, 10, "the most refills plus two for foreground work");
	cr_assert_eq(c.storage, PG_STORAGE_AUTO, "memory when it can be had");
	cr_assert_eq(c.memory_max_bytes, 0, "half the memory filesystem");
	cr_assert_eq(c.memory_reserve_bytes, 64LL << 20);
	cr_assert_eq(c.strategy, PG_STRATEGY_FILE_COPY);
	cr_assert_eq(c.connections, 10);
	cr_assert_str_eq(c.embedded_user, "postgres");
	pg_conf_clear(&c);
}

Test(pg_conf, reads_the_embedded_storage_and_the_refill_range)
{
	struct fxb_error err = { 0 };
	struct pg_conf c;

	cr_assert_eq(parse("{\"embedded\": {\"storage\": \"disk\"}, \"pool\": "
	    "{\"refill_parallelism\": 3, \"max_refill_parallelism\": 5}}", &c, &err), 0, "%s",
	    err.text);
	cr_assert_eq(c.storage, PG_STORAGE_DISK);
	cr_assert_eq(c.refill_parallelism, 3);
	cr_assert_eq(c.max_refill_parallelism, 5);
	cr_assert_eq(c.workers, 7);
	cr_assert_eq(c.fixed_pool, 0, "pools follow demand unless told not to");
	pg_conf_clear(&c);
	cr_assert_eq(parse("{\"pool\": {\"follow_demand\": false}}", &c, &err), 0, "%s", err.text);
	cr_assert_eq(c.fixed_pool, 1);
	pg_conf_clear(&c);
	cr_assert_eq(parse("{\"embedded\": {\"storage\": \"memory\", \"memory_max_mb\": 256, "
	    "\"memory_reserve_mb\": 0}, \"pool\": {\"refill_parallelism\": 12}}", &c, &err), 0, "%s",
	    err.text);
	cr_assert_eq(c.storage, PG_STORAGE_MEMORY);
	cr_assert_eq(c.memory_max_bytes, 256LL << 20);
	cr_assert_eq(c.memory_reserve_bytes, 0);
	cr_assert_eq(c.max_refill_parallelism, 12, "never below refill_parallelism");
	pg_conf_clear(&c);
}

Test(pg_conf, reads_templates_and_pool_settings)
{
	struct fxb_error err = { 0 };
	struct pg_conf c;
	const struct pg_tpl_conf *t;

	cr_assert_eq(parse("{\"clone_strategy\": \"wal_log\", \"pool\": {\"min_ready\": 0, \"max\": 3},"
	    " \"templates\": {\"app\": {\"migrate\": [\"sh\", \"migrate.sh\", \"{url}\"], \"inputs\": "
	    "[\"db/*.sql\"], \"env\": {\"MODE\": \"test\"}, \"max\": 2}}}", &c, &err), 0, "%s", err.text);
	cr_assert_eq(c.strategy, PG_STRATEGY_WAL_LOG);
	cr_assert_eq(c.min_ready, 0);
	cr_assert_eq(c.max, 3);
	cr_assert_not_null(t = pg_conf_template(&c, "app"));
	cr_assert_eq(t->nmigrate, 3);
	cr_assert_str_eq(t->migrate[2], "{url}");
	cr_assert_str_eq(t->inputs[0], "db/*.sql");
	cr_assert_str_eq(t->env[0], "MODE=test");
	cr_assert_eq(t->max, 2);
	cr_assert_eq(t->min_ready, -1, "unset: the pool's default");
	cr_assert_null(pg_conf_template(&c, "other"));
	pg_conf_clear(&c);
}

Test(pg_conf, names_the_key_of_every_bad_setting)
{
	static const struct {
		const char *text, *key;
	} bad[] = {
		{ "{\"templates\": {\"app\": {\"migrate\": \"make migrate\"}}}",
		    "postgres.templates.app.migrate: expected an array of strings" },
		{ "{\"templates\": {\"app\": {}}}", "postgres.templates.app.migrate: missing" },
		{ "{\"templates\": {\"app\": {\"migrate\": [\"x\"], \"inputz\": []}}}",
		    "postgres.templates.app.inputz: unknown setting" },
		{ "{\"templates\": {\"9lives\": {\"migrate\": [\"x\"]}}}", "postgres.templates.9lives" },
		{ "{\"pool\": {\"min_ready\": -1}}", "postgres.pool.min_ready" },
		{ "{\"pool\": {\"min_ready\": 9, \"max\": 2}}", "postgres.pool.min_ready" },
		{ "{\"clone_strategy\": \"fast\"}", "postgres.clone_strategy" },
		{ "{\"embedded\": {\"user\": 7}}", "postgres.embedded.user" },
		{ "{\"embedded\": {\"storage\": \"ram\"}}", "postgres.embedded.storage" },
		{ "{\"pool\": {\"follow_demand\": 1}}", "postgres.pool.follow_demand" },
		{ "{\"embedded\": {\"memory_max_mb\": 1}}", "postgres.embedded.memory_max_mb" },
		{ "{\"embedded\": {\"memory_reserve_mb\": -1}}", "postgres.embedded.memory_reserve_mb" },
		{ "{\"pool\": {\"refill_parallelism\": 4, \"max_refill_parallelism\": 3}}",
		    "postgres.pool.max_refill_parallelism" },
		{ "{\"gc\": {\"max_age_ms\": 5}}", "postgres.gc.max_age_ms" },
		{ "{\"tempaltes\": {}}", "postgres.tempaltes: unknown setting" },
		{ "{\"fleet_max\": -1}", "postgres.fleet_max" },
		{ "{\"fleet_max\": \"10\"}", "postgres.fleet_max" },
		{ "{\"orphan_after_ms\": 10}", "postgres.orphan_after_ms: expected 0 (never sweep" },
		{ "{\"orphan_after_ms\": -1}", "postgres.orphan_after_ms" },
		{ "{\"elections\": 0}", "postgres.elections: expected a whole number from 1" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct fxb_error err = { 0 };
		struct pg_conf c;
		cr_assert_eq(parse(bad[i].text, &c, &err), -1, "%s was accepted", bad[i].text);
		cr_assert_not_null(strstr(err.text, bad[i].key), "%s: \"%s\" does not say %s",
		    bad[i].text, err.text, bad[i].key);
		error_clear(&err);
	}
}

Test(pg_conf, accepts_hashes_and_refuses_sql_metacharacters)
{
	static const char *const good[] = { "a", "sha256:0f3a", "v1.2.3_rc-4",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" };
	static const char *const bad[] = { "", "x'; DROP DATABASE postgres; --", "a b", "a\"b",
		"a;b", "a$b", "caf\xc3\xa9", "a\\b" };
	char long_one[200];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		cr_assert(pg_hash_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_not(pg_hash_valid(bad[i]), "%s", bad[i]);
	memset(long_one, 'a', 129);
	long_one[129] = '\0';
	cr_assert_not(pg_hash_valid(long_one), "129 characters is too long");
	cr_assert(pg_tpl_name_valid("app-v2_x"));
	cr_assert_not(pg_tpl_name_valid("-app"));
	cr_assert_not(pg_tpl_name_valid("app.v2"));
}

Test(pg_conf, makes_object_names_of_at_most_63_bytes_that_parse_back_for_their_instance_only)
{
	char name[64], tid[17], back[17];

	pg_tid("some-hash", 150020, tid);
	cr_assert_eq(strlen(tid), 16);
	cr_assert_eq(pg_object_name(name, sizeof name, "0123456789abcdef", 'd', tid, "a1b2c3d4"), 0);
	cr_assert_leq(strlen(name), 63);
	cr_assert_eq(strncmp(name, "fxb_0123456789abcdef_d_", 23), 0, "%s", name);
	cr_assert_eq(pg_object_parse(name, "0123456789abcdef", back), 'd');
	cr_assert_str_eq(back, tid);
	cr_assert_eq(pg_object_parse(name, "0123456789abcdee", back), 0, "another instance's name");
	cr_assert_eq(pg_object_parse("fxb_0123456789abcdef_dx", "0123456789abcdef", back), 0);
	cr_assert_eq(pg_object_name(name, sizeof name, "0123456789abcdef", 'd', tid,
	    "a-suffix-long-enough-to-pass-the-sixty-three-byte-limit"), -1);
	cr_assert(pg_instance_valid("0123456789abcdef"));
	cr_assert_not(pg_instance_valid("0123456789ABCDEF"));
	cr_assert_not(pg_instance_valid("01234"));
}

Test(pg_conf, reads_the_fleet_settings_with_no_cap_and_five_minutes_by_default)
{
	struct fxb_error err = { 0 };
	struct pg_conf c;

	cr_assert_eq(parse(NULL, &c, &err), 0, "%s", err.text);
	cr_assert_eq(c.fleet_max, 0, "no fleet-wide cap unless asked");
	cr_assert_eq(c.orphan_after_ms, 300000);
	cr_assert_eq(c.elections, 64);
	pg_conf_clear(&c);
	cr_assert_eq(parse("{\"fleet_max\": 12, \"orphan_after_ms\": 1500, \"elections\": 3}", &c,
	    &err), 0, "%s", err.text);
	cr_assert_eq(c.fleet_max, 12);
	cr_assert_eq(c.orphan_after_ms, 1500);
	cr_assert_eq(c.elections, 3);
	pg_conf_clear(&c);
	cr_assert_eq(parse("{\"orphan_after_ms\": 0}", &c, &err), 0, "%s", err.text);
	cr_assert_eq(c.orphan_after_ms, 0, "0: never sweep another instance");
	pg_conf_clear(&c);
}

Test(pg_conf, finds_the_instance_of_any_brokers_object_name)
{
	char name[64], tid[17], inst[17];

	pg_tid("some-hash", 150020, tid);
	cr_assert_eq(pg_object_name(name, sizeof name, "89abcdef", 'u', tid, "a1b2c3d4"), 0);
	cr_assert_eq(pg_object_instance(name, inst), 'u');
	cr_assert_str_eq(inst, "89abcdef");
	cr_assert_eq(pg_object_name(name, sizeof name, "0123456789abcdef", 't', tid, NULL), 0);
	cr_assert_eq(pg_object_instance(name, inst), 't');
	cr_assert_str_eq(inst, "0123456789abcdef");
	/* Not a broker's: no instance, a bad instance, a bad kind or id, someone else's name. */
	cr_assert_eq(pg_object_instance("fxb_", inst), 0);
	cr_assert_eq(pg_object_instance("fxb_0123456_u_0123456789abcdef", inst), 0, "7 digits");
	cr_assert_eq(pg_object_instance("fxb_0123456789ABCDEF_u_0123456789abcdef", inst), 0);
	cr_assert_eq(pg_object_instance("fxb_0123456789abcdef0_u_0123456789abcdef", inst), 0);
	cr_assert_eq(pg_object_instance("fxb_01234567_u_0123", inst), 0);
	cr_assert_eq(pg_object_instance("fxb_01234567_U_0123456789abcdef", inst), 0);
	cr_assert_eq(pg_object_instance("app_01234567_u_0123456789abcdef", inst), 0);
	cr_assert_eq(pg_object_instance("postgres", inst), 0);
}

Test(pg_conf, salts_template_ids_with_the_server_major_version)
{
	char a[17], b[17], c[17], d[17];

	pg_tid("h", 150002, a);
	pg_tid("h", 150020, b);
	pg_tid("h", 160000, c);
	pg_tid("i", 150002, d);
	cr_assert_str_eq(a, b, "a minor upgrade keeps templates");
	cr_assert_str_neq(a, c, "a major upgrade makes new ones");
	cr_assert_str_neq(a, d);
}

Test(pg_conf, builds_urls_with_every_part_encoded)
{
	char url[512];

	cr_assert_eq(pg_url(url, sizeof url, "127.0.0.1", 5432, "u", "p@ss:w/rd", "db", "fxb:l-1",
	    NULL), 0);
	cr_assert_str_eq(url, "postgresql://u:p%40ss%3Aw%2Frd@127.0.0.1:5432/db?application_name=fxb%3Al-1");
	/* A socket directory: the query says where, the authority still names a host (an empty
	 * one is refused by node-postgres). */
	cr_assert_eq(pg_url(url, sizeof url, "/run/pg", 5433, "u", "p", "db", NULL, NULL), 0);
	cr_assert_str_eq(url, "postgresql://u:p@localhost:5433/db?host=%2Frun%2Fpg");
	cr_assert_eq(pg_url(url, sizeof url, "/run/pg", 5433, "u", "p", "db", "a", "require"), 0);
	cr_assert_str_eq(url,
	    "postgresql://u:p@localhost:5433/db?host=%2Frun%2Fpg&application_name=a&sslmode=require");
	cr_assert_eq(pg_url(url, sizeof url, "::1", 5432, "u", "p", "db", NULL, NULL), 0);
	cr_assert_str_eq(url, "postgresql://u:p@[::1]:5432/db");
	cr_assert_eq(pg_url(url, sizeof url, "10.0.0.5", 5432, "u", "p", "db", NULL, "require"), 0);
	cr_assert_str_eq(url, "postgresql://u:p@10.0.0.5:5432/db?sslmode=require");
	cr_assert_eq(pg_url(url, 20, "127.0.0.1", 5432, "u", "p", "db", NULL, NULL), -1, "too small");
}

Test(pg_conf, takes_the_host_and_port_lease_urls_name)
{
	struct fxb_error err = { 0 };
	struct pg_conf c;
	json_t *j = json_pack("{s:s, s:i}", "client_host", "db.ci.example", "client_port", 6432);

	cr_assert_eq(pg_conf_parse(j, 1, &c, &err), 0, "%s", err.text);
	cr_assert_str_eq(c.client_host, "db.ci.example");
	cr_assert_eq(c.client_port, 6432);
	pg_conf_clear(&c);
	json_decref(j);
	j = json_pack("{s:s}", "client_host", "/run/postgresql");
	cr_assert_eq(pg_conf_parse(j, 1, &c, &err), -1);
	cr_assert(strstr(err.text, "postgres.client_host"), "%s", err.text);
	error_clear(&err);
	json_decref(j);
	j = json_pack("{s:i}", "client_port", 0);
	cr_assert_eq(pg_conf_parse(j, 1, &c, &err), -1);
	cr_assert(strstr(err.text, "postgres.client_port"), "%s", err.text);
	error_clear(&err);
	json_decref(j);
}

Test(pg_conf, replaces_placeholders_and_leaves_the_rest)
{
	const char *vals[6] = { "postgresql://x", "h", "5", "d", "u", "p" };
	char *s = pg_placeholders("--url={url} {host}:{port}/{database} {user} {password} {other}",
	    vals);

	cr_assert_str_eq(s, "--url=postgresql://x h:5/d u p {other}");
	free(s);
}
