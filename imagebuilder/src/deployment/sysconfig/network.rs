//! `network` device configuration in the tree's own format: a NetworkManager keyfile, a
//! systemd-networkd `.network` file, or an ifupdown stanza. The first device line is written; further
//! devices and options this builder does not carry are warnings.

use anyhow::{Context, Result, bail};

use super::{BootProto, NetworkDevice, Target, Warning};

/// Which network configuration system a tree uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetBackend {
    NetworkManager,
    Networkd,
    Ifupdown,
}

/// Detects the tree's network configuration system: NetworkManager when installed, else
/// systemd-networkd when it is enabled, else ifupdown when `/etc/network/interfaces` exists, else
/// networkd when merely installed.
pub fn detect(t: &Target) -> Option<NetBackend> {
    let has = |p: &str| t.exists(p);
    let networkd_unit = [
        "/usr/lib/systemd/system/systemd-networkd.service",
        "/lib/systemd/system/systemd-networkd.service",
    ]
    .iter()
    .any(|p| has(p));
    let networkd_enabled = networkd_enabled(t);
    if has("/usr/sbin/NetworkManager")
        || has("/usr/lib/NetworkManager")
        || has("/etc/NetworkManager/NetworkManager.conf")
    {
        Some(NetBackend::NetworkManager)
    } else if networkd_unit && networkd_enabled {
        Some(NetBackend::Networkd)
    } else if has("/etc/network/interfaces") {
        Some(NetBackend::Ifupdown)
    } else if networkd_unit {
        Some(NetBackend::Networkd)
    } else {
        None
    }
}

/// True when the tree's /etc enables systemd-networkd.
fn networkd_enabled(t: &Target) -> bool {
    t.exists("/etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
        || t.exists("/etc/systemd/system/dbus-org.freedesktop.network1.service")
}

/// Dotted netmask → prefix length (or a prefix given as a number).
pub fn netmask_prefix(mask: &str) -> Result<u32> {
    if let Ok(n) = mask.parse::<u32>()
        && n <= 32
    {
        return Ok(n);
    }
    let octets: Vec<u8> = mask
        .split('.')
        .map(|o| o.parse::<u8>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid netmask `{mask}`"))?;
    if octets.len() != 4 {
        bail!("invalid netmask `{mask}`");
    }
    let v = u32::from_be_bytes([octets[0], octets[1], octets[2], octets[3]]);
    if v.leading_ones() + v.trailing_zeros() != 32 {
        bail!("invalid netmask `{mask}` (not contiguous)");
    }
    Ok(v.leading_ones())
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The device name to match, `None` meaning any wired device (`link`, `bootif` or no `--device`).
fn concrete_name(dev: &NetworkDevice) -> Option<&str> {
    dev.device
        .as_deref()
        .filter(|d| !matches!(*d, "link" | "bootif") && !is_mac(d))
}

fn mac(dev: &NetworkDevice) -> Option<&str> {
    dev.device.as_deref().filter(|d| is_mac(d))
}

fn address(dev: &NetworkDevice) -> Result<Option<String>> {
    if dev.bootproto != BootProto::Static {
        return Ok(None);
    }
    let ip = dev
        .ip
        .as_deref()
        .context("network --bootproto=static needs --ip")?;
    let prefix = match &dev.netmask {
        Some(m) => netmask_prefix(m)?,
        None => 24,
    };
    Ok(Some(format!("{ip}/{prefix}")))
}

/// A NetworkManager keyfile (`/etc/NetworkManager/system-connections/NAME.nmconnection`, mode 0600).
pub fn nm_keyfile(dev: &NetworkDevice) -> Result<String> {
    let id = concrete_name(dev).unwrap_or("Wired connection");
    let mut s = format!("[connection]\nid={id}\ntype=ethernet\n");
    if let Some(n) = concrete_name(dev) {
        s.push_str(&format!("interface-name={n}\n"));
    }
    if !dev.onboot {
        s.push_str("autoconnect=false\n");
    }
    s.push_str("\n[ethernet]\n");
    if let Some(m) = mac(dev) {
        s.push_str(&format!("mac-address={}\n", m.to_ascii_uppercase()));
    }
    if let Some(mtu) = dev.mtu {
        s.push_str(&format!("mtu={mtu}\n"));
    }
    s.push_str("\n[ipv4]\n");
    match address(dev)? {
        Some(a) => {
            s.push_str(&format!("address1={a}"));
            if let Some(g) = &dev.gateway {
                s.push_str(&format!(",{g}"));
            }
            s.push_str("\nmethod=manual\n");
        }
        None => s.push_str("method=auto\n"),
    }
    if !dev.nameservers.is_empty() {
        s.push_str(&format!("dns={};\n", dev.nameservers.join(";")));
    }
    s.push_str("\n[ipv6]\n");
    match dev.ipv6.as_deref() {
        None | Some("auto") => s.push_str("method=auto\n"),
        Some("dhcp") => s.push_str("method=dhcp\n"),
        Some(a) => {
            let a = if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/64")
            };
            s.push_str(&format!("address1={a}"));
            if let Some(g) = &dev.ipv6gateway {
                s.push_str(&format!(",{g}"));
            }
            s.push_str("\nmethod=manual\n");
        }
    }
    Ok(s)
}

/// A systemd-networkd `.network` file.
pub fn networkd_file(dev: &NetworkDevice) -> Result<String> {
    let mut s = String::from("[Match]\n");
    match (concrete_name(dev), mac(dev)) {
        (Some(n), _) => s.push_str(&format!("Name={n}\n")),
        (None, Some(m)) => s.push_str(&format!("MACAddress={}\n", m.to_ascii_lowercase())),
        (None, None) => s.push_str("Type=ether\nName=en* eth*\n"),
    }
    if let Some(mtu) = dev.mtu {
        s.push_str(&format!("\n[Link]\nMTUBytes={mtu}\n"));
    }
    s.push_str("\n[Network]\n");
    let v6 = match dev.ipv6.as_deref() {
        None | Some("auto") => "IPv6AcceptRA=yes\n".to_string(),
        Some("dhcp") => String::new(),
        Some(a) => format!(
            "Address={}\n",
            if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/64")
            }
        ),
    };
    match address(dev)? {
        Some(a) => {
            if dev.ipv6.as_deref() == Some("dhcp") {
                s.push_str("DHCP=ipv6\n");
            }
            s.push_str(&format!("Address={a}\n"));
            if let Some(g) = &dev.gateway {
                s.push_str(&format!("Gateway={g}\n"));
            }
        }
        None => s.push_str("DHCP=yes\n"),
    }
    s.push_str(&v6);
    if let Some(g) = &dev.ipv6gateway {
        s.push_str(&format!("Gateway={g}\n"));
    }
    for n in &dev.nameservers {
        s.push_str(&format!("DNS={n}\n"));
    }
    Ok(s)
}

/// An ifupdown stanza for `/etc/network/interfaces.d/NAME` (needs a concrete interface name).
pub fn ifupdown_stanza(name: &str, dev: &NetworkDevice) -> Result<String> {
    let mut s = String::new();
    if dev.onboot {
        s.push_str(&format!("auto {name}\n"));
    }
    match address(dev)? {
        Some(a) => {
            s.push_str(&format!("iface {name} inet static\n    address {a}\n"));
            if let Some(g) = &dev.gateway {
                s.push_str(&format!("    gateway {g}\n"));
            }
            if !dev.nameservers.is_empty() {
                s.push_str(&format!(
                    "    dns-nameservers {}\n",
                    dev.nameservers.join(" ")
                ));
            }
        }
        None => s.push_str(&format!("iface {name} inet dhcp\n")),
    }
    if let Some(mtu) = dev.mtu {
        s.push_str(&format!("    mtu {mtu}\n"));
    }
    match dev.ipv6.as_deref() {
        None => {}
        Some("auto") => s.push_str(&format!("iface {name} inet6 auto\n")),
        Some("dhcp") => s.push_str(&format!("iface {name} inet6 dhcp\n")),
        Some(a) => {
            let a = if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/64")
            };
            s.push_str(&format!("iface {name} inet6 static\n    address {a}\n"));
            if let Some(g) = &dev.ipv6gateway {
                s.push_str(&format!("    gateway {g}\n"));
            }
        }
    }
    Ok(s)
}

fn item(dev: &NetworkDevice) -> String {
    match &dev.device {
        Some(d) => format!("network --device={d}"),
        None => "network".to_string(),
    }
}

/// Writes the first device's configuration in the tree's native format.
pub fn apply_network(
    t: &Target,
    devices: &[NetworkDevice],
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let Some(dev) = devices.first() else {
        return Ok(());
    };
    for d in devices {
        for o in &d.unsupported_options {
            warnings.push(Warning::new(
                format!("{} {o}", item(d)),
                "option not supported by this builder",
            ));
        }
    }
    for d in &devices[1..] {
        warnings.push(Warning::new(
            item(d),
            "only the first network device is configured",
        ));
    }
    match detect(t) {
        Some(NetBackend::NetworkManager) => {
            let name = concrete_name(dev).unwrap_or("wired");
            let path = format!("/etc/NetworkManager/system-connections/{name}.nmconnection");
            let text = nm_keyfile(dev)?;
            super::files::write_file(&t.host_path(&path)?, text.as_bytes(), 0o600, (0, 0))?;
        }
        Some(NetBackend::Networkd) => write_networkd(t, dev, warnings)?,
        Some(NetBackend::Ifupdown) => write_ifupdown(t, dev, warnings)?,
        None => warnings.push(Warning::new(
            item(dev),
            "the tree has no NetworkManager, systemd-networkd or ifupdown configuration",
        )),
    }
    Ok(())
}

/// A systemd-networkd `.network` file, with a warning when nothing in the tree runs networkd.
fn write_networkd(t: &Target, dev: &NetworkDevice, warnings: &mut Vec<Warning>) -> Result<()> {
    if !networkd_enabled(t) {
        warnings.push(Warning::new(
            item(dev),
            "systemd-networkd is not enabled in the tree, so its .network file is written but \
             nothing applies it at boot (add `services --enabled=systemd-networkd`)",
        ));
    }
    let name = concrete_name(dev).unwrap_or("wired");
    t.write(
        &format!("/etc/systemd/network/20-{name}.network"),
        networkd_file(dev)?.as_bytes(),
        0o644,
        (0, 0),
    )
}

/// An ifupdown stanza: in `/etc/network/interfaces.d` when `/etc/network/interfaces` sources it,
/// else appended to `/etc/network/interfaces`. ifupdown needs an interface name.
fn write_ifupdown(t: &Target, dev: &NetworkDevice, warnings: &mut Vec<Warning>) -> Result<()> {
    let Some(name) = concrete_name(dev) else {
        warnings.push(Warning::new(
            item(dev),
            "ifupdown needs an interface name in --device",
        ));
        return Ok(());
    };
    let stanza = ifupdown_stanza(name, dev)?;
    let interfaces = t
        .read_optional("/etc/network/interfaces")?
        .unwrap_or_default();
    let sources_d = interfaces.lines().any(|l| {
        let l = l.trim();
        (l.starts_with("source ") || l.starts_with("source-directory "))
            && l.contains("interfaces.d")
    });
    if sources_d {
        return t.write(
            &format!("/etc/network/interfaces.d/{name}"),
            stanza.as_bytes(),
            0o644,
            (0, 0),
        );
    }
    let mut text = interfaces;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&stanza);
    t.write("/etc/network/interfaces", text.as_bytes(), 0o644, (0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_dev() -> NetworkDevice {
        NetworkDevice {
            device: Some("eth0".into()),
            bootproto: BootProto::Static,
            ip: Some("192.0.2.10".into()),
            netmask: Some("255.255.255.0".into()),
            gateway: Some("192.0.2.1".into()),
            nameservers: vec!["192.0.2.53".into(), "192.0.2.54".into()],
            onboot: true,
            ..Default::default()
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_prefix("255.255.255.0").unwrap(), 24);
        assert_eq!(netmask_prefix("255.255.240.0").unwrap(), 20);
        assert_eq!(netmask_prefix("16").unwrap(), 16);
        assert!(netmask_prefix("255.0.255.0").is_err());
        assert!(netmask_prefix("nope").is_err());
    }

    #[test]
    fn formats() {
        let d = static_dev();
        let nm = nm_keyfile(&d).unwrap();
        assert!(nm.contains("interface-name=eth0\n"), "{nm}");
        assert!(
            nm.contains("address1=192.0.2.10/24,192.0.2.1\nmethod=manual\n"),
            "{nm}"
        );
        assert!(nm.contains("dns=192.0.2.53;192.0.2.54;\n"), "{nm}");
        let nd = networkd_file(&d).unwrap();
        assert!(nd.contains("[Match]\nName=eth0\n"), "{nd}");
        assert!(
            nd.contains("Address=192.0.2.10/24\nGateway=192.0.2.1\n"),
            "{nd}"
        );
        assert!(nd.contains("DNS=192.0.2.53\nDNS=192.0.2.54\n"), "{nd}");
        let ifu = ifupdown_stanza("eth0", &d).unwrap();
        assert_eq!(
            ifu,
            "auto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n    dns-nameservers 192.0.2.53 192.0.2.54\n"
        );
        let dhcp = NetworkDevice {
            onboot: true,
            ..Default::default()
        };
        assert!(networkd_file(&dhcp).unwrap().contains("Name=en* eth*\n"));
        assert!(networkd_file(&dhcp).unwrap().contains("DHCP=yes\n"));
        assert!(nm_keyfile(&dhcp).unwrap().contains("[ipv4]\nmethod=auto\n"));
        let bad = NetworkDevice {
            bootproto: BootProto::Static,
            ..Default::default()
        };
        assert!(nm_keyfile(&bad).is_err(), "static without --ip is an error");
        let by_mac = NetworkDevice {
            device: Some("52:54:00:12:34:56".into()),
            onboot: true,
            ..Default::default()
        };
        assert!(
            networkd_file(&by_mac)
                .unwrap()
                .contains("MACAddress=52:54:00:12:34:56\n")
        );
    }
}
