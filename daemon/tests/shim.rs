//! `boxd shim` end to end: real namespaces, overlay, cgroup, control socket and exit
//! record, on the busybox fixture rootfs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use boxd_shim::protocol::{
    ControlRequest, ControlResponse, ExitRecord, LogRecord, OomCounter, Overlay, ShimConfig,
    StartReport,
};
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/fixtures/busybox-rootfs.tar.gz"
);

/// The workspace's root check (`boxd_testutil`, CONVENTIONS C10), and the fixture rootfs
/// every test here unpacks.
macro_rules! require_root {
    () => {
        boxd_testutil::require_root!();
        boxd_testutil::require!(
            Path::new(FIXTURE).exists(),
            "needs target/fixtures/busybox-rootfs.tar.gz (tests/images/build-test-images.sh)"
        );
    };
}

/// A memory cgroup made for one test (v1 memory hierarchy, or the v2 root on a pure
/// v2 host), removed on drop.
struct Cgroup(PathBuf, OomCounter);

impl Cgroup {
    /// The group, or why it cannot be made here (a reason for `boxd_testutil::skip`).
    fn new(name: &str) -> Result<Cgroup, String> {
        let name = format!("boxd-shim-test-{}-{name}", std::process::id());
        let (path, file) = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (Path::new("/sys/fs/cgroup").join(name), "memory.events")
        } else {
            (
                Path::new("/sys/fs/cgroup/memory").join(name),
                "memory.oom_control",
            )
        };
        std::fs::create_dir(&path)
            .map_err(|e| format!("cannot make the cgroup {}: {e}", path.display()))?;
        let counter = OomCounter {
            path: path.join(file),
            key: "oom_kill".into(),
        };
        let cgroup = Cgroup(path, counter);
        if !cgroup.1.path.exists() {
            return Err(format!(
                "the memory controller is not enabled for {} (no {file})",
                cgroup.0.display()
            ));
        }
        Ok(cgroup)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The container is gone by now (Case drops first and kills it); rmdir may still
        // race the kernel's last exit for a moment.
        let removed = boxd_testutil::wait_for(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
        });
        if !removed {
            eprintln!("could not remove {}", self.0.display());
        }
    }
}

/// One container's dirs; kills whatever it started when dropped.
struct Case {
    tmp: tempfile::TempDir,
}

fn pid_in(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` still runs (a zombie left for a non-reaping init counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn wait_gone(pid: i32, within: Duration) -> bool {
    boxd_testutil::wait_for(within, || !alive(pid))
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Case {
    fn drop(&mut self) {
        for name in ["container.pid", "shim.pid"] {
            if let Some(pid) = pid_in(&self.state().join(name)) {
                if alive(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    wait_gone(pid, Duration::from_secs(5));
                }
            }
        }
    }
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::Builder::new()
            .prefix("boxd-shim-test")
            .tempdir()
            .unwrap();
        let case = Case { tmp };
        for d in ["lower", "upper", "work", "state", "bundle/rootfs"] {
            std::fs::create_dir_all(case.tmp.path().join(d)).unwrap();
        }
        let status = Command::new("tar")
            .args(["-xzf", FIXTURE, "-C"])
            .arg(case.tmp.path().join("lower"))
            .status()
            .unwrap();
        assert!(status.success(), "tar failed");
        case
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn write_config(&self, args: &[&str], cgroup: Option<&Cgroup>) {
        self.write_config_with(args, cgroup, |_| {});
    }

    fn write_config_with(&self, args: &[&str], cgroup: Option<&Cgroup>, edit: impl Fn(&mut Spec)) {
        let ns = [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
        ]
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build().unwrap())
        .collect::<Vec<_>>();
        let mount = |dst: &str, ty: &str, opts: &[&str]| {
            MountBuilder::default()
                .destination(dst)
                .typ(ty)
                .source(ty)
                .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        let mut spec: Spec = SpecBuilder::default()
            .hostname("boxtest")
            .root(
                RootBuilder::default()
                    .path("rootfs")
                    .readonly(false)
                    .build()
                    .unwrap(),
            )
            .process(
                ProcessBuilder::default()
                    .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .env(vec![
                        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                        "HOME=/".to_string(),
                    ])
                    .cwd("/")
                    .build()
                    .unwrap(),
            )
            .mounts(vec![
                mount("/proc", "proc", &["nosuid", "noexec", "nodev"]),
                mount(
                    "/dev",
                    "tmpfs",
                    &["nosuid", "strictatime", "mode=755", "size=65536k"],
                ),
                mount(
                    "/dev/pts",
                    "devpts",
                    &[
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=0620",
                    ],
                ),
                mount(
                    "/dev/shm",
                    "tmpfs",
                    &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
                ),
                mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            ])
            .linux(
                LinuxBuilder::default()
                    .namespaces(ns)
                    .masked_paths(
                        ["/proc/kcore", "/proc/kmsg", "/proc/acpi"]
                            .map(String::from)
                            .to_vec(),
                    )
                    .readonly_paths(vec!["/proc/sys".to_string()])
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        edit(&mut spec);
        spec.save(self.path("bundle/config.json")).unwrap();
        let shim = ShimConfig {
            id: "test".into(),
            bundle: self.path("bundle"),
            state_dir: self.state(),
            log_path: self.path("container.log"),
            rootfs: Overlay {
                lower: vec![self.path("lower")],
                upper: self.path("upper"),
                work: self.path("work"),
                disk: None,
            },
            cgroup_join: cgroup
                .map(|c| c.0.join("cgroup.procs"))
                .into_iter()
                .collect(),
            oom_counter: cgroup.map(|c| c.1.clone()),
            log_rotation: None,
            seccomp_bpf: None,
            protocol: boxd_shim::protocol::PROTOCOL_VERSION,
        };
        std::fs::write(
            self.state().join("shim.json"),
            serde_json::to_vec(&shim).unwrap(),
        )
        .unwrap();
    }

    /// Run `boxd shim`; the report and the exit status of the starting process.
    fn start(&self) -> (StartReport, i32) {
        let out = Command::new(env!("CARGO_BIN_EXE_boxd"))
            .arg("shim")
            .arg("--config")
            .arg(self.state().join("shim.json"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().count(), 1, "one report line: {stdout:?}");
        let report = serde_json::from_str(stdout.trim_end())
            .unwrap_or_else(|e| panic!("bad report {stdout:?}: {e}"));
        (report, out.status.code().unwrap_or(-1))
    }

    fn started(&self) -> (i32, i32) {
        match self.start() {
            (StartReport::Started { shim_pid, pid }, 0) => (shim_pid, pid),
            other => panic!("not started: {other:?}; shim.log: {}", self.shim_log()),
        }
    }

    fn shim_log(&self) -> String {
        std::fs::read_to_string(self.state().join("shim.log")).unwrap_or_default()
    }

    fn request(&self, req: &ControlRequest) -> std::io::Result<ControlResponse> {
        let mut s = UnixStream::connect(self.state().join("control.sock"))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut line = serde_json::to_vec(req).unwrap();
        line.push(b'\n');
        s.write_all(&line)?;
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer)?;
        Ok(serde_json::from_str(&answer).expect("a response line"))
    }

    /// The exit record, through `Wait` if the shim still listens, else from exit.json;
    /// then checks the shim is gone and left no socket.
    fn wait_exit(&self, shim_pid: i32) -> ExitRecord {
        let via_socket = match self.request(&ControlRequest::Wait) {
            Ok(ControlResponse::Exited(r)) => Some(r),
            Ok(other) => panic!("unexpected answer to wait: {other:?}"),
            Err(_) => None,
        };
        assert!(
            wait_gone(shim_pid, Duration::from_secs(10)),
            "shim still runs"
        );
        let file: ExitRecord =
            serde_json::from_slice(&std::fs::read(self.state().join("exit.json")).unwrap())
                .unwrap();
        if let Some(r) = via_socket {
            assert_eq!(r, file);
        }
        assert!(!self.state().join("control.sock").exists());
        file
    }

    fn logs(&self) -> Vec<LogRecord> {
        std::fs::read_to_string(self.path("container.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn stream_text(&self, stream: &str) -> String {
        self.logs()
            .into_iter()
            .filter(|r| r.stream == stream)
            .map(|r| r.log)
            .collect()
    }

    fn assert_clean(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let me = self.tmp.path().to_string_lossy().into_owned();
        assert!(
            !mountinfo.contains(&me),
            "a mount of the test is left: {mountinfo}"
        );
        let config = self.state().join("shim.json");
        let left = processes_mentioning(&config.to_string_lossy());
        assert!(left.is_empty(), "processes left: {left:?}");
    }
}

fn ppid_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn root_shim_runs_a_container_and_records_its_exit() {
    require_root!();
    let cgroup = match Cgroup::new("run") {
        Ok(cgroup) => cgroup,
        Err(reason) => {
            boxd_testutil::skip(&reason);
            return;
        }
    };
    let case = Case::new();
    // The app waits (in `wait`, which a trapped signal interrupts) until the test has
    // looked at the running shim, then exits 0 on SIGTERM. The trap comes first: pid 1
    // of a namespace ignores a signal it has no handler for.
    case.write_config(
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 0' TERM; \
             echo $$; hostname; ls /proc; echo err >&2; cat /proc/self/cgroup; \
             ls -l /dev/null; test -L /dev/ptmx && echo ptmx-link; \
             touch /sys/x 2>/dev/null || echo sys-ro; cat /sys/class/net/lo/flags; \
             echo kmsg=$(wc -c < /proc/kmsg) acpi=$(ls /proc/acpi | wc -l); grep ' /proc/sys ' /proc/mounts; printf tail; \
             sleep 1000 >/dev/null 2>&1 & wait",
        ],
        Some(&cgroup),
    );
    let (shim_pid, pid) = case.started();
    assert_ne!(shim_pid, pid);
    assert!(alive(shim_pid), "the shim is gone while its app runs");
    assert_ne!(
        ppid_of(shim_pid),
        std::process::id() as i32,
        "shim is our child"
    );
    assert!(
        // `tail` is the last thing printed before the wait: a TERM sent earlier would
        // run the trap before it.
        boxd_testutil::wait_for(Duration::from_secs(20), || case
            .stream_text("stdout")
            .ends_with("tail")),
        "the app never got to its wait: {:?}",
        case.logs()
    );
    assert_eq!(
        case.request(&ControlRequest::Kill { signal: 15 }).unwrap(),
        ControlResponse::Ok
    );
    assert_eq!(
        pid_in(&case.state().join("container.pid")),
        Some(pid),
        "container.pid"
    );
    assert_eq!(pid_in(&case.state().join("shim.pid")), Some(shim_pid));

    let record = case.wait_exit(shim_pid);
    assert_eq!(record.exit_code, 0, "log: {:?}", case.logs());
    assert_eq!(record.signal, None);
    assert_eq!(record.pid, pid);
    assert!(record.finished_at_ms >= record.started_at_ms);

    let out = case.stream_text("stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the app is pid 1: {out}");
    assert_eq!(lines[1], "boxtest");
    assert!(lines.contains(&"self"), "/proc is mounted: {out}");
    assert!(out.contains("ptmx-link"), "{out}");
    assert!(out.contains("sys-ro"), "{out}");
    assert!(
        out.contains("crw-rw-rw-"),
        "/dev/null is a 0666 char device: {out}"
    );
    assert!(lines.contains(&"0x9"), "lo is up: {out}");
    assert!(
        lines.contains(&"kmsg=0 acpi=0"),
        "/proc/kmsg and /proc/acpi are masked (/proc/kcore is missing here, skipped): {out} {}",
        case.stream_text("stderr")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" /proc/sys ") && l.contains(" ro,")),
        "/proc/sys is read-only: {out}"
    );
    assert_eq!(case.stream_text("stderr"), "err\n");
    // The partial last line is a record of its own. (Only order within one stream is
    // kept: stdout and stderr are two pipes, read as they become ready.)
    let last = case
        .logs()
        .into_iter()
        .rfind(|r| r.stream == "stdout")
        .unwrap();
    assert_eq!(last.log, "tail");
    assert!(case
        .logs()
        .iter()
        .all(|r| r.time.ends_with('Z') && r.time.len() == 30));
    let name = cgroup.0.file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.contains(&name), "joined the cgroup: {out}");
    assert_eq!(record.oom_kills, Some(0));
    case.assert_clean();
}

#[test]
fn root_shim_applies_user_limits_and_a_readonly_root() {
    require_root!();
    let case = Case::new();
    case.write_config_with(
        &[
            "sh",
            "-c",
            "id -u; id -g; id -G; pwd; ulimit -n; grep -E '^(CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status; \
             touch /x 2>/dev/null || echo root-ro; touch /dev/shm/x && echo shm-rw",
        ],
        None,
        |spec| {
            spec.root_mut().as_mut().unwrap().set_readonly(Some(true));
            let p = spec.process_mut().as_mut().unwrap();
            p.user_mut().set_uid(1000);
            p.user_mut().set_gid(1001);
            p.user_mut().set_additional_gids(Some(vec![10]));
            p.set_cwd("/tmp".into());
        },
    );
    let (shim_pid, _) = case.started();
    let record = case.wait_exit(shim_pid);
    let out = case.stream_text("stdout");
    assert_eq!(record.exit_code, 0, "{out} {}", case.stream_text("stderr"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["1000", "1001", "1001 10", "/tmp", "1024"],
        "{out}"
    );
    // The default OCI sets (AUDIT_WRITE, KILL, NET_BIND_SERVICE in all five) survive
    // the switch to a non-root uid through keepcaps and the ambient set.
    assert!(lines.contains(&"CapEff:\t0000000020000420"), "{out}");
    assert!(lines.contains(&"CapBnd:\t0000000020000420"), "{out}");
    assert!(lines.contains(&"CapAmb:\t0000000020000420"), "{out}");
    assert!(lines.contains(&"NoNewPrivs:\t1"), "{out}");
    assert!(lines.contains(&"root-ro"), "{out}");
    assert!(lines.contains(&"shm-rw"), "{out}");
    case.assert_clean();
}

#[test]
fn root_shim_reports_the_exit_code() {
    require_root!();
    let case = Case::new();
    case.write_config(&["sh", "-c", "exit 3"], None);
    let (shim_pid, _) = case.started();
    assert_eq!(case.wait_exit(shim_pid).exit_code, 3);
    case.assert_clean();
}

#[test]
fn root_shim_kills_through_the_control_socket() {
    require_root!();
    let case = Case::new();
    case.write_config(&["sleep", "100"], None);
    let (shim_pid, pid) = case.started();
    // The starting process has exited; the shim lives on, and not as our child.
    assert_ne!(
        ppid_of(shim_pid),
        std::process::id() as i32,
        "shim is our child"
    );
    assert_eq!(ppid_of(pid), shim_pid, "the shim is the app's parent");
    assert_eq!(
        case.request(&ControlRequest::State).unwrap(),
        ControlResponse::State {
            shim_pid,
            pid,
            running: true
        }
    );
    // A waiter connected before the kill gets the record too. Its request is in the
    // socket before the kill's connection exists, so the shim's poll loop reads it no
    // later than the kill (and long before it sees the exit).
    let waiter = {
        let mut s = UnixStream::connect(case.state().join("control.sock")).unwrap();
        s.write_all(b"{\"op\":\"wait\"}\n").unwrap();
        std::thread::spawn(move || {
            let mut answer = String::new();
            BufReader::new(s).read_line(&mut answer).unwrap();
            serde_json::from_str::<ControlResponse>(&answer).unwrap()
        })
    };
    assert_eq!(
        case.request(&ControlRequest::Kill { signal: 9 }).unwrap(),
        ControlResponse::Ok
    );
    let record = case.wait_exit(shim_pid);
    assert_eq!((record.exit_code, record.signal), (137, Some(9)));
    assert_eq!(waiter.join().unwrap(), ControlResponse::Exited(record));
    case.assert_clean();
}

#[test]
fn root_shim_reports_a_bad_command_at_exec() {
    require_root!();
    let case = Case::new();
    case.write_config(&["no-such-command"], None);
    match case.start() {
        (StartReport::Failed { stage, message }, 1) => {
            assert_eq!(stage, "exec", "{message}");
            assert!(message.contains("no-such-command"), "{message}");
        }
        other => panic!("expected a failure: {other:?}"),
    }
    for name in ["shim.pid", "container.pid", "control.sock", "exit.json"] {
        assert!(!case.state().join(name).exists(), "{name} left behind");
    }
    case.assert_clean();
}

#[test]
fn root_shim_killed_takes_the_container_with_it() {
    require_root!();
    let case = Case::new();
    case.write_config(&["sleep", "100"], None);
    let (shim_pid, pid) = case.started();
    assert!(alive(pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "the container outlived its shim"
    );
    case.assert_clean();
}

#[test]
fn shim_refuses_a_bad_config() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = tmp.path().join("shim.json");
    std::fs::write(&shim, b"{not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boxd"))
        .args(["shim", "--config"])
        .arg(&shim)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: StartReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        matches!(&report, StartReport::Failed { stage, .. } if stage == "config"),
        "{report:?}"
    );
}
