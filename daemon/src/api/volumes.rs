//! `/v1/volumes/...` handlers.

use crate::api::ApiQuery;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use boxd_types::{Volume, VolumeCreate, VolumePruneResponse};
use serde::Deserialize;

use super::{convert, parse_bool, ApiError, ApiJson, AppState};
use crate::runtime::volumes::VolumeFilter;

pub(super) async fn create(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<VolumeCreate>,
) -> Result<(StatusCode, Json<Volume>), ApiError> {
    let (v, made) = s.runtime.create_volume(convert::volume_spec(req)).await?;
    // Docker's create is idempotent: an existing volume of the same driver is the answer.
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(convert::volume_out(v))))
}

/// `?dangling=true|false&name=SUBSTRING&label=KEY[=VALUE]` (name and label may repeat).
pub(super) fn filter(pairs: Vec<(String, String)>) -> Result<VolumeFilter, ApiError> {
    let mut f = VolumeFilter::default();
    for (k, v) in pairs {
        match k.as_str() {
            "dangling" => f.dangling = Some(parse_bool("dangling", Some(&v), true)?),
            "name" => f.names.push(v),
            "label" => f.labels.push(v),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter {other:?} (dangling, name, label)"
                )))
            }
        }
    }
    Ok(f)
}

pub(super) async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<Vec<Volume>>, ApiError> {
    let filter = filter(q)?;
    Ok(Json(
        s.runtime
            .volumes(&filter)
            .await?
            .into_iter()
            .map(convert::volume_out)
            .collect(),
    ))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(convert::volume_out(s.runtime.volume(&name).await?)))
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let force = parse_bool("force", q.force.as_deref(), false)?;
    s.runtime.remove_volume(&name, force).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn prune(
    State(s): State<AppState>,
) -> Result<Json<VolumePruneResponse>, ApiError> {
    let r = s.runtime.prune_volumes().await?;
    Ok(Json(VolumePruneResponse {
        volumes_deleted: r.deleted,
        space_reclaimed: r.space_reclaimed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn filters_parse_from_the_query() {
        let f = filter(pairs(&[
            ("dangling", "true"),
            ("name", "web"),
            ("label", "a=b"),
            ("label", "c"),
        ]))
        .unwrap();
        assert_eq!(f.dangling, Some(true));
        assert_eq!(f.names, ["web"]);
        assert_eq!(f.labels, ["a=b", "c"]);
        assert_eq!(
            filter(pairs(&[("dangling", "0")])).unwrap().dangling,
            Some(false)
        );
        assert!(filter(pairs(&[("dangling", "maybe")])).is_err());
        assert!(filter(pairs(&[("driver", "local")])).is_err());
        assert_eq!(filter(Vec::new()).unwrap(), VolumeFilter::default());
    }
}
