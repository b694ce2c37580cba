/* fuzz_rpc.c: libFuzzer harness for the JSON-RPC layer (broker/rpc/rpc.c).
 *
 * Each input is one message as a WebSocket text frame would carry it: rpc_handle()
 * parses, validates, batches and dispatches it to a small method table that checks its
 * params with rpc_params_check() and keeps some calls open, as lease.acquire does; the
 * open calls are finished or orphaned after the message, so batches that wait are
 * covered too. Batch caps are set low so that both limits are reached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core/config.h"
#include "rpc/rpc.h"

static struct broker broker;
static struct rpc_call *held[64];
static size_t nheld;

static json_t *
m_echo(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	static const struct rpc_param table[] = {
		{ "text", JSON_STRING, 1, 0 }, { "n", JSON_INTEGER, 0, 1 },
		{ "o", JSON_OBJECT, 0, 0 }, { NULL, 0, 0, 0 },
	};

	(void)b, (void)s, (void)call;
	if (rpc_params_check(params, table, err) == -1)
		return NULL;
	return json_deep_copy(params);
}

static json_t *
m_wait(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	(void)b, (void)s, (void)params;
	if (nheld == sizeof held / sizeof held[0]) {
		error_set(err, ERR_PORTS_EXHAUSTED, "too many waiting");
		return NULL;
	}
	held[nheld++] = call;
	return RPC_PENDING;
}

static json_t *
m_fail(struct broker *b, struct session *s, struct rpc_call *call, json_t *params,
    struct fxb_error *err)
{
	(void)b, (void)s, (void)call, (void)params;
	error_set_data(err, ERR_LEASE_NOT_FOUND, json_pack("{s:s}", "lease", "l-1"),
	    "lease not found");
	return NULL;
}

static const struct rpc_method methods[] = {
	{ "session.hello", m_echo, 0 },
	{ "lease.list", m_echo, 1 },
	{ "lease.acquire", m_wait, 1 },
	{ "lease.release", m_fail, 1 },
	{ NULL, NULL, 0 },
};

static size_t sent;

static void
peer_send(struct rpc_peer *p, char *text, size_t len)
{
	(void)p;
	sent += len;
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_peer peer = { .send = peer_send };
	char *out;

	if (!broker.rpc) {
		config_defaults(&broker.cfg);
		broker.cfg.max_batch_calls = 20;
		broker.cfg.max_batch_reply_bytes = 2048;
		broker.rpc = rpc_new(methods);
	}
	peer.authenticated = size > 0 && (data[0] & 1);
	out = rpc_handle(&broker, &peer, (const char *)data, size);
	free(out);
	/* Finish half of the open calls, orphan the peer, then finish the rest. */
	for (size_t i = 0; i < nheld / 2; i++)
		rpc_call_finish(held[i], json_pack("{s:s}", "lease", "l-2"));
	rpc_peer_orphan(&peer);
	for (size_t i = nheld / 2; i < nheld; i++) {
		struct fxb_error err = { 0 };
		error_set(&err, ERR_ACQUIRE_CANCELLED, "cancelled");
		rpc_call_fail(held[i], &err);
		error_clear(&err);
	}
	nheld = 0;
	return 0;
}
