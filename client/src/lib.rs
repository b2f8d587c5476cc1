//! `boxd-client`: a typed async client for the boxd REST API.
//!
//! [`Client`] speaks HTTP/1.1 (hyper) over the daemon's Unix socket, one method per route
//! of `/v1`, with the wire types of [`models`] (the `boxd-types` crate, re-exported here so
//! a client needs one dependency). Each call opens its own connection: a Unix
//! socket connect costs next to nothing, and long calls (`wait`, followed logs, the event
//! stream) then never hold up other calls. Nothing is sent over TCP.
//!
//! Streamed answers (`logs`, `events`) are NDJSON, decoded line by line as the bytes
//! arrive; a stream is never buffered whole.
//!
//! ```no_run
//! # async fn demo() -> Result<(), boxd_client::Error> {
//! use boxd_client::{Client, models::CreateContainer};
//! let client = Client::from_env();
//! let created = client
//!     .create_container(&CreateContainer {
//!         image: "busybox".into(),
//!         cmd: Some(vec!["echo".into(), "hi".into()]),
//!         ..Default::default()
//!     })
//!     .await?;
//! client.start(&created.id).await?;
//! let exit = client.wait(&created.id).await?;
//! println!("exit code {}", exit.exit_code);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attach;
mod error;
pub mod exec;

/// The `/v1` wire types: the `boxd-types` crate.
pub use boxd_types as models;

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

pub use error::Error;
use models::SystemCheck;
use models::{
    Container, CreateContainer, CreateResponse, ErrorBody, Event, Image, Info, LogEntry, Version,
    WaitResponse,
};
use models::{ContainerStats, ExitInfo};
use models::{LoadResponse, PruneResponse, PullProgress, PullRequest, TagRequest};
use models::{Network, NetworkConnect, NetworkCreate, NetworkDisconnect};
use models::{UpdateContainer, UpdateResponse};
use models::{Volume, VolumeCreate, VolumePruneResponse};

pub use boxd_types::DEFAULT_SOCKET;

/// The environment variable that names the daemon's socket.
pub const SOCKET_ENV: &str = "BOXD_SOCKET";

/// Longest NDJSON line accepted from a stream; a longer one means a broken peer, and
/// holding it would defeat streaming.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Characters escaped in one path segment (a container id or name): everything a path
/// cannot carry literally, and `/`, so an odd name never reaches another route.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Image references keep their `/` (`library/busybox:1`): the route is `/v1/images/{*ref}`.
const REF_PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// Query values: everything but the unreserved characters is escaped.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type ReqBody = UnsyncBoxBody<Bytes, io::Error>;

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Options of [`Client::logs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsOptions {
    /// Keep streaming new output until the container exits.
    pub follow: bool,
    /// Only the last N entries; `None` for all.
    pub tail: Option<u64>,
    /// Only entries at or after this time: RFC 3339 or unix seconds.
    pub since: Option<String>,
    /// Include standard output.
    pub stdout: bool,
    /// Include standard error.
    pub stderr: bool,
}

impl Default for LogsOptions {
    /// Both streams, everything so far, no follow.
    fn default() -> Self {
        LogsOptions {
            follow: false,
            tail: None,
            since: None,
            stdout: true,
            stderr: true,
        }
    }
}

/// Options of [`Client::events`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsOptions {
    /// Replay events from here: a sequence number (exclusive) or an RFC 3339 time.
    pub since: Option<String>,
    /// Stop at this sequence number or time; without it the stream stays live forever.
    pub until: Option<String>,
    /// Only events of this container (id, prefix or name).
    pub container: Option<String>,
    /// Only events of this type (`container`, `image`).
    pub kind: Option<String>,
    /// Only events with this action (`oom`, `die`, `memory_pressure`, ...).
    pub action: Option<String>,
}

/// A handle on a boxd daemon, cheap to clone.
///
/// No I/O happens until the first call; each call connects to the socket anew, and
/// drives its connection on a tokio task, so calls must run inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct Client {
    socket: Arc<PathBuf>,
}

impl Client {
    /// A client for the daemon listening on the Unix socket at `path`.
    pub fn connect(path: impl Into<PathBuf>) -> Client {
        Client {
            socket: Arc::new(path.into()),
        }
    }

    /// A client for the socket named by `BOXD_SOCKET`, else [`DEFAULT_SOCKET`].
    pub fn from_env() -> Client {
        match std::env::var_os(SOCKET_ENV) {
            Some(path) if !path.is_empty() => Client::connect(path),
            _ => Client::connect(DEFAULT_SOCKET),
        }
    }

    /// The socket this client talks to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Version> {
        self.get_json("/v1/version".into()).await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        self.get_json("/v1/info".into()).await
    }

    /// `GET /v1/system/check`: what the store and the kernel disagree on, and what the
    /// daemon's start-up reconcile did.
    pub async fn system_check(&self) -> Result<SystemCheck> {
        self.get_json("/v1/system/check".into()).await
    }

    /// `GET /v1/images`: every image in the store.
    pub async fn images(&self) -> Result<Vec<Image>> {
        self.get_json("/v1/images".into()).await
    }

    /// `POST /v1/images/import?name=REF` with the rootfs tarball (plain, gzip or zstd) at
    /// `path`, streamed from the file.
    pub async fn import_image(&self, name: &str, path: impl AsRef<Path>) -> Result<Image> {
        let path = path.as_ref();
        let open_err = |source| Error::OpenFile {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(open_err)?;
        let len = file.metadata().await.map_err(open_err)?.len();
        self.import(name, file, Some(len)).await
    }

    /// `POST /v1/images/import?name=REF` with the tarball read from `reader`, sent with
    /// chunked transfer encoding as it is read.
    pub async fn import_image_stream<R>(&self, name: &str, reader: R) -> Result<Image>
    where
        R: AsyncRead + Send + 'static,
    {
        self.import(name, reader, None).await
    }

    async fn import<R>(&self, name: &str, reader: R, len: Option<u64>) -> Result<Image>
    where
        R: AsyncRead + Send + 'static,
    {
        let frames = tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data);
        let body = UnsyncBoxBody::new(StreamBody::new(frames));
        let mut query = Query::default();
        query.push("name", name);
        let mut req = request(Method::POST, format!("/v1/images/import{query}"), body)?;
        let headers = req.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        let resp = self.send(req).await?;
        decode(resp).await
    }

    /// `POST /v1/images/pull`: pulls an image from a registry. The answer is a stream of
    /// progress lines decoded as they arrive (per-layer bytes done/total), ending with
    /// `done` (carrying the image) or `error`. Failures the daemon knows before the first
    /// byte (bad reference, unknown image, refused credentials) come back here instead.
    pub async fn pull(
        &self,
        request: &PullRequest,
    ) -> Result<impl Stream<Item = Result<PullProgress>> + Send + Unpin + 'static> {
        let req = json_request(Method::POST, "/v1/images/pull".into(), request)?;
        let resp = self.send(req).await?;
        Ok(ndjson_stream(resp.into_body()))
    }

    /// `POST /v1/images/load` with the archive at `path` (a `docker save` tar or an OCI
    /// layout as a tar), streamed from the file. `name` names an OCI archive's image when
    /// it has no tag of its own; `platform` picks from a multi-platform index.
    pub async fn load_image(
        &self,
        path: impl AsRef<Path>,
        name: Option<&str>,
        platform: Option<&str>,
    ) -> Result<LoadResponse> {
        let path = path.as_ref();
        let open_err = |source| Error::OpenFile {
            path: path.to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(open_err)?;
        let len = file.metadata().await.map_err(open_err)?.len();
        self.load(file, Some(len), name, platform).await
    }

    /// [`Client::load_image`] with the archive read from `reader` (chunked as it is read).
    pub async fn load_image_stream<R>(
        &self,
        reader: R,
        name: Option<&str>,
        platform: Option<&str>,
    ) -> Result<LoadResponse>
    where
        R: AsyncRead + Send + 'static,
    {
        self.load(reader, None, name, platform).await
    }

    async fn load<R>(
        &self,
        reader: R,
        len: Option<u64>,
        name: Option<&str>,
        platform: Option<&str>,
    ) -> Result<LoadResponse>
    where
        R: AsyncRead + Send + 'static,
    {
        let frames = tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data);
        let body = UnsyncBoxBody::new(StreamBody::new(frames));
        let mut query = Query::default();
        if let Some(name) = name {
            query.push("name", name);
        }
        if let Some(platform) = platform {
            query.push("platform", platform);
        }
        let mut req = request(Method::POST, format!("/v1/images/load{query}"), body)?;
        let headers = req.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        decode(self.send(req).await?).await
    }

    /// `POST /v1/images/tag`: gives the image `source` (name or id) the name `target`.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<Image> {
        let body = TagRequest {
            source: source.to_owned(),
            target: target.to_owned(),
        };
        let req = json_request(Method::POST, "/v1/images/tag".into(), &body)?;
        decode(self.send(req).await?).await
    }

    /// `POST /v1/images/prune?all=`: removes untagged images no container uses (every
    /// unused image with `all`) and the layers no image needs any more.
    pub async fn prune_images(&self, all: bool) -> Result<PruneResponse> {
        let mut query = Query::default();
        query.push("all", all);
        let req = request(Method::POST, format!("/v1/images/prune{query}"), empty())?;
        decode(self.send(req).await?).await
    }

    /// `GET /v1/images/{ref}`: one image by name or id.
    pub async fn image(&self, reference: &str) -> Result<Image> {
        self.get_json(format!("/v1/images/{}", ref_path(reference)))
            .await
    }

    /// `DELETE /v1/images/{ref}?force=`: removes an image; without `force` the daemon
    /// refuses (409 `image_in_use`) while a container uses it.
    pub async fn remove_image(&self, reference: &str, force: bool) -> Result<()> {
        let mut query = Query::default();
        query.push("force", force);
        let path = format!("/v1/images/{}{query}", ref_path(reference));
        self.no_content(Method::DELETE, path).await
    }

    /// `POST /v1/containers`: creates a container (it does not start it).
    pub async fn create_container(&self, spec: &CreateContainer) -> Result<CreateResponse> {
        let req = json_request(Method::POST, "/v1/containers".into(), spec)?;
        decode(self.send(req).await?).await
    }

    /// `GET /v1/containers?all=`: running containers, or every one with `all`.
    pub async fn containers(&self, all: bool) -> Result<Vec<Container>> {
        let mut query = Query::default();
        query.push("all", all);
        self.get_json(format!("/v1/containers{query}")).await
    }

    /// `GET /v1/containers/{id}`: inspect by full id, unique id prefix, or name.
    pub async fn container(&self, id: &str) -> Result<Container> {
        self.get_json(container_path(id, "")).await
    }

    /// `POST /v1/containers/{id}/start` (409 `already_running`).
    pub async fn start(&self, id: &str) -> Result<()> {
        self.no_content(Method::POST, container_path(id, "/start"))
            .await
    }

    /// `POST /v1/containers/{id}/stop?timeout=`: SIGTERM, then SIGKILL after `timeout`
    /// seconds (the daemon's default when `None`).
    pub async fn stop(&self, id: &str, timeout: Option<u64>) -> Result<()> {
        let mut query = Query::default();
        if let Some(secs) = timeout {
            query.push("timeout", secs);
        }
        let path = format!("{}{query}", container_path(id, "/stop"));
        self.no_content(Method::POST, path).await
    }

    /// `POST /v1/containers/{id}/restart?timeout=`: stops it when it runs (as
    /// [`Client::stop`]), then starts it.
    pub async fn restart(&self, id: &str, timeout: Option<u64>) -> Result<()> {
        let mut query = Query::default();
        if let Some(secs) = timeout {
            query.push("timeout", secs);
        }
        let path = format!("{}{query}", container_path(id, "/restart"));
        self.no_content(Method::POST, path).await
    }

    /// `POST /v1/containers/{id}/kill?signal=`: sends `signal` (`SIGTERM`, `TERM` or `15`),
    /// SIGKILL when `None` (409 `not_running`).
    pub async fn kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let mut query = Query::default();
        if let Some(signal) = signal {
            query.push("signal", signal);
        }
        let path = format!("{}{query}", container_path(id, "/kill"));
        self.no_content(Method::POST, path).await
    }

    /// `POST /v1/containers/{id}/pause`: freezes every process of a running container
    /// (409 `not_running`, `already_paused`).
    pub async fn pause(&self, id: &str) -> Result<()> {
        self.no_content(Method::POST, container_path(id, "/pause"))
            .await
    }

    /// `POST /v1/containers/{id}/unpause`: thaws a paused container (409 `not_paused`).
    pub async fn unpause(&self, id: &str) -> Result<()> {
        self.no_content(Method::POST, container_path(id, "/unpause"))
            .await
    }

    /// `POST /v1/containers/{id}/rename?name=`: renames a container, running or not (409
    /// `name_in_use`).
    pub async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let mut query = Query::default();
        query.push("name", name);
        let path = format!("{}{query}", container_path(id, "/rename"));
        self.no_content(Method::POST, path).await
    }

    /// `POST /v1/containers/{id}/update`: changes limits (live when it runs) and the
    /// restart policy; answers the limits the host cannot honour exactly (409
    /// `limit_below_usage` when the kernel cannot reclaim down to a new memory limit).
    pub async fn update(&self, id: &str, body: &UpdateContainer) -> Result<UpdateResponse> {
        let req = json_request(Method::POST, container_path(id, "/update"), body)?;
        decode(self.send(req).await?).await
    }

    /// `POST /v1/containers/{id}/wait`: blocks until the container exits.
    pub async fn wait(&self, id: &str) -> Result<WaitResponse> {
        let req = request(Method::POST, container_path(id, "/wait"), empty())?;
        decode(self.send(req).await?).await
    }

    /// `GET /v1/containers/{id}/logs?format=ndjson`: the container's output as a stream of
    /// entries, decoded as they arrive. With `follow` the stream ends when the container
    /// exits. Errors the daemon reports up front (no such container) come back here, not
    /// in the stream.
    pub async fn logs(
        &self,
        id: &str,
        options: LogsOptions,
    ) -> Result<impl Stream<Item = Result<LogEntry>> + Send + Unpin + 'static> {
        let mut query = Query::default();
        query.push("format", "ndjson");
        query.push("follow", options.follow);
        query.push("stdout", options.stdout);
        query.push("stderr", options.stderr);
        if let Some(tail) = options.tail {
            query.push("tail", tail);
        }
        if let Some(since) = &options.since {
            query.push("since", since);
        }
        let path = format!("{}{query}", container_path(id, "/logs"));
        let resp = self.send(request(Method::GET, path, empty())?).await?;
        Ok(ndjson_stream(resp.into_body()))
    }

    /// `DELETE /v1/containers/{id}?force=`: removes a container; without `force` the
    /// daemon refuses (409 `container_running`) while it runs.
    pub async fn remove_container(&self, id: &str, force: bool) -> Result<()> {
        let mut query = Query::default();
        query.push("force", force);
        let path = format!("{}{query}", container_path(id, ""));
        self.no_content(Method::DELETE, path).await
    }

    /// `DELETE /v1/containers/{id}?force=&v=`: as [`Client::remove_container`]; with
    /// `volumes`, the container's anonymous volumes go too (`docker rm -v`).
    pub async fn remove_container_with_volumes(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let mut query = Query::default();
        query.push("force", force);
        if volumes {
            query.push("v", true);
        }
        let path = format!("{}{query}", container_path(id, ""));
        self.no_content(Method::DELETE, path).await
    }

    /// `GET /v1/events`: the event stream, decoded as it arrives. It stays live forever
    /// unless `until` is set.
    pub async fn events(
        &self,
        options: EventsOptions,
    ) -> Result<impl Stream<Item = Result<Event>> + Send + Unpin + 'static> {
        let mut query = Query::default();
        if let Some(since) = &options.since {
            query.push("since", since);
        }
        if let Some(until) = &options.until {
            query.push("until", until);
        }
        if let Some(container) = &options.container {
            query.push("container", container);
        }
        if let Some(kind) = &options.kind {
            query.push("type", kind);
        }
        if let Some(action) = &options.action {
            query.push("action", action);
        }
        let resp = self
            .send(request(Method::GET, format!("/v1/events{query}"), empty())?)
            .await?;
        Ok(ndjson_stream(resp.into_body()))
    }

    /// `GET /v1/containers/{id}/stats`: resource use now (409 `not_running`).
    pub async fn stats(&self, id: &str) -> Result<ContainerStats> {
        self.get_json(container_path(id, "/stats")).await
    }

    /// `GET /v1/stats`: resource use of every running container.
    pub async fn all_stats(&self) -> Result<Vec<ContainerStats>> {
        self.get_json("/v1/stats".to_owned()).await
    }

    /// `GET /v1/stats?stream=true`: every running container's use, one sample per
    /// `interval_ms`.
    pub async fn all_stats_stream(
        &self,
        interval_ms: u64,
    ) -> Result<impl Stream<Item = Result<Vec<ContainerStats>>> + Send + Unpin + 'static> {
        let resp = self
            .send(request(
                Method::GET,
                format!("/v1/stats?stream=true&interval_ms={interval_ms}"),
                empty(),
            )?)
            .await?;
        Ok(ndjson_stream(resp.into_body()))
    }

    /// `GET /v1/containers/{id}/exits`: how each run ended, oldest first.
    pub async fn exits(&self, id: &str) -> Result<Vec<ExitInfo>> {
        self.get_json(container_path(id, "/exits")).await
    }

    /// `POST /v1/networks`: creates a network (409 when the name or subnet is taken).
    pub async fn create_network(&self, spec: &NetworkCreate) -> Result<Network> {
        let req = json_request(Method::POST, "/v1/networks".into(), spec)?;
        decode(self.send(req).await?).await
    }

    /// `GET /v1/networks`: every network, the default one included.
    pub async fn networks(&self) -> Result<Vec<Network>> {
        self.get_json("/v1/networks".into()).await
    }

    /// `GET /v1/networks/{name}`: one network, with the running containers on it.
    pub async fn network(&self, name: &str) -> Result<Network> {
        self.get_json(network_path(name)).await
    }

    /// `DELETE /v1/networks/{name}`: removes a network; the daemon refuses the default
    /// one and one that containers still use.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        self.no_content(Method::DELETE, network_path(name)).await
    }

    /// `POST /v1/networks/{name}/connect`: one more network for a container.
    pub async fn connect_network(&self, name: &str, body: &NetworkConnect) -> Result<()> {
        let req = json_request(
            Method::POST,
            format!("{}/connect", network_path(name)),
            body,
        )?;
        self.send(req).await?;
        Ok(())
    }

    /// `POST /v1/networks/{name}/disconnect`: a connected network off a container.
    pub async fn disconnect_network(&self, name: &str, body: &NetworkDisconnect) -> Result<()> {
        let req = json_request(
            Method::POST,
            format!("{}/disconnect", network_path(name)),
            body,
        )?;
        self.send(req).await?;
        Ok(())
    }

    /// `POST /v1/volumes`: creates a volume, or returns the one of that name (Docker's
    /// create is idempotent; 409 `name_in_use` when it has another driver).
    pub async fn create_volume(&self, spec: &VolumeCreate) -> Result<Volume> {
        let req = json_request(Method::POST, "/v1/volumes".into(), spec)?;
        decode(self.send(req).await?).await
    }

    /// `GET /v1/volumes`: volumes passing every filter given, each a `(key, value)` of
    /// `dangling` (`true`/`false`), `name` (a substring) or `label` (`k` or `k=v`).
    pub async fn volumes(&self, filters: &[(String, String)]) -> Result<Vec<Volume>> {
        let mut query = Query::default();
        for (k, v) in filters {
            query.push(k, v);
        }
        self.get_json(format!("/v1/volumes{query}")).await
    }

    /// `GET /v1/volumes/{name}`.
    pub async fn volume(&self, name: &str) -> Result<Volume> {
        self.get_json(volume_path(name)).await
    }

    /// `DELETE /v1/volumes/{name}?force=`: 409 `volume_in_use` while a container is
    /// configured with it; `force` only makes a missing volume not an error.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let mut query = Query::default();
        query.push("force", force);
        self.no_content(Method::DELETE, format!("{}{query}", volume_path(name)))
            .await
    }

    /// `POST /v1/volumes/prune`: removes every volume no container uses.
    pub async fn prune_volumes(&self) -> Result<VolumePruneResponse> {
        let req = request(Method::POST, "/v1/volumes/prune".into(), empty())?;
        decode(self.send(req).await?).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: String) -> Result<T> {
        let resp = self.send(request(Method::GET, path, empty())?).await?;
        decode(resp).await
    }

    async fn no_content(&self, method: Method, path: String) -> Result<()> {
        self.send(request(method, path, empty())?).await?;
        Ok(())
    }

    /// A new connection to the daemon's socket.
    async fn open_socket(&self) -> Result<UnixStream> {
        UnixStream::connect(self.socket.as_path())
            .await
            .map_err(|source| Error::Connect {
                path: self.socket.to_path_buf(),
                source,
            })
    }

    /// Sends `req` asking for `Upgrade: tcp` and returns the `101 Switching Protocols`
    /// answer (its headers, and the connection to upgrade with `hyper::upgrade::on`);
    /// any other answer is the daemon's error.
    async fn send_upgrade(&self, mut req: Request<ReqBody>) -> Result<Response<Incoming>> {
        use hyper::header::{HeaderValue, CONNECTION, UPGRADE};
        req.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        req.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("tcp"));
        let stream = self.open_socket().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let resp = sender.send_request(req).await.map_err(Error::Http)?;
        if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
            return Err(api_error(resp).await);
        }
        Ok(resp)
    }

    /// Connects, sends `req`, and turns an error status into [`Error::Api`].
    async fn send(&self, req: Request<ReqBody>) -> Result<Response<Incoming>> {
        let stream = self.open_socket().await?;
        let io = TokioIo::new(Socket {
            stream,
            peer_gone: false,
        });
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(Error::Http)?;
        // The connection task drives the socket until the answer's body is read or
        // dropped; its failures surface through `send_request` and the body.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender.send_request(req).await.map_err(Error::Http)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(api_error(resp).await)
        }
    }
}

/// The daemon's socket, tolerant of a peer that answers before it reads the whole
/// request body.
///
/// The daemon may refuse an upload early (413 too large, 400 bad name, 404) and hang up
/// without reading the rest. Its answer is then already in our receive buffer, but the
/// next body write fails with EPIPE and hyper would report that instead of the answer,
/// depending on which it polls first. Once the peer is gone, writes are therefore
/// swallowed, so hyper goes on to read the answer, which is what the caller needs.
struct Socket {
    stream: UnixStream,
    peer_gone: bool,
}

impl Socket {
    fn swallow(&mut self, result: io::Result<usize>, len: usize) -> io::Result<usize> {
        match result {
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                self.peer_gone = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.peer_gone {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = std::task::ready!(Pin::new(&mut self.stream).poll_write(cx, buf));
        Poll::Ready(self.swallow(result, buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        if self.peer_gone {
            return Poll::Ready(Ok(len));
        }
        let result = std::task::ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs));
        Poll::Ready(self.swallow(result, len))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.peer_gone {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn empty() -> ReqBody {
    UnsyncBoxBody::new(Empty::new().map_err(|never| match never {}))
}

fn request(method: Method, path: String, body: ReqBody) -> Result<Request<ReqBody>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "boxd")
        .header(
            USER_AGENT,
            concat!("boxd-client/", env!("CARGO_PKG_VERSION")),
        )
        .body(body)
        .map_err(Error::BuildRequest)
}

fn json_request<T: Serialize>(method: Method, path: String, value: &T) -> Result<Request<ReqBody>> {
    let bytes = serde_json::to_vec(value).map_err(Error::Encode)?;
    let body = UnsyncBoxBody::new(Full::new(Bytes::from(bytes)).map_err(|never| match never {}));
    let mut req = request(method, path, body)?;
    req.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(req)
}

async fn decode<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T> {
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(Error::Http)?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(Error::Decode)
}

/// Reads an error answer into [`Error::Api`]; a body that is not an `ErrorBody` (a proxy,
/// a panic page) still gives the status and its text.
async fn api_error(resp: Response<Incoming>) -> Error {
    let status = resp.status();
    let bytes = match resp.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return Error::Http(err),
    };
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => Error::Api {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        },
        Err(_) => Error::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: fallback_message(status, &bytes),
        },
    }
}

fn fallback_message(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_lowercase()
    } else {
        text.chars().take(200).collect()
    }
}

fn container_path(id: &str, suffix: &str) -> String {
    format!(
        "/v1/containers/{}{suffix}",
        utf8_percent_encode(id, SEGMENT)
    )
}

fn volume_path(name: &str) -> String {
    format!("/v1/volumes/{}", utf8_percent_encode(name, SEGMENT))
}

fn network_path(name: &str) -> String {
    format!("/v1/networks/{}", utf8_percent_encode(name, SEGMENT))
}

fn ref_path(reference: &str) -> String {
    utf8_percent_encode(reference, REF_PATH).to_string()
}

/// A query string built pair by pair; renders as `""` or `"?k=v&..."`.
#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: impl Display) {
        self.0.push(if self.0.is_empty() { '?' } else { '&' });
        self.0.push_str(key);
        self.0.push('=');
        let value = value.to_string();
        self.0
            .extend(utf8_percent_encode(&value, QUERY_VALUE).map(|s| s.to_string()));
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a byte stream into lines as chunks arrive, whatever the chunk boundaries.
///
/// Pushed bytes are kept only until their line is complete; `scanned` remembers how far
/// the buffer was already searched for `\n`, so a long line arriving in many small chunks
/// is not searched again from its start each time.
#[derive(Debug)]
pub struct LineSplitter {
    buf: BytesMut,
    scanned: usize,
    limit: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that refuses lines longer than `limit` bytes.
    pub fn new(limit: usize) -> LineSplitter {
        LineSplitter {
            buf: BytesMut::new(),
            scanned: 0,
            limit,
        }
    }

    /// Appends a chunk as it came off the wire.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line without its `\n` (or `\r\n`), if one is buffered.
    pub fn next_line(&mut self) -> Result<Option<Bytes>> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(at) => {
                let end = self.scanned + at;
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                self.scanned = 0;
                Ok(Some(line.freeze()))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.limit {
                    Err(Error::LineTooLong { limit: self.limit })
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// What is left after the stream ended: a last line without a newline, if any.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        let rest = self.buf.split().freeze();
        (!rest.is_empty()).then_some(rest)
    }
}

/// Decodes an NDJSON body into items as its frames arrive. Blank lines are skipped; a line
/// that does not decode yields an error and the stream goes on.
fn ndjson_stream<T>(body: Incoming) -> impl Stream<Item = Result<T>> + Send + Unpin + 'static
where
    T: DeserializeOwned + Send + 'static,
{
    let state = Some((body, LineSplitter::default()));
    futures_util::stream::unfold(state, |state| async move {
        let (mut body, mut lines) = state?;
        loop {
            match lines.next_line() {
                Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(Some(line)) => {
                    let item = serde_json::from_slice(&line).map_err(Error::Decode);
                    return Some((item, Some((body, lines))));
                }
                Ok(None) => {}
                Err(err) => return Some((Err(err), None)),
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    // Trailers carry nothing for us; only data frames feed the splitter.
                    if let Ok(data) = frame.into_data() {
                        lines.push(&data);
                    }
                }
                Some(Err(err)) => return Some((Err(Error::Http(err)), None)),
                None => {
                    let rest = lines.finish()?;
                    if rest.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let item = serde_json::from_slice(&rest).map_err(Error::Decode);
                    return Some((item, None));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(splitter: &mut LineSplitter) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(line) = splitter.next_line().unwrap() {
            out.push(String::from_utf8(line.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn splitter_joins_lines_split_across_chunks() {
        let mut s = LineSplitter::default();
        s.push(b"{\"a\":");
        assert!(drain(&mut s).is_empty(), "no line before the newline");
        s.push(b"1}\n{\"b\"");
        assert_eq!(drain(&mut s), ["{\"a\":1}"]);
        s.push(b":2}\n\n{\"c\":3}\r\n{\"d\"");
        assert_eq!(drain(&mut s), ["{\"b\":2}", "", "{\"c\":3}"]);
        s.push(b":4}");
        assert!(drain(&mut s).is_empty());
        assert_eq!(s.finish().as_deref(), Some(&b"{\"d\":4}"[..]));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_byte_by_byte_equals_whole() {
        let input = b"one\ntwo\nthree\n";
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        for b in input {
            s.push(std::slice::from_ref(b));
            got.extend(drain(&mut s));
        }
        assert_eq!(got, ["one", "two", "three"]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_refuses_overlong_line() {
        let mut s = LineSplitter::new(8);
        s.push(b"0123456");
        assert!(s.next_line().unwrap().is_none());
        s.push(b"789");
        assert!(matches!(
            s.next_line(),
            Err(Error::LineTooLong { limit: 8 })
        ));
    }

    #[test]
    fn paths_escape_what_a_path_cannot_carry() {
        assert_eq!(container_path("abc", "/start"), "/v1/containers/abc/start");
        assert_eq!(container_path("a/b c", ""), "/v1/containers/a%2Fb%20c");
        assert_eq!(network_path("web net"), "/v1/networks/web%20net");
        assert_eq!(ref_path("library/busybox:1.36"), "library/busybox:1.36");
        assert_eq!(ref_path("x?y#z"), "x%3Fy%23z");
    }

    #[test]
    fn query_escapes_values() {
        let mut q = Query::default();
        assert_eq!(q.to_string(), "");
        q.push("name", "busybox:latest");
        q.push("since", "2024-01-02T03:04:05+01:00");
        q.push("all", true);
        assert_eq!(
            q.to_string(),
            "?name=busybox%3Alatest&since=2024-01-02T03%3A04%3A05%2B01%3A00&all=true"
        );
    }

    #[test]
    fn error_body_fallback_uses_status_text() {
        assert_eq!(
            fallback_message(StatusCode::BAD_GATEWAY, b""),
            "bad gateway"
        );
        assert_eq!(
            fallback_message(StatusCode::BAD_GATEWAY, b" oops \n"),
            "oops"
        );
    }
}
