//! The Docker Engine API face: what the docker CLI, docker-py, docker-compose and
//! testcontainers speak, translated onto the same runtime, store and event bus as `/v1`.
//!
//! It answers on the daemon's socket beside `/v1` (and on `docker_socket` when that is
//! configured): `/_ping`, the unversioned paths (`/containers/json`) and the versioned
//! ones (`/v1.43/containers/json`). [`version_prefix`] runs before routing: it checks
//! and strips the version prefix, so one router serves both spellings, and adds the
//! headers every Docker answer carries (`Api-Version` first: the CLI negotiates from it,
//! even on a 404).
//!
//! Docker's JSON shapes are the `bollard-stubs` models (the Engine API's own schema);
//! request bodies are read leniently as Docker does (`null`, `[]` and `{}` for empty,
//! `0` and `-1` for unset, unknown fields ignored). A field boxd cannot honour is
//! refused with a 400 that names it, never silently dropped. Errors are
//! `{"message": ...}` with Docker's status codes ([`error::DockerError`]).

mod archive;
mod containers;
mod error;
mod exec;
mod images;
mod models;
mod networks;
mod system;
mod volumes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::Router;

pub use error::DockerError;

use crate::api::AppState;

/// The Engine API version boxd implements and advertises.
pub const API_VERSION: &str = "1.43";
/// The oldest version accepted (as dockerd's default minimum).
pub const MIN_API_VERSION: &str = "1.24";

/// State of the Docker face that `/v1` has no use for.
#[derive(Clone, Default)]
pub struct DockerState {
    /// Execs created and not yet started (Docker creates and starts them in two calls).
    execs: Arc<Mutex<HashMap<String, exec::Pending>>>,
}

/// The Docker routes, unversioned (the prefix is stripped by [`version_prefix`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/system/df", get(system::df))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/top", get(containers::top))
        .route(
            "/containers/{id}/archive",
            get(archive::get).head(archive::stat).put(archive::put),
        )
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/changes", get(archive::changes))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/prune", post(images::prune))
        .route(
            "/images/{*rest}",
            get(images::get_named)
                .post(images::post_named)
                .delete(images::remove),
        )
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/auth", post(system::auth))
        .route(
            "/session",
            head(system::no_session).post(system::no_session),
        )
}

/// Whether a path belongs to the `/v1` API (everything else is Docker's).
pub(crate) fn is_boxd_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// `(major, minor)` of a `/vMAJOR.MINOR/...` path, and the rest of the path.
fn split_version(path: &str) -> Option<((u32, u32), &str)> {
    let rest = path.strip_prefix("/v")?;
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (major, minor) = version.split_once('.')?;
    Some(((major.parse().ok()?, minor.parse().ok()?), tail))
}

fn parse_version(v: &str) -> (u32, u32) {
    split_version(&format!("/v{v}/"))
        .map(|(v, _)| v)
        .expect("a valid version constant")
}

/// Runs before routing: checks and strips a Docker version prefix, and adds Docker's
/// headers to every answer outside `/v1`.
pub async fn version_prefix(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if is_boxd_path(&path) || path == crate::metrics::PATH {
        return next.run(req).await;
    }
    if let Some((version, rest)) = split_version(&path) {
        let (max, min) = (parse_version(API_VERSION), parse_version(MIN_API_VERSION));
        let asked = format!("{}.{}", version.0, version.1);
        if version > max {
            return with_headers(
                DockerError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "client version {asked} is too new. Maximum supported API version is {API_VERSION}"
                    ),
                )
                .into_response(),
            );
        }
        if version < min {
            return with_headers(
                DockerError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "client version {asked} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    ),
                )
                .into_response(),
            );
        }
        let uri = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        if let Ok(uri) = uri.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    with_headers(next.run(req).await)
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(
        "server",
        HeaderValue::from_static(concat!("boxd/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// Docker's name of this host's architecture (`amd64`, `arm64`).
pub(crate) fn system_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
    .to_owned()
}

/// The answer to a path no route serves, in Docker's shape (for `/v1`, the API's own).
pub fn no_route() -> Response {
    DockerError::new(StatusCode::NOT_FOUND, "page not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_split_and_boxd_paths_are_left_alone() {
        assert_eq!(
            split_version("/v1.43/containers/json"),
            Some(((1, 43), "/containers/json"))
        );
        assert_eq!(split_version("/v1.9/info"), Some(((1, 9), "/info")));
        assert_eq!(split_version("/v1.41"), Some(((1, 41), "/")));
        assert_eq!(split_version("/containers/json"), None);
        assert_eq!(split_version("/v1/containers"), None);
        assert!(is_boxd_path("/v1/containers"));
        assert!(!is_boxd_path("/v1.43/containers/json"));
        assert!((1, 9) < parse_version(API_VERSION));
        assert!((1, 50) > parse_version(API_VERSION));
    }
}
