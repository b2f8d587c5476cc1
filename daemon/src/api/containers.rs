//! `/v1/containers/...` handlers.

use std::time::Duration;

use crate::api::ApiQuery;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{
    Container, CreateContainer, CreateResponse, UpdateContainer, UpdateResponse, WaitResponse,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{convert, parse_bool, ApiError, ApiJson, AppState};
use crate::runtime::logs::{LogFormat, LogOptions};
use crate::runtime::names::parse_signal;

pub(super) async fn create(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CreateContainer>,
) -> Result<(StatusCode, Json<CreateResponse>), ApiError> {
    let spec = convert::create_spec(req)?;
    Ok((StatusCode::CREATED, Json(s.runtime.create(spec).await?)))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    all: Option<String>,
}

pub(super) async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Container>>, ApiError> {
    let all = parse_bool("all", q.all.as_deref(), false)?;
    let list = s.runtime.containers(all).await?;
    // What was observed of each run, as inspect shows it (a container never observed
    // has the defaults inspect shows too).
    let mut observed = s.runtime.observed_all().await?;
    let mut endpoints: std::collections::HashMap<String, Vec<crate::network::Endpoint>> =
        Default::default();
    for a in s
        .runtime
        .networks()
        .attachments(None)
        .await
        .map_err(crate::runtime::RuntimeError::from)?
    {
        endpoints
            .entry(a.container_id.clone())
            .or_default()
            .push(a.endpoint());
    }
    Ok(Json(
        list.into_iter()
            .map(|c| {
                let e = endpoints.remove(&c.id).unwrap_or_default();
                let o = observed
                    .remove(&c.id)
                    .unwrap_or_else(|| boxd_types::Observed {
                        memory_warning_percent: crate::runtime::DEFAULT_MEMORY_WARNING_PERCENT,
                        ..Default::default()
                    });
                convert::container_out(c, o, e)
            })
            .collect(),
    ))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<boxd_types::ContainerInspect>, ApiError> {
    let container = s.runtime.container(&id).await?;
    let observed = s.runtime.observed(&container.id).await?;
    let execs = s.runtime.execs_of(&container.id);
    let endpoints = s
        .runtime
        .networks()
        .attachments(Some(&container.id))
        .await
        .map_err(crate::runtime::RuntimeError::from)?
        .iter()
        .map(crate::network::Attachment::endpoint)
        .collect();
    let warnings = match container.config.network.mode {
        crate::network::NetworkMode::Host => vec![crate::network::HOST_MODE_WARNING.to_owned()],
        _ => Vec::new(),
    };
    Ok(Json(boxd_types::ContainerInspect {
        warnings,
        container: convert::container_out(container, observed, endpoints),
        execs,
    }))
}

pub(super) async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.runtime.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct StopQuery {
    timeout: Option<String>,
}

fn stop_timeout(q: &StopQuery) -> Result<Duration, ApiError> {
    let secs = match q.timeout.as_deref() {
        None => 10,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|t| *t <= 86_400)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "timeout must be a number of seconds (0-86400), not {t:?}"
                ))
            })?,
    };
    Ok(Duration::from_secs(secs))
}

pub(super) async fn stop(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StopQuery>,
) -> Result<StatusCode, ApiError> {
    s.runtime.stop(&id, stop_timeout(&q)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the container when it runs (as `stop`), then starts it.
pub(super) async fn restart(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StopQuery>,
) -> Result<StatusCode, ApiError> {
    s.runtime.restart(&id, stop_timeout(&q)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct KillQuery {
    signal: Option<String>,
}

pub(super) async fn kill(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<KillQuery>,
) -> Result<StatusCode, ApiError> {
    let signal =
        parse_signal(q.signal.as_deref().unwrap_or("SIGKILL")).map_err(ApiError::BadRequest)?;
    s.runtime.kill(&id, signal).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn wait(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WaitResponse>, ApiError> {
    Ok(Json(s.runtime.wait(&id).await?))
}

pub(super) async fn pause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.runtime.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn unpause(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.runtime.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct RenameQuery {
    name: Option<String>,
}

pub(super) async fn rename(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RenameQuery>,
) -> Result<StatusCode, ApiError> {
    let name = q
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("give the new name: ?name=NEW".to_owned()))?;
    s.runtime.rename(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateContainer>,
) -> Result<Json<UpdateResponse>, ApiError> {
    let update = convert::update_in(req)?;
    let warnings = s.runtime.update(&id, update).await?;
    Ok(Json(UpdateResponse { warnings }))
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
    /// Also remove its anonymous volumes (Docker's `rm -v`).
    v: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let force = parse_bool("force", q.force.as_deref(), false)?;
    let volumes = parse_bool("v", q.v.as_deref(), false)?;
    s.runtime.remove_with_volumes(&id, force, volumes).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
    follow: Option<String>,
    tail: Option<String>,
    since: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    format: Option<String>,
    timestamps: Option<String>,
}

/// Parses `since` as RFC 3339 or Unix seconds (with an optional fraction), as Docker.
fn parse_since(v: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| DateTime::from_timestamp(s.trunc() as i64, (s.fract() * 1e9) as u32))
        .ok_or_else(|| {
            ApiError::BadRequest(format!("since must be RFC 3339 or Unix seconds, not {v:?}"))
        })
}

pub(super) async fn logs(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let tail = match q.tail.as_deref() {
        None | Some("all") | Some("") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!(
                "tail must be a number of lines or \"all\", not {n:?}"
            ))
        })?),
    };
    let format = match q.format.as_deref() {
        None | Some("raw") => LogFormat::Raw,
        Some("ndjson") | Some("json") => LogFormat::Ndjson,
        Some(f) => {
            return Err(ApiError::BadRequest(format!(
                "format must be raw or ndjson, not {f:?}"
            )))
        }
    };
    let opts = LogOptions {
        follow: parse_bool("follow", q.follow.as_deref(), false)?,
        tail,
        since: q.since.as_deref().map(parse_since).transpose()?,
        until: None,
        stdout: parse_bool("stdout", q.stdout.as_deref(), true)?,
        stderr: parse_bool("stderr", q.stderr.as_deref(), true)?,
        format,
        timestamps: parse_bool("timestamps", q.timestamps.as_deref(), false)?,
    };
    let content_type = match format {
        LogFormat::Raw | LogFormat::Docker { .. } => "text/plain; charset=utf-8",
        LogFormat::Ndjson => "application/x-ndjson",
    };
    let stream = s.runtime.logs(&id, opts).await?;
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}
