//! Pulls through a small HTTP proxy in front of the real local registry
//! (`tests/images/start-registry.sh`): the proxy demands a bearer token (and serves
//! the token endpoint) or basic credentials, corrupts or truncates one blob, or serves
//! blobs slowly, so the daemon's auth, verification, clean-up and download sharing are
//! seen against a registry that really speaks the distribution API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_tests::{require_root, Registry, TestDaemon};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// The registry's port; fixed and unique to this file.
const PORT: u16 = 5072;

/// The busybox layer's digest (compressed blob), as pushed.
fn busybox_layer(reg: &Registry) -> String {
    reg.digests()["busybox-oci"]["latest"]["layers"][0]["digest"]
        .as_str()
        .expect("digests.json: busybox layer")
        .to_owned()
}

/// The layered image's second layer's digest (compressed blob), as pushed.
fn layered_top_layer(reg: &Registry) -> String {
    reg.digests()["layered-oci"]["latest"]["layers"][1]["digest"]
        .as_str()
        .expect("digests.json: layered top layer")
        .to_owned()
}

/// What the proxy demands and does.
#[derive(Clone, Default)]
struct Behaviour {
    /// `Some((user, password))`: registry calls need `Bearer TOKEN`, the token endpoint
    /// `/token` wants these basic credentials.
    bearer: Option<(String, String)>,
    /// `Some((user, password))`: registry calls need these basic credentials.
    basic: Option<(String, String)>,
    /// A blob served with one byte flipped.
    corrupt: Option<String>,
    /// A blob cut off half-way (the connection fails mid-body).
    truncate: Option<String>,
    /// Blobs served in small pieces with pauses, so two pulls overlap.
    slow: bool,
}

const TOKEN: &str = "tkn-7f3a9c0e5b1d";

struct ProxyState {
    behaviour: Behaviour,
    upstream: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// `GET` count per request path.
    hits: Mutex<HashMap<String, usize>>,
    /// Query strings the token endpoint saw.
    token_queries: Mutex<Vec<String>>,
}

/// The proxy: serves on a free loopback port until dropped.
struct Proxy {
    addr: std::net::SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(behaviour: Behaviour) -> Proxy {
        let state = Arc::new(ProxyState {
            behaviour,
            upstream: HttpClient::builder(TokioExecutor::new()).build_http(),
            hits: Mutex::default(),
            token_queries: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, state, task }
    }

    fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    fn blob_gets(&self, digest: &str) -> usize {
        let hits = self.state.hits.lock().unwrap();
        hits.iter()
            .filter(|(path, _)| path.ends_with(&format!("/blobs/{digest}")))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic_value(user: &str, password: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{password}").as_bytes()))
}

fn unauthorized(challenge: String) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})),
    )
        .into_response()
}

async fn handle(State(s): State<Arc<ProxyState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let b = &s.behaviour;
    if path == "/token" {
        let query = req.uri().query().unwrap_or("").to_owned();
        s.token_queries.lock().unwrap().push(query);
        let Some((user, password)) = &b.bearer else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if auth != basic_value(user, password) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return Json(json!({"token": TOKEN, "expires_in": 300})).into_response();
    }
    if b.bearer.is_some() && auth != format!("Bearer {TOKEN}") {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        return unauthorized(format!(
            "Bearer realm=\"http://{host}/token\",service=\"boxd-test\",scope=\"repository:test/busybox:pull\""
        ));
    }
    if let Some((user, password)) = &b.basic {
        if auth != basic_value(user, password) {
            return unauthorized("Basic realm=\"boxd-test\"".to_owned());
        }
    }
    if req.method() == Method::GET {
        *s.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    }

    // Forward to the registry (no credentials: it has no auth of its own).
    let mut up = hyper::Request::builder()
        .method(req.method().clone())
        .uri(format!(
            "http://127.0.0.1:{PORT}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        ));
    for name in [header::ACCEPT, header::USER_AGENT] {
        if let Some(v) = req.headers().get(&name) {
            up = up.header(name, v);
        }
    }
    let resp = match s
        .upstream
        .request(up.body(Full::new(Bytes::new())).unwrap())
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if k != header::TRANSFER_ENCODING && k != header::CONNECTION {
            headers.insert(k.clone(), v.clone());
        }
    }
    let mut body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let is = |d: &Option<String>| {
        d.as_ref()
            .is_some_and(|d| path.ends_with(&format!("/blobs/{d}")))
    };
    if status.is_success() && is(&b.corrupt) {
        // Same size, other content: only the digest check can tell.
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    if status.is_success() && is(&b.truncate) {
        // Content-Length promises the whole blob; half comes, then the connection fails.
        let half = Bytes::from(body[..body.len() / 2].to_vec());
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(half), Err(std::io::Error::other("connection lost"))];
        let mut r = Response::new(Body::from_stream(futures_util::stream::iter(pieces)));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        return r;
    }
    if status.is_success() && b.slow && path.contains("/blobs/") {
        let body = Bytes::from(body);
        let pieces: Vec<Bytes> = (0..body.len())
            .step_by(64 << 10)
            .map(|at| body.slice(at..(at + (64 << 10)).min(body.len())))
            .collect();
        let stream = futures_util::stream::iter(pieces).then(|p| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok::<_, std::io::Error>(p)
        });
        let mut r = Response::new(Body::from_stream(stream));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        return r;
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// Writes `<root>/registries.toml`.
fn write_registries(d: &TestDaemon, text: &str) {
    std::fs::write(d.root.join("registries.toml"), text).unwrap();
}

/// Pulls; returns (HTTP status, NDJSON lines or the error body).
async fn pull(d: &TestDaemon, reference: &str) -> (u16, Vec<Value>) {
    let (status, bytes) = d
        .request(
            Method::POST,
            "/v1/images/pull",
            Some("application/json"),
            Bytes::from(json!({ "reference": reference }).to_string()),
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

async fn pull_ok(d: &TestDaemon, reference: &str) -> Value {
    let (status, lines) = pull(d, reference).await;
    assert_eq!(status, 200, "pull {reference}: {lines:?}\n{}", d.log_text());
    let last = lines.last().cloned().unwrap_or_default();
    assert_eq!(last["status"], "done", "pull {reference}: {lines:?}");
    last["image"].clone()
}

fn count(dir: PathBuf) -> usize {
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .count()
}

/// Nothing of a failed pull is left: no layer, no temp file, no image.
async fn assert_nothing_stored(d: &TestDaemon) {
    assert_eq!(count(d.root.join("images/layers")), 0, "layer dirs left");
    assert_eq!(count(d.root.join("images/tmp")), 0, "temp files left");
    let images = d.api_ok("GET", "/v1/images", None, 200).await;
    assert_eq!(images, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_pull_with_bearer_token_keeps_secrets_out_of_the_log() {
    require_root!();
    let _reg = Registry::start("registry-it-images-more", PORT);
    let password = "s3cret-bearer-pw-91c2";
    let proxy = Proxy::start(Behaviour {
        bearer: Some(("puller".into(), password.into())),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let reference = proxy.reference("test/busybox");

    // No credentials configured: the token endpoint refuses, the pull is refused.
    let (status, v) = pull(&d, &reference).await;
    assert!((400..500).contains(&status), "{status} {v:?}");
    assert_eq!(v[0]["code"], "registry_unauthorized", "{v:?}");

    // A wrong password: refused the same way, and it is not logged.
    let wrong = "wrong-pw-4d8e";
    write_registries(
        &d,
        &format!(
            "[[registry]]\nhost = \"{}\"\nusername = \"puller\"\npassword = \"{wrong}\"\n",
            proxy.addr
        ),
    );
    let (status, v) = pull(&d, &reference).await;
    assert!((400..500).contains(&status), "{status} {v:?}");
    assert_eq!(v[0]["code"], "registry_unauthorized", "{v:?}");
    assert!(
        v[0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("credentials"),
        "{v:?}"
    );

    write_registries(
        &d,
        &format!(
            "[[registry]]\nhost = \"{}\"\nusername = \"puller\"\npassword = \"{password}\"\n",
            proxy.addr
        ),
    );
    let img = pull_ok(&d, &reference).await;
    assert_eq!(img["cmd"], json!(["/bin/sh"]));
    // The token was asked for this repository, for pulling.
    let queries = proxy.state.token_queries.lock().unwrap().clone();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("scope=repository%3Atest%2Fbusybox%3Apull")
                && q.contains("service=boxd-test")),
        "{queries:?}"
    );
    // A container runs from it.
    let (code, out) = d
        .run_to_end(json!({"image": img["id"]}), &["echo", "pulled"])
        .await;
    assert_eq!((code, out.as_str()), (0, "pulled\n"));

    let log = d.log_text();
    for secret in [password, wrong, TOKEN] {
        assert!(!log.contains(secret), "{secret} in the daemon log:\n{log}");
    }
    assert!(!log.contains(&b64(format!("puller:{password}").as_bytes())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_pull_with_basic_auth() {
    require_root!();
    let _reg = Registry::start("registry-it-images-more", PORT);
    let password = "basic-pw-0b7f";
    let proxy = Proxy::start(Behaviour {
        basic: Some(("alice".into(), password.into())),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let reference = proxy.reference("test/layered");
    let (status, v) = pull(&d, &reference).await;
    assert!((400..500).contains(&status), "{status} {v:?}");
    assert_eq!(v[0]["code"], "registry_unauthorized", "{v:?}");
    write_registries(
        &d,
        &format!(
            "[[registry]]\nhost = \"{}\"\nusername = \"alice\"\npassword = \"{password}\"\n",
            proxy.addr
        ),
    );
    let img = pull_ok(&d, &reference).await;
    assert_eq!(img["entrypoint"], json!(["/bin/cat"]));
    assert_eq!(count(d.root.join("images/layers")), 2);
    let log = d.log_text();
    assert!(
        !log.contains(password),
        "password in the daemon log:\n{log}"
    );
    assert!(!log.contains(&b64(format!("alice:{password}").as_bytes())));
}

/// `docker login` checks the credentials against the registry (through its token
/// endpoint); `docker pull` then sends them (`X-Registry-Auth`), and they are used
/// instead of the daemon's `registries.toml`, which has none. Secrets stay out of the
/// daemon's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_docker_cli_login_and_pull_with_credentials() {
    require_root!();
    let _reg = Registry::start("registry-it-images-more", PORT);
    let password = "cli-bearer-pw-5e1a";
    let proxy = Proxy::start(Behaviour {
        bearer: Some(("puller".into(), password.into())),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let Some(docker) = crate::docker_cli::Docker::new(&d) else {
        boxd_tests::require!(false, "the docker CLI is not installed");
        return;
    };
    let server = proxy.addr.to_string();
    let reference = proxy.reference("test/busybox");

    let out = docker.run(&["pull", &reference]).await;
    assert_ne!(
        out.code,
        Some(0),
        "a pull without credentials: {}",
        out.stdout
    );
    let out = docker
        .run(&["login", &server, "-u", "puller", "-p", "wrong-cli-pw"])
        .await;
    assert_ne!(
        out.code,
        Some(0),
        "a wrong password logs in: {}",
        out.stdout
    );
    assert!(out.stderr.contains("login to"), "{}", out.stderr);

    let out = docker
        .ok(&["login", &server, "-u", "puller", "-p", password])
        .await;
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = docker.ok(&["pull", &reference]).await;
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        docker
            .ok(&["run", "--rm", &reference, "echo", "pulled"])
            .await,
        "pulled\n"
    );
    let log = d.log_text();
    for secret in [password, "wrong-cli-pw", TOKEN] {
        assert!(!log.contains(secret), "{secret} in the daemon log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_corrupted_blob_fails_cleanly() {
    require_root!();
    let reg = Registry::start("registry-it-images-more", PORT);
    let layer = busybox_layer(&reg);
    let proxy = Proxy::start(Behaviour {
        corrupt: Some(layer.clone()),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let (status, lines) = pull(&d, &proxy.reference("test/busybox")).await;
    assert_eq!(status, 200, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "registry_error", "{lines:?}");
    let msg = last["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&layer), "{msg}");
    assert_nothing_stored(&d).await;

    // A multi-layer image whose *second* layer is corrupt: the first layer, already
    // unpacked by then, must not stay behind either.
    let proxy = Proxy::start(Behaviour {
        corrupt: Some(layered_top_layer(&reg)),
        ..Default::default()
    })
    .await;
    let (_, lines) = pull(&d, &proxy.reference("test/layered")).await;
    assert_eq!(lines.last().unwrap()["status"], "error", "{lines:?}");
    assert_nothing_stored(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_truncated_download_fails_cleanly() {
    require_root!();
    let reg = Registry::start("registry-it-images-more", PORT);
    let proxy = Proxy::start(Behaviour {
        truncate: Some(busybox_layer(&reg)),
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let (status, lines) = pull(&d, &proxy.reference("test/busybox")).await;
    assert_eq!(status, 200, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["status"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "registry_error", "{lines:?}");
    assert_nothing_stored(&d).await;

    // The same pull through an intact path works afterwards (nothing half-done blocks it).
    let good = Proxy::start(Behaviour::default()).await;
    pull_ok(&d, &good.reference("test/busybox")).await;
    assert_eq!(count(d.root.join("images/layers")), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_concurrent_pulls_share_one_download() {
    require_root!();
    let reg = Registry::start("registry-it-images-more", PORT);
    let layer = busybox_layer(&reg);
    let proxy = Proxy::start(Behaviour {
        slow: true,
        ..Default::default()
    })
    .await;
    let d = TestDaemon::start().await;
    let a = proxy.reference("test/busybox:latest");
    let b = proxy.reference("test/busybox:v2s2");
    let (one, two) = tokio::join!(pull(&d, &a), pull(&d, &b));
    for (status, lines) in [&one, &two] {
        assert_eq!(*status, 200, "{lines:?}");
        assert_eq!(lines.last().unwrap()["status"], "done", "{lines:?}");
    }
    assert_eq!(
        one.1.last().unwrap()["image"]["id"],
        two.1.last().unwrap()["image"]["id"]
    );
    // One of them waited for the other's download instead of fetching it again.
    assert_eq!(proxy.blob_gets(&layer), 1, "{one:?}\n{two:?}");
    assert_eq!(count(d.root.join("images/layers")), 1);
    assert_eq!(count(d.root.join("images/tmp")), 0);
    let images = d.api_ok("GET", "/v1/images", None, 200).await;
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    assert_eq!(images[0]["tags"].as_array().unwrap().len(), 2, "{images}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_failed_load_stores_nothing() {
    require_root!();
    // The layered docker archive with its second layer altered (same size, other
    // bytes): its diff_id no longer matches the config, after the first layer is in.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    std::fs::create_dir(&dir).unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-xf")
        .arg(boxd_tests::fixtures().join("layered-docker-archive.tar"))
        .status()
        .unwrap();
    assert!(status.success());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let top = dir.join(manifest[0]["Layers"][1].as_str().unwrap());
    let mut bytes = std::fs::read(&top).unwrap();
    let at = bytes
        .windows(18)
        .position(|w| w == b"hello from layer 2")
        .expect("layer 2 holds hello.txt");
    bytes[at] = b'j';
    std::fs::set_permissions(&top, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&top, &bytes).unwrap();
    let archive = tmp.path().join("bad.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());

    let d = TestDaemon::start().await;
    let (status, v) = d.upload("/v1/images/load", &archive).await;
    assert_eq!(status.as_u16(), 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("diff_id"), "{v}");
    assert_nothing_stored(&d).await;
}

/// `boxctl run` pulls an image the daemon does not have (`--pull missing`, the
/// default, as `docker run`); `--pull never` refuses with a hint; `--pull always` pulls
/// a stored one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_boxctl_run_pulls_a_missing_image() {
    require_root!();
    let _reg = Registry::start("registry-it-images-more", PORT);
    let d = TestDaemon::start().await;
    let image = format!("127.0.0.1:{PORT}/test/busybox:latest");
    let (code, out, err) =
        boxd_tests::boxctl(&d, &["run", "--pull", "never", "--rm", &image, "true"]).await;
    assert_eq!(code, Some(125), "{out} {err}");
    assert!(err.contains("--pull never"), "{err}");
    let (code, out, err) =
        boxd_tests::boxctl(&d, &["run", "--rm", &image, "echo", "pulled-and-ran"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, "pulled-and-ran\n",
        "stdout is the container's only: {err}"
    );
    assert!(err.contains("Unable to find image"), "{err}");
    // Stored now: no second pull.
    let (code, out, err) = boxd_tests::boxctl(&d, &["run", "--rm", &image, "true"]).await;
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(!err.contains("Unable to find image"), "{err}");
    let (code, _, err) = boxd_tests::boxctl(&d, &["create", "--pull", "always", &image]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("Status: downloaded"), "{err}");
    // A name no registry has: the pull's own error.
    let (code, _, err) = boxd_tests::boxctl(
        &d,
        &[
            "run",
            "--rm",
            &format!("127.0.0.1:{PORT}/test/nosuch"),
            "true",
        ],
    )
    .await;
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("failed to pull"), "{err}");
}
