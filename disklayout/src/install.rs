//! What an unattended installer medium carries, and the pure decisions of the install.
//!
//! The image builder writes the kickstart's disk image at its smallest size and puts it on the
//! medium as a stream of data extents ([`write_extents`]), with a [`Payload`] describing the layout.
//! The installer on the booted medium picks the target disk ([`choose_disk`]), lays the same
//! layout out for that disk's size ([`crate::plan::Layout::allocate`], as `imagebuilder image
//! --size` would), and copies every volume's bytes to where the volume now starts
//! ([`VolumeMap::relocate`]). Only then do the filesystems grow into their larger volumes.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::plan::{Content, DiskPlan, FsKind, Layout, Role};

/// The medium's folder holding the installer, the payload and the image.
pub const MEDIUM_DIR: &str = "install";
/// The payload's file name in [`MEDIUM_DIR`].
pub const PAYLOAD_FILE: &str = "install.json";
/// The image's extent stream in [`MEDIUM_DIR`].
pub const IMAGE_FILE: &str = "disk.extents";
/// The installer program in [`MEDIUM_DIR`].
pub const PROGRAM_FILE: &str = "imagebuilder-installer";
/// The kernel argument that turns a booted medium into an install.
pub const KERNEL_ARG: &str = "imagebuilder.install";
/// The payload format this crate reads and writes.
pub const PAYLOAD_FORMAT: u32 = 1;
/// The first bytes of an extent stream.
pub const EXTENTS_MAGIC: &[u8; 16] = b"IMAGEBUILDER-EXT";
/// Bytes of LBA 0 holding the BIOS boot code (the rest is the partition table).
pub const MBR_BOOT_CODE: usize = 440;

/// Everything the installer needs besides the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    pub format: u32,
    /// The image's name, for messages.
    pub name: String,
    /// The kickstart's layout, before sizing.
    pub layout: Layout,
    /// Bytes each mount point's content needs (what the image was sized for).
    pub needs: BTreeMap<String, u64>,
    /// The plan the image on the medium was written with.
    pub image: DiskPlan,
    /// The LVM metadata's creation time in the image (kept on the installed disk).
    pub lvm_creation_time: i64,
    /// The OSTree stateroot (`/var` is `ostree/deploy/OSNAME/var` on the root filesystem).
    pub osname: String,
    pub target: TargetRequest,
    pub finish: Finish,
}

/// What the kickstart says about the disk to install on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRequest {
    /// Disks named by `ignoredisk --only-use`, `clearpart --drives` and `part --ondisk`, in that
    /// order (`sda`, `/dev/vdb`, `disk/by-id/…`).
    pub named: Vec<String>,
    /// Disks `ignoredisk --drives` excludes.
    pub ignored: Vec<String>,
    /// Whether a disk holding data may be overwritten: `zerombr`, or `clearpart` other than
    /// `--none`.
    pub may_clear: bool,
    /// The kickstart lines those came from, for messages (`clearpart` at a.ks:3).
    pub source: String,
}

/// What the machine does once the install is done: the kickstart's `reboot`, `poweroff`/`shutdown`
/// or `halt` (Anaconda's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    Reboot {
        eject: bool,
    },
    Poweroff,
    #[default]
    Halt,
}

impl Finish {
    /// From the kickstart command name (`reboot`, `shutdown`, `poweroff`, `halt`) or none.
    pub fn from_command(name: Option<&str>, eject: bool) -> Finish {
        match name {
            Some("reboot") => Finish::Reboot { eject },
            Some("poweroff" | "shutdown") => Finish::Poweroff,
            _ => Finish::Halt,
        }
    }

    /// The systemd unit action (`SuccessAction=`).
    pub fn unit_action(self) -> &'static str {
        match self {
            Finish::Reboot { .. } => "reboot",
            Finish::Poweroff => "poweroff",
            Finish::Halt => "halt",
        }
    }
}

/// A disk of the machine being installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// Kernel name (`vda`, `sda`, `nvme0n1`).
    pub name: String,
    pub size: u64,
    /// Holds the medium the installer runs from.
    pub boot_medium: bool,
    /// Other names of it (`disk/by-id/…`, `disk/by-path/…`), without `/dev/`.
    pub aliases: Vec<String>,
}

fn bare(name: &str) -> &str {
    name.strip_prefix("/dev/").unwrap_or(name)
}

impl DiskInfo {
    fn is(&self, name: &str) -> bool {
        let n = bare(name);
        self.name == n || self.aliases.iter().any(|a| a == n)
    }
}

/// The disk to install on: the first disk the kickstart names that exists, else the first disk
/// that is not the boot medium. An error says why none fits.
pub fn choose_disk<'a>(disks: &'a [DiskInfo], t: &TargetRequest) -> Result<&'a DiskInfo, String> {
    let usable: Vec<&DiskInfo> = disks
        .iter()
        .filter(|d| !d.boot_medium && d.size > 0 && !t.ignored.iter().any(|i| d.is(i)))
        .collect();
    let names = |v: &[&DiskInfo]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if !t.named.is_empty() {
        return t
            .named
            .iter()
            .find_map(|n| usable.iter().find(|d| d.is(n)).copied())
            .ok_or_else(|| {
                format!(
                    "the kickstart installs on {} ({}), which this machine does not have; its \
                     disks: {}",
                    t.named.join(", "),
                    t.source,
                    names(&usable)
                )
            });
    }
    let mut sorted = usable.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.first().copied().ok_or_else(|| {
        let medium: Vec<&DiskInfo> = disks.iter().filter(|d| d.boot_medium).collect();
        format!(
            "no disk to install on (the only block devices are the boot medium: {})",
            names(&medium)
        )
    })
}

/// Whether the first and last MiB of a disk (`head`, `tail`) hold anything: a partition table, a
/// filesystem or LVM signature, a boot sector.
pub fn holds_data(head: &[u8], tail: &[u8]) -> bool {
    head.iter().chain(tail).any(|b| *b != 0)
}

/// One volume of the image and where it goes on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedVolume {
    /// `partition 3`, `LV atomicos/root`.
    pub what: String,
    pub kind: VolumeKind,
    pub old_offset: u64,
    pub old_size: u64,
    pub new_offset: u64,
    pub new_size: u64,
}

/// What a moved volume holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeKind {
    /// GRUB's core.img (must not move: the MBR points at it).
    BiosBoot,
    Filesystem {
        kind: FsKind,
        mountpoint: String,
    },
}

/// The image's volumes matched with the target plan's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMap {
    pub volumes: Vec<MovedVolume>,
}

/// A run of bytes to copy: `len` bytes at image offset `src` go to target offset `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub dest: u64,
    pub src: u64,
    pub len: u64,
}

impl VolumeMap {
    /// Matches the partitions (by number) and logical volumes (by group and name) of the image's
    /// plan `old` with the target's `new`, which must have the same structure with no volume
    /// smaller, and GRUB's BIOS boot partition where it was.
    pub fn new(old: &DiskPlan, new: &DiskPlan) -> Result<VolumeMap, String> {
        let mut volumes = Vec::new();
        if old.partitions.len() != new.partitions.len() {
            return Err("the target plan has other partitions than the image".into());
        }
        for (o, n) in old.partitions.iter().zip(&new.partitions) {
            if o.number != n.number || o.role != n.role {
                return Err(format!("partition {} differs in the target plan", o.number));
            }
            let kind = match &o.content {
                Content::LvmPv { .. } => continue,
                Content::BiosBoot => VolumeKind::BiosBoot,
                Content::Filesystem(f) => VolumeKind::Filesystem {
                    kind: f.kind,
                    mountpoint: f.mountpoint.clone(),
                },
            };
            if o.role == Role::BiosBoot && o.offset() != n.offset() {
                return Err("the BIOS boot partition would move".into());
            }
            volumes.push(MovedVolume {
                what: format!("partition {}", o.number),
                kind,
                old_offset: o.offset(),
                old_size: o.size(),
                new_offset: n.offset(),
                new_size: n.size(),
            });
        }
        if old.volume_groups.len() != new.volume_groups.len() {
            return Err("the target plan has other volume groups than the image".into());
        }
        for (og, ng) in old.volume_groups.iter().zip(&new.volume_groups) {
            for ol in &og.lvs {
                let nl = ng
                    .lvs
                    .iter()
                    .find(|l| l.name == ol.name && og.name == ng.name)
                    .ok_or_else(|| {
                        format!("LV {}/{} is not in the target plan", og.name, ol.name)
                    })?;
                volumes.push(MovedVolume {
                    what: format!("LV {}/{}", og.name, ol.name),
                    kind: VolumeKind::Filesystem {
                        kind: ol.filesystem.kind,
                        mountpoint: ol.filesystem.mountpoint.clone(),
                    },
                    old_offset: ol.offset,
                    old_size: ol.size,
                    new_offset: nl.offset,
                    new_size: nl.size,
                });
            }
        }
        if let Some(v) = volumes.iter().find(|v| v.new_size < v.old_size) {
            return Err(format!(
                "{} would shrink from {} to {} bytes",
                v.what, v.old_size, v.new_size
            ));
        }
        Ok(VolumeMap { volumes })
    }

    /// Where the image bytes `[src, src + len)` go: one piece per volume they overlap. Bytes in no
    /// volume (partition tables, LVM metadata, unallocated extents) are dropped: the installer
    /// writes those for the target.
    pub fn relocate(&self, src: u64, len: u64) -> Vec<Piece> {
        let end = src + len;
        let mut out: Vec<Piece> = self
            .volumes
            .iter()
            .filter_map(|v| {
                let s = src.max(v.old_offset);
                let e = end.min(v.old_offset + v.old_size);
                (s < e).then(|| Piece {
                    dest: v.new_offset + (s - v.old_offset),
                    src: s,
                    len: e - s,
                })
            })
            .collect();
        out.sort_by_key(|p| p.src);
        out
    }
}

/// Writes an extent stream: [`EXTENTS_MAGIC`], then per extent its offset and length (u64
/// little-endian) and its bytes, then an end marker (offset `u64::MAX`). `extents` are
/// `(offset, length)` pairs read from `image` in order.
pub fn write_extents(
    out: &mut impl Write,
    image: &std::fs::File,
    extents: &[(u64, u64)],
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    out.write_all(EXTENTS_MAGIC)?;
    let mut buf = vec![0u8; 1 << 20];
    for &(offset, len) in extents {
        out.write_all(&offset.to_le_bytes())?;
        out.write_all(&len.to_le_bytes())?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            image.read_exact_at(&mut buf[..n], offset + done)?;
            out.write_all(&buf[..n])?;
            done += n as u64;
        }
    }
    out.write_all(&u64::MAX.to_le_bytes())?;
    out.write_all(&0u64.to_le_bytes())?;
    out.flush()
}

/// Reads an extent stream, calling `each(offset, bytes)` for chunks of at most 4 MiB in order.
pub fn read_extents(
    input: &mut impl Read,
    mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic)?;
    if &magic != EXTENTS_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an imagebuilder extent stream",
        ));
    }
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let mut head = [0u8; 16];
        input.read_exact(&mut head)?;
        let offset = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let len = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
        if offset == u64::MAX {
            return Ok(());
        }
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            input.read_exact(&mut buf[..n])?;
            each(offset + done, &buf[..n])?;
            done += n as u64;
        }
    }
}

/// Splits data runs `(offset, length)` into runs without `block`-sized all-zero blocks, reading
/// them through `read_at`: a freshly made filesystem has many allocated blocks of zeros.
pub fn drop_zero_blocks(
    runs: &[(u64, u64)],
    block: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<Vec<(u64, u64)>> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut buf = vec![0u8; block as usize];
    for &(offset, len) in runs {
        let mut at = offset;
        while at < offset + len {
            let n = (offset + len - at).min(block);
            read_at(at, &mut buf[..n as usize])?;
            if buf[..n as usize].iter().any(|b| *b != 0) {
                match out.last_mut() {
                    Some(last) if last.0 + last.1 == at => last.1 += n,
                    _ => out.push((at, n)),
                }
            }
            at += n;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::request::{DiskRequest, LogVolRequest, PartitionRequest, VolGroupRequest};
    use crate::plan::{IdSource, MIB};

    fn disk(name: &str, size: u64, boot: bool) -> DiskInfo {
        DiskInfo {
            name: name.into(),
            size,
            boot_medium: boot,
            aliases: vec![format!("disk/by-id/virtio-{name}")],
        }
    }

    #[test]
    fn the_disk_is_the_named_one_else_the_first_that_is_not_the_medium() {
        let disks = [
            disk("sr0", 1, true),
            disk("vdb", 9, false),
            disk("vda", 8, false),
        ];
        let mut t = TargetRequest::default();
        assert_eq!(choose_disk(&disks, &t).unwrap().name, "vda");
        t.ignored = vec!["vda".into()];
        assert_eq!(choose_disk(&disks, &t).unwrap().name, "vdb");
        t.ignored.clear();
        t.named = vec!["sda".into(), "/dev/disk/by-id/virtio-vdb".into()];
        assert_eq!(choose_disk(&disks, &t).unwrap().name, "vdb");
        t.named = vec!["sda".into()];
        t.source = "ignoredisk at a.ks:2".into();
        let e = choose_disk(&disks, &t).unwrap_err();
        assert!(
            e.contains("sda (ignoredisk at a.ks:2)") && e.contains("vdb, vda"),
            "{e}"
        );
        t.named = vec!["sr0".into()];
        assert!(
            choose_disk(&disks, &t).is_err(),
            "the boot medium is never a target"
        );
        let e = choose_disk(&disks[..1], &TargetRequest::default()).unwrap_err();
        assert!(e.contains("boot medium: sr0"), "{e}");
    }

    #[test]
    fn data_is_any_nonzero_byte_at_either_end() {
        let z = vec![0u8; 4096];
        assert!(!holds_data(&z, &z));
        let mut t = z.clone();
        t[4000] = 1;
        assert!(holds_data(&z, &t));
    }

    fn lvm_layout() -> Layout {
        let req = DiskRequest {
            source_name: "t.ks".into(),
            partitions: vec![
                PartitionRequest {
                    line: 1,
                    mountpoint: "/boot".into(),
                    size_mib: Some(300),
                    ..Default::default()
                },
                PartitionRequest {
                    line: 2,
                    mountpoint: "pv.01".into(),
                    size_mib: Some(600),
                    grow: true,
                    ..Default::default()
                },
            ],
            volgroups: vec![VolGroupRequest {
                line: 3,
                name: "vg".into(),
                pvs: vec!["pv.01".into()],
                ..Default::default()
            }],
            logvols: vec![
                LogVolRequest {
                    line: 4,
                    mountpoint: "/".into(),
                    name: "root".into(),
                    vgname: "vg".into(),
                    size_mib: Some(400),
                    grow: true,
                    ..Default::default()
                },
                LogVolRequest {
                    line: 5,
                    mountpoint: "swap".into(),
                    name: "swap".into(),
                    vgname: "vg".into(),
                    size_mib: Some(100),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        Layout::from_request(&req, &IdSource::derived(b"install")).unwrap()
    }

    #[test]
    fn volumes_keep_their_bytes_where_the_target_plan_puts_them() {
        let layout = lvm_layout();
        let needs = BTreeMap::new();
        let old = layout.allocate(&needs, None).unwrap();
        let new = layout.allocate(&needs, Some(8 << 30)).unwrap();
        let map = VolumeMap::new(&old, &new).unwrap();
        let root = map.volumes.iter().find(|v| v.what == "LV vg/root").unwrap();
        assert!(root.new_size > 6 << 30, "{root:?}");
        let swap = map.volumes.iter().find(|v| v.what == "LV vg/swap").unwrap();
        assert_eq!(swap.new_size, swap.old_size);
        // The grown root pushes swap further into the PV.
        assert!(swap.new_offset > swap.old_offset);
        // One run across the end of root and the start of swap: two pieces, each in place.
        let src = root.old_offset + root.old_size - 4096;
        let pieces = map.relocate(src, 8192);
        assert_eq!(
            pieces,
            vec![
                Piece {
                    dest: root.new_offset + root.old_size - 4096,
                    src,
                    len: 4096
                },
                Piece {
                    dest: swap.new_offset,
                    src: swap.old_offset,
                    len: 4096
                }
            ]
        );
        // The GPT and the PV's metadata belong to no volume.
        assert!(map.relocate(0, MIB).is_empty());
        let pv = &old.volume_groups[0].pvs[0];
        assert!(map.relocate(pv.offset, 4096).is_empty());
        // A smaller target is refused by the planner with the layout's needs.
        assert!(layout.allocate(&needs, Some(old.size_bytes - MIB)).is_err());
    }

    #[test]
    fn a_plan_of_another_shape_is_refused() {
        let layout = lvm_layout();
        let old = layout.allocate(&BTreeMap::new(), None).unwrap();
        let mut new = old.clone();
        new.partitions.pop();
        assert!(VolumeMap::new(&old, &new).is_err());
        let mut new = old.clone();
        new.volume_groups[0].lvs[0].size -= MIB;
        assert!(VolumeMap::new(&old, &new).unwrap_err().contains("shrink"));
    }

    #[test]
    fn extent_streams_round_trip_without_zero_blocks() {
        use std::os::unix::fs::FileExt;
        let f = tempfile::tempfile().unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(&[7u8; 10], 70_000).unwrap();
        f.write_all_at(&[9u8; 5], 300_000).unwrap();
        let runs =
            drop_zero_blocks(&[(0, 1 << 20)], 65536, |at, b| f.read_exact_at(b, at)).unwrap();
        assert_eq!(runs, vec![(65536, 65536), (262144, 65536)]);
        let mut stream = Vec::new();
        write_extents(&mut stream, &f, &runs).unwrap();
        let mut back = vec![0u8; 1 << 20];
        read_extents(&mut stream.as_slice(), |at, b| {
            back[at as usize..at as usize + b.len()].copy_from_slice(b);
            Ok(())
        })
        .unwrap();
        let mut orig = vec![0u8; 1 << 20];
        f.read_exact_at(&mut orig, 0).unwrap();
        assert_eq!(back, orig);
        assert!(read_extents(&mut &b"nonsense-nonsense"[..], |_, _| Ok(())).is_err());
    }

    #[test]
    fn payloads_round_trip_through_json() {
        let layout = lvm_layout();
        let p = Payload {
            format: PAYLOAD_FORMAT,
            name: "demo".into(),
            image: layout.allocate(&BTreeMap::new(), None).unwrap(),
            layout,
            needs: BTreeMap::from([("/".to_string(), 5 * MIB)]),
            lvm_creation_time: 1,
            osname: "demo".into(),
            target: TargetRequest::default(),
            finish: Finish::Reboot { eject: true },
        };
        let back: Payload = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(
            Finish::from_command(Some("shutdown"), false),
            Finish::Poweroff
        );
        assert_eq!(Finish::from_command(None, false), Finish::Halt);
    }
}
