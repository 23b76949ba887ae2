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
        let v = versions[(sel & 0x7f) as usize % versions.len()];
        let text = String::from_utf8_lossy(rest);
        let _ = parse_with(
            &text,
            "top.ks",
            &Options::validate(v),
            &MemLoader::default(),
        );
        let loader = MemLoader::default()
            .with("a.ks", &text)
            .with("b.ks", "%include a.ks\npart / --size=1\n")
            .with("c.ks", "%post\necho\n");
        let flat = parse_with(&text, "top.ks", &Options::flatten(v), &loader);
        n += 1;
        if flat.errors().next().is_some() || !kickstart::writer::representable(&flat.kickstart) {
            continue;
        }
        let written = write(&flat.kickstart);
        let again = parse_with(
            &written,
            "top.ks",
            &Options::flatten(v),
            &MemLoader::default(),
        );
        assert!(
            again.errors().next().is_none(),
            "{written}\n{:?}",
            again.diagnostics
        );
        let (a, b) = (
            again.kickstart.without_locations(),
            flat.kickstart.without_locations(),
        );
        assert_eq!(a.commands, b.commands, "{written}");
        for (i, (x, y)) in a.scripts.iter().zip(&b.scripts).enumerate() {
            let p = x.body.chars().zip(y.body.chars()).position(|(c, d)| c != d);
            assert_eq!(
                x,
                y,
                "script {i} differs at {p:?} (lens {} {}): {:?}",
                x.body.len(),
                y.body.len(),
                p.map(|p| x
                    .body
                    .chars()
                    .skip(p.saturating_sub(20))
                    .take(60)
                    .collect::<String>())
            );
        }
        assert_eq!(a.scripts.len(), b.scripts.len(), "{written}");
        assert_eq!(a.packages, b.packages, "{written}");
        assert_eq!(a, b, "{written}");
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

fn round_trip(text: &str, version: &str) -> kickstart::Kickstart {
    let v = Version::parse(version).expect("version");
    let r = parse_with(text, "t.ks", &Options::flatten(v), &MemLoader::default());
    assert!(r.errors().next().is_none(), "{:?}", r.diagnostics);
    let written = write(&r.kickstart);
    let again = parse_with(
        &written,
        "t.ks",
        &Options::flatten(v),
        &MemLoader::default(),
    );
    assert!(
        again.errors().next().is_none(),
        "{written}\n{:?}",
        again.diagnostics
    );
    assert_eq!(
        again.kickstart.without_locations(),
        r.kickstart.without_locations(),
        "{written}"
    );
    r.kickstart
}

#[test]
fn round_trips_of_tricky_values() {
    // a positional that looks like an option (after "--")
    let ks = round_trip("lang -- -x\n", "F46");
    assert_eq!(kickstart::typed::lang(&ks).expect("lang").lang, "-x");
    // a group whose name starts with ^ is not an environment
    let ks = round_trip("%packages\n@\x1f^kde\n-@^other\n@^env\n%end\n", "F46");
    let p = ks.packages.expect("packages");
    assert_eq!(p.environment.as_deref(), Some("env"));
    assert_eq!(p.groups[0].name, "^kde");
    // script bodies ending in an unusual line end keep it
    round_trip("%post\necho\x0c%end\n", "F46");
    // options of a repeated single-instance command persist
    let ks = round_trip("services --disabled=a\nservices --enabled=b,c\n", "F46");
    let s = kickstart::typed::services(&ks).expect("services");
    assert_eq!(
        (s.enabled, s.disabled),
        (
            vec!["b".to_string(), "c".to_string()],
            vec!["a".to_string()]
        )
    );
}

#[test]
fn round_trips_of_raw_and_list_options() {
    let ks = round_trip("auth --useshadow --passalgo=sha512 # kept\n", "F21");
    assert_eq!(
        ks.commands[0].args.get("raw").as_str(),
        Some("--useshadow --passalgo=sha512 # kept")
    );
    round_trip(
        "volgroup vg pv.1 pv.2 --pesize=4096\nlogvol / --vgname=vg --name=root --size=1 --noformat\n",
        "F46",
    );
    round_trip(
        "bootloader --md5pass=abc --location=none\nbootloader --timeout=3\n",
        "F46",
    );
    round_trip(
        "network --noipv4 --device=eth0\nfirewall --port=22,80:udp --trust=eth0 --trust=eth1 --service=a\n",
        "F46",
    );
}

#[test]
fn btrfs_takes_mountpoint_and_devices_from_leftover_arguments() {
    let ks = round_trip(
        "btrfs none --data=1 btrfs.01 btrfs.02\nbtrfs / --subvol --name=root LABEL=f\n",
        "F28",
    );
    let b = kickstart::typed::btrfs(&ks);
    assert_eq!(b.len(), 2);
    assert_eq!(ks.commands[0].args.get("mntpoint").as_str(), Some("none"));
    let r = parse_with(
        "btrfs /x\n",
        "t.ks",
        &Options::validate(Version::parse("F28").unwrap()),
        &MemLoader::default(),
    );
    assert_eq!(
        r.diagnostics[0].message,
        "btrfs must be given a list of partitions"
    );
}

#[test]
fn repeated_single_instance_commands_are_replayed() {
    // each line passes pykickstart's per-line check; their merge would not
    let ks = round_trip(
        "url --url=http://a\nurl --mirrorlist=http://b\ntext --non-interactive\ncmdline\n",
        "F46",
    );
    let u = kickstart::typed::url(&ks).expect("url");
    assert_eq!(
        (u.url.as_deref(), u.mirrorlist.as_deref()),
        (Some("http://a"), Some("http://b"))
    );
    assert_eq!(
        kickstart::typed::display_mode(&ks).expect("mode").mode,
        "cmdline"
    );
}

#[test]
fn packages_headers_are_replayed() {
    let ks = round_trip(
        "%packages --default\n@core\n%end\n%packages --nocore\nvim\n%end\n",
        "F46",
    );
    let p = ks.packages.expect("packages");
    assert_eq!(p.headers.len(), 2);
    assert_eq!(p.packages, ["vim"]);
}

#[test]
fn explicit_double_dash_value_is_an_empty_list() {
    // pykickstart stores [] for `--size=--` (argparse removes the "--")
    let ks = round_trip("part / --size=--\nbootloader --append=--\n", "F46");
    assert_eq!(
        ks.commands
            .iter()
            .find(|c| c.name == "part")
            .unwrap()
            .args
            .get("size"),
        &kickstart::Value::List(vec![])
    );
}
