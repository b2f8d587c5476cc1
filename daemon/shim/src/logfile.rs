//! The container log file, bounded by size-based rotation ([`LogRotation`]).
//!
//! Before a record would take `container.log` past `max_bytes`, the files shift by
//! one (`container.log.1` -> `.2`, ..., the oldest is overwritten) and
//! `container.log` -> `container.log.1`, and a fresh `container.log` is opened, so at
//! most `max_files` files of about `max_bytes` each exist. Rotation happens only
//! between records (each record goes with one `write_all`), so every file holds whole
//! JSON lines and a reader that reads the rotated files oldest first, then the current
//! one, sees the records in order. A rename keeps the inode, so a reader following
//! the old file reads it to its end and then moves to the new one.
//!
//! The shim is single-threaded and the only writer, so no locking is needed. A
//! rotation that fails (a rename refused) is reported on the shim's stderr and the
//! current file is kept: losing the app's output is worse than a log over its bound.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::protocol::LogRotation;

/// The log file the shim appends records to.
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    size: u64,
    rotation: Option<LogRotation>,
    /// A failed rotation is reported once, not on every record.
    reported: bool,
}

/// `path` with `.n` appended (`container.log.2`).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Opens (creating) a log file for appending, as the shim does at start.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

impl LogFile {
    /// Wraps `file`, already open for appending at `path`.
    pub(crate) fn new(file: File, path: PathBuf, rotation: Option<LogRotation>) -> Self {
        let size = file.metadata().map_or(0, |m| m.len());
        LogFile {
            file,
            path,
            size,
            rotation,
            reported: false,
        }
    }

    /// The current file's metadata.
    pub(crate) fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    /// Rotates first if `len` more bytes would take a non-empty file past the bound.
    fn before_write(&mut self, len: usize) {
        let Some(r) = self.rotation else { return };
        if self.size == 0 || self.size.saturating_add(len as u64) <= r.max_bytes {
            return;
        }
        match self.rotate(r.max_files.max(1)) {
            Ok(()) => self.reported = false,
            Err(e) if !self.reported => {
                eprintln!("boxd shim: rotate {} failed: {e}", self.path.display());
                self.reported = true;
            }
            Err(_) => {}
        }
    }

    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        if keep == 1 {
            std::fs::remove_file(&self.path)?;
        } else {
            // One beyond the bound: left by a run that kept more files.
            ignore_missing(std::fs::remove_file(rotated_path(&self.path, keep)))?;
            for n in (1..keep - 1).rev() {
                ignore_missing(std::fs::rename(
                    rotated_path(&self.path, n),
                    rotated_path(&self.path, n + 1),
                ))?;
            }
            std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        }
        // If this fails the old handle (now `.1`, or unlinked) is still written to.
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.before_write(buf.len());
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    /// One record, whole, in one file.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.before_write(buf.len());
        let result = self.file.write_all(buf);
        // On a partial failure the size is an estimate; the bound stays approximate.
        self.size += buf.len() as u64;
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path, max_bytes: u64, max_files: u32) -> LogFile {
        let path = dir.join("container.log");
        LogFile::new(
            open_append(&path).unwrap(),
            path,
            Some(LogRotation {
                max_bytes,
                max_files,
            }),
        )
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn files_stay_bounded_and_keep_the_newest_records_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = log(tmp.path(), 10, 3);
        for i in 0..10 {
            f.write_all(format!("rec{i}\n").as_bytes()).unwrap();
        }
        // 5 bytes each, two per file: the last 6 records survive, oldest first.
        assert_eq!(read(tmp.path(), "container.log.2"), "rec4\nrec5\n");
        assert_eq!(read(tmp.path(), "container.log.1"), "rec6\nrec7\n");
        assert_eq!(read(tmp.path(), "container.log"), "rec8\nrec9\n");
        assert!(!tmp.path().join("container.log.3").exists());
    }

    #[test]
    fn a_record_larger_than_the_bound_is_written_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = log(tmp.path(), 4, 2);
        f.write_all(b"0123456789\n").unwrap();
        f.write_all(b"ab\n").unwrap();
        assert_eq!(read(tmp.path(), "container.log.1"), "0123456789\n");
        assert_eq!(read(tmp.path(), "container.log"), "ab\n");
    }

    #[test]
    fn one_file_means_start_over_and_the_size_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = log(tmp.path(), 10, 1);
        f.write_all(b"aaaa\n").unwrap();
        drop(f);
        // A new run of the shim appends to what is there and counts it.
        let mut f = log(tmp.path(), 10, 1);
        f.write_all(b"bbbb\n").unwrap();
        assert_eq!(read(tmp.path(), "container.log"), "aaaa\nbbbb\n");
        f.write_all(b"cccc\n").unwrap();
        assert_eq!(read(tmp.path(), "container.log"), "cccc\n");
        assert!(!tmp.path().join("container.log.1").exists());
    }

    #[test]
    fn without_rotation_the_file_grows() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("container.log");
        let mut f = LogFile::new(open_append(&path).unwrap(), path, None);
        for _ in 0..100 {
            f.write_all(b"0123456789\n").unwrap();
        }
        assert_eq!(f.metadata().unwrap().len(), 1100);
    }

    #[test]
    fn a_fewer_files_setting_drops_the_file_beyond_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("container.log.3"), "old\n").unwrap();
        let mut f = log(tmp.path(), 4, 3);
        f.write_all(b"one\n").unwrap();
        f.write_all(b"two\n").unwrap();
        assert!(!tmp.path().join("container.log.3").exists());
        assert_eq!(read(tmp.path(), "container.log.1"), "one\n");
    }
}
