//! imagebuilder: turns an OSTree commit plus a kickstart into the images Fedora Atomic ships.
//!
//! All work lives in this library so that tests call it directly; `src/main.rs` and `src/cli/` hold
//! only clap types and dispatch.

pub mod boot_test;
pub mod cleanup;
pub mod cmd;
pub mod config;
pub mod deploy;
pub mod disk;
pub mod fsutil;
pub mod imagefactory;
pub mod ks;
pub mod logging;
pub mod mounts;
pub mod post;
pub mod progress;
pub mod render;
pub mod sandbox;
pub mod sysconfig;
pub mod tdl;
pub mod tree;
