//! `/v1/containers/{id}/stats`, `/v1/stats` and `/v1/containers/{id}/exits`.
//!
//! Stats are read when asked, so the first answer comes at once (Docker waits for a
//! second sample to compute a CPU percentage; clients here compute rates from two
//! answers). `?stream=true` sends one NDJSON line per interval until the container
//! stops or the client goes away.

use std::convert::Infallible;
use std::time::Duration;

use crate::api::ApiQuery;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{ContainerStats, ExitInfo};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{parse_bool, ApiError, AppState};

/// Default time between two streamed samples.
const DEFAULT_INTERVAL_MS: u64 = 1000;

#[derive(Debug, Deserialize)]
pub(super) struct StatsQuery {
    stream: Option<String>,
    /// Milliseconds between streamed samples (100-60000).
    interval_ms: Option<String>,
}

fn interval(q: &StatsQuery) -> Result<Duration, ApiError> {
    match q.interval_ms.as_deref() {
        None => Ok(Duration::from_millis(DEFAULT_INTERVAL_MS)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| (100..=60_000).contains(ms))
            .map(Duration::from_millis)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "interval_ms must be a number of milliseconds (100-60000), not {v:?}"
                ))
            }),
    }
}

fn ndjson<T: serde::Serialize + Send + 'static>(rx: mpsc::Receiver<T>) -> Response {
    let body = ReceiverStream::new(rx).map(|item| {
        let mut line = serde_json::to_vec(&item).expect("stats serialise");
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

pub(super) async fn container(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let stream = parse_bool("stream", q.stream.as_deref(), false)?;
    let every = interval(&q)?;
    let first = s.runtime.stats(&id).await?;
    if !stream {
        return Ok(Json(first).into_response());
    }
    let (tx, rx) = mpsc::channel::<ContainerStats>(4);
    let runtime = s.runtime.clone();
    let id = first.id.clone();
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = tx.closed() => return,
            }
            // The stream ends when the container stops.
            let Ok(sample) = runtime.stats(&id).await else {
                return;
            };
            if tx.send(sample).await.is_err() {
                return;
            }
        }
    });
    Ok(ndjson(rx))
}

pub(super) async fn all(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let stream = parse_bool("stream", q.stream.as_deref(), false)?;
    let every = interval(&q)?;
    let first = s.runtime.all_stats().await?;
    if !stream {
        return Ok(Json(first).into_response());
    }
    let (tx, rx) = mpsc::channel::<Vec<ContainerStats>>(4);
    let runtime = s.runtime.clone();
    tokio::spawn(async move {
        if tx.send(first).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = tx.closed() => return,
            }
            let Ok(sample) = runtime.all_stats().await else {
                return;
            };
            if tx.send(sample).await.is_err() {
                return;
            }
        }
    });
    Ok(ndjson(rx))
}

pub(super) async fn exits(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ExitInfo>>, ApiError> {
    Ok(Json(s.runtime.exits(&id).await?))
}
