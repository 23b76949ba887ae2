//! What the kernel has mounted and attached below a directory: mount points from
//! `/proc/self/mountinfo`, loop devices from `/sys/block/loop*/loop/backing_file`, and the one
//! safe way to remove a staging tree (unmount and detach what lies below it first, and never
//! delete recursively through something still mounted).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::cmd::CommandExt;

/// Decodes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash) the
/// kernel writes in `/proc/*/mountinfo` and `/proc/mounts` paths.
pub fn unescape_mount_path(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(c) = u8::try_from(v) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points listed in a `mountinfo` text (field 5 of each line), in file order.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .collect()
}

/// The loop device's backing file as `/sys/block/loopN/loop/backing_file` shows it: the path,
/// without the newline and without the ` (deleted)` the kernel appends once the file is unlinked.
pub fn parse_backing_file(text: &str) -> Option<PathBuf> {
    let t = text.strip_suffix('\n').unwrap_or(text);
    let t = t.strip_suffix(" (deleted)").unwrap_or(t);
    (!t.is_empty()).then(|| PathBuf::from(t))
}

/// Mount points at or below `dir` (an absolute, canonical path), deepest first.
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(below(parse_mountinfo(&text), dir))
}

/// Whether `path` is itself a mount point.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text).iter().any(|m| m == path))
}

fn below(mut mounts: Vec<PathBuf>, dir: &Path) -> Vec<PathBuf> {
    mounts.retain(|m| m.starts_with(dir));
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

/// An attached loop device and its backing file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoopInfo {
    pub device: PathBuf,
    pub backing_file: PathBuf,
}

/// Every attached loop device whose backing file is at or below `dir`.
pub fn loops_under(dir: &Path) -> Result<Vec<LoopInfo>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir("/sys/block") {
        Ok(e) => e,
        Err(_) => return Ok(found),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue; // not attached
        };
        if let Some(back) = parse_backing_file(&text)
            && back.starts_with(dir)
        {
            found.push(LoopInfo {
                device: Path::new("/dev").join(&name),
                backing_file: back,
            });
        }
    }
    found.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(found)
}

/// `umount PATH`.
pub fn unmount(path: &Path) -> Result<()> {
    Command::new("umount")
        .arg(path)
        .run()
        .with_context(|| format!("unmounting {}", path.display()))
}

/// `losetup --detach DEV`.
pub fn detach(device: &Path) -> Result<()> {
    Command::new("losetup")
        .arg("--detach")
        .arg(device)
        .run()
        .with_context(|| format!("detaching {}", device.display()))
}

/// What [`release_below`] and [`remove_tree`] undid.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Released {
    pub unmounted: Vec<PathBuf>,
    pub detached: Vec<LoopInfo>,
}

/// Unmounts everything mounted at or below `dir` (deepest first), then detaches the loop devices
/// whose backing file lies below it.
pub fn release_below(dir: &Path) -> Result<Released> {
    let mut r = Released::default();
    for m in mounts_under(dir)? {
        unmount(&m)?;
        r.unmounted.push(m);
    }
    for l in loops_under(dir)? {
        detach(&l.device)?;
        r.detached.push(l);
    }
    Ok(r)
}

/// Removes the tree at `path` (a file or a directory): first unmounts and detaches what lies below
/// it, then checks `/proc/self/mountinfo` again and refuses to delete while anything is still
/// mounted there. Tolerates a concurrent writer for a few seconds (an abandoned build thread that
/// keeps creating files until its next system call fails). A missing `path` is no error.
pub fn remove_tree(path: &Path) -> Result<Released> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(Released::default());
    };
    let canon = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    if !meta.is_dir() {
        for l in loops_under(&canon)? {
            detach(&l.device)?;
        }
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(Released::default()),
        };
    }
    let released = release_below(&canon)?;
    let still = mounts_under(&canon)?;
    if !still.is_empty() {
        bail!(
            "{} still has {} mounted below it; not removing it",
            path.display(),
            still[0].display()
        );
    }
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir_all(&canon) {
            Ok(()) => return Ok(released),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(released),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(last.expect("at least one attempt")).with_context(|| format!("removing {}", path.display()))
}

/// Removes the empty mount point `dir` with `remove_dir`, after checking that nothing is mounted
/// on it. A missing `dir` is no error.
pub fn remove_mount_point(dir: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    let canon = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    if is_mount_point(&canon)? {
        bail!("{} is still mounted; not removing it", dir.display());
    }
    match std::fs::remove_dir(&canon) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing the mount point {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped_and_filtered_deepest_first() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
98 22 7:0 / /out/.imagebuilder-work-x/mnt\\040one rw - xfs /dev/loop0 rw
99 98 0:5 / /out/.imagebuilder-work-x/mnt\\040one/proc rw - proc proc rw
100 22 0:6 / /out/.imagebuilder-work-xy rw - tmpfs tmpfs rw
101 22 0:7 / /out/back\\134slash\\011tab\\012nl rw - tmpfs tmpfs rw
";
        let all = parse_mountinfo(text);
        assert_eq!(all.len(), 5);
        assert_eq!(all[1], Path::new("/out/.imagebuilder-work-x/mnt one"));
        assert_eq!(all[4], Path::new("/out/back\\slash\ttab\nnl"));
        assert_eq!(
            below(all, Path::new("/out/.imagebuilder-work-x")),
            [
                PathBuf::from("/out/.imagebuilder-work-x/mnt one/proc"),
                PathBuf::from("/out/.imagebuilder-work-x/mnt one"),
            ],
            "a sibling with the same prefix is not below"
        );
        assert_eq!(unescape_mount_path("a\\0"), Path::new("a\\0"));
        assert_eq!(unescape_mount_path("a\\999b"), Path::new("a\\999b"));
    }

    #[test]
    fn backing_files_lose_newline_and_deleted_marker() {
        assert_eq!(
            parse_backing_file("/out/.imagebuilder-work-x/out/d.raw\n"),
            Some(PathBuf::from("/out/.imagebuilder-work-x/out/d.raw"))
        );
        assert_eq!(
            parse_backing_file("/out/d.raw (deleted)\n"),
            Some(PathBuf::from("/out/d.raw"))
        );
        assert_eq!(parse_backing_file("\n"), None);
    }

    #[test]
    fn remove_tree_removes_files_dirs_and_missing_paths() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), b"x").unwrap();
        assert_eq!(remove_tree(&t).unwrap(), Released::default());
        assert!(!t.exists());
        remove_tree(&t).unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        remove_tree(&f).unwrap();
        assert!(!f.exists());
        let m = d.path().join("m");
        std::fs::create_dir(&m).unwrap();
        remove_mount_point(&m).unwrap();
        assert!(!m.exists());
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("x"), b"").unwrap();
        assert!(
            remove_mount_point(&m).is_err(),
            "remove_dir of a non-empty dir"
        );
    }
}
