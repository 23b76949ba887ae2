//! The demo image, built by `imagebuilder image` from `kickstarts/demo-qcow2.ks` and the demo tree,
//! boots under QEMU (TCG) with BIOS and with UEFI to a login prompt, shows the `%post` marker and runs
//! the deployment (`ostree=` on the kernel command line, `ostree admin status`). A variant with `/` on
//! XFS and no separate `/boot` boots too, with the deployment's hard links intact.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imagebuilder::boot_test::{self, BootSpec, Login};
use imagebuilder::fs::extract_range;

const MARKER: &str = "IMAGEBUILDER-DEMO-BOOTED";

fn boot(image: &Path, uefi: bool, commit: &str, work: &Path) {
    let mut spec = BootSpec::new(image);
    spec.uefi = uefi;
    spec.timeout = Duration::from_secs(600);
    spec.markers = vec![MARKER.to_string()];
    spec.work_dir = Some(work.to_path_buf());
    spec.login = Some(Login {
        user: "root".into(),
        password: Some("demo".into()),
        commands: vec![
            "ostree admin status".into(),
            "findmnt -n -o FSTYPE /boot/efi".into(),
        ],
    });
    let report = boot_test::run(&spec).unwrap();
    report.ensure_success().unwrap();
    let firmware = if uefi { "UEFI" } else { "BIOS" };
    let cmdline = report.kernel_cmdline.clone().unwrap_or_default();
    assert!(
        cmdline.contains("ostree=/ostree/boot.1/demo/"),
        "{firmware}: {cmdline}"
    );
    assert!(
        cmdline.contains("console=ttyS0,115200"),
        "{firmware}: {cmdline}"
    );
    let status = report.output_of("ostree admin status").unwrap_or_default();
    assert!(
        status.contains(&format!("* demo {commit}.0")),
        "{firmware}: {status}"
    );
    let efi = report
        .output_of("findmnt -n -o FSTYPE /boot/efi")
        .unwrap_or_default();
    assert!(
        efi.contains("vfat"),
        "{firmware}: /boot/efi not mounted from the ESP: {efi}"
    );
    eprintln!(
        "{firmware}: login prompt after {:?} s",
        report.login_prompt_seconds
    );
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn demo_image_boots_with_bios_and_uefi() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let ks = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/demo-qcow2.ks");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["image", "--kickstart", ks, "--ostreerepo"])
        .arg(&tree.repo)
        .args(["-i", "qcow2", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image = out.join("demo-qcow2.qcow2");
    boot(&image, false, &tree.commit, &d.path().join("bios"));
    boot(&image, true, &tree.commit, &d.path().join("uefi"));
}

/// The demo kickstart with `/` on XFS and no separate `/boot`: GRUB reads the kernel from XFS, the
/// initramfs mounts an XFS root, and the deployment keeps its hard links to `/ostree/repo`.
#[test]
#[ignore = "slow tier: boots QEMU"]
fn xfs_root_without_separate_boot_boots() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/demo-qcow2.ks"
    ))
    .unwrap();
    let body: String = demo
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
    let ks = d.path().join("xfs-root.ks");
    std::fs::write(&ks, body).unwrap();
    let out = d.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["image", "--kickstart"])
        .arg(&ks)
        .arg("--ostreerepo")
        .arg(&tree.repo)
        .args(["-i", "raw", "--json", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let image = out.join("xfs-root.raw");

    // Offline: the root partition is clean XFS and a deployment file shares its inode with the repo.
    let root = result["plan"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == "root")
        .unwrap();
    let part = d.path().join("root.img");
    let (start, sectors) = (
        root["start_lba"].as_u64().unwrap(),
        root["sectors"].as_u64().unwrap(),
    );
    extract_range(&image, start * 512, sectors * 512, &part).unwrap();
    let repair = Command::new("xfs_repair")
        .args(["-n", "-f"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(
        repair.status.success(),
        "xfs_repair -n: {}",
        String::from_utf8_lossy(&repair.stderr)
    );
    let deploy = format!("/ostree/deploy/demo/deploy/{}.0/usr/bin/bash", tree.commit);
    let n = imagebuilder::fs::xfs::link_count(&part, &deploy).unwrap();
    assert!(n > 1, "{deploy} has {n} link(s) in the XFS image");
    std::fs::remove_file(&part).unwrap();

    let mut spec = BootSpec::new(&image);
    spec.timeout = Duration::from_secs(600);
    spec.markers = vec![MARKER.to_string()];
    spec.work_dir = Some(d.path().join("boot"));
    spec.login = Some(Login {
        user: "root".into(),
        password: Some("demo".into()),
        commands: vec![
            "findmnt -n -o FSTYPE /sysroot".into(),
            "stat -c %h /usr/bin/bash".into(),
        ],
    });
    let report = boot_test::run(&spec).unwrap();
    report.ensure_success().unwrap();
    let fstype = report
        .output_of("findmnt -n -o FSTYPE /sysroot")
        .unwrap_or_default();
    assert!(fstype.contains("xfs"), "root filesystem: {fstype}");
    let links = report
        .output_of("stat -c %h /usr/bin/bash")
        .unwrap_or_default();
    let n: u64 = links.trim().parse().unwrap_or(0);
    assert!(
        n > 1,
        "/usr/bin/bash has {links:?} link(s) in the booted system"
    );
}
