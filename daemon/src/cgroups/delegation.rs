//! Where boxd's groups live on cgroup v2, and keeping the daemon's own process out of the
//! way of the "no internal processes" rule.
//!
//! cgroup v2 lets a group below the root either hold processes or enable controllers for
//! its children, never both (Documentation/admin-guide/cgroup-v2.rst, "No Internal
//! Process Constraint"). Under systemd, a service with `Delegate=yes` owns its group
//! `G` (systemd 251+ marks it with the `trusted.delegate` xattr); boxd makes its
//! containers' groups in `G` itself, so the daemon must live in a leaf below it,
//! `G/daemon`, before it enables controllers in `G`:
//!
//! - With `DelegateSubgroup=daemon` (systemd 254+, as `systemd/boxd.service` sets), systemd
//!   starts the daemon in `G/daemon` already, and a restart of the service while
//!   containers run lands there again. boxd then uses `G` as its parent by default.
//! - When `--cgroup-parent` names the daemon's own group or a group below it, the daemon
//!   moves itself into `<own>/daemon` first. (Older systemd starts a restarted service in
//!   `G` itself, which the kernel refuses once `G` has controllers enabled, so boxd does
//!   not pick that layout on its own there: the default stays `boxd` below the root.)
//!
//! The leaf's name is reserved: [`super::CgroupManager::list`] never reports it as a
//! container's group, so reconcile never removes it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// The leaf below a delegated group that holds the daemon (and the shims it starts).
pub const DAEMON_LEAF: &str = "daemon";

/// The parent used when neither the flag nor the config file names one and boxd does not
/// run in a delegated group.
pub const DEFAULT_PARENT: &str = "boxd";

/// The v2 group of a process, relative to the hierarchy root (`""` for the root itself),
/// from the `0::/path` line of its `/proc/<pid>/cgroup`.
pub fn group_from_proc(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().trim_matches('/').to_owned())
}

/// The daemon's own v2 group, relative to the hierarchy root.
pub fn own_group() -> Option<String> {
    group_from_proc(&fs::read_to_string("/proc/self/cgroup").ok()?)
}

/// Whether systemd delegated `dir` (`Delegate=yes`): it sets `trusted.delegate` to `1`
/// on the group (`user.delegate` for a user manager).
pub fn is_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| matches!(xattr::get(dir, name), Ok(Some(v)) if v == b"1"))
}

/// The parent to use when none is configured: the delegated group `G` when the daemon
/// already runs in `G/daemon`, else [`DEFAULT_PARENT`].
pub fn default_parent(root: &Path, own: Option<&str>) -> String {
    if let Some((group, leaf)) = own.and_then(|o| o.rsplit_once('/')) {
        if leaf == DAEMON_LEAF && is_delegated(&root.join(group)) {
            return group.to_owned();
        }
    }
    DEFAULT_PARENT.to_owned()
}

/// Whether `ancestor` is `group` or one of its ancestors (both relative to the root; the
/// root itself, `""`, is excluded: it may hold processes).
pub fn is_ancestor_or_self(ancestor: &str, group: &str) -> bool {
    !ancestor.is_empty()
        && (group == ancestor
            || group
                .strip_prefix(ancestor)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// If the daemon's own group `own` is `parent` or one of its ancestors, moves the daemon
/// (its whole thread group) into the leaf `<own>/daemon`, so that controllers can be
/// enabled down to the parent. Returns the leaf it moved to.
pub fn leave_internal_group(
    root: &Path,
    own: &str,
    parent: &str,
) -> Result<Option<PathBuf>, CgroupError> {
    if !is_ancestor_or_self(own, parent) {
        return Ok(None);
    }
    let leaf = root.join(own).join(DAEMON_LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(CgroupError::CreateCgroup { path: leaf, source }),
    }
    // Writing 0 moves the writer's whole thread group.
    super::files::write_value(&leaf.join("cgroup.procs"), "0").map_err(|source| {
        CgroupError::MoveDaemon {
            path: leaf.clone(),
            source,
        }
    })?;
    tracing::info!(group = %leaf.display(), "moved the daemon into a leaf of its own group");
    Ok(Some(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_group_comes_from_the_unified_line() {
        let hybrid =
            "12:memory:/user.slice\n1:name=systemd:/x\n0::/boxd.slice/boxd.service/daemon\n";
        assert_eq!(
            group_from_proc(hybrid).as_deref(),
            Some("boxd.slice/boxd.service/daemon")
        );
        assert_eq!(group_from_proc("0::/\n").as_deref(), Some(""));
        assert_eq!(group_from_proc("4:pids:/a\n"), None);
    }

    #[test]
    fn ancestry_is_by_whole_components() {
        assert!(is_ancestor_or_self("a/b", "a/b"));
        assert!(is_ancestor_or_self("a/b", "a/b/c"));
        assert!(!is_ancestor_or_self("a/b", "a/bc"));
        assert!(!is_ancestor_or_self("a/b/c", "a/b"));
        assert!(!is_ancestor_or_self("", "boxd"));
    }

    #[test]
    fn the_default_is_boxd_unless_systemd_put_the_daemon_in_a_delegated_leaf() {
        let root = tempfile::tempdir().unwrap();
        let service = root.path().join("boxd.slice/boxd.service");
        fs::create_dir_all(service.join(DAEMON_LEAF)).unwrap();
        let own = Some("boxd.slice/boxd.service/daemon");
        // Not marked delegated (tmpfs may refuse trusted.* xattrs: then nothing to test
        // beyond the fallback).
        assert_eq!(default_parent(root.path(), own), DEFAULT_PARENT);
        if xattr::set(&service, "user.delegate", b"1").is_ok() {
            assert_eq!(default_parent(root.path(), own), "boxd.slice/boxd.service");
            // The daemon directly in the delegated group (older systemd): keep `boxd`.
            assert_eq!(
                default_parent(root.path(), Some("boxd.slice/boxd.service")),
                DEFAULT_PARENT
            );
            // A leaf of another name is not ours.
            assert_eq!(
                default_parent(root.path(), Some("boxd.slice/boxd.service/other")),
                DEFAULT_PARENT
            );
        }
        assert_eq!(default_parent(root.path(), None), DEFAULT_PARENT);
    }

    #[test]
    fn the_daemon_moves_only_when_it_sits_above_the_parent() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            leave_internal_group(root.path(), "svc", "boxd").unwrap(),
            None
        );
        assert!(!root.path().join("svc").exists());
        // Plain files stand in for cgroupfs: the leaf is made and "0" written to it.
        fs::create_dir_all(root.path().join("svc/daemon")).unwrap();
        fs::write(root.path().join("svc/daemon/cgroup.procs"), "").unwrap();
        let leaf = leave_internal_group(root.path(), "svc", "svc").unwrap();
        assert_eq!(leaf, Some(root.path().join("svc/daemon")));
        assert_eq!(
            fs::read_to_string(root.path().join("svc/daemon/cgroup.procs")).unwrap(),
            "0"
        );
    }
}
