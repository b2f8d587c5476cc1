//! Attach to a container's app (its stdio, as the shim serves it) and resize its
//! terminal.
//!
//! The shim owns the app's stdio: it copies the output into the log and to every
//! attached connection, and takes stdin from one of them (`boxd_shim`'s `attach`). The
//! daemon opens one control-socket connection per attach, sends `Attach`, and relays
//! frames between it and the API's stream (the same [`ExecInput`] / [`ExecOutput`]
//! channels exec uses, so the upgrade, detach keys and framing are shared).
//!
//! No output is lost between a replay and the live stream: the shim answers with the
//! log's length at the moment it added the attacher, so the log up to that offset is
//! replayed and everything after comes live. Attaching to a `created` container (as
//! `run -it` does, before the start) notes the log's length first and waits for the
//! start; what the app printed before the connection was made is replayed from there.
//! Stdin sent before the app started waits in the channel.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime::spec::{ContainerConfig, ContainerState};
use boxd_shim::protocol::exec_frame::{self as frame, HEADER_LEN, MAX_PAYLOAD};
use boxd_shim::protocol::{files, ControlRequest, ControlResponse, StdioConfig};
use boxd_types::LogStream;
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::exec::{encode, ExecInput, ExecOutput};
use super::shim::ShimError;
use super::{Runtime, RuntimeError};

/// How often a pending attach looks whether the container started.
const START_POLL: Duration = Duration::from_millis(50);
/// Output chunks buffered for a slow client.
const OUTPUT_QUEUE: usize = 64;

/// What an attach asks for (Docker's query flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Send the client's bytes to the app's stdin.
    pub stdin: bool,
    /// Send the app's stdout (the terminal's output with a terminal).
    pub stdout: bool,
    /// Send the app's stderr.
    pub stderr: bool,
    /// Stream live output until the app ends or the client detaches.
    pub stream: bool,
    /// Replay the log first.
    pub logs: bool,
}

/// An attach in progress.
pub struct AttachHandle {
    /// Whether the app has a terminal (its output is then one raw stream).
    pub tty: bool,
    /// Where the client's input goes (`None` without `stdin`).
    pub input: Option<mpsc::Sender<ExecInput>>,
    /// Output; ends when the app ended, or at once after a replay without `stream`.
    pub output: mpsc::Receiver<ExecOutput>,
}

/// Attach sessions in progress per container. A container that removes itself when
/// its run ends (`auto_remove`) waits for them: its log goes with it, and an attach
/// made before the start (`docker run`) may still be replaying what the app printed.
#[derive(Default)]
pub(super) struct AttachHolds {
    counts: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    released: tokio::sync::Notify,
}

/// One attach session's hold on its container; released when dropped.
pub(super) struct AttachHold {
    rt: Runtime,
    id: String,
}

impl AttachHolds {
    /// Whether an attach session of container `id` is in progress.
    pub(super) fn busy(&self, id: &str) -> bool {
        self.counts
            .lock()
            .expect("attach holds poisoned")
            .contains_key(id)
    }
}

impl Drop for AttachHold {
    fn drop(&mut self) {
        let holds = &self.rt.inner.attaches;
        {
            let mut counts = holds.counts.lock().expect("attach holds poisoned");
            if let Some(n) = counts.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.id);
                }
            }
        }
        holds.released.notify_waiters();
    }
}

impl Runtime {
    fn hold_attach(&self, id: &str) -> AttachHold {
        let holds = &self.inner.attaches;
        *holds
            .counts
            .lock()
            .expect("attach holds poisoned")
            .entry(id.to_owned())
            .or_insert(0) += 1;
        AttachHold {
            rt: self.clone(),
            id: id.to_owned(),
        }
    }

    /// Returns once no attach session of container `id` is left, or after `limit`.
    pub(super) async fn attaches_done(&self, id: &str, limit: Duration) {
        let holds = &self.inner.attaches;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let released = holds.released.notified();
            tokio::pin!(released);
            // Registered before the count is read: a release in between wakes it.
            released.as_mut().enable();
            let busy = holds
                .counts
                .lock()
                .expect("attach holds poisoned")
                .contains_key(id);
            if !busy {
                return;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return;
            }
        }
    }
}

/// Writes `stdio.json` for the shim from the container's config.
pub(super) fn write_stdio_config(
    state_dir: &Path,
    config: &ContainerConfig,
) -> Result<(), RuntimeError> {
    let stdio = StdioConfig {
        terminal: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
    };
    let path = state_dir.join(files::STDIO_CONFIG);
    let json = serde_json::to_vec(&stdio).expect("stdio config serialises");
    std::fs::write(&path, json).map_err(RuntimeError::io("write", &path))
}

/// A control connection switched to frames.
struct Attached {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
    log_offset: u64,
}

/// Connects to the shim and sends `Attach`; `Ok(None)` when the shim is gone or the
/// app has exited.
async fn connect(state_dir: &Path, opts: &AttachOptions) -> Result<Option<Attached>, RuntimeError> {
    let req = ControlRequest::Attach {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    match super::shim::open(state_dir, &req, super::shim::CONTROL_DEADLINE).await {
        Ok((conn, ControlResponse::Attached { log_offset, .. })) => Ok(Some(Attached {
            read: conn.read,
            write: conn.write,
            log_offset,
        })),
        Ok((_, other)) => {
            Err(ShimError::Refused(format!("unexpected answer to attach: {other:?}")).into())
        }
        Err(ShimError::Refused(message)) if message.starts_with("stdin_in_use") => {
            Err(RuntimeError::StdinInUse(String::new()))
        }
        Err(ShimError::Refused(message)) if message.contains("exited") => Ok(None),
        Err(ShimError::Connect { .. } | ShimError::Closed | ShimError::Io(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Sends the log's records in `[from, to)` (to the end without `to`) that `opts` wants;
/// false if the client went away.
async fn replay(
    path: &Path,
    from: u64,
    to: Option<u64>,
    opts: &AttachOptions,
    tx: &mpsc::Sender<ExecOutput>,
) -> bool {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return true;
    };
    if file.seek(SeekFrom::Start(from)).await.is_err() {
        return true;
    }
    let limit = to.map_or(u64::MAX, |t| t.saturating_sub(from));
    let mut lines = BufReader::new(file.take(limit)).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(entry) = super::logs::parse_record(&line) else {
            continue;
        };
        let chunk = match entry.stream {
            LogStream::Stdout if opts.stdout => ExecOutput::Stdout(Bytes::from(entry.line)),
            LogStream::Stderr if opts.stderr => ExecOutput::Stderr(Bytes::from(entry.line)),
            _ => continue,
        };
        if tx.send(chunk).await.is_err() {
            return false;
        }
    }
    true
}

/// Relays between an attached connection and the API's channels until the shim closes
/// it (the app ended) or the client goes away (the connection is then closed: a
/// detach, the app runs on).
async fn relay(
    mut conn: Attached,
    mut input: Option<mpsc::Receiver<ExecInput>>,
    tx: mpsc::Sender<ExecOutput>,
) {
    loop {
        tokio::select! {
            h = read_header(&mut conn.read) => {
                let Some((kind, len)) = h else { return };
                let mut body = vec![0u8; len];
                if conn.read.read_exact(&mut body).await.is_err() {
                    return;
                }
                let chunk = match kind {
                    frame::STDERR => ExecOutput::Stderr(Bytes::from(body)),
                    _ => ExecOutput::Stdout(Bytes::from(body)),
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
            msg = recv(&mut input) => match msg {
                Some(msg) => {
                    if conn.write.write_all(&encode(&msg)).await.is_err() {
                        return;
                    }
                }
                // The client's side of stdin is done; its output still flows.
                None => input = None,
            },
            () = tx.closed() => return,
        }
    }
}

async fn recv(input: &mut Option<mpsc::Receiver<ExecInput>>) -> Option<ExecInput> {
    match input {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn read_header(r: &mut BufReader<OwnedReadHalf>) -> Option<(u8, usize)> {
    let mut h = [0u8; HEADER_LEN];
    r.read_exact(&mut h).await.ok()?;
    let (kind, len) = frame::parse_header(h);
    (len <= MAX_PAYLOAD).then_some((kind, len))
}

impl Runtime {
    /// `POST /v1/containers/{id}/attach`: 409 unless the container is running or
    /// created (then the attach waits for its start).
    pub async fn attach(
        &self,
        reference: &str,
        opts: AttachOptions,
    ) -> Result<AttachHandle, RuntimeError> {
        let c = self.resolve(reference).await?.container;
        if !matches!(c.state, ContainerState::Running | ContainerState::Created) {
            return Err(RuntimeError::NotRunning(c.name));
        }
        if opts.stdin && !c.config.open_stdin {
            return Err(RuntimeError::ExecMode(format!(
                "the stdin of container {} is not open (create it with open_stdin)",
                c.name
            )));
        }
        let log_path = self.inner.paths.log_path(&c.id);
        let state_dir = self.inner.paths.state_dir(&c.id);
        let (tx, output) = mpsc::channel(OUTPUT_QUEUE);
        let (input_tx, input_rx) = if opts.stdin {
            let (t, r) = mpsc::channel(64);
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let handle = AttachHandle {
            tty: c.config.tty,
            input: input_tx,
            output,
        };
        if !opts.stream {
            // A replay of what is there, nothing live.
            if opts.logs {
                tokio::spawn(async move { replay(&log_path, 0, None, &opts, &tx).await });
            }
            return Ok(handle);
        }
        let from = opts.logs.then_some(0);
        let hold = self.hold_attach(&c.id);
        if c.state == ContainerState::Running {
            // Connected before the answer, so a refusal (stdin in use) is the answer.
            match connect(&state_dir, &opts).await {
                Ok(Some(conn)) => {
                    tokio::spawn(async move {
                        let _hold = hold;
                        if let Some(from) = from {
                            if !replay(&log_path, from, Some(conn.log_offset), &opts, &tx).await {
                                return;
                            }
                        }
                        relay(conn, input_rx, tx).await;
                    });
                    return Ok(handle);
                }
                Ok(None) => {
                    // It ended just now: what it printed is in the log.
                    let from = from.unwrap_or_else(|| file_len(&log_path));
                    let rt = self.clone();
                    let id = c.id.clone();
                    tokio::spawn(async move {
                        let _hold = hold;
                        rt.until_not_running(&id).await;
                        replay(&log_path, from, None, &opts, &tx).await;
                    });
                    return Ok(handle);
                }
                Err(RuntimeError::StdinInUse(_)) => return Err(RuntimeError::StdinInUse(c.name)),
                Err(e) => return Err(e),
            }
        }
        // Created: everything from here on in the log is this attach's.
        let from = from.unwrap_or_else(|| file_len(&log_path));
        let rt = self.clone();
        let id = c.id.clone();
        tokio::spawn(async move {
            let _hold = hold;
            rt.attach_when_started(id, state_dir, log_path, from, opts, input_rx, tx)
                .await
        });
        Ok(handle)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attach_when_started(
        &self,
        id: String,
        state_dir: PathBuf,
        log_path: PathBuf,
        from: u64,
        opts: AttachOptions,
        input: Option<mpsc::Receiver<ExecInput>>,
        tx: mpsc::Sender<ExecOutput>,
    ) {
        loop {
            if tx.is_closed() {
                return;
            }
            let state = match self.inner.store.container(&id).await {
                Ok(Some(rec)) => rec.container.state,
                _ => return,
            };
            match state {
                ContainerState::Created => {}
                ContainerState::Running => match connect(&state_dir, &opts).await {
                    Ok(Some(conn)) => {
                        if replay(&log_path, from, Some(conn.log_offset), &opts, &tx).await {
                            relay(conn, input, tx).await;
                        }
                        return;
                    }
                    // Running in the row but not (yet, or any more) reachable.
                    Ok(None) if !super::shim::shim_alive(&state_dir) => {
                        self.until_not_running(&id).await;
                        replay(&log_path, from, None, &opts, &tx).await;
                        return;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(id, error = %crate::error_chain(&e), "attach failed");
                        return;
                    }
                },
                ContainerState::Exited | ContainerState::Dead => {
                    replay(&log_path, from, None, &opts, &tx).await;
                    return;
                }
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// Returns once the container's row no longer says `running` (its exit, and so
    /// the whole log, is recorded).
    async fn until_not_running(&self, id: &str) {
        loop {
            match self.inner.store.container(id).await {
                Ok(Some(rec)) if rec.container.state == ContainerState::Running => {}
                _ => return,
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// `POST /v1/containers/{id}/resize`: 409 unless running, 400 without a terminal.
    pub async fn resize(&self, reference: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let c = self.resolve(reference).await?.container;
        if c.state != ContainerState::Running {
            return Err(RuntimeError::NotRunning(c.name));
        }
        if !c.config.tty {
            return Err(RuntimeError::ExecMode(format!(
                "container {} has no terminal to resize",
                c.name
            )));
        }
        let state_dir = self.inner.paths.state_dir(&c.id);
        let req = ControlRequest::Resize { rows, cols };
        match super::shim::request(&state_dir, &req, super::shim::CONTROL_DEADLINE).await {
            Ok(_) => Ok(()),
            Err(ShimError::Connect { .. } | ShimError::Closed) => {
                Err(RuntimeError::NotRunning(c.name))
            }
            Err(source @ ShimError::Timeout { .. }) => Err(RuntimeError::ShimUnresponsive {
                container: c.name,
                source,
            }),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_frames_match_the_shim_protocol() {
        assert_eq!(encode(&ExecInput::Eof), vec![frame::STDIN_EOF, 0, 0, 0, 0]);
        assert_eq!(
            encode(&ExecInput::Resize { rows: 1, cols: 2 }),
            vec![frame::RESIZE, 0, 0, 0, 4, 0, 1, 0, 2]
        );
    }

    #[tokio::test]
    async fn replay_takes_the_range_and_the_wanted_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rec = |stream: &str, log: &str| {
            format!(
                "{{\"time\":\"2024-01-02T03:04:05.000000000Z\",\"stream\":\"{stream}\",\"log\":\"{log}\"}}\n"
            )
        };
        let first = rec("stdout", "old\\n");
        let text = format!(
            "{first}{}{}{}",
            rec("stdout", "a\\n"),
            rec("stderr", "b\\n"),
            rec("stdout", "late\\n")
        );
        std::fs::write(&path, &text).unwrap();
        let to = (text.len() - rec("stdout", "late\\n").len()) as u64;
        let (tx, mut rx) = mpsc::channel(16);
        let opts = AttachOptions {
            stdout: true,
            ..Default::default()
        };
        assert!(replay(&path, first.len() as u64, Some(to), &opts, &tx).await);
        drop(tx);
        let mut got = Vec::new();
        while let Some(c) = rx.recv().await {
            got.push(c);
        }
        assert_eq!(got, vec![ExecOutput::Stdout(Bytes::from_static(b"a\n"))]);
    }

    #[test]
    fn stdio_config_follows_the_container_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = ContainerConfig {
            tty: true,
            open_stdin: true,
            ..Default::default()
        };
        write_stdio_config(dir.path(), &config).unwrap();
        let got: StdioConfig =
            serde_json::from_slice(&std::fs::read(dir.path().join(files::STDIO_CONFIG)).unwrap())
                .unwrap();
        assert!(got.terminal && got.open_stdin && !got.stdin_once);
    }
}
