//! `boxctl logs [-f] [--tail N] [--since T] [-t] ID`: prints a container's output, its
//! stdout entries to stdout and its stderr entries to stderr, as they arrive.
//!
//! Also owns [`LogPrinter`], which `run` uses for the same job.

use anyhow::Context as _;
use boxd_client::models::{LogEntry, LogStream};
use boxd_client::LogsOptions;
use clap::Args as ClapArgs;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{resolve_time, Ctx};

/// The options of `logs`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Keep following the output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of entries to show from the end, or "all".
    #[arg(long, short = 'n', default_value = "all", value_name = "N|all", value_parser = parse_tail)]
    pub tail: Tail,
    /// Show output since a time: RFC 3339, unix seconds, or relative (10m, 1h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Container id, id prefix, or name.
    pub id: String,
}

/// `--tail`: a count, or everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail(pub Option<u64>);

fn parse_tail(s: &str) -> Result<Tail, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Tail(None));
    }
    s.parse()
        .map(|n| Tail(Some(n)))
        .map_err(|_| format!("invalid tail {s:?}: a number or \"all\""))
}

/// Runs `boxctl logs`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let options = LogsOptions {
        follow: args.follow,
        tail: args.tail.0,
        since: args
            .since
            .as_deref()
            .map(|s| resolve_time(s, chrono::Utc::now())),
        ..LogsOptions::default()
    };
    let mut stream = ctx
        .client
        .logs(&args.id, options)
        .await
        .with_context(|| format!("failed to read the logs of {}", args.id))?;
    if ctx.json {
        // One JSON line per entry (time, stream, line), as the API's ndjson.
        while let Some(entry) = stream.next().await {
            let entry = entry.context("log stream broke off")?;
            let mut line = serde_json::to_vec(&entry).context("failed to encode a log entry")?;
            line.push(b'\n');
            tokio::io::AsyncWriteExt::write_all(&mut tokio::io::stdout(), &line)
                .await
                .context("failed to write a log entry")?;
        }
        return Ok(0);
    }
    let mut printer = LogPrinter::new(args.timestamps);
    while let Some(entry) = stream.next().await {
        let entry = entry.context("log stream broke off")?;
        printer.write(&entry).await?;
    }
    Ok(0)
}

/// Writes log entries to this process's stdout and stderr, flushing each so interleaving
/// follows arrival order. A closed stdout or stderr (`| head`) is not an error: that
/// stream's output is dropped and the rest goes on.
pub struct LogPrinter {
    stdout: tokio::io::Stdout,
    stderr: tokio::io::Stderr,
    timestamps: bool,
    /// Per stream: the last byte written ended a line, so a timestamp goes next.
    line_start: [bool; 2],
    /// Per stream: its reader went away.
    closed: [bool; 2],
}

impl LogPrinter {
    /// A printer; with `timestamps`, each line starts with its RFC 3339 time.
    pub fn new(timestamps: bool) -> LogPrinter {
        LogPrinter {
            stdout: tokio::io::stdout(),
            stderr: tokio::io::stderr(),
            timestamps,
            line_start: [true; 2],
            closed: [false; 2],
        }
    }

    /// Writes one entry to the stream it came from.
    pub async fn write(&mut self, entry: &LogEntry) -> anyhow::Result<()> {
        let index = match entry.stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        };
        if self.closed[index] {
            return Ok(());
        }
        let bytes = if self.timestamps {
            let stamp = entry
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            stamp_lines(&entry.line, &stamp, &mut self.line_start[index])
        } else {
            entry.line.clone()
        };
        let writer: &mut (dyn AsyncWrite + Unpin) = match index {
            0 => &mut self.stdout,
            _ => &mut self.stderr,
        };
        let result = async {
            writer.write_all(bytes.as_bytes()).await?;
            writer.flush().await
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed[index] = true;
                Ok(())
            }
            Err(err) => Err(err).context("failed to write the container's output"),
        }
    }
}

/// `text` with `stamp ` before each line that starts in it; `line_start` carries whether
/// the previous entry ended its line, since an entry may hold a partial line.
fn stamp_lines(text: &str, stamp: &str, line_start: &mut bool) -> String {
    let mut out = String::with_capacity(text.len() + stamp.len() + 1);
    for piece in text.split_inclusive('\n') {
        if *line_start {
            out.push_str(stamp);
            out.push(' ');
        }
        out.push_str(piece);
        *line_start = piece.ends_with('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_takes_count_or_all() {
        assert_eq!(parse_tail("all"), Ok(Tail(None)));
        assert_eq!(parse_tail("ALL"), Ok(Tail(None)));
        assert_eq!(parse_tail("10"), Ok(Tail(Some(10))));
        assert!(parse_tail("-1").is_err());
        assert!(parse_tail("x").is_err());
    }

    #[test]
    fn timestamps_go_before_each_line_only() {
        let mut start = true;
        assert_eq!(stamp_lines("a\nb\n", "T", &mut start), "T a\nT b\n");
        assert!(start);
        assert_eq!(stamp_lines("par", "T", &mut start), "T par");
        assert!(!start);
        assert_eq!(stamp_lines("tial\nnext", "U", &mut start), "tial\nU next");
        assert!(!start);
    }
}
