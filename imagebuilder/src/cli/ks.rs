//! clap types of `imagebuilder ks …`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub(crate) fn syntax(s: &str) -> Result<String, String> {
    if imagebuilder::ks::syntax_is_known(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown syntax version {s:?}: use {}, DEVEL or auto",
            kickstart::Version::range_description()
        ))
    }
}

/// Kickstart tools (ksvalidator/ksflatten/ksverdiff compatible).
#[derive(Debug, Subcommand)]
pub enum KsCmd {
    /// Validate kickstart files (warnings count as errors unless --allow-warnings)
    Validate(ValidateArgs),
    /// Resolve %include and write one normalized kickstart
    Flatten(FlattenArgs),
    /// List the syntax versions
    Versions,
    /// List commands and options added, deprecated and removed between two versions
    Verdiff(VerdiffArgs),
}

/// `ks validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Syntax version: F21…F46, RHEL7…RHEL11, DEVEL (the default, as ksvalidator), or auto (the
    /// file's #version= line, else DEVEL)
    #[arg(long, default_value = "DEVEL", value_parser = syntax)]
    syntax: String,
    /// One JSON object per file per line on stdout
    #[arg(long)]
    json: bool,
    /// Do not count warnings (deprecations, duplicates) as errors
    #[arg(long)]
    allow_warnings: bool,
    /// Do not follow %include
    #[arg(long)]
    no_includes: bool,
    /// Kickstart files
    #[arg(required = true)]
    files: Vec<String>,
}

/// `ks flatten`
#[derive(Debug, Args)]
pub struct FlattenArgs {
    /// Syntax version: F21…F46, RHEL7…RHEL11, DEVEL (the default, as ksvalidator), or auto (the
    /// file's #version= line, else DEVEL)
    #[arg(long, default_value = "DEVEL", value_parser = syntax)]
    syntax: String,
    /// Output file (written atomically; default stdout)
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Kickstart file
    file: String,
}

/// `ks verdiff`
#[derive(Debug, Args)]
pub struct VerdiffArgs {
    /// Older version
    #[arg(long, value_parser = syntax)]
    from: String,
    /// Newer version
    #[arg(long, value_parser = syntax)]
    to: String,
}

/// Run a `ks` subcommand.
pub fn run(cmd: KsCmd) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        KsCmd::Validate(a) => {
            let o = imagebuilder::ks::ValidateOpts {
                syntax: a.syntax,
                json: a.json,
                allow_warnings: a.allow_warnings,
                no_includes: a.no_includes,
            };
            let ok = imagebuilder::ks::validate(&a.files, &o, &mut out)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        KsCmd::Flatten(a) => {
            imagebuilder::ks::flatten(&a.file, &a.syntax, a.output.as_deref(), &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        KsCmd::Versions => {
            imagebuilder::ks::versions(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        KsCmd::Verdiff(a) => {
            let from = imagebuilder::ks::resolve_syntax(&a.from, None)?;
            let to = imagebuilder::ks::resolve_syntax(&a.to, None)?;
            imagebuilder::ks::verdiff(from, to, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
