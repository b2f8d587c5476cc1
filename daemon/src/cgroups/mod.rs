//! cgroups: one parent group (`--cgroup-parent`, default `boxd`) and one child group per
//! container under it, on cgroup v1 (one directory per controller) or v2 (one directory).
//!
//! Invariants callers rely on:
//! - [`CgroupManager::create`] either applies every requested limit or fails; a limit that
//!   can only be approximated (swap without swap accounting, swappiness on v2) is reported
//!   in [`ContainerCgroup::warnings`], never dropped silently. A memory limit is never
//!   approximated.
//! - [`CgroupManager::remove`] leaves no process and no directory behind, and is
//!   idempotent, so reconcile can call it for any id.
//! - Only groups under the parent are ever created, written or removed.
//!
//! [`detect`] picks [`v1::V1Manager`] or [`v2::V2Manager`]; [`fake::FakeCgroups`] records
//! calls for the runtime's unit tests. Pure parsing lives in [`files`], limit checks and
//! translations in [`limits`].

pub mod delegation;
pub mod devices;
pub mod fake;
pub mod files;
pub mod limits;
pub mod stats;
pub mod v1;
pub mod v2;
pub mod watch;

#[cfg(test)]
mod root_tests;

use std::path::{Path, PathBuf};

use crate::runtime::spec::Resources;

pub use files::FileError;
pub use limits::{validate, InvalidResources};

/// Where the cgroup file system is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup hierarchy in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: one hierarchy per controller.
    V1,
    /// Unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `"v1"` or `"v2"`, as the API reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// Creates, limits, inspects and removes containers' cgroups under one parent group.
pub trait CgroupManager: Send + Sync + 'static {
    /// The hierarchy this manager drives.
    fn version(&self) -> CgroupVersion;
    /// Controllers boxd uses here.
    fn controllers(&self) -> Vec<String>;
    /// The parent group, relative to the hierarchy root (e.g. `boxd`).
    fn parent(&self) -> &str;
    /// Creates (or, if it exists, reuses) the container's group(s) under the parent and
    /// applies every limit. Returns what the shim needs to join it.
    fn create(&self, id: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError>;
    /// SIGKILLs every process still in the group, then removes every directory of it.
    /// Idempotent: `Ok` if absent.
    fn remove(&self, id: &str) -> Result<(), CgroupError>;
    /// Whether any directory of the container's group exists.
    fn exists(&self, id: &str) -> bool;
    /// Child group names under the parent, sorted.
    fn list(&self) -> Result<Vec<String>, CgroupError>;
    /// How many times the kernel's OOM killer killed a process in the group.
    fn oom_kill_count(&self, id: &str) -> Result<u64, CgroupError>;
    /// Pids in the group and its descendants, sorted.
    fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError>;
    /// Removes the parent group itself; fails if it still has child groups.
    fn remove_parent(&self) -> Result<(), CgroupError>;
    /// Freezes every process of the group (v1: `freezer.state` FROZEN; v2: writes 1 to
    /// `cgroup.freeze`) and waits, bounded, until the kernel reports the group frozen. A
    /// group that does not get there is thawed again and [`CgroupError::FreezeTimeout`]
    /// returned, so a failure leaves it running as before. Blocks: call it off the async
    /// workers.
    fn freeze(&self, id: &str) -> Result<(), CgroupError>;
    /// Thaws the group (v1 THAWED, v2 `cgroup.freeze` 0). Idempotent.
    fn thaw(&self, id: &str) -> Result<(), CgroupError>;
    /// Whether a freeze of the group is asked for (v1 FROZEN or FREEZING, v2
    /// `cgroup.freeze` 1): the kernel's record of a pause, read back after a daemon
    /// restart. A group that does not exist is not frozen.
    fn frozen(&self, id: &str) -> Result<bool, CgroupError>;
    /// Writes `resources` into the existing group of a running container, as `create`
    /// does (same checks, same write order). Returns the limits not honoured exactly.
    /// A memory limit under what the group uses and cannot reclaim fails with a
    /// [`CgroupError::SetLimit`] whose [`CgroupError::is_busy`] is true.
    fn update(&self, id: &str, resources: &Resources) -> Result<Vec<String>, CgroupError>;
}

/// What a container's process needs to join its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// The files the app's process writes `0` into to join its group, in order: on v1
    /// each hierarchy's `tasks` (a single-threaded process moving itself there skips
    /// the kernel's global threadgroup lock, whose write side waits for an RCU grace
    /// period: ~10 ms per start), on v2 the group's `cgroup.procs`.
    pub join_files: Vec<PathBuf>,
    /// v1 `memory.oom_control` / v2 `memory.events`, key `oom_kill`.
    pub oom_counter: Option<boxd_shim::protocol::OomCounter>,
    /// Limits that could not be honoured exactly.
    pub warnings: Vec<String>,
}

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a cgroup2 root nor any v1 controller was found.
    #[error("no cgroup hierarchy found at {path}")]
    DetectHierarchy { path: PathBuf },
    /// `cgroup.controllers` exists, but the file system is not cgroup2 (e.g. a tmpfs).
    #[error("{path} has cgroup.controllers but is not a cgroup2 mount")]
    NotCgroup2 { path: PathBuf },
    /// `/proc/self/mountinfo` could not be read.
    #[error("failed to read the cgroup v1 mounts")]
    ReadMounts(#[source] FileError),
    /// A controller boxd needs is not mounted (v1).
    #[error("cgroup v1 controller {controller} is not mounted")]
    MissingController { controller: &'static str },
    /// A controller boxd needs is not available (v2).
    #[error("cgroup v2 controllers {missing:?} are not available in {path}")]
    UnavailableControllers { path: PathBuf, missing: Vec<String> },
    /// A parent or container name is not a plain relative path.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// The requested limits are invalid.
    #[error("invalid resources")]
    InvalidResources(#[from] InvalidResources),
    /// Reading the controllers of a group failed (v2).
    #[error("failed to read the controllers of {path}")]
    ReadControllers {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    /// `mkdir` of a group failed.
    #[error("failed to create cgroup {path}")]
    CreateCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Copying `cpuset.cpus`/`cpuset.mems` from the parent failed (v1).
    #[error("failed to initialise the cpuset of {path}")]
    InitCpuset {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    /// Writing `cgroup.subtree_control` failed (v2).
    #[error("failed to enable controllers {controllers} in {path}")]
    EnableControllers {
        path: PathBuf,
        controllers: String,
        #[source]
        source: FileError,
    },
    /// v2 "no internal processes" rule: a group with processes cannot hand controllers to
    /// its children, so the parent (and every ancestor below the root) must hold none.
    #[error("cannot enable controllers in {path}: it holds processes; run boxd in a leaf group outside the parent")]
    InternalProcesses { path: PathBuf },
    /// Moving the daemon into a leaf of its own group failed.
    #[error("failed to move the daemon into {path}")]
    MoveDaemon {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    /// Writing a limit failed.
    #[error("failed to set {file} in {path}")]
    SetLimit {
        path: PathBuf,
        file: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Reading a value needed to apply limits failed.
    #[error("failed to read the current limits of {path}")]
    ReadLimit {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    /// Listing child groups failed.
    #[error("failed to list cgroups")]
    ListCgroups(#[source] FileError),
    /// Reading `cgroup.procs` failed.
    #[error("failed to read the processes of cgroup {id}")]
    ReadProcs {
        id: String,
        #[source]
        source: FileError,
    },
    /// Reading the OOM-kill counter failed.
    #[error("failed to read the oom kill count of cgroup {id}")]
    ReadOomCount {
        id: String,
        #[source]
        source: FileError,
    },
    /// Freezing or thawing a group failed.
    #[error("failed to {action} cgroup {path}")]
    Freeze {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The group did not reach the frozen state in time (a task in uninterruptible
    /// sleep, say); it was thawed again.
    #[error("cgroup {path} did not freeze within {waited:?}; it was thawed again")]
    FreezeTimeout {
        path: PathBuf,
        waited: std::time::Duration,
    },
    /// The container's group does not exist (the container does not run).
    #[error("cgroup {path} does not exist")]
    NoGroup { path: PathBuf },
    /// Writing `cgroup.kill` or sending SIGKILL failed.
    #[error("failed to kill the processes of cgroup {path}")]
    KillProcesses {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Processes survived every kill round.
    #[error("processes {pids:?} are still in cgroup {id} after killing")]
    ProcessesRemain { id: String, pids: Vec<i32> },
    /// `rmdir` of a group failed.
    #[error("failed to remove cgroup {path}")]
    RemoveCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parent still has child groups.
    #[error("cgroup parent {path} still has groups {children:?}")]
    ParentNotEmpty {
        path: PathBuf,
        children: Vec<String>,
    },
}

impl CgroupError {
    /// Whether the kernel refused a limit with EBUSY: on v1 a memory limit below what
    /// the group uses and the kernel could not reclaim (mm/memcontrol.c:
    /// `mem_cgroup_resize_max` gives up with -EBUSY).
    pub fn is_busy(&self) -> bool {
        let CgroupError::SetLimit { source, .. } = self else {
            return false;
        };
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(e) = cur {
            let errno = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                .or_else(|| {
                    e.downcast_ref::<FileError>()
                        .and_then(FileError::raw_os_error)
                });
            if errno == Some(libc::EBUSY) {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

/// How long [`CgroupManager::freeze`] waits for the kernel to report the group frozen.
pub const FREEZE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Detects the hierarchy and returns the manager for it: pure v2 when
/// `/sys/fs/cgroup/cgroup.controllers` exists, else v1/hybrid with controllers found in
/// `/proc/self/mountinfo`.
///
/// `parent` is the configured parent group; without one, v2 uses the delegated group
/// the daemon runs in, if any ([`delegation::default_parent`]), and both hierarchies
/// fall back to `boxd`. On v2, when the daemon's own group is the parent or above it,
/// the daemon first moves itself into the leaf `<own>/daemon`
/// ([`delegation::leave_internal_group`]).
pub fn detect(parent: Option<&str>) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        // On a v1 host /sys/fs/cgroup is a writable tmpfs, where a stray
        // cgroup.controllers file could exist; cgroups-rs's statfs check settles it.
        if !cgroups_rs::fs::hierarchies::is_cgroup2_unified_mode() {
            return Err(CgroupError::NotCgroup2 {
                path: root.to_owned(),
            });
        }
        let own = delegation::own_group();
        let parent = match parent {
            Some(p) => p.trim_matches('/').to_owned(),
            None => delegation::default_parent(root, own.as_deref()),
        };
        let manager = v2::V2Manager::new(root.to_owned(), &parent)?;
        if let Some(own) = &own {
            delegation::leave_internal_group(root, own, &parent)?;
        }
        return Ok(Box::new(manager));
    }
    let mounts = files::read_v1_mounts(Path::new("/proc/self/mountinfo"))
        .map_err(CgroupError::ReadMounts)?;
    if mounts.iter().all(|m| m.controllers.is_empty()) {
        return Err(CgroupError::DetectHierarchy {
            path: root.to_owned(),
        });
    }
    let parent = parent.map_or(delegation::DEFAULT_PARENT, |p| p.trim_matches('/'));
    Ok(Box::new(v1::V1Manager::new(&mounts, parent)?))
}

/// Checks a parent path: relative, `/`-separated plain components.
pub(crate) fn check_parent(parent: &str) -> Result<(), CgroupError> {
    let bad = |reason| CgroupError::InvalidName {
        name: parent.to_owned(),
        reason,
    };
    if parent.is_empty() {
        return Err(bad("must not be empty"));
    }
    if parent.starts_with('/') {
        return Err(bad("must be relative to the hierarchy root"));
    }
    for component in parent.split('/') {
        check_component(component).map_err(bad)?;
    }
    Ok(())
}

/// Checks a container group name: one plain path component.
pub(crate) fn check_id(id: &str) -> Result<(), CgroupError> {
    check_component(id).map_err(|reason| CgroupError::InvalidName {
        name: id.to_owned(),
        reason,
    })
}

fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() || c == "." || c == ".." {
        return Err("has an empty, '.' or '..' component");
    }
    if c.contains('/') || c.contains('\0') {
        return Err("must be a single path component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_rejects_escapes() {
        assert!(check_parent("boxd").is_ok());
        assert!(check_parent("boxd.slice/boxd.service").is_ok());
        for bad in ["", "/boxd", "a/../b", "a//b", "..", "a/"] {
            assert!(check_parent(bad).is_err(), "{bad:?}");
        }
        assert!(check_id("c0ffee").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
