//! The one way this project runs external programs: log the command line, capture stderr into the
//! error, check the exit status.
//!
//! Every child is registered with [`crate::util::cleanup`] while it runs (an interruption kills it),
//! leads its own process group (so killing it takes its helpers too, and a terminal's Ctrl-C
//! reaches only the builder, which then stops the children itself), and is started with
//! `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the builder even when no handler can run.

use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many bytes of a failed command's stderr end up in the error message.
const STDERR_TAIL: u64 = 4096;

/// Renders a command line the way a user would type it, for logs and errors.
pub fn display(cmd: &Command) -> String {
    let mut parts = vec![quote(cmd.get_program())];
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A command that ran and exited unsuccessfully; a caller that must tell its failures apart (a
/// helper script's exit codes) finds it with `downcast_ref` and matches on the status.
#[derive(Debug, thiserror::Error)]
#[error("`{line}` failed ({status}){tail}")]
pub struct CommandFailed {
    /// The command line, as [`display`] renders it.
    pub line: String,
    /// How it exited.
    pub status: std::process::ExitStatus,
    /// The end of its stderr, as the message shows it (empty, or a colon, a newline and the text).
    tail: String,
}

/// How a program run with a time limit ([`CommandExt::run_within`]) ended.
#[derive(Debug)]
pub struct Bounded {
    /// Its exit status; `None` when it was killed at the limit.
    pub status: Option<ExitStatus>,
    /// The end of its stderr.
    pub stderr: String,
}

/// Extension trait on [`Command`] used everywhere a program is spawned.
pub trait CommandExt {
    /// Runs the command with stdin closed and stdout inherited-to-log; fails with the command line,
    /// exit status and the tail of stderr.
    fn run(&mut self) -> Result<()>;
    /// Runs the command with the stdin and stdout the caller configured (files, say), stderr
    /// captured; fails like [`CommandExt::run`].
    fn run_redirected(&mut self) -> Result<()>;
    /// Runs the command and returns its stdout; fails like [`CommandExt::run`].
    fn run_stdout(&mut self) -> Result<Vec<u8>>;
    /// Like [`CommandExt::run_stdout`], as UTF-8 text.
    fn run_text(&mut self) -> Result<String>;
    /// Starts a long-running program (stdio as configured by the caller), logging the command line
    /// and naming the Debian package when the program is missing. The caller waits for or kills it.
    fn spawn_logged(&mut self) -> Result<std::process::Child>;
    /// Runs the command (stdin and stdout closed, stderr captured) for at most `limit`, killing it
    /// then. Its exit status is returned, not judged: for probes whose status is the answer.
    fn run_within(&mut self, limit: Duration) -> Result<Bounded>;
}

impl CommandExt for Command {
    fn run(&mut self) -> Result<()> {
        self.stdin(Stdio::null()).stdout(Stdio::null());
        self.run_redirected()
    }

    fn run_redirected(&mut self) -> Result<()> {
        let line = display(self);
        tracing::debug!("exec: {line}");
        let mut stderr = tempfile::tempfile().context("creating stderr capture file")?;
        self.stderr(
            stderr
                .try_clone()
                .context("duplicating stderr capture file")?,
        );
        let status =
            wait(spawn(self).with_context(|| format!("running `{line}`: {}", missing_hint(self)))?)
                .with_context(|| format!("waiting for `{line}`"))?;
        if !status.success() {
            return Err(CommandFailed {
                line,
                status,
                tail: tail(&mut stderr),
            }
            .into());
        }
        Ok(())
    }

    fn run_stdout(&mut self) -> Result<Vec<u8>> {
        let line = display(self);
        tracing::debug!("exec: {line}");
        self.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let Output {
            status,
            stdout,
            stderr,
        } = {
            let child =
                spawn(self).with_context(|| format!("running `{line}`: {}", missing_hint(self)))?;
            let pid = child.id();
            let out = child.wait_with_output();
            crate::util::cleanup::forget_child(pid);
            out.with_context(|| format!("waiting for `{line}`"))?
        };
        if !status.success() {
            let text = String::from_utf8_lossy(&stderr);
            let start = text.len().saturating_sub(STDERR_TAIL as usize);
            let start = (start..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            return Err(CommandFailed {
                line,
                status,
                tail: fmt_tail(&text[start..]),
            }
            .into());
        }
        Ok(stdout)
    }

    fn spawn_logged(&mut self) -> Result<std::process::Child> {
        let line = display(self);
        tracing::debug!("spawn: {line}");
        spawn(self).with_context(|| format!("starting `{line}`: {}", missing_hint(self)))
    }

    fn run_within(&mut self, limit: Duration) -> Result<Bounded> {
        let line = display(self);
        tracing::debug!("exec (at most {} s): {line}", limit.as_secs_f64());
        let mut stderr = tempfile::tempfile().context("creating stderr capture file")?;
        self.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
            stderr
                .try_clone()
                .context("duplicating stderr capture file")?,
        );
        let mut child =
            spawn(self).with_context(|| format!("running `{line}`: {}", missing_hint(self)))?;
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    crate::util::cleanup::forget_child(child.id());
                    return Err(e).with_context(|| format!("waiting for `{line}`"));
                }
            }
        };
        crate::util::cleanup::forget_child(child.id());
        let stderr = tail(&mut stderr).trim_start_matches(":\n").to_string();
        Ok(Bounded { status, stderr })
    }

    fn run_text(&mut self) -> Result<String> {
        let out = self.run_stdout()?;
        let line = display(self);
        String::from_utf8(out).with_context(|| format!("output of `{line}` is not UTF-8"))
    }
}

/// Starts `cmd` as described in the module documentation and registers the child.
fn spawn(cmd: &mut Command) -> Result<Child> {
    let parent = rustix::process::getpid();
    cmd.process_group(0);
    set_death_signal(cmd, parent);
    crate::util::cleanup::spawn_child(cmd)
}

/// Waits for a child started by [`spawn`] and deregisters it.
fn wait(mut child: Child) -> std::io::Result<std::process::ExitStatus> {
    let st = child.wait();
    crate::util::cleanup::forget_child(child.id());
    st
}

#[allow(unsafe_code)]
fn set_death_signal(cmd: &mut Command, parent: rustix::process::Pid) {
    // SAFETY: the closure runs in the forked child before exec and only makes two system calls
    // (prctl, getppid); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The builder may have died before the prctl: then nobody would kill this child.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("the parent process exited"));
            }
            Ok(())
        });
    }
}

fn tail(f: &mut std::fs::File) -> String {
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    fmt_tail(&String::from_utf8_lossy(&buf))
}

fn fmt_tail(text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!(":\n{text}")
    }
}

/// When spawning fails because the program is missing, name the Debian package that ships it.
fn missing_hint(cmd: &Command) -> String {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    match debian_package_for(&prog) {
        Some(pkg) => format!("is `{prog}` installed? (Debian package `{pkg}`)"),
        None => format!("is `{prog}` installed?"),
    }
}

/// The Debian package that provides a host tool this project runs (from the one requirement
/// table, [`crate::host::requirements`]).
pub fn debian_package_for(program: &str) -> Option<&'static str> {
    crate::host::requirements::for_program(program).and_then(|r| r.debian)
}

/// Fails with a clear message naming the Debian package when `program` is not on `PATH`.
pub fn require_program(program: &str) -> Result<()> {
    if find_in_path(program).is_some() {
        return Ok(());
    }
    match debian_package_for(program) {
        Some(pkg) => {
            bail!("required program `{program}` not found; install the Debian package `{pkg}`")
        }
        None => bail!("required program `{program}` not found on PATH"),
    }
}

/// Looks `program` up on `PATH` (plus the sbin directories, which root's PATH may lack).
pub fn find_in_path(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(Into::into))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_and_stdout() {
        Command::new("true").run().unwrap();
        let out = Command::new("sh")
            .args(["-c", "printf hello"])
            .run_text()
            .unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn failure_carries_command_status_and_stderr() {
        let err = Command::new("sh")
            .args(["-c", "echo boom-from-stderr 1>&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("sh -c"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("boom-from-stderr"), "{msg}");

        let err = Command::new("sh")
            .args(["-c", "echo out-err 1>&2; exit 4"])
            .run_stdout()
            .unwrap_err();
        assert!(format!("{err:#}").contains("out-err"));
    }

    #[test]
    fn missing_program_names_debian_package() {
        let err = Command::new("/nonexistent/mkfs.fat").run().unwrap_err();
        assert!(format!("{err:#}").contains("dosfstools"), "{err:#}");
        let err = require_program("no-such-program-xyz").unwrap_err();
        assert!(err.to_string().contains("no-such-program-xyz"));
    }

    #[test]
    fn run_within_returns_the_status_or_kills_at_the_limit() {
        let r = Command::new("sh")
            .args(["-c", "echo said-this 1>&2; exit 3"])
            .run_within(Duration::from_secs(10))
            .unwrap();
        assert_eq!(r.status.and_then(|s| s.code()), Some(3));
        assert_eq!(r.stderr, "said-this");
        let start = Instant::now();
        let r = Command::new("sleep")
            .arg("30")
            .run_within(Duration::from_millis(200))
            .unwrap();
        assert!(r.status.is_none(), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let err = Command::new("/nonexistent/xorriso")
            .run_within(Duration::from_secs(1))
            .unwrap_err();
        assert!(format!("{err:#}").contains("`xorriso`"), "{err:#}");
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let mut c = Command::new("echo");
        c.args(["plain", "two words", "it's"]);
        assert_eq!(display(&c), r"echo plain 'two words' 'it'\''s'");
    }
}
