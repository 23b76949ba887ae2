//! `make deb`: the package's control fields and files, then the package installed with apt — the
//! binary, a man page, the bash completion and `doctor --json` from /usr — and removed again, so
//! the machine is as before.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sh(script: &str) -> String {
    ok(
        Command::new("bash")
            .args(["-c", script])
            .env("LC_ALL", "C")
            .output()
            .unwrap(),
        script,
    )
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "imagebuilder"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
}

/// Removes the package when dropped, also when an assertion failed after installing it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("apt-get")
            .args(["remove", "-y", "-qq", "imagebuilder"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
}

/// A comma-separated control field's package names, without version constraints.
fn names(field: &str) -> Vec<String> {
    field
        .split(',')
        .map(|p| p.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
#[ignore = "slow tier: builds, installs and removes the Debian package (root, apt)"]
fn make_deb_builds_a_package_that_installs_and_works() {
    assert!(
        !installed(),
        "a package named imagebuilder is already installed; this test installs and removes its own"
    );
    let bin = env!("CARGO_BIN_EXE_imagebuilder");
    let target = tempfile::tempdir().unwrap();
    let out = ok(
        Command::new("make")
            .arg("-C")
            .arg(repo_root())
            .arg("deb")
            .arg(format!("TARGET_DIR={}", target.path().display()))
            .arg(format!("IMAGEBUILDER_BIN={bin}"))
            .output()
            .unwrap(),
        "make deb",
    );
    // scripts/build-deb.sh prints the package's path last.
    let deb = PathBuf::from(
        out.lines()
            .rev()
            .find(|l| l.ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb named in\n{out}")),
    );
    assert!(deb.is_file(), "{out}");
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("imagebuilder_0."),
        "{}",
        deb.display()
    );

    // Control fields: the shared libraries and the requirement table's packages.
    let info = ok(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .output()
            .unwrap(),
        "dpkg-deb --info",
    );
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in\n{info}"))
            .to_string()
    };
    assert_eq!(field("Package"), "imagebuilder");
    let depends = names(&field("Depends"));
    for p in [
        "libostree-1-1",
        "libc6",
        "e2fsprogs",
        "dosfstools",
        "mtools",
        "xorriso",
        "squashfs-tools",
        "grub-pc-bin",
        "grub-efi-amd64-bin",
        "btrfs-progs",
        "xfsprogs",
        "bubblewrap",
    ] {
        assert!(
            depends.iter().any(|d| d == p),
            "{p} not in Depends: {depends:?}"
        );
    }
    let recommends = names(&field("Recommends"));
    for p in ["qemu-system-x86", "ovmf"] {
        assert!(
            recommends.iter().any(|d| d == p),
            "{p} not in Recommends: {recommends:?}"
        );
    }

    // Files: the binary, one man page per (sub)command as the binary generates them, completions.
    let contents = ok(
        Command::new("dpkg-deb")
            .arg("--contents")
            .arg(&deb)
            .output()
            .unwrap(),
        "dpkg-deb --contents",
    );
    let files: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.'))
        .collect();
    for f in [
        "/usr/bin/imagebuilder",
        "/usr/share/bash-completion/completions/imagebuilder",
        "/usr/share/zsh/vendor-completions/_imagebuilder",
        "/usr/share/fish/vendor_completions.d/imagebuilder.fish",
        "/usr/share/doc/imagebuilder/copyright",
    ] {
        assert!(files.contains(&f), "{f} not in the package:\n{contents}");
    }
    let generated = tempfile::tempdir().unwrap();
    let listed = ok(
        Command::new(bin)
            .args(["generate", "manpages"])
            .arg(generated.path())
            .output()
            .unwrap(),
        "generate manpages",
    );
    let mut expected: Vec<String> = listed
        .lines()
        .map(|p| {
            let name = Path::new(p).file_name().unwrap().to_string_lossy();
            format!("/usr/share/man/man1/{name}.gz")
        })
        .collect();
    expected.sort();
    let mut man: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("/usr/share/man/man1/") && f.ends_with(".gz"))
        .map(|f| f.to_string())
        .collect();
    man.sort();
    assert_eq!(man, expected);
    for page in [
        "imagebuilder.1.gz",
        "imagebuilder-image.1.gz",
        "imagebuilder-doctor.1.gz",
    ] {
        assert!(
            man.iter().any(|m| m.ends_with(&format!("/{page}"))),
            "{page}: {man:?}"
        );
    }

    // Installed: everything in Depends is there already (scripts/install-deps.sh), so apt adds
    // nothing else and removing the package restores the machine.
    let remove_at_end = Installed;
    ok(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap(),
        "apt-get install",
    );
    assert!(installed());
    let version = sh("/usr/bin/imagebuilder --version");
    assert_eq!(
        version.trim(),
        format!("imagebuilder {}", env!("CARGO_PKG_VERSION"))
    );
    let page = sh("MANPAGER=cat man imagebuilder-image");
    assert!(
        page.contains("imagebuilder-image") && page.contains("--kickstart"),
        "{page}"
    );
    let complete =
        sh("source /usr/share/bash-completion/completions/imagebuilder; complete -p imagebuilder");
    assert!(
        complete.contains("-F ") && complete.trim_end().ends_with(" imagebuilder"),
        "{complete}"
    );
    // The completion function offers the subcommands.
    let offered = sh(
        "source /usr/share/bash-completion/completions/imagebuilder; \
         COMP_WORDS=(imagebuilder do); COMP_CWORD=1; COMP_LINE='imagebuilder do'; COMP_POINT=15; \
         f=$(complete -p imagebuilder | sed 's/.*-F \\([^ ]*\\).*/\\1/'); \
         \"$f\" imagebuilder do imagebuilder; printf '%s\\n' \"${COMPREPLY[@]}\"",
    );
    assert!(offered.lines().any(|l| l == "doctor"), "{offered}");
    let doctor = Command::new("/usr/bin/imagebuilder")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&doctor.stdout));
    });
    assert_eq!(v["schema_version"], 1);
    assert!(!v["checks"].as_array().unwrap().is_empty());
    assert_eq!(doctor.status.success(), v["ready"] == true);

    drop(remove_at_end);
    assert!(!installed(), "apt-get remove left the package installed");
    assert!(!Path::new("/usr/bin/imagebuilder").exists());
}
