//! Builds the installer helper (`imagebuilder-installer`, the workspace's `installer` crate) as a
//! static executable and hands its path to the library, which embeds it: an installer ISO carries
//! it and runs it on the installed tree's live system, whose libraries are not the build host's.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("the workspace").to_path_buf();
    for p in ["installer", "disklayout", "Cargo.lock"] {
        println!("cargo::rerun-if-changed={}", workspace.join(p).display());
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = std::env::var("TARGET").expect("TARGET");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = out.join("installer-build");
    let mut cmd = Command::new(cargo);
    // The outer build's wrappers and flags are not the helper's: it is built plainly, statically.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = matches!(
            k.as_str(),
            "CARGO_HOME" | "CARGO_MAKEFLAGS" | "CARGO_NET_OFFLINE"
        );
        if (k.starts_with("CARGO_") && !keep)
            || matches!(
                k.as_str(),
                "RUSTC_WRAPPER" | "RUSTC_WORKSPACE_WRAPPER" | "RUSTFLAGS" | "RUSTDOCFLAGS"
            )
        {
            cmd.env_remove(&k);
        }
    }
    if let Some(rustc) = std::env::var_os("RUSTC") {
        cmd.env("RUSTC", rustc);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .arg("build")
        .arg("--locked")
        .arg("--release")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["-p", "imagebuilder-installer", "--target", &target])
        .arg("--target-dir")
        .arg(&target_dir);
    let status = cmd
        .status()
        .expect("running cargo for the installer helper");
    assert!(status.success(), "building the installer helper failed");
    let bin = target_dir
        .join(&target)
        .join("release")
        .join("imagebuilder-installer");
    assert!(bin.exists(), "{} was not built", bin.display());
    println!(
        "cargo::rustc-env=IMAGEBUILDER_INSTALLER_HELPER={}",
        bin.display()
    );
}
