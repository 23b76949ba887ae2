//! Hostile `%post` scripts: what a script running as root in the sandbox tries in order to reach the
//! build host or the repository behind the deployment's `/usr`, and that each attempt fails.

#[path = "sysconfig_tree.rs"]
mod tree;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use imagebuilder::deployment::post::{PostOptions, PostScript, run_script};
use imagebuilder::deployment::sandbox::SCRIPT_CAPABILITIES;
use imagebuilder::deployment::sysconfig::Target;

const MIB: u64 = 1 << 20;

/// Runs `body` as a `%post` (`--nochroot` when asked) and returns its log.
fn run(t: &tree::Tree, body: &str, nochroot: bool) -> String {
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let s = PostScript {
        body: body.into(),
        nochroot,
        ..Default::default()
    };
    let out = run_script(&target, 1, &s, &PostOptions::new(&logs, 64 * MIB)).unwrap();
    let log = fs::read_to_string(logs.join("post-1.log")).unwrap();
    assert_eq!(out.exit_code, Some(0), "{log}");
    log
}

/// A host directory outside the target and outside the sandbox's tmpfs mounts.
fn host_dir(name: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .unwrap()
}

/// The tree's busybox is also a repository object (a hard link), as in a real deployment.
fn link_busybox_as_object(t: &tree::Tree) -> PathBuf {
    let dir = t.sysroot.join("ostree/repo/objects/ab");
    fs::create_dir_all(&dir).unwrap();
    let object = dir.join(format!("{}.file", "c".repeat(62)));
    fs::hard_link(t.root.join("usr/bin/busybox"), &object).unwrap();
    object
}

fn caps_mask() -> u64 {
    // Capability numbers from linux/capability.h.
    SCRIPT_CAPABILITIES
        .iter()
        .map(|c| match *c {
            "CAP_CHOWN" => 0,
            "CAP_DAC_OVERRIDE" => 1,
            "CAP_FOWNER" => 3,
            "CAP_FSETID" => 4,
            "CAP_KILL" => 5,
            "CAP_SETGID" => 6,
            "CAP_SETUID" => 7,
            "CAP_SYS_CHROOT" => 18,
            "CAP_AUDIT_WRITE" => 29,
            "CAP_SETFCAP" => 31,
            other => panic!("capability {other} has no number here"),
        })
        .fold(0, |m, n| m | (1u64 << n))
}

fn status_field(log: &str, field: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {log}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn nochroot_remount_and_write_to_the_host_fails() {
    let t = tree::make();
    let host = host_dir("escape-");
    let victim = host.path().join("written-by-post");
    let root_victim = PathBuf::from(format!("/imagebuilder-escape-{}", std::process::id()));
    let body = format!(
        "mount -o remount,rw,bind / && echo REMOUNTED\n\
         mount -o remount,rw / && echo REMOUNTED-PLAIN\n\
         echo owned > {v} && echo WROTE-HOST\n\
         echo owned > {r} && echo WROTE-ROOT\n\
         umount -l {d} 2>/dev/null; umount -l /mnt/sysimage && echo UNMOUNTED\n\
         mount -t tmpfs none /mnt && echo MOUNTED\n\
         grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status\n\
         cat /proc/self/uid_map\n\
         echo done-trying\n",
        v = victim.display(),
        r = root_victim.display(),
        d = host.path().display(),
    );
    let log = run(&t, &body, true);
    let _ = fs::remove_file(&root_victim);
    assert!(log.contains("done-trying"), "{log}");
    for bad in [
        "REMOUNTED",
        "WROTE-HOST",
        "WROTE-ROOT",
        "UNMOUNTED",
        "MOUNTED",
    ] {
        assert!(!log.contains(bad), "{bad} in {log}");
    }
    assert!(!victim.exists(), "the script wrote {}", victim.display());
    assert!(!root_victim.exists());
    // Only the listed capabilities, in effect and in the bounding set.
    assert_eq!(status_field(&log, "CapEff:"), caps_mask(), "{log}");
    assert_eq!(status_field(&log, "CapBnd:"), caps_mask(), "{log}");
    // Its own user namespace (an identity map of all ids when the builder is root).
    assert!(
        log.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
            || !rustix::process::geteuid().is_root(),
        "{log}"
    );
}

#[test]
#[ignore = "slow tier: needs root (bwrap with the full uid map)"]
fn chroot_script_cannot_change_usr_sysroot_or_the_repository_objects() {
    let t = tree::make();
    let object = link_busybox_as_object(&t);
    let before = fs::read(&object).unwrap();
    let body = format!(
        "mount -o remount,rw,bind / && echo REMOUNTED-ROOT\n\
         mount -o remount,rw,bind /sysroot && echo REMOUNTED-SYSROOT\n\
         mount -o remount,rw,bind /sysroot/ostree/repo/objects && echo REMOUNTED-OBJECTS\n\
         echo x >> /usr/bin/busybox && echo WROTE-USR\n\
         echo x >> /sysroot/ostree/repo/objects/ab/{c}.file && echo WROTE-OBJECT\n\
         mv /sysroot/ostree/repo/objects /sysroot/ostree/repo/o2 && echo MOVED-OBJECTS\n\
         ln /sysroot/ostree/repo/objects/ab/{c}.file /etc/link && echo LINKED\n\
         touch /sysroot/new-file && echo WROTE-SYSROOT\n\
         mknod /etc/disk b 8 0 && echo MKNOD\n\
         echo '[remote \"x\"]' >> /sysroot/ostree/repo/config && echo REPO-CONFIG-OK\n\
         touch /etc/owned && chown 1000:1000 /etc/owned && chmod 4755 /etc/owned && echo CHOWN-OK\n\
         echo done-trying\n",
        c = "c".repeat(62)
    );
    let log = run(&t, &body, false);
    assert!(log.contains("done-trying"), "{log}");
    for bad in [
        "REMOUNTED",
        "WROTE-USR",
        "WROTE-OBJECT",
        "MOVED-OBJECTS",
        "LINKED",
        "WROTE-SYSROOT",
        "MKNOD",
    ] {
        assert!(!log.contains(bad), "{bad} in {log}");
    }
    // What a script legitimately does still works: repo config, owners and modes in the target.
    assert!(
        log.contains("REPO-CONFIG-OK") && log.contains("CHOWN-OK"),
        "{log}"
    );
    let owned = fs::metadata(t.root.join("etc/owned")).unwrap();
    if rustix::process::geteuid().is_root() {
        assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
        assert_eq!(owned.mode() & 0o7777, 0o4755);
    }
    assert_eq!(fs::read(&object).unwrap(), before);
    assert!(!t.sysroot.join("new-file").exists());
    assert!(!t.root.join("etc/disk").exists());
    assert!(!Path::new(&t.root.join("etc/link")).exists());
}
