//! End-to-end tests of `imagebuilder render`: no drift between the checked-in outputs and the
//! checked-in config, every rendered file validates (pykickstart, xmllint --relaxng, our TDL
//! validator), hostile config values never change the shape of a kickstart, bad input fails cleanly.

#[path = "support/oracle.rs"]
mod oracle;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn root() -> PathBuf {
    Path::new(ROOT).to_path_buf()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("running imagebuilder")
}

fn render(config: &Path, out: &Path) -> Output {
    run(&[
        "render",
        "--config",
        config.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every regular file under `dir/sub` for each `sub`, by relative path.
fn files(dir: &Path, subs: &[&str], ext: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in subs {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if ext.iter().any(|x| name.ends_with(x)) {
                out.insert(format!("{sub}/{name}"), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// pykickstart's verdict and tokenisation (tests/support/ks_oracle.py).
#[derive(Debug, serde::Deserialize)]
struct Oracle {
    errors: Vec<String>,
    commands: Vec<(u32, Vec<String>)>,
    scripts: Vec<Script>,
}

#[derive(Debug, serde::Deserialize)]
struct Script {
    body: String,
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

fn oracle(ks: &Path) -> Oracle {
    let text = fs::read_to_string(ks).unwrap();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("#version="))
        .unwrap_or_else(|| panic!("{} has no #version= line", ks.display()));
    let out = Command::new(python())
        .arg(root().join("tests/support/ks_oracle.py"))
        .arg(version)
        .arg(ks)
        .output()
        .expect("running pykickstart oracle (.venv/bin/python; see scripts/install-deps.sh)");
    assert!(out.status.success(), "oracle failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Our validator on `ks` (ksvalidator -i semantics) for the file's own `#version=`.
fn our_validation(ks: &Path) -> kickstart::Report {
    let text = fs::read_to_string(ks).unwrap();
    let version = kickstart::Version::from_text(&text)
        .unwrap_or_else(|| panic!("{}: no known #version= line", ks.display()));
    kickstart::validate_file(ks.to_str().unwrap(), version)
}

/// `(line, name)` of every command our parser saw, in file order.
fn our_commands(r: &kickstart::Report) -> Vec<(usize, String)> {
    let mut c: Vec<(usize, String)> = r
        .kickstart
        .commands
        .iter()
        .map(|c| (c.location.line, c.name.clone()))
        .collect();
    c.sort();
    c
}

/// `(line, name)` of every command line pykickstart saw, with repeated uses of a single-instance
/// command (as our model marks them) kept at their last line, as our model merges them.
fn oracle_commands(v: &Oracle, ours: &kickstart::Report) -> Vec<(usize, String)> {
    let single: Vec<&str> = ours
        .kickstart
        .commands
        .iter()
        .filter(|c| !c.list)
        .map(|c| c.name.as_str())
        .collect();
    let mut c: Vec<(usize, String)> = Vec::new();
    for (l, a) in &v.commands {
        if single.contains(&a[0].as_str()) {
            c.retain(|(_, n)| n != &a[0]);
        }
        c.push((*l as usize, a[0].clone()));
    }
    c.sort();
    c
}

#[test]
fn checked_in_outputs_are_exactly_what_render_produces() {
    let tmp = tempfile::tempdir().unwrap();
    let o = render(&root().join("kickstarts/config.ini"), tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered = files(tmp.path(), &["kickstarts", "tdl"], &[".ks", ".tdl"]);
    let checked_in = files(&root(), &["kickstarts", "tdl"], &[".ks", ".tdl"]);
    assert!(
        rendered.len() >= 6,
        "expected the Fedora Atomic set and the demo: {:?}",
        rendered.keys()
    );
    assert_eq!(
        rendered.keys().collect::<Vec<_>>(),
        checked_in.keys().collect::<Vec<_>>(),
        "set of files differs; run `imagebuilder render --config kickstarts/config.ini` at the repo root"
    );
    for (name, bytes) in &rendered {
        assert!(
            &checked_in[name] == bytes,
            "{name} drifted from the config/templates; re-render and commit"
        );
    }
    // `render --check` agrees: clean on the repository, and it spots a changed file.
    let check = |dir: &Path| {
        run(&[
            "render",
            "--config",
            root().join("kickstarts/config.ini").to_str().unwrap(),
            "--check",
            "--output-dir",
            dir.to_str().unwrap(),
        ])
    };
    assert!(
        check(&root()).status.success(),
        "{}",
        stderr(&check(&root()))
    );
    fs::write(tmp.path().join("tdl/fedora-atomic-29.tdl"), "changed").unwrap();
    let o = check(tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("fedora-atomic-29.tdl: differs"),
        "{}",
        stderr(&o)
    );
    // The disk builder relies on these names.
    for must in [
        "kickstarts/demo-qcow2.ks",
        "kickstarts/fedora-atomic-29.ks",
        "tdl/fedora-atomic-29.tdl",
    ] {
        assert!(rendered.contains_key(must), "{must} missing");
    }
}

#[test]
fn rendered_kickstarts_pass_pykickstart_for_their_version() {
    if oracle::missing() {
        return;
    }
    let dir = root().join("kickstarts");
    let mut checked = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "ks") {
            let v = oracle(&p);
            assert!(v.errors.is_empty(), "{}: {:?}", p.display(), v.errors);
            assert!(
                v.commands.iter().any(|(_, a)| a[0] == "ostreesetup"),
                "{}",
                p.display()
            );
            checked += 1;
            let ours = our_validation(&p);
            assert!(
                ours.is_valid(false),
                "{}: {:?}",
                p.display(),
                ours.diagnostics
            );
            // Both parsers see the same commands on the same lines.
            assert_eq!(
                our_commands(&ours),
                oracle_commands(&v, &ours),
                "{}: our parser and pykickstart disagree",
                p.display()
            );
        }
    }
    assert!(checked >= 5, "only {checked} kickstarts checked");
}

#[test]
fn fedora_atomic_cloud_kickstart_keeps_the_atomicos_layout() {
    if oracle::missing() {
        return;
    }
    let v = oracle(&root().join("kickstarts/fedora-atomic-29.ks"));
    let lines: Vec<String> = v.commands.iter().map(|(_, a)| a.join(" ")).collect();
    for want in [
        "part /boot --size=300 --fstype=ext4",
        "part pv.01 --grow",
        "volgroup atomicos pv.01",
        "logvol / --size=3000 --fstype=xfs --name=root --vgname=atomicos",
        "ostreesetup --nogpg --osname=fedora-atomic --remote=fedora-atomic --url=http://192.168.122.1:8000/repo/ --ref=fedora/29/x86_64/atomic-host",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing `{want}` in {lines:#?}"
        );
    }
    let demo = oracle(&root().join("kickstarts/demo-qcow2.ks"));
    let demo_lines: Vec<String> = demo.commands.iter().map(|(_, a)| a.join(" ")).collect();
    for want in [
        "bootloader --append=console=ttyS0,115200 --timeout=1",
        "ostreesetup --nogpg --osname=demo --remote=demo --url=file:///srv/imagebuilder/demo/repo --ref=demo/x86_64/base",
        "part /boot --fstype=ext4 --size=384 --label=boot",
    ] {
        assert!(
            demo_lines.iter().any(|l| l == want),
            "missing `{want}` in {demo_lines:#?}"
        );
    }
    assert!(demo.scripts[0].body.contains("IMAGEBUILDER-DEMO-BOOTED"));
}

fn xmllint_ok(file: &Path) -> bool {
    Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(root().join("tests/fixtures/tdl/tdl.rng"))
        .arg(file)
        .output()
        .expect("xmllint (libxml2-utils)")
        .status
        .success()
}

#[test]
fn rendered_tdls_pass_xmllint_relaxng_and_our_validator() {
    let rng = root().join("tests/fixtures/tdl/tdl.rng");
    let mut n = 0;
    for e in fs::read_dir(root().join("tdl")).unwrap() {
        let p = e.unwrap().path();
        let out = Command::new("xmllint")
            .args(["--noout", "--relaxng"])
            .arg(&rng)
            .arg(&p)
            .output()
            .expect("xmllint (libxml2-utils)");
        assert!(out.status.success(), "{}: {}", p.display(), stderr(&out));
        let o = run(&["tdl", "validate", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        n += 1;
    }
    assert!(n >= 1);
}

/// A config whose values are benign (`hostile = false`) or try every trick (`hostile = true`).
fn injection_config(hostile: bool) -> (String, BTreeMap<&'static str, &'static str>) {
    let values: BTreeMap<&str, &str> = if hostile {
        [
            ("ref", r#"a b'c"d #e %post --nochroot"#),
            (
                "ostree_remote",
                r#"--repo=/elsewhere r"; reboot; echo " --url=file:///evil"#,
            ),
            ("ostree_url", "http://x/ #%end\t%packages"),
            ("kernel_append", r#"quiet' --location=none "x \"y"#),
            ("lang", "en_US.UTF-8 #comment %pre"),
            (
                "ostree_remote_url",
                "https://x/'; rm -rf /; echo '$(reboot)`id`",
            ),
            ("boot_marker", r#"$(reboot) ' " %end"#),
            ("rootpw", r#"p w#d'"%end --lock"#),
            ("installer_repo_url", "file:///ostree/repo --ref=x"),
        ]
        .into()
    } else {
        [
            ("ref", "a/b/c"),
            ("ostree_remote", "r"),
            ("ostree_url", "http://x/"),
            ("kernel_append", "quiet"),
            ("lang", "en_US.UTF-8"),
            ("ostree_remote_url", "https://x/"),
            ("boot_marker", "MARK"),
            ("rootpw", "pw"),
            ("installer_repo_url", "file:///ostree/repo"),
        ]
        .into()
    };
    // TOML form: basic strings with escapes carry every value verbatim.
    let mut toml = String::from(
        "os_name = \"os\"\narch = \"x86_64\"\nrelease = \"46\"\nname = \"inj\"\n\
         outputs = \"cloud, vagrant, installer, pxetolive, qcow2, tdl\"\n\
         install_tree_url = \"http://example.com/tree/\"\nkickstart_version = \"F46\"\n",
    );
    for (k, v) in &values {
        toml.push_str(&format!("{k} = {}\n", toml_string(v)));
    }
    (toml, values)
}

fn toml_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn shell_words(line: &str) -> Vec<String> {
    let out = Command::new(python())
        .args([
            "-c",
            "import json,shlex,sys; print(json.dumps(shlex.split(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(line.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hostile_values_never_change_the_kickstart_shape() {
    if oracle::missing() {
        return;
    }
    let mut shapes = Vec::new();
    for hostile in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (toml, values) = injection_config(hostile);
        let cfg = tmp.path().join("c.toml");
        fs::write(&cfg, toml).unwrap();
        let out = tmp.path().join("out");
        let o = render(&cfg, &out);
        assert!(o.status.success(), "hostile={hostile}: {}", stderr(&o));
        let mut shape = BTreeMap::new();
        for (name, _) in files(&out, &["kickstarts"], &[".ks"]) {
            let v = oracle(&out.join(&name));
            assert!(
                v.errors.is_empty(),
                "hostile={hostile} {name}: {:?}",
                v.errors
            );
            let ours = our_validation(&out.join(&name));
            assert!(
                ours.is_valid(false),
                "hostile={hostile} {name}: {:?}",
                ours.diagnostics
            );
            // Our parser counts the same commands on the same lines as pykickstart, and the same
            // number of scripts; the shape comparison below then covers both parsers.
            let our_cmds = our_commands(&ours);
            assert_eq!(
                our_cmds,
                oracle_commands(&v, &ours),
                "hostile={hostile} {name}"
            );
            assert_eq!(
                ours.kickstart.scripts.len(),
                v.scripts.len(),
                "hostile={hostile} {name}"
            );
            let names: Vec<String> = v.commands.iter().map(|(_, a)| a[0].clone()).collect();
            let tokens: Vec<usize> = v.commands.iter().map(|(_, a)| a.len()).collect();
            shape.insert(
                name.clone(),
                (names, tokens, v.scripts.len(), our_cmds.len()),
            );
            // Values arrive intact, as single tokens.
            for (_, args) in &v.commands {
                let find = |opt: &str| {
                    args.iter()
                        .find_map(|a| a.strip_prefix(opt))
                        .map(str::to_string)
                };
                match args[0].as_str() {
                    "ostreesetup" => {
                        assert_eq!(find("--ref=").as_deref(), Some(values["ref"]), "{name}");
                        assert_eq!(
                            find("--remote=").as_deref(),
                            Some(values["ostree_remote"]),
                            "{name}"
                        );
                        let url = find("--url=").unwrap();
                        assert!(
                            url == values["ostree_url"] || url == values["installer_repo_url"],
                            "{name}: {url}"
                        );
                    }
                    "lang" => assert_eq!(args[1], values["lang"], "{name}"),
                    "bootloader" => {
                        assert!(
                            find("--append=")
                                .unwrap()
                                .starts_with(values["kernel_append"]),
                            "{name}"
                        )
                    }
                    "rootpw" if args.len() == 3 && args[1] == "--plaintext" => {
                        assert_eq!(args[2], values["rootpw"], "{name}")
                    }
                    _ => {}
                }
            }
            // %post shell lines: the remote URL and the boot marker are single shell words.
            for s in &v.scripts {
                for line in s.body.lines() {
                    // `--` ends the options: a value starting with `-` stays an operand.
                    if line.starts_with("ostree remote add") {
                        let w = shell_words(line);
                        assert_eq!(w.len(), 7, "{name}: {w:?}");
                        assert_eq!(w[4], "--", "{name}: {w:?}");
                        assert_eq!(w[5], values["ostree_remote"]);
                        assert_eq!(w[6], values["ostree_remote_url"]);
                    }
                    if line.starts_with("ostree remote delete") {
                        let w = shell_words(line);
                        assert_eq!(w[3..], ["--if-exists", "--", values["ostree_remote"]]);
                    }
                    if line.starts_with("printf '%s\\n'") {
                        let w = shell_words(line);
                        assert_eq!(w[2], values["boot_marker"], "{name}");
                    }
                }
            }
        }
        assert_eq!(shape.len(), 5, "{:?}", shape.keys());
        // TDL: XML-escaped, still valid, value intact.
        let tdl_text = fs::read_to_string(out.join("tdl/inj.tdl")).unwrap();
        let tdl = imagebuilder::tdl::parse(&tdl_text).unwrap();
        assert!(
            xmllint_ok(&out.join("tdl/inj.tdl")),
            "hostile={hostile}: xmllint rejects the TDL"
        );
        assert_eq!(tdl.os.rootpw.as_deref(), Some(values["rootpw"]));
        shapes.push(shape);
    }
    assert_eq!(
        shapes[0], shapes[1],
        "hostile values changed the command/script structure"
    );
}

#[test]
fn unrepresentable_values_fail_naming_the_key_and_write_nothing() {
    let base = "[DEFAULT]\nos_name = os\narch = x86_64\nrelease = 46\nref = r\nname = bad\n\
                ostree_url = http://x/\ninstall_tree_url = http://x/t/\n";
    for (extra, key) in [
        // INI continuation lines put a newline into the value (`%%` is configparser's literal `%`).
        ("ostree_url = http://x/\n  %%post\n", "ostree_url"),
        ("rootpw = --lock\noutputs = qcow2\n", "rootpw"),
        ("lang = -x\n", "lang"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("c.ini");
        let text = if extra.starts_with("ostree_url") {
            base.replace("ostree_url = http://x/\n", extra)
        } else {
            format!("{base}{extra}")
        };
        fs::write(&cfg, text).unwrap();
        let out = tmp.path().join("out");
        let o = render(&cfg, &out);
        let err = stderr(&o);
        assert!(!o.status.success(), "{extra:?} was accepted");
        assert!(err.contains(&format!("`{key}`")), "{extra:?}: {err}");
        if key == "ostree_url" {
            assert!(err.contains("line break"), "{err}");
        }
        assert!(!out.exists(), "partial output written for {extra:?}");
    }
}

#[test]
fn bad_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Missing config file.
    let o = render(&tmp.path().join("nope.ini"), tmp.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope.ini"), "{}", stderr(&o));

    // Missing required key.
    let cfg = tmp.path().join("c.ini");
    fs::write(
        &cfg,
        "[DEFAULT]\nos_name = os\narch = x86_64\nrelease = 46\n",
    )
    .unwrap();
    let o = render(&cfg, tmp.path());
    assert!(
        stderr(&o).contains("missing required key `ref`"),
        "{}",
        stderr(&o)
    );

    // A key the template needs but the config lacks.
    fs::write(
        &cfg,
        "[DEFAULT]\nos_name = os\narch = x86_64\nrelease = 46\nref = r\noutputs = cloud\n",
    )
    .unwrap();
    let o = render(&cfg, &tmp.path().join("o1"));
    assert!(stderr(&o).contains("`ostree_url`"), "{}", stderr(&o));
    assert!(!tmp.path().join("o1").exists());

    // Unknown variable in a template (strict mode) names template and variable.
    let tdir = tmp.path().join("templates");
    copy_dir(&root().join("templates"), &tdir);
    let cloud = tdir.join("cloud.ks.hbs");
    let text = fs::read_to_string(&cloud)
        .unwrap()
        .replace("reboot\n", "reboot\nrepo --name={{ks no_such_key}}\n");
    fs::write(&cloud, text).unwrap();
    let o = run(&[
        "render",
        "--config",
        root().join("kickstarts/config.ini").to_str().unwrap(),
        "--templates",
        tdir.to_str().unwrap(),
        "--output-dir",
        tmp.path().join("o2").to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(
        err.contains("cloud.ks.hbs") && err.contains("no_such_key"),
        "{err}"
    );
    assert!(!tmp.path().join("o2").exists());

    // A bare value that bypasses the escaping helpers is refused when templates load.
    fs::write(&cloud, "text\nrootpw {{rootpw}}\n").unwrap();
    let o = run(&[
        "render",
        "--config",
        root().join("kickstarts/config.ini").to_str().unwrap(),
        "--templates",
        tdir.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(stderr(&o).contains("cloud.ks.hbs line 2"), "{}", stderr(&o));

    // An output name that would leave the output directory.
    fs::write(
        &cfg,
        "[DEFAULT]\nos_name = os\narch = x86_64\nrelease = 46\nref = r\nname = ../evil\noutputs = tdl\n\
         install_tree_url = http://e.com/t/\nconfig_dir = /x\n",
    )
    .unwrap();
    let o = render(&cfg, &tmp.path().join("o3"));
    let err = stderr(&o);
    assert!(
        err.contains("key `name`") && err.contains("../evil"),
        "{err}"
    );
    assert!(
        err.contains("did you mean `configdir`"),
        "unknown-key warning missing: {err}"
    );
    assert!(!tmp.path().join("evil.tdl").exists() && !tmp.path().join("o3").exists());

    // Unknown profile.
    let o = run(&[
        "render",
        "--config",
        root().join("kickstarts/config.ini").to_str().unwrap(),
        "--profile",
        "nope",
        "--dry-run",
    ]);
    assert!(
        stderr(&o).contains("profile `nope` not found"),
        "{}",
        stderr(&o)
    );
}

/// A template bug that yields an invalid kickstart is caught by our validator before anything is
/// written: the error names the output file and line, and the output directory stays absent.
#[test]
fn template_producing_an_invalid_kickstart_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("templates");
    copy_dir(&root().join("templates"), &tdir);
    let cloud = tdir.join("cloud.ks.hbs");
    let reboot_line = fs::read_to_string(root().join("kickstarts/fedora-atomic-29.ks"))
        .unwrap()
        .lines()
        .position(|l| l == "reboot")
        .expect("the cloud kickstart has a reboot line")
        + 1;
    for (bad, what) in [
        ("frobnicate --now\n", "Unknown command: frobnicate"),
        ("zerombr --bogus\n", "--bogus"),
    ] {
        let text = fs::read_to_string(root().join("templates/cloud.ks.hbs"))
            .unwrap()
            .replace("reboot\n", &format!("reboot\n{bad}"));
        fs::write(&cloud, text).unwrap();
        let out = tmp.path().join("out");
        let o = run(&[
            "render",
            "--config",
            root().join("kickstarts/config.ini").to_str().unwrap(),
            "--templates",
            tdir.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{bad:?} was accepted");
        let at = format!("kickstarts/fedora-atomic-29.ks:{}: error", reboot_line + 1);
        assert!(
            err.contains(&at) && err.contains(what),
            "{bad:?}: want `{at}`: {err}"
        );
        assert!(err.contains("cloud.ks.hbs"), "{err}");
        assert!(!out.exists(), "{bad:?}: partial output written");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Many generated values through the kickstart and shell quoting, checked by Python's shlex (the
/// tokenizer pykickstart uses, `comments=True`): every value comes back as exactly one intact token.
#[test]
fn quoting_round_trips_through_shlex() {
    if oracle::missing() {
        return;
    }
    use imagebuilder::render::escape::{ks_positional, ks_token, sh_word};
    let pool: Vec<char> = "aZ09 \t'\"#%$`\\-=,;:&|<>(){}[]*?!~\u{e9}\u{4e2d}"
        .chars()
        .collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut cases = Vec::new();
    for _ in 0..2000 {
        let len = (next() % 12) as usize;
        let v: String = (0..len)
            .map(|_| pool[(next() % pool.len() as u64) as usize])
            .collect();
        cases.push(serde_json::json!({
            "line": format!("ostreesetup --ref={} --nogpg", ks_token(&v).unwrap()),
            "want": ["ostreesetup", format!("--ref={v}"), "--nogpg"],
        }));
        if let Ok(q) = ks_positional(&v) {
            cases.push(serde_json::json!({"line": format!("lang {q}"), "want": ["lang", v]}));
        }
        cases.push(serde_json::json!({
            "line": format!("echo {} > /x", sh_word(&v).unwrap()),
            "want": ["echo", v, ">", "/x"],
        }));
    }
    let script = "import json,shlex,sys\n\
        def split(line):\n\
        \x20   try:\n\
        \x20       return shlex.split(line, comments=True)\n\
        \x20   except ValueError as e:\n\
        \x20       return str(e)\n\
        bad=[c for c in json.load(sys.stdin) if split(c['line']) != c['want']]\n\
        print(json.dumps(bad[:5])); sys.exit(1 if bad else 0)";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} cases checked; first failures: {}",
        cases.len(),
        String::from_utf8_lossy(&out.stdout)
    );
}
