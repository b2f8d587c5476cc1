//! Container rows: insert, resolve by id / prefix / name, state transitions, delete.

use std::collections::BTreeMap;

use crate::runtime::spec::{Container, ContainerConfig, ContainerState, Resources, SPEC_VERSION};
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{query_err, Store, StoreError, TimedExt};

/// A container as stored: the wire view plus what only the daemon needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    /// The wire view.
    pub container: Container,
    /// Pid of its shim while running.
    pub shim_pid: Option<i32>,
    /// The user stopped or killed it (restart policies honour that).
    pub stopped_by_user: bool,
}

#[derive(FromRow)]
struct Row {
    id: String,
    name: String,
    image: String,
    image_id: String,
    state: String,
    config: String,
    resources: String,
    pid: Option<i64>,
    shim_pid: Option<i64>,
    exit_code: Option<i64>,
    exit_signal: Option<i64>,
    oom_killed: bool,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    restart_policy: String,
    restart_count: i64,
    stopped_by_user: bool,
    next_restart_at: Option<DateTime<Utc>>,
    spec_version: i64,
    paused: bool,
}

impl Row {
    fn into_record(self) -> Result<ContainerRecord, StoreError> {
        if self.spec_version != SPEC_VERSION {
            // A newer boxd wrote it (a downgrade): refuse rather than misread it.
            return Err(StoreError::SpecVersion {
                id: self.id,
                version: self.spec_version,
            });
        }
        let config: ContainerConfig =
            serde_json::from_str(&self.config).map_err(|source| StoreError::Corrupt {
                what: "config",
                id: self.id.clone(),
                source,
            })?;
        let resources: Resources =
            serde_json::from_str(&self.resources).map_err(|source| StoreError::Corrupt {
                what: "resources",
                id: self.id.clone(),
                source,
            })?;
        // The CHECK constraint keeps `state` to the four names; anything else would be a
        // hand-edited database, which is reported as dead rather than crashing a listing.
        let state = self.state.parse().unwrap_or(ContainerState::Dead);
        Ok(ContainerRecord {
            container: Container {
                id: self.id,
                name: self.name,
                image: self.image,
                image_id: self.image_id,
                state,
                // Only a running container can be paused; the writers keep it so, and a
                // hand-edited row is read that way too.
                paused: self.paused && state == ContainerState::Running,
                pid: self.pid.and_then(|p| u32::try_from(p).ok()),
                exit_code: self.exit_code.and_then(|c| i32::try_from(c).ok()),
                exit_signal: self.exit_signal.and_then(|c| i32::try_from(c).ok()),
                oom_killed: self.oom_killed,
                created_at: self.created_at,
                started_at: self.started_at,
                finished_at: self.finished_at,
                error: self.error,
                config,
                resources,
                // An unknown stored policy (a hand-edited row) restarts nothing.
                restart_policy: self.restart_policy.parse().unwrap_or_default(),
                restart_count: u32::try_from(self.restart_count).unwrap_or(0),
                next_restart_at: self.next_restart_at,
            },
            shim_pid: self.shim_pid.and_then(|p| i32::try_from(p).ok()),
            stopped_by_user: self.stopped_by_user,
        })
    }
}

#[derive(FromRow)]
struct MetricsRow {
    id: String,
    name: String,
    state: String,
    paused: bool,
    restart_count: i64,
    memory_bytes: Option<i64>,
    oom_kills: i64,
    pressure_events: i64,
}

/// A container's counters as stored (see [`Store::container_metrics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMetrics {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Running and frozen.
    pub paused: bool,
    /// Restarts by its restart policy since the user last started it.
    pub restart_count: u64,
    /// The memory limit asked for, if any.
    pub memory_limit: Option<u64>,
    /// OOM kills reported in its current (or last) run.
    pub oom_kills: u64,
    /// `memory_pressure` events reported in its current (or last) run.
    pub pressure_events: u64,
}

const COLUMNS: &str = "id, name, image, image_id, state, config, resources, pid, shim_pid, \
     exit_code, exit_signal, oom_killed, error, created_at, started_at, finished_at, \
     restart_policy, restart_count, stopped_by_user, next_restart_at, spec_version, paused";

/// How an exit is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitUpdate {
    /// Exit code (128+N for signal N).
    pub exit_code: i32,
    /// Ending signal.
    pub signal: Option<i32>,
    /// OOM killer struck.
    pub oom_killed: bool,
    /// When.
    pub finished_at: DateTime<Utc>,
}

/// `'a', 'b'` for an SQL `IN (...)`; the names are the enum's own, never user input.
fn states_in(states: &[ContainerState]) -> String {
    states
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A conditional transition that matched no row found the container in another state.
fn expect_one(
    affected: u64,
    op: &'static str,
    id: &str,
    from: &[ContainerState],
) -> Result<(), StoreError> {
    if affected == 1 {
        return Ok(());
    }
    Err(StoreError::UnexpectedState {
        op,
        id: id.to_owned(),
        expected: from
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("|"),
    })
}

/// Outcome of resolving a user's reference.
#[derive(Debug)]
pub enum Resolved<T> {
    /// Exactly one match.
    One(T),
    /// Nothing matches.
    None,
    /// A prefix matches several.
    Ambiguous,
}

impl Store {
    /// Inserts a new container; `NameInUse` if the name is taken.
    pub async fn insert_container(&self, c: &Container) -> Result<(), StoreError> {
        insert_container_row(self.pool(), c)
            .timed(&self.commits)
            .await
    }

    /// The container with exactly this id.
    pub async fn container(&self, id: &str) -> Result<Option<ContainerRecord>, StoreError> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM containers WHERE id = ?"))
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(query_err("read container"))?;
        row.map(Row::into_record).transpose()
    }

    /// Resolves a full id, a name, or a unique id prefix (in that order, as Docker does).
    pub async fn resolve_container(
        &self,
        reference: &str,
    ) -> Result<Resolved<ContainerRecord>, StoreError> {
        if reference.is_empty() {
            return Ok(Resolved::None);
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1 \
             OR (length(?1) < 64 AND substr(id, 1, length(?1)) = ?1)"
        ))
        .bind(reference)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("resolve container"))?;
        if let Some(pos) = rows.iter().position(|r| r.id == reference) {
            return rows
                .into_iter()
                .nth(pos)
                .expect("index")
                .into_record()
                .map(Resolved::One);
        }
        if let Some(pos) = rows.iter().position(|r| r.name == reference) {
            return rows
                .into_iter()
                .nth(pos)
                .expect("index")
                .into_record()
                .map(Resolved::One);
        }
        match rows.len() {
            0 => Ok(Resolved::None),
            1 => rows
                .into_iter()
                .next()
                .expect("one")
                .into_record()
                .map(Resolved::One),
            _ => Ok(Resolved::Ambiguous),
        }
    }

    /// All containers (or only running ones), newest first.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerRecord>, StoreError> {
        let filter = if all { "" } else { "WHERE state = 'running'" };
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM containers {filter} ORDER BY created_at DESC, id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(query_err("list containers"))?;
        rows.into_iter().map(Row::into_record).collect()
    }

    /// Records a successful start of a container that is `created`, `exited` or `dead`.
    pub async fn set_running(
        &self,
        id: &str,
        pid: i32,
        shim_pid: i32,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const FROM: &[ContainerState] = &[
            ContainerState::Created,
            ContainerState::Exited,
            ContainerState::Dead,
        ];
        let res = sqlx::query(&format!(
            "UPDATE containers SET state = 'running', pid = ?, shim_pid = ?, started_at = ?, \
             finished_at = NULL, exit_code = NULL, exit_signal = NULL, oom_killed = 0, error = NULL, \
             paused = 0 \
             WHERE id = ? AND state IN ({})",
            states_in(FROM)
        ))
        .bind(pid)
        .bind(shim_pid)
        .bind(started_at)
        .bind(id)
        .execute(self.pool())
            .timed(&self.commits)
        .await
        .map_err(query_err("record container start"))?;
        expect_one(res.rows_affected(), "record the start of", id, FROM)
    }

    /// Records the exit of a container that is `running` (or `created`: a start whose
    /// last step a crash interrupted, adopted by the reconcile).
    pub async fn set_exited(&self, id: &str, exit: &ExitUpdate) -> Result<(), StoreError> {
        const FROM: &[ContainerState] = &[ContainerState::Running, ContainerState::Created];
        let res = sqlx::query(&format!(
            "UPDATE containers SET state = 'exited', pid = NULL, shim_pid = NULL, exit_code = ?, \
             exit_signal = ?, oom_killed = ?, finished_at = ?, paused = 0 \
             WHERE id = ? AND state IN ({})",
            states_in(FROM)
        ))
        .bind(exit.exit_code)
        .bind(exit.signal)
        .bind(exit.oom_killed)
        .bind(exit.finished_at)
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("record container exit"))?;
        expect_one(res.rows_affected(), "record the exit of", id, FROM)
    }

    /// Marks a container dead, saying why; `from` are the states its writer expects.
    pub async fn set_dead(
        &self,
        id: &str,
        error: &str,
        from: &[ContainerState],
    ) -> Result<(), StoreError> {
        let res = sqlx::query(&format!(
            "UPDATE containers SET state = 'dead', pid = NULL, shim_pid = NULL, error = ?, \
             finished_at = coalesce(finished_at, ?), paused = 0 WHERE id = ? AND state IN ({})",
            states_in(from)
        ))
        .bind(error)
        .bind(Utc::now())
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("mark container dead"))?;
        expect_one(res.rows_affected(), "mark dead", id, from)
    }

    /// Replaces the stored config (a network connected or disconnected).
    pub async fn set_config(
        &self,
        id: &str,
        config: &crate::runtime::spec::ContainerConfig,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE containers SET config = ? WHERE id = ?")
            .bind(serde_json::to_string(config).expect("config serialises"))
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("record container config"))?;
        Ok(())
    }

    /// Records a pause (`true`) or an unpause of a `running` container.
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<(), StoreError> {
        const FROM: &[ContainerState] = &[ContainerState::Running];
        let res = sqlx::query(&format!(
            "UPDATE containers SET paused = ? WHERE id = ? AND state IN ({})",
            states_in(FROM)
        ))
        .bind(paused)
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("record container pause"))?;
        expect_one(
            res.rows_affected(),
            if paused {
                "record the pause of"
            } else {
                "record the unpause of"
            },
            id,
            FROM,
        )
    }

    /// Renames a container; `NameInUse` if another container has the name.
    pub async fn rename_container(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let res = sqlx::query("UPDATE containers SET name = ? WHERE id = ?")
            .bind(name)
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await;
        match res {
            Ok(r) if r.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(StoreError::UnexpectedState {
                op: "rename",
                id: id.to_owned(),
                expected: "any".to_owned(),
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::NameInUse(name.to_owned()))
            }
            Err(e) => Err(query_err("rename container")(e)),
        }
    }

    /// Replaces a container's resource limits and restart policy (`update`).
    pub async fn set_resources(
        &self,
        id: &str,
        resources: &Resources,
        policy: &crate::runtime::restart::RestartPolicy,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE containers SET resources = ?, restart_policy = ? WHERE id = ?")
            .bind(serde_json::to_string(resources).expect("resources serialise"))
            .bind(policy.to_string())
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("record container resources"))?;
        Ok(())
    }

    /// Records why the last start failed (the state does not change).
    pub async fn set_error(&self, id: &str, error: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE containers SET error = ? WHERE id = ?")
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("record container error"))?;
        Ok(())
    }

    /// Deletes the row; true if there was one.
    pub async fn delete_container(&self, id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM containers WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("delete container"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Records a start the user asked for: the policy's count and the user's stop are
    /// forgotten.
    pub async fn reset_restarts(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            // Only a row with something to reset is written: a start that changes
            // nothing then costs no commit (and no fsync).
            "UPDATE containers SET restart_count = 0, stopped_by_user = 0, next_restart_at = NULL \
             WHERE id = ? AND (restart_count != 0 OR stopped_by_user != 0 \
             OR next_restart_at IS NOT NULL)",
        )
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("reset restart count"))?;
        Ok(())
    }

    /// Records that the user stopped (or killed) the container; cancels a pending restart.
    pub async fn set_stopped_by_user(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE containers SET stopped_by_user = 1, next_restart_at = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("record user stop"))?;
        Ok(())
    }

    /// Records when the restart policy will start the container again (or no restart).
    pub async fn set_next_restart(
        &self,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE containers SET next_restart_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("record next restart"))?;
        Ok(())
    }

    /// Counts a restart done by the policy.
    pub async fn count_restart(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE containers SET restart_count = restart_count + 1, next_restart_at = NULL \
             WHERE id = ?",
        )
        .bind(id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("count restart"))?;
        Ok(())
    }

    /// Number of containers per state.
    pub async fn count_containers(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM containers GROUP BY state")
                .fetch_all(self.pool())
                .await
                .map_err(query_err("count containers"))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.max(0) as u64))
            .collect())
    }

    /// What `/metrics` reads of every container, in one query whatever their number:
    /// no per-container round trip at scrape time.
    pub async fn container_metrics(&self) -> Result<Vec<ContainerMetrics>, StoreError> {
        let rows: Vec<MetricsRow> = sqlx::query_as(
            "SELECT c.id, c.name, c.state, c.paused, c.restart_count, \
             json_extract(c.resources, '$.memory_bytes') AS memory_bytes, \
             coalesce(m.oom_kills, 0) AS oom_kills, \
             coalesce(m.pressure_events, 0) AS pressure_events \
             FROM containers c LEFT JOIN container_memory m ON m.container_id = c.id \
             ORDER BY c.name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(query_err("read container metrics"))?;
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        Ok(rows
            .into_iter()
            .map(|r| {
                // As in `Row::into_record`: an unknown state is read as dead.
                let state = r.state.parse().unwrap_or(ContainerState::Dead);
                ContainerMetrics {
                    id: r.id,
                    name: r.name,
                    state,
                    paused: r.paused && state == ContainerState::Running,
                    restart_count: count(Some(r.restart_count)).unwrap_or(0),
                    memory_limit: count(r.memory_bytes),
                    oom_kills: count(Some(r.oom_kills)).unwrap_or(0),
                    pressure_events: count(Some(r.pressure_events)).unwrap_or(0),
                }
            })
            .collect())
    }

    /// Number of containers made from an image.
    pub async fn containers_using_image(&self, image_id: &str) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM containers WHERE image_id = ?")
            .bind(image_id)
            .fetch_one(self.pool())
            .await
            .map_err(query_err("count containers of image"))?;
        Ok(n.max(0) as u64)
    }
}

/// The INSERT of [`Store::insert_container`], on any connection (a transaction's too).
pub(super) async fn insert_container_row<'e, E>(
    executor: E,
    c: &Container,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let config = serde_json::to_string(&c.config).expect("config serialises");
    let resources = serde_json::to_string(&c.resources).expect("resources serialise");
    let res = sqlx::query(
        "INSERT INTO containers (id, name, image, image_id, state, config, resources, created_at, \
         restart_policy, spec_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.id)
    .bind(&c.name)
    .bind(&c.image)
    .bind(&c.image_id)
    .bind(c.state.as_str())
    .bind(config)
    .bind(resources)
    .bind(c.created_at)
    .bind(c.restart_policy.to_string())
    .bind(SPEC_VERSION)
    .execute(executor)
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::NameInUse(c.name.clone()))
        }
        Err(e) => Err(query_err("insert container")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATOR;
    use sqlx::SqlitePool;

    pub(crate) fn sample(id: &str, name: &str) -> Container {
        Container {
            id: id.to_owned(),
            name: name.to_owned(),
            image: "busybox".into(),
            image_id: "sha256:aa".into(),
            state: ContainerState::Created,
            paused: false,
            pid: None,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            config: ContainerConfig {
                cmd: vec!["true".into()],
                ..Default::default()
            },
            resources: Resources {
                memory_bytes: Some(1 << 26),
                ..Default::default()
            },
            restart_policy: Default::default(),
            restart_count: 0,
            next_restart_at: None,
        }
    }

    async fn store_with_image(pool: SqlitePool) -> Store {
        let store = Store::from_pool(pool).await.unwrap();
        store
            .insert_image("sha256:aa", 10, Utc::now(), "{}")
            .await
            .unwrap();
        store
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn pause_rename_and_resources(pool: SqlitePool) {
        let store = store_with_image(pool).await;
        let a = "ab".repeat(32);
        store.insert_container(&sample(&a, "web")).await.unwrap();
        store
            .insert_container(&sample(&"ac".repeat(32), "db"))
            .await
            .unwrap();
        // Only a running container can be paused.
        assert!(matches!(
            store.set_paused(&a, true).await,
            Err(StoreError::UnexpectedState { .. })
        ));
        store.set_running(&a, 10, 9, Utc::now()).await.unwrap();
        store.set_paused(&a, true).await.unwrap();
        assert!(store.container(&a).await.unwrap().unwrap().container.paused);
        // An exit ends the pause.
        let exit = ExitUpdate {
            exit_code: 137,
            signal: Some(9),
            oom_killed: false,
            finished_at: Utc::now(),
        };
        store.set_exited(&a, &exit).await.unwrap();
        assert!(!store.container(&a).await.unwrap().unwrap().container.paused);

        assert!(matches!(
            store.rename_container(&a, "db").await,
            Err(StoreError::NameInUse(n)) if n == "db"
        ));
        store.rename_container(&a, "front").await.unwrap();
        assert!(matches!(
            store.resolve_container("front").await.unwrap(),
            Resolved::One(_)
        ));
        assert!(matches!(
            store.resolve_container("web").await.unwrap(),
            Resolved::None
        ));

        let r = Resources {
            pids_max: Some(7),
            ..Default::default()
        };
        let policy: crate::runtime::restart::RestartPolicy = "always".parse().unwrap();
        store.set_resources(&a, &r, &policy).await.unwrap();
        let c = store.container(&a).await.unwrap().unwrap().container;
        assert_eq!((c.resources, c.restart_policy), (r, policy));
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn insert_resolve_and_transitions(pool: SqlitePool) {
        let store = store_with_image(pool).await;
        let a = "ab".repeat(32);
        let b = "ac".repeat(32);
        store.insert_container(&sample(&a, "web")).await.unwrap();
        store.insert_container(&sample(&b, "db")).await.unwrap();

        // Duplicate name is a NameInUse, not a generic failure.
        let err = store
            .insert_container(&sample(&"cd".repeat(32), "web"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NameInUse(ref n) if n == "web"),
            "{err:?}"
        );

        let got = |r: Resolved<ContainerRecord>| match r {
            Resolved::One(c) => Some(c.container.id),
            _ => None,
        };
        assert_eq!(
            got(store.resolve_container(&a).await.unwrap()),
            Some(a.clone())
        );
        assert_eq!(
            got(store.resolve_container("web").await.unwrap()),
            Some(a.clone())
        );
        assert_eq!(
            got(store.resolve_container("ab").await.unwrap()),
            Some(a.clone())
        );
        assert!(matches!(
            store.resolve_container("a").await.unwrap(),
            Resolved::Ambiguous
        ));
        assert!(matches!(
            store.resolve_container("zz").await.unwrap(),
            Resolved::None
        ));
        assert!(matches!(
            store.resolve_container("").await.unwrap(),
            Resolved::None
        ));

        store.set_running(&a, 42, 41, Utc::now()).await.unwrap();
        // A second start of a running container is a stale writer: refused, unchanged.
        let err = store.set_running(&a, 7, 6, Utc::now()).await.unwrap_err();
        assert!(matches!(err, StoreError::UnexpectedState { .. }), "{err:?}");
        let rec = store.container(&a).await.unwrap().unwrap();
        assert_eq!(rec.container.state, ContainerState::Running);
        assert_eq!(rec.container.pid, Some(42));
        assert_eq!(rec.shim_pid, Some(41));
        assert_eq!(store.list_containers(false).await.unwrap().len(), 1);
        assert_eq!(store.list_containers(true).await.unwrap().len(), 2);

        let exit = ExitUpdate {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            finished_at: Utc::now(),
        };
        store.set_exited(&a, &exit).await.unwrap();
        // The same exit recorded twice (an old monitor after a new start, say) is refused.
        assert!(matches!(
            store.set_exited(&a, &exit).await.unwrap_err(),
            StoreError::UnexpectedState { .. }
        ));
        let rec = store.container(&a).await.unwrap().unwrap().container;
        assert_eq!(rec.state, ContainerState::Exited);
        assert_eq!(
            (rec.exit_code, rec.exit_signal, rec.oom_killed),
            (Some(137), Some(9), true)
        );
        assert_eq!(rec.pid, None);
        assert_eq!(rec.resources.memory_bytes, Some(1 << 26));

        assert!(matches!(
            store
                .set_dead(&b, "shim vanished", &[ContainerState::Running])
                .await
                .unwrap_err(),
            StoreError::UnexpectedState { .. }
        ));
        store
            .set_dead(&b, "shim vanished", &[ContainerState::Created])
            .await
            .unwrap();
        let rec = store.container(&b).await.unwrap().unwrap().container;
        assert_eq!(rec.state, ContainerState::Dead);
        assert_eq!(rec.error.as_deref(), Some("shim vanished"));

        let counts = store.count_containers().await.unwrap();
        assert_eq!(counts.get("exited"), Some(&1));
        assert_eq!(counts.get("dead"), Some(&1));
        assert_eq!(store.containers_using_image("sha256:aa").await.unwrap(), 2);

        assert!(store.delete_container(&a).await.unwrap());
        assert!(!store.delete_container(&a).await.unwrap());
        assert!(store.container(&a).await.unwrap().is_none());
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn rows_of_an_unknown_spec_version_are_refused(pool: SqlitePool) {
        let store = store_with_image(pool).await;
        let c = sample("ab12", "web");
        store.insert_container(&c).await.unwrap();
        assert!(store.container("ab12").await.unwrap().is_some());
        sqlx::query("UPDATE containers SET spec_version = ?")
            .bind(SPEC_VERSION + 1)
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.container("ab12").await.unwrap_err();
        assert!(matches!(err, StoreError::SpecVersion { .. }), "{err:?}");
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn container_metrics_reads_every_container_in_one_query(pool: SqlitePool) {
        let store = store_with_image(pool).await;
        let before = store.commit_latency().count();
        let a = sample("aaaa", "alpha");
        let mut b = sample("bbbb", "beta");
        b.resources.memory_bytes = None;
        store.insert_container(&a).await.unwrap();
        store.insert_container(&b).await.unwrap();
        store.reset_memory_run("aaaa", 3).await.unwrap();
        let run = crate::store::MemoryRun {
            oom_kills: 2,
            pressure_events: 5,
            ..store.memory_run("aaaa").await.unwrap()
        };
        store.save_memory_run("aaaa", &run).await.unwrap();
        store.count_restart("aaaa").await.unwrap();
        // Every write above was timed.
        let after = store.commit_latency().count();
        assert_eq!(after - before, 5);

        let rows = store.container_metrics().await.unwrap();
        assert_eq!(
            rows,
            [
                ContainerMetrics {
                    id: "aaaa".into(),
                    name: "alpha".into(),
                    state: ContainerState::Created,
                    paused: false,
                    restart_count: 1,
                    memory_limit: Some(1 << 26),
                    oom_kills: 2,
                    pressure_events: 5,
                },
                ContainerMetrics {
                    id: "bbbb".into(),
                    name: "beta".into(),
                    state: ContainerState::Created,
                    paused: false,
                    restart_count: 0,
                    memory_limit: None,
                    oom_kills: 0,
                    pressure_events: 0,
                },
            ]
        );
    }
}
