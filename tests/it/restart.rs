//! Containers outlive the daemon: a crashed or stopped daemon leaves them running, and
//! the next one re-attaches and records how they ended.

use std::time::Duration;

use boxd_tests::{process_alive, require_root, wait_gone, StopHow, TestDaemon};
use serde_json::json;

/// A container that exits with 42 once the test creates `<dir>/trigger/go` on the host.
async fn run_triggered(d: &TestDaemon, name: &str) -> (String, std::path::PathBuf) {
    let trigger = d.dir.join(format!("trigger-{name}"));
    std::fs::create_dir(&trigger).unwrap();
    let id = d
        .run(json!({
            "image": "busybox",
            "name": name,
            "mounts": [{"source": trigger, "target": "/trigger"}],
            "cmd": ["/bin/sh", "-c", "while [ ! -e /trigger/go ]; do sleep 0.05; done; exit 42"],
        }))
        .await;
    (id, trigger.join("go"))
}

#[tokio::test]
async fn root_kill_9_of_the_daemon_keeps_the_container_and_its_exit_code() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let (id, go) = run_triggered(&d, "survivor").await;
    let pid = d.pid_of(&id).await;

    d.stop_daemon(StopHow::Kill);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(process_alive(pid), "the container died with the daemon");

    d.spawn().await;
    let c = d.inspect("survivor").await;
    assert_eq!(c["state"], "running", "after restart: {c}");
    assert_eq!(c["pid"], pid, "after restart: {c}");

    // The re-attached daemon sees the real end of the run.
    std::fs::write(&go, "").unwrap();
    let w = d.wait(&id).await;
    assert_eq!(w["exit_code"], 42, "{w}");
    assert_eq!(w["oom_killed"], false, "{w}");
    let c = d.inspect(&id).await;
    assert_eq!(
        (c["state"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(42)),
        "{c}"
    );
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn root_exit_while_the_daemon_is_down_is_recorded() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let (id, go) = run_triggered(&d, "gone-while-down").await;
    let (other, _) = run_triggered(&d, "still-up").await;
    let pid = d.pid_of(&id).await;

    // A clean stop (SIGTERM) leaves containers running too.
    d.stop_daemon(StopHow::Term);
    assert!(
        process_alive(pid),
        "SIGTERM of the daemon took the container down"
    );
    std::fs::write(&go, "").unwrap();
    assert!(
        wait_gone(&[pid], Duration::from_secs(5)).is_empty(),
        "container did not exit while the daemon was down"
    );

    d.spawn().await;
    let c = d.inspect("gone-while-down").await;
    assert_eq!(c["state"], "exited", "{c}");
    assert_eq!(c["exit_code"], 42, "{c}");
    assert!(c["finished_at"].is_string(), "{c}");
    assert_eq!(d.wait(&id).await["exit_code"], 42);
    assert_eq!(d.inspect(&other).await["state"], "running");
    // The restarted daemon still drives the one that kept running.
    d.api_ok("POST", &format!("/v1/containers/{other}/kill"), None, 204)
        .await;
    assert_eq!(d.wait(&other).await["exit_code"], 137);
}
