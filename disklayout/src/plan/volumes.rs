//! Volume groups in the layout: `volgroup`/`logvol` validated against the `part pv.NN`
//! partitions ([`LayoutVg`], [`LayoutLv`]), then sized and placed once the partitions are
//! ([`VolumeGroup`]). Every logical volume is one linear run of extents on one PV, so its
//! filesystem is a plain byte range of the image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Content, DiskRequest, Filesystem, IdSource, Layout, LayoutError, LayoutPart, LineError, MIB,
    Partition, PartitionRequest, Role, is_under,
};
use crate::disk::lvm::{self, PE_START};
use crate::plan::request::{LogVolRequest, VolGroupRequest};

/// A validated volume group, not yet sized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Layout {
    /// Validates `volgroup` and `logvol` lines against the `part pv.NN` partitions.
    pub(super) fn volume_groups(
        req: &DiskRequest,
        ids: &IdSource,
        parts: &[LayoutPart],
        seen: &mut BTreeMap<String, usize>,
    ) -> Result<Vec<LayoutVg>, LayoutError> {
        let err = |(line, message): LineError| LayoutError {
            source_name: req.source_name.clone(),
            line,
            message,
        };
        let mut vgs = Self::validated_vgs(req, ids, parts).map_err(err)?;
        Self::add_lvs(req, ids, &mut vgs, seen).map_err(err)?;
        check_percent_totals(&vgs).map_err(err)?;
        Ok(vgs)
    }

    /// The `volgroup` lines, each name once and each `part pv.NN` in exactly one group.
    fn validated_vgs(
        req: &DiskRequest,
        ids: &IdSource,
        parts: &[LayoutPart],
    ) -> Result<Vec<LayoutVg>, LineError> {
        let mut vgs: Vec<LayoutVg> = Vec::new();
        let mut owner: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
        for v in &req.volgroups {
            let vg = Self::one_vg(v, ids, parts, &mut owner).map_err(|m| (v.line, m))?;
            if let Some(first) = vgs.iter().find(|x| x.name == vg.name) {
                return Err((
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
            return Err((
                p.line,
                format!(
                    "physical volume `{}` is not in any volume group (add it to a `volgroup` line)",
                    p.pv.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok(vgs)
    }

    /// Adds the `logvol` lines to their volume groups: each name once in its group, and no mount
    /// point shared with a partition or another volume (`seen`, as in [`Layout::from_request`]).
    fn add_lvs(
        req: &DiskRequest,
        ids: &IdSource,
        vgs: &mut [LayoutVg],
        seen: &mut BTreeMap<String, usize>,
    ) -> Result<(), LineError> {
        for l in &req.logvols {
            let lv = Self::one_lv(l, ids, req, vgs).map_err(|m| (l.line, m))?;
            let vg = vgs
                .iter_mut()
                .find(|v| v.name == l.vgname)
                .expect("checked by one_lv");
            if let Some(first) = vg.lvs.iter().find(|x| x.name == lv.name) {
                return Err((
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
                return Err((
                    l.line,
                    format!("two partitions or volumes for {key} (the first is on line {first})"),
                ));
            }
            vg.lvs.push(lv);
        }
        Ok(())
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
            return Err(thin_refusal(l, req));
        }
        check_lv(l, vgs)?;
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
}

/// Why a thin pool or thin volume is refused: a thin volume naming a missing pool says so first.
fn thin_refusal(l: &LogVolRequest, req: &DiskRequest) -> String {
    if l.thin
        && let Some(pool) = &l.pool_name
        && !req
            .logvols
            .iter()
            .any(|x| x.thin_pool && x.vgname == l.vgname && &x.name == pool)
    {
        return format!(
            "thin volume {} names pool `{pool}`, but no `logvol --thinpool --name={pool} \
             --vgname={}` exists",
            l.name, l.vgname
        );
    }
    "thin provisioning (`logvol --thinpool`/`--thin`) is not supported; use plain \
     logical volumes (space left free in the volume group stays free, e.g. for \
     docker-storage-setup's thin pool)"
        .into()
}

/// A `logvol` this builder can write: a new, unencrypted, plainly sized volume, validly named,
/// in a defined volume group, and not under /boot.
fn check_lv(l: &LogVolRequest, vgs: &[LayoutVg]) -> Result<(), String> {
    if l.preexist {
        return Err("logvol --useexisting/--noformat: a new image has no existing volumes".into());
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
    Ok(())
}

/// The `--percent` values of each volume group add up to at most 100.
fn check_percent_totals(vgs: &[LayoutVg]) -> Result<(), LineError> {
    for vg in vgs {
        let total: u64 = vg.lvs.iter().filter_map(|l| l.percent).sum();
        if total > 100 {
            let last = vg
                .lvs
                .iter()
                .rfind(|l| l.percent.is_some())
                .map_or(0, |l| l.line);
            return Err((
                last,
                format!(
                    "the --percent values of volume group {} add up to {total}%, more than 100%",
                    vg.name
                ),
            ));
        }
    }
    Ok(())
}

/// Extents a PV of `bytes` holds.
pub(super) fn pv_extents(bytes: u64, extent_size: u64) -> u64 {
    bytes.saturating_sub(PE_START) / extent_size
}

/// An LV's size before the VG's size is known.
#[derive(Debug, Clone, Copy)]
pub(super) enum LvBase {
    /// A fixed number of extents (possibly grown later with `--grow`).
    Extents(u64),
    /// `--percent` of the VG, but at least this many extents for the content.
    Percent(u64, u64),
}

impl LayoutVg {
    fn extents_of(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.extent_size)
    }

    fn reserved(&self, total: u64) -> u64 {
        self.extents_of(self.reserved_mib * MIB) + (total * self.reserved_percent).div_ceil(100)
    }

    /// Each LV's base size, and the fewest extents the VG needs to hold them.
    pub(super) fn minimum(
        &self,
        needs: &BTreeMap<String, u64>,
    ) -> Result<(Vec<LvBase>, u64), LineError> {
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
    pub(super) fn place(
        &self,
        partitions: &[Partition],
        bases: &[LvBase],
    ) -> Result<VolumeGroup, LineError> {
        let mut pvs = self.physical_volumes(partitions)?;
        let total: u64 = pvs.iter().map(|p| p.pe_count).sum();
        let extents = self.lv_extents(bases, total)?;
        let lvs = self.first_fit(&pvs, &extents)?;
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

    /// The group's PVs on their placed partitions (ids not yet set), each holding an extent.
    fn physical_volumes(&self, partitions: &[Partition]) -> Result<Vec<PhysicalVolume>, LineError> {
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
        Ok(pvs)
    }

    /// Each LV's extents in a group of `total`: its base size, `--grow` ones sharing what is left.
    fn lv_extents(&self, bases: &[LvBase], total: u64) -> Result<Vec<u64>, LineError> {
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
        self.grow_lvs(&mut extents, used, total);
        Ok(extents)
    }

    /// `--grow` LVs share the `total - used` extents left, in equal rounds, up to their
    /// `--maxsize`.
    fn grow_lvs(&self, extents: &mut [u64], mut used: u64, total: u64) {
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
    }

    /// Places the LVs first fit, in kickstart order; an LV stays on one PV (one linear segment).
    fn first_fit(
        &self,
        pvs: &[PhysicalVolume],
        extents: &[u64],
    ) -> Result<Vec<LogicalVolume>, LineError> {
        let mut next: Vec<u64> = vec![0; pvs.len()];
        let mut lvs = Vec::new();
        for (lv, e) in self.lvs.iter().zip(extents) {
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
        Ok(lvs)
    }

    fn pv_id(&self, i: usize) -> String {
        let seed: [u8; 32] = Sha256::digest(format!("{}\0pv{i}", self.id).as_bytes()).into();
        lvm::lvm_id(&seed)
    }
}

/// A volume group as placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::super::tests::{ids, part, req};
    use super::*;
    use crate::plan::{FsKind, types};

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
