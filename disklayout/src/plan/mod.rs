//! The described disk: partitions, sizes, GUIDs, filesystems and mount points, as plain data.
//!
//! Two pure steps: [`Layout::from_request`] validates a [`DiskRequest`] and decides everything that
//! does not depend on the content (roles, filesystems, labels, ids) — run it before any expensive
//! work so bad input fails fast; [`Layout::allocate`] then sizes and places the partitions once the
//! content's needs are known and gives the [`DiskPlan`] every later step reads.
//!
//! The plan keeps partitions (the GPT) apart from what they hold ([`Content`]): a filesystem, GRUB's
//! core.img, or an LVM physical volume of a [`VolumeGroup`] whose linear logical volumes are byte
//! ranges of the image, so [`DiskPlan::filesystems`] lists LV filesystems like partition ones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::disk::lvm::{self, PE_START};
use crate::plan::request::{AutopartRequest, DiskRequest, PartitionRequest};

pub mod request;
mod volumes;
pub use volumes::{LayoutLv, LayoutVg, LogicalVolume, PhysicalVolume, VolumeGroup, mapper_path};
use volumes::{LvBase, pv_extents};

pub const MIB: u64 = 1 << 20;
pub const SECTOR: u64 = 512;
/// First usable partition start (1 MiB, the usual alignment).
pub const FIRST_LBA: u64 = 2048;

/// Default sizes (MiB).
pub const BIOSBOOT_MIB: u64 = 1;
pub const ESP_MIB: u64 = 127;
pub const BOOT_MIB: u64 = 1024;
pub const DEFAULT_PART_MIB: u64 = 1024;
/// A FAT32 ESP needs at least 65525 clusters of 512 bytes plus its FATs.
pub const ESP_MIN_MIB: u64 = 36;
/// The smallest XFS filesystem `mkfs.xfs` (xfsprogs ≥ 5.19) creates.
pub const XFS_MIN_BYTES: u64 = 300 * MIB;

/// GPT partition type GUIDs used by the builder.
pub(crate) mod types {
    pub const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
    pub const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    pub const XBOOTLDR: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
    pub const ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
    pub const VAR: &str = "4D21B016-B534-45C2-A9FB-5C16E091FD2D";
    pub const HOME: &str = "933AC7E1-2EB4-4F13-B844-0E14E2AEF915";
    pub const SWAP: &str = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F";
    pub const LINUX_DATA: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    pub const LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";
}

/// A bad layout request: the kickstart file and line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(source_name, *line))]
pub struct LayoutError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

fn location(source_name: &str, line: usize) -> String {
    match (source_name.is_empty(), line) {
        (true, 0) => String::new(),
        (false, 0) => format!("{source_name}: "),
        (true, l) => format!("line {l}: "),
        (false, l) => format!("{source_name}:{l}: "),
    }
}

/// Filesystem kinds the builder writes natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ext4,
    Ext3,
    Vfat,
    Btrfs,
    Xfs,
    Swap,
}

impl FsKind {
    /// The name in `/etc/fstab` and in the metadata.
    pub fn fstab_type(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Ext3 => "ext3",
            FsKind::Vfat => "vfat",
            FsKind::Btrfs => "btrfs",
            FsKind::Xfs => "xfs",
            FsKind::Swap => "swap",
        }
    }

    fn max_label_len(self) -> usize {
        match self {
            FsKind::Ext4 | FsKind::Ext3 => 16,
            FsKind::Vfat => 11,
            FsKind::Btrfs => 255,
            FsKind::Xfs => 12,
            FsKind::Swap => 15,
        }
    }
}

/// What a partition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    BiosBoot,
    Esp,
    Boot,
    Root,
    Swap,
    Data,
    /// An LVM physical volume (`part pv.NN`).
    LvmPv,
}

/// A filesystem to create: where it is mounted and how it is identified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    pub kind: FsKind,
    /// Mount point (`/`, `/boot`, `/boot/efi`, `/var/log`…); `swap` for swap.
    pub mountpoint: String,
    pub label: Option<String>,
    /// The id used in fstab's `UUID=`: a UUID, or `XXXX-XXXX` for FAT.
    pub uuid: String,
    /// Mount options for fstab (`--fsoptions`, default `defaults`).
    pub options: String,
}

impl Filesystem {
    /// FAT volume id (the 32-bit number behind `XXXX-XXXX`).
    pub fn fat_volume_id(&self) -> Option<u32> {
        let hex: String = self.uuid.chars().filter(|c| *c != '-').collect();
        u32::from_str_radix(&hex, 16).ok()
    }

    /// A filesystem UUID as [`Uuid`] (not for FAT).
    pub fn uuid(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.uuid).ok()
    }
}

/// One validated partition, not yet placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutPart {
    /// Kickstart line (0 = added by the builder, like Anaconda's platform partitions).
    pub line: usize,
    pub role: Role,
    /// GPT partition name.
    pub name: String,
    pub type_guid: String,
    pub guid: Uuid,
    pub fs: Option<Filesystem>,
    pub min_mib: u64,
    pub grow: bool,
    pub max_mib: Option<u64>,
    /// For [`Role::LvmPv`]: the kickstart name (`pv.01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv: Option<String>,
}

/// A validated layout: the partitions in disk order and the volume groups on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub source_name: String,
    pub disk_guid: Uuid,
    pub parts: Vec<LayoutPart>,
    pub vgs: Vec<LayoutVg>,
}

/// Where fresh ids come from: random, or derived from a seed for reproducible builds.
#[derive(Debug, Clone)]
pub enum IdSource {
    Random,
    Derived([u8; 32]),
}

impl IdSource {
    /// Ids derived from `seed` (e.g. commit + kickstart digest): same seed, same ids.
    pub fn derived(seed: &[u8]) -> Self {
        IdSource::Derived(Sha256::digest(seed).into())
    }

    /// A version-4-shaped UUID for `purpose`.
    pub fn uuid(&self, purpose: &str) -> Uuid {
        match self {
            IdSource::Random => Uuid::new_v4(),
            IdSource::Derived(seed) => {
                let mut h = Sha256::new();
                h.update(seed);
                h.update(purpose.as_bytes());
                let d = h.finalize();
                let mut b = [0u8; 16];
                b.copy_from_slice(&d[..16]);
                uuid::Builder::from_random_bytes(b).into_uuid()
            }
        }
    }

    /// An LVM id (32 characters) for `purpose`.
    pub fn lvm_id(&self, purpose: &str) -> String {
        let seed: [u8; 32] = Sha256::digest(self.uuid(purpose).as_bytes()).into();
        lvm::lvm_id(&seed)
    }

    /// A FAT volume id (`XXXX-XXXX`) for `purpose`.
    pub fn fat_id(&self, purpose: &str) -> String {
        let b = self.uuid(purpose);
        let b = b.as_bytes();
        format!("{:02X}{:02X}-{:02X}{:02X}", b[0], b[1], b[2], b[3])
    }
}

fn parse_fstype(s: &str) -> Option<Result<FsKind, &'static str>> {
    Some(Ok(match s.to_ascii_lowercase().as_str() {
        "ext4" => FsKind::Ext4,
        "ext3" => FsKind::Ext3,
        "vfat" | "efi" => FsKind::Vfat,
        "btrfs" => FsKind::Btrfs,
        "swap" => FsKind::Swap,
        "xfs" => FsKind::Xfs,
        "lvmpv" => return Some(Err("lvmpv")),
        "biosboot" | "prepboot" => return Some(Err("platform")),
        _ => return None,
    }))
}

/// An error at a kickstart line (0: no line), located in the file by the caller.
pub(super) type LineError = (usize, String);

/// Refuses the first line the request parser found invalid or unsupported.
fn check_supported(req: &DiskRequest) -> Result<(), LineError> {
    if let Some(u) = req.invalid.first() {
        return Err((u.line, u.value.clone()));
    }
    if let Some(u) = req.unsupported.first() {
        return Err((
            u.line,
            format!(
                "{} is not supported: this builder writes no RAID arrays or btrfs volumes",
                u.value
            ),
        ));
    }
    Ok(())
}

/// The partitions asked for: the `part` lines, `autopart --type=plain`'s /boot and /, and the
/// /boot of `reqpart --add-boot` when no line asks for one.
fn wanted_partitions(req: &DiskRequest) -> Result<Vec<PartitionRequest>, LineError> {
    let mut wanted: Vec<PartitionRequest> = req.partitions.clone();
    if let Some(auto) = &req.autopart {
        wanted.extend(autopart_partitions(req, auto)?);
    }
    if let Some(rp) = &req.reqpart
        && rp.add_boot
        && !wanted.iter().any(|p| p.mountpoint == "/boot")
    {
        wanted.push(PartitionRequest {
            line: rp.line,
            mountpoint: "/boot".into(),
            size_mib: Some(BOOT_MIB),
            ..Default::default()
        });
    }
    Ok(wanted)
}

/// `autopart --type=plain`'s partitions: /boot and a growing /; alone, with no `part` line.
fn autopart_partitions(
    req: &DiskRequest,
    auto: &AutopartRequest,
) -> Result<Vec<PartitionRequest>, LineError> {
    if let Some(p) = req.partitions.first() {
        return Err((
            p.line,
            format!(
                "`part` cannot be combined with `autopart` (line {})",
                auto.line
            ),
        ));
    }
    match auto.kind.as_deref() {
        Some("plain") => {}
        Some(other) => {
            return Err((
                auto.line,
                format!("autopart --type={other} is not supported yet; use --type=plain"),
            ));
        }
        None => {
            return Err((
                auto.line,
                "autopart without --type means Anaconda's automatic LVM layout, which is not supported; \
                 use autopart --type=plain or write part/volgroup/logvol lines".into(),
            ));
        }
    }
    Ok([("/boot", Some(BOOT_MIB), false), ("/", None, true)]
        .into_iter()
        .map(|(mp, size, grow)| PartitionRequest {
            line: auto.line,
            mountpoint: mp.into(),
            fstype: auto.fstype.clone(),
            size_mib: size,
            grow,
            ..Default::default()
        })
        .collect())
}

/// What two partitions may not share: the mount point, the PV name, the BIOS boot role; every
/// swap partition (the `index`th) is its own.
fn part_key(part: &LayoutPart, index: usize) -> String {
    match part.role {
        Role::Swap => format!("swap#{index}"),
        Role::BiosBoot => "biosboot".into(),
        Role::LvmPv => part.pv.clone().unwrap_or_default(),
        _ => part
            .fs
            .as_ref()
            .map(|f| f.mountpoint.clone())
            .unwrap_or_default(),
    }
}

/// There is a /, and a / on a logical volume has a /boot partition beside it.
fn check_root(parts: &[LayoutPart], vgs: &[LayoutVg]) -> Result<(), LineError> {
    let lv_root = vgs
        .iter()
        .flat_map(|v| &v.lvs)
        .find(|l| l.role == Role::Root);
    if let Some(root) = lv_root
        && !parts.iter().any(|p| p.role == Role::Boot)
    {
        return Err((
            root.line,
            "/ is on a logical volume, so /boot needs its own partition (add `part /boot`): \
             the GRUB this builder installs does not read LVM"
                .into(),
        ));
    }
    if lv_root.is_none() && !parts.iter().any(|p| p.role == Role::Root) {
        return Err((
            0,
            "no partition for / (add `part / --grow` or `autopart --type=plain`)".into(),
        ));
    }
    Ok(())
}

/// Disk order: BIOS boot, ESP, /boot, then the kickstart's order (the sort is stable).
fn disk_rank(role: Role) -> u8 {
    match role {
        Role::BiosBoot => 0,
        Role::Esp => 1,
        Role::Boot => 2,
        _ => 3,
    }
}

/// The partitions' minimum sizes fit in the largest disk image this builder writes.
fn check_fixed_total(parts: &[LayoutPart]) -> Result<(), LineError> {
    let fixed: u64 = parts.iter().map(|p| p.min_mib).sum();
    if fixed > crate::plan::request::MAX_DISK_MIB {
        let big = parts.iter().max_by_key(|p| p.min_mib).map_or(0, |p| p.line);
        return Err((
            big,
            format!(
                "the partitions need {fixed} MiB, more than the largest disk image this builder writes ({} TiB)",
                (crate::plan::request::MAX_DISK_MIB + 1) >> 20
            ),
        ));
    }
    Ok(())
}

/// A partition's minimum size: `--size`, else 1 MiB for `--grow`, else `default`.
fn min_size(p: &PartitionRequest, default: u64) -> u64 {
    p.size_mib
        .unwrap_or(if p.grow { 1 } else { default })
        .max(1)
}

/// `--label`, if it fits `kind`'s limit.
fn fs_label(p: &PartitionRequest, kind: FsKind) -> Result<Option<String>, String> {
    match &p.label {
        Some(l) if l.len() > kind.max_label_len() => Err(format!(
            "label `{l}` is longer than {} characters, the limit for {}",
            kind.max_label_len(),
            kind.fstab_type()
        )),
        Some(l) => Ok(Some(l.clone())),
        None => Ok(None),
    }
}

/// `part pv.NN`: an LVM physical volume.
fn lvm_pv_part(p: &PartitionRequest, ids: &IdSource) -> Result<LayoutPart, String> {
    let mp = p.mountpoint.as_str();
    if let Some(t) = p.fstype.as_deref()
        && !t.eq_ignore_ascii_case("lvmpv")
    {
        return Err(format!(
            "`{mp}` is an LVM physical volume, not --fstype={t}"
        ));
    }
    Ok(LayoutPart {
        line: p.line,
        role: Role::LvmPv,
        name: mp.chars().take(36).collect(),
        type_guid: types::LVM.into(),
        guid: ids.uuid(&format!("part:{mp}")),
        fs: None,
        min_mib: min_size(p, DEFAULT_PART_MIB),
        grow: p.grow,
        max_mib: p.maxsize_mib,
        pv: Some(mp.to_string()),
    })
}

/// `part biosboot`: GRUB's core.img, never grown.
fn bios_boot_part(p: &PartitionRequest, ids: &IdSource) -> LayoutPart {
    LayoutPart {
        line: p.line,
        role: Role::BiosBoot,
        name: "BIOS-BOOT".into(),
        type_guid: types::BIOS_BOOT.into(),
        guid: ids.uuid("part:biosboot"),
        fs: None,
        min_mib: min_size(p, BIOSBOOT_MIB),
        grow: false,
        max_mib: None,
        pv: None,
    }
}

/// The filesystem of mount point `mp`: `--fstype`, else swap, vfat for the ESP or ext4.
fn fs_kind(mp: &str, fstype: Option<&str>) -> Result<FsKind, String> {
    let Some(t) = fstype else {
        return Ok(match mp {
            "swap" => FsKind::Swap,
            "/boot/efi" => FsKind::Vfat,
            // Anaconda's Fedora default is xfs; ext4 is written without root or a loop device.
            _ => FsKind::Ext4,
        });
    };
    match parse_fstype(t) {
        Some(Ok(k)) => Ok(k),
        Some(Err("lvmpv")) => Err(format!(
            "--fstype={t} on {mp}: LVM physical volumes are `part pv.NN` lines"
        )),
        Some(Err(_)) => Err(format!("--fstype={t} is not a valid fstype for {mp}")),
        None => Err(format!(
            "unknown fstype `{t}` (supported: ext4, ext3, xfs, vfat, efi, biosboot, btrfs, swap)"
        )),
    }
}

/// `part swap`; a swap partition is named `swap` and nothing else is swap.
fn swap_part(p: &PartitionRequest, kind: FsKind, ids: &IdSource) -> Result<LayoutPart, String> {
    let mp = p.mountpoint.as_str();
    if mp != "swap" || kind != FsKind::Swap {
        return Err(format!(
            "swap must be `part swap` (got {mp} with --fstype={})",
            kind.fstab_type()
        ));
    }
    let n = p.line;
    Ok(LayoutPart {
        line: p.line,
        role: Role::Swap,
        name: "swap".into(),
        type_guid: types::SWAP.into(),
        guid: ids.uuid(&format!("part:swap:{n}")),
        fs: Some(Filesystem {
            kind,
            mountpoint: "swap".into(),
            label: fs_label(p, kind)?,
            uuid: ids.uuid(&format!("fs:swap:{n}")).to_string(),
            options: p.fsoptions.clone().unwrap_or_else(|| "defaults".into()),
        }),
        min_mib: min_size(p, DEFAULT_PART_MIB),
        grow: p.grow,
        max_mib: p.maxsize_mib,
        pv: None,
    })
}

/// A mount point is absolute, clean, and not inside the read-only deployment.
fn check_mountpoint(mp: &str) -> Result<(), String> {
    if !mp.starts_with('/') {
        return Err(format!(
            "`{mp}` is not a mount point (it must start with /)"
        ));
    }
    if mp != "/"
        && (mp.ends_with('/') || mp.contains("//") || mp.contains("/./") || mp.contains("/../"))
    {
        return Err(format!("`{mp}` is not a clean mount point"));
    }
    if let Some(d) = DEPLOYMENT_DIRS.iter().find(|d| is_under(mp, d)) {
        return Err(format!(
            "{mp} cannot be a separate filesystem: {d} belongs to the read-only OSTree deployment; \
             only /, /boot…, /var… and paths the tree links into /var (like /home) can be"
        ));
    }
    Ok(())
}

/// The role, GPT name and type GUID of the partition mounted at `mp`.
fn mount_role(mp: &str) -> (Role, String, &'static str) {
    match mp {
        "/" => (Role::Root, "root".to_string(), types::ROOT_X86_64),
        "/boot" => (Role::Boot, "boot".to_string(), types::XBOOTLDR),
        "/boot/efi" => (Role::Esp, "EFI-SYSTEM".to_string(), types::ESP),
        "/var" => (Role::Data, "var".to_string(), types::VAR),
        "/home" => (Role::Data, "home".to_string(), types::HOME),
        _ => (
            Role::Data,
            mp.trim_start_matches('/')
                .replace('/', "-")
                .chars()
                .take(36)
                .collect(),
            types::LINUX_DATA,
        ),
    }
}

/// The filesystem suits the role (FAT for the ESP only, Linux ones under /boot) and its
/// partition of `min_mib` can hold it.
fn check_fs_fits(
    p: &PartitionRequest,
    role: Role,
    kind: FsKind,
    min_mib: u64,
) -> Result<(), String> {
    let mp = p.mountpoint.as_str();
    if role == Role::Esp && kind != FsKind::Vfat {
        return Err(format!(
            "/boot/efi must be vfat or efi, not {}",
            kind.fstab_type()
        ));
    }
    if role != Role::Esp && kind == FsKind::Vfat && mp.starts_with("/boot") {
        return Err(format!(
            "{mp} cannot be vfat: GRUB and ostree need a Linux filesystem there"
        ));
    }
    if role == Role::Esp && min_mib < ESP_MIN_MIB {
        return Err(format!(
            "the EFI system partition must be at least {ESP_MIN_MIB} MiB for FAT32 (got {min_mib} MiB)"
        ));
    }
    let xfs_min_mib = XFS_MIN_BYTES / MIB;
    if kind == FsKind::Xfs
        && min_mib < xfs_min_mib
        && (!p.grow || p.maxsize_mib.is_some_and(|m| m < xfs_min_mib))
    {
        return Err(format!(
            "xfs on {mp} needs at least {xfs_min_mib} MiB (mkfs.xfs refuses smaller filesystems); \
             the partition is {min_mib} MiB"
        ));
    }
    Ok(())
}

/// A partition holding a filesystem of `kind` mounted at a checked mount point.
fn mounted_part(p: &PartitionRequest, kind: FsKind, ids: &IdSource) -> Result<LayoutPart, String> {
    let mp = p.mountpoint.as_str();
    let (role, name, type_guid) = mount_role(mp);
    let min_mib = min_size(
        p,
        if role == Role::Esp {
            ESP_MIB
        } else {
            DEFAULT_PART_MIB
        },
    );
    check_fs_fits(p, role, kind, min_mib)?;
    let uuid = if kind == FsKind::Vfat {
        ids.fat_id(&format!("fs:{mp}"))
    } else {
        ids.uuid(&format!("fs:{mp}")).to_string()
    };
    let (default_label, default_options) = match role {
        Role::Esp => (Some("EFI-SYSTEM".to_string()), "umask=0077,shortname=winnt"),
        _ => (None, "defaults"),
    };
    Ok(LayoutPart {
        line: p.line,
        role,
        name,
        type_guid: type_guid.into(),
        guid: ids.uuid(&format!("part:{mp}")),
        fs: Some(Filesystem {
            kind,
            mountpoint: mp.into(),
            label: fs_label(p, kind)?.or(default_label),
            uuid,
            options: p
                .fsoptions
                .clone()
                .unwrap_or_else(|| default_options.into()),
        }),
        min_mib,
        grow: p.grow,
        max_mib: p.maxsize_mib,
        pv: None,
    })
}

impl Layout {
    /// Validates the request and decides roles, filesystems, labels and ids.
    pub fn from_request(req: &DiskRequest, ids: &IdSource) -> Result<Layout, LayoutError> {
        let err = |(line, message): LineError| LayoutError {
            source_name: req.source_name.clone(),
            line,
            message,
        };
        check_supported(req).map_err(err)?;
        let wanted = wanted_partitions(req).map_err(err)?;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut parts = Self::requested_parts(&wanted, ids, &mut seen).map_err(err)?;
        let vgs = Self::volume_groups(req, ids, &parts, &mut seen)?;
        check_root(&parts, &vgs).map_err(err)?;
        Self::add_platform_parts(&mut parts, ids).map_err(err)?;
        parts.sort_by_key(|p| disk_rank(p.role));
        check_fixed_total(&parts).map_err(err)?;
        Ok(Layout {
            source_name: req.source_name.clone(),
            disk_guid: ids.uuid("disk"),
            parts,
            vgs,
        })
    }

    /// Validates each wanted partition, refusing two for the same thing; `seen` records the
    /// line of each (see [`part_key`]).
    fn requested_parts(
        wanted: &[PartitionRequest],
        ids: &IdSource,
        seen: &mut BTreeMap<String, usize>,
    ) -> Result<Vec<LayoutPart>, LineError> {
        let mut parts: Vec<LayoutPart> = Vec::new();
        for p in wanted {
            let part = Self::one_part(p, ids).map_err(|m| (p.line, m))?;
            let key = part_key(&part, parts.len());
            if let Some(first) = seen.insert(key.clone(), p.line) {
                return Err((
                    p.line,
                    format!("two partitions for {key} (the first is on line {first})"),
                ));
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// Adds the platform partitions Anaconda adds for a hybrid BIOS+UEFI x86_64 disk, where the
    /// kickstart has none.
    fn add_platform_parts(parts: &mut Vec<LayoutPart>, ids: &IdSource) -> Result<(), LineError> {
        for (role, mountpoint, size) in [
            (Role::BiosBoot, "biosboot", BIOSBOOT_MIB),
            (Role::Esp, "/boot/efi", ESP_MIB),
        ] {
            if !parts.iter().any(|p| p.role == role) {
                let platform = PartitionRequest {
                    mountpoint: mountpoint.into(),
                    size_mib: Some(size),
                    ..Default::default()
                };
                parts.push(Self::one_part(&platform, ids).map_err(|m| (0, m))?);
            }
        }
        Ok(())
    }

    fn one_part(p: &PartitionRequest, ids: &IdSource) -> Result<LayoutPart, String> {
        let mp = p.mountpoint.as_str();
        if mp.starts_with("pv.") {
            return lvm_pv_part(p, ids);
        }
        if mp.starts_with("raid.") {
            return Err(format!("RAID member `{mp}` is not supported yet"));
        }
        if mp.starts_with("btrfs.") {
            return Err(format!("btrfs volume member `{mp}` is not supported yet"));
        }
        if let Some(t) = p.maxsize_mib
            && let Some(s) = p.size_mib
            && t < s
        {
            return Err(format!("--maxsize={t} is smaller than --size={s}"));
        }
        let fstype = p.fstype.as_deref();
        if mp == "biosboot" || fstype.is_some_and(|t| t.eq_ignore_ascii_case("biosboot")) {
            return Ok(bios_boot_part(p, ids));
        }
        let kind = fs_kind(mp, fstype)?;
        if mp == "swap" || kind == FsKind::Swap {
            return swap_part(p, kind, ids);
        }
        check_mountpoint(mp)?;
        mounted_part(p, kind, ids)
    }

    /// A located error about the filesystem mounted at `mountpoint` (its `part` or `logvol` line).
    pub fn error_at(&self, mountpoint: &str, message: String) -> LayoutError {
        let line = self
            .parts
            .iter()
            .filter(|p| p.fs.as_ref().is_some_and(|f| f.mountpoint == mountpoint))
            .map(|p| p.line)
            .chain(
                self.vgs
                    .iter()
                    .flat_map(|v| &v.lvs)
                    .filter(|l| l.fs.mountpoint == mountpoint)
                    .map(|l| l.line),
            )
            .next()
            .unwrap_or(0);
        LayoutError {
            source_name: self.source_name.clone(),
            line,
            message,
        }
    }

    /// The filesystems to create, in mount order (parents before children).
    pub fn filesystems(&self) -> Vec<&Filesystem> {
        let mut v: Vec<&Filesystem> = self
            .parts
            .iter()
            .filter_map(|p| p.fs.as_ref())
            .chain(self.vgs.iter().flat_map(|g| g.lvs.iter().map(|l| &l.fs)))
            .collect();
        v.sort_by_key(|f| {
            (
                f.kind == FsKind::Swap,
                f.mountpoint.matches('/').count(),
                f.mountpoint.len(),
            )
        });
        v.sort_by_key(|f| f.mountpoint != "/");
        v
    }

    /// The filesystem mounted at `mountpoint`.
    pub fn filesystem(&self, mountpoint: &str) -> Option<&Filesystem> {
        self.filesystems()
            .into_iter()
            .find(|f| f.mountpoint == mountpoint)
    }

    /// The logical volume holding `fs` (by UUID), with its volume group's name.
    pub fn logical_volume(&self, fs: &Filesystem) -> Option<(&LayoutVg, &LayoutLv)> {
        self.vgs.iter().find_map(|g| {
            g.lvs
                .iter()
                .find(|l| l.fs.uuid == fs.uuid && l.fs.mountpoint == fs.mountpoint)
                .map(|l| (g, l))
        })
    }

    /// The largest the root filesystem may become when its size is fixed by the kickstart.
    pub fn fixed_root_bytes(&self) -> Option<u64> {
        if let Some(p) = self.parts.iter().find(|p| p.role == Role::Root) {
            return (!p.grow).then_some(p.min_mib * MIB);
        }
        let lv = self
            .vgs
            .iter()
            .flat_map(|g| &g.lvs)
            .find(|l| l.role == Role::Root)?;
        if lv.grow || lv.percent.is_some() {
            return None;
        }
        lv.size_mib.map(|m| m * MIB)
    }

    /// Sizes and places the partitions. `needs` maps a mount point to the bytes its filesystem
    /// needs for the content; `total_bytes` (`--size`) grows the last `--grow` partition.
    pub fn allocate(
        &self,
        needs: &BTreeMap<String, u64>,
        total_bytes: Option<u64>,
    ) -> Result<DiskPlan, LayoutError> {
        let err = |(line, message): LineError| LayoutError {
            source_name: self.source_name.clone(),
            line,
            message,
        };
        let vg_needs = self.volume_group_needs(needs).map_err(err)?;
        let mut sizes = self
            .parts
            .iter()
            .map(|p| part_size(p, content_need_mib(p, needs, &vg_needs.pv_mib)))
            .collect::<Result<Vec<u64>, LineError>>()
            .map_err(err)?;
        let total_mib = grow_to_total(&self.parts, &mut sizes, total_bytes).map_err(err)?;
        let partitions = self.place_partitions(&sizes);
        let volume_groups = self
            .vgs
            .iter()
            .zip(&vg_needs.lv_bases)
            .map(|(vg, bases)| vg.place(&partitions, bases))
            .collect::<Result<Vec<VolumeGroup>, LineError>>()
            .map_err(err)?;
        Ok(DiskPlan {
            size_bytes: total_mib * MIB,
            sector_size: SECTOR,
            disk_guid: self.disk_guid,
            partitions,
            volume_groups,
        })
    }

    /// What the volume groups need of their PVs, for content needing `needs`.
    fn volume_group_needs(&self, needs: &BTreeMap<String, u64>) -> Result<VgNeeds<'_>, LineError> {
        let mut pv_need: BTreeMap<&str, u64> = BTreeMap::new();
        let mut lv_base: Vec<Vec<LvBase>> = Vec::new();
        for vg in &self.vgs {
            let (bases, min_extents) = vg.minimum(needs)?;
            lv_base.push(bases);
            let members: Vec<&LayoutPart> = vg
                .pvs
                .iter()
                .filter_map(|n| self.parts.iter().find(|p| p.pv.as_deref() == Some(n)))
                .collect();
            let held: u64 = members
                .iter()
                .map(|p| pv_extents(p.min_mib * MIB, vg.extent_size))
                .sum();
            if let Some(grow) = members.iter().rev().find(|p| p.grow)
                && min_extents > held
            {
                let own = pv_extents(grow.min_mib * MIB, vg.extent_size);
                let bytes = (own + min_extents - held) * vg.extent_size + PE_START;
                pv_need.insert(grow.pv.as_deref().unwrap_or_default(), bytes.div_ceil(MIB));
            }
        }
        Ok(VgNeeds {
            pv_mib: pv_need,
            lv_bases: lv_base,
        })
    }

    /// The partitions placed one after the other from [`FIRST_LBA`], `sizes` MiB each.
    fn place_partitions(&self, sizes: &[u64]) -> Vec<Partition> {
        let mut lba = FIRST_LBA;
        let mut partitions = Vec::new();
        for (i, (p, mib)) in self.parts.iter().zip(sizes).enumerate() {
            let sectors = mib * MIB / SECTOR;
            partitions.push(Partition {
                number: i as u32 + 1,
                name: p.name.clone(),
                role: p.role,
                type_guid: p.type_guid.clone(),
                guid: p.guid,
                start_lba: lba,
                sectors,
                attributes: if p.role == Role::BiosBoot { 1 << 2 } else { 0 },
                line: p.line,
                content: self.content(p),
            });
            lba += sectors;
        }
        partitions
    }

    /// What partition `p` holds: its filesystem, its volume group's PV, or GRUB's core.img.
    fn content(&self, p: &LayoutPart) -> Content {
        match (&p.fs, &p.pv) {
            (Some(f), _) => Content::Filesystem(f.clone()),
            (None, Some(pv)) => Content::LvmPv {
                vg: self
                    .vgs
                    .iter()
                    .find(|g| g.pvs.contains(pv))
                    .map(|g| g.name.clone())
                    .unwrap_or_default(),
                pv: pv.clone(),
            },
            (None, None) => Content::BiosBoot,
        }
    }
}

/// What [`Layout::allocate`] works out for the volume groups before sizing the partitions.
struct VgNeeds<'a> {
    /// What each group needs beyond its PVs' minimum sizes, put on its last growable PV: MiB by
    /// PV name.
    pv_mib: BTreeMap<&'a str, u64>,
    /// Each group's logical volume base sizes, in `Layout::vgs` order.
    lv_bases: Vec<Vec<LvBase>>,
}

/// MiB the content of partition `p` needs: its filesystem's share of `needs`, or for a PV its
/// volume group's share of `pv_need`.
fn content_need_mib(
    p: &LayoutPart,
    needs: &BTreeMap<String, u64>,
    pv_need: &BTreeMap<&str, u64>,
) -> u64 {
    match &p.pv {
        Some(n) => pv_need.get(n.as_str()).copied().unwrap_or(0),
        None => {
            p.fs.as_ref()
                .and_then(|f| needs.get(&f.mountpoint))
                .map(|b| b.div_ceil(MIB))
                .unwrap_or(0)
        }
    }
}

/// The size of partition `p` in MiB: its minimum, grown to `need_mib` if it may grow that far.
fn part_size(p: &LayoutPart, need_mib: u64) -> Result<u64, LineError> {
    let mib = p.min_mib;
    if need_mib <= mib {
        return Ok(mib);
    }
    let what =
        p.fs.as_ref()
            .map(|f| f.mountpoint.clone())
            .unwrap_or_else(|| p.name.clone());
    if !p.grow {
        return Err((
            p.line,
            format!(
                "the partition for {what} is {mib} MiB but its content needs about {need_mib} MiB \
                 (use --size={need_mib} or --grow)"
            ),
        ));
    }
    if let Some(max) = p.max_mib
        && need_mib > max
    {
        return Err((
            p.line,
            format!(
                "the partition for {what} may grow to {max} MiB (--maxsize) but its content \
                 needs about {need_mib} MiB"
            ),
        ));
    }
    Ok(need_mib)
}

/// The disk's size in MiB: the partitions, 1 MiB before the first and at least 1 MiB after the
/// last (backup GPT); or `total_bytes` (`--size`), whose room beyond that grows the last
/// `--grow` partition in `sizes` up to its `--maxsize`.
fn grow_to_total(
    parts: &[LayoutPart],
    sizes: &mut [u64],
    total_bytes: Option<u64>,
) -> Result<u64, LineError> {
    let used_mib: u64 = sizes.iter().sum::<u64>() + 2;
    let Some(t) = total_bytes else {
        return Ok(used_mib);
    };
    let t_mib = t / MIB;
    if t_mib < used_mib {
        return Err((
            0,
            format!("--size {t_mib} MiB is too small: the layout needs at least {used_mib} MiB"),
        ));
    }
    let extra = t_mib - used_mib;
    if let Some(i) = parts.iter().rposition(|p| p.grow) {
        sizes[i] = match parts[i].max_mib {
            Some(max) => (sizes[i] + extra).min(max.max(sizes[i])),
            None => sizes[i] + extra,
        };
    }
    Ok(t_mib)
}

/// The disk as it will be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskPlan {
    pub size_bytes: u64,
    pub sector_size: u64,
    pub disk_guid: Uuid,
    pub partitions: Vec<Partition>,
    /// LVM volume groups on `part pv.NN` partitions.
    pub volume_groups: Vec<VolumeGroup>,
}

/// One GPT partition, placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub number: u32,
    pub name: String,
    pub role: Role,
    pub type_guid: String,
    pub guid: Uuid,
    pub start_lba: u64,
    pub sectors: u64,
    /// GPT attribute bits (bit 2 = legacy BIOS bootable).
    pub attributes: u64,
    /// Kickstart line (0 = added by the builder).
    pub line: usize,
    pub content: Content,
}

impl Partition {
    pub fn offset(&self) -> u64 {
        self.start_lba * SECTOR
    }
    pub fn size(&self) -> u64 {
        self.sectors * SECTOR
    }
}

/// What a partition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Content {
    /// Raw GRUB core.img.
    BiosBoot,
    /// A filesystem (or swap) directly in the partition.
    Filesystem(Filesystem),
    /// An LVM physical volume of volume group `vg`.
    LvmPv { vg: String, pv: String },
}

impl DiskPlan {
    /// Every filesystem with the byte range it occupies in the disk image.
    pub fn filesystems(&self) -> Vec<(&Filesystem, u64, u64)> {
        self.partitions
            .iter()
            .filter_map(|p| match &p.content {
                Content::Filesystem(f) => Some((f, p.offset(), p.size())),
                Content::BiosBoot | Content::LvmPv { .. } => None,
            })
            .chain(
                self.volume_groups
                    .iter()
                    .flat_map(|g| g.lvs.iter().map(|l| (&l.filesystem, l.offset, l.size))),
            )
            .collect()
    }

    pub fn partition(&self, role: Role) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.role == role)
    }

    /// The filesystem that holds `path` (the deepest mount point that is a prefix of it).
    pub fn filesystem_for(&self, path: &str) -> Option<&Filesystem> {
        self.filesystems()
            .into_iter()
            .map(|(f, _, _)| f)
            .filter(|f| f.kind != FsKind::Swap && is_under(path, &f.mountpoint))
            .max_by_key(|f| f.mountpoint.len())
    }
}

/// `path` is `mountpoint` or below it.
/// Directories of every OSTree deployment (or of the kernel's API file systems) that no kickstart
/// partition or logical volume can be mounted on.
const DEPLOYMENT_DIRS: &[&str] = &[
    "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/sysroot", "/ostree", "/proc", "/sys",
    "/dev", "/run",
];

pub fn is_under(path: &str, mountpoint: &str) -> bool {
    mountpoint == "/"
        || path == mountpoint
        || (path.starts_with(mountpoint) && path.as_bytes().get(mountpoint.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::request::*;

    pub(super) fn part(
        line: usize,
        mp: &str,
        size: Option<u64>,
        grow: bool,
        fstype: Option<&str>,
    ) -> PartitionRequest {
        PartitionRequest {
            line,
            mountpoint: mp.into(),
            size_mib: size,
            grow,
            fstype: fstype.map(Into::into),
            ..Default::default()
        }
    }

    pub(super) fn req(parts: Vec<PartitionRequest>) -> DiskRequest {
        DiskRequest {
            source_name: "test.ks".into(),
            partitions: parts,
            ..Default::default()
        }
    }

    pub(super) fn ids() -> IdSource {
        IdSource::derived(b"seed")
    }

    #[test]
    fn plain_layout_adds_platform_partitions_in_anaconda_order() {
        let r = req(vec![
            part(3, "/", Some(2000), true, Some("ext4")),
            part(4, "/boot", Some(512), false, None),
            part(5, "swap", Some(64), false, None),
        ]);
        let l = Layout::from_request(&r, &ids()).unwrap();
        let roles: Vec<Role> = l.parts.iter().map(|p| p.role).collect();
        assert_eq!(
            roles,
            [
                Role::BiosBoot,
                Role::Esp,
                Role::Boot,
                Role::Root,
                Role::Swap
            ]
        );
        let plan = l.allocate(&BTreeMap::new(), None).unwrap();
        let p: Vec<(u64, u64)> = plan
            .partitions
            .iter()
            .map(|p| (p.start_lba, p.sectors))
            .collect();
        assert_eq!(
            p,
            [
                (2048, 2048),
                (4096, 127 * 2048),
                (264192, 512 * 2048),
                (264192 + 512 * 2048, 2000 * 2048),
                (264192 + 2512 * 2048, 64 * 2048)
            ]
        );
        assert_eq!(plan.size_bytes, (1 + 1 + 127 + 512 + 2000 + 64 + 1) * MIB);
        assert_eq!(plan.partitions[0].attributes, 4);
        assert_eq!(
            plan.filesystem_for("/boot/efi/EFI").unwrap().mountpoint,
            "/boot/efi"
        );
        assert_eq!(
            plan.filesystem_for("/boot/grub").unwrap().mountpoint,
            "/boot"
        );
        assert_eq!(plan.filesystem_for("/bootx").unwrap().mountpoint, "/");
    }

    #[test]
    fn derived_ids_are_stable_and_random_ids_differ() {
        let r = req(vec![part(1, "/", None, true, None)]);
        let a = Layout::from_request(&r, &ids()).unwrap();
        let b = Layout::from_request(&r, &ids()).unwrap();
        assert_eq!(a, b);
        let c = Layout::from_request(&r, &IdSource::Random).unwrap();
        assert_ne!(a.disk_guid, c.disk_guid);
        let esp = a.filesystem("/boot/efi").unwrap();
        assert!(esp.fat_volume_id().is_some(), "{}", esp.uuid);
        assert_eq!(esp.uuid.len(), 9);
    }

    #[test]
    fn grow_takes_content_needs_and_cli_size() {
        let r = req(vec![
            part(1, "/", Some(100), true, None),
            part(2, "/boot", Some(300), false, None),
        ]);
        let l = Layout::from_request(&r, &ids()).unwrap();
        let needs = BTreeMap::from([("/".to_string(), 700 * MIB + 1)]);
        let plan = l.allocate(&needs, None).unwrap();
        let root = plan.partition(Role::Root).unwrap();
        assert_eq!(root.sectors, 701 * 2048);
        let plan = l.allocate(&needs, Some(2048 * MIB)).unwrap();
        assert_eq!(plan.size_bytes, 2048 * MIB);
        let root = plan.partition(Role::Root).unwrap();
        assert_eq!(root.start_lba * SECTOR + root.size(), 2047 * MIB);
        let e = l.allocate(&needs, Some(500 * MIB)).unwrap_err();
        assert!(e.to_string().contains("too small"), "{e}");
    }

    #[test]
    fn fixed_partition_too_small_says_how_much_is_needed() {
        let r = req(vec![part(7, "/", Some(100), false, None)]);
        let l = Layout::from_request(&r, &ids()).unwrap();
        let e = l
            .allocate(&BTreeMap::from([("/".to_string(), 250 * MIB)]), None)
            .unwrap_err();
        assert_eq!(e.line, 7);
        let msg = e.to_string();
        assert!(msg.starts_with("test.ks:7: "), "{msg}");
        assert!(msg.contains("250 MiB"), "{msg}");
    }

    #[test]
    fn bad_requests_name_the_line() {
        let cases: Vec<(DiskRequest, usize, &str)> = vec![
            (
                req(vec![
                    part(2, "/", None, true, None),
                    part(5, "/", None, false, None),
                ]),
                5,
                "two partitions for /",
            ),
            (
                req(vec![part(3, "/", None, true, Some("reiserfs"))]),
                3,
                "unknown fstype `reiserfs`",
            ),
            (
                req(vec![
                    part(3, "/", None, true, None),
                    part(4, "/boot", Some(200), false, Some("xfs")),
                ]),
                4,
                "xfs on /boot needs at least 300 MiB (mkfs.xfs refuses smaller filesystems); the partition is 200 MiB",
            ),
            (
                req(vec![
                    part(1, "/", None, true, None),
                    part(6, "pv.01", None, true, None),
                ]),
                6,
                "`pv.01` is not in any volume group",
            ),
            (
                req(vec![part(1, "/boot", None, false, None)]),
                0,
                "no partition for /",
            ),
            (
                req(vec![
                    part(1, "/", None, true, None),
                    part(3, "/usr", Some(2000), false, None),
                ]),
                3,
                "/usr cannot be a separate filesystem: /usr belongs to the read-only OSTree deployment",
            ),
            (
                req(vec![
                    part(1, "/", None, true, None),
                    part(4, "/etc/x", Some(20), false, None),
                ]),
                4,
                "/etc/x cannot be a separate filesystem: /etc belongs",
            ),
            (
                req(vec![
                    part(1, "/", Some(9_000_000), false, None),
                    part(2, "/var", Some(9_000_000), false, None),
                ]),
                2,
                "more than the largest disk image this builder writes (16 TiB)",
            ),
            (
                req(vec![
                    part(1, "/", None, true, None),
                    part(2, "/boot/efi", Some(10), false, None),
                ]),
                2,
                "at least 36 MiB",
            ),
            (
                req(vec![
                    part(1, "/", None, true, None),
                    part(8, "/boot/efi", None, false, Some("ext4")),
                ]),
                8,
                "must be vfat",
            ),
            (
                req(vec![part(9, "home", None, true, None)]),
                9,
                "not a mount point",
            ),
        ];
        for (r, line, text) in cases {
            let e = Layout::from_request(&r, &ids()).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().contains(text), "{e} does not contain {text}");
        }
        let mut r = req(vec![part(1, "/", None, true, None)]);
        r.unsupported.push(Located {
            line: 12,
            value: "`raid`".into(),
        });
        let e = Layout::from_request(&r, &ids()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.ks:12: `raid` is not supported: this builder writes no RAID arrays or btrfs volumes"
        );
    }

    #[test]
    fn autopart_plain_and_reqpart() {
        let mut r = req(vec![]);
        r.autopart = Some(AutopartRequest {
            line: 2,
            kind: Some("plain".into()),
            fstype: Some("btrfs".into()),
            noswap: false,
        });
        let l = Layout::from_request(&r, &ids()).unwrap();
        let mps: Vec<&str> = l
            .filesystems()
            .iter()
            .map(|f| f.mountpoint.as_str())
            .collect();
        assert_eq!(mps, ["/", "/boot", "/boot/efi"]);
        assert_eq!(l.filesystem("/").unwrap().kind, FsKind::Btrfs);
        r.autopart.as_mut().unwrap().kind = Some("lvm".into());
        assert!(
            Layout::from_request(&r, &ids())
                .unwrap_err()
                .to_string()
                .contains("test.ks:2: autopart --type=lvm")
        );

        let mut r = req(vec![part(3, "/", None, true, None)]);
        r.reqpart = Some(ReqpartRequest {
            line: 1,
            add_boot: true,
        });
        let l = Layout::from_request(&r, &ids()).unwrap();
        assert!(l.filesystem("/boot").is_some());
        assert_eq!(l.parts.len(), 4);
    }
}
