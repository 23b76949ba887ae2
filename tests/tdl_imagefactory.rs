//! `imagebuilder imagefactory`: the base_image/target_image chain with ImageFactory's real parameter
//! names (driven against a tiny test double of the `imagefactory` program, which is not packaged for
//! Debian), the honest "not installed" answer, and the Koji image-build config.

#[path = "support/oracle.rs"]
mod oracle;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_imagebuilder");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn root() -> PathBuf {
    Path::new(ROOT).to_path_buf()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Double {
    dir: tempfile::TempDir,
}

impl Double {
    /// A PATH directory holding only the `imagefactory` test double.
    fn new() -> Double {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::copy(
            root().join("tests/support/imagefactory"),
            bin.join("imagefactory"),
        )
        .unwrap();
        Double { dir }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        c.env("PATH", path)
            .env("FAKE_IMAGEFACTORY_LOG", self.log_path())
            .env("FAKE_IMAGEFACTORY_STORAGE", self.storage());
        c
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn uuid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

#[test]
fn chain_uses_imagefactory_parameter_names_and_packages_like_the_toolbox() {
    let d = Double::new();
    let out = d.dir.path().join("out");
    let tdl = root().join("tdl/fedora-atomic-29.tdl");
    let ks = root().join("kickstarts/fedora-atomic-29.ks");
    let vks = root().join("kickstarts/fedora-atomic-29-vagrant.ks");
    let o = d
        .command()
        .args(["imagefactory", "--tdl"])
        .arg(&tdl)
        .arg("-k")
        .arg(&ks)
        .arg("--vkickstart")
        .arg(&vks)
        .args([
            "-i",
            "kvm",
            "-i",
            "raw",
            "-i",
            "rhevm",
            "-i",
            "vagrant-libvirt",
            "-i",
            "vagrant-virtualbox",
        ])
        .arg("-o")
        .arg(&out)
        .arg("--imagefactory-storage")
        .arg(d.storage())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let oz = r#"{"libvirt": {"image_type": "qcow2", "memory": 2048, "cpus": "2"}}"#;
    let base = |ks: &Path| {
        format!(
            "--verbose|base_image|--parameter|generate_icicle|false|--parameter|oz_overrides|{oz}|--file-parameter|install_script|{}|{}",
            ks.display(),
            tdl.display()
        )
    };
    let sync = "--parameter|vagrant_sync_directory|/home/vagrant/sync";
    let expected = vec![
        base(&ks),
        format!("--verbose|target_image|--id|{}|rhevm", uuid(1)),
        format!("--verbose|target_image|--id|{}|ova", uuid(2)),
        base(&vks),
        format!("--verbose|target_image|--id|{}|{sync}|vsphere", uuid(4)),
        format!(
            "--verbose|target_image|--id|{}|{sync}|--parameter|vsphere_ova_format|vagrant-virtualbox|ova",
            uuid(5)
        ),
        format!("--verbose|target_image|--id|{}|{sync}|rhevm", uuid(4)),
        format!(
            "--verbose|target_image|--id|{}|--parameter|rhevm_ova_format|vagrant-libvirt|{sync}|ova",
            uuid(7)
        ),
    ];
    assert_eq!(d.calls(), expected);

    let images = out.join("images");
    let mut names: Vec<String> = fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "fedora-atomic-29-rhevm.ova",
            "fedora-atomic-29-vagrant-libvirt.box",
            "fedora-atomic-29-vagrant-virtualbox.box",
            "fedora-atomic-29.qcow2.gz",
            "fedora-atomic-29.raw",
        ]
    );
    assert!(out.join("logs").is_dir());
    // Real tools checked the real conversions.
    let info = Command::new("qemu-img")
        .args(["info", "--output", "json"])
        .arg(images.join("fedora-atomic-29.raw"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["format"], "raw");
    assert_eq!(v["virtual-size"], 64 << 20);
    assert!(
        Command::new("gzip")
            .arg("-t")
            .arg(images.join("fedora-atomic-29.qcow2.gz"))
            .status()
            .unwrap()
            .success()
    );
    let sums = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&images)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&sums.stdout)
            .matches(": OK")
            .count(),
        5
    );
    let libvirt_box =
        fs::read_to_string(images.join("fedora-atomic-29-vagrant-libvirt.box")).unwrap();
    assert!(
        libvirt_box.contains("fake ova target image"),
        "{libvirt_box}"
    );

    // An existing output directory is refused without --overwrite, and left alone.
    let o = d
        .command()
        .args(["imagefactory", "--tdl"])
        .arg(&tdl)
        .arg("-k")
        .arg(&ks)
        .args(["-i", "kvm", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(images.join("fedora-atomic-29.raw").exists());
}

#[test]
fn without_imagefactory_it_says_so_and_points_to_native() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = |extra: &[&str]| {
        Command::new(BIN)
            // A PATH without the double; the real program is not packaged for Debian.
            .env("PATH", "/usr/bin:/bin")
            .args(["imagefactory", "--tdl"])
            .arg(root().join("tdl/fedora-atomic-29.tdl"))
            .arg("-k")
            .arg(root().join("kickstarts/fedora-atomic-29.ks"))
            .args(["-i", "kvm", "-o"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = base(&[]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("`imagefactory` is not installed") && err.contains("--native"),
        "{err}"
    );
    assert!(!out.exists());
    // --native makes kvm and raw only: another type is refused by name before anything is written.
    let koji = tmp.path().join("koji.conf");
    let o = base(&[
        "--native",
        "-i",
        "vsphere",
        "--koji-config",
        koji.to_str().unwrap(),
        "--koji-target",
        "t",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("image type `vsphere` is not supported with --native")
            && err.contains("kvm (qcow2) and raw"),
        "{err}"
    );
    assert!(!out.exists() && !koji.exists());
    // Bad inputs: unknown type, invalid TDL.
    let o = Command::new(BIN)
        .args(["imagefactory", "--tdl", "x.tdl", "-k", "x.ks", "-i", "qcow"])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("not a valid image type"),
        "{}",
        stderr(&o)
    );
    let bad = tmp.path().join("bad.tdl");
    fs::write(&bad, "<template><name>x</name></template>").unwrap();
    let o = Command::new(BIN)
        .args(["imagefactory", "--tdl"])
        .arg(&bad)
        .arg("-k")
        .arg(root().join("kickstarts/fedora-atomic-29.ks"))
        .args(["--koji-config", "k.conf", "--koji-target", "t"])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("missing required element `os`"),
        "{}",
        stderr(&o)
    );
}

/// Reads an INI file with Python's configparser (the parser Koji's CLI uses).
fn configparser(path: &Path) -> serde_json::Value {
    let out = Command::new(root().join(".venv/bin/python"))
        .args([
            "-c",
            "import configparser,json,sys; c=configparser.ConfigParser(); c.read(sys.argv[1]); \
             print(json.dumps({s: dict(c[s]) for s in c.sections()}))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn writes_koji_image_build_configs() {
    if oracle::missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("koji.conf");
    let ks = root().join("kickstarts/fedora-atomic-29.ks");
    let vks = root().join("kickstarts/fedora-atomic-29-vagrant.ks");
    let o = Command::new(BIN)
        .args(["imagefactory", "--tdl"])
        .arg(root().join("tdl/fedora-atomic-29.tdl"))
        .arg("-k")
        .arg(&ks)
        .arg("--vkickstart")
        .arg(&vks)
        .args([
            "-i",
            "kvm",
            "-i",
            "raw",
            "-i",
            "vagrant-libvirt",
            "-i",
            "vagrant-virtualbox",
        ])
        .args(["--koji-target", "f29-candidate", "--koji-config"])
        .arg(&cfg)
        .arg("--config")
        .arg(root().join("kickstarts/config.ini"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let main = configparser(&cfg);
    let ib = &main["image-build"];
    assert_eq!(ib["name"], "fedora-atomic-29");
    assert_eq!(ib["version"], "29");
    assert_eq!(ib["target"], "f29-candidate");
    assert_eq!(
        ib["install_tree"],
        "https://dl.fedoraproject.org/pub/fedora/linux/releases/29/AtomicHost/x86_64/os/"
    );
    assert_eq!(ib["arches"], "x86_64");
    assert_eq!(ib["format"], "qcow2,raw");
    assert_eq!(ib["distro"], "Fedora-29");
    assert_eq!(ib["kickstart"], ks.display().to_string());
    assert_eq!(ib["ksversion"], "F29");
    assert_eq!(ib["disk_size"], "10");
    assert!(main.get("factory-parameters").is_none());

    let vagrant = configparser(&tmp.path().join("koji-vagrant.conf"));
    assert_eq!(
        vagrant["image-build"]["format"],
        "vagrant-virtualbox,vagrant-libvirt"
    );
    assert_eq!(
        vagrant["image-build"]["kickstart"],
        vks.display().to_string()
    );
    assert_eq!(
        vagrant["factory-parameters"]["vagrant_sync_directory"],
        "/home/vagrant/sync"
    );
}

/// `--native` builds with imagebuilder's own disk builder (no ImageFactory on PATH): the checked-in
/// demo kickstart and the cached demo tree become `OUTDIR/images/<TDL name>.raw`, a valid GPT disk
/// holding the demo commit. One raw build (~15–30 s once the demo tree is cached).
#[test]
#[ignore = "slow tier: needs the demo tree"]
fn native_builds_the_demo_kickstart_without_imagefactory() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = Command::new(BIN)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["imagefactory", "--native", "--tdl"])
        .arg(root().join("tdl/fedora-atomic-29.tdl"))
        .arg("-k")
        .arg(root().join("kickstarts/demo-qcow2.ks"))
        .args(["-i", "raw", "--ostreerepo"])
        .arg(&tree.repo)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let images = out.join("images");
    let raw = images.join("fedora-atomic-29.raw");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(raw.to_str().unwrap()),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v = Command::new("sgdisk").arg("-v").arg(&raw).output().unwrap();
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains("No problems found"), "{v}");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(images.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(meta["source"]["commit"], tree.commit.as_str());
    assert_eq!(meta["outputs"].as_array().unwrap().len(), 1, "{meta}");
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&images)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    // Same rule as the ImageFactory chain: an existing output directory needs --overwrite.
    let again = Command::new(BIN)
        .args(["imagefactory", "--native", "--tdl"])
        .arg(root().join("tdl/fedora-atomic-29.tdl"))
        .arg("-k")
        .arg(root().join("kickstarts/demo-qcow2.ks"))
        .args(["-i", "raw", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}
