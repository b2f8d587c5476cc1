//! seccomp profiles: boxd's default (equivalent to Docker's default profile), custom
//! profiles in Docker's JSON format, and their translation into the OCI
//! `linux.seccomp` of `config.json`, which the shim compiles and installs last before
//! exec.
//!
//! The default is an allow-list: every syscall not named returns EPERM. What it leaves
//! out is what lets a process reach outside its box: kexec, module loading, reboot,
//! swapon, mount/umount/pivot_root, the keyctl family, bpf, perf_event_open,
//! open_by_handle_at (the "shocker" escape), userfaultfd, clock setting, and
//! unshare/setns/clone with namespace flags. Rules can depend on the container's
//! capabilities (`includes.caps` / `excludes.caps`), so `cap_add SYS_ADMIN` also
//! re-allows mount, as with Docker. Translation happens per container, against its
//! own capability set, the host's architecture and the host's kernel version.

use serde::Deserialize;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// EPERM, the default answer to a syscall not allowed.
const EPERM: u32 = 1;
/// ENOSYS: what clone3 returns without CAP_SYS_ADMIN, so that libc falls back to
/// clone(2), whose flags the filter can inspect (clone3 passes them in memory).
const ENOSYS: u32 = 38;
/// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC |
/// NEWUSER | NEWPID | NEWNET (0x7E020000). clone is allowed only with none of them.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// AF_VSOCK: a socket family that reaches the hypervisor, refused as Docker does.
const AF_VSOCK: u64 = 40;

/// Errors of parsing or translating a profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Not JSON of Docker's profile format.
    #[error("failed to parse the profile")]
    Parse(#[source] serde_json::Error),
    /// An action, architecture or operator name nobody knows.
    #[error("unknown {what} {name:?}")]
    Unknown {
        /// `action`, `architecture` or `operator`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Something boxd cannot do (a user-notify listener).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// An argument index past the six a syscall has.
    #[error("argument index {0} out of range (0-5)")]
    ArgIndex(usize),
    /// A rule with no syscall name.
    #[error("a rule names no syscall")]
    NoName,
    /// oci-spec refused a value.
    #[error("failed to build the OCI seccomp section")]
    Build(#[source] oci_spec::OciSpecError),
}

/// A profile in Docker's JSON format (moby `profiles/seccomp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action of syscalls no rule matches.
    pub default_action: String,
    /// errno of the default action when it is SCMP_ACT_ERRNO (EPERM when absent).
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter accepts (used when `arch_map` is empty).
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// Per native architecture, the sub-architectures it also accepts.
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Option<Vec<Rule>>,
    /// A seccomp user-notify socket (refused).
    #[serde(default)]
    pub listener_path: Option<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// `SCMP_ARCH_X86_64`, ...
    pub architecture: String,
    /// Also accepted on that architecture.
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Old single-name form.
    #[serde(default)]
    pub name: Option<String>,
    /// Syscall names.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, ...
    pub action: String,
    /// errno for SCMP_ACT_ERRNO.
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    /// The rule applies only if all of these hold.
    #[serde(default)]
    pub includes: Option<Filter>,
    /// The rule does not apply if any of these holds.
    #[serde(default)]
    pub excludes: Option<Filter>,
}

/// An argument condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// 0..=5.
    pub index: usize,
    /// The value compared with.
    pub value: u64,
    /// The second value (`SCMP_CMP_MASKED_EQ` compares `arg & value == value_two`).
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, ...
    pub op: String,
}

/// `includes` / `excludes` of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Go architecture names (`amd64`, `arm64`, `x86`, ...).
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// Capabilities (`CAP_SYS_ADMIN`).
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// A kernel version (`4.8`).
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// Parse a profile in Docker's JSON format.
pub fn parse_profile(json: &str) -> Result<Profile, SeccompError> {
    let p: Profile = serde_json::from_str(json).map_err(SeccompError::Parse)?;
    if p.listener_path.as_deref().is_some_and(|l| !l.is_empty()) {
        return Err(SeccompError::Unsupported("a seccomp listener"));
    }
    Ok(p)
}

/// The syscalls every container may make, whatever its capabilities.
const ALLOWED: &str = "
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32
setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs
statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
";

/// Syscalls allowed only with a capability: (capability, names).
const BY_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd \
         setdomainname sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Syscalls allowed on one architecture family only: (Go arch names, names).
const BY_ARCH: &[(&[&str], &str)] = &[
    (&["amd64", "x32"], "arch_prctl"),
    (&["amd64", "x32", "x86"], "modify_ldt"),
    (
        &["arm", "arm64"],
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    (&["ppc64le"], "sync_file_range2 swapcontext"),
    (
        &["s390", "s390x"],
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ),
    (&["riscv64"], "riscv_flush_icache"),
];

/// personality(2) values that change nothing dangerous: PER_LINUX, PER_LINUX32,
/// UNAME26, PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn names(list: &str) -> Option<Vec<String>> {
    Some(list.split_whitespace().map(String::from).collect())
}

fn strings(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| (*s).to_owned()).collect())
}

fn allow(list: &str) -> Rule {
    Rule {
        names: names(list),
        action: "SCMP_ACT_ALLOW".into(),
        ..Rule::default()
    }
}

fn arg(index: usize, value: u64, value_two: u64, op: &str) -> Option<Vec<Arg>> {
    Some(vec![Arg {
        index,
        value,
        value_two,
        op: op.into(),
    }])
}

/// boxd's default profile: the same decisions as Docker's default profile.
pub fn default_profile() -> Profile {
    let mut rules = vec![allow(ALLOWED)];
    rules.push(Rule {
        includes: Some(Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        }),
        // Before 4.8 a traced process could skip its seccomp filter.
        ..allow("process_vm_readv process_vm_writev ptrace")
    });
    rules.push(Rule {
        args: arg(0, AF_VSOCK, 0, "SCMP_CMP_NE"),
        ..allow("socket")
    });
    for p in PERSONALITIES {
        rules.push(Rule {
            args: arg(0, *p, 0, "SCMP_CMP_EQ"),
            ..allow("personality")
        });
    }
    for (arches, list) in BY_ARCH {
        rules.push(Rule {
            includes: Some(Filter {
                arches: strings(arches),
                ..Filter::default()
            }),
            ..allow(list)
        });
    }
    for (cap, list) in BY_CAPABILITY {
        rules.push(Rule {
            includes: Some(Filter {
                caps: strings(&[cap]),
                ..Filter::default()
            }),
            ..allow(list)
        });
    }
    let no_sys_admin = Filter {
        caps: strings(&["CAP_SYS_ADMIN"]),
        ..Filter::default()
    };
    // clone without namespace flags (s390 swaps the first two arguments).
    rules.push(Rule {
        args: arg(0, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"),
        excludes: Some(Filter {
            arches: strings(&["s390", "s390x"]),
            ..no_sys_admin.clone()
        }),
        ..allow("clone")
    });
    rules.push(Rule {
        args: arg(1, CLONE_NAMESPACE_FLAGS, 0, "SCMP_CMP_MASKED_EQ"),
        includes: Some(Filter {
            arches: strings(&["s390", "s390x"]),
            ..Filter::default()
        }),
        excludes: Some(no_sys_admin.clone()),
        ..allow("clone")
    });
    rules.push(Rule {
        names: names("clone3"),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        excludes: Some(no_sys_admin),
        ..Rule::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        arch_map: Some(vec![
            ArchMap {
                architecture: "SCMP_ARCH_X86_64".into(),
                sub_architectures: strings(&["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_AARCH64".into(),
                sub_architectures: strings(&["SCMP_ARCH_ARM"]),
            },
            ArchMap {
                architecture: "SCMP_ARCH_RISCV64".into(),
                sub_architectures: None,
            },
        ]),
        syscalls: Some(rules),
        ..Profile::default()
    }
}

/// The host as a profile's conditions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Go architecture name (`amd64`, `arm64`, ...).
    pub arch: String,
    /// libseccomp architecture name (`SCMP_ARCH_X86_64`, ...).
    pub scmp_arch: String,
    /// Kernel (major, minor).
    pub kernel: (u32, u32),
}

impl Host {
    /// This machine.
    pub fn current() -> Host {
        let (arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            other => (other, "SCMP_ARCH_NATIVE"),
        };
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Host {
            arch: arch.to_owned(),
            scmp_arch: scmp_arch.to_owned(),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn parse_enum<T: serde::de::DeserializeOwned>(
    what: &'static str,
    name: &str,
) -> Result<T, SeccompError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        SeccompError::Unknown {
            what,
            name: name.to_owned(),
        }
    })
}

fn action(name: &str) -> Result<LinuxSeccompAction, SeccompError> {
    let a: LinuxSeccompAction = parse_enum("action", name)?;
    if a == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY"));
    }
    Ok(a)
}

/// Whether a rule's `includes` / `excludes` let it apply to this container.
fn applies(rule: &Rule, caps: &[String], host: &Host) -> bool {
    let has_cap = |c: &String| caps.iter().any(|have| have.eq_ignore_ascii_case(c));
    let kernel_at_least = |v: &String| parse_kernel(v).is_some_and(|need| host.kernel >= need);
    if let Some(inc) = &rule.includes {
        if let Some(arches) = &inc.arches {
            if !arches.is_empty() && !arches.contains(&host.arch) {
                return false;
            }
        }
        if let Some(cs) = &inc.caps {
            if !cs.iter().all(has_cap) {
                return false;
            }
        }
        if let Some(k) = &inc.min_kernel {
            if !kernel_at_least(k) {
                return false;
            }
        }
    }
    if let Some(exc) = &rule.excludes {
        if exc.arches.as_ref().is_some_and(|a| a.contains(&host.arch)) {
            return false;
        }
        if exc.caps.as_ref().is_some_and(|cs| cs.iter().any(has_cap)) {
            return false;
        }
        if exc.min_kernel.as_ref().is_some_and(kernel_at_least) {
            return false;
        }
    }
    true
}

/// Translate `profile` for a container with capabilities `caps` on this host.
pub fn translate(profile: &Profile, caps: &[String]) -> Result<LinuxSeccomp, SeccompError> {
    translate_for(profile, caps, &Host::current())
}

/// [`translate`] for a given host (tests).
pub fn translate_for(
    profile: &Profile,
    caps: &[String],
    host: &Host,
) -> Result<LinuxSeccomp, SeccompError> {
    let default_action = action(&profile.default_action)?;
    let mut arches: Vec<String> = Vec::new();
    match &profile.arch_map {
        Some(map) if !map.is_empty() => {
            if let Some(m) = map.iter().find(|m| m.architecture == host.scmp_arch) {
                arches.push(m.architecture.clone());
                arches.extend(m.sub_architectures.iter().flatten().cloned());
            }
        }
        _ => arches.extend(profile.architectures.iter().flatten().cloned()),
    }
    let architectures = arches
        .iter()
        .map(|a| parse_enum::<Arch>("architecture", a))
        .collect::<Result<Vec<_>, _>>()?;

    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for rule in profile.syscalls.iter().flatten() {
        let mut names: Vec<String> = rule.names.clone().unwrap_or_default();
        names.extend(rule.name.clone());
        names.retain(|n| !n.is_empty());
        if names.is_empty() {
            return Err(SeccompError::NoName);
        }
        // Checked even when the rule does not apply here: a typo is a typo.
        let act = action(&rule.action)?;
        let mut args = Vec::new();
        for a in rule.args.iter().flatten() {
            if a.index > 5 {
                return Err(SeccompError::ArgIndex(a.index));
            }
            let op: LinuxSeccompOperator = parse_enum("operator", &a.op)?;
            let mut b = LinuxSeccompArgBuilder::default()
                .index(a.index)
                .value(a.value)
                .op(op);
            if a.value_two != 0 {
                b = b.value_two(a.value_two);
            }
            args.push(b.build().map_err(SeccompError::Build)?);
        }
        if !applies(rule, caps, host) {
            continue;
        }
        let mut b = LinuxSyscallBuilder::default().names(names).action(act);
        if act == LinuxSeccompAction::ScmpActErrno {
            b = b.errno_ret(rule.errno_ret.unwrap_or(EPERM));
        }
        if !args.is_empty() {
            b = b.args(args);
        }
        syscalls.push(b.build().map_err(SeccompError::Build)?);
    }
    let mut b = LinuxSeccompBuilder::default()
        .default_action(default_action)
        .architectures(architectures)
        .syscalls(syscalls);
    if default_action == LinuxSeccompAction::ScmpActErrno {
        b = b.default_errno_ret(profile.default_errno_ret.unwrap_or(EPERM));
    }
    b.build().map_err(SeccompError::Build)
}

/// Compiled seccomp programs, by profile: libseccomp takes about 10 ms to compile
/// Docker's profile, and most containers share one of a few profiles (the default
/// against a few capability sets), so each is compiled once per daemon run and the
/// shim only loads it. A profile that fails to compile is not kept: the shim then
/// compiles it itself and reports the failure at its `seccomp` stage, as before.
#[derive(Debug, Default)]
pub struct CompiledFilters {
    by_profile: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::sync::Arc<Vec<u8>>>>,
}

impl CompiledFilters {
    /// More distinct profiles than this (custom profiles, each its own) start over.
    const MAX: usize = 64;

    /// The program for `section`, compiled now or earlier.
    pub fn get(&self, section: &LinuxSeccomp) -> Option<std::sync::Arc<Vec<u8>>> {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(serde_json::to_vec(section).ok()?).into();
        if let Some(bpf) = self.lock().get(&key) {
            return Some(bpf.clone());
        }
        let bpf = match boxd_shim::seccomp::compile(section) {
            Ok(bpf) => std::sync::Arc::new(bpf),
            Err(e) => {
                tracing::debug!(error = %crate::error_chain(&e), "seccomp profile not precompiled");
                return None;
            }
        };
        let mut cache = self.lock();
        if cache.len() >= Self::MAX {
            cache.clear();
        }
        cache.insert(key, bpf.clone());
        Some(bpf)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], std::sync::Arc<Vec<u8>>>>
    {
        self.by_profile.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            arch: "amd64".into(),
            scmp_arch: "SCMP_ARCH_X86_64".into(),
            kernel: (6, 1),
        }
    }

    fn default_caps() -> Vec<String> {
        boxd_types::SecurityConfig::default().capabilities
    }

    /// The rules naming `name`, as (action, errno, args).
    fn rules_for(s: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn default_profile_allows_ordinary_calls_and_denies_escapes() {
        let s = translate_for(&default_profile(), &default_caps(), &host()).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(EPERM));
        assert_eq!(
            s.architectures().as_ref().unwrap(),
            &vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        for allowed in ["read", "openat", "chown", "arch_prctl", "ptrace", "chroot"] {
            assert!(!rules_for(&s, allowed).is_empty(), "{allowed} not allowed");
        }
        for denied in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "finit_module",
            "reboot",
            "swapon",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "open_by_handle_at",
            "userfaultfd",
            "clock_settime",
            "settimeofday",
            "s390_runtime_instr",
        ] {
            assert!(rules_for(&s, denied).is_empty(), "{denied} allowed");
        }
        // clone only without namespace flags; clone3 answers ENOSYS so libc falls back.
        let clone = rules_for(&s, "clone");
        assert_eq!(clone.len(), 1);
        let a = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(
            (a.index(), a.value(), a.op()),
            (
                0,
                CLONE_NAMESPACE_FLAGS,
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
        let clone3 = rules_for(&s, "clone3");
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn capabilities_reopen_their_syscalls() {
        let mut caps = default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        caps.push("CAP_SYS_MODULE".into());
        let s = translate_for(&default_profile(), &caps, &host()).unwrap();
        for n in ["mount", "unshare", "setns", "init_module"] {
            assert!(!rules_for(&s, n).is_empty(), "{n}");
        }
        // With SYS_ADMIN, clone is allowed unconditionally and clone3 is not refused.
        assert!(rules_for(&s, "clone")
            .iter()
            .any(|r| r.args().is_none() && r.action() == LinuxSeccompAction::ScmpActAllow));
        assert!(rules_for(&s, "clone3")
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));

        // Dropping CHROOT takes chroot(2) out too.
        let caps: Vec<String> = default_caps()
            .into_iter()
            .filter(|c| c != "CAP_SYS_CHROOT")
            .collect();
        let s = translate_for(&default_profile(), &caps, &host()).unwrap();
        assert!(rules_for(&s, "chroot").is_empty());
    }

    #[test]
    fn old_kernels_and_other_arches() {
        let old = Host {
            kernel: (4, 4),
            ..host()
        };
        let s = translate_for(&default_profile(), &default_caps(), &old).unwrap();
        assert!(rules_for(&s, "ptrace").is_empty());
        let arm = Host {
            arch: "arm64".into(),
            scmp_arch: "SCMP_ARCH_AARCH64".into(),
            kernel: (6, 1),
        };
        let s = translate_for(&default_profile(), &default_caps(), &arm).unwrap();
        assert!(rules_for(&s, "arch_prctl").is_empty());
        assert!(!rules_for(&s, "cacheflush").is_empty());
        assert_eq!(
            s.architectures().as_ref().unwrap(),
            &vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );
    }

    #[test]
    fn custom_docker_json_profile() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"name": "chmod", "action": "SCMP_ACT_ERRNO"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
                 "comment": "ignored"}
            ]
        }"#;
        let p = parse_profile(json).unwrap();
        let s = translate_for(&p, &default_caps(), &host()).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(s.default_errno_ret(), None);
        assert_eq!(rules_for(&s, "mkdirat")[0].errno_ret(), Some(13));
        assert_eq!(rules_for(&s, "chmod")[0].errno_ret(), Some(EPERM));
        let a = rules_for(&s, "personality")[0].args().as_ref().unwrap()[0];
        assert_eq!((a.index(), a.value()), (0, 8));

        // The result is what config.json carries.
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains(r#""defaultAction":"SCMP_ACT_ALLOW""#),
            "{text}"
        );
    }

    #[test]
    fn bad_profiles_are_refused() {
        for bad in [
            "{",
            r#"{"syscalls": []}"#,
            r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
            r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x"}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_SORTA"}]}]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#,
        ] {
            let r = parse_profile(bad).and_then(|p| translate_for(&p, &[], &host()));
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
        assert_eq!(parse_kernel("x"), None);
    }
}
