/* fuzz_config.c: libFuzzer harness for the configuration parser.
 *
 * Each input is a configuration file: config_load_file() reads it (from a memfd, by its
 * /proc path, as the broker reads --config), and when it is accepted its "servers"
 * section goes through templates_new(), which checks every template and placeholder, as
 * the broker does at start-up.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "fixtures/server/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct fxb_error err = { 0 };
	struct config cfg;

	if (fd == -1) {
		if ((fd = memfd_create("fuzz-config", 0)) == -1)
			abort();
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	config_defaults(&cfg);
	if (config_load_file(&cfg, path, &err) == 0 && cfg.servers) {
		struct templates *ts = templates_new(cfg.servers, &err);
		templates_free(ts);
	}
	error_clear(&err);
	config_clear(&cfg);
	return 0;
}
