/* audit.h: the audit log, one JSON object a line, for the operator of a shared broker.
 *
 * Off unless --audit-log (or "audit_log" in the configuration) names a file, or "-" for
 * stderr. Every line has "ts" (UTC, milliseconds), "event" and the event's own members;
 * README.md lists the events. The file is opened for appending and each line is flushed
 * as it is written, so a log shipper may follow it. The broker holds one (b->audit);
 * every call takes NULL for "no audit log".
 */
#ifndef FXB_AUDIT_H
#define FXB_AUDIT_H

#include <jansson.h>

#include "core/errors.h"

struct audit;

/* Opens path for appending ("-": stderr). Returns the log, or NULL with err set. */
struct audit *audit_open(const char *path, struct fxb_error *err);
/* Closes the file (not stderr); audit_free(NULL) does nothing. */
void audit_free(struct audit *a);
/* 1 when a is a log (not NULL). */
int audit_enabled(const struct audit *a);
/* Writes one line: {"ts", "event": event, ...fields}. Takes fields (an object, or NULL);
 * with a NULL it only frees them. */
void audit_event(struct audit *a, const char *event, json_t *fields);

#endif
