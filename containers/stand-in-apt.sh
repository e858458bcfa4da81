#!/bin/sh
# Usage: containers/stand-in-apt.sh OUT
#
# Writes to OUT two signed APT repositories standing in for the third-party ones the roles
# install from, which cannot be reached here: OUT/datadog (suite stable, component 7, package
# datadog-agent) and OUT/buildkite (suite stable, component main, package buildkite-agent), and
# OUT/key.asc, the public key both are signed with (testdata/stand-in-apt-key.asc, a key made
# for these tests only). The packages hold what the roles rely on: the agents' systemd units,
# a stub binary and, for buildkite-agent, its system user. Point the roles at them with
#   datadog_apt_url=file:OUT/datadog datadog_apt_key_url=file://OUT/key.asc
#   buildkite_apt_url=file:OUT/buildkite buildkite_apt_key_url=file://OUT/key.asc
#
# The output is the same bytes on every run (fixed timestamps, an ed25519 signature), so a
# container built from it stays cached. Needs dpkg-deb, apt-ftparchive (apt-utils) and gpg.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
for tool in dpkg-deb apt-ftparchive gpg; do
	command -v "$tool" >/dev/null || { echo "$0: $tool not found: apt-get install dpkg apt-utils gpg" >&2; exit 1; }
done
export SOURCE_DATE_EPOCH=1767225600 # 2026-01-01
date="Thu, 01 Jan 2026 00:00:00 UTC"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import "$here/testdata/stand-in-apt-key.asc"

# unit NAME DESCRIPTION: a unit file for a stand-in agent.
unit() {
	printf '[Unit]\nDescription=%s (stand-in: tests only)\n\n[Service]\nExecStart=/usr/bin/%s\n\n[Install]\nWantedBy=multi-user.target\n' "$2" "$1"
}

# package NAME VERSION DESCRIPTION UNIT...: builds NAME_VERSION_amd64.deb in $work/debs.
package() {
	name=$1 version=$2 desc=$3
	shift 3
	root="$work/pkg/$name"
	mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$work/debs"
	printf '#!/bin/sh\necho "%s: a stand-in package for tests, not the real agent" >&2\nexit 1\n' "$name" >"$root/usr/bin/$name"
	chmod 755 "$root/usr/bin/$name"
	for u in "$@"; do unit "$name" "$desc" >"$root/lib/systemd/system/$u.service"; done
	cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: amd64
Maintainer: amichain tests <tests@amichain.invalid>
Section: admin
Priority: optional
Description: $desc (stand-in for tests)
 Not the real agent: its units and a stub binary, for testing the roles that install it.
EOF
	find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	dpkg-deb --root-owner-group -Zgzip --build "$root" "$work/debs/${name}_${version}_amd64.deb" >/dev/null
}

# repo NAME COMPONENT DEB: a signed repository with one package.
repo() {
	dir="$out/$1" comp=$2
	pool="pool/$comp"
	mkdir -p "$dir/$pool" "$dir/dists/stable/$comp/binary-amd64"
	cp "$work/debs/$3" "$dir/$pool/"
	(cd "$dir" && apt-ftparchive packages "$pool" >"dists/stable/$comp/binary-amd64/Packages")
	(cd "$dir/dists/stable" && apt-ftparchive \
		-o APT::FTPArchive::Release::Suite=stable -o APT::FTPArchive::Release::Codename=stable \
		-o APT::FTPArchive::Release::Components="$comp" -o APT::FTPArchive::Release::Architectures=amd64 \
		release . | sed "s/^Date: .*/Date: $date/" >"$work/Release")
	mv "$work/Release" "$dir/dists/stable/Release"
	gpg --batch --quiet --faked-system-time 20260101T000000 --clearsign \
		-o "$dir/dists/stable/InRelease" "$dir/dists/stable/Release" 2>/dev/null
}

rm -rf "$out"
mkdir -p "$out"
package datadog-agent 7.99.0-1 "Datadog agent" datadog-agent datadog-agent-process datadog-agent-trace
package buildkite-agent 3.99.0 "Buildkite agent" buildkite-agent
# The real package runs its agent as this system user.
cat >"$work/pkg/buildkite-agent/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && ! getent passwd buildkite-agent >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/buildkite-agent --create-home --shell /bin/bash buildkite-agent
fi
EOF
chmod 755 "$work/pkg/buildkite-agent/DEBIAN/postinst"
touch -d "@$SOURCE_DATE_EPOCH" "$work/pkg/buildkite-agent/DEBIAN/postinst" "$work/pkg/buildkite-agent/DEBIAN"
dpkg-deb --root-owner-group -Zgzip --build "$work/pkg/buildkite-agent" "$work/debs/buildkite-agent_3.99.0_amd64.deb" >/dev/null
repo datadog 7 datadog-agent_7.99.0-1_amd64.deb
repo buildkite main buildkite-agent_3.99.0_amd64.deb
gpg --batch --armor --export >"$out/key.asc"
