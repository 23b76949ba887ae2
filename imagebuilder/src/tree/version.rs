//! Version policies of treecompose (rpm-ostree-toolbox's `-V`): versions are
//! `<releasever>.<minor>.<refresh>[.<cve>]` and the next one is computed from the previous commit's
//! `version` metadata.

use std::fmt;
use std::str::FromStr;

/// How to compute the next version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// `skip-or-X`: no version when there is no (valid) previous one, else behave as `X`.
    SkipOr(Bump),
    /// `cve`, `refresh`, `minor`: bump that field of the previous version (which must exist).
    Bump(Bump),
    /// A literal `A.B.C[.D]`, which must be newer than the previous version.
    Exact(Version),
}

/// Which field to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// Field 4 (added as `.1` when absent).
    Cve,
    /// Field 3; drops field 4.
    Refresh,
    /// Field 2; zeroes field 3, drops field 4.
    Minor,
}

/// A parsed `A.B.C[.D]` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

/// Errors of the version policy; the CLI reports them as they are.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error(
        "invalid version policy {0:?}: expected skip-or-refresh, skip-or-minor, skip-or-cve, cve, \
         refresh, minor or a version A.B.C[.D] of 3 or 4 numbers"
    )]
    BadPolicy(String),
    #[error(
        "no previous version to compute the new version from (policy {0}); give A.B.C[.D] or skip-or-{0}"
    )]
    NoPrevious(String),
    #[error("version {new} is older than the previous version {old}: its {field} goes backwards")]
    Older {
        new: String,
        old: String,
        field: &'static str,
    },
    #[error("version {0} is the same as the previous version")]
    Same(String),
}

const FIELDS: [&str; 4] = ["<releasever>", "<minor>", "<refresh>", "<cve>"];

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<u64>, _> = s
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    Err(())
                } else {
                    p.parse::<u64>().map_err(|_| ())
                }
            })
            .collect();
        match parts {
            Ok(v) if (3..=4).contains(&v.len()) => Ok(Version(v)),
            _ => Err(VersionError::BadPolicy(s.to_owned())),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&s.join("."))
    }
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bump::Cve => "cve",
            Bump::Refresh => "refresh",
            Bump::Minor => "minor",
        })
    }
}

impl FromStr for Bump {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cve" => Ok(Bump::Cve),
            "refresh" => Ok(Bump::Refresh),
            "minor" => Ok(Bump::Minor),
            _ => Err(VersionError::BadPolicy(s.to_owned())),
        }
    }
}

impl FromStr for Policy {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError::BadPolicy(s.to_owned());
        if let Some(rest) = s.strip_prefix("skip-or-") {
            return rest.parse().map(Policy::SkipOr).map_err(|_| bad());
        }
        if let Ok(b) = s.parse() {
            return Ok(Policy::Bump(b));
        }
        s.parse().map(Policy::Exact).map_err(|_| bad())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::SkipOr(Bump::Refresh)
    }
}

impl Version {
    fn bump(&self, b: Bump) -> Version {
        let mut v = self.0.clone();
        match b {
            Bump::Cve => {
                if v.len() == 4 {
                    v[3] += 1;
                } else {
                    v.push(1);
                }
            }
            Bump::Refresh => {
                v.truncate(3);
                v[2] += 1;
            }
            Bump::Minor => {
                v.truncate(3);
                v[1] += 1;
                v[2] = 0;
            }
        }
        Version(v)
    }
}

/// Parses a previous commit's `version`; one that is not 3 or 4 numbers is ignored with a warning.
pub fn parse_previous(previous: Option<&str>) -> Option<Version> {
    let p = previous?;
    match p.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!("previous version {p:?} is not A.B.C[.D]; ignoring it");
            None
        }
    }
}

/// The version of the next compose, or `None` for no version.
pub fn next_version(
    policy: &Policy,
    previous: Option<&str>,
) -> Result<Option<String>, VersionError> {
    let prev = parse_previous(previous);
    match (policy, prev) {
        (Policy::SkipOr(_), None) => Ok(None),
        (Policy::SkipOr(b) | Policy::Bump(b), Some(p)) => Ok(Some(p.bump(*b).to_string())),
        (Policy::Bump(b), None) => Err(VersionError::NoPrevious(b.to_string())),
        (Policy::Exact(v), None) => Ok(Some(v.to_string())),
        (Policy::Exact(v), Some(p)) => {
            for (i, field) in FIELDS.iter().enumerate() {
                let new = v.0.get(i).copied().unwrap_or(0);
                let old = p.0.get(i).copied().unwrap_or(0);
                if new > old {
                    return Ok(Some(v.to_string()));
                }
                if new < old {
                    return Err(VersionError::Older {
                        new: v.to_string(),
                        old: p.to_string(),
                        field,
                    });
                }
            }
            Err(VersionError::Same(v.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(policy: &str, prev: Option<&str>) -> Result<Option<String>, VersionError> {
        next_version(&policy.parse()?, prev)
    }

    #[test]
    fn skip_or_policies() {
        assert_eq!(next("skip-or-refresh", None), Ok(None));
        assert_eq!(
            next("skip-or-refresh", Some("7.0.2")),
            Ok(Some("7.0.3".into()))
        );
        assert_eq!(
            next("skip-or-minor", Some("7.0.2.4")),
            Ok(Some("7.1.0".into()))
        );
        assert_eq!(
            next("skip-or-cve", Some("7.0.2")),
            Ok(Some("7.0.2.1".into()))
        );
        // An invalid previous version counts as none.
        assert_eq!(next("skip-or-refresh", Some("banana")), Ok(None));
        assert_eq!(Policy::default(), "skip-or-refresh".parse().unwrap());
    }

    #[test]
    fn bump_policies() {
        assert_eq!(next("cve", Some("7.0.2")), Ok(Some("7.0.2.1".into())));
        assert_eq!(next("cve", Some("7.0.2.1")), Ok(Some("7.0.2.2".into())));
        assert_eq!(next("refresh", Some("7.0.2.1")), Ok(Some("7.0.3".into())));
        assert_eq!(next("minor", Some("7.3.2.1")), Ok(Some("7.4.0".into())));
        for p in ["cve", "refresh", "minor"] {
            assert_eq!(next(p, None), Err(VersionError::NoPrevious(p.into())));
            assert_eq!(
                next(p, Some("1.2")),
                Err(VersionError::NoPrevious(p.into()))
            );
        }
    }

    #[test]
    fn exact_versions() {
        assert_eq!(next("7.1.0", None), Ok(Some("7.1.0".into())));
        assert_eq!(next("7.1.0", Some("7.0.9.3")), Ok(Some("7.1.0".into())));
        assert_eq!(next("7.0.9.4", Some("7.0.9.3")), Ok(Some("7.0.9.4".into())));
        assert_eq!(next("7.0.9.1", Some("7.0.9")), Ok(Some("7.0.9.1".into())));
        let err = next("6.9.9", Some("7.0.0")).unwrap_err();
        assert!(err.to_string().contains("<releasever>"), "{err}");
        let err = next("7.0.1", Some("7.1.0")).unwrap_err();
        assert!(err.to_string().contains("<minor>"), "{err}");
        let err = next("7.1.0", Some("7.1.1")).unwrap_err();
        assert!(err.to_string().contains("<refresh>"), "{err}");
        let err = next("7.1.1", Some("7.1.1.2")).unwrap_err();
        assert!(err.to_string().contains("<cve>"), "{err}");
        assert_eq!(
            next("7.1.1", Some("7.1.1")),
            Err(VersionError::Same("7.1.1".into()))
        );
    }

    #[test]
    fn bad_policies() {
        for bad in [
            "",
            "1.2",
            "1.2.3.4.5",
            "1.x.3",
            "skip-or-",
            "skip-or-1.2.3",
            "major",
            "1..2",
            "-1.2.3",
            "+1.2.3",
        ] {
            assert_eq!(
                bad.parse::<Policy>(),
                Err(VersionError::BadPolicy(bad.into())),
                "{bad}"
            );
        }
    }
}
