//! Every kernel call of the shim that needs `unsafe`, and the [`Sys`] trait that the
//! sandbox set-up goes through.
//!
//! [`Sys`] covers the calls that build the container's filesystem view (mount, mkdir,
//! mknod, symlink, pivot_root, ...): [`mounts`](crate::mounts) and
//! [`child`](crate::child) are written against it so that unit tests can record the
//! order of the calls with a fake instead of needing root. [`LinuxSys`] is the real,
//! zero-sized implementation. The free functions below wrap the few calls with no safe
//! `nix` wrapper (fork, pidfd_open, pivot_root, close_range, the loopback ioctl, signal
//! dispositions, kill with a raw signal number). Every unsafe block says why its
//! arguments are valid.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{SigHandler, Signal};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{ForkResult, Pid};

/// What `lstat` found at a path (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A regular file, socket, fifo or block device.
    Other,
}

/// The kernel calls that set up a container's mounts, devices, hostname and root.
pub(crate) trait Sys {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    /// umount2(2).
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    /// lstat(2); `None` when nothing is there.
    fn lstat(&self, path: &Path) -> nix::Result<Option<FileKind>>;
    /// Whether `path` is a directory, following symlinks (for host-side bind sources).
    fn is_dir(&self, path: &Path) -> bool;
    /// readlink(2).
    fn readlink(&self, path: &Path) -> nix::Result<PathBuf>;
    /// mkdir(2) (one level).
    fn mkdir(&self, path: &Path, mode: u32) -> nix::Result<()>;
    /// Create an empty regular file; fails if anything is there.
    fn create_file(&self, path: &Path, mode: u32) -> nix::Result<()>;
    /// mknod(2) of a character device, then chmod to exactly `mode` (no umask).
    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()>;
    /// symlink(2): a link at `link` pointing to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()>;
    /// unlink(2).
    fn unlink(&self, path: &Path) -> nix::Result<()>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    /// sethostname(2).
    fn sethostname(&self, name: &str) -> nix::Result<()>;
    /// Set `IFF_UP` on `lo` in the current network namespace.
    fn loopback_up(&self) -> nix::Result<()>;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LinuxSys;

fn io_errno(err: std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

impl Sys for LinuxSys {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn lstat(&self, path: &Path) -> nix::Result<Option<FileKind>> {
        match nix::sys::stat::lstat(path) {
            Ok(st) => {
                let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                Ok(Some(if fmt == SFlag::S_IFDIR {
                    FileKind::Dir
                } else if fmt == SFlag::S_IFLNK {
                    FileKind::Symlink
                } else if fmt == SFlag::S_IFCHR {
                    FileKind::CharDevice
                } else {
                    FileKind::Other
                }))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn readlink(&self, path: &Path) -> nix::Result<PathBuf> {
        nix::fcntl::readlink(path).map(PathBuf::from)
    }

    fn mkdir(&self, path: &Path, mode: u32) -> nix::Result<()> {
        nix::unistd::mkdir(path, Mode::from_bits_truncate(mode))
    }

    fn create_file(&self, path: &Path, mode: u32) -> nix::Result<()> {
        // O_EXCL|O_NOFOLLOW: never open (and so never truncate) something already there.
        let fd = nix::fcntl::open(
            path,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )?;
        drop(fd);
        Ok(())
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()> {
        nix::sys::stat::mknod(
            path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::makedev(major, minor),
        )?;
        // mknod applies the umask; the OCI default devices must be exactly 0666.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_errno)
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        std::os::unix::fs::symlink(target, link).map_err(io_errno)
    }

    fn unlink(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::unlink(path)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        pivot_root(new_root, put_old)
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }

    fn loopback_up(&self) -> nix::Result<()> {
        loopback_up()
    }
}

fn path_cstring(path: &Path) -> nix::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// pivot_root(2); glibc has no wrapper, so this is a raw syscall.
pub(crate) fn pivot_root(new_root: &Path, put_old: &Path) -> nix::Result<()> {
    let new_root = path_cstring(new_root)?;
    let put_old = path_cstring(put_old)?;
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call;
    // the kernel only reads them.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// Bring `lo` up with the classic SIOCGIFFLAGS / SIOCSIFFLAGS pair on a throw-away
/// datagram socket (netlink would be more code for one flag).
pub(crate) fn loopback_up() -> nix::Result<()> {
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let raw = Errno::result(raw)?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    use std::os::fd::AsRawFd;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid, initialised ifreq naming "lo"; SIOCGIFFLAGS writes
    // only `ifr_flags` inside it.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the kernel just filled `ifru_flags`, the active member of the union.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}

/// fork(2).
///
/// Callers must be single-threaded (checked by [`crate::single_threaded`] before the
/// first fork): then the child may keep using the allocator and std, since no other
/// thread can have held a lock at the time of the fork.
pub(crate) fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the shim never starts a thread (crate docs; checked at start-up), so the
    // child inherits no lock held by another thread and may run ordinary Rust code.
    unsafe { nix::unistd::fork() }
}

/// pidfd_open(2): a descriptor that polls readable when `pid` exits.
pub(crate) fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value; the result is checked.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(rc)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Close every descriptor from 3 up. Only for the very start of the process, before
/// any Rust object owns a descriptor: whatever the caller leaked to us must not live
/// on in a long-lived shim.
pub(crate) fn close_inherited_fds() -> nix::Result<()> {
    // SAFETY: called first thing in `run`, when no `OwnedFd`/`File` of this process
    // refers to a descriptor >= 3, so nothing is closed behind an owner's back.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    Errno::result(rc).map(drop)
}

/// Mark every descriptor from 3 up close-on-exec (close_range, Linux 5.11), so the app
/// inherits nothing but 0, 1 and 2, while the error pipe stays usable until execve.
pub(crate) fn cloexec_from_3() -> nix::Result<()> {
    // SAFETY: CLOSE_RANGE_CLOEXEC only sets a flag; no descriptor is closed, so no
    // owner is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(rc).map(drop)
}

/// Ignore `sig` (SIG_IGN).
pub(crate) fn ignore_signal(sig: Signal) -> nix::Result<()> {
    // SAFETY: SIG_IGN installs no handler code, so no signal-safety rule applies.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) }.map(drop)
}

/// Reset every catchable signal to SIG_DFL and unblock all signals: ignored
/// dispositions and the mask survive execve, and the app must start clean (Rust's
/// runtime ignores SIGPIPE, and the shim ignores more).
pub(crate) fn reset_signals() -> nix::Result<()> {
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler code.
        unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) }?;
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
}

/// kill(2) with a raw signal number (real-time signals have no `nix::Signal`).
pub(crate) fn kill(pid: Pid, signal: i32) -> nix::Result<()> {
    // SAFETY: kill takes plain integers; the result is checked.
    Errno::result(unsafe { libc::kill(pid.as_raw(), signal) }).map(drop)
}

/// _exit(2): leave the forked child at once, without running the shim's exit-time
/// code (atexit handlers, stdio flushes of buffers that belong to the shim).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an int and never returns; it touches no Rust-owned state.
    unsafe { libc::_exit(code) }
}

/// Unlock a pty master (TIOCSPTLCK 0) so its peer can be opened.
pub(crate) fn pty_unlock(master: &impl std::os::fd::AsRawFd) -> nix::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is valid for the call.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })
        .map(drop)
}

/// Open the peer (slave) of a pty master by descriptor (TIOCGPTPEER, Linux 4.13), so
/// no `/dev/pts/N` path is looked up in a filesystem the container controls.
pub(crate) fn pty_peer(master: &impl std::os::fd::AsRawFd) -> nix::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new descriptor.
    let fd = Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) })?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Set a terminal's window size (TIOCSWINSZ); the foreground process group gets
/// SIGWINCH.
pub(crate) fn set_winsize(
    tty: &impl std::os::fd::AsRawFd,
    rows: u16,
    cols: u16,
) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, valid for the call.
    Errno::result(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// Make `tty` the controlling terminal of the calling session leader (TIOCSCTTY).
pub(crate) fn set_controlling_tty(tty: &impl std::os::fd::AsRawFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal from another session).
    Errno::result(unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// Take ownership of a descriptor that recvmsg(2) installed (SCM_RIGHTS).
pub(crate) fn own_received_fd(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: the kernel put this descriptor in our table for this message only;
    // nothing else refers to it, so exactly one owner is created here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
