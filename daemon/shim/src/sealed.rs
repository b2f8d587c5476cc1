//! The shim runs only from a sealed, in-memory copy of its binary (CVE-2019-5736).
//!
//! The class of attack: a process inside a container opens `/proc/<pid>/exe` of a
//! runtime process that is visible in its pid namespace (runc's `runc init`, or a
//! process joining the container for exec) and writes through it, replacing the host's
//! runtime binary, which root on the host runs next. In boxd the container's first
//! process and every exec'd process are forked from the shim, so until their execve
//! their `exe` is the shim's.
//!
//! The choice: before doing anything, `boxd shim` checks that its own executable is a
//! memfd with write, grow, shrink and seal seals; if not, it copies itself into one,
//! seals it and re-executes from it (fexecve). Every process the shim forks then has
//! that memfd as `exe`; a write through `/proc/<pid>/exe` fails with EPERM whatever the
//! writer's privileges, and the host's `boxd` file is never reachable from a container.
//! The daemon makes one sealed copy when it starts and launches every shim from it
//! (`/proc/self/fd/N`), so the copy is made once, not per container, and all shims
//! share its pages. A read-only bind mount of the binary was the alternative (runc
//! 1.2 does a variant with overlayfs); it needs a mount that outlives the daemon and
//! can be undone by host root by accident, while a sealed memfd cannot be unsealed.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag};
use nix::sys::memfd::MFdFlags;

/// The seals that make a memfd immutable for good.
pub const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// Why the shim could not move onto a sealed copy of itself.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("failed to open /proc/self/exe")]
    OpenExe(#[source] std::io::Error),
    #[error("failed to create a memfd")]
    Memfd(#[source] Errno),
    #[error("failed to copy the binary into the memfd")]
    Copy(#[source] std::io::Error),
    #[error("failed to seal the memfd")]
    Seal(#[source] Errno),
    #[error("an argument contains a NUL byte")]
    Nul,
    #[error("failed to re-execute from the sealed copy")]
    Exec(#[source] Errno),
}

/// Whether `fd` is a file carrying every one of [`SEALS`].
pub fn is_sealed(fd: impl AsFd) -> bool {
    nix::fcntl::fcntl(fd.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SEALS))
}

/// A sealed memfd holding a copy of `source`.
pub fn sealed_copy(source: &mut File) -> Result<OwnedFd, SealError> {
    let fd = nix::sys::memfd::memfd_create(
        c"boxd-shim",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(SealError::Memfd)?;
    let mut out = File::from(fd);
    std::io::copy(source, &mut out).map_err(SealError::Copy)?;
    let fd = OwnedFd::from(out);
    nix::fcntl::fcntl(&fd, FcntlArg::F_ADD_SEALS(SEALS)).map_err(SealError::Seal)?;
    Ok(fd)
}

/// Return if this process already runs from a sealed copy; otherwise make one and
/// fexecve it with the same arguments and environment (never returns then).
pub fn ensure_sealed_exe() -> Result<(), SealError> {
    let mut exe = File::open("/proc/self/exe").map_err(SealError::OpenExe)?;
    if is_sealed(&exe) {
        return Ok(());
    }
    let fd = sealed_copy(&mut exe)?;
    let cstrings = |items: Vec<OsString>| {
        items
            .into_iter()
            .map(|s| CString::new(s.as_bytes()).map_err(|_| SealError::Nul))
            .collect::<Result<Vec<_>, _>>()
    };
    let args = cstrings(std::env::args_os().collect())?;
    let env = cstrings(
        std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect(),
    )?;
    // The memfd is close-on-exec: the kernel holds the file as the new image's exe,
    // and no descriptor to it is left for anyone to inherit.
    match nix::unistd::fexecve(&fd, &args, &env) {
        Ok(never) => match never {},
        Err(e) => Err(SealError::Exec(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn sealed_copy_is_identical_and_immutable() {
        let mut src = tempfile::tempfile().unwrap();
        src.write_all(b"\x7fELF pretend binary").unwrap();
        src.rewind().unwrap();
        assert!(!is_sealed(&src));
        let fd = sealed_copy(&mut src).unwrap();
        assert!(is_sealed(&fd));
        let mut f = File::from(fd);
        let mut text = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"\x7fELF pretend binary");
        // Neither writing nor growing nor shrinking is possible any more.
        let err = f.write_all(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(f.set_len(1).is_err());
        assert!(f.set_len(1 << 20).is_err());
    }
}
