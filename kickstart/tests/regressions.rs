//! Inputs found by fuzzing (`fuzz/regressions/`): parsing must not panic, and the written form
//! of an error-free parse must parse again.

use kickstart::{MemLoader, Options, Version, parse_with, write};

#[test]
fn fuzz_regressions_parse_without_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/regressions");
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("regressions dir") {
        let bytes = std::fs::read(e.expect("entry").path()).expect("read");
        let Some((&sel, rest)) = bytes.split_first() else {
            continue;
        };
        let versions = Version::all();
        let v = versions[sel as usize % versions.len()];
        let text = String::from_utf8_lossy(rest);
        let _ = parse_with(
            &text,
            "top.ks",
            &Options::validate(v),
            &MemLoader::default(),
        );
        let flat = parse_with(&text, "top.ks", &Options::flatten(v), &MemLoader::default());
        let _ = write(&flat.kickstart);
        n += 1;
    }
    assert!(n >= 2, "regression inputs present");
}

#[test]
fn package_named_like_end_marker_is_a_package() {
    // "%end#x" inside %packages is not %end: pykickstart keeps "%end" as a package name
    let text = "%packages\n%end# comment\nvim\n%end\n";
    let r = parse_with(
        text,
        "t.ks",
        &Options::validate(Version::devel()),
        &MemLoader::default(),
    );
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let p = r.kickstart.packages.expect("packages");
    assert_eq!(p.packages, vec!["%end".to_string(), "vim".to_string()]);
}
