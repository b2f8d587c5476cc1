//! Talking to shims: starting one, and its control socket.
//!
//! The daemon never forks: it runs `<shim> shim --config FILE` as an ordinary child
//! (no `pre_exec`), which forks the long-lived shim away and exits once the app has
//! exec'd, printing a [`StartReport`]. After that the daemon reaches the shim only
//! through `control.sock` and the files in the state dir (see `boxd_shim::protocol`).
//!
//! Every control request has a deadline covering the connect, the request and its
//! answer, so a shim that is stopped (SIGSTOP), stuck or starved fails the request with
//! [`ShimError::Timeout`] instead of holding the caller (and whatever it holds) for
//! ever. The one answer without a deadline is the exit that `Wait` waits for; reaching
//! the shim and its acknowledgement (protocol 2) still have one.
//!
//! Each request is sent in the protocol version the shim recorded in its state dir
//! ([`protocol_of`]), so a daemon started after an upgrade talks to the shims of the
//! previous release in their own version.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use boxd_shim::protocol::{
    self, files, ControlRequest, ControlResponse, ExitRecord, Request, Response, StartReport,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// How long a shim may take to set up and exec the app.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Deadline of a control request whose caller has none of its own (a signal, a
/// resize, reaching the shim for `Wait` or `Attach`). A live shim answers in
/// microseconds; one that has not answered in this long is stopped or starved.
pub const CONTROL_DEADLINE: Duration = Duration::from_secs(5);

/// Shortest deadline [`deadline_within`] gives, so that a zero budget (`stop` with
/// `timeout=0`) still lets a busy shim answer.
const MIN_DEADLINE: Duration = Duration::from_secs(1);

/// Pause between connect attempts while the socket's backlog is full.
const BACKLOG_RETRY: Duration = Duration::from_millis(20);

/// The deadline for one request made on behalf of an operation allowed `budget` in
/// all (`stop`'s timeout): the budget, within [1 s, [`CONTROL_DEADLINE`]].
pub fn deadline_within(budget: Duration) -> Duration {
    budget.clamp(MIN_DEADLINE, CONTROL_DEADLINE)
}

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
    /// The shim did not take the request, or did not answer it, within the deadline
    /// (it is stopped, stuck or starved).
    #[error("the shim did not answer {op} within {after:?}")]
    Timeout {
        /// The request.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The shim's recorded protocol version could not be read.
    #[error("failed to read the shim's protocol version {path}")]
    ReadProtocol {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The shim speaks a protocol version this daemon does not.
    #[error(
        "the shim speaks protocol version {version}; this daemon speaks {} and {}",
        protocol::OLDEST_SPOKEN,
        protocol::PROTOCOL_VERSION
    )]
    Unsupported {
        /// The shim's version.
        version: u32,
    },
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

/// The protocol version to use with the shim of `state_dir`: the one it recorded
/// (none: version 1), within what this daemon speaks.
pub fn protocol_of(state_dir: &Path) -> Result<u32, ShimError> {
    let path = state_dir.join(files::PROTOCOL);
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .map_err(|e| ShimError::ReadProtocol {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => protocol::UNVERSIONED,
        Err(source) => return Err(ShimError::ReadProtocol { path, source }),
    };
    protocol::daemon_speaks(recorded).ok_or(ShimError::Unsupported { version: recorded })
}

/// An open control connection whose request has been sent.
pub(crate) struct Connection {
    /// The shim's answers.
    pub read: BufReader<OwnedReadHalf>,
    /// Towards the shim (frames, after `Attach`).
    pub write: OwnedWriteHalf,
    /// The protocol version of the request, and so of the answers.
    pub version: u32,
}

impl Connection {
    /// Connects to the shim of `state_dir` and sends `req` in the shim's version.
    ///
    /// No deadline of its own: callers put one around this and [`Self::answer`].
    pub(crate) async fn open(state_dir: &Path, req: &ControlRequest) -> Result<Self, ShimError> {
        let version = protocol_of(state_dir)?;
        let stream = connect(state_dir).await?;
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_string(&Request {
            version,
            request: req.clone(),
        })
        .expect("request serialises");
        line.push('\n');
        write.write_all(line.as_bytes()).await.map_err(io_error)?;
        Ok(Connection {
            read: BufReader::new(read),
            write,
            version,
        })
    }

    /// Reads one answer; an `Error` answer is [`ShimError::Refused`].
    pub(crate) async fn answer(&mut self) -> Result<ControlResponse, ShimError> {
        let mut answer = String::new();
        let n = self.read.read_line(&mut answer).await.map_err(io_error)?;
        if n == 0 {
            return Err(ShimError::Closed);
        }
        let resp: Response = serde_json::from_str(answer.trim()).map_err(ShimError::Protocol)?;
        if let ControlResponse::Error { message } = resp.response {
            return Err(ShimError::Refused(message));
        }
        // A shim answers in the version it was asked in.
        if resp.version != self.version {
            return Err(ShimError::Unsupported {
                version: resp.version,
            });
        }
        Ok(resp.response)
    }
}

/// Connects to the control socket of `state_dir`.
async fn connect(state_dir: &Path) -> Result<UnixStream, ShimError> {
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
    loop {
        match UnixStream::connect(&short).await {
            Ok(stream) => return Ok(stream),
            // A full backlog (the shim is not accepting: stopped, or swamped) fails a
            // non-blocking connect with EAGAIN (unix(7)); that is a shim that has not
            // answered yet, not a gone one. The caller's deadline ends the retries.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(BACKLOG_RETRY).await;
            }
            Err(source) => return Err(ShimError::Connect { path, source }),
        }
    }
}

/// Runs `fut` (a request named `op`) with a deadline.
async fn within<T>(
    op: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, ShimError>>,
) -> Result<T, ShimError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|_| ShimError::Timeout { op, after })?
}

/// Sends one request on a fresh connection and reads one answer, all within
/// `deadline`.
pub async fn request(
    state_dir: &Path,
    req: &ControlRequest,
    deadline: Duration,
) -> Result<ControlResponse, ShimError> {
    within(req.op(), deadline, async {
        Connection::open(state_dir, req).await?.answer().await
    })
    .await
}

/// Sends `req` and reads its first answer within `deadline`, keeping the connection
/// (for `Attach`).
pub(crate) async fn open(
    state_dir: &Path,
    req: &ControlRequest,
    deadline: Duration,
) -> Result<(Connection, ControlResponse), ShimError> {
    within(req.op(), deadline, async {
        let mut conn = Connection::open(state_dir, req).await?;
        let first = conn.answer().await?;
        Ok((conn, first))
    })
    .await
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

/// Sends a signal to the container's first process; the shim must have answered
/// within `deadline`.
pub async fn kill(state_dir: &Path, signal: i32, deadline: Duration) -> Result<(), ShimError> {
    request(state_dir, &ControlRequest::Kill { signal }, deadline)
        .await
        .map(|_| ())
}

/// Blocks until the shim reports the exit. Reaching the shim (and, from protocol 2
/// on, its acknowledgement) must take less than [`CONTROL_DEADLINE`]; the exit may
/// take as long as the app runs.
pub async fn wait(state_dir: &Path) -> Result<ExitRecord, ShimError> {
    wait_within(state_dir, CONTROL_DEADLINE).await
}

/// [`wait`], reaching the shim within `deadline`.
async fn wait_within(state_dir: &Path, deadline: Duration) -> Result<ExitRecord, ShimError> {
    let req = ControlRequest::Wait;
    let mut conn = within(req.op(), deadline, async {
        let mut conn = Connection::open(state_dir, &req).await?;
        if conn.version >= 2 {
            match conn.answer().await? {
                ControlResponse::Waiting => {}
                other => return Err(unexpected(&req, &other)),
            }
        }
        Ok(conn)
    })
    .await?;
    match conn.answer().await? {
        ControlResponse::Exited(record) => Ok(record),
        other => Err(unexpected(&req, &other)),
    }
}

fn unexpected(req: &ControlRequest, answer: &ControlResponse) -> ShimError {
    ShimError::Refused(format!("unexpected answer to {}: {answer:?}", req.op()))
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
            let err = kill(dir.path(), libc::SIGKILL, CONTROL_DEADLINE)
                .await
                .unwrap_err();
            assert!(matches!(err, ShimError::Closed), "{err:?}");
        }
        server.await.unwrap();
    }

    /// A shim that takes the connection and never answers (SIGSTOPped after its
    /// accept, or stuck): the request fails at its deadline, not later, and not never.
    #[tokio::test]
    async fn a_shim_that_never_answers_times_out_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let listener =
            tokio::net::UnixListener::bind(dir.path().join(files::CONTROL_SOCKET)).unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                held.push(conn);
            }
        });
        let deadline = Duration::from_millis(300);
        let began = std::time::Instant::now();
        let err = kill(dir.path(), libc::SIGTERM, deadline).await.unwrap_err();
        let took = began.elapsed();
        assert!(
            matches!(err, ShimError::Timeout { op: "kill", after } if after == deadline),
            "{err:?}"
        );
        assert!(
            took >= deadline && took < deadline + Duration::from_secs(1),
            "{took:?}"
        );
        // `Wait` bounds reaching the shim: protocol 2 acknowledges at once.
        std::fs::write(dir.path().join(files::PROTOCOL), "2\n").unwrap();
        let err = wait_within(dir.path(), deadline).await.unwrap_err();
        assert!(
            matches!(err, ShimError::Timeout { op: "wait", after } if after == deadline),
            "{err:?}"
        );
        server.abort();
    }

    /// A shim that never accepts (SIGSTOPped with a full backlog): a non-blocking
    /// connect fails with EAGAIN, which must not pass for "the shim is gone" (that would
    /// make `stop` report success); it is retried until the deadline.
    #[tokio::test]
    async fn a_shim_that_never_accepts_times_out_at_the_deadline() {
        use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag};
        use nix::sys::socket::{SockType, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::CONTROL_SOCKET);
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &UnixAddr::new(&path).unwrap(),
        )
        .unwrap();
        listen(&fd, Backlog::new(0).unwrap()).unwrap();
        // Fill the backlog: connects succeed until the queue is full.
        let mut queued = Vec::new();
        let full = loop {
            match UnixStream::connect(&path).await {
                Ok(s) => queued.push(s),
                Err(e) => break e,
            }
            assert!(queued.len() < 64, "the backlog never filled");
        };
        assert_eq!(full.kind(), std::io::ErrorKind::WouldBlock, "{full}");

        let deadline = Duration::from_millis(300);
        let began = std::time::Instant::now();
        let err = kill(dir.path(), libc::SIGTERM, deadline).await.unwrap_err();
        let took = began.elapsed();
        assert!(
            matches!(err, ShimError::Timeout { op: "kill", .. }),
            "{err:?}"
        );
        assert!(
            took >= deadline && took < deadline + Duration::from_secs(1),
            "{took:?}"
        );
        drop(fd);
    }

    /// A fake shim on `dir`: answers each of `connections` connections' request line
    /// with `answers`, and returns the request lines it got.
    fn fake_shim(
        dir: &Path,
        connections: usize,
        answers: &'static [&'static str],
    ) -> tokio::task::JoinHandle<Vec<serde_json::Value>> {
        let _ = std::fs::remove_file(dir.join(files::CONTROL_SOCKET));
        let listener = tokio::net::UnixListener::bind(dir.join(files::CONTROL_SOCKET)).unwrap();
        tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..connections {
                let (conn, _) = listener.accept().await.unwrap();
                let (read, mut write) = conn.into_split();
                let mut line = String::new();
                BufReader::new(read).read_line(&mut line).await.unwrap();
                got.push(serde_json::from_str(&line).unwrap());
                for a in answers {
                    write.write_all(format!("{a}\n").as_bytes()).await.unwrap();
                }
            }
            got
        })
    }

    const EXITED_V1: &str = r#"{"status":"exited","pid":7,"exit_code":3,"signal":null,"oom_kills":null,"started_at_ms":1,"finished_at_ms":2}"#;

    /// A shim of version 1 (before versions: no `protocol` file, bare lines, one answer
    /// to `Wait`) is asked in version 1, and its answers are understood.
    #[tokio::test]
    async fn a_daemon_talks_to_a_version_1_shim_in_version_1() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(protocol_of(dir.path()).unwrap(), 1);
        let shim = fake_shim(dir.path(), 1, &[r#"{"status":"ok"}"#]);
        kill(dir.path(), 15, CONTROL_DEADLINE).await.unwrap();
        let got = shim.await.unwrap();
        assert_eq!(got, vec![serde_json::json!({"op": "kill", "signal": 15})]);
        // What a version-1 shim answers to a wait: the exit, nothing before it.
        let shim = fake_shim(dir.path(), 1, &[EXITED_V1]);
        let record = wait(dir.path()).await.unwrap();
        assert_eq!((record.pid, record.exit_code), (7, 3));
        let got = shim.await.unwrap();
        assert_eq!(got, vec![serde_json::json!({"op": "wait"})]);
    }

    /// A shim of the current version is asked in it, acknowledges a wait first, and
    /// states its version in each answer.
    #[tokio::test]
    async fn a_daemon_talks_to_a_current_shim_in_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(files::PROTOCOL), "2\n").unwrap();
        assert_eq!(protocol_of(dir.path()).unwrap(), protocol::PROTOCOL_VERSION);
        let shim = fake_shim(
            dir.path(),
            1,
            &[
                r#"{"version":2,"status":"waiting"}"#,
                r#"{"version":2,"status":"exited","pid":7,"exit_code":3,"signal":null,"oom_kills":null,"started_at_ms":1,"finished_at_ms":2}"#,
            ],
        );
        let record = wait(dir.path()).await.unwrap();
        assert_eq!((record.pid, record.exit_code), (7, 3));
        let got = shim.await.unwrap();
        assert_eq!(got, vec![serde_json::json!({"version": 2, "op": "wait"})]);

        // An answer in another version than asked is not trusted.
        let shim = fake_shim(dir.path(), 1, &[r#"{"status":"ok"}"#]);
        let err = kill(dir.path(), 15, CONTROL_DEADLINE).await.unwrap_err();
        assert!(
            matches!(err, ShimError::Unsupported { version: 1 }),
            "{err:?}"
        );
        drop(shim.await.unwrap());
    }

    /// The recorded version decides: older than the previous one is refused before
    /// anything is sent; a newer shim (after a downgrade) is spoken to in ours.
    #[tokio::test]
    async fn the_recorded_version_decides_what_is_spoken() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(files::PROTOCOL);
        std::fs::write(&file, format!("{}\n", protocol::PROTOCOL_VERSION + 1)).unwrap();
        assert_eq!(protocol_of(dir.path()).unwrap(), protocol::PROTOCOL_VERSION);
        std::fs::write(&file, format!("{}\n", protocol::OLDEST_SPOKEN - 1)).unwrap();
        let err = kill(dir.path(), 15, CONTROL_DEADLINE).await.unwrap_err();
        assert!(matches!(err, ShimError::Unsupported { .. }), "{err:?}");
        std::fs::write(&file, "two\n").unwrap();
        let err = protocol_of(dir.path()).unwrap_err();
        assert!(matches!(err, ShimError::ReadProtocol { .. }), "{err:?}");
    }
}
