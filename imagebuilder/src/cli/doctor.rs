//! `imagebuilder doctor`: clap type and dispatch to [`imagebuilder::host`].

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use imagebuilder::build::publish::OutputFormat;
use imagebuilder::host::{self, Target};

/// Check what this host has of what the builder needs: programs, boot loader files, firmware,
/// root, loop devices, user namespaces, KVM; name the package of each missing one
///
/// Without -i, every image type, boot testing and the demo tree are checked. Exit status 0 when
/// everything they always need is there, 1 otherwise. Every build command runs the same check
/// before any work.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Image type to check for (repeatable; the -i values of `imagebuilder image`); default: all
    #[arg(short = 'i', long = "image-type", value_name = "FORMAT", value_parser = super::image::parse_format)]
    formats: Vec<OutputFormat>,
    /// Check for boot tests too (QEMU, UEFI firmware, KVM); implied without -i
    #[arg(long)]
    boot_test: bool,
    /// Print the report as JSON (with a schema_version) on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(a: DoctorArgs) -> Result<ExitCode> {
    let mut targets: Vec<Target> = if a.formats.is_empty() {
        Target::all_images()
    } else {
        a.formats.iter().map(|&f| Target::Image(f)).collect()
    };
    targets.dedup();
    if a.boot_test || a.formats.is_empty() {
        targets.push(Target::BootTest);
    }
    if a.formats.is_empty() {
        targets.push(Target::DemoTree);
    }
    let report = host::check(&targets);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
