//! `boxctl kill [-s SIG] ID...`: sends a signal (SIGKILL by default).

use clap::Args as ClapArgs;

use super::{each_id, Ctx};

/// The options of `kill`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Signal to send: SIGTERM, TERM or 15 (SIGKILL when absent).
    #[arg(short, long, value_name = "SIG")]
    pub signal: Option<String>,
    /// Container ids, prefixes or names.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// Runs `boxctl kill`: prints each signalled id; failures are reported and the rest go on.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<i32> {
    Ok(each_id(ctx, &args.ids, "kill", |id| {
        ctx.client.kill(id, args.signal.as_deref())
    })
    .await)
}
