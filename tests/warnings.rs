//! Warnings: the demo kickstart has none (parsed and validated as pykickstart would, then applied
//! to a tree shaped like the demo tree), and a build prints each warning once, on stderr and in its
//! build log.

#[path = "sysconfig_tree.rs"]
mod tree;

use std::fs;
use std::process::Command;

use imagebuilder::build::demo::DEMO_KICKSTART;
use imagebuilder::deployment::deploy::testutil::synthetic_commit;
use imagebuilder::deployment::sysconfig;

fn demo_version() -> kickstart::Version {
    let line = DEMO_KICKSTART.lines().next().unwrap();
    let name = line.strip_prefix("#version=").expect(line);
    kickstart::Version::parse(name).expect(name)
}

#[test]
fn demo_kickstart_has_no_diagnostic_at_all() {
    let report = kickstart::parse_with(
        DEMO_KICKSTART,
        "demo-qcow2.ks",
        &kickstart::Options::validate(demo_version()),
        &kickstart::MemLoader::default(),
    );
    let all: Vec<String> = report.diagnostics.iter().map(|d| d.render()).collect();
    assert!(all.is_empty(), "{all:#?}");
    // Its `network` line is applied by the service it enables (the demo tree enables none).
    let cfg = sysconfig::from_kickstart(&report.kickstart);
    assert_eq!(cfg.network.len(), 1, "{:?}", cfg.network);
    assert_eq!(cfg.services.enabled, ["systemd-networkd"]);
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
}

/// The demo tree's situation: systemd-networkd installed (Debian's unit, with its `Also=` units),
/// enabled by nothing, no NetworkManager; the time zone of the kickstart exists.
#[test]
#[ignore = "slow tier: needs root (chown to root)"]
fn demo_kickstart_configures_a_networkd_tree_without_warning() {
    let t = tree::make();
    fs::remove_dir_all(t.root.join("usr/lib/NetworkManager")).unwrap();
    let zone = t.root.join("usr/share/zoneinfo/Etc");
    fs::create_dir_all(&zone).unwrap();
    fs::write(zone.join("UTC"), b"TZif2").unwrap();
    let units = t.root.join("usr/lib/systemd/system");
    fs::write(
        units.join("systemd-networkd.service"),
        "[Unit]\nDescription=Network Configuration\n[Install]\nWantedBy=multi-user.target\n\
         Also=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n\
         Also=systemd-network-generator.service\nAlso=systemd-networkd-wait-online.service\n",
    )
    .unwrap();
    fs::write(
        units.join("systemd-networkd.socket"),
        "[Install]\nWantedBy=sockets.target\n",
    )
    .unwrap();
    fs::write(
        units.join("systemd-network-generator.service"),
        "[Install]\nWantedBy=sysinit.target\n",
    )
    .unwrap();
    fs::write(
        units.join("systemd-networkd-wait-online.service"),
        "[Install]\nWantedBy=network-online.target\n",
    )
    .unwrap();
    let ks = kickstart::parse(DEMO_KICKSTART, demo_version()).unwrap();
    let warnings = sysconfig::apply_kickstart(&t.root, &ks).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(
        t.root
            .join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service")
            .exists()
    );
    assert!(t.root.join("etc/systemd/network/20-wired.network").exists());
}

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn a_build_prints_each_warning_once() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), "test/x86_64/base", 10).unwrap();
    // The synthetic tree has no network configuration system: one warning from the system
    // configuration, and one from a %post that fails without --erroronfail.
    let ks = d.path().join("w.ks");
    fs::write(
        &ks,
        "part / --grow\nnetwork --device=link --bootproto=dhcp\n\
         ostreesetup --nogpg --osname=testos --remote=testos --url=https://example.invalid/repo --ref=test/x86_64/base\n\
         %post\nexit 7\n%end\n",
    )
    .unwrap();
    let out = d.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("image")
        .arg("--kickstart")
        .arg(&ks)
        .arg("--ostreerepo")
        .arg(&repo)
        .args(["-i", "raw", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let log = fs::read_to_string(out.join("logs/w.log")).unwrap();
    for needle in [
        "kickstart `network --device=link` not honoured",
        "no --erroronfail",
    ] {
        assert_eq!(stderr.matches(needle).count(), 1, "{needle}:\n{stderr}");
        assert_eq!(log.matches(needle).count(), 1, "{needle}:\n{log}");
    }
}
