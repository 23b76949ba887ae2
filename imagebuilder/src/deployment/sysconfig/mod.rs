//! System configuration from the kickstart, written into a deployment.
//!
//! Everything here is a plain function over a [`Target`]: the deployed root (for OSTree,
//! `…/ostree/deploy/OSNAME/deploy/COMMIT.0`, whose `/etc` is writable) and the directory that is
//! mounted on its `/var` at boot (for OSTree the stateroot's `…/ostree/deploy/OSNAME/var`). No
//! program of the target is run: the account databases, unit symlinks and configuration files are
//! edited directly, so this works on any host for any target tree.
//!
//! Files are always replaced by writing a new file and renaming it into place, never edited in place:
//! the files of a fresh OSTree deployment may be hard links into the repository, and an in-place
//! write would corrupt the repository's objects.
//!
//! [`apply`] returns the list of [`Warning`]s: everything the configuration asked for that was not
//! honoured, by name. The caller logs them in the build log; nothing is dropped silently.

pub(crate) mod accounts;
pub(crate) mod crypt;
pub(crate) mod files;
pub(crate) mod firewall;
pub(crate) mod from_ks;
pub(crate) mod locale;
pub(crate) mod network;
pub(crate) mod services;

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

pub use files::Target;
pub use from_ks::from_kickstart;

/// A password as the kickstart gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Password {
    /// Clear text: hashed here with SHA-512 crypt (`$6$`).
    Plain(String),
    /// Already a crypt(3) string (`--iscrypted`): written as given.
    Crypted(String),
}

/// `rootpw [--iscrypted|--plaintext] [--lock] [--allow-ssh] [PASSWORD]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RootPw {
    pub password: Option<Password>,
    pub lock: bool,
    /// `--allow-ssh`: `PermitRootLogin yes` in an sshd drop-in, as Anaconda writes it.
    pub allow_ssh: bool,
}

/// `user --name … [--password … [--iscrypted]] [--lock] [--homedir] [--shell] [--uid] [--gid]
/// [--gecos] [--groups a,b]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub password: Option<Password>,
    pub lock: bool,
    pub homedir: Option<String>,
    pub shell: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub gecos: Option<String>,
    pub groups: Vec<String>,
}

/// `group --name … [--gid N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Group {
    pub name: String,
    pub gid: Option<u32>,
}

/// `sshkey --username NAME "KEY"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshKey {
    pub username: String,
    pub key: String,
}

/// `services --enabled=a,b --disabled=c`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Services {
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

/// `timezone [ZONE] [--utc]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timezone {
    pub zone: Option<String>,
    pub utc: bool,
}

/// `lang LANG [--addsupport=…]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lang {
    pub lang: String,
    pub addsupport: Vec<String>,
}

/// `keyboard [--vckeymap=…] [--xlayouts=…] [--switch=…] [LEGACY]` (legacy positional = vckeymap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Keyboard {
    pub vckeymap: Option<String>,
    pub xlayouts: Vec<String>,
    pub switch: Vec<String>,
}

/// `network --bootproto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum BootProto {
    #[default]
    Dhcp,
    Static,
}

/// One `network` line with a device (or without one, meaning the first/any wired device).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkDevice {
    /// Interface name, MAC address, `link` or `bootif`; `None` = any wired device.
    pub device: Option<String>,
    pub bootproto: BootProto,
    pub ip: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub nameservers: Vec<String>,
    /// `--ipv6`: `auto`, `dhcp` or `ADDR[/PREFIX]`.
    pub ipv6: Option<String>,
    pub ipv6gateway: Option<String>,
    pub mtu: Option<u32>,
    /// `--onboot` (default yes).
    pub onboot: bool,
    /// Names of the options given on this line that this model does not carry (`--bondslaves`,
    /// `--essid`, …): reported as warnings.
    pub unsupported_options: Vec<String>,
}

/// `selinux --enforcing|--permissive|--disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SelinuxMode {
    Enforcing,
    Permissive,
    Disabled,
}

impl SelinuxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SelinuxMode::Enforcing => "enforcing",
            SelinuxMode::Permissive => "permissive",
            SelinuxMode::Disabled => "disabled",
        }
    }
}

/// `firewall --enabled|--disabled [--port=22:tcp,…] [--service=…] [--remove-service=…] [--trust=DEV]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Firewall {
    pub enabled: bool,
    /// `PORT[-PORT]:PROTO` (a port without protocol is tcp, as pykickstart normalises it).
    pub ports: Vec<String>,
    pub services: Vec<String>,
    pub remove_services: Vec<String>,
    pub trusts: Vec<String>,
    pub use_system_defaults: bool,
}

/// Everything of the kickstart that ends up in `/etc` and `/var` of the deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SystemConfig {
    pub rootpw: Option<RootPw>,
    pub groups: Vec<Group>,
    pub users: Vec<User>,
    pub sshkeys: Vec<SshKey>,
    pub services: Services,
    pub timezone: Option<Timezone>,
    pub lang: Option<Lang>,
    pub keyboard: Option<Keyboard>,
    pub hostname: Option<String>,
    pub network: Vec<NetworkDevice>,
    pub selinux: Option<SelinuxMode>,
    pub firewall: Option<Firewall>,
    /// Kickstart commands or options the adapter could not map to this model at all: each becomes a
    /// warning.
    pub unsupported: Vec<String>,
}

/// Something the kickstart asked for that the builder did not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The kickstart item, e.g. `network --bondslaves` or `services --enabled=foo`.
    pub item: String,
    /// Why it was not honoured.
    pub reason: String,
}

impl Warning {
    pub fn new(item: impl Into<String>, reason: impl Into<String>) -> Self {
        Warning {
            item: item.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kickstart `{}` not honoured: {}", self.item, self.reason)
    }
}

/// Options of [`apply`] that are not in the kickstart.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Seconds since the epoch used for `lastchg` in shadow and for a deterministic password salt;
    /// `None` = now and a random salt. Callers pass `SOURCE_DATE_EPOCH` when it is set.
    pub source_date_epoch: Option<u64>,
}

impl ApplyOptions {
    /// `SOURCE_DATE_EPOCH` from the environment, if set and valid.
    pub fn from_env() -> Self {
        ApplyOptions {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// Writes the whole configuration into `target`, in the order Anaconda applies it: groups, users,
/// root password, ssh keys, services, time zone, language, keyboard, host name and network, SELinux,
/// firewall. Returns the warnings without logging them: the caller reports each once (an image
/// build in its build log, which also prints it).
pub fn apply(target: &Target, cfg: &SystemConfig, opts: &ApplyOptions) -> Result<Vec<Warning>> {
    let mut warnings: Vec<Warning> = cfg
        .unsupported
        .iter()
        .map(|item| Warning::new(item.clone(), "not supported by this builder"))
        .collect();

    accounts::apply_accounts(target, cfg, opts, &mut warnings).context("user accounts")?;
    services::apply_services(target, &cfg.services, &mut warnings).context("services")?;
    if let Some(tz) = &cfg.timezone {
        locale::apply_timezone(target, tz, &mut warnings).context("timezone")?;
    }
    if let Some(lang) = &cfg.lang {
        locale::apply_lang(target, lang, &mut warnings).context("lang")?;
    }
    if let Some(kb) = &cfg.keyboard {
        locale::apply_keyboard(target, kb, &mut warnings).context("keyboard")?;
    }
    if let Some(h) = &cfg.hostname {
        locale::apply_hostname(target, h).context("network --hostname")?;
    }
    network::apply_network(target, &cfg.network, &mut warnings).context("network")?;
    if let Some(mode) = cfg.selinux {
        locale::apply_selinux(target, mode, &mut warnings).context("selinux")?;
    }
    if let Some(fw) = &cfg.firewall {
        firewall::apply_firewall(target, fw, &mut warnings).context("firewall")?;
    }
    Ok(warnings)
}

/// The whole step for an image build: the kickstart's system configuration written into the OSTree
/// deployment directory `deployment` (`…/ostree/deploy/OSNAME/deploy/COMMIT.0`), with
/// `SOURCE_DATE_EPOCH` honoured. Returns the warnings for the build log.
pub fn apply_kickstart(deployment: &Path, ks: &kickstart::Kickstart) -> Result<Vec<Warning>> {
    let target = Target::ostree_deployment(deployment)?;
    apply(&target, &from_kickstart(ks), &ApplyOptions::from_env())
        .with_context(|| format!("configuring the deployment {}", deployment.display()))
}
