//! The SQLite store: what the user asked for (containers, images, events).
//!
//! SQLite is the source of truth for intent; the state dir is the truth for what the
//! kernel did (see `runtime`). The database runs in WAL mode with `synchronous=FULL`,
//! so a record the API acknowledged survives `kill -9` and power loss. Queries are
//! checked at run time (`sqlx::query_as` + `FromRow`), so building needs no database;
//! every query is covered by a test on a fresh migrated database.
//!
//! Every write is timed into [`Store::commit_latency`] (the `/metrics` histogram
//! `boxd_store_commit_duration_seconds`): a statement on the pool is its own
//! transaction, so its time is the commit's (with `synchronous=FULL`, mostly the
//! fsync, plus any wait for a pooled connection or SQLite's write lock, which is what
//! a caller feels); a multi-statement transaction is timed at its `commit`.

mod containers;
mod events;
mod exits;
mod images;
mod layers;
mod networks;
mod userns;
mod volumes;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use containers::{ContainerMetrics, ContainerRecord, ExitUpdate, Resolved};
pub use events::EventFilter;
pub use exits::{MemoryRun, DEFAULT_EXITS_MAX_PER_CONTAINER};
pub use images::ImageRecord;
pub use layers::LayerRow;

/// The schema, embedded from `migrations/` at the workspace root.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("failed to open database {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("failed to apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("failed to {op}")]
    Query {
        /// What was being done (`insert container`, ...).
        op: &'static str,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A stored JSON column could not be read back.
    #[error("stored {what} of {id} is corrupt")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// Which row.
        id: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The unique name is taken.
    #[error("the name {0:?} is already in use")]
    NameInUse(String),
    /// Every user namespace slot is taken.
    #[error("all {0} user namespace slots are in use")]
    NoUsernsSlot(u32),
    /// A container row in a spec format this boxd does not know (written by a newer one).
    #[error("container {id} was stored in spec format {version}, which this boxd does not read; run the boxd that wrote it")]
    SpecVersion {
        /// The container.
        id: String,
        /// Its format.
        version: i64,
    },
    /// A state transition found the row in a state its writer did not expect: a second
    /// writer, or a bug. Nothing was written.
    #[error("cannot {op} container {id}: it is not in state {expected}")]
    UnexpectedState {
        /// The transition (`record start`, ...).
        op: &'static str,
        /// The container.
        id: String,
        /// The states the writer expected, `|`-separated.
        expected: String,
    },
}

pub(crate) fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Exit records kept per container (see [`Store::insert_exit`]).
    exits_max: u64,
    /// How long writes take to commit (shared by every clone).
    commits: Histogram,
}

/// Buckets of the commit histogram, in seconds: 100 µs to about 3 s. A WAL commit with
/// `synchronous=FULL` is an fsync, from tens of microseconds on NVMe to a second or
/// more on a busy disk; `busy_timeout` (10 s) lands in `+Inf`.
pub const COMMIT_BUCKETS: [f64; 16] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0,
];

/// A write's future that records how long it took when it completes (failed writes
/// too: a slow failure is worth seeing).
pub(crate) struct Timed<F: Future> {
    inner: Pin<Box<F>>,
    start: Instant,
    histogram: Histogram,
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = std::task::ready!(self.inner.as_mut().poll(cx));
        self.histogram.observe(self.start.elapsed().as_secs_f64());
        Poll::Ready(out)
    }
}

/// `.timed(&histogram)` on a write's future.
pub(crate) trait TimedExt: Future + Sized {
    /// Times this future into `histogram`.
    fn timed(self, histogram: &Histogram) -> Timed<Self> {
        Timed {
            // Boxed so `Timed` is `Unpin` without pin projection (no `unsafe` here); one
            // allocation is nothing next to a commit.
            inner: Box::pin(self),
            start: Instant::now(),
            histogram: histogram.clone(),
        }
    }
}

impl<F: Future> TimedExt for F {}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool (tests) and applies migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await.map_err(StoreError::Migrate)?;
        Ok(Store {
            pool,
            exits_max: DEFAULT_EXITS_MAX_PER_CONTAINER,
            commits: Histogram::new(COMMIT_BUCKETS),
        })
    }

    /// Keeps at most `n` exit records per container (at least 1: the newest is the
    /// container's last exit).
    pub fn with_exits_max(mut self, n: u64) -> Self {
        self.exits_max = n.max(1);
        self
    }

    /// Closes the pool, waiting for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The commit-latency histogram (a handle: observations through any clone of the
    /// store land in it).
    pub fn commit_latency(&self) -> Histogram {
        self.commits.clone()
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}
