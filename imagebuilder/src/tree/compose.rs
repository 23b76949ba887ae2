//! `treecompose` in rpm-ostree-toolbox's shape: read config.ini, flatten the treefile's `include`s,
//! fill `ref`/`selinux`/`osname`, initialise the repository, compute the next version, run
//! `rpm-ostree compose tree` (on the host or in a podman/docker container), update the summary.
//!
//! config.ini is read by [`crate::config`], the same reader `render` uses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use super::sign::GpgKey;
use super::version::{Policy, next_version};
use crate::config::Config;
use crate::util::cmd::CommandExt;

/// The repository: `--ostreerepo`, else config `ostree_repo`, else `$OSTREE_REPO`, else `./repo`.
pub fn repo_path(flag: Option<&Path>, cfg: Option<&Config>) -> Result<PathBuf> {
    let p = match (flag, cfg.and_then(|c| c.ostree_repo.as_ref())) {
        (Some(f), _) => f.to_owned(),
        (None, Some(c)) => c.clone(),
        (None, None) => match std::env::var_os("OSTREE_REPO").filter(|v| !v.is_empty()) {
            Some(e) => PathBuf::from(e),
            None => PathBuf::from("repo"),
        },
    };
    let s = p.to_string_lossy();
    if s.starts_with("http://") || s.starts_with("https://") {
        bail!("treecompose needs a local repository, not the URL {s}");
    }
    Ok(p)
}

/// The version for the next commit of `reference` under `policy`.
pub fn next_version_for(
    repo: &ostree::Repo,
    reference: &str,
    policy: &Policy,
) -> Result<Option<String>> {
    let previous = match super::repo::resolve(repo, reference)? {
        Some(c) => super::repo::commit_metadata_string(repo, &c, "version")?,
        None => None,
    };
    Ok(next_version(policy, previous.as_deref())?)
}

/// Loads a treefile and merges its `include`s (recursively, order kept). Returns the merged treefile
/// and every file that took part (the treefile first).
pub fn flatten_treefile(path: &Path) -> Result<(Map<String, Value>, Vec<PathBuf>)> {
    let mut seen = Vec::new();
    let v = load_merged(path, &mut seen, &mut Vec::new())?;
    Ok((v, seen))
}

fn load_merged(
    path: &Path,
    seen: &mut Vec<PathBuf>,
    stack: &mut Vec<PathBuf>,
) -> Result<Map<String, Value>> {
    let canon = path
        .canonicalize()
        .with_context(|| format!("treefile {} could not be found", path.display()))?;
    if stack.contains(&canon) {
        bail!("treefile {} includes itself (include loop)", path.display());
    }
    if stack.len() > 32 {
        bail!(
            "treefile includes nest more than 32 deep at {}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading treefile {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing treefile {} (JSON)", path.display()))?;
    let Value::Object(mut map) = v else {
        bail!("treefile {} is not a JSON object", path.display());
    };
    seen.push(path.to_owned());
    let includes = match map.remove("include") {
        None => vec![],
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|x| match x {
                Value::String(s) => Ok(s),
                other => bail!(
                    "{}: `include` entries must be strings, got {other}",
                    path.display()
                ),
            })
            .collect::<Result<_>>()?,
        Some(other) => bail!(
            "{}: `include` must be a string or a list of strings, got {other}",
            path.display()
        ),
    };
    stack.push(canon);
    let dir = crate::util::fsutil::parent_dir(path).to_owned();
    let mut base = Map::new();
    for inc in includes {
        let inc_path = dir.join(&inc);
        if !inc_path.is_file() {
            bail!(
                "treefile {} includes {inc}, which could not be found ({})",
                path.display(),
                inc_path.display()
            );
        }
        let included = load_merged(&inc_path, seen, stack)
            .with_context(|| format!("in the include {inc} of {}", path.display()))?;
        base = merge(base, included);
    }
    stack.pop();
    Ok(merge(base, map))
}

/// Merges `over` onto `base`: `over`'s scalars and objects win, lists are concatenated (`base` first)
/// without duplicates, order kept.
pub fn merge(mut base: Map<String, Value>, over: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in over {
        match (base.remove(&k), v) {
            (Some(Value::Array(mut a)), Value::Array(b)) => {
                for item in b {
                    if !a.contains(&item) {
                        a.push(item);
                    }
                }
                base.insert(k, Value::Array(a));
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
    base
}

/// Fills `ref`, `selinux` and `osname` from the config when the treefile lacks them; a treefile `ref`
/// that disagrees with the config's is an error (the toolbox let them differ silently).
pub fn fill_from_config(tree: &mut Map<String, Value>, cfg: &Config) -> Result<String> {
    let c = cfg.ostree_ref.as_str();
    let reference = match tree.get("ref") {
        Some(Value::String(t)) if t != c && !t.contains("${") => {
            bail!("the treefile's ref {t} differs from config.ini's ref {c}; make them agree")
        }
        Some(Value::String(_)) | None => c.to_owned(),
        Some(other) => bail!("the treefile's `ref` must be a string, got {other}"),
    };
    tree.insert("ref".into(), Value::String(reference.clone()));
    if !tree.contains_key("selinux") {
        tree.insert("selinux".into(), Value::Bool(cfg.selinux));
    }
    if !tree.contains_key("osname") {
        tree.insert("osname".into(), Value::String(cfg.os_name.clone()));
    }
    Ok(reference)
}

/// Where rpm-ostree runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// `rpm-ostree` on the host.
    Host,
    /// `ENGINE run … IMAGE rpm-ostree …` (podman or docker).
    Container { engine: String, image: String },
}

/// Everything the `rpm-ostree compose tree` command line is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposePlan {
    pub repo: PathBuf,
    pub workdir: PathBuf,
    pub treefile_name: String,
    pub version: Option<String>,
    pub cachedir: Option<PathBuf>,
    pub gpg: Option<GpgKey>,
}

/// Paths inside the container.
const C_REPO: &str = "/srv/imagebuilder/repo";
const C_WORK: &str = "/srv/imagebuilder/workdir";
const C_CACHE: &str = "/srv/imagebuilder/cache";
const C_GNUPG: &str = "/srv/imagebuilder/gnupg";

/// Builds the command that runs the compose (pure: nothing is run).
pub fn compose_command(plan: &ComposePlan, runner: &Runner) -> Command {
    let inside = matches!(runner, Runner::Container { .. });
    let map = |host: &Path, c: &str| -> String {
        if inside {
            c.to_owned()
        } else {
            host.display().to_string()
        }
    };
    let mut args: Vec<String> = vec!["compose".into(), "tree".into()];
    args.push(format!("--repo={}", map(&plan.repo, C_REPO)));
    if let Some(v) = &plan.version {
        args.push(format!("--add-metadata-string=version={v}"));
    }
    if let Some(c) = &plan.cachedir {
        args.push(format!("--cachedir={}", map(c, C_CACHE)));
    }
    if let Some(k) = &plan.gpg {
        args.push(format!("--gpg-sign={}", k.key_id));
        if let Some(h) = &k.homedir {
            args.push(format!("--gpg-homedir={}", map(h, C_GNUPG)));
        }
    }
    args.push(format!(
        "{}/{}",
        map(&plan.workdir, C_WORK),
        plan.treefile_name
    ));
    match runner {
        Runner::Host => {
            let mut cmd = Command::new("rpm-ostree");
            cmd.args(args);
            cmd
        }
        Runner::Container { engine, image } => {
            let mut cmd = Command::new(engine);
            cmd.args(["run", "--rm", "--privileged", "--net=host"]);
            let mut vol = |host: &Path, c: &str| {
                cmd.arg("-v").arg(format!("{}:{c}", host.display()));
            };
            vol(&plan.repo, C_REPO);
            vol(&plan.workdir, C_WORK);
            if let Some(c) = &plan.cachedir {
                vol(c, C_CACHE);
            }
            if let Some(h) = plan.gpg.as_ref().and_then(|k| k.homedir.as_deref()) {
                vol(h, C_GNUPG);
            }
            cmd.arg(image).arg("rpm-ostree").args(args);
            cmd
        }
    }
}

/// Picks where rpm-ostree runs: the container when an image is given (podman, else docker), else the
/// host's rpm-ostree.
pub fn pick_runner(container: Option<&str>) -> Result<Runner> {
    match container {
        Some(image) => {
            let engine = ["podman", "docker"]
                .into_iter()
                .find(|e| crate::util::cmd::find_in_path(e).is_some())
                .context(
                    "--container needs a container engine: install podman (Debian package \
                     `podman`) or docker (Debian package `docker.io`)",
                )?;
            Ok(Runner::Container {
                engine: engine.to_owned(),
                image: image.to_owned(),
            })
        }
        None => {
            if crate::util::cmd::find_in_path("rpm-ostree").is_none() {
                bail!(
                    "rpm-ostree not found on PATH (Debian 12 does not package it): run it in a \
                     container with --container IMAGE, or commit a prepared tree with --rootfs DIR"
                );
            }
            Ok(Runner::Host)
        }
    }
}

/// Options of a treecompose run.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    pub config: PathBuf,
    pub profile: String,
    pub ostreerepo: Option<PathBuf>,
    pub policy: Policy,
    pub container: Option<String>,
    pub workdir: Option<PathBuf>,
    pub gpg: Option<GpgKey>,
}

/// What a treecompose run did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ComposeOutcome {
    pub reference: String,
    pub commit: String,
    pub previous: Option<String>,
    pub changed: bool,
    pub version: Option<String>,
    pub command: String,
}

/// Runs a whole treecompose (see the module documentation).
pub fn treecompose(opts: &ComposeOptions) -> Result<ComposeOutcome> {
    let loaded = crate::config::load(&opts.config, Some(&opts.profile))?;
    let cfg = &loaded.config;
    let tree_file = cfg.tree_file_path().with_context(|| {
        format!(
            "{}: no `tree_file` set in profile [{}]",
            opts.config.display(),
            loaded.profile
        )
    })?;
    let (mut tree, files) = flatten_treefile(&tree_file)?;
    let reference = fill_from_config(&mut tree, cfg)?;
    ostree::validate_rev(&reference).with_context(|| format!("invalid ref {reference:?}"))?;
    let runner = pick_runner(opts.container.as_deref())?;
    if let Some(k) = &opts.gpg {
        k.check_available()?;
    }

    let repo_path = std::path::absolute(repo_path(opts.ostreerepo.as_deref(), Some(cfg))?)
        .context("resolving the repository path")?;
    let cachedir = cfg.rpmostree_cache_dir.clone();
    // The version is computed before anything is written: a bad policy leaves no trace.
    let (previous, version) = if repo_path.exists() {
        let repo = super::repo::open(&repo_path)?;
        (
            super::repo::resolve(&repo, &reference)?,
            next_version_for(&repo, &reference, &opts.policy)?,
        )
    } else {
        (None, next_version(&opts.policy, None)?)
    };
    if !repo_path.exists()
        && let Some(c) = &cachedir
        && c.exists()
    {
        // A new repository starts with a fresh rpm-ostree cache, as the toolbox did.
        std::fs::remove_dir_all(c)
            .with_context(|| format!("removing stale cache {}", c.display()))?;
    }
    super::repo::open_or_init_archive(&repo_path)?;
    if let Some(c) = &cachedir {
        std::fs::create_dir_all(c).with_context(|| format!("creating cache {}", c.display()))?;
    }

    let tmp;
    let workdir = match &opts.workdir {
        Some(w) => {
            std::fs::create_dir_all(w).with_context(|| format!("creating {}", w.display()))?;
            w.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("atomic-treecompose")
                .tempdir()
                .context("creating a temporary workdir")?;
            tmp.path().to_owned()
        }
    };
    let workdir = std::path::absolute(&workdir).context("resolving the workdir")?;
    stage_companions(&files, &workdir)?;
    let name = tree_file
        .file_name()
        .context("treefile name")?
        .to_string_lossy()
        .into_owned();
    let flattened = serde_json::to_string_pretty(&Value::Object(tree)).context("treefile JSON")?;
    crate::util::fsutil::write_atomic(&workdir.join(&name), flattened.as_bytes())?;

    let plan = ComposePlan {
        repo: repo_path.clone(),
        workdir: workdir.clone(),
        treefile_name: name,
        version: version.clone(),
        cachedir: cachedir
            .map(std::path::absolute)
            .transpose()
            .context("resolving the cache path")?,
        gpg: opts.gpg.clone(),
    };
    let mut cmd = compose_command(&plan, &runner);
    let line = crate::util::cmd::display(&cmd);
    tracing::info!("running {line}");
    cmd.run().context("rpm-ostree compose tree failed")?;

    let repo = super::repo::open(&repo_path)?;
    let commit = super::repo::resolve(&repo, &reference)?
        .with_context(|| format!("rpm-ostree finished but ref {reference} does not exist"))?;
    let changed = previous.as_deref() != Some(commit.as_str());
    if changed {
        tracing::info!("{reference} => {commit}");
    } else {
        tracing::info!("{reference} is unchanged at {commit}");
    }
    super::repo::update_summary(&repo)?;
    if let Some(k) = &opts.gpg {
        super::sign::sign_summary(&repo, k)?;
    }
    Ok(ComposeOutcome {
        reference,
        commit,
        previous,
        changed,
        version: if changed { version } else { None },
        command: line,
    })
}

/// Copies the regular files next to the treefile and its includes (repo files, postprocess scripts,
/// passwd/group files) into the workdir, where rpm-ostree looks for them.
fn stage_companions(files: &[PathBuf], workdir: &Path) -> Result<()> {
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| crate::util::fsutil::parent_dir(f).to_owned())
        .collect();
    for dir in dirs {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            if e.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::copy(e.path(), workdir.join(e.file_name()))
                    .with_context(|| format!("copying {} into the workdir", e.path().display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const INI: &str = "\
[DEFAULT]
outputdir   =
os_name     = fedora-atomic
tree_name   = docker-host
tree_file   = %(os_name)s-%(tree_name)s.json
arch        = x86_64
release     = rawhide
ref         = %(os_name)s/%(release)s/%(arch)s/%(tree_name)s
ostree_repo = %(outputdir)s/repo
; a comment
[f23]
release = 23
";

    fn parse(text: &str, profile: &str) -> Config {
        crate::config::parse(
            text,
            crate::config::Format::Ini,
            Path::new("c.ini"),
            Some(profile),
        )
        .unwrap()
        .config
    }

    #[test]
    fn config_ini_is_read_by_the_project_reader() {
        let c = parse(INI, "DEFAULT");
        assert_eq!(c.ostree_ref, "fedora-atomic/rawhide/x86_64/docker-host");
        assert_eq!(
            c.tree_file.as_deref(),
            Some(Path::new("fedora-atomic-docker-host.json"))
        );
        assert_eq!(c.ostree_repo.as_deref(), Some(Path::new("/repo")));
        assert_eq!(
            parse(INI, "f23").ostree_ref,
            "fedora-atomic/23/x86_64/docker-host"
        );
    }

    #[test]
    fn merge_keeps_order_and_parent_wins() {
        let base = json!({"packages": ["a", "b"], "ref": "base", "units": ["x"]});
        let over = json!({"packages": ["c", "a"], "ref": "top"});
        let Value::Object(m) = Value::Object(merge(
            base.as_object().unwrap().clone(),
            over.as_object().unwrap().clone(),
        )) else {
            unreachable!()
        };
        assert_eq!(m["packages"], json!(["a", "b", "c"]));
        assert_eq!(m["ref"], json!("top"));
        assert_eq!(m["units"], json!(["x"]));
    }

    #[test]
    fn flatten_includes_recursively_and_reports_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, v: Value| std::fs::write(d.path().join(n), v.to_string()).unwrap();
        w(
            "base.json",
            json!({"packages": ["kernel", "systemd"], "selinux": false}),
        );
        w(
            "mid.json",
            json!({"include": "base.json", "packages": ["ostree"]}),
        );
        w(
            "top.json",
            json!({"include": ["mid.json"], "packages": ["vim", "kernel"], "ref": "a/b"}),
        );
        let (t, files) = flatten_treefile(&d.path().join("top.json")).unwrap();
        assert_eq!(t["packages"], json!(["kernel", "systemd", "ostree", "vim"]));
        assert_eq!(t["selinux"], json!(false));
        assert!(!t.contains_key("include"));
        assert_eq!(files.len(), 3);

        w("bad.json", json!({"include": "missing.json"}));
        let err = flatten_treefile(&d.path().join("bad.json")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("bad.json") && msg.contains("missing.json"),
            "{msg}"
        );
        w("loop.json", json!({"include": "loop.json"}));
        let err = flatten_treefile(&d.path().join("loop.json")).unwrap_err();
        assert!(format!("{err:#}").contains("include loop"), "{err:#}");
        std::fs::write(d.path().join("broken.json"), "{not json").unwrap();
        w("inc-broken.json", json!({"include": "broken.json"}));
        let err = flatten_treefile(&d.path().join("inc-broken.json")).unwrap_err();
        assert!(format!("{err:#}").contains("broken.json"), "{err:#}");
    }

    #[test]
    fn fill_ref_selinux_osname() {
        let c = parse(INI, "DEFAULT");
        let mut t = Map::new();
        let r = fill_from_config(&mut t, &c).unwrap();
        assert_eq!(r, "fedora-atomic/rawhide/x86_64/docker-host");
        assert_eq!(t["ref"], json!(r));
        assert_eq!(t["selinux"], json!(true));
        assert_eq!(t["osname"], json!("fedora-atomic"));
        let mut t = json!({"ref": "other/ref"}).as_object().unwrap().clone();
        assert!(fill_from_config(&mut t, &c).is_err());
        let off = parse(&format!("{INI}selinux = off\n"), "f23");
        let mut t = Map::new();
        fill_from_config(&mut t, &off).unwrap();
        assert_eq!(t["selinux"], json!(false));
    }

    #[test]
    fn command_on_host_and_in_containers() {
        let plan = ComposePlan {
            repo: "/r/repo".into(),
            workdir: "/w".into(),
            treefile_name: "t.json".into(),
            version: Some("7.0.3".into()),
            cachedir: Some("/c".into()),
            gpg: Some(GpgKey {
                key_id: "ABCD".into(),
                homedir: Some("/g".into()),
            }),
        };
        let host = crate::util::cmd::display(&compose_command(&plan, &Runner::Host));
        assert_eq!(
            host,
            "rpm-ostree compose tree --repo=/r/repo --add-metadata-string=version=7.0.3 \
             --cachedir=/c --gpg-sign=ABCD --gpg-homedir=/g /w/t.json"
        );
        let runner = Runner::Container {
            engine: "podman".into(),
            image: "quay.io/fedora/fedora:40".into(),
        };
        let c = crate::util::cmd::display(&compose_command(&plan, &runner));
        assert_eq!(
            c,
            "podman run --rm --privileged --net=host -v /r/repo:/srv/imagebuilder/repo \
             -v /w:/srv/imagebuilder/workdir -v /c:/srv/imagebuilder/cache \
             -v /g:/srv/imagebuilder/gnupg quay.io/fedora/fedora:40 rpm-ostree compose tree \
             --repo=/srv/imagebuilder/repo --add-metadata-string=version=7.0.3 \
             --cachedir=/srv/imagebuilder/cache --gpg-sign=ABCD \
             --gpg-homedir=/srv/imagebuilder/gnupg /srv/imagebuilder/workdir/t.json"
        );
        let bare = ComposePlan {
            version: None,
            cachedir: None,
            gpg: None,
            ..plan
        };
        let docker = Runner::Container {
            engine: "docker".into(),
            image: "img".into(),
        };
        assert_eq!(
            crate::util::cmd::display(&compose_command(&bare, &docker)),
            "docker run --rm --privileged --net=host -v /r/repo:/srv/imagebuilder/repo \
             -v /w:/srv/imagebuilder/workdir img rpm-ostree compose tree \
             --repo=/srv/imagebuilder/repo /srv/imagebuilder/workdir/t.json"
        );
    }

    #[test]
    fn repo_path_precedence() {
        let c = parse(
            &INI.replace("%(outputdir)s/repo", "/from/config"),
            "DEFAULT",
        );
        assert_eq!(
            repo_path(Some(Path::new("/flag")), Some(&c)).unwrap(),
            PathBuf::from("/flag")
        );
        assert_eq!(
            repo_path(None, Some(&c)).unwrap(),
            PathBuf::from("/from/config")
        );
        assert!(repo_path(Some(Path::new("http://x/repo")), None).is_err());
    }
}
