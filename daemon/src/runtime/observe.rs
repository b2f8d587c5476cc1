//! Watching running containers: memory-event watchers (armed before the app runs,
//! re-armed for containers found running at start-up), `oom` and `memory_pressure`
//! events, stats, exit records, and the event log's retention.
//!
//! Order at exit ([`Runtime::observe_exit`], called by `record_exit` before the group
//! is removed): stop the watcher, let its publisher drain (so every `oom` event
//! precedes `die`), read the counters one last time and publish kills nobody reported
//! yet, then store the exit record. What was reported is kept in the store
//! (`container_memory`), so each kill is published exactly once, across restarts too.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

// What was observed of a run is a report, shared with the /v1 wire format.
use boxd_shim::protocol::{ExitRecord, LogRecord};
use boxd_types::{ContainerStats, ExitInfo, Observed as Observations};
use chrono::{TimeZone, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spec::{Container, ContainerSpec, ContainerState};
use super::{Runtime, RuntimeError};
use crate::cgroups::stats::{self, GroupDirs};
use crate::cgroups::watch::{self, MemoryWatch, Notice, Reported, WatchTarget};
use crate::cgroups::CgroupVersion;
use crate::events::EventBus;
use crate::store::{ContainerMetrics, MemoryRun, Store};

/// Docker's default: warn at 90 % of the memory limit.
pub const DEFAULT_MEMORY_WARNING_PERCENT: u8 = 90;
/// How many of the last log lines an exit record keeps.
const EXIT_LOG_LINES: usize = 20;
/// How much of the log's end is read for them.
const EXIT_LOG_BYTES: u64 = 64 * 1024;
/// Event log retention defaults: the newest 100 000 events, at most 7 days old.
pub const DEFAULT_EVENTS_MAX: u64 = 100_000;
/// See [`DEFAULT_EVENTS_MAX`].
pub const DEFAULT_EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// The watchers of running containers.
#[derive(Default)]
pub(crate) struct Observers {
    runs: Mutex<HashMap<String, Observed>>,
}

struct Observed {
    watch: MemoryWatch,
    publisher: JoinHandle<()>,
}

impl Observers {
    fn take(&self, id: &str) -> Option<Observed> {
        self.runs.lock().expect("observers poisoned").remove(id)
    }
    fn has(&self, id: &str) -> bool {
        self.runs
            .lock()
            .expect("observers poisoned")
            .contains_key(id)
    }
    fn put(&self, id: &str, run: Observed) {
        // A replaced watcher is dropped, which aborts it.
        self.runs
            .lock()
            .expect("observers poisoned")
            .insert(id.to_owned(), run);
    }
}

/// Checks `memory_warning_percent` of a create request.
pub(crate) fn check_create(req: &ContainerSpec) -> Result<(), RuntimeError> {
    match req.memory_warning_percent {
        Some(p) if p > 100 => Err(RuntimeError::invalid(
            "memory_warning_percent",
            format!("{p} is not a percentage (0 turns the warning off, 1-100 sets it)"),
        )),
        _ => Ok(()),
    }
}

impl Runtime {
    fn group_dirs(&self, id: &str) -> Result<GroupDirs, RuntimeError> {
        Ok(GroupDirs::locate(
            self.inner.cgroups.version(),
            self.inner.cgroups.parent(),
            id,
        )?)
    }

    /// At create: remembers the warning threshold asked for.
    /// A failure is logged: the container then warns at the default threshold.
    pub(super) async fn save_memory_warning(&self, id: &str, req: &ContainerSpec) {
        if req.memory_warning_percent.is_some() {
            if let Err(e) = self
                .inner
                .store
                .set_memory_warning(id, req.memory_warning_percent)
                .await
            {
                tracing::warn!(id, error = %crate::error_chain(&e), "failed to save the memory warning threshold");
            }
        }
    }

    /// At start, after the group is made and before the app runs: reads the baseline,
    /// starts a new run record and arms the memory watcher. A watcher that cannot be
    /// armed is logged, not fatal: the read at exit still reports every kill.
    pub(super) async fn arm_observers(&self, c: &Container) {
        let id = &c.id;
        let baseline = self
            .group_dirs(id)
            .ok()
            .and_then(|d| watch::read_snapshot(d.version, &d.memory).ok())
            .map_or(0, |s| s.oom_kill());
        if let Err(e) = self.inner.store.reset_memory_run(id, baseline).await {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to reset the memory record");
        }
        self.arm(c, baseline, MemoryRun::default()).await;
    }

    /// For a container found running (reconcile) or adopted: arms its watcher unless
    /// it has one, counting from what the store says was already reported.
    pub(super) async fn ensure_observers(&self, id: &str) {
        if self.inner.observers.has(id) {
            return;
        }
        let Ok(Some(rec)) = self.inner.store.container(id).await else {
            return;
        };
        let run = self.inner.store.memory_run(id).await.unwrap_or_default();
        self.arm(&rec.container, run.oom_baseline, run).await;
    }

    async fn arm(&self, c: &Container, baseline: u64, run: MemoryRun) {
        let id = c.id.clone();
        let dirs = match self.group_dirs(&id) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(id, error = %crate::error_chain(&e), "cannot watch memory events");
                return;
            }
        };
        let percent = self.warning_percent(&id).await;
        let target = WatchTarget {
            version: dirs.version,
            dir: dirs.memory,
            warning_bytes: watch::warning_bytes(c.resources.memory_bytes, percent),
            high_bytes: c.resources.memory_high_bytes,
        };
        let reported = Reported {
            oom_kills: baseline + run.oom_kills,
            pressure: run.pressure_events,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        match watch::arm(target, reported, tx) {
            Ok(watch) => {
                let publisher = tokio::spawn(publish(
                    self.inner.events.clone(),
                    self.inner.store.clone(),
                    id.clone(),
                    c.name.clone(),
                    baseline,
                    rx,
                ));
                self.inner.observers.put(&id, Observed { watch, publisher });
            }
            Err(e) => {
                tracing::warn!(id, error = %crate::error_chain(&e), "failed to arm the memory watcher");
            }
        }
    }

    async fn warning_percent(&self, id: &str) -> u8 {
        self.inner
            .store
            .memory_run(id)
            .await
            .ok()
            .and_then(|r| r.warning_percent)
            .unwrap_or(DEFAULT_MEMORY_WARNING_PERCENT)
    }

    /// At exit, before the group is removed: stops the watcher, publishes kills not yet
    /// reported, and stores the exit record. Returns whether `oom` events were
    /// published for this run (so the caller does not publish another).
    pub(super) async fn observe_exit(&self, c: &Container, exit: Option<&ExitRecord>) -> bool {
        let id = &c.id;
        if let Some(run) = self.inner.observers.take(id) {
            run.watch.stop().await;
            // The watcher is gone, so the channel closes once drained.
            let _ = run.publisher.await;
        }
        let store = &self.inner.store;
        let mut run = store.memory_run(id).await.unwrap_or_default();
        let dirs = self.group_dirs(id).ok();
        let last = dirs
            .as_ref()
            .and_then(|d| watch::read_snapshot(d.version, &d.memory).ok());
        let kernel_kills = last
            .as_ref()
            .map_or(0, |s| s.oom_kill().saturating_sub(run.oom_baseline));
        let shim_kills = exit.and_then(|e| e.oom_kills).unwrap_or(0);
        let total = kernel_kills.max(shim_kills).max(run.oom_kills);
        for k in run.oom_kills + 1..=total {
            publish_oom(&self.inner.events, id, &c.name, k).await;
        }
        run.oom_kills = total;
        if let Some(s) = &last {
            run.counters = s.counters.clone();
        }
        if let Err(e) = store.save_memory_run(id, &run).await {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to save the memory record");
        }

        let group = dirs.as_ref().filter(|d| d.memory.is_dir());
        let memory = group.map(stats::memory);
        let cpu = group.map(stats::cpu);
        let finished_at = exit
            .and_then(|e| Utc.timestamp_millis_opt(e.finished_at_ms as i64).single())
            .unwrap_or_else(Utc::now);
        let started_at = exit
            .and_then(|e| Utc.timestamp_millis_opt(e.started_at_ms as i64).single())
            .or(c.started_at);
        let info = ExitInfo {
            seq: 0,
            container_id: id.clone(),
            started_at,
            finished_at,
            duration_ms: started_at
                .map(|s| (finished_at - s).num_milliseconds().max(0) as u64)
                .unwrap_or(0),
            exit_code: exit.map(|e| e.exit_code),
            signal: exit.and_then(|e| e.signal),
            oom_killed: total > 0,
            oom_kill_count: total,
            memory_pressure_count: run.pressure_events,
            memory_events: run.counters.clone(),
            memory_limit: c
                .resources
                .memory_bytes
                .or_else(|| memory.as_ref().and_then(|m| m.limit)),
            memory_peak: memory.as_ref().and_then(|m| m.peak),
            cpu_user_usec: cpu.as_ref().map(|c| c.user_usec),
            cpu_system_usec: cpu.as_ref().map(|c| c.system_usec),
            last_log: last_log_lines(&self.inner.paths.log_path(id), EXIT_LOG_LINES),
            error: exit.is_none().then(|| {
                "its shim ended without an exit record (killed, or the host rebooted)".to_owned()
            }),
        };
        // A crash after this insert and before the row says exited makes reconcile
        // record the same exit again; one record per run.
        let again = matches!(store.last_exit(id).await, Ok(Some(l))
            if l.finished_at.timestamp_millis() == info.finished_at.timestamp_millis()
                && l.started_at == info.started_at);
        if again {
            return total > 0;
        }
        if let Err(e) = store.insert_exit(&info).await {
            tracing::error!(id, error = %crate::error_chain(&e), "failed to store the exit record");
        }
        total > 0
    }

    /// Fills what was observed into a container's wire view (inspect).
    pub(super) async fn observed_of(&self, id: &str) -> Result<Observations, RuntimeError> {
        let store = &self.inner.store;
        let run = store.memory_run(id).await?;
        Ok(Observations {
            oom_kill_count: run.oom_kills,
            memory_pressure_count: run.pressure_events,
            memory_events: run.counters,
            memory_warning_percent: run
                .warning_percent
                .unwrap_or(DEFAULT_MEMORY_WARNING_PERCENT),
            last_exit: store.last_exit(id).await?,
        })
    }

    /// What was observed of every container, by id, in two store reads (lists must
    /// say what inspect says, without a read per container).
    pub async fn observed_all(
        &self,
    ) -> Result<std::collections::HashMap<String, Observations>, RuntimeError> {
        let store = &self.inner.store;
        let mut runs = store.memory_runs().await?;
        let mut exits = store.last_exits().await?;
        let ids: std::collections::BTreeSet<String> =
            runs.keys().chain(exits.keys()).cloned().collect();
        Ok(ids
            .into_iter()
            .map(|id| {
                let run = runs.remove(&id).unwrap_or_default();
                let o = Observations {
                    oom_kill_count: run.oom_kills,
                    memory_pressure_count: run.pressure_events,
                    memory_events: run.counters,
                    memory_warning_percent: run
                        .warning_percent
                        .unwrap_or(DEFAULT_MEMORY_WARNING_PERCENT),
                    last_exit: exits.remove(&id),
                };
                (id, o)
            })
            .collect())
    }

    /// Host pids of the processes in a container's cgroup (for `top`).
    pub async fn container_pids(&self, reference: &str) -> Result<Vec<i32>, RuntimeError> {
        let id = self.resolve(reference).await?.container.id;
        let rt = self.clone();
        Ok(
            tokio::task::spawn_blocking(move || rt.inner.cgroups.pids(&id))
                .await
                .expect("pids read panicked")?,
        )
    }

    /// `GET /v1/containers/{id}/exits`: one record per run, oldest first.
    pub async fn exits(&self, reference: &str) -> Result<Vec<ExitInfo>, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        Ok(self.inner.store.exits(&c.id).await?)
    }

    /// `GET /v1/containers/{id}/stats`: read now; 409 unless running.
    pub async fn stats(&self, reference: &str) -> Result<ContainerStats, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        if c.state != ContainerState::Running {
            return Err(RuntimeError::NotRunning(c.name));
        }
        self.stats_of(&c).map_err(|e| match e {
            RuntimeError::Stats(stats::StatsError::NoGroup { .. }) => {
                RuntimeError::NotRunning(c.name.clone())
            }
            other => other,
        })
    }

    fn stats_of(&self, c: &Container) -> Result<ContainerStats, RuntimeError> {
        let s = stats::read(&self.group_dirs(&c.id)?)?;
        Ok(ContainerStats {
            id: c.id.clone(),
            name: c.name.clone(),
            read: Utc::now(),
            memory: s.memory,
            cpu: s.cpu,
            pids: s.pids,
            blkio: s.blkio,
            network: match (&c.config.network.mode, c.pid) {
                (crate::network::NetworkMode::Host, _) | (_, None) => Default::default(),
                (_, Some(pid)) => crate::network::stats::read(pid),
            },
        })
    }

    /// `GET /v1/stats`: every running container; one that exits meanwhile is left out.
    pub async fn all_stats(&self) -> Result<Vec<ContainerStats>, RuntimeError> {
        let running = self.containers(false).await?;
        Ok(running
            .iter()
            .filter_map(|c| self.stats_of(c).ok())
            .collect())
    }

    /// What `/metrics` reports: every container's stored counters (one query) and,
    /// for running ones, their cgroup's memory, CPU and processes, read on a blocking
    /// thread (one for the whole scrape) so the async workers never wait on cgroupfs.
    pub async fn metrics_snapshot(&self) -> Result<MetricsSnapshot, RuntimeError> {
        let store = &self.inner.store;
        let containers = store.container_metrics().await?;
        let images = store.count_images().await?;
        let version = self.inner.cgroups.version();
        let parent = self.inner.cgroups.parent().to_owned();
        let running: Vec<String> = containers
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.id.clone())
            .collect();
        let usage = tokio::task::spawn_blocking(move || read_usage(version, &parent, running))
            .await
            .expect("cgroup usage read panicked");
        Ok(MetricsSnapshot {
            containers,
            usage,
            images,
            cgroup_version: version,
        })
    }

    /// Keeps the event log bounded: drops events beyond the newest `max_events` and
    /// older than `max_age`, now and then every hour.
    pub fn spawn_event_retention(&self, max_events: u64, max_age: Duration) -> JoinHandle<()> {
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETENTION_INTERVAL);
            loop {
                tick.tick().await;
                let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
                let oldest = Utc::now()
                    .checked_sub_signed(age)
                    .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
                match store.prune_events(max_events, oldest).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(dropped = n, "pruned old events"),
                    Err(e) => {
                        tracing::warn!(error = %crate::error_chain(&e), "failed to prune events")
                    }
                }
            }
        })
    }
}

/// Everything `/metrics` shows of the engine at one instant.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Every container's stored counters, by name.
    pub containers: Vec<ContainerMetrics>,
    /// Kernel figures of running containers, by id (a container that stopped between
    /// the query and the read has none).
    pub usage: HashMap<String, Usage>,
    /// Number of images.
    pub images: u64,
    /// The host's cgroup hierarchy.
    pub cgroup_version: CgroupVersion,
}

/// A running container's cgroup figures, as `/v1/containers/{id}/stats` reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory.
    pub memory: boxd_types::MemoryStats,
    /// CPU.
    pub cpu: boxd_types::CpuStats,
    /// Processes.
    pub pids: boxd_types::PidsStats,
}

/// Reads the groups of `ids`; blocking (cgroupfs reads). A group that is gone or
/// unreadable is left out: the container stopped meanwhile.
fn read_usage(version: CgroupVersion, parent: &str, ids: Vec<String>) -> HashMap<String, Usage> {
    let dirs = match GroupDirs::locate_all(version, parent, &ids) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot locate cgroups for metrics");
            return HashMap::new();
        }
    };
    ids.into_iter()
        .zip(dirs)
        // cgroups-rs reads a missing file as zero: check the group is there first.
        .filter(|(_, d)| d.memory.is_dir())
        .map(|(id, d)| {
            let usage = Usage {
                memory: stats::memory(&d),
                cpu: stats::cpu(&d),
                pids: stats::pids(&d),
            };
            (id, usage)
        })
        .collect()
}

/// Publishes a watcher's notices as events and keeps the run's record current.
async fn publish(
    events: EventBus,
    store: Store,
    id: String,
    name: String,
    baseline: u64,
    mut rx: mpsc::UnboundedReceiver<Notice>,
) {
    while let Some(notice) = rx.recv().await {
        let mut run = store.memory_run(&id).await.unwrap_or_default();
        // The record is saved before the event goes out, so a client that reacts to
        // the event finds the count in `inspect`.
        let event = match notice {
            Notice::OomKill { total } => {
                let count = total.saturating_sub(baseline);
                if count <= run.oom_kills {
                    continue;
                }
                run.oom_kills = count;
                Some(Notice::OomKill { total: count })
            }
            Notice::Pressure { usage, threshold } => {
                run.pressure_events += 1;
                Some(Notice::Pressure { usage, threshold })
            }
            Notice::Counters(counters) => {
                run.counters = counters;
                None
            }
        };
        if let Err(e) = store.save_memory_run(&id, &run).await {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to save the memory record");
        }
        match event {
            Some(Notice::OomKill { total }) => publish_oom(&events, &id, &name, total).await,
            Some(Notice::Pressure { usage, threshold }) => {
                events
                    .emit(
                        "container",
                        "memory_pressure",
                        &id,
                        &[
                            ("name", name.clone()),
                            ("usage", usage.to_string()),
                            ("threshold", threshold.to_string()),
                            ("count", run.pressure_events.to_string()),
                        ],
                    )
                    .await;
            }
            _ => {}
        }
    }
}

async fn publish_oom(events: &EventBus, id: &str, name: &str, count: u64) {
    events
        .emit(
            "container",
            "oom",
            id,
            &[
                ("name", name.to_owned()),
                ("oom_kill_count", count.to_string()),
            ],
        )
        .await;
}

/// The last `n` lines the container wrote, from the end of its log file.
pub(crate) fn last_log_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(EXIT_LOG_BYTES);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut tail = Vec::new();
    if file.read_to_end(&mut tail).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&tail);
    let mut records = text.lines();
    if start > 0 {
        // The first line is cut.
        records.next();
    }
    let mut output = String::new();
    for rec in records.filter_map(|l| serde_json::from_str::<LogRecord>(l).ok()) {
        output.push_str(&rec.log);
    }
    let lines: Vec<String> = output.lines().map(str::to_owned).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(log: &str) -> String {
        serde_json::to_string(&LogRecord {
            time: "2024-01-01T00:00:00.000000000Z".into(),
            stream: "stdout".into(),
            log: log.into(),
        })
        .unwrap()
    }

    #[test]
    fn last_lines_join_partial_records_and_keep_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&record(&format!("line {i}\n")));
            text.push('\n');
        }
        text.push_str(&record("half "));
        text.push('\n');
        text.push_str(&record("and the rest\n"));
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let lines = last_log_lines(&path, 3);
        assert_eq!(lines, ["line 28", "line 29", "half and the rest"]);
        assert_eq!(last_log_lines(&path, 20).len(), 20);
        assert!(last_log_lines(&dir.path().join("none"), 20).is_empty());
    }

    #[test]
    fn warning_percent_is_checked_at_create() {
        let mut req = ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        };
        assert!(check_create(&req).is_ok());
        req.memory_warning_percent = Some(0);
        assert!(check_create(&req).is_ok());
        req.memory_warning_percent = Some(101);
        assert!(matches!(
            check_create(&req),
            Err(RuntimeError::Invalid {
                field: "memory_warning_percent",
                ..
            })
        ));
    }
}
