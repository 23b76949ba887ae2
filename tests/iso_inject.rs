//! `imagebuilder iso inject` on an ISO laid out like lorax's boot.iso, made here with xorriso:
//! isolinux (Debian's `isolinux` and `syslinux-common`) for BIOS, a GRUB EFI image
//! (`grub-mkimage -O x86_64-efi`) in a FAT `images/efiboot.img` (mkfs.fat + mcopy) for UEFI, and
//! the GRUB configs lorax writes (`EFI/BOOT/grub.cfg` on the ISO and in the FAT image,
//! `boot/grub2/grub.cfg`). Both menus are on the serial console, so the boot tester sees them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use imagebuilder::boot_test::{self, BootSpec};

const VOLID: &str = "Test-OS-1-x86_64";
const BIOS_TITLE: &str = "Test OS isolinux menu";
const UEFI_TITLE: &str = "Install Test OS from GRUB";
/// Printed by the GRUB config only when `search -l <volid>` finds the medium.
const FOUND: &str = "medium-found-by-label";

fn run(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn grub_cfg() -> String {
    format!(
        "serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n\
         set timeout=60\n\
         if search --no-floppy --set=root -l '{VOLID}'; then echo {FOUND}; fi\n\
         menuentry '{UEFI_TITLE}' --class fedora {{\n\
         \tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={VOLID} quiet\n\
         \tinitrdefi /images/pxeboot/initrd.img\n}}\n\
         menuentry 'Test this media' {{\n\
         \tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL={VOLID} rd.live.check quiet\n\
         \tinitrdefi /images/pxeboot/initrd.img\n}}\n"
    )
}

/// Makes the lorax-like ISO in `dir`.
fn lorax_iso(dir: &Path) -> PathBuf {
    let t = dir.join("tree");
    for d in ["isolinux", "EFI/BOOT", "images/pxeboot", "boot/grub2"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    std::fs::copy(
        "/usr/lib/ISOLINUX/isolinux.bin",
        t.join("isolinux/isolinux.bin"),
    )
    .unwrap();
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32", "libcom32.c32"] {
        std::fs::copy(
            Path::new("/usr/lib/syslinux/modules/bios").join(m),
            t.join("isolinux").join(m),
        )
        .unwrap();
    }
    std::fs::write(
        t.join("isolinux/isolinux.cfg"),
        format!(
            "serial 0 115200\nui menu.c32\ntimeout 600\nmenu title {BIOS_TITLE}\n\
             label linux\n  menu label ^Install Test OS\n  kernel vmlinuz\n  \
             append initrd=initrd.img inst.stage2=hd:LABEL={VOLID} quiet\n\
             label check\n  menu label Test this ^media\n  kernel vmlinuz\n  \
             append initrd=initrd.img inst.stage2=hd:LABEL={VOLID} rd.live.check quiet\n\
             label local\n  menu label Boot from ^local drive\n  localboot 0xffff\n"
        ),
    )
    .unwrap();
    std::fs::write(t.join("EFI/BOOT/grub.cfg"), grub_cfg()).unwrap();
    std::fs::write(t.join("boot/grub2/grub.cfg"), grub_cfg()).unwrap();
    std::fs::write(t.join("images/pxeboot/vmlinuz"), "not a kernel").unwrap();
    let efi = dir.join("BOOTX64.EFI");
    run(Command::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", "/EFI/BOOT", "-o"])
        .arg(&efi)
        .args([
            "part_gpt",
            "part_msdos",
            "fat",
            "iso9660",
            "normal",
            "configfile",
            "linux",
            "search",
            "search_label",
            "serial",
            "terminal",
            "echo",
            "test",
        ]));
    std::fs::copy(&efi, t.join("EFI/BOOT/BOOTX64.EFI")).unwrap();
    let img = t.join("images/efiboot.img");
    run(Command::new("mkfs.fat").arg("-C").arg(&img).arg("4096"));
    let i = img.display().to_string();
    run(Command::new("mmd").args(["-i", &i, "::/EFI", "::/EFI/BOOT"]));
    run(Command::new("mcopy")
        .args(["-i", &i])
        .arg(&efi)
        .arg(t.join("EFI/BOOT/grub.cfg"))
        .arg("::/EFI/BOOT/"));
    let iso = dir.join("boot.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-r", "-V", VOLID, "-o"])
        .arg(&iso)
        .args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            "images/efiboot.img",
            "-no-emul-boot",
        ])
        .arg(&t));
    iso
}

fn inject(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["iso", "inject"])
        .args(args)
        .output()
        .unwrap()
}

fn extract(iso: &Path, path: &str, to: &Path) -> String {
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .arg("-extract")
        .arg(path)
        .arg(to));
    std::fs::read_to_string(to).unwrap_or_default()
}

fn kickstart(dir: &Path) -> PathBuf {
    let ks = dir.join("atomic.ks");
    std::fs::write(
        &ks,
        "#version=F29\nlang en_US.UTF-8\nkeyboard us\ntimezone UTC\nrootpw --lock\n\
         ostreesetup --nogpg --osname=test --remote=test --url=file:///ostree/repo --ref=test/x86_64/base\n\
         reboot\n",
    )
    .unwrap();
    ks
}

/// The lines of a boot config that are boot entries.
fn entries(cfg: &str) -> Vec<&str> {
    cfg.lines()
        .filter(|l| {
            let w = l.split_whitespace().next().unwrap_or("");
            w == "append" || w == "linuxefi" || w == "linux"
        })
        .collect()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Injects a kickstart, an extra file, arguments and a new volume id; returns the new ISO.
fn injected(dir: &Path) -> PathBuf {
    let iso = lorax_iso(dir);
    let ks = kickstart(dir);
    let extra = dir.join("updates.img");
    std::fs::write(&extra, "extra payload").unwrap();
    let out = dir.join("out.iso");
    let o = inject(&[
        iso.as_os_str(),
        out.as_os_str(),
        os("--ks"),
        ks.as_os_str(),
        os("--add"),
        extra.as_os_str(),
        os("--cmdline"),
        os("console=ttyS0 inst.text"),
        os("--rm-args"),
        os("quiet"),
        os("--volid"),
        os("NEW-VOLID"),
    ]);
    assert!(
        o.status.success(),
        "inject: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn inject_edits_every_boot_entry_and_keeps_the_boot_images() {
    let d = tempfile::tempdir().unwrap();
    let out = injected(d.path());
    let x = d.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let ks = std::fs::read_to_string(d.path().join("atomic.ks")).unwrap();
    assert_eq!(extract(&out, "/atomic.ks", &x.join("ks")), ks);
    assert_eq!(extract(&out, "/updates.img", &x.join("u")), "extra payload");
    let want = "inst.ks=hd:LABEL=NEW-VOLID:/atomic.ks";
    let mut configs = vec![];
    for (path, n) in [
        ("/isolinux/isolinux.cfg", 2),
        ("/EFI/BOOT/grub.cfg", 2),
        ("/boot/grub2/grub.cfg", 2),
    ] {
        let cfg = extract(&out, path, &x.join(path.replace('/', "_")));
        configs.push((path.to_string(), cfg, n));
    }
    let img = x.join("efiboot.img");
    extract(&out, "/images/efiboot.img", &img);
    let inner = run(Command::new("mtype")
        .arg("-i")
        .arg(&img)
        .arg("::/EFI/BOOT/grub.cfg"));
    configs.push(("efiboot.img:/EFI/BOOT/grub.cfg".into(), inner, 2));
    for (path, cfg, n) in &configs {
        let e = entries(cfg);
        assert_eq!(e.len(), *n, "{path}: {cfg}");
        for line in e {
            assert!(
                line.ends_with(&format!(" console=ttyS0 inst.text {want}")),
                "{path}: {line}"
            );
            assert!(!line.contains("quiet"), "{path}: {line}");
            assert!(
                line.contains("inst.stage2=hd:LABEL=NEW-VOLID "),
                "{path}: {line}"
            );
        }
        assert!(
            !cfg.contains(VOLID),
            "{path} still names the old volume id: {cfg}"
        );
        if path.contains("grub") {
            assert!(
                cfg.contains("search --no-floppy --set=root -l 'NEW-VOLID'"),
                "{path}: {cfg}"
            );
        }
    }
    assert!(
        configs[0].1.contains("  localboot 0xffff\n"),
        "{}",
        configs[0].1
    );

    let el = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&out)
        .args(["-report_el_torito", "plain"]));
    assert!(
        el.contains("El Torito img path :   1  /isolinux/isolinux.bin"),
        "{el}"
    );
    assert!(
        el.contains("El Torito img path :   2  /images/efiboot.img"),
        "{el}"
    );
    assert!(
        el.contains("BIOS  y   none") && el.contains("UEFI  y   none"),
        "{el}"
    );
    assert!(el.contains("boot-info-table"), "{el}");
    let pvd = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&out)
        .arg("-pvd_info"));
    assert!(pvd.contains("Volume Id    : NEW-VOLID\n"), "{pvd}");
    let left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".imagebuilder"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
#[ignore = "slow tier: boots the injected ISO in QEMU, BIOS and UEFI"]
fn injected_iso_boots_to_its_menus() {
    let d = tempfile::tempdir().unwrap();
    let out = injected(d.path());
    for (uefi, markers) in [
        (false, vec![BIOS_TITLE.to_string()]),
        (true, vec![FOUND.to_string(), UEFI_TITLE.to_string()]),
    ] {
        let spec = BootSpec {
            image: None,
            cdrom: Some(out.clone()),
            uefi,
            markers,
            timeout: Duration::from_secs(300),
            memory_mib: 512,
            work_dir: Some(d.path().join(if uefi { "uefi" } else { "bios" })),
            ..BootSpec::default()
        };
        let r = boot_test::run(&spec).unwrap();
        r.ensure_success()
            .unwrap_or_else(|e| panic!("uefi={uefi}: {e:#}"));
    }
}

/// Runs a failing inject and checks exit 1, the message and that nothing was left in `dir`.
fn fails(dir: &Path, args: &[&std::ffi::OsStr], needles: &[&str]) {
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let o = inject(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
    }
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "{args:?} left files behind");
}

#[test]
fn bad_inputs_are_refused_naming_the_option() {
    let d = tempfile::tempdir().unwrap();
    let iso = lorax_iso(d.path());
    let ks = kickstart(d.path());
    let out = d.path().join("out.iso");
    let (i, o) = (iso.as_os_str(), out.as_os_str());
    let long = "X".repeat(33);
    fails(
        d.path(),
        &[i, o, os("--volid"), os(&long)],
        &["--volid", "33 characters"],
    );
    let missing = d.path().join("missing.ks");
    fails(
        d.path(),
        &[i, o, os("--ks"), missing.as_os_str()],
        &["--ks", "missing.ks"],
    );
    let bad = d.path().join("bad.ks");
    std::fs::write(&bad, "#version=F29\nostreesetup --bogus\n").unwrap();
    fails(
        d.path(),
        &[i, o, os("--ks"), bad.as_os_str()],
        &["--ks", "bad.ks:2", "not valid"],
    );
    fails(
        d.path(),
        &[i, o, os("--rm-args"), os("quiet=1")],
        &["--rm-args"],
    );
    fails(d.path(), &[i, o], &["nothing to do"]);

    let plain_tree = d.path().join("plain");
    std::fs::create_dir(&plain_tree).unwrap();
    std::fs::write(plain_tree.join("README"), "no boot config").unwrap();
    let plain = d.path().join("plain.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-V", "PLAIN", "-o"])
        .arg(&plain)
        .arg(&plain_tree));
    fails(
        d.path(),
        &[plain.as_os_str(), o, os("--ks"), ks.as_os_str()],
        &["plain.iso", "no known boot configuration"],
    );

    let nodir = d.path().join("README-file");
    std::fs::write(&nodir, "a file, not a directory").unwrap();
    let unwritable = nodir.join("out.iso");
    fails(
        d.path(),
        &[i, unwritable.as_os_str(), os("--ks"), ks.as_os_str()],
        &["README-file/out.iso"],
    );
    std::fs::write(&out, "exists").unwrap();
    fails(
        d.path(),
        &[i, o, os("--ks"), ks.as_os_str()],
        &["out.iso", "exists already"],
    );
}
