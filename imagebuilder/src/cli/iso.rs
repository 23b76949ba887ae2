//! clap types of `imagebuilder iso …`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use imagebuilder::iso::inject::{InjectOptions, inject};

/// Installer ISO tools.
#[derive(Debug, Subcommand)]
pub enum IsoCmd {
    /// Add a kickstart (and files, kernel arguments, a new volume id) to an installer ISO, as
    /// lorax's mkksiso does: every boot entry gets inst.ks=hd:LABEL=<volid>:/<file>
    Inject(InjectArgs),
}

/// `iso inject`
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The installer ISO (lorax's boot.iso, or one made by imagebuilder)
    iso: PathBuf,
    /// The new ISO (must not exist; written under a temporary name and renamed)
    out: PathBuf,
    /// Kickstart to validate, put at the ISO root and name in inst.ks= on every boot entry
    #[arg(long, value_name = "FILE")]
    ks: Option<PathBuf>,
    /// File or directory copied to the ISO root (repeatable)
    #[arg(short, long, value_name = "PATH")]
    add: Vec<PathBuf>,
    /// Kernel arguments appended to every boot entry
    #[arg(short, long, value_name = "ARGS", allow_hyphen_values = true)]
    cmdline: Option<String>,
    /// Kernel arguments removed (by name, without `=`) from every boot entry
    #[arg(short, long, value_name = "ARGS", allow_hyphen_values = true)]
    rm_args: Option<String>,
    /// New volume id (at most 32 characters of A-Z a-z 0-9 _ - .); every LABEL=, CDLABEL= and
    /// GRUB search --label reference follows
    #[arg(short = 'V', long, value_name = "NEWID")]
    volid: Option<String>,
    /// Print what was done as JSON
    #[arg(long)]
    json: bool,
}

/// Run an `iso` subcommand.
pub fn run(cmd: IsoCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        IsoCmd::Inject(a) => {
            let report = inject(&InjectOptions {
                iso: a.iso,
                out: a.out,
                ks: a.ks,
                add: a.add,
                cmdline: a.cmdline,
                rm_args: a.rm_args,
                volid: a.volid,
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for (cfg, n) in &report.configs {
                    println!("{cfg}: {n} boot entries edited");
                }
                println!("{} (volume id {})", report.out.display(), report.volid);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
