//! Bad input gets a status that says what went wrong and an `ErrorBody` with a stable code.

use std::path::Path;

use boxd_tests::{fixtures, require_root, TestDaemon};
use hyper::Method;
use serde_json::{json, Value};

fn assert_error(status: hyper::StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {body}"
    );
}

#[tokio::test]
async fn root_malformed_json_is_400() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let (status, body) = d
        .request(
            Method::POST,
            "/v1/containers",
            Some("application/json"),
            bytes::Bytes::from_static(b"{\"image\": \"busybox\", "),
        )
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).expect("error body is JSON");
    assert_error(status, &body, 400, "invalid_json");
    // Well-formed JSON of the wrong shape is refused too, in the same format.
    for bad in [
        json!({"image": "busybox", "cmd": "not-a-list"}),
        json!({"image": "busybox", "no_such_field": 1}),
        json!({"cmd": ["/bin/true"]}),
        json!({"image": "busybox", "resources": {"memory_bytes": -5}}),
    ] {
        let (status, body) = d.api("POST", "/v1/containers", Some(bad.clone())).await;
        assert_eq!(status.as_u16(), 400, "{bad} → {body}");
        assert!(
            body["code"] == "invalid_json" || body["code"] == "bad_request",
            "{bad} → {body}"
        );
    }
    let list = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    assert_eq!(list, json!([]), "a refused create left a container");
}

/// A repeated, malformed or empty query parameter, and a method a path does not take,
/// are answered with the API's JSON error body, not axum's plain text or an empty 405.
#[tokio::test]
async fn root_bad_query_and_wrong_method_get_the_error_body() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .create(json!({"image": "busybox", "cmd": ["/bin/true"]}))
        .await;
    for (method, path) in [
        (Method::GET, "/v1/containers?all=1&all=0".to_owned()),
        (Method::GET, "/v1/containers?all=".to_owned()),
        (Method::GET, "/v1/containers?all=maybe".to_owned()),
        (
            Method::DELETE,
            format!("/v1/containers/{id}?force=null&force=null"),
        ),
        (
            Method::GET,
            format!("/v1/containers/{id}/logs?tail=1&tail=2"),
        ),
    ] {
        let resp = d
            .send(method.clone(), &path, None, Default::default())
            .await
            .unwrap();
        let ct = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = d
            .request(method.clone(), &path, None, Default::default())
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {body:?}"));
        assert_eq!(ct.as_deref(), Some("application/json"), "{method} {path}");
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = d.api("DELETE", "/v1/version", None).await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = d.api("PUT", "/v1/containers", None).await;
    assert_error(status, &body, 405, "method_not_allowed");
    // The container is still there: nothing was half-done.
    d.api_ok("GET", &format!("/v1/containers/{id}"), None, 200)
        .await;
}

#[tokio::test]
async fn root_unknown_container_is_404() {
    require_root!();
    let d = TestDaemon::start().await;
    for (method, path) in [
        ("GET", "/v1/containers/nope"),
        ("POST", "/v1/containers/nope/start"),
        ("POST", "/v1/containers/nope/stop"),
        ("POST", "/v1/containers/nope/kill"),
        ("POST", "/v1/containers/nope/wait"),
        ("GET", "/v1/containers/nope/logs"),
        ("DELETE", "/v1/containers/nope"),
        ("GET", "/v1/images/nope"),
        ("DELETE", "/v1/images/nope"),
    ] {
        let (status, body) = d.api(method, path, None).await;
        assert_error(status, &body, 404, "not_found");
    }
    let (status, body) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "no-such-image", "cmd": ["/bin/true"]})),
        )
        .await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn root_duplicate_name_is_409_and_start_of_running_is_409() {
    require_root!();
    let d = TestDaemon::start().await;
    d.import_busybox().await;
    let id = d
        .run(json!({"image": "busybox", "name": "dup", "cmd": ["/bin/sleep", "1000"]}))
        .await;
    let (status, body) = d
        .api(
            "POST",
            "/v1/containers",
            Some(json!({"image": "busybox", "name": "dup", "cmd": ["/bin/true"]})),
        )
        .await;
    assert_error(status, &body, 409, "name_in_use");
    let (status, body) = d
        .api("POST", &format!("/v1/containers/{id}/start"), None)
        .await;
    assert_error(status, &body, 409, "already_running");
    let (status, body) = d.api("DELETE", "/v1/images/busybox", None).await;
    assert_error(status, &body, 409, "image_in_use");
    d.api_ok("DELETE", "/v1/containers/dup?force=true", None, 204)
        .await;
    // The name is free again once its owner is gone.
    d.create(json!({"image": "busybox", "name": "dup", "cmd": ["/bin/true"]}))
        .await;
}

/// Paths on the host that `evil-rootfs.tar` aims at (see tests/images/README.md).
const EVIL_TARGETS: [&str; 4] = [
    "/tmp/pwned",
    "/tmp/pwned-via-symlink",
    "/tmp/pwned-via-relsymlink",
    "/abs/path",
];
const HARDLINK_TARGET: &str = "/tmp/boxd-evil-hardlink-target";

#[tokio::test]
async fn root_hostile_tarball_is_refused_and_writes_nothing_outside() {
    require_root!();
    for p in EVIL_TARGETS {
        // Left by an earlier broken run, it would hide a new escape.
        if Path::new(p).is_file() {
            std::fs::remove_file(p).unwrap();
        }
    }
    // A hard link to this file from inside the image would let a container change it.
    std::fs::write(HARDLINK_TARGET, "host file\n").unwrap();
    let d = TestDaemon::start().await;
    let (status, body) = d
        .upload(
            "/v1/images/import?name=evil",
            &fixtures().join("evil-rootfs.tar"),
        )
        .await;
    let links = std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(HARDLINK_TARGET).unwrap());
    let _ = std::fs::remove_file(HARDLINK_TARGET);
    assert_error(status, &body, 400, "unsafe_image");
    for p in EVIL_TARGETS {
        assert!(!Path::new(p).exists(), "the import wrote {p} on the host");
    }
    assert_eq!(links, 1, "the import hard-linked {HARDLINK_TARGET}");
    let images = d.api_ok("GET", "/v1/images", None, 200).await;
    assert_eq!(images, json!([]), "a refused import left an image");
    let (status, _) = d.api("GET", "/v1/images/evil", None).await;
    assert_eq!(status.as_u16(), 404);
}

#[tokio::test]
async fn root_import_gives_the_uncompressed_digest_as_id() {
    require_root!();
    let d = TestDaemon::start().await;
    let digests: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("digests.json")).unwrap())
            .unwrap();
    let image = d.import_busybox().await;
    assert_eq!(
        image["id"], digests["busybox-rootfs.tar.gz"]["uncompressed_sha256"],
        "{image}"
    );
    assert!(
        image["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "busybox:latest"),
        "{image}"
    );
    let by_name = d
        .api_ok("GET", "/v1/images/busybox:latest", None, 200)
        .await;
    assert_eq!(by_name["id"], image["id"]);
    d.api_ok("DELETE", "/v1/images/busybox", None, 204).await;
    let (status, _) = d.api("GET", "/v1/images/busybox", None).await;
    assert_eq!(status.as_u16(), 404);
}
