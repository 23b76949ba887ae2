//! Man pages and shell completions generated from the CLI's clap definitions, so they cannot
//! drift from it: `make install` and `make deb` write them with the binary's hidden
//! `imagebuilder generate` command.
//!
//! One man page per visible command and subcommand (`imagebuilder.1`, `imagebuilder-image.1`,
//! `imagebuilder-ks-validate.1`, …; `clap_mangen`), and one completion script per shell
//! (`clap_complete`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
pub use clap_complete::Shell;

/// The visible subcommands of `cmd`, depth first, each as its path of names
/// (`["ks", "validate"]`); `help` and hidden commands are left out.
pub fn subcommand_paths(cmd: &clap::Command) -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(cmd, &[], &mut out);
    out
}

/// The man page file name of a command path: `imagebuilder-ks-validate.1`.
pub fn manpage_name(bin: &str, path: &[String]) -> String {
    let mut name = bin.to_string();
    for p in path {
        name.push('-');
        name.push_str(p);
    }
    format!("{name}.1")
}

/// Writes the man page of `cmd` and of each visible subcommand into `dir` (created if needed);
/// returns the files written.
pub fn write_manpages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Gives every subcommand its display name (`imagebuilder-image`), which names its page.
    cmd.build();
    let mut written = Vec::new();
    write_tree(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut text = Vec::new();
    man.render(&mut text)
        .with_context(|| format!("rendering {}", path.display()))?;
    crate::util::fsutil::write_atomic(&path, &text)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, dir, written)?;
    }
    Ok(())
}

/// Writes the completion script of `cmd` for `shell` into `dir` under the shell's usual name
/// (`imagebuilder.bash`, `_imagebuilder`, `imagebuilder.fish`); returns its path.
pub fn write_completions(mut cmd: clap::Command, shell: Shell, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bin = cmd.get_name().to_string();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, &bin, &mut text);
    let path = dir.join(clap_complete::Generator::file_name(&shell, &bin));
    crate::util::fsutil::write_atomic(&path, &text)?;
    Ok(path)
}
