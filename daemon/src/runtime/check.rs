//! `GET /v1/system/check`: lists whatever the store and the kernel disagree on, and what
//! the start-up reconcile did. Read-only: fixing is reconcile's job (at the next start).

use std::collections::HashSet;

use crate::runtime::spec::ContainerState;
use boxd_types::SystemCheck;

use super::{Runtime, RuntimeError};

fn names_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Runtime {
    /// Checks every record against the kernel and the disk.
    pub async fn system_check(&self) -> Result<SystemCheck, RuntimeError> {
        let inner = &self.inner;
        let mut problems = Vec::new();
        let records = inner.store.list_containers(true).await?;
        let known: HashSet<&str> = records.iter().map(|r| r.container.id.as_str()).collect();
        let mut running = HashSet::new();
        for rec in &records {
            let c = &rec.container;
            let dir = inner.paths.state_dir(&c.id);
            if c.state == ContainerState::Running {
                running.insert(c.id.as_str());
                if !inner.launcher.shim_alive(&dir) {
                    problems.push(format!(
                        "container {} is running in the store, but its shim is gone",
                        c.name
                    ));
                }
                if !inner.cgroups.exists(&c.id) {
                    problems.push(format!(
                        "container {} is running, but its cgroup is missing",
                        c.name
                    ));
                }
            }
            if !inner.paths.container_dir(&c.id).is_dir() {
                problems.push(format!("container {} has no container dir", c.name));
            }
            if inner.store.image(&c.image_id).await?.is_none() {
                problems.push(format!(
                    "container {} uses image {}, which is not in the store",
                    c.name, c.image_id
                ));
            }
        }
        match inner.cgroups.list() {
            Ok(groups) => {
                for g in groups.iter().filter(|g| !running.contains(g.as_str())) {
                    problems.push(format!("cgroup {g} belongs to no running container"));
                }
            }
            Err(e) => problems.push(format!("cannot list cgroups: {}", crate::error_chain(&e))),
        }
        for name in names_in(&inner.paths.state) {
            let owner_runs = running.contains(name.as_str());
            if !owner_runs && inner.launcher.shim_alive(&inner.paths.state.join(&name)) {
                problems.push(format!(
                    "a shim runs for {name}, which is not a running container"
                ));
            } else if !known.contains(name.as_str()) {
                problems.push(format!("state dir {name} belongs to no container"));
            }
        }
        for name in names_in(&inner.paths.containers) {
            if !known.contains(name.as_str()) {
                problems.push(format!("container dir {name} belongs to no container"));
            }
        }
        problems.extend(self.volume_problems().await?);
        problems.extend(
            inner
                .anomalies
                .lock()
                .expect("anomalies poisoned")
                .iter()
                .map(|a| format!("a transition found an unexpected state: {a}")),
        );
        let reconciled = inner
            .reconciled
            .lock()
            .expect("reconciled poisoned")
            .clone();
        Ok(SystemCheck {
            ok: problems.is_empty(),
            problems,
            reconciled,
        })
    }
}
