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
    /// The class and its ancestors (pykickstart's MRO among its command classes).
    pub mro: &'a [String],
    /// The commands parsed so far (list commands: the items of [`Ctx::obj`] among them are
    /// pykickstart's `dataList()`).
    pub earlier: &'a [crate::model::Command],
    /// The command object this use belongs to.
    pub obj: usize,
}

impl Ctx<'_> {
    /// Does the class derive from (or is it) pykickstart's `class`?
    fn is(&self, class: &str) -> bool {
        self.class == class || self.mro.iter().any(|c| c == class)
    }

    /// The options of the earlier items of this list command.
    fn items(&self) -> impl Iterator<Item = &Namespace> {
        self.earlier
            .iter()
            .filter(move |c| c.obj == self.obj)
            .map(|c| &c.args)
    }
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
    if k == "VolGroup" {
        volgroup(ctx, ns, &mut out);
        return out;
    }
    if k == "BTRFS" {
        btrfs(ctx, ns, &mut out);
        return out;
    }
    // parse_known_args commands that judge their leftover arguments themselves
    match k {
        "Raid" => {
            raid(ctx, ns, &mut out);
            return out;
        }
        "Device" => {
            if ctx.extras.len() != 1 {
                out.push(Issue::Err(
                    "device command requires a single argument: module name".into(),
                ));
            } else if ctx.extras[0].starts_with('-') {
                out.push(unexpected(ctx));
            } else {
                ns.set("moduleName", Value::Str(ctx.extras[0].clone()));
            }
            return out;
        }
        "StratisPool" => {
            stratispool(ctx, ns, &mut out);
            return out;
        }
        "DriverDisk" => {
            driverdisk(ctx, ns, &mut out);
            return out;
        }
        "Updates" if ctx.known_args.is_some() => {
            if matches!(ns.get("updates"), Value::List(l) if l.len() > 1) {
                out.push(Issue::Err(
                    "Kickstart command updates only takes one argument".into(),
                ));
            } else if !ctx.extras.is_empty() {
                out.push(unexpected(ctx));
            }
            return out;
        }
        "Eula" => {
            if !ctx.extras.is_empty() {
                out.push(Issue::Err(
                    "Kickstart command eula does not take any arguments".into(),
                ));
            } else if !merged(ctx, ns, "agreed").truthy() {
                out.push(Issue::Err(
                    "Kickstart command eula expects the --agreed option".into(),
                ));
            }
            return out;
        }
        "Module" | "Syspurpose" if !ctx.extras.is_empty() => {
            out.push(Issue::Err(if k == "Module" {
                "The enable module command does not take position arguments!".into()
            } else {
                "The syspurpose command does not take positional arguments!".into()
            }));
            return out;
        }
        "SshPw" => {
            if !t(ns, "password") {
                out.push(Issue::Err(
                    "A single argument is expected for the sshpw command".into(),
                ));
            } else if !ctx.extras.is_empty() {
                out.push(unexpected(ctx));
            }
            return out;
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
        "Url" | "Repo" => {
            let (main, cmd) = if k == "Url" {
                ("url", "url")
            } else {
                ("baseurl", "repo")
            };
            let mut opts = vec![
                ("mirrorlist", "--mirrorlist"),
                (main, if k == "Url" { "--url" } else { "--baseurl" }),
            ];
            if ns.0.iter().any(|(d, _)| *d == "metalink") {
                opts.push(("metalink", "--metalink"));
            }
            let used: Vec<&str> = opts
                .iter()
                .filter(|(d, _)| t(ns, d))
                .map(|(_, o)| *o)
                .collect();
            if used.is_empty() && k == "Url" {
                let all: Vec<&str> = opts.iter().map(|(_, o)| *o).collect();
                out.push(Issue::Err(format!(
                    "One of -{} options must be specified for {cmd} command.",
                    all.join(", ")
                )));
            } else if used.len() > 1 {
                out.push(Issue::Err(format!(
                    "Only one of {} options may be specified for {cmd} command.",
                    used.join(", ")
                )));
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
                // pykickstart copies --md5pass into the password; the model keeps only the result
                let v = ns.get("_md5pass").clone();
                ns.set("password", v);
                ns.set("isCrypted", Value::Bool(true));
                ns.set("_md5pass", Value::None);
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
        "Realm" => realm(ctx, &mut out),
        "Nvdimm" => nvdimm(ns, &mut out),
        "IgnoreDisk" => ignoredisk(ctx, ns, &mut out),
        "Timesource" => {
            let opts = [
                ("ntp_server", "--ntp-server"),
                ("ntp_pool", "--ntp-pool"),
                ("ntp_disable", "--ntp-disable"),
            ];
            let used: Vec<&str> = opts
                .iter()
                .filter(|(d, _)| t(ns, d))
                .map(|(_, o)| *o)
                .collect();
            if used.is_empty() {
                let all: Vec<&str> = opts.iter().map(|(_, o)| *o).collect();
                err(
                    &mut out,
                    &format!(
                        "One of -{} options must be specified for timesource command.",
                        all.join(", ")
                    ),
                );
            } else if used.len() > 1 {
                err(
                    &mut out,
                    &format!(
                        "Only one of {} options may be specified for timesource command.",
                        used.join(", ")
                    ),
                );
            }
        }
        "ZFCP" => {
            if ctx.is("F37_ZFCP") {
                let (d, w, f) = (t(ns, "devnum"), t(ns, "wwpn"), t(ns, "fcplun"));
                // devnum alone, or devnum with both wwpn and fcplun
                let allowed = d && (w == f);
                if !allowed {
                    err(
                        &mut out,
                        "Only --devnum or --devnum with --wwpn and --fcplun are allowed.",
                    );
                }
            }
        }
        "Mount" => {
            let mp = match ns.get("mntpoint") {
                Value::List(l) => l.first().and_then(Value::as_str).unwrap_or(""),
                v => v.as_str().unwrap_or(""),
            };
            if mp.to_lowercase() != "none" && !mp.starts_with('/') {
                err(&mut out, &format!("Invalid mount point '{mp}' given"));
            } else if matches!(ns.get("reformat"), Value::Bool(false)) && t(ns, "mkfs_opts") {
                err(&mut out, "'--mkfsoptions' requires --reformat");
            }
        }
        "HardDrive" => {
            if !ctx.is("F33_HardDrive") {
                let bios = !merged(ctx, ns, "biospart").is_none();
                let part = !merged(ctx, ns, "partition").is_none();
                if bios == part {
                    err(
                        &mut out,
                        "One of biospart or partition options must be specified.",
                    );
                }
            }
        }
        "Logging" => {
            if merged(ctx, ns, "port").truthy() && !merged(ctx, ns, "host").truthy() {
                err(&mut out, "Can't specify --port without --host.");
            }
        }
        "Install" | "Upgrade" => {
            if s(ns, "root_device") == Some("") {
                err(
                    &mut out,
                    "Kickstart command upgrade does not accept empty parameter --root-device",
                );
            }
        }
        "RHSM" => {
            if let Value::List(keys) = ns.get("activation_keys") {
                if keys.iter().any(|k| k.as_str() == Some("")) {
                    err(&mut out, "Empty string is not a valid activation key.");
                }
            }
        }
        "Rescue" => {
            if t(ns, "nomount") && t(ns, "romount") {
                err(
                    &mut out,
                    "Only one of --nomount and --romount may be specified for rescue command.",
                );
            }
        }
        "Snapshot" => snapshot(ctx, ns, &mut out),
        "StratisFs" => {
            if t(ns, "maxSizeMB") && !t(ns, "grow") {
                err(&mut out, "--maxsize requires --grow");
            }
        }
        "MultiPath" => {
            let dev = ns.get("device").clone();
            for it in ctx.items() {
                if it.get("device") == &dev {
                    let mp = s(it, "name").unwrap_or("");
                    let mp = mp.rsplit('/').next().unwrap_or("");
                    err(
                        &mut out,
                        &format!(
                            "Device '{}' is already used in multipath '{mp}'",
                            dev.as_str().unwrap_or("")
                        ),
                    );
                    break;
                }
            }
        }
        "LogVol" => logvol(ctx, ns, &mut out),
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
    if matches!(p, "F25" | "F32" | "F33" | "F40" | "RHEL10") || ctx.is("RHEL7_Timezone") {
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
            "hw-passphrase may be specified only with LUKSv2 HW-OPAL encrypted devices".into(),
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

fn mkfs_checks(ns: &Namespace, out: &mut Vec<Issue>) -> bool {
    if !ns.0.iter().any(|(d, _)| *d == "mkfsopts") {
        return true;
    }
    if matches!(ns.get("format"), Value::Bool(false)) && t(ns, "mkfsopts") {
        out.push(Issue::Err(
            "--mkfsoptions with --noformat has no effect.".into(),
        ));
        return false;
    }
    if t(ns, "fsprofile") && t(ns, "mkfsopts") {
        out.push(Issue::Err(
            "--mkfsoptions and --fsprofile cannot be used together.".into(),
        ));
        return false;
    }
    true
}

fn pbkdf_check(ns: &Namespace, out: &mut Vec<Issue>) -> bool {
    if t(ns, "pbkdf_time") && t(ns, "pbkdf_iterations") {
        out.push(Issue::Err(
            "Only one of --pbkdf-time and --pbkdf-iterations can be specified.".into(),
        ));
        return false;
    }
    true
}

fn partition(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    if t(ns, "resize") && !t(ns, "onPart") {
        out.push(Issue::Err(
            "--resize can only be used in conjunction with --onpart".into(),
        ));
        return;
    }
    if t(ns, "resize") && !t(ns, "size") {
        out.push(Issue::Err(
            "--resize requires --size to specify new size".into(),
        ));
        return;
    }
    if ctx.is("F20_Partition")
        && s(ns, "fstype") == Some("tmpfs")
        && (t(ns, "grow") || !matches!(ns.get("maxSizeMB"), Value::Int(0) | Value::None))
    {
        out.push(Issue::Err(
            "The --fstype=tmpfs option can't be used together with --grow or --maxsize".into(),
        ));
        return;
    }
    if !mkfs_checks(ns, out) || !pbkdf_check(ns, out) {
        return;
    }
    if matches!(p, "RHEL8" | "RHEL9" | "RHEL10") && s(ns, "fstype") == Some("btrfs") {
        out.push(Issue::Err("Btrfs file system is not supported".into()));
        return;
    }
    if ctx.is("F41_Partition")
        && t(ns, "hw_passphrase")
        && (!t(ns, "encrypted") || !s(ns, "luks_version").unwrap_or("").starts_with("luks2-"))
    {
        out.push(Issue::Err(
            "hw-passphrase may be specified only with LUKSv2 HW-OPAL encrypted devices".into(),
        ));
        return;
    }
    if ctx.is("RHEL11_Partition") {
        let mp = match ns.get("mntpoint") {
            Value::List(l) => l.first().and_then(Value::as_str).unwrap_or(""),
            v => v.as_str().unwrap_or(""),
        };
        if mp.starts_with("btrfs.") || s(ns, "fstype") == Some("btrfs") {
            out.push(Issue::Err("Btrfs file system is not supported".into()));
        }
    }
}

fn logvol(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let p = prefix(ctx.class);
    if matches!(ns.get("format"), Value::Bool(false)) {
        ns.set("preexist", Value::Bool(true));
    }
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    if t(ns, "resize") && !t(ns, "preexist") {
        return err(
            out,
            "--resize can only be used in conjunction with --useexisting",
        );
    }
    if t(ns, "resize") && !t(ns, "size") {
        return err(out, "--resize requires --size to indicate new size");
    }
    if t(ns, "thin_volume") && t(ns, "thin_pool") {
        return err(
            out,
            "--thin and --thinpool cannot both be specified for the same logvol",
        );
    }
    if t(ns, "thin_volume") && !t(ns, "pool_name") {
        return err(out, "--thin requires --poolname to specify pool name");
    }
    if (t(ns, "chunk_size") || t(ns, "metadata_size")) && !t(ns, "thin_pool") {
        return err(
            out,
            "--chunksize and --metadatasize are for thin pools only",
        );
    }
    if !t(ns, "preexist")
        && !t(ns, "percent")
        && !t(ns, "size")
        && !t(ns, "recommended")
        && !t(ns, "hibernation")
    {
        return err(
            out,
            "No size given for logical volume. Use one of --useexisting, --noformat, --size, --percent, or --hibernation.",
        );
    }
    if let Value::Int(pc) = ns.get("percent") {
        if !(0..=100).contains(pc) {
            return err(out, "Percentage must be between 0 and 100.");
        }
    }
    if t(ns, "size") && t(ns, "percent") {
        return err(
            out,
            "--size and --percent cannot both be specified for the same logvol",
        );
    }
    if p != "F21"
        && p != "RHEL7"
        && (t(ns, "cache_size") || t(ns, "cache_mode") || t(ns, "cache_pvs"))
    {
        if t(ns, "preexist") {
            return err(
                out,
                "Adding a cache to an existing logical volume is not supported",
            );
        }
        if t(ns, "thin_volume") {
            return err(out, "Thin volumes cannot be cached");
        }
        if !t(ns, "cache_pvs") {
            return err(out, "Cache needs to have a list of (fast) PVs specified");
        }
        if !t(ns, "cache_size") {
            return err(out, "Cache needs to have size specified");
        }
        if let Some(m) = s(ns, "cache_mode") {
            if m != "writeback" && m != "writethrough" {
                return err(out, &format!("Invalid cache mode given: {m}"));
            }
        }
    }
    if p != "F21" && !mkfs_checks(ns, out) {
        return;
    }
    if !matches!(p, "F21" | "F23" | "RHEL7") && !pbkdf_check(ns, out) {
        return;
    }
    if matches!(p, "RHEL8" | "RHEL9" | "RHEL10") && s(ns, "fstype") == Some("btrfs") {
        err(out, "Btrfs file system is not supported");
    }
}

fn btrfs(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    if matches!(ns.get("format"), Value::Bool(false)) {
        ns.set("preexist", Value::Bool(true));
    } else if t(ns, "preexist") {
        ns.set("format", Value::Bool(false));
    }
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    let Some(first) = ctx.extras.first() else {
        return err(out, "btrfs must be given a mountpoint");
    };
    if ctx.extras.iter().any(|a| a.starts_with('-')) {
        return out.push(unexpected(ctx));
    }
    let mp = if first.starts_with('/') {
        crate::text::normpath(first)
    } else {
        first.clone()
    };
    ns.set("mntpoint", Value::Str(mp));
    let devices: Vec<Value> = ctx.extras[1..]
        .iter()
        .map(|d| Value::Str(d.clone()))
        .collect();
    ns.set("devices", Value::List(devices.clone()));
    if devices.is_empty() && !t(ns, "subvol") {
        return err(out, "btrfs must be given a list of partitions");
    } else if devices.is_empty() {
        return err(out, "btrfs subvol requires specification of parent volume");
    }
    if t(ns, "subvol") && !t(ns, "name") {
        return err(out, "btrfs subvolume requires a name");
    }
    if ctx.class != "F17_BTRFS" && (t(ns, "preexist") || !t(ns, "format")) && t(ns, "mkfsopts") {
        err(
            out,
            "--mkfsoptions with --noformat or --useexisting has no effect.",
        );
    }
}

fn volgroup(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let list = |v: &Value| match v {
        Value::List(l) => l.clone(),
        Value::None => vec![],
        v => vec![v.clone()],
    };
    let mut parts = list(ns.get("partitions"));
    let mut name = list(ns.get("name"));
    if parts.is_empty() {
        if !ctx.extras.is_empty() {
            parts = ctx.extras.iter().map(|e| Value::Str(e.clone())).collect();
        } else if !name.is_empty() {
            parts = name[1..].to_vec();
            name.truncate(1);
        }
    }
    // only the first name word is the VG name (pykickstart's vgname); keep the model canonical
    name.truncate(1);
    ns.set("partitions", Value::List(parts.clone()));
    ns.set("name", Value::List(name.clone()));
    if matches!(ns.get("format"), Value::Bool(false)) {
        ns.set("preexist", Value::Bool(true));
    }
    if name.is_empty() {
        out.push(Issue::Err("volgroup must be given a VG name".into()));
    } else if parts.is_empty() && !t(ns, "preexist") {
        out.push(Issue::Err(
            "volgroup must be given a list of partitions".into(),
        ));
    } else if !parts.is_empty() && t(ns, "preexist") {
        out.push(Issue::Err(
            "Members may not be specified for preexisting volgroup".into(),
        ));
    } else if matches!(ns.get("reserved_space"), Value::Int(x) if *x < 0) {
        out.push(Issue::Err(
            "Volume group reserved space must be a positive integer.".into(),
        ));
    } else if matches!(ns.get("reserved_percent"), Value::Int(x) if !(1..100).contains(x)) {
        out.push(Issue::Err(
            "Volume group reserved space percentage must be between 1 and 99.".into(),
        ));
    }
}

fn network(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    if ctx.is("RHEL7_Network") {
        if let Some(m) = s(ns, "interfacename").and_then(interface_name_error) {
            return err(out, &m);
        }
    }
    if ctx.is("F22_Network") || ctx.is("RHEL7_Network") {
        if let Some(opts) = s(ns, "bridgeopts").filter(|o| !o.is_empty()) {
            if !t(ns, "bridgeslaves") {
                return err(
                    out,
                    "Option --bridgeopts requires --bridgeslaves to be specified",
                );
            }
            let bad = opts.split(',').any(|o| {
                let value = o.split_once('=').map(|x| x.1).unwrap_or("");
                value.is_empty() || value.contains('=')
            });
            if bad {
                return err(
                    out,
                    "Bad format of --bridgeopts, expecting key=value options separated by ','",
                );
            }
        }
    }
    if ctx.is("F24_Network") && t(ns, "noipv4") {
        ns.set("bootProto", Value::None);
    }
    if (ctx.is("F27_Network") || ctx.is("RHEL7_Network"))
        && s(ns, "bindto") == Some("mac")
        && t(ns, "vlanid")
        && !t(ns, "bondopts")
    {
        return err(out, "--bindto=mac is not supported for this type of device");
    }
    if ctx.is("F39_Network") && !t(ns, "device") {
        for (dest, opt) in [
            ("ipv4_dns_search", "--ipv4-dns-search"),
            ("ipv6_dns_search", "--ipv6-dns-search"),
            ("ipv4_ignore_auto_dns", "--ipv4-ignore-auto-dns"),
            ("ipv6_ignore_auto_dns", "--ipv6-ignore-auto-dns"),
        ] {
            if t(ns, dest) {
                return err(
                    out,
                    &format!("Option {opt} requires --device to be specified"),
                );
            }
        }
    }
}

/// Python `int()` of a VLAN id candidate (`None`: not a number; too big for i64: i64::MAX).
fn vlan_int(s: &str) -> Option<i64> {
    match crate::text::py_int(s) {
        Ok(v) => Some(v),
        Err(true) => Some(i64::MAX),
        Err(false) => None,
    }
}

/// pykickstart's `validate_network_interface_name` (RHEL7 `--interfacename`): a `.` or a
/// leading `vlan` must be followed by a VLAN id in range.
fn interface_name_error(name: &str) -> Option<String> {
    let mut vlan_id = None;
    if let Some((prefix, id)) = name.split_once('.') {
        if prefix == "vlan" {
            return Some("When using the <prefix>.<vlan id> interface name notation, <prefix> can't be equal to 'vlan'.".into());
        }
        match vlan_int(id) {
            Some(v) => vlan_id = Some(v),
            None => {
                return Some(
                    "If network --interfacename contains a '.', valid vlan id should follow."
                        .into(),
                );
            }
        }
    }
    if let Some(id) = name.strip_prefix("vlan") {
        match vlan_int(id) {
            Some(v) => vlan_id = Some(v),
            None => {
                return Some(
                    "If network --interfacename starts with 'vlan', valid vlan id should follow."
                        .into(),
                );
            }
        }
    }
    match vlan_id {
        Some(v) if !(0..=4095).contains(&v) => {
            Some("The vlan id is out of the 0-4095 vlan id range.".into())
        }
        _ => None,
    }
}

fn list_of(v: &Value) -> Vec<Value> {
    match v {
        Value::List(l) => l.clone(),
        Value::None => vec![],
        v => vec![v.clone()],
    }
}

fn raid(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    if ctx.extras.iter().any(|a| a.starts_with('-')) {
        return out.push(unexpected(ctx));
    }
    if !ctx.is("F43_Raid") {
        // before F43 the --device callback drops an "md" prefix (md0 is stored as 0)
        if let Some(d) = s(ns, "device").and_then(|d| d.strip_prefix("md")) {
            let d = d.to_string();
            ns.set("device", Value::Str(d));
        }
    }
    let mut parts = list_of(ns.get("partitions"));
    if parts.is_empty() && !ctx.extras.is_empty() {
        parts = ctx.extras.iter().map(|e| Value::Str(e.clone())).collect();
        ns.set("partitions", Value::List(parts.clone()));
    }
    if matches!(ns.get("format"), Value::Bool(false)) {
        ns.set("preexist", Value::Bool(true));
    }
    let preexist = t(ns, "preexist");
    if parts.is_empty() && !preexist {
        return err(out, "Partitions required for raid");
    }
    if !parts.is_empty() && preexist {
        return err(
            out,
            "Members may not be specified for preexisting RAID device",
        );
    }
    if !preexist && !t(ns, "level") {
        return err(out, "RAID Partition defined without RAID level");
    }
    if preexist && s(ns, "device") == Some("") {
        return err(out, "Device required for preexisting RAID device");
    }
    if ctx.is("F23_Raid") && !mkfs_checks(ns, out) {
        return;
    }
    if ctx.is("F29_Raid") && !pbkdf_check(ns, out) {
        return;
    }
    if ctx.is("RHEL8_Raid") && s(ns, "fstype") == Some("btrfs") {
        err(out, "Btrfs file system is not supported");
    }
}

fn stratispool(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    let mut devs = list_of(ns.get("blockdevs"));
    let mut name = list_of(ns.get("name"));
    if devs.is_empty() {
        if !ctx.extras.is_empty() {
            devs = ctx.extras.iter().map(|e| Value::Str(e.clone())).collect();
        } else if !name.is_empty() {
            devs = name[1..].to_vec();
            name.truncate(1);
        }
    }
    name.truncate(1);
    ns.set("blockdevs", Value::List(devs.clone()));
    ns.set("name", Value::List(name.clone()));
    if name.is_empty() {
        return err(out, "stratispool must be given a pool name");
    }
    let preexist = t(ns, "preexist");
    if devs.is_empty() && !preexist {
        return err(out, "stratispool must be given a list of blockdevs");
    }
    if !devs.is_empty() && preexist {
        return err(
            out,
            "Members may not be specified for preexisting stratispool",
        );
    }
    if t(ns, "passphrase") && !t(ns, "encrypted") {
        err(out, "--passphrase can only be used with --encrypted");
    }
}

fn driverdisk(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: &str| out.push(Issue::Err(m.to_string()));
    let part = list_of(ns.get("partition"));
    if part.len() > 1 {
        return err(
            out,
            "Only one partition may be specified for driverdisk command.",
        );
    }
    if !ctx.extras.is_empty() {
        return out.push(unexpected(ctx));
    }
    let (p, src, bios) = (!part.is_empty(), t(ns, "source"), t(ns, "biospart"));
    if p && src {
        return err(
            out,
            "Only one of --source and partition may be specified for driverdisk command.",
        );
    }
    if p && bios {
        return err(
            out,
            "Only one of --biospart and partition may be specified for driverdisk command.",
        );
    }
    if src && bios {
        return err(
            out,
            "Only one of --biospart and --source may be specified for driverdisk command.",
        );
    }
    if !p && !src && !bios {
        err(
            out,
            "One of --source, --biospart, or partition must be specified for driverdisk command.",
        );
    }
}

fn realm(ctx: &Ctx, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: String| out.push(Issue::Err(m));
    if ctx
        .prev
        .is_some_and(|p| p.get("raw").as_str().is_some_and(|r| !r.is_empty()))
    {
        return err(
            out,
            "The realm command 'join' should only be specified once".into(),
        );
    }
    let Some(first) = ctx.args.first() else {
        return err(out, "Missing realm command arguments".into());
    };
    if first != "join" {
        return err(out, format!("Unsupported realm '{first}' command"));
    }
    // getopt long options of `realm join`
    const WITH_VALUE: [&str; 5] = [
        "client-software",
        "server-software",
        "membership-software",
        "one-time-password",
        "computer-ou",
    ];
    let mut remaining = Vec::new();
    let mut it = ctx.args[1..].iter();
    while let Some(a) = it.next() {
        if a == "--" {
            remaining.extend(it.by_ref().cloned());
            break;
        }
        let Some(opt) = a.strip_prefix("--") else {
            remaining.push(a.clone());
            remaining.extend(it.by_ref().cloned());
            break;
        };
        let (name, value) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let all = WITH_VALUE.iter().chain(["no-password"].iter());
        let hits: Vec<&&str> = all.filter(|o| o.starts_with(name)).collect();
        let exact = hits.iter().find(|o| ***o == name);
        let full = match (exact, hits.len()) {
            (Some(e), _) => **e,
            (None, 1) => *hits[0],
            (None, 0) => {
                return err(
                    out,
                    format!("Invalid realm arguments: option --{name} not recognized"),
                );
            }
            _ => {
                return err(
                    out,
                    format!("Invalid realm arguments: option --{name} not a unique prefix"),
                );
            }
        };
        if WITH_VALUE.contains(&full) {
            if value.is_none() && it.next().is_none() {
                return err(
                    out,
                    format!("Invalid realm arguments: option --{full} requires argument"),
                );
            }
        } else if value.is_some() {
            return err(
                out,
                format!("Invalid realm arguments: option --{full} must not have an argument"),
            );
        }
    }
    if remaining.len() != 1 {
        err(out, "Specify only one realm to join".into());
    }
}

fn nvdimm(ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: String| out.push(Issue::Err(m));
    let action = match ns.get("action") {
        Value::List(l) => l.first().and_then(Value::as_str).unwrap_or("").to_string(),
        v => v.as_str().unwrap_or("").to_string(),
    };
    let (nsp, devs) = (t(ns, "namespace"), t(ns, "blockdevs"));
    if nsp && devs {
        return err(
            out,
            "Only one of --namespace and --blockdevs device specifications can be used".into(),
        );
    }
    if action == "reconfigure" {
        if !nsp {
            return err(
                out,
                format!("Action {action} requires --namespace argument to be set"),
            );
        }
        let mode = s(ns, "mode").unwrap_or("");
        if mode == "sector" && !t(ns, "sectorsize") {
            err(
                out,
                format!(
                    "Action {action} with mode {mode} requires --sectorsize argument to be set"
                ),
            );
        }
    } else if action == "use" && !nsp && !devs {
        err(
            out,
            format!("Action {action} requires --namespace or --blockdevs argument to be set"),
        );
    }
}

fn ignoredisk(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let mut n = usize::from(merged(ctx, ns, "ignoredisk").truthy())
        + usize::from(merged(ctx, ns, "onlyuse").truthy());
    let with_interactive = ctx.is("RHEL6_IgnoreDisk") && !ctx.is("F29_IgnoreDisk");
    if with_interactive {
        n += usize::from(merged(ctx, ns, "interactive").truthy());
    }
    if n != 1 {
        out.push(Issue::Err(if with_interactive {
            "One of --drives , --only-use , or --interactive must be specified for ignoredisk command.".into()
        } else {
            "One of --drives or --only-use must be specified for ignoredisk command.".into()
        }));
    }
}

fn snapshot(ctx: &Ctx, ns: &mut Namespace, out: &mut Vec<Issue>) {
    let err = |out: &mut Vec<Issue>, m: String| out.push(Issue::Err(m));
    let name = ns.get("name").clone();
    if ctx.items().any(|it| it.get("name") == &name) {
        return err(
            out,
            format!(
                "Snapshot with the name {} has been already defined!",
                name.as_str().unwrap_or("None")
            ),
        );
    }
    if ns.get("when").is_none() {
        return err(out, "Snapshot \"when\" parameter must be specified!".into());
    }
    let origin = s(ns, "origin").unwrap_or("");
    let groups: Vec<&str> = origin.split('/').collect();
    if groups.len() != 2 || groups[0].is_empty() || groups[1].is_empty() {
        err(
            out,
            format!("Snapshot origin {origin} must be specified by VG/LV!"),
        );
    }
}

/// The identity of a list-command item for pykickstart's duplicate check (its data class's
/// `__eq__`), with the warning to give when an equal item already exists. `None`: never a duplicate.
pub fn duplicate_key(class: &str, ns: &Namespace) -> Option<(String, String)> {
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
    let key = |k: &str| first(ns.get(k)).repr();
    let k = kind(class);
    let (id, msg) = match k {
        "Partition" => {
            let mp = first(ns.get("mntpoint"));
            if mp == Value::Str("swap".into()) {
                return None;
            }
            (
                key("mntpoint"),
                format!(
                    "A partition with the mountpoint {} has already been defined.",
                    disp(&mp)
                ),
            )
        }
        "Network" => (
            key("device"),
            format!(
                "A network device with the name {} has already been defined.",
                disp(ns.get("device"))
            ),
        ),
        "User" => (
            key("name"),
            format!(
                "A user with the name {} has already been defined.",
                disp(ns.get("name"))
            ),
        ),
        "Group" => (
            key("name"),
            format!(
                "A group with the name {} has already been defined.",
                disp(ns.get("name"))
            ),
        ),
        "Repo" => (
            key("name"),
            format!(
                "A repo with the name {} has already been defined.",
                disp(ns.get("name"))
            ),
        ),
        "SshKey" => (
            key("username"),
            format!(
                "An ssh user with the name {} has already been defined.",
                disp(ns.get("username"))
            ),
        ),
        "VolGroup" => (
            key("name"),
            format!(
                "A volgroup with the name {} has already been defined.",
                disp(&first(ns.get("name")))
            ),
        ),
        "LogVol" => (
            format!("{}\0{}", key("name"), key("vgname")),
            format!(
                "A logical volume with the name {} has already been defined in volume group {}.",
                disp(ns.get("name")),
                disp(ns.get("vgname"))
            ),
        ),
        "Raid" => (
            key("device"),
            format!(
                "A RAID device with the name {} has already been defined.",
                disp(ns.get("device"))
            ),
        ),
        "BTRFS" => (
            key("mntpoint"),
            format!(
                "A btrfs volume with the mountpoint {} has already been defined.",
                disp(&first(ns.get("mntpoint")))
            ),
        ),
        "Fcoe" => (
            key("nic"),
            format!(
                "A FCOE device with the name {} has already been defined.",
                disp(ns.get("nic"))
            ),
        ),
        "ZFCP" => (
            format!("{}\0{}\0{}", key("devnum"), key("wwpn"), key("fcplun")),
            "A zfcp with this information has already been defined.".into(),
        ),
        "SshPw" => (
            key("username"),
            format!(
                "An ssh user with the name {} has already been defined.",
                disp(ns.get("username"))
            ),
        ),
        "DmRaid" => {
            let name = disp(ns.get("name"));
            let name = name.rsplit('/').next().unwrap_or("").to_string();
            (
                format!("{name}\0{}", ns.get("devices").repr()),
                format!(
                    "A DM RAID device with the name {name} and devices {} has already been defined.",
                    ns.get("devices").repr()
                ),
            )
        }
        "Device" => (
            key("moduleName"),
            format!(
                "A module with the name {} has already been defined.",
                disp(ns.get("moduleName"))
            ),
        ),
        "StratisFs" => (
            format!("{}\0{}", key("name"), key("poolname")),
            format!(
                "A stratisfs with the name {} has already been defined in pool {}.",
                disp(ns.get("name")),
                disp(ns.get("poolname"))
            ),
        ),
        "StratisPool" => (
            key("name"),
            format!(
                "A stratispool with the name {} has already been defined.",
                disp(&first(ns.get("name")))
            ),
        ),
        _ => return None,
    };
    Some((id, msg))
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
