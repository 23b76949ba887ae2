#!/usr/bin/env bash
# Makes the .deb from a tree staged by `make install DESTDIR=STAGE PREFIX=/usr` (run by `make deb`).
# Depends: the shared libraries the binary links (dpkg-shlibdeps) and the host packages its
# requirement table says every image build runs; Recommends and Suggests from the same table
# (`imagebuilder generate deb-relations`). Prints the path of the .deb.
# Usage: build-deb.sh BINARY STAGE OUTDIR
set -euo pipefail
bin=${1:?usage: build-deb.sh BINARY STAGE OUTDIR}
stage=${2:?usage: build-deb.sh BINARY STAGE OUTDIR}
outdir=${3:?usage: build-deb.sh BINARY STAGE OUTDIR}
for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool not found (Debian package dpkg-dev)" >&2; exit 1; }
done
stage=$(cd "$stage" && pwd)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
deb="$outdir/imagebuilder_${version}-1_${arch}.deb"

strip --strip-unneeded "$stage/usr/bin/imagebuilder"

# dpkg-shlibdeps runs in a source tree: give it a minimal one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/debian"
printf 'Source: imagebuilder\n\nPackage: imagebuilder\nArchitecture: any\n' > "$tmp/debian/control"
# It finds the package's root by its DEBIAN directory.
mkdir -p "$stage/DEBIAN"
shlibs=$(cd "$tmp" && dpkg-shlibdeps -O "$stage/usr/bin/imagebuilder" | sed -n 's/^shlibs:Depends=//p')

relations=$("$bin" generate deb-relations)
field() { sed -n "s/^$1: //p" <<<"$relations"; }
depends=$(field Depends)
recommends=$(field Recommends)
suggests=$(field Suggests)

install -D -m 0644 /dev/stdin "$stage/usr/share/doc/imagebuilder/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: imagebuilder
Source: https://github.com/example/imagebuilder

Files: *
Copyright: the imagebuilder developers
License: MIT or Apache-2.0
COPYRIGHT

installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: imagebuilder
Version: ${version}-1
Architecture: ${arch}
Maintainer: imagebuilder developers <imagebuilder@example.org>
Installed-Size: ${installed_size}
Depends: ${shlibs}, ${depends}
Recommends: ${recommends}
Suggests: ${suggests}
Section: admin
Priority: optional
Homepage: https://github.com/example/imagebuilder
Description: build Fedora Atomic style images from an OSTree commit and a kickstart
 imagebuilder turns an OSTree commit plus a kickstart into raw and qcow2 disks,
 Vagrant boxes, PXE-to-Live trees and live ISOs without a VM, and boots them
 in QEMU to prove they work. \`imagebuilder doctor\` lists what the host needs.
CONTROL
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
