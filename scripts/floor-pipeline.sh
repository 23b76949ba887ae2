#!/usr/bin/env bash
# The floor pipeline for the disk benchmark: the least work that turns an OSTree commit into a qcow2
# holding its deployment — libostree deploy into a directory, `mkfs.ext4 -d`, `qemu-img convert`.
# No partition table, no ESP, no /boot filesystem, no bootloader: `imagebuilder image` must stay
# within 1.25x of this (see scripts/bench-disk.sh).
#
# Like any pipeline it removes its intermediates (the staging sysroot and root.img) and keeps only
# WORKDIR/floor.qcow2; imagebuilder removes its staging tree too, so both pay the same cleanup.
#
# usage: scripts/floor-pipeline.sh REPO REF WORKDIR [SIZE_MIB]
set -euo pipefail
repo=$(realpath "$1"); ref=$2; work=$3; size=${4:-2048}
rm -rf "$work"; mkdir -p "$work"
sysroot=$work/sysroot
mkdir -p "$sysroot"
ostree admin init-fs --modern "$sysroot"
ostree config --repo "$sysroot/ostree/repo" set sysroot.bootloader none
ostree config --repo "$sysroot/ostree/repo" set sysroot.readonly true
ostree admin os-init floor --sysroot "$sysroot"
ostree --repo="$sysroot/ostree/repo" remote add --no-gpg-verify floor "file://$repo"
ostree --repo="$sysroot/ostree/repo" pull floor "$ref"
ostree admin deploy --sysroot "$sysroot" --os floor "floor:$ref" --karg=root=LABEL=root --karg=rw
# ostree marks the deployment immutable; clear it so the work directory can be removed.
chattr -i "$sysroot"/ostree/deploy/floor/deploy/*.0
mkfs.ext4 -q -F -L root -d "$sysroot" "$work/root.img" "${size}M"
qemu-img convert -f raw -O qcow2 "$work/root.img" "$work/floor.qcow2"
rm -rf "$sysroot" "$work/root.img"
