#!/bin/sh
# check.sh: fails when calls between the broker's folders form a cycle.
#
# usage: sh tests/layers/check.sh OBJDIR [--by-file]
#
# OBJDIR holds the broker's objects laid out as broker/ is (build/obj/broker). Each
# object belongs to its folder ("." for broker/ itself). For every symbol an object
# uses (nm: undefined) and another object defines, the user's folder depends on the
# definer's. A cycle inside one folder is fine; a cycle between folders is a layering
# error: the script prints each edge on it with the symbols behind it, and exits 1.
# --by-file treats every object as its own folder, to show the module graph.
set -u

dir=${1:?usage: sh tests/layers/check.sh OBJDIR [--by-file]}
mode=${2:-}
objs=$(cd "$dir" && find . -name '*.o' | sort)
[ -n "$objs" ] || { echo "layers: no objects under $dir" >&2; exit 2; }

for o in $objs; do
	unit=$(dirname "$o" | sed 's|^\./||; s|^\.$|.|')
	[ "$mode" = --by-file ] && unit=$(echo "$o" | sed 's|^\./||; s|\.o$||')
	nm "$dir/$o" | awk -v unit="$unit" '
		$1 == "U" { print "U", unit, $2; next }
		NF == 3 && $2 ~ /^[TDBR]$/ { print "D", unit, $3 }'
done | awk '
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
		if (!bad) {
			c = 0; for (x in node) c++
			printf "layers: %d folders, no cycle between them\n", c
		}
		exit bad
	}'
