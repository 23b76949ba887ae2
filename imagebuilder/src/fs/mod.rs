//! Filesystems written straight into the disk image, without mounting: ext4/ext3 with `mke2fs -d`
//! at the partition's byte offset, btrfs with `mkfs.btrfs --rootdir` (into a scratch file, then a
//! sparse copy), swap signatures natively. Also the size estimates that size `--grow` partitions,
//! and the timestamp clamping that makes ext4 images reproducible.

pub(crate) mod fat;
pub mod xfs;

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::plan::{Filesystem, FsKind, MIB};
use crate::util::cmd::CommandExt;

/// What a directory tree holds, as counted for sizing (hard links counted once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Bytes of file data and symlink targets, each rounded up to 4 KiB blocks.
    pub data_bytes: u64,
    /// Distinct inodes (files, directories, symlinks, devices).
    pub inodes: u64,
    /// Directories.
    pub dirs: u64,
}

/// Walks `dir` (not following symlinks, not crossing into `skip`) and counts what it holds.
pub fn tree_stats(dir: &Path) -> Result<TreeStats> {
    let mut stats = TreeStats::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        stats.inodes += 1;
        stats.dirs += 1;
        stats.data_bytes += 4096;
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let md = e
                .metadata()
                .with_context(|| format!("reading {}", e.path().display()))?;
            if md.is_dir() {
                stack.push(e.path());
                continue;
            }
            if md.nlink() > 1 && !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            stats.inodes += 1;
            if md.is_file() || md.file_type().is_symlink() {
                // Small symlinks live in the inode; bigger ones and files take blocks.
                let len = md.len();
                if md.is_file() || len > 60 {
                    stats.data_bytes += len.div_ceil(4096) * 4096;
                }
            }
        }
    }
    Ok(stats)
}

/// The default ext4 journal size mke2fs picks for a filesystem of `bytes`.
fn journal_bytes(bytes: u64) -> u64 {
    let blocks = bytes / 4096;
    MIB * match blocks {
        b if b < 32_768 => 4,
        b if b < 256 * 1024 => 16,
        b if b < 512 * 1024 => 32,
        b if b < 4096 * 1024 => 64,
        b if b < 8192 * 1024 => 128,
        _ => 256,
    }
}

/// Inodes to ask mke2fs for: its default (one per 16 KiB) unless the content needs more.
pub fn ext_inodes(size: u64, stats: &TreeStats) -> Option<u64> {
    let default = size / 16384;
    let want = stats.inodes + stats.inodes / 4 + 1024;
    (want > default).then_some(want)
}

/// Bytes a filesystem of `kind` needs to hold `stats` (a generous estimate).
pub fn estimate_bytes(kind: FsKind, stats: &TreeStats) -> u64 {
    match kind {
        FsKind::Ext4 | FsKind::Ext3 => {
            let data = stats.data_bytes + stats.data_bytes / 20;
            let inode_tables = (stats.inodes + stats.inodes / 4 + 1024) * 256;
            let base = data + inode_tables + 8 * MIB;
            // Block/inode bitmaps and group descriptors: ~2 blocks per 128 MiB group.
            let groups = base.div_ceil(128 * MIB) + 1;
            let est = base + groups * 3 * 4096;
            est + journal_bytes(est)
        }
        FsKind::Btrfs => stats.data_bytes + stats.data_bytes / 5 + stats.inodes * 512 + 160 * MIB,
        // 512-byte inodes in chunks of 64, directory blocks, the log (≥ 10 MiB on small
        // filesystems) and per-AG metadata; never below what mkfs.xfs accepts.
        FsKind::Xfs => {
            let est = stats.data_bytes
                + stats.data_bytes / 10
                + (stats.inodes + 64) * 512
                + stats.dirs * 4096
                + 96 * MIB;
            est.max(crate::fs::xfs::MIN_BYTES)
        }
        FsKind::Vfat => stats.data_bytes + stats.dirs * 4096 + 36 * MIB,
        FsKind::Swap => 0,
    }
}

/// Options shared by every filesystem writer.
#[derive(Debug, Clone, Copy, Default)]
pub struct MkfsOptions {
    /// `SOURCE_DATE_EPOCH`: fixed creation times and clamped inode times.
    pub epoch: Option<i64>,
}

/// Creates an ext4/ext3 filesystem of `size` bytes at byte `offset` of `image`, populated from `src`.
pub fn make_ext(
    image: &Path,
    offset: u64,
    size: u64,
    fs: &Filesystem,
    src: &Path,
    opts: MkfsOptions,
) -> Result<()> {
    ensure!(
        matches!(fs.kind, FsKind::Ext4 | FsKind::Ext3),
        "not an ext filesystem"
    );
    let stats = tree_stats(src)?;
    let uuid = fs.uuid().context("ext filesystem without a UUID")?;
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-F", "-t", fs.kind.fstab_type(), "-b", "4096", "-U"])
        .arg(uuid.to_string())
        .arg("-E")
        // hash_seed fixes directory hashing; root_owner keeps the staged root's ownership.
        .arg(format!(
            "offset={offset},hash_seed={uuid},root_owner=0:0,nodiscard"
        ))
        .arg("-d")
        .arg(src);
    if let Some(label) = &fs.label {
        cmd.arg("-L").arg(label);
    }
    if let Some(n) = ext_inodes(size, &stats) {
        cmd.arg("-N").arg(n.to_string());
    }
    if let Some(epoch) = opts.epoch {
        cmd.env("E2FSPROGS_FAKE_TIME", epoch.to_string());
    }
    cmd.arg(image).arg(format!("{}k", size / 1024));
    cmd.run().with_context(|| {
        format!(
            "creating {} on {} ({} MiB; the content needs about {} MiB)",
            fs.kind.fstab_type(),
            fs.mountpoint,
            size / MIB,
            estimate_bytes(fs.kind, &stats).div_ceil(MIB)
        )
    })?;
    if let Some(epoch) = opts.epoch {
        let f = File::options()
            .read(true)
            .write(true)
            .open(image)
            .context("opening disk image")?;
        ext_clamp_ctimes(&f, offset, epoch as u32)
            .with_context(|| format!("fixing inode change times on {}", fs.mountpoint))?;
    }
    Ok(())
}

/// Makes every hard link set under `dir` self-contained: a file that also has links outside `dir`
/// (ostree hard-links repository objects from the source repository and kernels into /boot) is
/// replaced by a private copy, re-linked to its other paths inside `dir`. `mkfs.btrfs --rootdir`
/// takes the link count from the source, which would otherwise be wrong. Returns the files copied.
pub fn isolate_hardlinks(dir: &Path) -> Result<u64> {
    use std::collections::HashMap;
    let mut sets: HashMap<(u64, u64), (u64, Vec<std::path::PathBuf>)> = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else if md.nlink() > 1 {
                sets.entry((md.dev(), md.ino()))
                    .or_insert((md.nlink(), Vec::new()))
                    .1
                    .push(e.path());
            }
        }
    }
    let mut copied = 0;
    for (_, (nlink, mut paths)) in sets {
        if paths.len() as u64 >= nlink {
            continue;
        }
        paths.sort();
        let first = &paths[0];
        let md = std::fs::symlink_metadata(first)?;
        let tmp = first.with_file_name(format!(".imagebuilder-copy-{}", md.ino()));
        std::fs::copy(first, &tmp).with_context(|| format!("copying {}", first.display()))?;
        std::os::unix::fs::lchown(&tmp, Some(md.uid()), Some(md.gid()))?;
        std::fs::set_permissions(&tmp, md.permissions())?;
        let mtime = std::fs::File::options().write(true).open(&tmp)?;
        mtime.set_modified(md.modified()?)?;
        for p in &paths {
            let link = p.with_file_name(format!(".imagebuilder-link-{}", md.ino()));
            std::fs::hard_link(&tmp, &link)?;
            std::fs::rename(&link, p).with_context(|| format!("replacing {}", p.display()))?;
        }
        std::fs::remove_file(&tmp)?;
        copied += 1;
    }
    Ok(copied)
}

/// Creates a btrfs filesystem of `size` bytes populated from `src` in `scratch`, then copies it
/// (holes stay holes) to byte `offset` of `image`.
pub fn make_btrfs(
    image: &Path,
    offset: u64,
    size: u64,
    fs: &Filesystem,
    src: &Path,
    scratch: &Path,
) -> Result<()> {
    let uuid = fs.uuid().context("btrfs without a UUID")?;
    isolate_hardlinks(src)?;
    {
        let f = File::create(scratch).with_context(|| format!("creating {}", scratch.display()))?;
        f.set_len(size).context("sizing btrfs scratch file")?;
    }
    let mut cmd = Command::new("mkfs.btrfs");
    cmd.args(["-q", "-f", "-U"])
        .arg(uuid.to_string())
        .arg("--rootdir")
        .arg(src);
    if let Some(label) = &fs.label {
        cmd.arg("-L").arg(label);
    }
    cmd.arg(scratch);
    cmd.run()
        .with_context(|| format!("creating btrfs on {} ({} MiB)", fs.mountpoint, size / MIB))?;
    let from = File::open(scratch).with_context(|| format!("opening {}", scratch.display()))?;
    let to = File::options()
        .write(true)
        .open(image)
        .context("opening disk image")?;
    copy_sparse(&from, &to, offset).context("copying btrfs into the disk image")?;
    std::fs::remove_file(scratch).ok();
    Ok(())
}

/// Copies the data extents of `from` to `to` at `offset`, skipping holes.
pub fn copy_sparse(from: &File, to: &File, offset: u64) -> Result<()> {
    let len = from.metadata()?.len();
    let mut buf = vec![0u8; 4 << 20];
    for (start, end) in crate::output::qcow2::data_extents(from, len)? {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            from.read_exact_at(&mut buf[..n], pos)?;
            to.write_all_at(&buf[..n], offset + pos)?;
            pos += n as u64;
        }
    }
    Ok(())
}

/// Copies `size` bytes at `offset` of `image` into a new file `to` (one filesystem out of a
/// disk image, for fsck-style tools), leaving all-zero MiB blocks as holes.
pub fn extract_range(image: &Path, offset: u64, size: u64, to: &Path) -> Result<()> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let out = File::create(to).with_context(|| format!("creating {}", to.display()))?;
    out.set_len(size)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(MIB) as usize;
        f.read_exact_at(&mut buf[..n], offset + pos)
            .with_context(|| format!("reading {}", image.display()))?;
        if buf[..n].iter().any(|b| *b != 0) {
            out.write_all_at(&buf[..n], pos)
                .with_context(|| format!("writing {}", to.display()))?;
        }
        pos += n as u64;
    }
    Ok(())
}

/// Writes a Linux swap signature (version 1) over `size` bytes at `offset`.
pub fn make_swap(image: &File, offset: u64, size: u64, fs: &Filesystem) -> Result<()> {
    const PAGE: u64 = 4096;
    let pages = size / PAGE;
    ensure!(pages >= 10, "swap on {} is too small", fs.mountpoint);
    let uuid = fs.uuid().context("swap without a UUID")?;
    let mut page = vec![0u8; PAGE as usize];
    page[1024..1028].copy_from_slice(&1u32.to_le_bytes());
    page[1028..1032].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
    page[1036..1052].copy_from_slice(uuid.as_bytes());
    if let Some(label) = &fs.label {
        let l = label.as_bytes();
        ensure!(l.len() < 16, "swap label `{label}` is too long");
        page[1052..1052 + l.len()].copy_from_slice(l);
    }
    page[PAGE as usize - 10..].copy_from_slice(b"SWAPSPACE2");
    image
        .write_all_at(&page, offset)
        .context("writing swap signature")
}

// ---- ext4 inode change times -------------------------------------------------------------

const fn crc32c_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC32C: [u32; 256] = crc32c_table();

/// Raw CRC32C as ext4 uses it (no pre/post inversion).
fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// What [`ext_clamp_ctimes`] reads from an ext superblock to find and checksum the inodes.
struct ExtInodeTables {
    block: u64,
    inodes_per_group: u64,
    inode_size: usize,
    is64: bool,
    desc_size: usize,
    first_data: u64,
    groups: u64,
    /// `metadata_csum`: inodes carry a CRC32C seeded with `seed`.
    csum: bool,
    seed: u32,
}

impl ExtInodeTables {
    fn read(f: &File, offset: u64) -> Result<ExtInodeTables> {
        let mut sb = [0u8; 1024];
        f.read_exact_at(&mut sb, offset + 1024)?;
        ensure!(le16(&sb, 0x38) == 0xEF53, "no ext superblock");
        let incompat = le32(&sb, 0x60);
        let is64 = incompat & 0x80 != 0;
        let first_data = le32(&sb, 0x14) as u64;
        let blocks = le32(&sb, 0x4) as u64 | hi32(is64, le32(&sb, 0x150));
        let per_group = le32(&sb, 0x20) as u64;
        Ok(ExtInodeTables {
            block: 1024u64 << le32(&sb, 0x18),
            inodes_per_group: le32(&sb, 0x28) as u64,
            inode_size: le16(&sb, 0x58) as usize,
            is64,
            desc_size: if is64 { le16(&sb, 0xFE) as usize } else { 32 },
            first_data,
            groups: (blocks - first_data).div_ceil(per_group),
            csum: le32(&sb, 0x64) & 0x400 != 0,
            seed: if incompat & 0x2000 != 0 {
                le32(&sb, 0x270)
            } else {
                crc32c(!0, &sb[0x68..0x78])
            },
        })
    }

    /// A group's inode table block and how many of its inodes are in use (skipping groups
    /// whose inodes are uninitialised or all unused), from its descriptor `d`.
    fn used_inodes(&self, d: &[u8]) -> Option<(u64, u64)> {
        if le16(d, 0x12) & 1 != 0 {
            return None; // INODE_UNINIT
        }
        let itable = le32(d, 0x8) as u64 | hi32(self.is64, le32(d, 0x28));
        let unused = le16(d, 0x1C) as u64 | (hi16(self.is64, le16(d, 0x32)));
        let used = self.inodes_per_group.saturating_sub(unused);
        (used > 0).then_some((itable, used))
    }
}

/// The high half of a 64-bit field whose high 32 bits are `hi` on a 64-bit filesystem.
fn hi32(is64: bool, hi: u32) -> u64 {
    if is64 { (hi as u64) << 32 } else { 0 }
}

/// The high half of a 32-bit field whose high 16 bits are `hi` on a 64-bit filesystem.
fn hi16(is64: bool, hi: u16) -> u64 {
    if is64 { (hi as u64) << 16 } else { 0 }
}

/// `mke2fs -d` copies each source file's ctime (and atime) into the inode; ctimes are when the staging
/// tree was written, so they are set here to `epoch` (and the inode checksums recomputed).
pub fn ext_clamp_ctimes(f: &File, offset: u64, epoch: u32) -> Result<()> {
    let fs = ExtInodeTables::read(f, offset)?;
    let mut gdt = vec![0u8; fs.groups as usize * fs.desc_size];
    f.read_exact_at(&mut gdt, offset + (fs.first_data + 1) * fs.block)?;
    let mut table = Vec::new();
    for g in 0..fs.groups as usize {
        let d = &gdt[g * fs.desc_size..(g + 1) * fs.desc_size];
        let Some((itable, used)) = fs.used_inodes(d) else {
            continue;
        };
        table.resize(used as usize * fs.inode_size, 0);
        let at = offset + itable * fs.block;
        f.read_exact_at(&mut table, at)?;
        let mut dirty = false;
        for i in 0..used as usize {
            let ino = &mut table[i * fs.inode_size..(i + 1) * fs.inode_size];
            if le16(ino, 0) == 0 && le16(ino, 0x1A) == 0 {
                continue; // free inode: mode and links 0
            }
            if !clamp_inode_times(ino, fs.inode_size, epoch) {
                continue;
            }
            if fs.csum {
                let inum = (g as u64 * fs.inodes_per_group + i as u64 + 1) as u32;
                set_inode_checksum(ino, fs.seed, inum);
            }
            dirty = true;
        }
        if dirty {
            f.write_all_at(&table, at)?;
        }
    }
    Ok(())
}

/// Clamps an inode's atime, ctime and mtime to `epoch` (the ctime always, the others when newer);
/// true if it changed.
fn clamp_inode_times(ino: &mut [u8], inode_size: usize, epoch: u32) -> bool {
    let extra = if inode_size > 128 {
        le16(ino, 0x80) as usize
    } else {
        0
    };
    // (time offset, extra offset): atime, ctime, mtime. Reading the staging tree
    // updates directory atimes, so they are clamped as well as ctimes.
    let mut changed = false;
    for (t, x) in [(0x08usize, 0x8Cusize), (0x0C, 0x84), (0x10, 0x88)] {
        let v = le32(ino, t);
        let xv = if extra >= x - 0x80 + 4 {
            le32(ino, x)
        } else {
            0
        };
        let is_ctime = t == 0x0C;
        if v > epoch || (v == epoch && xv != 0) || (is_ctime && v != epoch) {
            ino[t..t + 4].copy_from_slice(&epoch.to_le_bytes());
            if extra >= x - 0x80 + 4 {
                ino[x..x + 4].fill(0);
            }
            changed = true;
        }
    }
    changed
}

/// Recomputes the CRC32C of inode number `inum` (its low half, and the high half when the inode
/// has room for it).
fn set_inode_checksum(ino: &mut [u8], seed: u32, inum: u32) {
    let extra = if ino.len() > 128 {
        le16(ino, 0x80) as usize
    } else {
        0
    };
    let generation = le32(ino, 0x64);
    let has_hi = extra >= 4;
    ino[0x7C..0x7E].fill(0);
    if has_hi {
        ino[0x82..0x84].fill(0);
    }
    let mut c = crc32c(seed, &inum.to_le_bytes());
    c = crc32c(c, &generation.to_le_bytes());
    c = crc32c(c, ino);
    ino[0x7C..0x7E].copy_from_slice(&(c as u16).to_le_bytes());
    if has_hi {
        ino[0x82..0x84].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
    }
}

/// Sets every timestamp newer than `epoch` under `dir` (symlinks included) to `epoch`.
pub fn clamp_mtimes(dir: &Path, epoch: i64) -> Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: epoch,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: epoch,
            tv_nsec: 0,
        },
    };
    let mut stack = vec![dir.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_dir() {
                stack.push(e.path());
            } else if md.mtime() > epoch || md.atime() > epoch {
                utimensat(CWD, e.path(), &ts, AtFlags::SYMLINK_NOFOLLOW)
                    .with_context(|| format!("setting times of {}", e.path().display()))?;
            }
        }
        dirs.push(d);
    }
    // Directories last: touching their entries changed their times.
    for d in dirs.iter().rev() {
        utimensat(CWD, d, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("setting times of {}", d.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FsKind;

    fn fs(kind: FsKind, mp: &str) -> Filesystem {
        Filesystem {
            kind,
            mountpoint: mp.into(),
            label: Some("lbl".into()),
            uuid: "96d15588-3596-4b3c-adca-a2ff7279ea63".into(),
            options: "defaults".into(),
        }
    }

    fn sample_tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
        std::fs::write(dir.join("usr/bin/tool"), vec![7u8; 10_000]).unwrap();
        std::fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool-link")).unwrap();
        std::os::unix::fs::symlink("tool", dir.join("usr/bin/sym")).unwrap();
    }

    #[test]
    fn stats_count_hardlinks_once() {
        let d = tempfile::tempdir().unwrap();
        sample_tree(d.path());
        let s = tree_stats(d.path()).unwrap();
        assert_eq!(s.dirs, 3);
        assert_eq!(s.inodes, 5);
        assert_eq!(s.data_bytes, 3 * 4096 + 12288);
        assert!(estimate_bytes(FsKind::Ext4, &s) > 8 * MIB);
    }

    #[test]
    fn ext4_at_offset_is_fsck_clean_keeps_hardlinks_and_is_reproducible() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        sample_tree(&src);
        let mut sums = Vec::new();
        for i in 0..2 {
            // Touch the source so ctimes differ between the two runs.
            std::fs::write(src.join(format!("f{i}")), b"x").unwrap();
            std::fs::remove_file(src.join(format!("f{i}"))).unwrap();
            clamp_mtimes(&src, 1_600_000_000).unwrap();
            let img = d.path().join(format!("disk{i}"));
            File::create(&img).unwrap().set_len(80 * MIB).unwrap();
            make_ext(
                &img,
                4 * MIB,
                64 * MIB,
                &fs(FsKind::Ext4, "/"),
                &src,
                MkfsOptions {
                    epoch: Some(1_600_000_000),
                },
            )
            .unwrap();
            let part = d.path().join(format!("part{i}"));
            let data = std::fs::read(&img).unwrap();
            std::fs::write(&part, &data[(4 * MIB) as usize..(68 * MIB) as usize]).unwrap();
            Command::new("e2fsck").arg("-fn").arg(&part).run().unwrap();
            let stat = Command::new("debugfs")
                .args(["-R", "stat /usr/bin/tool"])
                .arg(&part)
                .run_text()
                .unwrap();
            assert!(stat.contains("Links: 2"), "{stat}");
            assert!(stat.contains("ctime: 0x5f5e1000"), "{stat}");
            sums.push(data);
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let diff: Vec<usize> = (0..sums[0].len())
            .filter(|&i| sums[0][i] != sums[1][i])
            .take(16)
            .collect();
        assert!(diff.is_empty(), "two ext4 builds differ at {diff:x?}");
    }

    #[test]
    fn hardlinks_leaving_the_tree_are_isolated() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        sample_tree(&tree);
        std::fs::hard_link(tree.join("usr/bin/tool"), d.path().join("outside")).unwrap();
        assert_eq!(isolate_hardlinks(&tree).unwrap(), 1);
        let a = std::fs::metadata(tree.join("usr/bin/tool")).unwrap();
        let b = std::fs::metadata(tree.join("usr/bin/tool-link")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(
            std::fs::metadata(d.path().join("outside")).unwrap().nlink(),
            1
        );
        assert_eq!(
            std::fs::read(tree.join("usr/bin/tool")).unwrap(),
            vec![7u8; 10_000]
        );
        assert_eq!(isolate_hardlinks(&tree).unwrap(), 0);
    }

    #[test]
    fn swap_signature_is_recognised() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("swap");
        let f = File::create(&img).unwrap();
        f.set_len(8 * MIB).unwrap();
        let mut s = fs(FsKind::Swap, "swap");
        s.label = Some("myswap".into());
        make_swap(&f, 0, 8 * MIB, &s).unwrap();
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(&img)
            .run_text()
            .unwrap();
        assert!(out.contains("TYPE=swap"), "{out}");
        assert!(
            out.contains("UUID=96d15588-3596-4b3c-adca-a2ff7279ea63"),
            "{out}"
        );
        assert!(out.contains("LABEL=myswap"), "{out}");
    }

    #[test]
    fn btrfs_from_rootdir_lands_at_offset() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        sample_tree(&src);
        let img = d.path().join("disk");
        File::create(&img).unwrap().set_len(300 * MIB).unwrap();
        make_btrfs(
            &img,
            MIB,
            256 * MIB,
            &fs(FsKind::Btrfs, "/"),
            &src,
            &d.path().join("scratch"),
        )
        .unwrap();
        let part = d.path().join("part");
        let f = File::open(&img).unwrap();
        let out = File::create(&part).unwrap();
        out.set_len(256 * MIB).unwrap();
        let mut buf = vec![0u8; MIB as usize];
        for i in 0..256u64 {
            f.read_exact_at(&mut buf, MIB + i * MIB).unwrap();
            out.write_all_at(&buf, i * MIB).unwrap();
        }
        Command::new("btrfs")
            .args(["check", "--readonly"])
            .arg(&part)
            .run()
            .unwrap();
        let id = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "UUID"])
            .arg(&part)
            .run_text()
            .unwrap();
        assert_eq!(id.trim(), "96d15588-3596-4b3c-adca-a2ff7279ea63");
    }
}
