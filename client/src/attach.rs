//! Attach to a container's stdio, and resize its terminal.
//!
//! [`Client::attach`] sends `POST /v1/containers/{id}/attach` with `Connection:
//! Upgrade` and `Upgrade: tcp`; after `101 Switching Protocols` the connection is a raw
//! byte stream both ways, as for exec ([`crate::exec::RawStream`]): what is written is
//! the app's stdin (shut down the write side to end it), what is read is its output,
//! framed without a terminal (see [`crate::exec::read_frame`]) and raw with one.
//! Attaching to a `created` container waits for its start, so `run -it` can attach
//! first and miss nothing.

use hyper::Method;
use hyper_util::rt::TokioIo;

use crate::exec::RawStream;
use crate::{request, Client, Error, Result};

/// What to attach to (Docker's query flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Send what is written to the app's stdin.
    pub stdin: bool,
    /// Receive the app's stdout (a terminal's whole output).
    pub stdout: bool,
    /// Receive the app's stderr.
    pub stderr: bool,
    /// Replay the log first.
    pub logs: bool,
}

impl AttachOptions {
    fn query(&self) -> String {
        let b = |v: bool| if v { "1" } else { "0" };
        format!(
            "?stream=1&stdin={}&stdout={}&stderr={}&logs={}",
            b(self.stdin),
            b(self.stdout),
            b(self.stderr),
            b(self.logs)
        )
    }
}

impl Client {
    /// `POST /v1/containers/{id}/attach?stream=1&...` over an upgraded connection
    /// (409 `not_running` for a stopped container, 409 `stdin_in_use`).
    pub async fn attach(&self, container: &str, opts: &AttachOptions) -> Result<RawStream> {
        let req = request(
            Method::POST,
            crate::container_path(container, &format!("/attach{}", opts.query())),
            crate::empty(),
        )?;
        let resp = self.send_upgrade(req).await?;
        let upgraded = hyper::upgrade::on(resp).await.map_err(Error::Http)?;
        Ok(TokioIo::new(upgraded))
    }

    /// `POST /v1/containers/{id}/resize?h=&w=`.
    pub async fn resize_container(&self, container: &str, rows: u16, cols: u16) -> Result<()> {
        self.no_content(
            Method::POST,
            crate::container_path(container, &format!("/resize?h={rows}&w={cols}")),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_every_flag() {
        let q = AttachOptions {
            stdin: true,
            stdout: true,
            ..Default::default()
        }
        .query();
        assert_eq!(q, "?stream=1&stdin=1&stdout=1&stderr=0&logs=0");
    }
}
