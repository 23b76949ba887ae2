//! XFS filesystems, populated with hard links intact.
//!
//! Debian 12's xfsprogs (6.1) can only populate a new XFS from a protofile, and the protofile
//! format has no hard links, no xattrs and no timestamps. An OSTree deployment *is* hard links
//! (every file of the deployment is a link to an object of `/ostree/repo`), so a protofile root
//! would double in size and lose what makes it a deployment. The only writer of XFS on this
//! platform that keeps them is the kernel: this module attaches the filesystem's byte range of the
//! image to a loop device, runs `mkfs.xfs` on it, mounts it, copies the staged tree with `cp -a`
//! (hard links, owners, modes, xattrs including `security.selinux`, mtimes), and unmounts and
//! detaches again — on error too. It is used for XFS only; every other filesystem is written
//! without a loop device or a mount. It needs root and `/dev/loop-control`; without them the error
//! says so and names the alternatives.
//!
//! # The mount cannot outlive the build
//!
//! Mount, copy and unmount run in one helper process with a private mount namespace (and a PID
//! namespace, so that `cp` dies with it): `unshare --mount --propagation private --pid --fork
//! --kill-child sh -c 'mount … && cp -a … && umount …'`. The mount exists only in that namespace;
//! the build's own namespace never sees it. When the helper dies — it is killed with the builder,
//! even a SIGKILLed one (`PR_SET_PDEATHSIG`) — the kernel drops the namespace and the mount with
//! it. Since nothing is ever mounted on the mount point in the build's namespace, no recursive
//! removal there can reach into the filesystem. Loop devices are not namespaced: the
//! [`LoopDevice`] guard detaches this one, and after a SIGKILL the next build or `imagebuilder
//! clean` does.
//!
//! XFS inode change times are the copy's time, so an XFS filesystem is not bit-for-bit
//! reproducible even with `SOURCE_DATE_EPOCH` (file modification times are).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::fs::{MkfsOptions, estimate_bytes, tree_stats};
use crate::plan::{Filesystem, FsKind, MIB};
use crate::util::cleanup::Guard;
use crate::util::cmd::{CommandExt, CommandFailed};

/// The smallest XFS filesystem `mkfs.xfs` (xfsprogs ≥ 5.19) creates.
pub const MIN_BYTES: u64 = crate::plan::XFS_MIN_BYTES;

/// Why XFS cannot be written on this machine, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("it needs root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control does not exist (no loop device support)".into());
    }
    for p in ["mkfs.xfs", "losetup", "unshare", "mount", "umount", "cp"] {
        if crate::util::cmd::find_in_path(p).is_none() {
            let pkg = crate::util::cmd::debian_package_for(p)
                .map(|p| format!(" (Debian package `{p}`)"))
                .unwrap_or_default();
            return Some(format!("`{p}` is not installed{pkg}"));
        }
    }
    None
}

/// Fails with a clear message when XFS cannot be written here; `mountpoint` names the filesystem.
pub fn ensure_available(mountpoint: &str) -> Result<()> {
    match unavailable_reason() {
        Some(why) => bail!(unavailable_message(mountpoint, &why)),
        None => Ok(()),
    }
}

fn unavailable_message(mountpoint: &str, why: &str) -> String {
    format!(
        "cannot create XFS for {mountpoint}: {why}. Debian 12's mkfs.xfs cannot populate XFS \
         from a directory with hard links intact (an OSTree deployment needs them), so XFS is \
         written through a loop device and a mount, as root. Run as root on a machine with \
         loop devices, or use --fstype=ext4 (or btrfs) for {mountpoint}."
    )
}

/// Creates an XFS filesystem of `size` bytes at byte `offset` of `image`, populated from `src`.
/// The mount point is made in `scratch` (a build passes its staging directory, which is removed
/// with everything in it); the filesystem is mounted there only in the copy helper's namespace.
pub fn make_xfs(
    image: &Path,
    offset: u64,
    size: u64,
    fs: &Filesystem,
    src: &Path,
    scratch: &Path,
    _opts: MkfsOptions,
) -> Result<()> {
    ensure!(fs.kind == FsKind::Xfs, "not an XFS filesystem");
    ensure_available(&fs.mountpoint)?;
    ensure!(
        offset.is_multiple_of(512) && size.is_multiple_of(512),
        "XFS byte range {offset}+{size} is not sector aligned"
    );
    if size < MIN_BYTES {
        bail!(
            "XFS on {} needs at least {} MiB (mkfs.xfs refuses smaller filesystems); it has {} MiB",
            fs.mountpoint,
            MIN_BYTES / MIB,
            size / MIB
        );
    }
    let uuid = fs.uuid().context("XFS without a UUID")?;
    let what = || format!("creating xfs on {} ({} MiB)", fs.mountpoint, size / MIB);

    let dev = LoopDevice::attach(image, offset, size).with_context(what)?;
    mkfs_xfs(dev.path(), fs, uuid).with_context(what)?;
    let mnt = MountPoint::create_in(scratch).context("creating a mount point for XFS")?;
    crate::util::cleanup::set_stage(format!("copying the tree into xfs on {}", fs.mountpoint));
    tracing::info!(
        "copying {} into xfs on {} (cp -a)",
        src.display(),
        fs.mountpoint
    );
    copy_in_private_mount(dev.path(), mnt.path(), src).map_err(|e| {
        match e
            .downcast_ref::<CommandFailed>()
            .and_then(|f| f.status.code())
        {
            Some(COPY_FAILED) => {
                let need = tree_stats(src)
                    .map(|s| estimate_bytes(FsKind::Xfs, &s).div_ceil(MIB))
                    .unwrap_or(0);
                e.context(format!(
                    "copying {} into xfs for {} ({} MiB; the content needs about {need} MiB)",
                    src.display(),
                    fs.mountpoint,
                    size / MIB
                ))
            }
            Some(MOUNT_FAILED) => e
                .context(format!(
                    "mounting {} on {}",
                    dev.path().display(),
                    mnt.path().display()
                ))
                .context(what()),
            Some(UNMOUNT_FAILED) => e
                .context(format!("unmounting {}", mnt.path().display()))
                .context(what()),
            _ => e.context(what()),
        }
    })?;
    mnt.remove().with_context(what)?;
    dev.detach().with_context(what)?;
    Ok(())
}

/// `mkfs.xfs` on `dev` with the filesystem's UUID and label.
fn mkfs_xfs(dev: &Path, fs: &Filesystem, uuid: uuid::Uuid) -> Result<()> {
    let mut mkfs = Command::new("mkfs.xfs");
    mkfs.args(["-q", "-f", "-m"])
        .arg(format!("uuid={uuid}"))
        // No discard: the range is already zero (a sparse image), and TRIM on a loop device
        // would punch holes the caller does not expect.
        .arg("-K");
    if let Some(label) = &fs.label {
        mkfs.arg("-L").arg(label);
    }
    mkfs.arg(dev);
    mkfs.run()
}

/// Exit codes of [`COPY_SCRIPT`], naming the step that failed.
const MOUNT_FAILED: i32 = 10;
const COPY_FAILED: i32 = 11;
const UNMOUNT_FAILED: i32 = 12;

/// Mounts `$1` on `$2`, copies `$3` into it and unmounts it; exits with the failed step's code.
const COPY_SCRIPT: &str = "mount -t xfs -o rw \"$1\" \"$2\" || exit 10
cp -a --sparse=always \"$3\" \"$2\" || exit 11
umount \"$2\" || exit 12
";

/// The helper that mounts `dev` on `mnt`, copies `src` into it with `cp -a` and unmounts it, in a
/// mount namespace of its own (see the module documentation); it fails with a
/// [`CommandFailed`] whose exit code is [`MOUNT_FAILED`], [`COPY_FAILED`] or [`UNMOUNT_FAILED`].
fn copy_in_private_mount(dev: &Path, mnt: &Path, src: &Path) -> Result<()> {
    // `SRC/.` copies the directory's own owner, mode and times onto the mount point too.
    let mut from = src.as_os_str().to_owned();
    from.push("/.");
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
            "sh",
            "-c",
            COPY_SCRIPT,
            "sh",
        ])
        .arg(dev)
        .arg(mnt)
        .arg(&from)
        .run()
}

/// An empty directory made to mount on, removed (with `remove_dir`, after checking it is not
/// mounted) when dropped.
#[derive(Debug)]
pub struct MountPoint {
    path: PathBuf,
    guard: Guard,
}

impl MountPoint {
    /// Creates `DIR/.imagebuilder-mnt-XXXXXX`.
    pub fn create_in(dir: &Path) -> Result<MountPoint> {
        let path = tempfile::Builder::new()
            .prefix(".imagebuilder-mnt-")
            .tempdir_in(dir)
            .with_context(|| format!("creating a directory in {}", dir.display()))?
            .keep();
        let p = path.clone();
        let guard = crate::util::cleanup::register(
            format!("removing the mount point {}", path.display()),
            move || crate::blockdev::mounts::remove_mount_point(&p),
        );
        Ok(MountPoint { path, guard })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now, reporting failure.
    pub fn remove(self) -> Result<()> {
        self.guard.run()
    }
}

/// The link count of the inode at `path` inside the XFS filesystem in `fs_image` (a file holding
/// just the filesystem, or a device), read with `xfs_db` without mounting.
pub fn link_count(fs_image: &Path, path: &str) -> Result<u64> {
    let out = Command::new("xfs_db")
        .arg("-r")
        .arg("-c")
        .arg(format!("path {path}"))
        .arg("-c")
        .arg("print core.nlinkv2")
        .arg(fs_image)
        .run_text()?;
    out.trim()
        .strip_prefix("core.nlinkv2 = ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("xfs_db printed `{}` for {path}", out.trim()))
}

/// A loop device over a byte range of a file, detached when dropped (or when an interruption
/// cleans up).
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    guard: Guard,
}

impl LoopDevice {
    /// `losetup --find --show --offset --sizelimit`: the range `offset..offset+size` of `file`.
    pub fn attach(file: &Path, offset: u64, size: u64) -> Result<LoopDevice> {
        Self::attach_with(file, offset, size, false)
    }

    /// Like [`LoopDevice::attach`], read-only (`losetup --read-only`): for inspecting an image.
    pub fn attach_read_only(file: &Path, offset: u64, size: u64) -> Result<LoopDevice> {
        Self::attach_with(file, offset, size, true)
    }

    fn attach_with(file: &Path, offset: u64, size: u64, read_only: bool) -> Result<LoopDevice> {
        let mut cmd = Command::new("losetup");
        if read_only {
            cmd.arg("--read-only");
        }
        let out = cmd
            .arg("--find")
            .arg("--show")
            .arg("--offset")
            .arg(offset.to_string())
            .arg("--sizelimit")
            .arg(size.to_string())
            .arg(file)
            .run_text()
            .context("attaching a loop device")?;
        let path = PathBuf::from(out.trim());
        ensure!(
            path.starts_with("/dev"),
            "losetup printed `{}` instead of a device",
            out.trim()
        );
        let p = path.clone();
        let guard =
            crate::util::cleanup::register(format!("detaching {}", path.display()), move || {
                crate::blockdev::mounts::detach(&p)
            });
        Ok(LoopDevice { path, guard })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Detaches the device, reporting failure (drop only logs it).
    pub fn detach(self) -> Result<()> {
        self.guard.run()
    }
}

/// A mounted XFS filesystem, unmounted when dropped (or when an interruption cleans up).
#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
    guard: Guard,
}

impl Mount {
    /// `mount -t xfs -o OPTIONS DEV TARGET`.
    pub fn new(dev: &Path, target: &Path, options: &str) -> Result<Mount> {
        Command::new("mount")
            .args(["-t", "xfs", "-o", options])
            .arg(dev)
            .arg(target)
            .run()
            .with_context(|| format!("mounting {} on {}", dev.display(), target.display()))?;
        let t = target
            .canonicalize()
            .unwrap_or_else(|_| target.to_path_buf());
        let guard =
            crate::util::cleanup::register(format!("unmounting {}", t.display()), move || {
                if crate::blockdev::mounts::is_mount_point(&t)? {
                    crate::blockdev::mounts::unmount(&t)?;
                }
                Ok(())
            });
        Ok(Mount {
            target: target.to_path_buf(),
            guard,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts, reporting failure (drop only logs it).
    pub fn unmount(self) -> Result<()> {
        self.guard.run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn xfs(label: Option<&str>) -> Filesystem {
        Filesystem {
            kind: FsKind::Xfs,
            mountpoint: "/".into(),
            label: label.map(str::to_string),
            uuid: "2f3c4d5e-6a7b-4c8d-9e0f-112233445566".into(),
            options: "defaults".into(),
        }
    }

    #[test]
    #[ignore = "slow tier: needs root, a loop device and a mount (XFS)"]
    fn populates_with_hard_links_owners_and_xattrs() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("ostree/repo/objects/ab")).unwrap();
        std::fs::create_dir_all(src.join("ostree/deploy/usr/bin")).unwrap();
        let obj = src.join("ostree/repo/objects/ab/cdef.file");
        std::fs::write(&obj, b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::hard_link(&obj, src.join("ostree/deploy/usr/bin/hi")).unwrap();
        std::os::unix::fs::chown(src.join("ostree/deploy/usr/bin/hi"), Some(1000), Some(1000))
            .unwrap();
        rustix::fs::setxattr(
            &obj,
            "security.selinux",
            b"system_u:object_r:bin_t:s0\0",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        std::os::unix::fs::symlink("usr/bin", src.join("ostree/deploy/bin")).unwrap();

        // A disk image with the filesystem at 1 MiB, and marker bytes around it.
        let image = tmp.path().join("disk.raw");
        let (offset, size) = (MIB, MIN_BYTES);
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(offset + size + MIB).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"BEFORE", offset - 6).unwrap();
        f.write_all_at(b"AFTER!", offset + size).unwrap();
        drop(f);

        let fs = xfs(Some("root"));
        make_xfs(
            &image,
            offset,
            size,
            &fs,
            &src,
            tmp.path(),
            MkfsOptions::default(),
        )
        .unwrap();

        let mut buf = [0u8; 6];
        let f = std::fs::File::open(&image).unwrap();
        f.read_exact_at(&mut buf, offset - 6).unwrap();
        assert_eq!(&buf, b"BEFORE");
        f.read_exact_at(&mut buf, offset + size).unwrap();
        assert_eq!(&buf, b"AFTER!", "wrote past the filesystem's range");
        let mut magic = [0u8; 4];
        f.read_exact_at(&mut magic, offset).unwrap();
        assert_eq!(&magic, b"XFSB");

        // Independent checks on the range copied out: xfs_repair, blkid, xfs_db.
        let part = tmp.path().join("part.img");
        crate::fs::extract_range(&image, offset, size, &part).unwrap();
        Command::new("xfs_repair")
            .arg("-n")
            .arg("-f")
            .arg(&part)
            .run()
            .unwrap();
        let blkid = Command::new("blkid")
            .args(["-o", "export"])
            .arg(&part)
            .run_text()
            .unwrap();
        assert!(blkid.contains("TYPE=xfs"), "{blkid}");
        assert!(blkid.contains(&format!("UUID={}", fs.uuid)), "{blkid}");
        assert!(blkid.contains("LABEL=root"), "{blkid}");
        assert_eq!(link_count(&part, "/ostree/deploy/usr/bin/hi").unwrap(), 2);
        assert_eq!(
            link_count(&part, "/ostree/repo/objects/ab/cdef.file").unwrap(),
            2
        );

        // Owners, symlinks and xattrs, read back through a read-only mount.
        let dev = LoopDevice::attach(&part, 0, size).unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mounted = Mount::new(dev.path(), &mnt, "ro").unwrap();
        let a = std::fs::metadata(mnt.join("ostree/repo/objects/ab/cdef.file")).unwrap();
        let b = std::fs::metadata(mnt.join("ostree/deploy/usr/bin/hi")).unwrap();
        assert_eq!((a.ino(), a.nlink(), a.uid()), (b.ino(), 2, 1000));
        let mut label = vec![0u8; 64];
        let n = rustix::fs::getxattr(
            mnt.join("ostree/repo/objects/ab/cdef.file").as_path(),
            "security.selinux",
            &mut label,
        )
        .unwrap();
        assert_eq!(&label[..n], b"system_u:object_r:bin_t:s0\0");
        assert_eq!(
            std::fs::read_link(mnt.join("ostree/deploy/bin")).unwrap(),
            Path::new("usr/bin")
        );
        mounted.unmount().unwrap();
        dev.detach().unwrap();
    }

    #[test]
    #[ignore = "slow tier: needs root (XFS goes through a loop device)"]
    fn too_small_is_a_clear_error_and_nothing_is_attached() {
        let tmp = tempfile::tempdir().unwrap();
        let image = tmp.path().join("disk.raw");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(200 * MIB)
            .unwrap();
        let err = make_xfs(
            &image,
            MIB,
            100 * MIB,
            &xfs(None),
            tmp.path(),
            tmp.path(),
            MkfsOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "XFS on / needs at least 300 MiB (mkfs.xfs refuses smaller filesystems); it has 100 MiB"
        );
        let loops = Command::new("losetup")
            .args(["--list", "--noheadings", "--output", "BACK-FILE"])
            .run_text()
            .unwrap();
        assert!(!loops.contains(image.to_str().unwrap()), "{loops}");
    }

    #[test]
    #[ignore = "slow tier: needs root (mounts in a mount namespace of its own)"]
    fn copy_helper_names_the_failed_step_and_leaves_no_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let not_a_device = tmp.path().join("plain-file");
        std::fs::write(&not_a_device, b"").unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let err = copy_in_private_mount(&not_a_device, &mnt, tmp.path()).unwrap_err();
        let failed = err
            .downcast_ref::<CommandFailed>()
            .expect("a command failure");
        assert_eq!(failed.status.code(), Some(MOUNT_FAILED), "{err:#}");
        assert!(
            !crate::blockdev::mounts::is_mount_point(&mnt.canonicalize().unwrap()).unwrap(),
            "{err:#}"
        );
        for (step, code) in [
            ("mount ", MOUNT_FAILED),
            ("cp ", COPY_FAILED),
            ("umount ", UNMOUNT_FAILED),
        ] {
            let line = COPY_SCRIPT.lines().find(|l| l.starts_with(step)).unwrap();
            assert!(line.ends_with(&format!("|| exit {code}")), "{line}");
        }
    }

    #[test]
    fn unavailable_error_names_the_reason_and_the_alternatives() {
        let msg = unavailable_message("/var", "it needs root");
        assert!(
            msg.starts_with("cannot create XFS for /var: it needs root. "),
            "{msg}"
        );
        assert!(msg.contains("hard links"), "{msg}");
        assert!(
            msg.ends_with("or use --fstype=ext4 (or btrfs) for /var."),
            "{msg}"
        );
        // On this machine the answer agrees with what it is.
        assert_eq!(
            ensure_available("/var").is_ok(),
            unavailable_reason().is_none()
        );
    }
}
