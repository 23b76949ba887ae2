//! End-to-end tests of `imagebuilder image` on a small synthetic OSTree commit (no boot: the boot
//! tests need a bootable tree and live with the boot-test command).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagebuilder::deployment::deploy::testutil::synthetic_commit;

const REF: &str = "test/x86_64/base";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
}

fn ks(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const OSTREESETUP: &str = "ostreesetup --nogpg --osname=testos --remote=testos --url=https://example.invalid/repo --ref=test/x86_64/base\n";

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn builds_qcow2_and_raw_xz_with_btrfs_root_and_swap() {
    let d = tempfile::tempdir().unwrap();
    let (repo, commit) = synthetic_commit(d.path(), REF, 1 << 20).unwrap();
    let body = format!(
        "zerombr\nclearpart --all\nreqpart\npart / --grow --fstype=btrfs --label=root\npart /boot --size=100\npart swap --size=16\nbootloader --timeout=2 --append=\"console=ttyS0\"\n{OSTREESETUP}%post\necho hi\n%end\n"
    );
    let k = ks(d.path(), "demo.ks", &body);
    let out = d.path().join("out");
    let o = run(&[
        "image",
        "--kickstart",
        k.to_str().unwrap(),
        "--ostreerepo",
        repo.to_str().unwrap(),
        "-i",
        "qcow2",
        "-i",
        "raw.xz",
        "-o",
        out.to_str().unwrap(),
        "--size",
        "500M",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result["commit"], commit.as_str());
    assert_eq!(result["plan"]["size_bytes"], 500u64 << 20);
    let parts = result["plan"]["partitions"].as_array().unwrap();
    let kinds: Vec<String> = parts
        .iter()
        .map(|p| p["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["bios-boot", "esp", "boot", "root", "swap"]);

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "demo.qcow2",
            "demo.raw.xz",
            "logs",
            "metadata.json"
        ]
    );
    for n in ["demo.qcow2", "demo.raw.xz", "metadata.json", "SHA256SUMS"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(out.join(n)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644, "{n}");
    }
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(sums.status.success());
    tool("xz", &["-t", out.join("demo.raw.xz").to_str().unwrap()]);
    let chk = tool(
        "qemu-img",
        &["check", out.join("demo.qcow2").to_str().unwrap()],
    );
    assert!(chk.contains("No errors were found"), "{chk}");
    // The qcow2 and the xz'd raw hold the same disk.
    let raw = d.path().join("demo.raw");
    let xz = Command::new("xz")
        .args(["-dc", out.join("demo.raw.xz").to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::write(&raw, &xz.stdout).unwrap();
    let cmp = tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "qcow2",
            raw.to_str().unwrap(),
            out.join("demo.qcow2").to_str().unwrap(),
        ],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");
    let v = tool("sgdisk", &["-v", raw.to_str().unwrap()]);
    assert!(v.contains("No problems found"), "{v}");
    // The root partition is btrfs with the kickstart's label, swap has its signature.
    let root = parts.iter().find(|p| p["role"] == "root").unwrap();
    let (start, sectors) = (
        root["start_lba"].as_u64().unwrap(),
        root["sectors"].as_u64().unwrap(),
    );
    let part = d.path().join("root.img");
    imagebuilder::fs::extract_range(&raw, start * 512, sectors * 512, &part).unwrap();
    tool("btrfs", &["check", "--readonly", part.to_str().unwrap()]);
    let label = tool(
        "blkid",
        &["-p", "-o", "value", "-s", "LABEL", part.to_str().unwrap()],
    );
    assert_eq!(label.trim(), "root");
    let log = std::fs::read_to_string(out.join("logs/demo.log")).unwrap();
    assert!(log.contains("making btrfs on /"), "{log}");
    assert!(log.contains("making swap on swap"), "{log}");
}

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn bad_input_gives_one_clear_error_and_no_output() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), REF, 10).unwrap();
    let cases: &[(&str, String, &str)] = &[
        (
            "noostree.ks",
            "part / --grow\n".into(),
            "noostree.ks: the kickstart has no `ostreesetup` line",
        ),
        (
            "tworoots.ks",
            format!("part / --grow\npart / --size=100\n{OSTREESETUP}"),
            "tworoots.ks:2: two partitions for / (the first is on line 1)",
        ),
        (
            "fstype.ks",
            format!("{OSTREESETUP}part / --grow --fstype=zfs\n"),
            "fstype.ks:2: unknown fstype `zfs`",
        ),
        (
            "lvm.ks",
            format!("part / --grow\n{OSTREESETUP}volgroup atomicos pv.01\n"),
            "lvm.ks:3: volume group atomicos names `pv.01`, which is not a `part pv.01` line",
        ),
        (
            "lvbig.ks",
            format!(
                "part /boot --size=100\npart pv.01 --size=200\nvolgroup atomicos pv.01\nlogvol / --size=300 --name=root --vgname=atomicos\n{OSTREESETUP}"
            ),
            "lvbig.ks:4: the logical volumes of volume group atomicos need 300 MiB but its physical volumes hold 196 MiB: 104 MiB too much",
        ),
        (
            "thin.ks",
            format!(
                "part /boot --size=100\npart pv.01 --grow\nvolgroup atomicos pv.01\nlogvol / --size=300 --name=root --vgname=atomicos\nlogvol none --thinpool --size=100 --name=pool --vgname=atomicos\n{OSTREESETUP}"
            ),
            "thin.ks:5: thin provisioning (`logvol --thinpool`/`--thin`) is not supported",
        ),
        (
            "xfs.ks",
            format!("part / --grow\npart /boot --size=200 --fstype=xfs\n{OSTREESETUP}"),
            "xfs.ks:2: xfs on /boot needs at least 300 MiB (mkfs.xfs refuses smaller filesystems)",
        ),
        (
            "small.ks",
            format!("part / --size=2\n{OSTREESETUP}"),
            "small.ks:1: the partition for / is 2 MiB but its content needs about",
        ),
        (
            "badref.ks",
            format!("part / --grow\n{}", OSTREESETUP.replace(REF, "no/such/ref")),
            "pulling no/such/ref from file://",
        ),
    ];
    for (name, body, want) in cases {
        let k = ks(d.path(), name, body);
        let out = d.path().join(format!("out-{name}"));
        let o = run(&[
            "image",
            "--kickstart",
            k.to_str().unwrap(),
            "--ostreerepo",
            repo.to_str().unwrap(),
            "-i",
            "qcow2",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{name}: expected `{want}` in\n{err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
        let left: Vec<String> = std::fs::read_dir(&out)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "logs")
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: left {left:?}");
    }
}

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn existing_outputs_need_overwrite_and_missing_tools_name_the_package() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), REF, 10).unwrap();
    let k = ks(d.path(), "x.ks", &format!("part / --grow\n{OSTREESETUP}"));
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("x.raw"), b"precious").unwrap();
    let args = [
        "image",
        "--kickstart",
        k.to_str().unwrap(),
        "--ostreerepo",
        repo.to_str().unwrap(),
        "-i",
        "raw",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("x.raw already exists; pass --overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(out.join("x.raw")).unwrap(), b"precious");

    let o = bin()
        .args(args)
        .arg("--overwrite")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("install the Debian package `grub2-common`"),
        "{}",
        stderr(&o)
    );

    let o = run(&[&args[..], &["--overwrite"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("x.raw")).unwrap(), b"precious");
}
