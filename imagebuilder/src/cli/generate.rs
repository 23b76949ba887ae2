//! `imagebuilder generate` (hidden): man pages, completions and the Debian package relations,
//! for `make install` and `make deb`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Subcommand};
use imagebuilder::docgen::{self, Shell};

#[derive(Debug, Subcommand)]
pub enum GenerateCmd {
    /// Write one man page per command and subcommand into DIR
    Manpages {
        /// Output directory
        dir: PathBuf,
    },
    /// Write the completion script for SHELL into DIR
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: Shell,
        /// Output directory
        dir: PathBuf,
    },
    /// Print the Debian package relations (Depends, Recommends, Suggests) of the requirement table
    DebRelations,
}

pub fn run(c: GenerateCmd) -> Result<ExitCode> {
    match c {
        GenerateCmd::Manpages { dir } => {
            for p in docgen::write_manpages(super::Cli::command(), &dir)? {
                println!("{}", p.display());
            }
        }
        GenerateCmd::Completions { shell, dir } => {
            let p = docgen::write_completions(super::Cli::command(), shell, &dir)?;
            println!("{}", p.display());
        }
        GenerateCmd::DebRelations => {
            let [depends, recommends, suggests] =
                imagebuilder::host::requirements::debian_relations();
            println!("Depends: {}", depends.join(", "));
            println!("Recommends: {}", recommends.join(", "));
            println!("Suggests: {}", suggests.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
