/* audit.h: the audit log, one JSON object a line, for the operator of a shared broker.
 *
 * Off unless --audit-log (or "audit_log" in the configuration) names a file, or "-" for
 * stderr. Every line has "ts" (UTC, milliseconds), "event" and the event's own members;
 * README.md lists the events. The file is opened for appending and written line by line,
 * so a log shipper may follow it.
 */
#ifndef FXB_AUDIT_H
#define FXB_AUDIT_H

#include <jansson.h>

#include "core/errors.h"

/* Opens path for appending ("-": stderr). Returns 0, or -1 with err set. */
int audit_open(const char *path, struct fxb_error *err);
void audit_close(void);
/* 1 when an audit log is open. */
int audit_enabled(void);
/* Writes one line: {"ts", "event": event, ...fields}. Takes fields (an object, or NULL);
 * does nothing but free them when no log is open. */
void audit_event(const char *event, json_t *fields);

#endif
