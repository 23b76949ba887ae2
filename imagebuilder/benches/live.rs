//! The live build (`image -i pxe-live -i live-iso` of the demo kickstart) against its floor, in the
//! same run: the same tree deployed with the `ostree` command line, `mkfs.ext4 -d`, `mksquashfs`
//! with the same compression, and the ISO written by `grub-mkrescue` (xorriso), by hand in one
//! script.
//!
//! usage: cargo bench -p imagebuilder --bench live -- [ROUNDS]   (default 3; needs root and the
//! demo tree, which it builds when missing). Prints the median times and the ratio (target ≤ 1.0).
//!
//! The build does more than the floor: the kickstart's system configuration and `%post`, the
//! initramfs check, the cpio variant, the boot configs, GRUB images and `SHA256SUMS`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use imagebuilder::build::kickstart::{KickstartImageOptions, build_from_kickstart_file};
use imagebuilder::build::publish::OutputFormat;

/// The floor, by hand. $1 = repo, $2 = ref, $3 = work directory.
const FLOOR: &str = r#"
set -euo pipefail
repo=$1 ref=$2 w=$3
mkdir -p "$w/sysroot" "$w/squash/LiveOS" "$w/iso/LiveOS" "$w/iso/boot/grub"
s=$w/sysroot
ostree admin init-fs --modern "$s"
ostree config --repo "$s/ostree/repo" set sysroot.bootloader none
ostree admin os-init demo --sysroot "$s"
ostree --repo="$s/ostree/repo" pull-local "$repo" "$ref" >/dev/null
ostree --repo="$s/ostree/repo" refs --create "demo:$ref" "$ref"
ostree admin deploy --sysroot "$s" --os demo "demo:$ref" --karg=rw >/dev/null
need=$(du -sm --apparent-size "$s" | cut -f1)
mkfs.ext4 -q -F -L LiveOS -d "$s" "$w/squash/LiveOS/rootfs.img" "$((need * 11 / 10 + 64))M"
mksquashfs "$w/squash" "$w/live.img" -comp zstd -Xcompression-level 3 -noappend -no-progress -quiet
ln "$w/live.img" "$w/iso/LiveOS/squashfs.img"
cp "$s"/boot/ostree/demo-*/vmlinuz-* "$w/iso/vmlinuz"
cp "$s"/boot/ostree/demo-*/initramfs-* "$w/iso/initrd.img"
printf 'menuentry live {\n linux /vmlinuz root=live:CDLABEL=FLOOR rd.live.image\n initrd /initrd.img\n}\n' > "$w/iso/boot/grub/grub.cfg"
grub-mkrescue -o "$w/live.iso" "$w/iso" -- -volid FLOOR 2>/dev/null
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn floor(repo: &Path, reference: &str, work: &Path) -> f64 {
    let t = Instant::now();
    let o = Command::new("bash")
        .args(["-c", FLOOR, "floor"])
        .arg(repo)
        .arg(reference)
        .arg(work)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "floor: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let secs = t.elapsed().as_secs_f64();
    // Deployments are immutable: clear the flag before removing the tree.
    let _ = Command::new("sh")
        .arg("-c")
        .arg("chattr -R -i \"$1\" 2>/dev/null; rm -rf \"$1\"")
        .arg("sh")
        .arg(work)
        .status();
    secs
}

fn ours(repo: &Path, out: &Path) -> f64 {
    let ks = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kickstarts/demo-qcow2.ks"
    ));
    let t = Instant::now();
    build_from_kickstart_file(
        ks,
        KickstartImageOptions {
            ostree_repo: Some(repo.to_path_buf()),
            formats: vec![OutputFormat::PxeLive, OutputFormat::LiveIso],
            outdir: out.to_path_buf(),
            name: Some("demo".into()),
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(out).unwrap();
    secs
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let tree = imagebuilder::tree::demo::ensure_demo_tree(None).unwrap();
    let d = tempfile::tempdir().unwrap();
    let (mut f, mut o) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        f.push(floor(
            &tree.repo,
            &tree.reference,
            &d.path().join(format!("floor-{i}")),
        ));
        o.push(ours(&tree.repo, &d.path().join(format!("ours-{i}"))));
        eprintln!("round {i}: floor {:.2}s, imagebuilder {:.2}s", f[i], o[i]);
    }
    let (mf, mo) = (median(f), median(o));
    println!(
        "live build: floor (ostree deploy + mkfs.ext4 -d + mksquashfs + grub-mkrescue) {mf:.2}s"
    );
    println!("live build: imagebuilder image -i pxe-live -i live-iso {mo:.2}s");
    println!("ratio imagebuilder/floor: {:.2} (target <= 1.0)", mo / mf);
}
