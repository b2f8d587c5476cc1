//! `boxd-types`: the wire types of the boxd REST API (`/v1`), defined once.
//!
//! The daemon serialises exactly these types and the client deserialises them, so a
//! field added here is added to both sides at once. Fields are `snake_case`; optional
//! request fields default so that `{}` plus the required ones is a valid body. New
//! fields may be added at any time (clients must ignore unknown ones); none is renamed.
//!
//! This crate holds data and nothing else (serde and chrono only), so anything that
//! speaks `/v1` (the daemon, the typed client in `boxd-client`, a tool of its own) can
//! use it without pulling in an HTTP stack or a command line. `api-spec/openapi.yaml`
//! documents the same types; a test keeps the two equal.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The daemon's default API socket.
pub const DEFAULT_SOCKET: &str = "/run/boxd.sock";

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Default entrypoint of the image (prepended to the command).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Default user of the image (`uid[:gid]` or a name).
    #[serde(default)]
    pub user: Option<String>,
    /// Labels of the image (merged into a container's, which win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Signal that stops a container of this image (`SIGTERM` when absent).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Ports the image's config exposes (Docker's `EXPOSE`), `<port>/<protocol>` each
    /// (`80/tcp`); what `publish_all` publishes. Empty for a plain rootfs tarball.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Platform OS (`linux`).
    #[serde(default)]
    pub os: Option<String>,
    /// Platform architecture (`amd64`).
    #[serde(default)]
    pub architecture: Option<String>,
    /// The layers' diff_ids (sha256 of each uncompressed tar), bottom first.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Registry digests it was pulled as (`127.0.0.1:5000/test/busybox@sha256:...`).
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// How the image was built, oldest step first (from its config).
    #[serde(default)]
    pub history: Vec<ImageHistory>,
}

/// One step of an image's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHistory {
    /// When the step ran (RFC 3339), as the image says.
    #[serde(default)]
    pub created: Option<String>,
    /// The command of the step.
    #[serde(default)]
    pub created_by: Option<String>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default)]
    pub empty_layer: bool,
}

/// `POST /v1/images/pull` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// What to pull, as Docker parses it (`busybox`, `host:port/repo:tag`, `repo@sha256:...`).
    pub reference: String,
    /// `os/arch[/variant]` to pick from a multi-platform index; the host's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One line of the NDJSON stream `POST /v1/images/pull` answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// `resolved`, `waiting`, `downloading`, `verifying`, `extracting`, `exists`,
    /// `layer_done`, `done` or `error`.
    pub status: String,
    /// The digest the line is about (a layer, or the manifest for `resolved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The pulled image (on `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// What failed (on `error`); the stream ends after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `POST /v1/images/load` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadResponse {
    /// The images loaded, in archive order.
    pub images: Vec<Image>,
}

/// `POST /v1/images/tag` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The image: a tag, id or unique id prefix.
    pub source: String,
    /// The new name (`repo[:tag]`, `:latest` when absent).
    pub target: String,
}

/// `POST /v1/images/prune` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneResponse {
    /// Ids of the images removed.
    pub images_deleted: Vec<String>,
    /// Chain ids of the layers removed.
    pub layers_deleted: Vec<String>,
    /// Bytes freed on disk.
    pub space_reclaimed: u64,
}

/// A mount into a container: a bind of a host path, or a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `bind` (the default when absent) or `volume`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `bind`: an absolute host path that exists. `volume`: a volume's name (made if
    /// missing); empty or absent for a new anonymous volume.
    #[serde(default)]
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mount it read-only inside the container.
    #[serde(default)]
    pub read_only: bool,
}

/// One line of a user namespace's uid or gid map: container ids
/// `container_id..container_id+size` are host ids `host_id..host_id+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMapping {
    /// First id inside the container.
    pub container_id: u32,
    /// First id on the host.
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// The `userns` of a create request: `"host"` (the default: no user namespace),
/// `"auto"` (a free 65536-id range of the daemon's `userns_range`), or explicit maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UsernsRequest {
    /// `"host"` or `"auto"`.
    Mode(String),
    /// Explicit maps.
    Maps {
        /// The uid map.
        uid_map: Vec<IdMapping>,
        /// The gid map.
        gid_map: Vec<IdMapping>,
    },
}

/// A container's user namespace, shown by `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernsConfig {
    /// `auto` (allocated by the daemon, freed at delete) or `explicit`.
    pub mode: String,
    /// The uid map.
    pub uid_map: Vec<IdMapping>,
    /// The gid map.
    pub gid_map: Vec<IdMapping>,
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
    /// Soft memory limit in bytes (cgroup v2 `memory.high`): above it the kernel
    /// reclaims the group's memory and throttles its allocations, and every time use
    /// goes over it a `memory_pressure` event is recorded. Not available on cgroup v1
    /// (a warning says so). At most `memory_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high_bytes: Option<u64>,
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
    /// Size limit of the container's writable layer in bytes (`boxctl run --disk`):
    /// writes past it fail with ENOSPC inside, the host disk is untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Rate limit of the traffic into the container, bits per second (CNI `bandwidth`
    /// plugin; network modes `bridge` and user networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ingress_bps: Option<u64>,
    /// Rate limit of the traffic out of the container, bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_egress_bps: Option<u64>,
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
    /// Entrypoint, replacing the image's (and then the image's cmd is not used);
    /// `[]` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
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
    /// `no` (default), `on-failure[:MAX_RETRIES]`, `always` or `unless-stopped`, as Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// Capabilities added to the default set (`NET_ADMIN` or `CAP_NET_ADMIN`, `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set (`ALL` removes every one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Docker's `--security-opt` words: `seccomp=unconfined`, `seccomp=<profile JSON>`,
    /// `no-new-privileges[=true|false]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// `default`, `unconfined`, or a seccomp profile in Docker's JSON format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<String>,
    /// Set no_new_privs on the app (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_rootfs: bool,
    /// Writable tmpfs mounts: container path to mount options (`size=64m,mode=1777`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    /// Resource limits of the app's processes (setrlimit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// Memory use, in percent of the memory limit, above which a `memory_pressure`
    /// event is emitted (default 90; 0 turns the warning off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_warning_percent: Option<u8>,
    /// Give the app a terminal (a pty of the container's devpts) as stdin, stdout and
    /// stderr; its output is then one stream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Keep the app's stdin open for `attach` (otherwise it reads /dev/null).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_stdin: bool,
    /// Close the app's stdin when the attached client closes its side.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    /// Remove the container once its run ends and its restart policy does not start
    /// it again (also after a failed start), as Docker's `--rm`; done by the daemon.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_remove: bool,
    /// The signal `stop` sends first (`SIGQUIT`, `QUIT`, `3`); the image's
    /// `StopSignal` (else SIGTERM) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// User namespace: `"host"` (default), `"auto"`, or `{uid_map, gid_map}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UsernsRequest>,
    /// Network mode: `bridge` (the default network), a network's name, `none` (only
    /// `lo`), `host` (the host's namespace: not isolated) or `container:<id|name>`.
    /// The daemon's default (`bridge` unless configured) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Ports published on the host (network modes `bridge` and named networks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// More names the container answers to on its user network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_aliases: Vec<String>,
    /// A fixed IPv4 address on its network (in the network's subnet, not the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Resolvers for `/etc/resolv.conf`, replacing the default ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// resolv.conf search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// resolv.conf options (`ndots:2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// More `/etc/hosts` entries, `name:address` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Publish every port the image exposes (its `exposed_ports`) that `ports` does not
    /// already publish, each on a random free host port (Docker's `-P`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_all: bool,
}

/// A published port: `host_ip:host_port` on the host forwards to `container_port`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// Host address; the daemon's `port_host_ip` (default `0.0.0.0`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port; a free one is picked (and reported) when absent or 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A container's address on one network, while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEndpoint {
    /// The network's name.
    pub network: String,
    /// The interface inside the container.
    pub ifname: String,
    /// Address with prefix length (`10.77.0.2/16`).
    #[serde(default)]
    pub address: Option<String>,
    /// Gateway.
    #[serde(default)]
    pub gateway: Option<String>,
    /// MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// IPv6 address with prefix length, on a network with IPv6.
    #[serde(default)]
    pub address6: Option<String>,
}

/// `POST /v1/networks` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    /// Unique name.
    pub name: String,
    /// IPv4 subnet (CIDR); a free /24 of the daemon's pool when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Gateway (the bridge's address); the subnet's first address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// IPv6 subnet (CIDR, at most /120): containers get an IPv6 address too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// IPv6 gateway; the IPv6 subnet's first address when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// An operator's own CNI configuration list (any installed plugins), used as given
    /// instead of boxd's bridge list; then no subnet or gateway is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflist: Option<serde_json::Value>,
    /// No NAT and no route out: containers reach only each other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A network (`GET /v1/networks`, `GET /v1/networks/{name}`, the create answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Id (64 hex digits).
    pub id: String,
    /// Name.
    pub name: String,
    /// `bridge`: a Linux bridge through the CNI `bridge` plugin.
    pub driver: String,
    /// The bridge's name on the host.
    pub bridge: String,
    /// IPv4 subnet.
    pub subnet: String,
    /// Gateway.
    pub gateway: String,
    /// IPv6 subnet, when the network has IPv6.
    #[serde(default)]
    pub subnet6: Option<String>,
    /// IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<String>,
    /// No route out.
    pub internal: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The default network (cannot be removed).
    #[serde(default)]
    pub default: bool,
    /// Running containers attached, with their addresses.
    #[serde(default)]
    pub containers: Vec<NetworkContainer>,
    /// The operator's own CNI configuration list, for driver `cni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflist: Option<serde_json::Value>,
}

/// `POST /v1/volumes` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreate {
    /// Name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`); a random 64-hex one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `local` (the default; the only driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options: `size` (`100m`: a loop-mounted ext4 image of that size), or
    /// `type=none`, `o=bind`, `device=/host/dir` (a host directory used in place).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A volume (`GET /v1/volumes`, `GET /v1/volumes/{name}`, the create answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Name.
    pub name: String,
    /// `local`.
    pub driver: String,
    /// Where its data is on the host.
    pub mountpoint: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The driver options it was created with.
    #[serde(default)]
    pub driver_opts: BTreeMap<String, String>,
    /// `local`.
    pub scope: String,
    /// Made without a name (for one container; `DELETE /v1/containers/{id}?v=true`
    /// removes it with the container).
    #[serde(default)]
    pub anonymous: bool,
    /// Size limit in bytes (a sized volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Ids of the containers (in any state) configured with it.
    #[serde(default)]
    pub containers: Vec<String>,
}

/// `POST /v1/volumes/prune` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumePruneResponse {
    /// Names of the volumes removed.
    pub volumes_deleted: Vec<String>,
    /// Bytes freed on disk.
    pub space_reclaimed: u64,
}

/// `POST /v1/networks/{name}/connect` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConnect {
    /// The container (id, prefix or name).
    pub container: String,
    /// More DNS names of the container on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// `POST /v1/networks/{name}/disconnect` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDisconnect {
    /// The container (id, prefix or name).
    pub container: String,
}

/// A container attached to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkContainer {
    /// Container id.
    pub id: String,
    /// Its address on the network.
    #[serde(flatten)]
    pub endpoint: NetworkEndpoint,
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

/// `POST /v1/containers/{id}/update` body: the limits to change (the same fields and
/// rules as `resources` at create) and the restart policy. An absent field keeps its
/// value. A running container's cgroup is changed at once; every container keeps the
/// new values for its next starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateContainer {
    /// Memory limit in bytes (at least 6 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory plus swap in bytes, as Docker's `--memory-swap`; `-1`: unlimited swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_bytes: Option<i64>,
    /// Maximum number of processes; `-1`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<i64>,
    /// CPU quota in microseconds per period; `-1`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period_us: Option<u64>,
    /// Relative CPU weight (2..=262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// `no`, `on-failure[:MAX_RETRIES]`, `always` or `unless-stopped`; applies to the
    /// exits from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

/// `200` answer to `POST /v1/containers/{id}/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateResponse {
    /// Limits this host cannot honour exactly, said plainly.
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
    /// The security settings in force (defaults applied).
    #[serde(default)]
    pub security: SecurityConfig,
    /// The app has a terminal.
    #[serde(default)]
    pub tty: bool,
    /// The app's stdin is kept open for `attach`.
    #[serde(default)]
    pub open_stdin: bool,
    /// The app's stdin closes when the attached client closes its side.
    #[serde(default)]
    pub stdin_once: bool,
    /// The daemon removes the container when its run ends.
    #[serde(default)]
    pub auto_remove: bool,
    /// The signal `stop` sends first, when the create gave one (else the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// The container's user namespace; absent: it shares the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<UsernsConfig>,
    /// Network mode (`none`, `host`, `container:<id>`, or a network's name).
    #[serde(default = "default_network_mode")]
    pub network: String,
    /// Published ports (host ports resolved).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    /// More DNS names on its user network.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// The fixed address asked for.
    #[serde(default)]
    pub ip: Option<String>,
    /// Networks connected after create (`POST /v1/networks/{name}/connect`).
    #[serde(default)]
    pub connected_networks: Vec<String>,
    /// Links given through the Docker API, `name:alias`: on its user networks `alias`
    /// is a name only this container resolves, as the linked container's `name`.
    #[serde(default)]
    pub links: Vec<String>,
    /// Resolvers given at create.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Search domains given at create.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// resolv.conf options given at create.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// Extra `/etc/hosts` entries, `name:address`.
    #[serde(default)]
    pub extra_hosts: Vec<String>,
}

fn default_network_mode() -> String {
    "none".to_owned()
}

/// A resource limit of the container's processes, as Docker's `--ulimit name=soft:hard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// `nofile`, `nproc`, `core`, `stack`, `memlock`, ... (setrlimit's names, lowercase,
    /// without `RLIMIT_`).
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit (never above the host's hard limit: it is clamped there).
    pub hard: u64,
}

/// The effective security settings of a container, shown by `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// The capability bounding set (`CAP_CHOWN`, ...); a root app also has these
    /// effective and permitted, a non-root app has none.
    pub capabilities: Vec<String>,
    /// Whether no_new_privs is set.
    pub no_new_privileges: bool,
    /// `default`, `unconfined` or `custom`.
    pub seccomp: String,
    /// The custom seccomp profile (Docker JSON) when `seccomp` is `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    /// Whether the root filesystem is read-only.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// tmpfs mounts and their options.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    /// rlimits set on the app.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// Paths hidden from the container.
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// Paths the container may read but not write.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// Device nodes the container may use (`c 1:3 rwm`, the cgroup device rules).
    #[serde(default)]
    pub devices: Vec<String>,
}

impl Default for SecurityConfig {
    /// A record written before these settings existed runs with the secure defaults.
    fn default() -> Self {
        SecurityConfig {
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
    /// Whether it is paused (`POST /v1/containers/{id}/pause`): its cgroup is frozen.
    /// A paused container's `state` stays `running`, as Docker's `State.Running`
    /// stays true beside `State.Paused`.
    #[serde(default)]
    pub paused: bool,
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
    /// The restart policy (`no`, `on-failure[:N]`, `always`, `unless-stopped`).
    #[serde(default = "default_restart_policy")]
    pub restart_policy: String,
    /// How many times the policy restarted it since the user last started it.
    #[serde(default)]
    pub restart_count: u32,
    /// When the policy will start it again, while it waits out its back-off.
    #[serde(default)]
    pub next_restart_at: Option<DateTime<Utc>>,
    /// Memory events of the current (or last) run and how the last run ended.
    #[serde(flatten, default)]
    pub observed: Observed,
    /// Addresses on networks while running.
    #[serde(default)]
    pub networks: Vec<NetworkEndpoint>,
}

fn default_restart_policy() -> String {
    "no".to_owned()
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

/// What boxd saw of a container's runs (part of `GET /v1/containers/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// OOM kills in the container's cgroup during the current (or last) run, any
    /// process, not only the first.
    #[serde(default)]
    pub oom_kill_count: u64,
    /// `memory_pressure` warnings during the current (or last) run.
    #[serde(default)]
    pub memory_pressure_count: u64,
    /// The kernel's memory event counters of the run (v2 `memory.events`: `low`,
    /// `high`, `max`, `oom`, `oom_kill`; v1: `oom`, `oom_kill`, `failcnt`).
    #[serde(default)]
    pub memory_events: BTreeMap<String, u64>,
    /// The warning threshold in effect, in percent of the memory limit (0: off).
    #[serde(default)]
    pub memory_warning_percent: u8,
    /// How the last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
}

/// One run's end: an item of `GET /v1/containers/{id}/exits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Sequence number of the record (increases with every recorded exit).
    pub seq: i64,
    /// The container's id.
    pub container_id: String,
    /// When the run started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How long it ran, in milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
    /// Exit code (128+N when killed by signal N); absent when the run's end was lost.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Whether the kernel OOM killer killed a process of the container in the run.
    #[serde(default)]
    pub oom_killed: bool,
    /// How many processes the OOM killer killed in the run.
    #[serde(default)]
    pub oom_kill_count: u64,
    /// `memory_pressure` warnings in the run.
    #[serde(default)]
    pub memory_pressure_count: u64,
    /// The kernel's memory event counters at the end of the run.
    #[serde(default)]
    pub memory_events: BTreeMap<String, u64>,
    /// The memory limit in bytes, if one was set.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// The highest memory use seen in the run, in bytes.
    #[serde(default)]
    pub memory_peak: Option<u64>,
    /// CPU time in user mode, microseconds.
    #[serde(default)]
    pub cpu_user_usec: Option<u64>,
    /// CPU time in kernel mode, microseconds.
    #[serde(default)]
    pub cpu_system_usec: Option<u64>,
    /// The last lines (at most 20) the container wrote.
    #[serde(default)]
    pub last_log: Vec<String>,
    /// Why the run's end is unknown (its shim vanished), if so.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/containers/{id}/stats` and the items of `GET /v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// When the numbers were read.
    pub read: DateTime<Utc>,
    /// Memory.
    pub memory: MemoryStats,
    /// CPU.
    pub cpu: CpuStats,
    /// Processes.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
    /// Network traffic of the container's interfaces (`lo` left out); zero in network
    /// mode `host`.
    #[serde(default)]
    pub network: NetworkStats,
}

/// Network counters, summed over the container's interfaces but `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// Memory numbers of a container's cgroup, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Current use (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage: u64,
    /// The limit; absent when unlimited.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Highest use so far (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`).
    #[serde(default)]
    pub peak: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file` of `memory.stat`).
    #[serde(default)]
    pub cache: u64,
    /// Swap in use, where the kernel accounts it.
    #[serde(default)]
    pub swap: Option<u64>,
}

/// CPU numbers of a container's cgroup, microseconds unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time.
    pub usage_usec: u64,
    /// In user mode.
    pub user_usec: u64,
    /// In kernel mode.
    pub system_usec: u64,
    /// Enforcement periods that elapsed (with a quota).
    pub nr_periods: u64,
    /// Periods in which the group was throttled.
    pub nr_throttled: u64,
    /// Time throttled.
    pub throttled_usec: u64,
}

/// Process numbers of a container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes (and threads) now.
    pub current: u64,
    /// The limit; absent when unlimited.
    #[serde(default)]
    pub max: Option<u64>,
}

/// Block I/O of a container's cgroup, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
}

/// `GET /v1/system/check`: whether the store and the kernel agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemCheck {
    /// No problem found.
    pub ok: bool,
    /// Each inconsistency still present, as a sentence.
    pub problems: Vec<String>,
    /// What the start-up reconcile did, as sentences.
    pub reconciled: Vec<String>,
}

/// `POST /v1/containers/{id}/exec` body: one more process in a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCreate {
    /// Command and arguments (`argv[0]` is looked up in the container's `PATH`).
    pub cmd: Vec<String>,
    /// Environment, `K=V` each, added to the container's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory inside the container; the container's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a user name; the container's user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Give the process a terminal (output is then raw, not framed).
    #[serde(default)]
    pub tty: bool,
    /// Connect the client's stdin (needs the upgraded connection).
    #[serde(default)]
    pub stdin: bool,
    /// Initial terminal height (rows), with `tty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
    /// Initial terminal width (columns), with `tty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
}

/// `GET /v1/exec/{exec_id}`, and the items of `execs` in a container's inspect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecInspect {
    /// The exec's id (64 hex digits).
    pub id: String,
    /// The container it runs in.
    pub container_id: String,
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// Whether it has a terminal.
    pub tty: bool,
    /// Whether it is still running.
    pub running: bool,
    /// Host pid while it runs.
    pub pid: Option<u32>,
    /// Exit code once it ended (128+N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Signal that ended it, if one did.
    #[serde(default)]
    pub exit_signal: Option<i32>,
    /// Whether the OOM killer killed it.
    #[serde(default)]
    pub oom_killed: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/containers/{id}`: the container and its recent execs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInspect {
    /// The container.
    #[serde(flatten)]
    pub container: Container,
    /// Execs of this daemon's run in it, oldest first (the last 16).
    #[serde(default)]
    pub execs: Vec<ExecInspect>,
    /// What an operator should know about its configuration (e.g. network mode `host`
    /// is not isolated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Response header of `POST /v1/containers/{id}/exec` that carries the exec's id.
pub const EXEC_ID_HEADER: &str = "boxd-exec-id";
