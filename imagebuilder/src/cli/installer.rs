//! `imagebuilder installer`: clap type and dispatch to the image build with the installer ISO.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use imagebuilder::build::kickstart::{KickstartImageOptions, source_date_epoch_from_env};
use imagebuilder::build::publish::OutputFormat;

use super::image::LiveArgs;

/// Build an installer ISO from an OSTree commit and a kickstart
///
/// With --native: a hybrid BIOS/UEFI ISO whose live system (the commit, booted live) installs the
/// kickstart's disk onto the machine's disk unattended, then reboots, powers off or halts as the
/// kickstart says. The disk is the one the kickstart names (ignoredisk --only-use, clearpart
/// --drives, part --ondisk), else the first that is not the boot medium; --grow partitions and
/// logical volumes grow to fill it. Writes OUTDIR/NAME.installer.iso, metadata.json, SHA256SUMS.
#[derive(Debug, Args)]
pub struct InstallerArgs {
    /// Build the native unattended installer (no lorax, no Anaconda)
    #[arg(long)]
    native: bool,
    /// Kickstart with ostreesetup and the disk layout to install
    #[arg(short = 'k', long, value_name = "KS")]
    kickstart: PathBuf,
    /// Kickstart syntax version (F21…F46, RHEL7…RHEL11, DEVEL, or auto)
    #[arg(long, default_value = "auto", value_parser = super::ks::syntax)]
    syntax: String,
    /// Pull the commit from this local OSTree repository instead of the kickstart's URL (the
    /// installed system's remote stays the kickstart's `ostreesetup --url`)
    #[arg(long, value_name = "REPO")]
    ostreerepo: Option<PathBuf>,
    /// Output directory
    #[arg(short = 'o', long = "outputdir", value_name = "OUTDIR")]
    outdir: PathBuf,
    /// Replace existing outputs in OUTDIR
    #[arg(long)]
    overwrite: bool,
    /// Base name of the ISO (default: the kickstart's file name without extension)
    #[arg(long)]
    name: Option<String>,
    /// Do not verify the commit's GPG signature (like `ostreesetup --nogpg`)
    #[arg(long)]
    nogpg: bool,
    /// Trust this GPG public key for the remote (repeatable)
    #[arg(long = "gpg-key", value_name = "FILE")]
    gpg_keys: Vec<PathBuf>,
    #[command(flatten)]
    live: LiveArgs,
    /// Print the build result as JSON on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(a: InstallerArgs) -> Result<ExitCode> {
    if !a.native {
        bail!(
            "only the native installer is built here: pass --native (lorax's Anaconda installer \
             needs a Fedora host or container)"
        );
    }
    let opts = KickstartImageOptions {
        ostree_repo: a.ostreerepo,
        preserve_ks_url: true,
        nogpg: a.nogpg,
        gpg_keys: a.gpg_keys,
        formats: vec![OutputFormat::InstallerIso],
        outdir: a.outdir,
        name: a.name,
        overwrite: a.overwrite,
        source_date_epoch: source_date_epoch_from_env()?,
        syntax: Some(a.syntax),
        live: a.live.options(),
        ..KickstartImageOptions::default()
    };
    super::image::build_and_print(&a.kickstart, opts, a.json)
}
