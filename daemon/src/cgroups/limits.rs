//! Checking and translating resource limits, with no file access.
//!
//! [`validate`] turns values the kernel would refuse into a 400 with a message saying
//! what to fix; the rest translates Docker's semantics (`--memory-swap`, `--cpu-shares`)
//! into what cgroup v1 and v2 files take. `v1` and `v2` only write what this module
//! computes.

use std::fmt;

use boxd_types::Resources;

/// Smallest memory limit accepted: 6 MiB, Docker's minimum (`daemon/daemon_unix.go:
/// linuxMinMemory`). Below that the runtime itself does not fit and the container dies
/// with an OOM kill before the app starts, which reads as a bug rather than a limit.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Largest CPU shares value the kernel takes (`MAX_SHARES` in kernel/sched/sched.h).
pub const MAX_CPU_SHARES: u64 = 262_144;
/// Smallest CPU shares value the kernel takes (`MIN_SHARES`).
pub const MIN_CPU_SHARES: u64 = 2;
/// CFS bandwidth bounds (kernel/sched/core.c: `min_cfs_quota_period` is 1 ms,
/// `max_cfs_quota_period` is 1 s; a quota below 1 ms is refused).
pub const MIN_CFS_US: u64 = 1_000;
/// See [`MIN_CFS_US`].
pub const MAX_CFS_PERIOD_US: u64 = 1_000_000;
/// The kernel's default CFS period.
pub const DEFAULT_CFS_PERIOD_US: u64 = 100_000;

/// A resource value the kernel would refuse; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidResources {
    /// `memory_bytes` under [`MIN_MEMORY_BYTES`].
    #[error("memory_bytes must be at least 6 MiB ({MIN_MEMORY_BYTES} bytes), got {0}")]
    MemoryTooSmall(u64),
    /// `memory_bytes` beyond what the kernel's signed 64-bit files hold.
    #[error("memory_bytes must be at most {max}, got {0}", max = i64::MAX)]
    MemoryTooLarge(u64),
    /// `memory_swap_bytes` given without `memory_bytes`.
    #[error(
        "memory_swap_bytes is memory plus swap, so it needs memory_bytes; set memory_bytes too"
    )]
    SwapWithoutMemory,
    /// `memory_swap_bytes` below `memory_bytes`.
    #[error("memory_swap_bytes ({swap}) is memory plus swap and must be at least memory_bytes ({memory}); use -1 for unlimited swap")]
    SwapBelowMemory { swap: i64, memory: u64 },
    /// `memory_swap_bytes` negative but not -1.
    #[error("memory_swap_bytes must be a byte count or -1 for unlimited swap, got {0}")]
    SwapNegative(i64),
    /// `memory_swappiness` over 100.
    #[error("memory_swappiness must be between 0 and 100, got {0}")]
    Swappiness(u64),
    /// `memory_high_bytes` under [`MIN_MEMORY_BYTES`] or beyond what the kernel holds.
    #[error("memory_high_bytes must be between 6 MiB ({MIN_MEMORY_BYTES} bytes) and {max}, got {0}", max = i64::MAX)]
    MemoryHighRange(u64),
    /// `memory_high_bytes` above `memory_bytes`: it could never take effect.
    #[error("memory_high_bytes ({high}) must not exceed memory_bytes ({memory}): the hard limit would act first")]
    MemoryHighAboveLimit { high: u64, memory: u64 },
    /// `pids_max` zero or negative but not -1.
    #[error("pids_max must be at least 1, or -1 for no limit, got {0}")]
    PidsMax(i64),
    /// `cpu_period_us` outside 1 ms..=1 s.
    #[error("cpu_period_us must be between 1000 (1 ms) and 1000000 (1 s), got {0}")]
    CpuPeriod(u64),
    /// `cpu_quota_us` under 1 ms and not -1.
    #[error("cpu_quota_us must be at least 1000 (1 ms), or -1 for no limit, got {0}")]
    CpuQuota(i64),
    /// `cpu_shares` outside 2..=262144.
    #[error("cpu_shares must be between 2 and 262144 (1024 is the default), got {0}")]
    CpuShares(u64),
}

impl InvalidResources {
    /// The `Resources` field at fault, for API error bodies.
    pub fn field(&self) -> &'static str {
        match self {
            Self::MemoryTooSmall(_) | Self::MemoryTooLarge(_) => "memory_bytes",
            Self::SwapWithoutMemory | Self::SwapBelowMemory { .. } | Self::SwapNegative(_) => {
                "memory_swap_bytes"
            }
            Self::Swappiness(_) => "memory_swappiness",
            Self::MemoryHighRange(_) | Self::MemoryHighAboveLimit { .. } => "memory_high_bytes",
            Self::PidsMax(_) => "pids_max",
            Self::CpuPeriod(_) => "cpu_period_us",
            Self::CpuQuota(_) => "cpu_quota_us",
            Self::CpuShares(_) => "cpu_shares",
        }
    }
}

/// Limits the hierarchy cannot apply as asked, in words for the create answer and
/// `inspect`: swappiness other than 0 on v2 (no per-group swappiness there), and
/// `memory_high_bytes` on v1 (no memory.high; soft_limit_in_bytes acts only under
/// host-wide pressure, which is not what memory.high promises).
pub fn hierarchy_warnings(version: super::CgroupVersion, r: &Resources) -> Vec<String> {
    let mut warnings = Vec::new();
    match version {
        super::CgroupVersion::V2 => {
            if let Some(s) = r.memory_swappiness.filter(|s| *s != 0) {
                warnings.push(format!(
                    "memory_swappiness {s} is not applied: cgroup v2 has no per-group \
                     swappiness (only 0, meaning no swap, is honoured)"
                ));
            }
        }
        super::CgroupVersion::V1 => {
            if let Some(high) = r.memory_high_bytes {
                warnings.push(format!(
                    "memory_high_bytes {high} is not applied: cgroup v1 has no memory.high \
                     (no throttling and no pressure events from it; memory_warning_percent \
                     still warns)"
                ));
            }
        }
    }
    warnings
}

/// Rejects values the kernel would refuse, or that make no sense together.
///
/// `memory_swap_bytes == 0` means "not set", as with Docker's `--memory-swap 0`.
pub fn validate(r: &Resources) -> Result<(), InvalidResources> {
    if let Some(m) = r.memory_bytes {
        if m < MIN_MEMORY_BYTES {
            return Err(InvalidResources::MemoryTooSmall(m));
        }
        if i64::try_from(m).is_err() {
            return Err(InvalidResources::MemoryTooLarge(m));
        }
    }
    match (r.memory_swap_bytes, r.memory_bytes) {
        (None | Some(0) | Some(-1), _) => {}
        (Some(s), _) if s < -1 => return Err(InvalidResources::SwapNegative(s)),
        (Some(_), None) => return Err(InvalidResources::SwapWithoutMemory),
        (Some(s), Some(m)) if (s as u64) < m => {
            return Err(InvalidResources::SwapBelowMemory { swap: s, memory: m })
        }
        (Some(_), Some(_)) => {}
    }
    if let Some(s) = r.memory_swappiness.filter(|s| *s > 100) {
        return Err(InvalidResources::Swappiness(s));
    }
    if let Some(high) = r.memory_high_bytes {
        if high < MIN_MEMORY_BYTES || i64::try_from(high).is_err() {
            return Err(InvalidResources::MemoryHighRange(high));
        }
        if let Some(memory) = r.memory_bytes.filter(|m| high > *m) {
            return Err(InvalidResources::MemoryHighAboveLimit { high, memory });
        }
    }
    if let Some(p) = r.pids_max.filter(|p| *p < 1 && *p != -1) {
        return Err(InvalidResources::PidsMax(p));
    }
    if let Some(p) = r
        .cpu_period_us
        .filter(|p| !(MIN_CFS_US..=MAX_CFS_PERIOD_US).contains(p))
    {
        return Err(InvalidResources::CpuPeriod(p));
    }
    if let Some(q) = r
        .cpu_quota_us
        .filter(|q| *q != -1 && *q < MIN_CFS_US as i64)
    {
        return Err(InvalidResources::CpuQuota(q));
    }
    if let Some(s) = r
        .cpu_shares
        .filter(|s| !(MIN_CPU_SHARES..=MAX_CPU_SHARES).contains(s))
    {
        return Err(InvalidResources::CpuShares(s));
    }
    Ok(())
}

/// Converts Docker/v1 CPU shares (2..=262144) to a cgroup v2 `cpu.weight` (1..=10000),
/// the linear map runc uses (`libcontainer/cgroups/utils.go: ConvertCPUSharesToCgroupV2Value`):
/// 2 → 1, 1024 → 39, 262144 → 10000. Values outside the range are clamped first.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// A limit that is either a number or "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// No limit: `max` on v2, `-1` on v1.
    Max,
    /// A number of bytes, pids or microseconds.
    Value(u64),
}

impl Limit {
    /// The cgroup v1 spelling (`-1` for no limit).
    pub fn v1(self) -> i64 {
        match self {
            Limit::Max => -1,
            Limit::Value(v) => i64::try_from(v).unwrap_or(-1),
        }
    }
}

/// The cgroup v2 spelling (`max` for no limit).
impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Max => f.write_str("max"),
            Limit::Value(v) => write!(f, "{v}"),
        }
    }
}

/// Docker's `--memory-swap` as cgroup v1 `memory.memsw.limit_in_bytes` (memory + swap).
///
/// `None` when no memory limit is asked. Unset (or 0) gives as much swap as memory
/// (twice the memory limit), Docker's default; -1 is unlimited.
pub fn v1_memsw_limit(r: &Resources) -> Option<Limit> {
    let m = r.memory_bytes?;
    Some(match r.memory_swap_bytes {
        None | Some(0) => m.checked_mul(2).map_or(Limit::Max, Limit::Value),
        Some(-1) => Limit::Max,
        Some(s) => Limit::Value(s.unsigned_abs()),
    })
}

/// Docker's `--memory-swap` as cgroup v2 `memory.swap.max` (swap alone).
///
/// Swappiness 0 means "never swap", which v2 can only say as `memory.swap.max = 0`.
/// Otherwise `None` when no memory limit is asked; unset (or 0) gives as much swap as
/// memory; -1 is unlimited.
pub fn v2_swap_max(r: &Resources) -> Option<Limit> {
    if r.memory_swappiness == Some(0) {
        return Some(Limit::Value(0));
    }
    let m = r.memory_bytes?;
    Some(match r.memory_swap_bytes {
        None | Some(0) => Limit::Value(m),
        Some(-1) => Limit::Max,
        Some(s) => Limit::Value(s.unsigned_abs().saturating_sub(m)),
    })
}

/// cgroup v2 `cpu.max` ("$MAX $PERIOD"), when a quota or a period is asked.
pub fn v2_cpu_max(r: &Resources) -> Option<String> {
    if r.cpu_quota_us.is_none() && r.cpu_period_us.is_none() {
        return None;
    }
    let quota = match r.cpu_quota_us {
        Some(q) if q > 0 => Limit::Value(q.unsigned_abs()),
        _ => Limit::Max,
    };
    let period = r.cpu_period_us.unwrap_or(DEFAULT_CFS_PERIOD_US);
    Some(format!("{quota} {period}"))
}

/// Which of `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` to write first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryWriteOrder {
    /// Raise memsw first, then set the limit.
    MemswFirst,
    /// Lower the limit first, then memsw.
    LimitFirst,
}

/// The kernel refuses any write that would leave `memsw < limit` (EINVAL,
/// mm/memcontrol-v1.c: `mem_cgroup_resize_max`), so in an existing group the order
/// matters: when the new memsw is at least the current limit, write memsw first (the new
/// limit is then <= new memsw); otherwise write the limit first (it is <= new memsw <
/// current limit <= current memsw). runc does the same (`fs/memory.go: setMemoryAndSwap`).
pub fn v1_memory_write_order(current_limit: u64, new_memsw: Limit) -> MemoryWriteOrder {
    match new_memsw {
        Limit::Max => MemoryWriteOrder::MemswFirst,
        Limit::Value(v) if v >= current_limit => MemoryWriteOrder::MemswFirst,
        Limit::Value(_) => MemoryWriteOrder::LimitFirst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn mem(m: u64, swap: Option<i64>) -> Resources {
        Resources {
            memory_bytes: Some(m),
            memory_swap_bytes: swap,
            ..Resources::default()
        }
    }

    #[test]
    fn accepts_empty_and_full_resources() {
        assert_eq!(validate(&Resources::default()), Ok(()));
        let full = Resources {
            memory_bytes: Some(64 * MIB),
            memory_swap_bytes: Some(128 * MIB as i64),
            memory_swappiness: Some(100),
            pids_max: Some(1),
            cpu_quota_us: Some(1000),
            cpu_period_us: Some(1_000_000),
            cpu_shares: Some(262_144),
            ..Resources::default()
        };
        assert_eq!(validate(&full), Ok(()));
        assert_eq!(validate(&mem(6 * MIB, Some(6 * MIB as i64))), Ok(()));
        assert_eq!(validate(&mem(6 * MIB, Some(-1))), Ok(()));
        assert_eq!(validate(&mem(6 * MIB, Some(0))), Ok(()));
        let unlimited = Resources {
            pids_max: Some(-1),
            cpu_quota_us: Some(-1),
            memory_swap_bytes: Some(-1),
            ..Resources::default()
        };
        assert_eq!(validate(&unlimited), Ok(()));
    }

    #[test]
    fn rejects_what_the_kernel_would_refuse() {
        let cases: Vec<(Resources, InvalidResources)> = vec![
            (
                mem(6 * MIB - 1, None),
                InvalidResources::MemoryTooSmall(6 * MIB - 1),
            ),
            (
                mem(u64::MAX, None),
                InvalidResources::MemoryTooLarge(u64::MAX),
            ),
            (
                Resources {
                    memory_swap_bytes: Some(64 * MIB as i64),
                    ..Resources::default()
                },
                InvalidResources::SwapWithoutMemory,
            ),
            (
                mem(64 * MIB, Some(32 * MIB as i64)),
                InvalidResources::SwapBelowMemory {
                    swap: 32 * MIB as i64,
                    memory: 64 * MIB,
                },
            ),
            (mem(64 * MIB, Some(-2)), InvalidResources::SwapNegative(-2)),
            (
                Resources {
                    memory_swappiness: Some(101),
                    ..Resources::default()
                },
                InvalidResources::Swappiness(101),
            ),
            (
                Resources {
                    memory_high_bytes: Some(MIB),
                    ..Resources::default()
                },
                InvalidResources::MemoryHighRange(MIB),
            ),
            (
                Resources {
                    memory_high_bytes: Some(128 * MIB),
                    ..mem(64 * MIB, None)
                },
                InvalidResources::MemoryHighAboveLimit {
                    high: 128 * MIB,
                    memory: 64 * MIB,
                },
            ),
            (
                Resources {
                    pids_max: Some(0),
                    ..Resources::default()
                },
                InvalidResources::PidsMax(0),
            ),
            (
                Resources {
                    pids_max: Some(-5),
                    ..Resources::default()
                },
                InvalidResources::PidsMax(-5),
            ),
            (
                Resources {
                    cpu_period_us: Some(999),
                    ..Resources::default()
                },
                InvalidResources::CpuPeriod(999),
            ),
            (
                Resources {
                    cpu_period_us: Some(1_000_001),
                    ..Resources::default()
                },
                InvalidResources::CpuPeriod(1_000_001),
            ),
            (
                Resources {
                    cpu_quota_us: Some(999),
                    ..Resources::default()
                },
                InvalidResources::CpuQuota(999),
            ),
            (
                Resources {
                    cpu_quota_us: Some(0),
                    ..Resources::default()
                },
                InvalidResources::CpuQuota(0),
            ),
            (
                Resources {
                    cpu_shares: Some(1),
                    ..Resources::default()
                },
                InvalidResources::CpuShares(1),
            ),
            (
                Resources {
                    cpu_shares: Some(262_145),
                    ..Resources::default()
                },
                InvalidResources::CpuShares(262_145),
            ),
        ];
        for (resources, want) in cases {
            assert_eq!(validate(&resources), Err(want.clone()), "{resources:?}");
        }
    }

    #[test]
    fn messages_name_the_field_and_the_fix() {
        let e = InvalidResources::SwapBelowMemory { swap: 1, memory: 2 };
        assert_eq!(e.field(), "memory_swap_bytes");
        assert!(e.to_string().contains("at least memory_bytes"));
        assert!(InvalidResources::CpuShares(1)
            .to_string()
            .contains("between 2 and 262144"));
    }

    #[test]
    fn converts_shares_to_weight_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(262_144), 10_000);
        // Out-of-range input is clamped rather than wrapping.
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(u64::MAX), 10_000);
    }

    #[test]
    fn translates_memory_swap_for_v1() {
        assert_eq!(v1_memsw_limit(&Resources::default()), None);
        assert_eq!(
            v1_memsw_limit(&mem(64 * MIB, None)),
            Some(Limit::Value(128 * MIB))
        );
        assert_eq!(v1_memsw_limit(&mem(64 * MIB, Some(-1))), Some(Limit::Max));
        assert_eq!(
            v1_memsw_limit(&mem(64 * MIB, Some(96 * MIB as i64))),
            Some(Limit::Value(96 * MIB))
        );
        assert_eq!(Limit::Max.v1(), -1);
    }

    #[test]
    fn translates_memory_swap_for_v2() {
        assert_eq!(v2_swap_max(&Resources::default()), None);
        assert_eq!(
            v2_swap_max(&mem(64 * MIB, None)),
            Some(Limit::Value(64 * MIB))
        );
        assert_eq!(v2_swap_max(&mem(64 * MIB, Some(-1))), Some(Limit::Max));
        assert_eq!(
            v2_swap_max(&mem(64 * MIB, Some(96 * MIB as i64))),
            Some(Limit::Value(32 * MIB))
        );
        let no_swap = Resources {
            memory_swappiness: Some(0),
            ..mem(64 * MIB, Some(-1))
        };
        assert_eq!(v2_swap_max(&no_swap), Some(Limit::Value(0)));
        assert_eq!(Limit::Max.to_string(), "max");
    }

    #[test]
    fn builds_v2_cpu_max() {
        assert_eq!(v2_cpu_max(&Resources::default()), None);
        let quota = Resources {
            cpu_quota_us: Some(50_000),
            ..Resources::default()
        };
        assert_eq!(v2_cpu_max(&quota).as_deref(), Some("50000 100000"));
        let period = Resources {
            cpu_period_us: Some(20_000),
            ..Resources::default()
        };
        assert_eq!(v2_cpu_max(&period).as_deref(), Some("max 20000"));
        let unlimited = Resources {
            cpu_quota_us: Some(-1),
            cpu_period_us: Some(50_000),
            ..Resources::default()
        };
        assert_eq!(v2_cpu_max(&unlimited).as_deref(), Some("max 50000"));
    }

    #[test]
    fn orders_v1_memory_writes_so_memsw_never_drops_below_limit() {
        // Fresh group: limit is "unlimited" (a huge number).
        let fresh = 9_223_372_036_854_771_712;
        assert_eq!(
            v1_memory_write_order(fresh, Limit::Value(128 * MIB)),
            MemoryWriteOrder::LimitFirst
        );
        // Raising from 64 MiB to 256 MiB: memsw first.
        assert_eq!(
            v1_memory_write_order(64 * MIB, Limit::Value(512 * MIB)),
            MemoryWriteOrder::MemswFirst
        );
        assert_eq!(
            v1_memory_write_order(64 * MIB, Limit::Max),
            MemoryWriteOrder::MemswFirst
        );
    }
}
