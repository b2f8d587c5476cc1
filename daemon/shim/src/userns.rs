//! User namespaces: the container's root is an unprivileged id range of the host.
//!
//! How a container with `linux.uidMappings`/`gidMappings` is set up (why each step is
//! where it is):
//!
//! 1. Before it forks the container's process, the shim forks a short-lived helper that
//!    unshares a user namespace together with the network, uts and ipc namespaces the
//!    container creates (one `unshare(2)` call: the kernel makes the user namespace
//!    first, so it owns the others - user_namespaces(7)). The shim, host root, writes
//!    the helper's `uid_map`/`gid_map` (so `setgroups` stays allowed), opens its
//!    namespaces and lets it exit (`create`); the descriptors keep them alive.
//! 2. The container's process joins the network, uts and ipc namespaces and creates its
//!    mount and cgroup namespaces while still host root. Both are therefore owned by
//!    the host's user namespace: the container's root can neither mount nor unmount
//!    anything (so it cannot uncover a masked path or remount the root read-write) and
//!    cannot mount cgroupfs. Binding low ports and `sethostname` work, since the
//!    network and uts namespaces belong to the container's user namespace. The pid
//!    namespace stays the one the shim unshares before it forks (owned by the host's
//!    user namespace): a pid namespace cannot be opened from `/proc` before its first
//!    process exists (`pid_for_children` is ENOENT until then), and the container's
//!    first process must be the shim's own child. Signals are checked against the
//!    sender's credentials, so this gives the container's root no power over the
//!    host; only pid-namespace-wide operations (reboot(2)) stay out of its reach.
//! 3. It builds the root filesystem as host root, with its filesystem uid/gid set to
//!    the container root's host ids, so everything it creates (mount points, the /dev
//!    tmpfs and its nodes, /dev/shm) belongs to the container's root. The image layers
//!    are shared between containers and never chowned: each one is seen through an
//!    idmapped mount (`Sys::idmapped_clone`) that shows the image's uid 0
//!    as the container root's host id, and overlayfs (idmapped layers: Linux 5.19)
//!    stacks those. The upper dir is not idmapped: it stores host ids, so a file the
//!    container's root writes is owned on disk by its host uid - never by host root.
//! 4. Last, after `pivot_root` and right before dropping privileges, it joins the user
//!    namespace: from then on it has capabilities only there.
//!
//! A kernel without idmapped mounts (mount_setattr: ENOSYS, or EINVAL for a
//! filesystem that does not support them) fails the start with stage `userns`; the
//! container never runs with unmapped files.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use crate::sys;

/// One line of a uid or gid map: `size` ids from `container_id` in the container are
/// `host_id..` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// The maps of a container's user namespace, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernsPlan {
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
}

/// The most lines a map may have (the kernel's limit since Linux 4.15).
const MAX_LINES: usize = 340;

/// Why a map cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("the {0} is empty")]
    Empty(&'static str),
    #[error("the {0} has more than 340 lines")]
    TooLong(&'static str),
    #[error("the {0} has a line of size 0 or past the end of the id space")]
    BadLine(&'static str),
    #[error("the {0} has overlapping lines")]
    Overlap(&'static str),
    #[error("the {0} maps host id 0")]
    HostRoot(&'static str),
    #[error("the {0} does not map container id 0")]
    NoRoot(&'static str),
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let (a0, a1) = (u64::from(a.0), u64::from(a.0) + u64::from(a.1));
    let (b0, b1) = (u64::from(b.0), u64::from(b.0) + u64::from(b.1));
    a0 < b1 && b0 < a1
}

/// Check one map: non-empty, sizes > 0, no overlap on either side, host root never
/// mapped, container root mapped (the set-up runs as it).
pub fn check_map(map: &[IdMap], what: &'static str) -> Result<(), MapError> {
    if map.is_empty() {
        return Err(MapError::Empty(what));
    }
    if map.len() > MAX_LINES {
        return Err(MapError::TooLong(what));
    }
    for (i, m) in map.iter().enumerate() {
        let end = |start: u32| u64::from(start) + u64::from(m.size) > u64::from(u32::MAX);
        if m.size == 0 || end(m.container_id) || end(m.host_id) {
            return Err(MapError::BadLine(what));
        }
        if m.host_id == 0 {
            return Err(MapError::HostRoot(what));
        }
        for o in &map[..i] {
            if overlaps((m.container_id, m.size), (o.container_id, o.size))
                || overlaps((m.host_id, m.size), (o.host_id, o.size))
            {
                return Err(MapError::Overlap(what));
            }
        }
    }
    if map_id(map, 0).is_none() {
        return Err(MapError::NoRoot(what));
    }
    Ok(())
}

/// The host id of container id `id`, if the map has it.
pub fn map_id(map: &[IdMap], id: u32) -> Option<u32> {
    map.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id)?;
        (off < m.size).then(|| m.host_id + off)
    })
}

/// The text written to `/proc/<pid>/uid_map` (one `inside outside count` per line).
pub fn map_text(map: &[IdMap]) -> String {
    map.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Rewrite `uid=N` / `gid=N` in a mount's data to host ids: the mounts are made by
/// host root, which reads them as host ids (devpts `gid=5` must be the container's
/// tty group). `None` if an id is not mapped.
pub fn translate_mount_data(data: &str, userns: &UsernsPlan) -> Option<String> {
    let words: Option<Vec<String>> = data
        .split(',')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let (key, map) = match w.split_once('=') {
                Some(("uid", _)) => ("uid", &userns.uid_map),
                Some(("gid", _)) => ("gid", &userns.gid_map),
                _ => return Some(w.to_owned()),
            };
            let id: u32 = w[key.len() + 1..].parse().ok()?;
            Some(format!("{key}={}", map_id(map, id)?))
        })
        .collect();
    Some(words?.join(","))
}

/// A step of making the user namespace that failed.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("failed to create pipes")]
    Pipe(#[source] Errno),
    #[error("failed to fork the namespace helper")]
    Fork(#[source] Errno),
    #[error("failed to create the user namespace")]
    Unshare(#[source] Errno),
    #[error("failed to write {path}")]
    WriteMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The namespaces made for a container by `create`.
#[derive(Debug)]
pub struct UsernsFds {
    /// The user namespace, maps written.
    pub user: OwnedFd,
    /// Network, uts, ipc namespaces it owns, for the container's process to join.
    pub owned: Vec<(CloneFlags, OwnedFd)>,
}

/// Reaps the helper on every path.
struct Helper(Option<Pid>);

impl Drop for Helper {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Make the user namespace with `plan`'s maps, and the namespaces among `create`
/// (network, uts, ipc) owned by it (step 1 of the module docs). Runs in the
/// single-threaded shim.
pub(crate) fn create(plan: &UsernsPlan, create: CloneFlags) -> Result<UsernsFds, UsernsError> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(UsernsError::Pipe)?;
    let (done_r, done_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(UsernsError::Pipe)?;
    let pid = match sys::fork().map_err(UsernsError::Fork)? {
        ForkResult::Child => {
            drop((ready_r, done_w));
            // The helper: unshare, say so (one byte: 0 or the errno), wait for the
            // shim to be done with our namespaces (EOF), exit.
            let code = match nix::sched::unshare(CloneFlags::CLONE_NEWUSER | create) {
                Ok(()) => 0u8,
                Err(e) => u8::try_from(e as i32).unwrap_or(u8::MAX),
            };
            let _ = File::from(ready_w).write_all(&[code]);
            let mut buf = [0u8; 1];
            let _ = File::from(done_r).read(&mut buf);
            sys::exit_now(0)
        }
        ForkResult::Parent { child } => child,
    };
    let mut helper = Helper(Some(pid));
    drop((ready_w, done_r));
    let mut code = [0u8; 1];
    match File::from(ready_r).read(&mut code) {
        Ok(1) if code[0] == 0 => {}
        Ok(1) => {
            return Err(UsernsError::Unshare(Errno::from_raw(i32::from(code[0]))));
        }
        _ => return Err(UsernsError::Unshare(Errno::ECHILD)),
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    for (file, map) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
        let path = proc_dir.join(file);
        // The kernel takes a map in a single write(2).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| {
                let text = map_text(map);
                let n = f.write(text.as_bytes())?;
                if n == text.len() {
                    Ok(())
                } else {
                    Err(std::io::Error::from(std::io::ErrorKind::WriteZero))
                }
            })
            .map_err(|source| UsernsError::WriteMap { path, source })?;
    }
    let open = |name: &str| {
        let path = proc_dir.join("ns").join(name);
        File::open(&path)
            .map(OwnedFd::from)
            .map_err(|source| UsernsError::OpenNamespace { path, source })
    };
    let user = open("user")?;
    let mut owned = Vec::new();
    for (flag, name) in [
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
    ] {
        if create.contains(flag) {
            owned.push((flag, open(name)?));
        }
    }
    drop(done_w);
    if let Some(pid) = helper.0.take() {
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    Ok(UsernsFds { user, owned })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(container_id: u32, host_id: u32, size: u32) -> IdMap {
        IdMap {
            container_id,
            host_id,
            size,
        }
    }

    #[test]
    fn maps_are_checked() {
        assert!(check_map(&[m(0, 100_000, 65536)], "uid map").is_ok());
        assert!(check_map(&[m(0, 100_000, 1), m(1, 200_000, 10)], "uid map").is_ok());
        let bad = [
            (vec![], "empty"),
            (vec![m(0, 100, 0)], "size"),
            (vec![m(0, 0, 10)], "host root"),
            (vec![m(0, u32::MAX - 5, 10)], "end"),
            (vec![m(0, 100, 10), m(5, 1000, 10)], "container overlap"),
            (vec![m(0, 100, 10), m(10, 105, 10)], "host overlap"),
            (vec![m(1, 100, 10)], "no root"),
        ];
        for (map, why) in bad {
            assert!(check_map(&map, "uid map").is_err(), "{why}");
        }
    }

    #[test]
    fn ids_and_mount_data_are_mapped() {
        let plan = UsernsPlan {
            uid_map: vec![m(0, 1000, 10), m(100, 5000, 1)],
            gid_map: vec![m(0, 2000, 10)],
        };
        assert_eq!(map_id(&plan.uid_map, 0), Some(1000));
        assert_eq!(map_id(&plan.uid_map, 9), Some(1009));
        assert_eq!(map_id(&plan.uid_map, 10), None);
        assert_eq!(map_id(&plan.uid_map, 100), Some(5000));
        assert_eq!(map_text(&plan.uid_map), "0 1000 10\n100 5000 1\n");
        assert_eq!(
            translate_mount_data("newinstance,mode=0620,gid=5", &plan).as_deref(),
            Some("newinstance,mode=0620,gid=2005")
        );
        assert_eq!(
            translate_mount_data("uid=100", &plan).as_deref(),
            Some("uid=5000")
        );
        assert_eq!(translate_mount_data("gid=50", &plan), None);
        assert_eq!(translate_mount_data("", &plan).as_deref(), Some(""));
    }
}
