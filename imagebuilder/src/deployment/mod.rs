//! The staged deployment: the commit deployed into a staging sysroot ([`deploy`]), then the
//! kickstart's system configuration ([`sysconfig`]) and `%post` scripts ([`post`], confined by
//! [`sandbox`]) applied to it by the crate's configuration hooks (`hooks`). The result is a plain
//! directory tree that every artifact writer consumes.

pub mod deploy;
pub(crate) mod hooks;
pub mod post;
pub mod sandbox;
pub mod sysconfig;
