//! What the daemon and a shim say to each other, and the files they share.
//!
//! 1. The daemon creates the container's cgroups, writes an OCI `config.json` into the
//!    bundle dir and a [`ShimConfig`] (`shim.json`) into the state dir, then runs
//!    `boxd shim --config <state_dir>/shim.json` (no `pre_exec`).
//! 2. That process forks the long-lived shim (new session, re-parented away from the
//!    daemon) and stays only until the container has exec'd or failed; it prints one
//!    [`StartReport`] as a JSON line on stdout and exits 0 (started) or 1 (failed).
//!    Nothing of the shim keeps the daemon's stdout/stderr pipes open afterwards.
//! 3. The shim writes `shim.pid` and `container.pid` into the state dir, listens on
//!    `control.sock` there ([`ControlRequest`] / [`ControlResponse`], one JSON line
//!    each way per connection), copies the app's stdout/stderr into the log file as
//!    [`LogRecord`] JSON lines, and on the app's exit writes [`ExitRecord`] atomically
//!    to `exit.json` (temp file, fsync, rename) *before* answering waiters, then exits.
//!
//! The state dir is on tmpfs (`/run`), so after a reboot it is gone; the daemon's
//! reconcile treats "no shim, no exit record" as a container that died with the host.
//!
//! # Versions
//!
//! Upgrading boxd leaves containers running under the shims of the old release, so a
//! daemon must talk to shims older than itself. The control protocol has a version:
//!
//! - **1**: the first protocol. Nothing carries a version: requests and answers are
//!   the bare [`ControlRequest`] / [`ControlResponse`], `shim.json` has no `protocol`,
//!   the state dir has no [`files::PROTOCOL`] file, and `Wait` gets one answer, at the
//!   exit.
//! - **2** ([`PROTOCOL_VERSION`]): each request line is a [`Request`] (the request plus
//!   `"version"`), each answer a [`Response`] (the answer plus the `"version"` it is
//!   in); a `Wait` is acknowledged at once with [`ControlResponse::Waiting`], so the
//!   daemon can put a deadline on reaching the shim while the exit itself is awaited
//!   without one; the shim records its version in [`files::PROTOCOL`].
//!
//! The compatibility rule:
//!
//! 1. The daemon speaks the current version and the previous one, never older ones.
//!    It writes the version it speaks into `shim.json` ([`ShimConfig::protocol`]).
//! 2. A shim speaks the lower of that and its own version, and records it in
//!    [`files::PROTOCOL`] before it binds the control socket; it never changes during
//!    the shim's life. No file means version 1. So a restarted (upgraded) daemon
//!    learns from the state dir what each running shim speaks, and talks to it in
//!    that version ([`daemon_speaks`]).
//! 3. A shim answers each request in the version the request states (a missing
//!    `version` is 1), for any version up to its own, and refuses a higher one with
//!    [`ControlResponse::Error`]. Unknown fields are ignored on both sides (no
//!    `deny_unknown_fields` anywhere in this module), so a field added in a version
//!    is invisible to a peer of the previous one.
//! 4. A change an older peer would misread (a new answer to an old request, a changed
//!    meaning) needs a new version; a new optional field with a serde default does not.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The control protocol this build speaks (see the module docs for the rule).
pub const PROTOCOL_VERSION: u32 = 2;

/// The version of peers from before versions existed: nothing states one.
pub const UNVERSIONED: u32 = 1;

/// The oldest version a daemon of this build talks to: the previous one.
pub const OLDEST_SPOKEN: u32 = PROTOCOL_VERSION - 1;

fn unversioned() -> u32 {
    UNVERSIONED
}

fn is_unversioned(v: &u32) -> bool {
    *v == UNVERSIONED
}

/// The version a daemon of this build uses with a shim that recorded `recorded`, or
/// `None` if it is too old to talk to (rule 1 of the module docs). A shim newer than
/// the daemon (a downgrade) speaks the daemon's version too (rule 3).
pub fn daemon_speaks(recorded: u32) -> Option<u32> {
    let v = recorded.min(PROTOCOL_VERSION);
    (v >= OLDEST_SPOKEN).then_some(v)
}

/// The version a shim whose own is `own` speaks when `shim.json` states `daemon`
/// (rule 2): the lower of the two.
pub fn shim_speaks(daemon: u32, own: u32) -> u32 {
    daemon.min(own).max(UNVERSIONED)
}

/// File names inside a container's state dir.
pub mod files {
    /// The [`super::ShimConfig`] the daemon wrote.
    pub const SHIM_CONFIG: &str = "shim.json";
    /// `config.json`'s seccomp filter, compiled by the daemon (raw `sock_filter`s).
    pub const SECCOMP_BPF: &str = "seccomp.bpf";
    /// Pid of the long-lived shim, decimal, written once it runs.
    pub const SHIM_PID: &str = "shim.pid";
    /// Host pid of the container's first process, decimal.
    pub const CONTAINER_PID: &str = "container.pid";
    /// The control protocol version the shim speaks, decimal, written before the
    /// socket is bound; absent for shims of version 1.
    pub const PROTOCOL: &str = "protocol";
    /// The control socket.
    pub const CONTROL_SOCKET: &str = "control.sock";
    /// The [`super::ExitRecord`], written atomically once the app has exited.
    pub const EXIT_RECORD: &str = "exit.json";
    /// The shim's own diagnostics (its stderr after it detached).
    pub const SHIM_LOG: &str = "shim.log";
    /// The [`super::StdioConfig`] the daemon wrote; absent means no terminal and
    /// stdin from /dev/null.
    pub const STDIO_CONFIG: &str = "stdio.json";
}

/// Everything the shim needs besides the OCI bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// Container id (used in messages only).
    pub id: String,
    /// OCI bundle dir: holds `config.json`; its `root.path` is where the rootfs is
    /// mounted (inside the container's own mount namespace, so it never leaks on the
    /// host).
    pub bundle: PathBuf,
    /// Runtime state dir (`/run/boxd/containers/<id>`): pid files, socket, exit record.
    pub state_dir: PathBuf,
    /// The container log file (appended to, never truncated).
    pub log_path: PathBuf,
    /// The overlay that becomes the root filesystem.
    pub rootfs: Overlay,
    /// Files the app's process writes `0` (itself) into before anything else: v1
    /// `tasks` (one per hierarchy), v2 `cgroup.procs`. The app never runs uncapped.
    /// (`cgroup_procs`: the name written by earlier daemons.)
    #[serde(alias = "cgroup_procs")]
    pub cgroup_join: Vec<PathBuf>,
    /// Where the kernel counts OOM kills for this container's cgroup.
    pub oom_counter: Option<OomCounter>,
    /// Size-based rotation of `log_path`; `None`: the log grows without bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotation: Option<LogRotation>,
    /// A file holding `config.json`'s `linux.seccomp` already compiled
    /// (`seccomp::compile`); `None`: the shim compiles it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_bpf: Option<PathBuf>,
    /// The control protocol version the daemon speaks (absent: a daemon of version 1).
    #[serde(default = "unversioned")]
    pub protocol: u32,
}

/// How the shim bounds the container log: before a record would take the file past
/// `max_bytes`, `container.log` becomes `container.log.1` (`.1` becomes `.2`, ...), and
/// at most `max_files` files (the current one included) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    /// Largest size of one file (a single record larger than this still goes whole).
    pub max_bytes: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
}

/// The app's stdio (`stdio.json`, next to `shim.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioConfig {
    /// Give the app a terminal (a pty of the container's devpts) as stdin, stdout and
    /// stderr, and as its controlling terminal.
    #[serde(default)]
    pub terminal: bool,
    /// Keep the app's stdin open for attachers (a pipe, or the terminal); otherwise
    /// it is /dev/null.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the app's stdin when the attacher that holds it closes its side.
    #[serde(default)]
    pub stdin_once: bool,
}

/// An overlayfs made of read-only layers and a writable upper dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlay {
    /// Lower dirs, topmost first (overlayfs `lowerdir=` order).
    pub lower: Vec<PathBuf>,
    /// Per-container writable layer.
    pub upper: PathBuf,
    /// overlayfs work dir (same filesystem as `upper`).
    pub work: PathBuf,
    /// A filesystem image that holds `upper` and `work` (both under its
    /// `mount_point`), so the writable layer cannot outgrow the image; `None`: they
    /// are plain dirs on the host's filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskImage>,
}

/// A per-container ext4 image file, mounted by the shim through a loop device inside
/// the container's mount namespace only (see `mounts::mount_disk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskImage {
    /// The image file (made by the daemon with `mkfs.ext4`).
    pub image: PathBuf,
    /// An empty host dir the image is mounted on; `upper` and `work` lie below it and
    /// are made at the first start.
    pub mount_point: PathBuf,
}

/// A `key value` counter file and the key to read (v1 `memory.oom_control` /
/// `oom_kill`, v2 `memory.events` / `oom_kill`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomCounter {
    /// The file to read.
    pub path: PathBuf,
    /// The key whose value counts OOM kills.
    pub key: String,
}

/// The one line the starting `boxd shim` process prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StartReport {
    /// The app exec'd.
    Started {
        /// Pid of the long-lived shim.
        shim_pid: i32,
        /// Host pid of the app.
        pid: i32,
    },
    /// Nothing runs; everything the shim made was undone.
    Failed {
        /// Which step failed (`config`, `clone`, `cgroup`, `mount`, `pivot_root`,
        /// `user`, `exec`, ...).
        stage: String,
        /// What went wrong, the whole chain.
        message: String,
    },
}

/// A request line from version 2 on: the request and the version it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The version of the request (absent, and not written, for version 1).
    #[serde(default = "unversioned", skip_serializing_if = "is_unversioned")]
    pub version: u32,
    /// The request.
    #[serde(flatten)]
    pub request: ControlRequest,
}

/// An answer line from version 2 on: the answer and the version it is in (that of the
/// request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The version of the answer (absent, and not written, for version 1).
    #[serde(default = "unversioned", skip_serializing_if = "is_unversioned")]
    pub version: u32,
    /// The answer.
    #[serde(flatten)]
    pub response: ControlResponse,
}

impl ControlRequest {
    /// The request's name, for messages.
    pub fn op(&self) -> &'static str {
        match self {
            ControlRequest::Kill { .. } => "kill",
            ControlRequest::Wait => "wait",
            ControlRequest::State => "state",
            ControlRequest::Attach { .. } => "attach",
            ControlRequest::Resize { .. } => "resize",
        }
    }
}

/// One request on the control socket (a JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Send a signal to the app's first process.
    Kill {
        /// Signal number.
        signal: i32,
    },
    /// Answer once the app has exited and `exit.json` is written.
    Wait,
    /// Answer at once with the pids.
    State,
    /// Attach to the app's stdio: answered with [`ControlResponse::Attached`], after
    /// which the connection carries [`exec_frame`]s both ways (see `attach` in the
    /// shim); closing it detaches.
    Attach {
        /// Send stdin frames to the app (one attacher at a time).
        #[serde(default)]
        stdin: bool,
        /// Receive the app's stdout (the terminal's output with a terminal).
        #[serde(default)]
        stdout: bool,
        /// Receive the app's stderr.
        #[serde(default)]
        stderr: bool,
    },
    /// Set the size of the app's terminal.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// One answer on the control socket (a JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ControlResponse {
    /// The request was carried out.
    Ok,
    /// Answer to `State`.
    State {
        /// Pid of the shim.
        shim_pid: i32,
        /// Host pid of the app.
        pid: i32,
        /// Whether the app still runs.
        running: bool,
    },
    /// First answer to `Wait` from version 2 on, at once: the shim is waiting; the
    /// `Exited` (or `Error`) follows on the same connection at the exit.
    Waiting,
    /// Answer to `Wait`.
    Exited(ExitRecord),
    /// Answer to `Attach`: from the next byte on, frames.
    Attached {
        /// Length of the log file when the attacher was added: output before it is in
        /// the log, output after it comes as frames, so a reader of both misses nothing.
        log_offset: u64,
        /// Whether the app has a terminal (then output is one stream).
        terminal: bool,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// How the app ended; `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Host pid the app had.
    pub pid: i32,
    /// Exit status, or 128 + the signal number when a signal ended it.
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// OOM kills in the container's cgroup during this run (counter at exit minus
    /// counter at start); `None` when no counter was configured or readable.
    pub oom_kills: Option<u64>,
    /// When the app exec'd, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// When the shim reaped it, milliseconds since the Unix epoch.
    pub finished_at_ms: u64,
}

/// One line of the container log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// RFC 3339 time with nanoseconds, UTC (`2026-01-02T03:04:05.123456789Z`).
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The bytes read (a whole line with its `\n`, or a partial line), UTF-8 lossy.
    pub log: String,
}

/// `boxd shim exec <state_dir>`: run one more process in a running container.
///
/// The daemon runs the helper as an ordinary child and talks to it over its stdin and
/// stdout in [`exec_frame`]s: first an [`ExecSpec`] (so no secret from `env` shows in
/// a process list), then stdin bytes, stdin EOF and window sizes; the helper answers
/// with the process's output and [`ExecReport`]s (`started` or `failed`, then `exited`).
pub mod exec_frame {
    /// Bytes before each payload: kind, then the payload length as a big-endian u32.
    pub const HEADER_LEN: usize = 5;
    /// Largest payload accepted (a spec with a large environment still fits).
    pub const MAX_PAYLOAD: usize = 1 << 20;
    /// daemon -> helper: the [`super::ExecSpec`] JSON, once, first.
    pub const SPEC: u8 = 0;
    /// daemon -> helper: bytes for the process's stdin.
    pub const STDIN: u8 = 1;
    /// daemon -> helper: the client closed its side of stdin (empty payload).
    pub const STDIN_EOF: u8 = 2;
    /// daemon -> helper: terminal size, rows then columns as big-endian u16s.
    pub const RESIZE: u8 = 3;
    /// helper -> daemon: stdout bytes (or the terminal's output).
    pub const STDOUT: u8 = 1;
    /// helper -> daemon: stderr bytes.
    pub const STDERR: u8 = 2;
    /// helper -> daemon: an [`super::ExecReport`] JSON.
    pub const REPORT: u8 = 3;

    /// The header of a frame of `kind` carrying `len` bytes.
    pub fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
        let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
        [kind, n[0], n[1], n[2], n[3]]
    }

    /// `(kind, payload length)` of a header.
    pub fn parse_header(h: [u8; HEADER_LEN]) -> (u8, usize) {
        (h[0], u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize)
    }
}

/// What to run with `boxd shim exec`; the credentials are resolved by the daemon
/// (from the image's `/etc/passwd`), everything else the process gets (namespaces,
/// cgroups, capabilities, no_new_privs, rlimits, seccomp) comes from the container's
/// own bundle, so an exec'd process is never more privileged than the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// argv (`argv[0]` is looked up in `PATH` of `env`).
    pub args: Vec<String>,
    /// The full environment.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: PathBuf,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Give the process a terminal (a pty of the container's devpts).
    #[serde(default)]
    pub tty: bool,
    /// Keep stdin open (otherwise it is /dev/null).
    #[serde(default)]
    pub stdin: bool,
    /// Initial terminal size (rows, columns).
    #[serde(default)]
    pub size: Option<(u16, u16)>,
}

/// What the exec helper reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExecReport {
    /// The process exec'd.
    Started {
        /// Its host pid.
        pid: i32,
    },
    /// Nothing runs.
    Failed {
        /// Which step failed (`exec`, `cwd`, `user`, `namespace`, `cgroup`, ...).
        stage: String,
        /// What went wrong, the whole chain.
        message: String,
    },
    /// The process ended and its output is drained.
    Exited {
        /// Exit status, or 128 + the signal number.
        exit_code: i32,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request enum as version 1 defined it: what a shim of the previous release
    /// parses requests with.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    enum V1Request {
        Kill { signal: i32 },
        Wait,
        State,
    }

    #[test]
    fn requests_of_version_1_are_the_bare_request() {
        let r = ControlRequest::Kill { signal: 15 };
        let v1 = Request {
            version: UNVERSIONED,
            request: r.clone(),
        };
        assert_eq!(
            serde_json::to_string(&v1).unwrap(),
            serde_json::to_string(&r).unwrap()
        );
        let v2 = Request {
            version: 2,
            request: r,
        };
        assert_eq!(
            serde_json::to_string(&v2).unwrap(),
            r#"{"version":2,"op":"kill","signal":15}"#
        );
    }

    /// A version-1 shim ignores the `version` a newer request carries (serde ignores
    /// unknown fields), so even a daemon that got the version wrong is understood.
    #[test]
    fn a_version_1_shim_ignores_the_version_field() {
        for (line, want) in [
            (
                r#"{"version":2,"op":"kill","signal":9}"#,
                V1Request::Kill { signal: 9 },
            ),
            (r#"{"version":2,"op":"wait"}"#, V1Request::Wait),
            (r#"{"op":"state","version":2}"#, V1Request::State),
        ] {
            assert_eq!(serde_json::from_str::<V1Request>(line).unwrap(), want);
        }
    }

    #[test]
    fn answers_carry_their_version_from_2_on() {
        let exited = ControlResponse::Exited(ExitRecord {
            pid: 5,
            exit_code: 137,
            signal: Some(9),
            oom_kills: Some(0),
            started_at_ms: 1,
            finished_at_ms: 2,
        });
        let text = serde_json::to_string(&Response {
            version: 2,
            response: exited.clone(),
        })
        .unwrap();
        assert!(
            text.starts_with(r#"{"version":2,"status":"exited","pid":5"#),
            "{text}"
        );
        let back: Response = serde_json::from_str(&text).unwrap();
        assert_eq!((back.version, back.response), (2, exited.clone()));
        // A version-1 answer (no field) reads as version 1.
        let bare = serde_json::to_string(&exited).unwrap();
        let back: Response = serde_json::from_str(&bare).unwrap();
        assert_eq!((back.version, back.response), (1, exited));
    }

    /// `shim.json` of a version-1 daemon (no `protocol`) is version 1; fields of a
    /// later daemon are ignored.
    #[test]
    fn shim_config_protocol_defaults_to_1_and_ignores_unknown_fields() {
        let json = serde_json::json!({
            "id": "c",
            "bundle": "/b",
            "state_dir": "/s",
            "log_path": "/l",
            "rootfs": {"lower": [], "upper": "/u", "work": "/w"},
            "cgroup_join": [],
            "oom_counter": null,
        });
        let c: ShimConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(c.protocol, 1);
        let mut later = json;
        later["protocol"] = 3.into();
        later["something_new"] = true.into();
        let c: ShimConfig = serde_json::from_value(later).unwrap();
        assert_eq!(c.protocol, 3);
    }

    #[test]
    fn negotiation() {
        assert_eq!(PROTOCOL_VERSION, 2);
        // Daemon side: the previous and the current version, ours for newer shims.
        assert_eq!(daemon_speaks(1), Some(1));
        assert_eq!(daemon_speaks(2), Some(2));
        assert_eq!(daemon_speaks(3), Some(2));
        assert_eq!(daemon_speaks(0), None);
        // Shim side: the lower of the daemon's and its own.
        assert_eq!(shim_speaks(2, 2), 2);
        assert_eq!(shim_speaks(1, 2), 1);
        assert_eq!(shim_speaks(3, 2), 2);
        assert_eq!(shim_speaks(2, 1), 1);
    }
}
