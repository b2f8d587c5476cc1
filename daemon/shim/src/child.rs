//! The container's first process between fork and execve.
//!
//! Order (each step relies on the ones before it):
//! 1. parent-death signal, join every cgroup (the child writes `0` itself: see
//!    `join_cgroups`; so the app never runs uncapped), then wait for the shim's "go";
//! 2. enter the namespaces (cgroup last, so its root is the container's cgroup);
//! 3. build the root filesystem ([`mounts`]), hostname, `lo` up, `pivot_root`;
//! 4. rlimits, bounding set, groups/gid/uid, cwd, no_new_privs, capability sets;
//! 5. stdio, close-on-exec on everything else, default signals, execve.
//!
//! Any failure is sent to the shim as a [`StartReport::Failed`] JSON on the
//! close-on-exec error pipe (so EOF there means execve succeeded), and the child exits
//! 127. The child never returns into the shim's code.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use crate::config::{NsAction, Plan};
use crate::mounts::{self, MountError};
use crate::protocol::StartReport;
use crate::sys::{self, LinuxSys, Sys};
use crate::userns::UsernsFds;

/// The descriptors the child keeps from the shim.
pub(crate) struct ChildFds {
    /// Read end of the "go" pipe; also tells the child whether the shim is alive.
    pub sync: OwnedFd,
    /// Write end of the error pipe (close-on-exec).
    pub errors: OwnedFd,
    /// /dev/null, for the app's stdin.
    pub stdin: OwnedFd,
    /// Write end of the stdout pipe.
    pub stdout: OwnedFd,
    /// Write end of the stderr pipe.
    pub stderr: OwnedFd,
    /// With a terminal: where to send its master (see `console`).
    pub console: Option<OwnedFd>,
    /// The detached mount of the disk image, when the writable layer is size-limited
    /// (see `mounts::open_disk`).
    pub disk: Option<OwnedFd>,
    /// The container's user namespace and the namespaces it owns (see `userns`).
    pub userns: Option<UsernsFds>,
    /// The cgroup files to write `0` into, opened by the shim (close-on-exec).
    pub cgroups: Vec<(PathBuf, File)>,
}

/// A set-up step of the child that failed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("failed to set the parent-death signal")]
    ParentDeathSignal(#[source] Errno),
    #[error("the shim went away before the start")]
    ShimGone,
    #[error("failed to add the container process to {path}")]
    JoinCgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to wait for the shim")]
    WaitForShim(#[source] Errno),
    #[error("failed to open namespace {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to join namespace {path}")]
    JoinNamespace {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to create namespace {flag:?}")]
    CreateNamespace {
        flag: CloneFlags,
        #[source]
        source: Errno,
    },
    #[error("failed to set up the root filesystem")]
    Rootfs(#[from] MountError),
    #[error("failed to set the filesystem ids to the container root's")]
    SetFsIds(#[source] Errno),
    #[error("the container's user and group 0 are not mapped")]
    UnmappedRoot,
    #[error("failed to join the user namespace")]
    JoinUserNamespace(#[source] Errno),
    #[error("failed to set the hostname")]
    SetHostname(#[source] Errno),
    #[error("failed to bring lo up")]
    LoopbackUp(#[source] Errno),
    #[error("failed to set sysctl {key}")]
    Sysctl {
        key: String,
        #[source]
        source: Errno,
    },
    #[error("failed to set rlimit {resource:?}")]
    SetRlimit {
        resource: nix::sys::resource::Resource,
        #[source]
        source: Errno,
    },
    #[error("failed to drop {cap} from the bounding set")]
    DropBounding {
        cap: caps::Capability,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("failed to set keepcaps")]
    KeepCaps(#[source] Errno),
    #[error("failed to set supplementary groups")]
    SetGroups(#[source] Errno),
    #[error("failed to set gid {0}")]
    SetGid(u32, #[source] Errno),
    #[error("failed to set uid {0}")]
    SetUid(u32, #[source] Errno),
    #[error("failed to change to working directory {path}")]
    Chdir {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("failed to set no_new_privs")]
    NoNewPrivs(#[source] Errno),
    #[error("failed to set the {set} capabilities")]
    SetCapabilities {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("failed to install the seccomp filter")]
    Seccomp(#[source] crate::seccomp::SeccompError),
    #[error("failed to set up stdio")]
    Stdio(#[source] Errno),
    #[error("failed to reset signal dispositions")]
    ResetSignals(#[source] Errno),
    #[error("failed to exec {path}")]
    Exec {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("executable {0:?} not found in $PATH")]
    NotFound(String),
}

impl ChildError {
    /// The start-report stage this error belongs to.
    pub fn stage(&self) -> &'static str {
        use ChildError::*;
        match self {
            ParentDeathSignal(_) | ShimGone | WaitForShim(_) => "init",
            JoinCgroup { .. } => "cgroup",
            OpenNamespace { .. } | JoinNamespace { .. } | CreateNamespace { .. } => "namespace",
            SetFsIds(_) | UnmappedRoot | JoinUserNamespace(_) => "userns",
            Rootfs(e) => e.stage(),
            SetHostname(_) => "hostname",
            LoopbackUp(_) | Sysctl { .. } => "network",
            SetRlimit { .. } => "rlimits",
            KeepCaps(_) | SetGroups(_) | SetGid(..) | SetUid(..) => "user",
            Chdir { .. } => "cwd",
            NoNewPrivs(_) => "no_new_privileges",
            Seccomp(_) => "seccomp",
            DropBounding { .. } | SetCapabilities { .. } => "capabilities",
            Stdio(_) | ResetSignals(_) => "stdio",
            Exec { .. } | NotFound(_) => "exec",
        }
    }
}

/// Moves the calling process into each group by writing `0` ("the writer") to its
/// file. The child is single-threaded (forked from the single-threaded shim), so on v1
/// moving this one thread through `tasks` moves the whole process, and a thread moving
/// itself skips the kernel's global threadgroup lock, whose write side waits for an
/// RCU grace period (~10 ms; kernel/cgroup `cgroup_procs_write_start`). The shim
/// writing the child's pid into `cgroup.procs` would pay that on every start.
fn join_cgroups(files: &[(PathBuf, File)]) -> Result<(), ChildError> {
    for (path, file) in files {
        (&*file)
            .write_all(b"0\n")
            .map_err(|source| ChildError::JoinCgroup {
                path: path.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Run the child: set everything up and exec, or report and exit 127.
pub(crate) fn run(plan: &Plan, fds: ChildFds) -> ! {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| setup_and_exec(plan, &fds)));
    let report = match result {
        Ok(Ok(never)) => match never {},
        Ok(Err(ChildError::ShimGone)) => sys::exit_now(127),
        Ok(Err(e)) => StartReport::Failed {
            stage: e.stage().to_string(),
            message: crate::error_chain(&e),
        },
        Err(_) => StartReport::Failed {
            stage: "init".into(),
            message: "container set-up panicked".into(),
        },
    };
    if let Ok(line) = serde_json::to_vec(&report) {
        let _ = File::from(fds.errors).write_all(&line);
    }
    sys::exit_now(127)
}

fn setup_and_exec(plan: &Plan, fds: &ChildFds) -> Result<Infallible, ChildError> {
    // If the shim dies (even by SIGKILL), the kernel kills the container: nobody else
    // would reap it, log it or record its exit, and the daemon would see "no shim" and
    // believe it dead while it still runs. As pid 1 of its namespace, its death takes
    // every other process of the container with it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(ChildError::ParentDeathSignal)?;
    // Into the cgroups first, while the shim reads its baseline (the two overlap).
    join_cgroups(&fds.cgroups)?;
    // The "go" byte. EOF means the shim died before the prctl above took effect (or
    // gave up on us): stop quietly.
    let mut go = [0u8; 1];
    let n = loop {
        match nix::unistd::read(&fds.sync, &mut go) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(ChildError::WaitForShim)?,
        }
    };
    if n == 0 {
        return Err(ChildError::ShimGone);
    }

    enter_namespaces(plan, fds.userns.as_ref())?;
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    let mut tty_owner = plan.process.uid;
    if let Some(u) = &plan.userns {
        let host_id = |map, id| crate::userns::map_id(map, id).ok_or(ChildError::UnmappedRoot);
        set_fs_ids(host_id(&u.uid_map, 0)?, host_id(&u.gid_map, 0)?)?;
        tty_owner = host_id(&u.uid_map, plan.process.uid).unwrap_or(tty_owner);
    }
    setup_sandbox(
        &LinuxSys,
        plan,
        fds.disk.as_ref().map(AsFd::as_fd),
        fds.userns.as_ref().map(|u| u.user.as_fd()),
    )?;
    // A terminal from the container's own devpts, made while still root (`console`).
    let terminal = crate::console::open_in_child(fds.console.as_ref(), tty_owner)
        .map_err(ChildError::Stdio)?;
    if let Some(u) = &fds.userns {
        // Last of the privileged steps: from here on, capabilities count only in the
        // container's user namespace (see `userns`).
        nix::sched::setns(&u.user, CloneFlags::CLONE_NEWUSER)
            .map_err(ChildError::JoinUserNamespace)?;
    }
    setup_process(plan)?;

    nix::unistd::dup2_stdin(&fds.stdin).map_err(ChildError::Stdio)?;
    nix::unistd::dup2_stdout(&fds.stdout).map_err(ChildError::Stdio)?;
    nix::unistd::dup2_stderr(&fds.stderr).map_err(ChildError::Stdio)?;
    if let Some(t) = &terminal {
        crate::console::use_as_stdio(t).map_err(ChildError::Stdio)?;
    }
    sys::cloexec_from_3().map_err(ChildError::Stdio)?;
    sys::reset_signals().map_err(ChildError::ResetSignals)?;

    // A change of uid/gid clears the parent-death signal (prctl(2)), so set it again
    // now that the credentials are final, then make sure the shim did not die in the
    // window: it holds the "go" pipe open until it has seen our exec, so a hang-up
    // there means it is gone.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(ChildError::ParentDeathSignal)?;
    let mut pfd = [PollFd::new(fds.sync.as_fd(), PollFlags::POLLIN)];
    if nix::poll::poll(&mut pfd, PollTimeout::ZERO).is_ok()
        && pfd[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    {
        return Err(ChildError::ShimGone);
    }

    exec(plan)
}

/// Make everything the set-up creates belong to the container's root: files,
/// directories, device nodes, and the tmpfs mounts (whose root takes the mounter's
/// fsuid). Changing the fsuid away from 0 clears the file capabilities from the
/// effective set (capabilities(7)); they are raised again from the permitted set, as
/// the set-up still needs them (mknod, reading the image).
fn set_fs_ids(uid: u32, gid: u32) -> Result<(), ChildError> {
    nix::unistd::setfsgid(Gid::from_raw(gid));
    nix::unistd::setfsuid(Uid::from_raw(uid));
    // setfsuid reports no error; the previous value returned by a second call does.
    if nix::unistd::setfsuid(Uid::from_raw(uid)) != Uid::from_raw(uid)
        || nix::unistd::setfsgid(Gid::from_raw(gid)) != Gid::from_raw(gid)
    {
        return Err(ChildError::SetFsIds(Errno::EPERM));
    }
    let permitted = caps::read(None, caps::CapSet::Permitted)
        .map_err(|_| ChildError::SetFsIds(Errno::EPERM))?;
    caps::set(None, caps::CapSet::Effective, &permitted)
        .map_err(|_| ChildError::SetFsIds(Errno::EPERM))
}

fn enter_namespaces(plan: &Plan, userns: Option<&UsernsFds>) -> Result<(), ChildError> {
    for ns in &plan.namespaces {
        // Made by the shim's helper, owned by the container's user namespace.
        let owned = userns.and_then(|u| u.owned.iter().find(|(f, _)| *f == ns.flag));
        if let (NsAction::Create, Some((flag, fd))) = (&ns.action, owned) {
            nix::sched::setns(fd, *flag).map_err(|source| ChildError::CreateNamespace {
                flag: *flag,
                source,
            })?;
            continue;
        }
        match &ns.action {
            NsAction::Create => {
                nix::sched::unshare(ns.flag).map_err(|source| ChildError::CreateNamespace {
                    flag: ns.flag,
                    source,
                })?
            }
            NsAction::Join(path) => {
                let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(|source| ChildError::OpenNamespace {
                        path: path.clone(),
                        source,
                    })?;
                nix::sched::setns(&fd, ns.flag).map_err(|source| ChildError::JoinNamespace {
                    path: path.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Mounts, hostname, `lo`, pivot_root: everything that goes through [`Sys`].
pub(crate) fn setup_sandbox(
    sys: &dyn Sys,
    plan: &Plan,
    disk: Option<std::os::fd::BorrowedFd<'_>>,
    userns: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(), ChildError> {
    mounts::setup_rootfs(sys, &plan.rootfs, disk, userns)?;
    if let Some(h) = &plan.hostname {
        sys.sethostname(h).map_err(ChildError::SetHostname)?;
    }
    if plan.loopback_up {
        sys.loopback_up().map_err(ChildError::LoopbackUp)?;
    }
    for (key, value) in &plan.sysctls {
        sys.write_sysctl(key, value)
            .map_err(|source| ChildError::Sysctl {
                key: key.clone(),
                source,
            })?;
    }
    mounts::pivot_root(sys, &plan.rootfs.rootfs)?;
    Ok(())
}

/// rlimits, bounding set, groups/gid/uid, cwd, no_new_privs, capability sets, umask,
/// seccomp: the credentials and confinement of the app. `boxd shim exec` calls it too,
/// so an exec'd process gets exactly the app's security settings.
///
/// The seccomp filter goes last, so that none of the set-up calls above have to be
/// allowed by it; after this only stdio, signal and exec calls follow, all in the
/// default profile. Without no_new_privs the kernel accepts a filter only from a
/// holder of CAP_SYS_ADMIN, so it is then installed first, before any capability is
/// dropped (as runc does), and the set-up calls run under it.
pub(crate) fn setup_process(plan: &Plan) -> Result<(), ChildError> {
    let p = &plan.process;
    let seccomp = p.seccomp.as_ref();
    if let Some(s) = seccomp.filter(|_| !p.no_new_privileges) {
        crate::seccomp::install_for(s, p.seccomp_bpf.as_deref()).map_err(ChildError::Seccomp)?;
    }
    for r in &p.rlimits {
        // Never ask for more than the current hard limit: raising it needs
        // CAP_SYS_RESOURCE, which some hosts withhold even from root.
        let (_, cur_hard) =
            nix::sys::resource::getrlimit(r.resource).map_err(|source| ChildError::SetRlimit {
                resource: r.resource,
                source,
            })?;
        let hard = r.hard.min(cur_hard);
        let soft = r.soft.min(hard);
        nix::sys::resource::setrlimit(r.resource, soft, hard).map_err(|source| {
            ChildError::SetRlimit {
                resource: r.resource,
                source,
            }
        })?;
    }

    if let Some(c) = &p.capabilities {
        // The bounding set can only shrink with CAP_SETPCAP, so it goes while we are
        // still root with every capability.
        for cap in caps::runtime::thread_all_supported() {
            if !c.bounding.contains(&cap) {
                caps::drop(None, caps::CapSet::Bounding, cap)
                    .map_err(|source| ChildError::DropBounding { cap, source })?;
            }
        }
        // Keep the permitted set across setuid to a non-root uid, so the sets below
        // can still be granted to a non-root app.
        nix::sys::prctl::set_keepcaps(true).map_err(ChildError::KeepCaps)?;
    }
    // A working dir missing from the image is created, as Docker and runc do: here,
    // after pivot_root (so it lands in the container) and while still root.
    if std::fs::symlink_metadata(&p.cwd).is_err() {
        std::fs::create_dir_all(&p.cwd).map_err(|e| ChildError::Chdir {
            path: p.cwd.clone(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    }
    let groups: Vec<Gid> = p
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(ChildError::SetGroups)?;
    nix::unistd::setgid(Gid::from_raw(p.gid)).map_err(|e| ChildError::SetGid(p.gid, e))?;
    nix::unistd::setuid(Uid::from_raw(p.uid)).map_err(|e| ChildError::SetUid(p.uid, e))?;
    if p.capabilities.is_some() {
        nix::sys::prctl::set_keepcaps(false).map_err(ChildError::KeepCaps)?;
    }

    nix::unistd::chdir(&p.cwd).map_err(|source| ChildError::Chdir {
        path: p.cwd.clone(),
        source,
    })?;
    if p.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(ChildError::NoNewPrivs)?;
    }
    if let Some(c) = &p.capabilities {
        // Order matters for capset's rules: inheritable while permitted is still full,
        // effective before permitted shrinks under it, then permitted; ambient caps
        // must be in both permitted and inheritable.
        let set = |name: &'static str, cset, value| {
            caps::set(None, cset, value)
                .map_err(|source| ChildError::SetCapabilities { set: name, source })
        };
        set("inheritable", caps::CapSet::Inheritable, &c.inheritable)?;
        set("effective", caps::CapSet::Effective, &c.effective)?;
        set("permitted", caps::CapSet::Permitted, &c.permitted)?;
        caps::clear(None, caps::CapSet::Ambient).map_err(|source| ChildError::SetCapabilities {
            set: "ambient",
            source,
        })?;
        for cap in &c.ambient {
            caps::raise(None, caps::CapSet::Ambient, *cap).map_err(|source| {
                ChildError::SetCapabilities {
                    set: "ambient",
                    source,
                }
            })?;
        }
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(p.umask));
    if let Some(s) = seccomp.filter(|_| p.no_new_privileges) {
        crate::seccomp::install_for(s, p.seccomp_bpf.as_deref()).map_err(ChildError::Seccomp)?;
    }
    Ok(())
}

/// execve each candidate in turn, as execvpe(3) does: a missing file moves on to the
/// next PATH entry, a permission error is remembered, anything else stops.
pub(crate) fn exec(plan: &Plan) -> Result<Infallible, ChildError> {
    let p = &plan.process;
    let mut denied: Option<(PathBuf, Errno)> = None;
    for candidate in &p.exec_candidates {
        let Ok(path) = std::ffi::CString::new(candidate.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        match nix::unistd::execve(&path, &p.args, &p.env) {
            Ok(never) => match never {},
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(e @ Errno::EACCES) => {
                denied.get_or_insert((candidate.clone(), e));
            }
            Err(source) => {
                return Err(ChildError::Exec {
                    path: candidate.clone(),
                    source,
                })
            }
        }
    }
    match denied {
        Some((path, source)) => Err(ChildError::Exec { path, source }),
        None if p.exec_candidates.len() == 1 => Err(ChildError::Exec {
            path: p.exec_candidates[0].clone(),
            source: Errno::ENOENT,
        }),
        None => Err(ChildError::NotFound(
            p.args[0].to_string_lossy().into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Plan;
    use crate::fake_sys::{Entry, FakeSys};
    use crate::mounts::RootfsPlan;
    use crate::protocol::{Overlay, ShimConfig};

    fn plan() -> Plan {
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
            pid_ns: None,
            namespaces: vec![],
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
            hostname: Some("box".into()),
            loopback_up: true,
            sysctls: Vec::new(),
            process: crate::config::ProcessPlan {
                args: vec![],
                env: vec![],
                exec_candidates: vec![],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                umask: 0o022,
                rlimits: vec![],
                no_new_privileges: false,
                capabilities: None,
                seccomp: None,
                seccomp_bpf: None,
            },
            userns: None,
        }
    }

    #[test]
    fn hostname_and_lo_come_before_pivot_root() {
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        setup_sandbox(&fs, &plan(), None, None).unwrap();
        let calls = fs.calls();
        let pos = |s: &str| calls.iter().position(|c| c == s).unwrap();
        assert!(pos("sethostname box") < pos("pivot_root . ."));
        assert!(pos("loopback_up") < pos("pivot_root . ."));
    }

    #[test]
    fn a_failed_mount_stops_the_set_up_with_its_stage() {
        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        fs.fail_on("mount overlay", Errno::EINVAL);
        let err = setup_sandbox(&fs, &plan(), None, None).unwrap_err();
        assert_eq!(err.stage(), "mount");
        assert!(!fs.calls().iter().any(|c| c.starts_with("pivot_root")));
        assert!(!fs.calls().iter().any(|c| c.starts_with("sethostname")));

        let fs = FakeSys::new();
        fs.add("/b/rootfs", Entry::Dir);
        fs.fail_on("pivot_root", Errno::EINVAL);
        let err = setup_sandbox(&fs, &plan(), None, None).unwrap_err();
        assert_eq!(err.stage(), "pivot_root");
        assert_eq!(
            crate::error_chain(&err),
            "failed to set up the root filesystem: failed to pivot_root into /b/rootfs: EINVAL: Invalid argument"
        );
    }
}
