//! Exec into a running container: start over an upgraded connection, inspect, resize.
//!
//! [`Client::exec`] sends `POST /v1/containers/{id}/exec` with `Connection: Upgrade`
//! and `Upgrade: tcp`; after `101 Switching Protocols` the connection is a raw byte
//! stream both ways ([`ExecSession::stream`]): what is written is the process's stdin
//! (shut down the write side for EOF), what is read is its output, framed as Docker
//! frames it without a terminal (see [`read_frame`]) and raw with one.

use hyper::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::models::{ExecCreate, ExecInspect, EXEC_ID_HEADER};
use crate::{json_request, Client, Error, Result};

/// The raw stream of an upgraded connection.
pub type RawStream = TokioIo<hyper::upgrade::Upgraded>;

/// A started exec.
pub struct ExecSession {
    /// The exec's id, for [`Client::exec_inspect`] and [`Client::exec_resize`].
    pub id: String,
    /// The raw stream: stdin out, output in.
    pub stream: RawStream,
}

/// Which stream a frame of non-terminal output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Read one Docker-framed chunk (stream byte, three zero bytes, big-endian u32 length,
/// bytes); `None` at the end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(OutputStream, Vec<u8>)>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::Io(e)),
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let stream = if h[0] == 2 {
        OutputStream::Stderr
    } else {
        OutputStream::Stdout
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(Error::Io)?;
    Ok(Some((stream, body)))
}

fn exec_path(id: &str, suffix: &str) -> String {
    format!(
        "/v1/exec/{}{suffix}",
        percent_encoding::utf8_percent_encode(id, crate::SEGMENT)
    )
}

impl Client {
    /// `POST /v1/containers/{id}/exec` over an upgraded connection (409 `not_running`,
    /// 400 `exec_failed` for a command that cannot run).
    pub async fn exec(&self, container: &str, spec: &ExecCreate) -> Result<ExecSession> {
        let req = json_request(
            Method::POST,
            crate::container_path(container, "/exec"),
            spec,
        )?;
        let resp = self.send_upgrade(req).await?;
        let id = resp
            .headers()
            .get(EXEC_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let upgraded = hyper::upgrade::on(resp).await.map_err(Error::Http)?;
        Ok(ExecSession {
            id,
            stream: TokioIo::new(upgraded),
        })
    }

    /// `GET /v1/exec/{exec_id}`: state and exit code.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect> {
        self.get_json(exec_path(exec_id, "")).await
    }

    /// `POST /v1/exec/{exec_id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        self.no_content(
            Method::POST,
            exec_path(exec_id, &format!("/resize?h={rows}&w={cols}")),
        )
        .await
    }
}
