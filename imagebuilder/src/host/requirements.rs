//! The one table of what this builder needs from the host: every program the code runs through
//! [`crate::util::cmd`], the files it reads from host packages (boot loader modules, firmware) and
//! the kernel features it relies on, each with the Debian (and, where the name and path are the
//! same there, Fedora) package providing it.
//!
//! `imagebuilder doctor`, the check every build command runs first ([`super::preflight`]), the
//! "is it installed?" hint of a program that fails to start, and the `.deb`'s `Depends`,
//! `Recommends` and `Suggests` ([`debian_relations`]) all read this table.

use serde::Serialize;

/// What is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A program, looked up on `PATH` (plus the sbin directories).
    Program(&'static str),
    /// A file a host package installs.
    File(&'static str),
    /// A property of the running system, probed by [`super::check`].
    Feature(Feature),
}

/// The kernel and system features the builder depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Running as root: deployments keep their files' owners, `%post` maps every uid.
    Root,
    /// `/dev/loop-control`, for XFS (written through a loop device).
    LoopDevices,
    /// Creating a user namespace, which the `%post` sandbox runs in.
    UserNamespaces,
    /// `/dev/kvm` runs a guest: QEMU uses KVM instead of the much slower TCG.
    Kvm,
}

impl Feature {
    /// The name doctor shows.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Root => "running as root",
            Feature::LoopDevices => "loop devices (/dev/loop-control)",
            Feature::UserNamespaces => "user namespaces (for bubblewrap)",
            Feature::Kvm => "KVM (/dev/kvm usable)",
        }
    }
}

/// Which part of the builder needs a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every image build: the deployment, its system configuration and the `%post` sandbox.
    Build,
    /// Disk images: raw, raw.xz, qcow2 and the Vagrant boxes.
    Disk,
    /// The xz-compressed raw image.
    RawXz,
    /// Both live outputs: the live root and its initramfs.
    Live,
    /// The PXE-to-Live directory.
    PxeLive,
    /// The live ISO.
    LiveIso,
    /// Booting images in QEMU (`boot-test`, `demo`).
    BootTest,
    /// Building the demo OSTree tree (`demo-tree`, `demo`).
    DemoTree,
    /// Other commands: `treecompose`, `imagefactory`, signing.
    Commands,
    /// Only the test suite runs it; listed so a missing program's error names its package.
    Tests,
}

/// When a requirement applies within its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Always: the preflight check refuses to start without it.
    Always,
    /// Only in the case named (a kickstart or option); the step that needs it checks it.
    Only(&'static str),
    /// Never needed, but better with it (the text says what it brings).
    Better(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    pub need: Need,
    /// The Debian package that provides it (`None` for a kernel feature).
    pub debian: Option<&'static str>,
    /// The Fedora package, where the program or file has the same name and path there.
    pub fedora: Option<&'static str>,
    pub scopes: &'static [Scope],
    pub when: When,
    /// What the builder does with it.
    pub purpose: &'static str,
}

const fn program(
    name: &'static str,
    debian: &'static str,
    fedora: Option<&'static str>,
    scopes: &'static [Scope],
    when: When,
    purpose: &'static str,
) -> Requirement {
    Requirement {
        need: Need::Program(name),
        debian: Some(debian),
        fedora,
        scopes,
        when,
        purpose,
    }
}

use Scope::*;
use When::{Always, Better, Only};

/// Every requirement, in the order a build meets them.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        need: Need::Feature(Feature::Root),
        debian: None,
        fedora: None,
        scopes: &[Build, DemoTree],
        when: Always,
        purpose: "deployments that keep their files' owners; debootstrap and chroot of the demo tree",
    },
    Requirement {
        need: Need::Feature(Feature::UserNamespaces),
        debian: None,
        fedora: None,
        scopes: &[Build],
        when: Always,
        purpose: "the %post sandbox's own user namespace",
    },
    program(
        "bwrap",
        "bubblewrap",
        Some("bubblewrap"),
        &[Build],
        Always,
        "the %post sandbox",
    ),
    program(
        "prlimit",
        "util-linux",
        Some("util-linux"),
        &[Build],
        Always,
        "limits of %post scripts",
    ),
    program(
        "unshare",
        "util-linux",
        Some("util-linux"),
        &[Build],
        Always,
        "user namespace of the %post sandbox; private mount namespace of XFS copies",
    ),
    program(
        "gpg",
        "gnupg",
        Some("gnupg2"),
        &[Build, Commands],
        Only("with --gpg-key FILE, and for treecompose --gpg-sign and verify"),
        "reading trusted keys, signing commits",
    ),
    program(
        "gpgconf",
        "gnupg",
        Some("gnupg2"),
        &[Build, Commands],
        Only("with --gpg-key FILE"),
        "stopping the temporary GPG agent",
    ),
    program(
        "mke2fs",
        "e2fsprogs",
        Some("e2fsprogs"),
        &[Disk, Live],
        Always,
        "ext4/ext3 filesystems (mke2fs -d); the live root image",
    ),
    program(
        "grub-mkimage",
        "grub2-common",
        None,
        &[Disk, PxeLive, LiveIso],
        Always,
        "GRUB core images for BIOS, UEFI, netboot and the ISO",
    ),
    Requirement {
        need: Need::File("/usr/lib/grub/i386-pc/moddep.lst"),
        debian: Some("grub-pc-bin"),
        fedora: Some("grub2-pc-modules"),
        scopes: &[Disk, LiveIso],
        when: Always,
        purpose: "GRUB's BIOS modules",
    },
    Requirement {
        need: Need::File("/usr/lib/grub/x86_64-efi/moddep.lst"),
        debian: Some("grub-efi-amd64-bin"),
        fedora: Some("grub2-efi-x64-modules"),
        scopes: &[Disk, PxeLive, LiveIso],
        when: Always,
        purpose: "GRUB's UEFI modules",
    },
    program(
        "mkfs.btrfs",
        "btrfs-progs",
        Some("btrfs-progs"),
        &[Disk],
        Only("for --fstype=btrfs"),
        "btrfs filesystems (mkfs.btrfs --rootdir)",
    ),
    program(
        "mkfs.xfs",
        "xfsprogs",
        Some("xfsprogs"),
        &[Disk],
        Only("for --fstype=xfs"),
        "XFS filesystems",
    ),
    program(
        "xfs_db",
        "xfsprogs",
        Some("xfsprogs"),
        &[Disk],
        Only("for --fstype=xfs"),
        "setting the XFS UUID",
    ),
    program(
        "losetup",
        "mount",
        Some("util-linux"),
        &[Disk],
        Only("for --fstype=xfs"),
        "attaching the XFS byte range to a loop device",
    ),
    program(
        "mount",
        "mount",
        Some("util-linux"),
        &[Disk],
        Only("for --fstype=xfs"),
        "mounting the XFS filesystem in a private namespace",
    ),
    program(
        "umount",
        "mount",
        Some("util-linux"),
        &[Disk, Build, DemoTree],
        Only("for --fstype=xfs, and to clean up after a killed build"),
        "unmounting what a build or the demo recipe mounted",
    ),
    Requirement {
        need: Need::Feature(Feature::LoopDevices),
        debian: None,
        fedora: None,
        scopes: &[Disk],
        when: Only("for --fstype=xfs"),
        purpose: "XFS, written through a loop device",
    },
    program(
        "xz",
        "xz-utils",
        Some("xz"),
        &[RawXz],
        Always,
        "the raw.xz image",
    ),
    program(
        "mksquashfs",
        "squashfs-tools",
        Some("squashfs-tools"),
        &[Live],
        Always,
        "the live root's squashfs",
    ),
    program(
        "zstd",
        "zstd",
        Some("zstd"),
        &[Live],
        Only("when the tree's initramfs is zstd-compressed (Debian's and Fedora's are)"),
        "reading the tree's initramfs",
    ),
    program(
        "lz4",
        "lz4",
        Some("lz4"),
        &[Live],
        Only("when the tree's initramfs is lz4-compressed"),
        "reading the tree's initramfs",
    ),
    program(
        "bzip2",
        "bzip2",
        Some("bzip2"),
        &[Live],
        Only("when the tree's initramfs is bzip2-compressed"),
        "reading the tree's initramfs",
    ),
    Requirement {
        need: Need::File("/usr/lib/PXELINUX/pxelinux.0"),
        debian: Some("pxelinux"),
        fedora: None,
        scopes: &[PxeLive],
        when: Always,
        purpose: "BIOS netboot loader of the PXE directory",
    },
    Requirement {
        need: Need::File("/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        debian: Some("syslinux-common"),
        fedora: None,
        scopes: &[PxeLive],
        when: Always,
        purpose: "pxelinux's core module",
    },
    program(
        "xorriso",
        "xorriso",
        Some("xorriso"),
        &[LiveIso],
        Always,
        "the hybrid ISO",
    ),
    program(
        "mkfs.fat",
        "dosfstools",
        Some("dosfstools"),
        &[LiveIso],
        Always,
        "the ISO's EFI boot image",
    ),
    program(
        "mmd",
        "mtools",
        Some("mtools"),
        &[LiveIso],
        Always,
        "the ISO's EFI boot image",
    ),
    program(
        "mcopy",
        "mtools",
        Some("mtools"),
        &[LiveIso],
        Always,
        "the ISO's EFI boot image",
    ),
    program(
        "qemu-system-x86_64",
        "qemu-system-x86",
        Some("qemu-system-x86-core"),
        &[BootTest],
        Always,
        "booting the image",
    ),
    Requirement {
        need: Need::File(crate::boot_test::OVMF_CODE),
        debian: Some("ovmf"),
        fedora: None,
        scopes: &[BootTest],
        when: Only("for --uefi"),
        purpose: "UEFI firmware",
    },
    Requirement {
        need: Need::File(crate::boot_test::OVMF_VARS),
        debian: Some("ovmf"),
        fedora: None,
        scopes: &[BootTest],
        when: Only("for --uefi"),
        purpose: "UEFI variable store template",
    },
    Requirement {
        need: Need::Feature(Feature::Kvm),
        debian: None,
        fedora: None,
        scopes: &[BootTest],
        when: Better("boots in seconds; without it QEMU emulates the CPU (TCG)"),
        purpose: "hardware virtualisation for QEMU",
    },
    program(
        "debootstrap",
        "debootstrap",
        Some("debootstrap"),
        &[DemoTree],
        Always,
        "the demo tree's Debian root",
    ),
    program(
        "rpm-ostree",
        "rpm-ostree",
        Some("rpm-ostree"),
        &[Commands],
        Only("for treecompose -c without --container"),
        "composing a tree from a treefile",
    ),
    program(
        "podman",
        "podman",
        Some("podman"),
        &[Commands],
        Only("for treecompose --container"),
        "rpm-ostree in a container",
    ),
    program(
        "docker",
        "docker.io",
        Some("moby-engine"),
        &[Commands],
        Only("for treecompose --container without podman"),
        "rpm-ostree in a container",
    ),
    program(
        "qemu-img",
        "qemu-utils",
        Some("qemu-img"),
        &[Commands],
        Only("for imagefactory's vhd, vmdk and OVA targets"),
        "converting disk images",
    ),
    program(
        "zip",
        "zip",
        Some("zip"),
        &[Commands],
        Only("for imagefactory's azure target"),
        "the Azure VHD zip",
    ),
    program(
        "gzip",
        "gzip",
        Some("gzip"),
        &[Commands],
        Only("for imagefactory's compressed targets"),
        "compressed images",
    ),
    program(
        "sha256sum",
        "coreutils",
        Some("coreutils"),
        &[Commands],
        Only("for imagefactory's SHA256SUMS"),
        "checksums",
    ),
    program(
        "e2fsck",
        "e2fsprogs",
        Some("e2fsprogs"),
        &[Tests],
        Always,
        "checking ext4",
    ),
    program(
        "debugfs",
        "e2fsprogs",
        Some("e2fsprogs"),
        &[Tests],
        Always,
        "reading ext4",
    ),
    program(
        "fsck.fat",
        "dosfstools",
        Some("dosfstools"),
        &[Tests],
        Always,
        "checking FAT",
    ),
    program(
        "mdir",
        "mtools",
        Some("mtools"),
        &[Tests],
        Always,
        "reading FAT",
    ),
    program(
        "mlabel",
        "mtools",
        Some("mtools"),
        &[Tests],
        Always,
        "reading FAT labels",
    ),
    program(
        "xfs_repair",
        "xfsprogs",
        Some("xfsprogs"),
        &[Tests],
        Always,
        "checking XFS",
    ),
    program(
        "btrfs",
        "btrfs-progs",
        Some("btrfs-progs"),
        &[Tests],
        Always,
        "checking btrfs",
    ),
    program(
        "blkid",
        "util-linux",
        Some("util-linux"),
        &[Tests],
        Always,
        "reading ids",
    ),
    program(
        "sgdisk",
        "gdisk",
        Some("gdisk"),
        &[Tests],
        Always,
        "checking GPT",
    ),
    program(
        "sfdisk",
        "fdisk",
        Some("util-linux"),
        &[Tests],
        Always,
        "reading GPT",
    ),
    program(
        "pvck",
        "lvm2",
        Some("lvm2"),
        &[Tests],
        Always,
        "checking LVM",
    ),
    program("vgs", "lvm2", Some("lvm2"), &[Tests], Always, "reading LVM"),
    program("lvs", "lvm2", Some("lvm2"), &[Tests], Always, "reading LVM"),
    program("pvs", "lvm2", Some("lvm2"), &[Tests], Always, "reading LVM"),
    program(
        "grub-mkrescue",
        "grub-common",
        None,
        &[Tests],
        Always,
        "boot-test fixtures",
    ),
    program(
        "unsquashfs",
        "squashfs-tools",
        Some("squashfs-tools"),
        &[Tests],
        Always,
        "reading squashfs",
    ),
    program(
        "xorrisofs",
        "xorriso",
        Some("xorriso"),
        &[Tests],
        Always,
        "reading ISOs",
    ),
    program(
        "cpio",
        "cpio",
        Some("cpio"),
        &[Tests],
        Always,
        "reading initramfs archives",
    ),
    program(
        "busybox",
        "busybox-static",
        Some("busybox"),
        &[Tests],
        Always,
        "boot-test fixtures",
    ),
    program(
        "xmllint",
        "libxml2-utils",
        Some("libxml2"),
        &[Tests],
        Always,
        "checking TDL files",
    ),
    program(
        "mkswap",
        "util-linux",
        Some("util-linux"),
        &[Tests],
        Always,
        "swap",
    ),
];

/// The row for a program (by its base name), if the table has one.
pub fn for_program(program: &str) -> Option<&'static Requirement> {
    let name = program.rsplit('/').next().unwrap_or(program);
    REQUIREMENTS
        .iter()
        .find(|r| matches!(r.need, Need::Program(p) if p == name))
}

/// Essential Debian packages: always installed, so never named in a relation.
const ESSENTIAL: &[&str] = &["coreutils", "util-linux", "gzip", "bash"];

/// The Debian package relations of the builder: `Depends` (what image builds run, in any case),
/// `Recommends` (boot tests, the demo tree) and `Suggests` (other commands), each sorted and
/// without duplicates; a package is named once, in the strongest relation that needs it.
pub fn debian_relations() -> [Vec<&'static str>; 3] {
    let strength = |s: Scope| match s {
        Build | Disk | RawXz | Live | PxeLive | LiveIso => Some(0),
        BootTest | DemoTree => Some(1),
        Commands => Some(2),
        Tests => None,
    };
    let mut best: std::collections::BTreeMap<&'static str, usize> = Default::default();
    for r in REQUIREMENTS {
        let Some(pkg) = r.debian else { continue };
        if ESSENTIAL.contains(&pkg) {
            continue;
        }
        if let Some(s) = r.scopes.iter().filter_map(|&s| strength(s)).min() {
            let e = best.entry(pkg).or_insert(s);
            *e = (*e).min(s);
        }
    }
    let mut out: [Vec<&'static str>; 3] = Default::default();
    for (pkg, s) in best {
        out[s].push(pkg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_and_file_names_its_debian_package_once() {
        let mut seen = Vec::new();
        for r in REQUIREMENTS {
            match r.need {
                Need::Program(p) | Need::File(p) => {
                    assert!(r.debian.is_some(), "{p} has no Debian package");
                    assert!(!seen.contains(&p), "{p} is listed twice");
                    seen.push(p);
                }
                Need::Feature(_) => assert!(r.debian.is_none()),
            }
            assert!(!r.scopes.is_empty() && !r.purpose.is_empty());
        }
        assert_eq!(
            for_program("/usr/sbin/mkfs.fat").unwrap().debian,
            Some("dosfstools")
        );
        assert!(for_program("no-such-program").is_none());
    }

    #[test]
    fn relations_put_build_tools_in_depends_and_qemu_in_recommends() {
        let [depends, recommends, suggests] = debian_relations();
        for p in [
            "bubblewrap",
            "e2fsprogs",
            "grub-pc-bin",
            "grub-efi-amd64-bin",
            "grub2-common",
            "squashfs-tools",
            "xorriso",
            "dosfstools",
            "mtools",
            "btrfs-progs",
            "xfsprogs",
            "pxelinux",
            "syslinux-common",
        ] {
            assert!(depends.contains(&p), "{p} not in Depends: {depends:?}");
        }
        for p in ["qemu-system-x86", "ovmf", "debootstrap"] {
            assert!(
                recommends.contains(&p),
                "{p} not in Recommends: {recommends:?}"
            );
        }
        assert!(suggests.contains(&"qemu-utils"), "{suggests:?}");
        // Test-only and essential packages are in no relation; none is in two.
        let all: Vec<_> = [&depends, &recommends, &suggests]
            .into_iter()
            .flatten()
            .collect();
        for p in ["busybox-static", "gdisk", "coreutils", "util-linux"] {
            assert!(!all.contains(&&p), "{p} in a relation");
        }
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }
}
