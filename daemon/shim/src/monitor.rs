//! The shim's life after the app exec'd: one single-threaded poll(2) loop that
//! copies the app's stdout/stderr into the log file, serves the control socket, and
//! notices the app's exit through a pidfd.
//!
//! On exit: the app is reaped, its pipes are drained (its own children may still hold
//! them; they die with the pid namespace's init, so EOF comes quickly, and the drain is
//! bounded anyway), `exit.json` is written atomically, and only then are `Wait`
//! requests answered; finally `control.sock` is removed. Being the app's parent, the
//! shim can signal it without a pid-reuse race: the pid stays ours until we reap it,
//! and no `Kill` is sent after that.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::logs::{record_line, LineSplitter};
use crate::protocol::{files, ControlRequest, ControlResponse, ExitRecord, OomCounter, Request};
use crate::state;

/// How long the pipes may stay open after the app exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request line a client may send.
const MAX_REQUEST: usize = 64 * 1024;
/// Bytes read from a pipe at once (so at most this much per log record).
const READ_SIZE: usize = 32 * 1024;

/// Everything the monitor needs about a started app.
pub(crate) struct Container {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    pub log: crate::logfile::LogFile,
    pub listener: UnixListener,
    pub oom_counter: Option<OomCounter>,
    pub oom_baseline: Option<u64>,
    pub started_at_ms: u64,
    pub shim_pid: i32,
    /// The highest control protocol version this shim answers in (see `protocol`).
    pub protocol: u32,
    pub state_dir: PathBuf,
    /// Attached clients, and the app's stdin and terminal (see `attach`).
    pub attachers: crate::attach::Attachers,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Stream {
    name: &'static str,
    fd: Option<File>,
    splitter: LineSplitter,
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    waiting: bool,
    /// The protocol version of its request: its answers are in the same.
    version: u32,
}

#[derive(Clone, Copy)]
enum Token {
    Exit,
    Stream(usize),
    Listener,
    Client(usize),
    Attacher(usize),
    AppStdin,
}

/// The exit record for a wait status, or `None` if the app has not ended.
pub(crate) fn exit_record(
    status: WaitStatus,
    started_at_ms: u64,
    oom_kills: Option<u64>,
) -> Option<ExitRecord> {
    let (pid, exit_code, signal) = match status {
        WaitStatus::Exited(pid, code) => (pid, code, None),
        WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32, Some(sig as i32)),
        _ => return None,
    };
    Some(ExitRecord {
        pid: pid.as_raw(),
        exit_code,
        signal,
        oom_kills,
        started_at_ms,
        finished_at_ms: now_ms(),
    })
}

struct Monitor {
    c: Container,
    streams: [Stream; 2],
    clients: Vec<Client>,
    exit: Option<(ExitRecord, Instant)>,
}

/// Run until the app has exited and everything is recorded; returns the exit status
/// of the shim.
pub(crate) fn run(c: Container, stdout: OwnedFd, stderr: OwnedFd) -> i32 {
    let streams = [
        Stream {
            name: "stdout",
            fd: Some(File::from(stdout)),
            splitter: LineSplitter::default(),
        },
        Stream {
            name: "stderr",
            fd: Some(File::from(stderr)),
            splitter: LineSplitter::default(),
        },
    ];
    let mut m = Monitor {
        c,
        streams,
        clients: Vec::new(),
        exit: None,
    };
    m.run()
}

impl Monitor {
    fn run(&mut self) -> i32 {
        loop {
            if let Some((_, deadline)) = &self.exit {
                let drained = self.streams.iter().all(|s| s.fd.is_none());
                if drained || Instant::now() >= *deadline {
                    break;
                }
            }
            let ready = match self.poll_once() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("boxd shim {}: poll failed: {e}", self.c.pid);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            // Clients are handled last and from the highest index down, so removing
            // one does not shift the index of another still to handle.
            let mut clients = Vec::new();
            let mut attachers = Vec::new();
            for (token, revents) in ready {
                match token {
                    Token::Exit => self.reap(),
                    Token::Stream(i) => self.read_stream(i),
                    Token::Listener => self.accept(),
                    Token::Client(i) => clients.push((i, revents)),
                    Token::Attacher(i) => attachers.push((i, revents)),
                    Token::AppStdin => self.c.attachers.stdin_ready(revents),
                }
            }
            for (i, revents) in attachers.into_iter().rev() {
                self.c.attachers.ready(i, revents);
            }
            for (i, _) in clients.into_iter().rev() {
                self.read_client(i);
            }
        }
        self.finish()
    }

    fn poll_once(&self) -> nix::Result<Vec<(Token, PollFlags)>> {
        let mut tokens = Vec::new();
        let mut fds = Vec::new();
        if self.exit.is_none() {
            tokens.push(Token::Exit);
            fds.push(PollFd::new(self.c.pidfd.as_fd(), PollFlags::POLLIN));
        }
        for (i, s) in self.streams.iter().enumerate() {
            if let Some(f) = &s.fd {
                tokens.push(Token::Stream(i));
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        tokens.push(Token::Listener);
        fds.push(PollFd::new(self.c.listener.as_fd(), PollFlags::POLLIN));
        for (i, cl) in self.clients.iter().enumerate() {
            tokens.push(Token::Client(i));
            fds.push(PollFd::new(cl.stream.as_fd(), PollFlags::POLLIN));
        }
        for interest in self.c.attachers.interests() {
            match interest {
                crate::attach::Interest::Attacher(i, fd, flags) => {
                    tokens.push(Token::Attacher(i));
                    fds.push(PollFd::new(fd, flags));
                }
                crate::attach::Interest::Stdin(fd) => {
                    tokens.push(Token::AppStdin);
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            }
        }
        let timeout = match &self.exit {
            None => PollTimeout::NONE,
            Some((_, deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        Ok(tokens
            .into_iter()
            .zip(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            )
            .filter(|(_, r)| !r.is_empty())
            .collect())
    }

    fn reap(&mut self) {
        let status = match nix::sys::wait::waitpid(self.c.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("boxd shim {}: waitpid failed: {e}", self.c.pid);
                // The pidfd said it exited but the status is lost; record what we can.
                WaitStatus::Exited(self.c.pid, 255)
            }
        };
        let oom_kills = match (
            state::read_counter(self.c.oom_counter.as_ref()),
            self.c.oom_baseline,
        ) {
            (Some(now), Some(base)) => Some(now.saturating_sub(base)),
            _ => None,
        };
        if let Some(record) = exit_record(status, self.c.started_at_ms, oom_kills) {
            self.exit = Some((record, Instant::now() + DRAIN_TIMEOUT));
            self.c.attachers.app_exited();
        }
    }

    fn read_stream(&mut self, i: usize) {
        let stream = &mut self.streams[i];
        let Some(f) = stream.fd.as_mut() else { return };
        let mut buf = vec![0u8; READ_SIZE];
        let (n, eof) = match f.read(&mut buf) {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {
                return
            }
            // A terminal's master reads EIO once every holder of its peer closed it:
            // the end of the app's output.
            Err(e) if e.raw_os_error() == Some(libc::EIO) && self.c.attachers.terminal() => {
                (0, true)
            }
            Err(e) => {
                eprintln!("boxd shim {}: read {} failed: {e}", self.c.pid, stream.name);
                (0, true)
            }
        };
        let now = SystemTime::now();
        for text in stream.splitter.split(&buf[..n], eof) {
            // One write(2) per record on an O_APPEND file: a reader never sees half a
            // line from us. A failed write is reported but does not stop the copying,
            // or the app would block on a full pipe.
            if let Err(e) = self.c.log.write_all(&record_line(stream.name, text, now)) {
                eprintln!("boxd shim {}: write log failed: {e}", self.c.pid);
            }
        }
        if eof {
            stream.fd = None;
        }
        let kind = if i == 1 {
            crate::protocol::exec_frame::STDERR
        } else {
            crate::protocol::exec_frame::STDOUT
        };
        self.c.attachers.output(kind, &buf[..n]);
    }

    fn accept(&mut self) {
        loop {
            match self.c.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            stream,
                            buf: Vec::new(),
                            waiting: false,
                            version: crate::protocol::UNVERSIONED,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        let cl = &mut self.clients[i];
        let eof = match cl.stream.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                cl.buf.extend_from_slice(&buf[..n]);
                false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {
                return
            }
            Err(_) => true,
        };
        if cl.waiting {
            // Only a hang-up matters now; extra bytes are ignored.
            if eof {
                self.clients.swap_remove(i);
            }
            return;
        }
        let line = match cl.buf.iter().position(|b| *b == b'\n') {
            Some(nl) => cl.buf[..nl].to_vec(),
            None if eof && !cl.buf.is_empty() => cl.buf.clone(),
            None if eof => {
                self.clients.swap_remove(i);
                return;
            }
            None if cl.buf.len() > MAX_REQUEST => {
                let mut cl = self.clients.swap_remove(i);
                respond(
                    &mut cl.stream,
                    cl.version,
                    &ControlResponse::Error {
                        message: "request too long".into(),
                    },
                );
                return;
            }
            None => return,
        };
        let (version, request) = parse_request(&line, self.c.protocol);
        cl.version = version;
        let response = match request {
            Err(refused) => refused,
            Ok(ControlRequest::Wait) => {
                cl.waiting = true;
                if cl.version >= 2 {
                    respond_keep(&mut cl.stream, cl.version, &ControlResponse::Waiting);
                }
                return;
            }
            Ok(ControlRequest::State) => ControlResponse::State {
                shim_pid: self.c.shim_pid,
                pid: self.c.pid.as_raw(),
                running: self.exit.is_none(),
            },
            Ok(ControlRequest::Kill { signal }) => self.kill(signal),
            Ok(ControlRequest::Resize { rows, cols }) => {
                match self.c.attachers.resize(rows, cols) {
                    Ok(()) => ControlResponse::Ok,
                    Err(message) => ControlResponse::Error { message },
                }
            }
            Ok(ControlRequest::Attach {
                stdin,
                stdout,
                stderr,
            }) => {
                let wants = crate::attach::Wants {
                    stdin,
                    stdout,
                    stderr,
                };
                let nl = cl.buf.iter().position(|b| *b == b'\n');
                let early = nl.map(|nl| cl.buf[nl + 1..].to_vec()).unwrap_or_default();
                let mut cl = self.clients.swap_remove(i);
                let response = if self.exit.is_some() {
                    ControlResponse::Error {
                        message: "container has exited".into(),
                    }
                } else if let Err(refused) = self.c.attachers.check(wants) {
                    ControlResponse::Error {
                        message: refused.to_string(),
                    }
                } else {
                    // Everything logged so far is before this offset; everything read
                    // from now on is sent to this attacher too.
                    let log_offset = self.c.log.metadata().map(|m| m.len()).unwrap_or(0);
                    ControlResponse::Attached {
                        log_offset,
                        terminal: self.c.attachers.terminal(),
                    }
                };
                let attached = matches!(response, ControlResponse::Attached { .. });
                respond(&mut cl.stream, cl.version, &response);
                if attached {
                    self.c.attachers.add(cl.stream, wants, early);
                }
                return;
            }
        };
        let mut cl = self.clients.swap_remove(i);
        respond(&mut cl.stream, cl.version, &response);
    }

    fn kill(&self, signal: i32) -> ControlResponse {
        if self.exit.is_some() {
            return ControlResponse::Error {
                message: "container has exited".into(),
            };
        }
        // Not yet reaped (we reap only in `reap`, which sets `exit`), so the pid is
        // still the app's, even if it is a zombie by now.
        match crate::sys::kill(self.c.pid, signal) {
            Ok(()) => ControlResponse::Ok,
            Err(e) => ControlResponse::Error {
                message: format!("failed to send signal {signal}: {e}"),
            },
        }
    }

    fn finish(&mut self) -> i32 {
        let (record, _) = self.exit.clone().expect("loop ends only after the exit");
        let json = serde_json::to_vec(&record).expect("an ExitRecord always serialises");
        let response = match state::write_atomic(&self.c.state_dir, files::EXIT_RECORD, &json) {
            Ok(()) => ControlResponse::Exited(record),
            Err(e) => {
                let message = crate::error_chain(&e);
                eprintln!("boxd shim {}: {message}", self.c.pid);
                ControlResponse::Error { message }
            }
        };
        for cl in self.clients.iter_mut().filter(|c| c.waiting) {
            respond(&mut cl.stream, cl.version, &response);
        }
        self.clients.clear();
        self.c.attachers.finish();
        let _ = std::fs::remove_file(self.c.state_dir.join(files::CONTROL_SOCKET));
        0
    }
}

/// A request line, and the protocol version to answer it in: that of the request, or
/// ours (`own`) when it is newer, which is then refused.
pub(crate) fn parse_request(
    line: &[u8],
    own: u32,
) -> (u32, Result<ControlRequest, ControlResponse>) {
    match serde_json::from_slice::<Request>(line) {
        Err(e) => (
            crate::protocol::UNVERSIONED,
            Err(ControlResponse::Error {
                message: format!("bad request: {e}"),
            }),
        ),
        Ok(r) if r.version > own => (
            own,
            Err(ControlResponse::Error {
                message: format!(
                    "unsupported protocol version {}; this shim speaks up to {own}",
                    r.version
                ),
            }),
        ),
        Ok(r) => (r.version.max(crate::protocol::UNVERSIONED), Ok(r.request)),
    }
}

/// One answer line in protocol `version` (version 1: the bare answer).
pub(crate) fn answer_line(version: u32, response: &ControlResponse) -> Vec<u8> {
    let mut line = serde_json::to_vec(&crate::protocol::Response {
        version,
        response: response.clone(),
    })
    .expect("a ControlResponse always serialises");
    line.push(b'\n');
    line
}

/// Send one response line; a client that went away is not our problem.
fn respond(stream: &mut UnixStream, version: u32, response: &ControlResponse) {
    // Responses are far smaller than a socket buffer, but the socket is non-blocking:
    // make this one write blocking so a slow reader still gets the whole line.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&answer_line(version, response));
}

/// As [`respond`], for a connection that stays in the poll loop (non-blocking).
fn respond_keep(stream: &mut UnixStream, version: u32, response: &ControlResponse) {
    respond(stream, version, response);
    let _ = stream.set_nonblocking(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn exit_record_maps_signals_to_128_plus() {
        let pid = Pid::from_raw(42);
        let r = exit_record(
            WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            5,
            Some(1),
        )
        .unwrap();
        assert_eq!((r.exit_code, r.signal, r.pid), (137, Some(9), 42));
        assert_eq!((r.started_at_ms, r.oom_kills), (5, Some(1)));
        assert!(r.finished_at_ms >= 5);
        let r = exit_record(WaitStatus::Exited(pid, 3), 0, None).unwrap();
        assert_eq!((r.exit_code, r.signal), (3, None));
        assert!(exit_record(WaitStatus::StillAlive, 0, None).is_none());
    }

    /// What a daemon of version 1 sends (bare requests, no version) is understood and
    /// answered in version 1, byte for byte what a version-1 shim wrote.
    #[test]
    fn a_version_1_daemon_is_answered_in_version_1() {
        let (v, req) = parse_request(br#"{"op":"kill","signal":9}"#, 2);
        assert_eq!((v, req), (1, Ok(ControlRequest::Kill { signal: 9 })));
        let (v, req) = parse_request(br#"{"op":"wait"}"#, 2);
        assert_eq!((v, req), (1, Ok(ControlRequest::Wait)));
        assert_eq!(
            answer_line(1, &ControlResponse::Ok),
            b"{\"status\":\"ok\"}\n"
        );
        let exited = ControlResponse::Exited(ExitRecord {
            pid: 5,
            exit_code: 0,
            signal: None,
            oom_kills: None,
            started_at_ms: 1,
            finished_at_ms: 2,
        });
        let line = answer_line(1, &exited);
        assert_eq!(
            serde_json::from_slice::<ControlResponse>(&line).unwrap(),
            exited,
            "a version-1 daemon reads it as the bare answer"
        );
        assert!(!String::from_utf8(line).unwrap().contains("version"));
    }

    /// Requests of the current version are answered in it; newer ones are refused in
    /// ours; fields this shim does not know are ignored.
    #[test]
    fn versions_up_to_ours_are_answered_in_their_own() {
        let (v, req) = parse_request(br#"{"version":2,"op":"state"}"#, 2);
        assert_eq!((v, req), (2, Ok(ControlRequest::State)));
        let (v, req) = parse_request(br#"{"version":2,"op":"wait","since":"later"}"#, 2);
        assert_eq!((v, req), (2, Ok(ControlRequest::Wait)));
        // A shim capped at 1 (the previous release) refuses a version-2 request.
        let (v, req) = parse_request(br#"{"version":2,"op":"state"}"#, 1);
        assert_eq!(v, 1);
        assert!(
            matches!(&req, Err(ControlResponse::Error { message }) if message.contains("unsupported protocol version 2")),
            "{req:?}"
        );
        let (v, req) = parse_request(b"not json", 2);
        assert!(v == 1 && req.is_err());
        let line = answer_line(2, &ControlResponse::Waiting);
        assert_eq!(line, b"{\"version\":2,\"status\":\"waiting\"}\n");
    }
}
