//! The client against a fake daemon on a real Unix socket: what goes on the wire (method,
//! path, query, headers, body) and how answers, error bodies and streams decode.

mod support;

use std::time::Duration;

use boxd_client::models::{
    CreateContainer, LogStream, Mount, NetworkCreate, Resources, WaitResponse,
};
use boxd_client::{Client, Error, EventsOptions, LogsOptions};
use futures_util::StreamExt;
use serde_json::json;
use support::{FakeDaemon, Reply};
use tokio::sync::mpsc;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn container_json(name: &str) -> serde_json::Value {
    json!({
        "id": ID, "name": name, "image": "busybox", "image_id": "sha256:aa",
        "state": "exited", "pid": null, "exit_code": 0, "oom_killed": false,
        "created_at": "2024-05-06T10:00:00Z", "started_at": null, "finished_at": null,
        "config": {"cmd": ["true"], "env": [], "working_dir": "/", "hostname": "h",
                   "user": "", "mounts": []},
        "resources": {},
        "some_future_field": 1
    })
}

fn image_json() -> serde_json::Value {
    json!({"id": "sha256:aa", "tags": ["busybox:latest"], "size": 42,
           "created_at": "2024-05-06T10:00:00Z"})
}

#[tokio::test]
async fn simple_routes_send_the_right_requests_and_decode_answers() {
    let daemon = FakeDaemon::start(|req| match (req.method.as_str(), req.path()) {
        ("GET", "/v1/version") => Reply::Json(
            200,
            json!({"version": "0.1.0", "api_version": "v1", "cgroup_version": "v1",
                   "kernel": "6.18"})
            .to_string(),
        ),
        ("GET", "/v1/containers") => Reply::Json(200, json!([container_json("web")]).to_string()),
        ("GET", p) if p.starts_with("/v1/containers/") => {
            Reply::Json(200, container_json("web").to_string())
        }
        ("POST", p) if p.ends_with("/wait") => Reply::Json(
            200,
            json!({"exit_code": 137, "oom_killed": true}).to_string(),
        ),
        ("GET", "/v1/images") => Reply::Json(200, json!([image_json()]).to_string()),
        ("GET", _) => Reply::Json(200, image_json().to_string()),
        _ => Reply::Empty(204),
    });
    let client = Client::connect(daemon.socket());

    let version = client.version().await.unwrap();
    assert_eq!(version.kernel, "6.18");
    let list = client.containers(true).await.unwrap();
    assert_eq!(list[0].name, "web");
    client.containers(false).await.unwrap();
    assert_eq!(client.container("web").await.unwrap().id, ID);
    client.start("web").await.unwrap();
    client.stop("web", Some(5)).await.unwrap();
    client.stop("web", None).await.unwrap();
    client.kill("web", Some("SIGTERM")).await.unwrap();
    client.kill("web", None).await.unwrap();
    assert_eq!(
        client.wait("web").await.unwrap(),
        WaitResponse {
            exit_code: 137,
            oom_killed: true
        }
    );
    client.remove_container("web", true).await.unwrap();
    client.remove_container("web", false).await.unwrap();
    assert_eq!(client.images().await.unwrap()[0].size, 42);
    assert_eq!(
        client.image("library/busybox:1.36").await.unwrap().tags,
        ["busybox:latest"]
    );
    client.image("a b#c").await.unwrap();
    client.remove_image("busybox:latest", false).await.unwrap();
    client.remove_image("busybox:latest", true).await.unwrap();

    assert_eq!(
        daemon.lines(),
        [
            "GET /v1/version",
            "GET /v1/containers?all=true",
            "GET /v1/containers?all=false",
            "GET /v1/containers/web",
            "POST /v1/containers/web/start",
            "POST /v1/containers/web/stop?timeout=5",
            "POST /v1/containers/web/stop",
            "POST /v1/containers/web/kill?signal=SIGTERM",
            "POST /v1/containers/web/kill",
            "POST /v1/containers/web/wait",
            "DELETE /v1/containers/web?force=true",
            "DELETE /v1/containers/web?force=false",
            "GET /v1/images",
            "GET /v1/images/library/busybox:1.36",
            "GET /v1/images/a%20b%23c",
            "DELETE /v1/images/busybox:latest?force=false",
            "DELETE /v1/images/busybox:latest?force=true",
        ]
    );
    let first = &daemon.requests()[0];
    assert_eq!(first.header("host"), Some("boxd"));
    assert!(first.body.is_empty());
}

#[tokio::test]
async fn create_sends_the_spec_as_json() {
    let daemon = FakeDaemon::start(|_| {
        Reply::Json(
            201,
            json!({"id": ID, "name": "web", "warnings": ["swap ignored"]}).to_string(),
        )
    });
    let client = Client::connect(daemon.socket());
    let spec = CreateContainer {
        image: "busybox".into(),
        name: Some("web".into()),
        cmd: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
        env: vec!["A=1".into()],
        mounts: vec![Mount {
            kind: None,
            source: "/data".into(),
            target: "/mnt".into(),
            read_only: true,
        }],
        resources: Resources {
            memory_bytes: Some(64 << 20),
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = client.create_container(&spec).await.unwrap();
    assert_eq!(created.id, ID);
    assert_eq!(created.warnings, ["swap ignored"]);

    let req = &daemon.requests()[0];
    assert_eq!(req.line(), "POST /v1/containers");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let sent: CreateContainer = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent, spec);
}

fn network_json(name: &str) -> serde_json::Value {
    json!({
        "id": ID, "name": name, "driver": "bridge", "bridge": "boxd1",
        "subnet": "10.88.1.0/24", "gateway": "10.88.1.1", "internal": false,
        "created_at": "2024-05-06T10:00:00Z",
        "containers": [{"id": ID, "network": name, "ifname": "eth0",
                        "address": "10.88.1.2/24"}]
    })
}

#[tokio::test]
async fn network_routes_send_the_right_requests_and_decode_answers() {
    let daemon = FakeDaemon::start(|req| match (req.method.as_str(), req.path()) {
        ("POST", "/v1/networks") => Reply::Json(201, network_json("web").to_string()),
        ("GET", "/v1/networks") => Reply::Json(200, json!([network_json("web")]).to_string()),
        ("GET", "/v1/networks/nope") => Reply::error(404, "not_found", "no such network: nope"),
        ("GET", _) => Reply::Json(200, network_json("web").to_string()),
        ("DELETE", "/v1/networks/busy") => {
            Reply::error(409, "network_in_use", "network busy is in use")
        }
        _ => Reply::Empty(204),
    });
    let client = Client::connect(daemon.socket());
    let spec = NetworkCreate {
        name: "web".into(),
        subnet: Some("10.88.1.0/24".into()),
        internal: true,
        labels: [("tier".to_owned(), "front".to_owned())].into(),
        ..Default::default()
    };
    let created = client.create_network(&spec).await.unwrap();
    assert_eq!((created.id.as_str(), created.name.as_str()), (ID, "web"));
    let list = client.networks().await.unwrap();
    assert_eq!(list[0].subnet, "10.88.1.0/24");
    let one = client.network("web").await.unwrap();
    assert_eq!(
        one.containers[0].endpoint.address.as_deref(),
        Some("10.88.1.2/24")
    );
    client.network("a b").await.unwrap();
    assert!(client.network("nope").await.unwrap_err().is_not_found());
    client.remove_network("web").await.unwrap();
    let err = client.remove_network("busy").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("network_in_use"))
    );

    assert_eq!(
        daemon.lines(),
        [
            "POST /v1/networks",
            "GET /v1/networks",
            "GET /v1/networks/web",
            "GET /v1/networks/a%20b",
            "GET /v1/networks/nope",
            "DELETE /v1/networks/web",
            "DELETE /v1/networks/busy",
        ]
    );
    let req = &daemon.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/json"));
    let sent: NetworkCreate = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent, spec);
}

#[tokio::test]
async fn error_bodies_become_api_errors() {
    let daemon = FakeDaemon::start(|req| match req.path() {
        "/v1/containers/nope" => Reply::error(404, "not_found", "no such container: nope"),
        "/v1/images/busybox" => Reply::error(409, "image_in_use", "image busybox is in use"),
        _ => Reply::Raw(500, "text/plain", b"boom\n".to_vec()),
    });
    let client = Client::connect(daemon.socket());

    let err = client.container("nope").await.unwrap_err();
    match &err {
        Error::Api {
            status,
            code,
            message,
        } => {
            assert_eq!(*status, 404);
            assert_eq!(code, "not_found");
            assert_eq!(message, "no such container: nope");
        }
        other => panic!("expected an api error, got {other:?}"),
    }
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "no such container: nope (404 not_found)");

    let err = client.remove_image("busybox", false).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("image_in_use"))
    );

    let err = client.info().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(500), Some("unknown")));
    assert!(err.to_string().contains("boom"), "{err}");
}

#[tokio::test]
async fn an_answer_that_is_not_the_expected_json_is_a_decode_error() {
    let daemon = FakeDaemon::start(|_| Reply::Json(200, "{\"version\": 1}".into()));
    let client = Client::connect(daemon.socket());
    assert!(matches!(client.version().await, Err(Error::Decode(_))));
}

#[tokio::test]
async fn a_missing_socket_is_a_connect_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let err = Client::connect(&path).version().await.unwrap_err();
    match &err {
        Error::Connect { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("running"), "{message}");
}

#[tokio::test]
async fn import_streams_a_file_with_its_length() {
    let daemon = FakeDaemon::start(|_| Reply::Json(201, image_json().to_string()));
    let client = Client::connect(daemon.socket());
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("rootfs.tar");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&tarball, &data).unwrap();

    let image = client
        .import_image("busybox:latest", &tarball)
        .await
        .unwrap();
    assert_eq!(image.id, "sha256:aa");

    let req = &daemon.requests()[0];
    assert_eq!(req.line(), "POST /v1/images/import?name=busybox%3Alatest");
    assert_eq!(req.header("content-type"), Some("application/x-tar"));
    assert_eq!(req.header("content-length"), Some("300000"));
    assert!(req.body == data, "the body is the file's bytes");

    let err = client
        .import_image("x", dir.path().join("missing.tar"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OpenFile { .. }), "{err:?}");
}

#[tokio::test]
async fn import_from_a_reader_is_sent_chunked() {
    let daemon = FakeDaemon::start(|_| Reply::Json(201, image_json().to_string()));
    let client = Client::connect(daemon.socket());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    client
        .import_image_stream("bb", std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    let req = &daemon.requests()[0];
    assert_eq!(req.header("transfer-encoding"), Some("chunked"));
    assert!(
        req.body == data,
        "the de-chunked body is the reader's bytes"
    );
}

fn entry(stream: &str, line: &str) -> String {
    json!({"time": "2024-05-06T10:00:00Z", "stream": stream, "line": line}).to_string() + "\n"
}

#[tokio::test]
async fn logs_decode_each_entry_as_soon_as_its_line_is_complete() {
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let rx = std::sync::Mutex::new(Some(rx));
    let daemon = FakeDaemon::start(move |_| Reply::Stream(rx.lock().unwrap().take().unwrap()));
    let client = Client::connect(daemon.socket());

    let options = LogsOptions {
        follow: true,
        tail: Some(10),
        since: Some("2024-05-06T10:00:00Z".into()),
        ..Default::default()
    };
    let mut logs = client.logs("web", options).await.unwrap();

    let first = entry("stdout", "hello\n");
    let second = entry("stderr", "oops\n");
    // The first entry, then half of the second: the first must come out now, while
    // the stream is still open.
    let (a, b) = second.split_at(second.len() / 2);
    tx.send(format!("{first}{a}").into_bytes()).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), logs.next())
        .await
        .expect("entry decoded before the stream ended")
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.stream, got.line.as_str()),
        (LogStream::Stdout, "hello\n")
    );

    tx.send(b.as_bytes().to_vec()).unwrap();
    let got = logs.next().await.unwrap().unwrap();
    assert_eq!(
        (got.stream, got.line.as_str()),
        (LogStream::Stderr, "oops\n")
    );

    // A blank keep-alive line is skipped; a last line without its newline still counts.
    tx.send(b"\n".to_vec()).unwrap();
    tx.send(entry("stdout", "bye").trim_end().as_bytes().to_vec())
        .unwrap();
    drop(tx);
    let got = logs.next().await.unwrap().unwrap();
    assert_eq!(got.line, "bye");
    assert!(logs.next().await.is_none());

    assert_eq!(
        daemon.lines(),
        [
            "GET /v1/containers/web/logs?format=ndjson&follow=true&stdout=true&stderr=true\
          &tail=10&since=2024-05-06T10%3A00%3A00Z"
        ]
    );
}

#[tokio::test]
async fn logs_of_a_missing_container_fail_before_streaming() {
    let daemon = FakeDaemon::start(|_| Reply::error(404, "not_found", "no such container"));
    let client = Client::connect(daemon.socket());
    let err = client
        .logs("nope", LogsOptions::default())
        .await
        .err()
        .expect("an error");
    assert!(err.is_not_found());
}

#[tokio::test]
async fn events_stream_in_pieces_and_bad_lines_do_not_end_it() {
    let daemon = FakeDaemon::start(|_| {
        let event = |seq: i64, action: &str| {
            json!({"seq": seq, "time": "2024-05-06T10:00:00Z", "type": "container",
                   "action": action, "id": ID, "attributes": {"name": "web"}})
            .to_string()
        };
        let all = format!("{}\nnot json\n{}\n", event(1, "create"), event(2, "start"));
        // Cut every 7 bytes, so every line straddles chunks.
        let pieces: Vec<String> = all
            .as_bytes()
            .chunks(7)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        Reply::pieces(&pieces.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let client = Client::connect(daemon.socket());
    let options = EventsOptions {
        since: Some("0".into()),
        until: Some("2".into()),
        container: Some("web".into()),
        ..Default::default()
    };
    let items: Vec<_> = client.events(options).await.unwrap().collect().await;
    assert_eq!(items.len(), 3);
    let first = items[0].as_ref().unwrap();
    assert_eq!(
        (first.seq, first.kind.as_str(), first.action.as_str()),
        (1, "container", "create")
    );
    assert_eq!(first.attributes["name"], "web");
    assert!(matches!(items[1], Err(Error::Decode(_))));
    assert_eq!(items[2].as_ref().unwrap().action, "start");
    assert_eq!(
        daemon.lines(),
        ["GET /v1/events?since=0&until=2&container=web"]
    );
}

#[tokio::test]
async fn an_upload_refused_before_it_is_read_still_reports_the_daemons_error() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // A daemon that answers 413 after the head, without reading the body, and hangs up.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("boxd.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).await.unwrap() > 2 {
            line.clear();
        }
        let body = r#"{"code":"too_large","message":"image too large"}"#;
        let head = format!(
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let tarball = dir.path().join("big.tar");
    std::fs::write(&tarball, vec![0u8; 8 << 20]).unwrap();
    let err = Client::connect(&socket)
        .import_image("big", &tarball)
        .await
        .unwrap_err();
    server.await.unwrap();
    assert_eq!(
        (err.status(), err.code()),
        (Some(413), Some("too_large")),
        "{err:?}"
    );
}
