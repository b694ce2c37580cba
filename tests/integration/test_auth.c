/* test_auth.c: a broker with --token-file: who gets in, and what a session may touch.
 *
 * Every broker here reads the same token file and leases from 26500-26509.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "fxb.h"
#include "harness.h"

#define TOKEN "s3cret-alpha"

static struct test_broker tb;

static void start_with_tokens(void)
{
	char path[512];

	cr_assert_eq(temp_file(path, sizeof(path), "tokens",
	    "# tokens for the integration tests\n" TOKEN "\n\nother-token-beta\n"), 0);
	BROKER_START(&tb, "--token-file", path, "--ports", "26500-26509");
}

static json_t *acquire_params(void)
{
	return json_pack("{s:{s:{s:s}}}", "fixtures", "p", "kind", "port");
}

/* Asserts that reply is an UNAUTHENTICATED error. */
static void assert_unauthenticated(json_t *reply, const char *what)
{
	cr_assert_not_null(reply, "%s: no reply", what);
	cr_assert_eq(raw_rpc_error_code(reply), 1001, "%s: %s", what, json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "UNAUTHENTICATED", "%s", what);
	json_decref(reply);
}

Test(auth, a_session_without_a_token_gets_UNAUTHENTICATED_and_nothing_else_happens)
{
	struct raw_ws w;
	json_t *st;

	start_with_tokens();
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101, "%s", w.status_line);
	assert_unauthenticated(raw_rpc_call(&w, "lease.acquire", acquire_params()), "lease.acquire");
	assert_unauthenticated(raw_rpc_call(&w, "lease.list", json_object()), "lease.list");
	assert_unauthenticated(raw_rpc_call(&w, "broker.status", json_object()), "broker.status");
	assert_unauthenticated(raw_rpc_call(&w, "session.hello", json_object()),
	    "session.hello without a token");
	st = test_broker_status(&tb);
	cr_assert_not_null(st);
	cr_assert_eq(json_integer_value(json_object_get(st, "leases")), 0, "%s", json_dumps(st, 0));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "ports"), "leased")), 0);
	json_decref(st);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(auth, a_wrong_token_in_session_hello_gets_UNAUTHENTICATED)
{
	struct raw_ws w;

	start_with_tokens();
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101, "%s", w.status_line);
	assert_unauthenticated(raw_rpc_call(&w, "session.hello",
	    json_pack("{s:s}", "token", TOKEN "x")), "session.hello with a wrong token");
	assert_unauthenticated(raw_rpc_call(&w, "lease.acquire", acquire_params()),
	    "lease.acquire after a wrong token");
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(auth, a_wrong_bearer_token_in_the_handshake_is_refused)
{
	struct raw_ws w;
	int status;

	start_with_tokens();
	status = raw_ws_connect(&w, tb.port, "fixture-broker.v1", TOKEN "x");
	cr_assert_eq(status, 401, "not refused with 401: %s", w.status_line);
	/* In the request's HTTP/1.1: WebSocket clients (Python's websockets) parse no other. */
	cr_assert(!strncmp(w.status_line, "HTTP/1.1 401", 12), "status line: %s", w.status_line);
	raw_ws_close(&w);
	/* The broker goes on serving. */
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", TOKEN), 101, "%s",
	    w.status_line);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(auth, the_right_bearer_token_in_the_handshake_authenticates)
{
	struct raw_ws w;
	json_t *reply;

	start_with_tokens();
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", "other-token-beta"), 101, "%s",
	    w.status_line);
	reply = raw_rpc_call(&w, "lease.acquire", acquire_params());
	cr_assert_not_null(raw_rpc_result(reply), "lease.acquire: %s", json_dumps(reply, 0));
	json_decref(reply);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 1);
	raw_ws_close(&w);
	BROKER_STOP(&tb);
}

Test(auth, the_right_token_in_session_hello_authenticates)
{
	struct raw_ws w;
	struct fxb_client *c;
	struct fxb_lease *l = NULL;
	json_t *reply;

	start_with_tokens();
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101, "%s", w.status_line);
	reply = raw_rpc_call(&w, "session.hello", json_pack("{s:s}", "token", TOKEN));
	cr_assert_not_null(raw_rpc_result(reply), "session.hello: %s", json_dumps(reply, 0));
	json_decref(reply);
	reply = raw_rpc_call(&w, "lease.acquire", acquire_params());
	cr_assert_not_null(raw_rpc_result(reply), "lease.acquire: %s", json_dumps(reply, 0));
	json_decref(reply);
	raw_ws_close(&w);

	/* libfxb with fxb_options.token. */
	CLIENT_NEW(c, &tb, TOKEN, NULL);
	cr_assert_eq(test_acquire_ports(c, 1, 0, &l), 0, "%s", fxb_client_errmsg(c));
	cr_assert_eq(fxb_lease_release(c, l), 0);
	fxb_client_free(c);
	BROKER_STOP(&tb);
}

Test(auth, a_client_with_a_wrong_token_is_not_created)
{
	struct fxb_client *c;
	char err[512];

	start_with_tokens();
	c = test_client(&tb, "not-a-token", NULL, err, sizeof(err));
	cr_assert_null(c, "fxb_client_new succeeded with a wrong token");
	BROKER_STOP(&tb);
}

Test(auth, another_sessions_lease_cannot_be_released_and_stays_held)
{
	struct fxb_client *owner;
	struct fxb_lease *l = NULL;
	struct raw_ws other;
	json_t *reply;
	char *result = NULL;

	start_with_tokens();
	CLIENT_NEW(owner, &tb, TOKEN, NULL);
	cr_assert_eq(test_acquire_ports(owner, 1, 0, &l), 0, "%s", fxb_client_errmsg(owner));
	cr_assert_eq(raw_ws_connect(&other, tb.port, NULL, TOKEN), 101, "%s", other.status_line);

	reply = raw_rpc_call(&other, "lease.release", json_pack("{s:s}", "lease", fxb_lease_id(l)));
	cr_assert_eq(raw_rpc_error_code(reply), 1004, "lease.release: %s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "LEASE_NOT_OWNED");
	json_decref(reply);
	reply = raw_rpc_call(&other, "lease.renew", json_pack("{s:s}", "lease", fxb_lease_id(l)));
	cr_assert_eq(raw_rpc_error_code(reply), 1004, "lease.renew: %s", json_dumps(reply, 0));
	json_decref(reply);

	cr_assert_eq(test_broker_ports(&tb, "leased"), 1, "the lease was released by another session");
	cr_assert_eq(fxb_call(owner, "lease.list", NULL, &result), 0, "%s", fxb_client_errmsg(owner));
	cr_assert_not_null(strstr(result, fxb_lease_id(l)), "the owner lost its lease: %s", result);
	free(result);
	cr_assert_eq(fxb_lease_release(owner, l), 0, "%s", fxb_client_errmsg(owner));
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0);
	raw_ws_close(&other);
	fxb_client_free(owner);
	BROKER_STOP(&tb);
}
