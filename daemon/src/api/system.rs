//! `/v1/version`, `/v1/info` and the `/v1/events` stream.

use std::convert::Infallible;

use crate::api::ApiQuery;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{Event, Info, SystemCheck, Version};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::runtime::RuntimeError;
use crate::store::EventFilter;

pub(super) async fn version(State(s): State<AppState>) -> Json<Version> {
    Json(s.runtime.version())
}

pub(super) async fn info(State(s): State<AppState>) -> Result<Json<Info>, ApiError> {
    Ok(Json(s.runtime.info().await?))
}

/// What the store and the kernel disagree on (empty when healthy), and what the start-up
/// reconcile did.
pub(super) async fn check(State(s): State<AppState>) -> Result<Json<SystemCheck>, ApiError> {
    Ok(Json(s.runtime.system_check().await?))
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    container: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    action: Option<String>,
}

/// A bound given as a `seq` or as a time.
enum Bound {
    Seq(i64),
    Time(DateTime<Utc>),
}

fn parse_bound(name: &str, v: &str) -> Result<Bound, ApiError> {
    if let Ok(seq) = v.parse::<i64>() {
        return Ok(Bound::Seq(seq));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| Bound::Time(t.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} must be an event seq or an RFC 3339 time, not {v:?}"
            ))
        })
}

/// Replays stored events, then streams live ones, without a gap or a duplicate (see
/// `EventBus::follow`: the replay is read from the store a page at a time).
pub(super) async fn events(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let mut filter = EventFilter::default();
    match q
        .since
        .as_deref()
        .map(|v| parse_bound("since", v))
        .transpose()?
    {
        Some(Bound::Seq(n)) => filter.after_seq = Some(n),
        Some(Bound::Time(t)) => filter.since_time = Some(t),
        None => {}
    }
    match q
        .until
        .as_deref()
        .map(|v| parse_bound("until", v))
        .transpose()?
    {
        Some(Bound::Seq(n)) => filter.until_seq = Some(n),
        Some(Bound::Time(t)) => filter.until_time = Some(t),
        None => {}
    }
    if let Some(c) = &q.container {
        // A deleted container is still a valid filter: fall back to the raw id.
        filter.actor_id = Some(match s.runtime.container(c).await {
            Ok(found) => found.id,
            Err(_) => c.clone(),
        });
    }
    let events = s
        .runtime
        .events()
        .follow(filter, move |e| filter_matches(&q, e))
        .await
        .map_err(RuntimeError::from)?;
    let body = events.map(|e| {
        let mut line = serde_json::to_vec(&e).expect("event serialises");
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

fn filter_matches(q: &EventsQuery, e: &Event) -> bool {
    q.kind.as_deref().is_none_or(|k| e.kind == k)
        && q.action.as_deref().is_none_or(|a| e.action == a)
}
