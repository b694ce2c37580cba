/* test_tenant.c: the token file's tenants, limits and admin flags, reloads and quotas. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tenant/tenant.h"

static const char *
write_file(const char *text)
{
	static const char path[] = "/tmp/fxb-test-tenant-tokens";
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

Test(tenant, a_file_of_bare_tokens_is_one_default_tenant_without_limits)
{
	struct fxb_error err = { 0 };
	struct tenants *ts = tenants_load(write_file("# ci tokens\n\nalpha-1\n  beta-2  \r\n"), &err);
	struct token_ref a, b;

	cr_assert_not_null(ts, "%s", err.text);
	cr_assert(tenants_check(ts, "alpha-1", &a));
	cr_assert(tenants_check(ts, "beta-2", &b));
	cr_assert_str_eq(a.tenant->name, "default");
	cr_assert_eq(a.tenant, b.tenant);
	cr_assert_neq(a.id, b.id);
	cr_assert_not(a.admin);
	for (int q = 0; q < QUOTA_COUNT; q++)
		cr_assert_eq(a.tenant->limit[q], -1);
	cr_assert_not(tenants_check(ts, "alpha-", NULL), "a prefix is not the token");
	cr_assert_not(tenants_check(ts, "alpha-12", NULL), "nor is a longer string");
	cr_assert_not(tenants_check(ts, "", NULL));
	cr_assert_not(tenants_check(ts, "# ci tokens", NULL), "comments are not tokens");
	cr_assert_not(tenants_check(ts, NULL, NULL));
	tenants_free(ts);
}

Test(tenant, reads_tenants_limits_and_admin_tokens)
{
	struct fxb_error err = { 0 };
	struct tenants *ts = tenants_load(write_file(
	    "tok-a1 team-a ports=4 sessions=2\n"
	    "tok-a2 team-a databases=1\n"
	    "tok-b  team-b pg_connections=20 builds=1 waiting=3 servers=2\n"
	    "tok-op ops admin=true\n"), &err);
	struct token_ref r;

	cr_assert_not_null(ts, "%s", err.text);
	cr_assert(tenants_check(ts, "tok-a2", &r));
	cr_assert_str_eq(r.tenant->name, "team-a");
	cr_assert_eq(r.tenant->limit[QUOTA_PORTS], 4, "a limit from another line of the tenant");
	cr_assert_eq(r.tenant->limit[QUOTA_SESSIONS], 2);
	cr_assert_eq(r.tenant->limit[QUOTA_DATABASES], 1);
	cr_assert_eq(r.tenant->limit[QUOTA_SERVERS], -1);
	cr_assert(tenants_check(ts, "tok-b", &r));
	cr_assert_eq(r.tenant->limit[QUOTA_PG_CONNECTIONS], 20);
	cr_assert_eq(r.tenant->limit[QUOTA_BUILDS], 1);
	cr_assert_eq(r.tenant->limit[QUOTA_WAITING], 3);
	cr_assert_eq(r.tenant->limit[QUOTA_SERVERS], 2);
	cr_assert_not(r.admin);
	cr_assert(tenants_check(ts, "tok-op", &r));
	cr_assert(r.admin);
	tenants_free(ts);
}

Test(tenant, refuses_malformed_files_naming_the_line)
{
	static const struct {
		const char *text, *says;
	} bad[] = {
		{ "# nothing here\n\n", "holds no token" },
		{ "t1 team-a ports=x\n", ":1: ports" },
		{ "t1 team-a ports=-1\n", ":1: ports" },
		{ "t1 team-a color=red\n", "unknown key" },
		{ "t1 team-a admin=yes\n", "admin" },
		{ "t1 team/a\n", "not a tenant name" },
		{ "t1 team-a ports=2\nt2 team-a ports=3\n", ":2: tenant team-a: ports=3" },
		{ "t1 team-a ports=2 loose\n", "expected key=value" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct fxb_error err = { 0 };

		cr_assert_null(tenants_load(write_file(bad[i].text), &err), "%s", bad[i].text);
		cr_assert(strstr(err.text, bad[i].says), "%s: %s", bad[i].text, err.text);
		error_clear(&err);
	}
	{
		struct fxb_error err = { 0 };
		cr_assert_null(tenants_load("/nonexistent/tokens", &err));
		error_clear(&err);
	}
}

Test(tenant, quotas_refuse_past_the_limit_naming_it_and_recover_after_a_refund)
{
	struct fxb_error err = { 0 };
	struct tenants *ts = tenants_load(write_file("t1 team-a ports=3 servers=1\n"), &err);
	struct token_ref r;
	int64_t two[QUOTA_COUNT] = { 0 };

	cr_assert_not_null(ts);
	cr_assert(tenants_check(ts, "t1", &r));
	two[QUOTA_PORTS] = 2;
	cr_assert_eq(tenant_charge(r.tenant, two, &err), 0);
	cr_assert_eq(tenant_charge(r.tenant, two, &err), -1);
	cr_assert_eq(err.code, ERR_QUOTA_EXCEEDED);
	cr_assert_str_eq(json_string_value(json_object_get(err.data, "limit")), "ports");
	cr_assert_eq(json_integer_value(json_object_get(err.data, "max")), 3);
	cr_assert_eq(json_integer_value(json_object_get(err.data, "used")), 2);
	cr_assert_eq(json_integer_value(json_object_get(err.data, "requested")), 2);
	cr_assert_eq(r.tenant->used[QUOTA_PORTS], 2, "a refused charge takes nothing");
	error_clear(&err);
	tenant_refund(r.tenant, two);
	cr_assert_eq(tenant_charge(r.tenant, two, &err), 0, "room again after the refund");
	tenants_free(ts);
}

Test(tenant, a_reload_keeps_tenants_usage_and_the_ids_of_kept_tokens)
{
	struct fxb_error err = { 0 };
	struct tenants *ts = tenants_load(write_file("keep team-a ports=1\ngone team-b\n"), &err);
	struct token_ref keep, gone, again;

	cr_assert_not_null(ts);
	cr_assert(tenants_check(ts, "keep", &keep));
	cr_assert(tenants_check(ts, "gone", &gone));
	cr_assert_eq(tenant_charge1(keep.tenant, QUOTA_PORTS, 1, &err), 0);
	cr_assert_eq(tenants_reload(ts, write_file("keep team-a ports=5\nnew team-b\n"), &err), 0,
	    "%s", err.text);
	cr_assert(tenants_check(ts, "keep", &again));
	cr_assert_eq(again.id, keep.id);
	cr_assert_eq(again.tenant, keep.tenant, "the same tenant object");
	cr_assert_eq(again.tenant->used[QUOTA_PORTS], 1, "its usage kept");
	cr_assert_eq(again.tenant->limit[QUOTA_PORTS], 5, "its new limit");
	cr_assert(tenants_token_live(ts, keep.id, keep.tenant));
	cr_assert_not(tenants_token_live(ts, gone.id, gone.tenant), "a removed token is not live");
	cr_assert_not(tenants_check(ts, "gone", NULL));
	cr_assert_eq(tenants_reload(ts, write_file("broken team-a ports=x\n"), &err), -1);
	error_clear(&err);
	cr_assert(tenants_check(ts, "keep", NULL), "a bad reload changes nothing");
	tenants_free(ts);
}

Test(tenant, secrets_compare_whole)
{
	cr_assert(secret_equal("r-abc", "r-abc"));
	cr_assert_not(secret_equal("r-abc", "r-abd"));
	cr_assert_not(secret_equal("r-abc", "r-ab"));
	cr_assert_not(secret_equal("", "x"));
	cr_assert_not(secret_equal("x", ""));
}
