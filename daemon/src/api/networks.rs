//! `/v1/networks/...` handlers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use boxd_types::{Network, NetworkConnect, NetworkContainer, NetworkCreate, NetworkDisconnect};

use super::{convert, ApiError, ApiJson, AppState};

pub(super) async fn create(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<NetworkCreate>,
) -> Result<(StatusCode, Json<Network>), ApiError> {
    let n = s
        .runtime
        .create_network(crate::network::NetworkSpec {
            name: req.name,
            subnet: req.subnet,
            gateway: req.gateway,
            subnet6: req.subnet6,
            gateway6: req.gateway6,
            conflist: req.conflist,
            internal: req.internal,
            labels: req.labels,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(convert::network_out(n, Vec::new())),
    ))
}

/// Every attachment, read once per request.
async fn attachments(s: &AppState) -> Result<Vec<crate::network::Attachment>, ApiError> {
    Ok(s.runtime
        .networks()
        .attachments(None)
        .await
        .map_err(crate::runtime::RuntimeError::from)?)
}

/// The running containers on `network`, with their addresses.
fn attached(all: &[crate::network::Attachment], network: &str) -> Vec<NetworkContainer> {
    all.iter()
        .filter(|a| a.network == network && a.result.is_some())
        .map(|a| NetworkContainer {
            id: a.container_id.clone(),
            endpoint: convert::endpoint_out(a.endpoint()),
        })
        .collect()
}

pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Vec<Network>>, ApiError> {
    let networks = s
        .runtime
        .networks()
        .list()
        .await
        .map_err(crate::runtime::RuntimeError::from)?;
    let all = attachments(&s).await?;
    Ok(Json(
        networks
            .into_iter()
            .map(|n| {
                let containers = attached(&all, &n.name);
                convert::network_out(n, containers)
            })
            .collect(),
    ))
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Network>, ApiError> {
    let n = s
        .runtime
        .networks()
        .get(&name)
        .await
        .map_err(crate::runtime::RuntimeError::from)?;
    let containers = attached(&attachments(&s).await?, &n.name);
    Ok(Json(convert::network_out(n, containers)))
}

pub(super) async fn remove(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.runtime.remove_network(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn connect(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<NetworkConnect>,
) -> Result<StatusCode, ApiError> {
    s.runtime
        .connect(&name, &req.container, req.aliases)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn disconnect(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<NetworkDisconnect>,
) -> Result<StatusCode, ApiError> {
    s.runtime.disconnect(&name, &req.container).await?;
    Ok(StatusCode::NO_CONTENT)
}
