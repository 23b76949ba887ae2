//! `imagebuilder demo`: the README's main job.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use imagebuilder::build::publish::OutputFormat;
use imagebuilder::host::Target;

/// Build the demo tree, the demo qcow2 from kickstarts/demo-qcow2.ks, and boot it (BIOS)
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output directory
    #[arg(short = 'o', long = "outputdir", default_value = "out/demo")]
    outdir: PathBuf,
    /// Build the image but do not boot it
    #[arg(long)]
    no_boot: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let mut needs = vec![Target::Image(OutputFormat::Qcow2)];
    if !a.no_boot {
        needs.push(Target::BootTest);
    }
    imagebuilder::host::preflight(&needs)?;
    let r = imagebuilder::build::demo::run_demo(&a.outdir, !a.no_boot)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("image: {}", r.image.display());
    println!("commit: {} ({})", r.build.commit, r.build.reference);
    match &r.booted {
        Some(b) => println!(
            "booted (BIOS, QEMU {}): {} on the console after {:.0} s; serial log {}",
            imagebuilder::boot_test::auto_accel(),
            imagebuilder::build::demo::DEMO_MARKER,
            b.marker_seconds
                .or(b.login_prompt_seconds)
                .unwrap_or_default(),
            b.serial_log.display()
        ),
        None => println!("not booted (--no-boot)"),
    }
    Ok(ExitCode::SUCCESS)
}
