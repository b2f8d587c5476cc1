//! Image verbs against a fake daemon: what the client's pull, load, tag and prune send
//! and decode, and what `boxctl pull/load/tag/image prune/rmi -f` print.

mod support;

use boxd_client::models::PullRequest;
use boxd_client::{Client, Error};
use futures_util::StreamExt;
use serde_json::json;
use support::{FakeDaemon, Reply};
use tokio::process::Command;

const LAYER: &str = "sha256:a738b7abe221eae8e2c685fc4043c986d6290e66c48b09395a4a059f999f149a";
const MANIFEST: &str = "sha256:375633bb4c040158b619c9d54e1f5c0c53455a83d869fad6f234392497638613";
const CONFIG: &str = "sha256:a6cedfb62cda6f4b7c2c8bc8c645a3b4b98e40049dff9b996810ef918ed66864";

fn image_json(tags: &[&str]) -> serde_json::Value {
    json!({"id": CONFIG, "tags": tags, "size": 1_088_172,
           "created_at": "2024-01-01T00:00:00Z",
           "repo_digests": [format!("127.0.0.1:5071/test/busybox@{MANIFEST}")]})
}

fn line(v: serde_json::Value) -> String {
    v.to_string() + "\n"
}

/// A pull answer: resolved, a download in three pieces, unpack, done.
fn pull_stream() -> Reply {
    let total = 1_088_172;
    Reply::pieces(&[
        &line(json!({"status": "resolved", "id": MANIFEST, "total": total})),
        &line(json!({"status": "downloading", "id": LAYER, "current": 1, "total": total})),
        // A line split across two chunks.
        &line(json!({"status": "downloading", "id": LAYER, "current": 600_000, "total": total}))
            [..20],
        &line(json!({"status": "downloading", "id": LAYER, "current": 600_000, "total": total}))
            [20..],
        &line(json!({"status": "downloading", "id": LAYER, "current": total, "total": total})),
        &line(json!({"status": "extracting", "id": LAYER})),
        &line(json!({"status": "layer_done", "id": LAYER})),
        &line(
            json!({"status": "done", "id": CONFIG, "image": image_json(&["127.0.0.1:5071/test/busybox:latest"])}),
        ),
    ])
}

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
async fn client_pull_streams_progress_and_reports_early_errors() {
    let daemon = FakeDaemon::start(|req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        if body["reference"] == "nope" {
            Reply::error(404, "not_found", "no such image in the registry")
        } else {
            pull_stream()
        }
    });
    let client = Client::connect(daemon.socket());
    let mut stream = client
        .pull(&PullRequest {
            reference: "127.0.0.1:5071/test/busybox".into(),
            platform: Some("linux/arm64".into()),
        })
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(l) = stream.next().await {
        lines.push(l.unwrap());
    }
    let statuses: Vec<&str> = lines.iter().map(|l| l.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "resolved",
            "downloading",
            "downloading",
            "downloading",
            "extracting",
            "layer_done",
            "done"
        ]
    );
    assert_eq!(lines[2].current, Some(600_000));
    assert_eq!(lines[6].image.as_ref().unwrap().id, CONFIG);
    let req = &daemon.requests()[0];
    assert_eq!(req.line(), "POST /v1/images/pull");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({"reference": "127.0.0.1:5071/test/busybox", "platform": "linux/arm64"})
    );

    let err = client
        .pull(&PullRequest {
            reference: "nope".into(),
            platform: None,
        })
        .await
        .err()
        .expect("404 before the stream");
    assert!(matches!(err, Error::Api { status: 404, .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_load_tag_prune_send_the_right_requests() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/images/load" => Reply::Json(
            200,
            json!({"images": [image_json(&["test/busybox:latest"])]}).to_string(),
        ),
        "/v1/images/tag" => Reply::Json(201, image_json(&["mine:1"]).to_string()),
        "/v1/images/prune" => Reply::Json(
            200,
            json!({"images_deleted": [CONFIG], "layers_deleted": [LAYER],
                   "space_reclaimed": 1_088_172})
            .to_string(),
        ),
        _ => Reply::Empty(204),
    });
    let client = Client::connect(daemon.socket());
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar");
    std::fs::write(&archive, b"not really a tar, but bytes to stream").unwrap();
    let loaded = client
        .load_image(&archive, Some("test/busybox"), Some("linux/amd64"))
        .await
        .unwrap();
    assert_eq!(loaded.images[0].id, CONFIG);
    let image = client.tag_image("test/busybox", "mine:1").await.unwrap();
    assert_eq!(image.tags, ["mine:1"]);
    let pruned = client.prune_images(true).await.unwrap();
    assert_eq!(pruned.space_reclaimed, 1_088_172);
    assert_eq!(pruned.layers_deleted, [LAYER]);
    client.remove_image("mine:1", true).await.unwrap();

    let reqs = daemon.requests();
    assert_eq!(
        reqs[0].line(),
        "POST /v1/images/load?name=test%2Fbusybox&platform=linux%2Famd64"
    );
    assert_eq!(reqs[0].body, b"not really a tar, but bytes to stream");
    assert_eq!(reqs[0].header("content-type"), Some("application/x-tar"));
    assert_eq!(reqs[1].line(), "POST /v1/images/tag");
    let body: serde_json::Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(body, json!({"source": "test/busybox", "target": "mine:1"}));
    assert_eq!(reqs[2].line(), "POST /v1/images/prune?all=true");
    assert_eq!(reqs[3].line(), "DELETE /v1/images/mine:1?force=true");
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
