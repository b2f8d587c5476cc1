//! What boxd observed of containers' runs: one exit record per run (`exits`, the
//! newest few per container), the memory-event state of the current run
//! (`container_memory`), and the bounded retention of the event log.
//!
//! `container_memory.oom_kills` / `pressure_events` count what was already published
//! as events, so a watcher re-armed after a daemon restart publishes only the rest.

use std::collections::{BTreeMap, HashMap};

use boxd_types::ExitInfo;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{query_err, Store, StoreError, TimedExt};

/// Exit records kept per container by default: enough to see a crash loop's pattern,
/// bounded so that a container restarting forever does not grow the database.
pub const DEFAULT_EXITS_MAX_PER_CONTAINER: u64 = 100;

/// The memory-event state of a container's current run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryRun {
    /// The warning threshold asked for at create (`None`: the default).
    pub warning_percent: Option<u8>,
    /// The group's `oom_kill` counter when the run started.
    pub oom_baseline: u64,
    /// OOM kills of this run already published as `oom` events.
    pub oom_kills: u64,
    /// `memory_pressure` events already published.
    pub pressure_events: u64,
    /// The kernel's counters as last read.
    pub counters: BTreeMap<String, u64>,
}

#[derive(FromRow)]
struct MemoryRow {
    container_id: String,
    warning_percent: Option<i64>,
    oom_baseline: i64,
    oom_kills: i64,
    pressure_events: i64,
    counters: String,
}

impl MemoryRow {
    fn into_run(self) -> MemoryRun {
        MemoryRun {
            warning_percent: self.warning_percent.and_then(|p| u8::try_from(p).ok()),
            oom_baseline: u64::try_from(self.oom_baseline).unwrap_or(0),
            oom_kills: u64::try_from(self.oom_kills).unwrap_or(0),
            pressure_events: u64::try_from(self.pressure_events).unwrap_or(0),
            // Written by this module only; a corrupt value is shown empty.
            counters: serde_json::from_str(&self.counters).unwrap_or_default(),
        }
    }
}

#[derive(FromRow)]
struct ExitRow {
    seq: i64,
    container_id: String,
    record: String,
}

impl ExitRow {
    fn into_info(self) -> Result<ExitInfo, StoreError> {
        let mut info: ExitInfo =
            serde_json::from_str(&self.record).map_err(|source| StoreError::Corrupt {
                what: "exit record",
                id: self.container_id.clone(),
                source,
            })?;
        info.seq = self.seq;
        info.container_id = self.container_id;
        Ok(info)
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Remembers the warning threshold asked for at create.
    pub async fn set_memory_warning(
        &self,
        id: &str,
        percent: Option<u8>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO container_memory (container_id, warning_percent) VALUES (?1, ?2) \
             ON CONFLICT(container_id) DO UPDATE SET warning_percent = ?2",
        )
        .bind(id)
        .bind(percent.map(i64::from))
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("save memory warning"))?;
        Ok(())
    }

    /// The memory-event state of the container's current run (defaults when none).
    pub async fn memory_run(&self, id: &str) -> Result<MemoryRun, StoreError> {
        let row: Option<MemoryRow> = sqlx::query_as(
            "SELECT container_id, warning_percent, oom_baseline, oom_kills, pressure_events, \
             counters FROM container_memory WHERE container_id = ?",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(query_err("read memory state"))?;
        Ok(row.map(MemoryRow::into_run).unwrap_or_default())
    }

    /// Every container's memory record, by container id, in one query (lists).
    pub async fn memory_runs(&self) -> Result<HashMap<String, MemoryRun>, StoreError> {
        let rows: Vec<MemoryRow> = sqlx::query_as(
            "SELECT container_id, warning_percent, oom_baseline, oom_kills, pressure_events, \
             counters FROM container_memory",
        )
        .fetch_all(self.pool())
        .await
        .map_err(query_err("read memory states"))?;
        Ok(rows
            .into_iter()
            .map(|r| (r.container_id.clone(), r.into_run()))
            .collect())
    }

    /// Every container's newest exit record, by container id, in one query (lists).
    pub async fn last_exits(&self) -> Result<HashMap<String, ExitInfo>, StoreError> {
        let rows: Vec<ExitRow> = sqlx::query_as(
            "SELECT seq, container_id, record FROM exits \
             WHERE seq IN (SELECT max(seq) FROM exits GROUP BY container_id)",
        )
        .fetch_all(self.pool())
        .await
        .map_err(query_err("read last exit records"))?;
        // One corrupt record must not fail a whole list: it is left out (inspect of
        // that container reports it).
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = r.container_id.clone();
                match r.into_info() {
                    Ok(info) => Some((id, info)),
                    Err(e) => {
                        tracing::warn!(id, error = %crate::error_chain(&e), "unreadable exit record");
                        None
                    }
                }
            })
            .collect())
    }

    /// Starts a new run whose group counted `oom_baseline` kills before it: nothing
    /// reported yet; the threshold is kept.
    pub async fn reset_memory_run(&self, id: &str, oom_baseline: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO container_memory (container_id, oom_baseline) VALUES (?1, ?2) \
             ON CONFLICT(container_id) DO UPDATE SET oom_baseline = ?2, oom_kills = 0, \
             pressure_events = 0, counters = '{}'",
        )
        .bind(id)
        .bind(to_i64(oom_baseline))
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("reset memory state"))?;
        Ok(())
    }

    /// Saves what has been reported in the current run and the latest counters.
    pub async fn save_memory_run(&self, id: &str, run: &MemoryRun) -> Result<(), StoreError> {
        let counters = serde_json::to_string(&run.counters).expect("counters serialise");
        sqlx::query(
            "UPDATE container_memory SET oom_kills = ?2, pressure_events = ?3, counters = ?4 \
             WHERE container_id = ?1",
        )
        .bind(id)
        .bind(to_i64(run.oom_kills))
        .bind(to_i64(run.pressure_events))
        .bind(counters)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("save memory state"))?;
        Ok(())
    }

    /// Appends an exit record and drops the container's records beyond the newest
    /// `exits_max`, in one transaction (a crash never leaves more behind); returns its
    /// `seq`.
    pub async fn insert_exit(&self, info: &ExitInfo) -> Result<i64, StoreError> {
        let record = serde_json::to_string(info).expect("exit record serialises");
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query_err("begin exit record"))?;
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO exits (container_id, finished_at, record) VALUES (?, ?, ?) RETURNING seq",
        )
        .bind(&info.container_id)
        .bind(info.finished_at)
        .bind(record)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_err("insert exit record"))?;
        // The newest `exits_max` stay: everything at or below the seq of the next one.
        sqlx::query(
            "DELETE FROM exits WHERE container_id = ?1 AND seq <= \
             (SELECT seq FROM exits WHERE container_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(&info.container_id)
        .bind(to_i64(self.exits_max))
        .execute(&mut *tx)
        .await
        .map_err(query_err("prune exit records"))?;
        tx.commit()
            .timed(&self.commits)
            .await
            .map_err(query_err("commit exit record"))?;
        Ok(seq)
    }

    /// Every exit record of a container, oldest first.
    pub async fn exits(&self, id: &str) -> Result<Vec<ExitInfo>, StoreError> {
        let rows: Vec<ExitRow> = sqlx::query_as(
            "SELECT seq, container_id, record FROM exits WHERE container_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("read exit records"))?;
        rows.into_iter().map(ExitRow::into_info).collect()
    }

    /// The newest exit record of a container.
    pub async fn last_exit(&self, id: &str) -> Result<Option<ExitInfo>, StoreError> {
        let row: Option<ExitRow> = sqlx::query_as(
            "SELECT seq, container_id, record FROM exits WHERE container_id = ? \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(query_err("read last exit record"))?;
        row.map(ExitRow::into_info).transpose()
    }

    /// Drops events beyond the newest `max_events`, and those older than `oldest`.
    /// Returns how many were dropped. `seq` stays monotonic (AUTOINCREMENT never reuses).
    pub async fn prune_events(
        &self,
        max_events: u64,
        oldest: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM events WHERE time < ?1 \
             OR seq <= (SELECT max(seq) FROM events) - ?2",
        )
        .bind(oldest)
        .bind(to_i64(max_events))
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("prune events"))?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventFilter, MIGRATOR};
    use sqlx::SqlitePool;

    /// Rows by plain SQL, so these tests do not depend on the container model.
    async fn add_container(store: &Store, id: &str) {
        sqlx::query(
            "INSERT OR IGNORE INTO images (id, size, created_at) VALUES ('sha256:aa', 1, ?)",
        )
        .bind(Utc::now())
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO containers (id, name, image, image_id, state, config, resources, created_at) \
             VALUES (?1, ?1, 'busybox', 'sha256:aa', 'created', '{}', '{}', ?2)",
        )
        .bind(id)
        .bind(Utc::now())
        .execute(store.pool())
        .await
        .unwrap();
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn memory_state_resets_per_run_and_keeps_the_threshold(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        add_container(&store, "c1").await;
        assert_eq!(store.memory_run("c1").await.unwrap(), MemoryRun::default());
        store.set_memory_warning("c1", Some(75)).await.unwrap();
        store.reset_memory_run("c1", 1).await.unwrap();
        let mut run = store.memory_run("c1").await.unwrap();
        assert_eq!((run.warning_percent, run.oom_baseline), (Some(75), 1));
        run.oom_kills = 2;
        run.pressure_events = 1;
        run.counters.insert("oom_kill".into(), 2);
        store.save_memory_run("c1", &run).await.unwrap();
        assert_eq!(store.memory_run("c1").await.unwrap(), run);
        store.reset_memory_run("c1", 0).await.unwrap();
        let fresh = store.memory_run("c1").await.unwrap();
        assert_eq!(
            (fresh.warning_percent, fresh.oom_kills, fresh.counters.len()),
            (Some(75), 0, 0)
        );
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn exits_are_listed_per_container_and_go_with_it(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        add_container(&store, "c1").await;
        add_container(&store, "c2").await;
        let exit = |id: &str, code| ExitInfo {
            container_id: id.into(),
            finished_at: Utc::now(),
            exit_code: Some(code),
            last_log: vec!["bye".into()],
            ..Default::default()
        };
        let s1 = store.insert_exit(&exit("c1", 1)).await.unwrap();
        store.insert_exit(&exit("c2", 5)).await.unwrap();
        let s2 = store.insert_exit(&exit("c1", 0)).await.unwrap();
        let all = store.exits("c1").await.unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [s1, s2]);
        assert_eq!(all[0].exit_code, Some(1));
        assert_eq!(all[0].last_log, ["bye"]);
        let last = store.last_exit("c1").await.unwrap().unwrap();
        assert_eq!((last.seq, last.exit_code), (s2, Some(0)));
        store.delete_container("c1").await.unwrap();
        assert!(store.exits("c1").await.unwrap().is_empty());
        assert_eq!(store.exits("c2").await.unwrap().len(), 1);
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn exits_keep_the_newest_per_container(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap().with_exits_max(3);
        add_container(&store, "loop").await;
        add_container(&store, "calm").await;
        let exit = |id: &str, code| ExitInfo {
            container_id: id.into(),
            finished_at: Utc::now(),
            exit_code: Some(code),
            ..Default::default()
        };
        store.insert_exit(&exit("calm", 0)).await.unwrap();
        let mut seqs = Vec::new();
        for code in 0..10 {
            seqs.push(store.insert_exit(&exit("loop", code)).await.unwrap());
            let kept = store.exits("loop").await.unwrap();
            let want = &seqs[seqs.len().saturating_sub(3)..];
            assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
        }
        let kept = store.exits("loop").await.unwrap();
        assert_eq!(
            kept.iter().map(|e| e.exit_code).collect::<Vec<_>>(),
            [Some(7), Some(8), Some(9)]
        );
        // Another container's records are not touched.
        assert_eq!(store.exits("calm").await.unwrap().len(), 1);
        // The default keeps 100.
        let store = store.with_exits_max(DEFAULT_EXITS_MAX_PER_CONTAINER);
        for code in 0..105 {
            store.insert_exit(&exit("calm", code)).await.unwrap();
        }
        let kept = store.exits("calm").await.unwrap();
        assert_eq!(kept.len(), 100);
        assert_eq!(kept[0].exit_code, Some(5));
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn retention_keeps_the_newest_and_the_recent(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        for _ in 0..5 {
            store
                .append_event("container", "start", "c", BTreeMap::new())
                .await
                .unwrap();
        }
        let last = store.last_event_seq().await.unwrap();
        let long_ago = Utc::now() - chrono::Duration::days(7);
        assert_eq!(store.prune_events(3, long_ago).await.unwrap(), 2);
        let left = store.events(&EventFilter::default()).await.unwrap();
        assert_eq!(
            left.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [last - 2, last - 1, last]
        );
        // Everything is older than a cut-off in the future.
        let future = Utc::now() + chrono::Duration::seconds(5);
        assert_eq!(store.prune_events(100, future).await.unwrap(), 3);
        // seq never goes back after a prune.
        let next = store
            .append_event("container", "start", "c", BTreeMap::new())
            .await
            .unwrap();
        assert!(next.seq > last);
    }
}
