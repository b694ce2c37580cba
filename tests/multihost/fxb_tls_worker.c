/* fxb_tls_worker.c: a libfxb worker for the TLS tests of test_tls.py.
 *
 * fxb_tls_worker [NAME VALUE]... connects to $FIXTURE_BROKER_URL (with
 * $FIXTURE_BROKER_TOKEN, if set) through fxb_client_new_ex with the settings given as
 * arguments (tls.ca, tls.cert, tls.key; those not given come from $FIXTURE_BROKER_CA,
 * $FIXTURE_BROKER_CERT and $FIXTURE_BROKER_KEY), leases one port fixture "p", releases
 * it and prints {"session", "port"} on a line, exit 0. On
 * failure it prints {"code", "error"} (the FXB_E* code and the message) and exits 1.
 */
#include <fxb.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

static int
failed(int code, const char *msg)
{
	json_t *o = json_pack("{s:i,s:s}", "code", code, "error", msg);
	char *text = json_dumps(o, 0);

	printf("%s\n", text);
	free(text);
	json_decref(o);
	return 1;
}

int
main(int argc, char **argv)
{
	struct fxb_fixture_spec spec = {"p", "port", NULL};
	struct fxb_options o = {.client = "fxb-tls-worker"};
	struct fxb_client *c;
	struct fxb_lease *l;
	char err[512], *text;
	json_t *out;
	int rc, port;

	if (argc % 2 != 1) {
		fprintf(stderr, "usage: fxb_tls_worker [NAME VALUE]...\n");
		return 2;
	}
	argv[argc] = NULL;
	if ((rc = fxb_client_new_ex(&c, &o, (const char *const *)argv + 1, err, sizeof err)))
		return failed(rc, err);
	if ((rc = fxb_lease_acquire(c, &spec, 1, NULL, &l))) {
		rc = failed(rc, fxb_client_errmsg(c));
		fxb_client_free(c);
		return rc;
	}
	port = fxb_lease_port(l, "p");
	if ((rc = fxb_lease_release(c, l))) {
		rc = failed(rc, fxb_client_errmsg(c));
		fxb_client_free(c);
		return rc;
	}
	out = json_pack("{s:s,s:i}", "session", fxb_client_session(c), "port", port);
	text = json_dumps(out, 0);
	printf("%s\n", text);
	free(text);
	json_decref(out);
	fxb_client_free(c);
	return 0;
}
