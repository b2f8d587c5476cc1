//! `api-spec/openapi.yaml` against the code: the router's routes, the wire types of
//! `types/src/lib.rs` (crate `boxd-types`), and (as root) the answers of a real daemon.

use std::collections::{BTreeMap, BTreeSet};

use boxd_client::models::{
    Container, ContainerConfig, ContainerState, CreateContainer, CreateResponse, ErrorBody, Event,
    Image, Info, LogEntry, LogStream, Mount, Resources, Version, WaitResponse,
};
use boxd_tests::{require_root, workspace_root, TestDaemon};
use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};

fn spec() -> Value {
    let path = workspace_root().join("api-spec/openapi.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// axum writes a catch-all segment `{*ref}`; OpenAPI has no such thing and writes `{ref}`.
fn normalise(path: &str) -> String {
    path.replace("{*", "{")
}

#[test]
fn spec_routes_equal_router_routes() {
    let spec = spec();
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let mut in_spec = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("spec has paths") {
        for (key, _) in item.as_object().expect("path item is a map") {
            if methods.contains(&key.as_str()) {
                in_spec.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    let in_router: BTreeSet<(String, String)> = boxd::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_uppercase(), normalise(p)))
        .collect();
    let missing_in_spec: Vec<_> = in_router.difference(&in_spec).collect();
    let missing_in_router: Vec<_> = in_spec.difference(&in_router).collect();
    assert!(
        missing_in_spec.is_empty() && missing_in_router.is_empty(),
        "spec and router disagree\n  served but not in api-spec/openapi.yaml: {missing_in_spec:?}\n  \
         in the spec but not served: {missing_in_router:?}"
    );
}

#[test]
fn spec_declares_every_path_parameter() {
    let spec = spec();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let wanted: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let mut declared = BTreeSet::new();
            for p in item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten()
            {
                let p = resolve(&spec, p);
                if p["in"] == "path" {
                    declared.insert(p["name"].as_str().unwrap_or("").to_string());
                }
            }
            assert_eq!(declared, wanted, "{method} {path}: path parameters");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
        }
    }
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            spec.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

/// Check `value` (serialised from a model) against `schema`; push every disagreement.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if schema.as_object().is_some_and(|o| o.is_empty()) {
        // `{}`: any value (free-form JSON such as a CNI configuration list).
        return;
    }
    if let Some(alternatives) = schema["oneOf"].as_array() {
        // Exactly one alternative must accept the value.
        let fits = alternatives
            .iter()
            .filter(|alt| {
                let mut errs = Vec::new();
                check(spec, alt, value, at, &mut errs);
                errs.is_empty()
            })
            .count();
        if fits != 1 {
            errors.push(format!("{at}: {value} fits {fits} of the spec's oneOf"));
        }
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    if value.is_null() {
        if schema["nullable"] != true {
            errors.push(format!("{at}: null but the schema is not nullable"));
        }
        return;
    }
    let ok = match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => {
            errors.push(format!("{at}: schema has no usable type ({other:?})"));
            return;
        }
    };
    if !ok {
        errors.push(format!("{at}: {value} is not of type {ty}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!(
                "{at}: {value} is not one of the spec's enum {allowed:?}"
            ));
        }
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(spec, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(spec, s, v, &format!("{at}.{k}"), errors),
                    None => match schema.get("additionalProperties") {
                        Some(extra) if extra.is_object() => {
                            check(spec, extra, v, &format!("{at}.{k}"), errors)
                        }
                        _ => errors.push(format!("{at}: key {k:?} is not a property in the spec")),
                    },
                }
            }
        }
        _ => {}
    }
}

fn schema_of<'a>(spec: &'a Value, name: &str) -> &'a Value {
    spec.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("no schema {name} in the spec"))
}

/// `full` (every field set) must fit the schema and name every property of it;
/// `minimal` (every optional field left out) must still carry every `required` one.
fn check_model(spec: &Value, name: &str, full: &impl Serialize, minimal: &impl Serialize) {
    let schema = schema_of(spec, name);
    let full = serde_json::to_value(full).expect("serialise");
    let minimal = serde_json::to_value(minimal).expect("serialise");
    let mut errors = Vec::new();
    check(spec, schema, &full, name, &mut errors);
    check(spec, schema, &minimal, name, &mut errors);
    let keys: BTreeSet<&String> = full.as_object().expect("object").keys().collect();
    if let Some(props) = schema["properties"].as_object() {
        for p in props.keys() {
            if !keys.contains(p) {
                errors.push(format!(
                    "{name}: spec property {p:?} is not a field of the type"
                ));
            }
        }
    }
    for r in schema["required"].as_array().into_iter().flatten() {
        let r = r.as_str().expect("required names are strings");
        if minimal.get(r).is_none() {
            errors.push(format!(
                "{name}: {r:?} is required in the spec but left out of a minimal value"
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "spec and models disagree:\n  {}",
        errors.join("\n  ")
    );
}

fn port() -> boxd_client::models::PortSpec {
    boxd_client::models::PortSpec {
        host_ip: Some("127.0.0.1".into()),
        host_port: Some(8080),
        container_port: 80,
        protocol: Some("tcp".into()),
    }
}

fn endpoint() -> boxd_client::models::NetworkEndpoint {
    boxd_client::models::NetworkEndpoint {
        network: "boxd".into(),
        ifname: "eth0".into(),
        address: Some("10.77.0.2/16".into()),
        gateway: Some("10.77.0.1".into()),
        mac: Some("aa:bb:cc:dd:ee:ff".into()),
        address6: Some("fd00:1::2/64".into()),
    }
}

fn id_mapping() -> boxd_client::models::IdMapping {
    boxd_client::models::IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    }
}

fn time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
}

fn full_resources() -> Resources {
    Resources {
        memory_bytes: Some(64 << 20),
        memory_swap_bytes: Some(-1),
        memory_swappiness: Some(0),
        memory_high_bytes: Some(48 << 20),
        pids_max: Some(32),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpu_shares: Some(512),
        disk_bytes: Some(1 << 30),
        network_ingress_bps: Some(8_000_000),
        network_egress_bps: Some(16_000_000),
    }
}

fn mount() -> Mount {
    Mount {
        kind: Some("volume".into()),
        source: "/srv/data".into(),
        target: "/data".into(),
        read_only: true,
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([("team".to_string(), "web".to_string())])
}

fn container(full: bool) -> Container {
    Container {
        id: "ab".repeat(32),
        name: "web".into(),
        image: "busybox".into(),
        image_id: format!("sha256:{}", "cd".repeat(32)),
        state: if full {
            ContainerState::Exited
        } else {
            ContainerState::Created
        },
        paused: full,
        pid: full.then_some(4242),
        exit_code: full.then_some(137),
        exit_signal: full.then_some(9),
        oom_killed: full,
        created_at: time(),
        started_at: full.then(time),
        finished_at: full.then(time),
        error: full.then(|| "oom".to_string()),
        config: ContainerConfig {
            cmd: vec!["sleep".into(), "1".into()],
            env: vec!["A=b".into()],
            working_dir: "/".into(),
            hostname: "web".into(),
            user: "nobody".into(),
            mounts: if full { vec![mount()] } else { vec![] },
            labels: if full { labels() } else { BTreeMap::new() },
            userns: full.then(|| boxd_client::models::UsernsConfig {
                mode: "auto".into(),
                uid_map: vec![id_mapping()],
                gid_map: vec![id_mapping()],
            }),
            network: "boxd".into(),
            ports: if full { vec![port()] } else { vec![] },
            network_aliases: if full { vec!["web".into()] } else { vec![] },
            ip: full.then(|| "10.77.0.9".into()),
            connected_networks: if full { vec!["back".into()] } else { vec![] },
            stop_signal: full.then(|| "SIGQUIT".into()),
            links: if full { vec!["db_1:db".into()] } else { vec![] },
            dns: if full {
                vec!["192.0.2.53".into()]
            } else {
                vec![]
            },
            dns_search: if full {
                vec!["corp.example".into()]
            } else {
                vec![]
            },
            dns_options: if full { vec!["ndots:2".into()] } else { vec![] },
            extra_hosts: if full {
                vec!["db.local:192.0.2.9".into()]
            } else {
                vec![]
            },
            ..Default::default()
        },
        networks: if full { vec![endpoint()] } else { vec![] },
        resources: if full {
            full_resources()
        } else {
            Resources::default()
        },
        restart_policy: if full { "on-failure:3" } else { "no" }.into(),
        restart_count: if full { 2 } else { 0 },
        next_restart_at: full.then(time),
        observed: if full { observed() } else { Default::default() },
    }
}

fn exit_info(full: bool) -> boxd_client::models::ExitInfo {
    boxd_client::models::ExitInfo {
        seq: 3,
        container_id: "ab".repeat(32),
        started_at: full.then(time),
        finished_at: time(),
        duration_ms: 1500,
        exit_code: full.then_some(137),
        signal: full.then_some(9),
        oom_killed: full,
        oom_kill_count: u64::from(full),
        memory_pressure_count: 2,
        memory_events: BTreeMap::from([("oom_kill".to_string(), 1)]),
        memory_limit: full.then_some(64 << 20),
        memory_peak: full.then_some(64 << 20),
        cpu_user_usec: full.then_some(1200),
        cpu_system_usec: full.then_some(300),
        last_log: vec!["allocating".into()],
        error: full.then(|| "lost".to_string()),
    }
}

fn observed() -> boxd_client::models::Observed {
    boxd_client::models::Observed {
        oom_kill_count: 1,
        memory_pressure_count: 2,
        memory_events: BTreeMap::from([("oom_kill".to_string(), 1)]),
        memory_warning_percent: 90,
        last_exit: Some(exit_info(true)),
    }
}

fn stats(full: bool) -> boxd_client::models::ContainerStats {
    use boxd_client::models::{BlkioStats, CpuStats, MemoryStats, PidsStats};
    boxd_client::models::ContainerStats {
        id: "ab".repeat(32),
        name: "web".into(),
        read: time(),
        memory: MemoryStats {
            usage: 1 << 20,
            limit: full.then_some(64 << 20),
            peak: full.then_some(2 << 20),
            cache: 4096,
            swap: full.then_some(0),
        },
        cpu: CpuStats {
            usage_usec: 3,
            user_usec: 2,
            system_usec: 1,
            nr_periods: 0,
            nr_throttled: 0,
            throttled_usec: 0,
        },
        pids: PidsStats {
            current: 1,
            max: full.then_some(32),
        },
        blkio: BlkioStats {
            read_bytes: 1,
            write_bytes: 2,
        },
        network: boxd_client::models::NetworkStats {
            rx_bytes: 3,
            rx_packets: 4,
            tx_bytes: 5,
            tx_packets: 6,
        },
    }
}

#[test]
fn spec_schemas_match_models() {
    let spec = spec();
    let version = Version {
        version: "0.1.0".into(),
        api_version: "v1".into(),
        cgroup_version: "v1".into(),
        kernel: "6.1.0".into(),
    };
    check_model(&spec, "Version", &version, &version);
    let info = Info {
        containers: 3,
        containers_created: 1,
        containers_running: 1,
        containers_exited: 1,
        containers_dead: 0,
        images: 1,
        cgroup_version: "v2".into(),
        cgroup_controllers: vec!["memory".into(), "pids".into()],
        cgroup_parent: "boxd".into(),
        kernel: "6.1.0".into(),
        root_dir: "/var/lib/boxd".into(),
        state_dir: "/run/boxd".into(),
        ncpu: 2,
        mem_total: 1 << 30,
    };
    check_model(&spec, "Info", &info, &info);
    let image = |full: bool| Image {
        id: format!("sha256:{}", "cd".repeat(32)),
        tags: vec!["busybox:latest".into()],
        size: 2_000_000,
        created_at: time(),
        cmd: if full { vec!["/bin/sh".into()] } else { vec![] },
        env: if full {
            vec!["PATH=/bin".into()]
        } else {
            vec![]
        },
        working_dir: full.then(|| "/".into()),
        exposed_ports: if full {
            vec!["80/tcp".into(), "53/udp".into()]
        } else {
            vec![]
        },
        ..Default::default()
    };
    check_model(&spec, "Image", &image(true), &image(false));
    check_model(
        &spec,
        "Mount",
        &mount(),
        &Mount {
            read_only: false,
            ..mount()
        },
    );
    check_model(&spec, "Resources", &full_resources(), &Resources::default());
    let create_full = CreateContainer {
        image: "busybox".into(),
        name: Some("web".into()),
        cmd: Some(vec!["sleep".into(), "1000".into()]),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        env: vec!["A=b".into()],
        working_dir: Some("/tmp".into()),
        hostname: Some("h".into()),
        user: Some("1000:1000".into()),
        mounts: vec![mount()],
        resources: full_resources(),
        labels: labels(),
        restart_policy: Some("unless-stopped".into()),
        memory_warning_percent: Some(90),
        tty: true,
        open_stdin: true,
        stdin_once: true,
        auto_remove: true,
        stop_signal: Some("SIGQUIT".into()),
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["CHOWN".into()],
        security_opt: vec!["no-new-privileges=false".into()],
        seccomp: Some("unconfined".into()),
        no_new_privileges: Some(false),
        read_only_rootfs: true,
        tmpfs: BTreeMap::from([("/tmp".to_string(), "size=64m".to_string())]),
        ulimits: vec![boxd_client::models::Ulimit {
            name: "nofile".into(),
            soft: 100,
            hard: 200,
        }],
        userns: Some(boxd_client::models::UsernsRequest::Mode("auto".into())),
        network: Some("front".into()),
        ports: vec![port()],
        network_aliases: vec!["web".into()],
        ip: Some("10.90.0.9".into()),
        dns: vec!["192.0.2.53".into()],
        dns_search: vec!["corp.example".into()],
        dns_options: vec!["ndots:2".into()],
        extra_hosts: vec!["db.local:192.0.2.9".into()],
        publish_all: true,
    };
    let create_maps = CreateContainer {
        userns: Some(boxd_client::models::UsernsRequest::Maps {
            uid_map: vec![id_mapping()],
            gid_map: vec![id_mapping()],
        }),
        ..create_full.clone()
    };
    check_model(&spec, "CreateContainer", &create_maps, &create_full);
    let create_min = CreateContainer {
        image: "busybox".into(),
        ..Default::default()
    };
    check_model(&spec, "CreateContainer", &create_full, &create_min);
    let update_full = boxd_client::models::UpdateContainer {
        memory_bytes: Some(64 << 20),
        memory_swap_bytes: Some(-1),
        pids_max: Some(10),
        cpu_quota_us: Some(50_000),
        cpu_period_us: Some(100_000),
        cpu_shares: Some(512),
        restart_policy: Some("always".into()),
    };
    check_model(
        &spec,
        "UpdateContainer",
        &update_full,
        &boxd_client::models::UpdateContainer::default(),
    );
    let updated = boxd_client::models::UpdateResponse {
        warnings: vec!["swap limit not applied".into()],
    };
    check_model(&spec, "UpdateResponse", &updated, &updated);
    let created = CreateResponse {
        id: "ab".repeat(32),
        name: "web".into(),
        warnings: vec!["swap limit ignored".into()],
    };
    check_model(
        &spec,
        "CreateResponse",
        &created,
        &CreateResponse {
            warnings: vec![],
            ..created.clone()
        },
    );
    check_model(
        &spec,
        "ContainerConfig",
        &container(true).config,
        &container(false).config,
    );
    // The Container schema is also inspect's answer, which adds the recent execs.
    let inspected = boxd_client::models::ContainerInspect {
        container: container(true),
        warnings: vec!["network mode host: not isolated".into()],
        execs: vec![boxd_client::models::ExecInspect {
            id: "ef".repeat(32),
            container_id: "ab".repeat(32),
            cmd: vec!["ps".into()],
            tty: true,
            running: false,
            pid: Some(77),
            exit_code: Some(0),
            exit_signal: None,
            oom_killed: false,
            started_at: time(),
            finished_at: Some(time()),
        }],
    };
    check_model(&spec, "Container", &inspected, &container(false));
    check_model(&spec, "ExitInfo", &exit_info(true), &exit_info(false));
    check_model(&spec, "ContainerStats", &stats(true), &stats(false));
    let wait = WaitResponse {
        exit_code: 137,
        oom_killed: true,
    };
    check_model(&spec, "WaitResponse", &wait, &wait);
    let entry = LogEntry {
        time: time(),
        stream: LogStream::Stderr,
        line: "hello\n".into(),
    };
    check_model(&spec, "LogEntry", &entry, &entry);
    let event = |full: bool| Event {
        seq: 7,
        time: time(),
        kind: "container".into(),
        action: "die".into(),
        id: "ab".repeat(32),
        attributes: if full {
            BTreeMap::from([("exit_code".to_string(), "0".to_string())])
        } else {
            BTreeMap::new()
        },
    };
    check_model(&spec, "Event", &event(true), &event(false));
    let err = ErrorBody {
        code: "not_found".into(),
        message: "no such container".into(),
    };
    check_model(&spec, "ErrorBody", &err, &err);
    let port_min = boxd_client::models::PortSpec {
        container_port: 80,
        ..Default::default()
    };
    check_model(&spec, "PortSpec", &port(), &port_min);
    let net_full = boxd_client::models::NetworkCreate {
        name: "front".into(),
        subnet: Some("10.90.0.0/24".into()),
        gateway: Some("10.90.0.1".into()),
        subnet6: Some("fd00:1::/64".into()),
        gateway6: Some("fd00:1::1".into()),
        conflist: Some(json!({"cniVersion": "1.0.0", "plugins": [{"type": "ptp"}]})),
        internal: true,
        labels: labels(),
    };
    let net_min = boxd_client::models::NetworkCreate {
        name: "front".into(),
        ..Default::default()
    };
    check_model(&spec, "NetworkCreate", &net_full, &net_min);
    let network = |full: bool| boxd_client::models::Network {
        id: "ef".repeat(32),
        name: "front".into(),
        driver: "bridge".into(),
        bridge: "boxd1".into(),
        subnet: "10.90.0.0/24".into(),
        gateway: "10.90.0.1".into(),
        subnet6: full.then(|| "fd00:1::/64".into()),
        gateway6: full.then(|| "fd00:1::1".into()),
        conflist: full.then(|| json!({"cniVersion": "1.0.0", "plugins": [{"type": "ptp"}]})),
        internal: full,
        labels: if full { labels() } else { BTreeMap::new() },
        created_at: time(),
        default: false,
        containers: if full {
            vec![boxd_client::models::NetworkContainer {
                id: "ab".repeat(32),
                endpoint: endpoint(),
            }]
        } else {
            vec![]
        },
    };
    check_model(&spec, "Network", &network(true), &network(false));
    check_model(&spec, "NetworkEndpoint", &endpoint(), &endpoint());
    let connect = boxd_client::models::NetworkConnect {
        container: "web".into(),
        aliases: vec!["w".into()],
    };
    let connect_min = boxd_client::models::NetworkConnect {
        container: "web".into(),
        ..Default::default()
    };
    check_model(&spec, "NetworkConnect", &connect, &connect_min);
    let disconnect = boxd_client::models::NetworkDisconnect {
        container: "web".into(),
    };
    check_model(&spec, "NetworkDisconnect", &disconnect, &disconnect);
    let vcreate = boxd_client::models::VolumeCreate {
        name: Some("data".into()),
        driver: Some("local".into()),
        driver_opts: BTreeMap::from([("size".to_owned(), "100m".to_owned())]),
        labels: labels(),
    };
    check_model(
        &spec,
        "VolumeCreate",
        &vcreate,
        &boxd_client::models::VolumeCreate::default(),
    );
    let volume = |full: bool| boxd_client::models::Volume {
        name: "data".into(),
        driver: "local".into(),
        mountpoint: "/var/lib/boxd/volumes/data/_data".into(),
        created_at: time(),
        labels: if full { labels() } else { BTreeMap::new() },
        driver_opts: BTreeMap::new(),
        scope: "local".into(),
        anonymous: full,
        size_bytes: full.then_some(100 << 20),
        containers: if full { vec!["ab".repeat(32)] } else { vec![] },
    };
    check_model(&spec, "Volume", &volume(true), &volume(false));
    let pruned = boxd_client::models::VolumePruneResponse {
        volumes_deleted: vec!["data".into()],
        space_reclaimed: 4096,
    };
    check_model(&spec, "VolumePruneResponse", &pruned, &pruned);
}

/// Every variant of a model enum is in the spec's enum, and the spec lists no other.
#[test]
fn spec_enums_match_models() {
    let spec = spec();
    let cases: [(&str, Vec<Value>); 2] = [
        (
            "ContainerState",
            [
                ContainerState::Created,
                ContainerState::Running,
                ContainerState::Exited,
                ContainerState::Dead,
            ]
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect(),
        ),
        (
            "LogStream",
            [LogStream::Stdout, LogStream::Stderr]
                .iter()
                .map(|s| serde_json::to_value(s).unwrap())
                .collect(),
        ),
    ];
    for (name, variants) in cases {
        let listed: BTreeSet<String> = schema_of(&spec, name)["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let actual: BTreeSet<String> = variants
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, actual, "{name}: spec enum vs Rust enum");
    }
}

/// What a real daemon answers fits the schemas the spec gives for those routes.
#[tokio::test]
async fn root_spec_matches_live_answers() {
    require_root!();
    let spec = spec();
    let d = TestDaemon::start().await;
    let mut errors = Vec::new();
    let mut fits =
        |name: &str, v: &Value| check(&spec, schema_of(&spec, name), v, name, &mut errors);

    fits("Version", &d.api_ok("GET", "/v1/version", None, 200).await);
    fits("Image", &d.import_busybox().await);
    let images = d.api_ok("GET", "/v1/images", None, 200).await;
    fits("Image", &images[0]);
    fits(
        "Image",
        &d.api_ok("GET", "/v1/images/busybox", None, 200).await,
    );
    let created = d
        .api_ok(
            "POST",
            "/v1/containers",
            Some(
                json!({"image": "busybox", "name": "specced", "cmd": ["/bin/true"],
                         "resources": {"memory_bytes": 67108864, "pids_max": 64}}),
            ),
            201,
        )
        .await;
    fits("CreateResponse", &created);
    fits("Container", &d.inspect("specced").await);
    d.start_container("specced").await;
    fits("WaitResponse", &d.wait("specced").await);
    fits("Container", &d.inspect("specced").await);
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    fits("Container", &list[0]);
    fits("Info", &d.api_ok("GET", "/v1/info", None, 200).await);
    let (_, logs) = d
        .get_text("/v1/containers/specced/logs?format=ndjson")
        .await;
    for line in logs.lines() {
        fits("LogEntry", &serde_json::from_str(line).expect("ndjson"));
    }
    let mut events = d.stream_lines("/v1/events?since=0").await;
    let first = events
        .next_json(std::time::Duration::from_secs(5))
        .await
        .expect("an event for the import");
    fits("Event", &first);
    let (status, body) = d.api("GET", "/v1/containers/no-such-thing", None).await;
    assert_eq!(status.as_u16(), 404);
    fits("ErrorBody", &body);
    assert!(
        errors.is_empty(),
        "live answers disagree with the spec:\n  {}",
        errors.join("\n  ")
    );
}

/// Every error `code` the daemon can answer (the string arms of `ApiError::code`) is in
/// the spec's list of `ErrorBody.code`s, and the list names no code the daemon lacks.
#[test]
fn spec_lists_every_error_code() {
    let source = std::fs::read_to_string(workspace_root().join("daemon/src/api/error.rs"))
        .expect("read daemon/src/api/error.rs");
    let body = &source[source.find("pub fn code(&self)").expect("ApiError::code")..];
    let body = &body[..body.find("\n    }\n").expect("end of ApiError::code")];
    let daemon: BTreeSet<String> = body
        .split("=> \"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect();
    assert!(daemon.len() > 10, "codes not found: {daemon:?}");
    let described = spec()["components"]["schemas"]["ErrorBody"]["properties"]["code"]
        ["description"]
        .as_str()
        .expect("ErrorBody.code description")
        .to_owned();
    let listed: BTreeSet<String> = described
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    let listed: BTreeSet<String> = listed.into_iter().filter(|w| w != "snake_case").collect();
    assert_eq!(listed, daemon, "spec (left) vs ApiError::code (right)");
}
