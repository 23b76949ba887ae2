//! The project's one configuration type: rpm-ostree-toolbox's `config.ini` (or the same keys in TOML)
//! read into a typed [`Config`].
//!
//! INI semantics follow Python's `configparser` as the toolbox used it: a `[DEFAULT]` section whose keys
//! every profile inherits, `%(key)s` interpolation (`%%` is a literal `%`), case-insensitive keys,
//! `key = value` or `key: value`, `#`/`;` comment lines, indented continuation lines. A key is looked up
//! in the profile section, then `[DEFAULT]`, then the code default. Unlike the toolbox, booleans are
//! really parsed (`is_final = False` means false), unknown keys are reported as warnings (with a hint
//! for the known misspellings `config_dir` and `outputdir`), and missing required keys are errors
//! naming the key.
//!
//! The TOML form has the same keys: top-level keys play the role of `[DEFAULT]`, each table is a
//! profile.
//!
//! API: [`load`] (file → [`Loaded`] with the typed [`Config`] and warnings), [`parse`] (pure, `&str`
//! in), [`profiles`]; typed errors in [`ConfigError`]; derived values as methods on [`Config`]
//! ([`Config::remote`], [`Config::os_nr`], [`Config::tree_file_path`], [`Config::repo_location`], …).
//!
//! ```no_run
//! let loaded = imagebuilder::config::load(std::path::Path::new("kickstarts/config.ini"), None)?;
//! for w in &loaded.warnings { eprintln!("warning: {w}"); }
//! println!("{}", loaded.config.os_nr());
//! # anyhow::Ok(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest config file read (1 MiB; a config is a few KiB). Only regular files are read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// configparser's `MAX_INTERPOLATION_DEPTH`: `%(key)s` references nest at most 10 levels.
pub const MAX_INTERPOLATION_DEPTH: usize = 10;

/// Longest value after interpolation (64 KiB): `a = %(b)s%(b)s`, `b = %(c)s%(c)s`, … doubles per
/// level and is refused when it gets longer.
pub const MAX_VALUE_BYTES: usize = 64 << 10;

/// Most bytes all values of one profile expand to together (4 MiB).
pub const MAX_EXPANDED_BYTES: usize = 4 << 20;

/// The name of the profile that holds the defaults (and the profile used when none is given).
pub const DEFAULT_PROFILE: &str = "DEFAULT";

/// A located configuration error. Callers that need to branch (e.g. "profile not found") match on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{file}: profile `{profile}` not found (profiles: {available})")]
    NoProfile {
        file: PathBuf,
        profile: String,
        available: String,
    },
    #[error("{file}: profile `{profile}`: missing required key `{key}`")]
    MissingKey {
        file: PathBuf,
        profile: String,
        key: String,
    },
    #[error("{file}: profile `{profile}`: key `{key}`: {message}")]
    BadValue {
        file: PathBuf,
        profile: String,
        key: String,
        message: String,
    },
    /// The message holds the I/O error (it is not also a `source`, which would print it twice).
    #[error("{file}: cannot read: {error}")]
    Io {
        file: PathBuf,
        error: std::io::Error,
    },
}

/// Every key the project knows, as in rpm-ostree-toolbox's `config.ini` plus the render keys.
///
/// Empty values count as unset. Paths stay as written; use the accessor methods for resolved paths.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    // --- rpm-ostree-toolbox keys (toolbox-workflow.md §3.2) ---
    /// OSTree osname (stateroot); required.
    pub os_name: String,
    /// Remote name written by the installer; defaults to `os_name` (see [`Config::remote`]).
    pub ostree_remote: Option<String>,
    pub os_pretty_name: Option<String>,
    pub tree_name: Option<String>,
    /// Treefile, relative to `configdir` (see [`Config::tree_file_path`]).
    pub tree_file: Option<PathBuf>,
    /// Architecture; required.
    pub arch: String,
    /// Release (e.g. `29`, `rawhide`); required.
    pub release: String,
    /// OSTree ref; required.
    #[serde(rename = "ref")]
    pub ostree_ref: String,
    pub yum_baseurl: Option<String>,
    #[serde(default)]
    pub lorax_additional_repos: Vec<String>,
    #[serde(default)]
    pub lorax_inherit_repos: bool,
    #[serde(default)]
    pub lorax_exclude_packages: Vec<String>,
    #[serde(default)]
    pub lorax_include_packages: Vec<String>,
    pub lorax_rootfs_size: Option<u64>,
    #[serde(default)]
    pub is_final: bool,
    pub docker_os_name: Option<String>,
    pub ostree_repo: Option<PathBuf>,
    pub rpmostree_cache_dir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    /// Where relative files are looked up; defaults to the directory of the config file.
    pub configdir: Option<PathBuf>,
    pub http_proxy: Option<String>,
    #[serde(default = "yes")]
    pub selinux: bool,
    pub local_overrides: Option<String>,
    pub pkgdatadir: Option<PathBuf>,
    pub vsphere_product_name: Option<String>,
    pub vsphere_product_vendor_name: Option<String>,
    pub vsphere_product_version: Option<String>,
    pub vsphere_virtual_system_type: Option<String>,

    // --- render keys (this project) ---
    /// Prefix of rendered file names; defaults to `<os_name>-<release>` (see [`Config::name`]).
    pub name: Option<String>,
    /// What `render` produces for this profile (template names); default
    /// `cloud, vagrant, installer, pxetolive, tdl`.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// `ostreesetup --url` of the disk kickstarts (cloud, vagrant, pxetolive, qcow2).
    pub ostree_url: Option<String>,
    /// Remote URL configured in the installed system by `%post` (updates after install).
    pub ostree_remote_url: Option<String>,
    /// `ostreesetup --url` of the installer's interactive-defaults (the embedded repo).
    pub installer_repo_url: Option<String>,
    /// TDL `<install type='url'><url>`: the Anaconda tree Oz boots.
    pub install_tree_url: Option<String>,
    /// TDL `<os><name>`; default `Fedora`.
    pub tdl_os_name: Option<String>,
    /// TDL `<os><version>`; default `release`.
    pub tdl_os_version: Option<String>,
    /// Root password: TDL `<rootpw>` and `rootpw --plaintext` of the plain-partition kickstart.
    pub rootpw: Option<String>,
    /// TDL `<disk><size>` (Oz units, e.g. `10G`).
    pub disk_size: Option<String>,
    /// pykickstart version of the rendered kickstarts (e.g. `F29`); default `F<release>`.
    pub kickstart_version: Option<String>,
    pub timezone: Option<String>,
    pub lang: Option<String>,
    pub keyboard: Option<String>,
    /// `bootloader --append` of the rendered disk kickstarts.
    pub kernel_append: Option<String>,
    /// If set, the plain-partition kickstart installs a unit printing this line on the console at boot.
    pub boot_marker: Option<String>,
    /// `services --enabled=` of the plain-partition kickstart (units, comma-separated), e.g. the
    /// service that applies its `network` line in a tree that does not enable one itself.
    pub services_enabled: Option<String>,
}

fn yes() -> bool {
    true
}

/// Keys whose value is a boolean (`1/yes/true/on`, `0/no/false/off`, case-insensitive).
const BOOL_KEYS: &[&str] = &["lorax_inherit_repos", "is_final", "selinux"];
/// Keys whose value is a non-negative integer.
const INT_KEYS: &[&str] = &["lorax_rootfs_size"];
/// Keys whose value is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "lorax_additional_repos",
    "lorax_exclude_packages",
    "lorax_include_packages",
    "outputs",
];
/// Keys every profile must have.
pub const REQUIRED_KEYS: &[&str] = &["os_name", "arch", "release", "ref"];

/// Every key [`Config`] knows (its serde field names).
pub const KNOWN_KEYS: &[&str] = &[
    "os_name",
    "ostree_remote",
    "os_pretty_name",
    "tree_name",
    "tree_file",
    "arch",
    "release",
    "ref",
    "yum_baseurl",
    "lorax_additional_repos",
    "lorax_inherit_repos",
    "lorax_exclude_packages",
    "lorax_include_packages",
    "lorax_rootfs_size",
    "is_final",
    "docker_os_name",
    "ostree_repo",
    "rpmostree_cache_dir",
    "workdir",
    "configdir",
    "http_proxy",
    "selinux",
    "local_overrides",
    "pkgdatadir",
    "vsphere_product_name",
    "vsphere_product_vendor_name",
    "vsphere_product_version",
    "vsphere_virtual_system_type",
    "name",
    "outputs",
    "ostree_url",
    "ostree_remote_url",
    "installer_repo_url",
    "install_tree_url",
    "tdl_os_name",
    "tdl_os_version",
    "rootpw",
    "disk_size",
    "kickstart_version",
    "timezone",
    "lang",
    "keyboard",
    "kernel_append",
    "boot_marker",
    "services_enabled",
];

/// The default `outputs` of a profile.
pub const DEFAULT_OUTPUTS: &[&str] = &["cloud", "vagrant", "installer", "pxetolive", "tdl"];

impl Config {
    /// `ostree_remote`, defaulting to `os_name`.
    pub fn remote(&self) -> &str {
        self.ostree_remote.as_deref().unwrap_or(&self.os_name)
    }

    /// `<os_name>-<release>`, the toolbox's `os_nr`.
    pub fn os_nr(&self) -> String {
        format!("{}-{}", self.os_name, self.release)
    }

    /// Prefix of rendered file names: `name`, defaulting to [`Config::os_nr`].
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.os_nr())
    }

    /// The outputs `render` produces for this profile.
    pub fn outputs(&self) -> Vec<String> {
        if self.outputs.is_empty() {
            DEFAULT_OUTPUTS.iter().map(|s| s.to_string()).collect()
        } else {
            self.outputs.clone()
        }
    }

    /// pykickstart version string for the rendered kickstarts: `kickstart_version`, else
    /// `F<release>` for a numeric release, else `DEVEL`.
    pub fn kickstart_version(&self) -> String {
        if let Some(v) = &self.kickstart_version {
            return v.clone();
        }
        if !self.release.is_empty() && self.release.bytes().all(|b| b.is_ascii_digit()) {
            format!("F{}", self.release)
        } else {
            "DEVEL".to_string()
        }
    }

    /// Where the OSTree repo is, first match wins: `cli` (`--ostreerepo`), the `ostree_repo` key,
    /// `$OSTREE_REPO`, `./repo`. A value is remote only if it is an `http://` or `https://` URL (the
    /// toolbox treated any string containing "http" as a URL).
    pub fn repo_location(&self, cli: Option<&str>) -> RepoLocation {
        let env = std::env::var("OSTREE_REPO").ok().filter(|s| !s.is_empty());
        let chosen = cli
            .map(str::to_string)
            .or_else(|| {
                self.ostree_repo
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .or(env)
            .unwrap_or_else(|| "repo".to_string());
        RepoLocation::parse(&chosen)
    }

    /// The treefile path resolved against `configdir`.
    pub fn tree_file_path(&self) -> Option<PathBuf> {
        let t = self.tree_file.as_ref()?;
        Some(match &self.configdir {
            Some(dir) => dir.join(t),
            None => t.clone(),
        })
    }
}

/// A local repository path or a remote repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    Local(PathBuf),
    Remote(String),
}

impl RepoLocation {
    /// `http://` / `https://` (case-insensitive scheme) is remote; anything else is a path.
    pub fn parse(s: &str) -> RepoLocation {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            RepoLocation::Remote(s.to_string())
        } else {
            RepoLocation::Local(PathBuf::from(s))
        }
    }
}

/// A loaded profile: the typed config plus where it came from and what was suspicious about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
    pub profile: String,
    /// Unknown keys, misspellings, empty interpolations: one message each, naming the key.
    pub warnings: Vec<String>,
}

/// Which syntax a config file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Toml,
}

impl Format {
    /// `.toml` files are TOML, everything else INI.
    pub fn for_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Ini,
        }
    }
}

/// Reads `path` and returns the `profile` (default `DEFAULT`). `configdir` defaults to the directory
/// of the config file.
pub fn load(path: &Path, profile: Option<&str>) -> Result<Loaded, ConfigError> {
    let text = read(path)?;
    let mut loaded = parse(&text, Format::for_path(path), path, profile)?;
    if loaded.config.configdir.is_none() {
        let dir = crate::util::fsutil::parent_dir(path);
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        loaded.config.configdir = Some(dir);
    }
    Ok(loaded)
}

/// Lists the profiles of a config file: `DEFAULT` first, then every section in file order.
pub fn profiles(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = read(path)?;
    let doc = parse_document(&text, Format::for_path(path), path)?;
    let mut names = vec![DEFAULT_PROFILE.to_string()];
    names.extend(doc.sections.iter().map(|s| s.name.clone()));
    Ok(names)
}

/// The config file's text: a regular file of at most [`MAX_FILE_BYTES`], UTF-8.
fn read(path: &Path) -> Result<String, ConfigError> {
    let io = |error| ConfigError::Io {
        file: path.to_path_buf(),
        error,
    };
    let bytes = kickstart::loader::read_regular_file(path, MAX_FILE_BYTES).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({})", e.utf8_error()),
        ))
    })
}

/// Pure parse: `text` in `format`, `origin` only names the file in errors.
pub fn parse(
    text: &str,
    format: Format,
    origin: &Path,
    profile: Option<&str>,
) -> Result<Loaded, ConfigError> {
    let doc = parse_document(text, format, origin)?;
    let profile = profile.unwrap_or(DEFAULT_PROFILE).to_string();
    let (raw, mut warnings) = doc.resolve(&profile, origin)?;
    let config = typed(&raw, origin, &profile, &mut warnings)?;
    for w in &warnings {
        tracing::warn!("{}: {w}", origin.display());
    }
    Ok(Loaded {
        config,
        path: origin.to_path_buf(),
        profile,
        warnings,
    })
}

/// One `key = value` with the line it came from.
#[derive(Debug, Clone)]
struct Entry {
    value: RawValue,
    line: usize,
}

#[derive(Debug, Clone)]
enum RawValue {
    /// An INI string, still to be interpolated.
    Ini(String),
    /// A TOML value (no interpolation).
    Toml(toml::Value),
}

#[derive(Debug, Default)]
struct Section {
    name: String,
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Default)]
struct Document {
    defaults: Section,
    sections: Vec<Section>,
}

fn syntax(origin: &Path, line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError::Syntax {
        file: origin.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn parse_document(text: &str, format: Format, origin: &Path) -> Result<Document, ConfigError> {
    match format {
        Format::Ini => parse_ini(text, origin),
        Format::Toml => parse_toml(text, origin),
    }
}

/// configparser-style INI reader (strict: duplicate sections and keys are errors).
fn parse_ini(text: &str, origin: &Path) -> Result<Document, ConfigError> {
    let mut doc = Document::default();
    // Index into doc.sections, or None for [DEFAULT]; no section yet is an error on the first key.
    let mut current: Option<Option<usize>> = None;
    let mut last_key: Option<String> = None;
    for (i, raw_line) in text.lines().enumerate() {
        let lineno = i + 1;
        let trimmed = raw_line.trim();
        let indented = raw_line.starts_with([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            // configparser keeps blank lines inside multi-line values only when followed by more
            // continuation; treat blank/comment lines as terminating nothing.
            continue;
        }
        if indented && let (Some(sec), Some(key)) = (current, last_key.as_ref()) {
            let section = match sec {
                None => &mut doc.defaults,
                Some(i) => &mut doc.sections[i],
            };
            if let Some(Entry {
                value: RawValue::Ini(v),
                ..
            }) = section.entries.get_mut(key)
            {
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| syntax(origin, lineno, "section header without closing `]`"))?
                .trim();
            if name.is_empty() {
                return Err(syntax(origin, lineno, "empty section name"));
            }
            last_key = None;
            if name == DEFAULT_PROFILE {
                current = Some(None);
                continue;
            }
            if doc.sections.iter().any(|s| s.name == name) {
                return Err(syntax(
                    origin,
                    lineno,
                    format!("section `[{name}]` appears twice"),
                ));
            }
            doc.sections.push(Section {
                name: name.to_string(),
                entries: BTreeMap::new(),
            });
            current = Some(Some(doc.sections.len() - 1));
            continue;
        }
        let Some(sec) = current else {
            return Err(syntax(
                origin,
                lineno,
                "key outside of any section (start with `[DEFAULT]`)",
            ));
        };
        let pos = trimmed.find(['=', ':']).ok_or_else(|| {
            syntax(
                origin,
                lineno,
                format!("expected `key = value`, got `{trimmed}`"),
            )
        })?;
        let key = trimmed[..pos].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(syntax(origin, lineno, "empty key"));
        }
        let value = trimmed[pos + 1..].trim().to_string();
        let section = match sec {
            None => &mut doc.defaults,
            Some(i) => &mut doc.sections[i],
        };
        if let Some(prev) = section.entries.get(&key) {
            return Err(syntax(
                origin,
                lineno,
                format!("key `{key}` already set on line {}", prev.line),
            ));
        }
        section.entries.insert(
            key.clone(),
            Entry {
                value: RawValue::Ini(value),
                line: lineno,
            },
        );
        last_key = Some(key);
    }
    Ok(doc)
}

/// TOML form: top-level keys are `[DEFAULT]`, tables are profiles.
fn parse_toml(text: &str, origin: &Path) -> Result<Document, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        syntax(origin, line, e.message().to_string())
    })?;
    let line_of = |key: &str| {
        text.lines()
            .position(|l| {
                let l = l.trim_start();
                l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
            })
            .map(|i| i + 1)
            .unwrap_or(0)
    };
    let mut doc = Document::default();
    for (key, value) in table {
        match value {
            toml::Value::Table(t) => {
                let mut section = Section {
                    name: key.clone(),
                    entries: BTreeMap::new(),
                };
                for (k, v) in t {
                    let line = line_of(&k);
                    section.entries.insert(
                        k.to_ascii_lowercase(),
                        Entry {
                            value: RawValue::Toml(v),
                            line,
                        },
                    );
                }
                doc.sections.push(section);
            }
            v => {
                let line = line_of(&key);
                doc.defaults.entries.insert(
                    key.to_ascii_lowercase(),
                    Entry {
                        value: RawValue::Toml(v),
                        line,
                    },
                );
            }
        }
    }
    Ok(doc)
}

/// A resolved value: interpolated string, or a TOML value.
type RawMap = BTreeMap<String, (RawValue, usize)>;

impl Document {
    /// Merges DEFAULT and the profile and interpolates every value; returns the raw map and warnings.
    fn resolve(&self, profile: &str, origin: &Path) -> Result<(RawMap, Vec<String>), ConfigError> {
        let mut merged: Merged = self
            .defaults
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), (e, DEFAULT_PROFILE)))
            .collect();
        if profile != DEFAULT_PROFILE {
            let section = self
                .sections
                .iter()
                .find(|s| s.name == profile)
                .ok_or_else(|| ConfigError::NoProfile {
                    file: origin.to_path_buf(),
                    profile: profile.to_string(),
                    available: std::iter::once(DEFAULT_PROFILE)
                        .chain(self.sections.iter().map(|s| s.name.as_str()))
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            for (k, e) in &section.entries {
                merged.insert(k.clone(), (e, section.name.as_str()));
            }
        }
        let mut interp = Interpolation {
            map: &merged,
            origin,
            memo: HashMap::new(),
            total: 0,
            warnings: Vec::new(),
        };
        let mut out = RawMap::new();
        for (key, (entry, _)) in &merged {
            let value = match &entry.value {
                RawValue::Ini(_) => RawValue::Ini(interp.value(key)?.0.to_string()),
                v => v.clone(),
            };
            out.insert(key.clone(), (value, entry.line));
        }
        Ok((out, interp.warnings))
    }
}

/// The keys of a profile: each with its entry and the section it comes from.
type Merged<'a> = BTreeMap<String, (&'a Entry, &'a str)>;

/// An interpolated value and its height: how deep its `%(key)s` references nest.
type Expanded = (Rc<str>, usize);

/// configparser's BasicInterpolation (`%(name)s` and `%%`) over one profile's keys. Each key is
/// expanded once (so work and memory grow with the output, not with the number of paths to a
/// key), references nest at most [`MAX_INTERPOLATION_DEPTH`] levels as in configparser, a value
/// expands to at most [`MAX_VALUE_BYTES`] and all values to at most [`MAX_EXPANDED_BYTES`].
struct Interpolation<'a> {
    map: &'a Merged<'a>,
    origin: &'a Path,
    /// Expanded keys; `None` while a key is being expanded (seeing it again is a cycle).
    memo: HashMap<String, Option<Expanded>>,
    total: usize,
    warnings: Vec<String>,
}

impl Interpolation<'_> {
    fn value(&mut self, key: &str) -> Result<Expanded, ConfigError> {
        let (entry, section) = self.map[key];
        let err = |message: String| {
            syntax(
                self.origin,
                entry.line,
                format!("key `{key}` in section `[{section}]`: {message}"),
            )
        };
        match self.memo.get(key) {
            Some(Some(done)) => return Ok(done.clone()),
            Some(None) => return Err(err("is part of an interpolation cycle".into())),
            None => {}
        }
        let RawValue::Ini(text) = &entry.value else {
            return Err(err("is not a string".into()));
        };
        self.memo.insert(key.to_string(), None);
        let mut out = String::new();
        let mut height = 0;
        let mut warned_empty = std::collections::HashSet::new();
        let mut rest = text.as_str();
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            rest = &rest[pos..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%(") {
                let close = r.find(")s").ok_or_else(|| {
                    err(format!(
                        "bad interpolation syntax (expected `%(name)s`) in `{text}`"
                    ))
                })?;
                let name = r[..close].to_ascii_lowercase();
                if !self.map.contains_key(&name) {
                    return Err(err(format!("refers to `%({name})s`, which is not set")));
                }
                let (value, h) = self.value(&name)?;
                height = height.max(h + 1);
                if height > MAX_INTERPOLATION_DEPTH {
                    return Err(err(format!(
                        "interpolation nests deeper than {MAX_INTERPOLATION_DEPTH} levels (a cycle?)"
                    )));
                }
                if value.is_empty() && warned_empty.insert(name.clone()) {
                    self.warnings.push(format!(
                        "key `{key}` (line {}) interpolates `%({name})s`, which is empty",
                        entry.line
                    ));
                }
                if out.len() + value.len() > MAX_VALUE_BYTES {
                    return Err(err(format!(
                        "value longer than {} after interpolation",
                        kickstart::loader::human_size(MAX_VALUE_BYTES as u64)
                    )));
                }
                out.push_str(&value);
                rest = &r[close + 2..];
            } else {
                return Err(err(format!(
                    "`%` must be followed by `%` or `(name)s` in `{text}`"
                )));
            }
        }
        out.push_str(rest);
        if out.len() > MAX_VALUE_BYTES {
            return Err(err(format!(
                "value longer than {} after interpolation",
                kickstart::loader::human_size(MAX_VALUE_BYTES as u64)
            )));
        }
        self.total += out.len();
        if self.total > MAX_EXPANDED_BYTES {
            return Err(err(format!(
                "the values of the profile expand to more than {} in total",
                kickstart::loader::human_size(MAX_EXPANDED_BYTES as u64)
            )));
        }
        let done: Expanded = (Rc::from(out), height);
        self.memo.insert(key.to_string(), Some(done.clone()));
        Ok(done)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Converts the raw map into [`Config`]: types each value by key, warns about unknown keys.
fn typed(
    raw: &RawMap,
    origin: &Path,
    profile: &str,
    warnings: &mut Vec<String>,
) -> Result<Config, ConfigError> {
    let bad = |key: &str, message: String| ConfigError::BadValue {
        file: origin.to_path_buf(),
        profile: profile.to_string(),
        key: key.to_string(),
        message,
    };
    let mut obj = Map::new();
    for (key, (value, line)) in raw {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            let hint = match key.as_str() {
                "config_dir" => {
                    " (did you mean `configdir`? rpm-ostree-toolbox's sample config misspells it)"
                }
                "outputdir" => " (never read: only usable inside `%(outputdir)s`)",
                _ => "",
            };
            warnings.push(format!("unknown key `{key}` on line {line} ignored{hint}"));
            continue;
        }
        let json = match value {
            RawValue::Ini(s) => {
                if s.is_empty() {
                    continue; // empty = unset
                }
                if BOOL_KEYS.contains(&key.as_str()) {
                    Value::Bool(parse_bool(s).ok_or_else(|| {
                        bad(
                            key,
                            format!("`{s}` is not a boolean (use yes/no, true/false, on/off, 1/0)"),
                        )
                    })?)
                } else if INT_KEYS.contains(&key.as_str()) {
                    Value::from(
                        s.trim().parse::<u64>().map_err(|_| {
                            bad(key, format!("`{s}` is not a non-negative integer"))
                        })?,
                    )
                } else if LIST_KEYS.contains(&key.as_str()) {
                    Value::Array(
                        s.split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .map(|x| Value::String(x.to_string()))
                            .collect(),
                    )
                } else {
                    Value::String(s.clone())
                }
            }
            RawValue::Toml(v) => toml_to_json(key, v).map_err(|m| bad(key, m))?,
        };
        obj.insert(key.clone(), json);
    }
    for key in REQUIRED_KEYS {
        let present = obj
            .get(*key)
            .is_some_and(|v| !v.as_str().is_some_and(str::is_empty));
        if !present {
            return Err(ConfigError::MissingKey {
                file: origin.to_path_buf(),
                profile: profile.to_string(),
                key: key.to_string(),
            });
        }
    }
    serde_json::from_value(Value::Object(obj)).map_err(|e| bad("?", e.to_string()))
}

fn toml_to_json(key: &str, v: &toml::Value) -> Result<Value, String> {
    let k = key;
    Ok(match v {
        toml::Value::String(s) if BOOL_KEYS.contains(&k) => {
            Value::Bool(parse_bool(s).ok_or_else(|| format!("`{s}` is not a boolean"))?)
        }
        toml::Value::String(s) if INT_KEYS.contains(&k) => Value::from(
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a non-negative integer"))?,
        ),
        toml::Value::String(s) if LIST_KEYS.contains(&k) => Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| Value::String(x.to_string()))
                .collect(),
        ),
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Boolean(b) if BOOL_KEYS.contains(&k) => Value::Bool(*b),
        toml::Value::Integer(i) if INT_KEYS.contains(&k) => {
            Value::from(u64::try_from(*i).map_err(|_| format!("{i} is negative"))?)
        }
        toml::Value::Integer(i) if !BOOL_KEYS.contains(&k) && !LIST_KEYS.contains(&k) => {
            Value::String(i.to_string())
        }
        toml::Value::Array(a) if LIST_KEYS.contains(&k) => Value::Array(
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(|s| Value::String(s.to_string()))
                        .ok_or_else(|| format!("list items must be strings, got {x}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unexpected value {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(text: &str, profile: Option<&str>) -> Result<Loaded, ConfigError> {
        parse(text, Format::Ini, Path::new("test.ini"), profile)
    }

    const FA: &str = "\
[DEFAULT]
outputdir   =
ostree_repo = %(outputdir)s/repo
os_name     = fedora-atomic
os_pretty_name = Fedora Atomic
tree_name   = docker-host
tree_file   = %(os_name)s-%(tree_name)s.json
arch        = x86_64
release     = f23
ref         = %(os_name)s/%(release)s/%(arch)s/%(tree_name)s
yum_baseurl = http://dl.fedoraproject.org/pub/fedora/linux//development/rawhide/%(arch)s/os/
# lorax_additional_repos = http://127.0.0.1/fedora-atomic/local-overrides
lorax_include_packages = fedora-productimg-atomic
docker_os_name = fedora
is_final = False
[rawhide]
release = rawhide
Is_Final: yes
";

    #[test]
    fn fedora_atomic_config_with_interpolation_and_profiles() {
        let l = ini(FA, None).unwrap();
        let c = &l.config;
        assert_eq!(c.ostree_ref, "fedora-atomic/f23/x86_64/docker-host");
        assert_eq!(
            c.tree_file.as_deref(),
            Some(Path::new("fedora-atomic-docker-host.json"))
        );
        assert_eq!(c.lorax_include_packages, ["fedora-productimg-atomic"]);
        assert!(!c.is_final, "`False` must parse as false (toolbox trap)");
        assert!(c.selinux, "code default");
        assert_eq!(c.remote(), "fedora-atomic");
        // The `%(outputdir)s/repo` trap is reported, and the unknown key too.
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("ostree_repo") && w.contains("outputdir")),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("unknown key `outputdir`")),
            "{:?}",
            l.warnings
        );

        let r = ini(FA, Some("rawhide")).unwrap().config;
        assert_eq!(r.release, "rawhide");
        assert_eq!(
            r.ostree_ref, "fedora-atomic/rawhide/x86_64/docker-host",
            "interpolation sees the profile's value"
        );
        assert!(r.is_final, "case-insensitive key, `:` separator");
    }

    #[test]
    fn missing_required_key_names_it() {
        let err = ini("[DEFAULT]\nos_name = x\narch = x86_64\nrelease = 1\n", None).unwrap_err();
        assert!(
            matches!(&err, ConfigError::MissingKey { key, .. } if key == "ref"),
            "{err}"
        );
        assert!(err.to_string().contains("`ref`"));
    }

    #[test]
    fn bad_values_and_syntax_are_located() {
        let base = "[DEFAULT]\nos_name = x\narch = a\nrelease = 1\nref = r\n";
        let err = ini(&format!("{base}is_final = maybe\n"), None).unwrap_err();
        assert!(
            err.to_string().contains("is_final") && err.to_string().contains("maybe"),
            "{err}"
        );
        let err = ini(&format!("{base}lorax_rootfs_size = big\n"), None).unwrap_err();
        assert!(err.to_string().contains("lorax_rootfs_size"), "{err}");
        let err = ini(&format!("{base}workdir = %(nope)s/x\n"), None).unwrap_err();
        assert!(
            err.to_string().contains("test.ini:6") && err.to_string().contains("nope"),
            "{err}"
        );
        let err = ini(&format!("{base}garbage line\n"), None).unwrap_err();
        assert!(err.to_string().contains("test.ini:6"), "{err}");
        let err = ini(&format!("{base}arch = b\n"), None).unwrap_err();
        assert!(
            err.to_string().contains("test.ini:6") && err.to_string().contains("line 3"),
            "{err}"
        );
        let err = ini("os_name = x\n", None).unwrap_err();
        assert!(err.to_string().contains("test.ini:1"), "{err}");
        let err = ini(&format!("{base}a = %(b)s\nb = %(a)s\n"), None).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
        let err = ini(base, Some("nope")).unwrap_err();
        assert!(matches!(err, ConfigError::NoProfile { .. }));
    }

    const BASE: &str = "[DEFAULT]\nos_name = x\narch = a\nrelease = 1\nref = r\n";

    /// `[DEFAULT]` with BASE's keys, then `k0 = %(k1)s…` (`fan` references each) down to
    /// `k{levels} = leaf`.
    fn chain(levels: usize, fan: usize, leaf: &str) -> String {
        let mut t = BASE.to_string();
        for i in 0..levels {
            t.push_str(&format!(
                "k{i} = {}\n",
                format!("%(k{})s", i + 1).repeat(fan)
            ));
        }
        t.push_str(&format!("k{levels} = {leaf}\n"));
        t
    }

    #[test]
    fn interpolation_depth_is_configparsers() {
        assert_eq!(MAX_INTERPOLATION_DEPTH, 10);
        // 10 nested references resolve (configparser too), 11 do not
        let l = ini(&chain(10, 1, "leaf"), None).unwrap();
        assert!(l.warnings.iter().any(|w| w.contains("unknown key `k0`")));
        let err = ini(&chain(11, 1, "leaf"), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "test.ini:6: key `k0` in section `[DEFAULT]`: interpolation nests deeper than 10 levels (a cycle?)"
        );
        let err = ini(&format!("{BASE}[p]\nos_name = %(os_name)s\n"), Some("p"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "test.ini:7: key `os_name` in section `[p]`: is part of an interpolation cycle"
        );
    }

    #[test]
    fn exponential_interpolation_is_bounded() {
        let start = std::time::Instant::now();
        // 40 doubling levels: the depth limit stops it where the chain gets 11 levels deep
        let err = ini(&chain(40, 2, "xxxxxxxx"), None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "test.ini:35: key `k29` in section `[DEFAULT]`: interpolation nests deeper than 10 levels (a cycle?)"
        );
        // within the depth limit, 2^10 copies of a 1 KiB leaf are too long
        let err = ini(&chain(10, 2, &"y".repeat(1024)), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("in section `[DEFAULT]`: value longer than 64 KiB after interpolation"),
            "{err}"
        );
        // 1000 references per level, 10 levels, an empty leaf: 10^30 paths, each key expanded once
        let l = ini(&chain(10, 1000, ""), None).unwrap();
        let empty = l
            .warnings
            .iter()
            .filter(|w| w.contains("which is empty"))
            .count();
        assert_eq!(
            empty,
            10,
            "one warning per key and reference: {:?}",
            &l.warnings[..3]
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn expanded_profile_size_is_bounded() {
        let mut t = format!(
            "{BASE}leaf = {}\nv = {}\n",
            "x".repeat(1000),
            "%(leaf)s".repeat(60)
        );
        for i in 0..80 {
            t.push_str(&format!("w{i:02} = %(v)s\n"));
        }
        let err = ini(&t, None).unwrap_err().to_string();
        assert!(
            err.ends_with("in section `[DEFAULT]`: the values of the profile expand to more than 4 MiB in total"),
            "{err}"
        );
        // 60 of them fit
        let fits: String = t.lines().take(7 + 60).map(|l| format!("{l}\n")).collect();
        ini(&fits, None).unwrap();
    }

    #[test]
    fn config_files_are_regular_and_bounded() {
        let d = tempfile::tempdir().unwrap();
        let err = load(Path::new("/dev/zero"), None).unwrap_err().to_string();
        assert_eq!(
            err,
            "/dev/zero: cannot read: not a regular file (a character device)"
        );
        let big = d.path().join("big.ini");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let err = profiles(&big).unwrap_err().to_string();
        assert!(
            err.ends_with("big.ini: cannot read: larger than the limit of 1 MiB"),
            "{err}"
        );
        let ok = d.path().join("ok.ini");
        std::fs::write(&ok, BASE).unwrap();
        assert_eq!(load(&ok, None).unwrap().config.os_name, "x");
    }

    #[test]
    fn misspelled_configdir_is_warned() {
        let l = ini(
            "[DEFAULT]\nos_name = x\narch = a\nrelease = 1\nref = r\nconfig_dir = /x\n",
            None,
        )
        .unwrap();
        assert!(l.config.configdir.is_none());
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("did you mean `configdir`")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn percent_escape_and_continuation() {
        let l = ini("[DEFAULT]\nos_name = x\narch = a\nrelease = 1\nref = r\nkernel_append = a=100%%\n  b\n", None).unwrap();
        assert_eq!(l.config.kernel_append.as_deref(), Some("a=100%\nb"));
    }

    #[test]
    fn toml_form_is_the_same_struct() {
        let text = r#"
os_name = "fedora-atomic"
arch = "x86_64"
release = 29
ref = "fedora/29/x86_64/atomic-host"
is_final = true
lorax_include_packages = ["a", "b"]
lorax_rootfs_size = 3
[demo]
os_name = "demo"
is_final = "no"
"#;
        let d = parse(text, Format::Toml, Path::new("c.toml"), None)
            .unwrap()
            .config;
        assert_eq!(d.release, "29");
        assert!(d.is_final);
        assert_eq!(d.lorax_include_packages, ["a", "b"]);
        assert_eq!(d.lorax_rootfs_size, Some(3));
        let p = parse(text, Format::Toml, Path::new("c.toml"), Some("demo"))
            .unwrap()
            .config;
        assert_eq!(p.os_name, "demo");
        assert!(!p.is_final);
        let err = parse("os_name = [1", Format::Toml, Path::new("c.toml"), None).unwrap_err();
        assert!(err.to_string().starts_with("c.toml:1"), "{err}");
    }

    #[test]
    fn repo_location_does_not_guess_urls_from_substrings() {
        let mut c = Config::default();
        assert_eq!(
            c.repo_location(Some("/srv/http-mirror/repo")),
            RepoLocation::Local("/srv/http-mirror/repo".into())
        );
        assert_eq!(
            c.repo_location(Some("HTTPS://x/repo")),
            RepoLocation::Remote("HTTPS://x/repo".into())
        );
        c.ostree_repo = Some("/a/repo".into());
        assert_eq!(c.repo_location(None), RepoLocation::Local("/a/repo".into()));
        assert_eq!(c.repo_location(Some("b")), RepoLocation::Local("b".into()));
    }

    #[test]
    fn known_keys_match_the_struct() {
        let v = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut known = KNOWN_KEYS.to_vec();
        fields.sort();
        known.sort();
        assert_eq!(fields, known);
    }
}
