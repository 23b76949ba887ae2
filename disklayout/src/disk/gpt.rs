//! Writes the GPT (primary + backup) and the protective MBR of a [`DiskPlan`] onto a disk image
//! file or a block device with the `gpt` crate. Partition GUIDs and the disk GUID come from the
//! plan (reproducible builds).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, ensure};
use gpt::disk::LogicalBlockSize;
use gpt::mbr::ProtectiveMBR;
use gpt::partition_types::{OperatingSystem, Type};
use uuid::Uuid;

use crate::plan::{DiskPlan, SECTOR};

/// Writes the protective MBR and both GPT headers/tables into an image file of exactly the plan's
/// size. Keeps any boot code already in LBA 0 (so it may run before or after the BIOS GRUB step).
pub fn write_gpt(file: &mut File, plan: &DiskPlan) -> Result<()> {
    let len = file.metadata().context("reading disk image size")?.len();
    ensure!(
        len == plan.size_bytes,
        "disk image is {len} bytes, the plan says {}",
        plan.size_bytes
    );
    write_gpt_on(file, plan)
}

/// [`write_gpt`] on any disk at least as large as the plan (a block device): the backup table
/// goes at the device's real end, found by seeking there.
pub fn write_gpt_on<D>(dev: &mut D, plan: &DiskPlan) -> Result<()>
where
    D: Read + Write + Seek + std::fmt::Debug,
{
    let len = dev
        .seek(SeekFrom::End(0))
        .context("reading the disk's size")?;
    dev.rewind().context("seeking to the disk's start")?;
    ensure!(
        len >= plan.size_bytes,
        "the disk is {len} bytes, the plan needs {}",
        plan.size_bytes
    );
    let sectors = len / SECTOR;
    let bootcode = gpt::mbr::read_bootcode(&mut *dev).context("reading MBR boot code")?;
    let mut mbr = ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr.set_bootcode(bootcode);
    // A fixed disk signature keeps the image reproducible; derived from the disk GUID.
    let g = plan.disk_guid.as_bytes();
    mbr.set_disk_signature([g[0], g[1], g[2], g[3]]);
    mbr.overwrite_lba0(&mut *dev)
        .context("writing protective MBR")?;

    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb512)
        .create_from_device(&mut *dev, Some(plan.disk_guid))
        .context("creating GPT")?;
    let last_usable = disk.header().last_usable;
    for p in &plan.partitions {
        let last = p.start_lba + p.sectors - 1;
        ensure!(
            last <= last_usable,
            "partition {} ends at LBA {last}, beyond the last usable LBA {last_usable}",
            p.number
        );
        let ty = Type {
            guid: Uuid::parse_str(&p.type_guid).context("partition type GUID")?,
            os: OperatingSystem::None,
        };
        disk.add_partition_at(&p.name, p.number, p.start_lba, p.sectors, ty, p.attributes)
            .with_context(|| format!("adding GPT partition {} ({})", p.number, p.name))?;
    }
    let mut parts: BTreeMap<u32, gpt::partition::Partition> = disk.take_partitions();
    for p in &plan.partitions {
        if let Some(entry) = parts.get_mut(&p.number) {
            entry.part_guid = p.guid;
        }
    }
    disk.update_partitions(parts)
        .context("setting partition GUIDs")?;
    disk.write().context("writing GPT")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    use super::*;
    use crate::plan::request::{DiskRequest, PartitionRequest};
    use crate::plan::{IdSource, Layout, MIB};

    fn run_text(cmd: &mut Command) -> String {
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    #[test]
    fn gpt_is_sgdisk_clean_and_matches_plan() {
        let req = DiskRequest {
            source_name: "t.ks".into(),
            partitions: vec![
                PartitionRequest {
                    line: 1,
                    mountpoint: "/".into(),
                    grow: true,
                    size_mib: Some(8),
                    ..Default::default()
                },
                PartitionRequest {
                    line: 2,
                    mountpoint: "/boot".into(),
                    size_mib: Some(16),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let plan = Layout::from_request(&req, &IdSource::derived(b"gpt-test"))
            .unwrap()
            .allocate(&BTreeMap::new(), Some(200 * MIB))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let mut f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        f.set_len(plan.size_bytes).unwrap();
        write_gpt(&mut f, &plan).unwrap();
        drop(f);
        let out = run_text(Command::new("sgdisk").arg("-v").arg(&path));
        assert!(out.contains("No problems found"), "{out}");
        let dump = run_text(Command::new("sfdisk").arg("-d").arg(&path));
        assert!(
            dump.contains(&format!(
                "label-id: {}",
                plan.disk_guid.to_string().to_uppercase()
            )),
            "{dump}"
        );
        for p in &plan.partitions {
            let line = dump
                .lines()
                .find(|l| {
                    l.split(',').any(|f| {
                        f.split_once("start=")
                            .is_some_and(|(_, v)| v.trim() == p.start_lba.to_string())
                    })
                })
                .unwrap_or_else(|| panic!("partition {} missing in\n{dump}", p.number));
            assert!(line.contains(&p.type_guid.to_uppercase()), "{line}");
            assert!(line.contains(&p.guid.to_string().to_uppercase()), "{line}");
            assert!(line.contains(&format!("name=\"{}\"", p.name)), "{line}");
        }
        assert!(dump.contains("attrs=\"LegacyBIOSBootable\""), "{dump}");
        // Root was grown to the end of the 200 MiB disk, leaving 1 MiB for the backup table.
        let root = plan.partitions.last().unwrap();
        assert_eq!((root.start_lba + root.sectors) * SECTOR, 199 * MIB);
    }
}
