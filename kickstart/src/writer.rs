//! Writing a [`Kickstart`] back as kickstart text that parses to the same model (ksflatten-like
//! layout: commands by pykickstart's write priority, scripts, null sections, `%packages`,
//! certificates; without ksflatten's `%end%anaconda` bug).

use crate::argparse::Value;
use crate::model::*;
use crate::tables::{ActionSpec, tables};

/// Characters that end a line (Python `str.splitlines`).
const LINE_ENDS: [char; 10] = [
    '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
];

/// Quote a value for shlex (double quotes; `\` and `"` escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Can `s` be written on one kickstart line (no line boundary characters)?
pub fn one_line(s: &str) -> bool {
    !s.contains([
        '\n', '\r', '\x0b', '\x0c', '\x1c', '\x1d', '\x1e', '\u{85}', '\u{2028}', '\u{2029}',
    ])
}

fn scalar(a: &ActionSpec, v: &Value) -> String {
    match (a.ty.as_deref(), v) {
        (Some("ksboolean"), Value::Bool(b)) => (if *b { "yes" } else { "no" }).into(),
        (Some("_type_cb" | "level_cb" | "_level_cb" | "_when_cb"), v) => a
            .type_map
            .as_ref()
            .and_then(|m| {
                m.iter()
                    .find(|(_, x)| Value::from_json(x) == *v)
                    .map(|(k, _)| k.clone())
            })
            .unwrap_or_default(),
        (Some("part_cb"), Value::Str(s)) if s.starts_with("/dev/") => format!("/dev/{s}"),
        (_, Value::Str(s)) => s.clone(),
        (_, Value::Int(i)) => i.to_string(),
        (_, Value::Bool(b)) => (if *b { "True" } else { "False" }).into(),
        (_, Value::List(l)) => l.iter().map(|x| scalar(a, x)).collect::<Vec<_>>().join(","),
        (_, Value::None) => String::new(),
    }
}

fn default_of(a: &ActionSpec) -> Value {
    Value::from_json(&a.default)
}

/// The argument vector (without the command name) that reproduces `cmd.args`.
pub fn command_args(version: &str, cmd: &Command) -> Vec<String> {
    let t = tables();
    let Some(spec) = t
        .versions
        .iter()
        .find(|v| v.name == version)
        .and_then(|v| v.commands.get(&cmd.name))
    else {
        return vec![];
    };
    let Some(pi) = spec.parser else { return vec![] };
    if spec.raw {
        return cmd
            .args
            .get("raw")
            .as_str()
            .filter(|r| !r.is_empty())
            .map(|r| vec![r.to_string()])
            .unwrap_or_default();
    }
    let p = t.parser(pi);
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    if cmd.kind() == "BTRFS" {
        // btrfs takes its mount point and devices from the arguments argparse leaves over
        if let Some(mp) = cmd.args.get("mntpoint").as_str() {
            pos.push(quote(mp));
        }
        if let Value::List(devs) = cmd.args.get("devices") {
            pos.extend(devs.iter().filter_map(|d| d.as_str()).map(quote));
        }
    }
    let mut done: Vec<&str> = Vec::new();
    for a in &p.actions {
        let v = cmd.args.get(&a.dest);
        if a.opts.is_empty() {
            match v {
                Value::List(l) => pos.extend(l.iter().map(|x| quote(&scalar(a, x)))),
                Value::None => {}
                v => pos.push(quote(&scalar(a, v))),
            }
            continue;
        }
        if done.contains(&a.dest.as_str()) || v.is_none() {
            continue;
        }
        let dflt = default_of(a);
        let first_with_dest = p
            .actions
            .iter()
            .find(|x| x.dest == a.dest && !x.opts.is_empty())
            .map(default_of);
        if Some(v) == first_with_dest.as_ref() || (first_with_dest.is_none() && *v == dflt) {
            done.push(&a.dest);
            continue;
        }
        // pick the action that produces v
        let candidates = p
            .actions
            .iter()
            .filter(|x| x.dest == a.dest && !x.opts.is_empty());
        let mut emitted = false;
        for x in candidates {
            let name = &x.opts[0];
            match x.kind.as_str() {
                "store_true" if *v == Value::Bool(true) => opts.push(name.clone()),
                "store_false" if *v == Value::Bool(false) => opts.push(name.clone()),
                "store_const" if *v == Value::from_json(&x.konst) => opts.push(name.clone()),
                "store" => match v {
                    Value::List(l) if l.is_empty() && x.nargs.is_null() => {
                        opts.push(format!("{name}=--"))
                    }
                    Value::List(l)
                        if (matches!(x.nargs, serde_json::Value::String(_))
                            || x.nargs.is_number())
                            && l.len() == 1 =>
                    {
                        opts.push(format!("{name}={}", quote(&scalar(x, &l[0]))));
                    }
                    Value::List(l)
                        if matches!(x.nargs, serde_json::Value::String(_))
                            || x.nargs.is_number() =>
                    {
                        opts.push(name.clone());
                        opts.extend(l.iter().map(|i| quote(&scalar(x, i))));
                    }
                    v => opts.push(format!("{name}={}", quote(&scalar(x, v)))),
                },
                "append" => {
                    if let Value::List(l) = v {
                        for item in l {
                            opts.push(format!("{name}={}", quote(&scalar(x, item))));
                        }
                    }
                }
                "extend" => opts.push(format!("{name}={}", quote(&scalar(x, v)))),
                "append_const" => {
                    if let Value::List(l) = v {
                        for item in l {
                            if let Some(y) = p.actions.iter().find(|y| {
                                y.dest == a.dest
                                    && y.kind == "append_const"
                                    && Value::from_json(&y.konst) == *item
                            }) {
                                opts.push(y.opts[0].clone());
                            } else if let Some(y) = p
                                .actions
                                .iter()
                                .find(|y| y.dest == a.dest && y.kind == "append")
                            {
                                opts.push(format!("{}={}", y.opts[0], quote(&scalar(y, item))));
                            }
                        }
                    }
                }
                _ => continue,
            }
            emitted = true;
            break;
        }
        let _ = emitted;
        done.push(&a.dest);
    }
    if pos.is_empty() && opts.is_empty() && cmd.kind() == "Timezone" {
        // a bare `timezone` is an error; `timezone --` keeps every default
        return vec!["--".into()];
    }
    if pos.iter().any(|p| p.starts_with("\"-")) {
        // a positional that looks like an option goes after "--"
        opts.push("--".into());
        opts.extend(pos);
        return opts;
    }
    pos.extend(opts);
    pos
}

/// Write `ks` as kickstart text.
pub fn write(ks: &Kickstart) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Generated by imagebuilder's kickstart crate (pykickstart {} syntax)\n",
        tables().pykickstart
    ));
    if let Some(p) = &ks.platform {
        out.push_str(&format!("#platform={p}\n"));
    }
    out.push_str(&format!("#version={}\n", ks.version));
    let mut cmds: Vec<&Command> = ks.commands.iter().collect();
    cmds.sort_by_key(|c| c.priority);
    for c in cmds {
        if c.uses.len() > 1 {
            // replay every use of a repeated single-instance command (per-line checks, last wins)
            for (name, ns) in &c.uses {
                let one = Command {
                    name: name.clone(),
                    args: ns.clone(),
                    uses: Vec::new(),
                    ..c.clone()
                };
                write_command(&mut out, &ks.version, &one);
            }
        } else {
            write_command(&mut out, &ks.version, c);
        }
    }
    for s in &ks.scripts {
        out.push('\n');
        out.push_str(s.kind.tag());
        if s.interpreter != "/bin/sh" {
            out.push_str(&format!(" --interpreter={}", quote(&s.interpreter)));
        }
        if let Some(l) = &s.log {
            out.push_str(&format!(" --log={}", quote(l)));
        }
        if s.kind == ScriptKind::Post && !s.chroot {
            out.push_str(" --nochroot");
        }
        if s.error_on_fail {
            out.push_str(" --erroronfail");
        }
        out.push('\n');
        out.push_str(&s.body);
        if !s.body.ends_with(LINE_ENDS) {
            out.push('\n');
        }
        out.push_str("%end\n");
    }
    for n in &ks.null_sections {
        out.push('\n');
        out.push_str(
            &n.header
                .iter()
                .map(|h| quote(h))
                .collect::<Vec<_>>()
                .join(" "),
        );
        out.push('\n');
        for l in &n.body {
            out.push_str(l);
        }
        if n.body.last().is_some_and(|l| !l.ends_with(LINE_ENDS)) {
            out.push('\n');
        }
        out.push_str("%end\n");
    }
    if let Some(p) = &ks.packages {
        // every header but the last as an empty section (per-header checks, last wins)
        let pidx0 = tables()
            .versions
            .iter()
            .find(|v| v.name == ks.version)
            .map(|v| v.sections["%packages"]);
        if let (Some(pi), true) = (pidx0, p.headers.len() > 1) {
            for h in &p.headers[..p.headers.len() - 1] {
                let c = Command {
                    name: String::new(),
                    class: String::new(),
                    obj: 0,
                    location: Location::default(),
                    args: h.clone(),
                    list: false,
                    uses: Vec::new(),
                    priority: 0,
                };
                out.push_str("\n%packages");
                for a in section_args(pi, &c) {
                    out.push(' ');
                    out.push_str(&a);
                }
                out.push_str("\n%end\n");
            }
        }
        out.push_str("\n%packages");
        let pidx = tables()
            .versions
            .iter()
            .find(|v| v.name == ks.version)
            .map(|v| v.sections["%packages"]);
        if let Some(pi) = pidx {
            let c = Command {
                name: String::new(),
                class: String::new(),
                obj: 0,
                location: Location::default(),
                args: p
                    .headers
                    .last()
                    .cloned()
                    .unwrap_or_else(|| p.options.clone()),
                list: false,
                uses: Vec::new(),
                priority: 0,
            };
            for a in section_args(pi, &c) {
                out.push(' ');
                out.push_str(&a);
            }
        }
        out.push('\n');
        // excluded groups first: "-@^x" would otherwise clear an environment "x" written before it
        for g in &p.excluded_groups {
            out.push_str(&format!("-@{g}\n"));
        }
        if let Some(e) = &p.environment {
            out.push_str(&format!("@^{e}\n"));
        }
        for g in &p.groups {
            let opt = match g.include {
                GroupInclude::Required => " --nodefaults",
                GroupInclude::All => " --optional",
                GroupInclude::Default => "",
            };
            // a group named "^x" (from "@\x1f^x") must not read back as an environment
            let sep = if g.name.starts_with('^') { " " } else { "" };
            out.push_str(&format!("@{sep}{}{opt}\n", g.name));
        }
        for x in &p.packages {
            out.push_str(x);
            out.push('\n');
        }
        for x in &p.excluded {
            out.push_str(&format!("-{x}\n"));
        }
        out.push_str("%end\n");
    }
    for c in &ks.certificates {
        out.push_str(&format!("\n%certificate --filename={}", quote(&c.filename)));
        if let Some(d) = &c.dir {
            out.push_str(&format!(" --dir={}", quote(d)));
        }
        if let Some(t) = &c.kind {
            out.push_str(&format!(" --type={}", quote(t)));
        }
        out.push('\n');
        out.push_str(&c.cert);
        out.push_str("\n%end\n");
    }
    out
}

fn write_command(out: &mut String, version: &str, c: &Command) {
    out.push_str(&c.name);
    for a in command_args(version, c) {
        out.push(' ');
        out.push_str(&a);
    }
    out.push('\n');
}

fn section_args(pidx: usize, c: &Command) -> Vec<String> {
    let p = tables().parser(pidx);
    let mut out = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for a in &p.actions {
        if done.contains(&a.dest.as_str()) {
            continue;
        }
        let v = c.args.get(&a.dest);
        if v.is_none() || *v == default_of(a) {
            continue;
        }
        done.push(&a.dest);
        match (a.kind.as_str(), v) {
            ("store_true", Value::Bool(true)) | ("store_false", Value::Bool(false)) => {
                out.push(a.opts[0].clone())
            }
            ("store", v) => out.push(format!("{}={}", a.opts[0], quote(&scalar(a, v)))),
            _ => {
                if let Some(x) = p.actions.iter().find(|x| {
                    x.dest == a.dest
                        && ((x.kind == "store_true" && *v == Value::Bool(true))
                            || (x.kind == "store_false" && *v == Value::Bool(false)))
                }) {
                    out.push(x.opts[0].clone());
                }
            }
        }
    }
    out
}

/// Can `ks` be written as text that parses back to it? Not when a value holds a line-boundary
/// character (a token that ended at `\x0c`, a `\`-escaped newline), or a `%packages` entry looks
/// like a section keyword (`%end` from `%end#comment`).
pub fn representable(ks: &Kickstart) -> bool {
    let dbg = format!(
        "{:?}{:?}{:?}{:?}",
        ks.commands, ks.packages, ks.null_sections, ks.certificates
    );
    let scripts: String = ks
        .scripts
        .iter()
        .map(|s| format!("{:?}{:?}", s.interpreter, s.log))
        .collect();
    let all = dbg + &scripts;
    if [
        "\\n",
        "\\r",
        "\\u{b}",
        "\\u{c}",
        "\\u{1c}",
        "\\u{1d}",
        "\\u{1e}",
        "\\u{85}",
        "\\u{2028}",
        "\\u{2029}",
    ]
    .iter()
    .any(|e| all.contains(e))
        || !one_line(&all)
    {
        return false;
    }
    // commands kept raw (auth, realm, …) are written back verbatim: they must still tokenise
    let bad_raw = |name: &str, ns: &crate::argparse::Namespace| {
        ns.get("raw")
            .as_str()
            .is_some_and(|r| crate::shlex::split(&format!("{name} {r}\n"), true).is_err())
    };
    if ks
        .commands
        .iter()
        .any(|c| bad_raw(&c.name, &c.args) || c.uses.iter().any(|(n, ns)| bad_raw(n, ns)))
    {
        return false;
    }
    if let Some(p) = &ks.packages {
        let names = p
            .packages
            .iter()
            .chain(&p.excluded)
            .chain(&p.excluded_groups);
        if names
            .chain(p.groups.iter().map(|g| &g.name))
            .any(|n| n.starts_with('%') || n.starts_with("-%"))
        {
            return false;
        }
    }
    true
}
