#!/bin/sh
# run-suites.sh: runs criterion test binaries one after another and prints a summary.
#
# usage: sh tests/run-suites.sh LABEL BINARY...
#
# Each binary runs with --jobs $FXB_TEST_JOBS (default 1) under timeout(1), at most
# $FXB_SUITE_TIMEOUT seconds (default 600). The exit status is 0 only if every binary
# passed. Every process started from here carries FXB_TEST_RUN=<this run's id> in its
# environment; after the integration label the script looks for fixture-broker (and
# postgres) processes carrying it, fails if any is left running, and kills them (by pid).
# Broker logs go to $FXB_TEST_LOG_DIR (default: a fresh directory under /tmp), printed in
# the summary. After the integration label it also removes the memory data directories
# (/dev/shm/fxb-pg-*) of embedded clusters whose state directory is under that directory.
set -u

label=${1:?usage: sh tests/run-suites.sh LABEL BINARY...}
shift
jobs=${FXB_TEST_JOBS:-1}
limit=${FXB_SUITE_TIMEOUT:-600}
run_id="$label-$$-$(date +%s)"
FXB_TEST_RUN=$run_id
FXB_TEST_LOG_DIR=${FXB_TEST_LOG_DIR:-${TMPDIR:-/tmp}/fxb-tests-$run_id}
export FXB_TEST_RUN FXB_TEST_LOG_DIR
mkdir -p "$FXB_TEST_LOG_DIR" || exit 1

if [ $# -eq 0 ]; then
	echo "== $label: no suites to run"
	exit 0
fi

summary=""
failed=0
total=0
start_all=$(date +%s)

for bin in "$@"; do
	name=$(basename "$bin")
	out="$FXB_TEST_LOG_DIR/$name.out"
	rcfile="$FXB_TEST_LOG_DIR/$name.rc"
	total=$((total + 1))
	echo "== $label: $name"
	start=$(date +%s)
	{
		timeout -k 10 "$limit" "$bin" --jobs "$jobs" 2>&1
		echo $? >"$rcfile"
	} | tee "$out"
	rc=$(cat "$rcfile" 2>/dev/null || echo 1)
	secs=$(($(date +%s) - start))
	synth=$(grep -o 'Synthesis:.*' "$out" | tail -n 1 | sed 's/\x1b\[[0-9;]*m//g')
	case $rc in
	0) verdict=PASS ;;
	124 | 137) verdict="TIMEOUT after ${limit}s" ;;
	*) verdict="FAIL (exit $rc)" ;;
	esac
	[ "$rc" -eq 0 ] || failed=$((failed + 1))
	summary="$summary$(printf '%-8s %-32s %4ss  %s' "${verdict%% *}" "$name" "$secs" "$synth")
"
	[ "$rc" -eq 0 ] || summary="$summary         $verdict; output in $out
"
done

# Brokers the suites started and left behind: processes of this run running
# fixture-broker or $FXB_BROKER, or postgres (a broker's embedded cluster inherits its
# environment).
broker_name=$(basename "${FXB_BROKER:-fixture-broker}")
leftovers() {
	for dir in /proc/[0-9]*; do
		exe=$(readlink "$dir/exe" 2>/dev/null) || continue
		exe=${exe% (deleted)}
		case ${exe##*/} in
		fixture-broker | "$broker_name" | postgres) ;;
		*) continue ;;
		esac
		if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "FXB_TEST_RUN=$run_id"; then
			echo "${dir#/proc/}"
		fi
	done
}

leak=""
if [ "$label" = integration ]; then
	# A broker killed with its test process may take a moment to be reaped.
	for _ in 1 2 3 4 5; do
		leak=$(leftovers)
		[ -z "$leak" ] && break
		sleep 1
	done
	if [ -n "$leak" ]; then
		failed=$((failed + 1))
		summary="${summary}FAIL     fixture-broker or postgres processes left running: $(echo $leak)
"
		for pid in $leak; do
			kill -KILL "$pid" 2>/dev/null
		done
	else
		summary="${summary}PASS     no fixture-broker or postgres process left running
"
	fi
	# Embedded clusters keep their data in /dev/shm/fxb-pg-*, with an "owner" file naming
	# their cluster directory (broker/fixtures/pg/pgembed.h): those of this run's state
	# directories go with the run (a suite that passes removes its own).
	mem=""
	for dir in /dev/shm/fxb-pg-*; do
		[ -f "$dir/owner" ] || continue
		case $(cat "$dir/owner") in
		"$FXB_TEST_LOG_DIR"/* | "$(cd "$FXB_TEST_LOG_DIR" && pwd -P)"/*)
			mem="$mem $dir"
			rm -rf "$dir"
			;;
		esac
	done
	if [ -n "$mem" ]; then
		summary="${summary}NOTE     removed the memory data of clusters left by this run:$mem
"
	fi
fi

echo
echo "== $label summary ($total suites, $(($(date +%s) - start_all))s; logs in $FXB_TEST_LOG_DIR)"
printf '%s' "$summary"
if [ "$failed" -ne 0 ]; then
	echo "== $label: $failed FAILED"
	exit 1
fi
echo "== $label: all passed"
