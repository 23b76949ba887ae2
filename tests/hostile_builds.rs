//! Hostile and mistaken input to `imagebuilder image`: each case is refused with its file:line (or
//! option) and exit code before any work it would spoil, and leaves nothing in the output directory;
//! what the build must not be tricked into (a `%post` writing to the host, a tampered object deployed,
//! a CRLF kickstart silently building something else) is checked on real builds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imagebuilder::deployment::deploy::testutil::synthetic_commit;

const REF: &str = "test/x86_64/base";
const OSTREESETUP: &str = "ostreesetup --nogpg --osname=testos --remote=testos --url=https://example.invalid/repo --ref=test/x86_64/base\n";

fn image(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .arg("image")
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

/// `image --kickstart KS --ostreerepo REPO -i raw -o OUT` with extra environment.
fn image_raw(ks: &Path, repo: &Path, out: &Path, envs: &[(&str, &str)]) -> Output {
    image(
        &[
            "--kickstart",
            ks.to_str().unwrap(),
            "--ostreerepo",
            repo.to_str().unwrap(),
            "-i",
            "raw",
            "-o",
            out.to_str().unwrap(),
        ],
        envs,
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Entries of `dir` (none when it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn layout_mistakes_are_refused_with_their_line_before_the_deploy() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), REF, 10).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "negative.ks",
            "part / --size=-5\n",
            "negative.ks:1: --size=-5 is not a positive number of MiB",
        ),
        (
            "huge.ks",
            "part /boot --size=500\npart / --size=99999999999999999999999\n",
            "huge.ks:2: --size=9223372036854775807 MiB is larger than the largest disk image this builder writes (16 TiB)",
        ),
        (
            "big.ks",
            "part / --size=99999999\n",
            "big.ks:1: --size=99999999 MiB is larger than the largest disk image this builder writes (16 TiB)",
        ),
        (
            "sum.ks",
            "part / --size=9000000\npart /var --size=9000000\n",
            "more than the largest disk image this builder writes (16 TiB)",
        ),
        (
            "usr.ks",
            "part / --grow\npart /usr --size=2000\n",
            "usr.ks:2: /usr cannot be a separate filesystem: /usr belongs to the read-only OSTree deployment",
        ),
        (
            "lvneg.ks",
            "part /boot --size=500\npart pv.01 --grow\nvolgroup vg pv.01\nlogvol / --vgname=vg --name=root --size=-1\n",
            "lvneg.ks:4: --size=-1 is not a positive number of MiB",
        ),
    ];
    for (name, body, want) in cases {
        let ks = d.path().join(name);
        fs::write(&ks, format!("{body}{OSTREESETUP}")).unwrap();
        let out = d.path().join(format!("out-{name}"));
        let o = image_raw(&ks, &repo, &out, &[]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{name}: {}", stderr(&o));
        // Not even the build log exists: the error came before the deploy.
        assert_eq!(entries(&out), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn an_image_size_no_disk_can_have_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let ks = d.path().join("a.ks");
    fs::write(&ks, format!("part / --grow\n{OSTREESETUP}")).unwrap();
    for (size, want) in [
        (
            "100T",
            "larger than the largest disk image this builder writes (16 TiB)",
        ),
        ("0", "not a positive size"),
    ] {
        let out = d.path().join("out");
        let o = image(
            &[
                "--kickstart",
                ks.to_str().unwrap(),
                "-i",
                "raw",
                "-o",
                out.to_str().unwrap(),
                "--size",
                size,
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{size}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{size}: {}", stderr(&o));
        assert!(!out.exists());
    }
}

/// Replaces the archive object of `path` with the object of `other` (a valid object under the wrong
/// name, as a corrupted mirror or disk would hold); returns the replaced object's checksum.
fn tamper(repo: &Path, path: &str, other: &str) -> String {
    let sum = |p: &str| {
        let o = Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["ls", "-C", REF, p])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(4)
            .unwrap()
            .to_string()
    };
    let object = |c: &str| repo.join(format!("objects/{}/{}.filez", &c[..2], &c[2..]));
    let victim = sum(path);
    fs::copy(object(&sum(other)), object(&victim)).unwrap();
    victim
}

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn a_tampered_object_in_a_local_repository_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), REF, 4096).unwrap();
    let object = tamper(&repo, "/usr/bin/hello", "/usr/bin/blob");
    let ks = d.path().join("a.ks");
    fs::write(&ks, format!("part / --grow\n{OSTREESETUP}")).unwrap();
    let out = d.path().join("out");
    let o = image_raw(&ks, &repo, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "object {object} is corrupted (it is /usr/bin/hello in the commit)"
        )),
        "{err}"
    );
    // Only the failed build's log is left; no image, no staging tree.
    let left: Vec<String> = entries(&out).into_iter().filter(|e| e != "logs").collect();
    assert_eq!(left, Vec::<String>::new(), "{err}");
}

#[test]
#[ignore = "slow tier: needs root (deploys a commit)"]
fn a_mount_point_the_tree_does_not_link_into_var_names_its_line() {
    let d = tempfile::tempdir().unwrap();
    let (repo, _) = synthetic_commit(d.path(), REF, 10).unwrap();
    let ks = d.path().join("opt.ks");
    fs::write(
        &ks,
        format!("part / --grow\npart /opt --size=100\n{OSTREESETUP}"),
    )
    .unwrap();
    let out = d.path().join("out");
    let o = image_raw(&ks, &repo, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("opt.ks:2: mount point /opt is inside the read-only OSTree deployment"),
        "{err}"
    );
    let left: Vec<String> = entries(&out).into_iter().filter(|e| e != "logs").collect();
    assert_eq!(left, Vec::<String>::new(), "{err}");
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The demo kickstart plus a `--nochroot` script that tries to leave the sandbox.
fn escaping_demo_kickstart(victim: &Path) -> String {
    let demo = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/demo-qcow2.ks"
    ))
    .unwrap();
    format!(
        "{demo}\n%post --nochroot\n\
         mount -o remount,rw,bind / && echo REMOUNTED\n\
         echo owned > {v}\n\
         echo owned > $INSTALL_ROOT/etc/nochroot-ran && echo NOCHROOT-RAN\n\
         %end\n",
        v = victim.display()
    )
}

#[test]
#[ignore = "slow tier: needs the demo tree"]
fn crlf_kickstart_builds_the_same_image_and_nochroot_post_cannot_write_the_host() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let host = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&host).unwrap();
    let victim = host.join(format!("escape-victim-{}", std::process::id()));
    let _ = fs::remove_file(&victim);
    let lf = escaping_demo_kickstart(&victim);
    let crlf = lf.replace('\n', "\r\n");
    let mut sums = Vec::new();
    for (name, text) in [("lf", &lf), ("crlf", &crlf)] {
        // Same file name for both, so the output names and metadata agree.
        let dir = d.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let ks = dir.join("demo.ks");
        fs::write(&ks, text).unwrap();
        let out = dir.join("out");
        let o = image_raw(
            &ks,
            &tree.repo,
            &out,
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let post = fs::read_to_string(out.join("logs/post-2.log")).unwrap();
        assert!(
            post.contains("NOCHROOT-RAN") && !post.contains("REMOUNTED"),
            "{post}"
        );
        assert!(!victim.exists(), "{name}: %post wrote {}", victim.display());
        sums.push(sha256(&out.join("demo.raw")));
    }
    // The kickstart's sha256 differs (it is recorded in metadata.json), the disk must not.
    assert_eq!(sums[0], sums[1], "a CRLF kickstart built a different disk");
}
