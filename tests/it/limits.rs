//! Resource limits: memory (OOM kill recorded), pids, cpu; each visible in the cgroup
//! and enforced on the container's processes.

use std::time::Duration;

use boxd_tests::{cgroup_v2_unified, require_root, TestDaemon};
use serde_json::json;

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn root_memory_hog_is_oom_killed_and_recorded() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // The shell keeps the whole 200 MB command substitution in memory: far over 32 MiB.
    let id = d
        .run(json!({
            "image": "busybox",
            "name": "hog",
            // The pause lets the test read the limit while the group surely exists.
            "cmd": ["/bin/sh", "-c", "sleep 0.5; x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}"],
            "resources": {"memory_bytes": 32 * MIB},
        }))
        .await;
    let limit = if cgroup_v2_unified() {
        d.read_cgroup("memory", &id, "memory.max")
    } else {
        d.read_cgroup("memory", &id, "memory.limit_in_bytes")
    };
    let w = d.wait(&id).await;
    assert_eq!(limit, (32 * MIB).to_string(), "memory limit in the cgroup");
    assert_eq!(w["exit_code"], 137, "wait: {w}");
    assert_eq!(w["oom_killed"], true, "wait: {w}");
    let c = d.inspect("hog").await;
    assert_eq!(c["state"], "exited", "{c}");
    assert_eq!(c["exit_code"], 137, "{c}");
    assert_eq!(c["oom_killed"], true, "{c}");
    let out = d.stdout_of(&id).await;
    assert!(
        !out.contains("200000000"),
        "the hog finished: it was not limited"
    );

    // The same command without a limit completes, so the kill above was the limit's doing.
    let (code, out) = d
        .run_to_end(
            json!({"resources": {"memory_bytes": 1024 * MIB}}),
            &[
                "/bin/sh",
                "-c",
                "x=$(head -c 50000000 /dev/zero | tr '\\0' a); echo ${#x}",
            ],
        )
        .await;
    assert_eq!((code, out.trim()), (0, "50000000"));
}

#[tokio::test]
async fn root_fork_loop_is_capped_by_pids_max_and_container_survives() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    // A subshell forks sleepers until fork fails; the first process stays as `sleep`.
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sh", "-c", "(while :; do sleep 1000 & done) 2>/dev/null & exec sleep 1000"],
            "resources": {"pids_max": 16},
        }))
        .await;
    assert_eq!(d.read_cgroup("pids", &id, "pids.max"), "16");
    // Wait until the loop has run into the limit.
    let hit = boxd_tests::wait_for_async(Duration::from_secs(5), async || {
        max_events(&d.read_cgroup("pids", &id, "pids.events")) > 0
    })
    .await;
    assert!(hit, "the fork loop never hit pids.max");
    let current: u64 = d.read_cgroup("pids", &id, "pids.current").parse().unwrap();
    assert!(current <= 16, "pids.current {current} > 16");
    let procs = d.read_cgroup("pids", &id, "cgroup.procs");
    assert!(
        procs.lines().count() <= 16,
        "{} processes",
        procs.lines().count()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = d.inspect(&id).await;
    assert_eq!(c["state"], "running", "the container did not survive: {c}");
    let pid = c["pid"].as_i64().unwrap() as i32;
    assert!(boxd_tests::process_alive(pid));
    d.remove_container(&id).await;
    d.assert_container_gone(&id);
}

fn max_events(events: &str) -> u64 {
    events
        .lines()
        .find_map(|l| l.strip_prefix("max "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn root_cpu_and_other_limits_are_in_the_cgroup() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({
            "image": "busybox",
            "cmd": ["/bin/sleep", "1000"],
            "resources": {
                "cpu_quota_us": 50000, "cpu_period_us": 100000, "cpu_shares": 512,
                "memory_bytes": 64 * MIB, "memory_swap_bytes": 96 * MIB, "memory_swappiness": 10,
                "pids_max": 32,
            },
        }))
        .await;
    if cgroup_v2_unified() {
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.max"), "50000 100000");
        // runc's shares → weight mapping: 1 + (shares - 2) * 9999 / 262142.
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.weight"), "20");
        assert_eq!(
            d.read_cgroup("memory", &id, "memory.max"),
            (64 * MIB).to_string()
        );
        assert_eq!(
            d.read_cgroup("memory", &id, "memory.swap.max"),
            (32 * MIB).to_string()
        );
    } else {
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.cfs_quota_us"), "50000");
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.cfs_period_us"), "100000");
        assert_eq!(d.read_cgroup("cpu", &id, "cpu.shares"), "512");
        assert_eq!(
            d.read_cgroup("memory", &id, "memory.limit_in_bytes"),
            (64 * MIB).to_string()
        );
        // Swap accounting (memsw) exists only when the kernel was booted with it.
        if d.cgroup_file("memory", &id, "memory.memsw.limit_in_bytes")
            .exists()
        {
            assert_eq!(
                d.read_cgroup("memory", &id, "memory.memsw.limit_in_bytes"),
                (96 * MIB).to_string()
            );
        }
        assert_eq!(d.read_cgroup("memory", &id, "memory.swappiness"), "10");
    }
    assert_eq!(d.read_cgroup("pids", &id, "pids.max"), "32");
    // The container's process really is in those groups.
    let pid = d.pid_of(&id).await;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wanted = format!("/{}/{id}", d.cgroup_parent);
    for ctrl in ["cpu", "memory", "pids"] {
        let line = cgroups
            .lines()
            .find(|l| {
                let fields: Vec<&str> = l.splitn(3, ':').collect();
                if cgroup_v2_unified() {
                    fields[0] == "0"
                } else {
                    fields[1].split(',').any(|c| c == ctrl)
                }
            })
            .unwrap_or_else(|| panic!("no {ctrl} line in /proc/{pid}/cgroup:\n{cgroups}"));
        assert!(line.ends_with(&wanted), "pid {pid} not in {wanted}: {line}");
    }
    d.remove_container(&id).await;
}

/// Swappiness on cgroup v2 (no per-group knob): 0 becomes `memory.swap.max = 0`, any
/// other value is refused loudly (a warning in the create answer), never dropped
/// silently. On v1 it is `memory.swappiness`.
#[tokio::test]
async fn root_swappiness_is_applied_or_warned_about() {
    boxd_tests::require_root!();
    let d = boxd_tests::TestDaemon::start().await;
    d.import_busybox().await;
    let body = |name: &str, swappiness: u64| {
        serde_json::json!({"image": "busybox", "name": name, "cmd": ["sleep", "1000"],
            "resources": {"memory_bytes": 64 << 20, "memory_swappiness": swappiness}})
    };
    let created = d
        .api_ok("POST", "/v1/containers", Some(body("s60", 60)), 201)
        .await;
    let warnings = created["warnings"].as_array().cloned().unwrap_or_default();
    let zero = d
        .api_ok("POST", "/v1/containers", Some(body("s0", 0)), 201)
        .await;
    assert_eq!(zero["warnings"], serde_json::json!([]), "{zero}");
    d.api_ok("POST", "/v1/containers/s60/start", None, 204)
        .await;
    d.api_ok("POST", "/v1/containers/s0/start", None, 204).await;
    let s60 = created["id"].as_str().unwrap().to_owned();
    let s0 = zero["id"].as_str().unwrap().to_owned();
    if boxd_tests::cgroup_v2_unified() {
        assert_eq!(warnings.len(), 1, "{created}");
        assert!(
            warnings[0]
                .as_str()
                .unwrap()
                .contains("memory_swappiness 60"),
            "{created}"
        );
        assert_eq!(d.read_cgroup("memory", &s0, "memory.swap.max").trim(), "0");
    } else {
        assert!(warnings.is_empty(), "{created}");
        assert_eq!(
            d.read_cgroup("memory", &s60, "memory.swappiness").trim(),
            "60"
        );
        assert_eq!(
            d.read_cgroup("memory", &s0, "memory.swappiness").trim(),
            "0"
        );
    }
    for name in ["s60", "s0"] {
        d.remove_container(name).await;
    }
    boxd_tests::assert_no_leaks(&d);
}
