//! The container lifecycle: logs, stop with escalation, delete without leftovers, and
//! addressing by id, id prefix and name.

use std::time::{Duration, Instant};

use boxd_tests::{assert_no_leaks, process_alive, require_root, TestDaemon};
use serde_json::{json, Value};

#[tokio::test]
async fn root_logs_keep_order_and_streams_apart() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({
            "image": "busybox",
            "name": "talker",
            "cmd": ["/bin/sh", "-c",
                    "for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; echo err$i >&2; done"],
        }))
        .await;
    assert_eq!(d.wait(&id).await["exit_code"], 0);

    let (status, text) = d.get_text("/v1/containers/talker/logs?format=ndjson").await;
    assert_eq!(status.as_u16(), 200, "{text}");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let lines_of = |stream: &str| -> String {
        entries
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["line"].as_str().unwrap().to_string())
            .collect()
    };
    let want = |prefix: &str| -> String { (1..=10).map(|i| format!("{prefix}{i}\n")).collect() };
    assert_eq!(
        lines_of("stdout"),
        want("out"),
        "stdout in order, nothing else"
    );
    assert_eq!(
        lines_of("stderr"),
        want("err"),
        "stderr in order, nothing else"
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = entries
        .iter()
        .map(|e| e["time"].as_str().unwrap().parse().expect("RFC 3339 time"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times go back: {times:?}"
    );

    let (_, out) = d
        .get_text("/v1/containers/talker/logs?stdout=true&stderr=false")
        .await;
    assert_eq!(out, want("out"));
    let (_, err) = d
        .get_text("/v1/containers/talker/logs?stdout=false&stderr=true")
        .await;
    assert_eq!(err, want("err"));
    let (_, tail) = d
        .get_text("/v1/containers/talker/logs?stderr=false&tail=2")
        .await;
    assert_eq!(tail, "out9\nout10\n");
}

#[tokio::test]
async fn root_logs_follow_streams_until_exit() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", "echo first; sleep 1; echo second"],
        }))
        .await;
    let mut s = d
        .stream_lines(&format!("/v1/containers/{id}/logs?follow=true"))
        .await;
    assert_eq!(
        s.next_line(Duration::from_secs(5)).await.as_deref(),
        Some("first")
    );
    assert_eq!(
        s.next_line(Duration::from_secs(5)).await.as_deref(),
        Some("second")
    );
    // The stream ends by itself once the container has exited.
    assert_eq!(s.next_line(Duration::from_secs(5)).await, None);
}

#[tokio::test]
async fn root_stop_escalates_to_sigkill_when_term_is_ignored() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 1000"],
        }))
        .await;
    // Stop only once the trap is in place.
    let mut s = d
        .stream_lines(&format!("/v1/containers/{id}/logs?follow=true"))
        .await;
    assert_eq!(
        s.next_line(Duration::from_secs(5)).await.as_deref(),
        Some("ready")
    );
    let t = Instant::now();
    d.stop_container(&id, 1).await;
    let took = t.elapsed();
    let w = d.wait(&id).await;
    assert_eq!(w["exit_code"], 137, "{w}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "stop took {took:?}, expected about the 1 s timeout"
    );
    let c = d.inspect(&id).await;
    assert_eq!(c["state"], "exited");
    assert_eq!(c["exit_code"], 137);

    // A process that handles TERM is stopped by it, without waiting for the timeout.
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", "trap 'exit 143' TERM; echo ready; while :; do sleep 0.1; done"],
        }))
        .await;
    let mut s = d
        .stream_lines(&format!("/v1/containers/{id}/logs?follow=true"))
        .await;
    assert_eq!(
        s.next_line(Duration::from_secs(5)).await.as_deref(),
        Some("ready")
    );
    let t = Instant::now();
    d.stop_container(&id, 10).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited {:?}",
        t.elapsed()
    );
    assert_eq!(d.wait(&id).await["exit_code"], 143);
}

#[tokio::test]
async fn root_kill_sends_the_signal() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "cmd": ["/bin/sleep", "1000"]}))
        .await;
    d.api_ok("POST", &format!("/v1/containers/{id}/kill"), None, 204)
        .await;
    let w = d.wait(&id).await;
    assert_eq!(w["exit_code"], 137, "default signal is SIGKILL: {w}");
    let (status, body) = d
        .api("POST", &format!("/v1/containers/{id}/kill"), None)
        .await;
    assert_eq!(status.as_u16(), 409, "kill of an exited container: {body}");
    assert_eq!(body["code"], "not_running");
}

#[tokio::test]
async fn root_delete_leaves_no_cgroup_mount_process_or_dir() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sleep", "1000"],
            "resources": {"memory_bytes": 64 << 20, "pids_max": 32},
        }))
        .await;
    let pid = d.pid_of(&id).await;
    assert!(process_alive(pid));
    assert!(!d.cgroup_dirs_of(&id).is_empty(), "no cgroup made for {id}");
    assert!(d.state_dir_of(&id).exists(), "no state dir for {id}");

    let (status, body) = d.api("DELETE", &format!("/v1/containers/{id}"), None).await;
    assert_eq!(
        status.as_u16(),
        409,
        "delete of a running container: {body}"
    );
    assert_eq!(body["code"], "container_running");
    assert!(process_alive(pid));

    d.remove_container(&id).await;
    assert!(
        boxd_tests::wait_gone(&[pid], Duration::from_secs(5)).is_empty(),
        "process {pid} outlived its container"
    );
    d.assert_container_gone(&id);
    let (status, _) = d.api("GET", &format!("/v1/containers/{id}"), None).await;
    assert_eq!(status.as_u16(), 404);

    // An exited container goes the same way without force.
    let (code, _) = d.run_to_end(json!({"name": "short"}), &["/bin/true"]).await;
    assert_eq!(code, 0);
    let short = d.inspect("short").await["id"].as_str().unwrap().to_string();
    d.api_ok("DELETE", "/v1/containers/short", None, 204).await;
    d.assert_container_gone(&short);
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_containers_are_addressed_by_id_prefix_and_name() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let a = d
        .create(json!({"image": "busybox", "name": "alpha", "cmd": ["/bin/true"]}))
        .await;
    let b = d
        .create(json!({"image": "busybox", "name": "beta", "cmd": ["/bin/true"]}))
        .await;
    for reference in [a.clone(), a[..12].to_string(), "alpha".to_string()] {
        let c = d.inspect(&reference).await;
        assert_eq!(c["id"], a.as_str(), "GET {reference}");
        assert_eq!(c["name"], "alpha");
        assert_eq!(c["state"], "created");
    }
    d.start_container(&a[..12]).await;
    assert_eq!(d.wait("alpha").await["exit_code"], 0);
    // The shortest prefix both ids share is ambiguous (when they share one).
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    if common > 0 {
        let (status, body) = d
            .api("GET", &format!("/v1/containers/{}", &a[..common]), None)
            .await;
        assert_eq!(status.as_u16(), 400, "{body}");
        assert_eq!(body["code"], "ambiguous_reference");
    }
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alpha") && names.contains(&"beta"),
        "{names:?}"
    );
    let running = d.api_ok("GET", "/v1/containers", None, 200).await;
    assert_eq!(
        running,
        json!([]),
        "nothing runs, so the default list is empty"
    );
}
