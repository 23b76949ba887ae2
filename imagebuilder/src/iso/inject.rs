//! `imagebuilder iso inject`: what lorax's `mkksiso` does, without root or a loop device.
//!
//! 1. The options are checked first: the new volume id ([`check_volume_id`]), `--rm-args` names,
//!    the kickstart (validated by the `kickstart` crate for its `#version=`, else DEVEL), the
//!    `--add` paths, and that the output does not exist yet.
//! 2. The input's volume id is read (`xorriso -pvd_info`) and its files listed (`-find`); the
//!    boot configurations found among [`BOOT_CONFIGS`] are extracted (`osirrox -extract`).
//! 3. Every boot entry (an isolinux `append` line, a GRUB `linux`/`linuxefi`/`linux16` line) gets
//!    `--rm-args` removed, `--cmdline` appended and `inst.ks=hd:LABEL=<volid>:/<file>` (any earlier
//!    `inst.ks` dropped); with `--volid`, every `LABEL=`/`CDLABEL=` and `search --label`/`-l`
//!    reference to the old id is rewritten.
//! 4. The same edits are made to the GRUB configs inside the EFI boot image (`images/efiboot.img`,
//!    a FAT image) with mtools (`mtype` out, `mcopy -o` back in).
//! 5. `xorriso -indev IN -outdev TMP -boot_image any replay [-volid NEW] -map …` writes the new
//!    ISO with the input's El Torito BIOS and EFI entries (and its hybrid MBR/GPT) replayed onto
//!    the edited files; `TMP` is a temporary file in OUT's directory, renamed to OUT at the end and
//!    removed on any failure (or interruption).
//!
//! The project's own ISOs (`iso::write_iso`) hold their GRUB configuration at
//! `/boot/grub/grub.cfg` and find the medium with a `search --label` embedded in the GRUB images
//! themselves: their entries are edited like lorax's, but a new volume id is refused for them (the
//! embedded search would no longer find the medium).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use super::check_volume_id;
use crate::util::cmd::CommandExt;

/// The boot configurations edited on the ISO, as mkksiso knows them.
pub const BOOT_CONFIGS: &[&str] = &[
    "isolinux/isolinux.cfg",
    "boot/grub2/grub.cfg",
    "boot/grub/grub.cfg",
    "EFI/BOOT/grub.cfg",
    "EFI/BOOT/BOOT.conf",
];

/// The EFI boot image whose GRUB configs are edited too.
pub const EFI_IMAGE: &str = "images/efiboot.img";

/// The GRUB images of an ISO made by this project (their embedded config searches the volume id).
const OWN_GRUB_IMAGE: &str = "boot/grub/eltorito.img";

/// The biggest kickstart read.
const KS_LIMIT: u64 = 16 << 20;

/// What `iso inject` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct InjectOptions {
    /// The input ISO.
    pub iso: PathBuf,
    /// The output ISO (must not exist).
    pub out: PathBuf,
    /// The kickstart put at the ISO root and named by `inst.ks=` on every entry.
    pub ks: Option<PathBuf>,
    /// Files and directories copied to the ISO root.
    pub add: Vec<PathBuf>,
    /// Kernel arguments appended to every entry.
    pub cmdline: Option<String>,
    /// Kernel arguments removed (by name) from every entry.
    pub rm_args: Option<String>,
    /// A new volume id.
    pub volid: Option<String>,
}

/// What was done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InjectReport {
    /// The output ISO.
    pub out: PathBuf,
    /// The volume id of the output.
    pub volid: String,
    /// Every config edited (`/isolinux/isolinux.cfg`, `images/efiboot.img:/EFI/BOOT/grub.cfg`…)
    /// with the number of boot entries changed in it.
    pub configs: Vec<(String, usize)>,
}

/// The edits made to each boot entry and volume id reference.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edit {
    /// The input's volume id.
    pub old_volid: String,
    /// The output's volume id (the same unless `--volid`).
    pub new_volid: String,
    /// `inst.ks=…`, when a kickstart is added.
    pub ks_arg: Option<String>,
    /// Appended arguments.
    pub add_args: Vec<String>,
    /// Names of removed arguments.
    pub rm_args: Vec<String>,
}

/// The flavour of a boot config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// isolinux/syslinux: entries are `append` lines.
    Syslinux,
    /// GRUB: entries are `linux`/`linuxefi`/`linux16` lines.
    Grub,
}

impl ConfigKind {
    fn of(path: &str) -> ConfigKind {
        if path.to_ascii_lowercase().ends_with("isolinux.cfg") {
            ConfigKind::Syslinux
        } else {
            ConfigKind::Grub
        }
    }
}

/// `hd:LABEL=` takes the label in udev's escaping (`\x20` for a space…).
pub fn udev_escape(label: &str) -> String {
    let mut s = String::new();
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// Applies `edit` to the text of a boot config; returns the new text and how many boot entries
/// were changed.
pub fn edit_config(kind: ConfigKind, text: &str, edit: &Edit) -> (String, usize) {
    let mut out = String::with_capacity(text.len() + 256);
    let mut entries = 0;
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut body = rewrite_volid(body, edit);
        let indent_len = body.len() - body.trim_start().len();
        let words: Vec<&str> = body.split_whitespace().collect();
        let keep = match (kind, words.first().map(|w| w.to_ascii_lowercase())) {
            (ConfigKind::Syslinux, Some(w)) if w == "append" => Some(1),
            (ConfigKind::Grub, Some(w))
                if ["linux", "linuxefi", "linux16"].contains(&w.as_str()) =>
            {
                Some(2)
            }
            _ => None,
        };
        if let Some(keep) = keep
            && words.len() >= keep
        {
            let mut args: Vec<String> = words[..keep].iter().map(|s| s.to_string()).collect();
            for a in &words[keep..] {
                let name = a.split('=').next().unwrap_or(a);
                if edit.rm_args.iter().any(|r| r == name)
                    || (edit.ks_arg.is_some() && (name == "inst.ks" || name == "ks"))
                {
                    continue;
                }
                args.push(a.to_string());
            }
            args.extend(edit.add_args.iter().cloned());
            args.extend(edit.ks_arg.iter().cloned());
            body = format!("{}{}", &body[..indent_len], args.join(" "));
            entries += 1;
        }
        out.push_str(&body);
        out.push_str(nl);
    }
    (out, entries)
}

/// Rewrites the references to the old volume id on one line: `LABEL=`/`CDLABEL=` values (plain
/// and udev-escaped) and the label of a GRUB `search --label`/`-l`.
fn rewrite_volid(line: &str, edit: &Edit) -> String {
    if edit.old_volid == edit.new_volid || edit.old_volid.is_empty() {
        return line.to_string();
    }
    let mut s = line.to_string();
    for (old, new) in [
        (edit.old_volid.clone(), edit.new_volid.clone()),
        (udev_escape(&edit.old_volid), udev_escape(&edit.new_volid)),
    ] {
        s = replace_token(&s, &format!("LABEL={old}"), &format!("LABEL={new}"));
    }
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.contains(&"search") && words.iter().any(|w| *w == "-l" || *w == "--label") {
        let old = &edit.old_volid;
        let new = &edit.new_volid;
        for (o, n) in [
            (format!("'{old}'"), format!("'{new}'")),
            (format!("\"{old}\""), format!("\"{new}\"")),
            (old.clone(), new.clone()),
        ] {
            s = replace_token(&s, &o, &n);
        }
    }
    s
}

/// Replaces `from` by `to` where `from` ends a word (followed by a space, `:`, a quote, `,` or the
/// end), so that `LABEL=A` does not rewrite `LABEL=AB`.
fn replace_token(s: &str, from: &str, to: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let before_ok = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            || from.contains('=');
        let after_ok = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || "_-.".contains(c)));
        out.push_str(&rest[..i]);
        if before_ok && after_ok {
            out.push_str(to);
        } else {
            out.push_str(from);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Validates the kickstart with the project's parser (syntax from its `#version=`, else DEVEL).
fn validate_kickstart(ks: &Path) -> Result<()> {
    let text = crate::util::fsutil::read_input(ks, "kickstart", KS_LIMIT)
        .with_context(|| format!("--ks {}", ks.display()))?;
    let version = crate::ks::resolve_syntax("auto", Some(&text))?;
    let opts = kickstart::Options {
        follow_includes: false,
        ..kickstart::Options::validate(version)
    };
    let name = ks.display().to_string();
    let report = kickstart::parse_with(&text, &name, &opts, &kickstart::FsLoader::default());
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == kickstart::Severity::Error)
        .map(|d| d.render())
        .collect();
    ensure!(
        errors.is_empty(),
        "--ks {name}: the kickstart is not valid (syntax {version}):\n{}",
        errors.join("\n")
    );
    Ok(())
}

fn xorriso_indev(iso: &Path) -> String {
    format!("stdio:{}", iso.display())
}

/// The volume id of an ISO.
pub fn read_volume_id(iso: &Path) -> Result<String> {
    let text = Command::new("xorriso")
        .args(["-indev", &xorriso_indev(iso), "-pvd_info"])
        .run_text()
        .with_context(|| format!("reading the volume id of {}", iso.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Volume Id    : "))
        .map(|v| v.trim_end().to_string())
        .with_context(|| format!("{}: xorriso reported no volume id", iso.display()))
}

/// Every regular file of an ISO, as paths without the leading `/`.
pub fn list_files(iso: &Path) -> Result<Vec<String>> {
    let text = Command::new("xorriso")
        .args(["-indev", &xorriso_indev(iso), "-find", "/", "-type", "f"])
        .run_text()
        .with_context(|| format!("listing the files of {}", iso.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("'/")?.strip_suffix('\''))
        .map(|p| p.replace("'\"'\"'", "'"))
        .collect())
}

/// Adds the kickstart, files and kernel arguments to an ISO; see the module documentation.
pub fn inject(o: &InjectOptions) -> Result<InjectReport> {
    // 1. Inputs, before any work.
    if let Some(v) = &o.volid {
        check_volume_id(v).context("--volid")?;
    }
    let rm_args: Vec<String> = o
        .rm_args
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if let Some(a) = rm_args.iter().find(|a| a.contains('=')) {
        bail!("--rm-args {a:?}: name the argument to remove without `=`");
    }
    let add_args: Vec<String> = o
        .cmdline
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ensure!(
        o.ks.is_some()
            || !o.add.is_empty()
            || !add_args.is_empty()
            || !rm_args.is_empty()
            || o.volid.is_some(),
        "nothing to do: give --ks, --add, --cmdline, --rm-args or --volid"
    );
    let meta =
        std::fs::metadata(&o.iso).with_context(|| format!("input ISO {}", o.iso.display()))?;
    ensure!(
        meta.is_file(),
        "input ISO {}: not a regular file",
        o.iso.display()
    );
    let ks_name = match &o.ks {
        Some(ks) => {
            validate_kickstart(ks)?;
            Some(file_name(ks, "--ks")?)
        }
        None => None,
    };
    for a in &o.add {
        ensure!(
            a.symlink_metadata().is_ok(),
            "--add {}: no such file or directory",
            a.display()
        );
        file_name(a, "--add")?;
    }
    ensure!(
        o.out.symlink_metadata().is_err(),
        "output {} exists already; remove it or choose another name",
        o.out.display()
    );
    let out_dir = crate::util::fsutil::parent_dir(&o.out);
    let (_, tmp) = crate::build::publish::temp_in(out_dir, ".iso")
        .with_context(|| format!("output {}", o.out.display()))?;
    let tmp_guard = crate::util::cleanup::remove_file_guard(&tmp);
    for p in ["xorriso", "mtype", "mcopy", "mdir"] {
        crate::util::cmd::require_program(p)?;
    }

    // 2. What the ISO holds.
    let old_volid = read_volume_id(&o.iso)?;
    let new_volid = o.volid.clone().unwrap_or_else(|| old_volid.clone());
    let files = list_files(&o.iso)?;
    let configs: Vec<&str> = BOOT_CONFIGS
        .iter()
        .copied()
        .filter(|c| files.iter().any(|f| f == c))
        .collect();
    let has_efi_image = files.iter().any(|f| f == EFI_IMAGE);
    ensure!(
        !configs.is_empty() || has_efi_image,
        "{}: no known boot configuration (looked for {} and {EFI_IMAGE})",
        o.iso.display(),
        BOOT_CONFIGS.join(", ")
    );
    if new_volid != old_volid && files.iter().any(|f| f == OWN_GRUB_IMAGE) {
        bail!(
            "--volid: {} was made by imagebuilder, whose GRUB images embed the volume id {old_volid:?}; \
             rebuild the ISO with the new id instead",
            o.iso.display()
        );
    }
    let edit = Edit {
        ks_arg: ks_name
            .as_ref()
            .map(|n| format!("inst.ks=hd:LABEL={}:/{n}", udev_escape(&new_volid))),
        old_volid: old_volid.clone(),
        new_volid: new_volid.clone(),
        add_args,
        rm_args,
    };

    // 3. Extract and edit.
    let work = tempfile::Builder::new()
        .prefix(".imagebuilder-inject-")
        .tempdir_in(out_dir)
        .with_context(|| format!("creating a scratch directory in {}", out_dir.display()))?;
    let work_path = work.path().to_path_buf();
    let _work_guard =
        crate::util::cleanup::register(format!("removing {}", work_path.display()), move || {
            let _ = std::fs::remove_dir_all(&work_path);
            Ok(())
        });
    let mut extract = Command::new("xorriso");
    extract.args(["-osirrox", "on", "-indev", &xorriso_indev(&o.iso)]);
    let mut wanted: Vec<&str> = configs.clone();
    if has_efi_image {
        wanted.push(EFI_IMAGE);
    }
    for c in &wanted {
        extract
            .arg("-extract")
            .arg(format!("/{c}"))
            .arg(work.path().join(c));
    }
    extract
        .run()
        .with_context(|| format!("extracting the boot configuration of {}", o.iso.display()))?;
    let mut report = Vec::new();
    let mut maps: Vec<(PathBuf, String)> = Vec::new();
    for c in &configs {
        let p = work.path().join(c);
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("reading /{c} of {}", o.iso.display()))?;
        let (new, n) = edit_config(ConfigKind::of(c), &text, &edit);
        std::fs::write(&p, new).with_context(|| format!("writing {}", p.display()))?;
        report.push((format!("/{c}"), n));
        maps.push((p, format!("/{c}")));
    }
    if has_efi_image {
        let img = work.path().join(EFI_IMAGE);
        for (c, n) in edit_efi_image(&img, work.path(), &edit)? {
            report.push((format!("{EFI_IMAGE}:/{c}"), n));
        }
        maps.push((img, format!("/{EFI_IMAGE}")));
    }
    let entries: usize = report.iter().map(|(_, n)| n).sum();
    ensure!(
        entries > 0,
        "{}: no boot entry found in {}",
        o.iso.display(),
        report
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(ks), Some(name)) = (&o.ks, &ks_name) {
        maps.push((ks.clone(), format!("/{name}")));
    }
    for a in &o.add {
        maps.push((a.clone(), format!("/{}", file_name(a, "--add")?)));
    }

    // 4. The new ISO, boot records replayed.
    let mut x = Command::new("xorriso");
    x.args(["-indev", &xorriso_indev(&o.iso)])
        .arg("-outdev")
        .arg(format!("stdio:{}", tmp.display()))
        .args(["-boot_image", "any", "replay"]);
    if new_volid != old_volid {
        x.args(["-volid", &new_volid]);
    }
    for (src, dst) in &maps {
        x.arg("-map").arg(src).arg(dst);
    }
    x.arg("-commit");
    x.run()
        .with_context(|| format!("writing {} (xorriso)", o.out.display()))?;
    tmp.persist_noclobber(&o.out)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the new ISO to {}", o.out.display()))?;
    tmp_guard.disarm();
    Ok(InjectReport {
        out: o.out.clone(),
        volid: new_volid,
        configs: report,
    })
}

fn file_name(p: &Path, option: &str) -> Result<String> {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{option} {}: no usable file name", p.display()))?;
    ensure!(
        !name.starts_with('.') || name.len() > 2,
        "{option} {}: no usable file name",
        p.display()
    );
    Ok(name.to_string())
}

/// Edits the GRUB and isolinux configs inside the FAT image `img` in place.
fn edit_efi_image(img: &Path, work: &Path, edit: &Edit) -> Result<Vec<(String, usize)>> {
    let image = img.display().to_string();
    let listing = Command::new("mdir")
        .args(["-/", "-b", "-i", &image, "::/"])
        .env("MTOOLS_SKIP_CHECK", "1")
        .run_text()
        .with_context(|| format!("listing the EFI boot image {EFI_IMAGE}"))?;
    let mut done = Vec::new();
    for entry in listing.lines() {
        let Some(path) = entry.strip_prefix("::/") else {
            continue;
        };
        let lower = path.to_ascii_lowercase();
        let Some(_) = BOOT_CONFIGS
            .iter()
            .find(|c| c.to_ascii_lowercase() == lower)
        else {
            continue;
        };
        let text = Command::new("mtype")
            .args(["-i", &image, &format!("::/{path}")])
            .env("MTOOLS_SKIP_CHECK", "1")
            .run_text()
            .with_context(|| format!("reading {EFI_IMAGE}:/{path}"))?;
        let (new, n) = edit_config(ConfigKind::of(path), &text, edit);
        let local = work.join("efiboot-cfg");
        std::fs::write(&local, new).with_context(|| format!("writing {}", local.display()))?;
        Command::new("mcopy")
            .args(["-o", "-i", &image])
            .arg(&local)
            .arg(format!("::/{path}"))
            .env("MTOOLS_SKIP_CHECK", "1")
            .run()
            .with_context(|| format!("writing {EFI_IMAGE}:/{path}"))?;
        done.push((path.to_string(), n));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit() -> Edit {
        Edit {
            old_volid: "Fedora-S-29".into(),
            new_volid: "NEW".into(),
            ks_arg: Some("inst.ks=hd:LABEL=NEW:/ks.cfg".into()),
            add_args: vec!["console=ttyS0".into()],
            rm_args: vec!["quiet".into()],
        }
    }

    #[test]
    fn isolinux_append_lines() {
        let cfg = "label linux\n  kernel vmlinuz\n  append initrd=initrd.img inst.stage2=hd:LABEL=Fedora-S-29 quiet inst.ks=old\nlabel local\n  localboot 0xffff\n";
        let (new, n) = edit_config(ConfigKind::Syslinux, cfg, &edit());
        assert_eq!(n, 1);
        assert!(new.contains(
            "  append initrd=initrd.img inst.stage2=hd:LABEL=NEW console=ttyS0 inst.ks=hd:LABEL=NEW:/ks.cfg\n"
        ), "{new}");
        assert!(new.contains("  localboot 0xffff\n"), "{new}");
    }

    #[test]
    fn grub_linux_lines_and_search() {
        let cfg = "search --no-floppy --set=root -l 'Fedora-S-29'\nmenuentry 'x' {\n\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Fedora-S-29 quiet\n\tinitrdefi /i\n}\nmenuentry 'y' {\n\tlinux /v root=live:CDLABEL=Fedora-S-29 rd.live.image\n}\n";
        let (new, n) = edit_config(ConfigKind::Grub, cfg, &edit());
        assert_eq!(n, 2, "{new}");
        assert!(
            new.starts_with("search --no-floppy --set=root -l 'NEW'\n"),
            "{new}"
        );
        assert!(new.contains("\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=NEW console=ttyS0 inst.ks=hd:LABEL=NEW:/ks.cfg\n"), "{new}");
        assert!(new.contains("\tlinux /v root=live:CDLABEL=NEW rd.live.image console=ttyS0 inst.ks=hd:LABEL=NEW:/ks.cfg\n"), "{new}");
        assert!(!new.contains("Fedora-S-29"), "{new}");
    }

    #[test]
    fn volid_prefix_is_not_rewritten() {
        let e = Edit {
            old_volid: "A".into(),
            new_volid: "B".into(),
            ..Edit::default()
        };
        let (new, _) = edit_config(ConfigKind::Syslinux, "append x=LABEL=AB y=LABEL=A:/k\n", &e);
        assert_eq!(new, "append x=LABEL=AB y=LABEL=B:/k\n");
    }

    #[test]
    fn udev_escaping() {
        assert_eq!(udev_escape("Fedora 29 x"), "Fedora\\x2029\\x20x");
        assert_eq!(udev_escape("A-b_c.1"), "A-b_c.1");
    }
}
