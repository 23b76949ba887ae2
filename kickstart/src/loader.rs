//! Reading kickstart files for `%include`/`%ksappend`: the only I/O the crate does, behind a trait
//! so that parsing stays testable in memory.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::text::{normpath, py_repr};

/// Largest kickstart file [`FsLoader`] reads (16 MiB): real kickstarts are a few KiB, and a bound
/// keeps `%include /dev/zero`-like inputs from exhausting memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Largest total of all text one parse reads (64 MiB): the top-level file plus every `%include`d
/// and `%ksappend`ed file, so that many includes of one big file cannot add up to gigabytes.
pub const MAX_TOTAL_BYTES: usize = 64 << 20;

/// What kind of non-regular file `meta` describes (`None` for a regular file).
fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

fn check_regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    if meta.is_dir() {
        // pykickstart's text for a directory: `[Errno 21] Is a directory`
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    match special_kind(meta) {
        None => Ok(()),
        Some(kind) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({kind})"),
        )),
    }
}

fn too_large(limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("larger than the limit of {}", human_size(limit)),
    )
}

/// `16 MiB`, `512 KiB`, `100 bytes`.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Reads the regular file at `path`, at most `limit` bytes, without ever blocking or reading
/// without end: a FIFO, socket, device or directory is an error before anything is read (the
/// type is checked before opening, the file is opened non-blocking and checked again), and a
/// file longer than `limit` is an error after reading at most `limit + 1` bytes.
pub fn read_regular_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    check_regular(&std::fs::metadata(path)?)?;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // the file opened may not be the one inspected (it can be replaced in between)
    let meta = f.metadata()?;
    check_regular(&meta)?;
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(buf)
}

/// Access to included files. Paths are strings as written in the kickstart (relative ones are
/// relative to the loader's working directory, as pykickstart resolves them against the process's).
pub trait Loader {
    /// Does `path` exist (Python `os.path.exists`)?
    fn exists(&self, path: &str) -> bool;
    /// Read the whole file. The error text is Python's `str(OSError)`, e.g.
    /// `[Errno 2] No such file or directory: 'x.ks'` (for a file that is not regular or is too
    /// large, `not a regular file (a FIFO): 'x.ks'`, `larger than the limit of 16 MiB: 'x.ks'`).
    /// Implementations bound what they read; the parser bounds the total
    /// ([`crate::Options::max_total_bytes`]).
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
    /// Directory of `path` (for resolving includes relative to the including file).
    fn dir_of(&self, path: &str) -> String {
        match path.rfind('/') {
            Some(0) => "/".into(),
            Some(i) => path[..i].to_string(),
            None => String::new(),
        }
    }
    /// A key identifying the file (to detect include cycles).
    fn identity(&self, path: &str) -> String {
        normpath(path)
    }
}

/// The real file system, relative paths resolved against `cwd` (the process's when `None`).
///
/// Only regular files of at most [`MAX_FILE_BYTES`] are read (see [`read_regular_file`]).
#[derive(Debug, Clone, Default)]
pub struct FsLoader {
    /// Working directory for relative paths.
    pub cwd: Option<PathBuf>,
}

impl FsLoader {
    fn resolve(&self, path: &str) -> PathBuf {
        match &self.cwd {
            Some(c) if !path.starts_with('/') => c.join(path),
            _ => PathBuf::from(path),
        }
    }
}

fn strerror(code: i32) -> &'static str {
    match code {
        1 => "Operation not permitted",
        2 => "No such file or directory",
        5 => "Input/output error",
        13 => "Permission denied",
        20 => "Not a directory",
        21 => "Is a directory",
        36 => "File name too long",
        40 => "Too many levels of symbolic links",
        _ => "Error",
    }
}

impl Loader for FsLoader {
    fn exists(&self, path: &str) -> bool {
        !path.is_empty() && self.resolve(path).metadata().is_ok()
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        read_regular_file(&self.resolve(path), MAX_FILE_BYTES).map_err(|e| match e.raw_os_error() {
            Some(code) => format!("[Errno {code}] {}: {}", strerror(code), py_repr(path)),
            None => format!("{e}: {}", py_repr(path)),
        })
    }

    fn identity(&self, path: &str) -> String {
        use std::os::unix::fs::MetadataExt;
        let p = self.resolve(path);
        if let Ok(m) = std::fs::metadata(&p) {
            return format!("{}:{}", m.dev(), m.ino());
        }
        std::fs::canonicalize(&p)
            .unwrap_or_else(|_| Path::new(&normpath(&p.to_string_lossy())).to_path_buf())
            .to_string_lossy()
            .into_owned()
    }
}

/// Files held in memory (tests, fuzzing): path → contents.
#[derive(Debug, Clone, Default)]
pub struct MemLoader {
    /// The files, keyed by normalised path.
    pub files: HashMap<String, Vec<u8>>,
}

impl MemLoader {
    /// Add a file.
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.files.insert(normpath(path), text.as_bytes().to_vec());
        self
    }
}

impl Loader for MemLoader {
    fn exists(&self, path: &str) -> bool {
        !path.is_empty() && self.files.contains_key(&normpath(path))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .get(&normpath(path))
            .cloned()
            .ok_or_else(|| format!("[Errno 2] No such file or directory: {}", py_repr(path)))
    }
}
