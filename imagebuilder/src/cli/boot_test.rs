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
    /// Install from this installer ISO onto IMAGE (created blank with --disk-size when missing),
    /// wait for the machine to stop, check the installer's verdict, then boot IMAGE alone with the
    /// other options (markers, login, commands)
    #[arg(long, value_name = "ISO", requires = "image", conflicts_with_all = ["cdrom", "netboot"])]
    install: Option<PathBuf>,
    /// Size of the blank target disk --install creates (e.g. 8G)
    #[arg(long, value_name = "SIZE", requires = "install", value_parser = super::image::parse_size)]
    disk_size: Option<u64>,
    /// Give up on the install run after this many seconds
    #[arg(long, default_value_t = 900, requires = "install")]
    install_timeout: u64,
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
    let install = a
        .install
        .clone()
        .map(|iso| (iso, a.disk_size, a.install_timeout));
    let json = a.json;
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
    if let Some((iso, disk_size, timeout)) = install {
        return install_then_boot(spec, iso, disk_size, timeout, json);
    }
    let report = run(&spec)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
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

/// `--install`: the install run, then the boot of the installed disk.
fn install_then_boot(
    spec: BootSpec,
    iso: PathBuf,
    disk_size: Option<u64>,
    timeout: u64,
    json: bool,
) -> Result<ExitCode> {
    use imagebuilder::boot_test::install::{InstallSpec, run_install};
    let disk = spec.image.clone().unwrap_or_default();
    let r = run_install(&InstallSpec {
        iso,
        disk,
        disk_size,
        install_timeout: Duration::from_secs(timeout),
        uefi: spec.uefi,
        memory_mib: spec.memory_mib,
        work_dir: spec.work_dir.clone(),
        boot: Some(spec),
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("install serial log: {}", r.install.serial_log.display());
        for l in &r.installer_lines {
            println!("installer: {l}");
        }
        if let Some(s) = r.install_seconds {
            println!("install run: {s:.1} s");
        }
        if let Some(b) = &r.boot {
            print_report(b);
        }
    }
    if let Some(f) = &r.failure {
        eprintln!("error: {f}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &imagebuilder::boot_test::BootReport) {
    {
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
}
