//! `boxctl run [OPTIONS] IMAGE [CMD...]`: create, start, and (unless `-d`) stay with the
//! container until it exits, exiting with its exit code.
//!
//! Foreground order: create → start → follow the logs (NDJSON, from the log's start, so
//! the output of a container that exits before the follow request arrives is still
//! printed in full) → wait → remove when `--rm`. SIGINT and SIGTERM sent to boxctl in
//! that time are forwarded to the container with the same signal rather than ending
//! boxctl, so the container decides (as `docker run` does with its signal proxy).
//! Failures of boxctl or the daemon exit 125 (see `main`), never a container's code.

use anyhow::Context as _;
use boxd_client::{Error, LogsOptions};
use clap::Args as ClapArgs;
use futures_util::StreamExt;

use super::create::{self, ContainerOpts};
use super::logs::LogPrinter;
use super::{forward_signal, print_json, report, short_id, Ctx, Signals};

/// The options of `run`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Print help (`-h` is `--hostname`, as in docker).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Start it in the background and print its id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep stdin open and send it to the app (a pipe works as well as a terminal).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the app a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// What to run.
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// Runs `boxctl run`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let mut spec = create::build(&args.opts)?;
    // A detached run has no boxctl left to remove it: the daemon does (`auto_remove`),
    // after the exit, as dockerd's AutoRemove. An attached run removes it itself once
    // it has the exit status.
    spec.auto_remove = args.detach && args.rm;
    if (args.interactive || args.tty) && !args.detach {
        // Attached to its stdio instead of following the log: see `attach`.
        spec.tty = args.tty;
        spec.open_stdin = args.interactive;
        spec.stdin_once = args.interactive;
        return super::attach::run_interactive(ctx, &spec, args.rm, args.opts.pull).await;
    }
    spec.tty = args.tty;
    spec.open_stdin = args.interactive;
    let created = create::create(ctx, &spec, args.opts.pull).await?;
    let id = created.id.clone();

    if args.detach {
        ctx.client
            .start(&id)
            .await
            .with_context(|| format!("failed to start container {}", short_id(&id)))?;
        if ctx.json {
            print_json(&created)?;
        } else {
            println!("{id}");
        }
        return Ok(0);
    }

    // Hooked before the start, so a ^C that lands between start and the follow is
    // forwarded instead of killing boxctl and leaving the container unattended.
    let mut signals = Signals::new().context("failed to install signal handlers")?;
    if let Err(err) = ctx.client.start(&id).await {
        if args.rm {
            remove(ctx, &id).await;
        }
        return Err(err).with_context(|| format!("failed to start container {}", short_id(&id)));
    }
    let outcome = attach(ctx, &id, &mut signals).await;
    if args.rm {
        remove(ctx, &id).await;
    }
    outcome
}

/// The exit status of a `run` whose command could not be executed, as `docker run`:
/// 127 when it was not found, 126 when it could not be run (permission denied, not an
/// executable); `None` for every other failure (125).
pub fn exec_failure_code(err: &anyhow::Error) -> Option<i32> {
    let (code, message) = err.chain().find_map(|e| match e.downcast_ref() {
        Some(boxd_client::Error::Api { code, message, .. }) => Some((code, message)),
        _ => None,
    })?;
    let m = message.to_ascii_lowercase();
    if code != "start_failed" || !m.contains("(exec)") {
        return None;
    }
    if m.contains("not found") || m.contains("no such file") {
        Some(127)
    } else if m.contains("permission denied") || m.contains("exec format") {
        Some(126)
    } else {
        None
    }
}

/// Prints the container's output until it exits, then returns its exit code.
async fn attach(ctx: &Ctx, id: &str, signals: &mut Signals) -> anyhow::Result<i32> {
    let options = LogsOptions {
        follow: true,
        ..LogsOptions::default()
    };
    let mut printer = LogPrinter::new(false);
    match ctx.client.logs(id, options).await {
        Ok(mut stream) => loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(entry)) => printer.write(&entry).await?,
                    // One undecodable line is lost; the rest still comes.
                    Some(Err(err @ Error::Decode(_))) => {
                        report(&anyhow::Error::new(err).context("skipped a log entry"));
                    }
                    Some(Err(err)) => {
                        report(&anyhow::Error::new(err).context("log stream broke off"));
                        break;
                    }
                    None => break,
                },
                sig = signals.recv() => forward_signal(&ctx.client, id, sig).await,
            }
        },
        // Still wait: the exit code matters more than the output.
        Err(err) => report(&anyhow::Error::new(err).context("cannot follow the logs")),
    }

    let wait = ctx.client.wait(id);
    tokio::pin!(wait);
    let exit = loop {
        tokio::select! {
            result = &mut wait => break result.context("failed to wait for the container")?,
            sig = signals.recv() => forward_signal(&ctx.client, id, sig).await,
        }
    };
    if exit.oom_killed {
        eprintln!("boxctl: container {} was OOM killed", short_id(id));
    }
    Ok(exit.exit_code)
}

async fn remove(ctx: &Ctx, id: &str) {
    if let Err(err) = ctx.client.remove_container(id, true).await {
        report(
            &anyhow::Error::new(err)
                .context(format!("failed to remove container {}", short_id(id))),
        );
    }
}
