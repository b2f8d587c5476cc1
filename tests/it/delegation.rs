//! Where boxd's own processes and its containers sit in the cgroup tree when boxd runs
//! inside the group it manages, as under systemd `Delegate=yes`.
//!
//! On cgroup v2 a group that enables controllers for its children may hold no process
//! ("no internal processes"), so the daemon must live in a leaf (`<group>/daemon`) beside
//! its containers' groups. cgroup v1 has no such rule; there the same start-up must leave
//! the daemon where it was and still put every container under the parent.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_tests::{cgroup_v2_unified, require_root, StopHow, TestDaemon};
use serde_json::json;

const V2_ROOT: &str = "/sys/fs/cgroup";

/// The v2 group of `pid`, relative to the root.
fn group_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .trim_matches('/')
        .to_owned()
}

/// The v1 memory group of `pid`.
fn memory_group_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .unwrap_or_default()
}

/// Every directory under `dir`, `dir` included.
fn groups_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Groups below `dir` that hold a process and also enable controllers for children:
/// what the v2 "no internal processes" rule forbids.
fn internal_process_groups(dir: &Path) -> Vec<String> {
    groups_under(dir)
        .into_iter()
        .filter(|g| {
            let procs = fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
            let control = fs::read_to_string(g.join("cgroup.subtree_control")).unwrap_or_default();
            !procs.trim().is_empty() && !control.trim().is_empty()
        })
        .map(|g| g.display().to_string())
        .collect()
}

/// `sh -c` that moves itself into `group` and then execs the daemon (the harness appends
/// boxd and its flags): how a service manager starts a process in a group.
fn start_in(group: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
            group.display()
        )
        .into(),
    ]
}

async fn run_sleeper(d: &TestDaemon) -> (String, i32) {
    let id = d
        .run(json!({"image": "busybox", "cmd": ["sleep", "1000"]}))
        .await;
    let pid = d.pid_of(&id).await;
    (id, pid)
}

#[tokio::test]
async fn root_a_daemon_inside_its_parent_moves_into_a_leaf_and_keeps_it_across_restarts() {
    require_root!();
    let mut d = TestDaemon::prepare();
    if !cgroup_v2_unified() {
        // v1: nothing to move; the daemon stays in its group, containers go under the
        // parent in every controller.
        d.spawn().await;
        let daemon = d.daemon_pid().unwrap();
        let before = memory_group_of(std::process::id() as i32);
        assert_eq!(memory_group_of(daemon), before);
        d.import_busybox().await;
        let (id, pid) = run_sleeper(&d).await;
        assert_eq!(
            memory_group_of(pid),
            format!("/{}/{id}", d.cgroup_parent),
            "container's v1 memory group"
        );
        return;
    }

    // The parent is the group the daemon is started in, as with
    // `--cgroup-parent system.slice/boxd.service` under `Delegate=yes`.
    let group = Path::new(V2_ROOT).join(&d.cgroup_parent);
    fs::create_dir(&group).unwrap();
    let prefix = start_in(&group);
    let prefix: Vec<&std::ffi::OsStr> = prefix.iter().map(|s| s.as_os_str()).collect();
    d.spawn_with(&prefix, &[]).await;
    let daemon = d.daemon_pid().unwrap();
    assert_eq!(
        group_of(daemon),
        format!("{}/daemon", d.cgroup_parent),
        "the daemon did not move into its leaf; log:\n{}",
        d.log_text()
    );

    d.import_busybox().await;
    let (id, pid) = run_sleeper(&d).await;
    let enabled = fs::read_to_string(group.join("cgroup.subtree_control")).unwrap();
    for c in ["cpu", "memory", "pids"] {
        assert!(enabled.split_whitespace().any(|e| e == c), "{enabled}");
    }
    assert_eq!(group_of(pid), format!("{}/{id}", d.cgroup_parent));
    assert_eq!(
        internal_process_groups(&group),
        Vec::<String>::new(),
        "a process of boxd sits in a group that enables controllers"
    );

    // A restart as systemd does it with `DelegateSubgroup=daemon`: straight into the
    // leaf. The leaf is the daemon's, not a stray container group to remove.
    d.stop_daemon(StopHow::Kill);
    let leaf = group.join("daemon");
    let prefix = start_in(&leaf);
    let prefix: Vec<&std::ffi::OsStr> = prefix.iter().map(|s| s.as_os_str()).collect();
    d.spawn_with(&prefix, &[]).await;
    assert!(leaf.is_dir(), "reconcile removed the daemon's leaf");
    let c = d.inspect(&id).await;
    assert_eq!(c["state"], "running", "{c}");
    assert_eq!(c["pid"], pid, "{c}");
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert!(
        !check.to_string().contains("cgroup daemon"),
        "reconcile touched the daemon's leaf: {check}"
    );
    assert_eq!(internal_process_groups(&group), Vec::<String>::new());

    // Delete: the container's group goes, the daemon's stays.
    d.remove_container(&id).await;
    assert!(!group.join(&id).exists());
    assert!(leaf.is_dir());
}

#[tokio::test]
async fn root_started_by_systemd_in_a_delegated_leaf_boxd_makes_its_groups_beside_it() {
    require_root!();
    let mut d = TestDaemon::prepare();
    // No --cgroup-parent: the daemon picks the default itself.
    d.pass_cgroup_parent = false;
    if !cgroup_v2_unified() {
        // v1: the default parent is `boxd` below each controller's root. The teardown
        // looks there for leftovers.
        d.cgroup_parent = "boxd".into();
        let shared = Path::new("/sys/fs/cgroup/memory/boxd");
        if shared.exists() {
            // Another boxd uses the default parent on this host: do not disturb it. The
            // teardown then looks under a parent of its own, which does not exist.
            d.cgroup_parent = format!("boxd-test-unused-{}", std::process::id());
            boxd_tests::skip(
                "the default v1 parent /sys/fs/cgroup/memory/boxd is in use by another boxd",
            );
            return;
        }
        d.spawn().await;
        d.import_busybox().await;
        let (id, pid) = run_sleeper(&d).await;
        assert_eq!(memory_group_of(pid), format!("/boxd/{id}"));
        return;
    }

    // What systemd makes for `Delegate=yes` + `DelegateSubgroup=daemon`: the unit's group
    // marked as delegated, the main process started in its `daemon` leaf.
    let group = Path::new(V2_ROOT).join(&d.cgroup_parent);
    fs::create_dir_all(group.join("daemon")).unwrap();
    xattr::set(&group, "trusted.delegate", b"1").expect("set trusted.delegate on the group");
    let prefix = start_in(&group.join("daemon"));
    let prefix: Vec<&std::ffi::OsStr> = prefix.iter().map(|s| s.as_os_str()).collect();
    d.spawn_with(&prefix, &[]).await;
    d.import_busybox().await;
    let (id, pid) = run_sleeper(&d).await;
    assert_eq!(
        group_of(pid),
        format!("{}/{id}", d.cgroup_parent),
        "log:\n{}",
        d.log_text()
    );
    let info = d.api_ok("GET", "/v1/info", None, 200).await;
    assert_eq!(info["cgroup_parent"], d.cgroup_parent.as_str(), "{info}");
    assert_eq!(internal_process_groups(&group), Vec::<String>::new());
    d.stop_container(&id, 1).await;
    let w = d.wait(&id).await;
    assert!(w["exit_code"].is_i64(), "{w}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
