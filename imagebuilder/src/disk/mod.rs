//! Native disk images (issue 5): an OSTree commit plus a kickstart layout become raw and qcow2 disk
//! images without a VM, a loop device or a mount — except XFS, which only the kernel can populate
//! with hard links intact on Debian 12 ([`xfs`]: a loop device over the filesystem's byte range).
//!
//! The pipeline ([`pipeline`]) reads top to bottom over plain data: the layout request
//! ([`request`]) is validated into a [`plan::Layout`]; the commit is deployed into a staging sysroot
//! ([`crate::deploy`]); the staged tree is measured and the layout sized into a [`plan::DiskPlan`];
//! LVM physical volumes get their metadata written natively ([`lvm`]) and every filesystem, on a
//! partition or a logical volume, is written straight into the image file at its offset ([`fs`], [`fat`]); the GPT
//! ([`gpt`]) and GRUB for BIOS and UEFI ([`grub`]) follow; then the outputs ([`outputs`], [`qcow2`],
//! Vagrant boxes in [`vagrant`] with the streamOptimized VMDK of [`vmdk`]).

pub mod demo;
pub mod fat;
pub mod from_kickstart;
pub mod fs;
pub mod gpt;
pub mod grub;
pub mod hooks;
pub mod lvm;
pub mod outdir;
pub mod outputs;
pub mod pipeline;
pub mod plan;
pub mod qcow2;
pub mod request;
pub mod vagrant;
pub mod vmdk;
pub mod xfs;
