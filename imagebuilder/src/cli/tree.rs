//! `treecompose`, `verify` and `demo-tree`: clap types and dispatch into `imagebuilder::tree`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use imagebuilder::tree::{commit, compose, demo, sign, version};

/// Compose an OSTree commit: with rpm-ostree from a config.ini + treefile, or natively from a
/// prepared root filesystem (--rootfs)
#[derive(Debug, Args)]
pub struct TreecomposeArgs {
    /// config.ini (rpm-ostree-toolbox format); required unless --rootfs is given
    #[arg(short = 'c', long = "config", required_unless_present = "rootfs")]
    config: Option<PathBuf>,
    /// Section of config.ini to use
    #[arg(short = 'p', long, default_value = "DEFAULT")]
    profile: String,
    /// OSTree repository (created in archive mode when missing); overrides config.ini's ostree_repo
    #[arg(long)]
    ostreerepo: Option<PathBuf>,
    /// Version policy: skip-or-refresh|skip-or-minor|skip-or-cve|cve|refresh|minor|A.B.C[.D]
    #[arg(short = 'V', long = "versioning", conflicts_with = "version")]
    versioning: Option<String>,
    /// Run rpm-ostree in this container image (podman, else docker) instead of on the host
    #[arg(long, value_name = "IMAGE", conflicts_with = "rootfs")]
    container: Option<String>,
    /// Scratch directory for the flattened treefile (default: a temporary directory)
    #[arg(long, conflicts_with = "rootfs")]
    workdir: Option<PathBuf>,
    /// Commit this prepared root filesystem natively (no rpm-ostree)
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Ref to commit to (with --rootfs; default: config.ini's ref)
    #[arg(long = "ref", value_name = "REF", requires = "rootfs")]
    reference: Option<String>,
    /// The commit's `version` metadata (with --rootfs)
    #[arg(long, requires = "rootfs")]
    version: Option<String>,
    /// Kernel to use when the rootfs holds several (with --rootfs)
    #[arg(long, requires = "rootfs")]
    kernel_version: Option<String>,
    /// Commit subject (with --rootfs)
    #[arg(long, requires = "rootfs")]
    subject: Option<String>,
    /// Threads writing objects (with --rootfs; 0 = one per CPU)
    #[arg(long, default_value_t = 0, requires = "rootfs")]
    threads: usize,
    /// Sign the commit and the summary with this GPG key
    #[arg(long, value_name = "KEYID")]
    gpg_sign: Option<String>,
    /// GnuPG home directory holding the signing key
    #[arg(long, value_name = "DIR", requires = "gpg_sign")]
    gpg_homedir: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Verify the GPG signatures of a ref's commit and of the repository summary
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// OSTree repository
    #[arg(long)]
    ostreerepo: PathBuf,
    /// Ref whose commit is checked
    #[arg(long = "ref", value_name = "REF")]
    reference: String,
    /// GnuPG home directory holding the trusted public keys
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "keyring",
        conflicts_with = "keyring"
    )]
    gpg_homedir: Option<PathBuf>,
    /// Keyring file holding the trusted public keys
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Build (or reuse from the cache) the demo OSTree tree and print its repo, ref and commit
#[derive(Debug, Args)]
pub struct DemoTreeArgs {
    /// Cache directory (default: $IMAGEBUILDER_CACHE_DIR, $XDG_CACHE_HOME/imagebuilder, ~/.cache/imagebuilder)
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).context("serialising JSON")?
    );
    Ok(())
}

pub fn treecompose(a: TreecomposeArgs) -> Result<ExitCode> {
    let gpg = a.gpg_sign.map(|key_id| sign::GpgKey {
        key_id,
        homedir: a.gpg_homedir,
    });
    let policy = a
        .versioning
        .as_deref()
        .map(str::parse::<version::Policy>)
        .transpose()
        .context("-V/--versioning")?;
    if let Some(rootfs) = a.rootfs {
        let cfg = a
            .config
            .as_deref()
            .map(|c| imagebuilder::config::load(c, Some(&a.profile)).map(|l| l.config))
            .transpose()?;
        let repo_path = compose::repo_path(a.ostreerepo.as_deref(), cfg.as_ref())?;
        let reference = match (a.reference, &cfg) {
            (Some(r), _) => r,
            (None, Some(c)) => c.ostree_ref.clone(),
            (None, None) => anyhow::bail!("--ref is required with --rootfs (or -c with a `ref`)"),
        };
        let version = match (a.version, policy) {
            (Some(v), _) => Some(v),
            (None, Some(p)) if repo_path.exists() => {
                let repo = imagebuilder::tree::repo::open(&repo_path)?;
                compose::next_version_for(&repo, &reference, &p)?
            }
            (None, Some(p)) => version::next_version(&p, None)?,
            (None, None) => None,
        };
        let done = commit::commit_rootfs(
            &repo_path,
            &rootfs,
            &commit::CommitOptions {
                reference,
                version,
                subject: a.subject,
                kernel_version: a.kernel_version,
                timestamp: None,
                gpg,
                init_repo: true,
                threads: a.threads,
            },
        )?;
        if a.json {
            print_json(&done)?;
        } else {
            println!("{} => {}", done.reference, done.commit);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = a.config.context("-c/--config is required")?;
    let outcome = compose::treecompose(&compose::ComposeOptions {
        config,
        profile: a.profile,
        ostreerepo: a.ostreerepo,
        policy: policy.unwrap_or_default(),
        container: a.container,
        workdir: a.workdir,
        gpg,
    })?;
    if a.json {
        print_json(&outcome)?;
    } else if outcome.changed {
        println!("{} => {}", outcome.reference, outcome.commit);
    } else {
        println!("{} is unchanged at {}", outcome.reference, outcome.commit);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let keyring = match (a.gpg_homedir, a.keyring) {
        (Some(h), _) => sign::Keyring::Homedir(h),
        (None, Some(f)) => sign::Keyring::File(f),
        (None, None) => anyhow::bail!("give --gpg-homedir DIR or --keyring FILE"),
    };
    let report = sign::verify(&a.ostreerepo, &a.reference, &keyring)?;
    if a.json {
        print_json(&report)?;
    } else {
        println!(
            "{} {}: commit signature OK ({} valid of {}), summary signature OK ({} valid of {})",
            report.reference,
            report.commit,
            report.commit_valid,
            report.commit_signatures,
            report.summary_valid,
            report.summary_signatures
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn demo_tree(a: DemoTreeArgs) -> Result<ExitCode> {
    let tree = demo::ensure_demo_tree(a.cache_dir.as_deref())?;
    if a.json {
        print_json(&tree)?;
    } else {
        println!("repo: {}", tree.repo.display());
        println!("ref: {}", tree.reference);
        println!("commit: {}", tree.commit);
    }
    Ok(ExitCode::SUCCESS)
}
