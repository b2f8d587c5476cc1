//! `/containers/...`: Docker's container calls onto the engine.
//!
//! Create translates Docker's `Config` + `HostConfig` + `NetworkingConfig` into the
//! engine's [`ContainerSpec`] in [`create_spec`]; every field boxd cannot honour is a
//! 400 naming it. Inspect and list translate back. Names are shown as Docker shows them
//! (`/web`), and boxd's default network as `bridge`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bollard_stubs::models::{
    ContainerConfig, ContainerCreateResponse, ContainerInspectResponse, ContainerPruneResponse,
    ContainerState as DockerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerTopResponse,
    ContainerWaitExitError, ContainerWaitResponse, DriverData, EndpointSettings, HostConfig,
    HostConfigLogConfig, MountPoint, MountPointTypeEnum, MountTypeEnum, NetworkSettings, Port,
    PortBinding, PortTypeEnum, RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use chrono::{DateTime, Utc};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::error::{bool_value, DockerError, DockerJson, DockerQuery};
use super::models::{parse_time, time, CreateBody, Filters, QueryFilters};
use crate::api::AppState;
use crate::network::{Endpoint, Link, ModeRequest, NetworkMode, NetworkRequest, PortRequest};
use crate::runtime::attach::AttachOptions;
use crate::runtime::logs::{LogFormat, LogOptions};
use crate::runtime::names::parse_signal;
use crate::runtime::restart::RestartPolicy;
use crate::runtime::spec::{self, Container, ContainerSpec, ContainerState};
use crate::runtime::{RuntimeError, WaitCondition};

/// The default stop timeout (Docker's).
const STOP_TIMEOUT: u64 = 10;

// ----- create ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct CreateQuery {
    name: Option<String>,
    platform: Option<String>,
}

pub(super) async fn create(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<CreateQuery>,
    DockerJson(body): DockerJson<CreateBody>,
) -> Result<(StatusCode, Json<ContainerCreateResponse>), DockerError> {
    if let Some(p) = q.platform.as_deref().filter(|p| !p.is_empty()) {
        let here = format!("linux/{}", super::system_arch());
        if p != here && p != "linux" {
            return Err(DockerError::bad(format!(
                "platform {p} is not this host's ({here}); boxd runs images of its own platform"
            )));
        }
    }
    let image = body.config.image.clone().unwrap_or_default();
    let spec = create_spec(q.name, body)?;
    match s.runtime.create(spec).await {
        Ok(created) => Ok((
            StatusCode::CREATED,
            Json(ContainerCreateResponse {
                id: created.id,
                warnings: created.warnings,
            }),
        )),
        // The CLI reads a 404 here as "pull the image, then create again".
        Err(RuntimeError::NotFound { kind: "image", .. }) => Err(DockerError::new(
            StatusCode::NOT_FOUND,
            format!("No such image: {}", with_default_tag(&image)),
        )),
        Err(e) => Err(e.into()),
    }
}

/// An image reference as Docker names it locally (`busybox:latest`), through the one
/// reference grammar; as given when it does not parse.
fn with_default_tag(image: &str) -> String {
    crate::image::reference::Reference::parse(image)
        .ok()
        .and_then(|r| r.familiar_digest().or_else(|| r.familiar_tag()))
        .unwrap_or_else(|| image.to_owned())
}

/// Refuses a field boxd does not honour when it is set.
fn refuse(field: &str, set: bool, why: &str) -> Result<(), DockerError> {
    if set {
        return Err(DockerError::bad(format!(
            "{field} is not supported by boxd: {why}"
        )));
    }
    Ok(())
}

fn some_nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn positive(v: Option<i64>) -> Option<i64> {
    v.filter(|n| *n > 0)
}

/// Docker's create body as the engine's spec.
pub(super) fn create_spec(
    name: Option<String>,
    body: CreateBody,
) -> Result<ContainerSpec, DockerError> {
    let c = body.config;
    let h = body.host_config.unwrap_or_default();
    let image =
        some_nonempty(c.image).ok_or_else(|| DockerError::bad("Config.Image is required"))?;

    // What boxd cannot do is refused by name, never dropped.
    refuse("HostConfig.Privileged", h.privileged == Some(true), "containers always run with a reduced capability set, seccomp and no new privileges; add the capabilities the app needs with CapAdd")?;
    refuse(
        "HostConfig.PidMode",
        some_nonempty(h.pid_mode.clone()).is_some_and(|m| m != "private"),
        "every container has its own pid namespace",
    )?;
    refuse(
        "HostConfig.IpcMode",
        some_nonempty(h.ipc_mode.clone()).is_some_and(|m| m != "private" && m != "shareable"),
        "every container has its own IPC namespace",
    )?;
    refuse(
        "HostConfig.UTSMode",
        some_nonempty(h.uts_mode.clone()).is_some(),
        "every container has its own UTS namespace",
    )?;
    refuse(
        "HostConfig.UsernsMode",
        some_nonempty(h.userns_mode.clone()).is_some_and(|m| m != "host"),
        "use boxd's /v1 API for user namespaces (userns: auto)",
    )?;
    refuse(
        "HostConfig.CgroupnsMode",
        h.cgroupns_mode
            .as_ref()
            .is_some_and(|m| m.to_string() == "host"),
        "containers get a private cgroup namespace",
    )?;
    refuse(
        "HostConfig.CgroupParent",
        some_nonempty(h.cgroup_parent.clone()).is_some(),
        "the daemon's cgroup_parent setting places every container",
    )?;
    refuse(
        "HostConfig.VolumesFrom",
        h.volumes_from.as_ref().is_some_and(|v| !v.is_empty()),
        "mount the same host paths or volumes instead",
    )?;
    refuse(
        "HostConfig.Devices",
        h.devices.as_ref().is_some_and(|v| !v.is_empty()),
        "device access is not offered through the Docker API",
    )?;
    refuse(
        "HostConfig.DeviceRequests",
        h.device_requests.as_ref().is_some_and(|v| !v.is_empty()),
        "GPUs and other device requests are not supported",
    )?;
    refuse(
        "HostConfig.DeviceCgroupRules",
        h.device_cgroup_rules
            .as_ref()
            .is_some_and(|v| !v.is_empty()),
        "device access is not offered through the Docker API",
    )?;
    refuse(
        "HostConfig.OomKillDisable",
        h.oom_kill_disable == Some(true),
        "an OOM kill is always allowed (and always reported)",
    )?;
    refuse(
        "HostConfig.OomScoreAdj",
        h.oom_score_adj.is_some_and(|n| n != 0),
        "the OOM score of containers is not adjustable",
    )?;
    refuse(
        "HostConfig.CpusetCpus",
        some_nonempty(h.cpuset_cpus.clone()).is_some(),
        "cpusets are not supported; limit CPU time with NanoCpus",
    )?;
    refuse(
        "HostConfig.CpusetMems",
        some_nonempty(h.cpuset_mems.clone()).is_some(),
        "cpusets are not supported",
    )?;
    refuse(
        "HostConfig.BlkioWeight",
        h.blkio_weight.is_some_and(|n| n > 0),
        "block I/O weights are not supported",
    )?;
    refuse(
        "HostConfig.MemoryReservation",
        positive(h.memory_reservation).is_some(),
        "soft memory reservations are not supported",
    )?;
    refuse(
        "HostConfig.KernelMemoryTCP",
        positive(h.kernel_memory_tcp).is_some(),
        "kernel memory limits are obsolete",
    )?;
    refuse(
        "HostConfig.ShmSize",
        positive(h.shm_size).is_some(),
        "the size of /dev/shm is not configurable",
    )?;
    refuse(
        "HostConfig.Sysctls",
        h.sysctls.as_ref().is_some_and(|m| !m.is_empty()),
        "sysctls are not configurable",
    )?;
    refuse(
        "HostConfig.GroupAdd",
        h.group_add.as_ref().is_some_and(|v| !v.is_empty()),
        "supplementary groups come from the image's /etc/group",
    )?;
    refuse(
        "HostConfig.Init",
        h.init == Some(true),
        "there is no init process in boxd containers; the app is pid 1",
    )?;
    refuse(
        "HostConfig.Runtime",
        some_nonempty(h.runtime.clone()).is_some_and(|r| r != "runc" && r != "boxd"),
        "boxd is its own runtime",
    )?;
    refuse(
        "HostConfig.Isolation",
        h.isolation
            .as_ref()
            .is_some_and(|i| !matches!(i.to_string().as_str(), "" | "default")),
        "only Linux namespaces",
    )?;
    refuse(
        "HostConfig.CpuRealtimePeriod",
        positive(h.cpu_realtime_period).is_some(),
        "real-time scheduling is not supported",
    )?;
    refuse(
        "HostConfig.CpuRealtimeRuntime",
        positive(h.cpu_realtime_runtime).is_some(),
        "real-time scheduling is not supported",
    )?;
    refuse(
        "HostConfig.MaskedPaths",
        h.masked_paths.as_ref().is_some_and(|v| !v.is_empty()),
        "boxd masks its own set of paths",
    )?;
    refuse(
        "HostConfig.ReadonlyPaths",
        h.readonly_paths.as_ref().is_some_and(|v| !v.is_empty()),
        "boxd sets its own read-only paths",
    )?;
    refuse(
        "HostConfig.VolumeDriver",
        some_nonempty(h.volume_driver.clone()).is_some_and(|d| d != "local"),
        "only the local volume driver",
    )?;
    if let Some(log) = &h.log_config {
        let t = log.typ.clone().unwrap_or_default();
        refuse("HostConfig.LogConfig.Type", !matches!(t.as_str(), "" | "json-file" | "local"), "boxd keeps each container's log itself (docker logs reads it); rotation is the daemon's log_max_size and log_max_files")?;
    }
    refuse(
        "Config.Healthcheck",
        c.healthcheck.as_ref().is_some_and(|hc| {
            hc.test
                .as_ref()
                .is_some_and(|t| !t.is_empty() && t[0] != "NONE")
        }),
        "health checks are not run by boxd",
    )?;
    refuse(
        "Config.MacAddress",
        some_nonempty(c.mac_address.clone()).is_some(),
        "MAC addresses are chosen by the bridge plugin",
    )?;
    refuse(
        "Config.Domainname",
        some_nonempty(c.domainname.clone()).is_some(),
        "set a fully qualified Hostname instead",
    )?;

    // Resources.
    let mut resources = spec::Resources {
        memory_bytes: positive(h.memory).map(|n| n as u64),
        memory_swap_bytes: h.memory_swap.filter(|n| *n != 0),
        memory_swappiness: h.memory_swappiness.filter(|n| *n >= 0).map(|n| n as u64),
        pids_max: h.pids_limit.filter(|n| *n > 0),
        cpu_shares: positive(h.cpu_shares).map(|n| n as u64),
        ..Default::default()
    };
    (resources.cpu_quota_us, resources.cpu_period_us) =
        cpu_limits(h.nano_cpus, h.cpu_quota, h.cpu_period)?;
    if let Some(opts) = &h.storage_opt {
        for (k, v) in opts {
            match k.as_str() {
                "size" => {
                    resources.disk_bytes = Some(parse_size(v).ok_or_else(|| {
                        DockerError::bad(format!("StorageOpt size {v:?} is not a size (e.g. 1G)"))
                    })?)
                }
                other => {
                    return Err(DockerError::bad(format!(
                        "StorageOpt {other} is not supported: only size"
                    )))
                }
            }
        }
    }

    // Mounts.
    let mut mounts = Vec::new();
    let mut tmpfs: std::collections::BTreeMap<String, String> =
        h.tmpfs.clone().unwrap_or_default().into_iter().collect();
    for bind in h.binds.clone().unwrap_or_default() {
        mounts.push(parse_bind(&bind)?);
    }
    // `-v /path`: an anonymous volume, unless a bind or mount already covers the path.
    for target in c.volumes.clone().unwrap_or_default().into_keys() {
        if !mounts.iter().any(|m: &spec::Mount| m.target == target) {
            mounts.push(spec::Mount {
                kind: spec::MountKind::Volume,
                source: String::new(),
                target,
                read_only: false,
            });
        }
    }
    for m in h.mounts.clone().unwrap_or_default() {
        let target = m.target.clone().unwrap_or_default();
        match m.typ {
            Some(MountTypeEnum::BIND) => {
                let source = m.source.clone().unwrap_or_default();
                if !source.starts_with('/') {
                    return Err(DockerError::bad(format!(
                        "Mounts: the source of a bind mount must be an absolute host path, not {source:?}"
                    )));
                }
                mounts.push(spec::Mount {
                    kind: spec::MountKind::Bind,
                    source,
                    target,
                    read_only: m.read_only.unwrap_or(false),
                });
            }
            Some(MountTypeEnum::TMPFS) => {
                let mut opts = Vec::new();
                if let Some(o) = &m.tmpfs_options {
                    if let Some(size) = o.size_bytes.filter(|n| *n > 0) {
                        opts.push(format!("size={size}"));
                    }
                    if let Some(mode) = o.mode.filter(|n| *n > 0) {
                        opts.push(format!("mode={mode:o}"));
                    }
                }
                tmpfs.insert(target, opts.join(","));
            }
            Some(MountTypeEnum::VOLUME) => {
                if m.volume_options
                    .as_ref()
                    .is_some_and(|o| o.no_copy == Some(true) || o.driver_config.is_some())
                {
                    return Err(DockerError::bad(
                        "Mounts: VolumeOptions NoCopy and DriverConfig are not supported",
                    ));
                }
                mounts.push(spec::Mount {
                    kind: spec::MountKind::Volume,
                    source: m.source.clone().unwrap_or_default(),
                    target,
                    read_only: m.read_only.unwrap_or(false),
                });
            }
            other => {
                return Err(DockerError::bad(format!(
                    "Mounts of type {} are not supported: use bind or tmpfs",
                    other.map(|t| t.to_string()).unwrap_or_default()
                )))
            }
        }
    }

    // Security.
    let security = spec::SecurityRequest {
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        security_opt: h.security_opt.clone().unwrap_or_default(),
        seccomp: None,
        no_new_privileges: None,
        read_only_rootfs: h.readonly_rootfs.unwrap_or(false),
        tmpfs,
        ulimits: h
            .ulimits
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|u| spec::Ulimit {
                name: u.name.unwrap_or_default(),
                soft: u.soft.unwrap_or(0).max(0) as u64,
                hard: u.hard.unwrap_or(0).max(0) as u64,
            })
            .collect(),
    };

    // Restart policy.
    let restart_policy = h
        .restart_policy
        .as_ref()
        .map_or(RestartPolicy::No, restart_policy_in);
    let auto_remove = h.auto_remove.unwrap_or(false);
    if auto_remove && restart_policy != RestartPolicy::No {
        return Err(DockerError::bad(
            "can't create 'AutoRemove' container with restart policy",
        ));
    }

    // Network.
    let network = network_request(
        &c.exposed_ports,
        &h,
        body.networking_config,
        c.network_disabled,
    )?;

    let entrypoint = c.entrypoint.map(|e| {
        if e.len() == 1 && e[0].is_empty() {
            Vec::new()
        } else {
            e
        }
    });
    Ok(ContainerSpec {
        image,
        name: name
            .map(|n| n.trim_start_matches('/').to_owned())
            .filter(|n| !n.is_empty()),
        cmd: c.cmd.filter(|c| !c.is_empty()),
        entrypoint,
        env: c.env.unwrap_or_default(),
        working_dir: some_nonempty(c.working_dir),
        hostname: some_nonempty(c.hostname),
        hostname_is_short_id: true,
        user: some_nonempty(c.user),
        mounts,
        resources,
        labels: c.labels.unwrap_or_default().into_iter().collect(),
        restart_policy,
        security,
        memory_warning_percent: None,
        stdio: spec::Stdio {
            tty: c.tty.unwrap_or(false),
            open_stdin: c.open_stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
        },
        auto_remove,
        userns: spec::UsernsRequest::Host,
        network,
        stop_signal: some_nonempty(c.stop_signal),
    })
}

/// The CPU quota and period of Docker's `NanoCpus` or `CpuQuota`/`CpuPeriod` (0 is
/// unset; both ways at once is refused, as dockerd does).
fn cpu_limits(
    nano: Option<i64>,
    quota: Option<i64>,
    period: Option<i64>,
) -> Result<(Option<i64>, Option<u64>), DockerError> {
    let (nano, quota, period) = (positive(nano), positive(quota), positive(period));
    match nano {
        Some(_) if quota.is_some() || period.is_some() => Err(DockerError::bad(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set",
        )),
        Some(n) => Ok((Some((n / 10_000).max(1000)), Some(100_000))),
        None => Ok((quota, period.map(|p| p as u64))),
    }
}

/// `512m`, `1G`, `1024` (bytes).
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    let v = v.strip_suffix('b').unwrap_or(&v);
    let (num, mult) = match v.chars().last()? {
        'k' => (&v[..v.len() - 1], 1u64 << 10),
        'm' => (&v[..v.len() - 1], 1 << 20),
        'g' => (&v[..v.len() - 1], 1 << 30),
        't' => (&v[..v.len() - 1], 1 << 40),
        _ => (v, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n > 0.0).then_some((n * mult as f64) as u64)
}

/// `-v` binds: `/host:/ctr[:ro|rw|z|Z...]`, or `name:/ctr[:ro]` for a named volume.
fn parse_bind(bind: &str) -> Result<spec::Mount, DockerError> {
    let parts: Vec<&str> = bind.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => {
            return Err(DockerError::bad(format!(
                "invalid bind {bind:?}: use /host/path:/container/path[:ro] or volume:/container/path[:ro]"
            )))
        }
    };
    let kind = if source.starts_with('/') {
        spec::MountKind::Bind
    } else {
        spec::MountKind::Volume
    };
    let mut read_only = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "delegated" | "cached" | "consistent" => {}
            "nocopy" => {
                return Err(DockerError::bad(format!(
                "bind {bind:?}: nocopy is not supported (an empty volume is filled from the image)"
            )))
            }
            other => {
                return Err(DockerError::bad(format!(
                    "bind {bind:?}: option {other:?} is not supported (ro or rw)"
                )))
            }
        }
    }
    Ok(spec::Mount {
        kind,
        source: source.to_owned(),
        target: target.to_owned(),
        read_only,
    })
}

fn network_request(
    exposed: &Option<HashMap<String, HashMap<(), ()>>>,
    h: &HostConfig,
    networking: Option<bollard_stubs::models::NetworkingConfig>,
    disabled: Option<bool>,
) -> Result<NetworkRequest, DockerError> {
    let mode_name = h.network_mode.clone().unwrap_or_default();
    let mode = if disabled == Some(true) {
        ModeRequest::None
    } else {
        ModeRequest::parse(&mode_name).map_err(|e| DockerError::bad(format!("NetworkMode: {e}")))?
    };
    let mut req = NetworkRequest {
        mode,
        publish_all: h.publish_all_ports.unwrap_or(false),
        ..Default::default()
    };
    let _ = exposed;
    for (key, bindings) in h.port_bindings.clone().unwrap_or_default() {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let container_port: u16 = port
            .parse()
            .map_err(|_| DockerError::bad(format!("PortBindings: {key:?} is not a port")))?;
        let protocol = proto
            .parse()
            .map_err(|e: String| DockerError::bad(format!("PortBindings: {e}")))?;
        let bindings = bindings.unwrap_or_default();
        let bindings = if bindings.is_empty() {
            vec![PortBinding::default()]
        } else {
            bindings
        };
        for b in bindings {
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => None,
                ip => Some(ip.parse().map_err(|_| {
                    DockerError::bad(format!("PortBindings: {ip:?} is not an IP address"))
                })?),
            };
            let host_port = match b.host_port.as_deref().unwrap_or("") {
                "" | "0" => None,
                p => Some(p.parse::<u16>().map_err(|_| {
                    DockerError::bad(format!(
                        "PortBindings: host port {p:?} is not a port (ranges are not supported)"
                    ))
                })?),
            };
            req.ports.push(PortRequest {
                host_ip,
                host_port,
                container_port,
                protocol,
            });
        }
    }
    let parse_ips = |v: &Option<Vec<String>>| -> Result<Vec<std::net::IpAddr>, DockerError> {
        v.clone()
            .unwrap_or_default()
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| DockerError::bad(format!("Dns: {s:?} is not an IP address")))
            })
            .collect()
    };
    req.dns.servers = parse_ips(&h.dns)?;
    req.dns.search = h.dns_search.clone().unwrap_or_default();
    req.dns.options = h.dns_options.clone().unwrap_or_default();
    for e in h.extra_hosts.clone().unwrap_or_default() {
        let (host, ip) = e
            .split_once(':')
            .ok_or_else(|| DockerError::bad(format!("ExtraHosts: {e:?} is not host:ip")))?;
        let ip = ip.parse().map_err(|_| {
            DockerError::bad(format!(
                "ExtraHosts: {ip:?} is not an IP address (host-gateway is not supported)"
            ))
        })?;
        req.dns.extra_hosts.push((host.to_owned(), ip));
    }
    // `name:alias`, `name` (the alias is then the name), or the `/name:/self/alias`
    // that dockerd's inspect shows (a host config copied from another container), read
    // as moby's `opts.ParseLink`. docker-compose's `run` links the one-off container to
    // the service's running ones.
    for l in h.links.clone().unwrap_or_default() {
        let (name, alias) = match l.split_once(':') {
            None => (l.trim_start_matches('/'), l.trim_start_matches('/')),
            Some((name, path)) if name.starts_with('/') => {
                (&name[1..], path.rsplit('/').next().unwrap_or(path))
            }
            Some(pair) => pair,
        };
        if name.is_empty() || alias.is_empty() || alias.contains(':') {
            return Err(DockerError::bad(format!("Links: {l:?} is not name:alias")));
        }
        req.links.push(Link {
            name: name.to_owned(),
            alias: alias.to_owned(),
        });
    }
    // Aliases and a fixed address on the network the container joins.
    if let Some(endpoints) = networking.and_then(|n| n.endpoints_config) {
        if endpoints.len() > 1 {
            return Err(DockerError::bad(
                "a container joins one network at create; connect it to more afterwards",
            ));
        }
        for (_, e) in endpoints {
            req.aliases = e.aliases.unwrap_or_default();
            if let Some(ip) = e
                .ipam_config
                .and_then(|i| i.ipv4_address)
                .filter(|a| !a.is_empty())
            {
                req.ip = Some(ip.parse().map_err(|_| {
                    DockerError::bad(format!(
                        "IPAMConfig.IPv4Address {ip:?} is not an IPv4 address"
                    ))
                })?);
            }
        }
    }
    Ok(req)
}

// ----- list and inspect ------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    all: Option<String>,
    limit: Option<String>,
    size: Option<String>,
    filters: Option<String>,
}

pub(super) async fn list(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<ListQuery>,
) -> Result<Json<Vec<ContainerSummary>>, DockerError> {
    let filters = Filters::parse(q.filters.as_deref())?;
    let mut all = bool_value(q.all.as_deref());
    let limit = match q.limit.as_deref().filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| DockerError::bad(format!("limit {l:?} is not a number")))?,
        )
        .filter(|n| *n > 0),
    };
    if limit.is_some() || !filters.get("status").is_empty() || !filters.get("exited").is_empty() {
        all = true;
    }
    let mut list = summaries(&s, all, &filters, bool_value(q.size.as_deref())).await?;
    if let Some(n) = limit {
        list.truncate(n as usize);
    }
    Ok(Json(list))
}

/// Docker's state word.
fn state_word(c: &Container) -> &'static str {
    match c.state {
        ContainerState::Running if c.paused => "paused",
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Exited => "exited",
        ContainerState::Dead => "dead",
    }
}

/// Docker's human duration (`units.HumanDuration`).
fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let mins = d.num_minutes();
    if mins == 1 {
        return "About a minute".into();
    }
    if mins < 60 {
        return format!("{mins} minutes");
    }
    let hours = (d.num_seconds() as f64 / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", hours / 24 / 365)
}

/// The `Status` column of `docker ps`.
fn status_text(c: &Container, now: DateTime<Utc>) -> String {
    match c.state {
        ContainerState::Created => "Created".into(),
        ContainerState::Running => format!(
            "Up {}{}",
            human_duration(now - c.started_at.unwrap_or(c.created_at)),
            if c.paused { " (Paused)" } else { "" }
        ),
        ContainerState::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(0),
            human_duration(now - c.finished_at.unwrap_or(c.created_at))
        ),
        ContainerState::Dead => "Dead".into(),
    }
}

/// Docker's name for a boxd network (the default network is `bridge`).
pub(super) fn network_name(name: &str) -> String {
    if name == crate::network::DEFAULT_NETWORK {
        "bridge".to_owned()
    } else {
        name.to_owned()
    }
}

fn network_mode_text(mode: &NetworkMode) -> String {
    match mode {
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Network { name } => network_name(name),
        NetworkMode::Container { id } => format!("container:{id}"),
    }
}

fn command_text(c: &Container) -> String {
    c.config.cmd.join(" ")
}

fn ports_out(c: &Container) -> Vec<Port> {
    c.config
        .network
        .ports
        .iter()
        .map(|p| Port {
            ip: Some(p.host_ip.to_string()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            typ: Some(match p.protocol {
                crate::network::ports::Protocol::Tcp => PortTypeEnum::TCP,
                crate::network::ports::Protocol::Udp => PortTypeEnum::UDP,
            }),
        })
        .collect()
}

fn endpoint_out(c: &Container, e: &Endpoint, network_id: Option<String>) -> EndpointSettings {
    let (ip, prefix) = split_cidr(e.address.as_deref());
    let (ip6, prefix6) = split_cidr(e.address6.as_deref());
    let mut aliases: Vec<String> = c.config.network.aliases_on(&e.network).to_vec();
    let short = c.id[..12].to_owned();
    aliases.push(short.clone());

    EndpointSettings {
        network_id,
        endpoint_id: Some(format!("{}-{}", c.id, e.ifname)),
        gateway: Some(e.gateway.clone().unwrap_or_default()),
        ip_address: Some(ip),
        ip_prefix_len: Some(prefix),
        global_ipv6_address: Some(ip6),
        global_ipv6_prefix_len: Some(prefix6),
        ipv6_gateway: Some(String::new()),
        mac_address: Some(e.mac.clone().unwrap_or_default()),
        aliases: Some(aliases.clone()),
        dns_names: Some({
            let mut n = vec![c.name.clone()];
            n.extend(aliases);
            n
        }),
        ..Default::default()
    }
}

fn split_cidr(a: Option<&str>) -> (String, i64) {
    match a.and_then(|a| a.split_once('/')) {
        Some((ip, len)) => (ip.to_owned(), len.parse().unwrap_or(0)),
        None => (a.unwrap_or("").to_owned(), 0),
    }
}

/// Networks of a container with their endpoints (empty settings while not running).
/// Network ids by name, read once per answer.
async fn network_ids(s: &AppState) -> Result<HashMap<String, String>, DockerError> {
    Ok(s.runtime
        .networks()
        .list()
        .await?
        .into_iter()
        .map(|n| (n.name, n.id))
        .collect())
}

fn networks_of(
    c: &Container,
    endpoints: &[Endpoint],
    ids: &HashMap<String, String>,
) -> HashMap<String, EndpointSettings> {
    let mut out = HashMap::new();
    let names: Vec<String> = match &c.config.network.mode {
        NetworkMode::None => vec!["none".into()],
        NetworkMode::Host => vec!["host".into()],
        NetworkMode::Container { .. } => Vec::new(),
        NetworkMode::Network { .. } => c
            .config
            .network
            .networks()
            .iter()
            .map(|n| (*n).to_owned())
            .collect(),
    };
    for n in names {
        let id = ids.get(&n).cloned();
        let e = endpoints
            .iter()
            .find(|e| e.network == n)
            .cloned()
            .unwrap_or_else(|| Endpoint {
                network: n.clone(),
                ..Default::default()
            });
        let mut settings = endpoint_out(c, &e, id);
        if e.address.is_none() {
            settings.endpoint_id = Some(String::new());
        }
        out.insert(network_name(&n), settings);
    }
    out
}

fn mounts_out(c: &Container) -> Vec<MountPoint> {
    let mut out: Vec<MountPoint> = c
        .config
        .mounts
        .iter()
        .map(|m| MountPoint {
            typ: Some(match m.kind {
                spec::MountKind::Bind => MountPointTypeEnum::BIND,
                spec::MountKind::Volume => MountPointTypeEnum::VOLUME,
            }),
            name: (m.kind == spec::MountKind::Volume).then(|| m.source.clone()),
            driver: (m.kind == spec::MountKind::Volume).then(|| "local".to_owned()),
            source: Some(m.source.clone()),
            destination: Some(m.target.clone()),
            mode: Some(if m.read_only { "ro" } else { "" }.into()),
            rw: Some(!m.read_only),
            propagation: Some("rprivate".into()),
        })
        .collect();
    for target in c.config.security.tmpfs.keys() {
        out.push(MountPoint {
            typ: Some(MountPointTypeEnum::TMPFS),
            source: Some(String::new()),
            destination: Some(target.clone()),
            rw: Some(true),
            ..Default::default()
        });
    }
    out
}

async fn endpoints_by_container(
    s: &AppState,
) -> Result<HashMap<String, Vec<Endpoint>>, DockerError> {
    let mut out: HashMap<String, Vec<Endpoint>> = HashMap::new();
    for a in s.runtime.networks().attachments(None).await? {
        out.entry(a.container_id.clone())
            .or_default()
            .push(a.endpoint());
    }
    Ok(out)
}

/// `docker ps` rows, filtered.
pub(super) async fn summaries(
    s: &AppState,
    all: bool,
    filters: &Filters,
    size: bool,
) -> Result<Vec<ContainerSummary>, DockerError> {
    filters.only(&[
        "id", "name", "label", "status", "ancestor", "network", "exited", "before", "since",
        "volume", "health", "is-task", "publish", "expose",
    ])?;
    let now = Utc::now();
    let mut list = s.runtime.containers(all).await?;
    // Newest first, as Docker lists.
    list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let mut endpoints = endpoints_by_container(s).await?;
    let ids = network_ids(s).await?;
    let mut out = Vec::new();
    for c in list {
        if !matches_filters(&c, filters) {
            continue;
        }
        let e = endpoints.remove(&c.id).unwrap_or_default();
        let networks = networks_of(&c, &e, &ids);
        out.push(ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(vec![format!("/{}", c.name)]),
            image: Some(c.image.clone()),
            image_id: Some(c.image_id.clone()),
            command: Some(command_text(&c)),
            created: Some(c.created_at.timestamp()),
            ports: Some(ports_out(&c)),
            size_rw: size.then_some(0),
            size_root_fs: size.then_some(0),
            labels: Some(c.config.labels.clone().into_iter().collect()),
            state: Some(state_word(&c).into()),
            status: Some(status_text(&c, now)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: Some(network_mode_text(&c.config.network.mode)),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            mounts: Some(mounts_out(&c)),
        });
    }
    Ok(out)
}

fn matches_filters(c: &Container, f: &Filters) -> bool {
    let any = |name: &str, ok: &dyn Fn(&str) -> bool| {
        let v = f.get(name);
        v.is_empty() || v.iter().any(|x| ok(x))
    };
    any("id", &|x| c.id.starts_with(x))
        && any("name", &|x| {
            let x = x.trim_start_matches('/');
            // Docker matches names as a regular expression; a substring covers the
            // plain names people give.
            let x = x.trim_start_matches('^').trim_end_matches('$');
            c.name.contains(x)
        })
        && any("status", &|x| x == state_word(c))
        && any("exited", &|x| {
            c.state == ContainerState::Exited && x.parse::<i32>().ok() == c.exit_code
        })
        && any("ancestor", &|x| {
            c.image == x
                || with_default_tag(&c.image) == with_default_tag(x)
                || c.image_id == x
                || c.image_id
                    .trim_start_matches("sha256:")
                    .starts_with(x.trim_start_matches("sha256:"))
        })
        && any("network", &|x| {
            c.config
                .network
                .networks()
                .iter()
                .any(|n| *n == x || network_name(n) == x)
        })
        && f.labels_match("label", |k| c.config.labels.get(k).map(String::as_str))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ContainerInspectResponse>, DockerError> {
    let c = s.runtime.container(&id).await?;
    let endpoints: Vec<Endpoint> = s
        .runtime
        .networks()
        .attachments(Some(&c.id))
        .await?
        .iter()
        .map(crate::network::Attachment::endpoint)
        .collect();
    let execs = s.runtime.execs_of(&c.id);
    let ids = network_ids(&s).await?;
    Ok(Json(inspect_out(c, &endpoints, execs, &ids)))
}

fn inspect_out(
    c: Container,
    endpoints: &[Endpoint],
    execs: Vec<boxd_types::ExecInspect>,
    ids: &HashMap<String, String>,
) -> ContainerInspectResponse {
    let networks = networks_of(&c, endpoints, ids);
    let primary = networks
        .values()
        .find(|e| e.ip_address.as_deref().is_some_and(|a| !a.is_empty()))
        .cloned();
    let mut port_map: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.config.network.ports {
        port_map
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.to_string()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let running = c.state == ContainerState::Running;
    let state = DockerState {
        status: Some(match c.state {
            ContainerState::Created => ContainerStateStatusEnum::CREATED,
            ContainerState::Running if c.paused => ContainerStateStatusEnum::PAUSED,
            ContainerState::Running => ContainerStateStatusEnum::RUNNING,
            ContainerState::Exited => ContainerStateStatusEnum::EXITED,
            ContainerState::Dead => ContainerStateStatusEnum::DEAD,
        }),
        running: Some(running),
        paused: Some(c.paused),
        restarting: Some(c.next_restart_at.is_some()),
        oom_killed: Some(c.oom_killed),
        dead: Some(c.state == ContainerState::Dead),
        pid: Some(if running {
            c.pid.unwrap_or(0) as i64
        } else {
            0
        }),
        exit_code: Some(c.exit_code.unwrap_or(0) as i64),
        error: Some(c.error.clone().unwrap_or_default()),
        started_at: Some(time(c.started_at)),
        finished_at: Some(time(c.finished_at)),
        health: None,
    };
    let path = c.config.cmd.first().cloned().unwrap_or_default();
    let args = c.config.cmd.iter().skip(1).cloned().collect();
    let exposed: HashMap<String, HashMap<(), ()>> = c
        .config
        .network
        .ports
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.container_port, p.protocol),
                HashMap::new(),
            )
        })
        .collect();
    let config = ContainerConfig {
        hostname: Some(c.config.hostname.clone()),
        domainname: Some(String::new()),
        user: Some(c.config.user.clone()),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(c.config.tty),
        open_stdin: Some(c.config.open_stdin),
        stdin_once: Some(c.config.stdin_once),
        env: Some(c.config.env.clone()),
        cmd: Some(c.config.cmd.clone()),
        image: Some(c.image.clone()),
        working_dir: Some(c.config.working_dir.clone()),
        entrypoint: None,
        labels: Some(c.config.labels.clone().into_iter().collect()),
        stop_signal: c.config.stop_signal.clone(),
        ..Default::default()
    };
    let host_config = host_config_out(&c);
    ContainerInspectResponse {
        id: Some(c.id.clone()),
        created: Some(time(Some(c.created_at))),
        path: Some(path),
        args: Some(args),
        state: Some(state),
        image: Some(c.image_id.clone()),
        resolv_conf_path: Some(String::new()),
        hostname_path: Some(String::new()),
        hosts_path: Some(String::new()),
        log_path: Some(String::new()),
        name: Some(format!("/{}", c.name)),
        restart_count: Some(c.restart_count as i64),
        driver: Some("overlay2".into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: Some(
            execs
                .iter()
                .filter(|e| e.running)
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
        )
        .filter(|v| !v.is_empty()),
        host_config: Some(host_config),
        graph_driver: Some(DriverData {
            name: "overlay2".into(),
            data: HashMap::new(),
        }),
        size_rw: None,
        size_root_fs: None,
        mounts: Some(mounts_out(&c)),
        config: Some(config),
        network_settings: Some(NetworkSettings {
            bridge: Some(String::new()),
            sandbox_id: Some(String::new()),
            sandbox_key: Some(String::new()),
            ports: Some(port_map),
            ip_address: Some(
                primary
                    .as_ref()
                    .and_then(|p| p.ip_address.clone())
                    .unwrap_or_default(),
            ),
            ip_prefix_len: Some(primary.as_ref().and_then(|p| p.ip_prefix_len).unwrap_or(0)),
            gateway: Some(
                primary
                    .as_ref()
                    .and_then(|p| p.gateway.clone())
                    .unwrap_or_default(),
            ),
            mac_address: Some(
                primary
                    .as_ref()
                    .and_then(|p| p.mac_address.clone())
                    .unwrap_or_default(),
            ),
            endpoint_id: Some(
                primary
                    .as_ref()
                    .and_then(|p| p.endpoint_id.clone())
                    .unwrap_or_default(),
            ),
            global_ipv6_address: Some(String::new()),
            global_ipv6_prefix_len: Some(0),
            ipv6_gateway: Some(String::new()),
            networks: Some(networks),
            ..Default::default()
        }),
    }
}

fn host_config_out(c: &Container) -> HostConfig {
    let r = &c.resources;
    let (nano, quota, period) = match (r.cpu_quota_us, r.cpu_period_us) {
        (Some(q), Some(100_000)) if q > 0 => (Some(q * 10_000), Some(0), Some(0)),
        (q, p) => (Some(0), Some(q.unwrap_or(0)), Some(p.unwrap_or(0) as i64)),
    };
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.config.network.ports {
        port_bindings
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(String::new()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    let (name, max) = match c.restart_policy {
        RestartPolicy::No => (RestartPolicyNameEnum::NO, 0),
        RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, 0),
        RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, 0),
        RestartPolicy::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.unwrap_or(0) as i64,
        ),
    };
    HostConfig {
        memory: Some(r.memory_bytes.unwrap_or(0) as i64),
        memory_swap: Some(r.memory_swap_bytes.unwrap_or(0)),
        memory_swappiness: r.memory_swappiness.map(|n| n as i64),
        nano_cpus: nano,
        cpu_quota: quota,
        cpu_period: period,
        cpu_shares: Some(r.cpu_shares.unwrap_or(0) as i64),
        pids_limit: r.pids_max,
        network_mode: Some(network_mode_text(&c.config.network.mode)),
        port_bindings: Some(port_bindings),
        restart_policy: Some(DockerRestart {
            name: Some(name),
            maximum_retry_count: Some(max),
        }),
        auto_remove: Some(c.config.auto_remove),
        binds: Some(
            c.config
                .mounts
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}{}",
                        m.source,
                        m.target,
                        if m.read_only { ":ro" } else { "" }
                    )
                })
                .collect(),
        ),
        readonly_rootfs: Some(c.config.security.read_only_rootfs),
        tmpfs: Some(c.config.security.tmpfs.clone().into_iter().collect()),
        privileged: Some(false),
        cap_add: None,
        cap_drop: None,
        dns: Some(
            c.config
                .network
                .dns
                .servers
                .iter()
                .map(ToString::to_string)
                .collect(),
        ),
        dns_search: Some(c.config.network.dns.search.clone()),
        dns_options: Some(c.config.network.dns.options.clone()),
        extra_hosts: Some(
            c.config
                .network
                .dns
                .extra_hosts
                .iter()
                .map(|(h, ip)| format!("{h}:{ip}"))
                .collect(),
        ),
        // As given at create: dockerd keeps a user network's links in the host config.
        links: Some(
            c.config
                .network
                .links
                .iter()
                .map(|l| format!("{}:{}", l.name, l.alias))
                .collect(),
        ),
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::new()),
        }),
        ..Default::default()
    }
}

// ----- lifecycle -------------------------------------------------------------------

pub(super) async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    match s.runtime.start(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RuntimeError::AlreadyRunning(_)) => Ok(StatusCode::NOT_MODIFIED),
        Err(e) => Err(start_error(e)),
    }
}

/// A failed start in Docker's words where the CLI reads them: it exits 127 for
/// "executable file not found" or "no such file or directory" and 126 for
/// "permission denied".
fn start_error(e: RuntimeError) -> DockerError {
    let refused_exec = matches!(&e, RuntimeError::StartRefused { stage, .. } if stage == "exec");
    let d = DockerError::from(e);
    if !refused_exec {
        return d;
    }
    let m = d.message().to_owned();
    let lower = m.to_ascii_lowercase();
    let hint = if lower.contains("permission denied") {
        "permission denied"
    } else if lower.contains("not found in $path") {
        "executable file not found in $PATH"
    } else if lower.contains("not found") || lower.contains("no such file") {
        "no such file or directory"
    } else {
        return d;
    };
    if lower.contains(&hint.to_ascii_lowercase()) {
        return d;
    }
    DockerError::new(d.status(), format!("{m} ({hint})"))
}

#[derive(Debug, Deserialize)]
pub(super) struct StopQuery {
    t: Option<String>,
    timeout: Option<String>,
    signal: Option<String>,
}

fn stop_timeout(q: &StopQuery) -> Result<Duration, DockerError> {
    match q
        .t
        .as_deref()
        .or(q.timeout.as_deref())
        .filter(|t| !t.is_empty())
    {
        None => Ok(Duration::from_secs(STOP_TIMEOUT)),
        Some(t) => {
            let n: i64 = t
                .parse()
                .map_err(|_| DockerError::bad(format!("t {t:?} is not a number of seconds")))?;
            // -1: wait for ever (as long as boxd waits at most: a day).
            Ok(Duration::from_secs(if n < 0 {
                86_400
            } else {
                n.min(86_400) as u64
            }))
        }
    }
}

pub(super) async fn stop(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StopQuery>,
) -> Result<StatusCode, DockerError> {
    let timeout = stop_timeout(&q)?;
    let c = s.runtime.container(&id).await?;
    if c.state != ContainerState::Running {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    if let Some(sig) = q.signal.as_deref().filter(|s| !s.is_empty()) {
        let sig = parse_signal(sig).map_err(DockerError::bad)?;
        match s.runtime.kill(&c.id, sig).await {
            Ok(()) | Err(RuntimeError::NotRunning(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    s.runtime.stop(&c.id, timeout).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct KillQuery {
    signal: Option<String>,
}

pub(super) async fn kill(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<KillQuery>,
) -> Result<StatusCode, DockerError> {
    let sig = q
        .signal
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("KILL");
    let sig = parse_signal(sig).map_err(DockerError::bad)?;
    s.runtime.kill(&id, sig).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn restart(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StopQuery>,
) -> Result<StatusCode, DockerError> {
    let timeout = stop_timeout(&q)?;
    match s.runtime.restart(&id, timeout).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(start_error(e)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WaitQuery {
    condition: Option<String>,
}

/// `POST /containers/{id}/wait`: the headers at once (the CLI sends `start` only once
/// it has them), the body when the condition holds.
pub(super) async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<WaitQuery>,
) -> Result<Response, DockerError> {
    let condition = match q.condition.as_deref().unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(DockerError::bad(format!(
                "invalid condition {other:?}: use not-running, next-exit or removed"
            )))
        }
    };
    let c = s.runtime.container(&id).await?;
    let runtime = s.runtime.clone();
    let body = futures_util::stream::once(async move {
        let answer = match runtime.wait_until(&c.id, condition).await {
            Ok(w) => ContainerWaitResponse {
                status_code: w.exit_code as i64,
                error: None,
            },
            Err(e) => ContainerWaitResponse {
                status_code: -1,
                error: Some(ContainerWaitExitError {
                    message: Some(DockerError::from(e).message().to_owned()),
                }),
            },
        };
        let mut line = serde_json::to_vec(&answer).expect("wait answer serialises");
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
    v: Option<String>,
    link: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<RemoveQuery>,
) -> Result<StatusCode, DockerError> {
    if bool_value(q.link.as_deref()) {
        return Err(DockerError::bad("legacy links are not supported"));
    }
    match s
        .runtime
        .remove_with_volumes(&id, bool_value(q.force.as_deref()), bool_value(q.v.as_deref()))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RuntimeError::ContainerRunning(name)) => Err(DockerError::new(
            StatusCode::CONFLICT,
            format!("cannot remove container \"/{name}\": container is running: stop the container before removing or force remove"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn prune(
    State(s): State<AppState>,
    QueryFilters(filters): QueryFilters,
) -> Result<Json<ContainerPruneResponse>, DockerError> {
    filters.only(&["until", "label", "label!"])?;
    let until = match filters.get("until").first() {
        Some(u) => Some(parse_time("until", u)?),
        None => None,
    };
    let mut deleted = Vec::new();
    for c in s.runtime.containers(true).await? {
        if !matches!(
            c.state,
            ContainerState::Exited | ContainerState::Dead | ContainerState::Created
        ) {
            continue;
        }
        if until.is_some_and(|u| c.created_at > u)
            || !filters.labels_match("label", |k| c.config.labels.get(k).map(String::as_str))
            || filters
                .get("label!")
                .iter()
                .any(|l| match l.split_once('=') {
                    Some((k, v)) => c.config.labels.get(k).is_some_and(|x| x == v),
                    None => c.config.labels.contains_key(l.as_str()),
                })
        {
            continue;
        }
        match s.runtime.remove(&c.id, false).await {
            Ok(()) => deleted.push(c.id),
            Err(RuntimeError::NotFound { .. } | RuntimeError::ContainerRunning(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(ContainerPruneResponse {
        containers_deleted: Some(deleted),
        space_reclaimed: Some(0),
    }))
}

// ----- pause, rename, update ------------------------------------------------------

pub(super) async fn pause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    s.runtime.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn unpause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    s.runtime.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct RenameQuery {
    name: Option<String>,
}

pub(super) async fn rename(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<RenameQuery>,
) -> Result<StatusCode, DockerError> {
    let name = q
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| DockerError::bad("name is required"))?;
    s.runtime.rename(&id, name.trim_start_matches('/')).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an update: its warnings.
#[derive(Debug, Serialize)]
pub(super) struct UpdateAnswer {
    #[serde(rename = "Warnings")]
    warnings: Vec<String>,
}

/// Docker's update body: resources (0 = unchanged) and the restart policy.
#[derive(Debug, Default, Deserialize)]
pub(super) struct UpdateBody {
    #[serde(flatten)]
    resources: bollard_stubs::models::Resources,
    #[serde(rename = "RestartPolicy", default)]
    restart_policy: Option<DockerRestart>,
}

fn restart_policy_in(p: &DockerRestart) -> RestartPolicy {
    match p.name {
        None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO) => {
            RestartPolicy::No
        }
        Some(RestartPolicyNameEnum::ALWAYS) => RestartPolicy::Always,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => RestartPolicy::UnlessStopped,
        Some(RestartPolicyNameEnum::ON_FAILURE) => RestartPolicy::OnFailure {
            max_retries: p.maximum_retry_count.filter(|n| *n > 0).map(|n| n as u32),
        },
    }
}

pub(super) async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<UpdateBody>,
) -> Result<Json<UpdateAnswer>, DockerError> {
    let r = body.resources;
    refuse(
        "BlkioWeight",
        r.blkio_weight.is_some_and(|n| n > 0),
        "block I/O weights are not supported",
    )?;
    refuse(
        "CpusetCpus",
        r.cpuset_cpus.as_ref().is_some_and(|c| !c.is_empty()),
        "cpusets are not supported",
    )?;
    refuse(
        "MemoryReservation",
        positive(r.memory_reservation).is_some(),
        "soft memory reservations are not supported",
    )?;
    let (quota, period) = cpu_limits(r.nano_cpus, r.cpu_quota, r.cpu_period)?;
    let update = spec::ResourceUpdate {
        memory_bytes: positive(r.memory).map(|n| n as u64),
        memory_swap_bytes: r.memory_swap.filter(|n| *n != 0),
        pids_max: r.pids_limit.filter(|n| *n != 0),
        cpu_quota_us: quota,
        cpu_period_us: period,
        cpu_shares: positive(r.cpu_shares).map(|n| n as u64),
        restart_policy: body.restart_policy.as_ref().map(restart_policy_in),
    };
    let warnings = s.runtime.update(&id, update).await?;
    Ok(Json(UpdateAnswer { warnings }))
}

// ----- attach, logs ----------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct AttachQuery {
    stream: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
    #[serde(rename = "detachKeys")]
    detach_keys: Option<String>,
}

pub(super) async fn attach(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<AttachQuery>,
    mut req: Request,
) -> Result<Response, DockerError> {
    let _ = q.detach_keys;
    let opts = AttachOptions {
        stream: bool_value(q.stream.as_deref()),
        stdin: bool_value(q.stdin.as_deref()),
        stdout: bool_value(q.stdout.as_deref()),
        stderr: bool_value(q.stderr.as_deref()),
        logs: bool_value(q.logs.as_deref()),
    };
    let upgrade = if crate::api::wants_upgrade(req.headers()) {
        req.extensions_mut().remove::<OnUpgrade>()
    } else {
        None
    };
    let handle = s.runtime.attach(&id, opts).await?;
    let framed = !handle.tty;
    let content_type = if framed {
        crate::api::MULTIPLEXED
    } else {
        crate::api::RAW
    };
    let Some(on_upgrade) = upgrade else {
        return Err(DockerError::bad(
            "attach needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)",
        ));
    };
    let (input, output) = (handle.input, handle.output);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                crate::api::serve_stream(
                    TokioIo::new(upgraded),
                    input,
                    output,
                    framed,
                    std::future::ready(()),
                )
                .await;
            }
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::UPGRADE, HeaderValue::from_static("tcp")),
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        ],
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ResizeQuery {
    h: Option<String>,
    w: Option<String>,
}

pub(super) fn size_of(h: Option<&str>, w: Option<&str>) -> Result<Option<(u16, u16)>, DockerError> {
    let one = |v: Option<&str>| -> Result<u16, DockerError> {
        v.unwrap_or("0")
            .parse::<u16>()
            .map_err(|_| DockerError::bad("h and w must be numbers from 0 to 65535"))
    };
    let (h, w) = (one(h)?, one(w)?);
    // The CLI sends 0x0 before it knows the size: nothing to do.
    Ok((h > 0 && w > 0).then_some((h, w)))
}

pub(super) async fn resize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ResizeQuery>,
) -> Result<StatusCode, DockerError> {
    if let Some((h, w)) = size_of(q.h.as_deref(), q.w.as_deref())? {
        s.runtime.resize(&id, h, w).await?;
    }
    Ok(StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
    follow: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    since: Option<String>,
    until: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
    details: Option<String>,
}

pub(super) async fn logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<LogsQuery>,
) -> Result<Response, DockerError> {
    let _ = q.details;
    let (stdout, stderr) = (
        bool_value(q.stdout.as_deref()),
        bool_value(q.stderr.as_deref()),
    );
    if !stdout && !stderr {
        return Err(DockerError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.tail.as_deref().unwrap_or("all") {
        "all" | "" => None,
        n => Some(n.parse::<i64>().map_err(|_| {
            DockerError::bad(format!("tail {n:?} must be a number of lines or all"))
        })?)
        .filter(|n| *n >= 0)
        .map(|n| n as usize),
    };
    let time_of = |name: &str, v: Option<&str>| -> Result<Option<DateTime<Utc>>, DockerError> {
        match v.filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => parse_time(name, v).map(Some),
        }
    };
    let c = s.runtime.container(&id).await?;
    let opts = LogOptions {
        follow: bool_value(q.follow.as_deref()),
        tail,
        since: time_of("since", q.since.as_deref())?,
        until: time_of("until", q.until.as_deref())?,
        stdout,
        stderr,
        format: LogFormat::Docker {
            framed: !c.config.tty,
        },
        timestamps: bool_value(q.timestamps.as_deref()),
    };
    let content_type = if c.config.tty {
        crate::api::RAW
    } else {
        crate::api::MULTIPLEXED
    };
    let stream = s.runtime.logs(&c.id, opts).await?;
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

// ----- stats, top ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub(super) struct StatsQuery {
    stream: Option<String>,
    #[serde(rename = "one-shot")]
    one_shot: Option<String>,
}

/// Docker's stats shape (the parts clients read).
#[derive(Debug, Serialize, Default)]
struct Stats {
    id: String,
    name: String,
    read: String,
    preread: String,
    pids_stats: PidsOut,
    cpu_stats: CpuOut,
    precpu_stats: CpuOut,
    memory_stats: MemOut,
    blkio_stats: BlkioOut,
    networks: HashMap<String, NetOut>,
    num_procs: u32,
}

#[derive(Debug, Serialize, Default, Clone)]
struct PidsOut {
    current: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
}

#[derive(Debug, Serialize, Default, Clone)]
struct CpuOut {
    cpu_usage: CpuUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_cpu_usage: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    online_cpus: Option<u32>,
    throttling_data: Throttling,
}

#[derive(Debug, Serialize, Default, Clone)]
struct CpuUsage {
    total_usage: u64,
    usage_in_kernelmode: u64,
    usage_in_usermode: u64,
}

#[derive(Debug, Serialize, Default, Clone)]
struct Throttling {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

#[derive(Debug, Serialize, Default)]
struct MemOut {
    usage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_usage: Option<u64>,
    limit: u64,
    stats: HashMap<String, u64>,
}

#[derive(Debug, Serialize, Default)]
struct BlkioOut {
    io_service_bytes_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Serialize)]
struct BlkioEntry {
    major: u64,
    minor: u64,
    op: &'static str,
    value: u64,
}

#[derive(Debug, Serialize, Default)]
struct NetOut {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errors: u64,
    rx_dropped: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errors: u64,
    tx_dropped: u64,
}

/// The host's CPU time in nanoseconds (Docker's `system_cpu_usage`), from /proc/stat.
fn system_cpu_usage() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux ABI boxd runs on.
    Some(ticks * (1_000_000_000 / 100))
}

fn cpu_out(st: &boxd_types::ContainerStats, ncpu: u32) -> CpuOut {
    CpuOut {
        cpu_usage: CpuUsage {
            total_usage: st.cpu.usage_usec * 1000,
            usage_in_kernelmode: st.cpu.system_usec * 1000,
            usage_in_usermode: st.cpu.user_usec * 1000,
        },
        system_cpu_usage: system_cpu_usage(),
        online_cpus: Some(ncpu),
        throttling_data: Throttling {
            periods: st.cpu.nr_periods,
            throttled_periods: st.cpu.nr_throttled,
            throttled_time: st.cpu.throttled_usec * 1000,
        },
    }
}

/// What the host has: CPUs (for CPU %) and memory (the limit of an unlimited container).
#[derive(Debug, Clone, Copy)]
struct Host {
    ncpu: u32,
    mem_total: u64,
}

fn stats_out(st: boxd_types::ContainerStats, pre: Option<(CpuOut, String)>, host: Host) -> Stats {
    let mut mem_stats = HashMap::new();
    // The CLI shows usage minus inactive_file (v2) or total_inactive_file (v1); boxd
    // reports the page cache as one figure.
    mem_stats.insert("inactive_file".to_owned(), st.memory.cache);
    mem_stats.insert("total_inactive_file".to_owned(), st.memory.cache);
    let (precpu, preread) = pre.unwrap_or_else(|| (CpuOut::default(), time(None)));
    Stats {
        id: st.id.clone(),
        name: format!("/{}", st.name),
        read: time(Some(st.read)),
        preread,
        pids_stats: PidsOut {
            current: st.pids.current,
            limit: st.pids.max,
        },
        cpu_stats: cpu_out(&st, host.ncpu),
        precpu_stats: precpu,
        memory_stats: MemOut {
            usage: st.memory.usage,
            max_usage: st.memory.peak,
            limit: st.memory.limit.unwrap_or(host.mem_total),
            stats: mem_stats,
        },
        blkio_stats: BlkioOut {
            io_service_bytes_recursive: vec![
                BlkioEntry {
                    major: 0,
                    minor: 0,
                    op: "read",
                    value: st.blkio.read_bytes,
                },
                BlkioEntry {
                    major: 0,
                    minor: 0,
                    op: "write",
                    value: st.blkio.write_bytes,
                },
            ],
        },
        networks: [(
            "eth0".to_owned(),
            NetOut {
                rx_bytes: st.network.rx_bytes,
                rx_packets: st.network.rx_packets,
                tx_bytes: st.network.tx_bytes,
                tx_packets: st.network.tx_packets,
                ..Default::default()
            },
        )]
        .into(),
        num_procs: 0,
    }
}

/// How far apart the two samples of a `stream=0` answer are (dockerd's collector
/// interval is one second).
const SAMPLE_GAP: Duration = Duration::from_millis(500);

pub(super) async fn stats(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<StatsQuery>,
) -> Result<Response, DockerError> {
    let c = s.runtime.container(&id).await?;
    let stream = q.stream.as_deref().is_none_or(|v| bool_value(Some(v)));
    let one_shot = bool_value(q.one_shot.as_deref());
    let (ncpu, mem_total) = crate::runtime::host_resources();
    let host = Host {
        ncpu: ncpu as u32,
        mem_total,
    };
    if !stream {
        let first = s.runtime.stats(&c.id).await?;
        let out = if one_shot || c.state != ContainerState::Running {
            stats_out(first, None, host)
        } else {
            let pre = (cpu_out(&first, host.ncpu), time(Some(first.read)));
            tokio::time::sleep(SAMPLE_GAP).await;
            let second = s.runtime.stats(&c.id).await.unwrap_or(first);
            stats_out(second, Some(pre), host)
        };
        return Ok(Json(out).into_response());
    }
    let runtime = s.runtime.clone();
    let id = c.id.clone();
    let body = futures_util::stream::unfold(
        (runtime, id, None::<(CpuOut, String)>, true),
        move |(rt, id, pre, first)| async move {
            if !first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let st = rt.stats(&id).await.ok()?;
            let next_pre = (cpu_out(&st, host.ncpu), time(Some(st.read)));
            let mut line = serde_json::to_vec(&stats_out(st, pre, host)).ok()?;
            line.push(b'\n');
            Some((
                Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)),
                (rt, id, Some(next_pre), false),
            ))
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct TopQuery {
    ps_args: Option<String>,
}

/// `GET /containers/{id}/top`: the host's `ps` for the container's processes, as
/// dockerd does.
pub(super) async fn top(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<TopQuery>,
) -> Result<Json<ContainerTopResponse>, DockerError> {
    let c = s.runtime.container(&id).await?;
    if c.state != ContainerState::Running {
        return Err(DockerError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", c.id),
        ));
    }
    let pids = s.runtime.container_pids(&c.id).await?;
    let args = q
        .ps_args
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "-ef".into());
    let arg_list: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    let out = tokio::process::Command::new("ps")
        .args(&arg_list)
        .output()
        .await
        .map_err(|e| {
            DockerError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to run ps: {e}"),
            )
        })?;
    if !out.status.success() {
        return Err(DockerError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "ps {args} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (titles, processes) = parse_ps(&text, &pids)
        .ok_or_else(|| DockerError::bad(format!("ps {args}: its output has no PID column")))?;
    Ok(Json(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    }))
}

/// The header and the rows of `ps` output whose PID is one of `pids`.
fn parse_ps(text: &str, pids: &[i32]) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let pid_col = titles.iter().position(|t| t == "PID")?;
    let mut rows = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        rows.push(row);
    }
    Some((titles, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_writes_them() {
        let d = chrono::Duration::seconds;
        assert_eq!(human_duration(d(0)), "Less than a second");
        assert_eq!(human_duration(d(1)), "1 second");
        assert_eq!(human_duration(d(42)), "42 seconds");
        assert_eq!(human_duration(d(61)), "About a minute");
        assert_eq!(human_duration(d(600)), "10 minutes");
        assert_eq!(human_duration(d(3600)), "About an hour");
        assert_eq!(human_duration(d(5 * 3600)), "5 hours");
        assert_eq!(human_duration(d(3 * 86400)), "3 days");
    }

    #[test]
    fn links_read_as_docker_and_compose_write_them() {
        let h = HostConfig {
            links: Some(vec![
                "proj_client_1:client".into(),
                "/web:/me/w".into(),
                "db".into(),
            ]),
            ..Default::default()
        };
        let req = network_request(&None, &h, None, None).unwrap();
        let got: Vec<(&str, &str)> = req
            .links
            .iter()
            .map(|l| (l.name.as_str(), l.alias.as_str()))
            .collect();
        assert_eq!(
            got,
            [("proj_client_1", "client"), ("web", "w"), ("db", "db")]
        );
        for bad in [":x", "a:", "a:b:c"] {
            let h = HostConfig {
                links: Some(vec![bad.into()]),
                ..Default::default()
            };
            assert!(network_request(&None, &h, None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn binds_and_sizes() {
        let m = parse_bind("/tmp:/data:ro").unwrap();
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.read_only),
            ("/tmp", "/data", true)
        );
        assert!(!parse_bind("/a:/b").unwrap().read_only);
        // A source that is not a path names a volume.
        let v = parse_bind("data:/data").unwrap();
        assert_eq!(
            (v.kind, v.source.as_str()),
            (spec::MountKind::Volume, "data")
        );
        assert!(parse_bind("/a:/b").unwrap().kind == spec::MountKind::Bind);
        let e = parse_bind("/a:/b:shared").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(parse_bind("data:/data:nocopy").is_err());
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("x"), None);
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(
            with_default_tag("127.0.0.1:5000/a"),
            "127.0.0.1:5000/a:latest"
        );
        assert_eq!(with_default_tag("a:1"), "a:1");
    }

    fn body(json: &str) -> CreateBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_maps_what_boxd_honours_and_refuses_the_rest() {
        let b = body(
            r#"{"Image":"busybox","Cmd":["sleep","100"],"Env":["A=1"],"Tty":true,"OpenStdin":true,
            "ExposedPorts":{"80/tcp":{}},
            "HostConfig":{"Memory":67108864,"MemorySwap":0,"MemorySwappiness":-1,"PidsLimit":50,
              "NanoCpus":1500000000,"CpuShares":512,"Binds":["/tmp:/data:ro"],"AutoRemove":true,
              "RestartPolicy":{"Name":"no"},"NetworkMode":"none","CapAdd":["CAP_NET_ADMIN"],
              "Tmpfs":{"/run":""},"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},
              "Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}],"ReadonlyRootfs":true}}"#,
        );
        let s = create_spec(Some("/web".into()), b).unwrap();
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.resources.memory_bytes, Some(64 << 20));
        assert_eq!(s.resources.memory_swap_bytes, None);
        assert_eq!(s.resources.memory_swappiness, None);
        assert_eq!(s.resources.pids_max, Some(50));
        assert_eq!(
            (s.resources.cpu_quota_us, s.resources.cpu_period_us),
            (Some(150_000), Some(100_000))
        );
        assert_eq!(s.resources.cpu_shares, Some(512));
        assert!(s.auto_remove && s.stdio.tty && s.stdio.open_stdin);
        assert_eq!(s.mounts[0].target, "/data");
        assert!(s.security.read_only_rootfs);
        assert_eq!(s.security.cap_add, ["CAP_NET_ADMIN"]);
        assert!(s.security.tmpfs.contains_key("/run"));
        assert_eq!(s.security.ulimits[0].hard, 2048);
        assert_eq!(s.network.mode, ModeRequest::None);
        assert_eq!(s.network.ports[0].host_port, Some(8080));
        assert_eq!(s.network.ports[0].container_port, 80);

        for (json, field) in [
            (
                r#"{"Image":"b","HostConfig":{"Privileged":true}}"#,
                "Privileged",
            ),
            (
                r#"{"Image":"b","HostConfig":{"PidMode":"host"}}"#,
                "PidMode",
            ),
            (
                r#"{"Image":"b","HostConfig":{"Devices":[{"PathOnHost":"/dev/null"}]}}"#,
                "Devices",
            ),
            (
                r#"{"Image":"b","HostConfig":{"LogConfig":{"Type":"syslog"}}}"#,
                "LogConfig",
            ),
            (
                r#"{"Image":"b","HostConfig":{"NanoCpus":1,"CpuQuota":1000}}"#,
                "Nano CPUs",
            ),
            (
                r#"{"Image":"b","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
                "AutoRemove",
            ),
            (r#"{"Cmd":["x"]}"#, "Image"),
        ] {
            let e = create_spec(None, body(json)).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{json}");
            assert!(e.message().contains(field), "{json}: {}", e.message());
        }
    }

    #[test]
    fn ps_rows_of_the_container_only() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init splash\nroot 42 1 0 10:01 ? 00:00:00 sleep 100\n";
        let (titles, rows) = parse_ps(text, &[42]).unwrap();
        assert_eq!(titles.len(), 8);
        assert_eq!(
            rows,
            vec![vec![
                "root",
                "42",
                "1",
                "0",
                "10:01",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
    }
}
