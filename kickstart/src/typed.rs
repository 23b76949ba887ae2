//! Typed views of the commands image builders consume. Each function reads the generic
//! [`Command`] options (argparse `dest` names) into a plain struct; list commands
//! return one item per use, in file order.

use crate::argparse::{Namespace, Value};
use crate::model::{Command, Kickstart, Location};

fn st(ns: &Namespace, k: &str) -> Option<String> {
    match ns.get(k) {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::List(l) => l.first().and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    }
}
fn b(ns: &Namespace, k: &str) -> bool {
    ns.get(k).truthy()
}
fn int(ns: &Namespace, k: &str) -> Option<i64> {
    match ns.get(k) {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}
fn list(ns: &Namespace, k: &str) -> Vec<String> {
    match ns.get(k) {
        Value::List(l) => l
            .iter()
            .flat_map(|v| match v {
                Value::List(inner) => inner
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                Value::Str(s) => vec![s.clone()],
                _ => vec![],
            })
            .collect(),
        Value::Str(s) => vec![s.clone()],
        _ => vec![],
    }
}

macro_rules! typed {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty = $get:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct $name {
            /// Where the command was given.
            pub at: Location,
            $($(#[$fm])* pub $field: $ty,)*
        }
        impl $name {
            /// Read from a parsed command.
            #[allow(clippy::redundant_closure_call)]
            pub fn from_command(c: &Command) -> Self {
                let ns = &c.args;
                let _ = ns;
                $name { at: c.location.clone(), $($field: ($get)(ns, c),)* }
            }
        }
    };
}

typed!(/// `ostreesetup`
OstreeSetup {
    /// `--osname`
    osname: String = |n: &Namespace, _| st(n, "osname").unwrap_or_default(),
    /// `--remote` (defaults to the osname)
    remote: String = |n: &Namespace, _| st(n, "remote").or_else(|| st(n, "osname")).unwrap_or_default(),
    /// `--url`
    url: String = |n: &Namespace, _| st(n, "url").unwrap_or_default(),
    /// `--ref`
    reference: String = |n: &Namespace, _| st(n, "ref").unwrap_or_default(),
    /// `--nogpg`
    nogpg: bool = |n: &Namespace, _| b(n, "nogpg"),
});

typed!(/// `ostreecontainer`
OstreeContainer {
    /// `--url`
    url: String = |n: &Namespace, _| st(n, "url").unwrap_or_default(),
    /// `--stateroot`
    stateroot: Option<String> = |n: &Namespace, _| st(n, "stateroot"),
    /// `--transport`
    transport: Option<String> = |n: &Namespace, _| st(n, "transport"),
    /// `--remote`
    remote: Option<String> = |n: &Namespace, _| st(n, "remote"),
    /// `--no-signature-verification`
    no_signature_verification: bool = |n: &Namespace, _| b(n, "noSignatureVerification"),
});

typed!(/// `bootc`
Bootc {
    /// `--source-imgref`
    source_imgref: String = |n: &Namespace, _| st(n, "sourceImgRef").unwrap_or_default(),
    /// `--target-imgref`
    target_imgref: Option<String> = |n: &Namespace, _| st(n, "targetImgRef"),
    /// `--stateroot`
    stateroot: Option<String> = |n: &Namespace, _| st(n, "stateroot"),
    /// `--bootloader`
    bootloader: Option<String> = |n: &Namespace, _| st(n, "bootloader"),
    /// `--composefs`
    composefs: bool = |n: &Namespace, _| b(n, "composefs"),
});

typed!(/// `bootloader`
Bootloader {
    /// `--append`
    append: Option<String> = |n: &Namespace, _| st(n, "appendLine"),
    /// `--location` (mbr, partition, none, boot)
    location: String = |n: &Namespace, _| st(n, "location").unwrap_or_else(|| "mbr".into()),
    /// `--password`/`--md5pass`
    password: Option<String> = |n: &Namespace, _| st(n, "password"),
    /// `--iscrypted`
    is_crypted: bool = |n: &Namespace, _| b(n, "isCrypted"),
    /// `--timeout`
    timeout: Option<i64> = |n: &Namespace, _| int(n, "timeout"),
    /// `--driveorder`
    driveorder: Vec<String> = |n: &Namespace, _| list(n, "driveorder"),
    /// `--boot-drive`
    boot_drive: Option<String> = |n: &Namespace, _| st(n, "bootDrive"),
    /// `--disabled`
    disabled: bool = |n: &Namespace, _| b(n, "disabled"),
    /// `--nombr`
    nombr: bool = |n: &Namespace, _| b(n, "nombr"),
    /// `--leavebootorder`
    leavebootorder: bool = |n: &Namespace, _| b(n, "leavebootorder"),
    /// `--extlinux`
    extlinux: bool = |n: &Namespace, _| b(n, "extlinux"),
    /// `--sdboot`
    sdboot: bool = |n: &Namespace, _| b(n, "sdboot"),
});

typed!(/// `part`/`partition`
Partition {
    /// Mount point (normalised), `swap`, `pv.N`, `raid.N`, `biosboot`
    mountpoint: String = |n: &Namespace, _| st(n, "mntpoint").unwrap_or_default(),
    /// `--size` (MiB)
    size: Option<i64> = |n: &Namespace, _| int(n, "size"),
    /// `--maxsize` (MiB)
    maxsize: Option<i64> = |n: &Namespace, _| int(n, "maxSizeMB"),
    /// `--grow`
    grow: bool = |n: &Namespace, _| b(n, "grow"),
    /// `--fstype`
    fstype: Option<String> = |n: &Namespace, _| st(n, "fstype"),
    /// `--label`
    label: Option<String> = |n: &Namespace, _| st(n, "label"),
    /// `--fsoptions`
    fsoptions: Option<String> = |n: &Namespace, _| st(n, "fsopts"),
    /// `--mkfsoptions`
    mkfsoptions: Option<String> = |n: &Namespace, _| st(n, "mkfsopts"),
    /// `--ondisk`
    disk: Option<String> = |n: &Namespace, _| st(n, "disk"),
    /// `--onpart`
    onpart: Option<String> = |n: &Namespace, _| st(n, "onPart"),
    /// `--asprimary`
    primary: bool = |n: &Namespace, _| b(n, "primOnly"),
    /// `--noformat` inverted
    format: bool = |n: &Namespace, _| !matches!(n.get("format"), Value::Bool(false)),
    /// `--encrypted`
    encrypted: bool = |n: &Namespace, _| b(n, "encrypted"),
});

typed!(/// `autopart`
AutoPart {
    /// `--type` (pykickstart constant: 0 plain, 1 btrfs, 2 lvm, 3 thinp, 4 stratis)
    kind: Option<i64> = |n: &Namespace, _| int(n, "type"),
    /// `--fstype`
    fstype: Option<String> = |n: &Namespace, _| st(n, "fstype"),
    /// `--nohome`
    nohome: bool = |n: &Namespace, _| b(n, "nohome"),
    /// `--noboot`
    noboot: bool = |n: &Namespace, _| b(n, "noboot"),
    /// `--noswap`
    noswap: bool = |n: &Namespace, _| b(n, "noswap"),
    /// `--encrypted`
    encrypted: bool = |n: &Namespace, _| b(n, "encrypted"),
});

typed!(/// `clearpart`
ClearPart {
    /// pykickstart constant: `--linux` 0, `--all` 1, `--none` 2, `--list` 3
    kind: Option<i64> = |n: &Namespace, _| int(n, "type"),
    /// `--drives`
    drives: Vec<String> = |n: &Namespace, _| list(n, "drives"),
    /// `--list`
    devices: Vec<String> = |n: &Namespace, _| list(n, "devices"),
    /// `--initlabel`
    initlabel: bool = |n: &Namespace, _| b(n, "initAll"),
    /// `--disklabel`
    disklabel: Option<String> = |n: &Namespace, _| st(n, "disklabel"),
});

typed!(/// `reqpart`
ReqPart { /// `--add-boot`
    add_boot: bool = |n: &Namespace, _| b(n, "addBoot") });

typed!(/// `zerombr`
ZeroMbr {});

typed!(/// `ignoredisk`
IgnoreDisk {
    /// `--drives`
    drives: Vec<String> = |n: &Namespace, _| list(n, "ignoredisk"),
    /// `--only-use`
    only_use: Vec<String> = |n: &Namespace, _| list(n, "onlyuse"),
});

typed!(/// `volgroup`
VolGroup {
    /// VG name
    name: String = |n: &Namespace, _| st(n, "name").unwrap_or_default(),
    /// Member partitions
    partitions: Vec<String> = |n: &Namespace, _| list(n, "partitions"),
    /// `--pesize` (KiB)
    pesize: Option<i64> = |n: &Namespace, _| int(n, "pesize"),
    /// `--useexisting`/`--noformat`
    preexist: bool = |n: &Namespace, _| b(n, "preexist"),
    /// `--reserved-space` (MiB)
    reserved_space: Option<i64> = |n: &Namespace, _| int(n, "reserved_space"),
    /// `--reserved-percent`
    reserved_percent: Option<i64> = |n: &Namespace, _| int(n, "reserved_percent"),
});

typed!(/// `logvol`
LogVol {
    /// Mount point
    mountpoint: String = |n: &Namespace, _| st(n, "mntpoint").unwrap_or_default(),
    /// `--name`
    name: String = |n: &Namespace, _| st(n, "name").unwrap_or_default(),
    /// `--vgname`
    vgname: String = |n: &Namespace, _| st(n, "vgname").unwrap_or_default(),
    /// `--size`
    size: Option<i64> = |n: &Namespace, _| int(n, "size"),
    /// `--percent`
    percent: Option<i64> = |n: &Namespace, _| int(n, "percent"),
    /// `--grow`
    grow: bool = |n: &Namespace, _| b(n, "grow"),
    /// `--fstype`
    fstype: Option<String> = |n: &Namespace, _| st(n, "fstype"),
    /// `--label`
    label: Option<String> = |n: &Namespace, _| st(n, "label"),
    /// `--maxsize` (MiB)
    maxsize: Option<i64> = |n: &Namespace, _| int(n, "maxSizeMB"),
    /// `--fsoptions`
    fsoptions: Option<String> = |n: &Namespace, _| st(n, "fsopts"),
    /// `--thinpool`
    thin_pool: bool = |n: &Namespace, _| b(n, "thin_pool"),
    /// `--thin`
    thin_volume: bool = |n: &Namespace, _| b(n, "thin_volume"),
    /// `--poolname`
    pool_name: Option<String> = |n: &Namespace, _| st(n, "pool_name"),
    /// `--useexisting`/`--noformat`
    preexist: bool = |n: &Namespace, _| b(n, "preexist"),
    /// `--encrypted`
    encrypted: bool = |n: &Namespace, _| b(n, "encrypted"),
});

typed!(/// `raid`
Raid {
    /// Mount point
    mountpoint: String = |n: &Namespace, _| st(n, "mntpoint").unwrap_or_default(),
    /// `--device`
    device: Option<String> = |n: &Namespace, _| st(n, "device"),
    /// `--level`
    level: Option<String> = |n: &Namespace, _| st(n, "level"),
    /// Member partitions
    partitions: Vec<String> = |n: &Namespace, _| list(n, "partitions"),
    /// `--fstype`
    fstype: Option<String> = |n: &Namespace, _| st(n, "fstype"),
});

typed!(/// `btrfs`
Btrfs {
    /// `--label`
    label: Option<String> = |n: &Namespace, _| st(n, "label"),
    /// `--subvol`
    subvol: bool = |n: &Namespace, _| b(n, "subvol"),
    /// `--name`
    name: Option<String> = |n: &Namespace, _| st(n, "name"),
    /// `--data`
    data_level: Option<String> = |n: &Namespace, _| st(n, "dataLevel"),
    /// `--metadata`
    metadata_level: Option<String> = |n: &Namespace, _| st(n, "metaDataLevel"),
});

typed!(/// `network`
Network {
    /// `--device`
    device: Option<String> = |n: &Namespace, _| st(n, "device"),
    /// `--bootproto`
    bootproto: Option<String> = |n: &Namespace, _| st(n, "bootProto"),
    /// `--ip`
    ip: Option<String> = |n: &Namespace, _| st(n, "ip"),
    /// `--netmask`
    netmask: Option<String> = |n: &Namespace, _| st(n, "netmask"),
    /// `--gateway`
    gateway: Option<String> = |n: &Namespace, _| st(n, "gateway"),
    /// `--nameserver`
    nameserver: Option<String> = |n: &Namespace, _| st(n, "nameserver"),
    /// `--hostname`
    hostname: Option<String> = |n: &Namespace, _| st(n, "hostname"),
    /// `--onboot`
    onboot: bool = |n: &Namespace, _| !matches!(n.get("onboot"), Value::Bool(false)),
    /// `--activate`
    activate: Option<bool> = |n: &Namespace, _| match n.get("activate") { Value::Bool(x) => Some(*x), _ => None },
    /// `--noipv6`
    noipv6: bool = |n: &Namespace, _| b(n, "noipv6"),
});

typed!(/// `services`
Services {
    /// `--enabled`
    enabled: Vec<String> = |n: &Namespace, _| list(n, "enabled"),
    /// `--disabled`
    disabled: Vec<String> = |n: &Namespace, _| list(n, "disabled"),
});

typed!(/// `rootpw`
RootPw {
    /// The password (plain or crypted)
    password: Option<String> = |n: &Namespace, _| st(n, "password"),
    /// `--iscrypted`
    is_crypted: bool = |n: &Namespace, _| b(n, "isCrypted"),
    /// `--lock`
    lock: bool = |n: &Namespace, _| b(n, "lock"),
    /// `--allow-ssh`
    allow_ssh: bool = |n: &Namespace, _| b(n, "allow_ssh"),
});

typed!(/// `user`
User {
    /// `--name`
    name: String = |n: &Namespace, _| st(n, "name").unwrap_or_default(),
    /// `--password`
    password: Option<String> = |n: &Namespace, _| st(n, "password"),
    /// `--iscrypted`
    is_crypted: bool = |n: &Namespace, _| b(n, "isCrypted"),
    /// `--lock`
    lock: bool = |n: &Namespace, _| b(n, "lock"),
    /// `--groups`
    groups: Vec<String> = |n: &Namespace, _| list(n, "groups"),
    /// `--homedir`
    homedir: Option<String> = |n: &Namespace, _| st(n, "homedir"),
    /// `--shell`
    shell: Option<String> = |n: &Namespace, _| st(n, "shell"),
    /// `--uid`
    uid: Option<i64> = |n: &Namespace, _| int(n, "uid"),
    /// `--gid`
    gid: Option<i64> = |n: &Namespace, _| int(n, "gid"),
    /// `--gecos`
    gecos: Option<String> = |n: &Namespace, _| st(n, "gecos"),
});

typed!(/// `group`
GroupCmd {
    /// `--name`
    name: String = |n: &Namespace, _| st(n, "name").unwrap_or_default(),
    /// `--gid`
    gid: Option<i64> = |n: &Namespace, _| int(n, "gid"),
});

typed!(/// `sshkey`
SshKey {
    /// `--username`
    username: String = |n: &Namespace, _| st(n, "username").unwrap_or_default(),
    /// The key
    key: String = |n: &Namespace, _| st(n, "sshkey").unwrap_or_default(),
});

typed!(/// `firewall`
Firewall {
    /// Enabled (default) or `--disabled`
    enabled: bool = |n: &Namespace, _| !matches!(n.get("enabled"), Value::Bool(false)),
    /// `--port` (`22:tcp`)
    ports: Vec<String> = |n: &Namespace, _| list(n, "ports"),
    /// `--service` and the shortcuts
    services: Vec<String> = |n: &Namespace, _| list(n, "services"),
    /// `--remove-service`
    remove_services: Vec<String> = |n: &Namespace, _| list(n, "remove_services"),
    /// `--trust`
    trusts: Vec<String> = |n: &Namespace, _| list(n, "trusts"),
    /// `--use-system-defaults`
    use_system_defaults: bool = |n: &Namespace, _| b(n, "use_system_defaults"),
});

typed!(/// `selinux`
Selinux {
    /// pykickstart constant: 0 disabled, 1 enforcing, 2 permissive; `None` when no option was given
    mode: Option<i64> = |n: &Namespace, _| int(n, "selinux"),
});

typed!(/// `timezone`
Timezone {
    /// The zone
    timezone: Option<String> = |n: &Namespace, _| st(n, "timezone"),
    /// `--utc`
    utc: bool = |n: &Namespace, _| b(n, "isUtc"),
    /// `--nontp`
    nontp: bool = |n: &Namespace, _| b(n, "nontp"),
    /// `--ntpservers`
    ntpservers: Vec<String> = |n: &Namespace, _| list(n, "ntpservers"),
});

typed!(/// `timesource` (one per use)
Timesource {
    /// `--ntp-server`
    ntp_server: Option<String> = |n: &Namespace, _| st(n, "ntp_server"),
    /// `--ntp-pool`
    ntp_pool: Option<String> = |n: &Namespace, _| st(n, "ntp_pool"),
    /// `--ntp-disable`
    ntp_disable: bool = |n: &Namespace, _| b(n, "ntp_disable"),
    /// `--nts`
    nts: bool = |n: &Namespace, _| b(n, "nts"),
});

typed!(/// `lang`
Lang {
    /// Language
    lang: String = |n: &Namespace, _| st(n, "lang").unwrap_or_default(),
    /// `--addsupport`
    addsupport: Vec<String> = |n: &Namespace, _| list(n, "addsupport"),
});

typed!(/// `keyboard`
Keyboard {
    /// Legacy positional layout
    keyboard: Option<String> = |n: &Namespace, _| st(n, "kbd"),
    /// `--vckeymap`
    vc_keymap: Option<String> = |n: &Namespace, _| st(n, "vc_keymap"),
    /// `--xlayouts`
    x_layouts: Vec<String> = |n: &Namespace, _| list(n, "x_layouts"),
    /// `--switch`
    switch_options: Vec<String> = |n: &Namespace, _| list(n, "switch_options"),
});

typed!(/// `url`
Url {
    /// `--url`
    url: Option<String> = |n: &Namespace, _| st(n, "url"),
    /// `--mirrorlist`
    mirrorlist: Option<String> = |n: &Namespace, _| st(n, "mirrorlist"),
    /// `--metalink`
    metalink: Option<String> = |n: &Namespace, _| st(n, "metalink"),
    /// `--proxy`
    proxy: Option<String> = |n: &Namespace, _| st(n, "proxy"),
    /// `--noverifyssl`
    noverifyssl: bool = |n: &Namespace, _| b(n, "noverifyssl"),
});

typed!(/// `repo`
Repo {
    /// `--name`
    name: String = |n: &Namespace, _| st(n, "name").unwrap_or_default(),
    /// `--baseurl`
    baseurl: Option<String> = |n: &Namespace, _| st(n, "baseurl"),
    /// `--mirrorlist`
    mirrorlist: Option<String> = |n: &Namespace, _| st(n, "mirrorlist"),
    /// `--metalink`
    metalink: Option<String> = |n: &Namespace, _| st(n, "metalink"),
    /// `--cost`
    cost: Option<i64> = |n: &Namespace, _| int(n, "cost"),
    /// `--includepkgs`
    includepkgs: Vec<String> = |n: &Namespace, _| list(n, "includepkgs"),
    /// `--excludepkgs`
    excludepkgs: Vec<String> = |n: &Namespace, _| list(n, "excludepkgs"),
    /// `--install`
    install: bool = |n: &Namespace, _| b(n, "install"),
});

typed!(/// `liveimg`
LiveImg {
    /// `--url`
    url: String = |n: &Namespace, _| st(n, "url").unwrap_or_default(),
    /// `--checksum`
    checksum: Option<String> = |n: &Namespace, _| st(n, "checksum"),
    /// `--proxy`
    proxy: Option<String> = |n: &Namespace, _| st(n, "proxy"),
    /// `--noverifyssl`
    noverifyssl: bool = |n: &Namespace, _| b(n, "noverifyssl"),
});

typed!(/// `reboot`/`shutdown`/`poweroff`/`halt` (last wins)
Reboot {
    /// The command name used (`reboot`, `shutdown`, `poweroff`, `halt`)
    action: String = |_: &Namespace, c: &Command| c.name.clone(),
    /// `--eject`
    eject: bool = |n: &Namespace, _| b(n, "eject"),
    /// `--kexec`
    kexec: bool = |n: &Namespace, _| b(n, "kexec"),
});

typed!(/// `text`/`graphical`/`cmdline` (last wins)
DisplayMode {
    /// The command name used
    mode: String = |_: &Namespace, c: &Command| c.name.clone(),
    /// `--non-interactive`
    non_interactive: bool = |n: &Namespace, _| b(n, "nonInteractive"),
});

typed!(/// `firstboot`
Firstboot {
    /// pykickstart constant: 0 default (`--enable`), 1 skip (`--disable`), 2 `--reconfig`
    mode: Option<i64> = |n: &Namespace, _| int(n, "firstboot"),
});

typed!(/// `eula`
Eula { /// `--agreed`
    agreed: bool = |n: &Namespace, _| b(n, "agreed") });

fn one<T>(ks: &Kickstart, name: &str, f: fn(&Command) -> T) -> Option<T> {
    ks.command(name).map(f)
}
fn many<T>(ks: &Kickstart, name: &str, f: fn(&Command) -> T) -> Vec<T> {
    ks.commands_named(name).map(f).collect()
}

/// `ostreesetup`, if given.
pub fn ostreesetup(ks: &Kickstart) -> Option<OstreeSetup> {
    one(ks, "ostreesetup", OstreeSetup::from_command)
}
/// `ostreecontainer`, if given.
pub fn ostreecontainer(ks: &Kickstart) -> Option<OstreeContainer> {
    one(ks, "ostreecontainer", OstreeContainer::from_command)
}
/// `bootc`, if given.
pub fn bootc(ks: &Kickstart) -> Option<Bootc> {
    one(ks, "bootc", Bootc::from_command)
}
/// `bootloader`, if given.
pub fn bootloader(ks: &Kickstart) -> Option<Bootloader> {
    one(ks, "bootloader", Bootloader::from_command)
}
/// Every `part`/`partition`.
pub fn partitions(ks: &Kickstart) -> Vec<Partition> {
    many(ks, "part", Partition::from_command)
}
/// `autopart`, if given.
pub fn autopart(ks: &Kickstart) -> Option<AutoPart> {
    one(ks, "autopart", AutoPart::from_command)
}
/// `clearpart`, if given.
pub fn clearpart(ks: &Kickstart) -> Option<ClearPart> {
    one(ks, "clearpart", ClearPart::from_command)
}
/// `reqpart`, if given.
pub fn reqpart(ks: &Kickstart) -> Option<ReqPart> {
    one(ks, "reqpart", ReqPart::from_command)
}
/// `zerombr`, if given.
pub fn zerombr(ks: &Kickstart) -> Option<ZeroMbr> {
    one(ks, "zerombr", ZeroMbr::from_command)
}
/// `ignoredisk`, if given.
pub fn ignoredisk(ks: &Kickstart) -> Option<IgnoreDisk> {
    one(ks, "ignoredisk", IgnoreDisk::from_command)
}
/// Every `volgroup`.
pub fn volgroups(ks: &Kickstart) -> Vec<VolGroup> {
    many(ks, "volgroup", VolGroup::from_command)
}
/// Every `logvol`.
pub fn logvols(ks: &Kickstart) -> Vec<LogVol> {
    many(ks, "logvol", LogVol::from_command)
}
/// Every `raid`.
pub fn raids(ks: &Kickstart) -> Vec<Raid> {
    many(ks, "raid", Raid::from_command)
}
/// Every `btrfs`.
pub fn btrfs(ks: &Kickstart) -> Vec<Btrfs> {
    many(ks, "btrfs", Btrfs::from_command)
}
/// Every `network`.
pub fn networks(ks: &Kickstart) -> Vec<Network> {
    many(ks, "network", Network::from_command)
}
/// `services`, if given.
pub fn services(ks: &Kickstart) -> Option<Services> {
    one(ks, "services", Services::from_command)
}
/// `rootpw`, if given.
pub fn rootpw(ks: &Kickstart) -> Option<RootPw> {
    one(ks, "rootpw", RootPw::from_command)
}
/// Every `user`.
pub fn users(ks: &Kickstart) -> Vec<User> {
    many(ks, "user", User::from_command)
}
/// Every `group`.
pub fn groups(ks: &Kickstart) -> Vec<GroupCmd> {
    many(ks, "group", GroupCmd::from_command)
}
/// Every `sshkey`.
pub fn sshkeys(ks: &Kickstart) -> Vec<SshKey> {
    many(ks, "sshkey", SshKey::from_command)
}
/// `firewall`, if given.
pub fn firewall(ks: &Kickstart) -> Option<Firewall> {
    one(ks, "firewall", Firewall::from_command)
}
/// `selinux`, if given.
pub fn selinux(ks: &Kickstart) -> Option<Selinux> {
    one(ks, "selinux", Selinux::from_command)
}
/// `timezone`, if given.
pub fn timezone(ks: &Kickstart) -> Option<Timezone> {
    one(ks, "timezone", Timezone::from_command)
}
/// Every `timesource`.
pub fn timesources(ks: &Kickstart) -> Vec<Timesource> {
    many(ks, "timesource", Timesource::from_command)
}
/// `lang`, if given.
pub fn lang(ks: &Kickstart) -> Option<Lang> {
    one(ks, "lang", Lang::from_command)
}
/// `keyboard`, if given.
pub fn keyboard(ks: &Kickstart) -> Option<Keyboard> {
    one(ks, "keyboard", Keyboard::from_command)
}
/// `url`, if given.
pub fn url(ks: &Kickstart) -> Option<Url> {
    one(ks, "url", Url::from_command)
}
/// Every `repo`.
pub fn repos(ks: &Kickstart) -> Vec<Repo> {
    many(ks, "repo", Repo::from_command)
}
/// `liveimg`, if given.
pub fn liveimg(ks: &Kickstart) -> Option<LiveImg> {
    one(ks, "liveimg", LiveImg::from_command)
}
/// `reboot`/`shutdown`/`poweroff`/`halt`, if given.
pub fn reboot(ks: &Kickstart) -> Option<Reboot> {
    one(ks, "reboot", Reboot::from_command)
}
/// `text`/`graphical`/`cmdline`, if given.
pub fn display_mode(ks: &Kickstart) -> Option<DisplayMode> {
    one(ks, "text", DisplayMode::from_command)
}
/// `firstboot`, if given.
pub fn firstboot(ks: &Kickstart) -> Option<Firstboot> {
    one(ks, "firstboot", Firstboot::from_command)
}
/// `eula`, if given.
pub fn eula(ks: &Kickstart) -> Option<Eula> {
    one(ks, "eula", Eula::from_command)
}
