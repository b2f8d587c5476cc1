//! A fake boxd: a hand-rolled HTTP/1.1 responder on a temporary Unix socket.
//!
//! It records every request (method, target, headers, de-chunked body) and answers with
//! what the test's handler says, one request per connection, as the client makes them.
//! Streamed answers go out with chunked encoding, each piece flushed when the test hands
//! it over, so a test can check that the client decodes before the stream ends.

#![allow(dead_code)] // each test binary uses a different part of it

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// One request as the fake daemon received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// `METHOD target`, for compact assertions.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.target)
    }
}

/// What the fake daemon answers.
pub enum Reply {
    /// A JSON body with a status.
    Json(u16, String),
    /// A status without a body (204).
    Empty(u16),
    /// A raw body with its content type.
    Raw(u16, &'static str, Vec<u8>),
    /// A chunked NDJSON answer whose pieces come from the channel; it ends when the
    /// sender is dropped.
    Stream(mpsc::UnboundedReceiver<Vec<u8>>),
}

impl Reply {
    /// A JSON error body.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::Json(
            status,
            serde_json::json!({ "code": code, "message": message }).to_string(),
        )
    }

    /// A complete stream known up front, sent in the given pieces.
    pub fn pieces(pieces: &[&str]) -> Reply {
        let (tx, rx) = mpsc::unbounded_channel();
        for piece in pieces {
            tx.send(piece.as_bytes().to_vec()).unwrap();
        }
        Reply::Stream(rx)
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// The fake daemon; it stops when dropped.
pub struct FakeDaemon {
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeDaemon {
    /// Listens on `<tempdir>/boxd.sock`, answering with `handler`.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeDaemon {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("boxd.sock")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &*handler, &log).await;
                });
            }
        });
        FakeDaemon {
            dir,
            requests,
            task,
        }
    }

    /// The socket path.
    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("boxd.sock")
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// `METHOD target` of every request so far.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: UnixStream,
    handler: &Handler,
    log: &Mutex<Vec<Recorded>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let request = read_request(&mut reader).await?;
    log.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let stream = reader.get_mut();
    match reply {
        Reply::Json(status, body) => {
            write_full(stream, status, "application/json", body.as_bytes()).await?
        }
        Reply::Raw(status, content_type, body) => {
            write_full(stream, status, content_type, &body).await?
        }
        Reply::Empty(status) => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            stream.write_all(head.as_bytes()).await?;
        }
        Reply::Stream(mut pieces) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\
                        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await?;
            while let Some(piece) = pieces.recv().await {
                if piece.is_empty() {
                    continue;
                }
                stream
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                stream.write_all(&piece).await?;
                stream.write_all(b"\r\n").await?;
                stream.flush().await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}

async fn write_full(
    stream: &mut UnixStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    }
}

async fn read_request(reader: &mut BufReader<UnixStream>) -> std::io::Result<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    line.clear();
                    reader.read_line(&mut line).await?;
                    if line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).await?;
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().unwrap_or(0);
        body.resize(len, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// Image answers shared by the client's and boxctl's image tests: one single-layer
/// busybox, as a registry pull reports it.
pub mod images {
    use serde_json::json;

    use super::Reply;

    pub const LAYER: &str =
        "sha256:a738b7abe221eae8e2c685fc4043c986d6290e66c48b09395a4a059f999f149a";
    pub const MANIFEST: &str =
        "sha256:375633bb4c040158b619c9d54e1f5c0c53455a83d869fad6f234392497638613";
    pub const CONFIG: &str =
        "sha256:a6cedfb62cda6f4b7c2c8bc8c645a3b4b98e40049dff9b996810ef918ed66864";

    pub fn image_json(tags: &[&str]) -> serde_json::Value {
        json!({"id": CONFIG, "tags": tags, "size": 1_088_172,
               "created_at": "2024-01-01T00:00:00Z",
               "repo_digests": [format!("127.0.0.1:5071/test/busybox@{MANIFEST}")]})
    }

    pub fn line(v: serde_json::Value) -> String {
        v.to_string() + "\n"
    }

    /// A pull answer: resolved, a download in three pieces, unpack, done.
    pub fn pull_stream() -> Reply {
        let total = 1_088_172;
        Reply::pieces(&[
            &line(json!({"status": "resolved", "id": MANIFEST, "total": total})),
            &line(json!({"status": "downloading", "id": LAYER, "current": 1, "total": total})),
            // A line split across two chunks.
            &line(
                json!({"status": "downloading", "id": LAYER, "current": 600_000, "total": total}),
            )[..20],
            &line(
                json!({"status": "downloading", "id": LAYER, "current": 600_000, "total": total}),
            )[20..],
            &line(json!({"status": "downloading", "id": LAYER, "current": total, "total": total})),
            &line(json!({"status": "extracting", "id": LAYER})),
            &line(json!({"status": "layer_done", "id": LAYER})),
            &line(
                json!({"status": "done", "id": CONFIG, "image": image_json(&["127.0.0.1:5071/test/busybox:latest"])}),
            ),
        ])
    }
}
