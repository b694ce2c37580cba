/* fuzz_sdk_frame.c: libFuzzer harness for libfxb's WebSocket codec (sdk-c/src/ws.c).
 *
 * The first byte picks the part: the upgrade answer check (ws_upgrade_check) on the rest
 * as a server's reply head, or the frame parser (ws_frame_parse) walking the rest as a
 * stream of server frames, as conn.c reads them; a parsed head must lie within what it
 * was given. Every parsed frame's payload is also encoded again (ws_frame_encode).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		char why[256];
		int status;
		(void)ws_upgrade_check((const char *)data + 1, size - 1,
		    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "fixture-broker.v1", &status, why, sizeof why);
		return 0;
	}
	data++, size--;
	while (size > 0) {
		struct ws_frame f;
		int rc = ws_frame_parse(data, size, &f);
		if (rc <= 0)
			break;
		if (f.head_len > size || f.head_len > WS_HEAD_MAX)
			abort();
		if (f.len > size - f.head_len)
			break;
		{
			unsigned char *buf = malloc(WS_HEAD_MAX + f.len + 1);
			memcpy(buf + WS_HEAD_MAX, data + f.head_len, f.len);
			if (ws_frame_encode(buf + WS_HEAD_MAX, f.opcode, f.len, 0x12345678) > WS_HEAD_MAX)
				abort();
			free(buf);
		}
		data += f.head_len + f.len;
		size -= f.head_len + f.len;
	}
	return 0;
}
