//! Named crash points for crash-safety tests.
//!
//! With the `fault-injection` feature in a debug build, `crash_point("start.after_cgroup")`
//! kills the daemon with SIGKILL when `BOXD_CRASH_AT` names that point, exactly as
//! `kill -9` would at that line. Release builds never contain it (the body is compiled
//! only with `debug_assertions`), whatever features are on.

/// The environment variable naming the point to crash at.
pub const CRASH_AT_ENV: &str = "BOXD_CRASH_AT";

/// Every named point, for tests that walk them all.
pub const CRASH_POINTS: &[&str] = &[
    "create.after_insert",
    "start.before_launch",
    "start.after_cgroup",
    "start.after_shim",
    "start.after_launch_recorded",
    "exit.after_record",
    "delete.after_kill",
    "delete.after_cgroup",
    "delete.before_row",
    "image.after_unpack",
    "image.after_row_delete",
    "network.after_attachment_row",
    "network.after_first_plugin",
    "network.after_add",
    "network.after_del",
    "pause.after_freeze",
    "unpause.after_thaw",
    "update.after_cgroup",
    "volume.after_insert",
    "volume.after_row_delete",
    "volume.during_copy_up",
];

/// Dies here if `BOXD_CRASH_AT` says so (fault-injection debug builds only).
#[inline]
pub fn crash_point(name: &'static str) {
    #[cfg(all(feature = "fault-injection", debug_assertions))]
    if std::env::var(CRASH_AT_ENV).is_ok_and(|v| v == name) {
        debug_assert!(CRASH_POINTS.contains(&name), "unlisted crash point {name}");
        eprintln!("boxd: crash point {name} reached; dying with SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    let _ = name;
}
