//! Live images from the staged deployment: the physical root (with `/ostree`, the deployment and
//! `/boot` folded in) as an ext4 `LiveOS/rootfs.img` inside a squashfs, the kernel, and an initramfs
//! that can find, mount and enter it (dracut's `dmsquash-live` and `ostree` modules, plus `livenet`
//! to fetch it over HTTP). [`stage_live_root`] makes these once; the PXE-to-Live writer
//! ([`pxe`]) and the live ISO writer ([`crate::iso`]) both consume the result.
//!
//! The staged deployment is left as it was found: the live root's empty `/etc/fstab` (nothing to
//! mount: `/` is the live overlay) is swapped in for the time of the copy only, so the same
//! deployment can go on to a disk image.

pub mod initramfs;
pub mod pxe;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::deployment::deploy::{BlsEntry, Deployed, bls_entries};
use crate::fs::{MkfsOptions, estimate_bytes, make_ext, tree_stats};
use crate::plan::{Filesystem, FsKind, MIB};
use crate::util::cmd::CommandExt;

/// The squashfs's name in PXE-to-Live outputs (as livemedia-creator names it).
pub const SQUASHFS_NAME: &str = "live-rootfs.squashfs.img";
/// The label of `LiveOS/rootfs.img`.
pub const ROOTFS_LABEL: &str = "LiveOS";

/// What the live stage needs to know.
#[derive(Debug, Clone)]
pub struct LiveRequest<'a> {
    pub deployed: &'a Deployed,
    /// The kickstart's `part /` size, when fixed: the size of `rootfs.img`. `None` = sized to the
    /// content.
    pub root_size: Option<u64>,
    /// What to name in errors about the root size (`file:line` of `part /`).
    pub root_origin: String,
    /// UUID of `rootfs.img`.
    pub rootfs_uuid: String,
    /// The squashfs is fetched over the network: the initramfs needs `livenet`.
    pub network: bool,
    /// Scratch space (removed by the caller).
    pub work: &'a Path,
    /// The build's log directory (the initramfs rebuild logs there).
    pub log_dir: &'a Path,
    pub source_date_epoch: Option<i64>,
    /// Files the live root has beyond the deployment's (the installer's unit), relative to the
    /// deployment; like the empty fstab, there only for the time of the copy.
    pub extra_files: Vec<LiveFile>,
}

/// A file of the live root only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveFile {
    Data { path: String, content: Vec<u8> },
    Symlink { path: String, target: String },
}

impl LiveFile {
    fn path(&self) -> &str {
        match self {
            LiveFile::Data { path, .. } | LiveFile::Symlink { path, .. } => path,
        }
    }
}

/// The live root and what boots it.
#[derive(Debug, Clone)]
pub struct LiveRoot {
    /// `live-rootfs.squashfs.img` (holding `LiveOS/rootfs.img`).
    pub squashfs: PathBuf,
    pub kernel: PathBuf,
    pub kernel_version: String,
    pub initramfs: PathBuf,
    /// The tree's initramfs lacked live modules and was rebuilt with the tree's dracut.
    pub initramfs_rebuilt: bool,
    /// The dracut modules of [`LiveRoot::initramfs`].
    pub dracut_modules: BTreeSet<String>,
    /// The deployment's `ostree=` argument.
    pub ostree_arg: String,
    /// Kernel arguments of the boot entry that still hold for a live boot (`rw`, `ostree=`, the
    /// kickstart's `bootloader --append`), without those naming the disk's root.
    pub base_args: Vec<String>,
    /// The boot entry's title.
    pub title: String,
    /// Size of `rootfs.img`.
    pub rootfs_bytes: u64,
}

impl LiveRoot {
    /// The kernel command line: `root` (`live:…`), extra arguments, then [`LiveRoot::base_args`].
    pub fn cmdline(&self, root: &str, extra: &[&str]) -> String {
        let mut v = vec![format!("root={root}")];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(self.base_args.iter().cloned());
        v.join(" ")
    }
}

/// Kernel arguments that name the disk image's root and do not apply to a live boot.
fn disk_only(arg: &str) -> bool {
    [
        "root=",
        "rootflags=",
        "rootfstype=",
        "rd.lvm.lv=",
        "rd.luks.uuid=",
        "resume=",
    ]
    .iter()
    .any(|p| arg.starts_with(p))
}

/// The boot entry the live image boots, with its kernel and initramfs in the staged `/boot`.
fn boot_entry(d: &Deployed) -> Result<(BlsEntry, PathBuf, PathBuf)> {
    let boot = d.sysroot.join("boot");
    let entry = bls_entries(&boot)
        .context("the deployment has no boot loader entry: does the tree have a kernel?")?
        .remove(0);
    let kernel = boot.join(entry.linux.trim_start_matches('/'));
    if entry.linux.is_empty() || !kernel.is_file() {
        bail!(
            "the tree has no kernel: the boot entry names {:?}, which is not in the deployment's /boot",
            entry.linux
        );
    }
    let initrd = entry
        .initrd
        .first()
        .map(|i| boot.join(i.trim_start_matches('/')))
        .filter(|p| p.is_file())
        .context("the tree has no initramfs (the boot entry names none): live boot needs one")?;
    Ok((entry, kernel, initrd))
}

/// The kernel version from `vmlinuz-VERSION`, else the only `usr/lib/modules/VERSION` of the tree.
fn kernel_version(kernel: &Path, deployment: &Path) -> Result<String> {
    if let Some(v) = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .filter(|v| !v.is_empty())
    {
        return Ok(v.to_string());
    }
    let dir = deployment.join("usr/lib/modules");
    let mut versions: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "cannot tell the kernel version: {} has {} kernels",
            dir.display(),
            versions.len()
        ),
    }
}

/// Stage: the live root and its boot files, from the staged deployment (left unchanged).
pub fn stage_live_root(
    r: &LiveRequest<'_>,
    log: &mut crate::build::publish::BuildLog,
) -> Result<LiveRoot> {
    let d = r.deployed;
    let (entry, kernel, tree_initramfs) = boot_entry(d)?;
    let kernel_version = kernel_version(&kernel, &d.deployment)?;
    let args: Vec<String> = entry
        .options
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let ostree_arg = args
        .iter()
        .find(|a| a.starts_with("ostree="))
        .cloned()
        .context("the boot entry has no ostree= argument")?;
    let base_args = args.into_iter().filter(|a| !disk_only(a)).collect();

    let (initramfs, dracut_modules, initramfs_rebuilt) =
        live_initramfs(r, &tree_initramfs, &kernel_version, log)?;

    let rootfs_dir = r.work.join("squash/LiveOS");
    std::fs::create_dir_all(&rootfs_dir)
        .with_context(|| format!("creating {}", rootfs_dir.display()))?;
    let rootfs = rootfs_dir.join("rootfs.img");
    let rootfs_bytes = with_live_fstab(&d.deployment, || {
        with_live_files(&d.deployment, &r.extra_files, || {
            write_rootfs(r, &rootfs, log)
        })
    })?;
    let squashfs = r.work.join(SQUASHFS_NAME);
    crate::util::cleanup::set_stage("writing the live squashfs");
    log.step(format!(
        "writing {SQUASHFS_NAME} (mksquashfs, zstd level 3)"
    ));
    let bar = crate::progress::spinner("writing the live squashfs");
    let made = mksquashfs(&r.work.join("squash"), &squashfs, r.source_date_epoch);
    bar.finish_and_clear();
    made?;
    std::fs::remove_file(&rootfs).with_context(|| format!("removing {}", rootfs.display()))?;
    log.step(format!(
        "{SQUASHFS_NAME}: {} MiB",
        std::fs::metadata(&squashfs)?.len() / MIB
    ));
    Ok(LiveRoot {
        squashfs,
        kernel,
        kernel_version,
        initramfs,
        initramfs_rebuilt,
        dracut_modules,
        ostree_arg,
        base_args,
        title: entry.title,
        rootfs_bytes,
    })
}

/// The tree's initramfs when it has the live modules, else one rebuilt with the tree's dracut.
fn live_initramfs(
    r: &LiveRequest<'_>,
    tree_initramfs: &Path,
    kernel_version: &str,
    log: &mut crate::build::publish::BuildLog,
) -> Result<(PathBuf, BTreeSet<String>, bool)> {
    let mut wanted: Vec<&str> = initramfs::LIVE_MODULES.to_vec();
    if r.network {
        wanted.extend(initramfs::NET_MODULES);
    }
    let have = initramfs::dracut_modules(tree_initramfs)?;
    let missing = initramfs::missing(&have, &wanted);
    if missing.is_empty() {
        log.step(format!(
            "the tree's initramfs has the live modules ({})",
            wanted.join(", ")
        ));
        return Ok((tree_initramfs.to_path_buf(), have, false));
    }
    if let Some(why) = initramfs::cannot_rebuild(&r.deployed.deployment, &wanted)? {
        bail!(
            "the tree's initramfs lacks the dracut modules {} that live boot needs ({}), and it \
             cannot be rebuilt with them: {why}",
            missing.join(", "),
            if r.network {
                "dmsquash-live and ostree to mount and enter the live root, livenet to fetch it over HTTP"
            } else {
                "dmsquash-live and ostree to mount and enter the live root"
            }
        );
    }
    crate::util::cleanup::set_stage("rebuilding the initramfs with the tree's dracut");
    log.step(format!(
        "the tree's initramfs lacks {}: rebuilding it with the tree's dracut in the sandbox",
        missing.join(", ")
    ));
    let bar = crate::progress::spinner("rebuilding the initramfs (dracut)");
    let rebuilt = initramfs::rebuild(&initramfs::Rebuild {
        deployment: &r.deployed.deployment,
        kernel_version,
        modules: &wanted,
        work: &r.work.join("dracut"),
        log_dir: r.log_dir,
        source_date_epoch: r.source_date_epoch,
    });
    bar.finish_and_clear();
    let rebuilt = rebuilt?;
    let have = initramfs::dracut_modules(&rebuilt)?;
    let still = initramfs::missing(&have, &wanted);
    if !still.is_empty() {
        bail!(
            "the tree's dracut left out {} when rebuilding the initramfs (see the dracut log in {})",
            still.join(", "),
            r.log_dir.display()
        );
    }
    log.step(format!(
        "rebuilt the initramfs with the tree's dracut: {} MiB, with {}",
        std::fs::metadata(&rebuilt)?.len() / MIB,
        wanted.join(", ")
    ));
    Ok((rebuilt, have, true))
}

/// Runs `f` with the deployment's `/etc/fstab` replaced by the live root's empty one, and puts the
/// original back (new inodes both times: deployment files may be hard links).
fn with_live_fstab<T>(deployment: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let fstab = deployment.join("etc/fstab");
    let saved = std::fs::read(&fstab).ok();
    replace_file(
        &fstab,
        b"# Live image: / is the live overlay; nothing else is mounted from fstab.\n",
    )?;
    let r = f();
    let restored = match &saved {
        Some(b) => replace_file(&fstab, b),
        None => {
            std::fs::remove_file(&fstab).with_context(|| format!("removing {}", fstab.display()))
        }
    };
    let v = r?;
    restored?;
    Ok(v)
}

/// Runs `f` with `files` added to the deployment, then removes them and the folders made for them.
/// A file the deployment already has is an error: the live root only adds.
fn with_live_files<T>(
    deployment: &Path,
    files: &[LiveFile],
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let mut made: Vec<PathBuf> = Vec::new();
    let added = add_live_files(deployment, files, &mut made);
    let r = added.and_then(|()| f());
    let mut removed = Ok(());
    for p in made.iter().rev() {
        let gone = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir(p)
        } else {
            std::fs::remove_file(p)
        };
        if let Err(e) = gone
            && removed.is_ok()
        {
            removed = Err(e).with_context(|| format!("removing {}", p.display()));
        }
    }
    let v = r?;
    removed?;
    Ok(v)
}

fn add_live_files(deployment: &Path, files: &[LiveFile], made: &mut Vec<PathBuf>) -> Result<()> {
    for file in files {
        let path = deployment.join(file.path());
        let parent = path.parent().context("a live file without a folder")?;
        let mut missing = Vec::new();
        let mut p = parent;
        while !p.exists() {
            missing.push(p.to_path_buf());
            p = p.parent().context("a live file outside the deployment")?;
        }
        for d in missing.into_iter().rev() {
            std::fs::create_dir(&d).with_context(|| format!("creating {}", d.display()))?;
            made.push(d);
        }
        if path.symlink_metadata().is_ok() {
            bail!("the deployment already has {}", file.path());
        }
        match file {
            LiveFile::Data { content, .. } => std::fs::write(&path, content),
            LiveFile::Symlink { target, .. } => std::os::unix::fs::symlink(target, &path),
        }
        .with_context(|| format!("writing {}", path.display()))?;
        made.push(path);
    }
    Ok(())
}

fn replace_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("imagebuilder-new");
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// `LiveOS/rootfs.img`: ext4 of the kickstart's `part /` size (or sized to the content) made from
/// the whole physical root.
fn write_rootfs(
    r: &LiveRequest<'_>,
    out: &Path,
    log: &mut crate::build::publish::BuildLog,
) -> Result<u64> {
    let sysroot = &r.deployed.sysroot;
    if let Some(epoch) = r.source_date_epoch {
        crate::fs::clamp_mtimes(sysroot, epoch)?;
    }
    let stats = tree_stats(sysroot)?;
    let need = estimate_bytes(FsKind::Ext4, &stats);
    let size = match r.root_size {
        Some(s) if s < need => bail!(
            "{}: the live root needs about {} MiB (the deployment with /boot folded in), part / gives {} MiB",
            r.root_origin,
            need.div_ceil(MIB),
            s / MIB
        ),
        Some(s) => s,
        // Room to spare for the live system's own writes go to the overlay, not here.
        None => (need + need / 10).next_multiple_of(MIB),
    };
    let fs = Filesystem {
        kind: FsKind::Ext4,
        mountpoint: "/".into(),
        label: Some(ROOTFS_LABEL.into()),
        uuid: r.rootfs_uuid.clone(),
        options: "defaults".into(),
    };
    crate::util::cleanup::set_stage("writing LiveOS/rootfs.img");
    log.step(format!(
        "writing LiveOS/rootfs.img (ext4, {} MiB; {} MiB of data)",
        size / MIB,
        stats.data_bytes / MIB
    ));
    let bar = crate::progress::spinner("writing LiveOS/rootfs.img");
    let made = make_ext(
        out,
        0,
        size,
        &fs,
        sysroot,
        MkfsOptions {
            epoch: r.source_date_epoch,
        },
    );
    bar.finish_and_clear();
    made?;
    Ok(size)
}

/// `mksquashfs DIR OUT` with fixed times under `SOURCE_DATE_EPOCH`.
fn mksquashfs(dir: &Path, out: &Path, epoch: Option<i64>) -> Result<()> {
    crate::util::cmd::require_program("mksquashfs")?;
    let mut c = Command::new("mksquashfs");
    // zstd level 3: measured 30x faster than mksquashfs's default level 15 on the demo root,
    // for an image 11 % larger (3 s against 96 s; 208 against 188 MB).
    c.arg(dir)
        .arg(out)
        .args(["-comp", "zstd", "-Xcompression-level", "3"])
        .args([
            "-noappend",
            "-no-progress",
            "-quiet",
            "-all-root",
            "-no-xattrs",
        ]);
    // mksquashfs refuses SOURCE_DATE_EPOCH together with the options that say the same.
    c.env_remove("SOURCE_DATE_EPOCH");
    if let Some(e) = epoch {
        c.arg("-mkfs-time")
            .arg(e.to_string())
            .arg("-all-time")
            .arg(e.to_string());
    }
    c.run().context("writing the live squashfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_root_arguments_are_dropped() {
        let keep: Vec<&str> = "root=UUID=1 rd.lvm.lv=vg/root rw rootflags=subvol=/ ostree=/ostree/boot.1/x/y/0 console=ttyS0"
            .split(' ')
            .filter(|a| !disk_only(a))
            .collect();
        assert_eq!(keep, ["rw", "ostree=/ostree/boot.1/x/y/0", "console=ttyS0"]);
    }

    #[test]
    fn kernel_version_from_the_file_name_or_the_modules() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            kernel_version(Path::new("/b/vmlinuz-6.1.0-50-amd64"), d.path()).unwrap(),
            "6.1.0-50-amd64"
        );
        std::fs::create_dir_all(d.path().join("usr/lib/modules/5.0-x")).unwrap();
        assert_eq!(
            kernel_version(Path::new("/b/vmlinuz"), d.path()).unwrap(),
            "5.0-x"
        );
        std::fs::create_dir_all(d.path().join("usr/lib/modules/5.1-x")).unwrap();
        assert!(kernel_version(Path::new("/b/vmlinuz"), d.path()).is_err());
    }

    #[test]
    fn live_files_are_there_for_the_copy_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/systemd/system")).unwrap();
        let files = vec![
            LiveFile::Data {
                path: "etc/systemd/system/x.service".into(),
                content: b"[Unit]\n".to_vec(),
            },
            LiveFile::Symlink {
                path: "etc/systemd/system/multi-user.target.wants/x.service".into(),
                target: "../x.service".into(),
            },
        ];
        let seen = with_live_files(d.path(), &files, || {
            let wants = d
                .path()
                .join("etc/systemd/system/multi-user.target.wants/x.service");
            Ok((
                std::fs::read_link(&wants)?,
                std::fs::read(d.path().join("etc/systemd/system/x.service"))?,
            ))
        })
        .unwrap();
        assert_eq!(seen, (PathBuf::from("../x.service"), b"[Unit]\n".to_vec()));
        // Gone again, with the folder made for the link; the existing folder stays.
        assert!(!d.path().join("etc/systemd/system/x.service").exists());
        assert!(
            !d.path()
                .join("etc/systemd/system/multi-user.target.wants")
                .exists()
        );
        assert!(d.path().join("etc/systemd/system").is_dir());
        // Also after a failure, and a file the deployment has is never replaced.
        let r: Result<()> = with_live_files(d.path(), &files, || bail!("no"));
        assert!(r.is_err());
        assert!(!d.path().join("etc/systemd/system/x.service").exists());
        std::fs::write(d.path().join("etc/systemd/system/x.service"), b"mine").unwrap();
        let r = with_live_files(d.path(), &files, || Ok(()));
        assert!(r.unwrap_err().to_string().contains("already has"));
        assert_eq!(
            std::fs::read(d.path().join("etc/systemd/system/x.service")).unwrap(),
            b"mine"
        );
    }

    #[test]
    fn the_fstab_is_swapped_for_the_copy_and_restored() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        let fstab = d.path().join("etc/fstab");
        std::fs::write(&fstab, "UUID=x / ext4 defaults 1 1\n").unwrap();
        let seen = with_live_fstab(d.path(), || Ok(std::fs::read_to_string(&fstab)?)).unwrap();
        assert!(!seen.contains("UUID"), "{seen}");
        assert_eq!(
            std::fs::read_to_string(&fstab).unwrap(),
            "UUID=x / ext4 defaults 1 1\n"
        );
        // Restored even when the work fails.
        let r: Result<()> = with_live_fstab(d.path(), || bail!("no"));
        assert!(r.is_err());
        assert!(std::fs::read_to_string(&fstab).unwrap().contains("UUID=x"));
    }
}
