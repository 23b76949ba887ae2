//! The `imagebuilder` binary: clap types and dispatch only; the work is in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
