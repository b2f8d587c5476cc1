//! Every kernel call of the shim that needs `unsafe`, and the [`Sys`] trait that the
//! sandbox set-up goes through.
//!
//! [`Sys`] covers the calls that build the container's filesystem view (mount, mkdir,
//! mknod, symlink, pivot_root, ...): [`mounts`](crate::mounts) and
//! [`child`](crate::child) are written against it so that unit tests can record the
//! order of the calls with a fake instead of needing root. [`LinuxSys`] is the real,
//! zero-sized implementation. The free functions below wrap the few calls with no safe
//! `nix` wrapper (fork, pidfd_open, pivot_root, close_range, the loopback ioctl, signal
//! dispositions, kill with a raw signal number, loop devices). Every unsafe block says why its
//! arguments are valid.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
    /// Writes `value` to the sysctl `key` (`net.ipv4.ip_unprivileged_port_start`) of
    /// the calling thread's network namespace.
    fn write_sysctl(&self, key: &str, value: &str) -> nix::Result<()>;
    /// move_mount(2) of a detached mount (from [`detached_disk_mount`]) onto `target`.
    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> nix::Result<()>;
    /// A detached clone of the mount at `path` (open_tree, OPEN_TREE_CLONE), idmapped
    /// through the user namespace `userns` (mount_setattr, MOUNT_ATTR_IDMAP, Linux 5.12);
    /// attach it with [`Sys::move_mount`].
    fn idmapped_clone(&self, path: &Path, userns: BorrowedFd<'_>) -> nix::Result<OwnedFd>;
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

    fn write_sysctl(&self, key: &str, value: &str) -> nix::Result<()> {
        // /proc/sys/net shows the opener's network namespace, whichever proc mount.
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(path, value).map_err(io_errno)
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> nix::Result<()> {
        let target = path_cstring(target)?;
        // SAFETY: `mount` is a live descriptor for the call, the empty string and
        // `target` are valid NUL-terminated strings that outlive it; the kernel only
        // reads them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mount.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        Errno::result(rc).map(drop)
    }

    fn idmapped_clone(&self, path: &Path, userns: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
        let path = path_cstring(path)?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call; the
        // flags are plain integers. The result is checked.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                path.as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
            )
        };
        let fd = i32::try_from(Errno::result(rc)?).map_err(|_| Errno::EBADF)?;
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        let tree = unsafe { OwnedFd::from_raw_fd(fd) };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: u64::try_from(userns.as_raw_fd()).map_err(|_| Errno::EBADF)?,
        };
        // SAFETY: `tree` is live, the empty path is a valid NUL-terminated string, and
        // `attr` is a properly laid out `struct mount_attr` (repr(C), as
        // <linux/mount.h>) whose size is passed with it; the kernel only reads both.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(rc)?;
        Ok(tree)
    }
}

/// `<linux/mount.h>`: open_tree(2) and mount_setattr(2) constants (the `libc` crate
/// has them for Android only).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of `<linux/mount.h>` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
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
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) }).map(drop)
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

/// `<linux/loop.h>`: ioctl numbers and flags (the `libc` crate does not have them).
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Tries at taking a free loop device before giving up: another process (udisks,
/// `losetup -f`, a second container) may take the one LOOP_CTL_GET_FREE named.
const LOOP_ATTEMPTS: usize = 16;

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (LOOP_CONFIGURE, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Make a detached ext4 mount (fsopen/fsconfig/fsmount, Linux 5.2) of the image
/// file `image`, through a loop device that detaches itself once unused; the
/// returned descriptor is the only reference to the mount until it is attached
/// somewhere with [`Sys::move_mount`].
///
/// This runs in the shim, outside the container's cgroup: opening a block device is
/// checked against the caller's device cgroup, which denies the container's
/// processes every block device. Attaching the finished mount needs no device access.
pub(crate) fn detached_disk_mount(image: &Path) -> nix::Result<OwnedFd> {
    let (device, loop_fd) = attach_loop(image)?;
    let fs = fsopen("ext4")?;
    fsconfig_string(&fs, "source", &device.to_string_lossy())?;
    fsconfig_create(&fs)?;
    // SAFETY: fsmount takes the fs-context descriptor and two flag words by value.
    let rc = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), libc::FSMOUNT_CLOEXEC, 0) };
    let fd = i32::try_from(Errno::result(rc)?).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let mount = unsafe { OwnedFd::from_raw_fd(fd) };
    // The superblock holds the device now; closing ours leaves it as the last user,
    // so the device detaches when the mount goes (or at once, on any error above).
    drop(loop_fd);
    Ok(mount)
}

fn fsopen(fstype: &str) -> nix::Result<OwnedFd> {
    let name = CString::new(fstype).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let rc = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    let fd = i32::try_from(Errno::result(rc)?).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fsconfig_string(fs: &OwnedFd, key: &str, value: &str) -> nix::Result<()> {
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    let value = CString::new(value).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `fs` is live; `key` and `value` are valid NUL-terminated strings that
    // outlive the call, which only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

fn fsconfig_create(fs: &OwnedFd) -> nix::Result<()> {
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value (null pointers, 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Attach `image` (read-write) to a free loop device with `LO_FLAGS_AUTOCLEAR`;
/// returns the device path and an open descriptor of it. The device stays attached
/// while the descriptor or anything else (a mount) has it open, and detaches itself
/// after the last close.
pub(crate) fn attach_loop(image: &Path) -> nix::Result<(PathBuf, OwnedFd)> {
    let backing = nix::fcntl::open(
        image,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let control = nix::fcntl::open(
        "/dev/loop-control",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut last = Errno::EBUSY;
    for _ in 0..LOOP_ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = Errno::result(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) })?;
        let device = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match nix::fcntl::open(&device, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            // devtmpfs makes the node as the device appears; give it another round.
            Err(Errno::ENOENT) => {
                last = Errno::ENOENT;
                continue;
            }
            Err(e) => return Err(e),
        };
        match configure_loop(&dev, &backing) {
            Ok(()) => return Ok((device, dev)),
            // Someone else bound it between GET_FREE and us: take another.
            Err(Errno::EBUSY) => last = Errno::EBUSY,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Bind `backing` to the loop device `dev`, auto-clearing: LOOP_CONFIGURE in one step,
/// or LOOP_SET_FD + LOOP_SET_STATUS64 on kernels before 5.8.
fn configure_loop(dev: &OwnedFd, backing: &OwnedFd) -> nix::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    // SAFETY: both are plain-old-data C structs; all-zero is a valid value.
    let mut config: LoopConfig = unsafe { std::mem::zeroed() };
    config.fd = fd;
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    // SAFETY: LOOP_CONFIGURE reads one `struct loop_config` through the pointer, which
    // is valid and properly laid out (repr(C), as <linux/loop.h>) for the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config) };
    match Errno::result(rc) {
        Ok(_) => return Ok(()),
        Err(Errno::EINVAL) | Err(Errno::ENOTTY) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: LOOP_SET_FD takes the backing descriptor by value.
    Errno::result(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) })?;
    // SAFETY: LOOP_SET_STATUS64 reads one `struct loop_info64` through the pointer,
    // valid and laid out as the kernel expects for the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, &config.info) };
    if let Err(e) = Errno::result(rc) {
        // Without AUTOCLEAR the device would stay bound after us: undo.
        // SAFETY: LOOP_CLR_FD takes no argument.
        let _ = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
        return Err(e);
    }
    Ok(())
}

// ---- bpf(2), for the cgroup v2 device program (see crate::bpf) ----

/// `enum bpf_cmd` values (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

/// Bytes passed as `union bpf_attr`: more than the kernel's union (144 bytes in 6.1),
/// because some commands write results into fields past the ones a caller fills in
/// (BPF_PROG_QUERY stores `revision` at offset 56 since 6.6, whatever size it was
/// given). The kernel reads `min(size, sizeof(attr))` and requires any excess to be zero.
const BPF_ATTR_SIZE: usize = 256;

/// The BPF_PROG_LOAD part of `union bpf_attr`.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _zero: [u8; BPF_ATTR_SIZE - 72],
}

/// The BPF_PROG_ATTACH / BPF_PROG_DETACH part of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _zero: [u8; BPF_ATTR_SIZE - 20],
}

/// The BPF_PROG_QUERY part of `union bpf_attr`.
#[repr(C)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _zero: [u8; BPF_ATTR_SIZE - 28],
}

/// The BPF_PROG_GET_FD_BY_ID part of `union bpf_attr`.
#[repr(C)]
struct ProgGetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
    _zero: [u8; BPF_ATTR_SIZE - 12],
}

const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == BPF_ATTR_SIZE);
const _: () = assert!(std::mem::size_of::<ProgAttachAttr>() == BPF_ATTR_SIZE);
const _: () = assert!(std::mem::size_of::<ProgQueryAttr>() == BPF_ATTR_SIZE);
const _: () = assert!(std::mem::size_of::<ProgGetFdAttr>() == BPF_ATTR_SIZE);

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // A valid descriptor is never negative.
    fd.as_raw_fd() as u32
}

/// bpf(BPF_PROG_LOAD): loads `insns` (each one `struct bpf_insn` in memory order) as a
/// program of `prog_type`. With `log`, the verifier writes its log there (level 1).
pub(crate) fn bpf_prog_load(
    prog_type: u32,
    insns: &[u64],
    license: &std::ffi::CStr,
    name: &str,
    log: Option<&mut [u8]>,
) -> nix::Result<OwnedFd> {
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| Errno::E2BIG)?;
    let mut prog_name = [0u8; 16];
    // 15 bytes and a NUL; the kernel accepts only [A-Za-z0-9_.].
    let n = name.len().min(15);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let (log_level, log_size, log_buf) = match log {
        Some(buf) if !buf.is_empty() => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.as_mut_ptr() as u64,
        ),
        _ => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
        _zero: [0; BPF_ATTR_SIZE - 72],
    };
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` prefix of
    // BPF_ATTR_SIZE bytes, zero past the load fields; `insns` (insn_cnt 8-byte
    // instructions), `license` (NUL-terminated) and the log buffer (log_size bytes,
    // writable, borrowed mutably for the call) all outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            BPF_ATTR_SIZE as libc::c_uint,
        )
    };
    let fd = Errno::result(rc)? as i32;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf_prog_attach_cmd(
    cmd: libc::c_long,
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    attach_flags: u32,
) -> nix::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: fd_u32(target),
        attach_bpf_fd: fd_u32(prog),
        attach_type,
        attach_flags,
        replace_bpf_fd: 0,
        _zero: [0; BPF_ATTR_SIZE - 20],
    };
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` prefix of
    // BPF_ATTR_SIZE bytes; both descriptors are borrowed, so open, for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            &attr as *const ProgAttachAttr,
            BPF_ATTR_SIZE as libc::c_uint,
        )
    };
    Errno::result(rc).map(drop)
}

/// bpf(BPF_PROG_ATTACH): attaches `prog` to the cgroup directory `target`.
pub(crate) fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    bpf_prog_attach_cmd(BPF_PROG_ATTACH, target, prog, attach_type, flags)
}

/// bpf(BPF_PROG_DETACH): detaches `prog` from the cgroup directory `target`.
pub(crate) fn bpf_prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> nix::Result<()> {
    bpf_prog_attach_cmd(BPF_PROG_DETACH, target, prog, attach_type, 0)
}

/// bpf(BPF_PROG_QUERY): the ids of the programs attached to `target` itself (not
/// inherited ones) for `attach_type`, at most `ids.len()` of them written to `ids`.
/// Returns how many are attached (which may exceed `ids.len()`).
pub(crate) fn bpf_prog_query(
    target: BorrowedFd<'_>,
    attach_type: u32,
    ids: &mut [u32],
) -> nix::Result<usize> {
    let mut attr = ProgQueryAttr {
        target_fd: fd_u32(target),
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).unwrap_or(u32::MAX),
        _zero: [0; BPF_ATTR_SIZE - 28],
    };
    // SAFETY: `attr` is a valid `union bpf_attr` of BPF_ATTR_SIZE writable bytes
    // (the kernel writes prog_cnt, attach_flags and later fields back into it); `ids`
    // has room for prog_cnt u32s and is borrowed mutably for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            BPF_ATTR_SIZE as libc::c_uint,
        )
    };
    Errno::result(rc)?;
    Ok(attr.prog_cnt as usize)
}

/// bpf(BPF_PROG_GET_FD_BY_ID): a descriptor of the loaded program `id`.
pub(crate) fn bpf_prog_get_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let attr = ProgGetFdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
        _zero: [0; BPF_ATTR_SIZE - 12],
    };
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` prefix of
    // BPF_ATTR_SIZE bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            &attr as *const ProgGetFdAttr,
            BPF_ATTR_SIZE as libc::c_uint,
        )
    };
    let fd = Errno::result(rc)? as i32;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)` with a classic BPF program given as its
/// raw `struct sock_filter` entries (8 bytes each, native endian; the caller checked the
/// length).
pub(crate) fn seccomp_set_filter(bpf: &[u8]) -> nix::Result<()> {
    let filters: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: u16::try_from(filters.len()).map_err(|_| Errno::EINVAL)?,
        filter: filters.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filters`, both alive for the whole call; the kernel
    // copies the program and keeps no pointer into our memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            std::ptr::from_ref(&prog),
        )
    };
    Errno::result(r).map(drop)
}
