//! The qcow2 writer against `qemu-img convert -O qcow2` on the same raw image, in the same run.
//!
//! usage: cargo bench -p imagebuilder --bench qcow2 -- [RAW [ROUNDS]]  (no RAW: a synthetic image)
//! Prints the median times, the ratio (target ≤ 1.0) and the writer's peak RSS; checks that both
//! outputs hold the same disk (`qemu-img compare`).
//!
//! Like for like: `qemu-img convert` does not fsync its output (it opens it `cache=unsafe`), so the
//! main ratio times both without fsync; a second ratio adds an fsync of the output to both.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use imagebuilder::output::qcow2::{Qcow2Options, write_qcow2_from_raw};
use imagebuilder::util::cmd::CommandExt;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// fsyncs `out`; returns the seconds it took.
fn fsync(out: &Path) -> f64 {
    let t = Instant::now();
    File::open(out).unwrap().sync_all().unwrap();
    t.elapsed().as_secs_f64()
}

/// (seconds writing, seconds of the fsync that follows).
fn ours(raw: &Path, out: &Path) -> (f64, f64) {
    let _ = std::fs::remove_file(out);
    let t = Instant::now();
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(out)
        .unwrap();
    write_qcow2_from_raw(raw, &f, Qcow2Options::default()).unwrap();
    let written = t.elapsed().as_secs_f64();
    drop(f);
    let s = fsync(out);
    eprintln!("  writer: {written:.2}s writing + {s:.2}s fsync");
    (written, s)
}

fn qemu(raw: &Path, out: &Path) -> (f64, f64) {
    let _ = std::fs::remove_file(out);
    let t = Instant::now();
    Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(out)
        .run()
        .unwrap();
    let written = t.elapsed().as_secs_f64();
    let s = fsync(out);
    eprintln!("  qemu-img: {written:.2}s writing + {s:.2}s fsync");
    (written, s)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let scratch =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or("/var/tmp".into())).unwrap();
    let raw = match args.first() {
        Some(r) => PathBuf::from(r),
        None => {
            // No image given (plain `cargo bench`): a 2 GiB sparse raw with 512 MiB of data in
            // 1 MiB pieces, a filesystem-like mix of data and holes.
            let p = scratch.path().join("synthetic.raw");
            let f = File::create(&p).unwrap();
            f.set_len(2 << 30).unwrap();
            let chunk: Vec<u8> = (0..1u32 << 20)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            for i in 0..512u64 {
                std::os::unix::fs::FileExt::write_all_at(
                    &f,
                    &chunk,
                    i * (3 << 20) + (i % 7) * 4096,
                )
                .unwrap();
            }
            println!("no RAW given: using a synthetic 2 GiB raw with 512 MiB of data");
            p
        }
    };
    let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir_in(raw.parent().unwrap_or(Path::new("."))).unwrap();
    let (a, b) = (dir.path().join("ours.qcow2"), dir.path().join("qemu.qcow2"));
    let (mut to, mut tq) = (Vec::new(), Vec::new());
    // Alternate which one goes first: the page cache and the previous round's deletions
    // (slow on `discard` mounts) must not favour either.
    for r in 0..rounds {
        if r % 2 == 0 {
            to.push(ours(&raw, &a));
            tq.push(qemu(&raw, &b));
        } else {
            tq.push(qemu(&raw, &b));
            to.push(ours(&raw, &a));
        }
    }
    let cmp = Command::new("qemu-img")
        .args(["compare", "-f", "qcow2", "-F", "qcow2"])
        .arg(&a)
        .arg(&b)
        .run_text()
        .unwrap();
    assert!(cmp.contains("Images are identical"), "{cmp}");
    let (mo, mq) = (
        median(to.iter().map(|t| t.0).collect()),
        median(tq.iter().map(|t| t.0).collect()),
    );
    let (so, sq) = (
        median(to.iter().map(|t| t.0 + t.1).collect()),
        median(tq.iter().map(|t| t.0 + t.1).collect()),
    );
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) >> 20;
    println!(
        "qcow2 writer: {mo:.2}s ({} MiB), qemu-img convert: {mq:.2}s ({} MiB), ratio {:.2} (target <= 1.0)",
        size(&a),
        size(&b),
        mo / mq
    );
    println!(
        "with an fsync of the output on both sides: writer {so:.2}s, qemu-img {sq:.2}s, ratio {:.2}",
        so / sq
    );
    println!(
        "qcow2 writer peak RSS (whole bench process): {} MiB",
        vm_hwm_kib() / 1024
    );
}
