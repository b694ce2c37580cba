/* test_protocol.c: JSON-RPC and WebSocket misuse, through a raw client.
 *
 * Each test sends something wrong on one connection and checks the error or close code
 * it gets; a second session, connected before, must still be served afterwards: a client's
 * bad input never harms another. The brokers here cap messages at 4096 bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct test_broker tb;
static struct raw_ws bystander, w;

static void setup(void)
{
	json_t *reply;

	BROKER_START(&tb, "--ports", "26600-26609", "--max-message-bytes", "4096");
	cr_assert_eq(raw_ws_connect(&bystander, tb.port, "fixture-broker.v1", NULL), 101, "%s",
	    bystander.status_line);
	reply = raw_rpc_call(&bystander, "session.hello", json_pack("{s:s}", "client", "bystander"));
	cr_assert_not_null(raw_rpc_result(reply), "hello: %s", json_dumps(reply, 0));
	json_decref(reply);
	cr_assert_eq(raw_ws_connect(&w, tb.port, "fixture-broker.v1", NULL), 101, "%s", w.status_line);
}

static void teardown(void)
{
	raw_ws_close(&w);
	raw_ws_close(&bystander);
	test_broker_kill(&tb);
}

/* A session that still gets answers: broker.status works on it. */
static void assert_served(struct raw_ws *ws, const char *who)
{
	json_t *reply = raw_rpc_call(ws, "broker.status", json_object());

	cr_assert_not_null(reply, "%s got no reply", who);
	cr_assert(json_is_object(raw_rpc_result(reply)), "%s: %s", who, json_dumps(reply, 0));
	json_decref(reply);
}

static void send_text(struct raw_ws *ws, const char *text)
{
	cr_assert_eq(raw_ws_send(ws, WS_TEXT, text, strlen(text), 0), 0);
}

/* Reads one message and requires a close frame with code. */
static void assert_closed_with(struct raw_ws *ws, int code)
{
	struct ws_msg m;
	int r = raw_ws_read(ws, &m, 10000);

	cr_assert_eq(r, 0, "no close frame (%s)", r == RAW_WS_EOF ? "the connection just ended"
								 : "nothing within 10 s");
	cr_assert_eq(m.opcode, WS_CLOSE, "a message instead of a close frame: %s", m.payload);
	cr_assert_eq(m.close_code, code, "closed with %d, not %d", m.close_code, code);
	raw_ws_msg_clear(&m);
}

TestSuite(protocol, .init = setup, .fini = teardown, .timeout = 60);

Test(protocol, offers_the_fixture_broker_subprotocol)
{
	cr_assert_not_null(strcasestr(w.headers, "Sec-WebSocket-Protocol: fixture-broker.v1"),
	    "upgrade reply: %s", w.headers);
}

Test(protocol, accepts_a_client_that_offers_no_subprotocol)
{
	struct raw_ws plain;

	cr_assert_eq(raw_ws_connect(&plain, tb.port, NULL, NULL), 101, "%s", plain.status_line);
	assert_served(&plain, "a client without subprotocol");
	raw_ws_close(&plain);
}

Test(protocol, malformed_json_gets_a_parse_error)
{
	json_t *reply;

	send_text(&w, "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
	reply = raw_rpc_read(&w, 10000);
	cr_assert_not_null(reply, "no reply to malformed JSON");
	cr_assert_eq(raw_rpc_error_code(reply), -32700, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "PARSE_ERROR");
	cr_assert(json_is_null(json_object_get(reply, "id")), "id: %s", json_dumps(reply, 0));
	json_decref(reply);
	assert_served(&w, "the session that sent it");
	assert_served(&bystander, "the other session");
}

Test(protocol, params_of_the_wrong_type_get_invalid_params)
{
	static const char *const bad[] = {
		"{\"fixtures\": 5}",
		"{\"fixtures\": {\"p\": {\"kind\": \"port\"}}, \"wait_ms\": \"soon\"}",
		"{\"fixtures\": {\"p\": {\"kind\": 7}}}",
		"{\"fixtures\": {\"p\": {\"kind\": \"port\"}}, \"ttl_ms\": \"long\"}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *reply = raw_rpc_call(&w, "lease.acquire", json_loads(bad[i], 0, NULL));
		json_t *data = json_object_get(json_object_get(reply, "error"), "data");

		cr_assert_eq(raw_rpc_error_code(reply), -32602, "params %s: %s", bad[i],
		    json_dumps(reply, 0));
		cr_assert_str_eq(raw_rpc_error_name(reply), "INVALID_PARAMS");
		cr_assert(json_is_string(json_object_get(data, "detail")), "no data.detail: %s",
		    json_dumps(reply, 0));
		json_decref(reply);
	}
	{
		json_t *reply = raw_rpc_call(&w, "lease.release", json_pack("{s:i}", "lease", 42));

		cr_assert_eq(raw_rpc_error_code(reply), -32602, "%s", json_dumps(reply, 0));
		json_decref(reply);
	}
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0, "a refused call leased ports");
	assert_served(&w, "the session that sent them");
	assert_served(&bystander, "the other session");
}

Test(protocol, an_unknown_method_gets_method_not_found)
{
	json_t *reply = raw_rpc_call(&w, "lease.steal", json_object());

	cr_assert_not_null(reply, "no reply (or a reply with another id)");
	cr_assert_eq(raw_rpc_error_code(reply), -32601, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "METHOD_NOT_FOUND");
	json_decref(reply);
	assert_served(&w, "the session that sent it");
	assert_served(&bystander, "the other session");
}

/* The member of a batch reply with this id (an integer, or JSON null for id < 0). */
static json_t *batch_reply(json_t *replies, int id)
{
	size_t i;
	json_t *r;

	json_array_foreach(replies, i, r) {
		json_t *rid = json_object_get(r, "id");

		if ((id < 0 && json_is_null(rid)) || (json_is_integer(rid) && json_integer_value(rid) == id))
			return r;
	}
	return NULL;
}

Test(protocol, a_batch_mixing_good_and_bad_calls_gets_one_reply_per_call)
{
	json_t *replies;

	send_text(&w, "["
		      "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"broker.status\"},"
		      "{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"no.such.method\"},"
		      "{\"jsonrpc\": \"2.0\", \"method\": \"broker.status\"},"
		      "{\"foo\": \"bar\"},"
		      "{\"jsonrpc\": \"2.0\", \"id\": 4, \"method\": \"lease.acquire\","
		      " \"params\": {\"fixtures\": 5}},"
		      "{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"lease.list\", \"params\": {}}"
		      "]");
	replies = raw_rpc_read(&w, 10000);
	cr_assert(json_is_array(replies), "the reply to a batch is not an array: %s",
	    json_dumps(replies, 0));
	/* Five calls (one of them not a request at all), one notification: five replies. */
	cr_assert_eq(json_array_size(replies), 5, "%s", json_dumps(replies, 0));
	cr_assert(json_is_object(raw_rpc_result(batch_reply(replies, 1))), "%s", json_dumps(replies, 0));
	cr_assert_eq(raw_rpc_error_code(batch_reply(replies, 2)), -32601, "%s", json_dumps(replies, 0));
	cr_assert_eq(raw_rpc_error_code(batch_reply(replies, -1)), -32600, "%s", json_dumps(replies, 0));
	cr_assert_eq(raw_rpc_error_code(batch_reply(replies, 4)), -32602, "%s", json_dumps(replies, 0));
	cr_assert(json_is_object(raw_rpc_result(batch_reply(replies, 5))), "%s", json_dumps(replies, 0));
	json_decref(replies);
	assert_served(&w, "the session that sent it");
	assert_served(&bystander, "the other session");
}

Test(protocol, an_empty_batch_gets_invalid_request)
{
	json_t *reply;

	send_text(&w, "[]");
	reply = raw_rpc_read(&w, 10000);
	cr_assert(json_is_object(reply), "%s", json_dumps(reply, 0));
	cr_assert_eq(raw_rpc_error_code(reply), -32600, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "INVALID_REQUEST");
	json_decref(reply);
	assert_served(&bystander, "the other session");
}

Test(protocol, a_notification_gets_no_reply)
{
	json_t *reply;

	send_text(&w, "{\"jsonrpc\": \"2.0\", \"method\": \"broker.status\"}");
	send_text(&w, "{\"jsonrpc\": \"2.0\", \"method\": \"no.such.method\"}");
	send_text(&w, "{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\": \"broker.status\"}");
	reply = raw_rpc_read(&w, 10000);
	cr_assert_not_null(reply);
	cr_assert_eq(json_integer_value(json_object_get(reply, "id")), 9,
	    "the first reply is not the call's: %s", json_dumps(reply, 0));
	json_decref(reply);
}

/* A call whose method name pads the message to len bytes: METHOD_NOT_FOUND if it fits. */
static char *padded_call(size_t len)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"";
	static const char tail[] = "\"}";
	char *text = malloc(len + 1);

	cr_assert_not_null(text);
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - (sizeof(tail) - 1));
	memcpy(text + len - (sizeof(tail) - 1), tail, sizeof(tail));
	return text;
}

Test(protocol, a_message_under_the_cap_is_answered)
{
	char *text = padded_call(4000);
	json_t *reply;

	send_text(&w, text);
	free(text);
	reply = raw_rpc_read(&w, 10000);
	cr_assert_eq(raw_rpc_error_code(reply), -32601, "%s", json_dumps(reply, 0));
	json_decref(reply);
}

Test(protocol, an_oversize_message_closes_the_connection_with_1009)
{
	char *text = padded_call(5000);

	send_text(&w, text);
	assert_closed_with(&w, 1009);
	raw_ws_close(&w);

	/* The same size in fragments of 1000 bytes, none of them over the cap by itself. */
	cr_assert_eq(raw_ws_connect(&w, tb.port, NULL, NULL), 101);
	cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, strlen(text), 1000), 0);
	free(text);
	assert_closed_with(&w, 1009);
	assert_served(&bystander, "the other session");
}

Test(protocol, a_binary_frame_closes_the_connection_with_1003)
{
	static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"broker.status\"}";

	cr_assert_eq(raw_ws_send(&w, WS_BINARY, call, sizeof(call) - 1, 0), 0);
	assert_closed_with(&w, 1003);
	assert_served(&bystander, "the other session");
}

Test(protocol, invalid_utf8_closes_the_connection_with_1007)
{
	static const char text[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}";

	cr_assert_eq(raw_ws_send(&w, WS_TEXT, text, sizeof(text) - 1, 0), 0);
	assert_closed_with(&w, 1007);
	assert_served(&bystander, "the other session");
}

Test(protocol, a_fragmented_text_message_gets_its_reply)
{
	static const char call[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"broker.status\",\"params\":{}}";
	json_t *reply;

	/* Three frames: text, continuation, continuation with FIN. */
	cr_assert_eq(raw_ws_send(&w, WS_TEXT, call, sizeof(call) - 1, 25), 0);
	reply = raw_rpc_read(&w, 10000);
	cr_assert_not_null(reply, "no reply to a fragmented message");
	cr_assert_eq(json_integer_value(json_object_get(reply, "id")), 7, "%s", json_dumps(reply, 0));
	cr_assert(json_is_object(raw_rpc_result(reply)), "%s", json_dumps(reply, 0));
	json_decref(reply);
	assert_served(&bystander, "the other session");
}

Test(protocol, a_ping_between_the_fragments_of_a_message_does_not_break_it)
{
	static const char a[] = "{\"jsonrpc\":\"2.0\",\"id\":8,", b[] = "\"method\":\"broker.status\"}";
	json_t *reply;

	cr_assert_eq(raw_ws_send_frame(&w, WS_TEXT, 0, a, sizeof(a) - 1), 0);
	cr_assert_eq(raw_ws_send_frame(&w, WS_PING, 1, "hi", 2), 0);
	cr_assert_eq(raw_ws_send_frame(&w, WS_CONT, 1, b, sizeof(b) - 1), 0);
	reply = raw_rpc_read(&w, 10000);
	cr_assert_not_null(reply, "no reply to a message with a ping between its fragments");
	cr_assert_eq(json_integer_value(json_object_get(reply, "id")), 8, "%s", json_dumps(reply, 0));
	cr_assert(json_is_object(raw_rpc_result(reply)), "%s", json_dumps(reply, 0));
	json_decref(reply);
}

Test(protocol, a_lease_of_an_unknown_kind_or_with_too_many_fixtures_or_a_bad_name_is_refused)
{
	json_t *fixtures = json_object(), *reply;
	char name[16];

	reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", "t", "kind", "teleporter"));
	cr_assert_eq(raw_rpc_error_code(reply), 1005, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "UNKNOWN_FIXTURE_KIND");
	json_decref(reply);

	/* One more than the default max_fixtures_per_lease of 64. */
	for (int i = 0; i < 65; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		json_object_set_new(fixtures, name, json_pack("{s:s}", "kind", "port"));
	}
	reply = raw_rpc_call(&w, "lease.acquire", json_pack("{s:o}", "fixtures", fixtures));
	cr_assert_eq(raw_rpc_error_code(reply), 1006, "%s", json_dumps(reply, 0));
	cr_assert_str_eq(raw_rpc_error_name(reply), "TOO_MANY_FIXTURES");
	json_decref(reply);

	reply = raw_rpc_call(&w, "lease.acquire",
	    json_pack("{s:{s:{s:s}}}", "fixtures", "no spaces!", "kind", "port"));
	cr_assert_eq(raw_rpc_error_code(reply), -32602, "fixture name \"no spaces!\": %s",
	    json_dumps(reply, 0));
	json_decref(reply);
	cr_assert_eq(test_broker_ports(&tb, "leased"), 0, "a refused lease took ports");
	assert_served(&w, "the session that sent them");
}

Test(protocol, rpc_discover_returns_the_openrpc_document)
{
	json_t *reply = raw_rpc_call(&w, "rpc.discover", json_object());
	json_t *methods = json_object_get(raw_rpc_result(reply), "methods"), *m;
	size_t i;
	int found = 0;

	cr_assert(json_is_string(json_object_get(raw_rpc_result(reply), "openrpc")), "%.300s",
	    json_dumps(reply, 0));
	json_array_foreach(methods, i, m)
		found |= json_is_string(json_object_get(m, "name")) &&
		    strcmp(json_string_value(json_object_get(m, "name")), "lease.acquire") == 0;
	cr_assert(found, "no lease.acquire among the methods");
	json_decref(reply);
}
