/* ring.c: bounded output rings and UTF-8 clean-up for JSON (see ring.h).
 *
 * Plain data structures with no state outside the struct: unit tests drive them directly.
 */
#include <stdlib.h>
#include <string.h>

#include "util/ring.h"

int
ring_init(struct ring *r, size_t cap)
{
	memset(r, 0, sizeof *r);
	if (cap == 0 || !(r->buf = malloc(cap)))
		return -1;
	r->cap = cap;
	return 0;
}

void
ring_close(struct ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

void
ring_write(struct ring *r, const void *data, size_t n)
{
	const char *p = data;

	if (!r->buf)
		return;
	r->total += n;
	/* Only the last cap bytes of a long write can survive it. */
	if (n >= r->cap) {
		memcpy(r->buf, p + n - r->cap, r->cap);
		r->start = 0;
		r->len = r->cap;
		return;
	}
	while (n > 0) {
		size_t end = (r->start + r->len) % r->cap;
		size_t room = r->cap - end, chunk = n < room ? n : room;

		memcpy(r->buf + end, p, chunk);
		p += chunk;
		n -= chunk;
		r->len += chunk;
		if (r->len > r->cap) {
			r->start = (r->start + r->len - r->cap) % r->cap;
			r->len = r->cap;
		}
	}
}

char *
ring_tail(const struct ring *r, size_t lines, size_t *len)
{
	char *out = malloc(r->len + 1);
	size_t first = r->len > r->cap - r->start ? r->cap - r->start : r->len, from = 0;

	if (!out)
		return NULL;
	if (r->len) {
		memcpy(out, r->buf + r->start, first);
		memcpy(out + first, r->buf, r->len - first);
	}
	out[r->len] = '\0';
	if (lines > 0 && r->len > 0) {
		size_t i = r->len - 1, seen = 0; /* a final newline ends the last line */

		while (i > 0) {
			if (out[i - 1] == '\n' && ++seen == lines) {
				from = i;
				break;
			}
			i--;
		}
	}
	if (from)
		memmove(out, out + from, r->len - from + 1);
	*len = r->len - from;
	return out;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF. */
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

json_t *
text_json(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *clean = malloc(n * 3 + 1);
	size_t i = 0, o = 0;
	json_t *j;

	if (!clean)
		return NULL;
	while (i < n) {
		size_t k = utf8_len(u + i, n - i);

		if (k == 0) {
			memcpy(clean + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(clean + o, s + i, k);
		o += k;
		i += k;
	}
	j = json_stringn(clean, o);
	free(clean);
	return j;
}
