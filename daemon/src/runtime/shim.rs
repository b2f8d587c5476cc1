//! Talking to shims: starting one, and its control socket.
//!
//! The daemon never forks: it runs `<shim> shim --config FILE` as an ordinary child
//! (no `pre_exec`), which forks the long-lived shim away and exits once the app has
//! exec'd, printing a [`StartReport`]. After that the daemon reaches the shim only
//! through `control.sock` and the files in the state dir (see `boxd_shim::protocol`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use boxd_shim::protocol::{files, ControlRequest, ControlResponse, ExitRecord, StartReport};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long a shim may take to set up and exec the app.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim binary could not be run.
    #[error("failed to run the shim {bin}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It did not report within the start timeout.
    #[error("the shim did not report within {0:?}")]
    StartTimeout(Duration),
    /// It exited without a readable report.
    #[error("the shim exited ({status}) without a start report; its stderr: {stderr}")]
    NoReport {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The control socket could not be reached.
    #[error("failed to connect to the shim at {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the control socket failed.
    #[error("failed to talk to the shim")]
    Io(#[source] std::io::Error),
    /// The shim closed the connection without answering.
    #[error("the shim closed the connection without answering")]
    Closed,
    /// The answer was not valid JSON of the protocol.
    #[error("the shim sent an unreadable answer")]
    Protocol(#[source] serde_json::Error),
    /// The shim refused the request.
    #[error("the shim refused: {0}")]
    Refused(String),
}

/// Runs the shim binary to start one container.
#[derive(Debug, Clone)]
pub struct ShimLauncher {
    bin: PathBuf,
    /// One sealed in-memory copy of `bin`, made at the first launch, that every shim
    /// runs from (see `boxd_shim::sealed`: no container can reach the host's binary).
    sealed: std::sync::Arc<std::sync::OnceLock<Option<std::os::fd::OwnedFd>>>,
}

impl ShimLauncher {
    /// A launcher running `bin shim --config ...`.
    pub fn new(bin: PathBuf) -> Self {
        ShimLauncher {
            bin,
            sealed: Default::default(),
        }
    }

    /// What to execute to run the shim: `/proc/self/fd/N` of the sealed copy (the
    /// spawned child resolves it before exec closes the close-on-exec descriptor), or
    /// the binary itself if no copy could be made (the shim then seals itself).
    pub fn program(&self) -> PathBuf {
        let sealed = self.sealed.get_or_init(|| {
            let copy = std::fs::File::open(&self.bin)
                .map_err(boxd_shim::sealed::SealError::OpenExe)
                .and_then(|mut f| boxd_shim::sealed::sealed_copy(&mut f));
            match copy {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(bin = %self.bin.display(), error = %crate::error_chain(&e), "cannot make a sealed copy of the shim; each shim will copy itself");
                    None
                }
            }
        });
        match sealed {
            Some(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
            None => self.bin.clone(),
        }
    }

    /// Starts the container described by `shim_config` and returns the shim's report.
    ///
    /// A "started" report is returned as soon as its line arrives; the starter exits
    /// right after printing it and is reaped in the background. A failure (or no
    /// report) waits for the starter's exit, which comes once nothing of the start is
    /// left running, and keeps its stderr for the error.
    pub async fn launch(&self, shim_config: &Path) -> Result<StartReport, ShimError> {
        let mut child = tokio::process::Command::new(self.program())
            .arg("shim")
            .arg("--config")
            .arg(shim_config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the daemon gives up waiting, do not leave the starter behind.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ShimError::Spawn {
                bin: self.bin.clone(),
                source,
            })?;
        let spawn_error = |source| ShimError::Spawn {
            bin: self.bin.clone(),
            source,
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        tokio::time::timeout(START_TIMEOUT, async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut failed = None;
            while let Some(line) = lines.next_line().await.map_err(spawn_error)? {
                match serde_json::from_str::<StartReport>(line.trim()) {
                    Ok(started @ StartReport::Started { .. }) => {
                        tokio::spawn(async move {
                            let _ = child.wait_with_output().await;
                        });
                        return Ok(started);
                    }
                    Ok(report) => failed = Some(report),
                    Err(_) => {}
                }
            }
            let output = child.wait_with_output().await.map_err(spawn_error)?;
            failed.ok_or_else(|| ShimError::NoReport {
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        })
        .await
        .map_err(|_| ShimError::StartTimeout(START_TIMEOUT))?
    }
}

/// Sends one request on a fresh connection and reads one answer.
pub async fn request(state_dir: &Path, req: &ControlRequest) -> Result<ControlResponse, ShimError> {
    let path = state_dir.join(files::CONTROL_SOCKET);
    // A socket address holds at most 107 bytes, less than a long state dir plus a 64-hex
    // id. Connecting through the dir's fd (`/proc/self/fd/N/control.sock`) keeps the
    // address short whatever the state dir is; the shim binds relative to its cwd.
    let dir = std::fs::File::open(state_dir).map_err(|source| ShimError::Connect {
        path: path.clone(),
        source,
    })?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        files::CONTROL_SOCKET
    );
    let stream = UnixStream::connect(&short)
        .await
        .map_err(|source| ShimError::Connect {
            path: path.clone(),
            source,
        })?;
    drop(dir);
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).expect("request serialises");
    line.push('\n');
    write.write_all(line.as_bytes()).await.map_err(io_error)?;
    let mut answer = String::new();
    let n = BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(io_error)?;
    if n == 0 {
        return Err(ShimError::Closed);
    }
    let resp: ControlResponse = serde_json::from_str(answer.trim()).map_err(ShimError::Protocol)?;
    if let ControlResponse::Error { message } = resp {
        return Err(ShimError::Refused(message));
    }
    Ok(resp)
}

/// A shim that is exiting (its app is gone) drops connections it has not read from:
/// the kernel answers a reset or a broken pipe. That is the same outcome as a clean
/// close, and callers treat it so (the exit is recorded by the monitor).
fn io_error(e: std::io::Error) -> ShimError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    match e.kind() {
        ConnectionReset | BrokenPipe | UnexpectedEof => ShimError::Closed,
        _ => ShimError::Io(e),
    }
}

/// Sends a signal to the container's first process.
pub async fn kill(state_dir: &Path, signal: i32) -> Result<(), ShimError> {
    request(state_dir, &ControlRequest::Kill { signal })
        .await
        .map(|_| ())
}

/// Blocks until the shim reports the exit.
pub async fn wait(state_dir: &Path) -> Result<ExitRecord, ShimError> {
    match request(state_dir, &ControlRequest::Wait).await? {
        ControlResponse::Exited(record) => Ok(record),
        other => Err(ShimError::Refused(format!(
            "unexpected answer to wait: {other:?}"
        ))),
    }
}

/// The exit record, if the shim wrote one.
pub fn read_exit_record(state_dir: &Path) -> Option<ExitRecord> {
    let text = std::fs::read(state_dir.join(files::EXIT_RECORD)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether the shim recorded in `shim.pid` is alive (and is a boxd shim, not a recycled
/// pid).
pub fn shim_alive(state_dir: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(state_dir.join(files::SHIM_PID))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return false;
    };
    pid_is_shim_for(pid, state_dir)
}

/// Whether `pid` runs `... shim --config <state_dir>/shim.json`.
pub fn pid_is_shim_for(pid: i32, state_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let config = state_dir.join(files::SHIM_CONFIG);
    let config = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shim that drops a connection without reading the request (it is exiting)
    /// makes the kernel answer a reset or a broken pipe: that is `Closed`, which the
    /// callers treat as "the app is gone", never an internal error.
    #[tokio::test]
    async fn a_connection_dropped_unread_is_closed_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let listener =
            tokio::net::UnixListener::bind(dir.path().join(files::CONTROL_SOCKET)).unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..20 {
                let (conn, _) = listener.accept().await.unwrap();
                // Once the request has arrived, close with it unread: a reset.
                conn.readable().await.unwrap();
                drop(conn);
            }
        });
        for _ in 0..20 {
            let err = kill(dir.path(), libc::SIGKILL).await.unwrap_err();
            assert!(matches!(err, ShimError::Closed), "{err:?}");
        }
        server.await.unwrap();
    }
}
