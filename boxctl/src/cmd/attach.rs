//! `boxctl attach [--no-stdin] NAME`, and the interactive `boxctl run -i/-t`.
//!
//! Both relay the local terminal (or pipe) to the app's stdio over an upgraded
//! connection, as `exec -it` does (`exec::relay`): raw mode while attached (restored on
//! every way out, error included), the window size sent at the start and on SIGWINCH,
//! ctrl-p ctrl-q to detach (the container keeps running). Without a terminal, SIGINT
//! and SIGTERM sent to boxctl are forwarded to the container. When the output ends,
//! the exit status is the container's; after a detach it is 0.
//!
//! `run -i/-t` attaches to the created container *before* starting it, so nothing the
//! app prints is lost, and stdin typed (or piped) early waits for it.

use std::time::Duration;

use anyhow::{bail, Context as _};
use boxd_client::attach::AttachOptions;
use boxd_client::exec::ExecSession;
use boxd_client::models::{ContainerState, CreateContainer};
use boxd_client::Client;
use clap::Args as ClapArgs;

use super::{forward_signal, report, short_id, Ctx, Signals};
use crate::tty;

/// How long to wait for the exit to be recorded once the output ended, before taking
/// the end for a detach.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// The options of `attach`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// Container id, prefix or name.
    pub container: String,
}

/// Runs `boxctl attach`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let c = ctx
        .client
        .container(&args.container)
        .await
        .with_context(|| format!("failed to attach to {}", args.container))?;
    if c.state != ContainerState::Running {
        bail!(
            "cannot attach to container {}: it is not running; start it first",
            c.name
        );
    }
    let stdin = !args.no_stdin && c.config.open_stdin;
    let stream = ctx
        .client
        .attach(
            &c.id,
            &AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
                logs: false,
            },
        )
        .await
        .with_context(|| format!("failed to attach to {}", c.name))?;
    relay_and_exit(&ctx.client, &c.id, stream, stdin, c.config.tty).await
}

/// `boxctl run -i/-t`: create with `spec` (its `tty`/`open_stdin` set), attach, start,
/// relay; the container's exit status.
pub async fn run_interactive(
    ctx: &Ctx,
    spec: &CreateContainer,
    rm: bool,
    pull: super::create::PullPolicy,
) -> anyhow::Result<i32> {
    let created = super::create::create(ctx, spec, pull).await?;
    let id = created.id;
    let result = attach_and_start(ctx, &id, spec).await;
    if rm {
        match ctx.client.container(&id).await {
            Ok(c) if c.state == ContainerState::Running => {}
            _ => {
                if let Err(err) = ctx.client.remove_container(&id, true).await {
                    report(
                        &anyhow::Error::new(err)
                            .context(format!("failed to remove container {}", short_id(&id))),
                    );
                }
            }
        }
    }
    result
}

async fn attach_and_start(ctx: &Ctx, id: &str, spec: &CreateContainer) -> anyhow::Result<i32> {
    let stream = ctx
        .client
        .attach(
            id,
            &AttachOptions {
                stdin: spec.open_stdin,
                stdout: true,
                stderr: true,
                logs: false,
            },
        )
        .await
        .with_context(|| format!("failed to attach to container {}", short_id(id)))?;
    ctx.client
        .start(id)
        .await
        .with_context(|| format!("failed to start container {}", short_id(id)))?;
    relay_and_exit(&ctx.client, id, stream, spec.open_stdin, spec.tty).await
}

async fn relay_and_exit(
    client: &Client,
    id: &str,
    stream: boxd_client::exec::RawStream,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<i32> {
    if tty {
        if let Some((rows, cols)) = tty::size() {
            // It may have ended already; the relay says how.
            let _ = client.resize_container(id, rows, cols).await;
        }
        spawn_resizer(client.clone(), id.to_owned());
    }
    // Without a terminal, ^C and SIGTERM reach boxctl, not the app (with one, ^C is a
    // byte on the app's terminal): forward them while attached.
    let proxy = if tty {
        None
    } else {
        let mut signals = Signals::new().context("failed to install signal handlers")?;
        let (client, id) = (client.clone(), id.to_owned());
        Some(tokio::spawn(async move {
            loop {
                let sig = signals.recv().await;
                forward_signal(&client, &id, sig).await;
            }
        }))
    };
    // Restored when this guard drops, on every path out.
    let raw = if tty && stdin {
        tty::RawMode::enter().context("failed to put the terminal into raw mode")?
    } else {
        None
    };
    let session = ExecSession {
        id: String::new(),
        stream,
    };
    let result = super::exec::relay(session, stdin, tty).await;
    drop(raw);
    if let Some(proxy) = proxy {
        proxy.abort();
    }
    result?;
    exit_code(client, id).await
}

/// Sends the window size on every SIGWINCH.
fn spawn_resizer(client: Client, id: String) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = tty::size() {
                let _ = client.resize_container(&id, rows, cols).await;
            }
        }
    });
}

/// The container's exit code once it stopped running; 0 when it still runs (a detach).
async fn exit_code(client: &Client, id: &str) -> anyhow::Result<i32> {
    let deadline = tokio::time::Instant::now() + EXIT_GRACE;
    loop {
        let c = client.container(id).await?;
        if c.state != ContainerState::Running {
            let exit = client.wait(id).await?;
            if exit.oom_killed {
                eprintln!("boxctl: container {} was OOM killed", short_id(id));
            }
            return Ok(exit.exit_code);
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "\r\nboxctl: detached from {}; it keeps running",
                short_id(id)
            );
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
