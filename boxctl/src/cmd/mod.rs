//! The subcommands of `boxctl`, one module each, and the output helpers they share.
//!
//! Every subcommand exposes `Args` (clap) and `run(&Ctx, Args) -> anyhow::Result<i32>`:
//! `Ok(code)` is the process exit status; an `Err` is printed once by `main` as a single
//! line. Commands over several ids (`rm a b c`) report each failure on its own line, keep
//! going, and return 1 at the end, like docker.

pub mod attach;
pub mod create;
pub mod docs;
pub mod doctor;
pub mod events;
pub mod exec;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod logs;
pub mod netopts;
pub mod network;
pub mod pause;
pub mod ports;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod rename;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod security;
pub mod start;
pub mod stats;
pub mod stop;
pub mod tag;
pub mod update;
pub mod version;
pub mod volume;
pub mod wait;
pub mod why;

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use boxd_client::Client;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// What every subcommand gets from the global flags.
pub struct Ctx {
    /// The daemon.
    pub client: Client,
    /// `--json`: print machine-readable output.
    pub json: bool,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("failed to write json")?;
    writeln!(out).context("failed to write json")?;
    Ok(())
}

/// Prints one failure of a multi-id command the way `main` prints a fatal one.
pub fn report(err: &anyhow::Error) {
    eprintln!("boxctl: {err:#}");
}

/// Runs `op` on each id in turn, as the multi-id commands (`start`, `stop`, `kill`,
/// `rm`) do: the id is printed when it worked (with `--json`, one line
/// `{"id": ID}` each), a failure is reported (`failed to VERB ID: why`) and the rest go
/// on. Returns the exit code: 1 if any failed.
pub async fn each_id<'a, F, Fut>(ctx: &Ctx, ids: &'a [String], verb: &str, mut op: F) -> i32
where
    F: FnMut(&'a str) -> Fut,
    Fut: std::future::Future<Output = boxd_client::Result<()>>,
{
    let mut code = 0;
    for id in ids {
        match op(id)
            .await
            .with_context(|| format!("failed to {verb} {id}"))
        {
            Ok(()) if ctx.json => println!("{}", serde_json::json!({ "id": id })),
            Ok(()) => println!("{id}"),
            Err(err) => {
                report(&err);
                code = 1;
            }
        }
    }
    code
}

/// SIGINT and SIGTERM, caught so they can be forwarded to a container (`run`, and
/// `attach` / `run -i` without a terminal), as docker's signal proxy does.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Catches both from now on (for the rest of boxctl's life).
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// The name of the next signal received, as the kill route takes it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// Sends `signal` to the container; one that already exited is not an error (its
/// wait says how it ended).
pub async fn forward_signal(client: &Client, id: &str, signal: &str) {
    match client.kill(id, Some(signal)).await {
        Ok(()) => {}
        Err(err) if err.code() == Some("not_running") => {}
        Err(err) => report(
            &anyhow::Error::new(err)
                .context(format!("failed to forward {signal} to the container")),
        ),
    }
}

/// The first 12 hex digits of an id (without a `sha256:` prefix), as docker shows them.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// A duration for people, as docker's `units.HumanDuration` words it ("5 seconds",
/// "About a minute", "3 hours", "2 weeks"). Negative spans (clock skew) count as zero.
pub fn human_duration(d: TimeDelta) -> String {
    let seconds = d.num_seconds().max(0);
    let minutes = seconds / 60;
    // docker rounds hours to the nearest, but truncates seconds and minutes.
    let hours = (seconds as f64 / 3600.0).round() as i64;
    match seconds {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// "5 seconds ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(now - then))
}

/// A size in decimal units with three significant digits ("4.26MB"), as `docker images`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", three_digits(value), UNITS[unit])
}

/// A size in binary units ("23.43GiB"), as `docker info` shows memory.
pub fn human_size_binary(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{}{}", trim_zeros(format!("{value:.2}")), UNITS[unit])
}

fn three_digits(value: f64) -> String {
    let decimals = match value {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    trim_zeros(format!("{value:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Turns a relative `--since`/`--until` such as `10m` or `1h30m` into the RFC 3339 time
/// that long ago; anything else (a sequence number, unix seconds, a timestamp) is passed
/// to the daemon as it is.
pub fn resolve_time(value: &str, now: DateTime<Utc>) -> String {
    let looks_relative = value.chars().any(|c| c.is_ascii_alphabetic())
        && value.chars().next().is_some_and(|c| c.is_ascii_digit())
        && !value.contains('-')
        && !value.contains(':');
    if looks_relative {
        if let Ok(d) = humantime::parse_duration(value) {
            if let Ok(d) = TimeDelta::from_std(d) {
                return (now - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            }
        }
    }
    value.to_string()
}

/// A left-aligned text table with docker's three-space gutters.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row (as many cells as headers).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == columns {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}   ", width = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_docker_wording() {
        let s = TimeDelta::seconds;
        assert_eq!(human_duration(s(0)), "Less than a second");
        assert_eq!(
            human_duration(TimeDelta::milliseconds(999)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(-5)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(5)), "5 seconds");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(180)), "3 minutes");
        assert_eq!(human_duration(s(59 * 60 + 59)), "59 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(3 * 3600)), "3 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(20 * 86400)), "2 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(3 * 365 * 86400)), "3 years");
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_264_123), "4.26MB");
        assert_eq!(human_size(42_640_000), "42.6MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size_binary(64 * 1024 * 1024), "64MiB");
        assert_eq!(human_size_binary(1536), "1.5KiB");
    }

    #[test]
    fn short_ids_drop_digest_prefix() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn relative_times_become_timestamps() {
        let now = DateTime::parse_from_rfc3339("2024-05-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(resolve_time("10m", now), "2024-05-06T09:50:00Z");
        assert_eq!(resolve_time("1h30m", now), "2024-05-06T08:30:00Z");
        // Sequence numbers, unix seconds and timestamps go to the daemon untouched.
        assert_eq!(resolve_time("42", now), "42");
        assert_eq!(resolve_time("0", now), "0");
        assert_eq!(
            resolve_time("2024-05-06T09:00:00Z", now),
            "2024-05-06T09:00:00Z"
        );
    }

    #[test]
    fn table_pads_columns_to_widest_cell() {
        let mut t = Table::new(&["A", "LONGER", "Z"]);
        t.row(vec!["xxxxx".into(), "y".into(), "last".into()]);
        assert_eq!(t.render(), "A       LONGER   Z\nxxxxx   y        last\n");
    }
}
