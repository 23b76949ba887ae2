//! The README's main job: build (or reuse) the demo OSTree tree, build the demo qcow2 from the
//! demo kickstart with `--ostreerepo` semantics, and boot it under QEMU (BIOS).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::build::BuildResult;
use crate::build::kickstart::{KickstartImageOptions, KickstartSource, build_from_kickstart};
use crate::build::publish::OutputFormat;

/// The demo kickstart (rendered by the templates area), embedded so the binary works anywhere.
pub const DEMO_KICKSTART: &str = include_str!("../../../kickstarts/demo-qcow2.ks");
/// What the demo kickstart's `%post` prints on the console at boot.
pub const DEMO_MARKER: &str = "IMAGEBUILDER-DEMO-BOOTED";

/// What the demo did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoResult {
    pub image: PathBuf,
    pub build: BuildResult,
    pub booted: Option<imagebuilder_boot::Report>,
}

mod imagebuilder_boot {
    /// The parts of the boot report the demo prints.
    #[derive(Debug, Clone, serde::Serialize)]
    pub struct Report {
        pub login_prompt_seconds: Option<f64>,
        /// When the `%post` marker appeared on the console.
        pub marker_seconds: Option<f64>,
        pub kernel_cmdline: Option<String>,
        pub serial_log: std::path::PathBuf,
    }
}

/// Runs the demo into `outdir` (replacing a previous demo there); boots it unless `boot` is false.
pub fn run_demo(outdir: &Path, boot: bool) -> Result<DemoResult> {
    let tree = crate::tree::demo::ensure_demo_tree(None).context("building the demo tree")?;
    let ks = kickstart::parse(DEMO_KICKSTART, kickstart::Version::devel())
        .map_err(|d| anyhow::anyhow!("{d}"))
        .context("parsing the embedded demo kickstart")?;
    let source = KickstartSource {
        name: "kickstarts/demo-qcow2.ks".into(),
        path: None,
        sha256: crate::build::publish::hex(&<sha2::Sha256 as sha2::Digest>::digest(DEMO_KICKSTART)),
    };
    let opts = KickstartImageOptions {
        ostree_repo: Some(tree.repo.clone()),
        formats: vec![OutputFormat::Qcow2],
        outdir: outdir.to_path_buf(),
        name: Some("demo".into()),
        overwrite: true,
        ..Default::default()
    };
    let build = build_from_kickstart(&ks, &source, opts)?;
    let image = outdir.join("demo.qcow2");
    let booted = if boot {
        let mut spec = crate::boot_test::BootSpec::new(&image);
        spec.markers = vec![DEMO_MARKER.to_string()];
        spec.timeout = Duration::from_secs(600);
        spec.work_dir = Some(outdir.join("logs/boot"));
        let report = crate::boot_test::run(&spec)?;
        report.ensure_success().context("booting the demo image")?;
        Some(imagebuilder_boot::Report {
            login_prompt_seconds: report.login_prompt_seconds,
            marker_seconds: report.markers.iter().find_map(|m| m.seconds),
            kernel_cmdline: report.kernel_cmdline,
            serial_log: report.serial_log,
        })
    } else {
        None
    };
    Ok(DemoResult {
        image,
        build,
        booted,
    })
}
