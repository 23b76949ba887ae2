//! The disk's own structures, written natively into the raw image: the GPT ([`gpt`]) and LVM2
//! physical volume labels and metadata ([`lvm`]).

pub mod gpt;
pub mod lvm;
