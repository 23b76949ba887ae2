//! imagebuilder: turns an OSTree commit plus a kickstart into the images Fedora Atomic ships.
//!
//! All work lives in this library so that tests call it directly; `src/main.rs` and `src/cli/` hold
//! only clap types and dispatch.

pub mod blockdev;
pub(crate) mod boot;
pub mod boot_test;
pub mod build;
pub mod config;
pub mod deployment;
pub(crate) mod disk;
pub mod docgen;
pub mod fs;
pub mod host;
pub mod imagefactory;
pub mod installer;
pub mod iso;
pub mod ks;
pub mod live;
pub mod logging;
pub mod output;
pub use disklayout::plan;
pub(crate) mod progress;
pub mod render;
pub mod tdl;
pub mod tree;
pub mod util;
