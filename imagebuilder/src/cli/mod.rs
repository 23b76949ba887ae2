//! Command-line interface: one clap type per leaf subcommand, one `match` dispatching to the library.
//! Exit codes: 0 success, 1 failure (or invalid input), 2 usage error (clap's own), 130/143
//! interrupted by SIGINT/SIGTERM (after cleaning up; see `imagebuilder::util::cleanup`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod boot_test;
mod clean;
mod demo;
mod doctor;
mod generate;
mod image;
mod imagefactory;
mod installer;
mod iso;
mod ks;
mod liveimage;
mod render;
mod tdl;
mod tree;

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
    BootTest(boot_test::BootTestArgs),
    Treecompose(Box<tree::TreecomposeArgs>),
    Verify(tree::VerifyArgs),
    DemoTree(tree::DemoTreeArgs),
    Render(render::RenderArgs),
    Tdl(tdl::TdlArgs),
    Imagefactory(imagefactory::ImagefactoryArgs),
    Liveimage(liveimage::LiveimageArgs),
    Installer(installer::InstallerArgs),
    /// Build disk images (raw, qcow2, Vagrant boxes), live images (PXE-to-Live, live ISO) and the
    /// unattended installer ISO from a kickstart and an OSTree commit
    Image(image::ImageArgs),
    Demo(demo::DemoArgs),
    Clean(clean::CleanArgs),
    Doctor(doctor::DoctorArgs),
    /// Man pages, completions and package relations for packaging
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCmd),
    /// Kickstart validation, flattening and version tables
    #[command(subcommand)]
    Ks(ks::KsCmd),
    /// Installer ISO tools (inject a kickstart, files and kernel arguments)
    #[command(subcommand)]
    Iso(iso::IsoCmd),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    imagebuilder::logging::init(cli.verbose);
    if let Err(e) = imagebuilder::util::cleanup::install_signal_handler() {
        eprintln!("error: {e:#}");
        return ExitCode::from(1);
    }
    let result: anyhow::Result<ExitCode> = match cli.command {
        Cmd::BootTest(a) => boot_test::boot_test(a),
        Cmd::Treecompose(a) => tree::treecompose(*a),
        Cmd::Verify(a) => tree::verify(a),
        Cmd::DemoTree(a) => tree::demo_tree(a),
        Cmd::Render(a) => render::run(a),
        Cmd::Tdl(a) => tdl::run(a),
        Cmd::Imagefactory(a) => imagefactory::run(a),
        Cmd::Liveimage(a) => liveimage::run(a),
        Cmd::Installer(a) => installer::run(a),
        Cmd::Image(a) => image::run(a),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Ks(c) => ks::run(c),
        Cmd::Iso(c) => iso::run(c),
        Cmd::Clean(a) => clean::run(a),
        Cmd::Doctor(a) => doctor::run(a),
        Cmd::Generate(c) => generate::run(c),
    };
    if imagebuilder::util::cleanup::is_interrupted() {
        // The signal thread is cleaning up; it prints the one line and exits.
        imagebuilder::util::cleanup::wait_for_exit();
    }
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

    /// Every visible subcommand has its man page, and every completion script knows every
    /// subcommand: both are generated from the same clap tree.
    #[test]
    fn man_pages_and_completions_cover_every_subcommand() {
        use imagebuilder::docgen;
        let cmd = super::Cli::command();
        let paths = docgen::subcommand_paths(&cmd);
        for expected in [
            &["image"][..],
            &["doctor"],
            &["boot-test"],
            &["ks", "validate"],
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected:?} not in {paths:?}"
            );
        }
        assert!(!paths.iter().any(|p| p[0] == "generate"), "hidden");
        let d = tempfile::tempdir().unwrap();
        let written = docgen::write_manpages(cmd.clone(), &d.path().join("man")).unwrap();
        let mut names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = std::iter::once(Vec::new())
            .chain(paths.iter().cloned())
            .map(|p| docgen::manpage_name("imagebuilder", &p))
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        let image = std::fs::read_to_string(d.path().join("man/imagebuilder-image.1")).unwrap();
        assert!(image.contains(r"\-\-kickstart"), "{image}");
        for shell in [docgen::Shell::Bash, docgen::Shell::Zsh, docgen::Shell::Fish] {
            let p = docgen::write_completions(cmd.clone(), shell, &d.path().join("c")).unwrap();
            let text = std::fs::read_to_string(&p).unwrap();
            for path in &paths {
                let leaf = path.last().unwrap();
                assert!(
                    text.contains(leaf.as_str()),
                    "{shell:?}: no {leaf} in {}",
                    p.display()
                );
            }
        }
    }
}
