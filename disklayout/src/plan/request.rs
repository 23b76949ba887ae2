//! The layout request: what a kickstart asks of the disk, as plain data.
//!
//! This is the disk area's own input type. The kickstart adapter fills it from the parsed kickstart
//! (each item keeps its kickstart line so that errors can name it); tests build it directly.

use serde::{Deserialize, Serialize};

/// Everything about the target disk and boot that a kickstart can say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskRequest {
    /// Name used in errors (`FILE:LINE: …`), usually the kickstart path.
    pub source_name: String,
    /// `part` / `partition` lines, in kickstart order.
    pub partitions: Vec<PartitionRequest>,
    /// `volgroup` lines, in kickstart order.
    pub volgroups: Vec<VolGroupRequest>,
    /// `logvol` lines, in kickstart order.
    pub logvols: Vec<LogVolRequest>,
    /// `reqpart` (with `--add-boot`).
    pub reqpart: Option<ReqpartRequest>,
    /// `autopart` (only `--type=plain` is supported).
    pub autopart: Option<AutopartRequest>,
    /// `bootloader`.
    pub bootloader: BootloaderRequest,
    /// `clearpart`, `zerombr`, `ignoredisk`: accepted, meaningless for a fresh image file.
    pub accepted_noops: Vec<Located<String>>,
    /// What `ignoredisk`, `clearpart`, `zerombr` and `part --ondisk` say of the disk an installer
    /// writes to.
    pub install_target: crate::install::TargetRequest,
    /// `reboot`, `poweroff`/`shutdown` or `halt`: what an installer does when done.
    pub finish: crate::install::Finish,
    /// Lines that ask for something this builder does not support yet (`raid`, `btrfs`
    /// volumes…): each becomes a "not supported" error naming the line.
    pub unsupported: Vec<Located<String>>,
    /// Values no disk image can have (a size that is not positive or larger than
    /// [`MAX_DISK_MIB`]): each becomes an error naming the line.
    pub invalid: Vec<Located<String>>,
}

/// The largest disk the builder writes, in MiB: the raw image is a file, and ext4 (4 KiB blocks)
/// holds files up to 16 TiB.
pub const MAX_DISK_MIB: u64 = 16 * 1024 * 1024 - 1;

/// A value with the kickstart line it came from (0 = not from a line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Located<T> {
    pub line: usize,
    pub value: T,
}

/// One `part` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionRequest {
    pub line: usize,
    /// Mount point or special name: `/`, `/boot`, `swap`, `biosboot`, `/boot/efi`, `pv.01`, …
    pub mountpoint: String,
    /// `--fstype`.
    pub fstype: Option<String>,
    /// `--size` in MiB.
    pub size_mib: Option<u64>,
    /// `--grow`.
    pub grow: bool,
    /// `--maxsize` in MiB.
    pub maxsize_mib: Option<u64>,
    /// `--label`.
    pub label: Option<String>,
    /// `--fsoptions` (used in fstab).
    pub fsoptions: Option<String>,
}

/// One `volgroup` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolGroupRequest {
    pub line: usize,
    pub name: String,
    /// Member partitions (`pv.01`, …).
    pub pvs: Vec<String>,
    /// `--pesize` in KiB.
    pub pesize_kib: Option<u64>,
    /// `--reserved-space` in MiB.
    pub reserved_mib: Option<u64>,
    /// `--reserved-percent`.
    pub reserved_percent: Option<u64>,
    /// `--useexisting`/`--noformat`: meaningless for a fresh image (refused).
    pub preexist: bool,
}

/// One `logvol` line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogVolRequest {
    pub line: usize,
    /// Mount point or `swap`.
    pub mountpoint: String,
    /// `--name`.
    pub name: String,
    /// `--vgname`.
    pub vgname: String,
    /// `--size` in MiB.
    pub size_mib: Option<u64>,
    /// `--percent` of the volume group.
    pub percent: Option<u64>,
    pub grow: bool,
    /// `--maxsize` in MiB.
    pub maxsize_mib: Option<u64>,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub fsoptions: Option<String>,
    /// `--thinpool`.
    pub thin_pool: bool,
    /// `--thin` (with `--poolname`).
    pub thin: bool,
    pub pool_name: Option<String>,
    /// `--useexisting`/`--noformat`.
    pub preexist: bool,
    pub encrypted: bool,
}

/// `reqpart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReqpartRequest {
    pub line: usize,
    pub add_boot: bool,
}

/// `autopart`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutopartRequest {
    pub line: usize,
    /// `--type` (None = Anaconda's default, which is LVM: refused like LVM).
    pub kind: Option<String>,
    /// `--fstype`.
    pub fstype: Option<String>,
    /// `--nohome`/`--noswap` etc. are irrelevant: this builder never adds /home or swap.
    pub noswap: bool,
}

/// `bootloader`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootloaderRequest {
    pub line: usize,
    /// `--append`, split into kernel arguments.
    pub append: Vec<String>,
    /// `--timeout` in seconds.
    pub timeout: Option<u32>,
    /// `--location=none` / `--disabled`: no bootloader is installed.
    pub disabled: bool,
}

/// `ostreesetup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OstreeSetup {
    pub line: usize,
    pub osname: String,
    pub remote: Option<String>,
    pub url: String,
    pub reference: String,
    pub nogpg: bool,
}

impl OstreeSetup {
    /// The remote name: `--remote`, defaulting to `--osname` (as Anaconda does).
    pub fn remote_name(&self) -> &str {
        self.remote.as_deref().unwrap_or(&self.osname)
    }
}
