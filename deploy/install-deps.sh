#!/bin/sh
# install-deps.sh: installs the Debian packages Fixture Broker builds and tests with.
# Fast and silent when they are all present; as root it runs apt-get, otherwise it prints
# the command to run and fails.
#
# The PostgreSQL server (initdb, postgres, pg_dump, psql) is for the broker's embedded
# cluster and the tests. Debian would create and start a "main" cluster of its own on
# installing it; create_main_cluster = false, written before, stops that. A broker running
# as root runs initdb and postgres as the unprivileged user "postgres", made here if missing.
# iproute2 (ip) is for the multi-host suite's network namespaces, openssl for the
# certificates its TLS tests make, chromium (headless) for the status page's test.
set -eu

PKGS="libwebsockets-dev libwebsockets-evlib-ev libev-dev libjansson-dev libssl-dev libcriterion-dev libpq-dev pkg-config gcc make iproute2 openssl chromium clang libclang-rt-14-dev"
PG_SERVER="postgresql-15"

# After the packages (postgresql-common makes the user when it installs).
ensure_user() {
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "install-deps: creating the system user postgres" >&2
		useradd --system --user-group --home-dir /var/lib/postgresql \
			--shell /usr/sbin/nologin postgres
	fi
}

missing=""
for p in $PKGS $PG_SERVER; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	ensure_user
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run: sudo sh $0 (or sudo apt-get update && sudo apt-get install -y$missing," >&2
	echo "install-deps: which for $PG_SERVER also makes and starts Debian's own main cluster)" >&2
	exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
case " $missing " in
*" $PG_SERVER "*)
	apt-get install -y -qq --no-install-recommends postgresql-common >&2
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/fixture-broker.conf
	;;
esac
apt-get install -y -qq --no-install-recommends $missing >&2
ensure_user
