//! `imagebuilder render`: kickstarts and TDL files from one config and the handlebars templates in
//! `templates/`.
//!
//! Safety rules, enforced here and not left to template authors:
//! * strict mode: a template that names a variable the config does not provide is an error naming
//!   the template and the variable (never an empty string);
//! * every `{{…}}` value goes through a target-aware escaping helper (see [`escape`]): `ks`/`ksarg`
//!   for kickstart command tokens, `sh` for shell lines inside `%post`, `xml` for TDL; a template
//!   with a bare `{{value}}`, or with a helper of the wrong target, is rejected when loaded;
//! * a value that cannot be represented safely (e.g. a newline) is an error naming the config key;
//! * everything is rendered and validated (every TDL by [`crate::tdl`], every kickstart by the
//!   `kickstart` crate with ksvalidator `-i` semantics for its `kickstart_version`) before anything
//!   is written; files are written atomically.
//!
//! Template names map to outputs (`<name>` is the config's [`Config::name`]):
//!
//! | output | template | file |
//! |---|---|---|
//! | `cloud` | `cloud.ks.hbs` | `kickstarts/<name>.ks` (qcow2/raw cloud image, LVM `atomicos`) |
//! | `vagrant` | `vagrant.ks.hbs` | `kickstarts/<name>-vagrant.ks` |
//! | `installer` | `installer.ks.hbs` | `kickstarts/<name>-installer.ks` (interactive-defaults, embedded repo) |
//! | `pxetolive` | `pxetolive.ks.hbs` | `kickstarts/<name>-pxetolive.ks` |
//! | `qcow2` | `qcow2.ks.hbs` | `kickstarts/<name>-qcow2.ks` (plain partitions, boot marker) |
//! | `tdl` | `tdl.xml.hbs` | `tdl/<name>.tdl` |

pub mod escape;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use handlebars::{Handlebars, RenderError, RenderErrorReason};

use crate::config::{self, Config};

/// Largest template file `--templates DIR` reads (1 MiB).
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// The templates shipped in `templates/`, compiled into the binary.
const BUILTIN: &[(&str, &str)] = &[
    ("cloud.ks.hbs", include_str!("../../templates/cloud.ks.hbs")),
    (
        "vagrant.ks.hbs",
        include_str!("../../templates/vagrant.ks.hbs"),
    ),
    (
        "installer.ks.hbs",
        include_str!("../../templates/installer.ks.hbs"),
    ),
    (
        "pxetolive.ks.hbs",
        include_str!("../../templates/pxetolive.ks.hbs"),
    ),
    ("qcow2.ks.hbs", include_str!("../../templates/qcow2.ks.hbs")),
    ("tdl.xml.hbs", include_str!("../../templates/tdl.xml.hbs")),
    (
        "partials/header.hbs",
        include_str!("../../templates/partials/header.hbs"),
    ),
    (
        "partials/locale.hbs",
        include_str!("../../templates/partials/locale.hbs"),
    ),
    (
        "partials/network.hbs",
        include_str!("../../templates/partials/network.hbs"),
    ),
    (
        "partials/ostreesetup.hbs",
        include_str!("../../templates/partials/ostreesetup.hbs"),
    ),
    (
        "partials/part-atomicos.hbs",
        include_str!("../../templates/partials/part-atomicos.hbs"),
    ),
    (
        "partials/part-plain.hbs",
        include_str!("../../templates/partials/part-plain.hbs"),
    ),
    (
        "partials/post-remote.hbs",
        include_str!("../../templates/partials/post-remote.hbs"),
    ),
    (
        "partials/post-cloud.hbs",
        include_str!("../../templates/partials/post-cloud.hbs"),
    ),
    (
        "partials/post-vagrant.hbs",
        include_str!("../../templates/partials/post-vagrant.hbs"),
    ),
    (
        "partials/post-boot-marker.hbs",
        include_str!("../../templates/partials/post-boot-marker.hbs"),
    ),
];

/// What one output is: its template and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputKind {
    pub name: &'static str,
    pub template: &'static str,
    /// Directory under the output directory.
    pub dir: &'static str,
    /// Appended to the config's `name`.
    pub suffix: &'static str,
}

/// Every output `render` knows.
pub const OUTPUTS: &[OutputKind] = &[
    OutputKind {
        name: "cloud",
        template: "cloud.ks.hbs",
        dir: "kickstarts",
        suffix: ".ks",
    },
    OutputKind {
        name: "vagrant",
        template: "vagrant.ks.hbs",
        dir: "kickstarts",
        suffix: "-vagrant.ks",
    },
    OutputKind {
        name: "installer",
        template: "installer.ks.hbs",
        dir: "kickstarts",
        suffix: "-installer.ks",
    },
    OutputKind {
        name: "pxetolive",
        template: "pxetolive.ks.hbs",
        dir: "kickstarts",
        suffix: "-pxetolive.ks",
    },
    OutputKind {
        name: "qcow2",
        template: "qcow2.ks.hbs",
        dir: "kickstarts",
        suffix: "-qcow2.ks",
    },
    OutputKind {
        name: "tdl",
        template: "tdl.xml.hbs",
        dir: "tdl",
        suffix: ".tdl",
    },
];

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Relative to the output directory, e.g. `kickstarts/fedora-atomic-29.ks`.
    pub path: PathBuf,
    pub contents: String,
    pub profile: String,
    pub template: String,
    /// For kickstarts: the pykickstart version they target (e.g. `F29`).
    pub kickstart_version: Option<String>,
}

/// A loaded, checked template set.
pub struct Templates {
    hb: Handlebars<'static>,
}

/// Which escaping helpers a template may use.
fn allowed_helpers(template: &str) -> &'static [&'static str] {
    if template.ends_with(".xml.hbs") {
        &["xml"]
    } else {
        &["ks", "ksarg", "sh"]
    }
}

/// Rejects any `{{…}}` that is not a partial, a comment, a block/else, or a call of one of the
/// template's escaping helpers.
pub fn check_expressions(template: &str, src: &str) -> Result<()> {
    let helpers = allowed_helpers(template);
    let mut rest = src;
    let mut consumed = 0;
    while let Some(start) = rest.find("{{") {
        let line = src[..consumed + start].matches('\n').count() + 1;
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("template {template} line {line}: `{{{{` without `}}}}`"))?;
        let expr = after[..end].trim_start_matches(['{', '~']).trim();
        let head = expr.split_whitespace().next().unwrap_or("");
        let ok = expr.starts_with('>')
            || expr.starts_with('!')
            || matches!(head, "#if" | "/if" | "#unless" | "/unless" | "else")
            || helpers.contains(&head);
        if !ok {
            bail!(
                "template {template} line {line}: `{{{{{expr}}}}}` does not go through an escaping helper \
                 (allowed here: {})",
                helpers.join(", ")
            );
        }
        consumed += start + 2 + end + 2;
        rest = &after[end + 2..];
    }
    Ok(())
}

impl Templates {
    /// The templates compiled into the binary.
    pub fn builtin() -> Result<Templates> {
        Templates::from_sources(BUILTIN.iter().map(|(n, s)| (n.to_string(), s.to_string())))
    }

    /// Loads `*.hbs` from `dir` and `dir/partials/` (for template development).
    pub fn from_dir(dir: &Path) -> Result<Templates> {
        let mut sources = Vec::new();
        for (sub, prefix) in [(dir.to_path_buf(), ""), (dir.join("partials"), "partials/")] {
            let entries = std::fs::read_dir(&sub)
                .with_context(|| format!("reading template directory {}", sub.display()))?;
            for e in entries {
                let p = e?.path();
                let Some(file) = p.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                if p.is_file() && file.ends_with(".hbs") {
                    let text = crate::util::fsutil::read_input(&p, "template", MAX_TEMPLATE_BYTES)?;
                    sources.push((format!("{prefix}{file}"), text));
                }
            }
        }
        Templates::from_sources(sources.into_iter())
    }

    fn from_sources(sources: impl Iterator<Item = (String, String)>) -> Result<Templates> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.set_prevent_indent(true);
        hb.register_escape_fn(handlebars::no_escape);
        escape::register(&mut hb);
        for (name, src) in sources {
            check_expressions(&name, &src)?;
            if let Some(partial) = name.strip_prefix("partials/") {
                let partial = partial.trim_end_matches(".hbs");
                hb.register_partial(partial, src)
                    .with_context(|| format!("parsing template {name}"))?;
            } else {
                hb.register_template_string(&name, src)
                    .with_context(|| format!("parsing template {name}"))?;
            }
        }
        Ok(Templates { hb })
    }

    /// Renders `template` with `data`; errors name the template and, for strict mode, the variable.
    pub fn render_template(&self, template: &str, data: &serde_json::Value) -> Result<String> {
        self.hb
            .render(template, data)
            .map_err(|e| anyhow::anyhow!(describe(template, &e)))
    }

    /// Renders every output of one profile.
    pub fn render_profile(&self, cfg: &Config, profile: &str) -> Result<Vec<Rendered>> {
        let data = context(cfg, profile);
        let name = cfg.name();
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        {
            let key = if cfg.name.is_some() {
                "name"
            } else {
                "os_name`/`release"
            };
            bail!(
                "profile `{profile}`: key `{key}`: output name `{name}` must be a plain file name \
                 (letters, digits, `._+-`, not starting with `.`)"
            );
        }
        let mut out = Vec::new();
        for output in cfg.outputs() {
            let kind = OUTPUTS.iter().find(|k| k.name == output).with_context(|| {
                format!(
                    "profile `{profile}`: unknown output `{output}` in key `outputs` (known: {})",
                    OUTPUTS
                        .iter()
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let contents = self
                .render_template(kind.template, &data)
                .with_context(|| format!("profile `{profile}`"))?;
            let path = Path::new(kind.dir).join(format!("{}{}", cfg.name(), kind.suffix));
            let is_ks = kind.dir == "kickstarts";
            if is_ks {
                validate_kickstart(&path, &contents, &cfg.kickstart_version())
                    .with_context(|| format!("profile `{profile}` (template {})", kind.template))?;
            } else {
                crate::tdl::parse(&contents).map_err(|e| {
                    anyhow::anyhow!(
                        "profile `{profile}`: rendered {} does not validate:\n{e}",
                        path.display()
                    )
                })?;
            }
            out.push(Rendered {
                path,
                contents,
                profile: profile.to_string(),
                template: kind.template.to_string(),
                kickstart_version: is_ks.then(|| cfg.kickstart_version()),
            });
        }
        Ok(out)
    }
}

/// Checks a rendered kickstart with our validator, ksvalidator `-i` semantics (warnings are errors)
/// for syntax `version`; the error names `path` and the line of every problem.
pub fn validate_kickstart(path: &Path, contents: &str, version: &str) -> Result<()> {
    let v = kickstart::Version::parse(version).with_context(|| {
        format!("key `kickstart_version`: `{version}` is not a kickstart syntax version pykickstart knows")
    })?;
    // Rendered kickstarts are self-contained: an `%include` has nothing to resolve against.
    let report = kickstart::parse_with(
        contents,
        &path.display().to_string(),
        &kickstart::Options::validate(v),
        &kickstart::MemLoader::default(),
    );
    if !report.is_valid(false) {
        let problems: Vec<String> = report.diagnostics.iter().map(|d| d.render()).collect();
        bail!(
            "rendered {} is not a valid {v} kickstart:\n{}",
            path.display(),
            problems.join("\n")
        );
    }
    Ok(())
}

fn describe(template: &str, e: &RenderError) -> String {
    let name = match &e.template_name {
        Some(t) if t != template => format!("{template} (partial {t})"),
        _ => template.to_string(),
    };
    let line = e.line_no.map(|l| format!(" line {l}")).unwrap_or_default();
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(v)) => {
            format!("template {name}{line}: unknown variable `{v}` (not a config key)")
        }
        RenderErrorReason::MissingVariable(None) => {
            format!("template {name}{line}: unknown variable")
        }
        other => format!("template {name}{line}: {other}"),
    }
}

/// The template context: every config key (unset = null) with the render defaults filled in.
pub fn context(cfg: &Config, profile: &str) -> serde_json::Value {
    let mut c = cfg.clone();
    let fill = |v: &mut Option<String>, d: String| {
        if v.is_none() {
            *v = Some(d);
        }
    };
    fill(&mut c.ostree_remote, cfg.os_name.clone());
    fill(&mut c.name, cfg.os_nr());
    fill(&mut c.installer_repo_url, "file:///ostree/repo".into());
    fill(&mut c.tdl_os_name, "Fedora".into());
    fill(&mut c.tdl_os_version, cfg.release.clone());
    fill(&mut c.kickstart_version, cfg.kickstart_version());
    fill(&mut c.timezone, "Etc/UTC".into());
    fill(&mut c.lang, "en_US.UTF-8".into());
    fill(&mut c.keyboard, "us".into());
    fill(
        &mut c.kernel_append,
        "no_timer_check console=tty1 console=ttyS0,115200n8".into(),
    );
    c.outputs = cfg.outputs();
    let mut v = serde_json::to_value(&c).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        // Not config keys, but stable facts the header may mention.
        obj.insert("profile".into(), profile.into());
    }
    v
}

/// Loads the config and renders `profile`, or every profile (DEFAULT and each section) when `None`.
/// Identical outputs of several profiles are kept once; conflicting ones are an error.
pub fn render_config(
    config_path: &Path,
    profile: Option<&str>,
    templates: &Templates,
) -> Result<Vec<Rendered>> {
    let profiles = match profile {
        Some(p) => vec![p.to_string()],
        None => config::profiles(config_path)?,
    };
    let mut by_path: BTreeMap<PathBuf, Rendered> = BTreeMap::new();
    for p in &profiles {
        let loaded = config::load(config_path, Some(p))?;
        for r in templates.render_profile(&loaded.config, p)? {
            if let Some(prev) = by_path.get(&r.path) {
                if prev.contents != r.contents {
                    bail!(
                        "profiles `{}` and `{}` both render {} with different contents; set `name` in one of them",
                        prev.profile,
                        r.profile,
                        r.path.display()
                    );
                }
                continue;
            }
            by_path.insert(r.path.clone(), r);
        }
    }
    Ok(by_path.into_values().collect())
}

/// The rendered files whose copy under `out_dir` is missing or different. A copy that is not a
/// regular file (a FIFO, a device) or is longer than the rendered text is different, and is read
/// no further than that.
pub fn stale_outputs(out_dir: &Path, rendered: &[Rendered]) -> Vec<PathBuf> {
    rendered
        .iter()
        .map(|r| out_dir.join(&r.path))
        .zip(rendered)
        .filter(|(p, r)| {
            kickstart::loader::read_regular_file(p, r.contents.len() as u64)
                .ok()
                .as_deref()
                != Some(r.contents.as_bytes())
        })
        .map(|(p, _)| p)
        .collect()
}

/// Writes every rendered file under `out_dir`: all of them or none. Call only after everything rendered.
pub fn write_outputs(out_dir: &Path, rendered: &[Rendered]) -> Result<()> {
    let files: Vec<(PathBuf, Vec<u8>)> = rendered
        .iter()
        .map(|r| (out_dir.join(&r.path), r.contents.as_bytes().to_vec()))
        .collect();
    crate::util::fsutil::write_all_atomic(&files)
        .with_context(|| format!("writing rendered files under {}", out_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_values_and_wrong_targets_are_rejected() {
        assert!(
            check_expressions("x.ks.hbs", "a {{ks os_name}} {{> header}} {{#if a}}{{/if}}").is_ok()
        );
        let e = check_expressions("x.ks.hbs", "line1\nrootpw {{rootpw}}").unwrap_err();
        assert!(
            e.to_string().contains("x.ks.hbs line 2") && e.to_string().contains("rootpw"),
            "{e}"
        );
        let e = check_expressions("x.ks.hbs", "{{{ostree_url}}}").unwrap_err();
        assert!(e.to_string().contains("ostree_url"), "{e}");
        assert!(check_expressions("t.xml.hbs", "<a>{{ks name}}</a>").is_err());
        assert!(check_expressions("x.ks.hbs", "{{xml name}}").is_err());
    }

    #[test]
    fn rendered_kickstarts_are_validated_with_file_and_line() {
        let p = Path::new("kickstarts/x.ks");
        validate_kickstart(p, "#version=F29\nreboot\n", "F29").unwrap();
        let e = validate_kickstart(p, "#version=F29\nreboot\nnosuchcmd\n", "F29").unwrap_err();
        assert!(e.to_string().contains("kickstarts/x.ks:3: error"), "{e}");
        let e = validate_kickstart(p, "reboot\n", "F0").unwrap_err();
        assert!(e.to_string().contains("`kickstart_version`"), "{e}");
    }

    #[test]
    fn builtin_templates_load() {
        Templates::builtin().unwrap();
    }

    #[test]
    fn unknown_variable_names_template_and_variable() {
        let t = Templates::from_sources(
            [(
                "t.ks.hbs".to_string(),
                "a\nlang {{ksarg no_such_key}}\n".to_string(),
            )]
            .into_iter(),
        )
        .unwrap();
        let e = t
            .render_template("t.ks.hbs", &serde_json::json!({"os_name": "x"}))
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.ks.hbs") && msg.contains("no_such_key"),
            "{msg}"
        );
    }
}
