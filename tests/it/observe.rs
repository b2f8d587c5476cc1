//! No container dies silently: OOM kills (of the first process or any other) and memory
//! pressure become events, exits leave records, events replay across restarts, stats
//! match the cgroup files, and `boxctl why` explains the end of a run.

use std::collections::BTreeSet;
use std::time::Duration;

use boxd_tests::{boxctl_bin, cgroup_v2_unified, require_root, StopHow, TestDaemon};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// A shell that keeps 200 MB in a variable: far over any limit used here.
const HOG: &str = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}";

/// Reads a bounded stream to its end.
trait CollectJson {
    async fn collect_json(self, timeout: Duration) -> Vec<Value>;
}

impl CollectJson for boxd_tests::LineStream {
    async fn collect_json(mut self, timeout: Duration) -> Vec<Value> {
        let mut all = Vec::new();
        while let Some(v) = self.next_json(timeout).await {
            all.push(v);
        }
        all
    }
}

/// The next event of `stream` with this action, within `timeout`.
async fn next_action(
    stream: &mut boxd_tests::LineStream,
    action: &str,
    timeout: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let e = stream.next_json(left).await?;
        if e["action"] == action {
            return Some(e);
        }
    }
}

fn time_of(e: &Value) -> DateTime<Utc> {
    e["time"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn root_oom_of_pid_1_is_an_event_and_an_exit_record() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .create(json!({
            "image": "busybox",
            "name": "hog",
            "cmd": ["/bin/sh", "-c", format!("echo starting; {HOG}")],
            "resources": {"memory_bytes": 32 * MIB},
        }))
        .await;
    let mut events = d
        .stream_lines(&format!("/v1/events?since=0&container={id}"))
        .await;
    d.start_container(&id).await;
    let oom = next_action(&mut events, "oom", Duration::from_secs(30))
        .await
        .expect("no oom event");
    let die = next_action(&mut events, "die", Duration::from_secs(30))
        .await
        .expect("no die event");
    assert_eq!(oom["attributes"]["oom_kill_count"], "1", "{oom}");
    assert_eq!(die["attributes"]["oom_killed"], "true", "{die}");
    assert!(oom["seq"].as_i64() < die["seq"].as_i64());
    // Within 1 s of the run's end (the kill ends it).
    let c = d.inspect(&id).await;
    let finished: DateTime<Utc> = c["finished_at"].as_str().unwrap().parse().unwrap();
    let lag = time_of(&oom) - finished;
    assert!(
        lag < chrono::TimeDelta::seconds(1),
        "oom event {lag:?} after the exit"
    );
    // One oom event per kill. Usually the kernel kills once; on a loaded host it may
    // pick a second victim (tr, head) before the first one's memory is freed, and that
    // kill is counted and reported too.
    let all = d
        .api_ok("GET", &format!("/v1/containers/{id}/exits"), None, 200)
        .await;
    let exits = all.as_array().unwrap();
    assert_eq!(exits.len(), 1, "{all}");
    let e = &exits[0];
    assert_eq!(e["exit_code"], 137, "{e}");
    assert_eq!(e["signal"], 9, "{e}");
    assert_eq!(e["oom_killed"], true, "{e}");
    let kills = e["oom_kill_count"].as_u64().unwrap_or(0);
    assert!((1..=3).contains(&kills), "{e}");
    assert_eq!(e["memory_limit"], 32 * MIB, "{e}");
    let peak = e["memory_peak"].as_u64().expect("peak recorded");
    assert!(
        (30 * MIB..=32 * MIB).contains(&peak),
        "peak {peak} is not about the 32 MiB limit"
    );
    assert!(e["cpu_user_usec"].as_u64().is_some(), "{e}");
    assert_eq!(e["last_log"][0], "starting", "{e}");
    // inspect carries the last record and the counters.
    assert_eq!(c["last_exit"]["seq"], e["seq"], "{c}");
    assert_eq!(c["oom_kill_count"], kills, "{c}");
    assert_eq!(c["oom_killed"], true, "{c}");
    // The list says what inspect says (one schema: the list must not show defaults).
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    for field in [
        "oom_kill_count",
        "oom_killed",
        "memory_events",
        "memory_warning_percent",
        "memory_pressure_count",
        "last_exit",
    ] {
        assert_eq!(
            listed[field], c[field],
            "{field}: list {listed} inspect {c}"
        );
    }
    assert_ne!(listed["memory_warning_percent"], 0, "{listed}");
    let replay = d
        .stream_lines(&format!(
            "/v1/events?since=0&until={}&container={id}&action=oom",
            die["seq"]
        ))
        .await
        .collect_json(Duration::from_secs(5))
        .await;
    assert_eq!(replay.len() as u64, kills, "oom events: {replay:?}");
}

#[tokio::test]
async fn root_oom_of_a_child_is_an_event_while_the_container_runs_on() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .create(json!({
            "image": "busybox",
            // The hog raises its own oom_score_adj (allowed without privilege), so that
            // whatever the kernel kills, it is the hog's processes, never pid 1.
            "cmd": ["/bin/sh", "-c", format!("(echo 1000 > /proc/self/oom_score_adj; {HOG}); echo survived; exec sleep 1000")],
            "resources": {"memory_bytes": 32 * MIB},
        }))
        .await;
    let mut events = d
        .stream_lines(&format!("/v1/events?since=0&container={id}"))
        .await;
    d.start_container(&id).await;
    let oom = next_action(&mut events, "oom", Duration::from_secs(30))
        .await
        .expect("no oom event for the child");
    assert_eq!(oom["attributes"]["oom_kill_count"], "1", "{oom}");
    // The first process survives; inspect shows the kill while it runs.
    let mut c = Value::Null;
    boxd_tests::wait_for_async(Duration::from_secs(5), async || {
        c = d.inspect(&id).await;
        d.stdout_of(&id).await.contains("survived")
    })
    .await;
    assert_eq!(c["state"], "running", "{c}");
    assert!(c["oom_kill_count"].as_u64() >= Some(1), "{c}");
    assert!(c["memory_events"]["oom_kill"].as_u64() >= Some(1), "{c}");
    assert!(d.stdout_of(&id).await.contains("survived"));
    // No die event, and each kill was reported once.
    d.api_ok("POST", &format!("/v1/containers/{id}/kill"), None, 204)
        .await;
    d.wait(&id).await;
    let all = d
        .stream_lines(&format!("/v1/events?since=0&until={}", last_seq(&d).await))
        .await
        .collect_json(Duration::from_secs(5))
        .await;
    let ooms = all.iter().filter(|e| e["action"] == "oom").count();
    let dies: Vec<&Value> = all.iter().filter(|e| e["action"] == "die").collect();
    assert_eq!(dies.len(), 1, "{all:?}");
    let exits = d
        .api_ok("GET", &format!("/v1/containers/{id}/exits"), None, 200)
        .await;
    let kills = exits[0]["oom_kill_count"].as_u64().unwrap_or(0);
    assert!(kills >= 1, "{exits}");
    assert_eq!(ooms as u64, kills, "{all:?}");
    assert_eq!(exits[0]["signal"], 9, "{exits}");
}

/// The newest event's seq, read by a bounded replay.
async fn last_seq(d: &TestDaemon) -> i64 {
    // A marker event: create and remove a container nobody uses is heavy, so read the
    // replay of everything instead.
    let all = d
        .stream_lines("/v1/events?since=0&until=9223372036854775807")
        .await
        .collect_json(Duration::from_secs(2))
        .await;
    all.last().and_then(|e| e["seq"].as_i64()).unwrap_or(0)
}

#[tokio::test]
async fn root_crossing_the_warning_threshold_is_a_memory_pressure_event() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // 50 MB of page cache against a 64 MiB limit with the warning at 50 %: the use
    // crosses 32 MiB, and reclaim (not the OOM killer) holds it under the limit.
    let id = d
        .create(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", "head -c 50000000 /dev/zero > /big; echo written; exec sleep 1000"],
            "resources": {"memory_bytes": 64 * MIB},
            "memory_warning_percent": 50,
        }))
        .await;
    let mut events = d
        .stream_lines(&format!("/v1/events?since=0&container={id}"))
        .await;
    d.start_container(&id).await;
    let e = next_action(&mut events, "memory_pressure", Duration::from_secs(30))
        .await
        .expect("no memory_pressure event");
    assert_eq!(e["attributes"]["threshold"], (32 * MIB).to_string(), "{e}");
    let c = d.inspect(&id).await;
    assert_eq!(c["memory_warning_percent"], 50, "{c}");
    assert!(c["memory_pressure_count"].as_u64() >= Some(1), "{c}");
    if cgroup_v2_unified() {
        // The warning must not throttle the container (see cgroups::watch).
        assert_eq!(d.read_cgroup("memory", &id, "memory.high"), "max");
    }
    assert_eq!(c["state"], "running", "{c}");
    d.remove_container(&id).await;
}

#[tokio::test]
async fn root_going_over_memory_high_is_a_memory_pressure_event() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // 50 MB of page cache against a 16 MiB memory.high (the hard limit far above, the
    // percentage warning off): the kernel reclaims down to memory.high each time use
    // goes over it, and counts it in memory.events `high`.
    let body = json!({
        "image": "busybox",
        "cmd": ["/bin/sh", "-c", "head -c 50000000 /dev/zero > /big; echo written; exec sleep 1000"],
        "resources": {"memory_bytes": 256 * MIB, "memory_high_bytes": 16 * MIB},
        "memory_warning_percent": 0,
    });
    let created = d.api_ok("POST", "/v1/containers", Some(body), 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let warnings = created["warnings"].to_string();
    if !cgroup_v2_unified() {
        // cgroup v1 has no memory.high: said, not silently dropped.
        assert!(warnings.contains("memory_high_bytes"), "{created}");
        return;
    }
    assert_eq!(created["warnings"], json!([]), "{created}");
    let mut events = d
        .stream_lines(&format!("/v1/events?since=0&container={id}"))
        .await;
    d.start_container(&id).await;
    assert_eq!(
        d.read_cgroup("memory", &id, "memory.high").trim(),
        (16 * MIB).to_string()
    );
    let e = next_action(&mut events, "memory_pressure", Duration::from_secs(60))
        .await
        .expect("no memory_pressure event");
    assert_eq!(e["attributes"]["threshold"], (16 * MIB).to_string(), "{e}");
    let c = d.inspect(&id).await;
    assert_eq!(c["resources"]["memory_high_bytes"], 16 * MIB, "{c}");
    assert!(c["memory_pressure_count"].as_u64() >= Some(1), "{c}");
    d.remove_container(&id).await;
}

#[tokio::test]
async fn root_events_resume_after_a_restart_without_gap_or_duplicate() {
    require_root!();
    let mut d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "steady", "cmd": ["sleep", "1000"]}))
        .await;
    let seen = d
        .stream_lines("/v1/events?since=0&until=9223372036854775807")
        .await
        .collect_json(Duration::from_secs(2))
        .await;
    let last_seen = seen.last().unwrap()["seq"].as_i64().unwrap();

    d.restart(StopHow::Kill).await;
    // Events the client misses while it is away.
    d.api_ok("POST", "/v1/containers/steady/kill", None, 204)
        .await;
    d.wait(&id).await;
    d.start_container(&id).await;
    let everything = d
        .stream_lines("/v1/events?since=0&until=9223372036854775807")
        .await
        .collect_json(Duration::from_secs(2))
        .await;
    let newest = everything.last().unwrap()["seq"].as_i64().unwrap();
    let missed_expected: Vec<i64> = everything
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .filter(|s| *s > last_seen)
        .collect();
    assert!(
        missed_expected.len() >= 3,
        "kill, die, start: {everything:?}"
    );

    // Resume from the last seen seq: replay, then live, ending at `newest`.
    let mut resumed = d
        .stream_lines(&format!("/v1/events?since={last_seen}"))
        .await;
    let mut got = Vec::new();
    while got.last() != Some(&newest) {
        let e = resumed
            .next_json(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("stream ended early: got {got:?}, want {missed_expected:?}"));
        got.push(e["seq"].as_i64().unwrap());
    }
    assert_eq!(got, missed_expected, "exactly the missed events");
    // Then live, with nothing repeated at the seam.
    d.api_ok("POST", "/v1/containers/steady/kill", None, 204)
        .await;
    let live = resumed.next_json(Duration::from_secs(10)).await.unwrap();
    assert_eq!(live["seq"].as_i64(), Some(newest + 1), "{live}");
    let unique: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len());
}

#[tokio::test]
async fn root_stats_match_the_cgroup_files_and_list_every_running_container() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let a = d
        .run(json!({
            "image": "busybox",
            "name": "a",
            "cmd": ["/bin/sh", "-c", "sleep 1000 & exec sleep 1000"],
            "resources": {"memory_bytes": 48 * MIB, "pids_max": 20},
        }))
        .await;
    let b = d
        .run(json!({"image": "busybox", "name": "b", "cmd": ["sleep", "1000"]}))
        .await;
    // `a` is up once its shell has forked the background sleep and exec'd the other.
    let forked = boxd_tests::wait_for_async(Duration::from_secs(10), async || {
        d.read_cgroup("pids", &a, "pids.current") == "2"
    })
    .await;
    assert!(forked, "a never ran its two sleeps");
    let s = d.api_ok("GET", "/v1/containers/a/stats", None, 200).await;
    assert_eq!(s["id"], a.as_str());
    assert_eq!(s["memory"]["limit"], 48 * MIB, "{s}");
    assert_eq!(s["pids"]["max"], 20, "{s}");
    assert_eq!(
        s["pids"]["current"].as_u64().unwrap().to_string(),
        d.read_cgroup("pids", &a, "pids.current"),
        "{s}"
    );
    let usage_file = if cgroup_v2_unified() {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let after: u64 = d.read_cgroup("memory", &a, usage_file).parse().unwrap();
    let usage = s["memory"]["usage"].as_u64().unwrap();
    assert!(
        usage > 0 && usage.abs_diff(after) < 4 * MIB,
        "usage {usage} vs {usage_file} {after}"
    );
    if !cgroup_v2_unified() {
        let acct: u64 = d
            .read_cgroup("cpuacct", &a, "cpuacct.usage")
            .parse()
            .unwrap();
        assert!(
            s["cpu"]["usage_usec"].as_u64().unwrap() <= acct / 1000 + 1,
            "{s}"
        );
    }
    let all = d.api_ok("GET", "/v1/stats", None, 200).await;
    let ids: BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([a.as_str(), b.as_str()]));
    // A streamed sample per interval.
    let mut stream = d
        .stream_lines("/v1/containers/b/stats?stream=true&interval_ms=200")
        .await;
    for _ in 0..2 {
        let line = stream.next_json(Duration::from_secs(5)).await.unwrap();
        assert_eq!(line["name"], "b");
    }
    // Not running: 409.
    d.api_ok("POST", "/v1/containers/b/kill", None, 204).await;
    d.wait(&b).await;
    let (status, body) = d.api("GET", "/v1/containers/b/stats", None).await;
    assert_eq!(status.as_u16(), 409, "{body}");
    let all = d.api_ok("GET", "/v1/stats", None, 200).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
}

async fn why(d: &TestDaemon, name: &str) -> String {
    let out = tokio::process::Command::new(boxctl_bin())
        .args(["why", name])
        .env("BOXD_SOCKET", &d.socket)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn root_boxctl_why_explains_oom_error_signal_and_normal_exits() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let run = |name: &str, cmd: String, mem: Option<u64>| {
        let mut body = json!({"image": "busybox", "name": name, "cmd": ["/bin/sh", "-c", cmd]});
        if let Some(m) = mem {
            body["resources"] = json!({"memory_bytes": m});
        }
        body
    };
    let oom = d
        .run(run(
            "oomy",
            format!("echo about to grow; {HOG}"),
            Some(32 * MIB),
        ))
        .await;
    let err = d
        .run(run("erry", "echo bad input >&2; exit 3".into(), None))
        .await;
    let sig = d
        .run(run("siggy", "echo waiting; exec sleep 1000".into(), None))
        .await;
    let ok = d.run(run("oky", "echo all done".into(), None)).await;
    // SIGKILL: the first process of a pid namespace ignores signals it has no handler for.
    d.api_ok("POST", "/v1/containers/siggy/kill?signal=KILL", None, 204)
        .await;
    for id in [&oom, &err, &sig, &ok] {
        d.wait(id).await;
    }
    let text = why(&d, "oomy").await;
    assert!(
        text.starts_with("oomy was killed by the kernel OOM killer at 32.0 MiB (its limit)"),
        "{text}"
    );
    assert!(text.contains("peak memory"), "{text}");
    assert!(text.contains("about to grow"), "{text}");
    let text = why(&d, "erry").await;
    assert!(text.starts_with("erry exited with code 3"), "{text}");
    assert!(text.contains("bad input"), "{text}");
    let text = why(&d, "siggy").await;
    assert!(
        text.starts_with("siggy was killed by SIGKILL (9)"),
        "{text}"
    );
    assert!(text.contains("waiting"), "{text}");
    let text = why(&d, "oky").await;
    assert!(text.starts_with("oky exited normally (code 0)"), "{text}");
    assert!(text.contains("all done"), "{text}");
}
