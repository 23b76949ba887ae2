//! The disk's own structures, written natively into the raw image: the GPT ([`gpt`]) and LVM2
//! physical volume labels and metadata (`disklayout::disk::lvm`). They live in the `disklayout` crate with the
//! plan, so the installer that lays a plan out on a real disk writes them with the same code.

pub use disklayout::disk::gpt;
