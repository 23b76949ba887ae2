//! Cleanup and interruption: one process-global registry of what the running build must undo
//! (staging trees, mounts, loop devices, temporary files: each registered by the RAII guard that
//! owns it), of the child processes it started (registered by [`crate::util::cmd`]), and of the stage
//! it is in.
//!
//! * Normally a guard runs its own cleanup when it is dropped (or when its owner calls
//!   [`Guard::run`]) and deregisters it; [`Guard::disarm`] deregisters without running.
//! * On SIGINT or SIGTERM ([`install_signal_handler`]) a dedicated thread marks the process as
//!   interrupted (no new child is started and no new cleanup is registered from then on), kills the
//!   registered children (their whole process group) and waits for them to exit, runs every
//!   registered cleanup in reverse order of registration — the same actions the guards run — prints
//!   one line saying in which stage the build stopped and what was cleaned up, and exits with
//!   128 + the signal number (130 for SIGINT, 143 for SIGTERM). Guards dropped afterwards find
//!   their action gone and do nothing; the logger goes quiet so that line stays the only one.
//! * Children are started with `PR_SET_PDEATHSIG = SIGKILL`: if the builder itself is SIGKILLed
//!   (no handler runs) they die with it. What such a build leaves behind is recognised and removed
//!   by the next build into the same output directory or by `imagebuilder clean`
//!   ([`crate::build::outdir`]).

use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

type Action = Box<dyn FnOnce() -> Result<()> + Send>;
type Repeatable = std::sync::Arc<dyn Fn() -> Result<()> + Send + Sync>;

struct Entry {
    id: u64,
    what: String,
    action: Action,
    /// Run once more after the build's thread has stopped: an action whose effect that thread
    /// could still undo in the meantime (`create_dir_all` below a staging directory just removed
    /// makes it again).
    again: Option<Repeatable>,
}

struct ChildEntry {
    pid: u32,
    pidfd: Option<OwnedFd>,
}

struct Registry {
    interrupted: Option<i32>,
    next_id: u64,
    actions: Vec<Entry>,
    children: Vec<ChildEntry>,
    stage: Option<String>,
    outdirs: Vec<(u64, PathBuf)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    interrupted: None,
    next_id: 0,
    actions: Vec::new(),
    children: Vec::new(),
    stage: None,
    outdirs: Vec::new(),
});

/// Held while outputs are published: the handler waits for a publication in progress, so that
/// OUTDIR gets all of a build's outputs or none.
static CRITICAL: Mutex<()> = Mutex::new(());

thread_local! {
    /// Set while this thread runs a cleanup action: it may start programs (umount, losetup) even
    /// after an interruption.
    static CLEANING: Cell<bool> = const { Cell::new(false) };
}

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The error of work refused because the process is being interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Whether SIGINT or SIGTERM arrived (the handler is cleaning up and will exit).
pub fn is_interrupted() -> bool {
    registry().interrupted.is_some()
}

/// Fails with [`Interrupted`] once a signal arrived: a checkpoint for long loops.
pub fn check() -> Result<()> {
    if is_interrupted() && !CLEANING.get() {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Runs `f` (publishing outputs: renames) without an interruption cleaning up in the middle of
/// it: the handler waits until `f` is done. Fails with [`Interrupted`] instead when a signal came
/// first.
pub fn uninterruptible<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _g = CRITICAL.lock().unwrap_or_else(|e| e.into_inner());
    check()?;
    f()
}

/// Names the stage the build is in, for the interruption message (`while STAGE`): a phrase like
/// "writing the qcow2".
pub fn set_stage(stage: impl Into<String>) {
    registry().stage = Some(stage.into());
}

/// Clears the stage (the build is over).
pub fn clear_stage() {
    registry().stage = None;
}

fn run_action(what: &str, action: Action) -> Result<()> {
    let was = CLEANING.replace(true);
    let r = action().with_context(|| what.to_string());
    CLEANING.set(was);
    r
}

/// A registered cleanup action; dropping the guard runs it (once).
#[must_use = "dropping a cleanup guard runs its cleanup at once"]
#[derive(Debug)]
pub struct Guard {
    id: u64,
}

/// Registers `action` (described by `what`, e.g. "unmounting /x") to undo something that now
/// exists. When the process is already being interrupted, the action runs at once instead.
pub fn register(
    what: impl Into<String>,
    action: impl FnOnce() -> Result<()> + Send + 'static,
) -> Guard {
    register_entry(what.into(), Box::new(action), None)
}

/// Like [`register`], for an action that may run twice (removing a directory tree): on an
/// interruption it runs with the others and once more after the build's thread has stopped, in
/// case that thread made again what it removed.
pub fn register_repeatable(
    what: impl Into<String>,
    action: impl Fn() -> Result<()> + Send + Sync + 'static,
) -> Guard {
    let action: Repeatable = std::sync::Arc::new(action);
    let once = action.clone();
    register_entry(what.into(), Box::new(move || once()), Some(action))
}

fn register_entry(what: String, action: Action, again: Option<Repeatable>) -> Guard {
    let mut r = registry();
    if r.interrupted.is_some() && !CLEANING.get() {
        drop(r);
        let _ = run_action(&what, action);
        return Guard { id: 0 };
    }
    r.next_id += 1;
    let id = r.next_id;
    r.actions.push(Entry {
        id,
        what,
        action,
        again,
    });
    Guard { id }
}

/// Registers the removal of the file at `path` (a temporary file outside any staging directory,
/// like a `%post` script in `/tmp`): dropping the guard, or an interruption, removes it.
pub fn remove_file_guard(path: &std::path::Path) -> Guard {
    let p = path.to_path_buf();
    register(
        format!("removing {}", path.display()),
        move || match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        },
    )
}

fn take(id: u64) -> Option<Entry> {
    if id == 0 {
        return None;
    }
    let mut r = registry();
    let pos = r.actions.iter().position(|e| e.id == id)?;
    r.outdirs.retain(|(i, _)| *i != id);
    Some(r.actions.remove(pos))
}

impl Guard {
    /// Runs the action now (if the interruption handler has not taken it already).
    pub fn run(mut self) -> Result<()> {
        let id = std::mem::take(&mut self.id);
        match take(id) {
            Some(e) => run_action(&e.what, e.action),
            None => Ok(()),
        }
    }

    /// Deregisters the action without running it (the resource is gone or handed over).
    pub fn disarm(mut self) {
        let id = std::mem::take(&mut self.id);
        drop(take(id));
    }

    /// Names the output directory this guard cleans, for the interruption message.
    pub fn names_outdir(&self, outdir: PathBuf) {
        if self.id != 0 {
            registry().outdirs.push((self.id, outdir));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(e) = take(self.id)
            && let Err(err) = run_action(&e.what, e.action)
            && !is_interrupted()
        {
            tracing::warn!("{err:#}");
        }
    }
}

/// Starts `cmd` and registers the child, so an interruption kills it (with its process group).
/// Refused once the process is being interrupted (except for cleanup actions).
pub fn spawn_child(cmd: &mut Command) -> Result<Child> {
    let mut r = registry();
    if r.interrupted.is_some() && !CLEANING.get() {
        return Err(Interrupted.into());
    }
    // Forget children that have exited (their pidfd is readable).
    r.children
        .retain(|c| c.pidfd.as_ref().is_some_and(|fd| !exited(fd, 0)));
    let child = cmd.spawn()?;
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32).and_then(|pid| {
        rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
    });
    r.children.push(ChildEntry {
        pid: child.id(),
        pidfd,
    });
    Ok(child)
}

/// Deregisters a child that was waited for.
pub fn forget_child(pid: u32) {
    registry().children.retain(|c| c.pid != pid);
}

/// Whether the process behind `pidfd` has exited, waiting up to `ms` milliseconds.
fn exited(pidfd: &OwnedFd, ms: i64) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let timeout = rustix::event::Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

fn kill_children(children: &[ChildEntry]) {
    use rustix::process::{Pid, Signal, kill_process_group, pidfd_send_signal};
    for c in children {
        let Some(fd) = &c.pidfd else { continue };
        if exited(fd, 0) {
            continue;
        }
        // Children lead their own process group (see `cmd`): that takes their helpers too.
        if let Some(pid) = Pid::from_raw(c.pid as i32) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        let _ = pidfd_send_signal(fd.as_fd(), Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children {
        if let Some(fd) = &c.pidfd {
            let left = deadline.saturating_duration_since(Instant::now());
            exited(fd, left.as_millis() as i64);
        }
    }
}

/// Set once an interruption is being cleaned up.
static INTERRUPTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once the build's thread has stopped for good after an interruption ([`wait_for_exit`], or
/// an abort held by [`hold_aborts_during_cleanup`]).
static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the handler waits for the build's thread to stop before it exits anyway.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Work abandoned by an interruption (libostree in the middle of a deploy) can trip an assertion
/// when its tree is removed under it; its `abort()` then waits for the cleanup, which exits with
/// the signal's code. Any other abort aborts as usual.
#[allow(unsafe_code)]
fn hold_aborts_during_cleanup() -> Result<()> {
    // SAFETY: the action only loads an atomic and sleeps (nanosleep), both async-signal-safe.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGABRT, || {
            if INTERRUPTING.load(std::sync::atomic::Ordering::SeqCst) {
                STOPPED.store(true, std::sync::atomic::Ordering::SeqCst);
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
        })
    }
    .context("installing the SIGABRT handler")?;
    Ok(())
}

/// Installs the SIGINT/SIGTERM handler thread (see the module documentation). Call once, early.
pub fn install_signal_handler() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    hold_aborts_during_cleanup()?;
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the SIGINT/SIGTERM handler")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                interrupted(sig);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Blocks the calling thread for good: the interruption handler is cleaning up and will exit the
/// process.
pub fn wait_for_exit() -> ! {
    STOPPED.store(true, std::sync::atomic::Ordering::SeqCst);
    loop {
        std::thread::park();
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// The interruption message: where the build stopped and what became of its output directories.
pub fn interruption_message(
    signal: &str,
    stage: Option<&str>,
    outdirs: &[PathBuf],
    failures: &[String],
) -> String {
    let mut s = format!("interrupted ({signal})");
    if let Some(st) = stage {
        s.push_str(&format!(" while {st}"));
    }
    let dirs: Vec<String> = outdirs.iter().map(|d| d.display().to_string()).collect();
    if failures.is_empty() {
        if !dirs.is_empty() {
            s.push_str(&format!("; nothing was left in {}", dirs.join(", ")));
        }
    } else {
        let what = failures.join("; ").replace('\n', " ");
        s.push_str(&format!("; cleaning up failed: {what}"));
        if !dirs.is_empty() {
            s.push_str(&format!(
                " (`imagebuilder clean {}` removes what is left)",
                dirs.join(" ")
            ));
        }
    }
    s
}

/// Points stderr at /dev/null and returns the console it was: after an interruption, work the build
/// abandoned (libostree's threads in the middle of a deploy whose tree is being removed) may still
/// print, and the one line that ends the build must be the last one.
fn quiet_stderr() -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    let console = rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), 3).ok()?;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stderr(null.as_fd());
    }
    Some(std::fs::File::from(console))
}

fn interrupted(sig: i32) -> ! {
    INTERRUPTING.store(true, std::sync::atomic::Ordering::SeqCst);
    CLEANING.set(true);
    let console = quiet_stderr();
    let (children, mut actions, stage, outdirs) = {
        let mut r = registry();
        r.interrupted = Some(sig);
        (
            std::mem::take(&mut r.children),
            std::mem::take(&mut r.actions),
            r.stage.clone(),
            r.outdirs.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        )
    };
    kill_children(&children);
    let _publishing = CRITICAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    let mut again = Vec::new();
    while let Some(e) = actions.pop() {
        if let Some(a) = e.again {
            again.push((e.what.clone(), a));
        }
        if let Err(err) = run_action(&e.what, e.action) {
            failures.push(format!("{err:#}"));
        }
    }
    // Until the build's thread stops (its next step fails: its trees are gone), it may still
    // recreate a directory that was removed; repeat those removals once it has.
    if !again.is_empty() {
        let deadline = Instant::now() + STOP_WAIT;
        while !STOPPED.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for (what, a) in again {
            if let Err(err) = run_action(&what, Box::new(move || a())) {
                failures.push(format!("{err:#}"));
            }
        }
    }
    let msg = interruption_message(signal_name(sig), stage.as_deref(), &outdirs, &failures);
    // Clear a progress bar's line first.
    let clear = if crate::progress::enabled() {
        "\r\x1b[2K"
    } else {
        ""
    };
    match console {
        Some(mut c) => {
            let _ = std::io::Write::write_all(&mut c, format!("{clear}{msg}\n").as_bytes());
        }
        None => eprintln!("{clear}{msg}"),
    }
    std::process::exit(128 + sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn guards_run_once_on_drop_or_run_and_never_after_disarm() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = |n: &Arc<AtomicUsize>| {
            let n = n.clone();
            move || {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        };
        drop(register("a", counter(&n)));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        register("b", counter(&n)).run().unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        register("c", counter(&n)).disarm();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        let e = register("removing x", || anyhow::bail!("boom"))
            .run()
            .unwrap_err();
        assert_eq!(format!("{e:#}"), "removing x: boom");
    }

    #[test]
    fn message_names_signal_stage_and_outdir() {
        assert_eq!(
            interruption_message(
                "SIGTERM",
                Some("writing the qcow2"),
                &[PathBuf::from("out")],
                &[]
            ),
            "interrupted (SIGTERM) while writing the qcow2; nothing was left in out"
        );
        assert_eq!(
            interruption_message("SIGINT", None, &[], &[]),
            "interrupted (SIGINT)"
        );
        let m = interruption_message(
            "SIGINT",
            Some("deploying r"),
            &[PathBuf::from("o")],
            &["unmounting /o/m: busy\nmore".into()],
        );
        assert_eq!(
            m,
            "interrupted (SIGINT) while deploying r; cleaning up failed: unmounting /o/m: busy more \
             (`imagebuilder clean o` removes what is left)"
        );
        assert!(!m.contains('\n'));
    }

    #[test]
    fn spawned_children_are_registered_until_forgotten() {
        let mut c = Command::new("true");
        let mut child = spawn_child(&mut c).unwrap();
        let pid = child.id();
        assert!(registry().children.iter().any(|c| c.pid == pid));
        child.wait().unwrap();
        forget_child(pid);
        assert!(!registry().children.iter().any(|c| c.pid == pid));
    }
}
