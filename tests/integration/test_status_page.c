/* test_status_page.c: the status page at GET /, loaded in headless Chromium (Debian's
 * chromium package, deploy/install-deps.sh), shows a lease a test client holds.
 *
 * Chromium runs its script (which reads /status with the admin token given in the
 * address's fragment) under a virtual time budget, then dumps the DOM; a second run takes
 * a screenshot, left in the log directory as status-page.png. $FXB_CHROMIUM names another
 * binary.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct test_broker tb;
static char profile[256]; /* Chromium's profile directory, removed at the end */

static const char *chromium(void)
{
	const char *c = getenv("FXB_CHROMIUM");

	return c && *c ? c : "/usr/bin/chromium";
}

/* Runs headless Chromium with one extra flag on url; returns its output (static). */
static const char *run_chromium(const char *flag, const char *url, int *status)
{
	static char out[1 << 20];
	const char *log = getenv("FXB_TEST_LOG_DIR");
	char pdir[300];

	snprintf(profile, sizeof(profile), "%s/fxb-chromium-%d", log && *log ? log : "/tmp",
	    (int)getpid());
	snprintf(pdir, sizeof(pdir), "--user-data-dir=%s", profile);
	{
		const char *argv[] = { chromium(), "--headless", "--no-sandbox", "--disable-gpu",
			"--no-first-run", "--disable-dev-shm-usage", pdir,
			"--virtual-time-budget=6000", "--window-size=1280,900", flag, url, NULL };
		*status = run_program(chromium(), argv, NULL, out, sizeof(out), 60000);
	}
	return out;
}

Test(status_page, shows_a_lease_a_test_client_holds, .timeout = 180)
{
	char path[512], url[256], shot[600], *lid, *body = NULL;
	const char *dom, *log = getenv("FXB_TEST_LOG_DIR");
	struct raw_ws w;
	struct stat st;
	json_t *r;
	int status;

	cr_assert_eq(temp_file(path, sizeof(path), "tokens",
	    "tok-a team-a ports=5\ntok-op ops admin=true\n"), 0);
	BROKER_START(&tb, "--token-file", path, "--ports", "27120-27129");
	cr_assert_eq(http_get(tb.port, "/", &body), 200);
	cr_assert_not_null(strstr(body, "/status.js"), "GET / serves the page");
	free(body);

	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	r = raw_rpc_call(&w, "session.hello", json_pack("{s:s, s:s}", "token", "tok-a", "client",
	    "page-test-client"));
	cr_assert_not_null(raw_rpc_result(r));
	json_decref(r);
	r = raw_rpc_call(&w, "lease.acquire", json_pack("{s:{s:{s:s}}, s:{s:s}}", "fixtures", "web",
	    "kind", "port", "labels", "job", "page-check-7"));
	cr_assert_not_null(raw_rpc_result(r), "%s", json_dumps(r, 0));
	lid = strdup(json_string_value(json_object_get(raw_rpc_result(r), "lease")));
	json_decref(r);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/#token=tok-op", tb.port);
	dom = run_chromium("--dump-dom", url, &status);
	cr_assert_eq(status, 0, "chromium failed: %.2000s", dom);
	cr_assert_not_null(strstr(dom, "data-loaded=\"1\""), "the script ran: %.4000s", dom);
	cr_assert_not_null(strstr(dom, lid), "the page lists lease %s: %.4000s", lid, dom);
	cr_assert_not_null(strstr(dom, "job=page-check-7"), "with its labels");
	cr_assert_not_null(strstr(dom, "page-test-client"), "and its client");
	cr_assert_not_null(strstr(dom, "team-a"), "and its tenant");

	snprintf(shot, sizeof(shot), "%s/status-page.png", log && *log ? log : "/tmp");
	unlink(shot);
	{
		char flag[700];
		snprintf(flag, sizeof(flag), "--screenshot=%s", shot);
		dom = run_chromium(flag, url, &status);
	}
	cr_assert_eq(status, 0, "chromium --screenshot failed: %.2000s", dom);
	cr_assert_eq(stat(shot, &st), 0, "no screenshot at %s", shot);
	cr_assert_gt(st.st_size, 1000, "an empty screenshot");

	/* Without a token the page shows aggregates only: no lease ids. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", tb.port);
	dom = run_chromium("--dump-dom", url, &status);
	cr_assert_eq(status, 0);
	cr_assert_not_null(strstr(dom, "data-loaded=\"1\""), "%.4000s", dom);
	cr_assert_null(strstr(dom, lid), "no lease ids without an admin token");

	free(lid);
	raw_ws_close(&w);
	test_rm_pg_state(profile);
	BROKER_STOP(&tb);
}
