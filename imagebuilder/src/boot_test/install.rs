//! An install run: boot an installer ISO with a target disk (made blank when it does not exist),
//! wait for the machine to stop, read the installer's verdict from the console, then boot the
//! installed disk alone with the usual checks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{BootReport, BootSpec};
use crate::util::cmd::CommandExt;

/// The installer's last console line on success, and the start of it on failure.
pub const INSTALL_COMPLETE: &str = "INSTALL COMPLETE";
pub const INSTALL_FAILED: &str = "INSTALL FAILED: ";

/// What to install and how to check it.
#[derive(Debug, Clone)]
pub struct InstallSpec {
    pub iso: PathBuf,
    /// The target disk image; created as a blank qcow2 of `disk_size` when it does not exist.
    pub disk: PathBuf,
    pub disk_size: Option<u64>,
    /// Limit for the install run (boot, install, power-off).
    pub install_timeout: Duration,
    /// The boot of the installed disk (its `image` is set to `disk`); `None` = install only.
    pub boot: Option<BootSpec>,
    pub uefi: bool,
    pub memory_mib: u32,
    /// Directory for the runs' serial logs (`install/`, `boot/`).
    pub work_dir: Option<PathBuf>,
}

/// The outcome of an install run.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    pub success: bool,
    pub failure: Option<String>,
    pub disk: PathBuf,
    pub install: BootReport,
    /// Seconds from power-on to the installer's verdict.
    pub install_seconds: Option<f64>,
    /// The installer's console lines.
    pub installer_lines: Vec<String>,
    /// The boot of the installed disk, when the install succeeded and a boot was asked for.
    pub boot: Option<BootReport>,
}

/// The installer's lines (`imagebuilder-installer: …`) from a console log, without the kernel's
/// and journal's prefixes.
pub fn installer_lines(console: &str) -> Vec<String> {
    const TAG: &str = "imagebuilder-installer: ";
    let mut out: Vec<String> = Vec::new();
    for l in console.lines() {
        let Some(i) = l.rfind(TAG) else { continue };
        let line = super::strip_terminal_escapes(l[i + TAG.len()..].trim_end()).to_string();
        // Each line may reach the log twice (journal+console and another active console).
        if out.last() != Some(&line) {
            out.push(line);
        }
    }
    out
}

/// The installer's verdict: `Ok` when it completed, `Err(reason)` when it failed or said neither.
pub fn verdict(lines: &[String]) -> std::result::Result<(), String> {
    if let Some(l) = lines.iter().find_map(|l| {
        l.find(INSTALL_FAILED)
            .map(|i| l[i + INSTALL_FAILED.len()..].to_string())
    }) {
        return Err(format!("the installer failed: {l}"));
    }
    if lines.iter().any(|l| l.ends_with(INSTALL_COMPLETE)) {
        return Ok(());
    }
    Err(match lines.last() {
        Some(l) => format!("the installer stopped without finishing; its last line: {l}"),
        None => "the installer did not run (no imagebuilder-installer line on the console)".into(),
    })
}

/// Runs the install, then (when it completed) the boot of the installed disk.
pub fn run_install(spec: &InstallSpec) -> Result<InstallReport> {
    if !spec.iso.is_file() {
        bail!("installer ISO {} not found", spec.iso.display());
    }
    if !spec.disk.exists() {
        let size = spec.disk_size.with_context(|| {
            format!(
                "{} does not exist: give its size to create it blank",
                spec.disk.display()
            )
        })?;
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&spec.disk)
            .arg(size.to_string())
            .run()
            .context("creating the target disk")?;
    }
    let work = spec.work_dir.clone();
    let install_spec = BootSpec {
        image: Some(spec.disk.clone()),
        writable_disk: true,
        cdrom: Some(spec.iso.clone()),
        uefi: spec.uefi,
        timeout: spec.install_timeout,
        until_stopped: true,
        memory_mib: spec.memory_mib,
        work_dir: work.as_ref().map(|w| w.join("install")),
        ..BootSpec::default()
    };
    tracing::info!(
        "install run: {} onto {}",
        spec.iso.display(),
        spec.disk.display()
    );
    let install = super::run(&install_spec)?;
    let console = std::fs::read(&install.serial_log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines = installer_lines(&console);
    let mut report = InstallReport {
        success: false,
        failure: None,
        disk: spec.disk.clone(),
        install_seconds: install.success.then_some(install.elapsed_seconds),
        install,
        installer_lines: lines,
        boot: None,
    };
    if !report.install.success {
        report.failure = Some(format!(
            "install run: {}",
            report.install.failure.as_deref().unwrap_or("failed")
        ));
        return Ok(report);
    }
    if let Err(why) = verdict(&report.installer_lines) {
        report.failure = Some(why);
        return Ok(report);
    }
    if let Some(b) = &spec.boot {
        let mut b = b.clone();
        b.image = Some(spec.disk.clone());
        b.cdrom = None;
        b.uefi = spec.uefi;
        if let Some(w) = &work {
            b.work_dir = Some(w.join("boot"));
        }
        let booted = super::run(&b)?;
        if !booted.success {
            report.failure = Some(format!(
                "booting the installed disk: {}",
                booted.failure.as_deref().unwrap_or("failed")
            ));
        }
        report.boot = Some(booted);
    }
    report.success = report.failure.is_none();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_read_from_the_installers_console_lines() {
        let log = "[   24.1] imagebuilder-installer[626]: imagebuilder-installer: [   0.0s] installing demo\n\
                   imagebuilder-installer: [   0.0s] installing demo\n\
                   [   40.2] imagebuilder-installer[626]: imagebuilder-installer: [  16.2s] INSTALL COMPLETE\n";
        let lines = installer_lines(log);
        assert_eq!(
            lines,
            vec!["[   0.0s] installing demo", "[  16.2s] INSTALL COMPLETE"]
        );
        assert_eq!(verdict(&lines), Ok(()));
        let failed = installer_lines(
            "imagebuilder-installer: [ 0.1s] INSTALL FAILED: /dev/vda is too small: it has 1024 MiB\n",
        );
        assert_eq!(
            verdict(&failed),
            Err("the installer failed: /dev/vda is too small: it has 1024 MiB".into())
        );
        assert!(verdict(&[]).unwrap_err().contains("did not run"));
        assert!(
            verdict(&["[ 1.0s] copying".into()])
                .unwrap_err()
                .contains("without finishing")
        );
    }
}
