//! Operations on a container's run: pause and unpause (the cgroup freezer), rename and
//! update (live limits and the restart policy), through the API and through boxctl.

use std::path::Path;
use std::time::Duration;

use boxd_tests::{
    assert_no_leaks, boxctl, cgroup_v2_unified, require_root, wait_for_async, wait_for_value_async,
    StopHow, TestDaemon,
};
use serde_json::{json, Value};

/// A busybox loop that writes a growing counter to `/data/n` every 50 ms, renamed into
/// place so a reader never sees a half-written file.
fn counter_cmd() -> Value {
    json!([
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /data/n.tmp; mv /data/n.tmp /data/n; sleep 0.05; done"
    ])
}

fn read_counter(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("n"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Waits until the counter is past `than`.
async fn counter_passes(dir: &Path, than: u64) -> u64 {
    wait_for_value_async(Duration::from_secs(20), async || {
        read_counter(dir).filter(|n| *n > than)
    })
    .await
    .unwrap_or_else(|| panic!("the counter did not pass {than}: {:?}", read_counter(dir)))
}

/// The container's freezer file and the value it holds when frozen.
fn freezer(d: &TestDaemon, id: &str) -> (String, &'static str) {
    if cgroup_v2_unified() {
        (d.read_cgroup("", id, "cgroup.freeze"), "1")
    } else {
        (d.read_cgroup("freezer", id, "freezer.state"), "FROZEN")
    }
}

async fn expect_error(
    d: &TestDaemon,
    method: &str,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) {
    let (got, v) = d.api(method, path, body).await;
    assert_eq!(
        (got.as_u16(), v["code"].as_str()),
        (status, Some(code)),
        "{method} {path}: {v}"
    );
}

/// Waits for the event `action` of container `id` on an events stream.
async fn next_event(events: &mut boxd_tests::LineStream, id: &str, action: &str) -> Value {
    loop {
        let e = events
            .next_json(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("no {action} event for {id}"));
        if e["id"] == id && e["action"] == action {
            return e;
        }
    }
}

#[tokio::test]
async fn root_ops_pause_stops_the_counter_and_unpause_resumes_it() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let data = tempfile::tempdir().unwrap();
    let mut events = d.stream_lines("/v1/events").await;
    let id = d
        .run(
            json!({"image": "busybox", "name": "counter", "cmd": counter_cmd(),
                    "mounts": [{"source": data.path(), "target": "/data"}]}),
        )
        .await;
    counter_passes(data.path(), 2).await;

    d.api_ok("POST", "/v1/containers/counter/pause", None, 204)
        .await;
    next_event(&mut events, &id, "pause").await;
    let (state, frozen) = freezer(&d, &id);
    assert_eq!(state, frozen, "the cgroup is frozen");
    let c = d.inspect("counter").await;
    assert_eq!(
        (c["state"].as_str(), c["paused"].as_bool()),
        (Some("running"), Some(true)),
        "{c}"
    );
    // Frozen: the counter does not move across a checked interval.
    let before = read_counter(data.path());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        read_counter(data.path()),
        before,
        "the counter moved while paused"
    );

    expect_error(
        &d,
        "POST",
        "/v1/containers/counter/pause",
        None,
        409,
        "already_paused",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/counter/exec",
        Some(json!({"cmd": ["true"]})),
        409,
        "container_paused",
    )
    .await;
    let listed = d.api_ok("GET", "/v1/containers", None, 200).await;
    assert_eq!(listed[0]["paused"], true, "{listed}");

    d.api_ok("POST", "/v1/containers/counter/unpause", None, 204)
        .await;
    next_event(&mut events, &id, "unpause").await;
    assert_ne!(freezer(&d, &id).0, frozen);
    counter_passes(data.path(), before.unwrap_or(0)).await;
    assert_eq!(d.inspect("counter").await["paused"], false);
    expect_error(
        &d,
        "POST",
        "/v1/containers/counter/unpause",
        None,
        409,
        "not_paused",
    )
    .await;

    d.remove_container(&id).await;
    d.assert_container_gone(&id);
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_stop_kill_and_rm_end_a_paused_container() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let looping = json!([
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done"
    ]);

    // stop: SIGTERM is queued while frozen; the thaw lets the trap run.
    let a = d
        .run(json!({"image": "busybox", "name": "a", "cmd": looping}))
        .await;
    d.api_ok("POST", "/v1/containers/a/pause", None, 204).await;
    d.stop_container("a", 30).await;
    let c = d.inspect("a").await;
    assert_eq!(
        (
            c["state"].as_str(),
            c["exit_code"].as_i64(),
            c["paused"].as_bool()
        ),
        (Some("exited"), Some(3), Some(false)),
        "{c}"
    );
    expect_error(
        &d,
        "POST",
        "/v1/containers/a/pause",
        None,
        409,
        "not_running",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/a/unpause",
        None,
        409,
        "not_paused",
    )
    .await;

    // kill: SIGKILL acts once thawed.
    let b = d
        .run(json!({"image": "busybox", "name": "b", "cmd": looping}))
        .await;
    d.api_ok("POST", "/v1/containers/b/pause", None, 204).await;
    d.api_ok("POST", "/v1/containers/b/kill?signal=KILL", None, 204)
        .await;
    let c = d.wait_state("b", "exited", Duration::from_secs(20)).await;
    assert_eq!(
        (c["exit_code"].as_i64(), c["paused"].as_bool()),
        (Some(137), Some(false)),
        "{c}"
    );

    // rm -f of a paused container.
    let e = d
        .run(json!({"image": "busybox", "name": "e", "cmd": looping}))
        .await;
    d.api_ok("POST", "/v1/containers/e/pause", None, 204).await;
    d.remove_container("e").await;
    d.assert_container_gone(&e);

    d.remove_container(&a).await;
    d.remove_container(&b).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_a_pause_survives_a_daemon_crash_and_the_freezer_wins() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "p", "cmd": ["sleep", "1000"]}))
        .await;
    d.api_ok("POST", "/v1/containers/p/pause", None, 204).await;
    d.restart(StopHow::Kill).await;
    assert_eq!(d.inspect("p").await["paused"], true);

    // Thawed behind the daemon's back while it was down: the reconcile reads the freezer.
    d.stop_daemon(StopHow::Kill);
    if cgroup_v2_unified() {
        std::fs::write(d.cgroup_file("", &id, "cgroup.freeze"), "0").unwrap();
    } else {
        std::fs::write(d.cgroup_file("freezer", &id, "freezer.state"), "THAWED").unwrap();
    }
    d.spawn().await;
    let c = d.inspect("p").await;
    assert_eq!(
        (c["state"].as_str(), c["paused"].as_bool()),
        (Some("running"), Some(false)),
        "{c}"
    );
    d.api_ok("POST", "/v1/containers/p/pause", None, 204).await;
    d.api_ok("POST", "/v1/containers/p/unpause", None, 204)
        .await;
    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

/// A crash between the freezer and the row (either way) is settled by the reconcile:
/// the freezer says whether the container is paused.
#[tokio::test]
async fn root_ops_crash_between_freezer_and_row_is_reconciled() {
    use std::os::unix::process::ExitStatusExt;
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "c", "cmd": ["sleep", "1000"]}))
        .await;
    for (point, route, paused) in [
        ("pause.after_freeze", "pause", true),
        ("unpause.after_thaw", "unpause", false),
    ] {
        d.stop_daemon(StopHow::Term);
        d.spawn_with(&[], &[("BOXD_CRASH_AT", std::ffi::OsStr::new(point))])
            .await;
        let path = format!("/v1/containers/c/{route}");
        let _ = d
            .request(hyper::Method::POST, &path, None, Default::default())
            .await;
        let status = d
            .wait_daemon_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the daemon did not die at {point}; log:\n{}", d.log_text()));
        assert_eq!(status.signal(), Some(9), "{point}: {status}");
        d.spawn().await;
        let c = d.inspect("c").await;
        assert_eq!(
            (c["state"].as_str(), c["paused"].as_bool()),
            (Some("running"), Some(paused)),
            "after a crash at {point}: {c}"
        );
        let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
        assert_eq!(check["ok"], true, "after a crash at {point}: {check}");
    }
    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_rename_running_and_stopped_containers() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let mut events = d.stream_lines("/v1/events").await;
    let id = d
        .run(json!({"image": "busybox", "name": "old", "cmd": ["sleep", "1000"]}))
        .await;
    d.create(json!({"image": "busybox", "name": "taken", "cmd": ["true"]}))
        .await;

    d.api_ok("POST", "/v1/containers/old/rename?name=new", None, 204)
        .await;
    let e = next_event(&mut events, &id, "rename").await;
    assert_eq!(
        (
            e["attributes"]["name"].as_str(),
            e["attributes"]["oldName"].as_str()
        ),
        (Some("new"), Some("old")),
        "{e}"
    );
    let c = d.inspect("new").await;
    assert_eq!(
        (c["id"].as_str(), c["state"].as_str()),
        (Some(id.as_str()), Some("running"))
    );
    expect_error(&d, "GET", "/v1/containers/old", None, 404, "not_found").await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/new/rename?name=taken",
        None,
        409,
        "name_in_use",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/new/rename?name=-bad",
        None,
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/new/rename",
        None,
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/nosuch/rename?name=x",
        None,
        404,
        "not_found",
    )
    .await;

    d.stop_container("new", 1).await;
    d.api_ok("POST", "/v1/containers/new/rename?name=newer", None, 204)
        .await;
    assert_eq!(d.inspect("newer").await["id"], id.as_str());
    d.remove_container("newer").await;
    d.remove_container("taken").await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_update_changes_the_live_cgroup_and_the_next_start() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (mem_file, mem_controller) = if cgroup_v2_unified() {
        ("memory.max", "")
    } else {
        ("memory.limit_in_bytes", "memory")
    };
    let pids_controller = if cgroup_v2_unified() { "" } else { "pids" };
    let id = d
        .run(
            json!({"image": "busybox", "name": "u", "cmd": ["sleep", "1000"],
                    "resources": {"memory_bytes": 64 << 20, "pids_max": 20}}),
        )
        .await;
    assert_eq!(
        d.read_cgroup(mem_controller, &id, mem_file),
        (64u64 << 20).to_string()
    );

    let v = d
        .api_ok(
            "POST",
            "/v1/containers/u/update",
            Some(json!({"memory_bytes": 128 << 20})),
            200,
        )
        .await;
    assert!(v["warnings"].is_array(), "{v}");
    assert_eq!(
        d.read_cgroup(mem_controller, &id, mem_file),
        (128u64 << 20).to_string()
    );
    let c = d.inspect("u").await;
    assert_eq!(
        (
            c["resources"]["memory_bytes"].as_u64(),
            c["resources"]["pids_max"].as_i64()
        ),
        (Some(128 << 20), Some(20)),
        "{c}"
    );

    d.api_ok(
        "POST",
        "/v1/containers/u/update",
        Some(json!({"pids_max": 30})),
        200,
    )
    .await;
    assert_eq!(d.read_cgroup(pids_controller, &id, "pids.max"), "30");
    d.api_ok(
        "POST",
        "/v1/containers/u/update",
        Some(json!({"pids_max": -1})),
        200,
    )
    .await;
    assert_eq!(d.read_cgroup(pids_controller, &id, "pids.max"), "max");

    // Bad values are refused before anything changes.
    expect_error(
        &d,
        "POST",
        "/v1/containers/u/update",
        Some(json!({"memory_bytes": 1024})),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/u/update",
        Some(json!({})),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &d,
        "POST",
        "/v1/containers/u/update",
        Some(json!({"disk_bytes": 1})),
        400,
        "invalid_json",
    )
    .await;
    assert_eq!(
        d.read_cgroup(mem_controller, &id, mem_file),
        (128u64 << 20).to_string()
    );

    // Stopped: stored, and the next start applies it.
    d.stop_container("u", 1).await;
    d.api_ok(
        "POST",
        "/v1/containers/u/update",
        Some(json!({"memory_bytes": 96 << 20})),
        200,
    )
    .await;
    d.start_container("u").await;
    assert_eq!(
        d.read_cgroup(mem_controller, &id, mem_file),
        (96u64 << 20).to_string()
    );
    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

/// cgroup v1 answers EBUSY when the new memory limit is under what the group uses and
/// cannot reclaim (anonymous memory without swap): a 409, and nothing changes.
#[tokio::test]
async fn root_ops_update_below_usage_is_refused_on_v1() {
    require_root!();
    if cgroup_v2_unified() {
        // v2 reclaims and then OOM-kills instead of refusing (as with Docker).
        eprintln!("skipping root_ops_update_below_usage_is_refused_on_v1: cgroup v2 host");
        return;
    }
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let data = tempfile::tempdir().unwrap();
    // 40 MB in a tmpfs: shmem, charged to the group and (without swap, as memory-swap =
    // memory) not reclaimable.
    let id = d
        .run(json!({"image": "busybox", "name": "hog", "cmd": ["sh", "-c",
                    "head -c 40000000 /dev/zero > /tmp/fill && touch /data/ready && exec sleep 1000"],
                    "tmpfs": {"/tmp": "size=64m"},
                    "mounts": [{"source": data.path(), "target": "/data"}],
                    "resources": {"memory_bytes": 128 << 20, "memory_swap_bytes": 128 << 20}}))
        .await;
    assert!(
        wait_for_async(Duration::from_secs(30), async || data
            .path()
            .join("ready")
            .exists())
        .await,
        "the container did not fill its memory"
    );
    expect_error(
        &d,
        "POST",
        "/v1/containers/hog/update",
        Some(json!({"memory_bytes": 16 << 20, "memory_swap_bytes": 16 << 20})),
        409,
        "limit_below_usage",
    )
    .await;
    assert_eq!(
        d.read_cgroup("memory", &id, "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    let c = d.inspect("hog").await;
    assert_eq!(
        (c["state"].as_str(), c["resources"]["memory_bytes"].as_u64()),
        (Some("running"), Some(128 << 20)),
        "{c}"
    );
    d.remove_container(&id).await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_update_restart_policy_applies_to_the_next_exit() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let data = tempfile::tempdir().unwrap();
    // Runs until /data/exit exists, then fails.
    d.run(json!({"image": "busybox", "name": "r", "cmd": ["sh", "-c",
                 "while [ ! -e /data/exit ]; do sleep 0.05; done; exit 1"],
                 "mounts": [{"source": data.path(), "target": "/data"}]}))
        .await;
    d.api_ok(
        "POST",
        "/v1/containers/r/update",
        Some(json!({"restart_policy": "on-failure:1"})),
        200,
    )
    .await;
    assert_eq!(d.inspect("r").await["restart_policy"], "on-failure:1");
    std::fs::write(data.path().join("exit"), "").unwrap();
    // One restart by the new policy; the restarted run fails at once and is not retried.
    let c = wait_for_value_async(Duration::from_secs(30), async || {
        let c = d.inspect("r").await;
        (c["restart_count"] == 1 && c["state"] == "exited" && c["next_restart_at"].is_null())
            .then_some(c)
    })
    .await
    .unwrap_or_else(|| panic!("no restart by the updated policy: {}", "r"));
    assert_eq!(c["exit_code"], 1);
    expect_error(
        &d,
        "POST",
        "/v1/containers/r/update",
        Some(json!({"restart_policy": "sometimes"})),
        400,
        "bad_request",
    )
    .await;
    d.remove_container("r").await;
    assert_no_leaks(&d);
}

#[tokio::test]
async fn root_ops_boxctl_pause_unpause_rename_update() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "web", "cmd": ["sleep", "1000"]}))
        .await;

    let (code, out, err) = boxctl(&d, &["pause", "web"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "web");
    let (_, out, _) = boxctl(&d, &["ps"]).await;
    assert!(out.contains("(Paused)"), "{out}");
    let (code, _, err) = boxctl(&d, &["pause", "web"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("already paused"), "{err}");
    let (code, out, err) = boxctl(&d, &["unpause", "web"]).await;
    assert_eq!((code, out.trim()), (Some(0), "web"), "{err}");
    let (_, out, _) = boxctl(&d, &["ps"]).await;
    assert!(out.contains("Up ") && !out.contains("(Paused)"), "{out}");

    let (code, out, err) = boxctl(&d, &["rename", "web", "front"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let (_, out, _) = boxctl(&d, &["ps"]).await;
    assert!(out.contains("front") && !out.contains("web"), "{out}");

    let (code, out, err) = boxctl(
        &d,
        &[
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "40",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--restart",
            "always",
            "front",
        ],
    )
    .await;
    assert_eq!((code, out.trim()), (Some(0), "front"), "{err}");
    let c = d.inspect(&id).await;
    let r = &c["resources"];
    assert_eq!(
        (
            r["memory_bytes"].as_u64(),
            r["pids_max"].as_i64(),
            r["cpu_quota_us"].as_i64(),
            r["cpu_period_us"].as_u64(),
            r["cpu_shares"].as_u64()
        ),
        (
            Some(64 << 20),
            Some(40),
            Some(150_000),
            Some(100_000),
            Some(512)
        ),
        "{c}"
    );
    assert_eq!(c["restart_policy"], "always");
    if !cgroup_v2_unified() {
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.cfs_quota_us"), "150000");
    }
    let (code, _, err) = boxctl(&d, &["update", "front"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("nothing to update"), "{err}");

    d.remove_container(&id).await;
    assert_no_leaks(&d);
}
