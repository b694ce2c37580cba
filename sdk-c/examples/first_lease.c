/* first_lease.c: the smallest Fixture Broker client: lease two ports, print them, release.
 *
 * Usage: first_lease [ws://host:port]. Without an argument the URL comes from
 * $FIXTURE_BROKER_URL, else FXB_DEFAULT_URL. Prints "http=<port> grpc=<port>" and exits 0,
 * or prints the error on stderr and exits 1.
 */
#include <stdio.h>

#include "fxb.h"

int
main(int argc, char **argv)
{
	struct fxb_options opts = {.url = argc > 1 ? argv[1] : NULL};
	struct fxb_fixture_spec ports[] = {{"http", "port", NULL}, {"grpc", "port", NULL}};
	struct fxb_client *c;
	struct fxb_lease *l;
	char err[256];
	int rc;

	if (fxb_client_new(&c, &opts, err, sizeof err)) {
		fprintf(stderr, "first_lease: %s\n", err);
		return 1;
	}
	if ((rc = fxb_lease_acquire(c, ports, 2, NULL, &l)) == 0) {
		printf("http=%d grpc=%d\n", fxb_lease_port(l, "http"), fxb_lease_port(l, "grpc"));
		rc = fxb_lease_release(c, l);
	}
	if (rc)
		fprintf(stderr, "first_lease: %s\n", fxb_client_errmsg(c));
	fxb_client_free(c);
	return rc ? 1 : 0;
}
