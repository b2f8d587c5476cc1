//! Resource use of a container's cgroup, read at once (no two-sample delay): memory,
//! CPU, processes and block I/O, through cgroups-rs's controllers on v1 and v2.
//!
//! [`GroupDirs`] finds a container's directories (v1: one per controller, from
//! mountinfo; v2: one); every reader takes them as parameters, so tests read fixture
//! trees. cgroups-rs turns an unreadable file into zero, so [`read`] first checks that
//! the memory directory exists: a vanished group is an error, not a row of zeros.

use std::path::{Path, PathBuf};

use boxd_types::{BlkioStats, CpuStats, MemoryStats, PidsStats};
use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;

use super::files::{self, FileError, V1Mount};
use super::{CgroupVersion, CGROUP_ROOT};

/// v1 reports "no limit" as a huge page-aligned number (`PAGE_COUNTER_MAX` pages);
/// anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Reading stats failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The container's group does not exist (it is not running).
    #[error("cgroup {path} does not exist")]
    NoGroup { path: PathBuf },
    /// `/proc/self/mountinfo` could not be read.
    #[error("failed to find the cgroup v1 mounts")]
    ReadMounts(#[source] FileError),
    /// A controller needed for stats is not mounted.
    #[error("cgroup v1 controller {0} is not mounted")]
    MissingController(&'static str),
}

/// A container's group directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDirs {
    /// The hierarchy.
    pub version: CgroupVersion,
    /// Memory controller directory (v2: the group).
    pub memory: PathBuf,
    /// `cpu` directory.
    pub cpu: PathBuf,
    /// `cpuacct` directory (v1; v2: the group).
    pub cpuacct: PathBuf,
    /// `pids` directory.
    pub pids: PathBuf,
    /// `blkio` directory (v1, when mounted; v2: the group).
    pub blkio: Option<PathBuf>,
}

impl GroupDirs {
    /// The directories of group `id` under `parent` on this host.
    pub fn locate(version: CgroupVersion, parent: &str, id: &str) -> Result<Self, StatsError> {
        match version {
            CgroupVersion::V2 => Ok(Self::v2(Path::new(CGROUP_ROOT), parent, id)),
            CgroupVersion::V1 => {
                let mounts = files::read_v1_mounts(Path::new("/proc/self/mountinfo"))
                    .map_err(StatsError::ReadMounts)?;
                Self::v1(&mounts, parent, id)
            }
        }
    }

    /// The directories of many groups under `parent`, in `ids` order; mountinfo is read
    /// once for all of them (a scrape of a thousand containers is one read, not a
    /// thousand).
    pub fn locate_all(
        version: CgroupVersion,
        parent: &str,
        ids: &[String],
    ) -> Result<Vec<Self>, StatsError> {
        match version {
            CgroupVersion::V2 => Ok(ids
                .iter()
                .map(|id| Self::v2(Path::new(CGROUP_ROOT), parent, id))
                .collect()),
            CgroupVersion::V1 => {
                let mounts = files::read_v1_mounts(Path::new("/proc/self/mountinfo"))
                    .map_err(StatsError::ReadMounts)?;
                ids.iter().map(|id| Self::v1(&mounts, parent, id)).collect()
            }
        }
    }

    /// v2: `<root>/<parent>/<id>` for everything.
    pub fn v2(root: &Path, parent: &str, id: &str) -> Self {
        let dir = root.join(parent).join(id);
        GroupDirs {
            version: CgroupVersion::V2,
            memory: dir.clone(),
            cpu: dir.clone(),
            cpuacct: dir.clone(),
            pids: dir.clone(),
            blkio: Some(dir),
        }
    }

    /// v1: `<mount of each controller>/<parent>/<id>`.
    pub fn v1(mounts: &[V1Mount], parent: &str, id: &str) -> Result<Self, StatsError> {
        let dir = |controller: &str| {
            mounts
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == controller))
                .map(|m| m.mount_point.join(parent).join(id))
        };
        let need = |c: &'static str| dir(c).ok_or(StatsError::MissingController(c));
        Ok(GroupDirs {
            version: CgroupVersion::V1,
            memory: need("memory")?,
            cpu: need("cpu")?,
            cpuacct: need("cpuacct")?,
            pids: need("pids")?,
            blkio: dir("blkio"),
        })
    }

    fn is_v2(&self) -> bool {
        self.version == CgroupVersion::V2
    }
}

/// Memory, CPU, processes and block I/O of a group, read now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Memory.
    pub memory: MemoryStats,
    /// CPU.
    pub cpu: CpuStats,
    /// Processes.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
}

/// Reads every number of the group.
pub fn read(dirs: &GroupDirs) -> Result<GroupStats, StatsError> {
    if !dirs.memory.is_dir() {
        return Err(StatsError::NoGroup {
            path: dirs.memory.clone(),
        });
    }
    Ok(GroupStats {
        memory: memory(dirs),
        cpu: cpu(dirs),
        pids: pids(dirs),
        blkio: blkio(dirs),
    })
}

/// Memory numbers (see [`MemoryStats`]).
pub fn memory(dirs: &GroupDirs) -> MemoryStats {
    let mem = MemController::new(dirs.memory.clone(), dirs.memory.clone(), dirs.is_v2());
    let m = mem.memory_stat();
    let swap = mem.memswap();
    let limit = u64::try_from(m.limit_in_bytes)
        .ok()
        .filter(|l| *l < V1_UNLIMITED);
    if dirs.is_v2() {
        MemoryStats {
            usage: m.usage_in_bytes,
            limit,
            // memory.peak exists from Linux 5.19.
            peak: dirs
                .memory
                .join("memory.peak")
                .exists()
                .then_some(m.max_usage_in_bytes),
            cache: m.stat.raw.get("file").copied().unwrap_or(0),
            swap: dirs
                .memory
                .join("memory.swap.current")
                .exists()
                .then_some(swap.usage_in_bytes),
        }
    } else {
        MemoryStats {
            usage: m.usage_in_bytes,
            limit,
            peak: Some(m.max_usage_in_bytes),
            cache: m.stat.cache,
            // memsw counts memory plus swap; without swap accounting it is absent.
            swap: dirs
                .memory
                .join("memory.memsw.usage_in_bytes")
                .exists()
                .then(|| swap.usage_in_bytes.saturating_sub(m.usage_in_bytes)),
        }
    }
}

/// CPU numbers (see [`CpuStats`]).
pub fn cpu(dirs: &GroupDirs) -> CpuStats {
    let stat_text = CpuController::new(dirs.cpu.clone(), dirs.cpu.clone(), dirs.is_v2())
        .cpu()
        .stat;
    let stat = files::parse_counters(&dirs.cpu.join("cpu.stat"), &stat_text).unwrap_or_default();
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    if dirs.is_v2() {
        CpuStats {
            usage_usec: get("usage_usec"),
            user_usec: get("user_usec"),
            system_usec: get("system_usec"),
            nr_periods: get("nr_periods"),
            nr_throttled: get("nr_throttled"),
            throttled_usec: get("throttled_usec"),
        }
    } else {
        let acct = CpuAcctController::new(dirs.cpuacct.clone(), dirs.cpuacct.clone()).cpuacct();
        CpuStats {
            usage_usec: acct.usage / 1000,
            user_usec: acct.usage_user / 1000,
            system_usec: acct.usage_sys / 1000,
            nr_periods: get("nr_periods"),
            nr_throttled: get("nr_throttled"),
            throttled_usec: get("throttled_time") / 1000,
        }
    }
}

/// Process numbers (see [`PidsStats`]).
pub fn pids(dirs: &GroupDirs) -> PidsStats {
    let p = PidController::new(dirs.pids.clone(), dirs.pids.clone(), dirs.is_v2());
    PidsStats {
        current: p.get_pid_current().unwrap_or(0),
        max: match p.get_pid_max() {
            Ok(MaxValue::Value(v)) => u64::try_from(v).ok(),
            _ => None,
        },
    }
}

/// Block I/O bytes (see [`BlkioStats`]).
pub fn blkio(dirs: &GroupDirs) -> BlkioStats {
    let Some(dir) = &dirs.blkio else {
        return BlkioStats::default();
    };
    if dirs.is_v2() {
        // Parsed here: cgroups-rs's io.stat parser skips lines with more than the six
        // classic keys (iocost and iolatency add some) and panics on odd device numbers.
        let text = files::read_string(&dir.join("io.stat")).unwrap_or_default();
        return parse_io_stat(&text);
    }
    let b = BlkIoController::new(dir.clone(), dir.clone(), false).blkio();
    {
        // The recursive file includes sub-groups a container may have made; the
        // throttle one is filled on kernels where the CFQ-only file stays empty.
        let mut services = b.io_service_bytes_recursive;
        if services.is_empty() {
            services = b.throttle.io_service_bytes_recursive;
        }
        BlkioStats {
            read_bytes: services.iter().map(|s| s.read).sum(),
            write_bytes: services.iter().map(|s| s.write).sum(),
        }
    }
}

/// Sums `rbytes=` and `wbytes=` over the devices of a v2 `io.stat`.
fn parse_io_stat(text: &str) -> BlkioStats {
    let mut out = BlkioStats::default();
    for field in text.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value = value.parse::<u64>().unwrap_or(0);
        match key {
            "rbytes" => out.read_bytes += value,
            "wbytes" => out.write_bytes += value,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn v2_stats_from_fixture_files() {
        let root = tempfile::tempdir().unwrap();
        let dirs = GroupDirs::v2(root.path(), "boxd", "c1");
        let d = &dirs.memory;
        put(d, "memory.current", "1048576\n");
        put(d, "memory.max", "67108864\n");
        put(d, "memory.high", "max\n");
        put(d, "memory.low", "0\n");
        put(d, "memory.min", "0\n");
        put(d, "memory.peak", "2097152\n");
        put(d, "memory.stat", "anon 524288\nfile 4096\n");
        put(d, "memory.swap.current", "0\n");
        put(d, "memory.swap.max", "max\n");
        put(
            d,
            "cpu.stat",
            "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 777\n",
        );
        put(d, "pids.current", "3\n");
        put(d, "pids.max", "32\n");
        put(
            d,
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0 cost.usage=4\n",
        );
        let s = read(&dirs).unwrap();
        assert_eq!(
            s.memory,
            MemoryStats {
                usage: 1 << 20,
                limit: Some(64 << 20),
                peak: Some(2 << 20),
                cache: 4096,
                swap: Some(0),
            }
        );
        assert_eq!(
            s.cpu,
            CpuStats {
                usage_usec: 3000,
                user_usec: 2000,
                system_usec: 1000,
                nr_periods: 10,
                nr_throttled: 4,
                throttled_usec: 777,
            }
        );
        assert_eq!(
            s.pids,
            PidsStats {
                current: 3,
                max: Some(32)
            }
        );
        assert_eq!((s.blkio.read_bytes, s.blkio.write_bytes), (101, 202));
        put(d, "memory.max", "max\n");
        put(d, "pids.max", "max\n");
        let s = read(&dirs).unwrap();
        assert_eq!((s.memory.limit, s.pids.max), (None, None));
    }

    #[test]
    fn v1_stats_from_fixture_files() {
        let root = tempfile::tempdir().unwrap();
        let mount = |c: &str| V1Mount {
            mount_point: root.path().join(c),
            root: PathBuf::from("/"),
            controllers: vec![c.to_owned()],
        };
        let mounts: Vec<V1Mount> = ["memory", "cpu", "cpuacct", "pids", "blkio"]
            .iter()
            .map(|c| mount(c))
            .collect();
        let dirs = GroupDirs::v1(&mounts, "boxd", "c1").unwrap();
        assert_eq!(dirs.memory, root.path().join("memory/boxd/c1"));
        put(&dirs.memory, "memory.usage_in_bytes", "1048576\n");
        put(
            &dirs.memory,
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        put(&dirs.memory, "memory.max_usage_in_bytes", "3145728\n");
        put(&dirs.memory, "memory.stat", "cache 8192\nrss 4096\n");
        put(
            &dirs.cpu,
            "cpu.stat",
            "nr_periods 5\nnr_throttled 2\nthrottled_time 3000000\n",
        );
        put(&dirs.cpuacct, "cpuacct.usage", "9000000\n");
        put(&dirs.cpuacct, "cpuacct.usage_user", "6000000\n");
        put(&dirs.cpuacct, "cpuacct.usage_sys", "3000000\n");
        put(&dirs.pids, "pids.current", "2\n");
        put(&dirs.pids, "pids.max", "max\n");
        put(
            dirs.blkio.as_ref().unwrap(),
            "blkio.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
        );
        let s = read(&dirs).unwrap();
        assert_eq!(
            s.memory,
            MemoryStats {
                usage: 1 << 20,
                limit: None,
                peak: Some(3 << 20),
                cache: 8192,
                swap: None,
            }
        );
        assert_eq!(
            s.cpu,
            CpuStats {
                usage_usec: 9000,
                user_usec: 6000,
                system_usec: 3000,
                nr_periods: 5,
                nr_throttled: 2,
                throttled_usec: 3000,
            }
        );
        assert_eq!(
            s.pids,
            PidsStats {
                current: 2,
                max: None
            }
        );
        assert_eq!((s.blkio.read_bytes, s.blkio.write_bytes), (4096, 8192));
    }

    #[test]
    fn a_missing_group_is_an_error_not_zeros() {
        let root = tempfile::tempdir().unwrap();
        let dirs = GroupDirs::v2(root.path(), "boxd", "gone");
        assert!(matches!(read(&dirs), Err(StatsError::NoGroup { .. })));
        assert!(matches!(
            GroupDirs::v1(&[], "boxd", "c1"),
            Err(StatsError::MissingController("memory"))
        ));
    }
}
