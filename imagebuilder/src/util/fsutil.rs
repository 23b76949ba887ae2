//! Output files appear whole or not at all: written under a temporary name in the destination
//! directory, then renamed into place. Input files (kickstarts, configs, TDLs) are read bounded:
//! regular files only, never blocking, at most a size limit ([`read_input`]).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `contents` to `path` atomically (temp file in the same directory, fsync, rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".imagebuilder-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating temporary file in {}", dir.display()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming temporary file to {}", path.display()))?;
    Ok(())
}

/// Writes several files so that either all of them appear or none: every file is first written to
/// a temporary name next to its destination, and only when all are staged are they renamed into
/// place (a rename failure midway is the only way to end up with some but not all).
pub fn write_all_atomic(files: &[(std::path::PathBuf, Vec<u8>)]) -> Result<()> {
    let mut staged = Vec::new();
    for (path, contents) in files {
        let dir = parent_dir(path);
        fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".imagebuilder-tmp-")
            .tempfile_in(dir)
            .with_context(|| format!("creating temporary file in {}", dir.display()))?;
        tmp.write_all(contents)
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming temporary file to {}", path.display()))?;
    }
    Ok(())
}

/// Reads the input file `path` (`what` names it in errors, e.g. `TDL`) as UTF-8 text: a regular
/// file of at most `limit` bytes. A FIFO, socket, device or directory is an error before anything
/// is read, and never blocks (see [`kickstart::loader::read_regular_file`]).
pub fn read_input(path: &Path, what: &str, limit: u64) -> Result<String> {
    let bytes = kickstart::loader::read_regular_file(path, limit)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    String::from_utf8(bytes)
        .with_context(|| format!("reading {what} {}: not UTF-8 text", path.display()))
}

/// Checks without opening it that `path` is a regular file of at most `limit` bytes (for inputs
/// handed to other programs or read later); the error names `what` and the path.
pub fn check_input(path: &Path, what: &str, limit: u64) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("{what} {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{what} {} is not a regular file ({})",
            path.display(),
            file_kind(&meta)
        );
    }
    if meta.len() > limit {
        anyhow::bail!(
            "{what} {} is larger than the limit of {}",
            path.display(),
            kickstart::loader::human_size(limit)
        );
    }
    Ok(())
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// The directory a path lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/out.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left behind");
    }

    #[test]
    fn write_all_atomic_writes_nothing_when_one_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("a/ok.txt");
        let files = vec![
            (ok.clone(), b"x".to_vec()),
            (
                std::path::PathBuf::from("/proc/no-such-dir/x"),
                b"y".to_vec(),
            ),
        ];
        assert!(write_all_atomic(&files).is_err());
        assert!(!ok.exists());
        assert_eq!(
            fs::read_dir(dir.path().join("a")).unwrap().count(),
            0,
            "temporary files left"
        );
        write_all_atomic(&files[..1]).unwrap();
        assert_eq!(fs::read(&ok).unwrap(), b"x");
    }

    #[test]
    fn inputs_are_regular_bounded_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        fs::write(&p, "héllo").unwrap();
        assert_eq!(read_input(&p, "TDL", 6).unwrap(), "héllo");
        let err = format!("{:#}", read_input(&p, "TDL", 5).unwrap_err());
        assert!(
            err.starts_with("reading TDL ")
                && err.ends_with("in.txt: larger than the limit of 5 bytes"),
            "{err}"
        );
        check_input(&p, "kickstart", 6).unwrap();
        let err = check_input(&p, "kickstart", 5).unwrap_err().to_string();
        assert!(
            err.ends_with("in.txt is larger than the limit of 5 bytes"),
            "{err}"
        );
        let err = check_input(Path::new("/dev/zero"), "kickstart", 5)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "kickstart /dev/zero is not a regular file (a character device)"
        );
        let err = check_input(dir.path(), "kickstart", 5)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("is not a regular file (a directory)"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_input(Path::new("/dev/zero"), "config", 5).unwrap_err()
        );
        assert_eq!(
            err,
            "reading config /dev/zero: not a regular file (a character device)"
        );
        fs::write(&p, b"\xff").unwrap();
        let err = format!("{:#}", read_input(&p, "TDL", 5).unwrap_err());
        assert!(err.contains("not UTF-8 text"), "{err}");
    }

    #[test]
    fn write_atomic_reports_path_on_failure() {
        let err = write_atomic(Path::new("/proc/no-such-dir/x"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("/proc/no-such-dir"));
    }
}
