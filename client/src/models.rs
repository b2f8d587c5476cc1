//! The wire types of the boxd REST API, defined once.
//!
//! The daemon serialises exactly these types and the client deserialises them, so a
//! field added here is added to both sides at once. Fields are `snake_case`; optional
//! request fields default so that `{}` plus the required ones is a valid body. New
//! fields may be added at any time (clients must ignore unknown ones); none is renamed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The daemon's version (its crate version).
    pub version: String,
    /// The API version this daemon speaks (`"v1"`).
    pub api_version: String,
    /// The cgroup hierarchy in use: `"v1"` (legacy or hybrid) or `"v2"` (unified).
    pub cgroup_version: String,
    /// The kernel release (`uname -r`).
    pub kernel: String,
}

/// `GET /v1/info`: host facts and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Number of containers in every state.
    pub containers: u64,
    /// Containers in state `created`.
    pub containers_created: u64,
    /// Containers in state `running`.
    pub containers_running: u64,
    /// Containers in state `exited`.
    pub containers_exited: u64,
    /// Containers in state `dead`.
    pub containers_dead: u64,
    /// Number of images.
    pub images: u64,
    /// `"v1"` or `"v2"`.
    pub cgroup_version: String,
    /// Controllers boxd uses on this host.
    pub cgroup_controllers: Vec<String>,
    /// The cgroup parent under which every container group is made.
    pub cgroup_parent: String,
    /// Kernel release.
    pub kernel: String,
    /// Root directory (database, images, container dirs).
    pub root_dir: String,
    /// Runtime state directory.
    pub state_dir: String,
    /// Number of CPUs online.
    pub ncpu: u64,
    /// Total memory of the host in bytes.
    pub mem_total: u64,
}

/// An image in the local store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `sha256:<hex>` of the uncompressed root filesystem tar.
    pub id: String,
    /// Names that point at this image (`busybox:latest`).
    pub tags: Vec<String>,
    /// Size of the unpacked root filesystem in bytes.
    pub size: u64,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
    /// Default command of the image (empty for a plain rootfs tarball).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Default environment of the image (`K=V`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Default working directory of the image.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// A bind mount from the host into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute host path; must exist.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mount it read-only inside the container.
    #[serde(default)]
    pub read_only: bool,
}

/// Resource limits of a container. Every field is optional; absent means unlimited
/// (or the kernel default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes (cgroup v1 `memory.limit_in_bytes`, v2 `memory.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory plus swap limit in bytes, as Docker's `--memory-swap`; `-1` means
    /// unlimited swap. Needs `memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_bytes: Option<i64>,
    /// Swappiness 0..=100 (cgroup v1 `memory.swappiness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// Maximum number of processes (`pids.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<i64>,
    /// CPU quota in microseconds per period (`cpu.cfs_quota_us` / `cpu.max`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds (default 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period_us: Option<u64>,
    /// Relative CPU weight, Docker's `--cpu-shares` scale (2..=262144; 1024 is the
    /// default). On cgroup v2 it is converted to `cpu.weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
}

/// `POST /v1/containers` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    /// Image name (`busybox`, `busybox:latest`), or id (`sha256:…` or a unique prefix).
    pub image: String,
    /// Unique name; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Command and arguments; the image's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Environment, `K=V` each, added to the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Hostname; the container's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `uid[:gid]` or a user name (`name[:group]`) from the image's `/etc/passwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Bind mounts from the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `201` answer to `POST /v1/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResponse {
    /// Full container id (64 hex digits).
    pub id: String,
    /// The container's name (given or generated).
    pub name: String,
    /// Things the daemon could not honour exactly, said plainly.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, never started (or being started).
    Created,
    /// Its process is alive.
    Running,
    /// Its process ended; the exit code is known.
    Exited,
    /// It was running but neither its monitor nor its exit record can be found, or it
    /// failed in a way that leaves it unusable; `error` says why.
    Dead,
}

impl ContainerState {
    /// The lowercase name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
            ContainerState::Dead => "dead",
        }
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ContainerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created" => Ok(ContainerState::Created),
            "running" => Ok(ContainerState::Running),
            "exited" => Ok(ContainerState::Exited),
            "dead" => Ok(ContainerState::Dead),
            other => Err(format!("unknown container state {other:?}")),
        }
    }
}

/// The configuration a container was created with, after defaults were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Command and arguments that run.
    pub cmd: Vec<String>,
    /// Full environment (`K=V`).
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Hostname.
    pub hostname: String,
    /// The user as asked (`""` means root).
    pub user: String,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `GET /v1/containers/{id}` and the items of `GET /v1/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The image reference as given at create.
    pub image: String,
    /// The image's id.
    pub image_id: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Host pid of the container's first process while running.
    pub pid: Option<u32>,
    /// Exit code of the last run (128+N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Signal that ended the last run, if one did.
    #[serde(default)]
    pub exit_signal: Option<i32>,
    /// Whether the kernel OOM killer killed a process of the container in its last run.
    pub oom_killed: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Start time of the last run.
    pub started_at: Option<DateTime<Utc>>,
    /// End time of the last run.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the container is `dead`, or why its last start failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Configuration.
    pub config: ContainerConfig,
    /// Resource limits.
    pub resources: Resources,
}

/// `POST /v1/containers/{id}/wait` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    /// Exit code (128+N when killed by signal N).
    pub exit_code: i32,
    /// Whether the OOM killer struck during the run.
    pub oom_killed: bool,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of `GET /v1/containers/{id}/logs?format=ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When the shim read the bytes.
    pub time: DateTime<Utc>,
    /// Which stream.
    pub stream: LogStream,
    /// The bytes (a line with its `\n`, or a partial line), as UTF-8 (lossy).
    pub line: String,
}

/// One line of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Monotonic sequence number; resume with `since=seq`.
    pub seq: i64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// `container` or `image`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `create`, `start`, `die`, `oom`, `stop`, `kill`, `destroy`, `import`, `delete`, ...
    pub action: String,
    /// Id of the container or image.
    pub id: String,
    /// Extra facts (`name`, `exit_code`, `signal`, `image`, ...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable `snake_case` code (`not_found`, `name_in_use`, `bad_request`, ...).
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}
