//! `boxctl`: the command-line client of boxd, with docker's verbs.
//!
//! Parses the command line, builds a [`Client`] for `--socket` (or `BOXD_SOCKET`), and
//! hands off to one module per subcommand under `cmd/`. A failure is printed once, as one
//! line `boxctl: <error chain>`, and exits 1; `run` exits 125 instead, like `docker run`,
//! so its own failures never pass for the container's exit code.
#![forbid(unsafe_code)]

mod cmd;
mod tty;

use std::io::Write as _;
use std::path::PathBuf;

use boxd_client::{Client, DEFAULT_SOCKET, SOCKET_ENV};
use clap::{CommandFactory as _, Parser, Subcommand};

use cmd::Ctx;

/// Exit status for a failure of boxctl or the daemon during `run`.
const RUN_FAILED: i32 = 125;

/// Drive the boxd container daemon.
#[derive(Debug, Parser)]
#[command(name = "boxctl", version)]
struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = SOCKET_ENV, default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,
    /// Print machine-readable JSON (ps, images, version, info, events, wait, create, run -d,
    /// logs (one line per entry), start, stop, kill, rm, pause, unpause (one `{"id"}` line
    /// per id), network create, ls and rm, volume rm).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the client's and the daemon's versions.
    Version(cmd::version::Args),
    /// Show host facts and counts.
    Info(cmd::info::Args),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// List images.
    Images(cmd::images::Args),
    /// Remove images.
    Rmi(cmd::rmi::Args),
    /// Pull an image from a registry.
    Pull(cmd::pull::Args),
    /// Load images from a `docker save` or OCI archive.
    Load(cmd::load::Args),
    /// Give an image another name.
    Tag(cmd::tag::Args),
    /// Create a container and print its id.
    #[command(disable_help_flag = true)]
    Create(cmd::create::Args),
    /// Create and start a container, and stay with it until it exits.
    #[command(disable_help_flag = true)]
    Run(cmd::run::Args),
    /// Manage networks.
    #[command(subcommand)]
    Network(cmd::network::Command),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(cmd::volume::Command),
    /// List containers.
    Ps(cmd::ps::Args),
    /// Show containers or images as JSON.
    Inspect(cmd::inspect::Args),
    /// Show a container's output.
    Logs(cmd::logs::Args),
    /// Start containers.
    Start(cmd::start::Args),
    /// Stop containers (SIGTERM, then SIGKILL).
    Stop(cmd::stop::Args),
    /// Stop containers that run, then start them.
    Restart(cmd::stop::Args),
    /// Send a signal to containers.
    Kill(cmd::kill::Args),
    /// Pause every process of containers (cgroup freezer).
    Pause(cmd::pause::Args),
    /// Unpause paused containers.
    Unpause(cmd::pause::UnpauseArgs),
    /// Rename a container.
    Rename(cmd::rename::Args),
    /// Change the limits and restart policy of containers.
    Update(cmd::update::Args),
    /// Remove containers.
    Rm(cmd::rm::Args),
    /// Wait for containers to exit and print their exit codes.
    Wait(cmd::wait::Args),
    /// Stream the daemon's events.
    Events(cmd::events::Args),
    /// Show running containers' resource use, live.
    Stats(cmd::stats::Args),
    /// Explain how a container's last run ended.
    Why(cmd::why::Args),
    /// Run a command in a running container.
    Exec(cmd::exec::Args),
    /// Attach to a running container's stdio (ctrl-p ctrl-q detaches).
    Attach(cmd::attach::Args),
    /// Check that the daemon's records and the kernel agree.
    Doctor(cmd::doctor::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(cmd::docs::CompletionArgs),
    /// Write boxctl's man pages into a directory.
    Man(cmd::docs::ManArgs),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Import a root filesystem tarball as an image.
    Import(cmd::import::Args),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(cmd::images::Args),
    /// Remove images.
    #[command(visible_alias = "remove")]
    Rm(cmd::rmi::Args),
    /// Pull an image from a registry.
    Pull(cmd::pull::Args),
    /// Load images from a `docker save` or OCI archive.
    Load(cmd::load::Args),
    /// Give an image another name.
    Tag(cmd::tag::Args),
    /// Remove unused images and layers.
    Prune(cmd::prune::Args),
}

async fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Version(args) => cmd::version::run(ctx, args).await,
        Command::Info(args) => cmd::info::run(ctx, args).await,
        Command::Doctor(args) => cmd::doctor::run(ctx, args).await,
        Command::Completion(args) => cmd::docs::completion(Cli::command(), args),
        Command::Man(args) => cmd::docs::man(Cli::command(), args),
        Command::Image(ImageCommand::Import(args)) => cmd::import::run(ctx, args).await,
        Command::Image(ImageCommand::Ls(args)) | Command::Images(args) => {
            cmd::images::run(ctx, args).await
        }
        Command::Image(ImageCommand::Rm(args)) | Command::Rmi(args) => {
            cmd::rmi::run(ctx, args).await
        }
        Command::Image(ImageCommand::Pull(args)) | Command::Pull(args) => {
            cmd::pull::run(ctx, args).await
        }
        Command::Image(ImageCommand::Load(args)) | Command::Load(args) => {
            cmd::load::run(ctx, args).await
        }
        Command::Image(ImageCommand::Tag(args)) | Command::Tag(args) => {
            cmd::tag::run(ctx, args).await
        }
        Command::Image(ImageCommand::Prune(args)) => cmd::prune::run(ctx, args).await,
        Command::Create(args) => cmd::create::run(ctx, args).await,
        Command::Run(args) => cmd::run::run(ctx, args).await,
        Command::Network(command) => cmd::network::run(ctx, command).await,
        Command::Volume(command) => cmd::volume::run(ctx, command).await,
        Command::Ps(args) => cmd::ps::run(ctx, args).await,
        Command::Inspect(args) => cmd::inspect::run(ctx, args).await,
        Command::Logs(args) => cmd::logs::run(ctx, args).await,
        Command::Start(args) => cmd::start::run(ctx, args).await,
        Command::Stop(args) => cmd::stop::run(ctx, args).await,
        Command::Restart(args) => cmd::stop::restart(ctx, args).await,
        Command::Kill(args) => cmd::kill::run(ctx, args).await,
        Command::Pause(args) => cmd::pause::run(ctx, args).await,
        Command::Unpause(args) => cmd::pause::run_unpause(ctx, args).await,
        Command::Rename(args) => cmd::rename::run(ctx, args).await,
        Command::Update(args) => cmd::update::run(ctx, args).await,
        Command::Rm(args) => cmd::rm::run(ctx, args).await,
        Command::Wait(args) => cmd::wait::run(ctx, args).await,
        Command::Events(args) => cmd::events::run(ctx, args).await,
        Command::Stats(args) => cmd::stats::run(ctx, args).await,
        Command::Why(args) => cmd::why::run(ctx, args).await,
        Command::Exec(args) => cmd::exec::run(ctx, args).await,
        Command::Attach(args) => cmd::attach::run(ctx, args).await,
    }
}

/// Exit status of a command whose reader went away (`boxctl ps | head`): what a shell
/// shows for a process ended by SIGPIPE, printed as nothing.
const BROKEN_PIPE: i32 = 128 + 13;

/// True when `err` is a write to a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn main() {
    // Rust ignores SIGPIPE, so `print!` to a pipe whose reader is gone panics with
    // "failed printing to stdout: Broken pipe". That is how `ps | head` ends, not a
    // failure: leave quietly, as a C tool killed by SIGPIPE would.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("Broken pipe") {
            std::process::exit(BROKEN_PIPE);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    let failure_code = match cli.command {
        Command::Run(_) => RUN_FAILED,
        _ => 1,
    };
    let ctx = Ctx {
        client: Client::connect(cli.socket),
        json: cli.json,
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(dispatch(&ctx, cli.command)));
    let code = match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => BROKEN_PIPE,
        Err(err) => {
            eprintln!("boxctl: {err:#}");
            if failure_code == RUN_FAILED {
                cmd::run::exec_failure_code(&err).unwrap_or(failure_code)
            } else {
                failure_code
            }
        }
    };
    // `exit` skips destructors; whatever `print!` left buffered goes out first.
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn run_takes_flags_before_image_and_command_after() {
        let cli = parse(&[
            "boxctl",
            "run",
            "--rm",
            "-h",
            "box",
            "-e",
            "A=1",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "echo --rm -d",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.rm);
        assert!(!args.detach);
        assert_eq!(args.opts.hostname.as_deref(), Some("box"));
        assert_eq!(args.opts.memory, Some(64 << 20));
        assert_eq!(args.opts.cpus, Some(0.5));
        assert_eq!(args.opts.image, "busybox");
        assert_eq!(args.opts.cmd, ["sh", "-c", "echo --rm -d"]);
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let cli = parse(&["boxctl", "run", "busybox", "ls", "-d", "--rm"]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(!args.detach && !args.rm);
        assert_eq!(args.opts.cmd, ["ls", "-d", "--rm"]);
    }

    #[test]
    fn global_flags_and_aliases_parse() {
        let cli = parse(&["boxctl", "--socket", "/tmp/s.sock", "--json", "image", "ls"]);
        assert_eq!(cli.socket, PathBuf::from("/tmp/s.sock"));
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Image(ImageCommand::Ls(_))));
        let cli = parse(&["boxctl", "ps", "-aq", "--json"]);
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Ps(cmd::ps::Args {
                all: true,
                quiet: true,
                ..
            })
        ));
        assert!(matches!(
            parse(&["boxctl", "stop", "-t", "3", "a", "b"]).command,
            Command::Stop(cmd::stop::Args { time: Some(3), .. })
        ));
        assert!(matches!(
            parse(&["boxctl", "rmi", "-f", "x"]).command,
            Command::Rmi(cmd::rmi::Args { force: true, .. })
        ));
    }

    #[test]
    fn network_and_publish_flags_parse() {
        let cli = parse(&[
            "boxctl",
            "run",
            "--net",
            "front",
            "-p",
            "8080:80",
            "--publish",
            "127.0.0.1::53/udp",
            "busybox",
            "httpd",
            "-p",
            "80",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.opts.network.as_deref(), Some("front"));
        assert_eq!(args.opts.publish, ["8080:80", "127.0.0.1::53/udp"]);
        // A -p after the image is the command's.
        assert_eq!(args.opts.cmd, ["httpd", "-p", "80"]);
        let cli = parse(&["boxctl", "create", "--network", "container:web", "busybox"]);
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        assert_eq!(args.opts.network.as_deref(), Some("container:web"));
        assert!(Cli::try_parse_from(["boxctl", "run", "--network", "", "busybox"]).is_err());
        assert!(Cli::try_parse_from([
            "boxctl",
            "run",
            "--network",
            "a",
            "--network",
            "b",
            "busybox"
        ])
        .is_err());
    }

    #[test]
    fn network_subcommands_parse() {
        let cli = parse(&[
            "boxctl",
            "network",
            "create",
            "--subnet",
            "10.90.0.0/24",
            "--internal",
            "--label",
            "a=b",
            "front",
        ]);
        let Command::Network(cmd::network::Command::Create(args)) = cli.command else {
            panic!("not network create")
        };
        assert_eq!(
            (args.name.as_str(), args.subnet.as_slice(), args.internal),
            ("front", ["10.90.0.0/24".to_owned()].as_slice(), true)
        );
        assert!(matches!(
            parse(&["boxctl", "network", "list"]).command,
            Command::Network(cmd::network::Command::Ls(_))
        ));
        assert!(matches!(
            parse(&["boxctl", "network", "rm", "a", "b"]).command,
            Command::Network(cmd::network::Command::Rm(cmd::network::RmArgs { names })) if names == ["a", "b"]
        ));
        assert!(Cli::try_parse_from(["boxctl", "network", "rm"]).is_err());
        assert!(matches!(
            parse(&["boxctl", "network", "connect", "--alias", "w", "front", "web"]).command,
            Command::Network(cmd::network::Command::Connect(cmd::network::ConnectArgs { network, container, aliases }))
                if network == "front" && container == "web" && aliases == ["w"]
        ));
        assert!(Cli::try_parse_from(["boxctl", "network", "disconnect", "front"]).is_err());
    }

    #[test]
    fn bad_sizes_are_usage_errors() {
        assert!(Cli::try_parse_from(["boxctl", "run", "-m", "lots", "busybox"]).is_err());
        assert!(
            Cli::try_parse_from(["boxctl", "run", "--memory-swappiness", "101", "busybox"])
                .is_err()
        );
        let cli = parse(&[
            "boxctl",
            "run",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "-1",
            "busybox",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.opts.memory_swap, Some(-1));
        assert_eq!(args.opts.pids_limit, Some(-1));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
