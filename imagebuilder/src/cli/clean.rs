//! `imagebuilder clean OUTDIR`: removes what a killed build left in its output directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

/// Remove what a killed build left in OUTDIR: its `.imagebuilder-*` staging entries, after
/// unmounting what is mounted below them and detaching loop devices backed by files in them.
/// Refused while a build holds OUTDIR.
#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The output directory of `imagebuilder image -o` (for `imagefactory -o DIR`: DIR/images)
    #[arg(value_name = "OUTDIR")]
    outdir: PathBuf,
    /// Print what was removed as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(a: CleanArgs) -> Result<ExitCode> {
    let report = imagebuilder::build::outdir::clean(&a.outdir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.is_empty() {
        println!("nothing to clean in {}", a.outdir.display());
    } else {
        for l in report.lines() {
            println!("{l}");
        }
    }
    if let Some(e) = report.errors.first() {
        bail!(
            "{} could not be cleaned completely: {e}",
            a.outdir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
