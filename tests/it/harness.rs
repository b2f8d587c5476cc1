//! The harness itself: whatever a test leaves behind, dropping the daemon removes it.

use boxd_tests::{
    cgroup_mounts, mounts_under, process_alive, processes_mentioning, require_root, TestDaemon,
};
use std::process::{Command, Stdio};

#[tokio::test]
async fn root_harness_teardown_removes_processes_cgroups_mounts_and_dirs() {
    require_root!();
    let d = TestDaemon::start().await;
    let version = d.api_ok("GET", "/v1/version", None, 200).await;
    assert_eq!(version["api_version"], "v1");
    let dir = d.dir.clone();
    let parent = d.cgroup_parent.clone();

    // A stray process that names the temp dir, a cgroup with a member, and a mount: all
    // things a broken daemon could leave.
    let marker = dir.join("stray");
    std::fs::write(&marker, "").unwrap();
    let stray = Command::new("tail")
        .arg("-f")
        .arg(&marker)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let stray_pid = stray.id() as i32;
    let mut in_cgroup = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let (mount, v2) = cgroup_mounts()
        .into_iter()
        .find(|(m, v2)| *v2 || m.ends_with("pids"))
        .expect("a pids or v2 hierarchy");
    let group = mount.join(&parent).join("leftover");
    std::fs::create_dir_all(&group).expect("make a cgroup");
    std::fs::write(group.join("cgroup.procs"), in_cgroup.id().to_string()).expect("join it");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount tmpfs");
    assert_eq!(mounts_under(&dir), vec![mnt.clone()]);
    assert!(processes_mentioning(&marker.to_string_lossy()).contains(&stray_pid));

    drop(d);

    let _ = in_cgroup.wait();
    assert!(
        !group.exists(),
        "cgroup {} left (v2: {v2})",
        group.display()
    );
    assert!(!mount.join(&parent).exists(), "cgroup parent left");
    assert!(mounts_under(&dir).is_empty(), "mount left");
    assert!(!dir.exists(), "temp dir left");
    // The stray is our child: reap it, then it must have been killed.
    let mut stray = stray;
    let status = stray.wait().unwrap();
    assert!(!status.success(), "stray was not killed");
    assert!(!process_alive(stray_pid));
}
