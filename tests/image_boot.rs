//! The demo image, built by `imagebuilder image` from `kickstarts/demo-qcow2.ks` and the demo tree,
//! boots under QEMU (TCG) with BIOS and with UEFI to a login prompt, shows the `%post` marker and runs
//! the deployment (`ostree=` on the kernel command line, `ostree admin status`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imagebuilder::boot_test::{self, BootSpec, Login};

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
