//! Builds the OCI runtime bundle (`config.json`) the shim executes.
//!
//! The bundle is the standard format at the daemon/shim boundary: a reader knows it, and
//! another runtime could be swapped in. The root filesystem itself is described to the
//! shim separately (an overlay it mounts inside the container's own mount namespace), and
//! `root.path` is only the mount point.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::network::Netns;
use crate::runtime::spec::ContainerConfig;

use crate::image::users::ResolvedUser;

/// Mount point of the root filesystem inside the bundle dir.
pub const ROOTFS_DIR: &str = "rootfs";

/// Errors building the bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// oci-spec refused a value.
    #[error("failed to build the OCI runtime spec")]
    Build(#[source] oci_spec::OciSpecError),
    /// Writing `config.json` failed.
    #[error("failed to write {path}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// The container's seccomp profile could not be translated.
    #[error("failed to build the seccomp filter")]
    Seccomp(#[source] super::seccomp::SeccompError),
}

/// The capabilities a container keeps by default: Podman's set, smaller than Docker's
/// (no MKNOD, NET_RAW or AUDIT_WRITE), enough for ordinary services.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// Paths hidden from the container (Docker's list): kernel memory, keys, timers and
/// hardware details that leak host information or allow attacks.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths the container may read but never write (Docker's list).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, BundleError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(BundleError::Build)
}

/// Adds read-write bind mounts of `files` (container path, host file) to `spec`, but
/// not over a path the user mounts something on.
pub fn add_file_mounts(
    spec: &mut Spec,
    config: &ContainerConfig,
    files: &[(String, std::path::PathBuf)],
) -> Result<(), BundleError> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (target, source) in files {
        if config.mounts.iter().any(|m| m.target == *target) {
            continue;
        }
        mounts.push(mount(
            target,
            "bind",
            &source.to_string_lossy(),
            &["rbind", "rprivate", "nosuid", "nodev", "noexec"],
        )?);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Builds the spec for a container's run.
/// `netns` says how the run gets its network namespace: a new one (only `lo`), the
/// host's (none listed), or one the daemon pinned and attached (joined by path).
pub fn build_spec(
    config: &ContainerConfig,
    user: &ResolvedUser,
    netns: &Netns,
) -> Result<Spec, BundleError> {
    let sec = &config.security;
    // The effective set recorded at create (defaults, cap_add, cap_drop).
    let caps: oci_spec::runtime::Capabilities = sec
        .capabilities
        .iter()
        .filter_map(|c| super::security::oci_capability(c))
        .collect();
    // A non-root user gets no effective or permitted capabilities, as with Docker: the
    // bounding set still limits what a setuid binary could regain (and no_new_privs
    // stops even that).
    let none = oci_spec::runtime::Capabilities::new();
    let (effective, permitted) = if user.uid == 0 {
        (caps.clone(), caps.clone())
    } else {
        (none.clone(), none.clone())
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(effective)
        .permitted(permitted)
        .inheritable(none.clone())
        .ambient(none)
        .build()
        .map_err(BundleError::Build)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(BundleError::Build)?,
        )
        .args(config.cmd.clone())
        .env(config.env.clone())
        .cwd(&config.working_dir)
        .capabilities(capabilities)
        .no_new_privileges(sec.no_new_privileges)
        .rlimits(rlimits(&sec.ulimits)?)
        .build()
        .map_err(BundleError::Build)?;

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    for m in &config.mounts {
        let mut options = vec!["rbind", "rprivate"];
        if m.read_only {
            options.push("ro");
        }
        mounts.push(mount(&m.target, "bind", &m.source, &options)?);
    }
    for (target, options) in &sec.tmpfs {
        let options = super::security::tmpfs_options(options);
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        mounts.push(mount(target, "tmpfs", "tmpfs", &options)?);
    }

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
        // Entered last by the shim, after the app joined its cgroup: the container sees
        // its own group as `/` and nothing of the host's hierarchy above it.
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .filter(|typ| *typ != LinuxNamespaceType::Network || *netns != Netns::Host)
    // A user namespace (see `userns`): the shim makes it first, so that it owns the
    // network, uts, ipc and pid namespaces.
    .chain(config.userns.as_ref().map(|_| LinuxNamespaceType::User))
    .map(|typ| {
        let mut ns = LinuxNamespaceBuilder::default();
        ns = ns.typ(typ);
        if let (LinuxNamespaceType::Network, Netns::Join(path)) = (typ, netns) {
            ns = ns.path(path.clone());
        }
        ns.build().map_err(BundleError::Build)
    })
    .collect::<Result<Vec<_>, _>>()?;
    let mut linux = LinuxBuilder::default();
    if let Some(u) = &config.userns {
        let lines = |map: &[crate::runtime::spec::IdMapping]| {
            map.iter()
                .map(|m| {
                    oci_spec::runtime::LinuxIdMappingBuilder::default()
                        .container_id(m.container_id)
                        .host_id(m.host_id)
                        .size(m.size)
                        .build()
                        .map_err(BundleError::Build)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        linux = linux
            .uid_mappings(lines(&u.uid_map)?)
            .gid_mappings(lines(&u.gid_map)?);
    }
    if let Some(seccomp) = seccomp_section(sec)? {
        linux = linux.seccomp(seccomp);
    }
    if *netns != Netns::Host {
        // As Docker (20.10+): in a network namespace of its own, any user may bind
        // ports below 1024 and ping; the host's settings are not touched.
        linux = linux.sysctl(HashMap::from([
            (
                "net.ipv4.ip_unprivileged_port_start".to_owned(),
                "0".to_owned(),
            ),
            (
                "net.ipv4.ping_group_range".to_owned(),
                "0 2147483647".to_owned(),
            ),
        ]));
    }
    let linux = linux
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(BundleError::Build)?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(ROOTFS_DIR)
                .readonly(sec.read_only_rootfs)
                .build()
                .map_err(BundleError::Build)?,
        )
        .hostname(config.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(BundleError::Build)
}

/// The OCI seccomp section: none when unconfined, else the default or custom profile
/// translated for this container's capabilities.
fn seccomp_section(
    sec: &crate::runtime::spec::SecurityConfig,
) -> Result<Option<oci_spec::runtime::LinuxSeccomp>, BundleError> {
    use super::seccomp;
    let profile = match (sec.seccomp.as_str(), &sec.seccomp_profile) {
        ("unconfined", _) => return Ok(None),
        ("custom", Some(json)) => seccomp::parse_profile(json).map_err(BundleError::Seccomp)?,
        _ => seccomp::default_profile(),
    };
    seccomp::translate(&profile, &sec.capabilities)
        .map(Some)
        .map_err(BundleError::Seccomp)
}

/// `ulimits` as OCI rlimits (names checked at create).
fn rlimits(ulimits: &[crate::runtime::spec::Ulimit]) -> Result<Vec<PosixRlimit>, BundleError> {
    ulimits
        .iter()
        .filter_map(|u| {
            let typ: PosixRlimitType = serde_json::from_value(serde_json::Value::String(format!(
                "RLIMIT_{}",
                u.name.to_ascii_uppercase()
            )))
            .ok()?;
            Some(
                PosixRlimitBuilder::default()
                    .typ(typ)
                    .soft(u.soft)
                    .hard(u.hard)
                    .build()
                    .map_err(BundleError::Build),
            )
        })
        .collect()
}

/// Writes `config.json` into `bundle` (which must exist) and creates the rootfs mount point.
pub fn write_bundle(bundle: &Path, spec: &Spec) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    spec.save(&path).map_err(|source| BundleError::Write {
        path: path.clone(),
        source,
    })?;
    std::fs::create_dir_all(bundle.join(ROOTFS_DIR)).map_err(|e| BundleError::Write {
        path: bundle.join(ROOTFS_DIR),
        source: oci_spec::OciSpecError::Io(e),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::Mount as UserMount;

    fn config() -> ContainerConfig {
        ContainerConfig {
            cmd: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: "/".into(),
            hostname: "web".into(),
            user: String::new(),
            mounts: vec![UserMount {
                kind: Default::default(),
                source: "/srv".into(),
                target: "/data".into(),
                read_only: true,
            }],
            labels: Default::default(),
            security: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn spec_has_namespaces_mounts_and_user() {
        let root = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        let spec = build_spec(&config(), &root, &Netns::Own).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("web"));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap()[0], "/bin/sh");
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
        assert!(!caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));

        let mounts = spec.mounts().as_ref().unwrap();
        let data = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .unwrap();
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_owned()));
        // Bind mounts come after /dev and /proc, so they can land on top of them.
        let pos = |d: &str| {
            mounts
                .iter()
                .position(|m| m.destination() == Path::new(d))
                .unwrap()
        };
        assert!(pos("/proc") < pos("/data") && pos("/dev") < pos("/dev/pts"));

        let ns = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Mount,
        ] {
            assert!(ns.iter().any(|n| n.typ() == t), "{t:?}");
        }
    }

    #[test]
    fn non_root_user_has_no_effective_caps() {
        let user = ResolvedUser {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
        };
        let spec = build_spec(&config(), &user, &Netns::Own).unwrap();
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.user().uid(), 1000);
        assert_eq!(
            process.user().additional_gids().as_ref().unwrap(),
            &vec![10]
        );
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(!caps.bounding().as_ref().unwrap().is_empty());
    }

    #[test]
    fn security_settings_reach_the_spec() {
        let root = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        let mut c = config();
        c.security.capabilities.push("CAP_NET_RAW".into());
        c.security.read_only_rootfs = true;
        c.security.tmpfs.insert("/tmp".into(), "size=1m".into());
        c.security.ulimits = vec![crate::runtime::spec::Ulimit {
            name: "nofile".into(),
            soft: 10,
            hard: 20,
        }];
        c.security.no_new_privileges = false;
        let spec = build_spec(&c, &root, &Netns::Own).unwrap();
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(false));
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetRaw));
        let rl = &process.rlimits().as_ref().unwrap()[0];
        assert_eq!((rl.soft(), rl.hard()), (10, 20));
        let tmp = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/tmp"))
            .unwrap();
        assert_eq!(tmp.typ().as_deref(), Some("tmpfs"));
        assert!(tmp
            .options()
            .as_ref()
            .unwrap()
            .contains(&"noexec".to_owned()));
        let seccomp = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        assert_eq!(
            seccomp.default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActErrno
        );

        c.security.seccomp = "unconfined".into();
        let spec = build_spec(&c, &root, &Netns::Own).unwrap();
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn bundle_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        };
        let spec = build_spec(&config(), &root, &Netns::Own).unwrap();
        write_bundle(dir.path(), &spec).unwrap();
        assert!(dir.path().join(ROOTFS_DIR).is_dir());
        assert_eq!(Spec::load(dir.path().join("config.json")).unwrap(), spec);
    }
}
