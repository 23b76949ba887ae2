//! The parsed kickstart: commands (with their options as typed values), scripts, `%packages`,
//! null sections and certificates. Typed views of the commands image builders consume are in
//! [`crate::typed`].

use serde::Serialize;

use crate::argparse::Namespace;

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Location {
    /// File (as named on the command line or in the `%include`).
    pub file: String,
    /// 1-based line, local to `file`.
    pub line: usize,
}

/// One command. Single-instance commands (e.g. `bootloader`) appear once, with the options of
/// every use merged as pykickstart does; list commands (e.g. `part`) appear once per use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The name as written last (`part` or `partition`, `reboot` or `poweroff`, …).
    pub name: String,
    /// pykickstart's class for this version (e.g. `F41_Partition`).
    pub class: String,
    /// Names sharing one command object share this id (aliases).
    pub obj: usize,
    /// Where it was (last) given.
    pub location: Location,
    /// Option values by argparse `dest` (defaults included).
    pub args: Namespace,
    /// A list command (each use adds an item).
    pub list: bool,
    /// Single-instance commands: every use (name as written, its own options) in order; `args`
    /// is their merge. The writer replays them so that per-line checks hold again.
    pub uses: Vec<(String, Namespace)>,
    /// Write priority (pykickstart's ordering of commands on output).
    pub priority: i64,
}

impl Command {
    /// Class name without the version prefix (`Partition` for `F41_Partition`).
    pub fn kind(&self) -> &str {
        self.class
            .split_once('_')
            .map(|x| x.1)
            .unwrap_or(&self.class)
    }
}

/// Script section type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScriptKind {
    /// `%pre`
    Pre,
    /// `%pre-install`
    PreInstall,
    /// `%post`
    Post,
    /// `%onerror`
    OnError,
    /// `%traceback`
    Traceback,
}

impl ScriptKind {
    /// The section tag.
    pub fn tag(self) -> &'static str {
        match self {
            ScriptKind::Pre => "%pre",
            ScriptKind::PreInstall => "%pre-install",
            ScriptKind::Post => "%post",
            ScriptKind::OnError => "%onerror",
            ScriptKind::Traceback => "%traceback",
        }
    }

    /// From a section tag.
    pub fn from_tag(tag: &str) -> Option<ScriptKind> {
        Some(match tag {
            "%pre" => ScriptKind::Pre,
            "%pre-install" => ScriptKind::PreInstall,
            "%post" => ScriptKind::Post,
            "%onerror" => ScriptKind::OnError,
            "%traceback" => ScriptKind::Traceback,
            _ => return None,
        })
    }
}

/// A `%pre`/`%post`/… script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Script {
    /// Section type.
    pub kind: ScriptKind,
    /// `--interpreter` (default `/bin/sh`).
    pub interpreter: String,
    /// `--log`/`--logfile`.
    pub log: Option<String>,
    /// `--erroronfail`.
    pub error_on_fail: bool,
    /// Runs inside the target (`%post` without `--nochroot`).
    pub chroot: bool,
    /// The body: every line between the header and `%end`, with line ends.
    pub body: String,
    /// The header line.
    pub location: Location,
}

/// How much of a group `%packages` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GroupInclude {
    /// `@group --nodefaults`: mandatory packages only.
    Required,
    /// `@group`: mandatory and default packages.
    Default,
    /// `@group --optional`: everything.
    All,
}

/// A group in `%packages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Group id.
    pub name: String,
    /// Selection depth.
    pub include: GroupInclude,
}

/// The `%packages` section (all `%packages` sections merged, as pykickstart does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Packages {
    /// Header options by `dest` (`excludedocs`, `ignoremissing`, `nocore`, `instLangs`, …),
    /// merged over every `%packages` header.
    pub options: Namespace,
    /// The options of each `%packages` header, in order.
    pub headers: Vec<Namespace>,
    /// `@^environment` (last wins).
    pub environment: Option<String>,
    /// Groups in order.
    pub groups: Vec<Group>,
    /// Excluded groups (`-@group`).
    pub excluded_groups: Vec<String>,
    /// Packages (sorted, unique).
    pub packages: Vec<String>,
    /// Excluded packages (sorted, unique).
    pub excluded: Vec<String>,
    /// Header location of the first `%packages`.
    pub location: Location,
}

/// `%addon`/`%anaconda`: kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NullSection {
    /// Header words (`%addon`, `com_redhat_kdump`, `--enable`).
    pub header: Vec<String>,
    /// Body lines, each with its line end.
    pub body: Vec<String>,
}

/// `%certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Certificate {
    /// `--filename`.
    pub filename: String,
    /// `--dir`.
    pub dir: Option<String>,
    /// `--type`.
    pub kind: Option<String>,
    /// The certificate text.
    pub cert: String,
}

/// A parsed kickstart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Kickstart {
    /// Syntax version it was parsed with.
    pub version: String,
    /// `#platform=` comment.
    pub platform: Option<String>,
    /// Commands in the order first seen.
    pub commands: Vec<Command>,
    /// Scripts in file order.
    pub scripts: Vec<Script>,
    /// `%packages` if present.
    pub packages: Option<Packages>,
    /// `%addon`/`%anaconda` sections.
    pub null_sections: Vec<NullSection>,
    /// `%certificate` sections.
    pub certificates: Vec<Certificate>,
}

impl Kickstart {
    /// All uses of command `name` (aliases included: `part` finds `partition` too).
    pub fn commands_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Command> + 'a {
        let obj = crate::tables::tables()
            .versions
            .iter()
            .find(|v| v.name == self.version)
            .and_then(|v| v.commands.get(name))
            .map(|c| c.obj);
        self.commands
            .iter()
            .filter(move |c| Some(c.obj) == obj || c.name == name)
    }

    /// The (single-instance) command `name`, if given.
    pub fn command<'a>(&'a self, name: &'a str) -> Option<&'a Command> {
        self.commands_named(name).next()
    }

    /// The same kickstart with every location blanked (to compare content).
    pub fn without_locations(&self) -> Kickstart {
        let mut k = self.clone();
        for c in &mut k.commands {
            c.location = Location::default();
        }
        for s in &mut k.scripts {
            s.location = Location::default();
        }
        if let Some(p) = &mut k.packages {
            p.location = Location::default();
        }
        k
    }
}
