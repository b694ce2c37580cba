#!/bin/sh
# check.sh: fails when calls between the broker's folders form a cycle, or go up.
#
# usage: sh tests/layers/check.sh OBJDIR [--by-file] [--order FILE]
#
# OBJDIR holds the broker's objects laid out as broker/ is (build/obj/broker). Each
# object belongs to its folder ("." for broker/ itself). For every symbol an object
# uses (nm: undefined) and another object defines, the user's folder depends on the
# definer's. A cycle inside one folder is fine; a cycle between folders is a layering
# error: the script prints each edge on it with the symbols behind it, and exits 1.
# With --order, FILE lists the folders from the bottom up, one a line: a call from a
# folder to one listed above it, or from or to a folder not listed, is an error too.
# --by-file treats every object as its own folder, to show the module graph.
# Exits 2 when it cannot read the objects (none found, no nm, nm failing).
set -u

usage="usage: sh tests/layers/check.sh OBJDIR [--by-file] [--order FILE]"
dir=${1:?$usage}
shift
mode= order=
while [ $# -gt 0 ]; do
	case $1 in
	--by-file) mode=--by-file ;;
	--order) order=${2:?$usage}; shift ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
	shift
done
[ -z "$order" ] || [ -r "$order" ] || { echo "layers: cannot read $order" >&2; exit 2; }
command -v nm >/dev/null 2>&1 || { echo "layers: nm not found (binutils)" >&2; exit 2; }
objs=$(cd "$dir" && find . -name '*.o' | sort)
[ -n "$objs" ] || { echo "layers: no objects under $dir" >&2; exit 2; }
syms=$(mktemp) || exit 2
trap 'rm -f "$syms"' EXIT

for o in $objs; do
	unit=$(dirname "$o" | sed 's|^\./||; s|^\.$|.|')
	[ "$mode" = --by-file ] && unit=$(echo "$o" | sed 's|^\./||; s|\.o$||')
	out=$(nm "$dir/$o") || { echo "layers: nm $dir/$o failed" >&2; exit 2; }
	printf '%s\n' "$out" | awk -v unit="$unit" '
		$1 == "U" { print "U", unit, $2; next }
		NF == 3 && $2 ~ /^[TDBR]$/ { print "D", unit, $3 }'
done >"$syms"
grep -q '^D ' "$syms" || { echo "layers: no symbols defined in $dir" >&2; exit 2; }

awk -v order="$order" '
	BEGIN {
		if (order != "")
			while ((getline line < order) > 0)
				if (line !~ /^#/ && line != "")
					rank[line] = ++nranks
	}
	$1 == "D" { def[$3] = $2; next }
	{ use[++n] = $2; sym[n] = $3 }
	END {
		for (i = 1; i <= n; i++) {
			to = def[sym[i]]
			if (to == "" || to == use[i]) continue
			e = use[i] SUBSEP to
			if (!(e in edge)) { edge[e] = sym[i]; out[use[i]] = out[use[i]] " " to }
			else if (index(" " edge[e] " ", " " sym[i] " ") == 0) edge[e] = edge[e] " " sym[i]
			node[use[i]]; node[to]
		}
		# A cycle exists when some edge a -> b has a path b ->* a; find it by DFS.
		bad = 0
		for (e in edge) {
			split(e, ab, SUBSEP); a = ab[1]; b = ab[2]
			if (a SUBSEP b in reported) continue
			delete seen; delete prev
			top = 1; stack[1] = b; seen[b] = 1; found = 0
			while (top > 0 && !found) {
				v = stack[top--]
				m = split(out[v], nx, " ")
				for (k = 1; k <= m; k++) {
					w = nx[k]
					if (w in seen) continue
					seen[w] = 1; prev[w] = v; stack[++top] = w
					if (w == a) { found = 1; break }
				}
			}
			if (!found) continue
			bad = 1
			path = a; v = a
			while (v != b) { v = prev[v]; path = v " -> " path }
			path = a " -> " path
			printf "layers: cycle between folders: %s\n", path
			n2 = split(path, p, " -> ")
			for (k = 1; k < n2; k++) {
				reported[p[k] SUBSEP p[k+1]] = 1
				printf "  %s -> %s: %s\n", p[k], p[k+1], edge[p[k] SUBSEP p[k+1]]
			}
		}
		if (order != "") {
			for (x in node)
				if (!(x in rank)) {
					printf "layers: folder %s is not in %s\n", x, order
					bad = 1
				}
			for (e in edge) {
				split(e, ab, SUBSEP)
				if ((ab[1] in rank) && (ab[2] in rank) && rank[ab[1]] < rank[ab[2]]) {
					printf "layers: call up: %s -> %s: %s (%s is below %s in %s)\n",
					    ab[1], ab[2], edge[e], ab[1], ab[2], order
					bad = 1
				}
			}
		}
		if (!bad) {
			c = 0; for (x in node) c++
			printf "layers: %d folders, no cycle between them%s\n", c,
			    order != "" ? ", every call goes down" : ""
		}
		exit bad
	}' "$syms"
