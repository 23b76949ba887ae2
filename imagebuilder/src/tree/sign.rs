//! GPG signatures on commits and on the repository summary (libostree's GPG support), and their
//! verification.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use ostree::{gio, glib};

use crate::util::cmd::CommandExt;

/// A secret key used to sign, optionally from a specific GnuPG home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgKey {
    pub key_id: String,
    pub homedir: Option<PathBuf>,
}

impl GpgKey {
    fn homedir_str(&self) -> Result<Option<&str>> {
        self.homedir
            .as_deref()
            .map(|h| {
                h.to_str()
                    .with_context(|| format!("GnuPG home {} is not UTF-8", h.display()))
            })
            .transpose()
    }

    /// Fails clearly, before anything is written, when the secret key is not available.
    pub fn check_available(&self) -> Result<()> {
        crate::util::cmd::require_program("gpg")?;
        if let Some(h) = &self.homedir
            && !h.is_dir()
        {
            bail!(
                "GnuPG home directory {} does not exist (--gpg-homedir)",
                h.display()
            );
        }
        let mut cmd = Command::new("gpg");
        if let Some(h) = &self.homedir {
            cmd.arg("--homedir").arg(h);
        }
        cmd.args([
            "--batch",
            "--with-colons",
            "--list-secret-keys",
            "--",
            &self.key_id,
        ]);
        cmd.run_text().with_context(|| {
            format!(
                "signing key {} not found in {}",
                self.key_id,
                self.homedir.as_deref().map_or_else(
                    || "the default GnuPG home".to_owned(),
                    |h| h.display().to_string()
                )
            )
        })?;
        Ok(())
    }
}

/// Signs `commit` (a detached signature in its commit metadata).
pub fn sign_commit(repo: &ostree::Repo, commit: &str, key: &GpgKey) -> Result<()> {
    repo.sign_commit(
        commit,
        &key.key_id,
        key.homedir_str()?,
        gio::Cancellable::NONE,
    )
    .with_context(|| format!("signing commit {commit} with key {}", key.key_id))
}

/// Signs the repository summary (writes `summary.sig`); the summary must exist.
pub fn sign_summary(repo: &ostree::Repo, key: &GpgKey) -> Result<()> {
    repo.add_gpg_signature_summary(
        &[key.key_id.as_str()],
        key.homedir_str()?,
        gio::Cancellable::NONE,
    )
    .with_context(|| format!("signing the summary with key {}", key.key_id))
}

/// Where the trusted public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyring {
    /// A GnuPG home directory (its `pubring.kbx`/`pubring.gpg`).
    Homedir(PathBuf),
    /// A keyring file (binary or ASCII-armoured export).
    File(PathBuf),
}

/// The OpenPGP signatures held in a `summary.sig` file (an `a{sv}` variant whose `ostree.gpgsigs`
/// entry is an array of binary signatures), concatenated.
fn summary_gpg_signatures(sig_file: &[u8]) -> Result<Vec<u8>> {
    let v =
        glib::Variant::from_bytes_with_type(&glib::Bytes::from(sig_file), glib::VariantTy::VARDICT)
            .normal_form();
    let dict = glib::VariantDict::new(Some(&v));
    let sigs = dict
        .lookup_value("ostree.gpgsigs", Some(glib::VariantTy::BYTE_STRING_ARRAY))
        .context("summary.sig holds no GPG signature (`ostree.gpgsigs`)")?;
    let mut out = Vec::new();
    for i in 0..sigs.n_children() {
        out.extend_from_slice(&sigs.child_value(i).data_as_bytes());
    }
    if out.is_empty() {
        bail!("summary.sig holds no GPG signature");
    }
    Ok(out)
}

/// Converts an ASCII-armoured keyring into a temporary binary one.
fn dearmor(file: &Path) -> Result<tempfile::NamedTempFile> {
    crate::util::cmd::require_program("gpg")?;
    let keys = Command::new("gpg")
        .args(["--batch", "--dearmor", "--output", "-"])
        .arg(file)
        .run_stdout()
        .with_context(|| format!("reading the armoured keyring {}", file.display()))?;
    temp_keyring(&keys)
}

fn temp_keyring(keys: &[u8]) -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::Builder::new()
        .prefix("imagebuilder-keyring-")
        .suffix(".gpg")
        .tempfile()
        .context("creating a temporary keyring")?;
    std::io::Write::write_all(&mut f, keys).context("writing a temporary keyring")?;
    Ok(f)
}

/// Exports the public keys of a GnuPG home directory into a temporary keyring file.
fn export_public_keys(homedir: &Path) -> Result<tempfile::NamedTempFile> {
    if !homedir.is_dir() {
        bail!(
            "GnuPG home directory {} does not exist (--gpg-homedir)",
            homedir.display()
        );
    }
    crate::util::cmd::require_program("gpg")?;
    let keys = Command::new("gpg")
        .arg("--homedir")
        .arg(homedir)
        .args(["--batch", "--export"])
        .run_stdout()
        .with_context(|| format!("exporting the public keys of {}", homedir.display()))?;
    if keys.is_empty() {
        bail!(
            "GnuPG home directory {} holds no public keys",
            homedir.display()
        );
    }
    temp_keyring(&keys)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub reference: String,
    pub commit: String,
    pub commit_signatures: u32,
    pub commit_valid: u32,
    pub summary_signatures: u32,
    pub summary_valid: u32,
}

/// Checks that the commit `reference` points to and the summary both carry a valid signature from a
/// key in `keyring`. Unsigned, tampered or unknown-key signatures fail.
pub fn verify(repo_path: &Path, reference: &str, keyring: &Keyring) -> Result<VerifyReport> {
    let repo = super::repo::open(repo_path)?;
    let commit = super::repo::require_ref(&repo, reference)?;
    // libostree reads keyring *files*; a GnuPG home (keybox format) is exported into one first.
    let exported;
    let keyring_file = match keyring {
        Keyring::Homedir(h) => {
            exported = export_public_keys(h)?;
            exported.path().to_owned()
        }
        Keyring::File(f) => {
            if !f.is_file() {
                bail!("keyring {} does not exist (--keyring)", f.display());
            }
            let head =
                std::fs::read(f).with_context(|| format!("reading keyring {}", f.display()))?;
            if head.starts_with(b"-----BEGIN PGP") {
                // libostree only reads binary keyrings.
                exported = dearmor(f)?;
                exported.path().to_owned()
            } else {
                f.clone()
            }
        }
    };
    let dir: Option<gio::File> = None;
    let file = Some(gio::File::for_path(&keyring_file));
    let res = repo
        .verify_commit_ext(&commit, dir.as_ref(), file.as_ref(), gio::Cancellable::NONE)
        .with_context(|| format!("verifying the signature of commit {commit} ({reference})"))?;
    let (commit_signatures, commit_valid) = (res.count_all(), res.count_valid());
    res.require_valid_signature()
        .with_context(|| format!("commit {commit} ({reference}) has no valid signature"))?;

    let summary = std::fs::read(repo_path.join("summary"))
        .with_context(|| format!("reading {}/summary", repo_path.display()))?;
    let sig = std::fs::read(repo_path.join("summary.sig")).with_context(|| {
        format!(
            "the summary is not signed: reading {}/summary.sig",
            repo_path.display()
        )
    })?;
    let res = repo
        .gpg_verify_data(
            None,
            &glib::Bytes::from_owned(summary),
            &glib::Bytes::from_owned(summary_gpg_signatures(&sig)?),
            dir.as_ref(),
            file.as_ref(),
            gio::Cancellable::NONE,
        )
        .context("verifying the summary signature")?;
    let (summary_signatures, summary_valid) = (res.count_all(), res.count_valid());
    res.require_valid_signature()
        .context("the summary has no valid signature")?;
    Ok(VerifyReport {
        reference: reference.to_owned(),
        commit,
        commit_signatures,
        commit_valid,
        summary_signatures,
        summary_valid,
    })
}
