//! The adapter from the parsed kickstart (the `kickstart` crate) to [`SystemConfig`].

use kickstart::typed;
use kickstart::{Kickstart, Value};

use super::{
    BootProto, Firewall, Group, Keyboard, Lang, NetworkDevice, Password, RootPw, SelinuxMode,
    Services, SshKey, SystemConfig, Timezone, User,
};

/// `network` options (argparse dests) this builder does not carry, with their option names.
const UNSUPPORTED_NETWORK: &[(&str, &str)] = &[
    ("dhcpclass", "--dhcpclass"),
    ("essid", "--essid"),
    ("ethtool", "--ethtool"),
    ("wepkey", "--wepkey"),
    ("wpakey", "--wpakey"),
    ("nodns", "--nodns"),
    ("noipv4", "--noipv4"),
    ("nodefroute", "--nodefroute"),
    ("bondslaves", "--bondslaves"),
    ("bondopts", "--bondopts"),
    ("vlanid", "--vlanid"),
    ("teamslaves", "--teamslaves"),
    ("teamconfig", "--teamconfig"),
    ("interfacename", "--interfacename"),
    ("bridgeslaves", "--bridgeslaves"),
    ("bridgeopts", "--bridgeopts"),
    ("bindto", "--bindto"),
    ("ipv4_dns_search", "--ipv4-dns-search"),
    ("ipv6_dns_search", "--ipv6-dns-search"),
    ("ipv4_ignore_auto_dns", "--ipv4-ignore-auto-dns"),
    ("ipv6_ignore_auto_dns", "--ipv6-ignore-auto-dns"),
];

/// Commands about the installed system that this builder does not apply (each is a warning).
const UNSUPPORTED_COMMANDS: &[&str] = &[
    "timesource",
    "authselect",
    "authconfig",
    "realm",
    "xconfig",
    "module",
];

fn password(p: Option<String>, crypted: bool) -> Option<Password> {
    p.map(|p| {
        if crypted {
            Password::Crypted(p)
        } else {
            Password::Plain(p)
        }
    })
}

fn id(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

fn raw_str(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) if !s.is_empty() => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Reads every system-configuration command of `ks` into a [`SystemConfig`]; what cannot be carried
/// is listed in [`SystemConfig::unsupported`] (becoming warnings in [`super::apply`]).
pub fn from_kickstart(ks: &Kickstart) -> SystemConfig {
    let mut cfg = SystemConfig {
        rootpw: typed::rootpw(ks).map(|r| RootPw {
            password: password(r.password, r.is_crypted),
            lock: r.lock,
            allow_ssh: r.allow_ssh,
        }),
        groups: groups(ks),
        users: users(ks),
        sshkeys: sshkeys(ks),
        ..Default::default()
    };
    if let Some(s) = typed::services(ks) {
        cfg.services = Services {
            enabled: s.enabled,
            disabled: s.disabled,
        };
    }
    if let Some(tz) = typed::timezone(ks) {
        cfg.timezone = Some(timezone(tz, &mut cfg.unsupported));
    }
    cfg.lang = typed::lang(ks).map(|l| Lang {
        lang: l.lang,
        addsupport: l.addsupport,
    });
    cfg.keyboard = typed::keyboard(ks).map(|k| Keyboard {
        vckeymap: k.vc_keymap.or(k.keyboard),
        xlayouts: k.x_layouts,
        switch: k.switch_options,
    });
    cfg.selinux = selinux(ks);
    cfg.firewall = typed::firewall(ks).map(|f| Firewall {
        enabled: f.enabled,
        ports: f.ports,
        services: f.services,
        remove_services: f.remove_services,
        trusts: f.trusts,
        use_system_defaults: f.use_system_defaults,
    });
    for cmd in ks.commands_named("network") {
        let n = typed::Network::from_command(cmd);
        if n.hostname.is_some() {
            cfg.hostname = n.hostname.clone();
        }
        cfg.network.extend(network_device(n, &cmd.args));
    }
    for name in UNSUPPORTED_COMMANDS {
        if ks.command(name).is_some() {
            cfg.unsupported.push((*name).to_string());
        }
    }
    cfg
}

/// `group` lines.
fn groups(ks: &Kickstart) -> Vec<Group> {
    typed::groups(ks)
        .into_iter()
        .map(|g| Group {
            name: g.name,
            gid: id(g.gid),
        })
        .collect()
}

/// `user` lines.
fn users(ks: &Kickstart) -> Vec<User> {
    typed::users(ks)
        .into_iter()
        .map(|u| User {
            name: u.name,
            password: password(u.password, u.is_crypted),
            lock: u.lock,
            homedir: u.homedir,
            shell: u.shell,
            uid: id(u.uid),
            gid: id(u.gid),
            gecos: u.gecos,
            groups: u.groups,
        })
        .collect()
}

/// `sshkey` lines.
fn sshkeys(ks: &Kickstart) -> Vec<SshKey> {
    typed::sshkeys(ks)
        .into_iter()
        .map(|k| SshKey {
            username: k.username,
            key: k.key,
        })
        .collect()
}

/// `timezone`; its NTP options are listed in `unsupported`.
fn timezone(tz: typed::Timezone, unsupported: &mut Vec<String>) -> Timezone {
    if tz.nontp {
        unsupported.push("timezone --nontp".into());
    }
    if !tz.ntpservers.is_empty() {
        unsupported.push(format!("timezone --ntpservers={}", tz.ntpservers.join(",")));
    }
    Timezone {
        zone: tz.timezone,
        utc: tz.utc,
    }
}

/// `selinux`: pykickstart's constants are SELINUX_DISABLED = 0, SELINUX_ENFORCING = 1,
/// SELINUX_PERMISSIVE = 2.
fn selinux(ks: &Kickstart) -> Option<SelinuxMode> {
    typed::selinux(ks).and_then(|s| match s.mode? {
        0 => Some(SelinuxMode::Disabled),
        2 => Some(SelinuxMode::Permissive),
        _ => Some(SelinuxMode::Enforcing),
    })
}

/// The device a `network` line configures (`ns` are its parsed options); none for a line that
/// only sets the hostname.
fn network_device(n: typed::Network, ns: &kickstart::Namespace) -> Option<NetworkDevice> {
    let ipv6 = raw_str(ns.get("ipv6"));
    let hostname_only = n.device.is_none()
        && n.ip.is_none()
        && n.gateway.is_none()
        && n.nameserver.is_none()
        && ipv6.is_none()
        && n.hostname.is_some();
    if hostname_only {
        return None;
    }
    let mut unsupported: Vec<String> = UNSUPPORTED_NETWORK
        .iter()
        .filter(|(dest, _)| ns.get(dest).truthy())
        .map(|(_, opt)| opt.to_string())
        .collect();
    let bootproto = match n.bootproto.as_deref() {
        Some("static") => BootProto::Static,
        None | Some("dhcp") | Some("bootp") => BootProto::Dhcp,
        Some(other) => {
            unsupported.push(format!("--bootproto={other}"));
            BootProto::Dhcp
        }
    };
    Some(NetworkDevice {
        device: n.device,
        bootproto,
        ip: n.ip,
        netmask: n.netmask,
        gateway: n.gateway,
        nameservers: n
            .nameserver
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        ipv6: if n.noipv6 { None } else { ipv6 },
        ipv6gateway: raw_str(ns.get("ipv6gateway")),
        mtu: raw_str(ns.get("mtu")).and_then(|m| m.parse().ok()),
        onboot: n.onboot,
        unsupported_options: unsupported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kickstart_to_system_config() {
        let text = "rootpw --iscrypted $6$x$y\n\
            user --name=alice --groups=wheel,adm --password=pw --uid=1500 --gecos=\"Alice A\"\n\
            group --name=devs --gid=5000\n\
            sshkey --username=alice \"ssh-ed25519 AAAA alice@x\"\n\
            services --enabled=sshd,chronyd --disabled=cups\n\
            timezone Europe/Prague --utc\n\
            lang en_US.UTF-8\n\
            keyboard --vckeymap=us --xlayouts=us,cz\n\
            network --hostname=host1\n\
            network --device=eth0 --bootproto=static --ip=192.0.2.2 --netmask=255.255.255.0 --gateway=192.0.2.1 --nameserver=192.0.2.53,192.0.2.54 --ethtool=\"autoneg off\" --mtu=9000\n\
            selinux --permissive\n\
            firewall --enabled --service=http --port=8080:tcp\n\
            timesource --ntp-server=ntp.example.com\n";
        let ks = kickstart::parse(text, kickstart::Version::devel()).unwrap();
        let c = from_kickstart(&ks);
        assert_eq!(
            c.rootpw.as_ref().unwrap().password,
            Some(Password::Crypted("$6$x$y".into()))
        );
        let u = &c.users[0];
        assert_eq!(
            (u.name.as_str(), u.uid, u.gecos.as_deref()),
            ("alice", Some(1500), Some("Alice A"))
        );
        assert_eq!(u.groups, ["wheel", "adm"]);
        assert_eq!(u.password, Some(Password::Plain("pw".into())));
        assert_eq!(
            c.groups[0],
            Group {
                name: "devs".into(),
                gid: Some(5000)
            }
        );
        assert_eq!(c.sshkeys[0].key, "ssh-ed25519 AAAA alice@x");
        assert_eq!(c.services.enabled, ["sshd", "chronyd"]);
        assert_eq!(c.services.disabled, ["cups"]);
        assert_eq!(
            c.timezone,
            Some(Timezone {
                zone: Some("Europe/Prague".into()),
                utc: true
            })
        );
        assert_eq!(c.lang.as_ref().unwrap().lang, "en_US.UTF-8");
        assert_eq!(c.keyboard.as_ref().unwrap().xlayouts, ["us", "cz"]);
        assert_eq!(c.hostname.as_deref(), Some("host1"));
        assert_eq!(
            c.network.len(),
            1,
            "the hostname-only line is not a device: {:?}",
            c.network
        );
        let n = &c.network[0];
        assert_eq!(n.bootproto, BootProto::Static);
        assert_eq!(n.nameservers, ["192.0.2.53", "192.0.2.54"]);
        assert_eq!(n.mtu, Some(9000));
        assert_eq!(n.unsupported_options, ["--ethtool"]);
        assert_eq!(c.selinux, Some(SelinuxMode::Permissive));
        let fw = c.firewall.as_ref().unwrap();
        assert!(
            fw.enabled && fw.services.contains(&"http".to_string()),
            "{fw:?}"
        );
        assert_eq!(c.unsupported, ["timesource"]);
        for (line, mode) in [
            ("selinux --enforcing", SelinuxMode::Enforcing),
            ("selinux --disabled", SelinuxMode::Disabled),
        ] {
            let ks = kickstart::parse(&format!("{line}\n"), kickstart::Version::devel()).unwrap();
            assert_eq!(from_kickstart(&ks).selinux, Some(mode), "{line}");
        }
    }
}
