//! What a process inside a container sees: its own pids, hostname, filesystem, user,
//! environment and mounts.

use std::collections::BTreeSet;

use boxd_tests::{require_root, TestDaemon};
use serde_json::json;

#[tokio::test]
async fn root_container_is_pid_1_and_sees_no_host_process() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = d
        .run_to_end(json!({}), &["/bin/ps", "-o", "pid,args"])
        .await;
    assert_eq!(code, 0, "ps failed: {out}");
    let pids: BTreeSet<u32> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    // ps itself is the container's first process, and nothing else is visible.
    assert_eq!(pids, BTreeSet::from([1]), "ps inside the container:\n{out}");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("ps")),
        "{out}"
    );
}

#[tokio::test]
async fn root_hostname_is_the_name_or_the_given_hostname() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = d
        .run_to_end(json!({"name": "box-host-7"}), &["/bin/hostname"])
        .await;
    assert_eq!((code, out.trim()), (0, "box-host-7"));
    let (code, out) = d
        .run_to_end(
            json!({"name": "other", "hostname": "custom.example"}),
            &["/bin/hostname"],
        )
        .await;
    assert_eq!((code, out.trim()), (0, "custom.example"));
    let host = nix::unistd::gethostname().expect("gethostname");
    assert_ne!(
        host.to_string_lossy(),
        "box-host-7",
        "the host's name changed"
    );
}

#[tokio::test]
async fn root_writes_are_invisible_to_other_containers_and_the_image() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = d
        .run_to_end(
            json!({"name": "writer"}),
            &[
                "/bin/sh",
                "-c",
                "echo mine > /etc/marker && rm /bin/ls && cat /etc/marker",
            ],
        )
        .await;
    assert_eq!((code, out.trim()), (0, "mine"));
    let (code, out) = d
        .run_to_end(
            json!({"name": "reader"}),
            &[
                "/bin/sh",
                "-c",
                "test -e /etc/marker && echo marker-seen; /bin/ls / >/dev/null && echo ls-ok",
            ],
        )
        .await;
    assert_eq!(
        (code, out.trim()),
        (0, "ls-ok"),
        "second container saw the first one's writes"
    );
    // The image's own files are untouched.
    let mut found = Vec::new();
    find_named(&d.root.join("images"), "marker", &mut found);
    assert!(found.is_empty(), "write reached the image store: {found:?}");
}

fn find_named(dir: &std::path::Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name() == name {
            out.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            find_named(&p, name, out);
        }
    }
}

#[tokio::test]
async fn root_read_only_bind_mount_is_read_only_and_rw_one_writes_through() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let ro = d.dir.join("ro-src");
    let rw = d.dir.join("rw-src");
    std::fs::create_dir(&ro).unwrap();
    std::fs::create_dir(&rw).unwrap();
    std::fs::write(ro.join("f"), "from-host\n").unwrap();
    let (code, out) = d
        .run_to_end(
            json!({"mounts": [
                {"source": ro, "target": "/data", "read_only": true},
                {"source": rw, "target": "/out"},
            ]}),
            &[
                "/bin/sh",
                "-c",
                "cat /data/f; echo x > /data/new 2>/dev/null && echo wrote-ro; \
                 rm /data/f 2>/dev/null && echo removed-ro; echo y > /out/new && echo wrote-rw",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "from-host\nwrote-rw\n");
    assert!(!ro.join("new").exists(), "a read-only mount was written to");
    assert!(ro.join("f").exists(), "a read-only mount lost a file");
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "y\n");

    // A source that does not exist is the caller's mistake.
    let (status, body) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["/bin/true"],
                         "mounts": [{"source": d.dir.join("nope"), "target": "/x"}]})),
        )
        .await;
    assert_eq!(status.as_u16(), 400, "{body}");
}

#[tokio::test]
async fn root_user_by_name_and_by_uid_gid() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = ["/bin/sh", "-c", "echo $(id -u) $(id -g)"];
    for (user, want) in [
        (None, "0 0"),
        (Some("nobody"), "65534 65534"),
        (Some("1000:1001"), "1000 1001"),
        (Some("1234"), "1234 0"),
        (Some("nobody:root"), "65534 0"),
    ] {
        let body = match user {
            Some(u) => json!({"user": u}),
            None => json!({}),
        };
        let (code, out) = d.run_to_end(body, &id).await;
        assert_eq!((code, out.trim()), (0, want), "user {user:?}");
    }
    // An unknown name is refused before anything runs.
    let (status, body) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "cmd": ["/bin/true"], "user": "no-such-user"})),
        )
        .await;
    let started = if status.is_success() {
        let id = body["id"].as_str().unwrap().to_string();
        d.api("POST", &format!("/v1/containers/{id}/start"), None)
            .await
            .0
    } else {
        status
    };
    assert!(
        started.is_client_error() || started.is_server_error(),
        "an unknown user was accepted"
    );
}

#[tokio::test]
async fn root_env_and_working_dir() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = d
        .run_to_end(
            json!({"env": ["FOO=bar baz", "EMPTY="], "working_dir": "/tmp"}),
            &[
                "/bin/sh",
                "-c",
                "echo \"$FOO\"; echo \"[$EMPTY]\"; pwd; echo $PATH",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["bar baz", "[]", "/tmp"], "{out}");
    assert!(lines[3].contains("/bin"), "PATH has no /bin: {out}");
    // A working dir that does not exist in the image is made, as Docker does.
    let (code, out) = d
        .run_to_end(json!({"working_dir": "/new/dir"}), &["/bin/pwd"])
        .await;
    assert_eq!((code, out.trim()), (0, "/new/dir"));
}

/// The container has its own cgroup namespace: its `/proc/self/cgroup` shows its group
/// as `/` (on v2 the single line `0::/`), never the host's path with the parent.
#[tokio::test]
async fn root_container_sees_its_own_cgroup_as_root() {
    boxd_tests::require_root!();
    let d = boxd_tests::TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out) = d
        .run_to_end(
            serde_json::json!({"image": "busybox"}),
            &["cat", "/proc/self/cgroup"],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains(&d.cgroup_parent),
        "the host's cgroup path shows inside: {out}"
    );
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "not the namespace root: {line:?} in {out}"
        );
    }
    if boxd_tests::cgroup_v2_unified() {
        assert_eq!(out.trim(), "0::/");
    }
    boxd_tests::assert_no_leaks(&d);
}
