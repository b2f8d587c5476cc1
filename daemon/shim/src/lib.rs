//! `boxd-shim`: the per-container monitor, and the sandbox code that runs between
//! clone and exec.
//!
//! This is the only crate of boxd with `unsafe` code (all of it in [`sys`]). It must
//! stay free of tokio, tracing and threads: the shim forks, and a forked child of a
//! multi-threaded process may only make async-signal-safe calls until it execs.
//! The wire protocol with the daemon lives in [`protocol`].

pub mod protocol;

/// Entry point of `boxd shim ARGS...`; returns the process exit status.
pub fn run(args: &[std::ffi::OsString]) -> i32 {
    let _ = args;
    eprintln!("boxd shim: not built yet");
    1
}
