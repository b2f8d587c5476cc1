//! Test-only helpers shared by every crate of the workspace: the one root check of
//! `CONVENTIONS.md` (C10), skips that CI can forbid, and waiting for a condition with a
//! deadline instead of sleeping.
//!
//! This is a crate of its own, used only as a dev-dependency (and by the integration
//! harness `boxd-tests`), so no production crate links test code. A `#[doc(hidden)]`
//! module behind a feature of `boxd` would not do: `boxd-shim` sits below `boxd` and
//! could not reach it, and the feature would put test code in the daemon's public API.
//!
//! A test that cannot run here (no root, a cgroup or mount probe answering
//! EPERM/EACCES, a missing host tool or kernel feature) calls [`skip`] (usually through
//! [`require_root!`] or [`require!`]) and returns: it prints `skipping <test>: <reason>`,
//! or panics when `BOXD_TEST_REQUIRE_ROOT=1` (set by CI), so nothing is skipped there
//! unnoticed. A test never passes a part of itself silently: a check it cannot make is
//! a skip of the whole test.
#![forbid(unsafe_code)]

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Skip (or, with `BOXD_TEST_REQUIRE_ROOT=1`, fail) the current test unless it may act as
/// root here; see [`root`]. Use as the first statement of every `root_` test.
#[macro_export]
macro_rules! require_root {
    () => {
        if let Err(reason) = $crate::root() {
            $crate::skip(&reason);
            return;
        }
    };
}

/// Skip (or, with `BOXD_TEST_REQUIRE_ROOT=1`, fail) the current test unless `cond`
/// holds; the rest is the reason, as for `format!`. For host tools and kernel features.
#[macro_export]
macro_rules! require {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            $crate::skip(&format!($($reason)+));
            return;
        }
    };
}

/// True when skipping is forbidden (`BOXD_TEST_REQUIRE_ROOT=1`, set by CI).
pub fn skipping_forbidden() -> bool {
    std::env::var("BOXD_TEST_REQUIRE_ROOT").is_ok_and(|v| v == "1")
}

/// Announce that the current test is skipped for `reason`, or panic when skipping is
/// forbidden. The caller returns right after.
pub fn skip(reason: &str) {
    let test = current_test_name();
    if skipping_forbidden() {
        panic!("{test}: {reason} (BOXD_TEST_REQUIRE_ROOT=1 forbids skipping)");
    }
    eprintln!("skipping {test}: {reason}");
}

/// libtest runs each test on a thread named after it (`module::test_name`).
fn current_test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "test".to_string(),
    }
}

/// `Ok` when this process may do what root tests do: its effective uid is 0, and it may
/// make a cgroup and mount a file system. Otherwise the reason, e.g. euid 0 in a user
/// namespace or an unprivileged container where the probes answer EPERM/EACCES/EROFS
/// (containerd's shim tests skip on the same errors). Probed once per process.
pub fn root() -> Result<(), String> {
    static ROOT: OnceLock<Result<(), String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root".into());
        }
        probe_cgroup()?;
        probe_mount()
    })
    .clone()
}

/// Make and remove a group where the tests make theirs: the v2 root on a pure v2 host,
/// else the v1 memory hierarchy. The `boxd-test-` prefix puts a leaked probe in CI's
/// leftover check.
fn probe_cgroup() -> Result<(), String> {
    let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/memory")
    };
    let dir = base.join(format!("boxd-test-probe-{}", std::process::id()));
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&dir);
            Ok(())
        }
        // Left by an earlier process with this pid (the probe runs once per process).
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_dir(&dir);
            Ok(())
        }
        Err(e) if denied(&e) => Err(format!(
            "needs root: making a cgroup under {} answers {e}",
            base.display()
        )),
        Err(e) => Err(format!(
            "needs a cgroup hierarchy at {}: {e}",
            base.display()
        )),
    }
}

/// Mount a tmpfs on a temporary directory and unmount it.
fn probe_mount() -> Result<(), String> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let dir = tempfile::Builder::new()
        .prefix("boxd-test-probe")
        .tempdir()
        .map_err(|e| format!("needs a temporary directory: {e}"))?;
    match mount(
        Some("tmpfs"),
        dir.path(),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=4k"),
    ) {
        Ok(()) => {
            let _ = umount2(dir.path(), MntFlags::MNT_DETACH);
            Ok(())
        }
        Err(e) => Err(format!("needs root: mounting a tmpfs answers {e}")),
    }
}

fn denied(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error()
        .map(Errno::from_raw)
        .is_some_and(|e| matches!(e, Errno::EPERM | Errno::EACCES | Errno::EROFS))
}

/// The host tool `name`, looked up in `PATH` and then in the sbin directories (which a
/// non-root `PATH` often lacks, e.g. for `mkfs.ext4`).
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// How often the `wait_for` helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// Poll `cond` until it holds or `within` has passed; whether it held. Blocks the
/// thread: from async tests use [`wait_for_async`].
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for_value(within, || cond().then_some(())).is_some()
}

/// Poll `f` until it gives a value or `within` has passed.
pub fn wait_for_value<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_for`] for async conditions, sleeping on the tokio timer between looks.
pub async fn wait_for_async(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    wait_for_value_async(within, async || cond().await.then_some(()))
        .await
        .is_some()
}

/// [`wait_for_value`] for async producers.
pub async fn wait_for_value_async<T>(
    within: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        assert!(wait_for(Duration::from_secs(10), || {
            n += 1;
            n == 3
        }));
        assert_eq!(n, 3);
    }

    #[test]
    fn wait_for_gives_up_at_the_deadline() {
        let start = Instant::now();
        assert!(!wait_for(Duration::from_millis(100), || false));
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn wait_for_async_polls_an_async_condition() {
        let mut n = 0;
        assert!(
            wait_for_async(Duration::from_secs(10), async || {
                n += 1;
                n == 3
            })
            .await
        );
        assert_eq!(
            wait_for_value_async(Duration::from_secs(1), async || Some(7)).await,
            Some(7)
        );
    }

    #[test]
    fn the_test_name_is_the_thread_name() {
        assert!(current_test_name().ends_with("the_test_name_is_the_thread_name"));
    }
}
