//! Vagrant boxes and Koji-named release artifacts from one `imagebuilder image` call: the rendered
//! vagrant kickstart, the demo tree, `-i raw -i qcow2 -i vagrant-libvirt -i vagrant-virtualbox`
//! with `--version/--release`. One build is shared by every check of the main test:
//!
//! * names follow Koji (`NAME-VERSION-RELEASE.ARCH.<ext>`), `SHA256SUMS` and `metadata.json` list
//!   every output with the right size and digest;
//! * `vagrant box add` (Debian's vagrant) accepts both boxes offline;
//! * the libvirt box holds `metadata.json` (libvirt, qcow2, GiB rounded up), the Vagrantfile and a
//!   qcow2 identical in content to the raw image; the VirtualBox box starts with `box.ovf`, its
//!   VMDK passes `qemu-img check`/`compare` and is streamOptimized, the OVF is well-formed and names
//!   the Vagrantfile's MAC;
//! * the vagrant user's `authorized_keys` holds the insecure key, 0600, owned by vagrant (the root
//!   LV's XFS mounted read-only from the raw image), and the libvirt box's `box.img` boots under
//!   QEMU to a login prompt where vagrant logs in, has passwordless sudo and finds the key with
//!   that mode and owner.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use imagebuilder::boot_test::{self, BootSpec, Login};
use imagebuilder::fs::xfs::{LoopDevice, Mount};

const NAME: &str = "fedora-atomic-29-1.x86_64";
const INSECURE_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key";

/// The kickstart under test: the rendered vagrant kickstart as it stands (Atomic LVM layout, XFS
/// root LV).
fn kickstart() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/fedora-atomic-29-vagrant.ks"
    ))
}

fn imagebuilder(args: &[&str], repo: &Path, ks: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("image")
        .arg("--kickstart")
        .arg(ks)
        .arg("--ostreerepo")
        .arg(repo)
        .args(["--ref", "demo/x86_64/base", "--name", "fedora-atomic"])
        .args(["--version", "29", "--release", "1", "--arch", "x86_64"])
        .args(args)
        .arg("-o")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap()
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn one_build_gives_raw_qcow2_and_both_vagrant_boxes() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let ks = kickstart();
    let o = imagebuilder(
        &[
            "-i",
            "raw",
            "-i",
            "qcow2",
            "-i",
            "vagrant-libvirt",
            "-i",
            "vagrant-virtualbox",
        ],
        &tree.repo,
        &ks,
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = |ext: &str| out.join(format!("{NAME}.{ext}"));
    let raw = f("raw");
    let raw_size = std::fs::metadata(&raw).unwrap().len();

    // One deployment for all outputs.
    let log = std::fs::read_to_string(out.join(format!("logs/{NAME}.log"))).unwrap();
    assert_eq!(log.matches("] deploying ").count(), 1, "{log}");

    // Koji names, every output in SHA256SUMS and metadata.json.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let outputs = [
        format!("{NAME}.qcow2"),
        format!("{NAME}.raw"),
        format!("{NAME}.vagrant-libvirt.box"),
        format!("{NAME}.vagrant-virtualbox.box"),
    ];
    let mut expect: Vec<String> = outputs.to_vec();
    expect.extend(["SHA256SUMS", "logs", "metadata.json"].map(String::from));
    expect.sort();
    assert_eq!(names, expect);
    run(Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&out));
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let meta = json(&std::fs::read_to_string(out.join("metadata.json")).unwrap());
    let listed = meta["outputs"].as_array().unwrap();
    assert_eq!(listed.len(), outputs.len());
    for (o, fmt) in listed
        .iter()
        .zip(["raw", "qcow2", "vagrant-libvirt", "vagrant-virtualbox"])
    {
        let file = o["file"].as_str().unwrap();
        assert_eq!(o["format"], fmt, "{o}");
        let path = out.join(file);
        assert_eq!(o["size"], std::fs::metadata(&path).unwrap().len(), "{file}");
        let sha = run(Command::new("sha256sum").arg(&path));
        let sha = sha.split_whitespace().next().unwrap();
        assert_eq!(o["sha256"], sha, "{file}");
        assert!(sums.contains(&format!("{sha}  {file}\n")), "{sums}");
    }
    assert!(sums.contains("  metadata.json\n"), "{sums}");

    // vagrant box add, offline, into a private VAGRANT_HOME.
    let vhome = d.path().join("vagrant-home");
    let vagrant = |args: &[&str]| {
        run(Command::new("vagrant")
            .args(args)
            .env("VAGRANT_HOME", &vhome)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .current_dir(d.path()))
    };
    for (provider, ext) in [
        ("libvirt", "vagrant-libvirt.box"),
        ("virtualbox", "vagrant-virtualbox.box"),
    ] {
        let name = format!("imagebuilder/{provider}");
        let box_file = f(ext);
        vagrant(&[
            "box",
            "add",
            "--name",
            &name,
            "--provider",
            provider,
            box_file.to_str().unwrap(),
        ]);
    }
    let list = vagrant(&["box", "list"]);
    assert!(
        list.contains("imagebuilder/libvirt    (libvirt, 0)"),
        "{list}"
    );
    assert!(
        list.contains("imagebuilder/virtualbox (virtualbox, 0)"),
        "{list}"
    );

    // The libvirt box: metadata, Vagrantfile, and a qcow2 with the raw image's content.
    let lv = d.path().join("libvirt");
    std::fs::create_dir(&lv).unwrap();
    let listing = run(Command::new("tar")
        .arg("-tzf")
        .arg(f("vagrant-libvirt.box")));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["metadata.json", "Vagrantfile", "box.img"]
    );
    run(Command::new("tar")
        .arg("-xzf")
        .arg(f("vagrant-libvirt.box"))
        .arg("-C")
        .arg(&lv));
    let m = json(&std::fs::read_to_string(lv.join("metadata.json")).unwrap());
    assert_eq!(m["provider"], "libvirt");
    assert_eq!(m["format"], "qcow2");
    assert_eq!(m["virtual_size"], raw_size.div_ceil(1 << 30));
    let vf = std::fs::read_to_string(lv.join("Vagrantfile")).unwrap();
    assert!(
        vf.contains("config.vm.synced_folder \".\", \"/home/vagrant/sync\", type: \"rsync\""),
        "{vf}"
    );
    assert!(vf.contains("config.vm.provider :libvirt"), "{vf}");
    let info = json(&run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(lv.join("box.img"))));
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], raw_size);
    let cmp = run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&raw)
        .arg(lv.join("box.img")));
    assert!(cmp.contains("Images are identical"), "{cmp}");

    // The VirtualBox box: box.ovf first, a streamOptimized VMDK equal to the raw image.
    let vb = d.path().join("virtualbox");
    std::fs::create_dir(&vb).unwrap();
    let listing = run(Command::new("tar")
        .arg("-tf")
        .arg(f("vagrant-virtualbox.box")));
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        ["box.ovf", "box-disk1.vmdk", "Vagrantfile", "metadata.json"]
    );
    run(Command::new("tar")
        .arg("-xf")
        .arg(f("vagrant-virtualbox.box"))
        .arg("-C")
        .arg(&vb));
    let vmdk = vb.join("box-disk1.vmdk");
    let info = json(&run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&vmdk)));
    assert_eq!(info["format"], "vmdk");
    assert_eq!(info["virtual-size"], raw_size);
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "streamOptimized"
    );
    let chk = run(Command::new("qemu-img")
        .args(["check", "-f", "vmdk"])
        .arg(&vmdk));
    assert!(chk.contains("No errors were found"), "{chk}");
    let cmp = run(Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vmdk"])
        .arg(&raw)
        .arg(&vmdk));
    assert!(cmp.contains("Images are identical"), "{cmp}");
    assert_eq!(
        json(&std::fs::read_to_string(vb.join("metadata.json")).unwrap())["provider"],
        "virtualbox"
    );
    run(Command::new("xmllint")
        .arg("--noout")
        .arg(vb.join("box.ovf")));
    let ovf = std::fs::read_to_string(vb.join("box.ovf")).unwrap();
    let doc = roxmltree::Document::parse(&ovf).unwrap();
    let ovf_ns = "http://schemas.dmtf.org/ovf/envelope/1";
    let node = |name: &str| {
        doc.descendants()
            .find(|n| n.tag_name().name() == name)
            .unwrap_or_else(|| panic!("no {name} in the OVF"))
    };
    assert_eq!(
        node("Disk").attribute((ovf_ns, "capacity")),
        Some(raw_size.to_string().as_str())
    );
    assert_eq!(
        node("File").attribute((ovf_ns, "size")),
        Some(std::fs::metadata(&vmdk).unwrap().len().to_string().as_str())
    );
    let mac = node("Adapter").attribute("MACAddress").unwrap().to_string();
    assert!(mac.starts_with("080027") && mac.len() == 12, "{mac}");
    let vf = std::fs::read_to_string(vb.join("Vagrantfile")).unwrap();
    assert!(
        vf.contains(&format!("config.vm.base_mac = \"{mac}\"")),
        "{vf}"
    );

    // Inside the image: the vagrant user's key, mode and owner (the root LV's XFS, mounted read-only).
    check_key_in_root_lv(&raw, &meta, &tree.commit);

    // The libvirt box's disk boots; vagrant logs in with its password and has passwordless sudo.
    let mut spec = BootSpec::new(lv.join("box.img"));
    spec.timeout = Duration::from_secs(600);
    spec.work_dir = Some(d.path().join("boot"));
    spec.login = Some(Login {
        user: "vagrant".into(),
        password: Some("vagrant".into()),
        commands: vec![
            "sudo -n id -u 2>/dev/null".into(),
            "stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys".into(),
            "cat ~/.ssh/authorized_keys".into(),
        ],
    });
    let report = boot_test::run(&spec).unwrap();
    report.ensure_success().unwrap();
    // A command's output, after checking its exit status.
    let out = |cmd: &str| -> String {
        let run = report
            .commands
            .iter()
            .find(|c| c.command == cmd)
            .unwrap_or_else(|| panic!("`{cmd}` did not run"));
        assert_eq!(run.exit_status, Some(0), "`{cmd}`: {}", run.output);
        run.output.trim().to_string()
    };
    assert_eq!(out("sudo -n id -u 2>/dev/null"), "0");
    assert_eq!(
        out("stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys")
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>(),
        ["700 vagrant", "600 vagrant"]
    );
    assert_eq!(out("cat ~/.ssh/authorized_keys"), INSECURE_KEY);
    eprintln!(
        "box.img: login prompt after {:?} s; sizes: raw {} MiB, libvirt box {} MiB, virtualbox box {} MiB",
        report.login_prompt_seconds,
        raw_size >> 20,
        std::fs::metadata(f("vagrant-libvirt.box")).unwrap().len() >> 20,
        std::fs::metadata(f("vagrant-virtualbox.box"))
            .unwrap()
            .len()
            >> 20
    );
}

/// The root LV's XFS (found through `metadata.json`'s `disk.volume_groups`), mounted read-only
/// by the kernel: the insecure key in `~vagrant/.ssh/authorized_keys` (0600, owned by vagrant's
/// uid and gid from the image's /etc/passwd), `.ssh` 0700, the sudoers drop-in, sshd enabled.
fn check_key_in_root_lv(raw: &Path, meta: &serde_json::Value, commit: &str) {
    use std::os::unix::fs::MetadataExt;
    let vg = &meta["disk"]["volume_groups"][0];
    assert_eq!(vg["name"], "atomicos");
    let root = vg["lvs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|lv| lv["filesystem"]["mountpoint"] == "/")
        .expect("a root LV");
    assert_eq!(root["filesystem"]["kind"], "xfs");
    let mnt = raw.with_extension("root-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let dev = LoopDevice::attach_read_only(
        raw,
        root["offset"].as_u64().unwrap(),
        root["size"].as_u64().unwrap(),
    )
    .unwrap();
    let m = Mount::new(dev.path(), &mnt, "ro,norecovery").unwrap();
    let dep = m
        .path()
        .join(format!("ostree/deploy/fedora-atomic/deploy/{commit}.0"));
    let passwd = std::fs::read_to_string(dep.join("etc/passwd")).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("vagrant:"))
        .unwrap_or_else(|| panic!("no vagrant user: {passwd}"))
        .split(':')
        .collect();
    let (uid, gid): (u32, u32) = (entry[2].parse().unwrap(), entry[3].parse().unwrap());
    assert_eq!(entry[5], "/home/vagrant");
    // /home is /var/home on an OSTree system: the stateroot's var.
    let ssh = m
        .path()
        .join("ostree/deploy/fedora-atomic/var/home/vagrant/.ssh");
    let keys = ssh.join("authorized_keys");
    assert_eq!(std::fs::read_to_string(&keys).unwrap().trim(), INSECURE_KEY);
    for (path, mode) in [(&keys, 0o100600), (&ssh, 0o040700)] {
        let md = std::fs::symlink_metadata(path).unwrap();
        assert_eq!(
            (md.mode(), md.uid(), md.gid()),
            (mode, uid, gid),
            "{}",
            path.display()
        );
    }
    let sudoers = std::fs::read_to_string(dep.join("etc/sudoers.d/vagrant-nopasswd")).unwrap();
    assert_eq!(sudoers.trim(), "vagrant ALL=NOPASSWD: ALL");
    // `services --enabled=sshd` (the demo tree itself enables only `ssh.service`).
    assert!(
        dep.join("etc/systemd/system/multi-user.target.wants/sshd.service")
            .symlink_metadata()
            .is_ok(),
        "sshd not enabled"
    );
    m.unmount().unwrap();
    dev.detach().unwrap();
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn bad_requests_fail_and_leave_outputs_alone() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let ks = kickstart();
    let out = d.path().join("out");

    // Unknown -i names the valid types.
    let o = imagebuilder(&["-i", "vagrant-hyperv"], &tree.repo, &ks, &out);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("unknown image type `vagrant-hyperv`; valid types: raw, raw.xz, qcow2, vagrant-libvirt, vagrant-virtualbox"),
        "{e}"
    );

    // An output already there without --overwrite: an error, the old file untouched, nothing else.
    std::fs::create_dir(&out).unwrap();
    let old = out.join(format!("{NAME}.vagrant-virtualbox.box"));
    std::fs::write(&old, b"old box").unwrap();
    let o = imagebuilder(
        &["-i", "vagrant-libvirt", "-i", "vagrant-virtualbox"],
        &tree.repo,
        &ks,
        &out,
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "{} already exists; pass --overwrite",
            old.display()
        )),
        "{e}"
    );
    assert_eq!(std::fs::read(&old).unwrap(), b"old box");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);

    // Koji names need both parts, without dashes.
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("image")
        .arg("--kickstart")
        .arg(&ks)
        .args(["--version", "29", "-i", "raw", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--version needs --release"), "{e}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}
