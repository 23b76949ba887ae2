//! `imagebuilder tdl …`: clap types and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Validate and print Oz/ImageFactory TDL files
#[derive(Debug, Args)]
pub struct TdlArgs {
    #[command(subcommand)]
    cmd: TdlCmd,
}

#[derive(Debug, Subcommand)]
enum TdlCmd {
    /// Check TDL files against Oz's schema and semantic rules; report every error with its element path
    Validate {
        /// TDL files
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the parsed templates (or the errors) as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Parse a TDL file and write it back out in the canonical form
    Print {
        /// TDL file
        file: PathBuf,
    },
}

pub fn run(args: TdlArgs) -> Result<ExitCode> {
    match args.cmd {
        TdlCmd::Validate { files, json } => validate(&files, json),
        TdlCmd::Print { file } => {
            let text = imagebuilder::util::fsutil::read_input(
                &file,
                "TDL",
                imagebuilder::tdl::MAX_FILE_BYTES,
            )?;
            let t = imagebuilder::tdl::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}", prefix(&file, &e)))?;
            print!("{}", t.to_xml());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn prefix(file: &std::path::Path, e: &imagebuilder::tdl::TdlErrors) -> String {
    e.0.iter()
        .map(|x| format!("{}:{x}", file.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn validate(files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut failed = 0;
    let mut report = Vec::new();
    for f in files {
        let text =
            imagebuilder::util::fsutil::read_input(f, "TDL", imagebuilder::tdl::MAX_FILE_BYTES)?;
        match imagebuilder::tdl::parse(&text) {
            Ok(t) => {
                if json {
                    report.push(serde_json::json!({"file": f, "valid": true, "template": t}));
                } else {
                    println!("{}: valid", f.display());
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    let errors: Vec<_> = e
                        .0
                        .iter()
                        .map(|x| {
                            serde_json::json!({"path": x.path, "line": x.line, "column": x.column, "message": x.message})
                        })
                        .collect();
                    report.push(serde_json::json!({"file": f, "valid": false, "errors": errors}));
                }
                eprintln!("{}", prefix(f, &e));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
