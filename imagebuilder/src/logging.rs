//! Logging set-up shared by the binary and tests: tracing to stderr, `RUST_LOG` honoured.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger. `verbose` raises the default level to debug (every command line).
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: CI logs and journald get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}
