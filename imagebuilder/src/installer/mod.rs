//! The native unattended installer ISO: the live system of the commit (as on the live ISO) that,
//! booted with `imagebuilder.install`, lays the kickstart's disk image onto the machine's disk.
//!
//! The design, image-based: the builder writes the kickstart's disk exactly as `imagebuilder image`
//! does (deployment, system configuration, `%post`, filesystems, GRUB), at its smallest size, and
//! puts it on the ISO as a stream of its data extents with a payload saying how it was laid out
//! ([`disklayout::install::Payload`]). On the target, the static helper built from this workspace
//! (`imagebuilder-installer`, embedded here as [`HELPER`]) re-plans the same layout for the real
//! disk with the same planner (`--grow` partitions and LVs take the room), copies each volume to
//! its new place, writes the GPT and LVM metadata with the same writers, and grows ext4, XFS and
//! btrfs online through the kernel. The installed disk is then what `imagebuilder image --size`
//! of the disk's size would have written, filesystems grown instead of made larger: nothing of
//! the install depends on which tools the tree ships.
//!
//! This module writes the ISO's `install/` folder and the live root's systemd unit that starts the
//! helper; [`crate::build`] drives it and [`crate::iso`] writes the ISO.

use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use disklayout::install::{
    Finish, IMAGE_FILE, KERNEL_ARG, MEDIUM_DIR, PAYLOAD_FILE, PROGRAM_FILE, Payload,
};

use crate::live::LiveFile;

/// The static installer helper, built from the workspace's `installer` crate by the build script.
pub static HELPER: &[u8] = include_bytes!(env!("IMAGEBUILDER_INSTALLER_HELPER"));

/// The unit's name in the live root.
pub const UNIT_NAME: &str = "imagebuilder-install.service";

/// Where dmsquash-live mounts the live medium.
const LIVE_MEDIUM: &str = "/run/initramfs/live";

/// The systemd unit that runs the helper from the medium when the kernel command line asks for an
/// install, and then does what the kickstart says (`SuccessAction=`); a failed install powers off.
pub fn unit_text(name: &str, finish: Finish) -> String {
    format!(
        "# Written by imagebuilder: installs {name} when booted with {KERNEL_ARG}.\n\
         [Unit]\n\
         Description=Install {name} onto this machine's disk\n\
         ConditionKernelCommandLine={KERNEL_ARG}\n\
         After=local-fs.target systemd-udev-settle.service\n\
         Wants=systemd-udev-settle.service\n\
         SuccessAction={}\n\
         FailureAction=poweroff\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={LIVE_MEDIUM}/{MEDIUM_DIR}/{PROGRAM_FILE} {LIVE_MEDIUM}/{MEDIUM_DIR}\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n\
         TimeoutStartSec=infinity\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        finish.unit_action()
    )
}

/// The files the live root gets for the installer: the unit and its `multi-user.target.wants` link.
pub fn live_files(name: &str, finish: Finish) -> Vec<LiveFile> {
    vec![
        LiveFile::Data {
            path: format!("etc/systemd/system/{UNIT_NAME}"),
            content: unit_text(name, finish).into_bytes(),
        },
        LiveFile::Symlink {
            path: format!("etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"),
            target: format!("../{UNIT_NAME}"),
        },
    ]
}

/// Writes the medium's `install/` folder into `iso_tree`: the helper, the payload and the image's
/// data extents (without all-zero blocks). Returns the image stream's size.
pub fn write_medium_dir(iso_tree: &Path, payload: &Payload, raw: &Path) -> Result<u64> {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    let dir = iso_tree.join(MEDIUM_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let helper = dir.join(PROGRAM_FILE);
    std::fs::write(&helper, HELPER).with_context(|| format!("writing {}", helper.display()))?;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))?;
    let json = serde_json::to_string_pretty(payload).context("encoding the install payload")?;
    std::fs::write(dir.join(PAYLOAD_FILE), json + "\n").context("writing the install payload")?;
    let image = std::fs::File::open(raw).with_context(|| format!("opening {}", raw.display()))?;
    let len = image.metadata()?.len();
    let runs: Vec<(u64, u64)> = crate::output::qcow2::data_extents(&image, len)?
        .into_iter()
        .map(|(s, e)| (s, e - s))
        .collect();
    let runs =
        disklayout::install::drop_zero_blocks(&runs, 64 << 10, |at, b| image.read_exact_at(b, at))
            .context("reading the disk image")?;
    let path = dir.join(IMAGE_FILE);
    let out =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(4 << 20, out);
    disklayout::install::write_extents(&mut w, &image, &runs)
        .with_context(|| format!("writing {}", path.display()))?;
    drop(w);
    Ok(std::fs::metadata(&path)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_helper_is_a_static_executable() {
        // ELF64, x86-64 or the host's machine; no PT_INTERP program header (static).
        assert_eq!(&HELPER[..4], b"\x7fELF");
        assert_eq!(HELPER[4], 2, "ELF64");
        let u16_at = |o: usize| u16::from_le_bytes([HELPER[o], HELPER[o + 1]]) as usize;
        let u64_at = |o: usize| u64::from_le_bytes(HELPER[o..o + 8].try_into().unwrap()) as usize;
        let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
        assert!(phnum > 0);
        for i in 0..phnum {
            let ty = u32::from_le_bytes(
                HELPER[phoff + i * phentsize..phoff + i * phentsize + 4]
                    .try_into()
                    .unwrap(),
            );
            assert_ne!(ty, 3, "the helper has an interpreter: it is not static");
        }
    }

    #[test]
    fn the_unit_runs_only_with_the_kernel_argument_and_finishes_as_the_kickstart_says() {
        let u = unit_text("demo", Finish::Reboot { eject: false });
        assert!(
            u.contains("ConditionKernelCommandLine=imagebuilder.install\n"),
            "{u}"
        );
        // systemd reads SuccessAction= only in [Unit].
        let unit_section = u.split("[Service]").next().unwrap();
        assert!(unit_section.contains("SuccessAction=reboot\n"), "{u}");
        assert!(unit_section.contains("FailureAction=poweroff\n"), "{u}");
        assert!(
            u.contains("ExecStart=/run/initramfs/live/install/imagebuilder-installer /run/initramfs/live/install\n"),
            "{u}"
        );
        assert!(unit_text("d", Finish::Halt).contains("SuccessAction=halt\n"));
    }
}
