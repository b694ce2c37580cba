/* integresql.h: IntegreSQL v1.1's REST API under /api/v1/, on the broker's HTTP port.
 *
 * Clients written for IntegreSQL (integresql-client-go, @devoxa/integresql-client, ...)
 * use the broker unchanged: templates are the broker's client-built templates, test
 * databases its postgres leases. Enabled with integresql.enabled (--integresql).
 */
#ifndef FXB_INTEGRESQL_H
#define FXB_INTEGRESQL_H

#include "core/errors.h"
#include "net/http.h"

struct broker;
struct integresql;

/* The state behind the API, or NULL with err set. integresql_free(NULL) does nothing;
 * call it after the loop has stopped (requests still open are reported gone then). */
struct integresql *integresql_new(struct broker *b, struct fxb_error *err);
void integresql_free(struct integresql *is);

/* The handler for loop_set_handlers(): every method under /api/v1/. */
extern const struct http_handler integresql_handlers[];

#endif
