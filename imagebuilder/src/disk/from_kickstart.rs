//! Adapter: the `kickstart` crate's typed model → the disk area's [`DiskRequest`] and
//! [`OstreeSetup`]. Every item keeps its kickstart line, so layout errors name it.

use kickstart::{Kickstart, typed};

use super::request::{
    AutopartRequest, BootloaderRequest, DiskRequest, Located, OstreeSetup, PartitionRequest,
    ReqpartRequest,
};

fn mib(v: Option<i64>) -> Option<u64> {
    v.map(|x| x.max(0) as u64)
}

/// Reads the disk-related commands of `ks`. `source_name` names the kickstart in errors.
pub fn from_kickstart(ks: &Kickstart, source_name: &str) -> (DiskRequest, Option<OstreeSetup>) {
    let mut req = DiskRequest {
        source_name: source_name.to_string(),
        ..Default::default()
    };
    for p in typed::partitions(ks) {
        req.partitions.push(PartitionRequest {
            line: p.at.line,
            mountpoint: p.mountpoint.clone(),
            fstype: p.fstype.clone(),
            size_mib: mib(p.size),
            grow: p.grow,
            maxsize_mib: mib(p.maxsize),
            label: p.label.clone(),
            fsoptions: p.fsoptions.clone(),
        });
    }
    if let Some(r) = typed::reqpart(ks) {
        req.reqpart = Some(ReqpartRequest {
            line: r.at.line,
            add_boot: r.add_boot,
        });
    }
    if let Some(a) = typed::autopart(ks) {
        let kind = a.kind.map(|k| match k {
            0 => "plain".to_string(),
            1 => "btrfs".to_string(),
            2 => "lvm".to_string(),
            3 => "thinp".to_string(),
            other => format!("type {other}"),
        });
        req.autopart = Some(AutopartRequest {
            line: a.at.line,
            kind,
            fstype: a.fstype.clone(),
            noswap: a.noswap,
        });
    }
    if let Some(b) = typed::bootloader(ks) {
        req.bootloader = BootloaderRequest {
            line: b.at.line,
            append: b
                .append
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect(),
            timeout: b.timeout.map(|t| t.clamp(0, u32::MAX as i64) as u32),
            disabled: b.disabled || b.location == "none",
        };
    }
    if let Some(c) = typed::clearpart(ks) {
        req.accepted_noops.push(Located {
            line: c.at.line,
            value: "clearpart".into(),
        });
    }
    if let Some(z) = typed::zerombr(ks) {
        req.accepted_noops.push(Located {
            line: z.at.line,
            value: "zerombr".into(),
        });
    }
    if let Some(i) = typed::ignoredisk(ks) {
        req.accepted_noops.push(Located {
            line: i.at.line,
            value: "ignoredisk".into(),
        });
    }
    for v in typed::volgroups(ks) {
        req.unsupported.push(Located {
            line: v.at.line,
            value: format!("`volgroup {}`", v.name),
        });
    }
    for l in typed::logvols(ks) {
        req.unsupported.push(Located {
            line: l.at.line,
            value: "`logvol`".into(),
        });
    }
    for r in typed::raids(ks) {
        req.unsupported.push(Located {
            line: r.at.line,
            value: "`raid`".into(),
        });
    }
    for b in typed::btrfs(ks) {
        req.unsupported.push(Located {
            line: b.at.line,
            value: "`btrfs` volumes".into(),
        });
    }
    req.unsupported.sort_by_key(|u| u.line);
    let ostree = typed::ostreesetup(ks).map(|o| OstreeSetup {
        line: o.at.line,
        osname: o.osname.clone(),
        remote: Some(o.remote.clone()).filter(|r| !r.is_empty()),
        url: o.url.clone(),
        reference: o.reference.clone(),
        nogpg: o.nogpg,
    });
    (req, ostree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_demo_kickstart() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/demo-qcow2.ks");
        let text = std::fs::read_to_string(path).unwrap();
        let ks = kickstart::parse(&text, kickstart::Version::devel()).unwrap();
        let (r, o) = from_kickstart(&ks, "demo-qcow2.ks");
        let mps: Vec<&str> = r.partitions.iter().map(|p| p.mountpoint.as_str()).collect();
        assert_eq!(mps, ["biosboot", "/boot/efi", "/boot", "/"]);
        let root = &r.partitions[3];
        assert_eq!(
            (root.size_mib, root.grow, root.label.as_deref()),
            (Some(2048), true, Some("root"))
        );
        assert_eq!(r.bootloader.append, ["console=ttyS0,115200"]);
        assert_eq!(r.bootloader.timeout, Some(1));
        let o = o.unwrap();
        assert_eq!(
            (o.osname.as_str(), o.reference.as_str(), o.nogpg),
            ("demo", "demo/x86_64/base", true)
        );
        assert_eq!(o.remote_name(), "demo");
        let layout =
            crate::disk::plan::Layout::from_request(&r, &crate::disk::plan::IdSource::Random)
                .unwrap();
        assert_eq!(layout.parts.len(), 4);
    }

    #[test]
    fn lvm_lines_become_not_supported_errors() {
        let text = "part /boot --size=300\npart pv.01 --grow\nvolgroup atomicos pv.01\nlogvol / --size=3000 --fstype=xfs --name=root --vgname=atomicos\nostreesetup --osname=x --url=file:///r --ref=r\n";
        let ks = kickstart::parse(text, kickstart::Version::devel()).unwrap();
        let (r, _) = from_kickstart(&ks, "atomic.ks");
        let e = crate::disk::plan::Layout::from_request(&r, &crate::disk::plan::IdSource::Random)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "atomic.ks:3: `volgroup atomicos` is not supported yet (LVM, RAID and btrfs volumes are a later issue)"
        );
    }
}
