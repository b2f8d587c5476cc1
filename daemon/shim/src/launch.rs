//! The long-lived shim's start: detach from the daemon, fork the container's first
//! process, put it into its cgroups, let it go, and learn whether it exec'd.
//!
//! Why fork + unshare rather than clone(2) with namespace flags: glibc's fork keeps
//! the child's libc state consistent (cached thread id, at-fork handlers, stdio and
//! malloc locks), which a raw clone syscall with a copied stack does not, and the
//! child runs ordinary Rust code before exec. CLONE_NEWPID is unshared (or setns'd)
//! in the shim itself, since it applies only to the caller's children: the forked
//! child is then pid 1 of the new namespace while staying the shim's direct child
//! (so the shim can wait for it). The other namespaces are entered by the child after
//! the shim's "go", the cgroup namespace last, so its root is the container's cgroup.
//!
//! Until the start report is sent, every failure kills and reaps the child and removes
//! the files this start made in the state dir, so nothing is left behind but the
//! daemon's cgroups and the shim's own log.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

use crate::child::{self, ChildFds};
use crate::config::{NsAction, Plan};
use crate::monitor::{self, Container};
use crate::protocol::{files, StartReport, StdioConfig};
use crate::{state, sys};

/// A start step of the shim that failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("failed to detach from the caller")]
    Detach(#[source] Errno),
    #[error("failed to redirect stdio to {path}")]
    RedirectStdio {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to enter state dir {path}")]
    EnterStateDir {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to open log {path}")]
    OpenLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to open pid namespace {path}")]
    OpenPidNamespace {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to set up the pid namespace")]
    PidNamespace(#[source] Errno),
    #[error("failed to create pipes")]
    Pipe(#[source] Errno),
    #[error("failed to open /dev/null")]
    OpenDevNull(#[source] Errno),
    #[error("failed to fork the container process")]
    Fork(#[source] Errno),
    #[error("failed to open a pidfd for the container process")]
    PidFd(#[source] Errno),
    #[error("failed to open {path} to add the container process to its cgroup")]
    JoinCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the container process's report")]
    ReadChildReport(#[source] std::io::Error),
    #[error("failed to record the pids")]
    WritePids(#[from] state::StateError),
    #[error("failed to read {path}")]
    ReadStdioConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to set up the terminal")]
    Terminal(#[source] Errno),
    #[error("failed to set up the user namespace")]
    Userns(#[from] crate::userns::UsernsError),
    #[error("failed to bind control socket {path}")]
    BindControl {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LaunchError {
    /// The start-report stage this error belongs to.
    pub fn stage(&self) -> &'static str {
        use LaunchError::*;
        match self {
            Detach(_) | RedirectStdio { .. } | EnterStateDir { .. } | WritePids(_) => "state",
            ReadStdioConfig { .. } => "config",
            Terminal(_) => "stdio",
            OpenLog { .. } => "log",
            OpenPidNamespace { .. } | PidNamespace(_) => "namespace",
            Pipe(_) | OpenDevNull(_) | Fork(_) | PidFd(_) | ReadChildReport(_) => "clone",
            JoinCgroup { .. } => "cgroup",
            BindControl { .. } => "control",
            Userns(_) => "userns",
        }
    }

    fn report(&self) -> StartReport {
        StartReport::Failed {
            stage: self.stage().to_string(),
            message: crate::error_chain(self),
        }
    }
}

/// Kills and reaps the container process unless disarmed: the start failed.
struct ChildGuard(Option<Pid>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// Runs in the freshly forked shim: detach, start the container, report on `report`,
/// then monitor it. Returns the shim's exit status.
pub(crate) fn shim_main(plan: &Plan, report: OwnedFd) -> i32 {
    let mut report = File::from(report);
    let send = |report: &mut File, r: &StartReport| {
        let mut line = serde_json::to_vec(r).expect("a StartReport always serialises");
        line.push(b'\n');
        let _ = report.write_all(&line);
    };
    if let Err(e) = detach(&plan.shim.state_dir) {
        send(&mut report, &e.report());
        return 1;
    }
    match start(plan) {
        Ok(started) => {
            send(
                &mut report,
                &StartReport::Started {
                    shim_pid: started.container.shim_pid,
                    pid: started.container.pid.as_raw(),
                },
            );
            // The starting process exits once it has the report; nothing of ours may
            // keep its pipe (and so the daemon's stdout) open.
            drop(report);
            monitor::run(started.container, started.stdout, started.stderr)
        }
        Err(failure) => {
            for name in [
                files::PROTOCOL,
                files::SHIM_PID,
                files::CONTAINER_PID,
                files::CONTROL_SOCKET,
            ] {
                let _ = std::fs::remove_file(plan.shim.state_dir.join(name));
            }
            eprintln!("boxd shim {}: start failed: {failure:?}", plan.shim.id);
            send(&mut report, &failure);
            1
        }
    }
}

/// New session; ignore the signals a daemon's death or a terminal would send; stdio to
/// /dev/null and the shim log, away from the daemon's pipes.
fn detach(state_dir: &Path) -> Result<(), LaunchError> {
    nix::unistd::setsid().map_err(LaunchError::Detach)?;
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
    ] {
        sys::ignore_signal(sig).map_err(LaunchError::Detach)?;
    }
    let log_path = state_dir.join(files::SHIM_LOG);
    let redirect = |source| LaunchError::RedirectStdio {
        path: log_path.clone(),
        source,
    };
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(redirect)?;
    let null = File::open("/dev/null").map_err(redirect)?;
    let errno = |e: Errno| redirect(std::io::Error::from(e));
    nix::unistd::dup2_stdin(&null).map_err(errno)?;
    nix::unistd::dup2_stdout(&log).map_err(errno)?;
    nix::unistd::dup2_stderr(&log).map_err(errno)?;
    Ok(())
}

struct Started {
    container: Container,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

fn start(plan: &Plan) -> Result<Started, StartReport> {
    start_inner(plan).map_err(|e| match e {
        Failure::Launch(e) => e.report(),
        Failure::Child(r) => r,
    })
}

enum Failure {
    Launch(LaunchError),
    Child(StartReport),
}

impl From<LaunchError> for Failure {
    fn from(e: LaunchError) -> Self {
        Failure::Launch(e)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)
}

fn start_inner(plan: &Plan) -> Result<Started, Failure> {
    let shim = &plan.shim;
    // The shim lives long; it must not pin the daemon's cwd. In the state dir, the
    // control socket can also be bound by a short relative name (sun_path is 108 bytes).
    nix::unistd::chdir(&shim.state_dir).map_err(|source| LaunchError::EnterStateDir {
        path: shim.state_dir.clone(),
        source,
    })?;
    // Left from an earlier run of this container: they would say it already ended.
    for name in [files::EXIT_RECORD, files::CONTROL_SOCKET] {
        let _ = std::fs::remove_file(name);
    }
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(&shim.log_path)
        .map_err(|source| LaunchError::OpenLog {
            path: shim.log_path.clone(),
            source,
        })?;

    // Before any other namespace: the ones the container creates are made owned by its
    // user namespace (see `userns`).
    let userns = match &plan.userns {
        Some(u) => {
            let mut create = CloneFlags::empty();
            for ns in &plan.namespaces {
                if ns.action == NsAction::Create
                    && [
                        CloneFlags::CLONE_NEWNET,
                        CloneFlags::CLONE_NEWUTS,
                        CloneFlags::CLONE_NEWIPC,
                    ]
                    .contains(&ns.flag)
                {
                    create |= ns.flag;
                }
            }
            Some(crate::userns::create(u, create).map_err(LaunchError::from)?)
        }
        None => None,
    };

    match &plan.pid_ns {
        None => {}
        Some(NsAction::Create) => {
            nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(LaunchError::PidNamespace)?
        }
        Some(NsAction::Join(path)) => {
            let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|source| LaunchError::OpenPidNamespace {
                    path: path.clone(),
                    source,
                })?;
            nix::sched::setns(&fd, CloneFlags::CLONE_NEWPID).map_err(LaunchError::PidNamespace)?;
        }
    }

    let (sync_r, sync_w) = pipe()?;
    let (errors_r, errors_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let stdio = read_stdio_config()?;
    // Stdin kept open for attachers is a pipe; a terminal is made by the child and its
    // master comes back on `console` (see `console`).
    let (stdin, stdin_w) = if stdio.open_stdin && !stdio.terminal {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(LaunchError::OpenDevNull)?;
        (null, None)
    };
    let (console, console_child) = if stdio.terminal {
        let (ours, theirs) = crate::console::pair().map_err(LaunchError::Terminal)?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };

    let disk = crate::mounts::open_disk(&plan.rootfs).map_err(Failure::Child)?;
    let cgroups = open_cgroup_files(&shim.cgroup_join)?;
    let pid = match sys::fork().map_err(LaunchError::Fork)? {
        ForkResult::Child => {
            drop((sync_w, errors_r, stdout_r, stderr_r, log, stdin_w, console));
            child::run(
                plan,
                ChildFds {
                    sync: sync_r,
                    errors: errors_w,
                    stdin,
                    stdout: stdout_w,
                    stderr: stderr_w,
                    console: console_child,
                    disk,
                    userns,
                    cgroups,
                },
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop((
        sync_r,
        errors_w,
        stdout_w,
        stderr_w,
        stdin,
        console_child,
        cgroups,
    ));
    // The child has its own copy; ours would keep the disk's mount alive after the
    // container's namespace is gone.
    drop(disk);
    // The child holds them now; the shim must not keep the namespaces alive after it.
    drop(userns);
    let mut guard = ChildGuard(Some(pid));

    let pidfd = sys::pidfd_open(pid).map_err(LaunchError::PidFd)?;
    let oom_baseline = state::read_counter(shim.oom_counter.as_ref());
    // "go". EPIPE (SIGPIPE is ignored) means the child already died; its report, or
    // the lack of one, tells what happened.
    let _ = nix::unistd::write(&sync_w, b"g");

    let mut report = Vec::new();
    File::from(errors_r)
        .read_to_end(&mut report)
        .map_err(LaunchError::ReadChildReport)?;
    if !report.is_empty() {
        drop(guard); // reap it before saying it failed
        let failure = serde_json::from_slice::<StartReport>(&report).unwrap_or_else(|e| {
            StartReport::Failed {
                stage: "init".into(),
                message: format!("unreadable report from the container process: {e}"),
            }
        });
        return Err(Failure::Child(failure));
    }
    let started_at_ms = monitor::now_ms();
    // The terminal's master is the app's output; the pipes saw only the set-up.
    let (stdout_r, terminal) = match &console {
        Some(socket) => {
            let master = crate::console::receive_master(socket).map_err(LaunchError::Terminal)?;
            let reader = master.try_clone().map_err(|e| {
                LaunchError::Terminal(Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            })?;
            (reader, Some(File::from(master)))
        }
        None => (stdout_r, None),
    };
    let app_stdin = match (&terminal, stdin_w) {
        (Some(m), _) if stdio.open_stdin => m.try_clone().ok(),
        (_, Some(w)) => Some(File::from(w)),
        _ => None,
    };
    // The child checked this pipe for a hang-up just before execve; it is no longer
    // needed.
    drop(sync_w);

    // Before the socket: whoever can connect can also learn how to talk (see
    // `protocol`, "Versions").
    let protocol = crate::protocol::shim_speaks(shim.protocol, own_protocol());
    state::write_atomic(
        &shim.state_dir,
        files::PROTOCOL,
        format!("{protocol}\n").as_bytes(),
    )
    .map_err(LaunchError::from)?;
    let shim_pid = nix::unistd::getpid().as_raw();
    state::write_atomic(
        &shim.state_dir,
        files::SHIM_PID,
        format!("{shim_pid}\n").as_bytes(),
    )
    .map_err(LaunchError::from)?;
    state::write_atomic(
        &shim.state_dir,
        files::CONTAINER_PID,
        format!("{pid}\n").as_bytes(),
    )
    .map_err(LaunchError::from)?;
    let listener = bind_control(&shim.state_dir)?;

    guard.0 = None;
    Ok(Started {
        container: Container {
            pid,
            pidfd,
            log: crate::logfile::LogFile::new(log, shim.log_path.clone(), shim.log_rotation),
            listener,
            oom_counter: shim.oom_counter.clone(),
            oom_baseline,
            started_at_ms,
            shim_pid,
            protocol,
            state_dir: shim.state_dir.clone(),
            attachers: crate::attach::Attachers::new(app_stdin, terminal, stdio.stdin_once),
        },
        stdout: stdout_r,
        stderr: stderr_r,
    })
}

/// Debug builds only: the highest protocol version this shim speaks, in place of
/// [`crate::protocol::PROTOCOL_VERSION`], so that a test can run a container under a
/// shim of the previous release and then upgrade the daemon under it.
pub const PROTOCOL_OVERRIDE_ENV: &str = "BOXD_TEST_SHIM_PROTOCOL";

/// The highest protocol version this shim speaks.
fn own_protocol() -> u32 {
    #[cfg(debug_assertions)]
    if let Some(v) = std::env::var(PROTOCOL_OVERRIDE_ENV)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        return v.clamp(
            crate::protocol::UNVERSIONED,
            crate::protocol::PROTOCOL_VERSION,
        );
    }
    crate::protocol::PROTOCOL_VERSION
}

/// Opens the files the child writes itself into (`child::join_cgroups`). Opened here,
/// by the shim, so that a missing group is the shim's clear error and the child's
/// writes are checked against the shim's (root's) credentials whatever namespaces the
/// child is in by then.
fn open_cgroup_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, File)>, LaunchError> {
    paths
        .iter()
        .map(|path| {
            OpenOptions::new()
                .write(true)
                .open(path)
                .map(|f| (path.clone(), f))
                .map_err(|source| LaunchError::JoinCgroup {
                    path: path.clone(),
                    source,
                })
        })
        .collect()
}

/// `stdio.json` in the state dir (the cwd); absent: no terminal, stdin from /dev/null.
fn read_stdio_config() -> Result<StdioConfig, LaunchError> {
    let err = |source| LaunchError::ReadStdioConfig {
        path: PathBuf::from(files::STDIO_CONFIG),
        source,
    };
    match std::fs::read(files::STDIO_CONFIG) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(std::io::Error::other(e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StdioConfig::default()),
        Err(e) => Err(err(e)),
    }
}

/// Bind `control.sock` (mode 0600) in the state dir, which is the cwd.
fn bind_control(state_dir: &Path) -> Result<UnixListener, LaunchError> {
    let err = |source| LaunchError::BindControl {
        path: state_dir.join(files::CONTROL_SOCKET),
        source,
    };
    // The socket's mode comes from the umask at bind time; setting it there (we are
    // single-threaded) leaves no window in which another user could connect.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(files::CONTROL_SOCKET);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}
