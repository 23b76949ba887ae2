//! A faithful re-implementation of the parts of Python 3.11 `argparse` that pykickstart's
//! `KSOptionParser` relies on: `--opt=value` and `--opt value`, unambiguous prefixes, interleaved
//! positionals (with argparse's greedy positional matching), last-wins stores, append/extend,
//! required options, choices, type callbacks, and Python's exact error texts.

use serde::Serialize;

use crate::tables::{ActionSpec, ParserSpec};
use crate::text::{normpath, py_int, py_list_repr, py_repr};

/// A parsed option value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// Python `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Value>),
}

impl Value {
    /// From a JSON table value.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::None,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Int(n.as_i64().unwrap_or(0)),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(_) => Value::None,
        }
    }

    /// Python `repr()` of the value.
    pub fn repr(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => py_repr(s),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::repr).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Is this Python `None`?
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parsed options: `dest` → value, in action order (compared as a map).
#[derive(Debug, Clone, Default, Eq, Serialize)]
pub struct Namespace(pub Vec<(&'static str, Value)>);

impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(k, v)| other.0.iter().any(|(k2, v2)| k == k2 && v == v2))
    }
}

impl Namespace {
    /// The value stored under `dest` (Python `None` when absent).
    pub fn get(&self, dest: &str) -> &Value {
        self.0
            .iter()
            .find(|(k, _)| *k == dest)
            .map(|(_, v)| v)
            .unwrap_or(&Value::None)
    }

    /// Set `dest` (replacing an earlier value).
    pub fn set(&mut self, dest: &'static str, v: Value) {
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == dest) {
            slot.1 = v;
        } else {
            self.0.push((dest, v));
        }
    }

    fn has(&self, dest: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == dest)
    }

    /// `set_to_obj`: copy every non-None value of `other` over this namespace.
    pub fn merge_non_none(&mut self, other: &Namespace) {
        for (k, v) in &other.0 {
            if !v.is_none() {
                self.set(k, v.clone());
            }
        }
    }
}

/// Result of parsing one argument vector.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The values (present when parsing succeeded).
    pub ns: Option<Namespace>,
    /// Unrecognised arguments (parse_known_args mode).
    pub extras: Vec<String>,
    /// Deprecated options used, as their first option string, in the order seen (these warnings
    /// happen before any error in `error`).
    pub deprecated: Vec<String>,
    /// The error message (argparse's text, or a type callback's own text).
    pub error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Nargs {
    One,
    Opt,
    Star,
    Plus,
    N(usize),
    Zero,
}

fn nargs(a: &ActionSpec) -> Nargs {
    match &a.nargs {
        serde_json::Value::Null => match a.kind.as_str() {
            "store_true" | "store_false" | "store_const" | "append_const" | "count" => Nargs::Zero,
            _ => Nargs::One,
        },
        serde_json::Value::Number(n) => match n.as_u64().unwrap_or(1) {
            0 => Nargs::Zero,
            n => Nargs::N(n as usize),
        },
        serde_json::Value::String(s) => match s.as_str() {
            "?" => Nargs::Opt,
            "*" => Nargs::Star,
            "+" => Nargs::Plus,
            _ => Nargs::One,
        },
        _ => Nargs::One,
    }
}

fn action_name(a: &ActionSpec) -> String {
    if !a.opts.is_empty() {
        a.opts.join("/")
    } else if let serde_json::Value::String(m) = &a.metavar {
        m.clone()
    } else {
        a.dest.clone()
    }
}

fn arg_error(a: &ActionSpec, msg: &str) -> String {
    format!("argument {}: {}", action_name(a), msg)
}

/// Classified argument: `O` option (action index or unknown), `A` argument, `-` for `--`.
#[derive(Clone)]
enum Class {
    Opt {
        action: Option<usize>,
        explicit: Option<String>,
    },
    Arg,
    DashDash,
}

fn is_negative_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'-') || b.len() < 2 {
        return false;
    }
    let rest = &s[1..];
    if rest.bytes().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // ^-\d*\.\d+$
    if let Some((a, c)) = rest.split_once('.') {
        return a.bytes().all(|x| x.is_ascii_digit())
            && !c.is_empty()
            && c.bytes().all(|x| x.is_ascii_digit());
    }
    false
}

fn parse_optional(p: &ParserSpec, arg: &str) -> Result<Option<Class>, String> {
    if arg.is_empty() || !arg.starts_with('-') {
        return Ok(None);
    }
    if let Some((_, a)) = p.strings.iter().find(|(s, _)| s == arg) {
        return Ok(Some(Class::Opt {
            action: Some(*a),
            explicit: None,
        }));
    }
    if arg.len() == 1 {
        return Ok(None);
    }
    if let Some((os, ex)) = arg.split_once('=')
        && let Some((_, a)) = p.strings.iter().find(|(s, _)| s == os)
    {
        return Ok(Some(Class::Opt {
            action: Some(*a),
            explicit: Some(ex.to_string()),
        }));
    }
    // prefix matching
    let mut matches: Vec<(usize, &str, Option<String>)> = Vec::new();
    let bytes = arg.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b'-' {
        let (prefix, explicit) = match arg.split_once('=') {
            Some((a, b)) => (a, Some(b.to_string())),
            None => (arg, None),
        };
        for (s, a) in &p.strings {
            if s.starts_with(prefix) {
                matches.push((*a, s, explicit.clone()));
            }
        }
    } else {
        let short = arg.get(..2).unwrap_or(arg);
        let short_explicit = arg.get(2..).unwrap_or("").to_string();
        for (s, a) in &p.strings {
            if s == short {
                matches.push((*a, s, Some(short_explicit.clone())));
            } else if s.starts_with(arg) {
                matches.push((*a, s, None));
            }
        }
    }
    if matches.len() > 1 {
        let names: Vec<&str> = matches.iter().map(|m| m.1).collect();
        return Err(format!(
            "ambiguous option: {} could match {}",
            arg,
            names.join(", ")
        ));
    }
    if let Some((a, _, ex)) = matches.pop() {
        return Ok(Some(Class::Opt {
            action: Some(a),
            explicit: ex,
        }));
    }
    if is_negative_number(arg) {
        return Ok(None);
    }
    if arg.contains(' ') {
        return Ok(None);
    }
    Ok(Some(Class::Opt {
        action: None,
        explicit: None,
    }))
}

/// Elements of argparse's positional nargs regexes.
#[derive(Clone, Copy)]
enum El {
    DashStar,
    A,
    AOpt,
    AnyStar,
}

fn positional_pattern(n: Nargs) -> Vec<El> {
    match n {
        Nargs::One => vec![El::DashStar, El::A, El::DashStar],
        Nargs::Opt => vec![El::DashStar, El::AOpt, El::DashStar],
        Nargs::Star => vec![El::DashStar, El::AnyStar],
        Nargs::Plus => vec![El::DashStar, El::A, El::AnyStar],
        Nargs::N(k) => {
            let mut v = vec![El::DashStar];
            for _ in 0..k {
                v.push(El::A);
                v.push(El::DashStar);
            }
            v
        }
        Nargs::Zero => vec![],
    }
}

/// Backtracking match of groups of elements at the start of `pat` (regex `re.match` semantics,
/// greedy). Returns the length consumed by each group.
fn match_groups(groups: &[Vec<El>], pat: &[u8]) -> Option<Vec<usize>> {
    fn rec(
        groups: &[Vec<El>],
        gi: usize,
        ei: usize,
        pos: usize,
        pat: &[u8],
        lens: &mut Vec<usize>,
        gstart: usize,
    ) -> bool {
        if gi == groups.len() {
            return true;
        }
        if ei == groups[gi].len() {
            lens.push(pos - gstart);
            if rec(groups, gi + 1, 0, pos, pat, lens, pos) {
                return true;
            }
            lens.pop();
            return false;
        }
        let at = |i: usize| pat.get(i).copied();
        match groups[gi][ei] {
            El::DashStar => {
                let mut n = 0;
                while at(pos + n) == Some(b'-') {
                    n += 1;
                }
                (0..=n)
                    .rev()
                    .any(|k| rec(groups, gi, ei + 1, pos + k, pat, lens, gstart))
            }
            El::A => at(pos) == Some(b'A') && rec(groups, gi, ei + 1, pos + 1, pat, lens, gstart),
            El::AOpt => {
                (at(pos) == Some(b'A') && rec(groups, gi, ei + 1, pos + 1, pat, lens, gstart))
                    || rec(groups, gi, ei + 1, pos, pat, lens, gstart)
            }
            El::AnyStar => {
                let mut n = 0;
                while matches!(at(pos + n), Some(b'A') | Some(b'-')) {
                    n += 1;
                }
                (0..=n)
                    .rev()
                    .any(|k| rec(groups, gi, ei + 1, pos + k, pat, lens, gstart))
            }
        }
    }
    let mut lens = Vec::new();
    if rec(groups, 0, 0, 0, pat, &mut lens, 0) {
        Some(lens)
    } else {
        None
    }
}

struct State<'a> {
    p: &'static ParserSpec,
    args: &'a [String],
    pattern: Vec<u8>,
    ns: Namespace,
    seen: Vec<bool>,
    extras: Vec<String>,
}

/// Convert one string with the action's type (`_get_value`).
fn convert(a: &ActionSpec, s: &str) -> Result<Value, String> {
    match a.ty.as_deref() {
        None => Ok(Value::Str(s.to_string())),
        Some("int") => match py_int(s) {
            Ok(i) => Ok(Value::Int(i)),
            Err(true) => Ok(Value::Str(s.trim().to_string())),
            Err(false) => Err(arg_error(a, &format!("invalid int value: {}", py_repr(s)))),
        },
        Some("commaSplit") => Ok(Value::List(
            s.split(',')
                .map(crate::text::strip)
                .filter(|v| !v.is_empty())
                .map(|v| Value::Str(v.into()))
                .collect(),
        )),
        Some("ksboolean") => match s.to_lowercase().as_str() {
            "on" | "yes" | "true" | "1" => Ok(Value::Bool(true)),
            "off" | "no" | "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(arg_error(
                a,
                &format!("invalid boolean value: {}", py_repr(s)),
            )),
        },
        Some("mountpoint") => Ok(Value::Str(if s.starts_with('/') {
            normpath(s)
        } else {
            s.to_string()
        })),
        Some("part_cb") => Ok(Value::Str(s.strip_prefix("/dev/").unwrap_or(s).to_string())),
        Some("_device_cb") => Ok(Value::Str(s.to_string())),
        Some("firewall_port_cb") => Ok(Value::List(
            s.split(',')
                .map(|p| {
                    let p = crate::text::strip(p);
                    Value::Str(if p.contains(':') {
                        p.to_string()
                    } else {
                        format!("{p}:tcp")
                    })
                })
                .collect(),
        )),
        Some(t @ ("_type_cb" | "level_cb" | "_level_cb" | "_when_cb")) => {
            let key = if t == "_level_cb" {
                s.to_uppercase()
            } else {
                s.to_lowercase()
            };
            if let Some(v) = a.type_map.as_ref().and_then(|m| m.get(&key)) {
                return Ok(Value::from_json(v));
            }
            Err(match t {
                "_type_cb" => format!("Invalid autopart type: {s}"),
                "level_cb" => format!("Invalid btrfs level: {s}"),
                "_level_cb" => format!("Invalid raid level: {s}"),
                _ => format!("Invalid parameter to --when= argument: {s}"),
            })
        }
        Some(_) => Ok(Value::Str(s.to_string())),
    }
}

fn check_choice(a: &ActionSpec, v: &Value) -> Result<(), String> {
    if let Some(choices) = &a.choices {
        let hit = choices.iter().any(|c| match (c, v) {
            (serde_json::Value::String(x), Value::Str(y)) => x == y,
            (c, v) => Value::from_json(c) == *v,
        });
        if !hit {
            let vals: Vec<Value> = choices.iter().map(Value::from_json).collect();
            let list: Vec<String> = vals.iter().map(Value::repr).collect();
            return Err(arg_error(
                a,
                &format!(
                    "invalid choice: {} (choose from {})",
                    v.repr(),
                    list.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

impl State<'_> {
    fn take_action(&mut self, ai: usize, strings: &[String]) -> Result<(), String> {
        let p: &'static ParserSpec = self.p;
        let a = &p.actions[ai];
        self.seen[ai] = true;
        let mut strings: Vec<&str> = strings.iter().map(String::as_str).collect();
        if let Some(i) = strings.iter().position(|s| *s == "--") {
            strings.remove(i);
        }
        let n = nargs(a);
        let value = match n {
            Nargs::Zero => Value::None,
            Nargs::Opt if strings.is_empty() => {
                let v = if !a.opts.is_empty() {
                    Value::from_json(&a.konst)
                } else {
                    Value::from_json(&a.default)
                };
                if let Value::Str(s) = &v {
                    let v = convert(a, s)?;
                    check_choice(a, &v)?;
                    v
                } else {
                    v
                }
            }
            Nargs::Star if strings.is_empty() && a.opts.is_empty() => {
                let d = Value::from_json(&a.default);
                if d.is_none() { Value::List(vec![]) } else { d }
            }
            // `--opt=--`: argparse drops the "--" and stores an empty list
            Nargs::One if strings.is_empty() => Value::List(vec![]),
            Nargs::One | Nargs::Opt => {
                let v = convert(a, strings[0])?;
                check_choice(a, &v)?;
                v
            }
            _ => {
                let mut out = Vec::new();
                for s in &strings {
                    out.push(convert(a, s)?);
                }
                for v in &out {
                    check_choice(a, v)?;
                }
                Value::List(out)
            }
        };
        let dest: &'static str = a.dest.as_str();
        match a.kind.as_str() {
            "store_true" => self.ns.set(dest, Value::Bool(true)),
            "store_false" => self.ns.set(dest, Value::Bool(false)),
            "store_const" | "extend_const" => self.ns.set(dest, Value::from_json(&a.konst)),
            "append" | "append_const" => {
                let item = if a.kind == "append" {
                    value
                } else {
                    Value::from_json(&a.konst)
                };
                let mut l = match self.ns.get(dest) {
                    Value::List(l) => l.clone(),
                    _ => vec![],
                };
                l.push(item);
                self.ns.set(dest, Value::List(l));
            }
            "extend" => {
                let new = match (self.ns.get(dest), value) {
                    (Value::List(old), Value::List(v)) => {
                        let mut l = old.clone();
                        l.extend(v);
                        Value::List(l)
                    }
                    (_, v) => v,
                };
                self.ns.set(dest, new);
            }
            "count" => {
                let c = match self.ns.get(dest) {
                    Value::Int(i) => *i + 1,
                    _ => 1,
                };
                self.ns.set(dest, Value::Int(c));
            }
            _ => self.ns.set(dest, value),
        }
        Ok(())
    }

    fn consume_optional(&mut self, idx: usize, cls: &Class) -> Result<usize, String> {
        let Class::Opt { action, explicit } = cls else {
            return Ok(idx + 1);
        };
        let Some(ai) = *action else {
            self.extras.push(self.args[idx].clone());
            return Ok(idx + 1);
        };
        let a = &self.p.actions[ai];
        let n = nargs(a);
        if let Some(ex) = explicit {
            let count = match n {
                Nargs::Zero => 0,
                Nargs::N(k) if k > 1 => {
                    return Err(arg_error(a, &format!("expected {k} arguments")));
                }
                _ => 1,
            };
            if count == 1 {
                self.take_action(ai, std::slice::from_ref(ex))?;
                return Ok(idx + 1);
            }
            return Err(arg_error(
                a,
                &format!("ignored explicit argument {}", py_repr(ex)),
            ));
        }
        let start = idx + 1;
        let run = self.pattern[start..]
            .iter()
            .take_while(|c| **c == b'A')
            .count();
        let count = match n {
            Nargs::Zero => 0,
            Nargs::One if run >= 1 => 1,
            Nargs::One => return Err(arg_error(a, "expected one argument")),
            Nargs::Opt => run.min(1),
            Nargs::Star => run,
            Nargs::Plus if run >= 1 => run,
            Nargs::Plus => return Err(arg_error(a, "expected at least one argument")),
            Nargs::N(k) if run >= k => k,
            Nargs::N(k) => {
                return Err(arg_error(
                    a,
                    &format!("expected {k} argument{}", if k == 1 { "" } else { "s" }),
                ));
            }
        };
        let strings: Vec<String> = self.args[start..start + count].to_vec();
        self.take_action(ai, &strings)?;
        Ok(start + count)
    }

    fn consume_positionals(
        &mut self,
        positionals: &mut Vec<usize>,
        start: usize,
    ) -> Result<usize, String> {
        let pat = &self.pattern[start..];
        let mut counts = None;
        for i in (1..=positionals.len()).rev() {
            let groups: Vec<Vec<El>> = positionals[..i]
                .iter()
                .map(|&ai| positional_pattern(nargs(&self.p.actions[ai])))
                .collect();
            if let Some(c) = match_groups(&groups, pat) {
                counts = Some(c);
                break;
            }
        }
        let counts = counts.unwrap_or_default();
        let mut at = start;
        for (k, &c) in counts.iter().enumerate() {
            let ai = positionals[k];
            let strings: Vec<String> = self.args[at..at + c].to_vec();
            at += c;
            self.take_action(ai, &strings)?;
        }
        positionals.drain(..counts.len());
        Ok(at)
    }
}

/// Parse `args` with parser `p` (`parse_args` when `known` is false, else `parse_known_args`).
pub fn parse(p: &'static ParserSpec, args: &[String], known: bool) -> Outcome {
    let mut out = Outcome::default();
    // classify (this is where argparse reports ambiguity and pykickstart warns on deprecated options)
    let mut classes = Vec::with_capacity(args.len());
    let mut dashdash = false;
    for a in args {
        let c = if dashdash {
            Class::Arg
        } else if a == "--" {
            dashdash = true;
            Class::DashDash
        } else {
            match parse_optional(p, a) {
                Ok(Some(c)) => c,
                Ok(None) => Class::Arg,
                Err(e) => {
                    out.error = Some(e);
                    return out;
                }
            }
        };
        if let Class::Opt {
            action: Some(ai), ..
        } = &c
        {
            let act = &p.actions[*ai];
            if act.deprecated {
                out.deprecated
                    .push(act.opts.first().cloned().unwrap_or_default());
            }
        }
        classes.push(c);
    }
    let pattern: Vec<u8> = classes
        .iter()
        .map(|c| match c {
            Class::Opt { .. } => b'O',
            Class::Arg => b'A',
            Class::DashDash => b'-',
        })
        .collect();
    let mut st = State {
        p,
        args,
        pattern,
        ns: Namespace::default(),
        seen: vec![false; p.actions.len()],
        extras: vec![],
    };
    st.ns = p
        .defaults
        .get_or_init(|| {
            let mut ns = Namespace::default();
            for a in &p.actions {
                if a.default.as_str() != Some("==SUPPRESS==") && !ns.has(&a.dest) {
                    ns.set(a.dest.as_str(), Value::from_json(&a.default));
                }
            }
            ns
        })
        .clone();
    let mut positionals: Vec<usize> = (0..p.actions.len())
        .filter(|&i| p.actions[i].opts.is_empty())
        .collect();
    let opt_idx: Vec<usize> = (0..classes.len())
        .filter(|&i| matches!(classes[i], Class::Opt { .. }))
        .collect();
    let result: Result<(), String> = (|| {
        let mut start = 0usize;
        let max_opt = opt_idx.last().copied();
        while let Some(maxo) = max_opt {
            if start > maxo {
                break;
            }
            let next_opt = *opt_idx
                .iter()
                .find(|&&i| i >= start)
                .expect("an option index at or after start");
            if start != next_opt {
                let end = st.consume_positionals(&mut positionals, start)?;
                if end > start {
                    start = end;
                    continue;
                }
                start = end;
            }
            if !opt_idx.contains(&start) {
                st.extras.extend(args[start..next_opt].iter().cloned());
                start = next_opt;
            }
            start = st.consume_optional(start, &classes[start])?;
        }
        let stop = st.consume_positionals(&mut positionals, start)?;
        st.extras.extend(args[stop..].iter().cloned());
        // required actions
        let mut missing = Vec::new();
        for (i, a) in p.actions.iter().enumerate() {
            if st.seen[i] {
                continue;
            }
            let positional_required =
                a.opts.is_empty() && matches!(nargs(a), Nargs::One | Nargs::Plus | Nargs::N(_));
            if a.required || positional_required {
                missing.push(action_name(a));
            } else if let serde_json::Value::String(d) = &a.default
                && d != "==SUPPRESS=="
                && st.ns.get(&a.dest) == &Value::Str(d.clone())
                && a.ty.is_some()
            {
                let v = convert(a, d)?;
                st.ns.set(a.dest.as_str(), v);
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "the following arguments are required: {}",
                missing.join(", ")
            ));
        }
        if !known && !st.extras.is_empty() {
            return Err(format!("unrecognized arguments: {}", st.extras.join(" ")));
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            out.ns = Some(st.ns);
            out.extras = st.extras;
        }
        Err(e) => out.error = Some(e),
    }
    out
}

/// `Unexpected arguments to X command: [...]` text of parse_known_args commands.
pub fn unexpected_args(cmd: &str, extras: &[String]) -> String {
    format!(
        "Unexpected arguments to {cmd} command: {}",
        py_list_repr(extras)
    )
}
