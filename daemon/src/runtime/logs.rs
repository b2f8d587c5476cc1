//! Reading a container's log file: filters, tail, and follow.
//!
//! The shim appends one `LogRecord` JSON line per chunk of output (see
//! `boxd_shim::protocol`). Following reads what is there, then polls for more until the
//! container is no longer running, and drains once more: the shim writes the last output
//! before the exit record, and the exit record is in the store before the state changes,
//! so nothing written by the app is missed.
//!
//! The shim rotates the file by size (`container.log` -> `container.log.1` -> `.2`
//! ...; see the shim's `logfile`): what is already there is read from the oldest
//! rotated file to the current one, and a follower that reaches the end of a file
//! that has been renamed away drains it once more and moves on to the new one.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_shim::protocol::LogRecord;
use boxd_types::{LogEntry, LogStream};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const POLL: Duration = Duration::from_millis(100);

/// Default largest size of one container log file (Docker's json-file `max-size`
/// has no default; 10 MiB is what most operators set).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 << 20;
/// Default number of container log files kept, the current one included.
pub const DEFAULT_LOG_MAX_FILES: u32 = 3;

/// How the log is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// The bytes as the app wrote them (stdout and stderr interleaved).
    #[default]
    Raw,
    /// One `LogEntry` JSON per line.
    Ndjson,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Only the last N entries of what is already there.
    pub tail: Option<usize>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Output format.
    pub format: LogFormat,
    /// Prefix raw lines with their time.
    pub timestamps: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            follow: false,
            tail: None,
            since: None,
            stdout: true,
            stderr: true,
            format: LogFormat::Raw,
            timestamps: false,
        }
    }
}

impl LogOptions {
    fn wants(&self, entry: &LogEntry) -> bool {
        let stream_ok = match entry.stream {
            LogStream::Stdout => self.stdout,
            LogStream::Stderr => self.stderr,
        };
        stream_ok && self.since.is_none_or(|t| entry.time >= t)
    }

    fn render(&self, entry: &LogEntry) -> Bytes {
        match self.format {
            LogFormat::Ndjson => {
                let mut line = serde_json::to_vec(entry).expect("log entry serialises");
                line.push(b'\n');
                Bytes::from(line)
            }
            LogFormat::Raw if self.timestamps => Bytes::from(format!(
                "{} {}",
                entry
                    .time
                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                entry.line
            )),
            LogFormat::Raw => Bytes::from(entry.line.clone()),
        }
    }
}

/// Parses one line of the log file; `None` for a line that is not a record.
pub fn parse_record(line: &str) -> Option<LogEntry> {
    let rec: LogRecord = serde_json::from_str(line.trim_end()).ok()?;
    let stream = match rec.stream.as_str() {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        _ => return None,
    };
    let time = DateTime::parse_from_rfc3339(&rec.time)
        .ok()?
        .with_timezone(&Utc);
    Some(LogEntry {
        time,
        stream,
        line: rec.log,
    })
}

/// Streams the log at `path`. `running` says whether more output may still come.
pub fn stream<F, Fut>(
    path: PathBuf,
    opts: LogOptions,
    running: F,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if let Err(err) = pump(&path, &opts, running, &tx).await {
            let _ = tx.send(Err(err)).await;
        }
    });
    ReceiverStream::new(rx)
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

async fn pump<F, Fut>(
    path: &PathBuf,
    opts: &LogOptions,
    running: F,
    tx: &Sender,
) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    // What rotation moved away, oldest first; read before the current file.
    let mut rotated = Vec::new();
    for n in 1.. {
        match tokio::fs::File::open(rotated_path(path, n)).await {
            Ok(f) => rotated.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    // The file appears at the first start; until then, a follower waits for it.
    let file = loop {
        match tokio::fs::File::open(path).await {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !opts.follow || !running().await {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut inode = file.metadata().await?.ino();
    let mut reader = BufReader::new(file);
    let mut pending = String::new();

    // What is already there, with `tail` applied.
    let mut backlog: VecDeque<LogEntry> = VecDeque::new();
    let mut keep = |entry: LogEntry| {
        if opts.wants(&entry) {
            backlog.push_back(entry);
            if let Some(n) = opts.tail {
                while backlog.len() > n {
                    backlog.pop_front();
                }
            }
        }
    };
    for old in rotated.into_iter().rev() {
        let mut old_pending = String::new();
        read_available(&mut BufReader::new(old), &mut old_pending, &mut keep).await?;
    }
    read_available(&mut reader, &mut pending, &mut keep).await?;
    for entry in backlog {
        if tx.send(Ok(opts.render(&entry))).await.is_err() {
            return Ok(()); // the client went away
        }
    }
    if !opts.follow {
        return Ok(());
    }

    loop {
        let mut out = Vec::new();
        let still_running = running().await;
        let mut each = |entry: LogEntry| {
            if opts.wants(&entry) {
                out.push(opts.render(&entry));
            }
        };
        read_available(&mut reader, &mut pending, &mut each).await?;
        // Rotated away: the shim writes no more to the old file once the new one is
        // there, so a second drain gets its end; then the new file, from its start.
        while let Some((file, ino)) = reopen_if_rotated(path, inode).await? {
            read_available(&mut reader, &mut pending, &mut each).await?;
            inode = ino;
            reader = BufReader::new(file);
            pending.clear();
            read_available(&mut reader, &mut pending, &mut each).await?;
        }
        for chunk in out {
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
        // `still_running` was read before the last drain, so output written before the
        // exit was recorded has been sent.
        if !still_running {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// `path` with `.n` appended (`container.log.1`), as the shim names rotated files.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The file now at `path`, if it is no longer the one with inode `inode`.
async fn reopen_if_rotated(
    path: &Path,
    inode: u64,
) -> std::io::Result<Option<(tokio::fs::File, u64)>> {
    match tokio::fs::metadata(path).await {
        Ok(m) if m.ino() != inode => {}
        Ok(_) => return Ok(None),
        // Between the shim's unlink and create (one file kept): look again later.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    match tokio::fs::File::open(path).await {
        Ok(f) => {
            let ino = f.metadata().await?.ino();
            Ok(Some((f, ino)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads every complete line now in the file; a partial last line waits in `pending`.
async fn read_available<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    pending: &mut String,
    mut each: impl FnMut(LogEntry),
) -> std::io::Result<()> {
    loop {
        let n = reader.read_line(pending).await?;
        if n == 0 || !pending.ends_with('\n') {
            return Ok(());
        }
        if let Some(entry) = parse_record(pending) {
            each(entry);
        }
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    fn record(time: &str, stream: &str, log: &str) -> String {
        let mut s = serde_json::to_string(&LogRecord {
            time: time.into(),
            stream: stream.into(),
            log: log.into(),
        })
        .unwrap();
        s.push('\n');
        s
    }

    async fn collect(path: PathBuf, opts: LogOptions) -> String {
        let chunks: Vec<_> = stream(path, opts, || async { false }).collect().await;
        chunks
            .into_iter()
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn filters_tail_and_formats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(record("2026-01-01T00:00:01.000000001Z", "stdout", "one\n").as_bytes())
            .unwrap();
        f.write_all(record("2026-01-01T00:00:02Z", "stderr", "two\n").as_bytes())
            .unwrap();
        f.write_all(b"garbage that is not a record\n").unwrap();
        f.write_all(record("2026-01-01T00:00:03Z", "stdout", "three\n").as_bytes())
            .unwrap();
        // A record still being written is not sent.
        f.write_all(br#"{"time":"2026-01-01T00:00:04Z","stream":"stdout","lo"#)
            .unwrap();

        assert_eq!(
            collect(path.clone(), LogOptions::default()).await,
            "one\ntwo\nthree\n"
        );
        let only_out = LogOptions {
            stderr: false,
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), only_out).await, "one\nthree\n");
        let tail = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), tail).await, "two\nthree\n");
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), since).await, "two\nthree\n");
        let ts = LogOptions {
            timestamps: true,
            tail: Some(1),
            ..Default::default()
        };
        assert_eq!(
            collect(path.clone(), ts).await,
            "2026-01-01T00:00:03.000000000Z three\n"
        );

        let nd = LogOptions {
            format: LogFormat::Ndjson,
            ..Default::default()
        };
        let out = collect(path.clone(), nd).await;
        let entries: Vec<LogEntry> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].stream, LogStream::Stderr);
        assert_eq!(entries[1].line, "two\n");
    }

    #[tokio::test]
    async fn rotated_files_are_read_oldest_first_and_tail_spans_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(
            dir.path().join("container.log.2"),
            record("2026-01-01T00:00:01Z", "stdout", "a\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("container.log.1"),
            record("2026-01-01T00:00:02Z", "stdout", "b\n")
                + &record("2026-01-01T00:00:03Z", "stderr", "c\n"),
        )
        .unwrap();
        std::fs::write(&path, record("2026-01-01T00:00:04Z", "stdout", "d\n")).unwrap();
        assert_eq!(
            collect(path.clone(), LogOptions::default()).await,
            "a\nb\nc\nd\n"
        );
        let tail = LogOptions {
            tail: Some(3),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), tail).await, "b\nc\nd\n");
    }

    #[tokio::test]
    async fn follow_moves_on_to_the_new_file_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(&path, record("2026-01-01T00:00:01Z", "stdout", "a\n")).unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut s = Box::pin(stream(path.clone(), opts, move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"a\n");
        // The last record before the rotation, then the rotation, as the shim does.
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        old.write_all(record("2026-01-01T00:00:02Z", "stdout", "b\n").as_bytes())
            .unwrap();
        std::fs::rename(&path, dir.path().join("container.log.1")).unwrap();
        std::fs::write(&path, record("2026-01-01T00:00:03Z", "stdout", "c\n")).unwrap();
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"b\n");
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"c\n");
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn follow_sends_new_lines_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        std::fs::write(&path, record("2026-01-01T00:00:01Z", "stdout", "a\n")).unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut s = Box::pin(stream(path.clone(), opts, move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"a\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(record("2026-01-01T00:00:02Z", "stdout", "b\n").as_bytes())
            .unwrap();
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"b\n");
        // Written just before the exit is recorded: still delivered, then the end.
        f.write_all(record("2026-01-01T00:00:03Z", "stderr", "c\n").as_bytes())
            .unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"c\n");
        assert!(s.next().await.is_none());
    }
}
