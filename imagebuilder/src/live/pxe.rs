//! The PXE-to-Live directory: what `livemedia-creator --make-ostree-live` writes (kernel, initramfs,
//! `live-rootfs.squashfs.img`, `PXE_CONFIG`), plus everything to serve it as is: the directory is a
//! TFTP root for pxelinux (BIOS), a GRUB netboot image (UEFI) and iPXE scripts, and the squashfs is
//! fetched over HTTP from the base URL by dracut's `livenet`. The variant that needs no network in
//! the initramfs has its own menu entries: the squashfs wrapped in a cpio archive
//! (`live-rootfs.cpio`) that the boot loader appends to the initramfs
//! (`root=live:/live-rootfs.squashfs.img`).
//!
//! The base URL is the literal `<URL>` unless given, as livemedia-creator leaves it; `<PXE_DIR>` in
//! `PXE_CONFIG` is livemedia-creator's placeholder for the TFTP path.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{LiveRoot, SQUASHFS_NAME};
use crate::boot::grub::{StandaloneImage, build_standalone};

/// The placeholder for the HTTP base URL of the squashfs.
pub const URL_PLACEHOLDER: &str = "<URL>";
/// The cpio archive holding the squashfs, for boot loaders to append to the initramfs.
pub const CPIO_NAME: &str = "live-rootfs.cpio";
/// The GRUB netboot image for UEFI clients (the DHCP boot file).
pub const GRUB_NET_EFI: &str = "grubx64.efi";
/// pxelinux and the one module it needs, from the host's syslinux.
const PXELINUX: &[(&str, &str, &str)] = &[
    ("/usr/lib/PXELINUX/pxelinux.0", "pxelinux.0", "pxelinux"),
    (
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
        "ldlinux.c32",
        "syslinux-common",
    ),
];

/// How the configs are filled in.
#[derive(Debug, Clone)]
pub struct PxeOptions<'a> {
    /// Base URL the squashfs is served from (no trailing slash), or [`URL_PLACEHOLDER`].
    pub url: &'a str,
    /// Boot menu timeout in seconds.
    pub timeout: u32,
    /// Menu title.
    pub title: &'a str,
    /// Scratch space for the GRUB build.
    pub work: &'a Path,
    /// Modification time of the cpio entry (`SOURCE_DATE_EPOCH`, or 0).
    pub mtime: u64,
}

/// The kernel and initramfs names in the directory.
fn names(live: &LiveRoot) -> (String, String) {
    (
        format!("vmlinuz-{}", live.kernel_version),
        format!("initramfs-{}.img", live.kernel_version),
    )
}

/// The kernel command line of the network variant (squashfs over HTTP).
pub fn net_cmdline(live: &LiveRoot, url: &str) -> String {
    live.cmdline(
        &format!("live:{url}/{SQUASHFS_NAME}"),
        &["rd.neednet=1", "ip=dhcp"],
    )
}

/// The kernel command line of the cpio variant (squashfs appended to the initramfs).
pub fn cpio_cmdline(live: &LiveRoot) -> String {
    live.cmdline(&format!("live:/{SQUASHFS_NAME}"), &[])
}

/// Writes the whole directory `dir` (which must exist and be empty).
pub fn write_pxe_dir(live: &LiveRoot, dir: &Path, o: &PxeOptions<'_>) -> Result<()> {
    let (kernel, initrd) = names(live);
    // Copies: the staged /boot's files may be hard links of the deployment's own.
    for (from, name) in [(&live.kernel, &kernel), (&live.initramfs, &initrd)] {
        std::fs::copy(from, dir.join(name))
            .with_context(|| format!("copying {} into the PXE directory", from.display()))?;
    }
    link_or_copy(&live.squashfs, &dir.join(SQUASHFS_NAME))?;
    write_cpio(&live.squashfs, SQUASHFS_NAME, o.mtime, &dir.join(CPIO_NAME))?;
    for (from, name, package) in PXELINUX {
        let from = Path::new(from);
        if !from.is_file() {
            bail!(
                "{} not found: PXE-to-Live outputs include pxelinux; install the Debian package `{package}`",
                from.display()
            );
        }
        std::fs::copy(from, dir.join(name))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    let files = [
        (PathBuf::from("PXE_CONFIG"), pxe_config(live)),
        (PathBuf::from("pxelinux.cfg/default"), pxelinux_cfg(live, o)),
        (PathBuf::from("grub/grub.cfg"), grub_cfg(live, o)),
        (PathBuf::from("live.ipxe"), ipxe_script(live, o, false)),
        (PathBuf::from("live-cpio.ipxe"), ipxe_script(live, o, true)),
    ];
    for (rel, text) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    let embed = "set prefix=(tftp)/grub\nconfigfile (tftp)/grub/grub.cfg\n";
    build_standalone(
        o.work,
        &StandaloneImage {
            format: "x86_64-efi",
            embed_cfg: embed,
            prefix: "(tftp)/grub",
            extra_modules: &[
                "efinet", "net", "tftp", "http", "efi_gop", "efi_uga", "sleep",
            ],
        },
        &dir.join(GRUB_NET_EFI),
    )
    .context("building the GRUB netboot image")
}

/// livemedia-creator's `PXE_CONFIG` template, filled in.
pub fn pxe_config(live: &LiveRoot) -> String {
    let (kernel, initrd) = names(live);
    format!(
        "# PXE configuration template generated by imagebuilder (livemedia-creator's layout)\n\
         kernel <PXE_DIR>/{kernel}\n\
         append initrd=<PXE_DIR>/{initrd} root=live:{URL_PLACEHOLDER}/{SQUASHFS_NAME} {}\n",
        live.base_args.join(" ")
    )
}

fn pxelinux_cfg(live: &LiveRoot, o: &PxeOptions<'_>) -> String {
    let (kernel, initrd) = names(live);
    format!(
        "# Generated by imagebuilder. Serve this directory over TFTP (DHCP boot file pxelinux.0)\n\
         # and {SQUASHFS_NAME} over HTTP at {url}/.\n\
         SERIAL 0 115200\n\
         DEFAULT live\n\
         PROMPT 0\n\
         TIMEOUT {timeout}\n\
         LABEL live\n\
         \x20 MENU LABEL {title} (live image over HTTP)\n\
         \x20 KERNEL {kernel}\n\
         \x20 APPEND initrd={initrd} {net}\n\
         LABEL live-cpio\n\
         \x20 MENU LABEL {title} (live image in the initramfs)\n\
         \x20 KERNEL {kernel}\n\
         \x20 APPEND initrd={initrd},{CPIO_NAME} {cpio}\n",
        url = o.url,
        timeout = o.timeout.max(1) * 10,
        title = o.title,
        net = net_cmdline(live, o.url),
        cpio = cpio_cmdline(live),
    )
}

fn grub_cfg(live: &LiveRoot, o: &PxeOptions<'_>) -> String {
    let (kernel, initrd) = names(live);
    let title = o.title.replace('\'', "");
    format!(
        "# Generated by imagebuilder: GRUB netboot menu (UEFI clients boot {GRUB_NET_EFI}).\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout={timeout}\n\
         set default=0\n\
         menuentry '{title} (live image over HTTP)' {{\n\
         \x20 linux (tftp)/{kernel} {net}\n\
         \x20 initrd (tftp)/{initrd}\n\
         }}\n\
         menuentry '{title} (live image in the initramfs)' {{\n\
         \x20 linux (tftp)/{kernel} {cpio}\n\
         \x20 initrd (tftp)/{initrd} (tftp)/{CPIO_NAME}\n\
         }}\n",
        timeout = o.timeout,
        net = net_cmdline(live, o.url),
        cpio = cpio_cmdline(live),
    )
}

/// An iPXE script; file names are relative to the script's own URL (TFTP or HTTP).
fn ipxe_script(live: &LiveRoot, o: &PxeOptions<'_>, cpio: bool) -> String {
    let (kernel, initrd) = names(live);
    if cpio {
        format!(
            "#!ipxe\n# Generated by imagebuilder: the live image appended to the initramfs.\n\
             kernel {kernel} initrd={initrd} initrd={CPIO_NAME} {}\n\
             initrd {initrd}\ninitrd {CPIO_NAME}\nboot\n",
            cpio_cmdline(live)
        )
    } else {
        format!(
            "#!ipxe\n# Generated by imagebuilder: the live image fetched over HTTP by the initramfs.\n\
             kernel {kernel} initrd={initrd} {}\ninitrd {initrd}\nboot\n",
            net_cmdline(live, o.url)
        )
    }
}

/// Hard-links `from` to `to`, or copies it when they are on different filesystems.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// A newc cpio archive holding one file, `name`, with `data`'s content (mode 0644, owner root,
/// the given mtime), padded to 512 bytes like the kernel's own archives.
pub fn write_cpio(data: &Path, name: &str, mtime: u64, out: &Path) -> Result<()> {
    let mut input = File::open(data).with_context(|| format!("opening {}", data.display()))?;
    let size = input.metadata()?.len();
    if size > u32::MAX as u64 {
        bail!(
            "{} is {} bytes: a newc cpio entry holds at most 4 GiB",
            data.display(),
            size
        );
    }
    let f = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut written = 0u64;
    let pad4 = |n: u64| vec![0u8; ((4 - n % 4) % 4) as usize];
    for (ino, entry, mode, len) in [(1u32, name, 0o100644u32, size), (0, "TRAILER!!!", 0, 0)] {
        let header = newc_header(ino, mode, mtime as u32, len as u32, entry.len() as u32 + 1);
        put(&mut w, header.as_bytes(), &mut written)?;
        put(&mut w, entry.as_bytes(), &mut written)?;
        put(&mut w, b"\0", &mut written)?;
        put(&mut w, &pad4(110 + entry.len() as u64 + 1), &mut written)?;
        if len > 0 {
            let n = std::io::copy(&mut input, &mut w)
                .with_context(|| format!("copying {} into the cpio", data.display()))?;
            if n != len {
                bail!("{} changed while it was archived", data.display());
            }
            written += n;
            put(&mut w, &pad4(n), &mut written)?;
        }
    }
    let tail = (512 - written % 512) % 512;
    put(&mut w, &vec![0u8; tail as usize], &mut written)?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all().context("flushing the cpio archive")?;
    Ok(())
}

fn put(w: &mut BufWriter<File>, b: &[u8], written: &mut u64) -> Result<()> {
    *written += b.len() as u64;
    w.write_all(b).context("writing the cpio archive")
}

fn newc_header(ino: u32, mode: u32, mtime: u32, size: u32, namesize: u32) -> String {
    let nlink = u32::from(ino != 0);
    let fields = [ino, mode, 0, 0, nlink, mtime, size, 0, 0, 0, 0, namesize, 0];
    let mut s = String::from("070701");
    for f in fields {
        s.push_str(&format!("{f:08X}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveRoot {
        LiveRoot {
            squashfs: "/x/live-rootfs.squashfs.img".into(),
            kernel: "/x/vmlinuz-6.1".into(),
            kernel_version: "6.1".into(),
            initramfs: "/x/initramfs-6.1.img".into(),
            initramfs_rebuilt: false,
            dracut_modules: Default::default(),
            ostree_arg: "ostree=/ostree/boot.1/demo/abc/0".into(),
            base_args: vec![
                "rw".into(),
                "ostree=/ostree/boot.1/demo/abc/0".into(),
                "console=ttyS0,115200".into(),
            ],
            title: "Demo".into(),
            rootfs_bytes: 1 << 30,
        }
    }

    #[test]
    fn pxe_config_is_livemedia_creators_template() {
        let c = pxe_config(&live());
        assert!(c.contains("kernel <PXE_DIR>/vmlinuz-6.1\n"), "{c}");
        assert!(
            c.contains("append initrd=<PXE_DIR>/initramfs-6.1.img root=live:<URL>/live-rootfs.squashfs.img rw ostree=/ostree/boot.1/demo/abc/0"),
            "{c}"
        );
    }

    #[test]
    fn configs_name_both_variants() {
        let o = PxeOptions {
            url: "http://10.0.2.2:8000",
            timeout: 1,
            title: "Demo",
            work: Path::new("/nonexistent"),
            mtime: 0,
        };
        let p = pxelinux_cfg(&live(), &o);
        assert!(p.contains("APPEND initrd=initramfs-6.1.img root=live:http://10.0.2.2:8000/live-rootfs.squashfs.img rd.neednet=1 ip=dhcp rw ostree="), "{p}");
        assert!(p.contains("APPEND initrd=initramfs-6.1.img,live-rootfs.cpio root=live:/live-rootfs.squashfs.img rw"), "{p}");
        let g = grub_cfg(&live(), &o);
        assert!(
            g.contains("initrd (tftp)/initramfs-6.1.img (tftp)/live-rootfs.cpio"),
            "{g}"
        );
        let i = ipxe_script(&live(), &o, true);
        assert!(
            i.starts_with("#!ipxe\n") && i.contains("initrd live-rootfs.cpio\nboot\n"),
            "{i}"
        );
    }

    #[test]
    fn the_cpio_is_read_back_by_cpio() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("payload");
        std::fs::write(&data, b"squash\0fs").unwrap();
        let out = d.path().join("a.cpio");
        write_cpio(&data, SQUASHFS_NAME, 1_700_000_000, &out).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len() % 512, 0);
        let bytes = std::fs::read(&out).unwrap();
        let found = crate::live::initramfs::find_in_initramfs(&bytes, SQUASHFS_NAME)
            .unwrap()
            .unwrap();
        assert_eq!(found, b"squash\0fs");
        // And GNU cpio agrees, when it is installed.
        if crate::util::cmd::find_in_path("cpio").is_some() {
            let listing = std::process::Command::new("cpio")
                .args(["-t", "-v", "--quiet"])
                .stdin(File::open(&out).unwrap())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&listing.stdout);
            assert!(listing.status.success(), "{text}");
            assert!(
                text.contains(SQUASHFS_NAME) && text.contains(" 9 "),
                "{text}"
            );
        }
    }
}
