/* auth.h: bearer tokens from --token-file, compared in constant time.
 *
 * With no token file every session is trusted (the broker then binds to loopback by
 * default). The file holds one token a line; blank lines and lines starting with # are
 * ignored.
 */
#ifndef FXB_AUTH_H
#define FXB_AUTH_H

#include "core/errors.h"

struct auth;

/* Loads tokens from path. Returns the table, or NULL with err set (unreadable, or no
 * token in it). */
struct auth *auth_load(const char *path, struct fxb_error *err);
void auth_free(struct auth *a);
/* 1 if token is one of the table's, else 0. The time taken does not depend on where the
 * first differing byte is. */
int auth_check(const struct auth *a, const char *token);

#endif
