//! `imagebuilder image`: kickstart + OSTree commit → disk images (raw, raw.xz, qcow2, Vagrant boxes)
//! and live images (PXE-to-Live, live ISO).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use imagebuilder::build::BuildResult;
use imagebuilder::build::kickstart::{
    KickstartImageOptions, build_from_kickstart_file, source_date_epoch_from_env,
};
use imagebuilder::build::publish::OutputFormat;

/// Options of `imagebuilder image` (rpm-ostree-toolbox `imagefactory` names where they exist).
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Kickstart file describing the disk, bootloader and `ostreesetup`
    #[arg(long, value_name = "KS")]
    kickstart: PathBuf,
    /// Kickstart syntax version: F21…F46, RHEL7…RHEL11, DEVEL, or auto (the file's #version=
    /// line, else DEVEL)
    #[arg(long, default_value = "auto", value_parser = super::ks::syntax)]
    syntax: String,
    /// Pull the commit from this local OSTree repository instead of the kickstart's URL
    #[arg(long, value_name = "REPO")]
    ostreerepo: Option<PathBuf>,
    /// Keep the kickstart's `ostreesetup --url` as the image's remote even with --ostreerepo
    #[arg(long)]
    preserve_ks_url: bool,
    /// Ref to deploy (overrides `ostreesetup --ref`)
    #[arg(long = "ref", value_name = "REF")]
    reference: Option<String>,
    /// Output format; repeat for several: raw, raw.xz (alias raw-xz), qcow2 (alias kvm),
    /// vagrant-libvirt, vagrant-virtualbox, pxe-live (directory NAME.pxe/), live-iso,
    /// installer-iso (NAME.installer.iso). All come from one deployment; the disk formats and the
    /// installer's image from one raw disk
    #[arg(short = 'i', long = "image-type", value_name = "FORMAT", required = true, value_parser = parse_format)]
    formats: Vec<OutputFormat>,
    /// Output directory
    #[arg(short = 'o', long = "outputdir", value_name = "OUTDIR")]
    outdir: PathBuf,
    /// Replace existing outputs in OUTDIR
    #[arg(long)]
    overwrite: bool,
    /// Total disk size (e.g. 8G, 6144M; a bare number is GiB); grows the last --grow partition
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,
    /// Base name of the output files (default: the kickstart's file name without extension)
    #[arg(long)]
    name: Option<String>,
    /// Koji naming: outputs become NAME-VERSION-RELEASE.ARCH.<ext> (needs --release)
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    /// Koji naming: the release part of NAME-VERSION-RELEASE.ARCH (needs --version)
    #[arg(long, value_name = "RELEASE")]
    release: Option<String>,
    /// Koji naming: the architecture part (default: this machine's, e.g. x86_64)
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// Do not verify the commit's GPG signature (like `ostreesetup --nogpg`)
    #[arg(long)]
    nogpg: bool,
    /// Trust this GPG public key for the remote (repeatable)
    #[arg(long = "gpg-key", value_name = "FILE")]
    gpg_keys: Vec<PathBuf>,
    /// Compress the qcow2 output (deflate clusters, like `qemu-img convert -c`)
    #[arg(long)]
    compress: bool,
    #[command(flatten)]
    live: LiveArgs,
    /// Print the build result as JSON on stdout
    #[arg(long)]
    json: bool,
}

/// Options of the live outputs, shared by `image` and `liveimage`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Base URL the PXE configs fetch live-rootfs.squashfs.img from (default: the literal
    /// `<URL>` placeholder, as livemedia-creator writes it)
    #[arg(long, value_name = "URL")]
    live_url: Option<String>,
    /// Volume id of the live ISO (at most 32 characters; default: from the output name)
    #[arg(long, value_name = "VOLID")]
    volid: Option<String>,
}

impl LiveArgs {
    pub fn options(self) -> imagebuilder::build::LiveOptions {
        imagebuilder::build::LiveOptions {
            url: self.live_url.map(|u| u.trim_end_matches('/').to_string()),
            volume_id: self.volid,
            pxe_dir: None,
        }
    }
}

pub fn parse_format(s: &str) -> Result<OutputFormat, String> {
    match s {
        "kvm" => Ok(OutputFormat::Qcow2),
        _ => OutputFormat::parse(s).ok_or_else(|| {
            format!(
                "unknown image type `{s}`; valid types: {}, kvm (= qcow2)",
                OutputFormat::NAMES
            )
        }),
    }
}

/// Parses `8G`, `512M`, `1T`, `8` (GiB) into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1u64 << 30),
        Some((i, _)) => {
            let unit = s[i..]
                .trim_end_matches(['i', 'B', 'b'])
                .to_ascii_uppercase();
            let m = match unit.as_str() {
                "K" => 1u64 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown size unit in `{s}` (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
    };
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let max = (imagebuilder::plan::request::MAX_DISK_MIB) << 20;
    match n.checked_mul(mult) {
        Some(0) => Err(format!("`{s}` is not a positive size")),
        Some(b) if b <= max => Ok(b),
        _ => Err(format!(
            "`{s}` is larger than the largest disk image this builder writes ({} TiB)",
            (max >> 40) + 1
        )),
    }
}

pub fn run(a: ImageArgs) -> Result<ExitCode> {
    imagebuilder::host::preflight(&imagebuilder::host::Target::images(&a.formats))?;
    let opts = KickstartImageOptions {
        ostree_repo: a.ostreerepo,
        preserve_ks_url: a.preserve_ks_url,
        reference: a.reference,
        nogpg: a.nogpg,
        gpg_keys: a.gpg_keys,
        formats: a.formats,
        qcow2_compress: a.compress,
        outdir: a.outdir.clone(),
        name: a.name,
        version: a.version,
        release: a.release,
        arch: a.arch,
        overwrite: a.overwrite,
        size: a.size,
        source_date_epoch: source_date_epoch_from_env()?,
        syntax: Some(a.syntax),
        live: a.live.options(),
    };
    build_and_print(&a.kickstart, opts, a.json)
}

/// Builds `kickstart` with `opts` and prints the result (JSON, or one line per output).
pub fn build_and_print(
    kickstart: &std::path::Path,
    opts: KickstartImageOptions,
    json: bool,
) -> Result<ExitCode> {
    let outdir = opts.outdir.clone();
    let result = build_from_kickstart_file(kickstart, opts)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_result(&outdir, &result);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per output file, then the commit and the log.
pub fn print_result(outdir: &std::path::Path, result: &BuildResult) {
    for o in &result.outputs {
        println!("{}", outdir.join(&o.file).display());
    }
    println!(
        "commit {} ({}), log {}",
        result.commit,
        result.reference,
        result.log.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8"), Ok(8 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("3X").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(parse_size("15T"), Ok(15 << 40));
        let big = parse_size("100T").unwrap_err();
        assert!(
            big.contains("larger than the largest disk image") && big.contains("16 TiB"),
            "{big}"
        );
        assert!(
            parse_size("0G")
                .unwrap_err()
                .contains("not a positive size")
        );
        assert!(parse_size("99999999999999999999T").is_err());
    }
}
