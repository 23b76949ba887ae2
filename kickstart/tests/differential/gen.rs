//! Seeded generator of kickstart inputs for the differential test, driven by the compiled-in
//! command tables: every command of every version, each option alone and in combinations, valid
//! and invalid values for each option type, missing and extra positionals, conflicting commands,
//! repeated commands, removed/deprecated commands and section headers with their options.
//!
//! Deterministic: the same seed and tables give the same inputs in the same order. A command
//! whose class, parser and conflicts are the same as in an earlier version gets only its bare and
//! base inputs and a seeded sample of its option inputs there (pykickstart runs the same code for
//! it; the sample still checks the version wiring); sections likewise.

use std::collections::{BTreeSet, HashSet};

use kickstart::Version;
use kickstart::tables::{ActionSpec, ParserSpec, tables};

/// One generated input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Syntax version name (`F22`, `RHEL11`).
    pub version: String,
    /// What the input exercises (`option`, `combo`, `conflict`, `section`, …).
    pub kind: &'static str,
    /// The kickstart text.
    pub text: String,
}

/// splitmix64: small, seedable, stable across platforms.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A typical valid use of each command that needs arguments (the tables say which options are
/// required, not which values make sense together).
fn base_args(name: &str) -> Option<&'static str> {
    Some(match name {
        "bootc" => "--source-imgref=quay.io/fedora/fedora-bootc:41",
        "bootloader" => "--location=mbr",
        "btrfs" => "/ btrfs.01 btrfs.02",
        "clearpart" => "--all",
        "device" => "e1000",
        "dmraid" => "--name=dm0 --dev=sda",
        "driverdisk" => "sda1",
        "eula" => "--agreed",
        "fcoe" => "--nic=eth0",
        "firewall" => "--enabled",
        "firstboot" => "--enable",
        "group" => "--name=wheel",
        "harddrive" => "--partition=sda1 --dir=/iso",
        "ignoredisk" => "--drives=sda",
        "iscsi" => "--ipaddr=10.0.0.1",
        "iscsiname" => "iqn.2000-01.com.example:host",
        "keyboard" => "us",
        "lang" => "en_US.UTF-8",
        "liveimg" => "--url=http://example.com/live.img",
        "logging" => "--host=loghost --level=info",
        "logvol" => "/ --name=root --vgname=vg --size=1000",
        "module" => "--name=nodejs",
        "mount" => "/dev/sda1 /home",
        "multipath" => "--name=mp0 --device=sda --rule=x",
        "network" => "--bootproto=dhcp --device=eth0",
        "nfs" => "--server=srv --dir=/export",
        "nvdimm" => "reconfigure --namespace=namespace0.0 --mode=sector",
        "ostreecontainer" => "--url=quay.io/fedora/silverblue:41",
        "ostreesetup" => "--osname=fedora --url=http://example.com/repo --ref=fedora/x86_64",
        "part" | "partition" => "/ --size=1000",
        "raid" => "/ --level=1 --device=md0 raid.01 raid.02",
        "realm" => "join example.com",
        "repo" => "--name=extra --baseurl=http://example.com/repo",
        "rhsm" => "--organization=org --activation-key=key",
        "rootpw" => "secret",
        "selinux" => "--enforcing",
        "services" => "--enabled=sshd",
        "snapshot" => "vg/root --name=snap --when=post-install",
        "sshkey" => "--username=root \"ssh-ed25519 AAAA user@host\"",
        "sshpw" => "--username=root secret",
        "stratisfs" => "/ --name=fs --poolname=pool",
        "stratispool" => "pool sda",
        "syspurpose" => "--role=server",
        "timesource" => "--ntp-server=ntp.example.com",
        "timezone" => "Europe/Prague",
        "updates" => "http://example.com/updates.img",
        "url" => "--url=http://example.com/os",
        "user" => "--name=alice",
        "vnc" => "--password=secret123",
        "volgroup" => "vg pv.01",
        "xconfig" => "--startxonboot",
        "zfcp" => "--devnum=0.0.4000 --wwpn=0x5005076300c213e9 --fcplun=0x5022000000000000",
        _ => return None,
    })
}

fn quote(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '\'', '#']) {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn is_flag(a: &ActionSpec) -> bool {
    matches!(
        a.kind.as_str(),
        "store_true" | "store_false" | "store_const" | "append_const" | "count" | "extend_const"
    )
}

/// Values to try for a value-taking option or positional: valid ones first.
fn values(a: &ActionSpec) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let push = |v: &mut Vec<String>, xs: &[&str]| v.extend(xs.iter().map(|s| s.to_string()));
    if let Some(ch) = &a.choices {
        for c in ch {
            v.push(match c {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        push(&mut v, &["bogus"]);
        return v;
    }
    if let Some(m) = &a.type_map {
        for k in m.keys() {
            v.push(k.clone());
        }
        if let Some(k) = m.keys().next() {
            v.push(k.to_ascii_uppercase());
            v.push(k.to_ascii_lowercase());
        }
        push(&mut v, &["bogus"]);
        return v;
    }
    let d = a.dest.to_ascii_lowercase();
    match a.ty.as_deref() {
        Some("int") => push(&mut v, &["100", "-1", "10GiB"]),
        Some("ksboolean") => push(&mut v, &["yes", "off", "maybe"]),
        Some("commaSplit") => push(&mut v, &["sda,sdb", ","]),
        Some("mountpoint") => push(&mut v, &["/var//log/", "swap", "relative"]),
        Some("part_cb") => push(&mut v, &["sda1", "/dev/sda1", "LABEL=x"]),
        Some("_device_cb") => push(&mut v, &["md0", "0", "home"]),
        Some("_teamslaves_cb") => push(
            &mut v,
            &["eth0,eth1", "eth0'{\"prio\": 100}',eth1", "'{}'", ""],
        ),
        Some("firewall_port_cb") => push(&mut v, &["22", "22:tcp,1234:udp", "ssh"]),
        _ if d.contains("size") || d.contains("space") || d == "percent" => {
            push(&mut v, &["100", "1GiB", "-5", "abc"])
        }
        _ if d.contains("ip") || d.contains("gateway") || d.contains("netmask") => {
            push(&mut v, &["10.0.0.2", "dhcp", "2001:db8::2/64", "not-an-ip"])
        }
        _ if d.contains("nameserver") => push(&mut v, &["10.0.0.1", "10.0.0.1,10.0.0.2", "x"]),
        _ if d.contains("url") || d.contains("mirrorlist") || d.contains("metalink") => {
            push(&mut v, &["http://example.com/x", "nfs:srv:/x", "x"])
        }
        _ if d.contains("bootproto") => {
            push(&mut v, &["dhcp", "static", "bootp", "ibft", "query", "x"])
        }
        _ if d.contains("level") || d.contains("raid") => {
            push(&mut v, &["1", "raid5", "RAID10", "x"])
        }
        _ if d.contains("fstype") => push(&mut v, &["ext4", "swap", "tmpfs", "btrfs", "biosboot"]),
        _ if d.contains("device") || d.contains("disk") || d.contains("drive") => {
            push(&mut v, &["sda", "md0", "", "a,b"])
        }
        _ if d.contains("fsoptions") || d.contains("opts") || d.contains("options") => {
            push(&mut v, &["noatime", "size=100m,nr_inodes=10"])
        }
        _ => push(&mut v, &["x", ""]),
    }
    v
}

/// The option's spellings: each option string, the preferred one first.
fn spellings(a: &ActionSpec) -> Vec<&str> {
    a.opts.iter().map(String::as_str).collect()
}

/// Every way of using one option, as argument strings (already quoted).
fn option_uses(a: &ActionSpec) -> Vec<String> {
    let mut out = Vec::new();
    let names = spellings(a);
    let Some(first) = names.first() else {
        return out;
    };
    if is_flag(a) {
        for n in &names {
            out.push(n.to_string());
        }
        out.push(format!("{first}=x"));
        if a.kind == "count" {
            out.push(format!("{first} {first}"));
        }
        return out;
    }
    let vals = values(a);
    for v in &vals {
        out.push(format!("{first}={}", quote(v)));
    }
    for n in names.iter().skip(1) {
        out.push(format!("{n}={}", quote(&vals[0])));
    }
    match a.nargs.as_str() {
        Some("*") | Some("?") => out.push(first.to_string()),
        Some("+") => out.push(first.to_string()),
        _ => {
            if a.nargs.is_null() {
                // no value at all
                out.push(first.to_string());
            }
        }
    }
    if a.nargs.as_str() == Some("*") || a.nargs.as_u64().is_some_and(|n| n > 1) {
        out.push(format!("{first} a b"));
    }
    if matches!(a.kind.as_str(), "append" | "extend") {
        out.push(format!(
            "{first}={} {first}={}",
            quote(&vals[0]),
            quote(&vals[0])
        ));
    }
    out
}

/// A valid-looking use of one option (for combinations).
fn pick_use(a: &ActionSpec, rng: &mut Rng) -> String {
    let uses = option_uses(a);
    if rng.chance(70) || uses.len() == 1 {
        uses[0].clone()
    } else {
        uses[rng.below(uses.len())].clone()
    }
}

/// Any use of one option, uniformly.
fn pick_any(a: &ActionSpec, rng: &mut Rng) -> String {
    let uses = option_uses(a);
    uses[rng.below(uses.len())].clone()
}

fn positional_words(p: &ParserSpec) -> Vec<String> {
    let mut words = Vec::new();
    for a in p.actions.iter().filter(|a| a.opts.is_empty()) {
        let n = match a.nargs.as_str() {
            Some("*") | Some("?") => 0,
            Some("+") => 1,
            _ => a.nargs.as_u64().unwrap_or(1) as usize,
        };
        let v = values(a);
        for _ in 0..n {
            words.push(quote(&v[0]));
        }
    }
    words
}

/// Base line of a command: the hand-written typical use, or its positionals and required options.
fn base_line(name: &str, p: Option<&ParserSpec>) -> String {
    if let Some(b) = base_args(name) {
        return format!("{name} {b}");
    }
    let Some(p) = p else {
        return name.to_string();
    };
    let mut words = vec![name.to_string()];
    words.extend(positional_words(p));
    for a in p
        .actions
        .iter()
        .filter(|a| a.required && !a.opts.is_empty())
    {
        words.push(option_uses(a).swap_remove(0));
    }
    words.join(" ")
}

fn line_of(name: &str, version: Version) -> String {
    let spec = version.spec();
    let p = spec
        .commands
        .get(name)
        .and_then(|c| c.parser)
        .map(|i| tables().parser(i));
    base_line(name, p)
}

fn section_body(tag: &str) -> &'static str {
    match tag {
        "%packages" => "@core\nvim\n",
        "%certificate" => "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        _ => "echo hello\n",
    }
}

fn section_base(tag: &str) -> &'static str {
    match tag {
        "%certificate" => " --filename=ca.pem --dir=/etc/pki",
        _ => "",
    }
}

/// Every generated input for every version, in a stable order.
pub fn cases(seed: u64) -> Vec<Case> {
    let mut out = Vec::new();
    let mut seen_cmd: HashSet<String> = HashSet::new();
    let mut seen_sec: HashSet<String> = HashSet::new();
    for version in Version::all() {
        let mut rng = Rng::new(seed ^ u64::from(version.id()).wrapping_mul(0x1000_0000_01b3));
        let spec = version.spec();
        let vname = spec.name.clone();
        let mut add = |kind: &'static str, text: String| {
            out.push(Case {
                version: vname.clone(),
                kind,
                text,
            })
        };
        for (name, c) in &spec.commands {
            let parser = c.parser.map(|i| tables().parser(i));
            let sig = format!(
                "{name}\0{}\0{:?}\0{:?}\0{}",
                c.class, c.parser, c.conflicts, c.status
            );
            let first_time = seen_cmd.insert(sig);
            add("bare", format!("{name}\n"));
            if c.status != "ok" || c.raw {
                add("bare", format!("{name} --bogus\n"));
                add("bare", format!("{name} arg\n"));
                continue;
            }
            let base = base_line(name, parser);
            add("base", format!("{base}\n"));
            if !first_time {
                // same code as in an earlier version: a sample of its option inputs only
                if let Some(p) = parser {
                    for a in p.actions.iter().filter(|a| !a.opts.is_empty()) {
                        for u in option_uses(a) {
                            if rng.chance(4) {
                                add("option", format!("{base} {u}\n"));
                            }
                        }
                    }
                }
                continue;
            }
            add("repeat", format!("{base}\n{base}\n"));
            add("extra-positional", format!("{base} extra\n"));
            add("extra-positional", format!("{base} extra1 extra2\n"));
            add("unknown-option", format!("{base} --no-such-option\n"));
            for other in &c.conflicts {
                if spec.commands.contains_key(other) {
                    let o = line_of(other, version);
                    add("conflict", format!("{base}\n{o}\n"));
                    add("conflict", format!("{o}\n{base}\n"));
                }
            }
            let Some(p) = parser else { continue };
            // the base without its positionals, and with only its positionals
            let pos = positional_words(p);
            if !pos.is_empty() {
                let rest: Vec<&str> = base
                    .split(' ')
                    .skip(1)
                    .filter(|w| w.starts_with("--"))
                    .collect();
                add("missing-positional", format!("{name} {}\n", rest.join(" ")));
            }
            let opts: Vec<&ActionSpec> = p.actions.iter().filter(|a| !a.opts.is_empty()).collect();
            for a in &opts {
                for (i, u) in option_uses(a).into_iter().enumerate() {
                    add("option", format!("{base} {u}\n"));
                    if i == 0 {
                        // alone, in the separate-word form (`--opt value`)
                        let sep = u.replacen('=', " ", 1);
                        add("option-alone", format!("{name} {sep}\n"));
                    }
                }
            }
            // every pair of options once, each with a seeded pick of its uses (requirements
            // and exclusions between two options)
            for (i, a) in opts.iter().enumerate() {
                for b in &opts[i + 1..] {
                    if a.dest == b.dest || !rng.chance(35) {
                        continue;
                    }
                    let (ua, ub) = (pick_any(a, &mut rng), pick_any(b, &mut rng));
                    add("pair", format!("{base} {ua} {ub}\n"));
                }
            }
            // every use of a value option together with each flag (e.g. --fstype=tmpfs --grow)
            let flags: Vec<&&ActionSpec> = opts.iter().filter(|a| is_flag(a)).collect();
            for a in opts.iter().filter(|a| {
                !is_flag(a)
                    && (a.choices.is_some() || a.type_map.is_some() || a.dest.contains("fstype"))
            }) {
                for u in option_uses(a) {
                    for f in &flags {
                        if rng.chance(12) {
                            add("value-flag", format!("{base} {u} {}\n", f.opts[0]));
                        }
                    }
                }
            }
            if opts.len() >= 2 {
                let n_combos = 3 + opts.len() / 2;
                for _ in 0..n_combos {
                    let k = 2 + rng.below(3.min(opts.len() - 1));
                    let mut chosen = BTreeSet::new();
                    while chosen.len() < k {
                        chosen.insert(rng.below(opts.len()));
                    }
                    let words: Vec<String> = chosen
                        .iter()
                        .map(|&i| pick_use(opts[i], &mut rng))
                        .collect();
                    let with_base = rng.chance(75);
                    let head = if with_base {
                        base.clone()
                    } else {
                        name.clone()
                    };
                    add("combo", format!("{head} {}\n", words.join(" ")));
                }
            }
        }
        for (tag, &pi) in &spec.sections {
            let p = tables().parser(pi);
            let first_time = seen_sec.insert(format!("{tag}\0{pi}"));
            let body = section_body(tag);
            let hb = section_base(tag);
            add("section", format!("{tag}{hb}\n{body}%end\n"));
            add("section", format!("{tag}{hb}\n{body}"));
            add("section", format!("{tag}{hb}\n%end\n"));
            add("section", format!("{tag}{hb} extra\n{body}%end\n"));
            add(
                "section",
                format!("{tag}{hb} --no-such-option\n{body}%end\n"),
            );
            add(
                "section",
                format!("{tag}{hb}\n{body}%end\n{tag}{hb}\n{body}%end\n"),
            );
            let opts: Vec<&ActionSpec> = p.actions.iter().filter(|a| !a.opts.is_empty()).collect();
            let sample = if first_time { 100 } else { 5 };
            for a in &opts {
                for u in option_uses(a) {
                    if rng.chance(sample) {
                        add("section-option", format!("{tag}{hb} {u}\n{body}%end\n"));
                    }
                }
            }
            for _ in 0..if first_time { 8 } else { 1 } {
                if opts.len() < 2 {
                    break;
                }
                let a = opts[rng.below(opts.len())];
                let b = opts[rng.below(opts.len())];
                let (ua, ub) = (pick_use(a, &mut rng), pick_use(b, &mut rng));
                add(
                    "section-combo",
                    format!("{tag}{hb} {ua} {ub}\n{body}%end\n"),
                );
            }
        }
        for text in [
            "%packages\n@^workstation-product-environment\n-@^x\n@core --nodefaults\n@base --optional\n@x --nodefaults --optional\n-vim\n%end\n",
            "%packages\n-\n%end\n",
            "%packages\n@\n%end\n",
            "%packages --default --nobase\n%end\n",
            "%packages --default --nocore\n%end\n",
            "%unknown\n%end\n",
            "%end\n",
            "%addon com_example_x --opt\nbody\n%end\n",
            "%anaconda\npwpolicy root --minlen=6\n%end\n",
            "%post\n%end\n%post --nochroot\necho\n%end\n",
            "%pre\n%packages\n%end\n",
            "part /tmp --fstype=tmpfs --size=100 --grow\n",
            "part /tmp --fstype=tmpfs --size=100 --maxsize=200\n",
            "part /tmp --fstype=tmpfs --size=100 --fsoptions=size=100m\n",
            "raid /data --level=1 --device=md0 --useexisting\n",
            "raid /data --device=md0 --noformat\n",
            "raid /data --device=md0 raid.01\n",
        ] {
            add("section", text.to_string());
        }
    }
    out
}
