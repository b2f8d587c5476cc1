//! Test harness: a real boxd on a temporary socket, state dir and database.
//!
//! [`TestDaemon::start`] makes `/tmp/bxd-<random>/{r,s,boxd.sock,boxd.log}` (root dir,
//! state dir, socket, log), gives the daemon a cgroup parent of its own
//! (`boxd-test-<random>`) and waits until
//! `GET /v1/version` answers. Dropping it tears down everything the daemon or its
//! containers could have left: the daemon, every shim and container process, the test's
//! cgroups in every hierarchy, mounts under the temp dir, and the temp dir itself. That
//! runs even when the test panics, so a failing test never leaks into the next one.
//!
//! Tests that need root start with [`require_root!`] (from `boxd-testutil`); see
//! `CONVENTIONS.md` (C10).
//!
//! Environment: `BOXD_TEST_REQUIRE_ROOT=1` turns every skip into a failure (CI);
//! `BOXD_TEST_FIXTURES` points at the test images (default `<workspace>/target/fixtures`,
//! built by `tests/images/build-test-images.sh`); `BOXD_TEST_IMAGE_SCRIPTS` at the image
//! and registry scripts (default `<workspace>/tests/images`);
//! `BOXD_TEST_LOG` is the daemon's `--log-level` (default `info,boxd=debug`).
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::net::UnixStream;

/// How long the daemon may take to answer its first `GET /v1/version`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one API request may take before the test fails instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

// The one root check and skip of the workspace (CONVENTIONS C10), and the shared
// waiting helpers; see `boxd-testutil`.
pub use boxd_testutil::{
    require, require_root, root, skip, skipping_forbidden, tool, wait_for, wait_for_async,
    wait_for_value, wait_for_value_async,
};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The repository's image scripts (`build-test-images.sh`, `start-registry.sh`,
/// `stop-registry.sh`; see `tests/images/README.md`): `$BOXD_TEST_IMAGE_SCRIPTS`, or
/// `<workspace>/tests/images`.
pub fn image_scripts() -> PathBuf {
    std::env::var_os("BOXD_TEST_IMAGE_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/images"))
}

/// The test images: `$BOXD_TEST_FIXTURES`, or `<workspace>/target/fixtures`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("BOXD_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/fixtures"));
    if !dir.join("busybox-rootfs.tar.gz").is_file() {
        panic!(
            "test images missing in {}: build them with `tests/images/build-test-images.sh target/fixtures` \
             (from the workspace root), or point BOXD_TEST_FIXTURES at them",
            dir.display()
        );
    }
    dir
}

/// Users of each running [`Registry`], by data directory: the first one in starts it,
/// the last one out stops it, so the tests of one file share one registry.
static REGISTRIES: Mutex<Vec<(PathBuf, Arc<Mutex<usize>>)>> = Mutex::new(Vec::new());

/// A local registry on `127.0.0.1:PORT` from `start-registry.sh` (which builds and
/// pushes the test images: `test/busybox`, `test/layered`, `test/multiarch`,
/// `test/evil`; see `tests/images/README.md`), stopped by `stop-registry.sh` when its
/// last user drops, even when a test fails.
pub struct Registry {
    scripts: PathBuf,
    data: PathBuf,
    port: u16,
    users: Arc<Mutex<usize>>,
    pushed: Value,
    digests: Value,
}

impl Registry {
    /// The registry with data in `target/<name>` on `port` (one port per test file, so
    /// the files run in parallel), started by [`image_scripts`].
    pub fn start(name: &str, port: u16) -> Registry {
        Registry::start_from(
            &image_scripts(),
            &workspace_root().join("target").join(name),
            port,
        )
    }

    /// The registry with data in `data` on `port`, started by the scripts in `scripts`.
    pub fn start_from(scripts: &Path, data: &Path, port: u16) -> Registry {
        let users = {
            let mut all = REGISTRIES.lock().unwrap_or_else(|e| e.into_inner());
            match all.iter().find(|(d, _)| d == data) {
                Some((_, users)) => users.clone(),
                None => {
                    let users = Arc::new(Mutex::new(0));
                    all.push((data.to_path_buf(), users.clone()));
                    users
                }
            }
        };
        // Held while starting, so a second user waits for the first one's start.
        let mut count = users.lock().unwrap_or_else(|e| e.into_inner());
        if *count == 0 {
            let out = Command::new(scripts.join("start-registry.sh"))
                .arg(data)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .output()
                .expect("run start-registry.sh");
            if !out.status.success() {
                // A failure after the registry came up leaves it running.
                stop_registry(scripts, data);
                panic!(
                    "start-registry.sh failed:\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        *count += 1;
        drop(count);
        // Counted from here: a failure below still stops the registry (on drop).
        let mut reg = Registry {
            scripts: scripts.to_path_buf(),
            data: data.to_path_buf(),
            port,
            users,
            pushed: Value::Null,
            digests: Value::Null,
        };
        reg.pushed = read_json(&data.join("pushed.json"));
        reg.digests = read_json(&data.join("images/digests.json"));
        reg
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT/<name>`.
    pub fn reference(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.port)
    }

    /// The manifest digest of `repo:tag` as pushed (`pushed.json`).
    pub fn digest_of(&self, repo_tag: &str) -> String {
        self.pushed["references"][repo_tag]["digest"]
            .as_str()
            .unwrap_or_else(|| panic!("pushed.json lacks {repo_tag}"))
            .to_owned()
    }

    /// `127.0.0.1:PORT/<repo>@<digest of repo:tag as pushed>`.
    pub fn by_digest(&self, repo: &str, tag: &str) -> String {
        format!(
            "{}@{}",
            self.reference(repo),
            self.digest_of(&format!("{repo}:{tag}"))
        )
    }

    /// The pushed images' `digests.json` (from `build-test-images.sh`).
    pub fn digests(&self) -> &Value {
        &self.digests
    }

    /// Its data directory (`registry.pid`, `pushed.json`, `images/`, ...).
    pub fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let mut count = self.users.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            stop_registry(&self.scripts, &self.data);
        }
    }
}

fn stop_registry(scripts: &Path, data: &Path) {
    let _ = Command::new(scripts.join("stop-registry.sh"))
        .arg(data)
        .stdin(Stdio::null())
        .status();
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The directory holding the workspace's binaries: the test executable lives in
/// `target/<profile>/deps/`, the binaries one level up.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a parent");
    if deps.file_name() == Some(OsStr::new("deps")) {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

fn workspace_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} not found: run `cargo build --workspace --bins` before the integration tests",
            path.display()
        );
    }
    path
}

/// `target/<profile>/boxd`.
pub fn boxd_bin() -> PathBuf {
    workspace_bin("boxd")
}

/// `target/<profile>/boxctl`.
pub fn boxctl_bin() -> PathBuf {
    workspace_bin("boxctl")
}

/// Run boxctl with `BOXD_SOCKET` pointing at the test daemon; (status, stdout, stderr).
pub async fn boxctl(d: &TestDaemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(boxctl_bin())
            .args(args)
            .env("BOXD_SOCKET", &d.socket)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("boxctl {args:?} did not finish within 60 s"))
    .expect("run boxctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A random lowercase hex string of 16 digits (std's `RandomState` is seeded randomly).
pub fn random_hex() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// The cgroup hierarchies mounted on this host: `(mount point, is_v2)`.
pub fn cgroup_mounts() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return out;
    };
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        let Some(mount_point) = left.split_whitespace().nth(4) else {
            continue;
        };
        match fstype {
            "cgroup" => out.push((PathBuf::from(unescape_mount(mount_point)), false)),
            "cgroup2" => out.push((PathBuf::from(unescape_mount(mount_point)), true)),
            _ => {}
        }
    }
    out
}

/// True on a pure cgroup v2 host.
pub fn cgroup_v2_unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points (in this mount namespace) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Whether a process exists and is not a zombie (a zombie whose parent never reaps it
/// holds no resources and counts as gone).
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised comm, which may itself hold spaces.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Wait until every pid is gone, at most `timeout`; returns the ones still alive.
pub fn wait_gone(pids: &[i32], timeout: Duration) -> Vec<i32> {
    let alive = || -> Vec<i32> { pids.iter().copied().filter(|p| process_alive(*p)).collect() };
    wait_for(timeout, || alive().is_empty());
    alive()
}

/// Pids of every process whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) && process_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

fn sigkill(pid: i32) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every directory at or below `dir`, children before their parent.
fn dirs_depth_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(dirs_depth_first(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// Kill every member of the cgroup tree at `dir` and remove it, children first.
/// Returns what could not be removed.
fn remove_cgroup_tree(dir: &Path, is_v2: bool) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tree = dirs_depth_first(dir);
        for d in &tree {
            // v2 (5.14+) kills a whole subtree in one write; harmless where absent.
            if is_v2 && d.join("cgroup.kill").exists() {
                let _ = fs::write(d.join("cgroup.kill"), "1");
            }
            // A frozen v1 group never lets its members die of SIGKILL.
            if d.join("freezer.state").exists() {
                let _ = fs::write(d.join("freezer.state"), "THAWED");
            }
            if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    sigkill(pid);
                }
            }
        }
        let mut left = Vec::new();
        for d in &tree {
            if fs::remove_dir(d).is_err() && d.exists() {
                left.push(d.clone());
            }
        }
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to stop the daemon in [`TestDaemon::stop_daemon`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// SIGTERM and wait for a clean exit (at most 10 s).
    Term,
    /// SIGKILL: a crash.
    Kill,
}

/// A boxd running on temporary dirs with a cgroup parent of its own.
pub struct TestDaemon {
    /// `/tmp/bxd-<random>`: everything of this daemon lives below it.
    pub dir: PathBuf,
    /// `--root`.
    pub root: PathBuf,
    /// `--state-dir`.
    pub state: PathBuf,
    /// `--socket`.
    pub socket: PathBuf,
    /// `--cgroup-parent` (also where the teardown looks for leftover groups).
    pub cgroup_parent: String,
    /// Whether `--cgroup-parent` is passed (off: the daemon picks its own default).
    pub pass_cgroup_parent: bool,
    /// The daemon's stderr (all runs, appended).
    pub log: PathBuf,
    /// More flags for every start of the daemon (e.g. `--log-max-bytes 0`).
    pub extra_args: Vec<String>,
    /// Bridges of this daemon's networks are named this plus a number (teardown
    /// removes every link and firewall rule that carries it).
    pub bridge_prefix: String,
    /// Containers get the default network unless they ask otherwise (off: `none`, so
    /// that tests of other things neither wait for CNI nor touch the host's network).
    pub networking: bool,
    /// More lines of the daemon's config file.
    pub config_lines: Vec<String>,
    child: Option<Child>,
    /// Pids of shims and containers seen while the test ran (for the teardown).
    seen_pids: Mutex<BTreeSet<i32>>,
}

impl TestDaemon {
    /// Make the dirs, start boxd and wait until it answers.
    pub async fn start() -> TestDaemon {
        let mut d = TestDaemon::prepare();
        // From here on, a panic runs Drop, which removes the dir again.
        d.spawn().await;
        d
    }

    /// Make the dirs of a daemon without starting it (for tests that start it in a
    /// particular way, with [`TestDaemon::spawn_with`]).
    pub fn prepare() -> TestDaemon {
        let (dir, suffix) = loop {
            // Short on purpose: `<state>/containers/<64-hex id>/control.sock` must fit in
            // a socket address (107 bytes, unix(7)), which leaves 18 for the state dir.
            let suffix = random_hex()[..6].to_string();
            let dir = PathBuf::from(format!("/tmp/bxd-{suffix}"));
            match fs::create_dir(&dir) {
                Ok(()) => break (dir, suffix),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", dir.display()),
            }
        };
        TestDaemon {
            root: dir.join("r"),
            state: dir.join("s"),
            socket: dir.join("boxd.sock"),
            log: dir.join("boxd.log"),
            cgroup_parent: format!("boxd-test-{suffix}"),
            pass_cgroup_parent: true,
            extra_args: Vec::new(),
            bridge_prefix: format!("bx{suffix}"),
            networking: false,
            config_lines: Vec::new(),
            dir,
            child: None,
            seen_pids: Mutex::new(BTreeSet::new()),
        }
    }

    /// Start the daemon process on this daemon's dirs and wait for readiness.
    pub async fn spawn(&mut self) {
        self.spawn_with(&[], &[]).await;
    }

    /// As [`TestDaemon::spawn`], with extra environment (e.g. `BOXD_CRASH_AT`,
    /// `NOTIFY_SOCKET`) and a command put in front of boxd (e.g.
    /// `systemd-socket-activate -l SOCKET`).
    pub async fn spawn_with(
        &mut self,
        prefix: &[&std::ffi::OsStr],
        envs: &[(&str, &std::ffi::OsStr)],
    ) {
        self.start_process(prefix, envs);
        self.wait_ready().await;
    }

    /// Starts the daemon process without waiting for it (for crash tests: the daemon may
    /// die on purpose before it is ready, or answer only until a crash point).
    pub fn start_process(
        &mut self,
        prefix: &[&std::ffi::OsStr],
        envs: &[(&str, &std::ffi::OsStr)],
    ) {
        assert!(self.child.is_none(), "the daemon is already running");
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open daemon log");
        let _ = writeln!(log, "==== boxd starting ====");
        let log_err = log.try_clone().expect("clone log fd");
        let (program, pre_args) = match prefix.split_first() {
            Some((first, rest)) => (PathBuf::from(first), rest.to_vec()),
            None => (boxd_bin(), Vec::new()),
        };
        let mut command = Command::new(program);
        command.args(pre_args);
        if !prefix.is_empty() {
            command.arg(boxd_bin());
        }
        command.envs(envs.iter().copied());
        let config = self.dir.join("boxd.toml");
        fs::write(&config, self.config_text()).expect("write daemon config");
        command.arg("--config").arg(&config);
        if self.pass_cgroup_parent {
            command.arg("--cgroup-parent").arg(&self.cgroup_parent);
        }
        let child = command
            .args(&self.extra_args)
            .arg("--socket")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--log-level")
            .arg(std::env::var("BOXD_TEST_LOG").unwrap_or_else(|_| "info,boxd=debug".into()))
            // The log is read by people in a test's output, not on a terminal.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", boxd_bin().display()));
        self.child = Some(child);
    }

    /// The config file: networking on subnets of this daemon's own (derived from its
    /// random suffix, so that daemons of parallel tests do not share one), and
    /// [`TestDaemon::config_lines`].
    pub fn config_text(&self) -> String {
        let h = u32::from_str_radix(&self.bridge_prefix[2..], 16).unwrap_or(0);
        let mut lines = vec![
            format!(
                "default_network_mode = \"{}\"",
                if self.networking { "bridge" } else { "none" }
            ),
            format!("default_bridge = \"{}0\"", self.bridge_prefix),
            format!("bridge_prefix = \"{}\"", self.bridge_prefix),
            format!(
                "default_subnet = \"10.{}.{}.0/24\"",
                100 + h % 50,
                (h / 50) % 256
            ),
            format!(
                "network_pool = \"10.{}.{}.0/20\"",
                160 + h % 64,
                16 * ((h / 64) % 16)
            ),
        ];
        lines.extend(self.config_lines.iter().cloned());
        lines.join("\n") + "\n"
    }

    /// Waits until the daemon process started by [`TestDaemon::start_process`] exits
    /// (a crash point), at most `timeout`; returns its status.
    pub fn wait_daemon_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_for_value(timeout, || child.try_wait().ok().flatten())?;
        self.remember_pids();
        self.child = None;
        Some(status)
    }

    /// Waits until the daemon answers `GET /v1/version` (panics after the ready timeout).
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "boxd exited before it was ready ({status}); its log:\n{}",
                        self.log_text()
                    );
                }
            }
            if let Ok(Ok((status, _))) = tokio::time::timeout(
                Duration::from_secs(1),
                self.request(Method::GET, "/v1/version", None, Bytes::new()),
            )
            .await
            {
                if status == StatusCode::OK {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "boxd did not answer GET /v1/version within {READY_TIMEOUT:?}; its log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The daemon's pid while it runs.
    pub fn daemon_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Stop the daemon, leaving its containers alone.
    pub fn stop_daemon(&mut self, how: StopHow) {
        self.remember_pids();
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        match how {
            StopHow::Kill => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = child.wait();
            }
            StopHow::Term => {
                let _ = kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match child.try_wait() {
                        Ok(Some(_)) => break,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            panic!(
                                "boxd did not exit within 10 s of SIGTERM; its log:\n{}",
                                self.log_text()
                            );
                        }
                    }
                }
            }
        }
    }

    /// Stop the daemon (`how`) and start it again on the same dirs.
    pub async fn restart(&mut self, how: StopHow) {
        self.stop_daemon(how);
        self.spawn().await;
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// `<state>/containers/<id>`.
    pub fn state_dir_of(&self, id: &str) -> PathBuf {
        self.state.join("containers").join(id)
    }

    /// `<root>/containers/<id>`.
    pub fn root_dir_of(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The test's parent group in every hierarchy that has it (or could have it).
    pub fn cgroup_parent_dirs(&self) -> Vec<(PathBuf, bool)> {
        cgroup_mounts()
            .into_iter()
            .map(|(m, v2)| (m.join(&self.cgroup_parent), v2))
            .collect()
    }

    /// The container's group dirs that exist, in every hierarchy.
    pub fn cgroup_dirs_of(&self, id: &str) -> Vec<PathBuf> {
        self.cgroup_parent_dirs()
            .into_iter()
            .map(|(p, _)| p.join(id))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// Where the container's `file` of `controller` lives: v1
    /// `/sys/fs/cgroup/<controller>/<parent>/<id>/<file>`, v2
    /// `/sys/fs/cgroup/<parent>/<id>/<file>`.
    pub fn cgroup_file(&self, controller: &str, id: &str, file: &str) -> PathBuf {
        if cgroup_v2_unified() {
            Path::new("/sys/fs/cgroup")
                .join(&self.cgroup_parent)
                .join(id)
                .join(file)
        } else {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(&self.cgroup_parent)
                .join(id)
                .join(file)
        }
    }

    /// Read a cgroup file of the container (trimmed); panics when it cannot be read.
    pub fn read_cgroup(&self, controller: &str, id: &str, file: &str) -> String {
        let path = self.cgroup_file(controller, id, file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// Record the pids in the state dir now, so the teardown can kill them even if the
    /// daemon removes the files first.
    fn remember_pids(&self) {
        let Ok(entries) = fs::read_dir(self.state.join("containers")) else {
            return;
        };
        for e in entries.flatten() {
            for f in ["shim.pid", "container.pid"] {
                if let Some(pid) = read_pid(&e.path().join(f)) {
                    self.seen_pids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(pid);
                }
            }
        }
    }

    // ---- HTTP over the Unix socket ----

    /// Send one request and collect the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let resp = self.send(method, path, content_type, body).await?;
        let status = resp.status();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| {
                anyhow::anyhow!("body of {path} not complete within {REQUEST_TIMEOUT:?}")
            })??
            .to_bytes();
        Ok((status, body))
    }

    /// Send one request; the answer's head, its body still to read.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Response<Incoming>> {
        let stream = UnixStream::connect(&self.socket).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://boxd{path}"))
            .header(hyper::header::HOST, "boxd");
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(body))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(req))
            .await
            .map_err(|_| anyhow::anyhow!("no answer to {path} within {REQUEST_TIMEOUT:?}"))??;
        Ok(resp)
    }

    /// A JSON request; the answer parsed as JSON (`Null` when empty, a `String` when it is
    /// not JSON).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let (ct, bytes) = match &body {
            Some(v) => (Some("application/json"), Bytes::from(v.to_string())),
            None => (None, Bytes::new()),
        };
        let (status, answer) = self
            .request(method.clone(), path, ct, bytes)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}\ndaemon log:\n{}", self.log_text()));
        (status, parse_body(&answer))
    }

    /// Like [`api`](Self::api) but panics unless the status is `want`.
    pub async fn api_ok(&self, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, v) = self.api(method, path, body).await;
        assert_eq!(
            status.as_u16(),
            want,
            "{method} {path} answered {status}: {v}"
        );
        v
    }

    /// Upload a file as the request body (`POST`).
    pub async fn upload(&self, path: &str, file: &Path) -> (StatusCode, Value) {
        let data = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let (status, answer) = self
            .request(
                Method::POST,
                path,
                Some("application/octet-stream"),
                Bytes::from(data),
            )
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e:#}\ndaemon log:\n{}", self.log_text()));
        (status, parse_body(&answer))
    }

    /// A GET whose body is text (logs in raw format).
    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let (status, body) = self
            .request(Method::GET, path, None, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Open a streaming GET (`logs?follow=true`, `events`); read it line by line.
    pub async fn stream_lines(&self, path: &str) -> LineStream {
        let resp = self
            .send(Method::GET, path, None, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"));
        assert!(
            resp.status().is_success(),
            "GET {path} answered {}",
            resp.status()
        );
        LineStream {
            body: resp.into_body(),
            buf: Vec::new(),
            done: false,
        }
    }

    /// Open a streaming GET and return its body, to read frame by frame (answers too
    /// large to collect, e.g. big logs); panics unless the status is 200.
    pub async fn stream_body(&self, path: &str) -> Incoming {
        let resp = self
            .send(Method::GET, path, None, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"));
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.into_body()
    }

    /// The daemon's resident memory (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn daemon_rss(&self) -> u64 {
        let pid = self.daemon_pid().expect("the daemon runs");
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    // ---- shortcuts ----

    /// Import `busybox-rootfs.tar.gz` as `busybox`; returns the image.
    pub async fn import_busybox(&self) -> Value {
        let (status, v) = self
            .upload(
                "/v1/images/import?name=busybox",
                &fixtures().join("busybox-rootfs.tar.gz"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "import busybox: {v}");
        v
    }

    /// `POST /v1/containers`; returns the id.
    pub async fn create(&self, body: Value) -> String {
        let v = self.api_ok("POST", "/v1/containers", Some(body), 201).await;
        let id = v["id"]
            .as_str()
            .expect("create answer has an id")
            .to_string();
        assert_eq!(id.len(), 64, "full id is 64 hex digits: {id}");
        id
    }

    /// Start a created container.
    pub async fn start_container(&self, id: &str) {
        self.api_ok("POST", &format!("/v1/containers/{id}/start"), None, 204)
            .await;
        self.remember_pids();
    }

    /// Stop a container (`POST .../stop?timeout=SECS`), expecting 204.
    pub async fn stop_container(&self, id: &str, timeout_secs: u64) {
        self.api_ok(
            "POST",
            &format!("/v1/containers/{id}/stop?timeout={timeout_secs}"),
            None,
            204,
        )
        .await;
    }

    /// Delete a container, running or not (`DELETE ...?force=true`), expecting 204.
    pub async fn remove_container(&self, id: &str) {
        self.api_ok(
            "DELETE",
            &format!("/v1/containers/{id}?force=true"),
            None,
            204,
        )
        .await;
    }

    /// Create and start; returns the id.
    pub async fn run(&self, body: Value) -> String {
        let id = self.create(body).await;
        self.start_container(&id).await;
        id
    }

    /// `POST .../wait` (bounded, so a hung container fails the test instead of hanging it).
    pub async fn wait(&self, id: &str) -> Value {
        self.api_ok("POST", &format!("/v1/containers/{id}/wait"), None, 200)
            .await
    }

    /// `GET /v1/containers/{id}`.
    pub async fn inspect(&self, id: &str) -> Value {
        self.api_ok("GET", &format!("/v1/containers/{id}"), None, 200)
            .await
    }

    /// The container's stdout (raw logs, stderr left out).
    pub async fn stdout_of(&self, id: &str) -> String {
        let (status, text) = self
            .get_text(&format!(
                "/v1/containers/{id}/logs?stdout=true&stderr=false"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "logs of {id}: {text}");
        text
    }

    /// Run `cmd` in busybox to the end; returns (exit code, stdout).
    pub async fn run_to_end(&self, mut body: Value, cmd: &[&str]) -> (i64, String) {
        body["cmd"] = serde_json::json!(cmd);
        if body.get("image").is_none() {
            body["image"] = "busybox".into();
        }
        let id = self.run(body).await;
        let w = self.wait(&id).await;
        let out = self.stdout_of(&id).await;
        (w["exit_code"].as_i64().expect("exit_code"), out)
    }

    /// The host pid of a running container, from inspect.
    pub async fn pid_of(&self, id: &str) -> i32 {
        let v = self.inspect(id).await;
        v["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("container {id} has no pid: {v}")) as i32
    }

    /// Poll inspect until `state` is reached (at most `timeout`).
    pub async fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let reached = wait_for_value_async(timeout, async || {
            last = self.inspect(id).await;
            (last["state"] == state).then(|| last.clone())
        })
        .await;
        reached.unwrap_or_else(|| panic!("container {id} not {state} after {timeout:?}: {last}"))
    }

    /// Assert that nothing of container `id` is left: no cgroup dir in any hierarchy, no
    /// state or root dir, no mount naming it.
    pub fn assert_container_gone(&self, id: &str) {
        let cgroups = self.cgroup_dirs_of(id);
        assert!(cgroups.is_empty(), "cgroup dirs left for {id}: {cgroups:?}");
        assert!(
            !self.state_dir_of(id).exists(),
            "state dir left: {}",
            self.state_dir_of(id).display()
        );
        assert!(
            !self.root_dir_of(id).exists(),
            "container dir left: {}",
            self.root_dir_of(id).display()
        );
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let left: Vec<&str> = info.lines().filter(|l| l.contains(id)).collect();
        assert!(left.is_empty(), "mounts left for {id}: {left:#?}");
    }

    /// Kill what the daemon and its containers left, then remove cgroups, mounts and dirs.
    /// Asks a live daemon to remove every container and user network, so that the
    /// CNI plugins free what they made on the host (firewall rules, addresses): the
    /// kills below would leave those behind.
    fn remove_networked_leftovers(&self) {
        if !self.networking && !self.root.join("cni").exists() {
            return;
        }
        let call = |method: &str, path: &str| -> Option<Value> {
            use std::io::Read;
            let mut s = std::os::unix::net::UnixStream::connect(&self.socket).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: boxd\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            )
            .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            let body = out.split_once("\r\n\r\n")?.1;
            // Only unchunked JSON is read back (lists are small here).
            serde_json::from_str(body.trim()).ok().or(Some(Value::Null))
        };
        if let Some(Value::Array(list)) = call("GET", "/v1/containers?all=true") {
            for c in list {
                if let Some(id) = c["id"].as_str() {
                    call("DELETE", &format!("/v1/containers/{id}?force=true"));
                }
            }
        }
        if let Some(Value::Array(list)) = call("GET", "/v1/networks") {
            for n in list.iter().filter(|n| n["default"] != true) {
                if let Some(name) = n["name"].as_str() {
                    call("DELETE", &format!("/v1/networks/{name}"));
                }
            }
        }
    }

    fn teardown(&mut self) {
        self.remember_pids();
        if self.child.is_some() {
            self.remove_networked_leftovers();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remember_pids();
        let mut pids: Vec<i32> = self
            .seen_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        // Shims may name the dirs on their command line; containers sit in our cgroups.
        pids.extend(processes_mentioning(&self.dir.to_string_lossy()));
        for (parent, _) in self.cgroup_parent_dirs() {
            for d in dirs_depth_first(&parent) {
                if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                    pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids.retain(|p| *p > 1 && *p != std::process::id() as i32);
        for p in &pids {
            sigkill(*p);
        }
        let alive = wait_gone(&pids, Duration::from_secs(5));
        if !alive.is_empty() {
            eprintln!("teardown: processes still alive after SIGKILL: {alive:?}");
        }
        for (parent, v2) in self.cgroup_parent_dirs() {
            let left = remove_cgroup_tree(&parent, v2);
            if !left.is_empty() {
                eprintln!("teardown: cannot remove cgroups {left:?}");
            }
        }
        remove_links_and_rules(&self.bridge_prefix);
        let mut mounts = mounts_under(&self.dir);
        // Deepest first, so a mount on top of another comes off before it.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("teardown: umount {}: {e}", m.display());
            }
        }
        // Loop devices of sized volumes: `mount -o loop` makes them auto-clearing, so the
        // unmounts above free them; one still attached (a mount that never happened, a
        // lazy unmount with a user left) is detached here.
        for dev in loop_devices_backed_under(&self.dir) {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(&dev)
                .stderr(Stdio::null())
                .status();
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if self.dir.exists() {
                eprintln!("teardown: remove {}: {e}", self.dir.display());
            }
        }
    }
}

/// The loop devices (`/dev/loopN`) whose backing file is under `dir`.
pub fn loop_devices_backed_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter(|e| {
            fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| Path::new(b.trim().trim_end_matches(" (deleted)")).starts_with(dir))
        })
        .map(|e| PathBuf::from("/dev").join(e.file_name()))
        .collect()
}

/// Deletes the links whose name starts with `prefix` (a test daemon's bridges) and the
/// iptables rules that name them.
pub fn remove_links_and_rules(prefix: &str) {
    for link in links_named(prefix) {
        let _ = Command::new("ip")
            .args(["link", "del", &link])
            .stderr(Stdio::null())
            .status();
    }
    for tool in ["iptables", "ip6tables"] {
        for (table, rule) in rules_naming(tool, prefix) {
            let args: Vec<String> = shell_words(&rule.replacen("-A ", "-D ", 1));
            let _ = Command::new(tool)
                .args(["-w", "-t", &table])
                .args(&args)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Names of the host's links that start with `prefix`.
pub fn links_named(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// `(table, rule)` of every iptables rule (as `iptables-save` prints it) naming `needle`.
pub fn iptables_rules_naming(needle: &str) -> Vec<(String, String)> {
    rules_naming("iptables", needle)
}

/// As [`iptables_rules_naming`], for `iptables` or `ip6tables`.
pub fn rules_naming(tool: &str, needle: &str) -> Vec<(String, String)> {
    let out = Command::new(format!("{tool}-save"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut table = String::new();
    let mut rules = Vec::new();
    for line in out.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_owned();
        } else if line.starts_with("-A ") && line.contains(needle) {
            rules.push((table.clone(), line.to_owned()));
        }
    }
    rules
}

/// Splits an `iptables-save` rule into words, honouring double quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- boxd log ({}) ----\n{}---- end of boxd log ----",
                self.log.display(),
                self.log_text()
            );
        }
        self.teardown();
    }
}

/// Assert the daemon left nothing it should not have: no cgroup under the test's parent
/// but the parent itself, no mount under the temp dir, no process naming the temp dir
/// other than the daemon.
pub fn assert_no_leaks(daemon: &TestDaemon) {
    for (parent, _) in daemon.cgroup_parent_dirs() {
        let children: Vec<PathBuf> = fs::read_dir(&parent)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            children.is_empty(),
            "cgroups left under {}: {children:?}",
            parent.display()
        );
    }
    let mounts = mounts_under(&daemon.dir);
    assert!(
        mounts.is_empty(),
        "mounts left under {}: {mounts:?}",
        daemon.dir.display()
    );
    let daemon_pid = daemon.daemon_pid();
    // Give exiting shims a moment: a container just deleted may still be unwinding.
    let mut procs = Vec::new();
    wait_for(Duration::from_secs(1), || {
        procs = processes_mentioning(&daemon.dir.to_string_lossy());
        procs.retain(|p| Some(*p) != daemon_pid);
        procs.is_empty()
    });
    let described: Vec<String> = procs
        .iter()
        .map(|p| {
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(procs.is_empty(), "processes left: {described:#?}");
}

fn parse_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A streaming answer read line by line.
pub struct LineStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl LineStream {
    /// The next line without its `\n`; `None` at the end of the stream or after
    /// `timeout` without a full line.
    pub async fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.done {
                if self.buf.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut self.buf);
                return Some(String::from_utf8_lossy(&rest).into_owned());
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => self.done = true,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The next line parsed as JSON.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        let line = self.next_line(timeout).await?;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }
}
