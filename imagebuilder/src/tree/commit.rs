//! Native commit: a prepared root filesystem becomes a bootable OSTree commit, written with libostree
//! (no `ostree` CLI, no copy of the input tree). The OSTree layout is produced while committing:
//!
//! * kernel and initramfs go to `/usr/lib/modules/KVER/{vmlinuz,initramfs.img}` (from `/boot` or
//!   already there); the rest of `/boot` is dropped;
//! * `/etc` is committed as `/usr/etc`;
//! * `/var` (and `/root`, `/home`, `/opt`, `/srv`, `/mnt`, `/usr/local`, which become symlinks into
//!   `/var`) are committed empty: their content is kept under `/usr/share/factory/var` and a
//!   tmpfiles.d file recreates every directory, symlink and file at boot;
//! * the top-level symlinks OSTree systems expect, `/sysroot` and `/ostree -> sysroot/ostree`;
//! * `/dev`, `/proc`, `/sys`, `/run`, `/tmp` are kept as empty directories;
//! * ownership, modes and xattrs are kept (libostree reads them from the files);
//! * the commit time is `SOURCE_DATE_EPOCH` when set.
//!
//! Everything happens in one libostree transaction: on any error it is aborted and the ref is untouched.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ostree::gio::prelude::*;
use ostree::{gio, glib};

use super::sign::GpgKey;

/// Path of the generated tmpfiles.d file inside the commit.
pub const TMPFILES_PATH: &str = "usr/lib/tmpfiles.d/imagebuilder-var.conf";
/// Where the content of `/var` (and the directories moved into it) is kept in the commit.
pub const FACTORY_VAR: &str = "/usr/share/factory/var";

/// Top-level symlinks of an OSTree system: (name in `/`, target).
pub const TOP_LEVEL_SYMLINKS: &[(&str, &str)] = &[
    ("home", "var/home"),
    ("root", "var/roothome"),
    ("opt", "var/opt"),
    ("srv", "var/srv"),
    ("mnt", "var/mnt"),
    ("media", "run/media"),
    ("ostree", "sysroot/ostree"),
];

/// Directories whose content moves into `/var`: (path in the rootfs, path under `/var`).
const MOVED_TO_VAR: &[(&str, &str)] = &[
    ("var", ""),
    ("root", "roothome"),
    ("home", "home"),
    ("opt", "opt"),
    ("srv", "srv"),
    ("mnt", "mnt"),
    ("usr/local", "usrlocal"),
];

/// Directories committed empty.
const EMPTIED: &[&str] = &["/var", "/boot", "/dev", "/proc", "/sys", "/run", "/tmp"];

/// Top-level entries never committed as they are (recreated, moved or dropped).
const DROPPED: &[&str] = &[
    "/etc",
    "/home",
    "/root",
    "/opt",
    "/srv",
    "/mnt",
    "/media",
    "/usr/local",
    "/ostree",
    "/sysroot",
    "/debootstrap",
    "/lost+found",
    "/vmlinuz",
    "/vmlinuz.old",
    "/initrd.img",
    "/initrd.img.old",
];

/// What to commit and how.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The ref to update, e.g. `demo/x86_64/base`.
    pub reference: String,
    /// The commit's `version` metadata.
    pub version: Option<String>,
    /// Commit subject; a default naming the version is used when empty.
    pub subject: Option<String>,
    /// Which kernel to use when the rootfs holds several.
    pub kernel_version: Option<String>,
    /// Commit timestamp (seconds since the epoch); `None` = `SOURCE_DATE_EPOCH` or now.
    pub timestamp: Option<u64>,
    /// Sign the commit (and the summary) with this key.
    pub gpg: Option<GpgKey>,
    /// Create the repository (archive mode) when it does not exist, once the input is checked.
    pub init_repo: bool,
    /// Worker threads writing objects; 0 = one per CPU.
    pub threads: usize,
}

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Committed {
    pub reference: String,
    pub commit: String,
    pub parent: Option<String>,
    pub kernel_version: String,
    pub version: Option<String>,
}

/// Errors about the kernel of a rootfs; callers (and tests) match on them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KernelError {
    #[error("no kernel found in {rootfs}: searched {searched}")]
    NotFound { rootfs: PathBuf, searched: String },
    #[error("{rootfs} holds several kernels ({found}); choose one with --kernel-version")]
    Ambiguous { rootfs: PathBuf, found: String },
    #[error("kernel {wanted} (--kernel-version) not found in {rootfs}; kernels present: {found}")]
    NotPresent {
        rootfs: PathBuf,
        wanted: String,
        found: String,
    },
    #[error("no initramfs for kernel {kver} in {rootfs}: searched {searched}")]
    NoInitramfs {
        rootfs: PathBuf,
        kver: String,
        searched: String,
    },
}

/// The kernel chosen for the commit; paths are relative to the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelChoice {
    pub kver: String,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

/// Kernel search locations, for error messages.
const KERNEL_GLOBS: &[&str] = &["boot/vmlinuz-KVER", "usr/lib/modules/KVER/vmlinuz"];
fn initramfs_candidates(kver: &str) -> [PathBuf; 3] {
    [
        PathBuf::from(format!("usr/lib/modules/{kver}/initramfs.img")),
        PathBuf::from(format!("boot/initramfs-{kver}.img")),
        PathBuf::from(format!("boot/initrd.img-{kver}")),
    ]
}

/// Finds the kernel and initramfs of `rootfs` (`/boot/vmlinuz-KVER` or `/usr/lib/modules/KVER/vmlinuz`).
pub fn find_kernel(rootfs: &Path, wanted: Option<&str>) -> Result<KernelChoice, KernelError> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(rootfs.join("boot")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(kver) = name.strip_prefix("vmlinuz-")
                && is_regular(&e.path())
            {
                found.push((kver.to_owned(), PathBuf::from("boot").join(&name)));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(rootfs.join("usr/lib/modules")) {
        for e in rd.flatten() {
            let kver = e.file_name().to_string_lossy().into_owned();
            let rel = PathBuf::from("usr/lib/modules").join(&kver).join("vmlinuz");
            if is_regular(&rootfs.join(&rel)) {
                // A kernel already in the OSTree location wins over a copy in /boot.
                found.retain(|(k, _)| *k != kver);
                found.push((kver, rel));
            }
        }
    }
    found.sort();
    let names = || {
        found
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (kver, kernel) = match wanted {
        Some(w) => match found.iter().find(|(k, _)| k == w) {
            Some(f) => f.clone(),
            None => {
                return Err(KernelError::NotPresent {
                    rootfs: rootfs.to_owned(),
                    wanted: w.to_owned(),
                    found: if found.is_empty() {
                        "none".into()
                    } else {
                        names()
                    },
                });
            }
        },
        None => match found.len() {
            0 => {
                return Err(KernelError::NotFound {
                    rootfs: rootfs.to_owned(),
                    searched: KERNEL_GLOBS
                        .iter()
                        .map(|g| format!("{}/{g}", rootfs.display()))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            1 => found[0].clone(),
            _ => {
                return Err(KernelError::Ambiguous {
                    rootfs: rootfs.to_owned(),
                    found: names(),
                });
            }
        },
    };
    let candidates = initramfs_candidates(&kver);
    let Some(initramfs) = candidates.iter().find(|p| is_regular(&rootfs.join(p))) else {
        return Err(KernelError::NoInitramfs {
            rootfs: rootfs.to_owned(),
            searched: candidates
                .iter()
                .map(|p| rootfs.join(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            kver,
        });
    };
    Ok(KernelChoice {
        kver,
        kernel,
        initramfs: initramfs.clone(),
    })
}

fn is_regular(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

/// One entry that lived under `/var` (or a directory moved there), as recreated by tmpfiles.d.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarEntry {
    Dir {
        path: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    File {
        path: String,
    },
}

impl VarEntry {
    fn path(&self) -> &str {
        match self {
            VarEntry::Dir { path, .. }
            | VarEntry::Symlink { path, .. }
            | VarEntry::File { path } => path,
        }
    }
}

/// Walks the directories that move into `/var` and lists what they hold (sorted, parents first).
pub fn scan_var(rootfs: &Path) -> Result<Vec<VarEntry>> {
    let mut out = Vec::new();
    for (src, dst) in MOVED_TO_VAR {
        let dir = rootfs.join(src);
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let base = if dst.is_empty() {
            "/var".to_owned()
        } else {
            format!("/var/{dst}")
        };
        scan_dir(&dir, &base, &meta, &mut out)?;
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out.dedup_by(|a, b| a.path() == b.path());
    Ok(out)
}

fn scan_dir(
    dir: &Path,
    path: &str,
    meta: &std::fs::Metadata,
    out: &mut Vec<VarEntry>,
) -> Result<()> {
    out.push(VarEntry::Dir {
        path: path.to_owned(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    });
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            bail!("{}: file names under /var must be UTF-8", p.display());
        };
        let child = format!("{path}/{name}");
        let m =
            std::fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if m.is_dir() {
            scan_dir(&p, &child, &m, out)?;
        } else if m.is_symlink() {
            let target = std::fs::read_link(&p)
                .with_context(|| format!("reading symlink {}", p.display()))?;
            out.push(VarEntry::Symlink {
                path: child,
                target: target.to_string_lossy().into_owned(),
            });
        } else if m.is_file() {
            out.push(VarEntry::File { path: child });
        } else {
            bail!("{}", special_file_error(&p));
        }
    }
    Ok(())
}

/// The error for a device node, socket or fifo outside the directories committed empty.
pub(super) fn special_file_error(p: &Path) -> String {
    format!(
        "{} is a device node, socket or fifo: OSTree commits hold only files, directories and \
         symlinks (the content of /dev, /proc, /sys, /run, /tmp and /boot is dropped; remove it)",
        p.display()
    )
}

/// The tmpfiles.d configuration that recreates `/var` at boot: the directories the top-level symlinks
/// point to, then every directory (`d`, with its mode and owner), symlink (`L`) and file (`C`, copied
/// from [`FACTORY_VAR`]) the rootfs held.
pub fn tmpfiles_conf(entries: &[VarEntry]) -> String {
    let mut out = String::from(
        "# Generated by imagebuilder: recreates what the root filesystem held in /var (and in the\n\
         # directories that are symlinks into /var on OSTree systems). Files are copied from\n\
         # /usr/share/factory/var on first boot.\n",
    );
    let base: [(&str, u32); 7] = [
        ("/var/home", 0o755),
        ("/var/roothome", 0o700),
        ("/var/opt", 0o755),
        ("/var/srv", 0o755),
        ("/var/mnt", 0o755),
        ("/var/usrlocal", 0o755),
        ("/run/media", 0o755),
    ];
    for (path, mode) in base {
        if !entries.iter().any(|e| e.path() == path) {
            let _ = writeln!(out, "d {} {mode:04o} 0 0 - -", escape(path));
        }
    }
    for e in entries {
        match e {
            VarEntry::Dir {
                path,
                mode,
                uid,
                gid,
            } => {
                let _ = writeln!(out, "d {} {mode:04o} {uid} {gid} - -", escape(path));
            }
            VarEntry::Symlink { path, target } => {
                let _ = writeln!(out, "L {} - - - - {}", escape(path), escape(target));
            }
            VarEntry::File { path } => {
                let _ = writeln!(
                    out,
                    "C {} - - - - {}",
                    escape(path),
                    escape(&format!("/usr/share/factory{path}"))
                );
            }
        }
    }
    out
}

/// Escapes a tmpfiles.d field: C-style `\xNN` for whitespace, quotes, backslashes and non-ASCII,
/// `%%` for the specifier character.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'%' => out.push_str("%%"),
            b'\\' | b'"' | b'\'' => {
                let _ = write!(out, "\\x{b:02x}");
            }
            0x21..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// Whether an entry of the root filesystem is committed at its own place. `path` is absolute within
/// the rootfs (`/etc`, `/var/lib`…), as libostree's commit filter sees it.
/// The directories of `EMPTIED` are not walked at all (libostree refuses device nodes and sockets
/// before any filter sees them); they are recreated empty with their own metadata.
pub fn keep_in_root(path: &str) -> bool {
    if DROPPED.contains(&path) || EMPTIED.contains(&path) {
        return false;
    }
    !EMPTIED.iter().any(|d| {
        path.strip_prefix(d)
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The commit time: `SOURCE_DATE_EPOCH` when set (and valid), else now.
pub fn timestamp_from_env() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<u64>().with_context(|| {
            format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds since the epoch")
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

/// Checks a `version` metadata value: non-empty, printable, no whitespace.
pub fn validate_version(v: &str) -> Result<()> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("invalid version {v:?}: it must be non-empty and contain no whitespace");
    }
    Ok(())
}

/// Commits `rootfs` into the repository at `repo_path` (which must exist) under `opts.reference`,
/// updates the summary (signed when `opts.gpg` is set) and returns the new commit.
pub fn commit_rootfs(repo_path: &Path, rootfs: &Path, opts: &CommitOptions) -> Result<Committed> {
    ostree::validate_rev(&opts.reference)
        .with_context(|| format!("invalid ref {:?}", opts.reference))?;
    if let Some(v) = &opts.version {
        validate_version(v)?;
    }
    let meta = std::fs::metadata(rootfs)
        .with_context(|| format!("rootfs {} does not exist", rootfs.display()))?;
    if !meta.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    if !rootfs.join("usr").is_dir() {
        bail!("rootfs {} has no /usr directory", rootfs.display());
    }
    let has_etc = rootfs.join("etc").is_dir();
    if has_etc && rootfs.join("usr/etc").exists() {
        bail!(
            "rootfs {} has both /etc and /usr/etc; remove one of them",
            rootfs.display()
        );
    }
    let kernel = find_kernel(rootfs, opts.kernel_version.as_deref())?;
    if let Some(key) = &opts.gpg {
        key.check_available()?;
    }
    let timestamp = match opts.timestamp {
        Some(t) => t,
        None => timestamp_from_env()?,
    };
    let var_entries = scan_var(rootfs)?;
    let repo = if opts.init_repo {
        super::repo::open_or_init_archive(repo_path)?
    } else {
        super::repo::open(repo_path)?
    };
    let parent = super::repo::resolve(&repo, &opts.reference)?;

    repo.prepare_transaction(gio::Cancellable::NONE)
        .context("starting an OSTree transaction")?;
    let written = write_commit(
        &repo,
        rootfs,
        &kernel,
        &var_entries,
        parent.as_deref(),
        timestamp,
        opts,
    );
    let commit = match written {
        Ok(commit) => {
            repo.transaction_set_ref(None, &opts.reference, Some(&commit));
            repo.commit_transaction(gio::Cancellable::NONE)
                .context("committing the OSTree transaction")?;
            commit
        }
        Err(e) => {
            if let Err(abort) = repo.abort_transaction(gio::Cancellable::NONE) {
                tracing::warn!("aborting the OSTree transaction: {abort}");
            }
            return Err(e);
        }
    };
    super::repo::update_summary(&repo)?;
    if let Some(key) = &opts.gpg {
        super::sign::sign_summary(&repo, key)?;
    }
    tracing::info!("{} => {commit}", opts.reference);
    Ok(Committed {
        reference: opts.reference.clone(),
        commit,
        parent,
        kernel_version: kernel.kver,
        version: opts.version.clone(),
    })
}

type Filter = Box<dyn Fn(&ostree::Repo, &str, &gio::FileInfo) -> ostree::RepoCommitFilterResult>;

fn modifier(filter: Filter) -> ostree::RepoCommitModifier {
    ostree::RepoCommitModifier::new(ostree::RepoCommitModifierFlags::NONE, Some(filter))
}

pub(super) fn verdict(keep: bool) -> ostree::RepoCommitFilterResult {
    if keep {
        ostree::RepoCommitFilterResult::Allow
    } else {
        ostree::RepoCommitFilterResult::Skip
    }
}

pub(super) fn write_dir(
    repo: &ostree::Repo,
    dir: &Path,
    mtree: &ostree::MutableTree,
    filter: Filter,
) -> Result<()> {
    let path = dir
        .to_str()
        .with_context(|| format!("{}: path is not UTF-8", dir.display()))?;
    repo.write_dfd_to_mtree(
        ostree::AT_FDCWD,
        path,
        mtree,
        Some(&modifier(filter)),
        gio::Cancellable::NONE,
    )
    .with_context(|| format!("committing {}", dir.display()))
}

fn plain_job(src: PathBuf, target: &str) -> super::parallel::Job {
    super::parallel::Job {
        src,
        path: "/".into(),
        target: target.to_owned(),
        kind: super::parallel::Kind::Subtree,
        root_filter: false,
        // Unknown; scheduled after the big planned jobs.
        weight: 0,
    }
}

/// A directory metadata object for a new directory (root-owned).
fn dirmeta(repo: &ostree::Repo, mode: u32) -> Result<String> {
    let info = gio::FileInfo::new();
    info.set_attribute_uint32("unix::uid", 0);
    info.set_attribute_uint32("unix::gid", 0);
    info.set_attribute_uint32("unix::mode", 0o040000 | mode);
    let v = ostree::create_directory_metadata(&info, None);
    let c = repo
        .write_metadata(
            ostree::ObjectType::DirMeta,
            None,
            &v,
            gio::Cancellable::NONE,
        )
        .context("writing directory metadata")?;
    Ok(c.to_string())
}

/// A directory metadata object copied from an existing directory (owner, mode, xattrs).
fn dirmeta_from(repo: &ostree::Repo, dir: &Path) -> Result<String> {
    let m = std::fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let path = dir
        .to_str()
        .with_context(|| format!("{}: path is not UTF-8", dir.display()))?;
    let xattrs = ostree::fs_get_all_xattrs_at(ostree::AT_FDCWD, path, gio::Cancellable::NONE)
        .with_context(|| format!("reading xattrs of {}", dir.display()))?;
    let info = gio::FileInfo::new();
    info.set_attribute_uint32("unix::uid", m.uid());
    info.set_attribute_uint32("unix::gid", m.gid());
    info.set_attribute_uint32("unix::mode", m.mode());
    let v = ostree::create_directory_metadata(&info, Some(&xattrs));
    let c = repo
        .write_metadata(
            ostree::ObjectType::DirMeta,
            None,
            &v,
            gio::Cancellable::NONE,
        )
        .with_context(|| format!("writing directory metadata of {}", dir.display()))?;
    Ok(c.to_string())
}

/// Writes a root-owned symlink object and returns its checksum.
fn symlink_object(repo: &ostree::Repo, target: &str) -> Result<String> {
    let info = gio::FileInfo::new();
    info.set_file_type(gio::FileType::SymbolicLink);
    info.set_symlink_target(target);
    info.set_size(0);
    info.set_attribute_uint32("unix::uid", 0);
    info.set_attribute_uint32("unix::gid", 0);
    info.set_attribute_uint32("unix::mode", 0o120777);
    let input = gio::MemoryInputStream::new();
    let (stream, len) =
        ostree::raw_file_to_content_stream(&input, &info, None, gio::Cancellable::NONE)
            .context("encoding a symlink")?;
    let c = repo
        .write_content(None, &stream, len, gio::Cancellable::NONE)
        .with_context(|| format!("writing symlink -> {target}"))?;
    Ok(c.to_string())
}

/// Writes a root-owned regular file object (mode 0644) and returns its checksum.
fn file_object(repo: &ostree::Repo, content: &[u8]) -> Result<String> {
    let info = gio::FileInfo::new();
    info.set_file_type(gio::FileType::Regular);
    info.set_size(content.len() as i64);
    info.set_attribute_uint32("unix::uid", 0);
    info.set_attribute_uint32("unix::gid", 0);
    info.set_attribute_uint32("unix::mode", 0o100644);
    let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from(content));
    let (stream, len) =
        ostree::raw_file_to_content_stream(&input, &info, None, gio::Cancellable::NONE)
            .context("encoding a file")?;
    let c = repo
        .write_content(None, &stream, len, gio::Cancellable::NONE)
        .context("writing a file object")?;
    Ok(c.to_string())
}

/// `mtree` at the relative `path` (split on `/`), creating missing directories root-owned 0755.
fn ensure_path(
    repo: &ostree::Repo,
    root: &ostree::MutableTree,
    path: &str,
) -> Result<ostree::MutableTree> {
    let mut cur = root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let (file, sub) = match cur.lookup(part) {
            Ok(found) => found,
            Err(e) if e.matches(gio::IOErrorEnum::NotFound) => (None, None),
            Err(e) => {
                return Err(e).with_context(|| format!("looking up {part} in the commit tree"));
            }
        };
        if file.is_some() {
            bail!("/{path}: {part} is a file or symlink in the root filesystem, not a directory");
        }
        cur = match sub {
            Some(sub) => sub,
            None => {
                let sub = cur
                    .ensure_dir(part)
                    .with_context(|| format!("creating {part} in the commit tree"))?;
                sub.set_metadata_checksum(&dirmeta(repo, 0o755)?);
                sub
            }
        };
    }
    Ok(cur)
}

fn write_commit(
    repo: &ostree::Repo,
    rootfs: &Path,
    kernel: &KernelChoice,
    var_entries: &[VarEntry],
    parent: Option<&str>,
    timestamp: u64,
    opts: &CommitOptions,
) -> Result<String> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // 1. The root filesystem, minus what is moved, emptied or recreated; 2. /etc as /usr/etc; and the
    //    content of /var and of the directories that become symlinks into it, kept in the factory
    //    directory. All written in parallel jobs.
    let mut jobs = super::parallel::plan_root(rootfs, threads, &keep_in_root)?;
    if rootfs.join("etc").is_dir() {
        jobs.push(plain_job(rootfs.join("etc"), "usr/etc"));
    }
    for (src, dst) in MOVED_TO_VAR {
        let dir = rootfs.join(src);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            let target = format!("{}/{dst}", &FACTORY_VAR[1..]);
            jobs.push(plain_job(dir, target.trim_end_matches('/')));
        }
    }
    let outputs = super::parallel::run(repo, &jobs, threads)?;
    let root = ostree::MutableTree::new();
    super::parallel::assemble(repo, &root, &jobs, &outputs, &|p| {
        ensure_path(repo, &root, p)
    })?;
    for d in EMPTIED {
        let dir = rootfs.join(&d[1..]);
        if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            root.ensure_dir(&d[1..])
                .with_context(|| format!("creating {d} in the commit tree"))?
                .set_metadata_checksum(&dirmeta_from(repo, &dir)?);
        }
    }
    // 3. Kernel and initramfs into /usr/lib/modules/KVER.
    let moddir = ensure_path(repo, &root, &format!("usr/lib/modules/{}", kernel.kver))?;
    for (src, name) in [
        (&kernel.kernel, "vmlinuz"),
        (&kernel.initramfs, "initramfs.img"),
    ] {
        if src.starts_with("usr") {
            continue; // already in place, committed with /usr
        }
        let dir = rootfs.join(src.parent().unwrap_or(Path::new("")));
        let wanted = format!("/{}", src.file_name().unwrap_or_default().to_string_lossy());
        let tmp = ostree::MutableTree::new();
        let w = wanted.clone();
        write_dir(
            repo,
            &dir,
            &tmp,
            Box::new(move |_, path, _| verdict(path == "/" || path == w)),
        )?;
        let files = tmp.copy_files();
        let csum = files
            .get(wanted.trim_start_matches('/'))
            .with_context(|| format!("{} was not committed", src.display()))?;
        moddir
            .replace_file(name, csum)
            .with_context(|| format!("placing {name} in usr/lib/modules/{}", kernel.kver))?;
    }
    // 4. The tmpfiles.d file that recreates /var.
    let (tmpfiles_dir, tmpfiles_name) = TMPFILES_PATH.rsplit_once('/').context("tmpfiles path")?;
    ensure_path(repo, &root, tmpfiles_dir)?
        .replace_file(
            tmpfiles_name,
            &file_object(repo, tmpfiles_conf(var_entries).as_bytes())?,
        )
        .context("adding the tmpfiles.d file")?;
    // 5. Top-level layout: symlinks into /var, /usr/local, /sysroot.
    for (name, target) in TOP_LEVEL_SYMLINKS {
        root.replace_file(name, &symlink_object(repo, target)?)
            .with_context(|| format!("adding /{name} -> {target}"))?;
    }
    ensure_path(repo, &root, "usr")?
        .replace_file("local", &symlink_object(repo, "../var/usrlocal")?)
        .context("adding /usr/local -> ../var/usrlocal")?;
    ensure_path(repo, &root, "sysroot")?;

    let root_file = repo
        .write_mtree(&root, gio::Cancellable::NONE)
        .context("writing the commit tree")?;
    let root_file = root_file
        .downcast::<ostree::RepoFile>()
        .map_err(|_| anyhow::anyhow!("libostree returned a tree that is not a RepoFile"))?;
    let dict = glib::VariantDict::new(None);
    if let Some(v) = &opts.version {
        dict.insert("version", v.as_str());
    }
    ostree::commit_metadata_for_bootable(&root_file, &dict, gio::Cancellable::NONE)
        .context("checking the committed tree is bootable")?;
    let subject = match (&opts.subject, &opts.version) {
        (Some(s), _) => s.clone(),
        (None, Some(v)) => format!("{} {v}", opts.reference),
        (None, None) => opts.reference.clone(),
    };
    let commit = repo
        .write_commit_with_time(
            parent,
            Some(&subject),
            None,
            Some(&dict.end()),
            &root_file,
            timestamp,
            gio::Cancellable::NONE,
        )
        .context("writing the commit object")?
        .to_string();
    if let Some(key) = &opts.gpg {
        super::sign::sign_commit(repo, &commit, key)?;
    }
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_filter_moves_empties_and_drops() {
        for kept in ["/", "/usr", "/usr/bin/sh", "/bin", "/etcfoo", "/variety"] {
            assert!(keep_in_root(kept), "{kept}");
        }
        for dropped in [
            "/etc",
            "/var",
            "/tmp",
            "/var/lib",
            "/var/lib/dpkg/status",
            "/boot/vmlinuz-6.1",
            "/dev/null",
            "/tmp/x",
            "/home",
            "/root",
            "/usr/local",
            "/vmlinuz",
            "/debootstrap",
        ] {
            assert!(!keep_in_root(dropped), "{dropped}");
        }
    }

    #[test]
    fn tmpfiles_lists_dirs_links_files_and_base() {
        let entries = vec![
            VarEntry::Dir {
                path: "/var".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
            VarEntry::Dir {
                path: "/var/mail".into(),
                mode: 0o2775,
                uid: 0,
                gid: 8,
            },
            VarEntry::Symlink {
                path: "/var/run".into(),
                target: "/run".into(),
            },
            VarEntry::File {
                path: "/var/lib/a b%".into(),
            },
            VarEntry::Dir {
                path: "/var/roothome".into(),
                mode: 0o700,
                uid: 0,
                gid: 0,
            },
        ];
        let conf = tmpfiles_conf(&entries);
        assert!(conf.contains("d /var/mail 2775 0 8 - -\n"), "{conf}");
        assert!(conf.contains("L /var/run - - - - /run\n"), "{conf}");
        assert!(
            conf.contains("C /var/lib/a\\x20b%% - - - - /usr/share/factory/var/lib/a\\x20b%%\n"),
            "{conf}"
        );
        assert!(conf.contains("d /var/home 0755 0 0 - -\n"), "{conf}");
        assert!(conf.contains("d /run/media 0755 0 0 - -\n"), "{conf}");
        // Listed once, with the rootfs's own metadata.
        assert_eq!(conf.matches("/var/roothome ").count(), 1, "{conf}");
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn kernel_search_rules() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let err = find_kernel(r, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KernelError::NotFound { .. }));
        assert!(
            msg.contains("boot/vmlinuz-KVER") && msg.contains("usr/lib/modules/KVER/vmlinuz"),
            "{msg}"
        );

        touch(&r.join("boot/vmlinuz-6.1.0-1-amd64"));
        let err = find_kernel(r, None).unwrap_err();
        assert!(matches!(err, KernelError::NoInitramfs { .. }), "{err}");
        assert!(
            err.to_string().contains("initrd.img-6.1.0-1-amd64"),
            "{err}"
        );
        touch(&r.join("boot/initrd.img-6.1.0-1-amd64"));
        let k = find_kernel(r, None).unwrap();
        assert_eq!(k.kver, "6.1.0-1-amd64");
        assert_eq!(k.kernel, Path::new("boot/vmlinuz-6.1.0-1-amd64"));
        assert_eq!(k.initramfs, Path::new("boot/initrd.img-6.1.0-1-amd64"));

        touch(&r.join("usr/lib/modules/6.2.0/vmlinuz"));
        touch(&r.join("usr/lib/modules/6.2.0/initramfs.img"));
        let err = find_kernel(r, None).unwrap_err();
        assert!(matches!(err, KernelError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("6.1.0-1-amd64, 6.2.0"), "{err}");
        let k = find_kernel(r, Some("6.2.0")).unwrap();
        assert_eq!(
            k.initramfs,
            Path::new("usr/lib/modules/6.2.0/initramfs.img")
        );
        let err = find_kernel(r, Some("9.9")).unwrap_err();
        assert!(matches!(err, KernelError::NotPresent { .. }), "{err}");
    }

    #[test]
    fn escape_rules() {
        assert_eq!(escape("/var/lib/x"), "/var/lib/x");
        assert_eq!(escape("a b\t\"%"), "a\\x20b\\x09\\x22%%");
        assert_eq!(escape("é"), "\\xc3\\xa9");
    }

    #[test]
    fn version_validation() {
        validate_version("38.1.2").unwrap();
        assert!(validate_version("").is_err());
        assert!(validate_version("1 2").is_err());
    }
}
