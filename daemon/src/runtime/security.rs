//! A container's security settings: from the create request to the effective
//! [`SecurityConfig`] that `inspect` shows and the bundle applies.
//!
//! Secure by default: Podman's small capability set, no_new_privs, Docker's seccomp
//! profile, Docker's masked and read-only paths, a device allow-list. Every opt-out is
//! explicit in the request (`cap_add`, `seccomp: "unconfined"`, ...), and anything this
//! module does not understand is refused (400), never ignored.

use std::collections::{BTreeMap, BTreeSet};

use boxd_types::{CreateContainer, SecurityConfig, Ulimit};
use oci_spec::runtime::Capability;

use super::seccomp;

/// Every capability the kernel knows (capabilities(7)), by its `CAP_` name.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

pub use super::bundle::{MASKED_PATHS, READONLY_PATHS};

pub use crate::cgroups::devices::ALLOWED as ALLOWED_DEVICES;

/// rlimits set when the request names none: as many open files as the host allows
/// (the shim clamps to the hard limit it inherits), as Podman does.
const DEFAULT_NOFILE: u64 = 1_048_576;

/// setrlimit's resources, by the names Docker's `--ulimit` uses.
pub const ULIMIT_NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// tmpfs mount options a container may ask for.
const TMPFS_FLAGS: &[&str] = &[
    "ro",
    "rw",
    "exec",
    "noexec",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
];
const TMPFS_KEYS: &[&str] = &["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"];

/// A security setting of the request that cannot be honoured; the API answers 400.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A capability name nobody knows.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// A `security_opt` word boxd does not know.
    #[error("unsupported security option {0:?} (known: seccomp=unconfined|default|<json>, no-new-privileges[=true|false])")]
    SecurityOpt(String),
    /// `seccomp` and `security_opt` disagree, or appear twice.
    #[error("seccomp is set more than once")]
    SeccompTwice,
    /// `no_new_privileges` and `security_opt` disagree.
    #[error("no_new_privileges is set more than once")]
    NoNewPrivsTwice,
    /// A custom seccomp profile that does not parse or translate.
    #[error("invalid seccomp profile")]
    SeccompProfile(#[source] seccomp::SeccompError),
    /// A ulimit with an unknown name or soft > hard.
    #[error("invalid ulimit {name:?}: {reason}")]
    Ulimit {
        /// The limit's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `resources.disk_bytes` that cannot be enforced (see `runtime::disk`).
    #[error("invalid resources.disk_bytes: {0}")]
    DiskLimit(String),
    /// A tmpfs mount with a bad path or option.
    #[error("invalid tmpfs {path:?}: {reason}")]
    Tmpfs {
        /// The container path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Normalises one capability name: case-insensitive, with or without `CAP_`.
/// `ALL` is returned as `ALL`.
pub fn normalize_capability(name: &str) -> Result<String, SecurityError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SecurityError::UnknownCapability(name.to_owned()))
    }
}

/// The bounding set: the default set, plus `add`, minus `drop`, as Docker computes it
/// (`drop: ALL` empties the default first, then `add` applies; `add: ALL` grants every
/// capability except those dropped by name).
pub fn capability_set(add: &[String], drop: &[String]) -> Result<Vec<String>, SecurityError> {
    let add = add
        .iter()
        .map(|n| normalize_capability(n))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let drop = drop
        .iter()
        .map(|n| normalize_capability(n))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let mut set: BTreeSet<String> = if add.contains("ALL") {
        ALL_CAPABILITIES.iter().map(|s| (*s).to_owned()).collect()
    } else if drop.contains("ALL") {
        BTreeSet::new()
    } else {
        SecurityConfig::default().capabilities.into_iter().collect()
    };
    for cap in &add {
        if cap != "ALL" {
            set.insert(cap.clone());
        }
    }
    for cap in &drop {
        // An explicit add wins over `drop: ALL`, as with Docker.
        if cap != "ALL" && !add.contains(cap) {
            set.remove(cap);
        }
    }
    Ok(set.into_iter().collect())
}

/// The oci-spec value of a normalised `CAP_` name.
pub fn oci_capability(name: &str) -> Option<Capability> {
    name.strip_prefix("CAP_").and_then(|n| n.parse().ok())
}

/// The request's security settings with defaults applied, checked.
pub fn security_config(req: &CreateContainer) -> Result<SecurityConfig, SecurityError> {
    if let Some(bytes) = req.resources.disk_bytes {
        super::disk::check_limit(bytes).map_err(SecurityError::DiskLimit)?;
    }
    let capabilities = capability_set(&req.cap_add, &req.cap_drop)?;

    let mut seccomp_opt: Option<String> = req.seccomp.clone();
    let mut nnp: Option<bool> = req.no_new_privileges;
    for opt in &req.security_opt {
        // Docker accepts both `key=value` and the older `key:value`.
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (opt.trim(), None),
        };
        match (key, value) {
            ("seccomp", Some(v)) => {
                if seccomp_opt.replace(v.to_owned()).is_some() {
                    return Err(SecurityError::SeccompTwice);
                }
            }
            ("no-new-privileges", v) => {
                let on = match v.map(str::trim) {
                    None | Some("true") => true,
                    Some("false") => false,
                    _ => return Err(SecurityError::SecurityOpt(opt.clone())),
                };
                if nnp.is_some_and(|old| old != on) {
                    return Err(SecurityError::NoNewPrivsTwice);
                }
                nnp = Some(on);
            }
            _ => return Err(SecurityError::SecurityOpt(opt.clone())),
        }
    }
    let (seccomp, seccomp_profile) = match seccomp_opt.as_deref().map(str::trim) {
        None | Some("") | Some("default") => ("default".to_owned(), None),
        Some("unconfined") => ("unconfined".to_owned(), None),
        Some(json) => {
            // Parsed and translated now, so a bad profile is a 400 at create rather
            // than a failed start.
            let profile = seccomp::parse_profile(json).map_err(SecurityError::SeccompProfile)?;
            seccomp::translate(&profile, &capabilities).map_err(SecurityError::SeccompProfile)?;
            ("custom".to_owned(), Some(json.to_owned()))
        }
    };

    let mut ulimits: Vec<Ulimit> = Vec::new();
    for u in &req.ulimits {
        let name = u.name.trim().to_ascii_lowercase();
        let name = name.strip_prefix("rlimit_").unwrap_or(&name).to_owned();
        if !ULIMIT_NAMES.contains(&name.as_str()) {
            return Err(SecurityError::Ulimit {
                name: u.name.clone(),
                reason: "unknown name",
            });
        }
        if u.soft > u.hard {
            return Err(SecurityError::Ulimit {
                name: u.name.clone(),
                reason: "soft limit above hard limit",
            });
        }
        if ulimits.iter().any(|o| o.name == name) {
            return Err(SecurityError::Ulimit {
                name: u.name.clone(),
                reason: "given twice",
            });
        }
        ulimits.push(Ulimit {
            name,
            soft: u.soft,
            hard: u.hard,
        });
    }
    if !ulimits.iter().any(|u| u.name == "nofile") {
        ulimits.push(Ulimit {
            name: "nofile".to_owned(),
            soft: DEFAULT_NOFILE,
            hard: DEFAULT_NOFILE,
        });
    }

    let mut tmpfs = BTreeMap::new();
    for (path, options) in &req.tmpfs {
        check_tmpfs(path, options)?;
        tmpfs.insert(path.clone(), options.clone());
    }

    Ok(SecurityConfig {
        capabilities,
        no_new_privileges: nnp.unwrap_or(true),
        seccomp,
        seccomp_profile,
        read_only_rootfs: req.read_only_rootfs,
        tmpfs,
        ulimits,
        masked_paths: MASKED_PATHS.iter().map(|s| (*s).to_owned()).collect(),
        readonly_paths: READONLY_PATHS.iter().map(|s| (*s).to_owned()).collect(),
        devices: ALLOWED_DEVICES.iter().map(|s| (*s).to_owned()).collect(),
    })
}

fn check_tmpfs(path: &str, options: &str) -> Result<(), SecurityError> {
    let bad = |reason: String| SecurityError::Tmpfs {
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/')
        || path.trim_end_matches('/').is_empty()
        || path.split('/').any(|c| c == "..")
        || path.contains(['\0', ','])
    {
        return Err(bad(
            "must be an absolute path other than / without '..'".into()
        ));
    }
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let ok = match opt.split_once('=') {
            Some((k, v)) => TMPFS_KEYS.contains(&k) && !v.is_empty() && !v.contains(':'),
            None => TMPFS_FLAGS.contains(&opt),
        };
        if !ok {
            return Err(bad(format!("unsupported option {opt:?}")));
        }
    }
    Ok(())
}

/// The tmpfs mount options as OCI mount options: safe defaults first (Docker's
/// `noexec,nosuid,nodev`), then the request's words, which may override them.
pub fn tmpfs_options(options: &str) -> Vec<String> {
    let mut out: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
    out.extend(
        options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> CreateContainer {
        CreateContainer {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    #[test]
    fn capability_names_parse_with_or_without_prefix() {
        assert_eq!(normalize_capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize_capability("CAP_NET_RAW").unwrap(), "CAP_NET_RAW");
        assert_eq!(
            normalize_capability("Cap_Sys_Admin").unwrap(),
            "CAP_SYS_ADMIN"
        );
        assert_eq!(normalize_capability("all").unwrap(), "ALL");
        assert!(matches!(
            normalize_capability("CAP_FLY"),
            Err(SecurityError::UnknownCapability(n)) if n == "CAP_FLY"
        ));
        assert!(normalize_capability("").is_err());
        // Every name maps to an oci-spec capability (the shim needs them).
        for c in ALL_CAPABILITIES {
            assert!(oci_capability(c).is_some(), "{c}");
        }
    }

    #[test]
    fn capability_set_follows_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let default = capability_set(&[], &[]).unwrap();
        assert_eq!(default.len(), 11);
        assert!(default.contains(&"CAP_CHOWN".to_string()));
        assert!(!default.contains(&"CAP_NET_RAW".to_string()));

        let more = capability_set(&s(&["NET_ADMIN"]), &s(&["chown"])).unwrap();
        assert!(more.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!more.contains(&"CAP_CHOWN".to_string()));

        assert!(capability_set(&[], &s(&["ALL"])).unwrap().is_empty());
        assert_eq!(
            capability_set(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap(),
            s(&["CAP_NET_BIND_SERVICE"])
        );
        let all = capability_set(&s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert_eq!(all.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!all.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(capability_set(&s(&["BOGUS"]), &[]).is_err());
        assert!(capability_set(&[], &s(&["BOGUS"])).is_err());
    }

    #[test]
    fn defaults_are_secure() {
        let c = security_config(&req()).unwrap();
        assert!(c.no_new_privileges);
        assert_eq!(c.seccomp, "default");
        assert!(c.masked_paths.contains(&"/proc/kcore".to_string()));
        assert!(c
            .readonly_paths
            .contains(&"/proc/sysrq-trigger".to_string()));
        assert_eq!(c.ulimits[0].name, "nofile");
        assert_eq!(c.capabilities, SecurityConfig::default().capabilities);
    }

    #[test]
    fn security_opt_words() {
        let mut r = req();
        r.security_opt = vec![
            "seccomp=unconfined".into(),
            "no-new-privileges=false".into(),
        ];
        let c = security_config(&r).unwrap();
        assert_eq!(c.seccomp, "unconfined");
        assert!(!c.no_new_privileges);

        r.security_opt = vec!["no-new-privileges".into()];
        assert!(security_config(&r).unwrap().no_new_privileges);

        r.security_opt = vec!["apparmor=foo".into()];
        assert!(matches!(
            security_config(&r),
            Err(SecurityError::SecurityOpt(_))
        ));
        r.security_opt = vec!["no-new-privileges=maybe".into()];
        assert!(security_config(&r).is_err());

        r.security_opt = vec!["seccomp=unconfined".into()];
        r.seccomp = Some("default".into());
        assert!(matches!(
            security_config(&r),
            Err(SecurityError::SeccompTwice)
        ));

        let mut r = req();
        r.seccomp = Some(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#.into());
        let c = security_config(&r).unwrap();
        assert_eq!(c.seccomp, "custom");
        assert!(c.seccomp_profile.is_some());
        r.seccomp = Some("{not json".into());
        assert!(matches!(
            security_config(&r),
            Err(SecurityError::SeccompProfile(_))
        ));
    }

    #[test]
    fn ulimits_are_checked() {
        let mut r = req();
        r.ulimits = vec![Ulimit {
            name: "NOFILE".into(),
            soft: 100,
            hard: 200,
        }];
        let c = security_config(&r).unwrap();
        assert_eq!(
            c.ulimits,
            vec![Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200
            }]
        );
        r.ulimits[0].soft = 300;
        assert!(security_config(&r).is_err());
        let mut d = req();
        d.resources.disk_bytes = Some(1 << 30);
        assert!(security_config(&d).is_ok());
        d.resources.disk_bytes = Some(1 << 20);
        assert!(matches!(
            security_config(&d),
            Err(SecurityError::DiskLimit(_))
        ));
        r.ulimits[0] = Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        };
        assert!(security_config(&r).is_err());
    }

    #[test]
    fn tmpfs_is_checked() {
        let mut r = req();
        r.tmpfs.insert("/tmp".into(), "size=64m,mode=1777".into());
        assert!(security_config(&r).is_ok());
        for (p, o) in [
            ("tmp", ""),
            ("/", ""),
            ("/a/../b", ""),
            ("/tmp", "remount"),
            ("/tmp", "size="),
            ("/tmp", "lowerdir=/x"),
        ] {
            let mut r = req();
            r.tmpfs.insert(p.into(), o.into());
            assert!(security_config(&r).is_err(), "{p} {o}");
        }
        assert_eq!(
            tmpfs_options("size=1m,exec"),
            vec!["nosuid", "nodev", "noexec", "size=1m", "exec"]
        );
    }
}
