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

#include <sys/signalfd.h>

#include "core/errors.h"

struct broker;

/* Splits argv ("run", flags..., "--", command...) at "--": *nflags counts argv[0] and the
 * flags, *command points at the command. Returns 0, or -1 when no command follows "--". */
int run_split(int argc, char **argv, int *nflags, char ***command);
/* Starts command with the broker's URL in its environment. Returns 0 or -1 with err. */
int run_start(struct broker *b, char **command, struct fxb_error *err);
/* Takes a SIGINT/SIGTERM while the command runs; returns 1 if it was for the command. */
int run_signal(struct broker *b, const struct signalfd_siginfo *si);
/* The exit status to leave with: the command's. */
int run_exit_status(const struct broker *b);

#endif
