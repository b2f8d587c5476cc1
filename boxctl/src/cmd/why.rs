//! `boxctl why NAME`: explains in one paragraph how the container's last run ended:
//! the OOM killer (at what use, against which limit), a signal, an error code or a
//! normal exit, with peak memory, pressure warnings and the last output.

use anyhow::Context as _;
use boxd_client::models::{Container, ContainerState, ExitInfo};
use clap::Args as ClapArgs;

use super::{human_duration, Ctx};

/// How many of the last output lines the paragraph quotes.
const QUOTED_LINES: usize = 3;

/// The options of `why`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The container (id, prefix or name).
    pub container: String,
}

/// Runs `boxctl why`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let c = ctx
        .client
        .container(&args.container)
        .await
        .with_context(|| format!("failed to inspect {}", args.container))?;
    if ctx.json {
        super::print_json(&c.observed.last_exit)?;
    } else {
        println!("{}", explain(&c));
    }
    Ok(0)
}

/// The common name of a signal number.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    format!("{name} ({sig})")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The paragraph for a container.
pub fn explain(c: &Container) -> String {
    let name = &c.name;
    let Some(exit) = &c.observed.last_exit else {
        return match c.state {
            ContainerState::Running => {
                let mut s = format!("{name} is running and has not exited yet");
                if c.observed.oom_kill_count > 0 {
                    s.push_str(&format!(
                        "; the kernel OOM killer has killed {} of its processes so far",
                        c.observed.oom_kill_count
                    ));
                }
                s.push('.');
                s
            }
            _ => format!("{name} has never run to an end, so there is nothing to explain."),
        };
    };
    let mut parts = vec![cause(name, exit)];
    if let Some(d) = ran_for(exit) {
        parts.push(format!("it ran for {d}"));
    }
    match (exit.memory_peak, exit.memory_limit) {
        (Some(p), Some(l)) => parts.push(format!("peak memory {} of its {} limit", mib(p), mib(l))),
        (Some(p), None) => parts.push(format!("peak memory {}", mib(p))),
        _ => {}
    }
    match exit.memory_pressure_count {
        0 => {}
        1 => parts.push("1 earlier memory pressure warning".to_owned()),
        n => parts.push(format!("{n} earlier memory pressure warnings")),
    }
    let quoted: Vec<&str> = exit
        .last_log
        .iter()
        .rev()
        .take(QUOTED_LINES)
        .rev()
        .map(String::as_str)
        .collect();
    let mut text = parts.join("; ");
    if quoted.is_empty() {
        text.push_str("; it wrote no output.");
    } else {
        text.push_str(&format!("; last output: {:?}.", quoted.join(" / ")));
    }
    text
}

fn ran_for(exit: &ExitInfo) -> Option<String> {
    exit.started_at?;
    let d = chrono::TimeDelta::milliseconds(exit.duration_ms as i64);
    Some(if exit.duration_ms < 1000 {
        format!("{} ms", exit.duration_ms)
    } else {
        human_duration(d).to_lowercase()
    })
}

/// The first clause: why it ended.
fn cause(name: &str, exit: &ExitInfo) -> String {
    let limit = exit
        .memory_limit
        .map(|l| format!(" at {} (its limit)", mib(l)))
        .unwrap_or_default();
    if let Some(err) = &exit.error {
        return format!("{name}'s end was not seen: {err}");
    }
    let kills = exit.oom_kill_count;
    match (exit.signal, exit.exit_code) {
        (Some(9), _) if exit.oom_killed => {
            format!("{name} was killed by the kernel OOM killer{limit}")
        }
        (Some(sig), _) => {
            let mut s = format!("{name} was killed by {}", signal_name(sig));
            if kills > 0 {
                s.push_str(&format!(
                    ", after the kernel OOM killer had killed {kills} of its processes{limit}"
                ));
            }
            s
        }
        (None, Some(0)) if kills > 0 => format!(
            "{name} exited normally (code 0), but the kernel OOM killer killed {kills} of its \
             processes during the run{limit}"
        ),
        (None, Some(0)) => format!("{name} exited normally (code 0)"),
        (None, Some(code)) if kills > 0 => format!(
            "{name} exited with code {code} after the kernel OOM killer killed {kills} of its \
             processes{limit}"
        ),
        (None, Some(code)) => {
            format!("{name} exited with code {code}, an error by its own account")
        }
        (None, None) => format!("{name} ended in an unknown way"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxd_client::models::Observed;

    fn container(exit: ExitInfo) -> Container {
        let json = serde_json::json!({
            "id": "ab".repeat(32), "name": "web", "image": "busybox", "image_id": "sha256:aa",
            "state": "exited", "pid": null, "exit_code": exit.exit_code, "oom_killed": exit.oom_killed,
            "created_at": "2024-01-01T00:00:00Z", "started_at": null, "finished_at": null,
            "config": {"cmd": ["x"], "env": [], "working_dir": "/", "hostname": "h", "user": "", "mounts": []},
            "resources": {},
        });
        let mut c: Container = serde_json::from_value(json).unwrap();
        c.observed = Observed {
            last_exit: Some(exit),
            ..Default::default()
        };
        c
    }

    fn exit() -> ExitInfo {
        ExitInfo {
            started_at: Some(chrono::Utc::now()),
            duration_ms: 2500,
            memory_limit: Some(64 << 20),
            memory_peak: Some(64 << 20),
            last_log: vec!["a".into(), "b".into(), "c".into(), "allocating".into()],
            ..Default::default()
        }
    }

    #[test]
    fn explains_an_oom_kill() {
        let e = ExitInfo {
            exit_code: Some(137),
            signal: Some(9),
            oom_killed: true,
            oom_kill_count: 1,
            memory_pressure_count: 3,
            ..exit()
        };
        let text = explain(&container(e));
        assert_eq!(
            text,
            "web was killed by the kernel OOM killer at 64.0 MiB (its limit); it ran for 2 seconds; \
             peak memory 64.0 MiB of its 64.0 MiB limit; 3 earlier memory pressure warnings; \
             last output: \"b / c / allocating\"."
        );
    }

    #[test]
    fn explains_a_non_zero_exit_a_signal_and_a_normal_exit() {
        let code = explain(&container(ExitInfo {
            exit_code: Some(3),
            ..exit()
        }));
        assert!(
            code.starts_with(
                "web exited with code 3, an error by its own account; it ran for 2 seconds"
            ),
            "{code}"
        );
        let sig = explain(&container(ExitInfo {
            exit_code: Some(143),
            signal: Some(15),
            last_log: vec![],
            ..exit()
        }));
        assert!(sig.starts_with("web was killed by SIGTERM (15);"), "{sig}");
        assert!(sig.ends_with("it wrote no output."), "{sig}");
        let ok = explain(&container(ExitInfo {
            exit_code: Some(0),
            memory_limit: None,
            memory_peak: Some(3 << 20),
            ..exit()
        }));
        assert!(ok.starts_with("web exited normally (code 0); "), "{ok}");
        assert!(ok.contains("peak memory 3.0 MiB;"), "{ok}");
        let child = explain(&container(ExitInfo {
            exit_code: Some(0),
            oom_killed: true,
            oom_kill_count: 2,
            ..exit()
        }));
        assert!(
            child.contains("exited normally (code 0), but the kernel OOM killer killed 2"),
            "{child}"
        );
    }

    #[test]
    fn explains_a_container_that_has_not_ended() {
        let mut c = container(exit());
        c.observed.last_exit = None;
        assert!(explain(&c).contains("never run to an end"));
        c.state = ContainerState::Running;
        c.observed.oom_kill_count = 1;
        assert_eq!(
            explain(&c),
            "web is running and has not exited yet; the kernel OOM killer has killed 1 of its processes so far."
        );
        assert_eq!(signal_name(64), "signal 64");
    }
}
