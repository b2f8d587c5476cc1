//! Reading a container's log file: filters, tail, and follow, in bounded memory.
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
//!
//! Memory does not grow with the log: records are read, filtered and rendered one at a
//! time into a batch of at most `BATCH` bytes that waits on a small channel for the
//! client (so a slow client slows the reading, nothing piles up). `tail=N` reads the
//! files backwards in `BLOCK`-sized blocks, newest file first, and holds only the N
//! records it keeps. A line longer than `MAX_RECORD` cannot be a record the shim
//! wrote (it writes at most one read of its pipe per record) and is skipped unread.

use std::collections::VecDeque;
use std::future::Future;
use std::io::SeekFrom;
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use boxd_shim::protocol::LogRecord;
use boxd_types::{LogEntry, LogStream};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const POLL: Duration = Duration::from_millis(100);

/// Bytes read from a log file at a time, forwards (the reader's buffer) and backwards.
const BLOCK: usize = 64 << 10;
/// Rendered output is sent to the client in chunks of about this size.
const BATCH: usize = 32 << 10;
/// Chunks waiting for the client; with `BATCH`, what a slow client can hold up.
const CHANNEL: usize = 8;
/// Longest line taken for a record: the shim's records hold one read of at most 32 KiB,
/// which JSON escaping can grow sixfold at most; anything longer is not one of them.
const MAX_RECORD: usize = 1 << 20;

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
    /// Docker's stream: each entry in its own frame (stream byte, three zero bytes,
    /// big-endian u32 length) so stdout and stderr stay apart, or, for a container with
    /// a terminal (`framed: false`), the raw bytes as [`LogFormat::Raw`].
    Docker {
        /// Frame each entry.
        framed: bool,
    },
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
    /// Only entries at or before this time.
    pub until: Option<DateTime<Utc>>,
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
            until: None,
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
        stream_ok
            && self.since.is_none_or(|t| entry.time >= t)
            && self.until.is_none_or(|t| entry.time <= t)
    }

    /// Appends the entry as the client gets it.
    fn render_into(&self, entry: &LogEntry, out: &mut Vec<u8>) {
        match self.format {
            LogFormat::Ndjson => {
                serde_json::to_writer(&mut *out, entry).expect("log entry serialises");
                out.push(b'\n');
            }
            LogFormat::Docker { framed: true } => {
                let stream = match entry.stream {
                    LogStream::Stdout => 1,
                    LogStream::Stderr => 2,
                };
                let stamp = self.timestamps.then(|| {
                    entry
                        .time
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                });
                let len = entry.line.len() + stamp.as_ref().map_or(0, |t| t.len() + 1);
                out.extend_from_slice(&super::exec::frame_header(stream, len));
                if let Some(t) = stamp {
                    out.extend_from_slice(t.as_bytes());
                    out.push(b' ');
                }
                out.extend_from_slice(entry.line.as_bytes());
            }
            LogFormat::Raw | LogFormat::Docker { framed: false } => {
                if self.timestamps {
                    let time = entry
                        .time
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                    out.extend_from_slice(time.as_bytes());
                    out.push(b' ');
                }
                out.extend_from_slice(entry.line.as_bytes());
            }
        }
    }
}

/// Parses one line of the log file; `None` for a line that is not a record.
pub fn parse_record(line: &str) -> Option<LogEntry> {
    parse_record_bytes(line.as_bytes())
}

/// [`parse_record`] of raw bytes (a line that is not UTF-8 is not a record).
fn parse_record_bytes(line: &[u8]) -> Option<LogEntry> {
    let rec: LogRecord = serde_json::from_slice(line).ok()?;
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
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        if let Err(err) = pump(&path, &opts, running, &tx).await {
            let _ = tx.send(Err(err)).await;
        }
    });
    ReceiverStream::new(rx)
}

type Sender = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// `Break` once the client has gone away.
type Flow = std::io::Result<ControlFlow<()>>;

/// Rendered output on its way to the client, in batches.
struct Out<'a> {
    opts: &'a LogOptions,
    tx: &'a Sender,
    buf: Vec<u8>,
}

impl Out<'_> {
    async fn push(&mut self, entry: &LogEntry) -> ControlFlow<()> {
        if !self.opts.wants(entry) {
            return ControlFlow::Continue(());
        }
        self.opts.render_into(entry, &mut self.buf);
        if self.buf.len() >= BATCH {
            return self.flush().await;
        }
        ControlFlow::Continue(())
    }

    async fn flush(&mut self) -> ControlFlow<()> {
        if self.buf.is_empty() {
            return ControlFlow::Continue(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH)));
        match self.tx.send(Ok(chunk)).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()), // the client went away
        }
    }
}

/// Reads one log file forwards, record by record; a partial last line waits in
/// `pending` until the rest is written.
struct Forward {
    reader: BufReader<tokio::fs::File>,
    pending: Vec<u8>,
    /// The current line is longer than `MAX_RECORD`: skipped up to its `\n`.
    overlong: bool,
}

impl Forward {
    fn new(file: tokio::fs::File) -> Self {
        Forward {
            reader: BufReader::with_capacity(BLOCK, file),
            pending: Vec::new(),
            overlong: false,
        }
    }

    /// Sends every complete record now in the file.
    async fn drain(&mut self, out: &mut Out<'_>) -> Flow {
        loop {
            let room = (MAX_RECORD - self.pending.len()) as u64;
            let n = (&mut self.reader)
                .take(room)
                .read_until(b'\n', &mut self.pending)
                .await?;
            if self.pending.last() == Some(&b'\n') {
                if !self.overlong {
                    if let Some(entry) = parse_record_bytes(&self.pending) {
                        if out.push(&entry).await.is_break() {
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                }
                self.pending.clear();
                self.overlong = false;
            } else if self.pending.len() >= MAX_RECORD {
                self.pending.clear();
                self.overlong = true;
            } else if n == 0 {
                return Ok(ControlFlow::Continue(()));
            }
        }
    }
}

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
    // What rotation moved away, oldest last; read before the current file.
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
    let mut out = Out {
        opts,
        tx,
        buf: Vec::with_capacity(BATCH),
    };

    // What is already there: all of it forwards, or the tail read backwards.
    let mut current = match opts.tail {
        None => {
            for old in rotated.into_iter().rev() {
                if Forward::new(old).drain(&mut out).await?.is_break() {
                    return Ok(());
                }
            }
            let mut current = Forward::new(file);
            if current.drain(&mut out).await?.is_break() {
                return Ok(());
            }
            current
        }
        Some(n) => {
            let mut files = vec![file.into_std().await];
            for old in rotated {
                files.push(old.into_std().await);
            }
            let wanted = opts.clone();
            let (mut files, tail) = tokio::task::spawn_blocking(move || {
                let tail = read_tail(&files, n, |e| wanted.wants(e));
                (files, tail)
            })
            .await
            .map_err(std::io::Error::other)?;
            let tail = tail?;
            for entry in &tail.entries {
                if out.push(entry).await.is_break() {
                    return Ok(());
                }
            }
            // A follower goes on from the first record the tail did not cover.
            let mut file = tokio::fs::File::from_std(files.swap_remove(0));
            file.seek(SeekFrom::Start(tail.resume_at)).await?;
            Forward::new(file)
        }
    };
    if out.flush().await.is_break() || !opts.follow {
        return Ok(());
    }

    loop {
        let still_running = running().await;
        if current.drain(&mut out).await?.is_break() || out.flush().await.is_break() {
            return Ok(());
        }
        // Rotated away: the shim writes no more to the old file once the new one is
        // there, so a second drain gets its end; then the new file, from its start.
        while let Some((file, ino)) = reopen_if_rotated(path, inode).await? {
            if current.drain(&mut out).await?.is_break() || out.flush().await.is_break() {
                return Ok(());
            }
            inode = ino;
            current = Forward::new(file);
            if current.drain(&mut out).await?.is_break() || out.flush().await.is_break() {
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

/// The last records of the log, and where the current file's complete records end.
#[derive(Debug, Default)]
struct Tail {
    /// Oldest first.
    entries: Vec<LogEntry>,
    /// Offset in the current file just after its last complete record.
    resume_at: u64,
}

/// The last `n` records that `wants` takes, reading `files` (the current file first,
/// then the rotated ones, newest first) backwards in blocks from their present ends.
/// Only whole lines count: what follows the last `\n` of a file is a record still
/// being written (or cut by a crash), as for the forward reader.
fn read_tail(
    files: &[std::fs::File],
    n: usize,
    wants: impl Fn(&LogEntry) -> bool,
) -> std::io::Result<Tail> {
    let mut kept: VecDeque<LogEntry> = VecDeque::new();
    let mut resume_at = None;
    let mut block = vec![0u8; BLOCK];
    'files: for (i, file) in files.iter().enumerate() {
        let mut pos = file.metadata()?.len();
        // The bytes of the line being assembled, which lie after `pos`.
        let mut line: VecDeque<u8> = VecDeque::new();
        let mut overlong = false;
        // Until the file's last `\n` is found, the bytes are a partial record.
        let mut seen_newline = false;
        while pos > 0 && kept.len() < n {
            let start = pos.saturating_sub(BLOCK as u64);
            let len = (pos - start) as usize;
            file.read_exact_at(&mut block[..len], start)?;
            let mut hi = len;
            while let Some(nl) = block[..hi].iter().rposition(|b| *b == b'\n') {
                if seen_newline {
                    prepend(&mut line, &block[nl + 1..hi], &mut overlong);
                    take_line(&mut line, &mut overlong, &wants, &mut kept);
                    if kept.len() == n {
                        break;
                    }
                } else {
                    seen_newline = true;
                    if i == 0 {
                        resume_at = Some(start + nl as u64 + 1);
                    }
                }
                line.clear();
                overlong = false;
                hi = nl;
            }
            if kept.len() == n {
                break 'files;
            }
            if seen_newline {
                prepend(&mut line, &block[..hi], &mut overlong);
            }
            pos = start;
        }
        // The file's first line, which no `\n` precedes.
        if pos == 0 && seen_newline && kept.len() < n {
            take_line(&mut line, &mut overlong, &wants, &mut kept);
        }
    }
    if n > 0 && resume_at.is_none() {
        // The current file holds no complete record.
        resume_at = Some(0);
    }
    Ok(Tail {
        entries: kept.into_iter().rev().collect(),
        // With `n == 0` nothing is read; the follower starts at the current end,
        // after the last complete record.
        resume_at: match resume_at {
            Some(at) => at,
            None => last_record_end(&files[0])?,
        },
    })
}

/// Offset just after the last `\n` of `file` (0 without one).
fn last_record_end(file: &std::fs::File) -> std::io::Result<u64> {
    let mut pos = file.metadata()?.len();
    let mut block = vec![0u8; BLOCK];
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK as u64);
        let len = (pos - start) as usize;
        file.read_exact_at(&mut block[..len], start)?;
        if let Some(nl) = block[..len].iter().rposition(|b| *b == b'\n') {
            return Ok(start + nl as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

/// Puts `bytes` in front of the line being assembled, unless it is already too long.
fn prepend(line: &mut VecDeque<u8>, bytes: &[u8], overlong: &mut bool) {
    if *overlong {
        return;
    }
    if line.len() + bytes.len() > MAX_RECORD {
        *overlong = true;
        line.clear();
        return;
    }
    for b in bytes.iter().rev() {
        line.push_front(*b);
    }
}

/// Keeps the assembled line (newest first) when it is a record `wants` takes.
fn take_line(
    line: &mut VecDeque<u8>,
    overlong: &mut bool,
    wants: &impl Fn(&LogEntry) -> bool,
    kept: &mut VecDeque<LogEntry>,
) {
    if !*overlong {
        if let Some(entry) = parse_record_bytes(line.make_contiguous()) {
            if wants(&entry) {
                kept.push_back(entry);
            }
        }
    }
    line.clear();
    *overlong = false;
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

        let until = LogOptions {
            until: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), until).await, "one\ntwo\n");
        // Docker's frames: stream byte 1 or 2, three zeros, big-endian length.
        let framed = LogOptions {
            format: LogFormat::Docker { framed: true },
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(
            collect(path.clone(), framed).await.as_bytes(),
            b"\x02\0\0\0\0\0\0\x04two\n\x01\0\0\0\0\0\0\x06three\n"
        );
        let framed_ts = LogOptions {
            format: LogFormat::Docker { framed: true },
            timestamps: true,
            tail: Some(1),
            ..Default::default()
        };
        let out = collect(path.clone(), framed_ts).await;
        assert_eq!(&out.as_bytes()[..8], b"\x01\0\0\0\0\0\0\x25");
        assert_eq!(&out[8..], "2026-01-01T00:00:03.000000000Z three\n");

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

    /// `count` records `"<prefix><i>\n"`, one second apart, alternating streams.
    fn records(prefix: &str, count: usize, first_second: usize) -> String {
        (0..count)
            .map(|i| {
                let t = chrono::DateTime::from_timestamp((first_second + i) as i64, 0).unwrap();
                let stream = if i % 3 == 2 { "stderr" } else { "stdout" };
                record(
                    &t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    stream,
                    &format!("{prefix}{i}\n"),
                )
            })
            .collect()
    }

    /// The last `n` lines of `all` (whole lines, each ending in `\n`).
    fn last_lines(all: &str, n: usize) -> String {
        let lines: Vec<&str> = all.split_inclusive('\n').collect();
        lines[lines.len().saturating_sub(n)..].concat()
    }

    #[tokio::test]
    async fn tail_reads_backwards_across_blocks_and_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        // Each file is several blocks long, and one record spans a block boundary.
        let long = "x".repeat(BLOCK + 100) + "\n";
        std::fs::write(rotated_path(&path, 2), records("two-", 1500, 0)).unwrap();
        std::fs::write(
            rotated_path(&path, 1),
            records("one-", 1500, 2000) + &record("1970-01-01T01:06:39Z", "stdout", &long),
        )
        .unwrap();
        std::fs::write(&path, records("cur-", 1500, 4000)).unwrap();
        let all = collect(path.clone(), LogOptions::default()).await;
        assert_eq!(all.lines().count(), 4501);
        for n in [
            0, 1, 2, 7, 1499, 1500, 1501, 1502, 3001, 3002, 4500, 4501, 4502, 10_000,
        ] {
            let tail = LogOptions {
                tail: Some(n),
                ..Default::default()
            };
            assert_eq!(
                collect(path.clone(), tail).await,
                last_lines(&all, n),
                "tail={n}"
            );
        }
        // Filters apply before counting, as forwards.
        let errs = LogOptions {
            stdout: false,
            ..Default::default()
        };
        let all_err = collect(path.clone(), errs.clone()).await;
        for n in [1, 500, 501, 1000, 1501, 5000] {
            let tail = LogOptions {
                tail: Some(n),
                ..errs.clone()
            };
            assert_eq!(collect(path.clone(), tail).await, last_lines(&all_err, n));
        }
        let since = LogOptions {
            since: Some(chrono::DateTime::from_timestamp(4000 + 1490, 0).unwrap()),
            tail: Some(100),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), since).await, last_lines(&all, 10));
    }

    #[tokio::test]
    async fn tail_skips_partial_last_lines_and_reads_first_lines_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let partial = r#"{"time":"2026-01-01T00:00:09Z","stream":"stdout","lo"#;
        // A rotated file cut by a crash, an empty one, and a current file whose last
        // record is still being written.
        std::fs::write(
            rotated_path(&path, 3),
            record("2026-01-01T00:00:01Z", "stdout", "a\n"),
        )
        .unwrap();
        std::fs::write(
            rotated_path(&path, 2),
            record("2026-01-01T00:00:02Z", "stdout", "b\n") + partial,
        )
        .unwrap();
        std::fs::write(rotated_path(&path, 1), "").unwrap();
        std::fs::write(
            &path,
            record("2026-01-01T00:00:03Z", "stdout", "c\n") + partial,
        )
        .unwrap();
        let tail = |n| LogOptions {
            tail: Some(n),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), tail(1)).await, "c\n");
        assert_eq!(collect(path.clone(), tail(2)).await, "b\nc\n");
        assert_eq!(collect(path.clone(), tail(3)).await, "a\nb\nc\n");
        assert_eq!(collect(path.clone(), tail(50)).await, "a\nb\nc\n");
        assert_eq!(
            collect(path.clone(), LogOptions::default()).await,
            "a\nb\nc\n"
        );
        // Only a partial record, or nothing at all.
        std::fs::write(&path, partial).unwrap();
        assert_eq!(collect(path.clone(), tail(1)).await, "b\n");
        for n in 1..=3 {
            std::fs::write(rotated_path(&path, n), "").unwrap();
        }
        std::fs::write(&path, "").unwrap();
        assert_eq!(collect(path.clone(), tail(5)).await, "");
        assert_eq!(collect(path.clone(), LogOptions::default()).await, "");
    }

    #[tokio::test]
    async fn overlong_lines_are_skipped_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let huge = record("2026-01-01T00:00:02Z", "stdout", &"y".repeat(MAX_RECORD));
        std::fs::write(
            &path,
            record("2026-01-01T00:00:01Z", "stdout", "a\n")
                + &huge
                + &record("2026-01-01T00:00:03Z", "stdout", "b\n"),
        )
        .unwrap();
        assert_eq!(collect(path.clone(), LogOptions::default()).await, "a\nb\n");
        let tail = LogOptions {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(collect(path.clone(), tail).await, "a\nb\n");
    }

    #[tokio::test]
    async fn follow_after_tail_goes_on_from_the_partial_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let next = record("2026-01-01T00:00:03Z", "stderr", "c\n");
        let (head, rest) = next.split_at(10);
        std::fs::write(
            &path,
            records("old-", 3, 0) + &record("2026-01-01T00:00:02Z", "stdout", "b\n") + head,
        )
        .unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let opts = LogOptions {
            follow: true,
            tail: Some(1),
            ..Default::default()
        };
        let mut s = Box::pin(stream(path.clone(), opts, move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"b\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(rest.as_bytes()).unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"c\n");
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
