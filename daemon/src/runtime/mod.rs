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
//! being the app's parent. Every transition of one container (start, stop, kill, exit,
//! restart, delete) is made by that container's actor, one at a time: see `lifecycle`.

pub mod attach;
pub mod bundle;
mod check;
pub mod container_fs;
pub mod disk;
mod error;
pub mod exec;
pub mod images;
pub mod launcher;
mod lifecycle;
#[cfg(test)]
mod lifecycle_tests;
pub mod logs;
pub mod names;
mod observe;
mod reconcile;
pub mod restart;
pub mod seccomp;
pub mod security;
pub mod shim;
pub mod spec;
pub mod userns;
pub mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::runtime::spec::{Container, ContainerConfig, ContainerSpec, ContainerState};
use boxd_types::{CreateResponse, Image, Info, Version, WaitResponse};
use bytes::Bytes;
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::watch;

use crate::cgroups::{CgroupManager, CgroupVersion};
use crate::events::EventBus;
use crate::image::users;
use crate::image::ImageStore;
use crate::network::NetworkManager;
use crate::store::{ContainerRecord, Resolved, Store};

pub use error::RuntimeError;
pub use observe::{
    MetricsSnapshot, Usage, DEFAULT_EVENTS_MAX, DEFAULT_EVENTS_MAX_AGE,
    DEFAULT_MEMORY_WARNING_PERCENT,
};

/// The default `PATH` when neither the image nor the request sets one (Docker's).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where things live on disk.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<root>/containers`: per-container upper/work dirs and logs.
    pub containers: PathBuf,
    /// `<state_dir>/containers`: per-container runtime state (tmpfs).
    pub state: PathBuf,
    /// `<root>/volumes`: named volumes.
    pub volumes: volumes::VolumePaths,
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
    /// The shim binary (exec helpers run from its sealed copy).
    shim: shim::ShimLauncher,
    /// Starts runs and reaches their shims (the shim itself, or a fake in tests).
    launcher: Arc<dyn launcher::Launcher>,
    paths: Paths,
    info: HostInfo,
    /// Per container: a counter bumped on every recorded exit (waiters watch it).
    exits: Mutex<HashMap<String, watch::Sender<ExitSeen>>>,
    /// Per container: the actor that makes its transitions (see `lifecycle`).
    actors: lifecycle::Actors,
    /// Transitions that found the store in a state their writer did not expect.
    anomalies: Mutex<Vec<String>>,
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
    /// Networks and the attachments of runs to them.
    network: NetworkManager,
    /// Attach sessions in progress, per container (see `attach::AttachHold`).
    attaches: attach::AttachHolds,
    /// Held by every change to the set of volumes, by container creates while they
    /// resolve their volumes until their row is in, and by copy-ups (see `volumes`).
    volumes_lock: tokio::sync::Mutex<()>,
    /// Per container: file operations (docker cp, export) holding its layers, which
    /// a start waits for (see `container_fs::LayerLeases`).
    layer_leases: container_fs::LayerLeases,
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
    /// Networking settings.
    pub network: crate::network::Settings,
}

/// Options of `logs`.
pub use logs::LogOptions;

/// What an import sets besides the root filesystem (`docker import --change/-m`).
#[derive(Debug, Clone, Default)]
pub struct ImportChanges {
    /// Dockerfile instructions that set the image's defaults (`CMD ["sh"]`).
    pub changes: Vec<String>,
    /// The history comment.
    pub message: Option<String>,
}

impl ImportChanges {
    fn is_empty(&self) -> bool {
        self.changes.iter().all(|c| c.trim().is_empty())
            && self.message.as_deref().is_none_or(str::is_empty)
    }
}

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
        let shim = shim::ShimLauncher::new(shim_bin);
        let launcher = Arc::new(shim.clone());
        Self::with_launcher(store, events, images, cgroups, shim, launcher, info).await
    }

    /// As [`Runtime::new`], with the launcher given (tests use a fake one).
    pub async fn with_launcher(
        store: Store,
        events: EventBus,
        images: ImageStore,
        cgroups: Box<dyn CgroupManager>,
        shim: shim::ShimLauncher,
        launcher: Arc<dyn launcher::Launcher>,
        info: HostInfo,
    ) -> Result<Self, RuntimeError> {
        let paths = Paths {
            containers: info.root_dir.join("containers"),
            state: info.state_dir.join("containers"),
            volumes: volumes::VolumePaths {
                root: info.root_dir.join("volumes"),
            },
        };
        for dir in [&paths.containers, &paths.state, &paths.volumes.root] {
            std::fs::create_dir_all(dir).map_err(RuntimeError::io("create", dir))?;
        }
        let network = NetworkManager::new(
            store.clone(),
            info.network.clone(),
            &info.root_dir,
            &info.state_dir,
        )
        .await?;
        let rt = Runtime {
            inner: Arc::new(Inner {
                store,
                events,
                images,
                cgroups,
                shim,
                launcher,
                paths,
                info,
                exits: Mutex::new(HashMap::new()),
                actors: Default::default(),
                anomalies: Mutex::new(Vec::new()),
                observers: Default::default(),
                execs: exec::ExecRegistry::default(),
                backoff: Mutex::new(HashMap::new()),
                reconciled: Mutex::new(Vec::new()),
                filters: Default::default(),
                network,
                attaches: Default::default(),
                volumes_lock: tokio::sync::Mutex::new(()),
                layer_leases: Default::default(),
            }),
        };
        let live = rt.reconcile().await?;
        // After the exits are recorded (each detached its run): what is left belongs to
        // runs whose end was never seen.
        let released = rt.inner.network.reconcile(&live).await;
        rt.inner
            .reconciled
            .lock()
            .expect("reconciled poisoned")
            .extend(released);
        rt.resume_restart_policies().await?;
        // Every container gets its actor only now: until here the reconcile was the one
        // writer.
        for rec in rt.inner.store.list_containers(true).await? {
            let c = &rec.container;
            let running = live.contains(&c.id);
            let restart_at = c.next_restart_at.filter(|_| !running);
            rt.spawn_actor(&c.id, running, restart_at);
        }
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

    /// Imports a rootfs tarball under `name`. Without `changes`, the image is its one
    /// layer (its id is the tar's digest, the same content imported twice is one
    /// image); with them, it is that layer under a config of its own, identified by the
    /// config's digest as a loaded image is.
    pub async fn import_image<S, E>(
        &self,
        name: &str,
        body: S,
        changes: &ImportChanges,
    ) -> Result<Image, RuntimeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let tag = images::tag_name(name)?;
        // Checked before the body is read: a bad change costs no unpacking.
        let run_config = if changes.is_empty() {
            None
        } else {
            let mut c = crate::image::oci::RunConfig::default();
            crate::image::changes::apply(&mut c, &changes.changes)
                .map_err(crate::image::ImageError::from)?;
            Some(c)
        };
        // Shared gc lock until the row exists: a failed pull's clean-up (exclusive) must
        // not take this layer for an unowned one.
        let _gc = self.inner.images.gc_read().await;
        let imported = self.inner.images.import(body).await?;
        crate::fault::crash_point("image.after_unpack");
        // The layer is in place before its row: a crash here leaves an unowned dir, which
        // reconcile removes. The row then the tag: an untagged image is still listed.
        let id = match run_config {
            None => {
                self.inner
                    .store
                    .insert_image(&imported.id, imported.size, Utc::now(), "{}")
                    .await?;
                self.inner.store.tag_image(&tag, &imported.id).await?;
                imported.id.clone()
            }
            Some(run_config) => {
                let now = Utc::now();
                let created = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                let config = crate::image::oci::ImageConfig {
                    architecture: Some(crate::image::oci::Platform::host().architecture),
                    os: Some("linux".into()),
                    variant: None,
                    created: Some(created.clone()),
                    config: Some(run_config),
                    rootfs: Some(crate::image::oci::RootFs {
                        kind: "layers".into(),
                        diff_ids: vec![imported.id.clone()],
                    }),
                    history: vec![crate::image::oci::History {
                        created: Some(created),
                        created_by: None,
                        comment: Some(changes.message.clone().unwrap_or_else(|| "Imported".into())),
                        empty_layer: false,
                    }],
                };
                let mut image = config.to_image();
                image.id = crate::image::oci::digest_of(&config.to_bytes());
                image.tags = vec![tag.clone()];
                image.layers = vec![imported.id.clone()];
                image.size = imported.size;
                let layer = crate::store::LayerRow {
                    chain_id: imported.id.clone(),
                    diff_id: imported.id.clone(),
                    size: imported.size,
                };
                self.inner.store.record_image(&image, &[layer], now).await?;
                image.id
            }
        };
        self.inner
            .events
            .emit("image", "import", &id, &[("name", tag.clone())])
            .await;
        self.image_by_id(&id).await
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

    /// Resolves an image reference (see `images.rs`).
    pub async fn image(&self, reference: &str) -> Result<Image, RuntimeError> {
        Ok(self.find_image(reference).await?.image)
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
        Ok(self.resolve(reference).await?.container)
    }

    /// What was observed of a container's runs (memory events, the last exit).
    pub async fn observed(&self, id: &str) -> Result<boxd_types::Observed, RuntimeError> {
        self.observed_of(id).await
    }

    /// Exits of container `id` as they are recorded; the sender is dropped when the
    /// container is removed, so `changed()` failing means "removed".
    fn exit_watch(&self, id: &str) -> watch::Receiver<ExitSeen> {
        let mut exits = self.inner.exits.lock().expect("exits poisoned");
        exits
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(ExitSeen::default()).0)
            .subscribe()
    }

    /// Tells waiters of container `id` that a run ended, and how (`None`: its row
    /// could not be written).
    fn notify_exit(&self, id: &str, last: Option<WaitResponse>) {
        let exits = self.inner.exits.lock().expect("exits poisoned");
        if let Some(tx) = exits.get(id) {
            tx.send_modify(|seen| {
                seen.count += 1;
                seen.last = last;
            });
        }
    }

    // ----- create -------------------------------------------------------------------

    /// Creates a container (state `created`). Runs to its end even if the caller goes
    /// away: a row without its dirs and actor is never left behind.
    pub async fn create(&self, req: ContainerSpec) -> Result<CreateResponse, RuntimeError> {
        let rt = self.clone();
        tokio::spawn(async move { rt.create_detached(req).await })
            .await
            .expect("create panicked")
    }

    async fn create_detached(&self, req: ContainerSpec) -> Result<CreateResponse, RuntimeError> {
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
        let restart_policy = req.restart_policy;
        let image = self.image(&req.image).await?;
        let id = names::generate_container_id();
        let mut config = self.container_config(&req, &image, &name, &id)?;
        let range = self.inner.info.userns_range;
        let userns = userns::resolve(&req.userns, &range)?;
        if let userns::Userns::Explicit(maps) = &userns {
            config.userns = Some(maps.clone());
        }
        // Resolving the user now turns a typo into a 400 at create, not a failed start.
        users::resolve_layers(&self.image_lowers(&image.id).await?, &config.user)?;
        let peer = match &req.network.mode {
            crate::network::ModeRequest::Container(r) => Some(self.resolve(r).await?.container.id),
            _ => None,
        };
        // Held until the row is in: a volume this container names must not be removed
        // before the row says it is used (taken before the ports lock, always).
        let volumes_guard = self.inner.volumes_lock.lock().await;
        // Held until the row is in: two creates must not both take a free host port.
        let ports_guard = self.inner.network.lock().await;
        let taken = self.taken_by_others().await?;
        let (network, mut warnings) = self
            .inner
            .network
            .plan(&req.network, peer, &image.exposed_ports, &taken)
            .await?;
        if (req.resources.network_ingress_bps.is_some()
            || req.resources.network_egress_bps.is_some())
            && !matches!(network.mode, crate::network::NetworkMode::Network { .. })
        {
            return Err(RuntimeError::invalid(
                "resources",
                "network_ingress_bps and network_egress_bps need network mode bridge or a user network",
            ));
        }
        for (what, rate) in [
            ("network_ingress_bps", req.resources.network_ingress_bps),
            ("network_egress_bps", req.resources.network_egress_bps),
        ] {
            if rate.is_some_and(|r| r < 1000) {
                return Err(RuntimeError::invalid(
                    "resources",
                    format!("{what} must be at least 1000 bits per second"),
                ));
            }
        }
        config.network = network;
        let volumes_made = self.resolve_volume_mounts(&mut config.mounts).await?;

        let container = Container {
            id: id.clone(),
            name: name.clone(),
            image: req.image.clone(),
            image_id: image.id.clone(),
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
            config,
            resources: req.resources.clone(),
            restart_policy,
            restart_count: 0,
            next_restart_at: None,
        };
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
        drop(ports_guard);
        if inserted.is_err() {
            self.remove_volumes_made(&volumes_made).await;
        }
        drop(volumes_guard);
        let maps = inserted.map_err(|e| match e {
            crate::store::StoreError::NameInUse(n) => RuntimeError::NameInUse(n),
            other => other.into(),
        })?;
        crate::fault::crash_point("create.after_insert");
        // From the row on, the container has its actor: every later transition is its.
        self.spawn_actor(&id, false, None);
        let dir = self.inner.paths.container_dir(&id);
        let made = std::fs::create_dir_all(dir.join("upper"))
            .and_then(|()| std::fs::create_dir_all(dir.join("work")))
            .map_err(RuntimeError::io("create", &dir))
            .and_then(|()| userns::chown_upper(&dir.join("upper"), maps.as_ref()));
        if let Err(err) = made {
            // Undo: nothing half-made stays.
            self.inner.actors.remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
            self.inner.store.delete_container(&id).await?;
            let _guard = self.inner.volumes_lock.lock().await;
            self.remove_volumes_made(&volumes_made).await;
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
        warnings.extend(self.create_warnings(&req.resources));
        Ok(CreateResponse { id, name, warnings })
    }

    /// The host ports and fixed addresses every container holds, read in one pass.
    async fn taken_by_others(&self) -> Result<crate::network::Taken, RuntimeError> {
        let mut taken = crate::network::Taken::default();
        for r in self.inner.store.list_containers(true).await? {
            let (id, n) = (r.container.id, r.container.config.network);
            if let (crate::network::NetworkMode::Network { name }, Some(ip)) = (&n.mode, n.ip) {
                taken.addresses.push((id.clone(), name.clone(), ip));
            }
            taken
                .ports
                .extend(n.ports.into_iter().map(|p| (id.clone(), p)));
        }
        Ok(taken)
    }

    /// Creates a user-defined network.
    pub async fn create_network(
        &self,
        spec: crate::network::NetworkSpec,
    ) -> Result<crate::network::Network, RuntimeError> {
        let n = self.inner.network.create(spec).await?;
        self.inner
            .events
            .emit("network", "create", &n.id, &[("name", n.name.clone())])
            .await;
        Ok(n)
    }

    /// Removes a network no container is configured with.
    pub async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        let n = self.inner.network.get(name).await?;
        let users: Vec<String> = self
            .inner
            .store
            .list_containers(true)
            .await?
            .into_iter()
            .filter(|r| {
                r.container
                    .config
                    .network
                    .networks()
                    .contains(&n.name.as_str())
            })
            .map(|r| r.container.id)
            .collect();
        self.inner.network.remove(&n.name, users).await?;
        self.inner
            .events
            .emit("network", "destroy", &n.id, &[("name", n.name.clone())])
            .await;
        Ok(())
    }

    /// The network manager (for the networks routes).
    pub fn networks(&self) -> &NetworkManager {
        &self.inner.network
    }

    /// Limits this host cannot honour exactly, said at create rather than dropped.
    fn create_warnings(&self, r: &crate::runtime::spec::Resources) -> Vec<String> {
        crate::cgroups::limits::hierarchy_warnings(self.inner.cgroups.version(), r)
    }

    /// Applies defaults and checks the request's fields.
    fn container_config(
        &self,
        req: &ContainerSpec,
        image: &Image,
        name: &str,
        id: &str,
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
        let hostname = match &req.hostname {
            Some(h) => h.clone(),
            None if req.hostname_is_short_id => id.chars().take(12).collect(),
            None => name.chars().take(63).collect(),
        };
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
            if m.kind == spec::MountKind::Volume {
                // Empty: a new anonymous volume.
                if !m.source.is_empty() {
                    volumes::validate_name(&m.source)
                        .map_err(|r| RuntimeError::invalid("mounts.source", r))?;
                }
                continue;
            }
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
        let stop_signal = match req.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            Some(s) if images::parse_signal(s).is_none() => {
                return Err(RuntimeError::invalid(
                    "stop_signal",
                    format!("{s:?} is not a signal (SIGQUIT, QUIT or 3)"),
                ))
            }
            s => s.map(str::to_owned),
        };
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
            tty: req.stdio.tty,
            open_stdin: req.stdio.open_stdin,
            stdin_once: req.stdio.stdin_once,
            auto_remove: req.auto_remove,
            // Set by `create` once the request's `userns` is resolved.
            userns: None,
            // Set by `create` once ports are checked against the other containers'.
            network: Default::default(),
            stop_signal,
        })
    }

    // ----- wait -------------------------------------------------------------------

    /// Blocks until `condition` holds (Docker's wait conditions) and reports the exit
    /// of the last run. The container is resolved first, so a 404 comes before any
    /// waiting.
    pub async fn wait_until(
        &self,
        reference: &str,
        condition: WaitCondition,
    ) -> Result<WaitResponse, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        let id = c.id.clone();
        let mut exits = self.exit_watch(&id);
        exits.borrow_and_update();
        // Re-read after subscribing: an exit or a removal between the two is not missed.
        let Some(rec) = self.inner.store.container(&id).await? else {
            // Removed in between: drop the watch this call may have made.
            self.inner.exits.lock().expect("exits poisoned").remove(&id);
            return match condition {
                WaitCondition::Removed => Ok(wait_response(&c)),
                _ => Err(RuntimeError::NotFound {
                    kind: "container",
                    reference: reference.to_owned(),
                }),
            };
        };
        let mut last = wait_response(&rec.container);
        let mut running = rec.container.state == ContainerState::Running;
        loop {
            if condition == WaitCondition::NotRunning && !running {
                return Ok(last);
            }
            if exits.changed().await.is_err() {
                // The container was removed.
                return match condition {
                    WaitCondition::Removed => Ok(last),
                    _ => Err(RuntimeError::NotFound {
                        kind: "container",
                        reference: reference.to_owned(),
                    }),
                };
            }
            let seen = exits.borrow_and_update().clone();
            if let Some(exit) = seen.last {
                last = exit;
            }
            running = false;
            if condition == WaitCondition::NextExit {
                return Ok(last);
            }
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

/// What [`Runtime::wait_until`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// The container is not running (at once if it is not).
    #[default]
    NotRunning,
    /// The next exit, even of a container not yet started.
    NextExit,
    /// The container is removed.
    Removed,
}

/// The exits of a container seen so far, and the last one's outcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExitSeen {
    count: u64,
    last: Option<WaitResponse>,
}

fn wait_response(c: &Container) -> WaitResponse {
    WaitResponse {
        exit_code: c.exit_code.unwrap_or(if c.state == ContainerState::Dead {
            -1
        } else {
            0
        }),
        oom_killed: c.oom_killed,
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

/// [`remove_dir_if_exists`] off the async workers (an upper dir can hold a great many
/// files).
async fn remove_dir_blocking(path: PathBuf) -> Result<(), RuntimeError> {
    tokio::task::spawn_blocking(move || remove_dir_if_exists(&path))
        .await
        .expect("directory removal panicked")
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

/// The host's CPUs and memory in bytes.
pub(crate) fn host_resources() -> (u64, u64) {
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
