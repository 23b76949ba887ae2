//! Adapter: the `kickstart` crate's typed model → the disk area's [`DiskRequest`] and
//! [`OstreeSetup`]. Every item keeps its kickstart line, so layout errors name it.
//! [`build_from_kickstart_file`] is the whole kickstart-file → disk image build the CLI runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kickstart::{Kickstart, typed};

use crate::build::publish::{OutputFormat, validate_name};
use crate::build::{BuildResult, ImageJob, build_image};
use crate::deployment::hooks::{KickstartConfig, KickstartPost};

use crate::plan::request::{
    AutopartRequest, BootloaderRequest, DiskRequest, Located, LogVolRequest, MAX_DISK_MIB,
    OstreeSetup, PartitionRequest, ReqpartRequest, VolGroupRequest,
};

fn mib(v: Option<i64>) -> Option<u64> {
    v.map(|x| x.max(0) as u64)
}

/// A size option (`--size`, `--maxsize`: MiB; `--pesize`: KiB) that must be positive and fit a disk
/// image; a bad one is recorded in `invalid` with its line and dropped.
fn size(
    v: Option<i64>,
    option: &str,
    line: usize,
    invalid: &mut Vec<Located<String>>,
) -> Option<u64> {
    let x = v?;
    if option == "--pesize" && x == 0 {
        // pykickstart's default: the installer's extent size.
        return None;
    }
    let max = match option {
        "--pesize" => MAX_DISK_MIB * 1024,
        _ => MAX_DISK_MIB,
    };
    if x >= 1 && (x as u64) <= max {
        return Some(x as u64);
    }
    let unit = if option == "--pesize" { "KiB" } else { "MiB" };
    let why = if x < 1 {
        format!("{option}={x} is not a positive number of {unit}")
    } else {
        format!(
            "{option}={x} {unit} is larger than the largest disk image this builder writes ({} TiB)",
            (MAX_DISK_MIB + 1) >> 20
        )
    };
    invalid.push(Located { line, value: why });
    None
}

/// Reads the disk-related commands of `ks`. `source_name` names the kickstart in errors.
pub fn from_kickstart(ks: &Kickstart, source_name: &str) -> (DiskRequest, Option<OstreeSetup>) {
    let mut req = DiskRequest {
        source_name: source_name.to_string(),
        ..Default::default()
    };
    read_partitions(ks, &mut req);
    read_bootloader(ks, &mut req);
    read_noops(ks, &mut req);
    read_install(ks, &mut req);
    read_lvm(ks, &mut req);
    read_unsupported(ks, &mut req);
    req.unsupported.sort_by_key(|u| u.line);
    req.invalid.sort_by_key(|u| u.line);
    let ostree = typed::ostreesetup(ks).map(|o| OstreeSetup {
        line: o.at.line,
        osname: o.osname.clone(),
        remote: Some(o.remote.clone()).filter(|r| !r.is_empty()),
        url: o.url.clone(),
        reference: o.reference.clone(),
        nogpg: o.nogpg,
    });
    (req, ostree)
}

/// `part`, `reqpart` and `autopart`.
fn read_partitions(ks: &Kickstart, req: &mut DiskRequest) {
    for p in typed::partitions(ks) {
        req.partitions.push(PartitionRequest {
            line: p.at.line,
            mountpoint: p.mountpoint.clone(),
            fstype: p.fstype.clone(),
            size_mib: size(p.size, "--size", p.at.line, &mut req.invalid),
            grow: p.grow,
            maxsize_mib: size(p.maxsize, "--maxsize", p.at.line, &mut req.invalid),
            label: p.label.clone(),
            fsoptions: p.fsoptions.clone(),
        });
    }
    if let Some(r) = typed::reqpart(ks) {
        req.reqpart = Some(ReqpartRequest {
            line: r.at.line,
            add_boot: r.add_boot,
        });
    }
    if let Some(a) = typed::autopart(ks) {
        let kind = a.kind.map(|k| match k {
            0 => "plain".to_string(),
            1 => "btrfs".to_string(),
            2 => "lvm".to_string(),
            3 => "thinp".to_string(),
            other => format!("type {other}"),
        });
        req.autopart = Some(AutopartRequest {
            line: a.at.line,
            kind,
            fstype: a.fstype.clone(),
            noswap: a.noswap,
        });
    }
}

fn read_bootloader(ks: &Kickstart, req: &mut DiskRequest) {
    if let Some(b) = typed::bootloader(ks) {
        req.bootloader = BootloaderRequest {
            line: b.at.line,
            append: b
                .append
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            timeout: b.timeout.map(|t| t.clamp(0, u32::MAX as i64) as u32),
            disabled: b.disabled || b.location == "none",
        };
    }
}

/// What an installer needs to know of the target disk and of the end of the install.
fn read_install(ks: &Kickstart, req: &mut DiskRequest) {
    let file = req.source_name.clone();
    let t = &mut req.install_target;
    let mut sources = Vec::new();
    if let Some(i) = typed::ignoredisk(ks) {
        t.named.extend(i.only_use.iter().cloned());
        t.ignored.extend(i.drives.iter().cloned());
        sources.push(format!("ignoredisk at {file}:{}", i.at.line));
    }
    if let Some(c) = typed::clearpart(ks) {
        t.named.extend(c.drives.iter().cloned());
        // pykickstart: --none is type 2.
        t.may_clear |= c.kind != Some(2);
        sources.push(format!("clearpart at {file}:{}", c.at.line));
    }
    for p in typed::partitions(ks) {
        if let Some(d) = &p.disk {
            t.named.extend(d.split(',').map(|s| s.trim().to_string()));
            sources.push(format!("part --ondisk at {file}:{}", p.at.line));
        }
    }
    if typed::zerombr(ks).is_some() {
        t.may_clear = true;
    }
    let mut seen = std::collections::BTreeSet::new();
    t.named.retain(|n| seen.insert(n.clone()));
    t.source = sources.join(", ");
    let r = typed::reboot(ks);
    req.finish = disklayout::install::Finish::from_command(
        r.as_ref().map(|r| r.action.as_str()),
        r.as_ref().is_some_and(|r| r.eject),
    );
}

/// Commands with nothing to do on a fresh image, accepted as such.
fn read_noops(ks: &Kickstart, req: &mut DiskRequest) {
    if let Some(c) = typed::clearpart(ks) {
        req.accepted_noops.push(Located {
            line: c.at.line,
            value: "clearpart".into(),
        });
    }
    if let Some(z) = typed::zerombr(ks) {
        req.accepted_noops.push(Located {
            line: z.at.line,
            value: "zerombr".into(),
        });
    }
    if let Some(i) = typed::ignoredisk(ks) {
        req.accepted_noops.push(Located {
            line: i.at.line,
            value: "ignoredisk".into(),
        });
    }
}

/// `volgroup` and `logvol`.
fn read_lvm(ks: &Kickstart, req: &mut DiskRequest) {
    for v in typed::volgroups(ks) {
        req.volgroups.push(VolGroupRequest {
            line: v.at.line,
            name: v.name.clone(),
            pvs: v.partitions.clone(),
            pesize_kib: size(v.pesize, "--pesize", v.at.line, &mut req.invalid),
            reserved_mib: mib(v.reserved_space),
            reserved_percent: mib(v.reserved_percent),
            preexist: v.preexist,
        });
    }
    for l in typed::logvols(ks) {
        req.logvols.push(LogVolRequest {
            line: l.at.line,
            mountpoint: l.mountpoint.clone(),
            name: l.name.clone(),
            vgname: l.vgname.clone(),
            size_mib: size(l.size, "--size", l.at.line, &mut req.invalid),
            percent: mib(l.percent),
            grow: l.grow,
            maxsize_mib: size(l.maxsize, "--maxsize", l.at.line, &mut req.invalid),
            fstype: l.fstype.clone(),
            label: l.label.clone(),
            fsoptions: l.fsoptions.clone(),
            thin_pool: l.thin_pool,
            thin: l.thin_volume,
            pool_name: l.pool_name.clone(),
            preexist: l.preexist,
            encrypted: l.encrypted,
        });
    }
}

/// Storage the builder does not make: `raid`, `btrfs` volumes.
fn read_unsupported(ks: &Kickstart, req: &mut DiskRequest) {
    for r in typed::raids(ks) {
        req.unsupported.push(Located {
            line: r.at.line,
            value: "`raid`".into(),
        });
    }
    for b in typed::btrfs(ks) {
        req.unsupported.push(Located {
            line: b.at.line,
            value: "`btrfs` volumes".into(),
        });
    }
}

/// What a kickstart-driven build needs besides the kickstart (the options of `imagebuilder image`,
/// which `imagebuilder imagefactory --native` shares).
#[derive(Debug, Clone, Default)]
pub struct KickstartImageOptions {
    /// Pull from this local repository instead of the kickstart's URL.
    pub ostree_repo: Option<PathBuf>,
    /// Keep the kickstart's URL as the image's remote even with `ostree_repo`.
    pub preserve_ks_url: bool,
    /// Overrides `ostreesetup --ref`.
    pub reference: Option<String>,
    pub nogpg: bool,
    pub gpg_keys: Vec<PathBuf>,
    pub formats: Vec<OutputFormat>,
    pub qcow2_compress: bool,
    pub outdir: PathBuf,
    /// Base name of the outputs; default: the kickstart's file name without extension.
    pub name: Option<String>,
    /// Koji image-build naming: with `version` and `release` the outputs are called
    /// `NAME-VERSION-RELEASE.ARCH.<ext>` ([`koji_name`]).
    pub version: Option<String>,
    pub release: Option<String>,
    /// Architecture in the Koji name (default: the build host's, e.g. `x86_64`).
    pub arch: Option<String>,
    pub overwrite: bool,
    /// Total disk size in bytes.
    pub size: Option<u64>,
    /// Reproducible ids and timestamps (see [`source_date_epoch_from_env`]).
    pub source_date_epoch: Option<i64>,
    /// Kickstart syntax version (`F22`, `RHEL9`, `DEVEL`, `auto`); `None` is `auto`: the file's
    /// `#version=` line, else DEVEL.
    pub syntax: Option<String>,
    /// Options of the live outputs.
    pub live: crate::build::LiveOptions,
}

/// `SOURCE_DATE_EPOCH` from the environment (unset or empty: `None`).
pub fn source_date_epoch_from_env() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v} is not a number")
            })?))
        }
        _ => Ok(None),
    }
}

/// Builds disk images from the kickstart file at `kickstart`: parses it, reads its disk layout and
/// `ostreesetup`, and runs [`build_image`] with the kickstart's system configuration and `%post`
/// hooks.
pub fn build_from_kickstart_file(
    kickstart: &Path,
    opts: KickstartImageOptions,
) -> Result<BuildResult> {
    check_name_options(&opts)?;
    let source_name = kickstart.display().to_string();
    if !kickstart.exists() {
        bail!("kickstart {source_name} not found");
    }
    let ks = read_kickstart_file(kickstart, opts.syntax.as_deref())?;
    let source = KickstartSource {
        name: source_name,
        path: Some(kickstart.to_path_buf()),
        sha256: crate::build::publish::sha256_file(kickstart)?,
    };
    build_from_kickstart(&ks, &source, opts)
}

/// Checks `--name`, `--version`, `--release` and `--arch` before any work (see
/// [`validate_name`]): the error names the option.
pub fn check_name_options(opts: &KickstartImageOptions) -> Result<()> {
    for (what, v) in [
        ("--name", &opts.name),
        ("--version", &opts.version),
        ("--release", &opts.release),
        ("--arch", &opts.arch),
    ] {
        if let Some(v) = v {
            validate_name(what, v)?;
        }
    }
    Ok(())
}

/// Parses the kickstart file at `kickstart` strictly under `syntax` (`None` or `auto`: the file's
/// `#version=` line, else DEVEL), as [`build_from_kickstart_file`] reads it.
pub fn read_kickstart_file(kickstart: &Path, syntax: Option<&str>) -> Result<Kickstart> {
    // A FIFO or device is named as such before anything opens it.
    crate::util::fsutil::check_input(kickstart, "kickstart", kickstart::loader::MAX_FILE_BYTES)?;
    let text =
        crate::util::fsutil::read_input(kickstart, "kickstart", kickstart::loader::MAX_FILE_BYTES)?;
    let version = crate::ks::resolve_syntax(syntax.unwrap_or("auto"), Some(&text))?;
    kickstart::parse_file(&kickstart.display().to_string(), version)
        .map_err(|d| anyhow::anyhow!("{d}"))
}

/// Koji image-build's output base name, `NAME-VERSION-RELEASE.ARCH` (the outputs add `.raw.xz`,
/// `.qcow2`, `.vagrant-libvirt.box`, …). Version and release are parts of an NVR: no `-`.
pub fn koji_name(name: &str, version: &str, release: &str, arch: &str) -> Result<String> {
    for (what, v) in [
        ("name", name),
        ("--version", version),
        ("--release", release),
        ("--arch", arch),
    ] {
        validate_name(what, v)?;
    }
    for (what, v) in [("--version", version), ("--release", release)] {
        if v.contains('-') {
            bail!(
                "{what} `{v}` contains `-`: Koji's NAME-VERSION-RELEASE needs version and release without dashes"
            );
        }
    }
    let full = format!("{name}-{version}-{release}.{arch}");
    validate_name("the Koji name NAME-VERSION-RELEASE.ARCH", &full)?;
    Ok(full)
}

/// Where a parsed kickstart came from, for error messages and the build metadata.
#[derive(Debug, Clone)]
pub struct KickstartSource {
    /// Shown in errors (`NAME:LINE`); the default output name is its file stem.
    pub name: String,
    /// The file, when the kickstart was read from one.
    pub path: Option<PathBuf>,
    /// sha256 of the kickstart text, recorded in `metadata.json`.
    pub sha256: String,
}

/// Builds disk images from a parsed kickstart: reads its disk layout and `ostreesetup`, and runs
/// [`build_image`] with the kickstart's system configuration and `%post` hooks.
pub fn build_from_kickstart(
    ks: &Kickstart,
    source: &KickstartSource,
    opts: KickstartImageOptions,
) -> Result<BuildResult> {
    check_name_options(&opts)?;
    let (disk, ostreesetup) = from_kickstart(ks, &source.name);
    let name = match opts.name {
        Some(n) => n,
        None => {
            let stem = Path::new(&source.name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .context("cannot derive an output name from the kickstart path; pass --name")?;
            validate_name(
                "the output name taken from the kickstart's file name",
                &stem,
            )
            .map_err(|e| anyhow::anyhow!("{e}; pass --name"))?;
            stem
        }
    };
    let name = match (&opts.version, &opts.release) {
        (Some(v), Some(r)) => koji_name(
            &name,
            v,
            r,
            opts.arch.as_deref().unwrap_or(std::env::consts::ARCH),
        )?,
        (None, None) => {
            if let Some(a) = &opts.arch {
                bail!(
                    "--arch {a} needs --version and --release (Koji names are NAME-VERSION-RELEASE.ARCH)"
                );
            }
            name
        }
        (Some(_), None) => {
            bail!("--version needs --release (Koji names are NAME-VERSION-RELEASE.ARCH)")
        }
        (None, Some(_)) => {
            bail!("--release needs --version (Koji names are NAME-VERSION-RELEASE.ARCH)")
        }
    };
    if let Some(repo) = &opts.ostree_repo
        && !repo.is_dir()
    {
        bail!("--ostreerepo {}: no such directory", repo.display());
    }
    let job = ImageJob {
        disk,
        ostreesetup,
        ostree_repo: opts.ostree_repo,
        preserve_ks_url: opts.preserve_ks_url,
        reference: opts.reference,
        nogpg: opts.nogpg,
        gpg_keys: opts.gpg_keys,
        formats: opts.formats,
        qcow2_compress: opts.qcow2_compress,
        outdir: opts.outdir,
        name,
        overwrite: opts.overwrite,
        size: opts.size,
        kickstart_path: source.path.clone(),
        kickstart_sha256: Some(source.sha256.clone()),
        id_seed: Some({
            use sha2::Digest as _;
            crate::build::publish::hex(&sha2::Sha256::digest(kickstart::write(ks)))
        }),
        source_date_epoch: opts.source_date_epoch,
        live: opts.live,
    };
    let config = KickstartConfig { ks };
    let post = KickstartPost { ks };
    build_image(&job, &[&config, &post])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn koji_names() {
        assert_eq!(
            koji_name("fedora-atomic", "29", "1.0", "x86_64").unwrap(),
            "fedora-atomic-29-1.0.x86_64"
        );
        let e = koji_name("f", "29-1", "1", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--version `29-1` contains `-`"), "{e}");
        let e = koji_name("f", "29", "a/b", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--release \"a/b\" contains '/'"), "{e}");
        let e = koji_name("f", "29", "1", "x86 64").unwrap_err().to_string();
        assert!(e.starts_with("--arch \"x86 64\""), "{e}");
        let long = "n".repeat(190);
        let e = koji_name(&long, "29", "1", "x86_64")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("the Koji name"), "{e}");
        let opts = KickstartImageOptions {
            name: Some("a\nb".into()),
            ..Default::default()
        };
        let e = check_name_options(&opts).unwrap_err().to_string();
        assert!(e.starts_with("--name \"a\\nb\""), "{e}");
    }

    #[test]
    fn reads_a_kickstart_under_its_version_line_or_syntax() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/syntax/f22-spin-useshadow.ks");
        for syntax in [None, Some("auto"), Some("F22"), Some("f22")] {
            let ks = read_kickstart_file(&path, syntax).unwrap();
            assert_eq!(ks.version, "F22", "{syntax:?}");
            assert!(ks.commands.iter().any(|c| c.name == "auth"), "{syntax:?}");
        }
        // `auth` was removed after F28: DEVEL rejects it on its line
        let e = read_kickstart_file(&path, Some("DEVEL"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f22-spin-useshadow.ks:7:") && e.contains("auth has been removed."),
            "{e}"
        );
        let e = read_kickstart_file(&path, Some("F99"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown syntax version"), "{e}");
    }

    #[test]
    fn reads_the_demo_kickstart() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/demo-qcow2.ks");
        let text = std::fs::read_to_string(path).unwrap();
        let ks = kickstart::parse(&text, kickstart::Version::devel()).unwrap();
        let (r, o) = from_kickstart(&ks, "demo-qcow2.ks");
        let mps: Vec<&str> = r.partitions.iter().map(|p| p.mountpoint.as_str()).collect();
        assert_eq!(mps, ["biosboot", "/boot/efi", "/boot", "/"]);
        let root = &r.partitions[3];
        assert_eq!(
            (root.size_mib, root.grow, root.label.as_deref()),
            (Some(2048), true, Some("root"))
        );
        assert_eq!(r.bootloader.append, ["console=ttyS0,115200"]);
        assert_eq!(r.bootloader.timeout, Some(1));
        let o = o.unwrap();
        assert_eq!(
            (o.osname.as_str(), o.reference.as_str(), o.nogpg),
            ("demo", "demo/x86_64/base", true)
        );
        assert_eq!(o.remote_name(), "demo");
        let layout = crate::plan::Layout::from_request(&r, &crate::plan::IdSource::Random).unwrap();
        assert_eq!(layout.parts.len(), 4);
    }

    #[test]
    fn lvm_lines_are_read_with_their_lines() {
        let text = "part /boot --size=300\npart pv.01 --grow\nvolgroup atomicos pv.01 --pesize=8192\nlogvol / --size=3000 --fstype=ext4 --name=root --vgname=atomicos --label=r --fsoptions=noatime\nlogvol /var --percent=20 --maxsize=900 --name=var --vgname=atomicos\nostreesetup --osname=x --url=file:///r --ref=r\n";
        let ks = kickstart::parse(text, kickstart::Version::devel()).unwrap();
        let (r, _) = from_kickstart(&ks, "atomic.ks");
        assert_eq!(r.volgroups.len(), 1);
        assert_eq!(
            (r.volgroups[0].line, r.volgroups[0].pesize_kib),
            (3, Some(8192))
        );
        assert_eq!(r.volgroups[0].pvs, ["pv.01"]);
        let root = &r.logvols[0];
        assert_eq!(
            (
                root.line,
                root.size_mib,
                root.vgname.as_str(),
                root.name.as_str()
            ),
            (4, Some(3000), "atomicos", "root")
        );
        assert_eq!(root.fsoptions.as_deref(), Some("noatime"));
        assert_eq!(
            (r.logvols[1].percent, r.logvols[1].maxsize_mib),
            (Some(20), Some(900))
        );
        let l = crate::plan::Layout::from_request(&r, &crate::plan::IdSource::Random).unwrap();
        assert_eq!(l.vgs[0].extent_size, 8 << 20);
        assert_eq!(l.filesystem("/").unwrap().label.as_deref(), Some("r"));

        let thin = text.replace(
            "logvol /var --percent=20 --maxsize=900",
            "logvol /var --thinpool --size=900",
        );
        let ks = kickstart::parse(&thin, kickstart::Version::devel()).unwrap();
        let (r, _) = from_kickstart(&ks, "atomic.ks");
        let e = crate::plan::Layout::from_request(&r, &crate::plan::IdSource::Random).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "atomic.ks:5: thin provisioning (`logvol --thinpool`/`--thin`) is not supported"
            ),
            "{e}"
        );
    }

    #[test]
    fn sizes_must_be_positive_and_fit_a_disk_image() {
        let cases = [
            (
                "part / --size=-5",
                1,
                "--size=-5 is not a positive number of MiB",
            ),
            (
                "part / --size=0 --grow",
                1,
                "--size=0 is not a positive number of MiB",
            ),
            (
                "part /boot --size=500\npart / --size=99999999999999999999999",
                2,
                "larger than the largest disk image this builder writes (16 TiB)",
            ),
            (
                "part / --size=99999999",
                1,
                "--size=99999999 MiB is larger than the largest disk image",
            ),
            (
                "part / --grow --maxsize=-1",
                1,
                "--maxsize=-1 is not a positive",
            ),
            (
                "part /boot --size=500\npart pv.01 --grow\nvolgroup vg pv.01 --pesize=-4\nlogvol / --vgname=vg --name=r --size=1000",
                3,
                "--pesize=-4 is not a positive number of KiB",
            ),
            (
                "part /boot --size=500\npart pv.01 --grow\nvolgroup vg pv.01\nlogvol / --vgname=vg --name=r --size=-100",
                4,
                "--size=-100 is not a positive number of MiB",
            ),
        ];
        for (text, line, want) in cases {
            let ks = kickstart::parse(text, kickstart::Version::devel()).unwrap();
            let (r, _) = from_kickstart(&ks, "sizes.ks");
            let e =
                crate::plan::Layout::from_request(&r, &crate::plan::IdSource::Random).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(
                e.to_string().starts_with(&format!("sizes.ks:{line}: ")),
                "{e}"
            );
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }
}
