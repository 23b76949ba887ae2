//! Netboot support for the boot tester: the TFTP root QEMU's user network serves, and a loopback
//! HTTP/1.1 server for the files a netbooted guest fetches afterwards (a live root, a stage 2).
//!
//! The guest reaches the host's loopback as `10.0.2.2` (QEMU user networking), so files in the
//! netboot directory name the server with the placeholder [`URL_PLACEHOLDER`], as livemedia-creator's
//! PXE configuration does (`root=live:<URL>/live-rootfs.squashfs.img`). [`build_netboot_root`]
//! makes a copy of the directory with the placeholder replaced by the server's guest-side URL;
//! [`HttpServer`] serves that copy and records every request.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// The text in netboot files that stands for the HTTP server's base URL (no trailing slash).
pub use crate::live::pxe::URL_PLACEHOLDER;

/// The host's address as the guest sees it on QEMU's user network.
pub const GUEST_HOST: &str = "10.0.2.2";

/// Files at least this large are never searched for [`URL_PLACEHOLDER`].
pub const TEXT_FILE_LIMIT: u64 = 1 << 20;

/// The boot file a BIOS netboot asks for by default.
pub const BIOS_BOOTFILE: &str = "pxelinux.0";

/// The boot file a UEFI netboot asks for by default.
pub const UEFI_BOOTFILE: &str = "grubx64.efi";

/// Netboot from a directory: it is the TFTP root of QEMU's user network (the firmware's iPXE does
/// DHCP, then fetches the boot file over TFTP), and it is served over HTTP at the URL that
/// replaces [`URL_PLACEHOLDER`] in its text files.
#[derive(Debug, Clone, Serialize)]
pub struct Netboot {
    /// The TFTP root.
    pub dir: PathBuf,
    /// The boot file the DHCP answer names, relative to `dir`; `None` = [`BIOS_BOOTFILE`], or
    /// [`UEFI_BOOTFILE`] with UEFI.
    pub bootfile: Option<String>,
}

impl Netboot {
    /// Netboot from `dir` with the default boot file.
    pub fn new(dir: impl Into<PathBuf>) -> Netboot {
        Netboot {
            dir: dir.into(),
            bootfile: None,
        }
    }

    /// The boot file asked for: the given one, else the default for the firmware.
    pub fn bootfile_for(&self, uefi: bool) -> &str {
        match &self.bootfile {
            Some(b) => b,
            None if uefi => UEFI_BOOTFILE,
            None => BIOS_BOOTFILE,
        }
    }

    /// Checks that the directory exists and holds the boot file (a relative path inside it).
    pub fn check(&self, uefi: bool) -> Result<()> {
        let dir = &self.dir;
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!("netboot directory {} is not a directory", dir.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("netboot directory {} not found", dir.display())
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading netboot directory {}", dir.display()));
            }
        }
        let bootfile = self.bootfile_for(uefi);
        let path = Path::new(bootfile);
        if bootfile.is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!(
                "boot file `{bootfile}` must be a relative path inside {} (no `..`)",
                dir.display()
            );
        }
        if !dir.join(path).is_file() {
            if self.bootfile.is_some() {
                bail!("{} has no {bootfile} (the boot file given)", dir.display());
            }
            bail!(
                "{} has no {bootfile}; give --bootfile ({bootfile} is the default boot file for \
                 {} netboot)",
                dir.display(),
                if uefi { "UEFI" } else { "BIOS" }
            );
        }
        Ok(())
    }
}

/// The base URL under which a guest on QEMU's user network reaches a host server on `port`.
pub fn guest_base_url(port: u16) -> String {
    format!("http://{GUEST_HOST}:{port}")
}

/// Makes `dest` (created if missing, expected empty) a copy of the netboot directory `src` for a
/// guest that reaches the HTTP server at `base_url`.
///
/// Every regular file below `src` is hard-linked into `dest` (copied when linking fails, e.g.
/// across filesystems), subdirectories recursively, except text files: a file smaller than
/// [`TEXT_FILE_LIMIT`] whose content is valid UTF-8 and contains [`URL_PLACEHOLDER`] is written
/// with every occurrence replaced by `base_url`, keeping its permission bits. Symbolic links are
/// followed, as QEMU's own TFTP server would follow them, so `dest` holds only regular files and
/// directories; dangling links, links that loop and special files are skipped with a warning.
///
/// Returns the files where the placeholder was replaced, relative to `dest`, in name order.
pub fn build_netboot_root(src: &Path, dest: &Path, base_url: &str) -> Result<Vec<PathBuf>> {
    let real = fs::canonicalize(src)
        .with_context(|| format!("reading netboot directory {}", src.display()))?;
    if !real.is_dir() {
        bail!("netboot directory {} is not a directory", src.display());
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut substituted = Vec::new();
    let mut ancestors = vec![real];
    copy_tree(
        src,
        dest,
        Path::new(""),
        base_url,
        &mut ancestors,
        &mut substituted,
    )?;
    Ok(substituted)
}

fn copy_tree(
    src: &Path,
    dest: &Path,
    rel: &Path,
    base_url: &str,
    ancestors: &mut Vec<PathBuf>,
    substituted: &mut Vec<PathBuf>,
) -> Result<()> {
    let mut entries = fs::read_dir(src)
        .and_then(|rd| rd.collect::<io::Result<Vec<_>>>())
        .with_context(|| format!("reading {}", src.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dest.join(e.file_name());
        let rel = rel.join(e.file_name());
        // Follows a symbolic link.
        let meta = match fs::metadata(&from) {
            Ok(m) => m,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                tracing::warn!("netboot: skipping {}: a dangling link", from.display());
                continue;
            }
            Err(err) => return Err(err).with_context(|| format!("reading {}", from.display())),
        };
        if meta.is_dir() {
            let real =
                fs::canonicalize(&from).with_context(|| format!("resolving {}", from.display()))?;
            if ancestors.contains(&real) {
                tracing::warn!("netboot: skipping {}: a link loop", from.display());
                continue;
            }
            fs::create_dir(&to).with_context(|| format!("creating {}", to.display()))?;
            ancestors.push(real);
            copy_tree(&from, &to, &rel, base_url, ancestors, substituted)?;
            ancestors.pop();
        } else if meta.is_file() {
            if place_file(&from, &to, &meta, base_url)? {
                substituted.push(rel);
            }
        } else {
            tracing::warn!(
                "netboot: skipping {}: not a regular file or directory",
                from.display()
            );
        }
    }
    Ok(())
}

/// Writes `to` from `from`; true when the placeholder was replaced.
fn place_file(from: &Path, to: &Path, meta: &fs::Metadata, base_url: &str) -> Result<bool> {
    if meta.len() < TEXT_FILE_LIMIT {
        let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        if let Ok(text) = std::str::from_utf8(&data)
            && text.contains(URL_PLACEHOLDER)
        {
            fs::write(to, text.replace(URL_PLACEHOLDER, base_url))
                .with_context(|| format!("writing {}", to.display()))?;
            fs::set_permissions(to, meta.permissions())
                .with_context(|| format!("setting the mode of {}", to.display()))?;
            return Ok(true);
        }
    }
    // hard_link() links a symbolic link itself, not its target.
    let real = fs::canonicalize(from).with_context(|| format!("resolving {}", from.display()))?;
    if fs::hard_link(&real, to).is_err() {
        fs::copy(&real, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    Ok(false)
}

/// One request the HTTP server answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// `GET`, `HEAD`, or whatever else was asked (answered 405).
    pub method: String,
    /// The path asked for, percent-decoded, without the query (`/live/squashfs.img`).
    pub path: String,
    /// The status answered: 200, 206 (a range), 400, 403, 404, 405, 416.
    pub status: u16,
    /// Bytes of the file sent (0 for HEAD and errors; short when the client hung up).
    pub bytes: u64,
}

/// A loopback HTTP/1.1 server for the files below one directory: `GET` and `HEAD`,
/// `Content-Length`, keep-alive, a single `Range: bytes=…` (206; several ranges get the whole
/// file), 404 for what is missing, 403 for any path that leaves the directory (`..`, or a
/// symbolic link pointing outside it). A thread per connection.
///
/// [`HttpServer::stop`] (or dropping the server) closes the listener, hangs up on every client and
/// waits for all threads.
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    /// Canonical.
    root: PathBuf,
    stop: AtomicBool,
    log: Mutex<Vec<HttpRequest>>,
    /// A handle on every open connection, to hang up on stop.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a connection may stay silent (idle between requests, or stalled in one).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest request head read.
const MAX_HEAD: u64 = 16 * 1024;

impl HttpServer {
    /// Serves `root` on `127.0.0.1` at a port the system picks.
    pub fn start(root: &Path) -> Result<HttpServer> {
        let root = fs::canonicalize(root)
            .with_context(|| format!("opening {} for the HTTP server", root.display()))?;
        if !root.is_dir() {
            bail!("{} is not a directory to serve", root.display());
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the HTTP server to 127.0.0.1")?;
        let addr = listener
            .local_addr()
            .context("reading the HTTP server's address")?;
        listener
            .set_nonblocking(true)
            .context("configuring the HTTP server's socket")?;
        let shared = Arc::new(Shared {
            root,
            stop: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("boot-test-http".into())
            .spawn(move || accept_loop(listener, s))
            .context("starting the HTTP server thread")?;
        tracing::debug!("HTTP server for {} on {addr}", shared.root.display());
        Ok(HttpServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The requests answered so far, in the order they were answered.
    pub fn requests(&self) -> Vec<HttpRequest> {
        lock(&self.shared.log).clone()
    }

    /// Stops serving (see the type's documentation) and returns every request answered.
    pub fn stop(mut self) -> Vec<HttpRequest> {
        self.shutdown();
        self.requests()
    }

    fn shutdown(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            let _ = acceptor.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    // Polls with a timeout so that a stop is seen within 100 ms.
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    while !shared.stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(&listener, PollFlags::IN)];
        if !matches!(poll(&mut fds, Some(&tick)), Ok(n) if n > 0) {
            continue;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!("HTTP server: accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        workers.retain(|w| !w.is_finished());
        let id = next_id;
        next_id += 1;
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        lock(&shared.conns).insert(id, handle);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("boot-test-http-conn".into())
            .spawn(move || {
                serve_connection(&s, stream);
                lock(&s.conns).remove(&id);
            });
        match spawned {
            Ok(w) => workers.push(w),
            Err(e) => {
                tracing::warn!("HTTP server: starting a connection thread: {e}");
                if let Some(c) = lock(&shared.conns).remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                }
            }
        }
    }
    drop(listener);
    // Hang up on every client: their blocked reads and writes return, their threads end.
    for (_, c) in lock(&shared.conns).drain() {
        let _ = c.shutdown(Shutdown::Both);
    }
    for w in workers {
        let _ = w.join();
    }
}

/// A parsed request head.
struct Head {
    method: String,
    target: String,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
    range: Option<String>,
    /// The request announced a body, which is not read: the connection is closed after answering.
    has_body: bool,
}

fn serve_connection(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut out = io::BufWriter::new(write_half);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let head = match read_head(&mut reader) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                let _ = write_status(&mut out, 400, "", false);
                return;
            }
            // Idle too long, or hung up on.
            Err(_) => return,
        };
        let keep_alive = head.keep_alive && !head.has_body;
        match answer(shared, &head, keep_alive, &mut out) {
            Ok(()) if keep_alive => {}
            _ => return,
        }
    }
}

/// Reads one request head; `None` when the client closed the connection between requests.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Head>> {
    let mut limited = reader.take(MAX_HEAD);
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = limited.read_until(b'\n', &mut line)?;
        if n == 0 {
            if lines.is_empty() && line.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(ErrorKind::InvalidData, "truncated request"));
        }
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "request head too long",
            ));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.is_empty() {
            // Blank lines before a request line are tolerated.
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split_ascii_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(ErrorKind::InvalidData, "bad request line"));
    };
    let mut head = Head {
        method: method.to_string(),
        target: target.to_string(),
        keep_alive: version == "HTTP/1.1",
        range: None,
        has_body: false,
    };
    for l in &lines[1..] {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" if value.to_ascii_lowercase().contains("close") => {
                head.keep_alive = false;
            }
            "range" => head.range = Some(value.to_string()),
            "content-length" => head.has_body |= value != "0",
            "transfer-encoding" => head.has_body = true,
            _ => {}
        }
    }
    Ok(Some(head))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Internal Server Error",
    }
}

/// An error answer with a one-line text body.
fn write_status(
    out: &mut impl Write,
    status: u16,
    extra: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let body = format!("{status} {}\n", reason(status));
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}{}\r\n{body}",
        reason(status),
        body.len(),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    )?;
    out.flush()
}

fn answer(shared: &Shared, head: &Head, keep_alive: bool, out: &mut impl Write) -> io::Result<()> {
    let path_text = request_path(&head.target)
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_else(|| head.target.clone());
    let mut record = HttpRequest {
        method: head.method.clone(),
        path: path_text,
        status: 0,
        bytes: 0,
    };
    let result = respond(shared, head, keep_alive, out, &mut record);
    tracing::debug!(
        "HTTP {} {} -> {} ({} bytes)",
        record.method,
        record.path,
        record.status,
        record.bytes
    );
    lock(&shared.log).push(record);
    result
}

fn respond(
    shared: &Shared,
    head: &Head,
    keep_alive: bool,
    out: &mut impl Write,
    record: &mut HttpRequest,
) -> io::Result<()> {
    let is_head = head.method == "HEAD";
    if head.method != "GET" && !is_head {
        record.status = 405;
        return write_status(out, 405, "Allow: GET, HEAD\r\n", keep_alive);
    }
    let file = match resolve(&shared.root, &head.target) {
        Ok(p) => p,
        Err(status) => {
            record.status = status;
            return write_status(out, status, "", keep_alive);
        }
    };
    let mut f = match fs::File::open(&file) {
        Ok(f) => f,
        Err(e) => {
            record.status = if e.kind() == ErrorKind::PermissionDenied {
                403
            } else {
                404
            };
            return write_status(out, record.status, "", keep_alive);
        }
    };
    let len = f.metadata()?.len();
    let (status, start, count, content_range) = match parse_range(head.range.as_deref(), len) {
        ByteRange::Whole => (200, 0, len, String::new()),
        ByteRange::Part(a, b) => (
            206,
            a,
            b - a + 1,
            format!("Content-Range: bytes {a}-{b}/{len}\r\n"),
        ),
        ByteRange::Unsatisfiable => {
            record.status = 416;
            return write_status(
                out,
                416,
                &format!("Content-Range: bytes */{len}\r\n"),
                keep_alive,
            );
        }
    };
    record.status = status;
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {count}\r\nAccept-Ranges: bytes\r\n{content_range}{}\r\n",
        reason(status),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    )?;
    if is_head {
        return out.flush();
    }
    f.seek(SeekFrom::Start(start))?;
    let mut body = f.take(count);
    let mut buf = vec![0u8; 256 * 1024];
    while record.bytes < count {
        let n = body.read(&mut buf)?;
        if n == 0 {
            // The file shrank while being sent: the announced length cannot be kept.
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "file shrank"));
        }
        out.write_all(&buf[..n])?;
        record.bytes += n as u64;
    }
    out.flush()
}

/// The percent-decoded path of a request target (origin or absolute form), without query and
/// fragment; `None` when it is not a path or an escape is malformed.
fn request_path(target: &str) -> Option<Vec<u8>> {
    let target = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => target,
    };
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let raw = &target.as_bytes()[..end];
    if raw.first() != Some(&b'/') {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The file a request target names below `root` (canonical), or the status to answer.
fn resolve(root: &Path, target: &str) -> std::result::Result<PathBuf, u16> {
    let path = request_path(target).ok_or(400u16)?;
    if path.contains(&0) {
        return Err(400);
    }
    let mut file = root.to_path_buf();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(403),
            p => file.push(std::ffi::OsStr::from_bytes(p)),
        }
    }
    let real = match fs::canonicalize(&file) {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return Err(403),
        Err(_) => return Err(404),
    };
    // A symbolic link below the root that points outside it.
    if !real.starts_with(root) {
        return Err(403);
    }
    if !real.is_file() {
        return Err(404);
    }
    Ok(real)
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// No range, or one this server does not honour (other units, several ranges, bad syntax).
    Whole,
    /// Bytes `a..=b`.
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // The last `n` bytes.
        let Ok(n) = b.parse::<u64>() else {
            return ByteRange::Whole;
        };
        if n == 0 || len == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part(len - n.min(len), len - 1);
    }
    let Ok(first) = a.parse::<u64>() else {
        return ByteRange::Whole;
    };
    let last = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(l) if l >= first => l,
            _ => return ByteRange::Whole,
        }
    };
    if first >= len {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(first, last.min(len - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Part(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Part(4, 9));
        assert_eq!(parse_range(Some("bytes=4-100"), 10), Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Whole);
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("/a/b%20c?x=1").unwrap(), b"/a/b c");
        assert_eq!(request_path("http://10.0.2.2:80/a#f").unwrap(), b"/a");
        assert_eq!(request_path("/%2e%2e/x").unwrap(), b"/../x");
        assert!(request_path("/bad%2").is_none());
        assert!(request_path("/bad%zz").is_none());
        assert!(request_path("a").is_none());
        assert!(request_path("*").is_none());
    }

    #[test]
    fn resolution_stays_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/f"), b"x").unwrap();
        fs::write(d.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/f", root.join("in")).unwrap();
        let root = fs::canonicalize(&root).unwrap();
        assert_eq!(resolve(&root, "/sub/f").unwrap(), root.join("sub/f"));
        assert_eq!(resolve(&root, "//sub/./f").unwrap(), root.join("sub/f"));
        assert_eq!(resolve(&root, "/in").unwrap(), root.join("sub/f"));
        assert_eq!(resolve(&root, "/sub/../sub/f"), Err(403));
        assert_eq!(resolve(&root, "/%2E%2E/secret"), Err(403));
        assert_eq!(resolve(&root, "/out"), Err(403));
        assert_eq!(resolve(&root, "/sub"), Err(404));
        assert_eq!(resolve(&root, "/missing"), Err(404));
        assert_eq!(resolve(&root, "/a%00b"), Err(400));
    }

    #[test]
    fn bootfile_defaults_and_checks() {
        let d = tempfile::tempdir().unwrap();
        let n = Netboot::new(d.path());
        assert_eq!(n.bootfile_for(false), "pxelinux.0");
        assert_eq!(n.bootfile_for(true), "grubx64.efi");
        let e = n.check(false).unwrap_err().to_string();
        assert!(e.contains("has no pxelinux.0; give --bootfile"), "{e}");
        let e = n.check(true).unwrap_err().to_string();
        assert!(
            e.contains("has no grubx64.efi") && e.contains("UEFI"),
            "{e}"
        );
        fs::write(d.path().join("pxelinux.0"), b"x").unwrap();
        n.check(false).unwrap();
        let other = Netboot {
            bootfile: Some("boot.ipxe".into()),
            ..n.clone()
        };
        let e = other.check(false).unwrap_err().to_string();
        assert!(e.contains("has no boot.ipxe (the boot file given)"), "{e}");
        for bad in ["../pxelinux.0", "/pxelinux.0", ""] {
            let b = Netboot {
                bootfile: Some(bad.into()),
                ..n.clone()
            };
            let e = b.check(false).unwrap_err().to_string();
            assert!(e.contains("relative path inside"), "{bad}: {e}");
        }
        let missing = Netboot::new(d.path().join("nope"));
        let e = missing.check(false).unwrap_err().to_string();
        assert!(e.contains("netboot directory") && e.contains("nope"), "{e}");
    }
}
