//! Flags and the TOML config file. A flag wins over the file, the file over defaults.
//!
//! The flags are parsed by hand over `lexopt` rather than with a derive framework: boxd
//! has a dozen flags and no subcommands of its own (`boxd shim ...` is dispatched in
//! `main.rs` before this runs), and the daemon should not link a command-line toolkit.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::runtime::userns::UsernsRange;

/// Default API socket.
pub const DEFAULT_SOCKET: &str = boxd_types::DEFAULT_SOCKET;
/// Default root: database, images, container dirs.
pub const DEFAULT_ROOT: &str = "/var/lib/boxd";
/// The config file read when `--config` is not given and it exists.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/boxd/boxd.toml";
/// Default runtime state dir (tmpfs: gone after a reboot, by design).
pub const DEFAULT_STATE_DIR: &str = "/run/boxd";

/// `boxd --help`. Each flag is one field of [`Args`]; `help_names_every_flag` keeps the
/// two lists equal.
pub const HELP: &str = "\
boxd: a container daemon for one Linux host

Usage: boxd [OPTIONS]

Options:
      --socket <PATH>
          API socket path [default: /run/boxd.sock]
      --root <PATH>
          Root dir: database, images, container dirs [default: /var/lib/boxd]
      --state-dir <PATH>
          Runtime state dir [default: /run/boxd]
      --cgroup-parent <PATH>
          cgroup under which every container's group is made, relative to the hierarchy
          root [default: boxd; on cgroup v2, the delegated group when systemd starts boxd
          in `<group>/daemon`]
      --config <FILE>
          TOML config file (keys as the flags, with underscores); flags win over it
          [default: /etc/boxd/boxd.toml when it exists; docs/boxd.toml lists every key]
      --print-config
          Print the effective configuration (flags, file and defaults merged) as the
          config file's TOML, and exit
      --shim <PATH>
          The binary run as `<shim> shim --config ...` [default: `boxd-shim` beside this
          binary, else this binary]
      --log-level <FILTER>
          Log filter (`info`, `debug`, `boxd=trace`, ...) [default: info, or RUST_LOG]
      --events-max <N>
          Events kept in the event log, newest first [default: 100000]
      --events-max-days <DAYS>
          Days an event is kept in the event log [default: 7]
      --exits-max <N>
          Exit records kept per container, newest first; older ones are dropped when a
          new one is written [default: 100]
      --max-json-body <BYTES>
          Largest JSON request body; larger ones are refused with 413 [default: 1048576]
      --max-image-body <BYTES>
          Largest image import or load body [default: 68719476736 (64 GiB)]
      --max-archive-member <BYTES>
          Largest image archive member read into memory (manifest.json, index.json,
          configs) [default: 16777216]
      --log-max-bytes <BYTES>
          Largest size of one container log file before it is rotated; 0: no rotation
          [default: 10485760]
      --log-max-files <N>
          Container log files kept, the current one included [default: 3]
  -h, --help
          Print help
  -V, --version
          Print version
";

/// `boxd --version`.
pub const VERSION: &str = concat!("boxd ", env!("CARGO_PKG_VERSION"));

/// `boxd` flags; `None` where the flag was not given (then the config file, then the
/// default decides). [`HELP`] describes each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--socket`: API socket path.
    pub socket: Option<PathBuf>,
    /// `--root`: database, images, container dirs.
    pub root: Option<PathBuf>,
    /// `--state-dir`: runtime state dir.
    pub state_dir: Option<PathBuf>,
    /// `--cgroup-parent`: cgroup under which every container's group is made.
    pub cgroup_parent: Option<String>,
    /// `--config`: TOML config file.
    pub config: Option<PathBuf>,
    /// `--shim`: the binary run as `<shim> shim --config ...`.
    pub shim: Option<PathBuf>,
    /// `--log-level`: log filter.
    pub log_level: Option<String>,
    /// `--events-max`: events kept in the event log.
    pub events_max: Option<u64>,
    /// `--events-max-days`: days an event is kept.
    pub events_max_days: Option<u64>,
    /// `--exits-max`: exit records kept per container.
    pub exits_max_per_container: Option<u64>,
    /// `--max-json-body`: largest JSON request body.
    pub max_json_body: Option<u64>,
    /// `--max-image-body`: largest image import or load body.
    pub max_image_body: Option<u64>,
    /// `--max-archive-member`: largest archive member read into memory.
    pub max_archive_member: Option<u64>,
    /// `--log-max-bytes`: largest size of one container log file.
    pub log_max_bytes: Option<u64>,
    /// `--log-max-files`: container log files kept.
    pub log_max_files: Option<u32>,
}

/// What a `boxd` command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the daemon with these flags (boxed: they dwarf the other variants).
    Run(Box<Args>),
    /// `-h`, `--help`: print [`HELP`] and exit 0.
    Help,
    /// `-V`, `--version`: print [`VERSION`] and exit 0.
    Version,
    /// `--print-config`: print the effective configuration ([`Config::to_toml`]) and
    /// exit 0.
    PrintConfig(Box<Args>),
}

/// A command line boxd cannot use; `boxd` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// An unknown flag, a flag without its value, a value given to a flag that takes
    /// none, a stray argument, or a value that is not UTF-8.
    #[error(transparent)]
    ReadArgs(#[from] lexopt::Error),
    /// A number flag's value is not a number of its range.
    #[error("invalid value {value:?} for --{flag}")]
    ParseNumber {
        /// The flag, without its dashes.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// Why it does not parse.
        #[source]
        source: std::num::ParseIntError,
    },
}

impl Args {
    /// Parses `boxd`'s arguments (without the program name). `--flag VALUE` and
    /// `--flag=VALUE` both work; a flag given twice keeps its last value. `--help` and
    /// `--version` win over everything after them, as in most tools.
    pub fn parse<I>(args: I) -> Result<Command, UsageError>
    where
        I: IntoIterator,
        I::Item: Into<std::ffi::OsString>,
    {
        use lexopt::prelude::*;

        let mut parser = lexopt::Parser::from_args(args);
        let mut a = Args::default();
        let mut print_config = false;
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::Help),
                Short('V') | Long("version") => return Ok(Command::Version),
                Long("print-config") => print_config = true,
                Long("socket") => a.socket = Some(parser.value()?.into()),
                Long("root") => a.root = Some(parser.value()?.into()),
                Long("state-dir") => a.state_dir = Some(parser.value()?.into()),
                Long("cgroup-parent") => a.cgroup_parent = Some(parser.value()?.string()?),
                Long("config") => a.config = Some(parser.value()?.into()),
                Long("shim") => a.shim = Some(parser.value()?.into()),
                Long("log-level") => a.log_level = Some(parser.value()?.string()?),
                Long("events-max") => a.events_max = Some(number(&mut parser, "events-max")?),
                Long("events-max-days") => {
                    a.events_max_days = Some(number(&mut parser, "events-max-days")?)
                }
                Long("exits-max") => {
                    a.exits_max_per_container = Some(number(&mut parser, "exits-max")?)
                }
                Long("max-json-body") => {
                    a.max_json_body = Some(number(&mut parser, "max-json-body")?)
                }
                Long("max-image-body") => {
                    a.max_image_body = Some(number(&mut parser, "max-image-body")?)
                }
                Long("max-archive-member") => {
                    a.max_archive_member = Some(number(&mut parser, "max-archive-member")?)
                }
                Long("log-max-bytes") => {
                    a.log_max_bytes = Some(number(&mut parser, "log-max-bytes")?)
                }
                Long("log-max-files") => {
                    a.log_max_files = Some(number(&mut parser, "log-max-files")?)
                }
                _ => return Err(arg.unexpected().into()),
            }
        }
        if print_config {
            return Ok(Command::PrintConfig(Box::new(a)));
        }
        Ok(Command::Run(Box::new(a)))
    }
}

/// The value of number flag `--flag`.
fn number<T>(parser: &mut lexopt::Parser, flag: &'static str) -> Result<T, UsageError>
where
    T: std::str::FromStr<Err = std::num::ParseIntError>,
{
    use lexopt::ValueExt as _;

    let value = parser.value()?.string()?;
    value.parse().map_err(|source| UsageError::ParseNumber {
        flag,
        value,
        source,
    })
}

/// The config file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    socket: Option<PathBuf>,
    docker_socket: Option<PathBuf>,
    metrics_address: Option<std::net::SocketAddr>,
    root: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    cgroup_parent: Option<String>,
    shim: Option<PathBuf>,
    log_level: Option<String>,
    events_max: Option<u64>,
    events_max_days: Option<u64>,
    exits_max_per_container: Option<u64>,
    max_json_body: Option<u64>,
    max_image_body: Option<u64>,
    max_archive_member: Option<u64>,
    log_max_bytes: Option<u64>,
    log_max_files: Option<u32>,
    userns_range: Option<crate::runtime::userns::UsernsRange>,
    default_network_mode: Option<String>,
    default_bridge: Option<String>,
    default_subnet: Option<String>,
    network_pool: Option<String>,
    bridge_prefix: Option<String>,
    port_host_ip: Option<String>,
    cni_plugin_dirs: Option<Vec<PathBuf>>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// API socket path.
    pub socket: PathBuf,
    /// A second socket for Docker clients (file key `docker_socket`); the main one
    /// answers them too.
    pub docker_socket: Option<PathBuf>,
    /// A TCP address that serves `/metrics` and nothing else (file key
    /// `metrics_address`, e.g. `"127.0.0.1:9323"`, dockerd's `metrics-addr`); off by
    /// default: the metrics are always on the API socket.
    pub metrics_address: Option<std::net::SocketAddr>,
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
    /// Exit records kept per container.
    pub exits_max_per_container: u64,
    /// Largest JSON request body.
    pub max_json_body: u64,
    /// Largest image import or load body.
    pub max_image_body: u64,
    /// Largest image archive member read into memory.
    pub max_archive_member: u64,
    /// Largest size of one container log file; 0: no rotation.
    pub log_max_bytes: u64,
    /// Container log files kept, the current one included.
    pub log_max_files: u32,
    /// Host ids for `userns: "auto"` (file key `userns_range = { uid_start, gid_start,
    /// slots }`; else `/etc/subuid` + `/etc/subgid` `boxd` entries; else
    /// [`UsernsRange::DEFAULT`]).
    pub userns_range: UsernsRange,
    /// Networking (file keys `default_network_mode` (`bridge` or `none`),
    /// `default_bridge`, `default_subnet`, `network_pool`, `bridge_prefix`,
    /// `port_host_ip`, `cni_plugin_dirs`).
    pub network: crate::network::Settings,
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

/// The networking settings of the file, defaults for what it does not say.
fn network_settings(file: &FileConfig) -> Result<crate::network::Settings, ConfigError> {
    let mut s = crate::network::Settings::default();
    let invalid = |key: &'static str, reason: String| ConfigError::Invalid { key, reason };
    if let Some(m) = &file.default_network_mode {
        if m != "bridge" && m != "none" {
            return Err(invalid(
                "default_network_mode",
                format!("{m:?} must be \"bridge\" or \"none\""),
            ));
        }
        s.default_mode = m.clone();
    }
    let bridge_name = |key, b: &str| {
        if b.is_empty()
            || b.len() > 15
            || !b
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            Err(invalid(
                key,
                format!("{b:?} is not a link name (1-15 of [a-zA-Z0-9._-])"),
            ))
        } else {
            Ok(b.to_owned())
        }
    };
    if let Some(b) = &file.default_bridge {
        s.default_bridge = bridge_name("default_bridge", b)?;
    }
    if let Some(p) = &file.bridge_prefix {
        if p.len() > 12 {
            return Err(invalid(
                "bridge_prefix",
                format!("{p:?} is longer than 12 characters"),
            ));
        }
        s.bridge_prefix = bridge_name("bridge_prefix", p)?;
    }
    for (key, value, slot) in [
        (
            "default_subnet",
            &file.default_subnet,
            &mut s.default_subnet,
        ),
        ("network_pool", &file.network_pool, &mut s.pool),
    ] {
        if let Some(v) = value {
            *slot = v
                .parse()
                .map_err(|_| invalid(key, format!("{v:?} is not an IPv4 CIDR subnet")))?;
        }
    }
    if let Some(ip) = &file.port_host_ip {
        s.port_host_ip = ip
            .parse()
            .map_err(|_| invalid("port_host_ip", format!("{ip:?} is not an IP address")))?;
    }
    if let Some(dirs) = &file.cni_plugin_dirs {
        if dirs.is_empty() || dirs.iter().any(|d| !d.is_absolute()) {
            return Err(invalid(
                "cni_plugin_dirs",
                "must list absolute directories".to_owned(),
            ));
        }
        s.plugin_dirs = dirs.clone();
    }
    Ok(s)
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
            // The packaged place, read when it is there (the unit needs no flag).
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        let network = network_settings(&file)?;
        let shim = match args.shim.or(file.shim) {
            Some(p) => p,
            None => default_shim(std::env::current_exe().map_err(ConfigError::CurrentExe)?),
        };
        let config = Config {
            network,
            socket: args
                .socket
                .or(file.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            docker_socket: file.docker_socket,
            metrics_address: file.metrics_address,
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
            exits_max_per_container: args
                .exits_max_per_container
                .or(file.exits_max_per_container)
                .unwrap_or(crate::store::DEFAULT_EXITS_MAX_PER_CONTAINER),
            max_json_body: args
                .max_json_body
                .or(file.max_json_body)
                .unwrap_or(crate::api::DEFAULT_MAX_JSON_BODY),
            max_image_body: args
                .max_image_body
                .or(file.max_image_body)
                .unwrap_or(crate::api::DEFAULT_MAX_IMAGE_BODY),
            max_archive_member: args
                .max_archive_member
                .or(file.max_archive_member)
                .unwrap_or(crate::image::DEFAULT_MAX_ARCHIVE_MEMBER),
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
        for (key, value) in [
            ("max_json_body", self.max_json_body),
            ("max_image_body", self.max_image_body),
            ("max_archive_member", self.max_archive_member),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1 byte".to_owned(),
                });
            }
        }
        if self.exits_max_per_container == 0 {
            return Err(ConfigError::Invalid {
                key: "exits_max_per_container",
                reason: "must be at least 1 (the last exit is part of inspect)".to_owned(),
            });
        }
        if let Some(given) = &self.cgroup_parent {
            Self::validate_cgroup_parent(given)?;
        }
        for (key, path) in [
            ("root", &self.root),
            ("state_dir", &self.state_dir),
            ("socket", &self.socket),
        ]
        .into_iter()
        .chain(self.docker_socket.as_ref().map(|p| ("docker_socket", p)))
        {
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

    /// The configuration as the config file's TOML: every key with its effective
    /// value (`boxd --print-config`), so that what a daemon would run with can be read,
    /// kept, and given back as a file.
    pub fn to_toml(&self) -> String {
        use toml::Value;
        let path = |p: &Path| Value::String(p.display().to_string());
        let int = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
        let mut t = toml::Table::new();
        t.insert("socket".into(), path(&self.socket));
        if let Some(p) = &self.docker_socket {
            t.insert("docker_socket".into(), path(p));
        }
        if let Some(a) = &self.metrics_address {
            t.insert("metrics_address".into(), Value::String(a.to_string()));
        }
        t.insert("root".into(), path(&self.root));
        t.insert("state_dir".into(), path(&self.state_dir));
        if let Some(c) = &self.cgroup_parent {
            t.insert("cgroup_parent".into(), Value::String(c.clone()));
        }
        t.insert("shim".into(), path(&self.shim));
        if let Some(l) = &self.log_level {
            t.insert("log_level".into(), Value::String(l.clone()));
        }
        t.insert("events_max".into(), int(self.events_max));
        t.insert(
            "events_max_days".into(),
            int(self.events_max_age.as_secs() / (24 * 3600)),
        );
        t.insert(
            "exits_max_per_container".into(),
            int(self.exits_max_per_container),
        );
        t.insert("max_json_body".into(), int(self.max_json_body));
        t.insert("max_image_body".into(), int(self.max_image_body));
        t.insert("max_archive_member".into(), int(self.max_archive_member));
        t.insert("log_max_bytes".into(), int(self.log_max_bytes));
        t.insert("log_max_files".into(), int(self.log_max_files.into()));
        let n = &self.network;
        t.insert(
            "default_network_mode".into(),
            Value::String(n.default_mode.clone()),
        );
        t.insert(
            "default_bridge".into(),
            Value::String(n.default_bridge.clone()),
        );
        t.insert(
            "default_subnet".into(),
            Value::String(n.default_subnet.to_string()),
        );
        t.insert("network_pool".into(), Value::String(n.pool.to_string()));
        t.insert(
            "bridge_prefix".into(),
            Value::String(n.bridge_prefix.clone()),
        );
        t.insert(
            "port_host_ip".into(),
            Value::String(n.port_host_ip.to_string()),
        );
        t.insert(
            "cni_plugin_dirs".into(),
            Value::Array(n.plugin_dirs.iter().map(|p| path(p)).collect()),
        );
        let mut userns = toml::Table::new();
        userns.insert("uid_start".into(), int(self.userns_range.uid_start.into()));
        userns.insert("gid_start".into(), int(self.userns_range.gid_start.into()));
        userns.insert("slots".into(), int(self.userns_range.slots.into()));
        t.insert("userns_range".into(), Value::Table(userns));
        toml::to_string(&t).expect("a TOML table serialises")
    }

    /// How shims bound container logs (`None` when `log_max_bytes` is 0).
    pub fn log_rotation(&self) -> Option<boxd_shim::protocol::LogRotation> {
        (self.log_max_bytes > 0).then_some(boxd_shim::protocol::LogRotation {
            max_bytes: self.log_max_bytes,
            max_files: self.log_max_files,
        })
    }

    /// The API's request body limits.
    pub fn limits(&self) -> crate::api::Limits {
        crate::api::Limits {
            json_body: self.max_json_body,
            image_body: self.max_image_body,
        }
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

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        Args::parse(args.iter().copied())
    }

    fn run_args(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Command::Run(a)) => *a,
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn every_flag_parses_in_both_spellings() {
        let want = Args {
            socket: Some("/s/boxd.sock".into()),
            root: Some("/r".into()),
            state_dir: Some("/st".into()),
            cgroup_parent: Some("boxd/test".into()),
            config: Some("/etc/boxd.toml".into()),
            shim: Some("/bin/shim".into()),
            log_level: Some("boxd=trace".into()),
            events_max: Some(5),
            events_max_days: Some(2),
            exits_max_per_container: Some(7),
            max_json_body: Some(8),
            max_image_body: Some(9),
            max_archive_member: Some(10),
            log_max_bytes: Some(0),
            log_max_files: Some(4),
        };
        let pairs = [
            ("--socket", "/s/boxd.sock"),
            ("--root", "/r"),
            ("--state-dir", "/st"),
            ("--cgroup-parent", "boxd/test"),
            ("--config", "/etc/boxd.toml"),
            ("--shim", "/bin/shim"),
            ("--log-level", "boxd=trace"),
            ("--events-max", "5"),
            ("--events-max-days", "2"),
            ("--exits-max", "7"),
            ("--max-json-body", "8"),
            ("--max-image-body", "9"),
            ("--max-archive-member", "10"),
            ("--log-max-bytes", "0"),
            ("--log-max-files", "4"),
        ];
        let separate: Vec<&str> = pairs.iter().flat_map(|(f, v)| [*f, *v]).collect();
        assert_eq!(run_args(&separate), want);
        let joined: Vec<String> = pairs.iter().map(|(f, v)| format!("{f}={v}")).collect();
        let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
        assert_eq!(run_args(&joined), want);

        assert_eq!(run_args(&[]), Args::default());
        // The last of a repeated flag counts; a value may start with a dash.
        let a = run_args(&["--root", "/a", "--root=/b", "--log-level", "-x"]);
        assert_eq!(a.root, Some("/b".into()));
        assert_eq!(a.log_level.as_deref(), Some("-x"));
    }

    #[test]
    fn help_and_version() {
        for flag in ["--help", "-h"] {
            assert_eq!(parse(&[flag]).unwrap(), Command::Help);
            assert_eq!(parse(&["--root", "/r", flag]).unwrap(), Command::Help);
        }
        for flag in ["--version", "-V"] {
            assert_eq!(parse(&[flag]).unwrap(), Command::Version);
        }
        assert_eq!(VERSION, format!("boxd {}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn help_names_every_flag_and_default() {
        let mut flags: Vec<&str> = HELP
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--"))
            .map(|l| l.split([' ', '\n']).next().unwrap())
            .collect();
        flags.sort_unstable();
        let mut want = vec![
            "cgroup-parent",
            "config",
            "events-max",
            "events-max-days",
            "exits-max",
            "log-level",
            "log-max-bytes",
            "log-max-files",
            "max-archive-member",
            "max-image-body",
            "max-json-body",
            "print-config",
            "root",
            "shim",
            "socket",
            "state-dir",
        ];
        want.sort_unstable();
        assert_eq!(flags, want);
        // Each listed flag parses, so the help and the parser cannot drift apart
        // (`--print-config`, which takes no value, has its own test).
        for flag in want.iter().filter(|f| **f != "print-config") {
            assert!(
                matches!(parse(&[&format!("--{flag}"), "1"]), Ok(Command::Run(_))),
                "--{flag}"
            );
        }
        for default in [
            DEFAULT_SOCKET.to_owned(),
            DEFAULT_ROOT.to_owned(),
            DEFAULT_STATE_DIR.to_owned(),
            crate::runtime::DEFAULT_EVENTS_MAX.to_string(),
            (crate::runtime::DEFAULT_EVENTS_MAX_AGE.as_secs() / 86400).to_string(),
            crate::runtime::logs::DEFAULT_LOG_MAX_BYTES.to_string(),
            crate::runtime::logs::DEFAULT_LOG_MAX_FILES.to_string(),
        ] {
            assert!(HELP.contains(&format!("[default: {default}]")), "{default}");
        }
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        let err = |args: &[&str]| crate::error_chain(&parse(args).unwrap_err());
        assert_eq!(err(&["--bogus"]), "invalid option '--bogus'");
        assert_eq!(err(&["-x"]), "invalid option '-x'");
        assert_eq!(err(&["serve"]), "unexpected argument \"serve\"");
        assert_eq!(err(&["--root"]), "missing argument for option '--root'");
        assert_eq!(
            err(&["--events-max", "lots"]),
            "invalid value \"lots\" for --events-max: invalid digit found in string"
        );
        assert!(err(&["--log-max-files=4294967296"])
            .starts_with("invalid value \"4294967296\" for --log-max-files"),);
        assert!(err(&["--events-max=-1"]).starts_with("invalid value \"-1\" for --events-max"));
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(
            &file,
            "root = \"/srv/boxd\"\ncgroup_parent = \"fromfile\"\nevents_max = 7\n\
             log_max_files = 9\n",
        )
        .unwrap();
        // Through the command line as `boxd` gets it, flags before and after --config.
        let args = run_args(&[
            "--events-max=8",
            "--config",
            file.to_str().unwrap(),
            "--cgroup-parent",
            "fromflag",
            "--shim=/bin/true",
        ]);
        let c = Config::load(args).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv/boxd"));
        assert_eq!(c.cgroup_parent.as_deref(), Some("fromflag"));
        assert_eq!(c.events_max, 8);
        assert_eq!(c.log_max_files, 9);
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
    fn exits_kept_per_container_default_file_key_flag_and_zero() {
        let shim = || Some(PathBuf::from("/bin/true"));
        let c = Config::load(Args {
            shim: shim(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.exits_max_per_container, 100);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(&file, "exits_max_per_container = 7\n").unwrap();
        let from_file = Config::load(Args {
            config: Some(file.clone()),
            shim: shim(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.exits_max_per_container, 7);
        let flag = Config::load(Args {
            config: Some(file),
            shim: shim(),
            exits_max_per_container: Some(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(flag.exits_max_per_container, 3);
        assert!(matches!(
            Config::load(Args {
                shim: shim(),
                exits_max_per_container: Some(0),
                ..Default::default()
            }),
            Err(ConfigError::Invalid {
                key: "exits_max_per_container",
                ..
            })
        ));
        let parsed = run_args(&["--exits-max", "9"]);
        assert_eq!(parsed.exits_max_per_container, Some(9));
    }

    #[test]
    fn size_limits_default_file_keys_flags_and_zero() {
        let shim = || Some(PathBuf::from("/bin/true"));
        let c = Config::load(Args {
            shim: shim(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.limits(), crate::api::Limits::default());
        assert_eq!(c.limits().json_body, 1 << 20);
        assert_eq!(c.max_archive_member, 16 << 20);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("boxd.toml");
        std::fs::write(
            &file,
            "max_json_body = 10\nmax_image_body = 20\nmax_archive_member = 30\n",
        )
        .unwrap();
        let args = run_args(&[
            "--config",
            file.to_str().unwrap(),
            "--shim",
            "/bin/true",
            "--max-image-body",
            "21",
        ]);
        let c = Config::load(args).unwrap();
        assert_eq!(
            (c.max_json_body, c.max_image_body, c.max_archive_member),
            (10, 21, 30)
        );
        assert!(matches!(
            Config::load(Args {
                shim: shim(),
                max_json_body: Some(0),
                ..Default::default()
            }),
            Err(ConfigError::Invalid {
                key: "max_json_body",
                ..
            })
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

    #[test]
    fn the_printed_config_is_a_config_file_that_gives_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let first = Config::load(Args {
            config: Some(dir.path().join("missing-is-an-error.toml")),
            ..Default::default()
        });
        assert!(first.is_err(), "a named file that is missing is an error");
        let file = dir.path().join("boxd.toml");
        std::fs::write(
            &file,
            "root = \"/srv/boxd\"\nlog_max_files = 5\ndocker_socket = \"/run/d.sock\"\n\
             metrics_address = \"127.0.0.1:9323\"\ndefault_network_mode = \"none\"\n",
        )
        .unwrap();
        let args = Args {
            config: Some(file.clone()),
            shim: Some("/usr/lib/boxd/boxd-shim".into()),
            ..Default::default()
        };
        let config = Config::load(args).unwrap();
        let printed = config.to_toml();
        assert!(printed.contains("root = \"/srv/boxd\""), "{printed}");
        assert!(printed.contains("[userns_range]"), "{printed}");
        std::fs::write(&file, &printed).unwrap();
        let again = Config::load(Args {
            config: Some(file),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(again, config, "{printed}");
    }

    #[test]
    fn print_config_is_a_command_of_its_own() {
        match Args::parse(["--root", "/x", "--print-config"]) {
            Ok(Command::PrintConfig(a)) => assert_eq!(a.root, Some("/x".into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_documented_sample_is_a_valid_file_of_the_defaults() {
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/boxd.toml");
        let documented = Config::load(Args {
            config: Some(sample.into()),
            shim: Some("/x/boxd-shim".into()),
            ..Default::default()
        })
        .unwrap();
        let empty = tempfile::NamedTempFile::new().unwrap();
        let defaults = Config::load(Args {
            config: Some(empty.path().into()),
            shim: Some("/x/boxd-shim".into()),
            ..Default::default()
        })
        .unwrap();
        // The userns range's default may come from this host's /etc/subuid.
        assert_eq!(
            Config {
                userns_range: defaults.userns_range,
                ..documented
            },
            defaults,
            "docs/boxd.toml must list the defaults"
        );
    }
}
