//! `POST /v1/containers/{id}/attach` and `POST /v1/containers/{id}/resize`.
//!
//! Attach takes Docker's query flags (`stream`, `stdin`, `stdout`, `stderr`, `logs`,
//! each `1`/`true` or `0`/`false`, all false by default) and, like exec, either
//! upgrades the connection (`Connection: Upgrade`, `Upgrade: tcp` -> `101`; required
//! for `stdin`) or answers 200 with the output as the body. Output is framed as Docker
//! frames it unless the container has a terminal; ctrl-p ctrl-q detaches and leaves
//! the container running; a half-close of the client's side is the end of its stdin
//! (the app's stdin closes only when the container has `stdin_once`).

use crate::api::ApiQuery;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::exec::{parse_size, serve_stream, wants_upgrade, ResizeQuery, MULTIPLEXED, RAW};
use super::{ApiError, AppState};
use crate::runtime::attach::AttachOptions;
use crate::runtime::RuntimeError;

#[derive(Debug, Default, Deserialize)]
pub(super) struct AttachQuery {
    stream: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
}

fn flag(name: &str, v: &Option<String>) -> Result<bool, ApiError> {
    match v.as_deref() {
        None => Ok(false),
        Some("1" | "true" | "True") => Ok(true),
        Some("0" | "false" | "False" | "") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

fn options(q: &AttachQuery) -> Result<AttachOptions, ApiError> {
    Ok(AttachOptions {
        stream: flag("stream", &q.stream)?,
        stdin: flag("stdin", &q.stdin)?,
        stdout: flag("stdout", &q.stdout)?,
        stderr: flag("stderr", &q.stderr)?,
        logs: flag("logs", &q.logs)?,
    })
}

/// `POST /v1/containers/{id}/attach`.
pub(super) async fn attach(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AttachQuery>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let opts = options(&q)?;
    let upgrade = if wants_upgrade(req.headers()) {
        req.extensions_mut().remove::<OnUpgrade>()
    } else {
        None
    };
    if opts.stdin && upgrade.is_none() {
        return Err(RuntimeError::ExecMode(
            "stdin needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)".into(),
        )
        .into());
    }
    let handle = s.runtime.attach(&id, opts).await?;
    let framed = !handle.tty;
    let content_type = if framed { MULTIPLEXED } else { RAW };
    match upgrade {
        Some(on_upgrade) => {
            let (input, output) = (handle.input, handle.output);
            tokio::spawn(async move {
                match on_upgrade.await {
                    Ok(upgraded) => {
                        serve_stream(
                            TokioIo::new(upgraded),
                            input,
                            output,
                            framed,
                            std::future::ready(()),
                        )
                        .await;
                    }
                    Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
                }
            });
            Ok((
                StatusCode::SWITCHING_PROTOCOLS,
                [
                    (header::CONNECTION, HeaderValue::from_static("Upgrade")),
                    (header::UPGRADE, HeaderValue::from_static("tcp")),
                    (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
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
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                Body::from_stream(stream),
            )
                .into_response())
        }
    }
}

/// `POST /v1/containers/{id}/resize?h=&w=`.
pub(super) async fn resize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResizeQuery>,
) -> Result<StatusCode, ApiError> {
    let (h, w) = parse_size(&q)?;
    s.runtime.resize(&id, h, w).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_docker_booleans_defaulting_to_false() {
        let q = AttachQuery {
            stream: Some("1".into()),
            stdin: Some("true".into()),
            stdout: Some("0".into()),
            ..Default::default()
        };
        let o = options(&q).unwrap();
        assert!(o.stream && o.stdin && !o.stdout && !o.stderr && !o.logs);
        let bad = AttachQuery {
            logs: Some("yes".into()),
            ..Default::default()
        };
        assert!(options(&bad).is_err());
    }
}
