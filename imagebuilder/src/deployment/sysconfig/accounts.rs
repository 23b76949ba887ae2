//! `rootpw`, `group`, `user` and `sshkey`: /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow edited
//! as text (pure functions below), homes in the tree's `/var/home` with the skeleton copied.
//!
//! Fedora Atomic trees keep their system accounts in `/usr/lib/passwd` and `/usr/lib/group`
//! (nss-altfiles); a group that only exists there (e.g. `wheel`) is copied into `/etc/group` before a
//! user is added to it, as one does by hand on Silverblue.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};

use super::{
    ApplyOptions, Group, Password, RootPw, SshKey, SystemConfig, Target, User, Warning, crypt,
};

/// A colon-separated account database (`passwd`, `shadow`, `group`, `gshadow`) kept line by line, so
/// comments and unknown lines survive an edit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Db {
    lines: Vec<String>,
}

impl Db {
    pub fn parse(text: &str) -> Db {
        Db {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    fn is_entry(line: &str) -> bool {
        !line.is_empty()
            && !line.starts_with('#')
            && !line.starts_with('+')
            && !line.starts_with('-')
    }

    /// The fields of the entry named `name`.
    pub fn get(&self, name: &str) -> Option<Vec<String>> {
        self.lines
            .iter()
            .filter(|l| Self::is_entry(l))
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f[0] == name)
    }

    /// Replaces the entry named `fields[0]`, or appends it.
    pub fn upsert(&mut self, fields: &[String]) {
        let line = fields.join(":");
        let name = &fields[0];
        for l in &mut self.lines {
            if Self::is_entry(l) && l.split(':').next() == Some(name.as_str()) {
                *l = line;
                return;
            }
        }
        self.lines.push(line);
    }

    /// The numeric values of field `idx` over all entries (uids in passwd, gids in group).
    pub fn ids(&self, idx: usize) -> BTreeSet<u32> {
        self.lines
            .iter()
            .filter(|l| Self::is_entry(l))
            .filter_map(|l| l.split(':').nth(idx)?.parse().ok())
            .collect()
    }
}

/// Adds `user` to the member list (field `idx`: 3 in group, 3 in gshadow) of entry `group`.
pub fn add_member(db: &mut Db, group: &str, idx: usize, user: &str) -> bool {
    let Some(mut f) = db.get(group) else {
        return false;
    };
    while f.len() <= idx {
        f.push(String::new());
    }
    let mut members: Vec<&str> = f[idx].split(',').filter(|m| !m.is_empty()).collect();
    if !members.contains(&user) {
        members.push(user);
    }
    f[idx] = members.join(",");
    db.upsert(&f);
    true
}

/// Sets the password field of a shadow entry (creating the entry if missing). `lock` prefixes `!`.
pub fn set_shadow_password(shadow: &mut Db, name: &str, hash: Option<&str>, lock: bool, day: u64) {
    let mut f = shadow.get(name).unwrap_or_else(|| {
        vec![
            name.to_string(),
            "!".into(),
            day.to_string(),
            "0".into(),
            "99999".into(),
            "7".into(),
            String::new(),
            String::new(),
            String::new(),
        ]
    });
    while f.len() < 9 {
        f.push(String::new());
    }
    if let Some(h) = hash {
        f[1] = h.to_string();
        f[2] = day.to_string();
    }
    if lock && !f[1].starts_with('!') {
        f[1] = format!("!{}", f[1]);
    }
    shadow.upsert(&f);
}

/// The next free id in `[min, max]` not in `used` (useradd's rule: one above the highest in range).
pub fn next_free_id(used: &BTreeSet<u32>, min: u32, max: u32) -> Option<u32> {
    let highest = used.range(min..=max).next_back().copied();
    match highest {
        Some(h) if h < max => Some(h + 1),
        Some(_) => (min..=max).find(|i| !used.contains(i)),
        None => Some(min),
    }
}

/// `KEY VALUE` from login.defs text.
pub fn login_defs_value(text: &str, key: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

/// The four databases of a tree, plus the read-only `/usr/lib` copies (nss-altfiles).
struct Accounts {
    passwd: Db,
    shadow: Db,
    group: Db,
    gshadow: Db,
    lib_passwd: Db,
    lib_group: Db,
    has_gshadow: bool,
}

impl Accounts {
    fn load(t: &Target) -> Result<Accounts> {
        let read =
            |p: &str| -> Result<Db> { Ok(Db::parse(&t.read_optional(p)?.unwrap_or_default())) };
        let has_gshadow = t.exists("/etc/gshadow");
        Ok(Accounts {
            passwd: read("/etc/passwd")?,
            shadow: read("/etc/shadow")?,
            group: read("/etc/group")?,
            gshadow: read("/etc/gshadow")?,
            lib_passwd: read("/usr/lib/passwd")?,
            lib_group: read("/usr/lib/group")?,
            has_gshadow,
        })
    }

    fn save(&self, t: &Target) -> Result<()> {
        // New files get the modes Fedora uses; existing files keep theirs (and Debian's root:shadow).
        t.write(
            "/etc/passwd",
            self.passwd.render().as_bytes(),
            0o644,
            (0, 0),
        )?;
        t.write("/etc/group", self.group.render().as_bytes(), 0o644, (0, 0))?;
        t.write(
            "/etc/shadow",
            self.shadow.render().as_bytes(),
            0o000,
            (0, 0),
        )?;
        if self.has_gshadow {
            t.write(
                "/etc/gshadow",
                self.gshadow.render().as_bytes(),
                0o000,
                (0, 0),
            )?;
        }
        Ok(())
    }

    fn user(&self, name: &str) -> Option<Vec<String>> {
        self.passwd.get(name).or_else(|| self.lib_passwd.get(name))
    }

    fn all_uids(&self) -> BTreeSet<u32> {
        &self.passwd.ids(2) | &self.lib_passwd.ids(2)
    }

    fn all_gids(&self) -> BTreeSet<u32> {
        &self.group.ids(2) | &self.lib_group.ids(2)
    }

    fn group_gid(&self, name: &str) -> Option<u32> {
        self.group
            .get(name)
            .or_else(|| self.lib_group.get(name))
            .and_then(|f| f.get(2)?.parse().ok())
    }

    /// Makes sure `name` is an entry of /etc/group (copying it from /usr/lib/group if needed).
    fn ensure_etc_group(&mut self, name: &str) -> bool {
        if self.group.get(name).is_some() {
            return true;
        }
        let Some(f) = self.lib_group.get(name) else {
            return false;
        };
        self.group.upsert(&f);
        if self.has_gshadow && self.gshadow.get(name).is_none() {
            self.gshadow.upsert(&[
                name.to_string(),
                "!".into(),
                String::new(),
                f.get(3).cloned().unwrap_or_default(),
            ]);
        }
        true
    }

    fn add_group(&mut self, name: &str, gid: u32) {
        self.group
            .upsert(&[name.to_string(), "x".into(), gid.to_string(), String::new()]);
        if self.has_gshadow {
            self.gshadow
                .upsert(&[name.to_string(), "!".into(), String::new(), String::new()]);
        }
    }
}

/// Password hash for a kickstart password: plain text is hashed (salt seeded from
/// `SOURCE_DATE_EPOCH` when set), `--iscrypted` is used as given.
fn hash_password(p: &Password, account: &str, opts: &ApplyOptions) -> Result<String> {
    match p {
        Password::Crypted(h) => Ok(h.clone()),
        Password::Plain(pw) => {
            let seed = opts.source_date_epoch.map(|e| format!("{e}:{account}"));
            crypt::sha512(pw, seed.as_deref())
        }
    }
}

fn today(opts: &ApplyOptions) -> u64 {
    let secs = opts.source_date_epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    secs / 86_400
}

/// The tree's `useradd` defaults: id ranges from `/etc/login.defs`, the shell from
/// `/etc/default/useradd`, and the day number password changes are dated with.
struct UseraddDefaults {
    uid_min: u32,
    uid_max: u32,
    gid_min: u32,
    gid_max: u32,
    /// useradd's default shell: SHELL= in the tree's /etc/default/useradd, else /bin/bash.
    shell: String,
    day: u64,
}

impl UseraddDefaults {
    fn load(t: &Target, opts: &ApplyOptions) -> Result<UseraddDefaults> {
        let defs = t.read_optional("/etc/login.defs")?.unwrap_or_default();
        let shell = t
            .read_optional("/etc/default/useradd")?
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("SHELL=")
                    .map(|v| v.trim().to_string())
            })
            .filter(|v| v.starts_with('/'))
            .unwrap_or_else(|| "/bin/bash".to_string());
        Ok(UseraddDefaults {
            uid_min: login_defs_value(&defs, "UID_MIN").unwrap_or(1000),
            uid_max: login_defs_value(&defs, "UID_MAX").unwrap_or(60000),
            gid_min: login_defs_value(&defs, "GID_MIN").unwrap_or(1000),
            gid_max: login_defs_value(&defs, "GID_MAX").unwrap_or(60000),
            shell,
            day: today(opts),
        })
    }

    fn free_gid(&self, used: &BTreeSet<u32>) -> Option<u32> {
        next_free_id(used, self.gid_min, self.gid_max)
    }
}

/// A home directory to create once the databases are saved: path, owner and group.
type Home = (String, u32, u32);

/// Applies `group`, `user`, `rootpw` and `sshkey`.
pub fn apply_accounts(
    t: &Target,
    cfg: &SystemConfig,
    opts: &ApplyOptions,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    if cfg.groups.is_empty()
        && cfg.users.is_empty()
        && cfg.rootpw.is_none()
        && cfg.sshkeys.is_empty()
    {
        return Ok(());
    }
    let mut a = Accounts::load(t)?;
    let d = UseraddDefaults::load(t, opts)?;
    for g in &cfg.groups {
        add_kickstart_group(&mut a, g, &d, warnings)?;
    }
    let mut homes = Vec::new();
    for u in &cfg.users {
        homes.push(add_user(&mut a, t, u, &d, opts, warnings)?);
    }
    if let Some(r) = &cfg.rootpw {
        set_root_password(&mut a, t, r, d.day, opts, warnings)?;
    }
    a.save(t)?;
    make_homes(t, homes)?;
    for k in &cfg.sshkeys {
        install_ssh_key(t, &a, k, warnings)?;
    }
    Ok(())
}

/// `group`: a new group with its `--gid` or the next free one; one the tree has is left alone.
fn add_kickstart_group(
    a: &mut Accounts,
    g: &Group,
    d: &UseraddDefaults,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    if a.group_gid(&g.name).is_some() {
        warnings.push(Warning::new(
            format!("group --name={}", g.name),
            "the group already exists in the tree; left as it is",
        ));
        return Ok(());
    }
    let gid = match g.gid {
        Some(gid) if a.all_gids().contains(&gid) => {
            bail!("group {}: gid {gid} is already used in the tree", g.name)
        }
        Some(gid) => gid,
        None => d
            .free_gid(&a.all_gids())
            .with_context(|| format!("group {}: no free gid", g.name))?,
    };
    a.add_group(&g.name, gid);
    Ok(())
}

/// `user`: the passwd and shadow entries, the primary group and the memberships; returns the
/// home directory to create.
fn add_user(
    a: &mut Accounts,
    t: &Target,
    u: &User,
    d: &UseraddDefaults,
    opts: &ApplyOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Home> {
    if a.user(&u.name).is_some() {
        bail!("user {}: the account already exists in the tree", u.name);
    }
    let uid = match u.uid {
        Some(uid) if a.all_uids().contains(&uid) => {
            bail!("user {}: uid {uid} is already used in the tree", u.name)
        }
        Some(uid) => uid,
        None => next_free_id(&a.all_uids(), d.uid_min, d.uid_max)
            .with_context(|| format!("user {}: no free uid", u.name))?,
    };
    let gid = primary_gid(a, u, uid, d)?;
    let home = u
        .homedir
        .clone()
        .unwrap_or_else(|| format!("/home/{}", u.name));
    let shell = u.shell.clone().unwrap_or_else(|| d.shell.clone());
    if !t.host_path(&shell).map(|p| p.is_file()).unwrap_or(false) {
        warnings.push(Warning::new(
            format!("user --name={}", u.name),
            format!("login shell {shell} does not exist in the tree"),
        ));
    }
    a.passwd.upsert(&[
        u.name.clone(),
        "x".into(),
        uid.to_string(),
        gid.to_string(),
        u.gecos.clone().unwrap_or_default(),
        home.clone(),
        shell,
    ]);
    let hash = u
        .password
        .as_ref()
        .map(|p| hash_password(p, &u.name, opts))
        .transpose()?;
    // No password: the account is locked, as Anaconda leaves it.
    set_shadow_password(
        &mut a.shadow,
        &u.name,
        hash.as_deref(),
        u.lock || hash.is_none(),
        d.day,
    );
    join_groups(a, u, warnings);
    Ok((home, uid, gid))
}

/// The user's primary group: an existing group with --gid, else a user private group named after
/// the user (gid = uid when free).
fn primary_gid(a: &mut Accounts, u: &User, uid: u32, d: &UseraddDefaults) -> Result<u32> {
    Ok(match (u.gid, a.group_gid(&u.name)) {
        (Some(gid), _) if a.all_gids().contains(&gid) => gid,
        (_, Some(gid)) => gid,
        (Some(gid), None) => {
            a.add_group(&u.name, gid);
            gid
        }
        (None, None) => {
            let used = a.all_gids();
            let gid = if used.contains(&uid) {
                d.free_gid(&used)
                    .with_context(|| format!("user {}: no free gid", u.name))?
            } else {
                uid
            };
            a.add_group(&u.name, gid);
            gid
        }
    })
}

/// `user --groups`: adds the user to each group the tree has (copied into `/etc/group` first).
fn join_groups(a: &mut Accounts, u: &User, warnings: &mut Vec<Warning>) {
    for g in &u.groups {
        if !a.ensure_etc_group(g) {
            warnings.push(Warning::new(
                format!("user --name={} --groups={g}", u.name),
                format!("group `{g}` does not exist in the tree"),
            ));
            continue;
        }
        add_member(&mut a.group, g, 3, &u.name);
        if a.has_gshadow {
            add_member(&mut a.gshadow, g, 3, &u.name);
        }
    }
}

/// `rootpw`: root's shadow entry, and with `--allow-ssh` an sshd drop-in permitting root login.
fn set_root_password(
    a: &mut Accounts,
    t: &Target,
    r: &RootPw,
    day: u64,
    opts: &ApplyOptions,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let hash = r
        .password
        .as_ref()
        .map(|p| hash_password(p, "root", opts))
        .transpose()?;
    set_shadow_password(&mut a.shadow, "root", hash.as_deref(), r.lock, day);
    if !r.allow_ssh {
        return Ok(());
    }
    if t.exists("/etc/ssh") {
        t.write(
            "/etc/ssh/sshd_config.d/01-permitrootlogin.conf",
            b"# added by imagebuilder (rootpw --allow-ssh)\nPermitRootLogin yes\n",
            0o600,
            (0, 0),
        )?;
    } else {
        warnings.push(Warning::new(
            "rootpw --allow-ssh",
            "the tree has no /etc/ssh",
        ));
    }
    Ok(())
}

/// Creates the new users' homes, filled from `/etc/skel` when they did not exist.
fn make_homes(t: &Target, homes: Vec<Home>) -> Result<()> {
    let skel = t.host_path("/etc/skel")?;
    for (home, uid, gid) in homes {
        let existed = t.host_path(&home)?.is_dir();
        let h = t.mkdir(&home, 0o700, (uid, gid))?;
        if !existed && skel.is_dir() {
            super::files::copy_tree_owned(&skel, &h, (uid, gid))?;
        }
    }
    Ok(())
}

/// `sshkey`: appends the key (once) to the user's `~/.ssh/authorized_keys`.
fn install_ssh_key(
    t: &Target,
    a: &Accounts,
    k: &SshKey,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let Some(f) = a.user(&k.username) else {
        warnings.push(Warning::new(
            format!("sshkey --username={}", k.username),
            "no such user in the tree",
        ));
        return Ok(());
    };
    let uid: u32 = f[2].parse().unwrap_or(0);
    let gid: u32 = f[3].parse().unwrap_or(0);
    let home = f.get(5).cloned().unwrap_or_default();
    if !home.starts_with('/') {
        bail!("user {} has no absolute home directory", k.username);
    }
    let home = home.trim_end_matches('/').to_string();
    if !t.host_path(&home)?.is_dir() {
        t.mkdir(&home, 0o700, (uid, gid))?;
    }
    let ssh = format!("{home}/.ssh");
    let dir = t.mkdir(&ssh, 0o700, (uid, gid))?;
    super::files::set_mode_owner(&dir, 0o700, (uid, gid))?;
    let keys_path = format!("{ssh}/authorized_keys");
    let mut keys = t.read_optional(&keys_path)?.unwrap_or_default();
    if !keys.lines().any(|l| l.trim() == k.key.trim()) {
        if !keys.is_empty() && !keys.ends_with('\n') {
            keys.push('\n');
        }
        keys.push_str(k.key.trim());
        keys.push('\n');
    }
    super::files::write_file(
        &t.host_path(&keys_path)?,
        keys.as_bytes(),
        0o600,
        (uid, gid),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_upsert_keeps_other_lines() {
        let mut db =
            Db::parse("# comment\nroot:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/:/sbin/nologin\n");
        db.upsert(&[
            "alice".into(),
            "x".into(),
            "1000".into(),
            "1000".into(),
            "".into(),
            "/home/alice".into(),
            "/bin/bash".into(),
        ]);
        db.upsert(&[
            "bin".into(),
            "x".into(),
            "1".into(),
            "1".into(),
            "B".into(),
            "/".into(),
            "/bin/false".into(),
        ]);
        assert_eq!(
            db.render(),
            "# comment\nroot:x:0:0:root:/root:/bin/sh\nbin:x:1:1:B:/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/bash\n"
        );
        assert_eq!(db.ids(2), BTreeSet::from([0, 1, 1000]));
        assert_eq!(Db::parse("").render(), "");
    }

    #[test]
    fn members_are_added_once() {
        let mut g = Db::parse("wheel:x:10:\nadm:x:4:root,bob\n");
        assert!(add_member(&mut g, "wheel", 3, "alice"));
        assert!(add_member(&mut g, "adm", 3, "alice"));
        assert!(add_member(&mut g, "adm", 3, "alice"));
        assert!(!add_member(&mut g, "nope", 3, "alice"));
        assert_eq!(g.render(), "wheel:x:10:alice\nadm:x:4:root,bob,alice\n");
    }

    #[test]
    fn shadow_password_lock_and_new_entries() {
        let mut s = Db::parse("root:*:19000:0:99999:7:::\n");
        set_shadow_password(&mut s, "root", Some("$6$a$b"), false, 20000);
        assert_eq!(s.get("root").unwrap()[1], "$6$a$b");
        assert_eq!(s.get("root").unwrap()[2], "20000");
        set_shadow_password(&mut s, "root", None, true, 20001);
        assert_eq!(s.get("root").unwrap()[1], "!$6$a$b");
        set_shadow_password(&mut s, "root", None, true, 20001);
        assert_eq!(
            s.get("root").unwrap()[1],
            "!$6$a$b",
            "locking twice adds one !"
        );
        set_shadow_password(&mut s, "bob", None, true, 5);
        assert_eq!(s.get("bob").unwrap().join(":"), "bob:!:5:0:99999:7:::");
    }

    #[test]
    fn free_ids_and_login_defs() {
        let used = BTreeSet::from([0, 1, 1000, 1001, 65534]);
        assert_eq!(next_free_id(&used, 1000, 60000), Some(1002));
        assert_eq!(next_free_id(&BTreeSet::from([0]), 1000, 60000), Some(1000));
        assert_eq!(
            next_free_id(&BTreeSet::from([1000, 1002]), 1000, 1002),
            Some(1001)
        );
        assert_eq!(next_free_id(&BTreeSet::from([1000]), 1000, 1000), None);
        let defs = "# x\nUID_MIN\t\t 500\nUID_MAX 6000\n";
        assert_eq!(login_defs_value(defs, "UID_MIN"), Some(500));
        assert_eq!(login_defs_value(defs, "GID_MIN"), None);
    }
}
