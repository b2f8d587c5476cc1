//! Container lifecycle: create, start, stop, kill, wait, delete, and image bookkeeping.
//!
//! Ordering rules that make every step survivable by `kill -9` of the daemon (the
//! next start's `reconcile` finishes or undoes what was half-done):
//!
//! - create: the row is inserted first, then the container dir is made;
//! - start: cgroup, bundle and `shim.json` are written, then the shim runs, then the row
//!   says `running`. A crash before the row update leaves a live shim in the state dir,
//!   which reconcile adopts;
//! - exit: the shim writes `exit.json` before it answers; the daemon records the exit in
//!   the row, and only then removes the cgroup and the state dir;
//! - delete: the container is killed and its exit recorded, then cgroup, state dir and
//!   container dir are removed, and the row goes last.
//!
//! Exits are learned from the shim (its control socket, then `exit.json`), never by
//! being the app's parent. One monitor task per running container waits for it.

pub mod attach;
pub mod bundle;
mod check;
pub mod disk;
mod error;
pub mod exec;
pub mod images;
pub mod logs;
pub mod names;
mod observe;
mod reconcile;
pub mod restart;
pub mod seccomp;
pub mod security;
pub mod shim;
pub mod userns;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxd_client::models::{
    Container, ContainerConfig, ContainerState, CreateContainer, CreateResponse, Image, Info,
    Version, WaitResponse,
};
use boxd_shim::protocol::{files, ExitRecord, ShimConfig, StartReport};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use futures_util::Stream;
use tokio::sync::watch;

use crate::cgroups::{CgroupManager, CgroupVersion};
use crate::events::EventBus;
use crate::image::users::{self, ResolvedUser};
use crate::image::ImageStore;
use crate::store::{ContainerRecord, ExitUpdate, Resolved, Store};

pub use error::RuntimeError;
pub use observe::{DEFAULT_EVENTS_MAX, DEFAULT_EVENTS_MAX_AGE, DEFAULT_MEMORY_WARNING_PERCENT};

/// The default `PATH` when neither the image nor the request sets one (Docker's).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long a forced delete or a stop waits for the exit after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Where things live on disk.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<root>/containers`: per-container upper/work dirs and logs.
    pub containers: PathBuf,
    /// `<state_dir>/containers`: per-container runtime state (tmpfs).
    pub state: PathBuf,
}

impl Paths {
    /// The container's persistent dir.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers.join(id)
    }
    /// The container's log file.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("container.log")
    }
    /// The container's runtime state dir (also its OCI bundle).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.state.join(id)
    }
}

/// The runtime; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    events: EventBus,
    images: ImageStore,
    cgroups: Box<dyn CgroupManager>,
    launcher: shim::ShimLauncher,
    paths: Paths,
    info: HostInfo,
    /// Per container: a counter bumped on every recorded exit (waiters watch it).
    exits: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Per container: serialises create/start/delete of one container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Memory-event watchers of running containers (see `observe`).
    observers: observe::Observers,
    /// Exec'd processes of this daemon's run (see `exec`).
    execs: exec::ExecRegistry,
    /// Per container: quick exits in a row, for the restart back-off.
    backoff: Mutex<HashMap<String, u32>>,
    /// What the start-up reconcile did, for `GET /v1/system/check`.
    reconciled: Mutex<Vec<String>>,
    /// Seccomp programs compiled once per profile (see `seccomp::CompiledFilters`).
    filters: seccomp::CompiledFilters,
}

/// Facts about the host, read once.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// Kernel release.
    pub kernel: String,
    /// Root dir.
    pub root_dir: PathBuf,
    /// State dir.
    pub state_dir: PathBuf,
    /// How shims bound container logs; `None`: unbounded.
    pub log_rotation: Option<boxd_shim::protocol::LogRotation>,
    /// Where `userns: "auto"` takes host ids from.
    pub userns_range: userns::UsernsRange,
}

/// Options of `logs`.
pub use logs::LogOptions;

impl Runtime {
    /// Builds the runtime and reconciles what the last run of the daemon left.
    pub async fn new(
        store: Store,
        events: EventBus,
        images: ImageStore,
        cgroups: Box<dyn CgroupManager>,
        shim_bin: PathBuf,
        info: HostInfo,
    ) -> Result<Self, RuntimeError> {
        let paths = Paths {
            containers: info.root_dir.join("containers"),
            state: info.state_dir.join("containers"),
        };
        for dir in [&paths.containers, &paths.state] {
            std::fs::create_dir_all(dir).map_err(RuntimeError::io("create", dir))?;
        }
        let rt = Runtime {
            inner: Arc::new(Inner {
                store,
                events,
                images,
                cgroups,
                launcher: shim::ShimLauncher::new(shim_bin),
                paths,
                info,
                exits: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                observers: Default::default(),
                execs: exec::ExecRegistry::default(),
                backoff: Mutex::new(HashMap::new()),
                reconciled: Mutex::new(Vec::new()),
                filters: Default::default(),
            }),
        };
        rt.reconcile().await?;
        rt.resume_restart_policies().await?;
        Ok(rt)
    }

    /// The store (for the API's event replay).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// `GET /v1/version`.
    pub fn version(&self) -> Version {
        Version {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: "v1".to_owned(),
            cgroup_version: self.cgroup_version().to_owned(),
            kernel: self.inner.info.kernel.clone(),
        }
    }

    fn cgroup_version(&self) -> &'static str {
        match self.inner.cgroups.version() {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info, RuntimeError> {
        let counts = self.inner.store.count_containers().await?;
        let n = |s: &str| counts.get(s).copied().unwrap_or(0);
        let (ncpu, mem_total) = host_resources();
        Ok(Info {
            containers: counts.values().sum(),
            containers_created: n("created"),
            containers_running: n("running"),
            containers_exited: n("exited"),
            containers_dead: n("dead"),
            images: self.inner.store.count_images().await?,
            cgroup_version: self.cgroup_version().to_owned(),
            cgroup_controllers: self.inner.cgroups.controllers(),
            cgroup_parent: self.inner.cgroups.parent().to_owned(),
            kernel: self.inner.info.kernel.clone(),
            root_dir: self.inner.info.root_dir.display().to_string(),
            state_dir: self.inner.info.state_dir.display().to_string(),
            ncpu,
            mem_total,
        })
    }

    // ----- images -------------------------------------------------------------------

    /// Imports a rootfs tarball under `name`.
    pub async fn import_image<S, E>(&self, name: &str, body: S) -> Result<Image, RuntimeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let tag =
            names::normalize_image_name(name).map_err(|r| RuntimeError::invalid("name", r))?;
        // Shared gc lock until the row exists: a failed pull's clean-up (exclusive) must
        // not take this layer for an unowned one.
        let _gc = self.inner.images.gc_read().await;
        let imported = self.inner.images.import(body).await?;
        crate::fault::crash_point("image.after_unpack");
        // The layer is in place before its row: a crash here leaves an unowned dir, which
        // reconcile removes. The row then the tag: an untagged image is still listed.
        self.inner
            .store
            .insert_image(&imported.id, imported.size, Utc::now(), "{}")
            .await?;
        self.inner.store.tag_image(&tag, &imported.id).await?;
        self.inner
            .events
            .emit("image", "import", &imported.id, &[("name", tag.clone())])
            .await;
        self.image_by_id(&imported.id).await
    }

    async fn image_by_id(&self, id: &str) -> Result<Image, RuntimeError> {
        self.inner
            .store
            .image(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "image",
                reference: id.to_owned(),
            })
    }

    /// Every image.
    pub async fn images(&self) -> Result<Vec<Image>, RuntimeError> {
        Ok(self.inner.store.list_images().await?)
    }

    /// Resolves a tag, id or id prefix.
    pub async fn image(&self, reference: &str) -> Result<Image, RuntimeError> {
        let lookup =
            names::normalize_image_name(reference).unwrap_or_else(|_| reference.to_owned());
        let mut found = self.inner.store.resolve_image(&lookup).await?;
        if matches!(found, Resolved::None) && lookup != reference {
            found = self.inner.store.resolve_image(reference).await?;
        }
        match found {
            Resolved::One(img) => Ok(img),
            Resolved::None => Err(RuntimeError::NotFound {
                kind: "image",
                reference: reference.to_owned(),
            }),
            Resolved::Ambiguous => Err(RuntimeError::Ambiguous {
                kind: "image",
                reference: reference.to_owned(),
            }),
        }
    }

    /// Removes an image (409 while a container uses it; see `images.rs` for tags and
    /// `force`).
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<(), RuntimeError> {
        self.remove_image_impl(reference, force).await
    }

    // ----- containers: queries -----------------------------------------------------

    async fn resolve(&self, reference: &str) -> Result<ContainerRecord, RuntimeError> {
        match self.inner.store.resolve_container(reference).await? {
            Resolved::One(c) => Ok(c),
            Resolved::None => Err(RuntimeError::NotFound {
                kind: "container",
                reference: reference.to_owned(),
            }),
            Resolved::Ambiguous => Err(RuntimeError::Ambiguous {
                kind: "container",
                reference: reference.to_owned(),
            }),
        }
    }

    /// Every container (or the running ones).
    pub async fn containers(&self, all: bool) -> Result<Vec<Container>, RuntimeError> {
        Ok(self
            .inner
            .store
            .list_containers(all)
            .await?
            .into_iter()
            .map(|r| r.container)
            .collect())
    }

    /// One container by id, prefix or name.
    pub async fn container(&self, reference: &str) -> Result<Container, RuntimeError> {
        let mut c = self.resolve(reference).await?.container;
        self.fill_observed(&mut c).await?;
        Ok(c)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().expect("locks poisoned");
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn exit_watch(&self, id: &str) -> watch::Receiver<u64> {
        let mut exits = self.inner.exits.lock().expect("exits poisoned");
        exits
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn notify_exit(&self, id: &str) {
        let exits = self.inner.exits.lock().expect("exits poisoned");
        if let Some(tx) = exits.get(id) {
            tx.send_modify(|n| *n += 1);
        }
    }

    // ----- create -------------------------------------------------------------------

    /// Creates a container (state `created`).
    pub async fn create(&self, req: CreateContainer) -> Result<CreateResponse, RuntimeError> {
        let name = match &req.name {
            Some(n) => {
                names::validate_container_name(n).map_err(|r| RuntimeError::invalid("name", r))?;
                n.clone()
            }
            None => names::generate_container_name(),
        };
        crate::cgroups::validate(&req.resources)
            .map_err(|e| RuntimeError::invalid("resources", e.to_string()))?;
        observe::check_create(&req)?;
        let restart_policy: restart::RestartPolicy = req
            .restart_policy
            .as_deref()
            .unwrap_or("no")
            .parse()
            .map_err(|r| RuntimeError::invalid("restart_policy", r))?;
        let image = self.image(&req.image).await?;
        let mut config = self.container_config(&req, &image, &name)?;
        let range = self.inner.info.userns_range;
        let userns = userns::resolve(req.userns.as_ref(), &range)?;
        if let userns::Userns::Explicit(maps) = &userns {
            config.userns = Some(maps.clone());
        }
        // Resolving the user now turns a typo into a 400 at create, not a failed start.
        users::resolve_layers(&self.image_lowers(&image.id).await?, &config.user)?;

        let id = names::generate_container_id();
        let container = Container {
            id: id.clone(),
            name: name.clone(),
            image: req.image.clone(),
            image_id: image.id.clone(),
            state: ContainerState::Created,
            pid: None,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            config,
            resources: req.resources.clone(),
            restart_policy: restart_policy.to_string(),
            restart_count: 0,
            next_restart_at: None,
            observed: Default::default(),
        };
        let lock = self.lock_for(&id);
        let _guard = lock.lock().await;
        let inserted = match userns {
            userns::Userns::Auto => {
                let mut config = container.config.clone();
                let slot = self
                    .inner
                    .store
                    .insert_container_with_userns_slot(&container, range.slots, |slot| {
                        config.userns = Some(range.slot_config(slot));
                        config.clone()
                    })
                    .await;
                slot.map(|slot| Some(range.slot_config(slot)))
            }
            _ => self
                .inner
                .store
                .insert_container(&container)
                .await
                .map(|()| container.config.userns.clone()),
        };
        let maps = inserted.map_err(|e| match e {
            crate::store::StoreError::NameInUse(n) => RuntimeError::NameInUse(n),
            other => other.into(),
        })?;
        crate::fault::crash_point("create.after_insert");
        let dir = self.inner.paths.container_dir(&id);
        let made = std::fs::create_dir_all(dir.join("upper"))
            .and_then(|()| std::fs::create_dir_all(dir.join("work")))
            .map_err(RuntimeError::io("create", &dir))
            .and_then(|()| userns::chown_upper(&dir.join("upper"), maps.as_ref()));
        if let Err(err) = made {
            // Undo: nothing half-made stays.
            let _ = std::fs::remove_dir_all(&dir);
            self.inner.store.delete_container(&id).await?;
            return Err(err);
        }
        self.save_memory_warning(&id, &req).await;
        self.inner
            .events
            .emit(
                "container",
                "create",
                &id,
                &[("name", name.clone()), ("image", req.image.clone())],
            )
            .await;
        Ok(CreateResponse {
            id,
            name,
            warnings: self.create_warnings(&req.resources),
        })
    }

    /// Limits this host cannot honour exactly, said at create rather than dropped.
    fn create_warnings(&self, r: &boxd_client::models::Resources) -> Vec<String> {
        crate::cgroups::limits::hierarchy_warnings(self.inner.cgroups.version(), r)
    }

    /// Applies defaults and checks the request's fields.
    fn container_config(
        &self,
        req: &CreateContainer,
        image: &Image,
        name: &str,
    ) -> Result<ContainerConfig, RuntimeError> {
        let cmd = images::merged_command(req, image)?;
        if cmd[0].is_empty() {
            return Err(RuntimeError::invalid(
                "cmd",
                "the command must not be empty",
            ));
        }
        let mut env: Vec<String> = Vec::new();
        for kv in image.env.iter().chain(req.env.iter()) {
            let Some((key, _)) = kv.split_once('=') else {
                return Err(RuntimeError::invalid(
                    "env",
                    format!("{kv:?} is not KEY=VALUE"),
                ));
            };
            if key.is_empty() || kv.contains('\0') {
                return Err(RuntimeError::invalid(
                    "env",
                    format!("{kv:?} is not KEY=VALUE"),
                ));
            }
            env.retain(|old| old.split_once('=').map(|(k, _)| k) != Some(key));
            env.push(kv.clone());
        }
        let hostname = req
            .hostname
            .clone()
            .unwrap_or_else(|| name.chars().take(63).collect());
        if hostname.is_empty()
            || hostname.len() > 64
            || !hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(RuntimeError::invalid(
                "hostname",
                format!("{hostname:?} must be 1-64 of [a-zA-Z0-9._-]"),
            ));
        }
        if !env.iter().any(|kv| kv.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_owned());
        }
        if !env.iter().any(|kv| kv.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={hostname}"));
        }
        let working_dir = req
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        if !working_dir.starts_with('/') {
            return Err(RuntimeError::invalid(
                "working_dir",
                format!("{working_dir:?} must be absolute"),
            ));
        }
        for m in &req.mounts {
            check_container_path("mounts.target", &m.target)?;
            let source = Path::new(&m.source);
            if !source.is_absolute() {
                return Err(RuntimeError::invalid(
                    "mounts.source",
                    format!("{:?} must be an absolute host path", m.source),
                ));
            }
            if !source.exists() {
                return Err(RuntimeError::invalid(
                    "mounts.source",
                    format!("{:?} does not exist on the host", m.source),
                ));
            }
        }
        Ok(ContainerConfig {
            cmd,
            env,
            working_dir,
            hostname,
            user: req
                .user
                .clone()
                .or_else(|| image.user.clone())
                .unwrap_or_default(),
            mounts: req.mounts.clone(),
            labels: images::merged_labels(req, image),
            security: security::security_config(req)
                .map_err(|e| RuntimeError::invalid("security", crate::error_chain(&e)))?,
            tty: req.tty,
            open_stdin: req.open_stdin,
            stdin_once: req.stdin_once,
            // Set by `create` once the request's `userns` is resolved.
            userns: None,
        })
    }

    // ----- start --------------------------------------------------------------------

    /// Starts a created or exited container, as the user asked.
    pub async fn start(&self, reference: &str) -> Result<(), RuntimeError> {
        let id = self.resolve(reference).await?.container.id;
        self.start_as(&id, reference, restart::StartCause::User)
            .await
    }

    /// Starts a container for the user or for its restart policy.
    pub(crate) async fn start_as(
        &self,
        id: &str,
        reference: &str,
        cause: restart::StartCause,
    ) -> Result<(), RuntimeError> {
        let id = id.to_owned();
        let lock = self.lock_for(&id);
        let _guard = lock.lock().await;
        // Re-read under the lock: another start may have won.
        let rec = self
            .inner
            .store
            .container(&id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "container",
                reference: reference.to_owned(),
            })?;
        if cause == restart::StartCause::Policy
            && (rec.container.state == ContainerState::Running
                || rec.stopped_by_user
                || rec.container.next_restart_at.is_none())
        {
            // The user stopped it, or started it by hand, while the back-off ran (or
            // another restart of the same exit won): nothing to do.
            return Ok(());
        }
        if rec.container.state == ContainerState::Running {
            return Err(RuntimeError::AlreadyRunning(rec.container.name));
        }
        match cause {
            restart::StartCause::User => self.inner.store.reset_restarts(&id).await?,
            restart::StartCause::Policy => self.inner.store.count_restart(&id).await?,
        }
        crate::fault::crash_point("start.before_launch");
        let c = rec.container;
        let state_dir = self.inner.paths.state_dir(&id);
        let result = self.start_locked(&c, &state_dir).await;
        match result {
            Ok((shim_pid, pid)) => {
                self.inner
                    .store
                    .set_running(&id, pid, shim_pid, Utc::now())
                    .await?;
                crate::fault::crash_point("start.after_launch_recorded");
                if cause == restart::StartCause::Policy {
                    self.inner
                        .events
                        .emit("container", "restart", &id, &[("name", c.name.clone())])
                        .await;
                }
                self.inner
                    .events
                    .emit("container", "start", &id, &[("name", c.name.clone())])
                    .await;
                self.spawn_monitor(id);
                Ok(())
            }
            Err(err) => {
                // Undo everything the failed start made; the container stays as it was.
                if let Err(e) = self.inner.cgroups.remove(&id) {
                    tracing::warn!(id, error = %crate::error_chain(&e), "failed to remove cgroup after failed start");
                }
                let _ = std::fs::remove_dir_all(&state_dir);
                let _ = self
                    .inner
                    .store
                    .set_error(&id, Some(&err.to_string()))
                    .await;
                Err(err)
            }
        }
    }

    async fn start_locked(
        &self,
        c: &Container,
        state_dir: &Path,
    ) -> Result<(i32, i32), RuntimeError> {
        let id = &c.id;
        // A previous run's state is history once its exit is in the row.
        if state_dir.exists() {
            std::fs::remove_dir_all(state_dir).map_err(RuntimeError::io("remove", state_dir))?;
        }
        std::fs::create_dir_all(state_dir).map_err(RuntimeError::io("create", state_dir))?;
        let lowers = self.image_lowers(&c.image_id).await?;
        let user: ResolvedUser = users::resolve_layers(&lowers, &c.config.user)?;
        let spec = bundle::build_spec(&c.config, &user)?;
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

    fn spawn_monitor(&self, id: String) {
        // Subscribe first so a waiter that comes later finds the channel.
        drop(self.exit_watch(&id));
        let rt = self.clone();
        tokio::spawn(async move {
            let state_dir = rt.inner.paths.state_dir(&id);
            rt.ensure_observers(&id).await;
            let record = watch_shim(&state_dir).await;
            if let Err(err) = rt.record_exit(&id, record).await {
                tracing::error!(id, error = %crate::error_chain(&err), "failed to record container exit");
            }
        });
    }

    /// Records how a run ended, frees its cgroup and state dir, and wakes waiters.
    async fn record_exit(&self, id: &str, record: Option<ExitRecord>) -> Result<(), RuntimeError> {
        let Some(rec) = self.inner.store.container(id).await? else {
            return Ok(());
        };
        let name = rec.container.name.clone();
        let oom_reported = self.observe_exit(&rec.container, record.as_ref()).await;
        match record {
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
                self.inner.store.set_exited(id, &update).await?;
                crate::fault::crash_point("exit.after_record");
                if oom_killed && !oom_reported {
                    self.inner
                        .events
                        .emit("container", "oom", id, &[("name", name.clone())])
                        .await;
                }
                let mut attrs = vec![("name", name), ("exit_code", exit.exit_code.to_string())];
                if let Some(sig) = exit.signal {
                    attrs.push(("signal", sig.to_string()));
                }
                if oom_killed {
                    attrs.push(("oom_killed", "true".to_owned()));
                }
                self.inner.events.emit("container", "die", id, &attrs).await;
            }
            None => {
                let why = "its shim ended without an exit record (killed, or the host rebooted)";
                self.inner.store.set_dead(id, why).await?;
                self.inner
                    .events
                    .emit(
                        "container",
                        "die",
                        id,
                        &[("name", name), ("error", why.to_owned())],
                    )
                    .await;
            }
        }
        if let Err(e) = self.inner.cgroups.remove(id) {
            tracing::warn!(id, error = %crate::error_chain(&e), "failed to remove cgroup after exit");
        }
        let state_dir = self.inner.paths.state_dir(id);
        if let Err(e) = std::fs::remove_dir_all(&state_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(id, error = %e, "failed to remove state dir after exit");
            }
        }
        self.notify_exit(id);
        self.after_exit(id).await;
        Ok(())
    }

    // ----- stop / kill / wait -------------------------------------------------------

    /// SIGTERM, then SIGKILL after `timeout`.
    pub async fn stop(&self, reference: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let c = self.resolve(reference).await?.container;
        // Recorded first, so the exit this causes is not restarted (and a pending
        // restart of a stopped container is cancelled).
        self.inner.store.set_stopped_by_user(&c.id).await?;
        if c.state != ContainerState::Running {
            return Ok(());
        }
        let mut exits = self.exit_watch(&c.id);
        exits.borrow_and_update();
        let state_dir = self.inner.paths.state_dir(&c.id);
        self.inner
            .events
            .emit("container", "stop", &c.id, &[("name", c.name.clone())])
            .await;
        // The image's StopSignal (SIGTERM when it sets none).
        let stop_signal = self.stop_signal(&c.image_id).await;
        if self.signal_running(&c.id, &state_dir, stop_signal).await? {
            if tokio::time::timeout(timeout, exits.changed()).await.is_ok() {
                return Ok(());
            }
            tracing::info!(
                id = c.id,
                ?timeout,
                "container ignored SIGTERM; sending SIGKILL"
            );
            self.signal_running(&c.id, &state_dir, libc::SIGKILL)
                .await?;
            let _ = tokio::time::timeout(KILL_GRACE, exits.changed()).await;
        }
        Ok(())
    }

    /// Sends a signal; 409 if the container is not running.
    pub async fn kill(&self, reference: &str, signal: i32) -> Result<(), RuntimeError> {
        let c = self.resolve(reference).await?.container;
        if c.state != ContainerState::Running {
            return Err(RuntimeError::NotRunning(c.name));
        }
        let state_dir = self.inner.paths.state_dir(&c.id);
        // A signal meant to end the container counts as the user stopping it, as with
        // Docker; one meant for the app (SIGHUP to reload, say) does not.
        if matches!(
            signal,
            libc::SIGKILL | libc::SIGTERM | libc::SIGINT | libc::SIGQUIT
        ) {
            self.inner.store.set_stopped_by_user(&c.id).await?;
        }
        if !self.signal_running(&c.id, &state_dir, signal).await? {
            return Err(RuntimeError::NotRunning(c.name));
        }
        self.inner
            .events
            .emit(
                "container",
                "kill",
                &c.id,
                &[("name", c.name), ("signal", signal.to_string())],
            )
            .await;
        Ok(())
    }

    /// Signals through the shim; false if the app already ended.
    async fn signal_running(
        &self,
        id: &str,
        state_dir: &Path,
        signal: i32,
    ) -> Result<bool, RuntimeError> {
        match shim::kill(state_dir, signal).await {
            Ok(()) => Ok(true),
            // The shim is gone or the app has exited: the monitor records the exit.
            Err(shim::ShimError::Connect { .. }) | Err(shim::ShimError::Closed) => Ok(false),
            Err(shim::ShimError::Refused(msg)) => {
                tracing::debug!(id, msg, "shim refused a signal (app already exited?)");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until the container is not running (and has run), then reports its exit.
    pub async fn wait(&self, reference: &str) -> Result<WaitResponse, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        let mut exits = self.exit_watch(&c.id);
        exits.borrow_and_update();
        loop {
            // Re-read after subscribing: an exit between the two is not missed.
            let Some(rec) = self.inner.store.container(&c.id).await? else {
                return Err(RuntimeError::NotFound {
                    kind: "container",
                    reference: reference.to_owned(),
                });
            };
            let c = rec.container;
            if matches!(c.state, ContainerState::Exited | ContainerState::Dead) {
                return Ok(WaitResponse {
                    exit_code: c.exit_code.unwrap_or(-1),
                    oom_killed: c.oom_killed,
                });
            }
            if exits.changed().await.is_err() {
                return Err(RuntimeError::NotFound {
                    kind: "container",
                    reference: reference.to_owned(),
                });
            }
        }
    }

    // ----- delete -------------------------------------------------------------------

    /// Removes a container and everything it owns.
    pub async fn remove(&self, reference: &str, force: bool) -> Result<(), RuntimeError> {
        let rec = self.resolve(reference).await?;
        let id = rec.container.id.clone();
        let lock = self.lock_for(&id);
        let _guard = lock.lock().await;
        let Some(rec) = self.inner.store.container(&id).await? else {
            return Err(RuntimeError::NotFound {
                kind: "container",
                reference: reference.to_owned(),
            });
        };
        let c = rec.container;
        let state_dir = self.inner.paths.state_dir(&id);
        if c.state == ContainerState::Running {
            if !force {
                return Err(RuntimeError::ContainerRunning(c.name));
            }
            let mut exits = self.exit_watch(&id);
            exits.borrow_and_update();
            self.inner.store.set_stopped_by_user(&id).await?;
            if self.signal_running(&id, &state_dir, libc::SIGKILL).await? {
                let _ = tokio::time::timeout(KILL_GRACE, exits.changed()).await;
            }
            crate::fault::crash_point("delete.after_kill");
        }
        // Whatever the monitor did or did not get to, nothing may stay behind.
        self.inner.cgroups.remove(&id)?;
        crate::fault::crash_point("delete.after_cgroup");
        remove_dir_if_exists(&state_dir)?;
        remove_dir_if_exists(&self.inner.paths.container_dir(&id))?;
        crate::fault::crash_point("delete.before_row");
        self.inner.store.delete_container(&id).await?;
        self.inner
            .events
            .emit("container", "destroy", &id, &[("name", c.name)])
            .await;
        self.inner.exits.lock().expect("exits poisoned").remove(&id);
        self.inner.locks.lock().expect("locks poisoned").remove(&id);
        Ok(())
    }

    // ----- logs ---------------------------------------------------------------------

    /// The container's log, streamed.
    pub async fn logs(
        &self,
        reference: &str,
        opts: LogOptions,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, RuntimeError>
    {
        let c = self.resolve(reference).await?.container;
        let path = self.inner.paths.log_path(&c.id);
        let rt = self.clone();
        let id = c.id.clone();
        let running = move || {
            let rt = rt.clone();
            let id = id.clone();
            async move {
                matches!(
                    rt.inner.store.container(&id).await,
                    Ok(Some(ContainerRecord {
                        container: Container {
                            state: ContainerState::Running | ContainerState::Created,
                            ..
                        },
                        ..
                    }))
                )
            }
        };
        Ok(logs::stream(path, opts, running))
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

fn check_container_path(field: &'static str, path: &str) -> Result<(), RuntimeError> {
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") || path.contains('\0') {
        return Err(RuntimeError::invalid(
            field,
            format!("{path:?} must be an absolute path without '..'"),
        ));
    }
    if path.trim_end_matches('/').is_empty() {
        return Err(RuntimeError::invalid(
            field,
            "cannot mount over the container's root",
        ));
    }
    Ok(())
}

fn remove_dir_if_exists(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::Io {
            op: "remove",
            path: path.to_owned(),
            source: e,
        }),
    }
}

fn host_resources() -> (u64, u64) {
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    (ncpu, mem_total)
}
