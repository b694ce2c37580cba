#!/bin/sh
# install-config.sh: installs and uninstalls the configuration in /etc/fixture-broker as
# configuration files: never overwritten, and removed only when unchanged.
#
#   sh install-config.sh install   DESTDIR PREFIX SRCDIR
#   sh install-config.sh uninstall DESTDIR PREFIX
#
# install copies SRCDIR/config.json and SRCDIR/config.json.README and writes a token file
# with one random token, each only when no such file is there, and records what it wrote,
# with its SHA-256, in PREFIX/share/fixture-broker/conffiles.sha256. uninstall removes each
# recorded file whose SHA-256 is still the same, keeps (and names) the ones that changed,
# and never touches a file that install did not write.
set -eu
action=$1 root=$2 prefix=$3
etc=etc/fixture-broker
manifest=${prefix#/}/share/fixture-broker/conffiles.sha256
[ "$action" != install ] || src=$(cd "$4" && pwd)
cd "${root:-/}"

record() {
	mkdir -p "$(dirname "$manifest")"
	touch "$manifest"
	grep -v "  $1\$" "$manifest" > "$manifest.new" || true
	sha256sum "$1" >> "$manifest.new"
	mv "$manifest.new" "$manifest"
	chmod 644 "$manifest"
}

case $action in
install)
	install -d -m 755 "$etc"
	for f in config.json config.json.README; do
		if [ -e "$etc/$f" ]; then
			echo "install-config: kept /$etc/$f (there already)"
		else
			install -m 644 "$src/$f" "$etc/$f"
			record "$etc/$f"
		fi
	done
	if [ -e "$etc/tokens" ]; then
		echo "install-config: kept /$etc/tokens (there already)"
	else
		umask 077
		{
			echo "# Bearer tokens of fixture-broker.service, one a line (# starts a comment)."
			echo "# Made by make install; systemctl reload fixture-broker reads this file again."
			od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
			echo
		} > "$etc/tokens"
		chmod 640 "$etc/tokens"
		# Root and the broker's group may read it (the group exists once sysusers ran).
		if [ -z "$root" ] && [ "$(id -u)" = 0 ] && getent group fixture-broker >/dev/null; then
			chgrp fixture-broker "$etc/tokens"
		fi
		record "$etc/tokens"
		echo "install-config: wrote /$etc/tokens with a new token"
	fi
	;;
uninstall)
	[ -e "$manifest" ] || exit 0
	while read -r sum path; do
		[ -e "$path" ] || continue
		if echo "$sum  $path" | sha256sum --status -c - 2>/dev/null; then
			rm -f "$path"
		else
			echo "install-config: kept /$path: changed since make install"
		fi
	done < "$manifest"
	rm -f "$manifest"
	rmdir "$(dirname "$manifest")" "$etc" 2>/dev/null || true
	;;
*)
	echo "usage: install-config.sh install|uninstall DESTDIR PREFIX [SRCDIR]" >&2
	exit 2
	;;
esac
