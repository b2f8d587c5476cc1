//! Memory-event watchers: one per running container, telling of every OOM kill in the
//! container's group (any process, not only the first) and of memory use crossing the
//! warning threshold.
//!
//! - cgroup v2: inotify on `memory.events` (`low`, `high`, `max`, `oom`, `oom_kill`) and
//!   `cgroup.events` (`populated`). The warning compares `memory.current` with the
//!   threshold at every wake-up and poll, and counts a rise of `max` (the limit was
//!   hit) as a crossing too. `memory.high` is deliberately not used for it: above
//!   `memory.high` the kernel throttles the group's allocations (reclaim plus sleeps of
//!   up to 2 s each, `mm/memcontrol.c: mem_cgroup_handle_over_high`), so without swap a
//!   runaway app would crawl for minutes instead of meeting the OOM killer at its limit.
//! - cgroup v1: an eventfd registered through `cgroup.event_control` on
//!   `memory.oom_control` (signalled when the group is under OOM), the `oom_kill` counter
//!   in that file, and a second eventfd on a `memory.usage_in_bytes` threshold
//!   (signalled on every crossing, up or down; Documentation/admin-guide/cgroup-v1/
//!   memory.rst, "Memory thresholds").
//!
//! Invariants (C8): the caller reads the baseline, then [`arm`] registers with the
//! kernel, then the watcher re-reads, so a kill between the baseline and the arming is
//! reported. Reports are counted against what was already reported, so every kill is
//! reported exactly once, whichever of the watcher, its slow poll or the final read at
//! exit ([`read_snapshot`] by the caller) sees it first. The verdict is the pure
//! [`decide`]; the watcher's task is aborted when its [`MemoryWatch`] is dropped.
//!
//! A v1 OOM notification arrives *before* the kernel picks and kills a victim
//! (`mm/memcontrol.c`: `mem_cgroup_oom_notify` precedes `mem_cgroup_out_of_memory`),
//! so after one the counter is re-read a few times in quick succession. A slow poll
//! backs both hierarchies up, so a lost wake-up delays a report but never loses it.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::files::{self, FileError};
use super::CgroupVersion;

/// How often the counters are read when the kernel says nothing.
const SLOW_POLL: Duration = Duration::from_secs(1);
/// Re-reads after a v1 OOM notification, waiting for the kill to be counted.
const OOM_RECHECKS: &[u64] = &[5, 20, 50, 100, 250, 500];
/// At most one `memory_pressure` report per this interval: a workload that lives at
/// its threshold would otherwise flood the event log.
pub const PRESSURE_QUIET: Duration = Duration::from_secs(5);

/// A watcher could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `eventfd(2)` failed.
    #[error("failed to create an eventfd")]
    CreateEventFd(#[source] nix::Error),
    /// `inotify_init1(2)` failed.
    #[error("failed to create an inotify instance")]
    CreateInotify(#[source] nix::Error),
    /// Adding an inotify watch failed.
    #[error("failed to watch {path}")]
    AddWatch {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// Opening the file to be watched failed.
    #[error("failed to open {path}")]
    OpenTarget {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing `cgroup.event_control` (v1) failed.
    #[error("failed to register a memory notification")]
    Register(#[source] FileError),
    /// Registering a file descriptor with tokio failed.
    #[error("failed to poll a notification descriptor")]
    Poll(#[source] io::Error),
    /// Reading the counters failed.
    #[error("failed to read the memory counters")]
    ReadCounters(#[source] FileError),
}

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTarget {
    /// The hierarchy.
    pub version: CgroupVersion,
    /// The group's memory directory (v1 `<memory mount>/<parent>/<id>`, v2 the group).
    pub dir: PathBuf,
    /// Memory use in bytes above which pressure is reported; `None`: no warning.
    pub warning_bytes: Option<u64>,
    /// v2: the group's `memory.high` (`memory_high_bytes`), if set: every rise of the
    /// `high` counter of `memory.events` (the kernel reclaimed and throttled the group
    /// because it went over) is reported as pressure too.
    pub high_bytes: Option<u64>,
}

/// The kernel's memory event counters of a group at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// v2: `memory.events`; v1: `oom_kill` and `under_oom` of `memory.oom_control`
    /// plus `failcnt` (times the limit was hit).
    pub counters: BTreeMap<String, u64>,
    /// v2 `cgroup.events` `populated`; `None` on v1 (no such file).
    pub populated: Option<bool>,
}

impl Snapshot {
    /// OOM kills counted in the group so far.
    pub fn oom_kill(&self) -> u64 {
        self.counters.get("oom_kill").copied().unwrap_or(0)
    }
    /// Times memory use hit the limit (v2 `max`).
    pub fn max(&self) -> u64 {
        self.counters.get("max").copied().unwrap_or(0)
    }

    /// v2: how many times use went over `memory.high`.
    pub fn high(&self) -> u64 {
        self.counters.get("high").copied().unwrap_or(0)
    }
}

/// Reads a group's counters (see [`Snapshot`]). The directory is a parameter, so tests
/// read fixture trees.
pub fn read_snapshot(version: CgroupVersion, dir: &Path) -> Result<Snapshot, FileError> {
    match version {
        CgroupVersion::V2 => {
            let path = dir.join("memory.events");
            let counters = files::parse_counters(&path, &files::read_string(&path)?)?;
            let events = dir.join("cgroup.events");
            let populated = match files::read_string(&events) {
                Ok(text) => files::parse_counters(&events, &text)?
                    .get("populated")
                    .map(|p| *p != 0),
                Err(_) => None,
            };
            Ok(Snapshot {
                counters,
                populated,
            })
        }
        CgroupVersion::V1 => {
            let path = dir.join("memory.oom_control");
            let all = files::parse_counters(&path, &files::read_string(&path)?)?;
            let mut counters: BTreeMap<String, u64> = all
                .into_iter()
                .filter(|(k, _)| k == "oom_kill" || k == "under_oom")
                .collect();
            if let Ok(n) = files::read_u64(&dir.join("memory.failcnt")) {
                counters.insert("failcnt".to_owned(), n);
            }
            Ok(Snapshot {
                counters,
                populated: None,
            })
        }
    }
}

/// The verdict on one reading of the OOM counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing new, and the group still has processes.
    Quiet,
    /// `new` processes were OOM-killed since the last report.
    OomKilled {
        /// Kills not reported yet.
        new: u64,
    },
    /// The group is empty (the run ended): a last report of `new` kills, if any, and
    /// nothing more will happen.
    Emptied {
        /// Kills not reported yet.
        new: u64,
    },
}

/// Decides what a reading means: `oom_kill` is the kernel's counter, `reported` the
/// kills already reported, `populated` whether the group still has processes.
///
/// A counter below `reported` (a group re-created under the same name) reports
/// nothing: the new group's kills are counted from its own zero by the caller.
pub fn decide(oom_kill: u64, reported: u64, populated: bool) -> Verdict {
    let new = oom_kill.saturating_sub(reported);
    match (new, populated) {
        (_, false) => Verdict::Emptied { new },
        (0, true) => Verdict::Quiet,
        (new, true) => Verdict::OomKilled { new },
    }
}

/// Pressure tracking between readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PressureState {
    /// Whether use was above the threshold at the last reading.
    pub above: bool,
    /// v2: the `max` counter at the last reading.
    pub last_max: u64,
    /// v2: the `high` counter at the last reading.
    pub last_high: u64,
    /// When pressure was last reported.
    pub last_report: Option<Instant>,
}

/// What the kernel said about the threshold since the last reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureSignal {
    /// v2: whether use is at or above the threshold now, and the `max` and `high`
    /// counters.
    Level {
        /// `memory.current` >= threshold.
        above: bool,
        /// `max` of `memory.events`.
        max: u64,
        /// `high` of `memory.events` (rises only when `memory.high` is set).
        high: u64,
    },
    /// v1: `n` threshold crossings (either direction) signalled on the eventfd.
    Crossings(u64),
}

/// Decides whether to report pressure: on a rise over the threshold (v2: use went from
/// below to above, the limit was hit again, or use went over `memory.high` again; v1: a
/// crossing upwards, from the parity
/// of the crossings), at most once per `quiet`. Returns the verdict and the state.
pub fn decide_pressure(
    state: PressureState,
    signal: PressureSignal,
    now: Instant,
    quiet: Duration,
) -> (bool, PressureState) {
    let mut next = state;
    let rose = match signal {
        PressureSignal::Level { above, max, high } => {
            next.above = above;
            next.last_max = max.max(state.last_max);
            next.last_high = high.max(state.last_high);
            (above && !state.above) || max > state.last_max || high > state.last_high
        }
        PressureSignal::Crossings(0) => false,
        PressureSignal::Crossings(n) => {
            // Crossings alternate: from below, the 1st, 3rd, ... go up.
            let ups = if state.above { n / 2 } else { n.div_ceil(2) };
            next.above = state.above ^ (n % 2 == 1);
            ups > 0
        }
    };
    let quiet_over = state
        .last_report
        .is_none_or(|t| now.saturating_duration_since(t) >= quiet);
    let report = rose && quiet_over;
    if report {
        next.last_report = Some(now);
    }
    (report, next)
}

/// What a watcher tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Processes of the group were OOM-killed; one notice per kill.
    OomKill {
        /// The kernel's count of kills in the group, after this one.
        total: u64,
    },
    /// Memory use crossed the warning threshold.
    Pressure {
        /// Memory use when it was read, in bytes.
        usage: u64,
        /// The threshold, in bytes.
        threshold: u64,
    },
    /// The counters changed (for `inspect`).
    Counters(BTreeMap<String, u64>),
}

/// What has been reported; shared between the watcher and its owner so the final
/// read at exit reports only the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    /// OOM kills reported.
    pub oom_kills: u64,
    /// Pressure warnings reported.
    pub pressure: u64,
}

/// A running watcher; dropping it aborts its task.
#[derive(Debug)]
pub struct MemoryWatch {
    task: Option<JoinHandle<()>>,
    reported: Arc<Mutex<Reported>>,
}

impl MemoryWatch {
    /// What has been reported so far.
    pub fn reported(&self) -> Reported {
        *self.reported.lock().expect("reported poisoned")
    }

    /// Stops the watcher and waits until its task is gone (so its notices are all in
    /// the channel, and no more come); returns what it reported.
    pub async fn stop(mut self) -> Reported {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.reported()
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An eventfd registered through `cgroup.event_control`.
struct Registered(AsyncFd<EventFd>);

fn register_v1(dir: &Path, file: &str, threshold: Option<u64>) -> Result<Registered, WatchError> {
    let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(WatchError::CreateEventFd)?;
    let target_path = dir.join(file);
    let target = std::fs::File::open(&target_path).map_err(|source| WatchError::OpenTarget {
        path: target_path,
        source,
    })?;
    // "<event_fd> <fd of the file> [args]": the kernel keeps its own references, so the
    // target may be closed right after (mm/memcontrol-v1.c: memcg_write_event_control).
    let line = match threshold {
        Some(t) => format!("{} {} {t}", efd.as_raw_fd(), target.as_raw_fd()),
        None => format!("{} {}", efd.as_raw_fd(), target.as_raw_fd()),
    };
    files::write_value(&dir.join("cgroup.event_control"), &line).map_err(WatchError::Register)?;
    drop(target);
    Ok(Registered(poll_fd(efd)?))
}

/// Registers a descriptor with tokio's reactor.
///
/// tokio 1.54 deprecated the safe `AsyncFd::new` (tokio-rs/tokio#8587: a type could
/// hand out a descriptor it does not own, or a different one later) for an `unsafe`
/// `register`. Both types used here own their descriptor (`EventFd` and `Inotify` hold
/// an `OwnedFd`, and [`InotifyFd`] forwards it unchanged), so the condition holds and
/// the safe constructor is kept rather than adding `unsafe` outside the shim.
#[allow(deprecated)]
fn poll_fd<T: AsRawFd>(inner: T) -> Result<AsyncFd<T>, WatchError> {
    AsyncFd::new(inner).map_err(WatchError::Poll)
}

/// `Inotify` lacks `AsRawFd`, which `AsyncFd` needs.
struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

fn watch_v2(dir: &Path) -> Result<AsyncFd<InotifyFd>, WatchError> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(WatchError::CreateInotify)?;
    // cgroupfs reports changes of these files as IN_MODIFY (kernfs_notify).
    for file in ["memory.events", "cgroup.events"] {
        let path = dir.join(file);
        inotify
            .add_watch(&path, AddWatchFlags::IN_MODIFY)
            .map_err(|source| WatchError::AddWatch { path, source })?;
    }
    poll_fd(InotifyFd(inotify))
}

/// Arms a watcher: registers with the kernel, then re-reads the counters against
/// `reported` (the caller read its baseline before), and keeps watching until the
/// group is empty or the returned watch is dropped. Notices go to `tx`.
pub fn arm(
    target: WatchTarget,
    reported: Reported,
    tx: mpsc::UnboundedSender<Notice>,
) -> Result<MemoryWatch, WatchError> {
    let kernel = match target.version {
        CgroupVersion::V1 => {
            let oom = register_v1(&target.dir, "memory.oom_control", None)?;
            let threshold = target
                .warning_bytes
                .map(|t| register_v1(&target.dir, "memory.usage_in_bytes", Some(t)))
                .transpose()?;
            Kernel::V1 { oom, threshold }
        }
        CgroupVersion::V2 => Kernel::V2(watch_v2(&target.dir)?),
    };
    // The re-read after arming: a kill between the caller's baseline and now is seen.
    let first = read_snapshot(target.version, &target.dir).map_err(WatchError::ReadCounters)?;
    let shared = Arc::new(Mutex::new(reported));
    // Use already above the threshold at arming is not a crossing.
    let above = target
        .warning_bytes
        .is_some_and(|t| usage_bytes(target.version, &target.dir).is_ok_and(|u| u >= t));
    let mut watcher = Watcher {
        target,
        kernel,
        reported: shared.clone(),
        pressure: PressureState {
            above,
            last_max: first.max(),
            last_high: first.high(),
            last_report: None,
        },
        tx,
        last_counters: BTreeMap::new(),
        seen_populated: false,
    };
    let done = watcher.evaluate(&first, None);
    let task = tokio::spawn(async move {
        if !done {
            watcher.run().await;
        }
    });
    Ok(MemoryWatch {
        task: Some(task),
        reported: shared,
    })
}

enum Kernel {
    V1 {
        oom: Registered,
        threshold: Option<Registered>,
    },
    V2(AsyncFd<InotifyFd>),
}

struct Watcher {
    target: WatchTarget,
    kernel: Kernel,
    reported: Arc<Mutex<Reported>>,
    pressure: PressureState,
    tx: mpsc::UnboundedSender<Notice>,
    last_counters: BTreeMap<String, u64>,
    /// Whether the group has had a process: it is armed before the app joins, and an
    /// empty group is the end of the run only after that.
    seen_populated: bool,
}

/// Why the watcher woke.
enum Wake {
    Oom,
    Crossings(u64),
    Files,
    Timer,
}

async fn read_eventfd(fd: &Registered) -> io::Result<u64> {
    loop {
        let mut guard = fd.0.readable().await?;
        match guard.try_io(|inner| inner.get_ref().read().map_err(io::Error::from)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

async fn read_inotify(fd: &AsyncFd<InotifyFd>) -> io::Result<()> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| {
            inner
                .get_ref()
                .0
                .read_events()
                .map(drop)
                .map_err(io::Error::from)
        }) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

async fn maybe<F: std::future::Future<Output = io::Result<u64>>>(f: Option<F>) -> io::Result<u64> {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

impl Watcher {
    async fn run(&mut self) {
        let mut rechecks: &[u64] = &[];
        loop {
            let delay = rechecks
                .first()
                .map_or(SLOW_POLL, |ms| Duration::from_millis(*ms));
            let wake = match &self.kernel {
                Kernel::V1 { oom, threshold } => {
                    tokio::select! {
                        r = read_eventfd(oom) => r.map(|_| Wake::Oom),
                        r = maybe(threshold.as_ref().map(read_eventfd)) => r.map(Wake::Crossings),
                        () = tokio::time::sleep(delay) => Ok(Wake::Timer),
                    }
                }
                Kernel::V2(fd) => {
                    tokio::select! {
                        r = read_inotify(fd) => r.map(|()| Wake::Files),
                        () = tokio::time::sleep(delay) => Ok(Wake::Timer),
                    }
                }
            };
            let wake = match wake {
                Ok(w) => w,
                Err(err) => {
                    tracing::warn!(dir = %self.target.dir.display(), error = %err, "memory watcher failed; falling back to polling");
                    tokio::time::sleep(SLOW_POLL).await;
                    Wake::Timer
                }
            };
            let crossings = match wake {
                Wake::Oom => {
                    rechecks = OOM_RECHECKS;
                    None
                }
                Wake::Crossings(n) => Some(n),
                Wake::Timer => {
                    rechecks = rechecks.get(1..).unwrap_or(&[]);
                    None
                }
                Wake::Files => None,
            };
            let snapshot = match read_snapshot(self.target.version, &self.target.dir) {
                Ok(s) => s,
                // The group is gone: the run is over, the owner does the final read.
                Err(_) => return,
            };
            let before = self.reported();
            if self.evaluate(&snapshot, crossings) {
                return;
            }
            if self.reported().oom_kills > before.oom_kills {
                rechecks = &[];
            }
        }
    }

    fn reported(&self) -> Reported {
        *self.reported.lock().expect("reported poisoned")
    }

    /// Reports what `snapshot` shows; true when the group is empty (nothing more to
    /// watch). Updating `reported` and sending happen without an await between them,
    /// so an abort never splits them.
    fn evaluate(&mut self, snapshot: &Snapshot, crossings: Option<u64>) -> bool {
        // Counters first, so whoever sees a kill's notice finds them current.
        if snapshot.counters != self.last_counters {
            self.last_counters = snapshot.counters.clone();
            let _ = self.tx.send(Notice::Counters(snapshot.counters.clone()));
        }
        let populated = match snapshot.populated {
            Some(true) => {
                self.seen_populated = true;
                true
            }
            // Not yet joined: the app is still starting.
            Some(false) => !self.seen_populated,
            None => true,
        };
        let mut reported = self.reported.lock().expect("reported poisoned");
        let verdict = decide(snapshot.oom_kill(), reported.oom_kills, populated);
        let (Verdict::OomKilled { new } | Verdict::Emptied { new }) = verdict else {
            drop(reported);
            self.pressure(snapshot, crossings);
            return false;
        };
        for k in 1..=new {
            let _ = self.tx.send(Notice::OomKill {
                total: reported.oom_kills + k,
            });
        }
        reported.oom_kills += new;
        drop(reported);
        self.pressure(snapshot, crossings);
        matches!(verdict, Verdict::Emptied { .. })
    }

    fn pressure(&mut self, snapshot: &Snapshot, crossings: Option<u64>) {
        let high_bytes = self
            .target
            .high_bytes
            .filter(|_| self.target.version == CgroupVersion::V2);
        // Over `memory.high` again: the threshold that was crossed is that one.
        let over_high = high_bytes.filter(|_| snapshot.high() > self.pressure.last_high);
        if let Some(threshold) = over_high.or(self.target.warning_bytes).or(high_bytes) {
            let signal = match (self.target.version, crossings) {
                (CgroupVersion::V2, _) => usage_bytes(self.target.version, &self.target.dir)
                    .ok()
                    .map(|u| PressureSignal::Level {
                        above: self.target.warning_bytes.is_some_and(|w| u >= w),
                        max: snapshot.max(),
                        high: snapshot.high(),
                    }),
                (CgroupVersion::V1, Some(n)) => Some(PressureSignal::Crossings(n)),
                (CgroupVersion::V1, None) => None,
            };
            if let Some(signal) = signal {
                let (report, next) =
                    decide_pressure(self.pressure, signal, Instant::now(), PRESSURE_QUIET);
                self.pressure = next;
                if report {
                    let usage = usage_bytes(self.target.version, &self.target.dir).unwrap_or(0);
                    let mut reported = self.reported.lock().expect("reported poisoned");
                    reported.pressure += 1;
                    let _ = self.tx.send(Notice::Pressure { usage, threshold });
                }
            }
        }
    }
}

/// Current memory use of a group, in bytes.
pub fn usage_bytes(version: CgroupVersion, dir: &Path) -> Result<u64, FileError> {
    match version {
        CgroupVersion::V1 => files::read_u64(&dir.join("memory.usage_in_bytes")),
        CgroupVersion::V2 => files::read_u64(&dir.join("memory.current")),
    }
}

/// The warning threshold in bytes: `percent` of `limit`; none without a limit or
/// with the warning off (0).
pub fn warning_bytes(limit: Option<u64>, percent: u8) -> Option<u64> {
    let limit = limit?;
    if percent == 0 {
        return None;
    }
    let bytes = u128::from(limit) * u128::from(percent.min(100)) / 100;
    Some(u64::try_from(bytes).unwrap_or(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_table() {
        // (oom_kill, reported, populated) -> verdict
        let cases = [
            (0, 0, true, Verdict::Quiet),
            (3, 3, true, Verdict::Quiet),
            (1, 0, true, Verdict::OomKilled { new: 1 }),
            (5, 3, true, Verdict::OomKilled { new: 2 }),
            (0, 0, false, Verdict::Emptied { new: 0 }),
            (2, 1, false, Verdict::Emptied { new: 1 }),
            // A re-created group counts from its own zero: nothing to report.
            (1, 4, true, Verdict::Quiet),
        ];
        for (oom_kill, reported, populated, want) in cases {
            assert_eq!(
                decide(oom_kill, reported, populated),
                want,
                "decide({oom_kill}, {reported}, {populated})"
            );
        }
    }

    #[test]
    fn decide_pressure_table() {
        let t0 = Instant::now();
        let quiet = Duration::from_secs(5);
        let below = PressureState::default();
        let above = PressureState {
            above: true,
            ..below
        };
        // v1 crossings: from below, an odd count ends above and reports.
        let (r, s) = decide_pressure(below, PressureSignal::Crossings(1), t0, quiet);
        assert!(r && s.above);
        // From above, one crossing goes down: nothing to report.
        let (r, s) = decide_pressure(above, PressureSignal::Crossings(1), t0, quiet);
        assert!(!r && !s.above);
        // Up and down again between two readings still was a rise.
        let (r, s) = decide_pressure(below, PressureSignal::Crossings(2), t0, quiet);
        assert!(r && !s.above);
        // From above: down then up.
        let (r, s) = decide_pressure(above, PressureSignal::Crossings(2), t0, quiet);
        assert!(r && s.above);
        let (r, _) = decide_pressure(below, PressureSignal::Crossings(0), t0, quiet);
        assert!(!r);
        // v2: use went from below to above.
        let level = |above, max| PressureSignal::Level {
            above,
            max,
            high: 0,
        };
        let (r, s) = decide_pressure(below, level(true, 0), t0, quiet);
        assert!(r && s.above);
        let (r, s1) = decide_pressure(s, level(true, 0), t0 + quiet, quiet);
        assert!(!r, "still above is no new crossing");
        let (r, s1) = decide_pressure(s1, level(false, 0), t0 + quiet, quiet);
        assert!(!r && !s1.above, "going down is no warning");
        // The limit was hit (max rose) between two readings that were both below.
        let (r, s1) = decide_pressure(s1, level(false, 2), t0 + quiet * 2, quiet);
        assert!(r && s1.last_max == 2);
        // Within the quiet interval a rise is not reported again; after it, it is.
        let (r, s2) = decide_pressure(s, level(true, 5), t0 + Duration::from_secs(1), quiet);
        assert!(!r && s2.last_max == 5 && s2.last_report == s.last_report);
        let (r, _) = decide_pressure(s2, level(true, 6), t0 + quiet, quiet);
        assert!(r);
        // memory.high: use went over it again (the kernel throttled the group) while
        // below the warning threshold and the limit.
        let high = |n| PressureSignal::Level {
            above: false,
            max: 0,
            high: n,
        };
        let (r, s3) = decide_pressure(below, high(3), t0, quiet);
        assert!(r && s3.last_high == 3);
        let (r, s3) = decide_pressure(s3, high(3), t0 + quiet, quiet);
        assert!(!r, "no new crossing of memory.high");
        let (r, _) = decide_pressure(s3, high(4), t0 + quiet, quiet);
        assert!(r);
    }

    fn fixture(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_v2_and_v1_snapshots_from_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            "memory.events",
            "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        fixture(dir.path(), "cgroup.events", "populated 1\nfrozen 0\n");
        let s = read_snapshot(CgroupVersion::V2, dir.path()).unwrap();
        assert_eq!((s.oom_kill(), s.max(), s.populated), (1, 3, Some(true)));
        assert_eq!(s.counters["max"], 3);

        fixture(
            dir.path(),
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        fixture(dir.path(), "memory.failcnt", "17\n");
        let s = read_snapshot(CgroupVersion::V1, dir.path()).unwrap();
        assert_eq!(s.oom_kill(), 2);
        assert_eq!(s.populated, None);
        assert_eq!(
            s.counters.keys().collect::<Vec<_>>(),
            ["failcnt", "oom_kill", "under_oom"]
        );
        assert!(read_snapshot(CgroupVersion::V1, &dir.path().join("gone")).is_err());
    }

    #[test]
    fn warning_threshold_is_a_percentage_of_the_limit() {
        assert_eq!(warning_bytes(Some(64 << 20), 90), Some((64 << 20) * 9 / 10));
        assert_eq!(warning_bytes(Some(1000), 100), Some(1000));
        assert_eq!(warning_bytes(Some(999), 50), Some(499));
        assert_eq!(
            warning_bytes(Some(u64::MAX), 90).map(|b| b > u64::MAX / 10 * 8),
            Some(true)
        );
        assert_eq!(warning_bytes(None, 90), None);
        assert_eq!(warning_bytes(Some(1000), 0), None);
    }

    /// The next notice that is not a counter update, within 3 s.
    async fn next_report(rx: &mut mpsc::UnboundedReceiver<Notice>) -> Option<Notice> {
        loop {
            match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
                Ok(Some(Notice::Counters(_))) => continue,
                Ok(other) => return other,
                Err(_) => return None,
            }
        }
    }

    /// Armed on fixture files (the kernel side is faked by inotify on a plain file,
    /// which reports writes the same way): a kill written after arming is reported once.
    #[tokio::test]
    async fn watcher_is_armed_before_immediate_oom_and_notifies_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path(), "memory.events", "high 0\noom 0\noom_kill 0\n");
        // Armed before the app joins: the group is empty at first.
        fixture(dir.path(), "cgroup.events", "populated 0\n");
        fixture(dir.path(), "memory.current", "100\n");
        // A kill before arming, after the caller's baseline (0), is reported by the
        // re-read that arming does.
        fixture(dir.path(), "memory.events", "high 0\noom 1\noom_kill 1\n");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let target = WatchTarget {
            version: CgroupVersion::V2,
            dir: dir.path().to_owned(),
            warning_bytes: Some(900),
            high_bytes: None,
        };
        let watch = arm(target, Reported::default(), tx).unwrap();
        let got = next_report(&mut rx).await;
        assert_eq!(got, Some(Notice::OomKill { total: 1 }));
        fixture(dir.path(), "cgroup.events", "populated 1\n");
        // A second kill, and use over the threshold.
        fixture(dir.path(), "memory.current", "950\n");
        fixture(dir.path(), "memory.events", "high 3\noom 2\noom_kill 2\n");
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match next_report(&mut rx).await {
                Some(n) => seen.push(n),
                None => break,
            }
        }
        assert!(seen.contains(&Notice::OomKill { total: 2 }), "{seen:?}");
        assert!(
            seen.contains(&Notice::Pressure {
                usage: 950,
                threshold: 900
            }),
            "{seen:?}"
        );
        // The group empties: the watcher ends by itself.
        fixture(dir.path(), "cgroup.events", "populated 0\n");
        let reported = watch.stop().await;
        assert_eq!(reported.oom_kills, 2);
        assert_eq!(reported.pressure, 1);
        // Exactly once: no further kill notices are queued.
        while let Ok(n) = rx.try_recv() {
            assert!(!matches!(n, Notice::OomKill { .. }), "duplicate {n:?}");
        }
    }
}
