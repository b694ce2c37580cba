# run.sh: runs the benchmark binaries given as arguments under a header naming the machine and commit.
#
# `make bench` calls it with FXB_BROKER set to the broker binary. Every benchmark prints its
# own table; nothing is asserted, but a benchmark that could not run makes the exit status
# non-zero. Git is only read here (no index refresh, no locks).

set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
export GIT_OPTIONAL_LOCKS=0

commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ]; then
	if ! git -C "$root" diff-index --quiet HEAD -- 2>/dev/null ||
	    [ -n "$(git -C "$root" ls-files --others --exclude-standard 2>/dev/null | head -n 1)" ]; then
		commit="$commit (plus uncommitted changes)"
	fi
fi
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)

echo "Fixture Broker benchmarks"
echo "  date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "  nproc:   $(nproc)${cpu:+ ($cpu)}"
echo "  kernel:  $(uname -sr)"
echo "  load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo "  commit:  $commit"
echo "  broker:  ${FXB_BROKER:-(FXB_BROKER is not set)}"
echo "  figures are printed, never asserted; the machine may be shared and noisy"

status=0
for bin in "$@"; do
	echo
	start=$(date +%s)
	"$bin"
	rc=$?
	echo "  ($(basename "$bin"): exit status $rc, $(($(date +%s) - start)) s)"
	[ $rc -eq 0 ] || status=1
done
exit $status
