//! Exec handlers, and the interactive stream shared by exec and attach.
//!
//! `POST /v1/containers/{id}/exec` starts the process first (so a bad command is an
//! ordinary 400/409 answer), then either
//! - upgrades the connection when asked (`Connection: Upgrade`, `Upgrade: tcp` ->
//!   `101 Switching Protocols`): from then on the socket carries raw bytes both ways,
//!   the client's as the process's stdin (a half-close is stdin EOF; ctrl-p ctrl-q
//!   detaches), the process's output back; or
//! - answers 200 with the output as the body.
//!
//! Output without a terminal is framed as Docker frames it, so stdout and stderr stay
//! apart: a stream byte (1 stdout, 2 stderr), three zero bytes, the big-endian u32
//! length, the bytes. With a terminal it is the raw terminal output. The exec's id is
//! in the `boxd-exec-id` header of both answers; `GET /v1/exec/{exec_id}` then gives
//! its exit code.

use crate::api::ApiQuery;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{ExecCreate, ExecInspect, EXEC_ID_HEADER};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{ApiError, ApiJson, AppState};
use crate::runtime::exec::{ExecInput, ExecOutput};
use crate::runtime::RuntimeError;

/// Content type of framed (non-terminal) output, as Docker names it.
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
/// Content type of raw terminal output.
pub const RAW: &str = "application/vnd.docker.raw-stream";

/// ctrl-p then ctrl-q: Docker's default detach keys.
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Whether the request asks to upgrade the connection to a raw stream.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let has = |name, word: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(word)))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "tcp")
}

/// Finds the detach sequence in the client's bytes; a ctrl-p at the end of a read is
/// held back until the next byte says whether it starts the sequence.
#[derive(Debug, Default)]
pub(crate) struct DetachScanner {
    held: bool,
}

impl DetachScanner {
    /// The bytes to forward, and whether the client detached (then the bytes before the
    /// sequence are still forwarded, the rest dropped).
    pub(crate) fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len() + 1);
        for &b in input {
            if self.held {
                self.held = false;
                if b == DETACH_KEYS[1] {
                    return (out, true);
                }
                out.push(DETACH_KEYS[0]);
            }
            if b == DETACH_KEYS[0] {
                self.held = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Serves one upgraded connection: client bytes -> `input` (if any), `output` ->
/// client, until the output ends (the process ended) or the client detaches. Returns
/// whether the client detached. `before_close` is awaited after the output ended and
/// before the connection is closed (an exec's exit is then recorded, and a client that
/// asks for it on seeing the close finds it).
pub(crate) async fn serve_stream<IO>(
    io: IO,
    input: Option<mpsc::Sender<ExecInput>>,
    mut output: mpsc::Receiver<ExecOutput>,
    framed: bool,
    before_close: impl std::future::Future<Output = ()> + Send,
) -> bool
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut scanner = DetachScanner::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    // Half-close: stdin EOF, output keeps flowing.
                    if let Some(tx) = &input {
                        let _ = tx.send(ExecInput::Eof).await;
                    }
                    return;
                }
                Ok(n) => n,
            };
            let Some(tx) = &input else { continue };
            let (bytes, detached) = scanner.feed(&buf[..n]);
            if !bytes.is_empty() && tx.send(ExecInput::Stdin(Bytes::from(bytes))).await.is_err() {
                return;
            }
            if detached {
                let _ = detach_tx.send(());
                return;
            }
        }
    });
    let mut reader_done = false;
    let detached = loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Some(chunk) => {
                    if wr.write_all(&chunk.encode(framed)).await.is_err() {
                        break false;
                    }
                }
                None => break false,
            },
            // The reader ending without a detach (stdin EOF) closes the channel:
            // stop polling it, the output goes on.
            got = &mut detach_rx, if !reader_done => match got {
                Ok(()) => break true,
                Err(_) => reader_done = true,
            },
        }
    };
    let _ = wr.flush().await;
    if !detached {
        before_close.await;
    }
    let _ = wr.shutdown().await;
    reader.abort();
    detached
}

/// `POST /v1/containers/{id}/exec`.
pub(super) async fn create(
    State(s): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrade = if wants_upgrade(req.headers()) {
        req.extensions_mut().remove::<OnUpgrade>()
    } else {
        None
    };
    let ApiJson(body) = ApiJson::<ExecCreate>::from_request(req, &s).await?;
    if body.stdin && upgrade.is_none() {
        return Err(RuntimeError::ExecMode(
            "stdin needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)".into(),
        )
        .into());
    }
    let stdin = body.stdin;
    let handle = s.runtime.exec(&id, body).await?;
    let framed = !handle.tty;
    let exec_id = HeaderValue::from_str(&handle.id).expect("hex id");
    let content_type = if framed { MULTIPLEXED } else { RAW };
    match upgrade {
        Some(on_upgrade) => {
            let input = stdin.then_some(handle.input);
            let (output, ended) = (handle.output, handle.ended);
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        let ended = async {
                            let _ = ended.await;
                        };
                        serve_stream(TokioIo::new(upgraded), input, output, framed, ended).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
                }
            });
            Ok((
                StatusCode::SWITCHING_PROTOCOLS,
                [
                    (header::CONNECTION, HeaderValue::from_static("Upgrade")),
                    (header::UPGRADE, HeaderValue::from_static("tcp")),
                    (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    (header::HeaderName::from_static(EXEC_ID_HEADER), exec_id),
                ],
            )
                .into_response())
        }
        None => {
            drop(handle.input);
            let stream = futures_util::stream::unfold(handle.output, move |mut rx| async move {
                let chunk = rx.recv().await?;
                Some((Ok::<_, std::io::Error>(chunk.encode(framed)), rx))
            });
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    (header::HeaderName::from_static(EXEC_ID_HEADER), exec_id),
                ],
                Body::from_stream(stream),
            )
                .into_response())
        }
    }
}

/// `GET /v1/exec/{exec_id}`.
pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(exec_id): Path<String>,
) -> Result<Json<ExecInspect>, ApiError> {
    Ok(Json(s.runtime.exec_inspect(&exec_id)?))
}

#[derive(Debug, Deserialize)]
pub(super) struct ResizeQuery {
    h: Option<String>,
    w: Option<String>,
}

/// `h` and `w` of a resize query, each 1..=65535.
pub(super) fn parse_size(q: &ResizeQuery) -> Result<(u16, u16), ApiError> {
    let one = |name: &str, v: &Option<String>| {
        v.as_deref()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::BadRequest(format!("{name} must be a number from 1 to 65535")))
    };
    Ok((one("h", &q.h)?, one("w", &q.w)?))
}

/// `POST /v1/exec/{exec_id}/resize?h=&w=`.
pub(super) async fn resize(
    State(s): State<AppState>,
    Path(exec_id): Path<String>,
    ApiQuery(q): ApiQuery<ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    let (h, w) = parse_size(&q)?;
    s.runtime.exec_resize(&exec_id, h, w).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_frame_header() {
        assert_eq!(
            crate::runtime::exec::frame_header(2, 0x0102),
            [2, 0, 0, 0, 0, 0, 1, 2]
        );
        let b = ExecOutput::Stdout(Bytes::from_static(b"hi")).encode(true);
        assert_eq!(&b[..], &[1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        let b = ExecOutput::Stderr(Bytes::from_static(b"hi")).encode(false);
        assert_eq!(&b[..], b"hi");
    }

    #[test]
    fn detach_keys_are_found_across_reads() {
        let mut s = DetachScanner::default();
        assert_eq!(s.feed(b"ab"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c\x10"), (b"c".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut s = DetachScanner::default();
        assert_eq!(s.feed(b"x\x10y"), (b"x\x10y".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(!wants_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        assert!(wants_upgrade(&h));
    }
}
