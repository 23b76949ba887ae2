//! `imagebuilder treecompose -c config.ini`: config, treefile include merge, version policies, summary
//! and the rpm-ostree / container command lines. rpm-ostree and container engines cannot run on Debian
//! 12, so two tiny TEST DOUBLES stand in for them (put first on PATH); libostree and the `ostree` CLI
//! that check the results are real.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");

/// TEST DOUBLE of `rpm-ostree`: records its arguments, the treefile it got and the files next to it,
/// then does to the repository what `compose tree` does: commits the treefile's ref (with the version
/// it was asked to add).
const RPM_OSTREE_DOUBLE: &str = r#"#!/bin/sh
set -eu
log=${RPM_OSTREE_DOUBLE_LOG:?}
printf '%s\n' "$*" >> "$log"
repo= version= treefile=
for a in "$@"; do
  case $a in
    --repo=*) repo=${a#--repo=} ;;
    --add-metadata-string=version=*) version=${a#--add-metadata-string=version=} ;;
    -*|compose|tree) ;;
    *) treefile=$a ;;
  esac
done
cp "$treefile" "$log.treefile"
ls "$(dirname "$treefile")" > "$log.files"
ref=$(sed -n 's/^ *"ref": *"\([^"]*\)",\{0,1\}$/\1/p' "$treefile")
tree=$(mktemp -d)
mkdir "$tree/usr"
echo "$version" > "$tree/usr/version"
ostree --repo="$repo" commit -b "$ref" --tree=dir="$tree" ${version:+--add-metadata-string=version=$version} >/dev/null
rm -rf "$tree"
"#;

/// TEST DOUBLE of `podman`: records its arguments, then runs the container's command on the host with
/// the `-v HOST:CONTAINER` paths mapped back.
const PODMAN_DOUBLE: &str = r#"#!/bin/sh
set -eu
printf '%s\n' "$*" >> "${PODMAN_DOUBLE_LOG:?}"
maps=
while [ $# -gt 0 ]; do
  case $1 in
    run|--rm|--privileged|--net=host) shift ;;
    -v) maps="$maps $2"; shift 2 ;;
    *) shift; break ;;
  esac
done
n=$#
i=0
while [ $i -lt $n ]; do
  a=$1; shift
  for m in $maps; do a=$(printf '%s' "$a" | sed "s|${m#*:}|${m%%:*}|g"); done
  set -- "$@" "$a"
  i=$((i + 1))
done
exec "$@"
"#;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    config: PathBuf,
    repo: PathBuf,
    log: PathBuf,
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let bin = root.join("bin");
    for (name, body) in [("rpm-ostree", RPM_OSTREE_DOUBLE), ("podman", PODMAN_DOUBLE)] {
        write(&bin.join(name), body);
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfgdir = root.join("config");
    write(
        &cfgdir.join("config.ini"),
        &format!(
            "[DEFAULT]\nos_name = testos\ntree_name = base\ntree_file = %(os_name)s-%(tree_name)s.json\n\
             arch = x86_64\nrelease = 1\nref = %(os_name)s/%(release)s/%(arch)s/%(tree_name)s\n\
             rpmostree_cache_dir = {}\nselinux = false\n[two]\nrelease = 2\n",
            root.join("cache").display()
        ),
    );
    write(
        &cfgdir.join("testos-base.json"),
        r#"{"include": "common.json", "packages": ["vim", "kernel"], "units": ["sshd.service"]}"#,
    );
    write(
        &cfgdir.join("common.json"),
        r#"{"packages": ["kernel", "systemd", "ostree"], "repos": ["fedora"], "documentation": false}"#,
    );
    write(
        &cfgdir.join("fedora.repo"),
        "[fedora]\nbaseurl=http://example.invalid/\n",
    );
    Env {
        config: cfgdir.join("config.ini"),
        repo: root.join("repo"),
        log: root.join("rpm-ostree.log"),
        bin,
        root,
        _dir: dir,
    }
}

impl Env {
    fn compose(&self, extra: &[&str]) -> Output {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap());
        Command::new(BIN)
            .env("PATH", path)
            .env("RPM_OSTREE_DOUBLE_LOG", &self.log)
            .env("PODMAN_DOUBLE_LOG", self.root.join("podman.log"))
            .arg("treecompose")
            .arg("-c")
            .arg(&self.config)
            .arg("--ostreerepo")
            .arg(&self.repo)
            .args(extra)
            .output()
            .unwrap()
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn version(&self, reference: &str) -> Option<String> {
        let out = Command::new("ostree")
            .arg(format!("--repo={}", self.repo.display()))
            .args(["show", reference])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Version: ").map(str::to_owned))
    }

    fn rev(&self, reference: &str) -> String {
        let out = Command::new("ostree")
            .arg(format!("--repo={}", self.repo.display()))
            .args(["rev-parse", reference])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "treecompose failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_fails(out: &Output, expect: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(expect), "expected `{expect}` in:\n{err}");
}

const REF: &str = "testos/1/x86_64/base";

#[test]
fn every_version_policy_and_the_rpm_ostree_command() {
    let e = env();
    // A bump policy needs a previous version: refused before anything is written.
    assert_fails(&e.compose(&["-V", "minor"]), "no previous version");
    assert!(
        !e.repo.exists(),
        "the failed compose created the repository"
    );
    assert!(e.calls().is_empty());

    // skip-or-refresh (the default) without a previous version: no version.
    assert_ok(&e.compose(&[]));
    assert_eq!(e.version(REF), None);
    let calls = e.calls();
    assert_eq!(calls.len(), 1);
    let workdir_treefile = calls[0].rsplit(' ').next().unwrap().to_owned();
    assert_eq!(
        calls[0],
        format!(
            "compose tree --repo={} --cachedir={} {workdir_treefile}",
            e.repo.display(),
            e.root.join("cache").display()
        )
    );
    assert!(workdir_treefile.ends_with("/testos-base.json"));
    assert!(e.root.join("cache").is_dir(), "cachedir not created");
    assert!(e.repo.join("summary").is_file(), "summary not updated");
    let mode = std::fs::read_to_string(e.repo.join("config")).unwrap();
    assert!(mode.contains("mode=archive"), "{mode}");

    // The flattened treefile: includes merged in order, ref/selinux/osname filled, companions copied.
    let tree: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(e.root.join("rpm-ostree.log.treefile")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        tree["packages"],
        serde_json::json!(["kernel", "systemd", "ostree", "vim"])
    );
    assert_eq!(tree["ref"], REF);
    assert_eq!(tree["selinux"], false);
    assert_eq!(tree["osname"], "testos");
    assert_eq!(tree["documentation"], false);
    assert!(tree.get("include").is_none());
    let files = std::fs::read_to_string(e.root.join("rpm-ostree.log.files")).unwrap();
    assert!(files.lines().any(|f| f == "fedora.repo"), "{files}");

    for (policy, expect) in [
        ("7.0.0", "7.0.0"),
        ("refresh", "7.0.1"),
        ("minor", "7.1.0"),
        ("cve", "7.1.0.1"),
        ("cve", "7.1.0.2"),
        ("skip-or-refresh", "7.1.1"),
        ("skip-or-minor", "7.2.0"),
        ("skip-or-cve", "7.2.0.1"),
        ("8.0.0", "8.0.0"),
    ] {
        let before = e.rev(REF);
        let out = e.compose(&["-V", policy, "--json"]);
        assert_ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["version"], expect, "-V {policy}");
        assert_eq!(json["previous"], before.as_str());
        assert_eq!(json["changed"], true);
        assert_eq!(e.version(REF).as_deref(), Some(expect), "-V {policy}");
        let last = e.calls().pop().unwrap();
        assert!(
            last.contains(&format!(" --add-metadata-string=version={expect} ")),
            "-V {policy}: {last}"
        );
    }

    // Going backwards, the same version and a bad policy: errors, repo untouched, rpm-ostree not run.
    let before = (
        e.rev(REF),
        e.calls().len(),
        std::fs::read(e.repo.join("summary")).unwrap(),
    );
    assert_fails(&e.compose(&["-V", "7.9.9"]), "<releasever> goes backwards");
    assert_fails(&e.compose(&["-V", "8.0.0"]), "same as the previous version");
    assert_fails(&e.compose(&["-V", "8.x"]), "invalid version policy");
    assert_eq!(
        before,
        (
            e.rev(REF),
            e.calls().len(),
            std::fs::read(e.repo.join("summary")).unwrap()
        )
    );

    // Another profile of the same config.ini composes its own ref.
    assert_ok(&e.compose(&["-p", "two", "-V", "2.0.0"]));
    assert_eq!(e.version("testos/2/x86_64/base").as_deref(), Some("2.0.0"));
}

#[test]
fn container_runs_rpm_ostree_through_podman() {
    let e = env();
    let out = e.compose(&["--container", "quay.io/fedora/fedora:40", "-V", "1.0.0"]);
    assert_ok(&out);
    let podman = std::fs::read_to_string(e.root.join("podman.log")).unwrap();
    let line = podman.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "run --rm --privileged --net=host -v {}:/srv/imagebuilder/repo -v ",
            e.repo.display()
        )),
        "{line}"
    );
    assert!(
        line.contains(
            " quay.io/fedora/fedora:40 rpm-ostree compose tree --repo=/srv/imagebuilder/repo \
             --add-metadata-string=version=1.0.0 --cachedir=/srv/imagebuilder/cache \
             /srv/imagebuilder/workdir/testos-base.json"
        ),
        "{line}"
    );
    assert_eq!(e.version(REF).as_deref(), Some("1.0.0"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let e = env();
    // A treefile include that does not exist.
    write(
        &e.config.parent().unwrap().join("testos-base.json"),
        r#"{"include": "nope.json", "packages": ["vim"]}"#,
    );
    assert_fails(
        &e.compose(&[]),
        "includes nope.json, which could not be found",
    );
    assert!(e.calls().is_empty());
    // A missing config file and an unknown profile.
    let out = Command::new(BIN)
        .args(["treecompose", "-c"])
        .arg(e.root.join("missing.ini"))
        .output()
        .unwrap();
    assert_fails(&out, "missing.ini: cannot read: No such file or directory");
    assert_fails(&e.compose(&["-p", "nosuch"]), "profile `nosuch` not found");
    // No rpm-ostree on the host and no --container.
    write(
        &e.config.parent().unwrap().join("testos-base.json"),
        r#"{"packages": ["vim"]}"#,
    );
    let out = Command::new(BIN)
        .env("PATH", "/usr/bin:/bin")
        .args(["treecompose", "-c"])
        .arg(&e.config)
        .output()
        .unwrap();
    assert_fails(&out, "rpm-ostree not found");
    assert!(!e.repo.exists());
}
