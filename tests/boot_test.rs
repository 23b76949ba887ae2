//! End-to-end tests of the boot-test runner on a real, tiny bootable image made here: the Debian
//! kernel (fetched by scripts/install-deps.sh) with a busybox initramfs whose accounts are written by
//! `imagebuilder::deployment::sysconfig` (so busybox's `login` checks our SHA-512 crypt), on a GRUB hybrid disk
//! image from `grub-mkrescue` that boots from the virtio disk with SeaBIOS and with OVMF.
//!
//! The CD-ROM and netboot tests boot the same kernel with a smaller initramfs that prints its
//! command line: from an El Torito ISO (GRUB for BIOS, the `grub-mkrescue` image for UEFI), and
//! over QEMU's user network with pxelinux (BIOS), GRUB's EFI netboot image (UEFI) and an iPXE
//! script that fetches the kernel from the runner's HTTP server.
//!
//! Each boot takes 20–40 s under TCG on two cores.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use imagebuilder::boot_test::{
    BootReport, BootSpec, DirectBoot, HttpServer, Login, Netboot, build_netboot_root, run,
};
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
    // KVM when a guest runs under it on this host, else TCG; the log says which.
    let accel = imagebuilder::boot_test::auto_accel();
    assert_eq!(v["accel"], serde_json::to_value(accel).unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("boot test: QEMU with {accel} (")),
        "{stderr}"
    );
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
    assert_eq!(report.accel, imagebuilder::boot_test::auto_accel());
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

#[test]
fn cli_errors_name_the_missing_iso_netboot_dir_and_boot_file() {
    let d = tempfile::tempdir().unwrap();
    let cli = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
            .arg("boot-test")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = cli(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("nothing to boot") && err.contains("--netboot DIR"),
        "{err}"
    );
    let iso = d.path().join("absent.iso");
    let (code, err) = cli(&["--cdrom".as_ref(), iso.as_ref()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("CD-ROM image") && err.contains("absent.iso"),
        "{err}"
    );
    let dir = d.path().join("absent-dir");
    let (code, err) = cli(&["--netboot".as_ref(), dir.as_ref()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("netboot directory") && err.contains("absent-dir"),
        "{err}"
    );
    let (code, err) = cli(&["--netboot".as_ref(), d.path().as_ref()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("has no pxelinux.0; give --bootfile"), "{err}");
    let (_, err) = cli(&["--uefi".as_ref(), "--netboot".as_ref(), d.path().as_ref()]);
    assert!(err.contains("has no grubx64.efi"), "{err}");
    let (_, err) = cli(&[
        "--netboot".as_ref(),
        d.path().as_ref(),
        "--bootfile".as_ref(),
        "boot.ipxe".as_ref(),
    ]);
    assert!(err.contains("has no boot.ipxe"), "{err}");
    let (code, err) = cli(&[
        "--netboot".as_ref(),
        d.path().as_ref(),
        "--cdrom".as_ref(),
        iso.as_ref(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not both"), "{err}");
    // Usage errors: a boot file without a netboot directory, a writable disk without a disk.
    let (code, _) = cli(&[
        "--cdrom".as_ref(),
        iso.as_ref(),
        "--bootfile".as_ref(),
        "x".as_ref(),
    ]);
    assert_eq!(code, Some(2));
    let (code, _) = cli(&["--cdrom".as_ref(), iso.as_ref(), "--writable-disk".as_ref()]);
    assert_eq!(code, Some(2));
    // Nothing was left behind in the directory given.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

/// One HTTP exchange on a new connection: status, headers (names lower-cased), body.
fn http(addr: SocketAddr, request: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

#[test]
fn http_server_get_head_range_404_and_traversal() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fs::create_dir_all(root.join("live")).unwrap();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("live/rootfs.img"), &data).unwrap();
    fs::write(root.join("a b.txt"), b"spaced\n").unwrap();
    fs::write(d.path().join("secret"), b"outside\n").unwrap();
    symlink("../secret", root.join("out-link")).unwrap();
    symlink("live/rootfs.img", root.join("in-link")).unwrap();
    let server = HttpServer::start(&root).unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());

    let (status, h, body) = get(addr, "/live/rootfs.img", "");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("700000"));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    assert!(body == data, "the body is the file");
    let (status, h, body) = http(
        addr,
        "HEAD /live/rootfs.img HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(header(&h, "content-length"), Some("700000"));
    let (status, _, body) = get(addr, "/a%20b.txt?x=1", "");
    assert_eq!((status, body.as_slice()), (200, &b"spaced\n"[..]));
    let (status, _, body) = get(addr, "/in-link", "");
    assert!(
        status == 200 && body == data,
        "a link inside the root is served"
    );

    let (status, h, body) = get(addr, "/live/rootfs.img", "Range: bytes=1000-1999\r\n");
    assert_eq!(status, 206);
    assert_eq!(header(&h, "content-range"), Some("bytes 1000-1999/700000"));
    assert_eq!(header(&h, "content-length"), Some("1000"));
    assert!(body == data[1000..2000]);
    let (status, _, body) = get(addr, "/live/rootfs.img", "Range: bytes=-10\r\n");
    assert!(status == 206 && body == data[data.len() - 10..]);
    let (status, h, _) = get(addr, "/live/rootfs.img", "Range: bytes=700000-\r\n");
    assert_eq!(status, 416);
    assert_eq!(header(&h, "content-range"), Some("bytes */700000"));

    assert_eq!(get(addr, "/missing", "").0, 404);
    assert_eq!(get(addr, "/live", "").0, 404, "a directory is not served");
    for bad in [
        "/../secret",
        "/live/../../secret",
        "/%2e%2e/secret",
        "/out-link",
    ] {
        let (status, _, body) = get(addr, bad, "");
        assert_eq!(status, 403, "{bad}");
        assert!(!String::from_utf8_lossy(&body).contains("outside"), "{bad}");
    }
    let (status, h, _) = http(
        addr,
        "POST /a HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert_eq!(header(&h, "allow"), Some("GET, HEAD"));
    assert_eq!(http(addr, "nonsense\r\n\r\n").0, 400);

    let log = server.stop();
    let summary: Vec<(&str, &str, u16, u64)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status, r.bytes))
        .collect();
    assert_eq!(
        &summary[..6],
        [
            ("GET", "/live/rootfs.img", 200, 700_000),
            ("HEAD", "/live/rootfs.img", 200, 0),
            ("GET", "/a b.txt", 200, 7),
            ("GET", "/in-link", 200, 700_000),
            ("GET", "/live/rootfs.img", 206, 1000),
            ("GET", "/live/rootfs.img", 206, 10),
        ]
    );
    assert!(
        summary.contains(&("GET", "/out-link", 403, 0)),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("GET", "/missing", 404, 0)),
        "{summary:?}"
    );
    assert!(summary.contains(&("POST", "/a", 405, 0)), "{summary:?}");
}

#[test]
fn http_server_keeps_connections_alive_and_hangs_up_on_stop() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("f"), b"0123456789").unwrap();
    let server = HttpServer::start(d.path()).unwrap();
    let addr = server.addr();
    // Two requests on one connection, the second asking to close it.
    let (status, h, body) = http(
        addr,
        "HEAD /f HTTP/1.1\r\nHost: t\r\n\r\nGET /f HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), Some("10"));
    let rest = String::from_utf8(body).unwrap();
    assert!(
        rest.starts_with("HTTP/1.1 200 OK\r\n") && rest.ends_with("\r\n\r\n0123456789"),
        "{rest:?}"
    );
    // An idle client does not hold up stop(), and is hung up on.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(b"GET /f HTTP/1.1\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    assert!(idle.read(&mut buf).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let log = server.stop();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(log.len(), 3);
    let mut tail = Vec::new();
    let _ = idle.read_to_end(&mut tail);
    assert!(TcpStream::connect(addr).is_err(), "the port is closed");
}

#[test]
fn netboot_root_replaces_url_in_small_text_files_and_links_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    fs::create_dir_all(src.join("pxelinux.cfg")).unwrap();
    fs::create_dir_all(src.join("grub")).unwrap();
    let cfg = "DEFAULT live\nLABEL live\n  APPEND root=live:<URL>/live.img inst.repo=<URL>\n";
    fs::write(src.join("pxelinux.cfg/default"), cfg).unwrap();
    fs::write(src.join("grub/grub.cfg"), "set timeout=1\n").unwrap();
    let binary = b"\xff\xfe <URL> binary".to_vec();
    fs::write(src.join("bin.dat"), &binary).unwrap();
    let big = format!("{}<URL>\n", "#".repeat(1 << 20));
    fs::write(src.join("big.cfg"), &big).unwrap();
    fs::write(src.join("script.sh"), "#!/bin/sh\ncurl <URL>/x\n").unwrap();
    fs::set_permissions(src.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    symlink("pxelinux.cfg/default", src.join("link-in")).unwrap();
    fs::write(d.path().join("outside.txt"), "from outside <URL>\n").unwrap();
    symlink("../outside.txt", src.join("link-out")).unwrap();
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("..", src.join("grub/loop")).unwrap();

    let dest = d.path().join("dest");
    let url = "http://10.0.2.2:12345";
    let replaced = build_netboot_root(&src, &dest, url).unwrap();
    assert_eq!(
        replaced,
        ["link-in", "link-out", "pxelinux.cfg/default", "script.sh"].map(PathBuf::from)
    );
    let want = cfg.replace("<URL>", url);
    assert_eq!(
        fs::read_to_string(dest.join("pxelinux.cfg/default")).unwrap(),
        want
    );
    assert_eq!(fs::read_to_string(dest.join("link-in")).unwrap(), want);
    assert_eq!(
        fs::read_to_string(dest.join("link-out")).unwrap(),
        "from outside http://10.0.2.2:12345\n"
    );
    let mode = fs::metadata(dest.join("script.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    // Unchanged files are hard links; binary and large files are never rewritten.
    for f in ["grub/grub.cfg", "bin.dat", "big.cfg"] {
        assert_eq!(
            fs::metadata(src.join(f)).unwrap().ino(),
            fs::metadata(dest.join(f)).unwrap().ino(),
            "{f}"
        );
    }
    assert_eq!(fs::read(dest.join("bin.dat")).unwrap(), binary);
    // Only regular files and directories; the dangling link and the loop are skipped.
    assert!(
        fs::symlink_metadata(dest.join("link-in"))
            .unwrap()
            .is_file()
    );
    assert!(!dest.join("dangling").exists() && !dest.join("grub/loop").exists());
    // The source is untouched.
    assert_eq!(
        fs::read_to_string(src.join("pxelinux.cfg/default")).unwrap(),
        cfg
    );

    // The HTTP server serves the built root.
    let server = HttpServer::start(&dest).unwrap();
    let (status, _, body) = get(server.addr(), "/pxelinux.cfg/default", "");
    assert_eq!((status, String::from_utf8(body).unwrap()), (200, want));

    let e = build_netboot_root(&d.path().join("absent"), &d.path().join("d2"), url).unwrap_err();
    assert!(format!("{e:#}").contains("absent"), "{e:#}");
}

/// The kernel plus a busybox initramfs whose init prints its command line and a marker, for the
/// CD-ROM and netboot tests.
struct NetFixture {
    _dir: tempfile::TempDir,
    kernel: PathBuf,
    initrd: PathBuf,
}

const NET_MARKER: &str = "NETBOOT-MARKER-42";

fn net_fixture() -> &'static NetFixture {
    static F: OnceLock<NetFixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for d in ["bin", "proc", "dev"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let busybox = imagebuilder::util::cmd::find_in_path("busybox")
            .expect("busybox not found: install the Debian package busybox-static (scripts/install-deps.sh)");
        fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        for a in ["sh", "mount", "cat", "echo", "sleep"] {
            symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        // The marker is computed, so the kernel's echo of a command line cannot match it.
        fs::write(
            root.join("init"),
            "#!/bin/sh\nmount -t proc proc /proc\necho \"GUEST-CMDLINE: $(cat /proc/cmdline)\"\n\
             echo \"NETBOOT-MARKER-$((40+2))\"\nwhile :; do sleep 60; done\n",
        )
        .unwrap();
        fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755)).unwrap();
        let initrd = dir.path().join("initrd.img");
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
                root.display(),
                initrd.display()
            ))
            .run()
            .unwrap();
        let kernel = dir.path().join("vmlinuz");
        fs::copy(self::kernel(), &kernel).unwrap();
        NetFixture {
            _dir: dir,
            kernel,
            initrd,
        }
    })
}

/// A netboot directory holding the fixture's kernel and initramfs (`vmlinuz`, `initrd.img`).
fn netboot_dir(parent: &Path) -> PathBuf {
    let f = net_fixture();
    let dir = parent.join("netboot");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(&f.kernel, dir.join("vmlinuz")).unwrap();
    fs::copy(&f.initrd, dir.join("initrd.img")).unwrap();
    dir
}

/// The command line the guest's init printed.
fn guest_cmdline(report: &BootReport) -> String {
    // Lossy: firmware and boot loaders draw their menus in other code pages.
    let log = String::from_utf8_lossy(&fs::read(&report.serial_log).unwrap()).into_owned();
    log.lines()
        .find_map(|l| {
            l.split_once("GUEST-CMDLINE: ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("the guest printed no command line:\n{log}"))
}

/// Only serial.log is left in the work dir and no QEMU mentions it.
fn assert_clean_work_dir(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["serial.log"]);
    assert_no_process_mentions(dir);
}

/// Boots `spec` waiting for the netboot fixture's marker; returns the report and its run time.
fn boot_net_fixture(mut spec: BootSpec, logs: &Path) -> BootReport {
    spec.markers = vec![NET_MARKER.into()];
    spec.timeout = Duration::from_secs(240);
    spec.memory_mib = 1024;
    spec.work_dir = Some(logs.to_path_buf());
    let t0 = Instant::now();
    let report = run(&spec).unwrap();
    eprintln!("boot took {:.1} s", t0.elapsed().as_secs_f64());
    report.ensure_success().unwrap();
    report
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn bios_pxelinux_netboot_gets_the_url_substituted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = netboot_dir(tmp.path());
    fs::copy("/usr/lib/PXELINUX/pxelinux.0", dir.join("pxelinux.0")).unwrap();
    fs::copy(
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        dir.join("ldlinux.c32"),
    )
    .unwrap();
    fs::create_dir(dir.join("pxelinux.cfg")).unwrap();
    let cfg = "SERIAL 0 115200\nPROMPT 0\nDEFAULT netboot\nLABEL netboot\n  KERNEL vmlinuz\n  \
               APPEND initrd=initrd.img console=ttyS0,115200 live.url=<URL>/live.squashfs\n";
    fs::write(dir.join("pxelinux.cfg/default"), cfg).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let spec = BootSpec {
        netboot: Some(Netboot::new(&dir)),
        ..BootSpec::default()
    };
    let report = boot_net_fixture(spec, logs.path());
    let url = report.http_url.clone().unwrap();
    assert!(url.starts_with("http://10.0.2.2:"), "{url}");
    let cmdline = guest_cmdline(&report);
    assert!(
        cmdline.contains(&format!("live.url={url}/live.squashfs")),
        "{cmdline}"
    );
    assert!(!cmdline.contains("<URL>"), "{cmdline}");
    // pxelinux fetched everything over TFTP; the directory itself is untouched.
    assert!(
        report.http_requests.is_empty(),
        "{:?}",
        report.http_requests
    );
    assert_eq!(
        fs::read_to_string(dir.join("pxelinux.cfg/default")).unwrap(),
        cfg
    );
    assert_clean_work_dir(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn uefi_grub_netboot_gets_the_url_substituted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = netboot_dir(tmp.path());
    let embed = tmp.path().join("embed.cfg");
    fs::write(
        &embed,
        "set prefix=(tftp)/grub\nconfigfile (tftp)/grub/grub.cfg\n",
    )
    .unwrap();
    Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "(tftp)/grub", "-o"])
        .arg(dir.join("grubx64.efi"))
        .arg("-c")
        .arg(&embed)
        .args([
            "normal",
            "linux",
            "configfile",
            "echo",
            "test",
            "serial",
            "terminal",
            "efinet",
            "net",
            "tftp",
            "http",
            "boot",
        ])
        .run()
        .unwrap();
    fs::create_dir(dir.join("grub")).unwrap();
    fs::write(
        dir.join("grub/grub.cfg"),
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n\
         set timeout=1\nmenuentry netboot {\n  linux (tftp)/vmlinuz console=ttyS0,115200 live.url=<URL>/live.squashfs\n  \
         initrd (tftp)/initrd.img\n}\n",
    )
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let spec = BootSpec {
        netboot: Some(Netboot::new(&dir)),
        uefi: true,
        ..BootSpec::default()
    };
    let report = boot_net_fixture(spec, logs.path());
    let url = report.http_url.clone().unwrap();
    let cmdline = guest_cmdline(&report);
    assert!(
        cmdline.contains(&format!("live.url={url}/live.squashfs")),
        "{cmdline}"
    );
    assert!(cmdline.contains("BOOT_IMAGE=(tftp)/vmlinuz"), "{cmdline}");
    assert_clean_work_dir(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn cli_ipxe_netboot_fetches_kernel_and_initrd_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = netboot_dir(tmp.path());
    // QEMU's iPXE ROM runs the boot file as a script and fetches over HTTP what it names.
    fs::write(
        dir.join("boot.ipxe"),
        "#!ipxe\nkernel <URL>/vmlinuz console=ttyS0,115200 fetched.from=<URL>\ninitrd <URL>/initrd.img\nboot\n",
    )
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("boot-test")
        .arg("--netboot")
        .arg(&dir)
        .args([
            "--bootfile",
            "boot.ipxe",
            "--marker",
            NET_MARKER,
            "--timeout",
            "240",
        ])
        .args(["--memory", "1024", "--json", "--log-dir"])
        .arg(logs.path())
        .output()
        .unwrap();
    eprintln!("boot took {:.1} s", t0.elapsed().as_secs_f64());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let url = v["http_url"].as_str().unwrap();
    let requests = v["http_requests"].as_array().unwrap();
    for (path, file) in [("/vmlinuz", "vmlinuz"), ("/initrd.img", "initrd.img")] {
        let size = fs::metadata(dir.join(file)).unwrap().len();
        assert!(
            requests.iter().any(|r| r["method"] == "GET"
                && r["path"] == path
                && r["status"] == 200
                && r["bytes"] == size),
            "{path} not fetched whole over HTTP: {requests:?}"
        );
    }
    let cmdline = v["kernel_cmdline"].as_str().unwrap();
    assert!(
        cmdline.contains(&format!("fetched.from={url}")),
        "{cmdline}"
    );
    assert_clean_work_dir(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn bios_cdrom_boots_before_a_writable_disk() {
    let f = net_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let iso_root = tmp.path().join("iso");
    fs::create_dir_all(iso_root.join("boot/grub")).unwrap();
    fs::copy(&f.kernel, iso_root.join("boot/vmlinuz")).unwrap();
    fs::copy(&f.initrd, iso_root.join("boot/initrd.img")).unwrap();
    Command::new("grub-mkimage")
        .args(["-O", "i386-pc-eltorito", "-p", "/boot/grub", "-o"])
        .arg(iso_root.join("boot/grub/eltorito.img"))
        .args([
            "biosdisk",
            "iso9660",
            "normal",
            "linux",
            "configfile",
            "serial",
            "terminal",
            "echo",
        ])
        .run()
        .unwrap();
    fs::write(
        iso_root.join("boot/grub/grub.cfg"),
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n\
         set timeout=0\nmenuentry cdrom {\n  linux /boot/vmlinuz console=ttyS0,115200 booted.from=cdrom\n  \
         initrd /boot/initrd.img\n}\n",
    )
    .unwrap();
    let iso = tmp.path().join("x.iso");
    Command::new("xorriso")
        .args([
            "-as",
            "mkisofs",
            "-quiet",
            "-R",
            "-b",
            "boot/grub/eltorito.img",
        ])
        .args([
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-o",
        ])
        .arg(&iso)
        .arg(&iso_root)
        .run()
        .unwrap();
    // A bootable disk is attached too (writable, as for an installer): the CD boots first.
    let disk = tmp.path().join("disk.raw");
    fs::copy(&fixture().disk, &disk).unwrap();
    let spec = BootSpec {
        cdrom: Some(iso.clone()),
        writable_disk: true,
        ..BootSpec::new(&disk)
    };
    let logs = tempfile::tempdir().unwrap();
    let report = boot_net_fixture(spec, logs.path());
    let cmdline = guest_cmdline(&report);
    assert!(cmdline.contains("booted.from=cdrom"), "{cmdline}");
    assert_clean_work_dir(logs.path());
}

#[test]
#[ignore = "slow tier: boots QEMU"]
fn uefi_cdrom_boot_of_a_grub_mkrescue_iso() {
    // The fixture's disk is a grub-mkrescue ISO with an EFI El Torito image.
    let f = fixture();
    let logs = tempfile::tempdir().unwrap();
    let spec = BootSpec {
        cdrom: Some(f.disk.clone()),
        uefi: true,
        markers: vec!["FIXTURE-MARKER-42".into()],
        timeout: Duration::from_secs(240),
        work_dir: Some(logs.path().to_path_buf()),
        ..BootSpec::default()
    };
    let t0 = Instant::now();
    let report = run(&spec).unwrap();
    eprintln!("boot took {:.1} s", t0.elapsed().as_secs_f64());
    report.ensure_success().unwrap();
    let cmdline = report.kernel_cmdline.clone().unwrap();
    assert!(
        cmdline.contains("ostree=/ostree/boot.1/fixture/0"),
        "{cmdline}"
    );
    assert_clean_work_dir(logs.path());
}
