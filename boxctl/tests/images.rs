//! Image verbs of `boxctl` against a fake daemon: what `boxctl pull/load/tag/image
//! prune/rmi -f` send and print.

#[path = "../../client/tests/support/mod.rs"]
mod support;

use serde_json::json;
use support::images::{image_json, line, pull_stream, CONFIG, MANIFEST};
use support::{FakeDaemon, Reply};
use tokio::process::Command;

fn boxctl(socket: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxctl"));
    cmd.env_remove("BOXD_SOCKET").arg("--socket").arg(socket);
    cmd.kill_on_drop(true);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxctl_pull_prints_plain_lines_off_a_terminal() {
    let daemon = FakeDaemon::start(|_| pull_stream());
    let out = boxctl(&daemon.socket())
        .args([
            "pull",
            "--platform",
            "linux/amd64",
            "127.0.0.1:5071/test/busybox",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "resolved {MANIFEST} (1.09MB in layers)\n\
             a738b7abe221: downloading 1.09MB\n\
             a738b7abe221: downloaded 1.09MB\n\
             a738b7abe221: extracting\n\
             a738b7abe221: pull complete\n\
             Digest: {MANIFEST}\n\
             Pulled 127.0.0.1:5071/test/busybox as {CONFIG}\n"
        )
    );
    let body: serde_json::Value = serde_json::from_slice(&daemon.requests()[0].body).unwrap();
    assert_eq!(body["platform"], "linux/amd64");

    // `image pull -q`: only the id.
    let out = boxctl(&daemon.socket())
        .args(["image", "pull", "-q", "x"])
        .output()
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), format!("{CONFIG}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxctl_pull_error_in_the_stream_is_one_line_and_exit_1() {
    let daemon = FakeDaemon::start(|_| {
        Reply::pieces(&[
            &line(json!({"status": "resolved", "id": MANIFEST, "total": 10})),
            &line(
                json!({"status": "error", "error": {"code": "registry_error",
                   "message": "blob has digest sha256:00, expected sha256:11"}}),
            ),
        ])
    });
    let out = boxctl(&daemon.socket())
        .args(["pull", "r/x"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("boxctl: failed to pull r/x: blob has digest sha256:00"),
        "{stderr}"
    );
    assert!(stderr.contains("(registry_error)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boxctl_load_tag_prune_rmi() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/images/load" => Reply::Json(
            200,
            json!({"images": [image_json(&["test/busybox:latest"]), image_json(&[])]}).to_string(),
        ),
        "/v1/images/tag" => Reply::Json(201, image_json(&["mine:1"]).to_string()),
        "/v1/images/prune" => Reply::Json(
            200,
            json!({"images_deleted": [CONFIG], "layers_deleted": [],
                   "space_reclaimed": 4_264_123})
            .to_string(),
        ),
        _ => Reply::Empty(204),
    });
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    std::fs::write(&archive, b"archive bytes").unwrap();

    let out = boxctl(&daemon.socket())
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("Loaded image: test/busybox:latest\nLoaded image ID: {CONFIG}\n")
    );
    // `image load` reads standard input without -i.
    let mut child = boxctl(&daemon.socket())
        .args(["image", "load", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"from stdin").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(text(&out.stdout), format!("{CONFIG}\n{CONFIG}\n"));

    for args in [
        &["tag", "test/busybox", "mine:1"][..],
        &["image", "tag", "a", "b"],
    ] {
        let out = boxctl(&daemon.socket()).args(args).output().await.unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    let out = boxctl(&daemon.socket())
        .args(["image", "prune", "-a"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("Deleted Images:\ndeleted: {CONFIG}\n\nTotal reclaimed space: 4.26MB\n")
    );
    let out = boxctl(&daemon.socket())
        .args(["rmi", "-f", "mine:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "Deleted: mine:1\n");

    let reqs = daemon.requests();
    assert_eq!(reqs[0].line(), "POST /v1/images/load");
    assert_eq!(reqs[0].body, b"archive bytes");
    assert_eq!(reqs[1].body, b"from stdin");
    assert_eq!(reqs[2].line(), "POST /v1/images/tag");
    let body: serde_json::Value = serde_json::from_slice(&reqs[2].body).unwrap();
    assert_eq!(body, json!({"source": "test/busybox", "target": "mine:1"}));
    assert_eq!(reqs[4].line(), "POST /v1/images/prune?all=true");
    assert_eq!(reqs[5].line(), "DELETE /v1/images/mine:1?force=true");
}
