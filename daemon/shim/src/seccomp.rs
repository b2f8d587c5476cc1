//! Compiling the OCI `linux.seccomp` section into a BPF filter and installing it.
//!
//! libseccomp does the compiling, as it does for runc, crun and youki: it knows every
//! architecture's syscall numbers by name (a profile names syscalls, the kernel sees
//! numbers), handles the x86/x32 sub-architectures on x86_64 and 64-bit argument
//! comparisons on 32-bit ABIs, and skips names the running kernel's tables lack. A
//! pure-Rust compiler (seccompiler) was weighed: it has one match action per filter
//! and no public name table, so Docker's profile (ALLOW rules, ERRNO(ENOSYS) for
//! clone3, EPERM by default) would need several stacked filters and a hand-kept
//! syscall table per architecture. The price is a link-time dependency on the system
//! libseccomp (libseccomp-dev to build, libseccomp2 at run time, present on every
//! distribution that ships Docker or Podman).
//!
//! [`check`] runs before the fork (a bad profile fails the start at `config`);
//! [`install`] runs in the container's process as the very last step before execve
//! (or, without no_new_privs, while it still holds CAP_SYS_ADMIN: the kernel only lets
//! a process without no_new_privs install a filter with that capability).
//!
//! Compiling Docker's profile takes libseccomp about 10 ms, on the path of every start.
//! So the daemon compiles each distinct profile once ([`compile`], kept by the profile's
//! hash) and hands the program to the shim in a file next to `config.json`; the
//! container's process then only loads it ([`install_compiled`]).

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

/// Why a seccomp filter cannot be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("unsupported seccomp action {0}")]
    Action(String),
    #[error("unsupported seccomp architecture {0}")]
    Arch(String),
    #[error("seccomp argument index {0} out of range")]
    ArgIndex(usize),
    #[error("failed to create the seccomp filter")]
    Create(#[source] libseccomp::error::SeccompError),
    #[error("failed to add architecture {arch} to the seccomp filter")]
    AddArch {
        arch: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("failed to add the seccomp rule for {name}")]
    AddRule {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("failed to set a seccomp filter attribute")]
    Attribute(#[source] libseccomp::error::SeccompError),
    #[error("failed to load the seccomp filter")]
    Load(#[source] libseccomp::error::SeccompError),
    #[error("failed to export the compiled seccomp filter")]
    Export(#[source] std::io::Error),
    #[error("the compiled seccomp filter is malformed ({0} bytes)")]
    Malformed(usize),
    #[error("failed to load the compiled seccomp filter")]
    LoadCompiled(#[source] nix::Error),
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            // The runtime spec's default errno is EPERM.
            let e = errno.unwrap_or(libc::EPERM as u32);
            ScmpAction::Errno(i32::try_from(e.min(u16::MAX as u32)).unwrap_or(libc::EPERM))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(u16::try_from(errno.unwrap_or(0)).unwrap_or(0))
        }
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Action("SCMP_ACT_NOTIFY".into()))
        }
    })
}

fn arch(a: oci_spec::runtime::Arch) -> Result<ScmpArch, SeccompError> {
    // oci-spec and libseccomp spell the names the same way (`SCMP_ARCH_X86_64`).
    let name = serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    name.parse::<ScmpArch>()
        .map_err(|_| SeccompError::Arch(name.clone()))
}

fn compare(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> Result<ScmpArgCompare, SeccompError> {
    let arg = u32::try_from(index)
        .ok()
        .filter(|i| *i <= 5)
        .ok_or(SeccompError::ArgIndex(index))?;
    let (op, datum) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // runtime-spec: `value` is the mask, `valueTwo` what the masked argument equals.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    };
    Ok(ScmpArgCompare::new(arg, op, datum))
}

/// Check what can be checked without building the filter: actions, architectures,
/// argument indexes.
pub fn check(s: &LinuxSeccomp) -> Result<(), SeccompError> {
    action(s.default_action(), s.default_errno_ret())?;
    for a in s.architectures().iter().flatten() {
        arch(*a)?;
    }
    for rule in s.syscalls().iter().flatten() {
        action(rule.action(), rule.errno_ret())?;
        for a in rule.args().iter().flatten() {
            compare(a.index(), a.op(), a.value(), a.value_two())?;
        }
    }
    Ok(())
}

/// Build the filter for `s`.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(SeccompError::Create)?;
    // no_new_privs is the container's own setting (process.noNewPrivileges), applied
    // by the caller; libseccomp would otherwise set it on load.
    ctx.set_ctl_nnp(false).map_err(SeccompError::Attribute)?;
    // A binary tree of syscall numbers instead of one long chain of comparisons: the
    // kernel runs the program for every syscall number when it is loaded (to build
    // its allow cache) and for every uncached syscall after, so a ~1000-instruction
    // chain costs ~1 ms at every container start. Same verdicts either way; a
    // libseccomp older than 2.5 has no optimizer and keeps the chain.
    let _ = ctx.set_ctl_optimize(2);
    for a in s.architectures().iter().flatten() {
        let arch = arch(*a)?;
        if arch == ScmpArch::Native || arch == ScmpArch::native() {
            continue; // present from the start
        }
        ctx.add_arch(arch).map_err(|source| SeccompError::AddArch {
            arch: format!("{a:?}"),
            source,
        })?;
    }
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            // libseccomp refuses a rule that repeats the default action; it would
            // change nothing anyway.
            continue;
        }
        let conditions = rule
            .args()
            .iter()
            .flatten()
            .map(|a| compare(a.index(), a.op(), a.value(), a.value_two()))
            .collect::<Result<Vec<_>, _>>()?;
        for name in rule.names() {
            // A name this libseccomp (or architecture) does not know cannot be
            // called here either; skip it, as runc does.
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if conditions.is_empty() {
                ctx.add_rule(act, syscall)
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions)
            };
            added.map_err(|source| SeccompError::AddRule {
                name: name.clone(),
                source,
            })?;
        }
    }
    Ok(ctx)
}

/// Build and load the filter into the calling thread (the container's process, which
/// has only one).
pub fn install(s: &LinuxSeccomp) -> Result<(), SeccompError> {
    build(s)?.load().map_err(SeccompError::Load)
}

/// The classic BPF program for `s` (native-endian `struct sock_filter` entries), as
/// libseccomp would load it.
pub fn compile(s: &LinuxSeccomp) -> Result<Vec<u8>, SeccompError> {
    use std::io::{Read, Seek};
    let ctx = build(s)?;
    let fd = nix::sys::memfd::memfd_create(c"boxd-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| SeccompError::Export(e.into()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| SeccompError::Export(std::io::Error::other(e)))?;
    let mut bpf = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bpf))
        .map_err(SeccompError::Export)?;
    Ok(bpf)
}

/// Loads a program made by [`compile`] into the calling thread, with the same flags as
/// libseccomp's load (none: no thread sync, no logging).
pub fn install_compiled(bpf: &[u8]) -> Result<(), SeccompError> {
    const ENTRY: usize = 8;
    if bpf.is_empty() || bpf.len() % ENTRY != 0 || bpf.len() / ENTRY > usize::from(u16::MAX) {
        return Err(SeccompError::Malformed(bpf.len()));
    }
    crate::sys::seccomp_set_filter(bpf).map_err(SeccompError::LoadCompiled)
}

/// Installs the container's filter: the precompiled program when the daemon gave one,
/// else compiled here.
pub fn install_for(s: &LinuxSeccomp, compiled: Option<&[u8]>) -> Result<(), SeccompError> {
    match compiled {
        Some(bpf) => install_compiled(bpf),
        None => install(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        Arch, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder,
    };

    fn profile() -> LinuxSeccomp {
        let clone = LinuxSyscallBuilder::default()
            .names(vec!["clone".to_string()])
            .action(LinuxSeccompAction::ScmpActAllow)
            .args(vec![LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(0x7E02_0000u64)
                .value_two(0u64)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let allow = LinuxSyscallBuilder::default()
            .names(vec![
                "read".to_string(),
                "write".to_string(),
                "no_such_syscall".to_string(),
            ])
            .action(LinuxSeccompAction::ScmpActAllow)
            .build()
            .unwrap();
        let enosys = LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(38u32)
            .build()
            .unwrap();
        LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .default_errno_ret(1u32)
            .architectures(vec![
                Arch::ScmpArchX86_64,
                Arch::ScmpArchX86,
                Arch::ScmpArchX32,
            ])
            .syscalls(vec![allow, clone, enosys])
            .build()
            .unwrap()
    }

    #[test]
    fn compile_gives_whole_sock_filter_entries_and_refuses_garbage() {
        let bpf = compile(&profile()).unwrap();
        assert!(!bpf.is_empty() && bpf.len() % 8 == 0, "{} bytes", bpf.len());
        // The last instruction of a seccomp program is a return (BPF_RET = 0x06).
        let last = &bpf[bpf.len() - 8..];
        assert_eq!(u16::from_ne_bytes([last[0], last[1]]) & 0x07, 0x06);
        assert!(matches!(
            install_compiled(&[]),
            Err(SeccompError::Malformed(0))
        ));
        assert!(matches!(
            install_compiled(&[0; 12]),
            Err(SeccompError::Malformed(12))
        ));
    }

    #[test]
    fn builds_a_filter_without_loading_it() {
        let p = profile();
        check(&p).unwrap();
        let ctx = build(&p).unwrap();
        let mut out = tempfile::tempfile().unwrap();
        ctx.export_bpf(&out).unwrap();
        use std::io::{Read, Seek};
        out.rewind().unwrap();
        let mut bpf = Vec::new();
        out.read_to_end(&mut bpf).unwrap();
        // sock_filter entries are 8 bytes; arch checks, three rules and an argument
        // comparison are well over 10.
        assert!(bpf.len() > 10 * 8, "{} bytes", bpf.len());
        assert!(!ctx.get_ctl_nnp().unwrap());
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let mut p = profile();
        p.set_default_action(LinuxSeccompAction::ScmpActNotify);
        assert!(matches!(check(&p), Err(SeccompError::Action(_))));
        let mut p = profile();
        let mut rules = p.syscalls().clone().unwrap();
        let bad = LinuxSeccompArgBuilder::default()
            .index(6usize)
            .value(0u64)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .unwrap();
        rules[1].set_args(Some(vec![bad]));
        p.set_syscalls(Some(rules));
        assert!(matches!(check(&p), Err(SeccompError::ArgIndex(6))));
    }
}
