/* ws.h: the client side of RFC 6455 without a socket: the upgrade, frame heads, masking.
 *
 * conn.c does the I/O; everything here works on buffers, so the protocol can be checked
 * apart from any connection. Only what a client needs: frames it sends are final and
 * masked, frames it receives must be unmasked, and no extension is ever negotiated.
 */
#ifndef FXB_WS_H
#define FXB_WS_H

#include <stddef.h>
#include <stdint.h>

#define INTERNAL __attribute__((visibility("hidden")))

/* The longest frame head: 2 bytes, a 64-bit length and the masking key. */
#define WS_HEAD_MAX 14

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa
};

struct ws_frame {
	int fin;
	int opcode;
	size_t head_len; /* bytes before the payload */
	uint64_t len;    /* payload bytes */
};

/* Makes a new Sec-WebSocket-Key from 16 random bytes into key and the
 * Sec-WebSocket-Accept the server must answer into accept (both NUL-terminated). */
INTERNAL void ws_key_new(char key[25], char accept[29]);

/* Writes the upgrade request into buf (NUL-terminated); token, if not NULL, goes into an
 * Authorization: Bearer header. Returns its length, or 0 if it does not fit. */
INTERNAL size_t ws_upgrade_request(char *buf, size_t cap, const char *host, const char *path,
    const char *key, const char *protocol, const char *token);

/* Checks the server's answer, head_len bytes up to and including its blank line. Returns
 * 0 when it completes the upgrade, or -1 with the reason in why and the HTTP status (0 if
 * the answer is not HTTP) in *status. */
INTERNAL int ws_upgrade_check(const char *head, size_t head_len, const char *accept,
    const char *protocol, int *status, char *why, size_t whylen);

/* Writes the head of a final frame of opcode with len payload bytes, masked with mask,
 * into the bytes just before payload (which must have WS_HEAD_MAX bytes there), and masks
 * the payload in place. Returns the head's length. */
INTERNAL size_t ws_frame_encode(unsigned char *payload, int opcode, size_t len, uint32_t mask);

/* Parses the frame head at the start of the len bytes at p. Returns 1 with *f filled, 0
 * when more bytes are needed, and -1 when a server may not send it (a masked frame,
 * reserved bits, an unknown opcode, a long or fragmented control frame). */
INTERNAL int ws_frame_parse(const unsigned char *p, size_t len, struct ws_frame *f);

#endif
