//! Running the host's checking tools from tests: the output (stdout then stderr) of a command that
//! must succeed. Included with `#[path]` by the test files that use it; not a test target of its own.

use std::process::Command;

/// Runs `cmd args`; panics with its output when it fails. LVM's warnings about inherited file
/// descriptors are silenced.
pub fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned() + String::from_utf8_lossy(&o.stderr).as_ref()
}
