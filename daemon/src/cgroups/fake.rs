//! A recording, in-memory [`CgroupManager`] for the runtime's unit tests.
//!
//! It records every call in order (so tests can assert, say, that `remove` follows the
//! shim's exit), keeps the set of groups, and lets tests script OOM-kill counts, pids and
//! failures. With [`FakeCgroups::in_dir`] it also makes real `cgroup.procs` and
//! `memory.events` files, so code that reads the returned paths works unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::runtime::spec::Resources;

use super::{check_id, CgroupError, CgroupManager, CgroupVersion, ContainerCgroup};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    /// `create(id, resources)`.
    Create { id: String, resources: Resources },
    /// `remove(id)`.
    Remove { id: String },
    /// `remove_parent()`.
    RemoveParent,
    /// `freeze(id)`.
    Freeze { id: String },
    /// `thaw(id)`.
    Thaw { id: String },
    /// `update(id, resources)`.
    Update { id: String, resources: Resources },
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<FakeCall>,
    groups: BTreeMap<String, Resources>,
    oom_kills: BTreeMap<String, u64>,
    pids: BTreeMap<String, Vec<i32>>,
    fail_create: BTreeSet<String>,
    fail_remove: BTreeSet<String>,
    frozen: BTreeSet<String>,
    fail_freeze: BTreeSet<String>,
    busy_update: BTreeSet<String>,
    warnings: Vec<String>,
}

/// The recording fake.
#[derive(Debug)]
pub struct FakeCgroups {
    version: CgroupVersion,
    parent: String,
    root: PathBuf,
    /// Whether to create real files under `root`.
    real_files: bool,
    state: Mutex<State>,
}

impl FakeCgroups {
    /// A fake with no files on disk; paths point under `/nonexistent/cgroup`.
    pub fn new(version: CgroupVersion) -> Self {
        Self {
            version,
            parent: "boxd".to_owned(),
            root: PathBuf::from("/nonexistent/cgroup"),
            real_files: false,
            state: Mutex::default(),
        }
    }

    /// A fake that creates `<root>/<parent>/<id>/cgroup.procs` and `memory.events`
    /// (`oom_kill N`, kept in step with [`FakeCgroups::set_oom_kill_count`]).
    pub fn in_dir(version: CgroupVersion, root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            real_files: true,
            ..Self::new(version)
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(&self.parent).join(id)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.state().calls.clone()
    }

    /// The groups that exist, with the resources they were created with.
    pub fn groups(&self) -> BTreeMap<String, Resources> {
        self.state().groups.clone()
    }

    /// Sets the OOM-kill counter of `id`.
    pub fn set_oom_kill_count(&self, id: &str, count: u64) {
        self.state().oom_kills.insert(id.to_owned(), count);
        if self.real_files && self.dir(id).exists() {
            // Best effort: the file only mirrors the in-memory count.
            let _ = fs::write(
                self.dir(id).join("memory.events"),
                format!("oom 0\noom_kill {count}\n"),
            );
        }
    }

    /// Sets the pids `pids(id)` reports.
    pub fn set_pids(&self, id: &str, pids: Vec<i32>) {
        self.state().pids.insert(id.to_owned(), pids);
    }

    /// Makes every later `create(id, …)` fail.
    pub fn fail_create(&self, id: &str) {
        self.state().fail_create.insert(id.to_owned());
    }

    /// Makes every later `remove(id)` fail.
    pub fn fail_remove(&self, id: &str) {
        self.state().fail_remove.insert(id.to_owned());
    }

    /// Makes every later `freeze(id)` time out (the group stays thawed).
    pub fn fail_freeze(&self, id: &str) {
        self.state().fail_freeze.insert(id.to_owned());
    }

    /// Makes every later `update(id, …)` fail as the kernel does when a memory limit is
    /// below what the group uses (EBUSY).
    pub fn busy_update(&self, id: &str) {
        self.state().busy_update.insert(id.to_owned());
    }

    /// Warnings every later `create` returns.
    pub fn set_warnings(&self, warnings: Vec<String>) {
        self.state().warnings = warnings;
    }

    fn injected(op: &str) -> io::Error {
        io::Error::other(format!("injected {op} failure"))
    }
}

impl CgroupManager for FakeCgroups {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn controllers(&self) -> Vec<String> {
        ["cpu", "memory", "pids"].map(String::from).to_vec()
    }

    fn parent(&self) -> &str {
        &self.parent
    }

    fn create(&self, id: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError> {
        check_id(id)?;
        super::validate(resources)?;
        let mut st = self.state();
        st.calls.push(FakeCall::Create {
            id: id.to_owned(),
            resources: resources.clone(),
        });
        let dir = self.dir(id);
        if st.fail_create.contains(id) {
            return Err(CgroupError::CreateCgroup {
                path: dir,
                source: Self::injected("create"),
            });
        }
        let oom_kills = *st.oom_kills.entry(id.to_owned()).or_default();
        if self.real_files {
            let mk = |r: io::Result<()>| {
                r.map_err(|source| CgroupError::CreateCgroup {
                    path: dir.clone(),
                    source,
                })
            };
            mk(fs::create_dir_all(&dir))?;
            mk(fs::write(dir.join("cgroup.procs"), ""))?;
            mk(fs::write(
                dir.join("memory.events"),
                format!("oom 0\noom_kill {oom_kills}\n"),
            ))?;
        }
        st.groups.insert(id.to_owned(), resources.clone());
        Ok(ContainerCgroup {
            join_files: vec![dir.join("cgroup.procs")],
            oom_counter: Some(boxd_shim::protocol::OomCounter {
                path: dir.join("memory.events"),
                key: "oom_kill".to_owned(),
            }),
            warnings: st.warnings.clone(),
        })
    }

    fn remove(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let mut st = self.state();
        st.calls.push(FakeCall::Remove { id: id.to_owned() });
        if st.fail_remove.contains(id) {
            return Err(CgroupError::RemoveCgroup {
                path: self.dir(id),
                source: Self::injected("remove"),
            });
        }
        st.groups.remove(id);
        st.pids.remove(id);
        st.frozen.remove(id);
        if self.real_files {
            let dir = self.dir(id);
            match fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::RemoveCgroup { path: dir, source }),
            }
        }
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        self.state().groups.contains_key(id)
    }

    fn list(&self) -> Result<Vec<String>, CgroupError> {
        Ok(self.state().groups.keys().cloned().collect())
    }

    fn oom_kill_count(&self, id: &str) -> Result<u64, CgroupError> {
        let st = self.state();
        if !st.groups.contains_key(id) {
            return Err(CgroupError::ReadOomCount {
                id: id.to_owned(),
                source: super::FileError::Read {
                    path: self.dir(id).join("memory.events"),
                    source: io::Error::from(io::ErrorKind::NotFound),
                },
            });
        }
        Ok(st.oom_kills.get(id).copied().unwrap_or(0))
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError> {
        Ok(self.state().pids.get(id).cloned().unwrap_or_default())
    }

    fn freeze(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let mut st = self.state();
        st.calls.push(FakeCall::Freeze { id: id.to_owned() });
        if !st.groups.contains_key(id) {
            return Err(CgroupError::NoGroup { path: self.dir(id) });
        }
        if st.fail_freeze.contains(id) {
            return Err(CgroupError::FreezeTimeout {
                path: self.dir(id),
                waited: std::time::Duration::ZERO,
            });
        }
        st.frozen.insert(id.to_owned());
        Ok(())
    }

    fn thaw(&self, id: &str) -> Result<(), CgroupError> {
        check_id(id)?;
        let mut st = self.state();
        st.calls.push(FakeCall::Thaw { id: id.to_owned() });
        st.frozen.remove(id);
        Ok(())
    }

    fn frozen(&self, id: &str) -> Result<bool, CgroupError> {
        Ok(self.state().frozen.contains(id))
    }

    fn update(&self, id: &str, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        check_id(id)?;
        super::validate(resources)?;
        let mut st = self.state();
        st.calls.push(FakeCall::Update {
            id: id.to_owned(),
            resources: resources.clone(),
        });
        if !st.groups.contains_key(id) {
            return Err(CgroupError::NoGroup { path: self.dir(id) });
        }
        if st.busy_update.contains(id) {
            return Err(CgroupError::SetLimit {
                path: self.dir(id),
                file: "memory.limit_in_bytes",
                source: Box::new(io::Error::from_raw_os_error(libc::EBUSY)),
            });
        }
        st.groups.insert(id.to_owned(), resources.clone());
        Ok(st.warnings.clone())
    }

    fn remove_parent(&self) -> Result<(), CgroupError> {
        let mut st = self.state();
        st.calls.push(FakeCall::RemoveParent);
        if !st.groups.is_empty() {
            return Err(CgroupError::ParentNotEmpty {
                path: self.root.join(&self.parent),
                children: st.groups.keys().cloned().collect(),
            });
        }
        Ok(())
    }
}

/// A fake shared with the test that handed it to the runtime, so the test can script
/// failures and read the recorded calls afterwards.
impl CgroupManager for std::sync::Arc<FakeCgroups> {
    fn version(&self) -> CgroupVersion {
        self.as_ref().version()
    }
    fn controllers(&self) -> Vec<String> {
        self.as_ref().controllers()
    }
    fn parent(&self) -> &str {
        self.as_ref().parent()
    }
    fn create(&self, id: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError> {
        self.as_ref().create(id, resources)
    }
    fn remove(&self, id: &str) -> Result<(), CgroupError> {
        self.as_ref().remove(id)
    }
    fn exists(&self, id: &str) -> bool {
        self.as_ref().exists(id)
    }
    fn list(&self) -> Result<Vec<String>, CgroupError> {
        self.as_ref().list()
    }
    fn oom_kill_count(&self, id: &str) -> Result<u64, CgroupError> {
        self.as_ref().oom_kill_count(id)
    }
    fn pids(&self, id: &str) -> Result<Vec<i32>, CgroupError> {
        self.as_ref().pids(id)
    }
    fn remove_parent(&self) -> Result<(), CgroupError> {
        self.as_ref().remove_parent()
    }
    fn freeze(&self, id: &str) -> Result<(), CgroupError> {
        self.as_ref().freeze(id)
    }
    fn thaw(&self, id: &str) -> Result<(), CgroupError> {
        self.as_ref().thaw(id)
    }
    fn frozen(&self, id: &str) -> Result<bool, CgroupError> {
        self.as_ref().frozen(id)
    }
    fn update(&self, id: &str, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        self.as_ref().update(id, resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_tracks_groups() {
        let fake = FakeCgroups::new(CgroupVersion::V2);
        let r = Resources {
            pids_max: Some(10),
            ..Resources::default()
        };
        fake.create("a", &r).unwrap();
        fake.set_pids("a", vec![42]);
        assert_eq!(fake.pids("a").unwrap(), vec![42]);
        assert_eq!(fake.list().unwrap(), vec!["a"]);
        assert!(matches!(
            fake.remove_parent(),
            Err(CgroupError::ParentNotEmpty { .. })
        ));
        fake.remove("a").unwrap();
        fake.remove("a").unwrap();
        assert!(!fake.exists("a"));
        assert_eq!(
            fake.calls(),
            vec![
                FakeCall::Create {
                    id: "a".into(),
                    resources: r
                },
                FakeCall::RemoveParent,
                FakeCall::Remove { id: "a".into() },
                FakeCall::Remove { id: "a".into() },
            ]
        );
    }

    #[test]
    fn freezes_thaws_and_updates_existing_groups_only() {
        let fake = FakeCgroups::new(CgroupVersion::V2);
        assert!(matches!(fake.freeze("a"), Err(CgroupError::NoGroup { .. })));
        fake.create("a", &Resources::default()).unwrap();
        fake.freeze("a").unwrap();
        assert!(fake.frozen("a").unwrap());
        fake.thaw("a").unwrap();
        assert!(!fake.frozen("a").unwrap());
        let r = Resources {
            pids_max: Some(5),
            ..Resources::default()
        };
        fake.update("a", &r).unwrap();
        assert_eq!(fake.groups()["a"], r);
        fake.busy_update("a");
        assert!(fake.update("a", &r).unwrap_err().is_busy());
        fake.fail_freeze("a");
        assert!(matches!(
            fake.freeze("a"),
            Err(CgroupError::FreezeTimeout { .. })
        ));
        assert!(!fake.frozen("a").unwrap());
    }

    #[test]
    fn scripted_failures_and_invalid_resources_are_errors() {
        let fake = FakeCgroups::new(CgroupVersion::V1);
        fake.fail_create("bad");
        assert!(matches!(
            fake.create("bad", &Resources::default()),
            Err(CgroupError::CreateCgroup { .. })
        ));
        let invalid = Resources {
            cpu_shares: Some(1),
            ..Resources::default()
        };
        assert!(matches!(
            fake.create("x", &invalid),
            Err(CgroupError::InvalidResources(_))
        ));
        assert!(!fake.exists("bad"));
    }

    #[test]
    fn in_dir_writes_a_readable_oom_counter() {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeCgroups::in_dir(CgroupVersion::V2, dir.path());
        let cg = fake.create("a", &Resources::default()).unwrap();
        let counter = cg.oom_counter.unwrap();
        assert_eq!(
            super::super::files::read_counter(&counter.path, &counter.key).unwrap(),
            0
        );
        fake.set_oom_kill_count("a", 2);
        assert_eq!(
            super::super::files::read_counter(&counter.path, &counter.key).unwrap(),
            2
        );
        assert_eq!(fake.oom_kill_count("a").unwrap(), 2);
        fake.remove("a").unwrap();
        assert!(!cg.join_files[0].exists());
    }
}
