//! `imagebuilder boot-test`: clap type and dispatch to [`imagebuilder::boot_test`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use imagebuilder::boot_test::{AccelChoice, BootSpec, Login, Netboot, run};

/// Boot a disk image, an ISO or a netboot directory in QEMU (KVM or TCG) and wait for a login prompt or
/// the given markers on the serial console
#[derive(Debug, Args)]
pub struct BootTestArgs {
    /// Disk image to boot (raw or qcow2; opened with snapshot=on, never modified, unless
    /// --writable-disk)
    image: Option<PathBuf>,
    /// ISO image to attach as a CD-ROM and boot from (before IMAGE, if both are given)
    #[arg(long, value_name = "ISO")]
    cdrom: Option<PathBuf>,
    /// Netboot from this directory: the TFTP root, also served over HTTP; `<URL>` in its text
    /// files becomes the server's URL as the guest sees it (http://10.0.2.2:PORT)
    #[arg(long, value_name = "DIR")]
    netboot: Option<PathBuf>,
    /// File in the netboot DIR the firmware boots (default: pxelinux.0, with --uefi grubx64.efi)
    #[arg(long, value_name = "NAME", requires = "netboot")]
    bootfile: Option<String>,
    /// Open IMAGE writable (no snapshot), e.g. for an installer booted with --cdrom or --netboot
    #[arg(long, requires = "image")]
    writable_disk: bool,
    /// Boot with UEFI firmware (OVMF) instead of BIOS (SeaBIOS)
    #[arg(long)]
    uefi: bool,
    /// Give up (and kill QEMU) after this many seconds
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Text that must appear on the console (repeatable); default: a login prompt
    #[arg(long = "marker", value_name = "TEXT")]
    markers: Vec<String>,
    /// Log in as root with this password after the prompt and print the kernel command line
    #[arg(long, value_name = "PASSWORD")]
    root_password: Option<String>,
    /// Command to run after logging in (repeatable; needs --root-password)
    #[arg(long = "run", value_name = "COMMAND", requires = "root_password")]
    commands: Vec<String>,
    /// Directory for serial.log (default: a new directory under the temp dir)
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 2048)]
    memory: u32,
    /// QEMU accelerator: auto (KVM when /dev/kvm runs a guest here, else TCG), kvm or tcg
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// Print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for AccelChoice {
    fn from(a: AccelArg) -> AccelChoice {
        match a {
            AccelArg::Auto => AccelChoice::Auto,
            AccelArg::Kvm => AccelChoice::Kvm,
            AccelArg::Tcg => AccelChoice::Tcg,
        }
    }
}

pub fn boot_test(a: BootTestArgs) -> Result<ExitCode> {
    if a.image.is_none() && a.cdrom.is_none() && a.netboot.is_none() {
        bail!("nothing to boot: give a disk IMAGE, --cdrom ISO or --netboot DIR");
    }
    let mut spec = BootSpec {
        image: a.image,
        cdrom: a.cdrom,
        writable_disk: a.writable_disk,
        netboot: a.netboot.map(|dir| Netboot {
            dir,
            bootfile: a.bootfile,
        }),
        ..BootSpec::default()
    };
    spec.uefi = a.uefi;
    spec.timeout = Duration::from_secs(a.timeout);
    spec.markers = a.markers;
    spec.memory_mib = a.memory;
    spec.accel = a.accel.into();
    spec.work_dir = a.log_dir;
    spec.login = a.root_password.map(|pw| Login {
        user: "root".into(),
        password: Some(pw),
        commands: a.commands,
    });
    let report = run(&spec)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("serial log: {}", report.serial_log.display());
        println!("accelerator: {}", report.accel);
        for m in &report.markers {
            match m.seconds {
                Some(s) => println!("marker {:?}: {s:.1} s", m.marker),
                None => println!("marker {:?}: not seen", m.marker),
            }
        }
        if let Some(s) = report.login_prompt_seconds {
            println!("login prompt: {s:.1} s");
        }
        if let Some(c) = &report.kernel_cmdline {
            println!("kernel command line: {c}");
        }
        if let Some(u) = &report.http_url {
            println!("netboot HTTP server: {u}");
        }
        for r in &report.http_requests {
            println!(
                "HTTP {} {} -> {} ({} bytes)",
                r.method, r.path, r.status, r.bytes
            );
        }
        for c in report.commands.iter().skip(1) {
            println!(
                "$ {}  (exit {:?})\n{}",
                c.command,
                c.exit_status,
                c.output.trim_end()
            );
        }
        println!(
            "{} after {:.1} s",
            if report.success { "booted" } else { "FAILED" },
            report.elapsed_seconds
        );
    }
    if !report.success {
        eprintln!(
            "error: {}",
            report
                .ensure_success()
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
