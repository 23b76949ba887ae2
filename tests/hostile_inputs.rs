//! Hostile inputs end to end: FIFOs, devices, directories, oversized and endless files, deep XML,
//! exponential config interpolation and CRLF kickstarts. Every run must end by itself (it is
//! killed after 20 s, and a kill fails the test), under a 2 GiB address-space cap, with exit code 1,
//! a message naming the file (and line), and no output written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const KILL_AFTER: Duration = Duration::from_secs(20);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `imagebuilder ARGS` in `dir` with its address space capped, killing it after
/// [`KILL_AFTER`]; panics if it had to be killed.
fn run(dir: &Path, args: &[&str]) -> Run {
    let out = dir.join(".stdout");
    let err = dir.join(".stderr");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("run imagebuilder");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > KILL_AFTER {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "imagebuilder {args:?} still running after {KILL_AFTER:?}: killed\nstderr: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let r = Run {
        code: status.code(),
        stdout: fs::read_to_string(&out).unwrap(),
        stderr: fs::read_to_string(&err).unwrap(),
    };
    fs::remove_file(out).unwrap();
    fs::remove_file(err).unwrap();
    r
}

/// Asserts exit code 1 and that `text` (stdout + stderr) contains every one of `want`.
fn fails_with(r: &Run, want: &[&str]) {
    let text = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, Some(1), "{text}");
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
}

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().expect("mkfifo");
    assert!(st.success());
}

/// The files directly in `dir` (the test's own capture files excluded).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn ks_validate_refuses_special_files_at_once() {
    let d = tempdir();
    mkfifo(&d.path().join("fifo.ks"));
    fs::create_dir(d.path().join("dir.ks")).unwrap();
    let r = run(d.path(), &["ks", "validate", "/dev/zero"]);
    fails_with(
        &r,
        &[
            "/dev/zero:0: error: Unable to open input kickstart file: Error opening file: not a regular file (a character device): '/dev/zero'",
            "/dev/zero: INVALID",
        ],
    );
    // --syntax auto reads the file for its #version= line too
    let r = run(d.path(), &["ks", "validate", "--syntax", "auto", "fifo.ks"]);
    fails_with(
        &r,
        &[
            "fifo.ks:0: error:",
            "not a regular file (a FIFO): 'fifo.ks'",
        ],
    );
    let r = run(d.path(), &["ks", "validate", "--json", "dir.ks"]);
    fails_with(&r, &["[Errno 21] Is a directory: 'dir.ks'"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["file"].as_str(), v["ok"].as_bool()),
        (Some("dir.ks"), Some(false))
    );
}

#[test]
fn ks_includes_of_endless_files_name_the_include_site() {
    let d = tempdir();
    mkfifo(&d.path().join("fifo.ks"));
    fs::write(
        d.path().join("zero.ks"),
        "lang en_US.UTF-8\n%include /dev/zero\n",
    )
    .unwrap();
    fs::write(
        d.path().join("pipe.ks"),
        "lang en_US.UTF-8\n# x\n%post\n%include fifo.ks\n%end\n",
    )
    .unwrap();
    let r = run(d.path(), &["ks", "validate", "zero.ks"]);
    fails_with(
        &r,
        &[
            "/dev/zero:0: error: Unable to open input kickstart file: Error opening file: not a regular file (a character device)",
            "included from zero.ks:2",
        ],
    );
    let before = listing(d.path());
    for (ks, site) in [("zero.ks", "zero.ks:2"), ("pipe.ks", "pipe.ks:4")] {
        let r = run(d.path(), &["ks", "flatten", ks, "-o", "out.ks"]);
        fails_with(&r, &["error: ", "not a regular file", site]);
        assert_eq!(listing(d.path()), before, "ks flatten {ks} left a file");
    }
}

#[test]
fn ks_file_and_total_sizes_are_bounded() {
    let d = tempdir();
    let big = fs::File::create(d.path().join("huge.ks")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    drop(big);
    let r = run(d.path(), &["ks", "validate", "huge.ks"]);
    fails_with(
        &r,
        &[
            "huge.ks:0: error:",
            "larger than the limit of 16 MiB: 'huge.ks'",
        ],
    );
    // a 15 MiB include is fine once; five of them pass the 64 MiB total at the fifth
    let line = format!("#{}\n", "x".repeat(1023));
    fs::write(d.path().join("big.ks"), line.repeat(15 << 10)).unwrap();
    fs::write(
        d.path().join("top.ks"),
        "lang en_US.UTF-8\n%include big.ks\n%include big.ks\n%include big.ks\n%include big.ks\n%include big.ks\n",
    )
    .unwrap();
    let r = run(d.path(), &["ks", "validate", "top.ks"]);
    fails_with(
        &r,
        &[
            "top.ks:6: error: %include big.ks: the kickstart and the files it includes exceed 64 MiB in total",
        ],
    );
    let before = listing(d.path());
    let r = run(d.path(), &["ks", "flatten", "top.ks", "-o", "out.ks"]);
    fails_with(&r, &["top.ks:6: error: %include big.ks: "]);
    assert_eq!(listing(d.path()), before);
}

#[test]
fn crlf_kickstarts_flatten_like_their_lf_twin() {
    let d = tempdir();
    let lf =
        "lang en_US.UTF-8\nrootpw --plaintext pw\n%post\ncat > /etc/motd <<EOT\nhello\nEOT\n%end\n";
    fs::write(d.path().join("lf.ks"), lf).unwrap();
    fs::write(d.path().join("crlf.ks"), lf.replace('\n', "\r\n")).unwrap();
    fs::write(d.path().join("cr.ks"), lf.replace('\n', "\r")).unwrap();
    let want = run(d.path(), &["ks", "flatten", "lf.ks"]);
    assert_eq!(want.code, Some(0), "{}", want.stderr);
    assert!(
        want.stdout
            .contains("%post\ncat > /etc/motd <<EOT\nhello\nEOT\n%end")
    );
    for f in ["crlf.ks", "cr.ks"] {
        let r = run(d.path(), &["ks", "flatten", f]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert_eq!(r.stdout, want.stdout, "{f}");
        assert!(!r.stdout.contains('\r'));
    }
    // errors are on the same line whatever the line ends
    let bad = "lang en_US.UTF-8\n\nbogus --x\n";
    for (name, text) in [
        ("bad-lf.ks", bad.to_string()),
        ("bad-crlf.ks", bad.replace('\n', "\r\n")),
        ("bad-cr.ks", bad.replace('\n', "\r")),
    ] {
        fs::write(d.path().join(name), text).unwrap();
        let r = run(d.path(), &["ks", "validate", name]);
        fails_with(&r, &[&format!("{name}:3: error: Unknown command: bogus\n")]);
    }
}

#[test]
#[ignore = "slow tier: `image` checks the host first (root, the image tools)"]
fn image_and_imagefactory_refuse_special_kickstarts_and_tdls() {
    let d = tempdir();
    mkfifo(&d.path().join("fifo.ks"));
    mkfifo(&d.path().join("fifo.tdl"));
    let tdl = format!("{ROOT}/tdl/fedora-atomic-29.tdl");
    let ks = format!("{ROOT}/kickstarts/fedora-atomic-29.ks");
    let before = listing(d.path());
    let r = run(
        d.path(),
        &[
            "image",
            "--kickstart",
            "fifo.ks",
            "-i",
            "qcow2",
            "-o",
            "out",
        ],
    );
    fails_with(&r, &["kickstart fifo.ks is not a regular file (a FIFO)\n"]);
    let r = run(
        d.path(),
        &[
            "image",
            "--kickstart",
            "/dev/zero",
            "-i",
            "raw",
            "-o",
            "out",
        ],
    );
    fails_with(
        &r,
        &["kickstart /dev/zero is not a regular file (a character device)\n"],
    );
    let koji = ["--koji-config", "koji.conf", "--koji-target", "t"];
    let r = run(
        d.path(),
        &[&["imagefactory", "--tdl", &tdl, "-k", "fifo.ks"], &koji[..]].concat(),
    );
    fails_with(&r, &["kickstart fifo.ks is not a regular file (a FIFO)\n"]);
    let r = run(
        d.path(),
        &[&["imagefactory", "--tdl", "fifo.tdl", "-k", &ks], &koji[..]].concat(),
    );
    fails_with(
        &r,
        &["error: reading TDL fifo.tdl: not a regular file (a FIFO)\n"],
    );
    let r = run(
        d.path(),
        &[
            &[
                "imagefactory",
                "--tdl",
                &tdl,
                "-k",
                &ks,
                "--vkickstart",
                "/dev/zero",
            ],
            &koji[..],
        ]
        .concat(),
    );
    fails_with(
        &r,
        &["kickstart /dev/zero is not a regular file (a character device)\n"],
    );
    assert_eq!(listing(d.path()), before, "an output appeared");
}

#[test]
fn tdl_depth_size_and_file_type_are_bounded() {
    let d = tempdir();
    let mut deep = String::from("<template>\n");
    deep.push_str(&"<a>".repeat(30_000));
    deep.push_str(&"</a>".repeat(30_000));
    deep.push_str("\n</template>\n");
    fs::write(d.path().join("deep.tdl"), deep).unwrap();
    mkfifo(&d.path().join("fifo.tdl"));
    let big = fs::File::create(d.path().join("big.tdl")).unwrap();
    big.set_len((16 << 20) + 1).unwrap();
    drop(big);
    // level 65 is the 64th <a>, at column 1 + 3 * 63 of line 2
    let r = run(d.path(), &["tdl", "validate", "deep.tdl"]);
    fails_with(
        &r,
        &["deep.tdl:2:190: elements nested deeper than 64 levels"],
    );
    let r = run(d.path(), &["tdl", "print", "deep.tdl"]);
    fails_with(
        &r,
        &["deep.tdl:2:190: elements nested deeper than 64 levels"],
    );
    assert!(r.stdout.is_empty());
    let r = run(d.path(), &["tdl", "validate", "fifo.tdl"]);
    fails_with(
        &r,
        &["error: reading TDL fifo.tdl: not a regular file (a FIFO)\n"],
    );
    let r = run(d.path(), &["tdl", "validate", "/dev/zero"]);
    fails_with(
        &r,
        &["error: reading TDL /dev/zero: not a regular file (a character device)\n"],
    );
    let r = run(d.path(), &["tdl", "validate", "big.tdl"]);
    fails_with(
        &r,
        &["error: reading TDL big.tdl: larger than the limit of 16 MiB\n"],
    );
    let before = listing(d.path());
    let ks = format!("{ROOT}/kickstarts/fedora-atomic-29.ks");
    let r = run(
        d.path(),
        &[
            "imagefactory",
            "--tdl",
            "deep.tdl",
            "-k",
            &ks,
            "--koji-config",
            "koji.conf",
            "--koji-target",
            "t",
        ],
    );
    fails_with(
        &r,
        &[
            "TDL deep.tdl is invalid:",
            "2:190: elements nested deeper than 64 levels",
        ],
    );
    assert_eq!(listing(d.path()), before);
}

/// A config whose `k0` doubles through `levels` levels of `%(kN)s%(kN)s` down to `leaf`.
fn exponential_config(levels: usize, leaf: &str) -> String {
    let mut t = String::from(
        "[DEFAULT]\nos_name = x\narch = x86_64\nrelease = 29\nref = x/29/x86_64/base\n",
    );
    for i in 0..levels {
        t.push_str(&format!("k{i} = %(k{n})s%(k{n})s\n", n = i + 1));
    }
    t.push_str(&format!("k{levels} = {leaf}\n"));
    t
}

#[test]
fn config_interpolation_size_and_file_type_are_bounded() {
    let d = tempdir();
    fs::write(
        d.path().join("exp40.ini"),
        exponential_config(40, "12345678"),
    )
    .unwrap();
    fs::write(
        d.path().join("exp10.ini"),
        exponential_config(10, &"y".repeat(1024)),
    )
    .unwrap();
    mkfifo(&d.path().join("fifo.ini"));
    let big = fs::File::create(d.path().join("big.ini")).unwrap();
    big.set_len((1 << 20) + 1).unwrap();
    drop(big);
    let before = listing(d.path());
    let out = d.path().join("out");
    let out = out.to_str().unwrap();
    let r = run(d.path(), &["render", "--config", "exp40.ini", "-o", out]);
    fails_with(
        &r,
        &[
            "exp40.ini:35: key `k29` in section `[DEFAULT]`: interpolation nests deeper than 10 levels",
        ],
    );
    let r = run(d.path(), &["render", "--config", "exp10.ini", "-o", out]);
    fails_with(
        &r,
        &[
            "exp10.ini:",
            "in section `[DEFAULT]`: value longer than 64 KiB after interpolation",
        ],
    );
    let r = run(d.path(), &["render", "--config", "fifo.ini", "-o", out]);
    fails_with(
        &r,
        &["fifo.ini: cannot read: not a regular file (a FIFO)\n"],
    );
    let r = run(d.path(), &["render", "--config", "/dev/zero", "-o", out]);
    fails_with(
        &r,
        &["/dev/zero: cannot read: not a regular file (a character device)\n"],
    );
    let r = run(d.path(), &["render", "--config", "big.ini", "-o", out]);
    fails_with(
        &r,
        &["big.ini: cannot read: larger than the limit of 1 MiB\n"],
    );
    let r = run(
        d.path(),
        &["treecompose", "-c", "exp10.ini", "--ostreerepo", "repo"],
    );
    fails_with(&r, &["exp10.ini", "longer than 64 KiB after interpolation"]);
    assert_eq!(listing(d.path()), before, "an output appeared");
}

#[test]
fn render_check_does_not_read_a_fifo_in_place_of_an_output() {
    let d = tempdir();
    let config: PathBuf = [ROOT, "kickstarts", "config.ini"].iter().collect();
    fs::create_dir(d.path().join("kickstarts")).unwrap();
    let fifo = d.path().join("kickstarts/fedora-atomic-29.ks");
    mkfifo(&fifo);
    let r = run(
        d.path(),
        &[
            "render",
            "--config",
            config.to_str().unwrap(),
            "--check",
            "-o",
            ".",
        ],
    );
    fails_with(
        &r,
        &["kickstarts/fedora-atomic-29.ks: differs from what `render` produces"],
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
}
