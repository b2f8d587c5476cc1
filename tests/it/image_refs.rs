//! One image-reference grammar everywhere: an image pulled by digest is found by that
//! digest (inspect, create, tag, delete), names are found in every spelling
//! (`busybox` = `docker.io/library/busybox:latest`), a malformed reference is a 400
//! that says what is wrong, and exec (with `-u NAME`) works in containers of pulled
//! and loaded multi-layer images, whose users live in a lower layer.

use boxd_tests::{fixtures, require_root, Registry, TestDaemon};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use crate::exec::unframe;

/// The registry's port; fixed and unique to this file.
const PORT: u16 = 5073;

/// A reference as a path segment: `/`, `:` and `@` escaped.
fn enc(reference: &str) -> String {
    reference
        .replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
        .replace('@', "%40")
}

/// `GET /v1/images/{ref}` with the reference URL-encoded: (status, body).
async fn inspect_image(d: &TestDaemon, reference: &str) -> (u16, Value) {
    let (status, v) = d
        .api("GET", &format!("/v1/images/{}", enc(reference)), None)
        .await;
    (status.as_u16(), v)
}

/// The id of the image `reference` names, asserting it is found.
async fn image_id(d: &TestDaemon, reference: &str) -> String {
    let (status, v) = inspect_image(d, reference).await;
    assert_eq!(status, 200, "GET /v1/images/{reference}: {v}");
    v["id"].as_str().expect("an id").to_owned()
}

/// Pulls; the image of the final `done` line.
async fn pull_ok(d: &TestDaemon, reference: &str) -> Value {
    let (status, bytes) = d
        .request(
            Method::POST,
            "/v1/images/pull",
            Some("application/json"),
            Bytes::from(json!({ "reference": reference }).to_string()),
        )
        .await
        .expect("pull request");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(status.as_u16(), 200, "pull {reference}: {text}");
    let last: Value = serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap();
    assert_eq!(last["status"], "done", "pull {reference}: {text}");
    last["image"].clone()
}

/// A plain exec as `user` (the container's when `None`): (HTTP status, stdout, stderr or
/// the error body).
async fn exec_as(
    d: &TestDaemon,
    c: &str,
    user: Option<&str>,
    cmd: &[&str],
) -> (u16, String, String) {
    let mut body = json!({ "cmd": cmd });
    if let Some(u) = user {
        body["user"] = u.into();
    }
    let (status, bytes) = d
        .request(
            Method::POST,
            &format!("/v1/containers/{c}/exec"),
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await
        .expect("exec request");
    if status.as_u16() != 200 {
        return (
            status.as_u16(),
            String::new(),
            String::from_utf8_lossy(&bytes).into_owned(),
        );
    }
    let (out, err) = unframe(&bytes);
    (200, out, err)
}

/// Exec works in `c`, whose image keeps `/etc/passwd` in its lower layer: as the
/// container's user, as a user named in that file, and an unknown name is a 400.
async fn assert_exec_resolves_users(d: &TestDaemon, c: &str) {
    let (status, out, err) = exec_as(d, c, None, &["id"]).await;
    assert_eq!(status, 200, "exec id: {err}\n{}", d.log_text());
    assert!(
        out.starts_with("uid=0(root) gid=0(root)"),
        "{out:?} {err:?}"
    );
    let (status, out, err) = exec_as(d, c, None, &["cat", "/hello.txt"]).await;
    assert_eq!(
        (status, out.as_str()),
        (200, "hello from layer 2\n"),
        "{err}"
    );
    let (status, out, err) = exec_as(d, c, Some("nobody"), &["id"]).await;
    assert_eq!(status, 200, "exec -u nobody id: {err}");
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nogroup)"),
        "{out:?} {err:?}"
    );
    let (status, out, _) = exec_as(d, c, Some("nobody:root"), &["id", "-g"]).await;
    assert_eq!((status, out.as_str()), (200, "0\n"));
    let (status, _, err) = exec_as(d, c, Some("no-such-user"), &["id"]).await;
    assert_eq!(status, 400, "{err}");
    assert!(err.contains("bad_user"), "{err}");
}

/// A container of `image` that sleeps (the layered image's entrypoint is `cat`).
async fn sleeper(d: &TestDaemon, image: &str) -> String {
    d.run(json!({"image": image, "entrypoint": ["sleep"], "cmd": ["300"]}))
        .await
}

async fn assert_check_clean(d: &TestDaemon) {
    let check = d.api_ok("GET", "/v1/system/check", None, 200).await;
    assert_eq!(check["ok"], true, "{check}");
}

#[tokio::test]
async fn root_pulled_images_are_found_by_digest_and_run_and_exec() {
    require_root!();
    let reg = Registry::start("registry-it-image-refs", PORT);
    let d = TestDaemon::start().await;

    // Pulled by digest: a two-layer OCI image, found by exactly that reference.
    let layered_ref = reg.by_digest("test/layered", "latest");
    let pulled = pull_ok(&d, &layered_ref).await;
    let layered = pulled["id"].as_str().unwrap().to_owned();
    assert_eq!(pulled["repo_digests"], json!([layered_ref]), "{pulled}");
    assert_eq!(image_id(&d, &layered_ref).await, layered);
    // Unencoded in the path too, and with a tag beside the digest (the digest wins).
    let v = d
        .api_ok("GET", &format!("/v1/images/{layered_ref}"), None, 200)
        .await;
    assert_eq!(v["id"], layered);
    let (repo, digest) = layered_ref.split_once('@').unwrap();
    assert_eq!(
        image_id(&d, &format!("{repo}:nosuchtag@{digest}")).await,
        layered
    );
    // Another repository's name for the same digest is another name: not found.
    let (status, _) = inspect_image(&d, &format!("{}@{digest}", reg.reference("test/other"))).await;
    assert_eq!(status, 404);

    // Run by digest reference; exec and user lookup go through the layers.
    let c = sleeper(&d, &layered_ref).await;
    assert_eq!(d.inspect(&c).await["image"], layered_ref);
    assert_exec_resolves_users(&d, &c).await;
    let (code, out) = d
        .run_to_end(
            json!({"image": layered_ref, "user": "nobody", "entrypoint": ["id"]}),
            &["-un"],
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "nobody\n"));

    // In use: 409 by digest as by id.
    let (status, v) = d
        .api("DELETE", &format!("/v1/images/{}", enc(&layered_ref)), None)
        .await;
    assert_eq!(
        (status.as_u16(), v["code"].as_str()),
        (409, Some("image_in_use")),
        "{v}"
    );

    // Pulled by tag: the manifest digest is recorded, so `name@digest` finds it too.
    let busybox = pull_ok(&d, &reg.reference("test/busybox")).await;
    let busybox_id = busybox["id"].as_str().unwrap().to_owned();
    let busybox_digest = reg.by_digest("test/busybox", "latest");
    assert_eq!(image_id(&d, &busybox_digest).await, busybox_id);
    assert_eq!(
        image_id(&d, &format!("{}:latest", reg.reference("test/busybox"))).await,
        busybox_id
    );

    // Tag by digest; the new name is found in its long form, and deleted by it.
    d.api_ok(
        "POST",
        "/v1/images/tag",
        Some(json!({"source": busybox_digest, "target": "docker.io/library/mine:1"})),
        201,
    )
    .await;
    let v = d.api_ok("GET", "/v1/images/mine:1", None, 200).await;
    assert_eq!(v["id"], busybox_id);
    assert!(
        v["tags"].as_array().unwrap().contains(&json!("mine:1")),
        "{v}"
    );
    assert_eq!(image_id(&d, "docker.io/library/mine:1").await, busybox_id);
    assert_eq!(image_id(&d, "library/mine:1").await, busybox_id);
    let (status, _) = d
        .api(
            "DELETE",
            &format!("/v1/images/{}", enc("docker.io/library/mine:1")),
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 204);
    assert_eq!(inspect_image(&d, "mine:1").await.0, 404);
    assert_eq!(image_id(&d, &busybox_digest).await, busybox_id);

    // Delete by digest: the image's only name, so the image goes.
    let all = d.api_ok("GET", "/v1/containers?all=true", None, 200).await;
    for c in all.as_array().unwrap() {
        d.remove_container(c["id"].as_str().unwrap()).await;
    }
    let (status, v) = d
        .api("DELETE", &format!("/v1/images/{}", enc(&layered_ref)), None)
        .await;
    assert_eq!(status.as_u16(), 204, "{v}");
    assert_eq!(inspect_image(&d, &layered_ref).await.0, 404);
    assert_eq!(inspect_image(&d, &layered).await.0, 404);

    // Removing a repository's last tag takes its repo digests with it.
    let (status, _) = d
        .api(
            "DELETE",
            &format!("/v1/images/{}", enc(&reg.reference("test/busybox"))),
            None,
        )
        .await;
    assert_eq!(status.as_u16(), 204);
    assert_eq!(inspect_image(&d, &busybox_digest).await.0, 404);

    // Malformed references are refused before any registry is asked.
    let (status, v) = d
        .api(
            "POST",
            "/v1/images/pull",
            Some(json!({"reference": reg.reference("test/BusyBox")})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["code"].as_str()),
        (400, Some("invalid_reference")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("lowercase"), "{v}");
    assert_check_clean(&d).await;
}

#[tokio::test]
async fn root_loaded_and_imported_images_answer_to_every_spelling_and_exec() {
    require_root!();
    let d = TestDaemon::start().await;

    // A `docker save` archive of a two-layer image, users in the lower layer.
    let (status, v) = d
        .upload(
            "/v1/images/load",
            &fixtures().join("layered-docker-archive.tar"),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{v}");
    let layered = v["images"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["images"][0]["tags"], json!(["test/layered:latest"]));
    for name in [
        "test/layered",
        "test/layered:latest",
        "docker.io/test/layered",
        "docker.io/test/layered:latest",
        "index.docker.io/test/layered",
        &layered,
        layered.strip_prefix("sha256:").unwrap(),
        &layered[..7 + 12],
    ] {
        assert_eq!(image_id(&d, name).await, layered, "{name}");
    }
    let c = sleeper(&d, "docker.io/test/layered:latest").await;
    assert_exec_resolves_users(&d, &c).await;

    // Imported under the long name: stored and found as the short one, and back.
    let (status, v) = d
        .upload(
            &format!(
                "/v1/images/import?name={}",
                enc("docker.io/library/busybox:latest")
            ),
            &fixtures().join("busybox-rootfs.tar.gz"),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{v}");
    assert_eq!(v["tags"], json!(["busybox:latest"]));
    let busybox = v["id"].as_str().unwrap().to_owned();
    for name in ["busybox", "library/busybox", "docker.io/library/busybox"] {
        assert_eq!(image_id(&d, name).await, busybox, "{name}");
    }
    let (code, out) = d
        .run_to_end(
            json!({"image": "docker.io/library/busybox:latest"}),
            &["echo", "ok"],
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "ok\n"));

    // Malformed references: 400 invalid_reference with the reason, wherever given.
    let digest_too_short = "busybox@sha256:1234";
    for (method, path, body, reason) in [
        ("GET", "/v1/images/Busybox".to_owned(), None, "lowercase"),
        (
            "DELETE",
            format!("/v1/images/{}", enc(digest_too_short)),
            None,
            "64 lowercase hex",
        ),
        (
            "POST",
            "/v1/containers".to_owned(),
            Some(json!({"image": "busybox:"})),
            "tag",
        ),
        (
            "POST",
            "/v1/images/tag".to_owned(),
            Some(json!({"source": "busybox", "target": "a//b"})),
            "empty path component",
        ),
        (
            "POST",
            format!(
                "/v1/images/import?name={}",
                enc(&format!("busybox@sha256:{}", "a".repeat(64)))
            ),
            None,
            "digest",
        ),
    ] {
        let (status, v) = d.api(method, &path, body).await;
        assert_eq!(status.as_u16(), 400, "{method} {path}: {v}");
        assert_eq!(v["code"], "invalid_reference", "{method} {path}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(reason),
            "{method} {path}: {v}"
        );
    }
    d.remove_container(&c).await;
    assert_check_clean(&d).await;
}
