//! `boxctl`: the command-line client of boxd.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("boxctl: not built yet");
    std::process::exit(1);
}
