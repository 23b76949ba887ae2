//! The native installer ISO from the demo tree: built with `imagebuilder installer --native`, booted
//! in QEMU with a blank disk (BIOS and UEFI), it installs unattended and powers off; the disk then
//! boots alone with the kickstart's `%post`, host name, commit, remote and a `/` grown to the
//! disk, and passes `sgdisk -v` and each filesystem's fsck. An LVM + XFS layout grows its PV, its
//! `--grow` LV and that LV's XFS the same way. A disk too small, or holding data while the kickstart
//! has neither `clearpart` nor `zerombr`, stops the machine with the reason and is left untouched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imagebuilder::boot_test::install::{InstallReport, InstallSpec, run_install};
use imagebuilder::boot_test::{BootSpec, Login};
use imagebuilder::fs::xfs::LoopDevice;

const MARKER: &str = "IMAGEBUILDER-DEMO-BOOTED";
const KS_URL: &str = "file:///srv/imagebuilder/demo/repo";
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[path = "support/tools.rs"]
mod tools;
use tools::tool;

/// The rendered demo disk kickstart with its disk lines replaced by `disk`, a host name and
/// `poweroff` at the end.
fn kickstart(dir: &Path, name: &str, disk: &str) -> PathBuf {
    let real = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/demo-qcow2.ks");
    let text = std::fs::read_to_string(real).unwrap();
    assert!(text.contains(&format!("--url={KS_URL}")), "{text}");
    let mut out = String::new();
    for l in text.lines() {
        let disk_line = ["zerombr", "clearpart", "part ", "# BIOS boot"]
            .iter()
            .any(|p| l.starts_with(p));
        if disk_line {
            continue;
        }
        match l {
            "reboot" => out.push_str("poweroff\n"),
            l if l.starts_with("network ") => {
                out.push_str("network --bootproto=dhcp --device=link --hostname=installed-demo\n")
            }
            l if l.starts_with("ostreesetup ") => {
                out.push_str(disk);
                out.push_str(l);
                out.push('\n');
            }
            l => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    let ks = dir.join(format!("{name}.ks"));
    std::fs::write(&ks, out).unwrap();
    ks
}

/// `imagebuilder installer --native` of `ks` into `dir/out`; the ISO's path.
fn build_iso(ks: &Path, dir: &Path) -> PathBuf {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let out = dir.join("out");
    let t = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["installer", "--native", "-k"])
        .arg(ks)
        .arg("--ostreerepo")
        .arg(&tree.repo)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = ks.file_stem().unwrap().to_string_lossy();
    let iso = out.join(format!("{name}.installer.iso"));
    eprintln!(
        "{}: built in {:.1} s, {} MiB",
        iso.display(),
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&iso).unwrap().len() / MIB
    );
    // An El Torito ISO for BIOS and UEFI, carrying the installer, its payload and the image.
    let report = tool(
        "xorriso",
        &[
            "-indev",
            iso.to_str().unwrap(),
            "-report_el_torito",
            "plain",
        ],
    );
    assert!(
        report.contains("BIOS") && report.contains("UEFI"),
        "{report}"
    );
    let ls = tool(
        "xorriso",
        &["-indev", iso.to_str().unwrap(), "-ls", "/install"],
    );
    for f in ["imagebuilder-installer", "install.json", "disk.extents"] {
        assert!(ls.contains(f), "{ls}");
    }
    // metadata.json says what the ISO installs and how it ends.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    let inst = &meta["installer"];
    assert_eq!(inst["finish"], "poweroff", "{inst}");
    assert!(
        inst["kernel_arguments"]
            .as_str()
            .unwrap()
            .contains("imagebuilder.install"),
        "{inst}"
    );
    assert_eq!(inst["image_bytes"], meta["disk"]["size_bytes"], "{inst}");
    assert_eq!(meta["source"]["remote_url"], KS_URL);
    iso
}

fn install(
    iso: &Path,
    disk: &Path,
    size: Option<u64>,
    uefi: bool,
    boot: Option<BootSpec>,
) -> InstallReport {
    let work = disk.with_extension("runs");
    let r = run_install(&InstallSpec {
        iso: iso.to_path_buf(),
        disk: disk.to_path_buf(),
        disk_size: size,
        install_timeout: Duration::from_secs(900),
        boot,
        uefi,
        memory_mib: 2048,
        work_dir: Some(work),
    })
    .unwrap();
    for l in &r.installer_lines {
        eprintln!("  installer: {l}");
    }
    r
}

fn login(commands: &[&str]) -> BootSpec {
    BootSpec {
        timeout: Duration::from_secs(600),
        login: Some(Login {
            user: "root".into(),
            password: Some("demo".into()),
            commands: commands.iter().map(|c| c.to_string()).collect(),
        }),
        ..BootSpec::default()
    }
}

/// The installed qcow2 as a sparse raw file beside it, for the host's tools.
fn as_raw(disk: &Path) -> PathBuf {
    let raw = disk.with_extension("raw");
    tool(
        "qemu-img",
        &[
            "convert",
            "-O",
            "raw",
            disk.to_str().unwrap(),
            raw.to_str().unwrap(),
        ],
    );
    raw
}

/// The partitions of a raw disk as `sfdisk -J` reads them: (start, size) in bytes and the type.
fn partitions(raw: &Path) -> Vec<(u64, u64, String)> {
    let j: serde_json::Value =
        serde_json::from_str(&tool("sfdisk", &["-J", raw.to_str().unwrap()])).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap() * 512,
                p["size"].as_u64().unwrap() * 512,
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_ROOT: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const XBOOTLDR: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
const LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

/// `sgdisk -v` finds no problem; each filesystem partition passes its fsck (read-only, through a
/// read-only loop device over its range). Returns the partitions.
fn check_disk(raw: &Path) -> Vec<(u64, u64, String)> {
    let v = tool("sgdisk", &["-v", raw.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    let parts = partitions(raw);
    for (start, size, ty) in &parts {
        let dev = LoopDevice::attach_read_only(raw, *start, *size).unwrap();
        let dev = dev.path().to_str().unwrap().to_string();
        match ty.as_str() {
            ESP => {
                tool("fsck.vfat", &["-n", &dev]);
            }
            LINUX_ROOT | XBOOTLDR => {
                let fs = tool("blkid", &["-p", "-o", "value", "-s", "TYPE", &dev]);
                match fs.trim() {
                    "ext4" => {
                        tool("e2fsck", &["-fn", &dev]);
                    }
                    "xfs" => {
                        let r = tool("xfs_repair", &["-n", &dev]);
                        assert!(!r.contains("would "), "{r}");
                    }
                    other => panic!("unexpected filesystem {other} on {ty}"),
                }
            }
            _ => {}
        }
    }
    parts
}

fn output<'a>(r: &'a InstallReport, cmd: &str) -> &'a str {
    r.boot
        .as_ref()
        .unwrap()
        .output_of(cmd)
        .unwrap_or_else(|| panic!("no output of {cmd}"))
}

#[test]
#[ignore = "slow tier: installs in QEMU"]
fn demo_installer_iso_installs_unattended_bios_and_uefi() {
    let d = tempfile::tempdir().unwrap();
    let ks = kickstart(
        d.path(),
        "grow",
        "zerombr\nclearpart --all --initlabel\npart biosboot --fstype=biosboot --size=1\n\
         part /boot/efi --fstype=efi --size=127\npart /boot --fstype=ext4 --size=384\n\
         part / --fstype=ext4 --grow\n",
    );
    let iso = build_iso(&ks, d.path());
    let commit = imagebuilder::tree::demo::ensure_demo_tree(None)
        .unwrap()
        .commit;
    let cmds = [
        "cat /etc/imagebuilder-boot-marker",
        "hostname",
        "ostree admin status",
        "ostree remote show-url demo",
        "findmnt -n -b -o SIZE /sysroot",
        "tail -n 2 /var/log/imagebuilder-install.log",
        "systemctl is-system-running --wait",
    ];
    for uefi in [false, true] {
        let what = if uefi { "UEFI" } else { "BIOS" };
        let disk = d.path().join(format!("target-{what}.qcow2"));
        let r = install(&iso, &disk, Some(8 * GIB), uefi, Some(login(&cmds)));
        assert!(
            r.success,
            "{what}: {:?}\n{:#?}",
            r.failure, r.installer_lines
        );
        let b = r.boot.as_ref().unwrap();
        eprintln!(
            "{what}: install run {:.1} s, first boot to login {:.1} s",
            r.install_seconds.unwrap(),
            b.login_prompt_seconds.unwrap()
        );
        assert_eq!(output(&r, cmds[0]).trim(), MARKER);
        assert_eq!(output(&r, cmds[1]).trim(), "installed-demo");
        assert!(
            output(&r, cmds[2]).contains(&format!("* demo {commit}.0")),
            "{}",
            output(&r, cmds[2])
        );
        assert!(
            output(&r, cmds[3]).trim().ends_with(KS_URL),
            "{}",
            output(&r, cmds[3])
        );
        assert!(
            output(&r, cmds[5]).contains("INSTALL COMPLETE")
                || output(&r, cmds[5]).contains("keeping this log"),
            "{}",
            output(&r, cmds[5])
        );
        assert!(
            output(&r, cmds[6]).contains("running"),
            "{}",
            output(&r, cmds[6])
        );
        // / fills the disk: its partition ends within the last MiB (the backup GPT), and its ext4
        // spans the partition.
        let raw = as_raw(&disk);
        let parts = check_disk(&raw);
        let (start, size, _) = parts.iter().find(|p| p.2 == LINUX_ROOT).unwrap();
        assert!(
            start + size >= 8 * GIB - MIB,
            "root ends at {}",
            start + size
        );
        let fs_size: u64 = output(&r, cmds[4]).trim().parse().unwrap();
        assert!(
            fs_size as f64 >= *size as f64 * 0.97,
            "/ is {fs_size} bytes in a {size}-byte partition"
        );
        std::fs::remove_file(&raw).unwrap();
        std::fs::remove_file(&disk).unwrap();
    }
}

#[test]
#[ignore = "slow tier: installs in QEMU"]
fn lvm_and_xfs_grow_into_the_disk() {
    let d = tempfile::tempdir().unwrap();
    let ks = kickstart(
        d.path(),
        "lvm",
        "zerombr\nclearpart --all\npart biosboot --fstype=biosboot --size=1\n\
         part /boot/efi --fstype=efi --size=127\npart /boot --fstype=xfs --size=400\n\
         part pv.01 --grow --size=1024\nvolgroup vg pv.01\n\
         logvol swap --vgname=vg --name=swap --size=128\n\
         logvol / --vgname=vg --name=root --fstype=xfs --size=900 --grow\n",
    );
    let iso = build_iso(&ks, d.path());
    let disk = d.path().join("target.qcow2");
    let cmds = [
        "findmnt -n -o SOURCE,FSTYPE /sysroot",
        "findmnt -n -b -o SIZE /sysroot",
        "cat /etc/imagebuilder-boot-marker",
    ];
    let r = install(&iso, &disk, Some(6 * GIB), false, Some(login(&cmds)));
    assert!(r.success, "{:?}\n{:#?}", r.failure, r.installer_lines);
    let src = output(&r, cmds[0]);
    assert!(
        src.contains("/dev/mapper/vg-root") && src.contains("xfs"),
        "{src}"
    );
    assert_eq!(output(&r, cmds[2]).trim(), MARKER);
    let raw = as_raw(&disk);
    let parts = check_disk(&raw);
    let (pv_start, pv_size, _) = parts.iter().find(|p| p.2 == LVM).unwrap().clone();
    assert!(pv_start + pv_size >= 6 * GIB - MIB);
    // LVM reads the grown PV and LV: root took every extent swap does not use.
    let dev = LoopDevice::attach_read_only(&raw, pv_start, pv_size).unwrap();
    let dev = dev.path().to_str().unwrap().to_string();
    let lvm = |cmd: &str, fields: &str| {
        tool(
            cmd,
            &[
                "--readonly",
                "--devices",
                &dev,
                "--noheadings",
                "--nosuffix",
                "--units",
                "b",
                "-o",
                fields,
            ],
        )
    };
    let lvs = lvm("lvs", "lv_name,lv_size,seg_pe_ranges");
    let vgs = lvm("vgs", "vg_size,vg_free,vg_extent_size");
    let v: Vec<u64> = vgs.split_whitespace().map(|f| f.parse().unwrap()).collect();
    let root_size: u64 = lvs
        .lines()
        .find(|l| l.split_whitespace().next() == Some("root"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(v[1], 0, "no free extents left: {vgs}");
    assert_eq!(root_size, v[0] - 128 * MIB, "{lvs}");
    // The XFS inside spans the LV (xfs_growfs through the kernel).
    let fs_size: u64 = output(&r, cmds[1]).trim().parse().unwrap();
    assert!(
        fs_size as f64 >= root_size as f64 * 0.97,
        "{fs_size} of {root_size}"
    );
    // And it is clean where LVM says the LV's extents are.
    let pe_start: u64 = lvm("pvs", "pe_start").trim().parse().unwrap();
    let root_line = lvs
        .lines()
        .find(|l| l.contains("root"))
        .unwrap()
        .to_string();
    let range = root_line.split_whitespace().nth(2).unwrap();
    let first: u64 = range
        .rsplit_once(':')
        .and_then(|(_, r)| r.split_once('-'))
        .map(|(a, _)| a.parse().unwrap())
        .unwrap();
    drop(dev);
    let lv =
        LoopDevice::attach_read_only(&raw, pv_start + pe_start + first * v[2], root_size).unwrap();
    let repair = tool("xfs_repair", &["-n", lv.path().to_str().unwrap()]);
    assert!(!repair.contains("would "), "{repair}");
    drop(lv);
    std::fs::remove_file(&raw).unwrap();
}

#[test]
#[ignore = "slow tier: installs in QEMU"]
fn a_disk_too_small_or_holding_data_is_left_untouched() {
    let d = tempfile::tempdir().unwrap();
    // No clearpart, no zerombr: a disk with data must not be touched.
    let ks = kickstart(d.path(), "keep", "part / --fstype=ext4 --grow\n");
    let iso = build_iso(&ks, d.path());

    let small = d.path().join("small.qcow2");
    let r = install(&iso, &small, Some(512 * MIB), false, None);
    let why = r.failure.clone().unwrap();
    assert!(
        why.contains("/dev/vda is too small: it has 512 MiB"),
        "{why}"
    );
    assert!(r.install.success, "the machine powered off by itself");
    let blank = d.path().join("blank.qcow2");
    tool(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            blank.to_str().unwrap(),
            "512M",
        ],
    );
    let cmp = tool(
        "qemu-img",
        &["compare", blank.to_str().unwrap(), small.to_str().unwrap()],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");

    let used = d.path().join("used.raw");
    let f = std::fs::File::create(&used).unwrap();
    f.set_len(4 * GIB).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"somebody's data", 3 * GIB).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x55, 0xaa], 510).unwrap();
    drop(f);
    let before = tool("sha256sum", &[used.to_str().unwrap()]);
    let r = install(&iso, &used, None, false, None);
    let why = r.failure.clone().unwrap();
    assert!(
        why.contains("/dev/vda holds data") && why.contains("neither clearpart nor zerombr"),
        "{why}"
    );
    assert_eq!(tool("sha256sum", &[used.to_str().unwrap()]), before);
}
