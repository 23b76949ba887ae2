//! The disk image pipeline, top to bottom:
//!
//! 1. validate the layout request ([`Layout::from_request`]) and the outputs — bad input fails here,
//!    before anything expensive;
//! 2. deploy the commit into a staging sysroot ([`deploy::deploy`]);
//! 3. write `/etc/fstab` (by UUID; logical volumes by `/dev/mapper/VG-LV`) into the deployment;
//! 4. run the [`DeploymentHook`]s (system configuration, `%post`: another area's code);
//! 5. generate `grub.cfg` from the boot entries and build the UEFI GRUB into the ESP tree;
//! 6. split the staged tree into one directory per filesystem, measure, and size the disk
//!    ([`Layout::allocate`]);
//! 7. write the sparse raw image: GPT, LVM metadata of each PV, each filesystem (on a partition or
//!    a logical volume) at its offset, BIOS GRUB;
//! 8. convert/compress into the requested outputs (raw.xz, qcow2, the Vagrant boxes: the libvirt
//!    box packs the same qcow2, the VirtualBox box a streamOptimized VMDK of the same raw disk) and
//!    rename them into place with `metadata.json` and `SHA256SUMS`.
//!
//! One deployment feeds every requested output.
//!
//! Before step 2 the build locks OUTDIR and removes what a killed earlier build left there; all its
//! temporaries live in one staging directory in OUTDIR, and each step names itself to
//! [`crate::util::cleanup`], so SIGINT/SIGTERM stop the build, undo it, and say where it stopped (see
//! [`crate::build::outdir`]).

pub mod demo;
pub mod kickstart;
pub mod liveimage;
pub mod outdir;
pub mod publish;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;

use crate::boot::grub::{GrubTarget, build_core, build_efi, grub_cfg, install_bios};
use crate::build::outdir::{OutdirLock, StagingDir, keep_failed_logs, publish_logs, sweep};
use crate::build::publish::{
    BuildLog, OutputFormat, OutputInfo, Staged, check_targets, temp_in, validate_name, xz,
};
use crate::deployment::deploy::{self, DeploySource, Deployed};
use crate::fs::fat::{FatOptions, write_fat32};
use crate::fs::xfs::make_xfs;
use crate::fs::{MkfsOptions, estimate_bytes, make_btrfs, make_ext, make_swap, tree_stats};
use crate::output::qcow2::{Qcow2Options, write_qcow2_with_progress};
use crate::plan::request::{DiskRequest, OstreeSetup};
use crate::plan::{
    Content, DiskPlan, Filesystem, FsKind, IdSource, Layout, MIB, Role, is_under, mapper_path,
};
use crate::util::cleanup::set_stage;

/// Everything one `imagebuilder image` run needs.
#[derive(Debug, Clone, Default)]
pub struct ImageJob {
    /// The disk and bootloader part of the kickstart.
    pub disk: DiskRequest,
    /// The kickstart's `ostreesetup` (required).
    pub ostreesetup: Option<OstreeSetup>,
    /// `--ostreerepo`: pull from this repository instead of the kickstart's URL.
    pub ostree_repo: Option<PathBuf>,
    /// `--preserve-ks-url`: keep the kickstart's URL as the image's remote even with `--ostreerepo`.
    pub preserve_ks_url: bool,
    /// `--ref`: overrides `ostreesetup --ref`.
    pub reference: Option<String>,
    /// `--nogpg`: do not verify the commit signature.
    pub nogpg: bool,
    /// `--gpg-key`: keys to trust for the remote.
    pub gpg_keys: Vec<PathBuf>,
    /// Requested outputs (at least one).
    pub formats: Vec<OutputFormat>,
    /// Compress qcow2 clusters.
    pub qcow2_compress: bool,
    pub outdir: PathBuf,
    /// Base name of the output files (`NAME.qcow2`…).
    pub name: String,
    pub overwrite: bool,
    /// `--size`: total disk size in bytes (grows the last `--grow` partition).
    pub size: Option<u64>,
    /// The kickstart's path and SHA-256 (for metadata and reproducible ids).
    pub kickstart_path: Option<PathBuf>,
    pub kickstart_sha256: Option<String>,
    /// What reproducible ids derive from besides the epoch, ref and name (default: the kickstart's
    /// sha256): the kickstart build passes the hash of what the kickstart says, so that its CRLF
    /// twin or a copy with other comments builds the same disk.
    pub id_seed: Option<String>,
    /// `SOURCE_DATE_EPOCH`: reproducible ids and timestamps.
    pub source_date_epoch: Option<i64>,
    /// Options of the live outputs (`pxe-live`, `live-iso`).
    pub live: LiveOptions,
}

/// Options of the live outputs.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Base URL the PXE configs fetch `live-rootfs.squashfs.img` from; default the literal `<URL>`
    /// placeholder (as livemedia-creator writes it).
    pub url: Option<String>,
    /// The live ISO's volume id (≤ 32 characters); default derived from the output name.
    pub volume_id: Option<String>,
    /// Name of the PXE-to-Live directory in OUTDIR; default `NAME.pxe`.
    pub pxe_dir: Option<String>,
}

/// What a hook gets: the staged deployment, before any filesystem is made.
#[derive(Debug)]
pub struct HookContext<'a> {
    pub deployed: &'a Deployed,
    pub layout: &'a Layout,
    /// The build's log directory (moved to `OUTDIR/logs` when the build succeeds): hooks write
    /// their own logs (`%post --log` etc.) here.
    pub log_dir: &'a Path,
    /// The largest the root filesystem may become (from `--size` or fixed partition sizes), so a
    /// `%post` that fills the disk stops at the image's own size. None = no fixed limit.
    pub root_size_limit: Option<u64>,
    pub source_date_epoch: Option<i64>,
}

/// A step run over the deployment after it is staged and `/etc/fstab` is written, before the
/// filesystems are made (system configuration from the kickstart, `%post` scripts…).
pub trait DeploymentHook {
    /// Short name for the build log.
    fn name(&self) -> &str;
    /// Works on the staged deployment; warnings go to the log via `log`.
    fn run(&self, ctx: &HookContext<'_>, log: &mut BuildLog) -> Result<()>;
}

/// The result of a build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildResult {
    pub commit: String,
    pub reference: String,
    /// The disk's layout (`None` when only live outputs were built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<DiskPlan>,
    pub outputs: Vec<OutputInfo>,
    pub log: PathBuf,
}

#[derive(Serialize)]
struct Metadata<'a> {
    tool: Tool,
    kickstart: Option<KickstartInfo>,
    source: SourceInfo<'a>,
    source_date_epoch: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<&'a DiskPlan>,
    kernel_arguments: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<LiveInfo<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    installer: Option<&'a InstallerInfo>,
    outputs: &'a [OutputInfo],
}

/// What `metadata.json` says of the installer ISO.
#[derive(Debug, Clone, Serialize)]
struct InstallerInfo {
    volume_id: String,
    /// The install entry's kernel command line.
    kernel_arguments: String,
    /// The smallest disk it installs on (the image's size).
    image_bytes: u64,
    /// `install/disk.extents` on the ISO.
    image_stream_bytes: u64,
    target: disklayout::install::TargetRequest,
    finish: disklayout::install::Finish,
}

/// The artifacts `metadata.json` describes besides the outputs.
struct Built<'a> {
    plan: Option<&'a DiskPlan>,
    live: Option<&'a LiveBuilt>,
    installer: Option<&'a InstallerInfo>,
}

/// What `metadata.json` says of the live outputs.
#[derive(Serialize)]
struct LiveInfo<'a> {
    kernel_version: &'a str,
    initramfs_rebuilt: bool,
    dracut_modules: &'a std::collections::BTreeSet<String>,
    rootfs_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_id: Option<&'a str>,
    kernel_arguments: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct KickstartInfo {
    file: Option<String>,
    sha256: Option<String>,
}

#[derive(Serialize)]
struct SourceInfo<'a> {
    reference: &'a str,
    commit: &'a str,
    osname: &'a str,
    remote: &'a str,
    remote_url: &'a str,
    pulled_from: &'a str,
    gpg_verified: bool,
}

/// Resolves where the content comes from, as rpm-ostree-toolbox does: `--ostreerepo` replaces the
/// kickstart's URL (also as the image's remote) unless `--preserve-ks-url` — or unless the build
/// makes an installer ISO: a path of the build host means nothing on the machines it installs, so
/// their remote is the kickstart's URL.
pub fn deploy_source(job: &ImageJob, kargs: Vec<String>) -> Result<DeploySource> {
    let ks = job.ostreesetup.as_ref().with_context(|| {
        format!(
            "{}: the kickstart has no `ostreesetup` line (it names the OS, remote, URL and ref to deploy)",
            job.disk.source_name
        )
    })?;
    let reference = job
        .reference
        .clone()
        .unwrap_or_else(|| ks.reference.clone());
    let (pull_url, remote_url) = match &job.ostree_repo {
        Some(repo) => {
            let url = deploy::file_url(repo)?;
            let remote = if job.preserve_ks_url || job.formats.contains(&OutputFormat::InstallerIso)
            {
                ks.url.clone()
            } else {
                url.clone()
            };
            (url, remote)
        }
        None => (ks.url.clone(), ks.url.clone()),
    };
    Ok(DeploySource {
        pull_url,
        remote_url,
        remote: ks.remote_name().to_string(),
        osname: ks.osname.clone(),
        reference,
        gpg_verify: !(ks.nogpg || job.nogpg),
        gpg_keys: job.gpg_keys.clone(),
        kargs,
    })
}

/// The directory in the staged sysroot whose content goes on the filesystem mounted at `mp`.
pub fn physical_path(d: &Deployed, mp: &str) -> Result<PathBuf> {
    if mp == "/" {
        return Ok(d.sysroot.clone());
    }
    if is_under(mp, "/boot") {
        return Ok(d.sysroot.join(mp.trim_start_matches('/')));
    }
    if is_under(mp, "/var") {
        return Ok(d
            .var
            .join(mp.trim_start_matches("/var").trim_start_matches('/')));
    }
    // Resolve symlinks inside the deployment (/home -> var/home on OSTree systems).
    let mut cur = PathBuf::from("/");
    let comps: Vec<&str> = mp.trim_start_matches('/').split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        let next = cur.join(c);
        let real = d.deployment.join(next.strip_prefix("/").unwrap_or(&next));
        match std::fs::read_link(&real) {
            Ok(target) => {
                let t = if target.is_absolute() {
                    target
                } else {
                    cur.join(target)
                };
                let rest: PathBuf = comps[i + 1..].iter().collect();
                let joined = t.join(rest);
                let s = joined.to_string_lossy().replace("/./", "/");
                let s = if s.starts_with('/') {
                    s
                } else {
                    format!("/{s}")
                };
                if is_under(&s, "/var") {
                    return physical_path(d, &s);
                }
                break;
            }
            Err(_) => cur = next,
        }
    }
    bail!(
        "mount point {mp} is inside the read-only OSTree deployment; only /, /boot…, /var… and paths \
         that are links into /var (like /home) can be separate filesystems"
    )
}

/// `/etc/fstab` lines for the plan's filesystems: by UUID, or `/dev/mapper/VG-LV` for logical
/// volumes (as Anaconda writes them).
pub fn fstab(layout: &Layout) -> String {
    let mut s = String::from("# Created by imagebuilder\n");
    for f in layout.filesystems() {
        let (mp, pass) = match f.kind {
            FsKind::Swap => ("none", 0),
            // Anaconda writes 0 for btrfs and xfs: their fsck is a no-op at boot.
            FsKind::Btrfs | FsKind::Xfs => (f.mountpoint.as_str(), 0),
            _ if f.mountpoint == "/" => ("/", 1),
            _ => (f.mountpoint.as_str(), 2),
        };
        let device = match layout.logical_volume(f) {
            Some((vg, lv)) => mapper_path(&vg.name, &lv.name),
            None => format!("UUID={}", f.uuid),
        };
        s.push_str(&format!(
            "{device} {mp} {} {} 0 {pass}\n",
            f.kind.fstab_type(),
            f.options
        ));
    }
    s
}

fn kernel_args(layout: &Layout, req: &DiskRequest) -> Result<Vec<String>> {
    let root = layout.filesystem("/").context("layout without /")?;
    // Like Anaconda: the root LV by its mapper name, and rd.lvm.lv= for the LVs the initramfs
    // must activate (root and swap).
    let mut k = match layout.logical_volume(root) {
        Some((vg, lv)) => vec![format!("root={}", mapper_path(&vg.name, &lv.name))],
        None => vec![format!("root=UUID={}", root.uuid)],
    };
    for vg in &layout.vgs {
        for lv in &vg.lvs {
            if lv.role == Role::Root || lv.role == Role::Swap {
                k.push(format!("rd.lvm.lv={}/{}", vg.name, lv.name));
            }
        }
    }
    k.push("rw".to_string());
    if root.kind == FsKind::Btrfs {
        k.push("rootflags=subvol=/".into());
    }
    k.extend(req.bootloader.append.iter().cloned());
    Ok(k)
}

fn id_source(job: &ImageJob) -> IdSource {
    match job.source_date_epoch {
        Some(epoch) => {
            let ks = job
                .id_seed
                .clone()
                .or_else(|| job.kickstart_sha256.clone())
                .unwrap_or_default();
            let r = job.reference.clone().unwrap_or_default();
            IdSource::derived(format!("{epoch}\0{ks}\0{r}\0{}", job.name).as_bytes())
        }
        None => IdSource::Random,
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail * s.f_frsize)
}

/// Runs the whole pipeline: check the request, take OUTDIR, run the stages, publish the logs.
pub fn build_image(job: &ImageJob, hooks: &[&dyn DeploymentHook]) -> Result<BuildResult> {
    let req = BuildRequest::check(job)?;
    // One build per OUTDIR; what a killed build left goes first.
    let lock = OutdirLock::acquire(&job.outdir)?;
    set_stage("preparing the build");
    let stale = sweep(&job.outdir);
    for l in stale.lines() {
        tracing::warn!("{l} (left by an earlier build)");
    }
    check_targets(&job.outdir, &req.output_names(job), job.overwrite)?;
    req.check_tools()?;
    let work = StagingDir::create(&job.outdir)?;
    let log_dir = work.path().join("logs");
    let mut log = BuildLog::create(&log_dir, &job.name)?;
    for l in stale.lines() {
        log.record_warning(format!("{l} (left by an earlier build)"));
    }
    let result = run(job, hooks, &req, &work, &mut log);
    let result = finish_logs(job, result, log, &log_dir);
    let removed = work.remove();
    crate::util::cleanup::clear_stage();
    drop(lock);
    let r = result?;
    removed?;
    Ok(r)
}

/// The stages, in order: each takes plain data and returns plain data. One staged deployment
/// feeds every artifact: the live writers read it, the disk writer consumes it last.
fn run(
    job: &ImageJob,
    hooks: &[&dyn DeploymentHook],
    req: &BuildRequest,
    work: &StagingDir,
    log: &mut BuildLog,
) -> Result<BuildResult> {
    let dirs = WorkDirs::create(work)?;
    let deployed = stage_deployment(job, hooks, req, &dirs, log)?;
    let mut staged = Vec::new();
    let live = match req.formats.iter().any(|f| f.is_live()) {
        true => Some(write_live_artifacts(
            job,
            req,
            &deployed,
            &dirs,
            log,
            &mut staged,
        )?),
        false => None,
    };
    let wants_disk = req.formats.iter().any(|f| f.is_disk())
        || req.formats.contains(&OutputFormat::InstallerIso);
    let mut installer = None;
    let (plan, cleanup) = match wants_disk {
        true => {
            let artifacts = DiskArtifacts {
                deployed: &deployed,
                live: live.as_ref(),
                dirs: &dirs,
            };
            let (plan, cleanup) =
                write_disk_artifacts(job, req, &artifacts, log, &mut staged, &mut installer)?;
            (Some(plan), Some(cleanup))
        }
        false => (None, None),
    };
    // Publication order is the formats' order: raw, raw.xz, qcow2, boxes, live outputs.
    staged.sort_by_key(|s| s.format);
    let outputs = crate::util::cleanup::uninterruptible(|| {
        set_stage("publishing the outputs");
        let meta = |outputs: &[OutputInfo]| {
            let built = Built {
                plan: plan.as_ref(),
                live: live.as_ref(),
                installer: installer.as_ref(),
            };
            metadata_json(job, req, &deployed, &built, outputs)
        };
        crate::build::publish::commit(&job.outdir, staged, &meta)
    });
    let cleaned = cleanup.map(std::thread::JoinHandle::join);
    let outputs = outputs?;
    match cleaned {
        Some(Ok(r)) => r?,
        Some(Err(_)) => bail!("removing the work directory failed"),
        None => {}
    }
    for o in &outputs {
        log.step(format!(
            "wrote {} ({} MiB, sha256 {})",
            o.file,
            o.size / MIB,
            o.sha256
        ));
    }
    log.step(format!("done in {:.1}s", log.elapsed()));
    Ok(BuildResult {
        commit: deployed.commit.clone(),
        reference: req.source.reference.clone(),
        plan,
        outputs,
        log: log.path.clone(),
    })
}

/// The disk artifacts: boot loader, filesystems, the raw disk and its conversions. The staged tree
/// is split into the filesystems (consumed); its remains are removed in the background while the
/// outputs are written (removing tens of thousands of files is slow on hosts that mount with
/// `discard`): the returned thread does that.
fn write_disk_artifacts(
    job: &ImageJob,
    req: &BuildRequest,
    a: &DiskArtifacts<'_>,
    log: &mut BuildLog,
    staged: &mut Vec<Staged>,
    installer: &mut Option<InstallerInfo>,
) -> Result<(DiskPlan, std::thread::JoinHandle<Result<()>>)> {
    let (deployed, dirs) = (a.deployed, a.dirs);
    let boot = prepare_boot(job, &req.layout, deployed, dirs, log)?;
    let trees = split_filesystems(job, &req.layout, deployed, dirs)?;
    let (plan, needs) = size_disk(job, req, &trees, log)?;
    let raw = write_raw_disk(job, &plan, &trees, &boot, dirs, log)?;
    if req.formats.contains(&OutputFormat::InstallerIso) {
        let live = a.live.context("the installer ISO without a live root")?;
        let image = InstallImage {
            plan: &plan,
            needs,
            raw: &raw,
        };
        let (iso, info) = write_installer_iso(job, req, deployed, live, &image, dirs, log)?;
        staged.push(iso);
        *installer = Some(info);
    }
    let scratch = dirs.stage.clone();
    let cleanup = std::thread::spawn(move || {
        crate::blockdev::mounts::remove_tree(&scratch)
            .map(drop)
            .with_context(|| format!("removing the staged tree {}", scratch.display()))
    });
    let formats: Vec<OutputFormat> = req
        .formats
        .iter()
        .copied()
        .filter(|f| f.is_disk())
        .collect();
    staged.extend(write_outputs(job, &formats, &plan, raw, &dirs.out, log)?);
    Ok((plan, cleanup))
}

/// What the disk writer reads: the staged deployment (consumed), the live root when the installer
/// ISO needs it, the work folders.
struct DiskArtifacts<'a> {
    deployed: &'a Deployed,
    live: Option<&'a LiveBuilt>,
    dirs: &'a WorkDirs,
}

/// The disk image the installer ISO carries, and how it was sized.
struct InstallImage<'a> {
    plan: &'a DiskPlan,
    needs: BTreeMap<String, u64>,
    raw: &'a Path,
}

/// The live artifacts built from the staged deployment, and what metadata says of them.
struct LiveBuilt {
    root: crate::live::LiveRoot,
    url: String,
    volume_id: Option<String>,
    /// The installer ISO's tree with the live files, linked before the disk writer consumes the
    /// deployment they are in.
    installer_tree: Option<PathBuf>,
}

/// The live root (squashfs, kernel, initramfs), then the PXE-to-Live directory and the live ISO.
/// The staged deployment is left as it was.
fn write_live_artifacts(
    job: &ImageJob,
    req: &BuildRequest,
    deployed: &Deployed,
    dirs: &WorkDirs,
    log: &mut BuildLog,
    staged: &mut Vec<Staged>,
) -> Result<LiveBuilt> {
    let work = dirs.root.join("live");
    std::fs::create_dir(&work).with_context(|| format!("creating {}", work.display()))?;
    let origin = req.layout.error_at("/", String::new()).to_string();
    let root = crate::live::stage_live_root(
        &crate::live::LiveRequest {
            deployed,
            root_size: req.layout.fixed_root_bytes(),
            root_origin: origin.trim_end_matches([':', ' ']).to_string(),
            rootfs_uuid: id_source(job).uuid("live-rootfs").to_string(),
            network: req.formats.contains(&OutputFormat::PxeLive),
            work: &work,
            log_dir: &dirs.logs,
            source_date_epoch: job.source_date_epoch,
            extra_files: match req.formats.contains(&OutputFormat::InstallerIso) {
                true => crate::installer::live_files(&job.name, job.disk.finish),
                false => Vec::new(),
            },
        },
        log,
    )?;
    let url = job
        .live
        .url
        .clone()
        .unwrap_or_else(|| crate::live::pxe::URL_PLACEHOLDER.to_string());
    let installer_tree = match req.formats.contains(&OutputFormat::InstallerIso) {
        true => Some(live_iso_tree(&root, &work.join("installer-iso"))?),
        false => None,
    };
    let mut built = LiveBuilt {
        root,
        url,
        volume_id: None,
        installer_tree,
    };
    if req.formats.contains(&OutputFormat::PxeLive) {
        staged.push(write_pxe_output(job, &built, &work, &dirs.out, log)?);
    }
    if req.formats.contains(&OutputFormat::LiveIso) {
        let volid = req.volume_id.clone();
        staged.push(write_live_iso(
            job,
            &built.root,
            &volid,
            &work,
            &dirs.out,
            log,
        )?);
        built.volume_id = Some(volid);
    }
    Ok(built)
}

fn pxe_dir_name(job: &ImageJob) -> String {
    job.live
        .pxe_dir
        .clone()
        .unwrap_or_else(|| format!("{}.{}", job.name, OutputFormat::PxeLive.extension()))
}

/// The PXE-to-Live directory, staged in `out`, with its own `SHA256SUMS`.
fn write_pxe_output(
    job: &ImageJob,
    live: &LiveBuilt,
    work: &Path,
    out: &Path,
    log: &mut BuildLog,
) -> Result<Staged> {
    set_stage("writing the PXE-to-Live directory");
    let name = pxe_dir_name(job);
    log.step(format!(
        "writing {name}/ (kernel, initramfs, squashfs, cpio, PXE_CONFIG, pxelinux, GRUB and iPXE configs)"
    ));
    let dir = tempfile::Builder::new()
        .prefix(".imagebuilder-tmp-")
        .suffix(".pxe")
        .tempdir_in(out)
        .with_context(|| format!("creating a temporary directory in {}", out.display()))?;
    let title = live_title(job, &live.root);
    crate::live::pxe::write_pxe_dir(
        &live.root,
        dir.path(),
        &crate::live::pxe::PxeOptions {
            url: &live.url,
            timeout: job.disk.bootloader.timeout.unwrap_or(5),
            title: &title,
            work,
            mtime: build_time(job).max(0) as u64,
        },
    )?;
    let mut sums = Vec::new();
    for (rel, path) in crate::build::publish::dir_files(dir.path())? {
        sums.push((crate::build::publish::sha256_file(&path)?, rel));
    }
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        crate::build::publish::sums_text(&sums),
    )
    .context("writing the PXE directory's SHA256SUMS")?;
    if let Some(epoch) = job.source_date_epoch {
        crate::fs::clamp_mtimes(dir.path(), epoch)?;
    }
    Ok(Staged {
        format: Some(OutputFormat::PxeLive),
        final_path: job.outdir.join(name),
        tmp: crate::build::publish::StagedData::Dir(dir),
    })
}

/// The boot menus' title: the boot entry's, else the output name.
fn live_title(job: &ImageJob, live: &crate::live::LiveRoot) -> String {
    if live.title.is_empty() {
        job.name.clone()
    } else {
        live.title.clone()
    }
}

/// The live ISO's kernel command line.
fn iso_cmdline(live: &crate::live::LiveRoot, volume_id: &str) -> String {
    live.cmdline(&format!("live:CDLABEL={volume_id}"), &["rd.live.image"])
}

/// The hybrid live ISO: the same kernel, initramfs and squashfs, with GRUB for BIOS and UEFI.
fn write_live_iso(
    job: &ImageJob,
    live: &crate::live::LiveRoot,
    volume_id: &str,
    work: &Path,
    out: &Path,
    log: &mut BuildLog,
) -> Result<Staged> {
    set_stage("writing the live ISO");
    log.step(format!("writing the live ISO (volume id {volume_id})"));
    let tree = live_iso_tree(live, &work.join("iso"))?;
    let menu = [live_menu_entry(live_title(job, live), live, volume_id, &[])];
    let tmp = xorriso_iso(job, volume_id, &tree, &menu, work, out)?;
    Ok(Staged {
        format: Some(OutputFormat::LiveIso),
        final_path: output_path(job, OutputFormat::LiveIso),
        tmp: tmp.into(),
    })
}

/// The ISO tree every live medium has: `LiveOS/squashfs.img` (dmsquash-live's default path) and
/// the kernel and initramfs in `images/pxeboot/`.
fn live_iso_tree(live: &crate::live::LiveRoot, tree: &Path) -> Result<PathBuf> {
    use crate::live::pxe::link_or_copy;
    for d in ["LiveOS", "images/pxeboot"] {
        std::fs::create_dir_all(tree.join(d))
            .with_context(|| format!("creating {d} in the ISO tree"))?;
    }
    link_or_copy(&live.squashfs, &tree.join("LiveOS/squashfs.img"))?;
    link_or_copy(&live.kernel, &tree.join("images/pxeboot/vmlinuz"))?;
    link_or_copy(&live.initramfs, &tree.join("images/pxeboot/initrd.img"))?;
    Ok(tree.to_path_buf())
}

fn live_menu_entry(
    title: String,
    live: &crate::live::LiveRoot,
    volume_id: &str,
    extra: &[&str],
) -> crate::iso::MenuEntry {
    let mut cmdline = iso_cmdline(live, volume_id);
    for e in extra {
        cmdline.push(' ');
        cmdline.push_str(e);
    }
    crate::iso::MenuEntry {
        title,
        kernel: "/images/pxeboot/vmlinuz".into(),
        initrd: vec!["/images/pxeboot/initrd.img".into()],
        cmdline,
    }
}

/// Writes the hybrid ISO of `tree` with `menu` into a temporary file in `out`.
fn xorriso_iso(
    job: &ImageJob,
    volume_id: &str,
    tree: &Path,
    menu: &[crate::iso::MenuEntry],
    work: &Path,
    out: &Path,
) -> Result<tempfile::TempPath> {
    let (_, tmp) = temp_in(out, ".iso")?;
    let bar = crate::progress::spinner("writing the ISO (xorriso)");
    let written = crate::iso::write_iso(
        &crate::iso::IsoSpec {
            volume_id,
            tree,
            menu,
            timeout: job.disk.bootloader.timeout.unwrap_or(3),
            work,
            source_date_epoch: job.source_date_epoch,
        },
        &tmp,
    );
    bar.finish_and_clear();
    written?;
    Ok(tmp)
}

/// The installer ISO: the live medium with the `install/` folder (helper, payload, the disk image's
/// extents) and a boot menu whose first entry installs.
fn write_installer_iso(
    job: &ImageJob,
    req: &BuildRequest,
    deployed: &Deployed,
    live: &LiveBuilt,
    image: &InstallImage<'_>,
    dirs: &WorkDirs,
    log: &mut BuildLog,
) -> Result<(Staged, InstallerInfo)> {
    set_stage("writing the installer ISO");
    let volume_id = &req.installer_volume_id;
    log.step(format!("writing the installer ISO (volume id {volume_id})"));
    let work = dirs.root.join("live");
    let tree = live
        .installer_tree
        .clone()
        .context("the installer ISO's tree was not staged")?;
    let payload = disklayout::install::Payload {
        format: disklayout::install::PAYLOAD_FORMAT,
        name: job.name.clone(),
        layout: req.layout.clone(),
        needs: image.needs.clone(),
        image: image.plan.clone(),
        lvm_creation_time: build_time(job),
        osname: deployed.osname.clone(),
        target: job.disk.install_target.clone(),
        finish: job.disk.finish,
    };
    let bytes = crate::installer::write_medium_dir(&tree, &payload, image.raw)?;
    log.step(format!(
        "install/{}: {} MiB of the {} MiB disk image",
        disklayout::install::IMAGE_FILE,
        bytes / MIB,
        image.plan.size_bytes / MIB
    ));
    let title = live_title(job, &live.root);
    let menu = [
        live_menu_entry(
            format!("Install {title}"),
            &live.root,
            volume_id,
            &[disklayout::install::KERNEL_ARG],
        ),
        live_menu_entry(
            format!("Start {title} without installing"),
            &live.root,
            volume_id,
            &[],
        ),
    ];
    let tmp = xorriso_iso(job, volume_id, &tree, &menu, &work, &dirs.out)?;
    let info = InstallerInfo {
        volume_id: volume_id.clone(),
        kernel_arguments: menu[0].cmdline.clone(),
        image_bytes: image.plan.size_bytes,
        image_stream_bytes: bytes,
        target: job.disk.install_target.clone(),
        finish: job.disk.finish,
    };
    let staged = Staged {
        format: Some(OutputFormat::InstallerIso),
        final_path: output_path(job, OutputFormat::InstallerIso),
        tmp: tmp.into(),
    };
    Ok((staged, info))
}

/// The installer ISO's volume id: the live one's with `-inst` (within the 32 characters), so a
/// machine with both media attached finds each by its own label.
fn installer_volume_id(live: &str) -> String {
    let mut base = live.to_string();
    base.truncate(32 - "-inst".len());
    format!("{base}-inst")
}

/// What is known about a build before any work: the checked layout, kernel arguments, source and
/// outputs. Bad input fails here.
struct BuildRequest {
    layout: Layout,
    kargs: Vec<String>,
    source: DeploySource,
    /// Sorted, without duplicates.
    formats: Vec<OutputFormat>,
    /// The live ISO's volume id.
    volume_id: String,
    /// The installer ISO's volume id.
    installer_volume_id: String,
}

impl BuildRequest {
    fn check(job: &ImageJob) -> Result<BuildRequest> {
        ensure!(
            !job.formats.is_empty(),
            "no output format requested (-i {})",
            OutputFormat::NAMES
        );
        validate_name("the output name", &job.name)?;
        let layout = Layout::from_request(&job.disk, &id_source(job))?;
        let kargs = kernel_args(&layout, &job.disk)?;
        let source = deploy_source(job, kargs.clone())?;
        let mut formats = job.formats.clone();
        formats.sort();
        formats.dedup();
        let volume_id = match &job.live.volume_id {
            Some(v) => {
                crate::iso::check_volume_id(v).context("--volid")?;
                v.clone()
            }
            None => crate::iso::volume_id_from(&job.name),
        };
        if let Some(d) = &job.live.pxe_dir {
            validate_name("the PXE directory name", d)?;
        }
        if let Some(u) = &job.live.url {
            ensure!(
                !u.is_empty() && !u.chars().any(char::is_whitespace),
                "--live-url {u:?}: a URL without spaces is needed (it goes into kernel command lines)"
            );
        }
        let installer_volume_id = installer_volume_id(&volume_id);
        Ok(BuildRequest {
            layout,
            kargs,
            source,
            formats,
            volume_id,
            installer_volume_id,
        })
    }

    /// Every file the build publishes in OUTDIR.
    fn output_names(&self, job: &ImageJob) -> Vec<String> {
        let mut names: Vec<String> = self
            .formats
            .iter()
            .map(|f| match f {
                OutputFormat::PxeLive => pxe_dir_name(job),
                _ => format!("{}.{}", job.name, f.extension()),
            })
            .collect();
        names.extend(["metadata.json".to_string(), "SHA256SUMS".to_string()]);
        names
    }

    fn check_tools(&self) -> Result<()> {
        for p in ["mke2fs", "grub-mkimage"] {
            crate::util::cmd::require_program(p)?;
        }
        let filesystems = self.layout.filesystems();
        if filesystems.iter().any(|f| f.kind == FsKind::Btrfs) {
            crate::util::cmd::require_program("mkfs.btrfs")?;
        }
        if let Some(f) = filesystems.iter().find(|f| f.kind == FsKind::Xfs) {
            crate::fs::xfs::ensure_available(&f.mountpoint)?;
        }
        if self.formats.iter().any(|f| f.is_live()) {
            crate::util::cmd::require_program("mksquashfs")?;
        }
        if self.formats.contains(&OutputFormat::LiveIso)
            || self.formats.contains(&OutputFormat::InstallerIso)
        {
            for p in ["xorriso", "mkfs.fat", "mmd", "mcopy"] {
                crate::util::cmd::require_program(p)?;
            }
        }
        Ok(())
    }
}

/// A successful build's logs replace the published ones; a failed build's go beside them.
fn finish_logs(
    job: &ImageJob,
    result: Result<BuildResult>,
    mut log: BuildLog,
    log_dir: &Path,
) -> Result<BuildResult> {
    match result {
        Ok(mut r) => crate::util::cleanup::uninterruptible(|| {
            set_stage("publishing the logs");
            publish_logs(log_dir, &job.outdir, &job.name, job.overwrite)?;
            r.log = job.outdir.join("logs").join(format!("{}.log", job.name));
            Ok(r)
        }),
        Err(e) if crate::util::cleanup::is_interrupted() => Err(e),
        Err(e) => {
            log.record(format!("FAILED: {e:#}"));
            drop(log);
            // The previous build's logs stay; this one's go next to them.
            match keep_failed_logs(log_dir, &job.outdir, &job.name) {
                Ok(kept) => Err(moved_logs(e, log_dir, &kept)),
                Err(e2) => {
                    tracing::warn!("keeping the failed build's logs: {e2:#}");
                    Err(e)
                }
            }
        }
    }
}

/// An error that names log files in the build's log directory, with the paths they were moved to.
fn moved_logs(e: anyhow::Error, from: &Path, to: &Path) -> anyhow::Error {
    let msg = format!("{e:#}");
    let from = from.display().to_string();
    if msg.contains(&from) {
        anyhow::anyhow!(msg.replace(&from, &to.display().to_string()))
    } else {
        e
    }
}

/// The build's scratch space inside its staging directory.
struct WorkDirs {
    /// The staging directory itself (XFS mount points go here).
    root: PathBuf,
    /// The deployment and everything derived from it.
    stage: PathBuf,
    /// Outputs being written.
    out: PathBuf,
    /// Logs, published when the build succeeds.
    logs: PathBuf,
}

impl WorkDirs {
    fn create(work: &StagingDir) -> Result<WorkDirs> {
        let root = work.path().to_path_buf();
        let dirs = WorkDirs {
            stage: root.join("stage"),
            out: root.join("out"),
            logs: root.join("logs"),
            root,
        };
        for d in [&dirs.stage, &dirs.out] {
            std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(dirs)
    }
}

/// Stage: the staged deployment — the commit deployed, `/etc/fstab` written, every hook (system
/// configuration, `%post`) run over it.
fn stage_deployment(
    job: &ImageJob,
    hooks: &[&dyn DeploymentHook],
    req: &BuildRequest,
    dirs: &WorkDirs,
    log: &mut BuildLog,
) -> Result<Deployed> {
    let source = &req.source;
    // The stage is named before the log line announces it, so a signal after the line names it.
    set_stage(format!("deploying {}", source.reference));
    log.step(format!(
        "deploying {} from {} (osname {})",
        source.reference, source.pull_url, source.osname
    ));
    let bar = crate::progress::spinner(&format!("deploying {}", source.reference));
    let deployed = deploy::deploy(&dirs.stage.join("sysroot"), source);
    bar.finish_and_clear();
    let deployed = deployed?;
    log.step(format!("deployed commit {}", deployed.commit));

    let etc_fstab = deployed.deployment.join("etc/fstab");
    std::fs::write(&etc_fstab, fstab(&req.layout))
        .with_context(|| format!("writing {}", etc_fstab.display()))?;

    let root_size_limit = job.size.or(req.layout.fixed_root_bytes());
    for h in hooks {
        set_stage(format!("running the {}", h.name()));
        log.step(format!("running {}", h.name()));
        let ctx = HookContext {
            deployed: &deployed,
            layout: &req.layout,
            log_dir: &dirs.logs,
            root_size_limit,
            source_date_epoch: job.source_date_epoch,
        };
        h.run(&ctx, log)
            .with_context(|| format!("{} failed", h.name()))?;
    }
    Ok(deployed)
}

/// Stage: `grub.cfg` from the boot entries, and the UEFI GRUB in the ESP tree. Returns where BIOS
/// GRUB finds its files (`None` when the kickstart disables the boot loader).
fn prepare_boot(
    job: &ImageJob,
    layout: &Layout,
    deployed: &Deployed,
    dirs: &WorkDirs,
    log: &mut BuildLog,
) -> Result<Option<GrubTarget>> {
    let boot_fs = layout
        .filesystems()
        .into_iter()
        .filter(|f| f.kind != FsKind::Swap && is_under("/boot", &f.mountpoint))
        .max_by_key(|f| f.mountpoint.len())
        .context("no filesystem holds /boot")?
        .clone();
    let separate_boot = boot_fs.mountpoint == "/boot";
    let boot_dir = deployed.sysroot.join("boot");
    let entries = deploy::bls_entries(&boot_dir)?;
    let timeout = job.disk.bootloader.timeout.unwrap_or(5);
    let cfg = grub_cfg(&entries, if separate_boot { "" } else { "/boot" }, timeout);
    std::fs::create_dir_all(boot_dir.join("grub"))?;
    std::fs::write(boot_dir.join("grub/grub.cfg"), &cfg).context("writing grub.cfg")?;
    let target = GrubTarget {
        boot_fs_uuid: boot_fs.uuid.clone(),
        prefix: if separate_boot {
            "/grub".into()
        } else {
            "/boot/grub".into()
        },
        boot_fs_kind: boot_fs.kind,
    };
    if job.disk.bootloader.disabled {
        log.warn("bootloader disabled by the kickstart: the image will not boot by itself");
        return Ok(None);
    }
    let esp_dir = physical_path(deployed, "/boot/efi")?;
    set_stage("building GRUB for UEFI");
    log.step("building GRUB for UEFI (EFI/BOOT/BOOTX64.EFI)");
    build_efi(&dirs.stage, &target, &esp_dir.join("EFI/BOOT/BOOTX64.EFI"))?;
    Ok(Some(target))
}

/// Stage: one directory per filesystem, deepest mount points first, moved out of the staged tree;
/// `/` keeps the rest. With `SOURCE_DATE_EPOCH`, modification times are clamped to it.
fn split_filesystems(
    job: &ImageJob,
    layout: &Layout,
    deployed: &Deployed,
    dirs: &WorkDirs,
) -> Result<BTreeMap<String, PathBuf>> {
    set_stage("measuring the staged tree");
    if let Some(epoch) = job.source_date_epoch {
        crate::fs::clamp_mtimes(&deployed.sysroot, epoch)?;
    }
    let mut fs_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut others: Vec<_> = layout
        .filesystems()
        .into_iter()
        .filter(|f| f.mountpoint != "/" && f.kind != FsKind::Swap)
        .collect();
    others.sort_by_key(|f| std::cmp::Reverse(f.mountpoint.matches('/').count()));
    for (i, f) in others.iter().enumerate() {
        let src = physical_path(deployed, &f.mountpoint)
            .map_err(|e| layout.error_at(&f.mountpoint, format!("{e:#}")))?;
        let dst = dirs.stage.join(format!("fs-{i}"));
        if src.exists() {
            std::fs::rename(&src, &dst)
                .with_context(|| format!("moving {} out for {}", src.display(), f.mountpoint))?;
        } else {
            std::fs::create_dir_all(&dst)?;
        }
        std::fs::create_dir_all(&src)
            .with_context(|| format!("creating mount point {}", src.display()))?;
        if let Some(epoch) = job.source_date_epoch {
            crate::fs::clamp_mtimes(src.parent().unwrap_or(&src), epoch)?;
        }
        fs_dirs.insert(f.mountpoint.clone(), dst);
    }
    fs_dirs.insert("/".into(), deployed.sysroot.clone());
    Ok(fs_dirs)
}

/// Stage: measure each filesystem's tree and size the disk; check OUTDIR has room for the outputs.
fn size_disk(
    job: &ImageJob,
    req: &BuildRequest,
    trees: &BTreeMap<String, PathBuf>,
    log: &mut BuildLog,
) -> Result<(DiskPlan, BTreeMap<String, u64>)> {
    let mut needs = BTreeMap::new();
    let mut total_need = 0;
    for f in req.layout.filesystems() {
        if let Some(dir) = trees.get(&f.mountpoint) {
            let stats = tree_stats(dir)?;
            let need = estimate_bytes(f.kind, &stats);
            log.step(format!(
                "{}: {} MiB of data in {} inodes, needs about {} MiB",
                f.mountpoint,
                stats.data_bytes / MIB,
                stats.inodes,
                need.div_ceil(MIB)
            ));
            total_need += stats.data_bytes;
            needs.insert(f.mountpoint.clone(), need);
        }
    }
    let plan = req.layout.allocate(&needs, job.size)?;
    log_plan(&plan, log);
    if let Some(free) = free_bytes(&job.outdir) {
        // The raw image holds the data once; qcow2 and raw.xz each need up to as much again.
        let want = total_need * (1 + req.formats.len() as u64) + 64 * MIB;
        if free < want {
            bail!(
                "not enough space in {}: the outputs need about {} MiB, {} MiB are free",
                job.outdir.display(),
                want.div_ceil(MIB),
                free / MIB
            );
        }
    }
    Ok((plan, needs))
}

/// The disk plan in the build log: partitions, then volume groups with their PVs and LVs.
fn log_plan(plan: &DiskPlan, log: &mut BuildLog) {
    log.step(format!(
        "disk: {} MiB, {} partitions",
        plan.size_bytes / MIB,
        plan.partitions.len()
    ));
    for p in &plan.partitions {
        let what = match &p.content {
            Content::BiosBoot => "BIOS boot".to_string(),
            Content::Filesystem(f) => {
                format!("{} {} UUID={}", f.mountpoint, f.kind.fstab_type(), f.uuid)
            }
            Content::LvmPv { vg, pv } => format!("LVM PV {pv} of {vg}"),
        };
        log.step(format!(
            "  {} {:<10} start {:>9} sectors {:>9} {what}",
            p.number, p.name, p.start_lba, p.sectors
        ));
    }
    for vg in &plan.volume_groups {
        log.step(format!(
            "volume group {}: extent size {} KiB, {} extents ({} MiB), {} free ({} MiB)",
            vg.name,
            vg.extent_size / 1024,
            vg.total_extents,
            vg.total_extents * vg.extent_size / MIB,
            vg.free_extents,
            vg.free_extents * vg.extent_size / MIB
        ));
        for pv in &vg.pvs {
            log.step(format!(
                "  PV {} on partition {}: {} extents",
                pv.name, pv.partition, pv.pe_count
            ));
        }
        for lv in &vg.lvs {
            log.step(format!(
                "  LV {} ({}): {} extents ({} MiB) from extent {} of PV {}, {} {} UUID={}",
                lv.name,
                vg.mapper_path(&lv.name),
                lv.extents,
                lv.size / MIB,
                lv.start_extent,
                vg.pvs[lv.pv].name,
                lv.filesystem.mountpoint,
                lv.filesystem.kind.fstab_type(),
                lv.filesystem.uuid
            ));
        }
    }
}

/// The build's time: `SOURCE_DATE_EPOCH`, else now.
fn build_time(job: &ImageJob) -> i64 {
    job.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Stage: the sparse raw disk — GPT, LVM metadata of each PV, every filesystem at its offset, BIOS
/// GRUB. Returns the temporary raw file in the work directory.
fn write_raw_disk(
    job: &ImageJob,
    plan: &DiskPlan,
    trees: &BTreeMap<String, PathBuf>,
    boot: &Option<GrubTarget>,
    dirs: &WorkDirs,
    log: &mut BuildLog,
) -> Result<tempfile::TempPath> {
    set_stage("writing the raw image");
    let (raw_file, raw_tmp) = temp_in(&dirs.out, ".raw")?;
    raw_file
        .set_len(plan.size_bytes)
        .context("sizing the raw image")?;
    crate::disk::gpt::write_gpt(&mut raw_file.try_clone()?, plan)?;
    let now = build_time(job);
    for vg in &plan.volume_groups {
        log.step(format!("writing LVM metadata of volume group {}", vg.name));
        let spec = vg.spec(now);
        for (i, pv) in vg.pvs.iter().enumerate() {
            spec.write_pv(&raw_file, pv.offset, i)?;
        }
    }
    let disk = RawDisk {
        path: &raw_tmp,
        file: &raw_file,
    };
    for (f, offset, size) in plan.filesystems() {
        let what = format!("making {} on {}", f.kind.fstab_type(), f.mountpoint);
        set_stage(what.clone());
        log.step(format!("{what} ({} MiB)", size / MIB));
        let bar = crate::progress::spinner(&what);
        let tree = trees.get(&f.mountpoint).map(PathBuf::as_path);
        let made = make_filesystem(job, &disk, (f, offset, size), tree, dirs);
        bar.finish_and_clear();
        made?;
    }
    if let Some(target) = boot {
        let bios = plan
            .partition(Role::BiosBoot)
            .context("no BIOS boot partition")?;
        set_stage("installing GRUB for BIOS");
        log.step("installing GRUB for BIOS (boot.img + core.img)");
        let core = build_core(&dirs.stage, target)?;
        install_bios(&raw_file, &core, bios.start_lba, bios.sectors)?;
    }
    raw_file.sync_all().context("flushing the raw image")?;
    Ok(raw_tmp)
}

/// The raw image being written: its path (for programs) and an open handle (for own writers).
struct RawDisk<'a> {
    path: &'a Path,
    file: &'a File,
}

/// One filesystem from its `tree` (every kind but swap has one), written into the raw disk at
/// `offset`.
fn make_filesystem(
    job: &ImageJob,
    disk: &RawDisk<'_>,
    (f, offset, size): (&Filesystem, u64, u64),
    tree: Option<&Path>,
    dirs: &WorkDirs,
) -> Result<()> {
    if f.kind == FsKind::Swap {
        return make_swap(disk.file, offset, size, f);
    }
    let tree = tree.with_context(|| format!("no staged tree for {}", f.mountpoint))?;
    let mkfs = MkfsOptions {
        epoch: job.source_date_epoch,
    };
    match f.kind {
        FsKind::Ext4 | FsKind::Ext3 => make_ext(disk.path, offset, size, f, tree, mkfs),
        FsKind::Btrfs => make_btrfs(
            disk.path,
            offset,
            size,
            f,
            tree,
            &dirs.stage.join("btrfs.img"),
        ),
        FsKind::Vfat => {
            let opts = FatOptions {
                label: f.label.clone().unwrap_or_default(),
                volume_id: f.fat_volume_id().context("FAT volume id")?,
                timestamp: build_time(job),
            };
            write_fat32(disk.file, offset, size, tree, &opts)
                .map(drop)
                .with_context(|| format!("writing the FAT filesystem for {}", f.mountpoint))
        }
        FsKind::Xfs => make_xfs(disk.path, offset, size, f, tree, &dirs.root, mkfs),
        FsKind::Swap => unreachable!("swap is made above"),
    }
}

/// Stage: every requested output from the raw disk, as temporary files in `out` in publication
/// order (raw, raw.xz, qcow2, boxes). The qcow2 is written once and serves both `-i qcow2` and the
/// libvirt box.
fn write_outputs(
    job: &ImageJob,
    formats: &[OutputFormat],
    plan: &DiskPlan,
    raw: tempfile::TempPath,
    out: &Path,
    log: &mut BuildLog,
) -> Result<Vec<Staged>> {
    let needs_qcow2 = formats
        .iter()
        .any(|f| matches!(f, OutputFormat::Qcow2 | OutputFormat::VagrantLibvirt));
    let mut qcow2 = if needs_qcow2 {
        Some(write_qcow2_output(job, &raw, out, log)?)
    } else {
        None
    };
    let mut staged = Vec::new();
    for fmt in formats {
        let tmp = match fmt {
            OutputFormat::Raw | OutputFormat::Qcow2 => continue,
            // Written by the live writers from the deployment, not from the disk.
            OutputFormat::PxeLive | OutputFormat::LiveIso | OutputFormat::InstallerIso => continue,
            OutputFormat::RawXz => write_raw_xz(&raw, out, log)?,
            OutputFormat::VagrantLibvirt => {
                let qcow2 = qcow2.as_ref().context("qcow2 for the libvirt box")?;
                write_libvirt_box(job, plan, qcow2, out, log)?
            }
            OutputFormat::VagrantVirtualbox => write_virtualbox_box(job, plan, &raw, out, log)?,
        };
        staged.push(Staged {
            format: Some(*fmt),
            final_path: output_path(job, *fmt),
            tmp: tmp.into(),
        });
    }
    if formats.contains(&OutputFormat::Qcow2) {
        let tmp = qcow2.take().context("qcow2 output")?;
        let pos = staged
            .iter()
            .position(|s| s.format > Some(OutputFormat::Qcow2))
            .unwrap_or(staged.len());
        let final_path = output_path(job, OutputFormat::Qcow2);
        staged.insert(
            pos,
            Staged {
                format: Some(OutputFormat::Qcow2),
                final_path,
                tmp: tmp.into(),
            },
        );
    }
    drop(qcow2);
    if formats.contains(&OutputFormat::Raw) {
        let final_path = output_path(job, OutputFormat::Raw);
        staged.insert(
            0,
            Staged {
                format: Some(OutputFormat::Raw),
                final_path,
                tmp: raw.into(),
            },
        );
    }
    Ok(staged)
}

fn output_path(job: &ImageJob, fmt: OutputFormat) -> PathBuf {
    job.outdir.join(format!("{}.{}", job.name, fmt.extension()))
}

/// Box tar headers: `SOURCE_DATE_EPOCH` or 0.
fn box_mtime(job: &ImageJob) -> u64 {
    job.source_date_epoch.unwrap_or(0).max(0) as u64
}

fn write_raw_xz(raw: &Path, out: &Path, log: &mut BuildLog) -> Result<tempfile::TempPath> {
    set_stage("compressing raw.xz");
    log.step("compressing raw.xz");
    let bar = crate::progress::spinner("compressing raw.xz");
    let r = xz(raw, out);
    bar.finish_and_clear();
    let (f, tmp) = r?;
    f.sync_all()?;
    Ok(tmp)
}

fn write_libvirt_box(
    job: &ImageJob,
    plan: &DiskPlan,
    qcow2: &Path,
    out: &Path,
    log: &mut BuildLog,
) -> Result<tempfile::TempPath> {
    set_stage("packing the vagrant-libvirt box");
    log.step("packing the vagrant-libvirt box (tar.gz: metadata.json, Vagrantfile, box.img)");
    let (f, tmp) = temp_in(out, ".box")?;
    let bar = crate::progress::bytes(
        "packing vagrant-libvirt box",
        std::fs::metadata(qcow2)?.len(),
    );
    let r = crate::output::vagrant::write_libvirt_box(
        qcow2,
        plan.size_bytes,
        &f,
        box_mtime(job),
        &|n| bar.inc(n),
    );
    bar.finish_and_clear();
    r?;
    f.sync_all()?;
    Ok(tmp)
}

fn write_virtualbox_box(
    job: &ImageJob,
    plan: &DiskPlan,
    raw: &Path,
    out: &Path,
    log: &mut BuildLog,
) -> Result<tempfile::TempPath> {
    set_stage("writing the vagrant-virtualbox box");
    let vm = crate::output::vagrant::BoxVm::new(&job.name, plan.size_bytes, &plan.disk_guid);
    log.step(format!(
        "writing the streamOptimized VMDK (NAT MAC {})",
        vm.mac_hex()
    ));
    let (vf, vtmp) = temp_in(out, ".vmdk")?;
    let cid = u32::from_be_bytes(vm.disk_uuid.as_bytes()[..4].try_into().unwrap_or_default());
    let data = crate::output::qcow2::bytes_to_read(raw)?;
    let bar = crate::progress::bytes("writing VMDK", data);
    let st = crate::output::vmdk::write_stream_optimized(
        raw,
        &vf,
        cid,
        crate::output::vagrant::VMDK_NAME,
        &|n| bar.inc(n),
    );
    bar.finish_and_clear();
    let st = st?;
    log.step(format!(
        "VMDK: {} grains, {} MiB file",
        st.grains,
        st.file_size / MIB
    ));
    log.step("packing the vagrant-virtualbox box (tar: box.ovf, VMDK, Vagrantfile, metadata.json)");
    let (f, tmp) = temp_in(out, ".box")?;
    crate::output::vagrant::write_virtualbox_box(&vm, &vtmp, &f, box_mtime(job), &|_| {})?;
    drop(vtmp);
    f.sync_all()?;
    Ok(tmp)
}

/// `metadata.json` for the published outputs.
fn metadata_json(
    job: &ImageJob,
    req: &BuildRequest,
    deployed: &Deployed,
    built: &Built<'_>,
    outputs: &[OutputInfo],
) -> Result<Vec<u8>> {
    let source = &req.source;
    let live = built.live.map(|l| {
        let mut args = BTreeMap::new();
        if req.formats.contains(&OutputFormat::PxeLive) {
            args.insert("pxe-http", crate::live::pxe::net_cmdline(&l.root, &l.url));
            args.insert("pxe-cpio", crate::live::pxe::cpio_cmdline(&l.root));
        }
        if let Some(v) = &l.volume_id {
            args.insert("live-iso", iso_cmdline(&l.root, v));
        }
        LiveInfo {
            kernel_version: &l.root.kernel_version,
            initramfs_rebuilt: l.root.initramfs_rebuilt,
            dracut_modules: &l.root.dracut_modules,
            rootfs_bytes: l.root.rootfs_bytes,
            volume_id: l.volume_id.as_deref(),
            kernel_arguments: args,
        }
    });
    let m = Metadata {
        tool: Tool {
            name: "imagebuilder",
            version: env!("CARGO_PKG_VERSION"),
        },
        kickstart: Some(KickstartInfo {
            file: job
                .kickstart_path
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            sha256: job.kickstart_sha256.clone(),
        }),
        source: SourceInfo {
            reference: &source.reference,
            commit: &deployed.commit,
            osname: &source.osname,
            remote: &source.remote,
            remote_url: &source.remote_url,
            pulled_from: &source.pull_url,
            gpg_verified: source.gpg_verify,
        },
        source_date_epoch: job.source_date_epoch,
        disk: built.plan,
        kernel_arguments: &req.kargs,
        live,
        installer: built.installer,
        outputs,
    };
    let mut v = serde_json::to_vec_pretty(&m)?;
    v.push(b'\n');
    Ok(v)
}

/// Writes the qcow2 of `raw_tmp` into a temporary file in `dir`.
fn write_qcow2_output(
    job: &ImageJob,
    raw_tmp: &Path,
    dir: &Path,
    log: &mut BuildLog,
) -> Result<tempfile::TempPath> {
    set_stage("writing the qcow2");
    log.step(format!(
        "writing qcow2{}",
        if job.qcow2_compress {
            " (compressed)"
        } else {
            ""
        }
    ));
    let (f, tmp) = temp_in(dir, ".qcow2")?;
    let data = crate::output::qcow2::bytes_to_read(raw_tmp)?;
    let bar = crate::progress::bytes("writing qcow2", data);
    let st = write_qcow2_with_progress(
        raw_tmp,
        &f,
        Qcow2Options {
            compress: job.qcow2_compress,
        },
        &|n| bar.inc(n),
    );
    bar.finish_and_clear();
    let st = st?;
    f.sync_all()?;
    log.step(format!(
        "qcow2: {} data clusters, {} MiB file",
        st.data_clusters,
        st.file_size / MIB
    ));
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::process::Command;

    use super::*;
    use crate::deployment::deploy::testutil::synthetic_commit;
    use crate::plan::request::{
        BootloaderRequest, LogVolRequest, PartitionRequest, VolGroupRequest,
    };
    use crate::util::cmd::CommandExt;

    fn job(outdir: &Path, repo: &Path, epoch: Option<i64>) -> ImageJob {
        ImageJob {
            disk: DiskRequest {
                source_name: "t.ks".into(),
                partitions: vec![
                    PartitionRequest {
                        line: 4,
                        mountpoint: "/".into(),
                        grow: true,
                        fstype: Some("ext4".into()),
                        ..Default::default()
                    },
                    PartitionRequest {
                        line: 5,
                        mountpoint: "/boot".into(),
                        size_mib: Some(64),
                        ..Default::default()
                    },
                ],
                bootloader: BootloaderRequest {
                    line: 6,
                    append: vec!["console=ttyS0,115200".into()],
                    timeout: Some(1),
                    disabled: false,
                },
                ..Default::default()
            },
            ostreesetup: Some(OstreeSetup {
                line: 3,
                osname: "testos".into(),
                remote: None,
                url: "https://example.invalid/repo".into(),
                reference: "test/x86_64/base".into(),
                nogpg: true,
            }),
            ostree_repo: Some(repo.to_path_buf()),
            formats: vec![OutputFormat::Raw, OutputFormat::Qcow2],
            outdir: outdir.to_path_buf(),
            name: "disk".into(),
            kickstart_sha256: Some("00".into()),
            source_date_epoch: epoch,
            ..Default::default()
        }
    }

    #[test]
    #[ignore = "slow tier: needs root (deploys a commit)"]
    fn builds_valid_reproducible_raw_and_qcow2() {
        let d = tempfile::tempdir().unwrap();
        let (repo, commit) = synthetic_commit(d.path(), "test/x86_64/base", 3 << 20).unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        let ra = build_image(&job(&a, &repo, Some(1_700_000_000)), &[]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let rb = build_image(&job(&b, &repo, Some(1_700_000_000)), &[]).unwrap();
        assert_eq!(ra.commit, commit);
        let sums_a = std::fs::read_to_string(a.join("SHA256SUMS")).unwrap();
        let sums_b = std::fs::read_to_string(b.join("SHA256SUMS")).unwrap();
        assert_eq!(sums_a, sums_b, "two builds with SOURCE_DATE_EPOCH differ");
        assert_eq!(ra.plan, rb.plan);

        // Only finished outputs in OUTDIR.
        let mut names: Vec<String> = std::fs::read_dir(&a)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "SHA256SUMS",
                "disk.qcow2",
                "disk.raw",
                "logs",
                "metadata.json"
            ]
        );
        crate::build::publish::verify_sums(&a).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(meta["source"]["commit"], commit.as_str());
        assert_eq!(
            meta["source"]["remote_url"],
            crate::deployment::deploy::file_url(&repo).unwrap().as_str()
        );
        assert_eq!(meta["disk"]["partitions"].as_array().unwrap().len(), 4);

        let raw = a.join("disk.raw");
        let out = Command::new("sgdisk")
            .arg("-v")
            .arg(&raw)
            .run_text()
            .unwrap();
        assert!(out.contains("No problems found"), "{out}");
        let chk = Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(a.join("disk.qcow2"))
            .run_text()
            .unwrap();
        assert!(chk.contains("No errors were found"), "{chk}");
        let cmp = Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(&raw)
            .arg(a.join("disk.qcow2"))
            .run_text()
            .unwrap();
        assert!(cmp.contains("Images are identical"), "{cmp}");

        let plan = ra.plan.as_ref().unwrap();
        for (f, offset, size) in plan.filesystems() {
            let part = d.path().join("part");
            crate::fs::extract_range(&raw, offset, size, &part).unwrap();
            match f.kind {
                FsKind::Ext4 => Command::new("e2fsck").arg("-fn").arg(&part).run().unwrap(),
                FsKind::Vfat => {
                    Command::new("fsck.fat").arg("-n").arg(&part).run().unwrap();
                    let l = Command::new("mdir")
                        .args(["-/", "-b", "-i"])
                        .arg(&part)
                        .arg("::/")
                        .run_text()
                        .unwrap();
                    assert!(l.contains("::/EFI/BOOT/BOOTX64.EFI"), "{l}");
                }
                _ => unreachable!(),
            }
            let debugfs = |cmd: &str| {
                Command::new("debugfs")
                    .args(["-R", cmd])
                    .arg(&part)
                    .run_text()
                    .unwrap()
            };
            if f.mountpoint == "/" {
                let dep = format!("/ostree/deploy/testos/deploy/{commit}.0");
                let fstab = debugfs(&format!("cat {dep}/etc/fstab"));
                let boot = plan
                    .filesystems()
                    .into_iter()
                    .find(|x| x.0.mountpoint == "/boot")
                    .unwrap()
                    .0;
                assert!(
                    fstab.contains(&format!("UUID={} / ext4 defaults 0 1", f.uuid)),
                    "{fstab}"
                );
                assert!(
                    fstab.contains(&format!("UUID={} /boot ext4 defaults 0 2", boot.uuid)),
                    "{fstab}"
                );
                assert!(
                    fstab.contains("/boot/efi vfat umask=0077,shortname=winnt 0 2"),
                    "{fstab}"
                );
                let stat = debugfs(&format!("stat {dep}/usr/bin/blob"));
                assert!(
                    stat.contains("Links: 2"),
                    "deployment file not hard-linked to the repo: {stat}"
                );
                let ls = debugfs("ls -l /boot");
                assert!(
                    !ls.contains("loader"),
                    "/boot on the root fs must be an empty mount point: {ls}"
                );
            }
            if f.mountpoint == "/boot" {
                let cfg = debugfs("cat /grub/grub.cfg");
                assert!(cfg.contains("set timeout=1"), "{cfg}");
                assert!(cfg.contains("  linux /ostree/testos-"), "{cfg}");
                assert!(
                    cfg.contains(&format!(
                        "root=UUID={} rw console=ttyS0,115200 ostree=/ostree/boot.1/testos/",
                        plan.filesystem_for("/").unwrap().uuid
                    )),
                    "{cfg}"
                );
                assert!(debugfs("ls -l /loader/entries").contains("ostree-1-testos.conf"));
            }
        }
    }

    #[test]
    #[ignore = "slow tier: needs root (deploys a commit)"]
    fn bad_inputs_fail_before_work_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (repo, _) = synthetic_commit(d.path(), "test/x86_64/base", 10).unwrap();
        let out = d.path().join("out");

        let mut j = job(&out, &repo, None);
        j.ostreesetup = None;
        let e = format!("{:#}", build_image(&j, &[]).unwrap_err());
        assert!(
            e.contains("t.ks: the kickstart has no `ostreesetup` line"),
            "{e}"
        );

        let mut j = job(&out, &repo, None);
        j.reference = Some("no/such/ref".into());
        let e = format!("{:#}", build_image(&j, &[]).unwrap_err());
        assert!(e.contains("pulling no/such/ref"), "{e}");

        let mut j = job(&out, &repo, None);
        j.disk.partitions[1].size_mib = Some(3);
        let e = format!("{:#}", build_image(&j, &[]).unwrap_err());
        assert!(
            e.contains("t.ks:5: the partition for /boot is 3 MiB but its content needs about"),
            "{e}"
        );

        let mut j = job(&out, &repo, None);
        j.ostree_repo = None;
        j.ostreesetup.as_mut().unwrap().url = "http://127.0.0.1:9/repo".into();
        let e = format!("{:#}", build_image(&j, &[]).unwrap_err());
        assert!(
            e.contains("pulling test/x86_64/base from http://127.0.0.1:9/repo"),
            "{e}"
        );

        let leftovers: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "logs")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let log = std::fs::read_to_string(out.join("logs/failed-disk/disk.log")).unwrap();
        assert!(log.contains("FAILED: pulling test/x86_64/base"), "{log}");
    }

    #[test]
    #[ignore = "slow tier: needs root (deploys a commit)"]
    fn lvm_root_and_swap_are_reproducible_and_named_by_mapper_path() {
        let d = tempfile::tempdir().unwrap();
        let (repo, _) = synthetic_commit(d.path(), "test/x86_64/base", 1 << 20).unwrap();
        let lvm_job = |out: &Path| {
            let mut j = job(out, &repo, Some(1_700_000_000));
            j.formats = vec![OutputFormat::Raw];
            j.disk.partitions[0] = PartitionRequest {
                line: 4,
                mountpoint: "pv.01".into(),
                grow: true,
                ..Default::default()
            };
            j.disk.volgroups.push(VolGroupRequest {
                line: 7,
                name: "vg-test".into(),
                pvs: vec!["pv.01".into()],
                pesize_kib: Some(1024),
                reserved_mib: Some(8),
                ..Default::default()
            });
            for (line, mp, name, size) in [(8, "/", "root", None), (9, "swap", "swap", Some(16))] {
                j.disk.logvols.push(LogVolRequest {
                    line,
                    mountpoint: mp.into(),
                    name: name.into(),
                    vgname: "vg-test".into(),
                    size_mib: size,
                    grow: size.is_none(),
                    fstype: (mp == "swap").then(|| "swap".into()),
                    ..Default::default()
                });
            }
            j
        };
        let a = d.path().join("a");
        let b = d.path().join("b");
        let ra = build_image(&lvm_job(&a), &[]).unwrap();
        build_image(&lvm_job(&b), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(a.join("SHA256SUMS")).unwrap(),
            std::fs::read_to_string(b.join("SHA256SUMS")).unwrap(),
            "two LVM builds with SOURCE_DATE_EPOCH differ"
        );
        let vg = &ra.plan.as_ref().unwrap().volume_groups[0];
        assert_eq!(vg.extent_size, MIB);
        assert!(vg.free_extents >= 8, "{vg:?}");
        let raw = a.join("disk.raw");
        let f = File::open(&raw).unwrap();
        let mut label = [0u8; 8];
        f.read_exact_at(&mut label, vg.pvs[0].offset + 512).unwrap();
        assert_eq!(&label, b"LABELONE");
        let swap = &vg.lvs[1];
        let mut sig = [0u8; 10];
        f.read_exact_at(&mut sig, swap.offset + 4086).unwrap();
        assert_eq!(&sig, b"SWAPSPACE2");
        let root = &vg.lvs[0];
        let part = d.path().join("root.img");
        crate::fs::extract_range(&raw, root.offset, root.size, &part).unwrap();
        Command::new("e2fsck").arg("-fn").arg(&part).run().unwrap();
        let debugfs = |cmd: &str| {
            Command::new("debugfs")
                .args(["-R", cmd])
                .arg(&part)
                .run_text()
                .unwrap()
        };
        let dep = format!("/ostree/deploy/testos/deploy/{}.0", ra.commit);
        let fstab = debugfs(&format!("cat {dep}/etc/fstab"));
        assert!(
            fstab.contains("/dev/mapper/vg--test-root / ext4 defaults 0 1\n"),
            "{fstab}"
        );
        assert!(
            fstab.contains("/dev/mapper/vg--test-swap none swap defaults 0 0\n"),
            "{fstab}"
        );
        let meta = std::fs::read_to_string(a.join("metadata.json")).unwrap();
        assert!(
            meta.contains("\"root=/dev/mapper/vg--test-root\",\n    \"rd.lvm.lv=vg-test/root\",\n    \"rd.lvm.lv=vg-test/swap\""),
            "{meta}"
        );
    }

    #[test]
    fn physical_paths_follow_ostree_layout() {
        let d = tempfile::tempdir().unwrap();
        let dep = Deployed {
            sysroot: d.path().into(),
            deployment: d.path().join("ostree/deploy/os/deploy/c.0"),
            var: d.path().join("ostree/deploy/os/var"),
            osname: "os".into(),
            commit: "c".into(),
        };
        std::fs::create_dir_all(&dep.deployment).unwrap();
        std::os::unix::fs::symlink("var/home", dep.deployment.join("home")).unwrap();
        assert_eq!(
            physical_path(&dep, "/boot/efi").unwrap(),
            d.path().join("boot/efi")
        );
        assert_eq!(
            physical_path(&dep, "/var/log").unwrap(),
            dep.var.join("log")
        );
        assert_eq!(physical_path(&dep, "/home").unwrap(), dep.var.join("home"));
        assert!(
            physical_path(&dep, "/usr")
                .unwrap_err()
                .to_string()
                .contains("read-only OSTree deployment")
        );
    }
}
