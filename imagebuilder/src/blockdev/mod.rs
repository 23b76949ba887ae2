//! Mounts and loop devices the host sees: what is mounted or attached under a directory
//! (`/proc/self/mountinfo`, the loop devices' backing files) and removing a tree only after
//! everything on it is unmounted and detached ([`mounts`]). The RAII guards for a loop device and
//! a mount live beside the one user of them, [`crate::fs::xfs`].

pub mod mounts;
