//! A small write-once FAT32 writer for the EFI system partition.
//!
//! `fatfs` 0.3.6 writes directories that `fsck.fat -n` reports as broken (LFN entries before `.`,
//! wrong `..` clusters), so the ESP is written here: boot sector + backup, FSInfo, two FATs,
//! then every directory and file in one contiguous run of clusters, in sorted order, with one fixed
//! timestamp. The result is reproducible and passes `fsck.fat -n` without a remark. Names that are
//! not 8.3 get VFAT long-name entries; all-lowercase 8.3 names use the NT lowercase flags instead.
//!
//! The writer addresses the image by offset (`pwrite`), so the ESP goes straight into the disk image.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

const SECTOR: u64 = 512;
const RESERVED_SECTORS: u64 = 32;
const NUM_FATS: u64 = 2;
const ROOT_CLUSTER: u32 = 2;
const EOC: u32 = 0x0FFF_FFFF;
const MIN_FAT32_CLUSTERS: u64 = 65525;

const ATTR_DIR: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME: u8 = 0x08;
const ATTR_LFN: u8 = 0x0F;

/// Parameters of the FAT volume.
#[derive(Debug, Clone)]
pub struct FatOptions {
    /// Volume label (≤ 11 characters, stored upper-case).
    pub label: String,
    pub volume_id: u32,
    /// Timestamp for every entry (seconds since the epoch; clamped to 1980..2107).
    pub timestamp: i64,
}

/// The FAT32 geometry for a volume of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub total_sectors: u64,
    pub sectors_per_cluster: u64,
    pub fat_sectors: u64,
    pub clusters: u64,
}

impl Geometry {
    /// Chooses the largest cluster (≤ 4 KiB) that still gives FAT32 its 65525 clusters.
    pub fn for_size(size: u64) -> Result<Geometry> {
        let total_sectors = size / SECTOR;
        ensure!(total_sectors <= u32::MAX as u64, "FAT32 volume too large");
        for spc in [8u64, 4, 2, 1] {
            // Microsoft's FAT size formula (FAT32 variant).
            let tmp1 = total_sectors.saturating_sub(RESERVED_SECTORS);
            let tmp2 = (256 * spc + NUM_FATS) / 2;
            let fat_sectors = tmp1.div_ceil(tmp2);
            let data = total_sectors.saturating_sub(RESERVED_SECTORS + NUM_FATS * fat_sectors);
            let clusters = data / spc;
            if clusters >= MIN_FAT32_CLUSTERS {
                return Ok(Geometry {
                    total_sectors,
                    sectors_per_cluster: spc,
                    fat_sectors,
                    clusters,
                });
            }
        }
        bail!(
            "{} MiB is too small for a FAT32 volume (needs {MIN_FAT32_CLUSTERS} clusters)",
            size >> 20
        )
    }

    fn cluster_bytes(&self) -> u64 {
        self.sectors_per_cluster * SECTOR
    }

    fn data_start(&self) -> u64 {
        (RESERVED_SECTORS + NUM_FATS * self.fat_sectors) * SECTOR
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_start() + (cluster as u64 - 2) * self.cluster_bytes()
    }
}

#[derive(Debug)]
enum Node {
    Dir {
        name: String,
        children: Vec<Node>,
        cluster: u32,
        nclusters: u32,
    },
    File {
        name: String,
        path: PathBuf,
        size: u64,
        cluster: u32,
        nclusters: u32,
    },
}

impl Node {
    fn name(&self) -> &str {
        match self {
            Node::Dir { name, .. } | Node::File { name, .. } => name,
        }
    }
}

fn read_tree(dir: &Path) -> Result<Vec<Node>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for e in entries {
        let path = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| anyhow::anyhow!("file name {n:?} in the ESP is not UTF-8"))?;
        let md = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if md.is_dir() {
            out.push(Node::Dir {
                name,
                children: read_tree(&path)?,
                cluster: 0,
                nclusters: 0,
            });
        } else if md.is_file() {
            out.push(Node::File {
                name,
                path,
                size: md.len(),
                cluster: 0,
                nclusters: 0,
            });
        } else {
            bail!(
                "{} is neither a file nor a directory; FAT cannot hold it",
                path.display()
            );
        }
    }
    Ok(out)
}

/// One name as it is stored: the 8.3 short entry name, NT case flags, and LFN entries if needed.
struct StoredName {
    short: [u8; 11],
    nt_flags: u8,
    lfn: Option<Vec<u16>>,
}

const SHORT_SPECIAL: &[u8] = b"!#$%&'()-@^_`{}~";

fn short_char_ok(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || SHORT_SPECIAL.contains(&c)
}

/// Splits `name` into an 8.3 form if it is one (possibly all-lowercase per part).
fn as_short(name: &str) -> Option<([u8; 11], u8)> {
    if name == "." || name == ".." || name.is_empty() {
        return None;
    }
    let (base, ext) = match name.rfind('.') {
        Some(0) => return None,
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 || base.contains('.') {
        return None;
    }
    if name.contains('.') && ext.is_empty() {
        return None;
    }
    let mut flags = 0u8;
    let mut short = [b' '; 11];
    for (part, dst, flag) in [(base, 0usize, 0x08u8), (ext, 8usize, 0x10u8)] {
        let has_lower = part.bytes().any(|c| c.is_ascii_lowercase());
        let has_upper = part.bytes().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper {
            return None;
        }
        if has_lower {
            flags |= flag;
        }
        for (i, c) in part.bytes().enumerate() {
            let u = c.to_ascii_uppercase();
            if !short_char_ok(u) {
                return None;
            }
            short[dst + i] = u;
        }
    }
    if short[0] == 0xE5 {
        return None;
    }
    Some((short, flags))
}

fn stored_names(children: &[Node]) -> Result<Vec<StoredName>> {
    let mut used: BTreeSet<[u8; 11]> = BTreeSet::new();
    let mut plain = Vec::new();
    for c in children {
        plain.push(as_short(c.name()));
        if let Some((s, _)) = plain.last().unwrap() {
            used.insert(*s);
        }
    }
    let mut out = Vec::new();
    for (c, short) in children.iter().zip(plain) {
        let name = c.name();
        if let Some((short, nt_flags)) = short {
            out.push(StoredName {
                short,
                nt_flags,
                lfn: None,
            });
            continue;
        }
        let utf16: Vec<u16> = name.encode_utf16().collect();
        ensure!(utf16.len() <= 255, "file name `{name}` is too long for FAT");
        ensure!(
            !name
                .chars()
                .any(|ch| "\"*/:<>?\\|".contains(ch) || (ch as u32) < 0x20),
            "file name `{name}` has characters FAT cannot store"
        );
        // Basis name: upper-cased, invalid characters replaced, then `~N` until unique.
        let clean = |s: &str| -> Vec<u8> {
            s.chars()
                .filter(|ch| *ch != ' ' && *ch != '.')
                .map(|ch| {
                    let u = ch.to_ascii_uppercase();
                    if u.is_ascii() && short_char_ok(u as u8) {
                        u as u8
                    } else {
                        b'_'
                    }
                })
                .collect()
        };
        let (b, e) = match name.rfind('.') {
            Some(i) if i > 0 => (clean(&name[..i]), clean(&name[i + 1..])),
            _ => (clean(name), Vec::new()),
        };
        let mut found = None;
        for n in 1..1_000_000u32 {
            let tail = format!("~{n}");
            let keep = 8usize.saturating_sub(tail.len()).min(b.len());
            let mut short = [b' '; 11];
            short[..keep].copy_from_slice(&b[..keep]);
            short[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
            for (i, ch) in e.iter().take(3).enumerate() {
                short[8 + i] = *ch;
            }
            if used.insert(short) {
                found = Some(short);
                break;
            }
        }
        let short = found.context("no free short name")?;
        out.push(StoredName {
            short,
            nt_flags: 0,
            lfn: Some(utf16),
        });
    }
    Ok(out)
}

fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short.iter().fold(0u8, |sum, &c| {
        ((sum & 1) << 7).wrapping_add(sum >> 1).wrapping_add(c)
    })
}

fn entries_for(n: &StoredName) -> usize {
    1 + n.lfn.as_ref().map_or(0, |l| l.len().div_ceil(13))
}

/// FAT (date, time) from Unix seconds, UTC.
fn fat_datetime(ts: i64) -> (u16, u16) {
    let ts = ts.clamp(315_532_800, 4_354_819_198); // 1980-01-01 .. 2107-12-31
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = (((year - 1980) as u16) << 9) | ((month as u16) << 5) | day as u16;
    let time = (((secs / 3600) as u16) << 11)
        | ((((secs / 60) % 60) as u16) << 5)
        | ((secs % 60) / 2) as u16;
    (date, time)
}

fn dir_entry(
    short: &[u8; 11],
    attr: u8,
    nt: u8,
    cluster: u32,
    size: u32,
    dt: (u16, u16),
) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(short);
    e[11] = attr;
    e[12] = nt;
    e[14..16].copy_from_slice(&dt.1.to_le_bytes());
    e[16..18].copy_from_slice(&dt.0.to_le_bytes());
    e[18..20].copy_from_slice(&dt.0.to_le_bytes());
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&dt.1.to_le_bytes());
    e[24..26].copy_from_slice(&dt.0.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

fn lfn_entries(name: &[u16], short: &[u8; 11]) -> Vec<[u8; 32]> {
    let sum = lfn_checksum(short);
    let n = name.len().div_ceil(13);
    let mut out = Vec::with_capacity(n);
    for seq in (1..=n).rev() {
        let mut chars = [0xFFFFu16; 13];
        let start = (seq - 1) * 13;
        for (i, slot) in chars.iter_mut().enumerate() {
            match name.get(start + i) {
                Some(c) => *slot = *c,
                None if start + i == name.len() => *slot = 0,
                None => {}
            }
        }
        let mut e = [0u8; 32];
        e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = sum;
        let pos = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (c, p) in chars.iter().zip(pos) {
            e[p..p + 2].copy_from_slice(&c.to_le_bytes());
        }
        out.push(e);
    }
    out
}

/// Assigns contiguous clusters, depth first; returns the next free cluster.
fn allocate(children: &mut [Node], mut next: u32, cluster_bytes: u64) -> Result<u32> {
    for c in children.iter_mut() {
        match c {
            Node::Dir {
                children,
                cluster,
                nclusters,
                ..
            } => {
                let names = stored_names(children)?;
                let n = 2 + names.iter().map(entries_for).sum::<usize>();
                *nclusters = ((n as u64 * 32).div_ceil(cluster_bytes)).max(1) as u32;
                *cluster = next;
                next += *nclusters;
                next = allocate(children, next, cluster_bytes)?;
            }
            Node::File {
                size,
                cluster,
                nclusters,
                ..
            } => {
                *nclusters = size.div_ceil(cluster_bytes) as u32;
                *cluster = if *nclusters == 0 { 0 } else { next };
                next += *nclusters;
            }
        }
    }
    Ok(next)
}

fn dir_bytes(children: &[Node], me: u32, parent: Option<u32>, dt: (u16, u16)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(parent) = parent {
        out.extend(dir_entry(b".          ", ATTR_DIR, 0, me, 0, dt));
        out.extend(dir_entry(b"..         ", ATTR_DIR, 0, parent, 0, dt));
    }
    for (c, n) in children.iter().zip(stored_names(children)?) {
        if let Some(l) = &n.lfn {
            for e in lfn_entries(l, &n.short) {
                out.extend(e);
            }
        }
        out.extend(match c {
            Node::Dir { cluster, .. } => dir_entry(&n.short, ATTR_DIR, n.nt_flags, *cluster, 0, dt),
            Node::File { cluster, size, .. } => dir_entry(
                &n.short,
                ATTR_ARCHIVE,
                n.nt_flags,
                *cluster,
                *size as u32,
                dt,
            ),
        });
    }
    Ok(out)
}

struct Writer<'a> {
    out: &'a File,
    base: u64,
    geo: Geometry,
    fat: Vec<u32>,
    dt: (u16, u16),
}

impl Writer<'_> {
    fn at(&self, off: u64, data: &[u8]) -> Result<()> {
        self.out
            .write_all_at(data, self.base + off)
            .context("writing the FAT volume")
    }

    fn chain(&mut self, first: u32, n: u32) {
        for i in 0..n {
            let c = (first + i) as usize;
            self.fat[c] = if i + 1 == n { EOC } else { first + i + 1 };
        }
    }

    fn write_cluster_run(&self, first: u32, nclusters: u32, data: &[u8]) -> Result<()> {
        let mut buf = data.to_vec();
        buf.resize((nclusters as u64 * self.geo.cluster_bytes()) as usize, 0);
        self.at(self.geo.cluster_offset(first), &buf)
    }

    fn write_file(&mut self, path: &Path, size: u64, cluster: u32, nclusters: u32) -> Result<()> {
        if nclusters == 0 {
            return Ok(());
        }
        self.chain(cluster, nclusters);
        let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let cb = self.geo.cluster_bytes();
        let mut off = self.geo.cluster_offset(cluster);
        let mut left = size;
        let mut buf = vec![0u8; (1 << 20) / cb as usize * cb as usize];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            f.read_exact(&mut buf[..want])
                .with_context(|| format!("reading {}", path.display()))?;
            let padded = (want as u64).div_ceil(cb) * cb;
            buf[want..padded as usize].fill(0);
            self.at(off, &buf[..padded as usize])?;
            off += padded;
            left -= want as u64;
        }
        Ok(())
    }

    fn write_dir(&mut self, children: &[Node], me: u32, n: u32, parent: Option<u32>) -> Result<()> {
        let bytes = dir_bytes(children, me, parent, self.dt)?;
        self.chain(me, n);
        self.write_cluster_run(me, n, &bytes)?;
        for c in children {
            match c {
                Node::Dir {
                    children,
                    cluster,
                    nclusters,
                    ..
                } => {
                    // `..` of a top-level directory is 0 (the root), as fsck.fat expects.
                    let up = if me == ROOT_CLUSTER { 0 } else { me };
                    self.write_dir(children, *cluster, *nclusters, Some(up))?;
                }
                Node::File {
                    path,
                    size,
                    cluster,
                    nclusters,
                    ..
                } => {
                    self.write_file(path, *size, *cluster, *nclusters)?;
                }
            }
        }
        Ok(())
    }

    /// The root directory (`root_n` clusters: the volume label first, then the entries), the
    /// directories under it, then its files.
    fn write_root(&mut self, tree: &[Node], root_n: u32, label: &[u8; 11]) -> Result<()> {
        let mut root = dir_entry(label, ATTR_VOLUME, 0, 0, 0, self.dt).to_vec();
        root.extend(dir_bytes(tree, ROOT_CLUSTER, None, self.dt)?);
        self.chain(ROOT_CLUSTER, root_n);
        self.write_cluster_run(ROOT_CLUSTER, root_n, &root)?;
        for c in tree {
            if let Node::Dir {
                children,
                cluster,
                nclusters,
                ..
            } = c
            {
                self.write_dir(children, *cluster, *nclusters, Some(0))?;
            }
        }
        for c in tree {
            if let Node::File {
                path,
                size,
                cluster,
                nclusters,
                ..
            } = c
            {
                self.write_file(path, *size, *cluster, *nclusters)?;
            }
        }
        Ok(())
    }

    /// Both FATs, whole.
    fn write_fats(&self) -> Result<()> {
        let mut fat_bytes = vec![0u8; (self.geo.fat_sectors * SECTOR) as usize];
        for (i, v) in self.fat.iter().enumerate() {
            fat_bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        for n in 0..NUM_FATS {
            self.at(
                (RESERVED_SECTORS + n * self.geo.fat_sectors) * SECTOR,
                &fat_bytes,
            )?;
        }
        Ok(())
    }
}

/// Writes a FAT32 volume of `size` bytes holding the tree `src` at byte `offset` of `out`.
pub fn write_fat32(
    out: &File,
    offset: u64,
    size: u64,
    src: &Path,
    opts: &FatOptions,
) -> Result<Geometry> {
    let geo = Geometry::for_size(size)?;
    let mut tree = read_tree(src)?;
    let (root_n, next) = allocate_volume(&mut tree, &geo, size)?;
    let label = label_bytes(&opts.label)?;
    let free = geo.clusters - (next - ROOT_CLUSTER) as u64;
    let bs = boot_sector(&geo, offset, opts.volume_id, &label);
    let reserved = reserved_area(&bs, &fsinfo_sector(free, next));
    let mut w = Writer {
        out,
        base: offset,
        geo,
        fat: vec![0u32; (geo.clusters + 2) as usize],
        dt: fat_datetime(opts.timestamp),
    };
    w.at(0, &reserved)?;
    w.fat[0] = 0x0FFF_FF00 | 0xF8;
    w.fat[1] = EOC;
    w.write_root(&tree, root_n, &label)?;
    w.write_fats()?;
    Ok(geo)
}

/// Places the root directory (`root_n` clusters, returned) and then the tree's clusters; returns
/// also the first cluster left free, refusing a tree the volume of `size` bytes cannot hold.
fn allocate_volume(tree: &mut [Node], geo: &Geometry, size: u64) -> Result<(u32, u32)> {
    let root_names = stored_names(tree)?;
    let root_entries = root_names.iter().map(entries_for).sum::<usize>() + 1; // + volume label
    let root_n = ((root_entries as u64 * 32).div_ceil(geo.cluster_bytes())).max(1) as u32;
    let next = allocate(tree, ROOT_CLUSTER + root_n, geo.cluster_bytes())?;
    let used = (next - ROOT_CLUSTER) as u64;
    if used > geo.clusters {
        bail!(
            "the EFI system partition content needs about {} MiB, more than the {} MiB partition holds",
            (used * geo.cluster_bytes()) >> 20,
            size >> 20
        );
    }
    Ok((root_n, next))
}

/// The FAT32 boot sector of a volume at byte `offset` of the disk.
fn boot_sector(geo: &Geometry, offset: u64, volume_id: u32, label: &[u8; 11]) -> [u8; 512] {
    let mut bs = [0u8; 512];
    bs[..3].copy_from_slice(&[0xEB, 0x58, 0x90]);
    bs[3..11].copy_from_slice(b"mkfs.fat");
    bs[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    bs[13] = geo.sectors_per_cluster as u8;
    bs[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
    bs[16] = NUM_FATS as u8;
    bs[21] = 0xF8;
    bs[24..26].copy_from_slice(&32u16.to_le_bytes());
    bs[26..28].copy_from_slice(&64u16.to_le_bytes());
    bs[28..32].copy_from_slice(&((offset / SECTOR) as u32).to_le_bytes());
    bs[32..36].copy_from_slice(&(geo.total_sectors as u32).to_le_bytes());
    bs[36..40].copy_from_slice(&(geo.fat_sectors as u32).to_le_bytes());
    bs[44..48].copy_from_slice(&ROOT_CLUSTER.to_le_bytes());
    bs[48..50].copy_from_slice(&1u16.to_le_bytes());
    bs[50..52].copy_from_slice(&6u16.to_le_bytes());
    bs[64] = 0x80;
    bs[66] = 0x29;
    bs[67..71].copy_from_slice(&volume_id.to_le_bytes());
    bs[71..82].copy_from_slice(label);
    bs[82..90].copy_from_slice(b"FAT32   ");
    // Boot code: print nothing, halt ("not a bootable disk" is the firmware's business).
    bs[90..94].copy_from_slice(&[0xFA, 0xF4, 0xEB, 0xFD]); // cli; hlt; jmp $-1
    bs[510] = 0x55;
    bs[511] = 0xAA;
    bs
}

/// The FSInfo sector: `free` clusters, the first of them `next`.
fn fsinfo_sector(free: u64, next: u32) -> [u8; 512] {
    let mut fsinfo = [0u8; 512];
    fsinfo[..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    fsinfo[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    fsinfo[488..492].copy_from_slice(&(free as u32).to_le_bytes());
    let next_free = if free > 0 { next } else { 0xFFFF_FFFF };
    fsinfo[492..496].copy_from_slice(&next_free.to_le_bytes());
    fsinfo[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
    fsinfo
}

/// The reserved area, whole (zeros included, so stale bytes cannot survive): boot sector,
/// FSInfo and the third boot sector, and their backup copies from sector 6.
fn reserved_area(bs: &[u8; 512], fsinfo: &[u8; 512]) -> Vec<u8> {
    let mut third = [0u8; 512];
    third[510] = 0x55;
    third[511] = 0xAA;
    let mut reserved = vec![0u8; (RESERVED_SECTORS * SECTOR) as usize];
    for (sector, data) in [
        (0usize, bs),
        (1, fsinfo),
        (2, &third),
        (6, bs),
        (7, fsinfo),
        (8, &third),
    ] {
        reserved[sector * 512..sector * 512 + 512].copy_from_slice(data);
    }
    reserved
}

fn label_bytes(label: &str) -> Result<[u8; 11]> {
    ensure!(
        label.len() <= 11,
        "FAT label `{label}` is longer than 11 characters"
    );
    let mut out = [b' '; 11];
    for (i, c) in label.bytes().enumerate() {
        let u = c.to_ascii_uppercase();
        ensure!(
            short_char_ok(u) || u == b' ',
            "FAT label `{label}` has a character FAT labels cannot hold"
        );
        out[i] = u;
    }
    if label.is_empty() {
        out.copy_from_slice(b"NO NAME    ");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::util::cmd::CommandExt;

    #[test]
    fn geometry_is_fat32_with_enough_clusters() {
        let g = Geometry::for_size(127 << 20).unwrap();
        assert!(g.clusters >= MIN_FAT32_CLUSTERS);
        assert_eq!(g.sectors_per_cluster, 2);
        assert!(g.fat_sectors * 512 / 4 >= g.clusters + 2);
        let g = Geometry::for_size(600 << 20).unwrap();
        assert_eq!(g.sectors_per_cluster, 8);
        assert!(Geometry::for_size(20 << 20).is_err());
    }

    #[test]
    fn short_names_and_lowercase_flags() {
        assert_eq!(as_short("EFI").unwrap(), (*b"EFI        ", 0));
        assert_eq!(as_short("BOOTX64.EFI").unwrap(), (*b"BOOTX64 EFI", 0));
        assert_eq!(as_short("grub.cfg").unwrap(), (*b"GRUB    CFG", 0x18));
        assert!(as_short("Grub.cfg").is_none());
        assert!(as_short("grubx64-long.efi").is_none());
        assert!(as_short("a.b.c").is_none());
        assert_eq!(fat_datetime(0), (1 << 5 | 1, 0));
        // 2024-02-29 13:45:58 UTC
        assert_eq!(
            fat_datetime(1_709_214_358),
            ((44 << 9) | (2 << 5) | 29, (13 << 11) | (45 << 5) | 29)
        );
    }

    fn fsck_and_list(with_offset: u64) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("esp");
        std::fs::create_dir_all(src.join("EFI/BOOT")).unwrap();
        std::fs::create_dir_all(src.join("EFI/fedora/fonts")).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(src.join("EFI/BOOT/BOOTX64.EFI"), &big).unwrap();
        std::fs::write(src.join("EFI/fedora/grub.cfg"), b"set timeout=1\n").unwrap();
        std::fs::write(src.join("EFI/fedora/A Long Mixed-Case Name.efi"), b"long").unwrap();
        std::fs::write(src.join("EFI/fedora/empty"), b"").unwrap();
        std::fs::write(src.join("startup.nsh"), b"fs0:\\EFI\\BOOT\\BOOTX64.EFI\n").unwrap();
        let img = dir.path().join("esp.img");
        let size = 127u64 << 20;
        let f = File::create(&img).unwrap();
        f.set_len(with_offset + size).unwrap();
        let opts = FatOptions {
            label: "EFI-SYSTEM".into(),
            volume_id: 0x7B77_95E7,
            timestamp: 1_700_000_000,
        };
        write_fat32(&f, with_offset, size, &src, &opts).unwrap();
        drop(f);
        let part = if with_offset == 0 {
            img.clone()
        } else {
            let p = dir.path().join("part.img");
            let data = std::fs::read(&img).unwrap();
            std::fs::write(&p, &data[with_offset as usize..]).unwrap();
            p
        };
        let out = Command::new("fsck.fat")
            .arg("-n")
            .arg("-v")
            .arg(&part)
            .run_text()
            .unwrap();
        for bad in [
            "differ",
            "Free cluster",
            "Wrong",
            "wrong",
            "invalid",
            "Invalid",
            "Leaving",
            "Dirty",
            "Warning",
            "corrected",
            "bad",
            "Bad",
        ] {
            assert!(!out.contains(bad), "fsck.fat complained ({bad}):\n{out}");
        }
        assert!(out.contains(": 10 files, "), "{out}");
        let id = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "UUID"])
            .arg(&part)
            .run_text()
            .unwrap();
        assert_eq!(id.trim(), "7B77-95E7");
        // mtools reads back every file and name.
        let listing = Command::new("mdir")
            .args(["-/", "-b", "-i"])
            .arg(&part)
            .arg("::/")
            .run_text()
            .unwrap();
        for want in [
            "::/EFI/BOOT/BOOTX64.EFI",
            "::/EFI/fedora/grub.cfg",
            "::/EFI/fedora/A Long Mixed-Case Name.efi",
            "::/startup.nsh",
        ] {
            assert!(listing.contains(want), "{want} missing in\n{listing}");
        }
        let copy = dir.path().join("copy");
        Command::new("mcopy")
            .args(["-n", "-i"])
            .arg(&part)
            .arg("::/EFI/BOOT/BOOTX64.EFI")
            .arg(&copy)
            .run()
            .unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), big);
        let label = Command::new("mlabel")
            .args(["-s", "-i"])
            .arg(&part)
            .arg("::")
            .run_text()
            .unwrap();
        assert!(label.contains("EFI-SYSTEM"), "{label}");
    }

    #[test]
    fn fat32_passes_fsck_and_reads_back() {
        fsck_and_list(0);
    }

    #[test]
    fn fat32_at_an_offset() {
        fsck_and_list(1 << 20);
    }

    #[test]
    fn too_much_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("esp");
        std::fs::create_dir_all(&src).unwrap();
        let f = File::create(src.join("big")).unwrap();
        f.set_len(50 << 20).unwrap();
        let img = File::create(dir.path().join("img")).unwrap();
        img.set_len(40 << 20).unwrap();
        let opts = FatOptions {
            label: "X".into(),
            volume_id: 1,
            timestamp: 0,
        };
        let e = write_fat32(&img, 0, 40 << 20, &src, &opts).unwrap_err();
        assert!(e.to_string().contains("needs about 50 MiB"), "{e}");
    }
}
