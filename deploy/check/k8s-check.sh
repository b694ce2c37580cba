#!/bin/sh
# k8s-check.sh: checks every kustomization under a deploy/k8s tree.
#
#   sh k8s-check.sh K8S_DIR WORK_DIR RENDER
#
# Copies K8S_DIR to WORK_DIR/k8s, puts a stand-in file wherever a kustomization's
# secretGenerator names one under secrets/ (those files are not in git), renders every
# kustomization that is not a Component (components are rendered through the overlays that
# use them) with RENDER (deploy/k8s/render: kustomize plus strict decoding into the API's Go
# types) into WORK_DIR/<dir>.yaml, and validates those with k8s.mjs (kubernetes-models).
# Exits 1 naming each problem.
set -eu
src=$1 work=$2 render=$3
here=$(cd "$(dirname "$0")" && pwd)

rm -rf "$work" && mkdir -p "$work"
cp -R "$src" "$work/k8s"
rm -rf "$work/k8s/render" "$work/k8s"/*/*/secrets "$work/k8s"/*/secrets

status=0 outs=""
for k in $(cd "$work/k8s" && find . -name kustomization.yaml | sort); do
	dir=$(dirname "$k" | sed 's|^\./||')
	grep -q '^kind: Component' "$work/k8s/$k" && continue
	for s in $(grep -o 'secrets/[A-Za-z0-9._-]\+' "$work/k8s/$k" || true); do
		mkdir -p "$work/k8s/$dir/secrets"
		echo "stand-in for $s" > "$work/k8s/$dir/$s"
	done
	out="$work/$(echo "$dir" | tr / -).yaml"
	if "$render" "$work/k8s/$dir" > "$out"; then
		outs="$outs $out"
	else
		status=1
	fi
done
[ -n "$outs" ] || { echo "k8s-check: nothing rendered" >&2; exit 1; }
node "$here/k8s.mjs" $outs || status=1
exit $status
