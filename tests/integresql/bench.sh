#!/bin/sh
# bench.sh: the broker's IntegreSQL API against IntegreSQL v1.1.0 itself, side by side.
#
# Builds IntegreSQL from the Go module proxy in a throwaway module under $B (once), starts a
# throwaway PostgreSQL cluster (initdb, as the postgres user when run as root), points the
# broker (--pg-url) and IntegreSQL (its INTEGRESQL_PG* variables) at it, and runs isqlbench
# (cmd/isqlbench) against both: the same client, the same template, one run. Prints; never
# fails on a figure. Everything it started is stopped and removed on exit.
#
# Environment: FXB_BROKER (the broker binary), B (the absolute build directory), and
# optionally ISQL_BENCH_BROKER_ARGS (more broker flags, e.g. --config FILE). Arguments go to
# isqlbench (-n N, -workers N).
set -eu
: "${FXB_BROKER:?}" "${B:?}"
here=$(cd "$(dirname "$0")" && pwd)
work=$B/integresql-bench
mkdir -p "$work/server"

command -v go >/dev/null || { echo "integresql-bench: go is not installed" >&2; exit 1; }
if [ ! -x "$work/integresql" ]; then
	echo "integresql-bench: building IntegreSQL v1.1.0 from the Go module proxy"
	(cd "$work/server" && rm -f go.mod go.sum &&
		go mod init throwaway/integresql-server >/dev/null 2>&1 &&
		go get github.com/allaboutapps/integresql/cmd/server@v1.1.0 &&
		go build -o "$work/integresql" github.com/allaboutapps/integresql/cmd/server)
fi
(cd "$here/go" && go build -o "$work/isqlbench" ./cmd/isqlbench)

freeport() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Exits 0 once url answers anything over HTTP (python3 rather than curl, which a fresh
# machine may lack).
answers() {
	python3 -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass' "$1" 2>/dev/null
}
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgdir=$(mktemp -d /tmp/fxb-isql-bench.XXXXXX)
broker_pid= isql_pid=
cleanup() {
	[ -n "$broker_pid" ] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
	[ -n "$isql_pid" ] && kill -TERM "$isql_pid" 2>/dev/null && wait "$isql_pid" 2>/dev/null || true
	as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pw" > "$pgdir/pw"
[ "$(id -u)" = 0 ] && chown -R postgres "$pgdir"
pgport=$(freeport)
as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres --pwfile="$pgdir/pw" --auth=scram-sha-256 \
	-E UTF8 --locale=C --nosync >/dev/null
as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -o "-p $pgport \
	-c listen_addresses=127.0.0.1 -k $pgdir -c fsync=off -c synchronous_commit=off \
	-c full_page_writes=off -c max_connections=300" start >/dev/null

"$FXB_BROKER" --integresql --listen 127.0.0.1:0 --drain-timeout-ms 0 --state-dir "$work/state" --ports 29000-29099 \
	--pg-url "postgresql://postgres:$pw@127.0.0.1:$pgport/postgres" --log-level warn \
	${ISQL_BENCH_BROKER_ARGS:-} \
	> "$work/broker.out" 2> "$work/broker.log" &
broker_pid=$!
iport=$(freeport)
env INTEGRESQL_ADDRESS=127.0.0.1 INTEGRESQL_PORT="$iport" INTEGRESQL_PGHOST=127.0.0.1 \
	INTEGRESQL_PGPORT="$pgport" INTEGRESQL_PGUSER=postgres INTEGRESQL_PGPASSWORD="$pw" \
	INTEGRESQL_ECHO_ENABLE_LOGGER_MIDDLEWARE=false "$work/integresql" > "$work/integresql.log" 2>&1 &
isql_pid=$!

i=0
until grep -q '^listening ' "$work/broker.out" 2>/dev/null &&
	answers "http://127.0.0.1:$iport/api/v1/templates/x/tests"; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "integresql-bench: the servers did not start" >&2
		cat "$work/broker.log" "$work/integresql.log" >&2
		exit 1
	fi
	sleep 0.1
done
bport=$(sed -n 's/^listening ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/broker.out")
"$work/isqlbench" -a "broker=http://127.0.0.1:$bport" -b "integresql=http://127.0.0.1:$iport" "$@"
