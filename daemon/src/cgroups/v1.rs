//! cgroup v1 (legacy and hybrid hosts): one directory per controller,
//! `<mount>/<parent>/<id>`, for every controller in [`V1_CONTROLLERS`] that is mounted.
//!
//! Mount points come from mountinfo, not from a fixed `cpu,cpuacct` guess: hosts mount
//! controllers separately or together, and a co-mounted pair shares one directory.
//!
//! Split of work: the limit setters and the freezer go through cgroups-rs's controllers
//! (`MemController`, `PidController`, `CpuController`, `FreezerController`), built on
//! the paths found here. Directory creation, the cpuset copy, process listing and
//! removal are plain file I/O, because cgroups-rs's `create()` only logs a failed cpuset
//! copy (the container's join then fails later with a bare ENOSPC), its `procs()` turns
//! an unreadable file into "no processes" (which would let `remove` skip the kill), and
//! its `delete()` does not kill anything first.
//!
//! `memory.use_hierarchy` is not written: since Linux 5.x it is always 1 and read-only
//! in effect (writing 0 fails), and on older kernels it only matters for limits set on
//! the parent, which boxd never sets.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::runtime::spec::Resources;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;
use cgroups_rs::FreezerState;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::files::{self, V1Mount};
use super::limits::{self, MemoryWriteOrder};
use super::{check_id, check_parent, CgroupError, CgroupManager, CgroupVersion, ContainerCgroup};

/// Controllers boxd uses on v1, in the order a process joins them, and whether boxd
/// refuses to run without them. blkio precedes memory so that writeback is charged
/// consistently (cgroups-rs `hierarchies.rs` notes the same ordering).
pub const V1_CONTROLLERS: &[(&str, bool)] = &[
    ("cpuset", false),
    ("cpu", true),
    ("cpuacct", false),
    ("blkio", false),
    ("memory", true),
    ("pids", true),
    ("devices", false),
    ("freezer", false),
];

/// How many freeze-kill-thaw rounds `remove` makes before giving up.
const KILL_ROUNDS: u32 = 10;

/// The cgroup v1 manager.
#[derive(Debug, Clone)]
pub struct V1Manager {
    parent: String,
    /// Controller name → mount point, for the mounted controllers of [`V1_CONTROLLERS`].
    mounts: Vec<(&'static str, PathBuf)>,
}

impl V1Manager {
    /// Builds a manager from the v1 mounts (see [`files::read_v1_mounts`]).
    pub fn new(mounts: &[V1Mount], parent: &str) -> Result<Self, CgroupError> {
        check_parent(parent)?;
        let mut found = Vec::new();
        for &(controller, required) in V1_CONTROLLERS {
            // The first mount wins; later ones are bind mounts of the same hierarchy.
            match mounts
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))
            {
                Some(m) => found.push((controller, m.mount_point.clone())),
                None if required => return Err(CgroupError::MissingController { controller }),
                None => {}
            }
        }
        Ok(Self {
            parent: parent.to_owned(),
            mounts: found,
        })
    }

    fn mount(&self, controller: &str) -> Option<&Path> {
        self.mounts
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, p)| p.as_path())
    }

    /// The container's directory for `controller`.
    fn dir(&self, controller: &str, id: &str) -> Option<PathBuf> {
        self.mount(controller)
            .map(|m| m.join(&self.parent).join(id))
    }

    /// Mount points, each once (co-mounted controllers share one), in join order.
    fn unique_mounts(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, m) in &self.mounts {
            if !out.contains(&m.as_path()) {
                out.push(m);
            }
        }
        out
    }

    /// The container's directories, each once, in join order.
    fn dirs(&self, id: &str) -> Vec<PathBuf> {
        self.unique_mounts()
            .into_iter()
            .map(|m| m.join(&self.parent).join(id))
            .collect()
    }

    /// Makes sure `cpuset.cpus` and `cpuset.mems` are set in the parent and the group: a
    /// new cpuset group starts with both empty, and the kernel refuses to attach a task
    /// to it (ENOSPC) until they are set (Documentation/admin-guide/cgroup-v1/cpusets.rst).
    fn init_cpuset(&self, id: &str) -> Result<(), CgroupError> {
        let Some(mount) = self.mount("cpuset") else {
            return Ok(());
        };
        let mut above = mount.to_path_buf();
        for component in self.parent.split('/').chain([id]) {
            let here = above.join(component);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let init_err = |source| CgroupError::InitCpuset {
                    path: here.clone(),
                    source,
                };
                let current = files::read_string(&here.join(file)).map_err(init_err)?;
                if current.trim().is_empty() {
                    let inherited = files::read_string(&above.join(file)).map_err(init_err)?;
                    files::write_value(&here.join(file), inherited.trim()).map_err(init_err)?;
                }
            }
            above = here;
        }
        Ok(())
    }

    fn apply(
        &self,
        id: &str,
        r: &Resources,
        warnings: &mut Vec<String>,
    ) -> Result<(), CgroupError> {
        let set_err = |path: &Path, file: &'static str| {
            let path = path.to_owned();
            move |e: cgroups_rs::fs::error::Error| CgroupError::SetLimit {
                path,
                file,
                source: Box::new(e),
            }
        };

        let (mem_mount, mem_dir) = (
            self.required_mount("memory")?,
            self.required_dir("memory", id)?,
        );
        let mem = MemController::new(mem_dir.clone(), mem_mount.to_owned(), false);
        if let Some(m) = r.memory_bytes {
            // validate() bounds memory_bytes to i64.
            let m = i64::try_from(m).unwrap_or(i64::MAX);
            let has_memsw = mem_dir.join("memory.memsw.limit_in_bytes").exists();
            match limits::v1_memsw_limit(r) {
                Some(memsw) if has_memsw => {
                    let limit_file = mem_dir.join("memory.limit_in_bytes");
                    let current =
                        files::read_u64(&limit_file).map_err(|source| CgroupError::ReadLimit {
                            path: mem_dir.clone(),
                            source,
                        })?;
                    let set_memsw = || {
                        mem.set_memswap_limit(memsw.v1())
                            .map_err(set_err(&mem_dir, "memory.memsw.limit_in_bytes"))
                    };
                    let set_limit = || {
                        mem.set_limit(m)
                            .map_err(set_err(&mem_dir, "memory.limit_in_bytes"))
                    };
                    match limits::v1_memory_write_order(current, memsw) {
                        MemoryWriteOrder::MemswFirst => {
                            set_memsw()?;
                            set_limit()?;
                        }
                        MemoryWriteOrder::LimitFirst => {
                            set_limit()?;
                            set_memsw()?;
                        }
                    }
                }
                _ => {
                    mem.set_limit(m)
                        .map_err(set_err(&mem_dir, "memory.limit_in_bytes"))?;
                    if !has_memsw && r.memory_swap_bytes.is_some_and(|s| s != 0) {
                        warnings.push(
                            "memory_swap_bytes not applied: the kernel has no swap accounting \
                             (boot with swapaccount=1); swap use is not limited"
                                .to_owned(),
                        );
                    }
                }
            }
        }
        if let Some(s) = r.memory_swappiness {
            mem.set_swappiness(s)
                .map_err(set_err(&mem_dir, "memory.swappiness"))?;
        }
        warnings.extend(limits::hierarchy_warnings(CgroupVersion::V1, r));

        if let Some(p) = r.pids_max {
            let (mount, dir) = (self.required_mount("pids")?, self.required_dir("pids", id)?);
            let max = if p == -1 {
                MaxValue::Max
            } else {
                MaxValue::Value(p)
            };
            PidController::new(dir.clone(), mount.to_owned(), false)
                .set_pid_max(max)
                .map_err(set_err(&dir, "pids.max"))?;
        }

        let (cpu_mount, cpu_dir) = (self.required_mount("cpu")?, self.required_dir("cpu", id)?);
        let cpu = CpuController::new(cpu_dir.clone(), cpu_mount.to_owned(), false);
        // Period before quota, as runc does: the quota is then checked against the period
        // that will be in force.
        if let Some(p) = r.cpu_period_us {
            cpu.set_cfs_period(p)
                .map_err(set_err(&cpu_dir, "cpu.cfs_period_us"))?;
        }
        if let Some(q) = r.cpu_quota_us {
            cpu.set_cfs_quota(q)
                .map_err(set_err(&cpu_dir, "cpu.cfs_quota_us"))?;
        }
        if let Some(s) = r.cpu_shares {
            cpu.set_shares(s).map_err(set_err(&cpu_dir, "cpu.shares"))?;
        }
        Ok(())
    }

    fn required_mount(&self, controller: &'static str) -> Result<&Path, CgroupError> {
        self.mount(controller)
            .ok_or(CgroupError::MissingController { controller })
    }

    fn required_dir(&self, controller: &'static str, id: &str) -> Result<PathBuf, CgroupError> {
        self.dir(controller, id)
            .ok_or(CgroupError::MissingController { controller })
    }

    /// Freezes the group so nothing forks while it is being killed, SIGKILLs every pid,
    /// thaws (a frozen task only dies once thawed), and repeats until the group is
    /// empty. This is runc's v1 `signalAllProcesses`; without the freeze a fork bomb can
    /// outrun a read-then-kill loop.
    fn kill_all(&self, id: &str) -> Result<(), CgroupError> {
        // The usual case at an exit: nothing left, so nothing to freeze and thaw.
        if self.pids(id)?.is_empty() {
            return Ok(());
        }
        let freezer = match (self.mount("freezer"), self.dir("freezer", id)) {
            (Some(mount), Some(dir)) if dir.exists() => Some((
                FreezerController::new(dir.clone(), mount.to_owned(), false),
                dir,
            )),
            _ => None,
        };
        for round in 1..=KILL_ROUNDS {
            if let Some((f, dir)) = &freezer {
                freeze(f, dir)?;
            }
            let killed = self.pids(id).and_then(|pids| {
                for &pid in pids.iter().filter(|p| **p > 0) {
                    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(e) => {
                            return Err(CgroupError::KillProcesses {
                                path: self.dir("memory", id).unwrap_or_default(),
                                source: Box::new(e),
                            })
                        }
                    }
                }
                Ok(pids)
            });
            if let Some((f, dir)) = &freezer {
                f.thaw().map_err(|e| CgroupError::Freeze {
                    path: dir.clone(),
                    action: "thaw",
                    source: Box::new(e),
                })?;
            }
            if killed?.is_empty() {
                return Ok(());
            }
            let deadline = Instant::now() + Duration::from_millis(200) * round;
            while Instant::now() < deadline {
                if self.pids(id)?.is_empty() {
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Err(CgroupError::ProcessesRemain {
            id: id.to_owned(),
            pids: self.pids(id)?,
        })
    }
}

/// Freezes the group at `dir` for a pause and waits until the kernel reports FROZEN.
///
/// A freeze that races forks can sit in FREEZING; runc's v1 freezer
/// (libcontainer/cgroups/fs/freezer.go, `Set`) writes FROZEN again in a loop and, every
/// 50 tries, thaws for a moment to let such a group through. Past `timeout` the group is
/// thawed and the pause fails, so the container runs on as before.
pub(crate) fn freeze_dir(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let file = dir.join("freezer.state");
    let err = |action: &'static str| {
        move |e: files::FileError| CgroupError::Freeze {
            path: dir.to_owned(),
            action,
            source: Box::new(e),
        }
    };
    let start = Instant::now();
    for round in 0u32.. {
        if round % 50 == 49 {
            files::write_value(&file, "THAWED").map_err(err("thaw"))?;
            thread::sleep(Duration::from_millis(10));
        }
        files::write_value(&file, "FROZEN").map_err(err("freeze"))?;
        if files::read_string(&file).map_err(err("freeze"))?.trim() == "FROZEN" {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            files::write_value(&file, "THAWED").map_err(err("thaw"))?;
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_owned(),
                waited: timeout,
            });
        }
        thread::sleep(Duration::from_millis(2));
    }
    unreachable!("the loop returns")
}

/// Freezes and waits (bounded) until the kernel reports FROZEN. A task stuck in
/// uninterruptible sleep can hold the group in FREEZING; the kill goes ahead anyway and
/// the next round catches what is left.
fn freeze(f: &FreezerController, dir: &Path) -> Result<(), CgroupError> {
    f.freeze().map_err(|e| CgroupError::Freeze {
        path: dir.to_owned(),
        action: "freeze",
        source: Box::new(e),
    })?;
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if matches!(f.state(), Ok(FreezerState::Frozen)) {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

impl CgroupManager for V1Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn controllers(&self) -> Vec<String> {
        self.mounts.iter().map(|(c, _)| (*c).to_owned()).collect()
    }

    fn parent(&self) -> &str {
        &self.parent
    }

    fn create(&self, id: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError> {
        check_id(id)?;
        limits::validate(resources)?;
        let fresh = !self.exists(id);
        let dirs = self.dirs(id);
        let mut warnings = Vec::new();
        let made = dirs
            .iter()
            .try_for_each(|dir| {
                fs::create_dir_all(dir).map_err(|source| CgroupError::CreateCgroup {
                    path: dir.clone(),
                    source,
                })
            })
            .and_then(|()| self.init_cpuset(id))
            .and_then(|()| match self.dir("devices", id) {
                Some(dir) => super::devices::restrict_v1(&dir),
                None => Ok(()),
            })
            .and_then(|()| self.apply(id, resources, &mut warnings));
        if let Err(e) = made {
            // A group this call made must not outlive the failure (nor leak a
            // half-limited group); a reused one is the caller's to remove.
            if fresh {
                let _ = self.remove(id);
            }
            return Err(e);
        }
        Ok(ContainerCgroup {
            join_files: dirs.iter().map(|d| d.join("tasks")).collect(),
            oom_counter: Some(boxd_shim::protocol::OomCounter {
                path: self.required_dir("memory", id)?.join("memory.oom_control"),
                key: "oom_kill".to_owned(),
            }),
            warnings,
        })
    }

    fn remove(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        if !self.exists(id) {
            return Ok(());
        }
        self.kill_all(id)?;
        for dir in self.dirs(id) {
            files::remove_group_tree(&dir)
                .map_err(|(path, source)| CgroupError::RemoveCgroup { path, source })?;
        }
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.dirs(id).iter().any(|d| d.is_dir())
    }

    fn list(&self) -> Result<Vec<String>, CgroupError> {
        // The union over every controller, so a group half-created before a crash is
        // still found and removed.
        let mut names = Vec::new();
        for mount in self.unique_mounts() {
            names.extend(
                files::child_dirs(&mount.join(&self.parent)).map_err(CgroupError::ListCgroups)?,
            );
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn oom_kill_count(&self, id: &str) -> Result<u64, CgroupError> {
        check_id(id)?;
        let file = self.required_dir("memory", id)?.join("memory.oom_control");
        files::read_counter(&file, "oom_kill").map_err(|source| CgroupError::ReadOomCount {
            id: id.to_owned(),
            source,
        })
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError> {
        check_id(id)?;
        let mut pids = Vec::new();
        for dir in self.dirs(id) {
            pids.extend(files::read_procs_recursive(&dir).map_err(|source| {
                CgroupError::ReadProcs {
                    id: id.to_owned(),
                    source,
                }
            })?);
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    fn freeze(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let dir = self.required_dir("freezer", id)?;
        if !dir.is_dir() {
            return Err(CgroupError::NoGroup { path: dir });
        }
        freeze_dir(&dir, super::FREEZE_TIMEOUT)
    }

    fn thaw(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let dir = self.required_dir("freezer", id)?;
        if !dir.is_dir() {
            return Ok(());
        }
        files::write_value(&dir.join("freezer.state"), "THAWED").map_err(|e| CgroupError::Freeze {
            path: dir.clone(),
            action: "thaw",
            source: Box::new(e),
        })
    }

    fn frozen(&self, id: &str) -> Result<bool, CgroupError> {
        check_id(id)?;
        let Some(dir) = self.dir("freezer", id).filter(|d| d.is_dir()) else {
            return Ok(false);
        };
        let state =
            files::read_string(&dir.join("freezer.state")).map_err(|e| CgroupError::Freeze {
                path: dir.clone(),
                action: "read the freezer state of",
                source: Box::new(e),
            })?;
        // FREEZING counts: a freeze was asked for and not undone.
        Ok(state.trim() != "THAWED")
    }

    fn update(&self, id: &str, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        check_id(id)?;
        limits::validate(resources)?;
        let dir = self.required_dir("memory", id)?;
        if !dir.is_dir() {
            return Err(CgroupError::NoGroup { path: dir });
        }
        let mut warnings = Vec::new();
        self.apply(id, resources, &mut warnings)?;
        Ok(warnings)
    }

    fn remove_parent(&self) -> Result<(), CgroupError> {
        let parents: Vec<PathBuf> = self
            .unique_mounts()
            .into_iter()
            .map(|m| m.join(&self.parent))
            .collect();
        // Check every controller before removing any, so a refusal leaves all in place.
        for p in &parents {
            let children = files::child_dirs(p).map_err(CgroupError::ListCgroups)?;
            if !children.is_empty() {
                return Err(CgroupError::ParentNotEmpty {
                    path: p.clone(),
                    children,
                });
            }
        }
        for p in &parents {
            files::remove_group_tree(p)
                .map_err(|(path, source)| CgroupError::RemoveCgroup { path, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, controllers: &[&str]) -> V1Mount {
        V1Mount {
            mount_point: PathBuf::from(point),
            root: PathBuf::from("/"),
            controllers: controllers.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn uses_separate_cpu_and_cpuacct_mounts() {
        let mounts = [
            mount("/cg/cpu", &["cpu"]),
            mount("/cg/cpuacct", &["cpuacct"]),
            mount("/cg/memory", &["memory"]),
            mount("/cg/pids", &["pids"]),
        ];
        let m = V1Manager::new(&mounts, "boxd").unwrap();
        assert_eq!(m.controllers(), vec!["cpu", "cpuacct", "memory", "pids"]);
        assert_eq!(
            m.dirs("c1"),
            vec![
                PathBuf::from("/cg/cpu/boxd/c1"),
                PathBuf::from("/cg/cpuacct/boxd/c1"),
                PathBuf::from("/cg/memory/boxd/c1"),
                PathBuf::from("/cg/pids/boxd/c1"),
            ]
        );
    }

    #[test]
    fn comounted_controllers_share_one_directory() {
        let mounts = [
            mount("/cg/cpu,cpuacct", &["cpu", "cpuacct"]),
            mount("/cg/memory", &["memory"]),
            mount("/cg/pids", &["pids"]),
        ];
        let m = V1Manager::new(&mounts, "boxd").unwrap();
        assert_eq!(m.controllers(), vec!["cpu", "cpuacct", "memory", "pids"]);
        assert_eq!(m.dirs("c1").len(), 3);
        assert_eq!(m.dirs("c1")[0], PathBuf::from("/cg/cpu,cpuacct/boxd/c1"));
    }

    #[test]
    fn freeze_writes_frozen_and_frozen_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let mounts = [
            mount(&format!("{root}/cpu"), &["cpu"]),
            mount(&format!("{root}/memory"), &["memory"]),
            mount(&format!("{root}/pids"), &["pids"]),
            mount(&format!("{root}/freezer"), &["freezer"]),
        ];
        let m = V1Manager::new(&mounts, "boxd").unwrap();
        assert!(matches!(m.freeze("c1"), Err(CgroupError::NoGroup { .. })));
        assert!(!m.frozen("c1").unwrap());
        m.thaw("c1").unwrap();
        let g = dir.path().join("freezer/boxd/c1");
        fs::create_dir_all(&g).unwrap();
        fs::write(g.join("freezer.state"), "THAWED").unwrap();
        assert!(!m.frozen("c1").unwrap());
        m.freeze("c1").unwrap();
        assert_eq!(
            fs::read_to_string(g.join("freezer.state")).unwrap(),
            "FROZEN"
        );
        assert!(m.frozen("c1").unwrap());
        m.thaw("c1").unwrap();
        assert!(!m.frozen("c1").unwrap());
    }

    #[test]
    fn a_freezer_less_host_cannot_pause() {
        let mounts = [
            mount("/cg/cpu", &["cpu"]),
            mount("/cg/memory", &["memory"]),
            mount("/cg/pids", &["pids"]),
        ];
        let m = V1Manager::new(&mounts, "boxd").unwrap();
        assert!(matches!(
            m.freeze("c1"),
            Err(CgroupError::MissingController {
                controller: "freezer"
            })
        ));
    }

    #[test]
    fn refuses_a_host_without_the_memory_controller() {
        let mounts = [mount("/cg/cpu", &["cpu"]), mount("/cg/pids", &["pids"])];
        assert!(matches!(
            V1Manager::new(&mounts, "boxd"),
            Err(CgroupError::MissingController {
                controller: "memory"
            })
        ));
    }

    #[test]
    fn lists_and_removes_nothing_when_the_parent_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let mounts = [
            mount(&format!("{root}/cpu"), &["cpu"]),
            mount(&format!("{root}/memory"), &["memory"]),
            mount(&format!("{root}/pids"), &["pids"]),
        ];
        let m = V1Manager::new(&mounts, "boxd").unwrap();
        assert_eq!(m.list().unwrap(), Vec::<String>::new());
        assert!(!m.exists("c1"));
        m.remove("c1").unwrap();
        // A group half-created before a crash (only in cpu) is still listed.
        fs::create_dir_all(dir.path().join("cpu/boxd/half")).unwrap();
        assert_eq!(m.list().unwrap(), vec!["half"]);
        assert!(m.exists("half"));
    }
}
