//! Fuzz the kickstart parser (validate and flatten semantics, with an include graph in memory) and
//! the parse → write → parse round trip.
#![no_main]

use kickstart::{MemLoader, Options, Version, parse_with, write, writer::representable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kickstart_fuzz_one(data);
});

fn kickstart_fuzz_one(data: &[u8]) {
    // first byte picks the version, the rest is the kickstart; "a.ks"/"b.ks" are includable files
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let versions = Version::all();
    let version = versions[(sel & 0x7f) as usize % versions.len()];
    let text = String::from_utf8_lossy(rest);
    let loader = MemLoader::default()
        .with("a.ks", &text)
        .with("b.ks", "%include a.ks\npart / --size=1\n")
        .with("c.ks", "%post\necho\n");
    // the selector's high bit picks ksvalidator semantics (warnings abort commands, %ksappend
    // expanded) or ksflatten semantics followed by the write → re-parse round trip
    if sel & 0x80 != 0 {
        let _ = parse_with(&text, "top.ks", &Options::validate(version), &loader);
        return;
    }
    let flat = parse_with(&text, "top.ks", &Options::flatten(version), &loader);
    if flat.errors().next().is_some() {
        return;
    }
    let ks = flat.kickstart;
    let written = write(&ks);
    if !representable(&ks) {
        return;
    }
    let again = parse_with(
        &written,
        "top.ks",
        &Options::flatten(version),
        &MemLoader::default(),
    );
    assert!(
        again.errors().next().is_none(),
        "written kickstart does not parse:\n{written}\n{:?}",
        again.diagnostics
    );
    assert_eq!(
        again.kickstart.without_locations(),
        ks.without_locations(),
        "round trip changed the model; written text:\n{written}"
    );
}
