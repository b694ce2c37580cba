/* audit.c: the audit log's file. The loop is its only writer. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/audit.h"
#include "core/log.h"

struct audit {
	FILE *f;
};

struct audit *
audit_open(const char *path, struct fxb_error *err)
{
	struct audit *a = calloc(1, sizeof *a);

	if (!a) {
		error_set(err, ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (!strcmp(path, "-")) {
		a->f = stderr;
		return a;
	}
	if (!(a->f = fopen(path, "ae"))) {
		error_set(err, ERR_INTERNAL, "audit_log: cannot open %s: %s", path, strerror(errno));
		free(a);
		return NULL;
	}
	return a;
}

void
audit_free(struct audit *a)
{
	if (!a)
		return;
	if (a->f != stderr)
		fclose(a->f);
	free(a);
}

int
audit_enabled(const struct audit *a)
{
	return a != NULL;
}

void
audit_event(struct audit *a, const char *event, json_t *fields)
{
	json_t *line;
	char ts[96], *text;
	struct timeval tv;
	struct tm tm;

	if (!a) {
		json_decref(fields);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
	line = json_pack("{s:s, s:s}", "ts", ts, "event", event);
	if (line && fields)
		json_object_update(line, fields);
	json_decref(fields);
	if (!line || !(text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
		json_decref(line);
		log_warnx("audit: out of memory, an %s event is lost", event);
		return;
	}
	fprintf(a->f, "%s\n", text);
	fflush(a->f);
	free(text);
	json_decref(line);
}
