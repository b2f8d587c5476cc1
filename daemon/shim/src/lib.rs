//! `boxd-shim`: the per-container monitor, and the sandbox code that runs between
//! clone and exec.
//!
//! This is the only crate of boxd with `unsafe` code (all of it in `sys`). It must
//! stay free of tokio, tracing and threads: the shim forks, and a forked child of a
//! multi-threaded process may only make async-signal-safe calls until it execs.
//! The wire protocol with the daemon lives in [`protocol`].
//!
//! `boxd shim --config <state_dir>/shim.json` runs [`run`]:
//! 1. `config` reads and checks `shim.json` and the bundle's `config.json`;
//! 2. the process forks the long-lived shim (`launch`) and waits on a pipe for its
//!    [`StartReport`], prints it as one JSON line and exits (0 started, 1 failed);
//! 3. the shim forks the container's first process (`child`, with `mounts`),
//!    reports, and becomes its monitor (`monitor`).

mod attach;
pub mod bpf;
mod child;
mod config;
mod console;
mod exec;
#[cfg(test)]
mod fake_sys;
mod launch;
mod logfile;
mod logs;
mod monitor;
mod mounts;
pub mod protocol;
pub mod sealed;
pub mod seccomp;
mod state;
mod sys;
pub mod userns;

/// A detached ext4 mount of a container's disk image (`<container dir>/disk.img`)
/// through a self-detaching loop device: the daemon's way to a stopped container's
/// writable layer when it has a disk limit. Nothing is attached anywhere; closing the
/// descriptor frees the mount and the loop device. The caller must make sure the image
/// is not mounted by a run at the same time (ext4 does not support two mounts of one
/// filesystem).
pub fn detached_disk_mount(image: &std::path::Path) -> nix::Result<std::os::fd::OwnedFd> {
    sys::detached_disk_mount(image)
}

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::unistd::ForkResult;

use crate::protocol::StartReport;

/// `error: source: source ...`, the whole chain on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Whether this process has exactly one thread (so it may fork and keep running Rust).
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|d| d.count() == 1)
}

fn parse_args(args: &[OsString]) -> Result<PathBuf, String> {
    let mut it = args.iter();
    let mut config = None;
    while let Some(a) = it.next() {
        if a == "--config" {
            config = Some(PathBuf::from(it.next().ok_or("--config needs a path")?));
        } else if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            config = Some(PathBuf::from(p));
        } else {
            return Err(format!("unexpected argument {a:?}"));
        }
    }
    config.ok_or_else(|| "usage: boxd shim --config <state_dir>/shim.json".to_string())
}

fn print_report(report: &StartReport) {
    let mut line = serde_json::to_vec(report).expect("a StartReport always serialises");
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&line).and_then(|()| out.flush());
}

fn failed(stage: &str, message: String) -> i32 {
    print_report(&StartReport::Failed {
        stage: stage.to_string(),
        message,
    });
    1
}

/// Entry point of `boxd shim ARGS...`; returns the process exit status.
pub fn run(args: &[OsString]) -> i32 {
    // Nothing the caller leaked may live on in a long-lived shim (or a container).
    let _ = sys::close_inherited_fds();
    // Before anything can fork a process into a container's pid namespace: see
    // `sealed` (CVE-2019-5736).
    if let Err(e) = sealed::ensure_sealed_exe() {
        if args.first().is_some_and(|a| a == "exec") {
            eprintln!("boxd shim exec: {}", error_chain(&e));
            return 1;
        }
        return failed("init", error_chain(&e));
    }
    if args.first().is_some_and(|a| a == "exec") {
        return exec::run(&args[1..]);
    }
    let config_path = match parse_args(args) {
        Ok(p) => p,
        Err(message) => return failed("config", message),
    };
    let plan = match config::load(&config_path) {
        Ok(p) => p,
        Err(e) => return failed("config", error_chain(&e)),
    };
    if !single_threaded() {
        return failed("init", "the shim must be single-threaded to fork".into());
    }
    let (report_r, report_w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return failed("clone", format!("failed to create a pipe: {e}")),
    };
    match sys::fork() {
        Err(e) => failed("clone", format!("failed to fork the shim: {e}")),
        Ok(ForkResult::Child) => {
            drop(report_r);
            launch::shim_main(&plan, report_w)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report_w);
            let mut line = String::new();
            let _ = BufReader::new(std::fs::File::from(report_r)).read_line(&mut line);
            let report =
                serde_json::from_str::<StartReport>(line.trim_end()).unwrap_or_else(|_| {
                    StartReport::Failed {
                        stage: "init".into(),
                        message: format!(
                            "the shim ended without a report (see {})",
                            plan.shim
                                .state_dir
                                .join(protocol::files::SHIM_LOG)
                                .display()
                        ),
                    }
                });
            print_report(&report);
            match report {
                StartReport::Started { .. } => 0,
                StartReport::Failed { .. } => {
                    // It exits right after a failed report; wait, so that nothing of
                    // this start is left running when we return.
                    let _ = nix::sys::wait::waitpid(child, None);
                    1
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ControlRequest, ControlResponse, ExitRecord};

    #[test]
    fn parse_args_takes_config() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&a(&["--config", "/s/shim.json"])).unwrap(),
            PathBuf::from("/s/shim.json")
        );
        assert_eq!(
            parse_args(&a(&["--config=/x"])).unwrap(),
            PathBuf::from("/x")
        );
        assert!(parse_args(&a(&[])).is_err());
        assert!(parse_args(&a(&["--config"])).is_err());
        assert!(parse_args(&a(&["--bogus"])).is_err());
    }

    #[test]
    fn protocol_json_shapes() {
        let r = StartReport::Failed {
            stage: "exec".into(),
            message: "m".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"failed","stage":"exec","message":"m"}"#
        );
        let r: StartReport =
            serde_json::from_str(r#"{"status":"started","shim_pid":1,"pid":2}"#).unwrap();
        assert_eq!(
            r,
            StartReport::Started {
                shim_pid: 1,
                pid: 2
            }
        );
        let q: ControlRequest = serde_json::from_str(r#"{"op":"kill","signal":9}"#).unwrap();
        assert_eq!(q, ControlRequest::Kill { signal: 9 });
        let q: ControlRequest = serde_json::from_str(r#"{"op":"wait"}"#).unwrap();
        assert_eq!(q, ControlRequest::Wait);
        let e = ControlResponse::Exited(ExitRecord {
            pid: 5,
            exit_code: 137,
            signal: Some(9),
            oom_kills: None,
            started_at_ms: 1,
            finished_at_ms: 2,
        });
        let text = serde_json::to_string(&e).unwrap();
        assert!(
            text.starts_with(r#"{"status":"exited","pid":5,"exit_code":137"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<ControlResponse>(&text).unwrap(), e);
    }

    #[test]
    fn error_chain_joins_sources() {
        let e = state::StateError::WriteFile {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert!(error_chain(&e).starts_with("failed to write /x: No space left on device"));
    }
}
