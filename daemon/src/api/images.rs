//! `/v1/images/...` handlers: list, inspect, import, load, pull (NDJSON progress),
//! tag, remove, prune.

use axum::body::{Body, Bytes};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::api::ApiQuery;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{Image, LoadResponse, PruneResponse, PullProgress, PullRequest, TagRequest};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::image::registry::Progress;

use super::{parse_bool, ApiError, ApiJson, AppState};

pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Vec<Image>>, ApiError> {
    Ok(Json(s.runtime.images().await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct ImportQuery {
    name: Option<String>,
}

/// An image body, cut off with an error after `limit` bytes; `over` says whether it
/// was (so the failure it causes downstream is answered as 413).
struct ImageBody {
    over: Arc<AtomicBool>,
    limit: u64,
}

/// The body ended because it passed the limit.
#[derive(Debug, thiserror::Error)]
#[error("the body is larger than {0} bytes")]
struct OverLimit(u64);

impl ImageBody {
    /// Refuses a declared length over the limit at once, else caps the stream.
    fn cap(
        limits: super::Limits,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<
        (
            Self,
            impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
        ),
        ApiError,
    > {
        let limit = limits.image_body;
        let capped = ImageBody {
            over: Arc::new(AtomicBool::new(false)),
            limit,
        };
        if super::declared_length(headers).is_some_and(|n| n > limit) {
            return Err(capped.error());
        }
        let over = capped.over.clone();
        let mut seen = 0u64;
        let stream = body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            seen += chunk.len() as u64;
            if seen > limit {
                over.store(true, Ordering::SeqCst);
                return Err(std::io::Error::other(OverLimit(limit)));
            }
            Ok(chunk)
        });
        Ok((capped, stream))
    }

    fn error(&self) -> ApiError {
        ApiError::TooLarge {
            what: "image archive body",
            limit: self.limit,
            flag: "max-image-body",
        }
    }

    /// The error to answer: 413 when the body was cut off, else the error itself.
    fn explain(&self, err: crate::runtime::RuntimeError) -> ApiError {
        if self.over.load(Ordering::SeqCst) {
            self.error()
        } else {
            err.into()
        }
    }
}

/// Streams the body to the image store; it is never held in memory whole.
pub(super) async fn import(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Image>), ApiError> {
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::BadRequest("name is required: POST /v1/images/import?name=REF".into())
    })?;
    let (capped, body) = ImageBody::cap(s.limits, &headers, body)?;
    let image = s
        .runtime
        .import_image(&name, body, &Default::default())
        .await
        .map_err(|e| capped.explain(e))?;
    Ok((StatusCode::CREATED, Json(image)))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Json<Image>, ApiError> {
    Ok(Json(s.runtime.image(&reference).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(reference): Path<String>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let force = parse_bool("force", q.force.as_deref(), false)?;
    s.runtime.remove_image(&reference, force).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoadQuery {
    name: Option<String>,
    platform: Option<String>,
}

/// `POST /v1/images/load`: a `docker save` archive or an OCI layout as a tar, streamed
/// to the store.
pub(super) async fn load(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LoadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LoadResponse>, ApiError> {
    let (capped, body) = ImageBody::cap(s.limits, &headers, body)?;
    let images = s
        .runtime
        .load_images(
            body,
            q.name.as_deref().filter(|n| !n.is_empty()),
            q.platform.as_deref(),
        )
        .await
        .map_err(|e| capped.explain(e))?;
    Ok(Json(LoadResponse { images }))
}

fn progress_line(p: Progress) -> PullProgress {
    let line = |status: &str, id: String| PullProgress {
        status: status.to_owned(),
        id: Some(id),
        ..Default::default()
    };
    match p {
        Progress::Resolved { digest, layers } => PullProgress {
            total: Some(layers.iter().map(|(_, s)| s).sum()),
            ..line("resolved", digest)
        },
        Progress::Waiting { digest } => line("waiting", digest),
        Progress::Downloading {
            digest,
            current,
            total,
        } => PullProgress {
            current: Some(current),
            total: Some(total),
            ..line("downloading", digest)
        },
        Progress::Extracting { digest } => line("extracting", digest),
        Progress::Exists { digest } => line("exists", digest),
        Progress::LayerDone { digest } => line("layer_done", digest),
    }
}

fn ndjson(p: &PullProgress) -> Result<Bytes, std::io::Error> {
    let mut v = serde_json::to_vec(p).expect("progress serialises");
    v.push(b'\n');
    Ok(Bytes::from(v))
}

/// `POST /v1/images/pull`: NDJSON progress, ending with `done` (and the image) or
/// `error`. Failures before the manifest is resolved (bad reference, unknown image,
/// refused credentials) are plain error answers with their status.
pub(super) async fn pull(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PullRequest>,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<PullProgress, ApiError>>();
    let runtime = s.runtime.clone();
    // The pull runs on its own task: a client that goes away does not leave a
    // half-recorded image (it still finishes, or fails and cleans up).
    tokio::spawn(async move {
        let last_sent = std::sync::Mutex::new(std::collections::HashMap::<String, u64>::new());
        let progress_tx = tx.clone();
        let progress = move |p: Progress| {
            // Downloads report every chunk; send at most one line per 256 KiB a layer.
            if let Progress::Downloading {
                digest,
                current,
                total,
            } = &p
            {
                let mut sent = last_sent.lock().expect("progress map poisoned");
                let last = sent.entry(digest.clone()).or_insert(0);
                if *current != *total && *current < *last + (256 << 10) && *last != 0 {
                    return;
                }
                *last = (*current).max(1);
            }
            let _ = progress_tx.send(Ok(progress_line(p)));
        };
        let result = runtime.pull_image(&req, &progress).await;
        let _ = tx.send(match result {
            Ok(image) => Ok(PullProgress {
                status: "done".into(),
                id: Some(image.id.clone()),
                image: Some(image),
                ..Default::default()
            }),
            Err(e) => Err(ApiError::from(e)),
        });
    });
    // Wait for the first line: an early failure gets a real status code.
    let first = match rx.recv().await {
        Some(Ok(p)) => p,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(ApiError::BadRequest(
                "the pull ended without an answer".into(),
            ))
        }
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let line = match item {
            Ok(p) => p,
            Err(e) => {
                let body = e.body();
                PullProgress {
                    status: "error".into(),
                    error: Some(body),
                    ..Default::default()
                }
            }
        };
        Some((ndjson(&line), rx))
    });
    let stream = futures_util::stream::once(async move { ndjson(&first) }).chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /v1/images/tag`.
pub(super) async fn tag(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TagRequest>,
) -> Result<(StatusCode, Json<Image>), ApiError> {
    let image = s.runtime.tag_image(&req.source, &req.target).await?;
    Ok((StatusCode::CREATED, Json(image)))
}

#[derive(Debug, Deserialize)]
pub(super) struct PruneQuery {
    all: Option<String>,
}

/// `POST /v1/images/prune?all=`.
pub(super) async fn prune(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PruneQuery>,
) -> Result<Json<PruneResponse>, ApiError> {
    let all = parse_bool("all", q.all.as_deref(), false)?;
    Ok(Json(s.runtime.prune_images(all).await?))
}
