//! The container lifecycle: one actor task per container makes every transition.
//!
//! Each container has one task (its *actor*) that owns its transitions: start, stop,
//! kill, the exit, a restart by policy, delete, and the adoption of a live shim found by
//! the reconcile. HTTP handlers (and every other caller) send it a [`Command`] with a
//! one-shot reply and await the answer; the actor handles commands one at a time, in
//! the order they arrive. So:
//!
//! - a client that hangs up only loses the reply: the transition it asked for runs to
//!   its end, and a start that completes after its client left is tracked like any
//!   other (its exit is watched, its cgroup freed);
//! - the exit is recorded by the actor itself (it owns the run's exit watch), so it can
//!   never race a start or a delete of the same container;
//! - long waits are state, not blocked tasks: a stop sends its signal, arms a deadline
//!   and returns to the loop, so a `kill` during a long `stop` goes through at once, and
//!   a pending restart is a timer the actor cancels when the user intervenes.
//!
//! Store writes say which state they expect (`UPDATE … WHERE state IN (…)`); a mismatch
//! means a second writer or a bug, and is logged and listed by `GET /v1/system/check`.
//!
//! Ordering rules that keep every step survivable by `kill -9` of the daemon (the next
//! start's reconcile finishes or undoes what was half-done) are in `mod.rs`'s `//!`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::spec::{Container, ContainerState, ResourceUpdate};
use boxd_shim::protocol::{files, ExitRecord, ShimConfig, StartReport};
use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::launcher::BoxFuture;
use super::restart::StartCause;
use super::{attach, bundle, disk, userns, Runtime, RuntimeError};
use crate::image::users::{self, ResolvedUser};
use crate::store::{ExitUpdate, StoreError};

/// How long a stop waits for the exit after SIGKILL before it reports failure.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How long a forced delete waits for the shim to report the exit after SIGKILL before it
/// kills the shim itself (an unresponsive or stopped shim).
const FORCE_GRACE: Duration = Duration::from_secs(3);
/// How long an auto-removed container waits for its attached clients to read the end
/// of its output.
const ATTACH_DRAIN: Duration = Duration::from_secs(30);
/// Commands queued per container before senders wait.
const QUEUE: usize = 64;

type Reply<T = ()> = oneshot::Sender<Result<T, RuntimeError>>;

/// What a caller asks of a container's actor.
pub(super) enum Command {
    /// Start it (the user's start, or the restart policy's).
    Start { cause: StartCause, reply: Reply },
    /// The stop signal, then SIGKILL after `timeout`; answered once it exited.
    Stop { timeout: Duration, reply: Reply },
    /// Send a signal.
    Kill { signal: i32, reply: Reply },
    /// Delete it and everything it owns; `force` kills it first if it runs.
    Remove { force: bool, reply: Reply },
    /// Connect it to one more network (at once when it runs, and on every start).
    Connect {
        network: String,
        aliases: Vec<String>,
        reply: Reply,
    },
    /// Disconnect it from a connected network.
    Disconnect { network: String, reply: Reply },
    /// Remove it if it asked for that and its run is over (attach sessions done).
    AutoRemove { reply: Reply },
    /// Freeze its cgroup.
    Pause { reply: Reply },
    /// Thaw its cgroup.
    Unpause { reply: Reply },
    /// Give it another name.
    Rename { name: String, reply: Reply },
    /// Change its limits (live if it runs) and restart policy; answers the warnings.
    Update {
        update: ResourceUpdate,
        reply: Reply<Vec<String>>,
    },
}

/// The actors of the containers that exist, by id.
#[derive(Default)]
pub(super) struct Actors {
    map: Mutex<HashMap<String, mpsc::Sender<Command>>>,
}

impl Actors {
    pub(super) fn get(&self, id: &str) -> Option<mpsc::Sender<Command>> {
        self.map.lock().expect("actors poisoned").get(id).cloned()
    }

    pub(super) fn insert(&self, id: &str, tx: mpsc::Sender<Command>) {
        self.map
            .lock()
            .expect("actors poisoned")
            .insert(id.to_owned(), tx);
    }

    pub(super) fn remove(&self, id: &str) {
        self.map.lock().expect("actors poisoned").remove(id);
    }
}

/// A stop in flight: its deadline, whether SIGKILL was sent, and who waits for it.
struct Stopping {
    deadline: Instant,
    killed: bool,
    waiters: Vec<Reply>,
}

/// The task that owns one container's transitions.
struct Actor {
    rt: Runtime,
    id: String,
    rx: mpsc::Receiver<Command>,
    /// Resolves with the exit of the current run; `Some` exactly while it runs.
    run: Option<BoxFuture<'static, Option<ExitRecord>>>,
    stopping: Option<Stopping>,
    /// When the restart policy starts the container again.
    restart_at: Option<Instant>,
}

/// Whether the actor goes on after a command.
enum Next {
    Continue,
    /// The container is gone: the actor ends.
    Gone,
}

async fn run_exit(run: &mut Option<BoxFuture<'static, Option<ExitRecord>>>) -> Option<ExitRecord> {
    match run {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn instant_at(at: DateTime<Utc>) -> Instant {
    Instant::now() + (at - Utc::now()).to_std().unwrap_or_default()
}

impl Actor {
    async fn run(mut self) {
        if self.running() {
            // Adopted from the reconcile: watch its memory events again.
            self.rt.ensure_observers(&self.id).await;
        } else if let Next::Gone = self.auto_remove(false).await {
            // Its run ended while the daemon was down (or the daemon died before
            // removing it).
            return;
        }
        loop {
            let stop_deadline = self.stopping.as_ref().map(|s| s.deadline);
            tokio::select! {
                // The exit first: a command that raced it then sees the container exited.
                biased;
                exit = run_exit(&mut self.run) => {
                    self.run = None;
                    self.on_exit(exit).await;
                    if let Next::Gone = self.auto_remove(false).await {
                        break;
                    }
                }
                () = sleep_until(stop_deadline) => self.on_stop_deadline().await,
                () = sleep_until(self.restart_at) => {
                    self.restart_at = None;
                    self.restart_by_policy().await;
                }
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if let Next::Gone = self.handle(cmd).await {
                        break;
                    }
                }
            }
        }
    }

    async fn handle(&mut self, cmd: Command) -> Next {
        match cmd {
            Command::Start { cause, reply } => {
                let res = self.start(cause).await;
                let failed = res.is_err();
                let _ = reply.send(res);
                if failed {
                    // Nothing ran, so an attached client has nothing to read.
                    return self.auto_remove_when(true, false).await;
                }
            }
            Command::Stop { timeout, reply } => self.stop(timeout, reply).await,
            Command::Kill { signal, reply } => {
                let res = self.kill(signal).await;
                let _ = reply.send(res);
            }
            Command::Connect {
                network,
                aliases,
                reply,
            } => {
                let res = self.connect(&network, aliases).await;
                let _ = reply.send(res);
            }
            Command::Disconnect { network, reply } => {
                let res = self.disconnect(&network).await;
                let _ = reply.send(res);
            }
            Command::AutoRemove { reply } => {
                let next = self.auto_remove_when(false, false).await;
                let _ = reply.send(Ok(()));
                return next;
            }
            Command::Pause { reply } => {
                let res = self.pause().await;
                let _ = reply.send(res);
            }
            Command::Unpause { reply } => {
                let res = self.unpause().await;
                let _ = reply.send(res);
            }
            Command::Rename { name, reply } => {
                let res = self.rename(name).await;
                let _ = reply.send(res);
            }
            Command::Update { update, reply } => {
                let res = self.update(update).await;
                let _ = reply.send(res);
            }
            Command::Remove { force, reply } => {
                let res = self.remove(force).await;
                let gone = res.is_ok();
                let _ = reply.send(res);
                if gone {
                    return Next::Gone;
                }
            }
        }
        Next::Continue
    }

    /// Removes the container if it asked for that (`auto_remove`) and its run is over
    /// for good: it exited and the policy starts it no more, or (`failed_start`) a
    /// start just failed. Runs after each exit and when the actor starts, so a daemon
    /// killed between the exit and the removal removes it at its next start.
    async fn auto_remove(&mut self, failed_start: bool) -> Next {
        self.auto_remove_when(failed_start, true).await
    }

    /// [`Self::auto_remove`]; `wait_attaches`: put the removal off while attach sessions
    /// read the output (false once they are done or their time is up).
    async fn auto_remove_when(&mut self, failed_start: bool, wait_attaches: bool) -> Next {
        if self.running() || self.restart_at.is_some() {
            return Next::Continue;
        }
        let due = match self.rt.inner.store.container(&self.id).await {
            Ok(Some(rec)) => {
                rec.container.config.auto_remove
                    && (failed_start
                        || matches!(
                            rec.container.state,
                            ContainerState::Exited | ContainerState::Dead
                        ))
            }
            _ => false,
        };
        if !due {
            return Next::Continue;
        }
        if wait_attaches && self.rt.inner.attaches.busy(&self.id) {
            // An attached client is still reading what the app printed (from the log,
            // which goes with the container): remove once it is done. A daemon that
            // dies first removes the container when it starts again.
            let rt = self.rt.clone();
            let id = self.id.clone();
            tokio::spawn(async move {
                rt.attaches_done(&id, ATTACH_DRAIN).await;
                if let Err(err) = rt.remove_if_auto(&id).await {
                    tracing::warn!(id, error = %crate::error_chain(&err), "auto-remove failed");
                }
            });
            return Next::Continue;
        }
        match self.remove(false).await {
            Ok(()) => Next::Gone,
            Err(err) => {
                let id = &self.id;
                tracing::warn!(id, error = %crate::error_chain(&err), "auto-remove failed");
                Next::Continue
            }
        }
    }

    fn running(&self) -> bool {
        self.run.is_some()
    }

    async fn name(&mut self) -> String {
        match self.rt.inner.store.container(&self.id).await {
            Ok(Some(rec)) => rec.container.name,
            _ => self.id.clone(),
        }
    }

    // ----- start ------------------------------------------------------------------

    async fn start(&mut self, cause: StartCause) -> Result<(), RuntimeError> {
        let id = self.id.clone();
        let rt = self.rt.clone();
        let rec = rt.record_of(&id).await?;
        if cause == StartCause::Policy
            && (self.running() || rec.stopped_by_user || rec.container.next_restart_at.is_none())
        {
            // The user stopped it, or started it by hand, while the back-off ran.
            return Ok(());
        }
        if self.running() {
            return Err(RuntimeError::AlreadyRunning(rec.container.name));
        }
        // Held until the run is recorded, so no copy mounts the layers meanwhile; taken
        // before anything is counted, so a start refused here changes nothing.
        let _lease = rt
            .inner
            .layer_leases
            .write(&id, &rec.container.name)
            .await?;
        match cause {
            StartCause::User => {
                self.restart_at = None;
                rt.inner.store.reset_restarts(&id).await?
            }
            StartCause::Policy => rt.inner.store.count_restart(&id).await?,
        }
        crate::fault::crash_point("start.before_launch");
        let c = rec.container;
        let state_dir = rt.inner.paths.state_dir(&id);
        match rt.launch_run(&c, &state_dir).await {
            Ok((shim_pid, pid)) => {
                // The run is watched from here on, whatever the store says next.
                self.run = Some(rt.inner.launcher.watch_exit(state_dir.clone()));
                if let Err(e) = rt
                    .inner
                    .store
                    .set_running(&id, pid, shim_pid, Utc::now())
                    .await
                {
                    rt.anomaly(&id, &e);
                    return Err(e.into());
                }
                crate::fault::crash_point("start.after_launch_recorded");
                if cause == StartCause::Policy {
                    rt.inner
                        .events
                        .emit("container", "restart", &id, &[("name", c.name.clone())])
                        .await;
                }
                rt.inner
                    .events
                    .emit("container", "start", &id, &[("name", c.name.clone())])
                    .await;
                Ok(())
            }
            Err(err) => {
                // Undo everything the failed start made; the container stays as it was.
                rt.inner.network.detach(&id).await;
                rt.remove_cgroup(&id, "after a failed start").await;
                rt.remove_dir_quietly(state_dir).await;
                let _ = rt.inner.store.set_error(&id, Some(&err.to_string())).await;
                Err(err)
            }
        }
    }

    async fn restart_by_policy(&mut self) {
        if let Err(err) = self.start(StartCause::Policy).await {
            let id = self.id.clone();
            tracing::warn!(id, error = %crate::error_chain(&err), "restart by policy failed");
            // A failed start is a failed run: the policy decides again, backing off.
            let why = format!("restart by policy failed: {err}");
            if let Err(e) = self
                .rt
                .inner
                .store
                .set_dead(&id, &why, &[ContainerState::Exited, ContainerState::Dead])
                .await
            {
                self.rt.anomaly(&id, &e);
            }
            self.restart_at = self.rt.after_exit(&id).await.map(instant_at);
        }
    }

    // ----- exit -------------------------------------------------------------------

    async fn on_exit(&mut self, exit: Option<ExitRecord>) {
        let id = self.id.clone();
        if let Err(err) = self.rt.record_exit(&id, exit).await {
            tracing::error!(id, error = %crate::error_chain(&err), "failed to record container exit");
        }
        if let Some(stop) = self.stopping.take() {
            for w in stop.waiters {
                let _ = w.send(Ok(()));
            }
        }
        self.restart_at = self.rt.after_exit(&id).await.map(instant_at);
    }

    // ----- stop / kill ------------------------------------------------------------

    async fn stop(&mut self, timeout: Duration, reply: Reply) {
        let id = self.id.clone();
        // Recorded first, so the exit this causes is not restarted (and a pending
        // restart of a stopped container is cancelled).
        self.restart_at = None;
        if let Err(e) = self.rt.inner.store.set_stopped_by_user(&id).await {
            let _ = reply.send(Err(e.into()));
            return;
        }
        if !self.running() {
            let _ = reply.send(Ok(()));
            return;
        }
        if let Some(stop) = &mut self.stopping {
            // A stop is under way: this one waits for the same exit, and its shorter
            // timeout (if shorter) brings the SIGKILL forward.
            if !stop.killed {
                stop.deadline = stop.deadline.min(Instant::now() + timeout);
            }
            stop.waiters.push(reply);
            return;
        }
        let name = self.name().await;
        self.rt
            .inner
            .events
            .emit("container", "stop", &id, &[("name", name)])
            .await;
        let (image_id, own) = match self.rt.inner.store.container(&id).await {
            Ok(Some(rec)) => (rec.container.image_id, rec.container.config.stop_signal),
            _ => (String::new(), None),
        };
        // The container's stop signal, else the image's (SIGTERM when neither sets one).
        let signal = self.rt.stop_signal(own.as_deref(), &image_id).await;
        let deadline = super::shim::deadline_within(timeout);
        match self.rt.signal_running(&id, signal, deadline).await {
            Ok(_) => {
                // A frozen app only acts on the signal once thawed (Docker does the same).
                self.thaw_after_signal().await;
                self.stopping = Some(Stopping {
                    deadline: Instant::now() + timeout,
                    killed: false,
                    waiters: vec![reply],
                })
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn on_stop_deadline(&mut self) {
        let id = self.id.clone();
        let Some(stop) = &mut self.stopping else {
            return;
        };
        if !stop.killed {
            tracing::info!(id, "container ignored its stop signal; sending SIGKILL");
            stop.killed = true;
            stop.deadline = Instant::now() + KILL_GRACE;
            let deadline = super::shim::CONTROL_DEADLINE;
            if let Err(e) = self.rt.signal_running(&id, libc::SIGKILL, deadline).await {
                tracing::warn!(id, error = %crate::error_chain(&e), "failed to send SIGKILL");
            }
            // Paused again during the stop: SIGKILL needs the tasks thawed to act.
            self.thaw_after_signal().await;
            return;
        }
        // SIGKILL went unanswered: the shim does not report (stopped, or hung). The
        // stop fails; the exit is still recorded when it comes, and a forced delete
        // removes the container whatever its shim does.
        let stop = self.stopping.take().expect("checked above");
        let name = self.name().await;
        for w in stop.waiters {
            let _ = w.send(Err(RuntimeError::StopTimedOut(name.clone())));
        }
    }

    async fn kill(&mut self, signal: i32) -> Result<(), RuntimeError> {
        let id = self.id.clone();
        let name = self.name().await;
        if !self.running() {
            return Err(RuntimeError::NotRunning(name));
        }
        // A signal meant to end the container counts as the user stopping it, as with
        // Docker; one meant for the app (SIGHUP to reload, say) does not.
        let ends = matches!(
            signal,
            libc::SIGKILL | libc::SIGTERM | libc::SIGINT | libc::SIGQUIT
        );
        if ends {
            self.restart_at = None;
            self.rt.inner.store.set_stopped_by_user(&id).await?;
        }
        if !self
            .rt
            .signal_running(&id, signal, super::shim::CONTROL_DEADLINE)
            .await?
        {
            return Err(RuntimeError::NotRunning(name));
        }
        // A paused container that is told to end is thawed, so the signal acts (a frozen
        // task does not even die of SIGKILL until thawed). Any other signal stays pending
        // until the user unpauses it, as with Docker.
        if ends {
            self.thaw_after_signal().await;
        }
        self.rt
            .inner
            .events
            .emit(
                "container",
                "kill",
                &id,
                &[("name", name), ("signal", signal.to_string())],
            )
            .await;
        Ok(())
    }

    /// Ends a pause after a signal meant to end the container: thaws the cgroup (the
    /// signal, already queued, then acts) and records it. A failure is logged: the
    /// stop's deadline, or a forced delete, still kills the cgroup.
    async fn thaw_after_signal(&mut self) {
        let id = self.id.clone();
        match self.rt.inner.store.container(&id).await {
            Ok(Some(rec)) if rec.container.paused => {}
            _ => return,
        }
        let cid = id.clone();
        if let Err(e) = self.rt.cgroups_blocking(move |cg| cg.thaw(&cid)).await {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to thaw a paused container");
            return;
        }
        if let Err(e) = self.rt.inner.store.set_paused(&id, false).await {
            self.rt.anomaly(&id, &e);
        }
    }

    // ----- pause / unpause --------------------------------------------------------

    async fn pause(&mut self) -> Result<(), RuntimeError> {
        let id = self.id.clone();
        let rec = self.rt.record_of(&id).await?;
        let name = rec.container.name;
        if !self.running() {
            return Err(RuntimeError::NotRunning(name));
        }
        if rec.container.paused {
            return Err(RuntimeError::AlreadyPaused(name));
        }
        // The freezer first, the row after: a crash between leaves a frozen group with
        // a row that says running, which the reconcile reads back from the freezer.
        let cid = id.clone();
        self.rt.cgroups_blocking(move |cg| cg.freeze(&cid)).await?;
        crate::fault::crash_point("pause.after_freeze");
        if let Err(e) = self.rt.inner.store.set_paused(&id, true).await {
            // Undo, so the container runs as the row says.
            let cid = id.clone();
            if let Err(t) = self.rt.cgroups_blocking(move |cg| cg.thaw(&cid)).await {
                tracing::warn!(id, error = %crate::error_chain(&t), "failed to thaw after a failed pause");
            }
            if let StoreError::UnexpectedState { .. } = &e {
                self.rt.anomaly(&id, &e);
            }
            return Err(e.into());
        }
        self.rt
            .inner
            .events
            .emit("container", "pause", &id, &[("name", name)])
            .await;
        Ok(())
    }

    async fn unpause(&mut self) -> Result<(), RuntimeError> {
        let id = self.id.clone();
        let rec = self.rt.record_of(&id).await?;
        let name = rec.container.name;
        if !self.running() || !rec.container.paused {
            return Err(RuntimeError::NotPaused(name));
        }
        let cid = id.clone();
        self.rt.cgroups_blocking(move |cg| cg.thaw(&cid)).await?;
        crate::fault::crash_point("unpause.after_thaw");
        if let Err(e) = self.rt.inner.store.set_paused(&id, false).await {
            if let StoreError::UnexpectedState { .. } = &e {
                self.rt.anomaly(&id, &e);
            }
            return Err(e.into());
        }
        self.rt
            .inner
            .events
            .emit("container", "unpause", &id, &[("name", name)])
            .await;
        Ok(())
    }

    // ----- rename / update --------------------------------------------------------

    async fn rename(&mut self, name: String) -> Result<(), RuntimeError> {
        super::names::validate_container_name(&name)
            .map_err(|r| RuntimeError::invalid("name", r))?;
        let id = self.id.clone();
        let old = self.rt.record_of(&id).await?.container.name;
        if old == name {
            return Err(RuntimeError::invalid(
                "name",
                format!("{name:?} is already the container's name"),
            ));
        }
        // The embedded DNS reads names from the store at each query, so the new name
        // resolves (and the old one no longer does) from here on. The hostname and
        // the run's /etc/hosts keep the old name until the next start, as with Docker.
        self.rt
            .inner
            .store
            .rename_container(&id, &name)
            .await
            .map_err(|e| match e {
                StoreError::NameInUse(n) => RuntimeError::NameInUse(n),
                other => other.into(),
            })?;
        self.rt
            .inner
            .events
            .emit(
                "container",
                "rename",
                &id,
                &[("name", name), ("oldName", old)],
            )
            .await;
        Ok(())
    }

    async fn update(&mut self, update: ResourceUpdate) -> Result<Vec<String>, RuntimeError> {
        let id = self.id.clone();
        let rt = self.rt.clone();
        let c = rt.record_of(&id).await?.container;
        let resources = update.merged(&c.resources);
        crate::cgroups::validate(&resources)
            .map_err(|e| RuntimeError::invalid("resources", e.to_string()))?;
        let policy = update.restart_policy.unwrap_or(c.restart_policy);
        let live = self.running() && update.touches_limits();
        let warnings = if live {
            let (cid, r) = (id.clone(), resources.clone());
            match rt.cgroups_blocking(move |cg| cg.update(&cid, &r)).await {
                Ok(w) => w,
                Err(e) => {
                    // A write that failed midway may have changed some limits: put back
                    // what the row says, so the live group and the row agree.
                    rt.restore_limits(&id, &c.resources).await;
                    return Err(if e.is_busy() {
                        RuntimeError::LimitBelowUsage {
                            container: c.name,
                            source: Box::new(e),
                        }
                    } else {
                        e.into()
                    });
                }
            }
        } else {
            rt.create_warnings(&resources)
        };
        crate::fault::crash_point("update.after_cgroup");
        if let Err(e) = rt.inner.store.set_resources(&id, &resources, &policy).await {
            if live {
                rt.restore_limits(&id, &c.resources).await;
            }
            return Err(e.into());
        }
        // A restart the old policy scheduled is dropped when the new one would not make it.
        if update.restart_policy.is_some()
            && self.restart_at.is_some()
            && policy == super::restart::RestartPolicy::No
        {
            self.restart_at = None;
            rt.inner.store.set_next_restart(&id, None).await?;
        }
        rt.inner
            .events
            .emit("container", "update", &id, &[("name", c.name)])
            .await;
        Ok(warnings)
    }

    // ----- networks ---------------------------------------------------------------

    async fn connect(&mut self, network: &str, aliases: Vec<String>) -> Result<(), RuntimeError> {
        use crate::network::{Connection, NetworkError, NetworkMode};
        let rt = self.rt.clone();
        let rec = self.rt.record_of(&self.id).await?;
        let mut config = rec.container.config;
        if !matches!(config.network.mode, NetworkMode::Network { .. }) {
            return Err(RuntimeError::invalid(
                "network",
                format!(
                    "container {} is in network mode {}: only a container on a network (bridge or a user network) can be connected to more",
                    rec.container.name,
                    config.network.mode.to_user_string()
                ),
            ));
        }
        let n = rt.inner.network.get(network).await?;
        if config.network.networks().contains(&n.name.as_str()) {
            return Err(NetworkError::AlreadyConnected {
                container: rec.container.name,
                network: n.name,
            }
            .into());
        }
        crate::network::check_aliases("aliases", &aliases)?;
        config.network.connected.push(Connection {
            name: n.name.clone(),
            aliases,
        });
        // Recorded first: a crash after the ADD leaves an attachment the config names.
        rt.inner.store.set_config(&self.id, &config).await?;
        if self.running() {
            if let Err(e) = rt.inner.network.connect_running(&self.id, &n.name).await {
                config.network.connected.retain(|c| c.name != n.name);
                rt.inner.store.set_config(&self.id, &config).await?;
                return Err(e.into());
            }
        }
        rt.inner
            .events
            .emit(
                "network",
                "connect",
                &n.id,
                &[("name", n.name.clone()), ("container", self.id.clone())],
            )
            .await;
        Ok(())
    }

    async fn disconnect(&mut self, network: &str) -> Result<(), RuntimeError> {
        use crate::network::{NetworkError, NetworkMode};
        let rt = self.rt.clone();
        let rec = self.rt.record_of(&self.id).await?;
        let mut config = rec.container.config;
        let n = rt.inner.network.get(network).await?;
        if matches!(&config.network.mode, NetworkMode::Network { name } if *name == n.name) {
            return Err(RuntimeError::invalid(
                "network",
                format!(
                    "{} is the network container {} was created on; it can only be disconnected from networks connected later",
                    n.name, rec.container.name
                ),
            ));
        }
        if !config.network.connected.iter().any(|c| c.name == n.name) {
            return Err(NetworkError::NotConnected {
                container: rec.container.name,
                network: n.name,
            }
            .into());
        }
        if self.running() {
            rt.inner
                .network
                .disconnect_running(&self.id, &n.name)
                .await?;
        }
        config.network.connected.retain(|c| c.name != n.name);
        rt.inner.store.set_config(&self.id, &config).await?;
        rt.inner
            .events
            .emit(
                "network",
                "disconnect",
                &n.id,
                &[("name", n.name.clone()), ("container", self.id.clone())],
            )
            .await;
        Ok(())
    }

    // ----- delete -----------------------------------------------------------------

    async fn remove(&mut self, force: bool) -> Result<(), RuntimeError> {
        let id = self.id.clone();
        let rt = self.rt.clone();
        let rec = self.rt.record_of(&self.id).await?;
        let name = rec.container.name;
        self.restart_at = None;
        if let Some(mut run) = self.run.take() {
            if !force {
                self.run = Some(run);
                return Err(RuntimeError::ContainerRunning(name));
            }
            rt.inner.store.set_stopped_by_user(&id).await?;
            let state_dir = rt.inner.paths.state_dir(&id);
            let answered = match rt
                .signal_running(&id, libc::SIGKILL, super::shim::CONTROL_DEADLINE)
                .await
            {
                Ok(_) => {
                    self.thaw_after_signal().await;
                    true
                }
                Err(e) => {
                    tracing::warn!(id, error = %crate::error_chain(&e), "shim did not take SIGKILL");
                    false
                }
            };
            let mut exit = None;
            let mut reported = false;
            if answered {
                if let Ok(e) = tokio::time::timeout(FORCE_GRACE, &mut run).await {
                    exit = e;
                    reported = true;
                }
            }
            if !reported {
                // The shim does not answer (stopped or hung): the app dies with its
                // cgroup, the shim is killed, and the run ends without it.
                tracing::warn!(id, "shim unresponsive; killing the cgroup and the shim");
                rt.remove_cgroup(&id, "to kill an unresponsive container")
                    .await;
                rt.inner.launcher.kill_shim(&state_dir);
                exit = tokio::time::timeout(KILL_GRACE, &mut run)
                    .await
                    .unwrap_or_else(|_| crate::runtime::shim::read_exit_record(&state_dir));
            }
            crate::fault::crash_point("delete.after_kill");
            self.on_exit(exit).await;
            self.restart_at = None;
        }
        // Whatever the exit path did or did not get to, nothing may stay behind.
        let cgroups = rt.clone();
        let cid = id.clone();
        tokio::task::spawn_blocking(move || cgroups.inner.cgroups.remove(&cid))
            .await
            .expect("cgroup removal panicked")?;
        crate::fault::crash_point("delete.after_cgroup");
        rt.inner.network.detach(&id).await;
        super::remove_dir_blocking(rt.inner.paths.state_dir(&id)).await?;
        super::remove_dir_blocking(rt.inner.paths.container_dir(&id)).await?;
        crate::fault::crash_point("delete.before_row");
        rt.inner.store.delete_container(&id).await?;
        rt.inner
            .events
            .emit("container", "destroy", &id, &[("name", name)])
            .await;
        rt.inner.actors.remove(&id);
        rt.inner.exits.lock().expect("exits poisoned").remove(&id);
        rt.inner
            .backoff
            .lock()
            .expect("backoff poisoned")
            .remove(&id);
        Ok(())
    }
}

impl Runtime {
    /// Container `id`'s row; gone is a 404.
    async fn record_of(&self, id: &str) -> Result<crate::store::ContainerRecord, RuntimeError> {
        self.inner
            .store
            .container(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "container",
                reference: id.to_owned(),
            })
    }

    /// Starts the actor of container `id`. `running`: a live shim serves its current
    /// run (the reconcile found it), so the actor watches for its exit at once.
    /// `restart_at`: a restart the policy has pending.
    pub(super) fn spawn_actor(&self, id: &str, running: bool, restart_at: Option<DateTime<Utc>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.inner.actors.insert(id, tx);
        // Subscribe first so a waiter that comes later finds the channel.
        drop(self.exit_watch(id));
        let run = running.then(|| {
            self.inner
                .launcher
                .watch_exit(self.inner.paths.state_dir(id))
        });
        let actor = Actor {
            rt: self.clone(),
            id: id.to_owned(),
            rx,
            run,
            stopping: None,
            restart_at: restart_at.map(instant_at),
        };
        tokio::spawn(actor.run());
    }

    /// Sends a command to a container's actor and waits for the answer. The command
    /// runs to its end even if this future is dropped.
    async fn call<T>(
        &self,
        reference: &str,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, RuntimeError> {
        let id = self.resolve(reference).await?.container.id;
        let gone = || RuntimeError::NotFound {
            kind: "container",
            reference: reference.to_owned(),
        };
        let tx = self.inner.actors.get(&id).ok_or_else(gone)?;
        let (reply, answer) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| gone())?;
        // A closed reply: the container was removed before the command's turn.
        answer.await.map_err(|_| gone())?
    }

    /// Starts a created or exited container, as the user asked.
    pub async fn start(&self, reference: &str) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Start {
            cause: StartCause::User,
            reply,
        })
        .await
    }

    /// The stop signal, then SIGKILL after `timeout`.
    pub async fn stop(&self, reference: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Stop { timeout, reply })
            .await
    }

    /// `restart`: stops the container when it runs (TERM, then KILL after `timeout`),
    /// then starts it; a container that does not run is just started, as Docker's.
    pub async fn restart(&self, reference: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let id = self.resolve(reference).await?.container.id;
        match self.stop(&id, timeout).await {
            Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        match self.start(&id).await {
            // Its restart policy may have started it in between.
            Ok(()) | Err(RuntimeError::AlreadyRunning(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends a signal; 409 if the container is not running.
    pub async fn kill(&self, reference: &str, signal: i32) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Kill { signal, reply })
            .await
    }

    /// Connects a container to one more network.
    pub async fn connect(
        &self,
        network: &str,
        reference: &str,
        aliases: Vec<String>,
    ) -> Result<(), RuntimeError> {
        let network = network.to_owned();
        self.call(reference, |reply| Command::Connect {
            network,
            aliases,
            reply,
        })
        .await
    }

    /// Disconnects a container from a network it was connected to.
    pub async fn disconnect(&self, network: &str, reference: &str) -> Result<(), RuntimeError> {
        let network = network.to_owned();
        self.call(reference, |reply| Command::Disconnect { network, reply })
            .await
    }

    /// Removes a container that asked to be removed when its run ends, if that run is
    /// over (see `Actor::auto_remove`).
    pub(super) async fn remove_if_auto(&self, id: &str) -> Result<(), RuntimeError> {
        match self.call(id, |reply| Command::AutoRemove { reply }).await {
            Err(RuntimeError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Pauses a running container: freezes every process in its cgroup (409
    /// `not_running`, `already_paused`).
    pub async fn pause(&self, reference: &str) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Pause { reply }).await
    }

    /// Unpauses a paused container (409 `not_paused`).
    pub async fn unpause(&self, reference: &str) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Unpause { reply })
            .await
    }

    /// Renames a container (400 for a malformed name, 409 `name_in_use`), running or not.
    pub async fn rename(&self, reference: &str, name: &str) -> Result<(), RuntimeError> {
        let name = name.to_owned();
        self.call(reference, |reply| Command::Rename { name, reply })
            .await
    }

    /// Changes a container's limits and restart policy: written into the live cgroup if
    /// it runs, and stored for its next starts either way. Returns the limits this host
    /// cannot honour exactly.
    pub async fn update(
        &self,
        reference: &str,
        update: ResourceUpdate,
    ) -> Result<Vec<String>, RuntimeError> {
        self.call(reference, |reply| Command::Update { update, reply })
            .await
    }

    /// Runs a cgroup operation off the async workers (freezing waits, a memory write can
    /// make the kernel reclaim).
    pub(super) async fn cgroups_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn crate::cgroups::CgroupManager) -> Result<T, crate::cgroups::CgroupError>
            + Send
            + 'static,
    ) -> Result<T, crate::cgroups::CgroupError> {
        let rt = self.clone();
        tokio::task::spawn_blocking(move || op(rt.inner.cgroups.as_ref()))
            .await
            .expect("cgroup operation panicked")
    }

    /// Writes `resources` back into a running container's group after a failed update;
    /// a failure is logged (the next start applies the row's limits anyway).
    async fn restore_limits(&self, id: &str, resources: &crate::runtime::spec::Resources) {
        let (cid, r) = (id.to_owned(), resources.clone());
        if let Err(e) = self.cgroups_blocking(move |cg| cg.update(&cid, &r)).await {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to restore limits after a failed update");
        }
    }

    /// Removes a container and everything it owns.
    pub async fn remove(&self, reference: &str, force: bool) -> Result<(), RuntimeError> {
        self.call(reference, |reply| Command::Remove { force, reply })
            .await
    }

    /// As [`Runtime::remove`]; with `volumes`, its anonymous volumes go too once it is
    /// gone (Docker's `rm -v`; named volumes always stay).
    pub async fn remove_with_volumes(
        &self,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), RuntimeError> {
        let mounts = self.resolve(reference).await?.container.config.mounts;
        self.remove(reference, force).await?;
        if volumes {
            self.remove_anonymous_volumes(&mounts).await;
        }
        Ok(())
    }

    /// A transition found the store in a state it did not expect: logged, and kept for
    /// `GET /v1/system/check`.
    pub(super) fn anomaly(&self, id: &str, err: &StoreError) {
        tracing::error!(id, error = %crate::error_chain(err), "container state changed under its writer");
        self.inner
            .anomalies
            .lock()
            .expect("anomalies poisoned")
            .push(crate::error_chain(err));
    }

    /// Signals through the shim; false if the app already ended.
    pub(super) async fn signal_running(
        &self,
        id: &str,
        signal: i32,
        deadline: Duration,
    ) -> Result<bool, RuntimeError> {
        use super::shim::ShimError;
        let state_dir = self.inner.paths.state_dir(id);
        match self
            .inner
            .launcher
            .signal(&state_dir, signal, deadline)
            .await
        {
            Ok(()) => Ok(true),
            // The shim is gone or the app has exited: the actor records the exit.
            Err(ShimError::Connect { .. }) | Err(ShimError::Closed) => Ok(false),
            Err(ShimError::Refused(msg)) => {
                tracing::debug!(id, msg, "shim refused a signal (app already exited?)");
                Ok(false)
            }
            Err(source @ ShimError::Timeout { .. }) => {
                let container = match self.inner.store.container(id).await {
                    Ok(Some(rec)) => rec.container.name,
                    _ => id.to_owned(),
                };
                Err(RuntimeError::ShimUnresponsive { container, source })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a container's cgroup off the async workers (removal kills what is left
    /// and waits for the group to empty); a failure is logged.
    pub(super) async fn remove_cgroup(&self, id: &str, when: &'static str) {
        let rt = self.clone();
        let cid = id.to_owned();
        match tokio::task::spawn_blocking(move || rt.inner.cgroups.remove(&cid)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(id, when, error = %crate::error_chain(&e), "failed to remove cgroup")
            }
            Err(e) => tracing::error!(id, when, error = %e, "cgroup removal panicked"),
        }
    }

    /// Removes a directory tree off the async workers; a failure is logged.
    pub(super) async fn remove_dir_quietly(&self, dir: std::path::PathBuf) {
        if let Err(e) = super::remove_dir_blocking(dir).await {
            tracing::warn!(error = %crate::error_chain(&e), "failed to remove a directory");
        }
    }

    /// Records how a run ended, frees its cgroup and state dir, and wakes waiters. Only
    /// the container's actor (or the reconcile, before any actor runs) calls this.
    pub(super) async fn record_exit(
        &self,
        id: &str,
        record: Option<ExitRecord>,
    ) -> Result<(), RuntimeError> {
        let Some(rec) = self.inner.store.container(id).await? else {
            return Ok(());
        };
        let name = rec.container.name.clone();
        let oom_reported = self.observe_exit(&rec.container, record.as_ref()).await;
        // Events are sent once the run's cgroup and state dir are gone: whoever acts on
        // `die` finds the container whole and idle.
        let mut events: Vec<(&'static str, Vec<(&'static str, String)>)> = Vec::new();
        // What waiters are told (the row may be gone by the time they look).
        let mut outcome = None;
        let written = match record {
            Some(exit) => {
                let counted = exit
                    .oom_kills
                    .or_else(|| self.inner.cgroups.oom_kill_count(id).ok());
                let oom_killed = counted.unwrap_or(0) > 0;
                let finished_at = Utc
                    .timestamp_millis_opt(exit.finished_at_ms as i64)
                    .single()
                    .unwrap_or_else(Utc::now);
                let update = ExitUpdate {
                    exit_code: exit.exit_code,
                    signal: exit.signal,
                    oom_killed,
                    finished_at,
                };
                let written = self.inner.store.set_exited(id, &update).await;
                if written.is_ok() {
                    crate::fault::crash_point("exit.after_record");
                    outcome = Some(boxd_types::WaitResponse {
                        exit_code: exit.exit_code,
                        oom_killed,
                    });
                    if oom_killed && !oom_reported {
                        events.push(("oom", vec![("name", name.clone())]));
                    }
                    let mut attrs = vec![("name", name), ("exit_code", exit.exit_code.to_string())];
                    if let Some(sig) = exit.signal {
                        attrs.push(("signal", sig.to_string()));
                    }
                    if oom_killed {
                        attrs.push(("oom_killed", "true".to_owned()));
                    }
                    events.push(("die", attrs));
                }
                written
            }
            None => {
                let why = "its shim ended without an exit record (killed, or the host rebooted)";
                let written = self
                    .inner
                    .store
                    .set_dead(id, why, &[ContainerState::Running, ContainerState::Created])
                    .await;
                if written.is_ok() {
                    outcome = Some(boxd_types::WaitResponse {
                        exit_code: -1,
                        oom_killed: false,
                    });
                    events.push(("die", vec![("name", name), ("error", why.to_owned())]));
                }
                written
            }
        };
        if let Err(StoreError::UnexpectedState { .. }) = &written {
            self.anomaly(id, written.as_ref().unwrap_err());
        } else {
            written?;
        }
        self.remove_cgroup(id, "after exit").await;
        // The app is gone with its cgroup: its address and ports are free again.
        self.inner.network.detach(id).await;
        self.remove_dir_quietly(self.inner.paths.state_dir(id))
            .await;
        for (action, attrs) in events {
            self.inner
                .events
                .emit("container", action, id, &attrs)
                .await;
        }
        self.notify_exit(id, outcome);
        Ok(())
    }

    /// Sets up and launches one run of `c`: state dir, bundle, cgroup, shim. Returns the
    /// shim's and the app's pids.
    async fn launch_run(
        &self,
        c: &Container,
        state_dir: &Path,
    ) -> Result<(i32, i32), RuntimeError> {
        let id = &c.id;
        // A previous run's state is history once its exit is in the row.
        super::remove_dir_blocking(state_dir.to_owned()).await?;
        std::fs::create_dir_all(state_dir).map_err(RuntimeError::io("create", state_dir))?;
        let lowers = self.image_lowers(&c.image_id).await?;
        let user: ResolvedUser = users::resolve_layers(&lowers, &c.config.user)?;
        let peer_pid = match &c.config.network.mode {
            crate::network::NetworkMode::Container { id: peer } => self
                .inner
                .store
                .container(peer)
                .await?
                .filter(|r| r.container.state == ContainerState::Running)
                .and_then(|r| r.container.pid),
            _ => None,
        };
        let netns = self
            .inner
            .network
            .attach(
                id,
                &c.config.network,
                peer_pid,
                (
                    c.resources.network_ingress_bps,
                    c.resources.network_egress_bps,
                ),
            )
            .await?;
        // Volume mounts become binds of their volumes' data (mounted and filled first).
        let config = self.config_for_run(c, &lowers).await?;
        let mut spec = bundle::build_spec(&config, &user, &netns)?;
        let files = self
            .inner
            .network
            .run_files(
                id,
                &c.config.network,
                &c.config.hostname,
                &c.name,
                state_dir,
            )
            .await?;
        bundle::add_file_mounts(&mut spec, &config, &files)?;
        bundle::write_bundle(state_dir, &spec)?;

        let cgroup = self.inner.cgroups.create(id, &c.resources)?;
        crate::fault::crash_point("start.after_cgroup");
        self.arm_observers(c).await;
        for w in &cgroup.warnings {
            tracing::warn!(id, warning = %w, "resource limit not applied exactly");
        }
        let dir = self.inner.paths.container_dir(id);
        // Made at create; made again here in case a crash came between the row and the
        // dirs (both are idempotent).
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(RuntimeError::io("create", &dir))?;
        }
        userns::chown_upper(&dir.join("upper"), c.config.userns.as_ref())?;
        let mut shim_config = ShimConfig {
            id: id.clone(),
            bundle: state_dir.to_owned(),
            state_dir: state_dir.to_owned(),
            log_path: self.inner.paths.log_path(id),
            rootfs: disk::writable_layer(&dir, lowers, c.resources.disk_bytes).await?,
            cgroup_join: cgroup.join_files,
            oom_counter: cgroup.oom_counter,
            log_rotation: self.inner.info.log_rotation,
            seccomp_bpf: None,
            protocol: boxd_shim::protocol::PROTOCOL_VERSION,
        };
        if let Some(bpf) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|s| self.inner.filters.get(s))
        {
            let path = state_dir.join(files::SECCOMP_BPF);
            std::fs::write(&path, bpf.as_slice()).map_err(RuntimeError::io("write", &path))?;
            shim_config.seccomp_bpf = Some(path);
        }
        let config_path = state_dir.join(files::SHIM_CONFIG);
        let json = serde_json::to_vec_pretty(&shim_config).expect("shim config serialises");
        std::fs::write(&config_path, json).map_err(RuntimeError::io("write", &config_path))?;
        attach::write_stdio_config(state_dir, &c.config)?;

        match self.inner.launcher.launch(&config_path).await? {
            StartReport::Started { shim_pid, pid } => {
                crate::fault::crash_point("start.after_shim");
                Ok((shim_pid, pid))
            }
            StartReport::Failed { stage, message } => {
                // What the user asked for (a command, a working dir, a user) is a 400;
                // anything else is ours.
                if matches!(stage.as_str(), "exec" | "cwd" | "user") {
                    Err(RuntimeError::StartRefused { stage, message })
                } else {
                    Err(RuntimeError::StartFailed { stage, message })
                }
            }
        }
    }
}
