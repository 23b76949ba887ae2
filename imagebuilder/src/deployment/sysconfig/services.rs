//! `services --enabled/--disabled`: the symlinks `systemctl enable/disable` would write, made directly
//! from the unit's `[Install]` section (`WantedBy=`, `RequiredBy=`, `Alias=`, `Also=`,
//! `DefaultInstance=`), so no systemd of the host or the target runs.
//!
//! Disabling removes every enablement symlink under `/etc/systemd/system` that points at the unit, as
//! `systemctl disable` does. A unit that the OS tree itself pulls in from `/usr` (a vendor `.wants/`
//! link) cannot be disabled that way: that is reported as a warning, not silently turned into a mask.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::{Services, Target, Warning};

/// Directories searched for unit files, in systemd's order of precedence.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The `[Install]` section of a unit file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Install {
    pub wanted_by: Vec<String>,
    pub required_by: Vec<String>,
    pub alias: Vec<String>,
    pub also: Vec<String>,
    pub default_instance: Option<String>,
}

impl Install {
    fn is_empty(&self) -> bool {
        self.wanted_by.is_empty()
            && self.required_by.is_empty()
            && self.alias.is_empty()
            && self.also.is_empty()
    }
}

/// Parses the `[Install]` section of unit file text (line continuations and comments handled; an
/// empty assignment resets the list, as systemd does).
pub fn parse_install(text: &str) -> Install {
    let mut inst = Install::default();
    let mut in_install = false;
    let mut logical = String::new();
    for raw in text.lines() {
        if let Some(stripped) = raw.strip_suffix('\\') {
            logical.push_str(stripped);
            logical.push(' ');
            continue;
        }
        logical.push_str(raw);
        let line = std::mem::take(&mut logical);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let list = match k.trim() {
            "WantedBy" => &mut inst.wanted_by,
            "RequiredBy" => &mut inst.required_by,
            "Alias" => &mut inst.alias,
            "Also" => &mut inst.also,
            "DefaultInstance" => {
                inst.default_instance = Some(v.trim().to_string()).filter(|s| !s.is_empty());
                continue;
            }
            _ => continue,
        };
        let v = v.trim();
        if v.is_empty() {
            list.clear();
        } else {
            list.extend(v.split_whitespace().map(str::to_string));
        }
    }
    inst
}

/// A unit name with `.service` added when it has no unit suffix (as systemctl does).
pub fn normalize_unit(name: &str) -> String {
    const SUFFIXES: &[&str] = &[
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".path",
        ".mount",
        ".automount",
        ".swap",
        ".slice",
        ".scope",
        ".device",
    ];
    if SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// `foo@bar.service` → `foo@.service`.
fn template_of(unit: &str) -> Option<String> {
    let (head, rest) = unit.split_once('@')?;
    let dot = rest.rfind('.')?;
    (dot > 0).then(|| format!("{head}@{}", &rest[dot..]))
}

/// Finds the unit file; returns its guest path (skipping masks in /etc, which are not the unit).
fn find_unit(t: &Target, unit: &str) -> Option<String> {
    let names: Vec<String> = std::iter::once(unit.to_string())
        .chain(template_of(unit))
        .collect();
    for name in &names {
        for dir in UNIT_DIRS {
            let guest = format!("{dir}/{name}");
            let Ok(host) = t.host_path(&guest) else {
                continue;
            };
            if host.is_file() {
                return Some(guest);
            }
        }
    }
    None
}

/// The unit whose `[Install]` section declares `Alias=alias`, searched in the vendor unit directories.
fn unit_with_alias(t: &Target, alias: &str) -> Result<Option<String>> {
    for dir in &UNIT_DIRS[1..] {
        let host = t.host_path(dir)?;
        let Ok(rd) = fs::read_dir(&host) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let p = host.join(&name);
            if !p.is_file() {
                continue;
            }
            let text = fs::read_to_string(&p).unwrap_or_default();
            if text.contains(alias) && parse_install(&text).alias.iter().any(|a| a == alias) {
                return Ok(Some(name));
            }
        }
    }
    Ok(None)
}

/// The `/etc/systemd/system` entries that are symlinks named `unit` (aliases/wants) or pointing at a
/// file named `unit`; returns guest paths.
fn etc_links_to(t: &Target, unit: &str, alias_names: &[String]) -> Result<Vec<String>> {
    let base = "/etc/systemd/system";
    let host = t.host_path(base)?;
    let mut out = Vec::new();
    if !host.is_dir() {
        return Ok(out);
    }
    let mut visit = |dir_guest: String, dir_host: &Path| -> Result<()> {
        for e in
            fs::read_dir(dir_host).with_context(|| format!("reading {}", dir_host.display()))?
        {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(e.path())?;
            if !meta.file_type().is_symlink() {
                continue;
            }
            let dest = fs::read_link(e.path())?;
            let dest_name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
            let is_mask = dest == Path::new("/dev/null");
            if !is_mask
                && (name == unit
                    || dest_name.as_deref() == Some(unit)
                    || alias_names.contains(&name))
            {
                out.push(format!("{dir_guest}/{name}"));
            }
        }
        Ok(())
    };
    visit(base.to_string(), &host)?;
    for e in fs::read_dir(&host)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".wants") || name.ends_with(".requires")) && e.file_type()?.is_dir() {
            visit(format!("{base}/{name}"), &e.path())?;
        }
    }
    Ok(out)
}

/// True when the tree pulls the unit in from a vendor `.wants/`/`.requires/` directory under /usr.
fn vendor_enabled(t: &Target, unit: &str) -> Result<Option<String>> {
    for dir in &UNIT_DIRS[1..] {
        let host = t.host_path(dir)?;
        let Ok(rd) = fs::read_dir(&host) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if (name.ends_with(".wants") || name.ends_with(".requires"))
                && e.path().join(unit).exists()
            {
                return Ok(Some(format!("{dir}/{name}/{unit}")));
            }
        }
    }
    Ok(None)
}

/// Enables one unit (and its `Also=` units). Returns false (and a warning) when nothing could be done.
pub fn enable(t: &Target, unit_arg: &str, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut todo = vec![normalize_unit(unit_arg)];
    let mut done: Vec<String> = Vec::new();
    while let Some(unit) = todo.pop() {
        if done.contains(&unit) {
            continue;
        }
        done.push(unit.clone());
        let item = format!("services --enabled={unit_arg}");
        // An /etc mask would win over the enablement: enabling a masked unit unmasks it.
        let etc = t.host_path(&format!("/etc/systemd/system/{unit}"))?;
        if fs::read_link(&etc).is_ok_and(|d| d == Path::new("/dev/null")) {
            fs::remove_file(&etc).with_context(|| format!("unmasking {}", etc.display()))?;
        }
        let Some(path) = find_unit(t, &unit) else {
            // `sshd` on Debian is `ssh.service` with `Alias=sshd.service`: enable the real unit.
            match unit_with_alias(t, &unit)? {
                Some(real) => todo.push(real),
                None => warnings.push(Warning::new(
                    item,
                    format!("unit `{unit}` not found in the tree"),
                )),
            }
            continue;
        };
        let text = t.read_optional(&path)?.unwrap_or_default();
        let inst = parse_install(&text);
        if inst.is_empty() {
            warnings.push(Warning::new(
                item,
                format!("unit `{unit}` has no [Install] section (static unit): nothing to enable"),
            ));
            continue;
        }
        let file_name = path.rsplit('/').next().unwrap_or(&unit).to_string();
        // For a template, the instance linked is the one asked for, else DefaultInstance=.
        let link_name = if file_name.contains("@.") && unit.contains("@.") {
            match &inst.default_instance {
                Some(i) => unit.replacen("@.", &format!("@{i}."), 1),
                None => {
                    warnings.push(Warning::new(
                        item,
                        format!("template `{unit}` needs an instance name (no DefaultInstance=)"),
                    ));
                    continue;
                }
            }
        } else {
            unit.clone()
        };
        for (targets, suffix) in [(&inst.wanted_by, "wants"), (&inst.required_by, "requires")] {
            for target in targets {
                t.symlink(
                    &format!("/etc/systemd/system/{target}.{suffix}/{link_name}"),
                    &path,
                )?;
            }
        }
        for alias in &inst.alias {
            t.symlink(&format!("/etc/systemd/system/{alias}"), &path)?;
        }
        todo.extend(inst.also.iter().map(|u| normalize_unit(u)));
    }
    Ok(())
}

/// Disables one unit: removes its enablement symlinks from /etc/systemd/system.
pub fn disable(t: &Target, unit_arg: &str, warnings: &mut Vec<Warning>) -> Result<()> {
    let unit = normalize_unit(unit_arg);
    let item = format!("services --disabled={unit_arg}");
    let aliases = match find_unit(t, &unit) {
        Some(p) => parse_install(&t.read_optional(&p)?.unwrap_or_default()).alias,
        None => {
            warnings.push(Warning::new(
                item,
                format!("unit `{unit}` not found in the tree"),
            ));
            return Ok(());
        }
    };
    for link in etc_links_to(t, &unit, &aliases)? {
        // The link itself, not what it points at: resolve the directory only.
        let (dir, name) = link.rsplit_once('/').unwrap_or(("/", &link));
        let host = t.host_path(dir)?.join(name);
        fs::remove_file(&host).with_context(|| format!("removing {}", host.display()))?;
    }
    if let Some(vendor) = vendor_enabled(t, &unit)? {
        warnings.push(Warning::new(
            item,
            format!("`{unit}` is pulled in by the OS tree itself ({vendor}); `systemctl disable` cannot undo that (mask it in %post if that is meant)"),
        ));
    }
    Ok(())
}

/// Applies `services`: enables first, then disables (a unit in both ends up disabled, as Anaconda).
pub fn apply_services(t: &Target, s: &Services, warnings: &mut Vec<Warning>) -> Result<()> {
    for u in &s.enabled {
        enable(t, u, warnings).with_context(|| format!("enabling {u}"))?;
    }
    for u in &s.disabled {
        disable(t, u, warnings).with_context(|| format!("disabling {u}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section_parsing() {
        let text = "[Unit]\nWantedBy=ignored.target\n[Install]\n# c\nWantedBy=multi-user.target \\\n  graphical.target\nAlias=sshd.service\nRequiredBy=a.target\nRequiredBy=\nAlso=sshd.socket\nDefaultInstance=tty1\n";
        let i = parse_install(text);
        assert_eq!(i.wanted_by, ["multi-user.target", "graphical.target"]);
        assert_eq!(i.alias, ["sshd.service"]);
        assert!(i.required_by.is_empty(), "empty assignment resets");
        assert_eq!(i.also, ["sshd.socket"]);
        assert_eq!(i.default_instance.as_deref(), Some("tty1"));
        assert!(parse_install("[Unit]\nDescription=x\n").is_empty());
    }

    #[test]
    fn names() {
        assert_eq!(normalize_unit("sshd"), "sshd.service");
        assert_eq!(normalize_unit("fstrim.timer"), "fstrim.timer");
        assert_eq!(
            template_of("getty@ttyS0.service").as_deref(),
            Some("getty@.service")
        );
        assert_eq!(template_of("sshd.service"), None);
    }
}
