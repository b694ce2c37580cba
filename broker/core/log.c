/* log.c: the logging vocabulary of log.h, written to stderr one line at a time.
 *
 * The level is process-wide: the broker sets it once from its configuration at start-up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static const char *level_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
	current_level = level;
}

int
log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void
vlog(enum log_level level, int errnum, const char *func, const char *fmt, va_list ap)
{
	char msg[1024];
	struct timespec ts;
	struct tm tm;

	vsnprintf(msg, sizeof msg, fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (errnum)
		fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s: %s\n",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], func, msg,
		    strerror(errnum));
	else
		fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s\n",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], func, msg);
}

void
log_at(enum log_level level, int with_errno, const char *func, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	vlog(level, with_errno ? saved : 0, func, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal_at(const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, func, fmt, ap);
	va_end(ap);
	exit(1);
}
