//! Per-command semantic checks that pykickstart performs in each class's `parse()`, the
//! duplicate-item warnings of list commands, and the `%packages` body rules.

#![allow(clippy::collapsible_if, clippy::collapsible_match)]

use crate::argparse::{Namespace, Value};
use crate::model::{Group, GroupInclude, Packages};
use crate::version::Version;

/// One finding of a check, in the order pykickstart raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// A `KickstartParseWarning`/`KickstartDeprecationWarning`.
    Warn(String),
    /// A `KickstartParseError` (stops the command).
    Err(String),
}

/// What a command check sees.
pub struct Ctx<'a> {
    /// Syntax version.
    pub version: Version,
    /// Command name as written.
    pub name: &'a str,
    /// pykickstart class.
    pub class: &'a str,
    /// Line of the command.
    pub line: usize,
    /// The options of earlier uses (single-instance commands: pykickstart's `self`).
    pub prev: Option<&'a Namespace>,
    /// Arguments left over by parse_known_args.
    pub extras: &'a [String],
    /// The "Unexpected arguments to X command" name of a parse_known_args command.
    pub known_args: Option<&'a str>,
    /// The raw arguments (without the command name).
    pub args: &'a [String],
}

fn kind(class: &str) -> &str {
    class.split_once('_').map(|x| x.1).unwrap_or(class)
}

fn prefix(class: &str) -> &str {
    class.split_once('_').map(|x| x.0).unwrap_or("")
}

fn s<'a>(ns: &'a Namespace, k: &str) -> Option<&'a str> {
    ns.get(k).as_str()
}

fn t(ns: &Namespace, k: &str) -> bool {
    ns.get(k).truthy()
}

/// Value of `k` after pykickstart's `set_to_self` (earlier uses persist when the new value is None).
fn merged<'a>(ctx: &'a Ctx, ns: &'a Namespace, k: &str) -> &'a Value {
    let v = ns.get(k);
    if v.is_none() {
        if let Some(p) = ctx.prev {
            return p.get(k);
        }
    }
    v
}

/// Warnings pykickstart raises before parsing the options.
pub fn pre_parse(ctx: &Ctx) -> Vec<Issue> {
    let mut out = Vec::new();
    if ctx.class == "F28_Authconfig" {
        out.push(Issue::Warn(
            "The authconfig command will be deprecated, use authselect instead.".into(),
        ));
    }
    out
}

fn unexpected(ctx: &Ctx) -> Issue {
    let n = match ctx.known_args {
        Some("{cmd}") | None => ctx.name,
        Some(n) => n,
    };
    Issue::Err(crate::argparse::unexpected_args(n, ctx.extras))
}

/// The checks of the command's `parse()` after argparse succeeded. May adjust `ns` as
/// pykickstart does (e.g. `--noipv4` blanks the boot protocol).
pub fn check(ctx: &Ctx, ns: &mut Namespace) -> Vec<Issue> {
    let mut out = Vec::new();
    let k = kind(ctx.class);
    // parse_known_args commands whose own checks come before the extras check
    match k {
        "RootPw" => {
            let pw = ns.get("password");
            let has_pw = match pw {
                Value::List(l) => !l.is_empty(),
                v => v.truthy(),
            };
            if !(has_pw || t(ns, "lock")) {
                out.push(Issue::Err(
                    "A single argument is expected for the rootpw command".into(),
                ));
                return out;
            }
        }
        "Keyboard" => {
            if let Value::List(l) = ns.get("kbd") {
                if l.len() > 1 {
                    out.push(Issue::Err(
                        "A single argument is expected for the keyboard command".into(),
                    ));
                    return out;
                }
            }
        }
        _ => {}
    }
    if ctx.known_args.is_some() && !ctx.extras.is_empty() {
        out.push(unexpected(ctx));
        return out;
    }
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    match k {
        "Keyboard" => {
            let kbd = matches!(ns.get("kbd"), Value::List(l) if !l.is_empty());
            if !kbd
                && !merged(ctx, ns, "vc_keymap").truthy()
                && !merged(ctx, ns, "x_layouts").truthy()
            {
                err(
                    &mut out,
                    "One of --xlayouts, --vckeymap options with value(s) or argument is expected for the keyboard command",
                );
            }
        }
        "Timezone" => timezone(ctx, ns, &mut out),
        "AutoPart" => autopart(ctx, ns, &mut out),
        "Url" => {
            let srcs: Vec<&str> = ["url", "mirrorlist", "metalink"]
                .into_iter()
                .filter(|o| ns.get(o) != &Value::None && ns.get(o) != &Value::Bool(false))
                .collect();
            let has_metalink = ctx.class != "F18_Url";
            let n = srcs.iter().filter(|x| merged(ctx, ns, x).truthy()).count();
            let n_all = ["url", "mirrorlist", "metalink"]
                .iter()
                .filter(|x| merged(ctx, ns, x).truthy())
                .count();
            let _ = n;
            if n_all == 0 {
                if has_metalink {
                    err(
                        &mut out,
                        "One of ---mirrorlist, --url, --metalink options must be specified for url command.",
                    );
                } else {
                    err(
                        &mut out,
                        "One of ---mirrorlist, --url options must be specified for url command.",
                    );
                }
            } else if n_all > 1 {
                if has_metalink {
                    err(
                        &mut out,
                        "Only one of --mirrorlist, --url, --metalink options may be specified for url command.",
                    );
                } else {
                    err(
                        &mut out,
                        "Only one of --mirrorlist, --url options may be specified for url command.",
                    );
                }
            }
        }
        "Repo" => {
            let n = ["baseurl", "mirrorlist", "metalink"]
                .iter()
                .filter(|x| t(ns, x))
                .count();
            if n > 1 {
                let has_metalink = !matches!(ctx.class, "F21_Repo" | "RHEL7_Repo");
                if has_metalink {
                    err(
                        &mut out,
                        "Only one of --baseurl, --mirrorlist, --metalink options may be specified for repo command.",
                    );
                } else {
                    err(
                        &mut out,
                        "Only one of --baseurl, --mirrorlist options may be specified for repo command.",
                    );
                }
            }
        }
        "Bootloader" => {
            if let Some(d) = s(ns, "bootDrive") {
                if d.contains(',') {
                    err(&mut out, "--boot-drive accepts only one argument");
                    return out;
                }
            }
            if ctx.class == "F39_Bootloader"
                && merged(ctx, ns, "sdboot").truthy()
                && merged(ctx, ns, "extlinux").truthy()
            {
                err(
                    &mut out,
                    "Only one of --sdboot and --extlinux may be specified for bootloader command.",
                );
            }
            if t(ns, "_md5pass") {
                let v = ns.get("_md5pass").clone();
                ns.set("password", v);
                ns.set("isCrypted", Value::Bool(true));
            }
        }
        "Services" => {
            if !t(ns, "disabled") && !t(ns, "enabled") {
                err(&mut out, "One of --disabled or --enabled must be provided.");
            }
        }
        "OSTreeSetup" => {
            let url = s(ns, "url").unwrap_or("");
            if !(url.starts_with("file:") || url.starts_with("http:") || url.starts_with("https:"))
            {
                err(
                    &mut out,
                    "ostree repos must use file, HTTP or HTTPS protocol.",
                );
            }
        }
        "DisplayMode" => {
            if ctx.class == "F26_DisplayMode" && ctx.name == "cmdline" && t(ns, "nonInteractive") {
                err(
                    &mut out,
                    "Kickstart command cmdline does not support --non-interactive parameter",
                );
            }
        }
        "Partition" => partition(ctx, ns, &mut out),
        "LogVol" => logvol(ctx, ns, &mut out),
        "VolGroup" => volgroup(ns, &mut out),
        "Network" => network(ctx, ns, &mut out),
        _ => {}
    }
    out
}

fn timezone(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    let n_tz = match ns.get("timezone") {
        Value::List(l) => l.len(),
        Value::None => 0,
        _ => 1,
    };
    if matches!(p, "F25" | "F32" | "F33" | "F40" | "RHEL10") {
        if ctx.args.is_empty() {
            out.push(Issue::Err(
                "At least one option and/or an argument are expected for the timezone command"
                    .into(),
            ));
            return;
        }
        if n_tz > 1 {
            out.push(Issue::Err(
                "One or zero arguments are expected for the timezone command".into(),
            ));
            return;
        }
    }
    if t(ns, "nontp") && t(ns, "ntpservers") && !matches!(p, "RHEL10") {
        out.push(Issue::Err(
            "Options --nontp and --ntpservers are mutually exclusive".into(),
        ));
        return;
    }
    if matches!(p, "F32" | "F33") && ctx.args.iter().any(|a| a == "--isUtc") {
        out.push(Issue::Warn(
            "The option --isUtc will be deprecated in future releases. Please modify your kickstart file to replace this option with its preferred alias --utc.".into(),
        ));
    }
    if p == "F33" {
        if merged(ctx, ns, "ntpservers").truthy() {
            out.push(Issue::Warn("The option --ntpservers will be deprecated in future releases. Please modify your kickstart file to replace this option with timesource --ntp-server <server hostname> command invocation, one per NTP server.".into()));
        }
        if merged(ctx, ns, "nontp").truthy() {
            out.push(Issue::Warn("The option --nontp will be deprecated in future releases. Please modify your kickstart file to replace this option with timesource --ntp-disable command invocation.".into()));
        }
    }
}

fn autopart(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    let ty = ns.get("type").clone();
    let type_is = |name: &str| -> bool {
        let spec = ctx
            .version
            .spec()
            .commands
            .get("autopart")
            .and_then(|c| c.parser);
        let Some(pi) = spec else { return false };
        crate::tables::tables().parser(pi).actions.iter().any(|a| {
            a.dest == "type"
                && a.type_map
                    .as_ref()
                    .and_then(|m| m.get(name))
                    .map(Value::from_json)
                    .as_ref()
                    == Some(&ty)
        })
    };
    if s(ns, "fstype") == Some("btrfs") {
        out.push(Issue::Err(
            "autopart --fstype=btrfs is not valid fstype, use --type=btrfs instead".into(),
        ));
        return;
    }
    if type_is("btrfs") && t(ns, "fstype") {
        out.push(Issue::Err(
            "autopart --fstype cannot be used with --type=btrfs".into(),
        ));
        return;
    }
    if !matches!(p, "F21" | "F23" | "RHEL7" | "F26")
        && t(ns, "pbkdf_time")
        && t(ns, "pbkdf_iterations")
    {
        out.push(Issue::Err(
            "Only one of --pbkdf-time and --pbkdf-iterations can be specified.".into(),
        ));
        return;
    }
    if matches!(p, "RHEL8" | "RHEL9" | "RHEL10") && type_is("btrfs") {
        out.push(Issue::Err("autopart --type=btrfs is not supported".into()));
        return;
    }
    if matches!(p, "F38" | "F41" | "F45" | "RHEL10") && t(ns, "hibernation") && t(ns, "noswap") {
        out.push(Issue::Err(
            "Options --hibernation and --noswap are mutually exclusive".into(),
        ));
        return;
    }
    if matches!(p, "F41" | "F45")
        && t(ns, "hw_passphrase")
        && (!t(ns, "encrypted") || !s(ns, "luks_version").unwrap_or("").starts_with("luks2-"))
    {
        out.push(Issue::Err(
            "The --hw-passphrase option requires --encrypted and --luks-version=luks2-*.".into(),
        ));
        return;
    }
    if p == "F45" && type_is("stratis") {
        let opts = [
            ("luks_version", "--luks-version"),
            ("pbkdf", "--pbkdf"),
            ("pbkdf_memory", "--pbkdf-memory"),
            ("pbkdf_time", "--pbkdf-time"),
            ("pbkdf_iterations", "--pbkdf-iterations"),
            ("hw_passphrase", "--hw-passphrase"),
            ("escrowcert", "--escrowcert"),
            ("backuppassphrase", "--backuppassphrase"),
            ("cipher", "--cipher"),
            ("fstype", "--fstype"),
        ];
        let bad: Vec<&str> = opts
            .iter()
            .filter(|(d, _)| t(ns, d))
            .map(|(_, o)| *o)
            .collect();
        if !bad.is_empty() {
            out.push(Issue::Err(format!(
                "--type=stratis cannot be used with {}",
                bad.join(", ")
            )));
        }
    }
}

fn partition(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    if !matches!(p, "F20" | "F23" | "RHEL7") && t(ns, "pbkdf_time") && t(ns, "pbkdf_iterations") {
        out.push(Issue::Err(
            "Only one of --pbkdf-time and --pbkdf-iterations can be specified.".into(),
        ));
    }
}

fn logvol(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    if !matches!(p, "F21" | "F23" | "RHEL7") && t(ns, "pbkdf_time") && t(ns, "pbkdf_iterations") {
        out.push(Issue::Err(
            "Only one of --pbkdf-time and --pbkdf-iterations can be specified.".into(),
        ));
    }
}

fn volgroup(_ns: &mut Namespace, _out: &mut Vec<Issue>) {}

fn network(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let _ = (ctx, out);
    if t(ns, "noipv4") {
        ns.set("bootProto", Value::None);
    }
}

/// The duplicate-item warning of a list command, comparing with the items already defined.
pub fn duplicate(class: &str, ns: &Namespace, existing: &[&Namespace]) -> Option<String> {
    let first = |v: &Value| -> Value {
        match v {
            Value::List(l) => l.first().cloned().unwrap_or(Value::None),
            v => v.clone(),
        }
    };
    let disp = |v: &Value| -> String {
        match v {
            Value::Str(s) => s.clone(),
            Value::None => "None".into(),
            v => v.repr(),
        }
    };
    let same = |key: &str| {
        existing
            .iter()
            .any(|e| first(e.get(key)) == first(ns.get(key)))
    };
    match kind(class) {
        "Partition" => {
            let mp = first(ns.get("mntpoint"));
            (mp != Value::Str("swap".into()) && same("mntpoint"))
                .then(|| format!("A partition with the mountpoint {} has already been defined.", disp(&mp)))
        }
        "Network" => same("device").then(|| {
            format!("A network device with the name {} has already been defined.", disp(ns.get("device")))
        }),
        "User" => same("name").then(|| format!("A user with the name {} has already been defined.", disp(ns.get("name")))),
        "Group" => same("name").then(|| format!("A group with the name {} has already been defined.", disp(ns.get("name")))),
        "Repo" => same("name").then(|| format!("A repo with the name {} has already been defined.", disp(ns.get("name")))),
        "SshKey" => same("username")
            .then(|| format!("An ssh user with the name {} has already been defined.", disp(ns.get("username")))),
        "VolGroup" => same("name")
            .then(|| format!("A volgroup with the name {} has already been defined.", disp(&first(ns.get("name"))))),
        "LogVol" => existing
            .iter()
            .any(|e| e.get("name") == ns.get("name") && e.get("vgname") == ns.get("vgname"))
            .then(|| {
                format!(
                    "A logical volume with the name {} has already been defined in volume group {}.",
                    disp(ns.get("name")),
                    disp(ns.get("vgname"))
                )
            }),
        "Raid" => same("device")
            .then(|| format!("A RAID device with the name {} has already been defined.", disp(ns.get("device")))),
        "BTRFS" => same("mntpoint").then(|| {
            format!("A btrfs volume with the mountpoint {} has already been defined.", disp(&first(ns.get("mntpoint"))))
        }),
        _ => None,
    }
}

/// Checks of the `%packages` header after argparse (`PackageSection.handleHeader`).
pub fn packages_header(
    version: Version,
    args: &[String],
    ns: &Namespace,
    lineno: usize,
) -> Vec<Issue> {
    let mut out = Vec::new();
    if t(ns, "defaultPackages") && t(ns, "nobase") {
        out.push(Issue::Err(
            "--default and --nobase cannot be used together".into(),
        ));
        return out;
    }
    if t(ns, "defaultPackages") && t(ns, "nocore") {
        out.push(Issue::Err(
            "--default and --nocore cannot be used together".into(),
        ));
        return out;
    }
    let id = version.id();
    let fedora_32_to_39 = !version.is_rhel() && (32000..40000).contains(&id);
    let rhel_32_to_39 = version.is_rhel() && (32000..40000).contains(&id);
    if fedora_32_to_39 || rhel_32_to_39 {
        for (old, new) in [
            ("--instLangs", "--inst-langs"),
            ("--excludeWeakdeps", "--exclude-weakdeps"),
        ] {
            if args
                .iter()
                .skip(1)
                .any(|a| a == old || a.starts_with(&format!("{old}=")))
            {
                out.push(Issue::Warn(format!(
                    "The {old} option on line {lineno} will be deprecated in future releases. Please modify your kickstart file to replace this option with its preferred alias {new}."
                )));
            }
        }
    }
    out
}

/// One `%packages` body line (comment already removed), as `Packages.add`.
pub fn packages_line(pk: &mut Packages, line: &str) -> Result<(), String> {
    let stripped = crate::text::strip(line);
    if stripped.is_empty() {
        return Err("string index out of range".into());
    }
    if let Some(env) = stripped.strip_prefix("@^") {
        pk.environment = Some(env.to_string());
    } else if let Some(g) = stripped.strip_prefix('@') {
        let mut nodefaults = false;
        let mut optional = false;
        let mut rest = Vec::new();
        for w in crate::text::split_ws(g) {
            let is_prefix_of = |full: &str| w.len() >= 3 && full.starts_with(w);
            if w.starts_with("--") && w.contains('=') {
                let (o, v) = w.split_once('=').unwrap_or((w, ""));
                if o.len() >= 3 && ("--nodefaults".starts_with(o) || "--optional".starts_with(o)) {
                    let full = if "--nodefaults".starts_with(o) {
                        "--nodefaults"
                    } else {
                        "--optional"
                    };
                    return Err(format!(
                        "argument {full}: ignored explicit argument {}",
                        crate::text::py_repr(v)
                    ));
                }
                rest.push(w);
            } else if is_prefix_of("--nodefaults") {
                nodefaults = true;
            } else if is_prefix_of("--optional") {
                optional = true;
            } else {
                rest.push(w);
            }
        }
        if nodefaults && optional {
            return Err("Group cannot specify both --nodefaults and --optional".into());
        }
        let name = rest.join(" ");
        if !pk.groups.iter().any(|x| x.name == name) {
            let include = if nodefaults {
                GroupInclude::Required
            } else if optional {
                GroupInclude::All
            } else {
                GroupInclude::Default
            };
            pk.groups.push(Group { name, include });
        }
    } else if let Some(ex) = stripped.strip_prefix('-') {
        if ex.is_empty() {
            return Err("string index out of range".into());
        }
        if let Some(env) = ex.strip_prefix("@^") {
            if pk.environment.as_deref() == Some(env) {
                pk.environment = None;
            } else {
                // "-@^x" not matching: excluded package named "@^x"? pykickstart: stripped[1] == "@"
                pk.excluded_groups.push(ex[1..].to_string());
                pk.groups.retain(|g| g.name != ex[1..]);
            }
        } else if let Some(g) = ex.strip_prefix('@') {
            pk.groups.retain(|x| x.name != g);
            pk.excluded_groups.push(g.to_string());
        } else {
            pk.packages.retain(|p| p != ex);
            if let Err(i) = pk.excluded.binary_search_by(|p| p.as_str().cmp(ex)) {
                pk.excluded.insert(i, ex.to_string());
            }
        }
    } else {
        pk.excluded.retain(|p| p != stripped);
        if let Err(i) = pk.packages.binary_search_by(|p| p.as_str().cmp(stripped)) {
            pk.packages.insert(i, stripped.to_string());
        }
    }
    Ok(())
}
