#!/usr/bin/env bash
# Builds the pinned toolchain image (Packer + its amazon and ansible plugins, ansible-core,
# openssh-client on Debian bookworm) on THIS host and pushes it to a registry, for machines that
# cannot pull from outside (the Dagger engine kit). Teams with a registry build
# dagger/toolchain/Dockerfile instead: same image, same tag.
#
#   dagger/toolchain/build.sh [REGISTRY]     (default: $DAGGER_KIT_REGISTRY)
#
# Pushes REGISTRY/amichain/toolchain:TAG, TAG derived from the pins in toolchain.env; prints the
# image name without the registry (what the module's From() uses) on stdout. An image already in
# the registry with the same recipe label (hash of this script and toolchain.env) is not rebuilt.
# Needs root (debootstrap, chroot), docker (DOCKER_HOST) and skopeo.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${AMICHAIN_TOOLS_CACHE:-/var/cache/amichain-tools}
mirror=${AMICHAIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
registry=${1:-${DAGGER_KIT_REGISTRY:-}}

log() { echo "toolchain: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -n $registry ]] || die "no registry: pass one (e.g. 127.0.0.1:5000) or set DAGGER_KIT_REGISTRY (eval the engine kit's setup.sh first)"
((EUID == 0)) || die "run as root: debootstrap and chroot need it"
for c in curl debootstrap docker skopeo; do
	command -v "$c" >/dev/null || die "$c is missing: apt-get install --no-install-recommends $c"
done
curl -fsS -o /dev/null "http://$registry/v2/" ||
	die "registry $registry does not answer: start the engine kit (eval \"\$(../shared/dagger-engine/setup.sh)\")"
# shellcheck source=../../toolchain.env
. "$repo/toolchain.env"

# Keep in sync with toolchainTag in .dagger/toolchain.go.
tag=packer-$PACKER_VERSION-amazon-$PACKER_PLUGIN_AMAZON_VERSION-ansible-$PACKER_PLUGIN_ANSIBLE_VERSION-core-$ANSIBLE_CORE_VERSION
name=amichain/toolchain:$tag
recipe=$(cat "${BASH_SOURCE[0]}" "$repo/toolchain.env" | sha256sum | cut -c1-16)

have=$(skopeo inspect --tls-verify=false --format '{{index .Labels "amichain.recipe"}}' \
	"docker://$registry/$name" 2>/dev/null || true)
if [[ $have == "$recipe" ]]; then
	log "$registry/$name is up to date (recipe $recipe)"
	echo "$name"
	exit 0
fi

# Packer and the plugins are built from their pinned, sum-checked Go modules by install-tools;
# a warm run takes about a second and makes .tools match toolchain.env.
"$repo/.ci/install-tools"

mkdir -p "$cache/rootfs"
exec 8>"$cache/rootfs/.lock"
flock 8

# The bare bookworm rootfs is cached; everything else is redone on each build.
base=$cache/rootfs/bookworm-minbase
if [[ ! -f $base/.complete ]]; then
	log "debootstrap bookworm minbase into $base (cold: about 2 minutes)"
	rm -rf "$base" "$base.tmp"
	debootstrap --variant=minbase bookworm "$base.tmp" "$mirror" >"$cache/rootfs/debootstrap.log" 2>&1 ||
		die "debootstrap failed; log: $cache/rootfs/debootstrap.log"
	touch "$base.tmp/.complete"
	mv "$base.tmp" "$base"
fi

root=$(mktemp -d "$cache/rootfs/toolchain.XXXXXX")
cleanup() {
	umount "$root/proc" 2>/dev/null || true
	rm -rf "$root"
}
trap cleanup EXIT
cp -a "$base/." "$root/"
rm -f "$root/.complete"
cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SRC
mount -t proc proc "$root/proc"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }

log "installing ansible-core $ANSIBLE_CORE_VERSION, openssh-client, ca-certificates"
aptlog=$cache/rootfs/apt.log
in_root apt-get update >"$aptlog" 2>&1 || die "apt-get update failed; log: $aptlog"
# Without --no-install-recommends ansible-core pulls 260 MB of collections.
in_root apt-get install -y --no-install-recommends "ansible-core=$ANSIBLE_CORE_VERSION-*" \
	openssh-client ca-certificates >>"$aptlog" 2>&1 ||
	die "apt-get install failed (log: $aptlog); if Debian bookworm no longer has ansible-core $ANSIBLE_CORE_VERSION, update ANSIBLE_CORE_VERSION in toolchain.env"
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

install -m 0755 "$repo/.tools/bin/packer" "$root/usr/local/bin/packer"
for p in amazon:$PACKER_PLUGIN_AMAZON_VERSION ansible:$PACKER_PLUGIN_ANSIBLE_VERSION; do
	plugin=${p%%:*} version=${p#*:}
	bins=("$repo/.tools/packer-plugins/github.com/hashicorp/$plugin/packer-plugin-${plugin}_v${version}_"*_linux_amd64)
	[[ -f ${bins[0]} ]] || die "no $plugin plugin v$version under .tools/packer-plugins: run .ci/install-tools"
	cp "${bins[0]}" "$root/tmp/plugin"
	in_root PACKER_PLUGIN_PATH=/opt/packer/plugins CHECKPOINT_DISABLE=1 \
		packer plugins install --path /tmp/plugin "github.com/hashicorp/$plugin" >&2
	rm "$root/tmp/plugin"
done
# Smoke test: the binaries run in the image and the plugins are where Packer looks.
in_root PACKER_PLUGIN_PATH=/opt/packer/plugins CHECKPOINT_DISABLE=1 packer plugins installed >&2
[[ $(in_root packer version) == "Packer v$PACKER_VERSION"* ]] || die "packer in the image is not v$PACKER_VERSION"
in_root ansible-playbook --version >/dev/null
umount "$root/proc"

log "importing and pushing $registry/$name"
tar --numeric-owner -C "$root" -c . | docker import \
	--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	--change "ENV PACKER_PLUGIN_PATH=/opt/packer/plugins" \
	--change "ENV CHECKPOINT_DISABLE=1" \
	--change "LABEL amichain.recipe=$recipe" \
	- "$registry/$name" >/dev/null
docker push -q "$registry/$name" >&2
docker rmi "$registry/$name" >/dev/null
echo "$name"
