//! The reference oracle of the tests that compare against pykickstart (and Python's shlex and
//! configparser): `.venv/bin/python` with pykickstart 3.78, installed by scripts/install-deps.sh.
//! Included with `#[path]` by those test files (of both crates); not a test target of its own.
//!
//! Without it a test prints one line and passes, so `cargo test` works on a machine without the
//! venv; with `IMAGEBUILDER_REQUIRE_ORACLES=1` (set by `make test`) a missing oracle fails the test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

const NOT_INSTALLED: &str = "pykickstart 3.78 oracle not installed (run scripts/install-deps.sh)";

/// The venv's python (the project root is the workspace directory above each crate).
fn python() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
}

/// True when the oracle is missing and the test should return at once (after one line saying so);
/// panics instead when `IMAGEBUILDER_REQUIRE_ORACLES=1`.
pub fn missing() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        Command::new(python())
            .args(["-c", "import pykickstart"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if installed {
        return false;
    }
    if std::env::var_os("IMAGEBUILDER_REQUIRE_ORACLES").is_some_and(|v| v == "1") {
        panic!("{NOT_INSTALLED}; IMAGEBUILDER_REQUIRE_ORACLES=1 makes that a failure");
    }
    // Written to the real stderr, not the test harness's captured output, so it shows.
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| format!("{n}: "))
        .unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{test}skipped: {NOT_INSTALLED}");
    true
}
