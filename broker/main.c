/* main.c: fixture-broker's entry point: configuration, start-up, the loop, exit.
 *
 * As a daemon it prints exactly one line on stdout, "listening ws://HOST:PORT" with the
 * real port, once the broker accepts connections, so scripts and tests can start it on
 * port 0. Everything else goes to stderr through the log. `fixture-broker run [flags] --
 * COMMAND` (run.c) instead starts a private broker for one command and prints nothing;
 * `fixture-broker sweep` (pg_instances.c) drops what dead instances left on a PostgreSQL
 * server and exits.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "broker.h"
#include "core/log.h"
#include "fixtures/pg/pg.h"
#include "util/addr.h"
#include "net/loop.h"
#include "run.h"

int
main(int argc, char **argv)
{
	struct fxb_error err = { 0 };
	char **command = NULL;
	struct config cfg;
	struct broker *b;
	struct run *run = NULL;
	sigset_t set;
	int rc, nflags = argc;

	if (argc > 1 && !strcmp(argv[1], "sweep"))
		return pg_sweep_main(argc - 1, argv + 1);
	config_defaults(&cfg);
	if (argc > 1 && !strcmp(argv[1], "run")) {
		if (run_split(argc - 1, argv + 1, &nflags, &command) == -1) {
			fprintf(stderr, "usage: fixture-broker run [flags] -- COMMAND [ARG...]\n");
			return 2;
		}
		/* A private broker: any free loopback port, and quiet next to the command. */
		cfg.listen_port = 0;
		cfg.log_level = LOG_LEVEL_WARN;
		/* Its command's signal is the command's (run.c); the broker stops when the
		 * command has exited, and nothing is left to drain for. */
		cfg.drain_timeout_ms = 0;
		argv++;
	}
	if ((rc = config_parse_args(&cfg, nflags, argv, &err)) != 0) {
		if (rc == 1)
			return 0;
		fprintf(stderr, "fixture-broker: %s\n", err.text);
		error_clear(&err);
		config_clear(&cfg);
		return 2;
	}
	log_set_level(cfg.log_level);
	if (!cfg.token_file[0]) {
		if (addr_is_loopback(cfg.listen_host))
			log_info("no --token-file: every local client is trusted; listening on loopback only");
		else
			log_warnx("no --token-file, yet listening on %s: anyone who can reach it may lease",
			    cfg.listen_host);
	}
	if (!addr_is_loopback(cfg.listen_host) && !cfg.tls_cert[0])
		log_warnx("listening on %s without TLS (--tls-cert, --tls-key): bearer tokens, resume "
		    "tokens and database passwords cross the network in clear text", cfg.listen_host);

	/* Signals reach the loop through a signalfd: block them before anything else. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Orphans of the server trees (daemonising grandchildren) come back to us. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn("PR_SET_CHILD_SUBREAPER");

	if (!(b = broker_new(&cfg, &err))) {
		fprintf(stderr, "fixture-broker: %s\n", err.text);
		error_clear(&err);
		config_clear(&cfg);
		return 1;
	}
	log_info("fixture-broker %s (instance %s): ports %d-%d, quarantine %d ms, grace %d ms",
	    FXB_VERSION_STR, b->instance, cfg.ports_first, cfg.ports_last, cfg.quarantine_ms,
	    cfg.grace_ms);
	if (command) {
		if (!(run = run_start(b, command, &err))) {
			fprintf(stderr, "fixture-broker: %s\n", err.text);
			error_clear(&err);
			broker_free(b);
			config_clear(&cfg);
			return 1;
		}
	} else {
		printf("listening %s://%s%s%s:%d\n", cfg.tls_cert[0] ? "wss" : "ws",
		    strchr(cfg.listen_host, ':') ? "[" : "",
		    cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", loop_listen_port(b->loop));
		fflush(stdout);
	}

	rc = loop_run(b);
	if (run)
		rc = run_exit_status(run);
	broker_free(b);
	run_free(run);
	config_clear(&cfg);
	log_info("stopped");
	return rc;
}
