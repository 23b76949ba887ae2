//! Output files of an image build: every file is written under a temporary name in the build's
//! staging directory in OUTDIR (`.imagebuilder-work-*/out/`, see [`crate::build::outdir`]) and renamed
//! into place only when the whole build has succeeded, images first, then `metadata.json`, then
//! `SHA256SUMS` last. A failed or interrupted build leaves nothing that looks finished (the staging
//! directory is removed on error and on SIGINT/SIGTERM; after a SIGKILL it keeps its telltale name
//! and the next build or `imagebuilder clean` removes it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::util::cmd::CommandExt;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum OutputFormat {
    /// Sparse raw disk image (`NAME.raw`).
    #[serde(rename = "raw")]
    Raw,
    /// xz-compressed raw image (`NAME.raw.xz`).
    #[serde(rename = "raw.xz")]
    RawXz,
    /// qcow2 v3 (`NAME.qcow2`).
    #[serde(rename = "qcow2")]
    Qcow2,
    /// Vagrant box for vagrant-libvirt: tar.gz with the qcow2 (`NAME.vagrant-libvirt.box`).
    #[serde(rename = "vagrant-libvirt")]
    VagrantLibvirt,
    /// Vagrant box for VirtualBox: tar with an OVF and a streamOptimized VMDK
    /// (`NAME.vagrant-virtualbox.box`).
    #[serde(rename = "vagrant-virtualbox")]
    VagrantVirtualbox,
    /// PXE-to-Live: a directory (`NAME.pxe/`) with the kernel, an initramfs that fetches the live
    /// root, `live-rootfs.squashfs.img`, `PXE_CONFIG` and ready-to-serve boot configs.
    #[serde(rename = "pxe-live")]
    PxeLive,
    /// Hybrid live ISO, BIOS and UEFI, CD-ROM and disk (`NAME.iso`).
    #[serde(rename = "live-iso")]
    LiveIso,
    /// Unattended installer ISO, BIOS and UEFI: the live system installs the kickstart's disk
    /// onto the machine's disk (`NAME.installer.iso`).
    #[serde(rename = "installer-iso")]
    InstallerIso,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "raw" => Self::Raw,
            "raw.xz" | "raw-xz" => Self::RawXz,
            "qcow2" => Self::Qcow2,
            "vagrant-libvirt" => Self::VagrantLibvirt,
            "vagrant-virtualbox" => Self::VagrantVirtualbox,
            "pxe-live" | "pxe-to-live" => Self::PxeLive,
            "live-iso" => Self::LiveIso,
            "installer-iso" => Self::InstallerIso,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::RawXz => "raw.xz",
            Self::Qcow2 => "qcow2",
            Self::VagrantLibvirt => "vagrant-libvirt.box",
            Self::VagrantVirtualbox => "vagrant-virtualbox.box",
            Self::PxeLive => "pxe",
            Self::LiveIso => "iso",
            Self::InstallerIso => "installer.iso",
        }
    }

    /// A disk image (or a conversion of one), as opposed to a live image.
    pub fn is_disk(self) -> bool {
        !self.is_live()
    }

    /// Built from the live root (the installer ISO boots one too).
    pub fn is_live(self) -> bool {
        matches!(self, Self::PxeLive | Self::LiveIso | Self::InstallerIso)
    }

    /// The names [`OutputFormat::parse`] accepts (for error messages).
    pub const NAMES: &'static str = "raw, raw.xz, qcow2, vagrant-libvirt, vagrant-virtualbox, pxe-live, live-iso, installer-iso";
}

/// The build log (`NAME.log`, written in the build's own log directory and moved to `OUTDIR/logs/`
/// when the build is published): one line per step, with elapsed time; mirrored to the tracing
/// logger.
#[derive(Debug)]
pub struct BuildLog {
    file: File,
    start: Instant,
    pub path: PathBuf,
}

impl BuildLog {
    /// Creates `DIR/NAME.log`.
    pub fn create(dir: &Path, name: &str) -> Result<BuildLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.log"));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BuildLog {
            file,
            start: Instant::now(),
            path,
        })
    }

    pub fn step(&mut self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        tracing::info!("{msg}");
        let _ = writeln!(
            self.file,
            "[{:8.2}s] {msg}",
            self.start.elapsed().as_secs_f64()
        );
    }

    /// Writes to the log file only (the caller reports the message itself).
    pub fn record(&mut self, msg: impl AsRef<str>) {
        let _ = writeln!(
            self.file,
            "[{:8.2}s] {}",
            self.start.elapsed().as_secs_f64(),
            msg.as_ref()
        );
    }

    pub fn warn(&mut self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        tracing::warn!("{msg}");
        self.record_warning(msg);
    }

    /// Writes a warning already shown on stderr (before this log existed) into the log file only.
    pub fn record_warning(&mut self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        let _ = writeln!(
            self.file,
            "[{:8.2}s] WARNING: {msg}",
            self.start.elapsed().as_secs_f64()
        );
    }

    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// A finished output, before renaming.
#[derive(Debug)]
pub struct Staged {
    pub format: Option<OutputFormat>,
    pub final_path: PathBuf,
    pub tmp: StagedData,
}

/// What a staged output is: one file, or a directory of files published as a whole.
#[derive(Debug)]
pub enum StagedData {
    File(TempPath),
    Dir(tempfile::TempDir),
}

impl From<TempPath> for StagedData {
    fn from(p: TempPath) -> StagedData {
        StagedData::File(p)
    }
}

/// One entry of the metadata's output list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutputInfo {
    pub file: String,
    pub format: Option<OutputFormat>,
    pub size: u64,
    pub sha256: String,
}

/// Creates a temporary file next to its final place.
pub fn temp_in(outdir: &Path, suffix: &str) -> Result<(File, TempPath)> {
    let t = tempfile::Builder::new()
        .prefix(".imagebuilder-tmp-")
        .suffix(suffix)
        .tempfile_in(outdir)
        .with_context(|| format!("creating a temporary file in {}", outdir.display()))?;
    let (f, p) = t.into_parts();
    Ok((f, p))
}

/// Checks that OUTDIR can take the outputs: existing files need `--overwrite`.
pub fn check_targets(outdir: &Path, names: &[String], overwrite: bool) -> Result<()> {
    std::fs::create_dir_all(outdir)
        .with_context(|| format!("creating output directory {}", outdir.display()))?;
    for n in names {
        let p = outdir.join(n);
        if p.exists() && !overwrite {
            bail!(
                "{} already exists; pass --overwrite to replace it",
                p.display()
            );
        }
    }
    Ok(())
}

/// The longest output base name: room for the longest extension (`.vagrant-virtualbox.box`) and
/// the temporary prefix within a file name's 255 bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Checks an output base name (`--name`, or one part of a Koji name: `--version`, `--release`,
/// `--arch`): it goes into file names, `SHA256SUMS` lines (`HASH  NAME`, one per line) and Koji
/// NVRs, so only `[A-Za-z0-9._+-]`, not starting with `.` or `-`, at most [`MAX_NAME_LEN`]
/// characters. `what` names the option in the error.
pub fn validate_name(what: &str, value: &str) -> Result<()> {
    let bad = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._+-".contains(*c)));
    if value.is_empty() {
        bail!("{what} is empty; an output name needs at least one character");
    }
    if let Some(c) = bad {
        bail!(
            "{what} {value:?} contains {c:?}: output names may hold only letters, digits and `.`              `_` `+` `-` (they go into file names, SHA256SUMS lines and Koji names)"
        );
    }
    if value.starts_with(['.', '-']) {
        bail!(
            "{what} {value:?} starts with `{}`; output names may not",
            &value[..1]
        );
    }
    if value.len() > MAX_NAME_LEN {
        bail!(
            "{what} is {} characters long; output names have at most {MAX_NAME_LEN}",
            value.len()
        );
    }
    Ok(())
}

pub use crate::util::digest::{hex, sha256_file};

/// Compresses `raw` with xz into a temporary file in `outdir`.
pub fn xz(raw: &Path, outdir: &Path) -> Result<(File, TempPath)> {
    crate::util::cmd::require_program("xz")?;
    let (out, tmp) = temp_in(outdir, ".raw.xz")?;
    let input = File::open(raw).with_context(|| format!("opening {}", raw.display()))?;
    let mut cmd = Command::new("xz");
    // -3: zeros (most of a sparse image) compress twice as fast as at the default -6.
    cmd.args(["-c", "-T0", "-3", "--block-size=64MiB"]);
    let out2 = out.try_clone()?;
    cmd.stdin(Stdio::from(input))
        .stdout(Stdio::from(out2))
        .run_redirected()?;
    Ok((out, tmp))
}

/// Renames the staged outputs into place (in order), then writes `metadata.json` and `SHA256SUMS`.
/// A directory output is listed file by file (`NAME.pxe/FILE`), so `sha256sum -c` in OUTDIR checks
/// everything.
pub fn commit(
    outdir: &Path,
    staged: Vec<Staged>,
    metadata: &impl Fn(&[OutputInfo]) -> Result<Vec<u8>>,
) -> Result<Vec<OutputInfo>> {
    let mut infos = Vec::new();
    for s in &staged {
        let name = s
            .final_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match &s.tmp {
            StagedData::File(tmp) => infos.push(file_info(tmp, name, s.format)?),
            StagedData::Dir(dir) => {
                for (rel, path) in dir_files(dir.path())? {
                    infos.push(file_info(&path, format!("{name}/{rel}"), s.format)?);
                }
            }
        }
    }
    for s in staged {
        publish_one(s)?;
    }
    let meta = metadata(&infos)?;
    crate::util::fsutil::write_atomic(&outdir.join("metadata.json"), &meta)?;
    let mut sums: Vec<(String, String)> = infos
        .iter()
        .map(|i| (i.sha256.clone(), i.file.clone()))
        .collect();
    sums.push((hex(&Sha256::digest(&meta)), "metadata.json".into()));
    crate::util::fsutil::write_atomic(&outdir.join("SHA256SUMS"), sums_text(&sums).as_bytes())?;
    for f in ["metadata.json", "SHA256SUMS"] {
        std::fs::set_permissions(
            outdir.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )?;
    }
    Ok(infos)
}

/// `SHA256SUMS` text (`sha256sum` format) for `(sha256, name)` pairs.
pub fn sums_text(entries: &[(String, String)]) -> String {
    entries
        .iter()
        .map(|(sha, name)| format!("{sha}  {name}\n"))
        .collect()
}

fn file_info(path: &Path, file: String, format: Option<OutputFormat>) -> Result<OutputInfo> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let sha256 = sha256_file(path)?;
    File::open(path)?.sync_all().ok();
    Ok(OutputInfo {
        file,
        format,
        size,
        sha256,
    })
}

/// Every file under `dir`, sorted by relative path.
pub fn dir_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Renames one staged output into place; a directory replaces an existing one as a whole.
fn publish_one(s: Staged) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let final_path = s.final_path;
    match s.tmp {
        StagedData::File(tmp) => {
            // Temporary files are created 0600; finished images are ordinary readable files.
            std::fs::set_permissions(&tmp, PermissionsExt::from_mode(0o644))
                .with_context(|| format!("setting the mode of {}", final_path.display()))?;
            tmp.persist(&final_path)
                .map_err(|e| e.error)
                .with_context(|| {
                    format!("renaming the finished output to {}", final_path.display())
                })?;
        }
        StagedData::Dir(dir) => {
            // Published like files: readable by everyone, directories searchable.
            for (_, f) in dir_files(dir.path())? {
                std::fs::set_permissions(&f, PermissionsExt::from_mode(0o644))
                    .with_context(|| format!("setting the mode of {}", f.display()))?;
            }
            std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755))
                .with_context(|| format!("setting the mode of {}", final_path.display()))?;
            let parent = crate::util::fsutil::parent_dir(&final_path);
            let old = parent.join(format!(
                ".imagebuilder-old-{}",
                final_path.file_name().unwrap_or_default().to_string_lossy()
            ));
            let replaced = final_path.exists();
            if replaced {
                std::fs::rename(&final_path, &old)
                    .with_context(|| format!("moving the old {} aside", final_path.display()))?;
            }
            let staged = dir.keep();
            std::fs::rename(&staged, &final_path).with_context(|| {
                format!("renaming the finished output to {}", final_path.display())
            })?;
            if replaced {
                crate::blockdev::mounts::remove_tree(&old)
                    .with_context(|| format!("removing the old {}", old.display()))?;
            }
        }
    }
    Ok(())
}

/// `sha256sum -c SHA256SUMS` in `outdir` (used by tests and the CLI's self-check).
pub fn verify_sums(outdir: &Path) -> Result<()> {
    Command::new("sha256sum")
        .arg("-c")
        .arg("--quiet")
        .arg("SHA256SUMS")
        .current_dir(outdir)
        .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_lists_everything() {
        let d = tempfile::tempdir().unwrap();
        let (mut f, tmp) = temp_in(d.path(), ".raw").unwrap();
        f.write_all(b"disk").unwrap();
        let staged = vec![Staged {
            format: Some(OutputFormat::Raw),
            final_path: d.path().join("x.raw"),
            tmp: tmp.into(),
        }];
        let infos = commit(d.path(), staged, &|i| Ok(serde_json::to_vec(i)?)).unwrap();
        assert_eq!(infos[0].sha256, hex(&Sha256::digest(b"disk")));
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        verify_sums(d.path()).unwrap();
        assert!(
            check_targets(d.path(), &["x.raw".into()], false)
                .unwrap_err()
                .to_string()
                .contains("--overwrite")
        );
        check_targets(d.path(), &["x.raw".into()], true).unwrap();
    }

    #[test]
    fn names_are_limited_to_what_sums_and_koji_hold() {
        for ok in ["demo", "fedora-atomic-29-1.0.x86_64", "a_b+c", "A9"] {
            validate_name("--name", ok).unwrap();
        }
        let e = validate_name("--name", "a\nb").unwrap_err().to_string();
        assert!(e.starts_with("--name \"a\\nb\" contains '\\n'"), "{e}");
        for bad in ["a b", "a/b", "a\\b", "é", "a*", "a\t"] {
            let e = validate_name("--name", bad).unwrap_err().to_string();
            assert!(e.contains("only letters, digits"), "{bad}: {e}");
        }
        for bad in [".hidden", "-x"] {
            let e = validate_name("--release", bad).unwrap_err().to_string();
            assert!(
                e.starts_with("--release") && e.contains("starts with"),
                "{e}"
            );
        }
        assert!(
            validate_name("--name", "")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        validate_name("--name", &"a".repeat(MAX_NAME_LEN)).unwrap();
        let e = validate_name("--name", &"a".repeat(MAX_NAME_LEN + 1)).unwrap_err();
        assert!(e.to_string().contains("at most 200"), "{e}");
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut f, _tmp) = temp_in(d.path(), ".qcow2").unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
