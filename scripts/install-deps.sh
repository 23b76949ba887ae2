#!/usr/bin/env bash
# Installs every host package and oracle the project needs on Debian 12 (bookworm), as root.
# Idempotent: a stamp keyed on this script's content makes a second run cost nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
stamp_dir=${IMAGEBUILDER_STATE_DIR:-/var/lib/imagebuilder}
stamp="$stamp_dir/deps-$(sha256sum "$0" | cut -c1-16)"
if [ -e "$stamp" ] && [ -x "$here/.venv/bin/ksvalidator" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (apt-get is needed)" >&2
  exit 1
fi

# qemu-utils on these machines comes from bookworm-backports; qemu-system-x86 must come from there too.
if ! cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -q "bookworm-backports"; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -v '^ *#' | grep -oE "https?://[^ ]+/debian/?( |$)" | head -n1 | tr -d ' ' || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "deb ${mirror%/} bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  pkg-config libostree-dev ostree gnupg \
  e2fsprogs dosfstools mtools btrfs-progs xfsprogs lvm2 gdisk fdisk \
  grub-pc-bin grub-efi-amd64-bin grub2-common \
  squashfs-tools xorriso cpio zstd xz-utils pxelinux syslinux-common isolinux \
  debootstrap bubblewrap libxml2-utils python3-venv busybox-static systemd openssl
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
  qemu-system-x86 qemu-system-common qemu-system-data ovmf

# zip: Azure VHD packaging in `imagebuilder imagefactory`.
apt-get install -y -qq --no-install-recommends zip

# vagrant: the box tests run `vagrant box add` offline on the built .box files.
apt-get install -y -qq --no-install-recommends vagrant

# `make deb` (dpkg-dev: dpkg-shlibdeps, strip) and its test, which installs the package and reads
# its man page and bash completion; lz4 and bzip2 are in the package's Depends (tree initramfs
# formats), so installing it needs nothing new from the network.
apt-get install -y -qq --no-install-recommends dpkg-dev man-db bash-completion lz4 bzip2

# pykickstart is the reference oracle for kickstart verdicts.
if [ ! -x "$here/.venv/bin/ksvalidator" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q pykickstart==3.78
fi

# The boot-test runner's own tests boot a Debian kernel with a busybox initramfs: fetch the kernel
# package and keep only its vmlinuz (nothing is installed into the host's /boot).
kdir="$stamp_dir/boot-test-kernel"
if ! ls "$kdir"/vmlinuz-* >/dev/null 2>&1; then
  kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
  ktmp=$(mktemp -d)
  chmod 755 "$ktmp"
  (cd "$ktmp" && apt-get download -qq "$kpkg")
  dpkg-deb --fsys-tarfile "$ktmp"/*.deb | tar -x -C "$ktmp" --wildcards './boot/vmlinuz-*'
  mkdir -p "$kdir"
  mv "$ktmp"/boot/vmlinuz-* "$kdir/"
  rm -rf "$ktmp"
fi

mkdir -p "$stamp_dir"
touch "$stamp"
