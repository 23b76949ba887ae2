//! Boot an image in QEMU (KVM when `/dev/kvm` runs guests, else TCG) and watch its serial console.
//!
//! [`run`] starts `qemu-system-x86_64 -accel kvm|tcg` (the default `pc` machine, BIOS and UEFI
//! alike; the accelerator as [`choose_accel`] decides, logged and in the report)
//! with the image as a virtio disk opened with `snapshot=on` (the image file is never written
//! unless [`BootSpec::writable_disk`]), an ISO as an IDE CD-ROM ([`BootSpec::cdrom`]) or a
//! directory to netboot from ([`BootSpec::netboot`], see [`netboot`]), SeaBIOS or OVMF (a writable
//! copy of `OVMF_VARS_4M.fd` per run), and the first serial port on a Unix socket that QEMU also
//! logs to a file. It waits until every caller-given marker has appeared (or, without markers, a
//! login prompt), optionally logs in and runs shell commands, and returns a [`BootReport`]: the
//! serial log's path, seconds to each marker, the kernel command line, each command's output, what
//! a netbooted guest fetched over HTTP. QEMU is killed (and the netboot HTTP server stopped) on
//! timeout, on error and when the runner is dropped.
//!
//! Commands are framed by echoes of *computed* markers (`echo "IB-BEGIN-$((N+0))"; CMD; echo
//! "IB-END-$((N+0)):$?"`), so neither can be matched in the echo of the typed command line (see
//! native-disk.md §4), and a prompt printed around the line never ends up in the output.

pub mod install;
pub mod netboot;

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::util::cmd::CommandExt;

pub use netboot::{HttpRequest, HttpServer, Netboot, URL_PLACEHOLDER, build_netboot_root};

/// Where Debian's `ovmf` package puts the 4 MiB OVMF firmware.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// The variable store template copied per run.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The QEMU accelerator a boot runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's CPU emulator: works everywhere, many times slower.
    Tcg,
}

impl Accel {
    /// QEMU's name for it (`-accel NAME`).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM when it runs guests here, else TCG.
    #[default]
    Auto,
    /// KVM or an error.
    Kvm,
    /// TCG even when KVM works (timing as on a machine without it).
    Tcg,
}

/// Decides the accelerator from the request and what the KVM probe found; returns it with the
/// reason (for the log). Asking for KVM where it does not run guests is an error saying why.
pub fn choose_accel(
    choice: AccelChoice,
    kvm: &crate::host::kvm::KvmStatus,
) -> Result<(Accel, String)> {
    Ok(match (choice, kvm.usable) {
        (AccelChoice::Tcg, _) => (Accel::Tcg, "TCG as asked".to_string()),
        (_, true) => (Accel::Kvm, kvm.detail.clone()),
        (AccelChoice::Auto, false) => (Accel::Tcg, format!("no KVM: {}", kvm.detail)),
        (AccelChoice::Kvm, false) => bail!("KVM was asked for, but {}", kvm.detail),
    })
}

/// The accelerator a boot with [`AccelChoice::Auto`] uses in this process (the probe runs once).
pub fn auto_accel() -> Accel {
    choose_accel(AccelChoice::Auto, crate::host::kvm::status())
        .map(|(a, _)| a)
        .unwrap_or(Accel::Tcg)
}

/// The text taken as a login prompt when no marker is given.
pub const LOGIN_PROMPT: &str = "login:";

/// Boot a kernel directly (`-kernel/-initrd/-append`) instead of from the disk's boot loader.
#[derive(Debug, Clone, Serialize)]
pub struct DirectBoot {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
}

/// Log in over the serial console once the login prompt appears, and run commands.
#[derive(Debug, Clone, Serialize)]
pub struct Login {
    pub user: String,
    /// `None` for an account without a password.
    pub password: Option<String>,
    /// Shell commands run one after the other; `cat /proc/cmdline` is always run first.
    pub commands: Vec<String>,
}

/// What to boot and what to wait for.
///
/// Boot order: the netboot NIC, else the CD-ROM, then the disk (a `direct` kernel boots before
/// all of them). At least one of `image`, `cdrom`, `netboot` and `direct` must be given, and at
/// most one of `cdrom` and `netboot`.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The disk image (raw or qcow2, detected from its header), a virtio disk.
    pub image: Option<PathBuf>,
    /// Open `image` writable (without `snapshot=on`): for an installer booted from `cdrom` or
    /// `netboot` that writes the disk. The default leaves the image file untouched.
    pub writable_disk: bool,
    /// An ISO image attached read-only as an IDE CD-ROM and booted (El Torito, BIOS or UEFI).
    pub cdrom: Option<PathBuf>,
    /// Netboot from a directory over QEMU's user network (TFTP, and HTTP for `<URL>`).
    pub netboot: Option<Netboot>,
    pub uefi: bool,
    pub direct: Option<DirectBoot>,
    /// The whole run (boot, markers, login, commands) must finish within this.
    pub timeout: Duration,
    /// Texts that must all appear on the console; empty = wait for a login prompt.
    pub markers: Vec<String>,
    /// Wait for the machine to stop instead (power off or reboot: QEMU exits; halt: the kernel
    /// says `System halted`), after the markers: an installer's run.
    pub until_stopped: bool,
    pub login: Option<Login>,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Directory for `serial.log` (kept) and the run's scratch files (removed); `None` = a new
    /// directory under the system temp dir, kept so the log can be read afterwards.
    pub work_dir: Option<PathBuf>,
    pub ovmf_code: PathBuf,
    pub ovmf_vars: PathBuf,
    /// The accelerator: by default KVM when it works here, else TCG.
    pub accel: AccelChoice,
}

impl BootSpec {
    /// Defaults of `imagebuilder boot-test IMAGE`: BIOS, 2 GiB, 2 CPUs, 600 s, wait for `login:`.
    pub fn new(image: impl Into<PathBuf>) -> BootSpec {
        BootSpec {
            image: Some(image.into()),
            ..BootSpec::default()
        }
    }
}

impl Default for BootSpec {
    /// The defaults of [`BootSpec::new`] with nothing to boot yet.
    fn default() -> BootSpec {
        BootSpec {
            image: None,
            writable_disk: false,
            cdrom: None,
            netboot: None,
            uefi: false,
            direct: None,
            timeout: Duration::from_secs(600),
            markers: Vec::new(),
            until_stopped: false,
            login: None,
            memory_mib: 2048,
            cpus: 2,
            work_dir: None,
            ovmf_code: OVMF_CODE.into(),
            ovmf_vars: OVMF_VARS.into(),
            accel: AccelChoice::Auto,
        }
    }
}

/// When a marker was first seen.
#[derive(Debug, Clone, Serialize)]
pub struct MarkerHit {
    pub marker: String,
    /// Seconds from QEMU's start; `None` = not seen.
    pub seconds: Option<f64>,
}

/// One command run after logging in.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRun {
    pub command: String,
    pub output: String,
    pub exit_status: Option<i32>,
    pub seconds: f64,
}

/// The outcome of a boot test.
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub success: bool,
    /// The accelerator QEMU ran with (`"kvm"` or `"tcg"`).
    pub accel: Accel,
    /// Why it failed (timeout waiting for X, QEMU exited, login refused…).
    pub failure: Option<String>,
    pub serial_log: PathBuf,
    pub elapsed_seconds: f64,
    pub markers: Vec<MarkerHit>,
    /// Seconds to the first login prompt, when one was seen.
    pub login_prompt_seconds: Option<f64>,
    /// From `/proc/cmdline` when logged in, else the kernel's `Command line:` console line.
    pub kernel_cmdline: Option<String>,
    pub commands: Vec<CommandRun>,
    /// The netboot HTTP server's base URL as the guest saw it (what replaced `<URL>`).
    pub http_url: Option<String>,
    /// What the guest fetched from the netboot HTTP server, in order.
    pub http_requests: Vec<HttpRequest>,
}

impl BootReport {
    /// Turns an unsuccessful report into an error carrying the reason, the log path and its tail.
    pub fn ensure_success(&self) -> Result<()> {
        if self.success {
            return Ok(());
        }
        let tail = fs::read(&self.serial_log)
            .map(|b| {
                let s = String::from_utf8_lossy(&b).into_owned();
                let lines: Vec<&str> = s.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            })
            .unwrap_or_default();
        bail!(
            "boot test failed: {} (serial log {}); last console lines:\n{tail}",
            self.failure.as_deref().unwrap_or("unknown"),
            self.serial_log.display()
        )
    }

    /// The output of the first command run equal to `command`.
    pub fn output_of(&self, command: &str) -> Option<&str> {
        self.commands
            .iter()
            .find(|c| c.command == command)
            .map(|c| c.output.as_str())
    }
}

/// The disk format QEMU should open: `qcow2` for a file with the qcow magic, else `raw`.
pub fn detect_format(image: &Path) -> Result<&'static str> {
    let mut f =
        fs::File::open(image).with_context(|| format!("opening image {}", image.display()))?;
    let mut magic = [0u8; 6];
    let n = f
        .read(&mut magic)
        .with_context(|| format!("reading {}", image.display()))?;
    if n >= 4 && magic[..4] == *b"QFI\xfb" {
        return Ok("qcow2");
    }
    if n >= 6 && magic == *b"\xfd7zXZ\0" {
        bail!(
            "{} is xz-compressed; decompress it before booting",
            image.display()
        );
    }
    Ok("raw")
}

/// A running QEMU, killed when dropped.
struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console as seen so far and the protocol on top of it.
struct Console {
    stream: UnixStream,
    buf: Vec<u8>,
    start: Instant,
    deadline: Instant,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() || from > hay.len() - needle.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

enum Wait {
    Found(usize),
    Timeout,
    Exited(String),
}

impl Console {
    fn secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Reads what is available (up to 100 ms). Err = QEMU closed the console.
    fn pump(&mut self) -> Result<bool> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => bail!("the serial console closed (QEMU exited)"),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e).context("reading the serial console"),
        }
    }

    /// Waits until `pred` finds something in the buffer (checked after each read).
    fn wait_for(&mut self, qemu: &mut Qemu, pred: impl FnMut(&[u8]) -> Option<usize>) -> Wait {
        let deadline = self.deadline;
        self.wait_for_until(qemu, deadline, pred)
    }

    /// [`Console::wait_for`] with an earlier deadline.
    fn wait_for_until(
        &mut self,
        qemu: &mut Qemu,
        deadline: Instant,
        mut pred: impl FnMut(&[u8]) -> Option<usize>,
    ) -> Wait {
        loop {
            if let Some(i) = pred(&self.buf) {
                return Wait::Found(i);
            }
            if Instant::now() >= deadline {
                return Wait::Timeout;
            }
            if let Err(e) = self.pump() {
                let status = qemu.child.try_wait().ok().flatten();
                return Wait::Exited(match status {
                    Some(s) => format!("QEMU exited ({s})"),
                    None => format!("{e:#}"),
                });
            }
        }
    }

    fn send(&mut self, text: &str) -> Result<()> {
        self.stream
            .write_all(text.as_bytes())
            .context("writing to the serial console")?;
        self.stream.flush().context("writing to the serial console")
    }
}

/// QEMU's stderr without its "waiting for connection" notice.
fn qemu_messages(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("QEMU waiting for connection"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn kernel_cmdline_from_log(buf: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(buf);
    text.lines().find_map(|l| {
        let i = l.find("Command line: ")?;
        Some(l[i + "Command line: ".len()..].trim().to_string())
    })
}

/// Checks what can be checked before anything is created: something to boot, the files exist,
/// the firmware is installed.
fn check_spec(spec: &BootSpec) -> Result<()> {
    if spec.image.is_none()
        && spec.cdrom.is_none()
        && spec.netboot.is_none()
        && spec.direct.is_none()
    {
        bail!(
            "nothing to boot: give a disk image, a CD-ROM image, a netboot directory or a kernel"
        );
    }
    if spec.cdrom.is_some() && spec.netboot.is_some() {
        bail!("give a CD-ROM image or a netboot directory to boot from, not both");
    }
    if let Some(image) = &spec.image {
        detect_format(image)?;
        if spec.writable_disk {
            fs::OpenOptions::new()
                .write(true)
                .open(image)
                .with_context(|| format!("opening image {} for writing", image.display()))?;
        }
    } else if spec.writable_disk {
        bail!("a writable disk needs a disk image");
    }
    if let Some(iso) = &spec.cdrom {
        match fs::metadata(iso) {
            Ok(m) if m.is_file() => {}
            Ok(_) => bail!("CD-ROM image {} is not a file", iso.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                bail!("CD-ROM image {} not found", iso.display())
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading CD-ROM image {}", iso.display()));
            }
        }
        fs::File::open(iso).with_context(|| format!("opening CD-ROM image {}", iso.display()))?;
    }
    if let Some(n) = &spec.netboot {
        n.check(spec.uefi)?;
    }
    if spec.uefi {
        for f in [&spec.ovmf_code, &spec.ovmf_vars] {
            if !f.is_file() {
                bail!(
                    "UEFI firmware {} not found; install the Debian package `ovmf`",
                    f.display()
                );
            }
        }
    }
    Ok(())
}

/// A path as the value of a QEMU option (commas doubled).
fn qemu_value(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The files of one run that the QEMU command line names.
struct RunFiles<'a> {
    sock: &'a Path,
    serial_log: &'a Path,
    /// The per-run copy of the UEFI variable store.
    ovmf_vars: Option<&'a Path>,
    /// The TFTP root and the boot file in it.
    netboot: Option<(&'a Path, &'a str)>,
}

/// QEMU's arguments for `spec`.
fn qemu_args(spec: &BootSpec, accel: Accel, files: &RunFiles) -> Result<Vec<OsString>> {
    let mut args: Vec<OsString> = [
        "-accel",
        accel.qemu_name(),
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-nodefaults",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut push = |a: String| args.push(a.into());
    push("-m".into());
    push(spec.memory_mib.to_string());
    push("-smp".into());
    push(spec.cpus.to_string());
    push("-chardev".into());
    push(format!(
        "socket,id=s0,path={},server=on,wait=on,logfile={}",
        qemu_value(files.sock),
        qemu_value(files.serial_log)
    ));
    push("-serial".into());
    push("chardev:s0".into());
    // Boot devices get a boot index in boot order; a direct kernel boot comes first anyway.
    let mut next_index = 0;
    let mut bootindex = || {
        if spec.direct.is_some() {
            return String::new();
        }
        next_index += 1;
        format!(",bootindex={}", next_index - 1)
    };
    if let Some((root, bootfile)) = files.netboot {
        push("-netdev".into());
        push(format!(
            "user,id=n0,tftp={},bootfile={}",
            qemu_value(root),
            bootfile.replace(',', ",,")
        ));
        push("-device".into());
        push(format!("virtio-net-pci,netdev=n0{}", bootindex()));
    }
    if let Some(iso) = &spec.cdrom {
        push("-drive".into());
        push(format!(
            "file={},format=raw,if=none,id=cd0,media=cdrom,readonly=on",
            qemu_value(iso)
        ));
        push("-device".into());
        push(format!("ide-cd,drive=cd0{}", bootindex()));
    }
    if let Some(image) = &spec.image {
        let format = detect_format(image)?;
        let snapshot = if spec.writable_disk {
            ""
        } else {
            ",snapshot=on"
        };
        push("-drive".into());
        if spec.cdrom.is_some() || spec.netboot.is_some() {
            push(format!(
                "file={},format={format},if=none,id=disk0{snapshot}",
                qemu_value(image)
            ));
            push("-device".into());
            push(format!("virtio-blk-pci,drive=disk0{}", bootindex()));
        } else {
            push(format!(
                "file={},format={format},if=virtio{snapshot}",
                qemu_value(image)
            ));
        }
    }
    if spec.uefi {
        let vars = files
            .ovmf_vars
            .context("no copy of the UEFI variable store")?;
        push("-drive".into());
        push(format!(
            "if=pflash,format=raw,readonly=on,file={}",
            qemu_value(&spec.ovmf_code)
        ));
        push("-drive".into());
        push(format!("if=pflash,format=raw,file={}", qemu_value(vars)));
    }
    if let Some(d) = &spec.direct {
        args.push("-kernel".into());
        args.push(d.kernel.clone().into());
        args.push("-append".into());
        args.push(d.append.clone().into());
        if let Some(i) = &d.initrd {
            args.push("-initrd".into());
            args.push(i.clone().into());
        }
    }
    Ok(args)
}

/// The netboot parts of a run: the TFTP root and the HTTP server serving it.
struct NetbootRun {
    root: PathBuf,
    bootfile: String,
    url: String,
    server: HttpServer,
}

/// Builds the TFTP root in `scratch` and starts the HTTP server on it.
fn start_netboot(n: &Netboot, uefi: bool, scratch: &Path) -> Result<NetbootRun> {
    let root = scratch.join("netboot");
    fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
    // The server comes first: its port goes into the files.
    let server = HttpServer::start(&root)?;
    let url = netboot::guest_base_url(server.port());
    let substituted = build_netboot_root(&n.dir, &root, &url)
        .with_context(|| format!("preparing netboot directory {}", n.dir.display()))?;
    tracing::info!(
        "boot test: netboot from {} ({}), HTTP on {} as {url}{}",
        n.dir.display(),
        n.bootfile_for(uefi),
        server.addr(),
        if substituted.is_empty() {
            String::new()
        } else {
            format!(
                "; {URL_PLACEHOLDER} replaced in {}",
                substituted
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    Ok(NetbootRun {
        root,
        bootfile: n.bootfile_for(uefi).to_string(),
        url,
        server,
    })
}

/// Boots and watches; returns the report (an unsuccessful one on timeout). Errors only for what
/// prevents starting: missing QEMU or firmware, an unreadable image, ISO or netboot directory, an
/// unusable work directory. Nothing of the run but `serial.log` is left behind: the scratch files
/// (socket, firmware variables, netboot root) are removed, QEMU is killed and the HTTP server
/// stopped, on success and on error alike.
pub fn run(spec: &BootSpec) -> Result<BootReport> {
    crate::host::preflight(&[crate::host::Target::BootTest])?;
    check_spec(spec)?;
    let (accel, why) = choose_accel(spec.accel, crate::host::kvm::status())?;
    tracing::info!("boot test: QEMU with {accel} ({why})");
    crate::util::cleanup::set_stage("booting the image in QEMU");
    let work = match &spec.work_dir {
        Some(d) => {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => tempfile::Builder::new()
            .prefix("imagebuilder-boot-test-")
            .tempdir()
            .context("creating a directory for the boot test")?
            .keep(),
    };
    // Socket, firmware variables and netboot root live in a scratch directory removed at the end.
    let scratch = tempfile::Builder::new()
        .prefix(".boot-")
        .tempdir_in(&work)
        .with_context(|| format!("creating a scratch directory in {}", work.display()))?;
    let serial_log = work.join("serial.log");
    let _ = fs::remove_file(&serial_log);
    let sock = scratch.path().join("serial.sock");

    let vars = scratch.path().join("OVMF_VARS.fd");
    if spec.uefi {
        fs::copy(&spec.ovmf_vars, &vars).with_context(|| {
            format!("copying {} to {}", spec.ovmf_vars.display(), vars.display())
        })?;
    }
    // Declared after `scratch`, so dropped (the server stopped) before it is removed.
    let net = match &spec.netboot {
        Some(n) => Some(start_netboot(n, spec.uefi, scratch.path())?),
        None => None,
    };
    let args = qemu_args(
        spec,
        accel,
        &RunFiles {
            sock: &sock,
            serial_log: &serial_log,
            ovmf_vars: spec.uefi.then_some(vars.as_path()),
            netboot: net
                .as_ref()
                .map(|n| (n.root.as_path(), n.bootfile.as_str())),
        },
    )?;
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&args);
    let qemu_stderr = scratch.path().join("qemu.stderr");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&qemu_stderr).context("creating the QEMU stderr file")?);

    let start = Instant::now();
    let deadline = start + spec.timeout;
    let mut qemu = Qemu {
        child: cmd.spawn_logged()?,
    };
    // QEMU waits for us on the socket before it starts the guest.
    let stream = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline && qemu.child.try_wait()?.is_none() => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let err = fs::read_to_string(&qemu_stderr).unwrap_or_default();
                return Err(e).with_context(|| {
                    format!("QEMU did not open its serial socket: {}", err.trim())
                });
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .context("configuring the serial socket")?;
    let mut con = Console {
        stream,
        buf: Vec::new(),
        start,
        deadline,
    };

    let mut report = BootReport {
        success: false,
        accel,
        failure: None,
        serial_log: serial_log.clone(),
        elapsed_seconds: 0.0,
        markers: spec
            .markers
            .iter()
            .map(|m| MarkerHit {
                marker: m.clone(),
                seconds: None,
            })
            .collect(),
        login_prompt_seconds: None,
        kernel_cmdline: None,
        commands: Vec::new(),
        http_url: net.as_ref().map(|n| n.url.clone()),
        http_requests: Vec::new(),
    };
    let outcome = watch(spec, &mut qemu, &mut con, &mut report);
    report.elapsed_seconds = con.secs();
    if report.kernel_cmdline.is_none() {
        report.kernel_cmdline = kernel_cmdline_from_log(&con.buf);
    }
    drop(qemu);
    if let Some(n) = net {
        report.http_requests = n.server.stop();
    }
    // QEMU logs a chunk after sending it to the socket, so a QEMU killed right after the last
    // marker may miss the end in its log file: the log is rewritten with everything read (the
    // console was connected before the guest started).
    fs::write(&serial_log, &con.buf)
        .with_context(|| format!("writing {}", serial_log.display()))?;
    if let Err(e) = outcome {
        let mut msg = format!("{e:#}");
        let err = qemu_messages(&qemu_stderr);
        if !err.is_empty() {
            msg.push_str(&format!("; QEMU said: {err}"));
        }
        report.failure = Some(msg);
    } else {
        report.success = true;
    }
    Ok(report)
}

/// Waits for the markers and the login prompt, then logs in and runs the commands.
fn watch(
    spec: &BootSpec,
    qemu: &mut Qemu,
    con: &mut Console,
    report: &mut BootReport,
) -> Result<()> {
    let want_prompt = !spec.until_stopped && (spec.markers.is_empty() || spec.login.is_some());
    loop {
        let secs = con.secs();
        for hit in report.markers.iter_mut().filter(|h| h.seconds.is_none()) {
            if find(&con.buf, hit.marker.as_bytes(), 0).is_some() {
                tracing::info!("boot test: `{}` after {secs:.1} s", hit.marker);
                hit.seconds = Some(secs);
            }
        }
        if report.login_prompt_seconds.is_none()
            && find(&con.buf, LOGIN_PROMPT.as_bytes(), 0).is_some()
        {
            tracing::info!("boot test: login prompt after {secs:.1} s");
            report.login_prompt_seconds = Some(secs);
        }
        let markers_done = report.markers.iter().all(|h| h.seconds.is_some());
        if markers_done && spec.until_stopped {
            return wait_stopped(spec, qemu, con);
        }
        if markers_done && (!want_prompt || report.login_prompt_seconds.is_some()) {
            break;
        }
        let missing: Vec<&str> = report
            .markers
            .iter()
            .filter(|h| h.seconds.is_none())
            .map(|h| h.marker.as_str())
            .chain((want_prompt && report.login_prompt_seconds.is_none()).then_some(LOGIN_PROMPT))
            .collect();
        let len = con.buf.len();
        match con.wait_for(qemu, |b| (b.len() > len).then_some(0)) {
            Wait::Found(_) => {}
            Wait::Timeout => bail!(
                "timed out after {} s waiting for {}",
                spec.timeout.as_secs(),
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Wait::Exited(why) => bail!("{why} before {} appeared", missing.join(", ")),
        }
    }
    let Some(login) = &spec.login else {
        return Ok(());
    };
    log_in(login, qemu, con)?;
    let mut commands = vec!["cat /proc/cmdline".to_string()];
    commands.extend(login.commands.iter().cloned());
    for (i, c) in commands.iter().enumerate() {
        let run = run_command(c, 1000 + i, qemu, con)?;
        if i == 0 {
            report.kernel_cmdline = Some(run.output.trim().to_string());
        }
        report.commands.push(run);
    }
    Ok(())
}

/// The kernel's last line when a machine halts (without powering off).
const HALTED: &str = "System halted";

/// Waits until QEMU exits or the guest halts.
fn wait_stopped(spec: &BootSpec, qemu: &mut Qemu, con: &mut Console) -> Result<()> {
    match con.wait_for(qemu, |b| find(b, HALTED.as_bytes(), 0)) {
        Wait::Found(_) => {
            tracing::info!("boot test: the machine halted after {:.1} s", con.secs());
            Ok(())
        }
        Wait::Exited(why) => {
            tracing::info!(
                "boot test: the machine stopped after {:.1} s ({why})",
                con.secs()
            );
            Ok(())
        }
        Wait::Timeout => bail!(
            "timed out after {} s waiting for the machine to stop",
            spec.timeout.as_secs()
        ),
    }
}

fn wait_text(
    con: &mut Console,
    qemu: &mut Qemu,
    text: &str,
    from: usize,
    what: &str,
) -> Result<usize> {
    match con.wait_for(qemu, |b| find(b, text.as_bytes(), from)) {
        Wait::Found(i) => Ok(i),
        Wait::Timeout => bail!("timed out waiting for {what} (`{text}`)"),
        Wait::Exited(why) => bail!("{why} while waiting for {what}"),
    }
}

fn log_in(login: &Login, qemu: &mut Qemu, con: &mut Console) -> Result<()> {
    // Type the user name at the prompt. A getty that was still (re)starting may have flushed it:
    // without a password prompt after 30 s, type it again at a fresh prompt.
    if let Some(pw) = &login.password {
        loop {
            let from = con.buf.len();
            con.send(&format!("{}\n", login.user))?;
            let until = (Instant::now() + Duration::from_secs(30)).min(con.deadline);
            match con.wait_for_until(qemu, until, |b| find(b, b"assword:", from)) {
                Wait::Found(_) => break,
                Wait::Timeout if Instant::now() < con.deadline => continue,
                Wait::Timeout => bail!("timed out waiting for the password prompt"),
                Wait::Exited(why) => bail!("{why} while waiting for the password prompt"),
            }
        }
        con.send(&format!("{pw}\n"))?;
    } else {
        con.send(&format!("{}\n", login.user))?;
    }
    // A computed marker proves the shell runs (its echo shows the unexpanded expression).
    let from = con.buf.len();
    let ready = "IB-READY-42";
    let mut last_try = Instant::now() - Duration::from_secs(10);
    loop {
        if find(&con.buf, b"Login incorrect", from).is_some() {
            bail!("login as `{}` refused: Login incorrect", login.user);
        }
        // The whole line, so that the next command's output starts after it.
        if let Some(i) = find(&con.buf, ready.as_bytes(), from)
            && find(&con.buf, b"\n", i).is_some()
        {
            return Ok(());
        }
        if last_try.elapsed() >= Duration::from_secs(3) {
            con.send("echo IB-READY-$((6*7))\n")?;
            last_try = Instant::now();
        }
        // Wake up on new output, or after 3 s of silence to type the marker again: a line typed
        // while login was still printing the motd can be flushed, and an idle prompt prints nothing.
        let len = con.buf.len();
        let until = (Instant::now() + Duration::from_secs(3)).min(con.deadline);
        match con.wait_for_until(qemu, until, |b| (b.len() > len).then_some(0)) {
            Wait::Found(_) => {}
            Wait::Timeout if Instant::now() < con.deadline => {}
            Wait::Timeout => bail!(
                "timed out waiting for a shell after logging in as `{}`",
                login.user
            ),
            Wait::Exited(why) => bail!("{why} while logging in"),
        }
    }
}

fn run_command(command: &str, n: usize, qemu: &mut Qemu, con: &mut Console) -> Result<CommandRun> {
    let t0 = con.secs();
    let from = con.buf.len();
    // Computed markers around the command: their typed echo shows the unexpanded `$((…))`, so
    // only the shell's own output matches, whatever the prompt and echo do around the line.
    con.send(&format!(
        "echo \"IB-BEGIN-$(({n}+0))\"; {command}; echo \"IB-END-$(({n}+0)):$?\"\n"
    ))?;
    let what = format!("the end of `{command}`");
    let begin = format!("IB-BEGIN-{n}");
    let b = wait_text(con, qemu, &begin, from, &what)?;
    let start = wait_text(con, qemu, "\n", b, &what)? + 1;
    let marker = format!("IB-END-{n}:");
    let at = wait_text(con, qemu, &marker, start, &what)?;
    // The exit status follows the marker up to the end of its line.
    let eol = wait_text(con, qemu, "\n", at, &what)?;
    let status = String::from_utf8_lossy(&con.buf[at + marker.len()..eol])
        .trim()
        .parse()
        .ok();
    let output = strip_terminal_escapes(&String::from_utf8_lossy(&con.buf[start..at]));
    Ok(CommandRun {
        command: command.to_string(),
        output,
        exit_status: status,
        seconds: con.secs() - t0,
    })
}

/// The text without carriage returns and terminal control sequences (CSI such as bash's
/// bracketed-paste switch `ESC [ ? 2004 l`, OSC titles, two-byte escapes).
pub fn strip_terminal_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {}
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_stripped_from_command_output() {
        assert_eq!(strip_terminal_escapes("\u{1b}[?2004l2\r\n"), "2\n");
        assert_eq!(
            strip_terminal_escapes("\u{1b}]0;root@host:~\u{7}a\u{1b}[1;32mb\u{1b}[0m\u{1b}(c"),
            "abc"
        );
        assert_eq!(strip_terminal_escapes("plain text\n"), "plain text\n");
    }

    #[test]
    fn format_detection() {
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("a");
        fs::write(&q, b"QFI\xfb\0\0\0\x03rest").unwrap();
        assert_eq!(detect_format(&q).unwrap(), "qcow2");
        fs::write(&q, vec![0u8; 1024]).unwrap();
        assert_eq!(detect_format(&q).unwrap(), "raw");
        fs::write(&q, b"\xfd7zXZ\0....").unwrap();
        assert!(detect_format(&q).unwrap_err().to_string().contains("xz"));
        assert!(detect_format(&d.path().join("missing")).is_err());
    }

    #[test]
    fn cmdline_from_console() {
        let log = b"[    0.000000] Linux version 6.1\r\n[    0.000000] Command line: BOOT_IMAGE=/x ostree=/ostree/boot.1/a/b/0 rw\r\n";
        assert_eq!(
            kernel_cmdline_from_log(log).as_deref(),
            Some("BOOT_IMAGE=/x ostree=/ostree/boot.1/a/b/0 rw")
        );
        assert_eq!(find(b"abcabc", b"bc", 2), Some(4));
        assert_eq!(find(b"ab", b"abc", 0), None);
    }

    #[test]
    fn missing_firmware_is_named() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.raw");
        fs::write(&img, vec![0u8; 512]).unwrap();
        let mut spec = BootSpec::new(&img);
        spec.uefi = true;
        spec.ovmf_code = d.path().join("OVMF_CODE_4M.fd");
        spec.work_dir = Some(d.path().join("w"));
        let e = run(&spec).unwrap_err().to_string();
        assert!(e.contains("OVMF_CODE_4M.fd") && e.contains("ovmf"), "{e}");
    }

    #[test]
    fn accel_is_kvm_when_it_runs_guests_else_tcg_unless_asked() {
        use crate::host::kvm::KvmStatus;
        let works = KvmStatus {
            usable: true,
            detail: "runs a guest".into(),
        };
        let hangs = KvmStatus {
            usable: false,
            detail: "the guest hangs".into(),
        };
        let pick = choose_accel;
        assert_eq!(pick(AccelChoice::Auto, &works).unwrap().0, Accel::Kvm);
        let (a, why) = pick(AccelChoice::Auto, &hangs).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("the guest hangs"), "{why}");
        assert_eq!(pick(AccelChoice::Tcg, &works).unwrap().0, Accel::Tcg);
        assert_eq!(pick(AccelChoice::Kvm, &works).unwrap().0, Accel::Kvm);
        let e = pick(AccelChoice::Kvm, &hangs).unwrap_err().to_string();
        assert!(
            e.contains("KVM was asked for") && e.contains("the guest hangs"),
            "{e}"
        );
        // The JSON names the accelerator in lower case, as QEMU does.
        assert_eq!(serde_json::to_value(Accel::Kvm).unwrap(), "kvm");
        assert_eq!(serde_json::to_value(Accel::Tcg).unwrap(), "tcg");
        // And QEMU gets it.
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.raw");
        fs::write(&img, vec![0u8; 512]).unwrap();
        let files = RunFiles {
            sock: Path::new("/run/s.sock"),
            serial_log: Path::new("/run/serial.log"),
            ovmf_vars: None,
            netboot: None,
        };
        for a in [Accel::Kvm, Accel::Tcg] {
            let args = qemu_args(&BootSpec::new(&img), a, &files).unwrap();
            let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
            assert_eq!(values(&args, "-accel"), [a.qemu_name()]);
        }
    }

    /// QEMU's arguments as strings, for `spec` with the given netboot root.
    fn args_of(spec: &BootSpec, netboot: Option<(&Path, &str)>) -> Vec<String> {
        let files = RunFiles {
            sock: Path::new("/run/s.sock"),
            serial_log: Path::new("/run/serial.log"),
            ovmf_vars: Some(Path::new("/run/vars.fd")),
            netboot,
        };
        qemu_args(spec, Accel::Tcg, &files)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    /// The value following `flag` for every occurrence of it.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn disk_alone_keeps_its_snapshot_virtio_drive() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk,1.raw");
        fs::write(&img, vec![0u8; 512]).unwrap();
        let args = args_of(&BootSpec::new(&img), None);
        let drive = format!(
            "file={}/disk,,1.raw,format=raw,if=virtio,snapshot=on",
            d.path().display()
        );
        assert_eq!(values(&args, "-drive"), [drive.as_str()]);
        assert!(values(&args, "-device").is_empty(), "{args:?}");
        assert!(values(&args, "-netdev").is_empty(), "{args:?}");
    }

    #[test]
    fn cdrom_boots_before_a_writable_disk() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.qcow2");
        fs::write(&img, b"QFI\xfb\0\0\0\x03").unwrap();
        let iso = d.path().join("x.iso");
        fs::write(&iso, b"iso").unwrap();
        let mut spec = BootSpec {
            cdrom: Some(iso.clone()),
            ..BootSpec::new(&img)
        };
        spec.writable_disk = true;
        let args = args_of(&spec, None);
        assert_eq!(
            values(&args, "-drive"),
            [
                format!(
                    "file={},format=raw,if=none,id=cd0,media=cdrom,readonly=on",
                    iso.display()
                ),
                format!("file={},format=qcow2,if=none,id=disk0", img.display()),
            ]
        );
        assert_eq!(
            values(&args, "-device"),
            [
                "ide-cd,drive=cd0,bootindex=0",
                "virtio-blk-pci,drive=disk0,bootindex=1"
            ]
        );
        spec.writable_disk = false;
        let args = args_of(&spec, None);
        assert!(
            values(&args, "-drive")[1].ends_with(",id=disk0,snapshot=on"),
            "{args:?}"
        );
        // The CD alone, with UEFI.
        spec.image = None;
        spec.uefi = true;
        let args = args_of(&spec, None);
        assert_eq!(values(&args, "-device"), ["ide-cd,drive=cd0,bootindex=0"]);
        assert_eq!(
            values(&args, "-drive").len(),
            3,
            "CD and two pflash: {args:?}"
        );
    }

    #[test]
    fn netboot_nic_boots_first_and_direct_boot_sets_no_index() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("disk.raw");
        fs::write(&img, vec![0u8; 512]).unwrap();
        let mut spec = BootSpec {
            netboot: Some(Netboot::new(d.path())),
            ..BootSpec::new(&img)
        };
        let root = Path::new("/w/.boot-x/netboot");
        let args = args_of(&spec, Some((root, "pxelinux.0")));
        assert_eq!(
            values(&args, "-netdev"),
            ["user,id=n0,tftp=/w/.boot-x/netboot,bootfile=pxelinux.0"]
        );
        assert_eq!(
            values(&args, "-device"),
            [
                "virtio-net-pci,netdev=n0,bootindex=0",
                "virtio-blk-pci,drive=disk0,bootindex=1"
            ]
        );
        spec.image = None;
        spec.direct = Some(DirectBoot {
            kernel: "/k".into(),
            initrd: None,
            append: "console=ttyS0".into(),
        });
        let args = args_of(&spec, Some((root, "x")));
        assert_eq!(values(&args, "-device"), ["virtio-net-pci,netdev=n0"]);
        assert_eq!(values(&args, "-kernel"), ["/k"]);
    }

    #[test]
    fn spec_errors_name_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let err = |spec: &BootSpec| format!("{:#}", run(spec).unwrap_err());
        let work = d.path().join("w");
        let base = BootSpec {
            work_dir: Some(work.clone()),
            ..BootSpec::default()
        };
        assert!(err(&base).contains("nothing to boot"));
        let iso = d.path().join("missing.iso");
        let e = err(&BootSpec {
            cdrom: Some(iso),
            ..base.clone()
        });
        assert!(
            e.contains("CD-ROM image") && e.contains("missing.iso"),
            "{e}"
        );
        let e = err(&BootSpec {
            netboot: Some(Netboot::new(d.path())),
            ..base.clone()
        });
        assert!(e.contains("has no pxelinux.0; give --bootfile"), "{e}");
        let e = err(&BootSpec {
            netboot: Some(Netboot::new(d.path())),
            cdrom: Some(d.path().join("x.iso")),
            ..base.clone()
        });
        assert!(e.contains("not both"), "{e}");
        let e = err(&BootSpec {
            writable_disk: true,
            cdrom: Some(d.path().join("x.iso")),
            ..base.clone()
        });
        assert!(e.contains("writable disk needs a disk image"), "{e}");
        // Nothing was created for a run that could not start.
        assert!(!work.exists());
    }
}
