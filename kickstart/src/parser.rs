//! The kickstart state machine (`KickstartParser._stateMachine`/`_readSection`), `%include` and
//! `%ksappend` handling, and command dispatch, reproducing pykickstart 3.78.

use std::collections::{BTreeSet, HashMap};

use crate::argparse::{self, Namespace, Value};
use crate::checks;
use crate::error::{Diagnostic, IncludeSite, Severity};
use crate::loader::{Loader, MAX_TOTAL_BYTES, human_size};
use crate::model::*;
use crate::shlex;
use crate::tables::{VersionSpec, tables};
use crate::text::{is_blank_or_comment, lstrip, split_ws, splitlines, strip, universal_newlines};
use crate::version::Version;

/// How to parse.
#[derive(Debug, Clone)]
pub struct Options {
    /// Syntax version.
    pub version: Version,
    /// Follow `%include` (ksvalidator `-i`, ksflatten, Anaconda). Default true.
    pub follow_includes: bool,
    /// Warnings abort the command they occur in, as under ksvalidator (they are errors there).
    pub warnings_as_errors: bool,
    /// Expand `%ksappend` before parsing (ksvalidator does, ksflatten does not).
    pub expand_ksappend: bool,
    /// Deepest `%include` nesting accepted.
    pub max_include_depth: usize,
    /// Most bytes of kickstart text one parse reads in total: the top-level text plus every
    /// `%include`d and `%ksappend`ed file (default [`MAX_TOTAL_BYTES`]).
    pub max_total_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: Version::devel(),
            follow_includes: true,
            warnings_as_errors: true,
            expand_ksappend: true,
            max_include_depth: 64,
            max_total_bytes: MAX_TOTAL_BYTES,
        }
    }
}

impl Options {
    /// Options for `version` with ksvalidator `-i` semantics.
    pub fn validate(version: Version) -> Options {
        Options {
            version,
            ..Options::default()
        }
    }

    /// Options for `version` with ksflatten semantics (warnings tolerated, `%ksappend` skipped).
    pub fn flatten(version: Version) -> Options {
        Options {
            version,
            warnings_as_errors: false,
            expand_ksappend: false,
            ..Options::default()
        }
    }
}

/// Everything a parse produced: the model (as far as it got) and every diagnostic in order.
#[derive(Debug, Clone)]
pub struct Report {
    /// The parsed kickstart.
    pub kickstart: Kickstart,
    /// Errors and warnings in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// Warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    /// ksvalidator verdict: no errors, and no warnings unless `allow_warnings`.
    pub fn is_valid(&self, allow_warnings: bool) -> bool {
        self.diagnostics
            .iter()
            .all(|d| allow_warnings && d.severity == Severity::Warning)
    }
}

/// Problem raised while handling one line.
struct Raise {
    message: String,
    severity: Severity,
    line: Option<usize>,
    no_py_line: bool,
}

impl Raise {
    fn err(msg: impl Into<String>, line: usize) -> Raise {
        Raise {
            message: msg.into(),
            severity: Severity::Error,
            line: Some(line),
            no_py_line: false,
        }
    }
    fn noline(msg: impl Into<String>, line: usize) -> Raise {
        Raise {
            message: msg.into(),
            severity: Severity::Error,
            line: Some(line),
            no_py_line: true,
        }
    }
}

type R<T> = Result<T, Raise>;

#[derive(Default)]
struct ScriptState {
    interp: String,
    log: Option<String>,
    error_on_fail: bool,
    chroot: bool,
    line: usize,
    file: String,
    body: String,
}

#[derive(Default)]
struct CertState {
    filename: Option<String>,
    dir: Option<String>,
    kind: Option<String>,
    cert: String,
}

struct Frame {
    file: String,
    dir: String,
    include_line: usize,
    key: String,
}

struct Parser<'a> {
    opts: &'a Options,
    ver: &'static VersionSpec,
    loader: &'a dyn Loader,
    ks: Kickstart,
    diags: Vec<Diagnostic>,
    state: Option<String>,
    scripts: HashMap<String, ScriptState>,
    cert: CertState,
    null: HashMap<String, (Vec<String>, Vec<String>)>,
    seen: BTreeSet<usize>,
    single: HashMap<usize, usize>,
    dup_keys: HashMap<usize, std::collections::HashSet<String>>,
    stack: Vec<Frame>,
    /// Line of the current file being read (for include sites).
    cur_file: String,
    /// Bytes of kickstart text read so far (top-level text, includes, `%ksappend`s).
    total_bytes: usize,
}

/// Parse kickstart text (the top-level file named `name`), resolving `%include`/`%ksappend`
/// through `loader`.
pub fn parse_with(text: &str, name: &str, opts: &Options, loader: &dyn Loader) -> Report {
    let ver = opts.version.spec();
    let mut p = Parser {
        opts,
        ver,
        loader,
        ks: Kickstart {
            version: ver.name.clone(),
            ..Kickstart::default()
        },
        diags: Vec::new(),
        state: None,
        scripts: HashMap::new(),
        cert: CertState::default(),
        null: HashMap::new(),
        seen: BTreeSet::new(),
        single: HashMap::new(),
        dup_keys: HashMap::new(),
        stack: Vec::new(),
        cur_file: name.to_string(),
        total_bytes: 0,
    };
    for tag in ["%pre", "%pre-install", "%post", "%onerror", "%traceback"] {
        p.scripts.insert(tag.to_string(), ScriptState::reset(tag));
    }
    let dir = loader.dir_of(name);
    p.stack.push(Frame {
        file: name.to_string(),
        dir,
        include_line: 0,
        key: loader.identity(name),
    });
    let res = (|| -> R<()> {
        p.count_bytes(text.len(), name, 1)?;
        let owned;
        let text = if opts.expand_ksappend {
            owned = p.preprocess(text)?;
            owned.as_str()
        } else {
            text
        };
        if opts.expand_ksappend
            && text
                .trim_matches(|c: char| " \t\n\r\x0b\x0c".contains(c))
                .is_empty()
        {
            return Err(Raise::noline("Empty file", 1));
        }
        p.state_machine(text)
    })();
    if let Err(r) = res {
        // an error already reported inside an included file arrives here without a line
        if r.line.is_some() {
            p.push(r, true);
        }
    }
    p.ks.commands.sort_by_key(|c| c.priority.clamp(0, i64::MAX));
    Report {
        kickstart: p.ks,
        diagnostics: p.diags,
    }
}

impl ScriptState {
    fn reset(tag: &str) -> ScriptState {
        ScriptState {
            interp: "/bin/sh".into(),
            chroot: tag == "%post",
            ..ScriptState::default()
        }
    }
}

impl Parser<'_> {
    fn push(&mut self, r: Raise, fatal: bool) {
        let chain = self.stack[1..]
            .iter()
            .enumerate()
            .map(|(i, f)| IncludeSite {
                file: self.stack[i].file.clone(),
                line: f.include_line,
            })
            .collect();
        self.diags.push(Diagnostic {
            severity: r.severity,
            message: r.message,
            file: self.cur_file.clone(),
            line: r.line.unwrap_or(0),
            include_chain: chain,
            fatal,
            pykickstart_has_no_line: r.no_py_line,
        });
    }

    /// A warning: aborts the current command under ksvalidator semantics, else is recorded.
    fn warn(&mut self, msg: String, line: usize) -> R<()> {
        let r = Raise {
            message: msg,
            severity: Severity::Warning,
            line: Some(line),
            no_py_line: false,
        };
        if self.opts.warnings_as_errors {
            return Err(r);
        }
        self.push(r, false);
        Ok(())
    }

    fn issues(&mut self, issues: Vec<checks::Issue>, lineno: usize) -> R<()> {
        for i in issues {
            match i {
                checks::Issue::Warn(m) => self.warn(m, lineno)?,
                checks::Issue::Err(m) => return Err(Raise::err(m, lineno)),
            }
        }
        Ok(())
    }

    /// Adds `n` bytes read from `what` (at `lineno`) to the parse's total; over
    /// [`Options::max_total_bytes`] is an error there.
    fn count_bytes(&mut self, n: usize, what: &str, lineno: usize) -> R<()> {
        self.total_bytes = self.total_bytes.saturating_add(n);
        if self.total_bytes > self.opts.max_total_bytes {
            return Err(Raise::err(
                format!(
                    "{what}: the kickstart and the files it includes exceed {} in total",
                    human_size(self.opts.max_total_bytes as u64)
                ),
                lineno,
            ));
        }
        Ok(())
    }

    /// `_tryFunc`: errors of one command or header are recorded and parsing goes on.
    fn try_func(&mut self, r: R<()>) {
        if let Err(e) = r {
            self.push(e, false);
        }
    }

    fn preprocess(&mut self, text: &str) -> R<String> {
        if !text.contains("%ksappend") {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        for (i, l) in splitlines(text).into_iter().enumerate() {
            let ll = strip(l);
            if !ll.starts_with("%ksappend") {
                out.push_str(l);
                continue;
            }
            let Some(target) = ll.split(' ').nth(1) else {
                return Err(Raise::err(
                    format!("Illegal url for %ksappend: {ll}"),
                    i + 1,
                ));
            };
            let bytes = self.loader.read(target).map_err(|e| {
                Raise::err(
                    format!("Unable to open %ksappend file: Error opening file: {e}"),
                    i + 1,
                )
            })?;
            self.count_bytes(bytes.len(), &format!("%ksappend {target}"), i + 1)?;
            match String::from_utf8(bytes) {
                Ok(s) => out.push_str(&s),
                Err(e) => return Err(Raise::noline(utf8_message(&e), i + 1)),
            }
        }
        Ok(out)
    }

    fn state_machine(&mut self, text: &str) -> R<()> {
        // `\r\n` and a lone `\r` end lines as in pykickstart (`str.splitlines`); they become `\n`
        // so that section bodies (scripts, certificates) hold no `\r`
        let text = universal_newlines(text);
        let lines = splitlines(&text);
        let mut it = LineIter {
            lines: &lines,
            pos: 0,
            put: None,
        };
        let mut lineno = 0usize;
        while let Some(line) = it.next() {
            if line.is_empty() {
                break;
            }
            lineno += 1;
            if is_blank_or_comment(line) {
                if self.state.is_none()
                    && let Some(rest) = line.strip_prefix("#platform=")
                {
                    self.ks.platform = Some(strip(rest).to_string());
                }
                continue;
            }
            let args =
                shlex::split(line, true).map_err(|e| Raise::noline(e.to_string(), lineno))?;
            let Some(first) = args.first() else {
                return Err(Raise::noline("list index out of range", lineno));
            };
            if first == "%include" {
                self.include(args.get(1).map(String::as_str), lineno)?;
                continue;
            }
            match self.state.clone() {
                None => {
                    if first == "%ksappend" {
                        continue;
                    }
                    if first.is_empty() {
                        return Err(Raise::noline("string index out of range", lineno));
                    }
                    if first.starts_with('%') {
                        let tag = first.clone();
                        if !self.is_section(&tag) {
                            return Err(Raise::err(
                                format!("Unknown kickstart section: {tag}"),
                                lineno,
                            ));
                        }
                        self.state = Some(tag.clone());
                        let r = self.header(&tag, &args, lineno);
                        self.try_func(r);
                        lineno = self.read_section(&tag, &mut it, lineno)?;
                    } else {
                        let r = self.dispatch(args, lineno, line);
                        self.try_func(r);
                    }
                }
                Some(tag) => {
                    if self.stack.len() > 1 {
                        it.put = Some(line);
                        lineno -= 1;
                        lineno = self.read_section(&tag, &mut it, lineno)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn is_section(&self, tag: &str) -> bool {
        matches!(
            tag,
            "%pre"
                | "%pre-install"
                | "%post"
                | "%onerror"
                | "%traceback"
                | "%packages"
                | "%certificate"
                | "%addon"
                | "%anaconda"
        )
    }

    fn keeps_all_lines(tag: &str) -> bool {
        tag != "%packages"
    }

    fn read_section(&mut self, tag: &str, it: &mut LineIter<'_>, mut lineno: usize) -> R<usize> {
        while let Some(line) = it.next() {
            if line.is_empty() && self.stack.len() == 1 {
                return Err(Raise::err(
                    format!("Section {tag} does not end with %end."),
                    lineno,
                ));
            }
            lineno += 1;
            if is_blank_or_comment(line) && !Self::keeps_all_lines(tag) {
                continue;
            }
            if lstrip(line).starts_with('%') {
                let first = split_ws(line).next().unwrap_or("");
                if !self.is_section(first) && first != "%end" && first != "%include" {
                    self.handle_line(tag, line)?;
                    continue;
                }
                let args =
                    shlex::split(line, false).map_err(|e| Raise::noline(e.to_string(), lineno))?;
                match args.first().map(String::as_str) {
                    Some("%end") => {
                        self.finalize(tag, lineno)?;
                        break;
                    }
                    Some("%include") => {
                        self.include(args.get(1).map(String::as_str), lineno)?;
                        continue;
                    }
                    Some("%ksappend") => continue,
                    Some(s) if self.is_section(s) => {
                        return Err(Raise::err(
                            format!("Section {tag} does not end with %end."),
                            lineno,
                        ));
                    }
                    _ => {}
                }
                // e.g. `%include` spelled with quotes that shlex joins differently: nothing happens
                continue;
            }
            self.handle_line(tag, line)?;
        }
        Ok(lineno)
    }

    fn include(&mut self, target: Option<&str>, lineno: usize) -> R<()> {
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            return Err(Raise::err(
                "There was a problem reading from line ".to_string()
                    + &lineno.to_string()
                    + " of the kickstart file",
                lineno,
            ));
        };
        if !self.opts.follow_includes {
            return Ok(());
        }
        if self.stack.len() > self.opts.max_include_depth {
            return Err(Raise::err(
                format!(
                    "%include nesting deeper than {} levels at {target}",
                    self.opts.max_include_depth
                ),
                lineno,
            ));
        }
        // pykickstart: relative to the working directory first, then to the including file's directory
        let mut path = target.to_string();
        if !self.loader.exists(&path) {
            let dir = &self.stack.last().expect("stack has the top-level file").dir;
            let joined = join(dir, target);
            if self.loader.exists(&joined) {
                path = joined;
            }
        }
        if target.contains("://") {
            return Err(Raise::err(
                format!(
                    "Unable to open input kickstart file: {target}: URLs are not fetched (this parser does no network access)"
                ),
                lineno,
            ));
        }
        let key = self.loader.identity(&path);
        if let Some(pos) = self.stack.iter().position(|f| f.key == key) {
            let mut cycle: Vec<String> = self.stack[pos..].iter().map(|f| f.file.clone()).collect();
            cycle.push(path.clone());
            return Err(Raise::err(
                format!("%include cycle: {}", cycle.join(" -> ")),
                lineno,
            ));
        }
        let bytes = match self.loader.read(&path) {
            Ok(b) => b,
            Err(e) => {
                // pykickstart reports this on line 0 of the included file; we name the %include line
                let parent = self.cur_file.clone();
                self.stack.push(Frame {
                    file: path.clone(),
                    dir: String::new(),
                    include_line: lineno,
                    key,
                });
                self.cur_file = path.clone();
                let r = Raise::err(
                    format!("Unable to open input kickstart file: Error opening file: {e}"),
                    0,
                );
                let r = Raise { line: Some(0), ..r };
                self.push(r, true);
                self.stack.pop();
                self.cur_file = parent;
                return Err(Raise {
                    message: String::new(),
                    severity: Severity::Error,
                    line: None,
                    no_py_line: false,
                });
            }
        };
        self.count_bytes(bytes.len(), &format!("%include {target}"), lineno)?;
        let parent = std::mem::replace(&mut self.cur_file, path.clone());
        let dir = self.loader.dir_of(&path);
        self.stack.push(Frame {
            file: path.clone(),
            dir,
            include_line: lineno,
            key,
        });
        let res = match String::from_utf8(bytes) {
            Ok(text) => self.state_machine(&text),
            Err(e) => Err(Raise::noline(utf8_message(&e), utf8_line(&e))),
        };
        if let Err(r) = res {
            if r.line.is_some() {
                self.push(r, true);
            }
            self.stack.pop();
            self.cur_file = parent;
            return Err(Raise {
                message: String::new(),
                severity: Severity::Error,
                line: None,
                no_py_line: false,
            });
        }
        self.stack.pop();
        self.cur_file = parent;
        Ok(())
    }

    fn header(&mut self, tag: &str, args: &[String], lineno: usize) -> R<()> {
        match tag {
            "%addon" | "%anaconda" => {
                self.null
                    .insert(tag.to_string(), (args.to_vec(), Vec::new()));
                Ok(())
            }
            _ => {
                let pidx = self.ver.sections[tag];
                let spec = tables().parser(pidx);
                let out = argparse::parse(spec, &args[1..], false);
                for opt in &out.deprecated {
                    self.warn(deprecated_option(lineno, opt), lineno)?;
                }
                if let Some(e) = out.error {
                    return Err(Raise::err(e, lineno));
                }
                let ns = out.ns.expect("namespace when no error");
                if let Some(kind) = ScriptKind::from_tag(tag) {
                    let st = self.scripts.get_mut(tag).expect("script state");
                    st.interp = ns
                        .get("interpreter")
                        .as_str()
                        .unwrap_or("/bin/sh")
                        .to_string();
                    st.line = lineno;
                    st.file = self.cur_file.clone();
                    st.log = ns.get("log").as_str().map(str::to_string);
                    st.error_on_fail = ns.get("errorOnFail").truthy();
                    if kind == ScriptKind::Post {
                        st.chroot = !ns.get("nochroot").truthy();
                    }
                    if kind == ScriptKind::Traceback && self.opts.version.id() >= 34000 {
                        self.warn(
                            "The %traceback section has been deprecated. It may be removed in the future, which will result in a fatal error from kickstart. Please modify your kickstart file to use the %onerror section instead.".into(),
                            lineno,
                        )?;
                    }
                    Ok(())
                } else if tag == "%packages" {
                    let issues = checks::packages_header(self.opts.version, args, &ns, lineno);
                    self.issues(issues, lineno)?;
                    let pk = self.ks.packages.get_or_insert_with(|| Packages {
                        location: Location {
                            file: String::new(),
                            line: lineno,
                        },
                        ..Packages::default()
                    });
                    if pk.location.file.is_empty() {
                        pk.location.file = self.cur_file.clone();
                    }
                    pk.options.merge_non_none(&ns);
                    pk.headers.push(ns);
                    Ok(())
                } else {
                    // %certificate
                    if !ns.get("dir").truthy() && !ns.get("type").truthy() {
                        return Err(Raise::err(
                            "One of --dir or --type must be specified for %certificate",
                            lineno,
                        ));
                    }
                    self.cert.filename = ns.get("filename").as_str().map(str::to_string);
                    if let Some(d) = ns.get("dir").as_str().filter(|s| !s.is_empty()) {
                        self.cert.dir = Some(d.to_string());
                    }
                    if let Some(t) = ns.get("type").as_str().filter(|s| !s.is_empty()) {
                        self.cert.kind = Some(t.to_string());
                    }
                    Ok(())
                }
            }
        }
    }

    fn handle_line(&mut self, tag: &str, line: &str) -> R<()> {
        match tag {
            "%packages" => {
                let l = line
                    .split('#')
                    .next()
                    .unwrap_or("")
                    .trim_end_matches(crate::text::py_space);
                let pk = self.ks.packages.get_or_insert_with(Packages::default);
                checks::packages_line(pk, l).map_err(|m| Raise::noline(m, 0))
            }
            "%certificate" => {
                self.cert.cert.push_str(line);
                Ok(())
            }
            "%addon" | "%anaconda" => {
                let e = self.null.entry(tag.to_string()).or_default();
                e.1.push(line.to_string());
                Ok(())
            }
            _ => {
                self.scripts
                    .get_mut(tag)
                    .expect("script state")
                    .body
                    .push_str(line);
                Ok(())
            }
        }
    }

    fn finalize(&mut self, tag: &str, lineno: usize) -> R<()> {
        self.state = None;
        match tag {
            "%packages" => {
                self.ks.packages.get_or_insert_with(Packages::default);
            }
            "%certificate" => {
                let c = std::mem::take(&mut self.cert);
                let mut cert = c.cert;
                if cert.ends_with('\n') {
                    cert.pop();
                }
                if crate::text::strip(&cert).is_empty() {
                    return Err(Raise::noline("The %certificate section is empty", lineno));
                }
                self.ks.certificates.push(Certificate {
                    filename: c.filename.unwrap_or_default(),
                    dir: c.dir,
                    kind: c.kind,
                    cert,
                });
            }
            "%addon" | "%anaconda" => {
                let (header, body) = self.null.remove(tag).unwrap_or_default();
                self.ks.null_sections.push(NullSection { header, body });
            }
            _ => {
                let st = std::mem::replace(
                    self.scripts.get_mut(tag).expect("script"),
                    ScriptState::reset(tag),
                );
                if crate::text::strip(&st.body).is_empty() {
                    // pykickstart keeps the header options for the next script when the body is empty
                    *self.scripts.get_mut(tag).expect("script") = st;
                    return Ok(());
                }
                self.ks.scripts.push(Script {
                    kind: ScriptKind::from_tag(tag).expect("script tag"),
                    interpreter: st.interp,
                    log: st.log,
                    error_on_fail: st.error_on_fail,
                    chroot: st.chroot,
                    body: st.body,
                    location: Location {
                        file: st.file,
                        line: st.line,
                    },
                });
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, args: Vec<String>, lineno: usize, line: &str) -> R<()> {
        let name = args[0].clone();
        let Some(spec) = self.ver.commands.get(&name) else {
            return Err(Raise::err(format!("Unknown command: {name}"), lineno));
        };
        self.seen.insert(spec.obj);
        for c in &spec.conflicts {
            if let Some(other) = self.ver.commands.get(c)
                && other.obj != spec.obj
                && self.seen.contains(&other.obj)
            {
                return Err(Raise::err(
                    format!("The {name} and {c} commands can't be used at the same time."),
                    lineno,
                ));
            }
        }
        match spec.status.as_str() {
            "removed" => return Err(Raise::err(format!("{name} has been removed."), lineno)),
            "deprecated" => {
                return self.warn(
                    format!(
                        "Ignoring deprecated command on line {lineno}:  The {name} command has been deprecated and no longer has any effect.  It may be removed from future releases, which will result in a fatal error from kickstart.  Please modify your kickstart file to remove this command."
                    ),
                    lineno,
                );
            }
            _ => {}
        }
        let Some(pidx) = spec.parser else {
            return Ok(());
        };
        if spec.class.ends_with("_Method") {
            // pykickstart's method command has no parse(): every use is a TypeError
            return Err(Raise::err(
                "parse() not implemented for KickstartCommand",
                lineno,
            ));
        }
        let out = if spec.raw {
            if matches!(spec.class.as_str(), "FC3_Cdrom" | "F28_Hmc" | "RHEL7_Hmc")
                && args.len() > 1
            {
                return Err(Raise::err(
                    format!("Kickstart command {name} does not take any arguments"),
                    lineno,
                ));
            }
            // pykickstart keeps `currentLine[len(currentCmd):].strip()` (byte-for-byte quirks included)
            let mut ns = Namespace::default();
            if spec.class.ends_with("_DeviceProbe") {
                ns.set("raw", Value::Str(args[1..].join(" ")));
            } else if !matches!(spec.class.as_str(), "FC3_Cdrom" | "F28_Hmc" | "RHEL7_Hmc") {
                let rest: String = line.chars().skip(name.chars().count()).collect();
                ns.set("raw", Value::Str(strip(&rest).to_string()));
            }
            argparse::Outcome {
                ns: Some(ns),
                ..Default::default()
            }
        } else {
            argparse::parse(tables().parser(pidx), &args[1..], spec.known_args.is_some())
        };
        let prev_single = if spec.list {
            None
        } else {
            self.single
                .get(&spec.obj)
                .map(|&i| self.ks.commands[i].args.clone())
        };
        let ctx = |commands| checks::Ctx {
            version: self.opts.version,
            name: &name,
            class: &spec.class,
            mro: &spec.mro,
            line: lineno,
            prev: prev_single.as_ref(),
            extras: &out.extras,
            known_args: spec.known_args.as_deref(),
            args: &args[1..],
            earlier: commands,
            obj: spec.obj,
        };
        let pre = checks::pre_parse(&ctx(&[]));
        self.issues(pre, lineno)?;
        for opt in &out.deprecated {
            self.warn(deprecated_option(lineno, opt), lineno)?;
        }
        if let Some(e) = out.error.clone() {
            return Err(Raise::err(e, lineno));
        }
        let mut ns = out.ns.clone().expect("namespace when no error");
        let issues = checks::check(&ctx(&self.ks.commands), &mut ns);
        self.issues(issues, lineno)?;
        if spec.list {
            let dup = checks::duplicate_key(&spec.class, &ns);
            if let Some((key, msg)) = &dup
                && self
                    .dup_keys
                    .get(&spec.obj)
                    .is_some_and(|set| set.contains(key))
            {
                self.warn(msg.clone(), lineno)?;
            }
            if let Some((key, _)) = dup {
                self.dup_keys.entry(spec.obj).or_default().insert(key);
            }
            self.ks.commands.push(Command {
                name: name.clone(),
                class: spec.class.clone(),
                obj: spec.obj,
                location: Location {
                    file: self.cur_file.clone(),
                    line: lineno,
                },
                args: ns,
                list: true,
                uses: Vec::new(),
                priority: spec.prio.unwrap_or(0),
            });
        } else if let Some(&i) = self.single.get(&spec.obj) {
            let c = &mut self.ks.commands[i];
            c.args.merge_non_none(&ns);
            c.uses.push((name.clone(), ns));
            c.name = name;
            c.location = Location {
                file: self.cur_file.clone(),
                line: lineno,
            };
        } else {
            self.single.insert(spec.obj, self.ks.commands.len());
            let mut merged = Namespace::default();
            merged.merge_non_none(&ns);
            // keep None-valued dests too, so every option is present in the model
            for (k, v) in &ns.0 {
                if v.is_none() {
                    merged.set(k, Value::None);
                }
            }
            self.ks.commands.push(Command {
                uses: vec![(name.clone(), ns)],
                name,
                class: spec.class.clone(),
                obj: spec.obj,
                location: Location {
                    file: self.cur_file.clone(),
                    line: lineno,
                },
                args: merged,
                list: false,
                priority: spec.prio.unwrap_or(0),
            });
        }
        Ok(())
    }
}

fn deprecated_option(lineno: usize, opt: &str) -> String {
    format!(
        "Ignoring deprecated option on line {lineno}: The {opt} option has been deprecated and no longer has any effect. It may be removed from future releases, which will result in a fatal error from kickstart. Please modify your kickstart file to remove this option."
    )
}

fn utf8_message(e: &std::string::FromUtf8Error) -> String {
    let u = e.utf8_error();
    let pos = u.valid_up_to();
    let bytes = e.as_bytes();
    let byte = bytes.get(pos).copied().unwrap_or(0);
    match u.error_len() {
        None if bytes.len() - pos > 1 => {
            format!(
                "'utf-8' codec can't decode bytes in position {}-{}: unexpected end of data",
                pos,
                bytes.len() - 1
            )
        }
        None => format!(
            "'utf-8' codec can't decode byte 0x{byte:02x} in position {pos}: unexpected end of data"
        ),
        Some(_) => {
            let reason = if (0x80..=0xc1).contains(&byte) || byte >= 0xf5 {
                "invalid start byte"
            } else {
                "invalid continuation byte"
            };
            format!("'utf-8' codec can't decode byte 0x{byte:02x} in position {pos}: {reason}")
        }
    }
}

fn utf8_line(e: &std::string::FromUtf8Error) -> usize {
    let pos = e.utf8_error().valid_up_to();
    let valid = std::str::from_utf8(&e.as_bytes()[..pos]).unwrap_or("");
    splitlines(valid).len().max(1) + usize::from(valid.ends_with(['\n', '\r']))
}

/// Join like `os.path.join(dir, p)`.
pub(crate) fn join(dir: &str, p: &str) -> String {
    if p.starts_with('/') || dir.is_empty() {
        p.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{p}")
    } else {
        format!("{dir}/{p}")
    }
}

struct LineIter<'a> {
    lines: &'a [&'a str],
    pos: usize,
    put: Option<&'a str>,
}

impl<'a> LineIter<'a> {
    /// Next line; `""` once after the last line (pykickstart's end sentinel), then `None`.
    fn next(&mut self) -> Option<&'a str> {
        if let Some(l) = self.put.take() {
            return Some(l);
        }
        let p = self.pos;
        self.pos += 1;
        match p.cmp(&self.lines.len()) {
            std::cmp::Ordering::Less => Some(self.lines[p]),
            std::cmp::Ordering::Equal => Some(""),
            std::cmp::Ordering::Greater => None,
        }
    }
}

/// Parse the file at `path` (read through `loader`).
pub fn parse_path(path: &str, opts: &Options, loader: &dyn Loader) -> Report {
    match loader.read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => parse_with(&text, path, opts, loader),
            Err(e) => Report {
                kickstart: Kickstart {
                    version: opts.version.name().to_string(),
                    ..Kickstart::default()
                },
                diagnostics: vec![Diagnostic {
                    severity: Severity::Error,
                    message: utf8_message(&e),
                    file: path.to_string(),
                    line: utf8_line(&e),
                    include_chain: vec![],
                    fatal: true,
                    pykickstart_has_no_line: true,
                }],
            },
        },
        Err(e) => Report {
            kickstart: Kickstart {
                version: opts.version.name().to_string(),
                ..Kickstart::default()
            },
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                message: format!("Unable to open input kickstart file: Error opening file: {e}"),
                file: path.to_string(),
                line: 0,
                include_chain: vec![],
                fatal: true,
                pykickstart_has_no_line: false,
            }],
        },
    }
}
