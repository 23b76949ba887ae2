//! Kickstart `%post` scripts, run in a bubblewrap sandbox over the deployment.
//!
//! # The sandbox
//!
//! A chroot script (the default) sees the deployment as `/`:
//!
//! * `/` is the deployed root **read-only**: `/usr` of a fresh OSTree deployment is made of hard
//!   links into the repository, so a write there would corrupt the repository (a booted OSTree system
//!   has a read-only `/usr` too);
//! * `/etc` is the deployment's `/etc`, read-write; `/var` is the stateroot's `var` (what is mounted on
//!   `/var` at boot), read-write; `/home`, `/root`, `/opt`, `/srv`, `/usr/local`… are the tree's own
//!   symlinks into `/var`;
//! * for an OSTree deployment, `/sysroot` is the physical root read-only with `ostree/repo` writable,
//!   so `ostree remote add` works as in Anaconda; its `objects` stay read-only, since the
//!   deployment's files are hard links to them;
//! * `/proc`, `/dev` (a minimal devtmpfs-like set), `/run` (tmpfs) and `/tmp` and `/var/tmp` on tmpfs
//!   limited to the image's free space and **discarded** after the script;
//! * a new user namespace, keeping only the capabilities a script needs for owners and modes
//!   ([`crate::deployment::sandbox`]): no mount, remount or device node is possible, so every read-only bind
//!   above is read-only in fact, not by convention;
//! * a new PID, IPC and UTS namespace, and no network unless [`PostOptions::network`] is set;
//! * the environment is cleared except `PATH`, `HOME=/root`, `LANG=C.UTF-8`, `TERM=dumb`.
//!
//! A `--nochroot` script runs with the host's `/` read-only as its root and the target at
//! **`/mnt/sysimage`** (the same read-only/read-write split as above), exported as `$INSTALL_ROOT`
//! (and `$ANA_INSTALL_PATH`, Anaconda's name). Its `--interpreter` is looked up on the host.
//!
//! # Limits
//!
//! * Time: the sandbox is killed after [`PostOptions::timeout`]; that fails the build.
//! * Space: the script cannot write more than [`PostOptions::space_limit`] bytes — the free space of
//!   the image's root filesystem, which the caller computes. The scratch dirs are tmpfs of that size,
//!   so the Fedora Atomic `dd if=/dev/zero of=/var/tmp/zeros; rm -f /var/tmp/zeros` ends with ENOSPC at
//!   the image's own size, in memory, never on the host's disk. Every file is capped at that size too
//!   (`RLIMIT_FSIZE`, 1 MiB above it so that a full tmpfs reports ENOSPC first). Growth of the persistent `/etc` and `/var` is measured every 200 ms and the
//!   sandbox is killed when it passes the limit; that fails the build.
//!
//!   bubblewrap 0.8 (Debian 12) has no overlay support, and the project does not mount anything on the
//!   host, hence tmpfs scratch + measurement rather than a size-limited writable overlay.
//!
//! # Logs
//!
//! The script's stdout and stderr go to `LOG_DIR/post-N.log`. `--log=PATH` also gets a copy, the path
//! interpreted as Anaconda does: inside the target for a chroot script; for a `--nochroot` script a
//! path under `/mnt/sysimage` is in the target, any other path is not written on the host (a warning,
//! and the copy in the build's log directory stands).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::deployment::sandbox::UserNamespace;
use crate::deployment::sysconfig::Target;
use crate::util::cmd::{CommandExt, require_program};

/// Where the target appears inside a `--nochroot` script's sandbox.
pub const NOCHROOT_TARGET: &str = "/mnt/sysimage";

/// One `%post` section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PostScript {
    pub body: String,
    /// `--interpreter`; default `/bin/sh`.
    pub interpreter: Option<String>,
    pub nochroot: bool,
    pub erroronfail: bool,
    /// `--log` / `--logfile`.
    pub log: Option<String>,
    /// Line of the `%post` header in the kickstart, for messages.
    pub line: Option<usize>,
}

/// Limits and places for running scripts.
#[derive(Debug, Clone)]
pub struct PostOptions {
    pub timeout: Duration,
    /// Allow network access (a shared network namespace).
    pub network: bool,
    /// Bytes the scripts may write: the image root filesystem's free space.
    pub space_limit: u64,
    /// Where `post-N.log` files go (the build's `OUTDIR/logs`).
    pub log_dir: PathBuf,
    /// Host directories bound read-write into the sandbox (host path, path in the sandbox under
    /// `/tmp`), for programs the builder runs in the tree that write a result (dracut).
    pub binds: Vec<(PathBuf, String)>,
}

impl PostOptions {
    pub fn new(log_dir: impl Into<PathBuf>, space_limit: u64) -> PostOptions {
        PostOptions {
            timeout: Duration::from_secs(1800),
            network: false,
            space_limit,
            log_dir: log_dir.into(),
            binds: Vec::new(),
        }
    }
}

/// What happened to one script.
#[derive(Debug, Clone, Serialize)]
pub struct PostOutcome {
    pub index: usize,
    pub exit_code: Option<i32>,
    pub log: PathBuf,
    pub seconds: f64,
    /// What the caller should report (not logged here, so each is reported once).
    pub warnings: Vec<String>,
}

/// Allocated bytes of a tree (hard-linked files counted once), not following symlinks.
fn allocated(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    let mut total = 0;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir() {
            total += allocated(&e.path(), seen);
        }
    }
    total
}

fn usage(dirs: &[PathBuf]) -> u64 {
    let mut seen = std::collections::HashSet::new();
    dirs.iter().map(|d| allocated(d, &mut seen)).sum()
}

/// The physical sysroot of an OSTree deployment (`SYSROOT/ostree/deploy/OS/deploy/X.0`).
fn ostree_sysroot(t: &Target) -> Option<PathBuf> {
    let mut p = t.root.as_path();
    for expect in ["deploy", "", "deploy", "ostree"] {
        p = p.parent()?;
        if !expect.is_empty() && p.file_name()? != expect {
            return None;
        }
    }
    let sysroot = p.parent()?;
    sysroot
        .join("ostree/repo")
        .is_dir()
        .then(|| sysroot.to_path_buf())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The bubblewrap command line for one script (without the interpreter and script arguments).
fn sandbox(
    t: &Target,
    s: &PostScript,
    opts: &PostOptions,
    script_file: &Path,
    userns: Option<&UserNamespace>,
) -> Command {
    let limit = opts.space_limit.max(1).to_string();
    let mut c = Command::new("prlimit");
    // One MiB above the limit, so that a full scratch tmpfs reports ENOSPC (what scripts expect)
    // before the file size limit's SIGXFSZ.
    c.arg(format!("--fsize={}", opts.space_limit.max(1) + (1 << 20)))
        .arg("--")
        .arg("bwrap");
    crate::deployment::sandbox::confine(&mut c, userns);
    c.args([
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]);
    if !opts.network {
        c.arg("--unshare-net");
    }
    bind_target(&mut c, t, s, &limit);
    c.args(["--proc", "/proc", "--dev", "/dev"]);
    // /run is optional in a tree; the other mount points are checked by `check_mount_points`.
    if s.nochroot || t.root.join("run").is_dir() {
        c.args(["--tmpfs", "/run"]);
    }
    c.args(["--size", &limit, "--tmpfs", "/tmp"]);
    for (host, inside) in &opts.binds {
        c.arg("--bind").arg(host).arg(inside);
    }
    c.arg("--ro-bind").arg(script_file).arg("/tmp/ks-script");
    set_environment(&mut c, s);
    c.args(["--chdir", "/"]);
    c.arg(s.interpreter.as_deref().unwrap_or("/bin/sh"))
        .arg("/tmp/ks-script");
    c
}

/// The target's mounts: its root read-only (at `/`, or at [`NOCHROOT_TARGET`] over the host's
/// root), `/etc` and `/var` writable, `/var/tmp` a tmpfs of `limit` bytes, and the OSTree
/// sysroot with its repository writable and its objects not.
fn bind_target(c: &mut Command, t: &Target, s: &PostScript, limit: &str) {
    let base = if s.nochroot { NOCHROOT_TARGET } else { "" };
    if s.nochroot {
        // /mnt becomes a tmpfs so the mount point can be made on the read-only host root.
        c.args(["--ro-bind", "/", "/", "--tmpfs", "/mnt"]);
        c.arg("--ro-bind").arg(&t.root).arg(NOCHROOT_TARGET);
    } else {
        c.arg("--ro-bind").arg(&t.root).arg("/");
    }
    c.arg("--bind")
        .arg(t.root.join("etc"))
        .arg(format!("{base}/etc"));
    c.arg("--bind").arg(&t.var).arg(format!("{base}/var"));
    c.args(["--size", limit, "--tmpfs"])
        .arg(format!("{base}/var/tmp"));
    if let Some(sysroot) = ostree_sysroot(t) {
        c.arg("--ro-bind")
            .arg(&sysroot)
            .arg(format!("{base}/sysroot"));
        c.arg("--bind")
            .arg(sysroot.join("ostree/repo"))
            .arg(format!("{base}/sysroot/ostree/repo"));
        // The deployment's files are hard links to these objects: the repository's config and refs
        // stay writable (`ostree remote add`), its objects do not.
        let objects = sysroot.join("ostree/repo/objects");
        if objects.is_dir() {
            c.arg("--ro-bind")
                .arg(objects)
                .arg(format!("{base}/sysroot/ostree/repo/objects"));
        }
    }
}

/// A cleared environment but for `PATH`, `HOME`, `LANG` and `TERM`, and for a `--nochroot`
/// script where the target is (`INSTALL_ROOT`, `ANA_INSTALL_PATH`).
fn set_environment(c: &mut Command, s: &PostScript) {
    c.args([
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    c.args([
        "--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8", "--setenv", "TERM", "dumb",
    ]);
    if s.nochroot {
        c.args([
            "--setenv",
            "INSTALL_ROOT",
            NOCHROOT_TARGET,
            "--setenv",
            "ANA_INSTALL_PATH",
            NOCHROOT_TARGET,
        ]);
    }
}

/// The read-only root must already have the directories the sandbox mounts on.
fn check_mount_points(t: &Target, s: &PostScript) -> Result<()> {
    let needed: &[&str] = if s.nochroot {
        &["etc"]
    } else {
        &["etc", "var", "proc", "dev", "tmp"]
    };
    for d in needed {
        let p = t.root.join(d);
        if !p.is_dir() {
            bail!(
                "{}: the tree has no /{d} directory, needed to run %post scripts in it",
                p.display()
            );
        }
    }
    if !t.var.is_dir() {
        bail!(
            "{}: the /var directory of the tree does not exist",
            t.var.display()
        );
    }
    Ok(())
}

fn describe(index: usize, s: &PostScript) -> String {
    match s.line {
        Some(l) => format!("%post script #{index} (kickstart line {l})"),
        None => format!("%post script #{index}"),
    }
}

/// Runs one script; `index` numbers the log file. Fails when the script fails and has
/// `--erroronfail`, and always on a time-limit or space-limit overrun.
pub fn run_script(
    t: &Target,
    index: usize,
    s: &PostScript,
    opts: &PostOptions,
) -> Result<PostOutcome> {
    require_program("bwrap")?;
    require_program("prlimit")?;
    let what = describe(index, s);
    fs::create_dir_all(&opts.log_dir)
        .with_context(|| format!("creating {}", opts.log_dir.display()))?;
    let log_path = opts.log_dir.join(format!("post-{index}.log"));
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut script = tempfile::Builder::new()
        .prefix("ks-script-")
        .tempfile()
        .context("creating the script file")?;
    std::io::Write::write_all(&mut script, s.body.as_bytes()).context("writing the script file")?;
    let _script_on_interrupt = crate::util::cleanup::remove_file_guard(script.path());

    let watched = [t.root.join("etc"), t.var.clone()];
    let before = usage(&watched);
    check_mount_points(t, s)?;
    let userns = UserNamespace::for_scripts()?;
    let mut cmd = sandbox(t, s, opts, script.path(), userns.as_ref());
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log);
    tracing::info!("running {what}");
    let start = Instant::now();
    let child = cmd.spawn_logged()?;
    let (status, mut killed) = wait_within_limits(child, opts, &watched, before, start)?;
    let seconds = start.elapsed().as_secs_f64();
    if killed.is_none() {
        let grown = usage(&watched).saturating_sub(before);
        if grown >= opts.space_limit {
            killed = Some(format!(
                "it wrote {grown} bytes into /etc and /var, over the image's free space of {} bytes",
                opts.space_limit
            ));
        }
    }
    let mut warnings = copy_log(t, s, &what, &log_path)?;
    if let Some(why) = killed {
        bail!(
            "{what} {why}; last lines of its log ({}):\n{}",
            log_path.display(),
            tail(&log_path, 20)
        );
    }
    warnings.extend(check_status(s, &what, status, &log_path)?);
    Ok(PostOutcome {
        index,
        exit_code: status.code(),
        log: log_path,
        seconds,
        warnings,
    })
}

/// Waits for the script, killing it past the time limit or when `/etc` and `/var` (`watched`,
/// `before` bytes at the start) grew past the space limit; returns its status and why it was
/// killed.
fn wait_within_limits(
    mut child: std::process::Child,
    opts: &PostOptions,
    watched: &[PathBuf],
    before: u64,
    start: Instant,
) -> Result<(std::process::ExitStatus, Option<String>)> {
    let mut last_check = Instant::now();
    let mut killed: Option<String> = None;
    loop {
        if let Some(st) = child.try_wait().context("waiting for the script")? {
            return Ok((st, killed));
        }
        if killed.is_none() {
            if start.elapsed() >= opts.timeout {
                killed = Some(format!(
                    "killed after the time limit of {} s",
                    opts.timeout.as_secs()
                ));
            } else if last_check.elapsed() >= Duration::from_millis(200) {
                last_check = Instant::now();
                let grown = usage(watched).saturating_sub(before);
                if grown >= opts.space_limit {
                    killed = Some(format!(
                        "killed: it wrote {grown} bytes into /etc and /var, over the image's free space of {} bytes",
                        opts.space_limit
                    ));
                }
            }
            if killed.is_some() {
                let _ = child.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the script's log to its `--log` path in the target; a `--nochroot` path outside the
/// target is not written, and the warning saying so is returned.
fn copy_log(t: &Target, s: &PostScript, what: &str, log_path: &Path) -> Result<Vec<String>> {
    let Some(l) = &s.log else {
        return Ok(Vec::new());
    };
    let in_target = if s.nochroot {
        l.strip_prefix(NOCHROOT_TARGET)
            .filter(|r| r.starts_with('/'))
            .map(str::to_string)
    } else {
        Some(l.clone())
    };
    match in_target {
        Some(p) => {
            let text = fs::read(log_path).unwrap_or_default();
            t.write(&p, &text, 0o600, (0, 0))
                .with_context(|| format!("{what}: writing --log={l}"))?;
            Ok(Vec::new())
        }
        None => {
            let w = format!(
                "{what}: --log={l} is outside {NOCHROOT_TARGET}: not written on the build host; see {}",
                log_path.display()
            );
            Ok(vec![w])
        }
    }
}

/// A failed script fails the build with `--erroronfail`, else it is a warning (returned).
fn check_status(
    s: &PostScript,
    what: &str,
    status: std::process::ExitStatus,
    log_path: &Path,
) -> Result<Option<String>> {
    if status.success() {
        return Ok(None);
    }
    if s.erroronfail {
        bail!(
            "{what} failed ({status}) and has --erroronfail; last lines of its log ({}):\n{}",
            log_path.display(),
            tail(log_path, 20)
        );
    }
    Ok(Some(format!(
        "{what} failed ({status}); the build goes on (no --erroronfail); log: {}",
        log_path.display()
    )))
}

/// The kickstart's `%post` sections, in file order (other script kinds are not run by an image build).
pub fn scripts_from_kickstart(ks: &kickstart::Kickstart) -> Vec<PostScript> {
    ks.scripts
        .iter()
        .filter(|s| s.kind == kickstart::ScriptKind::Post)
        .map(|s| PostScript {
            body: s.body.clone(),
            interpreter: Some(s.interpreter.clone()).filter(|i| !i.is_empty()),
            nochroot: !s.chroot,
            erroronfail: s.error_on_fail,
            log: s.log.clone(),
            line: Some(s.location.line),
        })
        .collect()
}

/// Runs the scripts in kickstart order; stops at the first failing `--erroronfail` script.
pub fn run_scripts(
    t: &Target,
    scripts: &[PostScript],
    opts: &PostOptions,
) -> Result<Vec<PostOutcome>> {
    scripts
        .iter()
        .enumerate()
        .map(|(i, s)| run_script(t, i + 1, s, opts))
        .collect()
}

/// The whole step for an image build: the kickstart's `%post` scripts run over the OSTree deployment
/// directory `deployment`.
pub fn run_kickstart_post(
    deployment: &Path,
    ks: &kickstart::Kickstart,
    opts: &PostOptions,
) -> Result<Vec<PostOutcome>> {
    let target = Target::ostree_deployment(deployment)?;
    run_scripts(&target, &scripts_from_kickstart(ks), opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_sections_from_kickstart() {
        let text = "rootpw --lock\n%pre\necho pre\n%end\n\
                    %post --erroronfail --log=/root/post.log\necho one\n%end\n\
                    %post --nochroot --interpreter=/usr/bin/python3\nprint(1)\n%end\n";
        let ks = kickstart::parse(text, kickstart::Version::devel()).unwrap();
        let s = scripts_from_kickstart(&ks);
        assert_eq!(s.len(), 2);
        assert!(s[0].erroronfail && !s[0].nochroot);
        assert_eq!(s[0].log.as_deref(), Some("/root/post.log"));
        assert_eq!(s[0].body, "echo one\n");
        assert_eq!(s[0].line, Some(5));
        assert!(s[1].nochroot);
        assert_eq!(s[1].interpreter.as_deref(), Some("/usr/bin/python3"));
    }
}
