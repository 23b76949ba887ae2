//! The ImageFactory/Oz hand-off, in rpm-ostree-toolbox's shape (toolbox-workflow.md §2.4, §7;
//! formats.md §2): when the `imagefactory` program is installed, run the real `base_image` /
//! `target_image` chain with ImageFactory's parameter names and package the results under
//! `OUTDIR/images` like the toolbox did; and write a Koji `image-build` config for the same inputs.
//!
//! The plan (which commands, in which order, with which parameters) is plain data built by pure
//! functions ([`base_image_args`], [`target_image_args`], [`koji_config`]), so it is testable alone;
//! [`run_chain`] executes it. [`run_native`] builds the disk types (kvm, raw) with imagebuilder's own
//! disk builder instead, where ImageFactory is not available.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use crate::build::BuildResult;
use crate::build::kickstart::{
    KickstartImageOptions, build_from_kickstart_file, source_date_epoch_from_env,
};
use crate::build::publish::OutputFormat;
use crate::tdl::{Install, Template};
use crate::util::cmd::CommandExt;

/// The program this module drives.
pub const PROGRAM: &str = "imagefactory";
/// Where ImageFactory's file image manager keeps `<UUID>.body` by default.
pub const DEFAULT_STORAGE: &str = "/var/lib/imagefactory/storage";
/// Guest path of the Vagrant synced folder (the default `/vagrant` is not writable on an OSTree host).
pub const VAGRANT_SYNC_DIRECTORY: &str = "/home/vagrant/sync";

/// The toolbox's image types (`-i`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageType {
    Kvm,
    Raw,
    Vsphere,
    Rhevm,
    VagrantVirtualbox,
    VagrantLibvirt,
    Hyperv,
    Azure,
}

pub const ALL_TYPES: &[ImageType] = &[
    ImageType::Kvm,
    ImageType::Raw,
    ImageType::Vsphere,
    ImageType::Rhevm,
    ImageType::VagrantVirtualbox,
    ImageType::VagrantLibvirt,
    ImageType::Hyperv,
    ImageType::Azure,
];

impl ImageType {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageType::Kvm => "kvm",
            ImageType::Raw => "raw",
            ImageType::Vsphere => "vsphere",
            ImageType::Rhevm => "rhevm",
            ImageType::VagrantVirtualbox => "vagrant-virtualbox",
            ImageType::VagrantLibvirt => "vagrant-libvirt",
            ImageType::Hyperv => "hyperv",
            ImageType::Azure => "azure",
        }
    }

    pub fn is_vagrant(self) -> bool {
        matches!(
            self,
            ImageType::VagrantLibvirt | ImageType::VagrantVirtualbox
        )
    }

    /// The Koji `image-build --format` that produces the same artifact.
    pub fn koji_format(self) -> &'static str {
        match self {
            ImageType::Kvm => "qcow2",
            ImageType::Raw => "raw",
            ImageType::Vsphere => "vsphere-ova",
            ImageType::Rhevm => "rhevm-ova",
            ImageType::VagrantVirtualbox => "vagrant-virtualbox",
            ImageType::VagrantLibvirt => "vagrant-libvirt",
            ImageType::Hyperv | ImageType::Azure => "vpc",
        }
    }

    /// For OVA-packaged types: (first target, OVA parameter) of the two-step target chain.
    fn ova_chain(self) -> Option<(&'static str, Option<(&'static str, &'static str)>)> {
        match self {
            ImageType::Rhevm => Some(("rhevm", None)),
            ImageType::Vsphere => Some(("vsphere", None)),
            ImageType::VagrantLibvirt => {
                Some(("rhevm", Some(("rhevm_ova_format", "vagrant-libvirt"))))
            }
            ImageType::VagrantVirtualbox => Some((
                "vsphere",
                Some(("vsphere_ova_format", "vagrant-virtualbox")),
            )),
            _ => None,
        }
    }
}

impl FromStr for ImageType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL_TYPES
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s} is not a valid image type. The valid types are {}",
                    ALL_TYPES
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Everything one run needs, validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub tdl_path: PathBuf,
    pub tdl: Template,
    pub kickstart: PathBuf,
    /// Kickstart of the vagrant types (the toolbox's `--vkickstart`); default: `kickstart`.
    pub vagrant_kickstart: Option<PathBuf>,
    pub types: Vec<ImageType>,
    /// Prefix of OVA/box names (`--name`); default `os_nr`.
    pub name: String,
    /// `<os_name>-<release>`: prefix of qcow2/raw/vhd names.
    pub os_nr: String,
    pub compression: bool,
    /// Extra OVA parameters (`vsphere_product_name`, …) passed to every target build.
    pub ova_parameters: BTreeMap<String, String>,
}

impl Request {
    /// Reads and validates the TDL and checks the kickstarts exist.
    pub fn new(
        tdl_path: &Path,
        kickstart: &Path,
        vagrant_kickstart: Option<&Path>,
        types: Vec<ImageType>,
    ) -> Result<Request> {
        let text = crate::util::fsutil::read_input(tdl_path, "TDL", crate::tdl::MAX_FILE_BYTES)?;
        let tdl = crate::tdl::parse(&text)
            .map_err(|e| anyhow::anyhow!("TDL {} is invalid:\n{e}", tdl_path.display()))?;
        for ks in std::iter::once(kickstart).chain(vagrant_kickstart) {
            if !ks.exists() {
                bail!("kickstart {} does not exist", ks.display());
            }
            crate::util::fsutil::check_input(ks, "kickstart", kickstart::loader::MAX_FILE_BYTES)?;
        }
        let mut types = if types.is_empty() {
            ALL_TYPES.to_vec()
        } else {
            types
        };
        types.sort();
        types.dedup();
        let os_nr = tdl.name.clone();
        Ok(Request {
            tdl_path: tdl_path.to_path_buf(),
            name: os_nr.clone(),
            os_nr,
            tdl,
            kickstart: kickstart.to_path_buf(),
            vagrant_kickstart: vagrant_kickstart.map(Path::to_path_buf),
            types,
            compression: true,
            ova_parameters: BTreeMap::new(),
        })
    }

    fn vagrant_ks(&self) -> &Path {
        self.vagrant_kickstart.as_deref().unwrap_or(&self.kickstart)
    }
}

/// Oz overrides the toolbox passed: qcow2 images, at least 2 GiB of memory, 2 CPUs.
pub const OZ_OVERRIDES: &str =
    r#"{"libvirt": {"image_type": "qcow2", "memory": 2048, "cpus": "2"}}"#;

/// `imagefactory --verbose base_image …` for one kickstart.
pub fn base_image_args(tdl: &Path, kickstart: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["--verbose", "base_image"].map(Into::into).to_vec();
    a.extend(["--parameter", "generate_icicle", "false"].map(Into::into));
    a.extend(["--parameter", "oz_overrides", OZ_OVERRIDES].map(Into::into));
    a.extend([
        "--file-parameter".into(),
        "install_script".into(),
        kickstart.into(),
    ]);
    a.push(tdl.into());
    a
}

/// `imagefactory --verbose target_image --id ID [--parameter K V]… TARGET`.
pub fn target_image_args(
    id: &str,
    target: &str,
    params: &BTreeMap<String, String>,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["--verbose", "target_image", "--id", id]
        .map(Into::into)
        .to_vec();
    for (k, v) in params {
        a.extend(["--parameter".into(), k.into(), v.into()]);
    }
    a.push(target.into());
    a
}

/// What ImageFactory reported about a finished build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub id: String,
    pub data: PathBuf,
}

/// Reads the UUID (and image file, if printed) from ImageFactory's CLI output. ImageFactory ends a
/// build with `UUID: …`, `Status: …` and `Image filename: …` lines; without the last one the file is
/// `<storage>/<UUID>.body`.
pub fn parse_built(stdout: &str, storage: &Path) -> Result<Built> {
    let field = |key: &str| {
        stdout
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
    };
    let id = field("UUID:").context("imagefactory printed no `UUID:` line")?;
    if let Some(status) = field("Status:")
        && !status.eq_ignore_ascii_case("COMPLETE")
    {
        bail!("imagefactory build {id} ended with status {status}");
    }
    let data = field("Image filename:")
        .map(PathBuf::from)
        .unwrap_or_else(|| storage.join(format!("{id}.body")));
    Ok(Built { id, data })
}

/// The image types `--native` (imagebuilder's own disk builder) makes, and their formats.
pub const NATIVE_TYPES: &[(ImageType, OutputFormat)] = &[
    (ImageType::Kvm, OutputFormat::Qcow2),
    (ImageType::Raw, OutputFormat::Raw),
];

/// The native builder's formats for `types`; a type it does not make is an error naming it.
pub fn native_formats(types: &[ImageType]) -> Result<Vec<OutputFormat>> {
    types
        .iter()
        .map(|t| {
            NATIVE_TYPES
                .iter()
                .find(|(n, _)| n == t)
                .map(|(_, f)| *f)
                .with_context(|| {
                    format!(
                        "image type `{}` is not supported with --native: imagebuilder's disk builder \
                         makes {} (qcow2) and {}; build `{}` with ImageFactory or hand it to Koji \
                         (--koji-config)",
                        t.as_str(),
                        NATIVE_TYPES[0].0.as_str(),
                        NATIVE_TYPES[1].0.as_str(),
                        t.as_str()
                    )
                })
        })
        .collect()
}

/// `--native`: builds the request's types from its kickstart with imagebuilder's own disk builder
/// ([`crate::build::kickstart::build_from_kickstart_file`], as `imagebuilder image` does) into
/// `OUTDIR/images/<os_nr>.{qcow2,raw}`, the names the ImageFactory chain uses. `OUTDIR` must not
/// exist unless `overwrite`. `ostree_repo` pulls from a local repository instead of the
/// kickstart's URL (as `imagebuilder image --ostreerepo`).
pub fn run_native(
    req: &Request,
    outdir: &Path,
    overwrite: bool,
    ostree_repo: Option<&Path>,
    syntax: Option<&str>,
) -> Result<BuildResult> {
    let formats = native_formats(&req.types)?;
    if outdir.exists() && !overwrite {
        bail!(
            "The directory {} already exists (use --overwrite)",
            outdir.display()
        );
    }
    let opts = KickstartImageOptions {
        ostree_repo: ostree_repo.map(Path::to_path_buf),
        formats,
        outdir: outdir.join("images"),
        name: Some(req.os_nr.clone()),
        overwrite,
        source_date_epoch: source_date_epoch_from_env()?,
        syntax: syntax.map(str::to_string),
        ..Default::default()
    };
    build_from_kickstart_file(&req.kickstart, opts)
        .with_context(|| format!("building {} natively", req.kickstart.display()))
}

/// Runs the chain and fills `OUTDIR/images` (+ `SHA256SUMS`) and `OUTDIR/logs`. The output appears
/// whole or not at all: everything is built in a sibling temporary directory, renamed at the end.
pub fn run_chain(
    req: &Request,
    outdir: &Path,
    overwrite: bool,
    storage: &Path,
) -> Result<Vec<PathBuf>> {
    let program = crate::util::cmd::find_in_path(PROGRAM).with_context(|| {
        format!(
            "`{PROGRAM}` is not installed (it is not packaged for Debian), so the ImageFactory/Oz chain \
             cannot run here. Use `--native` to build the images with imagebuilder's own disk builder, \
             or `--koji-config FILE` to hand the build to Koji."
        )
    })?;
    if outdir.exists() && !overwrite {
        bail!(
            "The directory {} already exists (use --overwrite)",
            outdir.display()
        );
    }
    let parent = crate::util::fsutil::parent_dir(outdir);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".imagebuilder-imagefactory-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let images = staging.path().join("images");
    std::fs::create_dir_all(&images)?;
    std::fs::create_dir_all(staging.path().join("logs"))?;

    let factory = |args: Vec<OsString>| -> Result<Built> {
        let out = Command::new(&program).args(&args).run_text()?;
        parse_built(&out, storage)
    };

    let disk_types: Vec<ImageType> = req
        .types
        .iter()
        .copied()
        .filter(|t| !t.is_vagrant())
        .collect();
    if !disk_types.is_empty() {
        tracing::info!(
            "building the base image from {} (Oz installs it in a VM; this takes a while)",
            req.kickstart.display()
        );
        let base = factory(base_image_args(&req.tdl_path, &req.kickstart))
            .context("ImageFactory base_image")?;
        let qcow2 = images.join(format!("{}.qcow2", req.os_nr));
        std::fs::copy(&base.data, &qcow2)
            .with_context(|| format!("copying {} to {}", base.data.display(), qcow2.display()))?;
        for t in &disk_types {
            match t {
                ImageType::Raw => {
                    let out = images.join(format!("{}.raw", req.os_nr));
                    Command::new("qemu-img")
                        .args(["convert", "-f", "qcow2", "-O", "raw"])
                        .arg(&qcow2)
                        .arg(&out)
                        .run()?;
                }
                ImageType::Hyperv => {
                    let out = images.join(format!("{}-hyperv.vhd", req.os_nr));
                    Command::new("qemu-img")
                        .args(["convert", "-f", "qcow2", "-O", "vpc"])
                        .arg(&qcow2)
                        .arg(&out)
                        .run()?;
                }
                ImageType::Azure => azure(
                    &qcow2,
                    &images.join(format!("{}-azure.vhd", req.os_nr)),
                    req.compression,
                )?,
                ImageType::Rhevm | ImageType::Vsphere => {
                    ova(req, &base.id, *t, &images, &factory)?;
                }
                _ => {}
            }
        }
        if req.compression {
            Command::new("gzip").arg("-n").arg(&qcow2).run()?;
        }
    }
    let vagrant_types: Vec<ImageType> = req
        .types
        .iter()
        .copied()
        .filter(|t| t.is_vagrant())
        .collect();
    if !vagrant_types.is_empty() {
        tracing::info!(
            "building the Vagrant base image from {}",
            req.vagrant_ks().display()
        );
        let base = factory(base_image_args(&req.tdl_path, req.vagrant_ks()))
            .context("ImageFactory base_image (vagrant)")?;
        for t in vagrant_types {
            ova(req, &base.id, t, &images, &factory)?;
        }
    }

    sha256sums(&images)?;
    if outdir.exists() {
        std::fs::remove_dir_all(outdir)
            .with_context(|| format!("removing {}", outdir.display()))?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, outdir)
        .with_context(|| format!("moving results to {}", outdir.display()))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(outdir.join("images"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

fn ova(
    req: &Request,
    base: &str,
    t: ImageType,
    images: &Path,
    factory: &dyn Fn(Vec<OsString>) -> Result<Built>,
) -> Result<()> {
    let Some((target, ova_param)) = t.ova_chain() else {
        return Ok(());
    };
    let mut params = req.ova_parameters.clone();
    if t.is_vagrant() {
        params.insert(
            "vagrant_sync_directory".into(),
            VAGRANT_SYNC_DIRECTORY.into(),
        );
    }
    let first = factory(target_image_args(base, target, &params))
        .with_context(|| format!("ImageFactory target_image {target} for {}", t.as_str()))?;
    if let Some((k, v)) = ova_param {
        params.insert(k.into(), v.into());
    }
    let pkg = factory(target_image_args(&first.id, "ova", &params))
        .with_context(|| format!("ImageFactory target_image ova for {}", t.as_str()))?;
    let ext = if t.is_vagrant() { "box" } else { "ova" };
    let out = images.join(format!("{}-{}.{ext}", req.name, t.as_str()));
    std::fs::copy(&pkg.data, &out)
        .with_context(|| format!("copying {} to {}", pkg.data.display(), out.display()))?;
    Ok(())
}

/// Azure: raw, resized up to a whole MiB (+1), fixed-size VPC; zipped unless uncompressed.
fn azure(qcow2: &Path, vhd: &Path, compress: bool) -> Result<()> {
    let raw = vhd.with_extension("raw.tmp");
    Command::new("qemu-img")
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(qcow2)
        .arg(&raw)
        .run()?;
    let info = Command::new("qemu-img")
        .args(["info", "-f", "raw", "--output", "json"])
        .arg(&raw)
        .run_text()?;
    let v: serde_json::Value = serde_json::from_str(&info).context("parsing qemu-img info")?;
    let size = v["virtual-size"]
        .as_u64()
        .context("qemu-img info: no virtual-size")?;
    const MIB: u64 = 1 << 20;
    let aligned = (size / MIB + 1) * MIB;
    Command::new("qemu-img")
        .args(["resize", "-f", "raw"])
        .arg(&raw)
        .arg(aligned.to_string())
        .run()?;
    Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-o",
            "subformat=fixed,force_size",
            "-O",
            "vpc",
        ])
        .arg(&raw)
        .arg(vhd)
        .run()?;
    std::fs::remove_file(&raw)?;
    if compress {
        let zip = PathBuf::from(format!("{}.zip", vhd.display()));
        Command::new("zip")
            .arg("-j")
            .arg("-m")
            .arg(&zip)
            .arg(vhd)
            .run()?;
    }
    Ok(())
}

/// `SHA256SUMS` over every file in `images` (entries `./name`, like the toolbox).
fn sha256sums(images: &Path) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(images)?
        .filter_map(|e| e.ok())
        .map(|e| format!("./{}", e.file_name().to_string_lossy()))
        .filter(|n| !n.ends_with("SUMS"))
        .collect();
    names.sort();
    let sums = if names.is_empty() {
        String::new()
    } else {
        Command::new("sha256sum")
            .current_dir(images)
            .args(&names)
            .run_text()?
    };
    crate::util::fsutil::write_atomic(&images.join("SHA256SUMS"), sums.as_bytes())
}

/// Options of the Koji config that the TDL and kickstart do not carry.
#[derive(Debug, Clone)]
pub struct KojiOptions {
    /// Koji build target, e.g. `f29-candidate`.
    pub target: String,
    /// Build name; default the TDL `<name>`.
    pub name: Option<String>,
    /// Build version; default the TDL `<os><version>`.
    pub version: Option<String>,
    pub release: Option<String>,
}

/// One Koji `image-build` config file: which kickstart and formats it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KojiConfig {
    pub kickstart: PathBuf,
    pub text: String,
}

/// Koji configs for the request: one per kickstart (Koji's image-build takes one kickstart, so the
/// vagrant types get their own config when they use a different kickstart).
pub fn koji_configs(req: &Request, opts: &KojiOptions) -> Result<Vec<KojiConfig>> {
    let vagrant: Vec<ImageType> = req
        .types
        .iter()
        .copied()
        .filter(|t| t.is_vagrant())
        .collect();
    let disk: Vec<ImageType> = req
        .types
        .iter()
        .copied()
        .filter(|t| !t.is_vagrant())
        .collect();
    let mut groups: Vec<(PathBuf, Vec<ImageType>)> = Vec::new();
    if req.vagrant_kickstart.is_some() && !vagrant.is_empty() && !disk.is_empty() {
        groups.push((req.kickstart.clone(), disk));
        groups.push((req.vagrant_ks().to_path_buf(), vagrant));
    } else if disk.is_empty() {
        groups.push((req.vagrant_ks().to_path_buf(), vagrant));
    } else {
        groups.push((req.kickstart.clone(), req.types.clone()));
    }
    groups
        .into_iter()
        .map(|(ks, types)| {
            Ok(KojiConfig {
                text: koji_config(req, opts, &ks, &types)?,
                kickstart: ks,
            })
        })
        .collect()
}

/// Renders one `[image-build]` config (koji `image-build --config FILE`).
pub fn koji_config(
    req: &Request,
    opts: &KojiOptions,
    kickstart: &Path,
    types: &[ImageType],
) -> Result<String> {
    let Install::Url { url } = &req.tdl.os.install else {
        bail!(
            "Koji image-build needs an install tree URL; TDL {} installs from an ISO",
            req.tdl_path.display()
        );
    };
    let os = &req.tdl.os;
    let distro = if os.name.contains('-') {
        format!("{}.{}", os.name, os.version)
    } else {
        format!("{}-{}", os.name, os.version)
    };
    let mut formats: Vec<&str> = Vec::new();
    for t in types {
        if !formats.contains(&t.koji_format()) {
            formats.push(t.koji_format());
        }
    }
    let ks_text =
        crate::util::fsutil::read_input(kickstart, "kickstart", kickstart::loader::MAX_FILE_BYTES)?;
    let ksversion = ks_text
        .lines()
        .find_map(|l| l.strip_prefix("#version="))
        .map(str::trim);
    let disk_gib = match &req.tdl.disk_size {
        Some(s) => {
            let bytes = crate::tdl::disk_size_bytes(s).map_err(anyhow::Error::msg)?;
            Some(bytes.div_ceil(1 << 30))
        }
        None => None,
    };
    let mut main: Vec<(&str, String)> = vec![
        (
            "name",
            opts.name.clone().unwrap_or_else(|| req.tdl.name.clone()),
        ),
        (
            "version",
            opts.version.clone().unwrap_or_else(|| os.version.clone()),
        ),
        ("target", opts.target.clone()),
        ("install_tree", url.clone()),
        ("arches", os.arch.clone()),
        ("format", formats.join(",")),
        ("distro", distro),
        ("kickstart", kickstart.display().to_string()),
    ];
    if let Some(r) = &opts.release {
        main.push(("release", r.clone()));
    }
    if let Some(v) = ksversion {
        main.push(("ksversion", v.to_string()));
    }
    if let Some(d) = disk_gib {
        main.push(("disk_size", d.to_string()));
    }
    let mut text = String::from(
        "# Koji image-build config written by `imagebuilder imagefactory --koji-config`.\n\
         # Submit with: koji image-build --config THIS_FILE [--scratch]\n\
         [image-build]\n",
    );
    let line = |text: &mut String, k: &str, v: &str| -> Result<()> {
        if v.contains(['\n', '\r', '%']) || v.trim() != v || v.is_empty() {
            bail!(
                "Koji config value for `{k}` ({v:?}) cannot be written safely (newline, `%`, or surrounding spaces)"
            );
        }
        text.push_str(&format!("{k} = {v}\n"));
        Ok(())
    };
    for (k, v) in &main {
        line(&mut text, k, v)?;
    }
    if types.iter().any(|t| t.is_vagrant()) {
        text.push_str("\n[factory-parameters]\n");
        line(&mut text, "vagrant_sync_directory", VAGRANT_SYNC_DIRECTORY)?;
    }
    if !req.ova_parameters.is_empty() {
        text.push_str("\n[ova-options]\n");
        for (k, v) in &req.ova_parameters {
            line(&mut text, k, v)?;
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imagefactory_output() {
        let out = "noise\nUUID: 1234-ab\nType: base_image\nStatus: COMPLETE\nImage filename: /s/1234-ab.body\n";
        let b = parse_built(out, Path::new("/x")).unwrap();
        assert_eq!(
            b,
            Built {
                id: "1234-ab".into(),
                data: "/s/1234-ab.body".into()
            }
        );
        let b = parse_built("UUID: u1\n", Path::new("/st")).unwrap();
        assert_eq!(b.data, Path::new("/st/u1.body"));
        assert!(parse_built("UUID: u\nStatus: FAILED\n", Path::new("/")).is_err());
        assert!(parse_built("nothing", Path::new("/")).is_err());
    }

    #[test]
    fn image_types() {
        assert_eq!(
            "vagrant-libvirt".parse::<ImageType>().unwrap(),
            ImageType::VagrantLibvirt
        );
        let e = "qcow".parse::<ImageType>().unwrap_err();
        assert!(e.contains("not a valid image type") && e.contains("azure"));
        assert_eq!(
            ImageType::VagrantVirtualbox.ova_chain(),
            Some((
                "vsphere",
                Some(("vsphere_ova_format", "vagrant-virtualbox"))
            ))
        );
    }
}
