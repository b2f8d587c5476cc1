//! `boxd shim exec <state_dir>`: start one more process inside a running container and
//! relay its stdio, a single-threaded helper the daemon runs as an ordinary child (it
//! never forks itself).
//!
//! Order (each step relies on the ones before it):
//! 1. read the [`ExecSpec`] frame, load the container's own `shim.json` and bundle
//!    `config.json` into a [`Plan`] and put the exec'd process into it (argv, env,
//!    cwd, user); capabilities, rlimits, no_new_privs stay the app's;
//! 2. open a pidfd of the container's first process and check it is the shim's child
//!    (not a recycled pid);
//! 3. join the container's cgroups (host paths, so before the mount namespace), so
//!    the process is limited and its OOM kill is counted as the container's;
//! 4. setns(pidfd, every namespace type the container has) in one call: the kernel
//!    joins them atomically from the process itself, with no `/proc/<pid>/ns/*` path
//!    that could be swapped under us. The pid namespace applies to children, so:
//! 5. open the pty in the container's devpts (now `/dev/pts/ptmx` is the container's)
//!    or make pipes, then fork; the child runs [`child::setup_process`] - the very
//!    set-up of the app - and [`child::exec`];
//! 6. report `started`, relay frames until the process exits and its output is
//!    drained, report `exited`.
//!
//! If the daemon goes away, the helper keeps waiting for the process (its output is
//! dropped) so the exec'd process is not killed by a daemon restart.

use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::child::{self, ChildError};
use crate::config::{self, Plan};
use crate::protocol::exec_frame::{self as frame, HEADER_LEN, MAX_PAYLOAD};
use crate::protocol::{files, ExecReport, ExecSpec};
use crate::sys;

/// How long output may keep coming after the process exited (its own children may
/// hold the pipes or the terminal).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read at once from the process.
const READ_SIZE: usize = 32 * 1024;
/// Stdin bytes held for a process that does not read, before the daemon is paused.
const MAX_PENDING: usize = 256 * 1024;

/// A step of `boxd shim exec` that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("usage: boxd shim exec <state_dir>")]
    Usage,
    #[error("failed to read the exec spec")]
    ReadSpec(#[source] std::io::Error),
    #[error("the first frame is not an exec spec")]
    NotASpec,
    #[error("failed to parse the exec spec")]
    ParseSpec(#[source] serde_json::Error),
    #[error("the exec helper must be single-threaded to fork")]
    Threads,
    #[error("failed to load the container's config")]
    Config(#[from] config::ConfigError),
    #[error("{what} contains a NUL byte")]
    NulByte { what: &'static str },
    #[error("the container is not running")]
    NotRunning,
    #[error("failed to open a pidfd for the container")]
    PidFd(#[source] Errno),
    #[error("failed to join cgroup {path}")]
    JoinCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to join the container's namespaces")]
    JoinNamespaces(#[source] Errno),
    #[error("failed to open the container's /dev/pts/ptmx")]
    OpenPty(#[source] Errno),
    #[error("failed to set up the terminal")]
    SetupPty(#[source] Errno),
    #[error("failed to create pipes")]
    Pipe(#[source] Errno),
    #[error("failed to fork the process")]
    Fork(#[source] Errno),
    #[error("failed to read the process's report")]
    ReadChildReport(#[source] std::io::Error),
}

impl ExecError {
    fn stage(&self) -> &'static str {
        use ExecError::*;
        match self {
            Usage | ReadSpec(_) | NotASpec | ParseSpec(_) | Config(_) | NulByte { .. } => "config",
            NotRunning | PidFd(_) => "not_running",
            JoinCgroup { .. } => "cgroup",
            JoinNamespaces(_) => "namespace",
            OpenPty(_) | SetupPty(_) => "tty",
            Threads | Pipe(_) | Fork(_) | ReadChildReport(_) => "clone",
        }
    }
}

/// Entry point of `boxd shim exec ARGS...`; the process exit status.
pub(crate) fn run(args: &[OsString]) -> i32 {
    let mut out = File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("fd 1"),
    );
    let mut input = File::from(std::io::stdin().as_fd().try_clone_to_owned().expect("fd 0"));
    let started = match start(args, &mut input) {
        Ok(s) => s,
        Err(Failure::Exec(e)) => {
            send_report(
                &mut out,
                &ExecReport::Failed {
                    stage: e.stage().into(),
                    message: crate::error_chain(&e),
                },
            );
            return 1;
        }
        Err(Failure::Child(report)) => {
            send_report(&mut out, &report);
            return 1;
        }
    };
    send_report(
        &mut out,
        &ExecReport::Started {
            pid: started.pid.as_raw(),
        },
    );
    Relay::new(started, input, out).run();
    0
}

fn send_report(out: &mut File, report: &ExecReport) {
    let json = serde_json::to_vec(report).expect("an ExecReport always serialises");
    let _ = write_frame(out, frame::REPORT, &json);
}

fn write_frame(out: &mut File, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&frame::header(kind, payload.len()));
    buf.extend_from_slice(payload);
    out.write_all(&buf)
}

enum Failure {
    Exec(ExecError),
    Child(ExecReport),
}

impl From<ExecError> for Failure {
    fn from(e: ExecError) -> Self {
        Failure::Exec(e)
    }
}

/// The process's ends the helper keeps.
enum Stdio {
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Pty {
        master: OwnedFd,
    },
}

struct Started {
    pid: Pid,
    pidfd: OwnedFd,
    stdio: Stdio,
}

/// Read the spec frame: the first bytes on stdin.
fn read_spec(input: &mut File) -> Result<ExecSpec, ExecError> {
    let mut h = [0u8; HEADER_LEN];
    input.read_exact(&mut h).map_err(ExecError::ReadSpec)?;
    let (kind, len) = frame::parse_header(h);
    if kind != frame::SPEC || len > MAX_PAYLOAD {
        return Err(ExecError::NotASpec);
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).map_err(ExecError::ReadSpec)?;
    serde_json::from_slice(&body).map_err(ExecError::ParseSpec)
}

fn cstrings(list: &[String], what: &'static str) -> Result<Vec<CString>, ExecError> {
    list.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| ExecError::NulByte { what }))
        .collect()
}

/// The container's plan with the exec'd process in place of the app. Only argv, env,
/// cwd and the user change; a non-root user gets no capabilities but the bounding
/// set, as the app would (the bundle gives a non-root app none either).
pub(crate) fn exec_plan(mut plan: Plan, spec: &ExecSpec) -> Result<Plan, ExecError> {
    let arg0 = spec
        .args
        .first()
        .ok_or(ExecError::NulByte { what: "args" })?;
    let p = &mut plan.process;
    p.exec_candidates = config::exec_candidates(arg0, &spec.env);
    p.args = cstrings(&spec.args, "args")?;
    p.env = cstrings(&spec.env, "env")?;
    p.cwd = spec.cwd.clone();
    p.uid = spec.uid;
    p.gid = spec.gid;
    p.additional_gids = spec.additional_gids.clone();
    if spec.uid != 0 {
        if let Some(c) = p.capabilities.as_mut() {
            c.effective.clear();
            c.permitted.clear();
            c.inheritable.clear();
            c.ambient.clear();
        }
    }
    Ok(plan)
}

/// Every namespace type the container has (created or joined by its first process).
pub(crate) fn namespace_flags(plan: &Plan) -> CloneFlags {
    let mut flags = CloneFlags::empty();
    if plan.pid_ns.is_some() {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    for ns in &plan.namespaces {
        flags |= ns.flag;
    }
    if plan.userns.is_some() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    flags
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The parent pid in `/proc/<pid>/stat` (the field after the `)` of the command).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A pidfd of the container's first process, checked to be the shim's child: the pid
/// in the state dir could have been recycled after the app exited. The pidfd then
/// pins that very process.
fn open_container(state_dir: &Path) -> Result<OwnedFd, ExecError> {
    let pid = read_pid(&state_dir.join(files::CONTAINER_PID)).ok_or(ExecError::NotRunning)?;
    let shim = read_pid(&state_dir.join(files::SHIM_PID)).ok_or(ExecError::NotRunning)?;
    let pidfd = sys::pidfd_open(Pid::from_raw(pid)).map_err(ExecError::PidFd)?;
    if parent_of(pid) != Some(shim) || state_dir.join(files::EXIT_RECORD).exists() {
        return Err(ExecError::NotRunning);
    }
    Ok(pidfd)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(ExecError::Pipe)
}

fn start(args: &[OsString], input: &mut File) -> Result<Started, Failure> {
    let [state_dir] = args else {
        return Err(ExecError::Usage.into());
    };
    let state_dir = PathBuf::from(state_dir);
    let spec = read_spec(input)?;
    if !crate::single_threaded() {
        return Err(ExecError::Threads.into());
    }
    let plan = config::load(&state_dir.join(files::SHIM_CONFIG)).map_err(ExecError::from)?;
    let plan = exec_plan(plan, &spec)?;
    let container = open_container(&state_dir)?;

    // `0`: this (single-threaded) process itself, as the container's first process
    // joins (`child::join_cgroups` says why that is the cheap way on v1).
    for path in &plan.shim.cgroup_join {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"0\n"))
            .map_err(|source| ExecError::JoinCgroup {
                path: path.clone(),
                source,
            })?;
    }
    // The user namespace is joined on its own and last, as the container's first
    // process does (`userns`): the mount and cgroup namespaces belong to the host's
    // user namespace, and joining them needs host root's capabilities.
    let flags = namespace_flags(&plan);
    nix::sched::setns(&container, flags - CloneFlags::CLONE_NEWUSER)
        .map_err(ExecError::JoinNamespaces)?;
    // Joined the mount namespace: `/` is now the container's root.
    let _ = nix::unistd::chdir("/");

    let (stdio, child_fds) = if spec.tty {
        let master = nix::fcntl::open(
            "/dev/pts/ptmx",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(ExecError::OpenPty)?;
        sys::pty_unlock(&master).map_err(ExecError::SetupPty)?;
        let peer = sys::pty_peer(&master).map_err(ExecError::SetupPty)?;
        // The user must own its terminal (as login(1) arranges), or a non-root
        // process could not reopen /dev/tty.
        // Still host root here, so the owner is the user's host id.
        let owner = match &plan.userns {
            Some(u) => crate::userns::map_id(&u.uid_map, spec.uid).unwrap_or(spec.uid),
            None => spec.uid,
        };
        nix::unistd::fchown(&peer, Some(nix::unistd::Uid::from_raw(owner)), None)
            .map_err(ExecError::SetupPty)?;
        if let Some((rows, cols)) = spec.size {
            sys::set_winsize(&master, rows, cols).map_err(ExecError::SetupPty)?;
        }
        let peer2 = peer
            .try_clone()
            .map_err(|e| ExecError::SetupPty(io_errno(e)))?;
        let peer3 = peer
            .try_clone()
            .map_err(|e| ExecError::SetupPty(io_errno(e)))?;
        (Stdio::Pty { master }, [peer, peer2, peer3])
    } else {
        let (in_r, in_w) = if spec.stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = nix::fcntl::open(
                "/dev/null",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(ExecError::Pipe)?;
            (null, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        (
            Stdio::Pipes {
                stdin: in_w,
                stdout: out_r,
                stderr: err_r,
            },
            [in_r, out_w, err_w],
        )
    };
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        nix::sched::setns(&container, CloneFlags::CLONE_NEWUSER)
            .map_err(ExecError::JoinNamespaces)?;
    }
    let (errors_r, errors_w) = pipe()?;

    let pid = match sys::fork().map_err(ExecError::Fork)? {
        ForkResult::Child => {
            drop((stdio, errors_r, container));
            child_main(&plan, spec.tty, child_fds, errors_w)
        }
        ForkResult::Parent { child } => child,
    };
    drop((child_fds, errors_w));
    let mut report = Vec::new();
    let read = File::from(errors_r).read_to_end(&mut report);
    if let Err(e) = read {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(ExecError::ReadChildReport(e).into());
    }
    if !report.is_empty() {
        let _ = nix::sys::wait::waitpid(pid, None);
        let failure =
            serde_json::from_slice::<ExecReport>(&report).unwrap_or_else(|e| ExecReport::Failed {
                stage: "init".into(),
                message: format!("unreadable report from the process: {e}"),
            });
        return Err(Failure::Child(failure));
    }
    let pidfd = sys::pidfd_open(pid).map_err(ExecError::PidFd)?;
    Ok(Started { pid, pidfd, stdio })
}

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The forked process: its own session (and terminal), the app's credentials, stdio,
/// exec. Never returns.
fn child_main(plan: &Plan, tty: bool, fds: [OwnedFd; 3], errors: OwnedFd) -> ! {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        child_setup_and_exec(plan, tty, &fds)
    }));
    let report = match result {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => ExecReport::Failed {
            stage: e.stage().to_string(),
            message: crate::error_chain(&e),
        },
        Err(_) => ExecReport::Failed {
            stage: "init".into(),
            message: "exec set-up panicked".into(),
        },
    };
    if let Ok(line) = serde_json::to_vec(&report) {
        let _ = File::from(errors).write_all(&line);
    }
    sys::exit_now(127)
}

fn child_setup_and_exec(
    plan: &Plan,
    tty: bool,
    fds: &[OwnedFd; 3],
) -> Result<std::convert::Infallible, ChildError> {
    // Its own session, so a terminal can become its controlling one and job control
    // (ctrl-c to the foreground group) works inside.
    nix::unistd::setsid().map_err(ChildError::Stdio)?;
    if tty {
        sys::set_controlling_tty(&fds[0]).map_err(ChildError::Stdio)?;
    }
    child::setup_process(plan)?;
    nix::unistd::dup2_stdin(&fds[0]).map_err(ChildError::Stdio)?;
    nix::unistd::dup2_stdout(&fds[1]).map_err(ChildError::Stdio)?;
    nix::unistd::dup2_stderr(&fds[2]).map_err(ChildError::Stdio)?;
    sys::cloexec_from_3().map_err(ChildError::Stdio)?;
    sys::reset_signals().map_err(ChildError::ResetSignals)?;
    child::exec(plan)
}

/// Which descriptor a poll entry is.
#[derive(Clone, Copy)]
enum Token {
    Exit,
    Input,
    Output(usize),
    ProcessStdin,
}

struct Output {
    kind: u8,
    fd: Option<File>,
}

/// The relay between the daemon's frames and the process's stdio.
struct Relay {
    pid: Pid,
    pidfd: OwnedFd,
    tty: bool,
    /// The daemon's side: frames in.
    input: Option<File>,
    inbuf: Vec<u8>,
    /// The daemon's side: frames out; `None` once the daemon went away.
    out: Option<File>,
    /// Where stdin bytes go (the pipe, or the pty master).
    stdin: Option<File>,
    pending: Vec<u8>,
    /// Close `stdin` once `pending` is written.
    stdin_eof: bool,
    outputs: Vec<Output>,
    exit: Option<(WaitStatus, Instant)>,
}

fn set_nonblocking(f: &File) {
    let _ = nix::fcntl::fcntl(f, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

impl Relay {
    fn new(s: Started, input: File, out: File) -> Relay {
        let (stdin, outputs, tty) = match s.stdio {
            Stdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => (
                stdin.map(File::from),
                vec![
                    Output {
                        kind: frame::STDOUT,
                        fd: Some(File::from(stdout)),
                    },
                    Output {
                        kind: frame::STDERR,
                        fd: Some(File::from(stderr)),
                    },
                ],
                false,
            ),
            Stdio::Pty { master } => {
                let m = File::from(master);
                let reader = m.try_clone().ok();
                (
                    Some(m),
                    vec![Output {
                        kind: frame::STDOUT,
                        fd: reader,
                    }],
                    true,
                )
            }
        };
        if let Some(f) = &stdin {
            set_nonblocking(f);
        }
        Relay {
            pid: s.pid,
            pidfd: s.pidfd,
            tty,
            input: Some(input),
            inbuf: Vec::new(),
            out: Some(out),
            stdin,
            pending: Vec::new(),
            stdin_eof: false,
            outputs,
            exit: None,
        }
    }

    fn run(mut self) -> ExecReport {
        loop {
            if let Some((_, deadline)) = &self.exit {
                let drained = self.outputs.iter().all(|o| o.fd.is_none());
                if drained || Instant::now() >= *deadline {
                    break;
                }
            }
            let ready = match self.poll_once() {
                Ok(r) => r,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            for (token, revents) in ready {
                match token {
                    Token::Exit => self.reap(),
                    Token::Input => self.read_input(),
                    Token::Output(i) => self.read_output(i),
                    Token::ProcessStdin => {
                        if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP) {
                            self.stdin = None;
                            self.pending.clear();
                        } else {
                            self.flush_stdin();
                        }
                    }
                }
            }
        }
        let status = self
            .exit
            .map(|(s, _)| s)
            .unwrap_or(WaitStatus::Exited(self.pid, 255));
        let report = match crate::monitor::exit_record(status, 0, None) {
            Some(r) => ExecReport::Exited {
                exit_code: r.exit_code,
                signal: r.signal,
            },
            None => ExecReport::Exited {
                exit_code: 255,
                signal: None,
            },
        };
        if let Some(out) = self.out.as_mut() {
            send_report(out, &report);
        }
        report
    }

    fn poll_once(&self) -> nix::Result<Vec<(Token, PollFlags)>> {
        let mut tokens = Vec::new();
        let mut fds = Vec::new();
        if self.exit.is_none() {
            tokens.push(Token::Exit);
            fds.push(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(f) = &self.input {
            // Back-pressure: a process that does not read its stdin pauses the daemon.
            if self.pending.len() < MAX_PENDING {
                tokens.push(Token::Input);
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        for (i, o) in self.outputs.iter().enumerate() {
            if let Some(f) = &o.fd {
                tokens.push(Token::Output(i));
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
        }
        if let Some(f) = &self.stdin {
            if !self.pending.is_empty() {
                tokens.push(Token::ProcessStdin);
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLOUT));
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
        if let Ok(status) = nix::sys::wait::waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                self.exit = Some((status, Instant::now() + DRAIN_TIMEOUT));
                // Nobody reads stdin any more.
                if !self.tty {
                    self.stdin = None;
                }
                self.pending.clear();
            }
        }
    }

    fn read_input(&mut self) {
        let Some(f) = self.input.as_mut() else { return };
        let mut buf = vec![0u8; READ_SIZE];
        match f.read(&mut buf) {
            Ok(0) | Err(_) => {
                // The daemon closed our stdin: no more input, ever.
                self.input = None;
                self.close_stdin();
                return;
            }
            Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
        }
        while self.inbuf.len() >= HEADER_LEN {
            let (kind, len) = frame::parse_header(self.inbuf[..HEADER_LEN].try_into().expect("5"));
            if len > MAX_PAYLOAD {
                self.input = None;
                self.close_stdin();
                return;
            }
            if self.inbuf.len() < HEADER_LEN + len {
                break;
            }
            let payload: Vec<u8> = self
                .inbuf
                .drain(..HEADER_LEN + len)
                .skip(HEADER_LEN)
                .collect();
            match kind {
                frame::STDIN if self.stdin.is_some() && !self.stdin_eof => {
                    self.pending.extend_from_slice(&payload);
                    self.flush_stdin();
                }
                frame::STDIN_EOF => self.close_stdin(),
                frame::RESIZE if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    if let (true, Some(m)) = (self.tty, &self.stdin) {
                        let _ = sys::set_winsize(m, rows, cols);
                    }
                }
                _ => {}
            }
        }
    }

    /// No more stdin: a pipe is closed once what is pending is written; a terminal gets
    /// its end-of-file character (the master stays open for the output).
    fn close_stdin(&mut self) {
        if self.stdin_eof {
            return;
        }
        self.stdin_eof = true;
        if self.tty {
            self.pending.push(0x04);
        }
        self.flush_stdin();
    }

    fn flush_stdin(&mut self) {
        let Some(f) = self.stdin.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match f.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    // EPIPE: the process closed its stdin.
                    self.pending.clear();
                    if !self.tty {
                        self.stdin = None;
                    }
                    return;
                }
            }
        }
        if self.stdin_eof && !self.tty {
            self.stdin = None;
        }
    }

    fn read_output(&mut self, i: usize) {
        let o = &mut self.outputs[i];
        let Some(f) = o.fd.as_mut() else { return };
        let mut buf = vec![0u8; READ_SIZE];
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {
                return
            }
            // A pty master reads EIO once every holder of the terminal closed it.
            Err(_) => 0,
        };
        if n == 0 {
            o.fd = None;
            if self.tty {
                self.stdin = None;
            }
            return;
        }
        let kind = o.kind;
        if let Some(out) = self.out.as_mut() {
            if write_frame(out, kind, &buf[..n]).is_err() {
                // The daemon went away; keep the process running, drop its output.
                self.out = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CapsPlan, Namespace, NsAction, ProcessPlan};
    use crate::mounts::RootfsPlan;
    use crate::protocol::{Overlay, ShimConfig};

    fn plan() -> Plan {
        let all = caps::CapsHashSet::from([caps::Capability::CAP_CHOWN]);
        Plan {
            shim: ShimConfig {
                id: "c".into(),
                bundle: "/b".into(),
                state_dir: "/s".into(),
                log_path: "/s/log".into(),
                rootfs: Overlay {
                    lower: vec!["/l".into()],
                    upper: "/u".into(),
                    work: "/w".into(),
                    disk: None,
                },
                cgroup_join: vec![],
                oom_counter: None,
                log_rotation: None,
                seccomp_bpf: None,
                protocol: crate::protocol::PROTOCOL_VERSION,
            },
            pid_ns: Some(NsAction::Create),
            namespaces: vec![
                Namespace {
                    flag: CloneFlags::CLONE_NEWNS,
                    action: NsAction::Create,
                },
                Namespace {
                    flag: CloneFlags::CLONE_NEWUTS,
                    action: NsAction::Create,
                },
            ],
            rootfs: RootfsPlan {
                rootfs: "/b/rootfs".into(),
                overlay_data: "lowerdir=/l".into(),
                idmapped_lowers: vec![],
                mounts: vec![],
                readonly: false,
                masked_paths: vec![],
                readonly_paths: vec![],
                disk: None,
            },
            hostname: None,
            loopback_up: true,
            sysctls: Vec::new(),
            process: ProcessPlan {
                args: vec![CString::new("app").unwrap()],
                env: vec![],
                exec_candidates: vec!["/app".into()],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                umask: 0o027,
                rlimits: vec![config::Rlimit {
                    resource: nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft: 10,
                    hard: 20,
                }],
                no_new_privileges: true,
                capabilities: Some(CapsPlan {
                    bounding: all.clone(),
                    effective: all.clone(),
                    inheritable: all.clone(),
                    permitted: all.clone(),
                    ambient: all,
                }),
                seccomp: None,
                seccomp_bpf: None,
            },
            userns: None,
        }
    }

    fn spec(uid: u32) -> ExecSpec {
        ExecSpec {
            args: vec!["sh".into(), "-c".into(), "id".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/tmp".into(),
            uid,
            gid: 7,
            additional_gids: vec![8],
            tty: false,
            stdin: false,
            size: None,
        }
    }

    #[test]
    fn exec_plan_keeps_the_apps_security_and_swaps_the_process() {
        let base = plan();
        let p = exec_plan(base.clone(), &spec(0)).unwrap();
        assert_eq!(p.process.exec_candidates, vec![PathBuf::from("/bin/sh")]);
        assert_eq!(p.process.args.len(), 3);
        assert_eq!((p.process.uid, p.process.gid), (0, 7));
        assert_eq!(p.process.cwd, PathBuf::from("/tmp"));
        assert_eq!(p.process.rlimits, base.process.rlimits);
        assert_eq!(p.process.capabilities, base.process.capabilities);
        assert!(p.process.no_new_privileges);
        assert_eq!(p.process.umask, 0o027);
        assert_eq!(p.rootfs, base.rootfs);
    }

    #[test]
    fn a_non_root_exec_user_keeps_only_the_bounding_set() {
        let p = exec_plan(plan(), &spec(1000)).unwrap();
        let c = p.process.capabilities.unwrap();
        assert!(!c.bounding.is_empty());
        assert!(c.effective.is_empty() && c.permitted.is_empty());
        assert!(c.inheritable.is_empty() && c.ambient.is_empty());
    }

    #[test]
    fn namespace_flags_cover_pid_and_the_others() {
        let f = namespace_flags(&plan());
        assert_eq!(
            f,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS
        );
        let mut p = plan();
        p.userns = Some(crate::userns::UsernsPlan {
            uid_map: vec![],
            gid_map: vec![],
        });
        assert!(namespace_flags(&p).contains(CloneFlags::CLONE_NEWUSER));
    }

    #[test]
    fn frames_round_trip() {
        let h = frame::header(frame::REPORT, 300);
        assert_eq!(h, [3, 0, 0, 1, 44]);
        assert_eq!(frame::parse_header(h), (frame::REPORT, 300));
    }
}
