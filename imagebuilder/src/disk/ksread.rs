//! Interim reader: the disk-related kickstart commands into a [`DiskRequest`] + [`OstreeSetup`].
//!
//! This is a stop-gap until the `kickstart` crate (the project's full parser) is on main; it reads
//! only `part`/`partition`, `reqpart`, `autopart`, `bootloader`, `ostreesetup`, `clearpart`,
//! `zerombr`, `ignoredisk` and flags `volgroup`/`logvol`/`raid`/`btrfs` as not supported yet.
//! Everything else (and every `%section`) is skipped. Errors carry `FILE:LINE`.

use anyhow::{Result, bail};

use super::request::{
    AutopartRequest, BootloaderRequest, DiskRequest, Located, OstreeSetup, PartitionRequest,
    ReqpartRequest,
};

/// Splits a kickstart line into words (shell-like quoting, `#` comments).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !has => break,
            ' ' | '\t' => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            '\'' => {
                has = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '"' => {
                has = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(ch) = chars.next() {
                                cur.push(ch);
                            }
                        }
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                has = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            _ => {
                has = true;
                cur.push(c);
            }
        }
    }
    if has {
        out.push(cur);
    }
    Ok(out)
}

/// `--name=value` / `--name value` / `--flag` options and positional words.
struct Args {
    opts: Vec<(String, Option<String>)>,
    pos: Vec<String>,
}

fn args(w: &[String], takes_value: &[&str]) -> Args {
    let mut opts = Vec::new();
    let mut pos = Vec::new();
    let mut i = 0;
    while i < w.len() {
        let a = &w[i];
        if let Some(rest) = a.strip_prefix("--") {
            if let Some((k, v)) = rest.split_once('=') {
                opts.push((k.to_string(), Some(v.to_string())));
            } else if takes_value.contains(&rest) && i + 1 < w.len() {
                opts.push((rest.to_string(), Some(w[i + 1].clone())));
                i += 1;
            } else {
                opts.push((rest.to_string(), None));
            }
        } else {
            pos.push(a.clone());
        }
        i += 1;
    }
    Args { opts, pos }
}

impl Args {
    fn get(&self, k: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.as_deref())
    }
    fn has(&self, k: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == k)
    }
}

/// Reads the disk-related part of a kickstart.
pub fn read(source_name: &str, text: &str) -> Result<(DiskRequest, Option<OstreeSetup>)> {
    let mut req = DiskRequest {
        source_name: source_name.to_string(),
        ..Default::default()
    };
    let mut ostree = None;
    let mut in_section = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let loc = |m: String| anyhow::anyhow!("{source_name}:{line}: {m}");
        let t = raw.trim();
        if t.starts_with("%end") {
            in_section = false;
            continue;
        }
        if t.starts_with('%') {
            if t.starts_with("%include") || t.starts_with("%ksappend") {
                bail!(loc(
                    "%include is not supported by this interim reader".into()
                ));
            }
            in_section = true;
            continue;
        }
        if in_section || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let w = words(t).map_err(loc)?;
        let Some(cmd) = w.first() else { continue };
        let vals = [
            "size",
            "maxsize",
            "fstype",
            "label",
            "fsoptions",
            "append",
            "timeout",
            "location",
            "type",
            "osname",
            "remote",
            "url",
            "ref",
            "ondisk",
            "ondrive",
            "drives",
            "only-use",
            "initlabel",
            "disklabel",
            "name",
            "vgname",
        ];
        let a = args(&w[1..], &vals);
        let num = |k: &str| -> Result<Option<u64>> {
            match a.get(k) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| loc(format!("--{k}={v} is not a number"))),
            }
        };
        match cmd.as_str() {
            "part" | "partition" => {
                let Some(mp) = a.pos.first() else {
                    bail!(loc(format!("{cmd} needs a mount point")))
                };
                req.partitions.push(PartitionRequest {
                    line,
                    mountpoint: mp.clone(),
                    fstype: a.get("fstype").map(Into::into),
                    size_mib: num("size")?,
                    grow: a.has("grow"),
                    maxsize_mib: num("maxsize")?,
                    label: a.get("label").map(Into::into),
                    fsoptions: a.get("fsoptions").map(Into::into),
                });
            }
            "reqpart" => {
                req.reqpart = Some(ReqpartRequest {
                    line,
                    add_boot: a.has("add-boot"),
                })
            }
            "autopart" => {
                req.autopart = Some(AutopartRequest {
                    line,
                    kind: a.get("type").map(Into::into),
                    fstype: a.get("fstype").map(Into::into),
                    noswap: a.has("noswap"),
                })
            }
            "bootloader" => {
                req.bootloader = BootloaderRequest {
                    line,
                    append: a
                        .get("append")
                        .map(|s| s.split_whitespace().map(Into::into).collect())
                        .unwrap_or_default(),
                    timeout: num("timeout")?.map(|t| t as u32),
                    disabled: a.has("disabled") || a.get("location") == Some("none"),
                }
            }
            "ostreesetup" => {
                let need = |k: &str| {
                    a.get(k)
                        .map(String::from)
                        .ok_or_else(|| loc(format!("ostreesetup needs --{k}")))
                };
                ostree = Some(OstreeSetup {
                    line,
                    osname: need("osname")?,
                    remote: a.get("remote").map(Into::into),
                    url: need("url")?,
                    reference: need("ref")?,
                    nogpg: a.has("nogpg"),
                });
            }
            "clearpart" | "zerombr" | "ignoredisk" => req.accepted_noops.push(Located {
                line,
                value: t.to_string(),
            }),
            "volgroup" | "logvol" | "raid" | "btrfs" => req.unsupported.push(Located {
                line,
                value: format!("`{cmd}`"),
            }),
            _ => {}
        }
    }
    Ok((req, ostree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_disk_commands() {
        let ks = "# demo\nzerombr\nclearpart --all --initlabel\npart /boot --size=300 --fstype=\"ext4\"\npart / --grow --size 1000 --label=root\nbootloader --timeout=1 --append=\"console=ttyS0,115200 quiet\"\nostreesetup --nogpg --osname=demo --remote=demo --url=file:///srv/repo --ref=demo/x86_64/base\n%post\npart /nope\n%end\nvolgroup atomicos pv.01\n";
        let (r, o) = read("demo.ks", ks).unwrap();
        assert_eq!(r.partitions.len(), 2);
        assert_eq!(r.partitions[0].size_mib, Some(300));
        assert_eq!(r.partitions[0].fstype.as_deref(), Some("ext4"));
        assert!(r.partitions[1].grow);
        assert_eq!(r.partitions[1].line, 5);
        assert_eq!(r.partitions[1].label.as_deref(), Some("root"));
        assert_eq!(r.bootloader.append, ["console=ttyS0,115200", "quiet"]);
        assert_eq!(r.bootloader.timeout, Some(1));
        let o = o.unwrap();
        assert_eq!(
            (o.osname.as_str(), o.reference.as_str(), o.nogpg),
            ("demo", "demo/x86_64/base", true)
        );
        assert_eq!(r.accepted_noops.len(), 2);
        assert_eq!(r.unsupported[0].line, 11);
        let e = read("x.ks", "part / --size=abc\n").unwrap_err();
        assert_eq!(e.to_string(), "x.ks:1: --size=abc is not a number");
    }
}
