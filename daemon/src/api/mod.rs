//! The REST API (v1): axum routers and handlers. Handlers only translate HTTP to
//! runtime calls and back; they never touch the kernel or SQL.
//!
//! [`ROUTES`] is the list of every route. [`router`] registers routes only through a
//! helper that checks each against it, and a test calls every entry, so the list, the
//! router and `api-spec/openapi.yaml` (checked by `tests/it/spec.rs`) cannot drift.

mod attach;
mod containers;
pub mod convert;
mod error;
mod exec;
mod images;
mod networks;
mod stats;
mod system;
mod volumes;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, Uri};
use axum::routing::MethodRouter;
use axum::Router;
use serde::de::DeserializeOwned;

pub use error::ApiError;
pub(crate) use exec::{serve_stream, wants_upgrade, MULTIPLEXED, RAW};

use crate::runtime::Runtime;

/// Largest JSON body accepted by default: create, exec, pull and tag bodies are a few
/// KiB at most.
pub const DEFAULT_MAX_JSON_BODY: u64 = 1 << 20;
/// Largest image import or load body accepted by default (the archive is spooled to
/// disk, never held in memory, so this bounds disk use, not memory).
pub const DEFAULT_MAX_IMAGE_BODY: u64 = 64 << 30;

/// How large request bodies may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// JSON bodies (config key `max_json_body`).
    pub json_body: u64,
    /// Image import and load bodies (config key `max_image_body`).
    pub image_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            json_body: DEFAULT_MAX_JSON_BODY,
            image_body: DEFAULT_MAX_IMAGE_BODY,
        }
    }
}

/// Every route: (method, path pattern).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/version"),
    ("GET", "/v1/info"),
    ("GET", "/v1/system/check"),
    ("GET", "/v1/events"),
    ("GET", "/v1/images"),
    ("POST", "/v1/images/import"),
    ("POST", "/v1/images/load"),
    ("POST", "/v1/images/pull"),
    ("POST", "/v1/images/tag"),
    ("POST", "/v1/images/prune"),
    ("GET", "/v1/images/{*ref}"),
    ("DELETE", "/v1/images/{*ref}"),
    ("POST", "/v1/containers"),
    ("GET", "/v1/containers"),
    ("GET", "/v1/containers/{id}"),
    ("DELETE", "/v1/containers/{id}"),
    ("POST", "/v1/containers/{id}/start"),
    ("POST", "/v1/containers/{id}/stop"),
    ("POST", "/v1/containers/{id}/restart"),
    ("POST", "/v1/containers/{id}/kill"),
    ("POST", "/v1/containers/{id}/wait"),
    ("POST", "/v1/containers/{id}/pause"),
    ("POST", "/v1/containers/{id}/unpause"),
    ("POST", "/v1/containers/{id}/rename"),
    ("POST", "/v1/containers/{id}/update"),
    ("GET", "/v1/containers/{id}/logs"),
    ("GET", "/v1/containers/{id}/stats"),
    ("GET", "/v1/containers/{id}/exits"),
    ("GET", "/v1/stats"),
    ("POST", "/v1/containers/{id}/exec"),
    ("GET", "/v1/exec/{exec_id}"),
    ("POST", "/v1/exec/{exec_id}/resize"),
    ("POST", "/v1/containers/{id}/attach"),
    ("POST", "/v1/containers/{id}/resize"),
    ("POST", "/v1/networks"),
    ("GET", "/v1/networks"),
    ("GET", "/v1/networks/{name}"),
    ("DELETE", "/v1/networks/{name}"),
    ("POST", "/v1/networks/{name}/connect"),
    ("POST", "/v1/networks/{name}/disconnect"),
    ("POST", "/v1/volumes"),
    ("GET", "/v1/volumes"),
    ("POST", "/v1/volumes/prune"),
    ("GET", "/v1/volumes/{name}"),
    ("DELETE", "/v1/volumes/{name}"),
    ("GET", "/metrics"),
];

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The runtime.
    pub runtime: Runtime,
    /// Request body limits.
    pub limits: Limits,
    /// State of the Docker Engine API face.
    pub docker: crate::compat::DockerState,
    /// The Prometheus metrics (`/metrics`, request timing).
    pub metrics: crate::metrics::Metrics,
}

/// Builds the API router.
pub fn router(state: AppState) -> Router {
    use axum::routing::{delete, get, post};
    let mut r = Routes(Router::new());
    r.add("GET", "/v1/version", get(system::version));
    r.add("GET", "/v1/info", get(system::info));
    r.add("GET", "/v1/system/check", get(system::check));
    r.add("GET", "/v1/events", get(system::events));
    r.add("GET", "/v1/images", get(images::list));
    r.add("POST", "/v1/images/import", post(images::import));
    r.add("POST", "/v1/images/load", post(images::load));
    r.add("POST", "/v1/images/pull", post(images::pull));
    r.add("POST", "/v1/images/tag", post(images::tag));
    r.add("POST", "/v1/images/prune", post(images::prune));
    r.add(
        "GET",
        "/v1/images/{*ref}",
        get(images::inspect).delete(images::remove),
    );
    r.add("DELETE", "/v1/images/{*ref}", delete(images::remove));
    r.add(
        "POST",
        "/v1/containers",
        post(containers::create).get(containers::list),
    );
    r.add("GET", "/v1/containers", get(containers::list));
    r.add(
        "GET",
        "/v1/containers/{id}",
        get(containers::inspect).delete(containers::remove),
    );
    r.add("DELETE", "/v1/containers/{id}", delete(containers::remove));
    r.add("POST", "/v1/containers/{id}/start", post(containers::start));
    r.add("POST", "/v1/containers/{id}/stop", post(containers::stop));
    r.add(
        "POST",
        "/v1/containers/{id}/restart",
        post(containers::restart),
    );
    r.add("POST", "/v1/containers/{id}/kill", post(containers::kill));
    r.add("POST", "/v1/containers/{id}/wait", post(containers::wait));
    r.add("POST", "/v1/containers/{id}/pause", post(containers::pause));
    r.add(
        "POST",
        "/v1/containers/{id}/unpause",
        post(containers::unpause),
    );
    r.add(
        "POST",
        "/v1/containers/{id}/rename",
        post(containers::rename),
    );
    r.add(
        "POST",
        "/v1/containers/{id}/update",
        post(containers::update),
    );
    r.add("GET", "/v1/containers/{id}/logs", get(containers::logs));
    r.add("GET", "/v1/containers/{id}/stats", get(stats::container));
    r.add("GET", "/v1/containers/{id}/exits", get(stats::exits));
    r.add("GET", "/v1/stats", get(stats::all));
    r.add("POST", "/v1/containers/{id}/exec", post(exec::create));
    r.add("GET", "/v1/exec/{exec_id}", get(exec::inspect));
    r.add("POST", "/v1/exec/{exec_id}/resize", post(exec::resize));
    r.add("POST", "/v1/containers/{id}/attach", post(attach::attach));
    r.add("POST", "/v1/containers/{id}/resize", post(attach::resize));
    r.add(
        "POST",
        "/v1/networks",
        post(networks::create).get(networks::list),
    );
    r.add("GET", "/v1/networks", get(networks::list));
    r.add(
        "GET",
        "/v1/networks/{name}",
        get(networks::inspect).delete(networks::remove),
    );
    r.add("DELETE", "/v1/networks/{name}", delete(networks::remove));
    r.add(
        "POST",
        "/v1/networks/{name}/connect",
        post(networks::connect),
    );
    r.add(
        "POST",
        "/v1/networks/{name}/disconnect",
        post(networks::disconnect),
    );
    r.add(
        "POST",
        "/v1/volumes",
        post(volumes::create).get(volumes::list),
    );
    r.add("GET", "/v1/volumes", get(volumes::list));
    r.add("POST", "/v1/volumes/prune", post(volumes::prune));
    r.add(
        "GET",
        "/v1/volumes/{name}",
        get(volumes::inspect).delete(volumes::remove),
    );
    r.add("DELETE", "/v1/volumes/{name}", delete(volumes::remove));
    r.add("GET", crate::metrics::PATH, get(metrics));
    let metrics = state.metrics.clone();
    // Timing sits inside routing, where the matched route template is known.
    let routes =
        r.0.merge(crate::compat::router())
            .fallback(no_route)
            .with_state(state)
            .layer(axum::middleware::from_fn_with_state(
                metrics,
                crate::metrics::track,
            ));
    // The Docker face's version prefix is stripped before the routes see the path.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(crate::compat::version_prefix))
}

/// Registers routes, checking each against [`ROUTES`]. A path registered twice (for
/// a second method) is merged by registering the full method router once.
struct Routes(Router<AppState>);

impl Routes {
    fn add(&mut self, method: &str, path: &str, handler: MethodRouter<AppState>) {
        assert!(
            ROUTES.contains(&(method, path)),
            "route {method} {path} is not listed in api::ROUTES"
        );
        // The first entry of a path carries every method of it; later ones only check.
        let first = ROUTES.iter().find(|(_, p)| *p == path).map(|(m, _)| *m);
        if first == Some(method) {
            let router = std::mem::take(&mut self.0);
            self.0 = router.route(path, handler.fallback(method_not_allowed));
        }
    }
}

/// A path of the API asked with a method it does not take: the API's error body (with
/// 405), not an empty answer.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// A query string read into `T`, with the API's error body on a malformed, repeated or
/// unknown-typed parameter (axum's own rejection is plain text).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(q) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(q))
    }
}

/// `GET /metrics`: Prometheus metrics (see [`crate::metrics`]).
async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    crate::metrics::answer(&s.metrics, &s.runtime, &headers).await
}

async fn no_route(method: Method, uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if crate::compat::is_boxd_path(path) {
        ApiError::NoRoute {
            method: method.to_string(),
            path: path.to_owned(),
        }
        .into_response()
    } else {
        crate::compat::no_route()
    }
}

/// A JSON body, whatever its `Content-Type` (curl's `-d` sends a form type), with
/// errors in the API's error format; at most `limits.json_body` bytes (413 beyond).
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits.json_body;
        let too_large = || ApiError::TooLarge {
            what: "JSON request body",
            limit,
            flag: "max-json-body",
        };
        if declared_length(req.headers()).is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let cap = usize::try_from(limit).unwrap_or(usize::MAX);
        let body = http_body_util::Limited::new(req.into_body(), cap);
        let bytes: Bytes = match http_body_util::BodyExt::collect(body).await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(e) => {
                return Err(ApiError::BadRequest(format!(
                    "failed to read the body: {e}"
                )))
            }
        };
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::InvalidJson(e.to_string()))
    }
}

/// The `Content-Length` a client announced, if any (a body over the limit is refused
/// before a byte of it is read).
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Parses the boolean forms clients send in queries (`true`, `1`, `yes`, ...).
pub(crate) fn parse_bool(name: &str, value: Option<&str>, default: bool) -> Result<bool, ApiError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            // An empty value (`?all=`) is refused, not read as either: the spec's
            // booleans are true or false.
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be true or false, not {v:?}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::fake::FakeCgroups;
    use crate::cgroups::CgroupVersion;
    use crate::events::EventBus;
    use crate::image::ImageStore;
    use crate::runtime::HostInfo;
    use crate::store::{Store, MIGRATOR};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use sqlx::SqlitePool;
    use tower::ServiceExt;

    async fn app(pool: SqlitePool, dir: &std::path::Path) -> Router {
        app_with(
            pool,
            dir,
            Limits::default(),
            crate::image::DEFAULT_MAX_ARCHIVE_MEMBER,
        )
        .await
    }

    async fn app_with(
        pool: SqlitePool,
        dir: &std::path::Path,
        limits: Limits,
        max_member: u64,
    ) -> Router {
        let store = Store::from_pool(pool).await.unwrap();
        let info = HostInfo {
            kernel: "test".into(),
            root_dir: dir.join("root"),
            state_dir: dir.join("state"),
            log_rotation: None,
            userns_range: crate::runtime::userns::UsernsRange::DEFAULT,
            network: crate::network::Settings {
                default_mode: "none".into(),
                ..Default::default()
            },
        };
        let runtime = Runtime::new(
            store.clone(),
            EventBus::new(store.clone()),
            ImageStore::new(dir.join("root/images"))
                .unwrap()
                .with_max_member(max_member),
            Box::new(FakeCgroups::new(CgroupVersion::V1)),
            "/nonexistent/boxd".into(),
            info,
        )
        .await
        .unwrap();
        let metrics = crate::metrics::Metrics::new(&store);
        router(AppState {
            runtime,
            limits,
            docker: Default::default(),
            metrics,
        })
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn every_listed_route_is_served(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(pool, dir.path()).await;
        for (method, path) in ROUTES {
            let uri = path
                .replace("{id}", "nosuch")
                .replace("{*ref}", "nosuch:latest");
            // Streams that never end are asked with a bound so the test finishes.
            let uri = if uri == "/v1/events" {
                "/v1/events?since=0&until=0".to_owned()
            } else {
                uri
            };
            let (status, body) = call(&app, method, &uri, "{}").await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["code"], "no_route",
                "{method} {path} is listed but not routed"
            );
        }
        let (status, body) = call(&app, "GET", "/v1/nothing", "").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("no_route"))
        );
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn metrics_time_requests_by_route_template(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(pool, dir.path()).await;
        call(&app, "GET", "/v1/containers/abc123", "").await;
        call(&app, "GET", "/v1/containers/def456", "").await;
        call(&app, "GET", "/v1.43/containers/abc123/json", "").await;
        call(&app, "GET", "/containers/def456/json", "").await;
        call(&app, "GET", "/v1/no/such/thing/abc123", "").await;
        call(&app, "GET", "/no-such-docker-path", "").await;
        let req = Request::builder()
            .uri("/metrics")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            crate::metrics::OPENMETRICS_CONTENT_TYPE
        );
        // No Docker headers on /metrics: it belongs to neither face.
        assert!(resp.headers().get("api-version").is_none());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let count = |labels: &str| {
            let prefix = format!("boxd_http_request_duration_seconds_count{{{labels}}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .to_owned()
        };
        assert_eq!(
            count(r#"method="GET",route="/v1/containers/{id}",status="4xx""#),
            "2"
        );
        // Both spellings of the Docker path: one template.
        assert_eq!(
            count(r#"method="GET",route="/containers/{id}/json",status="4xx""#),
            "2"
        );
        assert_eq!(count(r#"method="GET",route="unmatched",status="4xx""#), "2");
        for raw in ["abc123", "def456", "no-such"] {
            assert!(!text.contains(raw), "{raw} in\n{text}");
        }
        // Prometheus text for a client that asks only for it.
        let req = Request::builder()
            .uri("/metrics")
            .header("accept", "text/plain; version=0.0.4")
            .body(Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("# TYPE boxd_http_request_duration_seconds histogram"));
        assert!(text.contains("boxd_containers{state=\"running\"} 0"));
        assert!(!text.contains("# EOF"));
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn bad_input_gets_the_right_status_and_code(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(pool, dir.path()).await;
        let cases: &[(&str, &str, &str, StatusCode, &str)] = &[
            (
                "POST",
                "/v1/containers",
                "{not json",
                StatusCode::BAD_REQUEST,
                "invalid_json",
            ),
            (
                "POST",
                "/v1/containers",
                r#"{"image":"x","bogus":1}"#,
                StatusCode::BAD_REQUEST,
                "invalid_json",
            ),
            (
                "POST",
                "/v1/containers",
                r#"{"image":"nosuch"}"#,
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "POST",
                "/v1/containers",
                r#"{"image":"x","name":"-bad"}"#,
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "POST",
                "/v1/containers",
                r#"{"image":"x","resources":{"memory_swappiness":101}}"#,
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "GET",
                "/v1/containers/nosuch",
                "",
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "POST",
                "/v1/containers/nosuch/start",
                "",
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "POST",
                "/v1/containers/x/kill?signal=SIGFOO",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "POST",
                "/v1/containers/x/stop?timeout=soon",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "GET",
                "/v1/containers?all=maybe",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "GET",
                "/v1/containers/x/logs?tail=lots",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "POST",
                "/v1/images/import",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                "POST",
                "/v1/images/import?name=Bad%20Name",
                "",
                StatusCode::BAD_REQUEST,
                "invalid_reference",
            ),
            (
                "GET",
                "/v1/images/Busybox",
                "",
                StatusCode::BAD_REQUEST,
                "invalid_reference",
            ),
            (
                "DELETE",
                "/v1/images/busybox@sha256:12",
                "",
                StatusCode::BAD_REQUEST,
                "invalid_reference",
            ),
            (
                "POST",
                "/v1/containers",
                r#"{"image":"busybox:"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_reference",
            ),
            (
                "POST",
                "/v1/images/tag",
                r#"{"source":"nosuch","target":"x"}"#,
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "POST",
                "/v1/images/import?name=ok",
                "this is not a tarball",
                StatusCode::BAD_REQUEST,
                "invalid_image",
            ),
            (
                "GET",
                "/v1/images/nosuch",
                "",
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                "GET",
                "/v1/events?since=yesterday",
                "",
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
        ];
        for (method, uri, body, status, code) in cases {
            let (got, answer) = call(&app, method, uri, body).await;
            assert_eq!(got, *status, "{method} {uri}: {answer}");
            assert_eq!(answer["code"], *code, "{method} {uri}: {answer}");
            assert!(
                answer["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{answer}"
            );
        }
        let (status, v) = call(&app, "GET", "/v1/version", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["api_version"], "v1");
        assert_eq!(v["cgroup_version"], "v1");
        let (status, v) = call(&app, "GET", "/v1/info", "").await;
        assert_eq!(
            (status, v["containers"].as_u64()),
            (StatusCode::OK, Some(0))
        );
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn volumes_are_made_listed_filtered_and_removed(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(pool, dir.path()).await;
        let body = r#"{"name": "data", "labels": {"app": "web"}}"#;
        let (status, v) = call(&app, "POST", "/v1/volumes", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(
            (
                v["name"].as_str(),
                v["driver"].as_str(),
                v["scope"].as_str()
            ),
            (Some("data"), Some("local"), Some("local"))
        );
        let data = dir.path().join("root/volumes/data/_data");
        assert_eq!(v["mountpoint"].as_str(), data.to_str());
        assert!(data.is_dir());
        // Idempotent, as Docker's.
        let (status, again) = call(&app, "POST", "/v1/volumes", r#"{"name": "data"}"#).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["created_at"], v["created_at"]);
        // Anonymous: a random 64-hex name.
        let (status, anon) = call(&app, "POST", "/v1/volumes", "{}").await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(anon["name"].as_str().unwrap().len(), 64);
        assert_eq!(anon["anonymous"], true);
        let (_, list) = call(&app, "GET", "/v1/volumes?label=app=web", "").await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        let (_, list) = call(&app, "GET", "/v1/volumes?dangling=true", "").await;
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        for (body, code) in [
            (r#"{"name": "x"}"#, "bad_request"),
            (r#"{"name": "v1", "driver": "nfs"}"#, "bad_request"),
            (
                r#"{"name": "v1", "driver_opts": {"o": "addr=1"}}"#,
                "bad_request",
            ),
            (r#"{"name": "v1", "bogus": 1}"#, "invalid_json"),
        ] {
            let (status, e) = call(&app, "POST", "/v1/volumes", body).await;
            assert_eq!(
                (status, e["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code))
            );
        }
        let (status, _) = call(&app, "DELETE", "/v1/volumes/data", "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(!data.exists());
        let (status, e) = call(&app, "GET", "/v1/volumes/data", "").await;
        assert_eq!(
            (status, e["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
        let (status, _) = call(&app, "DELETE", "/v1/volumes/data?force=true", "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, pruned) = call(&app, "POST", "/v1/volumes/prune", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(pruned["volumes_deleted"], serde_json::json!([anon["name"]]));
        let (_, list) = call(&app, "GET", "/v1/volumes", "").await;
        assert_eq!(list, serde_json::json!([]));
    }

    async fn call_with(
        app: &Router,
        uri: &str,
        body: Vec<u8>,
        length: Option<u64>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::builder().method("POST").uri(uri);
        if let Some(n) = length {
            req = req.header("content-length", n);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn assert_too_large(got: (StatusCode, serde_json::Value), limit: u64, flag: &str) {
        let (status, body) = got;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body["code"], "payload_too_large", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&format!("{limit} bytes")), "{message}");
        assert!(message.contains(&format!("--{flag}")), "{message}");
        assert!(message.contains(&flag.replace('-', "_")), "{message}");
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn json_bodies_over_the_limit_are_413(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app(pool, dir.path()).await;
        // The default: 1 MiB, counted as the body streams in.
        let big = format!(r#"{{"image":"{}"}}"#, "x".repeat(1 << 20));
        let got = call_with(&app, "/v1/containers", big.into_bytes(), None).await;
        assert_too_large(got, 1 << 20, "max-json-body");
        for uri in ["/v1/images/pull", "/v1/images/tag", "/v1/containers/c/exec"] {
            let got = call_with(&app, uri, vec![b' '; (1 << 20) + 1], None).await;
            assert_too_large(got, 1 << 20, "max-json-body");
        }
        // Just under the limit is read (and refused for what it says).
        let (status, body) = call_with(&app, "/v1/containers", vec![b' '; 1 << 20], None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_json"))
        );
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn configured_limits_apply_to_json_and_image_bodies(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            json_body: 64,
            image_body: 1000,
        };
        let app = app_with(pool, dir.path(), limits, 1 << 20).await;
        let body = format!(r#"{{"image":"{}"}}"#, "x".repeat(64));
        let got = call_with(&app, "/v1/containers", body.into_bytes(), None).await;
        assert_too_large(got, 64, "max-json-body");
        // A declared length over the limit is refused before the body is read.
        let got = call_with(&app, "/v1/containers", b"{}".to_vec(), Some(65)).await;
        assert_too_large(got, 64, "max-json-body");

        for uri in ["/v1/images/import?name=big", "/v1/images/load"] {
            let got = call_with(&app, uri, vec![0; 1001], None).await;
            assert_too_large(got, 1000, "max-image-body");
            let got = call_with(&app, uri, vec![0; 10], Some(5000)).await;
            assert_too_large(got, 1000, "max-image-body");
            // Under the limit: read, and refused for what it is.
            let (status, body) = call_with(&app, uri, vec![b'x'; 1000], None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        }
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn archive_members_over_the_limit_are_413(pool: SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with(pool, dir.path(), Limits::default(), 100).await;
        // manifest.json over the limit.
        let manifest = format!(
            r#"[{{"Config":"config.json","RepoTags":["{}:latest"],"Layers":[]}}]"#,
            "a".repeat(100)
        );
        let archive = tar_of(&[("manifest.json", manifest.as_bytes())]);
        let got = call_with(&app, "/v1/images/load", archive, None).await;
        assert_too_large(got.clone(), 100, "max-archive-member");
        assert!(got.1["message"].as_str().unwrap().contains("manifest.json"));
        // A config blob over the limit, the manifest under it.
        let manifest = br#"[{"Config":"c.json","Layers":[]}]"#;
        let config = vec![b' '; 101];
        let archive = tar_of(&[("manifest.json", manifest), ("c.json", &config)]);
        let got = call_with(&app, "/v1/images/load", archive, None).await;
        assert_too_large(got, 100, "max-archive-member");
        // index.json of an OCI layout.
        let index = vec![b' '; 200];
        let archive = tar_of(&[("oci-layout", b"{}"), ("index.json", &index)]);
        let got = call_with(&app, "/v1/images/load", archive, None).await;
        assert_too_large(got, 100, "max-archive-member");
    }
}
