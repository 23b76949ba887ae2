//! `imagebuilder liveimage`: clap type and dispatch to [`imagebuilder::build::liveimage`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use imagebuilder::build::liveimage::{IMAGES_DIR, LiveimageRequest, liveimage};
use imagebuilder::build::publish::OutputFormat;

use super::image::LiveArgs;

/// Build PXE-to-Live artifacts and a live ISO from an OSTree commit and a kickstart
///
/// rpm-ostree-toolbox's `liveimage`, without a VM: OUTDIR/images/ gets livemedia-creator's
/// files (vmlinuz-KVER, initramfs-KVER.img, live-rootfs.squashfs.img, PXE_CONFIG) plus
/// ready-to-serve pxelinux, GRUB and iPXE configs; OUTDIR/NAME.iso is the same system as a
/// hybrid live ISO.
#[derive(Debug, Args)]
pub struct LiveimageArgs {
    /// Output directory; must not exist unless --overwrite
    #[arg(short = 'o', long = "outputdir", value_name = "OUTDIR")]
    outdir: PathBuf,
    /// PXE-to-Live kickstart (with ostreesetup and part /)
    #[arg(short = 'k', long, value_name = "KS")]
    kickstart: PathBuf,
    /// config.ini (os_name, release, ostree_repo…)
    #[arg(short = 'c', long, value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Config profile
    #[arg(short = 'p', long, value_name = "PROFILE")]
    profile: Option<String>,
    /// Oz TDL (accepted for compatibility; no VM is used)
    #[arg(long, value_name = "TDL")]
    tdl: Option<PathBuf>,
    /// Pull the commit from this local OSTree repository (default: the config's ostree_repo,
    /// $OSTREE_REPO, ./repo, else the kickstart's ostreesetup --url)
    #[arg(long, value_name = "REPO")]
    ostreerepo: Option<String>,
    /// Keep the kickstart's `ostreesetup --url` as the system's remote even with --ostreerepo
    #[arg(long)]
    preserve_ks_url: bool,
    /// Replace the outputs in an existing OUTDIR
    #[arg(long)]
    overwrite: bool,
    /// Base name of the ISO (default: the config's os_name-release, else the kickstart's name)
    #[arg(long)]
    name: Option<String>,
    /// Kickstart syntax version (F21…F46, RHEL7…RHEL11, DEVEL, or auto)
    #[arg(long, default_value = "auto", value_parser = super::ks::syntax)]
    syntax: String,
    #[command(flatten)]
    live: LiveArgs,
    /// Print the build result as JSON on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(a: LiveimageArgs) -> Result<ExitCode> {
    imagebuilder::host::preflight(&imagebuilder::host::Target::images(&[
        OutputFormat::PxeLive,
        OutputFormat::LiveIso,
    ]))?;
    let config = match &a.config {
        Some(c) => {
            let loaded = imagebuilder::config::load(c, a.profile.as_deref())?;
            for w in &loaded.warnings {
                tracing::warn!("{}: {w}", c.display());
            }
            Some(loaded)
        }
        None => None,
    };
    let req = LiveimageRequest {
        kickstart: a.kickstart,
        config,
        tdl: a.tdl,
        ostree_repo: a.ostreerepo,
        preserve_ks_url: a.preserve_ks_url,
        outdir: a.outdir.clone(),
        overwrite: a.overwrite,
        name: a.name,
        syntax: Some(a.syntax),
        live: a.live.options(),
    };
    let result = liveimage(&req)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!("{}", a.outdir.join(IMAGES_DIR).display());
        for o in result.outputs.iter().filter(|o| !o.file.contains('/')) {
            println!("{}", a.outdir.join(&o.file).display());
        }
        println!(
            "commit {} ({}), log {}",
            result.commit,
            result.reference,
            result.log.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
