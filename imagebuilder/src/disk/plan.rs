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

use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::lvm::{self, PE_START};
use super::request::{DiskRequest, LogVolRequest, PartitionRequest, VolGroupRequest};

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

/// GPT partition type GUIDs used by the builder.
pub mod types {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pv: Option<String>,
}

/// A validated volume group, not yet sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutVg {
    pub line: usize,
    pub name: String,
    /// LVM id (32 characters, undashed).
    pub id: String,
    /// Bytes per extent.
    pub extent_size: u64,
    /// Member `pv.NN` names, in `volgroup` order.
    pub pvs: Vec<String>,
    pub reserved_mib: u64,
    pub reserved_percent: u64,
    pub lvs: Vec<LayoutLv>,
}

/// A validated logical volume, not yet sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutLv {
    pub line: usize,
    pub name: String,
    pub id: String,
    pub role: Role,
    pub fs: Filesystem,
    pub size_mib: Option<u64>,
    pub percent: Option<u64>,
    pub grow: bool,
    pub max_mib: Option<u64>,
}

/// A validated layout: the partitions in disk order and the volume groups on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

impl Layout {
    /// Validates the request and decides roles, filesystems, labels and ids.
    pub fn from_request(req: &DiskRequest, ids: &IdSource) -> Result<Layout, LayoutError> {
        let err = |line: usize, message: String| LayoutError {
            source_name: req.source_name.clone(),
            line,
            message,
        };
        if let Some(u) = req.unsupported.first() {
            return Err(err(
                u.line,
                format!(
                    "{} is not supported yet (RAID and btrfs volumes are a later issue)",
                    u.value
                ),
            ));
        }
        let mut wanted: Vec<PartitionRequest> = req.partitions.clone();
        if let Some(auto) = &req.autopart {
            if let Some(p) = req.partitions.first() {
                return Err(err(
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
                    return Err(err(
                        auto.line,
                        format!("autopart --type={other} is not supported yet; use --type=plain"),
                    ));
                }
                None => {
                    return Err(err(
                        auto.line,
                        "autopart without --type means Anaconda's automatic LVM layout, which is not supported; \
                         use autopart --type=plain or write part/volgroup/logvol lines".into(),
                    ));
                }
            }
            for (mp, size, grow) in [("/boot", Some(BOOT_MIB), false), ("/", None, true)] {
                wanted.push(PartitionRequest {
                    line: auto.line,
                    mountpoint: mp.into(),
                    fstype: auto.fstype.clone(),
                    size_mib: size,
                    grow,
                    ..Default::default()
                });
            }
        }
        if let Some(rp) = &req.reqpart {
            if rp.add_boot && !wanted.iter().any(|p| p.mountpoint == "/boot") {
                wanted.push(PartitionRequest {
                    line: rp.line,
                    mountpoint: "/boot".into(),
                    size_mib: Some(BOOT_MIB),
                    ..Default::default()
                });
            }
        }

        let mut parts: Vec<LayoutPart> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for p in &wanted {
            let part = Self::one_part(p, ids).map_err(|m| err(p.line, m))?;
            let key = match part.role {
                Role::Swap => format!("swap#{}", parts.len()),
                Role::BiosBoot => "biosboot".into(),
                Role::LvmPv => part.pv.clone().unwrap_or_default(),
                _ => part
                    .fs
                    .as_ref()
                    .map(|f| f.mountpoint.clone())
                    .unwrap_or_default(),
            };
            if let Some(first) = seen.insert(key.clone(), p.line) {
                let what = if key == "biosboot" {
                    "biosboot".to_string()
                } else {
                    key
                };
                return Err(err(
                    p.line,
                    format!("two partitions for {what} (the first is on line {first})"),
                ));
            }
            parts.push(part);
        }
        let vgs = Self::volume_groups(req, ids, &parts, &mut seen)?;
        let lv_root = vgs
            .iter()
            .flat_map(|v| &v.lvs)
            .find(|l| l.role == Role::Root);
        if let Some(root) = lv_root
            && !parts.iter().any(|p| p.role == Role::Boot)
        {
            return Err(err(
                root.line,
                "/ is on a logical volume, so /boot needs its own partition (add `part /boot`): \
                 the GRUB this builder installs does not read LVM"
                    .into(),
            ));
        }
        if lv_root.is_none() && !parts.iter().any(|p| p.role == Role::Root) {
            return Err(err(
                0,
                "no partition for / (add `part / --grow` or `autopart --type=plain`)".into(),
            ));
        }
        // The platform partitions Anaconda adds for a hybrid BIOS+UEFI x86_64 disk.
        if !parts.iter().any(|p| p.role == Role::BiosBoot) {
            let bios = PartitionRequest {
                mountpoint: "biosboot".into(),
                size_mib: Some(BIOSBOOT_MIB),
                ..Default::default()
            };
            parts.push(Self::one_part(&bios, ids).map_err(|m| err(0, m))?);
        }
        if !parts.iter().any(|p| p.role == Role::Esp) {
            let esp = PartitionRequest {
                mountpoint: "/boot/efi".into(),
                size_mib: Some(ESP_MIB),
                ..Default::default()
            };
            parts.push(Self::one_part(&esp, ids).map_err(|m| err(0, m))?);
        }
        // Disk order: BIOS boot, ESP, /boot, then the kickstart's order.
        let rank = |r: Role| match r {
            Role::BiosBoot => 0,
            Role::Esp => 1,
            Role::Boot => 2,
            _ => 3,
        };
        parts.sort_by_key(|p| rank(p.role));
        Ok(Layout {
            source_name: req.source_name.clone(),
            disk_guid: ids.uuid("disk"),
            parts,
            vgs,
        })
    }

    /// Validates `volgroup` and `logvol` lines against the `part pv.NN` partitions.
    fn volume_groups(
        req: &DiskRequest,
        ids: &IdSource,
        parts: &[LayoutPart],
        seen: &mut BTreeMap<String, usize>,
    ) -> Result<Vec<LayoutVg>, LayoutError> {
        let err = |line: usize, message: String| LayoutError {
            source_name: req.source_name.clone(),
            line,
            message,
        };
        let mut vgs: Vec<LayoutVg> = Vec::new();
        let mut owner: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        for v in &req.volgroups {
            let vg = Self::one_vg(v, ids, parts, &mut owner).map_err(|m| err(v.line, m))?;
            if let Some(first) = vgs.iter().find(|x| x.name == vg.name) {
                return Err(err(
                    v.line,
                    format!(
                        "two volume groups named {} (the first is on line {})",
                        vg.name, first.line
                    ),
                ));
            }
            vgs.push(vg);
        }
        if let Some(p) = parts
            .iter()
            .find(|p| p.pv.as_deref().is_some_and(|n| !owner.contains_key(n)))
        {
            return Err(err(
                p.line,
                format!(
                    "physical volume `{}` is not in any volume group (add it to a `volgroup` line)",
                    p.pv.as_deref().unwrap_or_default()
                ),
            ));
        }
        for l in &req.logvols {
            let lv = Self::one_lv(l, ids, req, &vgs).map_err(|m| err(l.line, m))?;
            let vg = vgs
                .iter_mut()
                .find(|v| v.name == l.vgname)
                .expect("checked by one_lv");
            if let Some(first) = vg.lvs.iter().find(|x| x.name == lv.name) {
                return Err(err(
                    l.line,
                    format!(
                        "two logical volumes named {} in volume group {} (the first is on line {})",
                        lv.name, vg.name, first.line
                    ),
                ));
            }
            let key = match lv.role {
                Role::Swap => format!("swap#lv{}", l.line),
                _ => lv.fs.mountpoint.clone(),
            };
            if let Some(first) = seen.insert(key.clone(), l.line) {
                return Err(err(
                    l.line,
                    format!("two partitions or volumes for {key} (the first is on line {first})"),
                ));
            }
            vg.lvs.push(lv);
        }
        for vg in &vgs {
            let total: u64 = vg.lvs.iter().filter_map(|l| l.percent).sum();
            if total > 100 {
                let last = vg
                    .lvs
                    .iter()
                    .rfind(|l| l.percent.is_some())
                    .map_or(0, |l| l.line);
                return Err(err(
                    last,
                    format!(
                        "the --percent values of volume group {} add up to {total}%, more than 100%",
                        vg.name
                    ),
                ));
            }
        }
        Ok(vgs)
    }

    fn one_vg<'a>(
        v: &'a VolGroupRequest,
        ids: &IdSource,
        parts: &[LayoutPart],
        owner: &mut BTreeMap<&'a str, (&'a str, usize)>,
    ) -> Result<LayoutVg, String> {
        if v.preexist {
            return Err(format!(
                "volgroup {} --useexisting/--noformat: a new image has no existing volume group",
                v.name
            ));
        }
        if !lvm::valid_name(&v.name) {
            return Err(format!(
                "`{}` is not a valid volume group name (letters, digits, `+_.-`)",
                v.name
            ));
        }
        if v.pvs.is_empty() {
            return Err(format!("volume group {} has no physical volumes", v.name));
        }
        for pv in &v.pvs {
            if !parts.iter().any(|p| p.pv.as_deref() == Some(pv.as_str())) {
                return Err(format!(
                    "volume group {} names `{pv}`, which is not a `part {pv}` line",
                    v.name
                ));
            }
            if let Some((other, line)) = owner.insert(pv, (&v.name, v.line)) {
                return Err(format!(
                    "`{pv}` is already in volume group {other} (line {line})"
                ));
            }
        }
        let extent_size = match v.pesize_kib {
            // pykickstart's default is 0: LVM's default.
            None | Some(0) => lvm::DEFAULT_EXTENT,
            Some(k) if (4..=16 << 20).contains(&k) && k.is_power_of_two() => k * 1024,
            Some(k) => {
                return Err(format!(
                    "--pesize={k}: the extent size must be a power of two between 4 and 16777216 KiB"
                ));
            }
        };
        if let Some(p) = v.reserved_percent
            && p > 99
        {
            return Err(format!("--reserved-percent={p} must be between 1 and 99"));
        }
        Ok(LayoutVg {
            line: v.line,
            name: v.name.clone(),
            id: ids.lvm_id(&format!("vg:{}", v.name)),
            extent_size,
            pvs: v.pvs.clone(),
            reserved_mib: v.reserved_mib.unwrap_or(0),
            reserved_percent: v.reserved_percent.unwrap_or(0),
            lvs: Vec::new(),
        })
    }

    fn one_lv(
        l: &LogVolRequest,
        ids: &IdSource,
        req: &DiskRequest,
        vgs: &[LayoutVg],
    ) -> Result<LayoutLv, String> {
        if l.thin || l.thin_pool {
            if l.thin
                && let Some(pool) = &l.pool_name
                && !req
                    .logvols
                    .iter()
                    .any(|x| x.thin_pool && x.vgname == l.vgname && &x.name == pool)
            {
                return Err(format!(
                    "thin volume {} names pool `{pool}`, but no `logvol --thinpool --name={pool} \
                     --vgname={}` exists",
                    l.name, l.vgname
                ));
            }
            return Err(
                "thin provisioning (`logvol --thinpool`/`--thin`) is not supported; use plain \
                 logical volumes (space left free in the volume group stays free, e.g. for \
                 docker-storage-setup's thin pool)"
                    .into(),
            );
        }
        if l.preexist {
            return Err(
                "logvol --useexisting/--noformat: a new image has no existing volumes".into(),
            );
        }
        if l.encrypted {
            return Err("logvol --encrypted is not supported".into());
        }
        if !vgs.iter().any(|v| v.name == l.vgname) {
            return Err(format!(
                "logvol {} names volume group `{}`, which no `volgroup` line defines",
                l.mountpoint, l.vgname
            ));
        }
        if !lvm::valid_name(&l.name) {
            return Err(format!(
                "`{}` is not a valid logical volume name (letters, digits, `+_.-`)",
                l.name
            ));
        }
        match l.percent {
            Some(0) => return Err("--percent must be at least 1".into()),
            Some(p) if p > 100 => return Err(format!("--percent={p} is more than 100")),
            _ => {}
        }
        if l.size_mib.is_none() && l.percent.is_none() && !l.grow {
            return Err("logvol needs --size, --percent or --grow".into());
        }
        if is_under(&l.mountpoint, "/boot") {
            return Err(format!(
                "{} cannot be on a logical volume: the GRUB this builder installs does not read \
                 LVM (use `part {}`)",
                l.mountpoint, l.mountpoint
            ));
        }
        let as_part = PartitionRequest {
            line: l.line,
            mountpoint: l.mountpoint.clone(),
            fstype: l.fstype.clone(),
            size_mib: l.size_mib,
            grow: l.grow,
            maxsize_mib: l.maxsize_mib,
            label: l.label.clone(),
            fsoptions: l.fsoptions.clone(),
        };
        if as_part.mountpoint.starts_with("pv.") || as_part.mountpoint == "biosboot" {
            return Err(format!("`{}` cannot be a logical volume", l.mountpoint));
        }
        let part = Self::one_part(&as_part, ids)?;
        let mut fs = part
            .fs
            .ok_or_else(|| format!("`{}` needs a filesystem", l.mountpoint))?;
        if part.role == Role::Swap {
            fs.uuid = ids
                .uuid(&format!("fs:lv:{}/{}", l.vgname, l.name))
                .to_string();
        }
        Ok(LayoutLv {
            line: l.line,
            name: l.name.clone(),
            id: ids.lvm_id(&format!("lv:{}/{}", l.vgname, l.name)),
            role: part.role,
            fs,
            size_mib: l.size_mib,
            percent: l.percent,
            grow: l.grow,
            max_mib: l.maxsize_mib,
        })
    }

    fn one_part(p: &PartitionRequest, ids: &IdSource) -> Result<LayoutPart, String> {
        let mp = p.mountpoint.as_str();
        if mp.starts_with("pv.") {
            if let Some(t) = p.fstype.as_deref()
                && !t.eq_ignore_ascii_case("lvmpv")
            {
                return Err(format!(
                    "`{mp}` is an LVM physical volume, not --fstype={t}"
                ));
            }
            return Ok(LayoutPart {
                line: p.line,
                role: Role::LvmPv,
                name: mp.chars().take(36).collect(),
                type_guid: types::LVM.into(),
                guid: ids.uuid(&format!("part:{mp}")),
                fs: None,
                min_mib: p
                    .size_mib
                    .unwrap_or(if p.grow { 1 } else { DEFAULT_PART_MIB })
                    .max(1),
                grow: p.grow,
                max_mib: p.maxsize_mib,
                pv: Some(mp.to_string()),
            });
        }
        if mp.starts_with("raid.") {
            return Err(format!("RAID member `{mp}` is not supported yet"));
        }
        if mp.starts_with("btrfs.") {
            return Err(format!("btrfs volume member `{mp}` is not supported yet"));
        }
        let fstype = p.fstype.as_deref();
        let is_bios =
            mp == "biosboot" || fstype.is_some_and(|t| t.eq_ignore_ascii_case("biosboot"));
        if let Some(t) = p.maxsize_mib
            && let Some(s) = p.size_mib
            && t < s
        {
            return Err(format!("--maxsize={t} is smaller than --size={s}"));
        }
        let label_for = |kind: FsKind| -> Result<Option<String>, String> {
            match &p.label {
                Some(l) if l.len() > kind.max_label_len() => Err(format!(
                    "label `{l}` is longer than {} characters, the limit for {}",
                    kind.max_label_len(),
                    kind.fstab_type()
                )),
                Some(l) => Ok(Some(l.clone())),
                None => Ok(None),
            }
        };
        let size = |default: u64| {
            p.size_mib
                .unwrap_or(if p.grow { 1 } else { default })
                .max(1)
        };
        if is_bios {
            return Ok(LayoutPart {
                line: p.line,
                role: Role::BiosBoot,
                name: "BIOS-BOOT".into(),
                type_guid: types::BIOS_BOOT.into(),
                guid: ids.uuid("part:biosboot"),
                fs: None,
                min_mib: size(BIOSBOOT_MIB),
                grow: false,
                max_mib: None,
                pv: None,
            });
        }
        let kind = match fstype {
            None if mp == "swap" => FsKind::Swap,
            None if mp == "/boot/efi" => FsKind::Vfat,
            // Anaconda's Fedora default is xfs; ext4 is written without root or a loop device.
            None => FsKind::Ext4,
            Some(t) => match parse_fstype(t) {
                Some(Ok(k)) => k,
                Some(Err("lvmpv")) => {
                    return Err(format!(
                        "--fstype={t} on {mp}: LVM physical volumes are `part pv.NN` lines"
                    ));
                }
                Some(Err(_)) => return Err(format!("--fstype={t} is not a valid fstype for {mp}")),
                None => {
                    return Err(format!(
                        "unknown fstype `{t}` (supported: ext4, ext3, xfs, vfat, efi, biosboot, btrfs, swap)"
                    ));
                }
            },
        };
        if mp == "swap" || kind == FsKind::Swap {
            if mp != "swap" || kind != FsKind::Swap {
                return Err(format!(
                    "swap must be `part swap` (got {mp} with --fstype={})",
                    kind.fstab_type()
                ));
            }
            let n = p.line;
            return Ok(LayoutPart {
                line: p.line,
                role: Role::Swap,
                name: "swap".into(),
                type_guid: types::SWAP.into(),
                guid: ids.uuid(&format!("part:swap:{n}")),
                fs: Some(Filesystem {
                    kind,
                    mountpoint: "swap".into(),
                    label: label_for(kind)?,
                    uuid: ids.uuid(&format!("fs:swap:{n}")).to_string(),
                    options: p.fsoptions.clone().unwrap_or_else(|| "defaults".into()),
                }),
                min_mib: size(DEFAULT_PART_MIB),
                grow: p.grow,
                max_mib: p.maxsize_mib,
                pv: None,
            });
        }
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
        let (role, name, type_guid) = match mp {
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
        };
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
        let min_mib = size(if role == Role::Esp {
            ESP_MIB
        } else {
            DEFAULT_PART_MIB
        });
        if role == Role::Esp && min_mib < ESP_MIN_MIB {
            return Err(format!(
                "the EFI system partition must be at least {ESP_MIN_MIB} MiB for FAT32 (got {min_mib} MiB)"
            ));
        }
        let xfs_min_mib = super::xfs::MIN_BYTES / MIB;
        if kind == FsKind::Xfs
            && min_mib < xfs_min_mib
            && (!p.grow || p.maxsize_mib.is_some_and(|m| m < xfs_min_mib))
        {
            return Err(format!(
                "xfs on {mp} needs at least {xfs_min_mib} MiB (mkfs.xfs refuses smaller filesystems); \
                 the partition is {min_mib} MiB"
            ));
        }
        let uuid = if kind == FsKind::Vfat {
            ids.fat_id(&format!("fs:{mp}"))
        } else {
            ids.uuid(&format!("fs:{mp}")).to_string()
        };
        let default_label = match role {
            Role::Esp => Some("EFI-SYSTEM".to_string()),
            _ => None,
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
                label: label_for(kind)?.or(default_label),
                uuid,
                options: p.fsoptions.clone().unwrap_or_else(|| match role {
                    Role::Esp => "umask=0077,shortname=winnt".into(),
                    _ => "defaults".into(),
                }),
            }),
            min_mib,
            grow: p.grow,
            max_mib: p.maxsize_mib,
            pv: None,
        })
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
        let err = |line: usize, message: String| LayoutError {
            source_name: self.source_name.clone(),
            line,
            message,
        };
        // What each volume group needs, put on its last growable PV.
        let mut pv_need: BTreeMap<&str, u64> = BTreeMap::new();
        let mut lv_base: Vec<Vec<LvBase>> = Vec::new();
        for vg in &self.vgs {
            let (bases, min_extents) = vg.minimum(needs).map_err(|(l, m)| err(l, m))?;
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
        let mut sizes = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            let need_mib = match &p.pv {
                Some(n) => pv_need.get(n.as_str()).copied().unwrap_or(0),
                None => {
                    p.fs.as_ref()
                        .and_then(|f| needs.get(&f.mountpoint))
                        .map(|b| b.div_ceil(MIB))
                        .unwrap_or(0)
                }
            };
            let what =
                p.fs.as_ref()
                    .map(|f| f.mountpoint.clone())
                    .unwrap_or_else(|| p.name.clone());
            let mut mib = p.min_mib;
            if need_mib > mib {
                if !p.grow {
                    return Err(err(
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
                    return Err(err(
                        p.line,
                        format!(
                            "the partition for {what} may grow to {max} MiB (--maxsize) but its content \
                             needs about {need_mib} MiB"
                        ),
                    ));
                }
                mib = need_mib;
            }
            sizes.push(mib);
        }
        // 1 MiB before the first partition, at least 1 MiB after the last (backup GPT).
        let used_mib: u64 = sizes.iter().sum::<u64>() + 2;
        let mut total_mib = used_mib;
        if let Some(t) = total_bytes {
            let t_mib = t / MIB;
            if t_mib < used_mib {
                return Err(err(
                    0,
                    format!(
                        "--size {t_mib} MiB is too small: the layout needs at least {used_mib} MiB"
                    ),
                ));
            }
            let extra = t_mib - used_mib;
            if let Some(i) = self.parts.iter().rposition(|p| p.grow) {
                let p = &self.parts[i];
                let grown = match p.max_mib {
                    Some(max) => (sizes[i] + extra).min(max.max(sizes[i])),
                    None => sizes[i] + extra,
                };
                sizes[i] = grown;
            }
            total_mib = t_mib;
        }
        let mut lba = FIRST_LBA;
        let mut partitions = Vec::new();
        for (i, (p, mib)) in self.parts.iter().zip(&sizes).enumerate() {
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
                content: match (&p.fs, &p.pv) {
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
                },
            });
            lba += sectors;
        }
        let mut volume_groups = Vec::new();
        for (vg, bases) in self.vgs.iter().zip(&lv_base) {
            volume_groups.push(vg.place(&partitions, bases).map_err(|(l, m)| err(l, m))?);
        }
        Ok(DiskPlan {
            size_bytes: total_mib * MIB,
            sector_size: SECTOR,
            disk_guid: self.disk_guid,
            partitions,
            volume_groups,
        })
    }
}

/// Extents a PV of `bytes` holds.
fn pv_extents(bytes: u64, extent_size: u64) -> u64 {
    bytes.saturating_sub(PE_START) / extent_size
}

/// An LV's size before the VG's size is known.
#[derive(Debug, Clone, Copy)]
enum LvBase {
    /// A fixed number of extents (possibly grown later with `--grow`).
    Extents(u64),
    /// `--percent` of the VG, but at least this many extents for the content.
    Percent(u64, u64),
}

type LineError = (usize, String);

impl LayoutVg {
    fn extents_of(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.extent_size)
    }

    fn reserved(&self, total: u64) -> u64 {
        self.extents_of(self.reserved_mib * MIB) + (total * self.reserved_percent).div_ceil(100)
    }

    /// Each LV's base size, and the fewest extents the VG needs to hold them.
    fn minimum(&self, needs: &BTreeMap<String, u64>) -> Result<(Vec<LvBase>, u64), LineError> {
        let mut bases = Vec::new();
        let mut fixed = 0;
        for lv in &self.lvs {
            let need = needs
                .get(&lv.fs.mountpoint)
                .map(|b| b.div_ceil(MIB))
                .unwrap_or(0);
            if let Some(p) = lv.percent {
                bases.push(LvBase::Percent(p, self.extents_of(need * MIB)));
                continue;
            }
            let mut mib = lv.size_mib.unwrap_or(1);
            if need > mib {
                if !lv.grow {
                    return Err((
                        lv.line,
                        format!(
                            "the logical volume for {} is {mib} MiB but its content needs about \
                             {need} MiB (use --size={need} or --grow)",
                            lv.fs.mountpoint
                        ),
                    ));
                }
                if let Some(max) = lv.max_mib
                    && need > max
                {
                    return Err((
                        lv.line,
                        format!(
                            "the logical volume for {} may grow to {max} MiB (--maxsize) but its \
                             content needs about {need} MiB",
                            lv.fs.mountpoint
                        ),
                    ));
                }
                mib = need;
            }
            let e = self.extents_of(mib * MIB);
            fixed += e;
            bases.push(LvBase::Extents(e));
        }
        let fits = |t: u64| {
            let pct: u64 = bases
                .iter()
                .map(|b| match b {
                    LvBase::Percent(p, need) => (t * p / 100).max(*need),
                    LvBase::Extents(_) => 0,
                })
                .sum();
            fixed + pct + self.reserved(t) <= t
        };
        let pct_sum: u64 = self.lvs.iter().filter_map(|l| l.percent).sum();
        let room = 100u64.saturating_sub(pct_sum + self.reserved_percent);
        let mut t = if room == 0 {
            fixed + self.extents_of(self.reserved_mib * MIB)
        } else {
            ((fixed + self.extents_of(self.reserved_mib * MIB)) * 100).div_ceil(room)
        };
        for b in &bases {
            if let LvBase::Percent(p, need) = b {
                t = t.max((need * 100).div_ceil(*p));
            }
        }
        let mut tries = 0;
        while !fits(t) && tries < 1000 {
            t += 1;
            tries += 1;
        }
        Ok((bases, t.max(1)))
    }

    /// Sizes and places the LVs on the placed PV partitions.
    fn place(&self, partitions: &[Partition], bases: &[LvBase]) -> Result<VolumeGroup, LineError> {
        let mut pvs = Vec::new();
        for name in &self.pvs {
            let part = partitions
                .iter()
                .find(|p| matches!(&p.content, Content::LvmPv { pv, .. } if pv == name))
                .ok_or_else(|| (self.line, format!("no partition for `{name}`")))?;
            let pe_count = pv_extents(part.size(), self.extent_size);
            if pe_count == 0 {
                return Err((
                    part.line,
                    format!(
                        "`{name}` ({} MiB) is too small for one {} KiB extent after LVM's 1 MiB header",
                        part.size() / MIB,
                        self.extent_size / 1024
                    ),
                ));
            }
            pvs.push(PhysicalVolume {
                name: name.clone(),
                partition: part.number,
                id: String::new(),
                offset: part.offset(),
                size: part.size(),
                pe_count,
            });
        }
        let total: u64 = pvs.iter().map(|p| p.pe_count).sum();
        let reserved = self.reserved(total);
        let mut extents: Vec<u64> = bases
            .iter()
            .map(|b| match b {
                LvBase::Extents(e) => *e,
                LvBase::Percent(p, need) => (total * p / 100).max(*need),
            })
            .collect();
        let mut used = reserved;
        for (lv, e) in self.lvs.iter().zip(&extents) {
            used += e;
            if used > total {
                let all: u64 = reserved + extents.iter().sum::<u64>();
                return Err((
                    lv.line,
                    format!(
                        "the logical volumes of volume group {} need {} MiB but its physical volumes \
                         hold {} MiB: {} MiB too much",
                        self.name,
                        all * self.extent_size / MIB,
                        total * self.extent_size / MIB,
                        (all - total) * self.extent_size / MIB
                    ),
                ));
            }
        }
        // --grow LVs share what is left, up to their --maxsize.
        loop {
            let free = total - used;
            let growing: Vec<usize> = (0..self.lvs.len())
                .filter(|&i| {
                    let lv = &self.lvs[i];
                    lv.grow
                        && lv.percent.is_none()
                        && lv
                            .max_mib
                            .is_none_or(|m| extents[i] < self.extents_of(m * MIB))
                })
                .collect();
            if free == 0 || growing.is_empty() {
                break;
            }
            let share = (free / growing.len() as u64).max(1);
            for i in growing {
                let cap = self.lvs[i]
                    .max_mib
                    .map_or(u64::MAX, |m| self.extents_of(m * MIB));
                let add = share.min(cap - extents[i]).min(total - used);
                extents[i] += add;
                used += add;
            }
        }
        // First fit, in kickstart order; an LV stays on one PV (one linear segment).
        let mut next: Vec<u64> = vec![0; pvs.len()];
        let mut lvs = Vec::new();
        for (lv, e) in self.lvs.iter().zip(&extents) {
            let Some(i) = (0..pvs.len()).find(|&i| pvs[i].pe_count - next[i] >= *e) else {
                return Err((
                    lv.line,
                    format!(
                        "logical volume {} ({} MiB) does not fit on one physical volume of {}: \
                         volumes spanning several PVs are not supported",
                        lv.name,
                        e * self.extent_size / MIB,
                        self.name
                    ),
                ));
            };
            lvs.push(LogicalVolume {
                line: lv.line,
                name: lv.name.clone(),
                id: lv.id.clone(),
                pv: i,
                start_extent: next[i],
                extents: *e,
                offset: pvs[i].offset + PE_START + next[i] * self.extent_size,
                size: e * self.extent_size,
                filesystem: lv.fs.clone(),
            });
            next[i] += e;
        }
        for (i, pv) in pvs.iter_mut().enumerate() {
            pv.id = self.pv_id(i);
        }
        Ok(VolumeGroup {
            line: self.line,
            name: self.name.clone(),
            id: self.id.clone(),
            extent_size: self.extent_size,
            total_extents: total,
            free_extents: total - extents.iter().sum::<u64>(),
            pvs,
            lvs,
        })
    }

    fn pv_id(&self, i: usize) -> String {
        let seed: [u8; 32] = Sha256::digest(format!("{}\0pv{i}", self.id).as_bytes()).into();
        lvm::lvm_id(&seed)
    }
}

/// A volume group as placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeGroup {
    /// The `volgroup` line.
    pub line: usize,
    pub name: String,
    /// LVM id (undashed).
    pub id: String,
    /// Bytes per extent.
    pub extent_size: u64,
    pub total_extents: u64,
    /// Extents in no LV (left for later use, e.g. docker-storage-setup).
    pub free_extents: u64,
    pub pvs: Vec<PhysicalVolume>,
    pub lvs: Vec<LogicalVolume>,
}

/// One PV of a volume group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PhysicalVolume {
    /// Kickstart name (`pv.01`).
    pub name: String,
    /// GPT partition number.
    pub partition: u32,
    pub id: String,
    /// Byte offset and size of the partition in the image.
    pub offset: u64,
    pub size: u64,
    pub pe_count: u64,
}

/// One linear LV, placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalVolume {
    pub line: usize,
    pub name: String,
    pub id: String,
    /// Index into the VG's `pvs`.
    pub pv: usize,
    pub start_extent: u64,
    pub extents: u64,
    /// Byte offset of the LV's data in the image, and its size.
    pub offset: u64,
    pub size: u64,
    pub filesystem: Filesystem,
}

impl VolumeGroup {
    /// The device-mapper name (`/dev/mapper/VG-LV`; dashes in names are doubled).
    pub fn mapper_path(&self, lv: &str) -> String {
        mapper_path(&self.name, lv)
    }

    /// The writer's description, with `creation_time` (seconds since the epoch).
    pub fn spec(&self, creation_time: i64) -> lvm::VgSpec {
        lvm::VgSpec {
            name: self.name.clone(),
            id: self.id.clone(),
            extent_size: self.extent_size,
            creation_host: "imagebuilder".into(),
            creation_time,
            pvs: self
                .pvs
                .iter()
                .map(|p| lvm::PvSpec {
                    id: p.id.clone(),
                    device_size: p.size,
                    device_hint: format!("/dev/vda{}", p.partition),
                })
                .collect(),
            lvs: self
                .lvs
                .iter()
                .map(|l| lvm::LvSpec {
                    name: l.name.clone(),
                    id: l.id.clone(),
                    pv: l.pv,
                    start_extent: l.start_extent,
                    extents: l.extents,
                })
                .collect(),
        }
    }
}

/// `/dev/mapper/VG-LV` (dashes inside names are doubled, as device-mapper names them).
pub fn mapper_path(vg: &str, lv: &str) -> String {
    format!(
        "/dev/mapper/{}-{}",
        vg.replace('-', "--"),
        lv.replace('-', "--")
    )
}

/// The disk as it will be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskPlan {
    pub size_bytes: u64,
    pub sector_size: u64,
    pub disk_guid: Uuid,
    pub partitions: Vec<Partition>,
    /// LVM volume groups on `part pv.NN` partitions.
    pub volume_groups: Vec<VolumeGroup>,
}

/// One GPT partition, placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
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
pub fn is_under(path: &str, mountpoint: &str) -> bool {
    mountpoint == "/"
        || path == mountpoint
        || (path.starts_with(mountpoint) && path.as_bytes().get(mountpoint.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::request::*;

    fn part(
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

    fn req(parts: Vec<PartitionRequest>) -> DiskRequest {
        DiskRequest {
            source_name: "test.ks".into(),
            partitions: parts,
            ..Default::default()
        }
    }

    fn ids() -> IdSource {
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
            "test.ks:12: `raid` is not supported yet (RAID and btrfs volumes are a later issue)"
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

    fn vg(line: usize, name: &str, pvs: &[&str]) -> VolGroupRequest {
        VolGroupRequest {
            line,
            name: name.into(),
            pvs: pvs.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn lv(line: usize, mp: &str, name: &str, size: Option<u64>) -> LogVolRequest {
        LogVolRequest {
            line,
            mountpoint: mp.into(),
            name: name.into(),
            vgname: "atomicos".into(),
            size_mib: size,
            ..Default::default()
        }
    }

    /// The Fedora Atomic layout: /boot, pv.01 --grow, VG atomicos, a 3000 MiB root LV.
    fn atomic() -> DiskRequest {
        let mut r = req(vec![
            part(20, "/boot", Some(300), false, Some("ext4")),
            part(21, "pv.01", None, true, None),
        ]);
        r.volgroups.push(vg(22, "atomicos", &["pv.01"]));
        r.logvols.push(lv(23, "/", "root", Some(3000)));
        r
    }

    #[test]
    fn atomic_layout_places_the_root_lv_and_leaves_the_rest_free() {
        let l = Layout::from_request(&atomic(), &ids()).unwrap();
        assert_eq!(l.filesystem("/").unwrap().kind, FsKind::Ext4);
        assert_eq!(l.fixed_root_bytes(), Some(3000 * MIB));
        // Without --size the PV is just big enough for the LV.
        let plan = l.allocate(&BTreeMap::new(), None).unwrap();
        let vg = &plan.volume_groups[0];
        assert_eq!(vg.extent_size, 4 * MIB);
        assert_eq!(vg.lvs[0].extents, 750);
        assert_eq!(vg.total_extents, 750);
        assert_eq!(vg.free_extents, 0);
        // With a 5 GiB disk the PV grows and the VG keeps the rest free.
        let plan = l.allocate(&BTreeMap::new(), Some(5120 * MIB)).unwrap();
        let pv_part = plan
            .partitions
            .iter()
            .find(|p| p.role == Role::LvmPv)
            .unwrap();
        assert_eq!(pv_part.type_guid, types::LVM);
        assert_eq!(
            pv_part.content,
            Content::LvmPv {
                vg: "atomicos".into(),
                pv: "pv.01".into()
            }
        );
        // 1 + 1 (BIOS boot) + 127 + 300 before the PV, 1 MiB after it.
        assert_eq!(pv_part.size(), (5120 - 430) * MIB);
        let vg = &plan.volume_groups[0];
        assert_eq!(vg.total_extents, (5120 - 430 - 1) / 4);
        assert_eq!(vg.free_extents, vg.total_extents - 750);
        let root = &vg.lvs[0];
        assert_eq!(root.offset, pv_part.offset() + MIB);
        assert_eq!(root.size, 3000 * MIB);
        let (f, off, size) = plan
            .filesystems()
            .into_iter()
            .find(|(f, _, _)| f.mountpoint == "/")
            .unwrap();
        assert_eq!((off, size), (root.offset, root.size));
        assert_eq!(f.uuid, root.filesystem.uuid);
        assert_eq!(plan.filesystem_for("/var/lib").unwrap().mountpoint, "/");
        assert_eq!(vg.mapper_path("root"), "/dev/mapper/atomicos-root");
        assert_eq!(mapper_path("my-vg", "lv-1"), "/dev/mapper/my--vg-lv--1");
        let spec = vg.spec(0);
        spec.validate().unwrap();
        assert_eq!(spec.pvs[0].pe_count(spec.extent_size), vg.total_extents);
    }

    #[test]
    fn lvs_grow_percent_swap_and_content_needs() {
        let mut r = atomic();
        r.volgroups[0].pesize_kib = Some(32 * 1024);
        r.logvols[0].size_mib = Some(100);
        r.logvols[0].grow = true;
        r.logvols[0].maxsize_mib = Some(1000);
        let mut var = lv(24, "/var", "var", None);
        var.percent = Some(25);
        r.logvols.push(var);
        let mut swap = lv(25, "swap", "swap", Some(64));
        swap.fstype = Some("swap".into());
        r.logvols.push(swap);
        let l = Layout::from_request(&r, &ids()).unwrap();
        let needs = BTreeMap::from([("/".to_string(), 500 * MIB + 1)]);
        let plan = l.allocate(&needs, Some(4096 * MIB)).unwrap();
        let vg = &plan.volume_groups[0];
        let ext: Vec<(String, u64)> = vg.lvs.iter().map(|l| (l.name.clone(), l.extents)).collect();
        let total = vg.total_extents;
        // root grows to its --maxsize (1000 MiB = 32 extents of 32 MiB, rounded up).
        assert_eq!(ext[0], ("root".into(), 32));
        assert_eq!(ext[1], ("var".into(), total / 4));
        assert_eq!(ext[2], ("swap".into(), 2));
        assert_eq!(vg.free_extents, total - 32 - total / 4 - 2);
        // No overlaps, in order on the PV.
        assert_eq!(vg.lvs[1].start_extent, 32);
        assert_eq!(vg.lvs[2].start_extent, 32 + total / 4);
        // Without --size the PV grows to hold the content's needs.
        let plan = l.allocate(&needs, None).unwrap();
        let vg = &plan.volume_groups[0];
        assert!(vg.lvs[0].size > 500 * MIB, "{:?}", vg.lvs[0]);
        assert!(vg.lvs[1].extents * 4 >= vg.total_extents);
        // A fixed LV too small for its content.
        let l = Layout::from_request(&atomic(), &ids()).unwrap();
        let e = l
            .allocate(&BTreeMap::from([("/".to_string(), 4000 * MIB)]), None)
            .unwrap_err();
        assert_eq!(e.line, 23);
        assert!(e.to_string().contains("needs about 4000 MiB"), "{e}");
    }

    #[test]
    fn lvs_larger_than_a_fixed_vg_say_by_how_much() {
        let mut r = atomic();
        r.partitions[1].grow = false;
        r.partitions[1].size_mib = Some(2000);
        let l = Layout::from_request(&r, &ids()).unwrap();
        let e = l.allocate(&BTreeMap::new(), None).unwrap_err();
        assert_eq!(e.line, 23);
        // 2000 MiB PV - 1 MiB header = 499 extents of 4 MiB = 1996 MiB; the LV needs 3000.
        assert!(
            e.to_string().contains(
                "the logical volumes of volume group atomicos need 3000 MiB but its physical \
                 volumes hold 1996 MiB: 1004 MiB too much"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_lvm_requests_name_the_line() {
        type Edit = fn(&mut DiskRequest);
        let cases: Vec<(Edit, usize, &str)> = vec![
            (
                |r| r.logvols[0].vgname = "nosuch".into(),
                23,
                "names volume group `nosuch`, which no `volgroup` line defines",
            ),
            (
                |r| r.volgroups[0].pvs.clear(),
                22,
                "volume group atomicos has no physical volumes",
            ),
            (
                |r| r.volgroups[0].pvs = vec!["pv.09".into()],
                22,
                "names `pv.09`, which is not a `part pv.09` line",
            ),
            (
                |r| {
                    let mut second = r.logvols[0].clone();
                    second.line = 24;
                    second.mountpoint = "/var".into();
                    r.logvols.push(second);
                },
                24,
                "two logical volumes named root in volume group atomicos (the first is on line 23)",
            ),
            (
                |r| {
                    r.logvols[0].size_mib = None;
                    r.logvols[0].percent = Some(101);
                },
                23,
                "--percent=101 is more than 100",
            ),
            (
                |r| {
                    let mut v = lv(24, "/var", "var", None);
                    v.percent = Some(60);
                    let mut h = lv(25, "/home", "home", None);
                    h.percent = Some(50);
                    r.logvols.extend([v, h]);
                },
                25,
                "add up to 110%, more than 100%",
            ),
            (
                |r| {
                    r.logvols[0].thin = true;
                    r.logvols[0].pool_name = Some("pool".into());
                },
                23,
                "thin volume root names pool `pool`, but no `logvol --thinpool",
            ),
            (
                |r| r.logvols[0].thin_pool = true,
                23,
                "thin provisioning (`logvol --thinpool`/`--thin`) is not supported",
            ),
            (
                |r| {
                    let mut v = vg(24, "other", &["pv.01"]);
                    v.line = 24;
                    r.volgroups.push(v);
                },
                24,
                "`pv.01` is already in volume group atomicos (line 22)",
            ),
            (
                |r| r.partitions.push(part(26, "pv.02", Some(100), false, None)),
                26,
                "physical volume `pv.02` is not in any volume group",
            ),
            (
                |r| {
                    r.partitions.remove(0);
                },
                23,
                "/ is on a logical volume, so /boot needs its own partition",
            ),
            (
                |r| r.logvols.push(lv(27, "/boot", "boot", Some(300))),
                27,
                "/boot cannot be on a logical volume",
            ),
            (
                |r| r.volgroups[0].pesize_kib = Some(3000),
                22,
                "--pesize=3000",
            ),
            (
                |r| r.logvols.push(lv(28, "/boot", "x", Some(1))),
                28,
                "/boot cannot be on a logical volume",
            ),
            (
                |r| r.partitions.push(part(29, "/", Some(100), false, None)),
                23,
                "two partitions or volumes for / (the first is on line 29)",
            ),
        ];
        for (edit, line, text) in cases {
            let mut r = atomic();
            edit(&mut r);
            let e = Layout::from_request(&r, &ids()).unwrap_err();
            assert!(e.to_string().contains(text), "{e} does not contain {text}");
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().starts_with("test.ks:"), "{e}");
        }
    }
}
