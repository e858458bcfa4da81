#!/bin/sh
# Usage: containers/bench.sh
#
# Prints how long the tree takes as containers (dagger call test-containers) on the engine
# in the environment (eval "$(../shared/dagger-engine/setup.sh)" first):
#   tree     the whole tree, from the engine cache as it is (cold the first time)
#   no-op    the whole tree again, nothing changed
#   web edit a web-only role edit (ansible/roles/nginx) to a converged, idempotent and
#            verified web container, base cached
# Works on a copy of the image sources; the stand-in apt repositories replace Datadog's and
# Buildkite's (stand-in-apt.sh). Figures, not assertions.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
command -v dagger >/dev/null || { echo "$0: dagger not found: eval \"\$(../shared/dagger-engine/setup.sh)\" first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/git"
cp -R "$root/amichain.yaml" "$root/toolchain.env" "$root/ansible" "$root/packer" "$work/src/"
"$root/containers/stand-in-apt.sh" "$work/apt"

files=/run/amichain/files
call() {
	dagger --progress=plain -m "$root" call --source "$work/src" --git "$work/git" \
		test-containers --ansible-files "$work/apt" \
		--ansible-var "datadog_apt_url=file:$files/datadog" --ansible-var "datadog_apt_key_url=file://$files/key.asc" \
		--ansible-var "buildkite_apt_url=file:$files/buildkite" --ansible-var "buildkite_apt_key_url=file://$files/key.asc" \
		"$@" >"$work/log" 2>&1 || { tail -n 40 "$work/log" >&2; echo "$0: dagger call failed (log above)" >&2; exit 1; }
}
now() { date +%s.%N; }
report() { printf '%-9s %6.1f s\n' "$1" "$(echo "$(now) - $2" | bc)"; }

t=$(now); call; report tree "$t"
t=$(now); call; report no-op "$t"
# A new line each run, so that web's container is really rebuilt.
echo "# bench $(date +%s%N)" >>"$work/src/ansible/roles/nginx/files/app-proxy.conf"
t=$(now); call --images web; report "web edit" "$t"
