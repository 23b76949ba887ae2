//! Reading kickstart files for `%include`/`%ksappend`: the only I/O the crate does, behind a trait
//! so that parsing stays testable in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::text::{normpath, py_repr};

/// Access to included files. Paths are strings as written in the kickstart (relative ones are
/// relative to the loader's working directory, as pykickstart resolves them against the process's).
pub trait Loader {
    /// Does `path` exist (Python `os.path.exists`)?
    fn exists(&self, path: &str) -> bool;
    /// Read the whole file. The error text is Python's `str(OSError)`, e.g.
    /// `[Errno 2] No such file or directory: 'x.ks'`.
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
        let p = self.resolve(path);
        let res = (|| {
            use std::io::Read;
            let mut f = std::fs::File::open(&p)?;
            let meta = f.metadata()?;
            if meta.is_dir() {
                return Err(std::io::Error::from_raw_os_error(21));
            }
            let mut buf = Vec::with_capacity(meta.len() as usize);
            f.read_to_end(&mut buf)?;
            Ok(buf)
        })();
        res.map_err(|e| match e.raw_os_error() {
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
