//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`, `/auth`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum, LocalNodeState,
    SwarmInfo, SystemDataUsageResponse, SystemInfo, SystemVersion, SystemVersionPlatform,
};
use futures_util::StreamExt;
use serde::Deserialize;

use super::error::{DockerError, DockerJson, DockerQuery};
use super::models::{parse_time, Filters};
use super::{API_VERSION, MIN_API_VERSION};
use crate::api::AppState;
use crate::runtime::RuntimeError;
use crate::store::EventFilter;

/// The headers of a ping answer (the client negotiates from `Api-Version`, which every
/// answer carries).
const PING_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
    (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
    (header::PRAGMA, "no-cache"),
];

/// `GET /_ping`: `OK`.
pub(super) async fn ping() -> Response {
    (PING_HEADERS, "OK").into_response()
}

/// `HEAD /_ping`: the same headers, no body.
pub(super) async fn ping_head() -> Response {
    (PING_HEADERS, ()).into_response()
}

/// `GET /version`: bollard's model of `Components[].Details` is an empty map, so the
/// components (which the CLI prints the engine's details from) are typed here.
#[derive(Debug, serde::Serialize)]
pub(super) struct VersionBody {
    #[serde(flatten)]
    base: SystemVersion,
    #[serde(rename = "Components")]
    components: Vec<Component>,
}

#[derive(Debug, serde::Serialize)]
struct Component {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Version")]
    version: String,
    #[serde(rename = "Details")]
    details: HashMap<&'static str, String>,
}

pub(super) async fn version(State(s): State<AppState>) -> Json<VersionBody> {
    let v = s.runtime.version();
    let version = v.version.clone();
    let details = HashMap::from([
        ("ApiVersion", API_VERSION.to_owned()),
        ("MinAPIVersion", MIN_API_VERSION.to_owned()),
        ("GitCommit", "boxd".to_owned()),
        ("GoVersion", "none (Rust)".to_owned()),
        ("Os", "linux".to_owned()),
        ("Arch", super::system_arch()),
        ("KernelVersion", v.kernel.clone()),
        ("Experimental", "false".to_owned()),
        ("BuildTime", String::new()),
    ]);
    Json(VersionBody {
        base: SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: format!("boxd {version}"),
            }),
            components: None,
            version: Some(version.clone()),
            api_version: Some(API_VERSION.into()),
            min_api_version: Some(MIN_API_VERSION.into()),
            git_commit: Some("boxd".into()),
            go_version: Some("none (Rust)".into()),
            os: Some("linux".into()),
            arch: Some(super::system_arch()),
            kernel_version: Some(v.kernel),
            experimental: Some(false),
            build_time: None,
        },
        components: vec![Component {
            name: "Engine".into(),
            version,
            details,
        }],
    })
}

pub(super) async fn info(State(s): State<AppState>) -> Result<Json<SystemInfo>, DockerError> {
    let i = s.runtime.info().await?;
    let v2 = i.cgroup_version == "v2";
    let has = |c: &str| i.cgroup_controllers.iter().any(|x| x == c);
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".into());
    Ok(Json(SystemInfo {
        id: Some(format!("boxd-{hostname}")),
        containers: Some(i.containers as i64),
        containers_running: Some(i.containers_running as i64),
        containers_paused: Some(0),
        containers_stopped: Some(
            (i.containers_exited + i.containers_dead + i.containers_created) as i64,
        ),
        images: Some(i.images as i64),
        driver: Some("overlay2".into()),
        docker_root_dir: Some(i.root_dir),
        memory_limit: Some(has("memory")),
        swap_limit: Some(has("memory")),
        cpu_cfs_period: Some(has("cpu")),
        cpu_cfs_quota: Some(has("cpu")),
        cpu_shares: Some(has("cpu")),
        pids_limit: Some(has("pids")),
        oom_kill_disable: Some(false),
        ipv4_forwarding: Some(true),
        debug: Some(false),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(bollard_stubs::models::SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if v2 {
            bollard_stubs::models::SystemInfoCgroupVersionEnum::_2
        } else {
            bollard_stubs::models::SystemInfoCgroupVersionEnum::_1
        }),
        kernel_version: Some(i.kernel),
        operating_system: Some(os),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(i.ncpu as i64),
        mem_total: Some(i.mem_total as i64),
        name: Some(hostname),
        server_version: Some(s.runtime.version().version),
        default_runtime: Some("boxd".into()),
        live_restore_enabled: Some(true),
        swarm: Some(SwarmInfo {
            local_node_state: Some(LocalNodeState::INACTIVE),
            node_id: Some(String::new()),
            node_addr: Some(String::new()),
            control_available: Some(false),
            ..Default::default()
        }),
        security_options: Some(vec!["name=seccomp,profile=builtin".into()]),
        ..Default::default()
    }))
}

/// `GET /system/df`: what images, containers and volumes take.
pub(super) async fn df(
    State(s): State<AppState>,
) -> Result<Json<SystemDataUsageResponse>, DockerError> {
    let images = super::images::summaries(&s, &Filters::default()).await?;
    let containers = super::containers::summaries(&s, true, &Filters::default(), true).await?;
    let volumes = s
        .runtime
        .volumes(&Default::default())
        .await?
        .into_iter()
        .map(|v| bollard_stubs::models::Volume {
            name: v.volume.name,
            driver: v.volume.driver,
            mountpoint: v.mountpoint.display().to_string(),
            usage_data: Some(bollard_stubs::models::VolumeUsageData {
                size: -1,
                ref_count: v.containers.len() as i64,
            }),
            ..Default::default()
        })
        .collect();
    let layers: i64 = images.iter().map(|i| i.size).sum();
    Ok(Json(SystemDataUsageResponse {
        layers_size: Some(layers),
        images: Some(images),
        containers: Some(containers),
        volumes: Some(volumes),
        build_cache: Some(Vec::new()),
    }))
}

/// `POST /auth` (`docker login`): the credentials are checked against the registry
/// (its `/v2/`, through its token endpoint when it has one), as dockerd does. boxd
/// keeps no login: the client stores the credentials and sends them with each pull.
pub(super) async fn auth(
    State(s): State<AppState>,
    DockerJson(config): DockerJson<super::images::AuthConfig>,
) -> Result<Response, DockerError> {
    #[derive(serde::Serialize)]
    struct AuthAnswer {
        #[serde(rename = "Status")]
        status: &'static str,
    }
    let credentials = config
        .credentials()?
        .ok_or_else(|| DockerError::bad("username and password are required to log in"))?;
    let server = config.serveraddress.clone().unwrap_or_default();
    s.runtime
        .check_registry_login(&server, &credentials)
        .await
        .map_err(|e| match e {
            // The CLI prints the message: say what failed, with dockerd's 401.
            RuntimeError::Image(i) if i.is_unauthorized() => DockerError::new(
                StatusCode::UNAUTHORIZED,
                format!("login to {server} failed: unauthorized: incorrect username or password"),
            ),
            e => e.into(),
        })?;
    Ok((
        StatusCode::OK,
        Json(AuthAnswer {
            status: "Login Succeeded",
        }),
    )
        .into_response())
}

/// `/session` (BuildKit): boxd does not build images.
pub(super) async fn no_session() -> DockerError {
    DockerError::new(
        StatusCode::NOT_IMPLEMENTED,
        "boxd does not build images (no BuildKit session); build elsewhere and docker load or push the result",
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// `GET /events`: stored events since `since`, then live ones until `until` (or the
/// client leaves), in Docker's shape.
pub(super) async fn events(
    State(s): State<AppState>,
    DockerQuery(q): DockerQuery<EventsQuery>,
) -> Result<Response, DockerError> {
    let filters = Filters::parse(q.filters.as_deref())?;
    filters.only(&[
        "container",
        "event",
        "image",
        "label",
        "network",
        "type",
        "volume",
        "scope",
        "daemon",
    ])?;
    let mut filter = EventFilter::default();
    if let Some(v) = q.since.as_deref().filter(|v| !v.is_empty()) {
        filter.since_time = Some(parse_time("since", v)?);
    } else {
        // Docker replays nothing without `since`: live events only.
        filter.since_time = Some(chrono::Utc::now());
    }
    if let Some(v) = q.until.as_deref().filter(|v| !v.is_empty()) {
        filter.until_time = Some(parse_time("until", v)?);
    }
    // Containers named in the filter, also by their ids (events carry ids).
    let mut containers = Vec::new();
    for c in filters.get("container") {
        containers.push(c.clone());
        if let Ok(found) = s.runtime.container(c).await {
            containers.push(found.id);
        }
    }
    let events = s
        .runtime
        .events()
        .follow(filter, move |e| matches(&filters, &containers, e))
        .await
        .map_err(RuntimeError::from)?;
    let body = events.map(|e| {
        let mut line = serde_json::to_vec(&event_out(e)).expect("event serialises");
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

fn matches(f: &Filters, containers: &[String], e: &boxd_types::Event) -> bool {
    let any = |name: &str, v: &str| f.get(name).is_empty() || f.get(name).iter().any(|x| x == v);
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    any("type", &e.kind)
        && any("event", docker_action(&e.action))
        && (f.get("container").is_empty()
            || (e.kind == "container"
                && containers
                    .iter()
                    .any(|c| c == &e.id || c == name || e.id.starts_with(c.as_str()))))
        && (f.get("image").is_empty()
            || f.get("image").iter().any(|i| {
                e.attributes.get("image").is_some_and(|a| a == i)
                    || (e.kind == "image" && (name == i || e.id == *i))
            }))
        && (f.get("network").is_empty()
            || (e.kind == "network" && f.get("network").iter().any(|n| n == name || n == &e.id)))
        && (f.get("volume").is_empty()
            || (e.kind == "volume" && f.get("volume").iter().any(|n| n == name || n == &e.id)))
        && f.labels_match("label", |k| e.attributes.get(k).map(String::as_str))
}

/// Docker's name of a boxd event action.
fn docker_action(action: &str) -> &str {
    match action {
        "memory_pressure" => "oom_warning",
        other => other,
    }
}

fn event_out(e: boxd_types::Event) -> EventMessage {
    let typ = match e.kind.as_str() {
        "container" => EventMessageTypeEnum::CONTAINER,
        "image" => EventMessageTypeEnum::IMAGE,
        "network" => EventMessageTypeEnum::NETWORK,
        "volume" => EventMessageTypeEnum::VOLUME,
        _ => EventMessageTypeEnum::DAEMON,
    };
    let mut attributes: HashMap<String, String> = HashMap::new();
    for (k, v) in e.attributes {
        // Docker's attribute names for the same facts.
        let k = match k.as_str() {
            "exit_code" => "exitCode".to_owned(),
            "exec_id" => "execID".to_owned(),
            _ => k,
        };
        attributes.insert(k, v);
    }
    let action = match (e.action.as_str(), attributes.get("cmd")) {
        ("exec_create" | "exec_start", Some(cmd)) => format!("{}: {cmd}", e.action),
        _ => docker_action(&e.action).to_owned(),
    };
    EventMessage {
        typ: Some(typ),
        action: Some(action),
        actor: Some(EventActor {
            id: Some(e.id),
            attributes: Some(attributes),
        }),
        scope: Some(EventMessageScopeEnum::LOCAL),
        time: Some(e.time.timestamp()),
        time_nano: e.time.timestamp_nanos_opt(),
    }
}
