//! Parallel native commit: the tree is cut into jobs (whole subtrees, plus the direct files of the
//! directories that were cut), each job is written by libostree on a worker thread (compression is
//! the cost of an archive-mode commit), and the results are assembled into one `MutableTree`. Tree
//! checksums do not depend on the order objects are written, so the commit is identical to a
//! sequential one (a test checks this).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use ostree::gio;
use ostree::gio::prelude::*;

/// Directories are not cut deeper than this.
const MAX_DEPTH: usize = 8;
/// Per-entry weight added to file sizes when balancing jobs (small files cost more than their bytes).
const ENTRY_WEIGHT: u64 = 4096;

/// What a job writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The directory and everything below it.
    Subtree,
    /// Only the directory's own metadata and its non-directory entries.
    FilesOnly,
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The directory on disk.
    pub src: PathBuf,
    /// Its path within the rootfs (`/`, `/usr/lib`…), as the root filter sees it.
    pub path: String,
    /// Where it goes in the commit (`""` for the root, `usr/etc`…).
    pub target: String,
    pub kind: Kind,
    /// Apply the root filter ([`super::commit::keep_in_root`]) with `path` as prefix.
    pub root_filter: bool,
    /// Estimated cost, for scheduling.
    pub weight: u64,
}

/// What a job produced (plain strings: libostree objects stay on their thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Subtree {
        contents: String,
        metadata: String,
    },
    Files {
        metadata: String,
        files: HashMap<String, String>,
    },
}

fn join(prefix: &str, rel: &str) -> String {
    match (prefix, rel) {
        (p, "/") => p.to_owned(),
        ("/", r) => r.to_owned(),
        (p, r) => format!("{p}{r}"),
    }
}

/// Weight of a directory tree, skipping what `keep` rejects (paths relative to the rootfs).
fn weigh(
    dir: &Path,
    path: &str,
    keep: &dyn Fn(&str) -> bool,
    sizes: &mut HashMap<String, u64>,
) -> Result<u64> {
    let mut total = ENTRY_WEIGHT;
    let rd = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name();
        let child = join(path, &format!("/{}", name.to_string_lossy()));
        if !keep(&child) {
            continue;
        }
        let m = std::fs::symlink_metadata(e.path())
            .with_context(|| format!("reading {}", e.path().display()))?;
        total += if m.is_dir() {
            weigh(&e.path(), &child, keep, sizes)?
        } else if m.is_file() || m.is_symlink() {
            ENTRY_WEIGHT + m.len()
        } else {
            bail!("{}", super::commit::special_file_error(&e.path()));
        };
    }
    sizes.insert(path.to_owned(), total);
    Ok(total)
}

/// Cuts the rootfs (as filtered by `keep`) into jobs of at most about `total / (threads * 8)`.
pub fn plan_root(rootfs: &Path, threads: usize, keep: &dyn Fn(&str) -> bool) -> Result<Vec<Job>> {
    let mut sizes = HashMap::new();
    let total = weigh(rootfs, "/", keep, &mut sizes)?;
    let threshold = (total / (threads.max(1) as u64 * 8)).max(1 << 20);
    let mut jobs = Vec::new();
    cut(rootfs, "/", 0, threshold, &sizes, keep, &mut jobs)?;
    Ok(jobs)
}

fn cut(
    dir: &Path,
    path: &str,
    depth: usize,
    threshold: u64,
    sizes: &HashMap<String, u64>,
    keep: &dyn Fn(&str) -> bool,
    jobs: &mut Vec<Job>,
) -> Result<()> {
    let size = sizes.get(path).copied().unwrap_or(0);
    let target = path.trim_start_matches('/').to_owned();
    if path != "/" && (size <= threshold || depth >= MAX_DEPTH) {
        jobs.push(Job {
            src: dir.to_owned(),
            path: path.to_owned(),
            target,
            kind: Kind::Subtree,
            root_filter: true,
            weight: size,
        });
        return Ok(());
    }
    let mut files_weight = ENTRY_WEIGHT;
    let mut subdirs = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let child = join(path, &format!("/{}", e.file_name().to_string_lossy()));
        if !keep(&child) {
            continue;
        }
        let m = std::fs::symlink_metadata(e.path())
            .with_context(|| format!("reading {}", e.path().display()))?;
        if m.is_dir() {
            subdirs.push((e.path(), child));
        } else {
            files_weight += ENTRY_WEIGHT + m.len();
        }
    }
    jobs.push(Job {
        src: dir.to_owned(),
        path: path.to_owned(),
        target,
        kind: Kind::FilesOnly,
        root_filter: true,
        weight: files_weight,
    });
    subdirs.sort();
    for (src, child) in subdirs {
        cut(&src, &child, depth + 1, threshold, sizes, keep, jobs)?;
    }
    Ok(())
}

fn run_one(repo: &ostree::Repo, job: &Job) -> Result<Output> {
    let mt = ostree::MutableTree::new();
    let prefix = job.path.clone();
    let (root_filter, files_only) = (job.root_filter, job.kind == Kind::FilesOnly);
    super::commit::write_dir(
        repo,
        &job.src,
        &mt,
        Box::new(move |_, rel, info| {
            let is_subdir = rel != "/" && info.file_type() == gio::FileType::Directory;
            let keep = !(files_only && is_subdir)
                && (!root_filter || super::commit::keep_in_root(&join(&prefix, rel)));
            super::commit::verdict(keep)
        }),
    )?;
    match job.kind {
        Kind::Subtree => {
            let f = repo
                .write_mtree(&mt, gio::Cancellable::NONE)
                .with_context(|| format!("writing the tree of {}", job.src.display()))?;
            let f = f
                .downcast::<ostree::RepoFile>()
                .map_err(|_| anyhow::anyhow!("libostree returned a tree that is not a RepoFile"))?;
            Ok(Output::Subtree {
                contents: f
                    .tree_get_contents_checksum()
                    .context("tree contents checksum")?
                    .to_string(),
                metadata: f
                    .tree_get_metadata_checksum()
                    .context("tree metadata checksum")?
                    .to_string(),
            })
        }
        Kind::FilesOnly => Ok(Output::Files {
            metadata: mt.metadata_checksum().to_string(),
            files: mt.copy_files(),
        }),
    }
}

/// Runs the jobs on `threads` workers (each with its own handle on the repository, inside the
/// caller's transaction) and returns their outputs in job order.
pub fn run(repo: &ostree::Repo, jobs: &[Job], threads: usize) -> Result<Vec<Output>> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    // Popped from the end, so largest first: the tail of the schedule is made of small jobs.
    order.sort_by_key(|&i| jobs[i].weight);
    let queue = Mutex::new(order);
    let results: Mutex<Vec<Option<Result<Output>>>> =
        Mutex::new(std::iter::repeat_with(|| None).take(jobs.len()).collect());
    let workers = threads.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let repo = repo.clone();
            let (queue, results) = (&queue, &results);
            s.spawn(move || {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop());
                    let Some(i) = next else { break };
                    let out = run_one(&repo, &jobs[i]);
                    let failed = out.is_err();
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(out);
                    }
                    if failed {
                        // Stop handing out work; the caller aborts the transaction.
                        if let Ok(mut q) = queue.lock() {
                            q.clear();
                        }
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a commit worker panicked"))?;
    let mut out = Vec::with_capacity(jobs.len());
    for (r, job) in results.into_iter().zip(jobs) {
        match r {
            Some(Ok(o)) => out.push(o),
            Some(Err(e)) => return Err(e),
            None => bail!(
                "{} was not committed (an earlier job failed)",
                job.src.display()
            ),
        }
    }
    Ok(out)
}

/// Looks up the directory at `path` (relative, `/`-separated) below `root`; it must exist.
fn dir_at(root: &ostree::MutableTree, path: &str) -> Result<ostree::MutableTree> {
    let mut cur = root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let (_, sub) = cur
            .lookup(part)
            .with_context(|| format!("looking up {path} in the commit tree"))?;
        cur = sub.with_context(|| format!("{path} is not a directory in the commit tree"))?;
    }
    Ok(cur)
}

/// Puts the outputs in place below `root`. Jobs with a `FilesOnly` kind must come before the jobs
/// below them (as [`plan_root`] orders them); `make_parent` creates the parents of targets outside the
/// planned tree (e.g. `usr/share/factory`).
pub fn assemble(
    repo: &ostree::Repo,
    root: &ostree::MutableTree,
    jobs: &[Job],
    outputs: &[Output],
    make_parent: &dyn Fn(&str) -> Result<ostree::MutableTree>,
) -> Result<()> {
    for (job, out) in jobs.iter().zip(outputs) {
        let (parent_path, name) = match job.target.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", job.target.as_str()),
        };
        let here = if job.target.is_empty() {
            root.clone()
        } else {
            let parent = if job.root_filter {
                dir_at(root, parent_path)?
            } else {
                make_parent(parent_path)?
            };
            parent
                .ensure_dir(name)
                .with_context(|| format!("creating {} in the commit tree", job.target))?
        };
        match out {
            Output::Files { metadata, files } => {
                here.set_metadata_checksum(metadata);
                for (name, csum) in files {
                    here.replace_file(name, csum)
                        .with_context(|| format!("adding {}/{name}", job.target))?;
                }
            }
            Output::Subtree { contents, metadata } => {
                if !here.fill_empty_from_dirtree(repo, contents, metadata) {
                    bail!("{} is committed twice", job.target);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_cuts_big_directories_and_skips_filtered_ones() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for (p, n) in [
            ("usr/lib/big/a", 3 << 20),
            ("usr/lib/big/b", 3 << 20),
            ("usr/lib/small", 10),
            ("usr/bin/x", 10),
            ("etc/passwd", 10),
            ("top", 10),
        ] {
            std::fs::create_dir_all(r.join(p).parent().unwrap()).unwrap();
            std::fs::write(r.join(p), vec![0u8; n]).unwrap();
        }
        let jobs = plan_root(r, 2, &|p| p != "/etc").unwrap();
        let seen: Vec<(&str, Kind)> = jobs.iter().map(|j| (j.path.as_str(), j.kind)).collect();
        assert_eq!(
            seen,
            vec![
                ("/", Kind::FilesOnly),
                ("/usr", Kind::FilesOnly),
                ("/usr/bin", Kind::Subtree),
                ("/usr/lib", Kind::FilesOnly),
                ("/usr/lib/big", Kind::FilesOnly),
            ]
        );
        assert_eq!(jobs[4].target, "usr/lib/big");
        assert!(jobs[4].weight > 6 << 20);
        // A larger budget per job keeps /usr/lib/big whole.
        let threshold_jobs = plan_root(r, 1, &|p| p != "/etc").unwrap();
        assert!(threshold_jobs.iter().all(|j| j.path != "/etc"));
    }

    #[test]
    fn join_paths() {
        assert_eq!(join("/", "/"), "/");
        assert_eq!(join("/", "/usr"), "/usr");
        assert_eq!(join("/usr", "/"), "/usr");
        assert_eq!(join("/usr", "/lib"), "/usr/lib");
    }
}
