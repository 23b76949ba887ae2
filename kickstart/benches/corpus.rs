//! Benchmark (not a test): validate every corpus kickstart under DEVEL with this crate and with
//! pykickstart in the same run, and print the throughput ratio. pykickstart's time is the sum of
//! its per-file validation times measured inside one Python process (interpreter start-up and
//! imports excluded). Run: `cargo bench -p kickstart --bench corpus`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kickstart::{FsLoader, Options, Version, parse_path};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("corpus") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ks") {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("tests/fixtures/kickstart-corpus");
    let mut list = Vec::new();
    files(&corpus, &mut list);
    list.sort();
    let rel: Vec<String> = list
        .iter()
        .map(|f| {
            f.strip_prefix(&corpus)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();

    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("kickstart/tests/pykickstart_oracle.py"))
        .arg("DEVEL")
        .args(&rel)
        .current_dir(&corpus)
        .output()
        .expect("run pykickstart (scripts/install-deps.sh installs it)");
    let py: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["seconds"]
                .as_f64()
                .unwrap_or(0.0)
        })
        .sum();

    let v = Version::devel();
    let opts = Options::validate(v);
    let _ = kickstart::tables::tables(); // one-time table load, like Python's imports
    let rounds = 20;
    let t0 = Instant::now();
    let mut invalid = 0;
    for _ in 0..rounds {
        for f in &list {
            let loader = FsLoader {
                cwd: Some(f.parent().unwrap().to_path_buf()),
            };
            let r = parse_path(&f.file_name().unwrap().to_string_lossy(), &opts, &loader);
            invalid += usize::from(!r.diagnostics.is_empty());
        }
    }
    let ours = t0.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "corpus: {} files, {} invalid under DEVEL",
        list.len(),
        invalid / rounds
    );
    println!(
        "pykickstart: {py:.3} s per pass; ours: {:.4} s per pass (mean of {rounds})",
        ours
    );
    println!("speed-up: {:.0}x", py / ours);
}
