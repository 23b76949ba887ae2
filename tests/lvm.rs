//! The Fedora Atomic layout as written: the project's rendered cloud kickstart
//! (`kickstarts/fedora-atomic-29.ks`: `part /boot`, `part pv.01 --grow`, `volgroup atomicos pv.01`,
//! `logvol / --size=3000 --fstype=xfs --name=root --vgname=atomicos`) built from the demo tree with
//! `--ostreerepo`, ONCE; then the LVM tools read the volume group from the image (through a
//! read-only loop device over the PV partition: there is no device-mapper on the host, so only
//! metadata is read), `xfs_repair -n` checks the root LV's filesystem, and the image boots under
//! QEMU to a login prompt with `/` mounted from `/dev/mapper/atomicos-root`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imagebuilder::boot_test::{self, BootSpec};
use imagebuilder::fs::xfs::{LoopDevice, link_count};

const ROOT_MARKER: &str = "LVM-ROOT-SOURCE=/dev/mapper/atomicos-root";

#[path = "support/tools.rs"]
mod tools;
use tools::tool;

#[test]
#[ignore = "slow tier: boots QEMU"]
fn atomic_kickstart_builds_lvm_xfs_that_lvm_reads_and_boots() {
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    // The real kickstart, plus one %post that reports where / comes from (root is locked in this
    // kickstart, so nobody logs in to look).
    let real = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/fedora-atomic-29.ks"
    );
    let mut text = std::fs::read_to_string(real).unwrap();
    assert!(text.contains("volgroup atomicos pv.01"), "{text}");
    assert!(text.contains("--fstype=xfs --name=root --vgname=atomicos"));
    text.push_str(concat!(
        "\n%post\n",
        "cat > /etc/systemd/system/lvm-root-marker.service <<'EOF'\n",
        "[Unit]\nAfter=local-fs.target\n",
        "[Service]\nType=oneshot\nStandardOutput=journal+console\n",
        "ExecStart=/bin/sh -c 'echo LVM-ROOT-SOURCE=$$(findmnt -n -o SOURCE /sysroot) FSTYPE=$$(findmnt -n -o FSTYPE /sysroot)'\n",
        "[Install]\nWantedBy=multi-user.target\n",
        "EOF\n",
        "systemctl enable lvm-root-marker.service\n",
        "%end\n"
    ));
    let ks = d.path().join("fedora-atomic-29.ks");
    std::fs::write(&ks, text).unwrap();
    let out = d.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_imagebuilder"))
        .args(["image", "--kickstart"])
        .arg(&ks)
        .arg("--ostreerepo")
        .arg(&tree.repo)
        .args([
            "--ref",
            "demo/x86_64/base",
            "-i",
            "raw",
            "--size",
            "4G",
            "--json",
        ])
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let image = out.join("fedora-atomic-29.raw");

    // The plan and metadata.json describe the layout: 4096 MiB - (1 + 1 + 127 + 300 MiB before the
    // PV + 1 MiB after it) = 3666 MiB PV, minus LVM's 1 MiB header = 916 extents of 4 MiB; the
    // 3000 MiB root takes 750, 166 stay free for docker-storage-setup.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metadata.json")).unwrap()).unwrap();
    let vg = &meta["disk"]["volume_groups"][0];
    assert_eq!(vg, &result["plan"]["volume_groups"][0]);
    assert_eq!(vg["name"], "atomicos");
    assert_eq!(vg["extent_size"], 4u64 << 20);
    assert_eq!(
        (vg["total_extents"].as_u64(), vg["free_extents"].as_u64()),
        (Some(916), Some(166))
    );
    let root = &vg["lvs"][0];
    assert_eq!(
        (root["name"].as_str(), root["extents"].as_u64()),
        (Some("root"), Some(750))
    );
    assert_eq!(root["filesystem"]["kind"], "xfs");
    let roles: Vec<&str> = meta["disk"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["bios-boot", "esp", "boot", "lvm-pv"]);
    let log = std::fs::read_to_string(out.join("logs/fedora-atomic-29.log")).unwrap();
    assert!(
        log.contains("volume group atomicos: extent size 4096 KiB, 916 extents (3664 MiB), 166 free (664 MiB)"),
        "{log}"
    );

    // LVM itself reads the PV, VG and LV from the image.
    let pv = &vg["pvs"][0];
    {
        let dev = LoopDevice::attach_read_only(
            &image,
            pv["offset"].as_u64().unwrap(),
            pv["size"].as_u64().unwrap(),
        )
        .unwrap();
        let dev = dev.path().to_str().unwrap();
        let pvck = tool("pvck", &["-v", dev]);
        assert!(pvck.contains("Found label on"), "{pvck}");
        let filter = ["--readonly", "--devices", dev];
        let vgs = tool(
            "vgs",
            &[
                &filter[..],
                &[
                    "--noheadings",
                    "--nosuffix",
                    "--units",
                    "m",
                    "-o",
                    "vg_name,pv_count,lv_count,vg_extent_count,vg_free_count,vg_free",
                ],
            ]
            .concat(),
        );
        let fields: Vec<&str> = vgs.split_whitespace().collect();
        assert_eq!(
            fields,
            ["atomicos", "1", "1", "916", "166", "664.00"],
            "{vgs}"
        );
        let lvs = tool(
            "lvs",
            &[
                &filter[..],
                &[
                    "--noheadings",
                    "--nosuffix",
                    "--units",
                    "m",
                    "-o",
                    "vg_name,lv_name,lv_size,seg_pe_ranges",
                ],
            ]
            .concat(),
        );
        let fields: Vec<&str> = lvs.split_whitespace().collect();
        assert_eq!(
            fields,
            ["atomicos", "root", "3000.00", &format!("{dev}:0-749")],
            "{lvs}"
        );
    }

    // The root LV's XFS is clean where the LV's extents put it.
    {
        let dev = LoopDevice::attach_read_only(
            &image,
            root["offset"].as_u64().unwrap(),
            root["size"].as_u64().unwrap(),
        )
        .unwrap();
        let dev = dev.path().to_str().unwrap();
        let repair = tool("xfs_repair", &["-n", dev]);
        assert!(!repair.contains("would "), "{repair}");
        // The deployment's files are still hard links into /ostree/repo inside the XFS.
        let commit = result["commit"].as_str().unwrap();
        let path = format!("/ostree/deploy/fedora-atomic/deploy/{commit}.0/usr/bin/findmnt");
        let n = link_count(Path::new(dev), &path).unwrap();
        assert!(n > 1, "findmnt in the deployment has {n} link(s)");
        let uuid = tool("blkid", &["-p", "-o", "value", "-s", "UUID", dev]);
        assert_eq!(uuid.trim(), root["filesystem"]["uuid"].as_str().unwrap());
    }

    // And it boots: the initramfs activates atomicos/root and / comes from it.
    let mut spec = BootSpec::new(&image);
    spec.timeout = Duration::from_secs(600);
    spec.markers = vec![ROOT_MARKER.to_string(), "login:".to_string()];
    spec.work_dir = Some(d.path().join("boot"));
    let report = boot_test::run(&spec).unwrap();
    report.ensure_success().unwrap();
    let cmdline = report.kernel_cmdline.clone().unwrap_or_default();
    assert!(
        cmdline.contains("root=/dev/mapper/atomicos-root rd.lvm.lv=atomicos/root rw"),
        "{cmdline}"
    );
    let serial = std::fs::read_to_string(d.path().join("boot/serial.log")).unwrap_or_default();
    assert!(
        serial.contains(&format!("{ROOT_MARKER} FSTYPE=xfs")),
        "{serial}"
    );
    eprintln!(
        "atomic LVM+XFS image: login prompt after {:?} s",
        report.login_prompt_seconds
    );
}
