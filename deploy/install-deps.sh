#!/bin/sh
# install-deps.sh: installs the Debian packages Fixture Broker builds and tests with.
# Fast and silent when they are all present; as root it runs apt-get, otherwise it prints
# the command to run and fails.
set -eu

PKGS="libwebsockets-dev libjansson-dev libcriterion-dev libpq-dev pkg-config gcc make"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
	exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends $missing >&2
