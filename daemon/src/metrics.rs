//! The Prometheus metrics of `GET /metrics`: what they are, how requests are timed,
//! and their encoding (OpenMetrics 1.0 text, or Prometheus text 0.0.4 for clients that
//! ask only for `text/plain`), all through the `prometheus-client` crate.
//!
//! Two kinds of figures:
//! - **kept**: histograms that live as long as the daemon and are fed as things happen
//!   (HTTP request latency by [`track`], store commit latency by the store);
//! - **read at scrape**: per-container and per-state figures built afresh from one
//!   engine snapshot ([`crate::runtime::Runtime::metrics_snapshot`]: one store query
//!   for every container, and one blocking-thread pass over the running ones' cgroups),
//!   so a removed container simply stops appearing and nothing has to be forgotten.
//!
//! Labels are bounded by construction: the `route` of a request is the router's path
//! template (never the raw path, which carries ids), `method` is one of the standard
//! verbs or `other`, `status` is a class (`2xx`...). Container series carry the full
//! container `id` (what the API and cgroup paths use, so it joins with both) and its
//! `name`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::runtime::{MetricsSnapshot, Runtime, RuntimeError};
use crate::store::Store;

/// Where the metrics are served (on the API socket, and on `metrics_address`).
pub const PATH: &str = "/metrics";

/// `Content-Type` of OpenMetrics 1.0 text, the default answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request latency buckets, in seconds: 1 ms to 30 s. Most calls answer in
/// milliseconds; start, stop (with its timeout), pull and import take seconds.
const HTTP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Label of requests that matched no route (404s of unknown paths): one series for all
/// of them, whatever path was asked.
const UNMATCHED: &str = "unmatched";

/// The container states of `boxd_containers`, each always present (0 when none):
/// `paused` containers are running ones that are frozen, counted apart as Docker's
/// `ContainersPaused` is.
const STATES: [&str; 5] = ["created", "running", "paused", "exited", "dead"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    id: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    cgroup_version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The daemon's long-lived metrics; cheap to clone (one shared set).
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: HistogramFamily<HttpLabels>,
    store_commits: Histogram,
}

impl Metrics {
    /// The metrics of a daemon whose store is `store` (its commit histogram is shown).
    pub fn new(store: &Store) -> Self {
        Metrics {
            inner: Arc::new(Inner {
                http: Family::new_with_constructor(http_histogram),
                store_commits: store.commit_latency(),
            }),
        }
    }

    fn observe_request(&self, method: &Method, route: Option<&str>, status: StatusCode, secs: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.unwrap_or(UNMATCHED).to_owned(),
            status: status_class(status),
        };
        self.inner.http.get_or_create(&labels).observe(secs);
    }

    /// Every metric, now, in `format`.
    pub async fn render(&self, runtime: &Runtime, format: Format) -> Result<String, RuntimeError> {
        let snapshot = runtime.metrics_snapshot().await?;
        let registry = self.registry(&snapshot);
        let mut out = String::new();
        let encoded = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        };
        // Writing into a String cannot fail; the encoder's only error is the writer's.
        encoded.expect("encoding metrics into a String");
        Ok(out)
    }

    /// A fresh registry holding the snapshot's figures and the kept histograms.
    fn registry(&self, snap: &MetricsSnapshot) -> Registry {
        let mut r = Registry::with_prefix("boxd");

        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                cgroup_version: snap.cgroup_version.as_str(),
            })
            .set(1);
        r.register(
            "build_info",
            "boxd's version and the host's cgroup hierarchy (always 1)",
            build,
        );

        let images = Gauge::<i64>::default();
        images.set(gauge_value(snap.images));
        r.register("images", "Images in the image store", images);

        let states = Family::<StateLabels, Gauge>::default();
        for state in STATES {
            states.get_or_create(&StateLabels { state }).set(0);
        }
        for c in &snap.containers {
            let state = if c.paused { "paused" } else { c.state.as_str() };
            states.get_or_create(&StateLabels { state }).inc();
        }
        r.register("containers", "Containers by state", states);

        let usage_bytes = Family::<ContainerLabels, Gauge>::default();
        let limit_bytes = Family::<ContainerLabels, Gauge>::default();
        let peak_bytes = Family::<ContainerLabels, Gauge>::default();
        let cpu = Family::<ContainerLabels, Counter<f64, AtomicU64>>::default();
        let pids = Family::<ContainerLabels, Gauge>::default();
        let oom_kills = Family::<ContainerLabels, Counter>::default();
        let restarts = Family::<ContainerLabels, Counter>::default();
        let pressure = Family::<ContainerLabels, Counter>::default();
        for c in &snap.containers {
            let labels = ContainerLabels {
                id: c.id.clone(),
                name: c.name.clone(),
            };
            let usage = snap.usage.get(&c.id);
            // The cgroup's limit is the truth while it runs (`update` may have changed
            // it); otherwise the limit the container will run with.
            let limit = usage.and_then(|u| u.memory.limit).or(c.memory_limit);
            if let Some(limit) = limit {
                limit_bytes.get_or_create(&labels).set(gauge_value(limit));
            }
            if let Some(u) = usage {
                usage_bytes
                    .get_or_create(&labels)
                    .set(gauge_value(u.memory.usage));
                if let Some(peak) = u.memory.peak {
                    peak_bytes.get_or_create(&labels).set(gauge_value(peak));
                }
                cpu.get_or_create(&labels)
                    .inc_by(u.cpu.usage_usec as f64 / 1e6);
                pids.get_or_create(&labels).set(gauge_value(u.pids.current));
            }
            oom_kills.get_or_create(&labels).inc_by(c.oom_kills);
            restarts.get_or_create(&labels).inc_by(c.restart_count);
            pressure.get_or_create(&labels).inc_by(c.pressure_events);
        }
        r.register_with_unit(
            "container_memory_usage",
            "Memory a running container's cgroup uses now",
            Unit::Bytes,
            usage_bytes,
        );
        r.register_with_unit(
            "container_memory_limit",
            "Memory limit of a container (absent when unlimited)",
            Unit::Bytes,
            limit_bytes,
        );
        r.register_with_unit(
            "container_memory_peak",
            "Highest memory use of a running container's cgroup (v2 memory.peak, v1 memory.max_usage_in_bytes)",
            Unit::Bytes,
            peak_bytes,
        );
        r.register_with_unit(
            "container_cpu_usage",
            "CPU time used by a running container's cgroup in its current run",
            Unit::Seconds,
            cpu,
        );
        r.register(
            "container_pids_current",
            "Processes and threads in a running container's cgroup",
            pids,
        );
        r.register(
            "container_oom_kills",
            "Processes the OOM killer killed in a container's current or last run (resets when it starts)",
            oom_kills,
        );
        r.register(
            "container_restarts",
            "Restarts by the container's restart policy since a user last started it",
            restarts,
        );
        r.register(
            "container_memory_pressure_events",
            "memory_pressure events (use over memory_warning_percent of the limit) in a container's current or last run",
            pressure,
        );

        r.register_with_unit(
            "http_request_duration",
            "Time to answer an API request (to the response head; a stream's body is not counted), by route template",
            Unit::Seconds,
            self.inner.http.clone(),
        );
        r.register_with_unit(
            "store_commit_duration",
            "Time a store write takes to commit (one statement, or one transaction's commit), waits for a connection and the write lock included",
            Unit::Seconds,
            self.inner.store_commits.clone(),
        );
        r
    }
}

/// Gauges are `i64`; a `u64` beyond that (never, for bytes or pids) is clamped.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`application/openmetrics-text`), the default.
    OpenMetrics,
    /// Prometheus text 0.0.4 (`text/plain`), for clients that ask only for it
    /// (`promtool check metrics`, older scrapers).
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics unless the client names
    /// `text/plain` and not OpenMetrics. (Prometheus itself lists both, OpenMetrics
    /// first.)
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        let accept = accept.to_ascii_lowercase();
        if !accept.contains("application/openmetrics-text") && accept.contains("text/plain") {
            Format::PrometheusText
        } else {
            Format::OpenMetrics
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The standard methods by name; anything else (an extension method a client made up)
/// is `other`, so a client cannot mint series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `2xx`, `4xx`...: the class, not the code, keeps the label small.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware on the routed API (inside routing, so the route template is known):
/// times each request to its response head. The Docker face's version prefix is
/// stripped before routing, so `/v1.43/containers/x/json` and `/containers/x/json`
/// are both `/containers/{id}/json`.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let resp = next.run(req).await;
    metrics.observe_request(
        &method,
        route.as_deref(),
        resp.status(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// The router of `metrics_address`: `GET /metrics` and nothing else (every other path
/// is a plain 404), so opening a TCP port never opens the API.
pub fn tcp_router(metrics: Metrics, runtime: Runtime) -> axum::Router {
    let m = metrics.clone();
    axum::Router::new()
        .route(
            PATH,
            axum::routing::get(move |headers: HeaderMap| async move {
                answer(&m, &runtime, &headers).await
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(metrics, track))
}

/// `GET /metrics` for a runtime: the body in the format `Accept` asks for.
pub async fn answer(metrics: &Metrics, runtime: &Runtime, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    match metrics.render(runtime, format).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "failed to gather metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to gather metrics\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let made_up = Method::from_bytes(b"FROBNICATE").unwrap();
        assert_eq!(method_label(&made_up), "other");
        let another = Method::from_bytes(b"X-1234").unwrap();
        assert_eq!(method_label(&another), "other");
    }

    #[test]
    fn statuses_are_classes() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::NO_CONTENT), "2xx");
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::NOT_MODIFIED), "3xx");
        assert_eq!(status_class(StatusCode::CONFLICT), "4xx");
        assert_eq!(status_class(StatusCode::INTERNAL_SERVER_ERROR), "5xx");
    }

    #[test]
    fn accept_picks_the_format() {
        use Format::*;
        let cases = [
            (None, OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some("application/openmetrics-text; version=1.0.0"), OpenMetrics),
            // What Prometheus sends: both, OpenMetrics first.
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                OpenMetrics,
            ),
            (Some("text/plain; version=0.0.4"), PrometheusText),
            (Some("Text/Plain"), PrometheusText),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::from_accept(accept), want, "{accept:?}");
        }
        assert_eq!(OpenMetrics.content_type(), OPENMETRICS_CONTENT_TYPE);
        assert!(PrometheusText
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn requests_are_labelled_by_template_and_containers_by_id_and_name(
        pool: sqlx::SqlitePool,
    ) {
        use crate::runtime::spec::ContainerState;
        use crate::store::ContainerMetrics;
        let store = Store::from_pool(pool).await.unwrap();
        let metrics = Metrics::new(&store);
        let ok = StatusCode::OK;
        metrics.observe_request(&Method::GET, Some("/v1/containers/{id}"), ok, 0.002);
        metrics.observe_request(&Method::GET, Some("/v1/containers/{id}"), ok, 0.003);
        for i in 0..100 {
            let odd = Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            metrics.observe_request(&odd, None, StatusCode::NOT_FOUND, 0.001);
        }
        let row = |id: &str, name: &str, state| ContainerMetrics {
            id: id.into(),
            name: name.into(),
            state,
            paused: false,
            restart_count: 2,
            memory_limit: Some(1 << 20),
            oom_kills: 1,
            pressure_events: 3,
        };
        let mut usage = crate::runtime::Usage::default();
        usage.memory.usage = 4096;
        usage.memory.limit = Some(2 << 20);
        usage.cpu.usage_usec = 1_500_000;
        usage.pids.current = 7;
        let snap = MetricsSnapshot {
            containers: vec![
                row("aaaa", "up", ContainerState::Running),
                row("bbbb", "down", ContainerState::Exited),
            ],
            usage: [("aaaa".to_owned(), usage)].into(),
            images: 3,
            cgroup_version: crate::cgroups::CgroupVersion::V2,
        };
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry(&snap)).unwrap();
        for want in [
            r#"boxd_http_request_duration_seconds_count{method="GET",route="/v1/containers/{id}",status="2xx"} 2"#,
            // A hundred made-up methods on unknown paths: one series.
            r#"boxd_http_request_duration_seconds_count{method="other",route="unmatched",status="4xx"} 100"#,
            r#"boxd_containers{state="running"} 1"#,
            r#"boxd_containers{state="exited"} 1"#,
            r#"boxd_containers{state="dead"} 0"#,
            r#"boxd_images 3"#,
            // The cgroup's limit wins over the stored one while running.
            r#"boxd_container_memory_limit_bytes{id="aaaa",name="up"} 2097152"#,
            r#"boxd_container_memory_limit_bytes{id="bbbb",name="down"} 1048576"#,
            r#"boxd_container_memory_usage_bytes{id="aaaa",name="up"} 4096"#,
            r#"boxd_container_cpu_usage_seconds_total{id="aaaa",name="up"} 1.5"#,
            r#"boxd_container_pids_current{id="aaaa",name="up"} 7"#,
            r#"boxd_container_oom_kills_total{id="bbbb",name="down"} 1"#,
            r#"boxd_container_restarts_total{id="bbbb",name="down"} 2"#,
            r#"boxd_container_memory_pressure_events_total{id="aaaa",name="up"} 3"#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        // A stopped container has no usage series; no kernel peak was read.
        assert!(!text.contains(r#"boxd_container_memory_usage_bytes{id="bbbb""#));
        assert!(!text.contains("boxd_container_memory_peak_bytes{"));
        assert!(text.ends_with("# EOF\n"));
    }
}
