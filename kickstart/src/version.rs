//! Syntax versions: every version the generating pykickstart knows from `F21` and `RHEL7` on
//! (F21 … F46 and RHEL7 … RHEL11 for 3.78), and `DEVEL` (= the newest Fedora).

use crate::tables::{VersionSpec, tables};

/// A kickstart syntax version known to the compiled-in tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(usize);

impl Version {
    /// The newest syntax (`DEVEL`, F46 in pykickstart 3.78).
    pub fn devel() -> Version {
        Version::parse(&tables().devel).expect("DEVEL's version is in the tables")
    }

    /// The supported range for messages, e.g. `F21…F46, RHEL7…RHEL11`.
    pub fn range_description() -> String {
        let names: Vec<&str> = tables().versions.iter().map(|v| v.name.as_str()).collect();
        let fedora: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !n.starts_with("RHEL"))
            .collect();
        let rhel: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.starts_with("RHEL"))
            .collect();
        let span = |v: &[&str]| match (v.first(), v.last()) {
            (Some(a), Some(b)) => format!("{a}…{b}"),
            _ => String::new(),
        };
        format!("{}, {}", span(&fedora), span(&rhel))
    }

    /// Parse `F40`, `rhel9`, `DEVEL`, `fedora 40` style names (case-insensitive).
    pub fn parse(name: &str) -> Option<Version> {
        let n = name.trim().to_ascii_uppercase();
        let n = n.replace(' ', "");
        let n = if n == "DEVEL" {
            tables().devel.clone()
        } else if let Some(rest) = n.strip_prefix("FEDORA") {
            format!("F{rest}")
        } else if let Some(rest) = n.strip_prefix("REDHATENTERPRISELINUX") {
            format!("RHEL{rest}")
        } else {
            n
        };
        tables()
            .versions
            .iter()
            .position(|v| v.name == n)
            .map(Version)
    }

    /// Every version, Fedora first then RHEL, oldest first.
    pub fn all() -> Vec<Version> {
        (0..tables().versions.len()).map(Version).collect()
    }

    /// Name (`F40`, `RHEL9`).
    pub fn name(self) -> &'static str {
        &self.spec().name
    }

    /// pykickstart's integer constant (orders versions: RHELn sorts just after its Fedora).
    pub fn id(self) -> u32 {
        self.spec().id
    }

    /// Is this a RHEL version?
    pub fn is_rhel(self) -> bool {
        self.name().starts_with("RHEL")
    }

    /// The generated table of this version.
    pub fn spec(self) -> &'static VersionSpec {
        &tables().versions[self.0]
    }

    /// The version named in the first `#version=` line of `text` (as `versionFromFile`).
    pub fn from_text(text: &str) -> Option<Version> {
        for line in crate::text::splitlines(text) {
            if let Some(rest) = line.strip_prefix("#version=") {
                return Version::parse(crate::text::strip(rest));
            }
        }
        None
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
