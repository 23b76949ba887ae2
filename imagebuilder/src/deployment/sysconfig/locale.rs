//! `timezone`, `lang`, `keyboard`, `network --hostname` and `selinux`: small files in /etc.

use anyhow::Result;

use super::{Keyboard, Lang, SelinuxMode, Target, Timezone, Warning};

/// `timezone ZONE [--utc]`: `/etc/localtime` → `../usr/share/zoneinfo/ZONE` (the zone must exist in
/// the tree), `/etc/timezone` too where the tree has one (Debian), `/etc/adjtime` with UTC or LOCAL.
pub fn apply_timezone(t: &Target, tz: &Timezone, warnings: &mut Vec<Warning>) -> Result<()> {
    if let Some(zone) = &tz.zone {
        let valid = !zone.is_empty()
            && !zone
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            && t.host_path(&format!("/usr/share/zoneinfo/{zone}"))?
                .is_file();
        if valid {
            t.symlink("/etc/localtime", &format!("../usr/share/zoneinfo/{zone}"))?;
            if t.exists("/etc/timezone") {
                t.write(
                    "/etc/timezone",
                    format!("{zone}\n").as_bytes(),
                    0o644,
                    (0, 0),
                )?;
            }
        } else {
            warnings.push(Warning::new(
                format!("timezone {zone}"),
                format!("no zone file /usr/share/zoneinfo/{zone} in the tree"),
            ));
        }
    }
    t.write("/etc/adjtime", adjtime(tz.utc).as_bytes(), 0o644, (0, 0))?;
    Ok(())
}

/// The text of `/etc/adjtime` for a hardware clock in UTC or local time.
pub fn adjtime(utc: bool) -> String {
    format!("0.0 0 0.0\n0\n{}\n", if utc { "UTC" } else { "LOCAL" })
}

/// `lang LANG`: `/etc/locale.conf`. `--addsupport` needs packages: a warning.
pub fn apply_lang(t: &Target, lang: &Lang, warnings: &mut Vec<Warning>) -> Result<()> {
    t.write(
        "/etc/locale.conf",
        format!("LANG=\"{}\"\n", lang.lang).as_bytes(),
        0o644,
        (0, 0),
    )?;
    if !lang.addsupport.is_empty() {
        warnings.push(Warning::new(
            format!("lang --addsupport={}", lang.addsupport.join(",")),
            "installing language support packages is not possible in an OSTree image build",
        ));
    }
    Ok(())
}

/// The text of `/etc/vconsole.conf` and, with X layouts, of `00-keyboard.conf` (as localed writes).
pub fn keyboard_files(kb: &Keyboard) -> (Option<String>, Option<String>) {
    let keymap = kb.vckeymap.clone().or_else(|| {
        kb.xlayouts
            .first()
            .map(|l| l.split_whitespace().next().unwrap_or(l).to_string())
    });
    let vconsole = keymap.map(|k| format!("KEYMAP=\"{k}\"\n"));
    let x11 = (!kb.xlayouts.is_empty()).then(|| {
        let (layouts, variants): (Vec<String>, Vec<String>) = kb
            .xlayouts
            .iter()
            .map(|l| match l.split_once('(') {
                Some((lay, var)) => (lay.trim().to_string(), var.trim_end_matches(')').trim().to_string()),
                None => (l.trim().to_string(), String::new()),
            })
            .unzip();
        let mut s = String::from(
            "# Written by imagebuilder from the kickstart's keyboard command.\nSection \"InputClass\"\n        Identifier \"system-keyboard\"\n        MatchIsKeyboard \"on\"\n",
        );
        s.push_str(&format!("        Option \"XkbLayout\" \"{}\"\n", layouts.join(",")));
        if variants.iter().any(|v| !v.is_empty()) {
            s.push_str(&format!("        Option \"XkbVariant\" \"{}\"\n", variants.join(",")));
        }
        if !kb.switch.is_empty() {
            s.push_str(&format!("        Option \"XkbOptions\" \"{}\"\n", kb.switch.join(",")));
        }
        s.push_str("EndSection\n");
        s
    });
    (vconsole, x11)
}

/// `keyboard`: `/etc/vconsole.conf` and `/etc/X11/xorg.conf.d/00-keyboard.conf`.
pub fn apply_keyboard(t: &Target, kb: &Keyboard, warnings: &mut Vec<Warning>) -> Result<()> {
    let (vconsole, x11) = keyboard_files(kb);
    match vconsole {
        Some(v) => t.write("/etc/vconsole.conf", v.as_bytes(), 0o644, (0, 0))?,
        None => warnings.push(Warning::new("keyboard", "no console keymap given")),
    }
    if let Some(x) = x11 {
        t.write(
            "/etc/X11/xorg.conf.d/00-keyboard.conf",
            x.as_bytes(),
            0o644,
            (0, 0),
        )?;
    }
    Ok(())
}

/// `network --hostname`: `/etc/hostname`.
pub fn apply_hostname(t: &Target, hostname: &str) -> Result<()> {
    t.write(
        "/etc/hostname",
        format!("{hostname}\n").as_bytes(),
        0o644,
        (0, 0),
    )
}

/// Replaces (or adds) the `SELINUX=` line of `/etc/selinux/config` text.
pub fn set_selinux_mode(config: &str, mode: SelinuxMode) -> String {
    let mut found = false;
    let mut out: Vec<String> = config
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("SELINUX=") {
                found = true;
                format!("SELINUX={}", mode.as_str())
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(format!("SELINUX={}", mode.as_str()));
    }
    out.join("\n") + "\n"
}

/// `selinux --MODE`: edits `/etc/selinux/config` when the tree has one.
pub fn apply_selinux(t: &Target, mode: SelinuxMode, warnings: &mut Vec<Warning>) -> Result<()> {
    match t.read_optional("/etc/selinux/config")? {
        Some(text) => t.write(
            "/etc/selinux/config",
            set_selinux_mode(&text, mode).as_bytes(),
            0o644,
            (0, 0),
        ),
        None => {
            warnings.push(Warning::new(
                format!("selinux --{}", mode.as_str()),
                "the tree has no /etc/selinux/config",
            ));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selinux_line_replaced_or_added() {
        let c = "# comment SELINUX=x\nSELINUX=enforcing\nSELINUXTYPE=targeted\n";
        assert_eq!(
            set_selinux_mode(c, SelinuxMode::Permissive),
            "# comment SELINUX=x\nSELINUX=permissive\nSELINUXTYPE=targeted\n"
        );
        assert_eq!(
            set_selinux_mode("", SelinuxMode::Disabled),
            "SELINUX=disabled\n"
        );
    }

    #[test]
    fn keyboard_texts() {
        let kb = Keyboard {
            vckeymap: None,
            xlayouts: vec!["us".into(), "cz (qwerty)".into()],
            switch: vec!["grp:alt_shift_toggle".into()],
        };
        let (v, x) = keyboard_files(&kb);
        assert_eq!(v.as_deref(), Some("KEYMAP=\"us\"\n"));
        let x = x.unwrap();
        assert!(x.contains("Option \"XkbLayout\" \"us,cz\""), "{x}");
        assert!(x.contains("Option \"XkbVariant\" \",qwerty\""), "{x}");
        assert!(
            x.contains("Option \"XkbOptions\" \"grp:alt_shift_toggle\""),
            "{x}"
        );
        let (v, x) = keyboard_files(&Keyboard {
            vckeymap: Some("de-nodeadkeys".into()),
            ..Default::default()
        });
        assert_eq!(v.as_deref(), Some("KEYMAP=\"de-nodeadkeys\"\n"));
        assert!(x.is_none());
        assert_eq!(adjtime(true), "0.0 0 0.0\n0\nUTC\n");
    }
}
