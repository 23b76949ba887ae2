//! Boot loaders: GRUB for BIOS (boot.img + core.img patched into the disk) and UEFI
//! (`EFI/BOOT/BOOTX64.EFI`), and `grub.cfg` from the deployment's boot entries ([`grub`]).

pub mod grub;
