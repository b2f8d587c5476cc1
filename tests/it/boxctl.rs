//! `boxctl` against a real daemon, as a user types it.

use std::time::Duration;

use boxd_tests::{boxctl_bin, require_root, TestDaemon};
use serde_json::json;

/// Run boxctl with `BOXD_SOCKET` pointing at the test daemon; (status, stdout, stderr).
async fn boxctl(d: &TestDaemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(boxctl_bin())
            .args(args)
            .env("BOXD_SOCKET", &d.socket)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("boxctl {args:?} did not finish within 60 s"))
    .expect("run boxctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn root_boxctl_run_rm_prints_hello() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, out, err) = boxctl(&d, &["run", "--rm", "busybox", "echo", "hello"]).await;
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out, "hello\n", "stderr: {err}");
    // --rm removed the container.
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn root_boxctl_run_exits_with_the_containers_status() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (code, _, err) = boxctl(&d, &["run", "busybox", "sh", "-c", "exit 7"]).await;
    assert_eq!(code, Some(7), "stderr: {err}");
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list[0]["exit_code"], 7, "{list}");
}

#[tokio::test]
async fn root_boxctl_reports_errors_in_one_line_and_fails() {
    require_root!();
    let d = TestDaemon::start().await;
    let (code, out, err) = boxctl(&d, &["inspect", "no-such-container"]).await;
    assert_ne!(code, Some(0), "stdout: {out}");
    assert!(!err.trim().is_empty(), "no error message");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "error is not one line:\n{err}"
    );
}
