//! The lifecycle's view of a shim: start one, signal its app, wait for its exit.
//!
//! [`Launcher`] is the seam between the per-container actor (`lifecycle`) and the
//! processes it manages. [`ShimLauncher`] is the real one (a
//! `boxd-shim` process per container, reached through its control socket and state
//! dir); the unit tests of the state machine use a fake that keeps "containers" in
//! memory, so every ordering (start racing exit, a request dropped mid-start, delete
//! during start) can be driven without root.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use boxd_shim::protocol::{files, ExitRecord, StartReport};

use super::shim::{self, ShimError, ShimLauncher};

/// A boxed future, as the trait's methods return (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts containers and reaches their shims.
pub trait Launcher: Send + Sync + 'static {
    /// Runs the shim on the `shim.json` at `config` and returns its start report.
    fn launch<'a>(&'a self, config: &'a Path) -> BoxFuture<'a, Result<StartReport, ShimError>>;

    /// Sends `signal` to the container's first process; the shim must answer within
    /// `deadline` (else `Timeout`). `Closed`/`Connect` errors mean the app (or its shim)
    /// is already gone.
    fn signal<'a>(
        &'a self,
        state_dir: &'a Path,
        signal: i32,
        deadline: Duration,
    ) -> BoxFuture<'a, Result<(), ShimError>>;

    /// Resolves when the run in `state_dir` has ended: its exit record, or `None` when
    /// the shim vanished without writing one.
    fn watch_exit(&self, state_dir: PathBuf) -> BoxFuture<'static, Option<ExitRecord>>;

    /// Whether a live shim serves `state_dir`.
    fn shim_alive(&self, state_dir: &Path) -> bool;

    /// Kills the shim process itself (not its app), for a forced delete whose shim does
    /// not answer; true if one was killed.
    fn kill_shim(&self, state_dir: &Path) -> bool;
}

impl Launcher for ShimLauncher {
    fn launch<'a>(&'a self, config: &'a Path) -> BoxFuture<'a, Result<StartReport, ShimError>> {
        Box::pin(ShimLauncher::launch(self, config))
    }

    fn signal<'a>(
        &'a self,
        state_dir: &'a Path,
        signal: i32,
        deadline: Duration,
    ) -> BoxFuture<'a, Result<(), ShimError>> {
        Box::pin(shim::kill(state_dir, signal, deadline))
    }

    fn watch_exit(&self, state_dir: PathBuf) -> BoxFuture<'static, Option<ExitRecord>> {
        Box::pin(async move { watch_shim(&state_dir).await })
    }

    fn shim_alive(&self, state_dir: &Path) -> bool {
        shim::shim_alive(state_dir)
    }

    fn kill_shim(&self, state_dir: &Path) -> bool {
        let Some(pid) = std::fs::read_to_string(state_dir.join(files::SHIM_PID))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return false;
        };
        // Only a process that is this container's shim (not a recycled pid).
        if !shim::pid_is_shim_for(pid, state_dir) {
            return false;
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .is_ok()
    }
}

/// Waits for the shim to report the exit; `None` when it vanished without a record.
async fn watch_shim(state_dir: &Path) -> Option<ExitRecord> {
    let mut failures = 0u32;
    loop {
        match shim::wait(state_dir).await {
            Ok(record) => return Some(record),
            Err(err) => {
                if let Some(record) = shim::read_exit_record(state_dir) {
                    return Some(record);
                }
                if !shim::shim_alive(state_dir) {
                    // The record is written before the shim exits; one last look covers
                    // an exit between the two checks.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return shim::read_exit_record(state_dir);
                }
                failures += 1;
                if failures % 50 == 1 {
                    tracing::warn!(dir = %state_dir.display(), error = %crate::error_chain(&err), "cannot reach a live shim; retrying");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
