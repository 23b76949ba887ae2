//! Live images from the demo tree: the PXE-to-Live directory of the rendered pxetolive kickstart
//! netboots (BIOS through pxelinux, UEFI through the GRUB netboot image; kernel and initramfs over
//! TFTP, the squashfs over HTTP; the cpio variant through iPXE), the live ISO boots BIOS and UEFI
//! as a CD-ROM and as a disk, the outputs are reproducible, a tree whose initramfs lacks the live
//! modules gets one from its own dracut, and bad input fails clearly with nothing left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use imagebuilder::boot_test::{self, BootReport, BootSpec, Login, Netboot};

const MARKER: &str = "IMAGEBUILDER-DEMO-BOOTED";

/// Appended to the kickstarts under test: a unit that reports the live root and the booted
/// deployment on the console (the pxetolive kickstart locks root, so nobody logs in).
const REPORT_POST: &str = r#"
%post
cat > /etc/live-report.sh << 'EOS'
echo "LIVE-ROOT=$(findmnt -n -o SOURCE /)"
echo "LIVE-BOOTED=$(ostree admin status | sed -n 's/^\* //p')"
EOS
cat > /etc/systemd/system/live-report.service << 'EOU'
[Unit]
Description=Report the live root on the console
[Service]
Type=oneshot
ExecStart=/bin/sh /etc/live-report.sh
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target
EOU
ln -sf ../live-report.service /etc/systemd/system/multi-user.target.wants/live-report.service
%end
"#;

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn imagebuilder(args: &[&str], extra: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagebuilder"));
    c.args(args).args(extra).env_remove("SOURCE_DATE_EPOCH");
    c.output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The kickstart at `rel` with [`REPORT_POST`] appended, in `dir`.
fn with_report(rel: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    let ks = dir.join(Path::new(rel).file_name().unwrap());
    std::fs::write(&ks, format!("{text}{REPORT_POST}")).unwrap();
    ks
}

fn live_markers(commit: &str) -> Vec<String> {
    vec![
        MARKER.into(),
        format!("LIVE-ROOT=/dev/mapper/live-rw[/ostree/deploy/demo/deploy/{commit}.0]"),
        format!("LIVE-BOOTED=demo {commit}.0"),
        "login:".into(),
    ]
}

fn boot(spec: &mut BootSpec, work: &Path, what: &str) -> BootReport {
    spec.timeout = Duration::from_secs(900);
    spec.memory_mib = 3072;
    spec.work_dir = Some(work.to_path_buf());
    let report = boot_test::run(spec).unwrap();
    report
        .ensure_success()
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    eprintln!("{what}: booted after {:.1} s", report.elapsed_seconds);
    report
}

fn netboot(dir: &Path, bootfile: Option<&str>, uefi: bool, markers: Vec<String>) -> BootSpec {
    let mut nb = Netboot::new(dir);
    nb.bootfile = bootfile.map(str::to_string);
    BootSpec {
        netboot: Some(nb),
        uefi,
        markers,
        ..BootSpec::default()
    }
}

fn text(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The squashfs holds `LiveOS/rootfs.img`, an ext4 of `size` bytes that fsck accepts, labelled
/// LiveOS, with the deployment (empty fstab) and `/boot` folded in.
fn check_squashfs(squashfs: &Path, size: Option<u64>, work: &Path) {
    let listing = text(Command::new("unsquashfs").arg("-l").arg(squashfs));
    assert!(
        listing.contains("squashfs-root/LiveOS/rootfs.img"),
        "{listing}"
    );
    let x = work.join("unsquashed");
    text(
        Command::new("unsquashfs")
            .args(["-q", "-n", "-d"])
            .arg(&x)
            .arg(squashfs),
    );
    let img = x.join("LiveOS/rootfs.img");
    if let Some(s) = size {
        assert_eq!(std::fs::metadata(&img).unwrap().len(), s);
    }
    text(Command::new("e2fsck").args(["-f", "-n"]).arg(&img));
    let label = text(
        Command::new("blkid")
            .args(["-p", "-s", "LABEL", "-o", "value"])
            .arg(&img),
    );
    assert_eq!(label.trim(), "LiveOS");
    let debugfs = |req: &str| text(Command::new("debugfs").args(["-R", req]).arg(&img));
    let deploys = debugfs("ls -p /ostree/deploy/demo/deploy");
    let dep = deploys
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .find(|n| n.ends_with(".0"))
        .unwrap_or_else(|| panic!("no deployment in {deploys}"))
        .to_string();
    let fstab = debugfs(&format!("cat /ostree/deploy/demo/deploy/{dep}/etc/fstab"));
    assert!(
        !fstab.contains("UUID="),
        "the live root's fstab mounts something: {fstab}"
    );
    let boot = debugfs("ls -p /boot/loader/entries");
    assert!(boot.contains("ostree-1-demo.conf"), "{boot}");
    std::fs::remove_dir_all(&x).unwrap();
}

fn sha256sum_check(dir: &Path) {
    let o = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

fn squashfs_fetched(report: &BootReport, size: u64) {
    assert!(
        report
            .http_requests
            .iter()
            .any(|r| r.path == "/live-rootfs.squashfs.img" && r.status == 200 && r.bytes == size),
        "the squashfs was not fetched whole over HTTP: {:?}",
        report.http_requests
    );
}

#[test]
#[ignore = "slow tier: builds a live image and netboots it in QEMU"]
fn rendered_pxetolive_kickstart_netboots_with_bios_pxelinux_and_uefi_grub() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let ks = with_report("kickstarts/demo-pxetolive.ks", d.path());
    let out = d.path().join("out");
    let config = root().join("kickstarts/config.ini");
    let tdl = root().join("tdl/fedora-atomic-29.tdl");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["liveimage", "-p", "demo", "-o"])
        .arg(&out)
        .arg("-k")
        .arg(&ks)
        .arg("-c")
        .arg(&config)
        .arg("--tdl")
        .arg(&tdl)
        .arg("--ostreerepo")
        .arg(&tree.repo)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    ok(&o);
    let images = out.join("images");
    sha256sum_check(&images);
    sha256sum_check(&out);
    let pxe_config = std::fs::read_to_string(images.join("PXE_CONFIG")).unwrap();
    assert!(
        pxe_config.contains("root=live:<URL>/live-rootfs.squashfs.img")
            && pxe_config.contains("ostree=/ostree/boot.1/demo/")
            && pxe_config.contains("kernel <PXE_DIR>/vmlinuz-"),
        "{pxe_config}"
    );
    let squashfs = images.join("live-rootfs.squashfs.img");
    // `part / --size=6000` is the size of rootfs.img.
    check_squashfs(&squashfs, Some(6000 << 20), d.path());
    let cpio = text(
        Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::fs::File::open(images.join("live-rootfs.cpio")).unwrap()),
    );
    assert_eq!(cpio.trim(), "live-rootfs.squashfs.img");
    let size = std::fs::metadata(&squashfs).unwrap().len();

    let bios = boot(
        &mut netboot(&images, None, false, live_markers(&tree.commit)),
        &d.path().join("bios"),
        "BIOS pxelinux netboot",
    );
    squashfs_fetched(&bios, size);
    let cmdline = bios.kernel_cmdline.clone().unwrap_or_default();
    assert!(cmdline.contains("root=live:http://10.0.2.2:"), "{cmdline}");
    let uefi = boot(
        &mut netboot(&images, None, true, live_markers(&tree.commit)),
        &d.path().join("uefi"),
        "UEFI GRUB netboot",
    );
    squashfs_fetched(&uefi, size);
    let log = String::from_utf8_lossy(&std::fs::read(&uefi.serial_log).unwrap()).into_owned();
    assert!(
        log.contains("efi: EFI v"),
        "no sign of UEFI firmware on the console"
    );
}

fn build_demo_live(out: &Path, epoch: Option<&str>, extra: &[&str], ks: &Path) -> Output {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_imagebuilder"));
    c.args([
        "image", "-i", "pxe-live", "-i", "live-iso", "--name", "demo",
    ])
    .args(extra)
    .arg("--kickstart")
    .arg(ks)
    .arg("--ostreerepo")
    .arg(&tree.repo)
    .arg("-o")
    .arg(out);
    match epoch {
        Some(e) => c.env("SOURCE_DATE_EPOCH", e),
        None => c.env_remove("SOURCE_DATE_EPOCH"),
    };
    c.output().unwrap()
}

fn login(commands: &[&str]) -> Option<Login> {
    Some(Login {
        user: "root".into(),
        password: Some("demo".into()),
        commands: commands.iter().map(|c| c.to_string()).collect(),
    })
}

#[test]
#[ignore = "slow tier: builds a live ISO and boots it four ways in QEMU"]
fn demo_live_iso_boots_bios_and_uefi_as_cdrom_and_as_disk() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let ks = with_report("kickstarts/demo-qcow2.ks", d.path());
    let out = d.path().join("out");
    ok(&build_demo_live(&out, None, &["--volid", "DEMO-LIVE"], &ks));
    let iso = out.join("demo.iso");
    let report = text(
        Command::new("xorriso")
            .args(["-indev"])
            .arg(&iso)
            .args(["-report_el_torito", "plain"]),
    );
    let boot_lines: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("El Torito boot img"))
        .collect();
    assert!(
        boot_lines.iter().any(|l| l.contains("BIOS"))
            && boot_lines.iter().any(|l| l.contains("UEFI")),
        "{report}"
    );
    let blkid = text(Command::new("blkid").arg("-p").arg(&iso));
    assert!(
        blkid.contains("LABEL=\"DEMO-LIVE\"") && blkid.contains("TYPE=\"iso9660\""),
        "{blkid}"
    );
    // No HFS+ twin of the label (grub-mkrescue's Apple partition) for a disk boot to trip over.
    let parts = text(Command::new("sgdisk").arg("-p").arg(&iso));
    assert!(!parts.to_lowercase().contains("hfs"), "{parts}");
    let listing = text(
        Command::new("xorriso")
            .args(["-indev"])
            .arg(&iso)
            .args(["-find", "/", "-type", "f"]),
    );
    assert!(listing.contains("/LiveOS/squashfs.img"), "{listing}");

    let cases = [
        (false, true, "/dev/sr0", "BIOS CD-ROM"),
        (false, false, "/dev/vda", "BIOS disk"),
        (true, true, "/dev/sr0", "UEFI CD-ROM"),
        (true, false, "/dev/vda", "UEFI disk"),
    ];
    for (uefi, cdrom, medium, what) in cases {
        let mut spec = BootSpec {
            uefi,
            markers: live_markers(&tree.commit),
            login: login(&["findmnt -n -o SOURCE /run/initramfs/live"]),
            ..BootSpec::default()
        };
        if cdrom {
            spec.cdrom = Some(iso.clone());
        } else {
            spec.image = Some(iso.clone());
        }
        let r = boot(&mut spec, &d.path().join(what.replace(' ', "-")), what);
        let live = r
            .output_of("findmnt -n -o SOURCE /run/initramfs/live")
            .unwrap_or_default();
        assert!(live.contains(medium), "{what}: live medium {live}");
        let cmdline = r.kernel_cmdline.clone().unwrap_or_default();
        assert!(
            cmdline.contains("root=live:CDLABEL=DEMO-LIVE") && cmdline.contains("rd.live.image"),
            "{what}: {cmdline}"
        );
    }
}

#[test]
#[ignore = "slow tier: builds a live image and netboots it in QEMU"]
fn demo_pxe_cpio_variant_netboots_through_ipxe_without_http() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let ks = with_report("kickstarts/demo-qcow2.ks", d.path());
    let out = d.path().join("out");
    ok(&build_demo_live(&out, None, &[], &ks));
    let pxe = out.join("demo.pxe");
    check_squashfs(&pxe.join("live-rootfs.squashfs.img"), None, d.path());
    let mut spec = netboot(
        &pxe,
        Some("live-cpio.ipxe"),
        false,
        live_markers(&tree.commit),
    );
    let r = boot(&mut spec, &d.path().join("cpio"), "BIOS iPXE cpio netboot");
    assert!(
        r.http_requests.is_empty(),
        "the cpio variant needs no HTTP: {:?}",
        r.http_requests
    );
    let cmdline = r.kernel_cmdline.clone().unwrap_or_default();
    assert!(
        cmdline.contains("root=live:/live-rootfs.squashfs.img"),
        "{cmdline}"
    );
}

#[test]
#[ignore = "slow tier: builds live images twice"]
fn live_outputs_are_reproducible_with_source_date_epoch() {
    let d = tempfile::tempdir().unwrap();
    let ks = root().join("kickstarts/demo-qcow2.ks");
    let sums: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            let out = d.path().join(n);
            ok(&build_demo_live(&out, Some("1700000000"), &[], &ks));
            sha256sum_check(&out);
            std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
        })
        .collect();
    assert_eq!(sums[0], sums[1], "two builds differ");
    for f in [
        "demo.iso",
        "demo.pxe/live-rootfs.squashfs.img",
        "demo.pxe/initramfs-",
        "demo.pxe/live-rootfs.cpio",
        "demo.pxe/grubx64.efi",
    ] {
        assert!(sums[0].contains(f), "{f} not listed: {}", sums[0]);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("a/metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["live"]["initramfs_rebuilt"], false);
    let modules = meta["live"]["dracut_modules"].to_string();
    for m in ["livenet", "dmsquash-live", "ostree"] {
        assert!(modules.contains(&format!("\"{m}\"")), "{modules}");
    }
}

/// The demo tree with its initramfs replaced by a dracut list without `livenet`: the build has
/// to make one with the tree's own dracut, and that one netboots.
#[test]
#[ignore = "slow tier: runs the tree's dracut and netboots the result"]
fn initramfs_without_livenet_is_rebuilt_with_the_trees_dracut() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let checkout = d.path().join("tree");
    text(
        Command::new("ostree")
            .arg(format!("--repo={}", tree.repo.display()))
            .args(["checkout", "-U", "--force-copy", &tree.reference])
            .arg(&checkout),
    );
    let modules = checkout.join("usr/lib/modules");
    let kver = std::fs::read_dir(&modules)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    std::fs::write(
        modules.join(&kver).join("initramfs.img"),
        dracut_list("systemd\nostree\ndmsquash-live\n"),
    )
    .unwrap();
    let repo = d.path().join("repo");
    commit_tree(&checkout, &repo, &tree.reference);
    std::fs::remove_dir_all(&checkout).unwrap();
    let ks = with_report("kickstarts/demo-qcow2.ks", d.path());
    let out = d.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["image", "-i", "pxe-live", "--name", "demo", "--kickstart"])
        .arg(&ks)
        .arg("--ostreerepo")
        .arg(&repo)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["live"]["initramfs_rebuilt"], true, "{meta}");
    assert!(
        meta["live"]["dracut_modules"]
            .to_string()
            .contains("\"livenet\"")
    );
    assert!(out.join("logs/dracut-initramfs.log").is_file());
    let commit = meta["source"]["commit"].as_str().unwrap().to_string();
    let pxe = out.join("demo.pxe");
    let mut spec = netboot(&pxe, None, false, live_markers(&commit));
    let r = boot(
        &mut spec,
        &d.path().join("bios"),
        "BIOS netboot of the rebuilt initramfs",
    );
    let size = std::fs::metadata(pxe.join("live-rootfs.squashfs.img"))
        .unwrap()
        .len();
    squashfs_fetched(&r, size);
}

/// Commits the OSTree-layout `tree` as `reference` into a new archive repository `repo`.
fn commit_tree(tree: &Path, repo: &Path, reference: &str) {
    let ostree = || {
        let mut c = Command::new("ostree");
        c.arg(format!("--repo={}", repo.display()));
        c
    };
    text(ostree().args(["init", "--mode=archive"]));
    text(
        ostree()
            .args([
                "commit",
                "--owner-uid=0",
                "--owner-gid=0",
                "--no-xattrs",
                "-s",
                "test",
            ])
            .args(["-b", reference])
            .arg(format!("--tree=dir={}", tree.display())),
    );
}

/// A tiny tree in the OSTree layout, committed to `dir/repo`: `initramfs` is the initramfs's
/// content, no kernel when `None`.
fn synthetic(dir: &Path, initramfs: Option<Vec<u8>>) -> PathBuf {
    let t = dir.join("tree");
    if let Some(i) = initramfs {
        let m = t.join("usr/lib/modules/6.1.0-test");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("vmlinuz"), b"kernel").unwrap();
        std::fs::write(m.join("initramfs.img"), i).unwrap();
    }
    std::fs::create_dir_all(t.join("usr/etc")).unwrap();
    std::fs::write(t.join("usr/etc/os-release"), "NAME=Test\nID=test\n").unwrap();
    std::fs::write(t.join("usr/etc/fstab"), "").unwrap();
    std::fs::create_dir_all(t.join("usr/bin")).unwrap();
    for x in ["boot", "sysroot", "var", "proc", "sys", "dev", "run", "tmp"] {
        std::fs::create_dir_all(t.join(x)).unwrap();
    }
    std::os::unix::fs::symlink("sysroot/ostree", t.join("ostree")).unwrap();
    let repo = dir.join("repo");
    commit_tree(&t, &repo, "test/x86_64/base");
    repo
}

const TEST_KS: &str = "rootpw --plaintext x\nbootloader --timeout=1\npart / --grow\npart /boot --size=64\n\
                       ostreesetup --nogpg --osname=test --url=file:///nonexistent --ref=test/x86_64/base\n";

/// A newc cpio holding dracut's module list.
fn dracut_list(modules: &str) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("usr/lib/dracut")).unwrap();
    std::fs::write(d.path().join("usr/lib/dracut/modules.txt"), modules).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet")
        .current_dir(d.path())
        .output()
        .unwrap()
        .stdout
}

/// Runs `image` with `args`, expects failure with `want` in stderr, and nothing in OUTDIR but the
/// failed build's logs.
fn fails(args: &[&str], extra: &[&Path], out: &Path, want: &[&str]) {
    let o = imagebuilder(args, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    eprintln!("{}", err.trim_end());
    for w in want {
        assert!(err.contains(w), "{args:?}: {w:?} not in\n{err}");
    }
    if out.is_dir() {
        let left: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "logs")
            .collect();
        assert!(
            left.is_empty(),
            "{args:?} left {left:?} in {}",
            out.display()
        );
    }
}

#[test]
#[ignore = "slow tier: deploys synthetic trees"]
fn bad_live_inputs_fail_clearly_and_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let ks = d.path().join("t.ks");
    std::fs::write(&ks, TEST_KS).unwrap();
    let no_root = d.path().join("noroot.ks");
    std::fs::write(&no_root, TEST_KS.replace("part / --grow\n", "")).unwrap();
    let out = d.path().join("out");
    let image = ["image", "-i", "pxe-live", "-i", "live-iso", "-o"];

    let plain = d.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let repo = synthetic(
        &plain,
        Some(dracut_list("systemd\nostree\ndmsquash-live\nlivenet\n")),
    );
    fails(
        &image,
        &[
            &out,
            Path::new("--kickstart"),
            &no_root,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &out,
        &["noroot.ks", "no partition for /"],
    );
    fails(
        &["image", "-i", "live-iso", "--volid", &"V".repeat(33), "-o"],
        &[
            &out,
            Path::new("--kickstart"),
            &ks,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &out,
        &["--volid", "at most 32"],
    );
    let file = d.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    fails(
        &image,
        &[
            &file.join("out"),
            Path::new("--kickstart"),
            &ks,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &file,
        &["a-file/out"],
    );

    let nokernel = d.path().join("nokernel");
    std::fs::create_dir(&nokernel).unwrap();
    let repo = synthetic(&nokernel, None);
    fails(
        &image,
        &[
            &out,
            Path::new("--kickstart"),
            &ks,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &out,
        &["kernel"],
    );

    let nolive = d.path().join("nolive");
    std::fs::create_dir(&nolive).unwrap();
    let repo = synthetic(&nolive, Some(dracut_list("systemd\nostree\n")));
    fails(
        &image,
        &[
            &out,
            Path::new("--kickstart"),
            &ks,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &out,
        &[
            "lacks the dracut modules dmsquash-live, livenet",
            "no dracut",
        ],
    );

    let existing = d.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    fails(
        &["liveimage", "-o"],
        &[
            &existing,
            Path::new("-k"),
            &ks,
            Path::new("--ostreerepo"),
            &repo,
        ],
        &existing,
        &["already exists", "--overwrite"],
    );
}
