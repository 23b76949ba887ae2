//! The output directory of an image build: one build at a time, one staging directory per build,
//! and what a killed build leaves behind.
//!
//! * **Lock**: a build (and `imagebuilder clean`) first takes an exclusive `flock` on
//!   `OUTDIR/.imagebuilder.lock`, which then holds the holder's pid and command line. A second
//!   build into the same OUTDIR fails at once, naming the holder. The lock dies with its process,
//!   so a lock file left by a killed build is no obstacle; the holder removes the file when done.
//! * **Staging**: everything a build writes before publication lives in its own
//!   `OUTDIR/.imagebuilder-work-XXXXXX/`: `stage/` (the deployment and the per-filesystem trees),
//!   `out/` (outputs being written), `logs/` (this build's logs) and XFS mount points. Outputs are
//!   renamed from `out/` into OUTDIR when the build succeeds (see [`crate::build::publish`]).
//! * **Logs**: on success the build's logs move into `OUTDIR/logs/` ([`publish_logs`]): with
//!   `--overwrite` they replace the previous `logs/` as a whole, otherwise they replace files of the
//!   same names. A failed build leaves the previous logs alone and puts its own under
//!   `OUTDIR/logs/failed-NAME/` ([`keep_failed_logs`]), replacing an older failure's.
//! * **Stale entries**: after a SIGKILL (no handler runs) the staging directory stays, possibly
//!   with an XFS filesystem still mounted in it and its loop device attached. Whoever holds the
//!   lock next — a build or `imagebuilder clean` — removes every `.imagebuilder-*` entry of OUTDIR
//!   ([`sweep`]): mounts below it are unmounted (from `/proc/self/mountinfo`), loop devices whose
//!   backing file is below it are detached (`/sys/block/loop*/loop/backing_file`), then it is
//!   deleted. Holding the lock guarantees that no live build owns them.

use std::fs::File;
#[cfg(test)]
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::blockdev::mounts::{self, LoopInfo};
use crate::util::cleanup::Guard;

/// The lock file in OUTDIR (not an `.imagebuilder-*` staging entry).
pub const LOCK_FILE: &str = ".imagebuilder.lock";
/// Every temporary entry a build makes in OUTDIR starts with this.
pub const STAGING_PREFIX: &str = ".imagebuilder-";

/// The exclusive right to build into (or clean) one output directory.
#[derive(Debug)]
pub struct OutdirLock {
    path: PathBuf,
    _file: File,
    guard: Option<Guard>,
}

fn describe_self() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut line = args.join(" ").replace(['\n', '\r'], " ");
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    format!("pid {}: {line}", std::process::id())
}

/// What the lock file says about its holder (the holder writes it right after locking).
fn holder(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let text = text.trim();
        if !text.is_empty() {
            return text.to_string();
        }
        if Instant::now() >= deadline {
            return "pid unknown".into();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl OutdirLock {
    /// Creates `outdir` if needed and locks it; fails at once, naming the holder's pid and
    /// command, when another process holds it. An interruption while the lock is held sweeps
    /// OUTDIR's staging entries ([`sweep`]) and removes the lock file.
    pub fn acquire(outdir: &Path) -> Result<OutdirLock> {
        use rustix::fs::{FlockOperation, flock};
        std::fs::create_dir_all(outdir)
            .with_context(|| format!("creating output directory {}", outdir.display()))?;
        let path = outdir.join(LOCK_FILE);
        for _ in 0..20 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .with_context(|| format!("opening the lock file {}", path.display()))?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => bail!(
                    "{} is in use by another build ({}); only one build per output directory runs \
                     at a time",
                    outdir.display(),
                    holder(&path)
                ),
                Err(e) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()));
                }
            }
            // The previous holder removes the file when it is done: if it did so after we opened
            // it, we locked a file nobody else will see. Lock the one that is there instead.
            let ours = file.metadata()?;
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => {}
                _ => continue,
            }
            file.set_len(0)?;
            file.write_all_at(format!("{}\n", describe_self()).as_bytes(), 0)
                .with_context(|| format!("writing {}", path.display()))?;
            let (dir, lock) = (outdir.to_path_buf(), path.clone());
            let guard = crate::util::cleanup::register(
                format!("cleaning {}", outdir.display()),
                move || {
                    let r = sweep(&dir);
                    let _ = std::fs::remove_file(&lock);
                    match r.errors.first() {
                        Some(e) => bail!("{e}"),
                        None => Ok(()),
                    }
                },
            );
            guard.names_outdir(outdir.to_path_buf());
            return Ok(OutdirLock {
                path,
                _file: file,
                guard: Some(guard),
            });
        }
        bail!(
            "could not lock {}: the lock file keeps being replaced",
            path.display()
        )
    }
}

impl Drop for OutdirLock {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            g.disarm();
        }
        // Still holding the lock: a process that opened this file before it goes sees it replaced
        // (see `acquire`).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A build's staging directory `OUTDIR/.imagebuilder-work-XXXXXX`, removed (after unmounting and
/// detaching whatever lies below it) when dropped or when the build is interrupted.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    guard: Guard,
}

impl StagingDir {
    pub fn create(outdir: &Path) -> Result<StagingDir> {
        let path = tempfile::Builder::new()
            .prefix(".imagebuilder-work-")
            .tempdir_in(outdir)
            .with_context(|| format!("creating a work directory in {}", outdir.display()))?
            .keep();
        let p = path.clone();
        let guard = crate::util::cleanup::register_repeatable(
            format!("removing {}", path.display()),
            move || mounts::remove_tree(&p).map(drop),
        );
        Ok(StagingDir { path, guard })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes it now, reporting failure.
    pub fn remove(self) -> Result<()> {
        self.guard.run()
    }
}

/// What [`sweep`] removed from an output directory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub outdir: PathBuf,
    /// Mount points unmounted below the stale entries.
    pub unmounted: Vec<PathBuf>,
    /// Loop devices detached (their backing file was below a stale entry).
    pub detached: Vec<LoopInfo>,
    /// Stale entries removed.
    pub removed: Vec<PathBuf>,
    /// What could not be removed, and why.
    pub errors: Vec<String>,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.unmounted.is_empty()
            && self.detached.is_empty()
            && self.removed.is_empty()
            && self.errors.is_empty()
    }

    /// One line per thing done, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        for m in &self.unmounted {
            v.push(format!("unmounted {}", m.display()));
        }
        for l in &self.detached {
            v.push(format!(
                "detached {} (backing file {})",
                l.device.display(),
                l.backing_file.display()
            ));
        }
        for r in &self.removed {
            v.push(format!("removed {}", r.display()));
        }
        for e in &self.errors {
            v.push(format!("could not clean: {e}"));
        }
        v
    }
}

/// The staging entries (`.imagebuilder-*`) of `outdir`, by name.
pub fn staging_entries(outdir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(outdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).with_context(|| format!("reading {}", outdir.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("reading {}", outdir.display()))?;
        if is_staging_name(&e.file_name().to_string_lossy()) {
            v.push(e.path());
        }
    }
    v.sort();
    Ok(v)
}

/// Whether a file name in OUTDIR is one of a build's temporary entries.
pub fn is_staging_name(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX) && name.len() > STAGING_PREFIX.len()
}

/// Removes every staging entry of `outdir` (see the module documentation). The caller must hold
/// the [`OutdirLock`]. Failures are collected in the report; the other entries are still removed.
pub fn sweep(outdir: &Path) -> SweepReport {
    let mut report = SweepReport {
        outdir: outdir.to_path_buf(),
        ..Default::default()
    };
    let entries = match staging_entries(outdir) {
        Ok(e) => e,
        Err(e) => {
            report.errors.push(format!("{e:#}"));
            return report;
        }
    };
    for e in entries {
        match mounts::remove_tree(&e) {
            Ok(r) => {
                report.unmounted.extend(r.unmounted);
                report.detached.extend(r.detached);
                report.removed.push(e);
            }
            Err(err) => report.errors.push(format!("{err:#}")),
        }
    }
    report
}

/// `imagebuilder clean OUTDIR`: takes the lock (failing, naming the holder, while a build runs)
/// and sweeps the stale staging entries.
pub fn clean(outdir: &Path) -> Result<SweepReport> {
    if !outdir.is_dir() {
        bail!("{}: no such directory", outdir.display());
    }
    let lock = OutdirLock::acquire(outdir)?;
    let report = sweep(outdir);
    drop(lock);
    Ok(report)
}

fn exchange(a: &Path, b: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE)
        .with_context(|| format!("exchanging {} and {}", a.display(), b.display()))
}

/// Moves the build's log directory `new` into `OUTDIR/logs` after a successful build: with
/// `replace_all` (`--overwrite`) the previous `logs/` is replaced as a whole (an atomic exchange,
/// then the old one is removed), otherwise each entry replaces the one of the same name. Either
/// way a previous failure's `logs/failed-NAME/` goes.
pub fn publish_logs(new: &Path, outdir: &Path, name: &str, replace_all: bool) -> Result<()> {
    let logs = outdir.join("logs");
    if std::fs::symlink_metadata(&logs).is_err() {
        return std::fs::rename(new, &logs)
            .with_context(|| format!("moving the build's logs to {}", logs.display()));
    }
    if replace_all {
        exchange(new, &logs)?;
        return mounts::remove_tree(new)
            .map(drop)
            .with_context(|| "removing the previous logs".to_string());
    }
    for e in std::fs::read_dir(new).with_context(|| format!("reading {}", new.display()))? {
        let e = e?;
        let dst = logs.join(e.file_name());
        if e.file_type()?.is_dir() && dst.is_dir() {
            exchange(&e.path(), &dst)?;
            mounts::remove_tree(&e.path())?;
        } else {
            std::fs::rename(e.path(), &dst)
                .with_context(|| format!("moving a log to {}", dst.display()))?;
        }
    }
    mounts::remove_tree(&logs.join(format!("failed-{name}")))?;
    Ok(())
}

/// Keeps a failed build's log directory `new` as `OUTDIR/logs/failed-NAME/` (replacing an older
/// one), leaving the rest of `OUTDIR/logs` alone. Returns where it went.
pub fn keep_failed_logs(new: &Path, outdir: &Path, name: &str) -> Result<PathBuf> {
    let logs = outdir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let dst = logs.join(format!("failed-{name}"));
    mounts::remove_tree(&dst)?;
    std::fs::rename(new, &dst)
        .with_context(|| format!("moving the failed build's logs to {}", dst.display()))?;
    Ok(dst)
}

/// The lock file's text, for tests and messages.
#[cfg(test)]
fn lock_holder(outdir: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(outdir.join(LOCK_FILE))
        .ok()?
        .read_to_string(&mut s)
        .ok()?;
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_holder_and_the_file_goes_with_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let a = OutdirLock::acquire(&out).unwrap();
        let held = lock_holder(&out).unwrap();
        assert!(
            held.starts_with(&format!("pid {}: ", std::process::id())),
            "{held}"
        );
        // flock locks belong to the open file: a second open in the same process conflicts too.
        let e = OutdirLock::acquire(&out).unwrap_err().to_string();
        assert!(e.contains("is in use by another build (pid "), "{e}");
        assert!(e.contains(&format!("pid {}:", std::process::id())), "{e}");
        drop(a);
        assert!(!out.join(LOCK_FILE).exists());
        let b = OutdirLock::acquire(&out).unwrap();
        drop(b);
    }

    #[test]
    fn sweep_removes_only_staging_entries() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        std::fs::create_dir_all(out.join(".imagebuilder-work-abc/stage/x")).unwrap();
        std::fs::write(out.join(".imagebuilder-tmp-1.qcow2"), b"partial").unwrap();
        std::fs::create_dir(out.join(".imagebuilder-mnt-q")).unwrap();
        std::fs::write(out.join("disk.qcow2"), b"good").unwrap();
        std::fs::write(out.join(".imagebuilder-"), b"not ours").unwrap();
        std::fs::write(out.join(LOCK_FILE), b"pid 1: x").unwrap();
        std::fs::create_dir(out.join("logs")).unwrap();
        let r = clean(out).unwrap();
        let mut removed: Vec<String> = r
            .removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                ".imagebuilder-mnt-q",
                ".imagebuilder-tmp-1.qcow2",
                ".imagebuilder-work-abc"
            ]
        );
        assert!(r.errors.is_empty() && r.unmounted.is_empty() && r.detached.is_empty());
        let mut left: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".imagebuilder-", "disk.qcow2", "logs"]);
        assert!(clean(out).unwrap().is_empty());
    }

    #[test]
    fn logs_move_in_only_on_success() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        let mk = |dir: &str, files: &[(&str, &str)]| {
            let p = out.join(dir);
            std::fs::create_dir_all(&p).unwrap();
            for (n, t) in files {
                std::fs::write(p.join(n), t).unwrap();
            }
            p
        };
        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
        let first = mk("n1", &[("a.log", "one"), ("post-1.log", "p1")]);
        publish_logs(&first, out, "a", false).unwrap();
        assert_eq!(read("logs/a.log"), "one");

        let failed = mk("n2", &[("a.log", "FAILED")]);
        let kept = keep_failed_logs(&failed, out, "a").unwrap();
        assert_eq!(kept, out.join("logs/failed-a"));
        assert_eq!(read("logs/a.log"), "one", "a failure touched the good log");
        assert_eq!(read("logs/failed-a/a.log"), "FAILED");

        // Without --overwrite: same names replaced, others kept, the failure's logs gone.
        let other = mk("n3", &[("b.log", "bee"), ("post-1.log", "p2")]);
        publish_logs(&other, out, "b", false).unwrap();
        assert_eq!(
            (
                read("logs/a.log"),
                read("logs/b.log"),
                read("logs/post-1.log")
            ),
            ("one".into(), "bee".into(), "p2".into())
        );
        assert!(out.join("logs/failed-a").exists(), "another name's failure");
        // With --overwrite: the whole directory is the new build's.
        let again = mk("n4", &[("a.log", "two")]);
        publish_logs(&again, out, "a", true).unwrap();
        let names: Vec<_> = std::fs::read_dir(out.join("logs")).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(read("logs/a.log"), "two");
        assert!(!again.exists());
    }
}
