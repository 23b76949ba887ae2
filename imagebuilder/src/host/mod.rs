//! What this host has of what the builder needs: `imagebuilder doctor`, and the check every build
//! command runs before any work ([`preflight`]).
//!
//! The needs are one table ([`requirements::REQUIREMENTS`]); a [`Target`] (an image type, boot
//! testing, the demo tree) selects its rows by [`Scope`]; [`check`] probes each row once and
//! reports what is there, what is missing and which package provides it. Rows that apply only in
//! some cases (`--fstype=xfs`, `--uefi`) are reported but do not fail the preflight: the step
//! that needs them checks them when the case arises, with the same package names.

pub mod kvm;
pub mod requirements;

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::build::publish::OutputFormat;
use crate::util::cmd::CommandExt;
pub use requirements::{Feature, Need, REQUIREMENTS, Requirement, Scope, When};

/// The version of [`Report`]'s JSON form; raised when a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// Something the builder can be asked to do, with its own set of needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `image -i TYPE` (and the commands building the same outputs).
    Image(OutputFormat),
    /// Booting images in QEMU.
    BootTest,
    /// Building the demo OSTree tree.
    DemoTree,
}

impl Target {
    /// Every image type [`OutputFormat`] has, in its documented order.
    pub fn all_images() -> Vec<Target> {
        OutputFormat::NAMES
            .split(", ")
            .filter_map(OutputFormat::parse)
            .map(Target::Image)
            .collect()
    }

    /// One target per image type.
    pub fn images(formats: &[OutputFormat]) -> Vec<Target> {
        formats.iter().map(|&f| Target::Image(f)).collect()
    }

    /// The name doctor and the errors use (an `-i` value, `boot-test`, `demo-tree`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Image(f) => OutputFormat::NAMES
                .split(", ")
                .find(|n| OutputFormat::parse(n) == Some(f))
                .unwrap_or("image"),
            Target::BootTest => "boot-test",
            Target::DemoTree => "demo-tree",
        }
    }

    /// The parts of the table this target needs.
    pub fn scopes(self) -> &'static [Scope] {
        use Scope::*;
        match self {
            Target::Image(f) => match f {
                OutputFormat::Raw
                | OutputFormat::Qcow2
                | OutputFormat::VagrantLibvirt
                | OutputFormat::VagrantVirtualbox => &[Build, Disk],
                OutputFormat::RawXz => &[Build, Disk, RawXz],
                OutputFormat::PxeLive => &[Build, Live, PxeLive],
                OutputFormat::LiveIso => &[Build, Live, LiveIso],
                // The disk image it carries, the live system that installs it, the ISO.
                OutputFormat::InstallerIso => &[Build, Disk, Live, LiveIso],
            },
            Target::BootTest => &[BootTest],
            Target::DemoTree => &[DemoTree],
        }
    }

    fn needs(self, r: &Requirement) -> bool {
        r.scopes.iter().any(|s| self.scopes().contains(s))
    }
}

/// The outcome of one row.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The program's name, the file's path or the feature's description.
    pub name: String,
    /// `program`, `file` or `feature`.
    pub kind: &'static str,
    /// For a feature: its identifier (`root`, `loop-devices`, `user-namespaces`, `kvm`).
    pub feature: Option<Feature>,
    pub ok: bool,
    /// Where the program or file was found.
    pub path: Option<PathBuf>,
    /// What the probe of a feature found.
    pub detail: Option<String>,
    pub debian_package: Option<&'static str>,
    pub fedora_package: Option<&'static str>,
    /// What the builder does with it.
    pub purpose: &'static str,
    /// Whether a missing one stops a build of the targets it is needed for.
    pub required: bool,
    /// When it is needed, if not always (`for --fstype=xfs`), or what it brings when optional.
    pub condition: Option<&'static str>,
    /// The requested targets that need it.
    pub needed_for: Vec<&'static str>,
}

impl Check {
    /// One line for people: what is missing and what provides it.
    pub fn missing_line(&self) -> String {
        let what = match self.kind {
            "program" => format!("`{}` not found", self.name),
            "file" => format!("{} not found", self.name),
            _ => format!(
                "{}: no ({})",
                self.name,
                self.detail.as_deref().unwrap_or("")
            ),
        };
        let pkg = match (self.debian_package, self.fedora_package) {
            (Some(d), Some(f)) => format!(": install the Debian package `{d}` (Fedora: `{f}`)"),
            (Some(d), None) => format!(": install the Debian package `{d}`"),
            _ => String::new(),
        };
        format!("{what}{pkg}; needed for {}", self.purpose)
    }
}

/// How one target stands.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub name: &'static str,
    /// Every required row of the target is met.
    pub ready: bool,
    /// The required rows that are not (their `name`s).
    pub missing: Vec<String>,
    /// The rows needed only in some cases that are not met.
    pub missing_when: Vec<String>,
}

/// What `imagebuilder doctor` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// Every requested target is ready.
    pub ready: bool,
    pub targets: Vec<TargetStatus>,
    pub checks: Vec<Check>,
    /// The QEMU accelerator boot tests would use, when boot testing was asked about.
    pub accel: Option<crate::boot_test::Accel>,
    /// The Debian packages that would provide every missing row (required or not), sorted.
    pub missing_debian_packages: Vec<&'static str>,
}

/// Probes the rows `targets` need (each row once).
pub fn check(targets: &[Target]) -> Report {
    check_rows(targets, |_| true)
}

/// Like [`check`], only the rows a build cannot start without.
fn check_required(targets: &[Target]) -> Report {
    check_rows(targets, |r| r.when == When::Always)
}

fn check_rows(targets: &[Target], keep: impl Fn(&Requirement) -> bool) -> Report {
    let mut checks = Vec::new();
    for r in REQUIREMENTS.iter().filter(|r| keep(r)) {
        let needed_for: Vec<&'static str> = targets
            .iter()
            .filter(|t| t.needs(r))
            .map(|t| t.name())
            .collect();
        if needed_for.is_empty() {
            continue;
        }
        checks.push(probe(r, needed_for));
    }
    let targets_status: Vec<TargetStatus> = targets
        .iter()
        .map(|t| {
            let mine = checks
                .iter()
                .filter(|c| !c.ok && c.needed_for.contains(&t.name()));
            let (req, opt): (Vec<&Check>, Vec<&Check>) = mine.partition(|c| c.required);
            TargetStatus {
                name: t.name(),
                ready: req.is_empty(),
                missing: req.iter().map(|c| c.name.clone()).collect(),
                missing_when: opt
                    .iter()
                    .filter(|c| c.feature != Some(Feature::Kvm))
                    .map(|c| c.name.clone())
                    .collect(),
            }
        })
        .collect();
    let missing_debian_packages: BTreeSet<&'static str> = checks
        .iter()
        .filter(|c| !c.ok)
        .filter_map(|c| c.debian_package)
        .collect();
    let accel = targets
        .contains(&Target::BootTest)
        .then(crate::boot_test::auto_accel);
    Report {
        schema_version: SCHEMA_VERSION,
        ready: targets_status.iter().all(|t| t.ready),
        targets: targets_status,
        checks,
        accel,
        missing_debian_packages: missing_debian_packages.into_iter().collect(),
    }
}

fn probe(r: &Requirement, needed_for: Vec<&'static str>) -> Check {
    let (name, kind, feature, ok, path, detail) = match r.need {
        Need::Program(p) => {
            let found = crate::util::cmd::find_in_path(p);
            (p.to_string(), "program", None, found.is_some(), found, None)
        }
        Need::File(f) => {
            let path = PathBuf::from(f);
            let ok = path.is_file();
            (f.to_string(), "file", None, ok, ok.then_some(path), None)
        }
        Need::Feature(feat) => {
            let (ok, detail) = probe_feature(feat);
            (
                feat.name().to_string(),
                "feature",
                Some(feat),
                ok,
                None,
                Some(detail),
            )
        }
    };
    let (required, condition) = match r.when {
        When::Always => (true, None),
        When::Only(c) | When::Better(c) => (false, Some(c)),
    };
    Check {
        name,
        kind,
        feature,
        ok,
        path,
        detail,
        debian_package: r.debian,
        fedora_package: r.fedora,
        purpose: r.purpose,
        required,
        condition,
        needed_for,
    }
}

/// Probes one feature: whether it is there, and what was found.
fn probe_feature(f: Feature) -> (bool, String) {
    match f {
        Feature::Root => {
            let uid = rustix::process::geteuid();
            if uid.is_root() {
                (true, "uid 0".into())
            } else {
                (false, format!("uid {}; run as root", uid.as_raw()))
            }
        }
        Feature::LoopDevices => {
            let dev = std::path::Path::new("/dev/loop-control");
            match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
                Ok(_) => (true, "/dev/loop-control opens".into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    false,
                    "/dev/loop-control does not exist (no loop module, or a container without it)"
                        .into(),
                ),
                Err(e) => (false, format!("/dev/loop-control: {e}")),
            }
        }
        Feature::UserNamespaces => {
            if crate::util::cmd::find_in_path("unshare").is_none() {
                return (
                    false,
                    "cannot try: `unshare` (util-linux) is missing".into(),
                );
            }
            // By path: the probe is about namespaces, not about what PATH holds.
            let truth =
                crate::util::cmd::find_in_path("true").unwrap_or_else(|| "/bin/true".into());
            match Command::new("unshare")
                .args(["--user", "--"])
                .arg(truth)
                .run_within(Duration::from_secs(10))
            {
                Ok(r) if r.status.is_some_and(|s| s.success()) => {
                    (true, "`unshare --user true` works".into())
                }
                Ok(r) => (
                    false,
                    format!(
                        "`unshare --user true` fails{} (user.max_user_namespaces = {}{})",
                        if r.stderr.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", r.stderr.replace('\n', " "))
                        },
                        sysctl("user/max_user_namespaces"),
                        match sysctl("kernel/unprivileged_userns_clone").as_str() {
                            "?" => String::new(),
                            v => format!(", kernel.unprivileged_userns_clone = {v}"),
                        }
                    ),
                ),
                Err(e) => (false, format!("{e:#}")),
            }
        }
        Feature::Kvm => {
            let s = kvm::status();
            (s.usable, s.detail.clone())
        }
    }
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The host lacks what a command needs; [`fmt::Display`] names each missing row and its package.
#[derive(Debug, thiserror::Error)]
pub struct Missing {
    /// The targets the command was to build, by name.
    pub targets: Vec<&'static str>,
    /// The rows that are missing.
    pub missing: Vec<Check>,
    /// The Debian packages providing them.
    pub packages: Vec<&'static str>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "this host lacks what {} needs:", self.targets.join(", "))?;
        for c in &self.missing {
            writeln!(f, "  - {}", c.missing_line())?;
        }
        if !self.packages.is_empty() {
            writeln!(f, "  apt-get install {}", self.packages.join(" "))?;
        }
        write!(
            f,
            "(`imagebuilder doctor` lists everything the builder uses)"
        )
    }
}

/// Fails, before any work, when a row `targets` always need is missing, naming every one of them
/// and its package.
pub fn preflight(targets: &[Target]) -> Result<(), Missing> {
    let report = check_required(targets);
    if report.ready {
        return Ok(());
    }
    Err(Missing {
        targets: report.targets.iter().map(|t| t.name).collect(),
        missing: report.checks.into_iter().filter(|c| !c.ok).collect(),
        packages: report.missing_debian_packages,
    })
}

/// `raw, qcow2, boot-test`, or `every image type, boot-test` when all requested image types are in
/// `needed_for` (and there are several).
fn needed_for_text(needed_for: &[&str], images: &[&str]) -> String {
    if images.len() > 1 && images.iter().all(|i| needed_for.contains(i)) {
        std::iter::once("every image type")
            .chain(needed_for.iter().copied().filter(|n| !images.contains(n)))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        needed_for.join(", ")
    }
}

impl Report {
    /// The report for people: one line per row, one per target, and how to install the rest.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let _ = writeln!(
            s,
            "{:<8} {:<w$}  {:<20} {:<24} NEEDED FOR",
            "STATUS", "CHECK", "DEBIAN", "FEDORA"
        );
        // The requested image types, which a row needed by all of them names in one word.
        let images: Vec<&str> = Target::all_images()
            .into_iter()
            .map(Target::name)
            .filter(|n| self.targets.iter().any(|t| t.name == *n))
            .collect();
        for c in &self.checks {
            let status = match (c.ok, c.required) {
                (true, _) => "ok",
                (false, true) => "MISSING",
                (false, false) if c.feature == Some(Feature::Kvm) => "no",
                (false, false) => "missing",
            };
            let mut needed = needed_for_text(&c.needed_for, &images);
            if let Some(cond) = c.condition {
                needed.push_str(&format!(" ({cond})"));
            }
            let _ = writeln!(
                s,
                "{status:<8} {:<w$}  {:<20} {:<24} {needed}",
                c.name,
                c.debian_package.unwrap_or("-"),
                c.fedora_package.unwrap_or("-"),
            );
            if let (Some(d), false) = (&c.detail, c.ok) {
                let _ = writeln!(s, "{:<8} {:<w$}  {d}", "", "");
            }
        }
        s.push('\n');
        for t in &self.targets {
            let mut line = if t.ready {
                "ready".to_string()
            } else {
                format!("MISSING {}", t.missing.join(", "))
            };
            if !t.missing_when.is_empty() {
                line.push_str(&format!(
                    "; in some cases also {}",
                    t.missing_when.join(", ")
                ));
            }
            let _ = writeln!(s, "{:<20} {line}", t.name);
        }
        if let Some(a) = self.accel {
            let detail = &kvm::status().detail;
            let _ = writeln!(s, "{:<20} QEMU uses {a} ({detail})", "boot-test accel");
        }
        if !self.missing_debian_packages.is_empty() {
            let _ = writeln!(
                s,
                "\nto install what is missing: apt-get install {}",
                self.missing_debian_packages.join(" ")
            );
        }
        s
    }
}
