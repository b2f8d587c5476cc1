//! Translation between the `/v1` wire types (`boxd_types`) and the engine's domain types
//! (`runtime::spec`): one function per direction and operation. What `/v1` cannot say
//! in the engine's terms is refused here with `/v1`'s error shape.

use boxd_types as wire;

use super::ApiError;
use crate::runtime::restart::RestartPolicy;
use crate::runtime::spec;

/// `POST /v1/containers` body → the engine's create input.
pub fn create_spec(req: wire::CreateContainer) -> Result<spec::ContainerSpec, ApiError> {
    let restart_policy: RestartPolicy = req
        .restart_policy
        .as_deref()
        .unwrap_or("no")
        .parse()
        .map_err(|reason| ApiError::BadRequest(format!("invalid restart_policy: {reason}")))?;
    let userns = match req.userns {
        None => spec::UsernsRequest::Host,
        Some(wire::UsernsRequest::Mode(m)) if m == "host" => spec::UsernsRequest::Host,
        Some(wire::UsernsRequest::Mode(m)) if m == "auto" => spec::UsernsRequest::Auto,
        Some(wire::UsernsRequest::Mode(m)) => {
            return Err(ApiError::BadRequest(format!(
                "invalid userns: {m:?} must be \"host\", \"auto\" or {{\"uid_map\": [...], \"gid_map\": [...]}}"
            )))
        }
        Some(wire::UsernsRequest::Maps { uid_map, gid_map }) => spec::UsernsRequest::Maps {
            uid_map: uid_map.into_iter().map(id_mapping_in).collect(),
            gid_map: gid_map.into_iter().map(id_mapping_in).collect(),
        },
    };
    let network = crate::network::ModeRequest::parse(req.network.as_deref().unwrap_or(""))
        .map_err(|reason| ApiError::BadRequest(format!("invalid network: {reason}")))?;
    let ports = req
        .ports
        .iter()
        .map(port_in)
        .collect::<Result<Vec<_>, _>>()?;
    let bad = |why: String| ApiError::BadRequest(why);
    let dns = crate::network::DnsConfig {
        servers: req
            .dns
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| bad(format!("invalid dns: {s:?} is not an IP address")))
            })
            .collect::<Result<_, _>>()?,
        search: req.dns_search.clone(),
        options: req.dns_options.clone(),
        extra_hosts: req
            .extra_hosts
            .iter()
            .map(|h| {
                let (name, ip) = h.split_once(':').ok_or_else(|| {
                    bad(format!("invalid extra_hosts: {h:?} is not name:address"))
                })?;
                let ip = ip.parse().map_err(|_| {
                    bad(format!(
                        "invalid extra_hosts: {ip:?} in {h:?} is not an IP address"
                    ))
                })?;
                if name.is_empty() || name.chars().any(char::is_whitespace) {
                    return Err(bad(format!("invalid extra_hosts: {h:?} has no host name")));
                }
                Ok((name.to_owned(), ip))
            })
            .collect::<Result<_, _>>()?,
    };
    for w in req.dns_search.iter().chain(req.dns_options.iter()) {
        if w.is_empty() || w.chars().any(char::is_whitespace) {
            return Err(bad(format!(
                "invalid dns_search or dns_options: {w:?} must be one word"
            )));
        }
    }
    Ok(spec::ContainerSpec {
        network: crate::network::NetworkRequest {
            mode: network,
            ports,
            aliases: req.network_aliases.clone(),
            dns,
            ip: req
                .ip
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse()
                        .map_err(|_| bad(format!("invalid ip: {s:?} is not an IPv4 address")))
                })
                .transpose()?,
            publish_all: req.publish_all,
            // Links are kept for Docker clients (compose's `run`); `/v1` callers name
            // containers, or give them `network_aliases`.
            links: Vec::new(),
        },
        image: req.image,
        name: req.name,
        cmd: req.cmd,
        entrypoint: req.entrypoint,
        env: req.env,
        working_dir: req.working_dir,
        hostname: req.hostname,
        // `/v1` containers are hosts named as the containers are.
        hostname_is_short_id: false,
        user: req.user,
        mounts: req
            .mounts
            .into_iter()
            .map(mount_in)
            .collect::<Result<_, _>>()?,
        resources: resources_in(req.resources),
        labels: req.labels,
        restart_policy,
        security: spec::SecurityRequest {
            cap_add: req.cap_add,
            cap_drop: req.cap_drop,
            security_opt: req.security_opt,
            seccomp: req.seccomp,
            no_new_privileges: req.no_new_privileges,
            read_only_rootfs: req.read_only_rootfs,
            tmpfs: req.tmpfs,
            ulimits: req.ulimits.into_iter().map(ulimit_in).collect(),
        },
        memory_warning_percent: req.memory_warning_percent,
        stdio: spec::Stdio {
            tty: req.tty,
            open_stdin: req.open_stdin,
            stdin_once: req.stdin_once,
        },
        auto_remove: req.auto_remove,
        stop_signal: req.stop_signal,
        userns,
    })
}

/// `POST /v1/containers/{id}/update` body → the engine's update.
pub fn update_in(req: wire::UpdateContainer) -> Result<spec::ResourceUpdate, ApiError> {
    let restart_policy = req
        .restart_policy
        .as_deref()
        .map(|p| {
            p.parse::<RestartPolicy>()
                .map_err(|reason| ApiError::BadRequest(format!("invalid restart_policy: {reason}")))
        })
        .transpose()?;
    let update = spec::ResourceUpdate {
        memory_bytes: req.memory_bytes,
        memory_swap_bytes: req.memory_swap_bytes,
        pids_max: req.pids_max,
        cpu_quota_us: req.cpu_quota_us,
        cpu_period_us: req.cpu_period_us,
        cpu_shares: req.cpu_shares,
        restart_policy,
    };
    if !update.touches_limits() && update.restart_policy.is_none() {
        return Err(ApiError::BadRequest(
            "nothing to update: give at least one of memory_bytes, memory_swap_bytes, \
             pids_max, cpu_quota_us, cpu_period_us, cpu_shares, restart_policy"
                .to_owned(),
        ));
    }
    Ok(update)
}

fn port_in(p: &wire::PortSpec) -> Result<crate::network::PortRequest, ApiError> {
    let bad = |why: String| ApiError::BadRequest(format!("invalid ports: {why}"));
    let host_ip = p
        .host_ip
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| bad(format!("host_ip {s:?} is not an IP address")))
        })
        .transpose()?;
    if p.container_port == 0 {
        return Err(bad("container_port must be 1-65535".to_owned()));
    }
    Ok(crate::network::PortRequest {
        host_ip,
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .parse()
            .map_err(bad)?,
    })
}

fn port_out(m: crate::network::PortMapping) -> wire::PortSpec {
    wire::PortSpec {
        host_ip: Some(m.host_ip.to_string()),
        host_port: Some(m.host_port),
        container_port: m.container_port,
        protocol: Some(m.protocol.to_string()),
    }
}

/// A run's address on a network → `/v1`'s.
pub fn endpoint_out(e: crate::network::Endpoint) -> wire::NetworkEndpoint {
    wire::NetworkEndpoint {
        network: e.network,
        ifname: e.ifname,
        address: e.address,
        gateway: e.gateway,
        mac: e.mac,
        address6: e.address6,
    }
}

/// A network (and the running containers on it) → `/v1`'s.
pub fn network_out(
    n: crate::network::Network,
    containers: Vec<wire::NetworkContainer>,
) -> wire::Network {
    wire::Network {
        default: n.name == crate::network::DEFAULT_NETWORK,
        id: n.id,
        name: n.name,
        driver: if n.custom.is_some() { "cni" } else { "bridge" }.to_owned(),
        conflist: n.custom,
        bridge: n.bridge,
        subnet: n.subnet,
        gateway: n.gateway,
        subnet6: n.subnet6,
        gateway6: n.gateway6,
        internal: n.internal,
        labels: n.labels,
        created_at: n.created_at,
        containers,
    }
}

/// `POST /v1/volumes` body → the engine's.
pub fn volume_spec(req: wire::VolumeCreate) -> crate::runtime::volumes::VolumeSpec {
    crate::runtime::volumes::VolumeSpec {
        name: req.name.filter(|n| !n.is_empty()),
        driver: req.driver.filter(|d| !d.is_empty()),
        options: req.driver_opts,
        labels: req.labels,
    }
}

/// The engine's volume → `/v1`'s.
pub fn volume_out(v: crate::runtime::volumes::VolumeInfo) -> wire::Volume {
    wire::Volume {
        mountpoint: v.mountpoint.to_string_lossy().into_owned(),
        containers: v.containers,
        name: v.volume.name,
        driver: v.volume.driver,
        created_at: v.volume.created_at,
        labels: v.volume.labels,
        driver_opts: v.volume.options,
        scope: "local".to_owned(),
        anonymous: v.volume.anonymous,
        size_bytes: v.volume.size_bytes,
    }
}

/// The engine's container (and what was observed of it) → `/v1`'s.
pub fn container_out(
    c: spec::Container,
    observed: wire::Observed,
    networks: Vec<crate::network::Endpoint>,
) -> wire::Container {
    wire::Container {
        networks: networks.into_iter().map(endpoint_out).collect(),
        id: c.id,
        name: c.name,
        image: c.image,
        image_id: c.image_id,
        state: state_out(c.state),
        paused: c.paused,
        pid: c.pid,
        exit_code: c.exit_code,
        exit_signal: c.exit_signal,
        oom_killed: c.oom_killed,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        error: c.error,
        config: config_out(c.config),
        resources: resources_out(c.resources),
        restart_policy: c.restart_policy.to_string(),
        restart_count: c.restart_count,
        next_restart_at: c.next_restart_at,
        observed,
    }
}

fn state_out(s: spec::ContainerState) -> wire::ContainerState {
    match s {
        spec::ContainerState::Created => wire::ContainerState::Created,
        spec::ContainerState::Running => wire::ContainerState::Running,
        spec::ContainerState::Exited => wire::ContainerState::Exited,
        spec::ContainerState::Dead => wire::ContainerState::Dead,
    }
}

fn config_out(c: spec::ContainerConfig) -> wire::ContainerConfig {
    wire::ContainerConfig {
        cmd: c.cmd,
        env: c.env,
        working_dir: c.working_dir,
        hostname: c.hostname,
        user: c.user,
        mounts: c.mounts.into_iter().map(mount_out).collect(),
        labels: c.labels,
        security: security_out(c.security),
        tty: c.tty,
        open_stdin: c.open_stdin,
        stdin_once: c.stdin_once,
        auto_remove: c.auto_remove,
        stop_signal: c.stop_signal,
        userns: c.userns.map(|u| wire::UsernsConfig {
            mode: u.mode,
            uid_map: u.uid_map.into_iter().map(id_mapping_out).collect(),
            gid_map: u.gid_map.into_iter().map(id_mapping_out).collect(),
        }),
        network: c.network.mode.to_user_string(),
        ports: c.network.ports.into_iter().map(port_out).collect(),
        network_aliases: c.network.aliases,
        ip: c.network.ip.map(|ip| ip.to_string()),
        connected_networks: c.network.connected.iter().map(|n| n.name.clone()).collect(),
        links: c
            .network
            .links
            .iter()
            .map(|l| format!("{}:{}", l.name, l.alias))
            .collect(),
        dns: c
            .network
            .dns
            .servers
            .iter()
            .map(|s| s.to_string())
            .collect(),
        dns_search: c.network.dns.search.clone(),
        dns_options: c.network.dns.options.clone(),
        extra_hosts: c
            .network
            .dns
            .extra_hosts
            .iter()
            .map(|(n, ip)| format!("{n}:{ip}"))
            .collect(),
    }
}

fn security_out(s: spec::SecurityConfig) -> wire::SecurityConfig {
    wire::SecurityConfig {
        capabilities: s.capabilities,
        no_new_privileges: s.no_new_privileges,
        seccomp: s.seccomp,
        seccomp_profile: s.seccomp_profile,
        read_only_rootfs: s.read_only_rootfs,
        tmpfs: s.tmpfs,
        ulimits: s
            .ulimits
            .into_iter()
            .map(|u| wire::Ulimit {
                name: u.name,
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        masked_paths: s.masked_paths,
        readonly_paths: s.readonly_paths,
        devices: s.devices,
    }
}

fn ulimit_in(u: wire::Ulimit) -> spec::Ulimit {
    spec::Ulimit {
        name: u.name,
        soft: u.soft,
        hard: u.hard,
    }
}

fn mount_in(m: wire::Mount) -> Result<spec::Mount, ApiError> {
    let kind = match m.kind.as_deref() {
        None | Some("bind") => spec::MountKind::Bind,
        Some("volume") => spec::MountKind::Volume,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid mounts.type: {other:?} must be \"bind\" or \"volume\""
            )))
        }
    };
    Ok(spec::Mount {
        kind,
        source: m.source,
        target: m.target,
        read_only: m.read_only,
    })
}

fn mount_out(m: spec::Mount) -> wire::Mount {
    wire::Mount {
        kind: Some(
            match m.kind {
                spec::MountKind::Bind => "bind",
                spec::MountKind::Volume => "volume",
            }
            .to_owned(),
        ),
        source: m.source,
        target: m.target,
        read_only: m.read_only,
    }
}

fn id_mapping_in(m: wire::IdMapping) -> spec::IdMapping {
    spec::IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        size: m.size,
    }
}

fn id_mapping_out(m: spec::IdMapping) -> wire::IdMapping {
    wire::IdMapping {
        container_id: m.container_id,
        host_id: m.host_id,
        size: m.size,
    }
}

/// Resource limits have the same fields on both sides; the two structs stay apart so
/// that either can change without the other.
fn resources_in(r: wire::Resources) -> spec::Resources {
    spec::Resources {
        memory_bytes: r.memory_bytes,
        memory_swap_bytes: r.memory_swap_bytes,
        memory_swappiness: r.memory_swappiness,
        memory_high_bytes: r.memory_high_bytes,
        pids_max: r.pids_max,
        cpu_quota_us: r.cpu_quota_us,
        cpu_period_us: r.cpu_period_us,
        cpu_shares: r.cpu_shares,
        disk_bytes: r.disk_bytes,
        network_ingress_bps: r.network_ingress_bps,
        network_egress_bps: r.network_egress_bps,
    }
}

fn resources_out(r: spec::Resources) -> wire::Resources {
    wire::Resources {
        memory_bytes: r.memory_bytes,
        memory_swap_bytes: r.memory_swap_bytes,
        memory_swappiness: r.memory_swappiness,
        memory_high_bytes: r.memory_high_bytes,
        pids_max: r.pids_max,
        cpu_quota_us: r.cpu_quota_us,
        cpu_period_us: r.cpu_period_us,
        cpu_shares: r.cpu_shares,
        disk_bytes: r.disk_bytes,
        network_ingress_bps: r.network_ingress_bps,
        network_egress_bps: r.network_egress_bps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of a `/v1` create body reaches the engine, and a stored container
    /// comes back with what it was created with.
    #[test]
    fn create_body_round_trips_through_the_domain() {
        let body: wire::CreateContainer = serde_json::from_value(serde_json::json!({
            "image": "busybox", "name": "n", "cmd": ["a"], "entrypoint": ["e"],
            "env": ["K=V"], "working_dir": "/w", "hostname": "h", "user": "1:2",
            "mounts": [{"type": "bind", "source": "/s", "target": "/t", "read_only": true},
                       {"type": "volume", "source": "data", "target": "/d"}],
            "resources": {"memory_bytes": 1, "memory_swap_bytes": -1, "memory_swappiness": 0,
                          "memory_high_bytes": 1, "pids_max": 2, "cpu_quota_us": 3,
                          "cpu_period_us": 4, "cpu_shares": 5, "disk_bytes": 6},
            "labels": {"l": "v"}, "restart_policy": "on-failure:3",
            "cap_add": ["NET_ADMIN"], "cap_drop": ["CHOWN"], "security_opt": ["x"],
            "seccomp": "unconfined", "no_new_privileges": false, "read_only_rootfs": true,
            "tmpfs": {"/tmp": "size=1m"}, "ulimits": [{"name": "nofile", "soft": 1, "hard": 2}],
            "memory_warning_percent": 50, "tty": true, "open_stdin": true, "stdin_once": true,
            "userns": {"uid_map": [{"container_id": 0, "host_id": 100000, "size": 10}],
                       "gid_map": [{"container_id": 0, "host_id": 100000, "size": 10}]}
        }))
        .unwrap();
        let s = create_spec(body.clone()).unwrap();
        assert_eq!(
            s.restart_policy,
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
        assert_eq!(resources_out(s.resources.clone()), body.resources);
        assert_eq!(
            s.mounts.into_iter().map(mount_out).collect::<Vec<_>>(),
            body.mounts
        );
        // A mount without a type (as before volumes) is a bind.
        let old: wire::Mount =
            serde_json::from_value(serde_json::json!({"source": "/s", "target": "/t"})).unwrap();
        assert_eq!(mount_in(old).unwrap().kind, spec::MountKind::Bind);
        assert_eq!(s.security.ulimits.len(), 1);
        assert!(s.stdio.tty && s.stdio.open_stdin && s.stdio.stdin_once);
        assert!(matches!(s.userns, spec::UsernsRequest::Maps { .. }));
        assert_eq!(s.memory_warning_percent, Some(50));
    }

    #[test]
    fn update_body_reaches_the_engine_and_an_empty_one_is_refused() {
        let body: wire::UpdateContainer = serde_json::from_value(serde_json::json!({
            "memory_bytes": 67108864, "memory_swap_bytes": -1, "pids_max": 10,
            "cpu_quota_us": 50000, "cpu_period_us": 100000, "cpu_shares": 512,
            "restart_policy": "always"
        }))
        .unwrap();
        let u = update_in(body).unwrap();
        assert_eq!(u.memory_bytes, Some(64 << 20));
        assert_eq!(u.memory_swap_bytes, Some(-1));
        assert_eq!((u.pids_max, u.cpu_shares), (Some(10), Some(512)));
        assert_eq!(u.restart_policy, Some(RestartPolicy::Always));
        for body in [
            serde_json::json!({}),
            serde_json::json!({"restart_policy": "sometimes"}),
        ] {
            let req: wire::UpdateContainer = serde_json::from_value(body).unwrap();
            assert!(matches!(update_in(req), Err(ApiError::BadRequest(_))));
        }
        assert!(serde_json::from_value::<wire::UpdateContainer>(
            serde_json::json!({"disk_bytes": 1})
        )
        .is_err());
    }

    #[test]
    fn what_the_engine_cannot_take_is_a_400_here() {
        for body in [
            serde_json::json!({"image": "b", "restart_policy": "sometimes"}),
            serde_json::json!({"image": "b", "userns": "yes"}),
            serde_json::json!({"image": "b", "mounts": [{"type": "tmpfs", "target": "/t"}]}),
        ] {
            let req: wire::CreateContainer = serde_json::from_value(body).unwrap();
            let err = create_spec(req).unwrap_err();
            assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        }
    }
}
