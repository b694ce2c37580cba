#!/bin/sh
# clients.sh: the acquire round trip through each client library, against one broker, in one run.
#
# usage: clients.sh BROKER ACQUIRE_C PYTHON GO_ACQUIRE
# Starts BROKER on a free loopback port (pool 27900-27999, clear of the suites; no
# quarantine so a tight loop never runs out of ports), then runs each client's acquire
# bench (an acquire of one port and the release of its lease, N times after a warm-up:
# tests/bench/acquire_client.c on libfxb, sdk-js/bench/acquire.mjs, sdk-py/bench/acquire.py,
# sdk-go/bench/acquire) ROUNDS times in turn, so load on the machine falls on all of them
# alike, and prints each one's median p50 and p99 and its ratio to libfxb's.
set -eu

broker=$1 c_bin=$2 python=$3 go_bin=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${FXB_CLIENTS_N:-2000}
warmup=${FXB_CLIENTS_WARMUP:-200}
rounds=${FXB_CLIENTS_ROUNDS:-3}
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

"$broker" --listen 127.0.0.1:0 --drain-timeout-ms 0 --ports 27900-27999 --port-quarantine-ms 0 \
	--port-lock-file none --state-dir "$tmp/state" --log-level warn >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 50); do
	grep -q '^listening' "$tmp/out" 2>/dev/null && break
	sleep 0.1
done
url=$(sed -n 's/^listening //p' "$tmp/out")
[ -n "$url" ] || { echo "clients.sh: the broker did not start" >&2; cat "$tmp/err" >&2; exit 1; }
export FIXTURE_BROKER_URL="$url"

echo "Acquire round trip by client library (acquire + release of one port, one connection,"
echo "$n timed after $warmup, $rounds rounds in turn; median of the rounds' p50 and p99)"
for r in $(seq "$rounds"); do
	"$c_bin" "$n" "$warmup" >>"$tmp/c"
	(cd "$root/sdk-js" && node bench/acquire.mjs "$n" "$warmup") >>"$tmp/node"
	"$python" "$root/sdk-py/bench/acquire.py" "$n" "$warmup" >>"$tmp/python"
	"$go_bin" -n "$n" -warmup "$warmup" >>"$tmp/go"
done
"$python" - "$tmp" <<'PY'
import json, statistics, sys
d = sys.argv[1]
rows = {}
for name in ("c", "node", "python", "go"):
    runs = [json.loads(l) for l in open("%s/%s" % (d, name)) if l.strip()]
    rows[name] = (statistics.median(r["p50_us"] for r in runs),
                  statistics.median(r["p99_us"] for r in runs))
base = rows["c"][0]
labels = {"c": "libfxb (C)", "node": "sdk-js (Node)", "python": "sdk-py (Python)",
          "go": "sdk-go (Go)"}
print("  %-18s %10s %10s %16s" % ("client", "p50 us", "p99 us", "p50 / libfxb"))
for name, (p50, p99) in rows.items():
    print("  %-18s %10.1f %10.1f %15.2fx" % (labels[name], p50, p99, p50 / base))
PY
