//! `imagebuilder::deployment::sysconfig::apply` on an OSTree-shaped deployment: the files, modes, owners and links
//! it writes, checked directly and with independent tools (openssl for the password hash, grpck).

#[path = "sysconfig_tree.rs"]
mod tree;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use imagebuilder::deployment::sysconfig::{
    self, ApplyOptions, BootProto, Firewall, Group, Keyboard, Lang, NetworkDevice, Password,
    RootPw, SelinuxMode, Services, SshKey, SystemConfig, Target, Timezone, User,
};

const EPOCH: u64 = 1_700_000_000;

fn full_config() -> SystemConfig {
    SystemConfig {
        rootpw: Some(RootPw {
            password: Some(Password::Plain("r00t pass".into())),
            lock: false,
            allow_ssh: true,
        }),
        groups: vec![Group {
            name: "devs".into(),
            gid: Some(5000),
        }],
        users: vec![
            User {
                name: "alice".into(),
                password: Some(Password::Plain("alice pw".into())),
                groups: vec!["wheel".into(), "devs".into(), "nosuchgroup".into()],
                gecos: Some("Alice".into()),
                ..Default::default()
            },
            User {
                name: "bob".into(),
                password: Some(Password::Crypted("$6$abc$xyz".into())),
                lock: true,
                uid: Some(2000),
                gid: Some(3000),
                homedir: Some("/var/lib/bob".into()),
                shell: Some("/bin/sh".into()),
                ..Default::default()
            },
        ],
        sshkeys: vec![
            SshKey {
                username: "root".into(),
                key: "ssh-ed25519 AAAAroot root@example".into(),
            },
            SshKey {
                username: "alice".into(),
                key: "ssh-ed25519 AAAAalice alice@example".into(),
            },
            SshKey {
                username: "ghost".into(),
                key: "ssh-ed25519 AAAAx".into(),
            },
        ],
        services: Services {
            enabled: vec![
                "sshd".into(),
                "getty@ttyS0.service".into(),
                "static.service".into(),
                "nosuch.service".into(),
            ],
            disabled: vec!["chronyd".into(), "vendor.service".into()],
        },
        timezone: Some(Timezone {
            zone: Some("Europe/Prague".into()),
            utc: true,
        }),
        lang: Some(Lang {
            lang: "cs_CZ.UTF-8".into(),
            addsupport: vec!["de_DE".into()],
        }),
        keyboard: Some(Keyboard {
            vckeymap: Some("cz-qwerty".into()),
            xlayouts: vec!["cz".into(), "us".into()],
            switch: vec![],
        }),
        hostname: Some("atomic-host".into()),
        network: vec![
            NetworkDevice {
                device: Some("eth0".into()),
                bootproto: BootProto::Static,
                ip: Some("192.0.2.10".into()),
                netmask: Some("255.255.255.0".into()),
                gateway: Some("192.0.2.1".into()),
                nameservers: vec!["192.0.2.53".into()],
                onboot: true,
                unsupported_options: vec!["--ethtool".into()],
                ..Default::default()
            },
            NetworkDevice {
                device: Some("eth1".into()),
                onboot: true,
                ..Default::default()
            },
        ],
        selinux: Some(SelinuxMode::Permissive),
        firewall: Some(Firewall {
            enabled: true,
            ports: vec!["8080:tcp".into()],
            services: vec!["http".into()],
            trusts: vec!["eth1".into()],
            ..Default::default()
        }),
        unsupported: vec!["bootloader --password".into()],
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn owner(p: &Path) -> (u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn full_configuration_on_an_ostree_deployment() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    assert_eq!(target.var, t.var);
    let opts = ApplyOptions {
        source_date_epoch: Some(EPOCH),
    };
    let warnings = sysconfig::apply(&target, &full_config(), &opts).unwrap();
    let w: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    let etc = t.root.join("etc");

    // Every item not honoured is named.
    for item in [
        "`bootloader --password`",
        "`user --name=alice --groups=nosuchgroup`",
        "`sshkey --username=ghost`",
        "`services --enabled=static.service`",
        "`services --enabled=nosuch.service`",
        "`services --disabled=vendor.service`",
        "`lang --addsupport=de_DE`",
        "`network --device=eth0 --ethtool`",
        "`network --device=eth1`",
    ] {
        assert!(
            w.iter().any(|x| x.contains(item)),
            "no warning for {item}: {w:#?}"
        );
    }
    assert_eq!(w.len(), 9, "{w:#?}");

    // Accounts.
    let passwd = read(&etc.join("passwd"));
    assert!(
        passwd.contains("alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"),
        "{passwd}"
    );
    assert!(
        passwd.contains("bob:x:2000:3000::/var/lib/bob:/bin/sh\n"),
        "{passwd}"
    );
    let group = read(&etc.join("group"));
    assert!(group.contains("devs:x:5000:alice\n"), "{group}");
    assert!(
        group.contains("wheel:x:10:alice\n"),
        "wheel copied from /usr/lib/group: {group}"
    );
    assert!(
        group.contains("alice:x:1000:\n") && group.contains("bob:x:3000:\n"),
        "{group}"
    );
    let gshadow = read(&etc.join("gshadow"));
    assert!(
        gshadow.contains("wheel:!::alice\n") && gshadow.contains("devs:!::alice\n"),
        "{gshadow}"
    );
    let shadow = read(&etc.join("shadow"));
    assert_eq!(mode(&etc.join("shadow")), 0o000, "shadow keeps its mode");
    let day = EPOCH / 86400;
    let root_hash = shadow
        .lines()
        .find(|l| l.starts_with("root:"))
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap();
    assert!(
        shadow.contains(&format!("root:{root_hash}:{day}:")),
        "{shadow}"
    );
    let salt = root_hash.split('$').nth(2).unwrap();
    let oracle = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "r00t pass"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&oracle.stdout).trim(), root_hash);
    assert!(
        shadow.contains("bob:!$6$abc$xyz:"),
        "--iscrypted kept and --lock applied: {shadow}"
    );
    // grpck (shadow's own checker), chrooted so that members are looked up in the tree's passwd.
    let status = Command::new("grpck")
        .args(["-r", "-R"])
        .arg(&t.root)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "grpck: {}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );

    // Homes in the stateroot var, owned by the user, with the skeleton.
    let home = t.var.join("home/alice");
    assert_eq!((mode(&home), owner(&home)), (0o700, (1000, 1000)));
    assert_eq!(owner(&home.join(".bashrc")), (1000, 1000));
    assert_eq!(read(&home.join(".bashrc")), "# skel\n");
    assert_eq!(owner(&t.var.join("lib/bob")), (2000, 3000));

    // ssh keys.
    let ak = t.var.join("roothome/.ssh/authorized_keys");
    assert_eq!(read(&ak), "ssh-ed25519 AAAAroot root@example\n");
    assert_eq!((mode(&ak), mode(ak.parent().unwrap())), (0o600, 0o700));
    let ak = home.join(".ssh/authorized_keys");
    assert_eq!(
        (mode(&ak), owner(&ak), owner(ak.parent().unwrap())),
        (0o600, (1000, 1000), (1000, 1000))
    );
    assert!(
        read(&etc.join("ssh/sshd_config.d/01-permitrootlogin.conf"))
            .contains("PermitRootLogin yes")
    );

    // Services.
    let sd = etc.join("systemd/system");
    assert_eq!(
        fs::read_link(sd.join("multi-user.target.wants/sshd.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/sshd.service")
    );
    assert_eq!(
        fs::read_link(sd.join("ssh.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/sshd.service")
    );
    assert_eq!(
        fs::read_link(sd.join("getty.target.wants/getty@ttyS0.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/getty@.service")
    );
    assert!(
        !sd.join("multi-user.target.wants/chronyd.service").exists(),
        "chronyd disabled"
    );
    assert!(fs::symlink_metadata(sd.join("multi-user.target.wants/firewalld.service")).is_ok());
    assert!(!sd.join("static.service").exists());

    // Time, locale, keyboard, host name.
    assert_eq!(
        fs::read_link(etc.join("localtime")).unwrap(),
        Path::new("../usr/share/zoneinfo/Europe/Prague")
    );
    assert_eq!(read(&etc.join("adjtime")), "0.0 0 0.0\n0\nUTC\n");
    assert_eq!(read(&etc.join("locale.conf")), "LANG=\"cs_CZ.UTF-8\"\n");
    assert_eq!(read(&etc.join("vconsole.conf")), "KEYMAP=\"cz-qwerty\"\n");
    assert!(
        read(&etc.join("X11/xorg.conf.d/00-keyboard.conf")).contains("\"XkbLayout\" \"cz,us\"")
    );
    assert_eq!(read(&etc.join("hostname")), "atomic-host\n");

    // Network in NetworkManager's keyfile format (the tree has NetworkManager).
    let nm = etc.join("NetworkManager/system-connections/eth0.nmconnection");
    assert_eq!(mode(&nm), 0o600);
    assert!(read(&nm).contains("address1=192.0.2.10/24,192.0.2.1"));

    // SELinux and firewalld.
    assert_eq!(
        read(&etc.join("selinux/config")),
        "SELINUX=permissive\nSELINUXTYPE=targeted\n"
    );
    let zone = read(&etc.join("firewalld/zones/public.xml"));
    assert!(
        zone.contains("<service name=\"ssh\"/>") && zone.contains("<service name=\"http\"/>"),
        "{zone}"
    );
    assert!(
        zone.contains("<port protocol=\"tcp\" port=\"8080\"/>"),
        "{zone}"
    );
    assert!(read(&etc.join("firewalld/zones/trusted.xml")).contains("<interface name=\"eth1\"/>"));

    // Nothing was written outside the deployment's /etc and the stateroot var.
    assert_eq!(fs::read_dir(t.root.join("var")).unwrap().count(), 0);
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn reproducible_with_source_date_epoch_and_random_without() {
    let cfg = SystemConfig {
        rootpw: Some(RootPw {
            password: Some(Password::Plain("pw".into())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let shadow_of = |epoch: Option<u64>| {
        let t = tree::make();
        let target = Target::ostree_deployment(&t.root).unwrap();
        sysconfig::apply(
            &target,
            &cfg,
            &ApplyOptions {
                source_date_epoch: epoch,
            },
        )
        .unwrap();
        read(&t.root.join("etc/shadow"))
    };
    assert_eq!(shadow_of(Some(EPOCH)), shadow_of(Some(EPOCH)));
    assert_ne!(shadow_of(None), shadow_of(None));
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn other_network_backends_and_missing_pieces() {
    // networkd when NetworkManager is absent and networkd is enabled; a bad zone warns.
    let t = tree::make();
    fs::remove_dir_all(t.root.join("usr/lib/NetworkManager")).unwrap();
    let units = t.root.join("usr/lib/systemd/system");
    fs::write(
        units.join("systemd-networkd.service"),
        "[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/systemd-networkd.service",
        t.root
            .join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service"),
    )
    .unwrap();
    fs::remove_file(t.root.join("etc/selinux/config")).unwrap();
    let cfg = SystemConfig {
        network: vec![NetworkDevice {
            device: None,
            onboot: true,
            ..Default::default()
        }],
        timezone: Some(Timezone {
            zone: Some("Mars/Olympus".into()),
            utc: false,
        }),
        selinux: Some(SelinuxMode::Disabled),
        users: vec![
            User {
                name: "zed".into(),
                shell: Some("/bin/zsh".into()),
                ..Default::default()
            },
            User {
                name: "dflt".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    fs::create_dir_all(t.root.join("etc/default")).unwrap();
    fs::write(
        t.root.join("etc/default/useradd"),
        "GROUP=100\nSHELL=/bin/sh\n",
    )
    .unwrap();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let w = sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    let w: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert!(
        w.iter().any(|x| x.contains("`timezone Mars/Olympus`")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|x| x.contains("`selinux --disabled`")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|x| x.contains("`user --name=zed`") && x.contains("/bin/zsh")),
        "{w:?}"
    );
    assert_eq!(w.len(), 3, "{w:?}");
    let passwd = read(&t.root.join("etc/passwd"));
    assert!(
        passwd.contains(":/home/dflt:/bin/sh\n"),
        "useradd's default shell: {passwd}"
    );
    let nd = read(&t.root.join("etc/systemd/network/20-wired.network"));
    assert!(nd.contains("DHCP=yes"), "{nd}");
    assert_eq!(read(&t.root.join("etc/adjtime")), "0.0 0 0.0\n0\nLOCAL\n");

    // ifupdown for a Debian-style tree.
    let t = tree::make();
    fs::remove_dir_all(t.root.join("usr/lib/NetworkManager")).unwrap();
    fs::create_dir_all(t.root.join("etc/network")).unwrap();
    fs::write(
        t.root.join("etc/network/interfaces"),
        "source /etc/network/interfaces.d/*\n",
    )
    .unwrap();
    let cfg = SystemConfig {
        network: vec![NetworkDevice {
            device: Some("ens3".into()),
            onboot: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let target = Target::ostree_deployment(&t.root).unwrap();
    sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    assert_eq!(
        read(&t.root.join("etc/network/interfaces.d/ens3")),
        "auto ens3\niface ens3 inet dhcp\n"
    );
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn conflicting_ids_are_errors() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let cfg = SystemConfig {
        users: vec![User {
            name: "dup".into(),
            uid: Some(990),
            ..Default::default()
        }],
        ..Default::default()
    };
    let e = format!(
        "{:#}",
        sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap_err()
    );
    assert!(e.contains("uid 990 is already used"), "{e}");
    assert!(Target::ostree_deployment(&t.dir.path().join("nope/a/b")).is_err());
}

#[test]
fn enabling_by_alias_enables_the_real_unit() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let cfg = SystemConfig {
        services: Services {
            enabled: vec!["ssh".into()],
            disabled: vec![],
        },
        ..Default::default()
    };
    let w = sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let sd = t.root.join("etc/systemd/system");
    assert_eq!(
        fs::read_link(sd.join("multi-user.target.wants/sshd.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/sshd.service")
    );
    assert_eq!(
        fs::read_link(sd.join("ssh.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/sshd.service")
    );
}

/// Every symlink under `etc/systemd/system`, as `path -> target`.
fn unit_links(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.push(format!("{rel} -> {}", fs::read_link(&p).unwrap().display()));
            } else if m.is_dir() {
                walk(&p, base, out);
            }
        }
    }
    let base = root.join("etc/systemd/system");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out.sort();
    out
}

#[test]
fn services_match_systemctl_offline() {
    // The same requests through our code and through `systemctl --root` (the independent oracle).
    let ours = tree::make();
    let theirs = tree::make();
    let enabled = [
        "sshd.service",
        "getty@ttyS0.service",
        "getty@.service",
        "firewalld.service",
    ];
    let disabled = ["chronyd.service"];
    let cfg = SystemConfig {
        services: Services {
            enabled: enabled.iter().map(|s| s.to_string()).collect(),
            disabled: disabled.iter().map(|s| s.to_string()).collect(),
        },
        ..Default::default()
    };
    let target = Target::ostree_deployment(&ours.root).unwrap();
    sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    for (verb, units) in [("enable", &enabled[..]), ("disable", &disabled[..])] {
        let out = Command::new("systemctl")
            .arg(format!("--root={}", theirs.root.display()))
            .arg(verb)
            .args(units)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemctl {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ours = unit_links(&ours.root);
    assert!(ours.len() >= 6, "{ours:#?}");
    // Debian 12's systemctl is built with rootprefix=/lib and names units by their /lib path; in this
    // usr-merged tree (/lib -> usr/lib) that is the same file as our /usr/lib path.
    let theirs: Vec<String> = unit_links(&theirs.root)
        .into_iter()
        .map(|l| l.replace(" -> /lib/systemd/", " -> /usr/lib/systemd/"))
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn accounts_pass_pwck_and_grpck() {
    // A plain tree (its /var inside), so shadow's own checkers see the homes we made.
    let t = tree::make();
    let target = Target::plain(&t.root);
    let mut cfg = full_config();
    cfg.rootpw.as_mut().unwrap().allow_ssh = false;
    sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    for tool in ["pwck", "grpck"] {
        let out = Command::new(tool)
            .args(["-r", "-R"])
            .arg(&t.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "slow tier: needs root (chown to root)"]
fn networkd_installed_but_not_enabled_is_a_warning() {
    let t = tree::make();
    fs::remove_dir_all(t.root.join("usr/lib/NetworkManager")).unwrap();
    fs::write(
        t.root
            .join("usr/lib/systemd/system/systemd-networkd.service"),
        "[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let cfg = SystemConfig {
        network: vec![NetworkDevice {
            device: Some("link".into()),
            onboot: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let target = Target::ostree_deployment(&t.root).unwrap();
    let w = sysconfig::apply(&target, &cfg, &ApplyOptions::default()).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].to_string().contains("`network --device=link`") && w[0].reason.contains("not enabled")
    );
    assert!(t.root.join("etc/systemd/network/20-wired.network").exists());
}
