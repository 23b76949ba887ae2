//! Located diagnostics.

use serde::Serialize;

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Makes the file invalid.
    Error,
    /// pykickstart's `KickstartParseWarning`/`KickstartDeprecationWarning` (errors under ksvalidator).
    Warning,
}

/// One `%include` on the way to the file a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncludeSite {
    /// The including file.
    pub file: String,
    /// Line of the `%include` in it.
    pub line: usize,
}

/// A problem found in a kickstart, with its location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The message (pykickstart's text where pykickstart has one).
    pub message: String,
    /// File the offending line is in (as named in the `%include` or on the command line).
    pub file: String,
    /// Line in that file, local to it as pykickstart counts (0 = "the file could not be opened").
    pub line: usize,
    /// The `%include` chain from the top-level file down to `file` (outermost first).
    pub include_chain: Vec<IncludeSite>,
    /// Parsing stopped here (pykickstart raises this outside its per-command error handling).
    pub fatal: bool,
    /// pykickstart would report no line number for this problem (shlex errors, UTF-8 errors,
    /// package group options, empty `%certificate`).
    pub pykickstart_has_no_line: bool,
}

impl Diagnostic {
    /// `file:line: message` plus one `included from file:line` per include level.
    pub fn render(&self) -> String {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut s = format!("{}:{}: {}: {}", self.file, self.line, kind, self.message);
        for site in self.include_chain.iter().rev() {
            s.push_str(&format!("\n  included from {}:{}", site.file, site.line));
        }
        s
    }
}
