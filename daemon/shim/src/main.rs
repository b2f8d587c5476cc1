//! The `boxd-shim` binary: only the shim (`boxd-shim shim --config FILE`, and
//! `boxd-shim shim exec ...`), the same code `boxd shim ...` runs. The daemon runs this
//! one when it is installed beside it: it maps and relocates a fraction of the daemon's
//! code at every container start, and each container's shim keeps less memory.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(boxd_shim::run(&args[2..]));
    }
    eprintln!("usage: boxd-shim shim --config FILE | boxd-shim shim exec STATE_DIR (run by boxd, not by hand)");
    std::process::exit(2);
}
