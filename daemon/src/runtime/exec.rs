//! Exec: one more process in a running container, started by `boxd shim exec` (a
//! single-threaded helper run as an ordinary child, so the daemon never forks), with
//! the container's namespaces, cgroups and security (see `boxd_shim`'s `exec`).
//!
//! The daemon talks to the helper in `exec_frame`s over its stdin and stdout: an
//! [`ExecHandle`] gives the API an input channel (stdin bytes, EOF, resize) and an
//! output channel (stdout/stderr chunks, closed when the process ended and its output
//! was drained). A dropped output receiver (a detached client) does not stop the
//! process: its output is then discarded.
//!
//! Exec state lives in memory ([`ExecRegistry`]), not in SQLite: an exec'd process
//! belongs to the run of the container it entered and is not restarted, and its
//! helper is the daemon's child, so no exec outlives the daemon's knowledge of it
//! except as a process of the container (which the container's own exit record
//! covers). Its OOM kill is written to the container's event stream.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::Mutex;

use crate::runtime::spec::ContainerState;
use boxd_shim::protocol::exec_frame::{self as frame, HEADER_LEN, MAX_PAYLOAD};
use boxd_shim::protocol::{ExecReport, ExecSpec};
use boxd_types::{ExecCreate, ExecInspect};
use bytes::Bytes;
use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use super::{Runtime, RuntimeError};
use crate::image::users;

/// How many finished execs a container's inspect keeps.
const RECENT_EXECS: usize = 16;
/// Output chunks buffered for a slow client before the process is paused.
const OUTPUT_QUEUE: usize = 64;

/// Input for an exec'd process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for its stdin.
    Stdin(Bytes),
    /// The client closed its stdin.
    Eof,
    /// New terminal size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// Output of an exec'd process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Standard output (or the terminal's output).
    Stdout(Bytes),
    /// Standard error.
    Stderr(Bytes),
}

/// Docker's 8-byte frame header for `len` bytes of `stream` (1 stdout, 2 stderr): the
/// framing of a non-terminal attach, exec or log stream.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

impl ExecOutput {
    /// The bytes a client gets for this chunk: framed without a terminal, raw with one.
    pub fn encode(self, framed: bool) -> Bytes {
        let (stream, bytes) = match self {
            ExecOutput::Stdout(b) => (1, b),
            ExecOutput::Stderr(b) => (2, b),
        };
        if !framed {
            return bytes;
        }
        let mut out = Vec::with_capacity(8 + bytes.len());
        out.extend_from_slice(&frame_header(stream, bytes.len()));
        out.extend_from_slice(&bytes);
        Bytes::from(out)
    }
}

/// A started exec.
pub struct ExecHandle {
    /// The exec's id.
    pub id: String,
    /// Whether it has a terminal.
    pub tty: bool,
    /// Where its input goes.
    pub input: mpsc::Sender<ExecInput>,
    /// Its output; ends when the process ended and its output was drained.
    pub output: mpsc::Receiver<ExecOutput>,
    /// Resolves once the exit is recorded (`exec_inspect` then has the exit code),
    /// which comes just after the output ends.
    pub ended: tokio::sync::oneshot::Receiver<()>,
}

struct Entry {
    info: ExecInspect,
    input: Option<mpsc::Sender<ExecInput>>,
}

/// Every exec of this daemon's run, by id, plus the recent ones per container.
#[derive(Default)]
pub struct ExecRegistry {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<String, Entry>,
    by_container: HashMap<String, VecDeque<String>>,
}

impl ExecRegistry {
    fn insert(&self, info: ExecInspect, input: mpsc::Sender<ExecInput>) {
        let mut r = self.inner.lock().expect("exec registry poisoned");
        let list = r.by_container.entry(info.container_id.clone()).or_default();
        list.push_back(info.id.clone());
        let mut dropped = Vec::new();
        while list.len() > RECENT_EXECS {
            if let Some(old) = list.pop_front() {
                dropped.push(old);
            }
        }
        for old in dropped {
            // A still-running exec stays findable by id until it ends.
            if r.by_id.get(&old).is_some_and(|e| !e.info.running) {
                r.by_id.remove(&old);
            }
        }
        r.by_id.insert(
            info.id.clone(),
            Entry {
                info,
                input: Some(input),
            },
        );
    }

    fn finish(&self, id: &str, update: impl FnOnce(&mut ExecInspect)) -> Option<ExecInspect> {
        let mut r = self.inner.lock().expect("exec registry poisoned");
        let e = r.by_id.get_mut(id)?;
        update(&mut e.info);
        e.input = None;
        Some(e.info.clone())
    }

    fn get(&self, id: &str) -> Option<(ExecInspect, Option<mpsc::Sender<ExecInput>>)> {
        let r = self.inner.lock().expect("exec registry poisoned");
        r.by_id.get(id).map(|e| (e.info.clone(), e.input.clone()))
    }

    fn of_container(&self, container_id: &str) -> Vec<ExecInspect> {
        let r = self.inner.lock().expect("exec registry poisoned");
        r.by_container
            .get(container_id)
            .into_iter()
            .flatten()
            .filter_map(|id| r.by_id.get(id).map(|e| e.info.clone()))
            .collect()
    }

    fn forget_container(&self, container_id: &str) {
        let mut r = self.inner.lock().expect("exec registry poisoned");
        if let Some(ids) = r.by_container.remove(container_id) {
            for id in ids {
                r.by_id.remove(&id);
            }
        }
    }
}

/// `env` of the container with `extra` added (a key given again replaces it).
pub fn merge_env(base: &[String], extra: &[String]) -> Result<Vec<String>, RuntimeError> {
    let mut env = base.to_vec();
    for kv in extra {
        let key = match kv.split_once('=') {
            Some((k, _)) if !k.is_empty() && !kv.contains('\0') => k,
            _ => {
                return Err(RuntimeError::invalid(
                    "env",
                    format!("{kv:?} is not KEY=VALUE"),
                ))
            }
        };
        env.retain(|old| old.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(kv.clone());
    }
    Ok(env)
}

/// One frame for the helper (`boxd-shim shim exec`) or an attached shim.
pub(super) fn encode(input: &ExecInput) -> Vec<u8> {
    let (kind, payload): (u8, Vec<u8>) = match input {
        ExecInput::Stdin(b) => (frame::STDIN, b.to_vec()),
        ExecInput::Eof => (frame::STDIN_EOF, Vec::new()),
        ExecInput::Resize { rows, cols } => {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend_from_slice(&cols.to_be_bytes());
            (frame::RESIZE, p)
        }
    };
    let mut out = frame::header(kind, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    out
}

/// Reads one frame; `None` at EOF.
async fn read_frame(r: &mut ChildStdout) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; HEADER_LEN];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = frame::parse_header(h);
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "oversized frame from the exec helper",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some((kind, body)))
}

fn helper_error(message: String) -> RuntimeError {
    RuntimeError::ExecFailed {
        stage: "helper".into(),
        message,
    }
}

impl Runtime {
    /// Starts `req` in the running container `reference`; 409 if it is not running.
    pub async fn exec(&self, reference: &str, req: ExecCreate) -> Result<ExecHandle, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        if c.state != ContainerState::Running {
            return Err(RuntimeError::NotRunning(c.name));
        }
        // The exec'd process would join a frozen cgroup and hang there (Docker: 409).
        if c.paused {
            return Err(RuntimeError::ContainerPaused(c.name));
        }
        if req.cmd.first().is_none_or(|a| a.is_empty()) {
            return Err(RuntimeError::invalid("cmd", "give a command to run"));
        }
        let env = merge_env(&c.config.env, &req.env)?;
        let cwd = req
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| c.config.working_dir.clone());
        if !cwd.starts_with('/') {
            return Err(RuntimeError::invalid(
                "working_dir",
                format!("{cwd:?} must be absolute"),
            ));
        }
        let user_spec = req.user.clone().unwrap_or_else(|| c.config.user.clone());
        // Through the image's layers, as create and start do: only a plain import has
        // a single layer whose dir is named by the image id.
        let lowers = self.image_lowers(&c.image_id).await?;
        let user = users::resolve_layers(&lowers, &user_spec)?;
        let spec = ExecSpec {
            args: req.cmd.clone(),
            env,
            cwd: cwd.into(),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            tty: req.tty,
            stdin: req.stdin,
            size: match (req.height, req.width) {
                (Some(h), Some(w)) if h > 0 && w > 0 => Some((h, w)),
                _ => None,
            },
        };

        let state_dir = self.inner.paths.state_dir(&c.id);
        let oom_before = self.inner.cgroups.oom_kill_count(&c.id).ok();
        // The sealed copy the shims run from: the helper would otherwise copy the
        // binary into a sealed memfd of its own before anything else.
        let mut child = tokio::process::Command::new(self.inner.shim.program())
            .arg("shim")
            .arg("exec")
            .arg(&state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| helper_error(format!("failed to run the exec helper: {e}")))?;
        let mut to_helper = child.stdin.take().expect("piped stdin");
        let mut from_helper = child.stdout.take().expect("piped stdout");
        let json = serde_json::to_vec(&spec).expect("an ExecSpec always serialises");
        let mut first = frame::header(frame::SPEC, json.len()).to_vec();
        first.extend_from_slice(&json);
        let started = async {
            to_helper.write_all(&first).await?;
            read_frame(&mut from_helper).await
        }
        .await;
        let pid = match started {
            Ok(Some((frame::REPORT, body))) => match serde_json::from_slice::<ExecReport>(&body) {
                Ok(ExecReport::Started { pid }) => pid,
                Ok(ExecReport::Failed { stage, message }) => {
                    let _ = child.wait().await;
                    return Err(match stage.as_str() {
                        "not_running" => RuntimeError::NotRunning(c.name),
                        "exec" | "cwd" | "user" => RuntimeError::ExecRefused { stage, message },
                        _ => RuntimeError::ExecFailed { stage, message },
                    });
                }
                other => {
                    let _ = child.kill().await;
                    return Err(helper_error(format!("unexpected first report: {other:?}")));
                }
            },
            other => {
                let _ = child.kill().await;
                let _ = child.wait().await;
                return Err(helper_error(format!(
                    "the exec helper ended without a report ({other:?})"
                )));
            }
        };

        let id = super::names::generate_container_id();
        let info = ExecInspect {
            id: id.clone(),
            container_id: c.id.clone(),
            cmd: req.cmd.clone(),
            tty: req.tty,
            running: true,
            pid: u32::try_from(pid).ok(),
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            started_at: Utc::now(),
            finished_at: None,
        };
        let (input_tx, input_rx) = mpsc::channel(64);
        let (output_tx, output_rx) = mpsc::channel(OUTPUT_QUEUE);
        self.inner.execs.insert(info, input_tx.clone());
        self.inner
            .events
            .emit(
                "container",
                "exec_start",
                &c.id,
                &[
                    ("name", c.name.clone()),
                    ("exec_id", id.clone()),
                    ("cmd", req.cmd.join(" ")),
                ],
            )
            .await;
        tokio::spawn(feed_helper(to_helper, input_rx));
        let rt = self.clone();
        let (exec_id, container_id, name) = (id.clone(), c.id.clone(), c.name.clone());
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let report = pump_output(from_helper, output_tx).await;
            let _ = child.wait().await;
            rt.exec_ended(&exec_id, &container_id, &name, report, oom_before)
                .await;
            let _ = ended_tx.send(());
        });
        Ok(ExecHandle {
            id,
            tty: req.tty,
            input: input_tx,
            output: output_rx,
            ended,
        })
    }

    async fn exec_ended(
        &self,
        exec_id: &str,
        container_id: &str,
        name: &str,
        report: Option<(i32, Option<i32>)>,
        oom_before: Option<u64>,
    ) {
        let (exit_code, signal) = report.unwrap_or((-1, None));
        let oom_after = self.inner.cgroups.oom_kill_count(container_id).ok();
        // Killed by SIGKILL while the container's OOM counter went up: the kernel's
        // OOM killer took it (nothing else in boxd sends SIGKILL to an exec).
        let oom_killed = signal == Some(libc::SIGKILL)
            && matches!((oom_before, oom_after), (Some(b), Some(a)) if a > b);
        self.inner.execs.finish(exec_id, |i| {
            i.running = false;
            i.exit_code = Some(exit_code);
            i.exit_signal = signal;
            i.oom_killed = oom_killed;
            i.finished_at = Some(Utc::now());
        });
        if oom_killed {
            self.inner
                .events
                .emit(
                    "container",
                    "oom",
                    container_id,
                    &[("name", name.to_owned()), ("exec_id", exec_id.to_owned())],
                )
                .await;
        }
        self.inner
            .events
            .emit(
                "container",
                "exec_die",
                container_id,
                &[
                    ("name", name.to_owned()),
                    ("exec_id", exec_id.to_owned()),
                    ("exit_code", exit_code.to_string()),
                ],
            )
            .await;
    }

    /// `GET /v1/exec/{exec_id}`.
    pub fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspect, RuntimeError> {
        self.inner
            .execs
            .get(exec_id)
            .map(|(info, _)| info)
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "exec",
                reference: exec_id.to_owned(),
            })
    }

    /// Recent execs of a container, oldest first.
    pub fn execs_of(&self, container_id: &str) -> Vec<ExecInspect> {
        self.inner.execs.of_container(container_id)
    }

    /// Forget the execs of a removed container.
    pub fn forget_execs(&self, container_id: &str) {
        self.inner.execs.forget_container(container_id);
    }

    /// Resizes an exec's terminal; 409 once it ended, 400 without a terminal.
    pub async fn exec_resize(
        &self,
        exec_id: &str,
        rows: u16,
        cols: u16,
    ) -> Result<(), RuntimeError> {
        let (info, input) =
            self.inner
                .execs
                .get(exec_id)
                .ok_or_else(|| RuntimeError::NotFound {
                    kind: "exec",
                    reference: exec_id.to_owned(),
                })?;
        if !info.tty {
            return Err(RuntimeError::ExecMode(
                "the exec has no terminal to resize".into(),
            ));
        }
        let Some(input) = input.filter(|_| info.running) else {
            return Err(RuntimeError::NotRunning(format!("exec {exec_id}")));
        };
        input
            .send(ExecInput::Resize { rows, cols })
            .await
            .map_err(|_| RuntimeError::NotRunning(format!("exec {exec_id}")))
    }
}

/// Writes input frames to the helper until every sender is gone or it went away.
async fn feed_helper(mut to_helper: ChildStdin, mut input: mpsc::Receiver<ExecInput>) {
    while let Some(msg) = input.recv().await {
        if to_helper.write_all(&encode(&msg)).await.is_err() {
            break;
        }
    }
}

/// Forwards the helper's output until its final report; `(exit_code, signal)`.
async fn pump_output(
    mut from_helper: ChildStdout,
    output: mpsc::Sender<ExecOutput>,
) -> Option<(i32, Option<i32>)> {
    let mut output = Some(output);
    loop {
        let (kind, body) = match read_frame(&mut from_helper).await {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return None,
        };
        let chunk = match kind {
            frame::STDOUT => ExecOutput::Stdout(Bytes::from(body)),
            frame::STDERR => ExecOutput::Stderr(Bytes::from(body)),
            frame::REPORT => match serde_json::from_slice::<ExecReport>(&body) {
                Ok(ExecReport::Exited { exit_code, signal }) => return Some((exit_code, signal)),
                _ => continue,
            },
            _ => continue,
        };
        if let Some(tx) = &output {
            // A client that went away (detached) no longer gets output; the process
            // keeps running and its output is dropped.
            if tx.send(chunk).await.is_err() {
                output = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_env_replaces_keys_and_checks_the_form() {
        let base = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        let env = merge_env(&base, &["A=2".into(), "B=x=y".into()]).unwrap();
        assert_eq!(env, vec!["PATH=/bin", "A=2", "B=x=y"]);
        assert!(merge_env(&base, &["novalue".into()]).is_err());
        assert!(merge_env(&base, &["=x".into()]).is_err());
    }

    #[test]
    fn input_frames_match_the_helper_protocol() {
        assert_eq!(
            encode(&ExecInput::Resize { rows: 24, cols: 80 }),
            vec![frame::RESIZE, 0, 0, 0, 4, 0, 24, 0, 80]
        );
        assert_eq!(encode(&ExecInput::Eof), vec![frame::STDIN_EOF, 0, 0, 0, 0]);
        assert_eq!(
            encode(&ExecInput::Stdin(Bytes::from_static(b"hi"))),
            vec![frame::STDIN, 0, 0, 0, 2, b'h', b'i']
        );
    }

    #[test]
    fn the_registry_keeps_recent_execs_per_container() {
        let reg = ExecRegistry::default();
        let (tx, _rx) = mpsc::channel(1);
        for n in 0..RECENT_EXECS + 3 {
            let info = ExecInspect {
                id: format!("e{n}"),
                container_id: "c".into(),
                cmd: vec!["true".into()],
                tty: false,
                running: n == 0,
                pid: None,
                exit_code: None,
                exit_signal: None,
                oom_killed: false,
                started_at: Utc::now(),
                finished_at: None,
            };
            reg.insert(info, tx.clone());
        }
        assert_eq!(reg.of_container("c").len(), RECENT_EXECS);
        // The running one fell out of the recent list but is still found by id.
        assert!(reg.get("e0").is_some());
        assert!(reg.get("e1").is_none());
        let done = reg.finish("e5", |i| i.exit_code = Some(3)).unwrap();
        assert_eq!(done.exit_code, Some(3));
        assert!(reg.get("e5").unwrap().1.is_none(), "no input after the end");
        reg.forget_container("c");
        assert!(reg.get("e5").is_none());
    }
}
