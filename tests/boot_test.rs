//! End-to-end tests of the boot-test runner on a real, tiny bootable image made here: the Debian
//! kernel (fetched by scripts/install-deps.sh) with a busybox initramfs whose accounts are written by
//! `imagebuilder::deployment::sysconfig` (so busybox's `login` checks our SHA-512 crypt), on a GRUB hybrid disk
//! image from `grub-mkrescue` that boots from the virtio disk with SeaBIOS and with OVMF.
//!
//! Each boot takes 20–40 s under TCG on two cores.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use imagebuilder::boot_test::{BootSpec, DirectBoot, Login, run};
use imagebuilder::deployment::post::{self, PostOptions};
use imagebuilder::deployment::sysconfig::{self, ApplyOptions, Target};
use imagebuilder::util::cmd::CommandExt;

const ROOT_PASSWORD: &str = "boot-test pw";

const KICKSTART: &str = "rootpw 'boot-test pw'\nnetwork --hostname=bbtest\n\
    %post --erroronfail\necho \"POST-MARKER-$((6*7))\" > /etc/post-marker\n%end\n";

/// The Debian kernel install-deps.sh keeps for these tests.
fn kernel() -> PathBuf {
    if let Some(k) = std::env::var_os("IMAGEBUILDER_TEST_KERNEL") {
        return k.into();
    }
    let state =
        std::env::var("IMAGEBUILDER_STATE_DIR").unwrap_or_else(|_| "/var/lib/imagebuilder".into());
    let dir = Path::new(&state).join("boot-test-kernel");
    fs::read_dir(&dir)
        .ok()
        .and_then(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().contains("vmlinuz-"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no Debian kernel in {}: run scripts/install-deps.sh",
                dir.display()
            )
        })
}

#[derive(Clone)]
struct Fixture {
    _dir: std::sync::Arc<tempfile::TempDir>,
    /// GRUB hybrid disk image (boots BIOS and UEFI from the disk).
    disk: PathBuf,
    initrd: PathBuf,
    kernel: PathBuf,
}

/// Builds the busybox root, its initramfs and the disk image once per test binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "root", "tmp", "var", "run"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = imagebuilder::util::cmd::find_in_path("busybox")
            .expect("busybox not found: install the Debian package busybox-static (scripts/install-deps.sh)");
        fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        for a in ["sh", "mount", "cat", "echo", "hostname", "sleep", "ls", "id", "login"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        for a in ["init", "getty"] {
            std::os::unix::fs::symlink("../bin/busybox", root.join("sbin").join(a)).unwrap();
        }
        fs::write(
            root.join("init"),
            "#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
             hostname -F /etc/hostname\necho \"FIXTURE-MARKER-$((40+2))\"\ncat /etc/post-marker\nexec /sbin/init\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("etc/inittab"), "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n").unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        // The accounts and host name come from the sysconfig module under test.
        // Accounts, host name and a %post come from a kickstart, through the modules under test:
        // busybox's `login` checks our SHA-512 crypt, and the %post (run with bubblewrap) leaves a
        // marker that /init prints at boot.
        let ks = kickstart::parse(KICKSTART, kickstart::Version::devel()).unwrap();
        let target = Target::plain(&root);
        let warnings = sysconfig::apply(&target, &sysconfig::from_kickstart(&ks), &ApplyOptions::default()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let post_opts = PostOptions::new(dir.path().join("logs"), 64 << 20);
        post::run_scripts(&target, &post::scripts_from_kickstart(&ks), &post_opts).unwrap();

        let iso = dir.path().join("iso");
        fs::create_dir_all(iso.join("boot/grub")).unwrap();
        let initrd = iso.join("boot/initrd.img");
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
                root.display(),
                initrd.display()
            ))
            .run()
            .unwrap();
        let kernel = kernel();
        fs::copy(&kernel, iso.join("boot/vmlinuz")).unwrap();
        fs::write(
            iso.join("boot/grub/grub.cfg"),
            "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n\
             set timeout=0\nmenuentry fixture {\n  linux /boot/vmlinuz console=ttyS0,115200 ostree=/ostree/boot.1/fixture/0\n  initrd /boot/initrd.img\n}\n",
        )
        .unwrap();
        let disk = dir.path().join("disk.raw");
        Command::new("grub-mkrescue").arg("-o").arg(&disk).arg(&iso).run().unwrap();
        Fixture {
            disk,
            initrd,
            kernel,
            _dir: std::sync::Arc::new(dir),
        }
    })
}

/// No process (QEMU) still mentions this directory on its command line.
fn assert_no_process_mentions(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !text.contains(&needle),
                "process {:?} still runs: {text}",
                e.file_name()
            );
        }
    }
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn cli_bios_boot_logs_in_and_runs_commands() {
    let f = fixture();
    let logs = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("boot-test")
        .arg(&f.disk)
        .args([
            "--timeout",
            "240",
            "--marker",
            "FIXTURE-MARKER-42",
            "--marker",
            "POST-MARKER-42",
            "--marker",
            "Linux version",
        ])
        .args([
            "--root-password",
            ROOT_PASSWORD,
            "--run",
            "hostname",
            "--run",
            "id -u; false",
        ])
        .arg("--log-dir")
        .arg(logs.path())
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["success"], true);
    let serial = PathBuf::from(v["serial_log"].as_str().unwrap());
    assert_eq!(serial, logs.path().join("serial.log"));
    let log = fs::read_to_string(&serial).unwrap();
    assert!(
        log.contains("FIXTURE-MARKER-42") && log.contains("bbtest login:"),
        "{log}"
    );
    let m = v["markers"].as_array().unwrap();
    let t_marker = m[0]["seconds"].as_f64().unwrap();
    let t_post = m[1]["seconds"].as_f64().unwrap();
    let t_linux = m[2]["seconds"].as_f64().unwrap();
    assert!(
        t_post >= t_marker,
        "the %post marker is printed after the init's: {m:?}"
    );
    assert!(
        t_linux < t_marker,
        "kernel banner before the init's marker: {m:?}"
    );
    assert!(v["login_prompt_seconds"].as_f64().unwrap() >= t_marker);
    // The command line as the logged-in shell read it from /proc/cmdline.
    let cmdline = v["kernel_cmdline"].as_str().unwrap();
    assert!(
        cmdline.contains("ostree=/ostree/boot.1/fixture/0"),
        "{cmdline}"
    );
    assert!(!cmdline.contains("IB-END"), "{cmdline}");
    let cmds = v["commands"].as_array().unwrap();
    assert_eq!(cmds[0]["command"], "cat /proc/cmdline");
    assert_eq!(cmds[1]["output"].as_str().unwrap().trim(), "bbtest");
    assert_eq!(cmds[1]["exit_status"], 0);
    assert_eq!(cmds[2]["output"].as_str().unwrap().trim(), "0");
    assert_eq!(cmds[2]["exit_status"], 1, "exit status of `false` reported");
    // The scratch files (socket, QEMU stderr) are gone, QEMU too; only the log stays.
    let left: Vec<_> = fs::read_dir(logs.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["serial.log"]);
    assert_no_process_mentions(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn library_uefi_boot_of_qcow2_reaches_login_prompt() {
    let f = fixture();
    let logs = tempfile::tempdir().unwrap();
    // The same disk as qcow2: the runner detects the format from the header.
    let qcow2 = logs.path().join("disk.qcow2");
    Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&f.disk)
        .arg(&qcow2)
        .run()
        .unwrap();
    let f = Fixture {
        disk: qcow2,
        ..f.clone()
    };
    let mut spec = BootSpec::new(&f.disk);
    spec.uefi = true;
    spec.timeout = Duration::from_secs(240);
    spec.work_dir = Some(logs.path().to_path_buf());
    let before = fs::read(&f.disk).unwrap();
    let report = run(&spec).unwrap();
    report.ensure_success().unwrap();
    assert!(
        fs::read(&f.disk).unwrap() == before,
        "the image was modified"
    );
    assert!(report.login_prompt_seconds.is_some());
    let log = fs::read_to_string(&report.serial_log).unwrap();
    // OVMF ran (its boot manager or GRUB's EFI build), then the kernel.
    assert!(log.contains("Command line:"), "{log}");
    assert!(
        report
            .kernel_cmdline
            .as_deref()
            .unwrap()
            .contains("ostree="),
        "{report:?}"
    );
    assert_no_process_mentions(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn timeout_kills_qemu_and_names_the_missing_marker() {
    let f = fixture();
    let logs = tempfile::tempdir().unwrap();
    let mut spec = BootSpec::new(&f.disk);
    spec.image = None;
    spec.direct = Some(DirectBoot {
        kernel: f.kernel.clone(),
        initrd: Some(f.initrd.clone()),
        append: "console=ttyS0,115200".into(),
    });
    spec.timeout = Duration::from_secs(4);
    spec.markers = vec!["NEVER-PRINTED-MARKER".into()];
    spec.work_dir = Some(logs.path().to_path_buf());
    let t0 = Instant::now();
    let report = run(&spec).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "timeout not honoured: {:?}",
        t0.elapsed()
    );
    assert!(!report.success);
    let failure = report.failure.clone().unwrap();
    assert!(
        failure.contains("timed out") && failure.contains("NEVER-PRINTED-MARKER"),
        "{failure}"
    );
    assert!(report.markers[0].seconds.is_none());
    let err = format!("{:#}", report.ensure_success().unwrap_err());
    assert!(err.contains("serial.log"), "{err}");
    assert_no_process_mentions(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn wrong_password_is_reported() {
    let f = fixture();
    let logs = tempfile::tempdir().unwrap();
    let mut spec = BootSpec::new(&f.disk);
    spec.image = None;
    spec.direct = Some(DirectBoot {
        kernel: f.kernel.clone(),
        initrd: Some(f.initrd.clone()),
        append: "console=ttyS0,115200 quiet".into(),
    });
    spec.timeout = Duration::from_secs(240);
    spec.login = Some(Login {
        user: "root".into(),
        password: Some("not the password".into()),
        commands: vec![],
    });
    spec.work_dir = Some(logs.path().to_path_buf());
    let report = run(&spec).unwrap();
    assert!(!report.success);
    assert!(
        report
            .failure
            .as_deref()
            .unwrap()
            .contains("Login incorrect"),
        "{report:?}"
    );
    assert!(report.login_prompt_seconds.is_some());
    assert_no_process_mentions(logs.path());
}

#[test]
fn cli_errors_for_missing_image() {
    let out = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["boot-test", "/nonexistent/disk.qcow2", "--timeout", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/disk.qcow2"), "{err}");
}
