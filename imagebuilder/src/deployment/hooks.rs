//! The kickstart's system configuration and `%post` scripts as [`DeploymentHook`]s: they run over
//! the staged deployment after `/etc/fstab` is written and before the filesystems are made. The work
//! itself is the sysboot area's ([`crate::deployment::sysconfig`], [`crate::deployment::post`]).

use anyhow::{Context, Result};

use crate::build::publish::BuildLog;
use crate::build::{DeploymentHook, HookContext};
use crate::fs::tree_stats;

/// `rootpw`, `user`, `services`, `timezone`, … written into the deployment's `/etc`.
#[derive(Debug)]
pub struct KickstartConfig<'a> {
    pub ks: &'a kickstart::Kickstart,
}

impl DeploymentHook for KickstartConfig<'_> {
    fn name(&self) -> &str {
        "system configuration from the kickstart"
    }

    fn run(&self, ctx: &HookContext<'_>, log: &mut BuildLog) -> Result<()> {
        let warnings =
            crate::deployment::sysconfig::apply_kickstart(&ctx.deployed.deployment, self.ks)?;
        for w in warnings {
            log.warn(w.to_string());
        }
        Ok(())
    }
}

/// The kickstart's `%post` scripts, sandboxed; they may write at most the root filesystem's room.
#[derive(Debug)]
pub struct KickstartPost<'a> {
    pub ks: &'a kickstart::Kickstart,
}

impl DeploymentHook for KickstartPost<'_> {
    fn name(&self) -> &str {
        "%post scripts"
    }

    fn run(&self, ctx: &HookContext<'_>, log: &mut BuildLog) -> Result<()> {
        if !self
            .ks
            .scripts
            .iter()
            .any(|s| s.kind == kickstart::ScriptKind::Post)
        {
            return Ok(());
        }
        let used = tree_stats(&ctx.deployed.sysroot)
            .context("measuring the staged tree")?
            .data_bytes;
        let limit = ctx
            .root_size_limit
            .unwrap_or(0)
            .saturating_sub(used)
            .max(64 << 20);
        let opts = crate::deployment::post::PostOptions::new(ctx.log_dir, limit);
        for o in
            crate::deployment::post::run_kickstart_post(&ctx.deployed.deployment, self.ks, &opts)?
        {
            log.step(format!(
                "%post #{} exited {:?} in {:.1}s (log {})",
                o.index,
                o.exit_code,
                o.seconds,
                o.log.display()
            ));
            for w in o.warnings {
                log.warn(w);
            }
        }
        Ok(())
    }
}
