#!/usr/bin/env bash
# Builds the demo root filesystem: Debian 12 minbase + packages.txt, a generic (non-hostonly) dracut
# initramfs with the ostree module, trimmed of docs, man pages, locales and unneeded kernel modules.
# Usage: build-rootfs.sh TARGET_DIR [MIRROR]   (as root; TARGET_DIR must not exist)
# This is input preparation: it uses chroot with /proc, /sys and /dev mounted. The result is committed
# natively by `imagebuilder` (OSTree layout conversion happens there, not here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?usage: build-rootfs.sh TARGET_DIR [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
suite=bookworm
export LC_ALL=C DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin

if [ -e "$target" ]; then
  echo "build-rootfs.sh: $target already exists" >&2
  exit 1
fi
mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$')

# Step 1: minbase. linux-image-amd64 and dracut are NOT installed here: debootstrap's resolver picks
# initramfs-tools for the kernel's `initramfs-tools | linux-initramfs-tool` and unpacks it next to dracut
# (they conflict). apt in step 2 resolves the alternative to dracut instead.
debootstrap --variant=minbase "$suite" "$target" "$mirror"

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" || true; done
}
trap cleanup EXIT
for fs in proc sys dev; do
  case $fs in
    proc) mount -t proc proc "$target/proc" ;;
    sys) mount -t sysfs sys "$target/sys" ;;
    dev) mount --bind /dev "$target/dev" ;;
  esac
  mounted+=("$target/$fs")
done

# Never start services inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod 0755 "$target/usr/sbin/policy-rc.d"
# Keep docs, man pages and locales out from the start.
cat > "$target/etc/dpkg/dpkg.cfg.d/01-imagebuilder-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
# Kernel modules nobody boots a VM or server image with (graphics, sound, wireless, media, ...): never
# unpacked, so the kernel's own depmod and dracut run see the trimmed tree and commits stay fast.
for d in drivers/gpu drivers/media drivers/net/wireless drivers/infiniband drivers/staging \
  drivers/bluetooth drivers/iio drivers/isdn drivers/input/touchscreen drivers/net/can \
  drivers/thunderbolt drivers/platform/chrome drivers/misc/habanalabs drivers/comedi drivers/mtd sound net/wireless net/mac80211 \
  net/bluetooth; do
  echo "path-exclude=/lib/modules/*/kernel/$d/*"
  echo "path-exclude=/usr/lib/modules/*/kernel/$d/*"
done >> "$target/etc/dpkg/dpkg.cfg.d/01-imagebuilder-nodoc"
# dracut: generic image (boots on any machine), the ostree module, live modules (dmsquash-live for
# live media, livenet + network-legacy for squashfs over HTTP: dracut would otherwise pick
# systemd-networkd as the network handler and fail on its missing ifcfg module), LVM,
# virtio drivers and the filesystems the images use. The kernel's postinst hook runs dracut with this.
mkdir -p "$target/etc/dracut.conf.d"
cat > "$target/etc/dracut.conf.d/50-imagebuilder.conf" <<'CFG'
hostonly="no"
add_dracutmodules+=" ostree systemd lvm dmsquash-live network-legacy livenet "
omit_dracutmodules+=" plymouth "
add_drivers+=" virtio_blk virtio_pci virtio_scsi virtio_net virtio_console ext4 xfs btrfs vfat nls_cp437 nls_iso8859_1 sr_mod isofs squashfs overlay loop "
filesystems+=" ext4 xfs btrfs vfat "
CFG

echo "deb $mirror $suite main" > "$target/etc/apt/sources.list"
chroot "$target" apt-get update -qq
chroot "$target" apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
chroot "$target" apt-get clean

# Per-machine state must not be baked into the tree.
rm -f "$target"/etc/ssh/ssh_host_*
: > "$target/etc/machine-id"
rm -f "$target/var/lib/dbus/machine-id"
echo imagebuilder-demo > "$target/etc/hostname"
# Debian's sshd refuses to start without host keys and has no unit to create them.
cat > "$target/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../ssh-hostkeys.service "$target/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"

kver=$(basename "$(ls -d "$target"/lib/modules/*/ | head -n1)")
if [ ! -s "$target/boot/initrd.img-$kver" ]; then
  echo "build-rootfs.sh: dracut did not produce /boot/initrd.img-$kver" >&2
  exit 1
fi

rm -f "$target/usr/sbin/policy-rc.d"
# What debootstrap unpacked before the dpkg excludes existed: docs (copyright files stay), man pages,
# translations.
find "$target/usr/share/doc" \( -type f -o -type l \) ! -name copyright -delete
rm -rf "$target"/usr/share/man/* "$target"/usr/share/info/*
find "$target/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/*.bin "$target"/var/log/*.log \
  "$target"/var/log/apt/* "$target"/tmp/* "$target"/var/tmp/*
echo "build-rootfs.sh: built $target (kernel $kver)"
