/* methods.h: the broker's JSON-RPC methods, as the table the composition root hands to
 * rpc_new(). Each method parses its params and calls the module that does the work. */
#ifndef FXB_METHODS_H
#define FXB_METHODS_H

#include "rpc/rpc.h"

/* Ends with a NULL name. */
extern const struct rpc_method methods_table[];

/* Parses the built-in OpenRPC document for rpc.discover, once per process. Returns 0,
 * or -1 with err set. */
int methods_load(struct fxb_error *err);

#endif
