//! cgroup v2 (unified hierarchy): one directory per container, `<root>/<parent>/<id>`.
//!
//! Controllers (`cpu`, `memory`, `pids`, and `io` where available) are enabled in
//! `cgroup.subtree_control` of the root and of every ancestor down to the parent. The
//! "no internal processes" rule (Documentation/admin-guide/cgroup-v2.rst) means none of
//! those below the root may hold a process: the daemon itself must live elsewhere (under
//! systemd, in a leaf of its delegated subtree), and a violation is reported as
//! [`CgroupError::InternalProcesses`] instead of the kernel's bare EBUSY.
//!
//! All of it is plain file I/O rather than cgroups-rs, whose v2 support does not fit:
//! its `create()` ignores every failed `cgroup.subtree_control` write (so a group
//! without a memory controller would come up uncapped), its `set_swappiness()` writes
//! the swappiness number into `memory.swap.max`, and its writes use `File::create`,
//! which on a non-cgroup2 `/sys/fs/cgroup` (a tmpfs on hybrid hosts) silently makes
//! plain files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::runtime::spec::Resources;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::files::{self, FileError};
use super::limits::{self, Limit};
use super::{check_id, check_parent, CgroupError, CgroupManager, CgroupVersion, ContainerCgroup};

/// Controllers boxd enables on v2, and whether it refuses to run without them.
pub const V2_CONTROLLERS: &[(&str, bool)] = &[
    ("cpu", true),
    ("io", false),
    ("memory", true),
    ("pids", true),
];

/// How many kill rounds `remove` makes before giving up.
const KILL_ROUNDS: u32 = 10;

/// The cgroup v2 manager.
#[derive(Debug, Clone)]
pub struct V2Manager {
    root: PathBuf,
    parent: String,
    controllers: Vec<String>,
}

impl V2Manager {
    /// Builds a manager for the cgroup2 file system mounted at `root`.
    pub fn new(root: PathBuf, parent: &str) -> Result<Self, CgroupError> {
        check_parent(parent)?;
        let file = root.join("cgroup.controllers");
        let available = files::parse_list(&files::read_string(&file).map_err(|source| {
            CgroupError::ReadControllers {
                path: root.clone(),
                source,
            }
        })?);
        let missing: Vec<String> = V2_CONTROLLERS
            .iter()
            .filter(|(c, required)| *required && !available.iter().any(|a| a == c))
            .map(|(c, _)| (*c).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(CgroupError::UnavailableControllers {
                path: root,
                missing,
            });
        }
        let controllers = V2_CONTROLLERS
            .iter()
            .filter(|(c, _)| available.iter().any(|a| a == c))
            .map(|(c, _)| (*c).to_owned())
            .collect();
        Ok(Self {
            root,
            parent: parent.to_owned(),
            controllers,
        })
    }

    fn parent_dir(&self) -> PathBuf {
        self.root.join(&self.parent)
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.parent_dir().join(id)
    }

    /// Creates the parent's missing directories and enables the controllers in the root
    /// and every ancestor down to the parent.
    fn ensure_parent(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        self.enable_controllers(&dir)?;
        for component in self.parent.split('/') {
            dir.push(component);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CgroupError::CreateCgroup { path: dir, source });
                }
            }
            self.enable_controllers(&dir)?;
        }
        Ok(())
    }

    /// Writes only the controllers not yet enabled: ancestors above a systemd delegation
    /// point are not writable by the delegate but already have them.
    fn enable_controllers(&self, dir: &Path) -> Result<(), CgroupError> {
        let file = dir.join("cgroup.subtree_control");
        let enabled = files::parse_list(&files::read_string(&file).map_err(|source| {
            CgroupError::ReadControllers {
                path: dir.to_owned(),
                source,
            }
        })?);
        let wanted: Vec<String> = self
            .controllers
            .iter()
            .filter(|c| !enabled.contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let value = wanted.join(" ");
        files::write_value(&file, &value).map_err(|source| {
            if source.raw_os_error() == Some(libc::EBUSY) {
                CgroupError::InternalProcesses {
                    path: dir.to_owned(),
                }
            } else {
                CgroupError::EnableControllers {
                    path: dir.to_owned(),
                    controllers: value.clone(),
                    source,
                }
            }
        })
    }

    fn apply(&self, dir: &Path, r: &Resources) -> Result<Vec<String>, CgroupError> {
        let mut warnings = Vec::new();
        let write = |file: &'static str, value: &str| {
            files::write_value(&dir.join(file), value).map_err(|e| CgroupError::SetLimit {
                path: dir.to_owned(),
                file,
                source: Box::new(e),
            })
        };
        if let Some(m) = r.memory_bytes {
            write("memory.max", &m.to_string())?;
        }
        if let Some(high) = r.memory_high_bytes {
            write("memory.high", &high.to_string())?;
        }
        if let Some(swap) = limits::v2_swap_max(r) {
            if dir.join("memory.swap.max").exists() {
                write("memory.swap.max", &swap.to_string())?;
            } else if r.memory_swap_bytes.is_some_and(|s| s != 0) || r.memory_swappiness == Some(0)
            {
                warnings.push(
                    "swap limit not applied: the kernel has no memory.swap.max \
                     (no swap accounting); swap use is not limited"
                        .to_owned(),
                );
            }
        }
        warnings.extend(limits::hierarchy_warnings(CgroupVersion::V2, r));
        if let Some(p) = r.pids_max {
            let max = if p == -1 {
                Limit::Max
            } else {
                Limit::Value(p.unsigned_abs())
            };
            write("pids.max", &max.to_string())?;
        }
        if let Some(cpu_max) = limits::v2_cpu_max(r) {
            write("cpu.max", &cpu_max)?;
        }
        if let Some(s) = r.cpu_shares {
            write("cpu.weight", &limits::shares_to_weight(s).to_string())?;
        }
        Ok(warnings)
    }

    /// Kills everything in the group (and below). `cgroup.kill` (Linux 5.14) does it
    /// atomically, forks included; older kernels get runc's freeze, kill each pid, thaw.
    fn kill_once(&self, id: &str, dir: &Path) -> Result<(), CgroupError> {
        let kill_err =
            |source: Box<dyn std::error::Error + Send + Sync>| CgroupError::KillProcesses {
                path: dir.to_owned(),
                source,
            };
        let kill_file = dir.join("cgroup.kill");
        if kill_file.exists() {
            return files::write_value(&kill_file, "1").map_err(|e| kill_err(Box::new(e)));
        }
        let freeze_file = dir.join("cgroup.freeze");
        let can_freeze = freeze_file.exists();
        let freeze = |value: &str, action| {
            files::write_value(&freeze_file, value).map_err(|e| CgroupError::Freeze {
                path: dir.to_owned(),
                action,
                source: Box::new(e),
            })
        };
        if can_freeze {
            freeze("1", "freeze")?;
        }
        let killed = self.pids(id).and_then(|pids| {
            for &pid in pids.iter().filter(|p| **p > 0) {
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(kill_err(Box::new(e))),
                }
            }
            Ok(())
        });
        if can_freeze {
            freeze("0", "thaw")?;
        }
        killed
    }
}

/// Freezes the group at `dir` for a pause (`cgroup.freeze` 1, Linux 5.2) and waits until
/// `cgroup.events` says `frozen 1`: the write only asks, and the kernel freezes the
/// tasks one by one (Documentation/admin-guide/cgroup-v2.rst, "cgroup.freeze"). Past
/// `timeout` the group is thawed again and the pause fails.
pub(crate) fn freeze_dir(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let err = |action: &'static str| {
        move |e: FileError| CgroupError::Freeze {
            path: dir.to_owned(),
            action,
            source: Box::new(e),
        }
    };
    let freeze = dir.join("cgroup.freeze");
    let events = dir.join("cgroup.events");
    files::write_value(&freeze, "1").map_err(err("freeze"))?;
    let start = Instant::now();
    loop {
        if files::read_counter(&events, "frozen").map_err(err("freeze"))? == 1 {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            files::write_value(&freeze, "0").map_err(err("thaw"))?;
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_owned(),
                waited: timeout,
            });
        }
        thread::sleep(Duration::from_millis(2));
    }
}

impl CgroupManager for V2Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn controllers(&self) -> Vec<String> {
        self.controllers.clone()
    }

    fn parent(&self) -> &str {
        &self.parent
    }

    fn create(&self, id: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError> {
        check_id(id)?;
        limits::validate(resources)?;
        self.ensure_parent()?;
        let dir = self.dir(id);
        let fresh = match fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(source) => return Err(CgroupError::CreateCgroup { path: dir, source }),
        };
        // Devices first, so no process can join a group without its device filter.
        let made = super::devices::restrict_v2(&dir).and_then(|()| self.apply(&dir, resources));
        let warnings = match made {
            Ok(warnings) => warnings,
            Err(e) => {
                // A group this call made must not outlive the failure; a reused one is
                // the caller's to remove.
                if fresh {
                    let _ = self.remove(id);
                }
                return Err(e);
            }
        };
        Ok(ContainerCgroup {
            join_files: vec![dir.join("cgroup.procs")],
            oom_counter: Some(boxd_shim::protocol::OomCounter {
                path: dir.join("memory.events"),
                key: "oom_kill".to_owned(),
            }),
            warnings,
        })
    }

    fn remove(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Ok(());
        }
        let mut emptied = self.pids(id)?.is_empty();
        for round in 1..=KILL_ROUNDS {
            if emptied {
                break;
            }
            self.kill_once(id, &dir)?;
            let deadline = Instant::now() + Duration::from_millis(200) * round;
            while Instant::now() < deadline {
                if self.pids(id)?.is_empty() {
                    emptied = true;
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        if !emptied {
            return Err(CgroupError::ProcessesRemain {
                id: id.to_owned(),
                pids: self.pids(id)?,
            });
        }
        files::remove_group_tree(&dir)
            .map_err(|(path, source)| CgroupError::RemoveCgroup { path, source })
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dir(id).is_dir()
    }

    fn list(&self) -> Result<Vec<String>, CgroupError> {
        // In a delegated group the daemon's own leaf (and any group systemd keeps, which
        // it names with a leading dot) sits beside the containers' groups.
        let mut names = files::child_dirs(&self.parent_dir()).map_err(CgroupError::ListCgroups)?;
        names.retain(|n| n != super::delegation::DAEMON_LEAF && !n.starts_with('.'));
        Ok(names)
    }

    fn oom_kill_count(&self, id: &str) -> Result<u64, CgroupError> {
        check_id(id)?;
        files::read_counter(&self.dir(id).join("memory.events"), "oom_kill").map_err(|source| {
            CgroupError::ReadOomCount {
                id: id.to_owned(),
                source,
            }
        })
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError> {
        check_id(id)?;
        files::read_procs_recursive(&self.dir(id)).map_err(|source: FileError| {
            CgroupError::ReadProcs {
                id: id.to_owned(),
                source,
            }
        })
    }

    fn freeze(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Err(CgroupError::NoGroup { path: dir });
        }
        freeze_dir(&dir, super::FREEZE_TIMEOUT)
    }

    fn thaw(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Ok(());
        }
        files::write_value(&dir.join("cgroup.freeze"), "0").map_err(|e| CgroupError::Freeze {
            path: dir.clone(),
            action: "thaw",
            source: Box::new(e),
        })
    }

    fn frozen(&self, id: &str) -> Result<bool, CgroupError> {
        check_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Ok(false);
        }
        let asked =
            files::read_string(&dir.join("cgroup.freeze")).map_err(|e| CgroupError::Freeze {
                path: dir.clone(),
                action: "read the freeze state of",
                source: Box::new(e),
            })?;
        Ok(asked.trim() == "1")
    }

    fn update(&self, id: &str, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        check_id(id)?;
        limits::validate(resources)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Err(CgroupError::NoGroup { path: dir });
        }
        self.apply(&dir, resources)
    }

    fn remove_parent(&self) -> Result<(), CgroupError> {
        let dir = self.parent_dir();
        let children = files::child_dirs(&dir).map_err(CgroupError::ListCgroups)?;
        if !children.is_empty() {
            return Err(CgroupError::ParentNotEmpty {
                path: dir,
                children,
            });
        }
        // Only the last component: ancestors (e.g. a systemd slice) are not boxd's.
        files::remove_group_tree(&dir)
            .map_err(|(path, source)| CgroupError::RemoveCgroup { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cgroup2 tree: plain files where the kernel would have control files.
    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), controllers).unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    fn touch_group(dir: &Path, subtree: &str) {
        fs::create_dir_all(dir).unwrap();
        for f in [
            "cgroup.procs",
            "memory.max",
            "memory.swap.max",
            "pids.max",
            "cpu.max",
            "cpu.weight",
        ] {
            fs::write(dir.join(f), "").unwrap();
        }
        fs::write(dir.join("cgroup.subtree_control"), subtree).unwrap();
        fs::write(dir.join("memory.events"), "oom 0\noom_kill 0\n").unwrap();
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn freeze_waits_for_frozen_and_thaws_back_on_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path();
        fs::write(g.join("cgroup.freeze"), "0").unwrap();
        fs::write(g.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        freeze_dir(g, Duration::from_millis(50)).unwrap();
        assert_eq!(read(g.join("cgroup.freeze")), "1");

        // The kernel never reports frozen: the pause fails and the group runs on.
        fs::write(g.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(matches!(
            freeze_dir(g, Duration::from_millis(20)),
            Err(CgroupError::FreezeTimeout { .. })
        ));
        assert_eq!(read(g.join("cgroup.freeze")), "0");
    }

    #[test]
    fn refuses_a_root_without_memory() {
        let root = fake_root("cpu io pids");
        assert!(matches!(
            V2Manager::new(root.path().to_owned(), "boxd"),
            Err(CgroupError::UnavailableControllers { missing, .. }) if missing == ["memory"]
        ));
    }

    #[test]
    fn enables_only_missing_controllers_and_writes_every_limit() {
        let root = fake_root("cpuset cpu io memory hugetlb pids rdma misc");
        // The root already has memory and pids enabled; the parent and the group exist
        // with their control files, as the kernel would make them.
        fs::write(root.path().join("cgroup.subtree_control"), "memory pids").unwrap();
        touch_group(&root.path().join("boxd"), "");
        touch_group(&root.path().join("boxd/c1"), "");
        let m = V2Manager::new(root.path().to_owned(), "boxd").unwrap();
        assert_eq!(m.controllers(), vec!["cpu", "io", "memory", "pids"]);
        let r = Resources {
            memory_bytes: Some(64 << 20),
            memory_swap_bytes: Some(96 << 20),
            memory_swappiness: Some(10),
            pids_max: Some(-1),
            cpu_quota_us: Some(50_000),
            cpu_period_us: None,
            cpu_shares: Some(1024),
            ..Resources::default()
        };
        let cg = m.create("c1", &r).unwrap();
        // Writes to a plain file replace nothing else, so each file shows what was written.
        assert_eq!(read(root.path().join("cgroup.subtree_control")), "+cpu +io");
        assert_eq!(
            read(root.path().join("boxd/cgroup.subtree_control")),
            "+cpu +io +memory +pids"
        );
        let g = root.path().join("boxd/c1");
        assert_eq!(read(g.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(g.join("memory.swap.max")), (32u64 << 20).to_string());
        assert_eq!(read(g.join("pids.max")), "max");
        assert_eq!(read(g.join("cpu.max")), "50000 100000");
        assert_eq!(read(g.join("cpu.weight")), "39");
        assert_eq!(cg.join_files, vec![g.join("cgroup.procs")]);
        assert_eq!(cg.oom_counter.unwrap().path, g.join("memory.events"));
        assert_eq!(cg.warnings.len(), 1, "{:?}", cg.warnings);
        assert!(cg.warnings[0].contains("swappiness"));
        assert_eq!(m.list().unwrap(), vec!["c1"]);
        assert_eq!(m.oom_kill_count("c1").unwrap(), 0);
    }

    #[test]
    fn swappiness_zero_disables_swap() {
        let root = fake_root("cpu memory pids");
        fs::write(
            root.path().join("cgroup.subtree_control"),
            "cpu memory pids",
        )
        .unwrap();
        touch_group(&root.path().join("boxd"), "cpu memory pids");
        touch_group(&root.path().join("boxd/c1"), "");
        let m = V2Manager::new(root.path().to_owned(), "boxd").unwrap();
        let r = Resources {
            memory_bytes: Some(64 << 20),
            memory_swap_bytes: Some(-1),
            memory_swappiness: Some(0),
            ..Resources::default()
        };
        let cg = m.create("c1", &r).unwrap();
        assert_eq!(read(root.path().join("boxd/c1/memory.swap.max")), "0");
        assert!(cg.warnings.is_empty(), "{:?}", cg.warnings);
    }

    #[test]
    fn a_failed_create_removes_the_group_it_made() {
        let root = fake_root("cpu memory pids");
        touch_group(&root.path().join("boxd"), "cpu memory pids");
        let m = V2Manager::new(root.path().to_owned(), "boxd").unwrap();
        let r = Resources {
            memory_bytes: Some(64 << 20),
            ..Resources::default()
        };
        // The new directory has no memory.max (as without the memory controller).
        assert!(matches!(
            m.create("c1", &r),
            Err(CgroupError::SetLimit {
                file: "memory.max",
                ..
            })
        ));
        assert!(!root.path().join("boxd/c1").exists());
    }

    #[test]
    fn remove_parent_refuses_while_groups_remain() {
        let root = fake_root("cpu memory pids");
        fs::create_dir_all(root.path().join("boxd/c1")).unwrap();
        let m = V2Manager::new(root.path().to_owned(), "boxd").unwrap();
        assert!(matches!(
            m.remove_parent(),
            Err(CgroupError::ParentNotEmpty { children, .. }) if children == ["c1"]
        ));
    }
}
