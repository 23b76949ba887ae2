//! Conformance against pykickstart 3.78: every kickstart of `tests/fixtures/kickstart-corpus/` under
//! several syntax versions, validated by pykickstart (one Python process, `pykickstart_oracle.py`)
//! and by this crate; verdicts (and the first error line when both reject) must agree except for
//! the entries of `conformance-exceptions.txt`, each of which gives its reason.

#[path = "../../tests/support/oracle.rs"]
mod oracle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kickstart::{FsLoader, Options, Version, parse_path};

const VERSIONS: &[&str] = &[
    "F21", "F28", "F35", "F40", "DEVEL", "RHEL7", "RHEL9", "RHEL11",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            corpus_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "ks") {
            out.push(p);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    ok: bool,
    line: Option<i64>,
    message: String,
}

fn ours(path: &Path, version: &str) -> Verdict {
    let v = Version::parse(version).expect("known version");
    let dir = path.parent().expect("parent").to_path_buf();
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let loader = FsLoader { cwd: Some(dir) };
    let r = parse_path(&name, &Options::validate(v), &loader);
    match r.diagnostics.first() {
        None => Verdict {
            ok: true,
            line: None,
            message: String::new(),
        },
        Some(d) => Verdict {
            ok: false,
            line: if d.pykickstart_has_no_line {
                None
            } else {
                Some(d.line as i64)
            },
            message: d.message.clone(),
        },
    }
}

#[test]
fn corpus_verdicts_match_pykickstart() {
    if oracle::missing() {
        return;
    }
    let root = root();
    let python = root.join(".venv/bin/python");
    let corpus = root.join("tests/fixtures/kickstart-corpus");
    let mut files = Vec::new();
    corpus_files(&corpus, &mut files);
    assert!(files.len() > 100, "corpus has only {} files", files.len());
    let rel: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&corpus)
                .expect("under corpus")
                .to_string_lossy()
                .into_owned()
        })
        .collect();

    let out = Command::new(&python)
        .arg(root.join("kickstart/tests/pykickstart_oracle.py"))
        .arg(VERSIONS.join(","))
        .args(&rel)
        .current_dir(&corpus)
        .output()
        .expect("run the pykickstart oracle");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut oracle: BTreeMap<(String, String), Verdict> = BTreeMap::new();
    let mut py_seconds = 0.0;
    for line in String::from_utf8(out.stdout).expect("utf8").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("oracle json");
        py_seconds += v["seconds"].as_f64().unwrap_or(0.0);
        oracle.insert(
            (
                v["file"].as_str().unwrap().to_string(),
                v["version"].as_str().unwrap().to_string(),
            ),
            Verdict {
                ok: v["ok"].as_bool().unwrap(),
                line: v["line"].as_i64(),
                message: v["message"].as_str().unwrap_or("").into(),
            },
        );
    }
    assert_eq!(
        oracle.len(),
        rel.len() * VERSIONS.len(),
        "oracle answered for every file and version"
    );

    let exceptions_text =
        std::fs::read_to_string(root.join("kickstart/tests/conformance-exceptions.txt"))
            .expect("exceptions file");
    let mut exceptions: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in exceptions_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let mut parts = l.splitn(3, '\t');
        let (v, f, why) = (
            parts.next().unwrap(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        assert!(!why.trim().is_empty(), "exception without a reason: {l}");
        exceptions.insert((f.to_string(), v.to_string()), why.to_string());
    }

    let t0 = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut used = 0;
    for version in VERSIONS {
        let mut agree = 0;
        for (f, r) in files.iter().zip(&rel) {
            let theirs = &oracle[&(r.clone(), version.to_string())];
            let mine = ours(f, version);
            let same = mine.ok == theirs.ok && (mine.ok || mine.line == theirs.line);
            if same {
                agree += 1;
            } else if exceptions.contains_key(&(r.clone(), version.to_string())) {
                used += 1;
            } else {
                failures.push(format!(
                    "{version}\t{r}\tpykickstart: ok={} line={:?} {:?}\n\t\tours: ok={} line={:?} {:?}",
                    theirs.ok, theirs.line, theirs.message, mine.ok, mine.line, mine.message
                ));
            }
        }
        let pct = 100.0 * agree as f64 / files.len() as f64;
        println!(
            "{version}: {agree}/{} verdicts agree with pykickstart ({pct:.1} %)",
            files.len()
        );
    }
    println!(
        "ours {:.3}s vs pykickstart {:.3}s for {} validations; {used} listed exceptions",
        t0.elapsed().as_secs_f64(),
        py_seconds,
        rel.len() * VERSIONS.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
