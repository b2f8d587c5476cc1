//! Restart policies: on-failure with a retry limit, always, unless-stopped (which differs
//! from always after the user's stop), back-off growth, and what a host reboot brings back.

use std::time::Duration;

use boxd_tests::{assert_no_leaks, require_root, StopHow, TestDaemon};
use serde_json::{json, Value};

async fn wait_for(
    d: &TestDaemon,
    name: &str,
    timeout: Duration,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let seen = boxd_tests::wait_for_value_async(timeout, async || {
        last = d.inspect(name).await;
        f(&last).then(|| last.clone())
    })
    .await;
    seen.unwrap_or_else(|| panic!("{name}: no {what} within {timeout:?}: {last}"))
}

#[tokio::test]
async fn root_on_failure_restarts_up_to_its_limit_with_growing_backoff() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let events = d.stream_lines("/v1/events").await;
    d.run(
        json!({"image": "busybox", "name": "flaky", "restart_policy": "on-failure:5",
                 "cmd": ["sh", "-c", "exit 1"]}),
    )
    .await;
    let c = wait_for(&d, "flaky", Duration::from_secs(60), "5 restarts", |c| {
        c["restart_count"] == 5 && c["state"] == "exited" && c["next_restart_at"].is_null()
    })
    .await;
    assert_eq!(c["exit_code"], 1);
    assert_eq!(c["restart_policy"], "on-failure:5");
    // Each restart waits 100 ms, 200, 400, 800, 1600 ms after the exit. The gap from a
    // `die` to the next `start` also holds the start-up time, which varies (seconds under
    // emulation, and not the same for each start), so each gap is checked against its
    // own back-off as a lower bound: a back-off that did not grow shows as a gap shorter
    // than its step whenever starts are quick. (The schedule itself is checked by
    // `backoff_doubles_and_caps` in daemon/src/runtime/restart.rs.)
    let mut events = events;
    let (mut dies, mut starts) = (Vec::new(), Vec::new());
    while let Some(e) = events.next_json(Duration::from_secs(5)).await {
        let t = chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap()).unwrap();
        match e["action"].as_str() {
            Some("start") => starts.push(t),
            Some("die") => dies.push(t),
            _ => {}
        }
        if dies.len() == 6 {
            break;
        }
    }
    assert_eq!(starts.len(), 6, "one start by the user, five by the policy");
    let gaps: Vec<i64> = dies
        .iter()
        .zip(starts.iter().skip(1))
        .map(|(die, next)| (*next - *die).num_milliseconds())
        .collect();
    for (i, gap) in gaps.iter().enumerate() {
        let backoff = 100i64 << i;
        assert!(
            *gap >= backoff - 10,
            "restart {} came {gap} ms after the exit, before its {backoff} ms back-off: {gaps:?}",
            i + 1
        );
    }
    // It stays down now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(d.inspect("flaky").await["restart_count"], 5);

    // A clean exit is not restarted by on-failure.
    let id = d.run(json!({"image": "busybox", "name": "fine", "restart_policy": "on-failure", "cmd": ["true"]})).await;
    d.wait(&id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = d.inspect("fine").await;
    assert_eq!(
        (c["state"].as_str(), c["restart_count"].as_u64()),
        (Some("exited"), Some(0)),
        "{c}"
    );
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_always_restarts_until_the_user_stops_it() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    d.run(json!({"image": "busybox", "name": "loop", "restart_policy": "always", "cmd": ["sh", "-c", "sleep 0.2"]})).await;
    wait_for(&d, "loop", Duration::from_secs(20), "2 restarts", |c| {
        c["restart_count"].as_u64() >= Some(2)
    })
    .await;
    d.api_ok("POST", "/v1/containers/loop/stop?timeout=1", None, 204)
        .await;
    let c = wait_for(&d, "loop", Duration::from_secs(10), "a stop", |c| {
        c["state"] == "exited"
    })
    .await;
    let count = c["restart_count"].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = d.inspect("loop").await;
    assert_eq!(
        c["state"], "exited",
        "always restarted after the user's stop: {c}"
    );
    assert_eq!(c["restart_count"], count);
    assert!(c["next_restart_at"].is_null(), "{c}");
    // The user's start resets the count.
    d.api_ok("POST", "/v1/containers/loop/start", None, 204)
        .await;
    assert_eq!(d.inspect("loop").await["restart_count"], 0);
    d.api_ok("DELETE", "/v1/containers/loop?force=true", None, 204)
        .await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_daemon_restart_brings_back_always_but_not_a_stopped_unless_stopped() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    for (name, policy) in [
        ("a", "always"),
        ("u", "unless-stopped"),
        ("u2", "unless-stopped"),
        ("n", "no"),
    ] {
        d.run(json!({"image": "busybox", "name": name, "restart_policy": policy, "cmd": ["sleep", "1000"]})).await;
    }
    for name in ["a", "u", "n"] {
        d.stop_container(name, 1).await;
    }
    d.restart(StopHow::Term).await;
    wait_for(
        &d,
        "a",
        Duration::from_secs(10),
        "always to come back",
        |c| c["state"] == "running",
    )
    .await;
    let u2 = d.inspect("u2").await;
    assert_eq!(
        u2["state"], "running",
        "unless-stopped that was running must stay up: {u2}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["u", "n"] {
        let c = d.inspect(name).await;
        assert_eq!(
            c["state"], "exited",
            "{name} came back after the user's stop: {c}"
        );
    }
    for name in ["a", "u", "u2", "n"] {
        d.remove_container(name).await;
    }
    assert_no_leaks(&d);
}

/// A simulated reboot: every shim dies and the state dir (tmpfs) is wiped. `always` and
/// `unless-stopped` containers come back; the others are marked exited.
#[tokio::test]
async fn root_after_a_reboot_only_policy_containers_come_back() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    for (name, policy) in [
        ("keep", "always"),
        ("keep2", "unless-stopped"),
        ("gone", "no"),
    ] {
        d.run(json!({"image": "busybox", "name": name, "restart_policy": policy, "cmd": ["sleep", "1000"]})).await;
    }
    let old_pid = d.pid_of("keep").await;
    d.stop_daemon(StopHow::Kill);
    // Kill every shim (their containers die with them: parent-death signal), then wipe
    // the state dir as a reboot would.
    for entry in std::fs::read_dir(d.state.join("containers")).unwrap() {
        let shim = std::fs::read_to_string(entry.unwrap().path().join("shim.pid")).unwrap();
        let pid = nix::unistd::Pid::from_raw(shim.trim().parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    assert!(
        boxd_tests::wait_gone(&[old_pid], Duration::from_secs(5)).is_empty(),
        "container outlived its shim"
    );
    std::fs::remove_dir_all(&d.state).unwrap();
    d.spawn().await;

    for name in ["keep", "keep2"] {
        let c = wait_for(
            &d,
            name,
            Duration::from_secs(10),
            "a restart after the reboot",
            |c| c["state"] == "running",
        )
        .await;
        assert_ne!(c["pid"], old_pid);
    }
    let gone = d.inspect("gone").await;
    assert_eq!(gone["state"], "exited", "{gone}");
    assert_eq!(gone["exit_code"], 255, "{gone}");
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["reconciled"].to_string().contains("host went down"),
        "{check}"
    );
    for name in ["keep", "keep2", "gone"] {
        d.remove_container(name).await;
    }
    assert_no_leaks(&d);
}
