//! LVM2 written natively: a volume group described as plain data becomes the bytes of its physical
//! volumes (label, PV header, metadata area with the VG's text metadata). No device-mapper, no
//! loop device, no `lvm` program: the logical volumes are linear runs of extents, so each one is a
//! plain byte range of its PV, and the filesystems are written there like on a partition.
//!
//! On-disk layout of one PV (offsets from the start of the partition, as LVM2 writes by default):
//!
//! | offset | what |
//! |---|---|
//! | 512 (sector 1) | label header `LABELONE` + `LVM2 001`, then the PV header: PV id, device size, data area list, metadata area list, extension (version 2, flag "used") |
//! | 4096 | metadata area: 512-byte `mda_header` (magic, start, size, one `raw_locn`), then the VG text at +512 |
//! | [`PE_START`] (1 MiB) | the first physical extent |
//!
//! Numbers are little-endian; checksums are LVM2's CRC-32 (reflected polynomial `0xEDB88320`,
//! seed [`INITIAL_CRC`], no final inversion).

use std::fs::File;
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

/// Start of the data area (the first extent): LVM2's default 1 MiB alignment.
pub const PE_START: u64 = 1 << 20;
/// Start of the metadata area.
pub const MDA_START: u64 = 4096;
/// The sector holding the label.
pub const LABEL_SECTOR: u64 = 1;
/// Seed of LVM2's checksums.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;
/// The metadata area magic (`FMTT_MAGIC`).
pub const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
/// Default extent size (`volgroup` without `--pesize`): 4 MiB.
pub const DEFAULT_EXTENT: u64 = 4 << 20;

/// LVM2's CRC-32 over `data`, continuing from `crc`.
pub fn crc(mut crc: u32, data: &[u8]) -> u32 {
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

const ID_CHARS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// An LVM id: 32 characters from `[0-9a-zA-Z]`, made from `seed` (e.g. a UUID's bytes, hashed).
pub fn lvm_id(seed: &[u8; 32]) -> String {
    seed.iter()
        .map(|b| ID_CHARS[usize::from(*b) % ID_CHARS.len()] as char)
        .collect()
}

/// The dashed form LVM prints and keeps in the text metadata (6-4-4-4-4-4-6).
pub fn format_id(id: &str) -> String {
    let mut out = String::with_capacity(38);
    let mut pos = 0;
    for (i, n) in [6, 4, 4, 4, 4, 4, 6].iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(&id[pos..pos + n]);
        pos += n;
    }
    out
}

/// A volume group as it will be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VgSpec {
    pub name: String,
    /// 32-character LVM id (undashed).
    pub id: String,
    /// Bytes per extent (a power of two, at least 4 KiB).
    pub extent_size: u64,
    pub creation_host: String,
    pub creation_time: i64,
    pub pvs: Vec<PvSpec>,
    pub lvs: Vec<LvSpec>,
}

/// One physical volume (a partition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvSpec {
    pub id: String,
    /// The partition's size in bytes.
    pub device_size: u64,
    /// A device name hint for the metadata (`/dev/vda4`); LVM finds PVs by id, not by this.
    pub device_hint: String,
}

/// One linear logical volume: `extents` extents from `start_extent` on PV `pv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvSpec {
    pub name: String,
    pub id: String,
    pub pv: usize,
    pub start_extent: u64,
    pub extents: u64,
}

impl PvSpec {
    /// Usable extents of this PV.
    pub fn pe_count(&self, extent_size: u64) -> u64 {
        self.device_size.saturating_sub(PE_START) / extent_size
    }
}

impl VgSpec {
    /// Checks the description: extents inside their PV, no overlaps, valid names.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.extent_size >= 4096 && self.extent_size.is_power_of_two(),
            "extent size {} is not a power of two of at least 4 KiB",
            self.extent_size
        );
        ensure!(valid_name(&self.name), "invalid VG name `{}`", self.name);
        ensure!(!self.pvs.is_empty(), "volume group {} has no PV", self.name);
        for pv in &self.pvs {
            ensure!(
                pv.device_size > PE_START + self.extent_size,
                "PV of {} is too small for one extent",
                self.name
            );
        }
        let mut used: Vec<Vec<(u64, u64)>> = vec![Vec::new(); self.pvs.len()];
        for lv in &self.lvs {
            ensure!(valid_name(&lv.name), "invalid LV name `{}`", lv.name);
            ensure!(lv.extents > 0, "LV {} has no extents", lv.name);
            let pv = self
                .pvs
                .get(lv.pv)
                .with_context(|| format!("LV {} on a missing PV", lv.name))?;
            ensure!(
                lv.start_extent + lv.extents <= pv.pe_count(self.extent_size),
                "LV {} ends past its PV",
                lv.name
            );
            for (s, n) in &used[lv.pv] {
                ensure!(
                    lv.start_extent >= s + n || lv.start_extent + lv.extents <= *s,
                    "LV {} overlaps another LV",
                    lv.name
                );
            }
            used[lv.pv].push((lv.start_extent, lv.extents));
        }
        Ok(())
    }

    /// The VG's text metadata (the `lvm2_metadata` grammar LVM2 itself writes, seqno 1).
    pub fn metadata_text(&self) -> String {
        let sectors = |b: u64| b / 512;
        let mut s = String::new();
        s.push_str(&format!("{} {{\n", self.name));
        s.push_str(&format!("id = \"{}\"\n", format_id(&self.id)));
        s.push_str("seqno = 1\n");
        s.push_str("format = \"lvm2\"\n");
        s.push_str("status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n");
        s.push_str("flags = []\n");
        s.push_str(&format!("extent_size = {}\n", sectors(self.extent_size)));
        s.push_str("max_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n\n");
        s.push_str("physical_volumes {\n");
        for (i, pv) in self.pvs.iter().enumerate() {
            s.push_str(&format!("\npv{i} {{\n"));
            s.push_str(&format!("id = \"{}\"\n", format_id(&pv.id)));
            s.push_str(&format!("device = \"{}\"\n", pv.device_hint));
            s.push_str("status = [\"ALLOCATABLE\"]\nflags = []\n");
            s.push_str(&format!("dev_size = {}\n", sectors(pv.device_size)));
            s.push_str(&format!("pe_start = {}\n", sectors(PE_START)));
            s.push_str(&format!("pe_count = {}\n", pv.pe_count(self.extent_size)));
            s.push_str("}\n");
        }
        s.push_str("}\n");
        if !self.lvs.is_empty() {
            s.push_str("\nlogical_volumes {\n");
            for lv in &self.lvs {
                s.push_str(&format!("\n{} {{\n", lv.name));
                s.push_str(&format!("id = \"{}\"\n", format_id(&lv.id)));
                s.push_str("status = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\n");
                s.push_str(&format!("creation_time = {}\n", self.creation_time));
                s.push_str(&format!("creation_host = \"{}\"\n", self.creation_host));
                s.push_str("segment_count = 1\n\n");
                s.push_str("segment1 {\nstart_extent = 0\n");
                s.push_str(&format!("extent_count = {}\n", lv.extents));
                s.push_str("\ntype = \"striped\"\nstripe_count = 1\n\nstripes = [\n");
                s.push_str(&format!(
                    "\"pv{}\", {}\n]\n}}\n}}\n",
                    lv.pv, lv.start_extent
                ));
            }
            s.push_str("}\n");
        }
        s.push_str("\n}\n");
        s.push_str("# Generated by imagebuilder\n\n");
        s.push_str("contents = \"Text Format Volume Group\"\nversion = 1\n\n");
        s.push_str("description = \"\"\n\n");
        s.push_str(&format!(
            "creation_host = \"{}\"\ncreation_time = {}\n",
            self.creation_host, self.creation_time
        ));
        s
    }

    /// The bytes to write into PV `index`: `(offset from the partition start, bytes)` pairs.
    pub fn pv_blocks(&self, index: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.validate()?;
        let pv = self.pvs.get(index).context("no such PV")?;
        let mut text = self.metadata_text().into_bytes();
        text.push(0);
        let mda_size = PE_START - MDA_START;
        ensure!(
            (text.len() as u64) < mda_size - 512,
            "the metadata of {} does not fit its metadata area",
            self.name
        );
        Ok(vec![
            (LABEL_SECTOR * 512, label_sector(pv)?),
            (MDA_START, mda_header(mda_size, &text).to_vec()),
            (MDA_START + 512, text),
        ])
    }

    /// Writes PV `index` into `image` at `offset` (the partition's start).
    pub fn write_pv(&self, image: &File, offset: u64, index: usize) -> Result<()> {
        for (at, bytes) in self.pv_blocks(index)? {
            image
                .write_all_at(&bytes, offset + at)
                .with_context(|| format!("writing LVM PV {index} of {}", self.name))?;
        }
        Ok(())
    }
}

/// VG and LV names LVM accepts: `[a-zA-Z0-9+_.-]`, not starting with `-`, not `.`/`..`.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 127
        && !n.starts_with('-')
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+_.-".contains(&b))
}

fn le64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn le32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Sector 1 of the PV: label header, PV header, PV header extension.
fn label_sector(pv: &PvSpec) -> Result<Vec<u8>> {
    ensure!(pv.id.len() == 32, "PV id must be 32 characters");
    let mut s = vec![0u8; 512];
    s[0..8].copy_from_slice(b"LABELONE");
    le64(&mut s, 8, LABEL_SECTOR);
    le32(&mut s, 20, 32); // offset of the PV header in this sector
    s[24..32].copy_from_slice(b"LVM2 001");
    // pv_header
    s[32..64].copy_from_slice(pv.id.as_bytes());
    le64(&mut s, 64, pv.device_size);
    // data areas: one, from PE_START to the end (size 0), then the terminator
    le64(&mut s, 72, PE_START);
    le64(&mut s, 80, 0);
    // (88..104 zero: end of the data area list)
    // metadata areas: one, then the terminator
    le64(&mut s, 104, MDA_START);
    le64(&mut s, 112, PE_START - MDA_START);
    // (120..136 zero: end of the metadata area list)
    // pv_header_extension: version 2, flags = PV_EXT_USED (the PV belongs to a VG), no
    // bootloader areas (136..160 + terminator zero)
    le32(&mut s, 136, 2);
    le32(&mut s, 140, 1);
    let c = crc(INITIAL_CRC, &s[20..]);
    le32(&mut s, 16, c);
    Ok(s)
}

/// The metadata area header, pointing at `text` stored right after it.
fn mda_header(mda_size: u64, text: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[4..20].copy_from_slice(MDA_MAGIC);
    le32(&mut h, 20, 1); // version
    le64(&mut h, 24, MDA_START);
    le64(&mut h, 32, mda_size);
    // raw_locn[0]: the metadata text, relative to the area's start
    le64(&mut h, 40, 512);
    le64(&mut h, 48, text.len() as u64);
    le32(&mut h, 56, crc(INITIAL_CRC, text));
    le32(&mut h, 60, 0);
    // raw_locn[1] zero: end of the list
    let c = crc(INITIAL_CRC, &h[4..]);
    le32(&mut h, 0, c);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vg() -> VgSpec {
        VgSpec {
            name: "atomicos".into(),
            id: lvm_id(&[7; 32]),
            extent_size: DEFAULT_EXTENT,
            creation_host: "imagebuilder".into(),
            creation_time: 1_700_000_000,
            pvs: vec![PvSpec {
                id: lvm_id(&[9; 32]),
                device_size: 100 << 20,
                device_hint: "/dev/vda4".into(),
            }],
            lvs: vec![LvSpec {
                name: "root".into(),
                id: lvm_id(&[3; 32]),
                pv: 0,
                start_extent: 0,
                extents: 10,
            }],
        }
    }

    fn u32at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn crc_matches_the_plain_crc32_relation() {
        // LVM's checksum is CRC-32 without the final inversion: with seed !0 it is !crc32.
        assert_eq!(!crc(0xffff_ffff, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc(INITIAL_CRC, b""), INITIAL_CRC);
    }

    #[test]
    fn ids_are_lvm_shaped() {
        let id = lvm_id(&[200; 32]);
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let f = format_id("abcdefghijklmnopqrstuvwxyzABCDEF");
        assert_eq!(f, "abcdef-ghij-klmn-opqr-stuv-wxyz-ABCDEF");
    }

    #[test]
    fn label_and_mda_layout() {
        let v = vg();
        let blocks = v.pv_blocks(0).unwrap();
        let (at, label) = &blocks[0];
        assert_eq!(*at, 512);
        assert_eq!(&label[0..8], b"LABELONE");
        assert_eq!(u64at(label, 8), 1);
        assert_eq!(u32at(label, 16), crc(INITIAL_CRC, &label[20..512]));
        assert_eq!(u32at(label, 20), 32);
        assert_eq!(&label[24..32], b"LVM2 001");
        assert_eq!(&label[32..64], v.pvs[0].id.as_bytes());
        assert_eq!(u64at(label, 64), 100 << 20);
        assert_eq!((u64at(label, 72), u64at(label, 80)), (PE_START, 0));
        assert_eq!((u64at(label, 88), u64at(label, 96)), (0, 0));
        assert_eq!(
            (u64at(label, 104), u64at(label, 112)),
            (4096, PE_START - 4096)
        );
        assert_eq!((u32at(label, 136), u32at(label, 140)), (2, 1));

        let (at, mda) = &blocks[1];
        assert_eq!(*at, 4096);
        assert_eq!(u32at(mda, 0), crc(INITIAL_CRC, &mda[4..512]));
        assert_eq!(&mda[4..20], MDA_MAGIC);
        assert_eq!(u64at(mda, 24), 4096);
        let (at, text) = &blocks[2];
        assert_eq!(*at, 4096 + 512);
        assert_eq!(u64at(mda, 40), 512);
        assert_eq!(u64at(mda, 48), text.len() as u64);
        assert_eq!(u32at(mda, 56), crc(INITIAL_CRC, text));
        assert_eq!(text.last(), Some(&0));
        let t = String::from_utf8_lossy(text);
        assert!(t.starts_with("atomicos {\nid = \""), "{t}");
        assert!(t.contains("extent_size = 8192\n"), "{t}");
        assert!(t.contains("pe_start = 2048\npe_count = 24\n"), "{t}");
        assert!(t.contains("extent_count = 10\n"), "{t}");
        assert!(t.contains("\"pv0\", 0\n"), "{t}");
    }

    #[test]
    fn bad_descriptions_are_refused() {
        let mut v = vg();
        v.lvs[0].extents = 25;
        assert!(
            v.validate()
                .unwrap_err()
                .to_string()
                .contains("past its PV")
        );
        let mut v = vg();
        let mut second = v.lvs[0].clone();
        second.name = "var".into();
        second.start_extent = 5;
        v.lvs.push(second);
        assert!(v.validate().unwrap_err().to_string().contains("overlaps"));
        let mut v = vg();
        v.name = "-bad".into();
        assert!(v.validate().is_err());
        let mut v = vg();
        v.extent_size = 3 << 20;
        assert!(v.validate().is_err());
    }
}
