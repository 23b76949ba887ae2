//! Per-version command and option tables, generated from pykickstart 3.78 by
//! `scripts/gen-ks-tables.py` into `kickstart/data/tables.json` and compiled into the crate.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

static TABLES_JSON: &str = include_str!("../data/tables.json");

/// All generated tables.
#[derive(Debug, Deserialize)]
pub struct Tables {
    /// pykickstart version the tables were generated from.
    pub pykickstart: String,
    /// The version `DEVEL` stands for.
    pub devel: String,
    /// Deduplicated argparse parsers.
    pub parsers: Vec<ParserSpec>,
    /// Syntax versions, oldest Fedora first, then RHEL.
    pub versions: Vec<VersionSpec>,
}

/// One argparse parser (`KSOptionParser`).
#[derive(Debug, Deserialize)]
pub struct ParserSpec {
    /// `prog` of the parser (e.g. `part|partition`).
    pub prog: String,
    /// Actions in registration order.
    pub actions: Vec<ActionSpec>,
    /// Option strings in the parser's lookup order, each with its action index.
    pub strings: Vec<(String, usize)>,
    /// argparse's initial namespace (defaults), computed on first use.
    #[serde(skip)]
    pub defaults: OnceLock<crate::argparse::Namespace>,
}

/// One argparse action.
#[derive(Debug, Deserialize)]
pub struct ActionSpec {
    /// Option strings (empty for a positional).
    pub opts: Vec<String>,
    /// Attribute name the value is stored under.
    pub dest: String,
    /// `store`, `store_true`, `store_false`, `store_const`, `append`, `append_const`, `extend`.
    pub kind: String,
    /// argparse `nargs` (`null`, an integer, `"?"`, `"*"`, `"+"`).
    pub nargs: serde_json::Value,
    /// `const` for the const actions.
    #[serde(rename = "const")]
    pub konst: serde_json::Value,
    /// Name of the `type` callable (`int`, `commaSplit`, `ksboolean`, `mountpoint`, …).
    #[serde(rename = "type")]
    pub ty: Option<String>,
    /// Allowed values.
    pub choices: Option<Vec<serde_json::Value>>,
    /// Required option.
    pub required: bool,
    /// Default value (`"==SUPPRESS=="` for none at all).
    pub default: serde_json::Value,
    /// Deprecated option: warns when used.
    pub deprecated: bool,
    /// Display name of a positional.
    pub metavar: serde_json::Value,
    /// Accepted values of table-driven type callbacks.
    pub type_map: Option<BTreeMap<String, serde_json::Value>>,
}

/// One syntax version.
#[derive(Debug, Deserialize)]
pub struct VersionSpec {
    /// `F21`, …, `RHEL7`, … (every version of the generating pykickstart from F21 and RHEL7 on).
    pub name: String,
    /// pykickstart's integer constant.
    pub id: u32,
    /// Command name → command.
    pub commands: BTreeMap<String, CommandSpec>,
    /// Section tag → header parser index.
    pub sections: BTreeMap<String, usize>,
}

/// One command name of one version.
#[derive(Debug, Deserialize)]
pub struct CommandSpec {
    /// pykickstart class (e.g. `F41_Partition`).
    pub class: String,
    /// The class and its ancestors among pykickstart's command classes, nearest first (checks
    /// that pykickstart adds in one class's `parse()` apply to every class deriving from it).
    #[serde(default)]
    pub mro: Vec<String>,
    /// Names with the same `obj` share one command object (aliases).
    pub obj: usize,
    /// `ok`, `deprecated` or `removed`.
    pub status: String,
    /// Index into [`Tables::parsers`] (none for removed/deprecated commands).
    pub parser: Option<usize>,
    /// Commands that may not be used together with this one.
    pub conflicts: Vec<String>,
    /// Write priority (`None` for deprecated/removed).
    pub prio: Option<i64>,
    /// Command name of the "Unexpected arguments to X command" message when the parser keeps
    /// unknown arguments (`{cmd}` = the name as written).
    pub known_args: Option<String>,
    /// A list command (each use adds an item).
    pub list: bool,
    /// `parse()` ignores its argparse parser and keeps the raw rest of the line.
    pub raw: bool,
}

/// The tables, parsed once.
pub fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| serde_json::from_str(TABLES_JSON).expect("compiled-in tables.json is valid"))
}

impl Tables {
    /// The parser at `idx`.
    pub fn parser(&self, idx: usize) -> &ParserSpec {
        &self.parsers[idx]
    }
}
