//! The `boxd` binary: the daemon, and (as `boxd shim ...`) the per-container shim.
#![forbid(unsafe_code)]

use tracing_subscriber::EnvFilter;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shim must be dispatched before any runtime or thread exists: it forks, and a
    // forked child of a multi-threaded process may only make async-signal-safe calls.
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(boxd_shim::run(&args[2..]));
    }
    let args = match boxd::config::Args::parse(args.into_iter().skip(1)) {
        Ok(boxd::config::Command::Run(args)) => *args,
        Ok(boxd::config::Command::Help) => {
            print!("{}", boxd::config::HELP);
            return;
        }
        Ok(boxd::config::Command::Version) => {
            println!("{}", boxd::config::VERSION);
            return;
        }
        Ok(boxd::config::Command::PrintConfig(args)) => match boxd::config::Config::load(*args) {
            Ok(c) => {
                print!("{}", c.to_toml());
                return;
            }
            Err(e) => {
                eprintln!("boxd: {}", boxd::error_chain(&e));
                std::process::exit(2);
            }
        },
        Err(e) => {
            eprintln!(
                "boxd: {}\nTry 'boxd --help' for more information.",
                boxd::error_chain(&e)
            );
            std::process::exit(2);
        }
    };
    let config = match boxd::config::Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("boxd: {}", boxd::error_chain(&e));
            std::process::exit(2);
        }
    };
    let filter = match &config.log_level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Colours only on a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let result = match rt {
        Ok(rt) => rt
            .block_on(boxd::server::run(config))
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e).context("failed to start the async runtime")),
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("boxd: {e:#}");
        std::process::exit(1);
    }
}
