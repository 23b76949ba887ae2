//! `firewall`: firewalld, when the tree has it. `--disabled` disables `firewalld.service`,
//! `--enabled` enables it; `--service`, `--port`, `--remove-service` edit the default zone (copied to
//! `/etc/firewalld/zones/ZONE.xml` from `/usr/lib/firewalld/zones` the way firewall-offline-cmd does)
//! and `--trust=DEV` adds the interface to the `trusted` zone.

use anyhow::Result;

use super::{Firewall, Target, Warning, services};

/// The default zone from `firewalld.conf` text (`public` when unset).
pub fn default_zone(conf: &str) -> String {
    conf.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("DefaultZone=")
                .map(|z| z.trim().to_string())
        })
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| "public".to_string())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Edits zone XML text: adds `<service>`, `<port>` and `<interface>` elements (once each) before
/// `</zone>` and removes the listed services.
pub fn edit_zone(
    xml: &str,
    add_services: &[String],
    ports: &[String],
    interfaces: &[String],
    remove: &[String],
) -> String {
    let mut out: String = xml
        .lines()
        .filter(|l| {
            !remove
                .iter()
                .any(|r| l.trim() == format!("<service name=\"{}\"/>", xml_escape(r)))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut add = String::new();
    for s in add_services {
        let e = format!("  <service name=\"{}\"/>", xml_escape(s));
        if !out.contains(e.trim()) {
            add.push_str(&e);
            add.push('\n');
        }
    }
    for p in ports {
        let (port, proto) = p.split_once(':').unwrap_or((p, "tcp"));
        let e = format!(
            "  <port protocol=\"{}\" port=\"{}\"/>",
            xml_escape(proto),
            xml_escape(port)
        );
        if !out.contains(e.trim()) {
            add.push_str(&e);
            add.push('\n');
        }
    }
    for i in interfaces {
        let e = format!("  <interface name=\"{}\"/>", xml_escape(i));
        if !out.contains(e.trim()) {
            add.push_str(&e);
            add.push('\n');
        }
    }
    match out.rfind("</zone>") {
        Some(i) => out.insert_str(i, &add),
        None => out.push_str(&add),
    }
    out
}

fn edit_zone_file(
    t: &Target,
    zone: &str,
    services: &[String],
    ports: &[String],
    ifaces: &[String],
    remove: &[String],
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let etc = format!("/etc/firewalld/zones/{zone}.xml");
    let xml = match t.read_optional(&etc)? {
        Some(x) => x,
        None => match t.read_optional(&format!("/usr/lib/firewalld/zones/{zone}.xml"))? {
            Some(x) => x,
            None => {
                warnings.push(Warning::new(
                    format!("firewall (zone {zone})"),
                    format!("firewalld zone `{zone}` not found in the tree"),
                ));
                return Ok(());
            }
        },
    };
    t.write(
        &etc,
        edit_zone(&xml, services, ports, ifaces, remove).as_bytes(),
        0o644,
        (0, 0),
    )
}

/// Applies `firewall`.
pub fn apply_firewall(t: &Target, fw: &Firewall, warnings: &mut Vec<Warning>) -> Result<()> {
    let has_firewalld = t.exists("/usr/lib/firewalld") || t.exists("/etc/firewalld");
    let item = if fw.enabled {
        "firewall --enabled"
    } else {
        "firewall --disabled"
    };
    if !has_firewalld {
        warnings.push(Warning::new(item, "the tree has no firewalld"));
        return Ok(());
    }
    if !fw.enabled {
        return services::disable(t, "firewalld.service", warnings);
    }
    services::enable(t, "firewalld.service", warnings)?;
    if fw.use_system_defaults {
        return Ok(());
    }
    let conf = t
        .read_optional("/etc/firewalld/firewalld.conf")?
        .unwrap_or_default();
    let zone = default_zone(&conf);
    if !(fw.services.is_empty() && fw.ports.is_empty() && fw.remove_services.is_empty()) {
        edit_zone_file(
            t,
            &zone,
            &fw.services,
            &fw.ports,
            &[],
            &fw.remove_services,
            warnings,
        )?;
    }
    if !fw.trusts.is_empty() {
        edit_zone_file(t, "trusted", &[], &[], &fw.trusts, &[], warnings)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_edits() {
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>Public</short>\n  <service name=\"ssh\"/>\n  <service name=\"dhcpv6-client\"/>\n</zone>\n";
        let out = edit_zone(
            xml,
            &["http".into(), "ssh".into()],
            &["8080:tcp".into(), "53".into()],
            &[],
            &["dhcpv6-client".into()],
        );
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>Public</short>\n  <service name=\"ssh\"/>\n  <service name=\"http\"/>\n  <port protocol=\"tcp\" port=\"8080\"/>\n  <port protocol=\"tcp\" port=\"53\"/>\n</zone>\n"
        );
        assert_eq!(
            default_zone("# x\nDefaultZone=FedoraServer\n"),
            "FedoraServer"
        );
        assert_eq!(default_zone(""), "public");
    }
}
