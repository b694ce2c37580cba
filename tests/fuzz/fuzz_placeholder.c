/* fuzz_placeholder.c: libFuzzer harness for the placeholder parser of server templates.
 *
 * Each input is one command argument: templates_new() checks its placeholders as it
 * parses a template that names two ports and a needed fixture, and when it is accepted
 * template_expand() fills them for a lease, as servers.c does when it starts the server.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/server/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t ports[] = { 15001, 15002 };
	struct fxb_error err = { 0 };
	struct templates *ts;
	json_t *arg = json_stringn_nocheck((const char *)data, size), *section;
	char *text = strndup((const char *)data, size);

	section = json_pack("{s:{s:[s,O], s:[s,s], s:{s:{s:s}}}}", "t", "command", "/bin/true",
	    arg, "ports", "http", "admin", "needs", "db", "kind", "port");
	if (section && (ts = templates_new(section, &err))) {
		json_t *fixtures = json_pack("{s:{s:s, s:i}}", "db", "host", "127.0.0.1", "port",
		    15003);
		struct expand_vars v = { "127.0.0.1", "127.0.0.1", "l-1", "api", ports, fixtures };
		char *out = template_expand(templates_get(ts, "t"), text, &v, &err);
		free(out);
		json_decref(fixtures);
		templates_free(ts);
	}
	error_clear(&err);
	json_decref(section);
	json_decref(arg);
	free(text);
	return 0;
}
