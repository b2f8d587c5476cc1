//! `systemd/boxd.service`: accepted by `systemd-analyze verify`, and keeps the settings
//! that let containers outlive a service restart.

use std::process::Command;

use boxd_tests::{boxd_bin, skip, workspace_root};

fn unit_text() -> String {
    let path = workspace_root().join("systemd/boxd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `[Service]` settings as `key=value` lines, comments dropped.
fn settings(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| l.replace(' ', ""))
        .collect()
}

#[test]
fn systemd_unit_keeps_containers_alive_across_restarts() {
    let s = settings(&unit_text());
    for want in [
        "Type=notify",
        "ExecStart=/usr/local/bin/boxd",
        // The daemon manages its containers' cgroups below its own.
        "Delegate=yes",
        // ... from a leaf of its own, beside them (cgroup v2's no-internal-processes rule).
        "DelegateSubgroup=daemon",
        // Only the daemon is signalled on stop: containers keep running.
        "KillMode=process",
        "Restart=on-failure",
        "After=local-fs.target",
    ] {
        assert!(s.iter().any(|l| l == want), "boxd.service lacks {want}");
    }
}

#[test]
fn systemd_unit_passes_verify() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        skip("systemd-analyze not found (apt-get install systemd)");
        return;
    };
    assert!(out.status.success(), "systemd-analyze --version failed");
    // `systemd 252 (252.38-1~deb12u1)`: DelegateSubgroup= is known from 254 on; older
    // versions warn about it and ignore it, which the unit allows for.
    let version: u32 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("systemd version");
    // verify checks that ExecStart exists and is executable: point it at the binary
    // just built instead of the installed path.
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("boxd.service");
    let text: String = unit_text()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("ExecStart=") {
                format!("ExecStart={}\n", boxd_bin().display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&unit, text).expect("write unit");
    std::fs::copy(
        workspace_root().join("systemd/boxd.socket"),
        dir.path().join("boxd.socket"),
    )
    .expect("copy boxd.socket");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .arg(dir.path().join("boxd.socket"))
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze verify");
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| version >= 254 || !l.contains("Unknown key 'DelegateSubgroup'"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        out.status.success() && !stderr.contains("boxd.service"),
        "systemd-analyze verify rejected boxd.service ({}):\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn systemd_socket_unit_owns_the_api_socket() {
    let path = workspace_root().join("systemd/boxd.socket");
    let s = settings(&std::fs::read_to_string(&path).expect("read boxd.socket"));
    for want in [
        "ListenStream=/run/boxd.sock",
        "SocketMode=0660",
        "SocketGroup=boxd",
    ] {
        assert!(s.iter().any(|l| l == want), "boxd.socket lacks {want}");
    }
}

/// Under `systemd-socket-activate`, boxd serves on the socket it is handed (LISTEN_FDS)
/// and the first request, sent before boxd even ran, is answered.
#[tokio::test]
async fn root_socket_activation_serves_the_first_request() {
    boxd_tests::require_root!();
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        skip("systemd-socket-activate not found (apt-get install systemd)");
        return;
    }
    let mut d = boxd_tests::TestDaemon::start().await;
    d.stop_daemon(boxd_tests::StopHow::Term);
    let socket = d.socket.clone();
    let activate = std::ffi::OsString::from("systemd-socket-activate");
    let listen = std::ffi::OsString::from("-l");
    // systemd-socket-activate passes no environment unless told (-E).
    let env = std::ffi::OsString::from("-E");
    let no_color = std::ffi::OsString::from("NO_COLOR=1");
    d.start_process(
        &[&activate, &listen, socket.as_os_str(), &env, &no_color],
        &[],
    );
    // The socket exists before boxd does; the request waits in its backlog.
    assert!(
        boxd_tests::wait_for_async(std::time::Duration::from_secs(10), async || socket.exists())
            .await,
        "systemd-socket-activate made no socket"
    );
    let v = d.api_ok("GET", "/v1/version", None, 200).await;
    assert_eq!(v["api_version"], "v1");
    assert!(
        d.log_text().contains("activated=true"),
        "boxd did not use the passed socket:\n{}",
        d.log_text()
    );
}

/// With `NOTIFY_SOCKET` set (Type=notify), boxd sends READY=1 once it answers, and
/// STOPPING=1 when it stops.
#[tokio::test]
async fn root_notify_ready_and_stopping() {
    boxd_tests::require_root!();
    let mut d = boxd_tests::TestDaemon::start().await;
    d.stop_daemon(boxd_tests::StopHow::Term);
    let path = d.dir.join("notify.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    d.spawn_with(&[], &[("NOTIFY_SOCKET", path.as_os_str())])
        .await;
    let mut buf = [0u8; 512];
    let n = listener
        .recv(&mut buf)
        .expect("no message from boxd on NOTIFY_SOCKET");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.lines().any(|l| l == "READY=1"),
        "first message: {msg:?}"
    );
    d.stop_daemon(boxd_tests::StopHow::Term);
    let n = listener.recv(&mut buf).expect("no STOPPING=1 from boxd");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.lines().any(|l| l == "STOPPING=1"),
        "message at stop: {msg:?}"
    );
}
