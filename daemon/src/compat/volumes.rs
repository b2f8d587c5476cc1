//! `/volumes/...` onto boxd's named volumes (the `local` driver).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bollard_stubs::models::{
    Volume, VolumeCreateOptions, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum,
    VolumeUsageData,
};
use serde::Deserialize;

use super::error::{bool_value, DockerError, DockerJson, DockerQuery};
use super::models::{time, Filters, QueryFilters};
use crate::api::AppState;
use crate::runtime::volumes::{VolumeFilter, VolumeInfo, VolumeSpec};
use crate::runtime::RuntimeError;

fn volume_out(v: VolumeInfo) -> Volume {
    Volume {
        name: v.volume.name,
        driver: v.volume.driver,
        mountpoint: v.mountpoint.display().to_string(),
        created_at: Some(time(Some(v.volume.created_at))),
        status: None,
        labels: v.volume.labels.into_iter().collect(),
        scope: Some(VolumeScopeEnum::LOCAL),
        cluster_volume: None,
        options: v.volume.options.into_iter().collect(),
        usage_data: Some(VolumeUsageData {
            size: -1,
            ref_count: v.containers.len() as i64,
        }),
    }
}

fn not_found(name: &str) -> DockerError {
    DockerError::new(StatusCode::NOT_FOUND, format!("get {name}: no such volume"))
}

fn filter_of(f: &Filters) -> Result<VolumeFilter, DockerError> {
    f.only(&["dangling", "name", "label", "driver", "all"])?;
    if f.get("driver").iter().any(|d| d != "local") {
        // Only local volumes exist.
        return Ok(VolumeFilter {
            names: vec!["\0".into()],
            ..Default::default()
        });
    }
    Ok(VolumeFilter {
        dangling: f.get("dangling").first().map(|d| bool_value(Some(d))),
        names: f.get("name").to_vec(),
        labels: f.get("label").to_vec(),
    })
}

pub(super) async fn list(
    State(s): State<AppState>,
    QueryFilters(f): QueryFilters,
) -> Result<Json<VolumeListResponse>, DockerError> {
    let filter = filter_of(&f)?;
    let volumes = s.runtime.volumes(&filter).await?;
    Ok(Json(VolumeListResponse {
        volumes: Some(volumes.into_iter().map(volume_out).collect()),
        warnings: Some(Vec::new()),
    }))
}

pub(super) async fn create(
    State(s): State<AppState>,
    DockerJson(req): DockerJson<VolumeCreateOptions>,
) -> Result<(StatusCode, Json<Volume>), DockerError> {
    if req.cluster_volume_spec.is_some() {
        return Err(DockerError::bad(
            "ClusterVolumeSpec is a swarm feature; boxd has no swarm",
        ));
    }
    let spec = VolumeSpec {
        name: req.name.filter(|n| !n.is_empty()),
        driver: req.driver.filter(|d| !d.is_empty()),
        options: req.driver_opts.unwrap_or_default().into_iter().collect(),
        labels: req.labels.unwrap_or_default().into_iter().collect(),
    };
    let (v, _made) = s.runtime.create_volume(spec).await?;
    Ok((StatusCode::CREATED, Json(volume_out(v))))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, DockerError> {
    match s.runtime.volume(&name).await {
        Ok(v) => Ok(Json(volume_out(v))),
        Err(RuntimeError::NotFound { .. }) => Err(not_found(&name)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RemoveQuery {
    force: Option<String>,
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
    DockerQuery(q): DockerQuery<RemoveQuery>,
) -> Result<StatusCode, DockerError> {
    match s
        .runtime
        .remove_volume(&name, bool_value(q.force.as_deref()))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(RuntimeError::NotFound { .. }) => Err(not_found(&name)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /volumes/prune`: as Docker 23+, only anonymous volumes unless the filter
/// says `all=true`.
pub(super) async fn prune(
    State(s): State<AppState>,
    QueryFilters(f): QueryFilters,
) -> Result<Json<VolumePruneResponse>, DockerError> {
    f.only(&["label", "all", "label!"])?;
    let all = f.get("all").first().is_some_and(|a| bool_value(Some(a)));
    let unused = s
        .runtime
        .volumes(&VolumeFilter {
            dangling: Some(true),
            labels: f.get("label").to_vec(),
            ..Default::default()
        })
        .await?;
    let mut deleted = Vec::new();
    for v in unused {
        if !all && !v.volume.anonymous {
            continue;
        }
        match s.runtime.remove_volume(&v.volume.name, false).await {
            Ok(()) => deleted.push(v.volume.name),
            Err(RuntimeError::NotFound { .. } | RuntimeError::VolumeInUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(VolumePruneResponse {
        volumes_deleted: Some(deleted),
        space_reclaimed: Some(0),
    }))
}
