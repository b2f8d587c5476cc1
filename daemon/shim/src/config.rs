//! Reading and checking the shim's inputs - `shim.json` ([`ShimConfig`]) and the
//! bundle's OCI `config.json` - and turning them into a [`Plan`].
//!
//! Everything that can be wrong with the inputs is found here, before anything forks,
//! so that a bad config is reported as `StartReport::Failed { stage: "config" }` and
//! the child that runs between fork and exec has no parsing left to fail on.

use std::collections::HashSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

use crate::mounts::{MountError, MountPlan, RootfsPlan};
use crate::protocol::ShimConfig;
use crate::userns::{IdMap, UsernsPlan};

/// Why the inputs cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("sysctl {0:?} is not a network setting of a namespace the container owns")]
    Sysctl(String),
    #[error("failed to read {path}")]
    ReadShimConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the compiled seccomp filter {path}")]
    ReadSeccompBpf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to parse {path}")]
    ParseShimConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to load {path}")]
    LoadSpec {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error("config.json has no {0}")]
    Missing(&'static str),
    #[error("namespace {0} is not supported")]
    UnsupportedNamespace(String),
    #[error("namespace {0} is listed twice")]
    DuplicateNamespace(String),
    #[error("a hostname needs a uts namespace")]
    HostnameWithoutUts,
    #[error("process.terminal is not supported")]
    Terminal,
    #[error("process.args is empty")]
    EmptyArgs,
    #[error("process.cwd {0} is not absolute")]
    RelativeCwd(PathBuf),
    #[error("{what} contains a NUL byte")]
    NulByte { what: &'static str },
    #[error("overlay path {0} contains one of `,:\\` or a newline")]
    OverlayPath(PathBuf),
    #[error("the overlay has no lower dir")]
    NoLowerDir,
    #[error("unknown capability {0}")]
    Capability(String),
    #[error("invalid mount in config.json")]
    Mount(#[from] MountError),
    #[error("invalid linux.seccomp in config.json")]
    Seccomp(#[source] crate::seccomp::SeccompError),
    #[error("invalid user namespace maps in config.json")]
    UserMaps(#[source] crate::userns::MapError),
    #[error("joining an existing user namespace is not supported")]
    JoinUserNamespace,
    #[error("mount options {0:?} name an id the user namespace does not map")]
    UnmappedMountId(String),
}

/// What to do for one namespace type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsAction {
    /// Make a new one.
    Create,
    /// setns(2) into the one at this path.
    Join(PathBuf),
}

/// One namespace of the container (besides the pid namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// `CLONE_NEW*` flag of the type.
    pub flag: CloneFlags,
    /// Create or join.
    pub action: NsAction,
}

/// One rlimit to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Which limit.
    pub resource: Resource,
    /// Soft limit asked for.
    pub soft: u64,
    /// Hard limit asked for.
    pub hard: u64,
}

/// The capability sets, already mapped to kernel capabilities. A set missing from the
/// OCI config is empty (as with runc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapsPlan {
    pub bounding: caps::CapsHashSet,
    pub effective: caps::CapsHashSet,
    pub inheritable: caps::CapsHashSet,
    pub permitted: caps::CapsHashSet,
    pub ambient: caps::CapsHashSet,
}

/// The app and the credentials it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    /// argv.
    pub args: Vec<CString>,
    /// envp (`KEY=value`).
    pub env: Vec<CString>,
    /// Paths to try execve on, in order (see [`exec_candidates`]).
    pub exec_candidates: Vec<PathBuf>,
    /// Working directory inside the container.
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// umask for the app (0o022 unless the config says otherwise).
    pub umask: u32,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    /// `None`: leave the capabilities as they are.
    pub capabilities: Option<CapsPlan>,
    /// `linux.seccomp` (checked); `None`: no filter.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// The same filter compiled by the daemon, if it gave one.
    pub seccomp_bpf: Option<Vec<u8>>,
}

/// Everything the shim will do, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The daemon's side of the config.
    pub shim: ShimConfig,
    /// The pid namespace (`None`: the host's); handled by the shim before it forks,
    /// since CLONE_NEWPID only applies to children.
    pub pid_ns: Option<NsAction>,
    /// The other namespaces, in the order to enter them (cgroup last).
    pub namespaces: Vec<Namespace>,
    /// Mounts and the root.
    pub rootfs: RootfsPlan,
    /// `hostname`.
    pub hostname: Option<String>,
    /// Whether `lo` must be brought up (a network namespace of the container's own,
    /// made by the shim or by the daemon).
    pub loopback_up: bool,
    /// Network sysctls of the container's namespace (`linux.sysctl`), as `(key,
    /// value)`; only `net.*` keys, which belong to the network namespace.
    pub sysctls: Vec<(String, String)>,
    /// The app.
    pub process: ProcessPlan,
    /// A new user namespace with these maps (see [`crate::userns`]); `None`: the host's.
    pub userns: Option<UsernsPlan>,
}

/// Read `shim.json` and the bundle's `config.json`, and check them.
pub fn load(shim_config: &Path) -> Result<Plan, ConfigError> {
    let text =
        std::fs::read_to_string(shim_config).map_err(|source| ConfigError::ReadShimConfig {
            path: shim_config.to_path_buf(),
            source,
        })?;
    let shim: ShimConfig =
        serde_json::from_str(&text).map_err(|source| ConfigError::ParseShimConfig {
            path: shim_config.to_path_buf(),
            source,
        })?;
    let spec_path = shim.bundle.join("config.json");
    let spec = Spec::load(&spec_path).map_err(|source| ConfigError::LoadSpec {
        path: spec_path.clone(),
        source,
    })?;
    plan(shim, &spec)
}

/// The default PATH when the config sets none (the one runc and Docker images use).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where to look for `arg0`, like execvpe(3): as is if it contains a `/`, else in each
/// directory of PATH from the app's environment (an empty entry is the cwd).
pub fn exec_candidates(arg0: &str, env: &[String]) -> Vec<PathBuf> {
    if arg0.contains('/') {
        return vec![PathBuf::from(arg0)];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| {
            if dir.is_empty() {
                PathBuf::from(arg0)
            } else {
                Path::new(dir).join(arg0)
            }
        })
        .collect()
}

/// Where the idmapped clone of lower layer `i` is attached, inside the container's
/// own mount namespace only (see [`crate::userns`]).
fn idmap_staging(shim: &ShimConfig, i: usize) -> PathBuf {
    shim.state_dir.join("idmapped").join(i.to_string())
}

fn overlay_data(shim: &ShimConfig, idmapped: bool) -> Result<String, ConfigError> {
    let o = &shim.rootfs;
    if o.lower.is_empty() {
        return Err(ConfigError::NoLowerDir);
    }
    // overlayfs splits its options on `,` and lowerdir on `:`; a path holding either
    // (or an escape) would be misread, so refuse it rather than escape it.
    let check = |p: &PathBuf| {
        let s = p.to_string_lossy();
        if s.contains([',', ':', '\\', '\n']) || p.to_str().is_none() {
            Err(ConfigError::OverlayPath(p.clone()))
        } else {
            Ok(s.into_owned())
        }
    };
    let mut lower = o.lower.iter().map(check).collect::<Result<Vec<_>, _>>()?;
    if idmapped {
        // The layers are stacked from their idmapped clones.
        lower = (0..o.lower.len())
            .map(|i| check(&idmap_staging(shim, i)))
            .collect::<Result<Vec<_>, _>>()?;
    }
    // index=off: with the index feature on (a kernel or module default on some hosts),
    // overlayfs records the lower layers' file handles in the upper/work dirs and then
    // refuses a later mount of that upper dir over a differently-laid-out lower stack,
    // and refuses two mounts sharing a lower dir; boxd shares layers between
    // containers. Docker and containerd mount with index=off for the same reason.
    Ok(format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        lower.join(":"),
        check(&o.upper)?,
        check(&o.work)?
    ))
}

fn namespace_name(t: LinuxNamespaceType) -> String {
    t.to_string()
}

fn capability_set(
    set: &Option<oci_spec::runtime::Capabilities>,
) -> Result<caps::CapsHashSet, ConfigError> {
    set.iter()
        .flatten()
        .map(|c| {
            // oci-spec prints capabilities without the prefix (`NET_BIND_SERVICE`).
            let name = format!("CAP_{c}");
            name.parse::<caps::Capability>()
                .map_err(|_| ConfigError::Capability(name))
        })
        .collect()
}

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

fn cstrings(list: &[String], what: &'static str) -> Result<Vec<CString>, ConfigError> {
    list.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| ConfigError::NulByte { what }))
        .collect()
}

/// Check `spec` against what this runtime supports and build the [`Plan`].
pub fn plan(shim: ShimConfig, spec: &Spec) -> Result<Plan, ConfigError> {
    let root = spec.root().as_ref().ok_or(ConfigError::Missing("root"))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or(ConfigError::Missing("process"))?;
    let linux = spec.linux().as_ref();

    let mut pid_ns = None;
    let mut has_userns = false;
    let mut namespaces = Vec::new();
    let mut seen = HashSet::new();
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let name = namespace_name(ns.typ());
        if !seen.insert(ns.typ() as i32) {
            return Err(ConfigError::DuplicateNamespace(name));
        }
        let action = match ns.path() {
            Some(p) => NsAction::Join(p.clone()),
            None => NsAction::Create,
        };
        let flag = match ns.typ() {
            LinuxNamespaceType::Pid => {
                pid_ns = Some(action);
                continue;
            }
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            // Made by the shim with its maps (`userns`), never joined: its owner
            // would not be known to be a container's.
            LinuxNamespaceType::User => {
                if action != NsAction::Create {
                    return Err(ConfigError::JoinUserNamespace);
                }
                has_userns = true;
                continue;
            }
            // Not asked for by the daemon.
            LinuxNamespaceType::Time => return Err(ConfigError::UnsupportedNamespace(name)),
        };
        namespaces.push(Namespace { flag, action });
    }
    if !namespaces
        .iter()
        .any(|n| n.flag == CloneFlags::CLONE_NEWNS && n.action == NsAction::Create)
    {
        // Every mount below would land in the host's (or a shared) mount namespace.
        return Err(ConfigError::Missing("new mount namespace"));
    }
    // The cgroup namespace is entered last, after the child joined its cgroups, so
    // that its root is the container's own cgroup.
    namespaces.sort_by_key(|n| n.flag == CloneFlags::CLONE_NEWCGROUP);
    let has = |flag| namespaces.iter().any(|n: &Namespace| n.flag == flag);
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    if hostname.is_some() && !has(CloneFlags::CLONE_NEWUTS) {
        return Err(ConfigError::HostnameWithoutUts);
    }
    let loopback_up = has(CloneFlags::CLONE_NEWNET);
    let mut sysctls = Vec::new();
    for (key, value) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        // Anything else would change the host: only the network namespace's own
        // settings, and only when the container has one.
        if !key.starts_with("net.") || key.contains('/') || key.contains("..") {
            return Err(ConfigError::Sysctl(key.clone()));
        }
        if !loopback_up {
            return Err(ConfigError::Sysctl(key.clone()));
        }
        sysctls.push((key.clone(), value.clone()));
    }

    let userns = if has_userns {
        let maps = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>, what| {
            let map: Vec<IdMap> = m
                .into_iter()
                .flatten()
                .map(|l| IdMap {
                    container_id: l.container_id(),
                    host_id: l.host_id(),
                    size: l.size(),
                })
                .collect();
            crate::userns::check_map(&map, what).map_err(ConfigError::UserMaps)?;
            Ok::<_, ConfigError>(map)
        };
        Some(UsernsPlan {
            uid_map: maps(linux.and_then(|l| l.uid_mappings().as_ref()), "uid map")?,
            gid_map: maps(linux.and_then(|l| l.gid_mappings().as_ref()), "gid map")?,
        })
    } else {
        None
    };

    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        shim.bundle.join(root.path())
    };
    let mut mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| MountPlan::from_oci(m, &shim.bundle))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(u) = &userns {
        for m in mounts.iter_mut().filter(|m| !m.options.data.is_empty()) {
            m.options.data = crate::userns::translate_mount_data(&m.options.data, u)
                .ok_or_else(|| ConfigError::UnmappedMountId(m.options.data.clone()))?;
        }
    }
    let idmapped_lowers = match &userns {
        Some(_) => shim
            .rootfs
            .lower
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), idmap_staging(&shim, i)))
            .collect(),
        None => Vec::new(),
    };
    let paths = |l: Option<&Vec<String>>| l.into_iter().flatten().map(PathBuf::from).collect();
    let rootfs = RootfsPlan {
        rootfs,
        overlay_data: overlay_data(&shim, userns.is_some())?,
        idmapped_lowers,
        mounts,
        readonly: root.readonly().unwrap_or(false),
        masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref())),
        readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
        disk: crate::mounts::DiskPlan::from_overlay(&shim.rootfs)?,
    };

    if process.terminal().unwrap_or(false) {
        return Err(ConfigError::Terminal);
    }
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args.first().ok_or(ConfigError::EmptyArgs)?;
    let env = process.env().clone().unwrap_or_default();
    if !process.cwd().is_absolute() {
        return Err(ConfigError::RelativeCwd(process.cwd().clone()));
    }
    let capabilities = match process.capabilities() {
        None => None,
        Some(c) => Some(CapsPlan {
            bounding: capability_set(c.bounding())?,
            effective: capability_set(c.effective())?,
            inheritable: capability_set(c.inheritable())?,
            permitted: capability_set(c.permitted())?,
            ambient: capability_set(c.ambient())?,
        }),
    };
    let seccomp = linux.and_then(|l| l.seccomp().clone());
    if let Some(s) = &seccomp {
        crate::seccomp::check(s).map_err(ConfigError::Seccomp)?;
    }
    let seccomp_bpf = match shim.seccomp_bpf.as_ref().filter(|_| seccomp.is_some()) {
        Some(path) => Some(
            std::fs::read(path).map_err(|source| ConfigError::ReadSeccompBpf {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let user = process.user();
    let process = ProcessPlan {
        exec_candidates: exec_candidates(arg0, &env),
        args: cstrings(&args, "process.args")?,
        env: cstrings(&env, "process.env")?,
        cwd: process.cwd().clone(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        rlimits: process
            .rlimits()
            .iter()
            .flatten()
            .map(|r| Rlimit {
                resource: resource(r.typ()),
                soft: r.soft(),
                hard: r.hard(),
            })
            .collect(),
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        capabilities,
        seccomp,
        seccomp_bpf,
    };
    Ok(Plan {
        shim,
        pid_ns,
        namespaces,
        rootfs,
        hostname,
        loopback_up,
        sysctls,
        process,
        userns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Overlay;
    use oci_spec::runtime::{
        Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, ProcessBuilder,
        RootBuilder, SpecBuilder,
    };

    fn shim() -> ShimConfig {
        ShimConfig {
            id: "c1".into(),
            bundle: "/b".into(),
            state_dir: "/s".into(),
            log_path: "/s/log".into(),
            rootfs: Overlay {
                lower: vec!["/l1".into(), "/l2".into()],
                upper: "/u".into(),
                work: "/w".into(),
                disk: None,
            },
            cgroup_join: vec![],
            oom_counter: None,
            log_rotation: None,
            seccomp_bpf: None,
            protocol: crate::protocol::PROTOCOL_VERSION,
        }
    }

    fn spec(ns: &[LinuxNamespaceType], hostname: Option<&str>) -> Spec {
        let namespaces = ns
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
            .collect::<Vec<_>>();
        let mut b = SpecBuilder::default()
            .root(RootBuilder::default().path("rootfs").build().unwrap())
            .process(
                ProcessBuilder::default()
                    .args(vec!["sh".to_string(), "-c".to_string(), "true".to_string()])
                    .env(vec!["PATH=/bin:/usr/bin".to_string()])
                    .cwd("/")
                    .capabilities(
                        LinuxCapabilitiesBuilder::default()
                            .bounding(HashSet::from([Capability::NetBindService]))
                            .effective(HashSet::new())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .linux(
                LinuxBuilder::default()
                    .namespaces(namespaces)
                    .build()
                    .unwrap(),
            );
        if let Some(h) = hostname {
            b = b.hostname(h);
        }
        b.build().unwrap()
    }

    use LinuxNamespaceType as T;
    const ALL: [T; 6] = [T::Pid, T::Network, T::Cgroup, T::Mount, T::Uts, T::Ipc];

    #[test]
    fn plan_orders_namespaces_and_builds_overlay_data() {
        let p = plan(shim(), &spec(&ALL, Some("box"))).unwrap();
        assert_eq!(p.pid_ns, Some(NsAction::Create));
        let flags: Vec<_> = p.namespaces.iter().map(|n| n.flag).collect();
        assert_eq!(flags.last(), Some(&CloneFlags::CLONE_NEWCGROUP));
        assert_eq!(flags.len(), 5);
        assert!(p.loopback_up);
        assert_eq!(p.rootfs.rootfs, PathBuf::from("/b/rootfs"));
        assert_eq!(
            p.rootfs.overlay_data,
            "lowerdir=/l1:/l2,upperdir=/u,workdir=/w,index=off"
        );
        assert_eq!(
            p.process.exec_candidates,
            vec![PathBuf::from("/bin/sh"), PathBuf::from("/usr/bin/sh")]
        );
        let caps = p.process.capabilities.unwrap();
        assert_eq!(
            caps.bounding,
            HashSet::from([caps::Capability::CAP_NET_BIND_SERVICE])
        );
        assert!(caps.effective.is_empty());
        assert_eq!(p.process.umask, 0o022);
    }

    #[test]
    fn plan_refuses_what_it_cannot_do() {
        // A user namespace needs its maps.
        let e = plan(shim(), &spec(&[T::Pid, T::Mount, T::User, T::Uts], None)).unwrap_err();
        assert!(matches!(e, ConfigError::UserMaps(_)), "{e:?}");
        let e = plan(shim(), &spec(&[T::Pid, T::Mount, T::Time], None)).unwrap_err();
        assert!(matches!(e, ConfigError::UnsupportedNamespace(n) if n == "time"));
        let e = plan(shim(), &spec(&[T::Pid, T::Mount], Some("h"))).unwrap_err();
        assert!(matches!(e, ConfigError::HostnameWithoutUts));
        let e = plan(shim(), &spec(&[T::Pid], None)).unwrap_err();
        assert!(matches!(e, ConfigError::Missing(_)));
        let e = plan(shim(), &spec(&[T::Mount, T::Mount], None)).unwrap_err();
        assert!(matches!(e, ConfigError::DuplicateNamespace(_)));
        let mut s = shim();
        s.rootfs.lower.push("/a:b".into());
        let e = plan(s, &spec(&ALL, None)).unwrap_err();
        assert!(matches!(e, ConfigError::OverlayPath(_)));
    }

    #[test]
    fn a_user_namespace_stacks_idmapped_layers_and_maps_mount_ids() {
        use oci_spec::runtime::LinuxIdMappingBuilder;
        let map = |host: u32| {
            vec![LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(65536u32)
                .build()
                .unwrap()]
        };
        let mut s = spec(&[T::Pid, T::Mount, T::User, T::Uts], None);
        let mut linux = s.linux().clone().unwrap();
        linux.set_uid_mappings(Some(map(100_000)));
        linux.set_gid_mappings(Some(map(200_000)));
        s.set_linux(Some(linux));
        s.set_mounts(Some(vec![oci_spec::runtime::MountBuilder::default()
            .destination("/dev/pts")
            .typ("devpts")
            .source("devpts")
            .options(vec!["newinstance".to_string(), "gid=5".to_string()])
            .build()
            .unwrap()]));
        let p = plan(shim(), &s).unwrap();
        let u = p.userns.as_ref().unwrap();
        assert_eq!(crate::userns::map_id(&u.uid_map, 0), Some(100_000));
        assert_eq!(crate::userns::map_id(&u.gid_map, 5), Some(200_005));
        assert_eq!(p.rootfs.mounts[0].options.data, "newinstance,gid=200005");
        assert_eq!(
            p.rootfs.idmapped_lowers,
            vec![
                (PathBuf::from("/l1"), PathBuf::from("/s/idmapped/0")),
                (PathBuf::from("/l2"), PathBuf::from("/s/idmapped/1")),
            ]
        );
        assert_eq!(
            p.rootfs.overlay_data,
            "lowerdir=/s/idmapped/0:/s/idmapped/1,upperdir=/u,workdir=/w,index=off"
        );
        // The user namespace is not one of the namespaces the child enters itself.
        assert!(!p
            .namespaces
            .iter()
            .any(|n| n.flag == CloneFlags::CLONE_NEWUSER));
    }

    #[test]
    fn exec_candidates_follow_execvpe() {
        let env = |p: &str| vec![format!("PATH={p}"), "HOME=/".to_string()];
        assert_eq!(
            exec_candidates("/bin/true", &env("/x")),
            vec![PathBuf::from("/bin/true")]
        );
        assert_eq!(
            exec_candidates("./run", &env("/x")),
            vec![PathBuf::from("./run")]
        );
        assert_eq!(
            exec_candidates("ls", &env("/a::/b")),
            vec![
                PathBuf::from("/a/ls"),
                PathBuf::from("ls"),
                PathBuf::from("/b/ls")
            ]
        );
        assert_eq!(exec_candidates("ls", &[]).len(), 6);
        assert_eq!(
            exec_candidates("ls", &[])[0],
            PathBuf::from("/usr/local/sbin/ls")
        );
    }
}
