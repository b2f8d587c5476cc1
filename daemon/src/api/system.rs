//! `/v1/version`, `/v1/info` and the `/v1/events` stream.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use boxd_types::{Event, Info, SystemCheck, Version};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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

/// Replays stored events, then streams live ones, without a gap or a duplicate: the
/// live receiver is subscribed before the replay is read, and live events at or below
/// the last replayed `seq` are skipped. A subscriber that falls behind the live channel
/// is refilled from the store.
pub(super) async fn events(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
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
    let (mut until_seq, mut deadline) = (None, None);
    match q
        .until
        .as_deref()
        .map(|v| parse_bound("until", v))
        .transpose()?
    {
        Some(Bound::Seq(n)) => until_seq = Some(n),
        Some(Bound::Time(t)) => deadline = Some(t),
        None => {}
    }
    filter.until_seq = until_seq;
    filter.until_time = deadline;
    if let Some(c) = &q.container {
        // A deleted container is still a valid filter: fall back to the raw id.
        filter.actor_id = Some(match s.runtime.container(c).await {
            Ok(found) => found.id,
            Err(_) => c.clone(),
        });
    }
    let wants = move |e: &Event| filter_matches(&q, e);

    let store = s.runtime.store().clone();
    let mut live = s.runtime.events().subscribe();
    let replay = if filter.after_seq.is_some() || filter.since_time.is_some() {
        store.events(&filter).await.map_err(RuntimeError::from)?
    } else {
        // No `since`: only new events, as `docker events` does.
        Vec::new()
    };
    let mut last_seq = match replay.last() {
        Some(e) => e.seq,
        None => store
            .last_event_seq()
            .await
            .map_err(RuntimeError::from)?
            .max(filter.after_seq.unwrap_or(0)),
    };
    let finished =
        until_seq.is_some_and(|n| last_seq >= n) || deadline.is_some_and(|t| t <= Utc::now());

    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        for e in replay {
            if wants(&e) && tx.send(e).await.is_err() {
                return;
            }
        }
        if finished {
            return;
        }
        let actor = filter.actor_id.clone();
        let matches = |e: &Event| actor.as_deref().is_none_or(|id| id == e.id) && wants(e);
        loop {
            let wait = deadline.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            let next = tokio::select! {
                r = live.recv() => r,
                _ = tx.closed() => return,
                _ = sleep_or_forever(wait) => return,
            };
            let batch = match next {
                Ok(e) => vec![e],
                Err(RecvError::Lagged(_)) => {
                    let refill = EventFilter {
                        after_seq: Some(last_seq),
                        ..filter.clone()
                    };
                    match store.events(&refill).await {
                        Ok(missed) => missed,
                        Err(_) => return,
                    }
                }
                Err(RecvError::Closed) => return,
            };
            for e in batch {
                if e.seq <= last_seq {
                    continue;
                }
                if until_seq.is_some_and(|n| e.seq > n) {
                    return;
                }
                last_seq = e.seq;
                if matches(&e) && tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = ReceiverStream::new(rx).map(|e| {
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

async fn sleep_or_forever(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
