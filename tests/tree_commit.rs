//! Native commit (`imagebuilder treecompose --rootfs`) of small synthetic root filesystems, checked with
//! the `ostree` CLI (fsck, ls, show, admin deploy) as the independent tool.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawning")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ostree(repo: &Path) -> Command {
    let mut c = Command::new("ostree");
    c.arg(format!("--repo={}", repo.display()));
    c
}

fn write(p: &Path, content: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A tiny Debian-like rootfs: merged /usr, /etc, /var with content, /root, a kernel in /boot, a device
/// node in /dev, a setuid file owned by 1234:5678 with an xattr.
fn rootfs(dir: &Path, kernels: &[&str]) -> PathBuf {
    let r = dir.join("rootfs");
    write(&r.join("usr/bin/hello"), "#!/bin/sh\necho hello\n");
    write(
        &r.join("usr/lib/os-release"),
        "NAME=Test\nID=test\nVERSION_ID=1\nPRETTY_NAME=\"Test OS 1\"\n",
    );
    for d in ["bin", "lib", "sbin"] {
        symlink(format!("usr/{d}"), r.join(d)).unwrap();
    }
    write(&r.join("etc/hostname"), "testhost\n");
    write(&r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    write(&r.join("var/lib/dpkg/status"), "Package: hello\n");
    std::fs::create_dir_all(r.join("var/log")).unwrap();
    symlink("/run", r.join("var/run")).unwrap();
    std::fs::create_dir_all(r.join("var/mail")).unwrap();
    std::fs::set_permissions(r.join("var/mail"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    write(&r.join("root/.profile"), "PS1='# '\n");
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("home")).unwrap();
    std::fs::create_dir_all(r.join("tmp")).unwrap();
    std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir_all(r.join("dev")).unwrap();
    let st = Command::new("mknod")
        .arg(r.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(st.success());
    let suid = r.join("usr/bin/suid");
    write(&suid, "binary");
    // chown clears the setuid bit: chown first.
    std::os::unix::fs::chown(&suid, Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(
        &suid,
        "user.imagebuilder",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    for k in kernels {
        write(&r.join(format!("boot/vmlinuz-{k}")), &format!("kernel {k}"));
        write(
            &r.join(format!("boot/initrd.img-{k}")),
            &format!("initrd {k}"),
        );
        write(&r.join(format!("boot/config-{k}")), "CONFIG_X=y");
        std::fs::create_dir_all(r.join(format!("usr/lib/modules/{k}/kernel"))).unwrap();
    }
    symlink("boot/vmlinuz", r.join("vmlinuz")).unwrap();
    r
}

fn init_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    ok(ostree(&repo).args(["init", "--mode=archive"]));
    repo
}

fn native_commit(repo: &Path, rootfs: &Path, extra: &[&str]) -> Output {
    run(Command::new(BIN)
        .args(["treecompose", "--json", "--ostreerepo"])
        .arg(repo)
        .arg("--rootfs")
        .arg(rootfs)
        .args(extra))
}

/// Everything that identifies the repository's state: refs and the summary.
fn repo_state(repo: &Path) -> (String, Option<Vec<u8>>) {
    let refs = ok(ostree(repo).args(["refs", "--list"]));
    let mut lines: Vec<_> = refs
        .lines()
        .map(|r| {
            let c = ok(ostree(repo).args(["rev-parse", r]));
            format!("{r} {c}")
        })
        .collect();
    lines.sort();
    (lines.join("\n"), std::fs::read(repo.join("summary")).ok())
}

#[test]
#[ignore = "slow tier: needs root (mknod)"]
fn commit_has_ostree_layout_and_keeps_metadata() {
    let d = tempfile::tempdir().unwrap();
    let r = rootfs(d.path(), &["6.1.0-9-amd64"]);
    let repo = init_repo(d.path());
    let out = Command::new(BIN)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["treecompose", "--json", "--ostreerepo"])
        .arg(&repo)
        .arg("--rootfs")
        .arg(&r)
        .args(["--ref", "test/x86_64/base", "--version", "1.2.3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let commit = json["commit"].as_str().unwrap().to_owned();
    assert_eq!(json["kernel_version"], "6.1.0-9-amd64");
    assert_eq!(
        ok(ostree(&repo).args(["rev-parse", "test/x86_64/base"])).trim(),
        commit
    );

    ok(ostree(&repo).arg("fsck"));
    let show = ok(ostree(&repo).args(["show", "test/x86_64/base"]));
    assert!(show.contains("Version: 1.2.3"), "{show}");
    assert!(
        show.contains("2023-11-14 22:13:20"),
        "SOURCE_DATE_EPOCH not used:\n{show}"
    );
    let meta = ok(ostree(&repo).args(["show", "--print-metadata-key=ostree.linux", &commit]));
    assert!(meta.contains("6.1.0-9-amd64"), "{meta}");
    assert!(repo.join("summary").is_file(), "summary not updated");

    let ls = ok(ostree(&repo).args(["ls", "-R", "-X", "test/x86_64/base"]));
    let has = |path: &str| ls.lines().any(|l| l.ends_with(&format!(" {path}")));
    for expect in [
        "/usr/lib/modules/6.1.0-9-amd64/vmlinuz",
        "/usr/lib/modules/6.1.0-9-amd64/initramfs.img",
        "/usr/etc/hostname",
        "/home -> var/home",
        "/root -> var/roothome",
        "/opt -> var/opt",
        "/srv -> var/srv",
        "/mnt -> var/mnt",
        "/media -> run/media",
        "/ostree -> sysroot/ostree",
        "/usr/local -> ../var/usrlocal",
        "/bin -> usr/bin",
        "/sysroot",
        "/usr/share/factory/var/lib/dpkg/status",
        "/usr/share/factory/var/roothome/.profile",
        "/usr/lib/tmpfiles.d/imagebuilder-var.conf",
    ] {
        assert!(has(expect), "missing {expect} in:\n{ls}");
    }
    for gone in [
        "/etc",
        "/var/lib",
        "/boot/vmlinuz-6.1.0-9-amd64",
        "/boot/config-6.1.0-9-amd64",
        "/dev/null",
        "/vmlinuz",
    ] {
        assert!(!has(gone), "{gone} should not be in the commit:\n{ls}");
    }
    // Ownership, setuid mode and xattrs survive.
    let suid = ls.lines().find(|l| l.ends_with("/usr/bin/suid")).unwrap();
    assert!(suid.starts_with("-04755 1234 5678"), "{suid}");
    assert!(suid.contains("user.imagebuilder"), "xattr lost: {suid}");
    let tmp = ls.lines().find(|l| l.ends_with(" /tmp")).unwrap();
    assert!(tmp.starts_with("d01777"), "{tmp}");

    let conf = ok(ostree(&repo).args([
        "cat",
        "test/x86_64/base",
        "/usr/lib/tmpfiles.d/imagebuilder-var.conf",
    ]));
    for line in [
        "d /var/mail 2775 0 0 - -",
        "L /var/run - - - - /run",
        "C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status",
        "C /var/roothome/.profile - - - - /usr/share/factory/var/roothome/.profile",
        "d /var/usrlocal/bin 0755 0 0 - -",
        "d /var/home 0755 0 0 - -",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "missing `{line}` in:\n{conf}"
        );
    }

    // The parallel writer gives the very tree a single thread gives.
    let content = |reference: &str| {
        ok(ostree(&repo).args(["show", reference]))
            .lines()
            .find(|l| l.starts_with("ContentChecksum:"))
            .unwrap()
            .to_owned()
    };
    for threads in ["1", "4"] {
        let reference = format!("test/threads{threads}");
        let out = native_commit(&repo, &r, &["--ref", &reference, "--threads", threads]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            content(&reference),
            content("test/x86_64/base"),
            "--threads {threads}"
        );
    }

    // systemd-tmpfiles accepts the generated file and recreates /var from the factory copy.
    let co = d.path().join("checkout");
    ok(ostree(&repo)
        .args(["checkout", "test/x86_64/base"])
        .arg(&co));
    ok(Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", co.display()))
        .arg(co.join("usr/lib/tmpfiles.d/imagebuilder-var.conf")));
    assert_eq!(
        std::fs::read_to_string(co.join("var/lib/dpkg/status")).unwrap(),
        "Package: hello\n"
    );
    assert_eq!(
        std::fs::read_link(co.join("var/run")).unwrap(),
        Path::new("/run")
    );
    let mail = std::fs::metadata(co.join("var/mail")).unwrap();
    assert_eq!(mail.permissions().mode() & 0o7777, 0o2775);
    assert!(co.join("var/roothome/.profile").is_file());
    assert!(co.join("var/usrlocal/bin").is_dir());

    // A second commit has the first as parent.
    let out = native_commit(
        &repo,
        &r,
        &["--ref", "test/x86_64/base", "--version", "1.2.4"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["parent"], commit.as_str());
}

/// `ostree admin deploy` makes each deployment directory immutable (chattr +i); this guard clears the
/// flag on drop so the temporary sysroot can be removed.
struct MutableDeployments(std::path::PathBuf);

impl Drop for MutableDeployments {
    fn drop(&mut self) {
        let _ = imagebuilder::deployment::deploy::make_deployments_mutable(&self.0);
    }
}

#[test]
#[ignore = "slow tier: needs root (mknod)"]
fn commit_deploys_into_an_empty_sysroot() {
    let d = tempfile::tempdir().unwrap();
    let r = rootfs(d.path(), &["6.1.0-9-amd64"]);
    let repo = init_repo(d.path());
    let out = native_commit(&repo, &r, &["--ref", "test/deploy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sysroot = d.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let _mutable = MutableDeployments(sysroot.clone());
    ok(Command::new("ostree")
        .args(["admin", "init-fs", "--modern"])
        .arg(&sysroot));
    let srepo = sysroot.join("ostree/repo");
    ok(ostree(&srepo).args(["config", "set", "sysroot.bootloader", "none"]));
    ok(Command::new("ostree")
        .args(["admin", "os-init", "test", "--sysroot"])
        .arg(&sysroot));
    ok(ostree(&srepo)
        .arg("pull-local")
        .arg(&repo)
        .arg("test/deploy"));
    ok(Command::new("ostree")
        .args([
            "admin",
            "deploy",
            "--os",
            "test",
            "--karg=root=LABEL=root",
            "--sysroot",
        ])
        .arg(&sysroot)
        .arg("test/deploy"));
    let entries: Vec<_> = std::fs::read_dir(sysroot.join("boot/loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let bls = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(
        bls.contains("vmlinuz-6.1.0-9-amd64") && bls.contains("initramfs-6.1.0-9-amd64.img"),
        "{bls}"
    );
    let deploy = std::fs::read_dir(sysroot.join("ostree/deploy/test/deploy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(deploy.join("etc/hostname")).unwrap(),
        "testhost\n"
    );
}

#[test]
#[ignore = "slow tier: needs root (mknod)"]
fn bad_input_is_a_clear_error_and_leaves_the_repo_untouched() {
    let d = tempfile::tempdir().unwrap();
    let repo = init_repo(d.path());
    let good = rootfs(&d.path().join("good"), &["6.1.0-9-amd64"]);
    let out = native_commit(&repo, &good, &["--ref", "t/base", "--version", "1.0.0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = repo_state(&repo);

    let no_kernel = rootfs(&d.path().join("nokernel"), &[]);
    let two = rootfs(&d.path().join("two"), &["6.1.0-9-amd64", "6.1.0-10-amd64"]);
    let special = rootfs(&d.path().join("special"), &["6.1.0-9-amd64"]);
    let st = Command::new("mkfifo")
        .arg(special.join("usr/bin/fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    let cases: Vec<(Vec<String>, PathBuf, &str)> = vec![
        (
            vec![],
            special.clone(),
            "usr/bin/fifo is a device node, socket or fifo",
        ),
        (vec![], no_kernel.clone(), "searched"),
        (vec![], two.clone(), "--kernel-version"),
        (
            vec!["--kernel-version".into(), "9.9".into()],
            two.clone(),
            "kernels present: 6.1.0-10-amd64, 6.1.0-9-amd64",
        ),
        (
            vec!["--version".into(), "bad version".into()],
            good.clone(),
            "invalid version",
        ),
        (
            vec![
                "--gpg-sign".into(),
                "NOSUCHKEY".into(),
                "--gpg-homedir".into(),
                d.path().join("nogpg").display().to_string(),
            ],
            good.clone(),
            "--gpg-homedir",
        ),
        (vec![], d.path().join("missing-rootfs"), "missing-rootfs"),
    ];
    for (extra, rootfs, expect) in cases {
        let mut args = vec!["--ref".to_owned(), "t/base".to_owned()];
        args.extend(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = native_commit(&repo, &rootfs, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected `{expect}` in:\n{err}"
        );
        assert_eq!(repo_state(&repo), before, "{args:?} changed the repository");
    }
    let err =
        String::from_utf8_lossy(&native_commit(&repo, &no_kernel, &["--ref", "t/base"]).stderr)
            .into_owned();
    assert!(
        err.contains("boot/vmlinuz-KVER") && err.contains("usr/lib/modules/KVER/vmlinuz"),
        "{err}"
    );

    // Two kernels with --kernel-version picks that one.
    let out = native_commit(
        &repo,
        &two,
        &["--ref", "t/two", "--kernel-version", "6.1.0-10-amd64"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ls = ok(ostree(&repo).args(["ls", "t/two", "/usr/lib/modules/6.1.0-10-amd64"]));
    assert!(ls.contains("vmlinuz"), "{ls}");

    // A bad ref, a missing repo and a corrupt repo.
    let out = native_commit(&repo, &good, &["--ref", "bad ref!"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid ref"),
        "{out:?}"
    );
    let corrupt = d.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("config"),
        "[core]\nrepo_version=1\nmode=nonsense\n",
    )
    .unwrap();
    let out = native_commit(&corrupt, &good, &["--ref", "t/base"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("corrupt"), "{err}");
}
