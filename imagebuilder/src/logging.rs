//! Logging set-up shared by the binary and tests: tracing to stderr, `RUST_LOG` honoured.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger. `verbose` raises the default level to debug (every command line).
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| QuietWhenInterrupted)
        // Colour only for a person at a terminal: CI logs and journald get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}

/// stderr, silenced once the process is being interrupted: the interruption handler's one line
/// is then the last thing printed (the abandoned build's own errors and warnings are not).
struct QuietWhenInterrupted;

impl std::io::Write for QuietWhenInterrupted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if crate::util::cleanup::is_interrupted() {
            return Ok(buf.len());
        }
        std::io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if crate::util::cleanup::is_interrupted() {
            return Ok(());
        }
        std::io::stderr().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
