//! Command-line interface: one clap type per leaf subcommand, one `match` dispatching to the library.
//! Exit codes: 0 success, 1 failure (or invalid input), 2 usage error (clap's own).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ks;

#[derive(Debug, Parser)]
#[command(name = "imagebuilder", version, about, help_expected = true)]
pub struct Cli {
    /// Log every external command and step (or set RUST_LOG)
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Kickstart validation, flattening and version tables
    #[command(subcommand)]
    Ks(ks::KsCmd),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    imagebuilder::logging::init(cli.verbose);
    let result: anyhow::Result<ExitCode> = match cli.command {
        Cmd::Ks(c) => ks::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
