//! Readers, parsers and writers for cgroup and procfs files.
//!
//! Every function takes the path it works on, so tests run against fixture trees in a
//! temporary directory. Nothing here knows which hierarchy it is looking at; `v1` and
//! `v2` decide which files to read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

/// A cgroup or procfs file could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing failed.
    #[error("failed to write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A line did not have the expected shape.
    #[error("malformed line {line:?} in {path}")]
    Malformed { path: PathBuf, line: String },
    /// A counter file lacks the key asked for.
    #[error("no key {key:?} in {path}")]
    MissingKey { path: PathBuf, key: String },
}

impl FileError {
    /// The errno of the underlying I/O error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FileError::Read { source, .. } | FileError::Write { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// Reads a whole file.
pub fn read_string(path: &Path) -> Result<String, FileError> {
    fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes `value` to an existing file with one `write(2)` (O_TRUNC, as a shell's `>`
/// does; cgroupfs ignores it).
///
/// Unlike `fs::write` (and cgroups-rs, which uses `File::create`), this never creates the
/// file: a missing control file means the controller is absent, and creating a plain file
/// in its place (possible when `/sys/fs/cgroup` is a tmpfs) would hide that.
pub fn write_value(path: &Path, value: &str) -> Result<(), FileError> {
    let err = |source| FileError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

/// Parses a flat-keyed file (`memory.events`, `memory.oom_control`, `pids.events`):
/// one `key value` pair per line, values unsigned integers.
pub fn parse_counters(path: &Path, text: &str) -> Result<BTreeMap<String, u64>, FileError> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let malformed = || FileError::Malformed {
            path: path.to_owned(),
            line: line.to_owned(),
        };
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed());
        };
        let value = value.parse::<u64>().map_err(|_| malformed())?;
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// Reads one counter (e.g. `oom_kill`) from a flat-keyed file.
pub fn read_counter(path: &Path, key: &str) -> Result<u64, FileError> {
    let text = read_string(path)?;
    parse_counters(path, &text)?
        .get(key)
        .copied()
        .ok_or_else(|| FileError::MissingKey {
            path: path.to_owned(),
            key: key.to_owned(),
        })
}

/// Reads a file that holds one unsigned number (`memory.limit_in_bytes`).
pub fn read_u64(path: &Path) -> Result<u64, FileError> {
    let text = read_string(path)?;
    text.trim().parse().map_err(|_| FileError::Malformed {
        path: path.to_owned(),
        line: text.trim().to_owned(),
    })
}

/// Parses a `cgroup.procs` file: one pid per line.
pub fn parse_procs(path: &Path, text: &str) -> Result<Vec<i32>, FileError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<i32>().map_err(|_| FileError::Malformed {
                path: path.to_owned(),
                line: l.to_owned(),
            })
        })
        .collect()
}

/// Reads the pids in `dir/cgroup.procs` and in every descendant group, sorted and
/// deduplicated. A group that vanished meanwhile counts as empty.
pub fn read_procs_recursive(dir: &Path) -> Result<Vec<i32>, FileError> {
    let mut pids = Vec::new();
    collect_procs(dir, &mut pids)?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) -> Result<(), FileError> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(text) => pids.extend(parse_procs(&procs, &text)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(FileError::Read {
                path: procs,
                source,
            })
        }
    }
    for child in child_dirs(dir)? {
        collect_procs(&dir.join(child), pids)?;
    }
    Ok(())
}

/// Names of the sub-directories (child groups) of `dir`, sorted; empty when `dir` is absent.
pub fn child_dirs(dir: &Path) -> Result<Vec<String>, FileError> {
    let read_err = |source| FileError::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(read_err)?;
        if entry.file_type().map_err(read_err)?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Parses a space-separated list (`cgroup.controllers`, `cgroup.subtree_control`).
pub fn parse_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// Removes the group `dir` and every group below it, deepest first.
///
/// `rmdir` on a cgroup can fail with EBUSY for a short while after its last task exited
/// (the kernel finishes tearing the task down asynchronously), so each `rmdir` is retried
/// with a growing delay, as runc does (`libcontainer/cgroups/utils.go: RemovePath`).
/// An absent `dir` is not an error.
pub fn remove_group_tree(dir: &Path) -> Result<(), (PathBuf, io::Error)> {
    if !dir.exists() {
        return Ok(());
    }
    let children = child_dirs(dir).map_err(|e| match e {
        FileError::Read { path, source } => (path, source),
        other => (dir.to_owned(), io::Error::other(other.to_string())),
    })?;
    for child in children {
        remove_group_tree(&dir.join(child))?;
    }
    let mut delay = Duration::from_millis(10);
    for attempt in 0.. {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 8 => {
                thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err((dir.to_owned(), e)),
        }
    }
    unreachable!("the retry loop returns")
}

/// A cgroup v1 hierarchy as mounted: where, and which controllers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Mount point, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// Root of the hierarchy that is visible there (`/` unless in a cgroup namespace
    /// or a bind mount of a subtree).
    pub root: PathBuf,
    /// Controllers (from the super options), e.g. `["cpu", "cpuacct"]`; named
    /// hierarchies (`name=systemd`) carry none.
    pub controllers: Vec<String>,
}

/// Super options of a v1 cgroup mount that are flags, not controllers.
const V1_MOUNT_FLAGS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Parses `/proc/<pid>/mountinfo` (proc(5)) and returns the cgroup v1 mounts.
///
/// Line shape: `id parent major:minor root mount-point options [optional...] - fstype
/// source super-options`. The number of optional fields varies, hence the split on
/// the ` - ` separator.
pub fn parse_v1_mounts(path: &Path, text: &str) -> Result<Vec<V1Mount>, FileError> {
    let mut mounts = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let malformed = || FileError::Malformed {
            path: path.to_owned(),
            line: line.to_owned(),
        };
        let (before, after) = line.split_once(" - ").ok_or_else(malformed)?;
        let before: Vec<&str> = before.split(' ').collect();
        let after: Vec<&str> = after.split(' ').collect();
        if before.len() < 6 || after.len() < 3 {
            return Err(malformed());
        }
        if after[0] != "cgroup" {
            continue;
        }
        let controllers = after[2]
            .split(',')
            .filter(|o| !V1_MOUNT_FLAGS.contains(o) && !o.contains('='))
            .map(str::to_owned)
            .collect();
        mounts.push(V1Mount {
            mount_point: PathBuf::from(unescape_mountinfo(before[4])),
            root: PathBuf::from(unescape_mountinfo(before[3])),
            controllers,
        });
    }
    Ok(mounts)
}

/// Reads the cgroup v1 mounts from a mountinfo file (normally `/proc/self/mountinfo`).
pub fn read_v1_mounts(mountinfo: &Path) -> Result<Vec<V1Mount>, FileError> {
    parse_v1_mounts(mountinfo, &read_string(mountinfo)?)
}

/// Undoes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) the kernel
/// uses for paths in mountinfo (`fs/proc_namespace.c: show_mountinfo` → `mangle`).
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // The three bytes after a backslash, when they are an octal number below 0o400.
        let escaped = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_oom_kill_from_v2_memory_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture(
            dir.path(),
            "memory.events",
            "low 0\nhigh 0\nmax 75\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        assert_eq!(read_counter(&path, "oom_kill").unwrap(), 1);
        assert_eq!(read_counter(&path, "max").unwrap(), 75);
    }

    #[test]
    fn reads_oom_kill_from_v1_oom_control() {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture(
            dir.path(),
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        );
        assert_eq!(read_counter(&path, "oom_kill").unwrap(), 3);
        assert_eq!(read_counter(&path, "under_oom").unwrap(), 0);
    }

    #[test]
    fn counter_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        // Kernels before 4.13 have no oom_kill key in memory.oom_control.
        let old = fixture(dir.path(), "old", "oom_kill_disable 0\nunder_oom 0\n");
        assert!(matches!(
            read_counter(&old, "oom_kill"),
            Err(FileError::MissingKey { key, .. }) if key == "oom_kill"
        ));
        let bad = fixture(dir.path(), "bad", "oom_kill lots\n");
        assert!(matches!(
            read_counter(&bad, "oom_kill"),
            Err(FileError::Malformed { .. })
        ));
        let extra = fixture(dir.path(), "extra", "oom_kill 1 2\n");
        assert!(matches!(
            read_counter(&extra, "oom_kill"),
            Err(FileError::Malformed { .. })
        ));
        assert!(matches!(
            read_counter(&dir.path().join("absent"), "oom_kill"),
            Err(FileError::Read { .. })
        ));
    }

    /// This machine's layout: cpu and cpuacct mounted separately, a named systemd
    /// hierarchy and a controller-less cgroup2 at `unified`.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,nosuid shared:5 master:3 - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_separately_mounted_v1_controllers() {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture(dir.path(), "mountinfo", HYBRID);
        let mounts = read_v1_mounts(&path).unwrap();
        let summary: Vec<(String, Vec<String>)> = mounts
            .iter()
            .map(|m| (m.mount_point.display().to_string(), m.controllers.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/sys/fs/cgroup/cpu".into(), vec!["cpu".to_string()]),
                ("/sys/fs/cgroup/cpuacct".into(), vec!["cpuacct".to_string()]),
                ("/sys/fs/cgroup/memory".into(), vec!["memory".to_string()]),
                ("/sys/fs/cgroup/pids".into(), vec!["pids".to_string()]),
                ("/sys/fs/cgroup/systemd".into(), vec![]),
            ]
        );
        assert!(mounts.iter().all(|m| m.root == Path::new("/")));
    }

    #[test]
    fn parses_comounted_controllers_and_escaped_paths() {
        let text = "29 26 0:26 /sub /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpu,cpuacct\n\
                    30 26 0:27 / /mnt/my\\040cgroups rw - cgroup none rw,noprefix,cpuset,release_agent=/x\n";
        let mounts = parse_v1_mounts(Path::new("mi"), text).unwrap();
        assert_eq!(mounts[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(mounts[0].root, Path::new("/sub"));
        assert_eq!(mounts[1].mount_point, Path::new("/mnt/my cgroups"));
        assert_eq!(mounts[1].controllers, vec!["cpuset"]);
    }

    #[test]
    fn rejects_a_mountinfo_line_without_separator() {
        assert!(matches!(
            parse_v1_mounts(Path::new("mi"), "31 23 0:28 / /x rw cgroup\n"),
            Err(FileError::Malformed { .. })
        ));
    }

    #[test]
    fn reads_procs_of_a_group_and_its_descendants() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), "g/cgroup.procs", "42\n7\n");
        fixture(dir.path(), "g/sub/cgroup.procs", "9\n42\n");
        fixture(dir.path(), "g/empty/cgroup.procs", "");
        assert_eq!(
            read_procs_recursive(&dir.path().join("g")).unwrap(),
            vec![7, 9, 42]
        );
        assert_eq!(
            read_procs_recursive(&dir.path().join("absent")).unwrap(),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn write_value_never_creates_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("memory.max");
        assert!(write_value(&missing, "1").is_err());
        assert!(!missing.exists());
        let present = fixture(dir.path(), "pids.max", "max\n");
        write_value(&present, "5").unwrap();
        assert_eq!(fs::read_to_string(present).unwrap(), "5");
    }

    #[test]
    fn removes_a_tree_deepest_first_and_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("g/a/b")).unwrap();
        fs::create_dir_all(dir.path().join("g/c")).unwrap();
        remove_group_tree(&dir.path().join("g")).unwrap();
        assert!(!dir.path().join("g").exists());
        remove_group_tree(&dir.path().join("g")).unwrap();
    }
}
