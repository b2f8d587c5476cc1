//! Start-up reconcile: make the store and the kernel agree again after the daemon was
//! away (a restart, `kill -9`, or a host reboot).
//!
//! For each container the store knows:
//! - an exit record in its state dir: the exit happened while the daemon was down;
//!   record it (real exit code and OOM status), then free cgroup and state dir;
//! - a live shim: re-attach (a monitor waits for the exit again); a `created` row with a
//!   live shim is a start whose last step did not land, so it becomes `running`;
//! - neither, while the row says `running`: the shim was killed or the host rebooted;
//!   the container is `dead`, saying why.
//!
//! Then whatever no record owns is removed: cgroups, state dirs (killing a stray shim's
//! container first), container dirs and image dirs.

use std::collections::HashSet;
use std::path::Path;

use crate::runtime::spec::ContainerState;
use boxd_shim::protocol::{files, ExitRecord};

use super::{remove_dir_if_exists, shim, Runtime, RuntimeError};

/// File in the state dir holding the boot id the daemon last ran under.
pub(crate) const BOOT_ID_FILE: &str = "boot_id";

fn current_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn list_dir(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl Runtime {
    /// A live container's pause is what its freezer says: a crash between a freeze (or
    /// thaw) and its row leaves them apart, and the freezer is the kernel's truth.
    async fn reconcile_pause(
        &self,
        c: &crate::runtime::spec::Container,
    ) -> Result<(), RuntimeError> {
        let frozen = match self.inner.cgroups.frozen(&c.id) {
            Ok(frozen) => frozen,
            Err(e) => {
                tracing::warn!(id = c.id, error = %crate::error_chain(&e), "cannot read whether a container is paused");
                return Ok(());
            }
        };
        if frozen != c.paused {
            self.inner.store.set_paused(&c.id, frozen).await?;
            self.note(format!(
                "container {} is {} (as its cgroup freezer says)",
                c.name,
                if frozen { "paused" } else { "not paused" }
            ));
        }
        Ok(())
    }

    /// Returns the ids of the containers whose shim is alive (their actors watch them).
    pub(super) async fn reconcile(&self) -> Result<HashSet<String>, RuntimeError> {
        let inner = &self.inner;
        if let Err(e) = inner.images.clean_tmp() {
            tracing::warn!(error = %crate::error_chain(&e), "failed to clean unfinished image imports");
        }
        let rebooted = self.host_rebooted();
        let records = inner.store.list_containers(true).await?;
        let known: HashSet<String> = records.iter().map(|r| r.container.id.clone()).collect();
        let mut live: HashSet<String> = HashSet::new();

        for rec in records {
            let c = rec.container;
            let dir = inner.paths.state_dir(&c.id);
            // A create that crashed between its row and its dirs is finished here.
            let cdir = inner.paths.container_dir(&c.id);
            if !cdir.is_dir() {
                for sub in ["upper", "work"] {
                    std::fs::create_dir_all(cdir.join(sub))
                        .map_err(RuntimeError::io("create", &cdir))?;
                }
                self.note(format!(
                    "finished the interrupted create of container {}",
                    c.name
                ));
            }
            match c.state {
                ContainerState::Running | ContainerState::Created => {
                    if let Some(exit) = shim::read_exit_record(&dir) {
                        tracing::info!(
                            id = c.id,
                            exit_code = exit.exit_code,
                            "recording an exit that happened while boxd was down"
                        );
                        self.note(format!("recorded the exit (code {}) of container {} that ended while boxd was down", exit.exit_code, c.name));
                        self.record_exit(&c.id, Some(exit)).await?;
                        self.after_exit(&c.id).await;
                    } else if inner.launcher.shim_alive(&dir) {
                        if c.state == ContainerState::Created {
                            let (Some(pid), Some(shim_pid)) = (
                                read_pid(&dir, files::CONTAINER_PID),
                                read_pid(&dir, files::SHIM_PID),
                            ) else {
                                tracing::warn!(
                                    id = c.id,
                                    "live shim without pid files; leaving it to its exit"
                                );
                                continue;
                            };
                            inner
                                .store
                                .set_running(&c.id, pid, shim_pid, chrono::Utc::now())
                                .await?;
                            tracing::info!(
                                id = c.id,
                                pid,
                                "adopted a container whose start was interrupted"
                            );
                            self.note(format!(
                                "finished the interrupted start of container {}",
                                c.name
                            ));
                        } else {
                            tracing::info!(id = c.id, "re-attached to a running container");
                            self.note(format!("re-attached to running container {}", c.name));
                        }
                        live.insert(c.id.clone());
                        self.reconcile_pause(&c).await?;
                    } else if c.state == ContainerState::Running && rebooted {
                        // The state dir is on tmpfs: after a reboot nothing is left of the
                        // run. It ended with the host; its code is unknown (Docker: 255).
                        tracing::warn!(
                            id = c.id,
                            "container was running when the host went down; marking it exited"
                        );
                        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
                        let lost = ExitRecord {
                            pid: c.pid.map_or(0, |p| p as i32),
                            exit_code: 255,
                            signal: None,
                            oom_kills: Some(0),
                            started_at_ms: now,
                            finished_at_ms: now,
                        };
                        self.note(format!(
                            "container {} was running when the host went down: exited (255)",
                            c.name
                        ));
                        self.record_exit(&c.id, Some(lost)).await?;
                        inner
                            .store
                            .set_error(&c.id, Some("the host restarted while it ran"))
                            .await?;
                        self.after_exit(&c.id).await;
                    } else if c.state == ContainerState::Running {
                        tracing::warn!(
                            id = c.id,
                            "container's shim is gone and left no exit record; marking it dead"
                        );
                        self.note(format!(
                            "container {} lost its shim and left no exit record: dead",
                            c.name
                        ));
                        self.record_exit(&c.id, None).await?;
                        self.after_exit(&c.id).await;
                    } else {
                        self.free_run_resources(&c.id).await;
                    }
                }
                ContainerState::Exited | ContainerState::Dead => {
                    self.free_run_resources(&c.id).await
                }
            }
        }

        match inner.cgroups.list() {
            Ok(groups) => {
                for g in groups.into_iter().filter(|g| !live.contains(g)) {
                    tracing::info!(group = g, "removing a cgroup no running container owns");
                    self.note(format!(
                        "removed cgroup {g}, which no running container owns"
                    ));
                    self.remove_cgroup(&g, "as a stray").await;
                }
            }
            Err(e) => tracing::warn!(error = %crate::error_chain(&e), "failed to list cgroups"),
        }

        for name in list_dir(&inner.paths.state)
            .into_iter()
            .filter(|n| !known.contains(n))
        {
            let dir = inner.paths.state.join(&name);
            if shim::shim_alive(&dir) {
                tracing::warn!(dir = %dir.display(), "killing a container no record owns");
                self.note(format!("killed container {name}, which no record owns"));
                let _ = shim::kill(&dir, libc::SIGKILL, shim::CONTROL_DEADLINE).await;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), shim::wait(&dir)).await;
            }
            if let Err(e) = remove_dir_if_exists(&dir) {
                tracing::warn!(error = %crate::error_chain(&e), "failed to remove stray state dir");
            }
        }
        for name in list_dir(&inner.paths.containers)
            .into_iter()
            .filter(|n| !known.contains(n))
        {
            let dir = inner.paths.containers.join(&name);
            tracing::info!(dir = %dir.display(), "removing a container dir no record owns");
            self.note(format!(
                "removed container dir {}, which no record owns",
                dir.display()
            ));
            if let Err(e) = remove_dir_if_exists(&dir) {
                tracing::warn!(error = %crate::error_chain(&e), "failed to remove stray container dir");
            }
        }
        match inner.images.list_ids() {
            Ok(ids) => {
                for id in ids {
                    if inner.store.image(&id).await?.is_none() {
                        tracing::info!(id, "removing an image dir no record owns");
                        self.note(format!("removed image dir {id}, which no record owns"));
                        if let Err(e) = inner.images.remove(&id).await {
                            tracing::warn!(id, error = %crate::error_chain(&e), "failed to remove stray image");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %crate::error_chain(&e), "failed to list image dirs"),
        }
        self.reconcile_layers().await?;
        self.reconcile_volumes().await?;
        self.record_boot_id();
        Ok(live)
    }

    pub(super) fn note(&self, what: String) {
        self.inner
            .reconciled
            .lock()
            .expect("reconciled poisoned")
            .push(what);
    }

    /// Whether the host booted since the last daemon ran: the state dir (tmpfs) keeps the
    /// kernel's boot id, which changes at every boot; a missing file means a fresh tmpfs.
    fn host_rebooted(&self) -> bool {
        let saved = std::fs::read_to_string(self.inner.info.state_dir.join(BOOT_ID_FILE)).ok();
        saved.is_none_or(|s| s.trim() != current_boot_id().trim())
    }

    fn record_boot_id(&self) {
        let path = self.inner.info.state_dir.join(BOOT_ID_FILE);
        if let Err(e) = std::fs::write(&path, current_boot_id()) {
            tracing::warn!(path = %path.display(), error = %e, "failed to record the boot id");
        }
    }

    /// Removes a not-running container's cgroup and state dir, if any are left.
    async fn free_run_resources(&self, id: &str) {
        self.remove_cgroup(id, "left over").await;
        self.remove_dir_quietly(self.inner.paths.state_dir(id))
            .await;
    }
}
