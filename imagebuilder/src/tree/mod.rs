//! OSTree content: native commits of a prepared root filesystem, `rpm-ostree compose tree` driving
//! (treecompose), version policies, GPG signing and verification, and the project's demo tree.
//!
//! * [`commit`] turns a root filesystem into a bootable OSTree commit with libostree (no `ostree` CLI).
//! * [`compose`] builds the `rpm-ostree compose tree` command line from a config.ini and a treefile.
//! * [`version`] computes the next `version` from the previous commit's one.
//! * [`sign`] signs commits and summaries and verifies them.
//! * [`demo`] builds (once, cached) the Debian 12 demo tree every boot test starts from.

pub mod commit;
pub mod compose;
pub mod demo;
pub mod repo;
pub mod sign;
pub mod version;
