//! `imagebuilder doctor` and the check build commands run first, on a PATH that lacks one program:
//! a directory of symlinks to every program of the requirement table but `mksquashfs` (which
//! Debian installs in /usr/bin, outside the sbin directories the lookup adds).

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use imagebuilder::host::{Need, REQUIREMENTS};

const REMOVED: &str = "mksquashfs";
const PACKAGE: &str = "squashfs-tools";

/// A directory with a symlink to each program of the table found on this host, but [`REMOVED`].
fn path_without_removed(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    for r in REQUIREMENTS {
        if let Need::Program(p) = r.need
            && p != REMOVED
            && let Some(found) = imagebuilder::util::cmd::find_in_path(p)
        {
            symlink(found, bin.join(p)).unwrap();
        }
    }
    assert!(!bin.join(REMOVED).exists());
    bin
}

fn doctor(path: Option<&Path>, extra: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagebuilder"));
    c.args(["doctor", "-i", "pxe-live"]).args(extra);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The names of the required checks that failed.
fn failing_required(v: &serde_json::Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["required"] == true && c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn doctor_reports_a_program_missing_from_path_with_its_package() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = path_without_removed(tmp.path());

    // The host as it is: the program is found (the test host has the project's packages).
    let full = json(&doctor(None, &["--json"]));
    assert_eq!(full["schema_version"], 1);
    let row = |v: &serde_json::Value| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == REMOVED)
            .cloned()
            .unwrap_or_else(|| panic!("no {REMOVED} row: {v}"))
    };
    assert_eq!(row(&full)["ok"], true, "{}", row(&full));

    // Without it: missing, with its package; it is the one difference in what is required.
    let o = doctor(Some(&bin), &["--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let r = row(&v);
    assert_eq!(r["ok"], false);
    assert_eq!(r["kind"], "program");
    assert_eq!(r["required"], true);
    assert_eq!(r["debian_package"], PACKAGE);
    assert_eq!(r["fedora_package"], PACKAGE);
    assert_eq!(r["needed_for"], serde_json::json!(["pxe-live"]));
    assert_eq!(v["ready"], false);
    let mut expected = failing_required(&full);
    expected.push(REMOVED.to_string());
    let mut got = failing_required(&v);
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    let target = &v["targets"][0];
    assert_eq!(target["name"], "pxe-live");
    assert_eq!(target["ready"], false);
    assert!(
        target["missing"]
            .as_array()
            .unwrap()
            .contains(&REMOVED.into()),
        "{target}"
    );
    assert!(
        v["missing_debian_packages"]
            .as_array()
            .unwrap()
            .contains(&PACKAGE.into()),
        "{v}"
    );

    // The same in text.
    let o = doctor(Some(&bin), &[]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(REMOVED))
        .unwrap_or_else(|| panic!("no {REMOVED} line:\n{text}"));
    assert!(
        line.starts_with("MISSING") && line.contains(PACKAGE),
        "{line}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("pxe-live") && l.contains("MISSING") && l.contains(REMOVED)),
        "{text}"
    );
    assert!(
        text.contains("apt-get install ") && text.contains(PACKAGE),
        "{text}"
    );
}

#[test]
fn build_commands_stop_before_any_work_naming_the_program_and_package() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = path_without_removed(tmp.path());
    let out = tmp.path().join("out");
    // The kickstart does not even exist: the host check comes before reading it.
    let missing_ks = tmp.path().join("nonexistent.ks");
    let build = |args: &[&str], ks_flag: &str| {
        Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
            .args(args)
            .arg(ks_flag)
            .arg(&missing_ks)
            .arg("-o")
            .arg(&out)
            .env("PATH", &bin)
            .output()
            .unwrap()
    };
    for (args, ks_flag) in [
        (
            &["image", "-i", "qcow2", "-i", "pxe-live"][..],
            "--kickstart",
        ),
        (&["liveimage"][..], "-k"),
    ] {
        let o = build(args, ks_flag);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "`{REMOVED}` not found: install the Debian package `{PACKAGE}`"
            )),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("nonexistent.ks"), "{stderr}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
    // A qcow2 alone does not need it.
    let o = build(&["image", "-i", "qcow2"], "--kickstart");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains(REMOVED), "{stderr}");
}
