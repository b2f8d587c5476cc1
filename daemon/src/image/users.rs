//! Resolving a container's `user` spec against the image's own `/etc/passwd` and
//! `/etc/group`, the way runc's `libcontainer/user.GetExecUser` does.
//!
//! The files are read inside the image's root: `openat2(RESOLVE_IN_ROOT)` resolves any
//! symlink (absolute or `..`) as if the rootfs were `/`, so an image cannot make the daemon
//! read a host file. Only regular files are read (a fifo would block us), and only up
//! to [`MAX_DB_SIZE`].

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Largest passwd/group file read; real ones are a few KiB.
pub const MAX_DB_SIZE: u64 = 4 << 20;

/// runc refuses ids above this (they are negative as a signed `id_t`).
const MAX_ID: u32 = i32::MAX as u32;

/// Errors resolving a user spec.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("invalid user spec {spec:?}: {reason}")]
    BadSpec { spec: String, reason: &'static str },
    #[error("no user {0:?} in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("no group {0:?} in the image's /etc/group")]
    UnknownGroup(String),
    #[error("the image's {0} is too large")]
    FileTooLarge(&'static str),
    #[error("failed to open image root {path}")]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the image's {path}")]
    ReadFile {
        path: &'static str,
        #[source]
        source: io::Error,
    },
}

impl UserError {
    /// True when the spec or the image is at fault (HTTP 400).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            UserError::BadSpec { .. }
                | UserError::UnknownUser(_)
                | UserError::UnknownGroup(_)
                | UserError::FileTooLarge(_)
        )
    }
}

/// The ids a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups in `/etc/group` that list the user by name.
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// [`resolve`] for an image made of layers (overlay lower dirs, topmost first): the
/// user database is read from the topmost layer that has `/etc/passwd` (and its
/// `/etc/group` from that same layer).
pub fn resolve_layers(
    lowers: &[std::path::PathBuf],
    spec: &str,
) -> Result<ResolvedUser, UserError> {
    let has_passwd = |l: &Path| {
        // No component may be a symlink: this is only a choice of layer; `resolve`
        // opens the file safely itself.
        std::fs::symlink_metadata(l.join("etc")).is_ok_and(|m| m.is_dir())
            && std::fs::symlink_metadata(l.join("etc/passwd")).is_ok_and(|m| m.is_file())
    };
    let layer = lowers
        .iter()
        .find(|l| has_passwd(l))
        .or(lowers.first())
        .map(|l| l.as_path())
        .unwrap_or(Path::new("/nonexistent"));
    resolve(layer, spec)
}

/// Resolves `spec` ("", "uid", "uid:gid", "name", "name:group", "uid:group", "name:gid")
/// in the image at `rootfs`.
///
/// - "" is root, as "0".
/// - A user found in `/etc/passwd` (by uid when numeric, else by name) brings its primary
///   gid; a numeric uid not listed there runs with gid 0. A name not listed is
///   `UnknownUser`; without an `/etc/passwd`, only numeric specs work.
/// - An explicit group replaces the primary gid, and then no supplementary groups are
///   added (runc: "explicit group format takes precedence"); otherwise the supplementary
///   groups are those of `/etc/group` listing the user's name.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let bad = |reason| UserError::BadSpec {
        spec: spec.to_owned(),
        reason,
    };
    let (user, group) = match spec.split_once(':') {
        _ if spec.is_empty() => ("0", None),
        None => (spec, None),
        Some((_, g)) if g.contains(':') => return Err(bad("more than one ':'")),
        Some(("", _)) => return Err(bad("empty user")),
        Some((_, "")) => return Err(bad("empty group")),
        Some((u, g)) => (u, Some(g)),
    };
    let user_id = numeric(user).map_err(bad)?;
    let group_id = group.map(numeric).transpose().map_err(bad)?.flatten();

    let root = open_root(rootfs)?;
    let passwd = read_db(&root, "etc/passwd", "/etc/passwd")?
        .map(|text| parse_passwd(&text))
        .unwrap_or_default();
    let found = passwd.into_iter().find(|e| match user_id {
        Some(uid) => e.uid == uid,
        None => e.name == user,
    });
    let (uid, primary_gid, name) = match (found, user_id) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name)),
        (None, Some(uid)) => (uid, 0, None),
        (None, None) => return Err(UserError::UnknownUser(user.to_owned())),
    };

    // Only read /etc/group when a name has to be resolved in it.
    let needs_groups =
        (group.is_some() && group_id.is_none()) || (group.is_none() && name.is_some());
    let groups = if needs_groups {
        read_db(&root, "etc/group", "/etc/group")?
            .map(|text| parse_group(&text))
            .unwrap_or_default()
    } else {
        Vec::new()
    };

    let (gid, additional_gids) = match (group, group_id) {
        (Some(_), Some(gid)) => (gid, Vec::new()),
        (Some(g), None) => match groups.iter().find(|e| e.name == g) {
            Some(e) => (e.gid, Vec::new()),
            None => return Err(UserError::UnknownGroup(g.to_owned())),
        },
        (None, _) => {
            let mut extra = Vec::new();
            if let Some(name) = &name {
                for g in &groups {
                    if g.members.iter().any(|m| m == name) && !extra.contains(&g.gid) {
                        extra.push(g.gid);
                    }
                }
            }
            (primary_gid, extra)
        }
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// `Some(id)` when `s` is all digits, `None` when it is a name.
fn numeric(s: &str) -> Result<Option<u32>, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(id) if id <= MAX_ID => Ok(Some(id)),
        _ => Err("id out of range"),
    }
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, UserError> {
    nix::fcntl::open(
        rootfs,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UserError::OpenRoot {
        path: rootfs.to_owned(),
        source: e.into(),
    })
}

/// Reads `rel` (no leading slash) inside `root`; `None` when it is absent, is not a
/// regular file, or is a link that leads nowhere inside the root.
fn read_db(root: &OwnedFd, rel: &str, shown: &'static str) -> Result<Option<String>, UserError> {
    let read_err = |e: io::Error| UserError::ReadFile {
        path: shown,
        source: e,
    };
    // O_NONBLOCK: opening a fifo must not hang; regular files ignore it.
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let opened = match openat2(root, rel, how) {
        // No openat2 (kernel < 5.6, or filtered): walk without following any symlink; a
        // symlinked file is then treated as absent, which is safe.
        Err(Errno::ENOSYS) | Err(Errno::EPERM) => open_nofollow(root, rel, flags),
        other => other,
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(read_err(e.into())),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(read_err)?;
    if !meta.file_type().is_file() {
        tracing::warn!(path = shown, "image file is not a regular file; ignored");
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_DB_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_DB_SIZE {
        return Err(UserError::FileTooLarge(shown));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn open_nofollow(root: &OwnedFd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let last = comps.pop().ok_or(Errno::ENOENT)?;
    let mut cur = openat(root, ".", dir_flags, Mode::empty())?;
    for comp in comps {
        cur = openat(&cur, comp, dir_flags, Mode::empty())?;
    }
    openat(&cur, last, flags | OFlag::O_NOFOLLOW, Mode::empty())
}

/// `name:password:uid:gid:gecos:home:shell`; malformed lines are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?.trim();
            let _password = f.next()?;
            let uid = f.next()?.trim().parse().ok()?;
            let gid = f.next()?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| PasswdEntry {
                name: name.to_owned(),
                uid,
                gid,
            })
        })
        .collect()
}

/// `name:password:gid:member,member`; malformed lines are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?.trim();
            let _password = f.next()?;
            let gid = f.next()?.trim().parse().ok()?;
            let members = f
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            (!name.is_empty() && !name.starts_with('#')).then(|| GroupEntry {
                name: name.to_owned(),
                gid,
                members,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
broken line
bob:x:1001:100::/home/bob:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,alice
users:x:100:alice, bob
alice:x:1000:
audio:x:29:bob
audio2:x:29:alice
nogroup:x:65534:
";

    fn image(passwd: Option<&str>, group: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(p) = passwd {
            fs::write(dir.path().join("etc/passwd"), p).unwrap();
        }
        if let Some(g) = group {
            fs::write(dir.path().join("etc/group"), g).unwrap();
        }
        dir
    }

    fn ids(uid: u32, gid: u32, extra: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        }
    }

    #[test]
    fn resolves_every_spec_form() {
        let img = image(Some(PASSWD), Some(GROUP));
        let r = |spec| resolve(img.path(), spec).unwrap();
        assert_eq!(r(""), ids(0, 0, &[10]));
        assert_eq!(r("0"), ids(0, 0, &[10]));
        assert_eq!(r("root"), ids(0, 0, &[10]));
        assert_eq!(r("alice"), ids(1000, 1000, &[10, 100, 29]));
        assert_eq!(r("1000"), ids(1000, 1000, &[10, 100, 29]));
        assert_eq!(r("bob"), ids(1001, 100, &[100, 29]));
        assert_eq!(r("nobody"), ids(65534, 65534, &[]));
        // An explicit group wins and brings no supplementary groups (as runc).
        assert_eq!(r("alice:wheel"), ids(1000, 10, &[]));
        assert_eq!(r("alice:7"), ids(1000, 7, &[]));
        assert_eq!(r("1000:users"), ids(1000, 100, &[]));
        assert_eq!(r("1000:1234"), ids(1000, 1234, &[]));
        // A uid not in passwd still works, with gid 0.
        assert_eq!(r("4242"), ids(4242, 0, &[]));
        assert_eq!(r("4242:4343"), ids(4242, 4343, &[]));
    }

    #[test]
    fn unknown_names_and_bad_specs_are_bad_input() {
        let img = image(Some(PASSWD), Some(GROUP));
        let e = |spec| resolve(img.path(), spec).unwrap_err();
        assert!(matches!(e("mallory"), UserError::UnknownUser(u) if u == "mallory"));
        assert!(matches!(e("alice:staff"), UserError::UnknownGroup(g) if g == "staff"));
        for spec in [
            "a:b:c",
            ":10",
            "alice:",
            "4294967296",
            "2147483648",
            "0:2147483648",
        ] {
            assert!(
                matches!(e(spec), UserError::BadSpec { .. }),
                "{spec:?} should be a bad spec"
            );
        }
        for spec in ["mallory", "alice:staff", "a:b:c"] {
            assert!(e(spec).is_bad_input(), "{spec:?}");
        }
    }

    #[test]
    fn without_files_only_numeric_specs_work() {
        let img = image(None, None);
        assert_eq!(resolve(img.path(), "").unwrap(), ids(0, 0, &[]));
        assert_eq!(resolve(img.path(), "123:456").unwrap(), ids(123, 456, &[]));
        assert!(matches!(
            resolve(img.path(), "root"),
            Err(UserError::UnknownUser(_))
        ));
        let img = image(Some(PASSWD), None);
        assert_eq!(resolve(img.path(), "alice").unwrap(), ids(1000, 1000, &[]));
        assert!(matches!(
            resolve(img.path(), "alice:wheel"),
            Err(UserError::UnknownGroup(_))
        ));
    }

    #[test]
    fn symlinked_passwd_never_reads_the_host() {
        // A host file the image points at, absolutely and relatively.
        let host = tempfile::tempdir().unwrap();
        let host_passwd = host.path().join("passwd");
        fs::write(&host_passwd, "hostonly:x:4321:4321::/:/bin/sh\n").unwrap();
        let host_group = host.path().join("group");
        fs::write(&host_group, "hostgroup:x:4321:\n").unwrap();

        let img = image(None, None);
        symlink(&host_passwd, img.path().join("etc/passwd")).unwrap();
        let up = "../".repeat(32);
        symlink(
            format!("{up}{}", host_group.display()),
            img.path().join("etc/group"),
        )
        .unwrap();
        assert!(matches!(
            resolve(img.path(), "hostonly"),
            Err(UserError::UnknownUser(_))
        ));
        assert!(matches!(
            resolve(img.path(), "0:hostgroup"),
            Err(UserError::UnknownGroup(_))
        ));

        // The same absolute link resolves inside the root when the target exists there.
        let inside = img.path().join(host_passwd.strip_prefix("/").unwrap());
        fs::create_dir_all(inside.parent().unwrap()).unwrap();
        fs::write(&inside, "imageuser:x:77:78::/:/bin/sh\n").unwrap();
        assert_eq!(resolve(img.path(), "imageuser").unwrap(), ids(77, 78, &[]));
    }

    #[test]
    fn symlinked_etc_dir_is_resolved_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        fs::write(
            host.path().join("passwd"),
            "hostonly:x:4321:4321::/:/bin/sh\n",
        )
        .unwrap();
        let img = tempfile::tempdir().unwrap();
        symlink(host.path(), img.path().join("etc")).unwrap();
        assert!(matches!(
            resolve(img.path(), "hostonly"),
            Err(UserError::UnknownUser(_))
        ));
    }

    #[test]
    fn a_fifo_passwd_is_ignored_not_waited_on() {
        let img = image(None, Some(GROUP));
        nix::unistd::mkfifo(
            &img.path().join("etc/passwd"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(matches!(
            resolve(img.path(), "alice"),
            Err(UserError::UnknownUser(_))
        ));
        assert_eq!(resolve(img.path(), "5").unwrap(), ids(5, 0, &[]));
    }

    #[test]
    fn fallback_walk_refuses_symlinks() {
        let host = tempfile::tempdir().unwrap();
        fs::write(host.path().join("passwd"), "x").unwrap();
        let img = image(None, None);
        symlink(host.path().join("passwd"), img.path().join("etc/passwd")).unwrap();
        let root = open_root(img.path()).unwrap();
        let err = open_nofollow(&root, "etc/passwd", OFlag::O_RDONLY).unwrap_err();
        assert_eq!(err, Errno::ELOOP);
        fs::write(img.path().join("etc/group"), GROUP).unwrap();
        assert!(open_nofollow(&root, "etc/group", OFlag::O_RDONLY).is_ok());
    }
}
