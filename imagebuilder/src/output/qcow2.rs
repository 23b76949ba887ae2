//! A streaming, write-once qcow2 (version 3) writer.
//!
//! The raw image is read once, front to back, through its data extents (`SEEK_DATA`/`SEEK_HOLE`);
//! all-zero clusters stay unallocated. Host layout: the header in cluster 0, then data clusters in
//! guest order with each L2 table written right after the last cluster it maps, then the L1 table,
//! the refcount blocks and the refcount table; finally the header is rewritten with their offsets.
//! Memory is bounded: one L2 table, one read buffer and one refcount per host cluster (2 bytes per
//! 64 KiB written), whatever the virtual size.
//!
//! Optional compression: deflate (raw, 4 KiB window, as qemu reads it) per cluster, packed
//! back to back; a cluster that does not shrink is stored plainly.

use std::fs::File;

use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result, ensure};

const MAGIC: u32 = 0x5146_49fb;
const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
const L2_ENTRIES: u64 = CLUSTER / 8;
/// refcount_order 4 = 16-bit refcounts.
const REFCOUNT_ORDER: u32 = 4;
const REFS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << REFCOUNT_ORDER);
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const HEADER_LEN: u32 = 104;

/// How to write the qcow2 file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qcow2Options {
    /// Deflate-compress each cluster (like `qemu-img convert -c`).
    pub compress: bool,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Qcow2Stats {
    pub virtual_size: u64,
    pub data_clusters: u64,
    pub compressed_clusters: u64,
    pub file_size: u64,
}

/// The data extents `[start, end)` of `f` (of length `len`): everything but holes.
pub fn data_extents(f: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom as RSeek, seek};
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let start = match seek(f, RSeek::Data(pos)) {
            Ok(p) => p,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e).context("SEEK_DATA"),
        };
        if start >= len {
            break;
        }
        let end = match seek(f, RSeek::Hole(start)) {
            Ok(p) => p.min(len),
            Err(e) => return Err(e).context("SEEK_HOLE"),
        };
        out.push((start, end));
        pos = end;
    }
    Ok(out)
}

/// The data extents of `f` as merged `[first, end)` cluster ranges.
fn cluster_extents(f: &File, len: u64) -> Result<Vec<(u64, u64)>> {
    let mut extents: Vec<(u64, u64)> = Vec::new();
    for (s, e) in data_extents(f, len)? {
        let s = s / CLUSTER;
        let e = e.div_ceil(CLUSTER);
        match extents.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => extents.push((s, e)),
        }
    }
    Ok(extents)
}

/// How many bytes [`write_qcow2_with_progress`] reads from `raw` (the total of its progress).
pub fn bytes_to_read(raw: &Path) -> Result<u64> {
    let f = File::open(raw).with_context(|| format!("opening {}", raw.display()))?;
    let len = f.metadata()?.len();
    Ok(cluster_extents(&f, len)?
        .iter()
        .map(|(s, e)| (e * CLUSTER).min(len) - s * CLUSTER)
        .sum())
}

/// A page-aligned byte buffer (reads and writes through the page cache copy faster from
/// aligned memory).
struct PageBuf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl PageBuf {
    fn new(len: usize) -> PageBuf {
        let v = vec![0u8; len + 4096];
        let off = (4096 - v.as_ptr() as usize % 4096) % 4096;
        PageBuf { v, off, len }
    }
    fn get(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// All-zero test with an early exit every 512 bytes (data clusters usually fail at once).
fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(512).all(|block| {
        let words = block.chunks_exact(16);
        let rest = words.remainder();
        words.fold(0u128, |acc, c| {
            acc | u128::from_ne_bytes(c.try_into().unwrap_or_default())
        }) == 0
            && rest.iter().all(|b| *b == 0)
    })
}

/// The output file: appended to at `pos`; small pieces (compressed clusters, padding) are gathered
/// in `pending`, large data runs are written straight from the read buffer.
struct Out<'a> {
    file: &'a File,
    pos: u64,
    pending: Vec<u8>,
    pending_at: u64,
    refcounts: Vec<u16>,
}

impl Out<'_> {
    fn bump(&mut self, from: u64, to: u64) {
        // Every host cluster overlapping [from, to) gets one more reference.
        let first = from / CLUSTER;
        let last = (to - 1) / CLUSTER;
        if self.refcounts.len() <= last as usize {
            self.refcounts.resize(last as usize + 1, 0);
        }
        for c in first..=last {
            self.refcounts[c as usize] += 1;
        }
    }

    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.file
                .write_all_at(&self.pending, self.pending_at)
                .context("writing qcow2")?;
            self.pending.clear();
        }
        self.pending_at = self.pos;
        Ok(())
    }

    fn push(&mut self, data: &[u8]) -> Result<()> {
        if self.pending.is_empty() {
            self.pending_at = self.pos;
        }
        self.pending.extend_from_slice(data);
        self.pos += data.len() as u64;
        if self.pending.len() >= 4 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn pad_to_cluster(&mut self) -> Result<()> {
        let rem = self.pos % CLUSTER;
        if rem != 0 {
            self.push(&vec![0u8; (CLUSTER - rem) as usize])?;
        }
        Ok(())
    }

    /// Appends whole clusters at a cluster boundary, refcount 1 each; large runs go straight out.
    fn append_clusters(&mut self, data: &[u8]) -> Result<u64> {
        self.pad_to_cluster()?;
        let at = self.pos;
        let n = (data.len() as u64).div_ceil(CLUSTER) * CLUSTER;
        if data.len() as u64 == n && n >= 4 * CLUSTER {
            self.flush()?;
            // Allocating the extent first (as qemu-img does) makes the page-cache write cheaper.
            let _ = rustix::fs::fallocate(self.file, rustix::fs::FallocateFlags::empty(), at, n);
            self.file.write_all_at(data, at).context("writing qcow2")?;
            self.pos += n;
            self.pending_at = self.pos;
        } else {
            self.push(data)?;
            if n > data.len() as u64 {
                self.push(&vec![0u8; (n - data.len() as u64) as usize])?;
            }
        }
        self.bump(at, at + n);
        Ok(at)
    }

    /// Appends compressed bytes anywhere (byte granular).
    fn append_bytes(&mut self, data: &[u8]) -> Result<u64> {
        let at = self.pos;
        self.push(data)?;
        self.bump(at, at + data.len() as u64);
        Ok(at)
    }
}

fn deflate_cluster(data: &[u8], out: &mut Vec<u8>) -> Result<bool> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut c = Compress::new_with_window_bits(Compression::default(), false, 12);
    out.clear();
    out.reserve(data.len());
    let st = c
        .compress_vec(data, out, FlushCompress::Finish)
        .context("deflate")?;
    Ok(st == Status::StreamEnd && out.len() < data.len())
}

/// Converts the raw image at `raw` into qcow2 written to `out` (an empty, writable file).
pub fn write_qcow2_from_raw(raw: &Path, out: &File, opts: Qcow2Options) -> Result<Qcow2Stats> {
    write_qcow2_with_progress(raw, out, opts, &|_| {})
}

/// [`write_qcow2_from_raw`], calling `progress(n)` after each `n` bytes read (their sum is
/// [`bytes_to_read`]).
pub fn write_qcow2_with_progress(
    raw: &Path,
    out: &File,
    opts: Qcow2Options,
    progress: &dyn Fn(u64),
) -> Result<Qcow2Stats> {
    let input = File::open(raw).with_context(|| format!("opening {}", raw.display()))?;
    let vsize = input.metadata()?.len();
    ensure!(
        vsize % 512 == 0,
        "raw image size {vsize} is not a multiple of 512"
    );
    let mut o = Out {
        file: out,
        pos: 0,
        pending: Vec::new(),
        pending_at: 0,
        refcounts: Vec::new(),
    };
    // Cluster 0: the header, written for real at the end.
    o.append_clusters(&[0u8; CLUSTER as usize])?;
    let mut map = Mapping::new(vsize, opts.compress);
    let extents = cluster_extents(&input, vsize)?;
    copy_data(&input, raw, vsize, extents, &mut o, &mut map, progress)?;
    let l1_offset = map.finish(&mut o)?;
    o.pad_to_cluster()?;
    let (rt_start, rt) = write_refcounts(&mut o)?;
    o.flush()?;
    let file_size = o.pos;
    drop(o);
    let h = header(vsize, map.l1.len() as u32, l1_offset, rt_start, rt);
    out.write_all_at(&h, 0).context("writing qcow2 header")?;
    ensure!(out.metadata()?.len() == file_size, "qcow2 size mismatch");
    Ok(Qcow2Stats {
        file_size,
        ..map.stats
    })
}

/// Clusters per read (8 MiB).
const BATCH: u64 = 128;

/// Reads the data `extents` of `input` in batches and writes their non-zero clusters. A reader
/// thread fills batches while this thread checks and writes the previous one (qemu-img overlaps
/// reads and writes the same way); buffers are recycled, at most three.
fn copy_data(
    input: &File,
    raw: &Path,
    vsize: u64,
    extents: Vec<(u64, u64)>,
    o: &mut Out<'_>,
    map: &mut Mapping,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(1);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<PageBuf>();
    for _ in 0..3 {
        back_tx.send(PageBuf::new((BATCH * CLUSTER) as usize)).ok();
    }
    std::thread::scope(|scope| -> Result<()> {
        // Owned by this closure: on an early error it is dropped before the scope joins the
        // reader, which then stops instead of waiting for a buffer forever.
        let back_tx = back_tx;
        scope.spawn(move || read_batches(input, raw, vsize, extents, &tx, &back_rx));
        for msg in rx {
            let (c, n, page_buf) = msg?;
            map.write_batch(o, page_buf.get(), c, n)?;
            back_tx.send(page_buf).ok();
            progress((n * CLUSTER).min(vsize - c * CLUSTER));
        }
        Ok(())
    })
}

/// `n` clusters of the raw image from cluster `c`, zero-padded past its end.
type Batch = (u64, u64, PageBuf);

/// The reader thread of [`copy_data`]: sends the batches of `extents` in order, in the buffers
/// sent back; stops at the first read error (sent on) or when the writer has gone.
fn read_batches(
    input: &File,
    raw: &Path,
    vsize: u64,
    extents: Vec<(u64, u64)>,
    tx: &std::sync::mpsc::SyncSender<Result<Batch>>,
    back_rx: &std::sync::mpsc::Receiver<PageBuf>,
) {
    for (first, end) in extents {
        let mut c = first;
        while c < end {
            let Ok(mut page_buf) = back_rx.recv() else {
                return;
            };
            let buf = page_buf.get_mut();
            let n = (end - c).min(BATCH);
            let bytes = (n * CLUSTER).min(vsize - c * CLUSTER) as usize;
            let r = input
                .read_exact_at(&mut buf[..bytes], c * CLUSTER)
                .with_context(|| format!("reading {}", raw.display()));
            buf[bytes..(n * CLUSTER) as usize].fill(0);
            if tx.send(r.map(|()| (c, n, page_buf))).is_err() {
                return;
            }
            c += n;
        }
    }
}

/// The guest-to-host mapping being written: the L1 table, the one L2 table being filled, and what
/// [`Qcow2Stats`] counts.
struct Mapping {
    l1: Vec<u64>,
    l2: Vec<u64>,
    l2_index: Option<u64>,
    l2_dirty: bool,
    compress: bool,
    /// The compressed cluster, reused.
    cbuf: Vec<u8>,
    stats: Qcow2Stats,
}

impl Mapping {
    fn new(vsize: u64, compress: bool) -> Mapping {
        let l1_entries = vsize.div_ceil(CLUSTER).div_ceil(L2_ENTRIES);
        Mapping {
            l1: vec![0u64; l1_entries as usize],
            l2: vec![0u64; L2_ENTRIES as usize],
            l2_index: None,
            l2_dirty: false,
            compress,
            cbuf: Vec::new(),
            stats: Qcow2Stats {
                virtual_size: vsize,
                ..Default::default()
            },
        }
    }

    /// Writes out L2 table `idx` if it maps anything, and empties it.
    fn flush_l2(&mut self, o: &mut Out<'_>, idx: u64) -> Result<()> {
        if self.l2_dirty {
            let bytes: Vec<u8> = self.l2.iter().flat_map(|e| e.to_be_bytes()).collect();
            let at = o.append_clusters(&bytes)?;
            self.l1[idx as usize] = at | COPIED;
        }
        self.l2.fill(0);
        self.l2_dirty = false;
        Ok(())
    }

    /// Makes L2 table `idx` the one being filled, writing out the previous one.
    fn select_l2(&mut self, o: &mut Out<'_>, idx: u64) -> Result<()> {
        if self.l2_index != Some(idx) {
            if let Some(prev) = self.l2_index {
                self.flush_l2(o, prev)?;
            }
            self.l2_index = Some(idx);
        }
        Ok(())
    }

    /// Writes the non-zero clusters of `buf`, `n` clusters from guest cluster `c`: compressed one
    /// by one, or plain in runs within one L2 table.
    fn write_batch(&mut self, o: &mut Out<'_>, buf: &[u8], c: u64, n: u64) -> Result<()> {
        let cluster = |i: u64| &buf[(i * CLUSTER) as usize..((i + 1) * CLUSTER) as usize];
        let mut i = 0;
        while i < n {
            let guest = c + i;
            let chunk = cluster(i);
            if is_zero(chunk) {
                i += 1;
                continue;
            }
            let idx = guest / L2_ENTRIES;
            self.select_l2(o, idx)?;
            if self.compress {
                self.write_compressed(o, guest, chunk)?;
                i += 1;
                continue;
            }
            // A run of non-zero clusters within one L2 table, written in one go.
            let mut j = i + 1;
            while j < n && (c + j) / L2_ENTRIES == idx && !is_zero(cluster(j)) {
                j += 1;
            }
            let at = o.append_clusters(&buf[(i * CLUSTER) as usize..(j * CLUSTER) as usize])?;
            for k in i..j {
                self.l2[((c + k) % L2_ENTRIES) as usize] = (at + (k - i) * CLUSTER) | COPIED;
            }
            self.stats.data_clusters += j - i;
            self.l2_dirty = true;
            i = j;
        }
        Ok(())
    }

    /// Writes guest cluster `guest` deflated, or plain when that does not shrink it.
    fn write_compressed(&mut self, o: &mut Out<'_>, guest: u64, chunk: &[u8]) -> Result<()> {
        let entry = if deflate_cluster(chunk, &mut self.cbuf)? {
            let at = o.append_bytes(&self.cbuf)?;
            let end = at + self.cbuf.len() as u64;
            let nsect = (end - 1) / 512 - at / 512; // additional sectors
            self.stats.compressed_clusters += 1;
            COMPRESSED | (nsect << (62 - (CLUSTER_BITS - 8))) | at
        } else {
            o.append_clusters(chunk)? | COPIED
        };
        self.l2[(guest % L2_ENTRIES) as usize] = entry;
        self.stats.data_clusters += 1;
        self.l2_dirty = true;
        Ok(())
    }

    /// Writes the last L2 table and then the L1 table; returns the L1 table's offset (0 for an
    /// empty image).
    fn finish(&mut self, o: &mut Out<'_>) -> Result<u64> {
        if let Some(prev) = self.l2_index {
            self.flush_l2(o, prev)?;
        }
        let l1_bytes: Vec<u8> = self.l1.iter().flat_map(|e| e.to_be_bytes()).collect();
        if l1_bytes.is_empty() {
            return Ok(0);
        }
        o.append_clusters(&l1_bytes)
    }
}

/// Appends the refcount blocks and table, covering every host cluster, themselves included;
/// returns the table's first cluster and its length in clusters.
fn write_refcounts(o: &mut Out<'_>) -> Result<(u64, u64)> {
    let base = o.pos / CLUSTER;
    let (mut rb, mut rt) = (0u64, 0u64);
    loop {
        let total = base + rb + rt;
        let nrb = total.div_ceil(REFS_PER_BLOCK);
        let nrt = (nrb * 8).div_ceil(CLUSTER);
        if (nrb, nrt) == (rb, rt) {
            break;
        }
        (rb, rt) = (nrb, nrt);
    }
    let rb_start = base;
    let rt_start = base + rb;
    o.refcounts.resize((base + rb + rt) as usize, 0);
    for c in rb_start..rt_start + rt {
        o.refcounts[c as usize] = 1;
    }
    let mut table = Vec::with_capacity((rt * CLUSTER) as usize);
    for b in 0..rb {
        let from = (b * REFS_PER_BLOCK) as usize;
        let to = (((b + 1) * REFS_PER_BLOCK) as usize).min(o.refcounts.len());
        let mut block: Vec<u8> = o.refcounts[from..to]
            .iter()
            .flat_map(|r| r.to_be_bytes())
            .collect();
        block.resize(CLUSTER as usize, 0);
        o.push(&block)?;
        table.extend(((rb_start + b) * CLUSTER).to_be_bytes());
    }
    table.resize((rt * CLUSTER) as usize, 0);
    o.push(&table)?;
    Ok((rt_start, rt))
}

/// The version 3 header (with its empty extension list).
fn header(vsize: u64, l1_entries: u32, l1_offset: u64, rt_start: u64, rt: u64) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN as usize + 8];
    h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    // backing file offset/size: 0
    h[20..24].copy_from_slice(&CLUSTER_BITS.to_be_bytes());
    h[24..32].copy_from_slice(&vsize.to_be_bytes());
    // crypt_method 0
    h[36..40].copy_from_slice(&l1_entries.to_be_bytes());
    h[40..48].copy_from_slice(&l1_offset.to_be_bytes());
    h[48..56].copy_from_slice(&(rt_start * CLUSTER).to_be_bytes());
    h[56..60].copy_from_slice(&(rt as u32).to_be_bytes());
    // nb_snapshots 0, snapshots_offset 0, incompatible/compatible/autoclear features 0
    h[96..100].copy_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    h[100..104].copy_from_slice(&HEADER_LEN.to_be_bytes());
    // header extension end marker: 8 zero bytes (already zero)
    h
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::util::cmd::CommandExt;

    fn sample_raw(path: &Path, size: u64) {
        let f = File::create(path).unwrap();
        f.set_len(size).unwrap();
        // Data at the start, a lone non-zero byte mid-cluster, a written-but-zero region, an
        // unaligned tail, and content beyond the first L2 table's 512 MiB.
        f.write_all_at(&vec![0xAB; 200_000], 0).unwrap();
        f.write_all_at(&[1], 3 * CLUSTER + 4097).unwrap();
        f.write_all_at(&vec![0u8; 300_000], 10 * CLUSTER).unwrap();
        let pattern: Vec<u8> = (0..150_000u32).map(|i| (i % 13) as u8).collect();
        f.write_all_at(&pattern, 600 << 20).unwrap();
        f.write_all_at(b"end", size - 3).unwrap();
    }

    fn check(compress: bool) {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("a.raw");
        let size = (700 << 20) + 512 * 3;
        sample_raw(&raw, size);
        let q = d.path().join("a.qcow2");
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&q)
            .unwrap();
        let seen = std::cell::Cell::new(0u64);
        let st = write_qcow2_with_progress(&raw, &out, Qcow2Options { compress }, &|n| {
            seen.set(seen.get() + n)
        })
        .unwrap();
        drop(out);
        assert_eq!(seen.get(), bytes_to_read(&raw).unwrap());
        assert!(seen.get() >= 200_000 + 150_000, "{}", seen.get());
        assert_eq!(st.virtual_size, size);
        // 4 clusters at the start (200000 bytes), 1 lone byte's cluster, 3 of pattern, 1 tail.
        assert_eq!(st.data_clusters, 4 + 3 + 1, "{st:?}");
        if compress {
            assert!(st.compressed_clusters >= 4, "{st:?}");
        }
        let chk = Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&q)
            .run_text()
            .unwrap();
        assert!(chk.contains("No errors were found"), "{chk}");
        let cmp = Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(&raw)
            .arg(&q)
            .run_text()
            .unwrap();
        assert!(cmp.contains("Images are identical"), "{cmp}");
        let info = Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(&q)
            .run_text()
            .unwrap();
        assert!(info.contains("\"compat\": \"1.1\""), "{info}");
        assert!(
            info.contains(&format!("\"virtual-size\": {size}")),
            "{info}"
        );
    }

    #[test]
    fn qcow2_passes_check_and_compares_equal() {
        check(false);
    }

    #[test]
    fn compressed_qcow2_passes_check_and_compares_equal() {
        check(true);
    }

    #[test]
    fn empty_image() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("e.raw");
        File::create(&raw).unwrap().set_len(1 << 20).unwrap();
        let q = d.path().join("e.qcow2");
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&q)
            .unwrap();
        let st = write_qcow2_from_raw(&raw, &out, Qcow2Options::default()).unwrap();
        assert_eq!(st.data_clusters, 0);
        Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&q)
            .run()
            .unwrap();
        let cmp = Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(&raw)
            .arg(&q)
            .run_text()
            .unwrap();
        assert!(cmp.contains("Images are identical"), "{cmp}");
    }
}
