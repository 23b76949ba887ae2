//! `%post` scripts run for real with bubblewrap in a busybox OSTree-shaped deployment.

#[path = "sysconfig_tree.rs"]
mod tree;

use std::fs;
use std::time::{Duration, Instant};

use imagebuilder::deployment::post::{PostOptions, PostScript, run_script, run_scripts};
use imagebuilder::deployment::sysconfig::Target;

const MIB: u64 = 1 << 20;

fn script(body: &str) -> PostScript {
    PostScript {
        body: body.into(),
        ..Default::default()
    }
}

#[test]
#[ignore = "slow tier: needs root (chown to root)"]
fn chroot_script_sees_the_deployment_and_writes_etc_and_var() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let opts = PostOptions::new(&logs, 64 * MIB);
    let s = PostScript {
        log: Some("/root/ks-post.log".into()),
        ..script(
            "echo post-ran-$((20+22))\n\
             echo configured > /etc/from-post\n\
             mkdir -p /var/lib/app && echo data > /var/lib/app/state\n\
             echo home > /home/from-post\n\
             touch /usr/bin/should-fail 2>/dev/null && echo USR-WRITABLE\n\
             test -x /usr/bin/busybox && echo busybox-is-root\n\
             echo scratch > /tmp/x && echo tmp-ok\n\
             echo \"env:$HOME:$INSTALL_ROOT:\"\n\
             ostree_cfg=$(cat /sysroot/ostree/repo/config | head -n1); echo \"repo:$ostree_cfg\"\n\
             echo '[remote \"fedora\"]' >> /sysroot/ostree/repo/config\n",
        )
    };
    let out = run_script(&target, 1, &s, &opts).unwrap();
    assert_eq!(out.exit_code, Some(0));
    let log = fs::read_to_string(logs.join("post-1.log")).unwrap();
    assert!(log.contains("post-ran-42"), "{log}");
    assert!(
        log.contains("busybox-is-root") && log.contains("tmp-ok"),
        "{log}"
    );
    assert!(
        !log.contains("USR-WRITABLE"),
        "/usr must be read-only: {log}"
    );
    assert!(log.contains("env:/root::"), "{log}");
    assert!(log.contains("repo:[core]"), "{log}");
    assert_eq!(
        fs::read_to_string(t.root.join("etc/from-post")).unwrap(),
        "configured\n"
    );
    assert_eq!(
        fs::read_to_string(t.var.join("lib/app/state")).unwrap(),
        "data\n"
    );
    assert_eq!(
        fs::read_to_string(t.var.join("home/from-post")).unwrap(),
        "home\n"
    );
    assert!(!t.root.join("usr/bin/should-fail").exists());
    assert!(
        fs::read_to_string(t.sysroot.join("ostree/repo/config"))
            .unwrap()
            .contains("[remote \"fedora\"]")
    );
    // --log is a path in the target: /root is the stateroot's var/roothome.
    assert_eq!(
        fs::read_to_string(t.var.join("roothome/ks-post.log")).unwrap(),
        log
    );
    // Scratch files do not persist.
    assert!(!t.root.join("tmp/x").exists());
}

#[test]
#[ignore = "slow tier: needs root (chown to root)"]
fn interpreter_nochroot_and_failures() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let opts = PostOptions::new(&logs, 64 * MIB);
    let scripts = vec![
        // The interpreter is honoured: `cat` prints the script instead of running it.
        PostScript {
            interpreter: Some("/bin/cat".into()),
            ..script("this-is-not-shell $((1+1))\n")
        },
        // --nochroot: the host is /, the target is at /mnt/sysimage = $INSTALL_ROOT.
        PostScript {
            nochroot: true,
            log: Some("/mnt/sysimage/var/log/nochroot.log".into()),
            ..script(
                "test -x /usr/bin/bwrap && echo host-root\n\
                 echo \"install-root:$INSTALL_ROOT\"\n\
                 echo from-nochroot > \"$INSTALL_ROOT/etc/nochroot\"\n",
            )
        },
        // A failing script without --erroronfail: reported, the build goes on.
        script("echo soft-fail; exit 3\n"),
    ];
    let out = run_scripts(&target, &scripts, &opts).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(
        fs::read_to_string(logs.join("post-1.log")).unwrap(),
        "this-is-not-shell $((1+1))\n"
    );
    let log2 = fs::read_to_string(logs.join("post-2.log")).unwrap();
    assert!(
        log2.contains("host-root") && log2.contains("install-root:/mnt/sysimage"),
        "{log2}"
    );
    assert_eq!(
        fs::read_to_string(t.root.join("etc/nochroot")).unwrap(),
        "from-nochroot\n"
    );
    assert_eq!(
        fs::read_to_string(t.var.join("log/nochroot.log")).unwrap(),
        log2
    );
    assert_eq!(out[2].exit_code, Some(3));
    // The soft failure comes back as the outcome's one warning, for the caller to report once.
    assert!(out[0].warnings.is_empty(), "{:?}", out[0].warnings);
    assert_eq!(out[2].warnings.len(), 1, "{:?}", out[2].warnings);
    assert!(
        out[2].warnings[0].contains("no --erroronfail")
            && out[2].warnings[0].contains("post-3.log"),
        "{:?}",
        out[2].warnings
    );

    // --erroronfail: the build fails with the log's tail.
    let s = PostScript {
        erroronfail: true,
        line: Some(42),
        ..script("echo first-step\necho the-reason >&2\nexit 4\n")
    };
    let e = format!("{:#}", run_script(&target, 4, &s, &opts).unwrap_err());
    assert!(
        e.contains("kickstart line 42") && e.contains("--erroronfail"),
        "{e}"
    );
    assert!(
        e.contains("exit status: 4") && e.contains("the-reason") && e.contains("first-step"),
        "{e}"
    );
}

#[test]
fn no_network_and_time_limit() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let mut opts = PostOptions::new(&logs, 64 * MIB);
    run_script(&target, 1, &script("cat /proc/net/dev\n"), &opts).unwrap();
    let devs = fs::read_to_string(logs.join("post-1.log")).unwrap();
    let names: Vec<&str> = devs
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{devs}");

    opts.timeout = Duration::from_secs(2);
    let t0 = Instant::now();
    let e = format!(
        "{:#}",
        run_script(&target, 2, &script("echo sleeping; sleep 300\n"), &opts).unwrap_err()
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(
        e.contains("time limit of 2 s") && e.contains("sleeping"),
        "{e}"
    );
}

#[test]
fn zero_fill_ends_at_the_image_size() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let opts = PostOptions::new(&logs, 16 * MIB);
    // Fedora Atomic's %post: fill the free space with zeros, then delete the file.
    let s = script(
        "dd if=/dev/zero of=/var/tmp/zeros bs=1M\necho dd-ended\nrm -f /var/tmp/zeros\necho zeroed\n",
    );
    let out = run_script(&target, 1, &s, &opts).unwrap();
    assert_eq!(out.exit_code, Some(0));
    let log = fs::read_to_string(logs.join("post-1.log")).unwrap();
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("dd-ended") && log.contains("zeroed"), "{log}");
    // dd reported how much it wrote: at most the image's free space.
    let written: u64 = log
        .lines()
        .find_map(|l| l.strip_suffix(" records out"))
        .and_then(|r| r.split('+').next()?.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(written <= 16, "{log}");

    // Filling persistent /var instead is stopped and fails the build.
    let s = script(
        "mkdir -p /var/lib\ndd if=/dev/zero of=/var/lib/zeros bs=1M count=100\necho after-dd\n",
    );
    let e = format!("{:#}", run_script(&target, 2, &s, &opts).unwrap_err());
    assert!(e.contains("free space of 16777216 bytes"), "{e}");
    let size = fs::metadata(t.var.join("lib/zeros"))
        .map(|m| m.len())
        .unwrap_or(0);
    // Bounded on the host by the file size limit (the image size + 1 MiB).
    assert!(size <= 17 * MIB, "{size}");
}

#[test]
fn many_small_files_are_stopped_by_the_watchdog() {
    let t = tree::make();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let logs = t.dir.path().join("logs");
    let opts = PostOptions::new(&logs, 8 * MIB);
    let s = script(
        "mkdir -p /var/lib/fill\ni=0\nwhile [ $i -lt 100 ]; do\n  \
         dd if=/dev/zero of=/var/lib/fill/f$i bs=512K count=1 2>/dev/null\n  i=$((i+1))\n  sleep 0.05\ndone\necho finished\n",
    );
    let e = format!("{:#}", run_script(&target, 1, &s, &opts).unwrap_err());
    assert!(e.contains("killed: it wrote"), "{e}");
    let log = fs::read_to_string(logs.join("post-1.log")).unwrap();
    assert!(!log.contains("finished"), "{log}");
    let total: u64 = fs::read_dir(t.var.join("lib/fill"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    // Without the watchdog it would write 50 MiB; the overshoot is what is written between two checks.
    assert!((8 * MIB..=16 * MIB).contains(&total), "{total}");
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn kickstart_configuration_and_post_on_a_deployment() {
    let t = tree::make();
    let ks = kickstart::parse(
        "rootpw --lock\nuser --name=core --groups=wheel\nservices --enabled=sshd --disabled=chronyd\n\
         timesource --ntp-server=ntp.example.com\n\
         %post --erroronfail --log=/root/ks-post.log\ngrep -c '^core:' /etc/passwd\n\
         ls /etc/systemd/system/multi-user.target.wants\n%end\n",
        kickstart::Version::devel(),
    )
    .unwrap();
    let w = imagebuilder::deployment::sysconfig::apply_kickstart(&t.root, &ks).unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].to_string().contains("`timesource`"), "{w:?}");
    let logs = t.dir.path().join("logs");
    let out = imagebuilder::deployment::post::run_kickstart_post(
        &t.root,
        &ks,
        &PostOptions::new(&logs, 64 * MIB),
    )
    .unwrap();
    assert_eq!(out.len(), 1);
    // The script saw the configuration written before it.
    let log = fs::read_to_string(t.var.join("roothome/ks-post.log")).unwrap();
    assert_eq!(log, "1\nsshd.service\n");
}

#[test]
#[ignore = "slow tier: needs root (reads a mode-000 /etc/shadow)"]
fn demo_kickstart_configuration_and_post() {
    // The project's own rendered demo kickstart, applied to the busybox deployment.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../kickstarts/demo-qcow2.ks");
    let ks = kickstart::parse_file(path, kickstart::Version::devel()).unwrap();
    let t = tree::make();
    let warnings = imagebuilder::deployment::sysconfig::apply_kickstart(&t.root, &ks).unwrap();
    let shadow = fs::read_to_string(t.root.join("etc/shadow")).unwrap();
    assert!(shadow.starts_with("root:$6$"), "rootpw applied: {shadow}");
    // The tree has NetworkManager: the `--device=link` DHCP line becomes a keyfile.
    assert!(
        t.root
            .join("etc/NetworkManager/system-connections/wired.nmconnection")
            .exists(),
        "{warnings:?}"
    );
    let logs = t.dir.path().join("logs");
    imagebuilder::deployment::post::run_kickstart_post(
        &t.root,
        &ks,
        &PostOptions::new(&logs, 64 * MIB),
    )
    .unwrap();
    let link = t
        .root
        .join("etc/systemd/system/multi-user.target.wants/imagebuilder-boot-marker.service");
    assert!(
        fs::symlink_metadata(&link).is_ok(),
        "the %post enabled its unit"
    );
    assert!(
        fs::read_to_string(t.root.join("etc/imagebuilder-boot-marker"))
            .unwrap()
            .contains("BOOTED")
    );
}

#[test]
fn a_tree_without_mount_points_is_a_clear_error() {
    let t = tree::make();
    fs::remove_dir(t.root.join("proc")).unwrap();
    let target = Target::ostree_deployment(&t.root).unwrap();
    let opts = PostOptions::new(t.dir.path().join("logs"), 64 * MIB);
    let e = format!(
        "{:#}",
        run_script(&target, 1, &script("true\n"), &opts).unwrap_err()
    );
    assert!(e.contains("no /proc directory"), "{e}");
}
