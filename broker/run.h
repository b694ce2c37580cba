/* run.h: `fixture-broker run [flags] -- COMMAND...`: a private broker for one command.
 *
 * The broker listens on a free loopback port, runs COMMAND with FIXTURE_BROKER_URL set,
 * forwards SIGTERM (and a SIGINT sent with kill) to it, and once it exits releases
 * everything, stops, and exits with the command's status (128+N when a signal killed it).
 * This is how a user who does not use Jest's hooks, or another language, gets the
 * embedded default.
 */
#ifndef FXB_RUN_H
#define FXB_RUN_H

#include "core/errors.h"

struct broker;
struct run;

/* Splits argv ("run", flags..., "--", command...) at "--": *nflags counts argv[0] and the
 * flags, *command points at the command. Returns 0, or -1 when no command follows "--". */
int run_split(int argc, char **argv, int *nflags, char ***command);
/* Starts command with the broker's URL in its environment, and takes the loop's signals
 * while it runs (SIGTERM, and a SIGINT sent with kill, are passed on to it); when it
 * exits, the broker shuts down. Returns the run, or NULL with err set. */
struct run *run_start(struct broker *b, char **command, struct fxb_error *err);
/* The exit status to leave with: the command's (128+N when signal N killed it). */
int run_exit_status(const struct run *r);
/* Frees r, after the loop has stopped. run_free(NULL) does nothing. */
void run_free(struct run *r);

#endif
