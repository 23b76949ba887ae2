//! `imagebuilder liveimage`: rpm-ostree-toolbox's PXE-to-Live command, natively. The toolbox
//! installed the commit into a VM with Oz and ran `livemedia-creator --make-ostree-live` in a
//! container; here the commit is deployed, configured by the kickstart and turned into the live
//! artifacts directly, in the toolbox's output layout:
//!
//! ```text
//! OUTDIR/images/{vmlinuz-KVER, initramfs-KVER.img, live-rootfs.squashfs.img, PXE_CONFIG, SHA256SUMS, …}
//! OUTDIR/NAME.iso          the same live system as a hybrid ISO
//! OUTDIR/metadata.json, OUTDIR/SHA256SUMS, OUTDIR/logs/
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::build::kickstart::{
    KickstartImageOptions, build_from_kickstart_file, source_date_epoch_from_env,
};
use crate::build::publish::OutputFormat;
use crate::build::{BuildResult, LiveOptions};
use crate::config::{Loaded, RepoLocation};

/// The PXE-to-Live directory's name in OUTDIR (the toolbox's layout).
pub const IMAGES_DIR: &str = "images";

/// A `liveimage` run.
#[derive(Debug, Clone, Default)]
pub struct LiveimageRequest {
    /// The PXE-to-Live kickstart (`-k`).
    pub kickstart: PathBuf,
    /// `-c config.ini [-p PROFILE]`, loaded.
    pub config: Option<Loaded>,
    /// `--tdl`: accepted for compatibility (Oz is not used); must exist, as the toolbox checked.
    pub tdl: Option<PathBuf>,
    /// `--ostreerepo`.
    pub ostree_repo: Option<String>,
    pub preserve_ks_url: bool,
    pub outdir: PathBuf,
    pub overwrite: bool,
    /// Base name of the ISO (default: the config's `os_nr`, else the kickstart's name).
    pub name: Option<String>,
    pub syntax: Option<String>,
    pub live: LiveOptions,
}

/// Where the commit comes from: the toolbox's first match (`--ostreerepo`, config `ostree_repo`,
/// `$OSTREE_REPO`, `./repo`), else the kickstart's own `ostreesetup --url`.
fn local_repo(r: &LiveimageRequest) -> Result<Option<PathBuf>> {
    let location = match &r.config {
        Some(l) => l.config.repo_location(r.ostree_repo.as_deref()),
        None => match &r.ostree_repo {
            Some(s) => RepoLocation::parse(s),
            None => return Ok(None),
        },
    };
    match location {
        RepoLocation::Local(p) if p.is_dir() => Ok(Some(p)),
        // The implicit ./repo only when it is there; a named one must be.
        RepoLocation::Local(p) if r.ostree_repo.is_none() && p == Path::new("repo") => Ok(None),
        RepoLocation::Local(p) => bail!("OSTree repository {}: no such directory", p.display()),
        RepoLocation::Remote(u) => bail!(
            "OSTree repository {u}: remote repositories are pulled through the kickstart's \
             `ostreesetup --url`; give a local --ostreerepo, or put the URL in the kickstart"
        ),
    }
}

/// Runs `liveimage`: checks the inputs, then one build of the `pxe-live` and `live-iso` outputs.
pub fn liveimage(r: &LiveimageRequest) -> Result<BuildResult> {
    if let Some(t) = &r.tdl
        && !t.is_file()
    {
        bail!("--tdl {}: no such file", t.display());
    }
    if r.outdir.exists() && !r.overwrite {
        bail!(
            "The directory {} already exists (use --overwrite)",
            r.outdir.display()
        );
    }
    let ostree_repo = local_repo(r)?;
    let name = r
        .name
        .clone()
        .or_else(|| r.config.as_ref().map(|l| l.config.os_nr()));
    let mut live = r.live.clone();
    live.pxe_dir = Some(IMAGES_DIR.into());
    let opts = KickstartImageOptions {
        ostree_repo,
        preserve_ks_url: r.preserve_ks_url,
        formats: vec![OutputFormat::PxeLive, OutputFormat::LiveIso],
        outdir: r.outdir.clone(),
        name,
        overwrite: r.overwrite,
        source_date_epoch: source_date_epoch_from_env()?,
        syntax: r.syntax.clone(),
        live,
        ..Default::default()
    };
    build_from_kickstart_file(&r.kickstart, opts)
        .with_context(|| format!("building the live image of {}", r.kickstart.display()))
}
