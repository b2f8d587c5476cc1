//! `/v1/images/...` handlers.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use boxd_client::models::Image;
use serde::Deserialize;

use super::{parse_bool, ApiError, AppState};

pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Vec<Image>>, ApiError> {
    Ok(Json(s.runtime.images().await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct ImportQuery {
    name: Option<String>,
}

/// Streams the body to the image store; it is never held in memory whole.
pub(super) async fn import(
    State(s): State<AppState>,
    Query(q): Query<ImportQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Image>), ApiError> {
    let name = q.name.filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::BadRequest("name is required: POST /v1/images/import?name=REF".into())
    })?;
    let image = s
        .runtime
        .import_image(&name, body.into_data_stream())
        .await?;
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
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let force = parse_bool("force", q.force.as_deref(), false)?;
    s.runtime.remove_image(&reference, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
