//! `boxctl` against a real daemon, as a user types it.

use std::time::Duration;

use boxd_tests::{assert_no_leaks, boxctl_bin, require_root, TestDaemon};
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

#[tokio::test]
async fn root_boxctl_verbs_take_several_ids_and_go_on_after_a_failure() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    for name in ["one", "two"] {
        let body = json!({"image": "busybox", "name": name, "cmd": ["sleep", "100"]});
        d.api_ok("POST", "/v1/containers", Some(body), 201).await;
    }
    let lines = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();

    let (code, out, err) = boxctl(&d, &["start", "one", "nope", "two"]).await;
    assert_eq!(code, Some(1), "a failed id fails the command: {err}");
    assert_eq!(lines(&out), ["one", "two"], "the others still ran");
    assert!(err.contains("failed to start nope"), "{err}");
    for name in ["one", "two"] {
        assert_eq!(d.inspect(name).await["state"], "running");
    }

    let (code, out, err) = boxctl(&d, &["stop", "-t", "1", "one"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(0), vec!["one".to_owned()]),
        "{err}"
    );
    let (code, out, err) = boxctl(&d, &["kill", "two", "nope"]).await;
    assert_eq!(
        (code, lines(&out)),
        (Some(1), vec!["two".to_owned()]),
        "{err}"
    );
    assert!(err.contains("failed to kill nope"), "{err}");
    d.wait("two").await;

    let (code, out, err) = boxctl(&d, &["rm", "one", "nope", "two"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(lines(&out), ["one", "two"]);
    assert!(err.contains("failed to remove nope"), "{err}");
    let (_, out, _) = boxctl(&d, &["ps", "-a", "-q"]).await;
    assert!(out.trim().is_empty(), "left: {out}");
    assert_no_leaks(&d);
}
