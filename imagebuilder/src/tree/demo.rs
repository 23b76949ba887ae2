//! The project's demo tree: a Debian 12 root built by the recipe in `demo/` (package list + script,
//! embedded in the binary), committed natively under [`DEMO_REF`]. Built once and cached, keyed on the
//! recipe's content; a file lock makes concurrent callers (test binaries) share one build.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use ostree::glib;

use crate::util::cmd::CommandExt;

use super::commit::{CommitOptions, commit_rootfs};

/// The ref of the demo tree.
pub const DEMO_REF: &str = "demo/x86_64/base";
/// The `version` of the demo commit.
pub const DEMO_VERSION: &str = "12.0.0";
/// Fixed commit time of the demo tree (2023-06-10, Debian 12's release day).
const DEMO_TIMESTAMP: u64 = 1_686_355_200;

/// The recipe, embedded so that an installed binary can build the tree anywhere.
const PACKAGES: &str = include_str!("../../../demo/packages.txt");
const SCRIPT: &str = include_str!("../../../demo/build-rootfs.sh");
/// Bump when the native commit's layout rules change (the cache key covers them too).
const LAYOUT_VERSION: &str = "layout-1";

/// A built demo tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DemoTree {
    /// An archive-mode repository holding [`DEMO_REF`].
    pub repo: PathBuf,
    /// The ref, [`DEMO_REF`].
    pub reference: String,
    /// The commit checksum.
    pub commit: String,
}

/// The cache directory: the argument, else `$IMAGEBUILDER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/imagebuilder`, else `~/.cache/imagebuilder`, else (no `HOME`, as under some CI
/// runners and system services) `/var/cache/imagebuilder`.
pub fn cache_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os("IMAGEBUILDER_CACHE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p).join("imagebuilder"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache/imagebuilder")),
        None => Ok(PathBuf::from("/var/cache/imagebuilder")),
    }
}

/// The cache key: a digest of the package list, the script and the layout rules.
pub fn recipe_key() -> String {
    let mut all = Vec::new();
    for part in [PACKAGES, SCRIPT, LAYOUT_VERSION] {
        all.extend_from_slice(part.as_bytes());
        all.push(0);
    }
    let digest = glib::compute_checksum_for_data(glib::ChecksumType::Sha256, &all)
        .map(|s| s.to_string())
        .unwrap_or_default();
    digest[..16.min(digest.len())].to_owned()
}

/// The Debian mirror: `$IMAGEBUILDER_DEBIAN_MIRROR`, else the first Debian URL of the host's apt
/// sources, else `http://deb.debian.org/debian`.
pub fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("IMAGEBUILDER_DEBIAN_MIRROR")
        && !m.is_empty()
    {
        return m;
    }
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            text.push('\n');
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    mirror_from_sources(&text).unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// The first `…/debian` URL of apt sources text (one-line `deb URL …` or deb822 `URIs: URL`).
pub fn mirror_from_sources(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.first() {
                Some(&"deb") => words
                    .iter()
                    .skip(1)
                    .find(|w| !w.starts_with('['))
                    .map(|w| vec![*w])
                    .unwrap_or_default(),
                Some(&"URIs:") => words[1..].to_vec(),
                _ => vec![],
            }
        })
        .map(|u| u.trim_end_matches('/'))
        .find(|u| (u.starts_with("http://") || u.starts_with("https://")) && u.ends_with("/debian"))
        .map(str::to_owned)
}

/// Builds (or reuses from the cache) the demo tree and returns an archive-mode repo holding it.
/// Cache dir: the argument, else `$IMAGEBUILDER_CACHE_DIR`, else `$XDG_CACHE_HOME/imagebuilder`, else
/// `~/.cache/imagebuilder`; the cache is keyed on the recipe's content and guarded by a file lock so
/// that concurrent test binaries share one build; a second call costs seconds.
pub fn ensure_demo_tree(cache_dir: Option<&Path>) -> Result<DemoTree> {
    crate::util::cleanup::set_stage("building the demo OSTree tree");
    let base = self::cache_dir(cache_dir)?.join("demo-tree");
    std::fs::create_dir_all(&base)
        .with_context(|| format!("creating cache directory {}", base.display()))?;
    let lock_path = base.join(".lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening lock file {}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", lock_path.display()))?;

    let dir = base.join(recipe_key());
    if let Some(tree) = cached(&dir)? {
        return Ok(tree);
    }
    build(&dir)
    // `lock` is released when dropped.
}

fn cached(dir: &Path) -> Result<Option<DemoTree>> {
    let repo_path = dir.join("repo");
    if !dir.join("done").is_file() {
        return Ok(None);
    }
    let repo = super::repo::open(&repo_path)?;
    match super::repo::resolve(&repo, DEMO_REF)? {
        Some(commit) => Ok(Some(DemoTree {
            repo: repo_path,
            reference: DEMO_REF.to_owned(),
            commit,
        })),
        None => Ok(None),
    }
}

fn build(dir: &Path) -> Result<DemoTree> {
    let started = std::time::Instant::now();
    let rootfs_tmp = dir.join("rootfs.tmp");
    let repo_tmp = dir.join("repo.tmp");
    for p in [
        &rootfs_tmp,
        &repo_tmp,
        &dir.join("rootfs"),
        &dir.join("repo"),
    ] {
        remove_leftover(p)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let recipe = dir.join("recipe");
    std::fs::create_dir_all(&recipe).with_context(|| format!("creating {}", recipe.display()))?;
    crate::util::fsutil::write_atomic(&recipe.join("packages.txt"), PACKAGES.as_bytes())?;
    crate::util::fsutil::write_atomic(&recipe.join("build-rootfs.sh"), SCRIPT.as_bytes())?;

    crate::host::preflight(&[crate::host::Target::DemoTree])?;
    let mirror = debian_mirror();
    tracing::info!(
        "building the demo root filesystem in {} (debootstrap from {mirror}; a few minutes)",
        rootfs_tmp.display()
    );
    Command::new("bash")
        .arg(recipe.join("build-rootfs.sh"))
        .arg(&rootfs_tmp)
        .arg(&mirror)
        .run()
        .context("building the demo root filesystem (demo/build-rootfs.sh)")?;
    let built = started.elapsed();

    super::repo::open_or_init_archive(&repo_tmp)?;
    let committed = commit_rootfs(
        &repo_tmp,
        &rootfs_tmp,
        &CommitOptions {
            reference: DEMO_REF.to_owned(),
            version: Some(DEMO_VERSION.to_owned()),
            subject: Some("imagebuilder demo tree: Debian 12 minbase".to_owned()),
            timestamp: Some(DEMO_TIMESTAMP),
            ..Default::default()
        },
    )
    .context("committing the demo root filesystem")?;
    let repo = dir.join("repo");
    std::fs::rename(&repo_tmp, &repo)
        .with_context(|| format!("renaming {} into place", repo_tmp.display()))?;
    std::fs::rename(&rootfs_tmp, dir.join("rootfs"))
        .with_context(|| format!("renaming {} into place", rootfs_tmp.display()))?;
    crate::util::fsutil::write_atomic(&dir.join("done"), committed.commit.as_bytes())?;
    tracing::info!(
        "demo tree {DEMO_REF} = {} (rootfs {:.0?}, total {:.0?})",
        committed.commit,
        built,
        started.elapsed()
    );
    Ok(DemoTree {
        repo,
        reference: DEMO_REF.to_owned(),
        commit: committed.commit,
    })
}

/// Removes what an interrupted build left, after making sure nothing is still mounted below it (a
/// killed recipe can leave /proc, /sys or /dev mounted in its chroot; never delete through those).
fn remove_leftover(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    for m in mounts_below(path)?.iter().rev() {
        tracing::warn!("unmounting leftover {}", m.display());
        Command::new("umount")
            .arg("-l")
            .arg(m)
            .run()
            .with_context(|| format!("unmounting leftover {}", m.display()))?;
    }
    if !mounts_below(path)?.is_empty() {
        bail!(
            "{} still has mounts below it; not removing it",
            path.display()
        );
    }
    std::fs::remove_dir_all(path).with_context(|| format!("removing leftover {}", path.display()))
}

fn mounts_below(path: &Path) -> Result<Vec<PathBuf>> {
    let canon = path
        .canonicalize()
        .with_context(|| format!("resolving {}", path.display()))?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(&canon))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_from_one_line_and_deb822_sources() {
        assert_eq!(
            mirror_from_sources(
                "# deb http://x/debian\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
            ),
            Some("http://mirror.example/debian".into())
        );
        assert_eq!(
            mirror_from_sources(
                "Types: deb\nURIs: http://deb.debian.org/debian-security\n\nTypes: deb\nURIs: https://m.example/debian\n"
            ),
            Some("https://m.example/debian".into())
        );
        assert_eq!(
            mirror_from_sources("deb https://packages.cloud.google.com/apt x main"),
            None
        );
    }

    #[test]
    fn cache_dir_precedence() {
        assert_eq!(
            cache_dir(Some(Path::new("/explicit"))).unwrap(),
            PathBuf::from("/explicit")
        );
    }

    #[test]
    fn recipe_key_is_stable_hex() {
        let k = recipe_key();
        assert_eq!(k.len(), 16);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(k, recipe_key());
    }
}
