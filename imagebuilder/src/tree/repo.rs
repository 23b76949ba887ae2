//! Opening, creating and querying OSTree repositories through libostree.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ostree::{gio, glib};

/// Opens an existing repository; a missing or corrupt repository is a clear error naming the path.
pub fn open(path: &Path) -> Result<ostree::Repo> {
    if !path.join("config").is_file() {
        bail!(
            "{} is not an OSTree repository (no `config` file); create it with \
             `ostree --repo={} init --mode=archive` or let treecompose initialise it",
            path.display(),
            path.display()
        );
    }
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE)
        .with_context(|| format!("opening OSTree repository {}", path.display()))?;
    Ok(repo)
}

/// Opens the repository at `path`, creating it in archive mode first when the path does not exist.
/// An existing path that is not a repository is an error (it is never overwritten).
pub fn open_or_init_archive(path: &Path) -> Result<ostree::Repo> {
    if !path.exists() {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating repository directory {}", path.display()))?;
        let repo = ostree::Repo::new_for_path(path);
        repo.create(ostree::RepoMode::Archive, gio::Cancellable::NONE)
            .with_context(|| format!("initialising archive repository {}", path.display()))?;
        tracing::info!(
            "initialised archive-mode OSTree repository {}",
            path.display()
        );
    }
    open(path)
}

/// The commit a ref points to, or `None` when the ref does not exist.
pub fn resolve(repo: &ostree::Repo, reference: &str) -> Result<Option<String>> {
    let rev = repo
        .resolve_rev(reference, true)
        .with_context(|| format!("resolving ref {reference}"))?;
    Ok(rev.map(|s| s.to_string()))
}

/// The commit a ref points to; a missing ref is an error listing the refs that exist.
pub fn require_ref(repo: &ostree::Repo, reference: &str) -> Result<String> {
    if let Some(rev) = resolve(repo, reference)? {
        return Ok(rev);
    }
    let mut refs: Vec<String> = repo
        .list_refs(None, gio::Cancellable::NONE)
        .context("listing refs")?
        .into_keys()
        .collect();
    refs.sort();
    if refs.is_empty() {
        bail!("ref {reference} does not exist (the repository has no refs)")
    }
    bail!(
        "ref {reference} does not exist; existing refs: {}",
        refs.join(", ")
    )
}

/// A string entry of a commit's metadata (e.g. `version`).
pub fn commit_metadata_string(
    repo: &ostree::Repo,
    commit: &str,
    key: &str,
) -> Result<Option<String>> {
    let (variant, _) = repo
        .load_commit(commit)
        .with_context(|| format!("loading commit {commit}"))?;
    let meta = variant.child_value(0);
    let dict = glib::VariantDict::new(Some(&meta));
    Ok(dict
        .lookup_value(key, Some(glib::VariantTy::STRING))
        .and_then(|v| v.str().map(str::to_owned)))
}

/// Rewrites the repository summary (refs and their commits) so clients and `verify` see it.
pub fn update_summary(repo: &ostree::Repo) -> Result<()> {
    repo.regenerate_summary(None, gio::Cancellable::NONE)
        .context("regenerating the repository summary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_open_and_missing_ref() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let repo = open_or_init_archive(&path).unwrap();
        assert_eq!(repo.mode(), ostree::RepoMode::Archive);
        assert_eq!(resolve(&repo, "no/such/ref").unwrap(), None);
        let err = require_ref(&repo, "no/such/ref").unwrap_err();
        assert!(format!("{err:#}").contains("no/such/ref"), "{err:#}");
    }

    #[test]
    fn missing_and_corrupt_repos_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(&dir.path().join("nope")).unwrap_err();
        assert!(format!("{err:#}").contains("not an OSTree repository"));
        std::fs::write(dir.path().join("config"), "garbage [[[").unwrap();
        let err = open(dir.path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("opening OSTree repository"),
            "{err:#}"
        );
        // An existing non-repository path is not turned into one.
        assert!(open_or_init_archive(dir.path()).is_err());
    }
}
