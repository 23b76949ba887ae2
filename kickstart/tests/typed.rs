//! The typed views image builders consume.

use kickstart::{Version, parse, typed};

#[test]
fn typed_views_of_an_atomic_kickstart() {
    let text = "\
ostreesetup --nogpg --osname=fedora-atomic --remote=fedora-atomic --url=file:///install/ostree --ref=fedora/x86_64/atomic
bootloader --timeout=1 --append=\"no_timer_check console=ttyS0\"
zerombr
clearpart --all --initlabel
part /boot --size=300 --fstype=ext4
part pv.01 --grow
volgroup atomicos pv.01
logvol / --size=3000 --fstype=xfs --name=root --vgname=atomicos
network --bootproto=dhcp --device=link --activate --onboot=on
services --enabled=sshd,cloud-init --disabled=kdump
rootpw --lock --iscrypted locked
user --name=core --groups=wheel --uid=1000
sshkey --username=core \"ssh-ed25519 AAAA core@host\"
firewall --disabled
selinux --enforcing
timezone --utc Etc/UTC
lang en_US.UTF-8
keyboard us
reboot --eject
text
%post --erroronfail
echo done
%end
";
    let ks = parse(text, Version::devel()).expect("valid");
    let o = typed::ostreesetup(&ks).expect("ostreesetup");
    assert_eq!(
        (o.osname.as_str(), o.reference.as_str(), o.nogpg),
        ("fedora-atomic", "fedora/x86_64/atomic", true)
    );
    let b = typed::bootloader(&ks).expect("bootloader");
    assert_eq!(
        (b.timeout, b.append.as_deref(), b.location.as_str()),
        (Some(1), Some("no_timer_check console=ttyS0"), "mbr")
    );
    let parts = typed::partitions(&ks);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (
            parts[0].mountpoint.as_str(),
            parts[0].size,
            parts[0].fstype.as_deref()
        ),
        ("/boot", Some(300), Some("ext4"))
    );
    assert!(parts[1].grow);
    assert_eq!(typed::volgroups(&ks)[0].partitions, ["pv.01"]);
    let lv = &typed::logvols(&ks)[0];
    assert_eq!(
        (lv.name.as_str(), lv.vgname.as_str(), lv.size),
        ("root", "atomicos", Some(3000))
    );
    assert!(typed::zerombr(&ks).is_some());
    assert!(typed::clearpart(&ks).expect("clearpart").initlabel);
    let n = &typed::networks(&ks)[0];
    assert_eq!(
        (n.device.as_deref(), n.activate, n.onboot),
        (Some("link"), Some(true), true)
    );
    let s = typed::services(&ks).expect("services");
    assert_eq!((s.enabled.len(), s.disabled.len()), (2, 1));
    let r = typed::rootpw(&ks).expect("rootpw");
    assert!(r.lock && r.is_crypted);
    assert_eq!(typed::users(&ks)[0].groups, ["wheel"]);
    assert_eq!(typed::sshkeys(&ks)[0].key, "ssh-ed25519 AAAA core@host");
    assert!(!typed::firewall(&ks).expect("firewall").enabled);
    assert_eq!(typed::selinux(&ks).expect("selinux").mode, Some(1));
    let tz = typed::timezone(&ks).expect("timezone");
    assert_eq!((tz.timezone.as_deref(), tz.utc), (Some("Etc/UTC"), true));
    assert_eq!(typed::lang(&ks).expect("lang").lang, "en_US.UTF-8");
    assert_eq!(
        typed::keyboard(&ks).expect("keyboard").keyboard.as_deref(),
        Some("us")
    );
    let rb = typed::reboot(&ks).expect("reboot");
    assert_eq!((rb.action.as_str(), rb.eject), ("reboot", true));
    assert_eq!(typed::display_mode(&ks).expect("text").mode, "text");
    assert_eq!(ks.scripts.len(), 1);
    assert!(ks.scripts[0].error_on_fail && ks.scripts[0].chroot);
    assert_eq!(ks.scripts[0].body, "echo done\n");
    // line numbers on commands
    assert_eq!(
        ks.command("bootloader").expect("bootloader").location.line,
        2
    );
}
