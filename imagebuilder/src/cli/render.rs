//! `imagebuilder render`: clap type and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use imagebuilder::render::{self, Templates};

/// Render kickstarts and TDL files from a config.ini (or .toml) and the templates
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Config file (rpm-ostree-toolbox config.ini keys; `.toml` for the TOML form)
    #[arg(short, long)]
    config: PathBuf,
    /// Profile (config section) to render; default: DEFAULT and every section
    #[arg(short, long)]
    profile: Option<String>,
    /// Directory that receives `kickstarts/` and `tdl/`
    #[arg(short, long, default_value = ".")]
    output_dir: PathBuf,
    /// Load templates from this directory instead of the built-in ones
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Print what would be written and render nothing to disk
    #[arg(long)]
    dry_run: bool,
    /// Write nothing; exit 1 if any file under the output directory differs from what would be rendered
    #[arg(long, conflicts_with = "dry_run")]
    check: bool,
}

pub fn run(args: RenderArgs) -> Result<ExitCode> {
    let templates = match &args.templates {
        Some(dir) => Templates::from_dir(dir)?,
        None => Templates::builtin()?,
    };
    let rendered = render::render_config(&args.config, args.profile.as_deref(), &templates)?;
    if args.check {
        let stale = render::stale_outputs(&args.output_dir, &rendered);
        for p in &stale {
            eprintln!("{}: differs from what `render` produces", p.display());
        }
        return Ok(if stale.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if !args.dry_run {
        render::write_outputs(&args.output_dir, &rendered)?;
    }
    for r in &rendered {
        println!("{}", args.output_dir.join(&r.path).display());
    }
    Ok(ExitCode::SUCCESS)
}
