//! Paths inside a target tree, resolved as the booted system would see them, and whole-file writes.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A tree to configure: its root and the directory that is `/var` at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The deployed root (`…/deploy/OSNAME/deploy/COMMIT.0`), or any plain root directory.
    pub root: PathBuf,
    /// What is mounted on `/var`: the stateroot's `var` for OSTree, `root/var` for a plain tree.
    pub var: PathBuf,
}

impl Target {
    /// An OSTree deployment directory: `/var` is the stateroot's `var`, two levels up.
    pub fn ostree_deployment(deployment: &Path) -> Result<Target> {
        let var = deployment
            .parent()
            .and_then(Path::parent)
            .map(|stateroot| stateroot.join("var"))
            .with_context(|| format!("{} is not a deployment directory", deployment.display()))?;
        if !var.is_dir() {
            bail!(
                "{} is not an OSTree deployment: no stateroot var at {}",
                deployment.display(),
                var.display()
            );
        }
        Ok(Target {
            root: deployment.to_path_buf(),
            var,
        })
    }

    /// A plain root directory whose `/var` is its own `var`.
    pub fn plain(root: &Path) -> Target {
        Target {
            root: root.to_path_buf(),
            var: root.join("var"),
        }
    }

    /// Maps an absolute, already resolved guest path to the host, without following symlinks.
    fn map_lexical(&self, guest: &Path) -> PathBuf {
        let rel = guest.strip_prefix("/").unwrap_or(guest);
        match rel.strip_prefix("var") {
            Ok(rest) => self.var.join(rest),
            Err(_) => self.root.join(rel),
        }
    }

    /// The host path of `guest` (absolute, as seen inside the booted system), following symlinks
    /// inside the tree as the booted system would (`/home` → `var/home`, `/root` → `var/roothome`,
    /// absolute targets relative to the tree's root). The last component is followed too when it
    /// exists; a missing tail is appended as is.
    pub fn host_path(&self, guest: &str) -> Result<PathBuf> {
        Ok(self.map_lexical(&self.resolve(guest)?))
    }

    /// Resolves symlinks of `guest` inside the tree; returns the guest path.
    pub fn resolve(&self, guest: &str) -> Result<PathBuf> {
        if !guest.starts_with('/') {
            bail!("path `{guest}` is not absolute");
        }
        let mut todo: Vec<String> = components(Path::new(guest)).into_iter().rev().collect();
        let mut cur = PathBuf::from("/");
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let host = self.map_lexical(&next);
            match fs::symlink_metadata(&host) {
                Ok(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        bail!("too many levels of symbolic links resolving `{guest}`");
                    }
                    let link = fs::read_link(&host)
                        .with_context(|| format!("reading link {}", host.display()))?;
                    if link.is_absolute() {
                        cur = PathBuf::from("/");
                    }
                    for part in components(&link).into_iter().rev() {
                        todo.push(part);
                    }
                }
                _ => cur = next,
            }
        }
        Ok(cur)
    }

    /// Reads a guest file as text; `None` if it does not exist.
    pub fn read_optional(&self, guest: &str) -> Result<Option<String>> {
        let p = self.host_path(guest)?;
        match fs::read(&p) {
            Ok(b) => {
                Ok(Some(String::from_utf8(b).with_context(|| {
                    format!("{} is not UTF-8 text", p.display())
                })?))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    /// True when the guest path exists (after resolving symlinks).
    pub fn exists(&self, guest: &str) -> bool {
        self.host_path(guest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Writes a guest file whole (temp file + rename). An existing file keeps its mode and owner;
    /// a new one gets `mode` and `owner` (uid, gid). Parent directories are created (0755 root).
    pub fn write(&self, guest: &str, contents: &[u8], mode: u32, owner: (u32, u32)) -> Result<()> {
        let p = self.host_path(guest)?;
        let (mode, owner) = match fs::metadata(&p) {
            Ok(m) => (m.permissions().mode() & 0o7777, (m.uid(), m.gid())),
            Err(_) => (mode, owner),
        };
        write_file(&p, contents, mode, owner)
    }

    /// Creates (or replaces) a symlink at guest path `link` pointing at `to` (not resolved).
    pub fn symlink(&self, guest_link: &str, to: &str) -> Result<()> {
        let (dir, name) = split_guest(guest_link)?;
        let hdir = self.host_path(dir)?;
        fs::create_dir_all(&hdir).with_context(|| format!("creating {}", hdir.display()))?;
        let host = hdir.join(name);
        let tmp = hdir.join(format!(".{name}.imagebuilder-tmp"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(to, &tmp)
            .with_context(|| format!("creating symlink {}", tmp.display()))?;
        fs::rename(&tmp, &host).with_context(|| format!("renaming to {}", host.display()))?;
        Ok(())
    }

    /// Creates a guest directory (and missing parents, 0755 root) with `mode` and `owner`.
    pub fn mkdir(&self, guest: &str, mode: u32, owner: (u32, u32)) -> Result<PathBuf> {
        let p = self.host_path(guest)?;
        if !p.is_dir() {
            fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
            set_mode_owner(&p, mode, owner)?;
        }
        Ok(p)
    }
}

/// Splits a guest path into its parent directory and last component.
fn split_guest(guest: &str) -> Result<(&str, &str)> {
    let guest = guest.trim_end_matches('/');
    match guest.rfind('/') {
        Some(i) if i + 1 < guest.len() => {
            Ok((if i == 0 { "/" } else { &guest[..i] }, &guest[i + 1..]))
        }
        _ => bail!("path `{guest}` has no file name"),
    }
}

fn components(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

/// Writes a host file whole with the given mode and owner: temp file in the same directory, fsync,
/// rename. Never writes in place (the old file may be a hard link into an OSTree repository).
pub fn write_file(path: &Path, contents: &[u8], mode: u32, owner: (u32, u32)) -> Result<()> {
    let dir = crate::util::fsutil::parent_dir(path);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".imagebuilder-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    fs::write(tmp.path(), contents).with_context(|| format!("writing {}", path.display()))?;
    set_mode_owner(tmp.path(), mode, owner)?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming a temporary file to {}", path.display()))?;
    Ok(())
}

/// chown + chmod of a host path (not following a final symlink for the owner).
pub fn set_mode_owner(path: &Path, mode: u32, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {uid}:{gid} {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))?;
    Ok(())
}

/// Copies a directory tree (files, directories, symlinks) giving every copy `owner`; existing files in
/// `to` are left alone (as `useradd` does with the skeleton when the home already exists).
pub fn copy_tree_owned(from: &Path, to: &Path, owner: (u32, u32)) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        if fs::symlink_metadata(&dst).is_ok() {
            if meta.is_dir() && dst.is_dir() {
                copy_tree_owned(&src, &dst, owner)?;
            }
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)
                .with_context(|| format!("creating {}", dst.display()))?;
            std::os::unix::fs::lchown(&dst, Some(owner.0), Some(owner.1))?;
        } else if meta.is_dir() {
            fs::create_dir(&dst).with_context(|| format!("creating {}", dst.display()))?;
            set_mode_owner(&dst, mode, owner)?;
            copy_tree_owned(&src, &dst, owner)?;
        } else if meta.is_file() {
            fs::copy(&src, &dst).with_context(|| format!("copying to {}", dst.display()))?;
            set_mode_owner(&dst, mode, owner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_ostree_symlinks_into_the_stateroot_var() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("deploy/os/deploy/abc.0");
        let var = d.path().join("deploy/os/var");
        fs::create_dir_all(root.join("var")).unwrap();
        fs::create_dir_all(var.join("home")).unwrap();
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("var/home", root.join("home")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("var/roothome", root.join("root")).unwrap();
        let t = Target::ostree_deployment(&root).unwrap();
        assert_eq!(t.var, var);
        assert_eq!(t.host_path("/home/alice").unwrap(), var.join("home/alice"));
        assert_eq!(
            t.host_path("/root/.ssh").unwrap(),
            var.join("roothome/.ssh")
        );
        assert_eq!(t.host_path("/lib/x").unwrap(), root.join("usr/lib/x"));
        assert_eq!(
            t.host_path("/etc/../etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        // An absolute link never escapes the tree.
        std::os::unix::fs::symlink("/../../../../etc", root.join("evil")).unwrap();
        assert_eq!(t.host_path("/evil/x").unwrap(), root.join("etc/x"));
        assert!(t.host_path("relative").is_err());
    }

    #[test]
    #[ignore = "slow tier: needs root (chown to root)"]
    fn write_replaces_and_keeps_mode() {
        let d = tempfile::tempdir().unwrap();
        let t = Target::plain(d.path());
        t.write("/etc/x", b"one", 0o600, (0, 0)).unwrap();
        let p = d.path().join("etc/x");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        // A hard link to the old file must keep the old content (no in-place write).
        fs::hard_link(&p, d.path().join("link")).unwrap();
        t.write("/etc/x", b"two", 0o600, (0, 0)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read(d.path().join("link")).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        t.symlink("/etc/l", "../usr/x").unwrap();
        t.symlink("/etc/l", "../usr/y").unwrap();
        assert_eq!(
            fs::read_link(d.path().join("etc/l")).unwrap(),
            Path::new("../usr/y")
        );
    }
}
