//! The demo tree: built from the recipe (debootstrap, first run only; cached afterwards), committed
//! natively, accepted by `ostree fsck`, deployable by `ostree admin deploy` into an empty sysroot, with
//! an initramfs holding the ostree, live and LVM dracut modules.

use std::path::Path;
use std::process::Command;

use imagebuilder::tree::demo::{DEMO_REF, DEMO_VERSION, ensure_demo_tree};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawning");
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

/// `ostree admin deploy` makes each deployment directory immutable (chattr +i); this guard clears the
/// flag on drop so the temporary sysroot can be removed.
struct MutableDeployments(std::path::PathBuf);

impl Drop for MutableDeployments {
    fn drop(&mut self) {
        let _ = imagebuilder::deployment::deploy::make_deployments_mutable(&self.0);
    }
}

#[test]
#[ignore = "slow tier: builds the demo tree (root, debootstrap)"]
fn demo_tree_is_valid_deployable_and_cached() {
    imagebuilder::logging::init(false);
    let tree = ensure_demo_tree(None).expect("building the demo tree");
    assert_eq!(tree.reference, DEMO_REF);
    let repo = &tree.repo;

    // Concurrent callers share the cached build.
    let threads: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(|| ensure_demo_tree(None).unwrap()))
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), tree);
    }
    let json = ok(Command::new(BIN).args(["demo-tree", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["commit"], tree.commit.as_str());
    assert_eq!(json["reference"], DEMO_REF);

    // An archive repository that fsck accepts, with version metadata and a summary listing the ref.
    let config = std::fs::read_to_string(repo.join("config")).unwrap();
    assert!(config.contains("mode=archive"), "{config}");
    ok(ostree(repo).arg("fsck"));
    let show = ok(ostree(repo).args(["show", DEMO_REF]));
    assert!(show.contains(&format!("Version: {DEMO_VERSION}")), "{show}");
    let summary = ok(ostree(repo).args(["summary", "--view"]));
    assert!(
        summary.contains(DEMO_REF) && summary.contains(&tree.commit),
        "{summary}"
    );

    // The kernel's initramfs holds the ostree, live (dmsquash) and LVM modules and virtio drivers.
    let ls = ok(ostree(repo).args(["ls", DEMO_REF, "/usr/lib/modules"]));
    let kver = ls
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .find(|n| n.contains("amd64"))
        .expect("a kernel version")
        .to_owned();
    let d = tempfile::tempdir().unwrap();
    let initramfs = d.path().join("initramfs.img");
    let bytes = ostree(repo)
        .args([
            "cat",
            DEMO_REF,
            &format!("/usr/lib/modules/{kver}/initramfs.img"),
        ])
        .output()
        .unwrap();
    assert!(bytes.status.success());
    std::fs::write(&initramfs, &bytes.stdout).unwrap();
    let listing = ok(Command::new("sh")
        .arg("-c")
        .arg("zcat \"$1\" | cpio -t --quiet")
        .arg("sh")
        .arg(&initramfs));
    for needle in [
        "usr/lib/ostree/ostree-prepare-root",
        "dmsquash-live-root",
        "usr/sbin/lvm",
        "virtio_blk.ko",
        "xfs.ko",
        "btrfs.ko",
        "vfat.ko",
    ] {
        assert!(listing.contains(needle), "initramfs lacks {needle}");
    }

    // `ostree admin deploy` into an empty sysroot.
    let sysroot = d.path().join("sysroot");
    std::fs::create_dir(&sysroot).unwrap();
    let _mutable = MutableDeployments(sysroot.clone());
    ok(Command::new("ostree")
        .args(["admin", "init-fs", "--modern"])
        .arg(&sysroot));
    let srepo = sysroot.join("ostree/repo");
    ok(ostree(&srepo).args(["config", "set", "sysroot.bootloader", "none"]));
    ok(Command::new("ostree")
        .args(["admin", "os-init", "demo", "--sysroot"])
        .arg(&sysroot));
    ok(ostree(&srepo).arg("pull-local").arg(repo).arg(DEMO_REF));
    ok(Command::new("ostree")
        .args(["admin", "deploy", "--os", "demo", "--karg=root=LABEL=root"])
        .arg("--karg-append=console=ttyS0,115200")
        .arg("--sysroot")
        .arg(&sysroot)
        .arg(DEMO_REF));
    let entries: Vec<_> = std::fs::read_dir(sysroot.join("boot/loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let bls = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(bls.contains(&format!("vmlinuz-{kver}")), "{bls}");
    assert!(bls.contains(&format!("initramfs-{kver}.img")), "{bls}");
    assert!(bls.contains("Debian GNU/Linux 12"), "{bls}");
    let deployment = sysroot.join(format!("ostree/deploy/demo/deploy/{}.0", tree.commit));
    assert_eq!(
        std::fs::read_to_string(deployment.join("etc/hostname")).unwrap(),
        "imagebuilder-demo\n"
    );
    for p in [
        "usr/lib/systemd/systemd",
        "usr/bin/ostree",
        "usr/sbin/lvm",
        "usr/sbin/sshd",
        "usr/bin/sudo",
        "usr/sbin/mkfs.xfs",
        "usr/lib/tmpfiles.d/imagebuilder-var.conf",
    ] {
        assert!(
            std::fs::symlink_metadata(deployment.join(p)).is_ok(),
            "deployment lacks /{p}"
        );
    }
    assert_eq!(
        std::fs::read_link(deployment.join("home")).unwrap(),
        Path::new("var/home")
    );
    // /var comes back at boot from the tmpfiles.d file (run here by the real systemd-tmpfiles).
    ok(Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", deployment.display()))
        .arg(deployment.join("usr/lib/tmpfiles.d/imagebuilder-var.conf")));
    let status = std::fs::read_to_string(deployment.join("var/lib/dpkg/status")).unwrap();
    assert!(
        status.contains("Package: systemd\n"),
        "dpkg status not restored"
    );
    // No host keys or machine identity baked into the tree.
    assert!(!deployment.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert_eq!(
        std::fs::read(deployment.join("etc/machine-id")).unwrap(),
        b""
    );
}
