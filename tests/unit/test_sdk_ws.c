/* test_sdk_ws.c: libfxb's WebSocket codec (sdk-c/src/ws.c) on buffers, case by case.
 *
 * It links ws.o alone, no socket and no broker: frame heads as a server may or may not send
 * them, partial input, the masking of the frames the client sends, and the checks on the
 * answer to the upgrade. Which sequences of frames make a message (a continuation without
 * a start, a start inside a message) is wire.c's business, not the codec's: here a frame
 * that is not final or a continuation is only a head to parse.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

/* One frame head as a server would send it, and what ws_frame_parse must make of it. */
struct head_case {
	const char *what;
	unsigned char b[WS_HEAD_MAX];
	size_t n; /* bytes of b that make the head */
	int rc;   /* 1, or -1 once all n bytes are there */
	int fin, opcode;
	uint64_t len;
};

/* Complete, valid heads of every length encoding and opcode. */
static const struct head_case valid[] = {
	{"an empty final text frame", {0x81, 0x00}, 2, 1, 1, WS_OP_TEXT, 0},
	{"a 7-bit length of 1", {0x81, 0x01}, 2, 1, 1, WS_OP_TEXT, 1},
	{"the longest 7-bit length", {0x82, 0x7d}, 2, 1, 1, WS_OP_BINARY, 125},
	{"the shortest 16-bit length", {0x81, 0x7e, 0x00, 0x7e}, 4, 1, 1, WS_OP_TEXT, 126},
	{"a 16-bit length with both bytes set", {0x81, 0x7e, 0x12, 0x34}, 4, 1, 1, WS_OP_TEXT,
	    0x1234},
	{"the longest 16-bit length", {0x81, 0x7e, 0xff, 0xff}, 4, 1, 1, WS_OP_TEXT, 0xffff},
	{"the shortest 64-bit length", {0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0x00, 0x00}, 10, 1, 1,
	    WS_OP_TEXT, 0x10000},
	{"a 64-bit length with every byte set", {0x82, 0x7f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	    0x07, 0x08}, 10, 1, 1, WS_OP_BINARY, 0x0102030405060708ull},
	{"the longest 64-bit length", {0x81, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff}, 10, 1, 1, WS_OP_TEXT, 0x7fffffffffffffffull},
	/* RFC 6455 asks for the shortest encoding; the codec is lenient about it. */
	{"a 16-bit encoding of a short length", {0x81, 0x7e, 0x00, 0x05}, 4, 1, 1, WS_OP_TEXT,
	    5},
	{"a 64-bit encoding of a short length", {0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x05}, 10, 1,
	    1, WS_OP_TEXT, 5},
	{"a text frame that is not final", {0x01, 0x03}, 2, 1, 0, WS_OP_TEXT, 3},
	{"a binary frame that is not final", {0x02, 0x7e, 0x01, 0x00}, 4, 1, 0, WS_OP_BINARY,
	    256},
	{"a continuation frame that is not final", {0x00, 0x04}, 2, 1, 0, WS_OP_CONT, 4},
	{"a final continuation frame", {0x80, 0x7e, 0x01, 0x00}, 4, 1, 1, WS_OP_CONT, 256},
	{"a ping without payload", {0x89, 0x00}, 2, 1, 1, WS_OP_PING, 0},
	{"a ping of 125 bytes", {0x89, 0x7d}, 2, 1, 1, WS_OP_PING, 125},
	{"a pong", {0x8a, 0x04}, 2, 1, 1, WS_OP_PONG, 4},
	{"a close without a code", {0x88, 0x00}, 2, 1, 1, WS_OP_CLOSE, 0},
	{"a close with a code only", {0x88, 0x02}, 2, 1, 1, WS_OP_CLOSE, 2},
	{"a close with a code and a reason", {0x88, 0x10}, 2, 1, 1, WS_OP_CLOSE, 16},
	{"a close of 125 bytes", {0x88, 0x7d}, 2, 1, 1, WS_OP_CLOSE, 125},
};

/* Heads a server may not send. */
static const struct head_case refused[] = {
	{"a masked text frame", {0x81, 0x85, 1, 2, 3, 4}, 2, -1, 0, 0, 0},
	{"a masked frame with a 16-bit length", {0x81, 0xfe, 0x01, 0x00}, 2, -1, 0, 0, 0},
	{"a masked empty pong", {0x8a, 0x80, 1, 2, 3, 4}, 2, -1, 0, 0, 0},
	{"RSV1 (no extension was negotiated)", {0xc1, 0x01}, 2, -1, 0, 0, 0},
	{"RSV2", {0xa1, 0x01}, 2, -1, 0, 0, 0},
	{"RSV3", {0x91, 0x01}, 2, -1, 0, 0, 0},
	{"RSV1 on a close", {0xc8, 0x00}, 2, -1, 0, 0, 0},
	{"the reserved data opcode 0x3", {0x83, 0x00}, 2, -1, 0, 0, 0},
	{"the reserved data opcode 0x7", {0x87, 0x00}, 2, -1, 0, 0, 0},
	{"the reserved control opcode 0xb", {0x8b, 0x00}, 2, -1, 0, 0, 0},
	{"the reserved control opcode 0xf", {0x8f, 0x00}, 2, -1, 0, 0, 0},
	{"a ping of 126 bytes", {0x89, 0x7e, 0x00, 0x7e}, 2, -1, 0, 0, 0},
	{"a close with a 16-bit length", {0x88, 0x7e, 0x00, 0x02}, 2, -1, 0, 0, 0},
	{"a pong with a 64-bit length", {0x8a, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0x01}, 2, -1, 0, 0,
	    0},
	{"a ping that is not final", {0x09, 0x00}, 2, -1, 0, 0, 0},
	{"a close that is not final", {0x08, 0x02}, 2, -1, 0, 0, 0},
	{"a pong that is not final", {0x0a, 0x00}, 2, -1, 0, 0, 0},
	{"a 64-bit length with its top bit set", {0x81, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10,
	    -1, 0, 0, 0},
};

#define NCASES(t) (sizeof(t) / sizeof(t)[0])

/* Parses the first n bytes of c's head. Returns what ws_frame_parse did. */
static int
parse(const struct head_case *c, size_t n, struct ws_frame *f)
{
	memset(f, 0xa5, sizeof *f);
	return ws_frame_parse(c->b, n, f);
}

Test(sdk_ws, parses_a_complete_head_of_each_length_encoding_and_opcode)
{
	struct ws_frame f;
	size_t i;

	for (i = 0; i < NCASES(valid); i++) {
		const struct head_case *c = &valid[i];

		cr_assert_eq(parse(c, c->n, &f), 1, "%s: not parsed", c->what);
		cr_expect_eq(f.fin, c->fin, "%s: fin %d", c->what, f.fin);
		cr_expect_eq(f.opcode, c->opcode, "%s: opcode %#x", c->what, f.opcode);
		cr_expect_eq(f.head_len, c->n, "%s: head_len %zu", c->what, f.head_len);
		cr_expect_eq(f.len, c->len, "%s: len %llu", c->what, (unsigned long long)f.len);
	}
}

Test(sdk_ws, needs_more_bytes_at_every_split_point_of_a_head)
{
	struct ws_frame f;
	size_t i, n;

	for (i = 0; i < NCASES(valid); i++)
		for (n = 0; n < valid[i].n; n++)
			cr_expect_eq(parse(&valid[i], n, &f), 0, "%s: %zu of %zu bytes gave no 0",
			    valid[i].what, n, valid[i].n);
}

Test(sdk_ws, parses_the_head_alone_whatever_of_the_payload_has_come)
{
	/* The caller compares head_len + len with what it has: the head is enough here. */
	unsigned char b[4 + 300] = {0x81, 0x7e, 0x01, 0x2c};
	struct ws_frame f;
	size_t n;

	for (n = 4; n <= sizeof b; n += 37) {
		cr_assert_eq(ws_frame_parse(b, n, &f), 1, "with %zu bytes", n);
		cr_assert_eq(f.head_len, 4);
		cr_assert_eq(f.len, 300);
	}
}

Test(sdk_ws, refuses_a_masked_frame_from_the_server)
{
	unsigned char b[2 + 4 + 8 + 4];
	struct ws_frame f;
	size_t i;

	/* Every head above, masked as only a client's may be. */
	for (i = 0; i < NCASES(valid); i++) {
		memset(b, 0, sizeof b);
		memcpy(b, valid[i].b, valid[i].n);
		b[1] |= 0x80;
		cr_expect_eq(ws_frame_parse(b, sizeof b, &f), -1, "%s, masked: not refused",
		    valid[i].what);
	}
}

Test(sdk_ws, refuses_reserved_bits_unknown_opcodes_and_long_or_unfinished_control_frames)
{
	struct ws_frame f;
	size_t i;

	for (i = 0; i < NCASES(refused); i++)
		cr_expect_eq(parse(&refused[i], sizeof refused[i].b, &f), -1, "%s: not refused",
		    refused[i].what);
}

Test(sdk_ws, asks_for_more_bytes_until_it_has_those_that_break_the_rules)
{
	struct ws_frame f;
	size_t i, n;

	for (i = 0; i < NCASES(refused); i++) {
		const struct head_case *c = &refused[i];

		for (n = 0; n < c->n; n++)
			cr_expect_eq(parse(c, n, &f), 0, "%s: %zu bytes", c->what, n);
		cr_expect_eq(parse(c, c->n, &f), -1, "%s: %zu bytes", c->what, c->n);
	}
}

Test(sdk_ws, takes_every_opcode_rfc_6455_defines_and_no_other)
{
	unsigned char b[2];
	struct ws_frame f;
	int op, known;

	for (op = 0; op < 16; op++) {
		b[0] = (unsigned char)(0x80 | op);
		b[1] = 0;
		known = op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
		cr_expect_eq(ws_frame_parse(b, sizeof b, &f), known ? 1 : -1, "opcode %#x", op);
	}
}

/* ---- The frames the client sends ---- */

/* Checks the frame ws_frame_encode wrote before payload (head_len bytes) for opcode, len
 * bytes and mask, and unmasks the payload in place. */
static void
check_client_frame(
    unsigned char *payload, size_t head_len, int opcode, size_t len, uint32_t mask)
{
	const unsigned char *h = payload - head_len;
	unsigned char key[4];
	uint64_t n = 0;
	size_t i;

	memcpy(key, &mask, 4);
	cr_assert_eq(h[0], 0x80 | opcode, "len %zu: first byte %#x", len, h[0]);
	cr_assert(h[1] & 0x80, "len %zu: the mask bit is clear", len);
	if (len < 126) {
		cr_assert_eq(head_len, 6, "len %zu", len);
		n = h[1] & 0x7f;
	} else if (len <= 0xffff) {
		cr_assert_eq(head_len, 8, "len %zu", len);
		cr_assert_eq(h[1] & 0x7f, 126, "len %zu", len);
		n = (uint64_t)h[2] << 8 | h[3];
	} else {
		cr_assert_eq(head_len, 14, "len %zu", len);
		cr_assert_eq(h[1] & 0x7f, 127, "len %zu", len);
		for (i = 0; i < 8; i++)
			n = n << 8 | h[2 + i];
	}
	cr_assert_eq(n, len, "len %zu: the head says %llu", len, (unsigned long long)n);
	cr_assert_eq(memcmp(payload - 4, key, 4), 0, "len %zu: the key is not the mask", len);
	for (i = 0; i < len; i++)
		payload[i] ^= key[i % 4];
}

Test(sdk_ws, masks_a_frame_that_unmasks_to_its_payload_at_every_length_and_alignment)
{
	static const size_t lens[] = {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 125, 126, 127, 1000,
	    0xffff, 0x10000, 0x10007};
	static const uint32_t masks[] = {0x00000000, 0x12345678, 0xdeadbeef, 0xffffffff};
	unsigned char *buf = malloc(WS_HEAD_MAX + 8 + 0x10007), *payload;
	unsigned char *want = malloc(0x10007);
	size_t i, k, a, j, head_len;

	cr_assert(buf && want);
	for (j = 0; j < 0x10007; j++)
		want[j] = (unsigned char)(j * 7 + (j >> 8));
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++)
		for (k = 0; k < sizeof masks / sizeof masks[0]; k++)
			for (a = 0; a < 8; a += 3) {
				payload = buf + WS_HEAD_MAX + a;
				memcpy(payload, want, lens[i]);
				head_len = ws_frame_encode(payload, WS_OP_TEXT, lens[i], masks[k]);
				if (masks[k] && lens[i] >= 4)
					cr_assert_neq(memcmp(payload, want, lens[i]), 0,
					    "len %zu, mask %#x: the payload went out as is", lens[i],
					    masks[k]);
				check_client_frame(payload, head_len, WS_OP_TEXT, lens[i], masks[k]);
				cr_assert_eq(memcmp(payload, want, lens[i]), 0,
				    "len %zu, mask %#x, offset %zu: unmasking gives other bytes",
				    lens[i], masks[k], a);
			}
	free(buf);
	free(want);
}

Test(sdk_ws, masks_a_frame_with_the_key_repeating_every_four_bytes)
{
	/* A known answer: "Hello" masked with 37 fa 21 3d, RFC 6455 section 5.7. */
	static const unsigned char want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f,
	    0x4d, 0x51, 0x58};
	static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
	unsigned char buf[WS_HEAD_MAX + 5];
	uint32_t mask;
	size_t head_len;

	memcpy(&mask, key, 4);
	memcpy(buf + WS_HEAD_MAX, "Hello", 5);
	head_len = ws_frame_encode(buf + WS_HEAD_MAX, WS_OP_TEXT, 5, mask);
	cr_assert_eq(head_len, 6);
	cr_assert_eq(memcmp(buf + WS_HEAD_MAX - head_len, want, sizeof want), 0);
}

Test(sdk_ws, encodes_a_frame_that_parses_back_once_unmasked)
{
	static const int ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
	static const size_t lens[] = {0, 2, 125, 126, 0xffff, 0x10000};
	unsigned char *buf = malloc(WS_HEAD_MAX + 0x10000), *h, server[WS_HEAD_MAX];
	struct ws_frame f;
	size_t i, k, head_len;

	cr_assert_not_null(buf);
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		for (k = 0; k < sizeof lens / sizeof lens[0]; k++) {
			if (ops[i] >= WS_OP_CLOSE && lens[k] > 125)
				continue;
			memset(buf + WS_HEAD_MAX, 'x', lens[k]);
			head_len = ws_frame_encode(buf + WS_HEAD_MAX, ops[i], lens[k], 0x01020304);
			h = buf + WS_HEAD_MAX - head_len;
			cr_assert_eq(ws_frame_parse(h, head_len + lens[k], &f), -1,
			    "op %#x, len %zu: a masked frame was taken", ops[i], lens[k]);
			/* The same head as a server sends it: no mask bit, no key. */
			memcpy(server, h, head_len - 4);
			server[1] &= 0x7f;
			cr_assert_eq(ws_frame_parse(server, head_len - 4, &f), 1, "op %#x, len %zu",
			    ops[i], lens[k]);
			cr_assert_eq(f.fin, 1);
			cr_assert_eq(f.opcode, ops[i]);
			cr_assert_eq(f.head_len, head_len - 4);
			cr_assert_eq(f.len, lens[k]);
		}
	free(buf);
}

/* ---- The upgrade ---- */

/* RFC 6455 section 1.3: the accept value for the key "dGhlIHNhbXBsZSBub25jZQ==". */
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define PROTO "fixture-broker.v1"

struct upgrade_case {
	const char *what;
	const char *head;
	int rc;
	int status;
	const char *why; /* in the reason when rc is -1 */
};

static const struct upgrade_case upgrades[] = {
	{"a complete answer",
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: " PROTO "\r\n\r\n",
	    0, 101, NULL},
	{"header names and tokens in other cases, tokens in lists, spaces around values",
	    "HTTP/1.1 101 Switching Protocols\r\nupgrade:  WebSocket \r\n"
	    "CONNECTION: keep-alive, Upgrade\r\nsec-websocket-accept:\t" ACCEPT "\t\r\n"
	    "Server: test\r\n\r\n",
	    0, 101, NULL},
	{"an answer without a subprotocol", "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    0, 101, NULL},
	{"not HTTP", "SSH-2.0-OpenSSH_9.6\r\n\r\n", -1, 0, "is not HTTP"},
	{"a status line cut short", "HTTP/1.1 10\r\n\r\n", -1, 0, "is not HTTP"},
	{"a status that is not a number", "HTTP/1.1 1x1 Switching\r\n\r\n", -1, 0,
	    "is not HTTP"},
	{"a refusal with 401", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", -1, 401,
	    "refused with \"HTTP/1.1 401 Unauthorized\""},
	{"a plain 200", "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    -1, 200, "refused"},
	{"no Upgrade header", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    -1, 101, "\"Upgrade: websocket\""},
	{"an Upgrade to another protocol", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    -1, 101, "\"Upgrade: websocket\""},
	{"no Connection header", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    -1, 101, "\"Connection: upgrade\""},
	{"Connection: close", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: close\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
	    -1, 101, "\"Connection: upgrade\""},
	{"no Sec-WebSocket-Accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\n\r\n",
	    -1, 101, "the right Sec-WebSocket-Accept"},
	{"a wrong Sec-WebSocket-Accept", "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOp=\r\n\r\n",
	    -1, 101, "the right Sec-WebSocket-Accept"},
	{"a Sec-WebSocket-Accept cut short", "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo\r\n\r\n",
	    -1, 101, "the right Sec-WebSocket-Accept"},
	{"a Sec-WebSocket-Accept in another case", "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n",
	    -1, 101, "the right Sec-WebSocket-Accept"},
	{"a subprotocol that was not offered", "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
	    "Sec-WebSocket-Protocol: chat\r\n\r\n",
	    -1, 101, "chose the subprotocol \"chat\""},
	{"an extension that was not offered", "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n"
	    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
	    -1, 101, "an extension that was not offered"},
};

Test(sdk_ws, checks_the_answer_to_the_upgrade_as_rfc_6455_asks_a_client_to)
{
	char why[256];
	size_t i;
	int status, rc;

	for (i = 0; i < sizeof upgrades / sizeof upgrades[0]; i++) {
		const struct upgrade_case *u = &upgrades[i];

		strcpy(why, "(unset)");
		status = -1;
		rc = ws_upgrade_check(
		    u->head, strlen(u->head), ACCEPT, PROTO, &status, why, sizeof why);
		cr_expect_eq(rc, u->rc, "%s: returned %d (%s)", u->what, rc, why);
		cr_expect_eq(status, u->status, "%s: status %d", u->what, status);
		if (u->why)
			cr_expect(strstr(why, u->why) != NULL, "%s: the reason is \"%s\"", u->what,
			    why);
	}
}

Test(sdk_ws, refuses_an_answer_whose_accept_is_for_another_key)
{
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	                           "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n";
	char key[25], accept[29], why[256];
	int status;

	ws_key_new(key, accept);
	cr_assert_eq(ws_upgrade_check(head, strlen(head), accept, PROTO, &status, why, sizeof why),
	    -1, "an answer to the RFC's sample key was taken for the key %s", key);
	cr_assert(strstr(why, "Sec-WebSocket-Accept") != NULL, "%s", why);
}

Test(sdk_ws, reads_no_further_than_the_head_it_is_given)
{
	/* The accept header lies past head_len: it must not count. */
	static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	                           "Connection: Upgrade\r\n\r\nSec-WebSocket-Accept: " ACCEPT
	                           "\r\n\r\n";
	size_t head_len = strstr(head, "\r\n\r\n") + 4 - head;
	char why[256];
	int status;

	cr_assert_eq(ws_upgrade_check(head, head_len, ACCEPT, PROTO, &status, why, sizeof why),
	    -1);
	cr_assert(strstr(why, "Sec-WebSocket-Accept") != NULL, "%s", why);
}

Test(sdk_ws, makes_a_new_key_and_its_accept_value_for_each_connection)
{
	char key1[25], accept1[29], key2[25], accept2[29];

	ws_key_new(key1, accept1);
	ws_key_new(key2, accept2);
	/* 16 bytes are 24 base64 digits ending in "=="; a SHA-1 digest is 28 ending in "=". */
	cr_assert_eq(strlen(key1), 24);
	cr_assert_eq(strcmp(key1 + 22, "=="), 0, "%s", key1);
	cr_assert_eq(strlen(accept1), 28);
	cr_assert_eq(accept1[27], '=', "%s", accept1);
	cr_assert_eq(strspn(accept1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                             "0123456789+/="),
	    28, "%s", accept1);
	cr_assert_str_neq(key1, key2);
	cr_assert_str_neq(accept1, accept2);
}

Test(sdk_ws, writes_the_upgrade_request_with_the_token_only_when_there_is_one)
{
	char buf[512], small[64];
	size_t n;

	n = ws_upgrade_request(buf, sizeof buf, "127.0.0.1:7357", "/", "dGhlIHNhbXBsZSBub25jZQ==",
	    PROTO, NULL);
	cr_assert_eq(n, strlen(buf));
	cr_assert_eq(strncmp(buf, "GET / HTTP/1.1\r\nHost: 127.0.0.1:7357\r\n", 38), 0, "%s", buf);
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"), "%s", buf);
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Version: 13\r\n"), "%s", buf);
	cr_assert(strstr(buf, "\r\nSec-WebSocket-Protocol: " PROTO "\r\n"), "%s", buf);
	cr_assert_null(strstr(buf, "Authorization"), "%s", buf);
	cr_assert_eq(strcmp(buf + n - 4, "\r\n\r\n"), 0);

	n = ws_upgrade_request(buf, sizeof buf, "h:1", "/x", "k", PROTO, "s3cret");
	cr_assert(strstr(buf, "\r\nAuthorization: Bearer s3cret\r\n"), "%s", buf);
	cr_assert_eq(strcmp(buf + n - 4, "\r\n\r\n"), 0);

	cr_assert_eq(ws_upgrade_request(small, sizeof small, "h:1", "/", "k", PROTO, NULL), 0,
	    "a request that does not fit");
}
