//! The daemon's side of the shim protocol under stress: a shim that does not answer
//! (SIGSTOPped) fails requests within their deadline, and a daemon upgraded onto a
//! newer protocol keeps running containers whose shims speak the previous one.

use std::path::Path;
use std::time::{Duration, Instant};

use boxd_tests::{require_root, StopHow, TestDaemon};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// Debug builds of the shim speak at most this protocol version (see `boxd_shim`'s
/// `launch::PROTOCOL_OVERRIDE_ENV`).
const SHIM_PROTOCOL_ENV: &str = "BOXD_TEST_SHIM_PROTOCOL";

fn shim_pid(state_dir: &Path) -> i32 {
    let text = std::fs::read_to_string(state_dir.join("shim.pid")).expect("shim.pid");
    text.trim().parse().expect("a pid in shim.pid")
}

/// The state letter of `/proc/PID/stat` (`T`: stopped).
fn proc_state(pid: i32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("")
        .to_owned()
}

/// Waits until `pid`'s state is `want` (at most 5 s).
fn wait_proc_state(pid: i32, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_state(pid) != want {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached state {want}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Resumes a stopped process when dropped, so a failing test leaves no stopped shim.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

#[tokio::test]
async fn root_stop_with_a_stopped_shim_fails_within_its_timeout() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "frozen", "cmd": ["sleep", "1000"]}))
        .await;
    let shim = shim_pid(&d.state_dir_of(&id));
    let resume = Resume(shim);
    kill(Pid::from_raw(shim), Signal::SIGSTOP).unwrap();
    wait_proc_state(shim, "T");

    let began = Instant::now();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(30),
        d.api("POST", "/v1/containers/frozen/stop?timeout=2", None),
    )
    .await
    .expect("stop with a stopped shim did not answer within 30 s");
    let took = began.elapsed();
    // Its own timeout (2 s) plus at most the deadline of one signal request (5 s).
    assert!(took < Duration::from_secs(2 + 5 + 1), "stop took {took:?}");
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "shim_unresponsive", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("frozen") && message.contains("force=true"),
        "{message}"
    );
    // A kill is bounded the same way.
    let began = Instant::now();
    let (status, body) = d
        .api("POST", "/v1/containers/frozen/kill?signal=KILL", None)
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (504, Some("shim_unresponsive")),
        "{body}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(5 + 1),
        "{:?}",
        began.elapsed()
    );

    // Resumed, the shim serves again: the container is stopped and removed normally.
    drop(resume);
    d.stop_container(&id, 2).await;
    d.wait_state(&id, "exited", Duration::from_secs(10)).await;
    d.remove_container(&id).await;
    d.assert_container_gone(&id);
}

/// Polls the container's stdout until it contains `needle` (at most 10 s).
async fn wait_for_output(d: &TestDaemon, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = d.stdout_of(id).await;
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never showed in the log of {id}: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn root_a_daemon_upgrade_keeps_containers_of_the_previous_shim_protocol() {
    require_root!();
    let mut d = TestDaemon::prepare();
    // The release before: its shims speak protocol 1 (the daemon follows their record).
    d.spawn_with(&[], &[(SHIM_PROTOCOL_ENV, std::ffi::OsStr::new("1"))])
        .await;
    d.import_busybox().await;
    let trigger = d.dir.join("trigger");
    std::fs::create_dir(&trigger).unwrap();
    let waited = d
        .run(json!({
            "image": "busybox",
            "name": "waited",
            "mounts": [{"source": trigger, "target": "/trigger"}],
            "cmd": ["/bin/sh", "-c",
                "trap 'echo got-hup' HUP; echo hello; \
                 while [ ! -e /trigger/go ]; do sleep 0.05; done; exit 42"],
        }))
        .await;
    let stopped = d
        .run(json!({
            "image": "busybox",
            "name": "stopped",
            "cmd": ["/bin/sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.05; done"],
        }))
        .await;
    for id in [&waited, &stopped] {
        let recorded = std::fs::read_to_string(d.state_dir_of(id).join("protocol")).unwrap();
        assert_eq!(recorded.trim(), "1", "the old shim records its version");
    }
    wait_for_output(&d, &waited, "hello").await;
    let pid = d.pid_of(&waited).await;

    // The upgrade: the daemon dies and the new one (protocol 2) starts on the same dirs.
    d.stop_daemon(StopHow::Kill);
    d.spawn().await;
    let c = d.inspect("waited").await;
    assert_eq!(
        (c["state"].as_str(), c["pid"].as_i64()),
        (Some("running"), Some(pid as i64)),
        "{c}"
    );

    // kill: a shim of protocol 1 refuses a request of protocol 2, so this answers 204
    // only if the daemon spoke 1.
    d.api_ok("POST", "/v1/containers/waited/kill?signal=HUP", None, 204)
        .await;
    let out = wait_for_output(&d, &waited, "got-hup").await;
    assert!(out.starts_with("hello\n"), "logs: {out:?}");

    // stop: SIGTERM through the old shim; its exit is recorded.
    d.stop_container(&stopped, 10).await;
    let c = d
        .wait_state(&stopped, "exited", Duration::from_secs(10))
        .await;
    assert_eq!(c["exit_code"], 7, "{c}");

    // wait: the exit comes through the old shim's one-answer wait.
    std::fs::write(trigger.join("go"), "").unwrap();
    let w = d.wait(&waited).await;
    assert_eq!(w["exit_code"], 42, "{w}");
    let c = d.inspect(&waited).await;
    assert_eq!(
        (c["state"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(42)),
        "{c}"
    );

    // What the new daemon starts speaks the new version.
    let fresh = d
        .run(json!({"image": "busybox", "name": "fresh", "cmd": ["sleep", "1000"]}))
        .await;
    let recorded = std::fs::read_to_string(d.state_dir_of(&fresh).join("protocol")).unwrap();
    assert_eq!(recorded.trim(), "2");
    for id in [&waited, &stopped, &fresh] {
        d.remove_container(id).await;
        d.assert_container_gone(id);
    }
}
