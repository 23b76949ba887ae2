//! The initramfs of a live image: which dracut modules the tree's own initramfs has, and a rebuild
//! with the tree's own dracut (never the host's) in the `%post` sandbox when modules are missing.
//!
//! An initramfs is a sequence of newc cpio archives, each optionally compressed (an uncompressed
//! early-microcode archive often comes first). dracut records the modules it included in
//! `usr/lib/dracut/modules.txt`; that file is what [`dracut_modules`] reads.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::deployment::post::{PostOptions, PostScript, run_script};
use crate::deployment::sysconfig::Target;
use crate::util::cmd::CommandExt;

/// The file in which dracut lists the modules it put into an initramfs.
const MODULES_TXT: &str = "usr/lib/dracut/modules.txt";
/// The largest initramfs read into memory to look for [`MODULES_TXT`].
const MAX_INITRAMFS: u64 = 2 << 30;

/// The dracut modules every live boot needs: the live root on a squashfs, then the deployment.
pub const LIVE_MODULES: &[&str] = &["dmsquash-live", "ostree"];
/// What fetching the squashfs over the network adds.
pub const NET_MODULES: &[&str] = &["livenet"];

/// The dracut modules listed in an initramfs, from its `usr/lib/dracut/modules.txt`.
pub fn dracut_modules(initramfs: &Path) -> Result<BTreeSet<String>> {
    let data = read_bounded(initramfs)?;
    let text = find_in_initramfs(&data, MODULES_TXT)
        .with_context(|| format!("reading the initramfs {}", initramfs.display()))?
        .with_context(|| {
            format!(
                "{} has no {MODULES_TXT}: it was not made by dracut, which live boot needs",
                initramfs.display()
            )
        })?;
    Ok(String::from_utf8_lossy(&text)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut data = Vec::new();
    f.take(MAX_INITRAMFS + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        (data.len() as u64) <= MAX_INITRAMFS,
        "{} is larger than {} GiB: not an initramfs",
        path.display(),
        MAX_INITRAMFS >> 30
    );
    Ok(data)
}

/// The content of `name` in the first archive of the initramfs that has it.
pub fn find_in_initramfs(data: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    let mut rest = data;
    loop {
        // Archives are padded with zeros to a 512-byte block.
        let skip = rest.iter().take_while(|b| **b == 0).count();
        rest = &rest[skip..];
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.starts_with(b"070701") || rest.starts_with(b"070702") {
            let (found, used) = scan_newc(rest, name)?;
            if found.is_some() {
                return Ok(found);
            }
            rest = &rest[used..];
            continue;
        }
        // A compressed archive runs to the end of the file.
        let plain = decompress(rest)?;
        let mut inner = plain.as_slice();
        loop {
            let skip = inner.iter().take_while(|b| **b == 0).count();
            inner = &inner[skip..];
            if inner.is_empty() {
                return Ok(None);
            }
            let (found, used) = scan_newc(inner, name)?;
            if found.is_some() {
                return Ok(found);
            }
            inner = &inner[used..];
        }
    }
}

fn hex_field(h: &[u8], i: usize) -> Result<usize> {
    let s = std::str::from_utf8(&h[6 + i * 8..6 + (i + 1) * 8]).context("cpio header")?;
    usize::from_str_radix(s, 16).context("cpio header field")
}

/// Scans one newc archive; returns the entry `name`'s data if present, and the bytes the archive
/// used (through its trailer).
fn scan_newc(data: &[u8], name: &str) -> Result<(Option<Vec<u8>>, usize)> {
    let mut pos = 0;
    loop {
        let h = data.get(pos..pos + 110).context("truncated cpio archive")?;
        ensure!(
            h.starts_with(b"070701") || h.starts_with(b"070702"),
            "not a newc cpio archive at byte {pos}"
        );
        let size = hex_field(h, 6)?;
        let namesize = hex_field(h, 11)?;
        let name_start = pos + 110;
        let entry_name = data
            .get(name_start..name_start + namesize.saturating_sub(1))
            .context("truncated cpio name")?;
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data_end = data_start + size;
        let body = data
            .get(data_start..data_end)
            .context("truncated cpio data")?;
        pos = data_end.next_multiple_of(4);
        let entry_name = entry_name.strip_prefix(b"./").unwrap_or(entry_name);
        if entry_name == b"TRAILER!!!" {
            return Ok((None, pos.min(data.len())));
        }
        if entry_name == name.as_bytes() {
            return Ok((Some(body.to_vec()), pos));
        }
    }
}

/// Decompresses one compressed archive by its magic: gzip natively, the others with their tools.
fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .take(MAX_INITRAMFS * 4)
            .read_to_end(&mut out)
            .context("decompressing gzip")?;
        return Ok(out);
    }
    let tool: &[&str] = if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        &["zstd", "-dc"]
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        &["xz", "-dc"]
    } else if data.starts_with(&[0x04, 0x22, 0x4d, 0x18])
        || data.starts_with(&[0x02, 0x21, 0x4c, 0x18])
    {
        &["lz4", "-dc"]
    } else if data.starts_with(b"BZh") {
        &["bzip2", "-dc"]
    } else if data.starts_with(&[0x5d, 0, 0]) {
        &["xz", "--format=lzma", "-dc"]
    } else {
        bail!(
            "unknown compression (first bytes {:02x?})",
            &data[..data.len().min(4)]
        );
    };
    crate::util::cmd::require_program(tool[0])?;
    let mut input = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    std::io::Write::write_all(&mut input, data).context("writing a temporary file")?;
    let file = std::fs::File::open(input.path()).context("reopening a temporary file")?;
    Command::new(tool[0])
        .args(&tool[1..])
        .stdin(Stdio::from(file))
        .run_stdout()
        .with_context(|| format!("decompressing with {}", tool[0]))
}

/// The modules of `wanted` missing from `have`.
pub fn missing<'a>(have: &BTreeSet<String>, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|m| !have.contains(*m))
        .collect()
}

/// The dracut modules the tree's own dracut can install (`usr/lib/dracut/modules.d/NNname`).
pub fn tree_dracut_modules(deployment: &Path) -> Result<BTreeSet<String>> {
    let dir = deployment.join("usr/lib/dracut/modules.d");
    let mut out = BTreeSet::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let bare = name.trim_start_matches(|c: char| c.is_ascii_digit());
        if !bare.is_empty() {
            out.insert(bare.to_string());
        }
    }
    Ok(out)
}

/// Why the tree's dracut cannot add `modules`, or `None` when it can.
pub fn cannot_rebuild(deployment: &Path, modules: &[&str]) -> Result<Option<String>> {
    if !deployment.join("usr/bin/dracut").exists() && !deployment.join("usr/sbin/dracut").exists() {
        return Ok(Some(
            "the tree has no dracut to rebuild its initramfs with (install dracut in the tree)"
                .into(),
        ));
    }
    let have = tree_dracut_modules(deployment)?;
    let mut why = Vec::new();
    for m in modules {
        if !have.contains(*m) {
            why.push(format!(
                "dracut module {m} is not in the tree ({})",
                package_hint(m)
            ));
        }
    }
    if modules.contains(&"livenet") {
        if !have.contains("network") && !have.contains("network-legacy") {
            why.push(
                "livenet needs dracut's network module, which the tree lacks (Debian/Fedora package dracut-network)"
                    .into(),
            );
        }
        if !deployment.join("usr/bin/curl").exists() {
            why.push(
                "livenet fetches the image with curl, which the tree lacks (package curl)".into(),
            );
        }
    }
    Ok((!why.is_empty()).then(|| why.join("; ")))
}

fn package_hint(module: &str) -> &'static str {
    match module {
        "livenet" | "network" | "network-legacy" => "package dracut-network",
        "dmsquash-live" => "package dracut-live on Debian, dracut-live on Fedora",
        "ostree" => "package ostree-boot on Debian, ostree on Fedora",
        _ => "a dracut package of the tree",
    }
}

/// How to rebuild an initramfs in the tree.
#[derive(Debug, Clone)]
pub struct Rebuild<'a> {
    /// The deployment whose dracut and kernel modules are used.
    pub deployment: &'a Path,
    pub kernel_version: &'a str,
    /// Modules to add on top of the tree's dracut configuration.
    pub modules: &'a [&'a str],
    /// Scratch directory (bound into the sandbox; the result is written here).
    pub work: &'a Path,
    /// Where the sandbox's log goes.
    pub log_dir: &'a Path,
    pub source_date_epoch: Option<i64>,
}

/// Rebuilds the initramfs with the tree's own dracut, run like a `%post` script in the deployment's
/// sandbox (read-only `/usr`, no network). Returns the new initramfs in `work`.
pub fn rebuild(r: &Rebuild<'_>) -> Result<PathBuf> {
    if let Some(why) = cannot_rebuild(r.deployment, r.modules)? {
        bail!(
            "the tree's dracut cannot build an initramfs with {}: {why}",
            r.modules.join(", ")
        );
    }
    let have = tree_dracut_modules(r.deployment)?;
    let mut add: Vec<&str> = r.modules.to_vec();
    // Without NetworkManager dracut chooses systemd-networkd for the network and fails on trees
    // without its ifcfg module: the legacy (dhclient) handler works everywhere.
    if add.contains(&"livenet")
        && have.contains("network-legacy")
        && !have.contains("network-manager")
    {
        add.insert(0, "network-legacy");
    }
    std::fs::create_dir_all(r.work).with_context(|| format!("creating {}", r.work.display()))?;
    let mut body = String::from("set -e\n");
    // dracut cannot make device nodes in the sandbox (and needs none: the kernel's devtmpfs has them).
    body.push_str("export DRACUT_NO_MKNOD=1\n");
    let mut reproducible = "";
    if let Some(epoch) = r.source_date_epoch {
        body.push_str(&format!("export SOURCE_DATE_EPOCH={epoch}\n"));
        reproducible = " --reproducible";
    }
    body.push_str(&format!(
        "exec dracut --force --no-hostonly --no-early-microcode{reproducible} --add '{}' --omit plymouth {OUT_IN_SANDBOX}/initramfs.img '{}'\n",
        add.join(" "),
        r.kernel_version
    ));
    let script = PostScript {
        body,
        interpreter: Some("/bin/sh".into()),
        erroronfail: true,
        ..PostScript::default()
    };
    let mut opts = PostOptions::new(r.log_dir, 16 << 30);
    opts.binds
        .push((r.work.to_path_buf(), OUT_IN_SANDBOX.into()));
    let target = Target::ostree_deployment(r.deployment)?;
    let ran = run_script(&target, 0, &script, &opts);
    // The sandbox names its log after the script's index; this one is dracut's.
    let log = r.log_dir.join(DRACUT_LOG);
    let _ = std::fs::rename(r.log_dir.join("post-0.log"), &log);
    ran.with_context(|| {
        format!(
            "rebuilding the initramfs with the tree's dracut (log {})",
            log.display()
        )
    })?;
    let out = r.work.join("initramfs.img");
    ensure!(
        out.is_file(),
        "the tree's dracut wrote no initramfs (see {})",
        log.display()
    );
    Ok(out)
}

/// The log of the dracut run in the build's log directory.
pub const DRACUT_LOG: &str = "dracut-initramfs.log";

/// Where [`rebuild`]'s work directory appears in the sandbox.
const OUT_IN_SANDBOX: &str = "/tmp/imagebuilder-initramfs";

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut all: Vec<(&str, &[u8])> = entries.to_vec();
        all.push(("TRAILER!!!", b""));
        for (i, (name, data)) in all.iter().enumerate() {
            let fields = [
                i as u32 + 1,
                0o100644,
                0,
                0,
                1,
                0,
                data.len() as u32,
                0,
                0,
                0,
                0,
                name.len() as u32 + 1,
                0,
            ];
            out.extend_from_slice(b"070701");
            for f in fields {
                out.extend_from_slice(format!("{f:08x}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        while out.len() % 512 != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn modules_are_found_after_an_early_archive_and_in_gzip() {
        let early = newc(&[("kernel/x86/microcode/GenuineIntel.bin", b"ucode")]);
        let main = newc(&[
            ("usr/bin/true", b"\x7fELF"),
            (MODULES_TXT, b"systemd\nostree\ndmsquash-live\n"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &main).unwrap();
        let mut image = early.clone();
        image.extend(gz.finish().unwrap());
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), &image).unwrap();
        let m = dracut_modules(t.path()).unwrap();
        assert_eq!(
            m.iter().map(String::as_str).collect::<Vec<_>>(),
            ["dmsquash-live", "ostree", "systemd"]
        );
        assert_eq!(missing(&m, &["ostree", "livenet"]), ["livenet"]);
        // Uncompressed, too.
        std::fs::write(t.path(), &main).unwrap();
        assert!(dracut_modules(t.path()).unwrap().contains("ostree"));
    }

    #[test]
    fn an_initramfs_without_the_dracut_list_is_named() {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), newc(&[("init", b"#!/bin/sh\n")])).unwrap();
        let e = format!("{:#}", dracut_modules(t.path()).unwrap_err());
        assert!(e.contains("not made by dracut"), "{e}");
        std::fs::write(t.path(), b"garbage that is no archive").unwrap();
        let e = format!("{:#}", dracut_modules(t.path()).unwrap_err());
        assert!(e.contains("unknown compression"), "{e}");
    }

    #[test]
    fn missing_network_support_is_explained() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("usr/lib/dracut/modules.d");
        for x in ["90dmsquash-live", "90livenet", "98ostree"] {
            std::fs::create_dir_all(m.join(x)).unwrap();
        }
        std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        std::fs::write(d.path().join("usr/bin/dracut"), "").unwrap();
        let why = cannot_rebuild(d.path(), &["livenet", "dmsquash-live", "ostree"])
            .unwrap()
            .unwrap();
        assert!(
            why.contains("dracut-network") && why.contains("curl"),
            "{why}"
        );
        std::fs::create_dir_all(m.join("35network-legacy")).unwrap();
        std::fs::write(d.path().join("usr/bin/curl"), "").unwrap();
        assert_eq!(
            cannot_rebuild(d.path(), &["livenet", "dmsquash-live", "ostree"]).unwrap(),
            None
        );
        let why = cannot_rebuild(d.path(), &["nfs"]).unwrap().unwrap();
        assert!(why.contains("nfs"), "{why}");
    }
}
