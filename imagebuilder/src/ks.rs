//! The `ks` subcommands: validate (ksvalidator `-i` semantics, JSON lines), flatten (ksflatten),
//! versions and verdiff (ksverdiff), on top of the `kickstart` crate.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kickstart::{Diagnostic, FsLoader, Options, Severity, Version};
use serde::Serialize;

/// Resolve a `--syntax` value: `F21`…`F46`, `RHEL7`…`RHEL11`, `DEVEL`, or `auto` (the file's
/// `#version=` line, else DEVEL).
pub fn resolve_syntax(syntax: &str, text: Option<&str>) -> Result<Version> {
    if syntax.eq_ignore_ascii_case("auto") {
        return Ok(text
            .and_then(Version::from_text)
            .unwrap_or_else(Version::devel));
    }
    Version::parse(syntax).with_context(|| {
        format!("unknown syntax version {syntax:?} (see `imagebuilder ks versions`)")
    })
}

/// The text of `file` for `--syntax auto`, read as the parser reads it (a regular file of bounded
/// size; anything else is `None` and the parse reports it).
fn peek(file: &str) -> Option<String> {
    use kickstart::Loader;
    FsLoader::default()
        .read(file)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Is `s` an accepted `--syntax` value?
pub fn syntax_is_known(s: &str) -> bool {
    s.eq_ignore_ascii_case("auto") || Version::parse(s).is_some()
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    file: &'a str,
    line: usize,
    message: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    file: &'a str,
    ok: bool,
    errors: Vec<JsonDiag<'a>>,
    warnings: Vec<JsonDiag<'a>>,
}

fn message_with_chain(d: &Diagnostic) -> String {
    if d.include_chain.is_empty() {
        return d.message.clone();
    }
    let chain: Vec<String> = d
        .include_chain
        .iter()
        .rev()
        .map(|s| format!("{}:{}", s.file, s.line))
        .collect();
    format!("{} (included from {})", d.message, chain.join(", from "))
}

/// Options of `ks validate`.
#[derive(Debug, Clone)]
pub struct ValidateOpts {
    /// `--syntax`
    pub syntax: String,
    /// `--json`
    pub json: bool,
    /// `--allow-warnings`
    pub allow_warnings: bool,
    /// `--no-includes`
    pub no_includes: bool,
}

/// Validate `files`, writing one report per file to `out`. Returns whether every file is valid.
pub fn validate(files: &[String], o: &ValidateOpts, out: &mut dyn Write) -> Result<bool> {
    let mut all_ok = true;
    for file in files {
        let version = resolve_syntax(&o.syntax, peek(file).as_deref())?;
        let opts = Options {
            follow_includes: !o.no_includes,
            warnings_as_errors: !o.allow_warnings,
            ..Options::validate(version)
        };
        let report = kickstart::parse_path(file, &opts, &FsLoader::default());
        let errors: Vec<&Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let warnings: Vec<&Diagnostic> = report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .collect();
        let ok = errors.is_empty() && (o.allow_warnings || warnings.is_empty());
        all_ok &= ok;
        if o.json {
            fn conv<'a>(d: &&'a Diagnostic) -> JsonDiag<'a> {
                JsonDiag {
                    file: d.file.as_str(),
                    line: d.line,
                    message: message_with_chain(d),
                }
            }
            let rep = JsonReport {
                file,
                ok,
                errors: errors.iter().map(conv).collect(),
                warnings: warnings.iter().map(conv).collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&rep)?)?;
        } else {
            for d in &report.diagnostics {
                writeln!(out, "{}", d.render())?;
            }
            writeln!(
                out,
                "{file}: {} (syntax {version})",
                if ok { "valid" } else { "INVALID" }
            )?;
        }
    }
    Ok(all_ok)
}

/// Flatten `file` (includes resolved, normalised) to `output` (atomically) or stdout.
pub fn flatten(
    file: &str,
    syntax: &str,
    output: Option<&Path>,
    stdout: &mut dyn Write,
) -> Result<()> {
    let version = resolve_syntax(syntax, peek(file).as_deref())?;
    let report = kickstart::parse_path(file, &Options::flatten(version), &FsLoader::default());
    if let Some(d) = report
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        bail!("{}", d.render());
    }
    let flat = kickstart::write(&report.kickstart);
    match output {
        Some(p) => crate::util::fsutil::write_atomic(p, flat.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?,
        None => stdout.write_all(flat.as_bytes())?,
    }
    Ok(())
}

/// `ks versions`: every syntax version, newest marked DEVEL.
pub fn versions(out: &mut dyn Write) -> Result<()> {
    let devel = Version::devel();
    for v in Version::all() {
        if v == devel {
            writeln!(out, "{} (DEVEL)", v.name())?;
        } else {
            writeln!(out, "{}", v.name())?;
        }
    }
    Ok(())
}

fn options_of(v: Version, cmd: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let t = kickstart::tables::tables();
    let mut all = BTreeSet::new();
    let mut deprecated = BTreeSet::new();
    if let Some(p) = v.spec().commands.get(cmd).and_then(|c| c.parser) {
        for (s, a) in &t.parser(p).strings {
            all.insert(s.clone());
            if t.parser(p).actions[*a].deprecated {
                deprecated.insert(s.clone());
            }
        }
    }
    (all, deprecated)
}

/// `ks verdiff`: commands and options added, deprecated and removed between two versions.
pub fn verdiff(from: Version, to: Version, out: &mut dyn Write) -> Result<()> {
    let a = &from.spec().commands;
    let b = &to.spec().commands;
    writeln!(out, "Differences from {} to {}:", from, to)?;
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    fn status<'a>(
        m: &'a std::collections::BTreeMap<String, kickstart::tables::CommandSpec>,
        n: &String,
    ) -> &'a str {
        m.get(n).map(|c| c.status.as_str()).unwrap_or("absent")
    }
    let mut added = Vec::new();
    let mut deprecated = Vec::new();
    let mut removed = Vec::new();
    for n in names {
        let (x, y) = (status(a, n), status(b, n));
        if y == "ok" && x != "ok" && x != "deprecated" {
            added.push(n.as_str());
        }
        if y == "deprecated" && x != "deprecated" {
            deprecated.push(n.as_str());
        }
        if (y == "removed" || y == "absent") && x != "removed" && x != "absent" {
            removed.push(n.as_str());
        }
    }
    for (title, list) in [
        ("added commands", added),
        ("deprecated commands", deprecated),
        ("removed commands", removed),
    ] {
        writeln!(
            out,
            "{title}: {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(" ")
            }
        )?;
    }
    for name in a.keys().filter(|n| b.contains_key(*n)) {
        let (oa, da) = options_of(from, name);
        let (ob, db) = options_of(to, name);
        if ob.is_empty() && oa.is_empty() {
            continue;
        }
        let added: Vec<&String> = ob.difference(&oa).collect();
        let removed: Vec<&String> = if ob.is_empty() {
            vec![]
        } else {
            oa.difference(&ob).collect()
        };
        let deprecated: Vec<&String> = db.difference(&da).collect();
        for (what, list) in [
            ("added", added),
            ("deprecated", deprecated),
            ("removed", removed),
        ] {
            if !list.is_empty() {
                let l: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
                writeln!(out, "{name}: {what} options: {}", l.join(" "))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(syntax: &str) -> (bool, String) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/syntax/f22-spin-useshadow.ks"
        );
        let o = ValidateOpts {
            syntax: syntax.into(),
            json: false,
            allow_warnings: false,
            no_includes: false,
        };
        let mut out = Vec::new();
        let ok = validate(&[path.to_string()], &o, &mut out).unwrap();
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn validate_honours_the_version_line() {
        let (ok, out) = run("auto");
        assert!(ok, "{out}");
        assert!(run("F22").0);
        let (ok, out) = run("DEVEL");
        assert!(!ok);
        assert!(
            out.contains(":7:") && out.contains("auth has been removed."),
            "{out}"
        );
    }
}
