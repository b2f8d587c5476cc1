//! Images: pulls from the real local registry (`tests/images/start-registry.sh`),
//! archive loads, layered images run as containers, and image lifecycle rules.

use std::path::Path;
use std::process::Command;

use boxd_tests::{fixtures, require_root, Registry, TestDaemon};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

/// The registry's port; fixed and unique to this file.
const PORT: u16 = 5071;

/// Pulls; returns (HTTP status, NDJSON lines or the error body).
async fn pull(d: &TestDaemon, body: Value) -> (u16, Vec<Value>) {
    let (status, bytes) = d
        .request(
            Method::POST,
            "/v1/images/pull",
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await
        .expect("pull request");
    let lines = String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (status.as_u16(), lines)
}

async fn pull_ok(d: &TestDaemon, body: Value) -> Value {
    let (status, lines) = pull(d, body.clone()).await;
    assert_eq!(status, 200, "pull {body}: {lines:?}\n{}", d.log_text());
    let last = lines.last().cloned().unwrap_or_default();
    assert_eq!(last["status"], "done", "pull {body}: {lines:?}");
    last["image"].clone()
}

fn layer_dirs(d: &TestDaemon) -> usize {
    std::fs::read_dir(d.root.join("images/layers"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn root_pull_from_registry() {
    require_root!();
    let reg = Registry::start("registry-it-images", PORT);
    let digests = reg.digests();
    let busybox_config = digests["busybox-oci"]["latest"]["config"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = TestDaemon::start().await;

    // By tag, OCI manifest: progress lines, then the image (id = config digest).
    let (status, lines) = pull(&d, json!({"reference": reg.reference("test/busybox")})).await;
    assert_eq!(status, 200, "{lines:?}");
    assert_eq!(lines[0]["status"], "resolved");
    assert!(
        lines.iter().any(|l| l["status"] == "downloading"
            && l["current"] == l["total"]
            && l["total"].as_u64() > Some(0)),
        "{lines:?}"
    );
    let img = &lines.last().unwrap()["image"];
    assert_eq!(img["id"], busybox_config);
    assert_eq!(img["cmd"], json!(["/bin/sh"]));
    let tag = format!("{}:latest", reg.reference("test/busybox"));
    assert!(img["tags"].as_array().unwrap().contains(&json!(tag)));
    assert_eq!(layer_dirs(&d), 1);

    // The v2s2 manifest of the same image: same config, no new layer.
    let img = pull_ok(&d, json!({"reference": reg.reference("test/busybox:v2s2")})).await;
    assert_eq!(img["id"], busybox_config);
    assert_eq!(layer_dirs(&d), 1);

    // By digest.
    let by_digest = format!(
        "{}@{}",
        reg.reference("test/busybox"),
        reg.digest_of("test/busybox:latest")
    );
    let img = pull_ok(&d, json!({"reference": by_digest})).await;
    assert_eq!(img["id"], busybox_config);

    // Layered: shares the busybox layer (stored once), whiteouts honoured, config used.
    let img = pull_ok(&d, json!({"reference": reg.reference("test/layered:v2s2")})).await;
    assert_eq!(img["entrypoint"], json!(["/bin/cat"]));
    assert_eq!(layer_dirs(&d), 2);
    let layered = img["id"].as_str().unwrap().to_owned();
    let id = d.run(json!({"image": layered})).await;
    assert_eq!(d.wait(&id).await["exit_code"], 0);
    assert_eq!(d.stdout_of(&id).await, "hello from layer 2\n");
    let (code, out) = d
        .run_to_end(
            json!({"image": layered, "entrypoint": ["/bin/sh", "-c"]}),
            &["test ! -e /etc/motd && ls /etc/fixture.d && echo $GREETING"],
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "c.conf\nhello-from-layered\n");

    // In use: 409; with force only its tags go.
    let (status, v) = d
        .api("DELETE", &format!("/v1/images/{layered}"), None)
        .await;
    assert_eq!(status.as_u16(), 409, "{v}");

    // Multi-arch: the host's platform by default, the fake arm64 only when asked.
    let img = pull_ok(&d, json!({"reference": reg.reference("test/multiarch")})).await;
    assert_eq!(img["id"], busybox_config);
    let img = pull_ok(
        &d,
        json!({"reference": reg.reference("test/multiarch:v2s2"), "platform": "linux/arm64"}),
    )
    .await;
    assert_eq!(img["architecture"], "arm64");
    assert_ne!(img["id"], busybox_config);

    // Unknown: 404 before any stream starts.
    let (status, v) = pull(&d, json!({"reference": reg.reference("test/nope")})).await;
    assert_eq!(status, 404, "{v:?}");

    // The hostile layer is refused and nothing of it stays.
    let before = layer_dirs(&d);
    let (_, lines) = pull(&d, json!({"reference": reg.reference("test/evil")})).await;
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "unsafe_image", "{lines:?}");
    assert_eq!(layer_dirs(&d), before);
    assert!(!Path::new("/tmp/pwned").exists());
    assert_eq!(
        std::fs::read_dir(d.root.join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
}

/// A tar of an OCI layout directory.
fn tar_dir(dir: &Path, out: &Path) {
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn root_load_archives() {
    require_root!();
    let d = TestDaemon::start().await;
    let fx = fixtures();
    let (status, v) = d
        .upload("/v1/images/load", &fx.join("layered-docker-archive.tar"))
        .await;
    assert_eq!(status.as_u16(), 200, "{v}");
    let img = &v["images"][0];
    assert_eq!(img["tags"], json!(["test/layered:latest"]));
    assert_eq!(img["layers"].as_array().unwrap().len(), 2);
    let (code, out) = d
        .run_to_end(json!({"image": "test/layered"}), &["/etc/fixture.d/c.conf"])
        .await;
    assert_eq!((code, out.as_str()), (0, "c=3\n"));

    // The OCI layout of busybox: its layer is the layered image's base, stored once.
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("busybox-oci.tar");
    tar_dir(&fx.join("busybox-oci"), &oci);
    let (status, v) = d.upload("/v1/images/load?name=test/busybox", &oci).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    assert_eq!(v["images"][0]["tags"], json!(["test/busybox:latest"]));
    assert_eq!(layer_dirs(&d), 2);
    let (code, out) = d
        .run_to_end(json!({"image": "test/busybox"}), &["cat", "/etc/motd"])
        .await;
    assert_eq!(code, 0, "{out}");

    // A multi-arch layout picks the host's image.
    let multi = tmp.path().join("multiarch-oci.tar");
    tar_dir(&fx.join("multiarch-oci"), &multi);
    let (status, v) = d.upload("/v1/images/load?name=test/multi", &multi).await;
    assert_eq!(status.as_u16(), 200, "{v}");
    let busybox = d.api_ok("GET", "/v1/images/test/busybox", None, 200).await;
    assert_eq!(v["images"][0]["id"], busybox["id"]);

    // The hostile layout is refused.
    let evil = tmp.path().join("evil-oci.tar");
    tar_dir(&fx.join("evil-oci"), &evil);
    let (status, v) = d.upload("/v1/images/load?name=test/evil", &evil).await;
    assert_eq!(status.as_u16(), 400, "{v}");
    assert_eq!(v["code"], "unsafe_image");

    // Tag, untag by rmi, prune.
    d.api_ok(
        "POST",
        "/v1/images/tag",
        Some(json!({"source": "test/busybox", "target": "mine:1"})),
        201,
    )
    .await;
    let (status, _) = d.api("DELETE", "/v1/images/mine:1", None).await;
    assert_eq!(status.as_u16(), 204);
    let v = d.api_ok("GET", "/v1/images/test/busybox", None, 200).await;
    assert!(
        !v["tags"].as_array().unwrap().contains(&json!("mine:1")),
        "{v}"
    );
    // Both images have containers: prune keeps them and their layers.
    let v = d
        .api_ok("POST", "/v1/images/prune?all=true", None, 200)
        .await;
    assert_eq!(v["images_deleted"], json!([]), "{v}");
    assert_eq!(layer_dirs(&d), 2);
}
