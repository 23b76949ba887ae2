//! Confinement of programs an image build runs over a target tree (kickstart `%post` scripts).
//!
//! bubblewrap run by root keeps every capability and stays in the host's user namespace, so its
//! read-only binds are only a convention: a script could `mount -o remount,rw` them and write to
//! the host or to the repository objects behind a deployment's `/usr`. Here the sandbox:
//!
//! * runs in a **user namespace** of its own. When the builder is root, every uid and gid of it is
//!   mapped to itself (so `chown` inside the target works for any owner); otherwise bubblewrap makes
//!   one that maps only the caller. Capabilities held in it count for nothing outside it: no
//!   device node can be made, no kernel module loaded, no host file opened by handle;
//! * keeps only [`SCRIPT_CAPABILITIES`] (owners, modes, set-id programs such as `su`, `chroot`):
//!   not `CAP_SYS_ADMIN`, so nothing can be mounted, unmounted or remounted, and the read-only
//!   binds stay read-only. bubblewrap also drops the rest from the bounding set and sets
//!   `no_new_privs`, so no set-id or file-capability program can get them back.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::cmd::{CommandExt as _, require_program};

/// What a script may still do as root inside the target: change owners and modes of its files,
/// override their permissions, run set-id programs, signal its own processes, `chroot`, set file
/// capabilities, write audit records (PAM).
pub const SCRIPT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_KILL",
    "CAP_SYS_CHROOT",
    "CAP_SETFCAP",
    "CAP_AUDIT_WRITE",
];

/// The descriptor number bubblewrap gets the namespace on.
const USERNS_FD: i32 = 3;

/// A user namespace with the identity mapping of all uids and gids, held by a descriptor.
#[derive(Debug)]
pub struct UserNamespace {
    ns: File,
}

impl UserNamespace {
    /// A new namespace when running as root; `None` otherwise (bubblewrap then makes its own).
    pub fn for_scripts() -> Result<Option<UserNamespace>> {
        if !rustix::process::geteuid().is_root() {
            return Ok(None);
        }
        require_program("unshare")?;
        let mut holder = Command::new("unshare");
        holder
            .args(["--user", "--", "sleep", "infinity"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = holder.spawn_logged()?;
        let made = Self::map(child.id());
        let _ = child.kill();
        let _ = child.wait();
        made.map(Some)
    }

    fn map(pid: u32) -> Result<UserNamespace> {
        let own = std::fs::read_link("/proc/self/ns/user").context("reading /proc/self/ns/user")?;
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let start = Instant::now();
        // `unshare` enters the namespace right after it starts; wait for that.
        loop {
            match std::fs::read_link(proc_dir.join("ns/user")) {
                Ok(ns) if ns != own => break,
                _ if start.elapsed() > Duration::from_secs(10) => {
                    bail!("unshare --user did not create a user namespace within 10 s")
                }
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        for map in ["uid_map", "gid_map"] {
            std::fs::write(proc_dir.join(map), "0 0 4294967295\n")
                .with_context(|| format!("writing the sandbox's {map}"))?;
        }
        let ns =
            File::open(proc_dir.join("ns/user")).context("opening the sandbox's user namespace")?;
        Ok(UserNamespace { ns })
    }
}

/// Adds the confinement options to a `bwrap` command line (before its other options).
pub fn confine(c: &mut Command, ns: Option<&UserNamespace>) {
    match ns {
        Some(ns) => {
            pass_as_fd3(c, ns);
            c.args(["--userns", &USERNS_FD.to_string()]);
        }
        None => {
            c.args(["--unshare-user", "--uid", "0", "--gid", "0"]);
        }
    }
    c.args(["--cap-drop", "ALL"]);
    for cap in SCRIPT_CAPABILITIES {
        c.args(["--cap-add", cap]);
    }
}

/// Makes the namespace descriptor descriptor 3 of the child (std passes only 0, 1 and 2).
#[allow(unsafe_code)]
fn pass_as_fd3(c: &mut Command, ns: &UserNamespace) {
    let raw = ns.ns.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only makes system calls (dup2,
    // fcntl), which are async-signal-safe; `raw` stays open in the parent until the command has
    // been spawned because `ns` outlives it (the caller holds it across the spawn), and the
    // `OwnedFd` for descriptor 3 is forgotten so that it is not closed here.
    unsafe {
        c.pre_exec(move || {
            let src = BorrowedFd::borrow_raw(raw);
            if raw == USERNS_FD {
                rustix::io::fcntl_setfd(src, rustix::io::FdFlags::empty())?;
            } else {
                let mut dst = OwnedFd::from_raw_fd(USERNS_FD);
                let r = rustix::io::dup2(src, &mut dst);
                std::mem::forget(dst);
                r?;
            }
            Ok(())
        });
    }
}
