//! Flags and the TOML config file. A flag wins over the file, the file over defaults.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::runtime::userns::UsernsRange;

/// Default API socket.
pub const DEFAULT_SOCKET: &str = boxd_client::DEFAULT_SOCKET;
/// Default root: database, images, container dirs.
pub const DEFAULT_ROOT: &str = "/var/lib/boxd";
/// Default runtime state dir (tmpfs: gone after a reboot, by design).
pub const DEFAULT_STATE_DIR: &str = "/run/boxd";

/// `boxd` command line.
#[derive(Debug, Default, Parser)]
#[command(
    name = "boxd",
    version,
    about = "boxd: a container daemon for one Linux host"
)]
pub struct Args {
    /// API socket path [default: /run/boxd.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Root dir: database, images, container dirs [default: /var/lib/boxd].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Runtime state dir [default: /run/boxd].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// cgroup under which every container's group is made, relative to the hierarchy
    /// root [default: boxd; on cgroup v2, the delegated group when systemd starts boxd
    /// in `<group>/daemon`].
    // This doc comment is the --help text: `[default: …]` is clap's style, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// TOML config file (keys as the flags, with underscores).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The binary run as `<shim> shim --config ...` [default: `boxd-shim` beside this
    /// binary, else this binary].
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `boxd=trace`, ...) [default: info, or RUST_LOG].
    #[arg(long)]
    pub log_level: Option<String>,
    /// Events kept in the event log, newest first [default: 100000].
    #[arg(long)]
    pub events_max: Option<u64>,
    /// Days an event is kept in the event log [default: 7].
    #[arg(long)]
    pub events_max_days: Option<u64>,
    /// Largest size of one container log file before it is rotated; 0: no rotation
    /// [default: 10485760].
    #[arg(long)]
    pub log_max_bytes: Option<u64>,
    /// Container log files kept, the current one included [default: 3].
    #[arg(long)]
    pub log_max_files: Option<u32>,
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    socket: Option<PathBuf>,
    root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    cgroup_parent: Option<String>,
    shim: Option<PathBuf>,
    log_level: Option<String>,
    events_max: Option<u64>,
    events_max_days: Option<u64>,
    log_max_bytes: Option<u64>,
    log_max_files: Option<u32>,
    userns_range: Option<crate::runtime::userns::UsernsRange>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// API socket path.
    pub socket: PathBuf,
    /// Root dir.
    pub root: PathBuf,
    /// Runtime state dir.
    pub state_dir: PathBuf,
    /// cgroup parent name (relative to each hierarchy's root); `None`: chosen at start
    /// (`cgroups::delegation::default_parent`).
    pub cgroup_parent: Option<String>,
    /// Shim binary.
    pub shim: PathBuf,
    /// Log filter.
    pub log_level: Option<String>,
    /// Events kept in the event log.
    pub events_max: u64,
    /// How long an event is kept.
    pub events_max_age: std::time::Duration,
    /// Largest size of one container log file; 0: no rotation.
    pub log_max_bytes: u64,
    /// Container log files kept, the current one included.
    pub log_max_files: u32,
    /// Host ids for `userns: "auto"` (file key `userns_range = { uid_start, gid_start,
    /// slots }`; else `/etc/subuid` + `/etc/subgid` `boxd` entries; else
    /// [`UsernsRange::DEFAULT`]).
    pub userns_range: UsernsRange,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for boxd.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A value is unusable.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// Which key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The shim path could not be found.
    #[error("failed to find the boxd binary to run as shim")]
    CurrentExe(#[source] std::io::Error),
}

/// `boxd-shim` beside the daemon when it is installed there: a binary with only the
/// shim's code starts faster than the whole daemon (no async runtime, HTTP or SQL code
/// to map and relocate) and leaves less private memory behind per container. `boxd`
/// itself runs as the shim otherwise (`boxd shim ...`).
fn default_shim(daemon: PathBuf) -> PathBuf {
    let beside = daemon.with_file_name("boxd-shim");
    if beside.is_file() {
        beside
    } else {
        daemon
    }
}

impl Config {
    /// Merges flags, the config file and defaults.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let shim = match args.shim.or(file.shim) {
            Some(p) => p,
            None => default_shim(std::env::current_exe().map_err(ConfigError::CurrentExe)?),
        };
        let config = Config {
            socket: args
                .socket
                .or(file.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            root: args
                .root
                .or(file.root)
                .unwrap_or_else(|| DEFAULT_ROOT.into()),
            state_dir: args
                .state_dir
                .or(file.state_dir)
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            cgroup_parent: args.cgroup_parent.or(file.cgroup_parent),
            shim,
            log_level: args.log_level.or(file.log_level),
            events_max: args
                .events_max
                .or(file.events_max)
                .unwrap_or(crate::runtime::DEFAULT_EVENTS_MAX),
            events_max_age: args
                .events_max_days
                .or(file.events_max_days)
                .map_or(crate::runtime::DEFAULT_EVENTS_MAX_AGE, |d| {
                    std::time::Duration::from_secs(d.saturating_mul(24 * 3600))
                }),
            log_max_bytes: args
                .log_max_bytes
                .or(file.log_max_bytes)
                .unwrap_or(crate::runtime::logs::DEFAULT_LOG_MAX_BYTES),
            log_max_files: args
                .log_max_files
                .or(file.log_max_files)
                .unwrap_or(crate::runtime::logs::DEFAULT_LOG_MAX_FILES),
            userns_range: file.userns_range.unwrap_or_else(|| {
                UsernsRange::from_subid_files(Path::new("/etc/subuid"), Path::new("/etc/subgid"))
                    .unwrap_or(UsernsRange::DEFAULT)
            }),
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.userns_range
            .check()
            .map_err(|reason| ConfigError::Invalid {
                key: "userns_range",
                reason,
            })?;
        if self.log_max_files == 0 {
            return Err(ConfigError::Invalid {
                key: "log_max_files",
                reason: "must be at least 1 (the current file)".to_owned(),
            });
        }
        if let Some(given) = &self.cgroup_parent {
            Self::validate_cgroup_parent(given)?;
        }
        for (key, path) in [
            ("root", &self.root),
            ("state_dir", &self.state_dir),
            ("socket", &self.socket),
        ] {
            if !path.is_absolute() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{} must be an absolute path", path.display()),
                });
            }
        }
        Ok(())
    }

    fn validate_cgroup_parent(given: &str) -> Result<(), ConfigError> {
        let parent = given.trim_matches('/');
        if parent.is_empty()
            || parent
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(ConfigError::Invalid {
                key: "cgroup_parent",
                reason: format!("{given:?} must be a relative cgroup path like \"boxd\""),
            });
        }
        Ok(())
    }

    /// How shims bound container logs (`None` when `log_max_bytes` is 0).
    pub fn log_rotation(&self) -> Option<boxd_shim::protocol::LogRotation> {
        (self.log_max_bytes > 0).then_some(boxd_shim::protocol::LogRotation {
            max_bytes: self.log_max_bytes,
            max_files: self.log_max_files,
        })
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("boxd.db")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_is_boxd_shim_beside_the_daemon_when_installed() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = dir.path().join("boxd");
        std::fs::write(&daemon, "").unwrap();
        assert_eq!(default_shim(daemon.clone()), daemon);
        std::fs::write(dir.path().join("boxd-shim"), "").unwrap();
        assert_eq!(default_shim(daemon), dir.path().join("boxd-shim"));
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(
            &file,
            "root = \"/srv/boxd\"\ncgroup_parent = \"fromfile\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(file),
            cgroup_parent: Some("fromflag".into()),
            shim: Some("/bin/true".into()),
            ..Default::default()
        };
        let c = Config::load(args).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/boxd"));
        assert_eq!(c.cgroup_parent.as_deref(), Some("fromflag"));
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.db_path(), PathBuf::from("/srv/boxd/boxd.db"));
    }

    #[test]
    fn bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(&file, "rooot = \"/x\"\n").unwrap();
        let err = Config::load(Args {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");

        let args = Args {
            cgroup_parent: Some("../escape".into()),
            shim: Some("/bin/true".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(args),
            Err(ConfigError::Invalid {
                key: "cgroup_parent",
                ..
            })
        ));
        let args = Args {
            root: Some("relative".into()),
            shim: Some("/bin/true".into()),
            ..Default::default()
        };
        assert!(matches!(
            Config::load(args),
            Err(ConfigError::Invalid { key: "root", .. })
        ));
    }

    #[test]
    fn log_rotation_defaults_file_keys_and_off_switch() {
        let shim = || Some(PathBuf::from("/bin/true"));
        let c = Config::load(Args {
            shim: shim(),
            ..Default::default()
        })
        .unwrap();
        let r = c.log_rotation().unwrap();
        assert_eq!((r.max_bytes, r.max_files), (10 << 20, 3));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(&file, "log_max_bytes = 4096\nlog_max_files = 5\n").unwrap();
        let c = Config::load(Args {
            config: Some(file),
            shim: shim(),
            log_max_files: Some(2),
            ..Default::default()
        })
        .unwrap();
        let r = c.log_rotation().unwrap();
        assert_eq!((r.max_bytes, r.max_files), (4096, 2));

        let off = Config::load(Args {
            shim: shim(),
            log_max_bytes: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(off.log_rotation(), None);
        assert!(matches!(
            Config::load(Args {
                shim: shim(),
                log_max_files: Some(0),
                ..Default::default()
            }),
            Err(ConfigError::Invalid {
                key: "log_max_files",
                ..
            })
        ));
    }
}
