//! Files the shim shares with the daemon: atomic writes into the state dir, and the
//! OOM counter it reads from the cgroup.
//!
//! A reader of the state dir sees either no file or a whole one: every file is
//! written to a temporary name and renamed into place. Nothing is fsynced: the files
//! only have to outlive a crash of the daemon or the shim (a process; the kernel keeps
//! what was written), never a crash of the host, after which the state dir counts for
//! nothing (it is a tmpfs by default, and reconcile tells a reboot by the boot id).
//! An fsync here cost a journal commit on every start on disk-backed state dirs.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::protocol::OomCounter;

/// A state-dir file that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("failed to write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Write `bytes` to `dir/name` atomically (temp file, rename).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| StateError::WriteFile {
        path: path.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err)
}

/// The value of `key` in a `key value` lines file (`memory.oom_control`,
/// `memory.events`).
pub fn parse_counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next()? == key).then(|| parts.next()?.parse().ok())?
    })
}

/// Read the OOM counter; `None` when it is not configured or not readable.
pub fn read_counter(counter: Option<&OomCounter>) -> Option<u64> {
    let c = counter?;
    parse_counter(&std::fs::read_to_string(&c.path).ok()?, &c.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_counter_finds_the_key() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_counter(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_counter(v2, "oom_kill"), Some(1));
        assert_eq!(parse_counter(v2, "oom"), Some(2));
        assert_eq!(parse_counter(v2, "missing"), None);
        assert_eq!(parse_counter("oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn read_counter_takes_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.events");
        std::fs::write(&path, "oom 1\noom_kill 7\n").unwrap();
        let c = OomCounter {
            path,
            key: "oom_kill".into(),
        };
        assert_eq!(read_counter(Some(&c)), Some(7));
        assert_eq!(read_counter(None), None);
    }

    #[test]
    fn write_atomic_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "exit.json", b"one").unwrap();
        write_atomic(dir.path(), "exit.json", b"two").unwrap();
        assert_eq!(std::fs::read(dir.path().join("exit.json")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left");
    }
}
