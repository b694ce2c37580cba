/* audit.c: the audit log's one file. The loop is the only writer. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/audit.h"
#include "core/log.h"

static FILE *audit_file;

int
audit_open(const char *path, struct fxb_error *err)
{
	audit_close();
	if (!strcmp(path, "-")) {
		audit_file = stderr;
		return 0;
	}
	if (!(audit_file = fopen(path, "ae"))) {
		error_set(err, ERR_INTERNAL, "audit_log: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
audit_close(void)
{
	if (audit_file && audit_file != stderr)
		fclose(audit_file);
	audit_file = NULL;
}

int
audit_enabled(void)
{
	return audit_file != NULL;
}

void
audit_event(const char *event, json_t *fields)
{
	json_t *line;
	char ts[96], *text;
	struct timeval tv;
	struct tm tm;

	if (!audit_file) {
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
	fprintf(audit_file, "%s\n", text);
	fflush(audit_file);
	free(text);
	json_decref(line);
}
