//! `boxctl exec [-i] [-t] [-u USER] [-e K=V] [-w DIR] NAME CMD...`: run a command in a
//! running container; the exit status is the command's.
//!
//! With `-t` the local terminal goes raw (restored on every exit), its size is sent
//! at the start and on every SIGWINCH, and ctrl-p ctrl-q detaches. With `-i` stdin is
//! copied to the command (a pipe works as well as a terminal), and its end is the
//! command's end of input.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use boxd_client::exec::{read_frame, ExecSession, OutputStream};
use boxd_client::models::ExecCreate;
use boxd_client::Client;
use clap::Args as ClapArgs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Ctx;
use crate::tty;

/// The options of `exec`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Keep stdin open and send it to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the command a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run as this user (`uid[:gid]` or a name from the image).
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Set an environment variable (`K=V`); may be repeated.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Container id, prefix or name.
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// Runs `boxctl exec`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    let size = if args.tty { tty::size() } else { None };
    let spec = ExecCreate {
        cmd: args.cmd,
        env: args.env,
        working_dir: args.workdir,
        user: args.user,
        tty: args.tty,
        stdin: args.interactive,
        height: size.map(|s| s.0),
        width: size.map(|s| s.1),
    };
    let session = ctx
        .client
        .exec(&args.container, &spec)
        .await
        .with_context(|| format!("failed to exec in {}", args.container))?;
    let exec_id = session.id.clone();
    // Raw only once the exec started, so an error above prints on a sane terminal;
    // restored when this guard drops, on every path out.
    let raw = if args.tty && args.interactive {
        tty::RawMode::enter().context("failed to put the terminal into raw mode")?
    } else {
        None
    };
    if args.tty {
        spawn_resizer(ctx.client.clone(), exec_id.clone());
    }
    let result = relay(session, args.interactive, args.tty).await;
    drop(raw);
    result?;
    exit_code(&ctx.client, &exec_id).await
}

/// Copies stdin to the stream and the stream to stdout/stderr until the output ends.
pub async fn relay(session: ExecSession, interactive: bool, tty: bool) -> anyhow::Result<()> {
    let (mut rd, mut wr) = tokio::io::split(session.stream);
    if interactive {
        let mut input = stdin_chunks();
        tokio::spawn(async move {
            while let Some(chunk) = input.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            // Our stdin ended: half-close, so the command sees end of input and its
            // output still comes back.
            let _ = wr.shutdown().await;
        });
    } else {
        drop(wr);
    }
    if tty {
        let mut buf = vec![0u8; 32 * 1024];
        let mut out = std::io::stdout();
        loop {
            let n = rd
                .read(&mut buf)
                .await
                .context("failed to read the output")?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    } else {
        while let Some((stream, bytes)) = read_frame(&mut rd).await? {
            match stream {
                OutputStream::Stdout => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&bytes)?;
                    o.flush()?;
                }
                OutputStream::Stderr => {
                    let mut e = std::io::stderr().lock();
                    e.write_all(&bytes)?;
                    e.flush()?;
                }
            }
        }
    }
    Ok(())
}

/// Stdin in chunks, read on a thread of its own: a blocking read of a terminal cannot
/// be cancelled, and the runtime must not wait for it at exit.
fn stdin_chunks() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Sends the window size on every SIGWINCH.
fn spawn_resizer(client: Client, exec_id: String) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = tty::size() {
                let _ = client.exec_resize(&exec_id, rows, cols).await;
            }
        }
    });
}

/// The exec's exit code once the daemon recorded it; 0 after a detach (it still runs).
async fn exit_code(client: &Client, exec_id: &str) -> anyhow::Result<i32> {
    for _ in 0..100 {
        let info = client.exec_inspect(exec_id).await?;
        if !info.running {
            return Ok(info.exit_code.unwrap_or(-1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("\r\nboxctl: detached from exec {exec_id}; it keeps running");
    Ok(0)
}
