//! Unit tests of the lifecycle state machine, without root: a fake launcher keeps the
//! "containers" in memory (each run is a channel the test ends), fake cgroups record
//! what was made, and the store is a fresh SQLite database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime::spec::{ContainerSpec, ContainerState};
use boxd_shim::protocol::{files, ExitRecord, ShimConfig, StartReport};
use boxd_types::Event;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch, Semaphore};

use super::launcher::{BoxFuture, Launcher};
use super::shim::{ShimError, ShimLauncher};
use super::{HostInfo, Runtime, RuntimeError};
use crate::cgroups::fake::FakeCgroups;
use crate::cgroups::{CgroupManager, CgroupVersion};
use crate::events::EventBus;
use crate::image::ImageStore;
use crate::store::{Store, MIGRATOR};

const IMAGE_ID: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// One run of a fake container: `exit` is `None` while it runs.
struct Run {
    exit: watch::Sender<Option<Option<ExitRecord>>>,
}

#[derive(Default)]
struct FakeState {
    runs: HashMap<PathBuf, Run>,
    launches: u32,
    /// Signals that the app ignores (a trap).
    ignored: Vec<i32>,
    /// The shim answers nothing (SIGSTOPped).
    hung: bool,
}

/// A launcher whose runs live in memory.
#[derive(Default)]
struct FakeLauncher {
    state: Mutex<FakeState>,
    /// When set, each launch takes a permit first (the test holds a start midway).
    gate: Option<Arc<Semaphore>>,
    /// Notified when a launch begins.
    entered: tokio::sync::Notify,
}

impl FakeLauncher {
    fn gated() -> (Arc<Self>, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let fake = FakeLauncher {
            gate: Some(gate.clone()),
            ..Default::default()
        };
        (Arc::new(fake), gate)
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// The app of the run in `state_dir` exits with `code`.
    fn exit(&self, state_dir: &Path, code: i32) {
        let st = self.st();
        let run = st.runs.get(state_dir).expect("no such run");
        run.exit.send_replace(Some(Some(record(code, None))));
    }

    fn live_runs(&self) -> usize {
        self.st()
            .runs
            .values()
            .filter(|r| r.exit.borrow().is_none())
            .count()
    }

    fn launches(&self) -> u32 {
        self.st().launches
    }

    /// A run that a previous daemon started: alive, with its pid files written.
    fn adopt(&self, state_dir: &Path) {
        std::fs::create_dir_all(state_dir).unwrap();
        std::fs::write(state_dir.join(files::CONTAINER_PID), "4242").unwrap();
        std::fs::write(state_dir.join(files::SHIM_PID), "4241").unwrap();
        let (exit, _) = watch::channel(None);
        self.st().runs.insert(state_dir.to_owned(), Run { exit });
    }
}

fn record(code: i32, signal: Option<i32>) -> ExitRecord {
    let now = chrono::Utc::now().timestamp_millis() as u64;
    ExitRecord {
        pid: 4242,
        exit_code: code,
        signal,
        oom_kills: Some(0),
        started_at_ms: now,
        finished_at_ms: now,
    }
}

impl Launcher for FakeLauncher {
    fn launch<'a>(&'a self, config: &'a Path) -> BoxFuture<'a, Result<StartReport, ShimError>> {
        Box::pin(async move {
            self.entered.notify_one();
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            let cfg: ShimConfig = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
            let mut st = self.st();
            st.launches += 1;
            let (exit, _) = watch::channel(None);
            st.runs.insert(cfg.state_dir.clone(), Run { exit });
            let n = st.launches as i32;
            Ok(StartReport::Started {
                shim_pid: 1000 + n,
                pid: 2000 + n,
            })
        })
    }

    fn signal<'a>(
        &'a self,
        state_dir: &'a Path,
        signal: i32,
        deadline: Duration,
    ) -> BoxFuture<'a, Result<(), ShimError>> {
        Box::pin(async move {
            let st = self.st();
            if st.hung {
                return Err(ShimError::Timeout {
                    op: "kill",
                    after: deadline,
                });
            }
            let Some(run) = st.runs.get(state_dir) else {
                return Err(ShimError::Closed);
            };
            if run.exit.borrow().is_some() {
                return Err(ShimError::Closed);
            }
            if !st.ignored.contains(&signal) {
                run.exit
                    .send_replace(Some(Some(record(128 + signal, Some(signal)))));
            }
            Ok(())
        })
    }

    fn watch_exit(&self, state_dir: PathBuf) -> BoxFuture<'static, Option<ExitRecord>> {
        let rx = self.st().runs.get(&state_dir).map(|r| r.exit.subscribe());
        Box::pin(async move {
            let mut rx = rx?;
            let seen = rx.wait_for(|e| e.is_some()).await.ok()?.clone();
            seen.flatten()
        })
    }

    fn shim_alive(&self, state_dir: &Path) -> bool {
        self.st()
            .runs
            .get(state_dir)
            .is_some_and(|r| r.exit.borrow().is_none())
    }

    fn kill_shim(&self, state_dir: &Path) -> bool {
        match self.st().runs.get(state_dir) {
            Some(run) if run.exit.borrow().is_none() => {
                // The shim dies without writing an exit record.
                run.exit.send_replace(Some(None));
                true
            }
            _ => false,
        }
    }
}

/// Waits for the event `action` of container `id` (the actor's own signal that a
/// transition finished).
async fn next_event(events: &mut broadcast::Receiver<Event>, id: &str, action: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.unwrap();
            if e.id == id && e.action == action {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {action} event for {id}"))
}

struct Env {
    rt: Runtime,
    fake: Arc<FakeLauncher>,
    cgroups: Arc<FakeCgroups>,
    events: broadcast::Receiver<Event>,
    _dir: tempfile::TempDir,
}

async fn runtime_in(
    pool: SqlitePool,
    dir: &Path,
    fake: Arc<FakeLauncher>,
) -> (Runtime, broadcast::Receiver<Event>) {
    let cgroups = Arc::new(FakeCgroups::new(CgroupVersion::V1));
    runtime_with(pool, dir, fake, cgroups).await
}

async fn runtime_with(
    pool: SqlitePool,
    dir: &Path,
    fake: Arc<FakeLauncher>,
    cgroups: Arc<FakeCgroups>,
) -> (Runtime, broadcast::Receiver<Event>) {
    // The image's one layer: an empty root (the user is root; nothing is read).
    let layer = dir
        .join("root/images/layers")
        .join(IMAGE_ID.trim_start_matches("sha256:"));
    std::fs::create_dir_all(layer.join("rootfs")).unwrap();
    let store = Store::from_pool(pool).await.unwrap();
    let bus = EventBus::new(store.clone());
    let events = bus.subscribe();
    let info = HostInfo {
        kernel: "test".into(),
        root_dir: dir.join("root"),
        state_dir: dir.join("state"),
        log_rotation: None,
        userns_range: super::userns::UsernsRange::DEFAULT,
        network: crate::network::Settings {
            default_mode: "none".into(),
            ..Default::default()
        },
    };
    let rt = Runtime::with_launcher(
        store,
        bus,
        ImageStore::new(dir.join("root/images")).unwrap(),
        Box::new(cgroups),
        ShimLauncher::new("/nonexistent/boxd-shim".into()),
        fake,
        info,
    )
    .await
    .unwrap();
    (rt, events)
}

async fn env_with(pool: SqlitePool, fake: Arc<FakeLauncher>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::from_pool(pool.clone()).await.unwrap();
    store
        .insert_image(IMAGE_ID, 1, chrono::Utc::now(), "{}")
        .await
        .unwrap();
    store.tag_image("test:latest", IMAGE_ID).await.unwrap();
    let cgroups = Arc::new(FakeCgroups::new(CgroupVersion::V1));
    let (rt, events) = runtime_with(pool, dir.path(), fake.clone(), cgroups.clone()).await;
    Env {
        rt,
        fake,
        cgroups,
        events,
        _dir: dir,
    }
}

impl Env {
    async fn create(&self, policy: Option<&str>) -> String {
        self.rt
            .create(ContainerSpec {
                image: "test".into(),
                cmd: Some(vec!["app".into()]),
                restart_policy: policy.map_or(Default::default(), |p| p.parse().unwrap()),
                ..Default::default()
            })
            .await
            .unwrap()
            .id
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.rt.inner.paths.state_dir(id)
    }

    async fn state(&self, id: &str) -> ContainerState {
        self.rt.container(id).await.unwrap().state
    }

    /// Waits for the event `action` of container `id` (the actor's own signal that a
    /// transition finished).
    async fn event(&mut self, id: &str, action: &str) -> Event {
        next_event(&mut self.events, id, action).await
    }

    fn cgroup_exists(&self, id: &str) -> bool {
        self.rt.inner.cgroups.exists(id)
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn start_exit_and_delete(pool: SqlitePool) {
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    assert_eq!(env.state(&id).await, ContainerState::Created);
    env.rt.start(&id).await.unwrap();
    assert_eq!(env.state(&id).await, ContainerState::Running);
    assert!(env.cgroup_exists(&id));
    let err = env.rt.start(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyRunning(_)), "{err:?}");

    env.fake.exit(&env.state_dir(&id), 3);
    env.event(&id, "die").await;
    let c = env.rt.container(&id).await.unwrap();
    assert_eq!((c.state, c.exit_code), (ContainerState::Exited, Some(3)));
    assert!(!env.cgroup_exists(&id), "the cgroup is freed at exit");
    assert_eq!(env.rt.wait(&id).await.unwrap().exit_code, 3);

    env.rt.remove(&id, false).await.unwrap();
    assert!(matches!(
        env.rt.container(&id).await.unwrap_err(),
        RuntimeError::NotFound { .. }
    ));
    assert!(env.rt.system_check().await.unwrap().ok);
}

/// A client that goes away while its start runs (hyper drops the handler's future)
/// must not leave an untracked app: the start completes, the row says running, and the
/// exit is recorded.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_start_whose_client_left_is_tracked(pool: SqlitePool) {
    let (fake, gate) = FakeLauncher::gated();
    let mut env = env_with(pool, fake).await;
    let id = env.create(None).await;
    let rt = env.rt.clone();
    let cid = id.clone();
    let request = tokio::spawn(async move { rt.start(&cid).await });
    env.fake.entered.notified().await;
    // The client hangs up midway through the launch.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    gate.add_permits(1);
    env.event(&id, "start").await;
    assert_eq!(env.state(&id).await, ContainerState::Running);
    assert_eq!(env.fake.live_runs(), 1);
    assert!(env.cgroup_exists(&id));

    env.fake.exit(&env.state_dir(&id), 0);
    env.event(&id, "die").await;
    assert_eq!(env.state(&id).await, ContainerState::Exited);
    assert!(!env.cgroup_exists(&id));
    assert!(env.rt.system_check().await.unwrap().ok);
}

/// A supervisor that starts the container again on its `die` event lands right after
/// the exit: the new run must not be torn down by the old run's exit path.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_start_right_after_an_exit_keeps_the_new_run(pool: SqlitePool) {
    let env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    env.rt.start(&id).await.unwrap();
    let dir = env.state_dir(&id);
    for round in 0..20 {
        env.fake.exit(&dir, 1);
        // Whichever the actor sees first, the start is either refused (still running)
        // or makes a new run that stays up.
        match env.rt.start(&id).await {
            Ok(()) => {}
            Err(RuntimeError::AlreadyRunning(_)) => {
                env.rt.wait(&id).await.unwrap();
                env.rt.start(&id).await.unwrap();
            }
            Err(e) => panic!("round {round}: {e:?}"),
        }
        let c = env.rt.container(&id).await.unwrap();
        assert_eq!(c.state, ContainerState::Running, "round {round}");
        assert!(env.fake.shim_alive(&dir), "round {round}: new run killed");
        assert!(
            env.cgroup_exists(&id),
            "round {round}: new run's cgroup removed"
        );
        assert!(
            dir.join("config.json").exists(),
            "round {round}: state dir removed"
        );
    }
    assert!(env.rt.system_check().await.unwrap().ok);
}

/// A delete that arrives while the start is still launching waits its turn, then
/// removes the started container whole.
#[sqlx::test(migrator = "MIGRATOR")]
async fn delete_during_start(pool: SqlitePool) {
    let (fake, gate) = FakeLauncher::gated();
    let mut env = env_with(pool, fake).await;
    let id = env.create(None).await;
    let (rt1, rt2) = (env.rt.clone(), env.rt.clone());
    let (c1, c2) = (id.clone(), id.clone());
    let start = tokio::spawn(async move { rt1.start(&c1).await });
    env.fake.entered.notified().await;
    let delete = tokio::spawn(async move { rt2.remove(&c2, true).await });
    gate.add_permits(1);
    start.await.unwrap().unwrap();
    delete.await.unwrap().unwrap();
    env.event(&id, "destroy").await;
    assert_eq!(env.fake.live_runs(), 0, "the started app was killed");
    assert!(!env.cgroup_exists(&id));
    assert!(!env.state_dir(&id).exists());
    assert!(env.rt.system_check().await.unwrap().ok);
}

/// `always` restarts after an exit; a user's stop during the back-off cancels it, and
/// a stop while the app ignores SIGTERM escalates to SIGKILL.
#[sqlx::test(migrator = "MIGRATOR")]
async fn restart_policy_and_a_stop_in_flight(pool: SqlitePool) {
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(Some("always")).await;
    env.rt.start(&id).await.unwrap();
    let dir = env.state_dir(&id);

    env.fake.exit(&dir, 1);
    env.event(&id, "restart").await;
    assert_eq!(env.state(&id).await, ContainerState::Running);
    assert_eq!(env.fake.launches(), 2);

    // The app ignores SIGTERM: the stop sends SIGKILL after its timeout, and the exit
    // it causes is not restarted.
    env.fake.st().ignored.push(libc::SIGTERM);
    env.rt.stop(&id, Duration::from_millis(100)).await.unwrap();
    let c = env.rt.container(&id).await.unwrap();
    assert_eq!((c.state, c.exit_signal), (ContainerState::Exited, Some(9)));
    // Any command after the stop is handled after its exit: no restart is pending.
    let err = env.rt.kill(&id, libc::SIGTERM).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotRunning(_)), "{err:?}");
    assert_eq!(c.next_restart_at, None);
    assert_eq!(env.fake.launches(), 2);

    // A crash, then the user's stop during the back-off: the restart is cancelled.
    env.rt.start(&id).await.unwrap();
    env.fake.exit(&dir, 1);
    env.event(&id, "die").await;
    env.rt.stop(&id, Duration::from_secs(1)).await.unwrap();
    let c = env.rt.container(&id).await.unwrap();
    assert_eq!(c.next_restart_at, None, "the pending restart is cancelled");
    tokio::time::sleep(super::restart::backoff_delay(1) * 3).await;
    assert_eq!(env.state(&id).await, ContainerState::Exited);
    assert_eq!(env.fake.launches(), 3, "no restart after the user's stop");
}

/// A kill during a long stop goes through at once (the stop is a deadline, not a
/// blocked task), and both answer once the app exited.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_kill_during_a_long_stop(pool: SqlitePool) {
    let env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    env.rt.start(&id).await.unwrap();
    env.fake.st().ignored.push(libc::SIGTERM);
    let rt = env.rt.clone();
    let cid = id.clone();
    let stop = tokio::spawn(async move { rt.stop(&cid, Duration::from_secs(3600)).await });
    // The kill is queued behind the stop's command, and handled while the stop waits.
    let killed = tokio::time::timeout(Duration::from_secs(10), env.rt.kill(&id, libc::SIGKILL));
    killed.await.expect("kill waited for the stop").unwrap();
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("the stop did not end with the exit")
        .unwrap()
        .unwrap();
    assert_eq!(env.state(&id).await, ContainerState::Exited);
}

/// A shim that does not answer: a stop fails at once with an error (not a hang), and a
/// forced delete still removes everything, killing the shim itself.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unresponsive_shim(pool: SqlitePool) {
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    env.rt.start(&id).await.unwrap();
    env.fake.st().hung = true;
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        env.rt.stop(&id, Duration::from_secs(1)),
    )
    .await
    .expect("stop hung")
    .unwrap_err();
    assert!(
        matches!(err, RuntimeError::ShimUnresponsive { .. }),
        "{err:?}"
    );
    assert_eq!(env.state(&id).await, ContainerState::Running);

    tokio::time::timeout(Duration::from_secs(20), env.rt.remove(&id, true))
        .await
        .expect("forced delete hung")
        .unwrap();
    env.event(&id, "destroy").await;
    assert_eq!(env.fake.live_runs(), 0, "the shim was killed");
    assert!(!env.cgroup_exists(&id));
    assert!(env.rt.system_check().await.unwrap().ok);
}

/// A daemon that crashed between launching a shim and recording the start: the next
/// daemon's reconcile adopts the live shim, the actor watches it, and its exit is
/// recorded.
#[sqlx::test(migrator = "MIGRATOR")]
async fn reconcile_adopts_an_interrupted_start(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeLauncher::default());
    let id = {
        let store = Store::from_pool(pool.clone()).await.unwrap();
        store
            .insert_image(IMAGE_ID, 1, chrono::Utc::now(), "{}")
            .await
            .unwrap();
        store.tag_image("test:latest", IMAGE_ID).await.unwrap();
        let (rt, _) = runtime_in(pool.clone(), dir.path(), fake.clone()).await;
        let id = rt
            .create(ContainerSpec {
                image: "test".into(),
                cmd: Some(vec!["app".into()]),
                ..Default::default()
            })
            .await
            .unwrap()
            .id;
        // The shim of a start whose last step (the row) did not land.
        fake.adopt(&rt.inner.paths.state_dir(&id));
        id
    };
    let (rt, mut events) = runtime_in(pool, dir.path(), fake.clone()).await;
    let c = rt.container(&id).await.unwrap();
    assert_eq!(c.state, ContainerState::Running, "adopted");
    assert_eq!(c.pid, Some(4242));
    fake.exit(&rt.inner.paths.state_dir(&id), 7);
    next_event(&mut events, &id, "die").await;
    let c = rt.container(&id).await.unwrap();
    assert_eq!((c.state, c.exit_code), (ContainerState::Exited, Some(7)));
}

/// A transition that finds the row in a state its writer did not expect (a second
/// writer behind the engine's back) writes nothing, and `system/check` reports it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unexpected_state_is_refused_and_reported(pool: SqlitePool) {
    let env = env_with(pool.clone(), Arc::default()).await;
    let id = env.create(None).await;
    // Someone else marks it running.
    sqlx::query("UPDATE containers SET state = 'running' WHERE id = ?")
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    let err = env.rt.start(&id).await.unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Store(crate::store::StoreError::UnexpectedState { .. })
        ),
        "{err:?}"
    );
    let check = env.rt.system_check().await.unwrap();
    assert!(!check.ok);
    assert!(
        check
            .problems
            .iter()
            .any(|p| p.contains("unexpected state") && p.contains(&id)),
        "{:?}",
        check.problems
    );
}

// ----- pause, rename, update ---------------------------------------------------------

#[sqlx::test(migrator = "MIGRATOR")]
async fn pause_and_unpause_freeze_the_cgroup_and_say_so(pool: SqlitePool) {
    use crate::cgroups::fake::FakeCall;
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    let err = env.rt.pause(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotRunning(_)), "{err:?}");
    env.rt.start(&id).await.unwrap();
    let err = env.rt.unpause(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NotPaused(_)), "{err:?}");

    env.rt.pause(&id).await.unwrap();
    env.event(&id, "pause").await;
    let c = env.rt.container(&id).await.unwrap();
    assert_eq!((c.state, c.paused), (ContainerState::Running, true));
    assert!(env.cgroups.frozen(&id).unwrap());
    let err = env.rt.pause(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::AlreadyPaused(_)), "{err:?}");
    let err = env
        .rt
        .exec(
            &id,
            serde_json::from_value(serde_json::json!({"cmd": ["true"]})).unwrap(),
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RuntimeError::ContainerPaused(_)), "{err:?}");

    env.rt.unpause(&id).await.unwrap();
    env.event(&id, "unpause").await;
    assert!(!env.rt.container(&id).await.unwrap().paused);
    assert!(!env.cgroups.frozen(&id).unwrap());

    // A freeze that does not take leaves the container running, not paused.
    env.cgroups.fail_freeze(&id);
    assert!(env.rt.pause(&id).await.is_err());
    assert!(!env.rt.container(&id).await.unwrap().paused);
    assert!(env
        .cgroups
        .calls()
        .iter()
        .any(|c| matches!(c, FakeCall::Freeze { .. })));
    assert!(env.rt.system_check().await.unwrap().ok);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_paused_container_is_thawed_by_stop_but_not_by_a_reload_signal(pool: SqlitePool) {
    use crate::cgroups::fake::FakeCall;
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    env.rt.start(&id).await.unwrap();
    env.rt.pause(&id).await.unwrap();

    // SIGHUP waits for the unpause, as with Docker.
    env.fake.st().ignored.push(libc::SIGHUP);
    env.rt.kill(&id, libc::SIGHUP).await.unwrap();
    assert!(env.rt.container(&id).await.unwrap().paused);

    // A stop sends its signal, then thaws so the app can act on it.
    env.rt.stop(&id, Duration::from_secs(5)).await.unwrap();
    let calls = env.cgroups.calls();
    assert!(
        calls.contains(&FakeCall::Thaw { id: id.clone() }),
        "{calls:?}"
    );
    let c = env.rt.container(&id).await.unwrap();
    assert_eq!((c.state, c.paused), (ContainerState::Exited, false));
    env.event(&id, "die").await;

    // A forced delete of a paused container goes through too.
    env.rt.start(&id).await.unwrap();
    env.rt.pause(&id).await.unwrap();
    env.rt.remove(&id, true).await.unwrap();
    assert!(!env.cgroup_exists(&id));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rename_checks_the_name_and_takes_effect_at_once(pool: SqlitePool) {
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    let other = env.create(None).await;
    let other_name = env.rt.container(&other).await.unwrap().name;
    let old = env.rt.container(&id).await.unwrap().name;
    env.rt.start(&id).await.unwrap();

    env.rt.rename(&old, "front").await.unwrap();
    let e = env.event(&id, "rename").await;
    assert_eq!(e.attributes["name"], "front");
    assert_eq!(e.attributes["oldName"], old);
    assert_eq!(env.rt.container("front").await.unwrap().id, id);
    assert!(matches!(
        env.rt.container(&old).await.unwrap_err(),
        RuntimeError::NotFound { .. }
    ));
    let err = env.rt.rename("front", &other_name).await.unwrap_err();
    assert!(matches!(err, RuntimeError::NameInUse(_)), "{err:?}");
    for bad in ["-x", "a/b", "front"] {
        let err = env.rt.rename("front", bad).await.unwrap_err();
        assert!(
            matches!(err, RuntimeError::Invalid { .. }),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(env.state(&id).await, ContainerState::Running);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn update_writes_the_live_cgroup_and_the_row(pool: SqlitePool) {
    use crate::cgroups::fake::FakeCall;
    use crate::runtime::spec::ResourceUpdate;
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;

    // Stopped: stored only.
    let u = ResourceUpdate {
        pids_max: Some(10),
        ..Default::default()
    };
    env.rt.update(&id, u).await.unwrap();
    env.event(&id, "update").await;
    assert_eq!(
        env.rt.container(&id).await.unwrap().resources.pids_max,
        Some(10)
    );
    assert!(!env
        .cgroups
        .calls()
        .iter()
        .any(|c| matches!(c, FakeCall::Update { .. })));

    // Running: written into the group, merged with what was there.
    env.rt.start(&id).await.unwrap();
    let u = ResourceUpdate {
        memory_bytes: Some(64 << 20),
        ..Default::default()
    };
    env.rt.update(&id, u).await.unwrap();
    let live = env.cgroups.groups()[&id].clone();
    assert_eq!(
        (live.memory_bytes, live.pids_max),
        (Some(64 << 20), Some(10))
    );
    assert_eq!(env.rt.container(&id).await.unwrap().resources, live);

    // Invalid values are a 400 before anything is written.
    let u = ResourceUpdate {
        memory_bytes: Some(1024),
        ..Default::default()
    };
    let err = env.rt.update(&id, u).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Invalid { .. }), "{err:?}");

    // The kernel refuses (EBUSY): nothing changes, the row included.
    env.cgroups.busy_update(&id);
    let u = ResourceUpdate {
        memory_bytes: Some(8 << 20),
        ..Default::default()
    };
    let err = env.rt.update(&id, u).await.unwrap_err();
    assert!(
        matches!(err, RuntimeError::LimitBelowUsage { .. }),
        "{err:?}"
    );
    assert_eq!(
        env.rt.container(&id).await.unwrap().resources.memory_bytes,
        Some(64 << 20)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_new_restart_policy_applies_to_the_next_exit(pool: SqlitePool) {
    use crate::runtime::spec::ResourceUpdate;
    let mut env = env_with(pool, Arc::default()).await;
    let id = env.create(None).await;
    env.rt.start(&id).await.unwrap();
    let u = ResourceUpdate {
        restart_policy: Some("on-failure".parse().unwrap()),
        ..Default::default()
    };
    env.rt.update(&id, u).await.unwrap();
    env.fake.exit(&env.state_dir(&id), 1);
    env.event(&id, "die").await;
    env.event(&id, "restart").await;
    assert_eq!(env.state(&id).await, ContainerState::Running);
    assert_eq!(env.rt.container(&id).await.unwrap().restart_count, 1);
}
