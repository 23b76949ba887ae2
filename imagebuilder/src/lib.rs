//! imagebuilder: turns an OSTree commit plus a kickstart into the images Fedora Atomic ships.
//!
//! All work lives in this library so that tests call it directly; `src/main.rs` and `src/cli/` hold
//! only clap types and dispatch.

pub mod cmd;
pub mod fsutil;
pub mod ks;
pub mod logging;
