//! The engine against clients and shims that misbehave: a client that hangs up during a
//! start, a shim that stops answering.

use std::time::{Duration, Instant};

use boxd_tests::{assert_no_leaks, process_alive, require_root, TestDaemon};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// Sends `POST path` and hangs up `after` later, without reading the answer (a client
/// that gave up, or a boxctl interrupted with Ctrl-C).
async fn post_and_hang_up(d: &TestDaemon, path: &str, after: Duration) {
    let mut conn = UnixStream::connect(&d.socket).await.unwrap();
    let req = format!("POST {path} HTTP/1.1\r\nHost: boxd\r\nContent-Length: 0\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(after).await;
    drop(conn);
}

/// Processes in the container's cgroup.
fn procs_of(d: &TestDaemon, id: &str) -> Vec<i32> {
    d.read_cgroup("pids", id, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A start whose client hangs up at any moment ends tracked: the container runs under
/// its record (or never started), and a second start does not launch a second app into
/// the same group or lose the first.
#[tokio::test]
async fn root_a_client_that_hangs_up_during_start_leaves_a_tracked_container() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let mut ids = Vec::new();
    // Hang up 1-40 ms after sending: before, during and after the launch.
    for after in [1u64, 3, 5, 8, 12, 16, 20, 25, 30, 40] {
        let id = d
            .create(json!({"image": "busybox", "cmd": ["sleep", "1000"]}))
            .await;
        post_and_hang_up(
            &d,
            &format!("/v1/containers/{id}/start"),
            Duration::from_millis(after),
        )
        .await;
        ids.push(id);
    }
    // Each container settles as running (tracked, its app alive) or as never started
    // (created, no cgroup, no process): never a `created` row with a live app or group.
    let mut last = String::new();
    let settled = boxd_tests::wait_for_async(Duration::from_secs(20), async || {
        last.clear();
        for id in &ids {
            let c = d.inspect(id).await;
            let ok = match c["state"].as_str() {
                Some("running") => process_alive(c["pid"].as_i64().unwrap_or(0) as i32),
                Some("created") => d.cgroup_dirs_of(id).is_empty(),
                _ => false,
            };
            if !ok {
                last = format!(
                    "{id}: {} with groups {:?}",
                    c["state"],
                    d.cgroup_dirs_of(id)
                );
                return false;
            }
        }
        true
    })
    .await;
    assert!(settled, "not tracked: {last}");
    for id in &ids {
        // Queued behind the first start on the container's one writer: 409 if it ran,
        // 204 if the hang-up came before the request was read. Either way one app runs.
        let (status, body) = d
            .api("POST", &format!("/v1/containers/{id}/start"), None)
            .await;
        assert!(
            status.as_u16() == 204 || (status.as_u16() == 409 && body["code"] == "already_running"),
            "{status}: {body}"
        );
        let c = d.inspect(id).await;
        assert_eq!(c["state"], "running", "{c}");
        let pid = c["pid"].as_i64().unwrap() as i32;
        assert!(process_alive(pid), "{c}");
        assert_eq!(procs_of(&d, id).len(), 1, "one app in {id}'s group");
    }
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "{check}");
    for id in &ids {
        d.remove_container(id).await;
        d.assert_container_gone(id);
    }
    assert_no_leaks(&d);
}

/// A shim that stops answering (SIGSTOPped): a stop fails within its timeout plus the
/// signal deadline with a clear error instead of hanging, and a forced delete still
/// removes everything: the app dies with its cgroup and the shim is killed.
#[tokio::test]
async fn root_a_stopped_shim_fails_stop_quickly_and_force_delete_removes_it() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "1000"]}))
        .await;
    let app = d.pid_of(&id).await;
    let shim_pid: i32 = std::fs::read_to_string(d.state_dir_of(&id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let shim = nix::unistd::Pid::from_raw(shim_pid);
    nix::sys::signal::kill(shim, nix::sys::signal::Signal::SIGSTOP).unwrap();

    let started = Instant::now();
    let (status, body) = d
        .api("POST", &format!("/v1/containers/{id}/stop?timeout=2"), None)
        .await;
    let took = started.elapsed();
    assert!(status.is_server_error(), "{status}: {body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("force"),
        "the error says what to do: {body}"
    );
    assert!(took < Duration::from_secs(20), "stop took {took:?}");

    let started = Instant::now();
    d.api_ok(
        "DELETE",
        &format!("/v1/containers/{id}?force=true"),
        None,
        204,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "forced delete took {:?}",
        started.elapsed()
    );
    assert!(!process_alive(app), "the app is gone");
    assert!(!process_alive(shim_pid), "the stopped shim is gone");
    d.assert_container_gone(&id);
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_no_leaks(&d);
}

/// Deleting containers with large writable layers (slow to remove) does not stall the
/// API: teardown runs off the async workers, so `GET /v1/version` keeps answering while
/// two such deletes run (measured against the deletes' own duration, not a fixed time).
#[tokio::test]
async fn root_slow_deletes_do_not_stall_the_api() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    for _ in 0..2 {
        let (code, out) = d
            .run_to_end(
                json!({"image": "busybox"}),
                &[
                    "sh",
                    "-c",
                    "mkdir /many && cd /many && seq 1 40000 | xargs touch && echo made",
                ],
            )
            .await;
        assert_eq!((code, out.trim()), (0, "made"));
    }
    let ids: Vec<String> = d
        .api_ok("GET", "/v1/containers?all=true", None, 200)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let started = Instant::now();
    let deletes: Vec<_> = ids
        .iter()
        .map(|id| {
            let path = format!("/v1/containers/{id}");
            let d = &d;
            async move { d.api_ok("DELETE", &path, None, 204).await }
        })
        .collect();
    let probe = async {
        let mut worst = Duration::ZERO;
        let mut answers = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let t = Instant::now();
            d.api_ok("GET", "/v1/version", None, 200).await;
            worst = worst.max(t.elapsed());
            answers += 1;
            if d.api_ok("GET", "/v1/containers?all=true", None, 200)
                .await
                .as_array()
                .unwrap()
                .is_empty()
            {
                break;
            }
        }
        (worst, answers)
    };
    let (_, (worst, answers)) = tokio::join!(futures_util::future::join_all(deletes), probe);
    let took = started.elapsed();
    eprintln!("deletes took {took:?}; the slowest version answer {worst:?} of {answers}");
    assert!(answers >= 2, "the API answered {answers} times in {took:?}");
    assert!(
        worst * 4 < took,
        "a version request took {worst:?} while the deletes took {took:?}"
    );
    for id in &ids {
        d.assert_container_gone(id);
    }
    assert_no_leaks(&d);
}
