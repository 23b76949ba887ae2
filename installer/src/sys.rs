//! The kernel interfaces the installer needs and no tool of the installed tree has to provide:
//! zeroing ranges of a disk, loop devices over a byte range of it, mounting, growing ext4, XFS and
//! btrfs online, re-reading the partition table, ejecting the medium. Raw `ioctl`s with the
//! kernel's UAPI numbers and structures.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use libc::c_ulong;

const BLKZEROOUT: c_ulong = 0x127f;
const BLKRRPART: c_ulong = 0x125f;
const CDROMEJECT: c_ulong = 0x5309;
const LOOP_SET_FD: c_ulong = 0x4C00;
const LOOP_CLR_FD: c_ulong = 0x4C01;
const LOOP_SET_STATUS64: c_ulong = 0x4C04;
const LOOP_CONFIGURE: c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const EXT4_IOC_RESIZE_FS: c_ulong = 0x4008_6610;
const XFS_IOC_FSGEOMETRY_V1: c_ulong = 0x8070_5864;
const XFS_IOC_FSGROWFSDATA: c_ulong = 0x4010_586e;
const BTRFS_IOC_RESIZE: c_ulong = 0x5000_9403;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Zeroes `len` bytes at `offset` of a block device (`BLKZEROOUT`: the device's write-zeroes when
/// it has one), writing zeros when the ioctl is refused.
pub fn zero_out(dev: &File, offset: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 from the pointer, which points at `range`.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), BLKZEROOUT, range.as_ptr()) };
    if r == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        dev.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Asks the kernel to re-read the partition table (`BLKRRPART`).
pub fn reread_partitions(dev: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), BLKRRPART, 0) }).map(drop)
}

/// Ejects the medium of a CD-ROM drive.
pub fn eject(dev: &Path) -> io::Result<()> {
    let f = File::options()
        .read(true)
        .custom_flags_nonblock()
        .open(dev)?;
    // SAFETY: CDROMEJECT takes no argument.
    check(unsafe { libc::ioctl(f.as_raw_fd(), CDROMEJECT, 0) }).map(drop)
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A loop device over `size` bytes at `offset` of a disk; detached when dropped.
pub struct Loop {
    file: File,
    pub path: PathBuf,
}

impl Loop {
    pub fn attach(backing: &File, offset: u64, size: u64) -> io::Result<Loop> {
        let ctl = File::options()
            .read(true)
            .write(true)
            .open("/dev/loop-control")?;
        let mut last = io::Error::other("no free loop device");
        for _ in 0..5 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let n = check(unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE, 0) })?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let file = match open_when_there(&path) {
                Ok(f) => f,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match configure(&file, backing, offset, size) {
                Ok(()) => return Ok(Loop { file, path }),
                // Taken by someone else in the meantime: ask again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { libc::ioctl(self.file.as_raw_fd(), LOOP_CLR_FD, 0) };
    }
}

fn open_when_there(path: &Path) -> io::Result<File> {
    let mut tries = 0;
    loop {
        match File::options().read(true).write(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn configure(dev: &File, backing: &File, offset: u64, size: u64) -> io::Result<()> {
    let info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: offset,
        lo_sizelimit: size,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_AUTOCLEAR,
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, laid out as `LoopConfig`.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) {
        return Err(e);
    }
    // Kernels before 5.8: attach, then set the range.
    // SAFETY: LOOP_SET_FD takes the backing file descriptor as its argument.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) })?;
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, laid out as `LoopInfo64`.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, &info) };
    if r < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: as in Drop.
        unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
        return Err(e);
    }
    Ok(())
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// A filesystem mounted at a directory; unmounted when dropped.
pub struct Mounted {
    pub dir: PathBuf,
}

impl Mounted {
    pub fn mount(device: &Path, dir: &Path, fstype: &str) -> io::Result<Mounted> {
        std::fs::create_dir_all(dir)?;
        let (src, target) = (cstr(device)?, cstr(dir)?);
        let ty = CString::new(fstype).map_err(io::Error::other)?;
        // SAFETY: all pointers are NUL-terminated strings that live through the call; no data.
        check(unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                ty.as_ptr(),
                0,
                std::ptr::null(),
            )
        })?;
        Ok(Mounted {
            dir: dir.to_path_buf(),
        })
    }

    /// Unmounts, reporting failure.
    pub fn unmount(self) -> io::Result<()> {
        let r = umount(&self.dir);
        std::mem::forget(self);
        r
    }
}

fn umount(dir: &Path) -> io::Result<()> {
    let target = cstr(dir)?;
    // SAFETY: a NUL-terminated path living through the call.
    check(unsafe { libc::umount2(target.as_ptr(), 0) }).map(drop)
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount(&self.dir);
    }
}

fn block_size(dir: &File) -> io::Result<u64> {
    // SAFETY: statfs is plain data; fstatfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid statfs to fill.
    check(unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) })?;
    Ok(st.f_bsize as u64)
}

/// Grows the ext4 (or ext3) filesystem mounted at `dir` to `size` bytes.
pub fn grow_ext4(dir: &Path, size: u64) -> io::Result<()> {
    let d = File::open(dir)?;
    let blocks: u64 = size / block_size(&d)?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64, the new block count.
    check(unsafe { libc::ioctl(d.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks) }).map(drop)
}

#[repr(C)]
struct XfsGeometryV1 {
    blocksize: u32,
    rtextsize: u32,
    agblocks: u32,
    agcount: u32,
    logblocks: u32,
    sectsize: u32,
    inodesize: u32,
    imaxpct: u32,
    datablocks: u64,
    rtblocks: u64,
    rtextents: u64,
    logstart: u64,
    uuid: [u8; 16],
    sunit: u32,
    swidth: u32,
    version: i32,
    flags: u32,
    logsectsize: u32,
    rtsectsize: u32,
    dirblocksize: u32,
}

#[repr(C)]
struct XfsGrowData {
    newblocks: u64,
    imaxpct: u32,
}

/// Grows the XFS filesystem mounted at `dir` to `size` bytes (its data section).
pub fn grow_xfs(dir: &Path, size: u64) -> io::Result<()> {
    let d = File::open(dir)?;
    // SAFETY: plain data, filled by the kernel.
    let mut geo: XfsGeometryV1 = unsafe { std::mem::zeroed() };
    // SAFETY: XFS_IOC_FSGEOMETRY_V1 fills a `struct xfs_fsop_geom_v1`, laid out as XfsGeometryV1.
    check(unsafe { libc::ioctl(d.as_raw_fd(), XFS_IOC_FSGEOMETRY_V1, &mut geo) })?;
    let grow = XfsGrowData {
        newblocks: size / u64::from(geo.blocksize.max(512)),
        imaxpct: geo.imaxpct,
    };
    // SAFETY: XFS_IOC_FSGROWFSDATA reads a `struct xfs_growfs_data`, laid out as XfsGrowData.
    check(unsafe { libc::ioctl(d.as_raw_fd(), XFS_IOC_FSGROWFSDATA, &grow) }).map(drop)
}

#[repr(C)]
struct BtrfsVolArgs {
    fd: i64,
    name: [u8; 4088],
}

/// Grows the btrfs filesystem mounted at `dir` to fill its device.
pub fn grow_btrfs(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    let mut args = BtrfsVolArgs {
        fd: 0,
        name: [0; 4088],
    };
    args.name[..3].copy_from_slice(b"max");
    // SAFETY: BTRFS_IOC_RESIZE reads a `struct btrfs_ioctl_vol_args`, laid out as BtrfsVolArgs.
    check(unsafe { libc::ioctl(d.as_raw_fd(), BTRFS_IOC_RESIZE, &args) }).map(drop)
}

/// `(major, minor)` of a device number.
pub fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// Flushes everything to the disks.
pub fn sync_all() {
    // SAFETY: no arguments.
    unsafe { libc::sync() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uapi_structures_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::size_of::<XfsGeometryV1>(), 112);
        assert_eq!(std::mem::size_of::<XfsGrowData>(), 16);
        assert_eq!(std::mem::size_of::<BtrfsVolArgs>(), 4096);
        // The size field of each ioctl number matches its structure.
        assert_eq!((XFS_IOC_FSGEOMETRY_V1 >> 16) & 0x3fff, 112);
        assert_eq!((XFS_IOC_FSGROWFSDATA >> 16) & 0x3fff, 16);
        assert_eq!((BTRFS_IOC_RESIZE >> 16) & 0x3fff, 4096);
        assert_eq!((EXT4_IOC_RESIZE_FS >> 16) & 0x3fff, 8);
    }

    #[test]
    fn device_numbers_split_like_the_kernels() {
        // 8:1 (sda1) and 259:65536 (a large minor).
        assert_eq!(major_minor(0x801), (8, 1));
        let dev = (259u64 << 8) | ((65536u64 & !0xff) << 12);
        assert_eq!(major_minor(dev), (259, 65536));
    }
}
