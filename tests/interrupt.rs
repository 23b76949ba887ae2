//! Interrupted builds and one build per output directory, end to end on the demo tree:
//! SIGTERM in each long stage (deploy, mke2fs, the qcow2 writer, the XFS copy) leaves no mount,
//! loop device, child process or file behind and exits 143 with one line; a SIGKILL (no handler)
//! during the XFS copy leaves no mount in any namespace (the mount lived in the copy helper's
//! private mount namespace), and `imagebuilder clean` or the next build removes the stale loop
//! device and staging tree; a second build into a locked OUTDIR fails at once naming the holder; a failing
//! `--overwrite` build keeps the previous outputs and logs byte for byte; bad output names fail
//! before any work.
//!
//! The stage is recognised from the build's own log lines on stderr, not by sleeping.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imagebuilder::tree::demo::{DemoTree, ensure_demo_tree};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
}

fn demo_tree() -> DemoTree {
    ensure_demo_tree(None).expect("building the demo tree")
}

fn demo_ks() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/demo-qcow2.ks"
    ))
    .unwrap()
}

/// The demo kickstart with an XFS root and no separate /boot (as in `image_boot.rs`).
fn xfs_ks() -> String {
    let body: String = demo_ks()
        .lines()
        .filter(|l| !l.starts_with("part /boot "))
        .map(|l| {
            if l.starts_with("part / ") {
                "part / --fstype=xfs --size=2048 --grow --label=root".to_string()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert!(body.contains("--fstype=xfs") && !body.contains("part /boot "));
    body
}

fn write_ks(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn image_args(ks: &Path, tree: &DemoTree, out: &Path, format: &str) -> Vec<String> {
    vec![
        "image".into(),
        "--kickstart".into(),
        ks.display().to_string(),
        "--ostreerepo".into(),
        tree.repo.display().to_string(),
        "-i".into(),
        format.into(),
        "--name".into(),
        "demo".into(),
        "-o".into(),
        out.display().to_string(),
    ]
}

/// A running build whose stderr lines are collected as they come.
struct Build {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
}

impl Build {
    /// Starts `imagebuilder ARGS` with TMPDIR `tmp`.
    fn start(args: &[String], tmp: &Path) -> Build {
        std::fs::create_dir_all(tmp).unwrap();
        let mut child = bin()
            .args(args)
            .env_remove("RUST_LOG")
            .env("TMPDIR", tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                l2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Build { child, lines, rx }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until a stderr line contains `pat`; returns how many lines had come by then.
    fn wait_for(&self, pat: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if l.contains(pat) => return self.lines.lock().unwrap().len(),
                Ok(_) => {}
                Err(_) => panic!(
                    "no stderr line with {pat:?} within {timeout:?}:\n{}",
                    self.lines.lock().unwrap().join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_raw(self.pid()).unwrap(), sig)
            .unwrap();
    }

    fn wait(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the build did not exit within {timeout:?}:\n{}",
                    self.lines.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader thread drain the pipe.
        let t = Instant::now();
        while self.rx.recv_timeout(Duration::from_millis(200)).is_ok() && t.elapsed().as_secs() < 5
        {
        }
        let lines = self.lines.lock().unwrap().clone();
        (st, lines)
    }
}

fn run(args: &[String]) -> Output {
    bin().args(args).env_remove("RUST_LOG").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn unescape(s: &str) -> String {
    imagebuilder::blockdev::mounts::unescape_mount_path(s)
        .to_string_lossy()
        .into_owned()
}

/// Mount points under `dir` in this mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| Path::new(m).starts_with(&dir))
        .collect()
}

/// Loop devices whose backing file is under `dir`, read from `losetup -J` (not the code under
/// test's own /sys reader).
fn loops_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let o = Command::new("losetup").arg("-J").output().unwrap();
    assert!(o.status.success());
    if o.stdout.iter().all(u8::is_ascii_whitespace) {
        return Vec::new(); // no loop device at all: losetup prints nothing
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["loopdevices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            let back = d["back-file"].as_str().unwrap_or("");
            let back = back.strip_suffix(" (deleted)").unwrap_or(back);
            Path::new(back).starts_with(&dir)
        })
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

/// Processes (other than this test) whose command line or working directory names `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| text(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if cmdline.contains(&needle) || cwd.starts_with(&dir) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// What every interrupted build must leave: no entry of its own in OUTDIR (it was empty before),
/// no mount, no loop device, no process; exit 143; one line naming the stage, printed last.
fn assert_interrupted_cleanly(
    out: &Path,
    st: ExitStatus,
    lines: &[String],
    seen: usize,
    stage: &str,
) {
    let all = lines.join("\n");
    assert_eq!(st.code(), Some(143), "{st:?}\n{all}");
    let expected = format!(
        "interrupted (SIGTERM) while {stage}; nothing was left in {}",
        out.display()
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some(expected.as_str()),
        "{all}"
    );
    let after = &lines[seen.min(lines.len())..];
    assert_eq!(
        after.iter().filter(|l| l.contains("interrupted")).count(),
        1,
        "{all}"
    );
    for l in after {
        assert!(
            !(l.contains("WARN") || l.contains("ERROR") || l.starts_with("error")),
            "a warning or error after the signal: {l}\n{all}"
        );
    }
    assert_eq!(
        names(out),
        Vec::<String>::new(),
        "OUTDIR not empty after the interrupted build"
    );
    assert_eq!(mounts_under(out), Vec::<String>::new());
    assert_eq!(loops_under(out), Vec::<String>::new());
    assert_eq!(processes_using(out), Vec::<String>::new());
    // The build's TMPDIR (`%post` scripts are written there) is empty again.
    assert_eq!(names(&tmp_of(out)), Vec::<String>::new());
}

/// The TMPDIR a build into `out` runs with: `out`'s sibling `tmp`.
fn tmp_of(out: &Path) -> PathBuf {
    out.with_file_name("tmp")
}

fn rerun_succeeds(args: &[String], out: &Path) {
    let o = run(args);
    assert!(o.status.success(), "rerun failed:\n{}", text(&o.stderr));
    let n = names(out);
    assert!(n.iter().all(|n| !n.starts_with(".imagebuilder")), "{n:?}");
    assert!(n.contains(&"SHA256SUMS".to_string()), "{n:?}");
    imagebuilder::build::publish::verify_sums(out).unwrap();
}

/// SIGTERM once a stderr line containing `pat` appears; checks the result and reruns.
fn sigterm_during(ks_name: &str, ks_body: &str, format: &str, pat: &str, stage: &str) {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    let ks = write_ks(d.path(), ks_name, ks_body);
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let args = image_args(&ks, &tree, &out, format);
    let b = Build::start(&args, &tmp_of(&out));
    let seen = b.wait_for(pat, Duration::from_secs(600));
    b.signal(rustix::process::Signal::TERM);
    let t = Instant::now();
    let (st, lines) = b.wait(Duration::from_secs(300));
    eprintln!(
        "{stage}: exited {:.1}s after SIGTERM",
        t.elapsed().as_secs_f64()
    );
    assert_interrupted_cleanly(&out, st, &lines, seen, stage);
    rerun_succeeds(&args, &out);
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigterm_during_deploy() {
    sigterm_during(
        "demo.ks",
        &demo_ks(),
        "qcow2",
        "INFO deploying demo/x86_64/base",
        "deploying demo/x86_64/base",
    );
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigterm_during_mkfs() {
    sigterm_during(
        "demo.ks",
        &demo_ks(),
        "qcow2",
        "INFO making ext4 on / (",
        "making ext4 on /",
    );
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigterm_during_qcow2() {
    sigterm_during(
        "demo.ks",
        &demo_ks(),
        "qcow2",
        "INFO writing qcow2",
        "writing the qcow2",
    );
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigterm_during_xfs_copy() {
    sigterm_during(
        "xfs.ks",
        &xfs_ks(),
        "raw",
        "into xfs on / (cp -a)",
        "copying the tree into xfs on /",
    );
}

/// Mounts under `dir` that some other process sees in its own mount namespace (read from every
/// `/proc/PID/mountinfo`), as `PID: MOUNT POINT`.
fn namespaced_mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(info) = std::fs::read_to_string(e.path().join("mountinfo")) else {
            continue; // gone meanwhile
        };
        for m in info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(unescape)
        {
            if Path::new(&m).starts_with(&dir) {
                found.push(format!("{pid}: {m}"));
            }
        }
    }
    found
}

/// SIGKILL during the XFS copy, once the filesystem is mounted in the copy helper's namespace:
/// no child survives and no mount is left in any namespace, while the loop device and the staging
/// tree stay (for `clean` or the next build). Returns the OUTDIR and the build's arguments.
fn killed_during_xfs_copy(d: &Path, tree: &DemoTree) -> (PathBuf, Vec<String>) {
    let ks = write_ks(d, "xfs.ks", &xfs_ks());
    let out = d.join("out");
    let args = image_args(&ks, tree, &out, "raw");
    let b = Build::start(&args, &tmp_of(&out));
    b.wait_for("into xfs on / (cp -a)", Duration::from_secs(600));
    // The copy is under way once the helper's namespace has the mount; this namespace never does.
    let deadline = Instant::now() + Duration::from_secs(60);
    while namespaced_mounts_under(&out).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the XFS mount never appeared in the copy helper's namespace"
        );
        assert_eq!(mounts_under(&out), Vec::<String>::new());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mounts_under(&out), Vec::<String>::new());
    b.signal(rustix::process::Signal::KILL);
    let (st, _) = b.wait(Duration::from_secs(60));
    assert_eq!(st.code(), None, "killed by a signal");
    // PR_SET_PDEATHSIG: the helper and its cp die with the builder.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(processes_using(&out).is_empty() && namespaced_mounts_under(&out).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_using(&out), Vec::<String>::new());
    assert_eq!(
        mounts_under(&out),
        Vec::<String>::new(),
        "a mount under OUTDIR in this namespace after SIGKILL, before any clean"
    );
    assert_eq!(namespaced_mounts_under(&out), Vec::<String>::new());
    assert_eq!(loops_under(&out).len(), 1, "{:?}", loops_under(&out));
    let n = names(&out);
    assert!(
        n.iter().any(|n| n.starts_with(".imagebuilder-work-")),
        "{n:?}"
    );
    (out, args)
}

fn assert_nothing_stale(out: &Path) {
    assert_eq!(mounts_under(out), Vec::<String>::new());
    assert_eq!(loops_under(out), Vec::<String>::new());
    let n = names(out);
    assert!(n.iter().all(|n| !n.starts_with(".imagebuilder")), "{n:?}");
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigkill_during_xfs_copy_leaves_no_mount_even_before_clean() {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    // Asserts this process's /proc/self/mountinfo has nothing under OUTDIR right after the kill.
    let (out, _) = killed_during_xfs_copy(d.path(), &tree);
    let o = bin().arg("clean").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_nothing_stale(&out);
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigkill_then_clean_removes_loop_and_staging_tree() {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    let (out, _) = killed_during_xfs_copy(d.path(), &tree);
    let o = bin().arg("clean").arg(&out).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["unmounted"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["detached"].as_array().unwrap().len(), 1, "{r}");
    let removed: Vec<&str> = r["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        removed.iter().any(|p| p.contains("/.imagebuilder-work-")),
        "{removed:?}"
    );
    assert_nothing_stale(&out);
    assert_eq!(names(&out), Vec::<String>::new());
    let o = bin().arg("clean").arg(&out).output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        text(&o.stdout).trim(),
        format!("nothing to clean in {}", out.display())
    );
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn sigkill_then_next_build_removes_what_was_left() {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    let (out, args) = killed_during_xfs_copy(d.path(), &tree);
    let o = run(&args);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("WARN unmounted "), "{err}");
    assert!(
        err.contains("WARN detached /dev/loop") && err.contains("(left by an earlier build)"),
        "{err}"
    );
    assert!(
        err.contains("WARN removed ") && err.contains(".imagebuilder-work-"),
        "{err}"
    );
    assert_nothing_stale(&out);
    assert_eq!(
        names(&out),
        ["SHA256SUMS", "demo.raw", "logs", "metadata.json"]
    );
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn second_build_into_a_locked_outdir_fails_at_once_naming_the_holder() {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    let ks = write_ks(d.path(), "demo.ks", &demo_ks());
    let out = d.path().join("out");
    let args = image_args(&ks, &tree, &out, "qcow2");
    let first = Build::start(&args, &tmp_of(&out));
    let seen = first.wait_for("INFO deploying demo/x86_64/base", Duration::from_secs(600));
    let t = Instant::now();
    let o = run(&args);
    let took = t.elapsed();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} is in use by another build (pid {}: ",
            out.display(),
            first.pid()
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let o = bin().arg("clean").arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(&format!("(pid {}: ", first.pid())),
        "{}",
        text(&o.stderr)
    );
    // The refused build and clean touched nothing of the running one.
    first.signal(rustix::process::Signal::TERM);
    let (st, lines) = first.wait(Duration::from_secs(300));
    assert_interrupted_cleanly(&out, st, &lines, seen, "deploying demo/x86_64/base");
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in walk(dir) {
        if e.is_file() {
            m.insert(
                e.strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(&e).unwrap(),
            );
        }
    }
    m
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        }
        v.push(p);
    }
    v
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn failing_overwrite_build_keeps_previous_outputs_and_logs() {
    let tree = demo_tree();
    let d = tempfile::tempdir().unwrap();
    let good = write_ks(d.path(), "good.ks", &demo_ks());
    let bad = write_ks(
        d.path(),
        "bad.ks",
        &format!(
            "{}\n%post --erroronfail\necho failing-on-purpose\nexit 1\n%end\n",
            demo_ks()
        ),
    );
    let out = d.path().join("out");
    let o = run(&image_args(&good, &tree, &out, "qcow2"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = snapshot(&out);
    assert!(
        before.contains_key(Path::new("logs/demo.log")),
        "{:?}",
        before.keys()
    );
    assert!(before.contains_key(Path::new("demo.qcow2")));

    let mut args = image_args(&bad, &tree, &out, "qcow2");
    args.push("--overwrite".into());
    let o = run(&args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("has --erroronfail"), "{err}");
    let failed = out.join("logs/failed-demo");
    assert!(
        err.contains(&failed.join("post-2.log").display().to_string()),
        "the error names the kept log: {err}"
    );
    let mut after = snapshot(&out);
    let failure_logs: Vec<PathBuf> = after
        .keys()
        .filter(|k| k.starts_with("logs/failed-demo"))
        .cloned()
        .collect();
    for k in &failure_logs {
        after.remove(k);
    }
    assert!(
        after == before,
        "the failed build changed the previous build's files"
    );
    assert!(
        std::fs::read_to_string(failed.join("demo.log"))
            .unwrap()
            .contains("FAILED: %post scripts failed"),
    );
    assert!(
        std::fs::read_to_string(failed.join("post-2.log"))
            .unwrap()
            .contains("failing-on-purpose")
    );
    assert!(names(&out).iter().all(|n| !n.starts_with(".imagebuilder")));

    // A successful --overwrite build replaces the logs, the failure's included.
    let mut args = image_args(&good, &tree, &out, "qcow2");
    args.push("--overwrite".into());
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(names(&out.join("logs")), ["demo.log", "post-1.log"]);
}

#[test]
#[ignore = "slow tier: `image` checks the host first (root, the image tools)"]
fn bad_output_names_fail_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let ks = write_ks(d.path(), "demo.ks", &demo_ks());
    let out = d.path().join("out");
    for (opt, value, shown) in [
        ("--name", "a\nb", "--name \"a\\nb\" contains '\\n'"),
        ("--name", "a b", "--name \"a b\" contains ' '"),
        ("--name", ".hidden", "--name \".hidden\" starts with `.`"),
        ("--release", "1 2", "--release \"1 2\" contains ' '"),
    ] {
        let mut args: Vec<String> = [
            "image",
            "--kickstart",
            ks.to_str().unwrap(),
            "--ostreerepo",
            "/nonexistent-repo",
            "-i",
            "qcow2",
            "-o",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .into();
        args.extend([opt.to_string(), value.to_string()]);
        if opt == "--release" {
            args.extend(["--version".into(), "29".into()]);
        }
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.starts_with(&format!("error: {shown}")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out.exists(), "OUTDIR was created for {value:?}");
    }
}
