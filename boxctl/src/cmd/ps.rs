//! `boxctl ps [-a] [-q] [--no-trunc]`: lists containers in docker's table, newest first.
//!
//! The PORTS column shows a running container's published ports; like docker, a
//! container that is not running shows none, since nothing forwards to it then.

use anyhow::Context as _;
use boxd_client::models::{Container, ContainerState};
use chrono::{DateTime, Utc};
use clap::Args as ClapArgs;

use super::{ago, human_duration, print_json, short_id, Ctx, Table};

/// Width of the COMMAND column, ellipsis included, as docker truncates it.
const COMMAND_WIDTH: usize = 20;

/// The options of `ps`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Show every container (by default only running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only print container ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
}

/// Runs `boxctl ps`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut containers = ctx
        .client
        .containers(args.all)
        .await
        .context("failed to list containers")?;
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    if ctx.json {
        print_json(&containers)?;
    } else if args.quiet {
        for c in &containers {
            println!(
                "{}",
                if args.no_trunc {
                    &c.id
                } else {
                    short_id(&c.id)
                }
            );
        }
    } else {
        print!("{}", table(&containers, Utc::now(), args.no_trunc));
    }
    Ok(0)
}

/// The `ps` table as of `now`.
pub fn table(containers: &[Container], now: DateTime<Utc>, no_trunc: bool) -> String {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    for c in containers {
        t.row(vec![
            if no_trunc {
                c.id.clone()
            } else {
                short_id(&c.id).to_string()
            },
            c.image.clone(),
            command(&c.config.cmd, no_trunc),
            ago(c.created_at, now),
            status(c, now),
            ports(c),
            c.name.clone(),
        ]);
    }
    t.render()
}

/// The COMMAND cell: the command line, cut to 20 characters with an ellipsis, quoted.
pub fn command(cmd: &[String], no_trunc: bool) -> String {
    let line = cmd.join(" ");
    let line = if !no_trunc && line.chars().count() > COMMAND_WIDTH {
        let mut cut: String = line.chars().take(COMMAND_WIDTH - 1).collect();
        cut.push('…');
        cut
    } else {
        line
    };
    format!("{line:?}")
}

/// The PORTS cell: the published ports of a running container, as docker lists them.
pub fn ports(c: &Container) -> String {
    if c.state == ContainerState::Running {
        super::ports::display(&c.config.ports)
    } else {
        String::new()
    }
}

/// The STATUS cell, in docker's words: "Up 3 minutes", "Exited (0) 2 minutes ago",
/// "Exited (137) 1 second ago (OOM killed)", "Up 3 seconds (Paused)", "Created", "Dead".
pub fn status(c: &Container, now: DateTime<Utc>) -> String {
    let oom = if c.oom_killed { " (OOM killed)" } else { "" };
    let paused = if c.paused { " (Paused)" } else { "" };
    match c.state {
        ContainerState::Created => "Created".into(),
        ContainerState::Dead => "Dead".into(),
        ContainerState::Running => match c.started_at {
            Some(started) => format!("Up {}{paused}", human_duration(now - started)),
            None => format!("Up{paused}"),
        },
        ContainerState::Exited => {
            let code = c
                .exit_code
                .map_or_else(|| "?".to_string(), |code| code.to_string());
            match c.finished_at {
                Some(finished) => format!("Exited ({code}) {}{oom}", ago(finished, now)),
                None => format!("Exited ({code}){oom}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxd_client::models::{ContainerConfig, PortSpec, Resources};
    use chrono::TimeDelta;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn container(state: ContainerState) -> Container {
        Container {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            name: "web".into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            state,
            paused: false,
            pid: None,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            created_at: now() - TimeDelta::seconds(5),
            started_at: None,
            finished_at: None,
            error: None,
            config: ContainerConfig {
                cmd: vec!["sleep".into(), "100".into()],
                ..Default::default()
            },
            resources: Resources::default(),
            restart_policy: "no".into(),
            restart_count: 0,
            next_restart_at: None,
            observed: Default::default(),
            networks: Vec::new(),
        }
    }

    #[test]
    fn status_reads_like_docker() {
        let mut c = container(ContainerState::Created);
        assert_eq!(status(&c, now()), "Created");

        c.state = ContainerState::Running;
        c.started_at = Some(now() - TimeDelta::minutes(3));
        assert_eq!(status(&c, now()), "Up 3 minutes");
        c.paused = true;
        assert_eq!(status(&c, now()), "Up 3 minutes (Paused)");
        c.paused = false;

        c.state = ContainerState::Exited;
        c.exit_code = Some(0);
        c.finished_at = Some(now() - TimeDelta::minutes(2));
        assert_eq!(status(&c, now()), "Exited (0) 2 minutes ago");

        c.exit_code = Some(137);
        c.oom_killed = true;
        c.finished_at = Some(now() - TimeDelta::seconds(1));
        assert_eq!(status(&c, now()), "Exited (137) 1 second ago (OOM killed)");

        c.state = ContainerState::Dead;
        assert_eq!(status(&c, now()), "Dead");
    }

    #[test]
    fn command_is_truncated_and_quoted() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(command(&cmd("sleep 100"), false), "\"sleep 100\"");
        assert_eq!(
            command(&cmd("sh -c while true; do echo hi; done"), false),
            "\"sh -c while true; d…\""
        );
        assert_eq!(
            command(&cmd("sh -c while true; do echo hi; done"), true),
            "\"sh -c while true; do echo hi; done\""
        );
        assert_eq!(
            command(&["echo".into(), "\"x\"".into()], false),
            "\"echo \\\"x\\\"\""
        );
    }

    #[test]
    fn table_has_docker_columns() {
        let mut c = container(ContainerState::Running);
        c.started_at = Some(now() - TimeDelta::seconds(3));
        let out = table(&[c], now(), false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND       CREATED"));
        assert!(lines[0].ends_with("NAMES"));
        assert!(lines[1].starts_with(
            "0123456789ab   busybox   \"sleep 100\"   5 seconds ago   Up 3 seconds           web"
        ));
    }

    #[test]
    fn ports_column_shows_a_running_containers_published_ports() {
        let mut c = container(ContainerState::Running);
        c.started_at = Some(now() - TimeDelta::seconds(3));
        c.config.ports = vec![
            PortSpec {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some(8080),
                container_port: 80,
                protocol: Some("tcp".into()),
            },
            PortSpec {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(5353),
                container_port: 53,
                protocol: Some("udp".into()),
            },
        ];
        let cell = "127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp";
        assert_eq!(ports(&c), cell);
        let out = table(&[c.clone()], now(), false);
        let lines: Vec<&str> = out.lines().collect();
        let at = lines[0].find("PORTS").unwrap();
        assert_eq!(
            lines[0][at..].split_whitespace().collect::<Vec<_>>(),
            ["PORTS", "NAMES"]
        );
        assert_eq!(&lines[1][at..], format!("{cell}   web"));
        // Nothing forwards to a container that is not running.
        c.state = ContainerState::Exited;
        assert_eq!(ports(&c), "");
    }
}
