#!/bin/sh
# tls.sh: the acquire round trip over wss:// against the same over ws://, per client library, in one run.
#
# usage: tls.sh BROKER ACQUIRE_C PYTHON GO_ACQUIRE
# Makes a CA and a certificate for 127.0.0.1 with the openssl command line, starts BROKER
# twice on free loopback ports (plain, and with --tls-cert/--tls-key; pools 27880-27889 and
# 27890-27899, no quarantine), and runs each client's acquire bench (as clients.sh: one
# connection, an acquire of one port and its release, N times after a warm-up) against the
# one and then the other, ROUNDS times in turn, trusting the CA through $FIXTURE_BROKER_CA
# as every SDK reads it. Prints each library's median p50 over ws:// and wss:// and their
# ratio. Nothing is asserted.
set -eu

broker=$1 c_bin=$2 python=$3 go_bin=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${FXB_CLIENTS_N:-2000}
warmup=${FXB_CLIENTS_WARMUP:-200}
rounds=${FXB_CLIENTS_ROUNDS:-3}
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
(cd "$tmp" &&
	openssl req -x509 $ec -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.pem &&
	openssl req $ec -subj /CN=broker -keyout server.key -out server.csr &&
	echo subjectAltName=IP:127.0.0.1 >server.ext &&
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem && chmod 600 server.key) >/dev/null 2>&1 ||
	{ echo "tls.sh: openssl could not make the certificates" >&2; exit 1; }

# start NAME PORTS ARGS...: starts a broker, sets $url_NAME.
start() {
	name=$1 ports=$2
	shift 2
	"$broker" --listen 127.0.0.1:0 --drain-timeout-ms 0 --ports "$ports" --port-quarantine-ms 0 \
		--port-lock-file none --state-dir "$tmp/state-$name" --log-level warn "$@" \
		>"$tmp/out-$name" 2>"$tmp/err-$name" &
	pids="$pids $!"
	for _ in $(seq 50); do
		grep -q '^listening' "$tmp/out-$name" 2>/dev/null && break
		sleep 0.1
	done
	u=$(sed -n 's/^listening //p' "$tmp/out-$name")
	[ -n "$u" ] || { echo "tls.sh: the $name broker did not start" >&2; cat "$tmp/err-$name" >&2; exit 1; }
	eval "url_$name=\$u"
}
start ws 27880-27889
start wss 27890-27899 --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key"
export FIXTURE_BROKER_CA="$tmp/ca.pem"

echo "Acquire round trip over wss:// and ws:// by client library (acquire + release of one"
echo "port, one connection, $n timed after $warmup, $rounds rounds in turn; median p50)"
for r in $(seq "$rounds"); do
	for scheme in ws wss; do
		eval "export FIXTURE_BROKER_URL=\$url_$scheme"
		"$c_bin" "$n" "$warmup" >>"$tmp/c-$scheme"
		(cd "$root/sdk-js" && node bench/acquire.mjs "$n" "$warmup") >>"$tmp/node-$scheme"
		"$python" "$root/sdk-py/bench/acquire.py" "$n" "$warmup" >>"$tmp/python-$scheme"
		"$go_bin" -n "$n" -warmup "$warmup" >>"$tmp/go-$scheme"
	done
done
"$python" - "$tmp" <<'PY'
import json, statistics, sys
d = sys.argv[1]
labels = {"c": "libfxb (C)", "node": "sdk-js (Node)", "python": "sdk-py (Python)",
          "go": "sdk-go (Go)"}
print("  %-18s %12s %12s %12s" % ("client", "ws p50 us", "wss p50 us", "wss / ws"))
for name, label in labels.items():
    p50 = {}
    for scheme in ("ws", "wss"):
        runs = [json.loads(l) for l in open("%s/%s-%s" % (d, name, scheme)) if l.strip()]
        p50[scheme] = statistics.median(r["p50_us"] for r in runs)
    print("  %-18s %12.1f %12.1f %11.2fx" % (label, p50["ws"], p50["wss"], p50["wss"] / p50["ws"]))
PY
