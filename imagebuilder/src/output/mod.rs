//! Output formats made from the finished raw disk: the streaming qcow2 writer ([`qcow2`]), the
//! streamOptimized VMDK (`vmdk`) and the Vagrant boxes (`vagrant`).

pub mod qcow2;
pub(crate) mod vagrant;
pub(crate) mod vmdk;
