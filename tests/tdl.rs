//! `imagebuilder tdl validate`: accepts the Fedora sample TDLs, rejects one TDL per broken rule with
//! the element path, and agrees with `xmllint --relaxng` on which documents the schema accepts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn reference() -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/tdl")
}

fn validate(files: &[&Path]) -> Output {
    Command::new(BIN)
        .args(["tdl", "validate"])
        .args(files)
        .output()
        .unwrap()
}

fn xmllint_accepts(file: &Path) -> bool {
    Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(reference().join("tdl.rng"))
        .arg(file)
        .output()
        .expect("xmllint (libxml2-utils)")
        .status
        .success()
}

#[test]
fn accepts_the_fedora_sample_tdls() {
    let dir = reference().join("samples");
    let files: Vec<PathBuf> = [
        "fedora-atomic-22.tdl",
        "fedora-atomic-f23.tdl",
        "fedora-atomic-rawhide.tdl",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let o = validate(&refs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches(": valid")
            .count(),
        3
    );
    // The library model and writer: parse → write → parse gives the same template.
    for f in &files {
        let t = imagebuilder::tdl::parse(&fs::read_to_string(f).unwrap()).unwrap();
        assert_eq!(t.os.name, "Fedora");
        assert_eq!(imagebuilder::tdl::parse(&t.to_xml()).unwrap(), t);
    }
}

const BASE: &str = "<template>
    <name>t</name>
    <os>
        <name>Fedora</name>
        <version>29</version>
        <arch>x86_64</arch>
        <install type='url'>
            <url>http://example.com/os/</url>
        </install>
    </os>
</template>
";

fn with_extra(extra: &str) -> String {
    BASE.replace("</template>", &format!("{extra}\n</template>"))
}

/// (rule, document, expected text in the error, does the RelaxNG schema accept it?)
fn broken() -> Vec<(&'static str, String, &'static str, bool)> {
    let iso = |inner: &str| {
        BASE.replace(
            "<install type='url'>\n            <url>http://example.com/os/</url>\n        </install>",
            &format!("<install type='iso'>{inner}</install>"),
        )
    };
    vec![
        (
            "root element",
            BASE.replace("template>", "tmpl>"),
            "root element must be `template`",
            false,
        ),
        (
            "name required",
            BASE.replace("<name>t</name>", ""),
            "/template: missing required element `name`",
            false,
        ),
        (
            "os/version required",
            BASE.replace("<version>29</version>", ""),
            "/template/os: missing required element `version`",
            false,
        ),
        (
            "arch choice",
            BASE.replace("x86_64", "amd64"),
            "/template/os/arch",
            false,
        ),
        (
            "version attribute",
            BASE.replace("<template>", "<template version='2.0'>"),
            "version attribute",
            false,
        ),
        (
            "each element once",
            BASE.replace("<name>t</name>", "<name>t</name><name>u</name>"),
            "may appear only once",
            false,
        ),
        (
            "unknown element",
            with_extra("<bogus/>"),
            "/template/bogus",
            false,
        ),
        (
            "unknown attribute",
            BASE.replace("<os>", "<os foo='1'>"),
            "attribute `foo`",
            false,
        ),
        (
            "no attributes on text elements",
            BASE.replace("<version>29", "<version x='1'>29"),
            "/template/os/version: attribute `x`",
            false,
        ),
        (
            "install type",
            BASE.replace("type='url'", "type='ftp'"),
            "/template/os/install: install type",
            false,
        ),
        (
            "install url needs url",
            BASE.replace("<url>http://example.com/os/</url>", ""),
            "missing required element `url`",
            false,
        ),
        (
            "one checksum at most",
            iso(
                "<iso>http://x/a.iso</iso><md5sum>http://x/m</md5sum><sha1sum>http://x/s</sha1sum>",
            ),
            "only one of md5sum",
            false,
        ),
        (
            "extras only with iso",
            BASE.replace(
                "</url>",
                "</url><extras><file source='a' destination='b'/></extras>",
            ),
            "only allowed with install type `iso`",
            true,
        ),
        (
            "empty command",
            with_extra("<commands><command name='c'>   </command></commands>"),
            "/template/commands/command[@name='c']: empty command",
            true,
        ),
        (
            "positions all or none",
            with_extra(
                "<commands><command name='a' position='1'>x</command><command name='b'>y</command></commands>",
            ),
            "/template/commands: command positions must be given on all",
            true,
        ),
        (
            "positions 1..N, no duplicates",
            with_extra(
                "<commands><command name='a' position='1'>x</command><command name='b' position='1'>y</command></commands>",
            ),
            "duplicate or sparse",
            true,
        ),
        (
            "positions 1..N, no gaps",
            with_extra(
                "<precommands><command name='a' position='1'>x</command><command name='b' position='3'>y</command></precommands>",
            ),
            "/template/precommands: Cannot have duplicate or sparse",
            true,
        ),
        (
            "position is a number",
            with_extra("<commands><command name='a' position='x'>x</command></commands>"),
            "position `x`",
            false,
        ),
        (
            "base64 command",
            with_extra(
                "<commands><command name='a' type='base64'>not base64!</command></commands>",
            ),
            "not base64",
            false,
        ),
        (
            "repository not on localhost",
            with_extra(
                "<repositories><repository name='r'><url>http://localhost:8080/r</url></repository></repositories>",
            ),
            "/template/repositories/repository[@name='r']/url: repositories cannot be on localhost",
            true,
        ),
        (
            "repository needs url",
            with_extra(
                "<repositories><repository name='r'><signed>yes</signed></repository></repositories>",
            ),
            "missing required element `url`",
            false,
        ),
        (
            "repository bool",
            with_extra(
                "<repositories><repository name='r'><url>http://e.com/</url><signed>maybe</signed></repository></repositories>",
            ),
            "/template/repositories/repository[@name='r']/signed",
            false,
        ),
        (
            "package name",
            with_extra("<packages><package/></packages>"),
            "missing attribute `name`",
            false,
        ),
        (
            "disk size unit (Oz)",
            with_extra("<disk><size>10E</size></disk>"),
            "/template/disk/size: Invalid disk size",
            true,
        ),
        (
            "disk size pattern",
            with_extra("<disk><size>10 GX</size></disk>"),
            "/template/disk/size",
            false,
        ),
        (
            "text where elements belong",
            BASE.replace("<os>", "<os>stray"),
            "text is not allowed",
            false,
        ),
        (
            "icicle needs extra_command",
            BASE.replace("</os>", "<icicle></icicle></os>"),
            "missing required element `extra_command`",
            false,
        ),
    ]
}

#[test]
fn rejects_one_tdl_per_broken_rule_with_the_element_path() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = broken();
    for (i, (rule, doc, expected, schema_ok)) in cases.iter().enumerate() {
        let f = tmp.path().join(format!("case{i}.tdl"));
        fs::write(&f, doc).unwrap();
        let o = validate(&[&f]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{rule}: accepted:\n{doc}");
        assert!(
            err.contains(expected),
            "{rule}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(&format!("case{i}.tdl:")),
            "{rule}: file not named: {err}"
        );
        // Our schema verdict agrees with libxml2's RelaxNG validator.
        assert_eq!(
            xmllint_accepts(&f),
            *schema_ok,
            "{rule}: xmllint disagrees about the schema"
        );
    }
    // The base document itself is fine for both.
    let f = tmp.path().join("base.tdl");
    fs::write(&f, BASE).unwrap();
    assert!(validate(&[&f]).status.success());
    assert!(xmllint_accepts(&f));
}

#[test]
fn malformed_xml_is_reported_with_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.tdl");
    fs::write(&f, "<template>\n  <name>x</nme>\n</template>\n").unwrap();
    let o = validate(&[&f]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("bad.tdl:2:"), "{err}");
    assert!(err.contains("malformed XML"), "{err}");
}

#[test]
fn json_output_carries_the_model() {
    let f = reference().join("samples/fedora-atomic-22.tdl");
    let o = Command::new(BIN)
        .args(["tdl", "validate", "--json"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["template"]["os"]["version"], "22");
    assert_eq!(v[0]["template"]["os"]["install"]["type"], "url");
}
