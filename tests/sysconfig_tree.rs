//! A tiny OSTree-shaped tree (busybox, usr-merged, Fedora-like /etc) for the sysconfig and %post tests.
//! Included with `#[path]` by those test files; not a test target of its own.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

pub struct Tree {
    pub dir: tempfile::TempDir,
    pub sysroot: PathBuf,
    pub root: PathBuf,
    pub var: PathBuf,
}

fn write(p: &Path, text: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// `SYSROOT/ostree/deploy/fedora/deploy/abc.0` with its stateroot var and an (empty) repo.
pub fn make() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let sysroot = dir.path().join("sysroot");
    let root = sysroot.join("ostree/deploy/fedora/deploy/abc.0");
    let var = sysroot.join("ostree/deploy/fedora/var");
    fs::create_dir_all(sysroot.join("ostree/repo")).unwrap();
    fs::write(
        sysroot.join("ostree/repo/config"),
        "[core]\nrepo_version=1\nmode=bare\n",
    )
    .unwrap();
    // What systemd-tmpfiles makes in the stateroot var at deployment (as Anaconda runs it).
    fs::create_dir_all(var.join("home")).unwrap();
    fs::create_dir_all(var.join("roothome")).unwrap();
    for d in [
        "usr/bin", "usr/sbin", "usr/lib", "etc", "proc", "dev", "run", "tmp", "var", "sysroot",
        "boot", "mnt",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (l, to) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("home", "var/home"),
        ("root", "var/roothome"),
        ("srv", "var/srv"),
        ("ostree", "sysroot/ostree"),
    ] {
        symlink(to, root.join(l)).unwrap();
    }
    let busybox = imagebuilder::util::cmd::find_in_path("busybox").expect(
        "busybox not found: install the Debian package busybox-static (scripts/install-deps.sh)",
    );
    fs::copy(&busybox, root.join("usr/bin/busybox")).unwrap();
    let list = std::process::Command::new(&busybox)
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .chain(["bash"])
    {
        let _ = symlink("busybox", root.join("usr/bin").join(applet));
    }
    let etc = root.join("etc");
    write(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
        0o644,
    );
    write(&etc.join("shadow"), "root:!locked::0:99999:7:::\n", 0o000);
    write(&etc.join("group"), "root:x:0:\n", 0o644);
    write(&etc.join("gshadow"), "root:::\n", 0o000);
    write(
        &etc.join("login.defs"),
        "UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n",
        0o644,
    );
    write(&etc.join("skel/.bashrc"), "# skel\n", 0o644);
    write(
        &etc.join("selinux/config"),
        "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        0o644,
    );
    write(
        &etc.join("firewalld/firewalld.conf"),
        "DefaultZone=public\n",
        0o644,
    );
    fs::create_dir_all(etc.join("ssh/sshd_config.d")).unwrap();
    let lib = root.join("usr/lib");
    write(
        &lib.join("passwd"),
        "bin:x:1:1:bin:/bin:/sbin/nologin\nchrony:x:990:990::/var/lib/chrony:/sbin/nologin\n",
        0o644,
    );
    write(
        &lib.join("group"),
        "bin:x:1:\nwheel:x:10:\nchrony:x:990:\n",
        0o644,
    );
    let units = lib.join("systemd/system");
    let unit = |name: &str, install: &str| {
        write(
            &units.join(name),
            &format!("[Unit]\nDescription={name}\n\n[Service]\nExecStart=/bin/true\n{install}"),
            0o644,
        )
    };
    unit(
        "sshd.service",
        "\n[Install]\nWantedBy=multi-user.target\nAlias=ssh.service\n",
    );
    unit(
        "chronyd.service",
        "\n[Install]\nWantedBy=multi-user.target\n",
    );
    unit(
        "firewalld.service",
        "\n[Install]\nWantedBy=multi-user.target\nAlias=dbus-org.fedoraproject.FirewallD1.service\n",
    );
    unit(
        "getty@.service",
        "\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n",
    );
    unit("static.service", "");
    unit(
        "vendor.service",
        "\n[Install]\nWantedBy=multi-user.target\n",
    );
    fs::create_dir_all(units.join("multi-user.target.wants")).unwrap();
    symlink(
        "../vendor.service",
        units.join("multi-user.target.wants/vendor.service"),
    )
    .unwrap();
    // chronyd enabled by the tree's /etc (as presets leave it).
    fs::create_dir_all(etc.join("systemd/system/multi-user.target.wants")).unwrap();
    symlink(
        "/usr/lib/systemd/system/chronyd.service",
        etc.join("systemd/system/multi-user.target.wants/chronyd.service"),
    )
    .unwrap();
    write(
        &root.join("usr/share/zoneinfo/Europe/Prague"),
        "TZif2 fake\n",
        0o644,
    );
    fs::create_dir_all(lib.join("NetworkManager")).unwrap();
    write(
        &lib.join("firewalld/zones/public.xml"),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>Public</short>\n  <service name=\"ssh\"/>\n</zone>\n",
        0o644,
    );
    write(
        &lib.join("firewalld/zones/trusted.xml"),
        "<zone target=\"ACCEPT\">\n  <short>Trusted</short>\n</zone>\n",
        0o644,
    );
    Tree {
        dir,
        sysroot,
        root,
        var,
    }
}
