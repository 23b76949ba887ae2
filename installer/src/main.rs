//! The unattended installer of an imagebuilder installer ISO.
//!
//! Started by `imagebuilder-install.service` in the live system booted from the ISO (only with
//! `imagebuilder.install` on the kernel command line), with the ISO's `install/` folder as its
//! argument. It picks the target disk as the kickstart says, refuses a disk too small or holding
//! data the kickstart does not clear, lays the kickstart's layout out for the disk's real size
//! (the same planner as the image builder), copies every volume of the image on the ISO to where
//! the volume now lies, writes the GPT and LVM metadata for the disk, grows the filesystems into
//! their grown volumes, and leaves its log on the installed system. Every line goes to the console
//! (journal+console) and to the other active consoles.

mod sys;

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use disklayout::install::{
    DiskInfo, Finish, IMAGE_FILE, MBR_BOOT_CODE, MovedVolume, PAYLOAD_FILE, PAYLOAD_FORMAT,
    Payload, VolumeKind, VolumeMap, choose_disk, holds_data,
};
use disklayout::plan::{DiskPlan, FsKind, MIB};

const LOG_NAME: &str = "imagebuilder-install.log";
const MOUNT_DIR: &str = "/run/imagebuilder-install";

/// The console lines, kept for the log file.
struct Log {
    start: Instant,
    lines: Vec<String>,
    extra_consoles: Vec<File>,
}

impl Log {
    fn new() -> Log {
        Log {
            start: Instant::now(),
            lines: Vec::new(),
            extra_consoles: extra_consoles(),
        }
    }

    fn line(&mut self, msg: impl AsRef<str>) {
        let l = format!(
            "imagebuilder-installer: [{:6.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            msg.as_ref()
        );
        println!("{l}");
        let _ = std::io::stdout().flush();
        for c in &mut self.extra_consoles {
            let _ = writeln!(c, "{l}\r");
        }
        self.lines.push(l);
    }
}

/// The active consoles besides the main one (`/dev/console`, stdout here): all but the last of
/// `/sys/class/tty/console/active`.
fn extra_consoles() -> Vec<File> {
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let names: Vec<&str> = active.split_whitespace().collect();
    names
        .iter()
        .take(names.len().saturating_sub(1))
        .filter_map(|n| File::options().write(true).open(format!("/dev/{n}")).ok())
        .collect()
}

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/initramfs/live/install"));
    let mut log = Log::new();
    match install(&dir, &mut log) {
        Ok(()) => {
            log.line("INSTALL COMPLETE");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log.line(format!("INSTALL FAILED: {e:#}"));
            log.line("nothing more is done; the machine stops");
            ExitCode::FAILURE
        }
    }
}

/// What was decided before anything is written.
struct Target {
    disk: DiskInfo,
    device: PathBuf,
    plan: DiskPlan,
    map: VolumeMap,
    clear: bool,
}

fn install(dir: &Path, log: &mut Log) -> Result<()> {
    let payload_path = dir.join(PAYLOAD_FILE);
    let text = std::fs::read_to_string(&payload_path)
        .with_context(|| format!("reading {}", payload_path.display()))?;
    let payload: Payload = serde_json::from_str(&text)
        .with_context(|| format!("reading {}", payload_path.display()))?;
    if payload.format != PAYLOAD_FORMAT {
        bail!(
            "{} has payload format {}, this installer reads {PAYLOAD_FORMAT}",
            payload_path.display(),
            payload.format
        );
    }
    log.line(format!(
        "installing {} (image of {} MiB)",
        payload.name,
        payload.image.size_bytes / MIB
    ));
    let target = decide(dir, &payload, log)?;
    write_disk(dir, &payload, &target, log)?;
    grow_volumes(&target, log)?;
    log.line(format!(
        "{} is installed on /dev/{}",
        payload.name, target.disk.name
    ));
    write_log_file(&payload, &target, log)?;
    sys::sync_all();
    // Last, so that nothing in the live system (udev, LVM autoactivation) acts on the new
    // partitions while the installer still works on them.
    if let Ok(dev) = File::open(&target.device)
        && let Err(e) = sys::reread_partitions(&dev)
    {
        log.line(format!(
            "the kernel did not re-read the partition table ({e})"
        ));
    }
    if let Finish::Reboot { eject: true } = payload.finish
        && let Some(m) = medium_disk(dir)
    {
        match sys::eject(&Path::new("/dev").join(&m)) {
            Ok(()) => log.line(format!("ejected /dev/{m}")),
            Err(e) => log.line(format!("could not eject /dev/{m}: {e}")),
        }
    }
    Ok(())
}

/// Picks the disk and plans it; nothing is written.
fn decide(dir: &Path, payload: &Payload, log: &mut Log) -> Result<Target> {
    let disks = list_disks(dir)?;
    for d in &disks {
        log.line(format!(
            "disk {}: {} MiB{}",
            d.name,
            d.size / MIB,
            if d.boot_medium {
                " (the boot medium)"
            } else {
                ""
            }
        ));
    }
    let disk = choose_disk(&disks, &payload.target)
        .map_err(anyhow::Error::msg)?
        .clone();
    let device = Path::new("/dev").join(&disk.name);
    if disk.size < payload.image.size_bytes {
        bail!(
            "/dev/{} is too small: it has {} MiB, the kickstart's layout needs at least {} MiB",
            disk.name,
            disk.size / MIB,
            payload.image.size_bytes.div_ceil(MIB)
        );
    }
    let plan = payload
        .layout
        .allocate(&payload.needs, Some(disk.size))
        .map_err(|e| anyhow::anyhow!("/dev/{}: {e}", disk.name))?;
    let map = VolumeMap::new(&payload.image, &plan).map_err(anyhow::Error::msg)?;
    let clear = has_data(&device, disk.size)?;
    if clear && !payload.target.may_clear {
        bail!(
            "/dev/{} holds data (a partition table, filesystem or boot sector at its start or end) \
             and the kickstart has neither clearpart nor zerombr: not touching it",
            disk.name
        );
    }
    log.line(format!(
        "target /dev/{} ({} MiB){}",
        disk.name,
        disk.size / MIB,
        if clear {
            ", its data cleared as the kickstart says"
        } else {
            ", blank"
        }
    ));
    for v in &map.volumes {
        log.line(format!(
            "{} ({}): {} MiB at {} MiB{}",
            v.what,
            describe(&v.kind),
            v.new_size / MIB,
            v.new_offset / MIB,
            if v.new_size > v.old_size {
                format!(", grown from {} MiB", v.old_size / MIB)
            } else {
                String::new()
            }
        ));
    }
    Ok(Target {
        disk,
        device,
        plan,
        map,
        clear,
    })
}

fn describe(kind: &VolumeKind) -> String {
    match kind {
        VolumeKind::BiosBoot => "BIOS boot".into(),
        VolumeKind::Filesystem { kind, mountpoint } => {
            format!("{} {}", kind.fstab_type(), mountpoint)
        }
    }
}

/// The machine's disks from `/sys/block`, with the one holding `dir` marked as the boot medium.
fn list_disks(dir: &Path) -> Result<Vec<DiskInfo>> {
    let medium = medium_disk(dir);
    let mut disks = Vec::new();
    for e in std::fs::read_dir("/sys/block").context("reading /sys/block")? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
            .iter()
            .any(|p| name.starts_with(p))
            && medium.as_deref() != Some(name.as_str())
        {
            continue;
        }
        let sectors: u64 = std::fs::read_to_string(e.path().join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        disks.push(DiskInfo {
            aliases: aliases(&name),
            boot_medium: medium.as_deref() == Some(name.as_str()),
            name,
            size: sectors * 512,
        });
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(disks)
}

/// `disk/by-id/…`, `disk/by-path/…` names of `/dev/NAME`.
fn aliases(name: &str) -> Vec<String> {
    let dev = Path::new("/dev").join(name);
    let mut out = Vec::new();
    for kind in ["by-id", "by-path", "by-uuid", "by-label"] {
        let Ok(rd) = std::fs::read_dir(Path::new("/dev/disk").join(kind)) else {
            continue;
        };
        for e in rd.flatten() {
            if std::fs::canonicalize(e.path()).ok().as_deref() == Some(dev.as_path()) {
                out.push(format!("disk/{kind}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// The disk the medium folder `dir` is on (`sr0`, or `sdb` for `sdb1`).
fn medium_disk(dir: &Path) -> Option<String> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = sys::major_minor(dev);
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    Some(disk.file_name()?.to_string_lossy().into_owned())
}

/// Whether the disk's first or last MiB holds anything.
fn has_data(device: &Path, size: u64) -> Result<bool> {
    let f = File::open(device).with_context(|| format!("opening {}", device.display()))?;
    let n = MIB.min(size);
    let mut head = vec![0u8; n as usize];
    let mut tail = vec![0u8; n as usize];
    f.read_exact_at(&mut head, 0)
        .with_context(|| format!("reading {}", device.display()))?;
    f.read_exact_at(&mut tail, size - n)
        .with_context(|| format!("reading {}", device.display()))?;
    Ok(holds_data(&head, &tail))
}

/// Zeroes what the image's volumes and metadata will occupy, copies the image's volumes to their
/// places, then writes the boot code, LVM metadata and GPT for the target.
fn write_disk(dir: &Path, payload: &Payload, t: &Target, log: &mut Log) -> Result<()> {
    let dev = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(&t.device)
        .with_context(|| format!("opening {} for writing (is it in use?)", t.device.display()))?;
    let zero = |off: u64, len: u64| {
        sys::zero_out(&dev, off, len).with_context(|| {
            format!(
                "zeroing {} MiB at {} MiB of {}",
                len / MIB,
                off / MIB,
                t.device.display()
            )
        })
    };
    if t.clear {
        // The old partition tables (primary and backup) and signatures at both ends go first.
        zero(0, MIB)?;
        let end = t.disk.size / 512 * 512;
        zero(end - MIB, MIB)?;
    }
    for v in &t.map.volumes {
        zero(v.new_offset, v.old_size)?;
    }
    for vg in &t.plan.volume_groups {
        for pv in &vg.pvs {
            zero(pv.offset, disklayout::disk::lvm::PE_START)?;
        }
    }
    log.line("copying the image's volumes");
    let image_path = dir.join(IMAGE_FILE);
    let image =
        File::open(&image_path).with_context(|| format!("opening {}", image_path.display()))?;
    let total = image.metadata()?.len().max(1);
    let read = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut reader = Counting {
        inner: BufReader::with_capacity(4 << 20, image),
        read: read.clone(),
    };
    let mut boot_code = [0u8; MBR_BOOT_CODE];
    let mut shown = 0;
    let mut copied = 0u64;
    disklayout::install::read_extents(&mut reader, |offset, bytes| {
        if offset < MBR_BOOT_CODE as u64 {
            let n = (MBR_BOOT_CODE - offset as usize).min(bytes.len());
            boot_code[offset as usize..offset as usize + n].copy_from_slice(&bytes[..n]);
        }
        for p in t.map.relocate(offset, bytes.len() as u64) {
            let from = (p.src - offset) as usize;
            dev.write_all_at(&bytes[from..from + p.len as usize], p.dest)?;
            copied += p.len;
        }
        let pct = read.get() * 100 / total;
        if pct >= shown + 10 {
            shown = pct - pct % 10;
            log.line(format!("copied {shown}% of the image"));
        }
        Ok(())
    })
    .with_context(|| format!("copying {} to {}", image_path.display(), t.device.display()))?;
    log.line(format!("copied {} MiB", copied / MIB));
    dev.write_all_at(&boot_code, 0)
        .context("writing the boot code")?;
    for vg in &t.plan.volume_groups {
        let spec = vg.spec(payload.lvm_creation_time);
        for (i, pv) in vg.pvs.iter().enumerate() {
            spec.write_pv(&dev, pv.offset, i)?;
        }
        log.line(format!(
            "wrote the LVM metadata of volume group {}",
            vg.name
        ));
    }
    let mut gpt_dev = dev.try_clone()?;
    disklayout::disk::gpt::write_gpt_on(&mut gpt_dev, &t.plan)?;
    dev.sync_all().context("flushing the disk")?;
    log.line(format!(
        "wrote the partition table ({} partitions)",
        t.plan.partitions.len()
    ));
    Ok(())
}

/// A reader that counts what it read (for the progress lines).
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// Grows each filesystem whose volume grew: ext4, XFS and btrfs online on a loop device over the
/// volume; swap by rewriting its header's size; FAT is left at its size.
fn grow_volumes(t: &Target, log: &mut Log) -> Result<()> {
    let dev = File::options()
        .read(true)
        .write(true)
        .open(&t.device)
        .with_context(|| format!("opening {}", t.device.display()))?;
    for v in t.map.volumes.iter().filter(|v| v.new_size > v.old_size) {
        let VolumeKind::Filesystem { kind, mountpoint } = &v.kind else {
            continue;
        };
        match kind {
            FsKind::Swap => grow_swap(&dev, v)?,
            FsKind::Vfat => {
                log.line(format!(
                    "{mountpoint}: FAT is not grown; it keeps {} MiB",
                    v.old_size / MIB
                ));
                continue;
            }
            FsKind::Ext4 | FsKind::Ext3 | FsKind::Xfs | FsKind::Btrfs => {
                with_mounted(&dev, v, *kind, |dir| {
                    match kind {
                        FsKind::Xfs => sys::grow_xfs(dir, v.new_size),
                        FsKind::Btrfs => sys::grow_btrfs(dir),
                        _ => sys::grow_ext4(dir, v.new_size),
                    }
                    .with_context(|| format!("growing {} {mountpoint}", kind.fstab_type()))
                })?;
            }
        }
        log.line(format!(
            "grew {} {mountpoint} from {} to {} MiB",
            kind.fstab_type(),
            v.old_size / MIB,
            v.new_size / MIB
        ));
    }
    Ok(())
}

/// Runs `f` with volume `v`'s filesystem mounted (on a loop device over its byte range).
fn with_mounted<T>(
    dev: &File,
    v: &MovedVolume,
    kind: FsKind,
    f: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let lo = sys::Loop::attach(dev, v.new_offset, v.new_size)
        .with_context(|| format!("attaching a loop device to {}", v.what))?;
    let dir = Path::new(MOUNT_DIR).join(v.what.replace(['/', ' '], "-"));
    let fstype = match kind {
        FsKind::Ext3 | FsKind::Ext4 => "ext4",
        other => other.fstab_type(),
    };
    let m = sys::Mounted::mount(&lo.path, &dir, fstype)
        .with_context(|| format!("mounting {} ({fstype}) of {}", lo.path.display(), v.what))?;
    let r = f(&m.dir);
    m.unmount()
        .with_context(|| format!("unmounting {}", dir.display()))?;
    drop(lo);
    r
}

/// Sets a grown swap area's size in its header (`last_page`), checking the signature first.
fn grow_swap(dev: &File, v: &MovedVolume) -> Result<()> {
    const PAGE: u64 = 4096;
    let mut magic = [0u8; 10];
    dev.read_exact_at(&mut magic, v.new_offset + PAGE - 10)?;
    if &magic != b"SWAPSPACE2" {
        bail!("{} does not hold a swap signature", v.what);
    }
    let last_page = u32::try_from(v.new_size / PAGE - 1).context("swap area too large")?;
    dev.write_all_at(&last_page.to_le_bytes(), v.new_offset + 1028)
        .context("writing the swap header")?;
    Ok(())
}

/// Leaves the console log as `/var/log/imagebuilder-install.log` on the installed system: in the
/// filesystem mounted deepest at or above `/var/log` (the stateroot's `var` when that is `/`).
fn write_log_file(payload: &Payload, t: &Target, log: &mut Log) -> Result<()> {
    let holder = t
        .map
        .volumes
        .iter()
        .filter_map(|v| match &v.kind {
            VolumeKind::Filesystem { kind, mountpoint }
                if *kind != FsKind::Swap && is_under("/var/log", mountpoint) =>
            {
                Some((v, *kind, mountpoint.clone()))
            }
            _ => None,
        })
        .max_by_key(|(_, _, mp)| mp.len());
    let Some((v, kind, mp)) = holder else {
        log.line("no filesystem holds /var/log: the install log is not kept");
        return Ok(());
    };
    let rel = match mp.as_str() {
        "/" => format!("ostree/deploy/{}/var/log", payload.osname),
        other => "/var/log"
            .strip_prefix(other)
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string(),
    };
    log.line(format!("keeping this log as /var/log/{LOG_NAME}"));
    let dev = File::options().read(true).write(true).open(&t.device)?;
    let text = log.lines.join("\n") + "\n";
    with_mounted(&dev, v, kind, |dir| {
        let logdir = dir.join(&rel);
        std::fs::create_dir_all(&logdir)
            .with_context(|| format!("creating {}", logdir.display()))?;
        let path = logdir.join(LOG_NAME);
        std::fs::write(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    })
}

fn is_under(path: &str, mountpoint: &str) -> bool {
    mountpoint == "/"
        || path == mountpoint
        || path
            .strip_prefix(mountpoint)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_log_lives_under_the_deepest_mount_point() {
        assert!(is_under("/var/log", "/"));
        assert!(is_under("/var/log", "/var"));
        assert!(is_under("/var/log", "/var/log"));
        assert!(!is_under("/var/log", "/var/lo"));
        assert!(!is_under("/var/log", "/boot"));
    }

    #[test]
    fn a_swap_header_gets_its_new_size() {
        let f = tempfile_in_tmp();
        f.set_len(8 * 4096).unwrap();
        f.write_all_at(b"SWAPSPACE2", 4096 - 10).unwrap();
        let v = MovedVolume {
            what: "partition 3".into(),
            kind: VolumeKind::Filesystem {
                kind: FsKind::Swap,
                mountpoint: "swap".into(),
            },
            old_offset: 0,
            old_size: 4 * 4096,
            new_offset: 0,
            new_size: 8 * 4096,
        };
        grow_swap(&f, &v).unwrap();
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, 1028).unwrap();
        assert_eq!(u32::from_le_bytes(b), 7);
        f.write_all_at(b"NOTASWAP!!", 4096 - 10).unwrap();
        assert!(grow_swap(&f, &v).is_err());
    }

    fn tempfile_in_tmp() -> File {
        let p = std::env::temp_dir().join(format!("installer-test-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }
}
