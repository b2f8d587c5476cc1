//! cgroup v2 device programs: loading a BPF_PROG_TYPE_CGROUP_DEVICE program and making
//! it the one device filter of a cgroup directory.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files: the kernel asks the
//! BPF_CGROUP_DEVICE programs attached to a group (and to its ancestors) whenever a task
//! in it opens or makes a device node (Documentation/admin-guide/cgroup-v2.rst, "Device
//! controller"). The daemon generates the program (`boxd::cgroups::devices`); this module
//! only owns the bpf(2) calls, so that their `unsafe` stays in this crate.
//!
//! Invariants callers rely on:
//! - An attached program stays attached after its descriptor is closed, until it is
//!   detached or the group is removed; nothing here keeps state.
//! - [`attach_device_program`] leaves exactly one device program (the new one) attached
//!   to the group itself, so calling it again for a reused group never piles programs up
//!   (the kernel allows 64 per group), and the group is never without a filter in between:
//!   the new program is attached before the old ones are detached.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::sys;

/// `BPF_PROG_TYPE_CGROUP_DEVICE` (include/uapi/linux/bpf.h `enum bpf_prog_type`).
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (`enum bpf_attach_type`).
const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets several programs sit on one group and its descendants; every one must allow.
/// runc and crun attach theirs this way, so boxd's coexists with a systemd unit's.
const BPF_F_ALLOW_MULTI: u32 = 2;
/// The kernel's limit of programs per group and attach type (BPF_CGROUP_MAX_PROGS).
const MAX_PROGS: usize = 64;
/// Room for the verifier's level-1 log of a failed load.
const LOG_SIZE: usize = 64 * 1024;
/// The program uses no helpers, so any license string is accepted.
const LICENSE: &CStr = c"Apache-2.0";
/// Shown by `bpftool prog`.
const PROG_NAME: &str = "boxd_devices";

/// A bpf(2) step of installing a device program failed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The cgroup directory could not be opened.
    #[error("failed to open cgroup {path}")]
    OpenCgroup {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// The kernel refused the program; `log` is the verifier's log (may be empty, e.g.
    /// for EPERM without CAP_BPF).
    #[error("failed to load the device program (verifier log: {log:?})")]
    LoadProgram {
        log: String,
        #[source]
        source: Errno,
    },
    /// Listing the programs already attached to the group failed.
    #[error("failed to query the device programs of {path}")]
    QueryPrograms {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Attaching the new program failed.
    #[error("failed to attach the device program to {path}")]
    AttachProgram {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// Detaching a program attached earlier failed.
    #[error("failed to detach device program {id} from {path}")]
    DetachProgram {
        path: PathBuf,
        id: u32,
        #[source]
        source: Errno,
    },
}

fn open_cgroup(dir: &Path) -> Result<OwnedFd, BpfError> {
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| BpfError::OpenCgroup {
        path: dir.to_owned(),
        source,
    })
}

fn query(cgroup: &OwnedFd, dir: &Path) -> Result<Vec<u32>, BpfError> {
    let mut ids = vec![0u32; MAX_PROGS];
    let n = sys::bpf_prog_query(cgroup.as_fd(), BPF_CGROUP_DEVICE, &mut ids).map_err(|source| {
        BpfError::QueryPrograms {
            path: dir.to_owned(),
            source,
        }
    })?;
    ids.truncate(n.min(MAX_PROGS));
    Ok(ids)
}

/// Loads the program; on failure loads it again with a log buffer so the error says
/// why (loading with the log every time would cost the verifier's formatting for
/// nothing, and a log too small for a long trace fails the load with ENOSPC).
fn load(insns: &[u64]) -> Result<OwnedFd, BpfError> {
    let first =
        match sys::bpf_prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, insns, LICENSE, PROG_NAME, None) {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
    let mut log = vec![0u8; LOG_SIZE];
    let source = match sys::bpf_prog_load(
        BPF_PROG_TYPE_CGROUP_DEVICE,
        insns,
        LICENSE,
        PROG_NAME,
        Some(&mut log),
    ) {
        // Loaded on the second try (e.g. a transient EAGAIN): use it.
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOSPC) => first,
        Err(e) => e,
    };
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    Err(BpfError::LoadProgram {
        log: String::from_utf8_lossy(&log[..end]).trim_end().to_owned(),
        source,
    })
}

/// Loads `insns` (each one `struct bpf_insn`, 8 bytes in memory order, as a native
/// `u64`) as a cgroup device program and makes it the only one attached to the cgroup
/// v2 directory `cgroup_dir`: the new program is attached (BPF_F_ALLOW_MULTI), then
/// every device program attached there before is detached. Programs of ancestor groups
/// still apply; the kernel lets an access through only if all of them allow it.
pub fn attach_device_program(cgroup_dir: &Path, insns: &[u64]) -> Result<(), BpfError> {
    let cgroup = open_cgroup(cgroup_dir)?;
    let prog = load(insns)?;
    let before = query(&cgroup, cgroup_dir)?;
    sys::bpf_prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        BPF_CGROUP_DEVICE,
        BPF_F_ALLOW_MULTI,
    )
    .map_err(|source| BpfError::AttachProgram {
        path: cgroup_dir.to_owned(),
        source,
    })?;
    for id in before {
        let detach = sys::bpf_prog_get_fd_by_id(id)
            .and_then(|old| sys::bpf_prog_detach(cgroup.as_fd(), old.as_fd(), BPF_CGROUP_DEVICE));
        match detach {
            // Gone meanwhile (detached by someone else, or unloaded).
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(source) => {
                return Err(BpfError::DetachProgram {
                    path: cgroup_dir.to_owned(),
                    id,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Loads `insns` as [`attach_device_program`] would, without attaching it: whether the
/// kernel's verifier accepts the program (the error carries its log).
pub fn check_device_program(insns: &[u64]) -> Result<(), BpfError> {
    load(insns).map(drop)
}

/// The ids of the device programs attached to the cgroup v2 directory `cgroup_dir`
/// itself (not those of its ancestors).
pub fn device_program_ids(cgroup_dir: &Path) -> Result<Vec<u32>, BpfError> {
    let cgroup = open_cgroup(cgroup_dir)?;
    query(&cgroup, cgroup_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_is_not_a_cgroup_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // The kernel rejects a non-cgroup descriptor whether or not we may use bpf(2).
        assert!(device_program_ids(dir.path()).is_err());
        assert!(matches!(
            device_program_ids(&dir.path().join("missing")),
            Err(BpfError::OpenCgroup { .. })
        ));
    }

    #[test]
    fn root_a_load_failure_carries_the_verifier_log() {
        boxd_testutil::require_root!();
        // `r0 = 1` without `exit`: the verifier rejects falling off the end.
        let mov_r0_1: u64 = 0xb7 | (1u64 << 32);
        match load(&[mov_r0_1]) {
            Err(BpfError::LoadProgram { log, source }) => {
                assert_eq!(source, Errno::EINVAL);
                assert!(log.contains("last insn is not an exit or jmp"), "{log:?}");
            }
            other => panic!("expected a load failure, got {other:?}"),
        }
    }
}
