//! `/containers/{id}/exec` and `/exec/{id}/...`: Docker creates an exec, then starts
//! it in a second call (with or without a hijacked stream), then reads its exit code.
//!
//! boxd's engine starts an exec in one call, so a created exec waits here
//! ([`Pending`]) until its start, under the id the client was given; once started it
//! maps to the engine's exec. The stream closes only after the exit is recorded, so
//! the `GET /exec/{id}/json` the CLI sends on seeing the close finds the exit code.

use std::time::Duration;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig};
use chrono::{DateTime, Utc};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::containers::size_of;
use super::error::{DockerError, DockerJson, DockerQuery};
use crate::api::AppState;
use crate::runtime::RuntimeError;

/// Execs are forgotten this long after their create unless they still run (Docker keeps
/// them until the container goes; boxd bounds what clients can pile up).
const PENDING_TTL: Duration = Duration::from_secs(3600);
/// Most execs waiting for their start at once.
const MAX_PENDING: usize = 1024;

/// An exec as Docker knows it: created, or started (then the engine's id).
#[derive(Debug, Clone)]
pub(super) struct Pending {
    container_id: String,
    config: boxd_types::ExecCreate,
    attach_stdout: bool,
    attach_stderr: bool,
    created: DateTime<Utc>,
    /// A start was asked for.
    claimed: bool,
    /// The engine's exec id once started.
    started: Option<String>,
    /// The exit code of a start that failed (the process never ran).
    failed: Option<i32>,
}

/// The answer to an exec create: `{"Id": ...}` (bollard's `IdResponse` spells it `ID`).
#[derive(Debug, serde::Serialize)]
pub(super) struct ExecCreated {
    #[serde(rename = "Id")]
    id: String,
}

pub(super) async fn create(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerJson(body): DockerJson<ExecConfig>,
) -> Result<(StatusCode, Json<ExecCreated>), DockerError> {
    let c = s.runtime.container(&id).await?;
    if c.state != crate::runtime::spec::ContainerState::Running {
        return Err(DockerError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", c.id),
        ));
    }
    if body.privileged == Some(true) {
        return Err(DockerError::bad(
            "Privileged is not supported by boxd: an exec runs with the container's capabilities",
        ));
    }
    let cmd = body.cmd.clone().unwrap_or_default();
    if cmd.first().is_none_or(|c| c.is_empty()) {
        return Err(DockerError::bad("No exec command specified"));
    }
    let (height, width) = match body.console_size.as_deref() {
        Some([h, w]) if *h > 0 && *w > 0 => (Some(*h as u16), Some(*w as u16)),
        _ => (None, None),
    };
    let config = boxd_types::ExecCreate {
        cmd,
        env: body.env.clone().unwrap_or_default(),
        working_dir: body.working_dir.clone().filter(|w| !w.is_empty()),
        user: body.user.clone().filter(|u| !u.is_empty()),
        tty: body.tty.unwrap_or(false),
        stdin: body.attach_stdin.unwrap_or(false),
        height,
        width,
    };
    let exec_id = crate::runtime::names::generate_container_id();
    let mut execs = s.docker.execs.lock().expect("execs poisoned");
    let now = Utc::now();
    // Execs are kept an hour for their inspect, longer while they run.
    execs.retain(|_, p| {
        (now - p.created).to_std().unwrap_or_default() < PENDING_TTL
            || p.started
                .as_deref()
                .is_some_and(|e| s.runtime.exec_inspect(e).is_ok_and(|i| i.running))
    });
    if execs.values().filter(|p| !p.claimed).count() >= MAX_PENDING {
        return Err(DockerError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_PENDING} execs are created and not started; start or abandon some"),
        ));
    }
    execs.insert(
        exec_id.clone(),
        Pending {
            container_id: c.id,
            config,
            attach_stdout: body.attach_stdout.unwrap_or(true),
            attach_stderr: body.attach_stderr.unwrap_or(true),
            created: now,
            claimed: false,
            started: None,
            failed: None,
        },
    );
    Ok((StatusCode::CREATED, Json(ExecCreated { id: exec_id })))
}

fn pending(s: &AppState, id: &str) -> Result<Pending, DockerError> {
    s.docker
        .execs
        .lock()
        .expect("execs poisoned")
        .get(id)
        .cloned()
        .ok_or_else(|| {
            DockerError::new(
                StatusCode::NOT_FOUND,
                format!("No such exec instance: {id}"),
            )
        })
}

pub(super) async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> Result<Response, DockerError> {
    let upgrade = if crate::api::wants_upgrade(req.headers()) {
        req.extensions_mut().remove::<OnUpgrade>()
    } else {
        None
    };
    let DockerJson(body) = DockerJson::<ExecStartConfig>::from_request(req, &s).await?;
    let p = claim(&s, &id)?;
    let detach = body.detach.unwrap_or(false);
    let mut config = p.config.clone();
    if detach {
        config.stdin = false;
    }
    if body.tty == Some(true) {
        config.tty = true;
    }
    if let Some([h, w]) = body.console_size.as_deref() {
        if *h > 0 && *w > 0 {
            config.height = Some(*h as u16);
            config.width = Some(*w as u16);
        }
    }
    let result = match upgrade {
        // As dockerd: the connection is taken over first and the process started on it,
        // so its first output cannot arrive with the 101's headers (docker-py reads the
        // headers through a buffer and would lose it).
        Some(on_upgrade) if !detach => {
            let c = s.runtime.container(&p.container_id).await?;
            if c.state != crate::runtime::spec::ContainerState::Running {
                Err(DockerError::new(
                    StatusCode::CONFLICT,
                    format!("container {} is not running", c.id),
                ))
            } else {
                let framed = !config.tty;
                let s2 = s.clone();
                let id2 = id.clone();
                tokio::spawn(async move {
                    match on_upgrade.await {
                        Ok(upgraded) => {
                            run_on(s2, id2, p, config, TokioIo::new(upgraded)).await;
                        }
                        Err(e) => {
                            unclaim(&s2, &id2);
                            tracing::debug!(error = %e, "exec upgrade failed");
                        }
                    }
                });
                let content_type = if framed {
                    crate::api::MULTIPLEXED
                } else {
                    crate::api::RAW
                };
                return Ok((
                    StatusCode::SWITCHING_PROTOCOLS,
                    [
                        (header::CONNECTION, HeaderValue::from_static("Upgrade")),
                        (header::UPGRADE, HeaderValue::from_static("tcp")),
                        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    ],
                )
                    .into_response());
            }
        }
        _ if config.stdin => Err(DockerError::bad(
            "AttachStdin needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)",
        )),
        _ => start_plain(&s, &id, &p, config, detach).await,
    };
    if result.is_err() {
        unclaim(&s, &id);
    }
    result
}

/// Marks a created exec as being started (a second start is 409).
fn claim(s: &AppState, id: &str) -> Result<Pending, DockerError> {
    let mut execs = s.docker.execs.lock().expect("execs poisoned");
    let p = execs.get_mut(id).ok_or_else(|| {
        DockerError::new(
            StatusCode::NOT_FOUND,
            format!("No such exec instance: {id}"),
        )
    })?;
    if p.claimed {
        return Err(DockerError::new(
            StatusCode::CONFLICT,
            format!("Exec {id} has already been started"),
        ));
    }
    p.claimed = true;
    Ok(p.clone())
}

fn unclaim(s: &AppState, id: &str) {
    if let Some(p) = s.docker.execs.lock().expect("execs poisoned").get_mut(id) {
        if p.started.is_none() && p.failed.is_none() {
            p.claimed = false;
        }
    }
}

fn set_started(s: &AppState, id: &str, engine_id: &str) {
    if let Some(p) = s.docker.execs.lock().expect("execs poisoned").get_mut(id) {
        p.started = Some(engine_id.to_owned());
    }
}

/// Output filtered to the streams the exec was created to attach.
fn attached_output(
    p: &Pending,
    mut source: tokio::sync::mpsc::Receiver<crate::runtime::exec::ExecOutput>,
) -> tokio::sync::mpsc::Receiver<crate::runtime::exec::ExecOutput> {
    let (want_out, want_err) = (p.attach_stdout, p.attach_stderr);
    let (tx, output) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(chunk) = source.recv().await {
            let keep = match &chunk {
                crate::runtime::exec::ExecOutput::Stdout(_) => want_out,
                crate::runtime::exec::ExecOutput::Stderr(_) => want_err,
            };
            if keep && tx.send(chunk).await.is_err() {
                // The client left: drain so the process is not held up.
                while source.recv().await.is_some() {}
                return;
            }
        }
    });
    output
}

/// Starts the exec on a taken-over connection and serves it; a start that fails is
/// written to the stream and recorded as the exec's exit (127 or 126, as Docker).
async fn run_on<IO>(s: AppState, id: String, p: Pending, config: boxd_types::ExecCreate, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let framed = !config.tty;
    let handle = match s.runtime.exec(&p.container_id, config.clone()).await {
        Ok(h) => h,
        Err(e) => {
            let e = DockerError::from(e);
            let lower = e.message().to_ascii_lowercase();
            let code = if lower.contains("permission denied") {
                126
            } else if lower.contains("not found") || lower.contains("no such file") {
                127
            } else {
                126
            };
            if let Some(entry) = s.docker.execs.lock().expect("execs poisoned").get_mut(&id) {
                entry.failed = Some(code);
            }
            let text = format!("{}\n", e.message());
            let mut out = Vec::new();
            if framed {
                out.extend_from_slice(&crate::runtime::exec::frame_header(2, text.len()));
            }
            out.extend_from_slice(text.as_bytes());
            let mut io = io;
            use tokio::io::AsyncWriteExt;
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    set_started(&s, &id, &handle.id);
    let output = attached_output(&p, handle.output);
    let input = config.stdin.then_some(handle.input);
    let ended = handle.ended;
    let ended = async {
        let _ = ended.await;
    };
    crate::api::serve_stream(io, input, output, framed, ended).await;
}

/// A detached start (200 at once), or one whose output is the answer's body.
async fn start_plain(
    s: &AppState,
    id: &str,
    p: &Pending,
    config: boxd_types::ExecCreate,
    detach: bool,
) -> Result<Response, DockerError> {
    let handle = match s.runtime.exec(&p.container_id, config.clone()).await {
        Ok(h) => h,
        Err(RuntimeError::NotRunning(name)) => {
            return Err(DockerError::new(
                StatusCode::CONFLICT,
                format!("container {name} is not running"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    set_started(s, id, &handle.id);
    let framed = !handle.tty;
    if detach {
        // The process runs on; its output goes nowhere (as Docker's detached exec).
        let mut output = handle.output;
        tokio::spawn(async move { while output.recv().await.is_some() {} });
        return Ok(StatusCode::OK.into_response());
    }
    let content_type = if framed {
        crate::api::MULTIPLEXED
    } else {
        crate::api::RAW
    };
    let output = attached_output(p, handle.output);
    let ended = handle.ended;
    // The output as the body, which ends after the exit is recorded.
    let stream =
        futures_util::stream::unfold((output, Some(ended)), move |(mut rx, ended)| async move {
            match rx.recv().await {
                Some(chunk) => Some((Ok::<_, std::io::Error>(chunk.encode(framed)), (rx, ended))),
                None => {
                    if let Some(e) = ended {
                        let _ = e.await;
                    }
                    None
                }
            }
        });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ResizeQuery {
    h: Option<String>,
    w: Option<String>,
}

pub(super) async fn resize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ResizeQuery>,
) -> Result<StatusCode, DockerError> {
    let p = pending(&s, &id)?;
    let Some(engine_id) = p.started else {
        return Err(DockerError::new(
            StatusCode::CONFLICT,
            format!("exec {id} is not running"),
        ));
    };
    if let Some((h, w)) = size_of(q.h.as_deref(), q.w.as_deref())? {
        s.runtime.exec_resize(&engine_id, h, w).await?;
    }
    Ok(StatusCode::OK)
}

pub(super) async fn inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExecInspectResponse>, DockerError> {
    let p = pending(&s, &id)?;
    let (running, exit_code, pid) = match &p.started {
        None if p.failed.is_some() => (false, p.failed, None),
        // Claimed and starting: running as far as the client can tell.
        None => (p.claimed, None, None),
        Some(engine_id) => {
            let i = s.runtime.exec_inspect(engine_id)?;
            (i.running, i.exit_code, i.pid)
        }
    };
    Ok(Json(ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(String::new()),
        id: Some(id),
        running: Some(running),
        exit_code: exit_code.map(i64::from),
        process_config: Some(bollard_stubs::models::ProcessConfig {
            privileged: Some(false),
            user: Some(p.config.user.clone().unwrap_or_default()),
            tty: Some(p.config.tty),
            entrypoint: p.config.cmd.first().cloned(),
            arguments: Some(p.config.cmd.iter().skip(1).cloned().collect()),
        }),
        open_stdin: Some(p.config.stdin),
        open_stderr: Some(p.attach_stderr),
        open_stdout: Some(p.attach_stdout),
        container_id: Some(p.container_id),
        pid: Some(pid.unwrap_or(0) as i64),
    }))
}
