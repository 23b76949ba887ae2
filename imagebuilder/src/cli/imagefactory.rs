//! `imagebuilder imagefactory`: clap type and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use imagebuilder::imagefactory::{self, ImageType, KojiOptions, Request};

/// Build VM images with ImageFactory/Oz from a TDL and a kickstart; write a Koji image-build config
///
/// rpm-ostree-toolbox's `imagefactory` subcommand: runs ImageFactory's base_image/target_image chain
/// when the `imagefactory` program is installed, and/or writes a Koji image-build config for the
/// same inputs (--koji-config).
#[derive(Debug, Args)]
pub struct ImagefactoryArgs {
    /// Oz TDL describing the install tree
    #[arg(long)]
    tdl: PathBuf,
    /// Kickstart (with ostreesetup) for the disk images
    #[arg(short, long)]
    kickstart: PathBuf,
    /// Kickstart for the vagrant types (default: --kickstart)
    #[arg(long)]
    vkickstart: Option<PathBuf>,
    /// Image type (repeatable): kvm raw vsphere rhevm vagrant-virtualbox vagrant-libvirt hyperv azure; default all
    #[arg(short, long = "images", value_name = "TYPE")]
    images: Vec<ImageType>,
    /// Output directory (receives images/ and logs/); must not exist unless --overwrite
    #[arg(short, long)]
    outputdir: Option<PathBuf>,
    /// Replace an existing output directory
    #[arg(long)]
    overwrite: bool,
    /// Prefix of OVA/box file names (default: the TDL name)
    #[arg(long)]
    name: Option<String>,
    /// Do not gzip/zip the results
    #[arg(long)]
    no_compression: bool,
    /// Build with imagebuilder's own disk builder instead of ImageFactory (types kvm and raw;
    /// without -i: both)
    #[arg(long)]
    native: bool,
    /// With --native: pull the commit from this local OSTree repository instead of the kickstart's URL
    #[arg(long, value_name = "REPO", requires = "native")]
    ostreerepo: Option<PathBuf>,
    /// With --native: kickstart syntax version (F21…F46, RHEL7…RHEL11, DEVEL, or auto: the
    /// file's #version= line, else DEVEL)
    #[arg(long, default_value = "auto", value_parser = super::ks::syntax, requires = "native")]
    syntax: String,
    /// Also write a Koji image-build config for these inputs to this file
    #[arg(long, value_name = "OUT", requires = "koji_target")]
    koji_config: Option<PathBuf>,
    /// Koji build target for --koji-config (e.g. f29-candidate)
    #[arg(long, value_name = "TARGET")]
    koji_target: Option<String>,
    /// Config (config.ini/.toml) supplying vsphere_* OVA parameters and os_name/release for file names
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Config profile
    #[arg(short, long)]
    profile: Option<String>,
    /// ImageFactory's image storage (where `<UUID>.body` files appear)
    #[arg(long, default_value = imagefactory::DEFAULT_STORAGE)]
    imagefactory_storage: PathBuf,
}

pub fn run(a: ImagefactoryArgs) -> Result<ExitCode> {
    let types = if a.native && a.images.is_empty() {
        imagefactory::NATIVE_TYPES.iter().map(|(t, _)| *t).collect()
    } else {
        a.images.clone()
    };
    let mut req = Request::new(&a.tdl, &a.kickstart, a.vkickstart.as_deref(), types)?;
    if let Some(cfg) = &a.config {
        let loaded = imagebuilder::config::load(cfg, a.profile.as_deref())?;
        let c = &loaded.config;
        req.os_nr = c.os_nr();
        req.name = c.os_nr();
        for (k, v) in [
            ("vsphere_product_name", &c.vsphere_product_name),
            (
                "vsphere_product_vendor_name",
                &c.vsphere_product_vendor_name,
            ),
            ("vsphere_product_version", &c.vsphere_product_version),
            (
                "vsphere_virtual_system_type",
                &c.vsphere_virtual_system_type,
            ),
        ] {
            if let Some(v) = v {
                req.ova_parameters.insert(k.to_string(), v.clone());
            }
        }
    }
    if let Some(n) = &a.name {
        req.name = n.clone();
    }
    req.compression = !a.no_compression;
    if a.koji_config.is_none() && a.outputdir.is_none() {
        bail!("nothing to do: give --outputdir to build images and/or --koji-config OUT");
    }
    if a.native {
        // Refuse unsupported types, and a host that cannot build them, before anything is
        // written (Koji config included).
        let formats = imagefactory::native_formats(&req.types)?;
        if a.outputdir.is_some() {
            imagebuilder::host::preflight(&imagebuilder::host::Target::images(&formats))?;
        }
    }
    if let Some(out) = &a.koji_config {
        let opts = KojiOptions {
            target: a.koji_target.clone().context("--koji-target is required")?,
            name: None,
            version: None,
            release: None,
        };
        let configs = imagefactory::koji_configs(&req, &opts)?;
        let paths = koji_paths(out, configs.len());
        for (cfg, path) in configs.iter().zip(&paths) {
            imagebuilder::util::fsutil::write_atomic(path, cfg.text.as_bytes())?;
            println!("{} (kickstart {})", path.display(), cfg.kickstart.display());
        }
    }
    if let Some(outdir) = &a.outputdir
        && a.native
    {
        let result = imagefactory::run_native(
            &req,
            outdir,
            a.overwrite,
            a.ostreerepo.as_deref(),
            Some(&a.syntax),
        )?;
        super::image::print_result(&outdir.join("images"), &result);
    } else if let Some(outdir) = &a.outputdir {
        let files = imagefactory::run_chain(&req, outdir, a.overwrite, &a.imagefactory_storage)?;
        for f in files {
            println!("{}", f.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `OUT`, and for a second (vagrant) config `OUT` with `-vagrant` before the extension.
fn koji_paths(out: &std::path::Path, n: usize) -> Vec<PathBuf> {
    let mut v = vec![out.to_path_buf()];
    if n > 1 {
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match out.extension() {
            Some(e) => format!("{stem}-vagrant.{}", e.to_string_lossy()),
            None => format!("{stem}-vagrant"),
        };
        v.push(out.with_file_name(name));
    }
    v
}
