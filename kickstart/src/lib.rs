//! Anaconda kickstart files: tokenizing, parsing, per-version validation and writing back.
//!
//! Parsing is pure (`&str` in, model or located error out); loading files and resolving `%include`
//! live in a thin layer above it. This crate spawns no processes and touches no network.
