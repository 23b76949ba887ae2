//! Bad and hostile input: one located error, never a panic or a hang.

use kickstart::{MemLoader, Options, Version, parse_path, parse_with};

fn validate(loader: &MemLoader, top: &str) -> kickstart::Report {
    parse_path(top, &Options::validate(Version::devel()), loader)
}

#[test]
fn include_cycle_is_reported_with_the_chain() {
    let l = MemLoader::default()
        .with("top.ks", "lang en_US\n%include a.ks\n")
        .with("a.ks", "# a\n%include b.ks\n")
        .with("b.ks", "%include a.ks\n");
    let r = validate(&l, "top.ks");
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    let d = &r.diagnostics[0];
    assert_eq!((d.file.as_str(), d.line), ("b.ks", 1));
    assert!(
        d.message.contains("%include cycle: a.ks -> b.ks -> a.ks"),
        "{}",
        d.message
    );
    let chain: Vec<(&str, usize)> = d
        .include_chain
        .iter()
        .map(|s| (s.file.as_str(), s.line))
        .collect();
    assert_eq!(chain, [("top.ks", 2), ("a.ks", 2)]);
    assert!(d.render().contains("included from a.ks:2"));
}

#[test]
fn errors_in_included_files_are_local_and_chained() {
    let l = MemLoader::default()
        .with("top.ks", "lang en_US\n\n%include sub/inner.ks\n")
        .with("sub/inner.ks", "keyboard us\nbogus --x\n");
    let r = validate(&l, "top.ks");
    let d = &r.diagnostics[0];
    assert_eq!(
        (d.file.as_str(), d.line, d.message.as_str()),
        ("sub/inner.ks", 2, "Unknown command: bogus")
    );
    assert_eq!(d.include_chain[0].line, 3);
}

#[test]
fn include_resolves_relative_to_the_including_file() {
    let l = MemLoader::default()
        .with("top.ks", "%include sub/inner.ks\n")
        .with("sub/inner.ks", "%include leaf.ks\n")
        .with("sub/leaf.ks", "bogus\n");
    let r = validate(&l, "top.ks");
    assert_eq!(r.diagnostics[0].file, "sub/leaf.ks");
    // the working directory wins over the including file's directory
    let l = l.with("leaf.ks", "lang en_US\n");
    assert!(validate(&l, "top.ks").diagnostics.is_empty());
}

#[test]
fn deep_include_chains_stop_cleanly() {
    let mut l = MemLoader::default();
    for i in 0..500 {
        l = l.with(&format!("f{i}.ks"), &format!("%include f{}.ks\n", i + 1));
    }
    l = l.with("f500.ks", "lang en_US\n");
    let r = validate(&l, "f0.ks");
    assert_eq!(r.diagnostics.len(), 1);
    assert!(
        r.diagnostics[0].message.contains("nesting deeper than"),
        "{}",
        r.diagnostics[0].message
    );
}

#[test]
fn huge_lines_and_files_are_fine() {
    let long = format!("rootpw {}\n", "x".repeat(4 << 20));
    let r = parse_with(
        &long,
        "big.ks",
        &Options::validate(Version::devel()),
        &MemLoader::default(),
    );
    assert!(r.diagnostics.is_empty());
    let quote = format!("rootpw \"{}\n", "y".repeat(4 << 20));
    let r = parse_with(
        &quote,
        "q.ks",
        &Options::validate(Version::devel()),
        &MemLoader::default(),
    );
    assert_eq!(r.diagnostics[0].message, "No closing quotation");
    assert_eq!(r.diagnostics[0].line, 1);
    let many = "part /x --size=1\n".repeat(200_000);
    let r = parse_with(
        &many,
        "m.ks",
        &Options::flatten(Version::devel()),
        &MemLoader::default(),
    );
    assert_eq!(r.warnings().count(), 199_999);
}

#[test]
fn non_utf8_names_the_line() {
    let mut l = MemLoader::default();
    l.files
        .insert("bad.ks".into(), b"lang en_US\nrootpw \xff\n".to_vec());
    let r = validate(&l, "bad.ks");
    assert_eq!(r.diagnostics[0].line, 2);
    assert!(r.diagnostics[0].message.contains("invalid start byte"));
}

const LF_KS: &str = "#version=DEVEL\nlang en_US.UTF-8\nrootpw --plaintext secret\nbootloader --append=\"console=ttyS0 quiet\"\n%pre --interpreter=/bin/bash\necho pre\n%end\n%packages\n@core\nvim # editor\n%end\n%post --log=/root/post.log\ncat > /etc/motd <<EOT\nhello\nEOT\n\n%end\n%certificate --filename=ca.pem --dir=/etc/pki\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n%end\n%addon com_x --y\nline\n%end\n";

#[test]
fn crlf_and_lone_cr_parse_like_their_lf_twin() {
    let opts = Options::validate(Version::devel());
    let lf = parse_with(LF_KS, "a.ks", &opts, &MemLoader::default());
    assert!(lf.diagnostics.is_empty(), "{:?}", lf.diagnostics);
    assert_eq!(lf.kickstart.scripts.len(), 2);
    for eol in ["\r\n", "\r"] {
        let text = LF_KS.replace('\n', eol);
        let r = parse_with(&text, "a.ks", &opts, &MemLoader::default());
        assert!(r.diagnostics.is_empty(), "{eol:?}: {:?}", r.diagnostics);
        assert_eq!(r.kickstart, lf.kickstart, "line ends {eol:?}");
        for s in &r.kickstart.scripts {
            assert!(!s.body.contains('\r'), "{eol:?}: {:?}", s.body);
        }
        assert!(!r.kickstart.certificates[0].cert.contains('\r'));
        assert_eq!(
            kickstart::write(&r.kickstart),
            kickstart::write(&lf.kickstart)
        );
    }
    let post = &lf.kickstart.scripts[1];
    assert_eq!(post.body, "cat > /etc/motd <<EOT\nhello\nEOT\n\n");
    assert_eq!(post.location.line, 12);
}

#[test]
fn crlf_errors_keep_their_line_numbers() {
    let lf = "lang en_US\n\n# c\nbogus --x\n%include inc.ks\n";
    let inc = "keyboard us\nrootpw\n";
    for eol in ["\n", "\r\n", "\r"] {
        let l = MemLoader::default()
            .with("top.ks", &lf.replace('\n', eol))
            .with("inc.ks", &inc.replace('\n', eol));
        let r = validate(&l, "top.ks");
        let got: Vec<(&str, usize)> = r
            .diagnostics
            .iter()
            .map(|d| (d.file.as_str(), d.line))
            .collect();
        assert_eq!(
            got,
            [("top.ks", 4), ("inc.ks", 2)],
            "{eol:?}: {:?}",
            r.diagnostics
        );
        assert_eq!(r.diagnostics[1].include_chain[0].line, 5);
        assert!(
            !r.diagnostics.iter().any(|d| d.message.contains('\r')),
            "{:?}",
            r.diagnostics
        );
    }
    // a section left open is reported on the same line whatever the line ends
    for eol in ["\n", "\r\n", "\r"] {
        let text = "lang en_US\n%post\necho\n".replace('\n', eol);
        let r = parse_with(
            &text,
            "t.ks",
            &Options::validate(Version::devel()),
            &MemLoader::default(),
        );
        assert_eq!(r.diagnostics[0].line, 3, "{eol:?}");
        assert_eq!(
            r.diagnostics[0].message,
            "Section %post does not end with %end."
        );
    }
}

#[test]
fn includes_add_up_to_a_bounded_total() {
    let big = format!("{}\n", "#".repeat(999));
    let mut top = String::from("lang en_US\n");
    for _ in 0..10 {
        top.push_str("%include big.ks\n");
    }
    let l = MemLoader::default()
        .with("top.ks", &top)
        .with("big.ks", &big)
        .with("app.ks", &big);
    let opts = Options {
        max_total_bytes: 5000,
        ..Options::validate(Version::devel())
    };
    let r = parse_path("top.ks", &opts, &l);
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    let d = &r.diagnostics[0];
    // top.ks (11 + 16 * 10 bytes) and four includes fit, the fifth does not: line 6
    assert_eq!((d.file.as_str(), d.line), ("top.ks", 6));
    assert_eq!(
        d.message,
        "%include big.ks: the kickstart and the files it includes exceed 5000 bytes in total"
    );
    // %ksappend counts too
    let l = l.with(
        "app-top.ks",
        &format!("lang en_US\n{}", "%ksappend app.ks\n".repeat(10)),
    );
    let r = parse_path("app-top.ks", &opts, &l);
    assert_eq!(r.diagnostics[0].line, 6, "{:?}", r.diagnostics);
    assert!(r.diagnostics[0].message.starts_with("%ksappend app.ks: "));
    // the default limit leaves room for real kickstarts
    let r = parse_path("top.ks", &Options::validate(Version::devel()), &l);
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(kickstart::loader::MAX_TOTAL_BYTES, 64 << 20);
}
