//! The engine's domain types: what a container is to boxd, apart from any face.
//!
//! Every face (`/v1` today; the Docker Engine API and the Kubernetes CRI next) parses its
//! own wire types and translates them into these in one function per operation (see
//! `api::convert` for `/v1`); the engine takes and returns only these, and the store keeps
//! them (the `config` and `resources` columns, tagged with [`SPEC_VERSION`]). A field a
//! face cannot honour is refused by that face, in its own error shape.
//!
//! The serde names are the stored format: renaming a field needs a new
//! [`SPEC_VERSION`] and a migration that converts the rows.
//!
//! What boxd *observed* of a run (memory events, exit records, stats) is reported, not
//! configured: those report types are shared with the `/v1` wire format for now.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::restart::RestartPolicy;

/// The version of the stored spec format (`containers.spec_version`). Version 1 is the
/// format of the first release (the same JSON the `/v1` wire types had then).
pub const SPEC_VERSION: i64 = 1;

/// What to create: the engine's input to `Runtime::create`, from any face.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Image reference or id.
    pub image: String,
    /// Unique name; generated when absent.
    pub name: Option<String>,
    /// Command and arguments; the image's when absent.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint replacing the image's (`[]` clears it).
    pub entrypoint: Option<Vec<String>>,
    /// Environment (`K=V`), added to the image's.
    pub env: Vec<String>,
    /// Working directory (absolute); the image's when absent.
    pub working_dir: Option<String>,
    /// Hostname; when absent, the name (or the short id: `hostname_is_short_id`).
    pub hostname: Option<String>,
    /// Without `hostname`, the hostname is the id's first 12 digits, as dockerd gives
    /// it, rather than the name (which may hold `_`, no hostname character to some
    /// resolvers and URL parsers).
    pub hostname_is_short_id: bool,
    /// `uid[:gid]` or `name[:group]`; the image's when absent.
    pub user: Option<String>,
    /// Bind mounts from the host and volumes.
    pub mounts: Vec<Mount>,
    /// Resource limits.
    pub resources: Resources,
    /// Labels, added to the image's.
    pub labels: BTreeMap<String, String>,
    /// The restart policy.
    pub restart_policy: RestartPolicy,
    /// Security settings asked for (defaults applied by the engine).
    pub security: SecurityRequest,
    /// Memory warning threshold in percent of the limit (`None`: the default).
    pub memory_warning_percent: Option<u8>,
    /// Stdio of the app.
    pub stdio: Stdio,
    /// Remove the container when its run ends (and the restart policy does not
    /// start it again), or when a start fails: Docker's `AutoRemove`.
    pub auto_remove: bool,
    /// The user namespace.
    pub userns: UsernsRequest,
    /// Network mode, ports, names, address and DNS settings.
    pub network: crate::network::NetworkRequest,
    /// The signal `stop` sends first (`SIGQUIT`, `QUIT`, `3`); the image's
    /// `StopSignal` when absent.
    pub stop_signal: Option<String>,
}

/// The security settings a create asks for, before defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityRequest {
    /// Capabilities added to the default set (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set.
    pub cap_drop: Vec<String>,
    /// Docker's `--security-opt` words.
    pub security_opt: Vec<String>,
    /// `default`, `unconfined`, or a Docker JSON seccomp profile.
    pub seccomp: Option<String>,
    /// no_new_privs (default on).
    pub no_new_privileges: Option<bool>,
    /// A read-only root filesystem.
    pub read_only_rootfs: bool,
    /// tmpfs mounts: container path to mount options.
    pub tmpfs: BTreeMap<String, String>,
    /// rlimits of the app.
    pub ulimits: Vec<Ulimit>,
}

/// How the app's stdin, stdout and stderr are wired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stdio {
    /// A terminal (a pty of the container's devpts).
    pub tty: bool,
    /// Stdin kept open for attach.
    pub open_stdin: bool,
    /// Stdin closed when the attached client closes its side.
    pub stdin_once: bool,
}

/// The user namespace a create asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UsernsRequest {
    /// None: the host's ids.
    #[default]
    Host,
    /// A free range of the daemon's `userns_range`.
    Auto,
    /// Explicit maps.
    Maps {
        /// The uid map.
        uid_map: Vec<IdMapping>,
        /// The gid map.
        gid_map: Vec<IdMapping>,
    },
}

/// What a [`Mount`]'s source names.
///
/// Stored as `"type"`; a row written before volumes has none and is a bind (the serde
/// default), so adding it needed no new [`SPEC_VERSION`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// `source` is an absolute host path.
    #[default]
    Bind,
    /// `source` is a volume's name (resolved at create: an absent volume is made then).
    Volume,
}

impl MountKind {
    /// Whether this is the default (bind), for `skip_serializing_if`.
    pub fn is_bind(&self) -> bool {
        *self == MountKind::Bind
    }
}

/// A mount from the host: a bind of a host path, or a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// What `source` names.
    #[serde(rename = "type", default, skip_serializing_if = "MountKind::is_bind")]
    pub kind: MountKind,
    /// Absolute host path (bind) or volume name (volume; empty in a create request: a
    /// new anonymous volume).
    pub source: String,
    /// Absolute container path.
    pub target: String,
    /// Read-only inside.
    #[serde(default)]
    pub read_only: bool,
}

/// One line of a uid or gid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the container.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// A container's user namespace as made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernsConfig {
    /// `auto` or `explicit`.
    pub mode: String,
    /// The uid map.
    pub uid_map: Vec<IdMapping>,
    /// The gid map.
    pub gid_map: Vec<IdMapping>,
}

/// Resource limits; absent means unlimited (or the kernel's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory plus swap in bytes; `-1`: unlimited swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_bytes: Option<i64>,
    /// Swappiness 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// Soft memory limit (v2 `memory.high`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high_bytes: Option<u64>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<i64>,
    /// CPU quota in microseconds per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period_us: Option<u64>,
    /// Relative CPU weight on Docker's shares scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// Size limit of the writable layer in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Rate limit into the container, bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ingress_bps: Option<u64>,
    /// Rate limit out of the container, bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_egress_bps: Option<u64>,
}

/// What `update` changes; `None` leaves a value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Memory plus swap in bytes; `-1`: unlimited swap.
    pub memory_swap_bytes: Option<i64>,
    /// Maximum number of processes; `-1`: no limit.
    pub pids_max: Option<i64>,
    /// CPU quota in microseconds per period; `-1`: no limit.
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds.
    pub cpu_period_us: Option<u64>,
    /// Relative CPU weight on Docker's shares scale.
    pub cpu_shares: Option<u64>,
    /// The restart policy, for exits from now on.
    pub restart_policy: Option<RestartPolicy>,
}

impl ResourceUpdate {
    /// `current` with the values this update gives.
    pub fn merged(&self, current: &Resources) -> Resources {
        Resources {
            memory_bytes: self.memory_bytes.or(current.memory_bytes),
            memory_swap_bytes: self.memory_swap_bytes.or(current.memory_swap_bytes),
            pids_max: self.pids_max.or(current.pids_max),
            cpu_quota_us: self.cpu_quota_us.or(current.cpu_quota_us),
            cpu_period_us: self.cpu_period_us.or(current.cpu_period_us),
            cpu_shares: self.cpu_shares.or(current.cpu_shares),
            ..current.clone()
        }
    }

    /// Whether it changes any cgroup limit (not only the policy).
    pub fn touches_limits(&self) -> bool {
        self.memory_bytes.is_some()
            || self.memory_swap_bytes.is_some()
            || self.pids_max.is_some()
            || self.cpu_quota_us.is_some()
            || self.cpu_period_us.is_some()
            || self.cpu_shares.is_some()
    }
}

/// Lifecycle state of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerState {
    /// Created, never started (or being started).
    Created,
    /// Its process is alive.
    Running,
    /// Its process ended; the exit code is known.
    Exited,
    /// Its run ended unknown, or it is unusable; `error` says why.
    Dead,
}

impl ContainerState {
    /// The name in the store.
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

/// The configuration a container runs with, defaults applied (stored as `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Full environment.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Hostname.
    pub hostname: String,
    /// The user as asked (`""`: root).
    pub user: String,
    /// Bind mounts.
    pub mounts: Vec<Mount>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Security settings in force.
    #[serde(default)]
    pub security: SecurityConfig,
    /// A terminal.
    #[serde(default)]
    pub tty: bool,
    /// Stdin kept open.
    #[serde(default)]
    pub open_stdin: bool,
    /// Stdin closed with the attached client's.
    #[serde(default)]
    pub stdin_once: bool,
    /// Removed by the daemon when its run ends.
    #[serde(default)]
    pub auto_remove: bool,
    /// The user namespace; absent: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UsernsConfig>,
    /// Network mode and published ports (absent in rows from before networks: `none`,
    /// what those containers had).
    #[serde(default)]
    pub network: crate::network::ContainerNetwork,
    /// The signal `stop` sends first, as the create gave it; absent: the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// An rlimit of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// setrlimit's name, lowercase, without `RLIMIT_`.
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// The security settings in force, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// The capability bounding set.
    pub capabilities: Vec<String>,
    /// no_new_privs.
    pub no_new_privileges: bool,
    /// `default`, `unconfined` or `custom`.
    pub seccomp: String,
    /// The custom profile (Docker JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    /// Read-only root filesystem.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// tmpfs mounts.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// rlimits.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// Paths hidden from the container.
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// Paths read-only inside.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// Device rules.
    #[serde(default)]
    pub devices: Vec<String>,
}

impl Default for SecurityConfig {
    /// A record written before these settings existed runs with the secure defaults.
    fn default() -> Self {
        SecurityConfig {
            // Docker's (and Podman's) default set; `security::capability_set` of nothing.
            capabilities: [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE",
                "CAP_SETFCAP",
                "CAP_SETGID",
                "CAP_SETPCAP",
                "CAP_SETUID",
                "CAP_SYS_CHROOT",
            ]
            .map(String::from)
            .to_vec(),
            no_new_privileges: true,
            seccomp: "default".to_owned(),
            seccomp_profile: None,
            read_only_rootfs: false,
            tmpfs: BTreeMap::new(),
            ulimits: Vec::new(),
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            devices: Vec::new(),
        }
    }
}

/// A container as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Its cgroup is frozen (`pause`): still `Running`, but none of its processes run.
    pub paused: bool,
    /// Host pid of its first process while running.
    pub pid: Option<u32>,
    /// Exit code of the last run.
    pub exit_code: Option<i32>,
    /// Signal that ended the last run.
    pub exit_signal: Option<i32>,
    /// The OOM killer struck in the last run.
    pub oom_killed: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Start of the last run.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the last run.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it is dead, or why its last start failed.
    pub error: Option<String>,
    /// Configuration.
    pub config: ContainerConfig,
    /// Resource limits.
    pub resources: Resources,
    /// The restart policy.
    pub restart_policy: RestartPolicy,
    /// Restarts by the policy since the user's last start.
    pub restart_count: u32,
    /// When the policy starts it again.
    pub next_restart_at: Option<DateTime<Utc>>,
}
