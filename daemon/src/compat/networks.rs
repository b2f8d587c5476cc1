//! `/networks/...` onto boxd's CNI networks. boxd's default network is Docker's
//! `bridge`; `host` and `none` are listed as Docker lists them (modes, not objects).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bollard_stubs::models::{
    Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkContainer, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
};

use super::error::{DockerError, DockerJson};
use super::models::{time, QueryFilters};
use crate::api::AppState;
use crate::network::{NetworkError, NetworkSpec, DEFAULT_NETWORK};

/// boxd's name for a network as Docker clients name it.
fn boxd_name(name: &str) -> &str {
    if name == "bridge" {
        DEFAULT_NETWORK
    } else {
        name
    }
}

/// The pseudo-networks of the modes Docker lists as networks.
const MODES: [&str; 2] = ["host", "none"];

fn mode_network(name: &str) -> Network {
    Network {
        name: Some(name.to_owned()),
        id: Some(name.to_owned()),
        scope: Some("local".into()),
        driver: Some(name.replace("none", "null")),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(Vec::new()),
            options: None,
        }),
        internal: Some(false),
        attachable: Some(false),
        ingress: Some(false),
        containers: Some(HashMap::new()),
        options: Some(HashMap::new()),
        labels: Some(HashMap::new()),
        ..Default::default()
    }
}

async fn network_out(
    s: &AppState,
    n: crate::network::Network,
    with_containers: bool,
) -> Result<Network, DockerError> {
    let mut config = vec![IpamConfig {
        subnet: Some(n.subnet.clone()),
        gateway: Some(n.gateway.clone()),
        ..Default::default()
    }];
    if let Some(sub6) = &n.subnet6 {
        config.push(IpamConfig {
            subnet: Some(sub6.clone()),
            gateway: n.gateway6.clone(),
            ..Default::default()
        });
    }
    let mut containers = HashMap::new();
    if with_containers {
        let names: HashMap<String, String> = s
            .runtime
            .containers(false)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        for a in s.runtime.networks().attachments(None).await? {
            if a.network != n.name {
                continue;
            }
            let e = a.endpoint();
            containers.insert(
                a.container_id.clone(),
                NetworkContainer {
                    name: names.get(&a.container_id).cloned(),
                    endpoint_id: Some(format!("{}-{}", a.container_id, a.ifname)),
                    mac_address: Some(e.mac.unwrap_or_default()),
                    ipv4_address: Some(e.address.unwrap_or_default()),
                    ipv6_address: Some(e.address6.unwrap_or_default()),
                },
            );
        }
    }
    // Options are the driver options the network was made with, as dockerd keeps
    // them: a user-defined network has none (create refuses them), and only the
    // default network, which the daemon makes itself, names its bridge as dockerd's
    // `bridge` does. Reporting options nobody gave makes docker-compose find the
    // network "changed" and refuse every later `up` and `run` of the project.
    let options = if n.name == DEFAULT_NETWORK {
        HashMap::from([("com.docker.network.bridge.name".to_owned(), n.bridge)])
    } else {
        HashMap::new()
    };
    let name = super::containers::network_name(&n.name);
    Ok(Network {
        name: Some(name),
        id: Some(n.id),
        created: Some(time(Some(n.created_at))),
        scope: Some("local".into()),
        driver: Some(if n.custom.is_some() { "cni" } else { "bridge" }.into()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(n.subnet6.is_some()),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(config),
            options: Some(HashMap::new()),
        }),
        internal: Some(n.internal),
        attachable: Some(true),
        ingress: Some(false),
        config_only: Some(false),
        containers: Some(containers),
        options: Some(options),
        labels: Some(n.labels.into_iter().collect()),
        ..Default::default()
    })
}

pub(super) async fn list(
    State(s): State<AppState>,
    QueryFilters(f): QueryFilters,
) -> Result<Json<Vec<Network>>, DockerError> {
    f.only(&["name", "id", "label", "driver", "type", "scope", "dangling"])?;
    let mut out = Vec::new();
    for n in s.runtime.networks().list().await? {
        out.push(network_out(&s, n, false).await?);
    }
    out.extend(MODES.iter().map(|m| mode_network(m)));
    out.retain(|n| {
        let name = n.name.clone().unwrap_or_default();
        let id = n.id.clone().unwrap_or_default();
        let driver = n.driver.clone().unwrap_or_default();
        let builtin = name == "bridge" || MODES.contains(&name.as_str());
        let labels = n.labels.clone().unwrap_or_default();
        let any = |k: &str, ok: &dyn Fn(&str) -> bool| {
            f.get(k).is_empty() || f.get(k).iter().any(|x| ok(x))
        };
        any("name", &|x| name.contains(x))
            && any("id", &|x| id.starts_with(x))
            && any("driver", &|x| x == driver)
            && any("type", &|x| (x == "builtin") == builtin)
            && any("scope", &|x| x == "local")
            && f.labels_match("label", |k| labels.get(k).map(String::as_str))
    });
    Ok(Json(out))
}

async fn find(s: &AppState, id: &str) -> Result<crate::network::Network, DockerError> {
    let nm = s.runtime.networks();
    match nm.get(boxd_name(id)).await {
        Ok(n) => return Ok(n),
        Err(NetworkError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // By id or id prefix, as Docker finds networks.
    let matches: Vec<_> = nm
        .list()
        .await?
        .into_iter()
        .filter(|n| !id.is_empty() && n.id.starts_with(id))
        .collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one")),
        0 => Err(DockerError::new(
            StatusCode::NOT_FOUND,
            format!("network {id} not found"),
        )),
        _ => Err(DockerError::bad(format!(
            "network {id} is ambiguous ({} matches)",
            matches.len()
        ))),
    }
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Network>, DockerError> {
    if MODES.contains(&id.as_str()) {
        return Ok(Json(mode_network(&id)));
    }
    let n = find(&s, &id).await?;
    Ok(Json(network_out(&s, n, true).await?))
}

pub(super) async fn create(
    State(s): State<AppState>,
    DockerJson(req): DockerJson<NetworkCreateRequest>,
) -> Result<(StatusCode, Json<NetworkCreateResponse>), DockerError> {
    if req.name.is_empty() {
        return Err(DockerError::bad("Name is required"));
    }
    match req.driver.as_deref().unwrap_or("") {
        "" | "bridge" => {}
        other => {
            return Err(DockerError::bad(format!(
                "driver {other} is not supported by boxd: only bridge (boxd runs CNI's bridge plugin; other plugins through boxd's /v1 API with a conflist)"
            )))
        }
    }
    if req.ingress == Some(true) || req.config_only == Some(true) || req.config_from.is_some() {
        return Err(DockerError::bad(
            "Ingress, ConfigOnly and ConfigFrom are swarm features; boxd has no swarm",
        ));
    }
    if let Some(opts) = req.options.as_ref().filter(|o| !o.is_empty()) {
        return Err(DockerError::bad(format!(
            "driver options are not supported: {}",
            opts.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    if req.name == "bridge" || MODES.contains(&req.name.as_str()) {
        return Err(DockerError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a pre-defined network and cannot be created",
                req.name
            ),
        ));
    }
    let mut spec = NetworkSpec {
        name: req.name.clone(),
        internal: req.internal.unwrap_or(false),
        labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
        ..Default::default()
    };
    for c in req.ipam.and_then(|i| i.config).unwrap_or_default() {
        if c.ip_range.as_ref().is_some_and(|r| !r.is_empty())
            || c.auxiliary_addresses
                .as_ref()
                .is_some_and(|a| !a.is_empty())
        {
            return Err(DockerError::bad(
                "IPAM IPRange and AuxiliaryAddresses are not supported; give Subnet and Gateway",
            ));
        }
        let Some(subnet) = c.subnet.filter(|s| !s.is_empty()) else {
            continue;
        };
        if subnet.contains(':') {
            spec.subnet6 = Some(subnet);
            spec.gateway6 = c.gateway.filter(|g| !g.is_empty());
        } else {
            spec.subnet = Some(subnet);
            spec.gateway = c.gateway.filter(|g| !g.is_empty());
        }
    }
    if req.enable_ipv6 == Some(true) && spec.subnet6.is_none() {
        return Err(DockerError::bad(
            "EnableIPv6 needs an IPv6 subnet in IPAM.Config (boxd has no IPv6 pool)",
        ));
    }
    match s.runtime.create_network(spec).await {
        Ok(n) => Ok((
            StatusCode::CREATED,
            Json(NetworkCreateResponse {
                id: n.id,
                warning: String::new(),
            }),
        )),
        Err(crate::runtime::RuntimeError::Network(NetworkError::NameInUse(_))) => {
            Err(DockerError::new(
                StatusCode::CONFLICT,
                format!("network with name {} already exists", req.name),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, DockerError> {
    if MODES.contains(&id.as_str()) || id == "bridge" {
        return Err(DockerError::new(
            StatusCode::FORBIDDEN,
            format!("{id} is a pre-defined network and cannot be removed"),
        ));
    }
    let n = find(&s, &id).await?;
    s.runtime.remove_network(&n.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn connect(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerJson(req): DockerJson<NetworkConnectRequest>,
) -> Result<StatusCode, DockerError> {
    let n = find(&s, &id).await?;
    let container = req
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| DockerError::bad("Container is required"))?;
    let endpoint = req.endpoint_config.unwrap_or_default();
    if endpoint
        .ipam_config
        .as_ref()
        .is_some_and(|i| i.ipv4_address.as_ref().is_some_and(|a| !a.is_empty()))
    {
        return Err(DockerError::bad(
            "a fixed address is given at create (IPAMConfig in NetworkingConfig), not at connect",
        ));
    }
    let aliases = endpoint.aliases.unwrap_or_default();
    s.runtime.connect(&n.name, &container, aliases).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn disconnect(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerJson(req): DockerJson<NetworkDisconnectRequest>,
) -> Result<StatusCode, DockerError> {
    let n = find(&s, &id).await?;
    let container = req
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| DockerError::bad("Container is required"))?;
    s.runtime.disconnect(&n.name, &container).await?;
    Ok(StatusCode::OK)
}

pub(super) async fn prune(
    State(s): State<AppState>,
    QueryFilters(f): QueryFilters,
) -> Result<Json<NetworkPruneResponse>, DockerError> {
    f.only(&["until", "label"])?;
    let mut deleted = Vec::new();
    for n in s.runtime.networks().list().await? {
        if n.name == DEFAULT_NETWORK
            || !f.labels_match("label", |k| n.labels.get(k).map(String::as_str))
        {
            continue;
        }
        match s.runtime.remove_network(&n.name).await {
            Ok(()) => deleted.push(n.name),
            Err(crate::runtime::RuntimeError::Network(
                NetworkError::InUse { .. }
                | NetworkError::Predefined(_)
                | NetworkError::NotFound(_),
            )) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(NetworkPruneResponse {
        networks_deleted: Some(deleted),
    }))
}
