/* main.c: fixture-broker's entry point: configuration, start-up, the loop, exit.
 *
 * Prints exactly one line on stdout, "listening ws://HOST:PORT" with the real port, once
 * the broker accepts connections, so scripts and tests can start it on port 0. Everything
 * else goes to stderr through the log.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "broker.h"
#include "log.h"
#include "ws.h"

static int
is_loopback(const char *host)
{
	return !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

int
main(int argc, char **argv)
{
	struct fxb_error err = { 0 };
	struct config cfg;
	struct broker *b;
	sigset_t set;
	int rc;

	config_defaults(&cfg);
	if ((rc = config_parse_args(&cfg, argc, argv, &err)) != 0) {
		if (rc == 1)
			return 0;
		fprintf(stderr, "fixture-broker: %s\n", err.text);
		error_clear(&err);
		config_clear(&cfg);
		return 2;
	}
	log_set_level(cfg.log_level);
	/* With tokens and no explicit address, serve every interface (a CI fleet's shared
	 * broker); without tokens, loopback only unless told otherwise. */
	if (cfg.token_file[0] && !cfg.listen_set)
		strcpy(cfg.listen_host, "0.0.0.0");
	if (!cfg.token_file[0]) {
		if (is_loopback(cfg.listen_host))
			log_info("no --token-file: every local client is trusted; listening on loopback only");
		else
			log_warnx("no --token-file, yet listening on %s: anyone who can reach it may lease",
			    cfg.listen_host);
	}

	/* Signals reach the loop through a signalfd: block them before anything else. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
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
	printf("listening ws://%s%s%s:%d\n", strchr(cfg.listen_host, ':') ? "[" : "",
	    cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", b->listen_port);
	fflush(stdout);

	rc = ws_run(b);
	broker_free(b);
	config_clear(&cfg);
	log_info("stopped");
	return rc;
}
