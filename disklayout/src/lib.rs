//! The described disk as plain data, and its own on-disk structures.
//!
//! [`plan`] turns a kickstart's partitioning request into a layout and, for a given disk size, a
//! placed [`plan::DiskPlan`]; [`disk::gpt`] and [`disk::lvm`] write that plan's GPT and LVM2
//! metadata. The crate has no C dependency: the image builder uses it on the build host, and the
//! static installer helper uses it on the machine being installed, so both lay out a kickstart
//! the same way.

pub mod install;
pub mod plan;

pub mod disk {
    //! The GPT and LVM2 structures of a [`crate::plan::DiskPlan`].
    pub mod gpt;
    pub mod lvm;
}
