/* probes.h: the readiness probes of one starting server: tcp, http, log and exec.
 *
 * servers.c owns a probe set per starting server and drives it: probes_tick() on its
 * polling timer (tcp connects, http exchanges, exec runs), probes_log_line() for each line
 * the server prints. A probe that passes stays passed; the server is ready when all have.
 * Nothing blocks: sockets are non-blocking, an http reply is read when the loop says it
 * is readable, an exec probe's exit comes through proc.c. The history (attempts and the
 * last result of each probe) goes into the lease error when a server never gets ready.
 */
#ifndef FXB_PROBES_H
#define FXB_PROBES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct probes;
struct server_template;

/* Called when a probe passed outside probes_tick() and probes_log_line() (an http reply,
 * an exec exit), so the owner checks whether all have. */
typedef void (*probes_changed_fn)(void *arg);

/* A probe set for t's probes against ports. exec_argv[i] is probe i's expanded command
 * (NULL for other types; the vectors are taken), envp the environment exec probes run
 * with (borrowed until probes_free). Returns NULL when out of memory. */
struct probes *probes_new(struct broker *b, const struct server_template *t,
    const uint16_t *ports, char ***exec_argv, char *const *envp, probes_changed_fn changed,
    void *arg);
/* Stops every attempt in flight (closing sockets, killing exec probes). NULL: nothing. */
void probes_free(struct probes *ps);

/* Starts or advances the attempts of every probe not passed yet. */
void probes_tick(struct probes *ps);
/* Feeds one line of output (stream: STREAM_STDOUT or STREAM_STDERR) to the log probes. */
void probes_log_line(struct probes *ps, int stream, const char *line, size_t len);
/* 1 when every probe has passed. */
int probes_passed(const struct probes *ps);
/* The history: [{"type", "passed", "attempts", "last", ...}]. NULL when out of memory. */
json_t *probes_json(const struct probes *ps);

#endif
