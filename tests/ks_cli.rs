//! End-to-end tests of `imagebuilder ks …`.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

#[test]
fn validate_json_contract_and_exit_codes() {
    let d = tempfile::tempdir().expect("tempdir");
    write(
        d.path(),
        "good.ks",
        "ostreesetup --osname=fedora --url=http://x/repo --ref=fedora/x86_64\nrootpw --lock\n",
    );
    write(d.path(), "bad.ks", "lang en_US.UTF-8\n%include inc.ks\n");
    write(d.path(), "inc.ks", "# comment\nauth --useshadow\n");
    let out = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "--json", "good.ks", "bad.ks"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        serde_json::json!({"file": "good.ks", "ok": true, "errors": [], "warnings": []})
    );
    let bad = &lines[1];
    assert_eq!(bad["file"], "bad.ks");
    assert_eq!(bad["ok"], false);
    let keys: Vec<&String> = bad.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["errors", "file", "ok", "warnings"]);
    let e = &bad["errors"][0];
    assert_eq!(e["file"], "inc.ks");
    assert_eq!(e["line"], 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("auth has been removed."),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("bad.ks:2"),
        "include chain named: {e}"
    );

    // auto picks the #version= line; F22 accepts auth
    write(d.path(), "old.ks", "#version=F22\nauth --useshadow\n");
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "--syntax", "auto", "old.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(0));
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "old.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(1));
    // usage error
    let st = bin()
        .args(["ks", "validate", "--syntax", "F99", "x.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(2));
}

#[test]
fn warnings_count_unless_allowed() {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "dup.ks", "part / --size=100\npart / --size=200\n");
    let out = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "--json", "dup.ks"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["warnings"][0]["message"],
        "A partition with the mountpoint / has already been defined."
    );
    assert_eq!(v["warnings"][0]["line"], 2);
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "--allow-warnings", "dup.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn flatten_writes_atomically_and_reparses() {
    let d = tempfile::tempdir().expect("tempdir");
    write(
        d.path(),
        "top.ks",
        "%include part.ks\nbootloader --timeout=3 --append=\"console=ttyS0 quiet\"\n%addon com_x\na\n%end\n%anaconda\nb\n%end\n",
    );
    write(
        d.path(),
        "part.ks",
        "part / --fstype=ext4 --size=3000\n%post\necho hi\n%end\n",
    );
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "flatten", "top.ks", "-o", "flat.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(0));
    let flat = std::fs::read_to_string(d.path().join("flat.ks")).expect("output");
    assert!(
        flat.contains("part / --fstype=\"ext4\" --size=\"3000\"") || flat.contains("part \"/\""),
        "{flat}"
    );
    assert!(flat.contains("echo hi"));
    assert!(
        !flat.contains("%end%anaconda"),
        "no ksflatten null-section bug"
    );
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "validate", "flat.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(0), "{flat}");
    // bad input: no output file left behind
    write(d.path(), "broken.ks", "%post\necho\n");
    let st = bin()
        .current_dir(d.path())
        .args(["ks", "flatten", "broken.ks", "-o", "out.ks"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(1));
    assert!(!d.path().join("out.ks").exists());
}

#[test]
fn versions_and_verdiff() {
    let out = bin().args(["ks", "versions"]).output().expect("run");
    let s = String::from_utf8(out.stdout).expect("utf8");
    assert!(s.lines().any(|l| l == "F21"));
    assert!(s.lines().any(|l| l == "F46 (DEVEL)"));
    assert!(s.lines().any(|l| l == "RHEL10"));
    let out = bin()
        .args(["ks", "verdiff", "--from", "F37", "--to", "F38"])
        .output()
        .expect("run");
    let s = String::from_utf8(out.stdout).expect("utf8");
    assert!(s.contains("added commands: ostreecontainer"), "{s}");
    let out = bin()
        .args(["ks", "verdiff", "--from", "F34", "--to", "F35"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed commands: auth authconfig"));
}
