#!/bin/sh
# test_check.sh: check.sh against small trees of C files whose answer is known.
#
# usage: sh tests/layers/test_check.sh
#
# Compiles throwaway trees into a temporary directory ($CC, default cc) and runs
# check.sh on them: folders that call each other as a DAG pass, a back edge fails and
# the cycle is printed edge by edge, a cycle inside one folder passes unless --by-file.
# Prints "layers: N passed, M failed" and exits 1 if any case failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
check="$here/check.sh"
cc=${CC:-cc}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

# src TREE FILE BODY: writes TREE/FILE.c and compiles it to objs/TREE/FILE.o.
src() {
	mkdir -p "$(dirname "$tmp/src/$1/$2")" "$(dirname "$tmp/objs/$1/$2")"
	printf '%s\n' "$3" >"$tmp/src/$1/$2.c"
	"$cc" -std=c11 -O0 -c "$tmp/src/$1/$2.c" -o "$tmp/objs/$1/$2.o" || {
		echo "layers: cannot compile $1/$2.c" >&2
		exit 1
	}
}

# expect NAME STATUS OBJDIR [ARG...] [-- LINE...]: check.sh OBJDIR [ARG...] exits with STATUS
# and prints every LINE (a whole line, exactly).
expect() {
	name=$1 want=$2 dir=$3
	shift 3
	args=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args="$args $1"
		shift
	done
	[ $# -gt 0 ] && shift # --
	out=$(sh "$check" "$dir" $args 2>&1)
	got=$?
	why=
	[ "$got" -eq "$want" ] || why="exit $got, want $want"
	for line in "$@"; do
		printf '%s\n' "$out" | grep -qxF -- "$line" || why="${why:+$why; }no line \"$line\""
	done
	if [ -z "$why" ]; then
		echo "ok      $name"
		passed=$((passed + 1))
	else
		echo "FAIL    $name: $why"
		printf '%s\n' "$out" | sed 's/^/        | /'
		failed=$((failed + 1))
	fi
}

# dag: top.c (the root folder ".") -> a/ -> b/ -> c/, and a/x.c <-> a/y.c inside a/.
src dag top 'void a_fn(void); int main(void) { a_fn(); return 0; }'
src dag a/x 'void b_fn(void); void a_help(void); void a_fn(void) { b_fn(); a_help(); }'
src dag a/y 'void a_fn(void); void a_help(void) { } void a_back(void) { a_fn(); }'
src dag b/b 'void c_fn(void); void b_fn(void) { c_fn(); }'
src dag c/c 'void c_fn(void) { }'

# back: the same, and c/ calls back into a/.
src back top 'void a_fn(void); int main(void) { a_fn(); return 0; }'
src back a/x 'void b_fn(void); void a_fn(void) { b_fn(); }'
src back b/b 'void c_fn(void); void b_fn(void) { c_fn(); }'
src back c/c 'void a_fn(void); void c_fn(void) { a_fn(); }'

mkdir -p "$tmp/objs/empty"

expect "a DAG of folders passes" 0 "$tmp/objs/dag" -- \
	"layers: 4 folders, no cycle between them"
expect "a back edge c/ -> a/ fails and names the cycle" 1 "$tmp/objs/back" -- \
	"  a -> b: b_fn" "  b -> c: c_fn" "  c -> a: a_fn"
# Where the printed path starts depends on awk's order; one line names the cycle.
case $(sh "$check" "$tmp/objs/back" 2>&1 | grep -c '^layers: cycle between folders: ') in
1)
	echo "ok      the cycle is reported once"
	passed=$((passed + 1))
	;;
*)
	echo "FAIL    the cycle is reported once"
	failed=$((failed + 1))
	;;
esac
expect "a cycle inside one folder fails with --by-file" 1 "$tmp/objs/dag" --by-file -- \
	"  a/x -> a/y: a_help" "  a/y -> a/x: a_fn"
expect "no objects is an error" 2 "$tmp/objs/empty"

printf 'c\nb\na\n.\n' >"$tmp/down"
printf '# top first: wrong\n.\na\nb\nc\n' >"$tmp/up"
printf 'c\na\n.\n' >"$tmp/short"
expect "calls that all go down pass --order" 0 "$tmp/objs/dag" --order "$tmp/down" -- \
	"layers: 4 folders, no cycle between them, every call goes down"
expect "a call up fails --order and is named" 1 "$tmp/objs/dag" --order "$tmp/up" -- \
	"layers: call up: a -> b: b_fn (a is below b in $tmp/up)"
expect "a folder missing from the order fails" 1 "$tmp/objs/dag" --order "$tmp/short" -- \
	"layers: folder b is not in $tmp/short"
# Without nm nothing can be read: that must not pass as "no cycle".
mkdir -p "$tmp/bin"
for t in sh find sort sed awk dirname mktemp grep rm cat; do
	p=$(command -v "$t") && ln -s "$p" "$tmp/bin/$t"
done
out=$(PATH="$tmp/bin" sh "$check" "$tmp/objs/dag" 2>&1)
if [ $? -eq 2 ] && printf '%s\n' "$out" | grep -q 'nm not found'; then
	echo "ok      without nm it fails instead of passing"
	passed=$((passed + 1))
else
	echo "FAIL    without nm it fails instead of passing: $out"
	failed=$((failed + 1))
fi

echo "layers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
