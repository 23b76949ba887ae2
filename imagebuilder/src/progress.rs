//! Progress bars for the long steps, only when stderr is a terminal.
//!
//! When stderr is not a terminal (CI logs, pipes) every constructor returns a hidden bar: nothing
//! is drawn, and the step's plain log line (written by the caller through `tracing`) is all that
//! shows.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars are drawn: stderr is a terminal.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte-counting bar of `total` bytes labelled `msg` (hidden unless stderr is a terminal).
pub fn bytes(msg: &str, total: u64) -> ProgressBar {
    bytes_to(enabled(), msg, total)
}

/// A spinner with the elapsed time, for steps whose size is unknown (hidden unless stderr is a
/// terminal).
pub fn spinner(msg: &str) -> ProgressBar {
    spinner_to(enabled(), msg)
}

fn target(terminal: bool) -> ProgressDrawTarget {
    if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn bytes_to(terminal: bool, msg: &str, total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(total), target(terminal))
        .with_style(style)
        .with_message(msg.to_string())
}

fn spinner_to(terminal: bool, msg: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::with_draw_target(None, target(terminal))
        .with_style(style)
        .with_message(msg.to_string());
    if terminal {
        pb.enable_steady_tick(Duration::from_millis(120));
    }
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bar_without_a_terminal() {
        let b = bytes_to(false, "writing", 100);
        b.inc(50);
        assert!(b.is_hidden());
        assert_eq!(b.position(), 50, "a hidden bar still counts");
        assert!(spinner_to(false, "deploying").is_hidden());
    }

    #[test]
    fn bar_with_a_terminal() {
        // The draw target is stderr; whether indicatif then draws depends on the real stderr,
        // but the bar is made for it, not hidden by construction.
        let b = bytes_to(true, "writing", 100);
        assert_eq!(b.length(), Some(100));
        b.finish_and_clear();
    }
}
