//! The client's image calls against a fake daemon: what pull, load, tag and prune send
//! and decode.

mod support;

use boxd_client::models::PullRequest;
use boxd_client::{Client, Error};
use futures_util::StreamExt;
use serde_json::json;
use support::images::{image_json, pull_stream, CONFIG, LAYER};
use support::{FakeDaemon, Reply};

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
