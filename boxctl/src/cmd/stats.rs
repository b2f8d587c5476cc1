//! `boxctl stats [--no-stream] [ID...]`: a live table of running containers' resource
//! use, as `docker stats`; every running container unless ids are given.
//!
//! The daemon answers at once with cumulative counters; CPU % is the change of CPU time
//! between two samples over the wall time between them, so `--no-stream` takes two
//! samples half a second apart. `--json` prints the samples as they come.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use boxd_client::models::ContainerStats;
use clap::Args as ClapArgs;
use futures_util::StreamExt;

use super::{human_size, human_size_binary, short_id, Ctx, Table};

/// Time between two samples.
const INTERVAL_MS: u64 = 1000;

/// The options of `stats`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Print one table and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Containers to show (id, prefix or name); all running ones when absent.
    pub containers: Vec<String>,
}

/// Runs `boxctl stats`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let keep = |s: &ContainerStats| {
        args.containers.is_empty()
            || args
                .containers
                .iter()
                .any(|c| s.name == *c || s.id.starts_with(c.as_str()))
    };
    if args.no_stream {
        let first = ctx
            .client
            .all_stats()
            .await
            .context("failed to read stats")?;
        if ctx.json {
            let mine: Vec<_> = first.into_iter().filter(|s| keep(s)).collect();
            super::print_json(&mine)?;
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = ctx
            .client
            .all_stats()
            .await
            .context("failed to read stats")?;
        let prev = by_id(first);
        let rows: Vec<_> = second.into_iter().filter(|s| keep(s)).collect();
        print!("{}", table(&rows, &prev));
        return Ok(0);
    }
    let mut stream = ctx
        .client
        .all_stats_stream(INTERVAL_MS)
        .await
        .context("failed to read stats")?;
    let mut prev = HashMap::new();
    while let Some(sample) = stream.next().await {
        let sample: Vec<_> = sample
            .context("stats stream broke off")?
            .into_iter()
            .filter(|s| keep(s))
            .collect();
        let text = if ctx.json {
            format!("{}\n", serde_json::to_string(&sample)?)
        } else {
            // Clear the screen and go home, as docker stats does.
            format!("\x1b[2J\x1b[H{}", table(&sample, &prev))
        };
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
            other => other.context("failed to write stats")?,
        }
        prev = by_id(sample);
    }
    Ok(0)
}

fn by_id(samples: Vec<ContainerStats>) -> HashMap<String, ContainerStats> {
    samples.into_iter().map(|s| (s.id.clone(), s)).collect()
}

/// CPU use between two samples, in percent of one CPU.
pub fn cpu_percent(prev: &ContainerStats, now: &ContainerStats) -> Option<f64> {
    let wall_usec = (now.read - prev.read).num_microseconds()?;
    if wall_usec <= 0 {
        return None;
    }
    let used = now.cpu.usage_usec.checked_sub(prev.cpu.usage_usec)?;
    Some(used as f64 * 100.0 / wall_usec as f64)
}

/// The table: one row per container.
pub fn table(samples: &[ContainerStats], prev: &HashMap<String, ContainerStats>) -> String {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
        "NET I/O",
        "BLOCK I/O",
    ]);
    for s in samples {
        let cpu = prev
            .get(&s.id)
            .and_then(|p| cpu_percent(p, s))
            .map_or_else(|| "--".to_owned(), |p| format!("{p:.2}%"));
        let limit = s
            .memory
            .limit
            .map_or_else(|| "unlimited".to_owned(), human_size_binary);
        let mem_pct = s.memory.limit.filter(|l| *l > 0).map_or_else(
            || "--".to_owned(),
            |l| format!("{:.2}%", s.memory.usage as f64 * 100.0 / l as f64),
        );
        t.row(vec![
            short_id(&s.id).to_owned(),
            s.name.clone(),
            cpu,
            format!("{} / {limit}", human_size_binary(s.memory.usage)),
            mem_pct,
            s.pids.current.to_string(),
            // Received / sent, in decimal units, as docker stats prints it.
            format!(
                "{} / {}",
                human_size(s.network.rx_bytes),
                human_size(s.network.tx_bytes)
            ),
            format!(
                "{} / {}",
                human_size(s.blkio.read_bytes),
                human_size(s.blkio.write_bytes)
            ),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use boxd_client::models::{BlkioStats, CpuStats, MemoryStats, NetworkStats, PidsStats};

    fn sample(ms: i64, usage_usec: u64) -> ContainerStats {
        ContainerStats {
            id: "ab".repeat(32),
            name: "web".into(),
            read: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap(),
            memory: MemoryStats {
                usage: 32 << 20,
                limit: Some(64 << 20),
                ..Default::default()
            },
            cpu: CpuStats {
                usage_usec,
                ..Default::default()
            },
            pids: PidsStats {
                current: 3,
                max: None,
            },
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let (a, b) = (sample(0, 1_000_000), sample(1000, 1_500_000));
        assert_eq!(cpu_percent(&a, &b), Some(50.0));
        assert_eq!(cpu_percent(&b, &a), None, "time went backwards");
    }

    #[test]
    fn table_shows_usage_limit_and_percentages() {
        let (a, b) = (sample(0, 0), sample(1000, 250_000));
        let text = table(&[b], &by_id(vec![a]));
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("abababababab   web"), "{row}");
        assert!(row.contains("25.00%"), "{row}");
        assert!(row.contains("32MiB / 64MiB"), "{row}");
        assert!(row.contains("50.00%"), "{row}");
        let first = table(&[sample(0, 0)], &HashMap::new());
        assert!(first.lines().nth(1).unwrap().contains("--"));
    }

    #[test]
    fn net_io_is_received_over_sent_in_decimal_units_before_block_io() {
        let mut s = sample(0, 0);
        s.network = NetworkStats {
            rx_bytes: 1234,
            tx_bytes: 3_400_000,
            ..Default::default()
        };
        s.blkio = BlkioStats {
            read_bytes: 0,
            write_bytes: 12_000_000_000,
        };
        let text = table(&[s], &HashMap::new());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT   MEM %    PIDS   NET I/O          BLOCK I/O"
        );
        assert_eq!(
            lines[1],
            "abababababab   web    --      32MiB / 64MiB       50.00%   3      1.23kB / 3.4MB   0B / 12GB"
        );
        // A container without a network (mode none or host) reads zero both ways.
        let quiet = table(&[sample(0, 0)], &HashMap::new());
        assert!(quiet
            .lines()
            .nth(1)
            .unwrap()
            .contains("   0B / 0B   0B / 0B"));
    }
}
