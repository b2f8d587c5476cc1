//! The `boxd` binary: the daemon, and (as `boxd shim ...`) the per-container shim.
#![forbid(unsafe_code)]

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shim must be dispatched before any runtime or thread exists: it forks.
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(boxd_shim::run(&args[2..]));
    }
    eprintln!("boxd: not built yet");
    std::process::exit(1);
}
