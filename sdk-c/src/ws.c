/* ws.c: the client side of RFC 6455 on buffers: the upgrade request and its answer, frames.
 *
 * conn.c calls these around its socket. The upgrade answer is checked the way RFC 6455
 * section 4.1 asks a client to (status 101, Upgrade, Connection, Sec-WebSocket-Accept, no
 * subprotocol or extension that was not offered). SHA-1 is here only for the accept value.
 */
#include "ws.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static uint32_t
rol(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* The SHA-1 digest of the len (< 120) bytes at p. */
static void
sha1_short(const unsigned char *p, size_t len, unsigned char out[20])
{
	uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	unsigned char blocks[128] = {0};
	size_t n = len + 9 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	int i;

	memcpy(blocks, p, len);
	blocks[len] = 0x80;
	for (i = 0; i < 8; i++)
		blocks[n - 1 - i] = (unsigned char)(bits >> (8 * i));
	sha1_block(h, blocks);
	if (n == 128)
		sha1_block(h, blocks + 64);
	for (i = 0; i < 20; i++)
		out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Base64 of the len bytes at p into out, which holds 4 * ceil(len / 3) + 1 bytes. */
static void
base64(const unsigned char *p, size_t len, char *out)
{
	static const char digits[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	uint32_t v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*out++ = digits[v >> 18];
		*out++ = digits[v >> 12 & 63];
		*out++ = digits[v >> 6 & 63];
		*out++ = digits[v & 63];
	}
	if (i < len) {
		v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
		*out++ = digits[v >> 18];
		*out++ = digits[v >> 12 & 63];
		*out++ = i + 1 < len ? digits[v >> 6 & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

void
ws_key_new(char key[25], char accept[29])
{
	unsigned char nonce[16], digest[20], text[24 + sizeof WS_GUID];
	struct timespec ts;
	uint64_t x;
	size_t i;

	/* The key only has to differ between connections; without entropy (very early in
	 * boot) the clock and an address still make it do so. */
	if (getrandom(nonce, sizeof nonce, GRND_NONBLOCK) != (ssize_t)sizeof nonce) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)&ts;
		for (i = 0; i < sizeof nonce; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			nonce[i] = (unsigned char)x;
		}
	}
	base64(nonce, sizeof nonce, key);
	memcpy(text, key, 24);
	memcpy(text + 24, WS_GUID, sizeof WS_GUID - 1);
	sha1_short(text, 24 + sizeof WS_GUID - 1, digest);
	base64(digest, sizeof digest, accept);
}

size_t
ws_upgrade_request(char *buf, size_t cap, const char *host, const char *path, const char *key,
    const char *protocol, const char *token)
{
	int n = snprintf(buf, cap,
	    "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Protocol: %s\r\n"
	    "%s%s%s"
	    "\r\n",
	    path, host, key, protocol, token ? "Authorization: Bearer " : "", token ? token : "",
	    token ? "\r\n" : "");

	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Whether the comma-separated list value (vlen bytes) holds token, ignoring case. */
static int
has_token(const char *value, size_t vlen, const char *token)
{
	size_t tlen = strlen(token), i = 0, start, end;

	while (i < vlen) {
		while (i < vlen && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < vlen && value[i] != ',')
			i++;
		end = i;
		while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
			end--;
		if (end - start == tlen && !strncasecmp(value + start, token, tlen))
			return 1;
	}
	return 0;
}

int
ws_upgrade_check(const char *head, size_t head_len, const char *accept, const char *protocol,
    int *status, char *why, size_t whylen)
{
	const char *p = head, *end = head + head_len, *eol, *colon, *v;
	size_t line_len, vlen, nlen;
	int upgrade = 0, connection = 0, accepted = 0, code;

	*status = 0;
	if (!(eol = memmem(p, (size_t)(end - p), "\r\n", 2)))
		eol = end;
	line_len = (size_t)(eol - p);
	if (line_len < 12 || strncmp(p, "HTTP/1.", 7) || !isdigit((unsigned char)p[9]) ||
	    !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]) || p[8] != ' ') {
		snprintf(why, whylen, "the answer to the WebSocket upgrade is not HTTP");
		return -1;
	}
	code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	*status = code;
	if (code != 101) {
		snprintf(why, whylen, "the WebSocket upgrade was refused with \"%.*s\"",
		    (int)(line_len > 100 ? 100 : line_len), p);
		return -1;
	}
	for (p = eol + 2; p < end; p = eol + 2) {
		if (!(eol = memmem(p, (size_t)(end - p), "\r\n", 2)) || eol == p)
			break;
		if (!(colon = memchr(p, ':', (size_t)(eol - p))))
			continue;
		nlen = (size_t)(colon - p);
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(eol - v);
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
#define IS(name) (nlen == sizeof name - 1 && !strncasecmp(p, name, nlen))
		if (IS("Upgrade")) {
			upgrade = has_token(v, vlen, "websocket");
		} else if (IS("Connection")) {
			connection = has_token(v, vlen, "upgrade");
		} else if (IS("Sec-WebSocket-Accept")) {
			accepted = vlen == strlen(accept) && !memcmp(v, accept, vlen);
		} else if (IS("Sec-WebSocket-Protocol")) {
			if (vlen != strlen(protocol) || memcmp(v, protocol, vlen)) {
				snprintf(why, whylen, "the broker chose the subprotocol \"%.*s\"",
				    (int)(vlen > 60 ? 60 : vlen), v);
				return -1;
			}
		} else if (IS("Sec-WebSocket-Extensions")) {
			snprintf(why, whylen, "the broker chose an extension that was not offered");
			return -1;
		}
#undef IS
	}
	if (!upgrade || !connection || !accepted) {
		snprintf(why, whylen, "the answer to the WebSocket upgrade lacks %s",
		    !upgrade      ? "\"Upgrade: websocket\""
		    : !connection ? "\"Connection: upgrade\""
		                  : "the right Sec-WebSocket-Accept");
		return -1;
	}
	return 0;
}

size_t
ws_frame_encode(unsigned char *payload, int opcode, size_t len, uint32_t mask)
{
	unsigned char key[4], *h;
	size_t head_len = len < 126 ? 6 : len <= 0xffff ? 8 : 14, i, n8 = len / 8;
	uint64_t m8, w;
	int k;

	memcpy(key, &mask, 4);
	h = payload - head_len;
	h[0] = (unsigned char)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		h[1] = (unsigned char)(0x80 | len);
	} else if (len <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
	} else {
		h[1] = 0x80 | 127;
		for (k = 0; k < 8; k++)
			h[2 + k] = (unsigned char)((uint64_t)len >> (56 - 8 * k));
	}
	memcpy(payload - 4, key, 4);

	/* Eight bytes at a time: the key repeats every four, so two copies side by side
	 * mask a word whatever the byte order. */
	memcpy(&m8, key, 4);
	memcpy((unsigned char *)&m8 + 4, key, 4);
	for (i = 0; i < n8; i++) {
		memcpy(&w, payload + 8 * i, 8);
		w ^= m8;
		memcpy(payload + 8 * i, &w, 8);
	}
	for (i = n8 * 8; i < len; i++)
		payload[i] ^= key[i % 4];
	return head_len;
}

int
ws_frame_parse(const unsigned char *p, size_t len, struct ws_frame *f)
{
	size_t head_len, len7;
	uint64_t n = 0;
	int k;

	if (len < 2)
		return 0;
	if (p[0] & 0x70 || p[1] & 0x80)
		return -1; /* reserved bits without an extension, or a masked server frame */
	f->fin = !!(p[0] & 0x80);
	f->opcode = p[0] & 0x0f;
	len7 = p[1] & 0x7f;
	head_len = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
	if (f->opcode > WS_OP_BINARY && f->opcode < WS_OP_CLOSE)
		return -1;
	if (f->opcode > WS_OP_PONG)
		return -1;
	if (f->opcode >= WS_OP_CLOSE && (!f->fin || len7 > 125))
		return -1;
	if (len < head_len)
		return 0;
	if (len7 == 126) {
		n = (uint64_t)p[2] << 8 | p[3];
	} else if (len7 == 127) {
		for (k = 0; k < 8; k++)
			n = n << 8 | p[2 + k];
		if (n >> 63)
			return -1;
	} else {
		n = len7;
	}
	f->head_len = head_len;
	f->len = n;
	return 1;
}
