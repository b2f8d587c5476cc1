//! `GET /metrics`: the figures a scrape shows after an OOM kill and beside a running
//! container, bounded request labels on both faces, the OpenMetrics answer, the
//! Prometheus text answer passing `promtool check metrics`, and `metrics_address`
//! serving `/metrics` (and only it) on TCP.

use std::path::Path;
use std::process::Command;

use boxd_tests::{assert_no_leaks, require, require_root, tool, TestDaemon};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::json;

const MIB: u64 = 1 << 20;

/// A shell that keeps 200 MB in a variable: far over the limit used here.
const HOG: &str = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}";

/// The value of the sample `name{labels...}` whose labels include every `want`
/// (`key="value"` pieces), if exactly one line matches.
fn sample(body: &str, name: &str, want: &[String]) -> Option<f64> {
    let mut found = body.lines().filter(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            && want.iter().all(|w| l.contains(w.as_str()))
    });
    let line = found.next()?;
    assert!(
        found.next().is_none(),
        "{name} {want:?}: more than one line"
    );
    line.rsplit(' ').next()?.parse().ok()
}

fn label(key: &str, value: &str) -> String {
    format!("{key}=\"{value}\"")
}

/// `curl` a URL (over `socket` when given) with `Accept: text/plain`; the body.
fn curl_text(socket: Option<&Path>, url: &str) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-H",
        "Accept: text/plain; version=0.0.4",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(s) = socket {
        cmd.arg("--unix-socket").arg(s);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_owned(), code.to_owned())
}

/// `promtool check metrics` on `body`: its verdict and what it said.
fn promtool_check(body: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A free TCP port on loopback (the daemon binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn root_metrics_show_oom_kills_limits_states_and_request_latency() {
    require_root!();
    require!(
        tool("promtool").is_some(),
        "no promtool (apt-get install prometheus)"
    );
    require!(tool("curl").is_some(), "no curl (apt-get install curl)");
    let port = free_port();
    let mut d = TestDaemon::prepare();
    d.config_lines
        .push(format!("metrics_address = \"127.0.0.1:{port}\""));
    d.spawn().await;
    d.import_busybox().await;

    // One that the OOM killer ends, one that keeps running.
    let hog = d
        .run(json!({
            "image": "busybox",
            "name": "hog",
            "cmd": ["/bin/sh", "-c", HOG],
            "resources": {"memory_bytes": 32 * MIB},
        }))
        .await;
    let end = d.wait(&hog).await;
    assert_eq!(end["oom_killed"], true, "{end}");
    let sleeper = d
        .run(json!({
            "image": "busybox",
            "name": "sleeper",
            "cmd": ["sleep", "1000"],
            "resources": {"memory_bytes": 64 * MIB, "pids_max": 50},
        }))
        .await;
    for _ in 0..3 {
        d.inspect(&sleeper).await;
    }
    // The Docker face, versioned and not: one route template.
    d.api_ok(
        "GET",
        &format!("/v1.43/containers/{sleeper}/json"),
        None,
        200,
    )
    .await;
    d.api_ok("GET", &format!("/containers/{hog}/json"), None, 200)
        .await;
    let kills = d.inspect(&hog).await["oom_kill_count"].as_u64().unwrap();

    // The default answer: OpenMetrics.
    let resp = d
        .send(Method::GET, "/metrics", None, Bytes::new())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    let of = |id: &str, name: &str| vec![label("id", id), label("name", name)];
    let get = |name: &str, want: &[String]| {
        sample(&body, name, want).unwrap_or_else(|| panic!("no {name} {want:?} in\n{body}"))
    };

    // The OOM kill, counted as inspect counts it (the kernel kills once, or on a loaded
    // host a second victim before memory is freed: see tests/it/observe.rs).
    let oom = get("boxd_container_oom_kills_total", &of(&hog, "hog"));
    assert_eq!(oom as u64, kills);
    assert!((1..=3).contains(&kills), "{kills} kills");
    assert_eq!(
        get("boxd_container_oom_kills_total", &of(&sleeper, "sleeper")),
        0.0
    );
    // Limits: the running one's from its cgroup, the dead one's as asked.
    assert_eq!(
        get(
            "boxd_container_memory_limit_bytes",
            &of(&sleeper, "sleeper")
        ),
        (64 * MIB) as f64
    );
    assert_eq!(
        get("boxd_container_memory_limit_bytes", &of(&hog, "hog")),
        (32 * MIB) as f64
    );
    // Kernel figures only for the running one.
    assert!(
        get(
            "boxd_container_memory_usage_bytes",
            &of(&sleeper, "sleeper")
        ) > 0.0
    );
    assert!(get("boxd_container_pids_current", &of(&sleeper, "sleeper")) >= 1.0);
    assert!(
        get(
            "boxd_container_cpu_usage_seconds_total",
            &of(&sleeper, "sleeper")
        ) >= 0.0
    );
    assert!(sample(&body, "boxd_container_memory_usage_bytes", &of(&hog, "hog")).is_none());
    assert_eq!(get("boxd_container_restarts_total", &of(&hog, "hog")), 0.0);
    assert_eq!(
        get(
            "boxd_container_memory_pressure_events_total",
            &of(&sleeper, "sleeper")
        ),
        0.0
    );
    // States.
    for (state, n) in [
        ("running", 1.0),
        ("exited", 1.0),
        ("created", 0.0),
        ("dead", 0.0),
    ] {
        assert_eq!(
            get("boxd_containers", &[label("state", state)]),
            n,
            "{state}"
        );
    }
    assert_eq!(get("boxd_images", &[]), 1.0);
    // Request latency by route template: the three inspects (and the one above) ...
    let inspects = get(
        "boxd_http_request_duration_seconds_count",
        &[
            label("method", "GET"),
            label("route", "/v1/containers/{id}"),
            label("status", "2xx"),
        ],
    );
    assert!(inspects >= 4.0, "{inspects}");
    let creates = get(
        "boxd_http_request_duration_seconds_count",
        &[
            label("method", "POST"),
            label("route", "/v1/containers"),
            label("status", "2xx"),
        ],
    );
    assert_eq!(creates, 2.0);
    // ... the Docker face's, both spellings on one template ...
    let docker = get(
        "boxd_http_request_duration_seconds_count",
        &[
            label("method", "GET"),
            label("route", "/containers/{id}/json"),
        ],
    );
    assert_eq!(docker, 2.0);
    // ... and never a raw path.
    assert!(!body.contains(&format!("route=\"/v1/containers/{sleeper}")));
    assert!(!body.contains(&format!("route=\"/containers/{hog}")));
    // Every write so far was a timed commit.
    assert!(get("boxd_store_commit_duration_seconds_count", &[]) > 10.0);

    // Prometheus text 0.0.4 for a client that asks for it, and promtool accepts it.
    let (text, code) = curl_text(Some(&d.socket), "http://boxd/metrics");
    assert_eq!(code, "200", "{text}");
    assert!(
        text.contains("# TYPE boxd_container_oom_kills_total counter"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed: {said}\n{text}");

    // metrics_address: the same figures on TCP, and nothing else there.
    let url = format!("http://127.0.0.1:{port}");
    let (tcp, code) = curl_text(None, &format!("{url}/metrics"));
    assert_eq!(code, "200", "{tcp}");
    assert!(
        tcp.contains("boxd_containers{state=\"running\"} 1"),
        "{tcp}"
    );
    let (ok, said) = promtool_check(&tcp);
    assert!(ok, "promtool check metrics failed on TCP: {said}");
    for path in ["/v1/containers", "/_ping", "/containers/json"] {
        let (_, code) = curl_text(None, &format!("{url}{path}"));
        assert_eq!(code, "404", "{path} on metrics_address");
    }

    d.remove_container(&sleeper).await;
    d.remove_container(&hog).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_metrics_address_is_off_by_default() {
    require_root!();
    let d = TestDaemon::start().await;
    let config = std::fs::read_to_string(d.dir.join("boxd.toml")).unwrap();
    assert!(!config.contains("metrics_address"), "{config}");
    // Nothing of the daemon's listens on TCP: its /proc/net/tcp sockets are those of
    // other processes, so look at its own fds.
    let pid = d.daemon_pid().expect("daemon pid");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let tcp_inodes: Vec<&str> = tcp
        .lines()
        .skip(1)
        .chain(tcp6.lines().skip(1))
        .filter_map(|l| l.split_whitespace().nth(9))
        .collect();
    for fd in fds.flatten() {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            assert!(
                !tcp_inodes.contains(&inode),
                "the daemon holds a TCP socket without metrics_address"
            );
        }
    }
    // The metrics are on the API socket all the same.
    let (status, body) = d.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("boxd_build_info{"), "{body}");
    assert_no_leaks(&d);
}
