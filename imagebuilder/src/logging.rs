//! Logging set-up shared by the binary and tests: tracing to stderr, `RUST_LOG` honoured.

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger. `verbose` raises the default level to debug (every command line).
pub fn init(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}
